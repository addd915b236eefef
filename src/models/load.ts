// One loader per model family, over ModelFiles (a local folder or file, the hub cache, a hub repo in
// a browser, a picked folder, bytes in memory). Each checkpoint layout and its quirks are written
// here once: diffusers' SD1.5 pipeline folders and SD1.5 single-file checkpoints, the VAE's legacy
// attention names (vae.ts), fp16 variants and shard indexes (io/model-files.ts), transformers' CLIP
// and DINOv2 folders, and h94/IP-Adapter's `models/` layout. The `*Layout` functions say which
// files a model will be loaded from, without loading it, for checks made before a download.

import type { Runtime } from '../gpu/runtime.js';
import { FileError } from '../io/errors.js';
import { localModelFiles } from '../io/local-files.js';
import { describe, dirOfRel, hasFile, joinRel, namesIn, openWeights, optionalJson, readJson, subFiles, weightsPath, withWeights, type ModelFiles } from '../io/model-files.js';
import { validateImageProcessorConfig, type ImageProcessorConfig } from '../io/preprocess.js';
import type { TensorSource } from '../io/safetensors.js';
import type { ClipModel, ClipModelConfig, ClipVisionConfig, ClipVisionModel } from './clip-vision.js';
import type { ClipTextConfig, ClipTextModel } from './clip-text.js';
import { ClipTokenizer } from './clip-tokenizer.js';
import type { Dinov2Config, Dinov2Model } from './dinov2.js';
import type { IpAdapterPlus } from './ip-adapter.js';
import { EulerDiscreteScheduler, PNDMScheduler, type SchedulerConfig } from './scheduler.js';
import { isSd15SingleFile, sd15SingleFile, type SingleFileOptions } from './single-file.js';
import { clipModelFromSource, clipVisionConfigOf, ditFromSource, clipVisionFromSource, dinov2FromSource, ipAdapterPlusFromSource, textEncoderFromSource, unetFromSource, vaeEncoderFromSource, type ModelLoadOptions } from './sources.js';
import type { UNet2DConditionModel, UNetConfig } from './unet.js';
import type { VaeConfig, VaeEncoder } from './vae.js';
import { lpipsHeadsFromSource, torchvisionFeaturesFromSource, type LpipsHeads, type LpipsNet, type TorchvisionArch, type TorchvisionFeatures } from './vgg.js';
import { ditConfigFromDiffusers, inferDitConfig, validateDitConfig, type DiffusersDitConfig, type DiT, type DitConfig } from './dit.js';

export type { ModelLoadOptions } from './sources.js';

/** A local path (folder or file) or model files from anywhere. */
export type ModelFilesInput = ModelFiles | string;

export async function asModelFiles(input: ModelFilesInput): Promise<ModelFiles> {
  return typeof input === 'string' ? localModelFiles(input) : input;
}

/** SD1.5's scheduler config (stable-diffusion-v1-5/scheduler/scheduler_config.json), for
 *  single-file checkpoints, which carry none. */
export const SD15_SCHEDULER_CONFIG: Readonly<SchedulerConfig> = Object.freeze({
  beta_start: 0.00085,
  beta_end: 0.012,
  beta_schedule: 'scaled_linear',
  num_train_timesteps: 1000,
  set_alpha_to_one: false,
  skip_prk_steps: true,
  steps_offset: 1,
  timestep_spacing: 'leading',
  clip_sample: false,
} as SchedulerConfig);

/** The latent side the VAE encoder gives for an image side (each downsampling conv: pad (0,1,0,1),
 *  kernel 3, stride 2). */
export function latentSide(vae: Pick<VaeConfig, 'block_out_channels'>, imageSide: number): number {
  let side = imageSide;
  for (let i = 1; i < vae.block_out_channels.length; i++) side = Math.floor((side - 2) / 2) + 1;
  return side;
}

/** The image side for which the VAE gives `latent` (SD1.5: 8 × latent). */
export function vaeScaleFactor(vae: Pick<VaeConfig, 'block_out_channels'>): number {
  return 2 ** (vae.block_out_channels.length - 1);
}

