// The metric family behind one interface, pyiqa-style, on models from any source (see
// MetricModelSource): an object that embeds images (encoded bytes, decoded images, paths where a
// reader is given) and compares embeddings, with `lowerBetter` saying which way the score points.
// DreamSim's convention holds too: `metric.score(a, b)` is the pair score, `metric.embed(x)` one
// image's embedding. metric.ts loads the models from folders and hub ids (`createMetric`).
//
// An embedding may depend on the image's role in a pair: with the official DiffSim noise, image A
// of a pair always gets draws 1 and 3 and image B draws 2 and 4 (`roleDependent`), so
// score(a, b) = compare(embed(a, 'A'), embed(b, 'B')). The CLIP/DINOv2 metrics and DiffSim with
// shared noise ignore the role.


import type { Runtime } from '../gpu/runtime.js';
import { decodeImage, type RgbImage } from '../io/image.js';
import type { LoadRole } from '../io/events.js';
import type { WeightPrecision } from '../nn/weights.js';
import type { ActivationDType } from '../kernels/common.js';
import type { DiffSimExecution, DiffSimModels } from './core.js';
import type { AasOutputs, AttentionLayout } from './aas.js';
import type { ImageRole } from './embedding.js';
import { mergeSettings, type DiffSimPresetName, type DiffSimSettingsInput, type DitSettingsInput } from './settings.js';
import type { DitModels } from './dit.js';
import type { ClipMetric, Dinov2Metric } from './vision.js';
import type { LpipsModel, LpipsNet, TorchvisionFeatures } from '../models/vgg.js';

/** Every metric `createMetric` builds. */
export const METRIC_NAMES = ['diffsim', 'diffsim-c', 'diffsim-xl', 'clip-aas', 'dino-aas', 'clip', 'dino', 'clipfeats', 'dinofeats', 'diffeats', 'lpips', 'gram', 'diffsim-dit'] as const;
export type MetricName = (typeof METRIC_NAMES)[number];

/** The default models: hub ids (a local folder given instead is used as it is). */
export const DEFAULT_MODELS = Object.freeze({
  model: 'stable-diffusion-v1-5/stable-diffusion-v1-5',
  /** diffsim-xl (its fp16 weight files are taken where published). */
  xlModel: 'stabilityai/stable-diffusion-xl-base-1.0',
  ipAdapter: 'h94/IP-Adapter',
  clipModel: 'openai/clip-vit-base-patch32',
  dinoModel: 'facebook/dinov2-small',
  /** LPIPS' VGG16 backbone (torchvision's ImageNet weights, as safetensors in timm's layout). */
  lpipsModel: 'timm/vgg16.tv_in1k',
  /** The Gram baseline's VGG19 (torchvision's ImageNet weights, as safetensors in timm's layout). */
  vggModel: 'timm/vgg19.tv_in1k',
  /** diffsim-dit: DiT-XL/2 at 512 in diffusers' layout (its own vae/; see docs/diffsim-dit.md). */
  ditModel: 'facebook/DiT-XL-2-512',
});

/** An image: a file path (Node/Deno), the encoded bytes of a PNG/JPEG/BMP, or decoded pixels. */
export type ImageInput = string | Uint8Array | ArrayBuffer | RgbImage;

/** Reads an image file by path (Node/Deno); absent where there is no file system. */
export type ImagePathReader = (path: string) => Promise<RgbImage>;

/** Decodes an image input: bytes are decoded, pixels pass through, a path is read by `readPath`. */
export async function decodeImageInput(input: ImageInput, name = 'image', readPath?: ImagePathReader): Promise<RgbImage> {
  if (typeof input === 'string') {
    if (!readPath) throw new TypeError(`${name}: ${JSON.stringify(input)} is a file path, which only Node and Deno can read; pass the encoded bytes (Uint8Array/ArrayBuffer) or an RgbImage`);
    return readPath(input);
  }
  if (input instanceof Uint8Array) return decodeImage(input, name);
  if (input instanceof ArrayBuffer) return decodeImage(new Uint8Array(input), name);
  if (input && typeof input === 'object' && input.data instanceof Uint8Array && Number.isInteger(input.width) && Number.isInteger(input.height)) {
    if (input.data.length !== input.width * input.height * 3) throw new RangeError(`${name}: ${input.width}×${input.height} RGB pixels need ${input.width * input.height * 3} bytes, got ${input.data.length}`);
    return input;
  }
  throw new TypeError(`${name}: expected ${readPath ? 'a file path, ' : ''}encoded image bytes or an RgbImage ({ width, height, data: Uint8Array })`);
}

