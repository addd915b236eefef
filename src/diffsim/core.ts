// DiffSim on Stable Diffusion 1.5: DiffSim-S (self-attention AAS) and DiffSim-C (IP-Adapter Plus
// cross-attention AAS), as the official `DiffSim.diffsim()` computes them, with its quirks as
// defaults and switches for the intended behaviour (see settings.ts).
//
// One image's pass (`embed`):
//   process_image: LANCZOS squash to S×S, [−1, 1]                      [1, 3, S, S]
//   VAE encoder → posterior; z0 = 0.18215·(mean + std·ε_vae)          [1, 4, s, s], s = S/8
//   z_t = √ᾱ_t·z0 + √(1−ᾱ_t)·ε (PNDM add_noise), t from the step setting
//   CFG batch: [z_t, z_t] with text [E(negative), E(prompt)]          [2, 77, D]
//   (DiffSim-C: IP tokens of [zeros image, image] through the resampler, scale 0.5)
//   U-Net up to the hooked attention: its to_q/to_k/to_v outputs      [2, N, C] each
//   (DiffSim-C: Q = attn2.to_q(norm2 out) [2, N, C], K/V = to_k_ip/to_v_ip(tokens) [2, 16, C])
// The pair's score (`compare`) is the AAS of aas.ts over both CFG halves, all heads and tokens.
// DiffSim on SDXL (diffsim-xl; models.xl present) differs where diffsim_xl.py does:
//   z0 = 0.13025·(mean + std·ε_vae); official: z0·init_noise_sigma (≈ 14.65) before noising
//   Euler: t = timesteps[step] = 1000 − step, x_t = z0' + σ(t)·ε, U-Net input x_t/√(σ²+1)
//   text: [penultimate(text_encoder), penultimate(text_encoder_2)] concatenated   [2, 77, D1+D2]
//         with zeros for the empty negative prompt (force_zeros_for_empty_prompt), pooled
//         text_embeds of text_encoder_2 (zeros likewise) and add_time_ids (1024, 1024, 0, 0, 1024, 1024)
//   hook: the list-valued target (hook.ts resolveXlHook)
// The models come from the one loader layer (load.ts over models/load.ts): a local folder or file,
// the hub cache, downloads or picked files.

import { tidy, type Runtime, type Tensor } from '../gpu/runtime.js';
import { f16BitsToF32, f32ToF16Bits } from '../platform/half.js';
import { binary, unary } from '../kernels/elementwise.js';
import { concat, slice } from '../kernels/layout.js';
import type { RgbImage } from '../io/image.js';
import { imageProcessor, processImage, type ImageProcessorConfig } from '../io/preprocess.js';
import { EulerDiscreteScheduler, NormalGenerator, PNDMScheduler } from '../models/scheduler.js';
import { latentSide, vaeScaleFactor, type ModelFilesInput } from '../models/load.js';
import { adoptTap } from '../nn/context.js';
import { aasFromSums, aasOutputs, aasScores, aasSums, type AasOutputs, type AasScores, type Qkv } from './aas.js';
import { DiffSimEmbedding, type DiffSimIntermediates, type ImageRole, type NoiseSource } from './embedding.js';
import { ConfigError } from '../io/config-check.js';
import { firstBadStage, folderOf, nonFiniteError, type BadStage, type Stage } from './finite.js';
import { resolveHook, resolveXlHook, type HookPoint } from './hook.js';
import { loadDiffSimModels, type DiffSimLoadOptions, type DiffSimModels } from './load.js';
import { blockOf, DIFFSIM_XL_DEFAULTS, XL_SETTINGS, DiffSimSettingsError, embeddingSettings, mergeSettings, settingsDiff, settingsKey, type DiffSimPresetName, type DiffSimSettings, type DiffSimSettingsInput, type EmbeddingSettings, type ResolvedDiffSimSettings } from './settings.js';

export type { DiffSimModels, DiffSimLoadOptions } from './load.js';

/** How passes run; never changes a score, so embeddings made with different execution options compare. */
export interface DiffSimExecution {
  /** Stop each U-Net pass right after the hooked attention (default true). */
  earlyStop?: boolean;
  /** DiffSim-S with prompt = negative prompt: run the U-Net on batch 1 and duplicate the result,
   *  since both CFG halves are then identical (default true). Not applied to DiffSim-C, whose
   *  halves differ by their IP image (zeros vs the image). */
  dedupeCfg?: boolean;
}

/** Noise to use instead of the seeded generator (e.g. the reference's saved draws). */
export interface GivenNoise {
  /** ε of the VAE posterior sample, [1, latent_channels, s, s] (unused with vae: 'mean'). */
  vae?: Float32Array | undefined;
  /** The forward-diffusion noise, [1, latent_channels, s, s]. */
  forward: Float32Array;
}

