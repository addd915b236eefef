// The worker of fuzz.test.ts, run in a child process (so that a crash, a hang or runaway memory
// shows up as such): seeded random mutations of valid PNG, JPEG, BMP and safetensors files, each
// decoded or opened and read in full. Every case must end with a result or an ImageDecodeError /
// SafetensorsError / FileError whose message starts with the file's name. Prints one JSON line.
//   DIFFSIM_MUTATION_CHILD=1 node build/test/support/mutation-child.js SEED CASES

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ImageDecodeError, decodeImage } from '../../src/io/image.js';
import { FileError } from '../../src/io/errors.js';
import { SafetensorsError, SafetensorsFile, encodeSafetensors } from '../../src/io/safetensors.js';
import { blobSource } from '../../src/io/bytesource.js';
import { FIXTURES, rng } from './helpers.js';
import { crc32 } from '../../src/io/png.js';

type Rand = () => number;
type Mutator = (b: Uint8Array, r: Rand) => Uint8Array;

const int = (r: Rand, n: number) => Math.floor(r() * n);
const pick = <T>(r: Rand, xs: readonly T[]): T => xs[int(r, xs.length)]!;
const EXTREMES = [0, 1, 2, 7, 8, 255, 256, 4095, 65535, 65536, 1 << 20, 0x7fffffff, 0x80000000, 0xffffffff];
const big = (r: Rand) => (r() < 0.6 ? pick(r, EXTREMES) : int(r, 2 ** 32));

// ---------------------------------------------------------------- generic mutations

const truncate: Mutator = (b, r) => b.slice(0, int(r, b.length));
const flip: Mutator = (b, r) => {
  const c = b.slice();
  for (let k = 1 + int(r, 8); k > 0; k--) c[int(r, c.length)] = r() < 0.3 ? 0xff : int(r, 256);
  return c;
};
const insert: Mutator = (b, r) => {
  const at = int(r, b.length + 1);
  const n = 1 + int(r, 64);
  const fill = Uint8Array.from({ length: n }, () => (r() < 0.5 ? 0xff : int(r, 256)));
  const c = new Uint8Array(b.length + n);
  c.set(b.subarray(0, at));
  c.set(fill, at);
  c.set(b.subarray(at), at + n);
  return c;
};
const remove: Mutator = (b, r) => {
  const at = int(r, b.length);
  const n = 1 + int(r, Math.min(256, b.length - at));
  const c = new Uint8Array(b.length - n);
  c.set(b.subarray(0, at));
  c.set(b.subarray(at + n), at);
  return c;
};
const duplicate: Mutator = (b, r) => {
  const at = int(r, b.length);
  const n = 1 + int(r, Math.min(512, b.length - at));
  const c = new Uint8Array(b.length + n);
  c.set(b.subarray(0, at + n));
  c.set(b.subarray(at, at + n), at + n);
  c.set(b.subarray(at + n), at + 2 * n);
  return c;
};
const word: Mutator = (b, r) => {
  const c = b.slice();
  const at = int(r, Math.max(1, c.length - 4));
  const v = big(r);
  const dv = new DataView(c.buffer);
  if (at + 4 <= c.length) r() < 0.5 ? dv.setUint32(at, v >>> 0, r() < 0.5) : dv.setUint16(at, v & 0xffff, r() < 0.5);
  return c;
};
const GENERIC: Mutator[] = [truncate, flip, flip, insert, remove, duplicate, word];

// ---------------------------------------------------------------- PNG


function pngChunks(b: Uint8Array): { at: number; len: number; type: string }[] {
  const out = [];
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  for (let p = 8; p + 12 <= b.length; ) {
    const len = dv.getUint32(p);
    const type = String.fromCharCode(...b.subarray(p + 4, p + 8));
    out.push({ at: p, len, type });
    if (p + 12 + len > b.length) break;
    p += 12 + len;
  }
  return out;
}

function fixCrc(b: Uint8Array, at: number, len: number): void {
  if (at + 12 + len <= b.length) new DataView(b.buffer).setUint32(at + 8 + len, crc32(b.subarray(at + 4, at + 8 + len)));
}

