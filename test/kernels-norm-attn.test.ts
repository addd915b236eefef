// GroupNorm, LayerNorm, softmax and attention against float64 references.
// Tolerances: norms and softmax ≤ 1e-5, attention ≤ 1e-5 (normalised error, fp32 accumulation).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { groupNorm, layerNorm, softmax } from '../src/kernels/norm.js';
import { attention } from '../src/kernels/attention.js';
import { permute } from '../src/kernels/layout.js';
import { assertClose, randn, rejects, runtime } from './helpers.js';
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
      await rt.scope(async () => {
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
    await rt.scope(async () => {
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
    await rt.scope(async () => {
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
      await rt.scope(async () => {
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
          const merge = async (x: Float32Array, n: number) => permute(rt.upload(x, [b, h, n, d]), [0, 2, 1, 3]).then((t) => t.reshape([b, n, h * d]));
          const o = await attention(await merge(q, nq), await merge(k, nk), await merge(v, nk), { heads: h, causal });
          assert.equal(o.shape, [b, nq, h * d]);
          assertClose((await o.read()) as Float32Array, refPermute(ref, [b, h, nq, d], [0, 2, 1, 3]), 1e-5, `${label} merged`);
        }
      });
    }
  });
}

test('attention rejects mismatched shapes clearly', async () => {
  const rt = await runtime();
  await rt.scope(async () => {
    const q = rt.upload(randn(2 * 4 * 8, 1), [2, 4, 8]);
    const k = rt.upload(randn(2 * 5 * 6, 2), [2, 5, 6]);
    await rejects(() => attention(q, k, k, { heads: 2 }), /do not match/, 'channels');
    await rejects(() => attention(q, q, q, { heads: 3 }), /not divisible by 3 heads/, 'heads');
  });
});

test.run();
