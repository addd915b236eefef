// Slow suite: about 138 s of CPU on lavapipe (229 s wall on a shared 2-core machine).
// `diffsim eval` on synthetic datasets with the tiny models: rows and summary, every image embedded
// once per role, a memory cap that changes no score, resume after an interruption = an
// uninterrupted run, shards that merge to the whole, --list without models, missing files named
// before any model loads, the ensemble's votes.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { execFileSync, spawn } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createMetrics, type Metric } from '../../src/diffsim/metric.js';
import { listItems, itemPaths } from '../../src/eval/protocols.js';
import { runEval } from '../../src/eval/runner.js';
import { lockResults, readRows, summarize } from '../../src/eval/results.js';
import { datasetIdentity } from '../../src/eval/identity.js';
import { REPO_ROOT, rejects, runCli, runtime } from '../support/helpers.js';
import { png, writeImage } from '../support/images.js';

const TINY = join(REPO_ROOT, 'weights', 'tiny');
const MODELS = ['--model', join(TINY, 'sd15'), '--clip-model', join(TINY, 'clip'), '--dino-model', join(TINY, 'dinov2')];
const TMP = mkdtempSync(join(tmpdir(), 'diffsim-eval-run-'));



// IPref: two classes, the five fixed comparisons each, anchors <originals>/<cls>.JPG (PNG bytes: decoders sniff).
const IPREF = join(TMP, 'ipref');
const ORIG = join(TMP, 'ipa-bench');
let seed = 1;
for (const cls of ['cat', 'dog']) {
  for (const w of ['1.0', '0.8', '0.6', '0.4', '0.35', '0.3', '0.2']) writeImage(join(IPREF, cls, `${w}.png`), seed++);
  writeImage(join(ORIG, `${cls}.JPG`), seed++);
}
// Sref: three style folders of three images.
const SREF = join(TMP, 'sref');
for (const g of ['001', '002', '003']) for (const f of ['01', '02', '03']) writeImage(join(SREF, g, `${f}.png`), seed++);

function cli(...args: string[]) {
  return runCli(args, { timeout: 300_000, env: { HF_HUB_OFFLINE: '1' } });
}

function lastJson(r: { code: number | null; stdout: string; stderr: string }, label: string): Record<string, unknown> {
  assert.is(r.code, 0, `${label}: exit code (${r.stderr})`);
  return JSON.parse(r.stdout.trim().split('\n').at(-1)!) as Record<string, unknown>;
}

let metrics: Metric[] | null = null;
async function diffsim(): Promise<Metric> {
  metrics ??= await createMetrics(['diffsim', 'clip', 'dino'], { model: join(TINY, 'sd15'), clipModel: join(TINY, 'clip'), dinoModel: join(TINY, 'dinov2'), runtime: await runtime(), diffsim: { step: 750, layerMode: 'as-given' } });
  return metrics[0]!;
}

test('library: rows follow the protocol and the rule; each image embedded once per role; a memory cap changes no score', async () => {
  const m = await diffsim();
  const items = await listItems('ipref', IPREF, { originals: ORIG });
  assert.is(items.length, 10);
  const common = { benchmark: 'ipref' as const, items, of: items.length, dir: IPREF, originals: ORIG, metrics: [m], rule: { similarity: 'cosine' as const, metricIsDiffsim: true }, run: 'r', metricName: 'diffsim' };
  const r = await runEval(common);
  assert.is(r.rows.length, 10);
  // Every (role, path) once: the anchor of a class serves its five items.
  const uses = new Set(items.flatMap((i) => {
    const p = itemPaths(i, IPREF, { originals: ORIG });
    return [`A ${p.anchor}`, `B ${p.cand1}`, `B ${p.cand2}`];
  }));
  assert.is(r.embedded, uses.size, 'one pass per image and role');
  assert.is(r.reembedded, 0);
  for (const row of r.rows) {
    const item = items[row.item]!;
    const p = itemPaths(item, IPREF, { originals: ORIG });
    assert.is(row.s1, await m.score(p.anchor, p.cand1), `item ${row.item}: s1 = score(anchor, cand1)`);
    assert.is(row.predicted, row.s1 > row.s2 ? 1 : 2, 'ipref, cosine: s1 > s2 → cand1');
    assert.is(row.correct, row.predicted === 1, 'the higher IP weight is the truth');
  }
  assert.equal(r.summary, summarize(r.rows));
  // Three embeddings on the GPU at most: the rest moved to the host and back, no score changes.
  const capped = await runEval({ ...common, maxLive: 3 });
  assert.equal(capped.rows.map((x) => [x.s1, x.s2]), r.rows.map((x) => [x.s1, x.s2]));
  assert.is(capped.embedded, uses.size, 'moved to the host, not embedded again');
  const dropped = await runEval({ ...common, maxLive: 3, hostBytes: 0 });
  assert.equal(dropped.rows.map((x) => [x.s1, x.s2]), r.rows.map((x) => [x.s1, x.s2]));
  assert.ok(dropped.reembedded > 0, 'without host room an evicted embedding is recomputed');
});