export interface EmbedOptions {
  noise?: GivenNoise;
  /** process_image output [1, 3, S, S] in [−1, 1], used instead of preprocessing the image (the
   *  IP image of DiffSim-C still comes from `image`). */
  processed?: Float32Array;
  /** Clean latents z0 [1, latent_channels, s, s] (VAE output × scaling factor) to use instead of
   *  encoding the image, e.g. the latents of an earlier pass for another step or layer. */
  latents?: Float32Array;
  /** Keep the pass's intermediates (latents, noisy latents, IP image embeddings and tokens). */
  keepIntermediates?: boolean;
  /** Further U-Net taps of the pass (names of `unet.vocabulary.taps`, e.g.
   *  `up_blocks.1.attentions.2.transformer_blocks.0.attn1:out`), kept in `embedding.taps`. The
   *  pass still stops early when they all belong to the hooked module. */
  taps?: readonly string[];
  /** The caller knows that every tap of `taps` is recorded before the hooked module ends (e.g. the
   *  q/k/v of shallower hooks, as a layer sweep asks for): the pass still stops right after the
   *  hooked module. A tap that is not reached by then is reported missing, never left out. */
  tapsBeforeHook?: boolean;
}

/** The names of the q, k and v taps DiffSim reads at a hooked attention module: attn1's own
 *  projections (DiffSim-S), or attn2's queries with the IP-Adapter's image keys/values (DiffSim-C). */
export function hookTaps(variant: 'S' | 'C', module: string): { q: string; k: string; v: string } {
  return {
    q: `${module}.to_q:out`,
    k: variant === 'S' ? `${module}.to_k:out` : `${module}.processor.to_k_ip.0:out`,
    v: variant === 'S' ? `${module}.to_v:out` : `${module}.processor.to_v_ip.0:out`,
  };
}

/** A pair's score with its parts. */
/** What DiffSim on SDXL conditions the U-Net with, besides the text states. */
export interface XlConditioning {
  /** σ(t) of the Euler schedule at the hooked step. */
  sigma: number;
  /** The factor of the clean latents before noising: init_noise_sigma (official) or 1. */
  latentScale: number;
  /** scale_model_input's 1/√(σ² + 1). */
  inputScale: number;
  /** add_time_ids of one sample (original size, crop top-left, target size). */
  timeIds: number[];
}

export interface DiffSimScore extends AasScores {
  /** The score the settings ask for: cosine (higher = more similar) or mse (lower = more
   *  similar), rounded to float16 with roundToF16. */
  score: number;
}

/** OpenAI CLIP preprocessing, the SD1.5 feature extractor's values. */
export const CLIP_IMAGE_PROCESSOR: Readonly<ImageProcessorConfig> = Object.freeze({
  do_resize: true,
  size: { shortest_edge: 224 },
  resample: 3,
  do_center_crop: true,
  crop_size: { height: 224, width: 224 },
  do_rescale: true,
  rescale_factor: 1 / 255,
  do_normalize: true,
  image_mean: [0.48145466, 0.4578275, 0.40821073],
  image_std: [0.26862954, 0.26130258, 0.27577711],
});

const f16 = (x: number) => f16BitsToF32(f32ToF16Bits(x));

/** The image sides a model's sample_size may give as the default (those --size accepts). */
export const DEFAULT_IMAGE_SIZE_RANGE = [64, 4096] as const;

export class DiffSim {
  readonly settings: Readonly<ResolvedDiffSimSettings>;
  /** The preset the settings started from (null: the defaults). A label only: the resolved
   *  settings say what was run, so it is not part of the embedding key. */
  readonly preset: DiffSimPresetName | null;
  /** What this metric's embeddings depend on (the settings without the scoring ones). */
  readonly embeddingSettings: Readonly<EmbeddingSettings>;
  /** Identity of the embedding settings (equal for comparable embeddings). */
  readonly key: string;
  readonly hook: HookPoint;
  private readonly exec: Required<DiffSimExecution>;
  private text: { ids: Int32Array; states: Tensor; pooled?: Tensor } | null = null;
  /** SDXL: the Euler and added-conditioning constants (null for SD1.5). */
  readonly xl: Readonly<XlConditioning> | null = null;
  private uncondImage: Tensor | null = null;
  /** Whether the text states were read back and found finite. */
  private textChecked = false;

