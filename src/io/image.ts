// Image decoding to 8-bit RGB as the official loader sees it (PIL.Image.open, ImageOps.exif_transpose,
// convert("RGB"), Pillow 9.4 with libjpeg-turbo 2.1.5): PNG (every colour type and bit depth, Adam7;
// alpha dropped, not composited), JPEG (baseline, extended, progressive; gray, YCbCr, RGB, CMYK,
// YCCK), BMP (1/4/8/16/24/32-bit, bitfields, RLE4/RLE8). EXIF orientation is applied for JPEG and
// PNG (eXIf, "Raw profile type exif" text, XMP), as exif_transpose does.
//
// One deliberate difference: 16-bit grayscale PNG samples are scaled to 8 bits
// (round(v·255/65535)) where PIL's convert("RGB") clamps them to 255, which turns ordinary 16-bit
// gray images white; `sixteenBit: 'pil'` reproduces PIL. (16-bit RGB, RGBA and gray+alpha keep
// the high byte, exactly as PIL does.)
//
// All of it is plain TypeScript on bytes (no Node module), so it runs unchanged in Deno and
// browsers; only loadImage/loadImageSamples read files.

import { FileError, ImageDecodeError } from './errors.js';
import { readRegularFile } from './bytesource.js';
import { exifOrientation } from './exif.js';
import { MAX_DIMENSION, MAX_PIXELS, type Limits } from './limits.js';
import { decodeBmp } from './bmp.js';
import { decodeJpeg } from './jpeg.js';
import { decodePng } from './png.js';
import { applyOrientation, toRgb, type ImageFormat, type RgbImage, type SixteenBit, type StoredImage } from './pixels.js';

export { ImageDecodeError } from './errors.js';
export { MAX_DIMENSION, MAX_PIXELS } from './limits.js';
export { applyOrientation, toRgb, type ImageFormat, type PilMode, type RgbImage, type StoredImage } from './pixels.js';

export function sniffFormat(bytes: Uint8Array): ImageFormat | null {
  if (bytes.length >= 8 && bytes[0] === 0x89 && bytes[1] === 0x50 && bytes[2] === 0x4e && bytes[3] === 0x47) return 'png';
  if (bytes.length >= 3 && bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff) return 'jpeg';
  if (bytes.length >= 2 && bytes[0] === 0x42 && bytes[1] === 0x4d) return 'bmp';
  return null;
}

export interface DecodeOptions {
  /** Largest accepted width·height (default 89,478,485, PIL's decompression-bomb threshold). */
  maxPixels?: number;
  /** Largest accepted width and height (default 65,500, libjpeg's limit). */
  maxDimension?: number;
  /** 16-bit grayscale PNG (PIL mode I): 'scale' (default) maps 0..65535 to 0..255; 'pil' (alias
   *  'pil-clamp') reproduces PIL's convert("RGB"), which clamps every value above 255 to 255.
   *  Other 16-bit PNGs keep the high byte of each sample in both modes, as PIL does. */
  sixteenBit?: SixteenBit;
}

function limitsOf(opts: DecodeOptions): Limits {
  return { maxPixels: opts.maxPixels ?? MAX_PIXELS, maxDimension: opts.maxDimension ?? MAX_DIMENSION };
}

/** Decodes PNG, JPEG or BMP bytes to the samples `PIL.Image.open` holds (mode, palette indices,
 *  16-bit gray values; no conversion, no EXIF transpose, but the orientation it would apply). */
export function decodeImageSamples(bytes: Uint8Array, name = 'image', opts: DecodeOptions = {}): StoredImage {
  const limits = limitsOf(opts);
  if (bytes.length === 0) throw new ImageDecodeError(name, 'empty file (0 bytes)');
  switch (sniffFormat(bytes)) {
    case 'png':
      return decodePng(name, bytes, limits);
    case 'jpeg':
      return decodeJpeg(name, bytes, limits);
    case 'bmp':
      return decodeBmp(name, bytes, limits);
    default:
      throw new ImageDecodeError(name, 'not a PNG, JPEG or BMP image');
  }
}

/** Decodes PNG, JPEG or BMP bytes to 8-bit RGB. `name` is used in error messages. */
export function decodeImage(bytes: Uint8Array, name = 'image', opts: DecodeOptions = {}): RgbImage {
  const stored = decodeImageSamples(bytes, name, opts);
  return applyOrientation(toRgb(stored, opts.sixteenBit), stored.orientation);
}

/** EXIF orientation (1–8) from a JPEG's first "Exif" APP1 segment, 1 when absent. */
export function jpegOrientation(bytes: Uint8Array): number {
  let p = 2;
  while (p + 4 <= bytes.length) {
    if (bytes[p] !== 0xff) return 1;
    const marker = bytes[p + 1]!;
    if (marker === 0xff) {
      p++;
      continue;
    }
    if (marker === 0xda || marker === 0xd9) return 1;
    const len = (bytes[p + 2]! << 8) | bytes[p + 3]!;
    const seg = bytes.subarray(p + 4, Math.min(bytes.length, p + 2 + len));
    if (marker === 0xe1 && seg.length >= 6 && String.fromCharCode(...seg.subarray(0, 4)) === 'Exif' && seg[4] === 0 && seg[5] === 0) {
      const o = exifOrientation(seg);
      return o !== null && o >= 1 && o <= 8 ? o : 1;
    }
    p += 2 + len;
  }
  return 1;
}

/** Reads an image file: a regular file only (a FIFO, device or directory is refused before it is
 *  opened, since opening a FIFO blocks until someone writes to it). */
export async function readImageFile(path: string): Promise<Uint8Array> {
  try {
    return await readRegularFile(path);
  } catch (e) {
    if (e instanceof FileError) throw new ImageDecodeError(path, e.problem.replace(/^cannot open/, 'cannot read'));
    throw e;
  }
}

/** Reads and decodes an image file to RGB. */
export async function loadImage(path: string, opts: DecodeOptions = {}): Promise<RgbImage> {
  return decodeImage(await readImageFile(path), path, opts);
}

/** Reads an image file to its stored samples (see decodeImageSamples). */
export async function loadImageSamples(path: string, opts: DecodeOptions = {}): Promise<StoredImage> {
  return decodeImageSamples(await readImageFile(path), path, opts);
}
