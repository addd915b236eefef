// Tiled GEMM: C[b] = A[b] (M×K) · B[b] (K×N) with fused epilogue (bias, activation, residual).
// One WGSL template serves three operand layouts:
//   linear  A = x (M×K, row-major), B read from a PyTorch weight W (N×K): B[k][n] = W[n][k]
//   matmul  A (M×K) and B (K×N) row-major, optionally batched with broadcasting
//   conv2d  A = weight (Cout × Cin·KH·KW), B = the implicit im2col of the input image (no buffer)
// Each workgroup computes a BM×BN tile; each invocation a TM×TN block of it, accumulating in f32
// over K in steps of BK staged through workgroup memory (A transposed so reads are vec4).

import { ShapeError, type DType, type Runtime, type Tensor } from '../gpu/runtime.js';
import { Params, WGSL_ACTIVATIONS, assertFloat, ceilDiv, runtimeOf, shapeStr, storageType, type Activation } from './common.js';

export interface TileConfig {
  BM: number;
  BN: number;
  BK: number;
  TM: number;
  TN: number;
}

export const TILES = {
  large: { BM: 128, BN: 128, BK: 16, TM: 8, TN: 8 },
  medium: { BM: 64, BN: 64, BK: 16, TM: 4, TN: 4 },
  small: { BM: 32, BN: 32, BK: 16, TM: 2, TN: 2 },
  tall: { BM: 64, BN: 32, BK: 16, TM: 4, TN: 2 },
} as const satisfies Record<string, TileConfig>;

type BLayout = 'nk' | 'kn' | 'im2col';
type BiasKind = 'none' | 'n' | 'm';

interface GemmVariant {
  tile: TileConfig;
  dtypeA: DType;
  dtypeB: DType;
  bLayout: BLayout;
  bias: BiasKind;
  act: Activation;
  residual: boolean;
}

function variantKey(v: GemmVariant): string {
  const t = v.tile;
  return `gemm:${t.BM}x${t.BN}x${t.BK}:${t.TM}x${t.TN}:${v.dtypeA}:${v.dtypeB}:${v.bLayout}:${v.bias}:${v.act}:${v.residual ? 'res' : ''}`;
}

function load(name: string, dtype: DType, index: string): string {
  return dtype === 'f16' ? `unpack2x16float(${name}[(${index}) >> 1u])[(${index}) & 1u]` : `${name}[${index}]`;
}

