#!/usr/bin/env node
// Builds the package (dist/) and the tests (build/), runs the Node test suites (uvu), the Deno smoke
// test and the packed-package smoke test, and prints one closing line "N passed, M failed" over all
// suites. Exit code 0 only when nothing failed.
//   node scripts/test.mjs [pattern]     pattern filters the uvu test files (regex); with a pattern
//                                       the Deno and package smoke tests are skipped
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const pattern = process.argv[2] ?? '\\.test\\.js$';
let passed = 0;
let failed = 0;

function run(cmd, args, label) {
  console.log(`\n== ${label}`);
  const r = spawnSync(cmd, args, { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, FORCE_COLOR: '0' } });
  const out = `${r.stdout ?? ''}${r.stderr ?? ''}`;
  process.stdout.write(out.endsWith('\n') ? out : `${out}\n`);
  if (r.error) console.log(`${label}: could not start: ${r.error.message}`);
  return { code: r.status ?? 1, out };
}

const tscBin = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
for (const [config, label] of [['tsconfig.json', 'build the package (tsc → dist)'], ['tsconfig.test.json', 'build the tests and benches (tsc → build)']]) {
  if (run(process.execPath, [tscBin, '-p', config], label).code !== 0) {
    console.log('0 passed, 1 failed');
    process.exit(1);
  }
}

const uvu = run(process.execPath, [join(root, 'node_modules', 'uvu', 'bin.js'), 'build/test', pattern], 'node suites (uvu)');
const total = /Total:\s+(\d+)/.exec(uvu.out);
const ok = /Passed:\s+(\d+)/.exec(uvu.out);
if (total && ok) {
  passed += Number(ok[1]);
  failed += Number(total[1]) - Number(ok[1]);
}
if (uvu.code !== 0 && !(total && Number(total[1]) > Number(ok?.[1] ?? 0))) failed += 1; // crashed outside a test

const deno = join(root, 'node_modules', '.bin', 'deno');
if (process.argv[2] === undefined || process.env.DIFFSIM_TEST_DENO === '1') {
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

if (process.argv[2] === undefined || process.env.DIFFSIM_TEST_PACK === '1') {
  const p = run(process.execPath, [join(root, 'scripts', 'pack-smoke.mjs')], 'packed package (npm pack → install → import, npx, tsc, deno)');
  const m = /pack: (\d+) passed, (\d+) failed/.exec(p.out);
  if (m) {
    passed += Number(m[1]);
    failed += Number(m[2]);
  } else failed += 1;
}

console.log(`\n${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
