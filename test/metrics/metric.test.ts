// Slow suite: about 74 s of CPU on lavapipe (169 s wall on a shared 2-core machine).
// createMetric on the shipped tiny models (weights/tiny, hub layouts): every metric by name, inputs
// as paths, bytes or pixels, lowerBetter, embed/compare = score, embeddings saved and read back,
// load progress, the diffeats ablation, the ensemble on Metric objects, and what close frees.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { LoadEvent } from '../../src/io/events.js';
import { createMetric, createMetrics, cosine64, lowerBetterOf, METRIC_NAMES, minMaxNormalise, toRgbImage, type CreateMetricOptions } from '../../src/diffsim/metric.js';
import { DiffSim } from '../../src/diffsim/core.js';
import { Ensemble } from '../../src/diffsim/ensemble.js';
import { loadImage } from '../../src/io/image.js';
import { FIXTURES, REPO_ROOT, rejects, runtime } from '../support/helpers.js';

const TINY = join(REPO_ROOT, 'weights', 'tiny');
const A = join(FIXTURES, 'diffsim-tiny', 'image_A.png');
const B = join(FIXTURES, 'diffsim-tiny', 'image_B.png');
const MODELS: CreateMetricOptions = { model: join(TINY, 'sd15'), xlModel: join(TINY, 'sdxl'), ipAdapter: join(TINY, 'ip-adapter'), clipModel: join(TINY, 'clip'), dinoModel: join(TINY, 'dinov2'), lpipsModel: join(TINY, 'lpips-vgg'), vggModel: join(TINY, 'vgg19'), lpips: { imageSize: 64 }, gram: { imageSize: 64 }, ditModel: join(TINY, 'dit') };

test('every metric by name: one finite score for paths, bytes and decoded images alike; lowerBetter', async () => {
  const rt = await runtime();
  const bytesA = new Uint8Array(readFileSync(A));
  const bytesB = new Uint8Array(readFileSync(B));
  const pixA = await loadImage(A);
  const pixB = await loadImage(B);
  for (const name of METRIC_NAMES) {
    // diffsim-xl at 64 px (its default is the official 512): the tiny SDXL stays quick.
    const m = await createMetric(name, { ...MODELS, runtime: rt, ...(name === 'diffsim-xl' ? { diffsim: { imageSize: 64 } } : {}) });
    try {
      assert.is(m.name, name);
      assert.is(m.lowerBetter, name === 'lpips', `${name}: cosine by default (lpips: a distance)`);
      const fromPaths = await m.score(A, B);
      assert.ok(Number.isFinite(fromPaths), `${name}: finite score`);
      assert.is(await m.score(bytesA, bytesB), fromPaths, `${name}: bytes = paths`);
      assert.is(await m.score(bytesA.buffer.slice(bytesA.byteOffset, bytesA.byteOffset + bytesA.byteLength), pixB), fromPaths, `${name}: ArrayBuffer and pixels = paths`);
      const ea = await m.embed(pixA, 'A');
      const eb = await m.embed(B, 'B');
      assert.is(await m.compare(ea, eb), fromPaths, `${name}: compare(embed, embed) = score`);
      // Saved and read back: the same score.
      const la = await m.loadEmbedding(await m.saveEmbedding(ea), 'a.safetensors');
      assert.is(la.role, 'A');
      assert.is(await m.compare(la, eb), fromPaths, `${name}: a saved embedding scores the same`);
      for (const e of [ea, eb, la]) e.dispose();
      assert.is(m.roleDependent, name.startsWith('diff'), `${name}: roleDependent`);
    } finally {
      await m.close();
    }
  }
  const mse = await createMetric('diffsim', { ...MODELS, runtime: rt, diffsim: { similarity: 'mse' } });
  assert.is(mse.lowerBetter, true);
  assert.is(mse.settings.lowerBetter, true);
  await mse.close();
  assert.is(lowerBetterOf('diffsim', { similarity: 'mse' }), true);
  assert.is(lowerBetterOf('clip', { similarity: 'mse' }), false);
});

test('the DiffSim metric equals the DiffSim class on the same models and settings', async () => {
  const rt = await runtime();
  const m = await createMetric('diffsim', { ...MODELS, runtime: rt, diffsim: { step: 600 } });
  const ds = await DiffSim.load(rt, join(TINY, 'sd15'), { step: 600 });
  try {
    const a = await loadImage(A);
    const b = await loadImage(B);
    assert.is(await m.score(A, B), await ds.score(a, b));
    assert.is(m.settings.t, 401);
    assert.is(m.settings.module, ds.settings.module);
    // A local folder: its absolute path and the stamp of its files' sizes and mtimes (in the metric key).
    const stamp = (m.settings.models as { sd: { stamp?: string } }).sd.stamp;
    assert.match(String(stamp), /^[0-9a-f]{32}$/);
    assert.equal(m.settings.models, { sd: { spec: join(TINY, 'sd15'), path: join(TINY, 'sd15'), stamp } });
  } finally {
    await m.close();
    ds.dispose();
    for (const part of [ds.models.unet, ds.models.vae, ds.models.textEncoder]) part.store.dispose();
  }
});

