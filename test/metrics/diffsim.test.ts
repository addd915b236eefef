// Slow suite: about 122 s of CPU on lavapipe (355 s wall on a shared 2-core machine).
// The DiffSim metric on the tiny fixture models: the reference score from the subset, the
// embed/compare contract, execution options that must not change a score, refused settings and
// pairs, the CLIP/DINOv2 metrics and the ensemble vote.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { join } from 'node:path';
import { SafetensorsFile } from '../../src/io/safetensors.js';
import { loadImage, type RgbImage } from '../../src/io/image.js';
import { WeightStore, type LoadOptions } from '../../src/nn/weights.js';
import { UNet2DConditionModel, type UNetConfig } from '../../src/models/unet.js';
import { VaeEncoder, legacyVaeKey, type VaeConfig } from '../../src/models/vae.js';
import { ClipTextModel, type ClipTextConfig } from '../../src/models/clip-text.js';
import { ClipTokenizer } from '../../src/models/clip-tokenizer.js';
import { PNDMScheduler, type SchedulerConfig } from '../../src/models/scheduler.js';
import { IpAdapterPlus, type IpAdapterConfig } from '../../src/models/ip-adapter.js';
import { ClipModel, ClipVisionModel, type ClipModelConfig, type ClipVisionConfig } from '../../src/models/clip-vision.js';
import { Dinov2Model, type Dinov2Config } from '../../src/models/dinov2.js';
import { f16BitsToF32, f32ToF16Bits } from '../../src/platform/half.js';
import { DiffSim, type DiffSimModels, type GivenNoise } from '../../src/diffsim/core.js';
import { DiffSimEmbedding } from '../../src/diffsim/embedding.js';
import { ClipMetric, Dinov2Metric } from '../../src/diffsim/vision.js';
import { majority, vote } from '../../src/diffsim/ensemble.js';
import type { DiffSimSettings } from '../../src/diffsim/settings.js';
import { FIXTURES, normErr, rejects, runtime } from '../support/helpers.js';

const DIR = join(FIXTURES, 'diffsim-tiny');

async function loadModel<T>(rel: string, build: (store: WeightStore, config: unknown, file: SafetensorsFile) => T, o: LoadOptions = {}): Promise<T> {
  const rt = await runtime();
  const file = await SafetensorsFile.open(join(FIXTURES, rel));
  try {
    const store = new WeightStore();
    const model = build(store, JSON.parse(file.metadata.config!), file);
    await store.load(rt, file, o);
    return model;
  } finally {
    await file.close();
  }
}

let cached: Promise<{ models: DiffSimModels; A: RgbImage; B: RgbImage }> | null = null;
/** The subset's tiny SD1.5 parts, IP-Adapter Plus and the two images (loaded once). */
function setup(): Promise<{ models: DiffSimModels; A: RgbImage; B: RgbImage }> {
  cached ??= (async () => {
    const unet = await loadModel('unet-tiny/unet.safetensors', (s, c) => new UNet2DConditionModel(s, c as UNetConfig));
    const vae = await loadModel('vae-encoder-tiny/vae.safetensors', (s, c) => new VaeEncoder(s, c as VaeConfig), { rename: legacyVaeKey, ignore: [/^decoder\./, /^post_quant_conv\./], allowSqueeze: true });
    const textEncoder = await loadModel('clip-text-tiny/text_encoder.safetensors', (s, c) => new ClipTextModel(s, c as ClipTextConfig), { ignore: [/position_ids$/] });
    const tokenizer = await ClipTokenizer.fromDirectory(join(FIXTURES, 'clip-text-tiny', 'tokenizer'));
    const sched = await SafetensorsFile.open(join(FIXTURES, 'scheduler', 'pndm_sd15.safetensors'));
    const scheduler = new PNDMScheduler(JSON.parse(sched.metadata.config!) as SchedulerConfig);
    await sched.close();
    const ipAdapter = await loadModel('ip-adapter-plus-tiny/ip-adapter-plus_sd15.safetensors', (s, c) => new IpAdapterPlus(s, c as IpAdapterConfig, unet));
    const imageEncoder = await loadModel('clip-vision-h14-tiny/image_encoder.safetensors', (s, c, f) => new ClipVisionModel(s, c as ClipVisionConfig, { projection: f.has('visual_projection.weight') }));
    return { models: { unet, vae, textEncoder, tokenizer, scheduler, ipAdapter, imageEncoder }, A: await loadImage(join(DIR, 'image_A.png')), B: await loadImage(join(DIR, 'image_B.png')) };
  })();
  return cached;
}

