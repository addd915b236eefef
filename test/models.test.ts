// SD1.5 models: parity with the reference fixtures (through the same code as `diffsim parity`),
// full-size manifests, loading errors, taps and early stop.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { runParity, fixtureFolders, loadIndex } from '../src/parity/parity.js';
import { WeightStore, WeightLoadError } from '../src/nn/weights.js';
import { UNet2DConditionModel, type UNetConfig } from '../src/models/unet.js';
import { VaeEncoder, type VaeConfig } from '../src/models/vae.js';
import { ClipTextModel, type ClipTextConfig } from '../src/models/clip-text.js';
import { ClipModel, ClipVisionModel, type ClipModelConfig, type ClipVisionConfig } from '../src/models/clip-vision.js';
import { Dinov2Model, type Dinov2Config } from '../src/models/dinov2.js';
import { IpAdapterPlus, type ResamplerConfig } from '../src/models/ip-adapter.js';
import { SafetensorsFile, encodeSafetensors, rawToInt32 } from '../src/io/safetensors.js';
import { blobSource } from '../src/io/bytesource.js';
import { FIXTURES, REPO_ROOT, normErr, rejects, runtime } from './helpers.js';

const MODELS = ['scheduler', 'clip-text-tiny', 'vae-encoder-tiny', 'unet-tiny', 'clip-vision-tiny', 'dinov2-tiny', 'ip-adapter-plus-tiny', 'preprocess', 'codecs', 'manifests', 'diffsim-tiny', 'clip-vision-h14-tiny'];

for (const folder of MODELS) {
  test(`parity: every ${folder} tensor within the fixtures README tolerance`, async () => {
    const rt = await runtime();
    const { rows } = await runParity(rt, FIXTURES, [folder]);
    assert.ok(rows.length >= 4, `${folder}: only ${rows.length} tensors compared`);
    const failed = rows.filter((r) => !r.pass);
    assert.equal(failed.map((r) => `${r.name} ${r.err}`), [], `${folder}: failures`);
    const stored = (await loadIndex(FIXTURES)).files;
    // Every stored activation except the inputs was compared.
    const acts = stored[`${folder}/activations.safetensors`];
    if (acts) {
      const compared = new Set(rows.map((r) => r.name));
      const inputs = /^(run\d+\.)?(input\.|input_ids$|attention_mask$|eps$)/;
      const missing = Object.keys(acts.tensors).filter((n) => !inputs.test(n) && !compared.has(n));
      assert.equal(missing, [], `${folder}: activations not compared`);
    }
  });
}

test('diffsim parity CLI: rows, summary line, exit codes', () => {
  const cli = join(REPO_ROOT, 'dist', 'src', 'cli', 'main.js');
  const ok = spawnSync(process.execPath, [cli, 'parity', '--fixtures', FIXTURES, '--only', 'scheduler,clip-text-tiny'], { encoding: 'utf8' });
  assert.is(ok.status, 0, ok.stderr);
  assert.match(ok.stdout, /^pass  clip-text-tiny\/last_hidden_state\s+\S+\s+2e-4$/m);
  assert.match(ok.stdout, /\n(\d+) passed, 0 failed\n$/);
  const bad = spawnSync(process.execPath, [cli, 'parity', '--fixtures', FIXTURES, '--only', 'nope'], { encoding: 'utf8' });
  assert.is(bad.status, 1);
  assert.match(bad.stderr, /"nope" is not a fixture folder/);
  const noDir = spawnSync(process.execPath, [cli, 'parity', '--fixtures', join(FIXTURES, 'missing')], { encoding: 'utf8' });
  assert.is(noDir.status, 1);
  assert.match(noDir.stderr, /index\.json: cannot read/);
});

test('parity knows which fixture folders it supports', async () => {
  const folders = fixtureFolders(await loadIndex(FIXTURES), FIXTURES, ['codecs']);
  for (const m of MODELS) assert.ok(folders.includes(m), m);
});

function manifest(name: string): { tensors: Record<string, { shape: number[] }>; config: unknown } {
  const dir = join(FIXTURES, 'manifests');
  return {
    tensors: (JSON.parse(readFileSync(join(dir, `${name}.json`), 'utf8')) as { tensors: Record<string, { shape: number[] }> }).tensors,
    config: JSON.parse(readFileSync(join(dir, `${name}.config.json`), 'utf8')),
  };
}

