// Slow suite: about 14 s of CPU on lavapipe (87 s wall on a shared 2-core machine).
// linear / matmul / conv2d against the float64 references, on awkward and real SD1.5 shapes,
// for every tile configuration. Tolerance: normalised error ≤ 1e-5 (fp32 accumulation).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { conv2d, linear, matmul, GEMM_TILE_NAMES } from '../../src/kernels/matmul.js';
import { f16ArrayToF32, f32ArrayToF16 } from '../../src/platform/half.js';
import type { Runtime } from '../../src/gpu/runtime.js';
import { assertClose, randn, rejects, rng, runtime, block, compute, runtimeWith } from '../support/helpers.js';
import { convOutSize, refConv, refConvAt, refLinear, refMatmul, type ActName, type ConvShape } from '../support/reference.js';

const TOL = 1e-5;
const TILE_NAMES = GEMM_TILE_NAMES;

/** `fn` on a runtime with the tile forced by its flag, or on the shared one (tile chosen by size). */
const withTile = async <T>(tile: (typeof GEMM_TILE_NAMES)[number] | undefined, fn: (rt: Runtime) => Promise<T>): Promise<T> => fn(tile ? await runtimeWith({ gemmTile: tile }) : await runtime());

const AWKWARD: [number, number, number][] = [
  [1, 1, 1],
  [1, 7, 3],
  [3, 5, 7],
  [17, 13, 29],
  [31, 37, 41],
  [64, 64, 64],
  [65, 33, 127],
  [129, 130, 17],
  // K a multiple of 4: the vec4 load paths, still with ragged M and N
  [1, 4, 1],
  [3, 8, 5],
  [33, 36, 17],
  [65, 132, 31],
];

for (const tile of TILE_NAMES) {
  test(`linear on awkward shapes, tile ${tile}`, async () => {
    await withTile(tile, async (rt) => {
      let seed = 1;
      for (const [m, k, n] of AWKWARD) {
        await block(async () => {
          const x = randn(m * k, seed++);
          const w = randn(n * k, seed++, 0.3);
          const y = await linear(rt.upload(x, [m, k]), rt.upload(w, [n, k]));
          assert.equal(y.shape, [m, n]);
          assertClose((await y.read()) as Float32Array, refLinear(x, w, m, k, n), TOL, `${tile} ${m}x${k}x${n}`);
        });
      }
    });
  });
}

test('linear epilogues: bias, gelu, gelu_tanh, quick_gelu, silu, residual; leading batch dims', async () => {
  const rt = await runtime();
  const [b, t, k, n] = [2, 7, 33, 19];
  const m = b * t;
  for (const act of ['none', 'gelu', 'gelu_tanh', 'quick_gelu', 'silu'] as ActName[]) {
    for (const withRes of [false, true]) {
      await block(async () => {
        const x = randn(m * k, 11);
        const w = randn(n * k, 12, 0.4);
        const bias = randn(n, 13);
        const res = randn(m * n, 14);
        const y = await linear(rt.upload(x, [b, t, k]), rt.upload(w, [n, k]), {
          bias: rt.upload(bias, [n]),
          act,
          residual: withRes ? rt.upload(res, [b, t, n]) : undefined,
        });
        assert.equal(y.shape, [b, t, n]);
        assertClose((await y.read()) as Float32Array, refLinear(x, w, m, k, n, bias, act, withRes ? res : undefined), TOL, `${act} residual=${withRes}`);
      });
    }
  }
});

test('linear with f16 weights (packed pairs, odd counts) equals f32 math on the rounded weights', async () => {
  const rt = await runtime();
  for (const [m, k, n] of [[5, 3, 3], [33, 77, 65], [8, 320, 40]] as const) {
    await block(async () => {
      const x = randn(m * k, 21);
      const w16 = f32ArrayToF16(randn(n * k, 22, 0.2));
      const y = await linear(rt.upload(x, [m, k]), rt.upload(w16, [n, k], 'f16'));
      assertClose((await y.read()) as Float32Array, refLinear(x, f16ArrayToF32(w16), m, k, n), TOL, `f16 ${m}x${k}x${n}`);
    });
  }
});

test('real SD1.5 linear shapes (512² image): 4096×320→320 and 256×1280→1280 fully, 4096×320→2560 on sampled rows', async () => {
  const rt = await runtime();
  for (const [m, k, n, rows] of [[4096, 320, 320, 4096], [256, 1280, 1280, 256], [4096, 320, 2560, 48]] as const) {
    await block(async () => {
      const x = randn(m * k, 31);
      const w = randn(n * k, 32, 1 / Math.sqrt(k));
      const y = (await compute(() => linear(rt.upload(x, [m, k]), rt.upload(w, [n, k])))) as Float32Array;
      const pick = rng(33);
      const rowIds = rows === m ? [...Array(m).keys()] : Array.from({ length: rows }, () => Math.floor(pick() * m));
      const xs = new Float32Array(rowIds.length * k);
      const ys = new Float32Array(rowIds.length * n);
      rowIds.forEach((r, i) => {
        xs.set(x.subarray(r * k, (r + 1) * k), i * k);
        ys.set(y.subarray(r * n, (r + 1) * n), i * n);
      });
      assertClose(ys, refLinear(xs, w, rowIds.length, k, n), TOL, `${m}x${k}→${n}`);
    });
  }
});

