// The perceptual baselines of Table 1: LPIPS v0.1 (VGG16, AlexNet) and the VGG19 Gram cosine.
// Their kernels (max pool, unit normalisation over channels) against TypeScript references on random
// and awkward shapes; `diffsim parity` on the lpips-tiny and vgg-gram-tiny fixtures with f32 and f16
// weights (every stored tensor compared); the metrics through createMetric on weights/tiny against
// the fixtures' scores.json; options, errors, the eval decision rules and the CLI spelling.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { listItems, itemPaths } from '../../src/eval/protocols.js';
import { runEval } from '../../src/eval/runner.js';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { tidy } from '../../src/gpu/runtime.js';
import { channelUnitNorm, maxPool2d } from '../../src/kernels/pool.js';
import { unary } from '../../src/kernels/elementwise.js';
import { conv2d } from '../../src/kernels/matmul.js';
import { runParity } from '../../src/parity/parity.js';
import { F16_WEIGHTS_TOLERANCE } from '../../src/parity/common.js';
import { encodeSafetensors, SafetensorsFile } from '../../src/io/safetensors.js';
import { FakeHub } from '../support/hub-server.js';
import { createMetric, createMetrics, lowerBetterOf, METRIC_NAMES } from '../../src/diffsim/metric.js';
import { DiffSimSettingsError } from '../../src/diffsim/settings.js';
import { decide, decide2x, directionOf, type DecisionRule } from '../../src/eval/decide.js';
import { BENCHMARK_NAMES } from '../../src/eval/protocols.js';
import { parseCommand } from '../../src/cli/metric-options.js';
import { detectArch, featureOps } from '../../src/models/vgg.js';
import { bufferNeeds } from '../../src/web/limits.js';
import { localModelFiles } from '../../src/io/local-files.js';
import { FIXTURES, REPO_ROOT, rejects, randn, runCli, runtime, take } from '../support/helpers.js';
import { writeImage } from '../support/images.js';

const TINY = join(REPO_ROOT, 'weights', 'tiny');
const LPIPS_DIR = join(FIXTURES, 'lpips-tiny');
const GRAM_DIR = join(FIXTURES, 'vgg-gram-tiny');
const LPIPS_SCORES = JSON.parse(readFileSync(join(LPIPS_DIR, 'scores.json'), 'utf8')) as { img_size: number; vgg: { distance: number[]; distance_normalize_true: number[] }; alex: { distance: number[]; distance_normalize_true: number[] } };
const GRAM_SCORES = JSON.parse(readFileSync(join(GRAM_DIR, 'scores.json'), 'utf8')) as { img_size: number; score_last_row: number; score_full_matrix: number };

/** torch.nn.MaxPool2d(k, s) (floor mode, no padding) on NCHW, NaN propagating. */
function refMaxPool(x: Float32Array, [b, c, h, w]: number[], k: number, s: number): Float32Array {
  const oh = Math.floor((h! - k) / s) + 1;
  const ow = Math.floor((w! - k) / s) + 1;
  const out = new Float32Array(b! * c! * oh * ow);
  for (let n = 0; n < b! * c!; n++) {
    for (let y = 0; y < oh; y++) {
      for (let xx = 0; xx < ow; xx++) {
        let m = -Infinity;
        for (let r = 0; r < k; r++) for (let q = 0; q < k; q++) {
          const v = x[n * h! * w! + (y * s + r) * w! + xx * s + q]!;
          m = Number.isNaN(v) || Number.isNaN(m) ? NaN : Math.max(m, v);
        }
        out[(n * oh + y) * ow + xx] = m;
      }
    }
  }
  return out;
}

