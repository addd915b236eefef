// The fused GEMM epilogues against plain-TypeScript references, on random data and awkward shapes:
// split outputs (fused q/k/v), a per-(batch, channel) bias (conv1 + time embedding), token-layout
// output of a 1×1 conv (proj_in) and a 1×1 conv read from token rows (proj_out). Tolerance as the
// GEMM tests: normalised error ≤ 1e-5 (fp32 accumulation).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { conv1x1FromTokens, conv2d, linear, linearSplit, GEMM_TILE_NAMES } from '../../src/kernels/matmul.js';
import { f16ArrayToF32, f32ArrayToF16 } from '../../src/platform/half.js';
import type { Runtime } from '../../src/gpu/runtime.js';
import { assertClose, block, randn, rejects, runtime, take, runtimeWith } from '../support/helpers.js';
import { convOutSize, refConv, refLinear, refPermute, type ConvShape } from '../support/reference.js';

const TOL = 1e-5;
/** The epilogue tests run on the tile chosen by size (a lane tile on CPU adapters), a workgroup-memory
 *  tile and a lane tile along m. */
const EPILOGUE_TILES: (TileName | undefined)[] = [undefined, 'medium', 'lm2r1'];

/** `fn` on a runtime with the tile forced by its flag, or on the shared one (tile chosen by size). */
type TileName = (typeof GEMM_TILE_NAMES)[number];
const withTile = async <T>(tile: TileName | undefined, fn: (rt: Runtime) => Promise<T>): Promise<T> => fn(tile ? await runtimeWith({ gemmTile: tile }) : await runtime());

// [M, K, n (per part), parts]
const SPLIT_CASES: [number, number, number, number][] = [
  [1, 1, 1, 3],
  [3, 5, 7, 2],
  [17, 13, 29, 3],
  [65, 36, 33, 3],
  [129, 64, 40, 2],
  [70, 320, 32, 3],
];

for (const tile of [undefined, ...GEMM_TILE_NAMES]) {
  test(`linearSplit: parts of x·Wᵀ + b equal the reference linears, tile ${tile ?? 'auto'}`, async () => {
    await withTile(tile, async (rt) => {
      let seed = 300;
      for (const [m, k, n, parts] of SPLIT_CASES) {
        for (const withBias of [false, true]) {
          await block(async () => {
            const x = randn(m * k, seed++);
            const w = randn(parts * n * k, seed++, 0.3);
            const b = randn(parts * n, seed++);
            const outs = linearSplit(rt.upload(x, [m, k]), rt.upload(w, [parts * n, k]), parts, withBias ? rt.upload(b, [parts * n]) : undefined);
            assert.is(outs.length, parts);
            for (let i = 0; i < parts; i++) {
              assert.equal(outs[i]!.shape, [m, n]);
              const wi = w.subarray(i * n * k, (i + 1) * n * k);
              const want = refLinear(x, wi, m, k, n, withBias ? b.subarray(i * n, (i + 1) * n) : undefined);
              assertClose(await take(outs[i]!), want, TOL, `[${m}, ${k}] → ${parts}×${n} part ${i}${withBias ? ' +bias' : ''} (tile ${tile ?? 'auto'})`);
            }
          });
        }
      }
    });
  });
}

test('linearSplit: bit-identical to the separate linears (same sums in the same order); f16 weights; 3-D input; bad splits', async () => {
  const rt = await runtime();
  const [b, t, k, n] = [2, 37, 64, 48];
  const x = rt.upload(randn(b * t * k, 400), [b, t, k]);
  const parts = [0, 1, 2].map((i) => randn(n * k, 401 + i, 0.2));
  const cat = new Float32Array(3 * n * k);
  parts.forEach((p, i) => cat.set(p, i * n * k));
  for (const dtype of ['f32', 'f16'] as const) {
    const data = dtype === 'f16' ? f32ArrayToF16(cat) : cat;
    const outs = linearSplit(x, rt.upload(data, [3 * n, k], dtype), 3);
    for (let i = 0; i < 3; i++) {
      assert.equal(outs[i]!.shape, [b, t, n]);
      const wi = dtype === 'f16' ? f32ArrayToF16(parts[i]!) : parts[i]!;
      const sep = await take(linear(x, rt.upload(wi, [n, k], dtype)));
      const got = await take(outs[i]!);
      assert.ok(got.every((v, j) => v === sep[j]), `${dtype} part ${i}: not identical to the separate linear`);
      const ref = refLinear((await x.read()) as Float32Array, dtype === 'f16' ? f16ArrayToF32(wi as Uint16Array) : parts[i]!, b * t, k, n);
      assertClose(got, ref, TOL, `${dtype} part ${i}`);
    }
  }
  await rejects(() => linearSplit(x, rt.upload(new Float32Array(10 * k), [10, k]), 3), /do not split into 3 parts/, 'parts');
  await rejects(() => linearSplit(x, rt.upload(new Float32Array(9 * 5), [9, 5]), 3), /does not end in 5/, 'K');
  x.dispose();
});

const CONV_CASES: ConvShape[] = [
  { b: 2, cin: 3, h: 5, w: 7, cout: 5, kh: 3, kw: 3, stride: 1, pad: [1, 1, 1, 1] },
  { b: 3, cin: 17, h: 9, w: 4, cout: 33, kh: 3, kw: 3, stride: 1, pad: [1, 1, 1, 1] },
  { b: 2, cin: 32, h: 8, w: 8, cout: 64, kh: 1, kw: 1, stride: 1, pad: [0, 0, 0, 0] },
  { b: 1, cin: 7, h: 11, w: 13, cout: 70, kh: 3, kw: 3, stride: 2, pad: [0, 1, 0, 1] },
];

