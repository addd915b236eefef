// The execution runtime: one device, one buffer pool, one pipeline cache, one dispatch path.
//
// Ops are synchronous: an op validates its inputs, allocates its outputs and records its dispatch
// before it returns, so the buffers it binds are the ones its arguments hold at the call. Only
// reading data back is asynchronous. Dispatches are recorded into a shared command encoder (one
// compute pass per batch) and submitted in batches. Kernel parameters live in one uniform "arena"
// buffer, bound with a dynamic offset and written (queue.writeBuffer) right before each submit: the
// queue orders every write after the submissions before it, so one arena serves every batch and a
// bind group does not depend on the batch (bind groups are cached by buffers).
//
// Buffer reuse: a released storage buffer is reusable at once. Every later use is ordered after the
// commands already recorded: a kernel is recorded after them (in the same batch, where the
// dispatches of a pass run in order, or in a later submission), and host writes
// (queue.writeBuffer) go through `writeTensor`, which submits the recorded work before writing, so a
// host write can never overtake a pending reader. The oldest free buffer of a size class is handed
// out first, independent of where the batches were cut and of the order buffers were released in:
// the same sequence of ops from the same free buffers gets the same buffers, so its bind groups come
// from the cache.

import { acquireDevice, type AcquiredDevice, type AdapterDescription, type DeviceOptions } from './device.js';
import { resolveFlags, type FlagOptions, type Flags, type FlagSource, type FlagName, type TensorCoreMode } from './flags.js';
import { f16ArrayToF32, f32ArrayToF16 } from '../platform/half.js';
import { Profiler, type TimestampSlot } from './profile.js';

export { TENSOR_CORE_MODES, type TensorCoreMode } from './flags.js';

export type DType = 'f32' | 'f16' | 'i32' | 'u32';
export const DTYPE_BYTES: Record<DType, number> = { f32: 4, f16: 2, i32: 4, u32: 4 };
export type TypedArrayFor<D extends DType> = D extends 'i32' ? Int32Array : D extends 'u32' ? Uint32Array : Float32Array;

export class ShapeError extends Error {
  override name = 'ShapeError';
}

export function numelOf(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function checkShape(shape: readonly number[], what = 'shape'): void {
  for (const d of shape) {
    if (!Number.isSafeInteger(d) || d < 0) throw new ShapeError(`${what} [${shape.join(', ')}]: dimensions must be non-negative integers`);
  }
}

/** A GPU buffer with a reference count; shared by a tensor and its reshaped views. */
export class Storage {
  refs = 1;
  constructor(
    readonly runtime: Runtime,
    readonly buffer: GPUBuffer,
    /** Bytes the buffer holds (its pool size class). */
    readonly capacity: number,
  ) {}
  retain(): void {
    this.refs++;
  }
  release(): void {
    if (this.refs <= 0) throw new Error('storage released twice');
    if (--this.refs === 0) this.runtime.pool.release(this);
  }
}

/** A dense, row-major tensor on the GPU. Reshapes share storage; everything else makes a new tensor. */
export class Tensor {
  private disposed = false;
  readonly numel: number;
  /** Bytes of data (f16: 2 per element), rounded up to 4 for binding. */
  readonly byteLength: number;
  constructor(
    readonly storage: Storage,
    readonly shape: readonly number[],
    readonly dtype: DType,
  ) {
    this.numel = numelOf(shape);
    this.byteLength = Math.ceil((this.numel * DTYPE_BYTES[dtype]) / 4) * 4;
  }

  get runtime(): Runtime {
    return this.storage.runtime;
  }
  get rank(): number {
    return this.shape.length;
  }
  get isDisposed(): boolean {
    return this.disposed;
  }

  /** A view with another shape over the same storage (no copy). One dimension may be -1. */
  reshape(shape: readonly number[]): Tensor {
    this.assertLive('reshape');
    const resolved = [...shape];
    const infer = resolved.indexOf(-1);
    if (infer >= 0) {
      const rest = numelOf(resolved.filter((_, i) => i !== infer));
      if (rest === 0 || this.numel % rest !== 0) {
        throw new ShapeError(`cannot reshape [${this.shape.join(', ')}] to [${shape.join(', ')}]`);
      }
      resolved[infer] = this.numel / rest;
    }
    checkShape(resolved, 'reshape target');
    if (numelOf(resolved) !== this.numel) {
      throw new ShapeError(`cannot reshape [${this.shape.join(', ')}] (${this.numel} elements) to [${shape.join(', ')}]`);
    }
    this.storage.retain();
    const view = new Tensor(this.storage, resolved, this.dtype);
    track(view);
    return view;
  }

  /** Reads the data back as float32 (f32, f16), int32 or uint32. */
  async read(): Promise<Float32Array | Int32Array | Uint32Array> {
    this.assertLive('read');
    return this.runtime.read(this);
  }

  /** Keeps this tensor alive past the enclosing `tidy` (the caller then owns it). */
  keep(): this {
    untrack(this);
    return this;
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.storage.release();
  }

  assertLive(op: string): void {
    if (this.disposed) throw new Error(`${op}: tensor [${this.shape.join(', ')}] ${this.dtype} was already disposed`);
  }
}

export interface MemoryStats {
  /** Bytes of GPU buffers created and not destroyed (pooled, in use and internal). */
  allocatedBytes: number;
  /** Bytes held by live tensors. */
  liveBytes: number;
  /** Bytes in the pool, free for reuse. */
  pooledBytes: number;
  /** Highest `allocatedBytes` seen since creation or the last `resetPeak()`. */
  peakAllocatedBytes: number;
  liveTensors: number;
}

const STORAGE_USAGE = 0x80 | 0x4 | 0x8; // STORAGE | COPY_SRC | COPY_DST
const UNIFORM_USAGE = 0x40 | 0x8; // UNIFORM | COPY_DST
const MAP_READ_USAGE = 0x1 | 0x8; // MAP_READ | COPY_DST

/** Rounds a byte size to a pool size class: 8 classes per power of two (≤ 12.5% slack), ≥ 256 B. */
export function sizeClass(bytes: number): number {
  if (bytes <= 256) return 256;
  const octave = 2 ** Math.floor(Math.log2(bytes - 1));
  const step = Math.max(256, octave / 8);
  return Math.ceil(bytes / step) * step;
}

/** Buffers by size class; the oldest free buffer of a class is reused first (see the buffer reuse
 *  note above). */
export class BufferPool {
  /** Per size class, free buffers by creation order, newest first (the oldest is popped). */
  private free = new Map<number, GPUBuffer[]>();
  private readonly order = new WeakMap<GPUBuffer, number>();
  private created = 0;
  allocatedBytes = 0;
  liveBytes = 0;
  pooledBytes = 0;
  peakAllocatedBytes = 0;
  liveStorages = 0;

  constructor(private readonly rt: Runtime) {}

  acquire(bytes: number): Storage {
    const maxBuffer = this.rt.limits.maxBufferSize ?? 268435456;
    if (bytes > maxBuffer) {
      throw new ShapeError(`a tensor of ${bytes} bytes exceeds this adapter's maxBufferSize (${maxBuffer} bytes)`);
    }
    // Beyond the largest size class that fits the adapter, buffers are made (and pooled) at exact size.
    const classed = sizeClass(Math.max(4, bytes));
    const capacity = classed > maxBuffer ? bytes : classed;
    const reused = this.free.get(capacity)?.pop();
    if (reused) {
      this.pooledBytes -= capacity;
      return this.wrap(reused, capacity);
    }
    return this.wrap(this.create(capacity), capacity);
  }

  private create(capacity: number): GPUBuffer {
    const buffer = this.rt.device.createBuffer({ size: capacity, usage: STORAGE_USAGE });
    this.order.set(buffer, this.created++);
    this.allocatedBytes += capacity;
    if (this.allocatedBytes > this.peakAllocatedBytes) this.peakAllocatedBytes = this.allocatedBytes;
    return buffer;
  }

  private wrap(buffer: GPUBuffer, capacity: number): Storage {
    this.liveBytes += capacity;
    this.liveStorages++;
    return new Storage(this.rt, buffer, capacity);
  }

  release(storage: Storage): void {
    this.liveBytes -= storage.capacity;
    this.liveStorages--;
    this.toFree(storage.buffer, storage.capacity);
  }

  private toFree(buffer: GPUBuffer, capacity: number): void {
    let list = this.free.get(capacity);
    if (!list) this.free.set(capacity, (list = []));
    // Which buffer an op gets then depends on which buffers are free, not on the order they were
    // released in (async read-backs release theirs when the GPU is done).
    const rank = this.order.get(buffer) ?? 0;
    let lo = 0;
    let hi = list.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if ((this.order.get(list[mid]!) ?? 0) > rank) lo = mid + 1;
      else hi = mid;
    }
    list.splice(lo, 0, buffer);
    this.pooledBytes += capacity;
  }

  /** Destroys every free buffer. */
  trim(): void {
    this.rt.dropBindGroups();
    for (const [capacity, list] of this.free) {
      for (const b of list) {
        b.destroy();
        this.allocatedBytes -= capacity;
        this.pooledBytes -= capacity;
      }
    }
    this.free.clear();
  }

  noteExtraAllocation(bytes: number): void {
    this.allocatedBytes += bytes;
    if (this.allocatedBytes > this.peakAllocatedBytes) this.peakAllocatedBytes = this.allocatedBytes;
  }
}

