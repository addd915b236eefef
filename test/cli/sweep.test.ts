// `diffsim sweep` on synthetic benchmarks with the tiny models: every cell of a grid of steps ×
// layers of two blocks scores each item exactly as a separate eval run with that cell's settings,
// from one U-Net pass per (step, image, role) instead of one per cell; prompts per item; the ViT
// layers; spilling to disk beyond --max-live; resume, shards and merge; the plot; the retrieval grid.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync, existsSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createMetrics, type Metric } from '../../src/diffsim/metric.js';
import { itemPaths, listItems, type BenchmarkName, type EvalItem } from '../../src/eval/protocols.js';
import { runEval } from '../../src/eval/runner.js';
import { readRows } from '../../src/eval/results.js';
import { runSweep, sweepSource, type SweepGrid, type SweepRow } from '../../src/eval/sweep.js';
import { renderRetrievalGrid, renderSweepPlot } from '../../src/apps/plot.js';
import type { DiffSimSettingsInput } from '../../src/diffsim/settings.js';
import { REPO_ROOT, runCli, runtime } from '../support/helpers.js';
import { writeImage } from '../support/images.js';
import { PNG } from 'pngjs';

const TINY = join(REPO_ROOT, 'weights', 'tiny');
const SD = join(TINY, 'sd15');
const TMP = mkdtempSync(join(tmpdir(), 'diffsim-sweep-'));


let seed = 1;
// IPref: one class, its five fixed comparisons (one anchor, seven candidates).
const IPREF = join(TMP, 'ipref');
const ORIG = join(TMP, 'ipa-bench');
for (const w of ['1.0', '0.8', '0.6', '0.4', '0.35', '0.3', '0.2']) writeImage(join(IPREF, 'cat', `${w}.png`), seed++);
writeImage(join(ORIG, 'cat.JPG'), seed++);
// Sref: three style folders of three images.
const SREF = join(TMP, 'sref');
for (const g of ['001', '002', '003']) for (const f of ['01', '02', '03']) writeImage(join(SREF, g, `${f}.png`), seed++);
// NIGHTS: three val rows sharing their reference, two prompts (the reference is embedded once per prompt).
const NIGHTS = join(TMP, 'nights');
for (const f of ['r0', 'a0', 'b0', 'r1', 'a1', 'b1', 'a2', 'b2']) writeImage(join(NIGHTS, 'img', `${f}.png`), seed++);
writeFileSync(
  join(NIGHTS, 'data.csv'),
  'split,ref_path,left_path,right_path,left_vote,prompt\nval,img/r0.png,img/a0.png,img/b0.png,1,Cat\nval,img/r0.png,img/a2.png,img/b2.png,0,Dog\ntrain,img/r1.png,img/a1.png,img/b1.png,1,Cat\nval,img/r0.png,img/a1.png,img/b1.png,0,Cat\n',
);

let base: Metric[] | null = null;
async function models(): Promise<Metric[]> {
  base ??= await createMetrics(['diffsim', 'clip-aas'], { model: SD, clipModel: join(TINY, 'clip'), runtime: await runtime(), diffsim: { layerMode: 'as-given' } });
  return base;
}

/** A metric as `diffsim eval` builds it for one cell (its own settings, on the shared runtime). */
async function cellMetric(name: 'diffsim' | 'clip-aas', settings: DiffSimSettingsInput, layer?: number): Promise<Metric> {
  const [m] = await createMetrics([name], { model: SD, clipModel: join(TINY, 'clip'), runtime: await runtime(), diffsim: { layerMode: 'as-given', ...settings }, ...(layer !== undefined ? { layer } : {}) });
  return m!;
}

/** Distinct (role, image, prompt) of the items. */
function units(items: readonly EvalItem[], dir: string, originals?: string, byPromptAndRole = true): number {
  const s = new Set<string>();
  for (const i of items) {
    const p = itemPaths(i, dir, originals !== undefined ? { originals } : {});
    const [pr, a, b] = byPromptAndRole ? [i.prompt, 'A', 'B'] : ['', '-', '-'];
    s.add(`${a} ${pr} ${p.anchor}`).add(`${b} ${pr} ${p.cand1}`).add(`${b} ${pr} ${p.cand2}`);
  }
  return s.size;
}

