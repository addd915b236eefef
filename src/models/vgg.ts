// torchvision's VGG16 / VGG19 / AlexNet `features` (the keys `features.N.weight/bias` of
// torchvision's state dicts and of timm's `vgg*.tv_in1k` files, which keep torchvision's indices),
// and the two metrics built on them:
//  - LPIPS v0.1 (the `lpips` package, richzhang/PerceptualSimilarity): scaling layer, five slices at
//    torchvision's indices, unit normalisation over channels, squared differences, the 1×1 linear
//    heads `lin{k}.model.1.weight`, spatial mean, sum over the layers.
//  - The VGG Gram baseline (DiffSim's metrics/vgg_gram.py): VGG19 up to index 28 (conv5_1, before
//    its ReLU), Gram matrix F·Fᵀ of the (C, h·w) reshape, unnormalised.
// Every conv is 3×3 / padding 1 in VGG; AlexNet's are 11×11 s4 p2, 5×5 p2 and 3×3 p1. Widths come
// from the checkpoint's shapes, so tiny test models and the real ones load through the same code.

import { tidy, type Runtime, type Tensor } from '../gpu/runtime.js';
import { binary, mul, sub, unary } from '../kernels/elementwise.js';
import { matmul } from '../kernels/matmul.js';
import { channelUnitNorm, maxPool2d } from '../kernels/pool.js';
import type { TensorSource } from '../io/safetensors.js';
import { Conv2d } from '../nn/modules.js';
import { Scope, WeightStore } from '../nn/weights.js';
import type { ModelLoadOptions } from './sources.js';

export type TorchvisionArch = 'vgg16' | 'vgg19' | 'alexnet';
export const TORCHVISION_ARCHS: readonly TorchvisionArch[] = ['vgg16', 'vgg19', 'alexnet'];

/** One module of `features`, by its index. */
export type FeatureOp = { kind: 'conv'; kernel: number; stride: number; padding: number } | { kind: 'relu' } | { kind: 'pool'; kernel: number; stride: number };

const VGG_CFG: Record<'vgg16' | 'vgg19', readonly (number | 'M')[]> = {
  vgg16: [64, 64, 'M', 128, 128, 'M', 256, 256, 256, 'M', 512, 512, 512, 'M', 512, 512, 512, 'M'],
  vgg19: [64, 64, 'M', 128, 128, 'M', 256, 256, 256, 256, 'M', 512, 512, 512, 512, 'M', 512, 512, 512, 512, 'M'],
};

/** The output side of a conv or max pool without padding (the input already padded), floor mode. */
export function poolSide(size: number, kernel: number, stride: number): number {
  return Math.floor((size - kernel) / stride) + 1;
}

/** torchvision's `features` module list (vgg.make_layers without batch norm; AlexNet.features). */
export function featureOps(arch: TorchvisionArch): FeatureOp[] {
  if (arch === 'alexnet') {
    const conv = (kernel: number, stride: number, padding: number): FeatureOp => ({ kind: 'conv', kernel, stride, padding });
    const relu: FeatureOp = { kind: 'relu' };
    const pool: FeatureOp = { kind: 'pool', kernel: 3, stride: 2 };
    return [conv(11, 4, 2), relu, pool, conv(5, 1, 2), relu, pool, conv(3, 1, 1), relu, conv(3, 1, 1), relu, conv(3, 1, 1), relu, pool];
  }
  const ops: FeatureOp[] = [];
  for (const v of VGG_CFG[arch]) ops.push(...(v === 'M' ? [{ kind: 'pool', kernel: 2, stride: 2 } as const] : [{ kind: 'conv', kernel: 3, stride: 1, padding: 1 } as const, { kind: 'relu' } as const]));
  return ops;
}

/** The conv indices of an architecture's `features`. */
export function convIndices(arch: TorchvisionArch): number[] {
  return featureOps(arch).flatMap((op, i) => (op.kind === 'conv' ? [i] : []));
}

/** Checkpoint keys that are not part of `features`: torchvision's classifier, timm's pre_logits
 *  and head (timm's `vgg*.tv_in1k` otherwise keeps torchvision's `features.N` keys). */
