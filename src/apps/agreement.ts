// Where two images agree under an AAS metric: for each query token of image A, the cosine between
// its aligned output O_AB (A's queries on B's keys and values) and its self output O_AA (A's
// queries on its own keys and values) in the metric's attention layer. The pair's AAS compares the
// same two tensors as a whole; the map keeps one value per token, averaged over the scored batch
// elements (DiffSim's CFG halves), laid out on the token grid and upsampled to A's size.
//
// The per-token cosines are computed on the GPU (`rowCosine`, one workgroup per token) and read
// back once: [B, N] values instead of the two [B, N, C] outputs.
//
// This module runs anywhere (no file system, no PNG encoder): the map and its picture as RGBA
// pixels, which `diffsim map` writes as a PNG (map.ts) and the browser page draws on a canvas.

import { tidy, type Tensor } from '../gpu/runtime.js';
import { rowCosine } from '../kernels/reduce.js';
import { loadImage, type RgbImage } from '../io/image.js';
import { resizeImage } from '../io/resample.js';
import type { AasOutputs, AttentionLayout } from '../diffsim/aas.js';
import { decodeImageInput, type ImageInput, type ImagePathReader, type Metric, type MetricEmbedding, type MetricName } from '../diffsim/metric-api.js';

/** The metrics with attention outputs, the ones that have an agreement map. */
export const AGREEMENT_METRICS = Object.freeze(['diffsim', 'diffsim-c', 'clip-aas', 'dino-aas'] as const);

export interface AgreementMap {
  metric: MetricName;
  /** The attention module whose query tokens the map shows. */
  module: string;
  /** The metric's layer setting (DiffSim: in its block; CLIP/DINOv2: the encoder layer). */
  layer: number | undefined;
  /** Query tokens N of the layer, `prefix` of them (the ViTs' class token) not on the grid. */
  tokens: number;
  prefix: number;
  /** Batch elements averaged (DiffSim: the scored CFG halves; the ViTs: 1). */
  halves: number;
  /** Per-token cosine on the token grid, gridHeight × gridWidth, row-major. */
  grid: Float32Array;
  gridWidth: number;
  gridHeight: number;
  /** The part of A the grid covers (A's pixel coordinates): all of A for DiffSim, the
   *  processor's centre crop for the ViTs. */
  region: { x: number; y: number; width: number; height: number };
  /** A's size. */
  width: number;
  height: number;
  /** The grid upsampled to width × height, row-major: bilinear with half-pixel centres
   *  (align_corners=False, edges clamped, as torch's F.interpolate) over `region`; NaN for pixels
   *  outside it. */
  values: Float32Array;
  /** Over the grid. */
  min: number;
  max: number;
  mean: number;
}

function aasOf(metric: Metric): { outputs: (a: MetricEmbedding, b: MetricEmbedding) => AasOutputs; layout: (w: number, h: number, n: number) => AttentionLayout } {
  if (!metric.attentionOutputs || !metric.attentionLayout) {
    throw new RangeError(`agreement map: metric ${metric.name} has no attention outputs (one of ${AGREEMENT_METRICS.join(', ')})`);
  }
  return { outputs: metric.attentionOutputs.bind(metric), layout: metric.attentionLayout.bind(metric) };
}

/** cos(O_AB, O_AA) per query token, [B, N] (B: the scored batch elements; all N tokens, the ViTs'
 *  class token first): a tensor of the current tidy (the caller's outside any). */
export function agreementTensor(metric: Metric, a: MetricEmbedding, b: MetricEmbedding): Tensor {
  const { outputs } = aasOf(metric);
  return tidy(() => {
    const o = outputs(a, b);
    return rowCosine(o.ab, o.aa);
  });
}

/** The grid of per-token values `raw` [halves, tokens]: the prefix dropped, the halves averaged
 *  (float64, stored as float32). */
export function tokenGrid(raw: ArrayLike<number>, halves: number, tokens: number, layout: Pick<AttentionLayout, 'prefix' | 'gridWidth' | 'gridHeight'>): Float32Array {
  const n = layout.gridWidth * layout.gridHeight;
  if (raw.length !== halves * tokens || tokens !== layout.prefix + n) throw new RangeError(`agreement map: ${raw.length} values are not [${halves}, ${layout.prefix} + ${layout.gridHeight}×${layout.gridWidth}]`);
  const grid = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let h = 0; h < halves; h++) s += raw[h * tokens + layout.prefix + i]!;
    grid[i] = s / halves;
  }
  return grid;
}

