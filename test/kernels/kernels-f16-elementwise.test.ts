// f16 activations through the elementwise and layout kernels: cast, unary, binary, GEGLU and every
// layout op take f16 inputs (read as packed pairs) and give f16 results (written element by
// element), with f32 arithmetic in between.
//
// Inputs are f16 values (random f32 rounded to f16 first, or raw f16 bit patterns), so the float64
// references see exactly the operands the kernels see. Casts and layout ops are checked bit for
// bit; arithmetic ops against float64 within F16_TOL (one f16 rounding of the output), and bit for
// bit against the f32 kernel's result on the same operands rounded to f16 (the f16 kernels run
// the same f32 code, only the load and the store differ). Element counts are odd (the last word
// is half used), and the layout cases put the two halves of one output word into different
// invocations (and, for concat, different dispatches).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { tidy, type Tensor } from '../../src/gpu/runtime.js';
import { f16BitsToF32, f32ToF16Bits } from '../../src/platform/half.js';
import { binary, broadcastShapes, cast, geglu, unary, type BinaryOp, type UnaryOp } from '../../src/kernels/elementwise.js';
import { broadcastTo, concat, mergeHeads, nchwToTokens, permute, resizeNearest, slice, splitHeads, tokensToNchw, upsampleNearest2x } from '../../src/kernels/layout.js';
import { normErr, randn, rejects, rng, runtime } from '../support/helpers.js';
import { act } from '../support/reference.js';

const rt = await runtime();
const f16Test = rt.hasShaderF16 ? test : test.skip;

// One f16 rounding of the output is a relative error of at most 2⁻¹¹ ≈ 4.9e-4 per value, so the
// normalised error (max|Δ| / max(1, max|ref|)) stays under 4.9e-4 plus the f32 arithmetic's
// (≤ 1e-6 here); an element read or written at the wrong index or half is off by O(1).
const F16_TOL = 1e-3;

/** f16 bits of an f32 value as the kernels store it: round to nearest even, saturating at ±65504. */
function f16Bits(v: number): number {
  return Math.abs(v) >= 65520 ? (v < 0 ? 0xfbff : 0x7bff) : f32ToF16Bits(v);
}
const round16 = (x: Float32Array) => x.map((v) => f16BitsToF32(f32ToF16Bits(v)));

/** Runs `fn` in a tidy (inputs uploaded inside are freed), checks the result's dtype, reads it
 *  back and frees it. */
async function run(fn: () => Tensor, dtype: 'f32' | 'f16', label: string): Promise<{ shape: readonly number[]; values: Float32Array }> {
  const y = tidy(fn);
  try {
    assert.is(y.dtype, dtype, `${label}: result dtype`);
    return { shape: y.shape, values: (await y.read()) as Float32Array };
  } finally {
    y.dispose();
  }
}

/** got[i] is exactly the f16 value with bits want[i] (Object.is: −0 ≠ +0, NaN = NaN). */
function assertBits(got: Float32Array, want: ArrayLike<number>, label: string): void {
  assert.is(got.length, want.length, `${label}: length`);
  for (let i = 0; i < got.length; i++) {
    const w = f16BitsToF32(want[i]!);
    if (!Object.is(got[i], w)) {
      assert.unreachable(`${label}: element ${i} of ${got.length} is ${got[i]} (0x${f32ToF16Bits(got[i]!).toString(16)}), expected ${w} (0x${want[i]!.toString(16)})`);
    }
  }
}

function assertWithin(got: Float32Array, ref: ArrayLike<number>, tol: number, label: string): number {
  assert.is(got.length, ref.length, `${label}: length`);
  const err = normErr(got, ref);
  assert.ok(err <= tol, `${label}: normalised error ${err.toExponential(2)} over tolerance ${tol}`);
  return err;
}

/** An f16 result equals the f16 rounding of the f32 kernel's result on the same operands. */
async function assertMatchesF32Kernel(got: Float32Array, f32Kernel: () => Tensor, label: string): Promise<void> {
  const { values } = await run(f32Kernel, 'f32', `${label} (f32 kernel)`);
  assertBits(got, Array.from(values, f16Bits), `${label} vs the f32 kernel rounded to f16`);
}

