// One interface over the whole metric family, pyiqa-style: `createMetric('diffsim', options)` loads
// what the metric needs (local folders or hub ids, into the Hugging Face cache) and returns an
// object that embeds images (paths, encoded bytes or decoded images) and compares embeddings, with
// `lowerBetter` saying which way the score points (the interface: metric-api.ts; the metrics: metrics.ts).

import { resolve as resolvePath } from 'node:path';
import { Runtime, type TensorCoreMode } from '../gpu/runtime.js';
import { resolveModel, type ResolveModelOptions } from '../hub/resolve.js';
import { loadImage, readImageFile, type RgbImage } from '../io/image.js';
import type { LoadEventCallback } from '../io/events.js';
import { localModelFiles } from '../io/local-files.js';
import type { ModelFiles } from '../io/model-files.js';
import { buildMetrics } from './build-metrics.js';
import { assertName, decodeImageInput, DEFAULT_MODELS, type ImageInput, type Metric, type MetricName, type MetricSettingsOptions, type ModelRole, type ResolvedModel } from './metric-api.js';
import { FilesModelSource } from './model-source.js';
import { PERCEPTUAL_DEFAULTS } from './settings.js';

export * from './metric-api.js';
export { buildMetrics } from './build-metrics.js';
export { minMaxNormalise, cosine64 } from './metrics.js';

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
  /** SD1.5: a diffusers pipeline folder, a single-file checkpoint (`.safetensors`) or a hub id
   *  (default {@link DEFAULT_MODELS}.model). */
  model?: string;
  /** diffsim-xl: an SDXL diffusers pipeline folder or hub id (default `model` when given, else
   *  {@link DEFAULT_MODELS}.xlModel, whose fp16 weight files are fetched). */
  xlModel?: string;
  /** For a single-file `model`: the tokenizer (a tokenizer folder, a pipeline folder or hub id whose
   *  tokenizer/ is used; default {@link DEFAULT_MODELS}.model's). */
  tokenizer?: string;
  /** For a single-file `model`: the EMA U-Net weights where the file has them (default false). */
  ema?: boolean;
  /** IP-Adapter Plus for diffsim-c: the folder holding ip-adapter-plus_sd15.safetensors (or its
   *  `models/`), or a hub id (default h94/IP-Adapter). */
  ipAdapter?: string;
  clipModel?: string;
  dinoModel?: string;
  /** lpips: the backbone's torchvision `features` weights (VGG16 for net 'vgg', AlexNet for 'alex'):
   *  a folder (model.safetensors, timm's layout), a .safetensors file or a hub id (default
   *  {@link DEFAULT_MODELS}.lpipsModel for 'vgg'; 'alex' has no default). */
  lpipsModel?: string;
  /** lpips: the v0.1 linear heads (a folder holding lpips_<net>_v0.1.safetensors or <net>.safetensors,
   *  a .safetensors file, or a hub id); default: looked for in the lpipsModel folder. */
  lpipsHeads?: string;
  /** gram: VGG19 `features` weights (folder, file or hub id; default {@link DEFAULT_MODELS}.vggModel). */
  vggModel?: string;
  /** diffsim-dit: a DiTPipeline folder (transformer/, vae/) or a folder with an official-layout DiT
   *  checkpoint (.safetensors) and vae/, or a hub id (default {@link DEFAULT_MODELS}.ditModel). */
  ditModel?: string;
  /** Where CLIP AAS takes q/k/v from (default the official 'pre-ln'). */
  clipQkvSource?: 'pre-ln' | 'post-ln';
  /** Hub options for ids (offline, endpoint, token, cache folder, download progress). */
  hub?: ResolveModelOptions;
  /** Load events, each with the model's `role`: every file of a hub id (`initiate`, `download`,
   *  `progress`, `done`), `weights` per checkpoint, `ready` per model. Nothing is printed without it. */
  onProgress?: LoadEventCallback;
}

/** A local path or hub id, resolved to model files (hub ids through the Hugging Face cache). */
async function resolveFiles(spec: string, role: ModelRole, hubOptions: ResolveModelOptions, emit: LoadEventCallback | undefined, select?: ResolveModelOptions['select']): Promise<{ files: ModelFiles; model: ResolvedModel }> {
  const hub: ResolveModelOptions = { ...hubOptions, ...(select ? { select } : {}) };
  if (emit) {
    const inner = hub.onProgress;
    hub.onProgress = (e) => {
      inner?.(e);
      emit({ ...e, role });
    };
  }
  const files = await localModelFiles(await resolveModel(spec, hub));
  if (files.commit) return { files, model: { spec, path: files.name, commit: files.commit } };
  // A local folder or file: known by its absolute path and its files' sizes and mtimes (the key of
  // cached embeddings and eval rows changes when a weight file is changed in place).
  return { files, model: { spec, path: resolvePath(files.name), stamp: await files.stamp() } };
}

