// The metric options every command that scores images shares (score, pick, eval, retrieve, map):
// parsing with one-line errors naming the option, and loading the metrics they describe.

import { DiffSimSettingsError, blockOf, type DiffSimSettings } from '../diffsim/settings.js';
import { createMetrics, DEFAULT_MODELS, METRIC_NAMES, type Metric, type MetricName } from '../diffsim/metric.js';
import type { LoadEventCallback } from '../io/events.js';
import type { TensorCoreMode } from '../gpu/runtime.js';
import type { WeightPrecision } from '../nn/weights.js';
import type { ActivationDType } from '../kernels/common.js';
import { UsageError } from './errors.js';
import { loadDisplay } from './progress.js';

export { DEFAULT_MODELS };
export type CliMetric = MetricName | 'ensemble';

/** The official README example's settings (the defaults of `score` and `pick`). */
export const SCORE_DEFAULTS = { block: 'up', layer: 0, step: 600, similarity: 'cosine', seed: 2334, prompt: 'High quality image', noise: 'official' } as const;

export interface MetricArgs {
  metric: CliMetric;
  /** Every metric named (a comma list where the command allows one, ParseSpec.metricList); the
   *  first is \`metric\`. */
  metrics: CliMetric[];
  block: 'up' | 'down' | 'mid';
  layer: number;
  step: number;
  /** --timestep: t given directly (instead of --step). */
  timestep: number | null;
  prompt: string;
  negativePrompt: string;
  seed: number;
  noise: 'official' | 'shared';
  size: number;
  similarity: 'cosine' | 'mse';
  vae: 'sample' | 'mean';
  cfg: 'both' | 'cond' | 'uncond' | 'off';
  fp16Score: boolean;
  /** --tokenizer: for a single-file --model, where the tokenizer comes from. */
  tokenizer: string | undefined;
  /** --ema: a single-file --model's EMA U-Net weights. */
  ema: boolean;
  ipScale: number;
  clipQkv: 'pre-ln' | 'post-ln';
  model: string;
  ipAdapter: string;
  clipModel: string;
  dinoModel: string;
  weights: WeightPrecision;
  activations: ActivationDType;
  tensorCores: TensorCoreMode;
  /** --progress: the load display on stderr even when it is not a terminal. */
  progress: boolean;
  /** The metric options given on the command line. */
  given: Set<string>;
}

const METRIC_VALUE_OPTIONS = ['metric', 'block', 'layer', 'step', 'timestep', 'prompt', 'negative-prompt', 'seed', 'noise', 'size', 'similarity', 'vae', 'cfg', 'ip-scale', 'clip-qkv', 'model', 'ip-adapter', 'clip-model', 'dino-model', 'weights', 'activations', 'tensor-cores', 'tokenizer'] as const;
const METRIC_FLAGS = ['fp16-score', 'ema', 'progress'] as const;

const MODEL_OPTIONS = ['metric', 'weights', 'tensor-cores', 'model', 'ip-adapter', 'clip-model', 'dino-model'];
/** Which of the other options each metric reads. */
const DIFFSIM_OPTIONS = ['block', 'layer', 'step', 'timestep', 'prompt', 'negative-prompt', 'seed', 'noise', 'size', 'similarity', 'vae', 'cfg', 'fp16-score', 'activations', 'tokenizer', 'ema'];
const APPLIES: Record<CliMetric, readonly string[]> = {
  diffsim: DIFFSIM_OPTIONS,
  'diffsim-c': [...DIFFSIM_OPTIONS, 'ip-scale'],
  diffeats: DIFFSIM_OPTIONS.filter((o) => o !== 'similarity' && o !== 'fp16-score'),
  'clip-aas': ['layer', 'clip-qkv'],
  clipfeats: ['layer'],
  clip: [],
  'dino-aas': ['layer'],
  dinofeats: ['layer'],
  dino: [],
  ensemble: DIFFSIM_OPTIONS.filter((o) => o !== 'layer'),
};