/** lpips.normalize_tensor: x / (sqrt(Σ_c x²) + eps) per pixel. */
function refUnitNorm(x: Float32Array, [b, c, h, w]: number[], eps = 1e-10): Float32Array {
  const plane = h! * w!;
  const out = new Float32Array(x.length);
  for (let n = 0; n < b!; n++) {
    for (let p = 0; p < plane; p++) {
      let ss = 0;
      for (let ch = 0; ch < c!; ch++) ss += x[(n * c! + ch) * plane + p]! ** 2;
      const d = Math.sqrt(ss) + eps;
      for (let ch = 0; ch < c!; ch++) out[(n * c! + ch) * plane + p] = x[(n * c! + ch) * plane + p]! / d;
    }
  }
  return out;
}

test('maxPool2d = torch MaxPool2d (floor mode): kernel 2/s2 and 3/s2 on odd, non-square and minimal maps; NaN kept; windows larger than the map refused', async () => {
  const rt = await runtime();
  let seed = 9100;
  for (const [shape, k, s] of [
    [[1, 3, 8, 8], 2, 2],
    [[2, 5, 7, 9], 2, 2],
    [[1, 4, 15, 15], 3, 2],
    [[1, 2, 3, 3], 3, 2],
    [[3, 1, 2, 5], 2, 1],
    [[1, 1, 1, 1], 1, 1],
  ] as [number[], number, number][]) {
    const x = randn(shape.reduce((a, d) => a * d, 1), seed++);
    const got = await take(tidy(() => maxPool2d(rt.upload(x, shape), k, s)));
    const ref = refMaxPool(x, shape, k, s);
    assert.equal([...got], [...ref], `maxPool2d ${shape.join('×')} k${k} s${s}: exact`);
  }
  const x = randn(16, seed++);
  x[5] = NaN;
  const got = await take(tidy(() => maxPool2d(rt.upload(x, [1, 1, 4, 4]), 2, 2)));
  assert.ok(Number.isNaN(got[0]!), 'a NaN in the window gives NaN');
  assert.ok(got.slice(1).every(Number.isFinite));
  await rejects(() => tidy(() => maxPool2d(rt.upload(new Float32Array(4), [1, 1, 2, 2]), 3, 2)), /smaller than the 3×3 window/, 'window over the map');
  await rejects(() => tidy(() => maxPool2d(rt.upload(new Float32Array(4), [4]), 2, 2)), /expected NCHW/, 'rank');
});