/** A compute kernel's source and binding layout. Bindings in group 0: binding 0 is the uniform
 *  parameter block (when `uniforms` is true), then `inputs` read-only storage buffers, then
 *  `outputs` read-write storage buffers, in that order. */
export interface KernelSource {
  code: string;
  inputs: number;
  outputs: number;
  uniforms: boolean;
  entryPoint?: string;
}

/** A compiled kernel variant: built once per key (WGSL generated once), then looked up. */
export interface Kernel extends Readonly<KernelSource> {
  readonly key: string;
  readonly pipeline: GPUComputePipeline;
  readonly layout: GPUBindGroupLayout;
  /** Identifies the bind-group layout (kernels with equal binding counts share it). */
  readonly layoutId: number;
}

/** An output a dispatch allocates itself, after its inputs have been validated. */
export interface OutputSpec {
  shape: readonly number[];
  dtype?: DType;
}

export interface DispatchArgs {
  params?: ArrayBuffer;
  inputs: readonly Tensor[];
  /** Existing tensors to write, or shapes of new tensors to allocate (returned by `run`). */
  outputs: readonly (Tensor | OutputSpec)[];
  workgroups: readonly [number, number?, number?];
  /** Floating-point operations of the dispatch (2 per multiply-add), counted by GEMM, convolution
   *  and attention launchers from their shapes; added to `flopCount` and to profiles. */
  flops?: number;
  /** Bytes the dispatch moves, when the launcher knows better than the default (every binding read
   *  or written once). */
  bytes?: number;
}

/** Builds a uniform parameter block of 4-byte scalars in declaration order. The fields are kept as
 *  32-bit patterns in a plain array and written to an ArrayBuffer once, by `build` (one allocation
 *  per block: blocks are built for every dispatch). */
export class Params {
  private readonly words: number[] = [];
  u32(...values: number[]): this {
    for (const v of values) {
      if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) throw new RangeError(`u32 parameter out of range: ${v}`);
      this.words.push(v);
    }
    return this;
  }
  i32(...values: number[]): this {
    for (const v of values) this.words.push(v | 0); // ToInt32, as DataView.setInt32
    return this;
  }
  f32(...values: number[]): this {
    for (const v of values) {
      F32_SCRATCH[0] = v;
      this.words.push(U32_SCRATCH[0]!);
    }
    return this;
  }
  /** Appends the fields of another block. */
  append(other: Params): this {
    for (const w of other.words) this.words.push(w);
    return this;
  }
  build(): ArrayBuffer {
    // Uniform blocks are sized in 16-byte units.
    const n = this.words.length;
    const out = new Uint32Array(Math.max(4, Math.ceil(n / 4) * 4));
    for (let i = 0; i < n; i++) out[i] = this.words[i]!;
    return out.buffer;
  }
}

const F32_SCRATCH = new Float32Array(1);
const U32_SCRATCH = new Uint32Array(F32_SCRATCH.buffer);

interface Batch {
  encoder: GPUCommandEncoder;
  pass: GPUComputePassEncoder | null;
  /** The pipeline last set on `pass`. */
  pipeline: GPUComputePipeline | null;
  /** Bytes of the parameter arena used by this batch. */
  uniformUsed: number;
  dispatches: number;
  /** Profiling with timestamps: the batch's query set and the records its query pairs time. */
  timestamps: { slot: TimestampSlot; records: number[] } | null;
}

