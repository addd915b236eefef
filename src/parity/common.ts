// What every parity check shares: the result row, the fixture index, the normalised error and the
// tolerance classes of the fixtures README.

import type { WeightPrecision } from '../nn/weights.js';

export interface ParityRow {
  fixture: string;
  name: string;
  /** Normalised error (or absolute for scheduler tables; count of mismatches for exact checks). */
  err: number;
  tol: number;
  /** 'skipped': listed but not compared (not counted as passed or failed). */
  kind: 'normalised' | 'absolute' | 'exact' | 'skipped';
  pass: boolean;
  note?: string;
}

export interface FixtureIndex {
  files: Record<string, { description?: string; config?: unknown; tensors: Record<string, { shape: number[]; dtype: string }> }>;
  other_files?: Record<string, string>;
}

export function normalisedError(ours: ArrayLike<number>, ref: ArrayLike<number>): number {
  if (ours.length !== ref.length) return Infinity;
  let maxDiff = 0;
  let maxRef = 0;
  for (let i = 0; i < ref.length; i++) {
    const d = Math.abs(ours[i]! - ref[i]!);
    if (!(d <= maxDiff)) maxDiff = Number.isNaN(d) ? Infinity : d;
    const r = Math.abs(ref[i]!);
    if (r > maxRef) maxRef = r;
  }
  return maxDiff / Math.max(1, maxRef);
}

export function maxAbsError(ours: ArrayLike<number>, ref: ArrayLike<number>): number {
  if (ours.length !== ref.length) return Infinity;
  let m = 0;
  for (let i = 0; i < ref.length; i++) {
    const d = Math.abs(ours[i]! - ref[i]!);
    if (!(d <= m)) m = Number.isNaN(d) ? Infinity : d;
  }
  return m;
}

/** Tolerance class of an activation name (fixtures README table). */
export function toleranceFor(name: string): number {
  name = name.replace(/^run\d+\./, '');
  if (/^(output\.sample|last_hidden_state|pooler_output|image_embeds|posterior\.|latent\.|resampler\.output)/.test(name) || /(final_layer_norm|post_layernorm|^layernorm):out$/.test(name)) return 2e-4;
  if (/(to_[qkv]|[qkv]_proj|query|key|value|proj_in|conv_in|time_proj|patch_embeddings|embeddings|layer_norm\d?|norm\d?|group_norm|to_k_ip\.\d|to_v_ip\.\d):out$/.test(name)) return 1e-5;
  return 1e-4;
}

export interface ParitySettings {
  /** How linear/conv weights are stored on the GPU ('f16' rounds them: every tolerance becomes F16_WEIGHTS_TOLERANCE). */
  weights: WeightPrecision;
}

/** Tolerance of every activation on the f16-weight path: each linear/conv weight rounded to f16
 *  (relative error ≤ 2⁻¹¹) moves activations by up to a few 10⁻³ of their scale after many
 *  layers (2.8e-3 seen on unet-tiny), against 1e-5…2e-4 with f32 weights. */
export const F16_WEIGHTS_TOLERANCE = 1e-2;


/** The f16-weight tolerance of DiffSim on SDXL's deepest hooks: the rounding of every weight
 *  compounds over the transformer blocks before the hook (up_blocks.0.attentions.2 of sdxl-tiny sits
 *  behind 20 of them; 1.1e-2 measured there against 2.8e-3 on unet-tiny). */
export const F16_WEIGHTS_TOLERANCE_SDXL = 2e-2;