/** Config fields for a single-file checkpoint's components (what its shapes cannot tell). */
export type SingleFileConfigs = Pick<SingleFileOptions, 'unet' | 'vae' | 'textEncoder'>;

export type Sd15Part = 'unet' | 'vae' | 'text_encoder' | 'tokenizer' | 'scheduler';
export const SD15_PARTS: readonly Sd15Part[] = ['unet', 'vae', 'text_encoder', 'tokenizer', 'scheduler'];

/** Where an SD1.5 model's parts are: a diffusers pipeline folder, or one single-file checkpoint
 *  (the original `model.diffusion_model.*` / `first_stage_model.*` / `cond_stage_model.*` layout). */
export type Sd15Layout = { kind: 'diffusers' } | { kind: 'single-file'; file: string };

const SCHEDULER_CONFIG = 'scheduler/scheduler_config.json';
const FEATURE_EXTRACTOR_CONFIG = 'feature_extractor/preprocessor_config.json';

/** Which layout `files` holds (a single file is recognised by its tensor names). */
export async function sd15Layout(files: ModelFiles): Promise<Sd15Layout> {
  const single = files.entry ?? (hasFile(files, 'unet/config.json') ? undefined : onlySafetensorsAtRoot(files));
  if (single !== undefined) {
    if (!single.endsWith('.safetensors')) throw new FileError(describe(files, single), 'not a .safetensors checkpoint (only .safetensors is read; convert .ckpt files first)');
    const src = await openWeights(files, single, { headersOnly: true });
    try {
      if (!isSd15SingleFile(src)) throw new FileError(describe(files, single), `not an SD1.5 checkpoint: expected a diffusers pipeline folder (unet/, vae/, text_encoder/, …) or a single file with model.diffusion_model.*, first_stage_model.* and cond_stage_model.transformer.* tensors (it has ${firstNames(src)})`);
    } finally {
      await src.close();
    }
    return { kind: 'single-file', file: single };
  }
  if (!hasFile(files, 'unet/config.json') && !namesIn(files, 'unet').length) {
    throw new FileError(files.name, `not a Stable Diffusion model: no unet/ folder (a diffusers pipeline folder) and no single .safetensors checkpoint (found ${files.paths.slice(0, 6).join(', ') || 'no files'}${files.paths.length > 6 ? ', …' : ''})`);
  }
  return { kind: 'diffusers' };
}

function onlySafetensorsAtRoot(files: ModelFiles): string | undefined {
  const root = namesIn(files, '').filter((n) => n.endsWith('.safetensors'));
  return root.length === 1 && !files.paths.some((p) => p.includes('/')) ? root[0] : undefined;
}

function firstNames(src: TensorSource): string {
  const names = src.names();
  return names.length ? `${names.slice(0, 4).join(', ')}${names.length > 4 ? ', …' : ''}` : 'no tensors';
}

export interface Sd15LoadOptions extends ModelLoadOptions {
  /** The parts to load (default all). */
  parts?: readonly Sd15Part[];
  /** Single-file checkpoints: where the tokenizer (and, if it has one, the scheduler config) comes
   *  from — a tokenizer folder or a pipeline folder with `tokenizer/`. */
  tokenizer?: ModelFiles;
  /** Single-file checkpoints: configs to use instead of the file's metadata or the shapes. */
  configs?: SingleFileConfigs;
  /** Single-file checkpoints: the EMA copy of the U-Net where the file has one (default: the
   *  non-EMA weights, as diffusers' from_single_file). */
  ema?: boolean;
}

export interface StableDiffusion {
  unet?: UNet2DConditionModel;
  vae?: VaeEncoder;
  textEncoder?: ClipTextModel;
  tokenizer?: ClipTokenizer;
  scheduler?: PNDMScheduler;
  /** The pipeline's feature_extractor config, where it has one (DiffSim-C's image preprocessing). */
  featureExtractor?: ImageProcessorConfig;
  layout?: Sd15Layout;
}

