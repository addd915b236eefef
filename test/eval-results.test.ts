// Benchmark result files: rows appended and resumed (a cut-off last line repaired), rows of another
// run refused, shards (explicit, Slurm arrays, Kubernetes Indexed Jobs) that cover every item once,
// merged summaries, and the Wilson score interval.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { appendFileSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { mergeFiles, parseShard, readRows, resumeRows, RowWriter, runId, shardRange, summarize, wilson, type ResultRow } from '../src/eval/results.js';

const TMP = mkdtempSync(join(tmpdir(), 'diffsim-eval-results-'));

function row(item: number, correct: boolean, o: Partial<ResultRow> = {}): ResultRow {
  return { benchmark: 'tid2013', metric: 'diffsim', item, anchor: 'a.bmp', cand1: 'b.bmp', cand2: 'c.bmp', prompt: 'p', truth: 1, s1: correct ? 0.9 : 0.1, s2: 0.5, predicted: correct ? 1 : 2, correct, credit: correct ? 1 : 0, tie: false, run: 'r1', of: 10, ...o };
}

test('Wilson score interval: textbook values', () => {
  const [lo, hi] = wilson(50, 100);
  assert.ok(Math.abs(lo - 40.383) < 1e-3 && Math.abs(hi - 59.617) < 1e-3, `50/100 → ${lo}, ${hi}`);
  const [lo2, hi2] = wilson(10, 10);
  assert.ok(Math.abs(lo2 - 72.247) < 1e-3 && hi2 === 100, `10/10 → ${lo2}, ${hi2}`);
  assert.equal(wilson(0, 0), [0, 100]);
});

test('shards: i/n, Slurm arrays (min, step, count or max), Kubernetes Indexed Jobs; slices cover every item once', () => {
  assert.equal(parseShard('2/8'), { index: 2, count: 8 });
  for (const bad of ['0/3', '4/3', '1-3', 'x', '1/0']) assert.throws(() => parseShard(bad), /--shard/, bad);
  assert.equal(parseShard('auto', { SLURM_ARRAY_TASK_ID: '0', SLURM_ARRAY_TASK_COUNT: '4' }), { index: 1, count: 4 });
  // --array=10-16:2 → ids 10, 12, 14, 16
  assert.equal(parseShard('auto', { SLURM_ARRAY_TASK_ID: '14', SLURM_ARRAY_TASK_MIN: '10', SLURM_ARRAY_TASK_STEP: '2', SLURM_ARRAY_TASK_COUNT: '4' }), { index: 3, count: 4 });
  assert.equal(parseShard('auto', { SLURM_ARRAY_TASK_ID: '16', SLURM_ARRAY_TASK_MIN: '10', SLURM_ARRAY_TASK_STEP: '2', SLURM_ARRAY_TASK_MAX: '16' }), { index: 4, count: 4 });
  assert.throws(() => parseShard('auto', { SLURM_ARRAY_TASK_ID: '13', SLURM_ARRAY_TASK_MIN: '10', SLURM_ARRAY_TASK_STEP: '2', SLURM_ARRAY_TASK_COUNT: '4' }), /not min 10 \+ k·step 2/);
  assert.equal(parseShard('auto', { JOB_COMPLETION_INDEX: '2' }, 5), { index: 3, count: 5 });
  assert.throws(() => parseShard('auto', { JOB_COMPLETION_INDEX: '2' }), /needs --shards n/);
  assert.throws(() => parseShard('auto', { JOB_COMPLETION_INDEX: '5' }, 5), /not below --shards 5/);
  assert.throws(() => parseShard('auto', {}), /no SLURM_ARRAY_TASK_ID .* or JOB_COMPLETION_INDEX/);
  for (const [total, n] of [[600, 7], [5, 8], [1, 1], [0, 3], [2000, 16]] as const) {
    const seen: number[] = [];
    let sizes: number[] = [];
    for (let i = 1; i <= n; i++) {
      const [a, b] = shardRange(total, { index: i, count: n });
      sizes.push(b - a);
      for (let k = a; k < b; k++) seen.push(k);
    }
    assert.equal(seen, Array.from({ length: total }, (_, k) => k), `${total} items in ${n} shards: each once, in order`);
    sizes = sizes.sort((x, y) => x - y);
    assert.ok(sizes[sizes.length - 1]! - sizes[0]! <= 1, 'sizes differ by at most one');
  }
});

