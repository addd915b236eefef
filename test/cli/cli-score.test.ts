// Slow suite: about 103 s of CPU on lavapipe (284 s wall on a shared 2-core machine).
// `diffsim score` and `diffsim pick` on the shipped tiny random-weight models (weights/tiny), run as
// the package's command with the hub offline and an empty cache, so nothing is downloaded.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FIXTURES, REPO_ROOT, offlineHub, runCli, runtime, type CliResult } from '../support/helpers.js';
import { DiffSim } from '../../src/diffsim/core.js';
import { loadImage } from '../../src/io/image.js';
import { f16BitsToF32, f32ToF16Bits } from '../../src/platform/half.js';

const f16 = (x: number) => f16BitsToF32(f32ToF16Bits(x));

const TINY = join(REPO_ROOT, 'weights', 'tiny');
const A = join(FIXTURES, 'diffsim-tiny', 'image_A.png');
const B = join(FIXTURES, 'diffsim-tiny', 'image_B.png');
const MODELS = ['--model', join(TINY, 'sd15'), '--ip-adapter', join(TINY, 'ip-adapter'), '--clip-model', join(TINY, 'clip'), '--dino-model', join(TINY, 'dinov2')];
const HF_HOME = mkdtempSync(join(tmpdir(), 'diffsim-cli-score-hf-'));

function cli(...args: string[]): CliResult {
  return runCli(args, { timeout: 120_000, env: offlineHub(HF_HOME) });
}

/** The one number a plain `score` prints. */
function number(r: { code: number | null; stdout: string; stderr: string }, label: string): number {
  assert.is(r.code, 0, `${label}: exit code (${r.stderr})`);
  assert.match(r.stdout, /^\S+\n$/, `${label}: one line on stdout, got ${JSON.stringify(r.stdout)}`);
  const x = Number(r.stdout.trim());
  assert.ok(Number.isFinite(x), `${label}: a finite number, got ${r.stdout}`);
  return x;
}

function lastJson(r: { code: number | null; stdout: string; stderr: string }, label: string): Record<string, unknown> {
  assert.is(r.code, 0, `${label}: exit code (${r.stderr})`);
  const lines = r.stdout.trim().split('\n');
  return JSON.parse(lines[lines.length - 1]!) as Record<string, unknown>;
}

const scores = new Map<string, number>();

test('score: every metric gives one finite number on stdout on the tiny models', () => {
  for (const metric of ['diffsim', 'diffsim-c', 'clip', 'dino', 'clip-aas', 'dino-aas', 'clipfeats', 'dinofeats', 'diffeats']) {
    const x = number(cli('score', A, B, '--metric', metric, ...MODELS), metric);
    scores.set(metric, x);
  }
  // Without --metric: DiffSim.
  assert.is(number(cli('score', A, B, '--model', join(TINY, 'sd15')), 'default metric'), scores.get('diffsim'));
  for (const m of ['clip', 'dino']) assert.ok(scores.get(m)! > -100 && scores.get(m)! <= 100, `${m} is 100·cosine`);
});

test('stderr carries no line of Dawn\'s: its adapter notices are dropped, the command says nothing else on a plain score', () => {
  const r = cli('score', A, B, '--model', join(TINY, 'sd15'));
  number(r, 'score');
  for (const line of r.stderr.split('\n')) assert.not.match(line, /artificially reduced|^Warning:/, `stderr: ${line}`);
});

test('score --json: the settings used (step 600 → t 401, the hooked module, models, noise, size)', () => {
  const j = lastJson(cli('score', A, B, '--json', ...MODELS), 'json');
  assert.is(j.score, scores.get('diffsim'));
  assert.is(j.metric, 'diffsim');
  assert.is(j.t, 401);
  assert.is(j.step, 600);
  assert.is(j.module, 'up_blocks.1.attentions.2.transformer_blocks.0.attn1');
  assert.is(j.block, 'up');
  assert.is(j.layer, 0);
  assert.is(j.seed, 2334);
  assert.is(j.prompt, 'High quality image');
  assert.is(j.noise, 'official-4-draws');
  assert.is(j.imageSize, 64);
  assert.is(j.similarity, 'cosine');
  assert.is(j.lowerBetter, false);
  // A local folder: its absolute path and the stamp of its files' sizes and mtimes (in the metric key).
  const stamp = (j.models as { sd: { stamp?: string } }).sd.stamp;
  assert.match(String(stamp), /^[0-9a-f]{32}$/);
  assert.equal(j.models, { sd: { spec: join(TINY, 'sd15'), path: join(TINY, 'sd15'), stamp } });

  const mse = lastJson(cli('score', A, B, '--json', '--similarity', 'mse', '--block', 'down', '--step', '900', '--seed', '7', '--prompt', 'a photo', ...MODELS), 'mse');
  assert.is(mse.lowerBetter, true);
  assert.is(mse.t, 101);
  assert.is(mse.module, 'down_blocks.0.attentions.1.transformer_blocks.0.attn1');
  assert.is(mse.seed, 7);
  assert.is(mse.prompt, 'a photo');
  assert.ok(Number.isFinite(mse.score as number) && (mse.score as number) >= 0);

  const c = lastJson(cli('score', A, B, '--json', '--metric', 'diffsim-c', ...MODELS), 'diffsim-c json');
  assert.is(c.module, 'up_blocks.1.attentions.2.transformer_blocks.0.attn2');
  assert.is(c.variant, 'C');
  assert.is((c.models as Record<string, { spec: string }>).ipAdapter!.spec, join(TINY, 'ip-adapter'));
  const aas = lastJson(cli('score', A, B, '--json', '--metric', 'dino-aas', '--layer', '2', ...MODELS), 'dino-aas json');
  assert.is(aas.layer, 2);
  assert.is(aas.metric, 'dino-aas');
});

