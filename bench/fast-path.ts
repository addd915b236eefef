// How far the fast path (f16 weights, GEMMs, convolutions and attention on f16 subgroup matrices,
// f16 activations unless --activations f32) moves the
// DiffSim score from the f32 path, on SD1.5-shaped models with the same random weights: N seeded
// images are embedded once per role on each path, every ordered pair is scored, and every triplet
// (ref, a, b) is decided as the benchmarks decide it (a wins when s(ref, a) > s(ref, b)). Reports
// the largest absolute and relative score difference and how many 2AFC decisions differ, with the
// smallest f32 margin |s(ref, a) − s(ref, b)| among the triplets (decisions closer than the
// score difference can flip legitimately). JSON to bench/results/fastpath-<adapter>-<S>.json.
//
//   node build/bench/fast-path.js [--size S] [--images N] [--fast on|emulate] [--activations f16|f32] [--out DIR]
//
// `--fast emulate` runs the subgroup-matrix kernels with the builtins written out in WGSL (an
// adapter without the feature, slow); `on` needs an adapter that offers f16 subgroup matrices.

import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Runtime } from '../src/gpu/runtime.js';
import type { DiffSimEmbedding } from '../src/diffsim/embedding.js';
import { pixels, randomDiffSim, ROOT } from './sd15-random.js';

function parse(argv: string[]) {
  const a = { size: 512, images: 6, fast: 'on' as 'on' | 'emulate', activations: 'f16' as 'f16' | 'f32', out: join(ROOT, 'bench', 'results') };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i];
    if (k === '--size') a.size = Number(argv[++i]);
    else if (k === '--images') a.images = Number(argv[++i]);
    else if (k === '--out') a.out = argv[++i]!;
    else if (k === '--fast') {
      const f = argv[++i];
      if (f !== 'on' && f !== 'emulate') throw new Error(`--fast must be on or emulate, got ${f}`);
      a.fast = f;
    } else if (k === '--activations') {
      const d = argv[++i];
      if (d !== 'f16' && d !== 'f32') throw new Error(`--activations must be f16 or f32, got ${d}`);
      a.activations = d;
    } else throw new Error(`unknown argument ${k}`);
  }
  if (!Number.isInteger(a.size) || a.size < 8 || a.size % 8 !== 0) throw new Error(`--size must be a multiple of 8, got ${a.size}`);
  if (!Number.isInteger(a.images) || a.images < 3) throw new Error(`--images must be ≥ 3, got ${a.images}`);
  return a;
}

/** Every ordered pair's score s[i][j] = compare(embed(i, A), embed(j, B)) on one path. */
async function scores(rt: Runtime, size: number, weights: 'f32' | 'f16', activations: 'f32' | 'f16', n: number): Promise<{ s: number[][]; ms: number }> {
  const model = await randomDiffSim(rt, size, weights, activations);
  const t0 = performance.now();
  const asA: DiffSimEmbedding[] = [];
  const asB: DiffSimEmbedding[] = [];
  const s: number[][] = [];
  try {
    for (let i = 0; i < n; i++) {
      const px = pixels(3 * size * size, 100 + i);
      asA.push(model.metric.embed(null as never, 'A', { processed: px }));
      asB.push(model.metric.embed(null as never, 'B', { processed: px }));
      await rt.sync();
    }
    for (let i = 0; i < n; i++) {
      s.push([]);
      for (let j = 0; j < n; j++) s[i]!.push(i === j ? NaN : await model.metric.compare(asA[i]!, asB[j]!));
    }
  } finally {
    for (const e of [...asA, ...asB]) e.dispose();
    model.dispose();
  }
  return { s, ms: performance.now() - t0 };
}

async function main(): Promise<void> {
  const a = parse(process.argv.slice(2));
  const exactRt = await Runtime.create({ tensorCores: 'off' });
  const desc = exactRt.adapterInfo.description || 'adapter';
  console.error(`f32 path: ${a.images} images at ${a.size}², f32 weights, SIMT kernels`);
  const exact = await scores(exactRt, a.size, 'f32', 'f32', a.images);
  await exactRt.close();
  const fastRt = await Runtime.create({ tensorCores: a.fast });
  const sm = fastRt.subgroupMatrix;
  if (!sm) {
    await fastRt.close();
    throw new Error(`--fast ${a.fast}: this adapter offers no f16 subgroup matrices (${desc})`);
  }
  console.error(`fast path: f16 weights, ${a.activations} activations, subgroup matrices ${sm.M}x${sm.N}x${sm.K} (${sm.syntax})`);
  const fast = await scores(fastRt, a.size, 'f16', a.activations, a.images);
  await fastRt.close();

  let maxAbs = 0;
  let maxRel = 0;
  for (let i = 0; i < a.images; i++)
    for (let j = 0; j < a.images; j++) {
      if (i === j) continue;
      const d = Math.abs(fast.s[i]![j]! - exact.s[i]![j]!);
      maxAbs = Math.max(maxAbs, d);
      maxRel = Math.max(maxRel, d / Math.max(Math.abs(exact.s[i]![j]!), 1e-12));
    }
  let triplets = 0;
  let flipped = 0;
  let minMargin = Infinity;
  const flips: { ref: number; a: number; b: number; exactMargin: number; fastMargin: number }[] = [];
  for (let r = 0; r < a.images; r++)
    for (let x = 0; x < a.images; x++)
      for (let y = x + 1; y < a.images; y++) {
        if (x === r || y === r) continue;
        triplets++;
        const me = exact.s[r]![x]! - exact.s[r]![y]!;
        const mf = fast.s[r]![x]! - fast.s[r]![y]!;
        minMargin = Math.min(minMargin, Math.abs(me));
        if (me > 0 !== mf > 0) {
          flipped++;
          flips.push({ ref: r, a: x, b: y, exactMargin: me, fastMargin: mf });
        }
      }
  const result = {
    adapter: desc,
    date: new Date().toISOString(),
    size: a.size,
    images: a.images,
    fast: { weights: 'f16', activations: a.activations, tensorCores: a.fast, subgroupMatrix: sm },
    pairs: a.images * (a.images - 1),
    maxAbsScoreDiff: maxAbs,
    maxRelScoreDiff: maxRel,
    triplets,
    decisionsDiffer: flipped,
    minExactMargin: minMargin,
    flips,
    exactMs: exact.ms,
    fastMs: fast.ms,
    exactScores: exact.s,
    fastScores: fast.s,
  };
  console.log(`| ${desc} | ${a.size}², ${a.images} images |`);
  console.log('|---|---|');
  console.log(`| fast path | f16 weights, ${a.activations} activations, subgroup matrices ${sm.M}x${sm.N}x${sm.K} (${sm.syntax}) |`);
  console.log(`| max |Δ score| over ${result.pairs} pairs | ${maxAbs.toExponential(2)} (relative ${maxRel.toExponential(2)}) |`);
  console.log(`| 2AFC decisions that differ | ${flipped} of ${triplets} (smallest f32 margin ${minMargin.toExponential(2)}) |`);
  const slug = desc.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '').slice(0, 40);
  mkdirSync(a.out, { recursive: true });
  const file = join(a.out, `fastpath-${slug}-${a.size}${a.activations === 'f32' ? '-f32act' : ''}${a.fast === 'emulate' ? '-emulated' : ''}.json`);
  writeFileSync(file, `${JSON.stringify(result, null, 2)}\n`);
  console.log(`wrote ${file}`);
  process.exit(0);
}

main().catch((e: unknown) => {
  console.error(`fast-path bench: ${(e as Error).stack ?? e}`);
  process.exit(1);
});
