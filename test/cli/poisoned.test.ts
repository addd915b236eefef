// Slow suite: about 31 s of CPU on lavapipe (89 s wall on a shared 2-core machine).
// Poisoned models: copies of the tiny models (weights/tiny) with a non-finite weight or a broken
// config value. A score that is not finite is an error naming the model folder (and the first
// non-finite stage found), never a printed or returned result; configs are checked when read, the
// error naming the file and the key. Each case through the command line (one line on stderr,
// nothing on stdout) and the library (createMetric rejects).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FIXTURES, REPO_ROOT, offlineHub, rejects, runCli, runtime, type CliResult } from '../support/helpers.js';
import { createMetric, type CreateMetricOptions } from '../../src/diffsim/metric.js';
import { NonFiniteScoreError } from '../../src/diffsim/finite.js';
import { pairScore } from '../../src/diffsim/aas.js';
import { ConfigError } from '../../src/io/config-check.js';
import { PNDMScheduler, type SchedulerConfig } from '../../src/models/scheduler.js';
import { SD15_SCHEDULER_CONFIG } from '../../src/models/load.js';
import { validateImageProcessorConfig } from '../../src/io/preprocess.js';

const TINY = join(REPO_ROOT, 'weights', 'tiny');
const A = join(FIXTURES, 'diffsim-tiny', 'image_A.png');
const B = join(FIXTURES, 'diffsim-tiny', 'image_B.png');
const ROOT = mkdtempSync(join(tmpdir(), 'diffsim-poisoned-'));
const HF_HOME = join(ROOT, 'hf');

/** A copy of a tiny model (`sd15`, `clip`, `dinov2`, `ip-adapter`) under a new folder name. */
function copy(name: string, model: string): string {
  const dir = join(ROOT, name);
  cpSync(join(TINY, model), dir, { recursive: true });
  return dir;
}

/** Sets `key` of a JSON config to `value`. */
function edit(file: string, key: string, value: unknown): void {
  const c = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
  c[key] = value;
  writeFileSync(file, JSON.stringify(c));
}

/** Overwrites every value of one tensor of a safetensors file (F32 or F16) with `value`. */
function poison(file: string, tensor: string, value: number): void {
  const buf = readFileSync(file);
  const n = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8')) as Record<string, { dtype: string; data_offsets: [number, number] }>;
  const t = header[tensor];
  if (!t) throw new Error(`${file}: no tensor ${tensor}`);
  const [begin, end] = t.data_offsets.map((o) => 8 + n + o) as [number, number];
  if (t.dtype === 'F32') for (let i = begin; i < end; i += 4) buf.writeFloatLE(value, i);
  else if (t.dtype === 'F16') {
    const bits = Number.isNaN(value) ? 0x7e00 : value === Infinity ? 0x7c00 : value === -Infinity ? 0xfc00 : NaN;
    if (Number.isNaN(bits)) throw new Error('only non-finite values are written as F16');
    for (let i = begin; i < end; i += 2) buf.writeUInt16LE(bits, i);
  } else throw new Error(`${tensor}: dtype ${t.dtype}`);
  writeFileSync(file, buf);
}

function cli(...args: string[]): CliResult {
  return runCli(args, { timeout: 120_000, env: offlineHub(HF_HOME) });
}

/** Refused: the exit code, nothing on stdout, one line on stderr matching `pattern`. */
function refused(r: CliResult, pattern: RegExp, label: string, code = 1): void {
  assert.is(r.code, code, `${label}: exit code (stdout ${JSON.stringify(r.stdout)}, stderr ${r.stderr})`);
  assert.is(r.stdout, '', `${label}: nothing on stdout`);
  const lines = r.stderr.split('\n').filter(Boolean);
  assert.is(lines.length, 1, `${label}: one line on stderr, got ${JSON.stringify(r.stderr)}`);
  assert.match(lines[0]!, pattern, `${label}: ${lines[0]}`);
}

const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

