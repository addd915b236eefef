#!/usr/bin/env node
// The diffsim command line.

import { escapeControls, formatInspect, inspectFile } from './inspect.js';
import { printJson } from './json.js';
import { Runtime } from '../gpu/runtime.js';
import { FLAGS, formatFlag, resolveFlag, type FlagName } from '../gpu/flags.js';
import { F16_WEIGHTS_TOLERANCE, planParity, runParity, type ParityRow } from '../parity/parity.js';
import { UsageError } from './errors.js';
import { demoCommand, DEMO_USAGE, pickCommand, scoreCommand, SCORE_USAGE } from './score.js';
import { evalCommand, EVAL_USAGE } from './eval.js';
import { sweepCommand, SWEEP_USAGE } from './sweep.js';
import { mapCommand, MAP_USAGE } from './map.js';
import { retrieveCommand, RETRIEVE_USAGE } from './retrieve.js';
import { videoCommand, VIDEO_USAGE } from './video.js';
import { profileCommand, PROFILE_USAGE } from './profile.js';

const USAGE = `usage: diffsim <command> [options]

commands:
${DEMO_USAGE}
${SCORE_USAGE}
${EVAL_USAGE}
${SWEEP_USAGE}
${MAP_USAGE}
${RETRIEVE_USAGE}
${VIDEO_USAGE}
${PROFILE_USAGE}
  info [--json]            print the WebGPU adapter, backend, limits, features and flags (--json: one object)
  inspect FILE [--json]    list the tensors of a .safetensors file (or *.safetensors.index.json)
  parity --fixtures DIR [--only NAME,...] [--weights f32|f16|auto] [--json]
                           rebuild the models of a reference fixture folder and compare every
                           stored activation; prints one row per tensor and "N passed, M failed"
                           (--weights f16: linear/conv weights stored as f16, tolerance ${F16_WEIGHTS_TOLERANCE});
                           --json: one object { adapter, weights, rows, skipped, passed, failed }
  --json                   (every command that has it) one line on stdout holding one JSON object;
  --pretty                 with --json: the object indented over several lines
  --version, -V            print the package version

environment (diffsim info shows the values in use):
${Object.values(FLAGS).map((f) => `  ${f.env.padEnd(30)}  ${f.values}\n  ${''.padEnd(30)}  ${f.doc}`).join('\n')}`;

async function info(json: boolean, pretty: boolean): Promise<void> {
  const rt = await Runtime.create();
  try {
    const flags = Object.fromEntries((Object.keys(FLAGS) as FlagName[]).map((n) => [n, { value: rt.flags[n], source: rt.flagSources[n], env: FLAGS[n].env }]));
    const report = { adapter: rt.adapterInfo, features: [...rt.features].sort(), limits: rt.limits, tensorCores: { mode: rt.tensorCores, subgroupMatrix: rt.subgroupMatrix }, flags };
    if (json) {
      printJson(report, pretty);
      return;
    }
    const a = rt.adapterInfo;
    console.log(`adapter:   ${a.description || '(no description)'}${a.isFallbackAdapter ? ' [software fallback]' : ''}`);
    console.log(`vendor:    ${a.vendor || '-'}   architecture: ${a.architecture || '-'}   device: ${a.device || '-'}`);
    console.log(`host:      ${a.host}${a.backend ? `   backend: ${a.backend}` : ''}`);
    if (a.subgroupMinSize !== undefined) console.log(`subgroups: ${a.subgroupMinSize}..${a.subgroupMaxSize}`);
    if (a.subgroupMatrixConfigs) console.log(`subgroup matrices: ${a.subgroupMatrixConfigs.map((c) => `${c.M}x${c.N}x${c.K} ${c.componentType}→${c.resultComponentType}`).join(', ')}`);
    const sm = rt.subgroupMatrix;
    console.log(`tensor cores: ${sm ? `${sm.M}x${sm.N}x${sm.K} f16→f32, subgroups of ${sm.subgroupSize}, ${sm.syntax} builtins` : 'none (SIMT kernels)'}   mode: ${rt.tensorCores}`);
    console.log(`features:  ${report.features.join(', ') || '(none)'}`);
    console.log('flags:');
    for (const [n, f] of Object.entries(flags)) console.log(`  ${n.padEnd(20)} ${(formatFlag(f.value) || "''").padEnd(10)} ${f.source === 'env' ? `env ${f.env}` : f.source}`);
    console.log('limits:');
    for (const [k, v] of Object.entries(rt.limits).sort(([x], [y]) => x.localeCompare(y))) console.log(`  ${k.padEnd(44)} ${v}`);
  } finally {
    await rt.close();
  }
}

