// Attention on f16 activations: q, k and v stored as f16 (read as packed pairs), the output in q's
// dtype, on the SIMT kernel and on the subgroup-matrix kernel (its builtins emulated in WGSL),
// against the float64 reference on the f16 operands the kernels read.
//
// Tolerances (normalised error, max|a − b| / max(1, max|b|)): each kernel's f32 tolerance plus one
// f16 rounding of the output, at most 2⁻¹¹ relative to |o| ≤ max(1, max|o|):
//   SIMT      1e-5 (f32 accumulation) + 2⁻¹¹ ≈ 5.0e-4
//   subgroup  2e-3 (probabilities rounded to f16, see kernels-subgroup) + 2⁻¹¹ ≈ 2.5e-3
// and, tighter, every f16 output is within one f16 ulp of the same kernel's f32 output on the same
// operands rounded to f16.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Runtime, tidy, type DType, type Tensor } from '../../src/gpu/runtime.js';
import { f16ArrayToF32, f32ArrayToF16 } from '../../src/platform/half.js';
import { attention, attentionOnTensorCores, type AttentionOptions } from '../../src/kernels/attention.js';
import { assertClose, normErr, randn, rejects } from '../support/helpers.js';
import { refAttention, refPermute } from '../support/reference.js';

const HALF_ROUNDING = 2 ** -11;
const SIMT_TOL = 1e-5 + HALF_ROUNDING;
const SUBGROUP_TOL = 2e-3 + HALF_ROUNDING;

const round16 = (x: Float32Array) => f16ArrayToF32(f32ArrayToF16(x));

/** Spacing of f16 values at |x| (subnormals: 2⁻²⁴). */
function ulp16(x: number): number {
  const a = Math.abs(x);
  return a < 2 ** -14 ? 2 ** -24 : 2 ** (Math.floor(Math.log2(a)) - 10);
}

/** Most f16 ulps between an f16 result and the f32 result rounded to f16. */
function maxUlps(y16: Float32Array, y32: Float32Array): number {
  const r = round16(y32);
  let worst = 0;
  for (let i = 0; i < r.length; i++) worst = Math.max(worst, Math.abs(y16[i]! - r[i]!) / ulp16(Math.max(Math.abs(y16[i]!), Math.abs(r[i]!))));
  return worst;
}

/** Runs one attention in a tidy, checks the result's dtype, reads it back and frees it. */
async function run(fn: () => Tensor, dtype: DType, label: string): Promise<Float32Array> {
  const out = tidy(fn);
  try {
    assert.is(out.dtype, dtype, `${label}: result dtype`);
    return (await out.read()) as Float32Array;
  } finally {
    out.dispose();
  }
}

/** Measured normalised errors by label (printed with DIFFSIM_TEST_VERBOSE=1). */
const measured: string[] = [];
function check(actual: Float32Array, expected: ArrayLike<number>, tol: number, label: string): void {
  measured.push(`${label}: ${normErr(actual, expected).toExponential(2)} (tolerance ${tol.toExponential(2)})`);
  assertClose(actual, expected, tol, label);
}

interface Case {
  label: string;
  b: number;
  h: number;
  nq: number;
  nk: number;
  d: number;
  causal?: boolean;
}

/** Split-layout attention with f16 q, k, v on `rt` against the reference and against the same
 *  kernel's f32 result on the rounded operands (which must stay f32). */