/** Frees the GPU weights of what was loaded. */
export function disposeStableDiffusion(sd: StableDiffusion): void {
  sd.unet?.store.dispose();
  sd.vae?.store.dispose();
  sd.textEncoder?.store.dispose();
}

/** One SD1.5 part's weights (opened) and config; `file` names where the weights are. */
export interface Sd15Component<C> {
  source: TensorSource;
  config: C;
  file: string;
  /** What errors about the config name: its config.json, or the single file it came from. */
  configFile: string;
}

export interface Sd15Components {
  layout: Sd15Layout;
  unet?: Sd15Component<UNetConfig>;
  vae?: Sd15Component<VaeConfig>;
  textEncoder?: Sd15Component<ClipTextConfig>;
  /** Closes every file opened. */
  close(): Promise<void>;
}

/** Opens the weights and reads the configs of SD1.5's U-Net, VAE and text encoder (those in
 *  `parts`), from a pipeline folder or a single-file checkpoint. `headersOnly` reads remote files
 *  by Range requests (enough for the shapes, not for loading). */
export async function openSd15Components(files: ModelFiles, o: { parts?: readonly Sd15Part[]; headersOnly?: boolean; configs?: SingleFileConfigs; ema?: boolean } = {}): Promise<Sd15Components> {
  const parts = new Set(o.parts ?? SD15_PARTS);
  const layout = await sd15Layout(files);
  const opened: TensorSource[] = [];
  const out: Sd15Components = {
    layout,
    close: async () => {
      for (const src of opened.splice(0)) await src.close();
    },
  };
  try {
    if (layout.kind === 'single-file') {
      const src = await openWeights(files, layout.file, { headersOnly: o.headersOnly ?? false });
      opened.push(src);
      const c = sd15SingleFile(src, { ...o.configs, ...(o.ema !== undefined ? { ema: o.ema } : {}) });
      const file = describe(files, layout.file);
      if (parts.has('unet')) out.unet = { ...c.unet, file, configFile: `${file} (U-Net config)` };
      if (parts.has('vae')) out.vae = { ...c.vae, file, configFile: `${file} (VAE config)` };
      if (parts.has('text_encoder')) out.textEncoder = { ...c.textEncoder, file, configFile: `${file} (text encoder config)` };
      return out;
    }
    const part = async <C>(dir: string, what: string): Promise<Sd15Component<C>> => {
      const path = weightsPath(files, dir, what);
      const config = await readJson<C>(files, `${dir}/config.json`, `${what} config`);
      const source = await openWeights(files, path, { headersOnly: o.headersOnly ?? false });
      opened.push(source);
      return { source, config, file: describe(files, path), configFile: describe(files, `${dir}/config.json`) };
    };
    if (parts.has('unet')) out.unet = await part<UNetConfig>('unet', 'U-Net');
    if (parts.has('vae')) out.vae = await part<VaeConfig>('vae', 'VAE');
    if (parts.has('text_encoder')) out.textEncoder = await part<ClipTextConfig>('text_encoder', 'text encoder');
    return out;
  } catch (e) {
    await out.close();
    throw e;
  }
}

