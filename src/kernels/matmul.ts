// Tiled GEMM: C[b] = A[b] (M×K) · B[b] (K×N) with fused epilogue (bias, activation, residual).
// One WGSL template serves three operand layouts:
//   linear  A = x (M×K, row-major), B read from a PyTorch weight W (N×K): B[k][n] = W[n][k]
//   matmul  A (M×K) and B (K×N) row-major, optionally batched with broadcasting
//   conv2d  A = weight (Cout × Cin·KH·KW), B = the implicit im2col of the input image (no buffer)
// Each workgroup computes a BM×BN tile; each invocation a TM×TN block of it, accumulating in f32
// over K in steps of BK staged through workgroup memory (A transposed so reads are vec4).
// Activations (x, a, the image, the tokens, the residual) are f32 or f16; the result takes the
// activation operand's dtype. f16 operands are read as packed pairs (scalar loads, never vec4),
// and an f16 result is rounded once from the f32 sum of the epilogue.

import { ShapeError, numelOf, type Runtime, type SubgroupMatrixSupport, type Tensor } from '../gpu/runtime.js';
import { SUBGROUP_TILES, subgroupGeometry, subgroupGemmCode, type SubgroupTile } from './matmul-subgroup.js';
import { LANE_TILES, cheapestLaneTile, laneGemmCode, laneWorkgroups, type LaneTile } from './matmul-lanes.js';
import { GEMM_PARAMS, gemmEpilogue, load, type GemmVariant, type TileConfig } from './gemm-code.js';

export type { TileConfig };
import { binary, unary } from './elementwise.js';
import { slice } from './layout.js';
import { Params, WGSL_ACTIVATIONS, activationDtype, assertFloat, ceilDiv, enableF16, runtimeOf, shapeStr, storageType, type Activation, type ActivationDType } from './common.js';


export const TILES = {
  large: { BM: 128, BN: 128, BK: 16, TM: 8, TN: 8 },
  medium: { BM: 64, BN: 64, BK: 16, TM: 4, TN: 4 },
  small: { BM: 32, BN: 32, BK: 16, TM: 2, TN: 2 },
  tall: { BM: 64, BN: 32, BK: 16, TM: 4, TN: 2 },
  // Narrow tiles for GEMMs with few columns or rows, where a 32-wide tile computes mostly padding:
  // convolutions at the U-Net's deepest levels (N = H·W = 16, 4 or 1 pixels at a 64² image) and
  // the time-embedding projections (M = the batch, 2).
  n16: { BM: 64, BN: 16, BK: 16, TM: 4, TN: 2 },
  n4: { BM: 64, BN: 4, BK: 16, TM: 4, TN: 2 },
  n2: { BM: 128, BN: 2, BK: 16, TM: 4, TN: 2 },
  m8: { BM: 8, BN: 64, BK: 16, TM: 2, TN: 4 },
} as const satisfies Record<string, TileConfig>;

/** What a variant computes, apart from how it is tiled. */
function operandsKey(v: Omit<GemmVariant, 'tile' | 'vecA' | 'vecB'>): string {
  const c = v.conv ? `${v.conv.kh}x${v.conv.kw}s${v.conv.stride}` : '';
  return `${v.bLayout}${c}:${v.bias}${v.batchBias ? '+bb' : ''}:${v.act}:${v.residual ? `res.${v.dtypeRes}` : ''}:${v.storeT ? 'T' : ''}:${v.split ?? 1}:${v.dtypeC}`;
}

function variantKey(v: GemmVariant): string {
  const t = v.tile;
  return `gemm:${t.BM}x${t.BN}x${t.BK}:${t.TM}x${t.TN}:${v.dtypeA}${v.vecA ? 'v' : ''}:${v.dtypeB}${v.vecB ? 'v' : ''}:${operandsKey(v)}`;
}

