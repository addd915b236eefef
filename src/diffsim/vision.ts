// The CLIP and DINOv2 metrics of the DiffSim paper (metrics/clip_i.py, metrics/dino.py):
//   CLIP-I      100·cos of the projected CLS features (openai/clip-vit-base-patch32)
//   DINOv2      100·cos of the final-LayerNorm CLS token (facebook/dinov2-small)
//   CLIP AAS    the AAS of aas.ts in encoder layer L. Official: q/k/v_proj applied to the layer's
//               INPUT (the residual stream before layer_norm1; layer 0's is the pre_layrnorm
//               output), heads merged and out_proj applied to each attention output
//               (option 'post-ln': the layer_norm1 output the real attention reads)
//   DINOv2 AAS  the AAS in layer L with the query/key/value of the attention core (their input
//               is norm1's output), no output projection
//   clipfeats   cos of layer L's output hidden states (1, T, C), flattened
//   dinofeats   cos of layer L's attention context (before the output dense layer)
// One image gives one embedding (one encoder pass, batch 1); a pair's scores need one read-back.

import { tidy, type Runtime, type Tensor } from '../gpu/runtime.js';
import { concat } from '../kernels/layout.js';
import { pairSums } from '../kernels/reduce.js';
import type { RgbImage } from '../io/image.js';
import { imageProcessor, imageProcessorGeometry, type ImageProcessorConfig } from '../io/preprocess.js';
import { ClipModel, type ClipVisionModel } from '../models/clip-vision.js';
import type { Dinov2Model } from '../models/dinov2.js';
import { adoptTap } from '../nn/context.js';
import { aasFromSums, aasOutputs, aasSums, pairScore, type AasOutputs, type AasScores, type AttentionLayout, type Qkv } from './aas.js';
import { CLIP_IMAGE_PROCESSOR } from './core.js';
import { firstBadStage, folderOf, nonFiniteError, type Stage } from './finite.js';
import type { WeightStore } from '../nn/weights.js';

/** An image, or pixel values already preprocessed ([1, 3, H, W] float32, as imageProcessor gives). */
export type VisionInput = RgbImage | { data: Float32Array; width: number; height: number };

/** Preprocessing of facebook/dinov2-small (BitImageProcessor): short side 256, crop 224, ImageNet statistics. */
export const DINOV2_IMAGE_PROCESSOR: Readonly<ImageProcessorConfig> = Object.freeze({
  do_resize: true,
  size: { shortest_edge: 256 },
  resample: 3,
  do_center_crop: true,
  crop_size: { height: 224, width: 224 },
  do_rescale: true,
  rescale_factor: 1 / 255,
  do_normalize: true,
  image_mean: [0.485, 0.456, 0.406],
  image_std: [0.229, 0.224, 0.225],
});

/** One encoder layer's tensors: q/k/v (1, T, C) as the metric defines them, and the feature of
 *  the *feats ablation. */
export interface VisionLayerEmbedding extends Qkv {
  feature: Tensor;
}

export class VisionEmbedding {
  private disposed = false;
  constructor(
    /** Which metric made it ('clip' or 'dinov2', with the CLIP q/k/v source). */
    readonly kind: string,
    /** The global feature (CLIP: image_embeds; DINOv2: the CLS token after the final LayerNorm), [1, D]. */
    readonly global: Tensor,
    readonly layers: ReadonlyMap<number, VisionLayerEmbedding>,
  ) {}
  assertLive(): void {
    if (this.disposed) throw new Error(`${this.kind}: the embedding was already disposed`);
  }
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.global.dispose();
    for (const l of this.layers.values()) for (const t of [l.q, l.k, l.v, l.feature]) t.dispose();
  }
}

export interface VisionLayerScores {
  layer: number;
  /** The AAS (aas.cosine is clip_cross_score / dino_cross_score). */
  aas: AasScores;
  /** clipfeats / dinofeats: cosine of the layer features. */
  feature: number;
}

export interface VisionScores {
  /** 100·cosine of the global features: CLIP-I or the DINOv2 score. */
  global: number;
  /** Per layer both embeddings hold, in layer order. */
  layers: VisionLayerScores[];
}

abstract class VisionMetric {
  constructor(
    readonly rt: Runtime,
    readonly processor: ImageProcessorConfig,
  ) {}

