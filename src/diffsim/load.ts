// The models DiffSim runs, loaded through the one loader layer (models/load.ts) from a local path or
// any ModelFiles: SD1.5 (a diffusers pipeline or a single-file checkpoint) and, for DiffSim-C,
// IP-Adapter Plus with its image encoder.

import type { Runtime } from '../gpu/runtime.js';
import type { ImageProcessorConfig } from '../io/preprocess.js';
import type { ClipTextModel } from '../models/clip-text.js';
import type { ClipTokenizer } from '../models/clip-tokenizer.js';
import type { ClipVisionModel } from '../models/clip-vision.js';
import type { IpAdapterPlus } from '../models/ip-adapter.js';
import { disposeStableDiffusion, loadIpAdapterPlus, loadSd15, type ModelFilesInput, type Sd15LoadOptions } from '../models/load.js';
import type { PNDMScheduler } from '../models/scheduler.js';
import type { UNet2DConditionModel } from '../models/unet.js';
import type { VaeEncoder } from '../models/vae.js';

/** The models DiffSim runs. DiffSim-C also needs the IP-Adapter and its image encoder. */
export interface DiffSimModels {
  unet: UNet2DConditionModel;
  vae: VaeEncoder;
  textEncoder: ClipTextModel;
  tokenizer: ClipTokenizer;
  scheduler: PNDMScheduler;
  ipAdapter?: IpAdapterPlus | undefined;
  imageEncoder?: ClipVisionModel | undefined;
  /** SD1.5's feature_extractor (CLIPImageProcessor) config for the IP image; CLIP defaults when absent. */
  featureExtractor?: ImageProcessorConfig | undefined;
}

export interface DiffSimLoadOptions extends Omit<Sd15LoadOptions, 'parts'> {
  /** IP-Adapter Plus for DiffSim-C: the folder holding ip-adapter-plus_sd15.safetensors (or its
   *  `models/`), the file itself, or its files. */
  ipAdapter?: ModelFilesInput;
}

/** SD1.5 and, given `ipAdapter`, IP-Adapter Plus with its image encoder. Metrics with different
 *  settings can share them. */
export async function loadDiffSimModels(rt: Runtime, sd: ModelFilesInput, o: DiffSimLoadOptions = {}): Promise<DiffSimModels> {
  const loaded = await loadSd15(rt, sd, o);
  const models: DiffSimModels = { unet: loaded.unet!, vae: loaded.vae!, textEncoder: loaded.textEncoder!, tokenizer: loaded.tokenizer!, scheduler: loaded.scheduler! };
  if (loaded.featureExtractor) models.featureExtractor = loaded.featureExtractor;
  if (o.ipAdapter !== undefined) {
    try {
      const ip = await loadIpAdapterPlus(rt, o.ipAdapter, loaded.unet!, o);
      models.ipAdapter = ip.adapter;
      models.imageEncoder = ip.imageEncoder ?? undefined;
    } catch (e) {
      disposeStableDiffusion(loaded);
      throw e;
    }
  }
  return models;
}

/** Frees the GPU weights of DiffSim's models. */
export function disposeDiffSimModels(m: DiffSimModels): void {
  m.unet.store.dispose();
  m.vae.store.dispose();
  m.textEncoder.store.dispose();
  m.ipAdapter?.store.dispose();
  m.imageEncoder?.store.dispose();
}