function formatRow(r: ParityRow): string {
  if (r.kind === 'skipped') return `skip  ${`${r.fixture}/${r.name}`.padEnd(72)} ${'-'.padStart(14)}  ${r.note ?? ''}`;
  const err = r.kind === 'exact' ? `${r.err} mismatches` : Number.isFinite(r.err) ? r.err.toExponential(2) : 'inf';
  const tol = r.kind === 'exact' ? 'exact' : `${r.kind === 'absolute' ? 'abs ' : ''}${r.tol.toExponential(0)}`;
  return `${r.pass ? 'pass' : 'FAIL'}  ${`${r.fixture}/${r.name}`.padEnd(72)} ${err.padStart(14)}  ${tol}${r.note ? `  (${r.note})` : ''}`;
}

async function parity(args: string[]): Promise<number> {
  let dir: string | undefined;
  let only: string[] | undefined;
  let weights: string | undefined = 'f32';
  let json = false;
  let pretty = false;
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '--json') json = true;
    else if (a === '--pretty') pretty = true;
    else if (a === '--fixtures') dir = args[++i];
    else if (a.startsWith('--fixtures=')) dir = a.slice('--fixtures='.length);
    else if (a === '--weights') weights = args[++i];
    else if (a.startsWith('--weights=')) weights = a.slice('--weights='.length);
    else if (a === '--only') only = args[++i]?.split(',').filter(Boolean);
    else if (a.startsWith('--only=')) only = a.slice('--only='.length).split(',').filter(Boolean);
    else throw new UsageError(`parity: unknown argument ${a}`);
  }
  if (!dir) throw new UsageError('parity: --fixtures DIR is required');
  if (pretty && !json) throw new UsageError('parity: --pretty goes with --json');
  if (only && only.length === 0) throw new UsageError('parity: --only needs at least one folder name');
  if (weights !== 'f32' && weights !== 'f16' && weights !== 'auto') throw new UsageError(`parity: --weights must be f32, f16 or auto, got ${weights ?? '(nothing)'}`);
  // The folder and the selection are checked before the GPU is opened.
  await planParity(dir, only);
  // The fixtures check the f32 kernels (f16 weights widen to f32 in them): no tensor cores.
  const rt = await Runtime.create({ tensorCores: 'off' });
  try {
    if (!json) {
      console.log(`adapter: ${rt.adapterInfo.description}`);
      console.log(`${'     tensor'.padEnd(78)} ${'error'.padStart(14)}  tolerance`);
      if (weights === 'f16') console.log(`linear/conv weights rounded to f16 on the GPU: every tolerance is ${F16_WEIGHTS_TOLERANCE}`);
    }
    const { rows, skipped } = await runParity(rt, dir, only, json ? () => {} : (r) => console.log(formatRow(r)), { weights });
    const compared = rows.filter((r) => r.kind !== 'skipped');
    const failed = compared.filter((r) => !r.pass).length;
    const ok = failed === 0 && compared.length > 0 ? 0 : 1;
    if (json) {
      // A non-finite error (inf) is written as null, as JSON has no infinity.
      printJson({ adapter: rt.adapterInfo.description, weights, rows, skipped, passed: compared.length - failed, failed }, pretty);
      return ok;
    }
    for (const s of skipped) console.log(`skip  ${s} (not supported yet)`);
    const worst = new Map<string, number>();
    for (const r of rows) if (r.kind === 'normalised') worst.set(r.fixture, Math.max(worst.get(r.fixture) ?? 0, r.err));
    for (const [f, e] of worst) console.log(`worst normalised error ${f}: ${e.toExponential(2)}`);
    const skippedRows = rows.length - compared.length;
    if (skippedRows) console.log(`${skippedRows} stored entries skipped (listed above with "skip")`);
    console.log(`${compared.length - failed} passed, ${failed} failed`);
    return ok;
  } finally {
    await rt.close();
  }
}

