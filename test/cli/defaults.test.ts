// Slow suite: about 21 s of CPU on lavapipe (44 s wall on a shared 2-core machine).
// One set of DiffSim defaults: the library (createMetric, DiffSim.load), the command line and the
// settings module agree. With no options, the three ways of scoring the tiny fixtures give one
// number; a preset changes the step exactly as giving that step does; explicit options override a
// preset; and no file outside src/diffsim/settings.ts restates a default value.
//
// Bit-identical, not within a tolerance: the three run the same kernels on the same adapter
// (lavapipe here, also for the command's own process) in the same order, the embeddings are
// deterministic (seeded noise), and the command prints the score with JSON.stringify, which
// round-trips a double exactly. Any difference would mean different settings, which is the bug this
// suite guards against (createMetric and the page at step 500 while `diffsim score` ran step 600).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { createMetric } from '../../src/diffsim/metric.js';
import { DiffSim } from '../../src/diffsim/core.js';
import { DIFFSIM_DEFAULTS, DIFFSIM_PRESETS, DIFFSIM_PRESET_NAMES, mergeSettings, presetSettings } from '../../src/diffsim/settings.js';
import { diffsimSettings, parseCommand, resolvedDiffSim } from '../../src/cli/metric-options.js';
import { loadImage } from '../../src/io/image.js';
import { FIXTURES, REPO_ROOT, offlineHub, rejects, runCli, runtime } from '../support/helpers.js';

const SD = join(REPO_ROOT, 'weights', 'tiny', 'sd15');
const A = join(FIXTURES, 'diffsim-tiny', 'image_A.png');
const B = join(FIXTURES, 'diffsim-tiny', 'image_B.png');
const HF_HOME = mkdtempSync(join(tmpdir(), 'diffsim-defaults-hf-'));

function cliJson(...args: string[]): Record<string, unknown> {
  const r = runCli(['score', A, B, '--model', SD, '--json', ...args], { timeout: 300_000, env: offlineHub(HF_HOME) });
  assert.is(r.code, 0, `score ${args.join(' ')}: exit code (${r.stderr})`);
  const lines = r.stdout.trim().split('\n');
  return JSON.parse(lines[lines.length - 1]!) as Record<string, unknown>;
}

test('the defaults: the official README example (step 600, t = 401, up, layer 0, cosine, seed 2334, "High quality image", four draws)', () => {
  const d = DIFFSIM_DEFAULTS;
  assert.equal([d.step, d.stepMode, d.block, d.layer, d.similarity, d.seed, d.prompt, d.noise, d.variant, d.cfg, d.cfgHalves, d.vae], [600, 'official-index', 'up', 0, 'cosine', 2334, 'High quality image', 'official-4-draws', 'S', true, 'both', 'sample']);
  // The command line without options resolves to the library's defaults (the layer honoured, as
  // its usage says; layer 0 hooks the same module either way).
  assert.equal(resolvedDiffSim(parseCommand('score', []).metric), { ...DIFFSIM_DEFAULTS, layerMode: 'as-given' });
});