  abstract readonly kind: string;
  abstract readonly numLayers: number;
  protected abstract heads(): number;
  protected abstract patchSize(): number;
  /** The weight path of `layer`'s attention module. */
  protected abstract attentionModule(layer: number): string;
  /** Runs the encoder on pixels [1, 3, H, W]: the global feature and each layer's tensors. */
  protected abstract pass(pixels: Tensor, layers: readonly number[]): { global: Tensor; layers: Map<number, VisionLayerEmbedding> };
  /** Applied to each attention output before the AAS comparison. */
  protected project(_layer: number): ((o: Tensor) => Tensor) | undefined {
    return undefined;
  }

  /** The processor's pixel values of an image. */
  pixels(image: VisionInput): { data: Float32Array; width: number; height: number } {
    return image.data instanceof Float32Array ? (image as { data: Float32Array; width: number; height: number }) : imageProcessor(image as RgbImage, this.processor);
  }

  /** One pass over the image; `layers` (default: all) are the encoder layers kept for AAS and features. */
  embed(image: VisionInput, layers: readonly number[] = Array.from({ length: this.numLayers }, (_, i) => i)): VisionEmbedding {
    for (const l of layers) if (!Number.isInteger(l) || l < 0 || l >= this.numLayers) throw new RangeError(`${this.kind}: layer ${l} outside 0–${this.numLayers - 1}`);
    const px = this.pixels(image);
    if (px.data.length !== 3 * px.width * px.height) throw new RangeError(`${this.kind}: pixel values of ${px.data.length} values are not [1, 3, ${px.height}, ${px.width}]`);
    const out = tidy(() => this.pass(this.rt.upload(px.data, [1, 3, px.height, px.width]), [...new Set(layers)].sort((a, b) => a - b)));
    return new VisionEmbedding(this.kind, out.global, out.layers);
  }

  /** Where `layer`'s query tokens sit on a width×height image: the class token, then the patch
   *  grid of the processed (resized, centre-cropped) image; the grid's patches mapped back to
   *  the image give `region`. */
  attentionLayout(width: number, height: number, layer: number): AttentionLayout {
    const g = imageProcessorGeometry(width, height, this.processor);
    const p = this.patchSize();
    const gridWidth = Math.floor(g.crop.width / p);
    const gridHeight = Math.floor(g.crop.height / p);
    const sx = g.resized.width / width;
    const sy = g.resized.height / height;
    const region = { x: g.crop.left / sx, y: g.crop.top / sy, width: (gridWidth * p) / sx, height: (gridHeight * p) / sy };
    return { module: this.attentionModule(layer), prefix: 1, gridWidth, gridHeight, region };
  }

  /** The four attention outputs O_AB, O_AA, O_BA, O_BB of `layer` (CLIP: after out_proj). */
  attentionOutputs(a: VisionEmbedding, b: VisionEmbedding, layer: number): AasOutputs {
    const la = a.layers.get(layer);
    const lb = b.layers.get(layer);
    if (!la || !lb) throw new RangeError(`${this.kind}: layer ${layer} is not in both embeddings`);
    const project = this.project(layer);
    return aasOutputs(la, lb, { heads: this.heads(), ...(project ? { project } : {}) });
  }

  /** Every score of a pair (one read-back): the global score and, for each layer both hold, AAS and feature cosine. */
  async compare(a: VisionEmbedding, b: VisionEmbedding): Promise<VisionScores> {
    for (const e of [a, b]) {
      e.assertLive();
      if (e.kind !== this.kind) throw new Error(`${this.kind}: cannot compare an embedding made by ${e.kind}`);
    }
    const layers = [...a.layers.keys()].filter((l) => b.layers.has(l)).sort((x, y) => x - y);
    const { sums, counts } = tidy(() => {
      const parts: Tensor[] = [pairSums(a.global, b.global)];
      const counts: number[] = [];
      for (const l of layers) {
        // Per layer: the AAS pair sums [8], then the feature pair sums [4].
        const out = this.attentionOutputs(a, b, l);
        counts.push(out.ab.numel);
        parts.push(aasSums(out), pairSums(a.layers.get(l)!.feature, b.layers.get(l)!.feature));
      }
      return { sums: concat(parts, 0), counts };
    });
    let v: Float32Array;
    try {
      v = (await sums.read()) as Float32Array;
    } finally {
      sums.dispose();
    }
    const g = pairScore(v, 0, a.global.numel);
    const global = Math.fround(100 * g.cos);
    const scores = { global, layers: layers.map((layer, i) => ({ layer, aas: aasFromSums(v, counts[i]!, 4 + 12 * i), feature: pairScore(v, 12 + 12 * i, 1) })) };
    const sound = g.sound && Number.isFinite(global) && scores.layers.every((l) => l.aas.sound && l.feature.sound && Number.isFinite(l.aas.cosine) && Number.isFinite(l.feature.cos));
    if (!sound) {
      const values = [global, ...scores.layers.flatMap((l) => [l.aas.cosine, l.feature.cos])];
      await this.refuseNonFinite(a, b, layers, values.find((x) => !Number.isFinite(x)) ?? values[values.length > 1 ? 1 : 0]!);
    }
    return { global, layers: scores.layers.map((l) => ({ layer: l.layer, aas: l.aas, feature: l.feature.cos })) };
  }

