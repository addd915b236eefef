// Slow suite: about 17 s of CPU on lavapipe (63 s wall on a shared 2-core machine).
// Every command with --json prints exactly one line on stdout, one JSON object (so `| jq` and
// line-based tools read it whole), and --pretty prints the same object indented. Tiny models.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { copyFileSync, mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FIXTURES, REPO_ROOT, offlineHub, runCli, type CliResult } from '../support/helpers.js';

const TINY = join(REPO_ROOT, 'weights', 'tiny');
const A = join(FIXTURES, 'diffsim-tiny', 'image_A.png');
const B = join(FIXTURES, 'diffsim-tiny', 'image_B.png');
const SD = ['--model', join(TINY, 'sd15')];
const CLIP = ['--metric', 'clip', '--clip-model', join(TINY, 'clip')];
const TMP = mkdtempSync(join(tmpdir(), 'diffsim-cli-json-'));
const HF_HOME = join(TMP, 'hf');

function cli(...args: string[]): CliResult {
  return runCli(args, { timeout: 180_000, env: offlineHub(HF_HOME) });
}

/** The one JSON object of a --json run; fails unless stdout is exactly one line. */
function oneLine(r: CliResult, label: string): Record<string, unknown> {
  assert.is(r.code, 0, `${label}: exit code (${r.stderr})`);
  assert.match(r.stdout, /^[^\n]+\n$/, `${label}: exactly one line on stdout, got ${r.stdout.split('\n').length - 1} lines`);
  const v = JSON.parse(r.stdout) as unknown;
  assert.ok(v !== null && typeof v === 'object' && !Array.isArray(v), `${label}: an object`);
  return v as Record<string, unknown>;
}

// A gallery (retrieve), a frame sequence (eval video) and a StyleRef-shaped folder (eval sref).
const gallery = join(TMP, 'gallery');
const frames = join(TMP, 'frames');
const sref = join(TMP, 'sref');
for (const d of [gallery, frames]) mkdirSync(d, { recursive: true });
copyFileSync(A, join(gallery, 'a.png'));
copyFileSync(B, join(gallery, 'b.png'));
for (const [i, src] of [A, B, A].entries()) copyFileSync(src, join(frames, `frame${i}.png`));
for (const g of ['001', '002', '003']) {
  mkdirSync(join(sref, g), { recursive: true });
  for (const [i, src] of [A, B, A].entries()) copyFileSync(src, join(sref, g, `0${i + 1}.png`));
}

test('demo, score, pick, retrieve, map, eval, eval --merge, eval video, parity, inspect, info: --json is one line', () => {
  const results = join(TMP, 'sref.jsonl');
  const runs: Array<[string, string[]]> = [
    ['demo', ['demo', '--json']],
    ['score', ['score', A, B, ...SD, '--json']],
    ['pick', ['pick', A, A, B, ...CLIP, '--json']],
    ['retrieve', ['retrieve', A, gallery, ...CLIP, '--no-cache', '--json']],
    ['map', ['map', A, B, ...SD, '-o', join(TMP, 'map.png'), '--json']],
    ['eval', ['eval', 'sref', sref, '--trials', '2', ...CLIP, '--out', results, '--json']],
    ['eval --merge', ['eval', '--merge', results, '--json']],
    ['eval video', ['eval', 'video', frames, ...CLIP, '--json']],
    ['parity', ['parity', '--fixtures', FIXTURES, '--only', 'scheduler', '--json']],
    ['inspect', ['inspect', join(FIXTURES, 'unet-tiny', 'unet.safetensors'), '--json']],
    ['info', ['info', '--json']],
  ];
  for (const [label, args] of runs) oneLine(cli(...args), label);
});

test('--pretty: the same object indented over several lines; without --json it is a usage error', () => {
  const file = join(FIXTURES, 'unet-tiny', 'unet.safetensors');
  const line = cli('inspect', file, '--json');
  const pretty = cli('inspect', file, '--json', '--pretty');
  assert.is(pretty.code, 0, pretty.stderr);
  assert.ok(pretty.stdout.split('\n').length > 10, 'several lines');
  assert.match(pretty.stdout, /^\{\n  "tensors": \{\n/, 'indented by two spaces');
  assert.equal(JSON.parse(pretty.stdout), JSON.parse(line.stdout));
  const score = cli('score', A, B, ...SD, '--json', '--pretty');
  assert.is(score.code, 0, score.stderr);
  assert.match(score.stdout, /^\{\n  "score": /);
  for (const args of [['inspect', file, '--pretty'], ['score', A, B, ...SD, '--pretty'], ['info', '--pretty'], ['parity', '--fixtures', FIXTURES, '--pretty']]) {
    const r = cli(...args);
    assert.is(r.code, 2, `${args[0]}: exit code`);
    assert.match(r.stderr, /--pretty goes with --json/, `${args[0]}: says why`);
  }
});

test.run();
