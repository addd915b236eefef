// `diffsim sweep` on the layouts the main sweep suite does not cover — CUTE (prompts per item,
// the "2x" criterion), DreamBench (one source image against ranked targets, labels) and TID2013
// (references against distortion levels) — with the tiny SD1.5: a grid of 3 steps × every layer of two blocks (mid, up)
// scores each item exactly as separate eval runs with each cell's settings, from steps × distinct
// (image, role, prompt) U-Net passes. (InstantStyle reads Sref's layout with Sref's protocol code,
// covered in sweep.test.ts.) Each is a few items of a synthetic folder at 32 px.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createMetrics, type Metric } from '../../src/diffsim/metric.js';
import { listItems, type BenchmarkName } from '../../src/eval/protocols.js';
import type { DiffSimBlock } from '../../src/diffsim/settings.js';
import { REPO_ROOT, runtime } from '../support/helpers.js';
import { png, sweepEqualsEval, units, writeImage } from '../support/sweep.js';

const SD = join(REPO_ROOT, 'weights', 'tiny', 'sd15');
const TMP = mkdtempSync(join(tmpdir(), 'diffsim-sweep-layouts-'));
const SIZE = 32;
let seed = 100;

// CUTE: one category, two instances, two conditions of two images each.
const CUTE = join(TMP, 'cute');
for (const i of ['a', 'b']) for (const c of ['front', 'side']) for (const n of ['1', '2']) writeImage(join(CUTE, 'car', i, c, `${n}.png`), seed++);

// DreamBench: one method, one subject: the source image and four rated targets (both groups agree).
const DREAM = join(TMP, 'dreambench');
{
  const ratings = '{"cat_0": 1, "cat_1": 5, "cat_3": 2, "cat_7": 4}';
  for (const g of ['group1', 'group2']) {
    mkdirSync(join(DREAM, 'data_human_rating', 'merged_data', g), { recursive: true });
    writeFileSync(join(DREAM, 'data_human_rating', 'merged_data', g, 'textual_inversion_sd-cp.json'), ratings);
  }
  const m = join(DREAM, 'textual_inversion');
  writeImage(join(m, 'src_image', 'cat', '0_0.jpg'), seed++);
  for (const i of [0, 1, 3, 7]) {
    writeImage(join(m, 'tgt_image', 'cat', `${i}_0.jpg`), seed++);
    mkdirSync(join(m, 'text', 'cat'), { recursive: true });
    writeFileSync(join(m, 'text', 'cat', `${i}_0.txt`), 'a cat');
  }
}

// TID2013: every file the protocol asks for must exist (25 references × 24 distortions × levels
// 2 and 3); only the first reference's are distinct images, the rest share one file's bytes.
const TID = join(TMP, 'tid2013');
{
  mkdirSync(TID, { recursive: true });
  const filler = png(seed++);
  for (let r = 1; r <= 25; r++) {
    const rr = String(r).padStart(2, '0');
    writeFileSync(join(TID, `I${rr}.BMP`), r === 1 ? png(seed++) : filler);
    for (let d = 1; d <= 24; d++) for (const l of [2, 3]) writeFileSync(join(TID, `i${rr}_${String(d).padStart(2, '0')}_${l}.bmp`), r === 1 && d <= 3 ? png(seed++) : filler);
  }
}

async function sd(settings: Record<string, unknown> = {}): Promise<Metric> {
  const [m] = await createMetrics(['diffsim'], { model: SD, runtime: await runtime(), diffsim: { layerMode: 'as-given', ...settings } });
  return m!;
}

async function check(benchmark: BenchmarkName, dir: string, take: number, expectUnits: number): Promise<void> {
  const all = await listItems(benchmark, dir);
  const items = all.slice(0, take);
  assert.is(items.length, take);
  const steps = [300, 600, 800];
  const m = await sd({ preset: benchmark });
  try {
    const r = await sweepEqualsEval({
      benchmark, dir, items, of: all.length, metric: m,
      grid: { blocks: ['mid', 'up'], layers: 'all', steps, sizes: [SIZE] },
      cellMetric: (c) => sd({ preset: benchmark, block: c.block as DiffSimBlock, layer: c.layer, step: c.step!, imageSize: SIZE }),
    });
    // mid has one attention block, up three (the tiny U-Net as SD1.5).
    assert.is(r.sweep.cells.length, steps.length * (1 + 3));
    const perStep = units(items, dir);
    assert.is(perStep, expectUnits, 'distinct images × roles × prompts of the items');
    assert.is(r.sweep.passes, steps.length * perStep, 'passes = steps × sizes × distinct images × roles');
    assert.is(r.evalPasses, r.sweep.cells.length * perStep, 'eval: one pass per cell, image and role');
    if (benchmark === 'cute') assert.ok(r.sweep.rows.every((x) => typeof x.twice === 'boolean'), 'the 2x criterion per row');
    console.error(`sweep ${benchmark} (lavapipe): ${r.sweep.passes} U-Net passes in ${r.seconds.toFixed(1)} s for ${r.sweep.cells.length} cells`);
  } finally {
    await m.close();
  }
}

test('cute: 3 steps × every layer of mid and up = separate eval runs item by item (scores, decisions, 2x); passes', async () => {
  // The first three items: anchors car/a/side/2 (twice) and car/b/front/2, four candidates.
  await check('cute', CUTE, 3, 6);
});

test('dreambench: 3 steps × every layer of mid and up = separate eval runs item by item; passes', async () => {
  const items = await listItems('dreambench', DREAM);
  assert.ok(items.every((i) => i.anchor === 'textual_inversion/src_image/cat/0_0.jpg'), 'one source image');
  // Pairs with |Δ rating| ≥ 2: (0, 1), (0, 7), (1, 3), (3, 7): one anchor, four targets.
  await check('dreambench', DREAM, items.length, 5);
});

test('tid2013: 3 steps × every layer of mid and up = separate eval runs item by item; passes', async () => {
  // The first three items: I01 against distortions 1–3 at levels 2 and 3.
  await check('tid2013', TID, 3, 7);
});

test.run();
