// The metric family behind one interface, pyiqa-style, on models from any source (see
// MetricModelSource): an object that embeds images (encoded bytes, decoded images, paths where a
// reader is given) and compares embeddings, with `lowerBetter` saying which way the score points.
// DreamSim's convention holds too: `metric.score(a, b)` is the pair score, `metric.embed(x)` one
// image's embedding. metric.ts loads the models from folders and hub ids (`createMetric`).
//
// An embedding may depend on the image's role in a pair: with the official DiffSim noise, image A
// of a pair always gets draws 1 and 3 and image B draws 2 and 4 (`roleDependent`), so
// score(a, b) = compare(embed(a, 'A'), embed(b, 'B')). The CLIP/DINOv2 metrics and DiffSim with
// shared noise ignore the role.

import type { Runtime } from '../gpu/runtime.js';
import { blobSource } from '../io/bytesource.js';
import { decodeImage, type RgbImage } from '../io/image.js';
import { encodeSafetensors, SafetensorsFile } from '../io/safetensors.js';
import type { LoadRole } from '../io/events.js';
import type { WeightPrecision } from '../nn/weights.js';
import type { ActivationDType } from '../kernels/common.js';
import { DiffSim, type DiffSimExecution, type DiffSimModels } from './core.js';
import type { AasOutputs, AttentionLayout } from './aas.js';
import { DiffSimEmbedding, type ImageRole } from './embedding.js';
import { DiffSimSettingsError, mergeSettings, presetSettings, type DiffSimPresetName, type DiffSimSettingsInput } from './settings.js';
import { ClipMetric, type Dinov2Metric, VisionEmbedding } from './vision.js';

/** Every metric `createMetric` builds. */
export const METRIC_NAMES = ['diffsim', 'diffsim-c', 'clip-aas', 'dino-aas', 'clip', 'dino', 'clipfeats', 'dinofeats', 'diffeats'] as const;
export type MetricName = (typeof METRIC_NAMES)[number];

/** The default models: hub ids (a local folder given instead is used as it is). */
export const DEFAULT_MODELS = Object.freeze({
  model: 'stable-diffusion-v1-5/stable-diffusion-v1-5',
  ipAdapter: 'h94/IP-Adapter',
  clipModel: 'openai/clip-vit-base-patch32',
  dinoModel: 'facebook/dinov2-small',
});

/** An image: a file path (Node/Deno), the encoded bytes of a PNG/JPEG/BMP, or decoded pixels. */
export type ImageInput = string | Uint8Array | ArrayBuffer | RgbImage;

/** Reads an image file by path (Node/Deno); absent where there is no file system. */
export type ImagePathReader = (path: string) => Promise<RgbImage>;

/** Decodes an image input: bytes are decoded, pixels pass through, a path is read by `readPath`. */
export async function decodeImageInput(input: ImageInput, name = 'image', readPath?: ImagePathReader): Promise<RgbImage> {
  if (typeof input === 'string') {
    if (!readPath) throw new TypeError(`${name}: ${JSON.stringify(input)} is a file path, which only Node and Deno can read; pass the encoded bytes (Uint8Array/ArrayBuffer) or an RgbImage`);
    return readPath(input);
  }
  if (input instanceof Uint8Array) return decodeImage(input, name);
  if (input instanceof ArrayBuffer) return decodeImage(new Uint8Array(input), name);
  if (input && typeof input === 'object' && input.data instanceof Uint8Array && Number.isInteger(input.width) && Number.isInteger(input.height)) {
    if (input.data.length !== input.width * input.height * 3) throw new RangeError(`${name}: ${input.width}×${input.height} RGB pixels need ${input.width * input.height * 3} bytes, got ${input.data.length}`);
    return input;
  }
  throw new TypeError(`${name}: expected ${readPath ? 'a file path, ' : ''}encoded image bytes or an RgbImage ({ width, height, data: Uint8Array })`);
}

/** A model a metric uses: what was asked for, the folder it resolved to, its hub commit if cached. */
export interface ResolvedModel {
  spec: string;
  path: string;
  commit?: string;
}

/** Which model of a metric a load event is about. */
export type ModelRole = LoadRole;