const rule = { similarity: 'cosine' as const, metricIsDiffsim: true };
/** The library tests' image side: 32 px (a 4×4 latent) keeps the passes cheap. */
const SIZE = 32;

async function sweepOf(benchmark: BenchmarkName, dir: string, items: EvalItem[], metric: Metric, grid: SweepGrid, extra: { originals?: string; out?: string; maxLive?: number; spillDir?: string } = {}) {
  return runSweep({ benchmark, items, of: items.length, dir, source: sweepSource(metric, grid), rule: { ...rule, metricIsDiffsim: metric.name.startsWith('diff') }, sweep: 's', ...extra });
}

function byCell(rows: readonly SweepRow[]): Map<string, SweepRow[]> {
  const m = new Map<string, SweepRow[]>();
  for (const r of rows) m.set(r.cell, [...(m.get(r.cell) ?? []), r].sort((a, b) => a.item - b.item));
  return m;
}

test('ipref: 3 steps × every layer of mid and up = separate eval runs item by item, from steps × images × roles passes', async () => {
  const [ds] = await models();
  const items = await listItems('ipref', IPREF, { originals: ORIG });
  assert.is(items.length, 5);
  const steps = [300, 600, 900];
  const sweepStarted = performance.now();
  const sweep = await sweepOf('ipref', IPREF, items, ds!, { blocks: ['mid', 'up'], steps, sizes: [SIZE] }, { originals: ORIG });
  const sweepSeconds = (performance.now() - sweepStarted) / 1000;
  const perStep = units(items, IPREF, ORIG);
  assert.is(perStep, 8, 'one anchor (role A), seven candidates (role B)');
  assert.is(sweep.cells.length, 3 * 4, '3 steps × (mid 0, up 0, up 1, up 2)');
  assert.is(sweep.passes, steps.length * 1 * perStep, 'passes = steps × sizes × distinct images × roles');
  const cells = byCell(sweep.rows);
  let evalPasses = 0;
  let evalSeconds = 0;
  for (const c of sweep.cells) {
    const m = await cellMetric('diffsim', { preset: 'ipref', block: c.block as 'mid' | 'up', layer: c.layer, step: c.step!, imageSize: SIZE });
    try {
      const e = await runEval({ benchmark: 'ipref', items, of: items.length, dir: IPREF, originals: ORIG, metrics: [m], rule, run: 'r', metricName: 'diffsim' });
      evalPasses += e.embedded;
      evalSeconds += e.seconds;
      const rows = cells.get(c.cell)!;
      assert.equal(
        rows.map((r) => [r.item, r.s1, r.s2, r.predicted, r.correct]),
        e.rows.map((r) => [r.item, r.s1, r.s2, r.predicted, r.correct]),
        `${c.cell}: the same scores and decisions as eval, item by item`,
      );
      assert.equal(c.summary, e.summary, `${c.cell}: the same accuracy and interval`);
    } finally {
      await m.close();
    }
  }
  assert.is(evalPasses, sweep.cells.length * perStep, 'eval: one pass per cell, image and role');
  console.error(`sweep ipref (lavapipe): ${sweep.passes} U-Net passes in ${sweepSeconds.toFixed(1)} s; the ${sweep.cells.length} eval runs: ${evalPasses} passes in ${evalSeconds.toFixed(1)} s`);
});

test('nights: the prompt of each item (embeddings per prompt), and a memory cap spilling to disk changes no score', async () => {
  const [ds] = await models();
  const items = await listItems('nights', NIGHTS);
  assert.equal(items.map((i) => i.prompt), ['An image of a cat', 'An image of a dog', 'An image of a cat']);
  const grid: SweepGrid = { blocks: ['up'], layers: [0, 2], steps: [500], sizes: [SIZE] };
  const whole = await sweepOf('nights', NIGHTS, items, ds!, grid);
  assert.is(whole.passes, units(items, NIGHTS), 'r0 is embedded once per prompt');
  assert.is(units(items, NIGHTS), 8);
  for (const c of whole.cells) {
    const m = await cellMetric('diffsim', { preset: 'nights', block: 'up', layer: c.layer, step: 500, imageSize: SIZE });
    try {
      const e = await runEval({ benchmark: 'nights', items, of: items.length, dir: NIGHTS, metrics: [m], rule, run: 'r', metricName: 'diffsim' });
      assert.equal(byCell(whole.rows).get(c.cell)!.map((r) => [r.s1, r.s2, r.correct]), e.rows.map((r) => [r.s1, r.s2, r.correct]), c.cell);
    } finally {
      await m.close();
    }
  }
  const spill = join(TMP, 'spill');
  mkdirSync(spill);
  const capped = await sweepOf('nights', NIGHTS, items, ds!, grid, { maxLive: 1, spillDir: spill });
  assert.ok(capped.memory.spilled > 0, 'bundles went to disk');
  assert.ok(capped.memory.peakSpillBytes > 0);
  assert.is(capped.passes, whole.passes, 'read back, not embedded again');
  assert.equal(capped.rows.map((r) => [r.cell, r.item, r.s1, r.s2]), whole.rows.map((r) => [r.cell, r.item, r.s1, r.s2]));
  assert.equal(readdirSync(spill), [], 'the spill folder is removed');
  assert.ok(capped.memory.peakLive <= 4, `the current item's three bundles and one on its way (got ${capped.memory.peakLive})`);
  assert.ok(whole.memory.peakLive > capped.memory.peakLive);
});

