// DiffSim on DiT (diffsim-dit): the dit-tiny parity (every stored value, f32 and f16 weights), the
// official timestep semantics (respacing table, the step ≤ 500 refusal, the intended mode), the two
// checkpoint layouts and their timestep sinusoids, the metric API, bad inputs, and the CLI (score,
// pick, eval with the official scripts' 'diffsim' in --metric rule) on the shipped tiny DiT.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { cpSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runParity } from '../../src/parity/parity.js';
import { createMetric } from '../../src/diffsim/metric.js';
import { DiffSimDiT, ditTimesteps } from '../../src/diffsim/dit.js';
import { DiffSimSettingsError } from '../../src/diffsim/settings.js';
import { loadImage } from '../../src/io/image.js';
import { loadDit } from '../../src/models/load.js';
import { respacedTimestepMap, sincosPositionTable } from '../../src/models/dit.js';
import { FIXTURES, REPO_ROOT, rejects, runCli, runtime } from '../support/helpers.js';
import { png } from '../support/images.js';

const TINY_DIT = join(REPO_ROOT, 'weights', 'tiny', 'dit');
const FIX = join(FIXTURES, 'dit-tiny');
const A = join(FIX, 'image_A.png');
const B = join(FIX, 'image_B.png');
const TMP = mkdtempSync(join(tmpdir(), 'diffsim-dit-'));

for (const weights of ['f32', 'f16'] as const) {
  test(`dit-tiny parity, ${weights} weights: every stored value compared and within tolerance`, async () => {
    const rt = await runtime();
    const { rows } = await runParity(rt, FIXTURES, ['dit-tiny'], undefined, { weights });
    const failed = rows.filter((r) => !r.pass);
    assert.equal(failed.map((r) => `${r.name}: ${r.err} > ${r.tol} ${r.note ?? ''}`), [], 'rows that fail');
    assert.ok(!rows.some((r) => r.kind === 'skipped'), 'nothing skipped');
    const names = new Set(rows.map((r) => r.name));
    // The official path's tensors, the diffusers layout's, and the scores.json cross-checks are all there.
    for (const n of ['emb.t_freq', 'blocks.27.attn.q', 'blocks.0.adaLN_modulation:out', 'step900.layer27.score_cos', 'step600.layer27.attn_a_on_b', 'diffusers.step600.layer13.v_A', 'diffusers.t_freq', 'scores.json:official_crosscheck.target_step_500.error', 'scores.json:diffusers_vs_official_qkv_max_abs_diff.layer0.q']) {
      assert.ok(names.has(n), `row ${n}`);
    }
    assert.ok(rows.length >= 390, `${rows.length} rows`);
    if (weights === 'f16') assert.ok(rows.some((r) => r.kind === 'normalised' && r.err > 1e-5), 'f16 weights change the values (the rows are not the f32 ones)');
  });
}

test('official timesteps: respacing as DiT/diffusion/respace.py (600 → 667, 750 → 333, 800 → 250, 900 → 111); steps ≤ 500 and 1000 refused; intended mode', () => {
  const want: [number, number][] = [[600, 667], [750, 333], [800, 250], [900, 111], [501, 997], [999, 1]];
  for (const [step, t] of want) {
    const ts = ditTimesteps(step, 'official');
    assert.equal([ts.tNoise, ts.tIndex, ts.tModel], [step, 1000 - step, t], `step ${step}`);
  }
  // The stride accumulates in float64 and Python rounds half to even: 3 of 5 gives [0, 2, 4].
  assert.equal(respacedTimestepMap(5, 3), [0, 2, 4]);
  assert.equal(respacedTimestepMap(1000, 1000).length, 1000);
  assert.equal(respacedTimestepMap(1000, 2), [0, 999]);
  for (const step of [500, 1, 0, 1000]) assert.throws(() => ditTimesteps(step, 'official'), (e: Error) => e instanceof DiffSimSettingsError && /501–999/.test(e.message) && /intended/.test(e.message), `step ${step}`);
  assert.equal(ditTimesteps(500, 'intended'), { tNoise: 500, tModel: 500, tIndex: 500 });
  assert.throws(() => ditTimesteps(1000, 'intended'), /0–999/);
  // The position table: token (i, j) = [sin jω, cos jω, sin iω, cos iω].
  const pos = sincosPositionTable(8, 3);
  assert.ok(Math.abs(pos[(1 * 3 + 2) * 8 + 0]! - Math.sin(2)) < 1e-7 && Math.abs(pos[(1 * 3 + 2) * 8 + 4]! - Math.sin(1)) < 1e-7);
});

