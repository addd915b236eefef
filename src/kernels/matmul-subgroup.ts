// The GEMM of matmul.ts on subgroup matrices (tensor cores): f16 operands, f32 accumulation.
//
// Workgroup tile BM×BN = (SGM·TM·MM) × (SGN·TN·MN): SGM×SGN subgroups, each owning TM×TN result
// matrices of MM×MN. Per step of BK along K all invocations stage the A tile (BM×BK, row-major,
// rounded to f16) and the B tile into workgroup memory — B as [n][k] for the (N, K) weight layout
// (read as a column-major right matrix) and as [k][n] otherwise — then each subgroup loads its
// left/right matrices from there and multiply-accumulates. Rows are padded by 8 halves (16 bytes)
// so every matrix load starts 16-byte aligned and consecutive rows fall on different banks.
// f16 operands (weights or activations) are unpacked and staged unchanged (the round trip through
// f32 is exact); f32 ones are rounded to f16 there.
// The builtins give no element access, so the epilogue goes through workgroup memory: result
// matrix t of every subgroup is stored to a per-subgroup MM×MN f32 scratch, and all invocations
// finish those elements with the same epilogue as the SIMT kernel (bias, activation, residual,
// split or transposed outputs; an f16 result is rounded once from that f32 value, the module's
// `enable f16;` being the matrix builtins' own).
// With emulated subgroup matrices (subgroup-matrix.ts) the same kernel runs on any adapter.

import type { SubgroupMatrixSupport } from '../gpu/runtime.js';
import { WGSL_ACTIVATIONS, storageType } from './common.js';
import { matrixOps } from './subgroup-matrix.js';
import { GEMM_PARAMS, gemmEpilogue, load, type GemmVariant } from './gemm-code.js';

export interface SubgroupTile {
  /** Subgroups per workgroup along m and n. */
  SGM: number;
  SGN: number;
  /** Result matrices per subgroup along m and n. */
  TM: number;
  TN: number;
  /** K staged per step (a multiple of the matrix K). */
  BK: number;
}

export const SUBGROUP_TILES = {
  large: { SGM: 2, SGN: 2, TM: 4, TN: 4, BK: 32 },
  medium: { SGM: 2, SGN: 2, TM: 2, TN: 2, BK: 32 },
} as const satisfies Record<string, SubgroupTile>;

const PAD = 8;

export interface SubgroupGeometry {
  BM: number;
  BN: number;
  threads: number;
  /** Workgroup memory in bytes. */
  bytes: number;
}

export function subgroupGeometry(t: SubgroupTile, sm: SubgroupMatrixSupport, bLayoutNK: boolean): SubgroupGeometry {
  const BM = t.SGM * t.TM * sm.M;
  const BN = t.SGN * t.TN * sm.N;
  const aBytes = BM * (t.BK + PAD) * 2;
  const bBytes = (bLayoutNK ? BN * (t.BK + PAD) : t.BK * (BN + PAD)) * 2;
  const cBytes = t.SGM * t.SGN * sm.M * sm.N * 4;
  return { BM, BN, threads: t.SGM * t.SGN * sm.subgroupSize, bytes: aBytes + bBytes + cBytes };
}

