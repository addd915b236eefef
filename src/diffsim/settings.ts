// DiffSim settings: the defaults, the official per-benchmark presets, and the options that switch
// off the official code's quirks. This module is the one place where default values live: the
// library, the command line, the browser entry and demo, the eval protocols and the benchmarks all
// read them from here. A metric resolves the user's partial settings once, against its models (the
// hooked module, the diffusion timestep, the image size), and every embedding carries the resolved
// settings so that embeddings made differently are never compared.

import { ipScaleProblem } from '../models/ip-adapter.js';

/** Which U-Net block the hook sits in. The official names (`up_blocks`, …) are accepted too. */
export type DiffSimBlock = 'down' | 'mid' | 'up';
export type DiffSimBlockName = DiffSimBlock | 'down_blocks' | 'mid_blocks' | 'up_blocks';

export interface DiffSimSettings {
  /** 'S': self-attention AAS (attn1). 'C': IP-Adapter cross-attention AAS (attn2; needs an adapter). */
  variant: 'S' | 'C';
  block: DiffSimBlockName;
  /** Index into the block list (down_blocks[:-1], up_blocks[1:]; mid has only 0). */
  layer: number;
  /** 'official-force-0': the official `diffsim()` replaces a single target layer by 0, so every
   *  official result hooks layer 0; 'as-given' uses `layer`. */
  layerMode: 'official-force-0' | 'as-given';
  /** 'official-index': an index into the PNDM timestep list for `inferenceSteps` steps
   *  ([1000, 999, 999, 998, …, 1] for 1000: t = 1001 − step, larger = less noise);
   *  'timestep': the diffusion timestep t itself. */
  step: number;
  stepMode: 'official-index' | 'timestep';
  /** Length of the timestep list the official index points into (DiffSim: 1000). */
  inferenceSteps: number;
  /** 'cosine' (higher = more similar) or 'mse' (lower = more similar). */
  similarity: 'cosine' | 'mse';
  seed: number;
  prompt: string;
  negativePrompt: string;
  /** Classifier-free guidance doubles the batch to [negative prompt, prompt] (the official
   *  guidance scale 7.5 > 1 does); false runs the prompt alone. */
  cfg: boolean;
  /** Which CFG halves enter the score ('both': the official single vector over both). */
  cfgHalves: 'both' | 'cond' | 'uncond';
  /** 'sample': the VAE posterior sample mean + std·ε (official); 'mean': the posterior mean. */
  vae: 'sample' | 'mean';
  /** 'official-4-draws': one generator seeded per comparison draws ε_vae(A), ε_vae(B),
   *  noise(A), noise(B) in that order, so A and B get different noise and a role always gets the
   *  same; 'shared': B uses A's draws. */
  noise: 'official-4-draws' | 'shared';
  /** Side of the square image given to the VAE; 0 = the U-Net's sample_size × the VAE factor. */
  imageSize: number;
  /** IP-Adapter scale (DiffSim-C). */
  ipScale: number;
  /** Round the score to float16 as the official code returns it (ties become possible). */
  roundToF16: boolean;
  /** DiffSim on SDXL (diffsim-xl): the official list-valued target_layer — down/up
   *  [block, attention, transformer block], mid [attention, transformer block] — into
   *  down_blocks[1:] / up_blocks[:-1] / mid_block. Empty: `layer` alone, which the official code
   *  cannot take (IndexError); here it means [layer, last attention, last transformer block]
   *  (missing trailing indices are the last ones, as the SD1.5 hook). SD1.5 takes no target. */
  target: number[];
  /** DiffSim on SDXL: 'official' multiplies the clean latents by the Euler scheduler's
   *  init_noise_sigma (≈ 14.65) before noising (the official prepare_latents quirk); 'fixed'
   *  noises the clean latents (x = z0 + σ·ε, the intended EDM-style input). */
  xlLatentScale: 'official' | 'fixed';
  /** DiffSim on SDXL: 'official' passes add_time_ids (H0, W0, 0, 0, H0, W0) with H0 = W0 = the
   *  U-Net's sample_size × 8 (1024) whatever the image size; 'image-size' uses the image side. */
  xlTimeIds: 'official' | 'image-size';
}