  /** The model's folder (or file), for messages. */
  protected abstract modelStore(): WeightStore;
  /** What the metric is called in messages. */
  protected abstract readonly label: string;

  /** The failure path of `compare`: the first of the pair's tensors that holds a non-finite value
   *  (each layer's q/k/v and feature in layer order, then the global feature) is an error, and so
   *  is a score that is not finite; a finite score of degenerate (all-zero) tensors stands. */
  private async refuseNonFinite(a: VisionEmbedding, b: VisionEmbedding, layers: readonly number[], score: number): Promise<void> {
    const store = this.modelStore();
    const stages: Stage[] = [];
    for (const l of layers) {
      for (const [e, name] of [[a, 'A'], [b, 'B']] as const) {
        const t = e.layers.get(l)!;
        for (const [k, x] of [['queries', t.q], ['keys', t.k], ['values', t.v], ['features', t.feature]] as const) stages.push({ what: `layer ${l}'s ${k} for image ${name}`, store, tensor: x });
      }
    }
    stages.push({ what: 'the global feature of image A', store, tensor: a.global }, { what: 'the global feature of image B', store, tensor: b.global });
    const found = await firstBadStage(stages);
    if (found || !Number.isFinite(score)) throw nonFiniteError(this.label, score, found, folderOf(store, this.kind));
  }

  /** Embeds both images (only what `layers` needs) and compares them. */
  protected async pair(a: VisionInput, b: VisionInput, layers: readonly number[]): Promise<VisionScores> {
    const ea = this.embed(a, layers);
    try {
      const eb = this.embed(b, layers);
      try {
        return await this.compare(ea, eb);
      } finally {
        eb.dispose();
      }
    } finally {
      ea.dispose();
    }
  }

  /** The AAS in `layer` (higher = more similar). */
  async aas(a: VisionInput, b: VisionInput, layer: number): Promise<number> {
    return (await this.pair(a, b, [layer])).layers[0]!.aas.cosine;
  }

  /** The feature cosine of `layer` (clipfeats / dinofeats). */
  async featureScore(a: VisionInput, b: VisionInput, layer: number): Promise<number> {
    return (await this.pair(a, b, [layer])).layers[0]!.feature;
  }

  /** 100·cosine of the global features (CLIP-I / the DINOv2 score). */
  async globalScore(a: VisionInput, b: VisionInput): Promise<number> {
    return (await this.pair(a, b, [])).global;
  }
}

export interface ClipMetricOptions {
  /** Default: CLIPImageProcessor defaults (= openai/clip-vit-base-patch32's). */
  processor?: ImageProcessorConfig;
  /** Where CLIP AAS takes q/k/v from: the layer input before layer_norm1 (official) or its output. */
  qkvSource?: 'pre-ln' | 'post-ln';
}