/** The reference settings of the subset's diffsim_s file (image size, prompts, seed, steps). */
async function referenceSettings(file: SafetensorsFile): Promise<Partial<DiffSimSettings>> {
  const c = JSON.parse(file.metadata.config!) as { img_size: number; prompt: string; negative_prompt: string; generator_seed: number; num_inference_steps: number };
  return { imageSize: c.img_size, prompt: c.prompt, negativePrompt: c.negative_prompt, seed: c.generator_seed, inferenceSteps: c.num_inference_steps };
}

async function storedNoise(file: SafetensorsFile, role: 'A' | 'B'): Promise<GivenNoise> {
  return { vae: (await file.readFloat32(`vae.eps_${role}`)).data, forward: (await file.readFloat32(`noise_${role}`)).data };
}

/** A smaller image (latent 8×8) for the tests that need no reference values: 4× fewer pixels. */
const SMALL: Partial<DiffSimSettings> = { imageSize: 64 };

/** Embeds A as 'A' and B as 'B' with `metric`, returns the detailed score, frees the embeddings. */
async function pairScore(metric: DiffSim, A: RgbImage, B: RgbImage, noise?: { A: GivenNoise; B: GivenNoise }) {
  const ea = metric.embed(A, 'A', noise ? { noise: noise.A } : {});
  const eb = metric.embed(B, 'B', noise ? { noise: noise.B } : {});
  try {
    return await metric.compareDetailed(ea, eb);
  } finally {
    ea.dispose();
    eb.dispose();
  }
}

test('DiffSim-S on the subset: the reference up_blocks.0 score at step 600 (t = 401) within 1e-5, mse within 1e-3', async () => {
  const rt = await runtime();
  const { models, A, B } = await setup();
  const ref = await SafetensorsFile.open(join(DIR, 'diffsim_s.safetensors'));
  try {
    const metric = new DiffSim(rt, models, { ...(await referenceSettings(ref)), step: 600 });
    assert.is(metric.settings.t, 401);
    assert.is(metric.settings.module, 'up_blocks.1.attentions.2.transformer_blocks.0.attn1');
    const d = await pairScore(metric, A, B, { A: await storedNoise(ref, 'A'), B: await storedNoise(ref, 'B') });
    const value = async (n: string) => (await ref.readFloat32(`step600.up_blocks.0.${n}`)).data[0]!;
    for (const [ours, n] of [[d.cosine, 'score_cos'], [d.ab.cos, 'aas_ab_cos'], [d.ba.cos, 'aas_ba_cos']] as const) {
      assert.ok(Math.abs(ours - (await value(n))) <= 1e-5, `${n}: ${ours} vs ${await value(n)}`);
    }
    assert.is(d.score, d.cosine);
    const mse = await value('score_mse');
    assert.ok(Math.abs(d.mse - mse) / mse <= 1e-3, `score_mse ${d.mse} vs ${mse}`);
    metric.dispose();
  } finally {
    await ref.close();
  }
});