/** A dispatch kept for re-running alone (profiling without timestamps). */
interface Replay {
  pipeline: GPUComputePipeline;
  group: GPUBindGroup;
  params: Uint8Array | null;
  workgroups: [number, number, number];
}

/** One f16×f16→f32 subgroup-matrix multiply shape (M×K · K×N), and which spelling of the
 *  load/store builtins this Dawn accepts (`args`: `subgroupMatrixLoad<T>(p, offset, col_major,
 *  stride)`; `template`: `subgroupMatrixLoad<T, row_major>(p, offset, stride)`). */
export interface SubgroupMatrixSupport {
  M: number;
  N: number;
  K: number;
  subgroupSize: number;
  syntax: 'args' | 'template' | 'emulated';
}

export interface RuntimeOptions extends DeviceOptions {
  /** Dispatches recorded before a submit (default 32). */
  dispatchesPerSubmit?: number;
  /** The `tensorCores` flag (see TensorCoreMode); wins over `flags.tensorCores`. */
  tensorCores?: TensorCoreMode;
  /** Tuning flags (src/gpu/flags.ts); each wins over its environment variable. */
  flags?: FlagOptions;
}

const UNIFORM_SLOT = 256;
/** Cached bind groups before the cache starts over (a U-Net pass uses a few hundred). */
const MAX_BIND_GROUPS = 8192;

function runtimeFlags(options: RuntimeOptions): { flags: Flags; sources: Record<FlagName, FlagSource> } {
  return resolveFlags(options.tensorCores !== undefined ? { ...options.flags, tensorCores: options.tensorCores } : options.flags);
}

function subgroupMatrixProbe(M: number, N: number, K: number, syntax: 'args' | 'template', subgroupSize: number): string {
  const load = (type: string, arr: string, stride: number) =>
    syntax === 'template' ? `subgroupMatrixLoad<${type}, row_major>(&${arr}, 0u, ${stride}u)` : `subgroupMatrixLoad<${type}>(&${arr}, 0u, false, ${stride}u)`;
  const store = syntax === 'template' ? `subgroupMatrixStore<row_major>(&c, 0u, acc, ${N}u)` : `subgroupMatrixStore(&c, 0u, acc, false, ${N}u)`;
  return `enable f16;
enable subgroups;
enable chromium_experimental_subgroup_matrix;
var<workgroup> a: array<f16, ${M * K}>;
var<workgroup> b: array<f16, ${K * N}>;
@group(0) @binding(0) var<storage, read_write> c: array<f32>;
@compute @workgroup_size(${subgroupSize})
fn main() {
  let l = ${load(`subgroup_matrix_left<f16, ${K}, ${M}>`, 'a', K)};
  let r = ${load(`subgroup_matrix_right<f16, ${N}, ${K}>`, 'b', N)};
  var acc = subgroup_matrix_result<f32, ${N}, ${M}>();
  acc = subgroupMatrixMultiplyAccumulate(l, r, acc);
  ${store};
}`;
}

export class Runtime {
  readonly pool: BufferPool;
  readonly limits: Record<string, number>;
  readonly features: ReadonlySet<string>;
  readonly adapterInfo: AdapterDescription;
  /** Serial of the last submission handed to the queue; 0 before the first. */
  submittedSerial = 0;
  /** Serial of the last submission known complete. */
  completedSerial = 0;

  private batch: Batch | null = null;
  private readonly kernels = new Map<string, Kernel>();
  private readonly layouts = new Map<string, { layout: GPUBindGroupLayout; id: number }>();
  /** Bind groups by layout and buffers: repeated passes bind the same pooled buffers again. */
  private readonly bindGroups = new Map<string, GPUBindGroup>();
  private readonly bufferIds = new WeakMap<GPUBuffer, number>();
  private nextBufferId = 1;
  private readonly dynamicOffset = new Uint32Array(1);
  /** The parameter arena (one UNIFORM_SLOT per dispatch of a batch) and its host copy. */
  private uniformArena: GPUBuffer | null = null;
  private readonly uniformData: Uint8Array<ArrayBuffer>;
  private readonly inFlight: { serial: number; done: Promise<void> }[] = [];
  private readonly dispatchesPerSubmit: number;
  private readonly pendingChecks: Promise<void>[] = [];
  /** The active profiling session (startProfile … stopProfile). */
  private profiler: Profiler | null = null;
  private readonly timestampSlots: TimestampSlot[] = [];
  private replays: Replay[] = [];
  /** GPU clock (ns) of the first begin and last end timestamp of the profiling session. */
  private span = { begin: Infinity, end: -Infinity };
  private deviceError: Error | null = null;
  private destroyed = false;
  /** Dispatches recorded since creation (kernels whose grid is empty are not counted). */
  dispatchCount = 0;
  /** Floating-point operations of the GEMMs, convolutions and attention recorded since creation,
   *  counted by their launchers from the shapes (2 per multiply-add; see bench/diffsim.ts). */
  flopCount = 0;
  /** Host milliseconds spent waiting for the GPU (read-backs and syncs) since creation: a stage's
   *  wall time minus this is its host (JS) time. */
  waitMs = 0;
  /** The tuning flags, read once at creation (src/gpu/flags.ts). */
  readonly flags: Flags;
  /** Where each flag's value came from. */
  readonly flagSources: Readonly<Record<FlagName, FlagSource>>;
  /** The f16 subgroup-matrix shape the GEMMs use, or null when they use the SIMT kernels only. */
  subgroupMatrix: SubgroupMatrixSupport | null = null;

  private constructor(
    private readonly acquired: AcquiredDevice,
    options: RuntimeOptions,
    resolved: { flags: Flags; sources: Record<FlagName, FlagSource> },
  ) {
    this.flags = resolved.flags;
    this.flagSources = Object.freeze({ ...resolved.sources });
    this.limits = acquired.limits;
    this.features = new Set(acquired.features);
    this.adapterInfo = acquired.adapterInfo;
    this.pool = new BufferPool(this);
    this.dispatchesPerSubmit = options.dispatchesPerSubmit ?? 32;
    this.uniformData = new Uint8Array(UNIFORM_SLOT * this.dispatchesPerSubmit);
    const device = acquired.device;
    device.addEventListener('uncapturederror', (ev) => {
      this.fail(new Error(`WebGPU error: ${(ev as GPUUncapturedErrorEvent).error.message}`));
    });
    void device.lost.then((info) => {
      if (!this.destroyed && !this.deviceError) this.deviceError = new Error(`WebGPU device lost: ${info.message}`);
    });
  }