function gemmCode(v: GemmVariant): string {
  const { BM, BN, BK, TM, TN } = v.tile;
  const threadsM = BM / TM;
  const threadsN = BN / TN;
  const threads = threadsM * threadsN;
  const VM = TM % 4 === 0 ? 4 : 2;
  const VN = TN % 4 === 0 ? 4 : 2;
  const vecM = `vec${VM}<f32>`;
  const vecN = `vec${VN}<f32>`;
  const aw = v.vecA ? 4 : 1; // elements per A load
  const bw = v.vecB ? 4 : 1;
  const aLoads = (BM * BK) / threads / aw;
  const bLoads = (BN * BK) / threads / bw;
  if (!Number.isInteger(aLoads) || !Number.isInteger(bLoads) || aLoads < 1 || bLoads < 1 || (TM % 4 !== 0 && TM !== 2) || TN % 2 !== 0) {
    throw new Error(`gemm: unsupported tile ${JSON.stringify(v.tile)} for this variant`);
  }
  // Load mappings are chosen so that each invocation's position along the fast axis is the same for
  // all its loads (threads is a multiple of the fast-axis extent): index math is hoisted.
  const aFast = BK / aw; // A: fast axis k (row-major M×K)
  if (threads % aFast !== 0) throw new Error('gemm: threads not a multiple of the A tile row');
  const aType = v.vecA ? 'vec4<f32>' : storageType(v.dtypeA);
  const bType = v.vecB ? 'vec4<f32>' : storageType(v.dtypeB);

  // ---- A tile load into registers ra[l] and store into As
  const aLoadCode = v.vecA
    ? `
    for (var l = 0u; l < ${aLoads}u; l++) {
      let mm = a_m + l * ${threads / aFast}u;
      let gm = m0 + mm;
      let gk = k0 + a_k * 4u;
      ra[l] = vec4<f32>(0.0);
      if (gm < p.M && gk < p.K) { ra[l] = A[(a_base + gm * p.K + gk) >> 2u]; }
    }`
    : `
    for (var l = 0u; l < ${aLoads}u; l++) {
      let mm = a_m + l * ${threads / aFast}u;
      let gm = m0 + mm;
      let gk = k0 + a_k;
      ra[l] = 0.0;
      if (gm < p.M && gk < p.K) { ra[l] = ${load('A', v.dtypeA, 'a_base + gm * p.K + gk')}; }
    }`;
  const aStoreCode = v.vecA
    ? `
    for (var l = 0u; l < ${aLoads}u; l++) {
      let mm = a_m + l * ${threads / aFast}u;
      for (var c = 0u; c < 4u; c++) { As[((a_k * 4u + c) * BM + mm) / ${VM}u][mm % ${VM}u] = ra[l][c]; }
    }`
    : `
    for (var l = 0u; l < ${aLoads}u; l++) {
      let mm = a_m + l * ${threads / aFast}u;
      As[(a_k * BM + mm) / ${VM}u][mm % ${VM}u] = ra[l];
    }`;

  // ---- B tile
  let bSetup: string;
  let bLoadCode: string;
  let bStoreCode: string;
  if (v.bLayout === 'nk') {
    const fast = BK / bw; // fast axis k
    if (threads % fast !== 0) throw new Error('gemm: threads not a multiple of the B tile row');
    bSetup = `let b_k = tid % ${fast}u; let b_n = tid / ${fast}u;`;
    bLoadCode = `
    for (var l = 0u; l < ${bLoads}u; l++) {
      let gn = n0 + b_n + l * ${threads / fast}u;
      let gk = k0 + b_k * ${bw}u;
      rb[l] = ${v.vecB ? 'vec4<f32>(0.0)' : '0.0'};
      if (gn < p.N && gk < p.K) { rb[l] = ${v.vecB ? 'B[(b_base + gn * p.K + gk) >> 2u]' : load('B', v.dtypeB, 'b_base + gn * p.K + gk')}; }
    }`;
    bStoreCode = v.vecB
      ? `
    for (var l = 0u; l < ${bLoads}u; l++) {
      let nn = b_n + l * ${threads / fast}u;
      for (var c = 0u; c < 4u; c++) { Bs[((b_k * 4u + c) * BN + nn) / ${VN}u][nn % ${VN}u] = rb[l][c]; }
    }`
      : `
    for (var l = 0u; l < ${bLoads}u; l++) {
      let nn = b_n + l * ${threads / fast}u;
      Bs[(b_k * BN + nn) / ${VN}u][nn % ${VN}u] = rb[l];
    }`;
  } else if (v.bLayout === 'kn') {
    const fast = BN / bw; // fast axis n
    if (threads % fast !== 0) throw new Error('gemm: threads not a multiple of the B tile row');
    bSetup = `let b_n = tid % ${fast}u; let b_k = tid / ${fast}u;`;
    bLoadCode = `
    for (var l = 0u; l < ${bLoads}u; l++) {
      let gk = k0 + b_k + l * ${threads / fast}u;
      let gn = n0 + b_n * ${bw}u;
      rb[l] = ${v.vecB ? 'vec4<f32>(0.0)' : '0.0'};
      if (gn < p.N && gk < p.K) { rb[l] = ${v.vecB ? 'B[(b_base + gk * p.N + gn) >> 2u]' : load('B', v.dtypeB, 'b_base + gk * p.N + gn')}; }
    }`;
    bStoreCode = v.vecB
      ? `
    for (var l = 0u; l < ${bLoads}u; l++) {
      let kk = b_k + l * ${threads / fast}u;
      Bs[(kk * BN + b_n * 4u) / ${VN}u] = ${VN === 4 ? 'rb[l]' : ''}${VN === 2 ? 'rb[l].xy; Bs[(kk * BN + b_n * 4u) / 2u + 1u] = rb[l].zw' : ''};
    }`
      : `
    for (var l = 0u; l < ${bLoads}u; l++) {
      let kk = b_k + l * ${threads / fast}u;
      Bs[(kk * BN + b_n) / ${VN}u][b_n % ${VN}u] = rb[l];
    }`;
  } else {
    const c = v.conv!;
    const khw = c.kh * c.kw;
    if (threads % BN !== 0) throw new Error('gemm: threads not a multiple of the B tile row');
    // Each invocation always loads the same output pixel column nn; only k varies.
    bSetup = `let b_n = tid % ${BN}u; let b_k = tid / ${BN}u;
  let b_gn = n0 + b_n;
  let b_valid = b_gn < p.N;
  let b_iy0 = i32((b_gn / p.ow) * ${c.stride}u) - i32(p.pad_top);
  let b_ix0 = i32((b_gn % p.ow) * ${c.stride}u) - i32(p.pad_left);`;
    bLoadCode = `
    for (var l = 0u; l < ${bLoads}u; l++) {
      let gk = k0 + b_k + l * ${threads / BN}u;
      rb[l] = 0.0;
      if (b_valid && gk < p.K) {
        let ci = gk / ${khw}u;
        let r = gk % ${khw}u;
        let iy = b_iy0 + i32(r / ${c.kw}u);
        let ix = b_ix0 + i32(r % ${c.kw}u);
        if (iy >= 0 && ix >= 0 && u32(iy) < p.ih && u32(ix) < p.iw) {
          rb[l] = ${load('B', v.dtypeB, 'b_base + (ci * p.ih + u32(iy)) * p.iw + u32(ix)')};
        }
      }
    }`;
    bStoreCode = `
    for (var l = 0u; l < ${bLoads}u; l++) {
      let kk = b_k + l * ${threads / BN}u;
      Bs[(kk * BN + b_n) / ${VN}u][b_n % ${VN}u] = rb[l];
    }`;
  }

  const { bindings, store } = gemmEpilogue(v, aType, bType, `acc[i * ${TN / VN}u + j / ${VN}u][j % ${VN}u]`);
  return /* wgsl */ `${enableF16(v.dtypeC)}
${GEMM_PARAMS}
${bindings}
${v.act === 'none' ? 'fn act_none(x: f32) -> f32 { return x; }' : WGSL_ACTIVATIONS}
const BM = ${BM}u;
const BN = ${BN}u;
const BK = ${BK}u;
const TM = ${TM}u;
const TN = ${TN}u;
// As[k][m] and Bs[k][n], packed in vectors along m and n.
var<workgroup> As: array<${vecM}, ${(BK * BM) / VM}>;
var<workgroup> Bs: array<${vecN}, ${(BK * BN) / VN}>;

@compute @workgroup_size(${threads})
fn main(@builtin(local_invocation_index) tid: u32, @builtin(workgroup_id) wid: vec3<u32>) {
  let m0 = wid.y * BM;
  let n0 = wid.x * BN;
  let bz = wid.z;
  let a_base = bz * p.batch_a;
  let b_base = bz * p.batch_b;
  let tm = tid / ${threadsN}u;
  let tn = tid % ${threadsN}u;
  let a_k = tid % ${aFast}u;
  let a_m = tid / ${aFast}u;
  ${bSetup}
  var acc: array<${vecN}, ${(TM * TN) / VN}>;
  var ra: array<${v.vecA ? 'vec4<f32>' : 'f32'}, ${aLoads}>;
  var rb: array<${v.vecB ? 'vec4<f32>' : 'f32'}, ${bLoads}>;
  var k0 = 0u;
  ${aLoadCode}
  ${bLoadCode}
  loop {
    if (k0 >= p.K) { break; }
    workgroupBarrier();
    ${aStoreCode}
    ${bStoreCode}
    workgroupBarrier();
    k0 += BK;
    // Prefetch the next tile into registers while this one is multiplied from workgroup memory.
    if (k0 < p.K) {
      ${aLoadCode}
      ${bLoadCode}
    }
    for (var k = 0u; k < BK; k++) {
      var a: array<${vecM}, ${TM / VM}>;
      var b: array<${vecN}, ${TN / VN}>;
      for (var i = 0u; i < ${TM / VM}u; i++) { a[i] = As[(k * BM + tm * TM) / ${VM}u + i]; }
      for (var j = 0u; j < ${TN / VN}u; j++) { b[j] = Bs[(k * BN + tn * TN) / ${VN}u + j]; }
      for (var i = 0u; i < TM; i++) {
        let av = a[i / ${VM}u][i % ${VM}u];
        for (var j = 0u; j < ${TN / VN}u; j++) {
          acc[i * ${TN / VN}u + j] = fma(${vecN}(av), b[j], acc[i * ${TN / VN}u + j]);
        }
      }
    }
  }
  let c_base = bz * p.batch_c;
  for (var i = 0u; i < TM; i++) {
    let gm = m0 + tm * TM + i;
    if (gm >= p.M) { continue; }
    for (var j = 0u; j < TN; j++) {
      let gn = n0 + tn * TN + j;
      if (gn >= p.N) { continue; }
      ${store}
    }
  }
}`;
}