test('layouts: the DiTPipeline folder uses diffusers\' sinusoid, the official checkpoint the official one; the metric reports which', async () => {
  const rt = await runtime();
  const off = join(TMP, 'official');
  mkdirSync(join(off, 'vae'), { recursive: true });
  cpSync(join(FIX, 'DiT-XL-2-tiny.safetensors'), join(off, 'DiT-XL-2-tiny.safetensors'));
  cpSync(join(FIX, 'diffusers', 'vae'), join(off, 'vae'), { recursive: true });
  const a = await loadImage(A);
  const b = await loadImage(B);
  const scores: Record<string, number> = {};
  for (const [name, folder] of [['official', off], ['diffusers', join(FIX, 'diffusers')]] as const) {
    const models = await loadDit(rt, folder);
    try {
      assert.is(models.layout.kind, name);
      const m = new DiffSimDiT(rt, models);
      assert.is(m.settings.timestepEmbedding, name);
      assert.is(m.settings.tModel, 667);
      assert.is(m.settings.module, 'blocks.0.attn');
      scores[name] = await m.score(a, b);
    } finally {
      models.dit.dispose();
      models.vae.store.dispose();
    }
  }
  // The two sinusoids differ (/128 vs /127): so do the scores.
  assert.ok(Number.isFinite(scores.official!) && Number.isFinite(scores.diffusers!));
  assert.ok(Math.abs(scores.official! - scores.diffusers!) > 1e-4, JSON.stringify(scores));
  const m = await createMetric('diffsim-dit', { ditModel: TINY_DIT, runtime: rt });
  try {
    assert.is(m.settings.timestepEmbedding, 'diffusers');
    assert.is(m.settings.layout, 'diffusers');
    assert.equal(m.settings.classLabels, [1, 1000]);
  } finally {
    await m.close();
  }
});

test('metric API: score = compare(embed A, embed B) = the DiffSimDiT class; saved embeddings; early stop changes nothing; mse; roles', async () => {
  const rt = await runtime();
  const m = await createMetric('diffsim-dit', { ditModel: TINY_DIT, runtime: rt, diffsim: { step: 750, layer: 13 } });
  try {
    assert.is(m.name, 'diffsim-dit');
    assert.is(m.lowerBetter, false);
    assert.is(m.roleDependent, true);
    assert.is(m.settings.tModel, 333);
    assert.is(m.settings.module, 'blocks.13.attn');
    const s = await m.score(A, B);
    assert.ok(Number.isFinite(s) && s > -1 && s <= 1, String(s));
    const ea = await m.embed(A, 'A');
    const eb = await m.embed(B, 'B');
    assert.is(await m.compare(ea, eb), s, 'compare = score');
    const back = await m.loadEmbedding(await m.saveEmbedding(ea));
    assert.is(await m.compare(back, eb), s, 'a saved embedding scores the same');
    await rejects(() => m.compare(ea, ea), /both embeddings have role A/, 'same role');
    for (const e of [ea, eb, back]) e.dispose();
    assert.is(m.withPrompt('another prompt'), m, 'the prompt does not enter');
    const models = await loadDit(rt, TINY_DIT);
    try {
      const [ia, ib] = [await loadImage(A), await loadImage(B)];
      const direct = new DiffSimDiT(rt, models, { step: 750, layer: 13 });
      assert.is(await direct.score(ia, ib), s, 'the metric = the class');
      const full = new DiffSimDiT(rt, models, { step: 750, layer: 13 }, {}, { earlyStop: false });
      assert.is(await full.score(ia, ib), s, 'the full pass gives the same score');
      const other = new DiffSimDiT(rt, models, { step: 750, layer: 13 }, { classLabel: 7 });
      assert.not.equal(await other.score(ia, ib), s, 'the class label enters');
      const intended = new DiffSimDiT(rt, models, { step: 750, layer: 13 }, { timesteps: 'intended' });
      assert.is(intended.settings.tModel, 750);
      assert.is(intended.settings.noiseSchedule, 'dit-linear');
      assert.not.equal(await intended.score(ia, ib), s, 'intended timesteps give another score');
    } finally {
      models.dit.dispose();
      models.vae.store.dispose();
    }
  } finally {
    await m.close();
  }
  const mse = await createMetric('diffsim-dit', { ditModel: TINY_DIT, runtime: rt, diffsim: { similarity: 'mse' } });
  try {
    assert.is(mse.lowerBetter, true);
    assert.ok((await mse.score(A, B)) >= 0);
  } finally {
    await mse.close();
  }
});

