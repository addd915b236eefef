// `diffsim score A B` and `diffsim pick REF A B`: the DiffSim metric family on two images, or which
// of two candidates is closer to a reference, with models from local folders or the Hugging Face hub.
//
// The DiffSim settings are the library's defaults (the official README example, DIFFSIM_DEFAULTS in
// settings.ts) or a named preset. Two departures from the official scripts, both stated in the usage text:
//   --layer is honoured for DiffSim (the official code hooks layer 0 whatever it is given; layer 0,
//   the default, is therefore the official result);
//   pick: a tie in scores goes to B (the strict comparisons of the official single-metric
//   decisions); the ensemble votes by the official rule (a tie votes for A) but takes mse as
//   lower = closer (the official vote inverts it).

import { Ensemble, type Candidate } from '../diffsim/ensemble.js';
import { toRgbImage, type Metric } from '../diffsim/metric.js';
import type { RgbImage } from '../io/image.js';
import { closeMetrics, METRIC_USAGE, openMetrics, parseCommand, type ParsedCommand } from './metric-options.js';
import { UsageError } from './errors.js';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { printJson, PRETTY_USAGE } from './json.js';

export const SCORE_USAGE = `  score A B [options]      the similarity of two images (one number on stdout; higher = more similar,
                           except --similarity mse: lower). Models are local folders or hub ids,
                           downloaded into the Hugging Face cache on first use (HF_HUB_OFFLINE=1: cache only)
  pick REF A B [options]   which of A and B is closer to REF: 1 or 2 on the first stdout line, then the
                           scores (a tie goes to B; ensemble: official votes, a tie votes A; mse: lower = closer)
${METRIC_USAGE}
                           pick also: --metric ensemble (majority of diffsim, clip, dino)
    --json                 one line on stdout, one JSON object: the score(s) and the settings used
${PRETTY_USAGE}`;

function parse(command: 'score' | 'pick', args: string[]): ParsedCommand & { json: boolean; pretty: boolean } {
  const p = parseCommand(command, args, { flags: ['json'], ensemble: command === 'pick' });
  const want = command === 'score' ? ['A', 'B'] : ['REF', 'A', 'B'];
  if (p.positional.length !== want.length) throw new UsageError(`${command}: expected ${want.length} images (${want.join(' ')}), got ${p.positional.length}`);
  return { ...p, json: p.flags.has('json'), pretty: p.flags.has('pretty') };
}

/** Images first (a missing or unreadable file is reported before any model is touched), then the metrics. */
async function withMetrics<T>(command: string, p: ParsedCommand, run: (metrics: Metric[], images: RgbImage[]) => Promise<T>): Promise<T> {
  const images: RgbImage[] = [];
  for (const path of p.positional) images.push(await toRgbImage(path));
  const metrics = await openMetrics(command, p.metric);
  try {
    return await run(metrics, images);
  } finally {
    await closeMetrics(metrics);
  }
}

/** The settings reported by --json: the first metric's (the ensemble: DiffSim's, with the three models). */
function report(metrics: readonly Metric[], metric: string): Record<string, unknown> {
  const first = metrics[0]!.settings;
  const models = Object.assign({}, ...metrics.map((m) => m.settings.models as Record<string, unknown>));
  return { ...first, metric, ...(metric === 'ensemble' ? { lowerBetter: false } : {}), models };
}

export async function scoreCommand(args: string[]): Promise<number> {
  const p = parse('score', args);
  const started = performance.now();
  const { score, settings } = await withMetrics('score', p, async ([m], [a, b]) => ({ score: await m!.score(a!, b!), settings: report([m!], p.metric.metric) }));
  const seconds = Number(((performance.now() - started) / 1000).toFixed(3));
  if (p.json) printJson({ score, images: p.positional, ...settings, seconds }, p.pretty);
  else console.log(String(score));
  return 0;
}