const pngDims: Mutator = (b, r) => {
  const c = b.slice();
  const dv = new DataView(c.buffer);
  if (r() < 0.5) dv.setUint32(16, big(r) >>> 0);
  else dv.setUint32(16, 1 + int(r, 20000));
  if (r() < 0.5) dv.setUint32(20, big(r) >>> 0);
  else dv.setUint32(20, 1 + int(r, 20000));
  fixCrc(c, 8, 13);
  return c;
};
const pngHeaderFields: Mutator = (b, r) => {
  const c = b.slice();
  c[24 + int(r, 5)] = r() < 0.5 ? pick(r, [0, 1, 2, 3, 4, 6, 8, 16, 255]) : int(r, 256);
  fixCrc(c, 8, 13);
  return c;
};
const pngChunkLength: Mutator = (b, r) => {
  const c = b.slice();
  const chunks = pngChunks(c);
  const ch = pick(r, chunks);
  new DataView(c.buffer).setUint32(ch.at, big(r) >>> 0);
  return c;
};
const pngInsideChunk: Mutator = (b, r) => {
  // Flips inside one chunk with its CRC fixed, so that the damage reaches inflate and unfiltering.
  const c = b.slice();
  const chunks = pngChunks(c).filter((x) => x.len > 0 && x.at + 12 + x.len <= c.length);
  if (!chunks.length) return c;
  const ch = pick(r, chunks);
  for (let k = 1 + int(r, 4); k > 0; k--) c[ch.at + 8 + int(r, ch.len)] = int(r, 256);
  fixCrc(c, ch.at, ch.len);
  return c;
};
const pngExtraChunk: Mutator = (b, r) => {
  const types = ['eXIf', 'zTXt', 'iTXt', 'tEXt', 'PLTE', 'tRNS', 'IDAT', 'IEND', 'IHDR'];
  const type = pick(r, types);
  const body = Uint8Array.from({ length: int(r, 80) }, () => int(r, 256));
  if (type === 'zTXt' || type === 'tEXt' || type === 'iTXt') body.set(new TextEncoder().encode(pick(r, ['Raw profile type exif\0', 'XML:com.adobe.xmp\0'])).subarray(0, body.length));
  const ch = new Uint8Array(12 + body.length);
  const dv = new DataView(ch.buffer);
  dv.setUint32(0, body.length);
  ch.set(new TextEncoder().encode(type), 4);
  ch.set(body, 8);
  dv.setUint32(8 + body.length, crc32(ch.subarray(4, 8 + body.length)));
  const chunks = pngChunks(b);
  const at = pick(r, chunks).at;
  const c = new Uint8Array(b.length + ch.length);
  c.set(b.subarray(0, at));
  c.set(ch, at);
  c.set(b.subarray(at), at + ch.length);
  return c;
};
const PNG_M: Mutator[] = [...GENERIC, pngDims, pngDims, pngHeaderFields, pngChunkLength, pngInsideChunk, pngInsideChunk, pngExtraChunk];

// ---------------------------------------------------------------- JPEG

function jpegMarkers(b: Uint8Array): { at: number; marker: number }[] {
  const out = [];
  for (let p = 2; p + 1 < b.length; p++) if (b[p] === 0xff && b[p + 1] !== 0 && b[p + 1] !== 0xff && !(b[p + 1]! >= 0xd0 && b[p + 1]! <= 0xd7)) out.push({ at: p, marker: b[p + 1]! });
  return out;
}
const jpegDims: Mutator = (b, r) => {
  const c = b.slice();
  const sof = jpegMarkers(c).find((m) => m.marker >= 0xc0 && m.marker <= 0xc2);
  if (!sof) return c;
  const dv = new DataView(c.buffer);
  if (sof.at + 9 <= c.length) {
    dv.setUint16(sof.at + 5, r() < 0.5 ? big(r) & 0xffff : 1 + int(r, 12000));
    dv.setUint16(sof.at + 7, r() < 0.5 ? big(r) & 0xffff : 1 + int(r, 12000));
  }
  return c;
};
const jpegSegment: Mutator = (b, r) => {
  const c = b.slice();
  const ms = jpegMarkers(c);
  if (!ms.length) return c;
  const m = pick(r, ms);
  const dv = new DataView(c.buffer);
  if (m.at + 4 <= c.length) {
    if (r() < 0.5) dv.setUint16(m.at + 2, big(r) & 0xffff);
    else c[m.at + 4 + int(r, 12)] = int(r, 256); // a field inside the segment
  }
  return c;
};
const jpegMarker: Mutator = (b, r) => {
  const c = b.slice();
  const ms = jpegMarkers(c);
  if (ms.length) c[pick(r, ms).at + 1] = pick(r, [0xc0, 0xc1, 0xc2, 0xc3, 0xc4, 0xc9, 0xcc, 0xd8, 0xd9, 0xda, 0xdb, 0xdc, 0xdd, 0xe1, 0xee, 0xfe, 0x02, 0x01]);
  return c;
};
const jpegScanData: Mutator = (b, r) => {
  const c = b.slice();
  const sos = jpegMarkers(c).filter((m) => m.marker === 0xda);
  if (!sos.length) return c;
  const s = pick(r, sos).at;
  for (let k = 1 + int(r, 6); k > 0; k--) {
    const at = s + 12 + int(r, Math.max(1, c.length - s - 14));
    if (at < c.length - 2) c[at] = r() < 0.2 ? 0xff : int(r, 256);
  }
  return c;
};
const JPEG_M: Mutator[] = [...GENERIC, jpegDims, jpegDims, jpegSegment, jpegSegment, jpegMarker, jpegScanData, jpegScanData];

