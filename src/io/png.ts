// PNG decoding to the samples PIL 9.4 holds after Image.open, with its mode choices:
//   gray 1-bit → "1" (0/1); gray 2/4-bit → "L" scaled to 0–255 (×85, ×17); gray 8 → "L";
//   gray 16 → "I" (0–65535); gray+alpha 8 → "LA", 16 → "RGBA" (L, L, L, A); RGB/RGBA 16 → high
//   bytes; palette 1/2/4/8 → "P" (indices; a missing PLTE entry i is gray i, i, i).
// Chunk CRCs are checked before the image data (as PIL does), not after. The image data is
// inflated into a buffer of exactly the size the header implies, after checking that the
// compressed bytes present can expand that far at all (deflate's limit is 1032:1).

import { ImageDecodeError } from './errors.js';
import { exifOrientation } from './exif.js';
import { InflateError, inflateZlib } from './inflate.js';
import { checkSize, type Limits } from './limits.js';
import { pilPalette, type PilMode, type StoredImage } from './pixels.js';

const MAX_DEFLATE_RATIO = 1032;
/** PIL's MAX_TEXT_CHUNK: compressed text is inflated to at most this many bytes. */
const MAX_TEXT = 1 << 20;
const ADAM7: [number, number, number, number][] = [
  [0, 0, 8, 8],
  [4, 0, 8, 8],
  [0, 4, 4, 8],
  [2, 0, 4, 4],
  [0, 2, 2, 4],
  [1, 0, 2, 2],
  [0, 1, 1, 2],
];
const CHANNELS: Record<number, number> = { 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 };
const DEPTHS: Record<number, number[]> = { 0: [1, 2, 4, 8, 16], 2: [8, 16], 3: [1, 2, 4, 8], 4: [8, 16], 6: [8, 16] };