test('rows: appended one line each; a cut-off last line is reported, and repaired on resume', () => {
  const file = join(TMP, 'rows.jsonl');
  const w = new RowWriter(file);
  w.write(row(0, true));
  w.write(row(1, false));
  w.close();
  assert.is(readFileSync(file, 'utf8').split('\n').length, 3, 'two newline-terminated lines');
  appendFileSync(file, JSON.stringify(row(2, true)).slice(0, 40));
  assert.throws(() => readRows(file), /the last line is incomplete/);
  const done = resumeRows(file, 'r1', new Set([0, 1, 2, 3]));
  assert.equal([...done.keys()], [0, 1]);
  assert.ok(readFileSync(file, 'utf8').endsWith('\n'), 'the partial line is cut off');
  assert.is(readRows(file).length, 2);
  assert.throws(() => resumeRows(file, 'other', new Set([0, 1])), /written by another run/);
  assert.throws(() => resumeRows(file, 'r1', new Set([1])), /item 0, which is not in this run's selection/);
  writeFileSync(join(TMP, 'bad.jsonl'), '{"item": 1}\n');
  assert.throws(() => readRows(join(TMP, 'bad.jsonl')), /bad\.jsonl:1: not a diffsim eval row \(missing anchor/);
  assert.throws(() => readRows(join(TMP, 'nope.jsonl')), /nope\.jsonl: cannot read \(no such file\)/);
  assert.equal(resumeRows(join(TMP, 'fresh.jsonl'), 'r1', new Set([0])).size, 0, 'no file: nothing to resume');
});

test('summary: accuracy over unique items, ties, missing items, the 2x accuracy; merge of shard files', () => {
  const rows = [row(0, true), row(1, false), row(2, true, { tie: true, credit: 0.5, correct: false, s1: 0.5 }), row(3, true)];
  const s = summarize(rows);
  assert.is(s.total, 4);
  assert.is(s.correct, 2.5);
  assert.is(s.accuracy, 62.5);
  assert.is(s.ties, 1);
  assert.is(s.missing, 6);
  assert.equal(s.interval, wilson(2.5, 4));
  assert.is(s.twiceAccuracy, undefined);
  assert.is(summarize(rows.map((r, i) => ({ ...r, twice: i === 0 }))).twiceAccuracy, 25);
  assert.is(summarize([...rows, row(0, true)]).total, 4, 'the same item twice counts once');
  assert.throws(() => summarize([row(0, true), row(0, false)]), /item 0 appears twice with different scores/);
  assert.throws(() => summarize([row(0, true), row(1, true, { run: 'r2' })]), /rows of different runs/);
  const a = join(TMP, 'shard1.jsonl');
  const b = join(TMP, 'shard2.jsonl');
  writeFileSync(a, rows.slice(0, 2).map((r) => JSON.stringify(r) + '\n').join(''));
  writeFileSync(b, rows.slice(2).map((r) => JSON.stringify(r) + '\n').join(''));
  assert.equal(mergeFiles([a, b]).summary, s);
  assert.equal(mergeFiles([b, a]).rows.map((r) => r.item), [0, 1, 2, 3]);
});

test('run ids: stable under key order, different for other settings', () => {
  assert.is(runId({ a: 1, b: [1, { c: 2, d: 3 }] }), runId({ b: [1, { d: 3, c: 2 }], a: 1 }));
  assert.is.not(runId({ a: 1 }), runId({ a: 2 }));
  assert.match(runId({}), /^[0-9a-f]{16}$/);
});

test.run();