function specOf(role: ModelRole, o: CreateMetricOptions): string {
  // LPIPS on AlexNet has no default backbone: no hub repo known here holds torchvision's AlexNet.
  const lpips = o.lpipsModel ?? ((o.lpips?.net ?? PERCEPTUAL_DEFAULTS.lpips.net) === 'vgg' ? DEFAULT_MODELS.lpipsModel : undefined);
  if ((role === 'lpips' || role === 'lpipsHeads') && lpips === undefined && (role === 'lpips' || o.lpipsHeads === undefined)) {
    throw new RangeError("createMetric: lpips with net 'alex' needs the AlexNet features (the lpipsModel option, --lpips-model: a folder, a .safetensors file or a hub id); there is no default");
  }
  const spec = { sd: o.model ?? DEFAULT_MODELS.model, sdxl: o.xlModel ?? o.model ?? DEFAULT_MODELS.xlModel, ipAdapter: o.ipAdapter ?? DEFAULT_MODELS.ipAdapter, clip: o.clipModel ?? DEFAULT_MODELS.clipModel, dino: o.dinoModel ?? DEFAULT_MODELS.dinoModel, lpips, lpipsHeads: o.lpipsHeads ?? lpips, vgg: o.vggModel ?? DEFAULT_MODELS.vggModel, dit: o.ditModel ?? DEFAULT_MODELS.ditModel }[role];
  if (!spec) throw new RangeError(`createMetric: the ${role} model needs a folder, a file or a hub id`);
  return spec;
}

/** The model source of a createMetrics call: local paths and hub ids resolved once per role. */
function nodeModelSource(rt: Runtime, o: CreateMetricOptions): FilesModelSource {
  const hub = o.hub ?? {};
  const resolveRole = async (role: ModelRole) => {
    const r = await resolveFiles(specOf(role, o), role, hub, o.onProgress);
    // EMA weights are other weights of the same file: embeddings made from them must not compare.
    return role === 'sd' && o.ema ? { ...r, model: { ...r.model, variant: 'ema' } } : r;
  };
  return new FilesModelSource(rt, resolveRole, {
    ...(o.weights ? { weights: o.weights } : {}),
    ...(o.activations ? { activations: o.activations } : {}),
    ...(o.clipQkvSource ? { clipQkvSource: o.clipQkvSource } : {}),
    ...(o.onProgress ? { onProgress: o.onProgress } : {}),
    ...(o.ema !== undefined ? { ema: o.ema } : {}),
    // A single-file checkpoint has no tokenizer: the one given, else the default pipeline's (only
    // its tokenizer/ and scheduler/ are fetched).
    tokenizer: async () => {
      const spec = o.tokenizer ?? DEFAULT_MODELS.model;
      try {
        return (await resolveFiles(spec, 'sd', hub, o.onProgress, { components: ['tokenizer', 'scheduler'] })).files;
      } catch (e) {
        if (o.tokenizer !== undefined) throw e;
        throw new Error(`${specOf('sd', o)}: a single-file checkpoint holds no tokenizer, and the default one (${spec}'s tokenizer/) could not be had: ${(e as Error).message}. Give a tokenizer folder (--tokenizer DIR; library: the tokenizer option)`, { cause: e });
      }
    },
  });
}

/** Several metrics on one runtime, sharing their models (e.g. the ensemble's diffsim, clip, dino).
 *  Everything is resolved (hub ids downloaded or found in the cache) before any weight is loaded. */
export async function createMetrics(names: readonly MetricName[], o: CreateMetricOptions = {}): Promise<Metric[]> {
  for (const n of names) assertName(n);
  if (!names.length) throw new RangeError('createMetrics: no metric named');
  const rt = o.runtime ?? (await Runtime.create(o.tensorCores ? { tensorCores: o.tensorCores } : {}));
  // On failure buildMetrics frees what it loaded, and the runtime when it is ours.
  return buildMetrics(names, { ...o, runtime: rt, ownsRuntime: !o.runtime, models: nodeModelSource(rt, o), readPath: (path) => loadImage(path), readBytes: readImageFile });
}

/** One metric by name (pyiqa's `create_metric`): `lowerBetter` says which way its score points. */
export async function createMetric(name: MetricName, o: CreateMetricOptions = {}): Promise<Metric> {
  return (await createMetrics([name], o))[0]!;
}
