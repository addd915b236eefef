// Elementwise, layout, embedding, resize and reduction kernels against TypeScript references.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { binary, broadcastShapes, geglu, unary } from '../../src/kernels/elementwise.js';
import { concat, mergeHeads, nchwToTokens, permute, resizeNearest, slice, splitHeads, tokensToNchw, upsampleNearest2x } from '../../src/kernels/layout.js';
import { embeddingLookup, timestepEmbedding } from '../../src/kernels/embedding.js';
import { resizeBicubic } from '../../src/kernels/resize.js';
import { cosineSimilarity, meanSquaredError, pairStats } from '../../src/kernels/reduce.js';
import { assertClose, randn, rejects, runtime, block, compute, take } from '../support/helpers.js';
import { act, refBicubic, refPermute, refTimestepEmbedding } from '../support/reference.js';

test('activations: gelu (erf form) over ±12 and special values, gelu_tanh, quick_gelu, silu; affine; tolerance 2e-7 abs + 1e-6 rel', async () => {
  const rt = await runtime();
  const xs = new Float32Array([...Array.from({ length: 4801 }, (_, i) => -12 + i * 0.005), 0, -0, 1e-30, -1e-30, 30, -30, 88, -88]);
  for (const name of ['gelu', 'gelu_tanh', 'quick_gelu', 'silu', 'relu', 'none'] as const) {
    await block(async () => {
      const y = (await compute(() => unary(rt.upload(xs, [xs.length]), name, 1.5, -0.25))) as Float32Array;
      for (let i = 0; i < xs.length; i++) {
        const ref = act[name](Math.fround(xs[i]! * 1.5 - 0.25));
        const err = Math.abs(y[i]! - ref);
        assert.ok(err <= 2e-7 + 1e-6 * Math.abs(ref), `${name}(${xs[i]}): ${y[i]} vs ${ref}`);
      }
    });
  }
});

test('binary ops with NumPy broadcasting (bias per channel, scalars, both sides), alpha/beta', async () => {
  const rt = await runtime();
  const cases: [number[], number[]][] = [
    [[2, 3, 4], [2, 3, 4]],
    [[2, 3, 4], [4]],
    [[2, 3, 4, 5], [1, 3, 1, 1]],
    [[1], [7, 1, 3]],
    [[5, 1], [1, 6]],
    [[2, 1, 3, 1, 2, 2], [1, 4, 1, 5, 1, 2]],
  ];
  let seed = 500;
  for (const [sa, sb] of cases) {
    for (const op of ['add', 'sub', 'mul', 'div'] as const) {
      await block(async () => {
        const na = sa.reduce((p, d) => p * d, 1);
        const nb = sb.reduce((p, d) => p * d, 1);
        const a = randn(na, seed++);
        const b = randn(nb, seed++).map((v) => (op === 'div' ? Math.sign(v || 1) * (Math.abs(v) + 0.5) : v));
        const out = broadcastShapes(sa, sb);
        const y = await binary(rt.upload(a, sa), rt.upload(b, sb), op, 0.5, 2);
        assert.equal(y.shape, out);
        const got = (await y.read()) as Float32Array;
        const ref = new Float64Array(got.length);
        const idx = (shape: number[], coord: number[]) => {
          let off = 0;
          for (let d = 0; d < shape.length; d++) {
            const c = coord[coord.length - shape.length + d]!;
            off = off * shape[d]! + (shape[d] === 1 ? 0 : c);
          }
          return off;
        };
        for (let i = 0; i < ref.length; i++) {
          const coord: number[] = [];
          let r = i;
          for (let d = out.length - 1; d >= 0; d--) {
            coord.unshift(r % out[d]!);
            r = Math.floor(r / out[d]!);
          }
          const x = 0.5 * a[idx(sa, coord)]!;
          const z = 2 * b[idx(sb, coord)]!;
          ref[i] = op === 'add' ? x + z : op === 'sub' ? x - z : op === 'mul' ? x * z : x / z;
        }
        assertClose(got, ref, 1e-6, `${op} ${sa} ${sb}`);
      });
    }
  }
  assert.throws(() => broadcastShapes([2, 3], [4]), /do not broadcast/);
});

