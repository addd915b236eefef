// GroupNorm (NCHW, optional fused activation), LayerNorm over the last axis, softmax over the last
// axis. Biased variance, computed in two passes over the data (mean, then Σ(x − mean)²) for accuracy.
//
// Activations may be f32 or f16 (`activationDtype`); the result takes the input's dtype. An f16
// input is read as packed pairs (`loadF32`) and every sum, the statistics and the affine transform
// stay in f32: the only f16 rounding is the stored output. Weight and bias are f32. The split
// GroupNorm's per-chunk statistics are f32 whatever the input.

import { ShapeError, type Tensor } from '../gpu/runtime.js';
import type { GroupNormFlag } from '../gpu/flags.js';
import { Params, WGSL_ACTIVATIONS, activationDtype, assertFloat, enableF16, loadF32, outputType, runtimeOf, shapeStr, storageType, storeValue, type Activation, type ActivationDType } from './common.js';

const RED = 256;

/** WGSL: workgroup sum of `v` across RED invocations (all must call it). */
const WGSL_WG_SUM = /* wgsl */ `
var<workgroup> red: array<f32, ${RED}>;
fn wg_sum(v: f32, lid: u32) -> f32 {
  red[lid] = v;
  workgroupBarrier();
  for (var s = ${RED / 2}u; s > 0u; s >>= 1u) {
    if (lid < s) { red[lid] += red[lid + s]; }
    workgroupBarrier();
  }
  let r = red[0];
  workgroupBarrier();
  return r;
}
fn wg_max(v: f32, lid: u32) -> f32 {
  red[lid] = v;
  workgroupBarrier();
  for (var s = ${RED / 2}u; s > 0u; s >>= 1u) {
    if (lid < s) { red[lid] = max(red[lid], red[lid + s]); }
    workgroupBarrier();
  }
  let r = red[0];
  workgroupBarrier();
  return r;
}
`;

// GroupNorm over NCHW: group g of batch element b is the contiguous run of cpg = C/G channels ×
// H·W pixels starting at (b·C + g·cpg)·H·W, so a (batch, group) "row" is len = cpg·H·W elements.
// Two ways to normalise it, chosen by len:
//
//  single  (len ≤ GN_SINGLE_MAX): ONE dispatch, one 256-invocation workgroup per row. It reads the
//          row three times from global memory: Σx → mean, Σ(x − mean)² → variance (centred, so it
//          cannot go negative or cancel), then writes act((x − mean)·rstd·w[ch] + b[ch]).
//  split   (len > GN_SINGLE_MAX): TWO dispatches. With only B·G = 32·B workgroups, a single
//          workgroup per row leaves most of a large GPU idle and walks its row serially: at the
//          SD1.5 VAE encoder's 512² shapes a row is 128 ch / 32 × 512² = 1 Mi elements, 4096 loads
//          per invocation per pass on only 32 workgroups. So each row is cut into chunks:
//            1. partial: a workgroup per (row, chunk) writes the chunk's mean m_k and centred
//               M2_k = Σ(x − m_k)² (two passes over the chunk, which then sits in cache);
//            2. apply: a workgroup per (row, chunk) first combines its row's chunk statistics,
//               mean = Σ n_k·m_k / len and M2 = Σ M2_k + Σ n_k·(m_k − mean)² (every term ≥ 0: no
//               cancellation), then normalises its chunk.
//          Every apply workgroup repeats the combine over ≤ GN_MAX_CHUNKS values (one or two loads
//          per invocation, cache-resident), which is cheaper than a third dispatch.
//
// Rows of SD1.5 at 512² (U-Net latent 64², B = 2 with CFG; VAE encoder B = 1, G = 32):
//   U-Net 1280 ch @ 8²: 2 560 · 1280 @ 16²: 10 240 · 320 @ 32²: 10 240   → single
//   U-Net 640 @ 32²: 20 480 · 320 @ 64²: 40 960 · 960 @ 64² (up_blocks.3): 122 880 → split
//   VAE 512 @ 64² (down_blocks.3, mid block): 65 536 · 256 @ 128²: 131 072 · 256 @ 256²: 524 288 ·
//   128 @ 512² (down_blocks.0): 1 048 576                                      → split
// At 64² images (the lavapipe benchmark: latent 8², VAE rows ≤ 128 @ 64² = 16 384) every row takes
// the single path. GN_SINGLE_MAX keeps the single path to ≤ 64 loads per invocation per pass; it is
// a reasoned default, not a measured crossover (bench/kernels.ts times both paths on a GPU).
// The runtime's `groupNorm` flag (DIFFSIM_GROUPNORM: single | split | split:<chunk elements>)
// forces a path where the caller leaves it at auto (tests, benchmarks).

