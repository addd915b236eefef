// BMP decoding as Pillow 9.4's BmpImagePlugin reads files: OS/2 (12-byte) and Windows (40, 64,
// 108, 124-byte) headers; 1/4/8-bit palettes (a palette that is the gray ramp gives mode L or 1),
// 16-bit (5-5-5, or 5-6-5 by bitfields), 24-bit, 32-bit (BGRX, or the bitfield layouts PIL
// knows, alpha dropped later), RLE8 and RLE4 (its decoder's quirks included).

import { ImageDecodeError } from './errors.js';
import { checkSize, type Limits } from './limits.js';
import { pilPalette, type PilMode, type StoredImage } from './pixels.js';

/** 32-bit bitfield masks (R, G, B, A) → byte order of a pixel (index of R, G, B, A; −1 none). */
const MASKS_32: [number[], number[]][] = [
  [[0xff0000, 0xff00, 0xff, 0], [2, 1, 0, -1]], // BGRX
  [[0xff000000, 0xff0000, 0xff00, 0], [3, 2, 1, -1]], // XBGR
  [[0xff000000, 0xff0000, 0xff00, 0xff], [3, 2, 1, 0]], // ABGR
  [[0xff, 0xff00, 0xff0000, 0xff000000], [0, 1, 2, 3]], // RGBA
  [[0xff0000, 0xff00, 0xff, 0xff000000], [2, 1, 0, 3]], // BGRA
  [[0, 0, 0, 0], [2, 1, 0, 3]], // BGRA
];

export function decodeBmp(name: string, bytes: Uint8Array, limits: Limits): StoredImage {
  const fail = (problem: string): never => {
    throw new ImageDecodeError(name, problem);
  };
  if (bytes.length < 18) fail('truncated BMP header');
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let offset = dv.getUint32(10, true);
  const headerSize = dv.getUint32(14, true);
  if (![12, 40, 64, 108, 124].includes(headerSize)) fail(`unsupported BMP header type (${headerSize} bytes)`);
  if (bytes.length < 14 + headerSize) fail('truncated BMP header');
  let width: number;
  let height: number;
  let bits: number;
  let compression = 0;
  let colors = 0;
  let padding: number;
  let topDown = false;
  let pos = 14 + headerSize; // where the palette (or 40-byte header's masks) starts
  let masks: number[] | null = null;
  if (headerSize === 12) {
    width = dv.getUint16(18, true);
    height = dv.getUint16(20, true);
    bits = dv.getUint16(24, true);
    padding = 3;
  } else {
    topDown = bytes[25] === 0xff;
    width = dv.getUint32(18, true);
    height = topDown ? 2 ** 32 - dv.getUint32(22, true) : dv.getUint32(22, true);
    bits = dv.getUint16(28, true);
    compression = dv.getUint32(30, true);
    colors = dv.getUint32(46, true);
    padding = 4;
    if (compression === 3) {
      if (headerSize >= 52) masks = [0, 1, 2, 3].map((i) => dv.getUint32(54 + i * 4, true));
      else {
        if (bytes.length < pos + 12) fail('truncated BMP header (bitfield masks)');
        masks = [0, 1, 2].map((i) => dv.getUint32(pos + i * 4, true)).concat([0]);
        pos += 12;
      }
    }
  }
  if (colors === 0) colors = 2 ** bits;
  if (offset === 14 + headerSize && bits <= 8) offset += 4 * colors;
  if (![1, 4, 8, 16, 24, 32].includes(bits)) fail(`unsupported BMP pixel depth (${bits})`);
  checkSize(name, width, height, limits);

  // Pixel layout: bytes of R, G, B (and A) within a pixel, or a packed 16-bit format.
  let mode: PilMode = bits <= 8 ? 'P' : 'RGB';
  let order = [2, 1, 0, -1]; // BGR(X)
  let packed16: 555 | 565 = 555;
  let rle = false;
  if (compression === 3) {
    const m = masks!;
    const same = (a: number[], n: number) => a.slice(0, n).every((v, i) => v === m[i]);
    if (bits === 32) {
      const hit = MASKS_32.find(([mm]) => same(mm, 4));
      if (!hit) fail('unsupported BMP bitfields layout');
      order = hit![1];
      if (order[3]! >= 0) mode = 'RGBA';
    } else if (bits === 24 && same([0xff0000, 0xff00, 0xff], 3)) order = [2, 1, 0, -1];
    else if (bits === 16 && same([0xf800, 0x7e0, 0x1f], 3)) packed16 = 565;
    else if (bits === 16 && same([0x7c00, 0x3e0, 0x1f], 3)) packed16 = 555;
    else fail('unsupported BMP bitfields layout');
  } else if (compression === 1 || compression === 2) {
    if (bits > 8) fail(`unsupported BMP: RLE compression of ${bits}-bit pixels`);
    rle = true;
  }
  else if (compression !== 0) fail(`unsupported BMP compression (method ${compression})`);

  let palette: Uint8Array | null = null;
  if (mode === 'P') {
    if (!(colors > 0 && colors <= 65536)) fail(`unsupported BMP palette size (${colors})`);
    const raw = bytes.subarray(pos, Math.min(bytes.length, pos + padding * colors));
    const entries = Math.min(256, Math.floor((raw.length + padding - 3) / padding));
    const rgb = new Uint8Array(entries * 3);
    for (let i = 0; i < entries; i++) {
      rgb[i * 3] = raw[i * padding + 2]!;
      rgb[i * 3 + 1] = raw[i * padding + 1]!;
      rgb[i * 3 + 2] = raw[i * padding]!;
    }
    // A palette equal to the gray ramp (black and white for two colours) makes PIL drop it.
    let gray = raw.length >= (colors - 1) * padding + 3 && colors <= 256;
    for (let i = 0; gray && i < colors; i++) {
      const v = colors === 2 ? i * 255 : i;
      gray = raw[i * padding] === v && raw[i * padding + 1] === v && raw[i * padding + 2] === v;
    }
    if (gray) mode = colors === 2 ? '1' : 'L';
    else palette = pilPalette(rgb, entries);
  }

  const n = width * height;
  const ch = mode === 'RGBA' ? 4 : mode === 'RGB' ? 3 : 1;
  if (rle) return { ...decodeRle(name, bytes, offset, width, height, compression === 2, topDown, mode, palette), orientation: 1 };
  const stride = Math.floor((width * bits + 31) / 32) * 4;
  const rowBytes = Math.ceil((width * bits) / 8);
  const need = offset + stride * (height - 1) + rowBytes;
  if (need > bytes.length) fail(`truncated BMP data (needs ${need} bytes, file has ${bytes.length})`);
  const data = new Uint8Array(n * ch);
  for (let y = 0; y < height; y++) {
    const row = offset + (topDown ? y : height - 1 - y) * stride;
    let d = y * width * ch;
    if (bits <= 8) {
      const mask = (1 << bits) - 1;
      for (let x = 0; x < width; x++) {
        const bit = x * bits;
        const v = (bytes[row + (bit >> 3)]! >> (8 - bits - (bit & 7))) & mask;
        data[d++] = mode === '1' ? (v ? 1 : 0) : v;
      }
    } else if (bits === 16) {
      // Unpack.c BGR;15 / BGR;16: v·255/31 (/63) in integers.
      for (let x = 0; x < width; x++, d += 3) {
        const v = bytes[row + 2 * x]! | (bytes[row + 2 * x + 1]! << 8);
        if (packed16 === 565) {
          data[d] = Math.floor((((v >> 11) & 31) * 255) / 31);
          data[d + 1] = Math.floor((((v >> 5) & 63) * 255) / 63);
        } else {
          data[d] = Math.floor((((v >> 10) & 31) * 255) / 31);
          data[d + 1] = Math.floor((((v >> 5) & 31) * 255) / 31);
        }
        data[d + 2] = Math.floor(((v & 31) * 255) / 31);
      }
    } else {
      const bpp = bits / 8;
      for (let x = 0; x < width; x++, d += ch) {
        const s = row + x * bpp;
        data[d] = bytes[s + order[0]!]!;
        data[d + 1] = bytes[s + order[1]!]!;
        data[d + 2] = bytes[s + order[2]!]!;
        if (ch === 4) data[d + 3] = bytes[s + order[3]!]!;
      }
    }
  }
  const img: StoredImage = { format: 'bmp', mode, width, height, channels: ch, data, orientation: 1 };
  if (palette) img.palette = palette;
  return img;
}

