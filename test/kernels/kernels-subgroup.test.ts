// The subgroup-matrix (tensor-core) GEMM: linear, fused q/k/v, matmul, conv2d (implicit GEMM,
// 1×1 to tokens, 1×1 from tokens) against float64 references computed on the operands rounded to
// f16, as the kernel stages them (f16 × f16 products are exact in f32, so only the f32
// accumulation differs: normalised error ≤ 2e-6 emulated, ≤ 1e-4 on hardware, whose accumulation
// order inside one multiply is its own).
//
// `emulated` runs the kernels with the builtins written out in WGSL on any adapter with shader-f16
// (here lavapipe), for the 16×16×16 shape of NVIDIA's tensor cores and the 8×8×8 one of Apple's,
// with both tiles. `native` runs them on the adapter's own subgroup matrices and is skipped where
// the adapter has none.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Runtime, tidy, type Tensor } from '../../src/gpu/runtime.js';
import { f16ArrayToF32, f32ArrayToF16 } from '../../src/platform/half.js';
import { conv1x1FromTokens, conv2d, linear, linearSplit, matmul } from '../../src/kernels/matmul.js';
import { attention } from '../../src/kernels/attention.js';
import { assertClose, randn } from '../support/helpers.js';
import { refAttention, refConv, refLinear, refMatmul, refPermute, type ActName, type ConvShape } from '../support/reference.js';

const EMULATED_TOL = 2e-6;
const NATIVE_TOL = 1e-4;
// Attention also rounds the normalised probabilities to f16 before P·V (as fp16 attention does):
// about 2⁻¹¹ relative per probability.
const ATTENTION_TOL = 2e-3;

const round16 = (x: Float32Array) => f16ArrayToF32(f32ArrayToF16(x));


async function read(fn: () => Tensor | Tensor[]): Promise<Float32Array[]> {
  const out = tidy(fn);
  const list = Array.isArray(out) ? out : [out];
  const values = await Promise.all(list.map((t) => t.read() as Promise<Float32Array>));
  for (const t of list) t.dispose();
  return values;
}

/** Attention on `rt` against the float64 reference on f16-rounded (scaled) q, k and v: split and
 *  merged layouts, head sizes of SD1.5 (40, 80, 160) and awkward ones, key counts around the tile,
 *  and the batch maps of the AAS (O_AA, O_AB, O_BA, O_BB of a stacked pair). */
async function checkAttention(rt: Runtime, tol: number, label: string, full = true): Promise<void> {
  let seed = 500;
  const cases: [number, number, number, number, number][] = full
    ? [
        // b, heads, nq, nk, d
        [1, 2, 70, 37, 40],
        [2, 1, 33, 64, 80],
        [1, 1, 20, 17, 160],
        [1, 3, 16, 77, 24],
      ]
    : [[1, 2, 70, 37, 40]];
  for (const [b, h, nq, nk, d] of cases) {
    const scale = 1 / Math.sqrt(d);
    const q = randn(b * h * nq * d, seed++);
    const k = randn(b * h * nk * d, seed++);
    const v = randn(b * h * nk * d, seed++);
    const [y] = await read(() => attention(rt.upload(q, [b, h, nq, d]), rt.upload(k, [b, h, nk, d]), rt.upload(v, [b, h, nk, d]), { heads: h, layout: 'split' }));
    const qs = round16(q.map((x) => x * scale));
    assertClose(y!, refAttention(qs, round16(k), round16(v), b, h, nq, nk, d, 1, false), tol, `${label} attention split b${b} h${h} nq${nq} nk${nk} d${d}`);
  }
  if (!full) return;
  // Merged (B, N, H·D) with the AAS batch maps over a stacked pair.
  const [h, n, d] = [2, 40, 40];
  const q = randn(2 * n * h * d, seed++);
  const k = randn(2 * n * h * d, seed++);
  const v = randn(2 * n * h * d, seed++);
  const qBatch = [0, 0, 1, 1];
  const kvBatch = [0, 1, 0, 1];
  const [y] = await read(() => attention(rt.upload(q, [2, n, h * d]), rt.upload(k, [2, n, h * d]), rt.upload(v, [2, n, h * d]), { heads: h, qBatch, kvBatch }));
  const split = (x: Float32Array) => Float32Array.from(refPermute(x, [2, n, h, d], [0, 2, 1, 3]));
  const [qs, ks, vs] = [split(round16(q.map((x) => x / Math.sqrt(d)))), split(round16(k)), split(round16(v))];
  const per = h * n * d;
  for (let i = 0; i < 4; i++) {
    const pick = (x: Float32Array, bi: number) => x.slice(bi * per, (bi + 1) * per);
    const ref = refAttention(pick(qs, qBatch[i]!), pick(ks, kvBatch[i]!), pick(vs, kvBatch[i]!), 1, h, n, n, d, 1, false);
    const merged = refPermute(ref, [1, h, n, d], [0, 2, 1, 3]);
    assertClose(y!.slice(i * per, (i + 1) * per), merged, tol, `${label} attention merged, map ${qBatch[i]}→${kvBatch[i]}`);
  }
}

