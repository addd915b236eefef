// `diffsim parity`: rebuilds the models of a reference fixture folder from its stored configs, runs
// the stored inputs and compares every stored activation it can produce.
//
// err = max|ours − ref| / max(1, max|ref|) (the fixtures' normalised error); tolerances follow the
// fixtures README: single projections/norms 1e-5, blocks and attention 1e-4, final model outputs
// 2e-4, scheduler tables 1e-6 absolute, token ids and timesteps exact.

import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { tidy, type Runtime, type Tensor } from '../gpu/runtime.js';
import { SafetensorsFile, rawToInt32, type RawTensor, type TensorInfo, type TensorSource } from '../io/safetensors.js';
import { isSd15SingleFile, sd15SingleFile } from '../models/single-file.js';
import { PNDMScheduler, type SchedulerConfig } from '../models/scheduler.js';
import { ClipTokenizer } from '../models/clip-tokenizer.js';
import { ClipTextModel, type ClipTextConfig } from '../models/clip-text.js';
import { Taps, type Vocabulary } from '../nn/context.js';
import { WeightStore } from '../nn/weights.js';
import { VaeEncoder, type VaeConfig } from '../models/vae.js';
import { clipVisionFromSource, dinov2FromSource, textEncoderFromSource, unetFromSource, vaeEncoderFromSource } from '../models/sources.js';
import { UNet2DConditionModel, type UNetConfig } from '../models/unet.js';
import { ClipModel, ClipVisionModel, type ClipModelConfig, type ClipVisionConfig } from '../models/clip-vision.js';
import { Dinov2Model, type Dinov2Config } from '../models/dinov2.js';
import { IpAdapterPlus, type IpAdapterConfig } from '../models/ip-adapter.js';
import { applyOrientation, loadImage, loadImageSamples, toRgb, type RgbImage, type StoredImage } from '../io/image.js';
import { readRegularFile } from '../io/bytesource.js';
import { FileError } from '../io/errors.js';
import { imageProcessor, processImage, type ImageProcessorConfig } from '../io/preprocess.js';
import { diffsimMetricParity } from './diffsim.js';
import { gramParity, lpipsParity, perceptualManifestRow } from './perceptual.js';
import { ditParity } from './dit.js';
import { F16_WEIGHTS_TOLERANCE, maxAbsError, normalisedError, toleranceFor, type FixtureIndex, type ParityRow, type ParitySettings } from './common.js';

import { sdxlParity } from './sdxl.js';
export { F16_WEIGHTS_TOLERANCE, maxAbsError, normalisedError, toleranceFor, type FixtureIndex, type ParityRow, type ParitySettings } from './common.js';

type Handler = (rt: Runtime, dir: string, name: string, index: FixtureIndex, settings: ParitySettings) => Promise<ParityRow[]>;

async function compareTensor(fixture: string, name: string, ours: Tensor | Float32Array, ref: SafetensorsFile, refName = name, tol = toleranceFor(name)): Promise<ParityRow> {
  const info = ref.info(refName);
  const got = ours instanceof Float32Array ? ours : ((await ours.read()) as Float32Array);
  const shapeOk = ours instanceof Float32Array || (ours.shape.length === info.shape.length && ours.shape.every((d, i) => d === info.shape[i]));
  const { data } = await ref.readFloat32(refName);
  const err = shapeOk ? normalisedError(got, data) : Infinity;
  const row: ParityRow = { fixture, name, err, tol, kind: 'normalised', pass: err <= tol };
  if (!shapeOk && !(ours instanceof Float32Array)) row.note = `shape [${ours.shape.join(', ')}] vs [${info.shape.join(', ')}]`;
  return row;
}

const scheduler: Handler = async (_rt, dir, fixture, index) => {
  const rel = Object.keys(index.files).find((f) => f.startsWith(`${fixture}/`));
  if (!rel) throw new Error(`${fixture}: no safetensors file listed in index.json`);
  const file = await SafetensorsFile.open(join(dir, rel));
  try {
    const config = JSON.parse(file.metadata.config ?? 'null') as SchedulerConfig | null;
    if (!config) throw new Error(`${rel}: no "config" metadata`);
    const s = new PNDMScheduler(config);
    const rows: ParityRow[] = [];
    const abs = async (name: string, ours: ArrayLike<number>) => {
      const { data } = await file.readFloat32(name);
      const err = maxAbsError(ours, data);
      rows.push({ fixture, name, err, tol: 1e-6, kind: 'absolute', pass: err <= 1e-6 });
    };
    if (file.has('betas')) await abs('betas', s.betas);
    if (file.has('alphas')) await abs('alphas', s.alphas);
    if (file.has('alphas_cumprod')) await abs('alphas_cumprod', s.alphasCumprod);
    if (file.has('final_alpha_cumprod')) await abs('final_alpha_cumprod', [s.finalAlphaCumprod]);
    for (const name of file.names().filter((n) => /^timesteps_\d+$/.test(n))) {
      const ref = rawToInt32(await file.readRaw(name), name);
      const steps = Number(name.slice('timesteps_'.length));
      const ours = s.timesteps(steps);
      const mismatches = ours.length !== ref.length ? Math.max(ours.length, ref.length) : ours.filter((t, i) => t !== ref[i]).length;
      rows.push({ fixture, name, err: mismatches, tol: 0, kind: 'exact', pass: mismatches === 0 });
    }
    if (file.has('add_noise.original') && file.has('add_noise.noise')) {
      const x0 = await file.readFloat32('add_noise.original');
      const noise = (await file.readFloat32('add_noise.noise')).data;
      const batch = x0.shape[0] ?? 1;
      for (const name of file.names().filter((n) => /^add_noise\.t\d+$/.test(n))) {
        await abs(name, s.addNoiseHost(x0.data, noise, [Number(name.slice('add_noise.t'.length))], batch));
      }
      if (file.has('add_noise.per_sample') && file.has('add_noise.per_sample.timesteps')) {
        const ts = [...rawToInt32(await file.readRaw('add_noise.per_sample.timesteps'))];
        await abs('add_noise.per_sample', s.addNoiseHost(x0.data, noise, ts, batch));
      }
      if (file.has('scale_model_input.identity_check')) await abs('scale_model_input.identity_check', x0.data);
    }
    return rows;
  } finally {
    await file.close();
  }
};

