// `diffsim eval BENCHMARK DIR`: the paper's benchmarks as the official scripts run them (items,
// prompts, decision rules, per-benchmark step), with results appended to a JSONL file as they are
// computed (a rerun resumes), shards over machines and their merge.

import { resolve as resolvePath } from 'node:path';
import { createHash } from 'node:crypto';
import { resolveDataset } from '../hub/dataset.js';
import { directionOf, type DecisionRule } from '../eval/decide.js';
import { BENCHMARK_NAMES, benchmarkPreset, DEFAULT_PROMPT, listItems, type BenchmarkName, type EvalItem, type ProtocolOptions } from '../eval/protocols.js';
import { mergeFiles, parseShard, runId, shardRange, type Shard, type Summary } from '../eval/results.js';
import { runEval } from '../eval/runner.js';
import { datasetIdentity } from '../eval/identity.js';
import type { Metric } from '../diffsim/metric.js';
import { closeMetrics, integer, choice, openMetrics, parseCommand, PRESET_SUMMARY, resolvedDiffSim, wrap } from './metric-options.js';
import { ItemProgress, loadDisplay } from './progress.js';
import { UsageError } from './errors.js';
import { printJson, PRETTY_USAGE } from './json.js';

export const EVAL_USAGE = `  eval BENCHMARK DIR [options]   a benchmark of the paper, as its official script runs it: accuracy (%) with
                           a 95% Wilson interval. BENCHMARK: ${BENCHMARK_NAMES.join(', ')}.
                           DIR: the dataset folder, or hf://datasets/<org>/<name>[/folder] (Hugging Face cache)
    --originals DIR        ipref: the IPA-bench folder of reference images (<class>.JPG)
    --out FILE.jsonl       one row per item, appended as computed; rerunning with the same file resumes
    --list                 print the protocol's items as JSONL (no scores) without loading any model
    --shard i/n|auto       evaluate the i-th of n slices (1-based); auto: from a Slurm array
                           (SLURM_ARRAY_TASK_ID/_COUNT/_MIN/_STEP) or a Kubernetes Indexed Job
                           (JOB_COMPLETION_INDEX with --shards n)
    --shards N             the number of slices for --shard auto on Kubernetes
    --merge FILES…         combine shard files into one summary (no DIR, no models)
    --trials N             sref/instantstyle: the first N of the official 2000 trials
    --listing sorted|given directory order driving the sampling: sorted names (default) or the
                           filesystem's order (what the official os.listdir/os.walk saw)
    --ties strict|half     strict: a tie counts as the script's else branch (official); half: ½ point
    --votes-at-least N     nights: keep rows with at least N votes (DreamSim's filter; the official script has none)
    --max-live N           embeddings kept on the GPU at once (default 48)
    --json                 one line on stdout, one JSON object: accuracy, correct, total, interval, settings
${PRETTY_USAGE}
    ${wrap(`Metric options as for score (--metric … also ensemble); --preset defaults to the benchmark's, the settings of its official script: ${PRESET_SUMMARY} (--step/--timestep override it); the prompt is the protocol's per item (nights "An image of a …", cute "The photo of a …", otherwise ${JSON.stringify(DEFAULT_PROMPT)}), --prompt replaces it for every item.`, 4)}
  eval video DIR [options] the consistency of a frame sequence (see below)`;

export const VALUE_OPTIONS = ['originals', 'out', 'shard', 'shards', 'trials', 'listing', 'ties', 'votes-at-least', 'max-live'];
export const FLAGS = ['list', 'json', 'merge'];

export function isBenchmark(x: string): x is BenchmarkName {
  return (BENCHMARK_NAMES as readonly string[]).includes(x);
}

export function formatSummary(s: Summary): string[] {
  const pct = (x: number) => `${x.toFixed(2)} %`;
  const lines = [
    `accuracy  ${pct(s.accuracy)}  (95% Wilson score interval ${s.interval[0].toFixed(2)}–${s.interval[1].toFixed(2)} %)`,
    `correct   ${s.correct} of ${s.total}${s.ties ? `   ties ${s.ties}` : ''}${s.missing ? `   missing ${s.missing} items (shards not merged?)` : ''}`,
  ];
  if (s.twiceAccuracy !== undefined) lines.push(`2x        ${pct(s.twiceAccuracy)}  (the official "2x" accuracy: cand1 twice as close)`);
  return lines;
}

async function merge(files: string[], json: boolean, pretty: boolean): Promise<number> {
  const { summary, rows } = mergeFiles(files);
  const first = rows[0]!;
  if (rows.some((r) => r.benchmark !== first.benchmark || r.metric !== first.metric)) throw new UsageError('eval --merge: the files hold different benchmarks or metrics');
  if (summary.missing) console.error(`diffsim: eval --merge: ${summary.missing} of ${first.of} items are in none of the files`);
  if (json) printJson({ benchmark: first.benchmark, metric: first.metric, ...summary, files, run: first.run }, pretty);
  else {
    console.log(`${first.benchmark} · ${first.metric} · merged from ${files.length} file${files.length === 1 ? '' : 's'}`);
    for (const l of formatSummary(summary)) console.log(l);
  }
  return 0;
}

