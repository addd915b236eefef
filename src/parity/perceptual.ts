// `diffsim parity` for the perceptual baselines: lpips-tiny (LPIPS v0.1 on tiny VGG16 and AlexNet
// backbones, as the lpips package computes it) and vgg-gram-tiny (metrics/vgg_gram.py on a tiny
// VGG19). Every stored tensor is compared — the preprocessing from the stored PNGs, every
// activation of a pass run on the stored inputs, the per-layer distances and scores — and a stored
// name this handler does not know is a failing row, never a skipped one.

import { join } from 'node:path';
import { tidy, type Runtime, type Tensor } from '../gpu/runtime.js';
import { loadImage, loadImageSamples, toRgb } from '../io/image.js';
import { processImage, processImageUnit, vggGramImage } from '../io/preprocess.js';
import { SafetensorsFile } from '../io/safetensors.js';
import { convIndices, featureOps, gramForward, LPIPS_ARCH, LpipsHeads, LpipsModel, lpipsHeadsFromSource, TorchvisionFeatures, torchvisionFeaturesFromSource, type LpipsNet, type TorchvisionArch } from '../models/vgg.js';
import { WeightStore } from '../nn/weights.js';
import { cosine64 } from '../diffsim/metrics.js';
import { F16_WEIGHTS_TOLERANCE, maxAbsError, normalisedError, type FixtureIndex, type ParityRow, type ParitySettings } from './common.js';

/** Preprocessing from the stored PNG: float32 rounding only (the resamplers are PIL-exact). */
const INPUT_TOL = 1e-6;
/** Scores and per-layer distances (fixtures README: abs ≤ 1e-5 for cosines and scores). */
const SCORE_TOL = 1e-5;

async function opened<T>(paths: string[], body: (files: SafetensorsFile[]) => Promise<T>): Promise<T> {
  const files: SafetensorsFile[] = [];
  try {
    for (const p of paths) files.push(await SafetensorsFile.open(p));
    return await body(files);
  } finally {
    for (const f of files) await f.close();
  }
}

/** Compares every stored name through `produce` (name → our values, or undefined when unknown). */
interface Produced {
  ours: Float32Array;
  shape?: readonly number[];
  tol: number;
  kind: 'normalised' | 'absolute';
  /** Pixels (of an [1, C, h, w] map, index y·w + x) left out of the comparison, with why. */
  mask?: { pixels: Uint8Array; why: string };
}

async function compareAll(fixture: string, prefix: string, acts: SafetensorsFile, produce: (name: string) => Promise<Produced | undefined>): Promise<ParityRow[]> {
  const rows: ParityRow[] = [];
  for (const name of acts.names()) {
    const label = `${prefix}${name}`;
    const got = await produce(name);
    if (!got) {
      rows.push({ fixture, name: label, err: Infinity, tol: 0, kind: 'normalised', pass: false, note: 'stored, but not produced by this check' });
      continue;
    }
    const { shape, data } = await acts.readFloat32(name);
    const shapeOk = !got.shape || (got.shape.length === shape.length && got.shape.every((d, i) => d === shape[i]));
    let [ours, ref] = [got.ours, data];
    let left = 0;
    if (got.mask && shapeOk && got.ours.length === data.length) {
      const plane = got.mask.pixels.length;
      ours = ours.slice();
      ref = ref.slice();
      for (let i = 0; i < ref.length; i++) if (got.mask.pixels[i % plane]) ours[i] = ref[i] = 0;
      left = got.mask.pixels.reduce((n, v) => n + v, 0);
    }
    const err = !shapeOk ? Infinity : got.kind === 'absolute' ? maxAbsError(ours, ref) : normalisedError(ours, ref);
    const row: ParityRow = { fixture, name: label, err, tol: got.tol, kind: got.kind, pass: err <= got.tol };
    if (!shapeOk) row.note = `shape [${got.shape!.join(', ')}] vs [${shape.join(', ')}]`;
    else if (left) row.note = `${left} of ${got.mask!.pixels.length} pixels left out: ${got.mask!.why}`;
    rows.push(row);
  }
  return rows;
}

