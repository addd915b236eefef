// Parameters by checkpoint key. Modules declare their parameters (full key and shape) when they are
// built from a config; a loader then fills them from a checkpoint, reporting every missing,
// unexpected and mis-shaped key at once. Building without loading lists the exact tensor names and
// shapes a checkpoint must have.

import { DTYPE_BYTES, ShapeError, type Runtime, type Tensor } from '../gpu/runtime.js';
import type { TensorSource } from '../io/safetensors.js';
import type { LoadEventCallback, LoadOrigin } from '../io/events.js';
import { Vocabulary } from './context.js';

export class Param {
  private value: Tensor | null = null;
  /** The fused parameter that holds this one's values once the store has fused them. */
  fusedInto: FusedParam | null = null;
  constructor(
    readonly key: string,
    readonly shape: readonly number[],
    /** The consuming kernel reads f16 too (linear/conv weights, embedding tables). */
    readonly acceptsF16 = false,
  ) {}
  get tensor(): Tensor {
    if (!this.value) {
      if (this.fusedInto?.loaded) throw new Error(`parameter "${this.key}" is held by the fused "${this.fusedInto.key}" (read that one)`);
      throw new Error(`parameter "${this.key}" is not loaded`);
    }
    return this.value;
  }
  /** Loaded, in its own tensor or in the fused one. */
  get loaded(): boolean {
    return this.value !== null || !!this.fusedInto?.loaded;
  }
  /** @internal */
  set(t: Tensor | null): void {
    this.value?.dispose();
    this.value = t;
    if (t) this.fusedInto = null;
  }
}

/** Parameters concatenated along their first axis into one tensor after each load (e.g. to_q,
 *  to_k, to_v weights [C, K] each → [3C, K], read by one GEMM). The members then hold nothing, so
 *  the GPU keeps one copy. Checkpoints and manifests still list the members. Fusion is skipped
 *  (the members stay loaded) when a member's bytes are not a multiple of 4 or dtypes differ. */
export class FusedParam {
  private value: Tensor | null = null;
  constructor(
    readonly key: string,
    readonly members: readonly Param[],
  ) {}
  get loaded(): boolean {
    return this.value !== null;
  }
  /** The fused tensor, or null when the members were left separate. */
  get tensor(): Tensor | null {
    return this.value;
  }
  /** @internal */
  build(rt: Runtime): void {
    this.set(null);
    const parts = this.members.map((m) => m.tensor);
    const dtype = parts[0]!.dtype;
    const rest = parts[0]!.shape.slice(1);
    const fits = parts.every((t) => t.dtype === dtype && t.shape.length === rest.length + 1 && t.shape.slice(1).every((d, i) => d === rest[i]) && (t.numel * DTYPE_BYTES[dtype]) % 4 === 0);
    if (!fits) return;
    const rows = parts.reduce((n, t) => n + t.shape[0]!, 0);
    const fused = rt.empty([rows, ...rest], dtype).keep();
    let offset = 0;
    for (const t of parts) {
      rt.copyRegion(t, 0, fused, offset, t.byteLength);
      offset += t.byteLength;
    }
    this.value = fused;
    for (const m of this.members) {
      m.set(null);
      m.fusedInto = this;
    }
  }
  /** @internal */
  set(t: Tensor | null): void {
    this.value?.dispose();
    this.value = t;
  }
}

export class WeightLoadError extends Error {
  override name = 'WeightLoadError';
  constructor(
    readonly source: string,
    readonly missing: string[],
    readonly unexpected: string[],
    readonly misshaped: string[],
  ) {
    const parts: string[] = [];
    const list = (xs: string[]) => (xs.length > 12 ? `${xs.slice(0, 12).join(', ')}, … (${xs.length} in all)` : xs.join(', '));
    if (missing.length) parts.push(`${missing.length} missing: ${list(missing)}`);
    if (unexpected.length) parts.push(`${unexpected.length} unexpected: ${list(unexpected)}`);
    if (misshaped.length) parts.push(`${misshaped.length} with the wrong shape: ${list(misshaped)}`);
    super(`${source}: ${parts.join('; ')}`);
  }
}

export type WeightPrecision = 'f32' | 'auto' | 'f16';