/** BmpRleDecoder.decode, ported with its behaviour: runs clipped at the row end, absolute runs not,
 *  end-of-line pads with index 0, deltas append zeros, word alignment by file position. A first
 *  pass only counts, so that nothing is allocated for data that cannot fill the image. */
function decodeRle(name: string, bytes: Uint8Array, offset: number, w: number, h: number, rle4: boolean, topDown: boolean, mode: PilMode, palette: Uint8Array | null): Omit<StoredImage, 'orientation'> {
  const total = w * h;
  const run = (out: Uint8Array | null): number => {
    let len = 0;
    let x = 0;
    let p = offset;
    // `out` starts zeroed: padding and deltas only move `len`.
    const put = (v: number) => {
      if (out && len < total) out[len] = v;
      len++;
    };
    while (len < total) {
      if (p + 2 > bytes.length) break;
      let count = bytes[p]!;
      const b = bytes[p + 1]!;
      p += 2;
      if (count) {
        if (x + count > w) count = Math.max(0, w - x);
        if (out) for (let i = 0; i < count; i++) put(rle4 ? (i % 2 === 0 ? b >> 4 : b & 15) : b);
        else len += count;
        x += count;
      } else if (b === 0) {
        if (len % w) len += w - (len % w);
        x = 0;
      } else if (b === 1) break;
      else if (b === 2) {
        if (p + 2 > bytes.length) break;
        len += bytes[p]! + bytes[p + 1]! * w;
        p += 2;
        x = len % w;
      } else {
        const byteCount = rle4 ? b >> 1 : b;
        const got = Math.min(byteCount, bytes.length - p);
        if (rle4) {
          if (out) for (let i = 0; i < got; i++) {
            put(bytes[p + i]! >> 4);
            put(bytes[p + i]! & 15);
          }
          else len += 2 * got;
        } else if (out) for (let i = 0; i < got; i++) put(bytes[p + i]!);
        else len += got;
        p += got;
        if (got < byteCount) break;
        x += b;
        if (p % 2 !== 0) p++;
      }
    }
    return len;
  };
  if (run(null) < total) throw new ImageDecodeError(name, `truncated BMP data (RLE data ends before the ${w}×${h} image is complete)`);
  const lin = new Uint8Array(total);
  run(lin);
  // The decoded rows run bottom-up unless the header says top-down.
  const data = new Uint8Array(total);
  for (let y = 0; y < h; y++) data.set(lin.subarray((topDown ? y : h - 1 - y) * w, (topDown ? y : h - 1 - y) * w + w), y * w);
  const img: Omit<StoredImage, 'orientation'> = { format: 'bmp', mode: mode === '1' ? 'P' : mode, width: w, height: h, channels: 1, data };
  if (mode === '1') img.palette = pilPalette(new Uint8Array([0, 0, 0, 255, 255, 255]), 2);
  else if (palette) img.palette = palette;
  return img;
}
