// DiffSim on DiT (diffsim-dit; official `diffsim/diffsim_dit.py` with `DiT/modelsdit.py` and the
// vendored `DiT/diffusion`, whose p_sample was edited to return right after the model call).
//
// One image's pass (`embed`), official timesteps:
//   process_image: LANCZOS squash to S×S, [−1, 1]                       [1, 3, S, S]
//   VAE (sd-vae-ft-mse) posterior; z0 = 0.18215·(mean + std·ε_vae)     [1, 4, s, s]
//   z_t = √ᾱ·z0 + √(1−ᾱ)·ε at t_noise = step on SD1.5's DDIM schedule (not DiT's own)
//   DiT with y = [classLabel, null], told t_model = timestep_map[1000 − step] of
//   create_diffusion(str(step)), up to the q/k/v of blocks[layer].attn  [2, T, D] each
// The batch-1 latent broadcasts against the two labels, so the hooked layer sees batch 2 =
// [class, null]; both enter the score (there is no CFG mix). The prompt is not used.
// Noise: one generator seeded per comparison draws ε_vae(A), ε_vae(B), noise(A), noise(B), as the
// SD1.5 path. The score is the AAS of aas.ts over the whole batch, all heads and tokens.

import { tidy, type Runtime } from '../gpu/runtime.js';
import { unary } from '../kernels/elementwise.js';
import type { RgbImage } from '../io/image.js';
import { processImage } from '../io/preprocess.js';
import { f16BitsToF32, f32ToF16Bits } from '../platform/half.js';
import { respacedTimestepMap } from '../models/dit.js';
import { latentSide, SD15_SCHEDULER_CONFIG, vaeScaleFactor, type LoadedDit } from '../models/load.js';
import { NormalGenerator, PNDMScheduler, type SchedulerConfig } from '../models/scheduler.js';
import { adoptTap } from '../nn/context.js';
import { ConfigError } from '../io/config-check.js';
import { aasOutputs, aasScores, type AasOutputs, type Qkv } from './aas.js';
import type { DiffSimScore, EmbedOptions, GivenNoise } from './core.js';
import { DEFAULT_IMAGE_SIZE_RANGE } from './core.js';
import { DiffSimEmbedding, type DiffSimIntermediates, type ImageRole, type NoiseSource } from './embedding.js';
import { firstBadStage, folderOf, nonFiniteError, type BadStage, type Stage } from './finite.js';
import { DIT_SHARED_SETTINGS, DiffSimSettingsError, ditEmbeddingSettings, mergeDitSettings, mergeSettings, settingsDiff, settingsKey, type DiffSimSettingsInput, type DitEmbeddingSettings, type DitSettingsInput, type ResolvedDitSettings } from './settings.js';

/** DiT, its VAE and (a DiTPipeline folder's) own scheduler config: what `loadDit` gives. */
export type DitModels = LoadedDit;

/** DiT's training schedule (DiT/diffusion `get_named_beta_schedule('linear', 1000)`, also the
 *  scheduler config of facebook/DiT-XL-2-*): the noise schedule of the intended timesteps. */
export const DIT_LINEAR_SCHEDULER_CONFIG: Readonly<SchedulerConfig> = Object.freeze({ num_train_timesteps: 1000, beta_start: 0.0001, beta_end: 0.02, beta_schedule: 'linear', set_alpha_to_one: true, steps_offset: 0, clip_sample: false } as SchedulerConfig);

/** The timesteps of a DiT step setting (see DitSettings.timesteps). */
export function ditTimesteps(step: number, mode: 'official' | 'intended', total = 1000): { tNoise: number; tModel: number; tIndex: number } {
  if (!Number.isInteger(step)) throw new DiffSimSettingsError(`DiffSim-DiT: step must be an integer, got ${step}`);
  if (mode === 'intended') {
    if (step < 0 || step >= total) throw new DiffSimSettingsError(`DiffSim-DiT: step ${step} outside 0–${total - 1} (intended timesteps: the noise level and the timestep the DiT is told)`);
    return { tNoise: step, tModel: step, tIndex: step };
  }
  if (step <= total / 2 || step >= total) {
    const why = step >= total ? `the noise timestep ${step} is past the ${total}-step schedule` : `the official code crashes there (p_sample index ${total} − ${step} = ${total - step} is out of range for the ${step} respaced steps)`;
    throw new DiffSimSettingsError(`DiffSim-DiT: step ${step} is outside ${total / 2 + 1}–${total - 1} with the official DiT timesteps: ${why}; choose a step in ${total / 2 + 1}–${total - 1}, or timesteps 'intended' (--dit-timesteps intended) to noise and condition at t = step (0–${total - 1})`);
  }
  const map = respacedTimestepMap(total, step);
  const tIndex = total - step;
  return { tNoise: step, tModel: map[tIndex]!, tIndex };
}

