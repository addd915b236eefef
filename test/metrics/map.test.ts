// Slow suite: about 58 s of CPU on lavapipe (152 s wall on a shared 2-core machine).
// The agreement map (eval/map.ts) and `diffsim map` on the shipped tiny models (weights/tiny): the
// per-row cosine kernel against a TypeScript reference, the grid against a host computation from
// the metric's attention outputs, the bilinear upsampling, the ViT patch grids, the refusals, the
// rendered PNG, the atomic write and the command line.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { cpSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { tidy } from '../../src/gpu/runtime.js';
import { rowCosine } from '../../src/kernels/reduce.js';
import { createMetric, createMetrics, type CreateMetricOptions, type Metric, type MetricName } from '../../src/diffsim/metric.js';
import { AGREEMENT_METRICS, agreementFromEmbeddings, agreementMap, agreementPixels, agreementTensor, renderAgreement, renderLayout, RENDER_LAYOUT, upsampleGrid, viridis, type AgreementMap } from '../../src/apps/map.js';
import { outputTarget, writeFileAtomic } from '../../src/io/atomic.js';
import { FileError } from '../../src/io/errors.js';
import { decodeImage, loadImage, type RgbImage } from '../../src/io/image.js';
import { imageProcessor, imageProcessorGeometry } from '../../src/io/preprocess.js';
import { resizeImage } from '../../src/io/resample.js';
import { diffsimSettings, parseCommand } from '../../src/cli/metric-options.js';
import { FIXTURES, REPO_ROOT, offlineHub, randn, rejects, runCli, runtime } from '../support/helpers.js';

const TINY = join(REPO_ROOT, 'weights', 'tiny');
const A = join(FIXTURES, 'diffsim-tiny', 'image_A.png');
const B = join(FIXTURES, 'diffsim-tiny', 'image_B.png');
const MODELS: CreateMetricOptions = { model: join(TINY, 'sd15'), ipAdapter: join(TINY, 'ip-adapter'), clipModel: join(TINY, 'clip'), dinoModel: join(TINY, 'dinov2') };
const MODEL_ARGS = ['--model', join(TINY, 'sd15'), '--ip-adapter', join(TINY, 'ip-adapter'), '--clip-model', join(TINY, 'clip'), '--dino-model', join(TINY, 'dinov2')];
/** up_blocks.3 of the tiny U-Net: an 8×8 token grid for a 64×64 image. */
const LAYER2: CreateMetricOptions = { ...MODELS, layer: 2, diffsim: { layer: 2, layerMode: 'as-given' } };

/** torch.cosine_similarity along the last axis in float64 (each norm clamped at eps). */
function refRowCosine(a: ArrayLike<number>, b: ArrayLike<number>, len: number, eps = 1e-8): Float64Array {
  const rows = a.length / len;
  const out = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    let ab = 0;
    let aa = 0;
    let bb = 0;
    for (let i = r * len; i < (r + 1) * len; i++) {
      ab += a[i]! * b[i]!;
      aa += a[i]! * a[i]!;
      bb += b[i]! * b[i]!;
    }
    out[r] = ab / (Math.max(Math.sqrt(aa), eps) * Math.max(Math.sqrt(bb), eps));
  }
  return out;
}

/** The map computed independently: attention outputs read back, the cosine of each query token's
 *  O_AB and O_AA rows in float64, the prefix tokens dropped, the batch elements averaged. */
async function hostGrid(metric: Metric, prefix: number): Promise<{ grid: number[]; halves: number; tokens: number }> {
  const ea = await metric.embed(A, 'A');
  const eb = await metric.embed(B, 'B');
  try {
    const out = tidy(() => metric.attentionOutputs!(ea, eb));
    const [halves, tokens, c] = out.ab.shape as [number, number, number];
    const ab = (await out.ab.read()) as Float32Array;
    const aa = (await out.aa.read()) as Float32Array;
    for (const t of Object.values(out)) t.dispose();
    const cos = refRowCosine(ab, aa, c);
    const grid: number[] = [];
    for (let n = prefix; n < tokens; n++) {
      let s = 0;
      for (let h = 0; h < halves; h++) s += cos[h * tokens + n]!;
      grid.push(s / halves);
    }
    return { grid, halves, tokens };
  } finally {
    ea.dispose();
    eb.dispose();
  }
}