test('score(a, b) equals compare(embed(a, A), embed(b, B)) bit for bit; an embedding is deterministic', async () => {
  const rt = await runtime();
  const { models, A, B } = await setup();
  const metric = new DiffSim(rt, models, { ...SMALL, step: 600 });
  const s = await metric.score(A, B);
  const d = await pairScore(metric, A, B);
  assert.ok(Object.is(s, d.score), `score ${s} vs compare ${d.score}`);
  assert.ok(Object.is(s, await metric.score(A, B)), 'a second score() differs');
  // Also for a score that is not the default cosine (mse, rounded to float16).
  const mse = new DiffSim(rt, models, { ...SMALL, step: 600, similarity: 'mse', roundToF16: true });
  const sm = await mse.score(A, B);
  assert.ok(Object.is(sm, (await pairScore(mse, A, B)).score), 'mse score() vs compare()');
  // Roles matter: the same image embedded as A and as B gets different noise (four official draws).
  const a1 = metric.embed(A, 'A');
  const a2 = metric.embed(A, 'A');
  const b1 = metric.embed(A, 'B');
  try {
    const [q1, q2, qb] = await Promise.all([a1.q.read(), a2.q.read(), b1.q.read()]);
    assert.equal([...q1], [...q2], 'same image, same role: identical Q');
    assert.ok(normErr(q1, qb) > 1e-4, 'role B must use other noise draws');
  } finally {
    for (const e of [a1, a2, b1]) e.dispose();
  }
  metric.dispose();
});

test('matrix and nearest agree with score entry by entry (official and shared noise, cosine and mse)', async () => {
  const rt = await runtime();
  const { models, A, B } = await setup();
  const C = { ...A, data: A.data.map((v, i) => (i % 7 === 0 ? 255 - v : v)) };
  const images = [A, B, C];
  for (const settings of [{ step: 600 }, { step: 600, noise: 'shared' as const }, { step: 600, similarity: 'mse' as const }]) {
    const metric = new DiffSim(rt, models, { ...SMALL, ...settings });
    const m = await metric.matrix(images);
    for (let i = 0; i < 3; i++) for (let j = 0; j < 3; j++) assert.ok(Object.is(m[i]![j], await metric.score(images[i]!, images[j]!)), `${JSON.stringify(settings)} [${i}][${j}]`);
    const top = await metric.nearest(A, [B, C, A], 2);
    const want = [0, 1, 2].map((index) => ({ index, score: m[0]![[1, 2, 0][index]!]! })).sort((x, y) => (metric.lowerBetter ? x.score - y.score : y.score - x.score) || x.index - y.index).slice(0, 2);
    assert.equal(top, want, `${JSON.stringify(settings)} nearest`);
    metric.dispose();
  }
});

test("noise 'shared' gives B the draws of A; the generator's draws follow the official order", async () => {
  const rt = await runtime();
  const { models } = await setup();
  const official = new DiffSim(rt, models, { step: 600 });
  const shared = new DiffSim(rt, models, { step: 600, noise: 'shared' });
  const a = official.generatorNoise('A');
  const b = official.generatorNoise('B');
  assert.equal([...shared.generatorNoise('B').forward], [...a.forward]);
  assert.equal([...shared.generatorNoise('B').vae], [...a.vae]);
  assert.ok(normErr(a.forward, b.forward) > 0.1 && normErr(a.vae, b.vae) > 0.1);
  // Draw order: ε_vae(A), ε_vae(B), noise(A), noise(B) from one generator.
  const n = a.forward.length;
  const { NormalGenerator } = await import('../../src/models/scheduler.js');
  const all = new NormalGenerator(2334).randn(4 * n);
  assert.equal([...a.vae], [...all.subarray(0, n)]);
  assert.equal([...b.vae], [...all.subarray(n, 2 * n)]);
  assert.equal([...a.forward], [...all.subarray(2 * n, 3 * n)]);
  assert.equal([...b.forward], [...all.subarray(3 * n, 4 * n)]);
});

