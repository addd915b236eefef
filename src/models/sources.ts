// Building the models from their configs and loading their weights from any tensor source (a
// safetensors file opened from a path, a Blob, a download): no file system involved, so the same
// code loads the models in Node, Deno and browsers. The folder loaders (sd15.ts, vision-loaders.ts)
// find the files and call these.

import type { Runtime } from '../gpu/runtime.js';
import type { TensorSource } from '../io/safetensors.js';
import type { LoadEventCallback } from '../io/events.js';
import { WeightStore, type WeightPrecision } from '../nn/weights.js';
import type { ModelComputeOptions } from '../nn/context.js';
import { ClipModel, ClipVisionModel, type ClipModelConfig, type ClipVisionConfig } from './clip-vision.js';
import { ClipTextModel, type ClipTextConfig } from './clip-text.js';
import { Dinov2Model, type Dinov2Config } from './dinov2.js';
import { IpAdapterPlus, type IpAdapterConfig, type ResamplerConfig } from './ip-adapter.js';
import { UNet2DConditionModel, type UNetConfig } from './unet.js';
import { VaeEncoder, legacyVaeKey, type VaeConfig } from './vae.js';
import { DiffusersDitSource, DiT, DIT_OFFICIAL_IGNORED, type DitConfig, type DitTimestepEmbedding } from './dit.js';

/** How model loaders store weights on the GPU (see LoadOptions.weights) and, for the U-Net and
 *  the VAE encoder, the dtype of their activations (see ModelComputeOptions; the other models
 *  compute in f32). */
export interface ModelLoadOptions extends ModelComputeOptions {
  weights?: WeightPrecision;
  /** `weights` events of each checkpoint's load (tensors and bytes on the GPU). */
  onProgress?: LoadEventCallback;
}

/** Non-persistent buffers some exports carry. */
const POSITION_IDS = [/position_ids$/];

/** A model built on a fresh store, then its weights loaded; the store is freed if loading fails. */
async function build<M>(make: (store: WeightStore) => M, load: (store: WeightStore) => Promise<void>): Promise<M> {
  const store = new WeightStore();
  const model = make(store);
  try {
    await load(store);
  } catch (e) {
    store.dispose();
    throw e;
  }
  return model;
}

/** `where` names the config (its file) in errors, as in the other builders. */
export function unetFromSource(rt: Runtime, src: TensorSource, config: UNetConfig, o: ModelLoadOptions = {}, where?: string): Promise<UNet2DConditionModel> {
  return build(
    (store) => new UNet2DConditionModel(store, config, { activations: o.activations ?? 'f32', ...(where ? { where } : {}) }),
    (store) => store.load(rt, src, { weights: o.weights, onProgress: o.onProgress }),
  );
}

export function vaeEncoderFromSource(rt: Runtime, src: TensorSource, config: VaeConfig, o: ModelLoadOptions = {}, where?: string): Promise<VaeEncoder> {
  // A full AutoencoderKL file also holds the decoder, which the metric does not use.
  return build(
    (store) => new VaeEncoder(store, config, { activations: o.activations ?? 'f32', ...(where ? { where } : {}) }),
    (store) => store.load(rt, src, { rename: legacyVaeKey, ignore: [/^decoder\./, /^post_quant_conv\./], allowSqueeze: true, weights: o.weights, onProgress: o.onProgress }),
  );
}

/** CLIPTextModel, or CLIPTextModelWithProjection when the file has `text_projection.weight` (SDXL's
 *  text_encoder_2). */
export function textEncoderFromSource(rt: Runtime, src: TensorSource, config: ClipTextConfig, o: ModelLoadOptions = {}, where?: string): Promise<ClipTextModel> {
  // Older files carry the non-persistent position_ids buffer.
  return build(
    (store) => new ClipTextModel(store, config, 'text_model', where, src.has('text_projection.weight')),
    (store) => store.load(rt, src, { ignore: [/embeddings\.position_ids$/], weights: o.weights, onProgress: o.onProgress }),
  );
}