interface GemmLaunch {
  M: number;
  N: number;
  K: number;
  batch: number;
  batchA: number;
  batchB: number;
  conv?: { ow: number; ih: number; iw: number; padTop: number; padLeft: number };
}

/** Picks a tile for the problem: big tiles only when they fill the GPU. The `gemmTile` flag
 *  (DIFFSIM_GEMM_TILE) forces one (tests, benchmarks). */
export function chooseTile(rt: Runtime, M: number, N: number, batch: number): TileConfig {
  const forced = rt.flags.gemmTile;
  if (forced !== 'auto' && forced in TILES) return TILES[forced as keyof typeof TILES];
  const software = rt.adapterInfo.isFallbackAdapter;
  const tiles = (t: TileConfig) => ceilDiv(M, t.BM) * ceilDiv(N, t.BN) * batch;
  // On the H200 the 64×64 tile beat the 128×128 one until about 512 large tiles (bench/results).
  if (!software && tiles(TILES.large) >= 512) return TILES.large;
  if (software && (N <= 16 || M <= 8)) {
    // On a CPU adapter every padded row or column costs as much as a real one (the workgroups
    // already outnumber the cores): the narrowest tile that holds the short side.
    if (N <= 2) return TILES.n2;
    if (N <= 4) return TILES.n4;
    if (N <= 16) return TILES.n16;
    return TILES.m8;
  }
  if (M <= 16 || N <= 16) return TILES.small;
  if (tiles(TILES.medium) >= (software ? 2 : 64)) return TILES.medium;
  return TILES.small;
}

