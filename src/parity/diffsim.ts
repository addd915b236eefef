// `diffsim parity` for the metric values of a diffsim-tiny fixture folder: DiffSim-S
// (diffsim_s.safetensors), DiffSim-C (diffsim_c.safetensors), the CLIP/DINOv2 AAS and feature
// scores (clip_dino_aas.safetensors) and every scalar of scores.json, computed through the metric
// API (DiffSim, ClipMetric, Dinov2Metric) with the stored inputs and the stored noise injected.
//
// Everything is read from the files: image size, prompts, seed, inference steps, target steps and
// targets from each file's "config" metadata; the models from the sibling fixture folders the
// fixtures README names (unet-tiny, vae-encoder-tiny, clip-text-tiny and its tokenizer,
// scheduler, ip-adapter-plus-tiny, clip-vision-h14-tiny, dinov2-tiny, <folder>/clip_b32_tiny).
// What a folder does not hold is listed as skipped rows.

import { access, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Runtime, Tensor } from '../gpu/runtime.js';
import { loadImage, type RgbImage } from '../io/image.js';
import { imageProcessor, processImage, type ImageProcessorConfig } from '../io/preprocess.js';
import { SafetensorsFile, rawToInt32 } from '../io/safetensors.js';
import type { ClipModelConfig, ClipVisionConfig } from '../models/clip-vision.js';
import type { ClipTextConfig } from '../models/clip-text.js';
import { ClipTokenizer } from '../models/clip-tokenizer.js';
import type { Dinov2Config } from '../models/dinov2.js';
import type { IpAdapterConfig } from '../models/ip-adapter.js';
import { PNDMScheduler, type SchedulerConfig } from '../models/scheduler.js';
import { UNet2DConditionModel, type UNetConfig } from '../models/unet.js';
import type { VaeConfig } from '../models/vae.js';
import { clipModelFromSource, clipVisionFromSource, dinov2FromSource, ipAdapterPlusFromSource, textEncoderFromSource, unetFromSource, vaeEncoderFromSource, type ModelLoadOptions } from '../models/sources.js';
import type { WeightStore } from '../nn/weights.js';
import { F16_WEIGHTS_TOLERANCE, normalisedError, type FixtureIndex, type ParityRow, type ParitySettings } from './common.js';
import { DiffSim, type DiffSimModels, type GivenNoise } from '../diffsim/core.js';
import type { DiffSimEmbedding } from '../diffsim/embedding.js';
import type { DiffSimSettings } from '../diffsim/settings.js';
import { ClipMetric, Dinov2Metric, type VisionEmbedding, type VisionInput } from '../diffsim/vision.js';

/** The config metadata of diffsim_s / diffsim_c. */
interface DiffSimFileConfig {
  img_size: number;
  prompt: string;
  negative_prompt?: string;
  guidance_scale?: number;
  num_inference_steps: number;
  target_steps: number[];
  generator_seed: number;
  targets?: string[];
  module_paths?: Record<string, string>;
  ip_scale?: number;
}

interface ClipDinoConfig {
  clip_processor?: ImageProcessorConfig;
  dino_model?: Dinov2Config;
  dino_processor?: ImageProcessorConfig;
  layers?: number[];
}

/** Tolerance classes: tensors by normalised error, cosines absolute, ×100 scores absolute 1e-3
 *  (1e-5 on the cosine), mse relative, integers and strings exact. */
type Check = { tensor: number } | 'cos' | 'x100' | 'mse' | 'exact';

export class Rows {
  readonly rows: ParityRow[] = [];
  /** Our scalar results by canonical name (for scores.json). */
  readonly values = new Map<string, number | string>();
  constructor(
    readonly fixture: string,
    readonly f16: boolean,
  ) {}

  /** A file that could not be processed: one failed row with the reason (the other files still run). */
  error(name: string, e: unknown): void {
    this.rows.push({ fixture: this.fixture, name, err: Infinity, tol: 0, kind: 'exact', pass: false, note: `error: ${(e as Error).message ?? String(e)}` });
  }

  skip(name: string, note: string): void {
    this.rows.push({ fixture: this.fixture, name, err: NaN, tol: 0, kind: 'skipped', pass: false, note });
  }

