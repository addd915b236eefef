// The loader layer's file sources: local folders and files (listing, symlinks, bounds), bytes in
// memory, sub-folders, small-file readers, the choice of weights and the layouts the loaders see.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { localModelFiles, MAX_LISTED_FILES, snapshotCommitOf } from '../../src/io/local-files.js';
import { MemoryModelFiles, chooseWeights, openWeights, readJson, readText, subFiles, weightsPath } from '../../src/io/model-files.js';
import { encodeSafetensors } from '../../src/io/safetensors.js';
import { ipAdapterLayout, sd15Layout } from '../../src/models/load.js';
import { FIXTURES, rejects } from '../support/helpers.js';

const root = mkdtempSync(join(tmpdir(), 'diffsim-files-'));

function put(path: string, data: string | Uint8Array = ''): void {
  mkdirSync(join(path, '..'), { recursive: true });
  writeFileSync(path, data);
}

test('a local folder: every file below it by relative path, symlinks followed (the hub cache), hidden entries and loops skipped', async () => {
  const dir = join(root, 'sd');
  put(join(dir, 'unet', 'config.json'), '{"a": 1}');
  put(join(dir, 'unet', 'diffusion_pytorch_model.safetensors'));
  put(join(root, 'blobs', 'abc'), 'vocab');
  mkdirSync(join(dir, 'tokenizer'));
  symlinkSync(join(root, 'blobs', 'abc'), join(dir, 'tokenizer', 'vocab.json'));
  put(join(dir, '.cache', 'x.lock'));
  symlinkSync(dir, join(dir, 'unet', 'loop'));
  const files = await localModelFiles(dir);
  assert.equal(files.paths, ['tokenizer/vocab.json', 'unet/config.json', 'unet/diffusion_pytorch_model.safetensors']);
  assert.is(files.entry, undefined);
  assert.is(await readText(files, 'tokenizer/vocab.json', 'vocabulary'), 'vocab');
  assert.equal(await readJson(files, 'unet/config.json', 'U-Net config'), { a: 1 });
  await rejects(() => readJson(files, 'vae/config.json', 'VAE config'), /sd\/vae\/config\.json: no VAE config \(the model .* has 3 files: tokenizer\/vocab\.json/, 'missing file');
  await rejects(() => files.open('../blobs/abc'), /not a file of the model/, 'a path outside the listing');
  const sub = subFiles(files, 'unet');
  assert.equal(sub.paths, ['config.json', 'diffusion_pytorch_model.safetensors']);
  assert.equal(await readJson(sub, 'config.json', 'config'), { a: 1 });
});

test('a local file: the entry, with its folder listed for what sits beside it; a large folder gives the file alone, a large model folder is refused', async () => {
  const dir = join(root, 'ip');
  put(join(dir, 'ip-adapter-plus_sd15.safetensors'));
  put(join(dir, 'image_encoder', 'config.json'), '{}');
  const files = await localModelFiles(join(dir, 'ip-adapter-plus_sd15.safetensors'));
  assert.is(files.entry, 'ip-adapter-plus_sd15.safetensors');
  assert.ok(files.paths.includes('image_encoder/config.json'));
  assert.equal(ipAdapterLayout(files), { adapter: 'ip-adapter-plus_sd15.safetensors', imageEncoder: 'image_encoder' });
  const big = join(root, 'big');
  mkdirSync(big);
  for (let i = 0; i <= MAX_LISTED_FILES; i++) writeFileSync(join(big, `f${i}`), '');
  const one = await localModelFiles(join(big, 'f7'));
  assert.equal(one.paths, ['f7']);
  await rejects(() => localModelFiles(big), /big: more than 20000 files: not a model folder/, 'a large folder');
  rmSync(big, { recursive: true, force: true });
  await rejects(() => localModelFiles(join(root, 'nope')), /nope: cannot open \(no such file or folder\)/, 'missing');
});

test('hub cache snapshots carry their commit', () => {
  assert.is(snapshotCommitOf(`/c/models--a--b/snapshots/${'0123456789'.repeat(4)}/unet`), '0123456789'.repeat(4));
  assert.is(snapshotCommitOf('/c/models--a--b/snapshots/main/unet'), undefined);
});

test('weights of a component: a shard index first (a variant index too), then the plain file; other formats named in the error', async () => {
  assert.is(chooseWeights(['model.fp16.safetensors', 'model.safetensors']), 'model.safetensors');
  assert.is(chooseWeights(['a.safetensors', 'a.safetensors.index.fp16.json']), 'a.safetensors.index.fp16.json');
  const files = new MemoryModelFiles('repo', { 'unet/diffusion_pytorch_model.bin': new Uint8Array(1), 'vae/x.safetensors': new Uint8Array(1) });
  assert.throws(() => weightsPath(files, 'unet', 'U-Net'), /repo\/unet: no \.safetensors weights for the U-Net \(found diffusion_pytorch_model\.bin: only \.safetensors is read/);
  assert.is(weightsPath(files, 'vae', 'VAE'), 'vae/x.safetensors');
  // A shard index opens its shards beside it, through the same files.
  const shard = (name: string) => encodeSafetensors({ [name]: { dtype: 'F32', shape: [1], data: new Float32Array([1]) } });
  const sharded = new MemoryModelFiles('sharded', {
    'm/model-00001-of-00002.safetensors': shard('a'),
    'm/model-00002-of-00002.safetensors': shard('b'),
    'm/model.safetensors.index.json': JSON.stringify({ weight_map: { a: 'model-00001-of-00002.safetensors', b: 'model-00002-of-00002.safetensors' } }),
  });
  const src = await openWeights(sharded, weightsPath(sharded, 'm', 'model'));
  assert.equal(src.names().sort(), ['a', 'b']);
  await src.close();
});

test('the SD1.5 layout: a pipeline folder, a single-file checkpoint (by its tensor names), or a clear error', async () => {
  const pipeline = new MemoryModelFiles('pipe', { 'unet/config.json': '{}', 'unet/diffusion_pytorch_model.safetensors': new Uint8Array(1) });
  assert.equal(await sd15Layout(pipeline), { kind: 'diffusers' });
  const single = await localModelFiles(join(FIXTURES, 'single-file', 'sd15-tiny-single-file.safetensors'));
  assert.equal(await sd15Layout(single), { kind: 'single-file', file: 'sd15-tiny-single-file.safetensors' });
  const other = await localModelFiles(join(FIXTURES, 'unet-tiny', 'unet.safetensors'));
  await rejects(() => sd15Layout(other), /unet\.safetensors: not an SD1\.5 checkpoint: expected a diffusers pipeline folder/, 'a component file');
  await rejects(() => sd15Layout(new MemoryModelFiles('empty', { 'README.md': 'x' })), /empty: not a Stable Diffusion model: no unet\/ folder .* \(found README\.md\)/, 'no model');
  await rejects(() => sd15Layout(new MemoryModelFiles('ckpt', { 'model.ckpt': new Uint8Array(1) }, 'model.ckpt')), /model\.ckpt: not a \.safetensors checkpoint/, 'a .ckpt');
});

test.after(() => rmSync(root, { recursive: true, force: true }));

test.run();