  static async create(options: RuntimeOptions = {}): Promise<Runtime> {
    const resolved = runtimeFlags(options); // a bad flag fails before a device is acquired
    const rt = new Runtime(await acquireDevice(options, resolved.flags), options, resolved);
    rt.subgroupMatrix = await rt.probeSubgroupMatrix();
    return rt;
  }

  /** The f16×f16→f32 configuration the GEMMs will use (16×16×16 first, then 16×8×16, 8×8×8), and
   *  the builtin spelling this Dawn compiles, tried on a one-multiply shader. Subgroups of one
   *  fixed size are required: the kernels lay subgroups out over the workgroup by that size. */
  private async probeSubgroupMatrix(): Promise<SubgroupMatrixSupport | null> {
    if (this.tensorCores === 'off') return null;
    if (this.tensorCores === 'emulate') {
      if (!this.hasShaderF16) return null;
      const [M, N, K] = this.flags.tcShape.split('x').map(Number) as [number, number, number];
      return { M, N, K, subgroupSize: this.flags.tcSubgroup, syntax: 'emulated' };
    }
    const info = this.adapterInfo;
    if (!this.hasSubgroupMatrix || !this.hasShaderF16 || !info.subgroupMaxSize || info.subgroupMinSize !== info.subgroupMaxSize) return null;
    const f16 = (info.subgroupMatrixConfigs ?? []).filter((c) => c.componentType === 'f16' && c.resultComponentType === 'f32');
    const pick = [[16, 16, 16], [16, 8, 16], [8, 8, 8]].map(([M, N, K]) => f16.find((c) => c.M === M && c.N === N && c.K === K)).find((c) => c);
    if (!pick) return null;
    for (const syntax of ['template', 'args'] as const) {
      const code = subgroupMatrixProbe(pick.M, pick.N, pick.K, syntax, info.subgroupMaxSize);
      this.device.pushErrorScope('validation');
      const module = this.device.createShaderModule({ code, label: `probe subgroup matrix ${syntax}` });
      this.device.createComputePipeline({ layout: 'auto', compute: { module, entryPoint: 'main' } });
      const err = await this.device.popErrorScope();
      const messages = await module.getCompilationInfo();
      if (!err && !messages.messages.some((m) => m.type === 'error')) return { M: pick.M, N: pick.N, K: pick.K, subgroupSize: info.subgroupMaxSize, syntax };
    }
    return null;
  }

  get device(): GPUDevice {
    return this.acquired.device;
  }
  /** Which GEMMs use subgroup matrices (see TensorCoreMode). */
  get tensorCores(): TensorCoreMode {
    return this.flags.tensorCores;
  }
  get hasShaderF16(): boolean {
    return this.features.has('shader-f16');
  }
  get hasSubgroups(): boolean {
    return this.features.has('subgroups');
  }
  get hasSubgroupMatrix(): boolean {
    return this.features.has('chromium-experimental-subgroup-matrix');
  }

  // ---------------------------------------------------------------- tensors

  /** An uninitialised tensor. */
  empty(shape: readonly number[], dtype: DType = 'f32'): Tensor {
    this.assertUsable();
    checkShape(shape);
    const t = new Tensor(this.pool.acquire(bytesOf(shape, dtype)), [...shape], dtype);
    track(t);
    return t;
  }

  /** Uploads host data. f16 tensors take float32 values (converted) or raw half bits (Uint16Array). */
  upload(data: Float32Array | Int32Array | Uint32Array | Uint16Array | readonly number[], shape: readonly number[], dtype: DType = 'f32'): Tensor {
    checkShape(shape);
    const n = numelOf(shape);
    if (data.length !== n) {
      throw new ShapeError(`upload: ${data.length} values given for shape [${shape.join(', ')}] (${n} elements)`);
    }
    const t = this.empty(shape, dtype);
    this.writeTensor(t, data);
    return t;
  }

  zeros(shape: readonly number[], dtype: DType = 'f32'): Tensor {
    const t = this.empty(shape, dtype);
    this.endPass();
    this.ensureBatch().encoder.clearBuffer(t.storage.buffer, 0, t.byteLength);
    return t;
  }

  /** Overwrites a tensor's contents with host data. */
  writeTensor(t: Tensor, data: Float32Array | Int32Array | Uint32Array | Uint16Array | readonly number[]): void {
    t.assertLive('write');
    if (data.length !== t.numel) throw new ShapeError(`write: ${data.length} values for a tensor of ${t.numel}`);
    let bytes: Uint8Array;
    if (t.dtype === 'f16') {
      const half = data instanceof Uint16Array ? data : f32ArrayToF16(Float32Array.from(data as ArrayLike<number>));
      bytes = new Uint8Array(half.buffer, half.byteOffset, half.byteLength);
    } else if (t.dtype === 'f32') {
      const f = data instanceof Float32Array ? data : Float32Array.from(data as ArrayLike<number>);
      bytes = new Uint8Array(f.buffer, f.byteOffset, f.byteLength);
    } else {
      const arr = t.dtype === 'i32' ? (data instanceof Int32Array ? data : Int32Array.from(data as ArrayLike<number>)) : data instanceof Uint32Array ? data : Uint32Array.from(data as ArrayLike<number>);
      bytes = new Uint8Array(arr.buffer, arr.byteOffset, arr.byteLength);
    }
    // Commands already recorded must see the old contents: submit them before the queue write.
    if (this.batch) this.flush();
    if (bytes.byteLength % 4 !== 0 || bytes.byteOffset % 4 !== 0) {
      const padded = new Uint8Array(Math.ceil(bytes.byteLength / 4) * 4);
      padded.set(bytes);
      bytes = padded;
    }
    if (bytes.byteLength > 0) this.device.queue.writeBuffer(t.storage.buffer, 0, bytes as Uint8Array<ArrayBuffer>);
  }