test('sref, clip-aas: one encoder pass per image gives every layer, each as eval with --layer', async () => {
  const [, clip] = await models();
  const items = await listItems('sref', SREF, { trials: 3 });
  const sweep = await sweepOf('sref', SREF, items, clip!, { layers: 'all' });
  assert.ok(sweep.cells.length >= 2, 'the tiny CLIP has layers to sweep');
  assert.is(sweep.passes, units(items, SREF, undefined, false), 'one pass per image (no roles, no prompts)');
  const cells = byCell(sweep.rows);
  for (const c of sweep.cells) {
    const m = await cellMetric('clip-aas', {}, c.layer);
    try {
      const e = await runEval({ benchmark: 'sref', items, of: items.length, dir: SREF, metrics: [m], rule: { ...rule, metricIsDiffsim: false }, run: 'r', metricName: 'clip-aas' });
      assert.equal(cells.get(c.cell)!.map((r) => [r.s1, r.s2, r.correct, r.twice]), e.rows.map((r) => [r.s1, r.s2, r.correct, r.twice]), c.cell);
    } finally {
      await m.close();
    }
  }
});

function cli(...args: string[]) {
  return runCli(args, { timeout: 400_000, env: { HF_HUB_OFFLINE: '1' } });
}
function lastJson(r: { code: number | null; stdout: string; stderr: string }, label: string): Record<string, unknown> {
  assert.is(r.code, 0, `${label}: exit code (${r.stderr})`);
  return JSON.parse(r.stdout.trim().split('\n').at(-1)!) as Record<string, unknown>;
}
type CellJson = { cell: string; accuracy: number; correct: number; total: number; interval: number[] };
const cellsOf = (j: Record<string, unknown>) => (j.cells as CellJson[]).map((c) => [c.cell, c.accuracy, c.correct, c.total, c.interval]);