/** agreementTensor of (A, B), read back. */
async function tokenCosines(metric: Metric): Promise<Float32Array> {
  const ea = await metric.embed(A, 'A');
  const eb = await metric.embed(B, 'B');
  try {
    const t = agreementTensor(metric, ea, eb);
    assert.is(t.rank, 2, 'agreementTensor is [B, N]');
    try {
      return (await t.read()) as Float32Array;
    } finally {
      t.dispose();
    }
  } finally {
    ea.dispose();
    eb.dispose();
  }
}

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.is(a.length, b.length, 'lengths');
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

/** torch's F.interpolate(mode='bilinear', align_corners=False) at one output pixel, written out
 *  independently of upsampleGrid. */
function torchBilinear(grid: ArrayLike<number>, gw: number, gh: number, w: number, h: number, x: number, y: number): number {
  const src = (d: number, inp: number, out: number) => Math.max(((d + 0.5) * inp) / out - 0.5, 0);
  const sx = src(x, gw, w);
  const sy = src(y, gh, h);
  const x0 = Math.floor(sx);
  const y0 = Math.floor(sy);
  const x1 = Math.min(x0 + 1, gw - 1);
  const y1 = Math.min(y0 + 1, gh - 1);
  const lx = sx - x0;
  const ly = sy - y0;
  const g = (xx: number, yy: number) => grid[yy * gw + xx]!;
  return (1 - ly) * ((1 - lx) * g(x0, y0) + lx * g(x1, y0)) + ly * ((1 - lx) * g(x0, y1) + lx * g(x1, y1));
}

test('rowCosine equals torch.cosine_similarity(dim=-1): rows longer than a workgroup, a zero row (eps clamp), rank 1', async () => {
  const rt = await runtime();
  for (const shape of [[3, 5, 37], [2, 150], [7, 1], [64]]) {
    const n = shape.reduce((p, d) => p * d, 1);
    const len = shape[shape.length - 1]!;
    const a = randn(n, 11 + n);
    const b = randn(n, 12 + n).map((v, i) => v + 0.5 * a[i]!);
    if (shape[0] === 3) a.fill(0, 0, len); // first row all zeros: 0 / (eps·‖b‖) = 0
    const y = tidy(() => rowCosine(rt.upload(a, shape), rt.upload(b, shape)));
    assert.equal(y.shape, shape.slice(0, -1), `${shape}: output shape`);
    const got = (await y.read()) as Float32Array;
    y.dispose();
    const ref = refRowCosine(a, b, len);
    assert.ok(maxDiff(got, ref) <= 1e-6, `${shape}: max error ${maxDiff(got, ref)}`);
    if (shape[0] === 3) assert.is(got[0], 0, 'zero row');
  }
  await rejects(() => tidy(() => rowCosine(rt.upload(new Float32Array(6), [2, 3]), rt.upload(new Float32Array(6), [3, 2]))), /rowCosine: \[2, 3\] and \[3, 2\] must be equal shapes/, 'shape mismatch');
});

test('bilinear upsampling: align_corners=False with clamped edges (a 2×2 grid to 4×4 as torch gives it), NaN outside the region', () => {
  const up = upsampleGrid([0, 1, 2, 3], 2, 2, 4, 4);
  // torch.nn.functional.interpolate(torch.tensor([[[[0., 1.], [2., 3.]]]]), size=4, mode='bilinear', align_corners=False)
  const torch = [0, 0.25, 0.75, 1, 0.5, 0.75, 1.25, 1.5, 1.5, 1.75, 2.25, 2.5, 2, 2.25, 2.75, 3];
  assert.ok(maxDiff(up, torch) < 1e-7, `got ${Array.from(up)}`);
  // The grid on the middle 2×2 pixels of a 4×4 image: the corners outside are NaN, inside the cells' values.
  const inner = upsampleGrid([5, 6, 7, 8], 2, 2, 4, 4, { x: 1, y: 1, width: 2, height: 2 });
  assert.ok(Number.isNaN(inner[0]!) && Number.isNaN(inner[3]!) && Number.isNaN(inner[12]!), 'outside the region');
  assert.equal(Array.from(inner.slice(5, 7)), [5, 6]);
  assert.equal(Array.from(inner.slice(9, 11)), [7, 8]);
});