/** Bilinear upsampling of a gridHeight×gridWidth grid to width×height pixels, the grid covering
 *  `region` (default the whole picture): pixel (x, y) samples the grid at
 *  ((x + ½ − region.x)·gridWidth/region.width − ½, …), clamped to the grid (align_corners=False);
 *  pixels whose centre lies outside the region are NaN. */
export function upsampleGrid(
  grid: ArrayLike<number>,
  gridWidth: number,
  gridHeight: number,
  width: number,
  height: number,
  region: { x: number; y: number; width: number; height: number } = { x: 0, y: 0, width, height },
): Float32Array {
  if (grid.length !== gridWidth * gridHeight || gridWidth < 1 || gridHeight < 1) throw new RangeError(`upsampleGrid: ${grid.length} values are not a ${gridHeight}×${gridWidth} grid`);
  const out = new Float32Array(width * height);
  const axis = (size: number, start: number, extent: number, cells: number) => {
    const i0 = new Int32Array(size);
    const i1 = new Int32Array(size);
    const w = new Float64Array(size);
    const inside = new Uint8Array(size);
    for (let p = 0; p < size; p++) {
      const c = p + 0.5;
      if (c < start || c >= start + extent) continue;
      inside[p] = 1;
      const g = Math.min(Math.max(((c - start) * cells) / extent - 0.5, 0), cells - 1);
      i0[p] = Math.floor(g);
      i1[p] = Math.min(i0[p]! + 1, cells - 1);
      w[p] = g - i0[p]!;
    }
    return { i0, i1, w, inside };
  };
  const X = axis(width, region.x, region.width, gridWidth);
  const Y = axis(height, region.y, region.height, gridHeight);
  for (let y = 0; y < height; y++) {
    const r0 = Y.i0[y]! * gridWidth;
    const r1 = Y.i1[y]! * gridWidth;
    const wy = Y.w[y]!;
    for (let x = 0; x < width; x++) {
      if (!Y.inside[y] || !X.inside[x]) {
        out[y * width + x] = NaN;
        continue;
      }
      const x0 = X.i0[x]!;
      const x1 = X.i1[x]!;
      const wx = X.w[x]!;
      const top = grid[r0 + x0]! * (1 - wx) + grid[r0 + x1]! * wx;
      const bottom = grid[r1 + x0]! * (1 - wx) + grid[r1 + x1]! * wx;
      out[y * width + x] = top * (1 - wy) + bottom * wy;
    }
  }
  return out;
}

/** The agreement map of A (embedded in role A, `imageA` its pixels' size) against B (embedded in
 *  role B), from the two embeddings (which stay the caller's): what `metric.compare(a, b)` scores,
 *  token by token. */
export async function agreementFromEmbeddings(metric: Metric, a: MetricEmbedding, b: MetricEmbedding, imageA: { width: number; height: number }): Promise<AgreementMap> {
  const { layout } = aasOf(metric);
  const t = agreementTensor(metric, a, b);
  const [halves, tokens] = t.shape as [number, number];
  let raw: Float32Array;
  try {
    raw = (await t.read()) as Float32Array;
  } finally {
    t.dispose();
  }
  const { width, height } = imageA;
  const l = layout(width, height, tokens);
  const grid = tokenGrid(raw, halves, tokens, l);
  let min = Infinity;
  let max = -Infinity;
  let sum = 0;
  for (const v of grid) {
    if (v < min) min = v;
    if (v > max) max = v;
    sum += v;
  }
  const layer = metric.settings.layer;
  return {
    metric: metric.name,
    module: l.module,
    layer: typeof layer === 'number' ? layer : undefined,
    tokens,
    prefix: l.prefix,
    halves,
    grid,
    gridWidth: l.gridWidth,
    gridHeight: l.gridHeight,
    region: l.region,
    width,
    height,
    values: upsampleGrid(grid, l.gridWidth, l.gridHeight, width, height, l.region),
    min,
    max,
    mean: sum / grid.length,
  };
}

/** The agreement map of A against B (A embedded in role A, B in role B, as `metric.score(a, b)`).
 *  Images are encoded bytes or pixels; a path needs `readPath` (Node: eval/map.ts's agreementMap). */
/** Image paths are read where the host has a file system (Node, Deno); in browsers images are
 *  bytes or pixels. */
const HOST_READS_FILES = typeof (globalThis as { process?: { versions?: { node?: unknown } } }).process?.versions?.node === 'string' || 'Deno' in globalThis;

/** The agreement map of A against B (A embedded in role A, B in role B, as `metric.score(a, b)`);
 *  images are encoded bytes or pixels, or paths where the host has a file system. */
