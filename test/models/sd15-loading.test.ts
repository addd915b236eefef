// Loading SD1.5 from a diffusers-layout folder (built here from the tiny fixtures), F16 weights,
// legacy VAE names, clear errors; the seeded normal generator.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadSd15 } from '../../src/models/load.js';
import { localModelFiles } from '../../src/io/local-files.js';
import { weightsPath } from '../../src/io/model-files.js';
import { NormalGenerator } from '../../src/models/scheduler.js';
import { SafetensorsFile, encodeSafetensors } from '../../src/io/safetensors.js';
import { f32ArrayToF16 } from '../../src/platform/half.js';
import { legacyVaeKey } from '../../src/models/vae.js';
import { FIXTURES, normErr, rejects, runtime, take, unetTinyInputs } from '../support/helpers.js';

const root = mkdtempSync(join(tmpdir(), 'diffsim-sd15-'));

/** Rewrites a fixture weights file with a dtype and key mapping. */
async function rewrite(src: string, dst: string, f16: boolean, rename: (k: string) => string = (k) => k): Promise<Record<string, unknown>> {
  const f = await SafetensorsFile.open(src);
  const tensors: Record<string, { dtype: 'F16' | 'F32'; shape: number[]; data: ArrayBufferView }> = {};
  for (const name of f.names()) {
    const { shape, data } = await f.readFloat32(name);
    tensors[rename(name)] = f16 ? { dtype: 'F16', shape, data: f32ArrayToF16(data) } : { dtype: 'F32', shape, data };
  }
  const config = JSON.parse(f.metadata.config!) as Record<string, unknown>;
  await f.close();
  writeFileSync(dst, encodeSafetensors(tensors, { format: 'pt' }));
  return config;
}

test('a diffusers-layout folder loads (F16 U-Net, legacy-named VAE, text encoder, tokenizer, scheduler) and runs', async () => {
  const rt = await runtime();
  const dir = join(root, 'sd');
  for (const p of ['unet', 'vae', 'text_encoder', 'tokenizer', 'scheduler']) mkdirSync(join(dir, p), { recursive: true });
  const unetCfg = await rewrite(join(FIXTURES, 'unet-tiny', 'unet.safetensors'), join(dir, 'unet', 'diffusion_pytorch_model.fp16.safetensors'), true);
  writeFileSync(join(dir, 'unet', 'config.json'), JSON.stringify(unetCfg));
  const legacy = (k: string) => k.replace('attentions.0.to_q.', 'attentions.0.query.').replace('attentions.0.to_k.', 'attentions.0.key.').replace('attentions.0.to_v.', 'attentions.0.value.').replace('attentions.0.to_out.0.', 'attentions.0.proj_attn.');
  const vaeCfg = await rewrite(join(FIXTURES, 'vae-encoder-tiny', 'vae.safetensors'), join(dir, 'vae', 'diffusion_pytorch_model.safetensors'), false, legacy);
  writeFileSync(join(dir, 'vae', 'config.json'), JSON.stringify(vaeCfg));
  const textCfg = await rewrite(join(FIXTURES, 'clip-text-tiny', 'text_encoder.safetensors'), join(dir, 'text_encoder', 'model.safetensors'), false);
  writeFileSync(join(dir, 'text_encoder', 'config.json'), JSON.stringify(textCfg));
  for (const f of ['vocab.json', 'merges.txt', 'tokenizer_config.json', 'special_tokens_map.json']) copyFileSync(join(FIXTURES, 'clip-text-tiny', 'tokenizer', f), join(dir, 'tokenizer', f));
  copyFileSync(join(FIXTURES, 'manifests', 'sd15-scheduler.config.json'), join(dir, 'scheduler', 'scheduler_config.json'));
  assert.is(legacyVaeKey('encoder.mid_block.attentions.0.proj_attn.weight'), 'encoder.mid_block.attentions.0.to_out.0.weight');

  const sd = await loadSd15(rt, dir);
  assert.ok(sd.unet && sd.vae && sd.textEncoder && sd.tokenizer && sd.scheduler);
  assert.equal(sd.scheduler!.timesteps(1000).slice(0, 3), [1000, 999, 999]);
  assert.equal(sd.tokenizer!.encode('a photo of a cat').slice(0, 3), [624, sd.tokenizer!.encode('a')[1]!, sd.tokenizer!.encode('photo')[1]!]);
  // The F16 U-Net reproduces the reference output to within half-precision weight rounding.
  // The F16 U-Net reproduces the reference output to within half-precision weight rounding, widened
  // to f32 (the default) or kept in f16 on the GPU ('auto': the checkpoint's own halves, same result).
  const { sample, t, text, ref, dispose } = await unetTinyInputs(rt);
  const wide = await take(sd.unet!.forward(sample, t, text).sample!);
  assert.ok(normErr(wide, ref) < 5e-3, `F16 checkpoint widened: normalised error ${normErr(wide, ref)}`);
  assert.is(sd.unet!.store.params.get('conv_in.weight')!.tensor.dtype, 'f32');
  const half = await loadSd15(rt, dir, { parts: ['unet'], weights: 'auto' });
  assert.is(half.unet!.store.params.get('conv_in.weight')!.tensor.dtype, 'f16');
  assert.is(half.unet!.store.params.get('conv_in.bias')!.tensor.dtype, 'f32');
  const kept = await take(half.unet!.forward(sample, t, text).sample!);
  assert.ok(normErr(kept, wide) <= 1e-5, `f16 on the GPU vs widened: ${normErr(kept, wide)}`);
  half.unet!.store.dispose();
  await dispose();
  // The legacy-named VAE loads and matches the reference posterior.
  const vacts = await SafetensorsFile.open(join(FIXTURES, 'vae-encoder-tiny', 'activations.safetensors'));
  const { shape, data } = await vacts.readFloat32('input.image');
  const image = rt.upload(data, shape);
  const post = sd.vae!.encode(image).posterior!;
  assert.ok(normErr((await post.mean.read()) as Float32Array, (await vacts.readFloat32('posterior.mean')).data) <= 2e-4);
  for (const x of [image, ...Object.values(post)]) x.dispose();
  await vacts.close();
  for (const m of [sd.unet!, sd.vae!, sd.textEncoder!]) m.store.dispose();
});

