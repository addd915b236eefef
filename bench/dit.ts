// Full-size DiffSim on DiT benchmark with random weights: DiT-XL/2 at 512 (latent 64, 1024 tokens,
// 28 blocks of width 1152) and the sd-vae-ft-mse VAE encoder (SD1.5's VAE architecture, the
// sd15-vae manifest config), batch 2 = [class, null] from a batch-1 latent. One image's DiffSim pass
// (VAE encode, add_noise, DiT up to the hooked attention's q/k/v) for the default layer 0 and for
// the last block (27, the deepest hook), then a pair's AAS; reports peak GPU memory, dispatches and,
// unless --record-only, times. Ops are recorded synchronously and buffers allocated when recorded,
// so the peak of a pass is known once it is recorded (`--record-only` skips waiting for a slow
// adapter to run it). Writes bench/results/dit-<adapter>.json.
//
//   node build/bench/dit.js [--size 512|256] [--weights f32|f16] [--layers 0,27] [--iters N] [--record-only] [--out DIR]

import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Runtime, tidy } from '../src/gpu/runtime.js';
import { WeightStore, type WeightPrecision } from '../src/nn/weights.js';
import { DiT, DIT_XL_2 } from '../src/models/dit.js';
import { VaeEncoder, type VaeConfig } from '../src/models/vae.js';
import { DiffSimDiT } from '../src/diffsim/dit.js';
import { aasSums, aasOutputs } from '../src/diffsim/aas.js';
import { pixels } from './sd15-random.js';

const here = dirname(fileURLToPath(import.meta.url));
const manifests = join(here, '..', '..', 'test', 'fixtures', 'manifests');

function parse(argv: string[]) {
  const a = { size: 512, weights: 'f16' as WeightPrecision, iters: 3, recordOnly: false, layers: [0, 27], out: join(here, '..', '..', 'bench', 'results') };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i];
    if (k === '--size') a.size = Number(argv[++i]);
    else if (k === '--weights') {
      const w = argv[++i];
      if (w !== 'f32' && w !== 'f16') throw new Error(`--weights must be f32 or f16, got ${w}`);
      a.weights = w;
    } else if (k === '--iters') a.iters = Number(argv[++i]);
    else if (k === '--record-only') a.recordOnly = true;
    else if (k === '--layers') a.layers = argv[++i]!.split(',').map(Number);
    else if (k === '--out') a.out = argv[++i]!;
    else throw new Error(`unknown argument ${k}`);
  }
  if (a.size !== 256 && a.size !== 512) throw new Error('--size must be 256 or 512 (the released DiT-XL/2 sizes)');
  return a;
}

async function main(): Promise<void> {
  const a = parse(process.argv.slice(2));
  const rt = await Runtime.create();
  const desc = rt.adapterInfo.description;
  const mib = (b: number) => Math.round(b / 2 ** 20);
  console.log(`adapter: ${desc}; DiT-XL/2 at ${a.size} (latent ${a.size / 8}), ${a.weights} weights${a.recordOnly ? ', record only' : ''}`);
  const ditStore = new WeightStore();
  const dit = new DiT(ditStore, { ...DIT_XL_2, input_size: a.size / 8 });
  const vaeStore = new WeightStore();
  const vae = new VaeEncoder(vaeStore, JSON.parse(readFileSync(join(manifests, 'sd15-vae.config.json'), 'utf8')) as VaeConfig);
  const t0 = performance.now();
  await ditStore.initRandom(rt, 21, { weights: a.weights });
  await vaeStore.initRandom(rt, 22, { weights: a.weights });
  await rt.trim();
  const initMs = performance.now() - t0;
  const weightsBytes = rt.memory().allocatedBytes;
  console.log(`weights: DiT ${ditStore.parameterCount().toLocaleString('en-US')} + VAE encoder ${vaeStore.parameterCount().toLocaleString('en-US')} parameters, ${mib(weightsBytes)} MiB on the GPU (${(initMs / 1000).toFixed(1)} s to initialise)`);
  const results: Record<string, unknown> = { adapter: rt.adapterInfo, date: new Date().toISOString(), size: a.size, weights: a.weights, recordOnly: a.recordOnly, ditParameters: ditStore.parameterCount(), vaeParameters: vaeStore.parameterCount(), weightsMiB: mib(weightsBytes) };
  if (a.recordOnly) {
    // Record only: the pass's commands are encoded and its buffers allocated (the peak is known then),
    // but nothing is handed to the queue, so no adapter time is spent (a software adapter would
    // otherwise run the 512² VAE inside each submission). Every score after this is meaningless.
    const queue = rt.device.queue as unknown as { submit(buffers: unknown[]): void };
    queue.submit = () => {};
  }
  const S = a.size;
  const img = pixels(3 * S * S, 5);
  const imgB = pixels(3 * S * S, 6);
  const models = { dit, vae, layout: { kind: 'official' as const, file: 'random' } };
  for (const layer of a.layers) {
    const m = new DiffSimDiT(rt, models, { layer, imageSize: S });
    const noise = (role: 'A' | 'B') => m.generatorNoise(role);
    const [nA, nB] = [noise('A'), noise('B')];
    // Record-only: the previous pair may still be running on a slow adapter; its buffers are back in
    // the pool once submitted (queue order makes reuse safe), so the next pair's peak is measured on
    // top of that pool (an upper bound; one layer per process gives it alone).
    if (!a.recordOnly) await rt.trim();
    rt.resetPeak();
    const d0 = rt.dispatchCount;
    const r0 = performance.now();
    // The pair: both embeddings live while the AAS runs, as in a score.
    const ea = m.embed({ width: 1, height: 1, data: new Uint8Array(3) }, 'A', { processed: img, noise: nA });
    const eb = m.embed({ width: 1, height: 1, data: new Uint8Array(3) }, 'B', { processed: imgB, noise: nB });
    const sums = tidy(() => aasSums(aasOutputs(ea, eb, { heads: m.settings.heads })));
    const recordMs = performance.now() - r0;
    const row: Record<string, unknown> = { module: m.settings.module, tModel: m.settings.tModel, dispatches: rt.dispatchCount - d0, recordMs, pairPeakMiB: mib(rt.memory().peakAllocatedBytes) };
    if (!a.recordOnly) {
      await sums.read();
      row.firstPairMs = performance.now() - r0;
    }
    sums.dispose();
    ea.dispose();
    eb.dispose();
    if (!a.recordOnly) {
      const t1 = performance.now();
      for (let i = 0; i < a.iters; i++) {
        const x = m.embed({ width: 1, height: 1, data: new Uint8Array(3) }, 'A', { processed: img, noise: nA });
        await x.q.read();
        x.dispose();
      }
      row.embedMs = (performance.now() - t1) / a.iters;
    }
    results[`layer${layer}`] = row;
    console.log(JSON.stringify(row));
  }
  mkdirSync(a.out, { recursive: true });
  const slug = desc.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '').slice(0, 40);
  const file = join(a.out, `dit-${slug}-${a.size}-${a.weights}${a.recordOnly ? '-record' : ''}.json`);
  writeFileSync(file, `${JSON.stringify(results, null, 2)}\n`);
  console.log(`wrote ${file}`);
  if (a.recordOnly) {
    // The adapter may need minutes to run what was recorded; the numbers are in.
    rt.destroy();
    process.exit(0);
  }
  await rt.close();
  process.exit(0);
}

main().catch((e: unknown) => {
  console.error(`dit bench: ${(e as Error).stack ?? e}`);
  process.exit(1);
});
