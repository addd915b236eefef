// A benchmark's grid search over where a metric looks (the paper's §4.1 and Figure 5: accuracy
// against timestep, block and resolution), computed from as few passes as the grid allows.
//
// The grid is split into groups whose cells one pass serves: for DiffSim one (image size, step)
// is one group, and one U-Net pass per image and role records the q/k/v of every requested
// self-attention layer at once (stopping after the deepest of them); for the ViT metrics the whole
// grid (the encoder layers) is one group. Each cell's score of a pair is then what `diffsim eval`
// with that cell's settings computes: the same tensors, compared by the same metric code. Rows are
// those of eval plus the cell, appended as computed: a rerun resumes, shards merge.
//
// Embeddings live from an item's first use to its last (the protocol's item list says which items
// share an image); beyond `maxLive` bundles on the GPU the one needed furthest ahead is written to
// a spill folder on disk and read back when needed.
//
// The metrics a sweep knows are in SWEEP_METRICS: a metric joins by giving, for its loaded Metric
// and the grid, the groups of cells (registerSweepMetric).

import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Runtime, Tensor } from '../gpu/runtime.js';
import { DiffSim, hookTaps } from '../diffsim/core.js';
import { DiffSimEmbedding, type ImageRole } from '../diffsim/embedding.js';
import { resolveHook, resolveXlHook } from '../diffsim/hook.js';
import { DIFFSIM_DEFAULTS, DiffSimSettingsError, type DiffSimBlock, type DiffSimSettingsInput } from '../diffsim/settings.js';
import { DiffSimPairMetric, DiTPairMetric, VisionPairMetric } from '../diffsim/metrics.js';
import { DiffSimDiT } from '../diffsim/dit.js';
import { DIT_DEFAULTS, DIT_SHARED_SETTINGS, type DitSettingsInput } from '../diffsim/settings.js';
import { VisionEmbedding, type VisionLayerEmbedding } from '../diffsim/vision.js';
import { toRgbImage, type Metric } from '../diffsim/metric.js';
import { encodeSafetensors, SafetensorsFile } from '../io/safetensors.js';
import { blobSource } from '../io/bytesource.js';
import type { RgbImage } from '../io/image.js';
import { decide, decide2x, type DecisionRule, type TieRule } from './decide.js';
import { itemPaths, type BenchmarkName, type EvalItem } from './protocols.js';
import { lockResults, readRows, resumeRowsWith, ResultsError, RowWriter, runId, summarize, type ResultRow, type Summary } from './results.js';

/** Where one cell of the grid looks. Axes a metric has no use for are absent. */
export interface SweepCell {
  /** Stable name of the cell, e.g. `size 64 · step 300 · up 1`. */
  key: string;
  /** DiffSim: the image side and the step (an index into the PNDM list) with its timestep t. */
  size?: number;
  step?: number;
  t?: number;
  /** DiffSim: the U-Net block; the ViTs and DiT have none. */
  block?: string;
  /** Index in the block list (DiffSim), the DiT block or the encoder layer (ViTs). */
  layer: number;
  /** DiffSim on SDXL: the list-valued target ([block, attention, transformer block]; mid:
   *  [attention, transformer block]). */
  target?: number[];
  /** The attention module the cell reads. */
  module: string;
}

/** One pass's embeddings of an image, by tensor name (the group's own naming), owned by the bundle. */
export type SweepTensors = Record<string, Tensor>;

/** Cells served by one pass per image and role. */
export interface SweepGroup {
  readonly label: string;
  readonly cells: readonly SweepCell[];
  /** Whether an image's embedding depends on its role (DiffSim's official noise). */
  readonly roleDependent: boolean;
  /** Whether an image's embedding depends on the prompt (DiffSim's text conditioning). */
  readonly promptDependent: boolean;
  /** Passes run so far. */
  readonly passes: number;
  /** One pass over the image: what every cell of the group compares. */
  embed(image: RgbImage, role: ImageRole, prompt: string): Promise<SweepTensors>;
  /** Every cell's score of each pair (a, b) of `bs` (the anchor as a, in role A; the candidates
   *  in role B): per b, the scores in `cells` order. */
  compare(a: SweepTensors, bs: readonly SweepTensors[], prompt: string): Promise<number[][]>;
  dispose(): void;
}

/** What a sweep reads from a loaded metric: its grid's groups. */
export interface SweepSource {
  readonly metric: string;
  /** Whether a lower score is the more similar (decides with the rule as eval does). */
  readonly groups: readonly SweepGroup[];
  /** The settings shared by every cell (for the run identity and the report). */
  readonly settings: Readonly<Record<string, unknown>>;
  /** The model, for titles. */
  readonly model: string;
  /** Where the embeddings live (spilled ones are read back onto it). */
  readonly runtime: Runtime;
}