/** The defaults: the official README example (`--target_block up_blocks --target_layer 0
 *  --target_step 600 --similarity cosine --seed 2334`, prompt "High quality image"): DiffSim-S, up
 *  block, layer 0 (→ up_blocks.1.attentions.2.transformer_blocks.0.attn1), step index 600 (t = 401),
 *  cosine, seed 2334, CFG with both halves, the posterior sample, the four official noise draws.
 *  The README example is the default because it is what users of the official code type; the
 *  benchmarks' own settings (NIGHTS step 500, …) are the named presets, DIFFSIM_PRESETS. */
export const DIFFSIM_DEFAULTS: Readonly<DiffSimSettings> = Object.freeze({
  variant: 'S',
  block: 'up',
  layer: 0,
  layerMode: 'official-force-0',
  step: 600,
  stepMode: 'official-index',
  inferenceSteps: 1000,
  similarity: 'cosine',
  seed: 2334,
  prompt: 'High quality image',
  negativePrompt: '',
  cfg: true,
  cfgHalves: 'both',
  vae: 'sample',
  noise: 'official-4-draws',
  imageSize: 0,
  ipScale: 0.5,
  roundToF16: false,
  target: [],
  xlLatentScale: 'official',
  xlTimeIds: 'official',
});

/** The defaults of DiffSim on SDXL (diffsim-xl): those above with the official script's
 *  --image_size default, 512 (diffsim_xl.py; SDXL's own size would be 1024). */
export const DIFFSIM_XL_DEFAULTS: Readonly<DiffSimSettings> = Object.freeze({ ...DIFFSIM_DEFAULTS, target: [], imageSize: 512 });

/** The settings only DiffSim on SDXL reads (absent from SD1.5 metrics' resolved settings). */
export const XL_SETTINGS = ['target', 'xlLatentScale', 'xlTimeIds'] as const;

// The official per-benchmark settings: what each .sh file of showlab/DiffSim passes beside the
// defaults above (spec §10). Every script runs up_blocks, layer 0 in effect (ipref_main.sh passes
// --target_layer 5, which the SD1.5 path replaces by 0), cosine, seed 2334, and --image_size 512,
// SD1.5's own size (imageSize 0). The prompt is the default "High quality image" except NIGHTS
// ("An image of a <csv prompt>") and CUTE ("The photo of a <category>"), which form one per item
// (the eval protocols do; a preset used outside `eval` keeps the default prompt).
const PRESETS = {
  nights: { step: 500 }, // night_main.sh: --target_step 500 (t = 501)
  tid2013: { step: 900 }, // tid_main.sh: 900 (t = 101)
  cute: { step: 600 }, // cute_main.sh: 600 (t = 401)
  dreambench: { step: 750 }, // dreambench_main.sh: 750 (t = 251)
  ipref: { step: 750 }, // ipref_main.sh: 750 (t = 251)
  sref: { step: 900 }, // style_main.sh, the Sref line (commented out there): 900 (t = 101)
  instantstyle: { step: 900 }, // style_main.sh, the InstantStyle line: 900 (t = 101)
} as const satisfies Record<string, Partial<DiffSimSettings>>;

export type DiffSimPresetName = keyof typeof PRESETS;

/** The named presets: the official per-benchmark settings, applied over the defaults. */
/** The defaults of the perceptual baselines (lpips, gram): LPIPS on VGG16 with process_image's
 *  [−1, 1] inputs at 512 px (DiffSim's `lpips.LPIPS(net='vgg')`), the Gram cosine of the last row
 *  at a 512 px shorter side (metrics/vgg_gram.py's img_size). */
export const PERCEPTUAL_DEFAULTS = Object.freeze({
  lpips: Object.freeze({ net: 'vgg' as 'vgg' | 'alex', normalize: false, imageSize: 512 }),
  gram: Object.freeze({ rows: 'last' as 'last' | 'all', imageSize: 512 }),
});

export const DIFFSIM_PRESETS: Readonly<Record<DiffSimPresetName, Readonly<Partial<DiffSimSettings>>>> = Object.freeze(
  Object.fromEntries(Object.entries(PRESETS).map(([k, v]) => [k, Object.freeze({ ...v })])) as Record<DiffSimPresetName, Readonly<Partial<DiffSimSettings>>>,
);
export const DIFFSIM_PRESET_NAMES = Object.freeze(Object.keys(PRESETS) as DiffSimPresetName[]);