export async function agreementMap(metric: Metric, a: ImageInput, b: ImageInput, readPath: ImagePathReader | undefined = HOST_READS_FILES ? (path) => loadImage(path) : undefined): Promise<AgreementMap> {
  aasOf(metric);
  const ia = await decodeImageInput(a, typeof a === 'string' ? a : 'image A', readPath);
  const ib = await decodeImageInput(b, typeof b === 'string' ? b : 'image B', readPath);
  const ea = await metric.embed(ia, 'A');
  try {
    const eb = await metric.embed(ib, 'B');
    try {
      return await agreementFromEmbeddings(metric, ea, eb, ia);
    } finally {
      eb.dispose();
    }
  } finally {
    ea.dispose();
  }
}

// viridis (matplotlib's, CC0), 256 entries of 8-bit RGB.
const VIRIDIS_HEX =
  '44015444025645045745055946075a46085c460a5d460b5e470d60470e61471063471164471365481467481668481769' +
  '48186a481a6c481b6d481c6e481d6f481f70482071482173482374482475482576482677482878482979472a7a472c7a' +
  '472d7b472e7c472f7d46307e46327e46337f463480453581453781453882443983443a83443b84433d84433e85423f85' +
  '4240864241864142874144874045884046883f47883f48893e49893e4a893e4c8a3d4d8a3d4e8a3c4f8a3c508b3b518b' +
  '3b528b3a538b3a548c39558c39568c38588c38598c375a8c375b8d365c8d365d8d355e8d355f8d34608d34618d33628d' +
  '33638d32648e32658e31668e31678e31688e30698e306a8e2f6b8e2f6c8e2e6d8e2e6e8e2e6f8e2d708e2d718e2c718e' +
  '2c728e2c738e2b748e2b758e2a768e2a778e2a788e29798e297a8e297b8e287c8e287d8e277e8e277f8e27808e26818e' +
  '26828e26828e25838e25848e25858e24868e24878e23888e23898e238a8d228b8d228c8d228d8d218e8d218f8d21908d' +
  '21918c20928c20928c20938c1f948c1f958b1f968b1f978b1f988b1f998a1f9a8a1e9b8a1e9c891e9d891f9e891f9f88' +
  '1fa0881fa1881fa1871fa28720a38620a48621a58521a68522a78522a88423a98324aa8325ab8225ac8226ad8127ad81' +
  '28ae8029af7f2ab07f2cb17e2db27d2eb37c2fb47c31b57b32b67a34b67935b77937b87838b9773aba763bbb753dbc74' +
  '3fbc7340bd7242be7144bf7046c06f48c16e4ac16d4cc26c4ec36b50c46a52c56954c56856c66758c7655ac8645cc863' +
  '5ec96260ca6063cb5f65cb5e67cc5c69cd5b6ccd5a6ece5870cf5773d05675d05477d1537ad1517cd2507fd34e81d34d' +
  '84d44b86d54989d5488bd6468ed64590d74393d74195d84098d83e9bd93c9dd93ba0da39a2da37a5db36a8db34aadc32' +
  'addc30b0dd2fb2dd2db5de2bb8de29bade28bddf26c0df25c2df23c5e021c8e020cae11fcde11dd0e11cd2e21bd5e21a' +
  'd8e219dae319dde318dfe318e2e418e5e419e7e419eae51aece51befe51cf1e51df4e61ef6e620f8e621fbe723fde725';
const VIRIDIS = Uint8Array.from({ length: 768 }, (_, i) => parseInt(VIRIDIS_HEX.slice(2 * i, 2 * i + 2), 16));

/** The viridis colour of t ∈ [0, 1] (clamped), linearly interpolated between the 256 entries. */
export function viridis(t: number): [number, number, number] {
  const x = Math.min(Math.max(Number.isNaN(t) ? 0 : t, 0), 1) * 255;
  const i = Math.min(Math.floor(x), 254);
  const f = x - i;
  const c = (k: number) => VIRIDIS[3 * i + k]! * (1 - f) + VIRIDIS[3 * (i + 1) + k]! * f;
  return [c(0), c(1), c(2)];
}

export interface RenderOptions {
  /** The values at the bottom and top of the colour scale (default the map's [min, max]). */
  range?: readonly [number, number];
  /** Opacity of the colour overlay on A (default 0.55). */
  alpha?: number;
}

/** Fixed parts of the picture, in pixels: the gaps between the panels, the colour bar's width and
 *  its ticks' length. */
export const RENDER_LAYOUT = Object.freeze({ gap: 4, bar: 12, tick: 4 });

/** Where the panels of `renderAgreement` go for A of width×height and B of bWidth×bHeight:
 *  A at x 0, B (scaled to A's height, aspect kept) at `bX`, the bar at `barX`, its ticks at `tickX`. */