// ---------------------------------------------------------------- BMP

const bmpFields: Mutator = (b, r) => {
  const c = b.slice();
  if (c.length < 54) return c;
  const dv = new DataView(c.buffer);
  switch (int(r, 6)) {
    case 0:
      dv.setInt32(18, r() < 0.5 ? big(r) | 0 : int(r, 20000) - 10000, true);
      break;
    case 1:
      dv.setInt32(22, r() < 0.5 ? big(r) | 0 : int(r, 20000) - 10000, true);
      break;
    case 2:
      dv.setUint16(28, pick(r, [0, 1, 2, 4, 8, 16, 24, 32, 64, big(r) & 0xffff]), true);
      break;
    case 3:
      dv.setUint32(30, pick(r, [0, 1, 2, 3, 4, 5, 6, big(r)]), true);
      break;
    case 4:
      dv.setUint32(10, big(r) >>> 0, true);
      break;
    default:
      dv.setUint32(r() < 0.5 ? 46 : 14, r() < 0.5 ? pick(r, [12, 40, 52, 56, 64, 108, 124]) : big(r) >>> 0, true);
  }
  return c;
};
const BMP_M: Mutator[] = [...GENERIC, bmpFields, bmpFields, bmpFields];

// ---------------------------------------------------------------- safetensors