/** WGSL for variant `v` (its SIMT tile and vector flags are ignored) on subgroup matrices `sm`. */
export function subgroupGemmCode(v: GemmVariant, t: SubgroupTile, sm: SubgroupMatrixSupport): string {
  const ops = matrixOps(sm, ['As', 'Bs']);
  const nk = v.bLayout === 'nk';
  const { BM, BN, threads } = subgroupGeometry(t, sm, nk);
  const { BK, TM, TN, SGM } = t;
  if (BK % sm.K !== 0) throw new Error(`subgroup GEMM: BK ${BK} is not a multiple of the matrix K ${sm.K}`);
  const AS = BK + PAD; // As row stride (halves)
  const BS = nk ? BK + PAD : BN + PAD; // Bs row stride: [n][k] or [k][n]
  const aLoads = (BM * BK) / threads;
  const bLoads = (BN * BK) / threads;
  if (!Number.isInteger(aLoads) || !Number.isInteger(bLoads)) throw new Error('subgroup GEMM: tile does not split over the invocations');
  const sgCount = t.SGM * t.SGN;
  const cElems = sm.M * sm.N;
  const cPer = (sgCount * cElems) / threads;

  // Element (gk, gn) of B, or 0 outside (the (N, K) and (K, N) layouts).
  const bAt =
    v.bLayout === 'nk'
      ? `if (gn < p.N && gk < p.K) { return ${load('B', v.dtypeB, 'b_base + gn * p.K + gk')}; } return 0.0;`
      : `if (gn < p.N && gk < p.K) { return ${load('B', v.dtypeB, 'b_base + gk * p.N + gn')}; } return 0.0;`;
  const { bindings, store } = gemmEpilogue(v, storageType(v.dtypeA), storageType(v.dtypeB), 'Cs[e]');
  // B staging: [n][k] keeps the reads of an (N, K) weight contiguous along k; [k][n] those of a
  // row-major (K, N) operand or an image along n. For the implicit im2col every invocation stages
  // one output pixel (threads is a multiple of BN), so its input coordinates are computed once.
  let bSetup = '';
  let bStage: string;
  if (nk) {
    bStage = `for (var l = 0u; l < ${bLoads}u; l++) {
      let idx = tid + l * ${threads}u;
      let nn = idx / ${BK}u; let kk = idx % ${BK}u;
      Bs[nn * ${BS}u + kk] = f16(b_at(b_base, k0 + kk, n0 + nn));
    }`;
  } else if (v.bLayout === 'kn') {
    bStage = `for (var l = 0u; l < ${bLoads}u; l++) {
      let idx = tid + l * ${threads}u;
      let kk = idx / ${BN}u; let nn = idx % ${BN}u;
      Bs[kk * ${BS}u + nn] = f16(b_at(b_base, k0 + kk, n0 + nn));
    }`;
  } else {
    const c = v.conv!;
    const khw = c.kh * c.kw;
    if (threads % BN !== 0) throw new Error('subgroup GEMM: im2col staging needs threads to be a multiple of BN');
    bSetup = `let st_n = tid % ${BN}u;
  let st_k = tid / ${BN}u;
  let st_gn = n0 + st_n;
  let st_valid = st_gn < p.N;
  let st_iy0 = i32((st_gn / p.ow) * ${c.stride}u) - i32(p.pad_top);
  let st_ix0 = i32((st_gn % p.ow) * ${c.stride}u) - i32(p.pad_left);`;
    bStage = `for (var l = 0u; l < ${bLoads}u; l++) {
      let kk = st_k + l * ${threads / BN}u;
      let gk = k0 + kk;
      var x = 0.0;
      if (st_valid && gk < p.K) {
        let ci = gk / ${khw}u;
        let r = gk % ${khw}u;
        let iy = st_iy0 + i32(r / ${c.kw}u);
        let ix = st_ix0 + i32(r % ${c.kw}u);
        if (iy >= 0 && ix >= 0 && u32(iy) < p.ih && u32(ix) < p.iw) {
          x = ${load('B', v.dtypeB, 'b_base + (ci * p.ih + u32(iy)) * p.iw + u32(ix)')};
        }
      }
      Bs[kk * ${BS}u + st_n] = f16(x);
    }`;
  }
  const rightOffset = (j: string, kk: string) => (nk ? `(sg_n * ${TN * sm.N}u + ${j} * ${sm.N}u) * ${BS}u + ${kk}` : `${kk} * ${BS}u + sg_n * ${TN * sm.N}u + ${j} * ${sm.N}u`);

  return /* wgsl */ `${ops.prelude}
${GEMM_PARAMS}
${bindings}
${v.act === 'none' ? 'fn act_none(x: f32) -> f32 { return x; }' : WGSL_ACTIVATIONS}
var<workgroup> As: array<f16, ${BM * AS}>;
var<workgroup> Bs: array<f16, ${nk ? BN * BS : BK * BS}>;
var<workgroup> Cs: array<f32, ${sgCount * cElems}>;

fn a_at(a_base: u32, gm: u32, gk: u32) -> f32 {
  if (gm < p.M && gk < p.K) { return ${load('A', v.dtypeA, 'a_base + gm * p.K + gk')}; }
  return 0.0;
}
fn b_at(b_base: u32, gk: u32, gn: u32) -> f32 {
  ${bAt}
}

@compute @workgroup_size(${threads})
fn main(@builtin(local_invocation_index) tid: u32, @builtin(workgroup_id) wid: vec3<u32>${ops.entryArgs}) {
  ${ops.setup}
  let m0 = wid.y * ${BM}u;
  let n0 = wid.x * ${BN}u;
  let bz = wid.z;
  let a_base = bz * p.batch_a;
  let b_base = bz * p.batch_b;
  let sg_m = sg % ${SGM}u;
  let sg_n = sg / ${SGM}u;
  ${bSetup}
  var acc: array<${ops.result}, ${TM * TN}>;
  for (var k0 = 0u; k0 < p.K; k0 += ${BK}u) {
    for (var l = 0u; l < ${aLoads}u; l++) {
      let idx = tid + l * ${threads}u;
      let mm = idx / ${BK}u; let kk = idx % ${BK}u;
      As[mm * ${AS}u + kk] = f16(a_at(a_base, m0 + mm, k0 + kk));
    }
    ${bStage}
    workgroupBarrier();
    for (var kk = 0u; kk < ${BK}u; kk += ${sm.K}u) {
      var a: array<${ops.left}, ${TM}>;
      var b: array<${ops.right}, ${TN}>;
      for (var i = 0u; i < ${TM}u; i++) { a[i] = ${ops.loadLeft('As', `(sg_m * ${TM * sm.M}u + i * ${sm.M}u) * ${AS}u + kk`, AS)}; }
      for (var j = 0u; j < ${TN}u; j++) { b[j] = ${ops.loadRight('Bs', rightOffset('j', 'kk'), nk, BS)}; }
      for (var i = 0u; i < ${TM}u; i++) {
        for (var j = 0u; j < ${TN}u; j++) { acc[i * ${TN}u + j] = ${ops.mma('a[i]', 'b[j]', `acc[i * ${TN}u + j]`)}; }
      }
    }
    workgroupBarrier();
  }
  let c_base = bz * p.batch_c;
  for (var t = 0u; t < ${TM * TN}u; t++) {
    ${ops.store('Cs', `sg * ${cElems}u`, 'acc[t]', sm.N)};
    workgroupBarrier();
    for (var l = 0u; l < ${cPer}u; l++) {
      let e = tid + l * ${threads}u;
      let owner = e / ${cElems}u;
      let within = e % ${cElems}u;
      let gm = m0 + (owner % ${SGM}u) * ${TM * sm.M}u + (t / ${TN}u) * ${sm.M}u + within / ${sm.N}u;
      let gn = n0 + (owner / ${SGM}u) * ${TN * sm.N}u + (t % ${TN}u) * ${sm.N}u + within % ${sm.N}u;
      if (gm < p.M && gn < p.N) {
        ${store}
      }
    }
    workgroupBarrier();
  }
}`;
}