/** Partial settings as a user gives them: a preset's settings, overridden by the explicit ones. */
export interface DiffSimSettingsInput extends Partial<DiffSimSettings> {
  preset?: DiffSimPresetName;
}

/** Settings after resolution against the models: what an embedding was made with. */
export interface ResolvedDiffSimSettings extends Omit<DiffSimSettings, 'block' | (typeof XL_SETTINGS)[number]> {
  block: DiffSimBlock;
  /** SDXL: the hooked [block, attention, transformer block] (mid: [attention, transformer block]). */
  target?: number[];
  xlLatentScale?: DiffSimSettings['xlLatentScale'];
  xlTimeIds?: DiffSimSettings['xlTimeIds'];
  /** The layer actually hooked (0 in the official mode). */
  layer: number;
  /** The hooked attention module, e.g. up_blocks.1.attentions.2.transformer_blocks.0.attn1. */
  module: string;
  heads: number;
  /** The diffusion timestep the U-Net sees. */
  t: number;
  /** The image side actually used. */
  imageSize: number;
}

/** Settings applied when a pair is scored, not when an image is embedded: an embedding can be
 *  scored under any of them (they come from the metric that compares). */
export const SCORING_SETTINGS = ['similarity', 'cfgHalves', 'roundToF16'] as const;
export type ScoringSetting = (typeof SCORING_SETTINGS)[number];

/** What an embedding depends on: the resolved settings without the scoring ones. */
export type EmbeddingSettings = Omit<ResolvedDiffSimSettings, ScoringSetting>;

/** The embedding part of resolved settings. */
export function embeddingSettings(s: ResolvedDiffSimSettings): EmbeddingSettings {
  const out: Record<string, unknown> = { ...s };
  for (const k of SCORING_SETTINGS) delete out[k];
  return out as unknown as EmbeddingSettings;
}

/** A setting that is invalid on its own or for the loaded models. */
export class DiffSimSettingsError extends Error {
  override name = 'DiffSimSettingsError';
}

/** The values each string setting takes (the command line spells them the same). */
export const SETTING_CHOICES = Object.freeze({
  variant: ['S', 'C'],
  block: ['down', 'mid', 'up', 'down_blocks', 'mid_blocks', 'up_blocks'],
  layerMode: ['official-force-0', 'as-given'],
  stepMode: ['official-index', 'timestep'],
  similarity: ['cosine', 'mse'],
  cfgHalves: ['both', 'cond', 'uncond'],
  vae: ['sample', 'mean'],
  noise: ['official-4-draws', 'shared'],
  xlLatentScale: ['official', 'fixed'],
  xlTimeIds: ['official', 'image-size'],
} as const satisfies { [K in keyof DiffSimSettings]?: readonly DiffSimSettings[K][] });

/** A preset's settings; an unknown name is an error listing the known ones. */
export function presetSettings(name: string): Readonly<Partial<DiffSimSettings>> {
  if (!Object.hasOwn(DIFFSIM_PRESETS, name)) throw new DiffSimSettingsError(`DiffSim: unknown preset ${JSON.stringify(name)} (known: ${DIFFSIM_PRESET_NAMES.join(', ')})`);
  return DIFFSIM_PRESETS[name as DiffSimPresetName];
}

/** The defaults overlaid with the preset's settings (if `given` names one), then with the explicit
 *  settings of `given`, each field checked for its type and choices. */