const f16 = (x: number) => f16BitsToF32(f32ToF16Bits(x));

export interface DiffSimDiTExecution {
  /** Stop each DiT pass right after the hooked attention's q/k/v (default true). */
  earlyStop?: boolean;
}

export class DiffSimDiT {
  readonly settings: Readonly<ResolvedDitSettings>;
  readonly embeddingSettings: Readonly<DitEmbeddingSettings>;
  readonly key: string;
  /** The schedule the latents are noised with. */
  readonly noiseScheduler: PNDMScheduler;
  private readonly earlyStop: boolean;

  /** `shared`: the DiffSim settings DiT reads (step, layer, seed, similarity, vae, noise, imageSize,
   *  roundToF16, a preset's step); `dit`: the DiT-only ones. */
  constructor(
    readonly rt: Runtime,
    readonly models: DitModels,
    shared: DiffSimSettingsInput = {},
    dit: DitSettingsInput = {},
    execution: DiffSimDiTExecution = {},
  ) {
    const all = mergeSettings(shared);
    if (all.stepMode === 'timestep') throw new DiffSimSettingsError("DiffSim-DiT: stepMode 'timestep' does not apply: the step is DiT's target_step (give timesteps 'intended' to noise and condition at t = step)");
    const own = mergeDitSettings(dit);
    const { dit: model, vae } = models;
    const c = model.config;
    const layer = all.layer;
    if (!Number.isInteger(layer) || layer < 0 || layer >= model.blocks.length) throw new DiffSimSettingsError(`DiffSim-DiT: layer ${layer}: the DiT has blocks 0–${model.blocks.length - 1}`);
    if (own.classLabel >= c.num_classes) throw new DiffSimSettingsError(`DiffSim-DiT: classLabel ${own.classLabel} outside 0–${c.num_classes - 1} (${c.num_classes} is the null class, always the second batch element)`);
    const ts = ditTimesteps(all.step, own.timesteps);
    const factor = vaeScaleFactor(vae.config);
    let imageSize = all.imageSize;
    if (imageSize === 0) {
      imageSize = c.input_size * factor;
      if (imageSize < DEFAULT_IMAGE_SIZE_RANGE[0] || imageSize > DEFAULT_IMAGE_SIZE_RANGE[1]) throw new ConfigError(model.where, 'input_size', `${c.input_size} gives a default image size of ${imageSize}, outside ${DEFAULT_IMAGE_SIZE_RANGE[0]}–${DEFAULT_IMAGE_SIZE_RANGE[1]}: give the image size (imageSize, --size)`);
    }
    const side = latentSide(vae.config, imageSize);
    if (!Number.isInteger(imageSize) || imageSize < factor || side % c.patch_size !== 0) throw new DiffSimSettingsError(`DiffSim-DiT: imageSize ${imageSize} gives a ${side}×${side} latent, not a multiple of the DiT patch size ${c.patch_size} (use a multiple of ${factor * c.patch_size})`);
    if (vae.config.latent_channels !== c.in_channels) throw new DiffSimSettingsError(`DiffSim-DiT: VAE latents have ${vae.config.latent_channels} channels, the DiT takes ${c.in_channels}`);
    const intended = own.timesteps === 'intended';
    this.noiseScheduler = intended ? new PNDMScheduler({ ...(models.scheduler ?? DIT_LINEAR_SCHEDULER_CONFIG) }) : new PNDMScheduler({ ...SD15_SCHEDULER_CONFIG });
    const picked = Object.fromEntries(DIT_SHARED_SETTINGS.map((k) => [k, all[k]])) as Pick<ResolvedDitSettings, (typeof DIT_SHARED_SETTINGS)[number]>;
    this.settings = Object.freeze({
      ...picked,
      ...own,
      imageSize,
      module: model.blocks[layer]!.attnPath,
      heads: model.heads,
      tNoise: ts.tNoise,
      tModel: ts.tModel,
      timestepEmbedding: model.timestepEmbedding,
      layout: models.layout.kind,
      noiseSchedule: intended ? 'dit-linear' : 'sd15-ddim',
    });
    this.embeddingSettings = Object.freeze(ditEmbeddingSettings(this.settings));
    this.key = settingsKey(this.embeddingSettings);
    this.earlyStop = execution.earlyStop ?? true;
  }

  get latentSize(): number {
    return latentSide(this.models.vae.config, this.settings.imageSize);
  }

