// Image decoding: formats, EXIF orientation, 16-bit handling, and clear errors for bad files.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { constants as zlibConstants, deflateSync } from 'node:zlib';
import { inflateZlib } from '../../src/io/inflate.js';
import { PNG } from 'pngjs';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, openSync, closeSync, constants, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { ImageDecodeError, applyOrientation, decodeImage, decodeImageSamples, jpegOrientation, loadImage } from '../../src/io/image.js';
import { resizeU8 } from '../../src/io/resample.js';
import { imageProcessor, processImage, shortEdgeSize } from '../../src/io/preprocess.js';
import { join } from 'node:path';
import { FIXTURES } from '../support/helpers.js';

const corpus = (name: string) => new Uint8Array(readFileSync(join(FIXTURES, 'images', name)));

function chunk(type: string, data: Buffer): Buffer {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const body = Buffer.concat([Buffer.from(type), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body) >>> 0);
  return Buffer.concat([len, body, crc]);
}

/** A PNG from raw (filtered) scanlines. */
function pngFile(w: number, h: number, depth: number, colorType: number, raw: Buffer | null, zdata?: Buffer): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(h, 4);
  ihdr[8] = depth;
  ihdr[9] = colorType;
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', ihdr), chunk('IDAT', zdata ?? deflateSync(raw!)), chunk('IEND', Buffer.alloc(0))]);
}

function throwsDecode(fn: () => unknown, pattern: RegExp, label: string): void {
  try {
    fn();
  } catch (e) {
    assert.instance(e, ImageDecodeError, label);
    assert.match((e as Error).message, pattern, label);
    return;
  }
  assert.unreachable(`${label}: expected an error`);
}

test('bad images give an error naming the file: empty, not an image, truncated, too large', async () => {
  throwsDecode(() => decodeImage(new Uint8Array(0), 'empty.png'), /^empty\.png: empty file \(0 bytes\)/, 'empty');
  throwsDecode(() => decodeImage(new TextEncoder().encode('hello world'), 'notes.txt'), /^notes\.txt: not a PNG, JPEG or BMP image/, 'text');
  const png = PNG.sync.write(Object.assign(new PNG({ width: 4, height: 3 }), { data: Buffer.alloc(48, 128) }));
  // Cut 20 bytes, only IEND and the zlib checksum are missing: PIL decodes that (the image data is
  // complete), and so does this decoder; cut 30, the image data itself is short.
  assert.is(decodeImage(png.subarray(0, png.length - 20), 'cut20.png').width, 4);
  throwsDecode(() => decodeImage(png.subarray(0, png.length - 30), 'cut.png'), /^cut\.png: corrupt PNG \(image data: deflate data ends early\)/, 'truncated PNG');
  const jpg = new Uint8Array(await (await import('node:fs/promises')).readFile(join(FIXTURES, 'codecs', 'baseline_q90_420.jpg')));
  throwsDecode(() => decodeImage(jpg.subarray(0, 400), 'cut.jpg'), /^cut\.jpg: truncated JPEG \(marker 0xc4 runs past the end of the file\)/, 'truncated JPEG');
  throwsDecode(() => decodeImage(jpg.subarray(0, jpg.length - 2), 'noeoi.jpg'), /^noeoi\.jpg: truncated JPEG \(no end-of-image marker\)/, 'JPEG without EOI (PIL: truncated)');
  // A PNG header announcing 100000×100000 pixels is refused before anything is inflated.
  const big = pngFile(100000, 100000, 8, 6, Buffer.alloc(10));
  throwsDecode(() => decodeImage(big, 'huge.png'), /^huge\.png: 100000×100000 = 10000000000 pixels exceeds the limit/, 'too large');
  throwsDecode(() => decodeImage(png, 'small-limit.png', { maxPixels: 10 }), /exceeds the limit of 10/, 'custom limit');
  const bmp = new Uint8Array(60);
  bmp.set([0x42, 0x4d]);
  new DataView(bmp.buffer).setUint32(14, 40, true);
  new DataView(bmp.buffer).setInt32(18, 4, true);
  new DataView(bmp.buffer).setInt32(22, 4, true);
  new DataView(bmp.buffer).setUint16(28, 24, true);
  new DataView(bmp.buffer).setUint32(10, 54, true);
  throwsDecode(() => decodeImage(bmp, 'short.bmp'), /^short\.bmp: truncated BMP data/, 'truncated BMP');
  try {
    await loadImage(join(FIXTURES, 'missing.png'));
    assert.unreachable('missing file');
  } catch (e) {
    assert.match((e as Error).message, /missing\.png: cannot read \(no such file\)/);
  }
});