  /** A tensor against a stored reference of the same shape. */
  async tensor(name: string, ours: Float32Array, shape: readonly number[], ref: SafetensorsFile, refName = name, tol = 2e-4): Promise<void> {
    const r = await ref.readFloat32(refName);
    const shapeOk = r.shape.length === shape.length && r.shape.every((d, i) => d === shape[i]);
    const t = this.f16 ? Math.max(tol, F16_WEIGHTS_TOLERANCE) : tol;
    const err = shapeOk ? normalisedError(ours, r.data) : Infinity;
    this.rows.push({ fixture: this.fixture, name, err, tol: t, kind: 'normalised', pass: err <= t, ...(shapeOk ? {} : { note: `shape [${shape.join(', ')}] vs [${r.shape.join(', ')}]` }) });
  }

  /** A scalar (or string) against its reference value. */
  scalar(name: string, ours: number | string | undefined, ref: unknown, check: Check): void {
    if (ours === undefined) {
      this.skip(name, 'not computed (its inputs are not in this fixture set)');
      return;
    }
    if (check === 'exact' || typeof ours === 'string' || typeof ref !== 'number') {
      const same = JSON.stringify(ours) === JSON.stringify(ref);
      this.rows.push({ fixture: this.fixture, name, err: same ? 0 : 1, tol: 0, kind: 'exact', pass: same, ...(same ? {} : { note: `ours ${JSON.stringify(ours)}, reference ${JSON.stringify(ref)}` }) });
      return;
    }
    const note = `ours ${ours.toPrecision(8)}, reference ${ref.toPrecision(8)}`;
    if (check === 'mse') {
      const err = Math.abs(ours - ref) / Math.max(Math.abs(ref), 1e-30);
      const tol = this.f16 ? 5e-2 : 1e-3;
      this.rows.push({ fixture: this.fixture, name, err, tol, kind: 'normalised', pass: err <= tol, note: `relative error; ${note}` });
      return;
    }
    const err = Math.abs(ours - ref);
    const base = check === 'x100' ? 1e-3 : typeof check === 'object' ? check.tensor : 1e-5;
    const tol = this.f16 ? Math.max(base, (check === 'x100' ? 100 : 1) * F16_WEIGHTS_TOLERANCE) : base;
    this.rows.push({ fixture: this.fixture, name, err, tol, kind: 'absolute', pass: err <= tol, note });
  }
}

/** (B, N, H·D) → (B, H, N, D) on the host, the layout the fixtures store q/k/v in. */
export function splitHeadsHost(x: Float32Array, shape: readonly number[], heads: number): { data: Float32Array; shape: number[] } {
  const [b, n, c] = shape as [number, number, number];
  const d = c / heads;
  const out = new Float32Array(x.length);
  for (let bi = 0; bi < b; bi++) for (let h = 0; h < heads; h++) for (let i = 0; i < n; i++) for (let j = 0; j < d; j++) out[((bi * heads + h) * n + i) * d + j] = x[(bi * n + i) * c + h * d + j]!;
  return { data: out, shape: [b, heads, n, d] };
}

async function read(t: Tensor): Promise<Float32Array> {
  return (await t.read()) as Float32Array;
}

async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}

/** The weights file of a sibling fixture folder (not its activations). */
function weightsOf(index: FixtureIndex, folder: string, exclude: RegExp = /activations|diffusers/): string | undefined {
  return Object.keys(index.files).find((f) => f.startsWith(`${folder}/`) && f.endsWith('.safetensors') && !exclude.test(f));
}

/** Models opened for the run, freed together. */
class Models {
  private readonly made: { store: WeightStore }[] = [];
  constructor(
    readonly rt: Runtime,
    readonly dir: string,
    readonly settings: ParitySettings,
  ) {}
  /** Opens `rel` and builds its model with the loaders' builder (models/sources.ts), from the
   *  file's config metadata (or `config`). */
  async load<M extends { store: WeightStore }>(rel: string, build: (src: SafetensorsFile, config: unknown, o: ModelLoadOptions) => Promise<M>, config?: unknown): Promise<M> {
    const file = await SafetensorsFile.open(join(this.dir, rel));
    try {
      const cfg = config ?? JSON.parse(file.metadata.config ?? 'null');
      if (!cfg) throw new Error(`${rel}: no "config" metadata`);
      const model = await build(file, cfg, { weights: this.settings.weights });
      this.made.push(model);
      return model;
    } finally {
      await file.close();
    }
  }
  dispose(): void {
    for (const m of this.made) m.store.dispose();
  }
}

