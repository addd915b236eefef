// The metric options every command that scores images shares (score, pick, eval, retrieve, map):
// parsing with one-line errors naming the option, and loading the metrics they describe.
//
// The DiffSim options are a thin spelling of the library's settings: DIFFSIM_OPTION_TABLE turns each
// into settings (values spelled as the library spells them), and what no option gives comes from the
// preset and the defaults in settings.ts, so the command line and the library score alike.

import { DiffSimSettingsError, DIFFSIM_DEFAULTS, DIFFSIM_XL_DEFAULTS, PERCEPTUAL_DEFAULTS, DIFFSIM_PRESETS, DIFFSIM_PRESET_NAMES, DIT_DEFAULTS, DIT_SETTING_CHOICES, SETTING_CHOICES, blockOf, mergeSettings, type DiffSimPresetName, type DiffSimSettings, type DiffSimSettingsInput, type DitSettingsInput } from '../diffsim/settings.js';
import { createMetrics, DEFAULT_MODELS, METRIC_NAMES, type Metric, type MetricName } from '../diffsim/metric.js';
import type { LoadEventCallback } from '../io/events.js';
import type { TensorCoreMode } from '../gpu/runtime.js';
import type { WeightPrecision } from '../nn/weights.js';
import type { ActivationDType } from '../kernels/common.js';
import { IP_SCALE_LIMIT } from '../models/ip-adapter.js';
import { UsageError } from './errors.js';
import { loadDisplay } from './progress.js';

export { DEFAULT_MODELS };
export type CliMetric = MetricName | 'ensemble';

export interface MetricArgs {
  metric: CliMetric;
  /** Every metric named (a comma list where the command allows one, ParseSpec.metricList); the
   *  first is \`metric\`. */
  metrics: CliMetric[];
  /** --preset (eval: the benchmark's when none is given); null: the defaults. */
  preset: DiffSimPresetName | null;
  /** The DiffSim settings the options give, in the library's names and values (the rest comes from
   *  the preset and the defaults: resolvedDiffSim). */
  diffsim: Partial<DiffSimSettings>;
  /** --layer, which is also the CLIP/DINOv2 encoder layer (undefined: the metrics' default). */
  layer: number | undefined;
  /** --tokenizer: for a single-file --model, where the tokenizer comes from. */
  tokenizer: string | undefined;
  /** --ema: a single-file --model's EMA U-Net weights. */
  ema: boolean;
  clipQkv: 'pre-ln' | 'post-ln';
  model: string;
  ipAdapter: string;
  clipModel: string;
  dinoModel: string;
  /** --lpips-model: LPIPS' backbone (undefined: the default of --lpips-net). */
  lpipsModel: string | undefined;
  /** --lpips-heads: the v0.1 linear heads (undefined: looked for beside the backbone). */
  lpipsHeads: string | undefined;
  vggModel: string;
  lpipsNet: 'vgg' | 'alex';
  /** --lpips-normalize: [0, 1] inputs (lpips normalize=True). */
  lpipsNormalize: boolean;
  gramRows: 'last' | 'all';
  /** --dit-model: diffsim-dit's DiT folder or hub id. */
  ditModel: string;
  /** diffsim-dit's own settings (--dit-timesteps, --dit-class). */
  dit: DitSettingsInput;
  weights: WeightPrecision;
  activations: ActivationDType;
  tensorCores: TensorCoreMode;
  /** --progress: the load display on stderr even when it is not a terminal. */
  progress: boolean;
  /** The metric options given on the command line. */
  given: Set<string>;
}

/** A DiffSim option's value → the library settings it stands for. */
type OptionToSettings = (command: string, name: string, value: string) => Partial<DiffSimSettings>;

/** Older command-line spellings still accepted for a value, mapped to the library's. */
export const VALUE_ALIASES: Readonly<Record<string, Readonly<Record<string, string>>>> = Object.freeze({
  noise: Object.freeze({ official: 'official-4-draws' }),
});

/** --cfg: which CFG halves enter the score, or off (no CFG batch: the library's cfg false). */
const CFG_VALUES = {
  both: { cfg: true, cfgHalves: 'both' },
  cond: { cfg: true, cfgHalves: 'cond' },
  uncond: { cfg: true, cfgHalves: 'uncond' },
  off: { cfg: false },
} as const satisfies Record<string, Partial<DiffSimSettings>>;