const stJson: Mutator = (b, r) => {
  // Rewrites a number, a bracket or a quote in the JSON header (lying shapes, offsets, dtypes).
  if (b.length < 8) return b;
  const n = Number(new DataView(b.buffer, b.byteOffset).getBigUint64(0, true));
  if (n > b.length - 8) return b;
  const text = new TextDecoder().decode(b.subarray(8, 8 + n));
  const spots = [...text.matchAll(/\d+|[[\]{}",:]|F32|I64|U8/g)];
  if (!spots.length) return b;
  const m = pick(r, spots);
  const rep = pick(r, [String(big(r)), '-1', '1e308', '[', ']', '{}', '""', '"__proto__"', 'null', '0.5', 'BF16', 'constructor', '[[[[1]]]]', '']);
  const t = text.slice(0, m.index) + rep + text.slice(m.index! + m[0].length);
  const h = new TextEncoder().encode(t);
  const c = new Uint8Array(8 + h.length + (b.length - 8 - n));
  new DataView(c.buffer).setBigUint64(0, BigInt(h.length), true);
  c.set(h, 8);
  c.set(b.subarray(8 + n), 8 + h.length);
  return c;
};
const stLengthSeeded: Mutator = (b, r) => {
  const c = b.slice();
  const dv = new DataView(c.buffer);
  const n = Number(dv.getBigUint64(0, true));
  dv.setBigUint64(0, r() < 0.5 ? BigInt(Math.max(0, n + int(r, 64) - 32)) : BigInt(big(r)) * BigInt(1 + int(r, 1 << 20)), true);
  return c;
};
const stData: Mutator = (b, r) => {
  // Bytes of the data block only: the header stays valid, the values change.
  const c = b.slice();
  const n = Number(new DataView(c.buffer).getBigUint64(0, true));
  if (n + 8 >= c.length) return c;
  for (let k = 1 + int(r, 8); k > 0; k--) c[8 + n + int(r, c.length - 8 - n)] = int(r, 256);
  return c;
};
const ST_M: Mutator[] = [...GENERIC, stJson, stJson, stJson, stLengthSeeded, stData, stData];

// ---------------------------------------------------------------- cases

function seeds(): { kind: 'image' | 'safetensors'; name: string; bytes: Uint8Array; mutators: Mutator[] }[] {
  const dir = join(FIXTURES, 'images');
  const img = (name: string, mutators: Mutator[]) => ({ kind: 'image' as const, name, bytes: new Uint8Array(readFileSync(join(dir, name))), mutators });
  const st = encodeSafetensors(
    {
      w: { dtype: 'F32', shape: [2, 3], data: Float32Array.from([1, 2, 3, 4, 5, 6]) },
      h: { dtype: 'F16', shape: [2], data: Uint16Array.from([0x3c00, 0xc000]) },
      b: { dtype: 'BF16', shape: [1], data: Uint16Array.from([0x3f80]) },
      i: { dtype: 'I64', shape: [2], data: BigInt64Array.from([5n, -6n]) },
      e: { dtype: 'U8', shape: [0, 4], data: new Uint8Array(0) },
    },
    { format: 'pt', config: '{"a":1}' },
  );
  return [
    img('png_rgb8.png', PNG_M),
    img('png_palette4.png', PNG_M),
    img('png_adam7_rgb8.png', PNG_M),
    img('png_gray16.png', PNG_M),
    img('png_exif6.png', PNG_M),
    img('png_rawprofile8.png', PNG_M),
    img('jpeg_420.jpg', JPEG_M),
    img('jpeg_progressive_420.jpg', JPEG_M),
    img('jpeg_progressive_restart.jpg', JPEG_M),
    img('jpeg_restart_rows.jpg', JPEG_M),
    img('jpeg_cmyk.jpg', JPEG_M),
    img('jpeg_exif6.jpg', JPEG_M),
    img('bmp_8bit.bmp', BMP_M),
    img('bmp_24bit.bmp', BMP_M),
    img('bmp_rle8.bmp', BMP_M),
    img('bmp_rle4.bmp', BMP_M),
    img('bmp_32bit_bitfields_bgra_v5.bmp', BMP_M),
    { kind: 'safetensors', name: 'model.safetensors', bytes: st, mutators: ST_M },
  ];
}

async function runCase(kind: 'image' | 'safetensors', name: string, bytes: Uint8Array): Promise<string> {
  if (kind === 'image') {
    try {
      const img = decodeImage(bytes, name);
      if (!(img.width > 0 && img.height > 0 && img.data.length === img.width * img.height * 3)) return `bad result ${img.width}×${img.height}, ${img.data.length} bytes`;
      return 'decoded';
    } catch (e) {
      if (e instanceof ImageDecodeError && (e as Error).message.startsWith(`${name}: `)) return 'error';
      return `unexpected ${(e as Error)?.name}: ${(e as Error)?.message ?? e}`;
    }
  }
  try {
    const f = await SafetensorsFile.open(blobSource(bytes, name));
    try {
      for (const t of f.names()) await f.readFloat32(t);
    } finally {
      await f.close();
    }
    return 'decoded';
  } catch (e) {
    if ((e instanceof SafetensorsError || e instanceof FileError) && (e as Error).message.startsWith(`${name}: `)) return 'error';
    return `unexpected ${(e as Error)?.name}: ${(e as Error)?.message ?? e}`;
  }
}

async function main(): Promise<void> {
  const seed = Number(process.argv[2] ?? 1);
  const cases = Number(process.argv[3] ?? 1000);
  const r = rng(seed);
  const pool = seeds();
  const outcomes: Record<string, number> = {};
  const failures: string[] = [];
  let worstMs = 0;
  let worstCase = '';
  // Sampled after every case: getrusage's maxRSS would not do, as Linux carries the high-water
  // mark of the spawning process (the test runner, with the GPU suites' memory) across exec.
  let peakRss = process.memoryUsage.rss();
  for (let i = 0; i < cases; i++) {
    const s = pool[i % pool.length]!;
    let bytes = s.bytes;
    const applied: string[] = [];
    for (let k = 1 + int(r, 3); k > 0 && bytes.length > 0; k--) {
      const m = pick(r, s.mutators);
      try {
        bytes = m(bytes, r);
        applied.push(m.name);
      } catch {
        // a field-specific mutation that does not fit an already damaged file
      }
    }
    const label = `case ${i} (${s.name}: ${applied.join('+')})`;
    if (i % 250 === 0) process.stderr.write(`${label}\n`);
    const t0 = performance.now();
    const out = await runCase(s.kind, `fuzz-${i}-${s.name}`, bytes);
    const ms = performance.now() - t0;
    if (ms > worstMs) {
      worstMs = ms;
      worstCase = label;
    }
    const key = `${s.kind}:${out.startsWith('unexpected') || out.startsWith('bad') ? 'failure' : out}`;
    outcomes[key] = (outcomes[key] ?? 0) + 1;
    if (out !== 'decoded' && out !== 'error') failures.push(`${label}: ${out}`);
    peakRss = Math.max(peakRss, process.memoryUsage.rss());
  }
  const maxRssMiB = peakRss / 2 ** 20;
  console.log(JSON.stringify({ seed, cases, outcomes, failures: failures.slice(0, 20), failureCount: failures.length, worstMs, worstCase, maxRssMiB }));
}

if (process.env.DIFFSIM_MUTATION_CHILD === '1') await main();
