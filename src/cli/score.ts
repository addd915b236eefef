// `diffsim score A B` and `diffsim pick REF A B`: the DiffSim metric family on two images, or which
// of two candidates is closer to a reference, with models from local folders or the Hugging Face hub.
//
// Defaults are the official README example (up block, layer 0, step 600 = t 401, cosine, seed 2334,
// "High quality image"). Two departures from the official scripts, both stated in the usage text:
//   --layer is honoured for DiffSim (the official code hooks layer 0 whatever it is given; layer 0,
//   the default, is therefore the official result);
//   pick: a tie in scores goes to B (the strict comparisons of the official single-metric
//   decisions); the ensemble votes by the official rule (a tie votes for A) but takes mse as
//   lower = closer (the official vote inverts it).

import { access, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { DiffSim } from '../diffsim/diffsim.js';
import { Ensemble, type Votes } from '../diffsim/ensemble.js';
import { blockOf, DiffSimSettingsError, type DiffSimSettings } from '../diffsim/settings.js';
import { ClipMetric, Dinov2Metric, DINOV2_IMAGE_PROCESSOR, type VisionEmbedding, type VisionScores } from '../diffsim/vision.js';
import { Runtime } from '../gpu/runtime.js';
import { resolveModel } from '../hub/resolve.js';
import { loadImage, type RgbImage } from '../io/image.js';
import type { ImageProcessorConfig } from '../io/preprocess.js';
import { readJson } from '../models/files.js';
import { loadClipModel, loadDinov2 } from '../models/vision-loaders.js';
import type { WeightPrecision } from '../nn/weights.js';
import { CLIP_IMAGE_PROCESSOR } from '../diffsim/diffsim.js';
import { UsageError } from './errors.js';

export const METRICS = ['diffsim', 'diffsim-c', 'clip-aas', 'dino-aas', 'clip', 'dino', 'clipfeats', 'dinofeats'] as const;
export type MetricName = (typeof METRICS)[number];
type PickMetric = MetricName | 'ensemble';

/** The default models: hub ids (a local folder given instead is used as it is). */
export const DEFAULT_MODELS = {
  model: 'stable-diffusion-v1-5/stable-diffusion-v1-5',
  ipAdapter: 'h94/IP-Adapter',
  clipModel: 'openai/clip-vit-base-patch32',
  dinoModel: 'facebook/dinov2-small',
} as const;

/** The official README example's settings. */
export const SCORE_DEFAULTS = { block: 'up', layer: 0, step: 600, similarity: 'cosine', seed: 2334, prompt: 'High quality image', noise: 'official' } as const;

export const SCORE_USAGE = `  score A B [options]      the similarity of two images (one number on stdout; higher = more similar,
                           except --similarity mse: lower). Models are local folders or hub ids,
                           downloaded into the Hugging Face cache on first use (HF_HUB_OFFLINE=1: cache only)
  pick REF A B [options]   which of A and B is closer to REF: 1 or 2 on the first stdout line, then the
                           scores (a tie goes to B; ensemble: official votes, a tie votes A; mse: lower = closer)
    --metric M             diffsim (default; self-attention AAS on SD1.5), diffsim-c (IP-Adapter Plus
                           cross-attention), clip-aas, dino-aas, clip (CLIP-I), dino (DINOv2 cosine),
                           clipfeats, dinofeats; pick also: ensemble (majority of diffsim, clip, dino)
    --block up|down|mid    DiffSim U-Net block (default up)
    --layer N              DiffSim layer in the block, CLIP/DINOv2 encoder layer (default 0; the official
                           DiffSim code always hooks 0, here N is honoured)
    --step N               DiffSim step, an index into the 1001-entry PNDM list: t = 1001 − N for N ≥ 2
                           (default 600 → t 401; larger = less noise; 1–1000)
    --prompt TEXT          DiffSim prompt (default "High quality image"; negative prompt "")
    --seed N               DiffSim noise seed (default 2334)
    --noise official|shared  official: A and B get different draws; shared: B uses A's
    --size N               DiffSim image side in pixels (default the U-Net's sample_size × 8; 512 for SD1.5)
    --similarity cosine|mse  DiffSim score (default cosine)
    --model PATH|ID        SD1.5 (default ${DEFAULT_MODELS.model})
    --ip-adapter PATH|ID   IP-Adapter Plus for diffsim-c (default ${DEFAULT_MODELS.ipAdapter})
    --clip-model PATH|ID   (default ${DEFAULT_MODELS.clipModel})
    --dino-model PATH|ID   (default ${DEFAULT_MODELS.dinoModel})
    --weights f32|f16|auto  linear/conv weights on the GPU (default f32)
    --json                 one JSON object on the last line: the score(s) and the settings used`;

interface Parsed {
  images: string[];
  metric: PickMetric;
  block: 'up' | 'down' | 'mid';
  layer: number;
  step: number;
  prompt: string;
  seed: number;
  noise: 'official' | 'shared';
  size: number;
  similarity: 'cosine' | 'mse';
  model: string;
  ipAdapter: string;
  clipModel: string;
  dinoModel: string;
  weights: WeightPrecision;
  json: boolean;
  /** The options given on the command line. */
  given: Set<ValueOption>;
}

const VALUE_OPTIONS = ['metric', 'block', 'layer', 'step', 'prompt', 'seed', 'noise', 'size', 'similarity', 'model', 'ip-adapter', 'clip-model', 'dino-model', 'weights'] as const;
type ValueOption = (typeof VALUE_OPTIONS)[number];

const MODEL_OPTIONS: readonly ValueOption[] = ['metric', 'weights', 'model', 'ip-adapter', 'clip-model', 'dino-model'];
/** Which of the other options each metric reads. */
const DIFFSIM_OPTIONS: readonly ValueOption[] = ['block', 'layer', 'step', 'prompt', 'seed', 'noise', 'size', 'similarity', 'model'];
const APPLIES: Record<PickMetric, readonly ValueOption[]> = {
  diffsim: DIFFSIM_OPTIONS,
  'diffsim-c': [...DIFFSIM_OPTIONS, 'ip-adapter'],
  'clip-aas': ['layer', 'clip-model'],
  clipfeats: ['layer', 'clip-model'],
  clip: ['clip-model'],
  'dino-aas': ['layer', 'dino-model'],
  dinofeats: ['layer', 'dino-model'],
  dino: ['dino-model'],
  ensemble: [...DIFFSIM_OPTIONS.filter((o) => o !== 'layer'), 'clip-model', 'dino-model'],
};

function integer(command: string, name: string, value: string, min: number, max = Number.MAX_SAFE_INTEGER): number {
  if (!/^[+-]?\d+$/.test(value)) throw new UsageError(`${command}: --${name} must be an integer, got ${JSON.stringify(value)}`);
  const n = Number(value);
  if (n < min || n > max) throw new UsageError(`${command}: --${name} ${value} is outside ${min}–${max}`);
  return n;
}

function choice<T extends string>(command: string, name: string, value: string, choices: readonly T[]): T {
  if (!(choices as readonly string[]).includes(value)) throw new UsageError(`${command}: unknown --${name} ${JSON.stringify(value)} (one of ${choices.join(', ')})`);
  return value as T;
}

function parse(command: 'score' | 'pick', args: string[]): Parsed {
  const p: Parsed = {
    images: [],
    metric: 'diffsim',
    block: SCORE_DEFAULTS.block,
    layer: SCORE_DEFAULTS.layer,
    step: SCORE_DEFAULTS.step,
    prompt: SCORE_DEFAULTS.prompt,
    seed: SCORE_DEFAULTS.seed,
    noise: SCORE_DEFAULTS.noise,
    size: 0,
    similarity: SCORE_DEFAULTS.similarity,
    model: DEFAULT_MODELS.model,
    ipAdapter: DEFAULT_MODELS.ipAdapter,
    clipModel: DEFAULT_MODELS.clipModel,
    dinoModel: DEFAULT_MODELS.dinoModel,
    weights: 'f32',
    json: false,
    given: new Set(),
  };
  let onlyPositional = false;
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (onlyPositional || !a.startsWith('--') || a === '-') {
      p.images.push(a);
      continue;
    }
    if (a === '--') {
      onlyPositional = true;
      continue;
    }
    if (a === '--json') {
      p.json = true;
      continue;
    }
    const eq = a.indexOf('=');
    const name = (eq < 0 ? a.slice(2) : a.slice(2, eq)) as ValueOption;
    if (!(VALUE_OPTIONS as readonly string[]).includes(name)) throw new UsageError(`${command}: unknown option ${eq < 0 ? a : a.slice(0, eq)}`);
    let value: string;
    if (eq >= 0) value = a.slice(eq + 1);
    else {
      if (i + 1 >= args.length) throw new UsageError(`${command}: --${name} needs a value`);
      value = args[++i]!;
    }
    if (p.given.has(name)) throw new UsageError(`${command}: --${name} given twice`);
    p.given.add(name);
    switch (name) {
      case 'metric':
        p.metric = choice(command, name, value, command === 'pick' ? [...METRICS, 'ensemble'] : METRICS);
        break;
      case 'block':
        p.block = blockOf(choice(command, name, value, ['up', 'down', 'mid', 'up_blocks', 'down_blocks', 'mid_blocks']));
        break;
      case 'layer':
        p.layer = integer(command, name, value, 0);
        break;
      case 'step':
        p.step = integer(command, name, value, 1, 1000);
        break;
      case 'prompt':
        p.prompt = value;
        break;
      case 'seed':
        p.seed = integer(command, name, value, 0);
        break;
      case 'noise':
        p.noise = choice(command, name, value, ['official', 'shared']);
        break;
      case 'size':
        p.size = integer(command, name, value, 64, 4096);
        break;
      case 'similarity':
        p.similarity = choice(command, name, value, ['cosine', 'mse']);
        break;
      case 'model':
        p.model = nonEmpty(command, name, value);
        break;
      case 'ip-adapter':
        p.ipAdapter = nonEmpty(command, name, value);
        break;
      case 'clip-model':
        p.clipModel = nonEmpty(command, name, value);
        break;
      case 'dino-model':
        p.dinoModel = nonEmpty(command, name, value);
        break;
      case 'weights':
        p.weights = choice(command, name, value, ['f32', 'f16', 'auto']);
        break;
    }
  }
  const want = command === 'score' ? ['A', 'B'] : ['REF', 'A', 'B'];
  if (p.images.length !== want.length) throw new UsageError(`${command}: expected ${want.length} images (${want.join(' ')}), got ${p.images.length}`);
  const applies = APPLIES[p.metric];
  for (const o of p.given) {
    // Model folders may be given for every metric (a script can pass all four); the rest must apply.
    if (!MODEL_OPTIONS.includes(o) && !applies.includes(o)) throw new UsageError(`${command}: --${o} does not apply to --metric ${p.metric}`);
  }
  return p;
}

