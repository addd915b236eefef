#!/usr/bin/env node
// Builds the package (dist/) and the tests (build/), runs the Node test suites (uvu) tier by tier,
// the Deno smoke test and the packed-package smoke test, and prints one closing line "N passed,
// M failed" over all suites. Exit code 0 only when nothing failed.
//   node scripts/test.mjs             everything (what CI runs: `npm test`)
//   node scripts/test.mjs --quick     the unit, kernels and models tiers only (`npm run test:quick`)
//   node scripts/test.mjs PATTERN     the uvu test files whose path under build/test matches PATTERN
//                                     (a regex, e.g. 'cli/' or 'hub\.test\.js$'); no Deno or package
//                                     smoke tests
// The tiers are the folders of test/: unit, kernels, models, metrics, cli, browser, docs (shared code in
// test/support, reference data in test/fixtures).
// A test file anywhere else under test/ (at its top level, say) runs in the full run as "other".
import { spawnSync } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const TIERS = ['unit', 'kernels', 'models', 'metrics', 'cli', 'browser', 'docs'];
const QUICK = ['unit', 'kernels', 'models'];
const arg = process.argv[2];
const quick = arg === '--quick';
const pattern = quick ? undefined : arg;
const everything = arg === undefined;
let passed = 0;
let failed = 0;

function run(cmd, args, label) {
  console.log(`\n== ${label}`);
  const started = Date.now();
  const r = spawnSync(cmd, args, { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, FORCE_COLOR: '0' } });
  const out = `${r.stdout ?? ''}${r.stderr ?? ''}`;
  process.stdout.write(out.endsWith('\n') || !out ? out : `${out}\n`);
  if (r.error) console.log(`${label}: could not start: ${r.error.message}`);
  console.log(`(${label}: ${((Date.now() - started) / 1000).toFixed(1)} s)`);
  return { code: r.status ?? 1, out };
}

const tscBin = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
// Compiled tests of files since moved or deleted would run again: build/test is rebuilt whole.
rmSync(join(root, 'build', 'test'), { recursive: true, force: true });
for (const [config, label] of [['tsconfig.json', 'build the package (tsc → dist)'], ['tsconfig.test.json', 'build the tests and benches (tsc → build)']]) {
  if (run(process.execPath, [tscBin, '-p', config], label).code !== 0) {
    console.log('0 passed, 1 failed');
    process.exit(1);
  }
}

/** One uvu run over the test files under build/test whose relative path matches `regex`. */
function uvu(regex, label) {
  const r = run(process.execPath, [join(root, 'node_modules', 'uvu', 'bin.js'), 'build/test', regex], label);
  const total = /Total:\s+(\d+)/.exec(r.out);
  const ok = /Passed:\s+(\d+)/.exec(r.out);
  if (total && ok) {
    passed += Number(ok[1]);
    failed += Number(total[1]) - Number(ok[1]);
  }
  if (r.code !== 0 && !(total && Number(total[1]) > Number(ok?.[1] ?? 0))) failed += 1; // crashed outside a test
}

const SEP = '[\\\\/]';
if (pattern !== undefined) uvu(pattern, `node suites matching ${pattern} (uvu)`);
else {
  for (const tier of quick ? QUICK : TIERS) uvu(`^${tier}${SEP}.*\\.test\\.js$`, `${tier} (uvu, test/${tier})`);
  // Test files outside the tier folders (new files left at test/'s top level, say) run too.
  if (!quick) uvu(`^(?!(${[...TIERS, 'support'].join('|')})${SEP}).*\\.test\\.js$`, 'other test files (uvu, outside the tier folders)');
}

const deno = join(root, 'node_modules', '.bin', 'deno');
if (everything || (!quick && process.env.DIFFSIM_TEST_DENO === '1')) {
  if (existsSync(deno)) {
    const d = run(deno, ['run', '--allow-read', '--allow-env', 'test/deno/smoke.mjs'], 'deno smoke test (navigator.gpu)');
    const m = /deno: (\d+) passed, (\d+) failed/.exec(d.out);
    if (m) {
      passed += Number(m[1]);
      failed += Number(m[2]);
    } else failed += 1;
  } else {
    console.log('deno is not installed (npm install brings it as a dev dependency)');
    failed += 1;
  }
}

if (everything || (!quick && process.env.DIFFSIM_TEST_PACK === '1')) {
  const p = run(process.execPath, [join(root, 'scripts', 'pack-smoke.mjs')], 'packed package (npm pack → install → import, npx, demo, tsc, deno)');
  const m = /pack: (\d+) passed, (\d+) failed/.exec(p.out);
  if (m) {
    passed += Number(m[1]);
    failed += Number(m[2]);
  } else failed += 1;
}

console.log(`\n${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
