// `diffsim sweep BENCHMARK DIR`: a benchmark over a grid of where the metric looks (U-Net blocks
// and layers, steps and image sizes for DiffSim; encoder layers for the ViT AAS metrics), each
// cell scored as `diffsim eval` with those settings would, from one pass per image, role and
// (size, step). Rows per item and cell go to --out (resumable, shardable, --merge), the cells'
// accuracies to stdout, a Figure-5 style picture to --plot.

import { basename } from 'node:path';
import { writeFileAtomic } from '../io/atomic.js';
import { renderSweepPlot } from '../apps/plot.js';
import { directionOf, type DecisionRule } from '../eval/decide.js';
import { BENCHMARK_NAMES, benchmarkPreset, itemPaths, type EvalItem } from '../eval/protocols.js';
import { runId } from '../eval/results.js';
import { datasetIdentity } from '../eval/identity.js';
import { bestCell, DEFAULT_SWEEP_STEPS, mergeSweepFiles, runSweep, sweepSource, SWEEP_METRICS, type SweepCellResult, type SweepGrid, type SweepMemory } from '../eval/sweep.js';
import type { DiffSimBlock } from '../diffsim/settings.js';
import { DiffSimSettingsError } from '../diffsim/settings.js';
import { benchmarkInputs, isBenchmark, itemsHash, portableSettings } from './eval.js';
import { closeMetrics, integer, openMetrics, parseCommand, resolvedDiffSim } from './metric-options.js';
import { ItemProgress } from './progress.js';
import { UsageError } from './errors.js';
import { printJson, PRETTY_USAGE } from './json.js';

export const SWEEP_USAGE = `  sweep BENCHMARK DIR [options]  the benchmark's accuracy over a grid of layers, steps and sizes (the
                           paper's grid searches, Figure 5): every cell as \`eval\` with its settings computes
                           it, from one pass per image, role and (size, step) that records every layer
    --blocks down,mid,up   DiffSim U-Net blocks (default up; not for diffsim-dit)
    --layers all|0,1,2     layers in each block (SDXL: each sub-block's every [attention, transformer
                           block]), the DiT blocks, or the ViT's encoder layers (default all)
    --targets 0.1.0,1.0.2  diffsim-xl: these targets (block.attention.transformer block; mid:
                           attention.transformer block) in each of --blocks, instead of --layers
    --steps 300,…,900      DiffSim step indices (default ${DEFAULT_SWEEP_STEPS.join(',')})
    --sizes 384,512,768    DiffSim image sides (default the model's)
    --metric M             ${[...SWEEP_METRICS.keys()].join(', ')} (default diffsim); other metric options as for eval
    --out FILE.jsonl       one row per item and cell, appended as computed; rerunning resumes
    --shard i/n|auto, --shards N, --originals, --trials, --listing, --ties, --votes-at-least  as for eval
    --merge FILES…         combine shard files (no DIR, no models)
    --max-live N           embedding bundles on the GPU at once (default 48); the rest go to disk
    --spill-dir DIR        where they go (default the system's temporary folder)
    --plot FILE.png        accuracy against step per layer and the layer × step heatmap (best framed)
    --json                 one line on stdout, one JSON object: every cell, the best, passes, memory
${PRETTY_USAGE}`;

const VALUE_OPTIONS = ['originals', 'out', 'shard', 'shards', 'trials', 'listing', 'ties', 'votes-at-least', 'max-live', 'blocks', 'layers', 'targets', 'steps', 'sizes', 'plot', 'spill-dir'];
const FLAGS = ['json', 'merge'];
/** Metric options that are axes of the grid here. */
const AXES: Record<string, string> = { block: 'blocks', layer: 'layers', step: 'steps', timestep: 'steps', size: 'sizes' };

function list(command: string, name: string, text: string, min: number, max: number): number[] {
  const out = text.split(',').map((x) => integer(command, name, x.trim(), min, max));
  if (new Set(out).size !== out.length) throw new UsageError(`${command}: --${name} names a value twice`);
  return out;
}

