// Attention O = softmax(Q·Kᵀ·scale [+ causal mask])·V with an online softmax over key tiles
// (never materialising the Nq×Nk score matrix).
//
// Q, K, V and O are addressed through (batch, head, row) strides, so both the merged (B, N, H·D)
// layout of the projections and the split (B, H, N, D) layout are read in place, without permutes.
// A workgroup owns BQ query rows of one (batch, head); ROW_THREADS invocations share a row: each
// computes scores for a strided subset of the key tile and owns D/ROW_THREADS output columns.

import { ShapeError, type Tensor } from '../gpu/runtime.js';
import { Params, assertFloat, ceilDiv, runtimeOf, shapeStr } from './common.js';

const BQ = 32;
const ROW_THREADS = 4;
const THREADS = BQ * ROW_THREADS;
const SMEM_BUDGET = 28 * 1024;

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

function keyTile(d: number): number {
  // Workgroup memory: Q tile (BQ×D), K and V tiles (BK×D each), scores (BQ×BK).
  for (const bk of [32, 16, 8, 4]) {
    if (4 * (BQ * d + 2 * bk * d + BQ * bk) <= SMEM_BUDGET) return bk;
  }
  throw new ShapeError(`attention: head dimension ${d} too large`);
}

function attentionCode(d: number, bk: number, causal: boolean): string {
  const cols = ceilDiv(d, ROW_THREADS);
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
const BQ = ${BQ}u;
const BK = ${bk}u;
const RT = ${ROW_THREADS}u;
const COLS = ${cols}u;
var<workgroup> qs: array<f32, ${BQ * d}>;
var<workgroup> ks: array<f32, ${bk * d}>;
var<workgroup> vs: array<f32, ${bk * d}>;
var<workgroup> ss: array<f32, ${BQ * bk}>;

@compute @workgroup_size(${THREADS})
fn main(@builtin(local_invocation_index) tid: u32, @builtin(workgroup_id) wid: vec3<u32>) {
  let bh = wid.y;
  let b = bh / p.heads;
  let h = bh % p.heads;
  let q0 = wid.x * BQ;
  let row = tid / RT;
  let lane = tid % RT;
  let qi = q0 + row;
  let q_base = b * p.qb + h * p.qh;
  let k_base = b * p.kb + h * p.kh;
  let v_base = b * p.vb + h * p.vh;

  for (var e = tid; e < BQ * D; e += ${THREADS}u) {
    let r = e / D;
    let c = e % D;
    var val = 0.0;
    if (q0 + r < p.nq) { val = q[q_base + (q0 + r) * p.qr + c] * p.scale; }
    qs[e] = val;
  }

  var acc: array<f32, COLS>;
  var m = -3.0e38;
  var l = 0.0;
  var k_end = p.nk;
  ${causal ? 'k_end = min(p.nk, q0 + BQ);' : ''}
  for (var k0 = 0u; k0 < k_end; k0 += BK) {
    workgroupBarrier();
    for (var e = tid; e < BK * D; e += ${THREADS}u) {
      let r = e / D;
      let c = e % D;
      var kv = 0.0;
      var vv = 0.0;
      if (k0 + r < p.nk) {
        kv = k[k_base + (k0 + r) * p.kr + c];
        vv = v[v_base + (k0 + r) * p.vr + c];
      }
      ks[e] = kv;
      vs[e] = vv;
    }
    workgroupBarrier();
    for (var j = lane; j < BK; j += RT) {
      var s = 0.0;
      for (var c = 0u; c < D; c++) { s = fma(qs[row * D + c], ks[j * D + c], s); }
      let kj = k0 + j;
      var masked = kj >= p.nk;
      ${causal ? 'masked = masked || kj > qi;' : ''}
      ss[row * BK + j] = select(s, -3.0e38, masked);
    }
    workgroupBarrier();
    var tile_max = -3.0e38;
    for (var j = 0u; j < BK; j++) { tile_max = max(tile_max, ss[row * BK + j]); }
    let m_new = max(m, tile_max);
    if (m_new > -1.0e38) {
      let alpha = exp(m - m_new);
      l *= alpha;
      for (var i = 0u; i < COLS; i++) { acc[i] *= alpha; }
      for (var j = 0u; j < BK; j++) {
        let sj = ss[row * BK + j];
        if (sj <= -1.0e38) { continue; }
        let pj = exp(sj - m_new);
        l += pj;
        for (var i = 0u; i < COLS; i++) {
          let c = lane + i * RT;
          if (c < D) { acc[i] = fma(pj, vs[j * D + c], acc[i]); }
        }
      }
      m = m_new;
    }
  }
  if (qi < p.nq) {
    let inv = select(0.0, 1.0 / l, l > 0.0);
    let o_base = b * p.ob + h * p.oh + qi * p.or;
    for (var i = 0u; i < COLS; i++) {
      let c = lane + i * RT;
      if (c < D) { o[o_base + c] = acc[i] * inv; }
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
  if (d > 256) throw new ShapeError(`attention: head dimension ${d} over 256`);
  const rt = runtimeOf(q, k, v);
  const out = rt.empty(q.shape);
  const causal = !!o.causal;
  const bk = keyTile(d);
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
    { key: `attention:${d}:${bk}:${causal ? 'causal' : 'full'}`, code: attentionCode(d, bk, causal), inputs: 3, outputs: 1, uniforms: true },
    { params, inputs: [q, k, v], outputs: [out], workgroups: [ceilDiv(nq, BQ), b * heads, 1] },
  );
  return out;
}