export function mergeSettings(given: DiffSimSettingsInput = {}, defaults: Readonly<DiffSimSettings> = DIFFSIM_DEFAULTS): DiffSimSettings {
  const { preset, ...explicit } = given;
  const unknown = Object.keys(explicit).filter((k) => !(k in DIFFSIM_DEFAULTS));
  if (unknown.length) throw new DiffSimSettingsError(`DiffSim: unknown setting ${unknown.map((k) => `"${k}"`).join(', ')} (known: preset, ${Object.keys(DIFFSIM_DEFAULTS).join(', ')})`);
  const s: DiffSimSettings = { ...defaults, ...(preset !== undefined ? presetSettings(preset) : {}) };
  const choices: { [K in keyof DiffSimSettings]?: readonly string[] } = SETTING_CHOICES;
  for (const [k, v] of Object.entries(explicit) as [keyof DiffSimSettings, unknown][]) {
    if (v === undefined) continue;
    const def = DIFFSIM_DEFAULTS[k];
    const allowed = choices[k];
    if (allowed && !allowed.includes(v as string)) throw new DiffSimSettingsError(`DiffSim: ${k} must be one of ${allowed.map((c) => `'${c}'`).join(', ')}, got ${JSON.stringify(v)}`);
    if (k === 'target') {
      if (!Array.isArray(v) || v.length > 3 || v.some((x) => !Number.isInteger(x) || (x as number) < 0)) throw new DiffSimSettingsError(`DiffSim: target must be a list of up to 3 integers ≥ 0 ([block, attention, transformer block]), got ${JSON.stringify(v)}`);
      s.target = [...(v as number[])];
      continue;
    }
    if (typeof v !== typeof def) throw new DiffSimSettingsError(`DiffSim: ${k} must be a ${typeof def}, got ${JSON.stringify(v)}`);
    if (typeof v === 'number' && !Number.isFinite(v)) throw new DiffSimSettingsError(`DiffSim: ${k} must be a finite number, got ${v}`);
    (s as unknown as Record<string, unknown>)[k] = v;
  }
  for (const k of ['layer', 'step', 'inferenceSteps', 'seed', 'imageSize'] as const) {
    if (!Number.isInteger(s[k])) throw new DiffSimSettingsError(`DiffSim: ${k} must be an integer, got ${s[k]}`);
  }
  if (s.layer < 0) throw new DiffSimSettingsError(`DiffSim: layer must be ≥ 0, got ${s.layer}`);
  if (s.imageSize < 0) throw new DiffSimSettingsError(`DiffSim: imageSize must be ≥ 0 (0 = the model's size), got ${s.imageSize}`);
  const ipScale = ipScaleProblem(s.ipScale);
  if (ipScale) throw new DiffSimSettingsError(`DiffSim: ipScale ${ipScale}`);
  if (!s.cfg && s.cfgHalves === 'uncond') throw new DiffSimSettingsError("DiffSim: cfgHalves 'uncond' needs cfg (without classifier-free guidance there is no unconditional half)");
  return s;
}

/** 'up_blocks' → 'up'. */
export function blockOf(name: DiffSimBlockName): DiffSimBlock {
  return name.replace(/_blocks$/, '') as DiffSimBlock;
}

/** A stable identity of embedding settings: equal strings ⇔ comparable embeddings. */
export function settingsKey(s: EmbeddingSettings | DitEmbeddingSettings): string {
  const entries = Object.entries(s).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return JSON.stringify(Object.fromEntries(entries));
}

