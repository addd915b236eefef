// Whether a metric's models fit the adapter, decided before any weight is downloaded: from the
// model configs (small JSON files) and the safetensors headers (read by HTTP Range requests, or
// from Cache Storage when the file is there), the GPU buffers the metric will create, each
// compared with the adapter's maxBufferSize (every buffer) and maxStorageBufferBindingSize (every
// buffer a kernel binds whole).
//
// Weights: the models are built on a bare WeightStore (no GPU), so the tensors, their precision on
// the GPU (f16 for the linear/conv weights the load keeps as f16) and the fused q/k/v stacks are
// the ones the load will create. Activations: per layer, its input and output at the image size
// the metric runs at (DiffSim: the S×S image through the VAE encoder and the U-Net, both CFG
// halves; CLIP/DINOv2: the processor's crop through the encoder); attention never materialises
// its score matrix, so the largest activations are feature maps and feed-forward projections.

import { DTYPE_BYTES } from '../gpu/runtime.js';
import { imageProcessorGeometry, type ImageProcessorConfig } from '../io/preprocess.js';
import { describe, joinRel, openWeights, optionalJson, readJson, weightsPath, type ModelFiles } from '../io/model-files.js';
import type { TensorSource } from '../io/safetensors.js';
import { WeightStore, type WeightPrecision } from '../nn/weights.js';
import type { ActivationDType } from '../kernels/common.js';
import { ClipModel, ClipVisionModel, type ClipModelConfig, type ClipVisionConfig } from '../models/clip-vision.js';
import { ClipTextModel, type ClipTextConfig } from '../models/clip-text.js';
import { Dinov2Model, type Dinov2Config } from '../models/dinov2.js';
import { IpAdapterPlus } from '../models/ip-adapter.js';
import { ipAdapterLayout, latentSide, lpipsHeadsLayout, openSd15Components, torchvisionFeaturesLayout, vaeScaleFactor } from '../models/load.js';
import { convIndices, detectArch, GRAM_LAYER, LpipsHeads, poolSide, TorchvisionFeatures, type TorchvisionArch } from '../models/vgg.js';
import { shortEdgeSize } from '../io/preprocess.js';
import { clipVisionConfigOf, inferResamplerConfig } from '../models/sources.js';
import { UNet2DConditionModel, type UNetConfig } from '../models/unet.js';
import { VaeEncoder, legacyVaeKey } from '../models/vae.js';
import { CLIP_IMAGE_PROCESSOR } from '../diffsim/core.js';
import { modelsOf, type MetricName, type ModelRole } from '../diffsim/metric-api.js';
import { mergeSettings, PERCEPTUAL_DEFAULTS, type DiffSimSettingsInput } from '../diffsim/settings.js';
import { DINOV2_IMAGE_PROCESSOR } from '../diffsim/vision.js';

/** One GPU buffer the metric will create. */
export interface BufferNeed {
  kind: 'weight' | 'activation';
  /** The tensor: a checkpoint key (weights; a fused stack's key), or the layer whose input or
   *  output it is (activations). */
  tensor: string;
  /** Where: the file a weight comes from, or the model and image size of an activation. */
  where: string;
  shape: number[];
  dtype: 'f32' | 'f16';
  bytes: number;
  /** Bound whole by a kernel (must fit maxStorageBufferBindingSize); the text encoder's token
   *  table is split into blocks that fit, so only maxBufferSize applies to it. */
  bound: boolean;
}

/** The two adapter limits the check compares with. */
export interface BufferLimits {
  maxBufferSize: number;
  maxStorageBufferBindingSize: number;
}

export interface LimitViolation {
  need: BufferNeed;
  limit: keyof BufferLimits;
  value: number;
}

/** A buffer size for messages: bytes with the unit that reads best (1 MB = 10⁶ bytes). */
export function formatBytes(n: number): string {
  if (n < 1e3) return `${n} B`;
  if (n < 1e6) return `${(n / 1e3).toFixed(1)} kB`;
  if (n < 1e9) return `${(n / 1e6).toFixed(1)} MB`;
  return `${(n / 1e9).toFixed(2)} GB`;
}

/** What a need is, in words: `weight "unet.x.weight" [320, 4, 3, 3] f32 (repo/unet/…safetensors), 46.1 kB`. */
export function describeNeed(n: BufferNeed): string {
  return `${n.kind} "${n.tensor}" [${n.shape.join(', ')}] ${n.dtype} (${n.where}), ${formatBytes(n.bytes)} (${n.bytes} bytes)`;
}