async function clipTextRows(rt: Runtime, fixture: string, { weights, acts, own, config, folder }: ModelFixture, settings: ParitySettings): Promise<ParityRow[]> {
  const model = own(await textEncoderFromSource(rt, weights, config as ClipTextConfig, { weights: settings.weights }));
  const idsRaw = await acts.readRaw('input_ids');
  const ids = rawToInt32(idsRaw, 'input_ids');
  const [batch, n] = idsRaw.shape as [number, number];
  const rows: ParityRow[] = [];
  // Tokenizer: the stored prompts must give the stored ids exactly.
  if (acts.metadata.prompts) {
    const tok = await ClipTokenizer.fromDirectory(join(folder, 'tokenizer'));
    (JSON.parse(acts.metadata.prompts) as string[]).forEach((p, i) => {
      const ours = tok.encode(p, { maxLength: n });
      const mismatches = ours.filter((t, j) => t !== ids[i * n + j]).length;
      rows.push({ fixture, name: `tokenizer.prompt${i}`, err: mismatches, tol: 0, kind: 'exact', pass: mismatches === 0 });
    });
  }
  rows.push(...(await compareRun(fixture, acts, (name) => name === 'input_ids' || name === 'attention_mask', settings, (capture) => [tidy(() => model.forward(ids, batch, { capture: capture(model.vocabulary) }).taps)])));
  return rows;
}

const clipText: Handler = (rt, dir, fixture, index, settings) => withModelFixture(dir, index, fixture, (m) => clipTextRows(rt, fixture, m, settings));

function filesOf(index: FixtureIndex, fixture: string): { weights: string; acts: string } {
  const acts = `${fixture}/activations.safetensors`;
  const weights = Object.keys(index.files).filter((f) => f.startsWith(`${fixture}/`) && f !== acts);
  if (!index.files[acts] || weights.length !== 1) throw new Error(`${fixture}: expected one weights file and activations.safetensors in index.json`);
  return { weights: weights[0]!, acts };
}

async function inputTensor(rt: Runtime, acts: SafetensorsFile, name: string): Promise<Tensor> {
  const { shape, data } = await acts.readFloat32(name);
  return rt.upload(data, shape);
}

interface ModelFixture {
  weights: TensorSource;
  acts: SafetensorsFile;
  /** Registers a model built from `weights`, to be freed when the fixture is done. */
  own: <M extends { store: { dispose(): void } }>(model: M) => M;
  /** The model config from the weights' metadata (or the activations'). */
  config: unknown;
  /** The fixture folder (its tokenizer/, …). */
  folder: string;
}

/** Models registered through `own`, freed together. */
function owner(): { own: ModelFixture['own']; dispose(): void } {
  const made: { store: { dispose(): void } }[] = [];
  return {
    own: (m) => {
      made.push(m);
      return m;
    },
    dispose: () => {
      for (const m of made.splice(0)) m.store.dispose();
    },
  };
}

/** Opens `<fixture>/<weights>.safetensors` and `activations.safetensors`, hands them to `body`,
 *  and frees the models it built and closes everything afterwards. */
async function withModelFixture(dir: string, index: FixtureIndex, fixture: string, body: (m: ModelFixture) => Promise<ParityRow[]>): Promise<ParityRow[]> {
  const f = filesOf(index, fixture);
  const weights = await SafetensorsFile.open(join(dir, f.weights));
  const acts = await SafetensorsFile.open(join(dir, f.acts)).catch(async (e: unknown) => {
    await weights.close();
    throw e;
  });
  const models = owner();
  try {
    const config = JSON.parse(weights.metadata.config ?? acts.metadata.config ?? 'null') as unknown;
    if (!config) throw new Error(`${f.weights}: no "config" metadata`);
    return await body({ weights, acts, own: models.own, config, folder: join(dir, fixture) });
  } finally {
    models.dispose();
    await weights.close();
    await acts.close();
  }
}

/** What a pass hands back: the taps of each model it ran, and tensors it computed itself. */
type Recorded = Taps | Map<string, Tensor>;

/** Runs `pass`, which captures (through `capture(vocabulary)`) every stored activation of the run
 *  that the model knows, and compares each. Stored names that no model of the pass can record
 *  and the pass does not compute are listed as skipped rows (not counted). */
async function compareRun(
  fixture: string,
  acts: SafetensorsFile,
  isInput: (name: string) => boolean,
  settings: ParitySettings,
  pass: (capture: (vocabulary: Vocabulary) => string[]) => Recorded[] | Promise<Recorded[]>,
  prefix = '',
): Promise<ParityRow[]> {
  const f16 = settings.weights === 'f16';
  const names = acts
    .names()
    .filter((n) => n.startsWith(prefix) && !isInput(n))
    .map((n) => n.slice(prefix.length));
  const recorded = await pass((vocabulary) => names.filter((n) => vocabulary.hasTap(n)));
  try {
    const rows: ParityRow[] = [];
    for (const name of names) {
      const from = recorded.find((r) => r.has(name));
      if (from) rows.push(await compareTensor(fixture, prefix + name, from.get(name)!, acts, prefix + name, f16 ? F16_WEIGHTS_TOLERANCE : toleranceFor(name)));
      else rows.push({ fixture, name: prefix + name, err: NaN, tol: 0, kind: 'skipped', pass: false, note: 'stored, but not an activation these models record' });
    }
    return rows;
  } finally {
    for (const r of recorded) {
      if (r instanceof Taps) r.dispose();
      else for (const t of r.values()) t.dispose();
    }
  }
}