  constructor(
    readonly rt: Runtime,
    readonly models: DiffSimModels,
    settings: DiffSimSettingsInput = {},
    execution: DiffSimExecution = {},
  ) {
    const isXl = models.xl !== undefined;
    const s = mergeSettings(settings, isXl ? DIFFSIM_XL_DEFAULTS : undefined);
    this.preset = settings.preset ?? null;
    const { unet, vae, scheduler } = models;
    if (isXl !== scheduler instanceof EulerDiscreteScheduler) throw new DiffSimSettingsError(`DiffSim: ${isXl ? 'SDXL needs its EulerDiscreteScheduler' : 'SD1.5 needs its PNDMScheduler'}`);
    if (isXl && s.variant === 'C') throw new DiffSimSettingsError('DiffSim-C (variant C) on SDXL is not supported (the official IP-Adapter hook crashes, spec Q11)');
    if (!isXl) {
      const given = XL_SETTINGS.filter((k) => JSON.stringify(s[k]) !== JSON.stringify(DIFFSIM_XL_DEFAULTS[k]));
      if (given.length) throw new DiffSimSettingsError(`DiffSim: ${given.join(', ')} apply to SDXL (diffsim-xl) only; SD1.5 takes a single layer`);
    }
    if (s.variant === 'C' && (!models.ipAdapter || !models.imageEncoder)) {
      throw new DiffSimSettingsError('DiffSim-C (variant C) needs models.ipAdapter and models.imageEncoder');
    }
    if (models.ipAdapter && models.ipAdapter.unet !== unet) throw new DiffSimSettingsError('DiffSim: the IP-Adapter was built for another U-Net instance');
    const block = blockOf(s.block);
    // SDXL honours the target (diffsim_xl.py does not force it to 0).
    const layer = s.layerMode === 'official-force-0' && !isXl ? 0 : s.layer;
    const hook = isXl ? resolveXlHook(unet, block, s.target.length ? s.target : [layer], 'attn1') : resolveHook(unet, block, layer, s.variant === 'S' ? 'attn1' : 'attn2');
    const t = scheduler instanceof EulerDiscreteScheduler ? DiffSim.eulerStep(scheduler, s).t : DiffSim.timestepFor(scheduler, s);
    const vaeFactor = vaeScaleFactor(vae.config);
    const sampleSize = unet.config.sample_size;
    let imageSize = s.imageSize;
    if (imageSize === 0) {
      if (typeof sampleSize !== 'number') throw new ConfigError(unet.where, 'sample_size', 'is missing: give the image size (imageSize, --size)');
      imageSize = sampleSize * vaeFactor;
      // The model's default size is bounded like an image size given on the command line.
      if (!Number.isInteger(imageSize) || imageSize < DEFAULT_IMAGE_SIZE_RANGE[0] || imageSize > DEFAULT_IMAGE_SIZE_RANGE[1]) {
        throw new ConfigError(unet.where, 'sample_size', `${sampleSize} gives a default image size of ${imageSize} (× the VAE factor ${vaeFactor}), outside ${DEFAULT_IMAGE_SIZE_RANGE[0]}–${DEFAULT_IMAGE_SIZE_RANGE[1]}: fix the config or give the image size (imageSize, --size)`);
      }
    }
    // Any size works, as in diffusers: the VAE floors, and the U-Net's upsamplers follow the skips
    // when the latent is not a multiple of its overall factor.
    if (!Number.isInteger(imageSize) || imageSize < vaeFactor) {
      throw new DiffSimSettingsError(`DiffSim: imageSize must be an integer ≥ ${vaeFactor} (the VAE factor), got ${imageSize}`);
    }
    if (vae.config.latent_channels !== unet.config.in_channels) throw new DiffSimSettingsError(`DiffSim: VAE latents have ${vae.config.latent_channels} channels, the U-Net takes ${unet.config.in_channels}`);
    this.hook = hook;
    const resolved: ResolvedDiffSimSettings = { ...s, block, layer: hook.layer, module: hook.module, heads: hook.heads, t, imageSize };
    if (isXl && scheduler instanceof EulerDiscreteScheduler) {
      resolved.target = (hook as HookPoint & { target: number[] }).target;
      const { sigma } = DiffSim.eulerStep(scheduler, s);
      const side = s.xlTimeIds === 'official' ? (sampleSize ?? 128) * vaeFactor : imageSize;
      this.xl = Object.freeze({
        sigma,
        latentScale: s.xlLatentScale === 'official' ? scheduler.initNoiseSigma(s.inferenceSteps) : 1,
        inputScale: scheduler.inputScale(sigma),
        timeIds: [side, side, 0, 0, side, side],
      });
    } else for (const k of XL_SETTINGS) delete (resolved as unknown as Record<string, unknown>)[k];
    this.settings = Object.freeze(resolved);
    this.embeddingSettings = Object.freeze(embeddingSettings(this.settings));
    this.key = settingsKey(this.embeddingSettings);
    this.exec = { earlyStop: execution.earlyStop ?? true, dedupeCfg: execution.dedupeCfg ?? true };
  }

  /** The diffusion timestep of the step setting. Official: timesteps(inferenceSteps)[step]; step 0
   *  maps to t = num_train_timesteps (1000), where the official code crashes: refused. */
  /** Loads SD1.5 (a diffusers pipeline folder or a single-file checkpoint: a local path, or
   *  ModelFiles from anywhere) and, for DiffSim-C, IP-Adapter Plus from `o.ipAdapter`. */
  static async load(rt: Runtime, sd: ModelFilesInput, settings: DiffSimSettingsInput = {}, o: DiffSimLoadOptions & { execution?: DiffSimExecution } = {}): Promise<DiffSim> {
    return new DiffSim(rt, await loadDiffSimModels(rt, sd, o), settings, o.execution);
  }

  /** The models {@link load} loads, to share between metrics with different settings. */
  static loadModels(rt: Runtime, sd: ModelFilesInput, o: DiffSimLoadOptions = {}): Promise<DiffSimModels> {
    return loadDiffSimModels(rt, sd, o);
  }

