// One interface over the whole metric family, pyiqa-style: `createMetric('diffsim', options)` loads
// what the metric needs (local folders or hub ids, into the Hugging Face cache) and returns an
// object that embeds images (paths, encoded bytes or decoded images) and compares embeddings, with
// `lowerBetter` saying which way the score points (the metrics themselves: metric-core.ts).

import { join } from 'node:path';
import { access, stat } from 'node:fs/promises';
import { Runtime, type TensorCoreMode } from '../gpu/runtime.js';
import { resolveModel, type ResolveModelOptions } from '../hub/resolve.js';
import { loadImage, type RgbImage } from '../io/image.js';
import type { ImageProcessorConfig } from '../io/preprocess.js';
import { readJson } from '../models/files.js';
import { loadClipModel, loadDinov2 } from '../models/vision-loaders.js';
import type { WeightLoadProgress } from '../nn/weights.js';
import { CLIP_IMAGE_PROCESSOR, DiffSim, type DiffSimModels } from './diffsim.js';
import { assertName, buildMetrics, decodeImageInput, DEFAULT_MODELS, type ImageInput, type Metric, type MetricLoadEvent, type MetricModelSource, type MetricName, type MetricSettingsOptions, type ModelRole, type ResolvedModel } from './metric-core.js';
import { ClipMetric, Dinov2Metric, DINOV2_IMAGE_PROCESSOR } from './vision.js';

export * from './metric-core.js';

/** Decodes an image input (a path is read, bytes are decoded, pixels pass through). */
export function toRgbImage(input: ImageInput, name = 'image'): Promise<RgbImage> {
  return decodeImageInput(input, name, (path) => loadImage(path));
}

export interface CreateMetricOptions extends MetricSettingsOptions {
  /** The runtime to run on; default: a new one, closed by `metric.close()`. */
  runtime?: Runtime;
  /** For the runtime created when none is given: which GEMMs use tensor cores (default `auto`:
   *  those with f16 weights, where the adapter offers f16 subgroup matrices). */
  tensorCores?: TensorCoreMode;
  /** SD1.5 (folder or hub id; default {@link DEFAULT_MODELS}.model). */
  model?: string;
  /** IP-Adapter Plus for diffsim-c: the folder holding ip-adapter-plus_sd15.safetensors (or its
   *  `models/`), or a hub id (default h94/IP-Adapter). */
  ipAdapter?: string;
  clipModel?: string;
  dinoModel?: string;
  /** Where CLIP AAS takes q/k/v from (default the official 'pre-ln'). */
  clipQkvSource?: 'pre-ln' | 'post-ln';
  /** Hub options for ids (offline, endpoint, token, cache folder, download progress). */
  hub?: ResolveModelOptions;
  /** Load progress: model resolution, downloads, weights on the GPU. Downloads also report on
   *  stderr unless `hub.onProgress` says otherwise. */
  onProgress?: (event: MetricLoadEvent) => void;
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

/** Shared loading state of one `createMetrics` call: models resolved and loaded once. */
class Loader implements MetricModelSource {
  readonly resolved = new Map<ModelRole, ResolvedModel>();
  constructor(
    readonly rt: Runtime,
    readonly o: CreateMetricOptions,
  ) {}

  specOf(role: ModelRole): string {
    const o = this.o;
    const spec = { sd: o.model ?? DEFAULT_MODELS.model, ipAdapter: o.ipAdapter ?? DEFAULT_MODELS.ipAdapter, clip: o.clipModel ?? DEFAULT_MODELS.clipModel, dino: o.dinoModel ?? DEFAULT_MODELS.dinoModel }[role];
    if (!spec) throw new RangeError(`createMetric: the ${role} model needs a folder or a hub id`);
    return spec;
  }