test('early stop and the CFG dedupe change no score (against a full pass, and without the dedupe)', async () => {
  const rt = await runtime();
  const { models, A, B } = await setup();
  const qkv = async (e: DiffSimEmbedding) => [...(await e.q.read()), ...(await e.k.read()), ...(await e.v.read())];
  /** One embedding of A with each execution option set, freed after. */
  const embedA = async (settings: Partial<DiffSimSettings>, execution: { earlyStop?: boolean; dedupeCfg?: boolean }) => {
    const e = new DiffSim(rt, models, settings, execution).embed(A, 'A');
    try {
      return { shape: e.q.shape, values: await qkv(e) };
    } finally {
      e.dispose();
    }
  };
  // Equal prompts: both CFG halves are the same computation, run once and duplicated.
  const same: Partial<DiffSimSettings> = { ...SMALL, step: 600, prompt: 'High quality image', negativePrompt: 'High quality image' };
  const fast = await pairScore(new DiffSim(rt, models, same), A, B);
  const slow = await pairScore(new DiffSim(rt, models, same, { earlyStop: false, dedupeCfg: false }), A, B);
  assert.ok(Math.abs(fast.cosine - slow.cosine) <= 1e-6, `dedupe: ${fast.cosine} vs ${slow.cosine}`);
  assert.ok(Math.abs(fast.mse - slow.mse) <= 1e-5 * Math.abs(slow.mse), `dedupe mse: ${fast.mse} vs ${slow.mse}`);
  // The deduplicated embedding still holds both halves.
  const once = await embedA(same, {});
  const twice = await embedA(same, { dedupeCfg: false });
  assert.equal(once.shape, twice.shape);
  assert.ok(normErr(once.values, twice.values) <= 1e-6, 'dedupe changed Q/K/V');
  // Early stop alone is the same computation up to the hooked layer: identical Q/K/V.
  const stopped = await embedA(same, { dedupeCfg: false });
  const full = await embedA(same, { dedupeCfg: false, earlyStop: false });
  assert.equal(stopped.shape, [2, 4, 64]);
  assert.ok(stopped.values.every((v, i) => Object.is(v, full.values[i])), 'early stop changed Q/K/V');
  // Different prompts: no dedupe may happen (the halves differ).
  const diff = await embedA({ ...SMALL, step: 600 }, {});
  const diffRef = await embedA({ ...SMALL, step: 600 }, { dedupeCfg: false });
  assert.ok(diff.values.every((v, i) => Object.is(v, diffRef.values[i])), 'different prompts: Q/K/V changed');
  // DiffSim-C: the halves differ by their IP image even with equal prompts: no dedupe.
  const c = await embedA({ ...same, variant: 'C' }, {});
  const cRef = await embedA({ ...same, variant: 'C' }, { dedupeCfg: false, earlyStop: false });
  assert.ok(c.values.every((v, i) => Object.is(v, cRef.values[i])), 'DiffSim-C: Q/K/V changed');
});

test('step: official index (step 0 refused: t = 1000 is out of range; t = 1001 − step), or the timestep itself', async () => {
  const rt = await runtime();
  const { models } = await setup();
  await rejects(() => new DiffSim(rt, models, { step: 0 }), /step 0 maps to timestep 1000, outside the 1000-step schedule/, 'step 0');
  await rejects(() => new DiffSim(rt, models, { step: 1001 }), /step 1001 is not an index into the 1001-entry timestep list/, 'step 1001');
  await rejects(() => new DiffSim(rt, models, { step: 2.5 }), /step must be an integer/, 'fractional step');
  assert.is(new DiffSim(rt, models, { step: 1 }).settings.t, 999);
  assert.is(new DiffSim(rt, models, { step: 500 }).settings.t, 501);
  assert.is(new DiffSim(rt, models, { step: 1000 }).settings.t, 1);
  assert.is(new DiffSim(rt, models, { step: 0, stepMode: 'timestep' }).settings.t, 0);
  assert.is(new DiffSim(rt, models, { step: 401, stepMode: 'timestep' }).settings.t, 401);
  await rejects(() => new DiffSim(rt, models, { step: 1000, stepMode: 'timestep' }), /timestep 1000 outside \[0, 999\]/, 'timestep 1000');
});