/** The SD1.5 part (U-Net, VAE, text encoder, tokenizer, scheduler), or why it is missing. */
async function loadSd(m: Models, index: FixtureIndex): Promise<Omit<DiffSimModels, 'ipAdapter' | 'imageEncoder'> | string> {
  const unetRel = weightsOf(index, 'unet-tiny');
  const vaeRel = weightsOf(index, 'vae-encoder-tiny');
  const textRel = weightsOf(index, 'clip-text-tiny');
  const tokDir = join(m.dir, 'clip-text-tiny', 'tokenizer');
  const missing = [!unetRel && 'unet-tiny weights', !vaeRel && 'vae-encoder-tiny weights', !textRel && 'clip-text-tiny weights', !(await exists(join(tokDir, 'vocab.json'))) && 'clip-text-tiny/tokenizer'].filter(Boolean);
  if (missing.length) return `needs ${missing.join(', ')}`;
  // The SD1.5 schedule: the scheduler fixture's config, else the SD1.5 manifest's.
  let schedulerConfig: SchedulerConfig | null = null;
  const schedRel = weightsOf(index, 'scheduler');
  if (schedRel) {
    const f = await SafetensorsFile.open(join(m.dir, schedRel));
    schedulerConfig = JSON.parse(f.metadata.config ?? 'null') as SchedulerConfig | null;
    await f.close();
  }
  const manifest = join(m.dir, 'manifests', 'sd15-scheduler.config.json');
  if (!schedulerConfig && (await exists(manifest))) schedulerConfig = JSON.parse(await readFile(manifest, 'utf8')) as SchedulerConfig;
  if (!schedulerConfig) return 'needs a scheduler config (scheduler/ or manifests/sd15-scheduler.config.json)';
  const unet = await m.load(unetRel!, (src, c, o) => unetFromSource(m.rt, src, c as UNetConfig, o));
  const vae = await m.load(vaeRel!, (src, c, o) => vaeEncoderFromSource(m.rt, src, c as VaeConfig, o));
  const textEncoder = await m.load(textRel!, (src, c, o) => textEncoderFromSource(m.rt, src, c as ClipTextConfig, o));
  return { unet, vae, textEncoder, tokenizer: await ClipTokenizer.fromDirectory(tokDir), scheduler: new PNDMScheduler(schedulerConfig) };
}

/** IP-Adapter Plus and its image encoder (clip-vision-h14-tiny), with the SD1.5 feature extractor config. */
async function loadIp(m: Models, index: FixtureIndex, unet: UNet2DConditionModel): Promise<Pick<DiffSimModels, 'ipAdapter' | 'imageEncoder' | 'featureExtractor'> | string> {
  const ipRel = weightsOf(index, 'ip-adapter-plus-tiny');
  const encRel = weightsOf(index, 'clip-vision-h14-tiny');
  if (!ipRel || !encRel) return `needs ${[!ipRel && 'ip-adapter-plus-tiny', !encRel && 'clip-vision-h14-tiny'].filter(Boolean).join(' and ')} weights`;
  const ipAdapter = await m.load(ipRel, (src, c, o) => ipAdapterPlusFromSource(m.rt, src, unet, { ...o, config: c as IpAdapterConfig }));
  const imageEncoder = await m.load(encRel, (src, c, o) => clipVisionFromSource(m.rt, src, c as ClipVisionConfig, o));
  const fe = join(m.dir, 'manifests', 'sd15-feature-extractor.config.json');
  const featureExtractor = (await exists(fe)) ? (JSON.parse(await readFile(fe, 'utf8')) as ImageProcessorConfig) : undefined;
  return { ipAdapter, imageEncoder, featureExtractor };
}

async function images(dir: string, fixture: string): Promise<{ A: RgbImage; B: RgbImage } | null> {
  const a = join(dir, fixture, 'image_A.png');
  const b = join(dir, fixture, 'image_B.png');
  if (!(await exists(a)) || !(await exists(b))) return null;
  return { A: await loadImage(a), B: await loadImage(b) };
}

const ROLES = ['A', 'B'] as const;
const TARGET = /^step(\d+)\.((?:down|mid|up)_blocks\.\d+)\.(.+)$/;

