// The documentation runs: every `sh example`, `js example` and `deno example` block of README.md and
// docs/**/*.md is run against the tiny models (test/doc-examples.ts states the rules), and its
// printed output must match the `text output` block after it. Also: every command and option of
// `diffsim --help` is documented in docs/cli.md, docs/environment.md is what the flags registry
// generates, and the docs name no file outside the repository.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { allExamples, docFiles, examplesOf, matchOutput, shCommands, denoFlags, runExample } from './doc-examples.js';
import { REPO_ROOT, runCli } from '../support/helpers.js';
import { METRIC_FLAGS, METRIC_VALUE_OPTIONS } from '../../src/cli/metric-options.js';
import { FLAGS as EVAL_FLAGS, VALUE_OPTIONS as EVAL_VALUE_OPTIONS } from '../../src/cli/eval.js';

const examples = allExamples(REPO_ROOT);
const started = performance.now();
const durations: [string, number][] = [];

test('the package is built (the examples run dist/)', () => {
  assert.ok(existsSync(join(REPO_ROOT, 'dist', 'cli', 'main.js')) && existsSync(join(REPO_ROOT, 'dist', 'index.js')), 'dist/ is missing: run `npm run build` (npm test does) before the docs test');
});

test('the harness: fences, kinds, output blocks and the number rule', () => {
  const md = ['text', '```sh example', 'diffsim score a.png b.png # c', '```', '', '```text output', '0.5', '```', '```js', 'x', '```', '````js example', 'console.log(1)', '````'].join('\n');
  const ex = examplesOf(md, 'x.md');
  assert.is(ex.length, 2);
  assert.equal([ex[0]!.kind, ex[0]!.line, ex[0]!.expected], ['sh', 2, '0.5']);
  assert.equal(shCommands(ex[0]!.code), [{ env: {}, args: ['score', 'a.png', 'b.png'] }]);
  assert.equal(shCommands('HF_HUB_OFFLINE=1 npx diffsim map a b \\\n  -o "m a.png"'), [{ env: { HF_HUB_OFFLINE: '1' }, args: ['map', 'a', 'b', '-o', 'm a.png'] }]);
  assert.throws(() => shCommands('ls | diffsim'), /only plain diffsim/);
  assert.throws(() => shCommands('rm -rf x'), /only diffsim command lines/);
  assert.throws(() => examplesOf('```js examples\n```', 'y.md'), /unknown example kind/);
  assert.throws(() => examplesOf('```js\n```\n```text output\n1\n```', 'y.md'), /must follow an example/);
  assert.equal(denoFlags('// deno run --allow-read --allow-env example.mjs\n'), ['--allow-read', '--allow-env']);
  assert.throws(() => denoFlags('import x from "diffsim";'), /starts with the command/);
  assert.is(matchOutput('0.68616384267\n', '0.6861638'), null);
  assert.is(matchOutput('80.904\n', '80.90423583984375'), null);
  assert.ok(matchOutput('0.69\n', '0.6861638'), 'a number off by more than 1e-4 of its size');
  assert.ok(matchOutput('3\n', '4'), 'integers match exactly');
  assert.ok(matchOutput('score 1\n', 'Score 1'), 'text matches exactly');
  assert.ok(matchOutput('1\n2\n', '1'), 'a line too many');
  assert.is(matchOutput('took 1.5 s in /tmp/x\n', 'took … in …'), null);
});

test('every Markdown file under docs/ is scanned (files added later included)', () => {
  const files = docFiles(REPO_ROOT);
  assert.ok(files.includes('README.md') && files.includes('docs/cli.md') && files.includes('docs/library.md'), files.join(', '));
  assert.ok(examples.length >= 10, `only ${examples.length} example blocks`);
});

for (const ex of examples) {
  test(`${ex.file}:${ex.line} (${ex.kind} example) runs${ex.expected !== undefined ? ' and prints its text output' : ''}`, () => {
    const t0 = performance.now();
    const r = runExample(REPO_ROOT, ex);
    durations.push([`${ex.file}:${ex.line}`, performance.now() - t0]);
    assert.ok(r.ok, `${ex.file}:${ex.line}: ${r.error}`);
    if (ex.expected !== undefined) {
      const diff = matchOutput(r.stdout, ex.expected);
      assert.ok(diff === null, `${ex.file}:${ex.line}: the output differs from the text output block, ${diff}\n--- printed:\n${r.stdout}`);
    }
  });
}