/** The settings of the metrics a call builds (what does not concern where the models come from). */
export interface MetricSettingsOptions {
  /** DiffSim settings (diffsim, diffsim-c, diffeats) over the preset's; the defaults otherwise
   *  ({@link DIFFSIM_DEFAULTS}). */
  diffsim?: DiffSimSettingsInput;
  /** A named preset of DiffSim settings ({@link DIFFSIM_PRESETS}: the official per-benchmark
   *  settings, e.g. 'nights' = step 500); `diffsim` settings override it. Same as `diffsim.preset`. */
  preset?: DiffSimPresetName;
  /** Encoder layer of clip-aas, dino-aas, clipfeats, dinofeats (default 0). */
  layer?: number;
  /** Linear/conv weights on the GPU (default f32). */
  weights?: WeightPrecision;
  /** The dtype of the U-Net's and VAE's activations (default f32; f16 needs the adapter's
   *  shader-f16). The text encoder and the CLIP/DINOv2 towers compute in f32. */
  activations?: ActivationDType;
  execution?: DiffSimExecution;
}

/** Where a metric family's models come from: folders on disk or the hub cache (metric.ts), or
 *  downloads and picked files (the browser entry). Each model is loaded once per source. */
export interface MetricModelSource {
  /** The model of a role: what was asked for, where it is, its commit when known. */
  resolve(role: ModelRole): Promise<ResolvedModel>;
  /** SD1.5, with the IP-Adapter and its image encoder when `withIp`. */
  diffsimModels(withIp: boolean): Promise<DiffSimModels>;
  clipMetric(): Promise<ClipMetric>;
  dinoMetric(): Promise<Dinov2Metric>;
}

/** What {@link buildMetrics} needs besides the metric names. */
export interface BuildMetricsOptions extends MetricSettingsOptions {
  runtime: Runtime;
  /** Close the runtime with the last metric. */
  ownsRuntime: boolean;
  models: MetricModelSource;
  /** How image paths are read (Node/Deno); without it only bytes and pixels are accepted. */
  readPath?: ImagePathReader;
}

/** One image's embedding under a metric. */
export interface MetricEmbedding {
  readonly metric: MetricName;
  /** The role it was embedded for ('A' unless given). */
  readonly role: ImageRole;
  /** Equal keys ⇔ embeddings of the same metric and settings (comparable, given the roles). */
  readonly key: string;
  dispose(): void;
}

/** A loaded metric. */
export interface Metric {
  readonly name: MetricName;
  /** Whether a lower score means more similar (mse). */
  readonly lowerBetter: boolean;
  /** Whether an embedding depends on the role it was made for (see the module comment). */
  readonly roleDependent: boolean;
  /** What its embeddings depend on (metric, settings, models): equal keys ⇔ comparable embeddings. */
  readonly key: string;
  readonly runtime: Runtime;
  /** The settings actually used (JSON): module, t, layer, models with their folders and commits, … */
  readonly settings: Readonly<Record<string, unknown>>;
  embed(image: ImageInput, role?: ImageRole): Promise<MetricEmbedding>;
  compare(a: MetricEmbedding, b: MetricEmbedding): Promise<number>;
  /** compare(embed(a, 'A'), embed(b, 'B')). */
  score(a: ImageInput, b: ImageInput): Promise<number>;
  /** An embedding as safetensors bytes (settings in the metadata). */
  saveEmbedding(e: MetricEmbedding): Promise<Uint8Array>;
  /** Reads `saveEmbedding`'s bytes; refuses embeddings of other metrics or settings. */
  loadEmbedding(bytes: Uint8Array, name?: string): Promise<MetricEmbedding>;
  /** Frees the metric's models (and its runtime if it created it). */
  close(): Promise<void>;
  /** The same metric with another DiffSim prompt, on the same models (the benchmark scripts
   *  condition on a prompt per item). Metrics without a prompt (CLIP, DINOv2) return themselves.
   *  The derived metric is freed with this one; its own close() does nothing. */
  withPrompt(prompt: string): Metric;
  /** The AAS metrics (diffsim, diffsim-c, clip-aas, dino-aas): the four attention outputs of a
   *  pair, O_AB, O_AA, O_BA, O_BB, merged heads [B, N, C] (the scored CFG halves; CLIP: after
   *  out_proj). Tensors of the current tidy. */
  attentionOutputs?(a: MetricEmbedding, b: MetricEmbedding): AasOutputs;
  /** The AAS metrics: where the `tokens` query tokens of `attentionOutputs` sit on a
   *  width×height image (a token count that does not fit the layout is refused). */
  attentionLayout?(width: number, height: number, tokens: number): AttentionLayout;
}

