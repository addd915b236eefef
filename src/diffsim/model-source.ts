// The metric family's models from ModelFiles, each loaded once per source, whatever the files'
// origin: createMetric (Node, Deno) resolves local paths and hub ids to files, createWebMetric
// (browsers) is given hub downloads or picked folders; both load through this one class.

import type { Runtime } from '../gpu/runtime.js';
import type { ModelFiles } from '../io/model-files.js';
import { loadClipModel, loadDinov2, processorConfig, type ModelLoadOptions, type Sd15LoadOptions } from '../models/load.js';
import type { WeightLoadProgress } from '../nn/weights.js';
import { CLIP_IMAGE_PROCESSOR } from './core.js';
import { loadDiffSimModels, type DiffSimModels } from './load.js';
import type { MetricLoadEvent, MetricModelSource, ModelRole, ResolvedModel } from './metric-core.js';
import { ClipMetric, Dinov2Metric, DINOV2_IMAGE_PROCESSOR } from './vision.js';

/** The model files of each role a metric needs (sd for diffsim, clip, dino; ipAdapter for diffsim-c). */
export type ModelFilesByRole = Partial<Record<ModelRole, ModelFiles>>;

export interface FilesModelSourceOptions {
  weights?: ModelLoadOptions['weights'];
  activations?: ModelLoadOptions['activations'];
  clipQkvSource?: 'pre-ln' | 'post-ln';
  /** Single-file SD1.5 checkpoints: the tokenizer's files (see Sd15LoadOptions.tokenizer). */
  tokenizer?: () => Promise<ModelFiles>;
  /** Single-file SD1.5 checkpoints: the EMA U-Net weights where the file has them. */
  ema?: boolean;
  onProgress?: (e: MetricLoadEvent) => void;
}

/** The files of a role: given (browsers), or resolved from a path or hub id on first use (Node). */
export type RoleFiles = ModelFilesByRole | ((role: ModelRole) => Promise<{ files: ModelFiles; model: ResolvedModel }>);

export class FilesModelSource implements MetricModelSource {
  private readonly resolved = new Map<ModelRole, Promise<{ files: ModelFiles; model: ResolvedModel }>>();
  private sd?: Promise<DiffSimModels>;
  private clip?: Promise<ClipMetric>;
  private dino?: Promise<Dinov2Metric>;
  constructor(
    readonly rt: Runtime,
    private readonly files: RoleFiles,
    readonly o: FilesModelSourceOptions = {},
  ) {}

  private filesOf(role: ModelRole): Promise<{ files: ModelFiles; model: ResolvedModel }> {
    let have = this.resolved.get(role);
    if (!have) {
      const given = this.files;
      have =
        typeof given === 'function'
          ? given(role)
          : (async () => {
              const f = given[role];
              if (!f) throw new RangeError(`no model files given for the ${role} model`);
              return { files: f, model: f.commit ? { spec: f.name, path: f.name, commit: f.commit } : { spec: f.name, path: f.name } };
            })();
      this.resolved.set(role, have);
    }
    return have;
  }

  async resolve(role: ModelRole): Promise<ResolvedModel> {
    return (await this.filesOf(role)).model;
  }

  private weightOptions(role: ModelRole): ModelLoadOptions {
    const emit = this.o.onProgress;
    return { weights: this.o.weights ?? 'f32', activations: this.o.activations ?? 'f32', ...(emit ? { onProgress: (progress: WeightLoadProgress) => emit({ kind: 'weights', role, progress }) } : {}) };
  }

  /** SD1.5, with the IP-Adapter when any metric of the call needs it (DiffSim-S runs on the same
   *  models: the adapter changes nothing unless a pass is given its conditioning). */
  diffsimModels(withIp: boolean): Promise<DiffSimModels> {
    this.sd ??= (async () => {
      const sd = await this.filesOf('sd');
      const ip = withIp ? await this.filesOf('ipAdapter') : undefined;
      const o: Sd15LoadOptions & { ipAdapter?: ModelFiles } = { ...this.weightOptions('sd'), ...(ip ? { ipAdapter: ip.files } : {}), ...(this.o.ema !== undefined ? { ema: this.o.ema } : {}) };
      if (this.o.tokenizer && !sd.files.paths.includes('tokenizer/vocab.json')) o.tokenizer = await this.o.tokenizer();
      const models = await loadDiffSimModels(this.rt, sd.files, o);
      this.o.onProgress?.({ kind: 'ready', role: 'sd', model: sd.model });
      if (ip) this.o.onProgress?.({ kind: 'ready', role: 'ipAdapter', model: ip.model });
      return models;
    })();
    return this.sd;
  }

  clipMetric(): Promise<ClipMetric> {
    this.clip ??= (async () => {
      const { files, model: m } = await this.filesOf('clip');
      const model = await loadClipModel(this.rt, files, this.weightOptions('clip'));
      const processor = await processorConfig(files, CLIP_IMAGE_PROCESSOR);
      this.o.onProgress?.({ kind: 'ready', role: 'clip', model: m });
      return new ClipMetric(this.rt, model, { processor, qkvSource: this.o.clipQkvSource ?? 'pre-ln' });
    })();
    return this.clip;
  }

  dinoMetric(): Promise<Dinov2Metric> {
    this.dino ??= (async () => {
      const { files, model: m } = await this.filesOf('dino');
      const model = await loadDinov2(this.rt, files, this.weightOptions('dino'));
      const processor = await processorConfig(files, DINOV2_IMAGE_PROCESSOR);
      this.o.onProgress?.({ kind: 'ready', role: 'dino', model: m });
      return new Dinov2Metric(this.rt, model, { processor });
    })();
    return this.dino;
  }
}