function nonEmpty(command: string, name: string, value: string): string {
  if (!value) throw new UsageError(`${command}: --${name} needs a folder or a hub id`);
  return value;
}

/** A resolved model: what was asked for and the folder used (with the hub commit for a cached snapshot). */
export interface ResolvedModel {
  spec: string;
  path: string;
  commit?: string;
}

async function resolve(spec: string): Promise<ResolvedModel> {
  const path = await resolveModel(spec);
  const m = /[/\\]snapshots[/\\]([0-9a-f]{40})(?:[/\\]|$)/.exec(path);
  return m ? { spec, path, commit: m[1]! } : { spec, path };
}

async function isFile(path: string): Promise<boolean> {
  return stat(path).then((s) => s.isFile(), () => false);
}

/** An IP-Adapter folder: the one holding ip-adapter-plus_sd15.safetensors, or h94/IP-Adapter's root (its models/). */
async function ipAdapterPath(path: string): Promise<string> {
  if (await isFile(path)) return path;
  if (await isFile(join(path, 'ip-adapter-plus_sd15.safetensors'))) return path;
  if (await isFile(join(path, 'models', 'ip-adapter-plus_sd15.safetensors'))) return join(path, 'models');
  throw new Error(`${path}: no ip-adapter-plus_sd15.safetensors in this folder or its models/`);
}