/** The lower-is-better flag of a metric under given DiffSim settings, without loading anything. */
export function lowerBetterOf(name: MetricName, settings: DiffSimSettingsInput = {}): boolean {
  return (name === 'diffsim' || name === 'diffsim-c') && mergeSettings(settings).similarity === 'mse';
}

export function assertName(name: string): asserts name is MetricName {
  if (!(METRIC_NAMES as readonly string[]).includes(name)) throw new RangeError(`createMetric: unknown metric ${JSON.stringify(name)} (one of ${METRIC_NAMES.join(', ')})`);
}

/** The models each metric loads. */
export function modelsOf(name: MetricName): ModelRole[] {
  if (name === 'diffsim' || name === 'diffeats') return ['sd'];
  if (name === 'diffsim-c') return ['sd', 'ipAdapter'];
  return name.startsWith('clip') ? ['clip'] : ['dino'];
}

const EMBEDDING_FORMAT = 'diffsim-metric-embedding';

/** What a metric's lifetime and inputs are tied to: its family's models, the image path reader. */
interface MetricOwner {
  release(): Promise<void>;
  readonly readPath?: ImagePathReader | undefined;
}

/** The owner of a derived metric (another prompt): freed with the family, not on its own. */
function detached(owner: MetricOwner): MetricOwner {
  return { release: async () => {}, readPath: owner.readPath };
}

abstract class BaseMetric<E extends MetricEmbedding> implements Metric {
  abstract readonly name: MetricName;
  abstract readonly lowerBetter: boolean;
  abstract readonly roleDependent: boolean;
  abstract readonly settings: Readonly<Record<string, unknown>>;
  constructor(
    readonly runtime: Runtime,
    protected readonly owner: MetricOwner,
  ) {}
  protected abstract embedImage(image: RgbImage, role: ImageRole): Promise<E>;
  protected abstract compareOwn(a: E, b: E): Promise<number>;
  protected abstract isOwn(e: MetricEmbedding): e is E;
  protected abstract tensorsOf(e: E): Promise<Record<string, { shape: readonly number[]; data: Float32Array }>>;
  protected abstract fromTensors(file: SafetensorsFile, role: ImageRole, meta: Record<string, string>): Promise<E>;
  /** What the embeddings depend on (equal ⇔ comparable). */
  abstract readonly key: string;
  withPrompt(_prompt: string): Metric {
    return this;
  }

  async embed(image: ImageInput, role: ImageRole = 'A'): Promise<E> {
    if (role !== 'A' && role !== 'B') throw new RangeError(`${this.name}: role must be 'A' or 'B', got ${JSON.stringify(role)}`);
    return this.embedImage(await decodeImageInput(image, 'image', this.owner.readPath), role);
  }

  async compare(a: MetricEmbedding, b: MetricEmbedding): Promise<number> {
    for (const [e, which] of [[a, 'first'], [b, 'second']] as const) {
      if (!this.isOwn(e)) throw new DiffSimSettingsError(`${this.name}: the ${which} embedding was made by ${e.metric}${e.metric === this.name ? ' with other settings' : ''}`);
    }
    return this.compareOwn(a as E, b as E);
  }

  async score(a: ImageInput, b: ImageInput): Promise<number> {
    // Both decoded first: an unreadable second image is reported before any pass runs.
    const [ia, ib] = [await decodeImageInput(a, typeof a === 'string' ? a : 'image A', this.owner.readPath), await decodeImageInput(b, typeof b === 'string' ? b : 'image B', this.owner.readPath)];
    const ea = await this.embedImage(ia, 'A');
    try {
      const eb = await this.embedImage(ib, 'B');
      try {
        return await this.compareOwn(ea, eb);
      } finally {
        eb.dispose();
      }
    } finally {
      ea.dispose();
    }
  }