test('CLI: a cell equals `diffsim eval` with its options; resume and shards give the same rows; --merge; --plot writes a PNG', () => {
  const args = ['sweep', 'sref', SREF, '--trials', '3', '--model', SD, '--blocks', 'up', '--layers', '0,1', '--steps', '900', '--json'];
  const wholeFile = join(TMP, 'whole.jsonl');
  const plotFile = join(TMP, 'sweep.png');
  const whole = lastJson(cli(...args, '--out', wholeFile, '--plot', plotFile), 'whole');
  assert.is((whole.cells as unknown[]).length, 2);
  assert.is(readRows(wholeFile).length, 3 * 2, 'a row per item and cell');
  const decoded = PNG.sync.read(readFileSync(plotFile));
  assert.ok(decoded.width > 200 && decoded.height > 100, `${decoded.width}×${decoded.height}`);
  // eval with the cell's options: the same rows.
  const evalFile = join(TMP, 'eval.jsonl');
  const ev = lastJson(cli('eval', 'sref', SREF, '--trials', '3', '--model', SD, '--block', 'up', '--layer', '1', '--step', '900', '--json', '--out', evalFile), 'eval');
  const cell = (whole.cells as CellJson[]).find((c) => c.cell === 'size 64 · step 900 · up 1')!;
  assert.equal([cell.accuracy, cell.correct, cell.interval], [ev.accuracy, ev.correct, ev.interval]);
  assert.equal(
    (readRows(wholeFile) as SweepRow[]).filter((r) => r.cell === cell.cell).map((r) => [r.item, r.s1, r.s2, r.correct]),
    readRows(evalFile).map((r) => [r.item, r.s1, r.s2, r.correct]),
  );
  // Resume: a file cut mid-line completes to the same rows.
  const cut = join(TMP, 'cut.jsonl');
  const lines = readFileSync(wholeFile, 'utf8').split('\n');
  writeFileSync(cut, `${lines.slice(0, 3).join('\n')}\n${lines[3]!.slice(0, 40)}`);
  const resumed = lastJson(cli(...args, '--out', cut), 'resumed');
  assert.is(resumed.resumed, 3);
  assert.equal(cellsOf(resumed), cellsOf(whole));
  const key = (r: SweepRow) => `${r.cell} ${r.item}`;
  const sorted = (f: string) => (readRows(f) as SweepRow[]).sort((a, b) => (key(a) < key(b) ? -1 : 1)).map((r) => [key(r), r.s1, r.s2]);
  assert.equal(sorted(cut), sorted(wholeFile));
  // Shards merge to the whole.
  const s1 = join(TMP, 's1.jsonl');
  const s2 = join(TMP, 's2.jsonl');
  lastJson(cli(...args, '--shard', '1/2', '--out', s1), 'shard 1');
  lastJson(cli(...args, '--shard', '2/2', '--out', s2), 'shard 2');
  const merged = lastJson(cli('sweep', '--merge', s1, s2, '--json', '--plot', join(TMP, 'merged.png')), 'merge');
  assert.equal(cellsOf(merged), cellsOf(whole));
  assert.ok(existsSync(join(TMP, 'merged.png')));
  // The grid's axes are refused as single options.
  const bad = cli('sweep', 'sref', SREF, '--layer', '1');
  assert.is(bad.code, 2);
  assert.match(bad.stderr, /--layer is an axis of the grid here; give --layers/);
});

test('pictures: the sweep plot and the retrieval grid decode, with the best cell framed in red', () => {
  const cells = [300, 600, 900].flatMap((step, i) => [0, 1].map((layer) => ({ step, block: 'up', layer, accuracy: 50 + 10 * i + layer })));
  const plot = PNG.sync.read(Buffer.from(renderSweepPlot(cells, { title: 'nights · diffsim · tiny' })));
  let red = 0;
  for (let i = 0; i < plot.data.length; i += 4) if (plot.data[i] === 255 && plot.data[i + 1] === 0 && plot.data[i + 2] === 0) red++;
  assert.ok(red > 0, 'the best cell is framed');
  const img = { width: 24, height: 24, data: new Uint8Array(24 * 24 * 3).fill(128) };
  const grid = PNG.sync.read(Buffer.from(renderRetrievalGrid(img, [{ label: 'diffsim', results: [{ image: img, score: 0.5 }, { image: img, score: 0.25 }] }], { thumb: 32 })));
  assert.ok(grid.width > 3 * 32 && grid.height > 32);
  assert.throws(() => renderSweepPlot([], { title: 'x' }), /no cells/);
});

test('CLI: retrieve --grid with several metrics writes the picture; each ranking as alone', () => {
  const q = join(SREF, '001', '01.png');
  const out = join(TMP, 'grid.png');
  const r = cli('retrieve', q, SREF, '-k', '3', '--metric', 'clip,dino', '--clip-model', join(TINY, 'clip'), '--dino-model', join(TINY, 'dinov2'), '--grid', out, '--no-cache');
  assert.is(r.code, 0, r.stderr);
  const lines = r.stdout.trim().split('\n');
  assert.is(lines.length, 6, 'three per metric');
  assert.equal(lines.map((l) => l.split('\t')[0]), ['clip', 'clip', 'clip', 'dino', 'dino', 'dino']);
  const alone = cli('retrieve', q, SREF, '-k', '3', '--metric', 'dino', '--dino-model', join(TINY, 'dinov2'), '--no-cache');
  assert.equal(alone.stdout.trim().split('\n'), lines.slice(3).map((l) => l.split('\t').slice(1).join('\t')));
  const png = PNG.sync.read(readFileSync(out));
  assert.ok(png.width > 4 * 128 && png.height > 2 * 128, `${png.width}×${png.height}`);
});

test.run();
