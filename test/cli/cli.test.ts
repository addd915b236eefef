// Slow suite: about 24 s of CPU on lavapipe (84 s wall on a shared 2-core machine).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { closeSync, constants, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FIXTURES, runCli } from '../support/helpers.js';
import { header, malformedCorpus } from '../support/corpus.js';
import { encodeSafetensors, setOwn, type TensorToWrite } from '../../src/io/safetensors.js';

const tmp = mkdtempSync(join(tmpdir(), 'diffsim-cli-'));

function cli(...args: string[]) {
  return cliWith({}, ...args);
}

function cliWith(env: Record<string, string>, ...args: string[]) {
  return runCli(args, { env, timeout: 60_000, maxBuffer: 256 * 2 ** 20 });
}

test('--version and -V print the package version alone on stdout', () => {
  const version = (JSON.parse(readFileSync(join(FIXTURES, '..', '..', 'package.json'), 'utf8')) as { version: string }).version;
  for (const flag of ['--version', '-V']) {
    const r = runCli([flag]);
    assert.is(r.code, 0, r.stderr);
    assert.is(r.stdout, `diffsim ${version}\n`, flag);
  }
});

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

/** Characters a terminal acts on (C0, DEL, C1) or that reorder text (bidi controls). */
const RAW_CONTROL = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/;

test('inspect escapes terminal control characters in names and metadata; --json keeps the values exact', () => {
  const names = ['evil\x1b[31mred', 'bidi\u202eevil', 'c1\u009b2J', 'del\x7f', 'line\nbreak', '__proto__', 'plain'];
  const tensors: Record<string, TensorToWrite> = {};
  for (const n of names) setOwn(tensors, n, { dtype: 'F32', shape: [1], data: Float32Array.from([1]) });
  const metadata: Record<string, string> = { 'title\x1b]0;pwned\x07': 'clear\x1b[2J\u2066screen', format: 'pt' };
  const path = join(tmp, 'controls.safetensors');
  writeFileSync(path, encodeSafetensors(tensors, metadata));
  const r = cli('inspect', path);
  assert.is(r.code, 0, r.stderr);
  assert.not.match(r.stdout.replace(/\n/g, ''), RAW_CONTROL, 'no raw control characters');
  assert.ok(r.stdout.includes('evil\\x1b[31mred'), 'ESC shown as \\x1b');
  assert.ok(r.stdout.includes('bidi\\u{202e}evil'), 'bidi override shown');
  assert.ok(r.stdout.includes('c1\\x9b2J') && r.stdout.includes('del\\x7f') && r.stdout.includes('line\\nbreak'), 'C1, DEL, newline shown');
  assert.ok(r.stdout.includes('title\\x1b]0;pwned\\x07: clear\\x1b[2J\\u{2066}screen'), 'metadata escaped');
  assert.match(r.stdout, /^  __proto__\s+F32\s+\[1\]$/m, '__proto__ listed');
  assert.match(r.stdout, /: 7 tensors, 7 parameters/);
  const j = cli('inspect', path, '--json');
  assert.is(j.code, 0, j.stderr);
  assert.not.match(j.stdout, RAW_CONTROL, 'JSON output has no raw control characters either');
  const parsed = JSON.parse(j.stdout) as { tensors: Record<string, unknown>; metadata: Record<string, string> };
  assert.equal(Object.keys(parsed.tensors).sort(), [...names].sort(), 'exact names');
  assert.equal(parsed.metadata, metadata, 'exact metadata');
  // Error lines are escaped too.
  const bad = join(tmp, 'bad-name.safetensors');
  writeFileSync(bad, header('{"x\\u001b[2J\\u009b":5}'));
  const e = cli('inspect', bad);
  assert.is(e.code, 1);
  assert.not.match(e.stderr, RAW_CONTROL);
  assert.match(e.stderr, /entry is not an object/);
});

test('inspect survives a 10,000-deep shape and 150,000 tensors', () => {
  const deep = join(tmp, 'deep.safetensors');
  writeFileSync(deep, header(`{"w":{"dtype":"F32","shape":${'['.repeat(10_000)}${']'.repeat(10_000)},"data_offsets":[0,4]}}`, 4));
  const d = cli('inspect', deep);
  assert.is(d.code, 1, 'exit code');
  assert.match(d.stderr, /^diffsim: .*deep\.safetensors: tensor "w": shape \[+…\]+ is not a list of non-negative integers$/);
  const many: Record<string, TensorToWrite> = {};
  for (let i = 0; i < 150_000; i++) many[`t${i}`] = { dtype: 'F32', shape: [0], data: new Float32Array(0) };
  const big = join(tmp, 'many.safetensors');
  writeFileSync(big, encodeSafetensors(many));
  const r = cli('inspect', big);
  assert.is(r.code, 0, r.stderr);
  assert.match(r.stdout, /^.*many\.safetensors: 150000 tensors, 0 parameters\n/);
  const j = cli('inspect', big, '--json');
  assert.is(j.code, 0, j.stderr);
  assert.is(Object.keys((JSON.parse(j.stdout) as { tensors: object }).tensors).length, 150_000);
});

test('inspect refuses a FIFO at once instead of blocking', () => {
  const fifo = join(tmp, 'pipe.safetensors');
  if (spawnSync('mkfifo', [fifo]).status !== 0) return;
  const t0 = Date.now();
  const r = runCli(['inspect', fifo], { timeout: 10_000 });
  try {
    closeSync(openSync(fifo, constants.O_WRONLY | constants.O_NONBLOCK)); // release a blocked reader, if any
  } catch {
    // none
  }
  assert.is(r.code, 1, `exit code (${r.signal ?? ''}: blocked?)`);
  assert.match(r.stderr, /pipe\.safetensors: not a regular file \(a FIFO\)/);
  assert.ok(Date.now() - t0 < 9000, 'did not wait');
});

test('parity checks the folder and --only before opening the GPU', () => {
  // With an unusable backend, any error about the GPU means it was opened first.
  const env = { DIFFSIM_DAWN_BACKEND: 'no-such-backend' };
  const missing = cliWith(env, 'parity', '--fixtures', join(tmp, 'no-such-folder'));
  assert.is(missing.code, 1);
  assert.match(missing.stderr, /^diffsim: .*no-such-folder\/index\.json: cannot read \(no such file\)$/);
  assert.not.match(missing.stdout, /adapter:/);
  const only = cliWith(env, 'parity', '--fixtures', FIXTURES, '--only', 'scheduler,no-such-fixture');
  assert.is(only.code, 1);
  assert.match(only.stderr, /--only: "no-such-fixture" is not a fixture folder/);
  writeFileSync(join(tmp, 'index.json'), 'not json');
  const invalid = cliWith(env, 'parity', '--fixtures', tmp);
  assert.is(invalid.code, 1);
  assert.match(invalid.stderr, /index\.json: not a fixture index/);
});

test.after(() => rmSync(tmp, { recursive: true, force: true }));
test.run();
