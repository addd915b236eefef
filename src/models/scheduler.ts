// PNDMScheduler (diffusers 0.29.2) as DiffSim uses it: the beta/alpha tables in float32, the
// timestep list for N inference steps, and add_noise; EulerDiscreteScheduler as DiffSim on SDXL
// uses it: timesteps, the σ table, init_noise_sigma, add_noise (x + σ·ε) and scale_model_input.

import { binary } from '../kernels/elementwise.js';
import { ShapeError, type Tensor } from '../gpu/runtime.js';
import { ConfigError, configNumber, configNumbers, requireConfigNumber } from '../io/config-check.js';

export interface SchedulerConfig {
  num_train_timesteps: number;
  beta_start: number;
  beta_end: number;
  beta_schedule: string;
  trained_betas?: number[] | null;
  skip_prk_steps?: boolean;
  set_alpha_to_one?: boolean;
  steps_offset?: number;
  timestep_spacing?: string;
  prediction_type?: string;
  clip_sample?: boolean;
  /** EulerDiscreteScheduler fields (only their defaults are supported). */
  interpolation_type?: string;
  use_karras_sigmas?: boolean;
  timestep_type?: string;
  final_sigmas_type?: string;
  rescale_betas_zero_snr?: boolean;
  sigma_min?: number | null;
  sigma_max?: number | null;
}

const f = Math.fround;

/** torch.linspace(start, end, steps, dtype=float32) as ATen's CPU kernel computes it: a float32
 *  step, the first half counted up from start, the second half down from end. */
export function linspaceF32(start: number, end: number, steps: number): Float32Array {
  const out = new Float32Array(steps);
  if (steps === 1) {
    out[0] = start;
    return out;
  }
  const s = f(start);
  const e = f(end);
  const step = f(f(e - s) / (steps - 1));
  const half = Math.floor(steps / 2);
  for (let i = 0; i < steps; i++) out[i] = i < half ? f(s + f(step * i)) : f(e - f(step * (steps - i - 1)));
  return out;
}

const BETA_SCHEDULES = ['linear', 'scaled_linear'];
const TIMESTEP_SPACINGS = ['leading', 'linspace', 'trailing'];
/** The largest num_train_timesteps accepted (diffusers' schedules use 1000). */
const MAX_TRAIN_TIMESTEPS = 100_000;

/** Refuses schedules that would give non-finite or meaningless noise levels: betas outside (0, 1),
 *  beta_start > beta_end, a step count that is not a positive integer, unknown schedules. */
export function validateSchedulerConfig(config: SchedulerConfig, where: string): void {
  const c = config as unknown as Record<string, unknown>;
  const n = requireConfigNumber(config, 'num_train_timesteps', where, { integer: true, min: 1, max: MAX_TRAIN_TIMESTEPS });
  const trained = c.trained_betas;
  if (trained !== undefined && trained !== null) {
    if (!Array.isArray(trained)) throw new ConfigError(where, 'trained_betas', `must be a list of numbers, got ${JSON.stringify(trained).slice(0, 40)}`);
    if (trained.length !== n) throw new ConfigError(where, 'trained_betas', `has ${trained.length} entries, expected num_train_timesteps = ${n}`);
    configNumbers(config, 'trained_betas', where, { above: 0, below: 1 });
  } else {
    if (typeof c.beta_schedule !== 'string' || !BETA_SCHEDULES.includes(c.beta_schedule)) {
      throw new ConfigError(where, 'beta_schedule', `${JSON.stringify(c.beta_schedule)} is not supported (${BETA_SCHEDULES.join(', ')})`);
    }
    const start = requireConfigNumber(config, 'beta_start', where, { above: 0, below: 1 });
    const end = requireConfigNumber(config, 'beta_end', where, { above: 0, below: 1 });
    if (start > end) throw new ConfigError(where, 'beta_start', `${start} must be ≤ beta_end ${end}`);
  }
  configNumber(config, 'steps_offset', where, { optional: true, integer: true, min: 0, max: n - 1 });
  if (c.timestep_spacing !== undefined && c.timestep_spacing !== null && !TIMESTEP_SPACINGS.includes(c.timestep_spacing as string)) {
    throw new ConfigError(where, 'timestep_spacing', `${JSON.stringify(c.timestep_spacing)} is not supported (${TIMESTEP_SPACINGS.join(', ')})`);
  }
}