/** A string setting whose option takes the library's values as they are. */
function settingChoice(key: 'similarity' | 'vae' | 'noise'): OptionToSettings {
  return (command, name, value) => ({ [key]: choice(command, name, VALUE_ALIASES[name]?.[value] ?? value, SETTING_CHOICES[key]) });
}

/** Every DiffSim option of the command line and the settings it gives: the one mapping between
 *  the two spellings. --fp16-score takes no value. */
export const DIFFSIM_OPTION_TABLE: Readonly<Record<string, OptionToSettings>> = Object.freeze({
  block: (c, n, v) => ({ block: blockOf(choice(c, n, v, SETTING_CHOICES.block)) }),
  // diffsim-xl takes the official list-valued target: --layer 0,1,2 (block, attention, transformer block).
  layer: (c, n, v) => {
    if (!v.includes(',')) return { layer: integer(c, n, v, 0) };
    const target = v.split(',').map((x) => integer(c, n, x.trim(), 0));
    if (target.length > 3) throw new UsageError(`${c}: --${n} takes at most 3 indices (block, attention, transformer block), got ${JSON.stringify(v)}`);
    return { target };
  },
  'xl-latent-scale': (c, n, v) => ({ xlLatentScale: choice(c, n, v, SETTING_CHOICES.xlLatentScale) }),
  'xl-time-ids': (c, n, v) => ({ xlTimeIds: choice(c, n, v, SETTING_CHOICES.xlTimeIds) }),
  step: (c, n, v) => ({ step: integer(c, n, v, 1, 1000), stepMode: 'official-index' }),
  timestep: (c, n, v) => ({ step: integer(c, n, v, 0, 999), stepMode: 'timestep' }),
  prompt: (_c, _n, v) => ({ prompt: v }),
  'negative-prompt': (_c, _n, v) => ({ negativePrompt: v }),
  seed: (c, n, v) => ({ seed: integer(c, n, v, 0) }),
  noise: settingChoice('noise'),
  size: (c, n, v) => ({ imageSize: integer(c, n, v, 64, 4096) }),
  similarity: settingChoice('similarity'),
  vae: settingChoice('vae'),
  cfg: (c, n, v) => CFG_VALUES[choice(c, n, v, Object.keys(CFG_VALUES) as (keyof typeof CFG_VALUES)[])],
  'ip-scale': (c, _n, v) => {
    const x = Number(v);
    if (!v.trim() || !Number.isFinite(x)) throw new UsageError(`${c}: --ip-scale must be a number, got ${JSON.stringify(v)}`);
    if (Math.abs(x) > IP_SCALE_LIMIT) throw new UsageError(`${c}: --ip-scale must be within ±${IP_SCALE_LIMIT}, got ${v}`);
    return { ipScale: x };
  },
  'fp16-score': () => ({ roundToF16: true }),
});

export const METRIC_VALUE_OPTIONS = ['metric', 'preset', 'block', 'layer', 'step', 'timestep', 'prompt', 'negative-prompt', 'seed', 'noise', 'size', 'similarity', 'vae', 'cfg', 'ip-scale', 'xl-latent-scale', 'xl-time-ids', 'clip-qkv', 'model', 'ip-adapter', 'clip-model', 'dino-model', 'lpips-model', 'lpips-heads', 'vgg-model', 'lpips-net', 'gram-rows', 'dit-model', 'dit-timesteps', 'dit-class', 'weights', 'activations', 'tensor-cores', 'tokenizer'] as const;
export const METRIC_FLAGS = ['fp16-score', 'ema', 'progress', 'lpips-normalize'] as const;