/** A model a metric uses: what was asked for, the folder it resolved to, its hub commit if cached. */
export interface ResolvedModel {
  spec: string;
  path: string;
  commit?: string;
  /** A local model (no commit): a digest of its files' paths, sizes and mtimes, so that weights
   *  changed in place give another metric key. */
  stamp?: string;
  /** Which weights of the files were taken where they hold more than one set ('ema': a single-file
   *  checkpoint's EMA U-Net). */
  variant?: string;
}

/** Which model of a metric a load event is about. */
export type ModelRole = LoadRole;

/** LPIPS settings (createMetric's `lpips` option). */
export interface LpipsOptions {
  /** The backbone: 'vgg' (VGG16, DiffSim's and the default) or 'alex' (AlexNet, the package's default). */
  net?: 'vgg' | 'alex';
  /** false (default, as DiffSim): inputs are process_image's [−1, 1]; true: [0, 1] inputs, mapped
   *  by 2x − 1 inside (lpips(…, normalize=True)). The distance is the same up to rounding. */
  normalize?: boolean;
  /** The side images are squashed to (process_image, LANCZOS; default 512). */
  imageSize?: number;
}

/** Gram baseline settings (createMetric's `gram` option). */
export interface GramOptions {
  /** 'last' (default, official): cosine of the Gram matrices' last rows G[-1]; 'all': of the whole
   *  matrices. */
  rows?: 'last' | 'all';
  /** The shorter image side after the resize (default 512, vgg_gram.py's img_size). */
  imageSize?: number;
}

/** The settings of the metrics a call builds (what does not concern where the models come from). */
export interface MetricSettingsOptions {
  /** DiffSim settings (diffsim, diffsim-c, diffsim-xl, diffeats) over the preset's; the defaults otherwise
   *  ({@link DIFFSIM_DEFAULTS}). */
  diffsim?: DiffSimSettingsInput;
  /** diffsim-dit's own settings (timesteps, classLabel); it reads the shared ones (step, layer, seed,
   *  similarity, vae, noise, imageSize, roundToF16) from `diffsim` and the preset. */
  dit?: DitSettingsInput;
  /** A named preset of DiffSim settings ({@link DIFFSIM_PRESETS}: the official per-benchmark
   *  settings, e.g. 'nights' = step 500); `diffsim` settings override it. Same as `diffsim.preset`. */
  preset?: DiffSimPresetName;
  /** Encoder layer of clip-aas, dino-aas, clipfeats, dinofeats (default 0). */
  layer?: number;
  /** Linear/conv weights on the GPU (default f32). */
  weights?: WeightPrecision;
  /** The dtype of the U-Net's and VAE's activations (default f32; f16 needs the adapter's
   *  shader-f16). The text encoder and the CLIP/DINOv2 towers compute in f32. */
  activations?: ActivationDType;
  execution?: DiffSimExecution;
  /** lpips: the backbone ('vgg' default, as DiffSim; 'alex'), [0, 1] inputs (`normalize`), the
   *  image side (default 512). */
  lpips?: LpipsOptions;
  /** gram: which Gram rows the cosine compares ('last', official default; 'all'), the image's
   *  shorter side (default 512). */
  gram?: GramOptions;
}

/** Where a metric family's models come from: folders on disk or the hub cache (metric.ts), or
 *  downloads and picked files (the browser entry). Each model is loaded once per source. */
export interface MetricModelSource {
  /** The model of a role: what was asked for, where it is, its commit when known. */
  resolve(role: ModelRole): Promise<ResolvedModel>;
  /** SD1.5, with the IP-Adapter and its image encoder when `withIp`. */
  diffsimModels(withIp: boolean): Promise<DiffSimModels>;
  /** SDXL (diffsim-xl). */
  diffsimXlModels(): Promise<DiffSimModels>;
  clipMetric(): Promise<ClipMetric>;
  dinoMetric(): Promise<Dinov2Metric>;
  /** LPIPS v0.1 of `net`: the backbone (role lpips) with its linear heads (role lpipsHeads). */
  lpipsModel(net: LpipsNet): Promise<LpipsModel>;
  /** The Gram baseline's VGG19 features up to conv5_1 (role vgg). */
  vggFeatures(): Promise<TorchvisionFeatures>;
  /** DiT and its VAE (diffsim-dit). */
  ditModels(): Promise<DitModels>;
}