test('blocks and layers map to the official modules; unknown ones are refused with the valid range', async () => {
  const rt = await runtime();
  const { models } = await setup();
  const module = (s: Partial<DiffSimSettings>) => new DiffSim(rt, models, s).settings.module;
  const tb = (p: string) => `${p}.transformer_blocks.0.attn1`;
  assert.is(module({}), tb('up_blocks.1.attentions.2'));
  assert.is(module({ block: 'down' }), tb('down_blocks.0.attentions.1'));
  assert.is(module({ block: 'mid_blocks' }), tb('mid_block.attentions.0'));
  // Official mode: a single target layer becomes 0.
  assert.is(module({ block: 'up', layer: 5 }), tb('up_blocks.1.attentions.2'));
  assert.is(new DiffSim(rt, models, { block: 'up', layer: 5 }).settings.layer, 0);
  assert.is(module({ block: 'up', layer: 2, layerMode: 'as-given' }), tb('up_blocks.3.attentions.2'));
  assert.is(module({ block: 'down', layer: 2, layerMode: 'as-given' }), tb('down_blocks.2.attentions.1'));
  assert.is(module({ variant: 'C' }), 'up_blocks.1.attentions.2.transformer_blocks.0.attn2');
  await rejects(() => new DiffSim(rt, models, { block: 'side' as DiffSimSettings['block'] }), /block must be one of 'down', 'mid', 'up'/, 'unknown block');
  await rejects(() => new DiffSim(rt, models, { block: 'down', layer: 3, layerMode: 'as-given' }), /block "down" has no layer 3: down_blocks\[:-1\] of this U-Net has layers 0–2/, 'layer 3');
  await rejects(() => new DiffSim(rt, models, { block: 'mid', layer: 1, layerMode: 'as-given' }), /block "mid" has no layer 1: mid_block of this U-Net has only layer 0/, 'mid layer 1');
  await rejects(() => new DiffSim(rt, models, { layer: -1 }), /layer must be ≥ 0/, 'negative layer');
  await rejects(() => new DiffSim(rt, models, { similarity: 'l2' as DiffSimSettings['similarity'] }), /similarity must be one of 'cosine', 'mse'/, 'similarity');
  await rejects(() => new DiffSim(rt, models, { steps: 3 } as Partial<DiffSimSettings>), /unknown setting "steps"/, 'unknown setting');
  await rejects(() => new DiffSim(rt, models, { imageSize: 4 }), /imageSize must be an integer ≥ 8 \(the VAE factor\), got 4/, 'image size');
  await rejects(() => new DiffSim(rt, { ...models, ipAdapter: undefined }, { variant: 'C' }), /needs models.ipAdapter/, 'C without adapter');
  // The default image size is the U-Net's sample_size × the VAE factor.
  assert.is(new DiffSim(rt, models).settings.imageSize, 128);
});

test('image sizes that are not a multiple of the U-Net factor work, as in diffusers (96 px: latent 12, upsamplers follow the skips)', async () => {
  const rt = await runtime();
  const { models, A, B } = await setup();
  const metric = new DiffSim(rt, models, { imageSize: 96, step: 600 });
  const score = await metric.score(A, B);
  assert.ok(Number.isFinite(score) && score > -1 && score <= 1, `score ${score}`);
  // 100 px: the VAE floors 100 → 50 → 25 → 12, and the noise has the latent's shape.
  const odd = new DiffSim(rt, models, { imageSize: 100, step: 600 });
  assert.is(odd.latentSize, 12);
  assert.ok(Number.isFinite(await odd.score(A, B)));
  // The whole U-Net runs at latent 12 (its upsamplers go 2 → 3 → 6 → 12 along the skips).
  const sample = rt.upload(new Float32Array(2 * 4 * 12 * 12).fill(0.1), [2, 4, 12, 12]);
  const text = rt.upload(new Float32Array(2 * 7 * 32).fill(0.2), [2, 7, 32]);
  const out = models.unet.forward(sample, 401, text, { capture: ['up_blocks.0.upsamplers.0:out', 'up_blocks.1.upsamplers.0:out'] });
  assert.equal(out.taps.get('up_blocks.0.upsamplers.0:out').shape.slice(2), [3, 3]);
  assert.equal(out.taps.get('up_blocks.1.upsamplers.0:out').shape.slice(2), [6, 6]);
  assert.equal(out.sample!.shape, [2, 4, 12, 12]);
  const y = (await out.sample!.read()) as Float32Array;
  assert.ok(y.every(Number.isFinite));
  out.sample!.dispose();
  out.taps.dispose();
  sample.dispose();
  text.dispose();
});