test('batched matmul: broadcast and batched B, transposed B, awkward shapes', async () => {
  const rt = await runtime();
  let seed = 40;
  for (const [batch, m, k, n] of [[1, 1, 1, 1], [3, 5, 7, 9], [2, 33, 17, 65], [4, 16, 40, 77], [2, 9, 12, 20], [3, 70, 64, 132]] as const) {
    for (const bBatched of [false, true]) {
      for (const transposeB of [false, true]) {
        await block(async () => {
          const a = randn(batch * m * k, seed++);
          const b = randn((bBatched ? batch : 1) * k * n, seed++);
          const bShape = bBatched ? (transposeB ? [batch, n, k] : [batch, k, n]) : transposeB ? [n, k] : [k, n];
          const y = await matmul(rt.upload(a, [batch, m, k]), rt.upload(b, bShape), { transposeB });
          assert.equal(y.shape, [batch, m, n]);
          assertClose((await y.read()) as Float32Array, refMatmul(a, b, batch, m, k, n, bBatched, transposeB), TOL, `matmul ${batch}x${m}x${k}x${n} bBatched=${bBatched} T=${transposeB}`);
        });
      }
    }
  }
});

const CONV_CASES: (ConvShape & { label: string })[] = [
  { label: '1x1', b: 2, cin: 3, h: 5, w: 7, cout: 4, kh: 1, kw: 1, stride: 1, pad: [0, 0, 0, 0] },
  { label: '3x3 pad1', b: 2, cin: 5, h: 9, w: 6, cout: 7, kh: 3, kw: 3, stride: 1, pad: [1, 1, 1, 1] },
  { label: '3x3 s2 pad1', b: 1, cin: 4, h: 11, w: 8, cout: 3, kh: 3, kw: 3, stride: 2, pad: [1, 1, 1, 1] },
  { label: '3x3 s2 pad(0,1,0,1) VAE downsampler', b: 2, cin: 6, h: 8, w: 10, cout: 6, kh: 3, kw: 3, stride: 2, pad: [0, 1, 0, 1] },
  { label: '3x3 on 1x1 input', b: 1, cin: 3, h: 1, w: 1, cout: 2, kh: 3, kw: 3, stride: 1, pad: [1, 1, 1, 1] },
  { label: 'cin 1, 3x3 no pad', b: 3, cin: 1, h: 4, w: 4, cout: 1, kh: 3, kw: 3, stride: 1, pad: [0, 0, 0, 0] },
  { label: 'patch embed 14x14 s14', b: 2, cin: 3, h: 28, w: 42, cout: 8, kh: 14, kw: 14, stride: 14, pad: [0, 0, 0, 0] },
  { label: 'prime sizes', b: 1, cin: 13, h: 17, w: 19, cout: 11, kh: 3, kw: 3, stride: 1, pad: [1, 1, 1, 1] },
];

for (const tile of [undefined, ...TILE_NAMES]) {
  test(`conv2d: kernels 1/3/14, strides 1/2/14, symmetric and asymmetric padding, tile ${tile ?? 'auto'}`, async () => {
    await withTile(tile, async (rt) => {
      let seed = 50;
      for (const c of CONV_CASES) {
        await block(async () => {
          const x = randn(c.b * c.cin * c.h * c.w, seed++);
          const w = randn(c.cout * c.cin * c.kh * c.kw, seed++, 0.3);
          const bias = randn(c.cout, seed++);
          const [oh, ow] = convOutSize(c);
          const res = randn(c.b * c.cout * oh * ow, seed++);
          const y = await conv2d(rt.upload(x, [c.b, c.cin, c.h, c.w]), rt.upload(w, [c.cout, c.cin, c.kh, c.kw]), {
            bias: rt.upload(bias, [c.cout]),
            stride: c.stride,
            padding: c.pad,
            residual: rt.upload(res, [c.b, c.cout, oh, ow]),
          });
          assert.equal(y.shape, [c.b, c.cout, oh, ow], c.label);
          assertClose((await y.read()) as Float32Array, refConv(x, w, c, bias, res), TOL, `${c.label} (tile ${tile ?? 'auto'})`);
        });
      }
    });
  });
}