async function readAll(tensors: Map<string, Tensor>): Promise<Map<string, { data: Float32Array; shape: readonly number[] }>> {
  const out = new Map<string, { data: Float32Array; shape: readonly number[] }>();
  for (const [k, t] of tensors) out.set(k, { data: (await t.read()) as Float32Array, shape: t.shape });
  return out;
}

async function lpipsNetRows(rt: Runtime, dir: string, fixture: string, net: LpipsNet, settings: ParitySettings): Promise<ParityRow[]> {
  const folder = join(dir, fixture);
  const arch = LPIPS_ARCH[net];
  const featFile = arch === 'vgg16' ? 'vgg16_features.safetensors' : 'alexnet_features.safetensors';
  return opened([join(folder, featFile), join(folder, `lpips_${net}_v0.1.safetensors`), join(folder, `activations_${net}.safetensors`)], async ([fw, hw, acts]) => {
    const f16 = settings.weights === 'f16';
    const features = await torchvisionFeaturesFromSource(rt, fw!, { weights: settings.weights, archs: [arch] });
    let model: LpipsModel | undefined;
    try {
      const heads = await lpipsHeadsFromSource(rt, hw!, { weights: settings.weights }).catch((e: unknown) => {
        features.store.dispose();
        throw e;
      });
      model = new LpipsModel(rt, net, features, heads);
      const config = JSON.parse(acts!.metadata.config ?? '{}') as { img_size?: number };
      const size = config.img_size;
      if (!size) throw new Error(`${fixture}/activations_${net}.safetensors: no img_size in the config metadata`);
      const images = [await loadImage(join(folder, 'image_A.png')), await loadImage(join(folder, 'image_B.png'))];
      // One pass per stored input pair (normalize=False, and normalize=True on its own inputs).
      const values = new Map<string, { data: Float32Array; shape: readonly number[] }>();
      for (const [prefix, normalize] of [['', false], ['normalize_true.', true]] as const) {
        const inputs: Tensor[] = [];
        for (const i of [0, 1]) {
          const { shape, data } = await acts!.readFloat32(`${prefix}input.in${i}`);
          inputs.push(rt.upload(data, shape));
        }
        const m = model;
        const tensors = tidy(() => {
          const out = new Map<string, Tensor>();
          const f = inputs.map((x) => m.forward(x, normalize));
          f.forEach((r, i) => {
            out.set(`${prefix}scaling_layer.in${i}`, r.scaled);
            r.slices.forEach((t, k) => out.set(`${prefix}slice${k + 1}.in${i}`, t));
            r.normed.forEach((t, k) => out.set(`${prefix}feat_norm${k + 1}.in${i}`, t));
          });
          const l = m.layers(f[0]!.normed, f[1]!.normed);
          l.diffs.forEach((t, k) => out.set(`${prefix}diff${k + 1}`, t));
          l.lins.forEach((t, k) => out.set(`${prefix}lin${k}.out`, t));
          return out;
        });
        try {
          for (const [k, v] of await readAll(tensors)) values.set(k, v);
        } finally {
          for (const t of [...tensors.values(), ...inputs]) t.dispose();
        }
        let total = 0;
        for (let k = 0; k < 5; k++) {
          const lin = values.get(`${prefix}lin${k}.out`)!.data;
          let s = 0;
          for (const v of lin) s += v;
          const mean = s / lin.length;
          total += mean;
          values.set(`${prefix}res.layer${k}`, { data: new Float32Array([mean]), shape: [1, 1, 1, 1] });
        }
        values.set(`${prefix}distance`, { data: new Float32Array([total]), shape: [1, 1, 1, 1] });
        images.forEach((img, i) => values.set(`${prefix}input.in${i}`, { data: normalize ? processImageUnit(img, size) : processImage(img, size), shape: [1, 3, size, size] }));
      }
      // With f16 weights, a pixel whose reference feature is almost zero in every channel (a few
      // ReLUs barely above 0) can come out exactly 0: its unit normalisation x/(‖x‖ + 1e-10) is then
      // 0 instead of a unit vector. That is the normalisation's conditioning, not the weights'
      // error: such pixels (‖x‖ below F16_WEIGHTS_TOLERANCE × the map's largest ‖x‖) are left out
      // of the f16 comparison of feat_norm, diff and lin, and counted in the row's note. f32
      // compares every pixel.
      const illConditioned = async (k: number, which: readonly number[]): Promise<Produced['mask']> => {
        if (!f16) return undefined;
        let pixels: Uint8Array | undefined;
        for (const i of which) {
          const { shape, data } = await acts!.readFloat32(`slice${k}.in${i}`);
          const [, c, h, w] = shape as [number, number, number, number];
          const plane = h * w;
          const norm = new Float64Array(plane);
          for (let ch = 0; ch < c; ch++) for (let p = 0; p < plane; p++) norm[p]! += data[ch * plane + p]! ** 2;
          const max = Math.sqrt(Math.max(...norm));
          pixels ??= new Uint8Array(plane);
          norm.forEach((v, p) => {
            if (Math.sqrt(v) < F16_WEIGHTS_TOLERANCE * max) pixels![p] = 1;
          });
        }
        return pixels && { pixels, why: 'near-zero features, whose unit normalisation is ill-conditioned' };
      };
      return compareAll(fixture, `${net}: `, acts!, async (name) => {
        const v = values.get(name);
        if (!v) return undefined;
        const bare = name.replace(/^normalize_true\./, '');
        const norm = /^feat_norm(\d)\.in(\d)$/.exec(bare);
        const layer = /^diff(\d)$/.exec(bare) ?? /^lin(\d)\.out$/.exec(bare);
        const mask = norm ? await illConditioned(Number(norm[1]), [Number(norm[2])]) : layer ? await illConditioned(Number(layer[1]) + (bare.startsWith('lin') ? 1 : 0), [0, 1]) : undefined;
        if (mask) return { ours: v.data, shape: v.shape, tol: F16_WEIGHTS_TOLERANCE, kind: 'normalised', mask };
        if (bare.startsWith('input.')) return { ours: v.data, shape: v.shape, tol: INPUT_TOL, kind: 'normalised' };
        if (bare.startsWith('res.') || bare === 'distance') return { ours: v.data, shape: v.shape, tol: f16 ? F16_WEIGHTS_TOLERANCE : SCORE_TOL, kind: 'absolute' };
        // The scaling layer is one affine op; the rest are conv stacks and what follows them.
        return { ours: v.data, shape: v.shape, tol: f16 ? F16_WEIGHTS_TOLERANCE : bare.startsWith('scaling_layer.') ? 1e-5 : 1e-4, kind: 'normalised' };
      });
    } finally {
      if (model) model.dispose();
      else features.store.dispose();
    }
  });
}

