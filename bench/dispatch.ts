// JS cost per dispatch: records many tiny kernels (one workgroup each, so GPU time is negligible)
// and reports the host time spent recording them, separately from the final wait for the GPU.
//
//   node build/bench/dispatch.js [--count N] [--out DIR]

import { Runtime } from '../src/gpu/runtime.js';
import { affine } from '../src/kernels/elementwise.js';

const argv = process.argv.slice(2);
const count = Number(argv[argv.indexOf('--count') + 1] ?? 0) || 20000;

const rt = await Runtime.create();
const x = rt.upload(new Float32Array([1, 2, 3, 4]), [4]);
// Warm-up: pipeline compiled, pool populated.
for (let i = 0; i < 200; i++) (await affine(x, 1, 1)).dispose();
await rt.sync();

let best = Infinity;
for (let rep = 0; rep < 5; rep++) {
  const t0 = performance.now();
  for (let i = 0; i < count; i++) (await affine(x, 1, 1)).dispose();
  const t1 = performance.now();
  await rt.sync();
  best = Math.min(best, ((t1 - t0) * 1000) / count);
}
console.log(`${rt.adapterInfo.description ?? ''}: ${best.toFixed(2)} µs of JS per dispatch (best of 5 × ${count})`);
await rt.close();