/** The grid a user asks for; each metric takes the axes it has. */
export interface SweepGrid {
  blocks?: readonly DiffSimBlock[];
  /** Layers (within each block for DiffSim; for SDXL each expands to every [attention,
   *  transformer block] of that sub-block; DiT blocks); 'all' = every layer the model has. */
  layers?: readonly number[] | 'all';
  steps?: readonly number[];
  sizes?: readonly number[];
  /** SDXL only, instead of `layers`: these official targets in each block ([block, attention,
   *  transformer block]; mid: [attention, transformer block]). */
  targets?: readonly (readonly number[])[];
}

export type SweepSourceFactory = (metric: Metric, grid: SweepGrid) => SweepSource;

/** The metrics that can be swept, by name. */
export const SWEEP_METRICS = new Map<string, SweepSourceFactory>();

/** Adds a metric to the sweep (a factory turning its loaded Metric and the grid into groups). */
export function registerSweepMetric(name: string, factory: SweepSourceFactory): void {
  SWEEP_METRICS.set(name, factory);
}

/** The default steps: the paper's grid, which holds every benchmark's preset step. */
export const DEFAULT_SWEEP_STEPS: readonly number[] = [300, 400, 500, 600, 700, 800, 900];

// ---------------------------------------------------------------------------------------------
// DiffSim (S and C): one group per (size, step); cells in the order the U-Net runs them.

const BLOCK_ORDER: Record<DiffSimBlock, number> = { down: 0, mid: 1, up: 2 };

/** A DiffSim cell: SD1.5's (block, layer), or SDXL's with its full target. */
interface Spec {
  block: DiffSimBlock;
  layer: number;
  target?: number[];
}

function compareTargets(a: readonly number[] | undefined, b: readonly number[] | undefined): number {
  const x = a ?? [];
  const y = b ?? [];
  for (let i = 0; i < Math.max(x.length, y.length); i++) if ((x[i] ?? -1) !== (y[i] ?? -1)) return (x[i] ?? -1) - (y[i] ?? -1);
  return 0;
}

/** SDXL: every official target within sub-block `layer` of `block` (mid: the mid block, layer
 *  0): each [attention, transformer block], in the order the U-Net runs them. */
function xlTargets(ds: DiffSim, block: DiffSimBlock, layer: number): number[][] {
  const u = ds.models.unet;
  const list = block === 'down' ? u.down_blocks.slice(1) : block === 'up' ? u.up_blocks.slice(0, -1) : [u.mid_block];
  const name = block === 'down' ? 'down_blocks[1:]' : block === 'up' ? 'up_blocks[:-1]' : 'mid_block';
  const b = list[layer];
  if (!Number.isInteger(layer) || !b) throw new DiffSimSettingsError(`sweep: block "${block}" has no layer ${layer}: ${name} of this SDXL U-Net has ${list.length === 1 ? 'only layer 0' : `layers 0–${list.length - 1}`}`);
  const out: number[][] = [];
  b.attentions.forEach((a, ai) => a.transformer_blocks.forEach((_, ti) => out.push(block === 'mid' ? [ai, ti] : [layer, ai, ti])));
  return out;
}

function blockLayers(ds: DiffSim, block: DiffSimBlock): number {
  const u = ds.models.unet;
  return block === 'down' ? u.down_blocks.length - 1 : block === 'up' ? u.up_blocks.length - 1 : 1;
}

/** The settings input a resolved DiffSim was made from (every setting, layer honoured). */
function inputOf(ds: DiffSim): DiffSimSettingsInput {
  const s = ds.settings as unknown as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(DIFFSIM_DEFAULTS)) out[k] = s[k];
  out.layerMode = 'as-given';
  return out as DiffSimSettingsInput;
}

class DiffSimGroup implements SweepGroup {
  readonly label: string;
  readonly cells: SweepCell[];
  readonly roleDependent: boolean;
  readonly promptDependent = true;
  /** Per prompt: the pass metric (the deepest cell's) and one metric per cell (for compare). */
  private readonly byPrompt = new Map<string, { pass: DiffSim; cells: DiffSim[] }>();
  private readonly specs: Spec[];
  passes = 0;

  constructor(
    private readonly base: DiffSim,
    private readonly input: DiffSimSettingsInput,
    readonly size: number,
    readonly step: number,
    specs: Spec[],
  ) {
    // In the order the U-Net runs them: the last is the deepest (the pass stops after it).
    this.specs = [...specs].sort((x, y) => BLOCK_ORDER[x.block] - BLOCK_ORDER[y.block] || x.layer - y.layer || compareTargets(x.target, y.target));
    const probe = this.metricsFor(base.settings.prompt);
    this.cells = probe.cells.map((d) => ({
      key: `size ${size} · step ${step} · ${d.settings.block} ${d.settings.target ? `[${d.settings.target.join(', ')}]` : d.settings.layer}`,
      size,
      step,
      t: d.settings.t,
      block: d.settings.block,
      layer: d.settings.layer,
      ...(d.settings.target ? { target: [...d.settings.target] } : {}),
      module: d.settings.module,
    }));
    this.roleDependent = base.settings.noise === 'official-4-draws';
    this.label = `size ${size} · step ${step} (t ${probe.pass.settings.t})`;
  }