test('score of an image with itself: 100 for CLIP-I, 1 for DiffSim with shared noise', () => {
  assert.ok(Math.abs(number(cli('score', A, A, '--metric', 'clip', ...MODELS), 'clip A A') - 100) < 1e-3);
  assert.ok(Math.abs(number(cli('score', A, A, '--noise', 'shared', ...MODELS), 'diffsim A A shared') - 1) < 1e-6);
  // Official noise: A and B get different draws, so A against itself is below 1.
  assert.ok(number(cli('score', A, A, ...MODELS), 'diffsim A A') < 1);
});

test('the command gives the library score bit for bit', async () => {
  const rt = await runtime();
  const metric = await DiffSim.load(rt, join(TINY, 'sd15'), { step: 600 });
  try {
    const lib = await metric.score(await loadImage(A), await loadImage(B));
    assert.is(scores.get('diffsim'), lib);
    assert.is(Object.is(Number(String(lib)), lib), true);
  } finally {
    metric.dispose();
  }
});

test('pick: 1 or 2 by the metric, REF as the anchor; ensemble shows the three votes', () => {
  const one = cli('pick', A, A, B, ...MODELS);
  assert.is(one.code, 0, one.stderr);
  assert.is(one.stdout.split('\n')[0], '1');
  const two = lastJson(cli('pick', A, B, A, '--metric', 'clip', '--json', ...MODELS), 'clip pick');
  assert.is(two.pick, 2);
  assert.equal(two.votes, { clip: 2 });
  assert.is((two.scores as Record<string, number[]>).clip![1], 100);
  const e = lastJson(cli('pick', A, A, B, '--metric', 'ensemble', '--json', ...MODELS), 'ensemble');
  assert.is(e.pick, 1);
  assert.equal(e.votes, { diffsim: 1, clip: 1, dino: 1 });
  const s = e.scores as Record<string, [number, number]>;
  for (const k of ['diffsim', 'clip', 'dino']) assert.is(s[k]!.length, 2, k);
  assert.is(s.clip![0], 100);
  // The DiffSim scores are the anchor (role A) against each candidate (role B).
  assert.is(s.diffsim![1], scores.get('diffsim'));
  const plain = cli('pick', A, B, A, '--metric', 'ensemble', ...MODELS);
  assert.is(plain.code, 0, plain.stderr);
  const lines = plain.stdout.trim().split('\n');
  assert.is(lines[0], '2');
  for (const k of ['diffsim', 'clip', 'dino']) assert.ok(lines.some((l) => l.startsWith(`${k}: `)), `${k} vote shown`);
});

test('a hub id is found in the cache offline; --json names the snapshot folder and its commit', () => {
  const commit = '0123456789abcdef0123456789abcdef01234567';
  const repo = join(HF_HOME, 'hub', 'models--stable-diffusion-v1-5--stable-diffusion-v1-5');
  const snapshot = join(repo, 'snapshots', commit);
  mkdirSync(join(repo, 'refs'), { recursive: true });
  cpSync(join(TINY, 'sd15'), snapshot, { recursive: true });
  writeFileSync(join(repo, 'refs', 'main'), commit);
  try {
    const j = lastJson(cli('score', A, B, '--json'), 'hub id');
    assert.is(j.score, scores.get('diffsim'));
    assert.equal(j.models, { sd: { spec: 'stable-diffusion-v1-5/stable-diffusion-v1-5', path: snapshot, commit } });
  } finally {
    rmSync(repo, { recursive: true, force: true });
  }
});

