import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FIXTURES, REPO_ROOT } from './helpers.js';
import { malformedCorpus } from './corpus.js';

// The command as the package declares it (package.json "bin"), built by `tsc -p tsconfig.json`.
const CLI = join(REPO_ROOT, (JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { bin: { diffsim: string } }).bin.diffsim);
const tmp = mkdtempSync(join(tmpdir(), 'diffsim-cli-'));

function cli(...args: string[]) {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 60_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr.split('\n').filter((l) => l && !l.startsWith('Warning: maxDynamic')).join('\n') };
}

test('inspect --json reproduces index.json for every fixture file in the repo', () => {
  const index = JSON.parse(readFileSync(join(FIXTURES, 'index.json'), 'utf8')) as { files: Record<string, { tensors: Record<string, { shape: number[]; dtype: string }>; config?: unknown }> };
  for (const [rel, entry] of Object.entries(index.files)) {
    const r = cli('inspect', join(FIXTURES, rel), '--json');
    assert.is(r.code, 0, `${rel}: exit code (${r.stderr})`);
    const out = JSON.parse(r.stdout) as { tensors: Record<string, { dtype: string; shape: number[] }>; metadata: Record<string, string> };
    const expected: Record<string, { dtype: string; shape: number[] }> = {};
    for (const [name, t] of Object.entries(entry.tensors)) expected[name] = { dtype: t.dtype, shape: t.shape };
    assert.equal(out.tensors, expected, `${rel}: tensors`);
    if (entry.config) assert.equal(JSON.parse(out.metadata.config!), entry.config, `${rel}: config metadata`);
  }
});

test('inspect prints names, dtypes, shapes, the parameter count and metadata', () => {
  const r = cli('inspect', join(FIXTURES, 'scheduler', 'pndm_sd15.safetensors'));
  assert.is(r.code, 0);
  assert.match(r.stdout, /14 tensors, 7,639 parameters/);
  assert.match(r.stdout, /alphas_cumprod\s+F32\s+\[1000\]/);
  assert.match(r.stdout, /metadata:\n\s+format: pt/);
});

test('malformed files: exit code 1 and one line naming the file and the problem', () => {
  for (const [name, bytes, pattern] of malformedCorpus()) {
    const path = join(tmp, name);
    writeFileSync(path, bytes);
    const r = cli('inspect', path);
    assert.is(r.code, 1, `${name}: exit code`);
    assert.is(r.stdout, '', `${name}: nothing on stdout`);
    const lines = r.stderr.split('\n');
    assert.is(lines.length, 1, `${name}: one line, got ${JSON.stringify(r.stderr)}`);
    assert.match(lines[0]!, new RegExp(`^diffsim: ${path.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}: `), `${name}: names the file`);
    assert.match(lines[0]!, pattern, `${name}: names the problem`);
    assert.not.match(r.stderr, /\n\s+at /, `${name}: no stack trace`);
  }
  const missing = cli('inspect', join(tmp, 'nope.safetensors'));
  assert.is(missing.code, 1);
  assert.match(missing.stderr, /nope\.safetensors: cannot open \(no such file\)/);
});

test('usage errors exit with 2', () => {
  assert.is(cli('inspect').code, 2);
  assert.is(cli('frobnicate').code, 2);
  assert.is(cli('--help').code, 0);
});

test('info prints the adapter, limits and features', () => {
  const r = cli('info', '--json');
  assert.is(r.code, 0, r.stderr);
  const info = JSON.parse(r.stdout) as { adapter: { description: string; host: string }; limits: Record<string, number>; features: string[] };
  assert.is(info.adapter.host, 'node-dawn');
  assert.ok(info.limits.maxStorageBufferBindingSize! >= 128 * 1024 * 1024);
  assert.ok(Array.isArray(info.features));
});

test.after(() => rmSync(tmp, { recursive: true, force: true }));
test.run();