export const METRIC_USAGE = `    --metric M             diffsim (default; self-attention AAS on SD1.5), diffsim-c (IP-Adapter Plus
                           cross-attention), clip-aas, dino-aas, clip (CLIP-I), dino (DINOv2 cosine),
                           clipfeats, dinofeats, diffeats (min–max normalised attn1 output cosine)
    --block up|down|mid    DiffSim U-Net block (default up)
    --layer N              DiffSim layer in the block, CLIP/DINOv2 encoder layer (default 0; the official
                           DiffSim code always hooks 0, here N is honoured)
    --step N               DiffSim step, an index into the 1001-entry PNDM list: t = 1001 − N for N ≥ 2
                           (1–1000; larger = less noise)
    --timestep T           the diffusion timestep itself (0–999), instead of --step
    --prompt TEXT          DiffSim prompt (default "High quality image")
    --negative-prompt TEXT the unconditional CFG half's prompt (default "")
    --seed N               DiffSim noise seed (default 2334)
    --noise official|shared  official: A and B get different draws; shared: B uses A's
    --size N               DiffSim image side in pixels (default the U-Net's sample_size × 8; 512 for SD1.5)
    --similarity cosine|mse  DiffSim score (default cosine; mse: lower = more similar)
    --vae sample|mean      the VAE posterior sample (official) or its mean
    --cfg both|cond|uncond|off  CFG halves in the score (official: both); off: the prompt alone, no CFG batch
    --fp16-score           round the score to float16 as the official code returns it (ties occur)
    --ip-scale X           IP-Adapter scale of diffsim-c (default 0.5)
    --clip-qkv pre-ln|post-ln  where CLIP AAS takes q/k/v (official: the layer input before layer_norm1)
    --model PATH|ID        SD1.5: a diffusers pipeline folder, a single-file checkpoint (.safetensors,
                           e.g. v1-5-pruned-emaonly.safetensors) or a hub id (default ${DEFAULT_MODELS.model})
    --tokenizer PATH|ID    for a single-file --model: a tokenizer folder, or a pipeline folder or hub id
                           whose tokenizer/ is used (default ${DEFAULT_MODELS.model})
    --ema                  for a single-file --model: its EMA U-Net weights (default the non-EMA ones)
    --ip-adapter PATH|ID   IP-Adapter Plus for diffsim-c (default ${DEFAULT_MODELS.ipAdapter})
    --clip-model PATH|ID   (default ${DEFAULT_MODELS.clipModel})
    --dino-model PATH|ID   (default ${DEFAULT_MODELS.dinoModel})
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
  /** Defaults that differ from `score`'s (e.g. a benchmark's step). */
  defaults?: Partial<Pick<MetricArgs, 'step' | 'prompt' | 'size'>>;
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
    block: SCORE_DEFAULTS.block,
    layer: SCORE_DEFAULTS.layer,
    step: spec.defaults?.step ?? SCORE_DEFAULTS.step,
    timestep: null,
    prompt: spec.defaults?.prompt ?? SCORE_DEFAULTS.prompt,
    negativePrompt: '',
    seed: SCORE_DEFAULTS.seed,
    noise: SCORE_DEFAULTS.noise,
    size: spec.defaults?.size ?? 0,
    similarity: SCORE_DEFAULTS.similarity,
    vae: 'sample',
    cfg: 'both',
    fp16Score: false,
    tokenizer: undefined,
    ema: false,
    ipScale: 0.5,
    clipQkv: 'pre-ln',
    model: DEFAULT_MODELS.model,
    ipAdapter: DEFAULT_MODELS.ipAdapter,
    clipModel: DEFAULT_MODELS.clipModel,
    dinoModel: DEFAULT_MODELS.dinoModel,
    weights: 'f32',
    activations: 'f32',
    tensorCores: 'auto',
    progress: false,
    given: new Set(),
  };
  const out: ParsedCommand = { positional: [], metric: m, options: new Map(), flags: new Set() };
  const ownValues = spec.valueOptions ?? [];
  const ownFlags = spec.flags ?? [];
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
      if (name === 'fp16-score') {
        m.fp16Score = true;
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
      case 'block':
        m.block = blockOf(choice(command, name, value, ['up', 'down', 'mid', 'up_blocks', 'down_blocks', 'mid_blocks']));
        break;
      case 'layer':
        m.layer = integer(command, name, value, 0);
        break;
      case 'step':
        m.step = integer(command, name, value, 1, 1000);
        break;
      case 'timestep':
        m.timestep = integer(command, name, value, 0, 999);
        break;
      case 'prompt':
        m.prompt = value;
        break;
      case 'negative-prompt':
        m.negativePrompt = value;
        break;
      case 'seed':
        m.seed = integer(command, name, value, 0);
        break;
      case 'noise':
        m.noise = choice(command, name, value, ['official', 'shared']);
        break;
      case 'size':
        m.size = integer(command, name, value, 64, 4096);
        break;
      case 'similarity':
        m.similarity = choice(command, name, value, ['cosine', 'mse']);
        break;
      case 'vae':
        m.vae = choice(command, name, value, ['sample', 'mean']);
        break;
      case 'cfg':
        m.cfg = choice(command, name, value, ['both', 'cond', 'uncond', 'off']);
        break;
      case 'ip-scale': {
        const x = Number(value);
        if (!value.trim() || !Number.isFinite(x)) throw new UsageError(`${command}: --ip-scale must be a number, got ${JSON.stringify(value)}`);
        m.ipScale = x;
        break;
      }
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
  return out;
}

/** The DiffSim settings of the command line (the layer honoured, as the usage text says). */
export function diffsimSettings(m: MetricArgs): Partial<DiffSimSettings> {
  return {
    block: m.block,
    layer: m.layer,
    layerMode: 'as-given',
    ...(m.timestep !== null ? { step: m.timestep, stepMode: 'timestep' as const } : { step: m.step }),
    seed: m.seed,
    prompt: m.prompt,
    negativePrompt: m.negativePrompt,
    noise: m.noise === 'shared' ? 'shared' : 'official-4-draws',
    imageSize: m.size,
    similarity: m.similarity,
    vae: m.vae,
    cfg: m.cfg !== 'off',
    cfgHalves: m.cfg === 'off' ? 'both' : m.cfg,
    roundToF16: m.fp16Score,
    ipScale: m.ipScale,
  };
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
      ...(m.tokenizer !== undefined ? { tokenizer: m.tokenizer } : {}),
      ...(m.ema ? { ema: true } : {}),
      ipAdapter: m.ipAdapter,
      clipModel: m.clipModel,
      dinoModel: m.dinoModel,
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
        .replace(/^(DiffSim(-C)?|diffeats|clip-aas|dino-aas|clipfeats|dinofeats): /, '')
        .replace(/^imageSize (\d+)/, '--size $1:')
        .replace(/^timestep (\d+)/, '--timestep $1:')
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
