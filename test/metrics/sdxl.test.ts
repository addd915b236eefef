// DiffSim on SDXL (diffsim-xl): parity with the sdxl-tiny reference (every stored value, f32 and
// f16 weights), the metric API on the shipped tiny SDXL pipeline, list-valued and single targets,
// the official quirks and their options, bad inputs, the CLI spelling and `eval` on a synthetic
// IPref set (the official scripts treat diffsim_xl as a DiffSim metric: 'diffsim' in --metric).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PNG } from 'pngjs';
import { runParity } from '../../src/parity/parity.js';
import { createMetric, createMetrics, type Metric } from '../../src/diffsim/metric.js';
import { DiffSim } from '../../src/diffsim/core.js';
import { loadDiffSimModels, type DiffSimModels } from '../../src/diffsim/load.js';
import { listItems, itemPaths } from '../../src/eval/protocols.js';
import { runEval } from '../../src/eval/runner.js';
import { parseCommand } from '../../src/cli/metric-options.js';
import { FIXTURES, REPO_ROOT, rejects, rng, runCli, runtime } from '../support/helpers.js';

const XL = join(REPO_ROOT, 'weights', 'tiny', 'sdxl');
const SD15 = join(REPO_ROOT, 'weights', 'tiny', 'sd15');
const A = join(FIXTURES, 'sdxl-tiny', 'image_A.png');
const B = join(FIXTURES, 'sdxl-tiny', 'image_B.png');

for (const weights of ['f32', 'f16'] as const) {
  test(`parity: sdxl-tiny, every stored value within the fixture tolerances (${weights} weights)`, async () => {
    const rt = await runtime();
    const { rows, skipped } = await runParity(rt, FIXTURES, ['sdxl-tiny'], undefined, { weights });
    assert.equal(skipped, []);
    const failed = rows.filter((r) => !r.pass);
    assert.equal(failed.map((r) => `${r.name}: ${r.err} > ${r.tol} ${r.note ?? ''}`), [], 'no failed or skipped row');
    assert.not.ok(rows.some((r) => r.kind === 'skipped'));
    // The quirks are checked by value: the latents × init_noise_sigma, zeros for the empty
    // negative prompt, time ids at 1024 for a 128 px image, '!' as tokenizer_2's added token.
    for (const name of ['step200.latents_x_init_noise_sigma_A', 'cfg.prompt_embeds', 'cfg.add_text_embeds', 'cfg.add_time_ids', 'text.input_ids_2', 'step200.unet_output_A', 'step600.up_blocks.1.0.1.q_B', 'step200.up_blocks.0.2.2.attn_a_on_b']) {
      assert.ok(rows.some((r) => r.name === name && r.pass), name);
    }
    assert.ok(rows.length > 250, `${rows.length} rows`);
  });
}

let models: DiffSimModels | null = null;
async function xlModels(): Promise<DiffSimModels> {
  models ??= await loadDiffSimModels(await runtime(), XL, { pipeline: 'sdxl' });
  return models;
}