async function checkSplit(rt: Runtime, c: Case, seed: number, tol: number, label: string): Promise<void> {
  const { b, h, nq, nk, d } = c;
  const causal = !!c.causal;
  const q = round16(randn(b * h * nq * d, seed));
  const k = round16(randn(b * h * nk * d, seed + 1));
  const v = round16(randn(b * h * nk * d, seed + 2));
  const o: AttentionOptions = { heads: h, layout: 'split', causal };
  const [sq, sk] = [[b, h, nq, d], [b, h, nk, d]];
  const y16 = await run(() => attention(rt.upload(q, sq, 'f16'), rt.upload(k, sk, 'f16'), rt.upload(v, sk, 'f16'), o), 'f16', `${label} ${c.label}`);
  const y32 = await run(() => attention(rt.upload(q, sq), rt.upload(k, sk), rt.upload(v, sk), o), 'f32', `${label} ${c.label} f32`);
  const ref = refAttention(q, k, v, b, h, nq, nk, d, 1 / Math.sqrt(d), causal);
  check(y16, ref, tol, `${label} ${c.label} f16`);
  check(y32, ref, tol - HALF_ROUNDING, `${label} ${c.label} f32 inputs`);
  const ulps = maxUlps(y16, y32);
  assert.ok(ulps <= 1, `${label} ${c.label}: f16 result ${ulps} ulps from the rounded f32 result`);
}

/** (B, H, N, D) host data → (B, N, H·D). */
const merge = (x: Float32Array, b: number, h: number, n: number, d: number) => Float32Array.from(refPermute(x, [b, h, n, d], [0, 2, 1, 3]));

/** Merged-layout f16 attention with batch maps (the AAS's O_AA, O_AB, O_BA, O_BB of a stacked
 *  pair, here with a third k/v batch element) against per-pair references. */
async function checkMaps(rt: Runtime, h: number, n: number, m: number, d: number, qBatch: number[], kvBatch: number[], tol: number, label: string): Promise<void> {
  const bq = Math.max(...qBatch) + 1;
  const bkv = Math.max(...kvBatch) + 1;
  const q = round16(randn(bq * h * n * d, 700));
  const k = round16(randn(bkv * h * m * d, 701));
  const v = round16(randn(bkv * h * m * d, 702));
  const y = await run(
    () => attention(rt.upload(merge(q, bq, h, n, d), [bq, n, h * d], 'f16'), rt.upload(merge(k, bkv, h, m, d), [bkv, m, h * d], 'f16'), rt.upload(merge(v, bkv, h, m, d), [bkv, m, h * d], 'f16'), { heads: h, qBatch, kvBatch }),
    'f16',
    `${label} maps`,
  );
  const per = (x: Float32Array, len: number, i: number) => x.subarray(i * h * len * d, (i + 1) * h * len * d);
  const ref = new Float64Array(qBatch.length * h * n * d);
  qBatch.forEach((qi, i) => ref.set(refAttention(per(q, n, qi), per(k, m, kvBatch[i]!), per(v, m, kvBatch[i]!), 1, h, n, m, d, 1 / Math.sqrt(d), false), i * h * n * d));
  check(y, refPermute(ref, [qBatch.length, h, n, d], [0, 2, 1, 3]), tol, `${label} merged h${h} n${n} m${m} d${d}, qBatch [${qBatch.join(', ')}], kvBatch [${kvBatch.join(', ')}]`);
}

// Odd head dims and head counts put rows on odd element offsets, so that each half of a packed pair
// is read and written; key counts around the tiles (7, 17, 33). The kernel is generated per head
// dim and each takes up to a minute to compile on a CPU adapter: the U-Net's 40, an odd one, and
// 160, whose rows are split (24 and 80 differ from 40 only in their counts of blocks; causal masks
// are f32-tested and no f16 model runs them).
const SIMT_CASES: Case[] = [
  { label: 'cross-attention 7 keys, head dim 5', b: 2, h: 3, nq: 37, nk: 7, d: 5 },
  { label: 'head dim 40', b: 1, h: 2, nq: 45, nk: 33, d: 40 },
  { label: 'head dim 160 (split rows)', b: 1, h: 1, nq: 20, nk: 17, d: 160 },
];

test(`SIMT attention, f16 q/k/v → f16 (tolerance 1e-5 + 2⁻¹¹): ${SIMT_CASES.map((c) => c.label).join('; ')}; batch maps`, async () => {
  const rt = await Runtime.create({ tensorCores: 'off' });
  try {
    let seed = 100;
    for (const c of SIMT_CASES) await checkSplit(rt, c, (seed += 3), SIMT_TOL, 'SIMT');
    await checkMaps(rt, 3, 9, 7, 5, [0, 0, 1, 1, 1], [0, 1, 0, 1, 2], SIMT_TOL, 'SIMT');
  } finally {
    rt.destroy();
  }
});

