// Loading the vision models from Hugging Face folder layouts: a CLIP vision tower with projection
// (IP-Adapter's `models/image_encoder`), a full CLIPModel (openai/clip-vit-base-patch32), DINOv2
// (facebook/dinov2-*), and IP-Adapter Plus from the released `ip-adapter-plus_sd15.safetensors`
// with its image encoder from the sibling `image_encoder/` folder.

import { stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { Runtime } from '../gpu/runtime.js';
import type { TensorSource } from '../io/safetensors.js';
import { WeightStore } from '../nn/weights.js';
import { ClipModel, ClipVisionModel, type ClipModelConfig, type ClipVisionConfig } from './clip-vision.js';
import { Dinov2Model, type Dinov2Config } from './dinov2.js';
import { findWeights, readJson, withSource } from './files.js';
import { IpAdapterPlus, type IpAdapterConfig, type ResamplerConfig } from './ip-adapter.js';
import type { ModelLoadOptions } from './sd15.js';
import type { UNet2DConditionModel } from './unet.js';

/** Non-persistent buffers some exports carry. */
const POSITION_IDS = [/position_ids$/];

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
  const raw = await readJson<ClipVisionConfig & { vision_config?: ClipVisionConfig; projection_dim?: number }>(f.config, 'CLIP vision config');
  const config = raw.vision_config ? { ...raw.vision_config, projection_dim: raw.projection_dim ?? raw.vision_config.projection_dim } : raw;
  const store = new WeightStore();
  const model = await withSource(f.weights, async (src) => {
    const m = new ClipVisionModel(store, config, { projection: src.has('visual_projection.weight') });
    // A full CLIPModel file also holds the text tower.
    await store.load(rt, src, { ignore: [...POSITION_IDS, /^text_model\./, /^text_projection\./, /^logit_scale$/], weights: o.weights, onProgress: o.onProgress });
    return m;
  });
  return model;
}

/** transformers' CLIPModel (both towers) from a folder with a CLIPConfig `config.json`. */
export async function loadClipModel(rt: Runtime, dir: string, o: ModelLoadOptions = {}): Promise<ClipModel> {
  const f = await folderFiles(dir, 'CLIP');
  const config = await readJson<ClipModelConfig>(f.config, 'CLIP config');
  if (!config.text_config || !config.vision_config) throw new Error(`${f.config}: a CLIPModel config needs text_config and vision_config`);
  const store = new WeightStore();
  const model = new ClipModel(store, config);
  await withSource(f.weights, (src) => store.load(rt, src, { ignore: POSITION_IDS, weights: o.weights, onProgress: o.onProgress }));
  return model;
}

/** Dinov2Model from a folder (`config.json` of model_type dinov2, `model.safetensors`). */
export async function loadDinov2(rt: Runtime, dir: string, o: ModelLoadOptions = {}): Promise<Dinov2Model> {
  const f = await folderFiles(dir, 'DINOv2');
  const config = await readJson<Dinov2Config>(f.config, 'DINOv2 config');
  const store = new WeightStore();
  const model = new Dinov2Model(store, config);
  await withSource(f.weights, (src) => store.load(rt, src, { weights: o.weights, onProgress: o.onProgress }));
  return model;
}

function shapeOf(src: TensorSource, name: string): number[] {
  if (!src.has(name)) throw new Error(`${src.name}: no tensor "${name}" (not an IP-Adapter Plus checkpoint in the released key layout)`);
  return src.info(name).shape;
}

/** The Resampler's configuration from the tensor shapes of a released IP-Adapter Plus file (the
 *  file stores no configuration). The head size is the official code's fixed 64 (heads = inner/64),
 *  unless `dimHead` says otherwise. */
export function inferResamplerConfig(src: TensorSource, dimHead = 64): ResamplerConfig {
  const [, numQueries, hidden] = shapeOf(src, 'image_proj.latents') as [number, number, number];
  const [, embed] = shapeOf(src, 'image_proj.proj_in.weight') as [number, number];
  const [output] = shapeOf(src, 'image_proj.proj_out.weight') as [number];
  let depth = 0;
  while (src.has(`image_proj.layers.${depth}.0.to_q.weight`)) depth++;
  if (depth === 0) throw new Error(`${src.name}: no resampler layers (image_proj.layers.0.0.to_q.weight)`);
  const [inner] = shapeOf(src, 'image_proj.layers.0.0.to_q.weight') as [number];
  const [ff] = shapeOf(src, 'image_proj.layers.0.1.1.weight') as [number];
  if (inner % dimHead !== 0) throw new Error(`${src.name}: attention width ${inner} is not a multiple of the head size ${dimHead}`);
  if (ff % hidden !== 0) throw new Error(`${src.name}: feed-forward width ${ff} is not a multiple of the resampler width ${hidden}`);
  return { embed_dims: embed, output_dims: output, hidden_dims: hidden, depth, dim_head: dimHead, heads: inner / dimHead, num_queries: numQueries, ffn_ratio: ff / hidden };
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
  const store = new WeightStore();
  const adapter = await withSource(file, async (src) => {
    const config: IpAdapterConfig = { resampler: inferResamplerConfig(src, o.dimHead), ip_scale: o.scale ?? 1 };
    const ip = new IpAdapterPlus(store, config, unet);
    await store.load(rt, src, { weights: o.weights, onProgress: o.onProgress });
    return ip;
  });
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
