// The metrics behind the Metric interface (metric-api.ts): DiffSim pair scores (DiffSim-S/C with
// either noise), the min–max normalised attn1-output cosine (diffeats) and the CLIP/DINOv2 pair
// metrics; embeddings that can be saved and loaded, owners that free the models with the last metric.

import { tidy, type Runtime } from '../gpu/runtime.js';
import { concat } from '../kernels/layout.js';
import { pairSums } from '../kernels/reduce.js';
import { blobSource } from '../io/bytesource.js';
import type { RgbImage } from '../io/image.js';
import { encodeSafetensors, SafetensorsFile } from '../io/safetensors.js';
import type { WeightPrecision } from '../nn/weights.js';
import type { ActivationDType } from '../kernels/common.js';
import type { DiffSim } from './core.js';
import type { DiffSimDiT } from './dit.js';
import { pairScore, type AasOutputs, type AttentionLayout } from './aas.js';
import { DiffSimEmbedding, type ImageRole } from './embedding.js';
import { firstNonFinite, nonFiniteError } from './finite.js';
import { DiffSimSettingsError } from './settings.js';
import { ClipMetric, type Dinov2Metric, VisionEmbedding } from './vision.js';
import { decodeImageInput, type ImageInput, type ImagePathReader, type Metric, type MetricEmbedding, type MetricName, type ResolvedModel } from './metric-api.js';
const EMBEDDING_FORMAT = 'diffsim-metric-embedding';

/** What a metric's lifetime and inputs are tied to: its family's models, the image path reader. */
export interface MetricOwner {
  release(): Promise<void>;
  readonly readPath?: ImagePathReader | undefined;
  /** Reads an image file's bytes (Node/Deno), for metrics with their own decoding (gram). */
  readonly readBytes?: ((path: string) => Promise<Uint8Array>) | undefined;
}

/** The owner of a derived metric (another prompt): freed with the family, not on its own. */
function detached(owner: MetricOwner): MetricOwner {
  return { release: async () => {}, readPath: owner.readPath, readBytes: owner.readBytes };
}

