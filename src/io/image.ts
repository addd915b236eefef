// Image decoding to 8-bit RGB as the official loader sees it (PIL open, EXIF transpose,
// convert("RGB")): PNG (8/16-bit, gray, palette, alpha — alpha dropped, not composited), JPEG
// (baseline, progressive, gray; EXIF orientation applied), BMP (1/4/8/24/32-bit, uncompressed).
//
// 16-bit samples are scaled to 8 bits (round(v·255/65535)). PIL's convert("RGB") instead clamps
// 16-bit values to 255, which turns ordinary 16-bit images white; that loader defect is not copied.

import { FileError } from './errors.js';
import { PNG } from 'pngjs';
import jpeg from 'jpeg-js';

export interface RgbImage {
  width: number;
  height: number;
  /** Interleaved RGB, row-major, width·height·3 bytes. */
  data: Uint8Array;
}

/** Images with more pixels than this are refused (PIL's decompression-bomb threshold is 89.5 MP). */
export const MAX_PIXELS = 89_478_485;

export class ImageDecodeError extends FileError {
  override name = 'ImageDecodeError';
}

export type ImageFormat = 'png' | 'jpeg' | 'bmp';

export function sniffFormat(bytes: Uint8Array): ImageFormat | null {
  if (bytes.length >= 8 && bytes[0] === 0x89 && bytes[1] === 0x50 && bytes[2] === 0x4e && bytes[3] === 0x47) return 'png';
  if (bytes.length >= 3 && bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff) return 'jpeg';
  if (bytes.length >= 2 && bytes[0] === 0x42 && bytes[1] === 0x4d) return 'bmp';
  return null;
}

function checkSize(name: string, w: number, h: number, maxPixels: number): void {
  if (!(w > 0 && h > 0)) throw new ImageDecodeError(name, `invalid dimensions ${w}×${h}`);
  if (w * h > maxPixels) throw new ImageDecodeError(name, `${w}×${h} = ${w * h} pixels exceeds the limit of ${maxPixels}`);
}

export interface DecodeOptions {
  /** Largest accepted width·height. */
  maxPixels?: number;
  /** 16-bit PNG samples: 'scale' (default) maps 0..65535 to 0..255; 'pil-clamp' reproduces
   *  PIL's convert("RGB"), which clamps every value above 255 to 255. */
  sixteenBit?: 'scale' | 'pil-clamp';
}

function decodePng(name: string, bytes: Uint8Array, maxPixels: number, sixteenBit: 'scale' | 'pil-clamp' = 'scale'): RgbImage {
  // Check the IHDR size before inflating anything.
  if (bytes.length < 24) throw new ImageDecodeError(name, 'truncated PNG header');
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  checkSize(name, dv.getUint32(16), dv.getUint32(20), maxPixels);
  let png: { width: number; height: number; data: Uint8Array; depth?: number };
  try {
    png = PNG.sync.read(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength), { skipRescale: true }) as unknown as typeof png;
  } catch (e) {
    throw new ImageDecodeError(name, `corrupt PNG (${(e as Error).message})`);
  }
  const { width, height } = png;
  const out = new Uint8Array(width * height * 3);
  // pngjs expands every colour type to RGBA: bytes for ≤ 8-bit files, 16-bit words otherwise.
  const src = png.data as Uint8Array | Uint16Array;
  const sixteen = src instanceof Uint16Array;
  for (let i = 0; i < width * height; i++) {
    for (let c = 0; c < 3; c++) {
      const v = src[i * 4 + c]!;
      out[i * 3 + c] = !sixteen ? v : sixteenBit === 'scale' ? Math.round((v * 255) / 65535) : Math.min(v, 255);
    }
  }
  return { width, height, data: out };
}

