// Elementwise kernels: dtype casts, activations, affine maps, broadcasting binary ops, GEGLU.
//
// Activations are f32 or f16 (see `activationDtype`); the arithmetic is f32 either way. f16
// operands are read as packed pairs through `array<u32>` and unpacked; an f16 result is written
// element by element through `array<f16>` with a saturating conversion. f32 operands give exactly
// the f32 kernels of before.

import { ShapeError, numelOf, type Tensor } from '../gpu/runtime.js';
import {
  Params,
  WGSL_ACTIVATIONS,
  activationDtype,
  assertFloat,
  loadF32,
  outputType,
  runElementwise,
  runtimeOf,
  shapeStr,
  storageType,
  storeValue,
  type Activation,
  type ActivationDType,
} from './common.js';

const MAX_RANK = 6;

/** x converted to `dtype`: f32 → f16 rounds each value to the nearest f16 (WGSL's `f16()`
 *  conversion, round to nearest even) and saturates to ±65504 instead of overflowing; f16 → f32 is
 *  exact. When x already has `dtype` the result is `x.reshape(x.shape)`: a new handle on the same
 *  storage (no copy), so the caller may dispose x and the result independently. */
export function cast(x: Tensor, dtype: ActivationDType): Tensor {
  assertFloat(x, 'cast: x', true);
  if (dtype !== 'f32' && dtype !== 'f16') throw new TypeError(`cast: dtype must be 'f32' or 'f16', got '${String(dtype)}'`);
  if (x.dtype === dtype) return x.reshape(x.shape);
  const rt = runtimeOf(x);
  // Writing f16 elements needs shader-f16; reading f16 (unpack2x16float) does not.
  if (dtype === 'f16' && !rt.hasShaderF16) throw new TypeError(`cast: f16 results need the adapter's shader-f16 feature, which this adapter (${rt.adapterInfo.description}) does not offer`);
  const from = x.dtype;
  return runElementwise(
    rt,
    `cast:${from}:${dtype}`,
    () => ({
      bindings: [`var<storage, read> x: array<${storageType(from)}>`, `var<storage, read_write> y: array<${outputType(dtype)}>`],
      inputs: 1,
      outputs: 1,
      f16: dtype === 'f16',
      body: `y[i] = ${storeValue(dtype, loadF32('x', from, 'i'))};`,
    }),
    x.numel,
    new Params(),
    [x],
    [{ shape: x.shape, dtype }],
  )[0]!;
}

export type UnaryOp = Activation | 'exp';

/** y = clamp(op(x · scale + shift), lo, hi), elementwise, in f32; y has x's dtype (f32 or f16). */
export function unary(x: Tensor, op: UnaryOp, scale = 1, shift = 0, clampTo?: readonly [number, number]): Tensor {
  const dtype = activationDtype(x, `unary(${op})`);
  const rt = runtimeOf(x);
  const n = x.numel;
  const [lo, hi] = clampTo ?? [-3.4e38, 3.4e38];
  const expr = `act_${op}(${loadF32('x', dtype, 'i')} * p.scale + p.shift)`;
  return runElementwise(
    rt,
    `unary:${op}${clampTo ? ':clamp' : ''}:${dtype}`,
    () => ({
      fields: 'scale: f32, shift: f32, lo: f32, hi: f32',
      bindings: [`var<storage, read> x: array<${storageType(dtype)}>`, `var<storage, read_write> y: array<${outputType(dtype)}>`],
      inputs: 1,
      outputs: 1,
      prelude: `${WGSL_ACTIVATIONS}\nfn act_exp(v: f32) -> f32 { return exp(v); }`,
      f16: dtype === 'f16',
      body: `y[i] = ${storeValue(dtype, clampTo ? `clamp(${expr}, p.lo, p.hi)` : expr)};`,
    }),
    n,
    new Params().f32(scale, shift, lo, hi),
    [x],
    [{ shape: x.shape, dtype }],
  )[0]!;
}

