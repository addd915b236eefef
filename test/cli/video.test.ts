// Slow suite: about 28 s of CPU on lavapipe (58 s wall on a shared 2-core machine).
// Frame-sequence consistency on the tiny models: natural frame order, the first frame against every
// other one, the mean and population variance equal to a direct computation from the pair scores,
// several metrics at once, and the command (`diffsim eval video`) with its errors.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { cpSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { execFileSync, spawn } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createMetrics, type Metric } from '../../src/diffsim/metric.js';
import { diffsimSettings, parseCommand } from '../../src/cli/metric-options.js';
import { naturalCompare } from '../../src/apps/images.js';
import { listFrames, summarise, videoConsistency } from '../../src/apps/video.js';
import { rejects, runtime } from '../support/helpers.js';
import { cli, fails, IMAGE_A, IMAGE_B, lastJson, MODEL_ARGS, TINY, writeBmp } from '../support/gallery.js';

const ROOT = mkdtempSync(join(tmpdir(), 'diffsim-video-'));
const MODELS = { model: join(TINY, 'sd15'), ipAdapter: join(TINY, 'ip-adapter'), clipModel: join(TINY, 'clip'), dinoModel: join(TINY, 'dinov2') };

/** frame9, frame10, frame11, frame100 (natural order; code-unit order would start at frame10), plus
 *  a sub-folder frame and a text file that are not frames. */
function makeFrames(): string {
  const d = join(ROOT, `v${Math.random().toString(36).slice(2, 8)}`);
  mkdirSync(join(d, 'sub'), { recursive: true });
  cpSync(IMAGE_A, join(d, 'frame9.png'));
  writeBmp(join(d, 'frame10.bmp'), 10);
  cpSync(IMAGE_B, join(d, 'frame11.PNG'));
  writeBmp(join(d, 'frame100.bmp'), 100);
  writeBmp(join(d, 'sub', 'frame1.bmp'), 1);
  writeFileSync(join(d, 'frame0.txt'), 'x');
  return d;
}
const ORDER = ['frame9.png', 'frame10.bmp', 'frame11.PNG', 'frame100.bmp'];

test('naturalCompare: digit runs as numbers (frame2 before frame10), leading zeros, the rest by code units', () => {
  const names = ['frame10.png', 'frame2.png', 'frame1.png', 'frame002.png', 'frame02.png', 'a10b2', 'a10b10', 'a9', 'Frame3.png', 'frame', '99999999999999999999.png', '100000000000000000000.png'];
  assert.equal([...names].sort(naturalCompare), ['99999999999999999999.png', '100000000000000000000.png', 'Frame3.png', 'a9', 'a10b2', 'a10b10', 'frame', 'frame1.png', 'frame002.png', 'frame02.png', 'frame2.png', 'frame10.png']);
});

test('listFrames: the folder\'s images in natural order, sub-folders and other files left out', async () => {
  const d = makeFrames();
  assert.equal(await listFrames(d), ORDER.map((f) => join(d, f)));
});

test('summarise: mean and population variance (÷ n)', () => {
  const s = summarise([1, 2, 3, 4]);
  assert.equal(s, { mean: 2.5, variance: 1.25, std: Math.sqrt(1.25), n: 4 });
  assert.ok(Number.isNaN(summarise([]).mean));
});

let metrics: Metric[];
test.before(async () => {
  const m = parseCommand('test', MODEL_ARGS).metric;
  metrics = await createMetrics(['diffsim', 'clip', 'dino'], { ...MODELS, runtime: await runtime(), diffsim: diffsimSettings(m) });
});
test.after(async () => {
  for (const m of metrics) await m.close();
});

/** The mean and population variance computed here from the scores, directly. */
function direct(xs: number[]): { mean: number; variance: number } {
  const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
  return { mean, variance: xs.reduce((a, x) => a + (x - mean) ** 2, 0) / xs.length };
}