  /** SDXL's Euler step: t = timesteps(inferenceSteps)[step] (1000 steps: t = 1000 − step; step 0
   *  gives t = 1000, whose σ clamps to σ(999)), or with stepMode 'timestep' the timestep itself
   *  (one of the list's), and σ(t). */
  static eulerStep(scheduler: EulerDiscreteScheduler, s: Pick<DiffSimSettings, 'step' | 'stepMode' | 'inferenceSteps'>): { t: number; sigma: number } {
    let list: number[];
    try {
      list = scheduler.timesteps(s.inferenceSteps);
    } catch (e) {
      throw new DiffSimSettingsError(`DiffSim: inferenceSteps: ${(e as Error).message}`);
    }
    const sigmas = scheduler.sigmas(s.inferenceSteps);
    let index: number;
    if (s.stepMode === 'timestep') {
      index = list.indexOf(s.step);
      if (index < 0) throw new DiffSimSettingsError(`DiffSim: timestep ${s.step} is not in the Euler schedule for ${s.inferenceSteps} inference steps (${list[list.length - 1]}–${list[0]})`);
    } else {
      index = s.step;
      if (!Number.isInteger(index) || index < 0 || index >= list.length) throw new DiffSimSettingsError(`DiffSim: step ${s.step} is not an index into the ${list.length}-entry Euler timestep list for ${s.inferenceSteps} inference steps (0–${list.length - 1}; larger = less noise)`);
    }
    return { t: list[index]!, sigma: sigmas[index]! };
  }

  static timestepFor(scheduler: PNDMScheduler, s: Pick<DiffSimSettings, 'step' | 'stepMode' | 'inferenceSteps'>): number {
    const n = scheduler.config.num_train_timesteps;
    if (s.stepMode === 'timestep') {
      if (!Number.isInteger(s.step) || s.step < 0 || s.step >= n) throw new DiffSimSettingsError(`DiffSim: timestep ${s.step} outside [0, ${n - 1}]`);
      return s.step;
    }
    let list: number[];
    try {
      list = scheduler.timesteps(s.inferenceSteps);
    } catch (e) {
      throw new DiffSimSettingsError(`DiffSim: inferenceSteps: ${(e as Error).message}`);
    }
    if (!Number.isInteger(s.step) || s.step < 0 || s.step >= list.length) {
      throw new DiffSimSettingsError(`DiffSim: step ${s.step} is not an index into the ${list.length}-entry timestep list for ${s.inferenceSteps} inference steps (1–${list.length - 1}; larger = less noise)`);
    }
    const t = list[s.step]!;
    if (t >= n) {
      throw new DiffSimSettingsError(
        `DiffSim: step ${s.step} maps to timestep ${t}, outside the ${n}-step schedule (the official code crashes here); use a step ≥ 1, or stepMode 'timestep' to give t directly`,
      );
    }
    return t;
  }

  /** Latent grid side: the VAE encoder's output for an S×S image (S / 8 when S is a multiple of 8;
   *  each downsampler pads (0, 1, 0, 1) and applies a stride-2 3×3 conv, so odd sizes floor). */
  get latentSize(): number {
    const side = latentSide(this.models.vae.config, this.settings.imageSize);
    return side;
  }

  /** The four official draws of one comparison (fresh generator seeded with the seed):
   *  ε_vae(A), ε_vae(B), noise(A), noise(B); returns the pair for `role` (A's with noise 'shared').
   *  All four are always drawn, so the forward noise does not depend on the vae setting. */
  generatorNoise(role: ImageRole): Required<GivenNoise> {
    const n = this.models.vae.config.latent_channels * this.latentSize ** 2;
    const g = new NormalGenerator(this.settings.seed);
    const epsA = g.randn(n);
    const epsB = g.randn(n);
    const noiseA = g.randn(n);
    const noiseB = g.randn(n);
    return role === 'A' || this.settings.noise === 'shared' ? { vae: epsA, forward: noiseA } : { vae: epsB, forward: noiseB };
  }

  /** Token ids and text-encoder states of the CFG batch [negative prompt, prompt] (or the prompt
   *  alone without CFG): [B, 77, D], computed once and kept by the metric. */
  textConditioning(): { ids: Int32Array; states: Tensor; pooled?: Tensor } {
    if (this.text) return this.text;
    if (this.models.xl) return (this.text = this.xlTextConditioning());
    const { tokenizer, textEncoder } = this.models;
    const s = this.settings;
    const prompts = s.cfg ? [s.negativePrompt, s.prompt] : [s.prompt];
    const ids = Int32Array.from(prompts.flatMap((p) => tokenizer.encode(p)));
    const states = tidy(() => textEncoder.forward(ids, prompts.length).lastHiddenState!).keep();
    this.text = { ids, states };
    return this.text;
  }