async function vaeEncoderRows(rt: Runtime, fixture: string, { weights, acts, own, config, folder }: ModelFixture, settings: ParitySettings): Promise<ParityRow[]> {
  const vae = own(await vaeEncoderFromSource(rt, weights, config as VaeConfig, { weights: settings.weights }));
  // The encoder needs only encoder.* and quant_conv.*; a full AutoencoderKL file also has the decoder.
  const image = await inputTensor(rt, acts, 'input.image');
  const eps = acts.has('eps') ? await inputTensor(rt, acts, 'eps') : null;
  try {
    return await compareRun(fixture, acts, (n) => n === 'input.image' || n === 'eps', settings, (capture) => {
      const out = vae.encode(image, { capture: capture(vae.vocabulary) });
      const latent = new Map<string, Tensor>();
      if (eps && out.posterior) {
        const { sample, scaled } = vae.sample(out.posterior, eps);
        latent.set('latent.sample', sample).set('latent.scaled', scaled);
      }
      if (out.posterior) for (const t of Object.values(out.posterior)) t.dispose();
      return [out.taps, latent];
    });
  } finally {
    image.dispose();
    eps?.dispose();
  }
}

const vaeEncoder: Handler = (rt, dir, fixture, index, settings) => withModelFixture(dir, index, fixture, (m) => vaeEncoderRows(rt, fixture, m, settings));

async function unetRows(rt: Runtime, fixture: string, { weights, acts, own, config, folder }: ModelFixture, settings: ParitySettings): Promise<ParityRow[]> {
  const model = own(await unetFromSource(rt, weights, config as UNetConfig, { weights: settings.weights }));
  const rows: ParityRow[] = [];
  // Head counts per attention module, when the fixture lists them.
  if (acts.metadata.attention_heads) {
    const heads = JSON.parse(acts.metadata.attention_heads) as Record<string, number>;
    const ours = model.attentionHeads();
    const bad = Object.entries(heads).filter(([m, h]) => ours[m] !== h).map(([m]) => m);
    rows.push({ fixture, name: 'attention_heads', err: bad.length, tol: 0, kind: 'exact', pass: bad.length === 0, ...(bad.length ? { note: bad.slice(0, 3).join(', ') } : {}) });
  }
  const t = [...rawToInt32(await acts.readRaw('input.timestep'), 'input.timestep')];
  const sample = await inputTensor(rt, acts, 'input.sample');
  const text = await inputTensor(rt, acts, 'input.encoder_hidden_states');
  try {
    rows.push(
      ...(await compareRun(fixture, acts, (n) => n.startsWith('input.'), settings, (capture) => {
        const out = model.forward(sample, t, text, { capture: capture(model.vocabulary) });
        out.sample?.dispose();
        return [out.taps];
      })),
    );
  } finally {
    sample.dispose();
    text.dispose();
  }
  return rows;
}

const unet: Handler = (rt, dir, fixture, index, settings) => withModelFixture(dir, index, fixture, (m) => unetRows(rt, fixture, m, settings));

const clipVision: Handler = (rt, dir, fixture, index, settings) =>
  withModelFixture(dir, index, fixture, async ({ weights, acts, own, config }) => {
    const model = own(await clipVisionFromSource(rt, weights, config as ClipVisionConfig, { weights: settings.weights }));
    const pixels = await inputTensor(rt, acts, 'input.pixel_values');
    try {
      return await compareRun(fixture, acts, (n) => n.startsWith('input.'), settings, (capture) => [tidy(() => model.forward(pixels, { capture: capture(model.vocabulary) }).taps)]);
    } finally {
      pixels.dispose();
    }
  });

const dinov2: Handler = (rt, dir, fixture, index, settings) =>
  withModelFixture(dir, index, fixture, async ({ weights, acts, own, config }) => {
    const model = own(await dinov2FromSource(rt, weights, config as Dinov2Config, { weights: settings.weights }));
    // One pass per stored run (runN.input.pixel_values), or a single unprefixed run.
    const runs = [...new Set(acts.names().filter((n) => /^(run\d+\.)?input\.pixel_values$/.test(n)).map((n) => n.slice(0, n.length - 'input.pixel_values'.length)))];
    const rows: ParityRow[] = [];
    for (const run of runs) {
      const pixels = await inputTensor(rt, acts, `${run}input.pixel_values`);
      try {
        rows.push(...(await compareRun(fixture, acts, (n) => n.startsWith(`${run}input.`), settings, (capture) => [tidy(() => model.forward(pixels, { capture: capture(model.vocabulary) }).taps)], run)));
      } finally {
        pixels.dispose();
      }
    }
    return rows;
  });