test('videoConsistency: each score is score(first frame, frame) bit for bit; mean and population variance; the anchor embedded once per metric', async () => {
  const d = makeFrames();
  const anchorEmbeds = new Map<string, number>();
  const counted = metrics.map(
    (m) =>
      new Proxy(m, {
        get(t, p) {
          if (p === 'embed') {
            return (img: Parameters<Metric['embed']>[0], role: 'A' | 'B' = 'A') => {
              if (role === 'A') anchorEmbeds.set(m.name, (anchorEmbeds.get(m.name) ?? 0) + 1);
              return t.embed(img, role);
            };
          }
          const v = Reflect.get(t, p, t) as unknown;
          return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(t) : v;
        },
      }),
  );
  const r = await videoConsistency(counted, d);
  assert.equal(r.frames, ORDER.map((f) => join(d, f)));
  assert.equal(Object.fromEntries(anchorEmbeds), { diffsim: 1, clip: 1, dino: 1 });
  for (const m of metrics) {
    const c = r.metrics[m.name]!;
    assert.is(c.n, 3);
    assert.is(c.scores.length, 3);
    for (let i = 1; i < ORDER.length; i++) assert.ok(Object.is(c.scores[i - 1], await m.score(join(d, ORDER[0]!), join(d, ORDER[i]!))), `${m.name} ${ORDER[i]}`);
    const want = direct(c.scores);
    assert.ok(Math.abs(c.mean - want.mean) <= 1e-15 * Math.abs(want.mean), `${m.name} mean`);
    assert.ok(Math.abs(c.variance - want.variance) <= 1e-12 * want.variance, `${m.name} population variance ${c.variance} vs ${want.variance}`);
    assert.ok(Math.abs(c.std - Math.sqrt(want.variance)) <= 1e-12 * Math.sqrt(want.variance), `${m.name} std`);
    assert.ok(c.variance > 0, `${m.name}: the frames differ`);
    assert.is(c.lowerBetter, false);
    assert.is(r.settings[m.name], m.settings);
  }
  await rejects(() => videoConsistency([], d), /no metric given/, 'no metric');
  await rejects(() => videoConsistency([metrics[0]!, metrics[0]!], d), /metric diffsim given twice/, 'twice');
});

test('diffsim eval video --json --metric diffsim,clip,dino: the library\'s numbers; --out rows; the table', () => {
  const d = makeFrames();
  const out = join(ROOT, `rows-${Math.random().toString(36).slice(2, 8)}.jsonl`);
  const j = lastJson(cli('eval', 'video', d, '--metric', 'diffsim,clip,dino', '--json', '--out', out, ...MODEL_ARGS), 'json');
  assert.is(j.dir, d);
  assert.equal(j.frames, ORDER.map((f) => join(d, f)));
  assert.is(j.varianceKind, 'population');
  const ms = j.metrics as Record<string, { mean: number; variance: number; std: number; n: number; scores: number[] }>;
  assert.equal(Object.keys(ms), ['diffsim', 'clip', 'dino']);
  for (const [name, c] of Object.entries(ms)) {
    assert.is(c.n, 3);
    const want = direct(c.scores);
    assert.ok(Math.abs(c.mean - want.mean) <= 1e-15 * Math.abs(want.mean), `${name} mean`);
    assert.ok(Math.abs(c.variance - want.variance) <= 1e-12 * want.variance, `${name} population variance`);
  }
  assert.is((j.settings as Record<string, { t?: number }>).diffsim!.t, 401);
  const rows = readFileSync(out, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { index: number; frame: string; scores: Record<string, number> });
  assert.is(rows.length, 3);
  assert.equal(rows[0], { index: 1, frame: join(d, 'frame10.bmp'), scores: { diffsim: ms.diffsim!.scores[0], clip: ms.clip!.scores[0], dino: ms.dino!.scores[0] } });

  // The same numbers as a direct library run with the command's settings.
  const plain = cli('eval', 'video', d, '--metric', 'clip', ...MODEL_ARGS);
  assert.is(plain.code, 0, plain.stderr);
  const lines = plain.stdout.trim().split('\n');
  assert.match(lines[0]!, /4 frames; frame9\.png \(role A\) against the other 3 \(role B\)/);
  assert.match(lines[1]!, /^metric\s+mean\s+variance \(population\)\s+std\s+n$/);
  assert.match(lines[2]!, new RegExp(`^clip\\s+${ms.clip!.mean.toPrecision(6)}\\s+${ms.clip!.variance.toPrecision(6)}\\s+\\S+\\s+3$`));
  assert.match(plain.stderr, /3\/3 frames in/);
});