/** Every GEMM form on `rt`, checked against the f16-rounded references with tolerance `tol`. */
async function checkAll(rt: Runtime, tol: number, label: string, full = true): Promise<void> {
  let seed = 100;
  if (!full) {
    // The tiling alone: ragged linear, a strided conv, a transposed batched matmul.
    const [m, k, n] = [70, 40, 130];
    const x = randn(m * k, seed++);
    const w = randn(n * k, seed++, 0.3);
    const [y] = await read(() => linear(rt.upload(x, [m, k]), rt.upload(w, [n, k])));
    assertClose(y!, refLinear(round16(x), round16(w), m, k, n), tol, `${label} linear ${m}x${k}x${n}`);
    const c: ConvShape = { b: 1, cin: 8, h: 12, w: 10, cout: 17, kh: 3, kw: 3, stride: 2, pad: [0, 1, 0, 1] };
    const xc = randn(c.b * c.cin * c.h * c.w, seed++);
    const wc = randn(c.cout * c.cin * 9, seed++, 0.3);
    const [yc] = await read(() => conv2d(rt.upload(xc, [c.b, c.cin, c.h, c.w]), rt.upload(wc, [c.cout, c.cin, 3, 3]), { stride: 2, padding: c.pad }));
    assertClose(yc!, refConv(round16(xc), round16(wc), c), tol, `${label} conv 3x3 stride 2`);
    const [batch, mm, kk, nn] = [3, 33, 40, 18];
    const a = randn(batch * mm * kk, seed++);
    const bm = randn(batch * kk * nn, seed++, 0.5);
    const [ym] = await read(() => matmul(rt.upload(a, [batch, mm, kk]), rt.upload(bm, [batch, nn, kk]), { transposeB: true }));
    assertClose(ym!, refMatmul(round16(a), round16(bm), batch, mm, kk, nn, true, true), tol, `${label} matmul transposeB`);
    return;
  }
  // linear: ragged M, N, K around the tiles; f32 weights (rounded while staged) and f16 weights.
  for (const [m, k, n] of [
    [16, 16, 16],
    [17, 33, 65],
    [70, 40, 130],
    [129, 72, 20],
  ] as [number, number, number][]) {
    const x = randn(m * k, seed++);
    const w = randn(n * k, seed++, 0.3);
    const [y] = await read(() => linear(rt.upload(x, [m, k]), rt.upload(w, [n, k])));
    assertClose(y!, refLinear(round16(x), round16(w), m, k, n), tol, `${label} linear ${m}x${k}x${n}`);
    const [y16] = await read(() => linear(rt.upload(x, [m, k]), rt.upload(f32ArrayToF16(w), [n, k], 'f16')));
    assertClose(y16!, refLinear(round16(x), round16(w), m, k, n), tol, `${label} linear f16 weights ${m}x${k}x${n}`);
  }
  // linear epilogues: bias, activation, residual, leading batch dims.
  {
    const [b, t, k, n] = [2, 19, 48, 40];
    const x = randn(b * t * k, seed++);
    const w = randn(n * k, seed++, 0.3);
    const bias = randn(n, seed++);
    const res = randn(b * t * n, seed++);
    for (const act of ['gelu', 'silu'] as ActName[]) {
      const [y] = await read(() => linear(rt.upload(x, [b, t, k]), rt.upload(w, [n, k]), { bias: rt.upload(bias, [n]), act, residual: rt.upload(res, [b, t, n]) }));
      assertClose(y!, refLinear(round16(x), round16(w), b * t, k, n, bias, act, res), tol, `${label} linear ${act} + bias + residual`);
    }
  }
  // Fused q/k/v: three outputs from one GEMM.
  {
    const [m, k, n] = [37, 32, 24];
    const x = randn(m * k, seed++);
    const w = randn(3 * n * k, seed++, 0.3);
    const bias = randn(3 * n, seed++);
    const parts = await read(() => linearSplit(rt.upload(x, [m, k]), rt.upload(w, [3 * n, k]), 3, rt.upload(bias, [3 * n])));
    const full = refLinear(round16(x), round16(w), m, k, 3 * n, bias);
    for (let p = 0; p < 3; p++) {
      const expect = new Float64Array(m * n);
      for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) expect[i * n + j] = full[i * 3 * n + p * n + j]!;
      assertClose(parts[p]!, expect, tol, `${label} linearSplit part ${p}`);
    }
  }
  // Batched matmul, B row-major and transposed (attention-shaped).
  for (const transposeB of [false, true]) {
    const [batch, m, k, n] = [3, 33, 40, 18];
    const a = randn(batch * m * k, seed++);
    const bm = randn(batch * k * n, seed++, 0.5);
    const [y] = await read(() => matmul(rt.upload(a, [batch, m, k]), rt.upload(bm, transposeB ? [batch, n, k] : [batch, k, n]), { transposeB }));
    assertClose(y!, refMatmul(round16(a), round16(bm), batch, m, k, n, true, transposeB), tol, `${label} matmul transposeB=${transposeB}`);
  }
  // conv2d: 3×3 with padding, stride 2 with the VAE's asymmetric padding, bias + batch bias + residual.
  const convs: (ConvShape & { name: string })[] = [
    { name: '3x3 pad 1', b: 2, cin: 6, h: 9, w: 11, cout: 20, kh: 3, kw: 3, stride: 1, pad: [1, 1, 1, 1] },
    { name: '3x3 stride 2 pad (0,1,0,1)', b: 1, cin: 8, h: 12, w: 10, cout: 17, kh: 3, kw: 3, stride: 2, pad: [0, 1, 0, 1] },
    { name: '1x1', b: 2, cin: 24, h: 5, w: 7, cout: 33, kh: 1, kw: 1, stride: 1, pad: [0, 0, 0, 0] },
  ];
  for (const c of convs) {
    const x = randn(c.b * c.cin * c.h * c.w, seed++);
    const w = randn(c.cout * c.cin * c.kh * c.kw, seed++, 0.3);
    const bias = randn(c.cout, seed++);
    const [y] = await read(() => conv2d(rt.upload(x, [c.b, c.cin, c.h, c.w]), rt.upload(f32ArrayToF16(w), [c.cout, c.cin, c.kh, c.kw], 'f16'), { bias: rt.upload(bias, [c.cout]), stride: c.stride, padding: c.pad }));
    assertClose(y!, refConv(round16(x), round16(w), c, bias), tol, `${label} conv ${c.name}`);
  }
  {
    // ResNet conv1: bias + time-embedding batch bias + SiLU-free; then a residual.
    const c: ConvShape = { b: 2, cin: 16, h: 6, w: 6, cout: 24, kh: 3, kw: 3, stride: 1, pad: [1, 1, 1, 1] };
    const x = randn(c.b * c.cin * 36, seed++);
    const w = randn(c.cout * c.cin * 9, seed++, 0.3);
    const bias = randn(c.cout, seed++);
    const bb = randn(c.b * c.cout, seed++);
    const res = randn(c.b * c.cout * 36, seed++);
    const [y] = await read(() => conv2d(rt.upload(x, [2, 16, 6, 6]), rt.upload(w, [24, 16, 3, 3]), { bias: rt.upload(bias, [24]), batchBias: rt.upload(bb, [2, 24]), padding: 1, residual: rt.upload(res, [2, 24, 6, 6]) }));
    const ref = refConv(round16(x), round16(w), c, bias, res);
    for (let bi = 0; bi < 2; bi++) for (let co = 0; co < 24; co++) for (let i = 0; i < 36; i++) ref[(bi * 24 + co) * 36 + i]! += bb[bi * 24 + co]!;
    assertClose(y!, ref, tol, `${label} conv + batch bias + residual`);
  }
  {
    // 1×1 to token rows (proj_in) and from token rows (proj_out).
    const [b, cin, h, w, cout] = [2, 32, 4, 5, 24];
    const x = randn(b * cin * h * w, seed++);
    const wt = randn(cout * cin, seed++, 0.3);
    const [tok] = await read(() => conv2d(rt.upload(x, [b, cin, h, w]), rt.upload(wt, [cout, cin, 1, 1]), { tokensOut: true }));
    const nchw = refConv(round16(x), round16(wt), { b, cin, h, w, cout, kh: 1, kw: 1, stride: 1, pad: [0, 0, 0, 0] });
    const expectTok = new Float64Array(b * h * w * cout);
    for (let bi = 0; bi < b; bi++) for (let co = 0; co < cout; co++) for (let i = 0; i < h * w; i++) expectTok[(bi * h * w + i) * cout + co] = nchw[(bi * cout + co) * h * w + i]!;
    assertClose(tok!, expectTok, tol, `${label} conv 1x1 tokensOut`);
    const tokens = randn(b * h * w * cin, seed++);
    const [img] = await read(() => conv1x1FromTokens(rt.upload(tokens, [b, h * w, cin]), rt.upload(wt, [cout, cin, 1, 1]), h, w));
    const asImage = new Float32Array(b * cin * h * w);
    for (let bi = 0; bi < b; bi++) for (let i = 0; i < h * w; i++) for (let ci = 0; ci < cin; ci++) asImage[(bi * cin + ci) * h * w + i] = tokens[(bi * h * w + i) * cin + ci]!;
    assertClose(img!, refConv(round16(asImage), round16(wt), { b, cin, h, w, cout, kh: 1, kw: 1, stride: 1, pad: [0, 0, 0, 0] }), tol, `${label} conv1x1FromTokens`);
  }
}