/** IP-Adapter Plus on a copy of unet-tiny (the U-Net weights come from the sibling unet-tiny folder). */
const ipAdapter: Handler = async (rt, dir, fixture, index, settings) => {
  const acts = `${fixture}/activations.safetensors`;
  const adapterRel = Object.keys(index.files).find((f) => f.startsWith(`${fixture}/`) && f !== acts && !f.includes('diffusers'));
  const convertedRel = Object.keys(index.files).find((f) => f.startsWith(`${fixture}/`) && f.includes('diffusers'));
  const unetRel = Object.keys(index.files).find((f) => f.startsWith('unet-tiny/') && !f.endsWith('activations.safetensors'));
  if (!adapterRel || !index.files[acts] || !unetRel) throw new Error(`${fixture}: needs the adapter weights, activations.safetensors and the unet-tiny weights in index.json`);
  const adapterFile = await SafetensorsFile.open(join(dir, adapterRel));
  const actFile = await SafetensorsFile.open(join(dir, acts));
  const unetFile = await SafetensorsFile.open(join(dir, unetRel));
  const unetStore = new WeightStore();
  const ipStore = new WeightStore();
  const rows: ParityRow[] = [];
  try {
    const unet = new UNet2DConditionModel(unetStore, JSON.parse(unetFile.metadata.config!) as UNetConfig);
    await unetStore.load(rt, unetFile, { weights: settings.weights });
    const config = JSON.parse(adapterFile.metadata.config ?? actFile.metadata.config ?? 'null') as IpAdapterConfig | null;
    if (!config) throw new Error(`${adapterRel}: no "config" metadata`);
    const ip = new IpAdapterPlus(ipStore, config, unet);
    await ipStore.load(rt, adapterFile, { weights: settings.weights });
    if (actFile.metadata.ip_adapter_key_to_module) {
      const ref = JSON.parse(actFile.metadata.ip_adapter_key_to_module) as Record<string, string>;
      const ours = ip.keyToModule();
      const bad = Object.keys({ ...ref, ...ours }).filter((k) => ref[k] !== ours[k]);
      rows.push({ fixture, name: 'ip_adapter_key_to_module', err: bad.length, tol: 0, kind: 'exact', pass: bad.length === 0 });
    }
    if (convertedRel) {
      // The fused to_kv rows split as diffusers' converter splits them: [to_k; to_v].
      const conv = await SafetensorsFile.open(join(dir, convertedRel));
      try {
        let mismatches = 0;
        for (const name of adapterFile.names().filter((n) => n.endsWith('.to_kv.weight'))) {
          const i = /layers\.(\d+)\.0\.to_kv/.exec(name)![1];
          const { shape, data } = await adapterFile.readFloat32(name);
          const half = (shape[0]! / 2) * shape[1]!;
          const k = (await conv.readFloat32(`layers.${i}.attn.to_k.weight`)).data;
          const v = (await conv.readFloat32(`layers.${i}.attn.to_v.weight`)).data;
          for (let j = 0; j < half; j++) if (data[j] !== k[j] || data[half + j] !== v[j]) mismatches++;
        }
        rows.push({ fixture, name: 'to_kv split = diffusers to_k/to_v', err: mismatches, tol: 0, kind: 'exact', pass: mismatches === 0 });
      } finally {
        await conv.close();
      }
    }
    const scale = config.ip_scale ?? 1;
    const embeds = await inputTensor(rt, actFile, 'input.image_embeds');
    const sample = await inputTensor(rt, actFile, 'input.sample');
    const text = await inputTensor(rt, actFile, 'input.encoder_hidden_states');
    const t = [...rawToInt32(await actFile.readRaw('input.timestep'), 'input.timestep')];
    try {
      rows.push(
        ...(await compareRun(fixture, actFile, (n) => n.startsWith('input.'), settings, (capture) => {
          const resampled = ip.resample(embeds, { capture: capture(ip.vocabulary) });
          try {
            const out = unet.forward(sample, t, text, { capture: capture(unet.vocabulary), ip: ip.conditioning(resampled.tokens!, scale) });
            out.sample?.dispose();
            return [resampled.taps, out.taps];
          } catch (e) {
            resampled.taps.dispose();
            throw e;
          } finally {
            resampled.tokens?.dispose();
          }
        })),
      );
    } finally {
      for (const x of [embeds, sample, text]) x.dispose();
    }
    return rows;
  } finally {
    unetStore.dispose();
    ipStore.dispose();
    await adapterFile.close();
    await actFile.close();
    await unetFile.close();
  }
};

/** Stored samples (np.array(Image.open(f)): [H, W] or [H, W, C]) against ours: mismatching values. */
function storedMismatches(img: StoredImage, raw: RawTensor): number {
  const shape = img.channels === 1 ? [img.height, img.width] : [img.height, img.width, img.channels];
  if (raw.shape.length !== shape.length || raw.shape.some((d, i) => d !== shape[i])) return Infinity;
  const ref = raw.dtype === 'U8' || raw.dtype === 'BOOL' ? raw.bytes : rawToInt32(raw);
  let bad = 0;
  for (let i = 0; i < ref.length; i++) if (img.data[i] !== ref[i]) bad++;
  return bad;
}

/** Pixels of a stored decode ([H, W], [H, W, 3] or [H, W, 4]) against our RGB: values outside ±tol. */
function pixelMismatches(ours: RgbImage, ref: Uint8Array, shape: number[], tol: number): { outside: number; total: number; max: number } {
  const [h, w] = shape as [number, number];
  const ch = shape.length === 2 ? 1 : shape[2]!;
  if (h !== ours.height || w !== ours.width) return { outside: Infinity, total: 0, max: Infinity };
  let outside = 0;
  let max = 0;
  for (let i = 0; i < w * h; i++) {
    for (let c = 0; c < 3; c++) {
      const d = Math.abs(ours.data[i * 3 + c]! - ref[i * ch + (ch === 1 ? 0 : c)]!);
      if (d > tol) outside++;
      if (d > max) max = d;
    }
  }
  return { outside, total: w * h * 3, max };
}

function maxDiffRow(fixture: string, name: string, ours: Float32Array, ref: Float32Array, tol: number, note?: string): ParityRow {
  let err = ours.length === ref.length ? 0 : Infinity;
  let differing = 0;
  for (let i = 0; i < ref.length && err !== Infinity; i++) {
    const d = Math.abs(ours[i]! - ref[i]!);
    if (d > 0) differing++;
    if (!(d <= err)) err = Number.isNaN(d) ? Infinity : d;
  }
  return { fixture, name, err, tol, kind: 'absolute', pass: err <= tol, note: `${differing} of ${ref.length} values differ${note ? `; ${note}` : ''}` };
}