/** The vision config of a CLIPVisionModelWithProjection `config.json`, or of a CLIPConfig's vision_config. */
export function clipVisionConfigOf(raw: ClipVisionConfig & { vision_config?: ClipVisionConfig; projection_dim?: number }): ClipVisionConfig {
  return raw.vision_config ? { ...raw.vision_config, projection_dim: raw.projection_dim ?? raw.vision_config.projection_dim } : raw;
}

/** CLIPVisionModelWithProjection (the projection when the file has `visual_projection.weight`). */
export function clipVisionFromSource(rt: Runtime, src: TensorSource, config: ClipVisionConfig, o: ModelLoadOptions = {}, where?: string): Promise<ClipVisionModel> {
  // A full CLIPModel file also holds the text tower.
  return build(
    (store) => new ClipVisionModel(store, config, { projection: src.has('visual_projection.weight'), ...(where ? { where } : {}) }),
    (store) => store.load(rt, src, { ignore: [...POSITION_IDS, /^text_model\./, /^text_projection\./, /^logit_scale$/], weights: o.weights, onProgress: o.onProgress }),
  );
}

/** transformers' CLIPModel (both towers); `where` names the config in errors. */
export function clipModelFromSource(rt: Runtime, src: TensorSource, config: ClipModelConfig, o: ModelLoadOptions = {}, where = 'CLIP config'): Promise<ClipModel> {
  if (!config.text_config || !config.vision_config) throw new Error(`${where}: a CLIPModel config needs text_config and vision_config`);
  return build(
    (store) => new ClipModel(store, config, where),
    (store) => store.load(rt, src, { ignore: POSITION_IDS, weights: o.weights, onProgress: o.onProgress }),
  );
}

export function dinov2FromSource(rt: Runtime, src: TensorSource, config: Dinov2Config, o: ModelLoadOptions = {}, where?: string): Promise<Dinov2Model> {
  return build(
    (store) => new Dinov2Model(store, config, '', where),
    (store) => store.load(rt, src, { weights: o.weights, onProgress: o.onProgress }),
  );
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

/** IP-Adapter Plus for `unet` from `ip-adapter-plus_sd15.safetensors` (its resampler config
 *  inferred from the tensor shapes). The U-Net is not modified. */
export function ipAdapterPlusFromSource(rt: Runtime, src: TensorSource, unet: UNet2DConditionModel, o: ModelLoadOptions & { scale?: number; dimHead?: number; config?: IpAdapterConfig } = {}): Promise<IpAdapterPlus> {
  // A given config (a reference fixture's) is used as it is; the released files carry none.
  const config: IpAdapterConfig = o.config ?? { resampler: inferResamplerConfig(src, o.dimHead), ip_scale: o.scale ?? 1 };
  return build(
    (store) => new IpAdapterPlus(store, config, unet, src.name),
    (store) => store.load(rt, src, { weights: o.weights, onProgress: o.onProgress }),
  );
}

/** DiT from a checkpoint in the official layout (`DiT-XL-2-{S}x{S}.pt` converted to safetensors:
 *  x_embedder.*, t_embedder.*, y_embedder.*, blocks.N.*), or from diffusers' transformer file
 *  (`layout: 'diffusers'`: its keys mapped into the official module tree by DiffusersDitSource). The
 *  official layout gets the official timestep sinusoid, diffusers' layout diffusers' own (see dit.ts),
 *  unless `timestepEmbedding` says otherwise. The final layer and the fixed position table are not read. */
export function ditFromSource(rt: Runtime, src: TensorSource, config: DitConfig, o: ModelLoadOptions & { layout?: 'official' | 'diffusers'; timestepEmbedding?: DitTimestepEmbedding } = {}, where?: string): Promise<DiT> {
  const layout = o.layout ?? 'official';
  const view = layout === 'diffusers' ? new DiffusersDitSource(src) : src;
  const timestepEmbedding = o.timestepEmbedding ?? (layout === 'diffusers' ? 'diffusers' : 'official');
  let model: DiT | undefined;
  return build(
    (store) => (model = new DiT(store, config, { timestepEmbedding, ...(where ? { where } : {}) })),
    (store) => store.load(rt, view, { ignore: layout === 'official' ? DIT_OFFICIAL_IGNORED : [], weights: o.weights, onProgress: o.onProgress }),
  ).catch((e: unknown) => {
    model?.dispose();
    throw e;
  });
}