test('withPrompt: the same metric with another prompt on the same models; freed with the original', async () => {
  const rt = await runtime();
  const [m, c] = await createMetrics(['diffsim', 'clip'], { ...MODELS, runtime: rt });
  const direct = await createMetric('diffsim', { ...MODELS, runtime: rt, diffsim: { prompt: 'An image of a dog' } });
  const expected = await direct.score(A, B);
  await direct.close();
  const before = rt.memory().liveBytes;
  const dog = m!.withPrompt('An image of a dog');
  assert.is(m!.withPrompt('An image of a dog'), dog, 'built once');
  assert.is(m!.withPrompt(String(m!.settings.prompt)), m, 'the same prompt is the metric itself');
  assert.is(await dog.score(A, B), expected);
  assert.is(dog.settings.prompt, 'An image of a dog');
  assert.not.equal(await m!.score(A, B), expected);
  assert.is(c!.withPrompt('anything'), c, 'CLIP has no prompt');
  const ed = await dog.embed(A, 'A');
  const eb = await m!.embed(B, 'B');
  await rejects(() => m!.compare(eb, ed), /other settings/, 'embeddings of another prompt are not comparable');
  ed.dispose();
  eb.dispose();
  await dog.close();
  assert.ok(rt.memory().liveBytes > before, 'closing the derived metric frees nothing');
  await m!.close();
  await c!.close();
});

test('embeddings of another metric, other settings or the same role are refused', async () => {
  const rt = await runtime();
  const [d, c] = await createMetrics(['diffsim', 'clip'], { ...MODELS, runtime: rt });
  const other = await createMetric('diffsim', { ...MODELS, runtime: rt, diffsim: { step: 700 } });
  try {
    const ed = await d!.embed(A, 'A');
    const ed2 = await d!.embed(B, 'A');
    const ec = await c!.embed(B);
    const eo = await other.embed(B, 'B');
    await rejects(() => d!.compare(ed, ec), /diffsim: the second embedding was made by clip/, 'other metric');
    await rejects(() => d!.compare(ed, eo), /other settings/, 'other settings');
    await rejects(() => d!.compare(ed, ed2), /both embeddings have role A/, 'same role');
    await rejects(async () => d!.loadEmbedding(await c!.saveEmbedding(ec)), /an embedding of clip, not diffsim/, 'load another metric');
    await rejects(async () => d!.loadEmbedding(await other.saveEmbedding(eo)), /other settings/, 'load other settings');
    await rejects(() => d!.embed(A, 'C' as 'A'), /role must be 'A' or 'B'/, 'role');
    await rejects(() => d!.score(A, join(REPO_ROOT, 'package.json')), /package\.json: not a PNG, JPEG or BMP image/, 'not an image');
    await rejects(() => d!.score(A, { width: 2, height: 2, data: new Uint8Array(5) }), /2×2 RGB pixels need 12 bytes, got 5/, 'bad pixels');
    await rejects(() => createMetric('dists' as 'clip', { ...MODELS, runtime: rt }), /unknown metric "dists"/, 'unknown name');
    await rejects(() => createMetric('clip-aas', { ...MODELS, runtime: rt, layer: 9 }), /layer 9: the CLIP encoder has 3 layers/, 'CLIP layer');
    for (const e of [ed, ed2, ec, eo]) e.dispose();
  } finally {
    for (const m of [d!, c!, other]) await m.close();
  }
});

test('progress while loading: weights (tensors and bytes rising to the total) and ready, per model, naming the model as given', async () => {
  const rt = await runtime();
  const events: LoadEvent[] = [];
  const ms = await createMetrics(['diffsim', 'dino'], { ...MODELS, runtime: rt, onProgress: (e) => events.push(e) });
  for (const m of ms) await m.close();
  // Local folders: nothing to download.
  assert.equal([...new Set(events.map((e) => e.status))].sort(), ['ready', 'weights']);
  assert.equal(events.flatMap((e) => (e.status === 'ready' ? [[e.role, e.name, e.path]] : [])), [['sd', MODELS.model, MODELS.model], ['dino', MODELS.dinoModel, MODELS.dinoModel]]);
  for (const role of ['sd', 'dino'] as const) {
    const w = events.flatMap((e) => (e.status === 'weights' && e.role === role ? [e] : []));
    assert.ok(w.every((e) => e.name === (role === 'sd' ? MODELS.model : MODELS.dinoModel)), `${role}: named by the model`);
    // SD: the U-Net, VAE and text encoder files, each from 0 to all its tensors.
    const files = [...new Set(w.map((p) => p.file))];
    assert.equal(files.sort(), role === 'sd' ? ['text_encoder/model.safetensors', 'unet/diffusion_pytorch_model.safetensors', 'vae/diffusion_pytorch_model.safetensors'] : ['model.safetensors'], `${role}: files`);
    for (const f of files) {
      const ps = w.filter((p) => p.file === f);
      assert.is(ps[0]!.loaded, 0);
      assert.is(ps.at(-1)!.loaded, ps.at(-1)!.total, `${f}: every tensor`);
      assert.is(ps.at(-1)!.bytes, ps.at(-1)!.totalBytes, `${f}: every byte`);
      assert.ok(ps.every((p, i) => i === 0 || p.loaded === ps[i - 1]!.loaded + 1), `${f}: one event per tensor`);
    }
  }
});

