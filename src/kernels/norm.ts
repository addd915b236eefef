// GroupNorm (NCHW, optional fused SiLU), LayerNorm over the last axis, softmax over the last axis.
// Biased variance, computed in two passes over the data (mean, then Σ(x − mean)²) for accuracy.

import { ShapeError, type Tensor } from '../gpu/runtime.js';
import { Params, WGSL_ACTIVATIONS, assertFloat, runElementwise, runtimeOf, shapeStr } from './common.js';

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

/** Per-row mean and 1/sqrt(var + eps) of a [rows, len] view: out [rows, 2]. */
function rowStats(x: Tensor, rows: number, len: number, eps: number): Tensor {
  const rt = runtimeOf(x);
  return rt.run(
    rt.kernel('row_stats', () => ({
      inputs: 1,
      outputs: 1,
      uniforms: true,
      code: /* wgsl */ `
struct P { rows: u32, len: u32, eps: f32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> stats: array<vec2<f32>>;
${WGSL_WG_SUM}
@compute @workgroup_size(${RED})
fn main(@builtin(local_invocation_id) lid3: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let row = wid.x + wid.y * nwg.x;
  if (row >= p.rows) { return; }
  let lid = lid3.x;
  let base = row * p.len;
  var s = 0.0;
  for (var i = lid; i < p.len; i += ${RED}u) { s += x[base + i]; }
  let mean = wg_sum(s, lid) / f32(p.len);
  var q = 0.0;
  for (var i = lid; i < p.len; i += ${RED}u) { let d = x[base + i] - mean; q += d * d; }
  let v = wg_sum(q, lid) / f32(p.len);
  if (lid == 0u) { stats[row] = vec2<f32>(mean, inverseSqrt(v + p.eps)); }
}`,
    })),
    { params: new Params().u32(rows, len).f32(eps).build(), inputs: [x], outputs: [{ shape: [rows, 2] }], workgroups: rt.grid(rows) },
  )[0]!;
}

export interface GroupNormOptions {
  groups: number;
  eps: number;
  /** Apply SiLU after the affine transform (ResNet blocks). */
  silu?: boolean;
}

/** GroupNorm over x [B, C, ...spatial] with per-channel weight/bias [C]. */
export function groupNorm(x: Tensor, weight: Tensor, bias: Tensor, o: GroupNormOptions): Tensor {
  assertFloat(x, 'groupNorm');
  if (x.rank < 2) throw new ShapeError(`groupNorm: expected [B, C, ...], got ${shapeStr(x.shape)}`);
  const [b, c] = x.shape as [number, number];
  if (!Number.isInteger(o.groups) || o.groups < 1 || c % o.groups !== 0) throw new ShapeError(`groupNorm: ${c} channels not divisible by ${o.groups} groups`);
  if (weight.numel !== c || bias.numel !== c) throw new ShapeError(`groupNorm: weight/bias must have ${c} elements, got ${weight.numel} and ${bias.numel}`);
  const rt = runtimeOf(x, weight, bias);
  const spatial = x.numel / (b * c || 1);
  const groupLen = (c / o.groups) * spatial;
  const stats = rowStats(x, b * o.groups, groupLen, o.eps);
  const n = x.numel;
  const act = o.silu ? 'silu' : 'none';
  const [y] = runElementwise(
    rt,
    `group_norm_apply:${act}`,
    () => ({
      fields: 'c: u32, spatial: u32, cpg: u32',
      bindings: ['var<storage, read> x: array<f32>', 'var<storage, read> stats: array<vec2<f32>>', 'var<storage, read> w: array<f32>', 'var<storage, read> bias: array<f32>', 'var<storage, read_write> y: array<f32>'],
      inputs: 4,
      outputs: 1,
      prelude: WGSL_ACTIVATIONS,
      body: `let bc = i / p.spatial;
  let ch = bc % p.c;
  let st = stats[(bc / p.c) * (p.c / p.cpg) + ch / p.cpg];
  y[i] = act_${act}((x[i] - st.x) * st.y * w[ch] + bias[ch]);`,
    }),
    n,
    new Params().u32(c, spatial, c / o.groups),
    [x, stats, weight, bias],
    [{ shape: x.shape }],
  );
  stats.dispose();
  return y!;
}