test('presets: the official per-benchmark steps; explicit settings override them; an unknown one is named with the known ones', async () => {
  assert.equal(DIFFSIM_PRESET_NAMES, ['nights', 'tid2013', 'cute', 'dreambench', 'ipref', 'sref', 'instantstyle']);
  assert.equal(presetSettings('nights'), { step: 500 });
  assert.is(mergeSettings({ preset: 'nights' }).step, 500);
  assert.equal(mergeSettings({ preset: 'nights' }), { ...DIFFSIM_DEFAULTS, step: 500 });
  assert.is(mergeSettings({ preset: 'nights', step: 700 }).step, 700);
  for (const name of DIFFSIM_PRESET_NAMES) assert.equal(mergeSettings({ preset: name }), { ...DIFFSIM_DEFAULTS, ...DIFFSIM_PRESETS[name] }, name);
  assert.throws(() => mergeSettings({ preset: 'night' as never }), /DiffSim: unknown preset "night" \(known: nights, tid2013, cute, dreambench, ipref, sref, instantstyle\)/);
  await rejects(async () => createMetric('diffsim', { model: SD, runtime: await runtime(), preset: 'bogus' as never }), /unknown preset "bogus" \(known: nights, /, 'createMetric');
  // The command line: --preset, the library's spelling of every value, "official" kept as an alias.
  const p = parseCommand('score', ['--preset', 'cute', '--noise', 'official', '--cfg', 'off', '--step', '700']).metric;
  assert.equal(diffsimSettings(p), { preset: 'cute', layerMode: 'as-given', noise: 'official-4-draws', cfg: false, step: 700, stepMode: 'official-index' });
  assert.is(diffsimSettings(parseCommand('score', ['--noise', 'official-4-draws']).metric).noise, 'official-4-draws');
  assert.throws(() => parseCommand('score', ['--preset', 'bogus']), /score: unknown --preset "bogus" \(one of nights, tid2013, cute, dreambench, ipref, sref, instantstyle\)/);
  assert.throws(() => parseCommand('score', ['--preset', 'nights', '--metric', 'clip']), /score: --preset does not apply to --metric clip/);
});

test('no options: createMetric, DiffSim.load and `diffsim score` give one number, bit for bit', async () => {
  const rt = await runtime();
  const metric = await createMetric('diffsim', { model: SD, runtime: rt });
  const ds = await DiffSim.load(rt, SD);
  try {
    const fromMetric = await metric.score(A, B);
    const fromClass = await ds.score(await loadImage(A), await loadImage(B));
    const cli = cliJson();
    assert.is(fromClass, fromMetric, 'DiffSim.load = createMetric');
    assert.is(cli.score, fromMetric, '`diffsim score` = createMetric');
    for (const s of [metric.settings, ds.settings, cli]) {
      assert.is(s.step, DIFFSIM_DEFAULTS.step);
      assert.is(s.t, 401);
      assert.is(s.module, 'up_blocks.1.attentions.2.transformer_blocks.0.attn1');
      assert.is(s.seed, DIFFSIM_DEFAULTS.seed);
      assert.is(s.prompt, DIFFSIM_DEFAULTS.prompt);
      assert.is(s.noise, 'official-4-draws');
    }
    assert.is(metric.settings.preset, null);
    assert.is(cli.preset, null);
    assert.is(ds.preset, null);

    // A preset changes the step, and equals giving that step explicitly, on every path.
    const nights = await createMetric('diffsim', { model: SD, runtime: rt, preset: 'nights' });
    const step500 = await createMetric('diffsim', { model: SD, runtime: rt, diffsim: { step: 500 } });
    const overridden = await createMetric('diffsim', { model: SD, runtime: rt, preset: 'nights', diffsim: { step: DIFFSIM_DEFAULTS.step } });
    const dsNights = new DiffSim(rt, ds.models, { preset: 'nights' });
    try {
      const n = await nights.score(A, B);
      assert.is(nights.settings.step, 500);
      assert.is(nights.settings.t, 501);
      assert.is(nights.settings.preset, 'nights');
      assert.is.not(n, fromMetric, 'step 500 scores differently from step 600');
      assert.is(await step500.score(A, B), n, 'preset nights = step 500');
      assert.is(dsNights.settings.step, 500);
      assert.is(dsNights.preset, 'nights');
      assert.is(await dsNights.score(await loadImage(A), await loadImage(B)), n, 'DiffSim { preset } = createMetric { preset }');
      assert.is(await overridden.score(A, B), fromMetric, 'an explicit step overrides the preset');
      assert.is(overridden.settings.preset, 'nights');
      // The command line: --preset, and an explicit option over it.
      const cliNights = cliJson('--preset', 'nights');
      assert.is(cliNights.score, n, '`--preset nights` = the library preset');
      assert.equal([cliNights.preset, cliNights.step, cliNights.t], ['nights', 500, 501]);
      const cliStep = cliJson('--preset', 'nights', '--step', String(DIFFSIM_DEFAULTS.step));
      assert.is(cliStep.score, fromMetric, '`--preset nights --step 600` = the default');
    } finally {
      dsNights.dispose();
      for (const m of [nights, step500, overridden]) await m.close();
    }
  } finally {
    await metric.close();
    ds.dispose();
    for (const part of [ds.models.unet, ds.models.vae, ds.models.textEncoder]) part.store.dispose();
  }
});

test('an unknown preset on the command line: exit 2, one line naming the known ones', () => {
  const r = runCli(['score', A, B, '--model', SD, '--preset', 'bogus'], { timeout: 60_000, env: offlineHub(HF_HOME) });
  assert.is(r.code, 2);
  assert.match(r.stderr, /^diffsim: score: unknown --preset "bogus" \(one of nights, tid2013, cute, dreambench, ipref, sref, instantstyle\)/);
});

/** Files of the package's code (library, command line, browser entry, demo page, benchmarks). */
function sources(): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const name of readdirSync(d)) {
      const p = join(d, name);
      if (statSync(p).isDirectory()) walk(p);
      else if (/\.(ts|html|mjs)$/.test(name)) out.push(p);
    }
  };
  for (const d of ['src', 'demo', 'bench', 'scripts']) walk(join(REPO_ROOT, d));
  return out;
}

test('no file but src/diffsim/settings.ts states a default value', () => {
  const settings = join(REPO_ROOT, 'src', 'diffsim', 'settings.ts');
  // The values that only the defaults and presets have, and setting literals that would restate one
  // (a prompt formed per item, `An image of a ${…}`, is a protocol's, not a default).
  const patterns = [/\b2334\b/, /High quality image/, /\b(step|seed|ipScale|imageSize|layer)\s*:\s*\d/, /\bnoise\s*:\s*'/, /\bsimilarity\s*:\s*'(cosine|mse)'(?!\s*\|)/, /\bblock\s*:\s*'(up|down|mid)/, /\bprompt\s*:\s*(['"]|`(?![^`]*\$\{))/, /\bSCORE_DEFAULTS\b|\bBENCHMARK_DEFAULTS\b/];
  // The vision metrics' score is a cosine whatever DiffSim's similarity is: a fact, not a default.
  const allowed = [/similarity: 'cosine', \.\.\.\(global/];
  const found: string[] = [];
  for (const file of sources()) {
    if (file === settings) continue;
    readFileSync(file, 'utf8').split('\n').forEach((line, i) => {
      if (patterns.some((p) => p.test(line)) && !allowed.some((p) => p.test(line))) found.push(`${relative(REPO_ROOT, file)}:${i + 1}: ${line.trim()}`);
    });
  }
  assert.equal(found, [], `defaults restated outside settings.ts:\n${found.join('\n')}`);
});

test.after(() => rmSync(HF_HOME, { recursive: true, force: true }));

test.run();