test('docs/cli.md documents every command and option of diffsim --help', () => {
  const help = runCli(['--help']);
  assert.is(help.code, 0, help.stderr);
  const doc = readFileSync(join(REPO_ROOT, 'docs', 'cli.md'), 'utf8');
  const options = new Set(help.stdout.match(/(?<![\w-])--?[a-zA-Z][\w-]*/g) ?? []);
  const commands = new Set([...help.stdout.matchAll(/^ {2}([a-z]+(?: video)?) /gm)].map((m) => m[1]!));
  assert.ok(options.size > 40 && commands.size >= 8, `parsed ${options.size} options and ${commands.size} commands from --help`);
  const missing = [...options].filter((o) => !new RegExp(`\`[^\`\\n]*${o.replace(/[-]/g, '\\-')}(?![\\w-])`).test(doc));
  assert.equal(missing, [], `options of diffsim --help missing from docs/cli.md (write them in backticks): ${missing.join(' ')}`);
  const noHeading = [...commands].filter((c) => !new RegExp(`^#+ .*\`diffsim ${c}\\b`, 'm').test(doc));
  assert.equal(noHeading, [], `commands without a "## \`diffsim NAME …\`" heading in docs/cli.md: ${noHeading.join(', ')}`);
});

test('docs/cli.md documents every option the shared parser accepts (metric options, eval), in --help or not', () => {
  const doc = readFileSync(join(REPO_ROOT, 'docs', 'cli.md'), 'utf8');
  const names = [...METRIC_VALUE_OPTIONS, ...METRIC_FLAGS, ...EVAL_VALUE_OPTIONS, ...EVAL_FLAGS];
  const missing = names.filter((n) => !doc.includes(`\`--${n}`));
  assert.equal(missing, [], `options missing from docs/cli.md: ${missing.map((n) => `--${n}`).join(' ')}`);
});

test('docs/environment.md is generated from the flags registry and up to date', () => {
  const r = spawnSync(process.execPath, [join(REPO_ROOT, 'scripts', 'gen-environment-doc.mjs'), '--check'], { encoding: 'utf8' });
  assert.is(r.status, 0, `${r.stdout}${r.stderr}`);
});

test('docs/architecture.md names every layer of the import rule, in order', () => {
  const doc = readFileSync(join(REPO_ROOT, 'docs', 'architecture.md'), 'utf8');
  // The LAYERS list of test/layers.test.ts, read from its source (importing it would run that suite).
  const source = readFileSync(join(REPO_ROOT, 'test', 'unit', 'layers.test.ts'), 'utf8');
  const block = /export const LAYERS[^=]*= \[([\s\S]*?)\n\];/.exec(source);
  assert.ok(block, 'LAYERS not found in test/layers.test.ts');
  const LAYERS = [...block![1]!.matchAll(/^\s*\[([^\]]*)\]/gm)].map((m) => [...m[1]!.matchAll(/'([^']+)'/g)].map((q) => q[1]!));
  assert.ok(LAYERS.length >= 8, `parsed ${LAYERS.length} layers`);
  let last = -1;
  for (const layer of LAYERS) {
    for (const folder of layer) {
      const at = doc.indexOf(`\`${folder}\``);
      assert.ok(at >= 0, `docs/architecture.md does not name ${folder}`);
      assert.ok(at > last || layer.length > 1, `docs/architecture.md names ${folder} out of the layer order`);
    }
    last = Math.max(...layer.map((f) => doc.indexOf(`\`${f}\``)));
  }
});

test('the docs link only to files that exist and name nothing outside the repository', () => {
  const files = [...docFiles(REPO_ROOT), 'bench/README.md', 'test/README.md'];
  for (const f of files) {
    const text = readFileSync(join(REPO_ROOT, f), 'utf8');
    assert.not.match(text, /\.\.\/shared|\/work\/|spec §|§\s?\d/, `${f} names a file outside the repository`);
    for (const m of text.matchAll(/\]\(([^)\s#]+)(?:#[^)]*)?\)/g)) {
      const target = m[1]!;
      if (/^[a-z]+:/.test(target)) continue;
      const path = resolve(dirname(join(REPO_ROOT, f)), target);
      assert.ok(path.startsWith(REPO_ROOT) && existsSync(path), `${f}: the link ${target} leads to no file in the repository`);
    }
  }
});

test.after(() => {
  console.log(`docs: ${examples.length} example blocks (${['sh', 'js', 'deno'].map((k) => `${examples.filter((e) => e.kind === k).length} ${k}`).join(', ')}), ${((performance.now() - started) / 1000).toFixed(1)} s; slowest: ${[...durations].sort((x, y) => y[1] - x[1]).slice(0, 4).map(([n, ms]) => `${n} ${(ms / 1000).toFixed(1)} s`).join(', ')}`);
});

test.run();