/** DiffSim-S or -C: every stored tensor and value of the file. */
async function diffsimFile(rt: Runtime, r: Rows, ref: SafetensorsFile, rel: string, variant: 'S' | 'C', models: DiffSimModels, imgs: { A: RgbImage; B: RgbImage }): Promise<void> {
  const tag = `diffsim_${variant.toLowerCase()}`;
  const p = (n: string) => `${tag}/${n}`;
  const cfg = JSON.parse(ref.metadata.config ?? 'null') as DiffSimFileConfig | null;
  if (!cfg) throw new Error(`${rel}: no "config" metadata`);
  const names = new Set(ref.names());
  const done = new Set<string>();
  const use = (n: string) => {
    done.add(n);
    return names.has(n);
  };
  const base: Partial<DiffSimSettings> = {
    variant,
    imageSize: cfg.img_size,
    prompt: cfg.prompt,
    negativePrompt: cfg.negative_prompt ?? '',
    cfg: (cfg.guidance_scale ?? 7.5) > 1,
    seed: cfg.generator_seed,
    inferenceSteps: cfg.num_inference_steps,
    stepMode: 'official-index',
    layerMode: 'as-given',
    ...(cfg.ip_scale !== undefined ? { ipScale: cfg.ip_scale } : {}),
  };
  const steps = [...new Set([...names].map((n) => /^step(\d+)\./.exec(n)?.[1]).filter((s): s is string => !!s))].map(Number).sort((a, b) => a - b);
  const stored = (n: string) => ref.readFloat32(n).then((x) => x.data);

  // Inputs: the stored process_image tensors and noise are what the passes use.
  const processed: Record<string, Float32Array | undefined> = {};
  const noise: Record<string, GivenNoise | undefined> = {};
  const latents: Record<string, Float32Array | undefined> = {};
  for (const x of ROLES) {
    if (use(`input.tensor_${x}`)) {
      processed[x] = await stored(`input.tensor_${x}`);
      const ours = processImage(imgs[x], cfg.img_size);
      let max = 0;
      for (let i = 0; i < ours.length; i++) max = Math.max(max, Math.abs(ours[i]! - processed[x]![i]!));
      r.rows.push({ fixture: r.fixture, name: p(`input.tensor_${x}`), err: ours.length === processed[x]!.length ? max : Infinity, tol: 2 / 255, kind: 'absolute', pass: max <= 2 / 255, note: 'process_image of the PNG' });
    }
    const fwd = use(`noise_${x}`) ? await stored(`noise_${x}`) : undefined;
    const eps = use(`vae.eps_${x}`) ? await stored(`vae.eps_${x}`) : undefined;
    if (fwd) noise[x] = { vae: eps, forward: fwd };
    // Without the VAE noise the stored latents are the input.
    if (!eps && use(`latents_${x}`)) latents[x] = await stored(`latents_${x}`);
  }
  if (!noise.A || !noise.B) {
    r.skip(p('*'), 'no stored noise_A / noise_B to inject');
    return;
  }

  let first: DiffSim | null = null;
  for (const step of steps) {
    const targets = [...new Set([...names].map((n) => TARGET.exec(n)).filter((m): m is RegExpExecArray => !!m && Number(m[1]) === step).map((m) => m[2]!))];
    const order = cfg.targets ?? targets;
    targets.sort((a, b) => order.indexOf(a) - order.indexOf(b));
    let stepDone = false;
    for (const target of targets.length ? targets : [null]) {
      const [blockName, layer] = target ? (target.split('.') as [string, string]) : ['up_blocks', '0'];
      const metric = new DiffSim(rt, models, { ...base, step, block: blockName as DiffSimSettings['block'], layer: Number(layer) });
      const emb: Partial<Record<'A' | 'B', DiffSimEmbedding>> = {};
      try {
        if (!first) {
          first = metric;
          // Text conditioning (once per file).
          const text = metric.textConditioning();
          if (use('prompt_input_ids')) {
            const ids = rawToInt32(await ref.readRaw('prompt_input_ids'));
            const bad = ids.length === text.ids.length ? ids.filter((v, i) => v !== text.ids[i]).length : Math.max(ids.length, text.ids.length);
            r.rows.push({ fixture: r.fixture, name: p('prompt_input_ids'), err: bad, tol: 0, kind: 'exact', pass: bad === 0 });
          }
          if (use('prompt_embeds')) await r.tensor(p('prompt_embeds'), await read(text.states), text.states.shape, ref, 'prompt_embeds');
          if (use('timesteps')) {
            const ts = rawToInt32(await ref.readRaw('timesteps'));
            const ours = models.scheduler.timesteps(cfg.num_inference_steps);
            const bad = ts.length === ours.length ? ours.filter((t, i) => t !== ts[i]).length : Math.max(ts.length, ours.length);
            r.rows.push({ fixture: r.fixture, name: p('timesteps'), err: bad, tol: 0, kind: 'exact', pass: bad === 0 });
          }
        }
        for (const x of ROLES) {
          const keep = !latents[x] || !stepDone;
          emb[x] = metric.embed(imgs[x], x, { noise: noise[x]!, ...(processed[x] ? { processed: processed[x] } : {}), ...(latents[x] ? { latents: latents[x] } : {}), keepIntermediates: keep });
          const im = emb[x]!.intermediates;
          if (im && !latents[x]) {
            // The first pass's latents are checked, then reused by later passes (same image, same noise).
            const z0 = await read(im.latents);
            if (use(`latents_${x}`)) await r.tensor(p(`latents_${x}`), z0, im.latents.shape, ref, `latents_${x}`);
            latents[x] = z0;
            if (im.imageEmbeds && use(`ip.image_embeds_${x}`)) {
              const e = im.imageEmbeds;
              await r.tensor(p(`ip.image_embeds_${x}`), await read(e), [e.shape[0]!, 1, e.shape[1]!, e.shape[2]!], ref, `ip.image_embeds_${x}`);
            }
          }
          if (im && !stepDone) {
            if (use(`step${step}.noisy_latents_${x}`)) await r.tensor(p(`step${step}.noisy_latents_${x}`), await read(im.noisyLatents), im.noisyLatents.shape, ref, `step${step}.noisy_latents_${x}`);
            if (im.ipTokens && use(`step${step}.ip_tokens_${x}`)) {
              const t = im.ipTokens;
              await r.tensor(p(`step${step}.ip_tokens_${x}`), await read(t), [t.shape[0]!, 1, t.shape[1]!, t.shape[2]!], ref, `step${step}.ip_tokens_${x}`);
            }
          }
        }
        if (!stepDone) {
          r.values.set(`${tag}.step${step}.t`, metric.settings.t);
          if (use(`step${step}.t`)) r.scalar(p(`step${step}.t`), metric.settings.t, rawToInt32(await ref.readRaw(`step${step}.t`))[0], 'exact');
        }
        stepDone = true;
        if (!target) continue;
        const path = cfg.module_paths?.[`${tag}.${target}`];
        r.values.set(`module_paths.${tag}.${target}`, metric.settings.module);
        if (path !== undefined) r.scalar(p(`module_paths.${target}`), metric.settings.module, path, 'exact');
        const pre = `step${step}.${target}.`;
        const heads = metric.settings.heads;
        for (const x of ROLES) {
          for (const [n, t] of [['q', emb[x]!.q], ['k', emb[x]!.k], ['v', emb[x]!.v]] as const) {
            if (!use(`${pre}${n}_${x}`)) continue;
            const s = splitHeadsHost(await read(t), t.shape, heads);
            await r.tensor(p(`${pre}${n}_${x}`), s.data, s.shape, ref, `${pre}${n}_${x}`, 1e-5);
          }
        }
        const outNames = { ab: 'attn_a_on_b', aa: 'self_attn_a', ba: 'attn_b_on_a', bb: 'self_attn_b' } as const;
        if (Object.values(outNames).some((n) => names.has(pre + n))) {
          const outs = metric.attentionOutputs(emb.A!, emb.B!);
          try {
            for (const [key, n] of Object.entries(outNames) as [keyof typeof outs, string][]) {
              if (!use(pre + n)) continue;
              const s = splitHeadsHost(await read(outs[key]), outs[key].shape, heads);
              await r.tensor(p(pre + n), s.data, s.shape, ref, pre + n, 1e-4);
            }
          } finally {
            for (const t of Object.values(outs)) t.dispose();
          }
        }
        const d = await metric.compareDetailed(emb.A!, emb.B!);
        const ours: Record<string, number> = { aas_ab_cos: d.ab.cos, aas_ba_cos: d.ba.cos, score_cos: d.cosine, aas_ab_mse: d.ab.mse, aas_ba_mse: d.ba.mse, score_mse: d.mse };
        for (const [n, v] of Object.entries(ours)) {
          r.values.set(`${tag}.step${step}.${target}.${n}`, v);
          if (use(pre + n)) r.scalar(p(pre + n), v, (await stored(pre + n))[0], n.endsWith('mse') ? 'mse' : 'cos');
        }
      } finally {
        for (const e of Object.values(emb)) e.dispose();
        if (metric !== first) metric.dispose();
      }
    }
  }
  first?.dispose();
  for (const n of names) if (!done.has(n) && !/^(vae\.eps_|noise_)/.test(n)) r.skip(p(n), 'stored, but not a value the metric computes');
}