  private metricsFor(prompt: string): { pass: DiffSim; cells: DiffSim[] } {
    let m = this.byPrompt.get(prompt);
    if (!m) {
      const cells = this.specs.map(({ block, layer, target }) => new DiffSim(this.base.rt, this.base.models, { ...this.input, prompt, block, layer, ...(target ? { target } : {}), step: this.step, imageSize: this.size }));
      m = { pass: cells[cells.length - 1]!, cells };
      // Few prompts at once: each keeps its text states on the GPU.
      if (this.byPrompt.size >= 8) {
        const [oldest, old] = this.byPrompt.entries().next().value!;
        old.pass.dispose();
        this.byPrompt.delete(oldest);
      }
      this.byPrompt.set(prompt, m);
    }
    return m;
  }

  async embed(image: RgbImage, role: ImageRole, prompt: string): Promise<SweepTensors> {
    const m = this.metricsFor(prompt);
    const s = m.pass.settings;
    const names = m.cells.map((d) => hookTaps(d.settings.variant, d.settings.module));
    const extra = names.slice(0, -1).flatMap((n) => [n.q, n.k, n.v]);
    // The deepest cell's pass records the shallower cells' q/k/v on its way and stops after it.
    const e = m.pass.embed(image, s.noise === 'official-4-draws' ? role : 'A', { taps: extra, tapsBeforeHook: true });
    this.passes++;
    const out: SweepTensors = {};
    m.cells.forEach((d, i) => {
      const last = i === m.cells.length - 1;
      const n = names[i]!;
      out[`${i}.q`] = last ? e.q : e.taps.get(n.q)!;
      out[`${i}.k`] = last ? e.k : e.taps.get(n.k)!;
      out[`${i}.v`] = last ? e.v : e.taps.get(n.v)!;
    });
    // The bundle owns every tensor now (the embedding object is not disposed).
    return out;
  }

  async compare(a: SweepTensors, bs: readonly SweepTensors[], prompt: string): Promise<number[][]> {
    const m = this.metricsFor(prompt);
    const wrap = (x: SweepTensors, i: number, role: ImageRole) => {
      const d = m.cells[i]!;
      return new DiffSimEmbedding(role, d.embeddingSettings, d.key, x[`${i}.q`]!, x[`${i}.k`]!, x[`${i}.v`]!, 'generator');
    };
    // Every cell and candidate in one read-back; each score is the cell's DiffSim.compare.
    const pairs = bs.flatMap((b) => m.cells.map((metric, i) => ({ metric, a: wrap(a, i, 'A'), b: wrap(b, i, 'B') })));
    const flat = await DiffSim.compareBatch(pairs);
    return bs.map((_, j) => flat.slice(j * m.cells.length, (j + 1) * m.cells.length));
  }

  dispose(): void {
    for (const m of this.byPrompt.values()) m.pass.dispose();
    this.byPrompt.clear();
  }
}

function diffsimSource(metric: Metric, grid: SweepGrid): SweepSource {
  if (!(metric instanceof DiffSimPairMetric)) throw new DiffSimSettingsError(`sweep: ${metric.name} is not a DiffSim metric`);
  const ds = metric.diffsim;
  const input = inputOf(ds);
  const blocks = grid.blocks ?? ['up'];
  const specs: Spec[] = [];
  const isXl = ds.models.xl !== undefined;
  if (grid.targets && !isXl) throw new DiffSimSettingsError('sweep: targets apply to SDXL (diffsim-xl) only; give layers');
  if (grid.targets && grid.layers !== undefined) throw new DiffSimSettingsError('sweep: give either layers or targets, not both');
  for (const block of blocks) {
    if (grid.targets) {
      for (const t of grid.targets) {
        // Resolved as the cell's DiffSim resolves it (refused naming the range, before any pass).
        const target = resolveXlHook(ds.models.unet, block, t, 'attn1').target;
        specs.push({ block, layer: block === 'mid' ? 0 : target[0]!, target });
      }
      continue;
    }
    const n = blockLayers(ds, block);
    const layers = grid.layers === undefined || grid.layers === 'all' ? Array.from({ length: n }, (_, i) => i) : grid.layers;
    for (const layer of layers) {
      // Refused here, naming the range, before any pass.
      if (isXl) for (const target of xlTargets(ds, block, layer)) specs.push({ block, layer, target });
      else {
        resolveHook(ds.models.unet, block, layer, ds.settings.variant === 'S' ? 'attn1' : 'attn2');
        specs.push({ block, layer });
      }
    }
  }
  if (!specs.length) throw new DiffSimSettingsError('sweep: the grid has no layers');
  const sizes = grid.sizes ?? [ds.settings.imageSize];
  const steps = grid.steps ?? DEFAULT_SWEEP_STEPS;
  const groups: SweepGroup[] = [];
  for (const size of sizes) for (const step of steps) groups.push(new DiffSimGroup(ds, input, size, step, specs));
  const { block: _b, layer: _l, step: _s, imageSize: _i, layerMode: _m, prompt: _p, target: _t, ...shared } = input as Record<string, unknown>;
  return { metric: metric.name, groups, settings: shared, model: ds.modelName, runtime: ds.rt };
}