test('targets: the official list (down_blocks[1:], up_blocks[:-1], mid), a single value = last attention and transformer block', async () => {
  const rt = await runtime();
  const m = await xlModels();
  const at = (s: ConstructorParameters<typeof DiffSim>[2]) => {
    const d = new DiffSim(rt, m, { imageSize: 64, ...s });
    return [d.settings.module, d.settings.target];
  };
  assert.equal(at({ block: 'down', target: [1, 1, 2] }), ['down_blocks.2.attentions.1.transformer_blocks.2.attn1', [1, 1, 2]]);
  assert.equal(at({ block: 'up', target: [1, 0, 1] }), ['up_blocks.1.attentions.0.transformer_blocks.1.attn1', [1, 0, 1]]);
  assert.equal(at({ block: 'mid', target: [0, 2] }), ['mid_block.attentions.0.transformer_blocks.2.attn1', [0, 2]]);
  // The defaults: up, layer 0 → up_blocks.0, its last attention and transformer block.
  assert.equal(at({}), ['up_blocks.0.attentions.2.transformer_blocks.2.attn1', [0, 2, 2]]);
  assert.equal(at({ block: 'down', layer: 0 }), ['down_blocks.1.attentions.1.transformer_blocks.1.attn1', [0, 1, 1]]);
  assert.equal(at({ block: 'down', target: [1, 0] }), ['down_blocks.2.attentions.0.transformer_blocks.2.attn1', [1, 0, 2]]);
  await rejects(() => at({ block: 'down', target: [2, 0, 0] }), /block "down" has no layer 2: down_blocks\[1:\] of this U-Net has 0–1/, 'a block past the list');
  await rejects(() => at({ block: 'up', target: [0, 3, 0] }), /up_blocks\.0 has no attention 3 \(0–2\)/, 'an attention past the block');
  await rejects(() => at({ block: 'up', target: [1, 0, 2] }), /transformer_blocks? has no transformer block 2|has no transformer block 2 \(0–1\)/, 'a transformer block past the attention');
  await rejects(() => at({ block: 'mid', target: [0, 0, 0] }), /block "mid" takes a target of 1–2 indices/, 'mid takes two');
  await rejects(() => at({ target: [0, -1] as number[] }), /target must be a list of up to 3 integers/, 'negative index');
  await rejects(() => at({ variant: 'C' }), /DiffSim-C \(variant C\) on SDXL is not supported/, 'variant C');
});

test('settings: Euler t = 1000 − step (step 0 = t 1000 with σ(999)), σ, init_noise_sigma, time ids; the options change the pass', async () => {
  const rt = await runtime();
  const m = await xlModels();
  const d = new DiffSim(rt, m, { step: 600, imageSize: 64 });
  assert.is(d.settings.t, 400);
  assert.ok(Math.abs(d.xl!.sigma - 1.1643916) < 1e-6, `σ(400) ${d.xl!.sigma}`);
  assert.ok(Math.abs(d.xl!.latentScale - 14.6488) < 1e-3, `init_noise_sigma ${d.xl!.latentScale}`);
  assert.equal(d.xl!.timeIds, [1024, 1024, 0, 0, 1024, 1024], 'sample_size 128 × 8 whatever the image size');
  const zero = new DiffSim(rt, m, { step: 0, imageSize: 64 });
  assert.is(zero.settings.t, 1000);
  assert.ok(Math.abs(zero.xl!.sigma - 14.6146) < 1e-3, `σ clamps to σ(999): ${zero.xl!.sigma}`);
  assert.is(new DiffSim(rt, m, { step: 250, stepMode: 'timestep', imageSize: 64 }).settings.t, 250);
  await rejects(() => new DiffSim(rt, m, { step: 1000 }), /step 1000 is not an index into the 1000-entry Euler timestep list/, 'step past the list');
  await rejects(() => new DiffSim(rt, m, { step: 0, stepMode: 'timestep' }), /timestep 0 is not in the Euler schedule/, 'timestep 0');
  const fixed = new DiffSim(rt, m, { imageSize: 64, xlLatentScale: 'fixed', xlTimeIds: 'image-size' });
  assert.is(fixed.xl!.latentScale, 1);
  assert.equal(fixed.xl!.timeIds, [64, 64, 0, 0, 64, 64]);
  assert.is.not(fixed.key, d.key, 'the options are part of the embedding key');
  // The image size defaults to the official script's 512.
  assert.is(new DiffSim(rt, m).settings.imageSize, 512);
  for (const x of [d, zero, fixed]) x.dispose();
});