export const silu = (x: Tensor) => unary(x, 'silu');
export const gelu = (x: Tensor) => unary(x, 'gelu');
export const quickGelu = (x: Tensor) => unary(x, 'quick_gelu');
/** y = x · scale + shift. */
export const affine = (x: Tensor, scale: number, shift: number) => unary(x, 'none', scale, shift);

export type BinaryOp = 'add' | 'sub' | 'mul' | 'div';
const BINARY_EXPR: Record<BinaryOp, string> = { add: 'a + b', sub: 'a - b', mul: 'a * b', div: 'a / b' };

function sameShape(x: readonly number[], y: readonly number[]): boolean {
  return x.length === y.length && x.every((d, i) => d === y[i]);
}

/** The broadcast shape of two shapes (NumPy rules). */
export function broadcastShapes(a: readonly number[], b: readonly number[], what = 'broadcast'): number[] {
  const rank = Math.max(a.length, b.length);
  const out: number[] = [];
  for (let i = 0; i < rank; i++) {
    const da = a[a.length - rank + i] ?? 1;
    const db = b[b.length - rank + i] ?? 1;
    if (da !== db && da !== 1 && db !== 1) throw new ShapeError(`${what}: shapes ${shapeStr(a)} and ${shapeStr(b)} do not broadcast`);
    out.push(da === 1 ? db : da);
  }
  return out;
}

/** Element strides of `shape` read as the broadcast `outShape` (0 along broadcast axes), padded to MAX_RANK. */
function broadcastStrides(shape: readonly number[], outShape: readonly number[]): number[] {
  const rank = outShape.length;
  const strides = new Array<number>(rank).fill(0);
  let s = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    const outAxis = rank - shape.length + i;
    strides[outAxis] = shape[i] === 1 ? 0 : s;
    s *= shape[i]!;
  }
  return strides;
}

/** y = (alpha·a) op (beta·b) with NumPy broadcasting, in f32. a and b are each f32 or f16; y has
 *  a's dtype (b is often a bias or a skip branch of either dtype). */
export function binary(a: Tensor, b: Tensor, op: BinaryOp, alpha = 1, beta = 1): Tensor {
  const da = activationDtype(a, `${op}: a`);
  // b is only read (unpacked), which needs no shader-f16.
  assertFloat(b, `${op}: b`, true);
  const db = b.dtype;
  const rt = runtimeOf(a, b);
  const outShape = broadcastShapes(a.shape, b.shape, op);
  if (outShape.length > MAX_RANK) throw new ShapeError(`${op}: rank ${outShape.length} over ${MAX_RANK}`);
  const n = numelOf(outShape);
  const same = sameShape(a.shape, outShape) && sameShape(b.shape, outShape);
  // Pad to MAX_RANK with leading size-1 axes.
  const pad = MAX_RANK - outShape.length;
  const dims = [...new Array<number>(pad).fill(1), ...outShape];
  const sa = [...new Array<number>(pad).fill(0), ...broadcastStrides(a.shape, outShape)];
  const sb = [...new Array<number>(pad).fill(0), ...broadcastStrides(b.shape, outShape)];
  const indexCode = same
    ? 'let ia = i; let ib = i;'
    : `var rem = i; var ia = 0u; var ib = 0u;
  for (var d = ${MAX_RANK - 1}i; d >= 0; d--) {
    let q = rem % p.dims[d].x;
    rem = rem / p.dims[d].x;
    ia += q * p.dims[d].y;
    ib += q * p.dims[d].z;
  }`;
  const prm = new Params().f32(alpha, beta).u32(0);
  for (let d = 0; d < MAX_RANK; d++) prm.u32(dims[d]!, sa[d]!, sb[d]!, 0);
  return runElementwise(
    rt,
    `binary:${op}:${same ? 'same' : 'bcast'}:${da}:${db}`,
    () => ({
      fields: `alpha: f32, beta: f32, _pad: u32, dims: array<vec4<u32>, ${MAX_RANK}>`,
      bindings: [`var<storage, read> xa: array<${storageType(da)}>`, `var<storage, read> xb: array<${storageType(db)}>`, `var<storage, read_write> y: array<${outputType(da)}>`],
      inputs: 2,
      outputs: 1,
      f16: da === 'f16',
      body: `${indexCode}
  let a = p.alpha * ${loadF32('xa', da, 'ia')};
  let b = p.beta * ${loadF32('xb', db, 'ib')};
  y[i] = ${storeValue(da, BINARY_EXPR[op])};`,
    }),
    n,
    prm,
    [a, b],
    [{ shape: outShape, dtype: da }],
  )[0]!;
}