f16Test('cast f32 → f16: bit-exact round to nearest even (ties, subnormals, ±0), saturating at ±65504', async () => {
  const values: number[] = [0, -0, 1, -1, 65504, -65504, Math.fround(65519.99), 65520, -65520, 1e6, -1e6, Infinity, -Infinity, 2 ** -24, -(2 ** -24), 2 ** -25, 3 * 2 ** -25, 2 ** -26, 2 ** -14, 1e-40];
  // Midpoints between neighbouring f16 values (exact in f32): ties, to even, both parities,
  // normal and subnormal.
  const r = rng(31);
  for (let k = 0; k < 400; k++) {
    const h = Math.floor(r() * 0x7bff);
    const mid = (f16BitsToF32(h) + f16BitsToF32(h + 1)) / 2;
    values.push(k % 2 ? mid : -mid);
  }
  // Random values over 2⁻²⁸ … 2¹⁴ (subnormal to overflowing).
  const z = randn(1201, 32);
  for (let i = 0; i < z.length; i++) values.push(z[i]! * 2 ** ((i % 43) - 28));
  const x = Float32Array.from(values);
  assert.ok(x.length % 2 === 1, 'odd element count');
  const { values: got } = await run(() => cast(rt.upload(x, [x.length]), 'f16'), 'f16', 'cast f32→f16');
  assertBits(got, Array.from(x, f16Bits), 'cast f32→f16');
  // An f32 → f32 or f16 → f16 cast is a new handle on the same storage.
  for (const dtype of ['f32', 'f16'] as const) {
    const a = rt.upload(x.subarray(0, 7), [7], dtype);
    const b = cast(a, dtype);
    assert.ok(b !== a && b.storage === a.storage && b.dtype === dtype, `${dtype} → ${dtype}: same storage, new handle`);
    a.dispose();
    assert.equal([...((await b.read()) as Float32Array)], [...((dtype === 'f16' ? round16(x) : x).subarray(0, 7))], `${dtype} → ${dtype} after the input is disposed`);
    b.dispose();
  }
  await rejects(() => cast(rt.upload(Int32Array.from([1, 2]), [2], 'i32'), 'f16'), /cast: x: expected an f32 or f16 tensor, got i32/, 'cast of an i32 tensor');
  await rejects(() => cast(rt.upload([1, 2], [2]), 'i32' as 'f32'), /cast: dtype must be 'f32' or 'f16', got 'i32'/, 'cast to i32');
});

f16Test('cast f16 → f32 of every finite f16 and ±Inf: exact; and back to f16: bit-exact (±Inf saturate)', async () => {
  const bits: number[] = [];
  for (let h = 0; h < 0x10000; h++) if ((h & 0x7c00) !== 0x7c00 || (h & 0x3ff) === 0) bits.push(h);
  bits.push(0x3c00); // odd count
  const h16 = Uint16Array.from(bits);
  const { values: f } = await run(() => cast(rt.upload(h16, [h16.length], 'f16'), 'f32'), 'f32', 'cast f16→f32');
  for (let i = 0; i < f.length; i++) {
    if (!Object.is(f[i], f16BitsToF32(h16[i]!))) assert.unreachable(`f16 0x${h16[i]!.toString(16)} → ${f[i]}, expected ${f16BitsToF32(h16[i]!)}`);
  }
  const { values: back } = await run(() => cast(cast(rt.upload(h16, [h16.length], 'f16'), 'f32'), 'f16'), 'f16', 'cast f16→f32→f16');
  assertBits(back, bits.map((h) => (h === 0x7c00 ? 0x7bff : h === 0xfc00 ? 0xfbff : h)), 'cast f16→f32→f16');
});

const UNARY_REF: Record<UnaryOp, (v: number) => number> = { ...act, exp: Math.exp };

f16Test(`unary (gelu, quick_gelu, silu, none, exp; with and without clamp), f16 → f16: normalised error ≤ ${F16_TOL}`, async () => {
  const x = round16(randn(1001, 40, 2));
  const [scale, shift] = [1.5, -0.25];
  for (const op of ['gelu', 'quick_gelu', 'silu', 'none', 'exp'] as const) {
    for (const clampTo of [undefined, [-0.5, 0.75] as const]) {
      const label = `${op}${clampTo ? ' clamp' : ''}`;
      const { values: got } = await run(() => unary(rt.upload(x, [7, 11, 13], 'f16'), op, scale, shift, clampTo), 'f16', label);
      const ref = Array.from(x, (v) => {
        const y = UNARY_REF[op](v * scale + shift);
        return clampTo ? Math.min(Math.max(y, clampTo[0]), clampTo[1]) : y;
      });
      assertWithin(got, ref, F16_TOL, label);
      await assertMatchesF32Kernel(got, () => unary(rt.upload(x, [7, 11, 13]), op, scale, shift, clampTo), label);
    }
  }
  // Out-of-range results saturate instead of overflowing to ±Inf.
  const { values: big } = await run(() => unary(rt.upload([1, -1, 0.5], [3], 'f16'), 'none', 1e5), 'f16', 'saturation');
  assertBits(big, [0x7bff, 0xfbff, f32ToF16Bits(5e4)], 'saturation');
  // f32 in, f32 out.
  const { values: f } = await run(() => unary(rt.upload(x, [x.length]), 'silu'), 'f32', 'f32 silu');
  assertWithin(f, Array.from(x, act.silu), 1e-6, 'f32 silu');
});

