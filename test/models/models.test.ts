// Slow suite: about 43 s of CPU on lavapipe (126 s wall on a shared 2-core machine).
// SD1.5 models: parity with the reference fixtures (through the same code as `diffsim parity`),
// full-size manifests, loading errors, taps and early stop.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { runParity, fixtureFolders, loadIndex } from '../../src/parity/parity.js';
import { WeightStore, WeightLoadError } from '../../src/nn/weights.js';
import { UNet2DConditionModel, type UNetConfig } from '../../src/models/unet.js';
import { VaeEncoder, type VaeConfig } from '../../src/models/vae.js';
import { ClipTextModel, type ClipTextConfig } from '../../src/models/clip-text.js';
import { ClipModel, ClipVisionModel, type ClipModelConfig, type ClipVisionConfig } from '../../src/models/clip-vision.js';
import { Dinov2Model, type Dinov2Config } from '../../src/models/dinov2.js';
import { IpAdapterPlus, type ResamplerConfig } from '../../src/models/ip-adapter.js';
import { loadDinov2, loadClipVision, loadIpAdapterPlus } from '../../src/models/load.js';
import { inferResamplerConfig } from '../../src/models/sources.js';
import { SafetensorsFile, encodeSafetensors, rawToInt32 } from '../../src/io/safetensors.js';
import { blobSource } from '../../src/io/bytesource.js';
import { FIXTURES, REPO_ROOT, normErr, rejects, runtime, take } from '../support/helpers.js';

const MODELS = ['scheduler', 'clip-text-tiny', 'vae-encoder-tiny', 'unet-tiny', 'clip-vision-tiny', 'dinov2-tiny', 'ip-adapter-plus-tiny', 'preprocess', 'codecs', 'manifests', 'diffsim-tiny', 'clip-vision-h14-tiny', 'single-file'];

for (const folder of MODELS) {
  test(`parity: every ${folder} tensor within the fixtures README tolerance`, async () => {
    const rt = await runtime();
    const { rows: all } = await runParity(rt, FIXTURES, [folder]);
    const rows = all.filter((r) => r.kind !== 'skipped');
    assert.ok(rows.length >= 4, `${folder}: only ${rows.length} tensors compared`);
    const failed = rows.filter((r) => !r.pass);
    assert.equal(failed.map((r) => `${r.name} ${r.err}`), [], `${folder}: failures`);
    const stored = (await loadIndex(FIXTURES)).files;
    // Every stored activation except the inputs was compared (none skipped).
    const acts = stored[`${folder}/activations.safetensors`];
    if (acts) {
      assert.equal(all.filter((r) => r.kind === 'skipped').map((r) => r.name), [], `${folder}: stored activations skipped`);
      const compared = new Set(rows.map((r) => r.name));
      const inputs = /^(run\d+\.)?(input\.|input_ids$|attention_mask$|eps$)/;
      const missing = Object.keys(acts.tensors).filter((n) => !inputs.test(n) && !compared.has(n));
      assert.equal(missing, [], `${folder}: activations not compared`);
    }
  });
}

