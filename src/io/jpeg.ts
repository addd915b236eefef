// JPEG decoding as Pillow 9.4 gets it from libjpeg-turbo 2.1.5 with its defaults: Huffman-coded
// baseline, extended (SOF1) and progressive files; the "islow" integer IDCT (jidctint.c), "fancy"
// chroma upsampling (jdsample.c: h2v1, h2v2, h1v2 triangle filters, replication for other integer
// factors) and the fixed-point colour conversions of jdcolor.c; the colour space chosen as
// libjpeg does (JFIF/Adobe markers, component ids), and PIL's own handling of 4-component files
// (inverted "Adobe" CMYK). Arithmetic-coded, lossless, hierarchical and 12-bit files are refused
// (libjpeg-turbo 2.1.5 built for 8 bits refuses the last three too).
//
// Before any pixel memory is allocated, the whole marker structure is read and each scan's
// entropy-coded bytes are checked to be able to hold its blocks at all (a sequential block needs
// at least 2 bits, a progressive DC or refinement block 1 bit), so that a small file declaring a
// huge image fails at once.

import { ImageDecodeError } from './errors.js';
import { exifOrientation } from './exif.js';
import { checkSize, type Limits } from './limits.js';
import type { StoredImage } from './pixels.js';

/** Zigzag index → natural (row-major) index, with libjpeg's 16 safety entries for corrupt data. */
const NATURAL = new Uint8Array([
  0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34, 27, 20, 13, 6, 7, 14, 21, 28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23,
  30, 37, 44, 51, 58, 59, 52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63,
]);

const SOF_NAMES: Record<number, string> = {
  0xc3: 'lossless (SOF3)',
  0xc5: 'hierarchical (SOF5)',
  0xc6: 'hierarchical progressive (SOF6)',
  0xc7: 'hierarchical lossless (SOF7)',
  0xc9: 'arithmetic-coded (SOF9)',
  0xca: 'arithmetic-coded progressive (SOF10)',
  0xcb: 'arithmetic-coded lossless (SOF11)',
  0xcd: 'arithmetic-coded hierarchical (SOF13)',
  0xce: 'arithmetic-coded hierarchical progressive (SOF14)',
  0xcf: 'arithmetic-coded hierarchical lossless (SOF15)',
};

/** A scan may visit at most this many blocks per block of the image (over all its scans). */
const MAX_SCAN_VISITS_PER_BLOCK = 64;

interface HuffTable {
  /** 8-bit lookahead: (length << 8) | symbol, 0 when the code is longer. */
  lookup: Int32Array;
  maxcode: Int32Array;
  valoffset: Int32Array;
  vals: Uint8Array;
}

interface Component {
  id: number;
  h: number;
  v: number;
  tq: number;
  /** Samples per line and lines (libjpeg's downsampled_width/height). */
  dw: number;
  dh: number;
  /** Blocks per line and column that hold image samples (width_in_blocks, height_in_blocks). */
  bw: number;
  bh: number;
  quant: Int32Array | null;
  coefs: Int16Array | null;
  plane: Uint8Array | null;
  pred: number;
}

interface Scan {
  comps: Component[];
  dc: (HuffTable | null)[];
  ac: (HuffTable | null)[];
  ss: number;
  se: number;
  ah: number;
  al: number;
  start: number;
  end: number;
  restart: number;
  blocks: number;
}

function buildHuff(name: string, counts: Uint8Array, vals: Uint8Array, isDC: boolean): HuffTable {
  const lookup = new Int32Array(256);
  const maxcode = new Int32Array(18).fill(-1);
  const valoffset = new Int32Array(18);
  let code = 0;
  let p = 0;
  for (let l = 1; l <= 16; l++) {
    const n = counts[l - 1]!;
    if (n) {
      valoffset[l] = p - code;
      for (let i = 0; i < n; i++, p++, code++) {
        if (l <= 8) {
          const base = code << (8 - l);
          for (let k = 0; k < 1 << (8 - l); k++) lookup[base + k] = (l << 8) | vals[p]!;
        }
      }
      maxcode[l] = code - 1;
    }
    if (code > 1 << l) throw new ImageDecodeError(name, 'corrupt JPEG (bad Huffman table)');
    code <<= 1;
  }
  maxcode[17] = 0x7fffffff;
  if (isDC) for (const s of vals) if (s > 15) throw new ImageDecodeError(name, 'corrupt JPEG (bad DC Huffman table)');
  return { lookup, maxcode, valoffset, vals };
}

/** Entropy-coded data of one scan: bits MSB first, 0xFF00 unstuffed; a marker inside (corrupt
 *  data, or RSTn before it is expected) yields zero bits, as libjpeg inserts them. */
class BitReader {
  buf = 0;
  cnt = 0;
  constructor(
    private readonly data: Uint8Array,
    public pos: number,
    private readonly end: number,
  ) {}