/** The broadcast reference (alpha·a) op (beta·b) in float64. */
function refBinary(a: Float32Array, sa: number[], b: Float32Array, sb: number[], op: BinaryOp, alpha: number, beta: number): Float64Array {
  const out = broadcastShapes(sa, sb);
  const ref = new Float64Array(out.reduce((p, d) => p * d, 1));
  const at = (shape: number[], coord: number[]) => {
    let off = 0;
    for (let d = 0; d < shape.length; d++) off = off * shape[d]! + (shape[d] === 1 ? 0 : coord[coord.length - shape.length + d]!);
    return off;
  };
  for (let i = 0; i < ref.length; i++) {
    const coord: number[] = [];
    for (let d = out.length - 1, r = i; d >= 0; d--) {
      coord.unshift(r % out[d]!);
      r = Math.floor(r / out[d]!);
    }
    const x = alpha * a[at(sa, coord)]!;
    const z = beta * b[at(sb, coord)]!;
    ref[i] = op === 'add' ? x + z : op === 'sub' ? x - z : op === 'mul' ? x * z : x / z;
  }
  return ref;
}

f16Test(`binary ops, same shape and broadcast, a and b each f32 or f16: result a's dtype; f16 normalised error ≤ ${F16_TOL}`, async () => {
  const cases: [number[], number[]][] = [
    [[3, 5, 7], [3, 5, 7]],
    [[3, 5, 7], [7]],
    [[2, 3, 5], [1, 3, 1]],
    [[5, 1], [1, 7]],
    [[1], [3, 1, 5]],
  ];
  let seed = 50;
  for (const [sa, sb] of cases) {
    for (const op of ['add', 'sub', 'mul', 'div'] as const) {
      const a = round16(randn(sa.reduce((p, d) => p * d, 1), seed++));
      const b = round16(randn(sb.reduce((p, d) => p * d, 1), seed++).map((v) => (op === 'div' ? Math.sign(v || 1) * (Math.abs(v) + 0.5) : v)));
      const ref = refBinary(a, sa, b, sb, op, 0.5, 2);
      const out = broadcastShapes(sa, sb);
      for (const [da, db] of [['f16', 'f16'], ['f16', 'f32'], ['f32', 'f16']] as const) {
        const label = `${op} ${da}[${sa}] ${db}[${sb}]`;
        const { shape, values: got } = await run(() => binary(rt.upload(a, sa, da), rt.upload(b, sb, db), op, 0.5, 2), da, label);
        assert.equal(shape, out, `${label}: shape`);
        assertWithin(got, ref, da === 'f16' ? F16_TOL : 1e-6, label);
        if (da === 'f16') await assertMatchesF32Kernel(got, () => binary(rt.upload(a, sa), rt.upload(b, sb), op, 0.5, 2), label);
      }
    }
  }
  await rejects(() => binary(rt.upload([1], [1]), rt.upload(Int32Array.from([1]), [1], 'i32'), 'add'), /add: b: expected an f32 or f16 tensor, got i32/, 'i32 b');
});

f16Test(`geglu f16 → f16 (odd half widths): normalised error ≤ ${F16_TOL}`, async () => {
  for (const [rows, c] of [[10, 13], [3, 7], [1, 1]] as const) {
    const x = round16(randn(rows * 2 * c, 60 + c, 2));
    const label = `geglu ${rows}×2·${c}`;
    const { shape, values: got } = await run(() => geglu(rt.upload(x, [rows, 2 * c], 'f16')), 'f16', label);
    assert.equal(shape, [rows, c], `${label}: shape`);
    const ref = new Float64Array(rows * c);
    for (let r = 0; r < rows; r++) for (let j = 0; j < c; j++) ref[r * c + j] = x[r * 2 * c + j]! * act.gelu(x[r * 2 * c + c + j]!);
    assertWithin(got, ref, F16_TOL, label);
    await assertMatchesF32Kernel(got, () => geglu(rt.upload(x, [rows, 2 * c])), label);
  }
  await run(() => geglu(rt.upload(new Float32Array(6), [3, 2])), 'f32', 'f32 geglu');
});

/** Random f16 bit patterns: all kinds, about 1/32 each subnormal, infinite or NaN. */
function randomBits(n: number, seed: number): Uint16Array {
  const r = rng(seed);
  return Uint16Array.from({ length: n }, () => Math.floor(r() * 0x10000));
}