test('metric API: createMetric diffsim-xl on the tiny pipeline scores, embeds, compares; options move the score; wrong pipelines refused', async () => {
  const rt = await runtime();
  const base = { model: XL, runtime: rt };
  const metric = await createMetric('diffsim-xl', { ...base, diffsim: { imageSize: 64, block: 'down', target: [0, 0, 0] } });
  try {
    assert.is(metric.name, 'diffsim-xl');
    assert.is(metric.settings.module, 'down_blocks.1.attentions.0.transformer_blocks.0.attn1');
    assert.equal(metric.settings.timeIds, [1024, 1024, 0, 0, 1024, 1024]);
    const s = await metric.score(A, B);
    assert.ok(Number.isFinite(s) && s > 0 && s <= 1, `cosine ${s}`);
    const [ea, eb] = [await metric.embed(A, 'A'), await metric.embed(B, 'B')];
    assert.is(await metric.compare(ea, eb), s, 'score = compare(embed A, embed B)');
    const saved = await metric.loadEmbedding(await metric.saveEmbedding(eb));
    assert.is(await metric.compare(ea, saved), s, 'a saved embedding scores the same');
    for (const e of [ea, eb, saved]) e.dispose();
    const other = await createMetric('diffsim-xl', { ...base, diffsim: { imageSize: 64, block: 'down', target: [0, 0, 0], xlLatentScale: 'fixed' } });
    try {
      const t = await other.score(A, B);
      assert.ok(Number.isFinite(t) && t !== s, `the fixed latents give another score (${t} vs ${s})`);
      const ea2 = await other.embed(A, 'A');
      await rejects(() => metric.compare(ea2, ea2), /made by diffsim-xl with other settings/, 'embeddings of other settings');
      ea2.dispose();
    } finally {
      await other.close();
    }
  } finally {
    await metric.close();
  }
  await rejects(() => createMetric('diffsim-xl', { model: SD15, runtime: rt }), /diffsim-xl needs an SDXL pipeline folder/, 'SD1.5 folder for diffsim-xl');
  await rejects(() => createMetric('diffsim', { model: XL, runtime: rt }), /an SDXL pipeline \(it has text_encoder_2\/\): use the diffsim-xl metric/, 'SDXL folder for diffsim');
  await rejects(() => createMetric('diffsim', { model: SD15, runtime: rt, diffsim: { target: [0, 0, 0] } }), /target apply to SDXL \(diffsim-xl\) only/, 'a target on SD1.5');
});

test('U-Net: a text_time U-Net without its added conditioning is refused, naming what it needs', async () => {
  const rt = await runtime();
  const m = await xlModels();
  const lat = rt.zeros([1, 4, 8, 8]);
  const text = rt.zeros([1, 77, 48]);
  await rejects(() => m.unet.forward(lat, 500, text), /addition_embed_type "text_time" needs the added conditioning \(pooled text embeds \[B, 16\] and 6 time ids per sample\)/, 'no added conditioning');
  await rejects(() => m.unet.forward(lat, 500, text, { added: { textEmbeds: rt.zeros([1, 16]), timeIds: [1, 2, 3] } }), /need 6 or 6 finite time ids, got 3/, 'short time ids');
  lat.dispose();
  text.dispose();
});

test('CLI: --metric diffsim-xl --layer 0,1,2 is the list-valued target; --xl-* options; they apply to diffsim-xl only', async () => {
  const p = parseCommand('score', ['a.png', 'b.png', '--metric', 'diffsim-xl', '--block', 'down', '--layer', '0,1,2', '--xl-latent-scale', 'fixed', '--xl-time-ids', 'image-size']);
  assert.equal(p.metric.diffsim, { block: 'down', target: [0, 1, 2], xlLatentScale: 'fixed', xlTimeIds: 'image-size' });
  assert.is(p.metric.metric, 'diffsim-xl');
  assert.throws(() => parseCommand('score', ['a', 'b', '--metric', 'diffsim-xl', '--layer', '0,1,2,3']), /at most 3 indices/);
  assert.throws(() => parseCommand('score', ['a', 'b', '--metric', 'diffsim', '--xl-latent-scale', 'fixed']), /--xl-latent-scale does not apply to --metric diffsim/);
  assert.throws(() => parseCommand('score', ['a', 'b', '--metric', 'diffsim-xl', '--xl-time-ids', '1024']), /unknown --xl-time-ids "1024"/);
});