  /** Reads a tensor back: f32 and f16 as Float32Array, i32 as Int32Array, u32 as Uint32Array. */
  async read(t: Tensor): Promise<Float32Array | Int32Array | Uint32Array> {
    t.assertLive('read');
    this.assertUsable();
    const size = t.byteLength;
    if (size === 0) return t.dtype === 'i32' ? new Int32Array(0) : t.dtype === 'u32' ? new Uint32Array(0) : new Float32Array(0);
    const staging = this.device.createBuffer({ size, usage: MAP_READ_USAGE });
    this.pool.noteExtraAllocation(size);
    this.endPass();
    this.ensureBatch().encoder.copyBufferToBuffer(t.storage.buffer, 0, staging, 0, size);
    this.flush();
    const w0 = performance.now();
    try {
      await staging.mapAsync(1 /* GPUMapMode.READ */);
      this.waitMs += performance.now() - w0;
    } catch (e) {
      staging.destroy();
      this.pool.noteExtraAllocation(-size);
      this.throwIfFailed();
      throw e;
    }
    const copy = staging.getMappedRange().slice(0);
    staging.unmap();
    staging.destroy();
    this.pool.noteExtraAllocation(-size);
    await this.settleChecks();
    this.throwIfFailed();
    switch (t.dtype) {
      case 'f32':
        return new Float32Array(copy, 0, t.numel);
      case 'f16':
        return f16ArrayToF32(new Uint16Array(copy, 0, t.numel));
      case 'i32':
        return new Int32Array(copy, 0, t.numel);
      case 'u32':
        return new Uint32Array(copy, 0, t.numel);
    }
  }

  /** Copies `src` into `dst` (same byte length). */
  copy(src: Tensor, dst: Tensor): void {
    src.assertLive('copy');
    dst.assertLive('copy');
    if (src.byteLength !== dst.byteLength) throw new ShapeError(`copy: ${src.byteLength} bytes into ${dst.byteLength}`);
    this.endPass();
    this.ensureBatch().encoder.copyBufferToBuffer(src.storage.buffer, 0, dst.storage.buffer, 0, src.byteLength);
  }

  /** Copies `bytes` bytes from `src` at `srcOffset` into `dst` at `dstOffset` (multiples of 4). */
  copyRegion(src: Tensor, srcOffset: number, dst: Tensor, dstOffset: number, bytes: number): void {
    src.assertLive('copyRegion');
    dst.assertLive('copyRegion');
    if (srcOffset % 4 || dstOffset % 4 || bytes % 4 || srcOffset + bytes > src.byteLength || dstOffset + bytes > dst.byteLength) {
      throw new ShapeError(`copyRegion: ${bytes} bytes from ${srcOffset} into ${dstOffset} out of range or unaligned`);
    }
    if (bytes === 0) return;
    this.endPass();
    this.ensureBatch().encoder.copyBufferToBuffer(src.storage.buffer, srcOffset, dst.storage.buffer, dstOffset, bytes);
  }

  // ---------------------------------------------------------------- kernels

  /** The kernel variant `key`, built by `build` (WGSL source) and compiled on first use, then
   *  cached: later calls with the same key return the cached kernel without calling `build`. A
   *  shader that fails to compile makes the runtime fail: the next read or sync reports the WGSL
   *  errors with the kernel's key. */
  kernel(key: string, build: () => KernelSource): Kernel {
    const cached = this.kernels.get(key);
    if (cached) return cached;
    this.assertUsable();
    const src = build();
    const device = this.device;
    const { layout, id: layoutId } = this.bindGroupLayout(src);
    device.pushErrorScope('validation');
    const module = device.createShaderModule({ code: src.code, label: key });
    const pipeline = device.createComputePipeline({
      label: key,
      layout: device.createPipelineLayout({ bindGroupLayouts: [layout] }),
      compute: { module, entryPoint: src.entryPoint ?? 'main' },
    });
    const checked = device.popErrorScope().then(async (err) => {
      if (!err) return;
      const info = await module.getCompilationInfo();
      const lines = src.code.split('\n');
      const detail = info.messages
        .filter((m) => m.type === 'error')
        .map((m) => `\n  line ${m.lineNum}:${m.linePos}: ${m.message}\n    ${lines[m.lineNum - 1] ?? ''}`)
        .join('');
      this.fail(new Error(`kernel '${key}' failed to compile: ${err.message}${detail}`));
    });
    this.pendingChecks.push(checked);
    const kernel: Kernel = { key, ...src, pipeline, layout, layoutId };
    this.kernels.set(key, kernel);
    return kernel;
  }

  /** One layout per binding shape; the uniform block is bound with a dynamic offset into the
   *  batch's parameter arena, so a bind group does not depend on where the parameters sit. */
  private bindGroupLayout(def: KernelSource): { layout: GPUBindGroupLayout; id: number } {
    const key = `${def.uniforms ? 1 : 0}:${def.inputs}:${def.outputs}`;
    let entry = this.layouts.get(key);
    if (!entry) {
      const entries: GPUBindGroupLayoutEntry[] = [];
      let binding = 0;
      if (def.uniforms) entries.push({ binding: binding++, visibility: 4, buffer: { type: 'uniform', hasDynamicOffset: true } });
      for (let i = 0; i < def.inputs; i++) entries.push({ binding: binding++, visibility: 4, buffer: { type: 'read-only-storage' } });
      for (let i = 0; i < def.outputs; i++) entries.push({ binding: binding++, visibility: 4, buffer: { type: 'storage' } });
      entry = { layout: this.device.createBindGroupLayout({ entries, label: key }), id: this.layouts.size + 1 };
      this.layouts.set(key, entry);
    }
    return entry;
  }

  private bufferId(buffer: GPUBuffer): number {
    let id = this.bufferIds.get(buffer);
    if (id === undefined) this.bufferIds.set(buffer, (id = this.nextBufferId++));
    return id;
  }

  /** The bind group of a dispatch, created once per (layout, arena, buffers and sizes). Creating
   *  one costs more than the rest of a dispatch together. */
  private bindGroup(kernel: Kernel, arena: GPUBuffer, tensors: readonly Tensor[]): GPUBindGroup {
    let key = `${kernel.layoutId}`;
    if (kernel.uniforms) key += `u${this.bufferId(arena)}`;
    for (const t of tensors) key += `:${this.bufferId(t.storage.buffer)}/${t.byteLength}`;
    let group = this.bindGroups.get(key);
    if (!group) {
      const entries: GPUBindGroupEntry[] = [];
      let binding = 0;
      if (kernel.uniforms) entries.push({ binding: binding++, resource: { buffer: arena, offset: 0, size: UNIFORM_SLOT } });
      for (const t of tensors) entries.push({ binding: binding++, resource: { buffer: t.storage.buffer, offset: 0, size: Math.max(4, t.byteLength) } });
      group = this.device.createBindGroup({ layout: kernel.layout, entries });
      if (this.bindGroups.size >= MAX_BIND_GROUPS) this.bindGroups.clear();
      this.bindGroups.set(key, group);
    }
    return group;
  }