  /** SDXL's encode_prompt: per prompt, the penultimate hidden states of both encoders
   *  concatenated [77, D1 + D2] and text_encoder_2's text_embeds [P]; with force_zeros_for_empty_prompt
   *  and the negative prompt '' (the official pipeline passes none) the unconditional half is zeros. */
  private xlTextConditioning(): { ids: Int32Array; states: Tensor; pooled: Tensor } {
    const { tokenizer, textEncoder, xl } = this.models;
    if (!xl) throw new DiffSimSettingsError('DiffSim: not an SDXL pipeline');
    const s = this.settings;
    const zeroUncond = s.cfg && xl.forceZerosForEmptyPrompt && s.negativePrompt === '';
    const prompts = s.cfg && !zeroUncond ? [s.negativePrompt, s.prompt] : [s.prompt];
    const ids1 = Int32Array.from(prompts.flatMap((p) => tokenizer.encode(p)));
    const ids2 = Int32Array.from(prompts.flatMap((p) => xl.tokenizer2.encode(p)));
    const penultimate = (enc: typeof textEncoder, ids: Int32Array, extra: string[]) => {
      const name = `hidden_states.${enc.layers.length - 1}`;
      const out = enc.forward(ids, prompts.length, { capture: [name, ...extra] });
      const got = [name, ...extra].map((n) => adoptTap(out.taps.take(n)));
      out.taps.dispose();
      return got;
    };
    const { states, pooled } = tidy(() => {
      const [p1] = penultimate(textEncoder, ids1, []);
      const [p2, embeds] = penultimate(xl.textEncoder2, ids2, ['text_embeds']);
      let states = concat([p1!, p2!], 2);
      let pooled = embeds!;
      if (zeroUncond) {
        states = concat([this.rt.zeros([1, states.shape[1]!, states.shape[2]!]), states], 0);
        pooled = concat([this.rt.zeros([1, pooled.shape[1]!]), pooled], 0);
      }
      return { states, pooled };
    });
    states.keep();
    pooled.keep();
    return { ids: Int32Array.from([...ids1, ...ids2]), states, pooled };
  }

  /** The image encoder's penultimate hidden states of the IP image batch [zeros, image]
   *  (or [image] without CFG): [B, T, E]. The zeros-image states are computed once. */
  ipImageEmbeds(image: RgbImage): Tensor {
    const enc = this.models.imageEncoder;
    if (!enc) throw new DiffSimSettingsError('DiffSim: no image encoder');
    const cfg = this.models.featureExtractor ?? CLIP_IMAGE_PROCESSOR;
    const px = imageProcessor(image, cfg);
    const size = enc.config.image_size;
    if (px.width !== size || px.height !== size) throw new DiffSimSettingsError(`DiffSim-C: the feature extractor gives ${px.width}×${px.height} pixels, the image encoder takes ${size}×${size}`);
    const layers = enc.layers;
    // hidden_states[-2] is the output of layer L−2: the pass can stop there.
    const opts = { capture: ['penultimate'], ...(this.exec.earlyStop && layers.length >= 2 ? { stopAfter: layers[layers.length - 2]!.path } : {}) };
    const run = (pixels: Tensor) => adoptTap(enc.forward(pixels, opts).taps.take('penultimate'));
    if (this.settings.cfg && !this.uncondImage) {
      // diffusers' encode_image: the unconditional embedding is the encoder on an all-zeros pixel tensor.
      this.uncondImage = tidy(() => run(this.rt.zeros([1, 3, size, size]))).keep();
    }
    return tidy(() => {
      const cond = run(this.rt.upload(px.data, [1, 3, size, size]));
      return this.uncondImage ? concat([this.uncondImage, cond], 0) : cond;
    });
  }

