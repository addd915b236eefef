// Size limits checked before any pixel memory is allocated.

import { ImageDecodeError } from './errors.js';

/** Images with more pixels than this are refused (PIL's decompression-bomb threshold is 89.5 MP). */
export const MAX_PIXELS = 89_478_485;
/** Images wider or taller than this are refused (libjpeg's JPEG_MAX_DIMENSION, for every format). */
export const MAX_DIMENSION = 65_500;

export interface Limits {
  maxPixels: number;
  maxDimension: number;
}

export function checkSize(name: string, w: number, h: number, limits: Limits): void {
  if (!(Number.isSafeInteger(w) && Number.isSafeInteger(h) && w > 0 && h > 0)) throw new ImageDecodeError(name, `invalid dimensions ${w}×${h}`);
  if (w * h > limits.maxPixels) throw new ImageDecodeError(name, `${w}×${h} = ${w * h} pixels exceeds the limit of ${limits.maxPixels}`);
  if (w > limits.maxDimension || h > limits.maxDimension) {
    throw new ImageDecodeError(name, `${w}×${h} exceeds the limit of ${limits.maxDimension} pixels per side`);
  }
}