// ---------------------------------------------------------------------------------------------
// DiffSim on DiT: one group per (size, step); the cells are DiT blocks, whose attentions one pass
// records in order (stopping after the deepest). DiT has no U-Net blocks, and the prompt does not
// enter (the official DiT path ignores it).

class DitGroup implements SweepGroup {
  readonly label: string;
  readonly cells: SweepCell[];
  readonly roleDependent: boolean;
  readonly promptDependent = false;
  /** One metric per cell (layers ascending); the last one's pass serves them all. */
  private readonly metrics: DiffSimDiT[];
  passes = 0;

  constructor(base: DiffSimDiT, shared: DiffSimSettingsInput, own: DitSettingsInput, size: number, step: number, layers: readonly number[]) {
    this.metrics = [...layers].sort((a, b) => a - b).map((layer) => new DiffSimDiT(base.rt, base.models, { ...shared, layer, step, imageSize: size }, own));
    this.cells = this.metrics.map((d) => ({ key: `size ${d.settings.imageSize} · step ${step} · layer ${d.settings.layer}`, size: d.settings.imageSize, step, t: d.settings.tModel, layer: d.settings.layer, module: d.settings.module }));
    this.roleDependent = base.settings.noise === 'official-4-draws';
    this.label = `size ${size} · step ${step}`;
  }

  async embed(image: RgbImage, role: ImageRole): Promise<SweepTensors> {
    const pass = this.metrics[this.metrics.length - 1]!;
    const extra = this.metrics.slice(0, -1).flatMap((d) => ['q', 'k', 'v'].map((n) => `${d.settings.module}.${n}`));
    const e = pass.embed(image, this.roleDependent ? role : 'A', { taps: extra });
    this.passes++;
    const out: SweepTensors = {};
    this.metrics.forEach((d, i) => {
      const last = i === this.metrics.length - 1;
      for (const n of ['q', 'k', 'v'] as const) out[`${i}.${n}`] = last ? e[n] : e.taps.get(`${d.settings.module}.${n}`)!;
    });
    return out;
  }

  async compare(a: SweepTensors, bs: readonly SweepTensors[]): Promise<number[][]> {
    const wrap = (x: SweepTensors, i: number, role: ImageRole) => {
      const d = this.metrics[i]!;
      return new DiffSimEmbedding(role, d.embeddingSettings, d.key, x[`${i}.q`]!, x[`${i}.k`]!, x[`${i}.v`]!, 'generator');
    };
    const out: number[][] = [];
    for (const b of bs) {
      const row: number[] = [];
      for (let i = 0; i < this.metrics.length; i++) row.push(await this.metrics[i]!.compare(wrap(a, i, 'A'), wrap(b, i, 'B')));
      out.push(row);
    }
    return out;
  }

  dispose(): void {}
}

function ditSource(metric: Metric, grid: SweepGrid): SweepSource {
  if (!(metric instanceof DiTPairMetric)) throw new DiffSimSettingsError(`sweep: ${metric.name} is not DiffSim on DiT`);
  if (grid.targets) throw new DiffSimSettingsError('sweep: targets apply to SDXL (diffsim-xl) only; the DiT layers are its blocks');
  if (grid.blocks) throw new DiffSimSettingsError('sweep: --blocks does not apply to diffsim-dit (its layers are the DiT blocks; give --layers)');
  const d = metric.dit;
  const n = d.models.dit.blocks.length;
  const layers = grid.layers === undefined || grid.layers === 'all' ? Array.from({ length: n }, (_, i) => i) : [...grid.layers];
  for (const l of layers) if (!Number.isInteger(l) || l < 0 || l >= n) throw new DiffSimSettingsError(`sweep: layer ${l}: the DiT has blocks 0–${n - 1}`);
  if (!layers.length) throw new DiffSimSettingsError('sweep: the grid has no layers');
  const s = d.settings as unknown as Record<string, unknown>;
  const shared = Object.fromEntries(DIT_SHARED_SETTINGS.map((k) => [k, s[k]])) as DiffSimSettingsInput;
  const own = Object.fromEntries(Object.keys(DIT_DEFAULTS).map((k) => [k, s[k]])) as DitSettingsInput;
  const sizes = grid.sizes ?? [d.settings.imageSize];
  const steps = grid.steps ?? DEFAULT_SWEEP_STEPS;
  const groups: SweepGroup[] = [];
  for (const size of sizes) for (const step of steps) groups.push(new DitGroup(d, shared, own, size, step, layers));
  const { step: _s, layer: _l, imageSize: _i, ...common } = { ...shared, ...own } as Record<string, unknown>;
  return { metric: metric.name, groups, settings: common, model: d.modelName, runtime: d.rt };
}

