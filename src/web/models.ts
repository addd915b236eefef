// The metric family's models from ModelFiles (hub downloads or picked folders): the same model
// constructors and weight loading as on disk (models/sources.ts), each file read through
// blobSource, so nothing but the bytes' origin differs from Node.

import { Runtime, type RuntimeOptions } from '../gpu/runtime.js';
import { blobSource } from '../io/bytesource.js';
import type { ImageProcessorConfig } from '../io/preprocess.js';
import { SafetensorsFile, ShardedSafetensors, type TensorSource } from '../io/safetensors.js';
import type { ClipTextConfig } from '../models/clip-text.js';
import { ClipTokenizer } from '../models/clip-tokenizer.js';
import type { ClipModelConfig, ClipVisionConfig } from '../models/clip-vision.js';
import type { Dinov2Config } from '../models/dinov2.js';
import { PNDMScheduler, type SchedulerConfig } from '../models/scheduler.js';
import { chooseWeights, clipModelFromSource, clipVisionConfigOf, clipVisionFromSource, dinov2FromSource, ipAdapterPlusFromSource, textEncoderFromSource, unetFromSource, vaeEncoderFromSource, type ModelLoadOptions } from '../models/sources.js';
import type { UNetConfig } from '../models/unet.js';
import type { VaeConfig } from '../models/vae.js';
import type { WeightLoadProgress } from '../nn/weights.js';
import { CLIP_IMAGE_PROCESSOR, type DiffSimModels } from '../diffsim/core.js';
import { assertName, buildMetrics, modelsOf, type Metric, type MetricLoadEvent, type MetricModelSource, type MetricName, type MetricSettingsOptions, type ModelRole, type ResolvedModel } from '../diffsim/metric-core.js';
import { ClipMetric, Dinov2Metric, DINOV2_IMAGE_PROCESSOR } from '../diffsim/vision.js';
import { join, optionalJson, readJson, readText } from './files.js';
import type { ModelFiles } from './hub.js';

/** The model files of each role a metric needs (sd for diffsim, clip, dino; ipAdapter for diffsim-c). */
export type ModelFilesByRole = Partial<Record<ModelRole, ModelFiles>>;


async function safetensorsOf(files: ModelFiles, path: string): Promise<SafetensorsFile> {
  return SafetensorsFile.open(blobSource(await files.blob(path), `${files.name}/${path}`));
}

/** The weights of a component folder (`''` the root), as findWeights picks them on disk. */
async function weightsOf(files: ModelFiles, dir: string): Promise<TensorSource> {
  const inDir = files.paths.filter((p) => (dir ? p.startsWith(`${dir}/`) && !p.slice(dir.length + 1).includes('/') : !p.includes('/')));
  const chosen = chooseWeights(inDir.map((p) => p.slice(dir ? dir.length + 1 : 0)));
  if (!chosen) throw new Error(`${files.name}/${dir || '.'}: no .safetensors weights`);
  const path = join(dir, chosen);
  if (!chosen.endsWith('.json')) return safetensorsOf(files, path);
  const bytes = new Uint8Array(await (await files.blob(path)).arrayBuffer());
  return ShardedSafetensors.fromIndex(`${files.name}/${path}`, bytes, (shard) => safetensorsOf(files, join(dir, shard)));
}

async function withWeights<T>(files: ModelFiles, dir: string, fn: (src: TensorSource) => Promise<T>): Promise<T> {
  const src = await weightsOf(files, dir);
  try {
    return await fn(src);
  } finally {
    await src.close();
  }
}