function cellName(c: SweepCellResult): string {
  const parts: string[] = [];
  if (c.size !== undefined) parts.push(`size ${c.size}`);
  if (c.step !== undefined) parts.push(`step ${c.step} (t ${c.t})`);
  parts.push(c.block !== undefined ? `${c.block} ${c.target ? `[${c.target.join(', ')}]` : c.layer}` : `layer ${c.layer}`);
  return parts.join(' · ');
}

function table(cells: readonly SweepCellResult[]): string[] {
  const best = bestCell(cells);
  const sorted = [...cells].sort((a, b) => b.summary.accuracy - a.summary.accuracy);
  const width = Math.max(...cells.map((c) => cellName(c).length));
  return sorted.map((c) => {
    const s = c.summary;
    const mark = c === best ? '*' : ' ';
    const twice = s.twiceAccuracy !== undefined ? `  2x ${s.twiceAccuracy.toFixed(2)} %` : '';
    return `${mark} ${cellName(c).padEnd(width)}  ${s.accuracy.toFixed(2).padStart(6)} %  (${s.interval[0].toFixed(2)}–${s.interval[1].toFixed(2)})  ${s.correct}/${s.total}${s.missing ? `  missing ${s.missing}` : ''}${twice}  ${c.module}`;
  });
}

function cellJson(c: SweepCellResult) {
  return { cell: c.cell, ...(c.size !== undefined ? { size: c.size } : {}), ...(c.step !== undefined ? { step: c.step, t: c.t } : {}), ...(c.block !== undefined ? { block: c.block } : {}), layer: c.layer, ...(c.target ? { target: c.target } : {}), module: c.module, ...c.summary };
}

async function plot(file: string, cells: readonly SweepCellResult[], title: string): Promise<void> {
  const best = bestCell(cells)!;
  const png = renderSweepPlot(
    cells.map((c) => ({ ...(c.size !== undefined ? { size: c.size } : {}), ...(c.step !== undefined ? { step: c.step } : {}), ...(c.t !== undefined ? { t: c.t } : {}), ...(c.block !== undefined ? { block: c.block } : {}), layer: c.layer, accuracy: c.summary.accuracy })),
    { title, subtitle: `${best.summary.total} items · best ${cellName(best)}: ${best.summary.accuracy.toFixed(1)} %` },
  );
  await writeFileAtomic(file, png);
}

function mib(bytes: number): string {
  return `${(bytes / 2 ** 20).toFixed(2)} MiB`;
}

async function merge(files: string[], json: boolean, pretty: boolean, plotFile: string | undefined): Promise<number> {
  const { cells, rows } = mergeSweepFiles(files);
  const first = rows[0]!;
  const missing = cells.reduce((a, c) => a + c.summary.missing, 0);
  if (missing) console.error(`diffsim: sweep --merge: ${missing} (cell, item) rows are in none of the files`);
  if (plotFile) await plot(plotFile, cells, `${first.benchmark} · ${first.metric}`);
  const best = bestCell(cells)!;
  if (json) printJson({ benchmark: first.benchmark, metric: first.metric, files, cells: cells.map(cellJson), best: cellJson(best), sweep: first.sweep }, pretty);
  else {
    console.log(`${first.benchmark} · ${first.metric} · ${cells.length} cells merged from ${files.length} file${files.length === 1 ? '' : 's'}`);
    for (const l of table(cells)) console.log(l);
  }
  return 0;
}

/** Distinct (role, image, prompt) of the items: the passes of one group. */
function units(items: readonly EvalItem[], dir: string, originals: string | undefined, roleDependent: boolean, promptDependent: boolean, prompt: string | undefined): number {
  const set = new Set<string>();
  for (const i of items) {
    const p = itemPaths(i, dir, originals !== undefined ? { originals } : {});
    const pr = promptDependent ? (prompt ?? i.prompt) : '';
    set.add(`${roleDependent ? 'A' : '-'}\u0000${pr}\u0000${p.anchor}`);
    set.add(`${roleDependent ? 'B' : '-'}\u0000${pr}\u0000${p.cand1}`);
    set.add(`${roleDependent ? 'B' : '-'}\u0000${pr}\u0000${p.cand2}`);
  }
  return set.size;
}