test('conv2d with f16 weights', async () => {
  const rt = await runtime();
  const c: ConvShape = { b: 1, cin: 5, h: 6, w: 7, cout: 3, kh: 3, kw: 3, stride: 1, pad: [1, 1, 1, 1] };
  const x = randn(c.cin * c.h * c.w, 60);
  const w16 = f32ArrayToF16(randn(c.cout * c.cin * 9, 61, 0.3));
  await block(async () => {
    const y = await conv2d(rt.upload(x, [1, 5, 6, 7]), rt.upload(w16, [3, 5, 3, 3], 'f16'), { padding: 1 });
    assertClose((await y.read()) as Float32Array, refConv(x, f16ArrayToF32(w16), c), TOL, 'f16 conv');
  });
});

test('real SD1.5 conv shapes on sampled outputs: 16²×1280→1280 3×3 and the VAE downsampler 64²×128 s2', async () => {
  const rt = await runtime();
  const cases: ConvShape[] = [
    { b: 1, cin: 1280, h: 16, w: 16, cout: 1280, kh: 3, kw: 3, stride: 1, pad: [1, 1, 1, 1] },
    { b: 1, cin: 128, h: 64, w: 64, cout: 128, kh: 3, kw: 3, stride: 2, pad: [0, 1, 0, 1] },
  ];
  for (const c of cases) {
    await block(async () => {
      const x = randn(c.b * c.cin * c.h * c.w, 70);
      const w = randn(c.cout * c.cin * 9, 71, 1 / Math.sqrt(c.cin * 9));
      const bias = randn(c.cout, 72);
      const y = (await compute(() => conv2d(rt.upload(x, [c.b, c.cin, c.h, c.w]), rt.upload(w, [c.cout, c.cin, 3, 3]), { bias: rt.upload(bias, [c.cout]), stride: c.stride, padding: c.pad }))) as Float32Array;
      const [oh, ow] = convOutSize(c);
      const pick = rng(73);
      const got: number[] = [];
      const want: number[] = [];
      for (let s = 0; s < 3000; s++) {
        const co = Math.floor(pick() * c.cout);
        // Always include the padded border rows/columns.
        const oy = s % 7 === 0 ? oh - 1 : Math.floor(pick() * oh);
        const ox = s % 5 === 0 ? ow - 1 : Math.floor(pick() * ow);
        got.push(y[(co * oh + oy) * ow + ox]!);
        want.push(refConvAt(x, w, c, 0, co, oy, ox, bias));
      }
      assertClose(got, want, TOL, `conv ${c.cin}@${c.h}x${c.w} s${c.stride}`);
    });
  }
});

test('shape errors name the operands', async () => {
  const rt = await runtime();
  await block(async () => {
    await rejects(() => linear(rt.upload(randn(6, 1), [2, 3]), rt.upload(randn(8, 1), [2, 4])), /linear: input \[2, 3\] does not end in 4/, 'linear');
    await rejects(() => matmul(rt.upload(randn(6, 1), [2, 3]), rt.upload(randn(8, 1), [4, 2])), /inner dimensions differ/, 'matmul');
    await rejects(() => conv2d(rt.upload(randn(16, 1), [1, 1, 4, 4]), rt.upload(randn(18, 1), [1, 2, 3, 3])), /input has 1 channels/, 'conv');
    await rejects(() => conv2d(rt.upload(randn(4, 1), [1, 1, 2, 2]), rt.upload(randn(9, 1), [1, 1, 3, 3])), /larger than padded input/, 'conv size');
    await rejects(() => conv2d(rt.upload(randn(16, 1), [1, 1, 4, 4]), rt.upload(randn(9, 1), [1, 1, 3, 3]), { stride: 1.5 }), /stride must be an integer ≥ 1, got 1.5/, 'fractional stride');
    await rejects(() => conv2d(rt.upload(randn(16, 1), [1, 1, 4, 4]), rt.upload(randn(9, 1), [1, 1, 3, 3]), { padding: 0.5 }), /padding must be non-negative integers/, 'fractional padding');
  });
});

test('empty reductions: linear and matmul with K = 0 give act(bias) (+ residual), as PyTorch does', async () => {
  const rt = await runtime();
  const x = rt.upload(new Float32Array(0), [3, 0]);
  const w = rt.upload(new Float32Array(0), [4, 0]);
  assert.equal([...(await compute(() => linear(x, w)))], new Array(12).fill(0));
  const bias = [0.5, -1, 2, 0];
  const res = randn(12, 3);
  const y = await compute(() => linear(x, w, { bias: rt.upload(bias, [4]), act: 'silu', residual: rt.upload(res, [3, 4]) }));
  const silu = (v: number) => v / (1 + Math.exp(-v));
  assertClose(y, Array.from({ length: 12 }, (_, i) => silu(bias[i % 4]!) + res[i]!), 1e-6, 'K = 0 with bias, silu, residual');
  const m = await compute(() => matmul(rt.upload(new Float32Array(0), [2, 3, 0]), rt.upload(new Float32Array(0), [2, 0, 5])));
  assert.equal([...m], new Array(30).fill(0));
  x.dispose();
  w.dispose();
});

test.run();