  async saveEmbedding(e: MetricEmbedding): Promise<Uint8Array> {
    if (!this.isOwn(e)) throw new DiffSimSettingsError(`${this.name}: cannot save an embedding made by ${e.metric} or with other settings`);
    const tensors: Record<string, { dtype: 'F32'; shape: readonly number[]; data: Float32Array }> = {};
    for (const [name, t] of Object.entries(await this.tensorsOf(e))) tensors[name] = { dtype: 'F32', ...t };
    return encodeSafetensors(tensors, { format: EMBEDDING_FORMAT, version: '1', metric: this.name, key: this.key, role: e.role });
  }

  async loadEmbedding(bytes: Uint8Array, name = 'embedding'): Promise<E> {
    const file = await SafetensorsFile.open(blobSource(bytes, name));
    try {
      const m = file.metadata;
      if (m.format !== EMBEDDING_FORMAT) throw new DiffSimSettingsError(`${name}: not a metric embedding (metadata format ${JSON.stringify(m.format)})`);
      if (m.metric !== this.name) throw new DiffSimSettingsError(`${name}: an embedding of ${m.metric}, not ${this.name}`);
      if (m.key !== this.key) throw new DiffSimSettingsError(`${name}: made with other settings than this ${this.name} metric`);
      if (m.role !== 'A' && m.role !== 'B') throw new DiffSimSettingsError(`${name}: role ${JSON.stringify(m.role)} is not A or B`);
      return await this.fromTensors(file, m.role, m);
    } finally {
      await file.close();
    }
  }

  async close(): Promise<void> {
    await this.owner.release();
  }
}

/** The model identity part of a key: which folder (and commit) the weights came from. */
function modelKey(models: Record<string, ResolvedModel>, weights: WeightPrecision, activations: ActivationDType = 'f32'): string {
  return JSON.stringify({ models: Object.fromEntries(Object.entries(models).map(([k, m]) => [k, m.commit ?? m.path])), weights, ...(activations === 'f32' ? {} : { activations }) });
}

class DiffSimEmbeddingHandle implements MetricEmbedding {
  constructor(
    readonly metric: MetricName,
    readonly key: string,
    readonly inner: DiffSimEmbedding,
  ) {}
  get role(): ImageRole {
    return this.inner.role;
  }
  dispose(): void {
    this.inner.dispose();
  }
}

/** diffsim and diffsim-c. */
/** Makes the DiffSim of another prompt on the same models (freed with the metric family). */
type DiffSimFactory = (prompt: string) => DiffSim;

/** Derived metrics by prompt, built once. */
function promptVariant<M extends Metric>(cache: Map<string, M>, self: M, current: string, prompt: string, make: () => M): M {
  if (prompt === current) return self;
  let m = cache.get(prompt);
  if (!m) cache.set(prompt, (m = make()));
  return m;
}

