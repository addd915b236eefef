// Attention O = softmax(Q·Kᵀ·scale [+ causal mask])·V with an online softmax over key tiles
// (never materialising the Nq×Nk score matrix).
//
// Q, K, V and O are addressed through (batch, head, row) strides, so both the merged (B, N, H·D)
// layout of the projections and the split (B, H, N, D) layout are read in place, without permutes.
// A workgroup owns BQ query rows of one (batch, head). Each row belongs to RT invocations (1 to 32,
// by head size), each holding a contiguous slice of the scaled query and of the output accumulator
// in registers; K/V tiles of BK keys are staged in workgroup memory as vec4. With RT > 1 the partial
// scores of a tile are summed through workgroup memory.

import { ShapeError, type Tensor } from '../gpu/runtime.js';
import { Params, assertFloat, ceilDiv, runtimeOf, shapeStr } from './common.js';

const MAX_THREADS = 256;

/** Strides (in elements) of a [batch, heads, rows, headDim] view of a tensor. */
export interface HeadLayout {
  batch: number;
  head: number;
  row: number;
}

export interface AttentionOptions {
  heads: number;
  scale?: number;
  causal?: boolean;
  /** Layout of q/k/v/out: `merged` = (B, N, H·D) (default), `split` = (B, H, N, D). */
  layout?: 'merged' | 'split';
}

function layoutOf(kind: 'merged' | 'split', heads: number, n: number, d: number): HeadLayout {
  return kind === 'merged' ? { batch: n * heads * d, head: d, row: heads * d } : { batch: heads * n * d, head: n * d, row: d };
}

interface AttnPlan {
  d: number;
  /** Invocations per query row; each owns a slice of DS = DP·4/RT head dimensions. */
  rt: number;
  /** Query rows per workgroup (RT·BQ ≤ 256 invocations). */
  bq: number;
  /** Head dimension padded to a multiple of 4·RT, in vec4 units. */
  dp: number;
  bk: number;
  causal: boolean;
}

function plan(d: number, causal: boolean, smemLimit: number): AttnPlan {
  // Up to 48 head dimensions per invocation keeps the query and accumulator slices in registers.
  let rt = 1;
  while (d / rt > 48 && rt < 32) rt *= 2;
  const bq = Math.min(64, MAX_THREADS / rt);
  const dp = Math.ceil(d / (4 * rt)) * rt;
  const budget = Math.min(smemLimit, 48 * 1024) - 1024;
  for (const bk of [32, 16, 8, 4, 2, 1]) {
    // K and V tiles (vec4) plus, when a row is split, the partial scores.
    const bytes = 2 * bk * dp * 16 + (rt > 1 ? bq * rt * bk * 4 : 0);
    if (bytes <= budget) return { d, rt, bq, dp, bk, causal };
  }
  throw new ShapeError(`attention: head dimension ${d} too large for workgroup memory`);
}

