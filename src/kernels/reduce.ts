// Whole-tensor reductions for AAS: cosine similarity and mean squared error of two tensors.

import { ShapeError, type Tensor } from '../gpu/runtime.js';
import { Params, assertFloat, runElementwise, runtimeOf, shapeStr } from './common.js';

const WG = 256;
const PER_THREAD = 16;
const MAX_PARTIALS = 1024;

export interface PairStats {
  /** Σ a·b, Σ a², Σ b², Σ (a−b)² and the element count. */
  dot: number;
  sumSqA: number;
  sumSqB: number;
  sumSqDiff: number;
  count: number;
}

/** Reduces two equally sized tensors to [Σab, Σa², Σb², Σ(a−b)²] on the GPU (a [4] tensor).
 *  Two passes: per-workgroup tree sums, then one workgroup over the partials. */
export function pairSums(a: Tensor, b: Tensor): Tensor {
  assertFloat(a, 'pairSums');
  assertFloat(b, 'pairSums');
  if (a.numel !== b.numel) throw new ShapeError(`pairSums: ${shapeStr(a.shape)} and ${shapeStr(b.shape)} differ in size`);
  const rt = runtimeOf(a, b);
  const n = a.numel;
  const groups = Math.max(1, Math.min(MAX_PARTIALS, Math.ceil(n / (WG * PER_THREAD))));
  const [partials] = rt.run(
    rt.kernel('pair_sums:1', () => ({
      inputs: 2,
      outputs: 1,
      uniforms: true,
      code: /* wgsl */ `
struct P { n: u32, groups: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> xa: array<f32>;
@group(0) @binding(2) var<storage, read> xb: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<vec4<f32>>;
var<workgroup> sh: array<vec4<f32>, ${WG}>;
@compute @workgroup_size(${WG})
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
  var acc = vec4<f32>(0.0);
  var i = wid.x * ${WG}u + lid.x;
  let step = p.groups * ${WG}u;
  loop {
    if (i >= p.n) { break; }
    let a = xa[i];
    let b = xb[i];
    let d = a - b;
    acc += vec4<f32>(a * b, a * a, b * b, d * d);
    i += step;
  }
  sh[lid.x] = acc;
  workgroupBarrier();
  for (var s = ${WG / 2}u; s > 0u; s >>= 1u) {
    if (lid.x < s) { sh[lid.x] += sh[lid.x + s]; }
    workgroupBarrier();
  }
  if (lid.x == 0u) { out[wid.x] = sh[0]; }
}`,
    })),
    { params: new Params().u32(n, groups).build(), inputs: [a, b], outputs: [{ shape: [groups, 4] }], workgroups: [groups] },
  );
  const [sums] = rt.run(
    rt.kernel('pair_sums:2', () => ({
      inputs: 1,
      outputs: 1,
      uniforms: true,
      code: /* wgsl */ `
struct P { groups: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> parts: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> out: array<vec4<f32>>;
var<workgroup> sh: array<vec4<f32>, ${WG}>;
@compute @workgroup_size(${WG})
fn main(@builtin(local_invocation_id) lid: vec3<u32>) {
  var acc = vec4<f32>(0.0);
  for (var i = lid.x; i < p.groups; i += ${WG}u) { acc += parts[i]; }
  sh[lid.x] = acc;
  workgroupBarrier();
  for (var s = ${WG / 2}u; s > 0u; s >>= 1u) {
    if (lid.x < s) { sh[lid.x] += sh[lid.x + s]; }
    workgroupBarrier();
  }
  if (lid.x == 0u) { out[0] = sh[0]; }
}`,
    })),
    { params: new Params().u32(groups).build(), inputs: [partials!], outputs: [{ shape: [4] }], workgroups: [1] },
  );
  partials!.dispose();
  return sums!;
}

/** Σ statistics of two tensors, read back to the host. */
export async function pairStats(a: Tensor, b: Tensor): Promise<PairStats> {
  const sums = pairSums(a, b);
  const count = a.numel;
  try {
    const v = (await sums.read()) as Float32Array;
    return { dot: v[0]!, sumSqA: v[1]!, sumSqB: v[2]!, sumSqDiff: v[3]!, count };
  } finally {
    sums.dispose();
  }
}