test('bad input: step ≤ 500, stepMode timestep, a layer past the blocks, the null class, unknown settings, a folder that is not a DiT, a DiT without vae/', async () => {
  const rt = await runtime();
  const open = (o: Parameters<typeof createMetric>[1]) => createMetric('diffsim-dit', { ditModel: TINY_DIT, runtime: rt, ...o });
  await rejects(() => open({ diffsim: { step: 500 } }), /step 500 is outside 501–999 with the official DiT timesteps/, 'diffsim: { step: 500 }');
  await rejects(() => open({ preset: 'nights' }), /step 500/, 'preset: "nights"');
  await rejects(() => open({ diffsim: { step: 400, stepMode: 'timestep' } }), /stepMode 'timestep' does not apply/, 'diffsim: { step: 400, stepMode: "timestep" }');
  await rejects(() => open({ diffsim: { layer: 28 } }), /layer 28: the DiT has blocks 0–27/, 'diffsim: { layer: 28 }');
  await rejects(() => open({ dit: { classLabel: 1000 } }), /classLabel 1000 outside 0–999/, 'dit: { classLabel: 1000 }');
  await rejects(() => open({ dit: { timesteps: 'late' as never } }), /timesteps must be one of 'official', 'intended'/, 'dit: { timesteps: "late" as never }');
  await rejects(() => open({ dit: { cfg: true } as never }), /unknown setting "cfg"/, 'dit: { cfg: true } as never');
  await rejects(() => open({ diffsim: { imageSize: 120 } }), /imageSize 120 gives a 15×15 latent, not a multiple of the DiT patch size 2/, 'diffsim: { imageSize: 120 }');
  await rejects(() => open({ ditModel: join(REPO_ROOT, 'weights', 'tiny', 'sd15') }), /not a DiT model/, 'ditModel: join(REPO_ROOT, "weights", "tiny", "sd15")');
  const noVae = join(TMP, 'no-vae');
  mkdirSync(noVae, { recursive: true });
  cpSync(join(FIX, 'DiT-XL-2-tiny.safetensors'), join(noVae, 'DiT-XL-2-tiny.safetensors'));
  await rejects(() => open({ ditModel: noVae }), /no-vae\/vae: no VAE: DiT needs the sd-vae-ft-mse AutoencoderKL/, 'ditModel: noVae');
  const notDit = join(TMP, 'not-dit');
  mkdirSync(join(notDit, 'vae'), { recursive: true });
  cpSync(join(FIXTURES, 'dinov2-tiny', 'dinov2.safetensors'), join(notDit, 'model.safetensors'));
  await rejects(() => open({ ditModel: notDit }), /model\.safetensors: not a DiT checkpoint in the official layout/, 'ditModel: notDit');
});


