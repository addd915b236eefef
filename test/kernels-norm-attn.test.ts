// GroupNorm, LayerNorm, softmax and attention against float64 references.
// Tolerances: norms and softmax ≤ 1e-5, attention ≤ 1e-5 (normalised error, fp32 accumulation).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { groupNorm, layerNorm, softmax } from '../src/kernels/norm.js';
import { attention } from '../src/kernels/attention.js';
import { permute } from '../src/kernels/layout.js';
import { assertClose, randn, rejects, runtime, block, take } from './helpers.js';
import { refAttention, refGroupNorm, refLayerNorm, refPermute, refSoftmax } from './reference.js';

test('groupNorm: groups 1, C and in between; spatial 1 and odd; fused SiLU; eps; SD1.5 320×64² shape', async () => {
  const rt = await runtime();
  const cases: [number, number, number[], number, number][] = [
    [1, 4, [1, 1], 1, 1e-5],
    [2, 6, [3, 5], 3, 1e-6],
    [2, 8, [7], 8, 1e-5],
    [1, 32, [4, 4], 8, 1e-5],
    [2, 320, [64, 64], 32, 1e-5],
  ];
  let seed = 100;
  for (const [b, c, spatialShape, groups, eps] of cases) {
    for (const silu of [false, true]) {
      await block(async () => {
        const spatial = spatialShape.reduce((a, d) => a * d, 1);
        // Offset the data so a one-pass variance would lose accuracy.
        const x = randn(b * c * spatial, seed++).map((v) => v * 3 + 20);
        const w = randn(c, seed++);
        const bias = randn(c, seed++);
        const y = await groupNorm(rt.upload(x, [b, c, ...spatialShape]), rt.upload(w, [c]), rt.upload(bias, [c]), { groups, eps, silu });
        assertClose((await y.read()) as Float32Array, refGroupNorm(x, b, c, spatial, groups, w, bias, eps, silu), 1e-5, `GN b${b} c${c} ${spatialShape} g${groups} silu=${silu}`);
      });
    }
  }
});

test('layerNorm: C = 1, 7, 32, 320, 1280; rows 1..154', async () => {
  const rt = await runtime();
  let seed = 200;
  for (const [rows, c] of [[1, 1], [3, 7], [154, 32], [77, 320], [5, 1280]] as const) {
    await block(async () => {
      const x = randn(rows * c, seed++).map((v) => v * 2 - 5);
      const w = randn(c, seed++);
      const bias = randn(c, seed++);
      const y = await layerNorm(rt.upload(x, [rows, c]), rt.upload(w, [c]), rt.upload(bias, [c]), 1e-5);
      assertClose((await y.read()) as Float32Array, refLayerNorm(x, c, w, bias, 1e-5), 1e-5, `LN ${rows}x${c}`);
    });
  }
});

test('softmax over the last axis: lengths 1, 5, 77, 1000, 4097; scale; large logits', async () => {
  const rt = await runtime();
  let seed = 300;
  for (const [rows, c, scale] of [[1, 1, 1], [3, 5, 1], [8, 77, 0.125], [2, 1000, 1], [2, 4097, 3]] as const) {
    await block(async () => {
      const x = randn(rows * c, seed++, 10);
      const y = await softmax(rt.upload(x, [rows, c]), scale);
      assertClose((await y.read()) as Float32Array, refSoftmax(x, c, scale), 1e-5, `softmax ${rows}x${c}`);
    });
  }
});

const ATTN: [string, number, number, number, number, number, boolean][] = [
  // label, batch, heads, nq, nk, headDim, causal
  ['single token', 1, 1, 1, 1, 8, false],
  ['nq ≠ nk (cross-attention, 7 text tokens)', 2, 8, 37, 7, 4, false],
  ['odd sizes', 2, 3, 45, 33, 40, false],
  ['head dim 80', 1, 2, 70, 65, 80, false],
  ['head dim 160 (SD1.5 up_blocks.1)', 2, 2, 40, 40, 160, false],
  ['head dim 64 (IP-Adapter resampler 16 queries)', 2, 12, 16, 273, 64, false],
  ['causal CLIP text 77 tokens', 2, 4, 77, 77, 8, true],
  ['causal, head dim 64', 1, 2, 77, 77, 64, true],
  ['N ≥ 1024 (tiled, no N×N scores)', 1, 2, 1100, 1100, 40, false],
  ['head dim 512, one head (VAE mid-block)', 1, 1, 70, 70, 512, false],
  ['head dim 300 (not a multiple of the slice)', 2, 1, 33, 20, 300, false],
];