  /** Whether a lower score means more similar (similarity 'mse'). */
  get lowerBetter(): boolean {
    return this.settings.similarity === 'mse';
  }

  /** The model folder (or file), for messages. */
  get modelName(): string {
    return folderOf(this.models.dit.store, this.models.dit.where);
  }

  /** The four official draws (fresh generator seeded with the seed): ε_vae(A), ε_vae(B), noise(A),
   *  noise(B); the pair for `role` (A's with noise 'shared'). */
  generatorNoise(role: ImageRole): Required<GivenNoise> {
    const n = this.models.vae.config.latent_channels * this.latentSize ** 2;
    const g = new NormalGenerator(this.settings.seed);
    const epsA = g.randn(n);
    const epsB = g.randn(n);
    const noiseA = g.randn(n);
    const noiseB = g.randn(n);
    return role === 'A' || this.settings.noise === 'shared' ? { vae: epsA, forward: noiseA } : { vae: epsB, forward: noiseB };
  }

  /** The class labels of the pass: [classLabel, null]. */
  get labels(): Int32Array {
    return Int32Array.from([this.settings.classLabel, this.models.dit.nullClass]);
  }

  /** One image's hooked q/k/v (batch 2 = [class, null]), merged heads [2, T, D]. */
  embed(image: RgbImage, role: ImageRole, o: Omit<EmbedOptions, 'taps'> & { taps?: readonly string[] } = {}): DiffSimEmbedding {
    if (role !== 'A' && role !== 'B') throw new DiffSimSettingsError(`DiffSim-DiT: role must be 'A' or 'B', got ${JSON.stringify(role)}`);
    const s = this.settings;
    const { dit, vae } = this.models;
    const S = s.imageSize;
    const lat = this.latentSize;
    const latShape = [1, vae.config.latent_channels, lat, lat];
    const latNumel = latShape[1]! * lat * lat;
    if (o.latents && o.latents.length !== latNumel) throw new DiffSimSettingsError(`DiffSim-DiT: given latents have ${o.latents.length} values, [${latShape.join(', ')}] needs ${latNumel}`);
    const pixels = o.latents ? null : (o.processed ?? processImage(image, S));
    if (pixels && pixels.length !== 3 * S * S) throw new DiffSimSettingsError(`DiffSim-DiT: processed image has ${pixels.length} values, [1, 3, ${S}, ${S}] needs ${3 * S * S}`);
    const noise = o.noise ?? this.generatorNoise(role);
    const source: NoiseSource = o.noise ? 'given' : 'generator';
    if (noise.forward.length !== latNumel) throw new DiffSimSettingsError(`DiffSim-DiT: given forward noise has ${noise.forward.length} values, the latent [${latShape.join(', ')}] needs ${latNumel}`);
    if (!o.latents && s.vae === 'sample' && (!noise.vae || noise.vae.length !== latNumel)) throw new DiffSimSettingsError(`DiffSim-DiT: the posterior sample needs VAE noise of ${latNumel} values ([${latShape.join(', ')}])`);
    const q = `${s.module}.q`;
    const k = `${s.module}.k`;
    const v = `${s.module}.v`;
    const extra = [...new Set(o.taps ?? [])].filter((n) => n !== q && n !== k && n !== v);
    // Taps of earlier blocks, of the embedders and of this block up to its q/k/v come before the stop.
    const before = (n: string) => {
      const b = /^blocks\.(\d+)[.:]/.exec(n);
      if (!b) return true;
      const i = Number(b[1]);
      return i < s.layer || (i === s.layer && (n === `${s.module}:in` || n.startsWith(`blocks.${i}.adaLN_modulation:`) || n === `${s.module}.qkv:in`));
    };
    const stopEarly = this.earlyStop && extra.every(before);
    const out = tidy(() => {
      const z0 = pixels
        ? (() => {
            const post = vae.encode(this.rt.upload(pixels, [1, 3, S, S])).posterior!;
            return s.vae === 'mean' ? unary(post.mean, 'none', vae.scalingFactor, 0) : vae.sample(post, this.rt.upload(noise.vae!, latShape)).scaled;
          })()
        : this.rt.upload(o.latents!, latShape);
      const zt = this.noiseScheduler.addNoise(z0, this.rt.upload(noise.forward, latShape), s.tNoise);
      const pass = dit.forward(zt, s.tModel, this.labels, { capture: [q, k, v, ...extra], ...(stopEarly ? { stopAfter: `${s.module}.qkv` } : {}) });
      const take = (name: string) => adoptTap(pass.taps.take(name));
      const qkv = { q: take(q), k: take(k), v: take(v) };
      const taps = new Map(extra.map((name) => [name, take(name)] as const));
      pass.taps.dispose();
      pass.hidden?.dispose();
      const kept: DiffSimIntermediates | undefined = o.keepIntermediates ? { latents: z0, noisyLatents: zt } : undefined;
      return { ...qkv, kept, taps };
    });
    return new DiffSimEmbedding(role, this.embeddingSettings, this.key, out.q, out.k, out.v, source, out.kept, out.taps);
  }

