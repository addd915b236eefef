// Peak GPU memory of one full-size DiffSim-on-SDXL embedding (diffsim-xl's defaults: 512 px, the
// up_blocks.0 hook, CFG batch 2, early stop), with seeded random weights in the shapes of the
// manifests (test/fixtures/manifests/sdxl-*), measured when the pass is recorded: buffers are
// allocated at record time, so the number is known without waiting for a slow adapter to run it.
//
//   node build/bench/sdxl-memory.js [--weights f16|f32] [--size 512] [--out DIR] [--no-fill]
//
// --no-fill allocates the weights as the random ones but leaves them zero: the same buffers, so the
// same peak, without running 3.5 G fills on a slow adapter.

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

const a = { weights: 'f16' as WeightPrecision, size: 512, out: '', fill: true };
for (let i = 2; i < process.argv.length; i++) {
  const k = process.argv[i];
  const v = process.argv[i + 1];
  if (k === '--no-fill') {
    a.fill = false;
    continue;
  }
  if (k === '--weights' && v) a.weights = v as WeightPrecision;
  else if (k === '--size' && v) a.size = Number(v);
  else if (k === '--out' && v) a.out = v;
  else continue;
  i++;
}
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
const metric = new DiffSim(rt, { unet, vae, textEncoder, tokenizer: tok, scheduler, xl: { textEncoder2, tokenizer2: tok2, forceZerosForEmptyPrompt: true } }, { imageSize: a.size });
stage('models built');
rt.resetPeak();
const t0 = performance.now();
const img = { width: a.size, height: a.size, data: new Uint8Array(a.size * a.size * 3) };
const e = metric.embed(img, 'A', { processed: pixels(3 * a.size * a.size, 5) });
stage('pass recorded');
const result = {
  adapter: rt.adapterInfo.description,
  weights: a.weights,
  filled: a.fill,
  imageSize: a.size,
  module: metric.settings.module,
  parameters: stores.reduce((n, s) => n + s.parameterCount(), 0),
  weightsMiB: mib(weightsBytes),
  peakMiB: mib(rt.memory().peakAllocatedBytes),
  recordMs: Math.round(performance.now() - t0),
};
console.log(JSON.stringify(result, null, 1));
if (a.out) {
  mkdirSync(a.out, { recursive: true });
  writeFileSync(join(a.out, `sdxl-memory-${a.weights}.json`), `${JSON.stringify(result, null, 1)}\n`);
}
e.dispose();
// Record-only: the adapter may need minutes to run what was recorded; the numbers are in.
process.exit(0);
