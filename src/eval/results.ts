// Benchmark results: one JSON row per item, appended as it is computed, so that a run can stop at
// any point and resume; shards of a run over several machines; the summary (accuracy with a 95%
// Wilson score interval) of one run or of merged shard files.
//
// A row is written with one write(2) of the whole line on a file opened for appending, then
// flushed (fdatasync). A run killed mid-write can leave only a final line without its newline;
// resuming cuts it off (it is recomputed), so no row is ever read half-written. Resume reads only a
// regular file, line by line (a line is at most MAX_ROW_BYTES); a run holds `<file>.lock` while it
// appends, so that a second run on the same file is refused instead of computing everything again.

import { closeSync, existsSync, ftruncateSync, openSync, readFileSync, readSync, statSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { dirname } from 'node:path';
import { acquireLock } from '../hub/lock.js';
import { Appender, outputTarget } from '../io/atomic.js';

/** One evaluated item as stored in the JSONL file. */
export interface ResultRow {
  benchmark: string;
  /** The metric (or 'ensemble'). */
  metric: string;
  /** Index of the item in the protocol's order. */
  item: number;
  anchor: string;
  cand1: string;
  cand2: string;
  prompt: string;
  /** NIGHTS: left_vote; DreamBench: the 0/1 label (0 = cand1 rated higher). */
  label?: number;
  /** The more similar candidate by the ground truth. */
  truth: 1 | 2;
  /** Score of (anchor, cand1) and (anchor, cand2); for the ensemble the votes for each candidate. */
  s1: number;
  s2: number;
  predicted: 1 | 2;
  correct: boolean;
  /** 1 if correct, 0 if not, ½ for a tie under ties 'half'. */
  credit: number;
  tie: boolean;
  /** The "2x" criterion of CUTE/Sref/InstantStyle (cand1 twice as close as cand2). */
  twice?: boolean;
  /** Ensemble: each metric's scores and votes (1 = cand1). */
  scores?: Record<string, [number, number]>;
  votes?: Record<string, 1 | 2>;
  /** Identity of the run (benchmark, the dataset's items and file sizes, metric settings, protocol
   *  options), the same on every machine: rows of other runs are refused by resume and merge. */
  run: string;
  /** What this machine's run was made from (the dataset's resolved folder and its files' sizes and
   *  mtimes, the metrics' keys with their model files): checked row by row on resume, not by merge. */
  origin?: string;
  /** Items in the whole protocol (all shards). */
  of: number;
}

/** A short stable identity of a run's settings. */
export function runId(settings: unknown): string {
  return createHash('sha256').update(stableJson(settings)).digest('hex').slice(0, 16);
}

function stableJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(stableJson).join(',')}]`;
  if (v && typeof v === 'object') {
    const entries = Object.entries(v as Record<string, unknown>).filter(([, x]) => x !== undefined).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, x]) => `${JSON.stringify(k)}:${stableJson(x)}`).join(',')}}`;
  }
  return JSON.stringify(v);
}

export class ResultsError extends Error {
  override name = 'ResultsError';
}

const REQUIRED: (keyof ResultRow)[] = ['item', 'anchor', 'cand1', 'cand2', 'prompt', 'truth', 's1', 's2', 'predicted', 'correct', 'credit', 'run', 'of'];

function parseRow(line: string, file: string, lineNo: number): ResultRow {
  let row: unknown;
  try {
    row = JSON.parse(line);
  } catch {
    throw new ResultsError(`${file}:${lineNo}: not a JSON row`);
  }
  if (!row || typeof row !== 'object') throw new ResultsError(`${file}:${lineNo}: not a JSON object`);
  const missing = REQUIRED.filter((k) => !(k in (row as object)));
  if (missing.length) throw new ResultsError(`${file}:${lineNo}: not a diffsim eval row (missing ${missing.join(', ')})`);
  const r = row as ResultRow;
  if (!Number.isInteger(r.item) || r.item < 0) throw new ResultsError(`${file}:${lineNo}: item must be a non-negative integer, got ${JSON.stringify(r.item)}`);
  return r;
}

/** Lines longer than this are not rows (a results file holds rows of a few hundred bytes). */
export const MAX_ROW_BYTES = 1 << 20;

/** Reads `path` line by line in chunks, never holding more than one line (at most MAX_ROW_BYTES):
 *  each complete line to `onLine`; returns the byte length of the complete lines and whether an
 *  unterminated final line followed them. */