for (const tile of EPILOGUE_TILES) test(`conv2d batchBias: conv + bias[c] + batchBias[b, c] (then the residual), awkward shapes, tile ${tile ?? 'auto'}`, () => withTile(tile, async (rt) => {
  let seed = 500;
  for (const c of CONV_CASES) {
    await block(async () => {
      const [oh, ow] = convOutSize(c);
      const x = randn(c.b * c.cin * c.h * c.w, seed++);
      const w = randn(c.cout * c.cin * c.kh * c.kw, seed++, 0.3);
      const bias = randn(c.cout, seed++);
      const bb = randn(c.b * c.cout, seed++);
      const res = randn(c.b * c.cout * oh * ow, seed++);
      const want = refConv(x, w, c, bias, res);
      for (let i = 0; i < want.length; i++) want[i]! += bb[Math.floor(i / (oh * ow))]!;
      const y = conv2d(rt.upload(x, [c.b, c.cin, c.h, c.w]), rt.upload(w, [c.cout, c.cin, c.kh, c.kw]), {
        bias: rt.upload(bias, [c.cout]),
        batchBias: rt.upload(bb, [c.b, c.cout]),
        residual: rt.upload(res, [c.b, c.cout, oh, ow]),
        stride: c.stride,
        padding: c.pad,
      });
      assert.equal(y.shape, [c.b, c.cout, oh, ow]);
      assertClose(await take(y), want, TOL, `batchBias ${JSON.stringify(c)}`);
    });
  }
  await rejects(() => conv2d(rt.upload(new Float32Array(2 * 3 * 4), [2, 3, 2, 2]), rt.upload(new Float32Array(15), [5, 3, 1, 1]), { batchBias: rt.upload(new Float32Array(5), [1, 5]) }), /batchBias \[1, 5\] is not \[2, 5\]/, 'batchBias shape');
}));

for (const tile of EPILOGUE_TILES) test(`conv2d tokensOut (1×1): (B, H·W, Cout) rows equal the NCHW conv transposed; refuses 3×3, tile ${tile ?? 'auto'}`, () => withTile(tile, async (rt) => {
  let seed = 600;
  for (const [b, cin, h, w, cout] of [
    [1, 1, 1, 1, 1],
    [2, 5, 3, 7, 9],
    [2, 32, 8, 8, 64],
    [3, 36, 5, 13, 40],
  ] as [number, number, number, number, number][]) {
    await block(async () => {
      const c: ConvShape = { b, cin, h, w, cout, kh: 1, kw: 1, stride: 1, pad: [0, 0, 0, 0] };
      const x = randn(b * cin * h * w, seed++);
      const wt = randn(cout * cin, seed++, 0.3);
      const bias = randn(cout, seed++);
      const y = conv2d(rt.upload(x, [b, cin, h, w]), rt.upload(wt, [cout, cin, 1, 1]), { bias: rt.upload(bias, [cout]), tokensOut: true });
      assert.equal(y.shape, [b, h * w, cout]);
      const want = refPermute(refConv(x, wt, c, bias), [b, cout, h * w], [0, 2, 1]);
      assertClose(await take(y), want, TOL, `tokensOut [${b}, ${cin}, ${h}, ${w}] → ${cout}`);
    });
  }
  await rejects(() => conv2d(rt.upload(new Float32Array(9), [1, 1, 3, 3]), rt.upload(new Float32Array(9), [1, 1, 3, 3]), { tokensOut: true }), /tokensOut needs a 1×1/, '3×3');
}));

for (const tile of EPILOGUE_TILES) test(`conv1x1FromTokens: tokens (B, H·W, Cin) as NCHW → [B, Cout, H, W] + bias + residual; f16 weights, tile ${tile ?? 'auto'}`, () => withTile(tile, async (rt) => {
  let seed = 700;
  for (const [b, cin, h, w, cout] of [
    [1, 1, 1, 1, 1],
    [2, 5, 3, 7, 9],
    [2, 64, 8, 8, 32],
    [3, 36, 5, 13, 40],
  ] as [number, number, number, number, number][]) {
    for (const dtype of ['f32', 'f16'] as const) {
      await block(async () => {
        const c: ConvShape = { b, cin, h, w, cout, kh: 1, kw: 1, stride: 1, pad: [0, 0, 0, 0] };
        const tokens = randn(b * h * w * cin, seed++);
        let wt = randn(cout * cin, seed++, 0.3);
        if (dtype === 'f16') wt = f16ArrayToF32(f32ArrayToF16(wt));
        const bias = randn(cout, seed++);
        const res = randn(b * cout * h * w, seed++);
        const nchw = Float32Array.from(refPermute(tokens, [b, h * w, cin], [0, 2, 1]));
        const y = conv1x1FromTokens(rt.upload(tokens, [b, h * w, cin]), rt.upload(dtype === 'f16' ? f32ArrayToF16(wt) : wt, [cout, cin, 1, 1], dtype), h, w, {
          bias: rt.upload(bias, [cout]),
          residual: rt.upload(res, [b, cout, h, w]),
        });
        assert.equal(y.shape, [b, cout, h, w]);
        assertClose(await take(y), refConv(nchw, wt, c, bias, res), TOL, `fromTokens ${dtype} [${b}, ${h}·${w}, ${cin}] → ${cout}`);
      });
    }
  }
  await rejects(() => conv1x1FromTokens(rt.upload(new Float32Array(12), [1, 4, 3]), rt.upload(new Float32Array(6), [2, 3, 1, 1]), 2, 3), /are not \(B, 2·3, C\)/, 'token count');
}));

test.run();