const MODEL_OPTIONS = ['metric', 'weights', 'tensor-cores', 'model', 'ip-adapter', 'clip-model', 'dino-model', 'lpips-model', 'vgg-model', 'dit-model'];
/** Which of the other options each metric reads. */
const DIFFSIM_OPTIONS = ['preset', 'block', 'layer', 'step', 'timestep', 'prompt', 'negative-prompt', 'seed', 'noise', 'size', 'similarity', 'vae', 'cfg', 'fp16-score', 'activations', 'tokenizer', 'ema'];
const APPLIES: Record<CliMetric, readonly string[]> = {
  diffsim: DIFFSIM_OPTIONS,
  'diffsim-c': [...DIFFSIM_OPTIONS, 'ip-scale'],
  'diffsim-xl': [...DIFFSIM_OPTIONS.filter((o) => o !== 'tokenizer' && o !== 'ema'), 'xl-latent-scale', 'xl-time-ids'],
  diffeats: DIFFSIM_OPTIONS.filter((o) => o !== 'similarity' && o !== 'fp16-score'),
  'clip-aas': ['layer', 'clip-qkv'],
  clipfeats: ['layer'],
  clip: [],
  'dino-aas': ['layer'],
  dinofeats: ['layer'],
  dino: [],
  lpips: ['size', 'lpips-net', 'lpips-normalize', 'lpips-heads'],
  gram: ['size', 'gram-rows'],
  ensemble: DIFFSIM_OPTIONS.filter((o) => o !== 'layer'),
  // The shared DiffSim settings DiT reads (settings.ts, DIT_SHARED_SETTINGS) and its own.
  'diffsim-dit': ['preset', 'layer', 'step', 'seed', 'noise', 'size', 'similarity', 'vae', 'fp16-score', 'dit-timesteps', 'dit-class'],
};

const D = DIFFSIM_DEFAULTS;
/** The presets as the usage text lists them: nights (step 500), … */
export const PRESET_SUMMARY = DIFFSIM_PRESET_NAMES.map((n) => `${n} (${Object.entries(DIFFSIM_PRESETS[n]).map(([k, v]) => `${k} ${String(v)}`).join(', ')})`).join(', ');

/** Text for the usage: words wrapped at 110 columns, continuation lines indented by `indent`
 *  (the option column by default). */
export function wrap(text: string, indent = 27): string {
  const out: string[] = [];
  let line = '';
  for (const word of text.split(' ')) {
    if (line && line.length + 1 + word.length > 110 - indent) {
      out.push(line);
      line = word;
    } else line = line ? `${line} ${word}` : word;
  }
  out.push(line);
  return out.join(`\n${' '.repeat(indent)}`);
}