  fill(): void {
    const d = this.data;
    while (this.cnt <= 24) {
      let b = 0;
      if (this.pos < this.end) {
        b = d[this.pos]!;
        if (b === 0xff) {
          if (d[this.pos + 1] === 0) this.pos += 2;
          else b = 0; // a marker: stay in front of it
        } else this.pos++;
      }
      this.buf = (this.buf << 8) | b;
      this.cnt += 8;
    }
  }

  bits(n: number): number {
    if (n === 0) return 0;
    if (this.cnt < n) this.fill();
    this.cnt -= n;
    return (this.buf >>> this.cnt) & ((1 << n) - 1);
  }

  bit(): number {
    if (this.cnt < 1) this.fill();
    this.cnt--;
    return (this.buf >>> this.cnt) & 1;
  }

  decode(t: HuffTable): number {
    if (this.cnt < 17) this.fill();
    const e = t.lookup[(this.buf >>> (this.cnt - 8)) & 0xff]!;
    if (e !== 0) {
      this.cnt -= e >> 8;
      return e & 0xff;
    }
    let l = 9;
    let code = (this.buf >>> (this.cnt - 9)) & 0x1ff;
    while (code > t.maxcode[l]!) {
      l++;
      code = (this.buf >>> (this.cnt - l)) & ((1 << l) - 1);
    }
    this.cnt -= l;
    if (l > 16) return 0; // bad code: libjpeg warns and returns 0
    return t.vals[(code + t.valoffset[l]!) & 0xff] ?? 0;
  }

  /** At a restart boundary: drop buffered bits and step over the next RSTn marker. */
  restart(): void {
    this.buf = 0;
    this.cnt = 0;
    const d = this.data;
    let p = this.pos;
    while (p + 1 < this.end && !(d[p] === 0xff && d[p + 1]! >= 0xd0 && d[p + 1]! <= 0xd7)) p++;
    if (p + 1 < this.end) this.pos = p + 2;
  }
}

const extend = (v: number, s: number): number => (v < 1 << (s - 1) ? v - (1 << s) + 1 : v);

// ---------------------------------------------------------------- IDCT (jidctint.c, jpeg_idct_islow)

const RANGE = (() => {
  // IDCT_range_limit(cinfo)[x & 1023]: x + 128 clamped to 0..255, wrapping as libjpeg's table does.
  const t = new Uint8Array(1024);
  for (let v = 0; v < 1024; v++) t[v] = v < 128 ? v + 128 : v < 512 ? 255 : v < 896 ? 0 : v - 896;
  return t;
})();
const FIX_0_298631336 = 2446;
const FIX_0_390180644 = 3196;
const FIX_0_541196100 = 4433;
const FIX_0_765366865 = 6270;
const FIX_0_899976223 = 7373;
const FIX_1_175875602 = 9633;
const FIX_1_501321110 = 12299;
const FIX_1_847759065 = 15137;
const FIX_1_961570560 = 16069;
const FIX_2_053119869 = 16819;
const FIX_2_562915447 = 20995;
const FIX_3_072711026 = 25172;
const ws = new Int32Array(64);

// DESCALE(x, n) on 64-bit JLONG values (exact in doubles below 2^53).
const d5 = (x: number): number => Math.floor((x + 16) * (1 / 32));
const d11 = (x: number): number => Math.floor((x + 1024) * (1 / 2048));
const d18 = (x: number): number => Math.floor((x + 131072) * (1 / 262144));