// ---------------------------------------------------------------------------------------------
// CLIP AAS and DINOv2 AAS: one encoder pass records every layer; one group.

class VisionGroup implements SweepGroup {
  readonly label = 'encoder layers';
  readonly roleDependent = false;
  readonly promptDependent = false;
  readonly cells: SweepCell[];
  passes = 0;
  constructor(
    private readonly m: VisionPairMetric,
    private readonly layers: readonly number[],
  ) {
    this.cells = layers.map((layer) => ({ key: `layer ${layer}`, layer, module: m.vision.attentionLayout(224, 224, layer).module }));
  }
  async embed(image: RgbImage): Promise<SweepTensors> {
    const e = this.m.vision.embed(image, this.layers);
    this.passes++;
    const out: SweepTensors = { global: e.global };
    for (const [l, x] of e.layers) for (const n of ['q', 'k', 'v', 'feature'] as const) out[`${l}.${n}`] = x[n];
    return out;
  }
  private wrap(x: SweepTensors): VisionEmbedding {
    const layers = new Map<number, VisionLayerEmbedding>(this.layers.map((l) => [l, { q: x[`${l}.q`]!, k: x[`${l}.k`]!, v: x[`${l}.v`]!, feature: x[`${l}.feature`]! }]));
    return new VisionEmbedding(this.m.vision.kind, x.global!, layers);
  }
  async compare(a: SweepTensors, bs: readonly SweepTensors[]): Promise<number[][]> {
    const out: number[][] = [];
    for (const b of bs) {
      const s = await this.m.vision.compare(this.wrap(a), this.wrap(b));
      out.push(this.layers.map((l) => s.layers.find((x) => x.layer === l)!.aas.cosine));
    }
    return out;
  }
  dispose(): void {}
}

function visionSource(metric: Metric, grid: SweepGrid): SweepSource {
  if (!(metric instanceof VisionPairMetric) || !metric.name.endsWith('-aas')) throw new DiffSimSettingsError(`sweep: ${metric.name} is not an AAS metric of a ViT`);
  if (grid.blocks || grid.steps || grid.sizes || grid.targets) throw new DiffSimSettingsError(`sweep: ${metric.name} has encoder layers only (no blocks, steps or sizes)`);
  const n = metric.vision.numLayers;
  const layers = grid.layers === undefined || grid.layers === 'all' ? Array.from({ length: n }, (_, i) => i) : [...grid.layers];
  for (const l of layers) if (!Number.isInteger(l) || l < 0 || l >= n) throw new DiffSimSettingsError(`sweep: layer ${l}: the ${metric.name.startsWith('clip') ? 'CLIP' : 'DINOv2'} encoder has ${n} layers (0–${n - 1})`);
  const { layer: _l, ...shared } = metric.settings as Record<string, unknown>;
  const models = (metric.settings as { models?: Record<string, { spec?: string }> }).models;
  return { metric: metric.name, groups: [new VisionGroup(metric, layers)], settings: shared, model: Object.values(models ?? {})[0]?.spec ?? metric.vision.kind, runtime: metric.runtime };
}

registerSweepMetric('diffsim', diffsimSource);
registerSweepMetric('diffsim-c', diffsimSource);
registerSweepMetric('diffsim-xl', diffsimSource);
registerSweepMetric('diffsim-dit', ditSource);
registerSweepMetric('clip-aas', visionSource);
registerSweepMetric('dino-aas', visionSource);

/** The sweep source of a loaded metric. */
export function sweepSource(metric: Metric, grid: SweepGrid): SweepSource {
  const f = SWEEP_METRICS.get(metric.name);
  if (!f) throw new DiffSimSettingsError(`sweep: the metric ${metric.name} has no layer grid (sweepable: ${[...SWEEP_METRICS.keys()].join(', ')})`);
  return f(metric, grid);
}

// ---------------------------------------------------------------------------------------------
// Rows and the run.

/** An eval row of one cell. */
export interface SweepRow extends ResultRow {
  /** SweepCell.key. */
  cell: string;
  size?: number;
  step?: number;
  t?: number;
  block?: string;
  layer: number;
  target?: number[];
  module: string;
  /** The identity of the whole sweep (benchmark, data, models, shared settings): rows of other
   *  sweeps are refused. `run` is the cell's own identity. */
  sweep: string;
}

export interface SweepCellResult extends Omit<SweepCell, 'key'> {
  cell: string;
  summary: Summary;
}

