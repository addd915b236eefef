// The perceptual baselines of the DiffSim paper's Table 1 behind the Metric interface:
//  - lpips: LPIPS v0.1 (the `lpips` package) on VGG16 (DiffSim's `lpips.LPIPS(net='vgg')`) or
//    AlexNet; inputs as DiffSim gives them, process_image(img, 512) in [−1, 1] with normalize=False
//    (or [0, 1] with `normalize`). A distance: lower = more similar. The embedding of an image is
//    its five unit-normalised slice features; the distance of two is computed from those.
//  - gram: metrics/vgg_gram.py: its own loader (no EXIF transpose; shorter side to the image size,
//    PIL bilinear; ImageNet normalisation), VGG19 conv5_1 before its ReLU, the unnormalised Gram
//    matrix; the score is the cosine of the Gram matrices' last rows (official) or of the whole
//    matrices (`rows: 'all'`). Higher = more similar. The embedding is the Gram matrix.

import { tidy, type Runtime, type Tensor } from '../gpu/runtime.js';
import { decodeImageSamples, toRgb, type RgbImage } from '../io/image.js';
import { processImage, processImageUnit, vggGramImage } from '../io/preprocess.js';
import type { SafetensorsFile } from '../io/safetensors.js';
import { gramForward, GRAM_LAYER, type LpipsModel, type TorchvisionFeatures } from '../models/vgg.js';
import type { ImageRole } from './embedding.js';
import { firstNonFinite, NonFiniteScoreError } from './finite.js';
import { DiffSimSettingsError, PERCEPTUAL_DEFAULTS } from './settings.js';
import { BaseMetric, cosine64, type MetricOwner } from './metrics.js';
import { decodeImageInput, type GramOptions, type ImageInput, type LpipsOptions, type MetricEmbedding } from './metric-api.js';

export const GRAM_ROWS = ['last', 'all'] as const;
/** What the Gram score is (a fact of the metric, not a setting). */
export const GRAM_SCORE = 'cosine';

function checkSize(metric: string, size: number): number {
  if (!Number.isInteger(size) || size < 16 || size > 4096) throw new DiffSimSettingsError(`${metric}: imageSize ${size} must be an integer within 16–4096`);
  return size;
}

class LpipsEmbedding implements MetricEmbedding {
  readonly metric = 'lpips' as const;
  private disposed = false;
  constructor(
    readonly key: string,
    readonly role: ImageRole,
    /** The five unit-normalised slice features, [1, C_k, h_k, w_k]. */
    readonly normed: readonly Tensor[],
  ) {}
  assertLive(): void {
    if (this.disposed) throw new Error('lpips: the embedding was already disposed');
  }
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    for (const t of this.normed) t.dispose();
  }
}

export class LpipsMetric extends BaseMetric<LpipsEmbedding> {
  readonly name = 'lpips' as const;
  readonly lowerBetter = true;
  readonly roleDependent = false;
  readonly key: string;
  readonly normalize: boolean;
  readonly imageSize: number;
  constructor(
    rt: Runtime,
    owner: MetricOwner,
    readonly model: LpipsModel,
    o: LpipsOptions,
    readonly settings: Readonly<Record<string, unknown>>,
    models: string,
  ) {
    super(rt, owner);
    this.normalize = o.normalize ?? PERCEPTUAL_DEFAULTS.lpips.normalize;
    this.imageSize = checkSize('lpips', o.imageSize ?? PERCEPTUAL_DEFAULTS.lpips.imageSize);
    this.key = `lpips ${JSON.stringify({ net: model.net, imageSize: this.imageSize, normalize: this.normalize })} ${models}`;
  }
  protected isOwn(e: MetricEmbedding): e is LpipsEmbedding {
    return e instanceof LpipsEmbedding && e.key === this.key;
  }
  /** The network input of an image: [1, 3, S, S] in [−1, 1] (or [0, 1] with normalize). */
  input(image: RgbImage): Float32Array {
    return this.normalize ? processImageUnit(image, this.imageSize) : processImage(image, this.imageSize);
  }
  protected async embedImage(image: RgbImage, role: ImageRole): Promise<LpipsEmbedding> {
    const s = this.imageSize;
    const x = this.runtime.upload(this.input(image), [1, 3, s, s]);
    try {
      const normed = tidy(() => this.model.forward(x, this.normalize).normed);
      return new LpipsEmbedding(this.key, role, normed.map((t) => t.keep()));
    } finally {
      x.dispose();
    }
  }
  protected async compareOwn(a: LpipsEmbedding, b: LpipsEmbedding): Promise<number> {
    a.assertLive();
    b.assertLive();
    const { layers, distance } = await this.model.distance(a.normed, b.normed);
    if (!Number.isFinite(distance)) {
      const k = layers.findIndex((v) => !Number.isFinite(v));
      throw new NonFiniteScoreError(String((this.settings.models as Record<string, { path?: string }> | undefined)?.lpips?.path ?? 'lpips'), `lpips gave no finite distance (${distance}; layer ${k}: ${layers[k]}): non-finite weights or features`, `lin${k}`);
    }
    return distance;
  }
  protected async tensorsOf(e: LpipsEmbedding) {
    e.assertLive();
    const out: Record<string, { shape: readonly number[]; data: Float32Array }> = {};
    for (const [k, t] of e.normed.entries()) out[`normed.${k}`] = { shape: t.shape, data: (await t.read()) as Float32Array };
    return out;
  }
  protected async fromTensors(file: SafetensorsFile, role: ImageRole): Promise<LpipsEmbedding> {
    const up: Tensor[] = [];
    try {
      for (let k = 0; k < this.model.sliceEnds.length; k++) {
        const { shape, data } = await file.readFloat32(`normed.${k}`);
        up.push(this.runtime.upload(data, shape).keep());
      }
    } catch (e) {
      for (const t of up) t.dispose();
      throw e;
    }
    return new LpipsEmbedding(this.key, role, up);
  }
}