function idctIslow(coef: Int16Array, c0: number, q: Int32Array, out: Uint8Array, o0: number, stride: number): void {
  for (let i = 0; i < 8; i++) {
    const c = c0 + i;
    if (coef[c + 8] === 0 && coef[c + 16] === 0 && coef[c + 24] === 0 && coef[c + 32] === 0 && coef[c + 40] === 0 && coef[c + 48] === 0 && coef[c + 56] === 0) {
      const dc = coef[c]! * q[i]! * 4;
      for (let k = 0; k < 8; k++) ws[i + k * 8] = dc;
      continue;
    }
    let z2 = coef[c + 16]! * q[i + 16]!;
    let z3 = coef[c + 48]! * q[i + 48]!;
    let z1 = (z2 + z3) * FIX_0_541196100;
    let tmp2 = z1 + z3 * -FIX_1_847759065;
    let tmp3 = z1 + z2 * FIX_0_765366865;
    z2 = coef[c]! * q[i]!;
    z3 = coef[c + 32]! * q[i + 32]!;
    let tmp0 = (z2 + z3) * 8192;
    let tmp1 = (z2 - z3) * 8192;
    const tmp10 = tmp0 + tmp3;
    const tmp13 = tmp0 - tmp3;
    const tmp11 = tmp1 + tmp2;
    const tmp12 = tmp1 - tmp2;
    tmp0 = coef[c + 56]! * q[i + 56]!;
    tmp1 = coef[c + 40]! * q[i + 40]!;
    tmp2 = coef[c + 24]! * q[i + 24]!;
    tmp3 = coef[c + 8]! * q[i + 8]!;
    z1 = tmp0 + tmp3;
    z2 = tmp1 + tmp2;
    z3 = tmp0 + tmp2;
    let z4 = tmp1 + tmp3;
    const z5 = (z3 + z4) * FIX_1_175875602;
    tmp0 *= FIX_0_298631336;
    tmp1 *= FIX_2_053119869;
    tmp2 *= FIX_3_072711026;
    tmp3 *= FIX_1_501321110;
    z1 *= -FIX_0_899976223;
    z2 *= -FIX_2_562915447;
    z3 = z3 * -FIX_1_961570560 + z5;
    z4 = z4 * -FIX_0_390180644 + z5;
    tmp0 += z1 + z3;
    tmp1 += z2 + z4;
    tmp2 += z2 + z3;
    tmp3 += z1 + z4;
    ws[i] = d11(tmp10 + tmp3);
    ws[i + 56] = d11(tmp10 - tmp3);
    ws[i + 8] = d11(tmp11 + tmp2);
    ws[i + 48] = d11(tmp11 - tmp2);
    ws[i + 16] = d11(tmp12 + tmp1);
    ws[i + 40] = d11(tmp12 - tmp1);
    ws[i + 24] = d11(tmp13 + tmp0);
    ws[i + 32] = d11(tmp13 - tmp0);
  }
  for (let r = 0; r < 8; r++) {
    const w = r * 8;
    const o = o0 + r * stride;
    if (ws[w + 1] === 0 && ws[w + 2] === 0 && ws[w + 3] === 0 && ws[w + 4] === 0 && ws[w + 5] === 0 && ws[w + 6] === 0 && ws[w + 7] === 0) {
      const v = RANGE[d5(ws[w]!) & 1023]!;
      for (let k = 0; k < 8; k++) out[o + k] = v;
      continue;
    }
    let z2 = ws[w + 2]!;
    let z3 = ws[w + 6]!;
    let z1 = (z2 + z3) * FIX_0_541196100;
    let tmp2 = z1 + z3 * -FIX_1_847759065;
    let tmp3 = z1 + z2 * FIX_0_765366865;
    let tmp0 = (ws[w]! + ws[w + 4]!) * 8192;
    let tmp1 = (ws[w]! - ws[w + 4]!) * 8192;
    const tmp10 = tmp0 + tmp3;
    const tmp13 = tmp0 - tmp3;
    const tmp11 = tmp1 + tmp2;
    const tmp12 = tmp1 - tmp2;
    tmp0 = ws[w + 7]!;
    tmp1 = ws[w + 5]!;
    tmp2 = ws[w + 3]!;
    tmp3 = ws[w + 1]!;
    z1 = tmp0 + tmp3;
    z2 = tmp1 + tmp2;
    z3 = tmp0 + tmp2;
    let z4 = tmp1 + tmp3;
    const z5 = (z3 + z4) * FIX_1_175875602;
    tmp0 *= FIX_0_298631336;
    tmp1 *= FIX_2_053119869;
    tmp2 *= FIX_3_072711026;
    tmp3 *= FIX_1_501321110;
    z1 *= -FIX_0_899976223;
    z2 *= -FIX_2_562915447;
    z3 = z3 * -FIX_1_961570560 + z5;
    z4 = z4 * -FIX_0_390180644 + z5;
    tmp0 += z1 + z3;
    tmp1 += z2 + z4;
    tmp2 += z2 + z3;
    tmp3 += z1 + z4;
    out[o] = RANGE[d18(tmp10 + tmp3) & 1023]!;
    out[o + 7] = RANGE[d18(tmp10 - tmp3) & 1023]!;
    out[o + 1] = RANGE[d18(tmp11 + tmp2) & 1023]!;
    out[o + 6] = RANGE[d18(tmp11 - tmp2) & 1023]!;
    out[o + 2] = RANGE[d18(tmp12 + tmp1) & 1023]!;
    out[o + 5] = RANGE[d18(tmp12 - tmp1) & 1023]!;
    out[o + 3] = RANGE[d18(tmp13 + tmp0) & 1023]!;
    out[o + 4] = RANGE[d18(tmp13 - tmp0) & 1023]!;
  }
}

// ---------------------------------------------------------------- upsampling (jdsample.c)

type Upsampler = (c: Component, y: number, out: Uint8Array) => Uint8Array;