test('embeddings made with other settings, of the same role, or disposed are refused; scoring settings are the metric\'s', async () => {
  const rt = await runtime();
  const { models, A, B } = await setup();
  const m600 = new DiffSim(rt, models, { ...SMALL, step: 600 });
  const m950 = new DiffSim(rt, models, { ...SMALL, step: 950 });
  const mMean = new DiffSim(rt, models, { ...SMALL, step: 600, vae: 'mean' });
  const mMse = new DiffSim(rt, models, { ...SMALL, step: 600, similarity: 'mse' });
  const a = m600.embed(A, 'A');
  const b = m950.embed(B, 'B');
  const a2 = m600.embed(B, 'A');
  const b600 = m600.embed(B, 'B');
  try {
    await rejects(() => m600.compare(a, b), /second embedding was made with other settings than this metric's \(embedding vs metric\): step 950 vs 600; t 51 vs 401/, 'other step');
    await rejects(() => m950.compare(a, b), /first embedding was made with other settings/, 'other step, first');
    await rejects(() => mMean.compare(a, b600), /vae "sample" vs "mean"/, 'other vae');
    await rejects(() => m600.compare(a, a2), /both embeddings have role A/, 'same role');
    // The similarity is applied when scoring: the same embeddings give the mse under an mse metric.
    const cos = await m600.compareDetailed(a, b600);
    const mse = await mMse.compareDetailed(a, b600);
    assert.is(mse.score, cos.mse);
    assert.is(cos.score, cos.cosine);
    b600.dispose();
    await rejects(() => m600.compare(a, b600), /already disposed/, 'disposed');
  } finally {
    for (const e of [a, b, a2, b600]) e.dispose();
  }
});

test('an embedding saved to safetensors and read back gives the same score; settings travel in the metadata', async () => {
  const rt = await runtime();
  const { models, A, B } = await setup();
  const metric = new DiffSim(rt, models, { ...SMALL, step: 950 });
  const a = metric.embed(A, 'A');
  const b = metric.embed(B, 'B');
  const bytes = await b.toSafetensors();
  const back = await DiffSimEmbedding.fromSafetensors(rt, bytes);
  try {
    assert.is(back.role, 'B');
    assert.is(back.key, b.key);
    assert.is(back.settings.module, metric.settings.module);
    assert.ok(Object.is(await metric.compare(a, back), await metric.compare(a, b)));
    const other = new DiffSim(rt, models, { ...SMALL, step: 600 });
    await rejects(() => other.compare(a, back), /other settings/, 'loaded embedding, other metric');
  } finally {
    for (const e of [a, b, back]) e.dispose();
  }
});

test('options: mse score, CFG halves, float16 rounding (scoring), posterior mean, no CFG', async () => {
  const rt = await runtime();
  const { models, A, B } = await setup();
  const base = { ...SMALL, step: 600 };
  const metric = new DiffSim(rt, models, base);
  const a = metric.embed(A, 'A');
  const b = metric.embed(B, 'B');
  try {
    const both = await metric.compareDetailed(a, b);
    const cond = await new DiffSim(rt, models, { ...base, cfgHalves: 'cond' }).compareDetailed(a, b);
    const uncond = await new DiffSim(rt, models, { ...base, cfgHalves: 'uncond' }).compareDetailed(a, b);
    for (const x of [cond, uncond]) assert.ok(Math.abs(x.score - both.score) > 1e-6 && x.score > 0 && x.score <= 1);
    // Both halves as one vector: the total squared error is the sum of the halves'.
    assert.ok(Math.abs(both.ab.mse - (cond.ab.mse + uncond.ab.mse) / 2) <= 1e-5 * both.ab.mse);
    const rounded = await new DiffSim(rt, models, { ...base, roundToF16: true }).compareDetailed(a, b);
    assert.is(rounded.score, f16BitsToF32(f32ToF16Bits(rounded.score)));
    assert.ok(Math.abs(rounded.score - both.score) < 1e-3);
    const mean = await pairScore(new DiffSim(rt, models, { ...base, vae: 'mean' }), A, B);
    assert.ok(Math.abs(mean.score - both.score) > 1e-6);
  } finally {
    a.dispose();
    b.dispose();
  }
  // Without CFG the batch is the prompt alone.
  const e = new DiffSim(rt, models, { ...base, cfg: false }).embed(A, 'A');
  assert.equal(e.q.shape, [1, 4, 64]);
  e.dispose();
  await rejects(() => new DiffSim(rt, models, { cfg: false, cfgHalves: 'uncond' }), /needs cfg/, 'uncond without cfg');
});

test('DiffSim-C: queries of attn2, IP keys/values of 16 tokens per CFG half; the subset reference at step 600', async () => {
  const rt = await runtime();
  const { models, A, B } = await setup();
  const ref = await SafetensorsFile.open(join(DIR, 'diffsim_c.safetensors'));
  try {
    const metric = new DiffSim(rt, models, { ...(await referenceSettings(ref)), variant: 'C', step: 600 });
    const ea = metric.embed(A, 'A', { noise: await storedNoise(ref, 'A') });
    const eb = metric.embed(B, 'B', { noise: await storedNoise(ref, 'B') });
    try {
      assert.equal(ea.q.shape, [2, 16, 64]);
      assert.equal(ea.k.shape, [2, 16, 64]);
      const d = await metric.compareDetailed(ea, eb);
      const want = (await ref.readFloat32('step600.up_blocks.0.score_cos')).data[0]!;
      assert.ok(Math.abs(d.cosine - want) <= 1e-5, `${d.cosine} vs ${want}`);
    } finally {
      ea.dispose();
      eb.dispose();
    }
    metric.dispose();
  } finally {
    await ref.close();
  }
});

test('CLIP and DINOv2 metrics: CLIP-I of the subset reference, self-similarity 1, symmetric AAS', async () => {
  const rt = await runtime();
  const { A, B } = await setup();
  const clip = new ClipMetric(rt, await loadModel('diffsim-tiny/clip_b32_tiny.safetensors', (s, c) => new ClipModel(s, c as ClipModelConfig)));
  const dino = new Dinov2Metric(rt, await loadModel('dinov2-tiny/dinov2.safetensors', (s, c) => new Dinov2Model(s, c as Dinov2Config)));
  const ref = await SafetensorsFile.open(join(DIR, 'clip_dino_aas.safetensors'));
  const clipI = (await ref.readFloat32('clip.clipi_score')).data[0]!;
  await ref.close();
  assert.ok(Math.abs((await clip.clipI(A, B)) - clipI) <= 1e-3, 'CLIP-I');
  for (const m of [clip, dino]) {
    const ea = m.embed(A);
    const eb = m.embed(B);
    try {
      const self = await m.compare(ea, ea);
      assert.ok(Math.abs(self.global - 100) < 1e-3);
      for (const l of self.layers) assert.ok(Math.abs(l.aas.cosine - 1) < 1e-6 && Math.abs(l.feature - 1) < 1e-6, `${m.kind} layer ${l.layer}`);
      const ab = await m.compare(ea, eb);
      const ba = await m.compare(eb, ea);
      assert.is(ab.layers.length, m.numLayers);
      for (let i = 0; i < ab.layers.length; i++) assert.ok(Math.abs(ab.layers[i]!.aas.cosine - ba.layers[i]!.aas.cosine) < 1e-6);
    } finally {
      ea.dispose();
      eb.dispose();
    }
  }
  // The post-LN option reads other q/k/v: another AAS.
  const post = new ClipMetric(rt, clip.vision, { qkvSource: 'post-ln' });
  assert.ok(Math.abs((await post.aas(A, B, 1)) - (await clip.aas(A, B, 1))) > 1e-4);
  await rejects(() => clip.embed(A, [3]), /layer 3 outside 0–2/, 'CLIP layer');
});

test('ensemble: the official vote (a tie in scores votes for the first candidate, a tied count goes to the second)', () => {
  assert.is(vote(0.5, 0.5), 1);
  assert.is(vote(0.5, 0.5, true, 'second'), 2);
  assert.is(vote(0.6, 0.5, true, 'second'), 1);
  assert.is(vote(0.4, 0.5), 2);
  assert.is(vote(0.2, 0.1, false), 2);
  assert.is(majority([1, 1, 2]), 1);
  assert.is(majority([1, 2, 2]), 2);
  assert.is(majority([1, 2]), 2);
});

test.run();
