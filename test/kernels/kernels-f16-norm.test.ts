// GroupNorm (single and split paths, SiLU fused), LayerNorm and softmax on f16 activations.
// The random inputs are rounded to f16 first, so the float64 references see exactly the operands the
// kernels read. Sums, statistics and the affine transform stay in f32, so the result differs from
// the reference by one f16 rounding of the output, |Δ| ≤ 2⁻¹¹·|y| (plus f32 noise, ~1e-6): a
// normalised error (max|Δ| / max(1, max|y|)) of at most 4.9e-4. Tolerance TOL16 = 1e-3; reading
// the wrong half of a packed pair, or writing an element to the wrong index, gives errors of O(1).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { f16ArrayToF32, f32ArrayToF16 } from '../../src/platform/half.js';
import { tidy, type Tensor } from '../../src/gpu/runtime.js';
import { GN_SINGLE_MAX, groupNorm, layerNorm, softmax, type GroupNormOptions } from '../../src/kernels/norm.js';
import type { GroupNormFlag } from '../../src/gpu/flags.js';
import { assertClose, block, randn, rejects, runtime, runtimeWith, take } from '../support/helpers.js';
import { refGroupNorm, refLayerNorm, refSoftmax } from '../support/reference.js';

const TOL16 = 1e-3;

/** The values an f16 tensor uploaded from `x` holds. */
const roundF16 = (x: Float32Array): Float32Array => f16ArrayToF32(f32ArrayToF16(x));

/** Reads an f16 result back (asserting its dtype) and disposes it. */
async function take16(t: Tensor, what: string): Promise<Float32Array> {
  assert.is(t.dtype, 'f16', `${what}: result dtype`);
  return take(t);
}

/** Largest distance in f16 steps between two arrays of f16 values (ordered as integers, so ±0
 *  coincide and a step across zero counts one). */
function maxUlps16(a: Float32Array, b: Float32Array): number {
  const ord = (h: number): number => (h & 0x8000 ? -(h & 0x7fff) : h);
  const ha = f32ArrayToF16(a);
  const hb = f32ArrayToF16(b);
  let worst = 0;
  for (let i = 0; i < ha.length; i++) worst = Math.max(worst, Math.abs(ord(ha[i]!) - ord(hb[i]!)));
  return worst;
}

// [B, C, spatial shape, groups]; a row is cpg·H·W elements and starts at an odd element (the second
// half of a packed word) whenever the row length is odd.
const GN_CASES: [number, number, number[], number][] = [
  [3, 5, [1, 1], 5], // rows of one element (variance 0: the output is the bias)
  [3, 9, [5, 7], 3], // channels per group 3, rows of 105 (odd), 945 elements (odd)
  [2, 12, [9, 11], 4], // channels per group 3, rows of 297
  [1, 3, [73, 77], 1], // rows of 16 863 > GN_SINGLE_MAX: split by default (5 chunks, the last partial); odd numel
];

test(`groupNorm f16 → f16 on single and split paths (forced by options and by the groupNorm flag, and auto), with and without SiLU: ${GN_CASES.map(([b, c, sp, g]) => `${b}×${c}×${sp.join('×')} g${g}`).join('; ')}; normalised error ≤ ${TOL16} against float64`, async () => {
  const shared = await runtime();
  let seed = 1100;
  for (const [b, c, spatialShape, groups] of GN_CASES) {
    const spatial = spatialShape.reduce((a, d) => a * d, 1);
    const len = (c / groups) * spatial;
    // Offset data (mean 20, σ 3; f16 ulp 1/64 there), as in the f32 suite.
    const x = roundF16(randn(b * c * spatial, seed++).map((v) => v * 3 + 20));
    const w = randn(c, seed++);
    const bias = randn(c, seed++);
    const eps = 1e-5;
    const runs: [string, Partial<GroupNormOptions>, GroupNormFlag | undefined, 1 | 2][] = [
      ['auto', {}, undefined, len > GN_SINGLE_MAX ? 2 : 1],
      ['single', { path: 'single' }, undefined, 1],
      ['split', { path: 'split' }, undefined, 2],
      // Chunks that straddle channel boundaries and start on either half of a word.
      ['split chunk 97', { path: 'split', chunk: 97 }, undefined, 2],
      ['groupNorm flag split:33', {}, 'split:33', 2],
    ];
    if (len > 300) runs.push(['split chunk 5', { path: 'split', chunk: 5 }, undefined, 2]);
    for (const [label, opts, flag, dispatches] of runs) {
      const rt = flag ? await runtimeWith({ groupNorm: flag }) : shared;
      for (const a of ['none', 'silu'] as const) {
        await block(async () => {
          const xt = rt.upload(x, [b, c, ...spatialShape], 'f16');
          const wt = rt.upload(w, [c]);
          const bt = rt.upload(bias, [c]);
          const d0 = rt.dispatchCount;
          const y = groupNorm(xt, wt, bt, { groups, eps, act: a, ...opts });
          const what = `GN f16 ${b}×${c}×${spatialShape.join('×')} g${groups} ${label} act=${a}`;
          assert.is(rt.dispatchCount - d0, dispatches, `${what}: dispatches`);
          assertClose(await take16(y, what), refGroupNorm(x, b, c, spatial, groups, w, bias, eps, a), TOL16, what);
          [xt, wt, bt].forEach((t) => t.dispose());
        });
      }
    }
  }
});