/** Every name the `gemmTile` flag takes besides auto: the workgroup-memory tiles, then the lane tiles. */
export const GEMM_TILE_NAMES = [...Object.keys(TILES), ...Object.keys(LANE_TILES)] as (keyof typeof TILES | keyof typeof LANE_TILES)[];

/** The lane GEMM (matmul-lanes.ts) for this problem, or null for the workgroup-memory kernel: on
 *  CPU adapters under Node's Dawn whose subgroups have one fixed size (lavapipe), or wherever the
 *  `gemmTile` flag forces a lane tile (an adapter without such subgroups is then an error, not a
 *  silent fallback). Chromium's SwiftShader keeps the workgroup-memory kernel: there the lane kernel
 *  scored DiffSim 4× faster but lost the device on DINOv2. */
export function chooseLaneTile(rt: Runtime, M: number, N: number, batch: number, fold = false): { name: keyof typeof LANE_TILES; tile: LaneTile; S: number } | null {
  const forced = rt.flags.gemmTile;
  if (forced !== 'auto' && !(forced in LANE_TILES)) return null;
  const info = rt.adapterInfo;
  const S = rt.hasSubgroups && info.subgroupMinSize && info.subgroupMinSize === info.subgroupMaxSize ? info.subgroupMinSize : 0;
  if (forced !== 'auto') {
    if (!S) throw new Error(`gemmTile ${forced}: the lane GEMM needs subgroups of one fixed size; this adapter has ${rt.hasSubgroups ? `sizes ${info.subgroupMinSize}–${info.subgroupMaxSize}` : 'no subgroups'}`);
    const name = forced as keyof typeof LANE_TILES;
    return { name, tile: LANE_TILES[name], S };
  }
  if (!info.isFallbackAdapter || !S || 64 % S !== 0 || info.host !== 'node-dawn') return null;
  const name = cheapestLaneTile(S, M, N, batch, fold);
  return { name, tile: LANE_TILES[name], S };
}

/** The subgroup-matrix tile for this GEMM, or null for the SIMT kernel: only where the runtime
 *  has subgroup matrices and its mode selects this GEMM (see TensorCoreMode), for problems of at
 *  least one matrix in each dimension, with the larger tile once it fills the GPU and fits the
 *  workgroup memory. The `tcTile` flag (DIFFSIM_TC_TILE) forces one (tests, benchmarks). */
export function chooseSubgroupTile(rt: Runtime, v: Omit<GemmVariant, 'tile' | 'vecA' | 'vecB'>, g: Pick<GemmLaunch, 'M' | 'N' | 'K' | 'batch'>): { tile: SubgroupTile; sm: SubgroupMatrixSupport; name: keyof typeof SUBGROUP_TILES } | null {
  const sm = rt.subgroupMatrix;
  if (!sm) return null;
  // auto: where the layer's weights are f16 (f16 activations alone leave f32 weights exact), or
  // where both activations of a matmul are.
  const f16Weights = v.weightOperand ? (v.weightOperand === 'A' ? v.dtypeA : v.dtypeB) === 'f16' : v.dtypeA === 'f16' && v.dtypeB === 'f16';
  const selected = rt.tensorCores === 'on' || rt.tensorCores === 'emulate' || (rt.tensorCores === 'auto' && f16Weights);
  if (!selected || g.M < sm.M || g.N < sm.N || g.K < sm.K) return null;
  const limit = rt.limits.maxComputeWorkgroupStorageSize ?? 16384;
  const fits = (name: keyof typeof SUBGROUP_TILES) => subgroupGeometry(SUBGROUP_TILES[name], sm, v.bLayout === 'nk').bytes <= limit;
  const forced = rt.flags.tcTile;
  if (forced !== 'auto') return fits(forced) ? { tile: SUBGROUP_TILES[forced], sm, name: forced } : null;
  const large = subgroupGeometry(SUBGROUP_TILES.large, sm, v.bLayout === 'nk');
  const tiles = ceilDiv(g.M, large.BM) * ceilDiv(g.N, large.BN) * g.batch;
  const name = tiles >= 256 && fits('large') ? 'large' : 'medium';
  return fits(name) ? { tile: SUBGROUP_TILES[name], sm, name } : null;
}

