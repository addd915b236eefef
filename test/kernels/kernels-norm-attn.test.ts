// Slow suite: about 13 s of CPU on lavapipe (43 s wall on a shared 2-core machine).
// GroupNorm, LayerNorm, softmax and attention against float64 references.
// Tolerances: norms and softmax ≤ 1e-5, attention ≤ 1e-5 (normalised error, fp32 accumulation);
// GroupNorm on data offset by 1000σ ≤ 5e-5 (near the f32 input's own resolution there).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { GN_SINGLE_MAX, groupNorm, groupNormPlan, layerNorm, softmax, type GroupNormOptions } from '../../src/kernels/norm.js';
import { attention } from '../../src/kernels/attention.js';
import { permute } from '../../src/kernels/layout.js';
import { assertClose, randn, rejects, runtime, runtimeWith, block, take } from '../support/helpers.js';
import { refAttention, refGroupNorm, refLayerNorm, refPermute, refSoftmax } from '../support/reference.js';

// GroupNorm cases: [B, C, spatial shape, groups]. Row = one batch element's group, cpg·H·W long.
const GN_CASES: [number, number, number[], number][] = [
  [1, 4, [1, 1], 1], // one group, spatial 1×1
  [3, 5, [1, 1], 5], // channels per group 1 and spatial 1×1: rows of one element (variance 0)
  [2, 8, [7], 8], // channels per group 1, one spatial axis
  [2, 6, [3, 5], 3], // odd sizes
  [2, 12, [9, 11], 4], // odd sizes, rows of 297
  [1, 4, [33, 31], 2], // rows of 2 046: split with chunk 5 gives 410 chunks (> one per invocation)
  [1, 64, [45, 47], 4], // rows of 33 840 > GN_SINGLE_MAX: split by default, 9 chunks, the last partial
];

test(`groupNorm on single and split paths (forced and auto), with and without SiLU: ${GN_CASES.map(([b, c, sp, g]) => `${b}×${c}×${sp.join('×')} g${g}`).join('; ')}; normalised error ≤ 1e-5 against float64`, async () => {
  const rt = await runtime();
  let seed = 100;
  for (const [b, c, spatialShape, groups] of GN_CASES) {
    const spatial = spatialShape.reduce((a, d) => a * d, 1);
    const len = (c / groups) * spatial;
    // Offset the data so a one-pass variance (E[x²] − E[x]²) would lose accuracy.
    const x = randn(b * c * spatial, seed++).map((v) => v * 3 + 20);
    const w = randn(c, seed++);
    const bias = randn(c, seed++);
    const eps = seed % 2 ? 1e-5 : 1e-6;
    const runs: [string, Partial<GroupNormOptions>, 1 | 2][] = [
      ['auto', {}, len > GN_SINGLE_MAX ? 2 : 1],
      ['single', { path: 'single' }, 1],
      ['split', { path: 'split' }, 2],
      // Chunks that straddle channel boundaries, with a partial last chunk.
      ['split chunk 97', { path: 'split', chunk: 97 }, 2],
    ];
    if (len > 300) runs.push(['split chunk 5', { path: 'split', chunk: 5 }, 2]);
    for (const [label, opts, dispatches] of runs) {
      for (const a of ['none', 'silu'] as const) {
        await block(async () => {
          const xt = rt.upload(x, [b, c, ...spatialShape]);
          const wt = rt.upload(w, [c]);
          const bt = rt.upload(bias, [c]);
          const d0 = rt.dispatchCount;
          const y = groupNorm(xt, wt, bt, { groups, eps, act: a, ...opts });
          const what = `GN ${b}×${c}×${spatialShape.join('×')} g${groups} ${label} act=${a}`;
          assert.is(rt.dispatchCount - d0, dispatches, `${what}: dispatches`);
          assertClose(await take(y), refGroupNorm(x, b, c, spatial, groups, w, bias, eps, a), 1e-5, what);
          [xt, wt, bt].forEach((t) => t.dispose());
        });
      }
    }
  }
});

test('groupNorm: SD1.5 down_blocks.0 shape 2×320×64² g32 (rows of 40 960: split by default) against the single path and float64', async () => {
  const rt = await runtime();
  const [b, c, h, g] = [2, 320, 64, 32];
  assert.is(groupNormPlan((c / g) * h * h).path, 'split');
  const x = randn(b * c * h * h, 150).map((v) => v * 3 + 20);
  const w = randn(c, 151);
  const bias = randn(c, 152);
  const ref = refGroupNorm(x, b, c, h * h, g, w, bias, 1e-5, 'silu');
  for (const path of ['auto', 'single'] as const) {
    await block(async () => {
      const y = groupNorm(rt.upload(x, [b, c, h, h]), rt.upload(w, [c]), rt.upload(bias, [c]), { groups: g, eps: 1e-5, act: 'silu', path });
      assertClose(await take(y), ref, 1e-5, `GN SD1.5 ${path}`);
    });
  }
});