test('library: resume after an interruption (a cut-off last line) ends as the uninterrupted run', async () => {
  const m = await diffsim();
  const items = await listItems('sref', SREF, { trials: 6 });
  const common = { benchmark: 'sref' as const, items, of: items.length, dir: SREF, metrics: [m], rule: { similarity: 'cosine' as const, metricIsDiffsim: true }, run: 'r', metricName: 'diffsim' };
  const whole = await runEval({ ...common, out: join(TMP, 'whole.jsonl') });
  const file = join(TMP, 'resumed.jsonl');
  const lines = readFileSync(join(TMP, 'whole.jsonl'), 'utf8').split('\n');
  writeFileSync(file, `${lines.slice(0, 2).join('\n')}\n${lines[2]!.slice(0, 30)}`);
  const resumed = await runEval({ ...common, out: file });
  assert.is(resumed.resumed, 2);
  assert.is(resumed.computed, 4);
  assert.equal(readRows(file), readRows(join(TMP, 'whole.jsonl')), 'the same file as the uninterrupted run');
  assert.equal(resumed.summary, whole.summary);
  for (const row of whole.rows) assert.type(row.twice, 'boolean', 'sref has the 2x criterion');
  await rejects(() => runEval({ ...common, run: 'other', out: file }), /written by another run/, 'a file of another run');
});

test('library: the ensemble votes as the official scripts (a tie in one metric votes cand1; cand1 iff ≥ 2 votes)', async () => {
  await diffsim();
  const items = (await listItems('ipref', IPREF, { originals: ORIG })).slice(0, 3);
  const r = await runEval({ benchmark: 'ipref', items, of: 10, dir: IPREF, originals: ORIG, metrics: metrics!, ensemble: true, rule: { similarity: 'cosine', metricIsDiffsim: true }, run: 'e', metricName: 'ensemble' });
  for (const row of r.rows) {
    const votes = Object.values(row.votes!);
    assert.is(votes.length, 3);
    for (const [name, [s1, s2]] of Object.entries(row.scores!)) assert.is(row.votes![name], s1 < s2 ? 2 : 1, `${name} vote`);
    assert.is(row.s1, votes.filter((v) => v === 1).length);
    assert.is(row.predicted, row.s1 >= 2 ? 1 : 2);
  }
  assert.is(r.summary.missing, 7);
});

test('CLI: --list needs no model; a missing file is named before any model loads', () => {
  const list = cli('eval', 'ipref', IPREF, '--originals', ORIG, '--list', '--model', join(TMP, 'no-such-model'));
  assert.is(list.code, 0, list.stderr);
  const rows = list.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  assert.is(rows.length, 10);
  assert.equal(Object.keys(rows[0]!).sort(), ['anchor', 'anchorRoot', 'cand1', 'cand2', 'item', 'prompt', 'truth'].sort());
  rmSync(join(IPREF, 'dog', '0.35.png'));
  try {
    const r = cli('eval', 'ipref', IPREF, '--originals', ORIG, '--model', join(TMP, 'no-such-model'));
    assert.is(r.code, 1);
    assert.match(r.stderr, /dog[/\\]0\.35\.png/);
    assert.is(r.stderr.split('\n').length, 1, r.stderr);
  } finally {
    writeImage(join(IPREF, 'dog', '0.35.png'), 999);
  }
  const bad = cli('eval', 'ipref', IPREF);
  assert.is(bad.code, 2);
  assert.match(bad.stderr, /--originals DIR .* is required/);
  assert.match(cli('eval', 'imagenet', IPREF).stderr, /unknown benchmark "imagenet"/);
  assert.match(cli('eval', 'ipref', IPREF, '--originals', ORIG, '--trials', '5').stderr, /--trials applies to sref and instantstyle/);
});