function gemm(rt: Runtime, v: Omit<GemmVariant, 'tile' | 'vecA' | 'vecB'>, g: GemmLaunch, a: Tensor, b: Tensor, bias: Tensor | undefined, residual: Tensor | undefined, outShape: readonly number[]): Tensor {
  return gemmOutputs(rt, v, g, a, b, bias, undefined, residual, [outShape])[0]!;
}

/** The GEMM with all its epilogue options; one output, or `v.split` outputs of N/split columns. */
function gemmOutputs(rt: Runtime, v: Omit<GemmVariant, 'tile' | 'vecA' | 'vecB'>, g: GemmLaunch, a: Tensor, b: Tensor, bias: Tensor | undefined, batchBias: Tensor | undefined, residual: Tensor | undefined, outShapes: readonly (readonly number[])[]): Tensor[] {
  const outShape = outShapes[0]!;
  const split = v.split ?? 1;
  if (g.K === 0 && (split > 1 || v.storeT || batchBias)) throw new ShapeError('gemm: an empty inner dimension with split, transposed or batch-bias outputs is not supported');
  const sub = chooseSubgroupTile(rt, v, g);
  const c = g.conv;
  const params = new Params()
    .u32(g.M, g.N, g.K, g.batchA)
    .u32(g.batchB, g.M * g.N, c?.ow ?? 1, c?.ih ?? 0)
    .u32(c?.iw ?? 0, c?.padTop ?? 0, c?.padLeft ?? 0, g.N / split)
    .u32(g.batch, 0, 0, 0)
    .build();
  const inputs = [a, b];
  if (bias) inputs.push(bias);
  if (batchBias) inputs.push(batchBias);
  if (residual) inputs.push(residual);
  if (g.K === 0 && v.dtypeC === 'f32') {
    // An empty sum: act(0 + bias) + residual, as PyTorch gives; no GEMM to run. (An f16 result
    // comes from the kernel itself, whose loads are all out of range: the epilogue sees 0.)
    const y = rt.zeros(outShape);
    if (!bias && !residual) return [y]; // every activation maps 0 to 0
    const yb = bias ? binary(y, bias.reshape(v.bias === 'm' ? [g.M, 1, 1] : [g.N]), 'add') : y;
    const ya = v.act !== 'none' ? unary(yb, v.act) : yb;
    const yr = residual ? binary(ya, residual, 'add') : ya;
    for (const t of new Set([y, yb, ya])) if (t !== yr) t.dispose();
    return [yr];
  }
  const flops = 2 * g.M * g.N * g.K * g.batch;
  // The subgroup-matrix and workgroup-memory kernels' variant (tile and operand loads); the lane
  // kernel needs none of it.
  const simtVariant = (): GemmVariant => {
    const tile = chooseTile(rt, g.M, g.N, g.batch);
    // With an empty inner dimension (an f16 result runs the kernel) the operands are empty
    // buffers: scalar bindings take them, vec4 ones need 16 bytes.
    const noVec = rt.flags.gemmScalar || g.K === 0;
    // vec4 loads need 16-byte aligned rows and batch strides.
    const vecA = !noVec && v.dtypeA === 'f32' && g.K % 4 === 0 && g.batchA % 4 === 0 && (tile.BK / 4) <= 256;
    const vecB = !noVec && v.dtypeB === 'f32' && v.bLayout !== 'im2col' && (v.bLayout === 'nk' ? g.K % 4 === 0 : g.N % 4 === 0 && tile.BN / 4 <= 256) && g.batchB % 4 === 0;
    const threads = (tile.BM / tile.TM) * (tile.BN / tile.TN);
    const fits = (extent: number) => (extent * tile.BK) % (threads * 4) === 0;
    return { ...v, tile, vecA: vecA && fits(tile.BM), vecB: vecB && fits(tile.BN) };
  };
  if (sub) {
    const { tile: st, sm, name } = sub;
    const geo = subgroupGeometry(st, sm, v.bLayout === 'nk');
    const key = `sgemm:${name}:${sm.M}x${sm.N}x${sm.K}:${sm.syntax}:${sm.subgroupSize}:${v.dtypeA}:${v.dtypeB}:${operandsKey(v)}`;
    return rt.run(
      rt.kernel(key, () => ({ code: subgroupGemmCode(simtVariant(), st, sm), inputs: inputs.length, outputs: split, uniforms: true })),
      { params, inputs, outputs: outShapes.map((shape) => ({ shape, dtype: v.dtypeC })), workgroups: [ceilDiv(g.N, geo.BN), ceilDiv(g.M, geo.BM), g.batch], flops },
    );
  }
  // A weight shared by the batch (batchA 0) is read once for all its elements' columns.
  const fold = g.batchA === 0 && g.batch > 1;
  const lanes = chooseLaneTile(rt, g.M, g.N, g.batch, fold);
  if (lanes) {
    const { name, tile: lt, S } = lanes;
    return rt.run(
      rt.kernel(`lgemm:${name}:${S}${fold ? ':fold' : ''}:${v.dtypeA}:${v.dtypeB}:${operandsKey(v)}`, () => ({ code: laneGemmCode(v, lt, S, fold), inputs: inputs.length, outputs: split, uniforms: true })),
      { params, inputs, outputs: outShapes.map((shape) => ({ shape, dtype: v.dtypeC })), workgroups: laneWorkgroups(lt, S, g.M, g.N, g.batch, fold), flops },
    );
  }
  const variant = simtVariant();
  return rt.run(
    rt.kernel(variantKey(variant), () => ({ code: gemmCode(variant), inputs: inputs.length, outputs: split, uniforms: true })),
    { params, inputs, outputs: outShapes.map((shape) => ({ shape, dtype: v.dtypeC })), workgroups: [ceilDiv(g.N, variant.tile.BN), ceilDiv(g.M, variant.tile.BM), g.batch], flops },
  );
}