test('diffsim parity CLI: rows, summary line, exit codes', () => {
  const cli = join(REPO_ROOT, (JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { bin: { diffsim: string } }).bin.diffsim);
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

test('parity on manifests: a single-file manifest is mapped and checked against the diffusers manifests; the SDXL models build with the manifests\' exact tensors', async () => {
  const rt = await runtime();
  const { rows } = await runParity(rt, FIXTURES, ['manifests']);
  const single = rows.filter((r) => r.name.startsWith('sd15-single-file.'));
  assert.equal(single.map((r) => [r.name, r.pass]), [['sd15-single-file.unet', true], ['sd15-single-file.vae', true], ['sd15-single-file.text-encoder', true]]);
  assert.match(single[0]!.note!, /against sd15-unet\.json, config from the shapes against sd15-unet\.config\.json$/);
  // SDXL: the text_time U-Net (2,567,463,684 parameters), the VAE encoder, CLIPTextModel and
  // CLIPTextModelWithProjection, every tensor's name and shape as the pinned libraries have them.
  const sdxl = rows.filter((r) => r.name.startsWith('sdxl-'));
  assert.equal(sdxl.map((r) => [r.name, r.kind, r.pass]), [['sdxl-text-encoder', 'exact', true], ['sdxl-text-encoder-2', 'exact', true], ['sdxl-unet', 'exact', true], ['sdxl-vae', 'exact', true]]);
  assert.match(sdxl.find((r) => r.name === 'sdxl-unet')!.note!, /2,567,463,684 parameters/);
  assert.not.ok(rows.some((r) => r.kind === 'skipped'), 'no manifest skipped');
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

async function openUnetTiny() {
  const rt = await runtime();
  const dir = join(FIXTURES, 'unet-tiny');
  const weights = await SafetensorsFile.open(join(dir, 'unet.safetensors'));
  const acts = await SafetensorsFile.open(join(dir, 'activations.safetensors'));
  const store = new WeightStore();
  const model = new UNet2DConditionModel(store, JSON.parse(weights.metadata.config!) as UNetConfig);
  await store.load(rt, weights);
  const up = async (n: string) => {
    const { shape, data } = await acts.readFloat32(n);
    return rt.upload(data, shape);
  };
  const inputs = { sample: await up('input.sample'), t: [...rawToInt32(await acts.readRaw('input.timestep'))], text: await up('input.encoder_hidden_states') };
  return {
    rt,
    model,
    acts,
    inputs,
    async close() {
      inputs.sample.dispose();
      inputs.text.dispose();
      store.dispose();
      await weights.close();
      await acts.close();
    },
  };
}

test('U-Net fused paths (no taps: conv1 + time embedding, proj_in/proj_out token layouts, fused q/k/v) give the unfused output exactly, and the reference', async () => {
  const u = await openUnetTiny();
  const { rt, model, acts, inputs } = u;
  const d0 = rt.dispatchCount;
  const fused = await take(model.forward(inputs.sample, inputs.t, inputs.text).sample!);
  const fusedDispatches = rt.dispatchCount - d0;
  const d1 = rt.dispatchCount;
  // Recording every tap takes the unfused paths (diffusers' module outputs must exist).
  const all = model.forward(inputs.sample, inputs.t, inputs.text, { capture: 'all' });
  const unfusedDispatches = rt.dispatchCount - d1;
  const unfused = await take(all.sample!);
  all.taps.dispose();
  assert.ok(fused.every((v, i) => v === unfused[i]), 'fused and unfused outputs differ');
  assert.ok(fusedDispatches < unfusedDispatches, `${fusedDispatches} vs ${unfusedDispatches} dispatches`);
  const err = normErr(fused, (await acts.readFloat32('output.sample')).data);
  assert.ok(err <= 1e-4, `output.sample: ${err}`);
  await u.close();
});

test('U-Net early stop at the DiffSim layer: Q/K/V taps equal the reference, no output, taps owned by the caller', async () => {
  const u = await openUnetTiny();
  const { rt, model, acts, inputs } = u;
  const target = 'up_blocks.1.attentions.2.transformer_blocks.0.attn1';
  const names = ['to_q:out', 'to_k:out', 'to_v:out', 'to_out.0:in'].map((s) => `${target}.${s}`);
  const before = rt.memory().liveTensors;
  const out = model.forward(inputs.sample, inputs.t, inputs.text, { capture: names, stopAfter: target });
  assert.is(out.sample, null);
  assert.is(out.stoppedAfter, target);
  assert.equal(out.taps.names().sort(), [...names].sort());
  assert.is(rt.memory().liveTensors, before + names.length, 'only the taps outlive the pass');
  for (const n of names) {
    const err = normErr((await out.taps.get(n).read()) as Float32Array, (await acts.readFloat32(n)).data);
    assert.ok(err <= 1e-4, `${n}: ${err}`);
  }
  out.taps.dispose();
  assert.is(rt.memory().liveTensors, before, 'Taps.dispose frees every tap');
  // A tap after the stopping point cannot be produced: an error, not a silent absence.
  assert.throws(() => model.forward(inputs.sample, inputs.t, inputs.text, { capture: [...names, 'up_blocks.2:out'], stopAfter: target }), /requested taps not produced: up_blocks\.2:out \(the pass stopped after up_blocks\.1\.attentions\.2\.transformer_blocks\.0\.attn1\)/);
  assert.is(rt.memory().liveTensors, before, 'the failed pass freed its taps');
  await u.close();
});

test('tap and stop names are validated before any work, with the nearest valid names; every module on the path can stop (conv_in, to_q)', async () => {
  const u = await openUnetTiny();
  const { rt, model, inputs } = u;
  const count = rt.dispatchCount;
  assert.throws(() => model.forward(inputs.sample, inputs.t, inputs.text, { stopAfter: 'up_blocks.1.attentions.2.transformer_blocks.0.atn1' }), /cannot stop after "up_blocks\.1\.attentions\.2\.transformer_blocks\.0\.atn1"; nearest modules that can: up_blocks\.1\.attentions\.2\.transformer_blocks\.0/);
  assert.throws(() => model.forward(inputs.sample, inputs.t, inputs.text, { stopAfter: 'up_blocks.9' }), /cannot stop after "up_blocks\.9"/);
  assert.throws(() => model.forward(inputs.sample, inputs.t, inputs.text, { capture: ['up_blocks.1.attentions.2.transformer_blocks.0.attn1.to_q.out'] }), /unknown tap "up_blocks\.1\.attentions\.2\.transformer_blocks\.0\.attn1\.to_q\.out"; nearest valid names: .*attn1\.to_q:out/);
  assert.is(rt.dispatchCount, count, 'nothing was recorded for invalid names');
  for (const stop of ['conv_in', 'down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q', 'time_embedding.linear_2']) {
    const before = rt.dispatchCount;
    const out = model.forward(inputs.sample, inputs.t, inputs.text, { capture: [`${stop}:out`], stopAfter: stop });
    assert.is(out.stoppedAfter, stop);
    assert.is(out.sample, null);
    assert.ok(out.taps.has(`${stop}:out`));
    assert.ok(rt.dispatchCount - before < 40, `${stop}: ${rt.dispatchCount - before} dispatches before stopping`);
    out.taps.dispose();
  }
  assert.ok(model.vocabulary.taps.includes('output.sample') && model.vocabulary.stops.includes('mid_block'));
  await u.close();
});

test("capture 'all' returns every tap of the pass in one handle; dispose frees them all", async () => {
  const u = await openUnetTiny();
  const { rt, model, inputs } = u;
  const before = rt.memory().liveTensors;
  const out = model.forward(inputs.sample, inputs.t, inputs.text, { capture: 'all' });
  assert.ok(out.taps.size > 200, `${out.taps.size} taps`);
  assert.ok(out.taps.names().every((n) => model.vocabulary.hasTap(n)));
  out.taps.dispose();
  out.sample!.dispose();
  assert.is(rt.memory().liveTensors, before);
  await u.close();
});

test('IP-Adapter conditioning is per call: the U-Net is not modified, scale 0 equals no adapter', async () => {
  const u = await openUnetTiny();
  const { rt, model, inputs } = u;
  const ipFile = await SafetensorsFile.open(join(FIXTURES, 'ip-adapter-plus-tiny', 'ip-adapter-plus_sd15.safetensors'));
  const ipActs = await SafetensorsFile.open(join(FIXTURES, 'ip-adapter-plus-tiny', 'activations.safetensors'));
  const store = new WeightStore();
  const ip = new IpAdapterPlus(store, { resampler: inferResamplerConfig(ipFile) }, model);
  await store.load(rt, ipFile);
  const { shape, data } = await ipActs.readFloat32('input.image_embeds');
  const embeds = rt.upload(data, shape);
  const tokens = ip.resample(embeds).tokens!;
  assert.is(tokens.shape[0], inputs.sample.shape[0], 'the adapter fixture has the batch of unet-tiny');
  const tok = tokens;
  const run = async (o: Parameters<typeof model.forward>[3]) => take(model.forward(inputs.sample, inputs.t, inputs.text, o).sample!);
  const plain = await run({});
  const zero = await run({ ip: ip.conditioning(tok, 0) });
  const half = await run({ ip: ip.conditioning(tok, 0.5) });
  const plainAgain = await run({});
  assert.ok(normErr(zero, plain) <= 1e-6, 'scale 0 = no adapter');
  assert.ok(normErr(half, plain) > 1e-3, 'the adapter changes the output');
  assert.equal([...plainAgain], [...plain], 'a later call without the adapter is unchanged');
  assert.throws(() => ip.conditioning(tok, Number.NaN), /scale must be a finite number/);
  for (const t of new Set([tokens, tok, embeds])) t.dispose();
  store.dispose();
  await ipFile.close();
  await ipActs.close();
  await u.close();
});

test('weights kept in f16 on the GPU: linear/conv weights f16 (half their bytes), output within 1e-2 of the reference', async () => {
  const rt = await runtime();
  const dir = join(FIXTURES, 'unet-tiny');
  const weights = await SafetensorsFile.open(join(dir, 'unet.safetensors'));
  const acts = await SafetensorsFile.open(join(dir, 'activations.safetensors'));
  const store32 = new WeightStore();
  new UNet2DConditionModel(store32, JSON.parse(weights.metadata.config!) as UNetConfig);
  const live0 = rt.memory().liveBytes;
  await store32.load(rt, weights);
  const bytes32 = rt.memory().liveBytes - live0;
  store32.dispose();
  const store = new WeightStore();
  const model = new UNet2DConditionModel(store, JSON.parse(weights.metadata.config!) as UNetConfig);
  const live1 = rt.memory().liveBytes;
  await store.load(rt, weights, { weights: 'f16' });
  const bytes16 = rt.memory().liveBytes - live1;
  assert.is(store.params.get('conv_in.weight')!.tensor.dtype, 'f16');
  // attn1's q/k/v weights live in one fused [3C, C] tensor after the load.
  assert.ok(store.params.get('down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.weight')!.loaded);
  assert.is(store.fusions.find((f) => f.key === 'down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_qkv.weight')!.tensor!.dtype, 'f16');
  assert.is(store.params.get('conv_in.bias')!.tensor.dtype, 'f32');
  assert.is(store.params.get('conv_norm_out.weight')!.tensor.dtype, 'f32');
  assert.ok(bytes16 < 0.6 * bytes32, `f16 weights take ${bytes16} bytes vs ${bytes32}`);
  const up = async (n: string) => {
    const { shape, data } = await acts.readFloat32(n);
    return rt.upload(data, shape);
  };
  const sample = await up('input.sample');
  const text = await up('input.encoder_hidden_states');
  const out = await take(model.forward(sample, [...rawToInt32(await acts.readRaw('input.timestep'))], text).sample!);
  const err = normErr(out, (await acts.readFloat32('output.sample')).data);
  assert.ok(err <= 1e-2 && err > 0, `f16 weights: normalised error ${err}`);
  sample.dispose();
  text.dispose();
  store.dispose();
  await weights.close();
  await acts.close();
});

/** The tiny CLIP ViT-H/14 image encoder and DINOv2 of the fixtures, loaded. */
async function tinyVisionModels() {
  const rt = await runtime();
  const cvW = await SafetensorsFile.open(join(FIXTURES, 'clip-vision-h14-tiny', 'image_encoder.safetensors'));
  const cvStore = new WeightStore();
  const cv = new ClipVisionModel(cvStore, JSON.parse(cvW.metadata.config!) as ClipVisionConfig);
  await cvStore.load(rt, cvW, { ignore: [/position_ids$/] });
  const dW = await SafetensorsFile.open(join(FIXTURES, 'dinov2-tiny', 'dinov2.safetensors'));
  const dStore = new WeightStore();
  const dino = new Dinov2Model(dStore, JSON.parse(dW.metadata.config!) as Dinov2Config);
  await dStore.load(rt, dW);
  return {
    cv,
    dino,
    async close() {
      cvStore.dispose();
      dStore.dispose();
      await cvW.close();
      await dW.close();
    },
  };
}

test('every model validates its names and stops early the same way (CLIP text, CLIP vision, DINOv2, VAE, resampler)', async () => {
  const rt = await runtime();
  const open = async (rel: string) => SafetensorsFile.open(join(FIXTURES, rel));
  const vision = await tinyVisionModels();
  const { cv, dino } = vision;
  // CLIP vision
  const px = rt.upload(new Float32Array(3 * 224 * 224).fill(0.1), [1, 3, 224, 224]);
  const cvOut = cv.forward(px, { capture: ['vision_model.encoder.layers.1.self_attn.q_proj:out'], stopAfter: 'vision_model.encoder.layers.1' });
  assert.is(cvOut.stoppedAfter, 'vision_model.encoder.layers.1');
  assert.is(cvOut.lastHiddenState, null);
  assert.ok(cvOut.taps.has('vision_model.encoder.layers.1.self_attn.q_proj:out'));
  cvOut.taps.dispose();
  assert.throws(() => cv.forward(px, { stopAfter: 'vision_model.encoder.layers.7' }), /CLIP vision: cannot stop after "vision_model\.encoder\.layers\.7"/);
  assert.throws(() => cv.forward(px, { capture: ['penultimat'] }), /CLIP vision: unknown tap "penultimat"; nearest valid names: penultimate/);
  // DINOv2
  const dpx = rt.upload(new Float32Array(3 * 56 * 56).fill(0.2), [1, 3, 56, 56]);
  const dOut = dino.forward(dpx, { capture: ['encoder.layer.0.attention.attention.key:out'], stopAfter: 'encoder.layer.0' });
  assert.is(dOut.stoppedAfter, 'encoder.layer.0');
  assert.is(dOut.poolerOutput, null);
  dOut.taps.dispose();
  assert.throws(() => dino.forward(dpx, { stopAfter: 'encoder.layers.0' }), /DINOv2: cannot stop after "encoder\.layers\.0"/);
  // CLIP text
  const tW = await open('clip-text-tiny/text_encoder.safetensors');
  const tStore = new WeightStore();
  const text = new ClipTextModel(tStore, JSON.parse(tW.metadata.config!) as ClipTextConfig);
  await tStore.load(rt, tW, { ignore: [/position_ids$/] });
  const ids = Int32Array.from({ length: 7 }, (_, i) => i + 1);
  const tOut = text.forward(ids, 1, { stopAfter: 'text_model.encoder.layers.0', capture: ['hidden_states.1'] });
  assert.is(tOut.stoppedAfter, 'text_model.encoder.layers.0');
  assert.is(tOut.poolerOutput, null);
  tOut.taps.dispose();
  assert.throws(() => text.forward(ids, 1, { stopAfter: 'text_model.encoder.layer.0' }), /CLIP text: cannot stop after/);
  // VAE
  const vW = await open('vae-encoder-tiny/vae.safetensors');
  const vStore = new WeightStore();
  const vae = new VaeEncoder(vStore, JSON.parse(vW.metadata.config!) as VaeConfig);
  await vStore.load(rt, vW, { rename: (k) => k, ignore: [/^decoder\./, /^post_quant_conv\./], allowSqueeze: true });
  const img = rt.upload(new Float32Array(3 * 32 * 32).fill(0.3), [1, 3, 32, 32]);
  const vOut = vae.encode(img, { stopAfter: 'encoder.down_blocks.0', capture: ['encoder.down_blocks.0:out'] });
  assert.is(vOut.stoppedAfter, 'encoder.down_blocks.0');
  assert.is(vOut.posterior, null);
  vOut.taps.dispose();
  assert.throws(() => vae.encode(img, { capture: ['posterior.man'] }), /VAE encoder: unknown tap "posterior\.man"/);
  for (const t of [px, dpx, img]) t.dispose();
  for (const st of [tStore, vStore]) st.dispose();
  for (const f of [tW, vW]) await f.close();
  await vision.close();
});

test('concurrent forwards on one runtime (CLIP vision and DINOv2 in Promise.all) give the sequential results', async () => {
  const rt = await runtime();
  const vision = await tinyVisionModels();
  const { cv, dino } = vision;
  const px = rt.upload(Float32Array.from({ length: 3 * 224 * 224 }, (_, i) => Math.sin(i)), [1, 3, 224, 224]);
  const dpx = rt.upload(Float32Array.from({ length: 3 * 56 * 56 }, (_, i) => Math.cos(i)), [1, 3, 56, 56]);
  const clipTask = async () => {
    await new Promise((r) => setTimeout(r, 1));
    const out = cv.forward(px, { capture: ['penultimate'] });
    await new Promise((r) => setTimeout(r, 1));
    const pen = out.taps.take('penultimate');
    out.taps.dispose();
    return { embeds: out.imageEmbeds!, pen, last: out.lastHiddenState!, pooled: out.poolerOutput! };
  };
  const dinoTask = async () => {
    await new Promise((r) => setTimeout(r, 0));
    const out = dino.forward(dpx);
    out.taps.dispose();
    return { last: out.lastHiddenState!, pooled: out.poolerOutput! };
  };
  const [c, d] = await Promise.all([clipTask(), dinoTask()]);
  for (const t of [c.embeds, c.pen, c.last, c.pooled, d.last, d.pooled]) assert.not.ok(t.isDisposed, 'outputs of both passes are alive');
  const cSeq = cv.forward(px);
  const dSeq = dino.forward(dpx);
  assert.equal([...(await take(c.embeds))], [...(await take(cSeq.imageEmbeds!))]);
  assert.equal([...(await take(d.last))], [...(await take(dSeq.lastHiddenState!))]);
  for (const t of [c.pen, c.last, c.pooled, d.pooled, cSeq.lastHiddenState!, cSeq.poolerOutput!, dSeq.poolerOutput!]) t.dispose();
  cSeq.taps.dispose();
  dSeq.taps.dispose();
  px.dispose();
  dpx.dispose();
  await vision.close();
});

test('loaders read Hugging Face folder layouts: loadClipVision, loadDinov2, loadIpAdapterPlus (resampler config inferred, image encoder from image_encoder/)', async () => {
  const rt = await runtime();
  const root = mkdtempSync(join(tmpdir(), 'diffsim-loaders-'));
  try {
    const modelsDir = join(root, 'IP-Adapter', 'models');
    mkdirSync(join(modelsDir, 'image_encoder'), { recursive: true });
    const h14 = join(FIXTURES, 'clip-vision-h14-tiny', 'image_encoder.safetensors');
    copyFileSync(h14, join(modelsDir, 'image_encoder', 'model.safetensors'));
    const h14File = await SafetensorsFile.open(h14);
    writeFileSync(join(modelsDir, 'image_encoder', 'config.json'), JSON.stringify({ ...JSON.parse(h14File.metadata.config!), architectures: ['CLIPVisionModelWithProjection'] }));
    await h14File.close();
    copyFileSync(join(FIXTURES, 'ip-adapter-plus-tiny', 'ip-adapter-plus_sd15.safetensors'), join(modelsDir, 'ip-adapter-plus_sd15.safetensors'));
    const dinoDir = join(root, 'dinov2-tiny');
    mkdirSync(dinoDir);
    copyFileSync(join(FIXTURES, 'dinov2-tiny', 'dinov2.safetensors'), join(dinoDir, 'model.safetensors'));
    const dinoFile = await SafetensorsFile.open(join(dinoDir, 'model.safetensors'));
    writeFileSync(join(dinoDir, 'config.json'), dinoFile.metadata.config!);
    await dinoFile.close();

    const unetW = await SafetensorsFile.open(join(FIXTURES, 'unet-tiny', 'unet.safetensors'));
    const unetStore = new WeightStore();
    const unet = new UNet2DConditionModel(unetStore, JSON.parse(unetW.metadata.config!) as UNetConfig);
    await unetW.close();
    const { adapter, imageEncoder } = await loadIpAdapterPlus(rt, modelsDir, unet, { scale: 0.5 });
    const ref = await SafetensorsFile.open(join(FIXTURES, 'ip-adapter-plus-tiny', 'ip-adapter-plus_sd15.safetensors'));
    assert.equal(adapter.config.resampler, (JSON.parse(ref.metadata.config!) as { resampler: ResamplerConfig }).resampler, 'inferred = the stored config');
    await ref.close();
    assert.ok(imageEncoder && imageEncoder.visual_projection, 'image encoder with projection');
    const acts = await SafetensorsFile.open(join(FIXTURES, 'ip-adapter-plus-tiny', 'activations.safetensors'));
    const { shape, data } = await acts.readFloat32('input.image_embeds');
    const embeds = rt.upload(data, shape);
    const tokens = await take(adapter.resample(embeds).tokens!);
    assert.ok(normErr(tokens, (await acts.readFloat32('resampler.output')).data) <= 2e-4);
    embeds.dispose();
    await acts.close();
    const zeros = rt.zeros([2, 16, 32]);
    assert.is(adapter.conditioning(zeros).scale, 0.5, 'the default scale comes from the options');
    zeros.dispose();

    const dino = await loadDinov2(rt, dinoDir, { weights: 'f16' });
    assert.is(dino.store.params.get('encoder.layer.0.mlp.fc1.weight')!.tensor.dtype, 'f16');
    const cv = await loadClipVision(rt, join(modelsDir, 'image_encoder'));
    assert.is(cv.config.hidden_size, 32);
    await rejects(() => loadDinov2(rt, join(root, 'missing')), /missing: cannot open \(no such file or folder\)/, 'missing folder');
    await rejects(() => loadIpAdapterPlus(rt, join(dinoDir, 'model.safetensors'), unet, { imageEncoder: null }), /no tensor "image_proj\.latents" \(not an IP-Adapter Plus checkpoint/, 'wrong file');
    for (const st of [adapter.store, imageEncoder!.store, dino.store, cv.store, unetStore]) st.dispose();
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test.run();