function gemmCode(v: GemmVariant): string {
  const { BM, BN, BK, TM, TN } = v.tile;
  const threadsM = BM / TM;
  const threadsN = BN / TN;
  const threads = threadsM * threadsN;
  const aLoads = (BM * BK) / threads;
  const bLoads = (BN * BK) / threads;
  if (!Number.isInteger(aLoads) || !Number.isInteger(bLoads) || TM % 4 !== 0 && TM !== 2 || TN % 2 !== 0) {
    throw new Error(`gemm: unsupported tile ${JSON.stringify(v.tile)}`);
  }
  // Vector width for the register blocks (TM, TN are multiples of 2 or 4).
  const VM = TM % 4 === 0 ? 4 : 2;
  const VN = TN % 4 === 0 ? 4 : 2;
  const vecM = `vec${VM}<f32>`;
  const vecN = `vec${VN}<f32>`;

  let bIndex: string;
  let bDecomp: string;
  switch (v.bLayout) {
    case 'nk': // consecutive invocations walk k (contiguous in W[n][k])
      bDecomp = 'let kk = e % BK; let nn = e / BK;';
      bIndex = `
      if (gn < p.N && gk < p.K) { val = ${load('B', v.dtypeB, 'b_base + gn * p.K + gk')}; }`;
      break;
    case 'kn':
      bDecomp = 'let nn = e % BN; let kk = e / BN;';
      bIndex = `
      if (gn < p.N && gk < p.K) { val = ${load('B', v.dtypeB, 'b_base + gk * p.N + gn')}; }`;
      break;
    case 'im2col':
      bDecomp = 'let nn = e % BN; let kk = e / BN;';
      bIndex = `
      if (gn < p.N && gk < p.K) {
        let ci = gk / p.khw;
        let r = gk % p.khw;
        let ky = r / p.kw;
        let kx = r % p.kw;
        let oy = gn / p.ow;
        let ox = gn % p.ow;
        let iy = i32(oy * p.stride + ky) - i32(p.pad_top);
        let ix = i32(ox * p.stride + kx) - i32(p.pad_left);
        if (iy >= 0 && ix >= 0 && u32(iy) < p.ih && u32(ix) < p.iw) {
          val = ${load('B', v.dtypeB, 'b_base + (ci * p.ih + u32(iy)) * p.iw + u32(ix)')};
        }
      }`;
      break;
  }

  const bindings: string[] = [
    `@group(0) @binding(1) var<storage, read> A: array<${storageType(v.dtypeA)}>;`,
    `@group(0) @binding(2) var<storage, read> B: array<${storageType(v.dtypeB)}>;`,
  ];
  let next = 3;
  if (v.bias !== 'none') bindings.push(`@group(0) @binding(${next++}) var<storage, read> bias: array<f32>;`);
  if (v.residual) bindings.push(`@group(0) @binding(${next++}) var<storage, read> res: array<f32>;`);
  bindings.push(`@group(0) @binding(${next++}) var<storage, read_write> C: array<f32>;`);

  const biasExpr = v.bias === 'n' ? 'bias[gn]' : v.bias === 'm' ? 'bias[gm]' : '0.0';
  const resExpr = v.residual ? ' + res[ci]' : '';

  return /* wgsl */ `
struct P {
  M: u32, N: u32, K: u32, batch_a: u32,
  batch_b: u32, batch_c: u32, ow: u32, stride: u32,
  ih: u32, iw: u32, kw: u32, khw: u32,
  pad_top: u32, pad_left: u32, _a: u32, _b: u32,
}
@group(0) @binding(0) var<uniform> p: P;
${bindings.join('\n')}
${v.act === 'none' ? '' : WGSL_ACTIVATIONS}
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
  var acc: array<${vecN}, ${(TM * TN) / VN}>;
  for (var k0 = 0u; k0 < p.K; k0 += BK) {
    for (var l = 0u; l < ${aLoads}u; l++) {
      let e = tid + l * ${threads}u;
      let kk = e % BK;
      let mm = e / BK;
      let gm = m0 + mm;
      let gk = k0 + kk;
      var val = 0.0;
      if (gm < p.M && gk < p.K) { val = ${load('A', v.dtypeA, 'a_base + gm * p.K + gk')}; }
      As[(kk * BM + mm) / ${VM}u][mm % ${VM}u] = val;
    }
    for (var l = 0u; l < ${bLoads}u; l++) {
      let e = tid + l * ${threads}u;
      ${bDecomp}
      let gn = n0 + nn;
      let gk = k0 + kk;
      var val = 0.0;${bIndex}
      Bs[(kk * BN + nn) / ${VN}u][nn % ${VN}u] = val;
    }
    workgroupBarrier();
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
    workgroupBarrier();
  }
  let c_base = bz * p.batch_c;
  for (var i = 0u; i < TM; i++) {
    let gm = m0 + tm * TM + i;
    if (gm >= p.M) { continue; }
    for (var j = 0u; j < TN; j++) {
      let gn = n0 + tn * TN + j;
      if (gn >= p.N) { continue; }
      let ci = c_base + gm * p.N + gn;
      let v = act_${v.act}(acc[i * ${TN / VN}u + j / ${VN}u][j % ${VN}u] + ${biasExpr})${resExpr};
      C[ci] = v;
    }
  }
}
${v.act === 'none' ? 'fn act_none(x: f32) -> f32 { return x; }' : ''}`;
}

interface GemmLaunch {
  M: number;
  N: number;
  K: number;
  batch: number;
  batchA: number;
  batchB: number;
  conv?: { ow: number; stride: number; ih: number; iw: number; kh: number; kw: number; padTop: number; padLeft: number };
}

/** Picks a tile for the problem: big tiles only when they fill the GPU. Override with
 *  DIFFSIM_GEMM_TILE=large|medium|small|tall (benchmarks). */