/** betas, alphas and alphas_cumprod in float32, as diffusers builds them for the config. */
function scheduleTables(config: SchedulerConfig): { betas: Float32Array; alphas: Float32Array; alphasCumprod: Float32Array } {
  const n = config.num_train_timesteps;
  let betas: Float32Array;
  if (config.trained_betas) betas = Float32Array.from(config.trained_betas);
  else if (config.beta_schedule === 'linear') betas = linspaceF32(config.beta_start, config.beta_end, n);
  else betas = linspaceF32(Math.sqrt(f(config.beta_start)), Math.sqrt(f(config.beta_end)), n).map((v) => f(v * v));
  const alphas = betas.map((b) => f(1 - b));
  const alphasCumprod = new Float32Array(n);
  let acc = 1;
  for (let i = 0; i < n; i++) alphasCumprod[i] = acc = f(acc * alphas[i]!);
  return { betas, alphas, alphasCumprod };
}

export class PNDMScheduler {
  readonly betas: Float32Array;
  readonly alphas: Float32Array;
  readonly alphasCumprod: Float32Array;
  readonly finalAlphaCumprod: number;

  /** `where` names the config (its file) in errors. */
  constructor(
    readonly config: SchedulerConfig,
    readonly where = 'scheduler config',
  ) {
    validateSchedulerConfig(config, where);
    ({ betas: this.betas, alphas: this.alphas, alphasCumprod: this.alphasCumprod } = scheduleTables(config));
    this.finalAlphaCumprod = config.set_alpha_to_one ? 1 : this.alphasCumprod[0]!;
  }

  /** The PLMS timestep list for `steps` inference steps (with skip_prk_steps: steps + 1 entries,
   *  e.g. 1000 steps → [1000, 999, 999, 998, …, 1]). */
  timesteps(steps: number): number[] {
    const c = this.config;
    const n = c.num_train_timesteps;
    if (!Number.isInteger(steps) || steps < 1 || steps > n) throw new RangeError(`inference steps ${steps} must be an integer in [1, ${n}]`);
    let base: number[];
    const spacing = c.timestep_spacing ?? 'leading';
    if (spacing === 'leading') {
      const ratio = Math.floor(n / steps);
      base = Array.from({ length: steps }, (_, i) => i * ratio + (c.steps_offset ?? 0));
    } else if (spacing === 'linspace') {
      base = Array.from({ length: steps }, (_, i) => Math.round(steps === 1 ? 0 : (i * (n - 1)) / (steps - 1)));
    } else if (spacing === 'trailing') {
      const ratio = n / steps;
      const desc: number[] = [];
      for (let t = n; t > 0; t -= ratio) desc.push(Math.round(t));
      base = desc.reverse().map((t) => t - 1);
    } else {
      throw new Error(`${this.where}: timestep_spacing "${spacing}" is not supported`);
    }
    if (c.skip_prk_steps === false) {
      // PRK warm-up steps (pndm_order 4), as diffusers builds them.
      const order = 4;
      const last = base.slice(-order);
      const halfStep = Math.floor(n / steps / 2);
      const prk: number[] = [];
      for (const t of last) prk.push(t, t + halfStep);
      const rep: number[] = [];
      for (const t of prk.slice(0, -1)) rep.push(t, t);
      const prkSteps = rep.slice(1, -1).reverse();
      return [...prkSteps, ...base.slice(0, -3).reverse()];
    }
    return [...base.slice(0, -1), ...base.slice(-2, -1), ...base.slice(-1)].reverse();
  }

