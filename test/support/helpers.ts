// Shared test utilities: the runtime, seeded random data, error measures.

import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { getRuntime, Runtime, tidy, type Tensor } from '../../src/gpu/runtime.js';
import type { FlagOptions } from '../../src/gpu/flags.js';
import { normalisedError } from '../../src/parity/parity.js';
import { SafetensorsFile, rawToInt32 } from '../../src/io/safetensors.js';

/** Compiled tests run from build/test/<kind>/ (this file from build/test/support/); the fixtures
 *  stay in the source tree. */
export const REPO_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
export const FIXTURES = join(REPO_ROOT, 'test', 'fixtures');

/** The command as the package declares it (package.json "bin"), built by `tsc -p tsconfig.json`. */
export const CLI = join(REPO_ROOT, (JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { bin: { diffsim: string } }).bin.diffsim);

export interface CliResult {
  code: number | null;
  /** Set when the command was killed (its timeout, for one). */
  signal: NodeJS.Signals | null;
  stdout: string;
  /** Without empty lines (the command's stderr as it printed it otherwise). */
  stderr: string;
}

export interface CliOptions {
  /** Variables set on top of this process's environment. */
  env?: Readonly<Record<string, string>>;
  /** Milliseconds before the command is killed (default: no limit). */
  timeout?: number;
  /** Most bytes read from stdout or stderr (default: Node's, 1 MiB). */
  maxBuffer?: number;
}

/** `stderr` without empty lines. Nothing else is removed: the command's stderr carries no lines of
 *  Dawn's (its adapter notices are dropped by the command itself, src/cli/stderr-filter.ts). */
export function nonEmptyLines(stderr: string): string {
  return stderr
    .split('\n')
    .filter((l) => l)
    .join('\n');
}

/** Runs the built command with `args` and waits for it. */
export function runCli(args: readonly string[], o: CliOptions = {}): CliResult {
  const r = spawnSync(process.execPath, [CLI, ...args], {
    encoding: 'utf8',
    env: { ...process.env, ...o.env },
    ...(o.timeout !== undefined ? { timeout: o.timeout } : {}),
    ...(o.maxBuffer !== undefined ? { maxBuffer: o.maxBuffer } : {}),
  });
  return { code: r.status, signal: r.signal, stdout: r.stdout, stderr: nonEmptyLines(r.stderr) };
}

/** The environment of a run with the hub offline and its own hub cache under `hfHome` (no token). */
export function offlineHub(hfHome: string): Record<string, string> {
  return { HF_HUB_OFFLINE: '1', HF_HOME: hfHome, HF_HUB_CACHE: join(hfHome, 'hub'), HF_TOKEN: '' };
}

export function runtime(): Promise<Runtime> {
  return getRuntime();
}

/** mulberry32: a small seeded PRNG. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Standard normal values (Box–Muller), times `scale`. */
export function randn(n: number, seed: number, scale = 1): Float32Array {
  const r = rng(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i += 2) {
    const u = Math.max(r(), 1e-12);
    const v = r();
    const rad = Math.sqrt(-2 * Math.log(u));
    out[i] = rad * Math.cos(2 * Math.PI * v) * scale;
    if (i + 1 < n) out[i + 1] = rad * Math.sin(2 * Math.PI * v) * scale;
  }
  return out;
}

/** max|a − b| / max(1, max|b|): the fixtures README's normalised error (the one `diffsim parity` uses). */
export const normErr = normalisedError;

export function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: number, label: string): void {
  assert.is(actual.length, expected.length, `${label}: length`);
  const err = normErr(actual, expected);
  assert.ok(err <= tol, `${label}: normalised error ${err.toExponential(2)} over tolerance ${tol}`);
}

/** Expects `fn` (sync or async) to throw an error whose message matches `pattern`. */
export async function rejects(fn: () => unknown, pattern: RegExp, label: string): Promise<void> {
  try {
    await fn();
  } catch (e) {
    const msg = (e as Error).message;
    assert.match(msg, pattern, `${label}: message "${msg}"`);
    return;
  }
  assert.unreachable(`${label}: expected an error matching ${pattern}`);
}

/** Reads a tensor back and disposes it. */
export async function take(t: Tensor): Promise<Float32Array> {
  try {
    return (await t.read()) as Float32Array;
  } finally {
    t.dispose();
  }
}

/** Runs the synchronous ops of `fn` in a tidy (inputs uploaded inside are freed), reads the result
 *  back and frees it. */
export function compute(fn: () => Tensor): Promise<Float32Array> {
  return take(tidy(fn));
}

/** Runs an async block (a place for block-local names in a loop body). */
export async function block(fn: () => Promise<void>): Promise<void> {
  await fn();
}

const flagged = new Map<string, Promise<Runtime>>();

/** A runtime created with these flags (src/gpu/flags.ts; the others from the environment), one per
 *  distinct set, kept for the rest of the suite: a runtime compiles its own pipelines, so sharing it
 *  saves the compiles on a CPU adapter. */
export function runtimeWith(flags: FlagOptions): Promise<Runtime> {
  const key = JSON.stringify(Object.entries(flags).sort(([x], [y]) => x.localeCompare(y)));
  let rt = flagged.get(key);
  if (!rt) {
    rt = Runtime.create({ flags });
    flagged.set(key, rt);
    rt.catch(() => flagged.delete(key));
  }
  return rt;
}

/** unet-tiny's stored inputs on the GPU (sample, timesteps, text states) and its reference output;
 *  `dispose` frees the tensors and closes the file. */
export async function unetTinyInputs(rt: Runtime): Promise<{ sample: Tensor; t: number[]; text: Tensor; ref: Float32Array; dispose(): Promise<void> }> {
  const acts = await SafetensorsFile.open(join(FIXTURES, 'unet-tiny', 'activations.safetensors'));
  const up = async (n: string) => {
    const { shape, data } = await acts.readFloat32(n);
    return rt.upload(data, shape);
  };
  const sample = await up('input.sample');
  const text = await up('input.encoder_hidden_states');
  const t = [...rawToInt32(await acts.readRaw('input.timestep'))];
  const ref = (await acts.readFloat32('output.sample')).data;
  return {
    sample,
    t,
    text,
    ref,
    dispose: async () => {
      sample.dispose();
      text.dispose();
      await acts.close();
    },
  };
}
