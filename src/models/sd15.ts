// Loading Stable Diffusion 1.5 components from a diffusers-layout folder
// (unet/, vae/, text_encoder/, tokenizer/, scheduler/) or from single files.

import { readFile, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Runtime } from '../gpu/runtime.js';
import { openSafetensors, type TensorSource } from '../io/safetensors.js';
import { WeightStore } from '../nn/weights.js';
import { ClipTextModel, type ClipTextConfig } from './clip-text.js';
import { ClipTokenizer } from './clip-tokenizer.js';
import { PNDMScheduler, type SchedulerConfig } from './scheduler.js';
import { UNet2DConditionModel, type UNetConfig } from './unet.js';
import { VaeEncoder, legacyVaeKey, type VaeConfig } from './vae.js';

async function readJson<T>(path: string, what: string): Promise<T> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    throw new Error(`${path}: cannot read the ${what} (${(e as { code?: string }).code ?? (e as Error).message})`);
  }
  try {
    return JSON.parse(text) as T;
  } catch (e) {
    throw new Error(`${path}: the ${what} is not valid JSON (${(e as Error).message})`);
  }
}

/** The weights file of a diffusers component folder: `*.safetensors.index.json` (sharded) or the
 *  single `*.safetensors` (preferring the non-variant name). */
export async function findWeights(dir: string): Promise<string> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (e) {
    throw new Error(`${dir}: cannot list the folder (${(e as { code?: string }).code ?? (e as Error).message})`);
  }
  const index = names.filter((n) => n.endsWith('.safetensors.index.json')).sort();
  if (index.length) return join(dir, index[0]!);
  const files = names.filter((n) => n.endsWith('.safetensors')).sort((a, b) => a.split('.').length - b.split('.').length || a.localeCompare(b));
  if (!files.length) throw new Error(`${dir}: no .safetensors weights (only .safetensors is supported; convert .bin/.ckpt files first)`);
  return join(dir, files[0]!);
}

async function withSource<T>(path: string, fn: (src: TensorSource) => Promise<T>): Promise<T> {
  const src = await openSafetensors(path);
  try {
    return await fn(src);
  } finally {
    await src.close();
  }
}

export async function loadUNet(rt: Runtime, weightsPath: string, config: UNetConfig): Promise<UNet2DConditionModel> {
  const store = new WeightStore();
  const model = new UNet2DConditionModel(store, config);
  await withSource(weightsPath, (src) => store.load(rt, src));
  return model;
}

export async function loadVaeEncoder(rt: Runtime, weightsPath: string, config: VaeConfig): Promise<VaeEncoder> {
  const store = new WeightStore();
  const model = new VaeEncoder(store, config);
  // A full AutoencoderKL file also holds the decoder, which the metric does not use.
  await withSource(weightsPath, (src) => store.load(rt, src, { rename: legacyVaeKey, ignore: [/^decoder\./, /^post_quant_conv\./], allowSqueeze: true }));
  return model;
}

export async function loadTextEncoder(rt: Runtime, weightsPath: string, config: ClipTextConfig): Promise<ClipTextModel> {
  const store = new WeightStore();
  const model = new ClipTextModel(store, config);
  // Older files carry the non-persistent position_ids buffer.
  await withSource(weightsPath, (src) => store.load(rt, src, { ignore: [/embeddings\.position_ids$/] }));
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
export async function loadStableDiffusion(rt: Runtime, dir: string, parts: readonly Sd15Part[] = ['unet', 'vae', 'text_encoder', 'tokenizer', 'scheduler']): Promise<StableDiffusion> {
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
          out.unet = await loadUNet(rt, await findWeights(sub), await readJson<UNetConfig>(join(sub, 'config.json'), 'U-Net config'));
          break;
        case 'vae':
          out.vae = await loadVaeEncoder(rt, await findWeights(sub), await readJson<VaeConfig>(join(sub, 'config.json'), 'VAE config'));
          break;
        case 'text_encoder':
          out.textEncoder = await loadTextEncoder(rt, await findWeights(sub), await readJson<ClipTextConfig>(join(sub, 'config.json'), 'text encoder config'));
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
