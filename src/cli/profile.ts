// `diffsim profile [A B]`: times every GPU dispatch of one scored pair (embed A, embed B, compare)
// and reports them by kernel variant, by block and by module path (src/gpu/profile.ts), beside the
// host time spent recording them. Without images, two synthetic ones of the metric's size are used.
// One unprofiled pair runs first (kernels compiled, the text conditioning cached, the pool filled).

import { profileStage, formatProfile, type StageProfile } from '../gpu/profile.js';
import type { RgbImage } from '../io/pixels.js';
import { toRgbImage } from '../diffsim/metric.js';
import { closeMetrics, integer, openMetrics, parseCommand } from './metric-options.js';
import { UsageError } from './errors.js';
import { printJson, PRETTY_USAGE } from './json.js';

export const PROFILE_USAGE = `  profile [A B] [options]  time every GPU dispatch of one scored pair (synthetic images of the
                           metric's size unless A and B are given) by kernel, block and module: calls,
                           ms, share, FLOPs, bytes, GFLOP/s, GB/s, and the JS recording time; GPU
                           timestamps where the adapter has timestamp-query, else per-submit timing
    --json                 one line on stdout, one JSON object (the whole profile) instead of the tables
${PRETTY_USAGE}
    --top N                rows per table (default 15)
    --timing T             timestamp (default where available) or submit`;

/** A deterministic RGB test pattern (gradients and a checker), so runs compare. */
export function syntheticImage(size: number, seed: number): RgbImage {
  const data = new Uint8Array(size * size * 3);
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const i = 3 * (y * size + x);
      const check = ((x >> 3) + (y >> 3) + seed) & 1;
      data[i] = (255 * x) / Math.max(1, size - 1);
      data[i + 1] = (255 * y) / Math.max(1, size - 1);
      data[i + 2] = check ? 200 : 40 + 30 * seed;
    }
  }
  return { width: size, height: size, data };
}

export async function profileCommand(args: string[]): Promise<number> {
  const p = parseCommand('profile', args, { valueOptions: ['top', 'timing'], flags: ['json'] });
  if (p.positional.length !== 0 && p.positional.length !== 2) throw new UsageError(`profile: expected no images or two (A B), got ${p.positional.length}`);
  const top = p.options.has('top') ? integer('profile', 'top', p.options.get('top')!, 1) : 15;
  const timing = p.options.get('timing');
  if (timing !== undefined && timing !== 'timestamp' && timing !== 'submit') throw new UsageError(`profile: --timing must be timestamp or submit, got ${timing}`);
  const given: RgbImage[] = [];
  for (const path of p.positional) given.push(await toRgbImage(path));
  const [metric] = await openMetrics('profile', p.metric);
  try {
    const size = Number((metric!.settings as { imageSize?: unknown }).imageSize) || 64;
    const [a, b] = given.length === 2 ? given : [syntheticImage(size, 0), syntheticImage(size, 1)];
    const pair = async () => {
      const x = await metric!.embed(a!, 'A');
      const y = await metric!.embed(b!, 'B');
      try {
        return await metric!.compare(x, y);
      } finally {
        x.dispose();
        y.dispose();
      }
    };
    await pair(); // warm-up
    const rt = metric!.runtime;
    const profile: StageProfile = await profileStage(rt, `${p.metric.metric} pair (embed A, embed B, compare)`, pair, timing ? { timing: timing as 'timestamp' | 'submit' } : {});
    if (p.flags.has('json')) printJson(profile, p.flags.has('pretty'));
    else console.log(formatProfile(profile, top));
    return 0;
  } finally {
    await closeMetrics([metric!]);
  }
}