  /** One image's hooked Q/K/V (both CFG halves) with the settings. `role` picks its noise draws
   *  (official: A and B get different draws; the same role always the same). */
  embed(image: RgbImage, role: ImageRole, o: EmbedOptions = {}): DiffSimEmbedding {
    if (role !== 'A' && role !== 'B') throw new DiffSimSettingsError(`DiffSim: role must be 'A' or 'B', got ${JSON.stringify(role)}`);
    const s = this.settings;
    const { unet, vae, scheduler, ipAdapter } = this.models;
    const S = s.imageSize;
    const lat = this.latentSize;
    const latShape = [1, vae.config.latent_channels, lat, lat];
    const latNumel = latShape[1]! * lat * lat;
    if (o.latents && o.latents.length !== latNumel) throw new DiffSimSettingsError(`DiffSim: given latents have ${o.latents.length} values, [${latShape.join(', ')}] needs ${latNumel}`);
    const pixels = o.latents ? null : (o.processed ?? processImage(image, S));
    if (pixels && pixels.length !== 3 * S * S) throw new DiffSimSettingsError(`DiffSim: processed image has ${pixels.length} values, [1, 3, ${S}, ${S}] needs ${3 * S * S}`);
    const noise = o.noise ?? this.generatorNoise(role);
    const source: NoiseSource = o.noise ? 'given' : 'generator';
    if (noise.forward.length !== latNumel) throw new DiffSimSettingsError(`DiffSim: given forward noise has ${noise.forward.length} values, the latent [${latShape.join(', ')}] needs ${latNumel}`);
    if (!o.latents && s.vae === 'sample' && (!noise.vae || noise.vae.length !== latNumel)) throw new DiffSimSettingsError(`DiffSim: the posterior sample needs VAE noise of ${latNumel} values ([${latShape.join(', ')}])`);
    const text = this.textConditioning();
    const [, tokens, dim] = text.states.shape as [number, number, number];
    // Both CFG halves are the same computation when the two prompts are equal (DiffSim-S only).
    const xl = this.xl;
    const dedupe = !xl && s.variant === 'S' && s.cfg && this.exec.dedupeCfg && s.prompt === s.negativePrompt;
    const ipEmbeds = s.variant === 'C' ? this.ipImageEmbeds(image) : null;
    const { q, k, v } = hookTaps(s.variant, s.module);
    const extra = [...new Set(o.taps ?? [])].filter((n) => n !== q && n !== k && n !== v);
    // A tap past the hooked module needs the pass to go on.
    const stopEarly = this.exec.earlyStop && (o.tapsBeforeHook === true || extra.every((n) => n.startsWith(`${s.module}.`) || n.startsWith(`${s.module}:`)));
    try {
      const out = tidy(() => {
        const encode = (px: Float32Array) => {
          const post = vae.encode(this.rt.upload(px, [1, 3, S, S])).posterior!;
          return s.vae === 'mean' ? unary(post.mean, 'none', vae.scalingFactor, 0) : vae.sample(post, this.rt.upload(noise.vae!, latShape)).scaled;
        };
        const z0 = pixels ? encode(pixels) : this.rt.upload(o.latents!, latShape);
        const eps = this.rt.upload(noise.forward, latShape);
        // SDXL: x = latentScale·z0 + σ·ε (Euler add_noise after prepare_latents), input x/√(σ²+1).
        const zt = xl ? binary(z0, eps, 'add', xl.latentScale, xl.sigma) : (scheduler as PNDMScheduler).addNoise(z0, eps, s.t);
        const input = xl ? unary(zt, 'none', xl.inputScale, 0) : zt;
        const sample = s.cfg && !dedupe ? concat([input, input], 0) : input;
        const context = dedupe ? slice(text.states, [1, 0, 0], [1, tokens, dim]) : text.states;
        const ipTokens = ipEmbeds && ipAdapter ? ipAdapter.resample(ipEmbeds).tokens! : null;
        const pass = unet.forward(sample, s.t, context, {
          capture: [q, k, v, ...extra],
          ...(stopEarly ? { stopAfter: s.module } : {}),
          ...(ipTokens && ipAdapter ? { ip: ipAdapter.conditioning(ipTokens, s.ipScale) } : {}),
          ...(xl && text.pooled ? { added: { textEmbeds: text.pooled, timeIds: xl.timeIds } } : {}),
        });
        const take = (name: string) => {
          const t = pass.taps.take(name);
          // IP keys/values are recorded as (B, images, Nip, C): one image, so (B, Nip, C).
          const x = adoptTap(t, t.rank === 4 ? [t.shape[0]!, t.shape[2]!, t.shape[3]!] : t.shape);
          return dedupe ? concat([x, x], 0) : x;
        };
        const qkv = { q: take(q), k: take(k), v: take(v) };
        const taps = new Map(extra.map((name) => [name, take(name)] as const));
        pass.taps.dispose();
        const kept: DiffSimIntermediates | undefined = o.keepIntermediates ? { latents: z0, noisyLatents: zt, ...(xl ? { modelInput: input } : {}), ...(ipEmbeds && ipTokens ? { imageEmbeds: ipEmbeds.reshape(ipEmbeds.shape), ipTokens } : {}) } : undefined;
        return { ...qkv, kept, taps };
      });
      return new DiffSimEmbedding(role, this.embeddingSettings, this.key, out.q, out.k, out.v, source, out.kept, out.taps);
    } finally {
      ipEmbeds?.dispose();
    }
  }

  /** Batch elements that enter the score. */
  private halves(s: ResolvedDiffSimSettings): readonly number[] | undefined {
    if (s.cfgHalves === 'both') return undefined;
    if (!s.cfg) return [0];
    return s.cfgHalves === 'cond' ? [1] : [0];
  }

  /** Refuses pairs that cannot be compared: embedded with other settings than this metric's
   *  (the scoring settings aside: they are the metric's), or (official noise
   *  from the generator) two embeddings of the same role, which would share their noise. */
  private check(a: DiffSimEmbedding, b: DiffSimEmbedding): void {
    for (const [e, name] of [[a, 'first'], [b, 'second']] as const) {
      e.assertLive();
      if (e.key !== this.key) throw new DiffSimSettingsError(`DiffSim: the ${name} embedding was made with other settings than this metric's (embedding vs metric): ${settingsDiff(e.settings, this.embeddingSettings).join('; ')}`);
    }
    if (a.noiseSource !== b.noiseSource) throw new DiffSimSettingsError(`DiffSim: cannot compare an embedding made with ${a.noiseSource} noise with one made with ${b.noiseSource} noise`);
    if (a.role === b.role && a.noiseSource === 'generator' && this.settings.noise === 'official-4-draws') {
      throw new DiffSimSettingsError(`DiffSim: both embeddings have role ${a.role}; with the official noise an image pair is (A, B) (embed the other image as ${a.role === 'A' ? 'B' : 'A'})`);
    }
  }

  /** The four attention outputs O_AB, O_AA, O_BA, O_BB (merged layout, the scored halves). */
  attentionOutputs(a: DiffSimEmbedding, b: DiffSimEmbedding): AasOutputs {
    this.check(a, b);
    const batch = this.halves(this.settings);
    return aasOutputs(a, b, { heads: this.settings.heads, ...(batch ? { batch } : {}) });
  }