/** The row-`y` samples of a component at full resolution (out has room for 2·dw + 8 samples). */
function upsampler(c: Component, fx: number, fy: number): Upsampler {
  const stride = c.bw * 8;
  if (fx === 1 && fy === 1) return (comp, y) => comp.plane!.subarray(y * stride, y * stride + comp.dw);
  const fancy2 = c.dw > 2;
  if (fx === 2 && fy === 1 && fancy2) {
    // h2v1_fancy_upsample
    return (comp, y, out) => {
      const p = comp.plane!;
      const i = y * stride;
      const n = comp.dw;
      out[0] = p[i]!;
      out[1] = (p[i]! * 3 + p[i + 1]! + 2) >> 2;
      for (let x = 1; x < n - 1; x++) {
        const t = p[i + x]! * 3;
        out[2 * x] = (t + p[i + x - 1]! + 1) >> 2;
        out[2 * x + 1] = (t + p[i + x + 1]! + 2) >> 2;
      }
      out[2 * n - 2] = (p[i + n - 1]! * 3 + p[i + n - 2]! + 1) >> 2;
      out[2 * n - 1] = p[i + n - 1]!;
      return out;
    };
  }
  if (fx === 1 && fy === 2) {
    // h1v2_fancy_upsample: the nearer row ×3 plus the next nearer, bias 1 above, 2 below.
    return (comp, y, out) => {
      const p = comp.plane!;
      const r = y >> 1;
      const below = y & 1;
      const nr = below ? Math.min(r + 1, comp.dh - 1) : Math.max(r - 1, 0);
      const i0 = r * stride;
      const i1 = nr * stride;
      const bias = below ? 2 : 1;
      for (let x = 0; x < comp.dw; x++) out[x] = (p[i0 + x]! * 3 + p[i1 + x]! + bias) >> 2;
      return out;
    };
  }
  if (fx === 2 && fy === 2 && fancy2) {
    // h2v2_fancy_upsample
    return (comp, y, out) => {
      const p = comp.plane!;
      const r = y >> 1;
      const below = y & 1;
      const nr = below ? Math.min(r + 1, comp.dh - 1) : Math.max(r - 1, 0);
      const i0 = r * stride;
      const i1 = nr * stride;
      const n = comp.dw;
      let thiscol = p[i0]! * 3 + p[i1]!;
      let nextcol = p[i0 + 1]! * 3 + p[i1 + 1]!;
      out[0] = (thiscol * 4 + 8) >> 4;
      out[1] = (thiscol * 3 + nextcol + 7) >> 4;
      let lastcol = thiscol;
      thiscol = nextcol;
      for (let x = 1; x < n - 1; x++) {
        nextcol = p[i0 + x + 1]! * 3 + p[i1 + x + 1]!;
        out[2 * x] = (thiscol * 3 + lastcol + 8) >> 4;
        out[2 * x + 1] = (thiscol * 3 + nextcol + 7) >> 4;
        lastcol = thiscol;
        thiscol = nextcol;
      }
      out[2 * n - 2] = (thiscol * 3 + lastcol + 8) >> 4;
      out[2 * n - 1] = (thiscol * 4 + 7) >> 4;
      return out;
    };
  }
  // int_upsample (and h2v1/h2v2_upsample for narrow planes): replication.
  return (comp, y, out) => {
    const p = comp.plane!;
    const i = Math.floor(y / fy) * stride;
    const n = comp.dw * fx;
    for (let x = 0; x < n; x++) out[x] = p[i + Math.floor(x / fx)]!;
    return out;
  };
}

// ---------------------------------------------------------------- colour (jdcolor.c)

const CR_R = new Int32Array(256);
const CB_B = new Int32Array(256);
const CR_G = new Int32Array(256);
const CB_G = new Int32Array(256);
{
  const FIX = (x: number) => Math.floor(x * 65536 + 0.5);
  for (let i = 0; i < 256; i++) {
    const x = i - 128;
    CR_R[i] = (FIX(1.402) * x + 32768) >> 16;
    CB_B[i] = (FIX(1.772) * x + 32768) >> 16;
    CR_G[i] = -FIX(0.71414) * x;
    CB_G[i] = -FIX(0.34414) * x + 32768;
  }
}
const clamp8 = (v: number): number => (v < 0 ? 0 : v > 255 ? 255 : v);

// ---------------------------------------------------------------- decoding

interface Frame {
  progressive: boolean;
  width: number;
  height: number;
  comps: Component[];
  hmax: number;
  vmax: number;
  mcusX: number;
  mcusY: number;
}