/** `op` on f16 tensors of random bits moves exactly the elements it moves on f32 tensors holding
 *  their element indices (the f32 layout kernels are checked against CPU references in
 *  kernels-misc): the f16 result has the f32 result's shape and, bit for bit, the elements those
 *  indices name. */
async function checkLayout(label: string, shapes: number[][], op: (xs: Tensor[]) => Tensor, seed: number): Promise<void> {
  const sizes = shapes.map((s) => s.reduce((p, d) => p * d, 1));
  const bits = randomBits(sizes.reduce((p, n) => p + n, 0), seed);
  const starts = sizes.map((_, i) => sizes.slice(0, i).reduce((p, n) => p + n, 0));
  const index = await run(() => op(shapes.map((s, i) => rt.upload(Float32Array.from({ length: sizes[i]! }, (_, j) => starts[i]! + j), s))), 'f32', `${label} f32`);
  const got = await run(() => op(shapes.map((s, i) => rt.upload(bits.subarray(starts[i]!, starts[i]! + sizes[i]!), s, 'f16'))), 'f16', `${label} f16`);
  assert.equal(got.shape, index.shape, `${label}: shape`);
  assertBits(got.values, Array.from(index.values, (j) => bits[j]!), label);
}

f16Test('layout ops f16 → f16, bit-exact (subnormals, ±Inf, NaN): permute, broadcastTo, slice, concat, nearest ×2 and resize, tokens, heads', async () => {
  let seed = 80;
  const perms: [number[], number[]][] = [
    [[7], [0]],
    [[3, 5], [1, 0]],
    [[3, 1, 5], [2, 0, 1]],
    [[3, 5, 3, 3], [0, 2, 1, 3]],
    [[3, 1, 3, 1, 5], [4, 3, 2, 1, 0]],
    [[3, 3, 1, 1, 5, 3], [5, 1, 3, 0, 4, 2]],
  ];
  for (const [shape, perm] of perms) await checkLayout(`permute [${shape}] [${perm}]`, [shape], ([x]) => permute(x!, perm), seed++);
  await checkLayout('broadcastTo [3, 1, 5] → [2, 3, 7, 5]', [[3, 1, 5]], ([x]) => broadcastTo(x!, [2, 3, 7, 5]), seed++);
  await checkLayout('broadcastTo [1] → [7]', [[1]], ([x]) => broadcastTo(x!, [7]), seed++);
  await checkLayout('slice [3, 5, 7] from [1, 1, 1]', [[3, 5, 7]], ([x]) => slice(x!, [1, 1, 1], [2, 3, -1]), seed++);
  await checkLayout('slice [9] from 4', [[9]], ([x]) => slice(x!, [4], [3]), seed++);
  // Odd blocks: an output word holds one element from each of two inputs (two dispatches).
  await checkLayout('concat channels [2, 1, 3, 3] + [2, 2, 3, 3]', [[2, 1, 3, 3], [2, 2, 3, 3]], (xs) => concat(xs, 1), seed++);
  await checkLayout('concat last axis [3, 3] + [3, 1] + [3, 2]', [[3, 3], [3, 1], [3, 2]], (xs) => concat(xs, -1), seed++);
  await checkLayout('upsampleNearest2x [1, 3, 3, 5]', [[1, 3, 3, 5]], ([x]) => upsampleNearest2x(x!), seed++);
  for (const [oh, ow] of [[4, 7], [2, 3], [6, 10]] as const) await checkLayout(`resizeNearest [1, 2, 3, 5] → ${oh}×${ow}`, [[1, 2, 3, 5]], ([x]) => resizeNearest(x!, oh, ow), seed++);
  await checkLayout('nchwToTokens [2, 3, 3, 5]', [[2, 3, 3, 5]], ([x]) => nchwToTokens(x!), seed++);
  await checkLayout('tokensToNchw [2, 15, 3] → 3×5', [[2, 15, 3]], ([x]) => tokensToNchw(x!, 3, 5), seed++);
  await checkLayout('splitHeads [1, 7, 15] into 5', [[1, 7, 15]], ([x]) => splitHeads(x!, 5), seed++);
  await checkLayout('mergeHeads [2, 3, 5, 3]', [[2, 3, 5, 3]], ([x]) => mergeHeads(x!), seed++);
  await rejects(() => concat([rt.upload([1, 2], [1, 2], 'f16'), rt.upload([3], [1, 1])], 1), /concat: input 1 is f32 but input 0 is f16/, 'concat of mixed dtypes');
  await rejects(() => concat([rt.upload([1, 2], [1, 2], 'f16'), rt.upload([3], [1, 1], 'f16'), rt.upload([3, 4], [2, 1], 'f16')], 1), /concat along 1: input 2 \[2, 1\] does not match input 0 \[1, 2\]/, 'concat of mismatched shapes');
});

test.run();