  /** The score of an embedded pair with its parts (one read-back). */
  async compareDetailed(a: DiffSimEmbedding, b: DiffSimEmbedding): Promise<DiffSimScore> {
    return this.compareChecked(a, b);
  }

  /** The score with its parts; when the sums read back are not sound, the failure path: reads the
   *  pass's tensors (re-running the images' passes with their intermediates when `images` are
   *  given) and refuses the pair if a non-finite value is found or the score is not finite. */
  private async compareChecked(a: DiffSimEmbedding, b: DiffSimEmbedding, images?: readonly [RgbImage, RgbImage]): Promise<DiffSimScore> {
    const r = await this.compareUnchecked(a, b);
    if (!this.textChecked && this.text) {
      // The prompt's states are kept for every pass and only enter through cross-attention, whose
      // kernel may turn non-finite keys into finite outputs: read back once per metric.
      const bad = await firstBadStage(this.textStage());
      if (bad) throw nonFiniteError(this.metricName, r.score, bad, this.modelName);
      this.textChecked = true;
    }
    if (r.sound && Number.isFinite(r.score)) return r;
    const found = await this.locate(a, b, images);
    if (found || !Number.isFinite(r.score)) throw nonFiniteError(this.metricName, r.score, found, this.modelName);
    // Finite but degenerate (an attention output of zeros): the score is what the formula gives.
    return r;
  }

  private get metricName(): string {
    return this.settings.variant === 'C' ? 'DiffSim-C' : 'DiffSim';
  }

  /** The SD model's folder (or file), for messages. */
  get modelName(): string {
    return folderOf(this.models.unet.store, this.models.unet.where);
  }

  /** What the text encoder gave (checked first: every pass depends on it). */
  private textStage(): Stage[] {
    const text = this.text;
    if (!text) return [];
    const out: Stage[] = [{ what: "the text encoder's output", store: this.models.textEncoder.store, tensor: text.states }];
    if (text.pooled) out.push({ what: "text_encoder_2's pooled text_embeds", store: this.models.xl?.textEncoder2.store, tensor: text.pooled });
    return out;
  }

  private qkvStages(e: DiffSimEmbedding, name: string): Stage[] {
    const at = `${this.settings.module} for image ${name}`;
    return [
      { what: `the hooked queries at ${at}`, store: this.models.unet.store, tensor: e.q },
      { what: `the hooked keys at ${at}`, store: this.settings.variant === 'C' ? this.models.ipAdapter?.store : this.models.unet.store, tensor: e.k },
      { what: `the hooked values at ${at}`, store: this.settings.variant === 'C' ? this.models.ipAdapter?.store : this.models.unet.store, tensor: e.v },
    ];
  }

  private intermediateStages(i: DiffSimIntermediates | undefined, name: string): Stage[] {
    if (!i) return [];
    const m = this.models;
    return [
      ...(i.imageEmbeds ? [{ what: `the IP image encoder's output for image ${name}`, store: m.imageEncoder?.store, tensor: i.imageEmbeds }] : []),
      ...(i.ipTokens ? [{ what: `the IP-Adapter's image tokens for image ${name}`, store: m.ipAdapter?.store, tensor: i.ipTokens }] : []),
      { what: `the VAE latent of image ${name}`, store: m.vae.store, tensor: i.latents },
      { what: `the noisy latent of image ${name}`, config: m.scheduler.where, tensor: i.noisyLatents },
    ];
  }

  /** The first non-finite stage: of the embeddings (the earlier stages only where they kept their
   *  intermediates), or with `images` of both images' passes re-run with their intermediates. */
  private async locate(a: DiffSimEmbedding, b: DiffSimEmbedding, images?: readonly [RgbImage, RgbImage]): Promise<BadStage | undefined> {
    const text = await firstBadStage(this.textStage());
    if (text) return text;
    if (!images) return firstBadStage([...this.intermediateStages(a.intermediates, a.role), ...this.qkvStages(a, a.role), ...this.intermediateStages(b.intermediates, b.role), ...this.qkvStages(b, b.role)]);
    return (await this.firstNonFiniteStage(images[0], a.role)) ?? (await this.firstNonFiniteStage(images[1], b.role));
  }

  /** The failure path of a metric built on this one: the first stage of `image`'s pass (re-run
   *  with its intermediates) that holds a non-finite value, the text encoder's output first. */
  async firstNonFiniteStage(image: RgbImage, role: ImageRole): Promise<BadStage | undefined> {
    const e = this.embed(image, role, { keepIntermediates: true });
    try {
      return await firstBadStage([...this.textStage(), ...this.intermediateStages(e.intermediates, role), ...this.qkvStages(e, role)]);
    } finally {
      e.dispose();
    }
  }

  private async compareUnchecked(a: DiffSimEmbedding, b: DiffSimEmbedding): Promise<DiffSimScore> {
    this.check(a, b);
    const s = this.settings;
    const batch = this.halves(s);
    return this.scoreOf(await aasScores(a as Qkv, b as Qkv, { heads: s.heads, ...(batch ? { batch } : {}) }));
  }