test('mixed dtypes: the output takes q\'s dtype (f16 q with f32 k/v, f32 q with f16 k/v, f16 q/v with f32 k); other dtypes are refused by name', async () => {
  const rt = await Runtime.create({ tensorCores: 'off' });
  try {
    const [b, h, nq, nk, d] = [1, 3, 21, 13, 7];
    const q = round16(randn(b * h * nq * d, 200));
    const k = round16(randn(b * h * nk * d, 201));
    const v = round16(randn(b * h * nk * d, 202));
    const ref = refAttention(q, k, v, b, h, nq, nk, d, 1 / Math.sqrt(d), false);
    const [sq, sk] = [[b, h, nq, d], [b, h, nk, d]];
    const o: AttentionOptions = { heads: h, layout: 'split' };
    for (const [dq, dk, dv] of [
      ['f16', 'f32', 'f32'],
      ['f32', 'f16', 'f16'],
      ['f16', 'f32', 'f16'],
      ['f32', 'f32', 'f16'],
    ] as const) {
      const y = await run(() => attention(rt.upload(q, sq, dq), rt.upload(k, sk, dk), rt.upload(v, sk, dv), o), dq, `q ${dq}, k ${dk}, v ${dv}`);
      check(y, ref, dq === 'f16' ? SIMT_TOL : SIMT_TOL - HALF_ROUNDING, `SIMT q ${dq}, k ${dk}, v ${dv}`);
    }
    const qt = rt.upload(q, sq, 'f16');
    const ki = rt.upload(new Int32Array(b * h * nk * d), sk, 'i32');
    await rejects(() => attention(qt, ki, ki, o), /attention k: expected an f32 or f16 tensor, got i32/, 'i32 k');
    await rejects(() => attention(ki, qt, qt, o), /attention q: expected an f32 or f16 tensor, got i32/, 'i32 q');
    qt.dispose();
    ki.dispose();
  } finally {
    rt.destroy();
  }
});

// The subgroup-matrix kernel with head dims padded to the matrix size (40 → 48, 24 → 32), key
// counts around its tile, and, in the same mode, the SIMT fallback for key counts under one matrix
// (7 keys).
// (Head dims 40, 80 and 160 differ from this one only in the number of output blocks; each
// emulated kernel takes a minute to compile on a CPU adapter.)
/** The emulated shape these tests expect, whatever the environment says. */
const EMULATED_16 = { tcShape: '16x16x16', tcSubgroup: 32 } as const;

const SUBGROUP_CASES: Case[] = [
  { label: 'head dim 24, 77 keys, 2 batch elements', b: 2, h: 3, nq: 33, nk: 77, d: 24 },
];

test(`emulated subgroup-matrix attention 16x16x16, f16 q/k/v → f16 (tolerance 2e-3 + 2⁻¹¹): ${SUBGROUP_CASES.map((c) => c.label).join('; ')}; AAS batch maps; SIMT fallback under 16 keys`, async () => {
  const rt = await Runtime.create({ tensorCores: 'emulate', flags: EMULATED_16 });
  try {
    assert.ok(rt.subgroupMatrix, 'the emulated subgroup matrices need shader-f16');
    let seed = 300;
    for (const c of SUBGROUP_CASES) await checkSplit(rt, c, (seed += 3), SUBGROUP_TOL, 'subgroup');
    await checkMaps(rt, 2, 40, 40, 40, [0, 0, 1, 1], [0, 1, 0, 1], SUBGROUP_TOL, 'subgroup');
    await checkSplit(rt, { label: 'SIMT fallback, 7 keys', b: 1, h: 2, nq: 40, nk: 7, d: 40 }, 400, SIMT_TOL, 'subgroup mode');
  } finally {
    rt.destroy();
  }
});