test('library: the dataset\'s identity: a copy elsewhere or a touched image changes the local one (resume refuses the rows), not the portable listing', async () => {
  const m = await diffsim();
  const items = await listItems('sref', SREF, { trials: 2 });
  const copy = join(TMP, 'sref-copy');
  cpSync(SREF, copy, { recursive: true });
  const here = await datasetIdentity(items, SREF);
  const there = await datasetIdentity(items, copy);
  assert.is(there.listing, here.listing, 'the same files and sizes');
  assert.is.not(there.local, here.local, 'another folder');
  const file = join(TMP, 'origin.jsonl');
  const common = { benchmark: 'sref' as const, items, of: items.length, metrics: [m], rule: { similarity: 'cosine' as const, metricIsDiffsim: true }, run: 'r', metricName: 'diffsim', out: file };
  const first = await runEval({ ...common, dir: SREF, origin: here.local });
  assert.ok(readRows(file).every((r) => r.origin === here.local), 'each row names its origin');
  await rejects(() => runEval({ ...common, dir: copy, origin: there.local }), /origin\.jsonl:1: item 0 was made from other data or models/, 'rows made on another folder');
  const again = await runEval({ ...common, dir: SREF, origin: here.local });
  assert.is(again.resumed, first.computed, 'the same data resumes');
  // An image changed in place (a new mtime at the same size): another local identity.
  const img = join(copy, items[0]!.anchor);
  utimesSync(img, new Date(statSync(img).mtimeMs + 5000), new Date(statSync(img).mtimeMs + 5000));
  const touched = await datasetIdentity(items, copy);
  assert.is.not(touched.local, there.local);
  assert.is(touched.listing, there.listing);
  writeFileSync(img, png(999));
  assert.is.not((await datasetIdentity(items, copy)).listing, there.listing, 'other bytes of another size');
});

test('library: a results file another run holds is refused, naming the process; nothing is computed', async () => {
  const m = await diffsim();
  const items = await listItems('sref', SREF, { trials: 2 });
  const file = join(TMP, 'held.jsonl');
  const release = await lockResults(file);
  try {
    await rejects(() => runEval({ benchmark: 'sref', items, of: items.length, dir: SREF, metrics: [m], rule: { similarity: 'cosine', metricIsDiffsim: true }, run: 'r', metricName: 'diffsim', out: file }), new RegExp(`held\\.jsonl: in use by process ${process.pid} on `), 'held');
  } finally {
    await release();
  }
  assert.not.ok(existsSync(file) && readFileSync(file, 'utf8').length > 0, 'no row written');
});

const CLIP = ['--metric', 'clip', '--clip-model'];

test('CLI: --out on a FIFO and on /dev/stdout: rows written there, nothing read back (no hang); the FIFO stays one', async () => {
  const fifo = join(TMP, 'rows.fifo');
  execFileSync('mkfifo', [fifo]);
  const got = join(TMP, 'fifo-rows.jsonl');
  const reader = spawn('sh', ['-c', 'cat "$0" > "$1"', fifo, got]);
  const read = new Promise<void>((resolve) => reader.on('exit', () => resolve()));
  const args = ['eval', 'sref', SREF, '--trials', '3', ...CLIP, join(TINY, 'clip'), '--json'];
  const viaFifo = lastJson(runCli([...args, '--out', fifo], { timeout: 120_000 }), 'fifo');
  await read;
  assert.is(viaFifo.total, 3);
  assert.is(readRows(got).length, 3, 'the rows reached the reader');
  assert.ok(statSync(fifo).isFIFO(), 'still a FIFO');
  const out = runCli([...args, '--out', '/dev/stdout'], { timeout: 120_000 });
  assert.is(out.signal, null, 'not killed: /dev/stdout is not read');
  assert.is(out.code, 0, out.stderr);
  const lines = out.stdout.trim().split('\n');
  assert.is(lines.length, 4, 'three rows and the summary on stdout');
  assert.equal(lines.slice(0, 3).map((l) => (JSON.parse(l) as { item: number }).item), [0, 1, 2]);
  assert.is((JSON.parse(lines[3]!) as { resumed: number }).resumed, 0);
});