test('loading errors name the folder or file and the problem', async () => {
  const rt = await runtime();
  await rejects(() => loadSd15(rt, join(root, 'nope')), /nope: cannot open \(no such file or folder\)/, 'missing folder');
  const dir = join(root, 'broken');
  mkdirSync(join(dir, 'unet'), { recursive: true });
  await rejects(() => loadSd15(rt, dir, { parts: ['unet'] }), /broken: not a Stable Diffusion model: no unet\/ folder/, 'empty folder');
  writeFileSync(join(dir, 'unet', 'diffusion_pytorch_model.bin'), '');
  await rejects(() => loadSd15(rt, dir, { parts: ['unet'] }), /unet: no \.safetensors weights for the U-Net \(found diffusion_pytorch_model\.bin: only \.safetensors is read/, 'no weights');
  writeFileSync(join(dir, 'unet', 'diffusion_pytorch_model.safetensors'), encodeSafetensors({ 'conv_in.weight': { dtype: 'F32', shape: [1], data: new Float32Array(1) } }));
  await rejects(() => loadSd15(rt, dir, { parts: ['unet'] }), /unet\/config\.json: no U-Net config/, 'no config');
  writeFileSync(join(dir, 'unet', 'config.json'), JSON.stringify({ in_channels: 4 }));
  await rejects(() => loadSd15(rt, dir, { parts: ['unet'] }), /broken\/unet\/config\.json: field "block_out_channels" must be a list of numbers/, 'incomplete config');
  writeFileSync(join(dir, 'unet', 'config.json'), '{ nope');
  await rejects(() => loadSd15(rt, dir, { parts: ['unet'] }), /config\.json: the U-Net config is not valid JSON/, 'bad JSON');
});

test('the weights of a component folder: shard index first (also a variant index such as .index.fp16.json), then the plain file', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'diffsim-weights-'));
  try {
    const put = (n: string) => writeFileSync(join(dir, n), '');
    put('diffusion_pytorch_model.fp16-00001-of-00002.safetensors');
    put('diffusion_pytorch_model.fp16-00002-of-00002.safetensors');
    put('diffusion_pytorch_model.safetensors.index.fp16.json');
    assert.is(weightsPath(await localModelFiles(dir), '', 'U-Net'), 'diffusion_pytorch_model.safetensors.index.fp16.json');
    put('diffusion_pytorch_model.safetensors.index.json');
    assert.is(weightsPath(await localModelFiles(dir), '', 'U-Net'), 'diffusion_pytorch_model.safetensors.index.json');
    const single = mkdtempSync(join(tmpdir(), 'diffsim-weights-'));
    writeFileSync(join(single, 'model.fp16.safetensors'), '');
    writeFileSync(join(single, 'model.safetensors'), '');
    assert.is(weightsPath(await localModelFiles(single), '', 'model'), 'model.safetensors');
    rmSync(single, { recursive: true, force: true });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('seeded normal generator: deterministic, standard moments', () => {
  const a = new NormalGenerator(2334).randn(200000);
  const b = new NormalGenerator(2334).randn(200000);
  const c = new NormalGenerator(2335).randn(10);
  assert.equal(a.subarray(0, 10), b.subarray(0, 10));
  assert.not.equal([...a.subarray(0, 10)], [...c]);
  let mean = 0;
  let sq = 0;
  for (const v of a) {
    mean += v;
    sq += v * v;
  }
  mean /= a.length;
  const variance = sq / a.length - mean * mean;
  assert.ok(Math.abs(mean) < 0.01, `mean ${mean}`);
  assert.ok(Math.abs(variance - 1) < 0.01, `variance ${variance}`);
});

test.after(() => rmSync(root, { recursive: true, force: true }));
test.run();
