// Loading Stable Diffusion 1.5 components from a diffusers-layout folder
// (unet/, vae/, text_encoder/, tokenizer/, scheduler/) or from single files.

import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Runtime } from '../gpu/runtime.js';
import { findWeights, readJson, withSource } from './files.js';
import type { ClipTextModel, ClipTextConfig } from './clip-text.js';
import { ClipTokenizer } from './clip-tokenizer.js';
import { PNDMScheduler, type SchedulerConfig } from './scheduler.js';
import { textEncoderFromSource, unetFromSource, vaeEncoderFromSource, type ModelLoadOptions } from './sources.js';
import type { UNet2DConditionModel, UNetConfig } from './unet.js';
import type { VaeEncoder, VaeConfig } from './vae.js';

export type { ModelLoadOptions } from './sources.js';

export async function loadUNet(rt: Runtime, weightsPath: string, config: UNetConfig, o: ModelLoadOptions = {}): Promise<UNet2DConditionModel> {
  return withSource(weightsPath, (src) => unetFromSource(rt, src, config, o));
}

export async function loadVaeEncoder(rt: Runtime, weightsPath: string, config: VaeConfig, o: ModelLoadOptions = {}): Promise<VaeEncoder> {
  return withSource(weightsPath, (src) => vaeEncoderFromSource(rt, src, config, o));
}

export async function loadTextEncoder(rt: Runtime, weightsPath: string, config: ClipTextConfig, o: ModelLoadOptions = {}): Promise<ClipTextModel> {
  return withSource(weightsPath, (src) => textEncoderFromSource(rt, src, config, o));
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