function shapesOf(t: Record<string, { shape: number[] }>): Record<string, number[]> {
  return Object.fromEntries(Object.entries(t).map(([k, v]) => [k, v.shape]));
}

test('full-size SD1.5 U-Net built from its config has exactly the manifest tensors (686, 859,520,964 parameters)', () => {
  const m = manifest('sd15-unet');
  const store = new WeightStore();
  new UNet2DConditionModel(store, m.config as UNetConfig);
  assert.equal(store.manifest(), shapesOf(m.tensors));
  assert.is(store.parameterCount(), 859520964);
});

test('full-size CLIP text encoder has exactly the manifest tensors', () => {
  const m = manifest('sd15-text-encoder');
  const store = new WeightStore();
  new ClipTextModel(store, m.config as ClipTextConfig);
  assert.equal(store.manifest(), shapesOf(m.tensors));
  assert.is(store.parameterCount(), 123060480);
});

test('full-size VAE encoder has exactly the encoder and quant_conv tensors of the manifest; the rest is the decoder', () => {
  const m = manifest('sd15-vae');
  const store = new WeightStore();
  new VaeEncoder(store, m.config as VaeConfig);
  const all = shapesOf(m.tensors);
  const encoderPart = Object.fromEntries(Object.entries(all).filter(([k]) => k.startsWith('encoder.') || k.startsWith('quant_conv.')));
  assert.equal(store.manifest(), encoderPart);
  const rest = Object.keys(all).filter((k) => !(k in encoderPart));
  assert.ok(rest.length > 0 && rest.every((k) => k.startsWith('decoder.') || k.startsWith('post_quant_conv.')), 'only decoder tensors are left');
});

test('full-size vision models have exactly the manifest tensors: CLIP ViT-B/32 (CLIPModel), IP-Adapter ViT-H/14, DINOv2-small', () => {
  const b32 = manifest('clip-vit-base-patch32');
  let store = new WeightStore();
  new ClipModel(store, b32.config as ClipModelConfig);
  assert.equal(store.manifest(), shapesOf(b32.tensors));
  assert.is(store.parameterCount(), 151277313);
  const h14 = manifest('ip-adapter-image-encoder-vit-h14');
  store = new WeightStore();
  new ClipVisionModel(store, h14.config as ClipVisionConfig);
  assert.equal(store.manifest(), shapesOf(h14.tensors));
  assert.is(store.parameterCount(), 632076800);
  const dino = manifest('dinov2-small');
  store = new WeightStore();
  new Dinov2Model(store, dino.config as Dinov2Config);
  assert.equal(store.manifest(), shapesOf(dino.tensors));
  assert.is(store.parameterCount(), 22056576);
});

test('full-size IP-Adapter Plus (Resampler args → diffusers equivalent) on the SD1.5 U-Net has exactly the manifest keys and ip_adapter numbering', () => {
  const raw = JSON.parse(readFileSync(join(FIXTURES, 'manifests', 'ip-adapter-plus_sd15.json'), 'utf8')) as { tensors: Record<string, { shape: number[] }>; ip_adapter_key_to_module: Record<string, string> };
  const cfg = JSON.parse(readFileSync(join(FIXTURES, 'manifests', 'ip-adapter-plus_sd15.config.json'), 'utf8')) as { diffusers_equivalent: ResamplerConfig };
  const unetStore = new WeightStore();
  const unet = new UNet2DConditionModel(unetStore, manifest('sd15-unet').config as UNetConfig);
  const store = new WeightStore();
  const ip = new IpAdapterPlus(store, { resampler: cfg.diffusers_equivalent }, unet);
  assert.equal(store.manifest(), shapesOf(raw.tensors));
  assert.is(store.parameterCount(), 49087488);
  assert.equal(ip.keyToModule(), raw.ip_adapter_key_to_module);
});

