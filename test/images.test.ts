// Image decoding: formats, EXIF orientation, 16-bit handling, and clear errors for bad files.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { deflateSync } from 'node:zlib';
import { PNG } from 'pngjs';
import { ImageDecodeError, applyOrientation, decodeImage, jpegOrientation, loadImage } from '../src/io/image.js';
import { resizeU8 } from '../src/io/resample.js';
import { imageProcessor, shortEdgeSize } from '../src/io/preprocess.js';
import { join } from 'node:path';
import { FIXTURES } from './helpers.js';

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
  throwsDecode(() => decodeImage(png.subarray(0, png.length - 20), 'cut.png'), /^cut\.png: corrupt PNG/, 'truncated PNG');
  const jpg = new Uint8Array(await (await import('node:fs/promises')).readFile(join(FIXTURES, 'codecs', 'baseline_q90_420.jpg')));
  throwsDecode(() => decodeImage(jpg.subarray(0, 400), 'cut.jpg'), /^cut\.jpg: corrupt or unsupported JPEG/, 'truncated JPEG');
  // A PNG header announcing 100000×100000 pixels is refused before anything is inflated.
  const big = Buffer.from(png);
  big.writeUInt32BE(100000, 16);
  big.writeUInt32BE(100000, 20);
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
    assert.match((e as Error).message, /missing\.png: cannot read \(ENOENT\)/);
  }
});

test('PNG: gray, RGBA (alpha dropped, not composited), 16-bit scaled (or clamped like PIL on request)', () => {
  const gray = new PNG({ width: 2, height: 1, colorType: 0, inputColorType: 0, bitDepth: 8 } as never);
  gray.data = Buffer.from([10, 10, 10, 255, 200, 200, 200, 255]);
  const g = decodeImage(PNG.sync.write(gray, { colorType: 0 }), 'g.png');
  assert.equal([...g.data], [10, 10, 10, 200, 200, 200]);
  const rgba = new PNG({ width: 1, height: 1 });
  rgba.data = Buffer.from([100, 150, 200, 0]);
  assert.equal([...decodeImage(PNG.sync.write(rgba), 'a.png').data], [100, 150, 200]);
  // 16-bit gray, built by hand: samples 0, 257·100, 65535.
  const raw = Buffer.from([0, 0, 0, 0x64, 0x64, 0xff, 0xff]);
  const chunk = (type: string, data: Buffer) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const body = Buffer.concat([Buffer.from(type), data]);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(body) >>> 0);
    return Buffer.concat([len, body, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(3, 0);
  ihdr.writeUInt32BE(1, 4);
  ihdr[8] = 16;
  ihdr[9] = 0;
  const png16 = Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', ihdr), chunk('IDAT', deflateSync(raw)), chunk('IEND', Buffer.alloc(0))]);
  assert.equal([...decodeImage(png16, '16.png').data], [0, 0, 0, 100, 100, 100, 255, 255, 255]);
  assert.equal([...decodeImage(png16, '16.png', { sixteenBit: 'pil-clamp' }).data], [0, 0, 0, 255, 255, 255, 255, 255, 255]);
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

test.run();