/** What {@link buildMetrics} needs besides the metric names. */
export interface BuildMetricsOptions extends MetricSettingsOptions {
  runtime: Runtime;
  /** Close the runtime with the last metric. */
  ownsRuntime: boolean;
  models: MetricModelSource;
  /** How image paths are read (Node/Deno); without it only bytes and pixels are accepted. */
  readPath?: ImagePathReader;
  /** How an image file's bytes are read (Node/Deno), for the gram metric's own decoding. */
  readBytes?: (path: string) => Promise<Uint8Array>;
}

/** One image's embedding under a metric. */
export interface MetricEmbedding {
  readonly metric: MetricName;
  /** The role it was embedded for ('A' unless given). */
  readonly role: ImageRole;
  /** Equal keys ⇔ embeddings of the same metric and settings (comparable, given the roles). */
  readonly key: string;
  dispose(): void;
}

/** A loaded metric. */
export interface Metric {
  readonly name: MetricName;
  /** Whether a lower score means more similar (mse, lpips). */
  readonly lowerBetter: boolean;
  /** Whether an embedding depends on the role it was made for (see the module comment). */
  readonly roleDependent: boolean;
  /** What its embeddings depend on (metric, settings, models): equal keys ⇔ comparable embeddings. */
  readonly key: string;
  readonly runtime: Runtime;
  /** The settings actually used (JSON): module, t, layer, models with their folders and commits, … */
  readonly settings: Readonly<Record<string, unknown>>;
  embed(image: ImageInput, role?: ImageRole): Promise<MetricEmbedding>;
  compare(a: MetricEmbedding, b: MetricEmbedding): Promise<number>;
  /** compare(embed(a, 'A'), embed(b, 'B')). */
  score(a: ImageInput, b: ImageInput): Promise<number>;
  /** An embedding as safetensors bytes (settings in the metadata). */
  saveEmbedding(e: MetricEmbedding): Promise<Uint8Array>;
  /** Reads `saveEmbedding`'s bytes; refuses embeddings of other metrics or settings. */
  loadEmbedding(bytes: Uint8Array, name?: string): Promise<MetricEmbedding>;
  /** Frees the metric's models (and its runtime if it created it). */
  close(): Promise<void>;
  /** The same metric with another DiffSim prompt, on the same models (the benchmark scripts
   *  condition on a prompt per item). Metrics without a prompt (CLIP, DINOv2) return themselves.
   *  The derived metric is freed with this one; its own close() does nothing. */
  withPrompt(prompt: string): Metric;
  /** The AAS metrics (diffsim, diffsim-c, clip-aas, dino-aas): the four attention outputs of a
   *  pair, O_AB, O_AA, O_BA, O_BB, merged heads [B, N, C] (the scored CFG halves; CLIP: after
   *  out_proj). Tensors of the current tidy. */
  attentionOutputs?(a: MetricEmbedding, b: MetricEmbedding): AasOutputs;
  /** The AAS metrics: where the `tokens` query tokens of `attentionOutputs` sit on a
   *  width×height image (a token count that does not fit the layout is refused). */
  attentionLayout?(width: number, height: number, tokens: number): AttentionLayout;
}

/** The lower-is-better flag of a metric under given DiffSim settings, without loading anything. */
export function lowerBetterOf(name: MetricName, settings: DiffSimSettingsInput = {}): boolean {
  if (name === 'lpips') return true;
  return (name === 'diffsim' || name === 'diffsim-c' || name === 'diffsim-xl' || name === 'diffsim-dit') && mergeSettings(settings).similarity === 'mse';
}

export function assertName(name: string): asserts name is MetricName {
  if (!(METRIC_NAMES as readonly string[]).includes(name)) throw new RangeError(`createMetric: unknown metric ${JSON.stringify(name)} (one of ${METRIC_NAMES.join(', ')})`);
}

/** The models each metric loads. */
export function modelsOf(name: MetricName): ModelRole[] {
  if (name === 'diffsim' || name === 'diffeats') return ['sd'];
  if (name === 'diffsim-xl') return ['sdxl'];
  if (name === 'diffsim-c') return ['sd', 'ipAdapter'];
  if (name === 'lpips') return ['lpips', 'lpipsHeads'];
  if (name === 'gram') return ['vgg'];
  if (name === 'diffsim-dit') return ['dit'];
  return name.startsWith('clip') ? ['clip'] : ['dino'];
}
