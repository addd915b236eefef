// Consistency of a frame sequence (the paper's video experiment, Table 4): the first frame is the
// anchor (role A) and every other frame is scored against it (role B); per metric, the mean of
// those scores and their population variance (divided by n, numpy's default) over n = frames − 1.
//
// Frames are the image files directly in the folder (.png .jpg .jpeg .bmp, any case; sub-folders
// are not read), in natural order: runs of digits compare as numbers, so frame2 comes before
// frame10 (see naturalCompare).

import { toRgbImage, type Metric, type MetricEmbedding } from '../diffsim/metric.js';
import { FileError } from '../io/errors.js';
import { IMAGE_EXTENSIONS, listImages, naturalCompare } from './images.js';

export interface VideoOptions {
  /** Called once with done 0 once the anchor is embedded, then after each frame (all metrics). */
  onProgress?: (p: { done: number; total: number; frame: string | null }) => void;
}

export interface ScoreSummary {
  mean: number;
  /** Population variance: Σ(x − mean)² / n. */
  variance: number;
  /** √variance. */
  std: number;
  n: number;
}

export interface MetricConsistency extends ScoreSummary {
  lowerBetter: boolean;
  /** score(frames[0], frames[i]) for i = 1 … n, in frame order. */
  scores: number[];
}

export interface VideoConsistency {
  dir: string;
  /** The frame paths in order; the first is the anchor. */
  frames: string[];
  /** By metric name. */
  metrics: Record<string, MetricConsistency>;
  /** Each metric's settings, by name. */
  settings: Record<string, Readonly<Record<string, unknown>>>;
}

/** Mean, population variance and standard deviation (two passes, float64). */
export function summarise(scores: readonly number[]): ScoreSummary {
  const n = scores.length;
  if (!n) return { mean: NaN, variance: NaN, std: NaN, n };
  let sum = 0;
  for (const x of scores) sum += x;
  const mean = sum / n;
  let ss = 0;
  for (const x of scores) ss += (x - mean) * (x - mean);
  const variance = ss / n;
  return { mean, variance, std: Math.sqrt(variance), n };
}

/** The frames of `dir` in natural order. */
export async function listFrames(dir: string): Promise<string[]> {
  const listed = await listImages(dir);
  return listed.sort((a, b) => naturalCompare(a.rel, b.rel)).map((x) => x.path);
}

/** Scores every frame after the first against the first, with each metric (each embeds the anchor
 *  once; each frame is decoded once for all metrics). */
export async function videoConsistency(metrics: readonly Metric[], dir: string, o: VideoOptions = {}): Promise<VideoConsistency> {
  if (!metrics.length) throw new RangeError('videoConsistency: no metric given');
  const names = metrics.map((m) => m.name);
  const twice = names.find((x, i) => names.indexOf(x) !== i);
  if (twice) throw new RangeError(`videoConsistency: metric ${twice} given twice`);
  const frames = await listFrames(dir);
  if (frames.length < 2) throw new FileError(dir, `a frame sequence needs at least 2 images (${IMAGE_EXTENSIONS.join(' ')}), found ${frames.length}`);

  const first = await toRgbImage(frames[0]!, frames[0]!);
  const anchors: MetricEmbedding[] = [];
  const scores: number[][] = metrics.map(() => []);
  try {
    for (const m of metrics) anchors.push(await m.embed(first, 'A'));
    const total = frames.length - 1;
    o.onProgress?.({ done: 0, total, frame: null });
    for (let i = 1; i < frames.length; i++) {
      const img = await toRgbImage(frames[i]!, frames[i]!);
      for (let j = 0; j < metrics.length; j++) {
        const e = await metrics[j]!.embed(img, 'B');
        try {
          scores[j]!.push(await metrics[j]!.compare(anchors[j]!, e));
        } finally {
          e.dispose();
        }
      }
      o.onProgress?.({ done: i, total, frame: frames[i]! });
    }
  } finally {
    for (const a of anchors) a.dispose();
  }
  const out: Record<string, MetricConsistency> = {};
  const settings: Record<string, Readonly<Record<string, unknown>>> = {};
  metrics.forEach((m, j) => {
    out[m.name] = { ...summarise(scores[j]!), lowerBetter: m.lowerBetter, scores: scores[j]! };
    settings[m.name] = m.settings;
  });
  return { dir, frames, metrics: out, settings };
}
