// JS cost per dispatch: records many tiny kernels (one workgroup each, so GPU time is negligible)
// and reports the host time spent recording them, separately from the final wait for the GPU.
// Writes bench/results/dispatch-<adapter>.json.
//
//   node build/bench/dispatch.js [--count N] [--reps R] [--out DIR]
// (the best of R repetitions of N dispatches: on a shared machine, many short repetitions find the
// uncontended moments)

import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Runtime } from '../src/gpu/runtime.js';
import { add, affine } from '../src/kernels/elementwise.js';
import { linear } from '../src/kernels/matmul.js';

const here = dirname(fileURLToPath(import.meta.url));
const argv = process.argv.slice(2);
const arg = (k: string) => (argv.includes(k) ? argv[argv.indexOf(k) + 1] : undefined);
const count = Number(arg('--count') ?? 20000);
const reps = Number(arg('--reps') ?? 5);
const outDir = arg('--out') ?? join(here, '..', '..', 'bench', 'results');

const rt = await Runtime.create();
const x = rt.upload(new Float32Array([1, 2, 3, 4]), [4]);
const w = rt.upload(new Float32Array(16).fill(0.5), [4, 4]);
const ops: Record<string, () => void> = {
  'affine (elementwise, 1 input)': () => affine(x, 1, 1).dispose(),
  'add (binary, 2 inputs)': () => add(x, x).dispose(),
  'linear (GEMM, weight + bias)': () => linear(x.reshape([1, 4]), w, { bias: x }).dispose(),
};
const rows: { op: string; usPerDispatch: number }[] = [];
for (const [op, call] of Object.entries(ops)) {
  // Warm-up: kernel built, pool populated.
  for (let i = 0; i < 200; i++) call();
  await rt.sync();
  let best = Infinity;
  for (let rep = 0; rep < reps; rep++) {
    const d0 = rt.dispatchCount;
    const t0 = performance.now();
    for (let i = 0; i < count; i++) call();
    const t1 = performance.now();
    await rt.sync();
    best = Math.min(best, ((t1 - t0) * 1000) / (rt.dispatchCount - d0));
  }
  rows.push({ op, usPerDispatch: best });
  console.log(`${op.padEnd(32)} ${best.toFixed(2).padStart(7)} µs of JS per dispatch (best of ${reps} × ${count})`);
}
const desc = rt.adapterInfo.description ?? 'adapter';
const slug = desc.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '').slice(0, 40);
mkdirSync(outDir, { recursive: true });
const file = join(outDir, `dispatch-${slug}.json`);
writeFileSync(file, `${JSON.stringify({ adapter: rt.adapterInfo, date: new Date().toISOString(), count, rows }, null, 2)}\n`);
console.log(`${desc}; wrote ${file}`);
await rt.close();