/** torch.nn.functional.cosine_similarity of the two tensors flattened to one vector each (eps 1e-8). */
export function cosineFromStats(s: PairStats, eps = 1e-8): number {
  return s.dot / (Math.max(Math.sqrt(s.sumSqA), eps) * Math.max(Math.sqrt(s.sumSqB), eps));
}

/** Finishes pair sums [4] on the GPU: cosine (torch's eps clamp of each norm) or mean squared error. */
function finishPair(sums: Tensor, count: number, what: 'cosine' | 'mse', eps: number): Tensor {
  return runElementwise(
    runtimeOf(sums),
    `pair_finish:${what}`,
    () => ({
      fields: 'count: f32, eps: f32',
      bindings: ['var<storage, read> s: array<f32>', 'var<storage, read_write> y: array<f32>'],
      inputs: 1,
      outputs: 1,
      body:
        what === 'cosine'
          ? 'y[0] = s[0] / (max(sqrt(s[1]), p.eps) * max(sqrt(s[2]), p.eps));'
          : 'y[0] = s[3] / p.count;',
    }),
    1,
    new Params().f32(count, eps),
    [sums],
    [{ shape: [1] }],
  )[0]!;
}

/** Cosine similarity of the two tensors flattened to one vector each, as a [1] GPU tensor (read
 *  it, or many such results stacked, once). */
export function cosineSimilarity(a: Tensor, b: Tensor, eps = 1e-8): Tensor {
  const sums = pairSums(a, b);
  const y = finishPair(sums, a.numel, 'cosine', eps);
  sums.dispose();
  return y;
}

/** mean((a − b)²) over all elements, as a [1] GPU tensor. */
export function meanSquaredError(a: Tensor, b: Tensor): Tensor {
  const sums = pairSums(a, b);
  const y = finishPair(sums, a.numel, 'mse', 0);
  sums.dispose();
  return y;
}

const ROW_WG = 64;

/** Cosine similarity along the last axis: a, b [..., C] → [...], each entry
 *  Σab / (max(‖a‖, eps)·max(‖b‖, eps)) over its row (torch.cosine_similarity(a, b, dim=-1)).
 *  One workgroup per row, accumulated in f32. */
export function rowCosine(a: Tensor, b: Tensor, eps = 1e-8): Tensor {
  assertFloat(a, 'rowCosine');
  assertFloat(b, 'rowCosine');
  if (a.rank < 1 || a.shape.length !== b.shape.length || a.shape.some((d, i) => d !== b.shape[i])) {
    throw new ShapeError(`rowCosine: ${shapeStr(a.shape)} and ${shapeStr(b.shape)} must be equal shapes of rank ≥ 1`);
  }
  const len = a.shape[a.rank - 1]!;
  const outShape = a.shape.slice(0, -1);
  const rows = len === 0 ? 0 : a.numel / len;
  const rt = runtimeOf(a, b);
  if (rows === 0) return rt.zeros(outShape);
  return rt.run(
    rt.kernel('row_cosine', () => ({
      inputs: 2,
      outputs: 1,
      uniforms: true,
      code: /* wgsl */ `
struct P { rows: u32, len: u32, eps: f32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> xa: array<f32>;
@group(0) @binding(2) var<storage, read> xb: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
var<workgroup> sh: array<vec3<f32>, ${ROW_WG}>;
@compute @workgroup_size(${ROW_WG})
fn main(@builtin(local_invocation_id) lid3: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let row = wid.x + wid.y * nwg.x;
  if (row >= p.rows) { return; }
  let lid = lid3.x;
  let base = row * p.len;
  var acc = vec3<f32>(0.0);
  for (var i = lid; i < p.len; i += ${ROW_WG}u) {
    let x = xa[base + i];
    let y = xb[base + i];
    acc += vec3<f32>(x * y, x * x, y * y);
  }
  sh[lid] = acc;
  workgroupBarrier();
  for (var s = ${ROW_WG / 2}u; s > 0u; s >>= 1u) {
    if (lid < s) { sh[lid] += sh[lid + s]; }
    workgroupBarrier();
  }
  if (lid == 0u) {
    let t = sh[0];
    out[row] = t.x / (max(sqrt(t.y), p.eps) * max(sqrt(t.z), p.eps));
  }
}`,
    })),
    { params: new Params().u32(rows, len).f32(eps).build(), inputs: [a, b], outputs: [{ shape: outShape }], workgroups: rt.grid(rows) },
  )[0]!;
}