test('geglu: first half times gelu(second half)', async () => {
  const rt = await runtime();
  await block(async () => {
    const [b, n, c] = [2, 5, 13];
    const x = randn(b * n * 2 * c, 600, 2);
    const y = (await compute(() => geglu(rt.upload(x, [b, n, 2 * c])))) as Float32Array;
    const ref = new Float64Array(b * n * c);
    for (let r = 0; r < b * n; r++) for (let j = 0; j < c; j++) ref[r * c + j] = x[r * 2 * c + j]! * act.gelu(x[r * 2 * c + c + j]!);
    assertClose(y, ref, 1e-6, 'geglu');
  });
});

test('permute (ranks 1–6), slice, concat, nearest ×2, NCHW ↔ tokens, heads split/merge: exact', async () => {
  const rt = await runtime();
  await block(async () => {
    const perms: [number[], number[]][] = [
      [[5], [0]],
      [[3, 4], [1, 0]],
      [[2, 3, 5], [2, 0, 1]],
      [[2, 3, 4, 5], [0, 2, 1, 3]],
      [[2, 1, 3, 2, 3], [4, 3, 2, 1, 0]],
      [[2, 3, 1, 2, 2, 3], [5, 1, 3, 0, 4, 2]],
    ];
    for (const [shape, perm] of perms) {
      const x = randn(shape.reduce((a, d) => a * d, 1), 700 + shape.length);
      const y = await permute(rt.upload(x, shape), perm);
      assert.equal(y.shape, perm.map((p) => shape[p]));
      assert.equal([...((await y.read()) as Float32Array)], [...refPermute(x, shape, perm)].map(Math.fround), `permute ${shape} ${perm}`);
    }
    // slice
    const x = Float32Array.from({ length: 3 * 4 * 5 }, (_, i) => i);
    const s = (await compute(() => slice(rt.upload(x, [3, 4, 5]), [1, 0, 2], [2, -1, 3]))) as Float32Array;
    const sref: number[] = [];
    for (let i = 1; i < 3; i++) for (let j = 0; j < 4; j++) for (let k = 2; k < 5; k++) sref.push(i * 20 + j * 5 + k);
    assert.equal([...s], sref);
    await rejects(() => slice(rt.upload(x, [3, 4, 5]), [2, 0, 0], [2, 1, 1]), /outside/, 'slice range');
    // concat along channels (skip connections) and along the last axis
    const a = randn(2 * 3 * 4, 710);
    const b = randn(2 * 5 * 4, 711);
    const c = (await compute(() => concat([rt.upload(a, [2, 3, 2, 2]), rt.upload(b, [2, 5, 2, 2])], 1))) as Float32Array;
    const cref: number[] = [];
    for (let n = 0; n < 2; n++) cref.push(...a.subarray(n * 12, n * 12 + 12), ...b.subarray(n * 20, n * 20 + 20));
    assert.equal([...c], cref);
    const ints = await concat([rt.upload(Int32Array.from([1, 2]), [1, 2], 'i32'), rt.upload(Int32Array.from([3]), [1, 1], 'i32')], -1);
    assert.equal([...((await ints.read()) as Int32Array)], [1, 2, 3]);
    // nearest ×2
    const u = (await compute(() => upsampleNearest2x(rt.upload([1, 2, 3, 4, 5, 6], [1, 1, 2, 3])))) as Float32Array;
    assert.equal([...u], [1, 1, 2, 2, 3, 3, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 4, 4, 5, 5, 6, 6]);
    // NCHW ↔ tokens: token n = y·W + x
    const img = Float32Array.from({ length: 2 * 3 * 2 * 4 }, (_, i) => i);
    const tok = await nchwToTokens(rt.upload(img, [2, 3, 2, 4]));
    assert.equal(tok.shape, [2, 8, 3]);
    const tv = (await tok.read()) as Float32Array;
    assert.is(tv[(1 * 8 + 5) * 3 + 2], img[((1 * 3 + 2) * 2 + 1) * 4 + 1]);
    const back = (await compute(() => tokensToNchw(tok, 2, 4))) as Float32Array;
    assert.equal([...back], [...img]);
    // heads: channel c = head·D + d
    const qm = randn(2 * 5 * 12, 720);
    const split = await splitHeads(rt.upload(qm, [2, 5, 12]), 3);
    assert.equal(split.shape, [2, 3, 5, 4]);
    const sv = (await split.read()) as Float32Array;
    assert.is(sv[((1 * 3 + 2) * 5 + 4) * 4 + 1], qm[(1 * 5 + 4) * 12 + 2 * 4 + 1]);
    assert.equal([...((await compute(() => mergeHeads(split))) as Float32Array)], [...qm]);
  });
});