test('CLI: score and pick with --metric diffsim-xl on the tiny pipeline (JSON reports the target, σ, time ids)', () => {
  const xl = ['--metric', 'diffsim-xl', '--model', XL, '--size', '64'];
  const r = runCli(['score', A, B, '--json', ...xl, '--block', 'up', '--layer', '1,0,1'], { timeout: 300_000, env: { HF_HUB_OFFLINE: '1' } });
  assert.is(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as Record<string, unknown>;
  assert.is(j.metric, 'diffsim-xl');
  assert.is(j.module, 'up_blocks.1.attentions.0.transformer_blocks.1.attn1');
  assert.equal(j.target, [1, 0, 1]);
  assert.equal(j.timeIds, [1024, 1024, 0, 0, 1024, 1024]);
  assert.is(j.imageSize, 64);
  assert.ok(Number.isFinite(j.score as number));
  const p = runCli(['pick', A, A, B, ...xl, '--noise', 'shared'], { timeout: 300_000, env: { HF_HUB_OFFLINE: '1' } });
  assert.is(p.code, 0, p.stderr);
  assert.is(p.stdout.trim().split('\n')[0], '1', 'with shared noise the reference itself is the closer one');
  const bad = runCli(['score', A, B, '--metric', 'diffsim-xl', '--model', SD15], { timeout: 300_000, env: { HF_HUB_OFFLINE: '1' } });
  assert.is.not(bad.code, 0);
  assert.match(bad.stderr, /diffsim-xl needs an SDXL pipeline folder/);
});

test('eval: IPref with diffsim-xl is a DiffSim metric (mse: s1 < s2 picks cand1, as ipref_main.py); rows are its pair scores', async () => {
  const tmp = mkdtempSync(join(tmpdir(), 'diffsim-xl-eval-'));
  const png = (seed: number) => {
    const r = rng(seed);
    const img = new PNG({ width: 24, height: 24 });
    const [a, b, c] = [r() * 255, r() * 255, r() * 255];
    for (let i = 0; i < 24 * 24; i++) img.data.set([(a + (i % 24) * 7) % 256, (b + Math.floor(i / 24) * 5) % 256, (c + r() * 40) % 256, 255], i * 4);
    return PNG.sync.write(img);
  };
  const dir = join(tmp, 'ipref');
  const orig = join(tmp, 'orig');
  let seed = 1;
  for (const cls of ['cat']) {
    mkdirSync(join(dir, cls), { recursive: true });
    for (const w of ['1.0', '0.8', '0.6', '0.4', '0.35', '0.3', '0.2']) writeFileSync(join(dir, cls, `${w}.png`), png(seed++));
    mkdirSync(orig, { recursive: true });
    writeFileSync(join(orig, `${cls}.JPG`), png(seed++));
  }
  const metrics: Metric[] = await createMetrics(['diffsim-xl'], { model: XL, runtime: await runtime(), diffsim: { imageSize: 64, step: 750, similarity: 'mse' } });
  try {
    const m = metrics[0]!;
    assert.ok(m.lowerBetter);
    const items = await listItems('ipref', dir, { originals: orig });
    const r = await runEval({ benchmark: 'ipref', items, of: items.length, dir, originals: orig, metrics: [m], rule: { similarity: 'mse', metricIsDiffsim: true }, run: 'r', metricName: 'diffsim-xl' });
    assert.is(r.rows.length, items.length);
    for (const row of r.rows) {
      const p = itemPaths(items[row.item]!, dir, { originals: orig });
      assert.is(row.s1, await m.score(p.anchor, p.cand1), 's1 = score(anchor, cand1)');
      assert.is(row.predicted, row.s1 < row.s2 ? 1 : 2, 'a DiffSim metric with mse: the lower score wins');
    }
  } finally {
    for (const m of metrics) await m.close();
  }
});

test.after(async () => {
  if (models) {
    const { disposeDiffSimModels } = await import('../../src/diffsim/load.js');
    disposeDiffSimModels(models);
  }
});

test.run();