/** CLIP / DINOv2 AAS, feature scores and the DINOv2 score (the CLIP model, pixels and CLIP-I
 *  rows of the file are the vision handler's; CLIP-I is recomputed here for scores.json). */
async function clipDinoFile(rt: Runtime, r: Rows, ref: SafetensorsFile, m: Models, index: FixtureIndex, fixture: string, imgs: { A: RgbImage; B: RgbImage }): Promise<void> {
  const p = (n: string) => `clip_dino_aas/${n}`;
  const cfg = (JSON.parse(ref.metadata.config ?? '{}') ?? {}) as ClipDinoConfig;
  const names = new Set(ref.names());
  const done = new Set(['clip.clipi_score', 'clip.image_features_A', 'clip.image_features_B', 'clip.pixel_values_A', 'clip.pixel_values_B']);
  const use = (n: string) => {
    done.add(n);
    return names.has(n);
  };
  const inputFor = async (prefix: string, x: 'A' | 'B', proc: ImageProcessorConfig | undefined, check: boolean): Promise<VisionInput> => {
    const n = `${prefix}.pixel_values_${x}`;
    if (!names.has(n)) return imgs[x];
    // The stored pixel values are the input; ours are compared with them.
    const s = await ref.readFloat32(n);
    if (check && proc && use(n)) {
      const ours = imageProcessor(imgs[x], proc).data;
      let max = 0;
      for (let i = 0; i < ours.length; i++) max = Math.max(max, Math.abs(ours[i]! - s.data[i]!));
      const tol = 1 / (255 * Math.min(...(proc.image_std ?? [1])));
      r.rows.push({ fixture: r.fixture, name: p(n), err: ours.length === s.data.length ? max : Infinity, tol, kind: 'absolute', pass: max <= tol, note: 'processor output of the PNG' });
    }
    return { data: s.data, width: s.shape[3]!, height: s.shape[2]! };
  };
  const clipRel = `${fixture}/clip_b32_tiny.safetensors`;
  const dinoRel = weightsOf(index, 'dinov2-tiny');
  const parts: { prefix: 'clip' | 'dino'; metric: ClipMetric | Dinov2Metric; proc: ImageProcessorConfig | undefined }[] = [];
  if (index.files[clipRel]) {
    const clip = await m.load(clipRel, (src, c, o) => clipModelFromSource(rt, src, c as ClipModelConfig, o, clipRel));
    parts.push({ prefix: 'clip', metric: new ClipMetric(rt, clip, cfg.clip_processor ? { processor: cfg.clip_processor } : {}), proc: cfg.clip_processor });
  } else r.skip(p('clip.*'), `needs ${clipRel}`);
  if (dinoRel) {
    const dino = await m.load(dinoRel, (src, c, o) => dinov2FromSource(rt, src, c as Dinov2Config, o), cfg.dino_model);
    parts.push({ prefix: 'dino', metric: new Dinov2Metric(rt, dino, cfg.dino_processor ? { processor: cfg.dino_processor } : {}), proc: cfg.dino_processor });
  } else r.skip(p('dino.*'), 'needs the dinov2-tiny weights');
  for (const { prefix, metric, proc } of parts) {
    const layers = cfg.layers ?? Array.from({ length: metric.numLayers }, (_, i) => i);
    const emb: VisionEmbedding[] = [];
    try {
      for (const x of ROLES) emb.push(metric.embed(await inputFor(prefix, x, proc, prefix === 'dino'), layers));
      const [ea, eb] = emb as [VisionEmbedding, VisionEmbedding];
      const global = prefix === 'clip' ? 'clipi_score' : 'dino_score';
      const scores = await metric.compare(ea, eb);
      r.values.set(`${prefix}.${global}`, scores.global);
      if (prefix === 'dino' && use(`dino.${global}`)) r.scalar(p(`dino.${global}`), scores.global, (await ref.readFloat32(`dino.${global}`)).data[0], 'x100');
      for (const [x, e] of [['A', ea], ['B', eb]] as const) {
        const n = `${prefix}.image_features_${x}`;
        if (prefix !== 'dino' || !use(n)) continue;
        const f = await read(e.global);
        const norm = Math.sqrt(f.reduce((s, v) => s + v * v, 0));
        await r.tensor(p(n), f.map((v) => v / norm), e.global.shape, ref, n);
      }
      const heads = prefix === 'clip' ? (metric as ClipMetric).vision.config.num_attention_heads : (metric as Dinov2Metric).model.config.num_attention_heads;
      for (const ls of scores.layers) {
        const pre = `${prefix}.layer${ls.layer}.`;
        for (const [x, e] of [['A', ea], ['B', eb]] as const) {
          const l = e.layers.get(ls.layer)!;
          for (const [n, t] of [['q', l.q], ['k', l.k], ['v', l.v]] as const) {
            if (!use(`${pre}${n}_${x}`)) continue;
            const s = splitHeadsHost(await read(t), t.shape, heads);
            await r.tensor(p(`${pre}${n}_${x}`), s.data, s.shape, ref, `${pre}${n}_${x}`, 1e-5);
          }
        }
        const outNames = { ab: 'attn_a_on_b', aa: 'self_attn_a', ba: 'attn_b_on_a', bb: 'self_attn_b' } as const;
        if (Object.values(outNames).some((n) => names.has(pre + n))) {
          const outs = metric.attentionOutputs(ea, eb, ls.layer);
          try {
            for (const [key, n] of Object.entries(outNames) as [keyof typeof outs, string][]) {
              if (!use(pre + n)) continue;
              const t = outs[key];
              const refShape = ref.info(pre + n).shape;
              // CLIP stores the projected (1, T, C) outputs, DINOv2 the head-split ones.
              const s = refShape.length === 4 ? splitHeadsHost(await read(t), t.shape, heads) : { data: await read(t), shape: [...t.shape] };
              await r.tensor(p(pre + n), s.data, s.shape, ref, pre + n, 1e-4);
            }
          } finally {
            for (const t of Object.values(outs)) t.dispose();
          }
        }
        const ours: Record<string, number> = { aas_ab_cos: ls.aas.ab.cos, aas_ba_cos: ls.aas.ba.cos, score_cos: ls.aas.cosine, feature_score: ls.feature };
        for (const [n, v] of Object.entries(ours)) {
          r.values.set(pre + n, v);
          if (use(pre + n)) r.scalar(p(pre + n), v, (await ref.readFloat32(pre + n)).data[0], 'cos');
        }
      }
    } finally {
      for (const e of emb) e.dispose();
    }
  }
  for (const n of names) if (!done.has(n)) r.skip(p(n), 'stored, but not a value the metrics compute');
}