class DiffSimPairMetric extends BaseMetric<DiffSimEmbeddingHandle> {
  private readonly variants = new Map<string, DiffSimPairMetric>();
  readonly lowerBetter: boolean;
  readonly roleDependent: boolean;
  readonly key: string;
  constructor(
    rt: Runtime,
    owner: MetricOwner,
    readonly name: 'diffsim' | 'diffsim-c',
    readonly diffsim: DiffSim,
    readonly settings: Readonly<Record<string, unknown>>,
    private readonly models: string,
    private readonly factory: DiffSimFactory,
  ) {
    super(rt, owner);
    this.lowerBetter = diffsim.lowerBetter;
    this.roleDependent = diffsim.settings.noise === 'official-4-draws';
    this.key = `${name} ${diffsim.key} ${models}`;
  }
  override withPrompt(prompt: string): Metric {
    return promptVariant(this.variants, this as DiffSimPairMetric, this.diffsim.settings.prompt, prompt, () => {
      const ds = this.factory(prompt);
      return new DiffSimPairMetric(this.runtime, detached(this.owner), this.name, ds, { ...this.settings, prompt }, this.models, this.factory);
    });
  }
  protected isOwn(e: MetricEmbedding): e is DiffSimEmbeddingHandle {
    return e instanceof DiffSimEmbeddingHandle && e.key === this.key;
  }
  protected async embedImage(image: RgbImage, role: ImageRole): Promise<DiffSimEmbeddingHandle> {
    return new DiffSimEmbeddingHandle(this.name, this.key, this.diffsim.embed(image, role));
  }
  protected compareOwn(a: DiffSimEmbeddingHandle, b: DiffSimEmbeddingHandle): Promise<number> {
    return this.diffsim.compare(a.inner, b.inner);
  }
  attentionOutputs(a: MetricEmbedding, b: MetricEmbedding): AasOutputs {
    if (!this.isOwn(a) || !this.isOwn(b)) throw new DiffSimSettingsError(`${this.name}: attentionOutputs needs two embeddings of this metric`);
    return this.diffsim.attentionOutputs(a.inner, b.inner);
  }
  /** The hooked layer's tokens are a square grid over the whole image: process_image squashes
   *  the image to S×S, and every U-Net feature map of a square latent is square. */
  attentionLayout(width: number, height: number, tokens: number): AttentionLayout {
    const side = Math.round(Math.sqrt(tokens));
    const module = this.diffsim.settings.module;
    if (!Number.isInteger(tokens) || tokens <= 0 || side * side !== tokens) throw new RangeError(`${this.name}: ${module} has ${tokens} query tokens, not a square grid`);
    return { module, prefix: 0, gridWidth: side, gridHeight: side, region: { x: 0, y: 0, width, height } };
  }
  protected async tensorsOf(e: DiffSimEmbeddingHandle) {
    e.inner.assertLive();
    const out: Record<string, { shape: readonly number[]; data: Float32Array }> = {};
    for (const [n, t] of [['q', e.inner.q], ['k', e.inner.k], ['v', e.inner.v]] as const) out[n] = { shape: t.shape, data: (await t.read()) as Float32Array };
    return out;
  }
  protected async fromTensors(file: SafetensorsFile, role: ImageRole): Promise<DiffSimEmbeddingHandle> {
    const up = [];
    try {
      for (const n of ['q', 'k', 'v']) {
        const { shape, data } = await file.readFloat32(n);
        up.push(this.runtime.upload(data, shape).keep());
      }
    } catch (e) {
      for (const t of up) t.dispose();
      throw e;
    }
    const ds = this.diffsim;
    return new DiffSimEmbeddingHandle(this.name, this.key, new DiffSimEmbedding(role, ds.embeddingSettings, ds.key, up[0]!, up[1]!, up[2]!, 'generator'));
  }
}

/** The diffeats ablation: one image's hooked attn1 output (after to_out, both CFG halves),
 *  min–max normalised with its own global min and max; the score is the cosine of the flattened
 *  tensors (metrics/diffeats.py, with the layer honoured as there). */
class DiffFeatsEmbedding implements MetricEmbedding {
  readonly metric = 'diffeats' as const;
  constructor(
    readonly key: string,
    readonly role: ImageRole,
    readonly shape: readonly number[],
    /** The normalised feature, on the host (compared in float64). */
    readonly feature: Float32Array,
  ) {}
  dispose(): void {}
}

/** Min–max normalisation over the whole tensor; a constant tensor becomes zeros. */
export function minMaxNormalise(x: Float32Array): Float32Array {
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of x) {
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  const range = hi - lo;
  const out = new Float32Array(x.length);
  if (range > 0) for (let i = 0; i < x.length; i++) out[i] = (x[i]! - lo) / range;
  return out;
}

/** Cosine of two equally long vectors in float64 (eps as torch's cosine_similarity, 1e-8). */
export function cosine64(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) throw new RangeError(`cosine: lengths ${a.length} and ${b.length} differ`);
  let ab = 0;
  let aa = 0;
  let bb = 0;
  for (let i = 0; i < a.length; i++) {
    ab += a[i]! * b[i]!;
    aa += a[i]! * a[i]!;
    bb += b[i]! * b[i]!;
  }
  return ab / Math.max(Math.sqrt(aa) * Math.sqrt(bb), 1e-8);
}