/** lpips-tiny: both backbones whose activations are listed in the index. */
export async function lpipsParity(rt: Runtime, dir: string, fixture: string, index: FixtureIndex, settings: ParitySettings): Promise<ParityRow[]> {
  const nets = (['vgg', 'alex'] as const).filter((n) => index.files[`${fixture}/activations_${n}.safetensors`]);
  if (!nets.length) throw new Error(`${fixture}: index.json lists no activations_vgg.safetensors or activations_alex.safetensors`);
  const rows: ParityRow[] = [];
  for (const net of nets) rows.push(...(await lpipsNetRows(rt, dir, fixture, net, settings)));
  return rows;
}

/** vgg-gram-tiny: vgg_gram.py's loader, conv5_1 (pre-ReLU), Gram matrices and both scores. */
export async function gramParity(rt: Runtime, dir: string, fixture: string, _index: FixtureIndex, settings: ParitySettings): Promise<ParityRow[]> {
  const folder = join(dir, fixture);
  return opened([join(folder, 'vgg19_features.safetensors'), join(folder, 'activations.safetensors')], async ([fw, acts]) => {
    const f16 = settings.weights === 'f16';
    const features = await torchvisionFeaturesFromSource(rt, fw!, { weights: settings.weights, archs: ['vgg19'], upTo: 28 });
    try {
      const config = JSON.parse(acts!.metadata.config ?? '{}') as { img_size?: number };
      const size = config.img_size;
      if (!size) throw new Error(`${fixture}/activations.safetensors: no img_size in the config metadata`);
      const values = new Map<string, { data: Float32Array; shape: readonly number[] }>();
      for (const ab of ['A', 'B'] as const) {
        // vgg_gram.py's loader: Image.open().convert('RGB'), no EXIF transpose.
        const img = toRgb(await loadImageSamples(join(folder, `image_${ab}.png`)));
        const x = vggGramImage(img, size);
        values.set(`input.${ab}`, { data: x.data, shape: [1, 3, x.height, x.width] });
        const { shape, data } = await acts!.readFloat32(`input.${ab}`);
        const input = rt.upload(data, shape);
        const r = tidy(() => gramForward(features, input));
        try {
          values.set(`conv5_1.${ab}`, { data: (await r.feature.read()) as Float32Array, shape: r.feature.shape });
          values.set(`gram.${ab}`, { data: (await r.gram.read()) as Float32Array, shape: r.gram.shape });
        } finally {
          for (const t of [input, r.feature, r.gram]) t.dispose();
        }
      }
      const ga = values.get('gram.A')!;
      const gb = values.get('gram.B')!;
      const c = ga.shape[0]!;
      values.set('score_last_row', { data: new Float32Array([cosine64(ga.data.subarray((c - 1) * c), gb.data.subarray((c - 1) * c))]), shape: [1] });
      values.set('score_full_matrix', { data: new Float32Array([cosine64(ga.data, gb.data)]), shape: [1] });
      return compareAll(fixture, '', acts!, async (name) => {
        const v = values.get(name);
        if (!v) return undefined;
        if (name.startsWith('input.')) return { ours: v.data, shape: v.shape, tol: INPUT_TOL, kind: 'normalised' };
        if (name.startsWith('score_')) return { ours: v.data, shape: v.shape, tol: f16 ? F16_WEIGHTS_TOLERANCE : SCORE_TOL, kind: 'absolute' };
        return { ours: v.data, shape: v.shape, tol: f16 ? F16_WEIGHTS_TOLERANCE : 1e-4, kind: 'normalised' };
      });
    } finally {
      features.store.dispose();
    }
  });
}