export function chooseTile(rt: Runtime, M: number, N: number, batch: number): TileConfig {
  const forced = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env?.DIFFSIM_GEMM_TILE;
  if (forced && forced in TILES) return TILES[forced as keyof typeof TILES];
  const software = rt.adapterInfo.isFallbackAdapter;
  const tiles = (t: TileConfig) => ceilDiv(M, t.BM) * ceilDiv(N, t.BN) * batch;
  if (!software && tiles(TILES.large) >= 96) return TILES.large;
  if (M <= 16 || N <= 16) return TILES.small;
  if (tiles(TILES.medium) >= (software ? 2 : 64)) return TILES.medium;
  return TILES.small;
}

async function gemm(rt: Runtime, v: Omit<GemmVariant, 'tile'>, g: GemmLaunch, a: Tensor, b: Tensor, bias: Tensor | undefined, residual: Tensor | undefined, out: Tensor): Promise<void> {
  const tile = chooseTile(rt, g.M, g.N, g.batch);
  const variant: GemmVariant = { ...v, tile };
  const c = g.conv;
  const params = new Params()
    .u32(g.M, g.N, g.K, g.batchA)
    .u32(g.batchB, g.M * g.N, c?.ow ?? 1, c?.stride ?? 1)
    .u32(c?.ih ?? 0, c?.iw ?? 0, c?.kw ?? 1, (c?.kh ?? 1) * (c?.kw ?? 1))
    .u32(c?.padTop ?? 0, c?.padLeft ?? 0, 0, 0)
    .build();
  const inputs = [a, b];
  if (bias) inputs.push(bias);
  if (residual) inputs.push(residual);
  await rt.run(
    { key: variantKey(variant), code: gemmCode(variant), inputs: inputs.length, outputs: 1, uniforms: true },
    { params, inputs, outputs: [out], workgroups: [ceilDiv(g.N, tile.BN), ceilDiv(g.M, tile.BM), g.batch] },
  );
}

export interface LinearOptions {
  bias?: Tensor | undefined;
  act?: Activation;
  /** Added after the activation: y = act(x·Wᵀ + b) + residual. */
  residual?: Tensor | undefined;
}

/** y[..., N] = act(x[..., K] · Wᵀ + bias) + residual, W in PyTorch's (N, K) layout, f32 or f16. */
export async function linear(x: Tensor, weight: Tensor, o: LinearOptions = {}): Promise<Tensor> {
  assertFloat(x, 'linear input');
  assertFloat(weight, 'linear weight', true);
  if (weight.rank !== 2) throw new ShapeError(`linear: weight must be (out, in), got ${shapeStr(weight.shape)}`);
  const [n, k] = weight.shape as [number, number];
  if (x.rank < 1 || x.shape[x.rank - 1] !== k) throw new ShapeError(`linear: input ${shapeStr(x.shape)} does not end in ${k} (weight ${shapeStr(weight.shape)})`);
  if (o.bias && o.bias.numel !== n) throw new ShapeError(`linear: bias has ${o.bias.numel} elements, expected ${n}`);
  const outShape = [...x.shape.slice(0, -1), n];
  if (o.residual && shapeStr(o.residual.shape) !== shapeStr(outShape)) throw new ShapeError(`linear: residual ${shapeStr(o.residual.shape)} is not ${shapeStr(outShape)}`);
  const rt = runtimeOf(x, weight);
  const m = x.numel / k;
  const y = rt.empty(outShape);
  await gemm(
    rt,
    { dtypeA: 'f32', dtypeB: weight.dtype, bLayout: 'nk', bias: o.bias ? 'n' : 'none', act: o.act ?? 'none', residual: !!o.residual },
    { M: m, N: n, K: k, batch: 1, batchA: 0, batchB: 0 },
    x,
    weight,
    o.bias,
    o.residual,
    y,
  );
  return y;
}

export interface MatmulOptions {
  /** Treat b as (…, N, K) and use its transpose. */
  transposeB?: boolean;
}

/** Batched matmul a (…, M, K) · b (…, K, N) → (…, M, N). Batch dims must match, or b may have none
 *  (broadcast). */
