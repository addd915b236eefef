// Per-dispatch profiling: what every dispatch of a stage cost on the GPU, by kernel variant and by
// module path, beside the host time spent recording it.
//
// With `timestamp-query`, the runtime records each dispatch of a profiled stage in its own compute
// pass whose beginning and end write timestamps; the timestamps are resolved when the batch is
// submitted and read back asynchronously. Without it, each dispatch is submitted alone and timed
// from its submission (or the previous submission's completion, whichever is later) to its
// completion on the host clock ("per-submit" timing, which also counts the submission overhead).
//
// Module paths come from the nn layer: a module that finishes (or records its `:out`) calls
// `markModule(path)`, and every dispatch recorded since the previous mark is attributed to it.
// Dispatches after the last mark of a stage are attributed to '(after last module)'.

/** One recorded dispatch. */
export interface DispatchRecord {
  /** The kernel variant (the runtime's kernel key). */
  kernel: string;
  /** The module that finished next after the dispatch was recorded. */
  module: string;
  workgroups: [number, number, number];
  /** Floating-point operations (2 per multiply-add) as counted by the launcher; 0 for ops that count none. */
  flops: number;
  /** Bytes bound to the dispatch: every input read once, every output written once (the compulsory
   *  traffic, unless the launcher stated its own count). */
  bytes: number;
  /** GPU time in milliseconds; null until resolved (or when a timestamp could not be read). */
  ms: number | null;
}

export type ProfileTiming = 'timestamp' | 'submit';

/** Where a profiled dispatch's timestamps go: a query set of one batch. */
export interface TimestampSlot {
  querySet: GPUQuerySet;
  resolve: GPUBuffer;
  readback: GPUBuffer;
  capacity: number;
}

const UNATTRIBUTED = '(after last module)';

/** The per-dispatch records of one profiling session (see Runtime.startProfile). */
export class Profiler {
  readonly records: DispatchRecord[] = [];
  /** Index of the first record not yet attributed to a module. */
  private unattributed = 0;
  /** Pending reads of timestamps and submit completions. */
  readonly pending: Promise<void>[] = [];
  /** Why timing is per submit, when it is. */
  readonly note: string;

  constructor(readonly timing: ProfileTiming, note = '') {
    this.note = note;
    active.add(this);
  }

  /** @internal Called by the runtime for every dispatch recorded while profiling; returns its index. */
  add(kernel: string, workgroups: [number, number, number], flops: number, bytes: number): number {
    this.records.push({ kernel, module: '', workgroups, flops, bytes, ms: null });
    return this.records.length - 1;
  }

  /** Attributes the dispatches recorded since the last mark to `path`. */
  mark(path: string): void {
    const r = this.records;
    for (let i = this.unattributed; i < r.length; i++) r[i]!.module = path;
    this.unattributed = r.length;
  }

  /** @internal Stops attribution and waits for every pending time. */
  async finish(): Promise<void> {
    active.delete(this);
    this.mark(UNATTRIBUTED);
    while (this.pending.length) await Promise.all(this.pending.splice(0));
  }
}

const active = new Set<Profiler>();

/** Marks the end of module `path`: the dispatches recorded since the previous mark belong to it.
 *  Costs nothing when no profiler is active. */
export function markModule(path: string): void {
  if (active.size === 0) return;
  for (const p of active) p.mark(path);
}

// ---------------------------------------------------------------- reports

export interface ProfileRow {
  /** Kernel key or module path. */
  name: string;
  calls: number;
  totalMs: number;
  meanMs: number;
  /** totalMs / the stage's summed GPU time. */
  share: number;
  flops: number;
  bytes: number;
  gflops: number;
  gbps: number;
}

export interface StageProfile {
  stage: string;
  adapter: string;
  timing: ProfileTiming;
  /** Why timing fell back to per-submit, when it did. */
  timingNote?: string;
  dispatches: number;
  /** Dispatches whose time could not be read (counted in none of the totals). */
  untimed: number;
  /** Wall time of the profiled run: recording, GPU and the final wait. */
  wallMs: number;
  /** Host time of the stage: its wall time less the time spent waiting for the GPU. */
  jsMs: number;
  /** Sum of the dispatches' GPU times. */
  gpuMs: number;
  /** First dispatch begin to last dispatch end on the GPU clock (timestamp timing only). */
  spanMs: number | null;
  flops: number;
  bytes: number;
  gflops: number;
  gbps: number;
  byKernel: ProfileRow[];
  byModule: ProfileRow[];
  /** Module paths cut after their first two dot-separated parts (`down_blocks.1`, `mid_block`). */
  byBlock: ProfileRow[];
}

function rows(records: readonly DispatchRecord[], keyOf: (r: DispatchRecord) => string, gpuMs: number): ProfileRow[] {
  const map = new Map<string, ProfileRow>();
  for (const r of records) {
    if (r.ms === null) continue;
    const name = keyOf(r);
    let row = map.get(name);
    if (!row) map.set(name, (row = { name, calls: 0, totalMs: 0, meanMs: 0, share: 0, flops: 0, bytes: 0, gflops: 0, gbps: 0 }));
    row.calls++;
    row.totalMs += r.ms;
    row.flops += r.flops;
    row.bytes += r.bytes;
  }
  const out = [...map.values()];
  for (const row of out) {
    row.meanMs = row.totalMs / row.calls;
    row.share = gpuMs > 0 ? row.totalMs / gpuMs : 0;
    row.gflops = row.totalMs > 0 ? row.flops / row.totalMs / 1e6 : 0;
    row.gbps = row.totalMs > 0 ? row.bytes / row.totalMs / 1e6 : 0;
  }
  return out.sort((a, b) => b.totalMs - a.totalMs);
}