  private check(a: DiffSimEmbedding, b: DiffSimEmbedding): void {
    for (const [e, name] of [[a, 'first'], [b, 'second']] as const) {
      e.assertLive();
      if (e.key !== this.key) throw new DiffSimSettingsError(`DiffSim-DiT: the ${name} embedding was made with other settings than this metric's (embedding vs metric): ${settingsDiff(e.settings, this.embeddingSettings).join('; ')}`);
    }
    if (a.noiseSource !== b.noiseSource) throw new DiffSimSettingsError(`DiffSim-DiT: cannot compare an embedding made with ${a.noiseSource} noise with one made with ${b.noiseSource} noise`);
    if (a.role === b.role && a.noiseSource === 'generator' && this.settings.noise === 'official-4-draws') {
      throw new DiffSimSettingsError(`DiffSim-DiT: both embeddings have role ${a.role}; with the official noise an image pair is (A, B) (embed the other image as ${a.role === 'A' ? 'B' : 'A'})`);
    }
  }

  /** The four attention outputs O_AB, O_AA, O_BA, O_BB (merged heads [2, T, D]). */
  attentionOutputs(a: DiffSimEmbedding, b: DiffSimEmbedding): AasOutputs {
    this.check(a, b);
    return aasOutputs(a, b, { heads: this.settings.heads });
  }

  /** The score of an embedded pair with its parts; a pair whose values are not finite is refused,
   *  naming the first stage found holding a non-finite value. */
  async compareDetailed(a: DiffSimEmbedding, b: DiffSimEmbedding): Promise<DiffSimScore> {
    this.check(a, b);
    const s = this.settings;
    const parts = await aasScores(a as Qkv, b as Qkv, { heads: s.heads });
    let score: number;
    if (s.roundToF16) {
      const [x, y] = s.similarity === 'cosine' ? [parts.ab.cos, parts.ba.cos] : [parts.ab.mse, parts.ba.mse];
      score = f16(f16(f16(x) + f16(y)) / 2);
    } else score = s.similarity === 'cosine' ? parts.cosine : parts.mse;
    if (parts.sound && Number.isFinite(score)) return { ...parts, score };
    const found = await firstBadStage([...this.stages(a), ...this.stages(b)]);
    if (found || !Number.isFinite(score)) throw nonFiniteError('DiffSim-DiT', score, found, this.modelName);
    return { ...parts, score };
  }

  private stages(e: DiffSimEmbedding): Stage[] {
    const m = this.models;
    const i = e.intermediates;
    const at = `${this.settings.module} for image ${e.role}`;
    return [
      ...(i ? [{ what: `the VAE latent of image ${e.role}`, store: m.vae.store, tensor: i.latents }, { what: `the noisy latent of image ${e.role}`, config: 'the noise schedule', tensor: i.noisyLatents }] : []),
      { what: `the hooked queries at ${at}`, store: m.dit.store, tensor: e.q },
      { what: `the hooked keys at ${at}`, store: m.dit.store, tensor: e.k },
      { what: `the hooked values at ${at}`, store: m.dit.store, tensor: e.v },
    ];
  }

  async compare(a: DiffSimEmbedding, b: DiffSimEmbedding): Promise<number> {
    return (await this.compareDetailed(a, b)).score;
  }

  /** score(a, b) = compare(embed(a, 'A'), embed(b, 'B')); a failure is traced through the passes'
   *  intermediates (the VAE latent first). */
  async score(a: RgbImage, b: RgbImage): Promise<number> {
    const ea = this.embed(a, 'A', { keepIntermediates: true });
    try {
      const eb = this.embed(b, 'B', { keepIntermediates: true });
      try {
        return await this.compare(ea, eb);
      } finally {
        eb.dispose();
      }
    } finally {
      ea.dispose();
    }
  }

  /** The first non-finite stage of one image's pass (for error reports of metrics built on this one). */
  async firstNonFiniteStage(image: RgbImage, role: ImageRole): Promise<BadStage | undefined> {
    const e = this.embed(image, role, { keepIntermediates: true });
    try {
      return await firstBadStage(this.stages(e));
    } finally {
      e.dispose();
    }
  }
}