export interface LoadOptions {
  /** Maps a checkpoint key to the module key (e.g. legacy names), or null to skip the tensor. */
  rename?: (checkpointKey: string) => string | null;
  /** Keys in the checkpoint that may be ignored (e.g. non-persistent buffers). */
  ignore?: RegExp[];
  /** Only load keys under this prefix of the module keys; the others must exist but stay unloaded. */
  strictUnexpected?: boolean;
  /** Reshape a checkpoint tensor whose element count matches but whose shape differs
   *  (legacy 1×1-conv attention weights stored as [C, C, 1, 1]). */
  allowSqueeze?: boolean;
  /** GPU storage of the weights that kernels can read as f16 (linear and conv weights; math and
   *  accumulation stay f32): 'f32' widens everything (the default); 'auto' keeps them f16 when the
   *  checkpoint stores F16 (half the memory, the checkpoint's own values); 'f16' rounds every such
   *  weight to f16. Norms, biases and embeddings stay f32. */
  weights?: WeightPrecision;
  /** `weights` events: once before the first tensor (loaded 0), then after each is on the GPU. */
  onProgress?: LoadEventCallback;
}

/** All parameters of a model, by full key. */
export class WeightStore {
  readonly params = new Map<string, Param>();
  /** Parameter groups fused after each load (see FusedParam). */
  readonly fusions: FusedParam[] = [];
  /** Where the last load's weights came from (the model files' name and the file in them), for
   *  messages about the model. */
  source: LoadOrigin | undefined;

  /** Declares that `members` are fused into `key` after each load (concatenated along axis 0). */
  fuse(key: string, members: readonly Param[]): FusedParam {
    const f = new FusedParam(key, members);
    this.fusions.push(f);
    return f;
  }

  private buildFusions(rt: Runtime): void {
    for (const f of this.fusions) if (f.members.every((m) => m.fusedInto === null && m.loaded)) f.build(rt);
  }

  declare(key: string, shape: readonly number[], acceptsF16 = false): Param {
    if (this.params.has(key)) throw new Error(`parameter "${key}" declared twice`);
    const p = new Param(key, [...shape], acceptsF16);
    this.params.set(key, p);
    return p;
  }

  /** Declared names and shapes (what a checkpoint must hold). */
  manifest(): Record<string, number[]> {
    const out: Record<string, number[]> = {};
    for (const [k, p] of this.params) out[k] = [...p.shape];
    return out;
  }

  parameterCount(): number {
    let n = 0;
    for (const p of this.params.values()) n += p.shape.reduce((a, b) => a * b, 1);
    return n;
  }