test('the options of the official quirks: --timestep, --vae mean, --cfg, --negative-prompt, --fp16-score, --ip-scale', () => {
  const sd = ['--model', join(TINY, 'sd15')];
  const base = scores.get('diffsim')!;
  assert.is(number(cli('score', A, B, ...sd, '--timestep', '401'), '--timestep 401'), base, 'timestep 401 = step 600');
  const j = lastJson(cli('score', A, B, ...sd, '--timestep', '401', '--json'), 'timestep json');
  assert.is(j.stepMode, 'timestep');
  assert.is(j.t, 401);
  for (const [flag, value] of [['--vae', 'mean'], ['--cfg', 'cond'], ['--cfg', 'uncond'], ['--cfg', 'off'], ['--negative-prompt', 'blurry']] as const) {
    assert.not.equal(number(cli('score', A, B, ...sd, flag, value), `${flag} ${value}`), base, `${flag} ${value} changes the score`);
  }
  const off = lastJson(cli('score', A, B, ...sd, '--cfg', 'off', '--json'), 'cfg off json');
  assert.is(off.cfg, false);
  const half = number(cli('score', A, B, ...sd, '--fp16-score'), '--fp16-score');
  assert.is(f16(half), half, 'a float16 value');
  assert.ok(Math.abs(half - base) < 1e-3, 'close to the f32 score');
  const c = ['--metric', 'diffsim-c', ...MODELS];
  assert.not.equal(number(cli('score', A, B, ...c, '--ip-scale', '1'), '--ip-scale 1'), scores.get('diffsim-c'));
});

function fails(args: string[], pattern: RegExp, label: string, code?: number) {
  const r = cli(...args);
  assert.ok(r.code !== 0 && r.code !== null, `${label}: exit code ${r.code}`);
  if (code !== undefined) assert.is(r.code, code, `${label}: exit code`);
  assert.is(r.stdout, '', `${label}: nothing on stdout`);
  const lines = r.stderr.split('\n');
  assert.is(lines.length, 1, `${label}: one line on stderr, got ${JSON.stringify(r.stderr)}`);
  assert.match(lines[0]!, pattern, `${label}: names the problem`);
  assert.not.match(r.stderr, /^\s+at /m, `${label}: no stack trace`);
}

test('errors: one line naming the argument or file, exit code ≠ 0, no stack', () => {
  const missing = join(HF_HOME, 'nope.png');
  fails(['score', missing, B, ...MODELS], new RegExp(`nope\\.png: cannot read \\(no such file\\)`), 'missing image', 1);
  fails(['score', A, join(REPO_ROOT, 'package.json'), ...MODELS], /package\.json: not a PNG, JPEG or BMP image/, 'not an image', 1);
  fails(['score', A, B, '--metric', 'dists', ...MODELS], /unknown --metric "dists"/, 'metric', 2);
  fails(['score', A, B, '--step', '0', ...MODELS], /--step 0 is outside 1–1000/, 'step 0', 2);
  fails(['score', A, B, '--block', 'sideways', ...MODELS], /unknown --block "sideways"/, 'block', 2);
  fails(['score', A, B, '--layer', '7', ...MODELS], /--layer 7: block "up" has no layer 7/, 'DiffSim layer', 2);
  fails(['score', A, B, '--metric', 'clip-aas', '--layer', '3', ...MODELS], /--layer 3: the CLIP encoder has 3 layers/, 'CLIP layer', 2);
  fails(['score', A, B, '--size', '4', ...MODELS], /--size 4 is outside 64–4096/, 'size', 2);
  fails(['score', A, B, '--frobnicate', ...MODELS], /unknown option --frobnicate/, 'option', 2);
  fails(['score', A, ...MODELS], /expected 2 images \(A B\), got 1/, 'image count', 2);
  fails(['pick', A, B, ...MODELS], /expected 3 images \(REF A B\), got 2/, 'pick image count', 2);
  fails(['score', A, B, '--metric', 'ensemble', ...MODELS], /unknown --metric "ensemble"/, 'ensemble is pick only', 2);
  fails(['score', A, B, '--metric', 'clip', '--step', '500', ...MODELS], /--step does not apply to --metric clip/, 'inapplicable option', 2);
  fails(['score', A, B, '--step', '500', '--timestep', '3', ...MODELS], /give --step or --timestep, not both/, 'step and timestep', 2);
  fails(['score', A, B, '--timestep', '1000', ...MODELS], /--timestep 1000 is outside 0–999/, 'timestep range', 2);
  fails(['score', A, B, '--cfg', 'half', ...MODELS], /unknown --cfg "half"/, 'cfg', 2);
  fails(['score', A, B, '--ip-scale', '0.5', ...MODELS], /--ip-scale does not apply to --metric diffsim/, 'ip-scale for diffsim', 2);
  fails(['score', A, B, '--metric', 'diffeats', '--similarity', 'mse', ...MODELS], /--similarity does not apply to --metric diffeats/, 'diffeats mse', 2);
  // Models: a missing local folder, and the default hub id with an empty cache while offline.
  fails(['score', A, B, '--model', join(HF_HOME, 'no-such-folder')], /no-such-folder: no such file or folder/, 'missing model folder', 1);
  fails(['score', A, B], /stable-diffusion-v1-5\/stable-diffusion-v1-5: .*offline/, 'hub id offline', 1);
  fails(['score', A, B, '--metric', 'diffsim-c', '--model', join(TINY, 'sd15')], /h94\/IP-Adapter: .*offline/, 'IP-Adapter offline', 1);
  fails(['score', A, B, '--ip-adapter', join(TINY, 'clip'), '--metric', 'diffsim-c', '--model', join(TINY, 'sd15')], /clip: no ip-adapter-plus_sd15\.safetensors/, 'not an IP-Adapter folder', 1);
});

test.run();
