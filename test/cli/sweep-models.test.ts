// `diffsim sweep` with DiffSim on SDXL (the official list-valued targets as the layer axis) and
// on DiT (the DiT blocks): on a synthetic IPref class with the tiny models, every cell scores each
// item exactly as a separate eval run with that cell's settings, from one pass per (step, image,
// role) that records every requested layer and stops after the deepest.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createMetrics, type Metric } from '../../src/diffsim/metric.js';
import { listItems } from '../../src/eval/protocols.js';
import { sweepSource } from '../../src/eval/sweep.js';
import { REPO_ROOT, rejects, runCli, runtime } from '../support/helpers.js';
import { sweepEqualsEval, units, writeImage } from '../support/sweep.js';

const TINY = join(REPO_ROOT, 'weights', 'tiny');
const XL = join(TINY, 'sdxl');
const DIT = join(TINY, 'dit');
const TMP = mkdtempSync(join(tmpdir(), 'diffsim-sweep-models-'));
const SIZE = 32;

// IPref: one class, its five fixed comparisons (one anchor, seven candidates).
const IPREF = join(TMP, 'ipref');
const ORIG = join(TMP, 'ipa-bench');
let seed = 1;
for (const w of ['1.0', '0.8', '0.6', '0.4', '0.35', '0.3', '0.2']) writeImage(join(IPREF, 'cat', `${w}.png`), seed++);
writeImage(join(ORIG, 'cat.JPG'), seed++);

async function xl(settings: Record<string, unknown> = {}): Promise<Metric> {
  const [m] = await createMetrics(['diffsim-xl'], { xlModel: XL, runtime: await runtime(), diffsim: { preset: 'ipref', layerMode: 'as-given', ...settings } });
  return m!;
}
async function dit(settings: Record<string, unknown> = {}): Promise<Metric> {
  const [m] = await createMetrics(['diffsim-dit'], { ditModel: DIT, runtime: await runtime(), diffsim: { preset: 'ipref', ...settings } });
  return m!;
}

test('diffsim-xl: --layers expands to every [attention, transformer block] of each sub-block; targets as given; bad ones named', async () => {
  const m = await xl();
  try {
    // The tiny SDXL: down_blocks[1:] = down_blocks.1 (2 attentions × 2 transformer blocks) and
    // down_blocks.2 (2 × 3); mid (1 × 3); up_blocks[:-1] = up_blocks.0 (3 × 3), up_blocks.1 (3 × 2).
    const cellsOf = (grid: Parameters<typeof sweepSource>[1]) => sweepSource(m, { steps: [600], sizes: [SIZE], ...grid }).groups[0]!.cells;
    const down = cellsOf({ blocks: ['down'], layers: 'all' });
    assert.is(down.length, 4 + 6);
    assert.equal(down.slice(0, 4).map((c) => c.target), [[0, 0, 0], [0, 0, 1], [0, 1, 0], [0, 1, 1]], 'in the order the U-Net runs them');
    assert.equal(down[0]!.module, 'down_blocks.1.attentions.0.transformer_blocks.0.attn1');
    assert.equal(down.at(-1)!.module, 'down_blocks.2.attentions.1.transformer_blocks.2.attn1');
    assert.equal(cellsOf({ blocks: ['mid'] }).map((c) => c.target), [[0, 0], [0, 1], [0, 2]]);
    assert.is(cellsOf({ blocks: ['up'], layers: [1] }).length, 3 * 2);
    assert.is(cellsOf({}).length, 9 + 6, 'default: every target of up');
    assert.equal(cellsOf({ blocks: ['up'], targets: [[1, 2, 1], [0]] }).map((c) => [c.key, c.module]), [
      ['size 32 · step 600 · up [0, 2, 2]', 'up_blocks.0.attentions.2.transformer_blocks.2.attn1'],
      ['size 32 · step 600 · up [1, 2, 1]', 'up_blocks.1.attentions.2.transformer_blocks.1.attn1'],
    ], 'a short target takes the last attention and transformer block, as eval');
    await rejects(async () => sweepSource(m, { blocks: ['up'], layers: [2] }), /block "up" has no layer 2: up_blocks\[:-1\] of this SDXL U-Net has layers 0–1/, 'layer');
    await rejects(async () => sweepSource(m, { blocks: ['up'], targets: [[0, 3, 0]] }), /up_blocks\.0 has no attention 3 \(0–2\)/, 'target');
  } finally {
    await m.close();
  }
});