test('PNG: gray, RGBA (alpha dropped, not composited); 16-bit kinds as PIL 9.4 reads them', () => {
  const gray = new PNG({ width: 2, height: 1, colorType: 0, inputColorType: 0, bitDepth: 8 } as never);
  gray.data = Buffer.from([10, 10, 10, 255, 200, 200, 200, 255]);
  const g = decodeImage(PNG.sync.write(gray, { colorType: 0 }), 'g.png');
  assert.equal([...g.data], [10, 10, 10, 200, 200, 200]);
  const rgba = new PNG({ width: 1, height: 1 });
  rgba.data = Buffer.from([100, 150, 200, 0]);
  assert.equal([...decodeImage(PNG.sync.write(rgba), 'a.png').data], [100, 150, 200]);
  // 16-bit samples 0, 0x00FF, 0x0100, 0x6464, 0xFF00, 0xFFFF.
  const v16 = [0, 0xff, 0x100, 0x6464, 0xff00, 0xffff];
  const be = (vals: number[]) => Buffer.from(vals.flatMap((v) => [v >> 8, v & 255]));
  // Gray (PIL mode I): PIL's convert("RGB") clamps to 255; the default scales instead.
  const g16 = pngFile(6, 1, 16, 0, Buffer.concat([Buffer.from([0]), be(v16)]));
  assert.is(decodeImageSamples(g16, '16.png').mode, 'I');
  assert.equal([...decodeImage(g16, '16.png').data].filter((_, i) => i % 3 === 0), [0, 1, 1, 100, 254, 255], 'gray16 scaled');
  assert.equal([...decodeImage(g16, '16.png', { sixteenBit: 'pil' }).data].filter((_, i) => i % 3 === 0), [0, 255, 255, 255, 255, 255], 'gray16 as PIL');
  assert.equal([...decodeImage(g16, '16.png', { sixteenBit: 'pil-clamp' }).data].filter((_, i) => i % 3 === 0), [0, 255, 255, 255, 255, 255], 'alias');
  // RGB, RGBA, gray+alpha: PIL keeps the high byte (v >> 8), whatever the option.
  const hi = v16.map((v) => v >> 8);
  for (const [ct, ch] of [[2, 3], [6, 4], [4, 2]] as const) {
    const file = pngFile(6, 1, 16, ct, Buffer.concat([Buffer.from([0]), be(v16.flatMap((v) => Array<number>(ch).fill(v)))]));
    for (const opt of [{}, { sixteenBit: 'pil' as const }, { sixteenBit: 'scale' as const }]) {
      assert.equal([...decodeImage(file, 'c.png', opt).data].filter((_, i) => i % 3 === 0), hi, `colour type ${ct} ${JSON.stringify(opt)}`);
    }
  }
  // Low bit depths scale to 0..255 (1-bit gray is PIL mode 1: 0/255).
  const bits = (depth: number, vals: number[]) => {
    let acc = 0n;
    for (const v of vals) acc = (acc << BigInt(depth)) | BigInt(v);
    const nbits = depth * vals.length;
    const nbytes = Math.ceil(nbits / 8);
    acc <<= BigInt(nbytes * 8 - nbits);
    return Buffer.from(Array.from({ length: nbytes }, (_, i) => Number((acc >> BigInt((nbytes - 1 - i) * 8)) & 255n)));
  };
  assert.equal([...decodeImage(pngFile(4, 1, 1, 0, Buffer.concat([Buffer.from([0]), bits(1, [0, 1, 1, 0])])), 'b.png').data].filter((_, i) => i % 3 === 0), [0, 255, 255, 0]);
  assert.equal([...decodeImage(pngFile(4, 1, 2, 0, Buffer.concat([Buffer.from([0]), bits(2, [0, 1, 2, 3])])), 'b.png').data].filter((_, i) => i % 3 === 0), [0, 85, 170, 255]);
  assert.equal([...decodeImage(pngFile(3, 1, 4, 0, Buffer.concat([Buffer.from([0]), bits(4, [0, 7, 15])])), 'b.png').data].filter((_, i) => i % 3 === 0), [0, 119, 255]);
});