/** scores.json: every scalar against our value of the same quantity. */
function scoresJson(r: Rows, scores: Record<string, unknown>, configs: Partial<Record<'S' | 'C', DiffSimFileConfig>>): void {
  const cfg = configs.S ?? configs.C;
  const leaf = (path: string, value: unknown) => {
    const name = `scores.json:${path}`;
    const parts = path.split('.');
    let m: RegExpExecArray | null;
    if (/\.abs_diff$/.test(path)) return; // the difference of the two values next to it
    if (parts.length === 1 || (parts[0] === 'target_steps' && parts.length === 2)) {
      // The settings the scores were made with: the files' config.
      const key = parts[0]!;
      const ours = cfg ? { prompt: cfg.prompt, img_size: cfg.img_size, seed: cfg.generator_seed, target_steps: cfg.target_steps }[key] : undefined;
      const v = parts.length === 2 && Array.isArray(ours) ? (ours[Number(parts[1])] as number) : ours;
      if (v === undefined || typeof v === 'object') r.skip(name, 'a setting the files do not state');
      else r.scalar(name, v as number | string, value, 'exact');
    } else if ((m = /^(diffsim_[sc])\.(step\d+)\.t$/.exec(path))) r.scalar(name, r.values.get(`${m[1]}.${m[2]}.t`), value, 'exact');
    else if ((m = /^(diffsim_[sc])\.(step\d+\..+)$/.exec(path))) r.scalar(name, r.values.get(`${m[1]}.${m[2]}`), value, path.endsWith('mse') ? 'mse' : 'cos');
    else if ((m = /^module_paths\.(diffsim_[sc])\.(.+)$/.exec(path))) r.scalar(name, r.values.get(`module_paths.${m[1]}.${m[2]}`), value, 'exact');
    else if ((m = /^official_crosscheck\.(diffsim_[sc])\.(step\d+\..+)\.(cosine|mse)\.(official|fixture)$/.exec(path))) {
      r.scalar(name, r.values.get(`${m[1]}.${m[2]}.score_${m[3] === 'cosine' ? 'cos' : 'mse'}`), value, m[3] === 'mse' ? 'mse' : 'cos');
    } else if ((m = /^metrics\.(clip|dino)\.(clipi_score|dino_score)$/.exec(path))) r.scalar(name, r.values.get(`${m[1]}.${m[2]}`), value, 'x100');
    else if ((m = /^metrics\.(clip|dino)\.(layer\d+)\.(aas_ab_cos|aas_ba_cos|score_cos|official_(?:clip|dino)_cross_score|(?:clip|dino)_feature_score)$/.exec(path))) {
      const key = m[3]!.startsWith('official_') ? 'score_cos' : m[3]!.endsWith('_feature_score') ? 'feature_score' : m[3]!;
      r.scalar(name, r.values.get(`${m[1]}.${m[2]}.${key}`), value, 'cos');
    } else r.skip(name, typeof value === 'string' ? `not a score: ${value.slice(0, 80)}` : 'a value the metrics do not compute');
  };
  const walk = (prefix: string, v: unknown) => {
    if (v !== null && typeof v === 'object' && !Array.isArray(v)) for (const [k, x] of Object.entries(v)) walk(prefix ? `${prefix}.${k}` : k, x);
    else if (Array.isArray(v)) v.forEach((x, i) => walk(`${prefix}.${i}`, x));
    else leaf(prefix, v);
  };
  walk('', scores);
}