test('CLI: resume refuses rows made on another dataset folder or with model files changed in place; a held --out names its holder', async () => {
  const clip = join(TMP, 'clip-copy');
  cpSync(join(TINY, 'clip'), clip, { recursive: true });
  const copy = join(TMP, 'sref-cli-copy');
  cpSync(SREF, copy, { recursive: true });
  const file = join(TMP, 'cli-origin.jsonl');
  const args = (dir: string) => ['eval', 'sref', dir, '--trials', '3', ...CLIP, clip, '--json', '--out', file];
  assert.is(lastJson(runCli(args(SREF), { timeout: 120_000 }), 'first').computed, 3);
  assert.is(lastJson(runCli(args(SREF), { timeout: 120_000 }), 'resumed').resumed, 3);
  const other = runCli(args(copy), { timeout: 120_000 });
  assert.is(other.code, 1, other.stderr);
  assert.match(other.stderr, /cli-origin\.jsonl:1: item 0 was made from other data or models/);
  const weights = join(clip, 'model.safetensors');
  const t = statSync(weights).mtimeMs + 5000;
  utimesSync(weights, new Date(t), new Date(t));
  const changed = runCli(args(SREF), { timeout: 120_000 });
  assert.is(changed.code, 1, changed.stderr);
  assert.match(changed.stderr, /cli-origin\.jsonl:1: item 0 was made from other data or models/);
  assert.is(readRows(file).length, 3, 'nothing appended');
  const release = await lockResults(join(TMP, 'cli-held.jsonl'));
  try {
    const held = runCli(['eval', 'sref', SREF, '--trials', '3', ...CLIP, clip, '--out', join(TMP, 'cli-held.jsonl')], { timeout: 120_000 });
    assert.is(held.code, 1, held.stderr);
    assert.match(held.stderr, new RegExp(`cli-held\\.jsonl: in use by process ${process.pid} on \\S+ since \\S+, which is writing it`));
  } finally {
    await release();
  }
});

test('CLI: shards merge to the whole run; --json has accuracy, correct, total; the step is the benchmark\'s', () => {
  const args = ['eval', 'sref', SREF, '--trials', '5', ...MODELS, '--json'];
  const whole = lastJson(cli(...args, '--out', join(TMP, 'cli-whole.jsonl')), 'whole');
  assert.is(whole.total, 5);
  assert.is((whole.settings as Record<string, unknown>).step, 900, 'sref: the official step 900');
  for (const k of ['accuracy', 'correct', 'total', 'interval']) assert.ok(k in whole, k);
  const s1 = lastJson(cli(...args, '--shard', '1/2', '--out', join(TMP, 'shard1.jsonl')), 'shard 1');
  const s2 = lastJson(cli(...args, '--shard', '2/2', '--out', join(TMP, 'shard2.jsonl')), 'shard 2');
  assert.is((s1.total as number) + (s2.total as number), 5);
  const merged = lastJson(cli('eval', '--merge', join(TMP, 'shard1.jsonl'), join(TMP, 'shard2.jsonl'), '--json'), 'merge');
  for (const k of ['accuracy', 'correct', 'total', 'interval', 'ties', 'missing']) assert.equal(merged[k], whole[k], `merged ${k}`);
  assert.equal(readRows(join(TMP, 'cli-whole.jsonl')).map((r) => [r.s1, r.s2]), [...readRows(join(TMP, 'shard1.jsonl')), ...readRows(join(TMP, 'shard2.jsonl'))].map((r) => [r.s1, r.s2]));
  const partial = cli('eval', '--merge', join(TMP, 'shard1.jsonl'), '--json');
  assert.match(partial.stderr, /items are in none of the files/);
  // Slurm: task 1 of an array 0-1 is shard 2/2.
  const slurm = runCli(['eval', 'sref', SREF, '--trials', '5', '--shard', 'auto', '--list'], { env: { SLURM_ARRAY_TASK_ID: '1', SLURM_ARRAY_TASK_COUNT: '2' } });
  assert.equal(slurm.stdout.trim().split('\n').map((l) => (JSON.parse(l) as { item: number }).item), [2, 3, 4]);
});

test.run();