function crc32(buf: Buffer): number {
  let c = ~0;
  for (const b of buf) {
    c ^= b;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0xedb88320 : c >>> 1;
  }
  return ~c;
}

test('EXIF orientation: all eight transforms, and the orientation-6 fixture decodes rotated', async () => {
  // 3×2 image with pixel values 1..6 (row-major), one channel replicated.
  const w = 3;
  const h = 2;
  const img = { width: w, height: h, data: Uint8Array.from([1, 2, 3, 4, 5, 6].flatMap((v) => [v, v, v])) };
  const px = (o: number) => {
    const r = applyOrientation(img, o);
    return { w: r.width, h: r.height, v: [...r.data].filter((_, i) => i % 3 === 0) };
  };
  assert.equal(px(1), { w: 3, h: 2, v: [1, 2, 3, 4, 5, 6] });
  assert.equal(px(2), { w: 3, h: 2, v: [3, 2, 1, 6, 5, 4] });
  assert.equal(px(3), { w: 3, h: 2, v: [6, 5, 4, 3, 2, 1] });
  assert.equal(px(4), { w: 3, h: 2, v: [4, 5, 6, 1, 2, 3] });
  assert.equal(px(5), { w: 2, h: 3, v: [1, 4, 2, 5, 3, 6] });
  assert.equal(px(6), { w: 2, h: 3, v: [4, 1, 5, 2, 6, 3] });
  assert.equal(px(7), { w: 2, h: 3, v: [6, 3, 5, 2, 4, 1] });
  assert.equal(px(8), { w: 2, h: 3, v: [3, 6, 2, 5, 1, 4] });
  const bytes = new Uint8Array(await (await import('node:fs/promises')).readFile(join(FIXTURES, 'codecs', 'exif_orientation6.jpg')));
  assert.is(jpegOrientation(bytes), 6);
  const d = decodeImage(bytes, 'exif.jpg');
  assert.equal([d.width, d.height], [77, 123]);
});

test('resampling and processor geometry', () => {
  const src = Uint8Array.from({ length: 5 * 4 * 3 }, (_, i) => (i * 37) % 256);
  assert.equal([...resizeU8(src, 5, 4, 3, 5, 4, 'lanczos')], [...src], 'same size is a copy');
  const flat = new Uint8Array(7 * 5 * 3).fill(77);
  for (const f of ['lanczos', 'bicubic', 'bilinear'] as const) assert.ok(resizeU8(flat, 7, 5, 3, 3, 11, f).every((v) => v === 77), `${f} keeps a flat image flat`);
  assert.equal(shortEdgeSize(640, 480, 224), [298, 224]);
  assert.equal(shortEdgeSize(61, 97, 224), [224, 356]);
  assert.throws(() => imageProcessor({ width: 10, height: 10, data: new Uint8Array(300) }, { size: { shortest_edge: 10 }, crop_size: { height: 20, width: 20 } }), /crop 20×20 larger/);
});

/** Runs `fn`, which must throw an ImageDecodeError matching `pattern` within `ms` milliseconds. */
function failsFast(fn: () => unknown, pattern: RegExp, ms: number, label: string): number {
  const rss0 = process.memoryUsage().rss;
  const t0 = performance.now();
  throwsDecode(fn, pattern, label);
  const dt = performance.now() - t0;
  const grew = process.memoryUsage().rss - rss0;
  assert.ok(dt < ms, `${label}: took ${dt.toFixed(0)} ms`);
  assert.ok(grew < 64 * 2 ** 20, `${label}: RSS grew by ${(grew / 2 ** 20).toFixed(0)} MiB`);
  return dt;
}

