// Attention on subgroup matrices (tensor cores): Q·Kᵀ and P·V with f16 operands, f32 accumulation.
//
// A workgroup owns BQ = SGQ·MM query rows of one (batch, head), one subgroup per MM rows; the head
// dimension is padded to DP (a multiple of the matrix K and N; 40 → 48, 80, 160). The subgroup
// matrices give no element access, so the softmax works on scores stored to workgroup memory, and
// it is done in two passes over the keys instead of rescaling the output accumulators per tile:
//   pass 1  per key tile of BKV: stage K (f16), S = Q·Kᵀ per subgroup → workgroup f32, one
//           invocation per row folds the tile into the running max m and sum l = Σ exp(s − m);
//   pass 2  per key tile: S again; P = exp(S − m) / l rounded to f16 while V is staged into K's
//           place; O += P·V in result matrices that live across all tiles.
// Q·Kᵀ is computed twice (1.5× the FLOPs of one pass), in exchange for no per-tile rescale of O.
// Finally each DP/N block of O goes through workgroup memory to the output, in the layout of the
// SIMT kernel (attention.ts: strides, batch maps). f16 q, k and v are read as packed pairs (the
// staged operands are f16 either way) and an f16 output is written as f16 elements; the prelude of
// the matrix builtins already enables f16.

import type { SubgroupMatrixSupport } from '../gpu/runtime.js';
import { loadF32, outputType, storageType, storeValue, type ActivationDType } from './common.js';
import { matrixOps } from './subgroup-matrix.js';

/** Dtypes of the attention operands; the output has q's. */
export interface AttentionDtypes {
  q: ActivationDType;
  k: ActivationDType;
  v: ActivationDType;
}

const PAD = 8;

export interface SubgroupAttentionPlan {
  d: number;
  dp: number;
  /** Subgroups (query blocks of sm.M rows) per workgroup. */
  sgq: number;
  bkv: number;
  threads: number;
  bytes: number;
}

/** The largest plan that fits `smemLimit` bytes of workgroup memory, or null. */
export function planSubgroupAttention(d: number, sm: SubgroupMatrixSupport, smemLimit: number): SubgroupAttentionPlan | null {
  const unit = Math.max(sm.K, sm.N);
  const dp = Math.ceil(d / unit) * unit;
  const bkv = 2 * Math.max(sm.N, sm.K);
  if (sm.subgroupSize < sm.M) return null; // one invocation per query row for the softmax
  for (const sgq of [4, 2, 1]) {
    const bq = sgq * sm.M;
    const bytes = bq * (dp + PAD) * 2 + bkv * (dp + PAD) * 2 + bq * bkv * 4 + bq * (bkv + PAD) * 2 + 2 * bq * 4;
    if (bytes <= smemLimit) return { d, dp, sgq, bkv, threads: sgq * sm.subgroupSize, bytes };
  }
  return null;
}

/** WGSL of the kernel; `params` is the uniform block of attention.ts (its struct P, binding 0),
 *  `mapped` whether the batch maps are read, `dt` the operands' dtypes. */
