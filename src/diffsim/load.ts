// The models DiffSim runs, loaded through the one loader layer (models/load.ts) from a local path or
// any ModelFiles: SD1.5 (a diffusers pipeline or a single-file checkpoint) and, for DiffSim-C,
// IP-Adapter Plus with its image encoder; or SDXL (a diffusers pipeline folder) for diffsim-xl.

import type { Runtime } from '../gpu/runtime.js';
import type { ImageProcessorConfig } from '../io/preprocess.js';
import type { ClipTextModel } from '../models/clip-text.js';
import type { ClipTokenizer } from '../models/clip-tokenizer.js';
import type { ClipVisionModel } from '../models/clip-vision.js';
import type { IpAdapterPlus } from '../models/ip-adapter.js';
import { asModelFiles, disposeStableDiffusion, disposeStableDiffusionXL, isSdxlFolder, loadIpAdapterPlus, loadSd15, loadSdxl, type ModelFilesInput, type Sd15LoadOptions } from '../models/load.js';
import type { EulerDiscreteScheduler, PNDMScheduler } from '../models/scheduler.js';
import { FileError } from '../io/errors.js';
import type { UNet2DConditionModel } from '../models/unet.js';
import type { VaeEncoder } from '../models/vae.js';

/** The models DiffSim runs. DiffSim-C also needs the IP-Adapter and its image encoder. */
export interface DiffSimModels {
  unet: UNet2DConditionModel;
  vae: VaeEncoder;
  textEncoder: ClipTextModel;
  tokenizer: ClipTokenizer;
  /** SD1.5's PNDM schedule; SDXL's Euler schedule. */
  scheduler: PNDMScheduler | EulerDiscreteScheduler;
  /** SDXL: the second text encoder and tokenizer, and whether an absent negative prompt gives
   *  zero embeddings. Present ⇔ the models are an SDXL pipeline. */
  xl?: { textEncoder2: ClipTextModel; tokenizer2: ClipTokenizer; forceZerosForEmptyPrompt: boolean } | undefined;
  ipAdapter?: IpAdapterPlus | undefined;
  imageEncoder?: ClipVisionModel | undefined;
  /** SD1.5's feature_extractor (CLIPImageProcessor) config for the IP image; CLIP defaults when absent. */
  featureExtractor?: ImageProcessorConfig | undefined;
}

export interface DiffSimLoadOptions extends Omit<Sd15LoadOptions, 'parts'> {
  /** IP-Adapter Plus for DiffSim-C: the folder holding ip-adapter-plus_sd15.safetensors (or its
   *  `models/`), the file itself, or its files. */
  ipAdapter?: ModelFilesInput;
  /** The pipeline expected: a folder of the other kind is refused with a pointer to the right metric. */
  pipeline?: 'sd15' | 'sdxl';
}

/** SD1.5 and, given `ipAdapter`, IP-Adapter Plus with its image encoder. Metrics with different
 *  settings can share them. */
export async function loadDiffSimModels(rt: Runtime, sd: ModelFilesInput, o: DiffSimLoadOptions = {}): Promise<DiffSimModels> {
  const files = await asModelFiles(sd);
  if (o.pipeline === 'sdxl' && !isSdxlFolder(files)) throw new FileError(files.name, 'diffsim-xl needs an SDXL pipeline folder (unet/, vae/, text_encoder/, text_encoder_2/, tokenizer/, tokenizer_2/, scheduler/); for Stable Diffusion 1.5 use the diffsim metric');
  if (o.pipeline === 'sd15' && isSdxlFolder(files)) throw new FileError(files.name, 'an SDXL pipeline (it has text_encoder_2/): use the diffsim-xl metric');
  if (isSdxlFolder(files)) {
    if (o.ipAdapter !== undefined) throw new FileError(files.name, 'DiffSim-C on SDXL (ip-adapter-plus_sdxl) is not supported');
    const xl = await loadSdxl(rt, files, o);
    return { unet: xl.unet, vae: xl.vae, textEncoder: xl.textEncoder, tokenizer: xl.tokenizer, scheduler: xl.scheduler, xl: { textEncoder2: xl.textEncoder2, tokenizer2: xl.tokenizer2, forceZerosForEmptyPrompt: xl.forceZerosForEmptyPrompt } };
  }
  sd = files;
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
  if (m.xl) disposeStableDiffusionXL({ textEncoder2: m.xl.textEncoder2 });
  m.ipAdapter?.store.dispose();
  m.imageEncoder?.store.dispose();
}
