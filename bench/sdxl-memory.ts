// Peak GPU memory of one full-size DiffSim-on-SDXL embedding (CFG batch 2, early stop), with seeded
// random weights in the shapes of the manifests (test/fixtures/manifests/sdxl-*), for each image
// size and hook asked for (default: 512 and 1024 px; diffsim-xl's default hook, up_blocks.0 layer 0
// = up_blocks.0.attentions.2.transformer_blocks.9.attn1 as the official code resolves it, and the
// deepest one, target 1,2,1 = up_blocks.1.attentions.2.transformer_blocks.1.attn1), measured when
// the pass is recorded: buffers are allocated at record time, so the peak is known then.
//
//   node build/bench/sdxl-memory.js [--weights f16|f32] [--sizes 512,1024] [--targets default,1.2.1]
//                                   [--record-only [--assume-max-binding BYTES]] [--out DIR] [--no-fill]
//
// --no-fill allocates the weights as the random ones but leaves them zero: the same buffers, so the
// same peak, without running 3.5 G fills on a slow adapter. --record-only hands nothing to the queue
// (the pass is encoded and its buffers allocated, nothing runs; scores are meaningless), as
// bench/dit.ts: a software adapter would otherwise run a 1024² VAE and U-Net inside the submissions.
// --assume-max-binding (with --record-only) records as if storage bindings up to BYTES were allowed:
// at 1024 px the VAE's [1, 128, 1024, 1024] f32 activation (512 MiB) is over lavapipe's 128 MiB.
// The bind groups over the real limit are invalid (Dawn's validation errors are printed and dropped).
// Each pass starts from an empty pool (the previous pass's buffers destroyed), so its peak is its own.

import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Runtime } from '../src/gpu/runtime.js';
import { WeightStore, type WeightPrecision } from '../src/nn/weights.js';
import { UNet2DConditionModel, type UNetConfig } from '../src/models/unet.js';
import { VaeEncoder, type VaeConfig } from '../src/models/vae.js';
import { ClipTextModel, type ClipTextConfig } from '../src/models/clip-text.js';
import { ClipTokenizer } from '../src/models/clip-tokenizer.js';
import { EulerDiscreteScheduler, type SchedulerConfig } from '../src/models/scheduler.js';
import { DiffSim } from '../src/diffsim/core.js';
import { ROOT, config, pixels } from './sd15-random.js';

const a = { weights: 'f16' as WeightPrecision, sizes: [512, 1024], targets: [[], [1, 2, 1]] as number[][], out: '', fill: true, recordOnly: false, assumeMaxBinding: 0 };
for (let i = 2; i < process.argv.length; i++) {
  const k = process.argv[i];
  const v = process.argv[i + 1];
  if (k === '--no-fill') {
    a.fill = false;
    continue;
  }
  if (k === '--record-only') {
    a.recordOnly = true;
    continue;
  }
  if (k === '--assume-max-binding' && v) {
    a.assumeMaxBinding = Number(v);
    i++;
    continue;
  }
  if (k === '--weights' && v) {
    if (v !== 'f16' && v !== 'f32') throw new Error(`--weights must be f16 or f32, got ${v}`);
    a.weights = v;
  } else if (k === '--size' && v) a.sizes = [Number(v)];
  else if (k === '--sizes' && v) a.sizes = v.split(',').map(Number);
  else if (k === '--targets' && v) a.targets = v.split(',').map((t) => (t === 'default' ? [] : t.split('.').map(Number)));
  else if (k === '--out' && v) a.out = v;
  else throw new Error(`unknown argument ${k}`);
  i++;
}
for (const s of a.sizes) if (!Number.isInteger(s) || s < 64 || s % 64) throw new Error(`--sizes: ${s} is not a multiple of 64`);
const mib = (b: number) => Math.round((b / 2 ** 20) * 10) / 10;