/** The settings that identify a run across machines: model specs and commits, not local paths. */
export function portableSettings(metrics: readonly Metric[]): unknown[] {
  return metrics.map((m) => {
    // The preset is a label (the settings say what ran): runs that differ only in it are one run.
    const { models, preset: _preset, ...rest } = m.settings as Record<string, unknown> & { models?: Record<string, { spec: string; commit?: string }> };
    const ids = Object.fromEntries(Object.entries(models ?? {}).map(([k, v]) => [k, v.commit ?? v.spec]));
    return { ...rest, models: ids, name: m.name };
  });
}

export function itemsHash(items: readonly EvalItem[]): string {
  const h = createHash('sha256');
  for (const i of items) h.update(`${JSON.stringify([i.item, i.anchorRoot ?? '', i.anchor, i.cand1, i.cand2, i.prompt, i.truth, i.label ?? null])}\n`);
  return h.digest('hex');
}

/** What a benchmark command (eval, sweep) reads before any model: the dataset folder (a hub
 *  dataset resolved), the protocol's items (every file checked) and the shard's slice of them, and
 *  the options that shape them. */
export interface BenchmarkInputs {
  dir: string;
  originalsDir: string | undefined;
  all: EvalItem[];
  items: EvalItem[];
  shard: Shard | undefined;
  protocol: ProtocolOptions;
  ties: 'strict' | 'half';
  maxLive: number;
  /** --prompt for every item, or undefined: the protocol's per item. */
  prompt: string | undefined;
}

export async function benchmarkInputs(command: string, benchmark: BenchmarkName, dirSpec: string, p: ReturnType<typeof parseCommand>): Promise<BenchmarkInputs> {
  const opt = (name: string) => p.options.get(name);
  const diffsim = resolvedDiffSim(p.metric);
  const protocol: ProtocolOptions = { seed: diffsim.seed };
  if (opt('listing') !== undefined) protocol.listing = choice(command, 'listing', opt('listing')!, ['sorted', 'given'] as const);
  if (opt('trials') !== undefined) {
    if (benchmark !== 'sref' && benchmark !== 'instantstyle') throw new UsageError(`${command}: --trials applies to sref and instantstyle, not ${benchmark}`);
    protocol.trials = integer(command, 'trials', opt('trials')!, 1);
  }
  if (opt('votes-at-least') !== undefined) {
    if (benchmark !== 'nights') throw new UsageError(`${command}: --votes-at-least applies to nights, not ${benchmark}`);
    protocol.votesAtLeast = integer(command, 'votes-at-least', opt('votes-at-least')!, 0);
  }
  const originals = opt('originals');
  if (benchmark === 'ipref' && originals === undefined) throw new UsageError(`${command} ipref: --originals DIR (the IPA-bench folder of reference images) is required`);
  if (benchmark !== 'ipref' && originals !== undefined) throw new UsageError(`${command}: --originals applies to ipref, not ${benchmark}`);
  const ties = opt('ties') === undefined ? 'strict' : choice(command, 'ties', opt('ties')!, ['strict', 'half'] as const);
  const shards = opt('shards') === undefined ? undefined : integer(command, 'shards', opt('shards')!, 1);
  if (shards !== undefined && opt('shard') !== 'auto') throw new UsageError(`${command}: --shards goes with --shard auto (Kubernetes Indexed Jobs)`);
  let shard: Shard | undefined;
  try {
    shard = opt('shard') === undefined ? undefined : parseShard(opt('shard')!, process.env, shards);
  } catch (e) {
    throw new UsageError(`${command}: ${(e as Error).message}`);
  }
  const maxLive = opt('max-live') === undefined ? 48 : integer(command, 'max-live', opt('max-live')!, 3);

  // The dataset and the protocol's items (every file checked) before any model is loaded.
  const dataset = async (spec: string): Promise<string> => {
    const display = loadDisplay(p.metric.progress);
    try {
      return await resolveDataset(spec, display ? { onProgress: display.onProgress } : {});
    } finally {
      display?.end();
    }
  };
  const dir = dirSpec.startsWith('hf://') ? await dataset(dirSpec) : resolvePath(dirSpec);
  const originalsDir = originals === undefined ? undefined : originals.startsWith('hf://') ? await dataset(originals) : resolvePath(originals);
  const all = await listItems(benchmark, dir, { ...protocol, ...(originalsDir !== undefined ? { originals: originalsDir } : {}) });
  const [from, to] = shard ? shardRange(all.length, shard) : [0, all.length];
  const items = all.slice(from, to);
  const prompt = p.metric.given.has('prompt') ? diffsim.prompt : undefined;
  return { dir, originalsDir, all, items, shard, protocol, ties, maxLive, prompt };
}