function attentionCode(pl: AttnPlan): string {
  const { d, rt, bq, dp, bk, causal } = pl;
  const ds = dp / rt; // vec4s per invocation
  const threads = bq * rt;
  const BQ = bq;
  const split = rt > 1;
  return /* wgsl */ `
struct P {
  nq: u32, nk: u32, heads: u32, scale: f32,
  qb: u32, qh: u32, qr: u32, _a: u32,
  kb: u32, kh: u32, kr: u32, _b: u32,
  vb: u32, vh: u32, vr: u32, _c: u32,
  ob: u32, oh: u32, or: u32, _d: u32,
}
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> q: array<f32>;
@group(0) @binding(2) var<storage, read> k: array<f32>;
@group(0) @binding(3) var<storage, read> v: array<f32>;
@group(0) @binding(4) var<storage, read_write> o: array<f32>;
const D = ${d}u;
const DP = ${dp}u;
const DS = ${ds}u;
const BK = ${bk}u;
const RT = ${rt}u;
var<workgroup> ks: array<vec4<f32>, ${bk * dp}>;
var<workgroup> vs: array<vec4<f32>, ${bk * dp}>;
${split ? `var<workgroup> sp: array<f32, ${BQ * rt * bk}>;` : ''}

@compute @workgroup_size(${threads})
fn main(@builtin(local_invocation_index) tid: u32, @builtin(workgroup_id) wid: vec3<u32>) {
  let bh = wid.y;
  let b = bh / p.heads;
  let h = bh % p.heads;
  let q0 = wid.x * ${BQ}u;
  let row = tid / RT;
  let lane = tid % RT;
  let qi = q0 + row;
  let k_base = b * p.kb + h * p.kh;
  let v_base = b * p.vb + h * p.vh;

  // This invocation's slice of the (scaled) query row, in registers.
  var qv: array<vec4<f32>, DS>;
  if (qi < p.nq) {
    let q_base = b * p.qb + h * p.qh + qi * p.qr;
    for (var i = 0u; i < DS; i++) {
      let c = (lane * DS + i) * 4u;
      var t = vec4<f32>(0.0);
      for (var e = 0u; e < 4u; e++) { if (c + e < D) { t[e] = q[q_base + c + e] * p.scale; } }
      qv[i] = t;
    }
  }
  var acc: array<vec4<f32>, DS>;
  var m = -3.0e38;
  var l = 0.0;
  var k_end = p.nk;
  ${causal ? `k_end = min(p.nk, q0 + ${BQ}u);` : ''}
  for (var k0 = 0u; k0 < k_end; k0 += BK) {
    workgroupBarrier();
    for (var e = tid; e < BK * DP * 4u; e += ${threads}u) {
      let r = e / (DP * 4u);
      let c = e % (DP * 4u);
      var kv = 0.0;
      var vv = 0.0;
      if (k0 + r < p.nk && c < D) {
        kv = k[k_base + (k0 + r) * p.kr + c];
        vv = v[v_base + (k0 + r) * p.vr + c];
      }
      ks[e / 4u][e % 4u] = kv;
      vs[e / 4u][e % 4u] = vv;
    }
    workgroupBarrier();
    var s: array<f32, BK>;
    for (var j = 0u; j < BK; j++) {
      var t = 0.0;
      for (var i = 0u; i < DS; i++) { t += dot(qv[i], ks[j * DP + lane * DS + i]); }
      s[j] = t;
    }
    ${split ? `
    for (var j = 0u; j < BK; j++) { sp[(row * RT + lane) * BK + j] = s[j]; }
    workgroupBarrier();
    for (var j = 0u; j < BK; j++) {
      var t = 0.0;
      for (var r = 0u; r < RT; r++) { t += sp[(row * RT + r) * BK + j]; }
      s[j] = t;
    }` : ''}
    var tile_max = -3.0e38;
    for (var j = 0u; j < BK; j++) {
      let kj = k0 + j;
      var masked = kj >= p.nk;
      ${causal ? 'masked = masked || kj > qi;' : ''}
      if (masked) { s[j] = -3.0e38; }
      tile_max = max(tile_max, s[j]);
    }
    let m_new = max(m, tile_max);
    if (m_new > -1.0e38) {
      let alpha = exp(m - m_new);
      l *= alpha;
      for (var i = 0u; i < DS; i++) { acc[i] *= alpha; }
      for (var j = 0u; j < BK; j++) {
        if (s[j] <= -1.0e38) { continue; }
        let pj = exp(s[j] - m_new);
        l += pj;
        for (var i = 0u; i < DS; i++) { acc[i] = fma(vec4<f32>(pj), vs[j * DP + lane * DS + i], acc[i]); }
      }
      m = m_new;
    }
  }
  if (qi < p.nq) {
    let inv = select(0.0, 1.0 / l, l > 0.0);
    let o_base = b * p.ob + h * p.oh + qi * p.or;
    for (var i = 0u; i < DS; i++) {
      let c = (lane * DS + i) * 4u;
      for (var e = 0u; e < 4u; e++) { if (c + e < D) { o[o_base + c + e] = acc[i][e] * inv; } }
    }
  }
}`;
}