const T0 = performance.now();
const stage = (what: string) => console.error(`[${Math.round((performance.now() - T0) / 1000)} s] ${what}`);
const rt = await Runtime.create();
const stores = [new WeightStore(), new WeightStore(), new WeightStore(), new WeightStore()] as const;
const unet = new UNet2DConditionModel(stores[0], config<UNetConfig>('sdxl-unet'));
const vae = new VaeEncoder(stores[1], config<VaeConfig>('sdxl-vae'));
const textEncoder = new ClipTextModel(stores[2], config<ClipTextConfig>('sdxl-text-encoder'));
const textEncoder2 = new ClipTextModel(stores[3], config<ClipTextConfig>('sdxl-text-encoder-2'), 'text_model', undefined, true);
for (const [i, s] of stores.entries()) {
  await s.initRandom(rt, 21 + i, { weights: a.weights, fill: a.fill });
  stage(`weights of model ${i + 1} of 4`);
}
await rt.trim();
const weightsBytes = rt.memory().allocatedBytes;
// The tiny tokenizers stand in for CLIP's (only token ids enter the encoders).
const tok = await ClipTokenizer.fromDirectory(join(ROOT, 'weights', 'tiny', 'sdxl', 'tokenizer'));
const tok2 = await ClipTokenizer.fromDirectory(join(ROOT, 'weights', 'tiny', 'sdxl', 'tokenizer_2'));
const scheduler = new EulerDiscreteScheduler(config<SchedulerConfig>('sdxl-scheduler'));
stage('models built');
if (a.assumeMaxBinding) {
  // Record only: count the buffers an adapter with larger storage bindings (e.g. 2 GiB on an
  // H100 under Dawn's Vulkan backend) would allocate; this adapter could not bind them, and never does,
  // since nothing is submitted.
  if (!a.recordOnly) throw new Error('--assume-max-binding needs --record-only (nothing may run over the real limit)');
  (rt.limits as Record<string, number>).maxStorageBufferBindingSize = a.assumeMaxBinding;
  // Bind groups over this adapter's real limit are invalid and so are the command buffers that use
  // them; they are never submitted, so their validation errors are dropped instead of failing the
  // runtime. Everything else (allocation, the pool, the flushes that release buffers) runs as usual.
  rt.fail = () => {};
}
if (a.recordOnly) {
  const queue = rt.device.queue as unknown as { submit(buffers: unknown[]): void };
  queue.submit = () => {};
}
const models = { unet, vae, textEncoder, tokenizer: tok, scheduler, xl: { textEncoder2, tokenizer2: tok2, forceZerosForEmptyPrompt: true } };
const passes: Record<string, unknown>[] = [];
for (const size of a.sizes) {
  for (const target of a.targets) {
    const metric = new DiffSim(rt, models, { imageSize: size, target });
    rt.resetPeak();
    const t0 = performance.now();
    const img = { width: size, height: size, data: new Uint8Array(size * size * 3) };
    let e: ReturnType<typeof metric.embed>;
    try {
      e = metric.embed(img, 'A', { processed: pixels(3 * size * size, 5) });
    } catch (err) {
      // An adapter limit (e.g. a tensor over maxStorageBufferBindingSize) is a result too: the pass
      // cannot run on this adapter. Its half-recorded buffers go before the next pass.
      const row = { imageSize: size, target, module: metric.settings.module, error: (err as Error).message, peakMiBBeforeError: mib(rt.memory().peakAllocatedBytes) };
      stage(`pass refused: ${JSON.stringify(row)}`);
      passes.push(row);
      await rt.trim();
      continue;
    }
    const row = { imageSize: size, target, module: metric.settings.module, peakMiB: mib(rt.memory().peakAllocatedBytes), activationsMiB: mib(rt.memory().peakAllocatedBytes - weightsBytes), recordMs: Math.round(performance.now() - t0) };
    stage(`pass recorded: ${JSON.stringify(row)}`);
    passes.push(row);
    e.dispose();
    // The pass's pooled buffers go, so the next pass's peak counts only its own.
    await rt.trim();
  }
}
const result = {
  adapter: rt.adapterInfo.description,
  date: new Date().toISOString(),
  weights: a.weights,
  filled: a.fill,
  recordOnly: a.recordOnly,
  ...(a.assumeMaxBinding ? { assumedMaxStorageBufferBindingSize: a.assumeMaxBinding } : {}),
  maxStorageBufferBindingSize: rt.limits.maxStorageBufferBindingSize,
  maxBufferSize: rt.limits.maxBufferSize,
  parameters: stores.reduce((n, s) => n + s.parameterCount(), 0),
  weightsMiB: mib(weightsBytes),
  passes,
};
console.log(JSON.stringify(result, null, 1));
if (a.out) {
  mkdirSync(a.out, { recursive: true });
  const slug = rt.adapterInfo.description.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '').slice(0, 40);
  writeFileSync(join(a.out, `sdxl-memory-${slug}-${a.weights}${a.recordOnly ? '-record' : ''}${a.assumeMaxBinding ? `-binding${Math.round(a.assumeMaxBinding / 2 ** 20)}m` : ''}.json`), `${JSON.stringify(result, null, 1)}\n`);
}
// The adapter may need minutes to run what was recorded; the numbers are in.
process.exit(0);
