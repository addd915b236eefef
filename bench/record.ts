// JS cost of recording one DiffSim pair, with nothing handed to the queue: the host work alone
// (model code, tensor bookkeeping, parameter blocks, bind groups, Dawn's encoder calls), without
// the adapter's threads running the previous pair on the same cores. Full-size SD1.5-shaped models
// with random weights, the official defaults; a pair is embed(A) + embed(B) (VAE encode and the U-Net
// stopped after the hooked attn1, each) + the AAS dispatches, the text states cached as in a run.
// Prints ms per pair and µs per dispatch (best of the runs) and writes
// bench/results/record-<adapter>-<S>.json. `--cpu-prof` (a Node flag) before the script name
// writes a V8 CPU profile of the recording.
//
//   node build/bench/record.js [--size 64] [--pairs 20] [--weights f32|f16] [--out DIR]

import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Runtime } from '../src/gpu/runtime.js';
import type { WeightPrecision } from '../src/nn/weights.js';
import { pixels, randomDiffSim, ROOT } from './sd15-random.js';

const argv = process.argv.slice(2);
const arg = (k: string) => (argv.includes(k) ? argv[argv.indexOf(k) + 1] : undefined);
const size = Number(arg('--size') ?? 64);
const pairs = Number(arg('--pairs') ?? 20);
const weights = (arg('--weights') ?? 'f32') as WeightPrecision;
const outDir = arg('--out') ?? join(ROOT, 'bench', 'results');
if (!Number.isInteger(size) || size < 8 || size % 8 !== 0) throw new Error(`--size must be a multiple of 8, got ${arg('--size')}`);
if (!Number.isInteger(pairs) || pairs < 1) throw new Error(`--pairs must be ≥ 1, got ${arg('--pairs')}`);
if (weights !== 'f32' && weights !== 'f16') throw new Error(`--weights must be f32 or f16, got ${weights}`);

const rt = await Runtime.create();
const { metric, dispose } = await randomDiffSim(rt, size, weights);
const pxA = pixels(3 * size * size, 1);
const pxB = pixels(3 * size * size, 2);
const pair = () => {
  const ea = metric.embed(null as never, 'A', { processed: pxA });
  const eb = metric.embed(null as never, 'B', { processed: pxB });
  void metric.compare(ea, eb).catch(() => undefined);
  return () => {
    ea.dispose();
    eb.dispose();
  };
};
// One real pair first: kernels compiled, text states cached, the pool filled.
pair()();
await rt.sync();
// From here on nothing reaches the queue; what is recorded is dropped (its validation errors too).
let bindGroupsMade = 0;
const createBindGroup = rt.device.createBindGroup.bind(rt.device);
rt.device.createBindGroup = (d) => {
  bindGroupsMade++;
  return createBindGroup(d);
};
const queue = rt.device.queue as unknown as { submit(buffers: unknown[]): void };
queue.submit = () => {};
rt.fail = () => {};
const perPair: number[] = [];
const bindGroupsPerPair: number[] = [];
let dispatches = 0;
for (let i = 0; i < pairs; i++) {
  const d0 = rt.dispatchCount;
  const g0 = bindGroupsMade;
  const t0 = performance.now();
  const release = pair();
  rt.flush();
  perPair.push(performance.now() - t0);
  dispatches = rt.dispatchCount - d0;
  bindGroupsPerPair.push(bindGroupsMade - g0);
  release();
  // Let the completion callbacks of the empty submissions run (the pool reuses buffers after them).
  await new Promise((r) => setTimeout(r, 0));
}
const best = Math.min(...perPair);
const median = [...perPair].sort((a, b) => a - b)[Math.floor(perPair.length / 2)]!;
const desc = rt.adapterInfo.description || 'adapter';
const groups = bindGroupsPerPair[bindGroupsPerPair.length - 1]!;
console.log(`${desc}: one pair at ${size}² records ${dispatches} dispatches in ${best.toFixed(1)} ms (median ${median.toFixed(1)} ms over ${pairs}): ${((1000 * best) / dispatches).toFixed(1)} µs per dispatch; bind groups created in the last pair: ${groups}`);
mkdirSync(outDir, { recursive: true });
const slug = desc.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '').slice(0, 40);
const file = join(outDir, `record-${slug}-${size}.json`);
writeFileSync(file, `${JSON.stringify({ adapter: rt.adapterInfo, date: new Date().toISOString(), size, weights, pairs, dispatches, bestMs: best, medianMs: median, usPerDispatch: (1000 * best) / dispatches, bindGroupsPerPair, perPairMs: perPair }, null, 1)}\n`);
console.log(`wrote ${file}`);
dispose();
rt.destroy();