const NOT_FEATURES = /^(classifier|pre_logits|head)\./;

/** Which architecture a checkpoint's `features.N.weight` indices belong to (up to `upTo` where the
 *  file may stop early). */
export function detectArch(src: Pick<TensorSource, 'names' | 'name'>, wanted?: readonly TorchvisionArch[]): TorchvisionArch {
  const idx = new Set(src.names().flatMap((n) => /^features\.(\d+)\.weight$/.exec(n)?.[1] ?? []).map(Number));
  const candidates = wanted ?? TORCHVISION_ARCHS;
  const hit = candidates.find((a) => {
    const want = convIndices(a);
    return want.length === idx.size && want.every((i) => idx.has(i));
  });
  if (!hit) {
    const have = [...idx].sort((a, b) => a - b);
    throw new Error(`${src.name}: not the features of torchvision's ${candidates.join(' / ')}: conv weights features.{${have.join(',') || 'none'}}.weight (expected ${candidates.map((a) => `${a} {${convIndices(a).join(',')}}`).join(' or ')})`);
  }
  return hit;
}

/** torchvision `features` up to index `upTo` (inclusive), with the conv widths given. */
export class TorchvisionFeatures {
  readonly store: WeightStore;
  readonly ops: readonly FeatureOp[];
  readonly convs = new Map<number, Conv2d>();
  constructor(
    store: WeightStore,
    readonly arch: TorchvisionArch,
    /** Output channels of each conv, in order. */
    readonly widths: readonly number[],
    readonly upTo: number,
  ) {
    this.store = store;
    const all = featureOps(arch);
    if (!Number.isInteger(upTo) || upTo < 0 || upTo >= all.length) throw new RangeError(`${arch} features: index ${upTo} is outside 0–${all.length - 1}`);
    this.ops = all.slice(0, upTo + 1);
    const root = Scope.root(store).child('features');
    let cin = 3;
    let j = 0;
    this.ops.forEach((op, i) => {
      if (op.kind !== 'conv') return;
      const cout = widths[j++];
      if (cout === undefined) throw new RangeError(`${arch} features: no width for conv ${i}`);
      this.convs.set(i, new Conv2d(root.child(i), cin, cout, { kernel: op.kernel, stride: op.stride, padding: op.padding }));
      cin = cout;
    });
  }
  /** Runs the modules up to the largest of `ends` and returns the output of each module in `ends`
   *  (NCHW). A conv followed by its ReLU runs as one fused dispatch unless the conv's own output
   *  is asked for (the Gram baseline's pre-ReLU conv5_1). */
  forward(x: Tensor, ends: readonly number[]): Tensor[] {
    const last = Math.max(...ends);
    if (last > this.upTo) throw new RangeError(`${this.arch} features: index ${last} is beyond the loaded ${this.upTo}`);
    return tidy(() => {
      const out = new Map<number, Tensor>();
      let h = x;
      for (let i = 0; i <= last; i++) {
        const op = this.ops[i]!;
        if (op.kind === 'conv') {
          const fuse = this.ops[i + 1]?.kind === 'relu' && !ends.includes(i) && i + 1 <= last;
          h = this.convs.get(i)!.forward(h, undefined, fuse ? { act: 'relu' } : {});
          if (fuse) i++;
        } else if (op.kind === 'relu') h = unary(h, 'relu');
        else h = maxPool2d(h, op.kernel, op.stride);
        out.set(i, h);
      }
      return ends.map((e) => out.get(e)!);
    });
  }
}