export function decodeJpeg(name: string, bytes: Uint8Array, limits: Limits): StoredImage {
  const fail = (problem: string): never => {
    throw new ImageDecodeError(name, problem);
  };
  if (bytes.length < 4 || bytes[0] !== 0xff || bytes[1] !== 0xd8) fail('not a JPEG file (no SOI marker)');
  const qt: (Int32Array | null)[] = [null, null, null, null];
  const dcT: (HuffTable | null)[] = [null, null, null, null];
  const acT: (HuffTable | null)[] = [null, null, null, null];
  let frame: Frame | null = null;
  let restart = 0;
  let jfif = false;
  let adobe = false;
  let adobeTransform = -1;
  let exif: Uint8Array | null = null;
  const scans: Scan[] = [];
  let p = 2;
  let sawEOI = false;
  for (;;) {
    // Find the next marker: libjpeg skips stray bytes and any number of 0xFF fill bytes.
    while (p < bytes.length && bytes[p] !== 0xff) p++;
    while (p < bytes.length && bytes[p] === 0xff) p++;
    if (p >= bytes.length) break;
    const marker = bytes[p++]!;
    if (marker === 0) continue; // FF 00 outside a scan: garbage
    if (marker === 0xd9) {
      sawEOI = true;
      break;
    }
    if ((marker >= 0xd0 && marker <= 0xd7) || marker === 0x01) continue;
    if (marker === 0xd8) fail('corrupt JPEG (two SOI markers)');
    if (p + 2 > bytes.length) break;
    const len = (bytes[p]! << 8) | bytes[p + 1]!;
    if (len < 2) fail(`corrupt JPEG (marker 0x${marker.toString(16)} has length ${len})`);
    const s = p + 2;
    const e = p + len;
    if (e > bytes.length) fail(`truncated JPEG (marker 0x${marker.toString(16)} runs past the end of the file)`);
    const seg = bytes.subarray(s, e);
    p = e;
    if (SOF_NAMES[marker]) fail(`unsupported JPEG coding: ${SOF_NAMES[marker]}`);
    switch (marker) {
      case 0xc0:
      case 0xc1:
      case 0xc2: {
        if (frame) fail('corrupt JPEG (two frame headers)');
        if (seg.length < 6) fail('corrupt JPEG (short frame header)');
        const precision = seg[0]!;
        if (precision !== 8) fail(`unsupported JPEG: ${precision}-bit samples (only 8-bit JPEGs are supported)`);
        const height = (seg[1]! << 8) | seg[2]!;
        const width = (seg[3]! << 8) | seg[4]!;
        const n = seg[5]!;
        if (seg.length !== 6 + 3 * n) fail('corrupt JPEG (frame header length does not match its components)');
        if (height === 0) fail('unsupported JPEG (height 0, defined by a DNL marker)');
        if (n !== 1 && n !== 3 && n !== 4) fail(`unsupported JPEG: ${n} components (PIL reads 1, 3 or 4)`);
        checkSize(name, width, height, limits);
        const comps: Component[] = [];
        for (let i = 0; i < n; i++) {
          const id = seg[6 + i * 3]!;
          const h = seg[7 + i * 3]! >> 4;
          const v = seg[7 + i * 3]! & 15;
          const tq = seg[8 + i * 3]!;
          if (h < 1 || h > 4 || v < 1 || v > 4) fail(`corrupt JPEG (sampling factors ${h}×${v})`);
          if (tq > 3) fail(`corrupt JPEG (quantisation table ${tq})`);
          comps.push({ id, h, v, tq, dw: 0, dh: 0, bw: 0, bh: 0, quant: null, coefs: null, plane: null, pred: 0 });
        }
        const hmax = Math.max(...comps.map((c) => c.h));
        const vmax = Math.max(...comps.map((c) => c.v));
        for (const c of comps) {
          if (hmax % c.h || vmax % c.v) fail(`unsupported JPEG: fractional chroma sampling (${comps.map((k) => `${k.h}x${k.v}`).join(',')})`);
          c.dw = Math.ceil((width * c.h) / hmax);
          c.dh = Math.ceil((height * c.v) / vmax);
          c.bw = Math.ceil(c.dw / 8);
          c.bh = Math.ceil(c.dh / 8);
        }
        frame = { progressive: marker === 0xc2, width, height, comps, hmax, vmax, mcusX: Math.ceil(width / (8 * hmax)), mcusY: Math.ceil(height / (8 * vmax)) };
        break;
      }
      case 0xc4: {
        let q = 0;
        while (q < seg.length) {
          if (q + 17 > seg.length) fail('corrupt JPEG (short Huffman table)');
          const tc = seg[q]! >> 4;
          const th = seg[q]! & 15;
          if (tc > 1 || th > 3) fail('corrupt JPEG (bad Huffman table id)');
          const counts = seg.subarray(q + 1, q + 17);
          let total = 0;
          for (const c of counts) total += c;
          if (total > 256 || q + 17 + total > seg.length) fail('corrupt JPEG (bad Huffman table)');
          const t = buildHuff(name, counts, seg.slice(q + 17, q + 17 + total), tc === 0);
          (tc === 0 ? dcT : acT)[th] = t;
          q += 17 + total;
        }
        break;
      }
      case 0xdb: {
        let q = 0;
        while (q < seg.length) {
          const pq = seg[q]! >> 4;
          const tq = seg[q]! & 15;
          const size = pq ? 128 : 64;
          if (pq > 1 || tq > 3 || q + 1 + size > seg.length) fail('corrupt JPEG (bad quantisation table)');
          const t = new Int32Array(64);
          for (let k = 0; k < 64; k++) t[NATURAL[k]!] = pq ? (seg[q + 1 + 2 * k]! << 8) | seg[q + 2 + 2 * k]! : seg[q + 1 + k]!;
          qt[tq] = t;
          q += 1 + size;
        }
        break;
      }
      case 0xdd:
        if (seg.length !== 2) fail('corrupt JPEG (bad DRI length)');
        restart = (seg[0]! << 8) | seg[1]!;
        break;
      case 0xda: {
        if (!frame) fail('corrupt JPEG (scan before the frame header)');
        const f = frame!;
        const n = seg[0] ?? 0;
        if (n < 1 || n > 4 || seg.length !== 4 + 2 * n) fail('corrupt JPEG (bad scan header)');
        const comps: Component[] = [];
        const dc: (HuffTable | null)[] = [];
        const ac: (HuffTable | null)[] = [];
        for (let i = 0; i < n; i++) {
          const c = f.comps.find((k) => k.id === seg[1 + i * 2]);
          if (!c || comps.includes(c)) fail(`corrupt JPEG (scan names component ${seg[1 + i * 2]})`);
          comps.push(c!);
          dc.push(dcT[seg[2 + i * 2]! >> 4] ?? null);
          ac.push(acT[seg[2 + i * 2]! & 15] ?? null);
        }
        let ss = seg[1 + 2 * n]!;
        let se = seg[2 + 2 * n]!;
        let ah = seg[3 + 2 * n]! >> 4;
        let al = seg[3 + 2 * n]! & 15;
        if (f.progressive) {
          const bad = ss === 0 ? se !== 0 : se < ss || se > 63 || n !== 1;
          if (bad || ah > 13 || al > 13 || (ah !== 0 && al !== ah - 1)) fail(`corrupt JPEG (invalid progressive scan parameters Ss=${ss} Se=${se} Ah=${ah} Al=${al})`);
        } else {
          ss = 0;
          se = 63;
          ah = 0;
          al = 0;
        }
        let blocksPerMcu = 0;
        for (const c of comps) blocksPerMcu += c.h * c.v;
        if (n > 1 && blocksPerMcu > 10) fail('corrupt JPEG (sampling factors too large for an interleaved scan)');
        // Tables this scan uses must exist now (quantisation tables are latched at a component's first scan).
        for (let i = 0; i < n; i++) {
          const c = comps[i]!;
          if (!c.quant) {
            const t = qt[c.tq];
            if (!t) fail(`corrupt JPEG (quantisation table ${c.tq} is not defined)`);
            c.quant = t!.slice();
          }
          const needDC = ss === 0 && ah === 0;
          const needAC = !f.progressive || ss > 0;
          if ((needDC && !dc[i]) || (needAC && !ac[i])) fail('corrupt JPEG (scan uses an undefined Huffman table)');
        }
        // The entropy-coded data runs to the next marker other than RSTn.
        let q = e;
        for (;;) {
          q = bytes.indexOf(0xff, q);
          if (q < 0 || q + 1 >= bytes.length) {
            q = bytes.length;
            break;
          }
          const nb = bytes[q + 1]!;
          if (nb === 0 || (nb >= 0xd0 && nb <= 0xd7)) q += 2;
          else break;
        }
        const blocks = n === 1 ? comps[0]!.bw * comps[0]!.bh : f.mcusX * f.mcusY * blocksPerMcu;
        scans.push({ comps, dc, ac, ss, se, ah, al, start: e, end: q, restart, blocks });
        p = q;
        break;
      }
      case 0xe0:
        if (seg.length >= 14 && seg[0] === 0x4a && seg[1] === 0x46 && seg[2] === 0x49 && seg[3] === 0x46 && seg[4] === 0) jfif = true;
        break;
      case 0xe1:
        if (!exif && seg.length >= 6 && seg[0] === 0x45 && seg[1] === 0x78 && seg[2] === 0x69 && seg[3] === 0x66 && seg[4] === 0 && seg[5] === 0) exif = seg;
        break;
      case 0xee:
        if (seg.length >= 12 && seg[0] === 0x41 && seg[1] === 0x64 && seg[2] === 0x6f && seg[3] === 0x62 && seg[4] === 0x65) {
          adobe = true;
          adobeTransform = seg[11]!;
        }
        break;
      default:
        if (marker >= 0x02 && marker <= 0xbf) fail(`corrupt JPEG (unknown marker 0x${marker.toString(16)})`);
        // APPn, COM, DNL, DAC, JPGn: skipped.
        break;
    }
  }
  if (!frame) fail(sawEOI ? 'corrupt JPEG (no frame header)' : 'truncated JPEG (no frame header)');
  const f = frame!;
  if (scans.length === 0) fail('truncated JPEG (no scan)');
  if (!sawEOI) fail('truncated JPEG (no end-of-image marker)');

  // Enough data for every scan, every component coded, bounded work; then allocate.
  let totalBlocks = 0;
  for (const c of f.comps) totalBlocks += c.bw * c.bh;
  let visits = 0;
  scans.forEach((sc, i) => {
    const dcScan = sc.ss === 0;
    const minBits = !f.progressive ? 2 * sc.blocks : dcScan ? sc.blocks : Math.ceil(sc.blocks / 32767);
    if ((sc.end - sc.start) * 8 < minBits) {
      fail(`truncated or corrupt JPEG: scan ${i + 1} has ${sc.end - sc.start} bytes of data, too few for its ${sc.blocks} blocks (${f.width}×${f.height} image)`);
    }
    visits += sc.blocks;
  });
  if (visits > MAX_SCAN_VISITS_PER_BLOCK * totalBlocks) fail(`unsupported JPEG: ${scans.length} scans (more than ${MAX_SCAN_VISITS_PER_BLOCK} passes over the image)`);
  for (const c of f.comps) {
    const coded = scans.some((sc) => sc.comps.includes(c) && sc.ss === 0 && sc.ah === 0);
    if (!coded) fail(`truncated JPEG (component ${c.id} is never coded)`);
  }
  const direct = !f.progressive && scans.length === 1 && scans[0]!.comps.length === f.comps.length;
  for (const c of f.comps) {
    c.plane = new Uint8Array(c.bw * 8 * c.bh * 8);
    if (!direct) c.coefs = new Int16Array(c.bw * c.bh * 64);
  }

  const block = new Int16Array(64);
  for (const sc of scans) decodeScan(bytes, f, sc, direct, block);
  if (!direct) {
    for (const c of f.comps) {
      const stride = c.bw * 8;
      for (let r = 0; r < c.bh; r++) for (let k = 0; k < c.bw; k++) idctIslow(c.coefs!, (r * c.bw + k) * 64, c.quant!, c.plane!, r * 8 * stride + k * 8, stride);
      c.coefs = null;
    }
  }

  // Colour space (jdapimin.c default_decompress_parms), then upsampling and conversion row by row.
  const { width: w, height: h, comps } = f;
  const n = comps.length;
  const ups = comps.map((c) => upsampler(c, f.hmax / c.h, f.vmax / c.v));
  const rows = comps.map(() => new Uint8Array(2 * w + 16));
  const orientation = exif ? exifOrientation(exif) : null;
  const base = { format: 'jpeg' as const, width: w, height: h, orientation: orientation !== null && orientation >= 1 && orientation <= 8 ? orientation : 1 };
  if (n === 1) {
    const data = new Uint8Array(w * h);
    for (let y = 0; y < h; y++) data.set(ups[0]!(comps[0]!, y, rows[0]!).subarray(0, w), y * w);
    return { ...base, mode: 'L', channels: 1, data };
  }
  if (n === 3) {
    let ycc = true;
    if (!jfif && adobe) ycc = adobeTransform !== 0;
    else if (!jfif && comps[0]!.id === 82 && comps[1]!.id === 71 && comps[2]!.id === 66) ycc = false;
    const data = new Uint8Array(w * h * 3);
    for (let y = 0; y < h; y++) {
      const a = ups[0]!(comps[0]!, y, rows[0]!);
      const b = ups[1]!(comps[1]!, y, rows[1]!);
      const c = ups[2]!(comps[2]!, y, rows[2]!);
      let o = y * w * 3;
      if (ycc) {
        for (let x = 0; x < w; x++, o += 3) {
          const Y = a[x]!;
          const cb = b[x]!;
          const cr = c[x]!;
          data[o] = clamp8(Y + CR_R[cr]!);
          data[o + 1] = clamp8(Y + ((CB_G[cb]! + CR_G[cr]!) >> 16));
          data[o + 2] = clamp8(Y + CB_B[cb]!);
        }
      } else {
        for (let x = 0; x < w; x++, o += 3) {
          data[o] = a[x]!;
          data[o + 1] = b[x]!;
          data[o + 2] = c[x]!;
        }
      }
    }
    return { ...base, mode: 'RGB', channels: 3, data };
  }
  // Four components: CMYK, or YCCK with an Adobe transform 2 (or other non-zero); PIL takes the
  // result as Adobe-inverted CMYK ("CMYK;I").
  const ycck = adobe && adobeTransform !== 0;
  const data = new Uint8Array(w * h * 4);
  for (let y = 0; y < h; y++) {
    const a = ups[0]!(comps[0]!, y, rows[0]!);
    const b = ups[1]!(comps[1]!, y, rows[1]!);
    const c = ups[2]!(comps[2]!, y, rows[2]!);
    const k = ups[3]!(comps[3]!, y, rows[3]!);
    let o = y * w * 4;
    for (let x = 0; x < w; x++, o += 4) {
      if (ycck) {
        const Y = a[x]!;
        const cb = b[x]!;
        const cr = c[x]!;
        data[o] = 255 - clamp8(255 - (Y + CR_R[cr]!));
        data[o + 1] = 255 - clamp8(255 - (Y + ((CB_G[cb]! + CR_G[cr]!) >> 16)));
        data[o + 2] = 255 - clamp8(255 - (Y + CB_B[cb]!));
      } else {
        data[o] = 255 - a[x]!;
        data[o + 1] = 255 - b[x]!;
        data[o + 2] = 255 - c[x]!;
      }
      data[o + 3] = 255 - k[x]!;
    }
  }
  return { ...base, mode: 'CMYK', channels: 4, data };
}