/** The adapter cannot hold a buffer the metric needs. */
export class AdapterLimitError extends Error {
  constructor(
    readonly metric: MetricName,
    readonly violations: readonly LimitViolation[],
  ) {
    const v = violations[0]!;
    const more = violations.length > 1 ? ` (${violations.length - 1} more buffer${violations.length > 2 ? 's' : ''} over the limits)` : '';
    super(`${metric} does not fit this GPU: the ${describeNeed(v.need)} is larger than the adapter's ${v.limit} of ${formatBytes(v.value)} (${v.value} bytes)${more}`);
    this.name = 'AdapterLimitError';
  }
}

/** The needs over a limit, largest first (a buffer over both limits is reported for maxBufferSize). */
export function limitViolations(needs: readonly BufferNeed[], limits: BufferLimits): LimitViolation[] {
  const out: LimitViolation[] = [];
  for (const need of needs) {
    if (need.bytes > limits.maxBufferSize) out.push({ need, limit: 'maxBufferSize', value: limits.maxBufferSize });
    else if (need.bound && need.bytes > limits.maxStorageBufferBindingSize) out.push({ need, limit: 'maxStorageBufferBindingSize', value: limits.maxStorageBufferBindingSize });
  }
  return out.sort((a, b) => b.need.bytes - a.need.bytes);
}

/** The largest need (weights and activations together). */
export function largestNeed(needs: readonly BufferNeed[]): BufferNeed | undefined {
  let best: BufferNeed | undefined;
  for (const n of needs) if (!best || n.bytes > best.bytes) best = n;
  return best;
}

export interface BufferNeedsOptions {
  /** The weight precision the metric will load with (as createWebMetric's `weights`; default f32). */
  weights?: WeightPrecision;
  /** The U-Net's and VAE's activation dtype (as createWebMetric's `activations`; default f32). */
  activations?: ActivationDType;
  /** The DiffSim settings (imageSize, cfg) of diffsim / diffsim-c. */
  diffsim?: DiffSimSettingsInput;
  /** lpips: the squashed side; gram: the shorter side (default 512, as the metrics). */
  imageSize?: number;
  /** The sizes of the images to score (the ViT processors' output can depend on them); default
   *  one 512×512 image. */
  images?: readonly { width: number; height: number }[];
}

// ---------------------------------------------------------------- reading configs and headers


/** A component's weights, headers only (the loaders' choice of file, models/load.ts). */
async function headersOf(files: ModelFiles, path: string): Promise<{ src: TensorSource; file: string }> {
  return { src: await openWeights(files, path, { headersOnly: true }), file: describe(files, path) };
}

async function withHeaders<T>(h: Promise<{ src: TensorSource; file: string }>, fn: (src: TensorSource, file: string) => T | Promise<T>): Promise<T> {
  const { src, file } = await h;
  try {
    return await fn(src, file);
  } finally {
    await src.close();
  }
}

// ---------------------------------------------------------------- weights

/** The GPU buffers of a model's weights, as WeightStore.load creates them from `src`. */
function weightNeeds(store: WeightStore, src: TensorSource, file: string, weights: WeightPrecision, rename: (k: string) => string = (k) => k): BufferNeed[] {
  const byKey = new Map<string, string>();
  for (const ck of src.names()) byKey.set(rename(ck), ck);
  const dtypeOf = new Map<string, 'f32' | 'f16'>();
  const out: BufferNeed[] = [];
  for (const [key, p] of store.params) {
    const ck = byKey.get(key);
    if (ck === undefined) continue; // the load would refuse the file, naming what is missing
    const stored = src.info(ck).dtype;
    const half = p.acceptsF16 && ((weights === 'auto' && stored === 'F16') || weights === 'f16');
    const dtype = half ? 'f16' : 'f32';
    dtypeOf.set(key, dtype);
    const numel = p.shape.reduce((a, b) => a * b, 1);
    out.push({ kind: 'weight', tensor: ck, where: file, shape: [...p.shape], dtype, bytes: numel * DTYPE_BYTES[dtype], bound: !/(^|\.)token_embedding\.weight$/.test(key) });
  }
  // Fused stacks (FusedParam.build): members of one dtype and equal trailing dims, concatenated.
  for (const f of store.fusions) {
    const dtypes = new Set(f.members.map((m) => dtypeOf.get(m.key)));
    if (dtypes.size !== 1 || dtypes.has(undefined)) continue;
    const dtype = [...dtypes][0]!;
    const rest = f.members[0]!.shape.slice(1);
    if (!f.members.every((m) => m.shape.length === rest.length + 1 && m.shape.slice(1).every((d, i) => d === rest[i]) && (m.shape.reduce((a, b) => a * b, 1) * DTYPE_BYTES[dtype]) % 4 === 0)) continue;
    const shape = [f.members.reduce((n, m) => n + m.shape[0]!, 0), ...rest];
    out.push({ kind: 'weight', tensor: f.key, where: `stacked at load from ${file}`, shape, dtype, bytes: shape.reduce((a, b) => a * b, 1) * DTYPE_BYTES[dtype], bound: true });
  }
  return out;
}