/** PIL-exact decoding, resampling and the three preprocessing paths. */
const preprocess: Handler = async (_rt, dir, fixture, index) => {
  const rel = Object.keys(index.files).find((f) => f.startsWith(`${fixture}/`) && f.endsWith('.safetensors'));
  if (!rel) throw new Error(`${fixture}: no safetensors file listed in index.json`);
  const file = await SafetensorsFile.open(join(dir, rel));
  const rows: ParityRow[] = [];
  try {
    const cfg = JSON.parse(file.metadata.config ?? '{}') as Record<string, ImageProcessorConfig>;
    const images = JSON.parse(file.metadata.images ?? '{}') as Record<string, { png: string }>;
    for (const [name, info] of Object.entries(images)) {
      if (!file.has(`${name}.pixels`)) {
        rows.push({ fixture, name: `${name}.pixels`, err: NaN, tol: 0, kind: 'skipped', pass: false, note: 'listed in the metadata but not stored' });
        continue;
      }
      // `.pixels` is np.array(PIL.Image.open(png)), the samples as stored (palette indices for
      // mode P, HW for one channel, HWC otherwise): compared with the decoder's stored samples.
      const stored = await loadImageSamples(join(dir, info.png));
      const img = applyOrientation(toRgb(stored), stored.orientation);
      const bad = storedMismatches(stored, await file.readRaw(`${name}.pixels`));
      rows.push({ fixture, name: `${name}.pixels`, err: bad, tol: 0, kind: 'exact', pass: bad === 0, note: `mode ${stored.mode}, as stored` });
      for (const t of file.names().filter((n) => n.startsWith(`${name}.`) && n !== `${name}.pixels`)) {
        const proc = t.slice(name.length + 1);
        const ref = (await file.readFloat32(t)).data;
        const size = /^process_image_(\d+)$/.exec(proc);
        if (size) {
          rows.push(maxDiffRow(fixture, t, processImage(img, Number(size[1])), ref, 2 / 255));
        } else if (cfg[proc]) {
          const std = Math.min(...(cfg[proc]!.image_std ?? [1]));
          rows.push(maxDiffRow(fixture, t, imageProcessor(img, cfg[proc]!).data, ref, 1 / (255 * std)));
        } else rows.push({ fixture, name: t, err: NaN, tol: 0, kind: 'skipped', pass: false, note: `no processor config "${proc}" in the metadata` });
      }
    }
    return rows;
  } finally {
    await file.close();
  }
};

/** Decoders against Pillow 9.4 (libjpeg-turbo): every format exact (the JPEG decoder reproduces
 *  libjpeg-turbo's IDCT, upsampling and colour conversion); 16-bit gray PNG compared in PIL's
 *  clamping mode (our default scales instead). */
const codecs: Handler = async (_rt, dir, fixture) => {
  const file = await SafetensorsFile.open(join(dir, fixture, `${fixture}.safetensors`));
  const rows: ParityRow[] = [];
  try {
    const files = JSON.parse(file.metadata.files ?? '{}') as Record<string, { mode_on_disk?: string }>;
    for (const [name, info] of Object.entries(files)) {
      const sixteen = info.mode_on_disk === 'I' || info.mode_on_disk === 'I;16';
      const img = await loadImage(join(dir, fixture, name), sixteen ? { sixteenBit: 'pil' } : {});
      const raw = await file.readRaw(`${name}.pixels`);
      const note = sixteen ? "decoded in 'pil' mode; the default scales 16-bit gray to 8-bit" : undefined;
      const px = pixelMismatches(img, raw.bytes, raw.shape, 0);
      rows.push({ fixture, name: `${name}.pixels`, err: px.outside, tol: 0, kind: 'exact', pass: px.outside === 0, ...(note ? { note } : {}) });
      const t = `${name}.process_image_64`;
      if (file.has(t)) rows.push(maxDiffRow(fixture, t, processImage(img, 64), (await file.readFloat32(t)).data, 2 / 255, note));
    }
    return rows;
  } finally {
    await file.close();
  }
};

/** Full-size models built from the manifests' configs must declare exactly their tensor names and
 *  shapes (no weights involved). The VAE model is the encoder: the decoder part is checked to be
 *  the only remainder. */
/** The message of a model constructor that refuses a config as one this package does not build
 *  (`not supported: …`), or undefined when it builds. */
function unsupported(make: () => void): string | undefined {
  try {
    make();
    return undefined;
  } catch (e) {
    const msg = (e as Error).message;
    if (/not supported/.test(msg)) return `a configuration this package does not build (${msg})`;
    throw e;
  }
}

/** A tensor source with a manifest's names and shapes and no data (for mapping and model checks). */
function shapesOnly(name: string, tensors: Record<string, { shape: number[] }>): TensorSource {
  const info = (n: string): TensorInfo => {
    const t = tensors[n];
    if (!t) throw new Error(`${name}: no tensor ${n}`);
    return { name: n, dtype: 'F32', shape: [...t.shape], begin: 0, end: 0 };
  };
  const noData = () => Promise.reject(new Error(`${name}: shapes only`));
  return { name, metadata: {}, names: () => Object.keys(tensors), has: (n) => Object.prototype.hasOwnProperty.call(tensors, n), info, readRaw: noData, readFloat32: noData, close: async () => {} };
}

/** A full-size single-file checkpoint's manifest (tensor names and shapes): mapped to the diffusers
 *  components with configs from the shapes alone, each component must hold exactly the tensors of
 *  the folder's diffusers manifest of that component, and its config must equal that manifest's. */