test("timestep embedding: diffusers' conventions (flip_sin_to_cos, shift 0/1, odd dim), t up to 1000; abs ≤ 2e-6", async () => {
  const rt = await runtime();
  const ts = [0, 1, 2, 101, 251, 401, 501, 999, 1000];
  for (const [dim, flip, shift] of [[320, true, 0], [32, true, 0], [33, false, 1], [8, false, 0]] as const) {
    await block(async () => {
      const y = (await compute(() => timestepEmbedding(rt.upload(ts, [ts.length]), dim, { flipSinToCos: flip, downscaleFreqShift: shift }))) as Float32Array;
      const ref = refTimestepEmbedding(ts, dim, flip, shift);
      let worst = 0;
      for (let i = 0; i < y.length; i++) worst = Math.max(worst, Math.abs(y[i]! - ref[i]!));
      // float32 argument rounding (t·freq up to 1000) bounds the agreement with float64 at ~6e-5;
      // against float32 arguments the kernel is exact to 2e-6.
      assert.ok(worst <= 1e-4, `dim ${dim}: worst ${worst}`);
      const half = Math.floor(dim / 2);
      let worst32 = 0;
      for (let b = 0; b < ts.length; b++)
        for (let j = 0; j < half; j++) {
          const e = Math.fround(Math.fround(Math.fround(-Math.log(10000)) * j) / Math.fround(half - shift));
          const arg = Math.fround(ts[b]! * Math.fround(Math.exp(e)));
          const s = Math.sin(arg);
          const c = Math.cos(arg);
          worst32 = Math.max(worst32, Math.abs(y[b * dim + j]! - (flip ? c : s)), Math.abs(y[b * dim + half + j]! - (flip ? s : c)));
        }
      assert.ok(worst32 <= 2e-6, `dim ${dim}: worst vs float32 arguments ${worst32}`);
      if (dim % 2) for (let b = 0; b < ts.length; b++) assert.is(y[b * dim + dim - 1], 0);
    });
  }
});

test('nearest resize to any size = torch interpolate(size, mode="nearest"): up, down, non-integer ratios, ×2', async () => {
  const rt = await runtime();
  for (const [h, w, oh, ow] of [[2, 2, 3, 3], [3, 5, 6, 10], [5, 4, 3, 7], [3, 3, 6, 6], [7, 2, 12, 1]] as const) {
    const x = randn(2 * h * w, 70 + h * w);
    const y = await compute(() => resizeNearest(rt.upload(x, [1, 2, h, w]), oh, ow));
    const ref: number[] = [];
    const sy = Math.fround(h / oh);
    const sx = Math.fround(w / ow);
    for (let p = 0; p < 2; p++)
      for (let i = 0; i < oh; i++)
        for (let j = 0; j < ow; j++) ref.push(x[(p * h + Math.min(Math.floor(Math.fround(i * sy)), h - 1)) * w + Math.min(Math.floor(Math.fround(j * sx)), w - 1)]!);
    assert.equal([...y], ref, `${h}x${w} → ${oh}x${ow}`);
  }
});