/** The dtype of an optional residual (f32 or f16, read like an operand); f32 when absent. */
function residualDtype(residual: Tensor | undefined, what: string): ActivationDType {
  if (!residual) return 'f32';
  assertFloat(residual, what, true);
  return residual.dtype as ActivationDType;
}

/** Biases (per column or per output channel, and the per-batch time embedding) are read as f32. */
function assertBias(bias: Tensor | undefined, what: string): void {
  if (bias) assertFloat(bias, what);
}

export interface LinearOptions {
  bias?: Tensor | undefined;
  act?: Activation;
  /** Added after the activation: y = act(x·Wᵀ + b) + residual. */
  residual?: Tensor | undefined;
}

/** y[..., N] = act(x[..., K] · Wᵀ + bias) + residual, W in PyTorch's (N, K) layout, f32 or f16;
 *  y has x's dtype (f32 or f16). */
export function linear(x: Tensor, weight: Tensor, o: LinearOptions = {}): Tensor {
  const dtype = activationDtype(x, 'linear input');
  assertFloat(weight, 'linear weight', true);
  assertBias(o.bias, 'linear bias');
  const dtypeRes = residualDtype(o.residual, 'linear residual');
  if (weight.rank !== 2) throw new ShapeError(`linear: weight must be (out, in), got ${shapeStr(weight.shape)}`);
  const [n, k] = weight.shape as [number, number];
  if (x.rank < 1 || x.shape[x.rank - 1] !== k) throw new ShapeError(`linear: input ${shapeStr(x.shape)} does not end in ${k} (weight ${shapeStr(weight.shape)})`);
  if (o.bias && o.bias.numel !== n) throw new ShapeError(`linear: bias has ${o.bias.numel} elements, expected ${n}`);
  const outShape = [...x.shape.slice(0, -1), n];
  if (o.residual && shapeStr(o.residual.shape) !== shapeStr(outShape)) throw new ShapeError(`linear: residual ${shapeStr(o.residual.shape)} is not ${shapeStr(outShape)}`);
  const rt = runtimeOf(x, weight);
  const m = numelOf(outShape) / Math.max(n, 1);
  return gemm(
    rt,
    { dtypeA: dtype, dtypeB: weight.dtype, dtypeC: dtype, dtypeRes, weightOperand: 'B', bLayout: 'nk', bias: o.bias ? 'n' : 'none', act: o.act ?? 'none', residual: !!o.residual },
    { M: m, N: n, K: k, batch: 1, batchA: 0, batchB: 0 },
    x,
    weight,
    o.bias,
    o.residual,
    outShape,
  );
}

/** Several projections of the same input in one GEMM: `weight` stacks `parts` PyTorch weights
 *  [n, K] into [parts·n, K] (and `bias` their biases), and output i is x·W_iᵀ + b_i [..., n]:
 *  the same values the separate linears give (each column's sum runs over K in the same order),
 *  all of x's dtype. */
export function linearSplit(x: Tensor, weight: Tensor, parts: number, bias?: Tensor): Tensor[] {
  const dtype = activationDtype(x, 'linearSplit input');
  assertFloat(weight, 'linearSplit weight', true);
  assertBias(bias, 'linearSplit bias');
  if (weight.rank !== 2) throw new ShapeError(`linearSplit: weight must be (out, in), got ${shapeStr(weight.shape)}`);
  const [np, k] = weight.shape as [number, number];
  if (!Number.isInteger(parts) || parts < 1 || np % parts !== 0) throw new ShapeError(`linearSplit: ${np} output features do not split into ${parts} parts`);
  if (x.rank < 1 || x.shape[x.rank - 1] !== k) throw new ShapeError(`linearSplit: input ${shapeStr(x.shape)} does not end in ${k} (weight ${shapeStr(weight.shape)})`);
  if (bias && bias.numel !== np) throw new ShapeError(`linearSplit: bias has ${bias.numel} elements, expected ${np}`);
  const rt = runtimeOf(x, weight);
  const n = np / parts;
  const outShape = [...x.shape.slice(0, -1), n];
  const m = x.numel / Math.max(k, 1);
  if (k === 0) {
    // No GEMM to run: each part is its bias (or zeros).
    return Array.from({ length: parts }, (_, i) => linear(x, rt.zeros([n, 0]), { bias: bias ? slice(bias, [i * n], [n]) : undefined }));
  }
  return gemmOutputs(
    rt,
    { dtypeA: dtype, dtypeB: weight.dtype, dtypeC: dtype, dtypeRes: 'f32', weightOperand: 'B', bLayout: 'nk', bias: bias ? 'n' : 'none', act: 'none', residual: false, split: parts },
    { M: m, N: np, K: k, batch: 1, batchA: 0, batchB: 0 },
    x,
    weight,
    bias,
    undefined,
    undefined,
    Array.from({ length: parts }, () => outShape),
  );
}