/** SD1.5 from a diffusers pipeline folder or a single-file checkpoint. */
export async function loadSd15(rt: Runtime, input: ModelFilesInput, o: Sd15LoadOptions = {}): Promise<StableDiffusion> {
  const files = await asModelFiles(input);
  const parts = new Set(o.parts ?? SD15_PARTS);
  const c = await openSd15Components(files, { parts: [...parts], ...(o.configs ? { configs: o.configs } : {}), ...(o.ema !== undefined ? { ema: o.ema } : {}) });
  const out: StableDiffusion = { layout: c.layout };
  try {
    if (c.unet) out.unet = await unetFromSource(rt, c.unet.source, c.unet.config, o, c.unet.configFile);
    if (c.vae) out.vae = await vaeEncoderFromSource(rt, c.vae.source, c.vae.config, o, c.vae.configFile);
    if (c.textEncoder) out.textEncoder = await textEncoderFromSource(rt, c.textEncoder.source, c.textEncoder.config, o, c.textEncoder.configFile);
    await c.close();
    if (c.layout.kind === 'single-file') {
      const tok = o.tokenizer;
      if (parts.has('tokenizer')) {
        if (!tok) throw new FileError(describe(files, c.layout.file), 'a single-file checkpoint holds no tokenizer: give one (a tokenizer folder, or a Stable Diffusion 1.5 pipeline folder or hub id whose tokenizer/ is used)');
        out.tokenizer = await ClipTokenizer.fromFiles(tok);
      }
      if (parts.has('scheduler')) {
        const own = tok ? await optionalJson<SchedulerConfig>(tok, SCHEDULER_CONFIG, 'scheduler config') : undefined;
        out.scheduler = own && tok ? new PNDMScheduler(own, describe(tok, SCHEDULER_CONFIG)) : new PNDMScheduler({ ...SD15_SCHEDULER_CONFIG });
      }
      return out;
    }
    if (parts.has('tokenizer')) out.tokenizer = await ClipTokenizer.fromFiles(o.tokenizer ?? subFiles(files, 'tokenizer'));
    if (parts.has('scheduler')) out.scheduler = new PNDMScheduler(await readJson<SchedulerConfig>(files, SCHEDULER_CONFIG, 'scheduler config'), describe(files, SCHEDULER_CONFIG));
    const fe = await optionalJson<ImageProcessorConfig>(files, FEATURE_EXTRACTOR_CONFIG, 'feature extractor config');
    if (fe) {
      validateImageProcessorConfig(fe, describe(files, FEATURE_EXTRACTOR_CONFIG));
      out.featureExtractor = fe;
    }
    return out;
  } catch (e) {
    await c.close();
    disposeStableDiffusion(out);
    throw e;
  }
}

/** CLIPVisionModelWithProjection from a folder (`config.json` of model_type clip_vision_model, or a
 *  CLIPConfig whose vision_config is used; `model.safetensors`). */
export async function loadClipVision(rt: Runtime, input: ModelFilesInput, o: ModelLoadOptions = {}): Promise<ClipVisionModel> {
  const files = await asModelFiles(input);
  const config = clipVisionConfigOf(await readJson<ClipVisionConfig & { vision_config?: ClipVisionConfig; projection_dim?: number }>(files, 'config.json', 'CLIP vision config'));
  return withWeights(files, weightsPath(files, '', 'CLIP vision model'), (src) => clipVisionFromSource(rt, src, config, o, describe(files, 'config.json')));
}

/** transformers' CLIPModel (both towers) from a folder with a CLIPConfig `config.json`. */
export async function loadClipModel(rt: Runtime, input: ModelFilesInput, o: ModelLoadOptions = {}): Promise<ClipModel> {
  const files = await asModelFiles(input);
  const config = await readJson<ClipModelConfig>(files, 'config.json', 'CLIP config');
  return withWeights(files, weightsPath(files, '', 'CLIP model'), (src) => clipModelFromSource(rt, src, config, o, describe(files, 'config.json')));
}

/** Dinov2Model from a folder (`config.json` of model_type dinov2, `model.safetensors`). */
export async function loadDinov2(rt: Runtime, input: ModelFilesInput, o: ModelLoadOptions = {}): Promise<Dinov2Model> {
  const files = await asModelFiles(input);
  const config = await readJson<Dinov2Config>(files, 'config.json', 'DINOv2 config');
  return withWeights(files, weightsPath(files, '', 'DINOv2 model'), (src) => dinov2FromSource(rt, src, config, o, describe(files, 'config.json')));
}

/** A vision model's preprocessor_config.json, or `fallback` where the folder has none. */
export async function processorConfig(input: ModelFilesInput, fallback: Readonly<ImageProcessorConfig>): Promise<ImageProcessorConfig> {
  const files = await asModelFiles(input);
  const own = await optionalJson<ImageProcessorConfig>(files, 'preprocessor_config.json', 'preprocessor config');
  if (own) validateImageProcessorConfig(own, describe(files, 'preprocessor_config.json'));
  return own ?? { ...fallback };
}

