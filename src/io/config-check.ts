// Checks of the values a model config (config.json, scheduler_config.json,
// preprocessor_config.json, …) gives, made when the config is read: each error names the file (or
// the config's label where there is no file) and the key, in the one-line form the CLI prints:
//   weights/x/scheduler/scheduler_config.json: beta_end must be in (0, 1), got -5

/** A config value that is missing, of the wrong type, out of range or inconsistent with another. */
export class ConfigError extends Error {
  override name = 'ConfigError';
  constructor(
    /** The config file, or the config's label ("UNet config"). */
    readonly where: string,
    readonly key: string,
    readonly problem: string,
  ) {
    super(`${where}: ${key} ${problem}`);
  }
}

export interface NumberRule {
  integer?: boolean;
  /** Inclusive bounds. */
  min?: number;
  max?: number;
  /** Exclusive bounds. */
  above?: number;
  below?: number;
}

function show(v: unknown): string {
  if (typeof v === 'number') return String(v);
  const s = JSON.stringify(v);
  return s === undefined ? 'nothing' : s.length > 60 ? `${s.slice(0, 57)}…` : s;
}

function rangeText(r: NumberRule): string | undefined {
  const lo = r.above !== undefined ? `(${r.above}` : r.min !== undefined ? `[${r.min}` : undefined;
  const hi = r.below !== undefined ? `${r.below})` : r.max !== undefined ? `${r.max}]` : undefined;
  if (lo && hi) return `in ${lo}, ${hi}`;
  if (r.above !== undefined) return `> ${r.above}`;
  if (r.min !== undefined) return `≥ ${r.min}`;
  if (r.below !== undefined) return `< ${r.below}`;
  if (r.max !== undefined) return `≤ ${r.max}`;
  return undefined;
}

/** Why `v` breaks `rule`, or undefined when it does not. */
export function numberProblem(v: unknown, rule: NumberRule = {}): string | undefined {
  const kind = rule.integer ? 'an integer' : 'a finite number';
  const range = rangeText(rule);
  const want = `must be ${kind}${range ? ` ${range}` : ''}`;
  if (typeof v !== 'number' || !Number.isFinite(v) || (rule.integer && !Number.isInteger(v))) return `${want}, got ${show(v)}`;
  const bad = (rule.min !== undefined && v < rule.min) || (rule.max !== undefined && v > rule.max) || (rule.above !== undefined && v <= rule.above) || (rule.below !== undefined && v >= rule.below);
  return bad ? `must be ${range}, got ${v}` : undefined;
}

/** A number field of `cfg` that must follow `rule`; `optional` fields may be absent (or null). */
export function configNumber(cfg: object, key: string, where: string, rule: NumberRule & { optional?: boolean } = {}): number | undefined {
  const v = (cfg as Record<string, unknown>)[key];
  if (rule.optional && (v === undefined || v === null)) return undefined;
  const problem = numberProblem(v, rule);
  if (problem) throw new ConfigError(where, key, problem);
  return v as number;
}

/** A required number field. */
export function requireConfigNumber(cfg: object, key: string, where: string, rule: NumberRule = {}): number {
  return configNumber(cfg, key, where, rule)!;
}

/** A field that is one number or a list of numbers (e.g. per block), each following `rule`. */
export function configNumbers(cfg: object, key: string, where: string, rule: NumberRule & { length?: number; optional?: boolean } = {}): number[] | undefined {
  const v = (cfg as Record<string, unknown>)[key];
  if (rule.optional && (v === undefined || v === null)) return undefined;
  const list = Array.isArray(v) ? (v as unknown[]) : [v];
  if (Array.isArray(v) && (v.length === 0 || (rule.length !== undefined && v.length !== rule.length))) {
    throw new ConfigError(where, key, `must have ${rule.length ?? 'at least 1'} entr${rule.length === 1 ? 'y' : 'ies'}, got ${v.length}`);
  }
  list.forEach((x, i) => {
    const problem = numberProblem(x, rule);
    if (problem) throw new ConfigError(where, Array.isArray(v) ? `${key}[${i}]` : key, problem);
  });
  return list as number[];
}

/** Refuses a `divisor` (the value of `key`) that does not divide each of `values` (named
 *  `valuesKey`), e.g. GroupNorm groups or attention heads over channel counts. */
export function checkDivides(where: string, key: string, divisor: number, values: readonly number[], valuesKey: string): void {
  const bad = values.findIndex((v) => v % divisor !== 0);
  if (bad >= 0) {
    const at = values.length > 1 ? `${valuesKey}[${bad}] = ${values[bad]}` : `${valuesKey} ${values[bad]}`;
    throw new ConfigError(where, key, `${divisor} does not divide ${at}`);
  }
}

/** Generous bounds on a model's sizes: a value past them is a broken config, not a model. */
export const CONFIG_LIMITS = Object.freeze({ channels: 1 << 16, layers: 1024, tokens: 1 << 20, imageSide: 1 << 14 });
