// Runs a benchmark's items through a metric (or the ensemble's three): every image is embedded at
// most once per role and metric variant (an anchor is reused across its triplets), rows are
// appended to the results file as they are computed, a rerun resumes where the file ends.
//
// Embeddings live on the GPU from their first use to their last (the whole item list is known in
// advance); more than `maxLive` at once and the one needed furthest ahead is moved to host memory
// (saveEmbedding bytes, up to `hostBytes`), beyond that dropped and embedded again when needed —
// the passes are deterministic, so a re-embedded image gives the same embedding bit for bit.

import { vote } from '../diffsim/vote.js';
import { toRgbImage, type Metric, type MetricEmbedding } from '../diffsim/metric.js';
import type { ImageRole } from '../diffsim/embedding.js';
import type { RgbImage } from '../io/image.js';
import { decide, decide2x, decideEnsemble, type DecisionRule, type TieRule } from './decide.js';
import { itemPaths, type BenchmarkName, type EvalItem } from './protocols.js';
import { lockResults, resumeRows, RowWriter, summarize, type ResultRow, type Summary } from './results.js';

export interface EvalRunOptions {
  benchmark: BenchmarkName;
  /** The items to evaluate (a shard's slice or all), in protocol order. */
  items: readonly EvalItem[];
  /** Items in the whole protocol (all shards). */
  of: number;
  dir: string;
  originals?: string;
  /** One metric, or with `ensemble` the three voters [diffsim, clip, dino]. */
  metrics: readonly Metric[];
  ensemble?: boolean;
  /** How the official DiffSim vote reads an mse score (default 'official-inverted': higher = closer). */
  mseVote?: 'official-inverted' | 'lower-is-closer';
  rule: DecisionRule;
  ties?: TieRule;
  /** A prompt for every item instead of the protocol's own. */
  prompt?: string;
  /** The run's identity (results.runId of its settings). */
  run: string;
  /** What the run is made from on this machine (see ResultRow.origin; e.g. runId of the dataset's
   *  `datasetIdentity().local` and the metrics' keys): written in each row, and rows of the results
   *  file made from anything else are refused on resume. */
  origin?: string;
  /** The metric name written in rows ('ensemble' for the ensemble). */
  metricName: string;
  /** Results file (JSONL): appended to, resumed from (a regular file only: a device or FIFO is
   *  written, never read), locked while the run appends (`<out>.lock`; a second run is refused). */
  out?: string;
  /** Embeddings kept on the GPU at once (default 48). */
  maxLive?: number;
  /** Bytes of embeddings moved to host memory at most (default 4 GiB). */
  hostBytes?: number;
  /** After each computed row (resumed rows are not reported). */
  onRow?: (row: ResultRow, computed: number, toCompute: number) => void;
}

export interface EvalRunResult {
  rows: ResultRow[];
  summary: Summary;
  /** Rows computed by this call, and rows taken from the results file. */
  computed: number;
  resumed: number;
  /** Image passes run (per metric variant and role), and those that re-embedded an evicted one. */
  embedded: number;
  reembedded: number;
  seconds: number;
}

interface Use {
  metric: Metric;
  role: ImageRole;
  path: string;
}

/** Embeddings by (metric variant, role, path) with their remaining uses. */
class EmbeddingPlan {
  private readonly uses = new Map<string, number[]>(); // key → positions of use, ascending
  private readonly live = new Map<string, { e: MetricEmbedding; metric: Metric }>();
  private readonly host = new Map<string, Uint8Array>();
  private hostUsed = 0;
  private readonly done = new Set<string>();
  embedded = 0;
  reembedded = 0;
  private images = new Map<string, RgbImage>();

  constructor(
    private readonly maxLive: number,
    private readonly hostBytes: number,
  ) {}

  static key(u: Use): string {
    // An embedding that does not depend on the role serves both.
    return `${u.metric.key}\u0000${u.metric.roleDependent ? u.role : '-'}\u0000${u.path}`;
  }