export interface SweepRunOptions {
  benchmark: BenchmarkName;
  items: readonly EvalItem[];
  of: number;
  dir: string;
  originals?: string;
  source: SweepSource;
  rule: DecisionRule;
  ties?: TieRule;
  prompt?: string;
  /** The sweep's identity (the settings shared by the cells; see SweepRow.sweep). */
  sweep: string;
  /** This machine's origin (as eval's): rows of other data or models are refused on resume. */
  origin?: string;
  out?: string;
  /** Embedding bundles (one image, role and prompt, every cell of a group) on the GPU at once (default 48). */
  maxLive?: number;
  /** Where bundles beyond maxLive go (default a new folder under the system's temporary folder, removed at the end). */
  spillDir?: string;
  onRow?: (row: SweepRow) => void;
  onGroup?: (group: SweepGroup, index: number, count: number) => void;
}

export interface SweepMemory {
  /** Most bundles on the GPU at once, and their bytes. */
  peakLive: number;
  peakLiveBytes: number;
  /** Bundles written to the spill folder, and the most bytes it held at once. */
  spilled: number;
  peakSpillBytes: number;
}

export interface SweepRunResult {
  cells: SweepCellResult[];
  rows: SweepRow[];
  /** Passes run (one per image, role and prompt, per group). */
  passes: number;
  computed: number;
  resumed: number;
  memory: SweepMemory;
  seconds: number;
}

interface Use {
  role: ImageRole;
  path: string;
  prompt: string;
}

const bytesOf = (t: SweepTensors) => Object.values(t).reduce((a, x) => a + x.numel * 4, 0);

/** Bundles of one group by (role, path, prompt), from first use to last; spilled to disk beyond maxLive. */
class BundlePlan {
  private readonly uses = new Map<string, number[]>();
  private readonly live = new Map<string, SweepTensors>();
  private readonly spilled = new Map<string, { file: string; bytes: number }>();
  private spillBytes = 0;
  private images = new Map<string, RgbImage>();
  private folder: string | undefined;

  constructor(
    private readonly group: SweepGroup,
    private readonly maxLive: number,
    private readonly spillDir: string | undefined,
    private readonly memory: SweepMemory,
    private readonly runtime: Runtime,
  ) {}

  key(u: Use): string {
    const role = this.group.roleDependent ? u.role : '-';
    const text = this.group.promptDependent ? u.prompt : undefined;
    return `${role}\u0000${text ?? ''}\u0000${u.path}`;
  }
  plan(position: number, u: Use): void {
    const k = this.key(u);
    const list = this.uses.get(k);
    if (list) {
      if (list[list.length - 1] !== position) list.push(position);
    } else this.uses.set(k, [position]);
  }
  private nextUse(k: string, position: number): number {
    for (const p of this.uses.get(k) ?? []) if (p > position) return p;
    return Infinity;
  }
  private async image(path: string): Promise<RgbImage> {
    let img = this.images.get(path);
    if (!img) {
      img = await toRgbImage(path);
      if (this.images.size >= 8) this.images.delete(this.images.keys().next().value!);
      this.images.set(path, img);
    }
    return img;
  }

  async get(position: number, u: Use): Promise<SweepTensors> {
    const k = this.key(u);
    const have = this.live.get(k);
    if (have) return have;
    let t: SweepTensors;
    const s = this.spilled.get(k);
    if (s) {
      t = await this.readSpill(s.file);
      rmSync(s.file, { force: true });
      this.spilled.delete(k);
      this.spillBytes -= s.bytes;
    } else t = await this.group.embed(await this.image(u.path), u.role, u.prompt);
    this.live.set(k, t);
    this.note();
    await this.evict(position, k);
    return t;
  }

  private note(): void {
    this.memory.peakLive = Math.max(this.memory.peakLive, this.live.size);
    let bytes = 0;
    for (const t of this.live.values()) bytes += bytesOf(t);
    this.memory.peakLiveBytes = Math.max(this.memory.peakLiveBytes, bytes);
  }

  private async evict(position: number, keep: string): Promise<void> {
    while (this.live.size > this.maxLive) {
      let worst: string | undefined;
      let worstNext = -1;
      for (const k of this.live.keys()) {
        if (k === keep || this.uses.get(k)?.includes(position)) continue;
        const n = this.nextUse(k, position);
        if (n > worstNext) {
          worst = k;
          worstNext = n;
        }
      }
      if (worst === undefined) return;
      const t = this.live.get(worst)!;
      this.live.delete(worst);
      if (worstNext !== Infinity) await this.writeSpill(worst, t);
      for (const x of Object.values(t)) x.dispose();
    }
  }

