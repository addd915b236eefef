// Loading the vision models from Hugging Face folder layouts: a CLIP vision tower with projection
// (IP-Adapter's `models/image_encoder`), a full CLIPModel (openai/clip-vit-base-patch32), DINOv2
// (facebook/dinov2-*), and IP-Adapter Plus from the released `ip-adapter-plus_sd15.safetensors`
// with its image encoder from the sibling `image_encoder/` folder.

import { stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { Runtime } from '../gpu/runtime.js';
import type { ClipModel, ClipModelConfig, ClipVisionConfig, ClipVisionModel } from './clip-vision.js';
import type { Dinov2Config, Dinov2Model } from './dinov2.js';
import { findWeights, readJson, withSource } from './files.js';
import type { IpAdapterPlus } from './ip-adapter.js';
import { clipModelFromSource, clipVisionConfigOf, clipVisionFromSource, dinov2FromSource, ipAdapterPlusFromSource, type ModelLoadOptions } from './sources.js';
import type { UNet2DConditionModel } from './unet.js';

export { inferResamplerConfig } from './sources.js';

async function isDirectory(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isDirectory();
  } catch (e) {
    throw new Error(`${path}: cannot open (${(e as { code?: string }).code ?? (e as Error).message})`);
  }
}

/** `dir/config.json` with `dir/*.safetensors`. */
async function folderFiles(dir: string, what: string): Promise<{ config: string; weights: string }> {
  if (!(await isDirectory(dir))) throw new Error(`${dir}: expected a ${what} folder (config.json and *.safetensors)`);
  return { config: join(dir, 'config.json'), weights: await findWeights(dir) };
}

/** CLIPVisionModelWithProjection from a folder (`config.json` of model_type clip_vision_model, or a
 *  CLIPConfig whose vision_config is used; `model.safetensors`). */
export async function loadClipVision(rt: Runtime, dir: string, o: ModelLoadOptions = {}): Promise<ClipVisionModel> {
  const f = await folderFiles(dir, 'CLIP vision');
  const config = clipVisionConfigOf(await readJson<ClipVisionConfig & { vision_config?: ClipVisionConfig; projection_dim?: number }>(f.config, 'CLIP vision config'));
  return withSource(f.weights, (src) => clipVisionFromSource(rt, src, config, o));
}

/** transformers' CLIPModel (both towers) from a folder with a CLIPConfig `config.json`. */
export async function loadClipModel(rt: Runtime, dir: string, o: ModelLoadOptions = {}): Promise<ClipModel> {
  const f = await folderFiles(dir, 'CLIP');
  const config = await readJson<ClipModelConfig>(f.config, 'CLIP config');
  return withSource(f.weights, (src) => clipModelFromSource(rt, src, config, o, f.config));
}

/** Dinov2Model from a folder (`config.json` of model_type dinov2, `model.safetensors`). */
export async function loadDinov2(rt: Runtime, dir: string, o: ModelLoadOptions = {}): Promise<Dinov2Model> {
  const f = await folderFiles(dir, 'DINOv2');
  const config = await readJson<Dinov2Config>(f.config, 'DINOv2 config');
  return withSource(f.weights, (src) => dinov2FromSource(rt, src, config, o));
}

export interface IpAdapterLoadOptions extends ModelLoadOptions {
  /** Default scale of `conditioning()` (DiffSim-C uses 0.5). */
  scale?: number;
  /** The CLIP image encoder folder; default: `image_encoder/` beside the adapter file (h94/IP-Adapter's `models/` layout). */
  imageEncoder?: string | null;
  /** Head size of the resampler's attention (the released models use 64). */
  dimHead?: number;
}

export interface LoadedIpAdapter {
  adapter: IpAdapterPlus;
  /** The CLIP ViT-H/14 image encoder, unless `imageEncoder: null`. */
  imageEncoder: ClipVisionModel | null;
}

/** IP-Adapter Plus for `unet` from `ip-adapter-plus_sd15.safetensors` (a file, or a folder holding
 *  it), with its image encoder. The U-Net is not modified: pass `adapter.conditioning(tokens)` to
 *  each U-Net call that should use it. */
export async function loadIpAdapterPlus(rt: Runtime, path: string, unet: UNet2DConditionModel, o: IpAdapterLoadOptions = {}): Promise<LoadedIpAdapter> {
  const file = (await isDirectory(path)) ? join(path, 'ip-adapter-plus_sd15.safetensors') : path;
  const adapter = await withSource(file, (src) => ipAdapterPlusFromSource(rt, src, unet, o));
  const store = adapter.store;
  if (o.imageEncoder === null) return { adapter, imageEncoder: null };
  const encoderDir = o.imageEncoder ?? join(dirname(file), 'image_encoder');
  try {
    const imageEncoder = await loadClipVision(rt, encoderDir, o);
    const want = adapter.config.resampler.embed_dims;
    if (imageEncoder.config.hidden_size !== want) {
      imageEncoder.store.dispose();
      throw new Error(`${encoderDir}: hidden size ${imageEncoder.config.hidden_size}, but ${basename(file)} expects image tokens of width ${want}`);
    }
    return { adapter, imageEncoder };
  } catch (e) {
    store.dispose();
    throw e;
  }
}