  plan(position: number, u: Use): void {
    const k = EmbeddingPlan.key(u);
    const list = this.uses.get(k);
    if (list) {
      if (list[list.length - 1] !== position) list.push(position);
    } else this.uses.set(k, [position]);
  }

  private nextUse(k: string, position: number): number {
    const list = this.uses.get(k);
    if (!list) return Infinity;
    for (const p of list) if (p > position) return p;
    return Infinity;
  }

  private async image(path: string): Promise<RgbImage> {
    let img = this.images.get(path);
    if (!img) {
      img = await toRgbImage(path);
      // A few decoded images suffice: the voters of one item use the same three.
      if (this.images.size >= 8) this.images.delete(this.images.keys().next().value!);
      this.images.set(path, img);
    }
    return img;
  }

  async get(position: number, u: Use): Promise<MetricEmbedding> {
    const k = EmbeddingPlan.key(u);
    const have = this.live.get(k);
    if (have) return have.e;
    let e: MetricEmbedding;
    const stored = this.host.get(k);
    if (stored) {
      e = await u.metric.loadEmbedding(stored, u.path);
      this.host.delete(k);
      this.hostUsed -= stored.byteLength;
    } else {
      if (this.done.has(k)) this.reembedded++;
      e = await u.metric.embed(await this.image(u.path), u.role);
      this.embedded++;
      this.done.add(k);
    }
    this.live.set(k, { e, metric: u.metric });
    await this.evict(position, k);
    return e;
  }

  /** Keeps at most maxLive on the GPU: the one needed furthest ahead goes to the host (or is dropped). */
  private async evict(position: number, keep: string): Promise<void> {
    // More than maxLive may stay while the current item needs them all (an ensemble item uses 9).
    while (this.live.size > this.maxLive) {
      let worst: string | undefined;
      let worstNext = -1;
      for (const k of this.live.keys()) {
        // The current item's embeddings stay: they are compared right after.
        if (k === keep || this.uses.get(k)?.includes(position)) continue;
        const n = this.nextUse(k, position);
        if (n > worstNext) {
          worst = k;
          worstNext = n;
        }
      }
      if (worst === undefined) return;
      const { e, metric } = this.live.get(worst)!;
      this.live.delete(worst);
      if (worstNext !== Infinity) {
        const bytes = await metric.saveEmbedding(e);
        if (this.hostUsed + bytes.byteLength <= this.hostBytes) {
          this.host.set(worst, bytes);
          this.hostUsed += bytes.byteLength;
        }
      }
      e.dispose();
    }
  }

  /** Frees what is not needed after `position`. */
  release(position: number): void {
    for (const [k, { e }] of this.live) {
      if (this.nextUse(k, position) === Infinity) {
        e.dispose();
        this.live.delete(k);
      }
    }
  }

  dispose(): void {
    for (const { e } of this.live.values()) e.dispose();
    this.live.clear();
    this.host.clear();
  }
}

/** The prompt-specific variant of a metric for an item. */
function variantFor(m: Metric, item: EvalItem, prompt: string | undefined): Metric {
  return m.withPrompt(prompt ?? item.prompt);
}

export async function runEval(o: EvalRunOptions): Promise<EvalRunResult> {
  const started = performance.now();
  if (o.ensemble && o.metrics.length !== 3) throw new RangeError(`runEval: the ensemble needs three metrics (diffsim, clip, dino), got ${o.metrics.length}`);
  if (!o.ensemble && o.metrics.length !== 1) throw new RangeError(`runEval: one metric expected, got ${o.metrics.length}`);
  const selection = new Set(o.items.map((i) => i.item));
  const unlock = o.out ? await lockResults(o.out) : undefined;
  try {
    return await runLocked(o, selection, started);
  } finally {
    await unlock?.();
  }
}