/** The mean and 1/√(var + eps) of x[base, base + len) with the biased variance from the centred
 *  sum (two reads of the row, never negative), summed over the workgroup in f32 (needs `wg_sum` and
 *  a binding `x` holding `dtype` elements): LayerNorm rows and GroupNorm's one-dispatch rows. */
const wgslRowMoments = (dtype: ActivationDType): string => /* wgsl */ `
fn row_moments(base: u32, len: u32, eps: f32, lid: u32) -> vec2<f32> {
  var s = 0.0;
  for (var i = lid; i < len; i += ${RED}u) { s += ${loadF32('x', dtype, 'base + i')}; }
  let mean = wg_sum(s, lid) / f32(len);
  var q = 0.0;
  for (var i = lid; i < len; i += ${RED}u) { let d = ${loadF32('x', dtype, 'base + i')} - mean; q += d * d; }
  return vec2<f32>(mean, inverseSqrt(wg_sum(q, lid) / f32(len) + eps));
}`;

/** Checks that a norm's weight and bias are f32 (the models keep them so). */
function assertAffine(weight: Tensor, bias: Tensor, op: string): void {
  assertFloat(weight, `${op} weight`);
  assertFloat(bias, `${op} bias`);
}

/** Longest row (elements of one batch element's group) normalised by one workgroup in one dispatch. */
export const GN_SINGLE_MAX = 16384;
/** Target elements per chunk in the split path (16 per invocation). */
const GN_CHUNK = 4096;
/** Most chunks per row in the split path: the combine then reads one chunk per invocation. */
const GN_MAX_CHUNKS = RED;

export interface GroupNormOptions {
  groups: number;
  eps: number;
  /** Activation applied after the affine transform, in the same pass (SiLU in ResNet blocks). */
  act?: Activation;
  /** 'auto' (default): single for rows ≤ GN_SINGLE_MAX elements, else split; see above. */
  path?: GroupNormPath;
  /** Elements per chunk in the split path (default: GN_CHUNK, more when a row would need over
   *  GN_MAX_CHUNKS chunks). */
  chunk?: number;
}

export type GroupNormPath = 'auto' | 'single' | 'split';

/** The path and chunk length of a group norm over rows of `len` elements, `forced` being the
 *  runtime's `groupNorm` flag (exported for tests). */
export function groupNormPlan(len: number, o: Pick<GroupNormOptions, 'path' | 'chunk'> = {}, forced: GroupNormFlag = 'auto'): { path: 'single' | 'split'; chunk: number; chunks: number } {
  let path = o.path ?? 'auto';
  let chunk = o.chunk;
  if (path === 'auto') {
    if (forced !== 'auto') {
      const [p, c] = forced.split(':') as ['single' | 'split', string | undefined];
      path = p;
      if (c !== undefined && chunk === undefined) chunk = Number(c);
    } else path = len > GN_SINGLE_MAX ? 'split' : 'single';
  }
  if (path === 'single') return { path, chunk: len, chunks: 1 };
  if (chunk !== undefined && (!Number.isInteger(chunk) || chunk < 1)) throw new RangeError(`groupNorm: chunk must be a positive integer, got ${chunk}`);
  const c = Math.max(1, chunk ?? Math.max(GN_CHUNK, Math.ceil(len / GN_MAX_CHUNKS)));
  return { path, chunk: c, chunks: Math.max(1, Math.ceil(len / c)) };
}