for (const layout of ['split', 'merged'] as const) {
  test(`attention (${layout} layout): ${ATTN.map((a) => a[0]).join('; ')}`, async () => {
    const rt = await runtime();
    let seed = 400;
    for (const [label, b, h, nq, nk, d, causal] of ATTN) {
      await block(async () => {
        const q = randn(b * h * nq * d, seed++);
        const k = randn(b * h * nk * d, seed++);
        const v = randn(b * h * nk * d, seed++);
        const scale = 1 / Math.sqrt(d);
        const ref = refAttention(q, k, v, b, h, nq, nk, d, scale, causal);
        if (layout === 'split') {
          const o = await attention(rt.upload(q, [b, h, nq, d]), rt.upload(k, [b, h, nk, d]), rt.upload(v, [b, h, nk, d]), { heads: h, causal, layout: 'split' });
          assert.equal(o.shape, [b, h, nq, d]);
          assertClose((await o.read()) as Float32Array, ref, 1e-5, `${label} split`);
        } else {
          // (B, N, H·D) inputs from the split reference data.
          const merge = (x: Float32Array, n: number) => permute(rt.upload(x, [b, h, n, d]), [0, 2, 1, 3]).reshape([b, n, h * d]);
          const o = attention(merge(q, nq), merge(k, nk), merge(v, nk), { heads: h, causal });
          assert.equal(o.shape, [b, nq, h * d]);
          assertClose((await o.read()) as Float32Array, refPermute(ref, [b, h, nq, d], [0, 2, 1, 3]), 1e-5, `${label} merged`);
        }
      });
    }
  });
}

test('attention rejects mismatched shapes clearly', async () => {
  const rt = await runtime();
  await block(async () => {
    const q = rt.upload(randn(2 * 4 * 8, 1), [2, 4, 8]);
    const k = rt.upload(randn(2 * 5 * 6, 2), [2, 5, 6]);
    await rejects(() => attention(q, k, k, { heads: 2 }), /do not match/, 'channels');
    await rejects(() => attention(q, q, q, { heads: 3 }), /not divisible by 3 heads/, 'heads');
  });
});

test('attention between batch elements (qBatch/kvBatch maps): O_AA, O_AB, O_BA, O_BB of a stacked pair in one dispatch, merged and split layouts, kv batch ≠ q batch', async () => {
  const rt = await runtime();
  const [h, n, m, d] = [2, 9, 7, 5];
  // q: 2 images; k/v: 3 batch elements (the maps index them freely).
  const q = randn(2 * h * n * d, 41);
  const k = randn(3 * h * m * d, 42);
  const v = randn(3 * h * m * d, 43);
  const qMap = [0, 0, 1, 1, 1];
  const kvMap = [0, 1, 0, 1, 2];
  const per = (x: Float32Array, len: number, i: number) => x.subarray(i * h * len * d, (i + 1) * h * len * d);
  const ref = new Float64Array(qMap.length * h * n * d);
  qMap.forEach((qi, i) => ref.set(refAttention(per(q, n, qi), per(k, m, kvMap[i]!), per(v, m, kvMap[i]!), 1, h, n, m, d, 1 / Math.sqrt(d), false), i * h * n * d));
  const split = await take(attention(rt.upload(q, [2, h, n, d]), rt.upload(k, [3, h, m, d]), rt.upload(v, [3, h, m, d]), { heads: h, layout: 'split', qBatch: qMap, kvBatch: kvMap }));
  assertClose(split, ref, 1e-5, 'split layout with maps');
  const merge = (x: Float32Array, b: number, len: number) => permute(rt.upload(x, [b, h, len, d]), [0, 2, 1, 3]).reshape([b, len, h * d]);
  const merged = await take(attention(merge(q, 2, n), merge(k, 3, m), merge(v, 3, m), { heads: h, qBatch: qMap, kvBatch: kvMap }));
  assertClose(merged, refPermute(ref, [qMap.length, h, n, d], [0, 2, 1, 3]), 1e-5, 'merged layout with maps');
  // Only a kv map: output batch i uses q batch i.
  const onlyKv = await take(attention(rt.upload(q, [2, h, n, d]), rt.upload(k, [3, h, m, d]), rt.upload(v, [3, h, m, d]), { heads: h, layout: 'split', kvBatch: [2, 0] }));
  const refKv = new Float64Array(2 * h * n * d);
  [2, 0].forEach((kv, i) => refKv.set(refAttention(per(q, n, i), per(k, m, kv), per(v, m, kv), 1, h, n, m, d, 1 / Math.sqrt(d), false), i * h * n * d));
  assertClose(onlyKv, refKv, 1e-5, 'kv map only');
  const qt = rt.upload(q, [2, h, n, d]);
  const kt = rt.upload(k, [3, h, m, d]);
  await rejects(() => attention(qt, kt, kt, { heads: h, layout: 'split', qBatch: [0, 2], kvBatch: [0, 1] }), /qBatch \[0, 2\] must index q's 2 batch elements/, 'q index');
  await rejects(() => attention(qt, kt, kt, { heads: h, layout: 'split', qBatch: [0], kvBatch: [0, 1] }), /qBatch has 1 entries, kvBatch 2/, 'lengths');
  await rejects(() => attention(qt, kt, kt, { heads: h, layout: 'split' }), /do not match/, 'batch mismatch without maps');
  await rejects(() => attention(qt, kt, kt, { heads: h, layout: 'split', kvBatch: new Array(17).fill(0) }), /over 16/, 'map length');
  qt.dispose();
  kt.dispose();
});

test.run();