async function processorOf(dir: string, fallback: Readonly<ImageProcessorConfig>): Promise<ImageProcessorConfig> {
  const file = join(dir, 'preprocessor_config.json');
  if (await access(file).then(() => true, () => false)) return readJson<ImageProcessorConfig>(file, 'preprocessor config');
  return { ...fallback };
}

async function loadImages(paths: string[]): Promise<RgbImage[]> {
  const out: RgbImage[] = [];
  for (const p of paths) out.push(await loadImage(p));
  return out;
}

type Needs = { diffsim: boolean; ip: boolean; clip: boolean; dino: boolean };

function needsOf(metric: PickMetric): Needs {
  return {
    diffsim: metric === 'diffsim' || metric === 'diffsim-c' || metric === 'ensemble',
    ip: metric === 'diffsim-c',
    clip: metric === 'clip' || metric === 'clip-aas' || metric === 'clipfeats' || metric === 'ensemble',
    dino: metric === 'dino' || metric === 'dino-aas' || metric === 'dinofeats' || metric === 'ensemble',
  };
}

/** The DiffSim settings of the command line. */
export function diffsimSettings(p: Pick<Parsed, 'metric' | 'block' | 'layer' | 'step' | 'prompt' | 'seed' | 'noise' | 'size' | 'similarity'>): Partial<DiffSimSettings> {
  return {
    variant: p.metric === 'diffsim-c' ? 'C' : 'S',
    block: p.block,
    layer: p.layer,
    layerMode: 'as-given',
    step: p.step,
    seed: p.seed,
    prompt: p.prompt,
    noise: p.noise === 'shared' ? 'shared' : 'official-4-draws',
    imageSize: p.size,
    similarity: p.similarity,
  };
}