  async resolve(role: ModelRole): Promise<ResolvedModel> {
    const have = this.resolved.get(role);
    if (have) return have;
    const spec = this.specOf(role);
    const emit = this.o.onProgress;
    emit?.({ kind: 'resolve', role, spec });
    const hub: ResolveModelOptions = { ...this.o.hub };
    if (emit && hub.onProgress !== false) {
      const inner = hub.onProgress;
      hub.onProgress = (p) => {
        inner?.(p);
        emit({ kind: 'download', role, progress: p });
      };
    }
    const path = await resolveModel(spec, hub);
    const m = /[/\\]snapshots[/\\]([0-9a-f]{40})(?:[/\\]|$)/.exec(path);
    const model: ResolvedModel = m ? { spec, path, commit: m[1]! } : { spec, path };
    this.resolved.set(role, model);
    return model;
  }

  weightOptions(role: ModelRole) {
    const emit = this.o.onProgress;
    return { weights: this.o.weights ?? 'f32', activations: this.o.activations ?? 'f32', ...(emit ? { onProgress: (progress: WeightLoadProgress) => emit({ kind: 'weights', role, progress }) } : {}) };
  }

  private sd?: Promise<DiffSimModels>;
  private clip?: Promise<ClipMetric>;
  private dino?: Promise<Dinov2Metric>;

  /** SD1.5, with the IP-Adapter when any metric of the call needs it (DiffSim-S runs on the same
   *  models: the adapter changes nothing unless a pass is given its conditioning). */
  diffsimModels(withIp: boolean): Promise<DiffSimModels> {
    this.sd ??= (async () => {
      const sd = await this.resolve('sd');
      const ipDir = withIp ? await ipAdapterPath((await this.resolve('ipAdapter')).path) : undefined;
      const models = await DiffSim.loadModels(this.rt, sd.path, { ...this.weightOptions('sd'), ...(ipDir ? { ipAdapter: ipDir } : {}) });
      this.o.onProgress?.({ kind: 'ready', role: 'sd', model: sd });
      if (withIp) this.o.onProgress?.({ kind: 'ready', role: 'ipAdapter', model: this.resolved.get('ipAdapter')! });
      return models;
    })();
    return this.sd;
  }

  clipMetric(): Promise<ClipMetric> {
    this.clip ??= (async () => {
      const m = await this.resolve('clip');
      const model = await loadClipModel(this.rt, m.path, this.weightOptions('clip'));
      this.o.onProgress?.({ kind: 'ready', role: 'clip', model: m });
      return new ClipMetric(this.rt, model, { processor: await processorOf(m.path, CLIP_IMAGE_PROCESSOR), qkvSource: this.o.clipQkvSource ?? 'pre-ln' });
    })();
    return this.clip;
  }

  dinoMetric(): Promise<Dinov2Metric> {
    this.dino ??= (async () => {
      const m = await this.resolve('dino');
      const model = await loadDinov2(this.rt, m.path, this.weightOptions('dino'));
      this.o.onProgress?.({ kind: 'ready', role: 'dino', model: m });
      return new Dinov2Metric(this.rt, model, { processor: await processorOf(m.path, DINOV2_IMAGE_PROCESSOR) });
    })();
    return this.dino;
  }
}

/** Several metrics on one runtime, sharing their models (e.g. the ensemble's diffsim, clip, dino).
 *  Everything is resolved (hub ids downloaded or found in the cache) before any weight is loaded. */
export async function createMetrics(names: readonly MetricName[], o: CreateMetricOptions = {}): Promise<Metric[]> {
  for (const n of names) assertName(n);
  if (!names.length) throw new RangeError('createMetrics: no metric named');
  const rt = o.runtime ?? (await Runtime.create(o.tensorCores ? { tensorCores: o.tensorCores } : {}));
  // On failure buildMetrics frees what it loaded, and the runtime when it is ours.
  return buildMetrics(names, { ...o, runtime: rt, ownsRuntime: !o.runtime, models: new Loader(rt, o), readPath: (path) => loadImage(path) });
}

/** One metric by name (pyiqa's `create_metric`): `lowerBetter` says which way its score points. */
export async function createMetric(name: MetricName, o: CreateMetricOptions = {}): Promise<Metric> {
  return (await createMetrics([name], o))[0]!;
}