export const add = (a: Tensor, b: Tensor) => binary(a, b, 'add');
export const sub = (a: Tensor, b: Tensor) => binary(a, b, 'sub');
export const mul = (a: Tensor, b: Tensor) => binary(a, b, 'mul');
export const div = (a: Tensor, b: Tensor) => binary(a, b, 'div');

/** GEGLU: x [..., 2C] → [..., C] = x[..., :C] · gelu(x[..., C:]) (diffusers' GEGLU chunk order),
 *  in f32; y has x's dtype (f32 or f16). */
export function geglu(x: Tensor): Tensor {
  const dtype = activationDtype(x, 'geglu');
  const last = x.shape[x.rank - 1] ?? 0;
  if (x.rank === 0 || last % 2 !== 0) throw new ShapeError(`geglu: last dimension of ${shapeStr(x.shape)} must be even`);
  const rt = runtimeOf(x);
  const c = last / 2;
  const outShape = [...x.shape.slice(0, -1), c];
  const n = numelOf(outShape);
  return runElementwise(
    rt,
    `geglu:${dtype}`,
    () => ({
      fields: 'c: u32',
      bindings: [`var<storage, read> x: array<${storageType(dtype)}>`, `var<storage, read_write> y: array<${outputType(dtype)}>`],
      inputs: 1,
      outputs: 1,
      prelude: WGSL_ACTIVATIONS,
      f16: dtype === 'f16',
      body: `let base = (i / p.c) * 2u * p.c;
  y[i] = ${storeValue(dtype, `${loadF32('x', dtype, 'base + i % p.c')} * act_gelu(${loadF32('x', dtype, 'base + p.c + i % p.c')})`)};`,
    }),
    n,
    new Params().u32(c),
    [x],
    [{ shape: outShape, dtype }],
  )[0]!;
}

/** Fills a tensor (f32, or f16 as packed pairs) with deterministic pseudo-random values uniform in
 *  [−scale, scale) (a counter hash of the index and seed), or with a constant when scale is 0 (then
 *  `value`). For benchmarks and tests that need weights without a checkpoint. */
export function fillUniform(t: Tensor, seed: number, scale: number, value = 0): void {
  assertFloat(t, 'fillUniform', true);
  const rt = runtimeOf(t);
  const half = t.dtype === 'f16';
  // f16: one invocation per packed pair (elements 2i and 2i+1).
  const n = half ? Math.ceil(t.numel / 2) : t.numel;
  runElementwise(
    rt,
    `fill_uniform:${t.dtype}`,
    () => ({
      fields: 'seed: u32, scale: f32, value: f32',
      bindings: [`var<storage, read_write> y: array<${half ? 'u32' : 'f32'}>`],
      inputs: 0,
      outputs: 1,
      prelude: `fn pcg(v: u32) -> u32 {
  let s = v * 747796405u + 2891336453u;
  let w = ((s >> ((s >> 28u) + 4u)) ^ s) * 277803737u;
  return (w >> 22u) ^ w;
}
fn value_at(j: u32) -> f32 {
  let u = f32(pcg(j ^ pcg(p.seed)) >> 8u) * (1.0 / 16777216.0);
  return select(p.value, (2.0 * u - 1.0) * p.scale, p.scale != 0.0);
}`,
      body: half ? 'y[i] = pack2x16float(vec2<f32>(value_at(2u * i), value_at(2u * i + 1u)));' : 'y[i] = value_at(i);',
    }),
    n,
    new Params().u32(seed >>> 0).f32(scale, value),
    [],
    [t],
  );
}