class DiffFeatsMetric extends BaseMetric<DiffFeatsEmbedding> {
  private readonly variants = new Map<string, DiffFeatsMetric>();
  readonly name = 'diffeats' as const;
  readonly lowerBetter = false;
  readonly roleDependent: boolean;
  readonly key: string;
  private readonly tap: string;
  constructor(
    rt: Runtime,
    owner: MetricOwner,
    readonly diffsim: DiffSim,
    readonly settings: Readonly<Record<string, unknown>>,
    private readonly models: string,
    private readonly factory: DiffSimFactory,
  ) {
    super(rt, owner);
    this.roleDependent = diffsim.settings.noise === 'official-4-draws';
    this.key = `diffeats ${diffsim.key} ${models}`;
    this.tap = `${diffsim.settings.module}:out`;
  }
  override withPrompt(prompt: string): Metric {
    return promptVariant(this.variants, this as DiffFeatsMetric, this.diffsim.settings.prompt, prompt, () => new DiffFeatsMetric(this.runtime, detached(this.owner), this.factory(prompt), { ...this.settings, prompt }, this.models, this.factory));
  }
  protected isOwn(e: MetricEmbedding): e is DiffFeatsEmbedding {
    return e instanceof DiffFeatsEmbedding && e.key === this.key;
  }
  protected async embedImage(image: RgbImage, role: ImageRole): Promise<DiffFeatsEmbedding> {
    const e = this.diffsim.embed(image, role, { taps: [this.tap] });
    try {
      const t = e.taps.get(this.tap)!;
      return new DiffFeatsEmbedding(this.key, role, t.shape, minMaxNormalise((await t.read()) as Float32Array));
    } finally {
      e.dispose();
    }
  }
  protected async compareOwn(a: DiffFeatsEmbedding, b: DiffFeatsEmbedding): Promise<number> {
    if (a.role === b.role && this.roleDependent) throw new DiffSimSettingsError(`diffeats: both embeddings have role ${a.role}; with the official noise an image pair is (A, B)`);
    return cosine64(a.feature, b.feature);
  }
  protected async tensorsOf(e: DiffFeatsEmbedding) {
    return { feature: { shape: e.shape, data: e.feature } };
  }
  protected async fromTensors(file: SafetensorsFile, role: ImageRole): Promise<DiffFeatsEmbedding> {
    const { shape, data } = await file.readFloat32('feature');
    return new DiffFeatsEmbedding(this.key, role, shape, data);
  }
}

class VisionEmbeddingHandle implements MetricEmbedding {
  constructor(
    readonly metric: MetricName,
    readonly key: string,
    readonly role: ImageRole,
    readonly inner: VisionEmbedding,
  ) {}
  dispose(): void {
    this.inner.dispose();
  }
}

