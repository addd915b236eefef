// Small image folders for the retrieval and video tests, and the command run offline on the tiny
// models (weights/tiny) with an empty hub cache.
import * as assert from 'uvu/assert';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FIXTURES, REPO_ROOT, offlineHub, rng, runCli, type CliResult } from './helpers.js';

export type { CliResult };

export const TINY = join(REPO_ROOT, 'weights', 'tiny');
export const IMAGE_A = join(FIXTURES, 'diffsim-tiny', 'image_A.png');
export const IMAGE_B = join(FIXTURES, 'diffsim-tiny', 'image_B.png');
export const MODEL_ARGS = ['--model', join(TINY, 'sd15'), '--ip-adapter', join(TINY, 'ip-adapter'), '--clip-model', join(TINY, 'clip'), '--dino-model', join(TINY, 'dinov2')];
const HF_HOME = mkdtempSync(join(tmpdir(), 'diffsim-eval-hf-'));

/** A 24-bit BMP of w×h seeded noise over a colour ramp: the same size for every seed, so a
 *  rewritten file keeps its size. */
export function bmp(w: number, h: number, seed: number): Uint8Array {
  const r = rng(seed);
  const row = Math.ceil((w * 3) / 4) * 4;
  const out = new Uint8Array(54 + row * h);
  const v = new DataView(out.buffer);
  out[0] = 0x42;
  out[1] = 0x4d;
  v.setUint32(2, out.length, true);
  v.setUint32(10, 54, true);
  v.setUint32(14, 40, true);
  v.setInt32(18, w, true);
  v.setInt32(22, h, true);
  v.setUint16(26, 1, true);
  v.setUint16(28, 24, true);
  v.setUint32(34, row * h, true);
  const base = [r() * 255, r() * 255, r() * 255];
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      for (let c = 0; c < 3; c++) out[54 + y * row + x * 3 + c] = Math.max(0, Math.min(255, Math.round(base[c]! * 0.6 + ((x + y + c * 5) * 97) % 60 + r() * 60)));
    }
  }
  return out;
}

export function writeBmp(path: string, seed: number, w = 16, h = 16): void {
  writeFileSync(path, bmp(w, h, seed));
}

export function cli(...args: string[]): CliResult {
  return runCli(args, { timeout: 300_000, env: offlineHub(HF_HOME) });
}

export function lastJson(r: CliResult, label: string): Record<string, unknown> {
  assert.is(r.code, 0, `${label}: exit code (${r.stderr})`);
  const lines = r.stdout.trim().split('\n');
  return JSON.parse(lines[lines.length - 1]!) as Record<string, unknown>;
}

/** Exit code and the one error line of a failed run: the last stderr line, after at most the
 *  progress lines of the command (how far it got). */
export function fails(r: CliResult, code: number, pattern: RegExp, label: string): void {
  assert.is(r.code, code, `${label}: exit code (stderr ${r.stderr})`);
  assert.is(r.stdout, '', `${label}: nothing on stdout`);
  const lines = r.stderr.split('\n').filter(Boolean);
  const errors = lines.filter((l) => l.startsWith('diffsim: '));
  assert.is(errors.length, 1, `${label}: one error line, got ${JSON.stringify(r.stderr)}`);
  assert.is(lines[lines.length - 1], errors[0], `${label}: the error comes last`);
  for (const l of lines.slice(0, -1)) assert.match(l, /^(retrieve|eval video): .*\d+\/\d+ /, `${label}: only progress lines before the error`);
  assert.match(errors[0]!, pattern, `${label}: message`);
}

/** The one number `diffsim score` prints. */
export function scoreOf(r: CliResult, label: string): number {
  assert.is(r.code, 0, `${label}: exit code (${r.stderr})`);
  assert.match(r.stdout, /^\S+\n$/, `${label}: one line`);
  return Number(r.stdout.trim());
}