function scanLines(file: string, path: string, onLine: (line: string, lineNo: number) => void): { complete: number; partial: boolean } {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new ResultsError(`${file}: cannot read (${code === 'ENOENT' ? 'no such file' : code ?? (e as Error).message})`);
  }
  try {
    const chunk = Buffer.alloc(1 << 16);
    let pending: Buffer[] = [];
    let pendingBytes = 0;
    let complete = 0;
    let lineNo = 0;
    for (;;) {
      let n: number;
      try {
        n = readSync(fd, chunk, 0, chunk.length, null);
      } catch (e) {
        throw new ResultsError(`${file}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
      }
      if (n === 0) break;
      let start = 0;
      for (let nl = chunk.indexOf(10, 0); nl !== -1 && nl < n; nl = chunk.indexOf(10, start)) {
        const part = chunk.subarray(start, nl);
        const line = pendingBytes ? Buffer.concat([...pending, part]) : part;
        if (line.length > MAX_ROW_BYTES) throw new ResultsError(`${file}:${lineNo + 1}: a line over ${MAX_ROW_BYTES} bytes: not a diffsim results file`);
        complete += line.length + 1;
        pending = [];
        pendingBytes = 0;
        onLine(line.toString('utf8'), ++lineNo);
        start = nl + 1;
      }
      if (start < n) {
        pending.push(Buffer.from(chunk.subarray(start, n)));
        pendingBytes += n - start;
        if (pendingBytes > MAX_ROW_BYTES) throw new ResultsError(`${file}:${lineNo + 1}: a line over ${MAX_ROW_BYTES} bytes: not a diffsim results file`);
      }
    }
    return { complete, partial: pendingBytes > 0 };
  } finally {
    closeSync(fd);
  }
}

/** The complete rows of a results file, read line by line; a final line cut off by a crash is
 *  reported (`resumeRows` repairs it). */
export function readRows(file: string): ResultRow[] {
  const rows: ResultRow[] = [];
  const { partial } = scanLines(file, file, (line, no) => {
    if (line.trim()) rows.push(parseRow(line, file, no));
  });
  if (partial) throw new ResultsError(`${file}: the last line is incomplete (an interrupted run; resume it with the same --out to repair)`);
  return rows;
}

/** Appends rows, one atomic line each, flushed to disk (a regular file; a device or FIFO is written
 *  directly, a symlink's target appended to: io/atomic.ts's rules). */
export class RowWriter {
  private readonly out: Appender;
  constructor(readonly file: string) {
    try {
      this.out = Appender.open(file);
    } catch (e) {
      throw new ResultsError((e as Error).message);
    }
  }
  write(row: ResultRow): void {
    try {
      this.out.write(Buffer.from(`${JSON.stringify(row)}\n`));
    } catch (e) {
      throw new ResultsError((e as Error).message);
    }
  }
  close(): void {
    this.out.close();
  }
}

/** Adds `r` to rows by item: the same item twice must have the same scores (resume and merge alike). */
function addRow(byItem: Map<number, ResultRow>, r: ResultRow, source: string): void {
  const seen = byItem.get(r.item);
  if (seen && (seen.s1 !== r.s1 || seen.s2 !== r.s2)) throw new ResultsError(`${source}: item ${r.item} appears twice with different scores`);
  byItem.set(r.item, r);
}

/** Rows already in `file` for this run (resume). Only a regular file (or a symlink to one) is read,
 *  line by line: anything else (nothing there, /dev/null, a FIFO, /dev/stdout) starts fresh. Refuses
 *  a file written by another run, a row made from other data or models than `origin` (when given),
 *  rows for items outside this run's selection and an item twice with different scores; a final line
 *  cut off by a crash is removed from the file (it is recomputed). */
export function resumeRows(file: string, run: string, selection: ReadonlySet<number>, origin?: string): Map<number, ResultRow> {
  const done = new Map<number, ResultRow>();
  resumeRowsWith(file, (r, no) => {
    if (r.run !== run) throw new ResultsError(`${file}: written by another run (other benchmark, dataset or settings: run ${r.run}, this one ${run}); give another --out`);
    if (origin !== undefined && r.origin !== origin) throw new ResultsError(`${file}:${no}: item ${r.item} was made from other data or models (another dataset folder, changed images or changed model files: origin ${r.origin ?? 'none'}, this run's ${origin}); give another --out`);
    if (!selection.has(r.item)) throw new ResultsError(`${file}: holds item ${r.item}, which is not in this run's selection (another --shard?); give another --out`);
    addRow(done, r, file);
  });
  return done;
}

/** The resume scan itself, for callers with their own rules (a sweep's rows belong to several
 *  cells): each complete row of a regular file (or a symlink to one) to `accept`, which throws to
 *  refuse the file; anything else (nothing there, a device, a FIFO) has no rows. A final line cut
 *  off by a crash is removed from the file (it is recomputed). */
export function resumeRowsWith(file: string, accept: (row: ResultRow, lineNo: number) => void): void {
  let target;
  try {
    target = outputTarget(file);
  } catch (e) {
    throw new ResultsError((e as Error).message);
  }
  if (target.kind !== 'file') return;
  const { complete, partial } = scanLines(file, target.path, (line, no) => {
    if (!line.trim()) return;
    accept(parseRow(line, file, no), no);
  });
  if (partial) {
    const fd = openSync(target.path, 'r+');
    try {
      ftruncateSync(fd, complete);
    } finally {
      closeSync(fd);
    }
  }
}

/** Takes the lock of a results file (`<file>.lock` beside the file a symlink names), so that two
 *  runs never append to one file at once; refuses, naming the process that holds it, when another
 *  live one does. Outputs that are not regular files (a device, a FIFO) are not locked. */
export async function lockResults(file: string): Promise<() => Promise<void>> {
  let target;
  try {
    target = outputTarget(file);
  } catch (e) {
    throw new ResultsError((e as Error).message);
  }
  if (target.kind === 'stream') return async () => undefined;
  const folder = dirname(target.path);
  if (!existsSync(folder)) throw new ResultsError(`${file}: cannot open for appending (the folder ${folder} does not exist)`);
  if (!statSync(folder).isDirectory()) throw new ResultsError(`${file}: cannot open for appending (${folder} is not a folder)`);
  const lock = `${target.path}.lock`;
  return acquireLock(lock, {
    onWait: () => {
      throw new ResultsError(`${file}: in use by ${lockHolder(lock)}, which is writing it (lock ${lock}); wait for it to end or give another --out`);
    },
  });
}

/** Who holds a lock file: `process <pid> on <host> since <time>`. */
function lockHolder(lock: string): string {
  let text = '';
  try {
    text = readFileSync(lock, 'utf8');
  } catch {
    // released in the meantime
  }
  const m = /^(\d+) (\S+) (\d+)$/.exec(text.trim());
  return m ? `process ${m[1]} on ${m[2]} since ${new Date(Number(m[3])).toISOString()}` : 'another process';
}

/** A shard i of n (1-based). */
export interface Shard {
  index: number;
  count: number;
}

/** Parses `--shard i/n` or `auto` (a Slurm array or a Kubernetes Indexed Job, `--shards n` for the latter). */
export function parseShard(spec: string, env: Readonly<Record<string, string | undefined>> = process.env, shards?: number): Shard {
  if (spec !== 'auto') {
    const m = /^(\d+)\/(\d+)$/.exec(spec);
    if (!m) throw new ResultsError(`--shard must be i/n (1-based, e.g. 2/8) or auto, got ${JSON.stringify(spec)}`);
    const index = Number(m[1]);
    const count = Number(m[2]);
    if (count < 1 || index < 1 || index > count) throw new ResultsError(`--shard ${spec}: i must be in 1–n and n ≥ 1`);
    return { index, count };
  }
  const int = (name: string): number | undefined => {
    const v = env[name];
    if (v === undefined || v === '') return undefined;
    if (!/^\d+$/.test(v)) throw new ResultsError(`--shard auto: ${name}=${JSON.stringify(v)} is not a non-negative integer`);
    return Number(v);
  };
  const slurmId = int('SLURM_ARRAY_TASK_ID');
  if (slurmId !== undefined) {
    // Array indices may start anywhere and step (--array=0-15:2): the shard is the position in the array.
    const min = int('SLURM_ARRAY_TASK_MIN') ?? 0;
    const step = int('SLURM_ARRAY_TASK_STEP') ?? 1;
    const max = int('SLURM_ARRAY_TASK_MAX');
    const count = int('SLURM_ARRAY_TASK_COUNT') ?? (max !== undefined ? Math.floor((max - min) / step) + 1 : undefined);
    if (count === undefined) throw new ResultsError('--shard auto: SLURM_ARRAY_TASK_ID is set but neither SLURM_ARRAY_TASK_COUNT nor SLURM_ARRAY_TASK_MAX');
    if (step < 1 || (slurmId - min) % step !== 0 || slurmId < min) throw new ResultsError(`--shard auto: SLURM_ARRAY_TASK_ID ${slurmId} is not min ${min} + k·step ${step}`);
    const index = (slurmId - min) / step + 1;
    if (index > count) throw new ResultsError(`--shard auto: SLURM_ARRAY_TASK_ID ${slurmId} is past the ${count} tasks of the array`);
    return { index, count };
  }
  const k8s = int('JOB_COMPLETION_INDEX');
  if (k8s !== undefined) {
    if (shards === undefined) throw new ResultsError('--shard auto: a Kubernetes Indexed Job (JOB_COMPLETION_INDEX) needs --shards n (the Job\'s completions)');
    if (k8s >= shards) throw new ResultsError(`--shard auto: JOB_COMPLETION_INDEX ${k8s} is not below --shards ${shards}`);
    return { index: k8s + 1, count: shards };
  }
  throw new ResultsError('--shard auto: no SLURM_ARRAY_TASK_ID (Slurm array) or JOB_COMPLETION_INDEX (Kubernetes Indexed Job) in the environment');
}

/** The items of a shard: contiguous blocks (neighbouring items share anchors, which a shard then
 *  embeds once), sizes differing by at most one. */
export function shardRange(total: number, s: Shard): [number, number] {
  return [Math.floor(((s.index - 1) * total) / s.count), Math.floor((s.index * total) / s.count)];
}

/** The 95% Wilson score interval of a proportion (percent). */
export function wilson(successes: number, n: number, z = 1.959963984540054): [number, number] {
  if (n === 0) return [0, 100];
  const p = successes / n;
  const denom = 1 + (z * z) / n;
  const centre = (p + (z * z) / (2 * n)) / denom;
  const half = (z * Math.sqrt((p * (1 - p)) / n + (z * z) / (4 * n * n))) / denom;
  // At p = 0 or 1 one end is exactly 0 or 100 (centre ∓ half cancels; rounding would not say so).
  return [successes <= 0 ? 0 : Math.max(0, centre - half) * 100, successes >= n ? 100 : Math.min(1, centre + half) * 100];
}

export interface Summary {
  /** Σ credit / total × 100. */
  accuracy: number;
  /** Σ credit (ties count ½ under ties 'half'). */
  correct: number;
  total: number;
  /** Items of the protocol not in the rows (missing shards). */
  missing: number;
  ties: number;
  /** 95% Wilson score interval of the accuracy, percent. */
  interval: [number, number];
  intervalMethod: 'wilson';
  /** CUTE/Sref/InstantStyle: the "2x" accuracy of the official scripts. */
  twiceAccuracy?: number;
}

/** The summary of rows of one run (deduplicated by item; the same item twice must agree). */
export function summarize(rows: readonly ResultRow[], source = 'rows'): Summary {
  const byItem = new Map<number, ResultRow>();
  let of: number | undefined;
  let run: string | undefined;
  for (const r of rows) {
    run ??= r.run;
    if (r.run !== run) throw new ResultsError(`${source}: rows of different runs (${run} and ${r.run}): the files were made with other benchmarks, datasets or settings`);
    of ??= r.of;
    addRow(byItem, r, source);
  }
  const all = [...byItem.values()];
  const total = all.length;
  const correct = all.reduce((a, r) => a + r.credit, 0);
  const twice = all.filter((r) => r.twice !== undefined);
  const out: Summary = {
    accuracy: total ? (correct * 100) / total : 0,
    correct,
    total,
    missing: Math.max(0, (of ?? total) - total),
    ties: all.filter((r) => r.tie).length,
    interval: wilson(correct, total),
    intervalMethod: 'wilson',
  };
  if (twice.length === total && total > 0) out.twiceAccuracy = (twice.filter((r) => r.twice).length * 100) / total;
  return out;
}

/** Merged summary of shard files (`diffsim eval --merge`). */
export function mergeFiles(files: readonly string[]): { summary: Summary; rows: ResultRow[] } {
  if (!files.length) throw new ResultsError('--merge needs at least one results file');
  const rows = files.flatMap((f) => readRows(f));
  if (!rows.length) throw new ResultsError(`${files.join(', ')}: no rows`);
  return { summary: summarize(rows, files.join(', ')), rows: rows.sort((a, b) => a.item - b.item) };
}
