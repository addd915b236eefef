// The GEMM for CPU adapters (lavapipe, SwiftShader): C[b] = A[b] · B[b] with the epilogue of
// gemm-code.ts, without workgroup memory or barriers.
//
// A CPU driver runs a subgroup as the SIMD lanes of one core: arithmetic is vectorised, but every
// load from a storage buffer or workgroup memory is issued lane by lane, and a barrier switches
// between coroutines. So this kernel counts loads, not FLOPs. Each lane owns TL outputs along one
// axis of C (`axis`: n, the columns, or m, the rows) and shares S·RS outputs along the other axis
// with its subgroup (S = the subgroup size): for each k, lane i of the subgroup loads the shared
// operand's element for index i (RS of them), and subgroupBroadcast hands every lane all S·RS
// values, register to register. Per k a lane issues TL + RS loads for TL·S·RS multiply-adds; the
// workgroup-memory kernel issues about one load per two.
//
// A convolution's im2col operand is read from the image directly: one loop iteration per input
// channel and kernel row, its kw taps unrolled (no division by kh·kw per k).

import type { GemmVariant } from './gemm-code.js';
import { GEMM_PARAMS, gemmEpilogue, load } from './gemm-code.js';
import { WGSL_ACTIVATIONS, enableF16, storageType } from './common.js';

export interface LaneTile {
  /** The axis of C the lanes spread along. */
  axis: 'm' | 'n';
  /** Invocations per workgroup (a multiple of the subgroup size). */
  WG: number;
  /** Outputs per lane along the lane axis (strided by WG, so neighbouring lanes read neighbouring addresses). */
  TL: number;
  /** Shared-operand loads per lane per k: the subgroup shares S·RS outputs along the other axis. */
  RS: number;
}

/** Named lane tiles (the `gemmTile` flag forces one): l, the lane axis, outputs per lane, r and
 *  the shared loads per lane. n-tiles suit wide C (convolutions over many pixels, linears with many
 *  output features), m-tiles tall C (the U-Net's deepest convolutions, 1–16 pixels). */
export const LANE_TILES = {
  ln2r4: { axis: 'n', WG: 64, TL: 2, RS: 4 },
  ln2r2: { axis: 'n', WG: 64, TL: 2, RS: 2 },
  ln2r1: { axis: 'n', WG: 64, TL: 2, RS: 1 },
  lm2r2: { axis: 'm', WG: 64, TL: 2, RS: 2 },
  lm2r1: { axis: 'm', WG: 64, TL: 2, RS: 1 },
} as const satisfies Record<string, LaneTile>;

export type LaneVariant = Omit<GemmVariant, 'tile' | 'vecA' | 'vecB'>;

const range = (n: number) => Array.from({ length: n }, (_, i) => i);

/** WGSL of the lane GEMM for subgroups of exactly `S` invocations. With `fold` (A shared by the
 *  batch: a convolution's or linear's weight) the batch elements' columns form one axis of
 *  batch·N columns, so a weight row is loaded once for all of them: the U-Net's deepest
 *  convolutions have 1 or 4 pixels per image, fewer than a subgroup. */
