// f16 activations through every GEMM form (linear, fused q/k/v, matmul, conv2d as an implicit
// im2col GEMM and as a 1×1 GEMM, 1×1 to token rows, 1×1 from token rows), on the SIMT kernel, the
// lane kernel (along n and along m) and on the subgroup-matrix kernel (its builtins emulated in WGSL), against the float64 references on the
// operands the kernels multiply: activations and f16 weights rounded to f16 first (so they are exact
// on the GPU); f32 weights as they are on SIMT and rounded to f16 on the subgroup kernel, which
// stages them so. The emulated kernel runs Apple's 8×8×8 shape with the medium tile: its pipelines
// compile several times faster on a CPU adapter than 16×16×16 ones, and the staging and epilogue
// code under test is the same for every shape (kernels-subgroup covers the shapes and tiles).
//
// Tolerance TOL16 = 1e-3 (normalised error): an f16 result is one rounding of the f32 epilogue
// value, at most 2⁻¹¹ ≈ 4.9e-4 of max|y| (measured: 0.6–4.5e-4), on top of the f32 accumulation
// (≤ 1e-5 SIMT, ≤ 2e-6 emulated). A half read from or written to the wrong element errs by O(1).
// Results must be f16; f32 activations keep f32 results and the f32 tolerances.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Runtime, tidy, type DType, type Tensor } from '../../src/gpu/runtime.js';
import { f16ArrayToF32, f32ArrayToF16 } from '../../src/platform/half.js';
import { conv1x1FromTokens, conv2d, linear, linearSplit, matmul } from '../../src/kernels/matmul.js';
import { assertClose, randn, rejects } from '../support/helpers.js';
import { act, convOutSize, refConv, refLinear, refMatmul, refPermute, type ConvShape } from '../support/reference.js';

const TOL16 = 1e-3;

const round16 = (x: Float32Array) => f16ArrayToF32(f32ArrayToF16(x));
/** Seeded normal values already rounded to f16: an f16 upload of them is exact. */
const randn16 = (n: number, seed: number, scale = 1) => round16(randn(n, seed, scale));

/** One GEMM kernel family under test. */
interface Path {
  name: string;
  rt: Runtime;
  /** Key prefix of its GEMM kernels: every GEMM a check runs must be this family's. */
  prefix: 'gemm:' | 'sgemm:' | 'lgemm:';
  /** An f32 operand as the kernel multiplies it (the subgroup kernel stages f16). */
  stage: (x: Float32Array) => Float32Array;
  /** Normalised-error tolerance of f32 results (f32 accumulation only). */
  tol32: number;
  /** Kernel keys requested since the last check. */
  keys: string[];
}

/** A path over `rt` that records the kernels its ops request (to tell which GEMM ran). */
function makePath(name: string, rt: Runtime, prefix: Path['prefix'], stage: Path['stage'], tol32: number): Path {
  const keys: string[] = [];
  const kernel = rt.kernel.bind(rt);
  rt.kernel = (key, build) => {
    keys.push(key);
    return kernel(key, build);
  };
  return { name, rt, prefix, stage, tol32, keys };
}

type SimtTile = 'small' | 'medium' | 'large';
const simtPaths = new Map<SimtTile, Promise<Path>>();

/** The SIMT path over a runtime whose `gemmTile` flag forces `tile` (one runtime per tile). */
function simtPath(tile: SimtTile): Promise<Path> {
  let p = simtPaths.get(tile);
  if (!p) {
    p = Runtime.create({ tensorCores: 'off', flags: { gemmTile: tile } }).then((rt) => makePath('SIMT', rt, 'gemm:', (x) => x, 1e-5));
    simtPaths.set(tile, p);
  }
  return p;
}

/** `fn` on path `p` with the SIMT GEMM tile `tile`. A subgroup-matrix path runs no SIMT GEMM (run()
 *  checks that), so it keeps its runtime. */