test('diffsim eval video: a DiffSim option with a metric list applies to the metrics it fits', () => {
  const d = makeFrames();
  const j = lastJson(cli('eval', 'video', d, '--metric', 'clip,diffsim', '--step', '500', '--similarity', 'mse', '--json', ...MODEL_ARGS), 'step');
  const s = j.settings as Record<string, { step?: number; lowerBetter: boolean }>;
  assert.is(s.diffsim!.step, 500);
  assert.is(s.diffsim!.lowerBetter, true);
  assert.is((j.metrics as Record<string, { lowerBetter: boolean }>).diffsim!.lowerBetter, true);
  assert.is(s.clip!.step, undefined);
});

test('diffsim eval video --out: a symlink\'s target is written, the link kept; a FIFO is written to its reader and stays a FIFO', async () => {
  const d = makeFrames();
  const real = join(ROOT, `real-${Math.random().toString(36).slice(2, 8)}.jsonl`);
  writeFileSync(real, 'older');
  const link = `${real}.link`;
  symlinkSync(real, link);
  const r = cli('eval', 'video', d, '--metric', 'clip', '--out', link, ...MODEL_ARGS);
  assert.is(r.code, 0, r.stderr);
  assert.ok(lstatSync(link).isSymbolicLink(), 'still a link');
  const rows = readFileSync(real, 'utf8');
  assert.is(rows.trim().split('\n').length, 3, 'the rows in the target');
  const fifo = join(ROOT, `rows-${Math.random().toString(36).slice(2, 8)}.fifo`);
  execFileSync('mkfifo', [fifo]);
  const got = `${fifo}.got`;
  const reader = spawn('sh', ['-c', 'cat "$0" > "$1"', fifo, got]);
  const read = new Promise<void>((resolve) => reader.on('exit', () => resolve()));
  const f = cli('eval', 'video', d, '--metric', 'clip', '--out', fifo, ...MODEL_ARGS);
  assert.is(f.code, 0, f.stderr);
  await read;
  assert.is(readFileSync(got, 'utf8'), rows, 'the same rows through the FIFO');
  assert.ok(statSync(fifo).isFIFO(), 'still a FIFO');
});

test('diffsim eval video errors: one line naming the folder or option; exit 2 for the command line, 1 otherwise', () => {
  const d = makeFrames();
  fails(cli('eval', 'video', join(d, 'nope'), ...MODEL_ARGS), 1, /nope: no such folder/, 'missing');
  const one = join(ROOT, 'one');
  mkdirSync(one);
  cpSync(IMAGE_A, join(one, 'f1.png'));
  fails(cli('eval', 'video', one, ...MODEL_ARGS), 1, /one: a frame sequence needs at least 2 images \(\.png \.jpg \.jpeg \.bmp\), found 1/, 'one frame');
  fails(cli('eval', 'video', d, '--metric', 'diffsim,dists'), 2, /eval video: unknown --metric "dists"/, 'unknown metric');
  fails(cli('eval', 'video', d, '--metric', 'clip,dino,clip'), 2, /eval video: --metric names clip twice/, 'twice');
  fails(cli('eval', 'video', d, '--metric', 'ensemble'), 2, /eval video: unknown --metric "ensemble"/, 'ensemble');
  fails(cli('eval', 'video', d, '--metric', 'diffsim,dino', '--clip-qkv', 'post-ln'), 2, /eval video: --clip-qkv does not apply to --metric diffsim,dino/, 'option fits none');
  fails(cli('eval', 'video'), 2, /eval video: expected one DIR of frames, got 0 arguments/, 'no DIR');
  fails(cli('eval', 'video', d, '--out'), 2, /eval video: --out needs a value/, '--out without a value');
  fails(cli('eval', 'video', d, '--out', ROOT, ...MODEL_ARGS), 1, /: cannot write: it is a folder$/, '--out a folder');
  writeFileSync(join(d, 'frame50.png'), 'broken');
  fails(cli('eval', 'video', d, '--metric', 'clip', ...MODEL_ARGS), 1, /frame50\.png: /, 'unreadable frame');
});

test.run();