interface Loaded {
  rt: Runtime;
  diffsim?: DiffSim;
  clip?: ClipMetric;
  dino?: Dinov2Metric;
  models: Record<string, ResolvedModel>;
}

/** Resolves and loads what the metric needs (models are resolved before the GPU is opened). */
async function load(command: string, p: Parsed): Promise<Loaded> {
  const needs = needsOf(p.metric);
  const models: Record<string, ResolvedModel> = {};
  if (needs.diffsim) models.sd = await resolve(p.model);
  if (needs.ip) models.ipAdapter = await resolve(p.ipAdapter);
  if (needs.clip) models.clip = await resolve(p.clipModel);
  if (needs.dino) models.dino = await resolve(p.dinoModel);
  const ip = models.ipAdapter ? await ipAdapterPath(models.ipAdapter.path) : undefined;
  const rt = await Runtime.create();
  try {
    const out: Loaded = { rt, models };
    if (needs.diffsim) {
      try {
        out.diffsim = await DiffSim.load(rt, models.sd!.path, diffsimSettings(p), { weights: p.weights, ...(ip ? { ipAdapter: ip } : {}) });
      } catch (e) {
        if (e instanceof DiffSimSettingsError) {
          // Name the option: the library's messages speak of its settings.
          const m = e.message.replace(/^DiffSim(-C)?: /, '').replace(/^imageSize (\d+)/, '--size $1:').replace(/^(block "\w+" has no layer (\d+))/, '--layer $2: $1');
          throw new UsageError(`${command}: ${m}`);
        }
        throw e;
      }
    }
    if (needs.clip) {
      const dir = models.clip!.path;
      out.clip = new ClipMetric(rt, await loadClipModel(rt, dir, { weights: p.weights }), { processor: await processorOf(dir, CLIP_IMAGE_PROCESSOR) });
    }
    if (needs.dino) {
      const dir = models.dino!.path;
      out.dino = new Dinov2Metric(rt, await loadDinov2(rt, dir, { weights: p.weights }), { processor: await processorOf(dir, DINOV2_IMAGE_PROCESSOR) });
    }
    const vision = p.metric.startsWith('clip') ? out.clip : p.metric.startsWith('dino') ? out.dino : undefined;
    if (vision && (p.metric.endsWith('-aas') || p.metric.endsWith('feats')) && p.layer >= vision.numLayers) {
      throw new UsageError(`${command}: --layer ${p.layer}: the ${p.metric.startsWith('clip') ? 'CLIP' : 'DINOv2'} encoder has ${vision.numLayers} layers (0–${vision.numLayers - 1})`);
    }
    return out;
  } catch (e) {
    await rt.close();
    throw e;
  }
}

/** The settings actually used, for --json. */
function report(p: Parsed, l: Loaded): Record<string, unknown> {
  const out: Record<string, unknown> = { metric: p.metric };
  if (l.diffsim) {
    const s = l.diffsim.settings;
    Object.assign(out, {
      similarity: s.similarity,
      lowerBetter: p.metric !== 'ensemble' && s.similarity === 'mse',
      variant: s.variant,
      block: s.block,
      layer: s.layer,
      module: s.module,
      step: s.step,
      t: s.t,
      seed: s.seed,
      prompt: s.prompt,
      negativePrompt: s.negativePrompt,
      noise: s.noise,
      imageSize: s.imageSize,
      vae: s.vae,
      cfgHalves: s.cfgHalves,
      ...(s.variant === 'C' ? { ipScale: s.ipScale } : {}),
    });
  } else {
    Object.assign(out, { similarity: 'cosine', lowerBetter: false });
  }
  if (p.metric.endsWith('-aas') || p.metric.endsWith('feats')) {
    out.layer = p.layer;
    if (p.metric === 'clip-aas') out.qkvSource = l.clip!.qkvSource;
  }
  out.weights = p.weights;
  out.models = l.models;
  return out;
}

/** One vision metric's score from a pair's scores. */
function visionScore(metric: MetricName, s: VisionScores): number {
  if (metric === 'clip' || metric === 'dino') return s.global;
  const layer = s.layers[0]!;
  return metric.endsWith('-aas') ? layer.aas.cosine : layer.feature;
}