export async function sweepCommand(args: string[]): Promise<number> {
  const p = parseCommand('sweep', args, { valueOptions: VALUE_OPTIONS, flags: FLAGS });
  const json = p.flags.has('json');
  const opt = (name: string) => p.options.get(name);
  if (p.flags.has('merge')) {
    const other = [...p.options.keys()].filter((k) => k !== 'plot');
    if (other.length || p.metric.given.size) throw new UsageError('sweep --merge takes only the results files (and --plot, --json)');
    return merge(p.positional, json, p.flags.has('pretty'), opt('plot'));
  }
  for (const [axis, option] of Object.entries(AXES)) if (p.metric.given.has(axis)) throw new UsageError(`sweep: --${axis} is an axis of the grid here; give --${option}`);
  if (p.positional.length !== 2) throw new UsageError(`sweep: expected BENCHMARK DIR, got ${p.positional.length} argument${p.positional.length === 1 ? '' : 's'}`);
  const [benchmark, dirSpec] = p.positional as [string, string];
  if (!isBenchmark(benchmark)) throw new UsageError(`sweep: unknown benchmark ${JSON.stringify(benchmark)} (one of ${BENCHMARK_NAMES.join(', ')})`);
  const m = p.metric;
  if (!SWEEP_METRICS.has(m.metric)) throw new UsageError(`sweep: --metric ${m.metric} has no layer grid (one of ${[...SWEEP_METRICS.keys()].join(', ')})`);
  const isDiffsim = m.metric.startsWith('diffsim');
  const grid: SweepGrid = {};
  if (opt('blocks') !== undefined) {
    if (!isDiffsim) throw new UsageError(`sweep: --blocks applies to DiffSim, not ${m.metric}`);
    const blocks = opt('blocks')!.split(',').map((b) => b.trim().replace(/_blocks?$/, ''));
    for (const b of blocks) if (b !== 'down' && b !== 'mid' && b !== 'up') throw new UsageError(`sweep: unknown block ${JSON.stringify(b)} in --blocks (down, mid, up)`);
    if (new Set(blocks).size !== blocks.length) throw new UsageError('sweep: --blocks names a block twice');
    grid.blocks = blocks as DiffSimBlock[];
  }
  if (opt('targets') !== undefined) {
    if (m.metric !== 'diffsim-xl') throw new UsageError(`sweep: --targets applies to diffsim-xl, not ${m.metric}`);
    if (opt('layers') !== undefined) throw new UsageError('sweep: give --layers or --targets, not both');
    grid.targets = opt('targets')!.split(',').map((t) => t.trim().split('.').map((x) => integer('sweep', 'targets', x, 0, 1000)));
  }
  if (opt('layers') !== undefined) grid.layers = opt('layers') === 'all' ? 'all' : list('sweep', 'layers', opt('layers')!, 0, 1000);
  for (const [name, min, max] of [['steps', 1, 1000], ['sizes', 64, 4096]] as const) {
    if (opt(name) === undefined) continue;
    if (!isDiffsim) throw new UsageError(`sweep: --${name} applies to DiffSim, not ${m.metric}`);
    grid[name] = list('sweep', name, opt(name)!, min, max);
  }
  if (p.metric.preset === null && isDiffsim) p.metric.preset = benchmarkPreset(benchmark);
  const b = await benchmarkInputs('sweep', benchmark, dirSpec, p);
  const { dir, originalsDir, all, items, shard, ties, maxLive, prompt } = b;
  if (!items.length) throw new Error(`sweep ${benchmark}: ${dir}: the protocol forms no items${shard ? ` in shard ${shard.index}/${shard.count}` : ''}`);
  // As eval: the resolved setting (the preset's and the defaults' under the options).
  const rule: DecisionRule = { similarity: resolvedDiffSim(m).similarity, metricIsDiffsim: isDiffsim };
  const direction = directionOf(benchmark, rule);
  const data = await datasetIdentity(all, dir, originalsDir);
  const metrics = await openMetrics('sweep', m);
  try {
    let source;
    try {
      source = sweepSource(metrics[0]!, grid);
    } catch (e) {
      if (e instanceof DiffSimSettingsError) throw new UsageError(e.message.replace(/^DiffSim: /, 'sweep: '));
      throw e;
    }
    const portable = portableSettings(metrics)[0] as Record<string, unknown>;
    for (const k of ['block', 'layer', 'target', 'step', 't', 'tNoise', 'tModel', 'module', 'heads', 'imageSize', 'layerMode', 'prompt']) delete portable[k];
    const sweep = runId({ benchmark, items: itemsHash(all), data: data.listing, settings: portable, ties, prompt: prompt ?? null, metric: m.metric });
    const origin = runId({ data: data.local, keys: metrics.map((x) => x.key) });
    const cells = source.groups.reduce((a, g) => a + g.cells.length, 0);
    const perGroup = units(items, dir, originalsDir, source.groups[0]!.roleDependent, source.groups[0]!.promptDependent, prompt);
    const kind = m.metric === 'diffsim-dit' ? 'DiT' : isDiffsim ? 'U-Net' : 'encoder';
    console.error(`diffsim: sweep ${benchmark}: ${items.length} of ${all.length} items${shard ? ` (shard ${shard.index}/${shard.count})` : ''} × ${cells} cells in ${source.groups.length} group${source.groups.length === 1 ? '' : 's'}; ${source.groups.length} × ${perGroup} images and roles = ${source.groups.length * perGroup} ${kind} passes at most; cand1 counts as more similar when s1 ${direction === 'higher' ? '>' : '<'} s2`);
    const progress = new ItemProgress(items.length * cells, `sweep ${benchmark}`, { unit: 'rows' });
    const out = opt('out');
    const spill = opt('spill-dir');
    const r = await runSweep({
      benchmark,
      items,
      of: all.length,
      dir,
      ...(originalsDir !== undefined ? { originals: originalsDir } : {}),
      source,
      rule,
      ties,
      ...(prompt !== undefined ? { prompt } : {}),
      sweep,
      origin,
      ...(out !== undefined ? { out } : {}),
      maxLive,
      ...(spill !== undefined ? { spillDir: spill } : {}),
      onRow: () => progress.tick(),
    });
    progress.finish();
    const best = bestCell(r.cells)!;
    const title = `${benchmark} · ${m.metric} · ${basename(source.model)}`;
    if (opt('plot') !== undefined) await plot(opt('plot')!, r.cells, title);
    const memory: SweepMemory & { maxRssBytes: number } = { ...r.memory, maxRssBytes: process.resourceUsage().maxRSS * 1024 };
    if (json) {
      printJson({ benchmark, dir, metric: m.metric, model: source.model, items: items.length, of: all.length, cells: r.cells.map(cellJson), best: cellJson(best), passes: r.passes, computed: r.computed, resumed: r.resumed, seconds: Number(r.seconds.toFixed(3)), memory, ...(shard ? { shard: `${shard.index}/${shard.count}` } : {}), ...(out ? { out } : {}), sweep, tieRule: ties, settings: source.settings }, p.flags.has('pretty'));
    } else {
      console.log(`${title} · ${items.length} items${shard ? ` (shard ${shard.index}/${shard.count} of ${all.length})` : ''} · ${r.cells.length} cells (* best)`);
      for (const l of table(r.cells)) console.log(l);
      console.log(`passes    ${r.passes} ${kind} passes (${source.groups.length} group${source.groups.length === 1 ? '' : 's'} × ${perGroup} images and roles${r.resumed ? `, ${r.resumed} rows resumed from ${out}` : ''}) in ${r.seconds.toFixed(1)} s`);
      console.log(`memory    at most ${r.memory.peakLive} embedding bundles (${mib(r.memory.peakLiveBytes)}) on the GPU; ${r.memory.spilled} spilled to disk (at most ${mib(r.memory.peakSpillBytes)}); peak RSS ${mib(memory.maxRssBytes)}`);
    }
    return 0;
  } finally {
    await closeMetrics(metrics);
  }
}