export function renderLayout(width: number, height: number, bWidth: number, bHeight: number) {
  const { gap, bar, tick } = RENDER_LAYOUT;
  const scaledB = Math.max(1, Math.round((bWidth * height) / bHeight));
  const bX = width + gap;
  const barX = bX + scaledB + gap;
  const tickX = barX + bar;
  return { width: tickX + tick, height, bX, bWidth: scaledB, barX, tickX };
}

const BACKGROUND = 255;
const INK = 32;

/** The picture of a map as RGBA pixels (what the PNG and the page's canvas show). */
export interface AgreementPicture {
  width: number;
  height: number;
  /** width × height × 4 bytes, row-major RGBA, every alpha 255. */
  data: Uint8ClampedArray<ArrayBuffer>;
  /** The colour scale's [low, high]: the bar's bottom and top. */
  range: [number, number];
  /** The bar's ticks: their row and the value each marks (top = high, middle, bottom = low). */
  ticks: { y: number; value: number }[];
  /** Where the panels are (renderLayout). */
  layout: ReturnType<typeof renderLayout>;
}

/** The map's picture: A with the map over it in viridis (pixels outside the map's region
 *  darkened), B scaled to A's height, and a colour bar from the range's low value (bottom) to its
 *  high value (top) with ticks at 0, ½ and 1 of the range. */
export function agreementPixels(map: AgreementMap, imageA: RgbImage, imageB: RgbImage, o: RenderOptions = {}): AgreementPicture {
  const { width: W, height: H } = map;
  if (imageA.width !== W || imageA.height !== H) throw new RangeError(`renderAgreement: image A is ${imageA.width}×${imageA.height}, the map ${W}×${H}`);
  if (!(imageB.width > 0 && imageB.height > 0)) throw new RangeError(`renderAgreement: image B is empty (${imageB.width}×${imageB.height})`);
  const [lo, hi] = o.range ?? [map.min, map.max];
  if (!Number.isFinite(lo) || !Number.isFinite(hi) || lo > hi || (o.range && lo === hi)) throw new RangeError(`renderAgreement: range [${lo}, ${hi}] must be two finite numbers, low < high`);
  const alpha = o.alpha ?? 0.55;
  if (!(alpha >= 0 && alpha <= 1)) throw new RangeError(`renderAgreement: alpha ${alpha} outside [0, 1]`);
  // A constant map (lo = hi) is drawn in the scale's middle colour.
  const scale = (v: number) => (hi > lo ? (v - lo) / (hi - lo) : 0.5);
  const L = renderLayout(W, H, imageB.width, imageB.height);
  const px = new Uint8ClampedArray(L.width * H * 4).fill(BACKGROUND);
  const put = (x: number, y: number, r: number, g: number, b: number) => {
    const i = (y * L.width + x) * 4;
    px[i] = Math.round(r);
    px[i + 1] = Math.round(g);
    px[i + 2] = Math.round(b);
    px[i + 3] = 255;
  };
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      const s = (y * W + x) * 3;
      const [r, g, b] = [imageA.data[s]!, imageA.data[s + 1]!, imageA.data[s + 2]!];
      const v = map.values[y * W + x]!;
      if (Number.isNaN(v)) put(x, y, r * 0.5, g * 0.5, b * 0.5);
      else {
        const c = viridis(scale(v));
        put(x, y, (1 - alpha) * r + alpha * c[0], (1 - alpha) * g + alpha * c[1], (1 - alpha) * b + alpha * c[2]);
      }
    }
  }
  const sb = imageB.width === L.bWidth && imageB.height === H ? imageB : resizeImage(imageB, L.bWidth, H, 'bicubic');
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < L.bWidth; x++) {
      const s = (y * L.bWidth + x) * 3;
      put(L.bX + x, y, sb.data[s]!, sb.data[s + 1]!, sb.data[s + 2]!);
    }
  }
  for (let y = 0; y < H; y++) {
    const c = viridis(H > 1 ? 1 - y / (H - 1) : 1);
    for (let x = 0; x < RENDER_LAYOUT.bar; x++) put(L.barX + x, y, c[0], c[1], c[2]);
  }
  const rows = [...new Set([0, Math.round((H - 1) / 2), H - 1])];
  for (const y of rows) for (let x = 0; x < RENDER_LAYOUT.tick; x++) put(L.tickX + x, y, INK, INK, INK);
  // The value at a tick's row: the bar maps row y to 1 − y/(H − 1) of the range.
  const ticks = rows.map((y) => ({ y, value: H > 1 ? lo + (hi - lo) * (1 - y / (H - 1)) : hi }));
  return { width: L.width, height: H, data: px, range: [lo, hi], ticks, layout: L };
}
