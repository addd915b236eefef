// Pillow 9.4's Image.resize for 8-bit images, ported bit for bit (libImaging/Resample.c): separable
// antialiased filters whose support scales with the reduction factor, coefficients normalised to
// sum 1 and quantised to 22-bit fixed point, a horizontal pass over only the rows the vertical pass
// needs, rounding and clamping to uint8 between the passes.

import type { RgbImage } from './image.js';

export type ResampleFilter = 'lanczos' | 'bicubic' | 'bilinear';

const PRECISION_BITS = 32 - 8 - 2;

const FILTERS: Record<ResampleFilter, { support: number; f: (x: number) => number }> = {
  bilinear: {
    support: 1,
    f: (x) => {
      x = Math.abs(x);
      return x < 1 ? 1 - x : 0;
    },
  },
  bicubic: {
    support: 2,
    f: (x) => {
      const a = -0.5;
      x = Math.abs(x);
      if (x < 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
      if (x < 2) return (((x - 5) * x + 8) * x - 4) * a;
      return 0;
    },
  },
  lanczos: {
    support: 3,
    f: (x) => {
      const sinc = (v: number) => {
        if (v === 0) return 1;
        v *= Math.PI;
        return Math.sin(v) / v;
      };
      return x >= -3 && x < 3 ? sinc(x) * sinc(x / 3) : 0;
    },
  },
};

interface Coeffs {
  ksize: number;
  bounds: Int32Array; // [xmin, count] per output
  kk: Int32Array; // fixed-point weights, ksize per output
}

/** precompute_coeffs + normalize_coeffs_8bpc. */
function coefficients(inSize: number, in0: number, in1: number, outSize: number, filter: ResampleFilter): Coeffs {
  const { support: baseSupport, f } = FILTERS[filter];
  const scale = (in1 - in0) / outSize;
  const filterscale = Math.max(scale, 1);
  const support = baseSupport * filterscale;
  const ksize = Math.ceil(support) * 2 + 1;
  const bounds = new Int32Array(outSize * 2);
  const kk = new Int32Array(outSize * ksize);
  const pre = new Float64Array(ksize);
  for (let xx = 0; xx < outSize; xx++) {
    const center = in0 + (xx + 0.5) * scale;
    const ss = 1 / filterscale;
    let xmin = Math.trunc(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    let xmax = Math.trunc(center + support + 0.5);
    if (xmax > inSize) xmax = inSize;
    xmax -= xmin;
    let ww = 0;
    for (let x = 0; x < xmax; x++) {
      const w = f((x + xmin - center + 0.5) * ss);
      pre[x] = w;
      ww += w;
    }
    for (let x = 0; x < ksize; x++) {
      const w = x < xmax ? (ww !== 0 ? pre[x]! / ww : pre[x]!) : 0;
      kk[xx * ksize + x] = w < 0 ? Math.trunc(-0.5 + w * (1 << PRECISION_BITS)) : Math.trunc(0.5 + w * (1 << PRECISION_BITS));
    }
    bounds[xx * 2] = xmin;
    bounds[xx * 2 + 1] = xmax;
  }
  return { ksize, bounds, kk };
}

function clip8(v: number): number {
  if (v >= 255 << PRECISION_BITS) return 255;
  if (v <= 0) return 0;
  return v >> PRECISION_BITS;
}

/** Resizes an interleaved 8-bit image (channels 1–4) to outW×outH like PIL's Image.resize. */
export function resizeU8(src: Uint8Array, w: number, h: number, channels: number, outW: number, outH: number, filter: ResampleFilter): Uint8Array {
  if (!Number.isInteger(outW) || !Number.isInteger(outH) || outW < 1 || outH < 1) throw new RangeError(`resize: bad output size ${outW}×${outH}`);
  if (!Number.isInteger(w) || !Number.isInteger(h) || w < 1 || h < 1) throw new RangeError(`resize: empty input ${w}×${h}`);
  if (src.length !== w * h * channels) throw new RangeError(`resize: ${src.length} bytes for ${w}×${h}×${channels}`);
  const needH = outW !== w;
  const needV = outH !== h;
  const horiz = coefficients(w, 0, w, outW, filter);
  const vert = coefficients(h, 0, h, outH, filter);
  let img = src;
  let iw = w;
  const vb = vert.bounds.slice();
  if (needH) {
    const first = vb[0]!;
    const last = vb[outH * 2 - 2]! + vb[outH * 2 - 1]!;
    for (let i = 0; i < outH; i++) vb[i * 2]! -= first;
    const rows = last - first;
    const tmp = new Uint8Array(outW * rows * channels);
    const half = 1 << (PRECISION_BITS - 1);
    for (let y = 0; y < rows; y++) {
      const rowIn = (y + first) * w * channels;
      for (let xx = 0; xx < outW; xx++) {
        const xmin = horiz.bounds[xx * 2]!;
        const xmax = horiz.bounds[xx * 2 + 1]!;
        const k = xx * horiz.ksize;
        for (let c = 0; c < channels; c++) {
          let ss = half;
          for (let x = 0; x < xmax; x++) ss += img[rowIn + (x + xmin) * channels + c]! * horiz.kk[k + x]!;
          tmp[(y * outW + xx) * channels + c] = clip8(ss);
        }
      }
    }
    img = tmp;
    iw = outW;
  }
  if (!needV) return img === src ? src.slice() : img;
  const out = new Uint8Array(iw * outH * channels);
  const half = 1 << (PRECISION_BITS - 1);
  for (let yy = 0; yy < outH; yy++) {
    const ymin = (needH ? vb : vert.bounds)[yy * 2]!;
    const ymax = vert.bounds[yy * 2 + 1]!;
    const k = yy * vert.ksize;
    for (let xx = 0; xx < iw; xx++) {
      for (let c = 0; c < channels; c++) {
        let ss = half;
        for (let y = 0; y < ymax; y++) ss += img[((y + ymin) * iw + xx) * channels + c]! * vert.kk[k + y]!;
        out[(yy * iw + xx) * channels + c] = clip8(ss);
      }
    }
  }
  return out;
}

export function resizeImage(img: RgbImage, outW: number, outH: number, filter: ResampleFilter): RgbImage {
  return { width: outW, height: outH, data: resizeU8(img.data, img.width, img.height, 3, outW, outH, filter) };
}
