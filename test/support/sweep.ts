// Shared by the sweep suites: synthetic images, and the check that every cell of a sweep scores
// each item exactly as a separate eval run with that cell's settings.
import * as assert from 'uvu/assert';
import type { Metric } from '../../src/diffsim/metric.js';
import { itemPaths, type BenchmarkName, type EvalItem } from '../../src/eval/protocols.js';
import { runEval } from '../../src/eval/runner.js';
import { runSweep, sweepSource, type SweepCellResult, type SweepGrid, type SweepRow, type SweepRunResult } from '../../src/eval/sweep.js';
export { png, writeImage } from './images.js';



/** Distinct (role, image, prompt) of the items: one group's passes (role and prompt only where
 *  the metric's embedding depends on them). */
export function units(items: readonly EvalItem[], dir: string, o: { originals?: string; roles?: boolean; prompts?: boolean } = {}): number {
  const s = new Set<string>();
  for (const i of items) {
    const p = itemPaths(i, dir, o.originals !== undefined ? { originals: o.originals } : {});
    const pr = o.prompts === false ? '' : i.prompt;
    const [a, b] = o.roles === false ? ['-', '-'] : ['A', 'B'];
    s.add(`${a} ${pr} ${p.anchor}`).add(`${b} ${pr} ${p.cand1}`).add(`${b} ${pr} ${p.cand2}`);
  }
  return s.size;
}

export function byCell(rows: readonly SweepRow[]): Map<string, SweepRow[]> {
  const m = new Map<string, SweepRow[]>();
  for (const r of rows) m.set(r.cell, [...(m.get(r.cell) ?? []), r].sort((a, b) => a.item - b.item));
  return m;
}

export interface SweepVsEval {
  benchmark: BenchmarkName;
  dir: string;
  originals?: string;
  items: EvalItem[];
  /** The list the items were taken from (`of`). */
  of: number;
  metric: Metric;
  grid: SweepGrid;
  /** The metric `diffsim eval` builds for a cell (closed after its run). */
  cellMetric: (cell: SweepCellResult) => Promise<Metric>;
}

/** Runs the sweep, then one eval run per cell: the same rows item by item (scores, decisions,
 *  "2x" decisions) and summaries. Returns the sweep and the eval runs' pass count. */
export async function sweepEqualsEval(o: SweepVsEval): Promise<{ sweep: SweepRunResult; evalPasses: number; seconds: number }> {
  const rule = { similarity: 'cosine' as const, metricIsDiffsim: o.metric.name.startsWith('diff') };
  const started = performance.now();
  const sweep = await runSweep({ benchmark: o.benchmark, items: o.items, of: o.of, dir: o.dir, ...(o.originals !== undefined ? { originals: o.originals } : {}), source: sweepSource(o.metric, o.grid), rule, sweep: 's' });
  const seconds = (performance.now() - started) / 1000;
  assert.is(sweep.rows.length, sweep.cells.length * o.items.length, 'a row per cell and item');
  const cells = byCell(sweep.rows);
  let evalPasses = 0;
  for (const c of sweep.cells) {
    const m = await o.cellMetric(c);
    try {
      const e = await runEval({ benchmark: o.benchmark, items: o.items, of: o.of, dir: o.dir, ...(o.originals !== undefined ? { originals: o.originals } : {}), metrics: [m], rule, run: 'r', metricName: o.metric.name });
      evalPasses += e.embedded;
      const pick = (r: { item: number; s1: number; s2: number; predicted?: unknown; correct?: unknown; twice?: unknown }) => [r.item, r.s1, r.s2, r.predicted, r.correct, r.twice];
      assert.equal(cells.get(c.cell)!.map(pick), e.rows.map(pick), `${c.cell}: the same scores and decisions as eval, item by item`);
      assert.equal(c.summary, e.summary, `${c.cell}: the same accuracy and interval`);
    } finally {
      await m.close();
    }
  }
  return { sweep, evalPasses, seconds };
}