test('groupNorm f16: a large mean (1000 ± 1 in f16, ulp 0.5) on both paths: the variance is centred', async () => {
  const rt = await runtime();
  const [b, c, h, g] = [2, 8, 40, 2]; // rows of 6 400
  const x = roundF16(randn(b * c * h * h, 1160).map((v) => v + 1000));
  const w = randn(c, 1161);
  const bias = randn(c, 1162);
  const ref = refGroupNorm(x, b, c, h * h, g, w, bias, 1e-6, 'silu');
  for (const opts of [{ path: 'single' }, { path: 'split', chunk: 300 }] as const) {
    await block(async () => {
      const y = groupNorm(rt.upload(x, [b, c, h, h], 'f16'), rt.upload(w, [c]), rt.upload(bias, [c]), { groups: g, eps: 1e-6, act: 'silu', ...opts });
      // An uncentred E[x²] − E[x]² in f32 loses the variance (~1e-6 of E[x²]) to rounding here
      // (normalised error 3e-2 on the single path, measured on lavapipe).
      assertClose(await take16(y, `GN f16 mean 1000 ${opts.path}`), ref, TOL16, `GN f16 mean 1000 ${opts.path}`);
    });
  }
});

test('f16 results are the f32 path on the same values rounded once (≤ 1 f16 step), and f32 inputs still give f32 results (≤ 1e-5)', async () => {
  const rt = await runtime();
  const [b, c, spatial, g] = [2, 12, [9, 11], 4];
  const n = b * c * 99;
  const x = roundF16(randn(n, 1200).map((v) => v * 3 + 20));
  const w = randn(c, 1201);
  const bias = randn(c, 1202);
  const cases: [string, (t: Tensor) => Tensor, Float64Array][] = [
    ['groupNorm single silu', (t) => groupNorm(t, rt.upload(w, [c]), rt.upload(bias, [c]), { groups: g, eps: 1e-5, act: 'silu', path: 'single' }), refGroupNorm(x, b, c, 99, g, w, bias, 1e-5, 'silu')],
    ['groupNorm split chunk 40', (t) => groupNorm(t, rt.upload(w, [c]), rt.upload(bias, [c]), { groups: g, eps: 1e-5, path: 'split', chunk: 40 }), refGroupNorm(x, b, c, 99, g, w, bias, 1e-5)],
    ['layerNorm', (t) => layerNorm(t.reshape([n / c, c]), rt.upload(w, [c]), rt.upload(bias, [c]), 1e-5), refLayerNorm(x, c, w, bias, 1e-5)],
    ['softmax', (t) => softmax(t.reshape([n / c, c]), 0.5), refSoftmax(x, c, 0.5)],
  ];
  for (const [what, op, ref] of cases) {
    await block(async () => {
      const y32 = tidy(() => op(rt.upload(x, [b, c, ...spatial])));
      assert.is(y32.dtype, 'f32', `${what}: f32 input, f32 result`);
      const r32 = await take(y32);
      assertClose(r32, ref, 1e-5, `${what} f32`);
      const r16 = await take16(tidy(() => op(rt.upload(x, [b, c, ...spatial], 'f16'))), what);
      const ulps = maxUlps16(r16, r32);
      assert.ok(ulps <= 1, `${what}: f16 result ${ulps} f16 steps from the rounded f32 result`);
    });
  }
});