async function runLocked(o: EvalRunOptions, selection: ReadonlySet<number>, started: number): Promise<EvalRunResult> {
  const done = o.out ? resumeRows(o.out, o.run, selection, o.origin) : new Map<number, ResultRow>();
  const todo = o.items.filter((i) => !done.has(i.item));
  const plan = new EmbeddingPlan(o.maxLive ?? 48, o.hostBytes ?? 4 * 2 ** 30);
  const uses = todo.map((item) => {
    const p = itemPaths(item, o.dir, o.originals !== undefined ? { originals: o.originals } : {});
    return o.metrics.map((base) => {
      const metric = variantFor(base, item, o.prompt);
      return { metric, anchor: { metric, role: 'A' as const, path: p.anchor }, cand1: { metric, role: 'B' as const, path: p.cand1 }, cand2: { metric, role: 'B' as const, path: p.cand2 } };
    });
  });
  uses.forEach((perMetric, pos) => {
    for (const u of perMetric) for (const x of [u.anchor, u.cand1, u.cand2]) plan.plan(pos, x);
  });
  const writer = o.out ? new RowWriter(o.out) : null;
  const computed: ResultRow[] = [];
  try {
    for (let pos = 0; pos < todo.length; pos++) {
      const item = todo[pos]!;
      const scores: [number, number][] = [];
      for (const u of uses[pos]!) {
        const ea = await plan.get(pos, u.anchor);
        const e1 = await plan.get(pos, u.cand1);
        const s1 = await u.metric.compare(ea, e1);
        const e2 = await plan.get(pos, u.cand2);
        const s2 = await u.metric.compare(ea, e2);
        scores.push([s1, s2]);
      }
      plan.release(pos);
      const base = {
        benchmark: o.benchmark,
        metric: o.metricName,
        item: item.item,
        anchor: item.anchor,
        cand1: item.cand1,
        cand2: item.cand2,
        prompt: o.prompt ?? item.prompt,
        ...(item.label !== undefined ? { label: item.label } : {}),
        ...(item.anchorRoot ? { anchorRoot: item.anchorRoot } : {}),
        truth: item.truth,
      };
      let row: ResultRow;
      if (o.ensemble) {
        // The official vote: v = 0 if s1 < s2 else 1 (a tie votes cand1); DiffSim reads mse as
        // higher = closer unless mseVote says otherwise.
        const names = ['diffsim', 'clip', 'dino'];
        const votes: Record<string, 1 | 2> = {};
        let forCand1 = 0;
        o.metrics.forEach((m, i) => {
          const higher = i === 0 ? !m.lowerBetter || (o.mseVote ?? 'official-inverted') === 'official-inverted' : !m.lowerBetter;
          const v = vote(scores[i]![0], scores[i]![1], higher, 'official');
          votes[names[i]!] = v;
          if (v === 1) forCand1++;
        });
        const d = decideEnsemble(item, forCand1);
        row = { ...base, s1: forCand1, s2: 3 - forCand1, ...d, scores: Object.fromEntries(names.map((n, i) => [n, scores[i]!])), votes, run: o.run, ...(o.origin !== undefined ? { origin: o.origin } : {}), of: o.of };
      } else {
        const [s1, s2] = scores[0]!;
        const d = decide(o.benchmark, o.rule, item, s1, s2, o.ties ?? 'strict');
        const twice = o.benchmark === 'cute' || o.benchmark === 'sref' || o.benchmark === 'instantstyle' ? { twice: decide2x(o.benchmark, o.rule, s1, s2) } : {};
        row = { ...base, s1, s2, ...d, ...twice, run: o.run, ...(o.origin !== undefined ? { origin: o.origin } : {}), of: o.of };
      }
      writer?.write(row);
      computed.push(row);
      o.onRow?.(row, computed.length, todo.length);
    }
  } finally {
    writer?.close();
    plan.dispose();
  }
  const rows = [...done.values(), ...computed].sort((a, b) => a.item - b.item);
  return { rows, summary: summarize(rows), computed: computed.length, resumed: done.size, embedded: plan.embedded, reembedded: plan.reembedded, seconds: (performance.now() - started) / 1000 };
}
