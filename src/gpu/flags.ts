// Every tuning knob that can come from the environment, declared once. A Runtime reads them when it
// is created (rt.flags) and the kernels consult rt.flags, never the environment: a runtime's
// behaviour is then fixed for its lifetime, and two runtimes in one process may differ (tests).
// Precedence: an option given to Runtime.create, then the environment variable, then the default.

import { env } from '../platform/env.js';

/** When GEMMs and convolutions run on subgroup matrices (tensor cores) with f16 inputs and f32
 *  accumulation: `auto` those whose weights are f16, `on` all of them (f32 operands are rounded to
 *  f16 while staged), `off` none; each only where the adapter offers f16×f16→f32 subgroup
 *  matrices, the SIMT kernels otherwise. `emulate` runs the same kernels with the subgroup-matrix
 *  builtins written out in plain WGSL (any adapter with `shader-f16`): it checks the kernels'
 *  tiling where the feature is absent and is slow. */
export type TensorCoreMode = 'auto' | 'on' | 'off' | 'emulate';
export const TENSOR_CORE_MODES: readonly TensorCoreMode[] = ['auto', 'on', 'off', 'emulate'];

/** `auto`, a path, or the split path with a chunk length in elements. */
export type GroupNormFlag = 'auto' | 'single' | 'split' | `split:${number}`;

export interface FlagSpec<T> {
  /** The environment variable. */
  readonly env: string;
  /** What it takes, for messages and `diffsim info`. */
  readonly values: string;
  readonly default: T;
  /** One line for `diffsim --help` and the README. */
  readonly doc: string;
  /** The value a variable's text stands for; undefined when the text is not allowed. */
  parse(text: string): T | undefined;
  /** Whether an option value is allowed (options come from JavaScript callers, unchecked). */
  accepts(value: unknown): boolean;
}

function choice<const C extends string>(envName: string, choices: readonly C[], def: NoInfer<C>, doc: string): FlagSpec<C> {
  const accepts = (v: unknown): boolean => (choices as readonly unknown[]).includes(v);
  return { env: envName, values: choices.join(' | '), default: def, doc, accepts, parse: (t) => (accepts(t) ? (t as C) : undefined) };
}

function intChoice(envName: string, choices: readonly number[], def: number, doc: string): FlagSpec<number> {
  const accepts = (v: unknown): boolean => choices.includes(v as number);
  return { env: envName, values: choices.join(' | '), default: def, doc, accepts, parse: (t) => (/^\d+$/.test(t) && accepts(Number(t)) ? Number(t) : undefined) };
}

function bool(envName: string, doc: string): FlagSpec<boolean> {
  const texts = new Map([['1', true], ['true', true], ['0', false], ['false', false]]);
  return { env: envName, values: '1 | true | 0 | false', default: false, doc, accepts: (v) => typeof v === 'boolean', parse: (t) => texts.get(t.toLowerCase()) };
}

/** A comma-separated list (blanks dropped). */
function list(envName: string, doc: string): FlagSpec<readonly string[]> {
  return {
    env: envName,
    values: 'comma-separated names',
    default: [],
    doc,
    accepts: (v) => Array.isArray(v) && v.every((s) => typeof s === 'string'),
    parse: (t) => t.split(',').map((s) => s.trim()).filter((s) => s.length > 0),
  };
}

function text(envName: string, values: string, doc: string): FlagSpec<string> {
  return { env: envName, values, default: '', doc, accepts: (v) => typeof v === 'string', parse: (t) => t };
}

/** A string of a given form. */
function pattern<T extends string>(envName: string, form: RegExp, values: string, def: T, doc: string): FlagSpec<T> {
  const accepts = (v: unknown): boolean => typeof v === 'string' && form.test(v);
  return { env: envName, values, default: def, doc, accepts, parse: (t) => (accepts(t) ? (t as T) : undefined) };
}