  private async writeSpill(k: string, t: SweepTensors): Promise<void> {
    this.folder ??= mkdtempSync(join(this.spillDir ?? tmpdir(), 'diffsim-sweep-'));
    const tensors: Record<string, { dtype: 'F32'; shape: readonly number[]; data: Float32Array }> = {};
    for (const [n, x] of Object.entries(t)) tensors[n] = { dtype: 'F32', shape: x.shape, data: (await x.read()) as Float32Array };
    const bytes = encodeSafetensors(tensors);
    const file = join(this.folder, `${this.spilled.size}-${Math.random().toString(36).slice(2)}.safetensors`);
    writeFileSync(file, bytes);
    this.spilled.set(k, { file, bytes: bytes.byteLength });
    this.spillBytes += bytes.byteLength;
    this.memory.spilled++;
    this.memory.peakSpillBytes = Math.max(this.memory.peakSpillBytes, this.spillBytes);
  }

  private async readSpill(file: string): Promise<SweepTensors> {
    const f = await SafetensorsFile.open(blobSource(new Uint8Array(readFileSync(file)), file));
    const out: SweepTensors = {};
    try {
      for (const n of f.names()) {
        const { shape, data } = await f.readFloat32(n);
        out[n] = this.runtime.upload(data, shape).keep();
      }
    } finally {
      await f.close();
    }
    return out;
  }

  release(position: number): void {
    for (const [k, t] of this.live) {
      if (this.nextUse(k, position) === Infinity) {
        for (const x of Object.values(t)) x.dispose();
        this.live.delete(k);
      }
    }
  }

  dispose(): void {
    for (const t of this.live.values()) for (const x of Object.values(t)) x.dispose();
    this.live.clear();
    if (this.folder) rmSync(this.folder, { recursive: true, force: true });
    this.spilled.clear();
  }
}

/** The sweep's identity of one cell (the row's `run`). */
export function cellRunId(sweep: string, cell: SweepCell): string {
  return runId({ sweep, cell: cell.key, module: cell.module });
}

/** Runs the items through every cell of the source's grid. */
export async function runSweep(o: SweepRunOptions): Promise<SweepRunResult> {
  const started = performance.now();
  const unlock = o.out ? await lockResults(o.out) : undefined;
  try {
    return await runLocked(o, started);
  } finally {
    await unlock?.();
  }
}

async function runLocked(o: SweepRunOptions, started: number): Promise<SweepRunResult> {
  const selection = new Set(o.items.map((i) => i.item));
  const cells = o.source.groups.flatMap((g) => g.cells);
  const runs = new Map(cells.map((c) => [c.key, cellRunId(o.sweep, c)]));
  // (cell, item) → row already in the file.
  const done = new Map<string, SweepRow>();
  if (o.out) {
    const out = o.out;
    resumeRowsWith(out, (r, no) => {
      const row = r as SweepRow;
      if (row.sweep !== o.sweep) throw new ResultsError(`${out}: written by another sweep or an eval run (other benchmark, dataset, metric or settings: ${row.sweep ?? 'no sweep'}, this one ${o.sweep}); give another --out`);
      if (o.origin !== undefined && row.origin !== o.origin) throw new ResultsError(`${out}:${no}: item ${row.item} was made from other data or models (origin ${row.origin ?? 'none'}, this run's ${o.origin}); give another --out`);
      if (!selection.has(row.item)) throw new ResultsError(`${out}: holds item ${row.item}, which is not in this run's selection (another --shard?); give another --out`);
      // Rows of cells outside this grid stay in the file (a wider grid reads them again).
      if (runs.get(row.cell) !== row.run) return;
      const k = `${row.cell}\u0000${row.item}`;
      const seen = done.get(k);
      if (seen && (seen.s1 !== row.s1 || seen.s2 !== row.s2)) throw new ResultsError(`${out}: item ${row.item} of cell ${row.cell} appears twice with different scores`);
      done.set(k, row);
    });
  }
  const resumed = done.size;
  const memory: SweepMemory = { peakLive: 0, peakLiveBytes: 0, spilled: 0, peakSpillBytes: 0 };
  const writer = o.out ? new RowWriter(o.out) : null;
  const computed: SweepRow[] = [];
  let passes = 0;
  try {
    for (const [gi, group] of o.source.groups.entries()) {
      o.onGroup?.(group, gi, o.source.groups.length);
      const todo = o.items.filter((i) => group.cells.some((c) => !done.has(`${c.key}\u0000${i.item}`)));
      const plan = new BundlePlan(group, o.maxLive ?? 48, o.spillDir, memory, o.source.runtime);
      const uses = todo.map((item) => {
        const p = itemPaths(item, o.dir, o.originals !== undefined ? { originals: o.originals } : {});
        const prompt = o.prompt ?? item.prompt;
        return { anchor: { role: 'A' as const, path: p.anchor, prompt }, cand1: { role: 'B' as const, path: p.cand1, prompt }, cand2: { role: 'B' as const, path: p.cand2, prompt } };
      });
      uses.forEach((u, pos) => {
        for (const x of [u.anchor, u.cand1, u.cand2]) plan.plan(pos, x);
      });
      const before = group.passes;
      try {
        for (let pos = 0; pos < todo.length; pos++) {
          const item = todo[pos]!;
          const u = uses[pos]!;
          const ea = await plan.get(pos, u.anchor);
          const e1 = await plan.get(pos, u.cand1);
          const e2 = await plan.get(pos, u.cand2);
          const [s1, s2] = (await group.compare(ea, [e1, e2], u.anchor.prompt)) as [number[], number[]];
          plan.release(pos);
          group.cells.forEach((c, ci) => {
            if (done.has(`${c.key}\u0000${item.item}`)) return;
            const d = decide(o.benchmark, o.rule, item, s1[ci]!, s2[ci]!, o.ties ?? 'strict');
            const twice = o.benchmark === 'cute' || o.benchmark === 'sref' || o.benchmark === 'instantstyle' ? { twice: decide2x(o.benchmark, o.rule, s1[ci]!, s2[ci]!) } : {};
            const { key, ...where } = c;
            const row: SweepRow = {
              benchmark: o.benchmark,
              metric: o.source.metric,
              item: item.item,
              anchor: item.anchor,
              cand1: item.cand1,
              cand2: item.cand2,
              prompt: u.anchor.prompt,
              ...(item.label !== undefined ? { label: item.label } : {}),
              ...(item.anchorRoot ? { anchorRoot: item.anchorRoot } : {}),
              truth: item.truth,
              s1: s1[ci]!,
              s2: s2[ci]!,
              ...d,
              ...twice,
              cell: key,
              ...where,
              sweep: o.sweep,
              run: runs.get(key)!,
              ...(o.origin !== undefined ? { origin: o.origin } : {}),
              of: o.of,
            };
            writer?.write(row);
            computed.push(row);
            o.onRow?.(row);
          });
        }
      } finally {
        plan.dispose();
        passes += group.passes - before;
        group.dispose();
      }
    }
  } finally {
    writer?.close();
    // Groups not reached (an error ended the run) free their metrics' text states too.
    for (const g of o.source.groups) g.dispose();
  }
  const rows = [...done.values(), ...computed];
  return { cells: summarizeCells(cells, rows), rows, passes, computed: computed.length, resumed, memory, seconds: (performance.now() - started) / 1000 };
}