/** The manifests of the real checkpoints (`torchvision-{vgg16,vgg19,alexnet}-features`,
 *  `lpips-v0.1-{vgg,alex}`): the modules built with the manifest's widths must declare exactly its
 *  tensor names and shapes (count of mismatches). */
export function perceptualManifestRow(fixture: string, name: string, tensors: Record<string, { shape: number[] }>): ParityRow | undefined {
  const tv = /^torchvision-(vgg16|vgg19|alexnet)-features$/.exec(name);
  const lp = /^lpips-v0\.1-(vgg|alex)$/.exec(name);
  if (!tv && !lp) return undefined;
  let declared: Record<string, number[]>;
  if (tv) {
    const arch = tv[1] as TorchvisionArch;
    const widths = convIndices(arch).map((i) => tensors[`features.${i}.weight`]?.shape[0] ?? 0);
    declared = new TorchvisionFeatures(new WeightStore(), arch, widths, featureOps(arch).length - 1).store.manifest();
  } else {
    const channels = [0, 1, 2, 3, 4].map((k) => tensors[`lin${k}.model.1.weight`]?.shape[1] ?? 0);
    declared = new LpipsHeads(channels).store.manifest();
  }
  const keys = new Set([...Object.keys(declared), ...Object.keys(tensors)]);
  let mismatches = 0;
  for (const k of keys) {
    const a = declared[k];
    const b = tensors[k]?.shape;
    if (!a || !b || a.length !== b.length || a.some((d, i) => d !== b[i])) mismatches++;
  }
  return { fixture, name, err: mismatches, tol: 0, kind: 'exact', pass: mismatches === 0, note: `${Object.keys(tensors).length} tensors` };
}