/** SD1.5 (and IP-Adapter Plus with its image encoder) from a diffusers-layout repo. */
export async function diffsimModelsFromFiles(rt: Runtime, sd: ModelFiles, o: ModelLoadOptions & { ipAdapter?: ModelFiles } = {}): Promise<DiffSimModels> {
  const made: { store: { dispose(): void } }[] = [];
  try {
    const unet = await withWeights(sd, 'unet', async (src) => unetFromSource(rt, src, await readJson<UNetConfig>(sd, 'unet/config.json', 'U-Net config'), o));
    made.push(unet);
    const vae = await withWeights(sd, 'vae', async (src) => vaeEncoderFromSource(rt, src, await readJson<VaeConfig>(sd, 'vae/config.json', 'VAE config'), o));
    made.push(vae);
    const textEncoder = await withWeights(sd, 'text_encoder', async (src) => textEncoderFromSource(rt, src, await readJson<ClipTextConfig>(sd, 'text_encoder/config.json', 'text encoder config'), o));
    made.push(textEncoder);
    const config = await optionalJson<Record<string, unknown>>(sd, 'tokenizer/tokenizer_config.json', 'tokenizer config');
    const specialTokens = await optionalJson<Record<string, unknown>>(sd, 'tokenizer/special_tokens_map.json', 'special tokens map');
    const tokenizer = new ClipTokenizer({
      vocab: await readJson<Record<string, number>>(sd, 'tokenizer/vocab.json', 'tokenizer vocabulary'),
      merges: await readText(sd, 'tokenizer/merges.txt'),
      ...(config ? { config } : {}),
      ...(specialTokens ? { specialTokens } : {}),
    });
    const scheduler = new PNDMScheduler(await readJson<SchedulerConfig>(sd, 'scheduler/scheduler_config.json', 'scheduler config'));
    const models: DiffSimModels = { unet, vae, textEncoder, tokenizer, scheduler };
    const fe = await optionalJson<ImageProcessorConfig>(sd, 'feature_extractor/preprocessor_config.json', 'feature extractor config');
    if (fe) models.featureExtractor = fe;
    if (o.ipAdapter) {
      const ip = o.ipAdapter;
      // h94/IP-Adapter's layout: models/ip-adapter-plus_sd15.safetensors and models/image_encoder/.
      const base = ip.paths.includes('models/ip-adapter-plus_sd15.safetensors') ? 'models' : '';
      const adapterSrc = await safetensorsOf(ip, join(base, 'ip-adapter-plus_sd15.safetensors'));
      try {
        models.ipAdapter = await ipAdapterPlusFromSource(rt, adapterSrc, unet, o);
        made.push(models.ipAdapter);
      } finally {
        await adapterSrc.close();
      }
      const encDir = join(base, 'image_encoder');
      const encConfig = clipVisionConfigOf(await readJson<ClipVisionConfig & { vision_config?: ClipVisionConfig; projection_dim?: number }>(ip, join(encDir, 'config.json'), 'CLIP vision config'));
      models.imageEncoder = await withWeights(ip, encDir, (src) => clipVisionFromSource(rt, src, encConfig, o));
    }
    return models;
  } catch (e) {
    for (const m of made) m.store.dispose();
    throw e;
  }
}

/** The metric family's models from files, each loaded once. */
export class FilesModelSource implements MetricModelSource {
  private sd?: Promise<DiffSimModels>;
  private clip?: Promise<ClipMetric>;
  private dino?: Promise<Dinov2Metric>;
  constructor(
    readonly rt: Runtime,
    readonly files: ModelFilesByRole,
    readonly o: { weights?: ModelLoadOptions['weights']; activations?: ModelLoadOptions['activations']; clipQkvSource?: 'pre-ln' | 'post-ln'; onProgress?: (e: MetricLoadEvent) => void } = {},
  ) {}

  private filesOf(role: ModelRole): ModelFiles {
    const f = this.files[role];
    if (!f) throw new RangeError(`no model files given for the ${role} model`);
    return f;
  }

  async resolve(role: ModelRole): Promise<ResolvedModel> {
    const f = this.filesOf(role);
    return f.commit ? { spec: f.name, path: f.name, commit: f.commit } : { spec: f.name, path: f.name };
  }