export const METRIC_USAGE = `    --metric M             diffsim (default; self-attention AAS on SD1.5), diffsim-c (IP-Adapter Plus
                           cross-attention), diffsim-xl (self-attention AAS on SDXL), clip-aas, dino-aas, clip (CLIP-I), dino (DINOv2 cosine),
                           clipfeats, dinofeats, diffeats (min–max normalised attn1 output cosine),
                           lpips (LPIPS v0.1 distance, lower = more similar), gram (VGG19 Gram cosine)
                           diffsim-dit (DiffSim on DiT-XL/2)
    --preset NAME          ${wrap(`the official settings of a benchmark's script: ${PRESET_SUMMARY}; the options given override it (default: the official README example, step ${D.step})`)}
    --block up|down|mid    DiffSim U-Net block (default ${D.block})
    --layer N              DiffSim layer in the block, CLIP/DINOv2 encoder layer (default ${D.layer}; the official
                           DiffSim code always hooks 0, here N is honoured); diffsim-xl: the official list
                           B,A,T (block, attention, transformer block; mid: A,T), or N = N,last,last
    --step N               DiffSim step, an index into the 1001-entry PNDM list: t = 1001 − N for N ≥ 2
                           (1–1000; larger = less noise; default ${D.step})
    --timestep T           the diffusion timestep itself (0–999), instead of --step
    --prompt TEXT          DiffSim prompt (default ${JSON.stringify(D.prompt)})
    --negative-prompt TEXT the unconditional CFG half's prompt (default ${JSON.stringify(D.negativePrompt)})
    --seed N               DiffSim noise seed (default ${D.seed})
    --noise ${SETTING_CHOICES.noise.join('|')}
                           ${wrap(`${SETTING_CHOICES.noise[0]} (default${D.noise === SETTING_CHOICES.noise[0] ? '' : ` ${D.noise}`}): A and B get different draws, as the official code ("official" is accepted for it); shared: B uses A's`)}
    --size N               DiffSim image side in pixels (default the U-Net's sample_size × 8; 512 for SD1.5);
                           lpips: the squashed side, gram: the shorter side (default ${PERCEPTUAL_DEFAULTS.lpips.imageSize})
    --similarity cosine|mse  DiffSim score (default ${D.similarity}; mse: lower = more similar)
    --vae sample|mean      the VAE posterior sample (official, default ${D.vae}) or its mean
    --cfg both|cond|uncond|off  CFG halves in the score (official: both); off: the prompt alone, no CFG batch
    --fp16-score           round the score to float16 as the official code returns it (ties occur)
    --ip-scale X           IP-Adapter scale of diffsim-c (default ${D.ipScale})
    --xl-latent-scale official|fixed  diffsim-xl: clean latents × init_noise_sigma before noising
                           (official, default) or the clean latents (fixed)
    --xl-time-ids official|image-size  diffsim-xl: add_time_ids at the U-Net's size, 1024 (official,
                           default), or at the image size
    --clip-qkv pre-ln|post-ln  where CLIP AAS takes q/k/v (official: the layer input before layer_norm1)
    --model PATH|ID        SD1.5: a diffusers pipeline folder, a single-file checkpoint (.safetensors,
                           e.g. v1-5-pruned-emaonly.safetensors) or a hub id (default ${DEFAULT_MODELS.model});
                           diffsim-xl: an SDXL pipeline folder or hub id (default ${DEFAULT_MODELS.xlModel}, fp16 files)
    --tokenizer PATH|ID    for a single-file --model: a tokenizer folder, or a pipeline folder or hub id
                           whose tokenizer/ is used (default ${DEFAULT_MODELS.model})
    --ema                  for a single-file --model: its EMA U-Net weights (default the non-EMA ones)
    --ip-adapter PATH|ID   IP-Adapter Plus for diffsim-c (default ${DEFAULT_MODELS.ipAdapter})
    --clip-model PATH|ID   (default ${DEFAULT_MODELS.clipModel})
    --dino-model PATH|ID   (default ${DEFAULT_MODELS.dinoModel})
    --lpips-net vgg|alex   LPIPS backbone: VGG16 (vgg, as DiffSim) or AlexNet (default ${PERCEPTUAL_DEFAULTS.lpips.net})
    --lpips-model PATH|ID  LPIPS backbone: torchvision features weights, a folder (model.safetensors), a
                           .safetensors file or a hub id (default ${DEFAULT_MODELS.lpipsModel}; alex: none)
    --lpips-heads PATH|ID  LPIPS v0.1 linear heads (default: lpips_<net>_v0.1.safetensors or <net>.safetensors
                           beside the backbone)
    --lpips-normalize      LPIPS inputs in [0, 1] (normalize=True) instead of process_image's [−1, 1]
    --vgg-model PATH|ID    the Gram baseline's VGG19 features (default ${DEFAULT_MODELS.vggModel})
    --gram-rows last|all   Gram cosine of the last row (official) or of the whole matrix (default ${PERCEPTUAL_DEFAULTS.gram.rows})
    --dit-model PATH|ID    diffsim-dit: a DiTPipeline folder (transformer/, vae/), a folder with an
                           official-layout DiT checkpoint (.safetensors) and vae/, or a hub id (default
                           ${DEFAULT_MODELS.ditModel})
    --dit-timesteps official|intended
                           diffsim-dit: ${DIT_DEFAULTS.timesteps} (default); official: noise at t = --step on SD1.5's
                           schedule, the DiT told timestep_map[1000 − step] (steps 501–999); intended: noise
                           on DiT's own schedule and the DiT told t = --step
    --dit-class N          diffsim-dit: the class label of the first batch element (default ${DIT_DEFAULTS.classLabel};
                           the second is the null class)
    --weights f32|f16|auto  linear/conv weights on the GPU (default f32)
    --activations f32|f16  the U-Net's and VAE's activations between ops (default f32; f16 halves
                           their memory traffic, f32 accumulation; needs the adapter's shader-f16)
    --tensor-cores auto|on|off  GEMMs/convs on f16 subgroup matrices where the adapter has them:
                           auto those with f16 weights (default), on all of them, off none
    --progress             model downloads and loading on stderr when it is not a terminal too (one
                           line per downloaded file and per loaded model; a terminal always shows it)`;

export function integer(command: string, name: string, value: string, min: number, max = Number.MAX_SAFE_INTEGER): number {
  if (!/^[+-]?\d+$/.test(value)) throw new UsageError(`${command}: --${name} must be an integer, got ${JSON.stringify(value)}`);
  const n = Number(value);
  if (n < min || n > max) throw new UsageError(`${command}: --${name} ${value} is outside ${min}–${max}`);
  return n;
}

export function choice<T extends string>(command: string, name: string, value: string, choices: readonly T[]): T {
  if (!(choices as readonly string[]).includes(value)) throw new UsageError(`${command}: unknown --${name} ${JSON.stringify(value)} (one of ${choices.join(', ')})`);
  return value as T;
}

function nonEmpty(command: string, name: string, value: string): string {
  if (!value) throw new UsageError(`${command}: --${name} needs a folder or a hub id`);
  return value;
}

export interface ParseSpec {
  /** Options of the command itself that take a value. */
  valueOptions?: readonly string[];
  /** Options of the command itself without a value. */
  flags?: readonly string[];
  /** Whether --metric ensemble is allowed. */
  ensemble?: boolean;
  /** Whether --metric takes a comma list (diffsim,clip,dino): each is loaded, and an option must
   *  apply to at least one of them. */
  metricList?: boolean;
  /** Single-dash spellings of the command's own value options, e.g. { '-k': 'k' }. */
  aliases?: Readonly<Record<string, string>>;
}

export interface ParsedCommand {
  positional: string[];
  metric: MetricArgs;
  /** The command's own options with their values. */
  options: Map<string, string>;
  flags: Set<string>;
}

/** Parses a command line of positionals, metric options and the command's own options. */
export function parseCommand(command: string, args: readonly string[], spec: ParseSpec = {}): ParsedCommand {
  const m: MetricArgs = {
    metric: 'diffsim',
    metrics: ['diffsim'],
    preset: null,
    diffsim: {},
    layer: undefined,
    tokenizer: undefined,
    ema: false,
    clipQkv: 'pre-ln',
    model: DEFAULT_MODELS.model,
    ipAdapter: DEFAULT_MODELS.ipAdapter,
    clipModel: DEFAULT_MODELS.clipModel,
    dinoModel: DEFAULT_MODELS.dinoModel,
    lpipsModel: undefined,
    lpipsHeads: undefined,
    vggModel: DEFAULT_MODELS.vggModel,
    lpipsNet: PERCEPTUAL_DEFAULTS.lpips.net,
    lpipsNormalize: PERCEPTUAL_DEFAULTS.lpips.normalize,
    gramRows: PERCEPTUAL_DEFAULTS.gram.rows,
    ditModel: DEFAULT_MODELS.ditModel,
    dit: {},
    weights: 'f32',
    activations: 'f32',
    tensorCores: 'auto',
    progress: false,
    given: new Set(),
  };
  const out: ParsedCommand = { positional: [], metric: m, options: new Map(), flags: new Set() };
  const ownValues = spec.valueOptions ?? [];
  // --pretty comes with --json (json.ts).
  const ownFlags = [...(spec.flags ?? []), ...(spec.flags?.includes('json') ? ['pretty'] : [])];
  let onlyPositional = false;
  for (let i = 0; i < args.length; i++) {
    let a = args[i]!;
    const alias = onlyPositional ? undefined : spec.aliases?.[a];
    if (alias !== undefined && Object.hasOwn(spec.aliases!, a)) a = `--${alias}`;
    if (onlyPositional || !a.startsWith('--') || a === '-') {
      out.positional.push(a);
      continue;
    }
    if (a === '--') {
      onlyPositional = true;
      continue;
    }
    const eq = a.indexOf('=');
    const name = eq < 0 ? a.slice(2) : a.slice(2, eq);
    const isFlag = (METRIC_FLAGS as readonly string[]).includes(name) || ownFlags.includes(name);
    const isValue = (METRIC_VALUE_OPTIONS as readonly string[]).includes(name) || ownValues.includes(name);
    if (!isFlag && !isValue) throw new UsageError(`${command}: unknown option ${eq < 0 ? a : a.slice(0, eq)}`);
    if (isFlag) {
      if (eq >= 0) throw new UsageError(`${command}: --${name} takes no value`);
      if (name === 'progress') {
        // Not a metric setting: it applies whatever the metric.
        m.progress = true;
        continue;
      }
      if (name === 'ema') {
        m.ema = true;
        m.given.add(name);
        continue;
      }
      if (name === 'lpips-normalize') {
        m.lpipsNormalize = true;
        m.given.add(name);
        continue;
      }
      if (name === 'fp16-score') {
        Object.assign(m.diffsim, DIFFSIM_OPTION_TABLE[name]!(command, name, ''));
        m.given.add(name);
      } else out.flags.add(name);
      continue;
    }
    let value: string;
    if (eq >= 0) value = a.slice(eq + 1);
    else {
      if (i + 1 >= args.length) throw new UsageError(`${command}: --${name} needs a value`);
      value = args[++i]!;
    }
    if (m.given.has(name) || out.options.has(name)) throw new UsageError(`${command}: --${name} given twice`);
    if (ownValues.includes(name)) {
      out.options.set(name, value);
      continue;
    }
    m.given.add(name);
    const toSettings = DIFFSIM_OPTION_TABLE[name];
    if (toSettings) {
      Object.assign(m.diffsim, toSettings(command, name, value));
      if (name === 'layer') m.layer = m.diffsim.layer;
      continue;
    }
    switch (name) {
      case 'metric': {
        const names: readonly CliMetric[] = spec.ensemble ? [...METRIC_NAMES, 'ensemble'] : METRIC_NAMES;
        if (!spec.metricList) m.metrics = [choice(command, name, value, names)];
        else {
          m.metrics = value.split(',').map((v) => choice(command, name, v.trim(), names));
          const twice = m.metrics.find((x, j) => m.metrics.indexOf(x) !== j);
          if (twice) throw new UsageError(`${command}: --metric names ${twice} twice`);
        }
        m.metric = m.metrics[0]!;
        break;
      }
      case 'preset':
        m.preset = choice(command, name, value, DIFFSIM_PRESET_NAMES);
        break;
      case 'clip-qkv':
        m.clipQkv = choice(command, name, value, ['pre-ln', 'post-ln']);
        break;
      case 'model':
        m.model = nonEmpty(command, name, value);
        break;
      case 'tokenizer':
        m.tokenizer = nonEmpty(command, name, value);
        break;
      case 'ip-adapter':
        m.ipAdapter = nonEmpty(command, name, value);
        break;
      case 'clip-model':
        m.clipModel = nonEmpty(command, name, value);
        break;
      case 'dino-model':
        m.dinoModel = nonEmpty(command, name, value);
        break;
      case 'lpips-model':
        m.lpipsModel = nonEmpty(command, name, value);
        break;
      case 'lpips-heads':
        m.lpipsHeads = nonEmpty(command, name, value);
        break;
      case 'vgg-model':
        m.vggModel = nonEmpty(command, name, value);
        break;
      case 'lpips-net':
        m.lpipsNet = choice(command, name, value, ['vgg', 'alex']);
        break;
      case 'gram-rows':
        m.gramRows = choice(command, name, value, ['last', 'all']);
        break;
      case 'dit-model':
        m.ditModel = nonEmpty(command, name, value);
        break;
      case 'dit-timesteps':
        m.dit.timesteps = choice(command, name, value, DIT_SETTING_CHOICES.timesteps);
        break;
      case 'dit-class':
        m.dit.classLabel = integer(command, name, value, 0);
        break;
      case 'weights':
        m.weights = choice(command, name, value, ['f32', 'f16', 'auto']);
        break;
      case 'activations':
        m.activations = choice(command, name, value, ['f32', 'f16']);
        break;
      case 'tensor-cores':
        m.tensorCores = choice(command, name, value, ['auto', 'on', 'off']);
        break;
    }
  }
  if (m.given.has('step') && m.given.has('timestep')) throw new UsageError(`${command}: give --step or --timestep, not both`);
  const applies = m.metrics.flatMap((x) => APPLIES[x]);
  for (const o of m.given) {
    // Model folders may be given for every metric (a script can pass all four); the rest must apply
    // (to one of the metrics at least).
    if (!MODEL_OPTIONS.includes(o) && !applies.includes(o)) throw new UsageError(`${command}: --${o} does not apply to --metric ${m.metrics.join(',')}`);
  }
  if (out.flags.has('pretty') && !out.flags.has('json')) throw new UsageError(`${command}: --pretty goes with --json`);
  return out;
}

/** The DiffSim settings of the command line, for the library: the preset, the layer honoured (as
 *  the usage text says), and the settings the options give. */
export function diffsimSettings(m: MetricArgs): DiffSimSettingsInput {
  return { ...(m.preset !== null ? { preset: m.preset } : {}), layerMode: 'as-given', ...m.diffsim };
}

/** Every DiffSim setting the command line stands for (the options over the preset and defaults). */
export function resolvedDiffSim(m: MetricArgs): DiffSimSettings {
  return mergeSettings(diffsimSettings(m), m.metric === 'diffsim-xl' ? DIFFSIM_XL_DEFAULTS : undefined);
}

/** The metrics a command-line metric stands for: one, or the ensemble's three. */
export function metricNames(metric: CliMetric): MetricName[] {
  return metric === 'ensemble' ? ['diffsim', 'clip', 'dino'] : [metric];
}

/** Loads the metrics (every one of a --metric list, on one runtime), turning setting errors into
 *  usage errors that name the option. Load events go to `onProgress`, else to the command's load
 *  display (on a terminal, or with --progress). */
export async function openMetrics(command: string, m: MetricArgs, onProgress?: LoadEventCallback): Promise<Metric[]> {
  const display = onProgress ? undefined : loadDisplay(m.progress);
  onProgress ??= display?.onProgress;
  try {
    return await createMetrics([...new Set(m.metrics.flatMap(metricNames))], {
      model: m.model,
      xlModel: m.given.has('model') ? m.model : DEFAULT_MODELS.xlModel,
      ...(m.tokenizer !== undefined ? { tokenizer: m.tokenizer } : {}),
      ...(m.ema ? { ema: true } : {}),
      ipAdapter: m.ipAdapter,
      clipModel: m.clipModel,
      dinoModel: m.dinoModel,
      ...(m.lpipsModel !== undefined ? { lpipsModel: m.lpipsModel } : {}),
      ...(m.lpipsHeads !== undefined ? { lpipsHeads: m.lpipsHeads } : {}),
      vggModel: m.vggModel,
      lpips: { net: m.lpipsNet, normalize: m.lpipsNormalize, ...(m.diffsim.imageSize !== undefined ? { imageSize: m.diffsim.imageSize } : {}) },
      gram: { rows: m.gramRows, ...(m.diffsim.imageSize !== undefined ? { imageSize: m.diffsim.imageSize } : {}) },
      ditModel: m.ditModel,
      dit: m.dit,
      diffsim: diffsimSettings(m),
      layer: m.layer,
      clipQkvSource: m.clipQkv,
      weights: m.weights,
      activations: m.activations,
      tensorCores: m.tensorCores,
      ...(onProgress ? { onProgress } : {}),
    });
  } catch (e) {
    if (e instanceof DiffSimSettingsError) {
      // Name the option: the library's messages speak of its settings.
      const msg = e.message
        .replace(/^(DiffSim(-C|-DiT)?|diffeats|clip-aas|dino-aas|clipfeats|dinofeats|lpips|gram): /, '')
        .replace(/^imageSize (\d+)/, '--size $1:')
        .replace(/^timestep (\d+)/, '--timestep $1:')
        .replace(/^step (\d+) is outside/, '--step $1 is outside')
        .replace(/^classLabel (\d+)/, '--dit-class $1:')
        .replace(/^(block "\w+" has no layer (\d+))/, '--layer $2: $1')
        .replace(/^layer (\d+): /, '--layer $1: ');
      throw new UsageError(`${command}: ${msg}`);
    }
    throw e;
  } finally {
    display?.end();
  }
}

/** Closes every metric. */
export async function closeMetrics(metrics: readonly Metric[]): Promise<void> {
  for (const x of metrics) await x.close();
}