test('the DiffSim map equals the per-token cosine of attentionOutputs (read back, averaged over the CFG halves) within 1e-5; upsampled bilinearly to A', async () => {
  const rt = await runtime();
  const m = await createMetric('diffsim', { ...LAYER2, runtime: rt });
  try {
    const map = await agreementMap(m, A, B);
    const ref = await hostGrid(m, 0);
    assert.is(ref.halves, 2, 'both CFG halves scored');
    assert.is(map.halves, 2);
    assert.is(map.tokens, 64);
    assert.is(map.gridWidth, 8);
    assert.is(map.gridHeight, 8);
    assert.is(map.prefix, 0);
    assert.is(map.module, 'up_blocks.3.attentions.2.transformer_blocks.0.attn1');
    assert.is(map.layer, 2);
    assert.ok(maxDiff(map.grid, ref.grid) <= 1e-5, `grid vs host: ${maxDiff(map.grid, ref.grid)}`);
    assert.ok(Math.abs(map.mean - ref.grid.reduce((s, v) => s + v, 0) / 64) <= 1e-6, 'mean');
    assert.is(map.min, Math.min(...map.grid));
    assert.is(map.max, Math.max(...map.grid));
    assert.ok(map.max - map.min > 1e-3, 'the tokens differ (a map, not a constant)');
    // The two halves differ, so averaging them is visible: each half alone is not the map.
    const raw = await tokenCosines(m);
    assert.is(raw.length, 2 * 64, '[2, 64]');
    assert.ok(maxDiff(raw.slice(0, 64), map.grid) > 1e-4 && maxDiff(raw.slice(64), map.grid) > 1e-4, 'halves differ from their mean');
    // A's size, the whole image covered, bilinear at a few points.
    const a = await loadImage(A);
    assert.is(map.width, a.width);
    assert.is(map.height, a.height);
    assert.is(map.values.length, a.width * a.height);
    assert.equal(map.region, { x: 0, y: 0, width: 64, height: 64 });
    for (const [x, y] of [[0, 0], [63, 63], [5, 0], [17, 33], [40, 22], [63, 1]] as const) {
      const want = torchBilinear(map.grid, 8, 8, 64, 64, x, y);
      assert.ok(Math.abs(map.values[y * 64 + x]! - want) < 1e-6, `(${x}, ${y}): ${map.values[y * 64 + x]} vs ${want}`);
    }
  } finally {
    await m.close();
  }
});

test('agreementFromEmbeddings on the pair’s embeddings is agreementMap (the page scores and maps from the same two embeddings)', async () => {
  const rt = await runtime();
  const m = await createMetric('diffsim', { ...LAYER2, runtime: rt });
  try {
    const a = await loadImage(A);
    const ea = await m.embed(a, 'A');
    const eb = await m.embed(B, 'B');
    try {
      const score = await m.compare(ea, eb);
      const fromEmb = await agreementFromEmbeddings(m, ea, eb, a);
      const map = await agreementMap(m, A, B);
      assert.is(score, await m.score(A, B), 'compare(embed(A, A), embed(B, B)) is the score');
      assert.equal(Array.from(fromEmb.grid), Array.from(map.grid));
      assert.equal([fromEmb.mean, fromEmb.min, fromEmb.max, fromEmb.module, fromEmb.halves], [map.mean, map.min, map.max, map.module, map.halves]);
      assert.equal(Array.from(fromEmb.values), Array.from(map.values));
    } finally {
      ea.dispose();
      eb.dispose();
    }
  } finally {
    await m.close();
  }
});

test('only the scored CFG halves: with --cfg cond the map is the conditional half alone', async () => {
  const rt = await runtime();
  const both = await createMetric('diffsim', { ...LAYER2, runtime: rt });
  const cond = await createMetric('diffsim', { ...LAYER2, runtime: rt, diffsim: { layer: 2, layerMode: 'as-given', cfgHalves: 'cond' } });
  try {
    const raw = await tokenCosines(both);
    const map = await agreementMap(cond, A, B);
    assert.is(map.halves, 1);
    assert.ok(maxDiff(map.grid, raw.slice(64)) <= 1e-6, 'cond half = batch element 1');
  } finally {
    await both.close();
    await cond.close();
  }
});

test('A against A: all ones with shared noise; not with the official noise (B gets other draws)', async () => {
  const rt = await runtime();
  const shared = await createMetric('diffsim', { ...LAYER2, runtime: rt, diffsim: { layer: 2, layerMode: 'as-given', noise: 'shared' } });
  const official = await createMetric('diffsim', { ...LAYER2, runtime: rt });
  try {
    const same = await agreementMap(shared, A, A);
    assert.ok(maxDiff(same.grid, new Float32Array(64).fill(1)) <= 1e-5, `shared noise: ${same.min}..${same.max}`);
    const png = decodeImage(renderAgreement(same, await loadImage(A), await loadImage(A)), 'constant.png');
    assert.is(png.width, renderLayout(64, 64, 64, 64).width, 'a constant map renders');
    const off = await agreementMap(official, A, A);
    assert.ok(off.min < 1 - 1e-3, `official noise: min ${off.min}`);
  } finally {
    await shared.close();
    await official.close();
  }
});