/** EXIF orientation (1–8) from a JPEG's APP1 segment, 1 when absent. */
export function jpegOrientation(bytes: Uint8Array): number {
  let p = 2;
  while (p + 4 <= bytes.length) {
    if (bytes[p] !== 0xff) return 1;
    const marker = bytes[p + 1]!;
    if (marker === 0xda || marker === 0xd9) return 1;
    const len = (bytes[p + 2]! << 8) | bytes[p + 3]!;
    if (marker === 0xe1 && len >= 16 && String.fromCharCode(...bytes.subarray(p + 4, p + 8)) === 'Exif') {
      const t = p + 10; // TIFF header
      if (t + 8 > bytes.length) return 1;
      const le = bytes[t] === 0x49;
      const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      const u16 = (o: number) => dv.getUint16(o, le);
      const u32 = (o: number) => dv.getUint32(o, le);
      const ifd = t + u32(t + 4);
      if (ifd + 2 > bytes.length) return 1;
      const n = u16(ifd);
      for (let i = 0; i < n; i++) {
        const e = ifd + 2 + i * 12;
        if (e + 12 > bytes.length) return 1;
        if (u16(e) === 0x0112) {
          const v = u16(e + 8);
          return v >= 1 && v <= 8 ? v : 1;
        }
      }
      return 1;
    }
    p += 2 + len;
  }
  return 1;
}

/** PIL's ImageOps.exif_transpose for orientations 2–8. */
export function applyOrientation(img: RgbImage, orientation: number): RgbImage {
  if (orientation <= 1 || orientation > 8) return img;
  const { width: w, height: h, data } = img;
  const swap = orientation >= 5;
  const ow = swap ? h : w;
  const oh = swap ? w : h;
  const out = new Uint8Array(data.length);
  for (let y = 0; y < oh; y++) {
    for (let x = 0; x < ow; x++) {
      // Source coordinate of output pixel (x, y) for each EXIF orientation.
      let sx: number, sy: number;
      switch (orientation) {
        case 2: sx = w - 1 - x; sy = y; break; // mirror horizontal
        case 3: sx = w - 1 - x; sy = h - 1 - y; break; // rotate 180
        case 4: sx = x; sy = h - 1 - y; break; // mirror vertical
        case 5: sx = y; sy = x; break; // transpose
        case 6: sx = y; sy = h - 1 - x; break; // rotate 90 CW
        case 7: sx = w - 1 - y; sy = h - 1 - x; break; // transverse
        default: sx = w - 1 - y; sy = x; break; // 8: rotate 270 CW
      }
      const s = (sy * w + sx) * 3;
      const d = (y * ow + x) * 3;
      out[d] = data[s]!;
      out[d + 1] = data[s + 1]!;
      out[d + 2] = data[s + 2]!;
    }
  }
  return { width: ow, height: oh, data: out };
}

interface JpegFrame {
  width: number;
  height: number;
  /** Per component: id, horizontal and vertical sampling factors. */
  components: { id: number; h: number; v: number }[];
  adobe: boolean;
}

/** Reads the frame header (SOF0/1/2) and notes an Adobe APP14 marker. */
function jpegFrame(bytes: Uint8Array): JpegFrame | null {
  let p = 2;
  let adobe = false;
  while (p + 4 <= bytes.length) {
    if (bytes[p] !== 0xff) return null;
    const marker = bytes[p + 1]!;
    if (marker === 0xd8 || (marker >= 0xd0 && marker <= 0xd7) || marker === 0x01) {
      p += 2;
      continue;
    }
    const len = (bytes[p + 2]! << 8) | bytes[p + 3]!;
    if (marker === 0xee) adobe = true;
    if (marker === 0xc0 || marker === 0xc1 || marker === 0xc2) {
      if (p + 10 > bytes.length) return null;
      const height = (bytes[p + 5]! << 8) | bytes[p + 6]!;
      const width = (bytes[p + 7]! << 8) | bytes[p + 8]!;
      const n = bytes[p + 9]!;
      const components = [];
      for (let i = 0; i < n; i++) {
        const q = p + 10 + i * 3;
        if (q + 3 > bytes.length) return null;
        components.push({ id: bytes[q]!, h: bytes[q + 1]! >> 4, v: bytes[q + 1]! & 15 });
      }
      return { width, height, components, adobe };
    }
    p += 2 + len;
  }
  return null;
}