// The poisoned models, built once.
const unetNaN = copy('unet-nan', 'sd15');
poison(join(unetNaN, 'unet', 'diffusion_pytorch_model.safetensors'), 'conv_in.weight', NaN);
const vaeNaN = copy('vae-nan', 'sd15');
poison(join(vaeNaN, 'vae', 'diffusion_pytorch_model.safetensors'), 'encoder.conv_in.weight', NaN);
const textInf = copy('text-inf', 'sd15');
poison(join(textInf, 'text_encoder', 'model.safetensors'), 'text_model.final_layer_norm.weight', Infinity);
const clipNaN = copy('clip-nan', 'clip');
poison(join(clipNaN, 'model.safetensors'), 'vision_model.embeddings.patch_embedding.weight', NaN);
const dinoInf = copy('dino-inf', 'dinov2');
poison(join(dinoInf, 'model.safetensors'), 'embeddings.patch_embeddings.projection.weight', Infinity);

test('a non-finite weight: the command fails naming the model folder and the first non-finite stage (never prints 0 or NaN)', () => {
  refused(cli('score', A, B, '--model', unetNaN), new RegExp(`^diffsim: ${esc(unetNaN)}: DiffSim gave no finite score .*the first non-finite stage is the hooked queries at up_blocks\\.1\\.attentions\\.2\\.transformer_blocks\\.0\\.attn1 for image A \\(computed with unet/diffusion_pytorch_model\\.safetensors\\): NaN`), 'U-Net conv_in NaN');
  refused(cli('score', A, B, '--model', vaeNaN), new RegExp(`^diffsim: ${esc(vaeNaN)}: DiffSim gave no finite score .*the VAE latent of image A \\(computed with vae/diffusion_pytorch_model\\.safetensors\\): NaN`), 'VAE conv_in NaN');
  refused(cli('score', A, B, '--metric', 'clip', '--clip-model', clipNaN), new RegExp(`^diffsim: ${esc(clipNaN)}: CLIP gave no finite score \\(got NaN\\): .*global feature of image A`), 'CLIP-I');
  refused(cli('score', A, B, '--metric', 'dino-aas', '--dino-model', dinoInf), new RegExp(`^diffsim: ${esc(dinoInf)}: DINOv2 gave no finite score .*layer 0's queries for image A`), 'DINOv2 AAS');
  refused(cli('pick', A, A, B, '--metric', 'dino', '--dino-model', dinoInf), new RegExp(`^diffsim: ${esc(dinoInf)}: DINOv2 gave no finite score`), 'pick');
});