/** The block of a module path: its first two parts (`up_blocks.1`), or the first for a one-part name. */
export function blockOf(path: string): string {
  const parts = path.split('.');
  return parts.length >= 2 && /^\d+$/.test(parts[1]!) ? `${parts[0]}.${parts[1]}` : parts[0]!;
}

/** Sums a profiler's records into a stage profile. */
export function summarize(
  stage: string,
  adapter: string,
  profiler: Profiler,
  times: { wallMs: number; jsMs: number; spanMs: number | null },
): StageProfile {
  const recs = profiler.records;
  const timed = recs.filter((r) => r.ms !== null);
  const gpuMs = timed.reduce((s, r) => s + r.ms!, 0);
  const flops = timed.reduce((s, r) => s + r.flops, 0);
  const bytes = timed.reduce((s, r) => s + r.bytes, 0);
  return {
    stage,
    adapter,
    timing: profiler.timing,
    ...(profiler.note ? { timingNote: profiler.note } : {}),
    dispatches: recs.length,
    untimed: recs.length - timed.length,
    wallMs: times.wallMs,
    jsMs: times.jsMs,
    gpuMs,
    spanMs: times.spanMs,
    flops,
    bytes,
    gflops: gpuMs > 0 ? flops / gpuMs / 1e6 : 0,
    gbps: gpuMs > 0 ? bytes / gpuMs / 1e6 : 0,
    byKernel: rows(recs, (r) => r.kernel, gpuMs),
    byModule: rows(recs, (r) => r.module, gpuMs),
    byBlock: rows(recs, (r) => blockOf(r.module), gpuMs),
  };
}

function fmtCount(n: number, unit: string): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)} G${unit}`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)} M${unit}`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)} k${unit}`;
  return `${n} ${unit}`;
}

function table(title: string, list: readonly ProfileRow[], limit: number): string[] {
  const lines = [`| ${title} | calls | total ms | mean ms | share | FLOPs | bytes | GFLOP/s | GB/s |`, '|---|--:|--:|--:|--:|--:|--:|--:|--:|'];
  for (const r of list.slice(0, limit)) {
    lines.push(
      `| ${r.name} | ${r.calls} | ${r.totalMs.toFixed(2)} | ${r.meanMs.toFixed(3)} | ${(100 * r.share).toFixed(1)}% | ${r.flops ? fmtCount(r.flops, '') : '–'} | ${fmtCount(r.bytes, 'B')} | ${r.flops ? r.gflops.toFixed(2) : '–'} | ${r.gbps.toFixed(2)} |`,
    );
  }
  if (list.length > limit) lines.push(`| (${list.length - limit} more) | | | | | | | | |`);
  return lines;
}

/** A Markdown report: the stage's totals, then the top rows by kernel, by block and by module. */
export function formatProfile(p: StageProfile, limit = 15): string {
  const head = [
    `### ${p.stage} on ${p.adapter}`,
    '',
    `${p.dispatches} dispatches (${p.untimed} untimed), timing: ${p.timing === 'timestamp' ? 'GPU timestamps per dispatch' : `per submit (${p.timingNote ?? 'no timestamps'})`}`,
    `wall ${p.wallMs.toFixed(1)} ms, JS recording ${p.jsMs.toFixed(1)} ms (${p.dispatches ? ((1000 * p.jsMs) / p.dispatches).toFixed(1) : '0'} µs per dispatch), GPU ${p.gpuMs.toFixed(1)} ms` +
      (p.spanMs !== null ? ` (span ${p.spanMs.toFixed(1)} ms)` : '') +
      `, ${fmtCount(p.flops, 'FLOP')} at ${p.gflops.toFixed(2)} GFLOP/s, ${fmtCount(p.bytes, 'B')} at ${p.gbps.toFixed(2)} GB/s`,
    '',
  ];
  return [...head, ...table('kernel', p.byKernel, limit), '', ...table('block', p.byBlock, limit), '', ...table('module', p.byModule, limit)].join('\n');
}

/** What profileStage needs of a runtime (the Runtime class; typed structurally to keep this module
 *  free of a runtime import). */
export interface ProfilableRuntime {
  readonly adapterInfo: { description: string; device: string };
  startProfile(options?: { timing?: ProfileTiming }): Profiler;
  stopProfile(): Promise<{ profiler: Profiler; spanMs: number | null }>;
  sync(): Promise<void>;
  readonly waitMs: number;
}

/** Profiles one run of a stage: `fn` records its work (and may await read-backs), then the GPU is
 *  waited for; the wall time ends there, before any per-submit re-runs. The JS time is the wall
 *  time less the time spent waiting for the GPU (read-backs, syncs). */
export async function profileStage(
  rt: ProfilableRuntime,
  stage: string,
  fn: () => unknown,
  options: { timing?: ProfileTiming } = {},
): Promise<StageProfile> {
  rt.startProfile(options);
  let jsMs = 0;
  let wallMs = 0;
  const w0 = rt.waitMs;
  const t0 = performance.now();
  try {
    await fn();
    await rt.sync();
    wallMs = performance.now() - t0;
    jsMs = wallMs - (rt.waitMs - w0);
  } catch (e) {
    await rt.stopProfile().catch(() => undefined);
    throw e;
  }
  const { profiler, spanMs } = await rt.stopProfile();
  return summarize(stage, rt.adapterInfo.description || rt.adapterInfo.device || 'adapter', profiler, { wallMs, jsMs, spanMs });
}