  /** @internal Forgets cached bind groups (before buffers they reference are destroyed). */
  dropBindGroups(): void {
    this.bindGroups.clear();
  }

  private checkBinding(key: string, bytes: number, shape: readonly number[], dtype: DType): void {
    const maxBinding = this.limits.maxStorageBufferBindingSize ?? 134217728;
    if (bytes > maxBinding) {
      throw new ShapeError(`kernel '${key}': tensor [${shape.join(', ')}] ${dtype} is ${bytes} bytes, over this adapter's maxStorageBufferBindingSize (${maxBinding})`);
    }
  }

  /** The one dispatch path: validates the bindings, allocates the outputs given as shapes, and
   *  records the dispatch into the current batch before returning the outputs (in order). Nothing
   *  is allocated when validation fails. */
  run(kernel: Kernel, args: DispatchArgs): Tensor[] {
    this.assertUsable();
    const key = kernel.key;
    if (args.inputs.length !== kernel.inputs || args.outputs.length !== kernel.outputs) {
      throw new Error(`kernel '${key}' takes ${kernel.inputs} inputs and ${kernel.outputs} outputs, got ${args.inputs.length} and ${args.outputs.length}`);
    }
    for (const t of args.inputs) {
      t.assertLive(key);
      this.checkBinding(key, t.byteLength, t.shape, t.dtype);
    }
    for (const o of args.outputs) {
      if (o instanceof Tensor) {
        o.assertLive(key);
        this.checkBinding(key, o.byteLength, o.shape, o.dtype);
      } else {
        checkShape(o.shape, `kernel '${key}' output`);
        this.checkBinding(key, bytesOf(o.shape, o.dtype ?? 'f32'), o.shape, o.dtype ?? 'f32');
      }
    }
    const [x, y = 1, z = 1] = args.workgroups;
    const maxDim = this.limits.maxComputeWorkgroupsPerDimension ?? 65535;
    if (x > maxDim || y > maxDim || z > maxDim) throw new Error(`kernel '${key}': workgroup grid [${x}, ${y}, ${z}] exceeds ${maxDim} per dimension`);
    if (kernel.uniforms && (args.params?.byteLength ?? 0) > UNIFORM_SLOT) throw new Error(`kernel '${key}': parameter block over ${UNIFORM_SLOT} bytes`);

    const outputs = args.outputs.map((o) => (o instanceof Tensor ? o : this.empty(o.shape, o.dtype ?? 'f32')));
    if (x === 0 || y === 0 || z === 0) return outputs;
    let batch = this.ensureBatch();
    if (kernel.uniforms && batch.uniformUsed + UNIFORM_SLOT > this.uniformData.byteLength) {
      this.flush();
      batch = this.ensureBatch();
    }
    const group = this.bindGroup(kernel, this.arena(), args.inputs.length ? [...args.inputs, ...outputs] : outputs);
    const pass = this.profiler?.timing === 'timestamp' ? this.beginTimedPass(batch) : (batch.pass ??= batch.encoder.beginComputePass());
    if (batch.pipeline !== kernel.pipeline) {
      pass.setPipeline(kernel.pipeline);
      batch.pipeline = kernel.pipeline;
    }
    if (kernel.uniforms) {
      const params = args.params ?? EMPTY_PARAMS;
      this.uniformData.set(new Uint8Array(params), batch.uniformUsed);
      this.dynamicOffset[0] = batch.uniformUsed;
      pass.setBindGroup(0, group, this.dynamicOffset, 0, 1);
      batch.uniformUsed += UNIFORM_SLOT;
    } else pass.setBindGroup(0, group);
    pass.dispatchWorkgroups(x, y, z);
    batch.dispatches++;
    this.dispatchCount++;
    if (args.flops) this.flopCount += args.flops;
    if (this.profiler) this.profileDispatch(batch, kernel, group, args, outputs, [x, y, z]);
    if (batch.dispatches >= this.dispatchesPerSubmit) this.flush();
    return outputs;
  }

  // ---------------------------------------------------------------- profiling

  /** Starts timing every dispatch (see src/gpu/profile.ts): with GPU timestamps when the device has
   *  `timestamp-query` (each dispatch then runs in its own compute pass), else by re-running each
   *  dispatch alone after the stage (`stopProfile`) and timing its submission. `timing: 'submit'`
   *  forces the latter. Work recorded before is submitted first. */
  startProfile(options: { timing?: 'timestamp' | 'submit' } = {}): Profiler {
    this.assertUsable();
    if (this.profiler) throw new Error('startProfile: a profile is already running on this runtime');
    this.flush();
    const hasTimestamps = this.features.has('timestamp-query');
    const timing = options.timing ?? (hasTimestamps ? 'timestamp' : 'submit');
    if (timing === 'timestamp' && !hasTimestamps) throw new Error("startProfile: this device has no 'timestamp-query' feature");
    const note = timing === 'timestamp' ? '' : hasTimestamps ? 'per-submit timing was asked for' : "the device has no 'timestamp-query' feature";
    this.profiler = new Profiler(timing, note ? `${note}: each dispatch re-run alone after the stage and timed from submit to completion, submit overhead included` : '');
    this.replays = [];
    this.span = { begin: Infinity, end: -Infinity };
    return this.profiler;
  }

  /** Ends the profile: waits for the GPU and every timestamp (or re-runs and times each dispatch
   *  alone, without timestamps). Returns the profiler, whose records now hold their times, and the
   *  GPU span of the timed dispatches (timestamps only). */
  async stopProfile(): Promise<{ profiler: Profiler; spanMs: number | null }> {
    const p = this.profiler;
    if (!p) throw new Error('stopProfile: no profile is running');
    try {
      await this.sync();
    } finally {
      this.profiler = null;
    }
    await p.finish();
    if (p.timing === 'submit') await this.replayTimed(p);
    this.replays = [];
    const spanMs = p.timing === 'timestamp' && this.span.end >= this.span.begin ? (this.span.end - this.span.begin) / 1e6 : null;
    return { profiler: p, spanMs };
  }