test('bicubic resize = torch interpolate(bicubic, align_corners=False): up, down, non-square, explicit scale', async () => {
  const rt = await runtime();
  const cases: [number, number, number, number, number, number?, number?][] = [
    [2, 4, 4, 16, 16],
    [1, 4, 4, 5, 3, 4 / 5.1, 4 / 3.1],
    [3, 37, 37, 16, 16],
    [1, 1, 1, 3, 2],
    [2, 7, 5, 7, 5],
  ];
  let seed = 800;
  for (const [planes, h, w, oh, ow, sy, sx] of cases) {
    await block(async () => {
      const x = randn(planes * h * w, seed++);
      const opts = sy === undefined ? {} : { scaleY: sy, scaleX: sx! };
      const y = (await compute(() => resizeBicubic(rt.upload(x, [1, planes, h, w]), oh, ow, opts))) as Float32Array;
      assertClose(y, refBicubic(x, planes, h, w, oh, ow, Math.fround(sy ?? h / oh), Math.fround(sx ?? w / ow)), 1e-5, `bicubic ${h}x${w}→${oh}x${ow}`);
    });
  }
});

test('cosine similarity and MSE over whole tensors (1 to 2²¹ elements); abs ≤ 1e-6 cosine, rel ≤ 1e-5 mse', async () => {
  const rt = await runtime();
  for (const n of [1, 7, 1000, 65537, 1 << 21]) {
    await block(async () => {
      const a = randn(n, 900 + n);
      const b = Float32Array.from(randn(n, 901 + n), (v, i) => 0.8 * a[i]! + 0.6 * v);
      let dot = 0, aa = 0, bb = 0, sq = 0;
      for (let i = 0; i < n; i++) {
        dot += a[i]! * b[i]!;
        aa += a[i]! ** 2;
        bb += b[i]! ** 2;
        sq += (a[i]! - b[i]!) ** 2;
      }
      const ta = rt.upload(a, [n]);
      const tb = rt.upload(b, [n]);
      const cos = (await take(cosineSimilarity(ta, tb)))[0]!;
      const mse = (await take(meanSquaredError(ta, tb)))[0]!;
      assert.ok(Math.abs(cos - dot / Math.sqrt(aa * bb)) <= 1e-6, `cos n=${n}: ${cos} vs ${dot / Math.sqrt(aa * bb)}`);
      assert.ok(Math.abs(mse - sq / n) <= 1e-5 * (sq / n) + 1e-12, `mse n=${n}: ${mse} vs ${sq / n}`);
      const s = await pairStats(ta, tb);
      assert.is(s.count, n);
    });
  }
  await rejects(async () => cosineSimilarity(rt.upload([1, 2], [2]), rt.upload([1], [1])), /differ in size/, 'size mismatch');
});

test('embedding lookup from a table split in row blocks; out-of-vocabulary ids are rejected', async () => {
  const rt = await runtime();
  await block(async () => {
    const [vocab, d] = [11, 6];
    const table = randn(vocab * d, 950);
    const ids = Int32Array.from([0, 10, 5, 4, 5]);
    const blocks = [rt.upload(table.subarray(0, 4 * d), [4, d]), rt.upload(table.subarray(4 * d, 8 * d), [4, d]), rt.upload(table.subarray(8 * d), [3, d])];
    const y = await embeddingLookup(ids, [1, 5], blocks, 4);
    assert.equal(y.shape, [1, 5, d]);
    const ref: number[] = [];
    for (const id of ids) ref.push(...table.subarray(id * d, id * d + d));
    assert.equal([...((await y.read()) as Float32Array)], ref);
    await rejects(() => embeddingLookup(Int32Array.from([11]), [1], blocks, 4), /id 11 at position 0 outside the vocabulary of 11/, 'oov');
  });
});

test.run();