// ---------------------------------------------------------------- activations

function act(tensor: string, where: string, shape: number[], dtype: ActivationDType = 'f32'): BufferNeed {
  return { kind: 'activation', tensor, where, shape, dtype, bytes: Math.ceil((shape.reduce((a, b) => a * b, 1) * DTYPE_BYTES[dtype]) / 4) * 4, bound: true };
}

/** A convolution's input and output maps, a linear layer's output rows. */
function layerActs(store: WeightStore, where: string, batch: number, place: (key: string) => { rIn: [number, number]; rOut: [number, number]; tokens: number } | undefined, dtype: ActivationDType = 'f32'): BufferNeed[] {
  const out: BufferNeed[] = [];
  for (const [key, p] of store.params) {
    if (!key.endsWith('.weight')) continue;
    const at = place(key);
    if (!at) continue;
    const layer = key.slice(0, -'.weight'.length);
    if (p.shape.length === 4) {
      out.push(act(`input of ${layer}`, where, [batch, p.shape[1]!, ...at.rIn], dtype));
      out.push(act(`output of ${layer}`, where, [batch, p.shape[0]!, ...at.rOut], dtype));
    } else if (p.shape.length === 2 && !/(token|position|patch)_embedding$/.test(layer)) out.push(act(`output of ${layer}`, where, [batch, at.tokens, p.shape[0]!], dtype));
  }
  for (const f of store.fusions) {
    const at = place(f.key);
    if (!at) continue;
    const rows = f.members.reduce((n, m) => n + m.shape[0]!, 0);
    out.push(act(`output of ${f.key.slice(0, -'.weight'.length)}`, where, [batch, at.tokens, rows], dtype));
  }
  return out;
}

/** The VAE encoder on one S×S image. */
function vaeActs(vae: VaeEncoder, S: number, where: string, dtype: ActivationDType): BufferNeed[] {
  const L = vae.config.block_out_channels.length;
  const res = [S];
  for (let i = 1; i < L; i++) res.push(Math.floor((res[i - 1]! - 2) / 2) + 1);
  const sq = (r: number): [number, number] => [r, r];
  const last = res[L - 1]!;
  return [
    act('input image', where, [1, 3, S, S]),
    ...layerActs(vae.store, where, 1, (key) => {
      if (key.startsWith('encoder.conv_in.')) return { rIn: sq(S), rOut: sq(S), tokens: S * S };
      let m = /^encoder\.down_blocks\.(\d+)\.downsamplers\./.exec(key);
      if (m) return { rIn: sq(res[+m[1]!]!), rOut: sq(res[+m[1]! + 1]!), tokens: 0 };
      m = /^encoder\.down_blocks\.(\d+)\./.exec(key);
      if (m) return { rIn: sq(res[+m[1]!]!), rOut: sq(res[+m[1]!]!), tokens: res[+m[1]!]! ** 2 };
      if (/^(encoder\.(mid_block|conv_out|conv_norm_out)|quant_conv)\./.test(key)) return { rIn: sq(last), rOut: sq(last), tokens: last * last };
      return undefined;
    }, dtype),
  ];
}

