// Attention O = softmax(Q·Kᵀ·scale [+ causal mask])·V with an online softmax over key tiles
// (never materialising the Nq×Nk score matrix).
//
// Q, K, V and O are addressed through (batch, head, row) strides, so both the merged (B, N, H·D)
// layout of the projections and the split (B, H, N, D) layout are read in place, without permutes.
// A workgroup owns BQ query rows of one (batch, head). Each row belongs to RT invocations (1 to 32,
// by head size), each holding a contiguous slice of the scaled query and of the output accumulator
// in registers; K/V tiles of BK keys are staged in workgroup memory as vec4. With RT > 1 the partial
// scores of a tile are summed through workgroup memory.
//
// q, k and v may each be f32 or f16 (read as packed pairs, converted to f32 on load: the K/V tiles,
// scores, softmax and accumulator are f32 either way); the output takes q's dtype.

import { ShapeError, type Tensor, type TensorCoreMode } from '../gpu/runtime.js';
import { Params, activationDtype, ceilDiv, enableF16, loadF32, outputType, runtimeOf, shapeStr, storageType, storeValue } from './common.js';
import { planSubgroupAttention, subgroupAttentionCode, type AttentionDtypes } from './attention-subgroup.js';

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
  /** Output batch i attends with q's batch element `qBatch[i]` to k/v's batch element `kvBatch[i]`
   *  (no copies): e.g. qBatch [0, 0, 1, 1], kvBatch [0, 1, 0, 1] gives O_AA, O_AB, O_BA, O_BB of a
   *  stacked pair. Either map may be omitted (identity); up to MAX_BATCH_MAP entries. */
  qBatch?: readonly number[];
  kvBatch?: readonly number[];
  /** q/k/v come from f16 weights: under the runtime's `auto` tensor-core mode the attention then
   *  runs on f16 subgroup matrices where the adapter has them (always under `on`; never causal).
   *  An f16 q, k or v tensor counts as f16 inputs too. */
  f16Inputs?: boolean;
}

/** Longest batch map `attention` takes (the maps travel in the uniform block). */
export const MAX_BATCH_MAP = 16;

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

/** The uniform block of both attention kernels (see the Params in attention()). */
const ATTENTION_PARAMS = /* wgsl */ `struct P {
  nq: u32, nk: u32, heads: u32, scale: f32,
  qb: u32, qh: u32, qr: u32, _a: u32,
  kb: u32, kh: u32, kr: u32, _b: u32,
  vb: u32, vh: u32, vr: u32, _c: u32,
  ob: u32, oh: u32, or: u32, _d: u32,
  qmap: array<vec4<u32>, ${MAX_BATCH_MAP / 4}>,
  kvmap: array<vec4<u32>, ${MAX_BATCH_MAP / 4}>,
}
@group(0) @binding(0) var<uniform> p: P;`;

/** Whether attention runs on the subgroup-matrix kernel under tensor-core `mode`, where the runtime
 *  has subgroup matrices and the plan fits: always under `on` and `emulate`, under `auto` only for
 *  f16 inputs (`f16Inputs`, or an f16 q, k or v: their precision is f16's already); never causal. */
export function attentionOnTensorCores(mode: TensorCoreMode, f16: boolean, causal: boolean): boolean {
  return !causal && (mode === 'on' || mode === 'emulate' || (mode === 'auto' && f16));
}