export const IP_ADAPTER_PLUS_FILE = 'ip-adapter-plus_sd15.safetensors';

/** Where IP-Adapter Plus and its image encoder are: the file named (or `ip-adapter-plus_sd15.safetensors`
 *  at the root or in h94/IP-Adapter's `models/`), and `image_encoder/` beside it. */
export function ipAdapterLayout(files: ModelFiles): { adapter: string; imageEncoder: string } {
  const adapter = files.entry ?? (hasFile(files, IP_ADAPTER_PLUS_FILE) ? IP_ADAPTER_PLUS_FILE : hasFile(files, `models/${IP_ADAPTER_PLUS_FILE}`) ? `models/${IP_ADAPTER_PLUS_FILE}` : undefined);
  if (!adapter) throw new FileError(files.name, `no ${IP_ADAPTER_PLUS_FILE} in this folder or its models/`);
  return { adapter, imageEncoder: joinRel(dirOfRel(adapter), 'image_encoder') };
}

export interface IpAdapterLoadOptions extends ModelLoadOptions {
  /** Default scale of `conditioning()` (DiffSim-C uses 0.5). */
  scale?: number;
  /** The CLIP image encoder; default: `image_encoder/` beside the adapter file (h94/IP-Adapter's
   *  `models/` layout); `null`: none. */
  imageEncoder?: ModelFilesInput | null;
  /** Head size of the resampler's attention (the released models use 64). */
  dimHead?: number;
}

export interface LoadedIpAdapter {
  adapter: IpAdapterPlus;
  /** The CLIP ViT-H/14 image encoder, unless `imageEncoder: null`. */
  imageEncoder: ClipVisionModel | null;
}

/** IP-Adapter Plus for `unet` (its resampler config inferred from the tensor shapes), with its image
 *  encoder. The U-Net is not modified: pass `adapter.conditioning(tokens)` to each U-Net call that
 *  should use it. */
export async function loadIpAdapterPlus(rt: Runtime, input: ModelFilesInput, unet: UNet2DConditionModel, o: IpAdapterLoadOptions = {}): Promise<LoadedIpAdapter> {
  const files = await asModelFiles(input);
  const at = ipAdapterLayout(files);
  const adapter = await withWeights(files, at.adapter, (src) => ipAdapterPlusFromSource(rt, src, unet, o));
  if (o.imageEncoder === null) return { adapter, imageEncoder: null };
  try {
    const encFiles = o.imageEncoder !== undefined ? await asModelFiles(o.imageEncoder) : subFiles(files, at.imageEncoder);
    if (!encFiles.paths.length) throw new FileError(describe(files, at.imageEncoder), `no image encoder folder beside ${at.adapter} (config.json and model.safetensors of a CLIP vision model)`);
    const imageEncoder = await loadClipVision(rt, encFiles, o);
    const want = adapter.config.resampler.embed_dims;
    if (imageEncoder.config.hidden_size !== want) {
      imageEncoder.store.dispose();
      throw new FileError(encFiles.name, `hidden size ${imageEncoder.config.hidden_size}, but ${at.adapter} expects image tokens of width ${want}`);
    }
    return { adapter, imageEncoder };
  } catch (e) {
    adapter.store.dispose();
    throw e;
  }
}

/** Where the v0.1 LPIPS heads of `net` may sit in a folder: the fixtures' and this project's
 *  name, the package's own file name, and its path inside the package. */
export function lpipsHeadsCandidates(net: LpipsNet): string[] {
  return [`lpips_${net}_v0.1.safetensors`, `${net}.safetensors`, `weights/v0.1/${net}.safetensors`];
}

/** The weights file of torchvision `features`: the file given, else `model.safetensors` (timm's
 *  hub layout), else the folder's one safetensors checkpoint that is not an LPIPS heads file. */