function cli(...args: string[]) {
  return runCli(args, { timeout: 300_000, env: { HF_HUB_OFFLINE: '1' } });
}

test('CLI: score and pick with --metric diffsim-dit --dit-model weights/tiny/dit; --step 500 refused; options that do not apply', async () => {
  const DIT = ['--metric', 'diffsim-dit', '--dit-model', TINY_DIT];
  const r = cli('score', A, B, ...DIT);
  assert.is(r.code, 0, r.stderr);
  const rt = await runtime();
  const m = await createMetric('diffsim-dit', { ditModel: TINY_DIT, runtime: rt });
  try {
    assert.is(Number(r.stdout.trim()), await m.score(A, B), 'the CLI prints the library score');
  } finally {
    await m.close();
  }
  const bad = cli('score', A, B, ...DIT, '--step', '500');
  assert.is(bad.code, 2);
  assert.match(bad.stderr, /--step 500 is outside 501–999 .*--dit-timesteps intended/);
  const intended = cli('score', A, B, ...DIT, '--step', '500', '--dit-timesteps', 'intended');
  assert.is(intended.code, 0, intended.stderr);
  const cls = cli('score', A, B, ...DIT, '--dit-class', '1000');
  assert.is(cls.code, 2);
  assert.match(cls.stderr, /--dit-class 1000/);
  const prompt = cli('score', A, B, ...DIT, '--prompt', 'x');
  assert.match(prompt.stderr, /--prompt does not apply to --metric diffsim-dit/);
  const ts = cli('score', A, B, '--dit-timesteps', 'intended');
  assert.match(ts.stderr, /--dit-timesteps does not apply to --metric diffsim/);
  const pick = cli('pick', A, A, B, ...DIT, '--json');
  assert.is(pick.code, 0, pick.stderr);
  assert.is((JSON.parse(pick.stdout.trim().split('\n').at(-1)!) as { pick: number }).pick, 1, 'the anchor itself is picked');
});

test('CLI eval: diffsim-dit follows the official scripts (the benchmark\'s step; ipref with mse reads lower as more similar, as for any metric with "diffsim" in its name)', () => {
  const SREF = join(TMP, 'sref');
  const IPREF = join(TMP, 'ipref');
  const ORIG = join(TMP, 'ipa-bench');
  let seed = 1;
  const write = (path: string) => {
    mkdirSync(join(path, '..'), { recursive: true });
    writeFileSync(path, png(seed++, 32));
  };
  for (const g of ['001', '002', '003']) for (const f of ['01', '02', '03']) write(join(SREF, g, `${f}.png`));
  for (const cls of ['cat']) {
    for (const w of ['1.0', '0.8', '0.6', '0.4', '0.35', '0.3', '0.2']) write(join(IPREF, cls, `${w}.png`));
    write(join(ORIG, `${cls}.JPG`));
  }
  const DIT = ['--metric', 'diffsim-dit', '--dit-model', TINY_DIT];
  const r = cli('eval', 'sref', SREF, '--trials', '3', ...DIT, '--json', '--out', join(TMP, 'sref.jsonl'));
  assert.is(r.code, 0, r.stderr);
  const summary = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as { total: number; settings: Record<string, unknown> };
  assert.is(summary.total, 3);
  assert.is(summary.settings.step, 900, 'sref: the official step 900');
  assert.is(summary.settings.tModel, 111);
  const ip = cli('eval', 'ipref', IPREF, '--originals', ORIG, ...DIT, '--similarity', 'mse', '--json', '--out', join(TMP, 'ipref.jsonl'));
  assert.is(ip.code, 0, ip.stderr);
  assert.match(ip.stderr, /cand1 counts as more similar when s1 < s2/);
});

test.run();