export async function matmul(a: Tensor, b: Tensor, o: MatmulOptions = {}): Promise<Tensor> {
  assertFloat(a, 'matmul a');
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
  const y = rt.empty([...batchShape, m, n]);
  await gemm(
    rt,
    { dtypeA: 'f32', dtypeB: b.dtype, bLayout: o.transposeB ? 'nk' : 'kn', bias: 'none', act: 'none', residual: false },
    { M: m, N: n, K: k, batch, batchA: m * k, batchB: bBatchN === 1 ? 0 : k * n },
    a,
    b,
    undefined,
    undefined,
    y,
  );
  return y;
}

export interface Conv2dOptions {
  bias?: Tensor | undefined;
  stride?: number;
  /** Symmetric padding, or [top, bottom, left, right] (the VAE downsampler's (0, 1, 0, 1) is [0, 1, 0, 1]). */
  padding?: number | readonly [number, number, number, number];
  /** Added to the output (ResNet shortcut). */
  residual?: Tensor | undefined;
  act?: Activation;
}

/** 2-D convolution of x [B, Cin, H, W] with weight [Cout, Cin, KH, KW] (f32 or f16) as an implicit GEMM. */
export async function conv2d(x: Tensor, weight: Tensor, o: Conv2dOptions = {}): Promise<Tensor> {
  assertFloat(x, 'conv2d input');
  assertFloat(weight, 'conv2d weight', true);
  if (x.rank !== 4) throw new ShapeError(`conv2d: input must be NCHW, got ${shapeStr(x.shape)}`);
  if (weight.rank !== 4) throw new ShapeError(`conv2d: weight must be (Cout, Cin, KH, KW), got ${shapeStr(weight.shape)}`);
  const [b, cin, h, w] = x.shape as [number, number, number, number];
  const [cout, wcin, kh, kw] = weight.shape as [number, number, number, number];
  if (wcin !== cin) throw new ShapeError(`conv2d: input has ${cin} channels, weight ${shapeStr(weight.shape)} expects ${wcin}`);
  const stride = o.stride ?? 1;
  const pad = typeof o.padding === 'number' || o.padding === undefined ? [o.padding ?? 0, o.padding ?? 0, o.padding ?? 0, o.padding ?? 0] : [...o.padding];
  const [pt, pb, pl, pr] = pad as [number, number, number, number];
  if (!(stride >= 1) || pad.some((v) => v < 0 || !Number.isInteger(v))) throw new ShapeError('conv2d: stride must be ≥ 1 and padding non-negative integers');
  const oh = Math.floor((h + pt + pb - kh) / stride) + 1;
  const ow = Math.floor((w + pl + pr - kw) / stride) + 1;
  if (oh < 1 || ow < 1) throw new ShapeError(`conv2d: kernel ${kh}×${kw} larger than padded input ${h}×${w}`);
  if (o.bias && o.bias.numel !== cout) throw new ShapeError(`conv2d: bias has ${o.bias.numel} elements, expected ${cout}`);
  const outShape = [b, cout, oh, ow];
  if (o.residual && shapeStr(o.residual.shape) !== shapeStr(outShape)) throw new ShapeError(`conv2d: residual ${shapeStr(o.residual.shape)} is not ${shapeStr(outShape)}`);
  const rt = runtimeOf(x, weight);
  const y = rt.empty(outShape);
  const pointwise = kh === 1 && kw === 1 && stride === 1 && pt + pb + pl + pr === 0;
  await gemm(
    rt,
    { dtypeA: weight.dtype, dtypeB: 'f32', bLayout: pointwise ? 'kn' : 'im2col', bias: o.bias ? 'm' : 'none', act: o.act ?? 'none', residual: !!o.residual },
    {
      M: cout,
      N: oh * ow,
      K: cin * kh * kw,
      batch: b,
      batchA: 0,
      batchB: cin * h * w,
      conv: { ow, stride, ih: h, iw: w, kh, kw, padTop: pt, padLeft: pl },
    },
    weight,
    x,
    o.bias,
    o.residual,
    y,
  );
  return y;
}