test('every AAS metric: the grid equals the host computation, the ViTs without their class token, on their patch grid', async () => {
  const rt = await runtime();
  const metrics = await createMetrics([...AGREEMENT_METRICS], { ...LAYER2, runtime: rt });
  try {
    const a = await loadImage(A);
    const want: Record<string, { prefix: number; side: number; module: string; tokens: number }> = {
      diffsim: { prefix: 0, side: 8, module: 'up_blocks.3.attentions.2.transformer_blocks.0.attn1', tokens: 64 },
      'diffsim-c': { prefix: 0, side: 8, module: 'up_blocks.3.attentions.2.transformer_blocks.0.attn2', tokens: 64 },
      // CLIP: 224 / 32 = 7 patches a side, + CLS.
      'clip-aas': { prefix: 1, side: 7, module: 'vision_model.encoder.layers.2.self_attn', tokens: 50 },
      // DINOv2: the 224 crop of the 256 resize, 224 / 14 = 16 patches a side, + CLS.
      'dino-aas': { prefix: 1, side: 16, module: 'encoder.layer.2.attention.attention', tokens: 257 },
    };
    for (const m of metrics) {
      const w = want[m.name]!;
      const map = await agreementMap(m, A, B);
      const ref = await hostGrid(m, w.prefix);
      assert.is(map.tokens, w.tokens, `${m.name}: tokens`);
      assert.is(ref.tokens, w.tokens, `${m.name}: host tokens`);
      assert.is(map.prefix, w.prefix, `${m.name}: prefix`);
      assert.is(map.gridWidth, w.side, `${m.name}: grid width`);
      assert.is(map.gridHeight, w.side, `${m.name}: grid height`);
      assert.is(map.module, w.module, `${m.name}: module`);
      assert.is(map.grid.length, w.side * w.side);
      assert.ok(maxDiff(map.grid, ref.grid) <= 1e-5, `${m.name}: grid vs host ${maxDiff(map.grid, ref.grid)}`);
      assert.is(map.values.length, a.width * a.height, `${m.name}: A's size`);
    }
    // DINOv2's grid covers the centre crop: 16 of 256 pixels cut on each side = 4 of A's 64.
    const dino = await agreementMap(metrics[3]!, A, B);
    assert.equal(dino.region, { x: 4, y: 4, width: 56, height: 56 });
    assert.ok(Number.isNaN(dino.values[3 * 64 + 30]!) && Number.isNaN(dino.values[30 * 64 + 60]!), 'outside the crop');
    assert.ok(Number.isFinite(dino.values[4 * 64 + 4]!) && Number.isFinite(dino.values[59 * 64 + 59]!), 'inside the crop');
    assert.ok(Math.abs(dino.values[4 * 64 + 4]! - dino.grid[0]!) < 1e-6, 'the crop corner is the first patch');
  } finally {
    for (const m of metrics) await m.close();
  }
});