/** clip, dino (100·cos of the global features), clip-aas, dino-aas, clipfeats, dinofeats (one layer). */
class VisionPairMetric extends BaseMetric<VisionEmbeddingHandle> {
  readonly attentionOutputs?: (a: MetricEmbedding, b: MetricEmbedding) => AasOutputs;
  readonly attentionLayout?: (width: number, height: number, tokens: number) => AttentionLayout;
  readonly lowerBetter = false;
  readonly roleDependent = false;
  readonly key: string;
  private readonly layers: number[];
  constructor(
    rt: Runtime,
    owner: MetricOwner,
    readonly name: Exclude<MetricName, 'diffsim' | 'diffsim-c' | 'diffeats'>,
    readonly vision: ClipMetric | Dinov2Metric,
    readonly layer: number,
    readonly settings: Readonly<Record<string, unknown>>,
    models: string,
  ) {
    super(rt, owner);
    const global = name === 'clip' || name === 'dino';
    if (!global && (!Number.isInteger(layer) || layer < 0 || layer >= vision.numLayers)) {
      throw new DiffSimSettingsError(`${name}: layer ${layer}: the ${name.startsWith('clip') ? 'CLIP' : 'DINOv2'} encoder has ${vision.numLayers} layers (0–${vision.numLayers - 1})`);
    }
    this.layers = global ? [] : [layer];
    if (name.endsWith('-aas')) {
      this.attentionOutputs = (a: MetricEmbedding, b: MetricEmbedding): AasOutputs => {
        if (!this.isOwn(a) || !this.isOwn(b)) throw new DiffSimSettingsError(`${this.name}: attentionOutputs needs two embeddings of this metric`);
        return this.vision.attentionOutputs(a.inner, b.inner, this.layer);
      };
      this.attentionLayout = (width: number, height: number, tokens: number): AttentionLayout => {
        const l = this.vision.attentionLayout(width, height, this.layer);
        const want = l.prefix + l.gridWidth * l.gridHeight;
        if (tokens !== want) throw new RangeError(`${this.name}: ${l.module} has ${tokens} query tokens; a ${width}×${height} image gives ${l.prefix} + ${l.gridHeight}×${l.gridWidth}`);
        return l;
      };
    }
    this.key = `${name} ${vision.kind} ${JSON.stringify({ layers: this.layers, processor: vision.processor })} ${models}`;
  }
  protected isOwn(e: MetricEmbedding): e is VisionEmbeddingHandle {
    return e instanceof VisionEmbeddingHandle && e.key === this.key;
  }
  protected async embedImage(image: RgbImage, role: ImageRole): Promise<VisionEmbeddingHandle> {
    return new VisionEmbeddingHandle(this.name, this.key, role, this.vision.embed(image, this.layers));
  }
  protected async compareOwn(a: VisionEmbeddingHandle, b: VisionEmbeddingHandle): Promise<number> {
    const s = await this.vision.compare(a.inner, b.inner);
    if (this.layers.length === 0) return s.global;
    const l = s.layers[0]!;
    return this.name.endsWith('-aas') ? l.aas.cosine : l.feature;
  }
  protected async tensorsOf(e: VisionEmbeddingHandle) {
    e.inner.assertLive();
    const out: Record<string, { shape: readonly number[]; data: Float32Array }> = {};
    const put = async (n: string, t: { shape: readonly number[]; read(): Promise<unknown> }) => (out[n] = { shape: t.shape, data: (await t.read()) as Float32Array });
    await put('global', e.inner.global);
    for (const [l, x] of e.inner.layers) for (const [n, t] of [['q', x.q], ['k', x.k], ['v', x.v], ['feature', x.feature]] as const) await put(`layers.${l}.${n}`, t);
    return out;
  }
  protected async fromTensors(file: SafetensorsFile, role: ImageRole): Promise<VisionEmbeddingHandle> {
    const up = async (n: string) => {
      const { shape, data } = await file.readFloat32(n);
      return this.runtime.upload(data, shape).keep();
    };
    const made: { dispose(): void }[] = [];
    try {
      const global = await up('global');
      made.push(global);
      const layers = new Map<number, { q: ReturnType<Runtime['upload']>; k: ReturnType<Runtime['upload']>; v: ReturnType<Runtime['upload']>; feature: ReturnType<Runtime['upload']> }>();
      for (const l of this.layers) {
        const t = { q: await up(`layers.${l}.q`), k: await up(`layers.${l}.k`), v: await up(`layers.${l}.v`), feature: await up(`layers.${l}.feature`) };
        made.push(t.q, t.k, t.v, t.feature);
        layers.set(l, t);
      }
      return new VisionEmbeddingHandle(this.name, this.key, role, new VisionEmbedding(this.vision.kind, global, layers));
    } catch (e) {
      for (const t of made) t.dispose();
      throw e;
    }
  }
}

/** When the last metric of a `createMetrics` call closes: frees the models' weights and what the
 *  metrics keep, and closes the runtime if the call created it. */
class RuntimeOwner implements MetricOwner {
  private open = 0;
  readonly stores = new Set<{ dispose(): void }>();
  readonly metrics: { dispose(): void }[] = [];
  constructor(
    private readonly rt: Runtime,
    private readonly owned: boolean,
    readonly readPath: ImagePathReader | undefined,
  ) {}
  retain(): this {
    this.open++;
    return this;
  }
  async release(): Promise<void> {
    if (this.open <= 0) return;
    if (--this.open > 0) return;
    await this.releaseAll();
  }
  async releaseAll(): Promise<void> {
    this.open = 0;
    for (const m of this.metrics) m.dispose();
    for (const s of this.stores) s.dispose();
    this.stores.clear();
    if (this.owned) await this.rt.close();
  }
}