class GramEmbedding implements MetricEmbedding {
  readonly metric = 'gram' as const;
  constructor(
    readonly key: string,
    readonly role: ImageRole,
    /** The Gram matrix [C, C] on the host. */
    readonly gram: Float32Array,
    readonly channels: number,
  ) {}
  dispose(): void {}
}

export class GramMetric extends BaseMetric<GramEmbedding> {
  readonly name = 'gram' as const;
  readonly lowerBetter = false;
  readonly roleDependent = false;
  readonly key: string;
  readonly rows: 'last' | 'all';
  readonly imageSize: number;
  constructor(
    rt: Runtime,
    owner: MetricOwner,
    readonly features: TorchvisionFeatures,
    o: GramOptions,
    readonly settings: Readonly<Record<string, unknown>>,
    models: string,
  ) {
    super(rt, owner);
    const rows = o.rows ?? PERCEPTUAL_DEFAULTS.gram.rows;
    if (!(GRAM_ROWS as readonly string[]).includes(rows)) throw new DiffSimSettingsError(`gram: rows must be 'last' or 'all', got ${JSON.stringify(rows)}`);
    this.rows = rows;
    this.imageSize = checkSize('gram', o.imageSize ?? PERCEPTUAL_DEFAULTS.gram.imageSize);
    // The rows compared are not part of the embedding (the Gram matrix): either option compares it.
    this.key = `gram ${JSON.stringify({ layer: GRAM_LAYER, imageSize: this.imageSize })} ${models}`;
  }
  /** vgg_gram.py's loader: `Image.open(path).convert('RGB')`, no EXIF transpose (decoded pixels
   *  are taken as they are). */
  protected override async decode(input: ImageInput, name: string): Promise<RgbImage> {
    let bytes: Uint8Array | undefined;
    if (typeof input === 'string') {
      if (!this.owner.readBytes) return decodeImageInput(input, name, this.owner.readPath);
      bytes = await this.owner.readBytes(input);
    } else if (input instanceof Uint8Array) bytes = input;
    else if (input instanceof ArrayBuffer) bytes = new Uint8Array(input);
    if (!bytes) return decodeImageInput(input, name);
    return toRgb(decodeImageSamples(bytes, name));
  }
  protected isOwn(e: MetricEmbedding): e is GramEmbedding {
    return e instanceof GramEmbedding && e.key === this.key;
  }
  protected async embedImage(image: RgbImage, role: ImageRole): Promise<GramEmbedding> {
    const x = vggGramImage(image, this.imageSize);
    const input = this.runtime.upload(x.data, [1, 3, x.height, x.width]);
    let gram: Tensor | undefined;
    try {
      gram = tidy(() => gramForward(this.features, input).gram);
      const g = (await gram.read()) as Float32Array;
      const bad = firstNonFinite(g);
      if (bad !== undefined) throw new NonFiniteScoreError(String((this.settings.models as Record<string, { path?: string }> | undefined)?.vgg?.path ?? 'vgg'), `gram: the Gram matrix of image ${role} is not finite (${bad}): non-finite weights or overflow`, 'gram');
      return new GramEmbedding(this.key, role, g, gram.shape[0]!);
    } finally {
      input.dispose();
      gram?.dispose();
    }
  }
  /** The vectors compared: the last row, or the whole matrix. */
  vectorOf(e: GramEmbedding): Float32Array {
    return this.rows === 'last' ? e.gram.subarray((e.channels - 1) * e.channels) : e.gram;
  }
  protected async compareOwn(a: GramEmbedding, b: GramEmbedding): Promise<number> {
    if (a.channels !== b.channels) throw new DiffSimSettingsError(`gram: Gram matrices of ${a.channels} and ${b.channels} channels`);
    return cosine64(this.vectorOf(a), this.vectorOf(b));
  }
  protected async tensorsOf(e: GramEmbedding) {
    return { gram: { shape: [e.channels, e.channels], data: e.gram } };
  }
  protected async fromTensors(file: SafetensorsFile, role: ImageRole): Promise<GramEmbedding> {
    const { shape, data } = await file.readFloat32('gram');
    if (shape.length !== 2 || shape[0] !== shape[1]) throw new DiffSimSettingsError(`gram: a stored Gram matrix of shape [${shape.join(', ')}] is not square`);
    return new GramEmbedding(this.key, role, data, shape[0]!);
  }
}