test('a non-finite weight: the library rejects, through score and through embed/compare alike', async () => {
  const rt = await runtime();
  const cases: [string, CreateMetricOptions & { metric: Parameters<typeof createMetric>[0] }, RegExp][] = [
    ['VAE NaN, diffsim', { metric: 'diffsim', model: vaeNaN }, /the VAE latent of image A/],
    ['VAE NaN, diffeats', { metric: 'diffeats', model: vaeNaN }, /diffeats gave no finite score .*the VAE latent of image A/],
    ['text encoder Inf', { metric: 'diffsim', model: textInf }, /the text encoder's output \(computed with text_encoder\/model\.safetensors\): Infinity/],
    ['CLIP NaN, clip-aas', { metric: 'clip-aas', clipModel: clipNaN }, /CLIP gave no finite score/],
    ['DINOv2 Inf, dino', { metric: 'dino', dinoModel: dinoInf }, /DINOv2 gave no finite score/],
  ];
  for (const [label, { metric, ...o }, pattern] of cases) {
    const m = await createMetric(metric, { ...o, runtime: rt });
    try {
      const folder = o.model ?? o.clipModel ?? o.dinoModel!;
      let err: unknown;
      await m.score(A, B).then(
        (x) => assert.unreachable(`${label}: returned ${x}`),
        (e: unknown) => (err = e),
      );
      assert.instance(err, NonFiniteScoreError, label);
      assert.ok((err as Error).message.startsWith(`${folder}: `), `${label}: names the folder: ${(err as Error).message}`);
      assert.match((err as Error).message, pattern, label);
      if (metric !== 'diffeats') {
        const ea = await m.embed(A, 'A');
        const eb = await m.embed(B, 'B');
        await rejects(() => m.compare(ea, eb), /gave no finite score/, `${label}: compare`);
        ea.dispose();
        eb.dispose();
      }
    } finally {
      await m.close();
    }
  }
});

test('scheduler, VAE, image processor and IP scale values are checked when loaded, the error naming the file and the key', async () => {
  const beta = copy('beta-end', 'sd15');
  edit(join(beta, 'scheduler', 'scheduler_config.json'), 'beta_end', -5);
  refused(cli('score', A, B, '--model', beta), new RegExp(`^diffsim: ${esc(join(beta, 'scheduler', 'scheduler_config.json'))}: beta_end must be in \\(0, 1\\), got -5$`), 'beta_end -5');
  const scaling = copy('scaling-nan', 'sd15');
  edit(join(scaling, 'vae', 'config.json'), 'scaling_factor', 'NaN');
  refused(cli('score', A, B, '--model', scaling), new RegExp(`^diffsim: ${esc(join(scaling, 'vae', 'config.json'))}: scaling_factor must be a finite number .*got "NaN"$`), 'scaling_factor "NaN"');
  const std = copy('std-zero', 'dinov2');
  edit(join(std, 'preprocessor_config.json'), 'image_std', [0, 0, 0]);
  refused(cli('score', A, B, '--metric', 'dino', '--dino-model', std), new RegExp(`^diffsim: ${esc(join(std, 'preprocessor_config.json'))}: image_std\\[0\\] must be in \\(0, .*got 0$`), 'image_std 0');
  // A command-line value out of range is a usage error (exit 2), as other option values.
  refused(cli('score', A, B, '--metric', 'diffsim-c', '--ip-scale', '1e38', '--model', join(TINY, 'sd15'), '--ip-adapter', join(TINY, 'ip-adapter')), /^diffsim: score: --ip-scale must be within ±100, got 1e38/, '--ip-scale 1e38', 2);

  const rt = await runtime();
  await rejects(() => createMetric('diffsim-c', { model: join(TINY, 'sd15'), ipAdapter: join(TINY, 'ip-adapter'), runtime: rt, diffsim: { ipScale: 1e38 } }), /ipScale must be within ±100, got 1e\+38/, 'ipScale 1e38');
  const zero = copy('scaling-zero', 'sd15');
  edit(join(zero, 'vae', 'config.json'), 'scaling_factor', 0);
  await rejects(() => createMetric('diffsim', { model: zero, runtime: rt }), new RegExp(`${esc(join(zero, 'vae', 'config.json'))}: scaling_factor must be in \\(0, .*got 0`), 'scaling_factor 0');
  const mean = copy('clip-mean', 'clip');
  edit(join(mean, 'preprocessor_config.json'), 'image_mean', [0.5, 0.5]);
  await rejects(() => createMetric('clip', { clipModel: mean, runtime: rt }), new RegExp(`${esc(join(mean, 'preprocessor_config.json'))}: image_mean must be a list of 3 numbers`), 'image_mean of 2');
  await rejects(() => createMetric('diffsim', { model: beta, runtime: rt }), /scheduler_config\.json: beta_end must be in \(0, 1\), got -5/, 'library: beta_end');
});

test('scheduler configs: betas in (0, 1) with start ≤ end, a positive integer step count, a known schedule', () => {
  const base = { ...SD15_SCHEDULER_CONFIG } as SchedulerConfig;
  const bad: [Partial<SchedulerConfig> & Record<string, unknown>, RegExp][] = [
    [{ beta_end: -5 }, /^x\.json: beta_end must be in \(0, 1\), got -5$/],
    [{ beta_start: 0 }, /^x\.json: beta_start must be in \(0, 1\), got 0$/],
    [{ beta_end: 1 }, /beta_end must be in \(0, 1\), got 1$/],
    [{ beta_start: 0.02 }, /^x\.json: beta_start 0\.02 must be ≤ beta_end 0\.012$/],
    [{ beta_start: 'NaN' as unknown as number }, /beta_start must be a finite number in \(0, 1\), got "NaN"/],
    [{ num_train_timesteps: 0 }, /^x\.json: num_train_timesteps must be in \[1, 100000\], got 0$/],
    [{ num_train_timesteps: 1.5 }, /num_train_timesteps must be an integer/],
    [{ num_train_timesteps: 1e9 }, /num_train_timesteps must be in \[1, 100000\], got 1000000000/],
    [{ beta_schedule: 'cosine' }, /^x\.json: beta_schedule "cosine" is not supported \(linear, scaled_linear\)$/],
    [{ trained_betas: [0.1, 2], num_train_timesteps: 2 }, /trained_betas\[1\] must be in \(0, 1\), got 2/],
    [{ timestep_spacing: 'sometimes' }, /timestep_spacing "sometimes" is not supported/],
  ];
  for (const [change, pattern] of bad) {
    assert.throws(() => new PNDMScheduler({ ...base, ...change } as SchedulerConfig, 'x.json'), (e: Error) => e instanceof ConfigError && pattern.test(e.message), JSON.stringify(change));
  }
  assert.is(new PNDMScheduler(base).alphasCumprod.length, 1000, 'SD1.5 schedule accepted');
  assert.throws(() => validateImageProcessorConfig({ image_std: [1, 1, Number.NaN] }, 'p.json'), /^p\.json: image_std\[2\] must be a finite number/);
  assert.throws(() => validateImageProcessorConfig({ rescale_factor: -1 }, 'p.json'), /^p\.json: rescale_factor must be in \(0, /);
  assert.throws(() => validateImageProcessorConfig({ crop_size: { height: 0, width: 224 } }, 'p.json'), /^p\.json: crop_size\.height must be in \[1, 8192\], got 0$/);
});

test('sizes and their consistency are checked when a config is loaded, naming the file and the key', async () => {
  const cases: [string, string, string, unknown, RegExp][] = [
    ['sample-size', 'sd15', 'unet/config.json', 100000, /sample_size must be in \[1, 4096\], got 100000$/],
    ['head-dim', 'sd15', 'unet/config.json', 7, /attention_head_dim 7 \(attention heads\) does not divide block_out_channels\[0\] = 32$/],
    ['groups-7', 'sd15', 'unet/config.json', 7, /norm_num_groups 7 does not divide block_out_channels\[0\] = 32$/],
    ['dino-heads', 'dinov2', 'config.json', 5, /num_attention_heads 5 does not divide hidden_size 32$/],
  ];
  const key = ['sample_size', 'attention_head_dim', 'norm_num_groups', 'num_attention_heads'];
  for (const [i, [name, model, file, value, pattern]] of cases.entries()) {
    const dir = copy(name, model);
    edit(join(dir, file), key[i]!, value);
    const args = model === 'dinov2' ? ['--metric', 'dino', '--dino-model', dir] : ['--model', dir];
    refused(cli('score', A, B, ...args), new RegExp(`^diffsim: ${esc(join(dir, file))}: ${pattern.source}`), name);
  }
  const rt = await runtime();
  const groups = copy('groups-0', 'sd15');
  edit(join(groups, 'unet', 'config.json'), 'norm_num_groups', 0);
  await rejects(() => createMetric('diffsim', { model: groups, runtime: rt }), new RegExp(`${esc(join(groups, 'unet', 'config.json'))}: norm_num_groups must be ≥ 1, got 0`), 'norm_num_groups 0');
  const vaeGroups = copy('vae-groups', 'sd15');
  edit(join(vaeGroups, 'vae', 'config.json'), 'norm_num_groups', 7);
  await rejects(() => createMetric('diffsim', { model: vaeGroups, runtime: rt }), new RegExp(`${esc(join(vaeGroups, 'vae', 'config.json'))}: norm_num_groups 7 does not divide block_out_channels\\[0\\] = 16`), 'VAE norm_num_groups 7');
  // A sample_size the U-Net accepts, but whose default image size is past what --size allows.
  const big = copy('sample-size-1000', 'sd15');
  edit(join(big, 'unet', 'config.json'), 'sample_size', 1000);
  refused(cli('score', A, B, '--model', big), new RegExp(`^diffsim: ${esc(join(big, 'unet', 'config.json'))}: sample_size 1000 gives a default image size of 8000 .*outside 64–4096`), 'default size 8000');
  await rejects(() => createMetric('diffsim', { model: big, runtime: rt }), /sample_size 1000 gives a default image size of 8000/, 'library: default size 8000');
  // Given explicitly, the size is the user's.
  const m = await createMetric('diffsim', { model: big, runtime: rt, diffsim: { imageSize: 64 } });
  assert.ok(Number.isFinite(await m.score(A, B)));
  await m.close();
});

test('pair sums: sound only when finite and neither tensor is all zeros', () => {
  assert.ok(pairScore([1, 1, 1, 0], 0, 1).sound);
  assert.not.ok(pairScore([0, 0, 0, 0], 0, 1).sound, 'all zeros (a GPU may turn NaN into zeros)');
  assert.not.ok(pairScore([NaN, 1, 1, 0], 0, 1).sound);
  assert.not.ok(pairScore([1, Infinity, 1, 0], 0, 1).sound);
});

test.after(() => rmSync(ROOT, { recursive: true, force: true }));

test.run();