test('relu keeps NaN as torch does (fused in a conv and alone); a backbone with an infinite weight gives a clear error, not a number', async () => {
  const rt = await runtime();
  const x = new Float32Array([NaN, -1, 2, -Infinity, Infinity, -0]);
  const y = await take(tidy(() => unary(rt.upload(x, [6]), 'relu')));
  assert.ok(Number.isNaN(y[0]!), 'relu(NaN) = NaN');
  assert.equal([...y.slice(1)], [0, 2, 0, Infinity, 0]);
  const c = await take(tidy(() => conv2d(rt.upload(new Float32Array([NaN, 1, 1, 1]), [1, 1, 2, 2]), rt.upload(new Float32Array([1]), [1, 1, 1, 1]), { act: 'relu' })));
  assert.ok(Number.isNaN(c[0]!), 'conv + fused relu keeps NaN');
  const dir = mkdtempSync(join(tmpdir(), 'diffsim-lpips-inf-'));
  try {
    const f = await SafetensorsFile.open(join(TINY, 'vgg19', 'model.safetensors'));
    const t: Record<string, { dtype: 'F32'; shape: readonly number[]; data: Float32Array }> = {};
    for (const n of f.names()) {
      const r = await f.readFloat32(n);
      if (n === 'features.5.weight') r.data[3] = Infinity;
      t[n] = { dtype: 'F32', ...r };
    }
    await f.close();
    writeFileSync(join(dir, 'model.safetensors'), encodeSafetensors(t, { format: 'pt' }));
    const g = await createMetric('gram', { runtime: rt, vggModel: dir, gram: { imageSize: 64 } });
    try {
      await rejects(() => g.score(join(GRAM_DIR, 'image_A.png'), join(GRAM_DIR, 'image_B.png')), /diffsim-lpips-inf-\w+: gram: the Gram matrix of image A is not finite/, 'infinite weight');
    } finally {
      await g.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('channelUnitNorm = lpips normalize_tensor (eps 1e-10): random maps, one channel, zero pixels, large values; abs ≤ 1e-6', async () => {
  const rt = await runtime();
  let seed = 9200;
  for (const shape of [[1, 4, 8, 8], [2, 7, 5, 3], [1, 1, 3, 4], [1, 64, 2, 2]]) {
    const x = randn(shape.reduce((a, d) => a * d, 1), seed++, shape[1] === 64 ? 1e4 : 1);
    if (shape[1] === 4) for (let c = 0; c < 4; c++) x[c * 64 + 10] = 0; // an all-zero pixel: 0, not NaN
    const got = await take(tidy(() => channelUnitNorm(rt.upload(x, shape))));
    const ref = refUnitNorm(x, shape);
    for (let i = 0; i < ref.length; i++) assert.ok(Math.abs(got[i]! - ref[i]!) <= 1e-6, `${shape.join('×')}[${i}]: ${got[i]} vs ${ref[i]}`);
  }
});

test('parity: lpips-tiny and vgg-gram-tiny, every stored tensor compared and passing with f32 and with f16 weights', async () => {
  const rt = await runtime();
  const stored = async (files: string[]) => {
    let n = 0;
    for (const f of files) {
      const s = await SafetensorsFile.open(f);
      n += s.names().length;
      await s.close();
    }
    return n;
  };
  const total = await stored([join(LPIPS_DIR, 'activations_vgg.safetensors'), join(LPIPS_DIR, 'activations_alex.safetensors'), join(GRAM_DIR, 'activations.safetensors')]);
  for (const weights of ['f32', 'f16'] as const) {
    const { rows, skipped } = await runParity(rt, FIXTURES, ['lpips-tiny', 'vgg-gram-tiny'], undefined, { weights });
    assert.equal(skipped, []);
    assert.is(rows.length, total, `${weights}: one row per stored tensor`);
    for (const r of rows) {
      assert.ok(r.kind !== 'skipped', `${weights}: ${r.name} not skipped`);
      assert.ok(r.pass, `${weights}: ${r.fixture}/${r.name}: ${r.err} over ${r.tol}`);
      if (weights === 'f32') assert.ok(r.tol <= 1e-4, `${r.name}: f32 tolerance ${r.tol}`);
      else if (!r.name.includes('input.')) assert.is(r.tol, F16_WEIGHTS_TOLERANCE);
    }
    // f32 compares every pixel; only f16 may leave out ill-conditioned ones.
    if (weights === 'f32') assert.ok(rows.every((r) => !r.note), 'f32: no pixel left out');
  }
});

test('lpips through createMetric on weights/tiny: the fixture distances for vgg and alex, normalize, lowerBetter, embeddings', async () => {
  const rt = await runtime();
  const A = join(LPIPS_DIR, 'image_A.png');
  const B = join(LPIPS_DIR, 'image_B.png');
  const size = LPIPS_SCORES.img_size;
  assert.ok(METRIC_NAMES.includes('lpips') && METRIC_NAMES.includes('gram'));
  assert.is(lowerBetterOf('lpips'), true);
  assert.is(lowerBetterOf('gram'), false);
  for (const net of ['vgg', 'alex'] as const) {
    const m = await createMetric('lpips', { runtime: rt, lpipsModel: join(TINY, `lpips-${net}`), lpips: { net, imageSize: size } });
    try {
      assert.is(m.lowerBetter, true);
      assert.is(m.settings.net, net);
      const d = await m.score(A, B);
      assert.ok(Math.abs(d - LPIPS_SCORES[net].distance[0]!) <= 1e-5, `${net}: ${d} vs ${LPIPS_SCORES[net].distance[0]}`);
      assert.ok(Math.abs(await m.score(A, A)) <= 1e-7, `${net}: an image is at distance 0 from itself`);
      const ea = await m.embed(A);
      const eb = await m.embed(B);
      assert.is(await m.compare(ea, eb), d, 'compare(embed, embed) = score');
      const la = await m.loadEmbedding(await m.saveEmbedding(ea));
      assert.is(await m.compare(la, eb), d, 'a saved embedding scores the same');
      for (const e of [ea, eb, la]) e.dispose();
    } finally {
      await m.close();
    }
    const n = await createMetric('lpips', { runtime: rt, lpipsModel: join(TINY, `lpips-${net}`), lpips: { net, imageSize: size, normalize: true } });
    try {
      const d = await n.score(A, B);
      assert.ok(Math.abs(d - LPIPS_SCORES[net].distance_normalize_true[0]!) <= 1e-5, `${net} normalize: ${d}`);
      assert.is(n.settings.normalize, true);
    } finally {
      await n.close();
    }
  }
});

test('gram through createMetric on weights/tiny: last row (official) and whole matrix, no EXIF transpose, higher = more similar', async () => {
  const rt = await runtime();
  const A = join(GRAM_DIR, 'image_A.png');
  const B = join(GRAM_DIR, 'image_B.png');
  const [last, all] = await createMetrics(['gram'], { runtime: rt, vggModel: join(TINY, 'vgg19'), gram: { imageSize: GRAM_SCORES.img_size } }).then(async ([m]) => {
    const n = await createMetric('gram', { runtime: rt, vggModel: join(TINY, 'vgg19'), gram: { imageSize: GRAM_SCORES.img_size, rows: 'all' } });
    return [m!, n];
  });
  try {
    assert.is(last.lowerBetter, false);
    assert.is(last.settings.rows, 'last');
    assert.is(all.settings.rows, 'all');
    const s = await last.score(A, B);
    assert.ok(Math.abs(s - GRAM_SCORES.score_last_row) <= 1e-5, `last row: ${s} vs ${GRAM_SCORES.score_last_row}`);
    const f = await all.score(A, B);
    assert.ok(Math.abs(f - GRAM_SCORES.score_full_matrix) <= 1e-5, `whole matrix: ${f} vs ${GRAM_SCORES.score_full_matrix}`);
    // The Gram matrix is the embedding: either rows option compares the same embeddings.
    assert.is(last.key, all.key);
    const ea = await last.embed(A);
    const eb = await last.embed(B);
    assert.is(await all.compare(ea, eb), f);
    assert.is(await last.compare(await last.loadEmbedding(await last.saveEmbedding(ea)), eb), s);
  } finally {
    await last.close();
    await all.close();
  }
});

test('bad input: clear errors naming the file, option or what was expected', async () => {
  const rt = await runtime();
  await rejects(() => createMetric('lpips', { runtime: rt, lpips: { net: 'alex' } }), /net 'alex' needs the AlexNet features.*--lpips-model/, 'alex without a backbone');
  // VGG19 weights are not LPIPS' VGG16; the Gram baseline refuses VGG16.
  await rejects(() => createMetric('lpips', { runtime: rt, lpipsModel: join(TINY, 'vgg19'), lpipsHeads: join(TINY, 'lpips-vgg'), lpips: { imageSize: 64 } }), /vgg19.*model\.safetensors: not the features of torchvision's vgg16: conv weights features\.\{0,2,5/, 'VGG19 as LPIPS backbone');
  await rejects(() => createMetric('gram', { runtime: rt, vggModel: join(TINY, 'lpips-vgg'), gram: { imageSize: 64 } }), /not the features of torchvision's vgg19/, 'VGG16 for the Gram');
  const bare = mkdtempSync(join(tmpdir(), 'diffsim-lpips-'));
  copyFileSync(join(TINY, 'lpips-vgg', 'model.safetensors'), join(bare, 'model.safetensors'));
  await rejects(() => createMetric('lpips', { runtime: rt, lpipsModel: bare, lpips: { imageSize: 64 } }), /diffsim-lpips-\w+: no LPIPS v0\.1 linear heads for net 'vgg' \(looked for lpips_vgg_v0\.1\.safetensors/, 'no heads beside the backbone');
  await rejects(() => createMetric('lpips', { runtime: rt, lpipsModel: join(bare, 'model.safetensors'), lpips: { imageSize: 64 } }), /model\.safetensors: not LPIPS v0\.1 linear heads \(expected lin0\.model\.1\.weight … lin4\.model\.1\.weight, found 0/, 'a backbone file as the heads');
  rmSync(bare, { recursive: true, force: true });
  // AlexNet heads on the VGG16 backbone: channel counts differ.
  await rejects(() => createMetric('lpips', { runtime: rt, lpipsModel: join(TINY, 'lpips-vgg'), lpipsHeads: join(TINY, 'lpips-alex', 'lpips_alex_v0.1.safetensors'), lpips: { imageSize: 64 } }), /heads take 8\/12\/16\/12\/12 channels, the vgg16 slices give 4\/8\/12\/16\/16/, 'mismatched heads');
  await rejects(() => createMetric('gram', { runtime: rt, vggModel: join(TINY, 'vgg19'), gram: { rows: 'first' as 'last' } }), /gram: rows must be 'last' or 'all', got "first"/, 'rows');
  await rejects(() => createMetric('lpips', { runtime: rt, lpipsModel: join(TINY, 'lpips-vgg'), lpips: { imageSize: 8 } }), /lpips: imageSize 8 must be an integer within 16–4096/, 'size');
  try {
    await createMetric('gram', { runtime: rt, vggModel: join(TINY, 'vgg19'), gram: { rows: 'first' as 'last' } });
  } catch (e) {
    assert.instance(e, DiffSimSettingsError);
  }
  const m = await createMetric('lpips', { runtime: rt, lpipsModel: join(TINY, 'lpips-vgg'), lpips: { imageSize: 64 } });
  const g = await createMetric('gram', { runtime: rt, vggModel: join(TINY, 'vgg19'), gram: { imageSize: 64 } });
  try {
    await rejects(() => m.score(new Uint8Array([1, 2, 3]), join(LPIPS_DIR, 'image_B.png')), /not a PNG, JPEG or BMP/, 'bytes');
    await rejects(() => g.score(join(GRAM_DIR, 'missing.png'), join(GRAM_DIR, 'image_B.png')), /missing\.png/, 'missing file');
    const e = await g.embed(join(GRAM_DIR, 'image_A.png'));
    await rejects(() => m.compare(e as never, e as never), /lpips: the first embedding was made by gram/, 'foreign embedding');
  } finally {
    await m.close();
    await g.close();
  }
});

test('eval rules: lpips compared with < in night, cute, style (intended, the script crashes) and ipref; > in tid and dreambench; gram as the other cosines', () => {
  const cosine: DecisionRule = { similarity: 'cosine', metricIsDiffsim: false };
  const lpips: DecisionRule = { ...cosine, metricIsLpips: true };
  const want: Record<string, 'higher' | 'lower'> = { nights: 'lower', cute: 'lower', sref: 'lower', instantstyle: 'lower', ipref: 'lower', tid2013: 'higher', dreambench: 'higher' };
  for (const b of BENCHMARK_NAMES) {
    assert.is(directionOf(b, lpips), want[b], `lpips ${b}`);
    assert.is(directionOf(b, cosine), 'higher', `gram (a cosine) ${b}`);
  }
  const item = { item: 0, truth: 1 as const };
  assert.is(decide('nights', lpips, item as never, 0.1, 0.3).predicted, 1, 'smaller distance → cand1');
  assert.is(decide('tid2013', lpips, item as never, 0.1, 0.3).predicted, 2, 'tid reads it the wrong way round, as the script');
  assert.is(decide2x('sref', lpips, 0.1, 0.3), true, 's1·2 < s2');
  assert.is(decide2x('sref', lpips, 0.2, 0.3), false);
  assert.is(decide2x('cute', cosine, 0.7, 0.3), true, 'gram: s1 > 2·s2');
  assert.throws(() => directionOf('nights', { ...cosine, metricIsLpips: 'yes' as unknown as boolean }), /metricIsLpips must be a boolean/);
});

test('CLI options: --lpips-net, --lpips-model, --lpips-heads, --lpips-normalize, --vgg-model, --gram-rows, --size; options of other metrics refused', async () => {
  const p = parseCommand('score', ['a', 'b', '--metric', 'lpips', '--lpips-net', 'alex', '--lpips-model', 'M', '--lpips-heads', 'H', '--lpips-normalize', '--size', '128']);
  assert.is(p.metric.lpipsNet, 'alex');
  assert.is(p.metric.lpipsModel, 'M');
  assert.is(p.metric.lpipsHeads, 'H');
  assert.is(p.metric.lpipsNormalize, true);
  assert.is(p.metric.diffsim.imageSize, 128);
  const g = parseCommand('score', ['a', 'b', '--metric', 'gram', '--gram-rows', 'all', '--vgg-model', 'V']);
  assert.is(g.metric.gramRows, 'all');
  assert.is(g.metric.vggModel, 'V');
  assert.throws(() => parseCommand('score', ['a', 'b', '--metric', 'lpips', '--gram-rows', 'all']), /--gram-rows does not apply to --metric lpips/);
  assert.throws(() => parseCommand('score', ['a', 'b', '--metric', 'gram', '--lpips-net', 'vgg']), /--lpips-net does not apply to --metric gram/);
  assert.throws(() => parseCommand('score', ['a', 'b', '--metric', 'lpips', '--lpips-net', 'squeeze']), /unknown --lpips-net "squeeze" \(one of vgg, alex\)/);
  assert.throws(() => parseCommand('score', ['a', 'b', '--metric', 'lpips', '--step', '500']), /--step does not apply to --metric lpips/);
});

test('architectures and buffer estimates: torchvision indices, arch detection, lpips/gram needs from the headers', async () => {
  assert.is(featureOps('vgg16').length, 31);
  assert.is(featureOps('vgg19').length, 37);
  assert.is(featureOps('alexnet').length, 13);
  assert.equal(featureOps('vgg19')[28], { kind: 'conv', kernel: 3, stride: 1, padding: 1 }, 'index 28 = conv5_1');
  const names = (n: number[]) => ({ name: 'x.safetensors', names: () => n.map((i) => `features.${i}.weight`) });
  assert.is(detectArch(names([0, 3, 6, 8, 10])), 'alexnet');
  assert.throws(() => detectArch(names([0, 2, 5])), /x\.safetensors: not the features of torchvision's vgg16 \/ vgg19 \/ alexnet/);
  const lp = await localModelFiles(join(TINY, 'lpips-vgg'));
  const needs = await bufferNeeds('lpips', { lpips: lp, lpipsHeads: lp }, { imageSize: 64 });
  assert.is(needs.filter((n) => n.kind === 'weight').length, 26 + 5, 'features and heads');
  assert.ok(needs.some((n) => n.tensor === 'features.0:out' && n.shape.join() === '1,4,64,64'));
  const vgg = await localModelFiles(join(TINY, 'vgg19'));
  const gn = await bufferNeeds('gram', { vgg: vgg }, { imageSize: 64, images: [{ width: 80, height: 64 }] });
  assert.is(gn.filter((n) => n.kind === 'weight').length, 26, 'VGG19 up to conv5_1: 13 convs');
  assert.ok(gn.some((n) => n.tensor === 'features.28:out' && n.shape.join() === '1,16,4,5'));
});

test("the default hub ids: timm's vgg16.tv_in1k / vgg19.tv_in1k layout (features.N kept, pre_logits and head ignored, .bin never fetched)", async () => {
  // The tiny backbones as timm publishes the real ones: model.safetensors with torchvision's
  // features.N keys plus its classifier (pre_logits.fc1/fc2, head.fc), a config, a pickle twin.
  const timmFile = async (src: string, convs: number) => {
    const f = await SafetensorsFile.open(src);
    const tensors: Record<string, { dtype: 'F32'; shape: readonly number[]; data: Float32Array }> = {};
    for (const n of f.names()) tensors[n] = { dtype: 'F32', ...(await f.readFloat32(n)) };
    await f.close();
    tensors['pre_logits.fc1.weight'] = { dtype: 'F32', shape: [8, convs, 7, 7], data: new Float32Array(8 * convs * 49) };
    tensors['pre_logits.fc1.bias'] = { dtype: 'F32', shape: [8], data: new Float32Array(8) };
    tensors['pre_logits.fc2.weight'] = { dtype: 'F32', shape: [8, 8, 1, 1], data: new Float32Array(64) };
    tensors['head.fc.weight'] = { dtype: 'F32', shape: [10, 8], data: new Float32Array(80) };
    tensors['head.fc.bias'] = { dtype: 'F32', shape: [10], data: new Float32Array(10) };
    return encodeSafetensors(tensors, { format: 'pt' });
  };
  const repo = async (src: string, arch: string) => ({
    commit: arch === 'vgg16' ? 'a'.repeat(40) : 'b'.repeat(40),
    files: {
      'config.json': { content: new TextEncoder().encode(JSON.stringify({ architecture: arch, num_classes: 10 })) },
      'model.safetensors': { content: await timmFile(src, 16), lfs: true },
      'pytorch_model.bin': { content: new Uint8Array(64), lfs: true },
    },
  });
  const hub = new FakeHub({ 'timm/vgg16.tv_in1k': await repo(join(TINY, 'lpips-vgg', 'model.safetensors'), 'vgg16'), 'timm/vgg19.tv_in1k': await repo(join(TINY, 'vgg19', 'model.safetensors'), 'vgg19') });
  const endpoint = await hub.start();
  const cacheDir = mkdtempSync(join(tmpdir(), 'diffsim-lpips-hub-'));
  try {
    const rt = await runtime();
    const hubOpts = { env: {}, cacheDir, endpoint };
    const lpips = await createMetric('lpips', { runtime: rt, hub: hubOpts, lpipsHeads: join(TINY, 'lpips-vgg', 'lpips_vgg_v0.1.safetensors'), lpips: { imageSize: LPIPS_SCORES.img_size } });
    try {
      assert.is((lpips.settings.models as Record<string, { spec: string }>).lpips!.spec, 'timm/vgg16.tv_in1k');
      const d = await lpips.score(join(LPIPS_DIR, 'image_A.png'), join(LPIPS_DIR, 'image_B.png'));
      assert.ok(Math.abs(d - LPIPS_SCORES.vgg.distance[0]!) <= 1e-5, `timm layout: ${d}`);
    } finally {
      await lpips.close();
    }
    const gram = await createMetric('gram', { runtime: rt, hub: hubOpts, gram: { imageSize: GRAM_SCORES.img_size } });
    try {
      const s = await gram.score(join(GRAM_DIR, 'image_A.png'), join(GRAM_DIR, 'image_B.png'));
      assert.ok(Math.abs(s - GRAM_SCORES.score_last_row) <= 1e-5, `timm layout: ${s}`);
    } finally {
      await gram.close();
    }
    assert.ok(!hub.requests.some((r) => r.url.includes('pytorch_model.bin')), 'the pickle is never fetched');
    // Without heads beside timm's backbone: the error says how to give them.
    await rejects(() => createMetric('lpips', { runtime: rt, hub: hubOpts, lpips: { imageSize: 64 } }), /no LPIPS v0\.1 linear heads for net 'vgg'.*--lpips-heads/, 'no heads in the timm repo');
  } finally {
    await hub.stop();
    rmSync(cacheDir, { recursive: true, force: true });
  }
});


test('eval on synthetic ipref and sref: lpips rows follow s1 < s2, gram rows s1 > s2; the CLI runs both', async () => {
  const tmp = mkdtempSync(join(tmpdir(), 'diffsim-lpips-eval-'));
  try {
    const ipref = join(tmp, 'ipref');
    const orig = join(tmp, 'ipa-bench');
    let seed = 1;
    for (const cls of ['cat', 'dog']) {
      for (const w of ['1.0', '0.8', '0.6', '0.4', '0.35', '0.3', '0.2']) writeImage(join(ipref, cls, `${w}.png`), seed++);
      writeImage(join(orig, `${cls}.JPG`), seed++);
    }
    const sref = join(tmp, 'sref');
    for (const g of ['001', '002', '003']) for (const f of ['01', '02', '03']) writeImage(join(sref, g, `${f}.png`), seed++);
    const rt = await runtime();
    const [lpips, gram] = await createMetrics(['lpips', 'gram'], { runtime: rt, lpipsModel: join(TINY, 'lpips-vgg'), vggModel: join(TINY, 'vgg19'), lpips: { imageSize: 64 }, gram: { imageSize: 64 } });
    try {
      const items = await listItems('ipref', ipref, { originals: orig });
      const r = await runEval({ benchmark: 'ipref', items, of: items.length, dir: ipref, originals: orig, metrics: [lpips!], rule: { similarity: 'cosine', metricIsDiffsim: false, metricIsLpips: true }, run: 'r', metricName: 'lpips' });
      assert.is(r.rows.length, 10);
      for (const row of r.rows) {
        const p = itemPaths(items[row.item]!, ipref, { originals: orig });
        assert.is(row.s1, await lpips!.score(p.anchor, p.cand1), 's1 = lpips(anchor, cand1)');
        assert.is(row.predicted, row.s1 < row.s2 ? 1 : 2, 'ipref, lpips: s1 < s2 → cand1');
      }
      const sItems = await listItems('sref', sref, { trials: 6 });
      const g = await runEval({ benchmark: 'sref', items: sItems, of: sItems.length, dir: sref, metrics: [gram!], rule: { similarity: 'cosine', metricIsDiffsim: false }, run: 'g', metricName: 'gram' });
      for (const row of g.rows) {
        assert.is(row.predicted, row.s1 > row.s2 ? 1 : 2, 'sref, gram: s1 > s2 → cand1');
        assert.is(row.twice, row.s1 > 2 * row.s2, 'gram 2x: s1 > 2·s2');
      }
    } finally {
      await lpips!.close();
      await gram!.close();
    }
    const cli = (...args: string[]) => runCli(args, { timeout: 300_000, env: { HF_HUB_OFFLINE: '1' } });
    const e = cli('eval', 'sref', sref, '--trials', '4', '--metric', 'lpips', '--lpips-model', join(TINY, 'lpips-vgg'), '--size', '64', '--json');
    assert.is(e.code, 0, e.stderr);
    assert.match(e.stderr, /cand1 counts as more similar when s1 < s2/);
    const out = JSON.parse(e.stdout.trim().split('\n').at(-1)!) as { total: number; settings: Record<string, unknown> };
    assert.is(out.total, 4);
    assert.is(out.settings.net, 'vgg');
    const t = cli('eval', 'sref', sref, '--trials', '4', '--metric', 'gram', '--vgg-model', join(TINY, 'vgg19'), '--size', '64', '--json');
    assert.is(t.code, 0, t.stderr);
    assert.match(t.stderr, /cand1 counts as more similar when s1 > s2/);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
});

test.run();