async function onTile(p: Path, tile: SimtTile, fn: (p: Path, rt: Runtime) => Promise<void>): Promise<void> {
  const q = p.prefix === 'gemm:' && p.rt.flags.gemmTile !== tile ? await simtPath(tile) : p;
  await fn(q, q.rt);
}

interface Out {
  values: Float32Array;
  dtype: DType;
  shape: number[];
}

/** Runs the ops of `fn` (uploads included) in a tidy, checks that its GEMMs ran on the path's
 *  kernel, and reads its results back. */
async function run(p: Path, label: string, fn: () => Tensor | Tensor[]): Promise<Out[]> {
  p.keys.length = 0;
  const out = tidy(fn);
  const list = Array.isArray(out) ? out : [out];
  const gemms = p.keys.filter((k) => /^[sl]?gemm:/.test(k));
  assert.ok(gemms.length > 0 && gemms.every((k) => k.startsWith(p.prefix)), `${p.name} ${label}: expected ${p.prefix} kernels, ran ${gemms.join(', ') || 'no GEMM'}`);
  try {
    const values = await Promise.all(list.map((t) => t.read() as Promise<Float32Array>));
    return list.map((t, i) => ({ values: values[i]!, dtype: t.dtype, shape: [...t.shape] }));
  } finally {
    for (const t of list) t.dispose();
  }
}

function check(p: Path, o: Out, dtype: DType, shape: readonly number[], want: ArrayLike<number>, label: string): void {
  assert.is(o.dtype, dtype, `${p.name} ${label}: dtype`);
  assert.equal(o.shape, [...shape], `${p.name} ${label}: shape`);
  assertClose(o.values, want, dtype === 'f16' ? TOL16 : p.tol32, `${p.name} ${label}`);
}

type WeightDType = 'f32' | 'f16';

/** Weight values of `dtype` (f16: rounded, uploaded exactly) and what the path's kernel multiplies. */
function weightData(p: Path, n: number, seed: number, scale: number, dtype: WeightDType): { data: Float32Array; ref: Float32Array } {
  const data = dtype === 'f16' ? randn16(n, seed, scale) : randn(n, seed, scale);
  return { data, ref: dtype === 'f16' ? data : p.stage(data) };
}

/** Every GEMM form with f16 activations on path `p`. Each distinct kernel compiles for seconds on
 *  a CPU adapter (the emulated subgroup ones for longer), so the cases share kernels where they
 *  can and the epilogue options ride along on the forms. `full` (SIMT) adds more weight and
 *  residual dtype variants, the vec4 f32-weight loads next to f16 activations (medium tile), the
 *  large tile, f32 activations, problems below one subgroup matrix in some dimension and the
 *  empty inner dimension (which the subgroup kernel leaves to the SIMT one). */
