// The metric family's models from ModelFiles, each loaded once per source, whatever the files'
// origin: createMetric (Node, Deno) resolves local paths and hub ids to files, createWebMetric
// (browsers) is given hub downloads or picked folders; both load through this one class.

import type { Runtime } from '../gpu/runtime.js';
import type { LoadEvent, LoadEventCallback } from '../io/events.js';
import type { ModelFiles } from '../io/model-files.js';
import { loadClipModel, loadDinov2, loadDit, loadLpipsHeads, loadTorchvisionFeatures, processorConfig, type ModelLoadOptions, type Sd15LoadOptions } from '../models/load.js';
import { GRAM_LAYER, LPIPS_ARCH, LpipsModel, type LpipsNet, type TorchvisionFeatures } from '../models/vgg.js';
import { CLIP_IMAGE_PROCESSOR } from './core.js';
import { loadDiffSimModels, type DiffSimModels } from './load.js';
import type { DitModels } from './dit.js';
import type { MetricModelSource, ModelRole, ResolvedModel } from './metric-api.js';
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
  /** `weights` events of each checkpoint and `ready` per model, with the model's role. */
  onProgress?: LoadEventCallback;
}

/** The files of a role: given (browsers), or resolved from a path or hub id on first use (Node). */
export type RoleFiles = ModelFilesByRole | ((role: ModelRole) => Promise<{ files: ModelFiles; model: ResolvedModel }>);

export class FilesModelSource implements MetricModelSource {
  private readonly resolved = new Map<ModelRole, Promise<{ files: ModelFiles; model: ResolvedModel }>>();
  private sd?: Promise<DiffSimModels>;
  private sdxl?: Promise<DiffSimModels>;
  private clip?: Promise<ClipMetric>;
  private dino?: Promise<Dinov2Metric>;
  private readonly lpips = new Map<LpipsNet, Promise<LpipsModel>>();
  private vgg?: Promise<TorchvisionFeatures>;
  private dit?: Promise<DitModels>;
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

  /** Load options whose `weights` events carry the role of the model the file belongs to and the
   *  model as it was asked for (a repo id rather than the cache folder it resolved to). */
  private weightOptions(models: readonly Loaded[]): ModelLoadOptions {
    const emit = this.o.onProgress;
    const base = { weights: this.o.weights ?? 'f32', activations: this.o.activations ?? 'f32' } as const;
    if (!emit) return base;
    return {
      ...base,
      onProgress: (e: LoadEvent) => {
        if (e.status !== 'weights') return emit(e);
        // The longest root first: a model's files may sit inside another's folder.
        const m = [...models].sort((a, b) => b.files.name.length - a.files.name.length).find((x) => e.name === x.files.name || e.name.startsWith(`${x.files.name}/`));
        if (!m) return emit({ ...e, role: models[0]!.role });
        const sub = e.name.slice(m.files.name.length + 1);
        emit({ ...e, name: m.model.spec, file: sub ? `${sub}/${e.file}` : e.file, role: m.role });
      },
    };
  }

  private ready(m: Loaded): void {
    this.o.onProgress?.({ status: 'ready', name: m.model.spec, role: m.role, path: m.model.path, ...(m.model.commit ? { commit: m.model.commit } : {}) });
  }

  /** SD1.5, with the IP-Adapter when any metric of the call needs it (DiffSim-S runs on the same
   *  models: the adapter changes nothing unless a pass is given its conditioning). */
  diffsimModels(withIp: boolean): Promise<DiffSimModels> {
    this.sd ??= (async () => {
      const sd = await this.loaded('sd');
      const ip = withIp ? await this.loaded('ipAdapter') : undefined;
      const o: Sd15LoadOptions & { ipAdapter?: ModelFiles } = { ...this.weightOptions(ip ? [sd, ip] : [sd]), ...(ip ? { ipAdapter: ip.files } : {}), ...(this.o.ema !== undefined ? { ema: this.o.ema } : {}) };
      if (this.o.tokenizer && !sd.files.paths.includes('tokenizer/vocab.json')) o.tokenizer = await this.o.tokenizer();
      const models = await loadDiffSimModels(this.rt, sd.files, { ...o, pipeline: 'sd15' });
      this.ready(sd);
      if (ip) this.ready(ip);
      return models;
    })();
    return this.sd;
  }

  /** SDXL for diffsim-xl. */
  diffsimXlModels(): Promise<DiffSimModels> {
    this.sdxl ??= (async () => {
      const m = await this.loaded('sdxl');
      const models = await loadDiffSimModels(this.rt, m.files, { ...this.weightOptions([m]), pipeline: 'sdxl' });
      this.ready(m);
      return models;
    })();
    return this.sdxl;
  }

  clipMetric(): Promise<ClipMetric> {
    this.clip ??= (async () => {
      const m = await this.loaded('clip');
      const model = await loadClipModel(this.rt, m.files, this.weightOptions([m]));
      const processor = await processorConfig(m.files, CLIP_IMAGE_PROCESSOR);
      this.ready(m);
      return new ClipMetric(this.rt, model, { processor, qkvSource: this.o.clipQkvSource ?? 'pre-ln' });
    })();
    return this.clip;
  }

  dinoMetric(): Promise<Dinov2Metric> {
    this.dino ??= (async () => {
      const m = await this.loaded('dino');
      const model = await loadDinov2(this.rt, m.files, this.weightOptions([m]));
      const processor = await processorConfig(m.files, DINOV2_IMAGE_PROCESSOR);
      this.ready(m);
      return new Dinov2Metric(this.rt, model, { processor });
    })();
    return this.dino;
  }

  lpipsModel(net: LpipsNet): Promise<LpipsModel> {
    let have = this.lpips.get(net);
    if (!have) {
      have = (async () => {
        const m = await this.loaded('lpips');
        const h = await this.loaded('lpipsHeads');
        const features = await loadTorchvisionFeatures(this.rt, m.files, { ...this.weightOptions([m]), archs: [LPIPS_ARCH[net]] });
        try {
          const heads = await loadLpipsHeads(this.rt, h.files, net, this.weightOptions([h]));
          try {
            const model = new LpipsModel(this.rt, net, features, heads);
            this.ready(m);
            if (h.model.path !== m.model.path) this.ready(h);
            return model;
          } catch (e) {
            heads.store.dispose();
            throw e;
          }
        } catch (e) {
          features.store.dispose();
          throw e;
        }
      })();
      this.lpips.set(net, have);
    }
    return have;
  }

  vggFeatures(): Promise<TorchvisionFeatures> {
    this.vgg ??= (async () => {
      const m = await this.loaded('vgg');
      const features = await loadTorchvisionFeatures(this.rt, m.files, { ...this.weightOptions([m]), archs: ['vgg19'], upTo: GRAM_LAYER });
      this.ready(m);
      return features;
    })();
    return this.vgg;
  }

  ditModels(): Promise<DitModels> {
    this.dit ??= (async () => {
      const m = await this.loaded('dit');
      const models = await loadDit(this.rt, m.files, this.weightOptions([m]));
      this.ready(m);
      return models;
    })();
    return this.dit;
  }

  private async loaded(role: ModelRole): Promise<Loaded> {
    return { role, ...(await this.filesOf(role)) };
  }
}

/** A role's files and what they were resolved from. */
interface Loaded {
  role: ModelRole;
  files: ModelFiles;
  model: ResolvedModel;
}