export async function pickCommand(args: string[]): Promise<number> {
  const p = parse('pick', args);
  const metricName = p.metric.metric;
  const out = await withMetrics('pick', p, async (metrics, [ref, a, b]) => {
    const settings = report(metrics, metricName);
    if (metricName === 'ensemble') {
      // The official votes (`0 if s_A < s_B else 1`: a tie votes A), except mse: lower = closer.
      const [d, c, n] = metrics;
      const r = await new Ensemble(d!, c!, n!, { ties: 'official', mseVote: 'lower-is-closer' }).pick(ref!, a!, b!);
      return { pick: r.pick, scores: r.scores as Record<string, [number, number]>, votes: r.votes as unknown as Record<string, Candidate>, lower: { diffsim: d!.lowerBetter } as Record<string, boolean>, settings };
    }
    // REF is the anchor (role A) of both comparisons, the candidates take role B.
    // Strict comparison: a tie goes to B.
    const m = metrics[0]!;
    const { pick, scores } = await Ensemble.pickOne(m, ref!, a!, b!);
    return { pick, scores: { [metricName]: scores } as Record<string, [number, number]>, votes: { [metricName]: pick } as Record<string, Candidate>, lower: { [metricName]: m.lowerBetter } as Record<string, boolean>, settings };
  });
  if (p.json) {
    printJson({ pick: out.pick, images: p.positional, scores: out.scores, votes: out.votes, ...out.settings }, p.pretty);
    return 0;
  }
  console.log(String(out.pick));
  for (const [name, [s1, s2]] of Object.entries(out.scores)) {
    console.log(`${name}: REF–A ${s1}, REF–B ${s2} → ${out.votes[name]} (${out.lower[name] ? 'lower' : 'higher'} = closer)`);
  }
  return 0;
}

/** What `diffsim demo` scores, shipped in the package (package.json "files"): paths from the
 *  package root (dist/cli/score.js → ../../). */
export const DEMO_FILES = { model: 'weights/tiny/sd15', a: 'assets/pair/A.png', b: 'assets/pair/B.png' } as const;

export const DEMO_USAGE = `  demo [--json]            a first run, offline: DiffSim of the pair of images shipped in the package
                           (A against B) on the tiny random-weight SD1.5 shipped with it; nothing is
                           downloaded. The number shows that the install works: the weights are
                           random, so it says nothing about the images`;

export async function demoCommand(args: string[]): Promise<number> {
  for (const a of args) if (a !== '--json' && a !== '--pretty') throw new UsageError(`demo: unknown argument ${a} (demo takes only --json and --pretty)`);
  const at = (rel: string) => fileURLToPath(new URL(`../../${rel}`, import.meta.url));
  const [model, a, b] = [at(DEMO_FILES.model), at(DEMO_FILES.a), at(DEMO_FILES.b)];
  for (const f of [model, a, b]) if (!existsSync(f)) throw new Error(`demo: ${f} is missing (the package ships it; reinstall diffsim)`);
  // Nothing is fetched: the models are the local folder, and the hub is offline should anything ask it.
  process.env.HF_HUB_OFFLINE = '1';
  const p = parse('score', [a, b, '--model', model, ...args]);
  const started = performance.now();
  const { score, lowerBetter, settings } = await withMetrics('demo', p, async ([m], [x, y]) => ({ score: await m!.score(x!, y!), lowerBetter: m!.lowerBetter, settings: report([m!], p.metric.metric) }));
  const seconds = Number(((performance.now() - started) / 1000).toFixed(3));
  const meaning = `DiffSim of A.png (role A) against B.png (role B), the pair shipped in the package, on its tiny random-weight SD1.5: ${lowerBetter ? 'lower' : 'higher'} = more similar; the weights are random, so the number shows that the install works, not how alike the images are (real models: diffsim score A.png B.png)`;
  if (p.json) printJson({ score, images: p.positional, ...settings, seconds, meaning }, p.pretty);
  else {
    console.log(String(score));
    console.log(meaning);
  }
  return 0;
}