function diffsimReport(ds: DiffSim): Record<string, unknown> {
  const s = ds.settings;
  return {
    preset: ds.preset,
    similarity: s.similarity,
    variant: s.variant,
    block: s.block,
    layer: s.layer,
    module: s.module,
    step: s.step,
    stepMode: s.stepMode,
    t: s.t,
    seed: s.seed,
    prompt: s.prompt,
    negativePrompt: s.negativePrompt,
    noise: s.noise,
    imageSize: s.imageSize,
    vae: s.vae,
    cfg: s.cfg,
    cfgHalves: s.cfgHalves,
    roundToF16: s.roundToF16,
    ...(s.variant === 'C' ? { ipScale: s.ipScale } : {}),
  };
}

/** Several metrics on one runtime, sharing the models of `o.models`: every model is resolved
 *  before any weight is loaded. */
export async function buildMetrics(names: readonly MetricName[], o: BuildMetricsOptions): Promise<Metric[]> {
  for (const n of names) assertName(n);
  if (!names.length) throw new RangeError('createMetrics: no metric named');
  const rt = o.runtime;
  const source = o.models;
  const owner = new RuntimeOwner(rt, o.ownsRuntime, o.readPath);
  const out: Metric[] = [];
  try {
    // The preset is checked before anything is loaded.
    if (o.preset !== undefined && o.diffsim?.preset !== undefined && o.preset !== o.diffsim.preset) throw new DiffSimSettingsError(`DiffSim: preset given twice, ${JSON.stringify(o.preset)} and diffsim.preset ${JSON.stringify(o.diffsim.preset)}`);
    const preset = o.preset ?? o.diffsim?.preset;
    if (preset !== undefined) presetSettings(preset);
    for (const n of names) for (const role of modelsOf(n)) await source.resolve(role);
    const modelsReport = async (roles: readonly ModelRole[]) => {
      const r: Record<string, ResolvedModel> = {};
      for (const role of roles) r[role] = await source.resolve(role);
      return r;
    };
    const weights = o.weights ?? 'f32';
    for (const name of names) {
      const roles = modelsOf(name);
      const models = await modelsReport(roles);
      const common = { metric: name, lowerBetter: false, weights, models };
      if (name === 'diffsim' || name === 'diffsim-c' || name === 'diffeats') {
        const given = o.diffsim ?? {};
        // diffeats honours the layer as metrics/diffeats.py does.
        const settings: DiffSimSettingsInput = { ...given, ...(preset !== undefined ? { preset } : {}), variant: name === 'diffsim-c' ? 'C' : 'S', ...(name === 'diffeats' ? { layerMode: 'as-given' as const } : {}) };
        if (name === 'diffeats' && settings.similarity === 'mse') throw new DiffSimSettingsError('diffeats: the score is a cosine (similarity mse does not apply)');
        const dm = await source.diffsimModels(names.includes('diffsim-c'));
        for (const m of [dm.unet, dm.vae, dm.textEncoder, dm.ipAdapter, dm.imageEncoder]) if (m) owner.stores.add(m.store);
        const factory: DiffSimFactory = (prompt) => {
          const ds = new DiffSim(rt, dm, { ...settings, prompt }, o.execution);
          owner.metrics.push(ds);
          return ds;
        };
        const ds = factory(mergeSettings(settings).prompt);
        const activations = o.activations ?? 'f32';
        const report = { ...common, activations, ...diffsimReport(ds), lowerBetter: ds.lowerBetter };
        const mk = modelKey(models, weights, activations);
        out.push(name === 'diffeats' ? new DiffFeatsMetric(rt, owner.retain(), ds, report, mk, factory) : new DiffSimPairMetric(rt, owner.retain(), name, ds, report, mk, factory));
      } else {
        const vision = name.startsWith('clip') ? await source.clipMetric() : await source.dinoMetric();
        owner.stores.add(vision instanceof ClipMetric ? vision.vision.store : vision.model.store);
        const global = name === 'clip' || name === 'dino';
        const layer = o.layer ?? 0;
        const report: Record<string, unknown> = { ...common, similarity: 'cosine', ...(global ? {} : { layer }), ...(name === 'clip-aas' ? { qkvSource: (vision as ClipMetric).qkvSource } : {}) };
        out.push(new VisionPairMetric(rt, owner.retain(), name, vision, layer, report, modelKey(models, weights)));
      }
    }
    return out;
  } catch (e) {
    await owner.releaseAll();
    throw e;
  }
}
