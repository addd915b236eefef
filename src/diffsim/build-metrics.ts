// Building the metrics of one call on one runtime, sharing the models of a model source; the
// last metric to close frees them.

import type { Runtime } from '../gpu/runtime.js';
import { DiffSim } from './core.js';
import { DiffSimDiT } from './dit.js';
import { DIFFSIM_XL_DEFAULTS, DiffSimSettingsError, mergeSettings, PERCEPTUAL_DEFAULTS, presetSettings, type DiffSimSettingsInput } from './settings.js';
import { ClipMetric } from './vision.js';
import { assertName, modelsOf, type BuildMetricsOptions, type ImagePathReader, type Metric, type MetricName, type ModelRole, type ResolvedModel } from './metric-api.js';
import { GRAM_SCORE, GramMetric, LpipsMetric } from './perceptual.js';
import { DiffFeatsMetric, DiffSimPairMetric, DiTPairMetric, modelKey, VisionPairMetric, type DiffSimFactory, type MetricOwner } from './metrics.js';

/** When the last metric of a `createMetrics` call closes: frees the models' weights and what the
 *  metrics keep, and closes the runtime if the call created it. */
class RuntimeOwner implements MetricOwner {
  private open = 0;
  readonly stores = new Set<{ dispose(): void }>();
  readonly metrics: { dispose(): void }[] = [];
  constructor(
    private readonly rt: Runtime,
    private readonly owned: boolean,
    readonly readPath: ImagePathReader | undefined,
    readonly readBytes?: ((path: string) => Promise<Uint8Array>) | undefined,
  ) {}
  retain(): this {
    this.open++;
    return this;
  }
  async release(): Promise<void> {
    if (this.open <= 0) return;
    if (--this.open > 0) return;
    await this.releaseAll();
  }
  async releaseAll(): Promise<void> {
    this.open = 0;
    for (const m of this.metrics) m.dispose();
    for (const s of this.stores) s.dispose();
    this.stores.clear();
    if (this.owned) await this.rt.close();
  }
}

function diffsimReport(ds: DiffSim): Record<string, unknown> {
  const s = ds.settings;
  return {
    preset: ds.preset,
    similarity: s.similarity,
    variant: s.variant,
    block: s.block,
    layer: s.layer,
    module: s.module,
    step: s.step,
    stepMode: s.stepMode,
    t: s.t,
    seed: s.seed,
    prompt: s.prompt,
    negativePrompt: s.negativePrompt,
    noise: s.noise,
    imageSize: s.imageSize,
    vae: s.vae,
    cfg: s.cfg,
    cfgHalves: s.cfgHalves,
    roundToF16: s.roundToF16,
    ...(s.variant === 'C' ? { ipScale: s.ipScale } : {}),
    ...(ds.xl ? { target: s.target, xlLatentScale: s.xlLatentScale, xlTimeIds: s.xlTimeIds, sigma: ds.xl.sigma, timeIds: ds.xl.timeIds } : {}),
  };
}

function ditReport(d: DiffSimDiT): Record<string, unknown> {
  const s = d.settings;
  return {
    similarity: s.similarity,
    layer: s.layer,
    module: s.module,
    step: s.step,
    timesteps: s.timesteps,
    tNoise: s.tNoise,
    tModel: s.tModel,
    noiseSchedule: s.noiseSchedule,
    classLabels: [s.classLabel, d.models.dit.nullClass],
    layout: s.layout,
    // Which timestep sinusoid the DiT's embedder uses: 'official' (DiT's models.py, frequencies
    // /128) or 'diffusers' (diffusers' DiT, /127: a DiTPipeline folder as diffusers runs it).
    timestepEmbedding: s.timestepEmbedding,
    seed: s.seed,
    noise: s.noise,
    imageSize: s.imageSize,
    vae: s.vae,
    roundToF16: s.roundToF16,
  };
}

/** Several metrics on one runtime, sharing the models of `o.models`: every model is resolved
 *  before any weight is loaded. */