test('diffsim-xl: 2 steps × 3 targets in two sub-blocks = separate eval runs item by item; passes = steps × images × roles', async () => {
  const m = await xl();
  try {
    const items = await listItems('ipref', IPREF, { originals: ORIG });
    const targets = [[0, 1, 2], [1, 0, 0], [1, 2, 1]];
    const steps = [300, 700];
    const r = await sweepEqualsEval({
      benchmark: 'ipref', dir: IPREF, originals: ORIG, items, of: items.length, metric: m,
      grid: { blocks: ['up'], targets, steps, sizes: [SIZE] },
      cellMetric: (c) => xl({ block: 'up', target: c.target!, step: c.step!, imageSize: SIZE }),
    });
    assert.is(r.sweep.cells.length, 2 * 3);
    assert.equal(r.sweep.cells.map((c) => c.module).slice(0, 3), ['up_blocks.0.attentions.1.transformer_blocks.2.attn1', 'up_blocks.1.attentions.0.transformer_blocks.0.attn1', 'up_blocks.1.attentions.2.transformer_blocks.1.attn1']);
    const perStep = units(items, IPREF, { originals: ORIG });
    assert.is(perStep, 8);
    assert.is(r.sweep.passes, steps.length * 1 * perStep, 'passes = steps × sizes × distinct images × roles');
    assert.is(r.evalPasses, r.sweep.cells.length * perStep, 'eval: one pass per cell, image and role');
    console.error(`sweep diffsim-xl ipref (lavapipe): ${r.sweep.passes} U-Net passes in ${r.seconds.toFixed(1)} s for ${r.sweep.cells.length} cells`);
  } finally {
    await m.close();
  }
});

test('diffsim-dit: 2 steps × 3 DiT blocks = separate eval runs item by item; no prompts, passes = steps × images × roles; --blocks refused', async () => {
  const m = await dit();
  try {
    const items = await listItems('ipref', IPREF, { originals: ORIG });
    const steps = [600, 750];
    const r = await sweepEqualsEval({
      benchmark: 'ipref', dir: IPREF, originals: ORIG, items, of: items.length, metric: m,
      grid: { layers: [13, 2, 27], steps, sizes: [SIZE] },
      cellMetric: (c) => dit({ layer: c.layer, step: c.step!, imageSize: SIZE }),
    });
    assert.equal(r.sweep.cells.slice(0, 3).map((c) => [c.cell, c.module]), [
      ['size 32 · step 600 · layer 2', 'blocks.2.attn'],
      ['size 32 · step 600 · layer 13', 'blocks.13.attn'],
      ['size 32 · step 600 · layer 27', 'blocks.27.attn'],
    ]);
    assert.is(r.sweep.passes, steps.length * units(items, IPREF, { originals: ORIG, prompts: false }));
    assert.is(sweepSource(m, { steps: [600] }).groups[0]!.cells.length, 28, 'layers all: every DiT block');
    await rejects(async () => sweepSource(m, { blocks: ['up'] }), /--blocks does not apply to diffsim-dit/, 'blocks');
    await rejects(async () => sweepSource(m, { layers: [28] }), /layer 28: the DiT has blocks 0–27/, 'layer');
    console.error(`sweep diffsim-dit ipref (lavapipe): ${r.sweep.passes} DiT passes in ${r.seconds.toFixed(1)} s for ${r.sweep.cells.length} cells`);
  } finally {
    await m.close();
  }
});

function cli(...args: string[]) {
  return runCli(args, { timeout: 300_000, env: { HF_HUB_OFFLINE: '1' } });
}
function lastJson(r: { code: number | null; stdout: string; stderr: string }, label: string): Record<string, unknown> {
  assert.is(r.code, 0, `${label}: exit code (${r.stderr})`);
  return JSON.parse(r.stdout.trim().split('\n').at(-1)!) as Record<string, unknown>;
}
type CellJson = { cell: string; layer: number; target?: number[]; module: string; accuracy: number; correct: number; interval: number[] };

test('CLI: --metric diffsim-dit sweeps DiT blocks (a cell = eval with --layer), --blocks refused; diffsim-xl --targets', () => {
  const ipref = ['ipref', IPREF, '--originals', ORIG];
  const d = lastJson(cli('sweep', ...ipref, '--metric', 'diffsim-dit', '--dit-model', DIT, '--layers', '27,2', '--steps', '600', '--sizes', '64', '--json'), 'dit sweep');
  const cells = d.cells as CellJson[];
  assert.equal(cells.map((c) => [c.cell, c.module]), [['size 64 · step 600 · layer 2', 'blocks.2.attn'], ['size 64 · step 600 · layer 27', 'blocks.27.attn']]);
  assert.is(d.passes, 8);
  const e = lastJson(cli('eval', ...ipref, '--metric', 'diffsim-dit', '--dit-model', DIT, '--layer', '27', '--step', '600', '--size', '64', '--json'), 'dit eval');
  assert.equal([cells[1]!.accuracy, cells[1]!.correct, cells[1]!.interval], [e.accuracy, e.correct, e.interval]);
  const bad = cli('sweep', ...ipref, '--metric', 'diffsim-dit', '--dit-model', DIT, '--blocks', 'up', '--steps', '600');
  assert.is(bad.code, 2, bad.stderr);
  assert.match(bad.stderr, /--blocks does not apply to diffsim-dit \(its layers are the DiT blocks; give --layers\)/);
  const x = lastJson(cli('sweep', ...ipref, '--metric', 'diffsim-xl', '--model', XL, '--blocks', 'up', '--targets', '1.0.1,0.2', '--steps', '600', '--sizes', '64', '--json'), 'xl sweep');
  assert.equal((x.cells as CellJson[]).map((c) => [c.cell, c.target]), [['size 64 · step 600 · up [0, 2, 2]', [0, 2, 2]], ['size 64 · step 600 · up [1, 0, 1]', [1, 0, 1]]]);
  assert.is(x.passes, 8);
});

test.run();
