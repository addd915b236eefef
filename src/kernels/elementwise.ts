// Elementwise kernels: activations, affine maps, broadcasting binary ops, GEGLU.

import { ShapeError, numelOf, type Tensor } from '../gpu/runtime.js';
import { Params, WGSL_ACTIVATIONS, assertFloat, runElementwise, runtimeOf, shapeStr, type Activation } from './common.js';

const MAX_RANK = 6;

export type UnaryOp = Activation | 'exp';

/** y = clamp(op(x · scale + shift), lo, hi), elementwise. */
export function unary(x: Tensor, op: UnaryOp, scale = 1, shift = 0, clampTo?: readonly [number, number]): Tensor {
  assertFloat(x, `unary(${op})`);
  const rt = runtimeOf(x);
  const n = x.numel;
  const [lo, hi] = clampTo ?? [-3.4e38, 3.4e38];
  const expr = `act_${op}(x[i] * p.scale + p.shift)`;
  return runElementwise(
    rt,
    `unary:${op}${clampTo ? ':clamp' : ''}`,
    () => ({
      fields: 'scale: f32, shift: f32, lo: f32, hi: f32',
      bindings: ['var<storage, read> x: array<f32>', 'var<storage, read_write> y: array<f32>'],
      inputs: 1,
      outputs: 1,
      prelude: `${WGSL_ACTIVATIONS}\nfn act_exp(v: f32) -> f32 { return exp(v); }`,
      body: `y[i] = ${clampTo ? `clamp(${expr}, p.lo, p.hi)` : expr};`,
    }),
    n,
    new Params().f32(scale, shift, lo, hi),
    [x],
    [{ shape: x.shape }],
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

/** y = (alpha·a) op (beta·b) with NumPy broadcasting. */
export function binary(a: Tensor, b: Tensor, op: BinaryOp, alpha = 1, beta = 1): Tensor {
  assertFloat(a, op);
  assertFloat(b, op);
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
    `binary:${op}:${same ? 'same' : 'bcast'}`,
    () => ({
      fields: `alpha: f32, beta: f32, _pad: u32, dims: array<vec4<u32>, ${MAX_RANK}>`,
      bindings: ['var<storage, read> xa: array<f32>', 'var<storage, read> xb: array<f32>', 'var<storage, read_write> y: array<f32>'],
      inputs: 2,
      outputs: 1,
      body: `${indexCode}
  let a = p.alpha * xa[ia];
  let b = p.beta * xb[ib];
  y[i] = ${BINARY_EXPR[op]};`,
    }),
    n,
    prm,
    [a, b],
    [{ shape: outShape }],
  )[0]!;
}

export const add = (a: Tensor, b: Tensor) => binary(a, b, 'add');
export const sub = (a: Tensor, b: Tensor) => binary(a, b, 'sub');
export const mul = (a: Tensor, b: Tensor) => binary(a, b, 'mul');
export const div = (a: Tensor, b: Tensor) => binary(a, b, 'div');

/** GEGLU: x [..., 2C] → [..., C] = x[..., :C] · gelu(x[..., C:]) (diffusers' GEGLU chunk order). */
export function geglu(x: Tensor): Tensor {
  assertFloat(x, 'geglu');
  const last = x.shape[x.rank - 1] ?? 0;
  if (x.rank === 0 || last % 2 !== 0) throw new ShapeError(`geglu: last dimension of ${shapeStr(x.shape)} must be even`);
  const rt = runtimeOf(x);
  const c = last / 2;
  const outShape = [...x.shape.slice(0, -1), c];
  const n = numelOf(outShape);
  return runElementwise(
    rt,
    'geglu',
    () => ({
      fields: 'c: u32',
      bindings: ['var<storage, read> x: array<f32>', 'var<storage, read_write> y: array<f32>'],
      inputs: 1,
      outputs: 1,
      prelude: WGSL_ACTIVATIONS,
      body: `let base = (i / p.c) * 2u * p.c;
  y[i] = x[base + i % p.c] * act_gelu(x[base + p.c + i % p.c]);`,
    }),
    n,
    new Params().u32(c),
    [x],
    [{ shape: outShape }],
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