export function laneGemmCode(v: LaneVariant, t: LaneTile, S: number, fold: boolean): string {
  const { axis, WG, TL, RS } = t;
  if (WG % S !== 0) throw new Error(`lane gemm: workgroup ${WG} is not a multiple of the subgroup size ${S}`);
  const TS = S * RS; // outputs along the shared axis
  const aType = storageType(v.dtypeA);
  const bType = storageType(v.dtypeB);
  const setup: string[] = [];
  // Lane-axis indices: l = 0..TL-1, one per output the lane owns; shared-axis indices: r = 0..RS-1,
  // the ones this lane loads for its subgroup. Loads are clamped in range; stores are guarded.
  const laneIdx = (l: number) => `wid.${axis === 'n' ? 'x' : 'y'} * ${WG * TL}u + ${l * WG}u + lid`;
  const sharedIdx = (r: number) => `wid.${axis === 'n' ? 'y' : 'x'} * ${TS}u + ${r * S}u + sl`;
  // Row bases of A (row-major M×K) for the rows this lane reads.
  const aRows = axis === 'n' ? range(RS).map((r) => ({ name: `ra${r}`, idx: sharedIdx(r) })) : range(TL).map((l) => ({ name: `ra${l}`, idx: laneIdx(l) }));
  const bCols = axis === 'n' ? range(TL).map((l) => ({ name: `cb${l}`, idx: laneIdx(l) })) : range(RS).map((r) => ({ name: `cb${r}`, idx: sharedIdx(r) }));
  for (const a of aRows) setup.push(`let ${a.name} = a_base + min(${a.idx}, p.M - 1u) * p.K;`);
  // Per column: its index within its batch element and that element's offset into B.
  for (const b of bCols) {
    if (fold) setup.push(`let ${b.name}f = min(${b.idx}, p.N * p.batch - 1u); let ${b.name} = ${b.name}f % p.N; let ${b.name}b = (${b.name}f / p.N) * p.batch_b;`);
    else setup.push(`let ${b.name} = min(${b.idx}, p.N - 1u); let ${b.name}b = b_base;`);
  }
  if (v.bLayout === 'nk') for (const b of bCols) setup.push(`let ${b.name}k = ${b.name}b + ${b.name} * p.K;`);
  if (v.bLayout === 'im2col') {
    const c = v.conv!;
    for (const b of bCols) setup.push(`let ${b.name}y = i32((${b.name} / p.ow) * ${c.stride}u) - i32(p.pad_top); let ${b.name}x = i32((${b.name} % p.ow) * ${c.stride}u) - i32(p.pad_left);`);
  }
  // The loads of one k step (`k` an expression; `tap` the convolution tap) and the multiply-adds.
  const accName = (l: number, s: number) => `acc_${l}_${s}`;
  const step = (k: string, tap: { kx: number } | null): string => {
    const lines: string[] = [];
    const sfx = tap ? `_${tap.kx}` : '';
    for (const a of aRows) lines.push(`let ${a.name}v${sfx} = ${load('A', v.dtypeA, `${a.name} + ${k}`)};`);
    for (const b of bCols) {
      const n = b.name;
      if (v.bLayout === 'nk') lines.push(`let ${n}v${sfx} = ${load('B', v.dtypeB, `${n}k + ${k}`)};`);
      else if (v.bLayout === 'kn') lines.push(`let ${n}v${sfx} = ${load('B', v.dtypeB, `${n}b + (${k}) * p.N + ${n}`)};`);
      else {
        const { kx } = tap!;
        lines.push(`let ${n}y${sfx} = ${n}y + ky; let ${n}x${sfx} = ${n}x + ${kx};
      let ${n}ok${sfx} = ${n}y${sfx} >= 0 && ${n}x${sfx} >= 0 && u32(${n}y${sfx}) < p.ih && u32(${n}x${sfx}) < p.iw;
      let ${n}v${sfx} = select(0.0, ${load('B', v.dtypeB, `select(0u, ${n}b + plane + u32(${n}y${sfx}) * p.iw + u32(${n}x${sfx}), ${n}ok${sfx})`)}, ${n}ok${sfx});`);
      }
    }
    // The shared operand's values, broadcast from the lane that loaded them.
    const shared = axis === 'n' ? aRows : bCols;
    const own = axis === 'n' ? bCols : aRows;
    for (let r = 0; r < RS; r++) {
      for (let i = 0; i < S; i++) {
        const s = r * S + i;
        lines.push(`{ let sv = subgroupBroadcast(${shared[r]!.name}v${sfx}, ${i}u);`);
        for (let l = 0; l < TL; l++) lines.push(`  ${accName(l, s)} = fma(sv, ${own[l]!.name}v${sfx}, ${accName(l, s)});`);
        lines.push('}');
      }
    }
    return lines.join('\n      ');
  };
  let body: string;
  if (v.bLayout === 'im2col') {
    const c = v.conv!;
    // One iteration per (input channel, kernel row), the row's kw taps unrolled: k = (ci·kh + ky)·kw + kx.
    const taps = range(c.kw).map((kx) => `{\n      ${step(`k + ${kx}u`, { kx })}\n      }`);
    body = `let rows = (p.K / ${c.kh * c.kw}u) * ${c.kh}u;
    for (var cr = 0u; cr < rows; cr++) {
      let plane = (cr / ${c.kh}u) * p.ih * p.iw;
      let ky = i32(cr % ${c.kh}u);
      let k = cr * ${c.kw}u;
      ${taps.join('\n      ')}
    }`;
  } else {
    body = `for (var k = 0u; k < p.K; k++) {
      ${step('k', null)}
    }`;
  }
  // The epilogue runs once per output in a loop (not unrolled: bias, activation and residual code
  // TL·TS times over would multiply the compile time), reading the sums from an array.
  const { bindings, store } = gemmEpilogue(v, aType, bType, 'value');
  const sAxis = `wid.${axis === 'n' ? 'y' : 'x'} * ${TS}u + s`;
  const lAxis = `wid.${axis === 'n' ? 'x' : 'y'} * ${WG * TL}u + l * ${WG}u + lid`;
  const [gmExpr, gnExpr] = axis === 'n' ? [sAxis, lAxis] : [lAxis, sAxis];
  const epilogue = `var sums: array<f32, ${TL * TS}>;
  ${range(TL).flatMap((l) => range(TS).map((s) => `sums[${l * TS + s}] = ${accName(l, s)};`)).join(' ')}
  // A trip count the compiler cannot know (it is TL·TS whenever there is output) keeps the loop rolled.
  let outputs = select(${TL * TS}u, 0u, p.M == 0u);
  for (var i = 0u; i < outputs; i++) {
    let l = i / ${TS}u;
    let s = i % ${TS}u;
    let gm = ${gmExpr};
    let value = sums[i];
    ${fold ? `let col = ${gnExpr};
    let bz = col / p.N;
    let gn = col - bz * p.N;
    if (gm < p.M && bz < p.batch) {` : `let bz = wid.z;
    let gn = ${gnExpr};
    if (gm < p.M && gn < p.N) {`}
      let c_base = bz * p.batch_c;
      ${store}
    }
  }`;
  return /* wgsl */ `${enableF16(v.dtypeC)}
enable subgroups;
${GEMM_PARAMS}
${bindings}
${v.act === 'none' ? 'fn act_none(x: f32) -> f32 { return x; }' : WGSL_ACTIVATIONS}

@compute @workgroup_size(${WG})
fn main(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>, @builtin(subgroup_invocation_id) sl: u32) {
  let a_base = wid.z * p.batch_a;
  let b_base = wid.z * p.batch_b;
  ${setup.join('\n  ')}
  ${range(TL).flatMap((l) => range(TS).map((s) => `var ${accName(l, s)} = 0.0;`)).join(' ')}
  ${body}
  ${epilogue}
}`;
}

/** The lane tile of least estimated cost for an M×N GEMM (batch of them): per lane and k, one unit
 *  per load and 1/8 per multiply-add (a SIMD lane's share of an 8-wide FMA), over all the lanes
 *  launched, padding included. */
export function cheapestLaneTile(S: number, M: number, N: number, batch: number, fold: boolean): keyof typeof LANE_TILES {
  let best: keyof typeof LANE_TILES = 'ln2r4';
  let bestCost = Infinity;
  for (const [name, t] of Object.entries(LANE_TILES) as [keyof typeof LANE_TILES, LaneTile][]) {
    const [x, y, z] = laneWorkgroups(t, S, M, N, batch, fold);
    const cost = x * y * z * t.WG * (t.TL + t.RS + (t.TL * S * t.RS) / 8);
    if (cost < bestCost) [best, bestCost] = [name, cost];
  }
  return best;
}

/** Workgroups of a lane GEMM: [columns, rows, batch] (the batch in the columns with `fold`). */
export function laneWorkgroups(t: LaneTile, S: number, M: number, N: number, batch: number, fold: boolean): [number, number, number] {
  const cdiv = (a: number, b: number) => Math.ceil(a / b);
  const cols = fold ? N * batch : N;
  const z = fold ? 1 : batch;
  return t.axis === 'n' ? [cdiv(cols, t.WG * t.TL), cdiv(M, S * t.RS), z] : [cdiv(cols, S * t.RS), cdiv(M, t.WG * t.TL), z];
}