/** libjpeg's "fancy" (triangle-filter) upsampling of one chroma plane by (fx, fy) ∈ {1, 2}²,
 *  with edge rows and columns replicated as libjpeg's context rows are (jdsample.c). */
function fancyUpsample(plane: Uint8Array, cw: number, ch: number, fx: number, fy: number, w: number, h: number): Uint8Array {
  let cur = plane;
  let curW = cw;
  let curH = ch;
  if (fx === 2 && fy === 2) {
    const outW = cw * 2;
    const out = new Uint8Array(outW * ch * 2);
    for (let r = 0; r < ch; r++) {
      for (let v = 0; v < 2; v++) {
        const nr = v === 0 ? Math.max(r - 1, 0) : Math.min(r + 1, ch - 1);
        const i0 = r * cw;
        const i1 = nr * cw;
        const o = (r * 2 + v) * outW;
        const colsum = (c: number) => plane[i0 + c]! * 3 + plane[i1 + c]!;
        if (cw === 1) {
          const t = colsum(0);
          out[o] = (t * 4 + 8) >> 4;
          out[o + 1] = (t * 4 + 7) >> 4;
          continue;
        }
        let last = colsum(0);
        let thisc = last;
        let next = colsum(1);
        out[o] = (thisc * 4 + 8) >> 4;
        out[o + 1] = (thisc * 3 + next + 7) >> 4;
        last = thisc;
        thisc = next;
        for (let c = 1; c < cw - 1; c++) {
          next = colsum(c + 1);
          out[o + 2 * c] = (thisc * 3 + last + 8) >> 4;
          out[o + 2 * c + 1] = (thisc * 3 + next + 7) >> 4;
          last = thisc;
          thisc = next;
        }
        out[o + 2 * (cw - 1)] = (thisc * 3 + last + 8) >> 4;
        out[o + 2 * (cw - 1) + 1] = (thisc * 4 + 7) >> 4;
      }
    }
    cur = out;
    curW = outW;
    curH = ch * 2;
  } else if (fx === 2 && fy === 1) {
    const outW = cw * 2;
    const out = new Uint8Array(outW * ch);
    for (let r = 0; r < ch; r++) {
      const i = r * cw;
      const o = r * outW;
      if (cw === 1) {
        out[o] = out[o + 1] = plane[i]!;
        continue;
      }
      out[o] = plane[i]!;
      out[o + 1] = (plane[i]! * 3 + plane[i + 1]! + 2) >> 2;
      for (let c = 1; c < cw - 1; c++) {
        const t = plane[i + c]! * 3;
        out[o + 2 * c] = (t + plane[i + c - 1]! + 1) >> 2;
        out[o + 2 * c + 1] = (t + plane[i + c + 1]! + 2) >> 2;
      }
      out[o + 2 * (cw - 1)] = (plane[i + cw - 1]! * 3 + plane[i + cw - 2]! + 1) >> 2;
      out[o + 2 * (cw - 1) + 1] = plane[i + cw - 1]!;
    }
    cur = out;
    curW = outW;
  } else if (fx !== 1 || fy !== 1) {
    // Other factors: replicate (libjpeg's int_upsample).
    const out = new Uint8Array(cw * fx * ch * fy);
    for (let y = 0; y < ch * fy; y++) for (let x = 0; x < cw * fx; x++) out[y * cw * fx + x] = plane[Math.floor(y / fy) * cw + Math.floor(x / fx)]!;
    cur = out;
    curW = cw * fx;
    curH = ch * fy;
  }
  if (curW === w && curH === h) return cur;
  const cropped = new Uint8Array(w * h);
  for (let y = 0; y < h; y++) cropped.set(cur.subarray(y * curW, y * curW + w), y * w);
  return cropped;
}