  /** √ᾱ_t and √(1 − ᾱ_t) in float32. */
  coefficients(t: number): [number, number] {
    if (!Number.isInteger(t) || t < 0 || t >= this.alphasCumprod.length) {
      throw new RangeError(`timestep ${t} outside [0, ${this.alphasCumprod.length - 1}] (DiffSim's target_step 0 maps to t = 1000, which is out of range)`);
    }
    const a = this.alphasCumprod[t]!;
    return [f(Math.sqrt(a)), f(Math.sqrt(f(1 - a)))];
  }

  /** add_noise on the host: √ᾱ_t·x + √(1−ᾱ_t)·noise, one timestep per batch element (or one for all). */
  addNoiseHost(original: Float32Array, noise: Float32Array, timesteps: readonly number[], batch: number): Float32Array {
    if (original.length !== noise.length || original.length % batch !== 0) throw new ShapeError('addNoise: original and noise differ in size');
    if (timesteps.length !== 1 && timesteps.length !== batch) throw new ShapeError(`addNoise: ${timesteps.length} timesteps for batch ${batch}`);
    const per = original.length / batch;
    const out = new Float32Array(original.length);
    for (let b = 0; b < batch; b++) {
      const [sa, sb] = this.coefficients(timesteps.length === 1 ? timesteps[0]! : timesteps[b]!);
      for (let i = b * per; i < (b + 1) * per; i++) out[i] = f(f(sa * original[i]!) + f(sb * noise[i]!));
    }
    return out;
  }

  /** add_noise on the GPU for one timestep. */
  addNoise(original: Tensor, noise: Tensor, t: number): Tensor {
    const [sa, sb] = this.coefficients(t);
    return binary(original, noise, 'add', sa, sb);
  }
}

/** EulerDiscreteScheduler (diffusers 0.29.2; SDXL's scheduler) with interpolation "linear",
 *  discrete timesteps, no Karras sigmas. σ(t) = √((1 − ᾱ_t)/ᾱ_t) in float32, interpolated
 *  linearly at the (float) timesteps and clamped to [σ(0), σ(n−1)] (np.interp). */
export class EulerDiscreteScheduler {
  readonly kind = 'euler' as const;
  readonly betas: Float32Array;
  readonly alphas: Float32Array;
  readonly alphasCumprod: Float32Array;
  /** σ at each training timestep (float32 ops, as torch computes it). */
  readonly trainSigmas: Float32Array;

  constructor(
    readonly config: SchedulerConfig,
    readonly where = 'scheduler config',
  ) {
    validateSchedulerConfig(config, where);
    const bad: string[] = [];
    if ((config.interpolation_type ?? 'linear') !== 'linear') bad.push(`interpolation_type ${JSON.stringify(config.interpolation_type)}`);
    if (config.use_karras_sigmas) bad.push('use_karras_sigmas');
    if ((config.timestep_type ?? 'discrete') !== 'discrete') bad.push(`timestep_type ${JSON.stringify(config.timestep_type)}`);
    if ((config.final_sigmas_type ?? 'zero') !== 'zero') bad.push(`final_sigmas_type ${JSON.stringify(config.final_sigmas_type)}`);
    if (config.rescale_betas_zero_snr) bad.push('rescale_betas_zero_snr');
    if ((config.prediction_type ?? 'epsilon') !== 'epsilon') bad.push(`prediction_type ${JSON.stringify(config.prediction_type)}`);
    if (bad.length) throw new ConfigError(where, bad[0]!.split(' ')[0]!, `not supported for EulerDiscreteScheduler (${bad.join(', ')})`);
    ({ betas: this.betas, alphas: this.alphas, alphasCumprod: this.alphasCumprod } = scheduleTables(config));
    this.trainSigmas = this.alphasCumprod.map((a) => f(Math.sqrt(f(f(1 - a) / a))));
  }