async function checkForms(p: Path, full: boolean): Promise<void> {
  const rt = p.rt;
  let seed = 1000;

  // linear: ragged M, N, K (odd K: rows start mid-word), leading batch dims, bias, activation and
  // an f16 residual; f16 weights. One kernel for the small shapes on SIMT.
  for (const [lead, k, n] of [
    ...(full ? ([[[5], 7, 3], [[1], 1, 1]] as [number[], number, number][]) : []),
    [[2, 19], 41, 40],
  ] as [number[], number, number][]) {
    const m = lead.reduce((a, b) => a * b, 1);
    const x = randn16(m * k, seed++);
    const w = weightData(p, n * k, seed++, 0.3, 'f16');
    const bias = randn(n, seed++);
    const res = randn16(m * n, seed++);
    const [y] = await run(p, 'linear', () =>
      linear(rt.upload(x, [...lead, k], 'f16'), rt.upload(w.data, [n, k], 'f16'), { bias: rt.upload(bias, [n]), act: 'gelu', residual: rt.upload(res, [...lead, n], 'f16') }),
    );
    check(p, y!, 'f16', [...lead, n], refLinear(x, w.ref, m, k, n, bias, 'gelu', res), `linear [${lead}, ${k}] → ${n} + bias + gelu + f16 residual, f16 weights`);
  }
  // f32 weights (K % 4 == 0 and the medium tile: their vec4 path next to the f16 activations'
  // scalar one), bias, SiLU and an f32 residual; tiles ragged in M and N.
  if (full) await onTile(p, 'medium', async (p, rt) => {
    const [m, k, n] = [70, 36, 130];
    const x = randn16(m * k, seed++);
    const w = weightData(p, n * k, seed++, 0.3, 'f32');
    const bias = randn(n, seed++);
    const res = randn(m * n, seed++);
    const [y] = await run(p, 'linear f32 weights', () => linear(rt.upload(x, [m, k], 'f16'), rt.upload(w.data, [n, k]), { bias: rt.upload(bias, [n]), act: 'silu', residual: rt.upload(res, [m, n]) }));
    check(p, y!, 'f16', [m, n], refLinear(x, w.ref, m, k, n, bias, 'silu', res), `linear ${m}x${k}x${n} + bias + silu + f32 residual, f32 weights`);
  });

  // Fused q/k/v: three f16 outputs from one GEMM.
  {
    const [m, k, n] = [37, 33, 24];
    const x = randn16(m * k, seed++);
    const w = weightData(p, 3 * n * k, seed++, 0.3, 'f16');
    const bias = randn(3 * n, seed++);
    const parts = await run(p, 'linearSplit', () => linearSplit(rt.upload(x, [m, k], 'f16'), rt.upload(w.data, [3 * n, k], 'f16'), 3, rt.upload(bias, [3 * n])));
    const whole = refLinear(x, w.ref, m, k, 3 * n, bias);
    assert.is(parts.length, 3);
    for (let part = 0; part < 3; part++) {
      const want = new Float64Array(m * n);
      for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) want[i * n + j] = whole[i * 3 * n + part * n + j]!;
      check(p, parts[part]!, 'f16', [m, n], want, `linearSplit part ${part}`);
    }
  }

  // Batched matmul of two f16 activations (attention-shaped), B row-major; on SIMT also an f16 a
  // times a transposed, broadcast f32 b.
  {
    const [batch, m, k, n] = [3, 33, 40, 18];
    const a = randn16(batch * m * k, seed++);
    const b = randn16(batch * k * n, seed++, 0.5);
    const [y] = await run(p, 'matmul', () => matmul(rt.upload(a, [batch, m, k], 'f16'), rt.upload(b, [batch, k, n], 'f16')));
    check(p, y!, 'f16', [batch, m, n], refMatmul(a, b, batch, m, k, n, true), 'matmul f16 · f16');
  }
  if (full) {
    const [batch, m, k, n] = [2, 20, 25, 17];
    const a = randn16(batch * m * k, seed++);
    const b = randn(n * k, seed++, 0.5);
    const [y] = await run(p, 'matmul broadcast', () => matmul(rt.upload(a, [batch, m, k], 'f16'), rt.upload(b, [n, k]), { transposeB: true }));
    check(p, y!, 'f16', [batch, m, n], refMatmul(a, b, batch, m, k, n, false, true), 'matmul f16 · broadcast f32ᵀ');
  }

  // conv2d, the image read through the implicit im2col: a ResNet-style epilogue (bias, time-
  // embedding batch bias, SiLU, f16 residual) on a strided 3×3 with the VAE's asymmetric padding
  // and, same kernel, with symmetric padding; f16 weights. On SIMT also a plain 3×3 with f32 weights.
  for (const pad of [
    [0, 1, 0, 1],
    [1, 1, 1, 1],
  ] as [number, number, number, number][]) {
    const c: ConvShape = { b: 2, cin: 7, h: 11, w: 13, cout: 21, kh: 3, kw: 3, stride: 2, pad };
    const [oh, ow] = convOutSize(c);
    const x = randn16(c.b * c.cin * c.h * c.w, seed++);
    const w = weightData(p, c.cout * c.cin * 9, seed++, 0.3, 'f16');
    const bias = randn(c.cout, seed++);
    const bb = randn(c.b * c.cout, seed++);
    const res = randn16(c.b * c.cout * oh * ow, seed++);
    const [y] = await run(p, 'conv 3x3', () =>
      conv2d(rt.upload(x, [c.b, c.cin, c.h, c.w], 'f16'), rt.upload(w.data, [c.cout, c.cin, 3, 3], 'f16'), {
        bias: rt.upload(bias, [c.cout]),
        batchBias: rt.upload(bb, [c.b, c.cout]),
        act: 'silu',
        stride: 2,
        padding: pad,
        residual: rt.upload(res, [c.b, c.cout, oh, ow], 'f16'),
      }),
    );
    const want = refConv(x, w.ref, c, bias);
    for (let i = 0; i < want.length; i++) want[i] = act.silu(want[i]! + bb[Math.floor(i / (oh * ow))]!) + res[i]!;
    check(p, y!, 'f16', [c.b, c.cout, oh, ow], want, `conv 3x3 stride 2 pad (${pad}) + bias + batch bias + silu + f16 residual, f16 weights`);
  }
  if (full) {
    const c: ConvShape = { b: 1, cin: 5, h: 7, w: 13, cout: 17, kh: 3, kw: 3, stride: 1, pad: [1, 1, 1, 1] };
    const x = randn16(c.cin * c.h * c.w, seed++);
    const w = weightData(p, c.cout * c.cin * 9, seed++, 0.3, 'f32');
    const [y] = await run(p, 'conv 3x3 f32 weights', () => conv2d(rt.upload(x, [1, c.cin, c.h, c.w], 'f16'), rt.upload(w.data, [c.cout, c.cin, 3, 3]), { padding: 1 }));
    check(p, y!, 'f16', [1, c.cout, c.h, c.w], refConv(x, w.ref, c), 'conv 3x3 pad 1, f32 weights');
  }
  // 1×1: the image as a (K, N) operand next to f32 weights read as vec4 (medium tile), bias and an
  // f32 residual.
  if (full) await onTile(p, 'medium', async (p, rt) => {
    const c: ConvShape = { b: 2, cin: 24, h: 5, w: 7, cout: 33, kh: 1, kw: 1, stride: 1, pad: [0, 0, 0, 0] };
    const x = randn16(c.b * c.cin * c.h * c.w, seed++);
    const w = weightData(p, c.cout * c.cin, seed++, 0.3, 'f32');
    const bias = randn(c.cout, seed++);
    const res = randn(c.b * c.cout * c.h * c.w, seed++);
    const [y] = await run(p, 'conv 1x1', () =>
      conv2d(rt.upload(x, [c.b, c.cin, c.h, c.w], 'f16'), rt.upload(w.data, [c.cout, c.cin, 1, 1]), { bias: rt.upload(bias, [c.cout]), residual: rt.upload(res, [c.b, c.cout, c.h, c.w]) }),
    );
    check(p, y!, 'f16', [c.b, c.cout, c.h, c.w], refConv(x, w.ref, c, bias, res), 'conv 1x1 + bias + f32 residual, f32 weights');
  });

  // 1×1 to token rows (proj_in: the image as a (K, N) operand, a transposed store) with an f16
  // residual in that layout, f32 weights; and from f16 token rows (proj_out) with bias and an f16
  // residual, f16 weights.
  {
    const [b, cin, h, w, cout] = [2, 32, 4, 5, 24];
    const c: ConvShape = { b, cin, h, w, cout, kh: 1, kw: 1, stride: 1, pad: [0, 0, 0, 0] };
    const x = randn16(b * cin * h * w, seed++);
    const wt = weightData(p, cout * cin, seed++, 0.3, 'f32');
    const bias = randn(cout, seed++);
    const res = randn16(b * h * w * cout, seed++);
    const [tok] = await run(p, 'conv tokensOut', () =>
      conv2d(rt.upload(x, [b, cin, h, w], 'f16'), rt.upload(wt.data, [cout, cin, 1, 1]), { bias: rt.upload(bias, [cout]), residual: rt.upload(res, [b, h * w, cout], 'f16'), tokensOut: true }),
    );
    const want = refPermute(refConv(x, wt.ref, c, bias), [b, cout, h * w], [0, 2, 1]);
    for (let i = 0; i < want.length; i++) want[i]! += res[i]!;
    check(p, tok!, 'f16', [b, h * w, cout], want, 'conv 1x1 tokensOut + bias + f16 residual, f32 weights');

    const tokens = randn16(b * h * w * cin, seed++);
    const w1 = weightData(p, cout * cin, seed++, 0.3, 'f16');
    const resImg = randn16(b * cout * h * w, seed++);
    const [img] = await run(p, 'conv1x1FromTokens', () =>
      conv1x1FromTokens(rt.upload(tokens, [b, h * w, cin], 'f16'), rt.upload(w1.data, [cout, cin, 1, 1], 'f16'), h, w, { bias: rt.upload(bias, [cout]), residual: rt.upload(resImg, [b, cout, h, w], 'f16') }),
    );
    const nchw = Float32Array.from(refPermute(tokens, [b, h * w, cin], [0, 2, 1]));
    check(p, img!, 'f16', [b, cout, h, w], refConv(nchw, w1.ref, c, bias, resImg), 'conv1x1FromTokens + bias + f16 residual, f16 weights');
  }

  if (!full) return;
  // f32 activations keep f32 results (an f16 residual or f16 weights do not change that).
  {
    const [m, k, n] = [33, 40, 36];
    const x = randn(m * k, seed++);
    const w = weightData(p, n * k, seed++, 0.3, 'f16');
    const res = randn16(m * n, seed++);
    const [y] = await run(p, 'linear f32', () => linear(rt.upload(x, [m, k]), rt.upload(w.data, [n, k], 'f16'), { residual: rt.upload(res, [m, n], 'f16') }));
    check(p, y!, 'f32', [m, n], refLinear(x, w.ref, m, k, n, undefined, 'none', res), 'f32 linear + f16 residual, f16 weights');
    const c: ConvShape = { b: 1, cin: 6, h: 8, w: 9, cout: 20, kh: 3, kw: 3, stride: 1, pad: [1, 1, 1, 1] };
    const xc = randn(c.cin * c.h * c.w, seed++);
    const wc = weightData(p, c.cout * c.cin * 9, seed++, 0.3, 'f16');
    const [yc] = await run(p, 'conv f32', () => conv2d(rt.upload(xc, [1, c.cin, c.h, c.w]), rt.upload(wc.data, [c.cout, c.cin, 3, 3], 'f16'), { padding: 1 }));
    check(p, yc!, 'f32', [1, c.cout, c.h, c.w], refConv(xc, wc.ref, c), 'f32 conv, f16 weights');
  }
  // An empty inner dimension: act(bias) + residual, rounded to f16 (the small linear's kernel).
  {
    const [m, n] = [3, 5];
    const bias = randn(n, seed++);
    const res = randn16(m * n, seed++);
    const [y] = await run(p, 'linear K = 0', () =>
      linear(rt.upload(new Float32Array(0), [m, 0], 'f16'), rt.upload(new Float32Array(0), [n, 0], 'f16'), { bias: rt.upload(bias, [n]), act: 'gelu', residual: rt.upload(res, [m, n], 'f16') }),
    );
    check(p, y!, 'f16', [m, n], refLinear(new Float32Array(0), new Float32Array(0), m, 0, n, bias, 'gelu', res), 'linear K = 0 + bias + gelu + f16 residual');
    // Beyond f16's range the store saturates to ±65504 (the same kernel).
    const [big] = await run(p, 'linear saturation', () =>
      linear(rt.upload(new Float32Array(0), [1, 0], 'f16'), rt.upload(new Float32Array(0), [2, 0], 'f16'), { bias: rt.upload([1e5, 2], [2]), act: 'gelu', residual: rt.upload([0, -65504], [1, 2], 'f16') }),
    );
    assert.equal(Array.from(big!.values), [65504, -65504], `${p.name} saturating f16 store`);
  }
  // The large SIMT tile (the one big GPUs take): ragged linear with an f16 residual.
  await onTile(p, 'large', async (p, rt) => {
    const [m, k, n] = [130, 41, 70];
    const x = randn16(m * k, seed++);
    const w = randn16(n * k, seed++, 0.3);
    const res = randn16(m * n, seed++);
    const [y] = await run(p, 'large tile', () => linear(rt.upload(x, [m, k], 'f16'), rt.upload(w, [n, k], 'f16'), { residual: rt.upload(res, [m, n], 'f16') }));
    check(p, y!, 'f16', [m, n], refLinear(x, w, m, k, n, undefined, 'none', res), `large tile: linear ${m}x${k}x${n} + f16 residual`);
  });
}

