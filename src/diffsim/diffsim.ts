// DiffSim with loaders for diffusers folders on disk (Node, Deno). The metric itself, which runs
// on models loaded from anywhere, is core.ts.

import { access } from 'node:fs/promises';
import { join } from 'node:path';
import type { Runtime } from '../gpu/runtime.js';
import type { ImageProcessorConfig } from '../io/preprocess.js';
import { readJson } from '../models/files.js';
import { loadStableDiffusion, type ModelLoadOptions } from '../models/sd15.js';
import { loadIpAdapterPlus } from '../models/vision-loaders.js';
import { DiffSim as DiffSimCore, type DiffSimExecution, type DiffSimModels } from './core.js';
import type { DiffSimSettingsInput } from './settings.js';

export * from './core.js';

export class DiffSim extends DiffSimCore {
  /** Loads SD1.5 from a diffusers folder (and, for DiffSim-C, IP-Adapter Plus from
   *  `ipAdapter`: the adapter file or its folder with `image_encoder/` beside it). */
  static async load(rt: Runtime, sdDir: string, settings: DiffSimSettingsInput = {}, o: ModelLoadOptions & { ipAdapter?: string; execution?: DiffSimExecution } = {}): Promise<DiffSim> {
    return new DiffSim(rt, await DiffSim.loadModels(rt, sdDir, o), settings, o.execution);
  }

  /** The models of a diffusers SD1.5 folder (U-Net, VAE, text encoder, tokenizer, scheduler, the
   *  feature extractor's config) and, given `ipAdapter`, IP-Adapter Plus with its image encoder.
   *  Metrics with different settings can share them. */
  static async loadModels(rt: Runtime, sdDir: string, o: ModelLoadOptions & { ipAdapter?: string } = {}): Promise<DiffSimModels> {
    const sd = await loadStableDiffusion(rt, sdDir, undefined, o);
    const models: DiffSimModels = { unet: sd.unet!, vae: sd.vae!, textEncoder: sd.textEncoder!, tokenizer: sd.tokenizer!, scheduler: sd.scheduler! };
    const fe = join(sdDir, 'feature_extractor', 'preprocessor_config.json');
    if (await access(fe).then(() => true, () => false)) models.featureExtractor = await readJson<ImageProcessorConfig>(fe, 'feature extractor config');
    if (o.ipAdapter) {
      const ip = await loadIpAdapterPlus(rt, o.ipAdapter, sd.unet!, { weights: o.weights, onProgress: o.onProgress });
      models.ipAdapter = ip.adapter;
      models.imageEncoder = ip.imageEncoder ?? undefined;
    }
    return models;
  }
}