test(`layerNorm f16 → f16: C = 1, 7, 77, 320, 1280; rows 1..77; normalised error ≤ ${TOL16}`, async () => {
  const rt = await runtime();
  let seed = 1300;
  for (const [rows, c] of [[1, 1], [3, 7], [9, 77], [77, 320], [5, 1280]] as const) {
    await block(async () => {
      const x = roundF16(randn(rows * c, seed++).map((v) => v * 2 - 5));
      const w = randn(c, seed++);
      const bias = randn(c, seed++);
      const y = layerNorm(rt.upload(x, [rows, c], 'f16'), rt.upload(w, [c]), rt.upload(bias, [c]), 1e-5);
      assertClose(await take16(y, `LN f16 ${rows}x${c}`), refLayerNorm(x, c, w, bias, 1e-5), TOL16, `LN f16 ${rows}x${c}`);
    });
  }
});

test(`softmax f16 → f16: lengths 1, 3, 5, 77, 1000, 4097; scale; logits of σ 10; normalised error ≤ ${TOL16}`, async () => {
  const rt = await runtime();
  let seed = 1400;
  // Short rows keep the probabilities O(1), where a misplaced element shows as an O(1) error.
  for (const [rows, c, scale] of [[1, 1, 1], [7, 3, 1], [3, 5, 1], [8, 77, 0.125], [2, 1000, 1], [3, 4097, 3]] as const) {
    await block(async () => {
      const x = roundF16(randn(rows * c, seed++, 10));
      const y = softmax(rt.upload(x, [rows, c], 'f16'), scale);
      assertClose(await take16(y, `softmax f16 ${rows}x${c}`), refSoftmax(x, c, scale), TOL16, `softmax f16 ${rows}x${c}`);
    });
  }
});

test('f16 norms saturate to ±65504 instead of overflowing; non-f32 affine parameters and non-float inputs are rejected', async () => {
  const rt = await runtime();
  await block(async () => {
    // Rows of 18 alternating ±1 (mean 0, σ 1) scaled by 1e6: every output is ±1e6, past f16's range.
    const x = rt.upload(Float32Array.from({ length: 2 * 6 * 9 }, (_, i) => (i % 2 ? -1 : 1)), [2, 6, 3, 3], 'f16');
    const big = rt.upload(new Float32Array(6).fill(1e6), [6]);
    const zero = rt.upload(new Float32Array(6), [6]);
    const y = await take16(groupNorm(x, big, zero, { groups: 3, eps: 1e-5 }), 'GN saturating');
    assert.ok(y.every((v, i) => v === (i % 2 ? -65504 : 65504)), 'GN outputs of ±1e6 saturate to ±65504');
    const w16 = rt.upload(randn(6, 1501), [6], 'f16');
    await rejects(() => groupNorm(x, w16, zero, { groups: 3, eps: 1e-5 }), /groupNorm weight: expected an f32 tensor, got f16/, 'GN f16 weight');
    await rejects(() => layerNorm(x.reshape([18, 6]), zero, w16, 1e-5), /layerNorm bias: expected an f32 tensor, got f16/, 'LN f16 bias');
    const xi = rt.upload(new Int32Array(12), [2, 6], 'i32');
    await rejects(() => groupNorm(xi, zero, zero, { groups: 3, eps: 1e-5 }), /groupNorm: expected an f32 or f16 tensor, got i32/, 'GN i32 input');
    await rejects(() => layerNorm(xi, zero, zero, 1e-5), /layerNorm: expected an f32 or f16 tensor, got i32/, 'LN i32 input');
    await rejects(() => softmax(xi), /softmax: expected an f32 or f16 tensor, got i32/, 'softmax i32 input');
    [x, big, zero, w16, xi].forEach((t) => t.dispose());
  });
});

test.run();