/** The key of the kernel `attention` asks `rt` for, without compiling it (the emulated kernels take
 *  a minute each to compile on a CPU adapter): the lookup ends the call. */
function kernelKey(rt: Runtime, fn: () => Tensor): string {
  class Chosen extends Error {}
  let key = '';
  rt.kernel = (k: string) => {
    key = k;
    throw new Chosen();
  };
  try {
    tidy(fn);
  } catch (e) {
    if (!(e instanceof Chosen)) throw e;
  } finally {
    delete (rt as { kernel?: unknown }).kernel; // the prototype's method again
  }
  return key;
}

test('tensor-core choice: under auto, f16 q, k or v (or f16Inputs) select the subgroup-matrix kernel, f32 ones the SIMT kernel; never causal; dtypes in the kernel keys', async () => {
  assert.ok(attentionOnTensorCores('auto', true, false));
  assert.not.ok(attentionOnTensorCores('auto', false, false));
  assert.not.ok(attentionOnTensorCores('auto', true, true));
  assert.ok(attentionOnTensorCores('on', false, false));
  assert.ok(attentionOnTensorCores('emulate', false, false));
  assert.not.ok(attentionOnTensorCores('off', true, false));
  // The same through attention, on an `auto` runtime given the emulated 16×16×16 matrices (as an
  // adapter with subgroup matrices has them) and on an `emulate` one.
  const [h, n, d] = [2, 40, 40];
  const x = randn(h * n * d, 500);
  const s = [1, h, n, d];
  const keys = (rt: Runtime) => {
    const key = (dq: DType, dk: DType, dv: DType, o: Partial<AttentionOptions> = {}) =>
      kernelKey(rt, () => attention(rt.upload(x, s, dq), rt.upload(x, s, dk), rt.upload(x, s, dv), { heads: h, layout: 'split', ...o }));
    return {
      f16: key('f16', 'f16', 'f16'),
      qOnly: key('f16', 'f32', 'f32'),
      kvOnly: key('f32', 'f16', 'f16'),
      vOnly: key('f32', 'f32', 'f16'),
      f32: key('f32', 'f32', 'f32'),
      f16Inputs: key('f32', 'f32', 'f32', { f16Inputs: true }),
      causal: key('f16', 'f16', 'f16', { causal: true }),
    };
  };
  const withRuntime = async (mode: 'auto' | 'emulate') => {
    const rt = await Runtime.create({ tensorCores: mode, flags: EMULATED_16 });
    try {
      if (mode === 'auto') rt.subgroupMatrix = { M: 16, N: 16, K: 16, subgroupSize: 32, syntax: 'emulated' };
      return keys(rt);
    } finally {
      rt.destroy();
    }
  };
  const auto = await withRuntime('auto');
  const emulate = await withRuntime('emulate');
  const tc = /^sattention:40:.*:f16f16f16$/;
  assert.match(auto.f16, tc, 'auto, f16 q/k/v');
  assert.match(auto.qOnly, /^sattention:.*:f16f32f32$/, 'auto, f16 q');
  assert.match(auto.kvOnly, /^sattention:.*:f32f16f16$/, 'auto, f16 k/v');
  assert.match(auto.vOnly, /^sattention:.*:f32f32f16$/, 'auto, f16 v');
  assert.match(auto.f16Inputs, /^sattention:.*:f32f32f32$/, 'auto, f32 with f16Inputs');
  assert.match(auto.f32, /^attention:40:.*:full:.*:f32f32f32$/, 'auto, f32: SIMT');
  assert.match(auto.causal, /^attention:40:.*:causal:.*:f16f16f16$/, 'auto, causal: SIMT');
  assert.match(emulate.f16, tc, 'emulate, f16 q/k/v');
  assert.match(emulate.f32, /^sattention:.*:f32f32f32$/, 'emulate, f32');
});

test.after(() => {
  if (process.env.DIFFSIM_TEST_VERBOSE === '1') console.log(measured.join('\n'));
});

test.run();