  /** Loads every declared parameter from `source` as f32. Checks everything before uploading. */
  async load(rt: Runtime, source: TensorSource, opts: LoadOptions = {}): Promise<void> {
    const byKey = new Map<string, string>(); // module key → checkpoint key
    const unexpected: string[] = [];
    for (const ck of source.names()) {
      const mk = opts.rename ? opts.rename(ck) : ck;
      if (mk === null) continue;
      if (this.params.has(mk)) byKey.set(mk, ck);
      else if (!opts.ignore?.some((r) => r.test(ck))) unexpected.push(ck);
    }
    const missing: string[] = [];
    const misshaped: string[] = [];
    for (const [k, p] of this.params) {
      const ck = byKey.get(k);
      if (ck === undefined) {
        missing.push(k);
        continue;
      }
      const shape = source.info(ck).shape;
      const same = shape.length === p.shape.length && shape.every((d, i) => d === p.shape[i]);
      const numel = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);
      if (!same && !(opts.allowSqueeze && numel(shape) === numel(p.shape))) {
        misshaped.push(`${ck} [${shape.join(', ')}] (expected [${p.shape.join(', ')}])`);
      }
    }
    if (missing.length || misshaped.length || (opts.strictUnexpected !== false && unexpected.length)) {
      throw new WeightLoadError(source.name, missing, opts.strictUnexpected === false ? [] : unexpected, misshaped);
    }
    const total = this.params.size;
    let totalBytes = 0;
    for (const ck of byKey.values()) totalBytes += source.info(ck).end - source.info(ck).begin;
    let loaded = 0;
    let bytes = 0;
    // The model files and path where known, so these events name the file as its download did.
    const at = source.origin ?? { name: source.name, file: source.name };
    this.source = at;
    const emit = opts.onProgress;
    emit?.({ status: 'weights', name: at.name, file: at.file, loaded, total, bytes, totalBytes });
    for (const [k, p] of this.params) {
      const ck = byKey.get(k)!;
      const info = source.info(ck);
      const stored = info.dtype;
      const half = p.acceptsF16 && ((opts.weights === 'auto' && stored === 'F16') || opts.weights === 'f16');
      try {
        await this.upload(rt, source, ck, p, half, stored === 'F16');
      } catch (e) {
        // The runtime's limit errors say which limit; the tensor's name says what did not fit.
        if (e instanceof ShapeError) throw new ShapeError(`${source.name}: tensor "${ck}" [${p.shape.join(', ')}] as ${half ? 'f16' : 'f32'} (${p.shape.reduce((a, b) => a * b, 1) * (half ? 2 : 4)} bytes): ${e.message}`);
        throw e;
      }
      bytes += info.end - info.begin;
      loaded++;
      emit?.({ status: 'weights', name: at.name, file: at.file, loaded, total, bytes, totalBytes });
    }
    this.buildFusions(rt);
  }

  /** One checkpoint tensor onto the GPU: as f16 (`half`), else as f32. */
  private async upload(rt: Runtime, source: TensorSource, ck: string, p: Param, half: boolean, storedF16: boolean): Promise<void> {
    if (half && storedF16) {
      const raw = await source.readRaw(ck);
      const bits = new Uint16Array(raw.bytes.byteLength / 2);
      new Uint8Array(bits.buffer).set(raw.bytes);
      p.set(rt.upload(bits, p.shape, 'f16').keep());
    } else if (half) {
      p.set(rt.upload((await source.readFloat32(ck)).data, p.shape, 'f16').keep());
    } else {
      p.set(rt.upload((await source.readFloat32(ck)).data, p.shape).keep());
    }
  }

  /** Random weights on the GPU (benchmarks): matrices and kernels uniform in ±1/√fan_in, norm
   *  weights 1, biases 0; with `weights: 'f16'` the linear/conv weights are stored as f16. With
   *  `fill: false` the buffers are allocated exactly as above but left zero (memory benchmarks on a
   *  slow adapter: the allocations, not the values, decide the peak). */
  async initRandom(rt: Runtime, seed = 0, o: { weights?: WeightPrecision; fill?: boolean } = {}): Promise<void> {
    const { fillUniform } = await import('../kernels/elementwise.js');
    let i = 0;
    for (const [k, p] of this.params) {
      const fanIn = p.shape.slice(1).reduce((a, b) => a * b, 1);
      const numel = p.shape.reduce((a, b) => a * b, 1);
      if (o.fill === false) {
        p.set(rt.empty(p.shape, o.weights === 'f16' && p.acceptsF16 ? 'f16' : 'f32').keep());
        continue;
      }
      if (numel * 4 > (rt.limits.maxStorageBufferBindingSize ?? 134217728)) {
        // Too large to bind in one piece (e.g. a token table on a 128 MiB-binding adapter): fill on the host.
        let state = (seed + i++) >>> 0;
        const host = new Float32Array(numel);
        const scale = 1 / Math.sqrt(fanIn);
        for (let j = 0; j < numel; j++) {
          state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
          host[j] = (state / 2147483648 - 1) * scale;
        }
        p.set(rt.upload(host, p.shape).keep());
        continue;
      }
      const t = rt.empty(p.shape, o.weights === 'f16' && p.acceptsF16 ? 'f16' : 'f32').keep();
      if (p.shape.length >= 2) fillUniform(t, seed + i++, 1 / Math.sqrt(fanIn));
      else fillUniform(t, 0, 0, k.endsWith('.bias') ? 0 : 1);
      p.set(t);
    }
    this.buildFusions(rt);
    await rt.sync();
  }

  dispose(): void {
    for (const p of this.params.values()) p.set(null);
    for (const f of this.fusions) f.set(null);
  }
}

/** A key prefix inside a WeightStore, for building modules whose names mirror checkpoint keys;
 *  modules also declare their taps and stopping points through it (one vocabulary per model). */
export class Scope {
  constructor(
    readonly store: WeightStore,
    readonly prefix: string,
    readonly vocabulary: Vocabulary,
  ) {}
  static root(store: WeightStore, prefix = '', vocabulary = new Vocabulary()): Scope {
    return new Scope(store, prefix, vocabulary);
  }
  child(name: string | number): Scope {
    return new Scope(this.store, this.prefix ? `${this.prefix}.${name}` : String(name), this.vocabulary);
  }
  param(name: string, shape: readonly number[], acceptsF16 = false): Param {
    return this.store.declare(this.prefix ? `${this.prefix}.${name}` : name, shape, acceptsF16);
  }
  /** The module path (checkpoint prefix) of this scope. */
  get path(): string {
    return this.prefix;
  }
  /** Declares the tap `<path><suffix>` (suffix `:out`, `.ff:out`, …; a bare name at the root). */
  tap(suffix: string): string {
    return this.vocabulary.tap(this.prefix ? `${this.prefix}${suffix}` : suffix.replace(/^[.:]/, ''));
  }
  /** Declares that a pass can stop right after this module; returns its path. */
  stoppable(): string {
    return this.vocabulary.stop(this.prefix);
  }
}