export function torchvisionFeaturesLayout(files: ModelFiles): string {
  if (files.entry) return files.entry;
  if (hasFile(files, 'model.safetensors')) return 'model.safetensors';
  const heads = new Set((['vgg', 'alex'] as const).flatMap(lpipsHeadsCandidates));
  const names = namesIn(files, '').filter((n) => n.endsWith('.safetensors') && !heads.has(n));
  if (names.length === 1) return names[0]!;
  if (!names.length) return weightsPath(files, '', 'torchvision features');
  throw new FileError(files.name, `several .safetensors files (${names.join(', ')}): name the file of the VGG/AlexNet weights, or keep it as model.safetensors`);
}

/** torchvision VGG16 / VGG19 / AlexNet `features` (torchvision or timm `*.tv_in1k` keys) from a
 *  folder or a .safetensors file; `archs` restricts the architectures accepted, `upTo` the last
 *  module loaded (the later convs' weights in the file are ignored). */
export async function loadTorchvisionFeatures(rt: Runtime, input: ModelFilesInput, o: ModelLoadOptions & { archs?: readonly TorchvisionArch[]; upTo?: number } = {}): Promise<TorchvisionFeatures> {
  const files = await asModelFiles(input);
  return withWeights(files, torchvisionFeaturesLayout(files), (src) => torchvisionFeaturesFromSource(rt, src, o));
}

/** The LPIPS v0.1 heads file of `net` in `files` (the file given, or a known name in the folder). */
export function lpipsHeadsLayout(files: ModelFiles, net: LpipsNet): string {
  if (files.entry) return files.entry;
  const found = lpipsHeadsCandidates(net).find((p) => hasFile(files, p));
  if (!found) throw new FileError(files.name, `no LPIPS v0.1 linear heads for net '${net}' (looked for ${lpipsHeadsCandidates(net).join(', ')}; the heads hold lin0.model.1.weight … lin4.model.1.weight): give them with --lpips-heads (library: the lpipsHeads option)`);
  return found;
}

/** LPIPS v0.1 linear heads (`lin{k}.model.1.weight`, the keys of lpips/weights/v0.1/<net>.pth). */
export async function loadLpipsHeads(rt: Runtime, input: ModelFilesInput, net: LpipsNet, o: ModelLoadOptions = {}): Promise<LpipsHeads> {
  const files = await asModelFiles(input);
  return withWeights(files, lpipsHeadsLayout(files, net), (src) => lpipsHeadsFromSource(rt, src, o));
}

/** Where a DiT model's parts are. 'official': a folder with one safetensors checkpoint in the official
 *  layout at its root (`DiT-XL-2-512x512.pt` converted: x_embedder.*, blocks.N.*, …) and the VAE
 *  (sd-vae-ft-mse, a diffusers AutoencoderKL folder) in `vae/`. 'diffusers': a DiTPipeline folder as
 *  `facebook/DiT-XL-2-256|512` (`transformer/` Transformer2DModel, `vae/`, `scheduler/`). */
export type DitLayout = { kind: 'official'; file: string } | { kind: 'diffusers' };

/** Which layout `files` holds (the official file recognised by its tensor names). */
export async function ditLayout(files: ModelFiles): Promise<DitLayout> {
  if (hasFile(files, 'transformer/config.json')) return { kind: 'diffusers' };
  const root = files.entry ? [files.entry] : namesIn(files, '').filter((n) => n.endsWith('.safetensors'));
  if (root.length === 1) {
    const file = root[0]!;
    const src = await openWeights(files, file, { headersOnly: true });
    try {
      if (!src.has('x_embedder.proj.weight') || !src.has('blocks.0.attn.qkv.weight')) throw new FileError(describe(files, file), `not a DiT checkpoint in the official layout (x_embedder.proj.weight, blocks.0.attn.qkv.weight, …; it has ${firstNames(src)})`);
    } finally {
      await src.close();
    }
    return { kind: 'official', file };
  }
  throw new FileError(files.name, `not a DiT model: expected a DiTPipeline folder (transformer/, vae/, as facebook/DiT-XL-2-512) or a folder with one official-layout DiT checkpoint (.safetensors) and vae/ (found ${root.length > 1 ? `${root.length} .safetensors files at the root: ${root.join(', ')}` : files.paths.slice(0, 6).join(', ') || 'no files'})`);
}

