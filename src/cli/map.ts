// `diffsim map A B -o OUT.png`: where A's queries find agreement in B under an AAS metric (the
// per-token cosine of O_AB and O_AA, see eval/map.ts), drawn over A beside B with a colour bar.
// The picture is written atomically: OUT is either untouched or the whole new PNG (a symlink's
// target is; a device or FIFO such as /dev/stdout is written directly, never replaced).

import { stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import { toRgbImage, type MetricName } from '../diffsim/metric.js';
import { AGREEMENT_METRICS, agreementMap, renderAgreement } from '../apps/map.js';
import { outputTarget, writeFileAtomic } from '../io/atomic.js';
import { FileError } from '../io/errors.js';
import { closeMetrics, openMetrics, parseCommand } from './metric-options.js';
import { UsageError } from './errors.js';
import { printJson, PRETTY_USAGE } from './json.js';

export const MAP_USAGE = `  map A B -o OUT.png [options]
                           where A's queries find agreement in B: the per-token cosine of A's outputs on
                           B's keys/values (O_AB) and on its own (O_AA) in the metric's attention layer,
                           over A (viridis) beside B, with a colour bar; prints "mean M min L max H".
                           Metrics diffsim (default), diffsim-c, clip-aas, dino-aas; the metric options
                           are score's
    -o, --out FILE         the PNG to write (required; written whole or not at all)
    --range LO,HI          the colour bar's range (default the map's min,max), e.g. --range -1,1
    --json                 one line on stdout, one JSON object: out, min, max, mean, grid, module, settings
${PRETTY_USAGE}`;

/** `-o FILE` (or `-o=FILE`) among the positionals parseCommand leaves (it takes words without a
 *  leading `--` as positionals, and the value of an option such as `--range -1,1` as that value). */
function takeShortOut(positional: readonly string[]): { out: string | undefined; images: string[] } {
  const images: string[] = [];
  let out: string | undefined;
  for (let i = 0; i < positional.length; i++) {
    const a = positional[i]!;
    if (a !== '-o' && !a.startsWith('-o=')) {
      images.push(a);
      continue;
    }
    if (out !== undefined) throw new UsageError('map: -o given twice');
    const v = a === '-o' ? positional[++i] : a.slice(3);
    if (v === undefined || v === '') throw new UsageError('map: -o needs a file name (the PNG to write)');
    out = v;
  }
  return { out, images };
}

function parseRange(value: string): [number, number] {
  const parts = value.split(',');
  const nums = parts.map((s) => (s.trim() === '' ? NaN : Number(s)));
  if (parts.length !== 2 || nums.some((x) => !Number.isFinite(x)) || !(nums[0]! < nums[1]!)) {
    throw new UsageError(`map: --range must be LO,HI with two numbers, LO < HI, got ${JSON.stringify(value)}`);
  }
  return [nums[0]!, nums[1]!];
}

/** Refuses an output that cannot be written before any model is loaded: a folder, a block device
 *  or a socket (io/atomic.ts's rules), or a new file in a folder that does not exist. */
async function checkOutput(out: string): Promise<void> {
  const target = outputTarget(out);
  if (target.kind === 'stream') return;
  const dir = dirname(target.path);
  const d = await stat(dir).catch(() => null);
  if (!d) throw new FileError(out, `cannot write: the folder ${dir} does not exist`);
  if (!d.isDirectory()) throw new FileError(out, `cannot write: ${dir} is not a folder`);
}

export async function mapCommand(args: string[]): Promise<number> {
  const p = parseCommand('map', args, { valueOptions: ['out', 'range'], flags: ['json'] });
  const short = takeShortOut(p.positional);
  if (short.images.length !== 2) throw new UsageError(`map: expected 2 images (A B), got ${short.images.length}`);
  const long = p.options.get('out');
  if (short.out !== undefined && long !== undefined) throw new UsageError('map: give -o or --out, not both');
  const out = short.out ?? long;
  if (out === undefined || out === '') throw new UsageError('map: -o OUT.png is required (the picture to write)');
  const name = p.metric.metric;
  if (!(AGREEMENT_METRICS as readonly string[]).includes(name)) throw new UsageError(`map: --metric ${name} has no attention map (one of ${AGREEMENT_METRICS.join(', ')})`);
  const rangeArg = p.options.get('range');
  const range = rangeArg === undefined ? undefined : parseRange(rangeArg);
  await checkOutput(out);
  // Images first: a missing or unreadable file is reported before any model is touched.
  const [pathA, pathB] = short.images as [string, string];
  const imageA = await toRgbImage(pathA);
  const imageB = await toRgbImage(pathB);
  const started = performance.now();
  const metrics = await openMetrics('map', p.metric);
  try {
    const metric = metrics[0]!;
    const map = await agreementMap(metric, imageA, imageB);
    const png = renderAgreement(map, imageA, imageB, range ? { range } : {});
    await writeFileAtomic(out, png);
    const seconds = Number(((performance.now() - started) / 1000).toFixed(3));
    if (p.flags.has('json')) {
      printJson(
        {
          out,
          images: [pathA, pathB],
          metric: name as MetricName,
          mean: map.mean,
          min: map.min,
          max: map.max,
          range: range ?? [map.min, map.max],
          grid: { width: map.gridWidth, height: map.gridHeight },
          size: { width: map.width, height: map.height },
          module: map.module,
          tokens: map.tokens,
          halves: map.halves,
          settings: metric.settings,
          seconds,
        },
        p.flags.has('pretty'),
      );
    } else console.log(`mean ${map.mean} min ${map.min} max ${map.max}`);
    return 0;
  } finally {
    await closeMetrics(metrics);
  }
}