function visionOf(metric: MetricName, l: Loaded): ClipMetric | Dinov2Metric {
  return metric.startsWith('clip') ? l.clip! : l.dino!;
}

function layersOf(metric: MetricName, layer: number): number[] {
  return metric === 'clip' || metric === 'dino' ? [] : [layer];
}

async function withLoaded<T>(command: string, p: Parsed, run: (l: Loaded, images: RgbImage[]) => Promise<T>): Promise<T> {
  // Images first: a missing or unreadable file is reported before any model is touched.
  const images = await loadImages(p.images);
  const l = await load(command, p);
  try {
    return await run(l, images);
  } finally {
    l.diffsim?.dispose();
    await l.rt.close();
  }
}

export async function scoreCommand(args: string[]): Promise<number> {
  const p = parse('score', args);
  const metric = p.metric as MetricName;
  const started = performance.now();
  const { score, settings } = await withLoaded('score', p, async (l, [a, b]) => {
    const settings = report(p, l);
    if (l.diffsim) return { score: await l.diffsim.score(a!, b!), settings };
    const m = visionOf(metric, l);
    const layers = layersOf(metric, p.layer);
    const ea = m.embed(a!, layers);
    try {
      const eb = m.embed(b!, layers);
      try {
        return { score: visionScore(metric, await m.compare(ea, eb)), settings };
      } finally {
        eb.dispose();
      }
    } finally {
      ea.dispose();
    }
  });
  const seconds = Number(((performance.now() - started) / 1000).toFixed(3));
  console.log(p.json ? JSON.stringify({ score, images: p.images, ...settings, seconds }) : String(score));
  return 0;
}

export async function pickCommand(args: string[]): Promise<number> {
  const p = parse('pick', args);
  const out = await withLoaded('pick', p, async (l, [ref, a, b]) => {
    const settings = report(p, l);
    if (p.metric === 'ensemble') {
      // The official votes (`0 if s_A < s_B else 1`: a tie votes A), except mse: lower = closer.
      const r = await new Ensemble(l.diffsim!, l.clip!, l.dino!, { ties: 'official', mseVote: 'lower-is-closer' }).pick(ref!, a!, b!);
      const num = (v: 'a' | 'b') => (v === 'a' ? 1 : 2);
      const votes: Record<keyof Votes, 1 | 2> = { diffsim: num(r.votes.diffsim), clip: num(r.votes.clip), dino: num(r.votes.dino) };
      return { pick: num(r.choice), scores: r.scores as Record<string, [number, number]>, votes: votes as Record<string, 1 | 2>, settings };
    }
    const metric = p.metric as MetricName;
    let scores: [number, number];
    if (l.diffsim) {
      // REF is the anchor (role A) of both comparisons, the candidates take role B.
      const ds = l.diffsim;
      const er = ds.embed(ref!, 'A');
      try {
        const one = async (img: RgbImage) => {
          const e = ds.embed(img, 'B');
          try {
            return await ds.compare(er, e);
          } finally {
            e.dispose();
          }
        };
        scores = [await one(a!), await one(b!)];
      } finally {
        er.dispose();
      }
    } else {
      const m = visionOf(metric, l);
      const layers = layersOf(metric, p.layer);
      const es: VisionEmbedding[] = [];
      try {
        for (const img of [ref!, a!, b!]) es.push(m.embed(img, layers));
        scores = [visionScore(metric, await m.compare(es[0]!, es[1]!)), visionScore(metric, await m.compare(es[0]!, es[2]!))];
      } finally {
        for (const e of es) e.dispose();
      }
    }
    const lower = settings.lowerBetter === true;
    // Strict comparison: a tie goes to B.
    const pick: 1 | 2 = (lower ? scores[0] < scores[1] : scores[0] > scores[1]) ? 1 : 2;
    return { pick, scores: { [metric]: scores } as Record<string, [number, number]>, votes: { [metric]: pick } as Record<string, 1 | 2>, settings };
  });
  if (p.json) {
    console.log(JSON.stringify({ pick: out.pick, images: p.images, scores: out.scores, votes: out.votes, ...out.settings }));
    return 0;
  }
  console.log(String(out.pick));
  for (const [name, [s1, s2]] of Object.entries(out.scores)) {
    const lower = name.startsWith('diffsim') && out.settings.similarity === 'mse';
    console.log(`${name}: REF–A ${s1}, REF–B ${s2} → ${out.votes[name]} (${lower ? 'lower' : 'higher'} = closer)`);
  }
  return 0;
}