/** The U-Net on the [batch, C, r, r] latent (both CFG halves), a context of `contextTokens`. */
function unetActs(unet: UNet2DConditionModel, latent: number, batch: number, contextTokens: number, where: string, dtype: ActivationDType): BufferNeed[] {
  const L = unet.config.block_out_channels.length;
  const res = [latent];
  for (let j = 1; j < L; j++) res.push(Math.floor((res[j - 1]! - 1) / 2) + 1);
  const sq = (r: number): [number, number] => [r, r];
  // Linear layers act on the r² tokens, but cross-attention keys/values on the context and a
  // ResNet's time projection on one row per batch element.
  const at = (r: number, key: string) => ({ rIn: sq(r), rOut: sq(r), tokens: /\.attn2\.(to_k|to_v|to_kv)\./.test(key) ? contextTokens : /\.time_emb_proj\./.test(key) ? 1 : r * r });
  return layerActs(unet.store, where, batch, (key) => {
    if (/^(conv_in|conv_out|conv_norm_out)\./.test(key)) return at(latent, key);
    let m = /^down_blocks\.(\d+)\.downsamplers\./.exec(key);
    if (m) return { rIn: sq(res[+m[1]!]!), rOut: sq(res[+m[1]! + 1]!), tokens: 0 };
    m = /^down_blocks\.(\d+)\./.exec(key);
    if (m) return at(res[+m[1]!]!, key);
    if (key.startsWith('mid_block.')) return at(res[L - 1]!, key);
    m = /^up_blocks\.(\d+)\.upsamplers\./.exec(key);
    if (m) return at(res[L - 2 - +m[1]!]!, key);
    m = /^up_blocks\.(\d+)\./.exec(key);
    if (m) return at(res[L - 1 - +m[1]!]!, key);
    return { rIn: [1, 1], rOut: [1, 1], tokens: 1 }; // the time embedding
  }, dtype);
}

/** A ViT-style encoder (CLIP vision, DINOv2) on [1, 3, H, W]: patches + 1 class token. */
function vitActs(store: WeightStore, prefix: string, H: number, W: number, patch: number, where: string, batch = 1): BufferNeed[] {
  const gh = Math.floor(H / patch);
  const gw = Math.floor(W / patch);
  const tokens = gh * gw + 1;
  return [
    act('input image', where, [batch, 3, H, W]),
    ...layerActs(store, where, batch, (key) => (key.startsWith(prefix) ? { rIn: [H, W], rOut: [gh, gw], tokens } : undefined)),
    // the patch embedding as a matrix, and (DINOv2) the position table interpolated to the grid
    ...[...store.params].filter(([k, p]) => k.startsWith(prefix) && /(patch_embedding\.weight|position_embeddings)$/.test(k) && p.shape.length >= 2).map(([k, p]) => act(`output of ${k}`, where, [batch, tokens, p.shape[0] === 1 ? p.shape[p.shape.length - 1]! : p.shape[0]!])),
  ];
}

function processorInput(cfg: ImageProcessorConfig, images: readonly { width: number; height: number }[]): { H: number; W: number } {
  let H = 0;
  let W = 0;
  for (const im of images.length ? images : [{ width: 512, height: 512 }]) {
    const c = imageProcessorGeometry(im.width, im.height, cfg).crop;
    if (c.width * c.height > H * W) [H, W] = [c.height, c.width];
  }
  return { H, W };
}

// ---------------------------------------------------------------- per role