export interface LoadedDit {
  dit: DiT;
  vae: VaeEncoder;
  layout: DitLayout;
  /** The pipeline's own scheduler config (DiT's training schedule), where the folder has one. */
  scheduler?: SchedulerConfig;
}

/** DiT and its VAE from a DiTPipeline folder or an official checkpoint with `vae/` beside it. An
 *  official file's config comes from its "config" metadata where it has one, else from the shapes
 *  (the head count from the released sizes). */
export async function loadDit(rt: Runtime, input: ModelFilesInput, o: ModelLoadOptions = {}): Promise<LoadedDit> {
  const files = await asModelFiles(input);
  if (files.entry) throw new FileError(files.name, 'give the folder that holds the DiT checkpoint and its vae/ (sd-vae-ft-mse), not the file alone');
  const layout = await ditLayout(files);
  if (!hasFile(files, 'vae/config.json')) throw new FileError(describe(files, 'vae'), 'no VAE: DiT needs the sd-vae-ft-mse AutoencoderKL (config.json and weights) in vae/');
  let dit: DiT;
  let scheduler: SchedulerConfig | undefined;
  if (layout.kind === 'diffusers') {
    const where = describe(files, 'transformer/config.json');
    const config = ditConfigFromDiffusers(await readJson<DiffusersDitConfig>(files, 'transformer/config.json', 'DiT transformer config'), where);
    dit = await withWeights(files, weightsPath(files, 'transformer', 'DiT transformer'), (src) => ditFromSource(rt, src, config, { ...o, layout: 'diffusers' }, where));
    scheduler = await optionalJson<SchedulerConfig>(files, SCHEDULER_CONFIG, 'scheduler config');
  } else {
    const where = describe(files, layout.file);
    dit = await withWeights(files, layout.file, async (src) => {
      let config: DitConfig;
      const meta = src.metadata.config;
      if (meta !== undefined) {
        try {
          config = JSON.parse(meta) as DitConfig;
        } catch {
          throw new FileError(where, 'the "config" metadata is not JSON');
        }
        if (config.input_size === undefined && src.has('pos_embed')) config = { ...inferDitConfig(src, where, config.num_heads), ...config };
        validateDitConfig(config, `${where} (config metadata)`);
      } else config = inferDitConfig(src, where);
      return ditFromSource(rt, src, config, { ...o, layout: 'official' }, where);
    });
  }
  try {
    const vaeConfig = await readJson<VaeConfig>(files, 'vae/config.json', 'VAE config');
    const vae = await withWeights(files, weightsPath(files, 'vae', 'VAE'), (src) => vaeEncoderFromSource(rt, src, vaeConfig, o, describe(files, 'vae/config.json')));
    return { dit, vae, layout, ...(scheduler ? { scheduler } : {}) };
  } catch (e) {
    dit.dispose();
    throw e;
  }
}

/** SDXL (stabilityai/stable-diffusion-xl-base-1.0's diffusers layout): two text encoders and
 *  tokenizers, the text_time U-Net, the VAE encoder and the Euler scheduler. */
export interface StableDiffusionXL {
  unet: UNet2DConditionModel;
  vae: VaeEncoder;
  /** CLIPTextModel (its penultimate hidden states). */
  textEncoder: ClipTextModel;
  /** CLIPTextModelWithProjection (penultimate hidden states and the pooled text_embeds). */
  textEncoder2: ClipTextModel;
  tokenizer: ClipTokenizer;
  tokenizer2: ClipTokenizer;
  scheduler: EulerDiscreteScheduler;
  /** model_index.json's force_zeros_for_empty_prompt (SDXL base: true): the unconditional
   *  embeddings of an absent negative prompt are zeros. */
  forceZerosForEmptyPrompt: boolean;
}

/** Whether `files` hold an SDXL pipeline folder (text_encoder_2/ beside unet/). */
export function isSdxlFolder(files: ModelFiles): boolean {
  return hasFile(files, 'unet/config.json') && hasFile(files, 'text_encoder_2/config.json');
}