  /** The score the settings ask for from the AAS parts. */
  private scoreOf(parts: AasScores): DiffSimScore {
    const s = this.settings;
    let score: number;
    if (s.roundToF16) {
      // The official code computes in float16: each cosine (or mse) is a float16, their sum too.
      const [x, y] = s.similarity === 'cosine' ? [parts.ab.cos, parts.ba.cos] : [parts.ab.mse, parts.ba.mse];
      score = f16(f16(f16(x) + f16(y)) / 2);
    } else score = s.similarity === 'cosine' ? parts.cosine : parts.mse;
    return { ...parts, score };
  }

  /** The scores of several pairs, each under its own metric (the cells of a layer sweep), from one
   *  read-back: each equal to `metric.compare(a, b)` (the same kernels; the sums are only gathered
   *  before they are read). A pair whose sums are not sound goes through `compare` on its own, which
   *  refuses a non-finite score as it does there. */
  static async compareBatch(pairs: readonly { metric: DiffSim; a: DiffSimEmbedding; b: DiffSimEmbedding }[]): Promise<number[]> {
    if (!pairs.length) return [];
    const { sums, counts } = tidy(() => {
      const parts: Tensor[] = [];
      const counts: number[] = [];
      for (const { metric, a, b } of pairs) {
        metric.check(a, b);
        const batch = metric.halves(metric.settings);
        const out = aasOutputs(a, b, { heads: metric.settings.heads, ...(batch ? { batch } : {}) });
        counts.push(out.ab.numel);
        parts.push(aasSums(out));
      }
      return { sums: concat(parts, 0), counts };
    });
    let v: Float32Array;
    try {
      v = (await sums.read()) as Float32Array;
    } finally {
      sums.dispose();
    }
    const scores: number[] = [];
    for (const [i, { metric, a, b }] of pairs.entries()) {
      const r = metric.scoreOf(aasFromSums(v, counts[i]!, 8 * i));
      const textPending = !metric.textChecked && metric.text !== null;
      scores.push(r.sound && Number.isFinite(r.score) && !textPending ? r.score : await metric.compare(a, b));
    }
    return scores;
  }

  /** The score of an embedded pair: cosine AAS (higher = more similar) or mse (lower). */
  async compare(a: DiffSimEmbedding, b: DiffSimEmbedding): Promise<number> {
    return (await this.compareDetailed(a, b)).score;
  }

  /** score(a, b) = compare(embed(a, 'A'), embed(b, 'B')). */
  async score(a: RgbImage, b: RgbImage): Promise<number> {
    const ea = this.embed(a, 'A');
    try {
      const eb = this.embed(b, 'B');
      try {
        // With the images at hand, a failure can be traced to its first stage (the VAE latent, …).
        return (await this.compareChecked(ea, eb, [a, b])).score;
      } finally {
        eb.dispose();
      }
    } finally {
      ea.dispose();
    }
  }

  /** Whether a lower score means more similar (similarity 'mse'). */
  get lowerBetter(): boolean {
    return this.settings.similarity === 'mse';
  }

  /** The N×N score matrix, [i][j] = score(images[i], images[j]) (image i in role A, j in role B), from
   *  2N forwards, or N with shared noise (the roles then coincide). Equal to `score` entry by entry. */
  async matrix(images: readonly RgbImage[]): Promise<number[][]> {
    const shared = this.settings.noise === 'shared';
    const asA: DiffSimEmbedding[] = [];
    const asB: DiffSimEmbedding[] = [];
    try {
      for (const img of images) {
        asA.push(this.embed(img, 'A'));
        if (!shared) asB.push(this.embed(img, 'B'));
      }
      const cols = shared ? asA : asB;
      const out: number[][] = [];
      for (const a of asA) {
        const row: number[] = [];
        for (const b of cols) row.push(await this.compare(a, b));
        out.push(row);
      }
      return out;
    } finally {
      for (const e of [...asA, ...asB]) e.dispose();
    }
  }

  /** The k gallery images most similar to the query (query in role A, gallery images in role B),
   *  best first (highest cosine, or lowest mse); equal scores keep gallery order. */
  async nearest(query: RgbImage, gallery: readonly RgbImage[], k = gallery.length): Promise<{ index: number; score: number }[]> {
    if (!Number.isInteger(k) || k < 0) throw new RangeError(`DiffSim: k must be a non-negative integer, got ${k}`);
    const q = this.embed(query, 'A');
    try {
      const scored: { index: number; score: number }[] = [];
      for (let i = 0; i < gallery.length; i++) {
        const e = this.embed(gallery[i]!, 'B');
        try {
          scored.push({ index: i, score: await this.compare(q, e) });
        } finally {
          e.dispose();
        }
      }
      const sign = this.lowerBetter ? 1 : -1;
      return scored.sort((x, y) => sign * (x.score - y.score) || x.index - y.index).slice(0, k);
    } finally {
      q.dispose();
    }
  }

  /** Frees what the metric keeps (text states, the zeros-image embedding); the models stay. */
  dispose(): void {
    this.text?.states.dispose();
    this.text?.pooled?.dispose();
    this.text = null;
    this.textChecked = false;
    this.uncondImage?.dispose();
    this.uncondImage = null;
  }
}