let crcTable: Int32Array | null = null;
/** The CRC-32 of PNG chunks over bytes[start, end). */
export function crc32(bytes: Uint8Array, start = 0, end = bytes.length): number {
  if (!crcTable) {
    crcTable = new Int32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c;
    }
  }
  let c = -1;
  for (let i = start; i < end; i++) c = crcTable[(c ^ bytes[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ -1) >>> 0;
}

const u32 = (b: Uint8Array, p: number) => ((b[p]! << 24) | (b[p + 1]! << 16) | (b[p + 2]! << 8) | b[p + 3]!) >>> 0;

interface Pass {
  x0: number;
  y0: number;
  dx: number;
  dy: number;
  w: number;
  h: number;
}

function passes(w: number, h: number, interlaced: boolean): Pass[] {
  if (!interlaced) return [{ x0: 0, y0: 0, dx: 1, dy: 1, w, h }];
  return ADAM7.map(([x0, y0, dx, dy]) => ({ x0, y0, dx, dy, w: Math.ceil((w - x0) / dx), h: Math.ceil((h - y0) / dy) })).filter((p) => p.w > 0 && p.h > 0);
}

/** Text chunk (tEXt, zTXt, iTXt) payload as a latin-1 string, null if unreadable. */
function textValue(type: string, data: Uint8Array, keyLength: number): string | null {
  let body = data.subarray(keyLength + 1);
  let compressed = false;
  if (type === 'zTXt') {
    if (body[0] !== 0) return null;
    body = body.subarray(1);
    compressed = true;
  } else if (type === 'iTXt') {
    if (body.length < 2) return null;
    compressed = body[0] === 1;
    if (compressed && body[1] !== 0) return null;
    let q = 2;
    for (let k = 0; k < 2; k++) {
      const z = body.indexOf(0, q);
      if (z < 0) return null;
      q = z + 1;
    }
    body = body.subarray(q);
  }
  if (compressed) {
    try {
      body = inflateZlib(body, MAX_TEXT, false).data;
    } catch {
      return null;
    }
  }
  let s = '';
  for (let i = 0; i < body.length; i += 8192) s += String.fromCharCode(...body.subarray(i, Math.min(body.length, i + 8192)));
  return s;
}

function hexBytes(s: string): Uint8Array | null {
  const clean = s.replace(/[ \t\n\r\v\f]/g, '');
  if (clean.length % 2 || /[^0-9a-fA-F]/.test(clean)) return null;
  const out = new Uint8Array(clean.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(clean.slice(i * 2, i * 2 + 2), 16);
  return out;
}

interface MetaChunk {
  type: string;
  keyword: string;
  data: Uint8Array;
  keyLength: number;
  beforeImage: boolean;
}

/** The metadata chunks exif_transpose may read (only the last of each kind matters). */
interface MetaSlots {
  exifEarly?: MetaChunk; // last eXIf before the image data
  exifAny?: MetaChunk; // last eXIf anywhere
  rawProfile?: MetaChunk; // last "Raw profile type exif" text
  xmpEarly?: MetaChunk;
  xmpAny?: MetaChunk;
}

/** exif_transpose's orientation for a PNG (Pillow 9.4 PngImageFile.getexif): the last eXIf before
 *  the image data, else the last one anywhere, else a "Raw profile type exif" text; when that has
 *  no orientation tag, an XMP packet's tiff:Orientation (before the image data only, when an eXIf
 *  came before it: PIL then never reads the chunks after the image). */
function pngOrientation(m: MetaSlots): number {
  let exif: Uint8Array | null = (m.exifEarly ?? m.exifAny)?.data ?? null;
  if (!exif && m.rawProfile) {
    const text = textValue(m.rawProfile.type, m.rawProfile.data, m.rawProfile.keyLength);
    if (text != null) exif = hexBytes(text.split('\n').slice(3).join(''));
  }
  const fromExif = exif ? exifOrientation(exif) : null;
  if (fromExif !== null) return fromExif >= 1 && fromExif <= 8 ? fromExif : 1;
  const xmpChunk = m.exifEarly ? m.xmpEarly : m.xmpAny;
  const xmp = xmpChunk && textValue(xmpChunk.type, xmpChunk.data, xmpChunk.keyLength);
  const match = xmp ? /tiff:Orientation(="|>)([0-9])/.exec(xmp) : null;
  const o = match ? Number(match[2]) : 1;
  return o >= 1 && o <= 8 ? o : 1;
}

export function decodePng(name: string, bytes: Uint8Array, limits: Limits): StoredImage {
  const SIG = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
  if (bytes.length < 8 || SIG.some((b, i) => bytes[i] !== b)) throw new ImageDecodeError(name, 'not a PNG file (bad signature)');
  let p = 8;
  let ihdr: Uint8Array | null = null;
  let plte: Uint8Array | null = null;
  const idat: Uint8Array[] = [];
  let idatBytes = 0;
  let imageDone = false; // the run of IDAT chunks is over
  const meta: MetaSlots = {};
  for (let index = 0; ; index++) {
    if (p + 8 > bytes.length) {
      if (idat.length === 0) throw new ImageDecodeError(name, `truncated PNG (file ends at byte ${bytes.length} before the image data)`);
      break;
    }
    const length = u32(bytes, p);
    const type = String.fromCharCode(bytes[p + 4]!, bytes[p + 5]!, bytes[p + 6]!, bytes[p + 7]!);
    if (!/^[A-Za-z]{4}$/.test(type) || length > 0x7fffffff) {
      if (idat.length === 0) throw new ImageDecodeError(name, `corrupt PNG (broken chunk header at byte ${p})`);
      break;
    }
    const start = p + 8;
    const end = start + length;
    if (index === 0 && type !== 'IHDR') throw new ImageDecodeError(name, `corrupt PNG (first chunk is ${type}, not IHDR)`);
    if (end > bytes.length) {
      // A cut IDAT still gives what it holds (the image may be complete); anything else cut
      // before the image data is fatal.
      if (type === 'IDAT' && !imageDone) {
        idat.push(bytes.subarray(start));
        idatBytes += bytes.length - start;
        break;
      }
      if (idat.length === 0) throw new ImageDecodeError(name, `truncated PNG (${type} chunk runs past the end of the file)`);
      break;
    }
    const data = bytes.subarray(start, end);
    if (idat.length === 0 && end + 4 <= bytes.length && type !== 'IDAT') {
      if (crc32(bytes, p + 4, end) !== u32(bytes, end)) throw new ImageDecodeError(name, `corrupt PNG (bad CRC in the ${type} chunk)`);
    }
    if (type === 'IDAT') {
      if (!imageDone) {
        if (length > 0 || idat.length === 0) idat.push(data);
        idatBytes += length;
      }
    } else {
      if (idat.length > 0) imageDone = true;
      if (type === 'IHDR') {
        if (index !== 0) throw new ImageDecodeError(name, 'corrupt PNG (second IHDR chunk)');
        if (length !== 13) throw new ImageDecodeError(name, `corrupt PNG (IHDR is ${length} bytes, not 13)`);
        ihdr = data;
      } else if (type === 'PLTE') {
        if (idat.length === 0) plte = data;
      } else if (type === 'IEND') break;
      else if (type === 'eXIf' || type === 'tEXt' || type === 'zTXt' || type === 'iTXt') {
        const z = type === 'eXIf' ? -1 : data.indexOf(0);
        const keyLength = z < 0 ? data.length : z;
        const keyword = type === 'eXIf' ? '' : String.fromCharCode(...data.subarray(0, Math.min(keyLength, 80)));
        const chunk: MetaChunk = { type, keyword, data, keyLength, beforeImage: idat.length === 0 };
        if (type === 'eXIf') {
          meta.exifAny = chunk;
          if (chunk.beforeImage) meta.exifEarly = chunk;
        } else if (keyword === 'Raw profile type exif') meta.rawProfile = chunk;
        else if (keyword === 'XML:com.adobe.xmp') {
          meta.xmpAny = chunk;
          if (chunk.beforeImage) meta.xmpEarly = chunk;
        }
      }
    }
    p = end + 4;
  }
  if (!ihdr) throw new ImageDecodeError(name, 'corrupt PNG (no IHDR chunk)');
  const width = u32(ihdr, 0);
  const height = u32(ihdr, 4);
  const depth = ihdr[8]!;
  const colorType = ihdr[9]!;
  const interlace = ihdr[12]!;
  checkSize(name, width, height, limits);
  if (!DEPTHS[colorType]) throw new ImageDecodeError(name, `corrupt PNG (unknown colour type ${colorType})`);
  if (!DEPTHS[colorType]!.includes(depth)) throw new ImageDecodeError(name, `corrupt PNG (bit depth ${depth} is invalid for colour type ${colorType})`);
  if (ihdr[10] !== 0 || ihdr[11] !== 0) throw new ImageDecodeError(name, `corrupt PNG (unknown compression or filter method)`);
  if (interlace > 1) throw new ImageDecodeError(name, `corrupt PNG (unknown interlace method ${interlace})`);
  if (idat.length === 0) throw new ImageDecodeError(name, 'truncated PNG (no image data)');

  const ch = CHANNELS[colorType]!;
  const bitsPP = ch * depth;
  const bpp = Math.max(1, bitsPP >> 3);
  const ps = passes(width, height, interlace === 1);
  let rawSize = 0;
  for (const q of ps) rawSize += q.h * (1 + Math.ceil((q.w * bitsPP) / 8));
  // Refuse before allocating when the compressed bytes present cannot expand to the image.
  if (rawSize > idatBytes * MAX_DEFLATE_RATIO + MAX_DEFLATE_RATIO) {
    throw new ImageDecodeError(
      name,
      `truncated PNG: ${idatBytes} bytes of compressed image data cannot hold a ${width}×${height} image (${rawSize} bytes; deflate expands at most ${MAX_DEFLATE_RATIO}:1)`,
    );
  }
  let z: Uint8Array;
  if (idat.length === 1) z = idat[0]!;
  else {
    z = new Uint8Array(idatBytes);
    let o = 0;
    for (const d of idat) {
      z.set(d, o);
      o += d.length;
    }
  }
  let raw: Uint8Array;
  try {
    raw = inflateZlib(z, rawSize, true).data;
  } catch (e) {
    if (!(e instanceof InflateError)) throw e;
    throw new ImageDecodeError(name, `corrupt PNG (image data: ${e.message})`);
  }

  // Mode and output layout.
  let mode: PilMode;
  let outCh: number;
  if (colorType === 0) mode = depth === 1 ? '1' : depth === 16 ? 'I' : 'L';
  else if (colorType === 2) mode = 'RGB';
  else if (colorType === 3) mode = 'P';
  else if (colorType === 4) mode = depth === 16 ? 'RGBA' : 'LA';
  else mode = 'RGBA';
  outCh = mode === 'RGBA' ? 4 : mode === 'LA' ? 2 : mode === 'RGB' ? 3 : 1;
  const n = width * height;
  // 8-bit, not interlaced: the rows are compacted in place (no second copy of the image).
  const inPlace = depth === 8 && interlace === 0;
  const data: Uint8Array | Uint16Array = inPlace ? raw.subarray(0, n * outCh) : mode === 'I' ? new Uint16Array(n) : new Uint8Array(n * outCh);
  const scale = colorType !== 0 ? 1 : depth === 2 ? 85 : depth === 4 ? 17 : 1;

  let off = 0;
  for (const q of ps) {
    const rowBytes = Math.ceil((q.w * bitsPP) / 8);
    // Unfilter in place.
    for (let r = 0; r < q.h; r++) {
      const f = raw[off]!;
      const row = off + 1;
      // The previous row, unfiltered (and, in place, already moved to its final position).
      const prev = r === 0 ? -1 : inPlace ? (r - 1) * rowBytes : row - rowBytes - 1;
      switch (f) {
        case 0:
          break;
        case 1:
          for (let i = bpp; i < rowBytes; i++) raw[row + i] = (raw[row + i]! + raw[row + i - bpp]!) & 255;
          break;
        case 2:
          if (prev >= 0) for (let i = 0; i < rowBytes; i++) raw[row + i] = (raw[row + i]! + raw[prev + i]!) & 255;
          break;
        case 3:
          for (let i = 0; i < rowBytes; i++) {
            const a = i >= bpp ? raw[row + i - bpp]! : 0;
            const b = prev >= 0 ? raw[prev + i]! : 0;
            raw[row + i] = (raw[row + i]! + ((a + b) >> 1)) & 255;
          }
          break;
        case 4:
          for (let i = 0; i < rowBytes; i++) {
            const a = i >= bpp ? raw[row + i - bpp]! : 0;
            const b = prev >= 0 ? raw[prev + i]! : 0;
            const c = prev >= 0 && i >= bpp ? raw[prev + i - bpp]! : 0;
            const pa = Math.abs(b - c);
            const pb = Math.abs(a - c);
            const pc = Math.abs(a + b - 2 * c);
            raw[row + i] = (raw[row + i]! + (pa <= pb && pa <= pc ? a : pb <= pc ? b : c)) & 255;
          }
          break;
        default:
          throw new ImageDecodeError(name, `corrupt PNG (unknown filter type ${f} in row ${r}${ps.length > 1 ? ' of an interlace pass' : ''})`);
      }
      // Samples of this row into their places.
      const y = q.y0 + r * q.dy;
      if (inPlace) {
        raw.copyWithin(y * rowBytes, row, row + rowBytes);
      } else if (depth < 8) {
        const mask = (1 << depth) - 1;
        for (let x = 0; x < q.w; x++) {
          const bit = x * depth;
          const v = (raw[row + (bit >> 3)]! >> (8 - depth - (bit & 7))) & mask;
          data[y * width + q.x0 + x * q.dx] = v * scale;
        }
      } else if (depth === 8) {
        for (let x = 0; x < q.w; x++) {
          const d = (y * width + q.x0 + x * q.dx) * outCh;
          for (let c = 0; c < ch; c++) data[d + c] = raw[row + x * ch + c]!;
        }
      } else if (mode === 'I') {
        for (let x = 0; x < q.w; x++) data[y * width + q.x0 + x * q.dx] = (raw[row + x * 2]! << 8) | raw[row + x * 2 + 1]!;
      } else {
        // 16-bit RGB, RGBA, gray+alpha: the high byte of each sample (gray+alpha as L, L, L, A).
        for (let x = 0; x < q.w; x++) {
          const d = (y * width + q.x0 + x * q.dx) * outCh;
          const s = row + x * ch * 2;
          if (colorType === 4) {
            data[d] = data[d + 1] = data[d + 2] = raw[s]!;
            data[d + 3] = raw[s + 2]!;
          } else for (let c = 0; c < ch; c++) data[d + c] = raw[s + c * 2]!;
        }
      }
      off += 1 + rowBytes;
    }
  }
  const img: StoredImage = { format: 'png', mode, width, height, channels: outCh, data, orientation: pngOrientation(meta) };
  if (mode === 'P') img.palette = pilPalette(plte, plte ? Math.floor(plte.length / 3) : 0);
  return img;
}