/** libjpeg's fixed-point YCbCr → RGB (jdcolor.c, SCALEBITS 16). */
function ycbcrToRgb(y: Uint8Array, cb: Uint8Array, cr: Uint8Array, out: Uint8Array): void {
  const FIX = (x: number) => Math.floor(x * 65536 + 0.5);
  const half = 1 << 15;
  const crR = new Int32Array(256);
  const cbB = new Int32Array(256);
  const crG = new Int32Array(256);
  const cbG = new Int32Array(256);
  for (let i = 0; i < 256; i++) {
    const x = i - 128;
    crR[i] = (FIX(1.402) * x + half) >> 16;
    cbB[i] = (FIX(1.772) * x + half) >> 16;
    crG[i] = -FIX(0.71414) * x;
    cbG[i] = -FIX(0.34414) * x + half;
  }
  const clamp = (v: number) => (v < 0 ? 0 : v > 255 ? 255 : v);
  for (let i = 0; i < y.length; i++) {
    const Y = y[i]!;
    const b = cb[i]!;
    const r = cr[i]!;
    out[i * 3] = clamp(Y + crR[r]!);
    out[i * 3 + 1] = clamp(Y + ((cbG[b]! + crG[r]!) >> 16));
    out[i * 3 + 2] = clamp(Y + cbB[b]!);
  }
}

function decodeJpeg(name: string, bytes: Uint8Array, maxPixels: number): RgbImage {
  const frame = jpegFrame(bytes);
  if (!frame) throw new ImageDecodeError(name, 'corrupt JPEG (no frame header)');
  checkSize(name, frame.width, frame.height, maxPixels);
  const ycc = frame.components.length === 3 && !frame.adobe;
  let decoded: { width: number; height: number; data: Uint8Array };
  try {
    decoded = jpeg.decode(bytes, {
      useTArray: true,
      formatAsRGBA: false,
      // For YCbCr files the samples are taken raw and converted below as libjpeg does.
      ...(ycc ? { colorTransform: false } : {}),
      maxResolutionInMP: maxPixels / 1e6,
      maxMemoryUsageInMB: 2048,
      tolerantDecoding: false,
    }) as typeof decoded;
  } catch (e) {
    throw new ImageDecodeError(name, `corrupt or unsupported JPEG (${(e as Error).message})`);
  }
  const { width: w, height: h } = decoded;
  if (decoded.data.length !== w * h * 3) throw new ImageDecodeError(name, 'JPEG decoded to an unexpected size');
  let rgb = decoded.data;
  if (ycc) {
    // The decoder replicates subsampled chroma; take one sample per block back and upsample it
    // with libjpeg's triangle filter.
    const hmax = Math.max(...frame.components.map((c) => c.h));
    const vmax = Math.max(...frame.components.map((c) => c.v));
    const planes: Uint8Array[] = [];
    for (let k = 0; k < 3; k++) {
      const comp = frame.components[k]!;
      const fx = hmax / comp.h;
      const fy = vmax / comp.v;
      const cw = Math.ceil((w * comp.h) / hmax);
      const chh = Math.ceil((h * comp.v) / vmax);
      const plane = new Uint8Array(cw * chh);
      for (let y = 0; y < chh; y++) for (let x = 0; x < cw; x++) plane[y * cw + x] = rgb[(Math.min(y * fy, h - 1) * w + Math.min(x * fx, w - 1)) * 3 + k]!;
      planes.push(Number.isInteger(fx) && Number.isInteger(fy) ? fancyUpsample(plane, cw, chh, fx, fy, w, h) : plane);
    }
    rgb = new Uint8Array(w * h * 3);
    ycbcrToRgb(planes[0]!, planes[1]!, planes[2]!, rgb);
  }
  return applyOrientation({ width: w, height: h, data: rgb }, jpegOrientation(bytes));
}

