// DiffSim settings: the official defaults (showlab/DiffSim as its scripts run it) and the options
// that switch off its quirks. A metric resolves the user's partial settings once, against its
// models (the hooked module, the diffusion timestep, the image size), and every embedding carries
// the resolved settings so that embeddings made differently are never compared.

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
}

/** Official defaults: up block, layer 0, step index 500 (t = 501, the NIGHTS setting), cosine,
 *  seed 2334, "High quality image", CFG with both halves, posterior sample, four noise draws. */
export const DIFFSIM_DEFAULTS: Readonly<DiffSimSettings> = Object.freeze({
  variant: 'S',
  block: 'up',
  layer: 0,
  layerMode: 'official-force-0',
  step: 500,
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
});

/** Settings after resolution against the models: what an embedding was made with. */
export interface ResolvedDiffSimSettings extends Omit<DiffSimSettings, 'block'> {
  block: DiffSimBlock;
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

const CHOICES: { [K in keyof DiffSimSettings]?: readonly string[] } = {
  variant: ['S', 'C'],
  block: ['down', 'mid', 'up', 'down_blocks', 'mid_blocks', 'up_blocks'],
  layerMode: ['official-force-0', 'as-given'],
  stepMode: ['official-index', 'timestep'],
  similarity: ['cosine', 'mse'],
  cfgHalves: ['both', 'cond', 'uncond'],
  vae: ['sample', 'mean'],
  noise: ['official-4-draws', 'shared'],
};

/** The defaults overlaid with `given`, each field checked for its type and choices. */
export function mergeSettings(given: Partial<DiffSimSettings> = {}): DiffSimSettings {
  const unknown = Object.keys(given).filter((k) => !(k in DIFFSIM_DEFAULTS));
  if (unknown.length) throw new DiffSimSettingsError(`DiffSim: unknown setting ${unknown.map((k) => `"${k}"`).join(', ')} (known: ${Object.keys(DIFFSIM_DEFAULTS).join(', ')})`);
  const s: DiffSimSettings = { ...DIFFSIM_DEFAULTS };
  for (const [k, v] of Object.entries(given) as [keyof DiffSimSettings, unknown][]) {
    if (v === undefined) continue;
    const def = DIFFSIM_DEFAULTS[k];
    const choices = CHOICES[k];
    if (choices && !choices.includes(v as string)) throw new DiffSimSettingsError(`DiffSim: ${k} must be one of ${choices.map((c) => `'${c}'`).join(', ')}, got ${JSON.stringify(v)}`);
    if (typeof v !== typeof def) throw new DiffSimSettingsError(`DiffSim: ${k} must be a ${typeof def}, got ${JSON.stringify(v)}`);
    if (typeof v === 'number' && !Number.isFinite(v)) throw new DiffSimSettingsError(`DiffSim: ${k} must be a finite number, got ${v}`);
    (s as unknown as Record<string, unknown>)[k] = v;
  }
  for (const k of ['layer', 'step', 'inferenceSteps', 'seed', 'imageSize'] as const) {
    if (!Number.isInteger(s[k])) throw new DiffSimSettingsError(`DiffSim: ${k} must be an integer, got ${s[k]}`);
  }
  if (s.layer < 0) throw new DiffSimSettingsError(`DiffSim: layer must be ≥ 0, got ${s.layer}`);
  if (s.imageSize < 0) throw new DiffSimSettingsError(`DiffSim: imageSize must be ≥ 0 (0 = the model's size), got ${s.imageSize}`);
  if (!s.cfg && s.cfgHalves === 'uncond') throw new DiffSimSettingsError("DiffSim: cfgHalves 'uncond' needs cfg (without classifier-free guidance there is no unconditional half)");
  return s;
}

/** 'up_blocks' → 'up'. */
export function blockOf(name: DiffSimBlockName): DiffSimBlock {
  return name.replace(/_blocks$/, '') as DiffSimBlock;
}

/** A stable identity of embedding settings: equal strings ⇔ comparable embeddings. */
export function settingsKey(s: EmbeddingSettings): string {
  const entries = Object.entries(s).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return JSON.stringify(Object.fromEntries(entries));
}

/** The fields in which two resolved settings differ, for error messages. */
export function settingsDiff(a: EmbeddingSettings, b: EmbeddingSettings): string[] {
  const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
  const out: string[] = [];
  for (const k of keys) {
    const va = (a as unknown as Record<string, unknown>)[k];
    const vb = (b as unknown as Record<string, unknown>)[k];
    if (JSON.stringify(va) !== JSON.stringify(vb)) out.push(`${k} ${JSON.stringify(va)} vs ${JSON.stringify(vb)}`);
  }
  return out;
}