  /** set_timesteps(steps).timesteps (float), e.g. 1000 leading steps with steps_offset 1 →
   *  [1000, 999, …, 1]. */
  timesteps(steps: number): number[] {
    const c = this.config;
    const n = c.num_train_timesteps;
    if (!Number.isInteger(steps) || steps < 1 || steps > n) throw new RangeError(`inference steps ${steps} must be an integer in [1, ${n}]`);
    const spacing = c.timestep_spacing ?? 'linspace';
    if (spacing === 'leading') {
      const ratio = Math.floor(n / steps);
      return Array.from({ length: steps }, (_, i) => (steps - 1 - i) * ratio + (c.steps_offset ?? 0));
    }
    if (spacing === 'trailing') {
      const ratio = n / steps;
      const out: number[] = [];
      for (let t = n; t > 0; t -= ratio) out.push(f(Math.round(t) - 1));
      return out;
    }
    // linspace: np.linspace(0, n − 1, steps)[::-1] as float32.
    return Array.from({ length: steps }, (_, i) => f(steps === 1 ? 0 : ((n - 1) * (steps - 1 - i)) / (steps - 1)));
  }

  /** σ at a (float) timestep: np.interp over the training σ table, clamped at the ends, as float32. */
  sigmaAt(t: number): number {
    const s = this.trainSigmas;
    if (!(t > 0)) return s[0]!;
    if (t >= s.length - 1) return s[s.length - 1]!;
    const i = Math.floor(t);
    const w = t - i;
    return f(w === 0 ? s[i]! : s[i]! + (s[i + 1]! - s[i]!) * w);
  }

  /** The sigmas of set_timesteps(steps): one per timestep, then 0. */
  sigmas(steps: number): Float32Array {
    const ts = this.timesteps(steps);
    return Float32Array.from([...ts.map((t) => this.sigmaAt(t)), 0]);
  }

  /** init_noise_sigma after set_timesteps(steps): √(σ_max² + 1) (leading), σ_max (linspace, trailing). */
  initNoiseSigma(steps: number): number {
    const max = this.sigmas(steps).reduce((m, v) => Math.max(m, v), 0);
    const spacing = this.config.timestep_spacing ?? 'linspace';
    return spacing === 'linspace' || spacing === 'trailing' ? max : f(Math.sqrt(f(f(max * max) + 1)));
  }

  /** add_noise at timestep t: x + σ(t)·ε (GPU). */
  addNoise(original: Tensor, noise: Tensor, sigma: number, originalScale = 1): Tensor {
    return binary(original, noise, 'add', originalScale, sigma);
  }

  /** scale_model_input's factor 1/√(σ² + 1) (float32). */
  inputScale(sigma: number): number {
    return f(1 / f(Math.sqrt(f(f(sigma * sigma) + 1))));
  }
}

/** A seeded standard-normal generator (xoshiro128** + Box–Muller, float32 output). */
export class NormalGenerator {
  private s: Uint32Array;
  private spare: number | null = null;
  constructor(seed: number) {
    // splitmix32 to fill the state from one seed
    let x = seed >>> 0;
    const next = () => {
      x = (x + 0x9e3779b9) >>> 0;
      let z = x;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.s = Uint32Array.from([next(), next(), next(), next()]);
  }
  private nextU32(): number {
    const s = this.s;
    const result = Math.imul(((Math.imul(s[1]!, 5) << 7) | (Math.imul(s[1]!, 5) >>> 25)) >>> 0, 9) >>> 0;
    const t = (s[1]! << 9) >>> 0;
    s[2]! ^= s[0]!;
    s[3]! ^= s[1]!;
    s[1]! ^= s[2]!;
    s[0]! ^= s[3]!;
    s[2]! ^= t;
    s[3] = ((s[3]! << 11) | (s[3]! >>> 21)) >>> 0;
    return result;
  }
  /** Uniform in (0, 1). */
  uniform(): number {
    return (this.nextU32() + 0.5) / 4294967296;
  }
  normal(): number {
    if (this.spare !== null) {
      const v = this.spare;
      this.spare = null;
      return v;
    }
    const r = Math.sqrt(-2 * Math.log(this.uniform()));
    const th = 2 * Math.PI * this.uniform();
    this.spare = r * Math.sin(th);
    return r * Math.cos(th);
  }
  randn(n: number): Float32Array {
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = this.normal();
    return out;
  }
}