test('close frees the weights on a given runtime; a metric without one closes its own', async () => {
  const rt = await runtime();
  const before = rt.memory().liveBytes;
  const ms = await createMetrics(['diffsim-c', 'diffsim', 'clip'], { ...MODELS, runtime: rt });
  await ms[0]!.score(A, B);
  assert.ok(rt.memory().liveBytes > before);
  for (const m of ms) await m.close();
  assert.is(rt.memory().liveBytes, before, 'everything freed when the last metric closes');
  const own = await createMetric('dino', { ...MODELS });
  assert.ok(Number.isFinite(await own.score(A, A)));
  assert.ok(own.runtime.memory().allocatedBytes > 0);
  await own.close();
  assert.is(own.runtime.memory().allocatedBytes, 0, 'its runtime is closed');
});

test('diffeats: the min–max normalised attn1 output, cosine of the flattened tensors; layer honoured', async () => {
  const rt = await runtime();
  const m = await createMetric('diffeats', { ...MODELS, runtime: rt, diffsim: { layer: 1 } });
  const ds = new DiffSim(rt, (await DiffSim.loadModels(rt, join(TINY, 'sd15'))), { layer: 1, layerMode: 'as-given' });
  try {
    assert.match(String(m.settings.module), /^up_blocks\.2\./, 'layer 1 (up_blocks[1:][1]), not forced to 0');
    const tap = `${ds.settings.module}:out`;
    const feature = async (path: string, role: 'A' | 'B') => {
      const e = ds.embed(await toRgbImage(path), role, { taps: [tap] });
      const x = (await e.taps.get(tap)!.read()) as Float32Array;
      e.dispose();
      return x;
    };
    const fa = minMaxNormalise(await feature(A, 'A'));
    const fb = minMaxNormalise(await feature(B, 'B'));
    assert.is(Math.min(...fa), 0);
    assert.is(Math.max(...fa), 1);
    const expected = cosine64(fa, fb);
    assert.ok(Math.abs((await m.score(A, B)) - expected) < 1e-12, 'the score is the cosine of the normalised features');
    assert.ok(Math.abs((await m.score(A, A)) - 1) > 1e-6, 'A against itself as B differs (other noise)');
    await rejects(() => createMetric('diffeats', { ...MODELS, runtime: rt, diffsim: { similarity: 'mse' } }), /diffeats: the score is a cosine/, 'mse refused');
    // A tap in the hooked module keeps the early stop and changes no Q/K/V.
    const plain = ds.embed(await toRgbImage(A), 'A');
    const tapped = ds.embed(await toRgbImage(A), 'A', { taps: [tap] });
    assert.equal(await tapped.q.read(), await plain.q.read());
    plain.dispose();
    tapped.dispose();
    assert.equal(minMaxNormalise(new Float32Array([3, 3])), new Float32Array([0, 0]), 'a constant tensor');
  } finally {
    await m.close();
    ds.dispose();
    for (const part of [ds.models.unet, ds.models.vae, ds.models.textEncoder]) part.store.dispose();
  }
});

test('ensemble on Metric objects: the official vote, the reference embedded once as A', async () => {
  const rt = await runtime();
  const ens = await Ensemble.create({ ...MODELS, runtime: rt });
  try {
    const p = await ens.pick(A, A, B);
    assert.is(p.pick, 1);
    assert.equal(p.votes, { diffsim: 1, clip: 1, dino: 1 });
    assert.equal(p.scores.clip, await Ensemble.pair(ens.clip, A, A, B));
    // decide: the vote rule on given scores (a tie in one metric votes for the first candidate).
    assert.is(ens.decide({ diffsim: [1, 1], clip: [0, 1], dino: [1, 0] }).pick, 1);
    assert.is(ens.decide({ diffsim: [0, 1], clip: [0, 1], dino: [1, 0] }).pick, 2);
    // One metric's pick, as `diffsim pick --metric clip`: 1 or 2, a tie goes to the second.
    assert.equal(await Ensemble.pickOne(ens.clip, A, A, B), { pick: 1, scores: p.scores.clip });
    assert.is((await Ensemble.pickOne(ens.clip, A, B, B)).pick, 2, 'a tie goes to 2');
  } finally {
    await ens.close();
  }
});

test.run();