test('groupNorm: a large offset (mean 1000, σ 1: var/mean² = 1e-6) stays accurate on both paths (centred variance)', async () => {
  const rt = await runtime();
  const [b, c, h, g] = [2, 8, 40, 2]; // rows of 6 400
  const x = randn(b * c * h * h, 160).map((v) => v + 1000);
  const w = randn(c, 161);
  const bias = randn(c, 162);
  const ref = refGroupNorm(x, b, c, h * h, g, w, bias, 1e-6);
  for (const opts of [{ path: 'single' }, { path: 'split', chunk: 300 }] as const) {
    await block(async () => {
      const y = groupNorm(rt.upload(x, [b, c, h, h]), rt.upload(w, [c]), rt.upload(bias, [c]), { groups: g, eps: 1e-6, ...opts });
      // The f32 input resolves 1000 to ulp 6e-5 (in σ units); measured about 1.3e-5 on lavapipe. A
      // one-pass E[x²] − E[x]² in f32 gives a variance of about 3.6 instead of 1 on these rows.
      assertClose(await take(y), ref, 5e-5, `GN offset 1000 ${opts.path}`);
    });
  }
});

test('groupNorm rejects groups that do not divide the channels, bad weights and chunks; the plan and the groupNorm flag', async () => {
  const rt = await runtime();
  await block(async () => {
    const x = rt.upload(randn(2 * 6 * 9, 170), [2, 6, 3, 3]);
    const w = rt.upload(randn(6, 171), [6]);
    await rejects(() => groupNorm(x, w, w, { groups: 4, eps: 1e-5 }), /6 channels not divisible by 4 groups/, 'groups 4 of 6');
    await rejects(() => groupNorm(x, w, w, { groups: 0, eps: 1e-5 }), /not divisible by 0 groups/, 'groups 0');
    await rejects(() => groupNorm(x, w, w, { groups: 12, eps: 1e-5 }), /not divisible by 12 groups/, 'more groups than channels');
    const w4 = rt.upload(randn(4, 172), [4]);
    await rejects(() => groupNorm(x, w4, w, { groups: 3, eps: 1e-5 }), /must have 6 elements, got 4 and 6/, 'weight size');
    await rejects(() => groupNorm(x.reshape([108]), w, w, { groups: 3, eps: 1e-5 }), /expected \[B, C, \.\.\.\]/, 'rank 1');
    await rejects(() => groupNorm(x, w, w, { groups: 3, eps: 1e-5, path: 'split', chunk: 0 }), /chunk must be a positive integer/, 'chunk 0');
    [x, w, w4].forEach((t) => t.dispose());
  });
  assert.equal(groupNormPlan(GN_SINGLE_MAX), { path: 'single', chunk: GN_SINGLE_MAX, chunks: 1 });
  assert.equal(groupNormPlan(GN_SINGLE_MAX + 1), { path: 'split', chunk: 4096, chunks: 5 });
  // 128 channels / 32 × 512² (the VAE encoder at 512²): 256 chunks of 4 096.
  assert.equal(groupNormPlan(4 * 512 * 512), { path: 'split', chunk: 4096, chunks: 256 });
  // Longer rows get longer chunks, never more than 256 of them.
  assert.equal(groupNormPlan(16 * 512 * 512), { path: 'split', chunk: 16384, chunks: 256 });
  // The runtime's groupNorm flag forces a path where the call leaves it at auto.
  assert.equal(groupNormPlan(1000, {}, 'split:100'), { path: 'split', chunk: 100, chunks: 10 });
  assert.equal(groupNormPlan(1000, { path: 'single' }, 'split:100'), { path: 'single', chunk: 1000, chunks: 1 }, 'an explicit path wins');
  assert.equal(groupNormPlan(1000, { chunk: 250 }, 'split:100'), { path: 'split', chunk: 250, chunks: 4 }, 'an explicit chunk wins');
  assert.equal(groupNormPlan(10 ** 6, {}, 'single').path, 'single');
  assert.equal(groupNormPlan(10, {}, 'split'), { path: 'split', chunk: 4096, chunks: 1 });
  const forced = await runtimeWith({ groupNorm: 'split:4' });
  const x = forced.upload(randn(2 * 6 * 9, 173), [2, 6, 3, 3]);
  const w = forced.upload(randn(6, 174), [6]);
  const d0 = forced.dispatchCount;
  const y = groupNorm(x, w, w, { groups: 3, eps: 1e-5 });
  assert.is(forced.dispatchCount - d0, 2, 'rt.flags.groupNorm split: two dispatches');
  [x, w, y].forEach((t) => t.dispose());
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