export async function buildMetrics(names: readonly MetricName[], o: BuildMetricsOptions): Promise<Metric[]> {
  for (const n of names) assertName(n);
  if (!names.length) throw new RangeError('createMetrics: no metric named');
  const rt = o.runtime;
  const source = o.models;
  const owner = new RuntimeOwner(rt, o.ownsRuntime, o.readPath, o.readBytes);
  const out: Metric[] = [];
  try {
    // The preset is checked before anything is loaded.
    if (o.preset !== undefined && o.diffsim?.preset !== undefined && o.preset !== o.diffsim.preset) throw new DiffSimSettingsError(`DiffSim: preset given twice, ${JSON.stringify(o.preset)} and diffsim.preset ${JSON.stringify(o.diffsim.preset)}`);
    const preset = o.preset ?? o.diffsim?.preset;
    if (preset !== undefined) presetSettings(preset);
    for (const n of names) for (const role of modelsOf(n)) await source.resolve(role);
    const modelsReport = async (roles: readonly ModelRole[]) => {
      const r: Record<string, ResolvedModel> = {};
      for (const role of roles) r[role] = await source.resolve(role);
      return r;
    };
    const weights = o.weights ?? 'f32';
    for (const name of names) {
      const roles = modelsOf(name);
      const models = await modelsReport(roles);
      const common = { metric: name, lowerBetter: false, weights, models };
      if (name === 'diffsim-dit') {
        const dm = await source.ditModels();
        owner.stores.add({ dispose: () => dm.dit.dispose() });
        owner.stores.add(dm.vae.store);
        const shared: DiffSimSettingsInput = { ...(o.diffsim ?? {}), ...(preset !== undefined ? { preset } : {}) };
        const dit = new DiffSimDiT(rt, dm, shared, o.dit ?? {}, o.execution?.earlyStop !== undefined ? { earlyStop: o.execution.earlyStop } : {});
        const report = { ...common, ...ditReport(dit), preset: preset ?? null, lowerBetter: dit.lowerBetter };
        out.push(new DiTPairMetric(rt, owner.retain(), dit, report, modelKey(models, weights, o.activations ?? 'f32')));
      } else if (name === 'diffsim' || name === 'diffsim-c' || name === 'diffsim-xl' || name === 'diffeats') {
        const given = o.diffsim ?? {};
        // diffeats honours the layer as metrics/diffeats.py does.
        const settings: DiffSimSettingsInput = { ...given, ...(preset !== undefined ? { preset } : {}), variant: name === 'diffsim-c' ? 'C' : 'S', ...(name === 'diffeats' ? { layerMode: 'as-given' as const } : {}) };
        if (name === 'diffeats' && settings.similarity === 'mse') throw new DiffSimSettingsError('diffeats: the score is a cosine (similarity mse does not apply)');
        if (name === 'diffsim-xl' && settings.variant === 'C') throw new DiffSimSettingsError('diffsim-xl: DiffSim-C on SDXL is not supported');
        const dm = name === 'diffsim-xl' ? await source.diffsimXlModels() : await source.diffsimModels(names.includes('diffsim-c'));
        for (const m of [dm.xl?.textEncoder2]) if (m) owner.stores.add(m.store);
        for (const m of [dm.unet, dm.vae, dm.textEncoder, dm.ipAdapter, dm.imageEncoder]) if (m) owner.stores.add(m.store);
        const factory: DiffSimFactory = (prompt) => {
          const ds = new DiffSim(rt, dm, { ...settings, prompt }, o.execution);
          owner.metrics.push(ds);
          return ds;
        };
        const ds = factory(mergeSettings(settings, name === 'diffsim-xl' ? DIFFSIM_XL_DEFAULTS : undefined).prompt);
        const activations = o.activations ?? 'f32';
        const report = { ...common, activations, ...diffsimReport(ds), lowerBetter: ds.lowerBetter };
        const mk = modelKey(models, weights, activations);
        out.push(name === 'diffeats' ? new DiffFeatsMetric(rt, owner.retain(), ds, report, mk, factory) : new DiffSimPairMetric(rt, owner.retain(), name, ds, report, mk, factory));
      } else if (name === 'lpips') {
        const lo = o.lpips ?? {};
        const net = lo.net ?? PERCEPTUAL_DEFAULTS.lpips.net;
        if (net !== 'vgg' && net !== 'alex') throw new DiffSimSettingsError(`lpips: net must be 'vgg' or 'alex', got ${JSON.stringify(net)}`);
        const model = await source.lpipsModel(net);
        for (const s of model.stores) owner.stores.add(s);
        const report = { ...common, lowerBetter: true, similarity: 'lpips', net, normalize: lo.normalize ?? PERCEPTUAL_DEFAULTS.lpips.normalize, imageSize: lo.imageSize ?? PERCEPTUAL_DEFAULTS.lpips.imageSize, version: '0.1' };
        out.push(new LpipsMetric(rt, owner.retain(), model, lo, report, modelKey(models, weights)));
      } else if (name === 'gram') {
        const features = await source.vggFeatures();
        owner.stores.add(features.store);
        const go = o.gram ?? {};
        const report = { ...common, similarity: GRAM_SCORE, layer: 'features.28 (conv5_1, pre-ReLU)', rows: go.rows ?? PERCEPTUAL_DEFAULTS.gram.rows, imageSize: go.imageSize ?? PERCEPTUAL_DEFAULTS.gram.imageSize };
        out.push(new GramMetric(rt, owner.retain(), features, go, report, modelKey(models, weights)));
      } else {
        const vision = name.startsWith('clip') ? await source.clipMetric() : await source.dinoMetric();
        owner.stores.add(vision instanceof ClipMetric ? vision.vision.store : vision.model.store);
        const global = name === 'clip' || name === 'dino';
        const layer = o.layer ?? 0;
        const report: Record<string, unknown> = { ...common, similarity: 'cosine', ...(global ? {} : { layer }), ...(name === 'clip-aas' ? { qkvSource: (vision as ClipMetric).qkvSource } : {}) };
        out.push(new VisionPairMetric(rt, owner.retain(), name, vision, layer, report, modelKey(models, weights)));
      }
    }
    return out;
  } catch (e) {
    await owner.releaseAll();
    throw e;
  }
}