/** The metric rows of a diffsim-tiny folder (see the header). */
export async function diffsimMetricParity(rt: Runtime, dir: string, fixture: string, index: FixtureIndex, settings: ParitySettings): Promise<ParityRow[]> {
  const r = new Rows(fixture, settings.weights === 'f16');
  const m = new Models(rt, dir, settings);
  const configs: Partial<Record<'S' | 'C', DiffSimFileConfig>> = {};
  try {
    const imgs = await images(dir, fixture);
    const files = { S: `${fixture}/diffsim_s.safetensors`, C: `${fixture}/diffsim_c.safetensors` } as const;
    let sd: Awaited<ReturnType<typeof loadSd>> | null = null;
    for (const variant of ['S', 'C'] as const) {
      const rel = files[variant];
      if (!index.files[rel]) {
        r.skip(rel.slice(fixture.length + 1), 'not in this fixture set');
        continue;
      }
      if (!imgs) {
        r.skip(rel.slice(fixture.length + 1), 'needs image_A.png and image_B.png');
        continue;
      }
      sd ??= await loadSd(m, index);
      if (typeof sd === 'string') {
        r.skip(rel.slice(fixture.length + 1), sd);
        continue;
      }
      let models: DiffSimModels = sd;
      if (variant === 'C') {
        const ip = await loadIp(m, index, sd.unet);
        if (typeof ip === 'string') {
          r.skip(rel.slice(fixture.length + 1), ip);
          continue;
        }
        models = { ...sd, ...ip };
      }
      const ref = await SafetensorsFile.open(join(dir, rel));
      try {
        configs[variant] = JSON.parse(ref.metadata.config ?? 'null') as DiffSimFileConfig;
        await diffsimFile(rt, r, ref, rel, variant, models, imgs);
      } catch (e) {
        r.error(rel.slice(fixture.length + 1), e);
      } finally {
        await ref.close();
      }
    }
    const cdRel = `${fixture}/clip_dino_aas.safetensors`;
    if (index.files[cdRel] && imgs) {
      const ref = await SafetensorsFile.open(join(dir, cdRel));
      try {
        await clipDinoFile(rt, r, ref, m, index, fixture, imgs);
      } catch (e) {
        r.error('clip_dino_aas.safetensors', e);
      } finally {
        await ref.close();
      }
    } else r.skip('clip_dino_aas.safetensors', index.files[cdRel] ? 'needs image_A.png and image_B.png' : 'not in this fixture set');
    const scoresPath = join(dir, fixture, 'scores.json');
    if (await exists(scoresPath)) scoresJson(r, JSON.parse(await readFile(scoresPath, 'utf8')) as Record<string, unknown>, configs);
    else r.skip('scores.json', 'not in this fixture set');
    return r.rows;
  } finally {
    m.dispose();
  }
}