  private weightOptions(role: ModelRole): ModelLoadOptions {
    const emit = this.o.onProgress;
    return { weights: this.o.weights ?? 'f32', activations: this.o.activations ?? 'f32', ...(emit ? { onProgress: (progress: WeightLoadProgress) => emit({ kind: 'weights', role, progress }) } : {}) };
  }

  diffsimModels(withIp: boolean): Promise<DiffSimModels> {
    this.sd ??= (async () => {
      const m = await diffsimModelsFromFiles(this.rt, this.filesOf('sd'), { ...this.weightOptions('sd'), ...(withIp ? { ipAdapter: this.filesOf('ipAdapter') } : {}) });
      this.o.onProgress?.({ kind: 'ready', role: 'sd', model: await this.resolve('sd') });
      return m;
    })();
    return this.sd;
  }

  clipMetric(): Promise<ClipMetric> {
    this.clip ??= (async () => {
      const f = this.filesOf('clip');
      const config = await readJson<ClipModelConfig>(f, 'config.json', 'CLIP config');
      const model = await withWeights(f, '', (src) => clipModelFromSource(this.rt, src, config, this.weightOptions('clip'), `${f.name}/config.json`));
      const processor = (await optionalJson<ImageProcessorConfig>(f, 'preprocessor_config.json', 'preprocessor config')) ?? { ...CLIP_IMAGE_PROCESSOR };
      this.o.onProgress?.({ kind: 'ready', role: 'clip', model: await this.resolve('clip') });
      return new ClipMetric(this.rt, model, { processor, qkvSource: this.o.clipQkvSource ?? 'pre-ln' });
    })();
    return this.clip;
  }

  dinoMetric(): Promise<Dinov2Metric> {
    this.dino ??= (async () => {
      const f = this.filesOf('dino');
      const config = await readJson<Dinov2Config>(f, 'config.json', 'DINOv2 config');
      const model = await withWeights(f, '', (src) => dinov2FromSource(this.rt, src, config, this.weightOptions('dino')));
      const processor = (await optionalJson<ImageProcessorConfig>(f, 'preprocessor_config.json', 'preprocessor config')) ?? { ...DINOV2_IMAGE_PROCESSOR };
      this.o.onProgress?.({ kind: 'ready', role: 'dino', model: await this.resolve('dino') });
      return new Dinov2Metric(this.rt, model, { processor });
    })();
    return this.dino;
  }
}

export interface CreateWebMetricOptions extends MetricSettingsOptions {
  /** The model files per role (what `modelsFor(name)` lists). */
  files: ModelFilesByRole;
  /** The runtime to run on; default: a new one on navigator.gpu, closed by `metric.close()`. */
  runtime?: Runtime;
  runtimeOptions?: RuntimeOptions;
  clipQkvSource?: 'pre-ln' | 'post-ln';
  onProgress?: (event: MetricLoadEvent) => void;
}

/** The model roles a metric needs (which ModelFiles to give). */
export function modelsFor(name: MetricName): ModelRole[] {
  return modelsOf(name);
}

/** Several metrics sharing their models, from files (hub downloads or a picked folder). */
export async function createWebMetrics(names: readonly MetricName[], o: CreateWebMetricOptions): Promise<Metric[]> {
  for (const n of names) assertName(n);
  if (!names.length) throw new RangeError('createWebMetrics: no metric named');
  const rt = o.runtime ?? (await Runtime.create(o.runtimeOptions));
  const source = new FilesModelSource(rt, o.files, { ...(o.weights ? { weights: o.weights } : {}), ...(o.activations ? { activations: o.activations } : {}), ...(o.clipQkvSource ? { clipQkvSource: o.clipQkvSource } : {}), ...(o.onProgress ? { onProgress: o.onProgress } : {}) });
  // On failure buildMetrics frees what it loaded, and the runtime when it is ours.
  return buildMetrics(names, { ...o, runtime: rt, ownsRuntime: !o.runtime, models: source });
}

export async function createWebMetric(name: MetricName, o: CreateWebMetricOptions): Promise<Metric> {
  return (await createWebMetrics([name], o))[0]!;
}