/** The registry. The tile names match TILES, LANE_TILES and SUBGROUP_TILES in src/kernels (a test checks). */
export const FLAGS = {
  tensorCores: choice('DIFFSIM_TENSOR_CORES', TENSOR_CORE_MODES, 'auto', 'GEMMs, convolutions and attention on f16 subgroup matrices (as --tensor-cores); emulate: the builtins written out in WGSL (checks, slow)'),
  tcShape: choice('DIFFSIM_TC_SHAPE', ['16x16x16', '16x8x16', '8x8x8'], '16x16x16', 'the subgroup-matrix shape M×N×K under tensorCores emulate'),
  tcSubgroup: intChoice('DIFFSIM_TC_SUBGROUP', [4, 8, 16, 32, 64, 128], 32, 'the subgroup size the kernels assume under tensorCores emulate'),
  tcTile: choice('DIFFSIM_TC_TILE', ['auto', 'large', 'medium'], 'auto', 'the subgroup-matrix GEMM tile (auto: large once it fills the GPU)'),
  gemmTile: choice('DIFFSIM_GEMM_TILE', ['auto', 'large', 'medium', 'small', 'tall', 'n16', 'n4', 'n2', 'm8', 'ln2r4', 'ln2r2', 'ln2r1', 'lm2r2', 'lm2r1'], 'auto', 'the SIMT GEMM tile: a workgroup-memory tile (large … m8) or a lane tile (l…, subgroup broadcasts, no workgroup memory; the default on CPU adapters with fixed-size subgroups); auto: by problem size and adapter'),
  gemmScalar: bool('DIFFSIM_GEMM_SCALAR', 'scalar instead of vec4 operand loads in the SIMT GEMM'),
  groupNorm: pattern<GroupNormFlag>('DIFFSIM_GROUPNORM', /^(?:auto|single|split(?::[1-9]\d*)?)$/, 'auto | single | split | split:<chunk elements>', 'auto', 'the GroupNorm path (auto: one dispatch per row up to 16384 elements, else split)'),
  dawnToggles: list('DIFFSIM_DAWN_TOGGLES', 'Dawn toggles to enable (Node), e.g. allow_unsafe_apis,disable_robustness'),
  dawnDisableToggles: list('DIFFSIM_DAWN_DISABLE_TOGGLES', 'Dawn toggles to disable (Node)'),
  dawnBackend: text('DIFFSIM_DAWN_BACKEND', 'vulkan | metal | d3d12 | …', 'Dawn backend (Node); empty: vulkan on Linux, Dawn\'s choice elsewhere'),
  disableFeatures: list('DIFFSIM_DISABLE_FEATURES', 'optional WebGPU features not to request, e.g. shader-f16,subgroups'),
  debug: bool('DIFFSIM_DEBUG', 'the diffsim command prints the stack of an error'),
} as const;

export type FlagName = keyof typeof FLAGS;
type ValueOf<S> = S extends FlagSpec<infer T> ? T : never;
/** The value of every flag. */
export type Flags = { readonly [K in FlagName]: ValueOf<(typeof FLAGS)[K]> };
/** Flags given as options (Runtime.create({ flags })): these win over the environment. */
export type FlagOptions = { [K in FlagName]?: Flags[K] };
export type FlagSource = 'default' | 'env' | 'option';

export class FlagError extends Error {
  override name = 'FlagError';
}

/** One flag: an option's value if given, else its variable's, else the default. Throws a FlagError
 *  naming the flag, its variable and the allowed values on a value that is not allowed; an empty
 *  variable counts as unset. */
export function resolveFlag<K extends FlagName>(name: K, option?: Flags[K], read: (name: string) => string | undefined = env): { value: Flags[K]; source: FlagSource } {
  const spec = FLAGS[name] as FlagSpec<Flags[K]>;
  const allowed = spec.values.includes(' | ') ? `one of ${spec.values.split(' | ').join(', ')}` : spec.values;
  if (option !== undefined) {
    if (!spec.accepts(option)) throw new FlagError(`${name} (${spec.env}): expected ${allowed}, got '${String(option)}'`);
    return { value: option, source: 'option' };
  }
  const raw = read(spec.env);
  if (raw === undefined || raw === '') return { value: spec.default, source: 'default' };
  const value = spec.parse(raw);
  if (value === undefined) throw new FlagError(`${spec.env}=${raw} in the environment: ${name} expects ${allowed}`);
  return { value, source: 'env' };
}

/** Every flag with where its value came from (see resolveFlag); unknown options are refused. */
export function resolveFlags(options: FlagOptions = {}, read: (name: string) => string | undefined = env): { flags: Flags; sources: Record<FlagName, FlagSource> } {
  const unknown = Object.keys(options).filter((k) => !(k in FLAGS));
  if (unknown.length) throw new FlagError(`unknown flag ${unknown.map((k) => `'${k}'`).join(', ')} (known: ${Object.keys(FLAGS).join(', ')})`);
  const flags: Record<string, unknown> = {};
  const sources = {} as Record<FlagName, FlagSource>;
  for (const name of Object.keys(FLAGS) as FlagName[]) {
    const r = resolveFlag(name, options[name], read);
    flags[name] = r.value;
    sources[name] = r.source;
  }
  return { flags: Object.freeze(flags) as unknown as Flags, sources };
}

/** A flag's value as text ('' for an empty list). */
export function formatFlag(value: Flags[FlagName]): string {
  return Array.isArray(value) ? value.join(',') : String(value);
}
