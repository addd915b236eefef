// Whole-tensor reductions for AAS: cosine similarity and mean squared error of two tensors.

import { ShapeError, type Tensor } from '../gpu/runtime.js';
import { Params, assertFloat, runtimeOf, shapeStr } from './common.js';

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
export async function pairSums(a: Tensor, b: Tensor): Promise<Tensor> {
  assertFloat(a, 'pairSums');
  assertFloat(b, 'pairSums');
  if (a.numel !== b.numel) throw new ShapeError(`pairSums: ${shapeStr(a.shape)} and ${shapeStr(b.shape)} differ in size`);
  const rt = runtimeOf(a, b);
  const n = a.numel;
  const groups = Math.max(1, Math.min(MAX_PARTIALS, Math.ceil(n / (WG * PER_THREAD))));
  const partials = rt.empty([groups, 4]);
  await rt.run(
    {
      key: 'pair_sums:1',
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
    },
    { params: new Params().u32(n, groups).build(), inputs: [a, b], outputs: [partials], workgroups: [groups] },
  );
  const sums = rt.empty([4]);
  await rt.run(
    {
      key: 'pair_sums:2',
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
    },
    { params: new Params().u32(groups).build(), inputs: [partials], outputs: [sums], workgroups: [1] },
  );
  partials.dispose();
  return sums;
}

/** Σ statistics of two tensors, read back to the host. */
export async function pairStats(a: Tensor, b: Tensor): Promise<PairStats> {
  const sums = await pairSums(a, b);
  const v = (await sums.read()) as Float32Array;
  sums.dispose();
  return { dot: v[0]!, sumSqA: v[1]!, sumSqB: v[2]!, sumSqDiff: v[3]!, count: a.numel };
}

/** torch.nn.functional.cosine_similarity of the two tensors flattened to one vector each (eps 1e-8). */
export function cosineFromStats(s: PairStats, eps = 1e-8): number {
  return s.dot / (Math.max(Math.sqrt(s.sumSqA), eps) * Math.max(Math.sqrt(s.sumSqB), eps));
}

export async function cosineSimilarity(a: Tensor, b: Tensor): Promise<number> {
  return cosineFromStats(await pairStats(a, b));
}

/** mean((a − b)²) over all elements. */
export async function meanSquaredError(a: Tensor, b: Tensor): Promise<number> {
  const s = await pairStats(a, b);
  return s.count ? s.sumSqDiff / s.count : NaN;
}