export interface MatmulOptions {
  /** Treat b as (…, N, K) and use its transpose. */
  transposeB?: boolean;
}

/** Batched matmul a (…, M, K) · b (…, K, N) → (…, M, N) of a's dtype (f32 or f16; b is f32 or
 *  f16 either way). Batch dims must match, or b may have none (broadcast). */
export function matmul(a: Tensor, b: Tensor, o: MatmulOptions = {}): Tensor {
  const dtype = activationDtype(a, 'matmul a');
  assertFloat(b, 'matmul b', true);
  if (a.rank < 2 || b.rank < 2) throw new ShapeError(`matmul: operands need rank ≥ 2, got ${shapeStr(a.shape)} and ${shapeStr(b.shape)}`);
  const [m, k] = a.shape.slice(-2) as [number, number];
  const [b0, b1] = b.shape.slice(-2) as [number, number];
  const kb = o.transposeB ? b1 : b0;
  const n = o.transposeB ? b0 : b1;
  if (kb !== k) throw new ShapeError(`matmul: inner dimensions differ: ${shapeStr(a.shape)} · ${shapeStr(b.shape)}${o.transposeB ? 'ᵀ' : ''}`);
  const batchShape = a.shape.slice(0, -2);
  const batch = batchShape.reduce((s, d) => s * d, 1);
  const bBatch = b.shape.slice(0, -2);
  const bBatchN = bBatch.reduce((s, d) => s * d, 1);
  if (bBatchN !== 1 && shapeStr(bBatch) !== shapeStr(batchShape)) throw new ShapeError(`matmul: batch dimensions ${shapeStr(batchShape)} and ${shapeStr(bBatch)} differ`);
  const rt = runtimeOf(a, b);
  return gemm(
    rt,
    { dtypeA: dtype, dtypeB: b.dtype, dtypeC: dtype, dtypeRes: 'f32', bLayout: o.transposeB ? 'nk' : 'kn', bias: 'none', act: 'none', residual: false },
    { M: m, N: n, K: k, batch, batchA: m * k, batchB: bBatchN === 1 ? 0 : k * n },
    a,
    b,
    undefined,
    undefined,
    [...batchShape, m, n],
  );
}

export interface Conv2dOptions {
  bias?: Tensor | undefined;
  stride?: number;
  /** Symmetric padding, or [top, bottom, left, right] (the VAE downsampler's (0, 1, 0, 1) is [0, 1, 0, 1]). */
  padding?: number | readonly [number, number, number, number];
  /** Added to the output (ResNet shortcut). */
  residual?: Tensor | undefined;
  act?: Activation;
  /** [B, Cout], added after the bias, before the activation: y[b, c] = conv + bias[c] + batchBias[b, c]
   *  (a ResNet block's projected time embedding). */
  batchBias?: Tensor | undefined;
  /** 1×1 convolutions only: write (B, H·W, Cout) token rows instead of NCHW (a residual, if
   *  given, is in that layout too). */
  tokensOut?: boolean;
}

/** 2-D convolution of x [B, Cin, H, W] with weight [Cout, Cin, KH, KW] (f32 or f16) as an implicit
 *  GEMM; the result has x's dtype (f32 or f16). */