export function disposeStableDiffusionXL(sd: Partial<StableDiffusionXL>): void {
  for (const m of [sd.unet, sd.vae, sd.textEncoder, sd.textEncoder2]) m?.store.dispose();
}

/** SDXL from a diffusers pipeline folder (fp16 variants and shard indexes as for SD1.5). */
export async function loadSdxl(rt: Runtime, input: ModelFilesInput, o: ModelLoadOptions = {}): Promise<StableDiffusionXL> {
  const files = await asModelFiles(input);
  if (!isSdxlFolder(files)) {
    throw new FileError(files.name, `not an SDXL pipeline folder: expected unet/, vae/, text_encoder/, text_encoder_2/, tokenizer/, tokenizer_2/ and scheduler/ (found ${files.paths.slice(0, 6).join(', ') || 'no files'}${files.paths.length > 6 ? ', …' : ''})`);
  }
  const index = await optionalJson<{ force_zeros_for_empty_prompt?: unknown }>(files, 'model_index.json', 'pipeline index');
  const force = index?.force_zeros_for_empty_prompt ?? true;
  if (typeof force !== 'boolean') throw new FileError(describe(files, 'model_index.json'), `force_zeros_for_empty_prompt must be true or false, got ${JSON.stringify(force)}`);
  const out: Partial<StableDiffusionXL> = { forceZerosForEmptyPrompt: force };
  const part = async <C, M>(dir: string, what: string, make: (src: TensorSource, config: C, where: string) => Promise<M>): Promise<M> => {
    const config = await readJson<C>(files, `${dir}/config.json`, `${what} config`);
    return withWeights(files, weightsPath(files, dir, what), (src) => make(src, config, describe(files, `${dir}/config.json`)));
  };
  try {
    out.unet = await part<UNetConfig, UNet2DConditionModel>('unet', 'U-Net', (src, c, where) => unetFromSource(rt, src, c, o, where));
    if (out.unet.config.addition_embed_type !== 'text_time') throw new FileError(describe(files, 'unet/config.json'), `addition_embed_type ${JSON.stringify(out.unet.config.addition_embed_type ?? null)}: an SDXL U-Net has "text_time"`);
    out.vae = await part<VaeConfig, VaeEncoder>('vae', 'VAE', (src, c, where) => vaeEncoderFromSource(rt, src, c, o, where));
    out.textEncoder = await part<ClipTextConfig, ClipTextModel>('text_encoder', 'text encoder', (src, c, where) => textEncoderFromSource(rt, src, c, o, where));
    out.textEncoder2 = await part<ClipTextConfig, ClipTextModel>('text_encoder_2', 'text encoder 2', (src, c, where) => textEncoderFromSource(rt, src, c, o, where));
    if (!out.textEncoder2.text_projection) throw new FileError(describe(files, 'text_encoder_2'), 'no text_projection.weight: SDXL pools text_encoder_2 through its projection (CLIPTextModelWithProjection)');
    const cross = out.textEncoder.config.hidden_size + out.textEncoder2.config.hidden_size;
    if (cross !== out.unet.config.cross_attention_dim) throw new FileError(describe(files, 'unet/config.json'), `cross_attention_dim ${out.unet.config.cross_attention_dim}, but the two text encoders give ${out.textEncoder.config.hidden_size} + ${out.textEncoder2.config.hidden_size} = ${cross}`);
    out.tokenizer = await ClipTokenizer.fromFiles(subFiles(files, 'tokenizer'));
    out.tokenizer2 = await ClipTokenizer.fromFiles(subFiles(files, 'tokenizer_2'));
    out.scheduler = new EulerDiscreteScheduler(await readJson<SchedulerConfig>(files, SCHEDULER_CONFIG, 'scheduler config'), describe(files, SCHEDULER_CONFIG));
    return out as StableDiffusionXL;
  } catch (e) {
    disposeStableDiffusionXL(out);
    throw e;
  }
}