function attentionCode(pl: AttnPlan, mapped: boolean, dt: AttentionDtypes): string {
  const { d, rt, bq, dp, bk, causal } = pl;
  const ds = dp / rt; // vec4s per invocation
  const threads = bq * rt;
  const BQ = bq;
  const split = rt > 1;
  return /* wgsl */ `${enableF16(dt.q)}
${ATTENTION_PARAMS}
@group(0) @binding(1) var<storage, read> q: array<${storageType(dt.q)}>;
@group(0) @binding(2) var<storage, read> k: array<${storageType(dt.k)}>;
@group(0) @binding(3) var<storage, read> v: array<${storageType(dt.v)}>;
@group(0) @binding(4) var<storage, read_write> o: array<${outputType(dt.q)}>;
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
  let bq_in = ${mapped ? 'p.qmap[b / 4u][b % 4u]' : 'b'};
  let bkv = ${mapped ? 'p.kvmap[b / 4u][b % 4u]' : 'b'};
  let q0 = wid.x * ${BQ}u;
  let row = tid / RT;
  let lane = tid % RT;
  let qi = q0 + row;
  let k_base = bkv * p.kb + h * p.kh;
  let v_base = bkv * p.vb + h * p.vh;

  // This invocation's slice of the (scaled) query row, in registers.
  var qv: array<vec4<f32>, DS>;
  if (qi < p.nq) {
    let q_base = bq_in * p.qb + h * p.qh + qi * p.qr;
    for (var i = 0u; i < DS; i++) {
      let c = (lane * DS + i) * 4u;
      var t = vec4<f32>(0.0);
      for (var e = 0u; e < 4u; e++) { if (c + e < D) { t[e] = ${loadF32('q', dt.q, 'q_base + c + e')} * p.scale; } }
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
        kv = ${loadF32('k', dt.k, 'k_base + (k0 + r) * p.kr + c')};
        vv = ${loadF32('v', dt.v, 'v_base + (k0 + r) * p.vr + c')};
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
      for (var e = 0u; e < 4u; e++) { if (c + e < D) { o[o_base + c + e] = ${storeValue(dt.q, 'acc[i][e] * inv')}; } }
    }
  }
}`;
}

/** softmax(Q·Kᵀ·scale)·V per (batch, head). Merged layout: q (B, Nq, H·D), k/v (B', Nk, H·D) →
 *  (B, Nq, H·D). Split layout: (B, H, N, D) → (B, H, Nq, D). Default scale 1/√D. With batch maps
 *  the output has one batch element per map entry (see AttentionOptions). q, k and v are each f32
 *  or f16; the output has q's dtype. */