/** The fields in which two resolved settings differ, for error messages. */
export function settingsDiff(a: EmbeddingSettings | DitEmbeddingSettings, b: EmbeddingSettings | DitEmbeddingSettings): string[] {
  const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
  const out: string[] = [];
  for (const k of keys) {
    const va = (a as unknown as Record<string, unknown>)[k];
    const vb = (b as unknown as Record<string, unknown>)[k];
    if (JSON.stringify(va) !== JSON.stringify(vb)) out.push(`${k} ${JSON.stringify(va)} vs ${JSON.stringify(vb)}`);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// DiffSim on DiT (diffsim-dit, the paper's supplementary row; official `diffsim/diffsim_dit.py`)
//
// DiT reads the shared settings above that apply to it — step, layer, seed, similarity, vae, noise,
// imageSize, roundToF16 (and the preset's step) — with its own meaning of `step` (below); prompt,
// block, CFG and the IP-Adapter do not apply (the official DiT path ignores the prompt). The layer is
// the DiT block whose attention is hooked, honoured as the official code honours target_layer[0].

/** What only DiffSim on DiT has. */
export interface DitSettings {
  /** 'official' (diffsim_dit.py as released): the latent is noised at t_noise = step with SD1.5's
   *  scheduled-linear DDIM schedule (larger = more noise), and the DiT is told
   *  t_model = timestep_map[1000 − step] of create_diffusion(str(step)) (600 → 667, 750 → 333,
   *  900 → 111); steps ≤ 500 crash there (index out of range) and are refused, as is 1000 (past the
   *  schedule). 'intended': noise at t = step on DiT's own training schedule (linear 1e-4…0.02, or
   *  the DiTPipeline folder's scheduler config) and the DiT told the same t (0–999). */
  timesteps: 'official' | 'intended';
  /** The class label of the first batch element (official 1, "goldfish"); the second is always the
   *  null class (num_classes), so the hooked layer sees batch 2 = [class, null]. */
  classLabel: number;
}

export const DIT_DEFAULTS: Readonly<DitSettings> = Object.freeze({ timesteps: 'official', classLabel: 1 });

export const DIT_SETTING_CHOICES = Object.freeze({ timesteps: ['official', 'intended'] } as const satisfies { [K in keyof DitSettings]?: readonly DitSettings[K][] });

export type DitSettingsInput = Partial<DitSettings>;

/** The shared settings DiffSim on DiT reads (see above). */
export const DIT_SHARED_SETTINGS = ['step', 'layer', 'seed', 'similarity', 'vae', 'noise', 'imageSize', 'roundToF16'] as const;
export type DitSharedSettings = Pick<DiffSimSettings, (typeof DIT_SHARED_SETTINGS)[number]>;

/** DIT_DEFAULTS overlaid with `given`, each field checked. */
export function mergeDitSettings(given: DitSettingsInput = {}): DitSettings {
  const unknown = Object.keys(given).filter((k) => !(k in DIT_DEFAULTS));
  if (unknown.length) throw new DiffSimSettingsError(`DiffSim-DiT: unknown setting ${unknown.map((k) => `"${k}"`).join(', ')} (known: ${Object.keys(DIT_DEFAULTS).join(', ')})`);
  const s: DitSettings = { ...DIT_DEFAULTS };
  if (given.timesteps !== undefined) {
    if (!(DIT_SETTING_CHOICES.timesteps as readonly string[]).includes(given.timesteps)) throw new DiffSimSettingsError(`DiffSim-DiT: timesteps must be one of ${DIT_SETTING_CHOICES.timesteps.map((c) => `'${c}'`).join(', ')}, got ${JSON.stringify(given.timesteps)}`);
    s.timesteps = given.timesteps;
  }
  if (given.classLabel !== undefined) {
    if (typeof given.classLabel !== 'number' || !Number.isInteger(given.classLabel) || given.classLabel < 0) throw new DiffSimSettingsError(`DiffSim-DiT: classLabel must be a non-negative integer, got ${JSON.stringify(given.classLabel)}`);
    s.classLabel = given.classLabel;
  }
  return s;
}

/** Settings of DiffSim on DiT after resolution against the model: what an embedding was made with. */
export interface ResolvedDitSettings extends DitSharedSettings, DitSettings {
  /** The hooked attention module, `blocks.<layer>.attn`. */
  module: string;
  heads: number;
  /** The timestep of the forward noising. */
  tNoise: number;
  /** The timestep the DiT is told. */
  tModel: number;
  /** Which sinusoid the timestep embedder uses: the official DiT's (frequencies /128) or diffusers'
   *  DiT's (/127, a DiTPipeline folder's weights as diffusers runs them). */
  timestepEmbedding: 'official' | 'diffusers';
  /** The layout the weights came from. */
  layout: 'official' | 'diffusers';
  /** The noise schedule of the forward noising ('sd15-ddim' official; 'dit-linear' intended). */
  noiseSchedule: 'sd15-ddim' | 'dit-linear';
}

/** What a DiT embedding depends on (without the scoring settings). */
export type DitEmbeddingSettings = Omit<ResolvedDitSettings, 'similarity' | 'roundToF16'>;

/** The embedding part of resolved DiT settings. */
export function ditEmbeddingSettings(s: ResolvedDitSettings): DitEmbeddingSettings {
  const { similarity: _s, roundToF16: _r, ...rest } = s;
  return rest;
}