async function sdNeeds(sd: ModelFiles, ip: ModelFiles | undefined, o: BufferNeedsOptions, variant: 'S' | 'C'): Promise<BufferNeed[]> {
  const weights = o.weights ?? 'f32';
  const s = mergeSettings({ ...o.diffsim, variant });
  const c = await openSd15Components(sd, { headersOnly: true });
  const needs: BufferNeed[] = [];
  let S: number, unet: UNet2DConditionModel, vae: VaeEncoder, textConfig: ClipTextConfig, text: ClipTextModel;
  try {
    const unetConfig = c.unet!.config as UNetConfig & { sample_size?: number };
    const vaeConfig = c.vae!.config;
    textConfig = c.textEncoder!.config;
    S = s.imageSize || (unetConfig.sample_size ?? 64) * vaeScaleFactor(vaeConfig);
    unet = new UNet2DConditionModel(new WeightStore(), unetConfig);
    vae = new VaeEncoder(new WeightStore(), vaeConfig);
    text = new ClipTextModel(new WeightStore(), textConfig);
    needs.push(...weightNeeds(unet.store, c.unet!.source, c.unet!.file, weights));
    needs.push(...weightNeeds(vae.store, c.vae!.source, c.vae!.file, weights, legacyVaeKey));
    needs.push(...weightNeeds(text.store, c.textEncoder!.source, c.textEncoder!.file, weights));
  } finally {
    await c.close();
  }
  const batch = s.cfg ? 2 : 1;
  const px = `${S}×${S} px`;
  const vaeA = vaeActs(vae, S, `VAE encoder, ${px}`, o.activations ?? 'f32');
  const latent = latentSide(vae.config, S);
  const tokens = textConfig.max_position_embeddings;
  needs.push(...vaeA, act('output of text_model.embeddings', 'text encoder', [2, tokens, textConfig.hidden_size]));
  needs.push(...layerActs(text.store, 'text encoder', 2, (key) => (key.includes('token_embedding') || key.includes('position_embedding') ? undefined : { rIn: [1, 1], rOut: [1, 1], tokens })));
  if (variant === 'C') {
    if (!ip) throw new RangeError('diffsim-c: no IP-Adapter files');
    const at = ipAdapterLayout(ip);
    const encConfig = clipVisionConfigOf(await readJson<ClipVisionConfig & { vision_config?: ClipVisionConfig; projection_dim?: number }>(ip, joinRel(at.imageEncoder, 'config.json'), 'CLIP vision config'));
    await withHeaders(headersOf(ip, at.adapter), (src, file) => {
      const adapter = new IpAdapterPlus(new WeightStore(), { resampler: inferResamplerConfig(src), ip_scale: s.ipScale }, unet);
      const r = adapter.config.resampler;
      const imageTokens = Math.floor(encConfig.image_size / encConfig.patch_size) ** 2 + 1;
      needs.push(...weightNeeds(adapter.store, src, file, weights));
      // The resampler's layers read the image tokens and the queries together ([2, T + Q, ·]).
      needs.push(...layerActs(adapter.store, 'IP-Adapter resampler', batch, (key) => (key.startsWith('image_proj.') ? { rIn: [1, 1], rOut: [1, 1], tokens: imageTokens + r.num_queries } : undefined)));
    });
    await withHeaders(headersOf(ip, weightsPath(ip, at.imageEncoder, 'IP-Adapter image encoder')), (src, file) => {
      const enc = new ClipVisionModel(new WeightStore(), encConfig, { projection: src.has('visual_projection.weight') });
      needs.push(...weightNeeds(enc.store, src, file, weights));
      needs.push(...vitActs(enc.store, 'vision_model.', encConfig.image_size, encConfig.image_size, encConfig.patch_size, 'IP image encoder'));
    });
  }
  needs.push(...unetActs(unet, latent, batch, tokens, `U-Net, ${px}`, o.activations ?? 'f32'));
  return needs;
}

async function clipNeeds(f: ModelFiles, o: BufferNeedsOptions): Promise<BufferNeed[]> {
  const config = await readJson<ClipModelConfig>(f, 'config.json', 'CLIP config');
  const processor = (await optionalJson<ImageProcessorConfig>(f, 'preprocessor_config.json', 'preprocessor config')) ?? { ...CLIP_IMAGE_PROCESSOR };
  const model = new ClipModel(new WeightStore(), config);
  const needs: BufferNeed[] = [];
  await withHeaders(headersOf(f, weightsPath(f, '', 'CLIP model')), (src, file) => needs.push(...weightNeeds(model.store, src, file, o.weights ?? 'f32')));
  const { H, W } = processorInput(processor, o.images ?? [{ width: 512, height: 512 }]);
  needs.push(...vitActs(model.store, 'vision_model.', H, W, config.vision_config.patch_size, `CLIP vision, ${W}×${H} px`));
  return needs;
}

async function dinoNeeds(f: ModelFiles, o: BufferNeedsOptions): Promise<BufferNeed[]> {
  const config = await readJson<Dinov2Config>(f, 'config.json', 'DINOv2 config');
  const processor = (await optionalJson<ImageProcessorConfig>(f, 'preprocessor_config.json', 'preprocessor config')) ?? { ...DINOV2_IMAGE_PROCESSOR };
  const model = new Dinov2Model(new WeightStore(), config);
  const needs: BufferNeed[] = [];
  await withHeaders(headersOf(f, weightsPath(f, '', 'DINOv2 model')), (src, file) => needs.push(...weightNeeds(model.store, src, file, o.weights ?? 'f32')));
  const { H, W } = processorInput(processor, o.images ?? [{ width: 512, height: 512 }]);
  needs.push(...vitActs(model.store, '', H, W, config.patch_size, `DINOv2, ${W}×${H} px`));
  return needs;
}

/** torchvision `features` (LPIPS' backbone, the Gram baseline's VGG19): the weights and every
 *  module's output map for an H×W input. */
