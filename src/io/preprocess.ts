// Image preprocessing as the reference pipeline runs it on uint8 PIL images:
//  - DiffSim's process_image: LANCZOS squash to S×S, /255, (x − 0.5)/0.5 (float32), NCHW.
//  - Hugging Face image processors (CLIPImageProcessor, BitImageProcessor) from their
//    preprocessor_config.json: short-side resize (PIL filter), center crop, rescale (computed in
//    float64, stored as float32), normalise in float32.

import { ConfigError, configNumber, configNumbers, numberProblem } from './config-check.js';
import { resizeU8, type ResampleFilter } from './resample.js';
import type { RgbImage } from './image.js';

const f = Math.fround;

/** Refuses images with no pixels or with data that does not match their size. */
function checkImage(fn: string, img: RgbImage): void {
  const { width: w, height: h } = img;
  if (!(Number.isInteger(w) && Number.isInteger(h) && w > 0 && h > 0)) throw new RangeError(`${fn}: empty image (${w}×${h})`);
  if (img.data.length !== w * h * 3) throw new RangeError(`${fn}: ${img.data.length} bytes for a ${w}×${h} RGB image (needs ${w * h * 3})`);
}

/** DiffSim's process_image: [1, 3, S, S] float32 in [−1, 1]. */
export function processImage(img: RgbImage, size: number): Float32Array {
  checkImage('processImage', img);
  const r = resizeU8(img.data, img.width, img.height, 3, size, size, 'lanczos');
  const out = new Float32Array(3 * size * size);
  const plane = size * size;
  for (let i = 0; i < plane; i++) {
    for (let c = 0; c < 3; c++) out[c * plane + i] = f(f(f(r[i * 3 + c]! / 255) - 0.5) / 0.5);
  }
  return out;
}

/** process_image's LANCZOS squash to S×S, as [1, 3, S, S] float32 in [0, 1] (x/255): the input
 *  `lpips(…, normalize=True)` expects. */
export function processImageUnit(img: RgbImage, size: number): Float32Array {
  checkImage('processImageUnit', img);
  const r = resizeU8(img.data, img.width, img.height, 3, size, size, 'lanczos');
  const out = new Float32Array(3 * size * size);
  const plane = size * size;
  for (let i = 0; i < plane; i++) {
    for (let c = 0; c < 3; c++) out[c * plane + i] = f(r[i * 3 + c]! / 255);
  }
  return out;
}

export const IMAGENET_MEAN = Object.freeze([0.485, 0.456, 0.406] as const);
export const IMAGENET_STD = Object.freeze([0.229, 0.224, 0.225] as const);

/** metrics/vgg_gram.py's transform: torchvision Resize(size) (the shorter side to `size`, the
 *  longer int(size·long/short), PIL bilinear on uint8, aspect ratio kept), ToTensor (x/255),
 *  Normalize(ImageNet mean, std) in float32. [1, 3, H, W]. */
export function vggGramImage(img: RgbImage, size: number): { data: Float32Array; width: number; height: number } {
  checkImage('vggGramImage', img);
  if (!Number.isInteger(size) || size < 1) throw new RangeError(`vggGramImage: size must be a positive integer, got ${size}`);
  const [w, h] = shortEdgeSize(img.width, img.height, size);
  const r = w === img.width && h === img.height ? img.data : resizeU8(img.data, img.width, img.height, 3, w, h, 'bilinear');
  const out = new Float32Array(3 * w * h);
  const plane = w * h;
  const mean = IMAGENET_MEAN.map(f);
  const std = IMAGENET_STD.map(f);
  for (let i = 0; i < plane; i++) {
    for (let c = 0; c < 3; c++) out[c * plane + i] = f(f(f(r[i * 3 + c]! / 255) - mean[c]!) / std[c]!);
  }
  return { data: out, width: w, height: h };
}

export interface ImageProcessorConfig {
  do_convert_rgb?: boolean;
  do_resize?: boolean;
  /** {shortest_edge}, {height, width}, or a number (older configs: the shortest edge). */
  size?: { shortest_edge?: number; height?: number; width?: number } | number;
  resample?: number;
  do_center_crop?: boolean;
  crop_size?: { height: number; width: number } | number;
  do_rescale?: boolean;
  rescale_factor?: number;
  do_normalize?: boolean;
  image_mean?: number[];
  image_std?: number[];
}

const PIL_FILTERS: Record<number, ResampleFilter> = { 1: 'lanczos', 2: 'bilinear', 3: 'bicubic' };

/** The largest side an image processor may resize or crop to. */
const MAX_PROCESSOR_SIDE = 8192;

/** Refuses an image processor config whose values would give non-finite or meaningless pixels:
 *  image_mean / image_std not three finite numbers (std > 0), a non-finite or non-positive
 *  rescale_factor, sizes that are not positive integers, an unknown resample filter. Errors name
 *  `where` (the preprocessor_config.json) and the key. */