export function attention(q: Tensor, k: Tensor, v: Tensor, o: AttentionOptions): Tensor {
  const dt: AttentionDtypes = { q: activationDtype(q, 'attention q'), k: activationDtype(k, 'attention k'), v: activationDtype(v, 'attention v') };
  const dtKey = `${dt.q}${dt.k}${dt.v}`;
  const layout = o.layout ?? 'merged';
  const mismatch = () => new ShapeError(`attention: q ${shapeStr(q.shape)}, k ${shapeStr(k.shape)}, v ${shapeStr(v.shape)} do not match`);
  let bQ: number, bKV: number, nq: number, nk: number, heads: number, d: number;
  if (layout === 'merged') {
    if (q.rank !== 3 || k.rank !== 3 || v.rank !== 3) throw new ShapeError(`attention: merged layout needs (B, N, H·D) tensors, got ${shapeStr(q.shape)}, ${shapeStr(k.shape)}, ${shapeStr(v.shape)}`);
    heads = o.heads;
    const c = q.shape[2]!;
    if (!Number.isInteger(heads) || heads < 1 || c % heads !== 0) throw new ShapeError(`attention: ${c} channels not divisible by ${heads} heads`);
    d = c / heads;
    [bQ, nq] = q.shape as [number, number];
    [bKV, nk] = k.shape as [number, number];
    if (v.shape[0] !== bKV || k.shape[2] !== c || v.shape[2] !== c || v.shape[1] !== nk) throw mismatch();
  } else {
    if (q.rank !== 4 || k.rank !== 4 || v.rank !== 4) throw new ShapeError(`attention: split layout needs (B, H, N, D) tensors, got ${shapeStr(q.shape)}, ${shapeStr(k.shape)}, ${shapeStr(v.shape)}`);
    [bQ, heads, nq, d] = q.shape as [number, number, number, number];
    bKV = k.shape[0]!;
    nk = k.shape[2]!;
    if (heads !== o.heads) throw new ShapeError(`attention: q has ${heads} heads, options say ${o.heads}`);
    if (shapeStr(k.shape) !== shapeStr([bKV, heads, nk, d]) || shapeStr(v.shape) !== shapeStr(k.shape)) throw mismatch();
  }
  const identity = (n: number) => Array.from({ length: n }, (_, i) => i);
  const qMap = o.qBatch ?? (o.kvBatch ? identity(o.kvBatch.length) : identity(bQ));
  const kvMap = o.kvBatch ?? identity(qMap.length);
  if (!o.qBatch && !o.kvBatch && bQ !== bKV) throw mismatch();
  const b = qMap.length;
  if (kvMap.length !== b) throw new ShapeError(`attention: qBatch has ${b} entries, kvBatch ${kvMap.length}`);
  if ((o.qBatch || o.kvBatch) && b > MAX_BATCH_MAP) throw new ShapeError(`attention: batch maps of ${b} entries, over ${MAX_BATCH_MAP}`);
  const badIndex = (m: readonly number[], n: number) => m.some((i) => !Number.isInteger(i) || i < 0 || i >= n);
  if (badIndex(qMap, bQ)) throw new ShapeError(`attention: qBatch [${qMap.join(', ')}] must index q's ${bQ} batch elements`);
  if (badIndex(kvMap, bKV)) throw new ShapeError(`attention: kvBatch [${kvMap.join(', ')}] must index k/v's ${bKV} batch elements`);
  if (d > 1536) throw new ShapeError(`attention: head dimension ${d} over 1536`);
  const rt = runtimeOf(q, k, v);
  const causal = !!o.causal;
  const pl = plan(d, causal, rt.limits.maxComputeWorkgroupStorageSize ?? 16384);
  const lq = layoutOf(layout, heads, nq, d);
  const lk = layoutOf(layout, heads, nk, d);
  const scale = o.scale ?? 1 / Math.sqrt(d);
  const outShape = layout === 'merged' ? [b, nq, heads * d] : [b, heads, nq, d];
  if (b * heads > (rt.limits.maxComputeWorkgroupsPerDimension ?? 65535)) throw new ShapeError('attention: batch × heads over the workgroup grid limit');
  const params = new Params()
    .u32(nq, nk, heads)
    .f32(scale)
    .u32(lq.batch, lq.head, lq.row, 0)
    .u32(lk.batch, lk.head, lk.row, 0)
    .u32(lk.batch, lk.head, lk.row, 0)
    .u32(lq.batch, lq.head, lq.row, 0);
  // Without maps (any batch size) the maps are unused beyond MAX_BATCH_MAP: index b directly.
  const mapped = b <= MAX_BATCH_MAP;
  for (const m of [qMap, kvMap]) for (let i = 0; i < MAX_BATCH_MAP; i++) params.u32(mapped ? (m[i] ?? 0) : 0);
  // Q·Kᵀ and P·V: 2·Nq·Nk·D multiply-adds per (batch, head); causal masking is not discounted.
  const flops = 4 * b * heads * nq * nk * d;
  const sm = rt.subgroupMatrix;
  const f16 = !!o.f16Inputs || dt.q === 'f16' || dt.k === 'f16' || dt.v === 'f16';
  const selected = sm && attentionOnTensorCores(rt.tensorCores, f16, causal);
  const spl = selected && nq >= sm.M && nk >= sm.N ? planSubgroupAttention(d, sm, rt.limits.maxComputeWorkgroupStorageSize ?? 16384) : null;
  if (sm && spl) {
    const bq = spl.sgq * sm.M;
    const skey = `sattention:${d}:${spl.sgq}:${spl.bkv}:${sm.M}x${sm.N}x${sm.K}:${sm.syntax}:${sm.subgroupSize}:${mapped ? 'map' : 'direct'}:${dtKey}`;
    return rt.run(
      rt.kernel(skey, () => ({ code: subgroupAttentionCode(spl, sm, ATTENTION_PARAMS, mapped, dt), inputs: 3, outputs: 1, uniforms: true })),
      { params: params.build(), inputs: [q, k, v], outputs: [{ shape: outShape, dtype: dt.q }], workgroups: [ceilDiv(nq, bq), b * heads, 1], flops },
    )[0]!;
  }
  const key = `attention:${d}:${pl.rt}:${pl.bq}:${pl.bk}:${causal ? 'causal' : 'full'}:${mapped ? 'map' : 'direct'}:${dtKey}`;
  return rt.run(
    rt.kernel(key, () => ({ code: attentionCode(pl, mapped, dt), inputs: 3, outputs: 1, uniforms: true })),
    { params: params.build(), inputs: [q, k, v], outputs: [{ shape: outShape, dtype: dt.q }], workgroups: [ceilDiv(nq, pl.bq), b * heads, 1], flops },
  )[0]!;
}