/** GroupNorm over x [B, C, ...spatial] (f32 or f16; the result has x's dtype) with per-channel f32
 *  weight/bias [C], then `act`: PyTorch's F.group_norm (biased variance) in one dispatch, or two for
 *  long rows (see above). */
export function groupNorm(x: Tensor, weight: Tensor, bias: Tensor, o: GroupNormOptions): Tensor {
  const dt = activationDtype(x, 'groupNorm');
  if (x.rank < 2) throw new ShapeError(`groupNorm: expected [B, C, ...], got ${shapeStr(x.shape)}`);
  const [b, c] = x.shape as [number, number];
  if (!Number.isInteger(o.groups) || o.groups < 1 || c % o.groups !== 0) throw new ShapeError(`groupNorm: ${c} channels not divisible by ${o.groups} groups`);
  if (weight.numel !== c || bias.numel !== c) throw new ShapeError(`groupNorm: weight/bias must have ${c} elements, got ${weight.numel} and ${bias.numel}`);
  assertAffine(weight, bias, 'groupNorm');
  const rt = runtimeOf(x, weight, bias);
  const spatial = x.numel / (b * c || 1);
  const cpg = c / o.groups;
  const rows = b * o.groups;
  const len = cpg * spatial;
  const act = o.act ?? 'none';
  const plan = groupNormPlan(len, o, rt.flags.groupNorm);
  // The row's channel for element i of the row: ch0 + i / spatial (ch0 = (row % G)·cpg).
  const shared = /* wgsl */ `
struct P { rows: u32, len: u32, spatial: u32, cpg: u32, groups: u32, chunk: u32, chunks: u32, eps: f32 }
@group(0) @binding(0) var<uniform> p: P;
${WGSL_WG_SUM}
${WGSL_ACTIVATIONS}
/** Writes act((x − mean)·rstd·w + b) for elements [start, end) of row \`row\`. */
fn normalise(row: u32, start: u32, end: u32, mean: f32, rstd: f32, lid: u32) {
  let base = row * p.len;
  let ch0 = (row % p.groups) * p.cpg;
  for (var i = start + lid; i < end; i += ${RED}u) {
    let ch = ch0 + i / p.spatial;
    y[base + i] = ${storeValue(dt, `act_${act}((${loadF32('x', dt, 'base + i')} - mean) * rstd * w[ch] + bias[ch])`)};
  }
}`;
  const params = new Params().u32(rows, len, spatial, cpg, o.groups, plan.chunk, plan.chunks).f32(o.eps).build();
  if (plan.path === 'single') {
    return rt.run(
      rt.kernel(`group_norm:${act}:${dt}`, () => ({
        inputs: 3,
        outputs: 1,
        uniforms: true,
        code: /* wgsl */ `${enableF16(dt)}
@group(0) @binding(1) var<storage, read> x: array<${storageType(dt)}>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<${outputType(dt)}>;
${shared}
${wgslRowMoments(dt)}
@compute @workgroup_size(${RED})
fn main(@builtin(local_invocation_id) lid3: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let row = wid.x + wid.y * nwg.x;
  if (row >= p.rows) { return; }
  let lid = lid3.x;
  let base = row * p.len;
  let moments = row_moments(base, p.len, p.eps, lid);
  let mean = moments.x;
  let rstd = moments.y;
  normalise(row, 0u, p.len, mean, rstd, lid);
}`,
      })),
      { params, inputs: [x, weight, bias], outputs: [{ shape: x.shape, dtype: dt }], workgroups: rt.grid(rows) },
    )[0]!;
  }
  // Split: f32 partials [rows·chunks] of (m_k, M2_k), then combine + apply.
  const partial = rt.run(
    rt.kernel(`group_norm_partial:${dt}`, () => ({
      inputs: 1,
      outputs: 1,
      uniforms: true,
      code: /* wgsl */ `
struct P { rows: u32, len: u32, spatial: u32, cpg: u32, groups: u32, chunk: u32, chunks: u32, eps: f32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> x: array<${storageType(dt)}>;
@group(0) @binding(2) var<storage, read_write> part: array<vec2<f32>>;
${WGSL_WG_SUM}
@compute @workgroup_size(${RED})
fn main(@builtin(local_invocation_id) lid3: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let id = wid.x + wid.y * nwg.x;
  if (id >= p.rows * p.chunks) { return; }
  let lid = lid3.x;
  let row = id / p.chunks;
  let start = (id % p.chunks) * p.chunk;
  let n = min(p.chunk, p.len - start);
  let base = row * p.len + start;
  var s = 0.0;
  for (var i = lid; i < n; i += ${RED}u) { s += ${loadF32('x', dt, 'base + i')}; }
  let m = wg_sum(s, lid) / f32(n);
  var q = 0.0;
  for (var i = lid; i < n; i += ${RED}u) { let d = ${loadF32('x', dt, 'base + i')} - m; q += d * d; }
  let m2 = wg_sum(q, lid);
  if (lid == 0u) { part[id] = vec2<f32>(m, m2); }
}`,
    })),
    { params, inputs: [x], outputs: [{ shape: [rows * plan.chunks, 2] }], workgroups: rt.grid(rows * plan.chunks) },
  )[0]!;
  const y = rt.run(
    rt.kernel(`group_norm_split:${act}:${dt}`, () => ({
      inputs: 4,
      outputs: 1,
      uniforms: true,
      code: /* wgsl */ `${enableF16(dt)}
@group(0) @binding(1) var<storage, read> x: array<${storageType(dt)}>;
@group(0) @binding(2) var<storage, read> part: array<vec2<f32>>;
@group(0) @binding(3) var<storage, read> w: array<f32>;
@group(0) @binding(4) var<storage, read> bias: array<f32>;
@group(0) @binding(5) var<storage, read_write> y: array<${outputType(dt)}>;
${shared}
@compute @workgroup_size(${RED})
fn main(@builtin(local_invocation_id) lid3: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let id = wid.x + wid.y * nwg.x;
  if (id >= p.rows * p.chunks) { return; }
  let lid = lid3.x;
  let row = id / p.chunks;
  let first = row * p.chunks;
  // The row's mean from the chunk means weighted by chunk length, then its centred M2.
  var s = 0.0;
  for (var k = lid; k < p.chunks; k += ${RED}u) { s += f32(min(p.chunk, p.len - k * p.chunk)) * part[first + k].x; }
  let mean = wg_sum(s, lid) / f32(p.len);
  var q = 0.0;
  for (var k = lid; k < p.chunks; k += ${RED}u) {
    let pk = part[first + k];
    let d = pk.x - mean;
    q += pk.y + f32(min(p.chunk, p.len - k * p.chunk)) * d * d;
  }
  let rstd = inverseSqrt(wg_sum(q, lid) / f32(p.len) + p.eps);
  let start = (id % p.chunks) * p.chunk;
  normalise(row, start, min(start + p.chunk, p.len), mean, rstd, lid);
}`,
    })),
    { params, inputs: [x, partial, weight, bias], outputs: [{ shape: x.shape, dtype: dt }], workgroups: rt.grid(rows * plan.chunks) },
  )[0]!;
  partial.dispose();
  return y;
}