export abstract class BaseMetric<E extends MetricEmbedding> implements Metric {
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
    return this.embedImage(await this.decode(image, 'image'), role);
  }

  /** An image input as RGB pixels (paths through the owner's reader, EXIF orientation applied as
   *  the official load_image does); a metric with its own loader overrides it. */
  protected decode(input: ImageInput, name: string): Promise<RgbImage> {
    return decodeImageInput(input, name, this.owner.readPath);
  }

  async compare(a: MetricEmbedding, b: MetricEmbedding): Promise<number> {
    for (const [e, which] of [[a, 'first'], [b, 'second']] as const) {
      if (!this.isOwn(e)) throw new DiffSimSettingsError(`${this.name}: the ${which} embedding was made by ${e.metric}${e.metric === this.name ? ' with other settings' : ''}`);
    }
    return this.compareOwn(a as E, b as E);
  }

  async score(a: ImageInput, b: ImageInput): Promise<number> {
    // Both decoded first: an unreadable second image is reported before any pass runs.
    const [ia, ib] = [await this.decode(a, typeof a === 'string' ? a : 'image A'), await this.decode(b, typeof b === 'string' ? b : 'image B')];
    return this.scorePair(ia, ib);
  }

  /** The score of two decoded images; the score is checked by compareOwn (never a non-finite result). */
  protected async scorePair(ia: RgbImage, ib: RgbImage): Promise<number> {
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

/** The model identity part of a key: which weights — a hub commit, or a local folder's path with
 *  its files' stamp (sizes and mtimes) — and which set of them. */
export function modelKey(models: Record<string, ResolvedModel>, weights: WeightPrecision, activations: ActivationDType = 'f32'): string {
  const id = (m: ResolvedModel) => m.commit ?? (m.stamp ? `${m.path}@${m.stamp}` : m.path);
  return JSON.stringify({ models: Object.fromEntries(Object.entries(models).map(([k, m]) => [k, m.variant ? `${id(m)}#${m.variant}` : id(m)])), weights, ...(activations === 'f32' ? {} : { activations }) });
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

/** diffsim, diffsim-c and diffsim-xl. */
/** Makes the DiffSim of another prompt on the same models (freed with the metric family). */
export type DiffSimFactory = (prompt: string) => DiffSim;

/** Derived metrics by prompt, built once. */
function promptVariant<M extends Metric>(cache: Map<string, M>, self: M, current: string, prompt: string, make: () => M): M {
  if (prompt === current) return self;
  let m = cache.get(prompt);
  if (!m) cache.set(prompt, (m = make()));
  return m;
}

export class DiffSimPairMetric extends BaseMetric<DiffSimEmbeddingHandle> {
  private readonly variants = new Map<string, DiffSimPairMetric>();
  readonly lowerBetter: boolean;
  readonly roleDependent: boolean;
  readonly key: string;
  constructor(
    rt: Runtime,
    owner: MetricOwner,
    readonly name: 'diffsim' | 'diffsim-c' | 'diffsim-xl',
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
  /** DiffSim's own pair score: the same passes and score, and a failure traced to its first stage
   *  (the VAE latent, …) since the images are at hand. */
  protected override scorePair(ia: RgbImage, ib: RgbImage): Promise<number> {
    return this.diffsim.score(ia, ib);
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

export class DiffFeatsMetric extends BaseMetric<DiffFeatsEmbedding> {
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
      // The feature and, in the same read-back, the sums of the hooked q/k/v: a GPU's attention
      // may turn non-finite inputs into a finite output (WGSL assumes finite math), and the
      // normalisation would hide a non-finite value of the feature itself.
      const both = tidy(() => concat([t.reshape([t.numel]), pairSums(e.q, e.q), pairSums(e.k, e.v)], 0));
      let read: Float32Array;
      try {
        read = (await both.read()) as Float32Array;
      } finally {
        both.dispose();
      }
      const raw = read.subarray(0, t.numel);
      const qkv = read.subarray(t.numel);
      const bad = firstNonFinite(raw) ?? (pairScore(qkv, 0, 1).sound && pairScore(qkv, 4, 1).sound ? undefined : 'not finite or all zeros');
      if (bad !== undefined) {
        const ds = this.diffsim;
        const found = (await ds.firstNonFiniteStage(image, role)) ?? { stage: { what: `the attention output at ${ds.settings.module} for image ${role}`, store: ds.models.unet.store, tensor: t }, value: bad };
        throw nonFiniteError('diffeats', Number.NaN, found, ds.modelName);
      }
      return new DiffFeatsEmbedding(this.key, role, t.shape, minMaxNormalise(raw.slice()));
    } finally {
      e.dispose();
    }
  }
  protected async compareOwn(a: DiffFeatsEmbedding, b: DiffFeatsEmbedding): Promise<number> {
    if (a.role === b.role && this.roleDependent) throw new DiffSimSettingsError(`diffeats: both embeddings have role ${a.role}; with the official noise an image pair is (A, B)`);
    const score = cosine64(a.feature, b.feature);
    if (!Number.isFinite(score)) throw nonFiniteError('diffeats', score, undefined, this.diffsim.modelName);
    return score;
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
export class VisionPairMetric extends BaseMetric<VisionEmbeddingHandle> {
  readonly attentionOutputs?: (a: MetricEmbedding, b: MetricEmbedding) => AasOutputs;
  readonly attentionLayout?: (width: number, height: number, tokens: number) => AttentionLayout;
  readonly lowerBetter = false;
  readonly roleDependent = false;
  readonly key: string;
  private readonly layers: number[];
  constructor(
    rt: Runtime,
    owner: MetricOwner,
    readonly name: Exclude<MetricName, 'diffsim' | 'diffsim-c' | 'diffeats' | 'lpips' | 'gram'>,
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

/** diffsim-dit: DiffSim on DiT (DiffSimDiT). The prompt does not enter (the official DiT path
 *  ignores it), so withPrompt returns the metric itself. */
export class DiTPairMetric extends BaseMetric<DiffSimEmbeddingHandle> {
  readonly name = 'diffsim-dit' as const;
  readonly lowerBetter: boolean;
  readonly roleDependent: boolean;
  readonly key: string;
  constructor(
    rt: Runtime,
    owner: MetricOwner,
    readonly dit: DiffSimDiT,
    readonly settings: Readonly<Record<string, unknown>>,
    models: string,
  ) {
    super(rt, owner);
    this.lowerBetter = dit.lowerBetter;
    this.roleDependent = dit.settings.noise === 'official-4-draws';
    this.key = `diffsim-dit ${dit.key} ${models}`;
  }
  protected isOwn(e: MetricEmbedding): e is DiffSimEmbeddingHandle {
    return e instanceof DiffSimEmbeddingHandle && e.key === this.key;
  }
  protected async embedImage(image: RgbImage, role: ImageRole): Promise<DiffSimEmbeddingHandle> {
    return new DiffSimEmbeddingHandle(this.name, this.key, this.dit.embed(image, role));
  }
  protected compareOwn(a: DiffSimEmbeddingHandle, b: DiffSimEmbeddingHandle): Promise<number> {
    return this.dit.compare(a.inner, b.inner);
  }
  protected override scorePair(ia: RgbImage, ib: RgbImage): Promise<number> {
    return this.dit.score(ia, ib);
  }
  attentionOutputs(a: MetricEmbedding, b: MetricEmbedding): AasOutputs {
    if (!this.isOwn(a) || !this.isOwn(b)) throw new DiffSimSettingsError(`${this.name}: attentionOutputs needs two embeddings of this metric`);
    return this.dit.attentionOutputs(a.inner, b.inner);
  }
  /** The DiT tokens are the patch grid of the square latent, over the whole (squashed) image. */
  attentionLayout(width: number, height: number, tokens: number): AttentionLayout {
    const side = Math.round(Math.sqrt(tokens));
    const module = this.dit.settings.module;
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
    const d = this.dit;
    return new DiffSimEmbeddingHandle(this.name, this.key, new DiffSimEmbedding(role, d.embeddingSettings, d.key, up[0]!, up[1]!, up[2]!, 'generator'));
  }
}