/** LayerNorm over the last axis with weight/bias [C], in one pass: a workgroup per row computes the
 *  row's mean and 1/sqrt(var + eps) as `rowStats` does (same sums, same order) and normalises it. */
export function layerNorm(x: Tensor, weight: Tensor, bias: Tensor, eps: number): Tensor {
  assertFloat(x, 'layerNorm');
  const c = x.shape[x.rank - 1];
  if (c === undefined || c === 0) throw new ShapeError(`layerNorm: bad shape ${shapeStr(x.shape)}`);
  if (weight.numel !== c || bias.numel !== c) throw new ShapeError(`layerNorm: weight/bias must have ${c} elements, got ${weight.numel} and ${bias.numel}`);
  const rt = runtimeOf(x, weight, bias);
  const rows = x.numel / c;
  return rt.run(
    rt.kernel('layer_norm', () => ({
      inputs: 3,
      outputs: 1,
      uniforms: true,
      code: /* wgsl */ `
struct P { rows: u32, len: u32, eps: f32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;
${WGSL_WG_SUM}
@compute @workgroup_size(${RED})
fn main(@builtin(local_invocation_id) lid3: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let row = wid.x + wid.y * nwg.x;
  if (row >= p.rows) { return; }
  let lid = lid3.x;
  let base = row * p.len;
  var s = 0.0;
  for (var i = lid; i < p.len; i += ${RED}u) { s += x[base + i]; }
  let mean = wg_sum(s, lid) / f32(p.len);
  var q = 0.0;
  for (var i = lid; i < p.len; i += ${RED}u) { let d = x[base + i] - mean; q += d * d; }
  let rstd = inverseSqrt(wg_sum(q, lid) / f32(p.len) + p.eps);
  for (var i = lid; i < p.len; i += ${RED}u) { y[base + i] = (x[base + i] - mean) * rstd * w[i] + bias[i]; }
}`,
    })),
    { params: new Params().u32(rows, c).f32(eps).build(), inputs: [x, weight, bias], outputs: [{ shape: x.shape }], workgroups: rt.grid(rows) },
  )[0]!;
}

/** Softmax over the last axis, y = exp(s·x − max)/Σ, with an optional scale s on the logits. */
export function softmax(x: Tensor, scale = 1): Tensor {
  assertFloat(x, 'softmax');
  const c = x.shape[x.rank - 1];
  if (c === undefined || c === 0) throw new ShapeError(`softmax: bad shape ${shapeStr(x.shape)}`);
  const rt = runtimeOf(x);
  const rows = x.numel / c;
  return rt.run(
    rt.kernel('softmax', () => ({
      inputs: 1,
      outputs: 1,
      uniforms: true,
      code: /* wgsl */ `
struct P { rows: u32, len: u32, scale: f32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
${WGSL_WG_SUM}
@compute @workgroup_size(${RED})
fn main(@builtin(local_invocation_id) lid3: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let row = wid.x + wid.y * nwg.x;
  if (row >= p.rows) { return; }
  let lid = lid3.x;
  let base = row * p.len;
  var m = -3.402823e38;
  for (var i = lid; i < p.len; i += ${RED}u) { m = max(m, x[base + i] * p.scale); }
  m = wg_max(m, lid);
  var s = 0.0;
  for (var i = lid; i < p.len; i += ${RED}u) { s += exp(x[base + i] * p.scale - m); }
  let inv = 1.0 / wg_sum(s, lid);
  for (var i = lid; i < p.len; i += ${RED}u) { y[base + i] = exp(x[base + i] * p.scale - m) * inv; }
}`,
    })),
    { params: new Params().u32(rows, c).f32(scale).build(), inputs: [x], outputs: [{ shape: x.shape }], workgroups: rt.grid(rows) },
  )[0]!;
}