test('hostile headers: refused at once, before the image is allocated', () => {
  // 68 bytes declaring 1 × 89,478,485 RGB pixels (pngjs ran out of memory after minutes).
  const tall = pngFile(1, 89_478_485, 8, 2, Buffer.alloc(12));
  assert.is(tall.length, 68);
  failsFast(() => decodeImage(tall, 'tall.png'), /^tall\.png: 1×89478485 exceeds the limit of 65500 pixels per side/, 500, 'per-side limit');
  failsFast(() => decodeImage(tall, 'tall.png', { maxDimension: Infinity }), /^tall\.png: truncated PNG: \d+ bytes of compressed image data cannot hold a 1×89478485 image/, 500, 'per-byte limit');
  // 9000² with (almost) no image data: PIL says truncated; it used to "decode" to black.
  const empty = pngFile(9000, 9000, 8, 2, Buffer.alloc(100));
  failsFast(() => decodeImage(empty, 'empty-data.png'), /cannot hold a 9000×9000 image/, 500, '9000² PNG');
  // 1 KB JPEG declaring 9000² (jpeg-js took 12.7 s and 2.3 GB to fail).
  const j = Buffer.from(corpus('jpeg_420_40x33.jpg'));
  const sof = j.indexOf(Buffer.from([0xff, 0xc0]));
  j.writeUInt16BE(9000, sof + 5);
  j.writeUInt16BE(9000, sof + 7);
  failsFast(() => decodeImage(j, 'huge.jpg'), /^huge\.jpg: truncated or corrupt JPEG: scan 1 has \d+ bytes of data, too few for its \d+ blocks \(9000×9000 image\)/, 500, '9000² JPEG');
  // A progressive file that never codes one component's DC.
  const p = Buffer.from(corpus('jpeg_progressive_gray.jpg'));
  const sofp = p.indexOf(Buffer.from([0xff, 0xc2]));
  p.writeUInt16BE(9000, sofp + 5);
  p.writeUInt16BE(9000, sofp + 7);
  failsFast(() => decodeImage(p, 'huge-progressive.jpg'), /too few for its/, 500, '9000² progressive JPEG');
  // BMP and RLE data that cannot fill the image.
  const bmp = new Uint8Array(1078 + 16);
  const dv = new DataView(bmp.buffer);
  bmp.set([0x42, 0x4d]);
  dv.setUint32(10, 1078, true);
  dv.setUint32(14, 40, true);
  dv.setInt32(18, 9000, true);
  dv.setInt32(22, 9000, true);
  dv.setUint16(26, 1, true);
  dv.setUint16(28, 8, true);
  failsFast(() => decodeImage(bmp, 'huge.bmp'), /^huge\.bmp: truncated BMP data/, 500, '9000² BMP');
  dv.setUint32(30, 1, true); // RLE8: 16 bytes of runs
  bmp.fill(0x01, 1078);
  failsFast(() => decodeImage(bmp, 'huge-rle.bmp'), /^huge-rle\.bmp: truncated BMP data \(RLE data ends/, 500, '9000² RLE8 BMP');
});

test('JPEG codings PIL knows but this decoder does not, and odd legal files', () => {
  throwsDecode(() => decodeImage(corpus('jpeg_arithmetic.jpg'), 'a.jpg'), /^a\.jpg: unsupported JPEG coding: arithmetic-coded \(SOF9\)/, 'arithmetic');
  const base = Buffer.from(corpus('jpeg_444.jpg'));
  const sof = base.indexOf(Buffer.from([0xff, 0xc0]));
  const withMarker = (m: number) => {
    const b = Buffer.from(base);
    b[sof + 1] = m;
    return b;
  };
  throwsDecode(() => decodeImage(withMarker(0xc3), 'l.jpg'), /unsupported JPEG coding: lossless \(SOF3\)/, 'lossless');
  throwsDecode(() => decodeImage(withMarker(0xc7), 'l.jpg'), /unsupported JPEG coding: hierarchical lossless \(SOF7\)/, 'hierarchical lossless');
  throwsDecode(() => decodeImage(withMarker(0xcb), 'l.jpg'), /unsupported JPEG coding: arithmetic-coded lossless \(SOF11\)/, 'arithmetic lossless');
  throwsDecode(() => decodeImage(withMarker(0xcf), 'l.jpg'), /unsupported JPEG coding: arithmetic-coded hierarchical lossless \(SOF15\)/, 'SOF15');
  const twelve = Buffer.from(base);
  twelve[sof + 4] = 12;
  throwsDecode(() => decodeImage(twelve, 't.jpg'), /^t\.jpg: unsupported JPEG: 12-bit samples/, '12-bit');
  // 0xFF fill bytes before markers are legal (PIL decodes them); the corpus compares the pixels.
  const filled = corpus('jpeg_fill_bytes.jpg');
  assert.ok(filled.some((b, i) => b === 0xff && filled[i + 1] === 0xff), 'fixture has fill bytes');
  assert.is(decodeImage(filled, 'fill.jpg').width, 37);
});

test('non-regular files (FIFO, directory) are refused without blocking', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'diffsim-img-'));
  const fifo = join(dir, 'pipe.png');
  try {
    await rejectsWith(() => loadImage(dir), /not a regular file \(a directory\)/, 'directory');
    const sparse = join(dir, 'sparse.png');
    writeFileSync(sparse, '');
    truncateSync(sparse, 3 * 2 ** 30); // 3 GiB, no disk blocks
    await rejectsWith(() => loadImage(sparse), /sparse\.png: 3221225472 bytes is more than the 1073741824-byte limit/, 'huge file');
    if (spawnSync('mkfifo', [fifo]).status !== 0) return; // no mkfifo here
    let timer: NodeJS.Timeout | undefined;
    const watchdog = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error('loadImage blocked on a FIFO')), 5000);
    });
    try {
      await Promise.race([rejectsWith(() => loadImage(fifo), /pipe\.png: not a regular file \(a FIFO\)/, 'FIFO'), watchdog]);
    } finally {
      clearTimeout(timer);
      // Release a reader blocked in open() (if the check failed), so the process can exit.
      try {
        closeSync(openSync(fifo, constants.O_WRONLY | constants.O_NONBLOCK));
      } catch {
        // no reader: nothing to release
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

async function rejectsWith(fn: () => Promise<unknown>, pattern: RegExp, label: string): Promise<void> {
  try {
    await fn();
  } catch (e) {
    assert.instance(e, ImageDecodeError, label);
    assert.match((e as Error).message, pattern, label);
    return;
  }
  assert.unreachable(`${label}: expected an error`);
}

test('preprocessing refuses empty or inconsistent images', () => {
  assert.throws(() => processImage({ width: 0, height: 0, data: new Uint8Array(0) }, 64), /processImage: empty image \(0×0\)/);
  assert.throws(() => processImage({ width: 5, height: 0, data: new Uint8Array(0) }, 64), /empty image \(5×0\)/);
  assert.throws(() => processImage({ width: 2, height: 2, data: new Uint8Array(5) }, 64), /5 bytes for a 2×2 RGB image/);
  assert.throws(() => imageProcessor({ width: 0, height: 0, data: new Uint8Array(0) }, { size: { shortest_edge: 10 } }), /imageProcessor: empty image \(0×0\)/);
  assert.throws(() => resizeU8(new Uint8Array(0), 0, 0, 3, 4, 4, 'lanczos'), /resize: empty input 0×0/);
});

test('inflate agrees with zlib on random, repetitive and run-length data, every strategy and level', () => {
  let seed = 7;
  const rand = () => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 16) & 255;
  const inputs = [
    Uint8Array.from({ length: 70_000 }, rand),
    Uint8Array.from({ length: 200_000 }, (_, i) => (i % 1000 < 500 ? 0 : (i * 7) & 255)),
    new Uint8Array(300_000),
    Uint8Array.from({ length: 150_000 }, (_, i) => [1, 2, 3, 4, 5, 6, 7][i % 7]! + (i % 3000 === 0 ? rand() : 0)),
  ];
  for (const data of inputs) {
    for (const level of [0, 1, 6, 9]) {
      for (const strategy of [zlibConstants.Z_DEFAULT_STRATEGY, zlibConstants.Z_FIXED, zlibConstants.Z_HUFFMAN_ONLY, zlibConstants.Z_RLE, zlibConstants.Z_FILTERED]) {
        const z = deflateSync(data, { level, strategy });
        const out = inflateZlib(z, data.length, true).data;
        assert.ok(Buffer.from(out).equals(Buffer.from(data)), `level ${level} strategy ${strategy} (${data.length} bytes)`);
        assert.throws(() => inflateZlib(z.subarray(0, z.length >> 1), data.length, true), /ends early|holds/, 'cut');
        const bad = Buffer.from(z);
        bad[bad.length - 1]! ^= 1;
        assert.throws(() => inflateZlib(bad, data.length, true), /checksum/, 'checksum');
        assert.is(inflateZlib(z, data.length - 1, true).data.length, data.length - 1, 'extra data ignored');
        assert.throws(() => inflateZlib(z, data.length - 1, false), /larger than/, 'limit');
      }
    }
  }
});

test.run();