async function singleFileManifest(fixture: string, name: string, shapes: TensorSource, json: <T>(f: string) => Promise<T>, manifests: readonly string[]): Promise<ParityRow[]> {
  const c = sd15SingleFile(shapes);
  const rows: ParityRow[] = [];
  const parts: [string, TensorSource, Record<string, unknown>][] = [
    ['unet', c.unet.source, { ...c.unet.config }],
    ['vae', c.vae.source, { ...c.vae.config }],
    ['text-encoder', c.textEncoder.source, { ...c.textEncoder.config }],
  ];
  for (const [part, view, config] of parts) {
    const target = manifests.find((n) => n.endsWith(`-${part}`) && n.startsWith('sd15-'));
    if (!target) {
      rows.push({ fixture, name: `${name}.${part}`, err: NaN, tol: 0, kind: 'skipped', pass: false, note: `no sd15-${part}.json manifest beside it to compare with` });
      continue;
    }
    const want = (await json<{ tensors: Record<string, { shape: number[] }> }>(`${target}.json`)).tensors;
    // transformers lists the text encoder's position_ids buffer; the loaders ignore it.
    const keys = new Set([...view.names(), ...Object.keys(want).filter((k) => !k.endsWith('position_ids'))]);
    let mismatches = 0;
    for (const k of keys) if (!view.has(k) || !want[k] || JSON.stringify(view.info(k).shape) !== JSON.stringify(want[k]!.shape)) mismatches++;
    const official = await json<Record<string, unknown>>(`${target}.config.json`).catch(() => undefined);
    let configDiff: string[] = [];
    if (official) configDiff = Object.entries(official).filter(([k, v]) => !k.startsWith('_') && JSON.stringify(config[k]) !== JSON.stringify(v)).map(([k]) => k);
    rows.push({ fixture, name: `${name}.${part}`, err: mismatches + configDiff.length, tol: 0, kind: 'exact', pass: mismatches + configDiff.length === 0, note: `${keys.size} tensors against ${target}.json${official ? `, config from the shapes against ${target}.config.json${configDiff.length ? ` (differs: ${configDiff.join(', ')})` : ''}` : ''}` });
  }
  return rows;
}

const manifests: Handler = async (_rt, dir, fixture) => {
  const { readdir } = await import('node:fs/promises');
  const folder = join(dir, fixture);
  const names = (await readdir(folder)).filter((f) => f.endsWith('.json') && !f.endsWith('.config.json') && !f.endsWith('.preprocessor.json')).map((f) => f.slice(0, -5));
  const json = async <T>(f: string) => JSON.parse(await readFile(join(folder, f), 'utf8')) as T;
  const rows: ParityRow[] = [];
  const unetFor = async () => new UNet2DConditionModel(new WeightStore(), await json<UNetConfig>('sd15-unet.config.json'));
  for (const name of names.sort()) {
    const m = await json<{ tensors: Record<string, { shape: number[] }>; ip_adapter_key_to_module?: Record<string, string> }>(`${name}.json`);
    const shapes = shapesOnly(`${name}.json`, m.tensors);
    if (isSd15SingleFile(shapes)) {
      rows.push(...(await singleFileManifest(fixture, name, shapes, json, names)));
      continue;
    }
    const perceptual = perceptualManifestRow(fixture, name, m.tensors);
    if (perceptual) {
      rows.push(perceptual);
      continue;
    }
    let config: unknown;
    try {
      config = await json(`${name}.config.json`);
    } catch (e) {
      rows.push({ fixture, name, err: NaN, tol: 0, kind: 'skipped', pass: false, note: `no readable ${name}.config.json (${(e as { code?: string }).code ?? (e as Error).message})` });
      continue;
    }
    const store = new WeightStore();
    let note: string | undefined;
    let expected = Object.fromEntries(Object.entries(m.tensors).map(([k, v]) => [k, v.shape]));
    let extra = 0;
    const c = config as Record<string, unknown>;
    // A config of a model family this package does not build (SDXL's U-Net, …) is listed, not run.
    const refused = unsupported(() => {
      if (c._class_name === 'UNet2DConditionModel') new UNet2DConditionModel(new WeightStore(), config as UNetConfig);
    });
    if (refused) {
      rows.push({ fixture, name, err: NaN, tol: 0, kind: 'skipped', pass: false, note: refused });
      continue;
    }
    if (c._class_name === 'UNet2DConditionModel') new UNet2DConditionModel(store, config as UNetConfig);
    else if (c._class_name === 'AutoencoderKL') {
      new VaeEncoder(store, config as VaeConfig);
      const enc = Object.fromEntries(Object.entries(expected).filter(([k]) => k.startsWith('encoder.') || k.startsWith('quant_conv.')));
      extra = Object.keys(expected).filter((k) => !(k in enc) && !k.startsWith('decoder.') && !k.startsWith('post_quant_conv.')).length;
      note = `encoder + quant_conv (${Object.keys(enc).length} of ${Object.keys(expected).length}); the rest is the decoder`;
      expected = enc;
    } else if (c.model_type === 'clip_text_model' || (Array.isArray(c.architectures) && c.architectures.some((x) => x === 'CLIPTextModel' || x === 'CLIPTextModelWithProjection'))) {
      // SDXL's configs name only the architecture; text_encoder_2 is CLIPTextModelWithProjection.
      new ClipTextModel(store, config as ClipTextConfig, 'text_model', undefined, 'text_projection.weight' in m.tensors);
    }
    else if (c.model_type === 'clip_vision_model') new ClipVisionModel(store, config as ClipVisionConfig);
    else if (c.model_type === 'clip') new ClipModel(store, config as ClipModelConfig);
    else if (c.model_type === 'dinov2') new Dinov2Model(store, config as Dinov2Config);
    else if ((c as { diffusers_equivalent?: unknown }).diffusers_equivalent) {
      const ip = new IpAdapterPlus(store, { resampler: (c as { diffusers_equivalent: IpAdapterConfig['resampler'] }).diffusers_equivalent }, await unetFor());
      if (m.ip_adapter_key_to_module) {
        const ours = ip.keyToModule();
        extra = Object.keys({ ...ours, ...m.ip_adapter_key_to_module }).filter((k) => ours[k] !== m.ip_adapter_key_to_module![k]).length;
      }
    } else {
      rows.push({ fixture, name, err: NaN, tol: 0, kind: 'skipped', pass: false, note: 'a model class this package does not build' });
      continue;
    }
    const ours = store.manifest();
    const keys = new Set([...Object.keys(ours), ...Object.keys(expected)]);
    let mismatches = extra;
    for (const k of keys) if (JSON.stringify(ours[k]) !== JSON.stringify(expected[k])) mismatches++;
    rows.push({ fixture, name, err: mismatches, tol: 0, kind: 'exact', pass: mismatches === 0, note: `${Object.keys(ours).length} tensors, ${store.parameterCount().toLocaleString('en-US')} parameters${note ? `; ${note}` : ''}` });
  }
  return rows;
};

