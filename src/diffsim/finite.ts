// A score that is not finite is never a result. Every metric checks the values it reads back
// anyway (the score and the pair sums behind it); only when they are not sound does it read the
// pass's tensors to find the first stage that holds a non-finite value, so the normal path costs
// nothing extra. The error names the model's folder (or file) and that stage.

import type { Tensor } from '../gpu/runtime.js';
import type { WeightStore } from '../nn/weights.js';

/** A metric that produced no finite score: a model with non-finite weights, or values that
 *  overflow. One line: `<model folder>: <metric> gave no finite score …`. */
export class NonFiniteScoreError extends Error {
  override name = 'NonFiniteScoreError';
  constructor(
    /** The model folder (or file) the stage's weights came from. */
    readonly model: string,
    message: string,
    /** The first stage found holding a non-finite value, if one was found. */
    readonly stage?: string,
  ) {
    super(`${model}: ${message}`);
  }
}

/** The first non-finite value of `v`, as text ('NaN', 'Infinity', '-Infinity'), or undefined. */
export function firstNonFinite(v: ArrayLike<number>): string | undefined {
  for (let i = 0; i < v.length; i++) {
    const x = v[i]!;
    if (!Number.isFinite(x)) return `${x} at index ${i}`;
  }
  return undefined;
}

/** Reads `t` back (failure path only) and says what its first non-finite value is. */
export async function tensorNonFinite(t: Tensor): Promise<string | undefined> {
  return firstNonFinite((await t.read()) as Float32Array);
}

/** A stage of a pass to check, in pass order. */
export interface Stage {
  /** e.g. "the VAE latent of image A". */
  what: string;
  /** The weights it is computed with (named in the message), if any. */
  store?: WeightStore | undefined;
  /** Or the config it is computed from (the scheduler's). */
  config?: string | undefined;
  tensor: Tensor | (() => Tensor | Promise<Tensor>);
}

/** The folder (model files' name) of a store's weights, or `fallback`. */
export function folderOf(store: WeightStore | undefined, fallback: string): string {
  return store?.source?.name ?? fallback;
}

/** A stage found holding a non-finite value, and that value. */
export interface BadStage {
  stage: Stage;
  value: string;
}

/** The first stage whose tensor holds a non-finite value. */
export async function firstBadStage(stages: readonly Stage[]): Promise<BadStage | undefined> {
  for (const s of stages) {
    const t = typeof s.tensor === 'function' ? await s.tensor() : s.tensor;
    const value = await tensorNonFinite(t);
    if (value) return { stage: s, value };
  }
  return undefined;
}

/** The error of a metric without a finite score: names the first bad stage when one was found. */
export function nonFiniteError(metric: string, score: number, found: BadStage | undefined, fallbackModel: string): NonFiniteScoreError {
  const got = Number.isFinite(score) ? `${score}, computed from values that are not finite` : String(score);
  if (!found) return new NonFiniteScoreError(fallbackModel, `${metric} gave no finite score (got ${got})`);
  const { stage, value } = found;
  const from = stage.store?.source ? ` (computed with ${stage.store.source.file})` : stage.config ? ` (computed from ${stage.config})` : '';
  return new NonFiniteScoreError(folderOf(stage.store, fallbackModel), `${metric} gave no finite score (got ${got}): the first non-finite stage is ${stage.what}${from}: ${value}`, stage.what);
}
