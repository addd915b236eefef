// Loading Stable Diffusion 1.5 components from a diffusers-layout folder
// (unet/, vae/, text_encoder/, tokenizer/, scheduler/) or from single files.

import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Runtime } from '../gpu/runtime.js';
import { WeightStore, type WeightLoadProgress, type WeightPrecision } from '../nn/weights.js';
import { findWeights, readJson, withSource } from './files.js';
import { ClipTextModel, type ClipTextConfig } from './clip-text.js';
import { ClipTokenizer } from './clip-tokenizer.js';
import { PNDMScheduler, type SchedulerConfig } from './scheduler.js';
import { UNet2DConditionModel, type UNetConfig } from './unet.js';
import { VaeEncoder, legacyVaeKey, type VaeConfig } from './vae.js';

/** How model loaders store weights on the GPU (see LoadOptions.weights). */
export interface ModelLoadOptions {
  weights?: WeightPrecision;
  /** Progress of each checkpoint's load (tensors and bytes on the GPU). */
  onProgress?: (p: WeightLoadProgress) => void;
}

export async function loadUNet(rt: Runtime, weightsPath: string, config: UNetConfig, o: ModelLoadOptions = {}): Promise<UNet2DConditionModel> {
  const store = new WeightStore();
  const model = new UNet2DConditionModel(store, config);
  await withSource(weightsPath, (src) => store.load(rt, src, { weights: o.weights, onProgress: o.onProgress }));
  return model;
}

export async function loadVaeEncoder(rt: Runtime, weightsPath: string, config: VaeConfig, o: ModelLoadOptions = {}): Promise<VaeEncoder> {
  const store = new WeightStore();
  const model = new VaeEncoder(store, config);
  // A full AutoencoderKL file also holds the decoder, which the metric does not use.
  await withSource(weightsPath, (src) => store.load(rt, src, { rename: legacyVaeKey, ignore: [/^decoder\./, /^post_quant_conv\./], allowSqueeze: true, weights: o.weights, onProgress: o.onProgress }));
  return model;
}

export async function loadTextEncoder(rt: Runtime, weightsPath: string, config: ClipTextConfig, o: ModelLoadOptions = {}): Promise<ClipTextModel> {
  const store = new WeightStore();
  const model = new ClipTextModel(store, config);
  // Older files carry the non-persistent position_ids buffer.
  await withSource(weightsPath, (src) => store.load(rt, src, { ignore: [/embeddings\.position_ids$/], weights: o.weights, onProgress: o.onProgress }));
  return model;
}

export interface StableDiffusion {
  unet?: UNet2DConditionModel;
  vae?: VaeEncoder;
  textEncoder?: ClipTextModel;
  tokenizer?: ClipTokenizer;
  scheduler?: PNDMScheduler;
}

export type Sd15Part = 'unet' | 'vae' | 'text_encoder' | 'tokenizer' | 'scheduler';

/** Loads the requested components of a diffusers-layout SD1.5 folder. */
export async function loadStableDiffusion(rt: Runtime, dir: string, parts: readonly Sd15Part[] = ['unet', 'vae', 'text_encoder', 'tokenizer', 'scheduler'], o: ModelLoadOptions = {}): Promise<StableDiffusion> {
  try {
    if (!(await stat(dir)).isDirectory()) throw new Error('not a folder');
  } catch (e) {
    throw new Error(`${dir}: not a Stable Diffusion folder (${(e as Error).message})`);
  }
  const out: StableDiffusion = {};
  try {
    for (const part of parts) {
      const sub = join(dir, part);
      switch (part) {
        case 'unet':
          out.unet = await loadUNet(rt, await findWeights(sub), await readJson<UNetConfig>(join(sub, 'config.json'), 'U-Net config'), o);
          break;
        case 'vae':
          out.vae = await loadVaeEncoder(rt, await findWeights(sub), await readJson<VaeConfig>(join(sub, 'config.json'), 'VAE config'), o);
          break;
        case 'text_encoder':
          out.textEncoder = await loadTextEncoder(rt, await findWeights(sub), await readJson<ClipTextConfig>(join(sub, 'config.json'), 'text encoder config'), o);
          break;
        case 'tokenizer':
          out.tokenizer = await ClipTokenizer.fromDirectory(sub);
          break;
        case 'scheduler':
          out.scheduler = new PNDMScheduler(await readJson<SchedulerConfig>(join(sub, 'scheduler_config.json'), 'scheduler config'));
          break;
      }
    }
  } catch (e) {
    out.unet?.store.dispose();
    out.vae?.store.dispose();
    out.textEncoder?.store.dispose();
    throw e;
  }
  return out;
}