const simtRuntime = await Runtime.create({ tensorCores: 'off' });
const f16 = simtRuntime.hasShaderF16;
test.after(async () => {
  simtRuntime.destroy();
  for (const p of simtPaths.values()) (await p).rt.destroy();
});

(f16 ? test : test.skip)(`f16 activations on the SIMT GEMM: every form, f16 and f32 weights, epilogues, edge tiles, the large tile (tolerance ${TOL16})`, async () => {
  // The small tile unless a case asks for another: the quickest to compile, and the tile does not
  // change how f16 operands are read or results written.
  await checkForms(await simtPath('small'), true);
});

for (const tile of ['ln2r4', 'lm2r2'] as const) {
  (f16 && simtRuntime.hasSubgroups ? test : test.skip)(`f16 activations on the lane GEMM, tile ${tile}: every form (tolerance ${TOL16})`, async () => {
    const rt = await Runtime.create({ tensorCores: 'off', flags: { gemmTile: tile } });
    try {
      await checkForms(makePath(`lane ${tile}`, rt, 'lgemm:', (x) => x, 1e-5), false);
    } finally {
      rt.destroy();
    }
  });
}

(f16 ? test : test.skip)(`f16 activations on the subgroup-matrix GEMM (emulated 8x8x8, medium tile): every form (tolerance ${TOL16})`, async () => {
  const rt = await Runtime.create({ tensorCores: 'emulate', flags: { tcShape: '8x8x8', tcTile: 'medium' } });
  try {
    assert.equal(rt.subgroupMatrix?.syntax, 'emulated');
    await checkForms(makePath('emulated', rt, 'sgemm:', round16, 2e-6), false);
  } finally {
    rt.destroy();
  }
});