async function featuresNeeds(f: ModelFiles, archs: readonly TorchvisionArch[], upTo: number | undefined, H: number, W: number, o: BufferNeedsOptions): Promise<BufferNeed[]> {
  const needs: BufferNeed[] = [];
  await withHeaders(headersOf(f, torchvisionFeaturesLayout(f)), (src, file) => {
    const arch = detectArch(src, archs);
    const widths = convIndices(arch).filter((i) => upTo === undefined || i <= upTo).map((i) => src.info(`features.${i}.weight`).shape[0]!);
    const model = new TorchvisionFeatures(new WeightStore(), arch, widths, upTo ?? (arch === 'alexnet' ? 12 : arch === 'vgg16' ? 30 : 36));
    needs.push(...weightNeeds(model.store, src, file, o.weights ?? 'f32'));
    let [h, w, c] = [H, W, 3];
    needs.push(act('input', `${arch}, ${W}×${H} px`, [1, 3, H, W]));
    model.ops.forEach((op, i) => {
      if (op.kind === 'conv') {
        c = model.convs.get(i)!.outChannels;
        h = poolSide(h + 2 * op.padding, op.kernel, op.stride);
        w = poolSide(w + 2 * op.padding, op.kernel, op.stride);
      } else if (op.kind === 'pool') {
        h = poolSide(h, op.kernel, op.stride);
        w = poolSide(w, op.kernel, op.stride);
      }
      needs.push(act(`features.${i}:out`, `${arch}, ${W}×${H} px`, [1, c, Math.max(h, 0), Math.max(w, 0)]));
    });
  });
  return needs;
}

/** Every GPU buffer the metric will create (weights and activations), from the configs and the
 *  safetensors headers of its model files: nothing but those is read. */
export async function bufferNeeds(name: MetricName, files: Partial<Record<ModelRole, ModelFiles>>, o: BufferNeedsOptions = {}): Promise<BufferNeed[]> {
  const of = (role: ModelRole): ModelFiles => {
    const f = files[role];
    if (!f) throw new RangeError(`no model files given for the ${role} model`);
    return f;
  };
  const roles = modelsOf(name);
  if (name === 'diffsim-dit') throw new RangeError('bufferNeeds: diffsim-dit has no buffer plan for the browser entry yet');
  const side = o.imageSize ?? (name === 'gram' ? PERCEPTUAL_DEFAULTS.gram.imageSize : PERCEPTUAL_DEFAULTS.lpips.imageSize);
  if (name === 'lpips') {
    const needs = await featuresNeeds(of('lpips'), ['vgg16', 'alexnet'], undefined, side, side, o);
    const heads = of('lpipsHeads');
    const net = needs.some((n) => n.where.startsWith('alexnet')) ? 'alex' : 'vgg';
    await withHeaders(headersOf(heads, lpipsHeadsLayout(heads, net)), (src, file) => {
      const channels = [0, 1, 2, 3, 4].map((k) => (src.has(`lin${k}.model.1.weight`) ? src.info(`lin${k}.model.1.weight`).shape[1]! : 0));
      needs.push(...weightNeeds(new LpipsHeads(channels).store, src, file, o.weights ?? 'f32'));
    });
    return needs;
  }
  if (name === 'gram') {
    const [w, h] = (o.images ?? [{ width: side, height: side }]).map((i) => shortEdgeSize(i.width, i.height, side)).reduce((a, b) => (a[0] * a[1] >= b[0] * b[1] ? a : b));
    return featuresNeeds(of('vgg'), ['vgg19'], GRAM_LAYER, h, w, o);
  }
  if (roles.includes('sd')) return sdNeeds(of('sd'), roles.includes('ipAdapter') ? of('ipAdapter') : undefined, o, name === 'diffsim-c' ? 'C' : 'S');
  return roles.includes('clip') ? clipNeeds(of('clip'), o) : dinoNeeds(of('dino'), o);
}

/** Refuses (AdapterLimitError, naming the largest buffer over a limit) a metric whose buffers do
 *  not fit `limits`; returns the needs and the largest one otherwise. */
export async function checkAdapterLimits(name: MetricName, files: Partial<Record<ModelRole, ModelFiles>>, limits: BufferLimits, o: BufferNeedsOptions = {}): Promise<{ needs: BufferNeed[]; largest: BufferNeed }> {
  const needs = await bufferNeeds(name, files, o);
  const over = limitViolations(needs, limits);
  if (over.length) throw new AdapterLimitError(name, over);
  return { needs, largest: largestNeed(needs)! };
}