/** LayerNorm over the last axis of x (f32 or f16; the result has x's dtype) with f32 weight/bias
 *  [C], in one pass: a workgroup per row computes the row's mean and 1/sqrt(var + eps) as
 *  groupNorm's single path does (same sums, same order) and normalises it. */
export function layerNorm(x: Tensor, weight: Tensor, bias: Tensor, eps: number): Tensor {
  const dt = activationDtype(x, 'layerNorm');
  const c = x.shape[x.rank - 1];
  if (c === undefined || c === 0) throw new ShapeError(`layerNorm: bad shape ${shapeStr(x.shape)}`);
  if (weight.numel !== c || bias.numel !== c) throw new ShapeError(`layerNorm: weight/bias must have ${c} elements, got ${weight.numel} and ${bias.numel}`);
  assertAffine(weight, bias, 'layerNorm');
  const rt = runtimeOf(x, weight, bias);
  const rows = x.numel / c;
  return rt.run(
    rt.kernel(`layer_norm:${dt}`, () => ({
      inputs: 3,
      outputs: 1,
      uniforms: true,
      code: /* wgsl */ `${enableF16(dt)}
struct P { rows: u32, len: u32, eps: f32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> x: array<${storageType(dt)}>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<${outputType(dt)}>;
${WGSL_WG_SUM}
${wgslRowMoments(dt)}
@compute @workgroup_size(${RED})
fn main(@builtin(local_invocation_id) lid3: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let row = wid.x + wid.y * nwg.x;
  if (row >= p.rows) { return; }
  let lid = lid3.x;
  let base = row * p.len;
  let moments = row_moments(base, p.len, p.eps, lid);
  let mean = moments.x;
  let rstd = moments.y;
  for (var i = lid; i < p.len; i += ${RED}u) { y[base + i] = ${storeValue(dt, `(${loadF32('x', dt, 'base + i')} - mean) * rstd * w[i] + bias[i]`)}; }
}`,
    })),
    { params: new Params().u32(rows, c).f32(eps).build(), inputs: [x, weight, bias], outputs: [{ shape: x.shape, dtype: dt }], workgroups: rt.grid(rows) },
  )[0]!;
}

