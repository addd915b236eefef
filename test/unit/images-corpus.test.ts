// Agreement with the reference loader (Pillow 9.4 + libjpeg-turbo 2.1.5: Image.open,
// ImageOps.exif_transpose, convert("RGB")) over test/fixtures/images, every PNG, JPEG and BMP kind
// the decoder handles, generated once by scripts/make-image-corpus.py.
//
// Measured agreement, per kind (values of the RGB output): every kind below is 100% exact (max
// difference 0), JPEG included: the decoder reproduces libjpeg-turbo's islow IDCT, its fancy
// upsampling and its colour conversion bit for bit. One exception, stated with its own tolerance: a
// progressive file whose scans never send the last bit of the coefficients, which libjpeg-turbo
// post-processes with block smoothing.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { SafetensorsFile } from '../../src/io/safetensors.js';
import { ImageDecodeError, decodeImage, decodeImageSamples } from '../../src/io/image.js';
import { FIXTURES } from '../support/helpers.js';

const DIR = join(FIXTURES, 'images');

/** Kinds and the agreement each must reach: max |ours − PIL| over all values. */
const KINDS: [RegExp, string, number][] = [
  [/^png_gray(1|2|4)\.png$|^png_adam7_gray1|^png_pil_1/, 'PNG gray 1/2/4-bit (mode 1, L)', 0],
  [/^png_gray8|^png_pil_l|^png_adam7_gray8/, 'PNG gray 8-bit', 0],
  [/^png_gray16/, 'PNG gray 16-bit (mode I, PIL clamping)', 0],
  [/^png_(la|rgb|rgba)16|^png_adam7_rgba16/, 'PNG 16-bit gray+alpha/RGB/RGBA (high byte)', 0],
  [/^png_(la8|pil_la|adam7_la8)/, 'PNG gray+alpha 8-bit', 0],
  [/^png_palette|^png_adam7_palette|^png_pil_p/, 'PNG palette 1/2/4/8-bit, short PLTE, tRNS', 0],
  [/^png_(rgb8|rgba8|pil_rgb|adam7_rgb8)/, 'PNG RGB/RGBA 8-bit', 0],
  [/^png_(zlib|idat)/, 'PNG deflate variants, split IDAT', 0],
  [/^png_(exif|rawprofile|xmp)/, 'PNG EXIF orientation (eXIf, raw profile, XMP)', 0],
  [/^jpeg_(444|422|420|pil_q75|pil_422|optimize|q100|q3|fill|multiscan)/, 'JPEG baseline/extended 4:4:4, 4:2:2, 4:2:0', 0],
  [/^jpeg_(440|411|410|mixed|h3|v3h2)/, 'JPEG 4:4:0, 4:1:1, 4:1:0, mixed and 3×1/2×3 sampling', 0],
  // libjpeg-turbo smooths the blocks of a progressive file whose first AC coefficients were never
  // refined to full precision (jdcoefct.c block smoothing); that step is not reproduced.
  [/^jpeg_progressive_incomplete/, 'JPEG progressive, refinement incomplete (PIL smooths; not reproduced)', 12],
  [/^jpeg_progressive|^jpeg_pil_progressive/, 'JPEG progressive', 0],
  [/^jpeg_restart/, 'JPEG restart markers', 0],
  [/^jpeg_(gray|rgb)\.jpg/, 'JPEG grayscale, RGB (Adobe transform 0)', 0],
  [/^jpeg_(cmyk|ycck)/, 'JPEG CMYK, YCCK (Adobe)', 0],
  [/^jpeg_exif/, 'JPEG EXIF orientations 1–8', 0],
  [/^bmp_/, 'BMP 1/4/8/16/24/32-bit, bitfields, RLE, OS/2', 0],
];

/** Files PIL decodes that this decoder refuses, with the message it gives. */
const REFUSED: Record<string, RegExp> = {
  'jpeg_arithmetic.jpg': /unsupported JPEG coding: arithmetic-coded \(SOF9\)/,
  'jpeg_arithmetic_progressive.jpg': /unsupported JPEG coding: arithmetic-coded progressive \(SOF10\)/,
};

test('every corpus file decodes as PIL 9.4 decodes it, per kind', async () => {
  const ref = await SafetensorsFile.open(join(DIR, 'reference.safetensors'));
  const files = JSON.parse(ref.metadata.files!) as Record<string, { mode: string; size_wh: [number, number] }>;
  const stats = new Map<string, { files: number; values: number; exact: number; within1: number; max: number }>();
  try {
    for (const [name, info] of Object.entries(files)) {
      const bytes = new Uint8Array(readFileSync(join(DIR, name)));
      if (REFUSED[name]) {
        assert.throws(() => decodeImage(bytes, name), (e: Error) => e instanceof ImageDecodeError && REFUSED[name]!.test(e.message), name);
        continue;
      }
      const kind = KINDS.find(([re]) => re.test(name));
      assert.ok(kind, `${name}: no kind`);
      const img = decodeImage(bytes, name, { sixteenBit: 'pil' });
      assert.equal([img.width, img.height], info.size_wh, `${name}: size`);
      const want = (await ref.readRaw(name)).bytes;
      const s = stats.get(kind![1]) ?? { files: 0, values: 0, exact: 0, within1: 0, max: 0 };
      s.files++;
      for (let i = 0; i < want.length; i++) {
        const d = Math.abs(img.data[i]! - want[i]!);
        s.values++;
        if (d === 0) s.exact++;
        if (d <= 1) s.within1++;
        if (d > s.max) s.max = d;
      }
      stats.set(kind![1], s);
      // The samples PIL stores (palette indices, 0/1, 16-bit gray) and its mode.
      const stored = decodeImageSamples(bytes, name);
      assert.is(stored.mode, info.mode, `${name}: mode`);
      if (ref.has(`${name}#stored`)) {
        const raw = await ref.readRaw(`${name}#stored`);
        const values = raw.dtype === 'I32' ? new Int32Array(raw.bytes.slice().buffer) : raw.bytes;
        assert.equal([...stored.data], [...values], `${name}: stored samples`);
      }
    }
  } finally {
    await ref.close();
  }
  const lines: string[] = [];
  for (const [, label, tol] of KINDS) {
    const s = stats.get(label);
    assert.ok(s, `${label}: no files`);
    lines.push(`  ${label.padEnd(72)} ${String(s!.files).padStart(3)} files  ${((100 * s!.exact) / s!.values).toFixed(2)}% exact  ${((100 * s!.within1) / s!.values).toFixed(2)}% within ±1  max ${s!.max}`);
    assert.ok(s!.max <= tol, `${label}: max difference ${s!.max} over ${tol}`);
  }
  console.log(`agreement with Pillow 9.4 over ${Object.keys(files).length} files:\n${lines.join('\n')}`);
});

test.run();