/** CLIP-I, CLIP AAS (clip_cross) and clipfeats on a CLIP vision tower. */
export class ClipMetric extends VisionMetric {
  readonly vision: ClipVisionModel;
  readonly qkvSource: 'pre-ln' | 'post-ln';
  readonly kind: string;
  readonly numLayers: number;
  constructor(rt: Runtime, model: ClipVisionModel | ClipModel, o: ClipMetricOptions = {}) {
    super(rt, o.processor ?? CLIP_IMAGE_PROCESSOR);
    this.vision = model instanceof ClipModel ? model.vision : model;
    this.qkvSource = o.qkvSource ?? 'pre-ln';
    if (this.qkvSource !== 'pre-ln' && this.qkvSource !== 'post-ln') throw new RangeError(`CLIP metric: qkvSource must be 'pre-ln' or 'post-ln', got ${JSON.stringify(this.qkvSource)}`);
    this.kind = `clip (${this.qkvSource})`;
    this.numLayers = this.vision.layers.length;
  }
  protected readonly label = 'CLIP';
  protected modelStore(): WeightStore {
    return this.vision.store;
  }
  protected heads(): number {
    return this.vision.config.num_attention_heads;
  }
  protected patchSize(): number {
    return this.vision.config.patch_size;
  }
  protected attentionModule(layer: number): string {
    return this.vision.layers[layer]!.self_attn.q_proj.path.replace(/\.q_proj$/, '');
  }
  protected override project(layer: number): (o: Tensor) => Tensor {
    const outProj = this.vision.layers[layer]!.self_attn.out_proj;
    return (o) => outProj.forward(o);
  }
  protected pass(pixels: Tensor, layers: readonly number[]): { global: Tensor; layers: Map<number, VisionLayerEmbedding> } {
    const v = this.vision;
    const preLn = this.qkvSource === 'pre-ln';
    const attn = (l: number) => v.layers[l]!.self_attn;
    const projTaps = (l: number) => [attn(l).q_proj, attn(l).k_proj, attn(l).v_proj].map((p) => `${p.path}:out`);
    // hidden_states.L is layer L's input (the official q/k/v source), hidden_states.L+1 its output (the feature).
    const states = [...new Set(layers.flatMap((l) => (preLn ? [l, l + 1] : [l + 1])))];
    const globalName = v.visual_projection ? 'image_embeds' : 'pooler_output';
    const out = v.forward(pixels, { capture: [...states.map((i) => `hidden_states.${i}`), ...(preLn ? [] : layers.flatMap(projTaps)), globalName] });
    const get = (name: string) => adoptTap(out.taps.take(name));
    const hidden = new Map(states.map((i) => [i, get(`hidden_states.${i}`)]));
    const map = new Map<number, VisionLayerEmbedding>();
    for (const l of layers) {
      const a = attn(l);
      const x = hidden.get(l);
      const [q, k, vv] = preLn && x ? [a.q_proj.forward(x), a.k_proj.forward(x), a.v_proj.forward(x)] : (projTaps(l).map(get) as [Tensor, Tensor, Tensor]);
      map.set(l, { q, k, v: vv, feature: hidden.get(l + 1)! });
    }
    const global = get(globalName);
    out.taps.dispose();
    return { global, layers: map };
  }

  /** CLIP-I: 100·cosine of the projected CLS features. */
  clipI(a: VisionInput, b: VisionInput): Promise<number> {
    return this.globalScore(a, b);
  }
}

/** The DINOv2 CLS cosine, DINOv2 AAS (dino_cross) and dinofeats on a Dinov2Model. */
export class Dinov2Metric extends VisionMetric {
  readonly kind = 'dinov2';
  readonly numLayers: number;
  constructor(
    rt: Runtime,
    readonly model: Dinov2Model,
    o: { processor?: ImageProcessorConfig } = {},
  ) {
    super(rt, o.processor ?? DINOV2_IMAGE_PROCESSOR);
    this.numLayers = model.layers.length;
  }
  protected readonly label = 'DINOv2';
  protected modelStore(): WeightStore {
    return this.model.store;
  }
  protected heads(): number {
    return this.model.config.num_attention_heads;
  }
  protected patchSize(): number {
    return this.model.config.patch_size;
  }
  protected attentionModule(layer: number): string {
    return this.model.layers[layer]!.query.path.replace(/\.query$/, '');
  }
  protected pass(pixels: Tensor, layers: readonly number[]): { global: Tensor; layers: Map<number, VisionLayerEmbedding> } {
    const m = this.model;
    const names = (l: number) => {
      const x = m.layers[l]!;
      return [`${x.query.path}:out`, `${x.key.path}:out`, `${x.value.path}:out`, `${x.dense.path}:in`];
    };
    const out = m.forward(pixels, { capture: [...layers.flatMap(names), 'pooler_output'] });
    const get = (name: string) => adoptTap(out.taps.take(name));
    const map = new Map<number, VisionLayerEmbedding>();
    for (const l of layers) {
      const [q, k, v, feature] = names(l).map(get) as [Tensor, Tensor, Tensor, Tensor];
      map.set(l, { q, k, v, feature });
    }
    const global = get('pooler_output');
    out.taps.dispose();
    return { global, layers: map };
  }
}