/** diffsim-tiny, vision part: the tiny CLIP ViT-B/32 CLIPModel loads, the CLIP processor gives the
 *  stored pixel values for image_A/B, and the projected image features and CLIP-I score match.
 *  (The DiffSim, AAS and DINO scores of this folder belong to the metric, not covered here.) */
const diffsimVision: Handler = async (rt, dir, fixture, index, settings) => {
  const f16 = settings.weights === 'f16';
  const clipRel = `${fixture}/clip_b32_tiny.safetensors`;
  const refRel = `${fixture}/clip_dino_aas.safetensors`;
  if (!index.files[clipRel]) throw new Error(`${fixture}: clip_b32_tiny.safetensors is not in index.json`);
  const weights = await SafetensorsFile.open(join(dir, clipRel));
  const ref = index.files[refRel] ? await SafetensorsFile.open(join(dir, refRel)) : null;
  const store = new WeightStore();
  const rows: ParityRow[] = [];
  try {
    const config = JSON.parse(weights.metadata.config ?? 'null') as ClipModelConfig | null;
    if (!config) throw new Error(`${clipRel}: no "config" metadata`);
    const model = new ClipModel(store, config);
    await store.load(rt, weights, { weights: settings.weights });
    // Every declared parameter came from the file and every file tensor was used (position_ids aside).
    const unused = weights.names().filter((n) => !store.params.has(n) && !/position_ids$/.test(n)).length;
    const unloaded = [...store.params.values()].filter((p) => !p.loaded).length;
    rows.push({ fixture, name: 'clip_b32_tiny loads (CLIPModel)', err: unused + unloaded, tol: 0, kind: 'exact', pass: unused + unloaded === 0, note: `${store.params.size} tensors` });
    const proc = ((JSON.parse(ref?.metadata.config ?? '{}') as { clip_processor?: ImageProcessorConfig }).clip_processor) ?? {
      size: { shortest_edge: 224 }, resample: 3, crop_size: { height: 224, width: 224 }, rescale_factor: 1 / 255,
      image_mean: [0.48145466, 0.4578275, 0.40821073], image_std: [0.26862954, 0.26130258, 0.27577711],
    };
    const feats: Float32Array[] = [];
    for (const ab of ['A', 'B']) {
      const img = await loadImage(join(dir, fixture, `image_${ab}.png`));
      const px = imageProcessor(img, proc);
      if (ref?.has(`clip.pixel_values_${ab}`)) rows.push(maxDiffRow(fixture, `clip.pixel_values_${ab}`, px.data, (await ref.readFloat32(`clip.pixel_values_${ab}`)).data, 1 / (255 * 0.26130258)));
      const embeds = tidy(() => model.vision.forward(rt.upload(px.data, [1, 3, px.height, px.width])).imageEmbeds!);
      const out = (await embeds.read()) as Float32Array;
      embeds.dispose();
      feats.push(out);
      if (ref?.has(`clip.image_features_${ab}`)) {
        // metrics/clip_i.py stores the L2-normalised projection.
        const r = (await ref.readFloat32(`clip.image_features_${ab}`)).data;
        const norm = Math.sqrt(out.reduce((acc, v) => acc + v * v, 0));
        const err = normalisedError(out.map((v) => v / norm), r);
        const tol = f16 ? F16_WEIGHTS_TOLERANCE : 2e-4;
        rows.push({ fixture, name: `clip.image_features_${ab}`, err, tol, kind: 'normalised', pass: err <= tol });
      }
    }
    if (ref?.has('clip.clipi_score')) {
      const [a, b] = feats as [Float32Array, Float32Array];
      let dot = 0, na = 0, nb = 0;
      for (let i = 0; i < a.length; i++) {
        dot += a[i]! * b[i]!;
        na += a[i]! ** 2;
        nb += b[i]! ** 2;
      }
      const score = (100 * dot) / Math.sqrt(na * nb);
      const refScore = (await ref.readFloat32('clip.clipi_score')).data[0]!;
      const err = Math.abs(score - refScore) / 100;
      const tol = f16 ? F16_WEIGHTS_TOLERANCE / 100 : 1e-5;
      rows.push({ fixture, name: 'clip.clipi_score', err, tol, kind: 'absolute', pass: err <= tol, note: `ours ${score.toFixed(5)}, reference ${refScore.toFixed(5)} (cosine error)` });
    }
    return rows;
  } finally {
    store.dispose();
    await weights.close();
    await ref?.close();
  }
};

/** diffsim-tiny: the CLIP model part above, then the metric values (DiffSim-S/C, CLIP/DINOv2 AAS,
 *  scores.json) through the metric API (src/diffsim/parity.ts). */
const diffsimTiny: Handler = async (rt, dir, fixture, index, settings) => [...(await diffsimVision(rt, dir, fixture, index, settings)), ...(await diffsimMetricParity(rt, dir, fixture, index, settings))];