/** Loads `features` (up to `upTo`, default all) from a torchvision or timm checkpoint. */
export async function torchvisionFeaturesFromSource(rt: Runtime, src: TensorSource, o: ModelLoadOptions & { arch?: TorchvisionArch; archs?: readonly TorchvisionArch[]; upTo?: number } = {}): Promise<TorchvisionFeatures> {
  const arch = o.arch ?? detectArch(src, o.archs);
  const ops = featureOps(arch);
  const upTo = o.upTo ?? ops.length - 1;
  const widths: number[] = [];
  for (const i of convIndices(arch).filter((i) => i <= upTo)) {
    const key = `features.${i}.weight`;
    if (!src.has(key)) throw new Error(`${src.name}: no tensor "${key}" (torchvision ${arch} features)`);
    widths.push(src.info(key).shape[0]!);
  }
  const store = new WeightStore();
  const model = new TorchvisionFeatures(store, arch, widths, upTo);
  try {
    await store.load(rt, src, {
      rename: (k) => {
        const m = /^features\.(\d+)\./.exec(k);
        return m && Number(m[1]) > upTo ? null : NOT_FEATURES.test(k) ? null : k;
      },
      weights: o.weights,
      onProgress: o.onProgress,
    });
  } catch (e) {
    store.dispose();
    throw e;
  }
  return model;
}

/** LPIPS' backbone names (the package's `net`) and the torchvision model each one slices. */
export type LpipsNet = 'vgg' | 'alex';
export const LPIPS_NETS: readonly LpipsNet[] = ['vgg', 'alex'];
export const LPIPS_ARCH: Readonly<Record<LpipsNet, TorchvisionArch>> = { vgg: 'vgg16', alex: 'alexnet' };

/** The slices of lpips/pretrained_networks.py, as [start, end) module indices of `features`. */
export const LPIPS_SLICES: Readonly<Record<LpipsNet, readonly (readonly [number, number])[]>> = {
  vgg: [[0, 4], [4, 9], [9, 16], [16, 23], [23, 30]],
  alex: [[0, 2], [2, 5], [5, 8], [8, 10], [10, 12]],
};

/** lpips ScalingLayer: (x − shift) / scale, per RGB channel. */
export const LPIPS_SCALING = Object.freeze({ shift: [-0.03, -0.088, -0.188] as const, scale: [0.458, 0.448, 0.45] as const });

/** The v0.1 linear heads: `lin{k}.model.1` = 1×1 conv without bias (model.0 is a dropout). */
export class LpipsHeads {
  readonly store = new WeightStore();
  readonly lins: Conv2d[];
  constructor(readonly channels: readonly number[]) {
    const root = Scope.root(this.store);
    this.lins = channels.map((c, k) => new Conv2d(root.child(`lin${k}`).child('model').child(1), c, 1, { kernel: 1, bias: false }));
  }
}

export async function lpipsHeadsFromSource(rt: Runtime, src: TensorSource, o: ModelLoadOptions = {}): Promise<LpipsHeads> {
  const channels: number[] = [];
  for (let k = 0; src.has(`lin${k}.model.1.weight`); k++) channels.push(src.info(`lin${k}.model.1.weight`).shape[1]!);
  if (channels.length !== 5) throw new Error(`${src.name}: not LPIPS v0.1 linear heads (expected lin0.model.1.weight … lin4.model.1.weight, found ${channels.length} of them)`);
  const heads = new LpipsHeads(channels);
  try {
    await heads.store.load(rt, src, { weights: o.weights, onProgress: o.onProgress });
  } catch (e) {
    heads.store.dispose();
    throw e;
  }
  return heads;
}

/** What an LPIPS pass on one image computes (all [1, C, h, w] NCHW). */
export interface LpipsFeatures {
  /** The scaling layer's output. */
  scaled: Tensor;
  /** slice1 … slice5 outputs (after their ReLU). */
  slices: Tensor[];
  /** The slices unit-normalised over channels (the embedding). */
  normed: Tensor[];
}

export interface LpipsLayerDistances {
  /** (a − b)² per layer. */
  diffs: Tensor[];
  /** lin{k} outputs [B, 1, h, w]. */
  lins: Tensor[];
}