/** Softmax over the last axis, y = exp(s·x − max)/Σ, with an optional scale s on the logits; x is
 *  f32 or f16 and the result has its dtype (max, exp and sum in f32). */
export function softmax(x: Tensor, scale = 1): Tensor {
  const dt = activationDtype(x, 'softmax');
  const c = x.shape[x.rank - 1];
  if (c === undefined || c === 0) throw new ShapeError(`softmax: bad shape ${shapeStr(x.shape)}`);
  const rt = runtimeOf(x);
  const rows = x.numel / c;
  return rt.run(
    rt.kernel(`softmax:${dt}`, () => ({
      inputs: 1,
      outputs: 1,
      uniforms: true,
      code: /* wgsl */ `${enableF16(dt)}
struct P { rows: u32, len: u32, scale: f32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> x: array<${storageType(dt)}>;
@group(0) @binding(2) var<storage, read_write> y: array<${outputType(dt)}>;
${WGSL_WG_SUM}
@compute @workgroup_size(${RED})
fn main(@builtin(local_invocation_id) lid3: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let row = wid.x + wid.y * nwg.x;
  if (row >= p.rows) { return; }
  let lid = lid3.x;
  let base = row * p.len;
  var m = -3.402823e38;
  for (var i = lid; i < p.len; i += ${RED}u) { m = max(m, ${loadF32('x', dt, 'base + i')} * p.scale); }
  m = wg_max(m, lid);
  var s = 0.0;
  for (var i = lid; i < p.len; i += ${RED}u) { s += exp(${loadF32('x', dt, 'base + i')} * p.scale - m); }
  let inv = 1.0 / wg_sum(s, lid);
  for (var i = lid; i < p.len; i += ${RED}u) { y[base + i] = ${storeValue(dt, `exp(${loadF32('x', dt, 'base + i')} * p.scale - m) * inv`)}; }
}`,
    })),
    { params: new Params().u32(rows, c).f32(scale).build(), inputs: [x], outputs: [{ shape: x.shape, dtype: dt }], workgroups: rt.grid(rows) },
  )[0]!;
}
