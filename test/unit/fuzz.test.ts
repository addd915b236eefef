// Robustness: thousands of seeded random mutations of valid PNG, JPEG, BMP and safetensors files
// (truncation, byte flips, inflated dimensions, lying lengths and fields, inserted chunks and
// markers), run in a child process with a bounded heap. Every case must end with a decoded image
// (or read tensors) or a clear ImageDecodeError / SafetensorsError / FileError naming the file;
// no other exception, no crash, no hang, each case within a time bound, and the child's peak
// resident memory under a bound.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const SEED = Number(process.env.DIFFSIM_FUZZ_SEED ?? 20250601);
const CASES = Number(process.env.DIFFSIM_FUZZ_CASES ?? 10000);
/** Per-case wall time (ms) and peak RSS of the whole child (MiB). */
const CASE_MS = 1000;
const PEAK_RSS_MIB = 400;

test(`${CASES} mutated files: decoded or a clear error, each fast, memory bounded (seed ${SEED})`, () => {
  const child = join(dirname(fileURLToPath(import.meta.url)), '..', 'support', 'mutation-child.js');
  const r = spawnSync(process.execPath, ['--max-old-space-size=512', child, String(SEED), String(CASES)], {
    encoding: 'utf8',
    timeout: 120_000,
    env: { ...process.env, DIFFSIM_MUTATION_CHILD: '1' },
    maxBuffer: 16 * 2 ** 20,
  });
  const progress = r.stderr.trim().split('\n').pop() ?? '';
  assert.ok(r.status === 0, `child ended with ${r.status ?? r.signal} (hang or crash?) after ${progress}\n${r.stderr.slice(-2000)}`);
  const s = JSON.parse(r.stdout.trim().split('\n').pop()!) as {
    cases: number;
    outcomes: Record<string, number>;
    failures: string[];
    failureCount: number;
    worstMs: number;
    worstCase: string;
    maxRssMiB: number;
  };
  console.log(`fuzz: ${s.cases} cases ${JSON.stringify(s.outcomes)}; slowest ${s.worstMs.toFixed(1)} ms (${s.worstCase}); peak RSS ${s.maxRssMiB.toFixed(0)} MiB`);
  assert.is(s.cases, CASES);
  assert.equal(s.failures, [], `${s.failureCount} cases ended otherwise`);
  assert.ok(s.worstMs < CASE_MS, `slowest case ${s.worstMs.toFixed(0)} ms: ${s.worstCase}`);
  assert.ok(s.maxRssMiB < PEAK_RSS_MIB, `peak RSS ${s.maxRssMiB.toFixed(0)} MiB`);
  // The mutations reach both outcomes for every kind of input.
  for (const k of ['image:decoded', 'image:error', 'safetensors:decoded', 'safetensors:error']) assert.ok((s.outcomes[k] ?? 0) > 0, `${k} never happened`);
});

test.run();