function decodeScan(bytes: Uint8Array, f: Frame, sc: Scan, direct: boolean, block: Int16Array): void {
  const rd = new BitReader(bytes, sc.start, sc.end);
  const n = sc.comps.length;
  for (const c of sc.comps) c.pred = 0;
  let eobrun = 0;
  const { ss, se, ah, al } = sc;
  const progressive = f.progressive;
  const single = n === 1;
  const mcus = single ? sc.comps[0]!.bw * sc.comps[0]!.bh : f.mcusX * f.mcusY;
  const p1 = 1 << al;
  const m1 = -1 << al;

  // One block: coefficients at coefs[o..o+63].
  const decodeBlock = (ci: number, coefs: Int16Array, o: number): void => {
    const c = sc.comps[ci]!;
    if (!progressive) {
      let s = rd.decode(sc.dc[ci]!);
      if (s) s = extend(rd.bits(s), s);
      c.pred += s;
      coefs[o] = c.pred;
      const act = sc.ac[ci]!;
      for (let k = 1; k < 64; k++) {
        const rs = rd.decode(act);
        const r = rs >> 4;
        s = rs & 15;
        if (s) {
          k += r;
          coefs[o + NATURAL[k]!] = extend(rd.bits(s), s);
        } else {
          if (r !== 15) break;
          k += 15;
        }
      }
      return;
    }
    if (ss === 0) {
      if (ah === 0) {
        let s = rd.decode(sc.dc[ci]!);
        if (s) s = extend(rd.bits(s), s);
        c.pred += s;
        coefs[o] = c.pred * p1;
      } else if (rd.bit()) coefs[o] = coefs[o]! | p1;
      return;
    }
    const act = sc.ac[ci]!;
    if (ah === 0) {
      if (eobrun > 0) {
        eobrun--;
        return;
      }
      for (let k = ss; k <= se; k++) {
        const rs = rd.decode(act);
        const r = rs >> 4;
        const s = rs & 15;
        if (s) {
          k += r;
          coefs[o + NATURAL[k]!] = extend(rd.bits(s), s) * p1;
        } else if (r === 15) k += 15;
        else {
          eobrun = (1 << r) - 1;
          if (r) eobrun += rd.bits(r);
          break;
        }
      }
      return;
    }
    // AC refinement (jdphuff.c decode_mcu_AC_refine).
    let k = ss;
    if (eobrun === 0) {
      for (; k <= se; k++) {
        const rs = rd.decode(act);
        let r = rs >> 4;
        let s = rs & 15;
        if (s) {
          s = rd.bit() ? p1 : m1;
        } else if (r !== 15) {
          eobrun = 1 << r;
          if (r) eobrun += rd.bits(r);
          break;
        }
        do {
          const z = o + NATURAL[k]!;
          const v = coefs[z]!;
          if (v !== 0) {
            if (rd.bit() && (v & p1) === 0) coefs[z] = v >= 0 ? v + p1 : v + m1;
          } else if (--r < 0) break;
          k++;
        } while (k <= se);
        if (s) coefs[o + NATURAL[k]!] = s;
      }
    }
    if (eobrun > 0) {
      for (; k <= se; k++) {
        const z = o + NATURAL[k]!;
        const v = coefs[z]!;
        if (v !== 0 && rd.bit() && (v & p1) === 0) coefs[z] = v >= 0 ? v + p1 : v + m1;
      }
      eobrun--;
    }
  };

  for (let m = 0; m < mcus; m++) {
    if (sc.restart && m > 0 && m % sc.restart === 0) {
      rd.restart();
      for (const c of sc.comps) c.pred = 0;
      eobrun = 0;
    }
    if (single) {
      const c = sc.comps[0]!;
      const br = Math.floor(m / c.bw);
      const bc = m - br * c.bw;
      if (direct) {
        block.fill(0);
        decodeBlock(0, block, 0);
        idctIslow(block, 0, c.quant!, c.plane!, br * 8 * c.bw * 8 + bc * 8, c.bw * 8);
      } else decodeBlock(0, c.coefs!, (br * c.bw + bc) * 64);
      continue;
    }
    const my = Math.floor(m / f.mcusX);
    const mx = m - my * f.mcusX;
    for (let ci = 0; ci < n; ci++) {
      const c = sc.comps[ci]!;
      for (let v = 0; v < c.v; v++) {
        for (let hh = 0; hh < c.h; hh++) {
          const br = my * c.v + v;
          const bc = mx * c.h + hh;
          const inside = br < c.bh && bc < c.bw; // MCU padding blocks are decoded and dropped
          if (direct) {
            block.fill(0);
            decodeBlock(ci, block, 0);
            if (inside) idctIslow(block, 0, c.quant!, c.plane!, br * 8 * c.bw * 8 + bc * 8, c.bw * 8);
          } else if (inside) decodeBlock(ci, c.coefs!, (br * c.bw + bc) * 64);
          else {
            block.fill(0);
            decodeBlock(ci, block, 0);
          }
        }
      }
    }
  }
}