/** Each cell's summary (cells in grid order), from rows of any order. */
export function summarizeCells(cells: readonly SweepCell[], rows: readonly SweepRow[]): SweepCellResult[] {
  const by = new Map<string, SweepRow[]>();
  for (const r of rows) {
    let l = by.get(r.cell);
    if (!l) by.set(r.cell, (l = []));
    l.push(r);
  }
  return cells.map(({ key, ...where }) => ({ cell: key, ...where, summary: summarize((by.get(key) ?? []).sort((a, b) => a.item - b.item), `cell ${key}`) }));
}

/** The cells of sweep rows (`--merge`): every file's rows, one sweep, grouped by cell. */
export function mergeSweepFiles(files: readonly string[]): { cells: SweepCellResult[]; rows: SweepRow[] } {
  if (!files.length) throw new ResultsError('--merge needs at least one results file');
  const rows = files.flatMap((f) => readRows(f)) as SweepRow[];
  if (!rows.length) throw new ResultsError(`${files.join(', ')}: no rows`);
  const sweep = rows[0]!.sweep;
  for (const r of rows) {
    if (typeof r.cell !== 'string' || r.sweep === undefined) throw new ResultsError(`${files.join(', ')}: not sweep rows (no cell; eval's files merge with eval --merge)`);
    if (r.sweep !== sweep) throw new ResultsError(`${files.join(', ')}: rows of different sweeps (${sweep} and ${r.sweep})`);
  }
  const cells = new Map<string, SweepCell>();
  for (const r of rows) {
    if (!cells.has(r.cell)) {
      cells.set(r.cell, {
        key: r.cell,
        ...(r.size !== undefined ? { size: r.size } : {}),
        ...(r.step !== undefined ? { step: r.step } : {}),
        ...(r.t !== undefined ? { t: r.t } : {}),
        ...(r.block !== undefined ? { block: r.block } : {}),
        layer: r.layer,
        ...(r.target !== undefined ? { target: r.target } : {}),
        module: r.module,
      });
    }
  }
  const order = [...cells.values()].sort((a, b) => (a.size ?? 0) - (b.size ?? 0) || (a.step ?? 0) - (b.step ?? 0) || BLOCK_ORDER[(a.block ?? 'down') as DiffSimBlock] - BLOCK_ORDER[(b.block ?? 'down') as DiffSimBlock] || a.layer - b.layer || compareTargets(a.target, b.target));
  return { cells: summarizeCells(order, rows), rows };
}

/** The best cell (highest accuracy; the first in grid order among equals). */
export function bestCell(cells: readonly SweepCellResult[]): SweepCellResult | undefined {
  let best: SweepCellResult | undefined;
  for (const c of cells) if (!best || c.summary.accuracy > best.summary.accuracy) best = c;
  return best;
}