  private profileDispatch(batch: Batch, kernel: Kernel, group: GPUBindGroup, args: DispatchArgs, outputs: readonly Tensor[], wg: [number, number, number]): void {
    const p = this.profiler!;
    let bytes = args.bytes;
    if (bytes === undefined) {
      bytes = 0;
      for (const t of args.inputs) bytes += t.byteLength;
      for (const t of outputs) bytes += t.byteLength;
    }
    const index = p.add(kernel.key, wg, args.flops ?? 0, bytes);
    if (p.timing === 'timestamp') {
      batch.timestamps!.records.push(index);
      batch.pass!.end();
      batch.pass = null;
      batch.pipeline = null;
    } else {
      const params = kernel.uniforms ? this.uniformData.slice(batch.uniformUsed - UNIFORM_SLOT, batch.uniformUsed) : null;
      this.replays.push({ pipeline: kernel.pipeline, group, params, workgroups: wg });
    }
  }

  /** Opens a compute pass for one dispatch whose beginning and end write timestamps. */
  private beginTimedPass(batch: Batch): GPUComputePassEncoder {
    this.endPass();
    if (!batch.timestamps) {
      const slot = this.timestampSlots.pop() ?? this.createTimestampSlot();
      batch.timestamps = { slot, records: [] };
    }
    const at = 2 * batch.timestamps.records.length;
    batch.pass = batch.encoder.beginComputePass({ timestampWrites: { querySet: batch.timestamps.slot.querySet, beginningOfPassWriteIndex: at, endOfPassWriteIndex: at + 1 } });
    return batch.pass;
  }

  private createTimestampSlot(): TimestampSlot {
    const capacity = this.dispatchesPerSubmit;
    const bytes = 16 * capacity;
    return {
      querySet: this.device.createQuerySet({ type: 'timestamp', count: 2 * capacity }),
      resolve: this.device.createBuffer({ size: bytes, usage: 0x200 | 0x4 }), // QUERY_RESOLVE | COPY_SRC
      readback: this.device.createBuffer({ size: bytes, usage: MAP_READ_USAGE }),
      capacity,
    };
  }

  private async readTimestamps(p: Profiler, slot: TimestampSlot, records: readonly number[]): Promise<void> {
    try {
      await slot.readback.mapAsync(1 /* GPUMapMode.READ */, 0, 16 * records.length);
    } catch {
      return; // the records stay untimed (reported as such)
    }
    const ns = new BigInt64Array(slot.readback.getMappedRange(0, 16 * records.length).slice(0));
    slot.readback.unmap();
    this.timestampSlots.push(slot);
    for (let i = 0; i < records.length; i++) {
      const begin = Number(ns[2 * i]!);
      const end = Number(ns[2 * i + 1]!);
      // A pair the GPU did not write reads 0; a reversed pair is a broken clock: both stay untimed.
      if (begin <= 0 || end < begin) continue;
      p.records[records[i]!]!.ms = (end - begin) / 1e6;
      if (begin < this.span.begin) this.span.begin = begin;
      if (end > this.span.end) this.span.end = end;
    }
  }

  /** Per-submit timing: every dispatch of the stage again, alone in its own submission, timed on
   *  the host from submit to completion. The buffers it binds are still allocated (pooled) but may
   *  hold other data by now: the times are what they are for, the results are not used. */
  private async replayTimed(p: Profiler): Promise<void> {
    const arena = this.arena();
    for (let i = 0; i < this.replays.length; i++) {
      const r = this.replays[i]!;
      const encoder = this.device.createCommandEncoder();
      const pass = encoder.beginComputePass();
      pass.setPipeline(r.pipeline);
      if (r.params) {
        this.device.queue.writeBuffer(arena, 0, r.params as Uint8Array<ArrayBuffer>);
        this.dynamicOffset[0] = 0;
        pass.setBindGroup(0, r.group, this.dynamicOffset, 0, 1);
      } else pass.setBindGroup(0, r.group);
      pass.dispatchWorkgroups(...r.workgroups);
      pass.end();
      const t0 = performance.now();
      this.device.queue.submit([encoder.finish()]);
      await this.device.queue.onSubmittedWorkDone();
      p.records[i]!.ms = performance.now() - t0;
    }
    this.throwIfFailed();
  }

  /** A workgroup grid covering `count` workgroups within the per-dimension limit. */
  grid(count: number): [number, number, number] {
    const maxDim = this.limits.maxComputeWorkgroupsPerDimension ?? 65535;
    if (count <= maxDim) return [Math.max(count, 0), 1, 1];
    const y = Math.ceil(count / maxDim);
    return [Math.ceil(count / y), y, 1];
  }

  private ensureBatch(): Batch {
    if (!this.batch) this.batch = { encoder: this.device.createCommandEncoder(), pass: null, pipeline: null, uniformUsed: 0, dispatches: 0, timestamps: null };
    return this.batch;
  }

  private arena(): GPUBuffer {
    if (!this.uniformArena) {
      this.uniformArena = this.device.createBuffer({ size: this.uniformData.byteLength, usage: UNIFORM_USAGE });
      this.pool.noteExtraAllocation(this.uniformData.byteLength);
    }
    return this.uniformArena;
  }

  private endPass(): void {
    if (this.batch?.pass) {
      this.batch.pass.end();
      this.batch.pass = null;
      this.batch.pipeline = null;
    }
  }

  /** Submits the recorded work. */
  flush(): void {
    const batch = this.batch;
    if (!batch) return;
    this.endPass();
    this.batch = null;
    // Ordered after the earlier submissions (which read the arena's previous contents) and before this one.
    if (batch.uniformUsed > 0) this.device.queue.writeBuffer(this.arena(), 0, this.uniformData, 0, batch.uniformUsed);
    const ts = batch.timestamps;
    if (ts) {
      const bytes = 16 * ts.records.length;
      batch.encoder.resolveQuerySet(ts.slot.querySet, 0, 2 * ts.records.length, ts.slot.resolve, 0);
      batch.encoder.copyBufferToBuffer(ts.slot.resolve, 0, ts.slot.readback, 0, bytes);
    }
    this.device.queue.submit([batch.encoder.finish()]);
    if (ts && this.profiler) this.profiler.pending.push(this.readTimestamps(this.profiler, ts.slot, ts.records));
    const serial = ++this.submittedSerial;
    const done = this.device.queue.onSubmittedWorkDone().then(
      () => this.onComplete(serial),
      () => this.onComplete(serial),
    );
    this.inFlight.push({ serial, done });
  }