export function validateImageProcessorConfig(cfg: ImageProcessorConfig, where: string): void {
  for (const key of ['image_mean', 'image_std'] as const) {
    const v = cfg[key] as unknown;
    if (v === undefined || v === null) continue;
    if (!Array.isArray(v) || v.length !== 3) throw new ConfigError(where, key, `must be a list of 3 numbers (one per RGB channel), got ${JSON.stringify(v)}`);
    configNumbers(cfg, key, where, key === 'image_std' ? { above: 0, max: 1e6 } : { min: -1e6, max: 1e6 });
  }
  configNumber(cfg, 'rescale_factor', where, { optional: true, above: 0, max: 1e6 });
  const side = { integer: true, min: 1, max: MAX_PROCESSOR_SIDE };
  for (const key of ['size', 'crop_size'] as const) {
    const v = cfg[key] as unknown;
    if (v === undefined || v === null) continue;
    if (typeof v === 'number') configNumber(cfg, key, where, side);
    else if (typeof v === 'object' && !Array.isArray(v)) {
      for (const [k, x] of Object.entries(v as object)) {
        const problem = numberProblem(x, side);
        if (problem) throw new ConfigError(where, `${key}.${k}`, problem);
      }
    }
    else throw new ConfigError(where, key, `must be a number or {shortest_edge} / {height, width}, got ${JSON.stringify(v)}`);
  }
  if (cfg.resample !== undefined && cfg.resample !== null && !PIL_FILTERS[cfg.resample]) throw new ConfigError(where, 'resample', `${JSON.stringify(cfg.resample)} is not supported (1 lanczos, 2 bilinear, 3 bicubic)`);
}

/** The output size of transformers' get_resize_output_image_size for {shortest_edge}. */
export function shortEdgeSize(w: number, h: number, shortest: number): [number, number] {
  const short = Math.min(w, h);
  const long = Math.max(w, h);
  const newLong = Math.trunc((shortest * long) / short);
  return w <= h ? [shortest, newLong] : [newLong, shortest];
}

/** Where a Hugging Face image processor's pixels come from: the size the image is resized to (its
 *  own size when it is not resized, `filter` null) and the crop taken from the resized image (all
 *  of it when not cropped). The output is crop.width × crop.height. */
export interface ProcessorGeometry {
  resized: { width: number; height: number };
  filter: ResampleFilter | null;
  crop: { left: number; top: number; width: number; height: number };
}

/** The resize and crop `imageProcessor` applies to a width×height image. */
export function imageProcessorGeometry(width: number, height: number, cfg: ImageProcessorConfig): ProcessorGeometry {
  let w = width;
  let h = height;
  let filter: ResampleFilter | null = null;
  if (cfg.do_resize !== false && cfg.size !== undefined) {
    const size = typeof cfg.size === 'number' ? { shortest_edge: cfg.size } : cfg.size;
    const chosen = PIL_FILTERS[cfg.resample ?? 3];
    if (!chosen) throw new Error(`image processor: resample ${cfg.resample} is not supported (1 lanczos, 2 bilinear, 3 bicubic)`);
    let tw: number, th: number;
    if (size.shortest_edge !== undefined) [tw, th] = shortEdgeSize(w, h, size.shortest_edge);
    else if (size.height !== undefined && size.width !== undefined) [tw, th] = [size.width, size.height];
    else throw new Error(`image processor: size ${JSON.stringify(cfg.size)} is not supported`);
    if (tw !== w || th !== h) filter = chosen;
    w = tw;
    h = th;
  }
  let crop = { left: 0, top: 0, width: w, height: h };
  if (cfg.do_center_crop !== false && cfg.crop_size !== undefined) {
    const cs = typeof cfg.crop_size === 'number' ? { height: cfg.crop_size, width: cfg.crop_size } : cfg.crop_size;
    if (cs.width > w || cs.height > h) throw new Error(`image processor: crop ${cs.width}×${cs.height} larger than the resized ${w}×${h} image`);
    crop = { left: Math.floor((w - cs.width) / 2), top: Math.floor((h - cs.height) / 2), width: cs.width, height: cs.height };
  }
  return { resized: { width: w, height: h }, filter, crop };
}

/** A Hugging Face image processor: [1, 3, H, W] float32 NCHW. */
export function imageProcessor(img: RgbImage, cfg: ImageProcessorConfig): { data: Float32Array; width: number; height: number } {
  checkImage('imageProcessor', img);
  validateImageProcessorConfig(cfg, 'image processor config');
  const g = imageProcessorGeometry(img.width, img.height, cfg);
  let { width: w, height: h, data } = img;
  if (g.filter) data = resizeU8(data, w, h, 3, g.resized.width, g.resized.height, g.filter);
  w = g.resized.width;
  h = g.resized.height;
  const cr = g.crop;
  if (cr.left !== 0 || cr.top !== 0 || cr.width !== w || cr.height !== h) {
    const cropped = new Uint8Array(cr.width * cr.height * 3);
    for (let y = 0; y < cr.height; y++) cropped.set(data.subarray(((cr.top + y) * w + cr.left) * 3, ((cr.top + y) * w + cr.left + cr.width) * 3), y * cr.width * 3);
    data = cropped;
    w = cr.width;
    h = cr.height;
  }
  const plane = w * h;
  const out = new Float32Array(3 * plane);
  const scale = cfg.do_rescale === false ? 1 : (cfg.rescale_factor ?? 1 / 255);
  const mean = (cfg.image_mean ?? [0, 0, 0]).map(f);
  const std = (cfg.image_std ?? [1, 1, 1]).map(f);
  for (let i = 0; i < plane; i++) {
    for (let c = 0; c < 3; c++) {
      let v = f(data[i * 3 + c]! * scale);
      if (cfg.do_normalize !== false && cfg.image_mean) v = f(f(v - mean[c]!) / std[c]!);
      out[c * plane + i] = v;
    }
  }
  return { data: out, width: w, height: h };
}