test('a non-square DINOv2 patch grid (a processor without centre crop) is laid out row-major', async () => {
  const rt = await runtime();
  const dir = mkdtempSync(join(tmpdir(), 'diffsim-map-dino-'));
  try {
    cpSync(join(TINY, 'dinov2'), dir, { recursive: true });
    const cfg = { ...JSON.parse(readFileSync(join(dir, 'preprocessor_config.json'), 'utf8')), do_center_crop: false, size: { height: 56, width: 84 } };
    writeFileSync(join(dir, 'preprocessor_config.json'), JSON.stringify(cfg));
    assert.equal(imageProcessorGeometry(64, 64, cfg).crop, { left: 0, top: 0, width: 84, height: 56 });
    assert.is(imageProcessor(await loadImage(A), cfg).width, 84, 'the geometry is what the processor does');
    const m = await createMetric('dino-aas', { ...MODELS, runtime: rt });
    const m2 = await createMetric('dino-aas', { ...MODELS, dinoModel: dir, runtime: rt });
    try {
      const map = await agreementMap(m2, A, B);
      assert.is(map.gridWidth, 6);
      assert.is(map.gridHeight, 4);
      assert.is(map.tokens, 25);
      const ref = await hostGrid(m2, 1);
      assert.ok(maxDiff(map.grid, ref.grid) <= 1e-5, 'grid vs host');
      assert.ok(Math.abs(map.values[0]! - map.grid[0]!) < 1e-6 && Math.abs(map.values[63]! - map.grid[5]!) < 1e-6, 'first row of the grid along the top');
      assert.ok(Math.abs(map.values[63 * 64]! - map.grid[18]!) < 1e-6, 'last row along the bottom');
      // A token count that does not fit the layout is refused.
      assert.throws(() => m.attentionLayout!(64, 64, 25), /dino-aas: encoder\.layer\.0\.attention\.attention has 25 query tokens; a 64×64 image gives 1 \+ 16×16/);
    } finally {
      await m.close();
      await m2.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('metrics without attention outputs are refused, naming the metric and the ones that have a map', async () => {
  const rt = await runtime();
  const names: MetricName[] = ['clip', 'dino', 'clipfeats', 'dinofeats', 'diffeats'];
  const metrics = await createMetrics(names, { ...MODELS, runtime: rt });
  try {
    for (const m of metrics) {
      await rejects(() => agreementMap(m, A, B), new RegExp(`^agreement map: metric ${m.name} has no attention outputs \\(one of diffsim, diffsim-c, clip-aas, dino-aas\\)$`), m.name);
      const e = await m.embed(A);
      await rejects(() => agreementTensor(m, e, e), /has no attention outputs/, `${m.name}: agreementTensor`);
      e.dispose();
    }
  } finally {
    for (const m of metrics) await m.close();
  }
});

/** A non-square B of another height: 40×48 pixels cut from B. */
async function oddB(): Promise<RgbImage> {
  const b = await loadImage(B);
  const w = 40;
  const h = 48;
  const data = new Uint8Array(w * h * 3);
  for (let y = 0; y < h; y++) data.set(b.data.subarray(y * b.width * 3, (y * b.width + w) * 3), y * w * 3);
  return { width: w, height: h, data };
}

function pixel(img: RgbImage, x: number, y: number): number[] {
  const i = (y * img.width + x) * 3;
  return [img.data[i]!, img.data[i + 1]!, img.data[i + 2]!];
}

test('the PNG: A with the viridis overlay, B scaled to A’s height (aspect kept), the colour bar with ticks at 0, ½, 1; --range fixes the scale', async () => {
  const rt = await runtime();
  const m = await createMetric('dino-aas', { ...MODELS, runtime: rt });
  try {
    const a = await loadImage(A);
    const b = await oddB();
    const map: AgreementMap = await agreementMap(m, a, b);
    const img = decodeImage(renderAgreement(map, a, b), 'map.png');
    const bw = Math.round((40 * 64) / 48); // 53
    const { gap, bar, tick } = RENDER_LAYOUT;
    assert.is(img.width, 64 + gap + bw + gap + bar + tick, 'A + B scaled + bar');
    assert.is(img.height, 64);
    const L = renderLayout(64, 64, 40, 48);
    assert.is(L.bWidth, bw);
    // Left: every pixel of the covered region is blended with its viridis colour (α 0.55), the rest darkened.
    let differs = 0;
    for (let y = 4; y < 60; y++) for (let x = 4; x < 60; x++) if (pixel(img, x, y).some((v, k) => v !== pixel(a, x, y)[k])) differs++;
    assert.ok(differs > 0.9 * 56 * 56, `overlay changes A: ${differs} of ${56 * 56} pixels`);
    const blend = (x: number, y: number, lo: number, hi: number) => {
      const c = viridis((map.values[y * 64 + x]! - lo) / (hi - lo));
      return pixel(a, x, y).map((v, k) => Math.round((1 - 0.55) * v + 0.55 * c[k]!));
    };
    for (const [x, y] of [[4, 4], [30, 17], [59, 59]] as const) assert.equal(pixel(img, x, y), blend(x, y, map.min, map.max), `blend at (${x}, ${y})`);
    assert.equal(pixel(img, 1, 30), pixel(a, 1, 30).map((v) => Math.round(v * 0.5)), 'outside the crop: darkened A');
    // Middle: B scaled to 53×64.
    const sb = resizeImage(b, bw, 64, 'bicubic');
    for (const [x, y] of [[0, 0], [20, 31], [bw - 1, 63]] as const) assert.equal(pixel(img, L.bX + x, y), pixel(sb, x, y), `B at (${x}, ${y})`);
    assert.equal(pixel(img, 64, 10), [255, 255, 255], 'gap');
    // Right: the bar from viridis(1) at the top to viridis(0) at the bottom, ticks at rows 0, 32, 63.
    assert.equal(pixel(img, L.barX, 0), [0xfd, 0xe7, 0x25]);
    assert.equal(pixel(img, L.barX + bar - 1, 63), [0x44, 0x01, 0x54]);
    for (const y of [0, 32, 63]) assert.equal(pixel(img, L.tickX + 1, y), [32, 32, 32], `tick at row ${y}`);
    assert.equal(pixel(img, L.tickX + 1, 16), [255, 255, 255], 'no tick at row 16');
    // A fixed range: the colours follow it.
    const fixed = decodeImage(renderAgreement(map, a, b, { range: [-1, 1] }), 'fixed.png');
    assert.equal(pixel(fixed, 30, 17), blend(30, 17, -1, 1), 'range [-1, 1]');
    let changed = 0;
    for (let y = 4; y < 60; y++) for (let x = 4; x < 60; x++) if (pixel(fixed, x, y).some((v, k) => v !== pixel(img, x, y)[k])) changed++;
    assert.ok(changed > 0.5 * 56 * 56, `the range changes the colours: ${changed} pixels`);
    assert.throws(() => renderAgreement(map, a, b, { range: [1, 1] }), /range \[1, 1\] must be two finite numbers, low < high/);
    // The PNG is agreementPixels' picture (what the browser page draws), alpha dropped; the ticks
    // mark the range's top, middle and bottom rows.
    const pic = agreementPixels(map, a, b);
    assert.equal([pic.width, pic.height], [img.width, img.height]);
    let same = true;
    for (let i = 0; i < pic.width * pic.height && same; i++) same = pic.data[4 * i] === img.data[3 * i] && pic.data[4 * i + 1] === img.data[3 * i + 1] && pic.data[4 * i + 2] === img.data[3 * i + 2] && pic.data[4 * i + 3] === 255;
    assert.ok(same, 'the PNG holds agreementPixels');
    assert.equal(pic.range, [map.min, map.max]);
    assert.equal(pic.ticks.map((t) => t.y), [0, 32, 63]);
    assert.equal([pic.ticks[0]!.value, pic.ticks[2]!.value], [map.max, map.min]);
    assert.ok(Math.abs(pic.ticks[1]!.value - (map.min + (map.max - map.min) * (1 - 32 / 63))) < 1e-12, 'the middle tick’s value');
    assert.throws(() => renderAgreement(map, b, b), /image A is 40×48, the map 64×64/);
  } finally {
    await m.close();
  }
});

test('writeFileAtomic: the whole file or nothing; a failed write leaves neither the file nor a temporary one', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'diffsim-atomic-'));
  try {
    const out = join(dir, 'x.png');
    writeFileSync(out, 'old');
    await writeFileAtomic(out, new Uint8Array([1, 2, 3]));
    assert.equal(Array.from(readFileSync(out)), [1, 2, 3], 'replaced');
    assert.equal(readdirSync(dir), ['x.png'], 'no temporary file');
    // Renaming over a folder fails after the bytes are written: the temporary file goes.
    mkdirSync(join(dir, 'sub'));
    await rejects(() => writeFileAtomic(join(dir, 'sub'), new Uint8Array(10)), new RegExp(`^${join(dir, 'sub').replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: cannot write: it is a folder$`), 'onto a folder');
    assert.equal(readdirSync(dir).sort(), ['sub', 'x.png'], 'no temporary file after the failed rename');
    try {
      await writeFileAtomic(join(dir, 'nope', 'y.png'), new Uint8Array(1));
      assert.unreachable('missing folder');
    } catch (e) {
      assert.instance(e, FileError);
      assert.match((e as Error).message, /nope\/y\.png: cannot write: the folder does not exist$/);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

/** Starts `cat FIFO > file`; resolves with the bytes it read once the writer closes the FIFO. */
function fifoReader(fifo: string, file: string): Promise<Buffer> {
  const reader = spawn('sh', ['-c', 'cat "$0" > "$1"', fifo, file]);
  return new Promise((resolve) => reader.on('exit', () => resolve(readFileSync(file))));
}

test('writeFileAtomic never replaces what is not a regular file: a symlink\'s target is written, a FIFO and a device directly; a socket is refused', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'diffsim-atomic-kinds-'));
  try {
    // A symlink (relative, through a second link): the final target replaced, the links kept.
    writeFileSync(join(dir, 'real.png'), 'old');
    symlinkSync('real.png', join(dir, 'link1'));
    symlinkSync(join(dir, 'link1'), join(dir, 'link2'));
    await writeFileAtomic(join(dir, 'link2'), new Uint8Array([7, 8]));
    assert.ok(lstatSync(join(dir, 'link1')).isSymbolicLink() && lstatSync(join(dir, 'link2')).isSymbolicLink(), 'the links stay');
    assert.equal(Array.from(readFileSync(join(dir, 'real.png'))), [7, 8], 'the target written');
    // A dangling link: the file it names is created.
    symlinkSync('made.png', join(dir, 'dangling'));
    await writeFileAtomic(join(dir, 'dangling'), 'x');
    assert.ok(lstatSync(join(dir, 'dangling')).isSymbolicLink());
    assert.is(readFileSync(join(dir, 'made.png'), 'utf8'), 'x');
    // A FIFO: written to the reader, still a FIFO after.
    const fifo = join(dir, 'out.fifo');
    execFileSync('mkfifo', [fifo]);
    const got = fifoReader(fifo, join(dir, 'got'));
    await writeFileAtomic(fifo, new Uint8Array(20_000).fill(3));
    assert.is((await got).length, 20_000, 'the reader got every byte');
    assert.ok(statSync(fifo).isFIFO(), 'still a FIFO');
    // /dev/stdout is this process's descriptor 1.
    assert.is(outputTarget('/dev/stdout').fd, 1);
    // Character devices of our own (root only: mknod), as /dev/null and /dev/full.
    const nul = join(dir, 'null');
    const full = join(dir, 'full');
    if (spawnSync('mknod', [nul, 'c', '1', '3']).status === 0 && spawnSync('mknod', [full, 'c', '1', '7']).status === 0) {
      await writeFileAtomic(nul, new Uint8Array(16_384));
      assert.ok(statSync(nul).isCharacterDevice(), 'null: still a character device');
      await rejects(() => writeFileAtomic(full, new Uint8Array(16_384)), /full: cannot write: no space left on the device$/, '/dev/full');
      assert.ok(statSync(full).isCharacterDevice(), 'full: still a character device');
    }
    // A socket: refused, left alone.
    const sock = join(dir, 'sock');
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(sock, resolve));
    try {
      await rejects(() => writeFileAtomic(sock, 'x'), /sock: cannot write: it is a socket, not a regular file$/, 'socket');
      assert.ok(lstatSync(sock).isSocket());
    } finally {
      server.close();
    }
    assert.not.ok(readdirSync(dir).some((f) => f.includes('.tmp-')), 'no temporary file');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

// The command line, run as the package's binary with the hub offline and an empty cache.
const HF_HOME = mkdtempSync(join(tmpdir(), 'diffsim-map-hf-'));

function cli(...args: string[]) {
  return runCli(args, { timeout: 120_000, env: offlineHub(HF_HOME) });
}

test('diffsim map writes the PNG and prints "mean min max" equal to the API map; --json; --range with a negative value', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'diffsim-map-cli-'));
  try {
    const out = join(dir, 'map.png');
    writeFileSync(out, 'an older file');
    const r = cli('map', A, B, '-o', out, '--layer', '2', ...MODEL_ARGS);
    assert.is(r.code, 0, r.stderr);
    const m = /^mean (\S+) min (\S+) max (\S+)\n$/.exec(r.stdout);
    assert.ok(m, `one line: ${JSON.stringify(r.stdout)}`);
    const p = parseCommand('map', ['--layer', '2']);
    const metric = await createMetric('diffsim', { ...MODELS, runtime: await runtime(), diffsim: diffsimSettings(p.metric) });
    let api: AgreementMap;
    try {
      api = await agreementMap(metric, A, B);
    } finally {
      await metric.close();
    }
    assert.ok(Math.abs(Number(m![1]) - api.mean) < 1e-6 && Math.abs(Number(m![2]) - api.min) < 1e-6 && Math.abs(Number(m![3]) - api.max) < 1e-6, `${r.stdout} vs ${api.mean} ${api.min} ${api.max}`);
    const img = decodeImage(new Uint8Array(readFileSync(out)), out);
    assert.is(img.width, renderLayout(64, 64, 64, 64).width);
    assert.is(img.height, 64);
    assert.equal(readdirSync(dir), ['map.png'], 'no temporary file');

    const j = cli('map', A, B, '--out', out, '--json', '--metric', 'clip-aas', '--range', '-1,1', ...MODEL_ARGS);
    assert.is(j.code, 0, j.stderr);
    const lines = j.stdout.trim().split('\n');
    const o = JSON.parse(lines[lines.length - 1]!) as Record<string, unknown>;
    assert.is(o.out, out);
    assert.equal(o.grid, { width: 7, height: 7 });
    assert.equal(o.range, [-1, 1]);
    assert.is(o.metric, 'clip-aas');
    assert.is(o.module, 'vision_model.encoder.layers.0.self_attn');
    for (const k of ['mean', 'min', 'max']) assert.type(o[k], 'number', k);
    assert.ok((o.min as number) <= (o.mean as number) && (o.mean as number) <= (o.max as number), 'min ≤ mean ≤ max');
    const s = o.settings as Record<string, unknown>;
    assert.is(s.metric, 'clip-aas');
    assert.is(s.layer, 0);
    assert.is(s.qkvSource, 'pre-ln');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('diffsim map -o through a symlink writes its target; -o a FIFO writes to its reader and leaves the FIFO', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'diffsim-map-kinds-'));
  try {
    const args = [A, B, '--metric', 'clip-aas', ...MODEL_ARGS];
    writeFileSync(join(dir, 'real.png'), 'older');
    symlinkSync('real.png', join(dir, 'link.png'));
    const r = cli('map', ...args, '-o', join(dir, 'link.png'));
    assert.is(r.code, 0, r.stderr);
    assert.ok(lstatSync(join(dir, 'link.png')).isSymbolicLink(), 'still a link');
    const png = readFileSync(join(dir, 'real.png'));
    assert.is(decodeImage(new Uint8Array(png), 'real.png').height, 64, 'the PNG in the target');
    const fifo = join(dir, 'map.fifo');
    execFileSync('mkfifo', [fifo]);
    const got = fifoReader(fifo, join(dir, 'from-fifo.png'));
    const f = cli('map', ...args, '-o', fifo);
    assert.is(f.code, 0, f.stderr);
    assert.equal(await got, png, 'the same PNG through the FIFO');
    assert.ok(statSync(fifo).isFIFO(), 'still a FIFO');
    assert.equal(readdirSync(dir).sort(), ['from-fifo.png', 'link.png', 'map.fifo', 'real.png'], 'no temporary file');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('diffsim map errors: one line naming the argument or file, exit 2 for usage and 1 otherwise, nothing written', () => {
  const dir = mkdtempSync(join(tmpdir(), 'diffsim-map-err-'));
  try {
    const out = join(dir, 'map.png');
    const notAFolder = join(dir, 'file');
    writeFileSync(notAFolder, 'x');
    const cases: [string[], number, RegExp][] = [
      [['map', A, B, ...MODEL_ARGS], 2, /^diffsim: map: -o OUT\.png is required/],
      [['map', A, B, '-o'], 2, /^diffsim: map: -o needs a file name/],
      [['map', A, '-o', out], 2, /^diffsim: map: expected 2 images \(A B\), got 1/],
      [['map', A, B, '-o', out, '--metric', 'clip', ...MODEL_ARGS], 2, /^diffsim: map: --metric clip has no attention map \(one of diffsim, diffsim-c, clip-aas, dino-aas\)/],
      [['map', A, B, '-o', out, '--metric', 'ensemble'], 2, /^diffsim: map: unknown --metric "ensemble"/],
      [['map', A, B, '-o', out, '--range', '1,0'], 2, /^diffsim: map: --range must be LO,HI with two numbers, LO < HI, got "1,0"/],
      [['map', A, B, '-o', out, '--bogus'], 2, /^diffsim: map: unknown option --bogus/],
      [['map', A, B, '-o', join(dir, 'missing', 'map.png'), ...MODEL_ARGS], 1, /^diffsim: \S+missing\/map\.png: cannot write: the folder \S+missing does not exist$/],
      [['map', A, B, '-o', join(notAFolder, 'map.png'), ...MODEL_ARGS], 1, /^diffsim: \S+file\/map\.png: cannot write: \S+file is not a folder$/],
      [['map', A, B, '-o', dir, ...MODEL_ARGS], 1, /^diffsim: \S+: cannot write: it is a folder$/],
      [['map', A, join(dir, 'nothere.png'), '-o', out, ...MODEL_ARGS], 1, /^diffsim: \S+nothere\.png: cannot read/],
    ];
    for (const [args, code, pattern] of cases) {
      const r = cli(...args);
      const label = args.slice(3).join(' ');
      assert.is(r.code, code, `${label}: exit code (${r.stderr})`);
      assert.is(r.stderr.split('\n').length, 1, `${label}: one line: ${r.stderr}`);
      assert.match(r.stderr, pattern, label);
      assert.is(r.stdout, '', `${label}: nothing on stdout`);
      assert.equal(readdirSync(dir), ['file'], `${label}: nothing written`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.after(() => {
  rmSync(HF_HOME, { recursive: true, force: true });
});

test.run();