function decodeBmp(name: string, bytes: Uint8Array, maxPixels: number): RgbImage {
  if (bytes.length < 26) throw new ImageDecodeError(name, 'truncated BMP header');
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const dataOffset = dv.getUint32(10, true);
  const headerSize = dv.getUint32(14, true);
  if (headerSize < 40) throw new ImageDecodeError(name, `BMP core headers (${headerSize} bytes) are not supported`);
  if (bytes.length < 14 + headerSize) throw new ImageDecodeError(name, 'truncated BMP header');
  const width = dv.getInt32(18, true);
  const rawHeight = dv.getInt32(22, true);
  const bpp = dv.getUint16(28, true);
  const compression = dv.getUint32(30, true);
  const height = Math.abs(rawHeight);
  const bottomUp = rawHeight > 0;
  checkSize(name, width, height, maxPixels);
  if (compression !== 0 && !(compression === 3 && bpp === 32)) throw new ImageDecodeError(name, `compressed BMP (method ${compression}) is not supported`);
  if (![1, 4, 8, 24, 32].includes(bpp)) throw new ImageDecodeError(name, `${bpp}-bit BMP is not supported`);
  const stride = Math.floor((bpp * width + 31) / 32) * 4;
  if (dataOffset + stride * height > bytes.length) throw new ImageDecodeError(name, `truncated BMP data (needs ${dataOffset + stride * height} bytes, file has ${bytes.length})`);
  let palette: Uint8Array | null = null;
  if (bpp <= 8) {
    const colors = dv.getUint32(46, true) || 1 << bpp;
    palette = bytes.subarray(14 + headerSize, 14 + headerSize + colors * 4);
  }
  const out = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    const row = dataOffset + (bottomUp ? height - 1 - y : y) * stride;
    for (let x = 0; x < width; x++) {
      const d = (y * width + x) * 3;
      if (bpp === 24 || bpp === 32) {
        const s = row + x * (bpp / 8);
        out[d] = bytes[s + 2]!;
        out[d + 1] = bytes[s + 1]!;
        out[d + 2] = bytes[s]!;
      } else {
        const bit = x * bpp;
        const byte = bytes[row + (bit >> 3)]!;
        const idx = (byte >> (8 - bpp - (bit & 7))) & ((1 << bpp) - 1);
        out[d] = palette![idx * 4 + 2] ?? 0;
        out[d + 1] = palette![idx * 4 + 1] ?? 0;
        out[d + 2] = palette![idx * 4] ?? 0;
      }
    }
  }
  return { width, height, data: out };
}

/** Decodes PNG, JPEG or BMP bytes to 8-bit RGB. `name` is used in error messages. */
export function decodeImage(bytes: Uint8Array, name = 'image', opts: DecodeOptions = {}): RgbImage {
  const maxPixels = opts.maxPixels ?? MAX_PIXELS;
  if (bytes.length === 0) throw new ImageDecodeError(name, 'empty file (0 bytes)');
  const format = sniffFormat(bytes);
  switch (format) {
    case 'png':
      return decodePng(name, bytes, maxPixels, opts.sixteenBit);
    case 'jpeg':
      return decodeJpeg(name, bytes, maxPixels);
    case 'bmp':
      return decodeBmp(name, bytes, maxPixels);
    default:
      throw new ImageDecodeError(name, 'not a PNG, JPEG or BMP image');
  }
}

/** Reads and decodes an image file. */
export async function loadImage(path: string, opts: DecodeOptions = {}): Promise<RgbImage> {
  const { readFile } = await import('node:fs/promises');
  let bytes: Uint8Array;
  try {
    bytes = await readFile(path);
  } catch (e) {
    throw new ImageDecodeError(path, `cannot read (${(e as { code?: string }).code ?? (e as Error).message})`);
  }
  return decodeImage(bytes, path, opts);
}