(f16 ? test : test.skip)('f16 activation errors name the operand', async () => {
  const rt = simtRuntime;
  const x16 = rt.upload(new Float32Array(6), [2, 3], 'f16');
  const w = rt.upload(new Float32Array(12), [4, 3]);
  try {
    await rejects(() => linear(rt.upload(new Int32Array(6), [2, 3], 'i32'), w), /linear input: expected an f32 or f16 tensor, got i32/, 'i32 input');
    await rejects(() => linear(x16, w, { bias: rt.upload(new Float32Array(4), [4], 'f16') }), /linear bias: expected an f32 tensor, got f16/, 'f16 bias');
    await rejects(() => linear(x16, w, { residual: rt.upload(new Int32Array(8), [2, 4], 'i32') }), /linear residual: expected an f32 or f16 tensor, got i32/, 'i32 residual');
    await rejects(() => matmul(rt.upload(new Uint32Array(6), [2, 3], 'u32'), w), /matmul a: expected an f32 or f16 tensor, got u32/, 'u32 a');
    await rejects(
      () => conv2d(rt.upload(new Float32Array(16), [1, 1, 4, 4], 'f16'), rt.upload(new Float32Array(2), [2, 1, 1, 1]), { batchBias: rt.upload(new Float32Array(2), [1, 2], 'f16') }),
      /conv2d batchBias: expected an f32 tensor, got f16/,
      'f16 batch bias',
    );
  } finally {
    x16.dispose();
    w.dispose();
  }
});

test.run();