/** softmax(Q·Kᵀ·scale)·V per (batch, head). Merged layout: q (B, Nq, H·D), k/v (B, Nk, H·D) →
 *  (B, Nq, H·D). Split layout: (B, H, N, D) → (B, H, Nq, D). Default scale 1/√D. */
export async function attention(q: Tensor, k: Tensor, v: Tensor, o: AttentionOptions): Promise<Tensor> {
  for (const [t, name] of [[q, 'q'], [k, 'k'], [v, 'v']] as const) {
    assertFloat(t, `attention ${name}`);
  }
  const layout = o.layout ?? 'merged';
  let b: number, nq: number, nk: number, heads: number, d: number;
  if (layout === 'merged') {
    if (q.rank !== 3 || k.rank !== 3 || v.rank !== 3) throw new ShapeError(`attention: merged layout needs (B, N, H·D) tensors, got ${shapeStr(q.shape)}, ${shapeStr(k.shape)}, ${shapeStr(v.shape)}`);
    heads = o.heads;
    const c = q.shape[2]!;
    if (c % heads !== 0) throw new ShapeError(`attention: ${c} channels not divisible by ${heads} heads`);
    d = c / heads;
    [b, nq] = q.shape as [number, number];
    nk = k.shape[1]!;
    if (k.shape[0] !== b || v.shape[0] !== b || k.shape[2] !== c || v.shape[2] !== c || v.shape[1] !== nk) {
      throw new ShapeError(`attention: q ${shapeStr(q.shape)}, k ${shapeStr(k.shape)}, v ${shapeStr(v.shape)} do not match`);
    }
  } else {
    if (q.rank !== 4 || k.rank !== 4 || v.rank !== 4) throw new ShapeError(`attention: split layout needs (B, H, N, D) tensors, got ${shapeStr(q.shape)}, ${shapeStr(k.shape)}, ${shapeStr(v.shape)}`);
    [b, heads, nq, d] = q.shape as [number, number, number, number];
    nk = k.shape[2]!;
    if (heads !== o.heads) throw new ShapeError(`attention: q has ${heads} heads, options say ${o.heads}`);
    if (shapeStr(k.shape) !== shapeStr([b, heads, nk, d]) || shapeStr(v.shape) !== shapeStr(k.shape)) {
      throw new ShapeError(`attention: q ${shapeStr(q.shape)}, k ${shapeStr(k.shape)}, v ${shapeStr(v.shape)} do not match`);
    }
  }
  if (d > 1536) throw new ShapeError(`attention: head dimension ${d} over 1536`);
  const rt = runtimeOf(q, k, v);
  const out = rt.empty(q.shape);
  const causal = !!o.causal;
  const pl = plan(d, causal, rt.limits.maxComputeWorkgroupStorageSize ?? 16384);
  const lq = layoutOf(layout, heads, nq, d);
  const lk = layoutOf(layout, heads, nk, d);
  const scale = o.scale ?? 1 / Math.sqrt(d);
  const params = new Params()
    .u32(nq, nk, heads)
    .f32(scale)
    .u32(lq.batch, lq.head, lq.row, 0)
    .u32(lk.batch, lk.head, lk.row, 0)
    .u32(lk.batch, lk.head, lk.row, 0)
    .u32(lq.batch, lq.head, lq.row, 0)
    .build();
  if (b * heads > (rt.limits.maxComputeWorkgroupsPerDimension ?? 65535)) throw new ShapeError('attention: batch × heads over the workgroup grid limit');
  await rt.run(
    { key: `attention:${d}:${pl.rt}:${pl.bq}:${pl.bk}:${causal ? 'causal' : 'full'}`, code: attentionCode(pl), inputs: 3, outputs: 1, uniforms: true },
    { params, inputs: [q, k, v], outputs: [out], workgroups: [ceilDiv(nq, pl.bq), b * heads, 1] },
  );
  return out;
}
