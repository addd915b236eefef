// `diffsim eval video DIR`: the consistency of a frame sequence (first frame against every other one)
// under one or more metrics, with the mean, the population variance and the count per metric.

import { outputTarget, writeFileAtomic } from '../io/atomic.js';
import { listFrames, videoConsistency } from '../apps/video.js';
import { toRgbImage } from '../diffsim/metric.js';
import { FileError } from '../io/errors.js';
import { IMAGE_EXTENSIONS } from '../apps/images.js';
import { closeMetrics, openMetrics, parseCommand } from './metric-options.js';
import { UsageError } from './errors.js';
import { printJson, PRETTY_USAGE } from './json.js';
import { ItemProgress } from './progress.js';
import { basename } from 'node:path';

export const VIDEO_USAGE = `  eval video DIR [--metric M[,M…]] [--json] [--out FILE.jsonl] [metric options]
                           consistency of the frames in DIR (.png .jpg .jpeg .bmp, natural order:
                           frame2 before frame10): the first frame (role A) scored against every other
                           one (role B); per metric the mean, the population variance (÷ n), the
                           standard deviation and n. --metric takes a comma list (diffsim,clip,dino),
                           all loaded once on one GPU; the other options apply to the metrics they fit
    --json                 one line on stdout, one JSON object: { dir, frames, metrics: { name: { mean,
                           variance, std, n, scores } }, settings }
${PRETTY_USAGE}
    --out FILE.jsonl       one JSON row per scored frame: { index, frame, scores: { metric: score } }`;

export async function videoCommand(args: string[]): Promise<number> {
  const p = parseCommand('eval video', args, { valueOptions: ['out'], flags: ['json'], metricList: true });
  if (p.positional.length !== 1) throw new UsageError(`eval video: expected one DIR of frames, got ${p.positional.length} arguments${p.positional.length ? ` (${p.positional.join(' ')})` : ''}`);
  const dir = p.positional[0]!;
  const out = p.options.get('out');
  if (out === '') throw new UsageError('eval video: --out needs a file name');
  // A folder, block device or socket is refused before any model is loaded (io/atomic.ts's rules).
  if (out !== undefined) outputTarget(out);

  // The frames are listed and the anchor decoded before any model is loaded.
  const frames = await listFrames(dir);
  if (frames.length < 2) throw new FileError(dir, `a frame sequence needs at least 2 images (${IMAGE_EXTENSIONS.join(' ')}), found ${frames.length}`);
  await toRgbImage(frames[0]!);

  const started = performance.now();
  const metrics = await openMetrics('eval video', p.metric);
  try {
    let progress: ItemProgress | undefined;
    // The closing progress line also on an error: how far it got (and a terminal's redrawn line ended).
    const r = await videoConsistency(metrics, dir, {
      onProgress: ({ done, total }) => {
        if (done === 0) progress = new ItemProgress(total, `eval video: ${dir}`, { unit: 'frames' });
        else progress?.tick();
      },
    }).finally(() => progress?.finish());
    const seconds = Number(((performance.now() - started) / 1000).toFixed(3));
    const names = Object.keys(r.metrics);
    if (out !== undefined) {
      const rows = r.frames.slice(1).map((f, i) => JSON.stringify({ index: i + 1, frame: f, scores: Object.fromEntries(names.map((n) => [n, r.metrics[n]!.scores[i]])) }));
      await writeFileAtomic(out, rows.map((l) => `${l}\n`).join(''));
    }
    if (p.flags.has('json')) {
      printJson({ dir, frames: r.frames, anchor: r.frames[0], varianceKind: 'population', metrics: r.metrics, settings: r.settings, seconds }, p.flags.has('pretty'));
      return 0;
    }
    const n = r.frames.length - 1;
    console.log(`${dir}: ${r.frames.length} frames; ${basename(r.frames[0]!)} (role A) against the other ${n} (role B)`);
    const fmt = (x: number) => (Number.isFinite(x) ? x.toPrecision(6) : String(x));
    const head = ['metric', 'mean', 'variance (population)', 'std', 'n'];
    const rows = names.map((name) => {
      const m = r.metrics[name]!;
      return [`${name}${m.lowerBetter ? ' (lower = more similar)' : ''}`, fmt(m.mean), fmt(m.variance), fmt(m.std), String(m.n)];
    });
    const widths = head.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
    for (const row of [head, ...rows]) console.log(row.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  '));
    return 0;
  } finally {
    await closeMetrics(metrics);
  }
}