// Every GEMM form on NVIDIA's shape with the medium tile; the tiling alone on the large tile and on
// Apple's 8×8×8 (each runtime compiles its pipelines anew, which is slow on a CPU adapter).
for (const [shape, tile, full] of [
  ['16x16x16', 'medium', true],
  ['16x16x16', 'large', false],
  ['8x8x8', 'medium', false],
] as const) {
  test(`emulated subgroup matrices ${shape}, tile ${tile}: ${full ? 'every GEMM form' : 'linear, strided conv, transposed matmul'}`, async () => {
    const rt = await Runtime.create({ tensorCores: 'emulate', flags: { tcShape: shape, tcTile: tile } });
    try {
      assert.ok(rt.subgroupMatrix, 'the emulated subgroup matrices need shader-f16');
      assert.equal(rt.subgroupMatrix!.syntax, 'emulated');
      await checkAll(rt, EMULATED_TOL, `emulated ${shape} ${tile}`, full);
      if (tile === 'medium') await checkAttention(rt, ATTENTION_TOL, `emulated ${shape}`, full);
    } finally {
      rt.destroy();
    }
  });
}

test('the emulated GEMM path is really taken: its result differs from the f32 kernel by the f16 rounding', async () => {
  const [m, k, n] = [40, 64, 48];
  const x = randn(m * k, 7);
  const w = randn(n * k, 8, 0.3);
  const run = async (mode: 'emulate' | 'off') => {
    const rt = await Runtime.create({ tensorCores: mode });
    try {
      return (await read(() => linear(rt.upload(x, [m, k]), rt.upload(w, [n, k]))))[0]!;
    } finally {
      rt.destroy();
    }
  };
  const [fast, exact] = [await run('emulate'), await run('off')];
  assertClose(exact, refLinear(x, w, m, k, n), 1e-5, 'f32 kernel');
  assertClose(fast, refLinear(round16(x), round16(w), m, k, n), EMULATED_TOL, 'emulated kernel');
  let differ = 0;
  for (let i = 0; i < fast.length; i++) if (fast[i] !== exact[i]) differ++;
  assert.ok(differ > fast.length / 2, `only ${differ} of ${fast.length} outputs differ: the f32 kernel ran`);
});

const probe = await Runtime.create({ tensorCores: 'on' });
const native = probe.subgroupMatrix;
probe.destroy();
(native ? test : test.skip)(`native subgroup matrices (${native ? `${native.M}x${native.N}x${native.K}, ${native.syntax} syntax` : 'absent on this adapter'}), both tiles: every GEMM form`, async () => {
  for (const tile of ['medium', 'large'] as const) {
    const rt = await Runtime.create({ tensorCores: 'on', flags: { tcTile: tile } });
    try {
      await checkAll(rt, NATIVE_TOL, `native ${tile}`);
      if (tile === 'medium') await checkAttention(rt, ATTENTION_TOL, 'native');
    } finally {
      rt.destroy();
    }
  }
});

test('tensorCores rejects an unknown mode by name', async () => {
  let message = '';
  try {
    await Runtime.create({ tensorCores: 'fast' as 'on' });
  } catch (e) {
    message = (e as Error).message;
  }
  assert.match(message, /tensorCores \(DIFFSIM_TENSOR_CORES\): expected one of auto, on, off, emulate, got 'fast'/);
});

test.run();
