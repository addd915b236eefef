// Slow suite: about 17 s of CPU on lavapipe (89 s wall on a shared 2-core machine).
// f16 activations through the U-Net and the VAE encoder (ModelComputeOptions.activations): the
// reference fixtures' outputs and taps within stated tolerances, taps and outputs f32, the pass's
// activation memory halved, and the DiffSim metric and CLI on the shipped tiny models.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Runtime, Tensor } from '../../src/gpu/runtime.js';
import { WeightStore, type WeightPrecision } from '../../src/nn/weights.js';
import { UNet2DConditionModel, type UNetConfig } from '../../src/models/unet.js';
import { VaeEncoder, type VaeConfig } from '../../src/models/vae.js';
import { SafetensorsFile, rawToInt32 } from '../../src/io/safetensors.js';
import { createMetric, type CreateMetricOptions } from '../../src/diffsim/metric.js';
import type { ActivationDType } from '../../src/kernels/common.js';
import { FIXTURES, REPO_ROOT, normErr, offlineHub, runCli, runtime, take } from '../support/helpers.js';

const TINY = join(REPO_ROOT, 'weights', 'tiny');
const IMAGE_A = join(FIXTURES, 'diffsim-tiny', 'image_A.png');
const IMAGE_B = join(FIXTURES, 'diffsim-tiny', 'image_B.png');

async function upload(rt: Runtime, acts: SafetensorsFile, name: string): Promise<Tensor> {
  const { shape, data } = await acts.readFloat32(name);
  return rt.upload(data, shape);
}

async function unetTiny(rt: Runtime, activations: ActivationDType, weights: WeightPrecision = 'f32') {
  const file = await SafetensorsFile.open(join(FIXTURES, 'unet-tiny', 'unet.safetensors'));
  const store = new WeightStore();
  const model = new UNet2DConditionModel(store, JSON.parse(file.metadata.config!) as UNetConfig, { activations });
  await store.load(rt, file, { weights });
  await file.close();
  return { model, store };
}

async function vaeTiny(rt: Runtime, activations: ActivationDType) {
  const file = await SafetensorsFile.open(join(FIXTURES, 'vae-encoder-tiny', 'vae.safetensors'));
  const store = new WeightStore();
  const model = new VaeEncoder(store, JSON.parse(file.metadata.config!) as VaeConfig, { activations });
  await store.load(rt, file, { ignore: [/^decoder\./, /^post_quant_conv\./], allowSqueeze: true });
  await file.close();
  return { model, store };
}

// One f16 rounding per op output (normalised errors measured on lavapipe: output 1.6e-3 with f32
// weights, 1.8e-3 with f16 weights; the DiffSim layer's q/k/v 1.7–2.2e-3): 5e-3 bounds them; the
// lower bound shows the f16 path really ran (the f32 path is within 1e-4 of the reference).
const UNET_TOL = 5e-3;

test(`U-Net on f16 activations: output and the DiffSim layer's q/k/v taps within ${UNET_TOL} of the reference, as f32; f32 and f16 weights`, async () => {
  const rt = await runtime();
  const acts = await SafetensorsFile.open(join(FIXTURES, 'unet-tiny', 'activations.safetensors'));
  const sample = await upload(rt, acts, 'input.sample');
  const text = await upload(rt, acts, 'input.encoder_hidden_states');
  const t = [...rawToInt32(await acts.readRaw('input.timestep'))];
  const target = 'up_blocks.1.attentions.2.transformer_blocks.0.attn1';
  const names = ['to_q:out', 'to_k:out', 'to_v:out'].map((s) => `${target}.${s}`);
  for (const weights of ['f32', 'f16'] as const) {
    const { model, store } = await unetTiny(rt, 'f16', weights);
    assert.is(model.activations, 'f16');
    const before = rt.memory().liveTensors;
    const out = model.forward(sample, t, text, { capture: names });
    assert.is(out.sample!.dtype, 'f32', 'the output sample comes back as f32');
    const err = normErr(await take(out.sample!), (await acts.readFloat32('output.sample')).data);
    assert.ok(err <= UNET_TOL && err > 1e-5, `${weights} weights: output.sample normalised error ${err.toExponential(2)}`);
    for (const n of names) {
      const tap = out.taps.get(n);
      assert.is(tap.dtype, 'f32', `${n} recorded as f32`);
      const e = normErr((await tap.read()) as Float32Array, (await acts.readFloat32(n)).data);
      assert.ok(e <= UNET_TOL && e > 1e-6, `${weights} weights: ${n} normalised error ${e.toExponential(2)}`);
    }
    out.taps.dispose();
    assert.is(rt.memory().liveTensors, before, 'nothing of the f16 pass outlives it');
    store.dispose();
  }
  sample.dispose();
  text.dispose();
  await acts.close();
});