export async function evalCommand(args: string[]): Promise<number> {
  const p = parseCommand('eval', args, { valueOptions: VALUE_OPTIONS, flags: FLAGS, ensemble: true });
  const json = p.flags.has('json');
  if (p.flags.has('merge')) {
    if (p.options.size || p.metric.given.size || p.flags.has('list')) throw new UsageError('eval --merge takes only the results files (and --json)');
    return merge(p.positional, json, p.flags.has('pretty'));
  }
  if (p.positional.length !== 2) throw new UsageError(`eval: expected BENCHMARK DIR, got ${p.positional.length} argument${p.positional.length === 1 ? '' : 's'}`);
  const [benchmark, dirSpec] = p.positional as [string, string];
  if (!isBenchmark(benchmark)) throw new UsageError(`eval: unknown benchmark ${JSON.stringify(benchmark)} (one of ${BENCHMARK_NAMES.join(', ')}, or video)`);
  // The benchmark's preset unless --preset names another; explicit options override either.
  if (p.metric.preset === null) p.metric.preset = benchmarkPreset(benchmark);
  const b = await benchmarkInputs('eval', benchmark, dirSpec, p);
  const { dir, originalsDir, all, items, shard, protocol, ties, maxLive, prompt } = b;
  const diffsim = resolvedDiffSim(p.metric);
  const opt = (name: string) => p.options.get(name);
  if (p.flags.has('list')) {
    for (const i of items) console.log(JSON.stringify({ ...i, ...(prompt !== undefined ? { prompt } : {}) }));
    return 0;
  }
  if (!items.length) throw new Error(`eval ${benchmark}: ${dir}: the protocol forms no items${shard ? ` in shard ${shard.index}/${shard.count}` : ''}`);

  const m = p.metric;
  const rule: DecisionRule = { similarity: diffsim.similarity, metricIsDiffsim: m.metric.startsWith('diff'), metricIsLpips: m.metric === 'lpips' };
  const direction = directionOf(benchmark, rule);
  console.error(`diffsim: eval ${benchmark}: ${items.length} of ${all.length} items${shard ? ` (shard ${shard.index}/${shard.count})` : ''}; cand1 counts as more similar when s1 ${direction === 'higher' ? '>' : '<'} s2 (the official script's rule${(rule.similarity === 'mse' || rule.metricIsLpips) && direction === 'higher' && m.metric !== 'ensemble' ? `: ${rule.metricIsLpips ? 'an LPIPS distance' : 'an mse score'} read the wrong way round, as there` : ''})`);
  const data = await datasetIdentity(all, dir, originalsDir);
  const metrics = await openMetrics('eval', m);
  try {
    const run = runId({ benchmark, items: itemsHash(all), data: data.listing, metrics: portableSettings(metrics), ties, prompt: prompt ?? null, metric: m.metric });
    // This machine's: the dataset's folder and files as they are, the models' files (in the keys).
    const origin = runId({ data: data.local, keys: metrics.map((x) => x.key) });
    const progress = new ItemProgress(items.length, `eval ${benchmark}`);
    const out = opt('out');
    const r = await runEval({
      benchmark,
      items,
      of: all.length,
      dir,
      ...(originalsDir !== undefined ? { originals: originalsDir } : {}),
      metrics,
      ensemble: m.metric === 'ensemble',
      rule,
      ties,
      ...(prompt !== undefined ? { prompt } : {}),
      run,
      origin,
      metricName: m.metric,
      ...(out !== undefined ? { out } : {}),
      maxLive,
      onRow: () => progress.tick(),
    });
    progress.finish();
    const perHundred = r.computed ? (r.seconds / r.computed) * 100 : 0;
    const settings = { ...metrics[0]!.settings, metric: m.metric, ...(m.metric === 'ensemble' ? { voters: portableSettings(metrics) } : {}) };
    if (json) {
      printJson({ benchmark, dir, ...r.summary, computed: r.computed, resumed: r.resumed, embedded: r.embedded, seconds: Number(r.seconds.toFixed(3)), secondsPer100: Number(perHundred.toFixed(3)), ...(shard ? { shard: `${shard.index}/${shard.count}` } : {}), ...(out ? { out } : {}), run, tieRule: ties, listing: protocol.listing ?? 'sorted', settings }, p.flags.has('pretty'));
    } else {
      const s = metrics[0]!.settings;
      const where = s.module ? ` · ${String(s.module)}, t ${String(s.t)}` : s.layer !== undefined ? ` · layer ${String(s.layer)}` : '';
      console.log(`${benchmark} · ${m.metric}${where} · ${r.summary.total} items${shard ? ` (shard ${shard.index}/${shard.count} of ${all.length})` : ''}`);
      for (const l of formatSummary(r.summary)) console.log(l);
      console.log(`time      ${r.seconds.toFixed(1)} s for ${r.computed} items (${perHundred.toFixed(1)} s per 100), ${r.embedded} image passes${r.resumed ? `, ${r.resumed} items resumed from ${out}` : ''}`);
    }
    return 0;
  } finally {
    await closeMetrics(metrics);
  }
}