/** An SD1.5 single-file checkpoint (`<fixture>/*.safetensors`, original layout) loaded through the
 *  single-file mapping: its U-Net, VAE encoder and text encoder must reproduce the activations of
 *  the fixture folders they were converted from (the file's `converted_from` metadata; unet-tiny,
 *  vae-encoder-tiny and clip-text-tiny by default). Configs come from the file as a user's would. */
const singleFile: Handler = async (rt, dir, fixture, index, settings) => {
  const files = Object.keys(index.files).filter((f) => f.startsWith(`${fixture}/`) && f.endsWith('.safetensors'));
  if (files.length !== 1) throw new Error(`${fixture}: expected one single-file checkpoint (.safetensors) in index.json, found ${files.length}`);
  const file = await SafetensorsFile.open(join(dir, files[0]!));
  try {
    const from = (JSON.parse(file.metadata.config ?? '{}') as { converted_from?: Record<string, string> }).converted_from ?? {};
    const folderOf = (part: string, fallback: string) => (from[part] ?? `${fallback}/`).split('/')[0]!;
    const c = sd15SingleFile(file);
    const parts: [string, string, (rt: Runtime, fixture: string, m: ModelFixture, s: ParitySettings) => Promise<ParityRow[]>, { source: TensorSource; config: unknown }][] = [
      ['unet', folderOf('unet', 'unet-tiny'), unetRows, c.unet],
      ['vae', folderOf('vae', 'vae-encoder-tiny'), vaeEncoderRows, c.vae],
      ['text_encoder', folderOf('text_encoder', 'clip-text-tiny'), clipTextRows, c.textEncoder],
    ];
    const rows: ParityRow[] = [];
    for (const [part, target, body, component] of parts) {
      const acts = await SafetensorsFile.open(join(dir, target, 'activations.safetensors'));
      const models = owner();
      try {
        const got = await body(rt, `${fixture}:${part}`, { weights: component.source, acts, own: models.own, config: component.config, folder: join(dir, target) }, settings);
        rows.push(...got.map((r) => ({ ...r, fixture })).map((r) => ({ ...r, name: `${part}.${r.name}` })));
      } finally {
        models.dispose();
        await acts.close();
      }
    }
    return rows;
  } finally {
    await file.close();
  }
};

export const HANDLERS: Record<string, Handler> = {
  'diffsim-tiny': diffsimTiny,
  manifests,
  preprocess,
  codecs,
  'ip-adapter-plus-tiny': ipAdapter,
  'clip-vision-tiny': clipVision,
  'clip-vision-h14-tiny': clipVision,
  'dinov2-tiny': dinov2,
  'unet-tiny': unet,
  'vae-encoder-tiny': vaeEncoder,
  scheduler,
  'clip-text-tiny': clipText,
  'single-file': singleFile,
  'lpips-tiny': lpipsParity,
  'vgg-gram-tiny': gramParity,
  'dit-tiny': ditParity,
  'sdxl-tiny': (rt, dir, fixture, _index, settings) => sdxlParity(rt, dir, fixture, settings),
};

export async function loadIndex(dir: string): Promise<FixtureIndex> {
  const path = join(dir, 'index.json');
  let text: string;
  try {
    text = new TextDecoder().decode(await readRegularFile(path));
  } catch (e) {
    if (e instanceof FileError) throw new Error(`${path}: ${e.problem.replace(/^cannot open/, 'cannot read')}`);
    throw new Error(`${path}: cannot read (${(e as { code?: string }).code ?? (e as Error).message})`);
  }
  try {
    const index = JSON.parse(text) as FixtureIndex;
    if (!index || typeof index.files !== 'object') throw new Error('no "files" object');
    return index;
  } catch (e) {
    throw new Error(`${path}: not a fixture index (${(e as Error).message})`);
  }
}

/** Top-level fixture folders named in index.json (files and other files), plus folders that hold a
 *  `<folder>/<folder>.safetensors` reference (such as `codecs/`). */
export function fixtureFolders(index: FixtureIndex, dir?: string, listing?: string[]): string[] {
  const names = [...Object.keys(index.files), ...Object.keys(index.other_files ?? {})].map((f) => f.split('/')[0]!);
  if (dir && listing) names.push(...listing);
  return [...new Set(names)];
}

async function selfDescribedFolders(dir: string): Promise<string[]> {
  const { readdir, access } = await import('node:fs/promises');
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
    if (!e.isDirectory()) continue;
    try {
      await access(join(dir, e.name, `${e.name}.safetensors`));
      out.push(e.name);
    } catch {
      // not a self-described fixture folder
    }
  }
  return out;
}

/** Reads and checks the fixture folder and the `--only` selection (no GPU needed): the folders
 *  a run would visit, in order. */
export async function planParity(dir: string, only?: string[]): Promise<{ index: FixtureIndex; folders: string[] }> {
  const index = await loadIndex(dir);
  const folders = fixtureFolders(index, dir, await selfDescribedFolders(dir));
  if (only) {
    for (const o of only) if (!folders.includes(o)) throw new Error(`--only: "${o}" is not a fixture folder in ${join(dir, 'index.json')} (have: ${folders.join(', ')})`);
  }
  return { index, folders: only ?? folders };
}

export async function runParity(rt: Runtime, dir: string, only?: string[], onRow?: (row: ParityRow) => void, settings: ParitySettings = { weights: 'f32' }): Promise<{ rows: ParityRow[]; skipped: string[] }> {
  const { index, folders } = await planParity(dir, only);
  const rows: ParityRow[] = [];
  const skipped: string[] = [];
  for (const folder of folders) {
    const handler = HANDLERS[folder];
    if (!handler) {
      skipped.push(folder);
      continue;
    }
    const got = await handler(rt, dir, folder, index, settings);
    for (const r of got) {
      rows.push(r);
      onRow?.(r);
    }
  }
  return { rows, skipped };
}