export function subgroupAttentionCode(pl: SubgroupAttentionPlan, sm: SubgroupMatrixSupport, params: string, mapped: boolean, dt: AttentionDtypes): string {
  const ops = matrixOps(sm, ['Qs', 'KVs', 'Ps']);
  const { d, dp, sgq, bkv, threads } = pl;
  const bq = sgq * sm.M;
  const QS = dp + PAD;
  const KS = dp + PAD;
  const PS = bkv + PAD;
  const scoreBlocks = bkv / sm.N;
  const dSteps = dp / sm.K;
  const outBlocks = dp / sm.N;
  const kSteps = bkv / sm.K;
  const scores = /* wgsl */ `
    for (var j = 0u; j < ${scoreBlocks}u; j++) {
      var acc_s = ${ops.result}();
      for (var dk = 0u; dk < ${dSteps}u; dk++) {
        let qm = ${ops.loadLeft('Qs', `sg * ${sm.M * QS}u + dk * ${sm.K}u`, QS)};
        let km = ${ops.loadRight('KVs', `j * ${sm.N * KS}u + dk * ${sm.K}u`, true, KS)};
        acc_s = ${ops.mma('qm', 'km', 'acc_s')};
      }
      ${ops.store('Ss', `sg * ${sm.M * bkv}u + j * ${sm.N}u`, 'acc_s', bkv)};
    }`;
  const stage = (src: 'k' | 'v') => /* wgsl */ `
    for (var e = tid; e < ${bkv * dp}u; e += ${threads}u) {
      let r = e / ${dp}u;
      let c = e % ${dp}u;
      var x = 0.0;
      if (k0 + r < p.nk && c < ${d}u) { x = ${loadF32(src, dt[src], `${src}_base + (k0 + r) * p.${src}r + c`)}; }
      KVs[r * ${KS}u + c] = f16(x);
    }`;
  // Both passes open a key tile alike: K staged, S = Q·Kᵀ in workgroup memory, visible to all.
  const scoreTile = `workgroupBarrier();
    ${stage('k')}
    workgroupBarrier();
    ${scores}
    workgroupBarrier();`;
  return /* wgsl */ `${ops.prelude}
${params}
@group(0) @binding(1) var<storage, read> q: array<${storageType(dt.q)}>;
@group(0) @binding(2) var<storage, read> k: array<${storageType(dt.k)}>;
@group(0) @binding(3) var<storage, read> v: array<${storageType(dt.v)}>;
@group(0) @binding(4) var<storage, read_write> o: array<${outputType(dt.q)}>;
var<workgroup> Qs: array<f16, ${bq * QS}>;
var<workgroup> KVs: array<f16, ${bkv * KS}>;
var<workgroup> Ss: array<f32, ${bq * bkv}>;
var<workgroup> Ps: array<f16, ${bq * PS}>;
var<workgroup> row_max: array<f32, ${bq}>;
var<workgroup> row_sum: array<f32, ${bq}>;

@compute @workgroup_size(${threads})
fn main(@builtin(local_invocation_index) tid: u32, @builtin(workgroup_id) wid: vec3<u32>${ops.entryArgs}) {
  ${ops.setup}
  let bh = wid.y;
  let b = bh / p.heads;
  let h = bh % p.heads;
  let bq_in = ${mapped ? 'p.qmap[b / 4u][b % 4u]' : 'b'};
  let bkv = ${mapped ? 'p.kvmap[b / 4u][b % 4u]' : 'b'};
  let q0 = wid.x * ${bq}u;
  let k_base = bkv * p.kb + h * p.kh;
  let v_base = bkv * p.vb + h * p.vh;
  let q_base = bq_in * p.qb + h * p.qh;
  for (var e = tid; e < ${bq * dp}u; e += ${threads}u) {
    let r = e / ${dp}u;
    let c = e % ${dp}u;
    var x = 0.0;
    if (q0 + r < p.nq && c < ${d}u) { x = ${loadF32('q', dt.q, 'q_base + (q0 + r) * p.qr + c')} * p.scale; }
    Qs[r * ${QS}u + c] = f16(x);
  }

  // Pass 1: the row max and the sum of exponentials, one invocation per query row.
  var m = -3.0e38;
  var l = 0.0;
  for (var k0 = 0u; k0 < p.nk; k0 += ${bkv}u) {
    ${scoreTile}
    if (tid < ${bq}u) {
      var tile_max = -3.0e38;
      for (var j = 0u; j < ${bkv}u; j++) { if (k0 + j < p.nk) { tile_max = max(tile_max, Ss[tid * ${bkv}u + j]); } }
      let m_new = max(m, tile_max);
      l *= exp(m - m_new);
      for (var j = 0u; j < ${bkv}u; j++) { if (k0 + j < p.nk) { l += exp(Ss[tid * ${bkv}u + j] - m_new); } }
      m = m_new;
    }
  }
  if (tid < ${bq}u) {
    row_max[tid] = m;
    row_sum[tid] = select(0.0, 1.0 / l, l > 0.0);
  }

  // Pass 2: O = Σ_tiles softmax(S)·V.
  var acc_o: array<${ops.result}, ${outBlocks}>;
  for (var k0 = 0u; k0 < p.nk; k0 += ${bkv}u) {
    ${scoreTile}
    for (var e = tid; e < ${bq * bkv}u; e += ${threads}u) {
      let r = e / ${bkv}u;
      let j = e % ${bkv}u;
      var pr = 0.0;
      if (k0 + j < p.nk) { pr = exp(Ss[e] - row_max[r]) * row_sum[r]; }
      Ps[r * ${PS}u + j] = f16(pr);
    }
    ${stage('v')}
    workgroupBarrier();
    for (var dn = 0u; dn < ${outBlocks}u; dn++) {
      for (var kk = 0u; kk < ${kSteps}u; kk++) {
        let pm = ${ops.loadLeft('Ps', `sg * ${sm.M * PS}u + kk * ${sm.K}u`, PS)};
        let vm = ${ops.loadRight('KVs', `kk * ${sm.K * KS}u + dn * ${sm.N}u`, false, KS)};
        acc_o[dn] = ${ops.mma('pm', 'vm', 'acc_o[dn]')};
      }
    }
  }

  let o_base = b * p.ob + h * p.oh;
  for (var dn = 0u; dn < ${outBlocks}u; dn++) {
    workgroupBarrier();
    ${ops.store('Ss', `sg * ${sm.M * bkv}u`, 'acc_o[dn]', bkv)};
    workgroupBarrier();
    for (var e = tid; e < ${bq * sm.N}u; e += ${threads}u) {
      let r = e / ${sm.N}u;
      let c = dn * ${sm.N}u + e % ${sm.N}u;
      if (q0 + r < p.nq && c < ${d}u) { o[o_base + (q0 + r) * p.or + c] = ${storeValue(dt.q, `Ss[(r / ${sm.M}u) * ${sm.M * bkv}u + (r % ${sm.M}u) * ${bkv}u + e % ${sm.N}u]`)}; }
    }
  }
}`;
}
