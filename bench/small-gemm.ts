// The SIMT GEMM tiles, workgroup-memory and lane (matmul-lanes.ts), on the GEMM shapes of a DiffSim
// pair at a 64² image: the VAE's first level (128 channels at 64², batch 1), the U-Net at latent 8²
// (batch 2), whose deepest levels have 16, 4 and 1 pixels, an attention projection over its 128
// tokens and the time-embedding projections' 2 rows: each shape with each tile (one runtime per
// forced `gemmTile`), the GPU time of one launch from timestamps
// (src/gpu/profile.ts), interleaved over rounds and the best kept, since a shared machine's load
// comes and goes. Prints a table and writes bench/results/small-gemm-<adapter>.json.
//
//   node build/bench/small-gemm.js [--rounds R] [--tiles small,n2,…] [--shapes 0,2,…] [--out DIR]

import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Runtime, type Tensor } from '../src/gpu/runtime.js';
import { profileStage } from '../src/gpu/profile.js';
import { conv2d, linear, TILES } from '../src/kernels/matmul.js';
import { LANE_TILES } from '../src/kernels/matmul-lanes.js';
import { pixels, ROOT } from './sd15-random.js';

const argv = process.argv.slice(2);
const arg = (k: string) => (argv.includes(k) ? argv[argv.indexOf(k) + 1] : undefined);
const rounds = Number(arg('--rounds') ?? 3);
const tiles = (arg('--tiles') ?? ['auto', 'medium', 'small', 'n2', 'n4', 'n16', 'm8', ...Object.keys(LANE_TILES)].join(',')).split(',') as ('auto' | keyof typeof TILES | keyof typeof LANE_TILES)[];
const outDir = arg('--out') ?? join(ROOT, 'bench', 'results');

interface Shape {
  name: string;
  flops: number;
  make(rt: Runtime): { run(): void; dispose(): void };
}

function conv(name: string, cin: number, cout: number, hw: number, k: number, batch = 2): Shape {
  return {
    name,
    flops: 2 * batch * cout * hw * hw * cin * k * k,
    make(rt) {
      const x = rt.upload(pixels(batch * cin * hw * hw, 1), [batch, cin, hw, hw]);
      const w = rt.upload(pixels(cout * cin * k * k, 2).map((v) => v * 0.01), [cout, cin, k, k]);
      const b = rt.upload(pixels(cout, 3), [cout]);
      return { run: () => conv2d(x, w, { bias: b, padding: (k - 1) / 2 }).dispose(), dispose: () => [x, w, b].forEach((t: Tensor) => t.dispose()) };
    },
  };
}

function lin(name: string, m: number, n: number, k: number): Shape {
  return {
    name,
    flops: 2 * m * n * k,
    make(rt) {
      const x = rt.upload(pixels(m * k, 1), [m, k]);
      const w = rt.upload(pixels(n * k, 2).map((v) => v * 0.01), [n, k]);
      const b = rt.upload(pixels(n, 3), [n]);
      return { run: () => linear(x, w, { bias: b }).dispose(), dispose: () => [x, w, b].forEach((t: Tensor) => t.dispose()) };
    },
  };
}

const SHAPES: Shape[] = [
  conv('conv3x3 128→128 at 64×64, batch 1 (N=4096: the VAE encoder at a 64² image)', 128, 128, 64, 3, 1),
  conv('conv3x3 320→320 at 8×8 (N=64: down_blocks.0, up_blocks.3)', 320, 320, 8, 3),
  lin('linear 320→320, M=128 (attention projections at latent 8²)', 128, 320, 320),
  conv('conv3x3 1280→1280 at 1×1 (N=1: down_blocks.3, mid_block, up_blocks.0)', 1280, 1280, 1, 3),
  conv('conv3x3 2560→1280 at 2×2 (N=4: up_blocks.1 conv1)', 2560, 1280, 2, 3),
  conv('conv3x3 640→640 at 4×4 (N=16: down_blocks.1)', 640, 640, 4, 3),
  conv('conv1x1 1280→1280 at 1×1 (N=1: proj_in/proj_out)', 1280, 1280, 1, 1),
  lin('linear 1280→1280, M=2 (time_emb_proj)', 2, 1280, 1280),
];
const picked = arg('--shapes')?.split(',').map(Number);

const runtimes = new Map<string, Runtime>();
for (const t of tiles) runtimes.set(t, await Runtime.create({ tensorCores: 'off', flags: { gemmTile: t } }));
const adapter = [...runtimes.values()][0]!.adapterInfo.description;
const results: { shape: string; tile: string; kernel: string; ms: number; gflops: number }[] = [];
for (const shape of picked ? SHAPES.filter((_, i) => picked.includes(i)) : SHAPES) {
  const best = new Map<string, { ms: number; kernel: string }>();
  const made = new Map([...runtimes].map(([t, rt]) => [t, shape.make(rt)]));
  for (const [t, m] of made) {
    m.run(); // compiled
    await runtimes.get(t)!.sync();
  }
  for (let r = 0; r < rounds; r++) {
    for (const [t, m] of made) {
      const p = await profileStage(runtimes.get(t)!, shape.name, m.run);
      const prev = best.get(t);
      if (!prev || p.gpuMs < prev.ms) best.set(t, { ms: p.gpuMs, kernel: p.byKernel[0]?.name ?? '' });
    }
  }
  for (const m of made.values()) m.dispose();
  console.log(`\n${shape.name} (${(shape.flops / 1e6).toFixed(1)} MFLOP)`);
  for (const [t, b] of best) {
    results.push({ shape: shape.name, tile: t, kernel: b.kernel, ms: b.ms, gflops: shape.flops / b.ms / 1e6 });
    console.log(`  ${t.padEnd(7)} ${b.ms.toFixed(2).padStart(10)} ms  ${(shape.flops / b.ms / 1e6).toFixed(2).padStart(7)} GFLOP/s  ${b.kernel}`);
  }
}
const slug = adapter.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '').slice(0, 40);
mkdirSync(outDir, { recursive: true });
const file = join(outDir, `small-gemm-${slug}.json`);
writeFileSync(file, `${JSON.stringify({ adapter, date: new Date().toISOString(), rounds, note: 'GPU ms from timestamps, best of the rounds; tiles interleaved', results }, null, 2)}\n`);
console.log(`wrote ${file}`);
for (const rt of runtimes.values()) await rt.close();
process.exit(0);
