// Benchmark result files: rows appended and resumed (a cut-off last line repaired), rows of another
// run refused, shards (explicit, Slurm arrays, Kubernetes Indexed Jobs) that cover every item once,
// merged summaries, and the Wilson score interval.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { appendFileSync, existsSync, lstatSync, mkdtempSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { lockResults, mergeFiles, parseShard, readRows, resumeRows, RowWriter, runId, shardRange, summarize, wilson, type ResultRow } from '../../src/eval/results.js';
import { REPO_ROOT } from '../support/helpers.js';

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

/** Runs `code` (an ES module body with `results` the results module) in a child node, for what
 *  could hang this process: killed after `ms`. */
function child(code: string, ms = 10_000) {
  const mod = join(REPO_ROOT, 'build', 'src', 'eval', 'results.js');
  return spawnSync(process.execPath, ['--input-type=module', '-e', `const results = await import(${JSON.stringify(mod)});\n${code}`], { encoding: 'utf8', timeout: ms });
}

test('resume reads only regular files: a FIFO, /dev/stdout and a device start fresh without reading; a symlink is read and repaired through', () => {
  const fifo = join(TMP, 'rows.fifo');
  execFileSync('mkfifo', [fifo]);
  // Reading a FIFO with no writer would block for ever, /dev/zero would fill the memory.
  for (const path of [fifo, '/dev/stdout', '/dev/zero']) {
    const r = child(`const m = results.resumeRows(${JSON.stringify(path)}, 'r1', new Set([0])); console.log('rows ' + m.size);`);
    assert.is(r.signal, null, `${path}: not killed (${r.stderr})`);
    assert.is(r.status, 0, `${path}: ${r.stderr}`);
    assert.match(r.stdout, /^rows 0\n$/, path);
  }
  assert.ok(statSync(fifo).isFIFO(), 'the FIFO is still one');
  // A symlink to a results file: read, its cut-off last line repaired in the target, the link kept.
  const target = join(TMP, 'target.jsonl');
  writeFileSync(target, `${JSON.stringify(row(0, true))}\n${JSON.stringify(row(1, true)).slice(0, 30)}`);
  const link = join(TMP, 'link.jsonl');
  symlinkSync(target, link);
  assert.equal([...resumeRows(link, 'r1', new Set([0, 1])).keys()], [0]);
  assert.ok(lstatSync(link).isSymbolicLink(), 'still a link');
  assert.is(readFileSync(target, 'utf8'), `${JSON.stringify(row(0, true))}\n`, 'the target repaired');
});

test('resume reads line by line with a bound: a line over MAX_ROW_BYTES is refused, not held', () => {
  const big = join(TMP, 'big.jsonl');
  writeFileSync(big, `${JSON.stringify(row(0, true))}\n${'x'.repeat(3 << 20)}`);
  assert.throws(() => resumeRows(big, 'r1', new Set([0])), /big\.jsonl:2: a line over 1048576 bytes: not a diffsim results file/);
  assert.throws(() => readRows(big), /big\.jsonl:2: a line over/);
});

test('rows to a FIFO and a character device are written directly (no fdatasync on them); a symlink is appended through', () => {
  const fifo = join(TMP, 'out.fifo');
  execFileSync('mkfifo', [fifo]);
  const got = join(TMP, 'from-fifo.jsonl');
  const reader = spawn('sh', ['-c', `cat "$0" > "$1"`, fifo, got]);
  const done = new Promise<void>((resolve) => reader.on('exit', () => resolve()));
  const w = new RowWriter(fifo);
  w.write(row(0, true));
  w.write(row(1, false));
  w.close();
  return done.then(() => {
    assert.equal(readRows(got).map((r) => r.item), [0, 1], 'the reader got both rows');
    assert.ok(statSync(fifo).isFIFO(), 'still a FIFO');
    const target = join(TMP, 'appended.jsonl');
    writeFileSync(target, `${JSON.stringify(row(0, true))}\n`);
    const link = join(TMP, 'appended-link.jsonl');
    symlinkSync(target, link);
    const l = new RowWriter(link);
    l.write(row(1, true));
    l.close();
    assert.ok(lstatSync(link).isSymbolicLink());
    assert.equal(readRows(target).map((r) => r.item), [0, 1]);
    // A character device of our own (root only: mknod), never turned into a regular file.
    const dev = join(TMP, 'null-device');
    if (spawnSync('mknod', [dev, 'c', '1', '3']).status === 0) {
      const d = new RowWriter(dev);
      d.write(row(0, true));
      d.close();
      assert.ok(statSync(dev).isCharacterDevice(), 'still a character device');
      assert.equal(resumeRows(dev, 'r1', new Set([0])).size, 0, 'nothing resumed from a device');
    }
  });
});

test('resume applies merge\'s rule: an item twice with different scores is refused, twice the same is one row', () => {
  const dup = join(TMP, 'dup.jsonl');
  writeFileSync(dup, [row(0, true), row(1, true), row(1, false)].map((r) => `${JSON.stringify(r)}\n`).join(''));
  assert.throws(() => resumeRows(dup, 'r1', new Set([0, 1])), /dup\.jsonl: item 1 appears twice with different scores/);
  assert.throws(() => mergeFiles([dup]), /item 1 appears twice with different scores/);
  const same = join(TMP, 'same.jsonl');
  writeFileSync(same, [row(0, true), row(1, true), row(1, true)].map((r) => `${JSON.stringify(r)}\n`).join(''));
  assert.is(resumeRows(same, 'r1', new Set([0, 1])).size, 2);
});

test('resume checks each row\'s origin: rows made from other data or models are refused', () => {
  const file = join(TMP, 'origin.jsonl');
  writeFileSync(file, [row(0, true, { origin: 'o1' }), row(1, true, { origin: 'o2' })].map((r) => `${JSON.stringify(r)}\n`).join(''));
  assert.throws(() => resumeRows(file, 'r1', new Set([0, 1]), 'o1'), /origin\.jsonl:2: item 1 was made from other data or models/);
  assert.throws(() => resumeRows(file, 'r1', new Set([0, 1]), 'o3'), /origin\.jsonl:1: item 0 was made from other data or models/);
  writeFileSync(file, `${JSON.stringify(row(0, true, { origin: 'o1' }))}\n`);
  assert.is(resumeRows(file, 'r1', new Set([0, 1]), 'o1').size, 1);
});

test('the lock of a results file: a second taker is refused, naming the process that holds it; released, it can be taken again', async () => {
  const file = join(TMP, 'locked.jsonl');
  const release = await lockResults(file);
  assert.ok(existsSync(`${file}.lock`));
  let err: unknown;
  try {
    await lockResults(file);
  } catch (e) {
    err = e;
  }
  assert.match(String((err as Error | undefined)?.message), new RegExp(`locked\\.jsonl: in use by process ${process.pid} on \\S+ since \\S+, which is writing it`));
  // Another process too.
  const r = child(`try { await results.lockResults(${JSON.stringify(file)}); console.log('taken'); } catch (e) { console.log(e.message); }`);
  assert.match(r.stdout, new RegExp(`in use by process ${process.pid} `));
  await release();
  assert.not.ok(existsSync(`${file}.lock`), 'released');
  await (await lockResults(file))();
  // A lock through a symlink is the target's; a FIFO is not locked.
  const fifo = join(TMP, 'lock.fifo');
  execFileSync('mkfifo', [fifo]);
  await (await lockResults(fifo))();
  assert.not.ok(existsSync(`${fifo}.lock`));
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