/** lpips.LPIPS(net, version='0.1', lpips=True, spatial=False). */
export class LpipsModel {
  private scaleShift: Tensor | undefined;
  private scaleDiv: Tensor | undefined;
  constructor(
    readonly rt: Runtime,
    readonly net: LpipsNet,
    readonly features: TorchvisionFeatures,
    readonly heads: LpipsHeads,
  ) {
    if (features.arch !== LPIPS_ARCH[net]) throw new Error(`LPIPS net '${net}' needs ${LPIPS_ARCH[net]} features, got ${features.arch}`);
    const widths = this.sliceEnds.map((e) => features.convs.get([...features.convs.keys()].filter((i) => i <= e).pop()!)!.outChannels);
    if (widths.some((w, k) => w !== heads.channels[k])) throw new Error(`LPIPS: the linear heads take ${heads.channels.join('/')} channels, the ${features.arch} slices give ${widths.join('/')}`);
  }
  /** The last module index of each slice. */
  get sliceEnds(): number[] {
    return LPIPS_SLICES[this.net].map(([, end]) => end - 1);
  }
  get stores(): WeightStore[] {
    return [this.features.store, this.heads.store];
  }
  /** x: [B, 3, H, W] in [−1, 1] (normalize=false, DiffSim's use), or in [0, 1] with `normalize`
   *  (mapped by 2x − 1 first, as the package does). */
  forward(x: Tensor, normalize = false): LpipsFeatures {
    this.scaleShift ??= this.rt.upload(new Float32Array(LPIPS_SCALING.shift), [1, 3, 1, 1]).keep();
    this.scaleDiv ??= this.rt.upload(new Float32Array(LPIPS_SCALING.scale), [1, 3, 1, 1]).keep();
    const shift = this.scaleShift;
    const div = this.scaleDiv;
    return tidy(() => {
      const input = normalize ? unary(x, 'none', 2, -1) : x;
      const scaled = binary(sub(input, shift), div, 'div');
      const slices = this.features.forward(scaled, this.sliceEnds);
      return { scaled, slices, normed: slices.map((s) => channelUnitNorm(s)) };
    });
  }
  /** The squared differences and linear-head outputs of two images' normalised features. */
  layers(a: readonly Tensor[], b: readonly Tensor[]): LpipsLayerDistances {
    return tidy(() => {
      const diffs = a.map((x, k) => {
        const d = sub(x, b[k]!);
        return mul(d, d);
      });
      return { diffs, lins: diffs.map((d, k) => this.heads.lins[k]!.forward(d)) };
    });
  }
  /** Per-layer spatial means of the lin outputs (float64 on the host) and their sum. */
  async distance(a: readonly Tensor[], b: readonly Tensor[]): Promise<{ layers: number[]; distance: number }> {
    const l = this.layers(a, b);
    try {
      const layers: number[] = [];
      for (const t of l.lins) {
        const v = (await t.read()) as Float32Array;
        let s = 0;
        for (const x of v) s += x;
        layers.push(s / v.length);
      }
      return { layers, distance: layers.reduce((x, y) => x + y, 0) };
    } finally {
      for (const t of [...l.diffs, ...l.lins]) t.dispose();
    }
  }
  dispose(): void {
    this.scaleShift?.dispose();
    this.scaleDiv?.dispose();
    this.scaleShift = this.scaleDiv = undefined;
    this.features.store.dispose();
    this.heads.store.dispose();
  }
}

/** vgg_gram.py's layer: VGG19 `features` index 28 = conv5_1, before its ReLU. */
export const GRAM_LAYER = 28;

/** The Gram baseline's pass: conv5_1 (pre-ReLU) of [1, 3, H, W] ImageNet-normalised input and its
 *  Gram matrix G = F·Fᵀ, F = conv5_1 as (C, h·w); no normalisation. */
export function gramForward(features: TorchvisionFeatures, x: Tensor, layer = GRAM_LAYER): { feature: Tensor; gram: Tensor } {
  return tidy(() => {
    const [feature] = features.forward(x, [layer]) as [Tensor];
    const [b, c, h, w] = feature.shape as [number, number, number, number];
    if (b !== 1) throw new RangeError(`Gram: one image at a time (batch ${b})`);
    const f = feature.reshape([c, h * w]);
    return { feature, gram: matmul(f, f, { transposeB: true }) };
  });
}