export function conv2d(x: Tensor, weight: Tensor, o: Conv2dOptions = {}): Tensor {
  const dtype = activationDtype(x, 'conv2d input');
  assertFloat(weight, 'conv2d weight', true);
  assertBias(o.bias, 'conv2d bias');
  assertBias(o.batchBias, 'conv2d batchBias');
  const dtypeRes = residualDtype(o.residual, 'conv2d residual');
  if (x.rank !== 4) throw new ShapeError(`conv2d: input must be NCHW, got ${shapeStr(x.shape)}`);
  if (weight.rank !== 4) throw new ShapeError(`conv2d: weight must be (Cout, Cin, KH, KW), got ${shapeStr(weight.shape)}`);
  const [b, cin, h, w] = x.shape as [number, number, number, number];
  const [cout, wcin, kh, kw] = weight.shape as [number, number, number, number];
  if (wcin !== cin) throw new ShapeError(`conv2d: input has ${cin} channels, weight ${shapeStr(weight.shape)} expects ${wcin}`);
  const stride = o.stride ?? 1;
  const pad = typeof o.padding === 'number' || o.padding === undefined ? [o.padding ?? 0, o.padding ?? 0, o.padding ?? 0, o.padding ?? 0] : [...o.padding];
  const [pt, pb, pl, pr] = pad as [number, number, number, number];
  if (!Number.isInteger(stride) || stride < 1) throw new ShapeError(`conv2d: stride must be an integer ≥ 1, got ${stride}`);
  if (pad.length !== 4 || pad.some((v) => !Number.isInteger(v) || v < 0)) throw new ShapeError(`conv2d: padding must be non-negative integers, got ${JSON.stringify(o.padding)}`);
  const oh = Math.floor((h + pt + pb - kh) / stride) + 1;
  const ow = Math.floor((w + pl + pr - kw) / stride) + 1;
  if (oh < 1 || ow < 1) throw new ShapeError(`conv2d: kernel ${kh}×${kw} larger than padded input ${h}×${w}`);
  if (o.bias && o.bias.numel !== cout) throw new ShapeError(`conv2d: bias has ${o.bias.numel} elements, expected ${cout}`);
  const outShape = [b, cout, oh, ow];
  const pointwise = kh === 1 && kw === 1 && stride === 1 && pt + pb + pl + pr === 0;
  if (o.tokensOut && !pointwise) throw new ShapeError('conv2d: tokensOut needs a 1×1 convolution without stride or padding');
  if (o.tokensOut) outShape.splice(0, 4, b, oh * ow, cout);
  if (o.residual && shapeStr(o.residual.shape) !== shapeStr(outShape)) throw new ShapeError(`conv2d: residual ${shapeStr(o.residual.shape)} is not ${shapeStr(outShape)}`);
  if (o.batchBias && shapeStr(o.batchBias.shape) !== shapeStr([b, cout])) throw new ShapeError(`conv2d: batchBias ${shapeStr(o.batchBias.shape)} is not ${shapeStr([b, cout])}`);
  const rt = runtimeOf(x, weight);
  return gemmOutputs(
    rt,
    {
      dtypeA: weight.dtype,
      dtypeB: dtype,
      dtypeC: dtype,
      dtypeRes,
      weightOperand: 'A',
      bLayout: pointwise ? 'kn' : 'im2col',
      bias: o.bias ? 'm' : 'none',
      act: o.act ?? 'none',
      residual: !!o.residual,
      conv: pointwise ? undefined : { kh, kw, stride },
      batchBias: !!o.batchBias,
      storeT: !!o.tokensOut,
    },
    {
      M: cout,
      N: oh * ow,
      K: cin * kh * kw,
      batch: b,
      batchA: 0,
      batchB: cin * h * w,
      conv: { ow, ih: h, iw: w, padTop: pt, padLeft: pl },
    },
    weight,
    x,
    o.bias,
    o.batchBias,
    o.residual,
    [outShape],
  )[0]!;
}

/** A 1×1 convolution read from token rows: tokens (B, H·W, Cin) as the NCHW image [B, Cin, H, W]
 *  they transpose to, weight [Cout, Cin, 1, 1] → [B, Cout, H, W] (+ bias, + residual NCHW), without
 *  the layout copy (Transformer2DModel's proj_out); the result has the tokens' dtype (f32 or f16). */
export function conv1x1FromTokens(tokens: Tensor, weight: Tensor, h: number, w: number, o: { bias?: Tensor | undefined; residual?: Tensor | undefined } = {}): Tensor {
  const dtype = activationDtype(tokens, 'conv1x1FromTokens input');
  assertFloat(weight, 'conv1x1FromTokens weight', true);
  assertBias(o.bias, 'conv1x1FromTokens bias');
  const dtypeRes = residualDtype(o.residual, 'conv1x1FromTokens residual');
  if (tokens.rank !== 3 || tokens.shape[1] !== h * w) throw new ShapeError(`conv1x1FromTokens: tokens ${shapeStr(tokens.shape)} are not (B, ${h}·${w}, C)`);
  const [b, , cin] = tokens.shape as [number, number, number];
  if (weight.rank !== 4 || weight.shape[1] !== cin || weight.shape[2] !== 1 || weight.shape[3] !== 1) throw new ShapeError(`conv1x1FromTokens: weight ${shapeStr(weight.shape)} is not (Cout, ${cin}, 1, 1)`);
  const cout = weight.shape[0]!;
  if (o.bias && o.bias.numel !== cout) throw new ShapeError(`conv1x1FromTokens: bias has ${o.bias.numel} elements, expected ${cout}`);
  const outShape = [b, cout, h, w];
  if (o.residual && shapeStr(o.residual.shape) !== shapeStr(outShape)) throw new ShapeError(`conv1x1FromTokens: residual ${shapeStr(o.residual.shape)} is not ${shapeStr(outShape)}`);
  const rt = runtimeOf(tokens, weight);
  // C[m = cout][n = pixel] = Σ_k W[m][k] · tokens[n][k]: B in the (N, K) layout, per batch element.
  return gemm(
    rt,
    { dtypeA: weight.dtype, dtypeB: dtype, dtypeC: dtype, dtypeRes, weightOperand: 'A', bLayout: 'nk', bias: o.bias ? 'm' : 'none', act: 'none', residual: !!o.residual },
    { M: cout, N: h * w, K: cin, batch: b, batchA: 0, batchB: h * w * cin },
    weight,
    tokens,
    o.bias,
    o.residual,
    outShape,
  );
}
