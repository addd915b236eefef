// SD1.5-shaped DiffSim models with seeded random weights (the shapes of the manifests in
// test/fixtures/manifests), for the benchmarks: the same seeds give the same weights on any runtime.

import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Runtime } from '../src/gpu/runtime.js';
import { WeightStore, type WeightPrecision } from '../src/nn/weights.js';
import type { ActivationDType } from '../src/kernels/common.js';
import { UNet2DConditionModel, type UNetConfig } from '../src/models/unet.js';
import { VaeEncoder, type VaeConfig } from '../src/models/vae.js';
import { ClipTextModel, type ClipTextConfig } from '../src/models/clip-text.js';
import { ClipTokenizer } from '../src/models/clip-tokenizer.js';
import { PNDMScheduler, type SchedulerConfig } from '../src/models/scheduler.js';
import { DiffSim } from '../src/diffsim/core.js';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const manifests = join(ROOT, 'test', 'fixtures', 'manifests');

export const config = <T>(name: string) => JSON.parse(readFileSync(join(manifests, `${name}.config.json`), 'utf8')) as T;

export interface RandomDiffSim {
  metric: DiffSim;
  unet: UNet2DConditionModel;
  vae: VaeEncoder;
  textEncoder: ClipTextModel;
  tokenizer: ClipTokenizer;
  /** GPU bytes of the weights. */
  weightsBytes: number;
  dispose(): void;
}

export async function randomDiffSim(rt: Runtime, size: number, weights: WeightPrecision, activations: ActivationDType = 'f32'): Promise<RandomDiffSim> {
  const stores = [new WeightStore(), new WeightStore(), new WeightStore()] as const;
  const unet = new UNet2DConditionModel(stores[0], config<UNetConfig>('sd15-unet'), { activations });
  const vae = new VaeEncoder(stores[1], config<VaeConfig>('sd15-vae'), { activations });
  const textEncoder = new ClipTextModel(stores[2], config<ClipTextConfig>('sd15-text-encoder'));
  for (const [i, s] of stores.entries()) await s.initRandom(rt, 11 + i, { weights });
  // Fusing weights at load (q/k/v stacked) leaves the separate copies in the pool: trim them.
  await rt.trim();
  const weightsBytes = rt.memory().allocatedBytes;
  // The tiny tokenizer stands in for CLIP's (only token ids enter the text encoder).
  const tokenizer = await ClipTokenizer.fromDirectory(join(ROOT, 'weights', 'tiny', 'sd15', 'tokenizer'));
  const scheduler = new PNDMScheduler(config<SchedulerConfig>('sd15-scheduler'));
  const metric = new DiffSim(rt, { unet, vae, textEncoder, tokenizer, scheduler }, { imageSize: size });
  return {
    metric,
    unet,
    vae,
    textEncoder,
    tokenizer,
    weightsBytes,
    dispose() {
      metric.dispose();
      for (const st of stores) st.dispose();
    },
  };
}

/** Deterministic pixels in [−1, 1] (a processed image). */
export function pixels(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = s / 2147483648 - 1;
  }
  return out;
}