test('VAE encoder on f16 activations: posterior within 5e-3 of the reference and f32; the pass needs about half the activation memory', async () => {
  const rt = await runtime();
  const acts = await SafetensorsFile.open(join(FIXTURES, 'vae-encoder-tiny', 'activations.safetensors'));
  const image = await upload(rt, acts, 'input.image');
  const peak: Record<string, number> = {};
  for (const activations of ['f32', 'f16'] as const) {
    const { model, store } = await vaeTiny(rt, activations);
    await rt.trim();
    rt.resetPeak();
    const base = rt.memory().allocatedBytes;
    const post = model.encode(image).posterior!;
    await rt.sync();
    peak[activations] = rt.memory().peakAllocatedBytes - base;
    for (const part of ['mean', 'std'] as const) {
      assert.is(post[part].dtype, 'f32', `posterior.${part} is f32`);
      const e = normErr((await post[part].read()) as Float32Array, (await acts.readFloat32(`posterior.${part}`)).data);
      // f32: the parity tolerance; f16: one rounding per op (measured 1.8–2.3e-3).
      assert.ok(activations === 'f32' ? e <= 2e-4 : e <= 5e-3 && e > 1e-6, `${activations}: posterior.${part} normalised error ${e.toExponential(2)}`);
    }
    for (const x of Object.values(post)) x.dispose();
    store.dispose();
  }
  // Activations dominate this pass (64² image, 16–64 channels): f16 needs at most 60% of f32's peak.
  assert.ok(peak.f16! <= 0.6 * peak.f32!, `peak activation bytes: f16 ${peak.f16} vs f32 ${peak.f32}`);
  image.dispose();
  await acts.close();
});

const MODELS: CreateMetricOptions = { model: join(TINY, 'sd15') };

test('DiffSim on the tiny models with f16 activations: score within 2e-3 of the f32 score (measured 5.7e-5), reported and keyed apart', async () => {
  const rt = await runtime();
  const exact = await createMetric('diffsim', { ...MODELS, runtime: rt });
  const fast = await createMetric('diffsim', { ...MODELS, runtime: rt, activations: 'f16' });
  const s32 = await exact.score(IMAGE_A, IMAGE_B);
  const s16 = await fast.score(IMAGE_A, IMAGE_B);
  assert.ok(Math.abs(s16 - s32) <= 2e-3 && s16 !== s32, `f16 activations ${s16} vs f32 ${s32}`);
  assert.is((fast.settings as { activations?: string }).activations, 'f16');
  assert.is((exact.settings as { activations?: string }).activations, 'f32');
  // Embeddings of the two precisions are not interchangeable.
  const ea = await exact.embed(IMAGE_A, 'A');
  const eb = await fast.embed(IMAGE_B, 'B');
  let refused = false;
  try {
    await exact.compare(ea, eb);
  } catch {
    refused = true;
  }
  assert.ok(refused, 'comparing embeddings made with different activation precisions is refused');
  ea.dispose();
  eb.dispose();
  await exact.close();
  await fast.close();
});

test('CLI: --activations f16 scores a pair close to f32; rejected for a metric without a U-Net and for a bad value', () => {
  const hfHome = mkdtempSync(join(tmpdir(), 'diffsim-f16act-hf-'));
  const cli = (...args: string[]) => runCli(args, { timeout: 120_000, env: offlineHub(hfHome) });
  const args = ['score', IMAGE_A, IMAGE_B, '--model', join(TINY, 'sd15')];
  const r32 = cli(...args);
  const r16 = cli(...args, '--activations', 'f16');
  assert.is(r32.code, 0, r32.stderr);
  assert.is(r16.code, 0, r16.stderr);
  const s32 = Number(r32.stdout.trim());
  const s16 = Number(r16.stdout.trim());
  assert.ok(Number.isFinite(s16) && Math.abs(s16 - s32) <= 2e-3, `${r16.stdout} vs ${r32.stdout}`);
  const clip = cli('score', IMAGE_A, IMAGE_B, '--metric', 'clip', '--clip-model', join(TINY, 'clip'), '--activations', 'f16');
  assert.is(clip.code, 2, clip.stderr);
  assert.match(clip.stderr, /--activations does not apply to --metric clip/);
  const bad = cli(...args, '--activations', 'bf16');
  assert.is(bad.code, 2, bad.stderr);
  assert.match(bad.stderr, /--activations/);
  rmSync(hfHome, { recursive: true, force: true });
});

test.run();