async function main(argv: string[]): Promise<number> {
  resolveFlag('debug'); // a bad DIFFSIM_DEBUG is reported like any other error
  const [command, ...rest] = argv;
  if (command === 'parity') return parity(rest);
  if (command === 'score') return scoreCommand(rest);
  if (command === 'pick') return pickCommand(rest);
  if (command === 'demo') return demoCommand(rest);
  if (command === 'retrieve') return retrieveCommand(rest);
  if (command === 'eval' && rest[0] === 'video') return videoCommand(rest.slice(1));
  if (command === 'eval') return evalCommand(rest);
  if (command === 'sweep') return sweepCommand(rest);
  if (command === 'map') return mapCommand(rest);
  if (command === 'profile') return profileCommand(rest);
  const flags = new Set(rest.filter((a) => a.startsWith('--')));
  const positional = rest.filter((a) => !a.startsWith('--'));
  switch (command) {
    case 'info':
      for (const f of flags) if (f !== '--json' && f !== '--pretty') throw new UsageError(`info: unknown option ${f}`);
      if (flags.has('--pretty') && !flags.has('--json')) throw new UsageError('info: --pretty goes with --json');
      if (positional.length) throw new UsageError(`info: unexpected argument ${positional[0]} (info takes only --json and --pretty)`);
      await info(flags.has('--json'), flags.has('--pretty'));
      return 0;
    case 'inspect': {
      for (const f of flags) if (f !== '--json' && f !== '--pretty') throw new UsageError(`inspect: unknown option ${f}`);
      if (flags.has('--pretty') && !flags.has('--json')) throw new UsageError('inspect: --pretty goes with --json');
      if (positional.length !== 1) throw new UsageError('inspect: expected exactly one FILE');
      const path = positional[0]!;
      const report = await inspectFile(path);
      if (flags.has('--json')) printJson({ tensors: report.tensors, metadata: report.metadata }, flags.has('--pretty'));
      else console.log(formatInspect(path, report));
      return 0;
    }
    case '--version':
    case '-V':
      console.log(`diffsim ${await packageVersion()}`);
      return 0;
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      console.log(USAGE);
      return command === undefined ? 2 : 0;
    default:
      throw new UsageError(`unknown command '${command}'`);
  }
}

/** The version in the package's own package.json (dist/cli/main.js → ../../package.json). */
async function packageVersion(): Promise<string> {
  const { readFile } = await import('node:fs/promises');
  const pkg = JSON.parse(await readFile(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: unknown };
  if (typeof pkg.version !== 'string') throw new Error('package.json: no "version"');
  return pkg.version;
}

function debug(): boolean {
  try {
    return resolveFlag('debug').value;
  } catch {
    return false;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    const message = err instanceof Error ? err.message : String(err);
    // One line, no stack: the message names the argument or file (DIFFSIM_DEBUG=1 adds the stack).
    const hint = err instanceof UsageError ? ' (diffsim --help lists the commands and options)' : '';
    console.error(`diffsim: ${escapeControls(message.split('\n')[0]!)}${hint}`);
    if (debug() && err instanceof Error) console.error(err.stack);
    process.exitCode = err instanceof UsageError ? 2 : 1;
  },
);