  private onComplete(serial: number): void {
    if (serial > this.completedSerial) this.completedSerial = serial;
    while (this.inFlight.length && this.inFlight[0]!.serial <= this.completedSerial) this.inFlight.shift();
  }



  /** Submits pending work and waits until the GPU has finished it. */
  async sync(): Promise<void> {
    this.flush();
    const w0 = performance.now();
    while (this.inFlight.length) await this.inFlight[this.inFlight.length - 1]!.done;
    this.waitMs += performance.now() - w0;
    await this.settleChecks();
    this.throwIfFailed();
  }

  /** Waits for the outcome of pipeline creations (compile errors arrive asynchronously). */
  private async settleChecks(): Promise<void> {
    while (this.pendingChecks.length) await Promise.all(this.pendingChecks.splice(0));
  }

  /** @internal Marks the runtime as failed: the first error is reported by every later call. */
  fail(err: Error): void {
    if (!this.deviceError) this.deviceError = err;
  }

  /** GPU memory counters; all zero once the runtime is closed or destroyed. */
  memory(): MemoryStats {
    if (this.destroyed) return { allocatedBytes: 0, liveBytes: 0, pooledBytes: 0, peakAllocatedBytes: this.pool.peakAllocatedBytes, liveTensors: 0 };
    return {
      allocatedBytes: this.pool.allocatedBytes,
      liveBytes: this.pool.liveBytes,
      pooledBytes: this.pool.pooledBytes,
      peakAllocatedBytes: this.pool.peakAllocatedBytes,
      liveTensors: this.pool.liveStorages,
    };
  }

  resetPeak(): void {
    this.pool.peakAllocatedBytes = this.pool.allocatedBytes;
  }

  /** Waits for the GPU, then destroys every pooled (free) buffer. */
  async trim(): Promise<void> {
    await this.sync();
    this.pool.trim();
  }

  /** Destroys the device (after one queue round trip). Tensors of this runtime become unusable.
   *  `close()` does the same and also waits until the device reports itself lost. */
  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    // Destroying a device Dawn is still bringing up crashes dawn.node at exit: let one queue round
    // trip complete first (the runtime refuses new work from now on).
    void this.device.queue.onSubmittedWorkDone().then(
      () => this.acquired.destroy(),
      () => this.acquired.destroy(),
    );
  }

  /** Waits for submitted work, destroys the device and waits until it reports itself lost. */
  async close(): Promise<void> {
    if (this.destroyed) return;
    try {
      await this.sync();
      // A queue round trip even when nothing was submitted: destroying a device that Dawn is still
      // bringing up (e.g. right after creation) crashes dawn.node at process exit.
      await this.device.queue.onSubmittedWorkDone();
    } catch {
      // a failed device is closed all the same
    }
    const lost = this.device.lost;
    this.destroyed = true;
    this.acquired.destroy();
    await Promise.race([lost, new Promise((r) => setTimeout(r, 2000).unref?.())]);
  }

  private assertUsable(): void {
    if (this.destroyed) throw new Error('the runtime was destroyed');
    this.throwIfFailed();
  }

  private throwIfFailed(): void {
    if (this.deviceError) throw this.deviceError;
  }
}

const EMPTY_PARAMS = new ArrayBuffer(16);

function bytesOf(shape: readonly number[], dtype: DType): number {
  return Math.ceil((numelOf(shape) * DTYPE_BYTES[dtype]) / 4) * 4;
}

// ---------------------------------------------------------------- tidy

// Ops are synchronous, so a tidy call runs to completion before any other code does: the stack
// below only ever holds the scopes of the tidy calls currently on the JS call stack, and
// concurrent async tasks cannot register tensors in each other's scopes.
const tidyStack: Set<Tensor>[] = [];

function track(t: Tensor): void {
  tidyStack[tidyStack.length - 1]?.add(t);
}

function untrack(t: Tensor): void {
  for (const s of tidyStack) s.delete(t);
}

/** Runs the synchronous `fn` and disposes every tensor created inside it except those it returns
 *  (also inside arrays, Maps and plain objects, up to four levels deep) and those marked with
 *  `keep()`. Returned tensors belong to the enclosing tidy, or to the caller outside any. When
 *  `fn` throws, everything it created is disposed. `fn` may not be async: a tensor created after
 *  an `await` could not be attributed to the right call. */
export function tidy<T>(fn: () => T): T {
  const created = new Set<Tensor>();
  tidyStack.push(created);
  let result: T;
  try {
    result = fn();
  } catch (e) {
    tidyStack.pop();
    for (const t of created) t.dispose();
    throw e;
  }
  tidyStack.pop();
  if (result !== null && typeof result === 'object' && typeof (result as { then?: unknown }).then === 'function') {
    for (const t of created) t.dispose();
    throw new TypeError('tidy: the function returned a Promise; tidy takes synchronous functions (ops are synchronous, only reads are async)');
  }
  const keep = new Set<Tensor>();
  collectTensors(result, keep, 0);
  const parent = tidyStack[tidyStack.length - 1];
  for (const t of created) {
    if (keep.has(t)) parent?.add(t);
    else t.dispose();
  }
  return result;
}

function collectTensors(value: unknown, out: Set<Tensor>, depth: number): void {
  if (depth > 4 || value === null || typeof value !== 'object') return;
  if (value instanceof Tensor) {
    out.add(value);
    return;
  }
  if (Array.isArray(value)) for (const v of value) collectTensors(v, out, depth + 1);
  else if (value instanceof Map) for (const v of value.values()) collectTensors(v, out, depth + 1);
  else if (Object.getPrototypeOf(value) === Object.prototype) for (const v of Object.values(value)) collectTensors(v, out, depth + 1);
}

let shared: Promise<Runtime> | null = null;

/** A process-wide runtime, created on first use. */
export function getRuntime(options: RuntimeOptions = {}): Promise<Runtime> {
  if (!shared) {
    shared = Runtime.create(options);
    shared.catch(() => (shared = null));
  }
  return shared;
}

/** Destroys the process-wide runtime (lets Node exit promptly). */
export async function releaseRuntime(): Promise<void> {
  if (!shared) return;
  const rt = await shared.catch(() => null);
  shared = null;
  await rt?.close();
}