test('loading reports every missing, unexpected and mis-shaped key at once', async () => {
  const rt = await runtime();
  const file = await SafetensorsFile.open(join(FIXTURES, 'clip-text-tiny', 'text_encoder.safetensors'));
  const config = JSON.parse(file.metadata.config!) as ClipTextConfig;
  const tensors: Record<string, { dtype: 'F32'; shape: number[]; data: Float32Array }> = {};
  for (const name of file.names()) {
    const { shape, data } = await file.readFloat32(name);
    tensors[name] = { dtype: 'F32', shape, data };
  }
  await file.close();
  delete tensors['text_model.final_layer_norm.weight'];
  delete tensors['text_model.encoder.layers.1.mlp.fc2.bias'];
  tensors['text_model.extra.weight'] = { dtype: 'F32', shape: [2], data: new Float32Array(2) };
  tensors['text_model.encoder.layers.0.self_attn.q_proj.bias'] = { dtype: 'F32', shape: [3], data: new Float32Array(3) };
  const bad = await SafetensorsFile.open(blobSource(encodeSafetensors(tensors), 'broken.safetensors'));
  const store = new WeightStore();
  new ClipTextModel(store, config);
  try {
    await store.load(rt, bad);
    assert.unreachable('expected a load error');
  } catch (e) {
    assert.instance(e, WeightLoadError);
    const err = e as WeightLoadError;
    assert.equal(err.missing.sort(), ['text_model.encoder.layers.1.mlp.fc2.bias', 'text_model.final_layer_norm.weight']);
    assert.equal(err.unexpected, ['text_model.extra.weight']);
    assert.equal(err.misshaped, ['text_model.encoder.layers.0.self_attn.q_proj.bias [3] (expected [32])']);
    assert.match(err.message, /^broken\.safetensors: 2 missing: .*; 1 unexpected: .*; 1 with the wrong shape/);
  }
  store.dispose();
});

test('U-Net early stop at the DiffSim layer: Q/K/V taps equal the full pass, no output, no later module runs', async () => {
  const rt = await runtime();
  const dir = join(FIXTURES, 'unet-tiny');
  const weights = await SafetensorsFile.open(join(dir, 'unet.safetensors'));
  const acts = await SafetensorsFile.open(join(dir, 'activations.safetensors'));
  const store = new WeightStore();
  const model = new UNet2DConditionModel(store, JSON.parse(weights.metadata.config!) as UNetConfig);
  await store.load(rt, weights);
  const target = 'up_blocks.1.attentions.2.transformer_blocks.0.attn1';
  const names = ['to_q:out', 'to_k:out', 'to_v:out', 'to_out.0:in'].map((s) => `${target}.${s}`);
  await rt.scope(async () => {
    const up = async (n: string) => {
      const { shape, data } = await acts.readFloat32(n);
      return rt.upload(data, shape);
    };
    const t = [...rawToInt32(await acts.readRaw('input.timestep'))];
    const out = await model.forward(rt, await up('input.sample'), t, await up('input.encoder_hidden_states'), {
      capture: (n) => names.includes(n) || n === 'up_blocks.2:out' || n === `${target}:out`,
      stopAfter: target,
    });
    assert.is(out.sample, null);
    assert.is(out.stoppedAfter, target);
    await rejects(() => model.forward(rt, rt.empty([1, 4, 16, 16]), 1, rt.empty([1, 7, 32]), { stopAfter: 'up_blocks.9' }), /no module named "up_blocks.9"/, 'unknown module');
  });
  // The taps live in the context passed in; run again with an explicit context to read them.
  const { ForwardContext } = await import('../src/nn/context.js');
  const ctx = new ForwardContext({ capture: [...names, 'up_blocks.2:out'], stopAfter: target });
  await rt.scope(async () => {
    const up = async (n: string) => {
      const { shape, data } = await acts.readFloat32(n);
      return rt.upload(data, shape);
    };
    await model.forward(rt, await up('input.sample'), [...rawToInt32(await acts.readRaw('input.timestep'))], await up('input.encoder_hidden_states'), {}, ctx);
  });
  for (const n of names) {
    const t = ctx.taps.get(n);
    assert.ok(t, `${n} recorded`);
    const err = normErr((await t!.read()) as Float32Array, (await acts.readFloat32(n)).data);
    assert.ok(err <= 1e-4, `${n}: ${err}`);
  }
  assert.not.ok(ctx.taps.has('up_blocks.2:out'), 'nothing after the stopping point ran');
  ctx.dispose();
  store.dispose();
  await weights.close();
  await acts.close();
});

test.run();
