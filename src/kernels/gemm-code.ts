// What the GEMM kernels share, the SIMT one (matmul.ts) and the subgroup-matrix one
// (matmul-subgroup.ts): the variant description, operand reads, the uniform block and the epilogue.

import type { DType } from '../gpu/runtime.js';
import { outputType, storageType, storeValue, type Activation, type ActivationDType } from './common.js';

export interface TileConfig {
  BM: number;
  BN: number;
  BK: number;
  TM: number;
  TN: number;
}

export type BLayout = 'nk' | 'kn' | 'im2col';
export type BiasKind = 'none' | 'n' | 'm';

/** Compile-time facts of a convolution (divisions by constants compile to multiplies). */
export interface ConvSpec {
  kh: number;
  kw: number;
  stride: number;
}

export interface GemmVariant {
  tile: TileConfig;
  dtypeA: DType;
  dtypeB: DType;
  /** The result's dtype: that of the activation operand (A = x for linear and matmul, B = the
   *  image or tokens for convolutions), f16 written element by element (see outputType). */
  dtypeC: ActivationDType;
  /** The residual's dtype, read like the operands (f32 or f16 packed pairs). */
  dtypeRes: ActivationDType;
  /** Which operand is a layer's weight (A for convolutions, B for linear layers; none for a
   *  matmul of two activations): tensor-core mode `auto` goes by its dtype. */
  weightOperand?: 'A' | 'B' | undefined;
  bLayout: BLayout;
  bias: BiasKind;
  act: Activation;
  residual: boolean;
  /** A is read as vec4 along K (needs K % 4 == 0 and f32). */
  vecA: boolean;
  /** B is read as vec4 along its contiguous axis (K for nk, N for kn; f32 only). */
  vecB: boolean;
  conv?: ConvSpec | undefined;
  /** A second bias per (batch, m), added after the first: conv1 + time embedding in a ResNet. */
  batchBias?: boolean;
  /** C is stored transposed, C[b][n][m]: a 1×1 conv writing tokens (B, H·W, Cout) directly. */
  storeT?: boolean;
  /** Columns split into this many outputs of N/split columns each (fused q/k/v projections). */
  split?: number;
}

export function load(name: string, dtype: DType, index: string): string {
  return dtype === 'f16' ? `unpack2x16float(${name}[(${index}) >> 1u])[(${index}) & 1u]` : `${name}[${index}]`;
}

/** The uniform block every GEMM variant reads (see gemmOutputs for the values). */
export const GEMM_PARAMS = /* wgsl */ `struct P {
  M: u32, N: u32, K: u32, batch_a: u32,
  batch_b: u32, batch_c: u32, ow: u32, ih: u32,
  iw: u32, pad_top: u32, pad_left: u32, split_n: u32,
  batch: u32, pad0: u32, pad1: u32, pad2: u32,
}
@group(0) @binding(0) var<uniform> p: P;`;

/** The bindings of a variant and the statement that finishes one output element: `value` is the
 *  accumulated sum for row `gm`, column `gn` of batch element `bz` (with `c_base = bz * p.batch_c`
 *  in scope); bias, time-embedding bias, activation and residual are applied, in the order of the
 *  unfused ops, and the result goes to its output (one of `split` for fused q/k/v). An f16 result
 *  needs `enable f16;` at the top of the module (enableF16(v.dtypeC)). */
export function gemmEpilogue(v: Omit<GemmVariant, 'tile' | 'vecA' | 'vecB'>, aType: string, bType: string, value: string): { bindings: string; store: string } {
  const bindings: string[] = [
    `@group(0) @binding(1) var<storage, read> A: array<${aType}>;`,
    `@group(0) @binding(2) var<storage, read> B: array<${bType}>;`,
  ];
  let next = 3;
  if (v.bias !== 'none') bindings.push(`@group(0) @binding(${next++}) var<storage, read> bias: array<f32>;`);
  if (v.batchBias) bindings.push(`@group(0) @binding(${next++}) var<storage, read> bb: array<f32>;`);
  if (v.residual) bindings.push(`@group(0) @binding(${next++}) var<storage, read> res: array<${storageType(v.dtypeRes)}>;`);
  const split = v.split ?? 1;
  for (let o = 0; o < split; o++) bindings.push(`@group(0) @binding(${next++}) var<storage, read_write> C${split > 1 ? o : ''}: array<${outputType(v.dtypeC)}>;`);
  // (acc + bias) + bb, in the order of the unfused conv-then-add.
  const biasExpr = (v.bias === 'n' ? ' + bias[gn]' : v.bias === 'm' ? ' + bias[gm]' : '') + (v.batchBias ? ' + bb[bz * p.M + gm]' : '');
  const resExpr = v.residual ? ` + ${load('res', v.dtypeRes, 'ci')}` : '';
  // The sum stays f32 up to the store, which rounds it once to the output's dtype.
  const out = storeValue(v.dtypeC, `act_${v.act}(${value}${biasExpr})${resExpr}`);
  let store: string;
  if (split > 1) {
    // Column gn goes to output gn / split_n, column gn % split_n there; rows of split_n columns.
    const writes = Array.from({ length: split }, (_, o) => `${o ? ' else ' : ''}${o < split - 1 ? `if (part == ${o}u) ` : ''}{ C${o}[ci] = val; }`).join('');
    store = `let part = gn / p.split_n;
      let ci = bz * p.M * p.split_n + gm * p.split_n + (gn - part * p.split_n);
      let val = ${out};
      ${writes}`;
  } else {
    store = `let ci = c_base + ${v.storeT ? 'gn * p.M + gm' : 'gm * p.N + gn'};
      C[ci] = ${out};`;
  }
  return { bindings: bindings.join('\n'), store };
}
