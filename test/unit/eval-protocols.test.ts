// The benchmark protocols (src/eval/protocols.ts) on small synthetic datasets, one per layout
// (placeholder files: only the names matter), against test/support/eval_protocols_reference.py, the
// official loops run by Python itself with its own random module. Python is $HUB_TEST_PYTHON, else
// python3; without it these tests fail, unless DIFFSIM_SKIP_PYTHON=1 (then the comparisons are
// skipped and the hand-checked tests still run).

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { REPO_ROOT, rejects } from '../support/helpers.js';
import { DIFFSIM_DEFAULTS, DIFFSIM_PRESETS } from '../../src/diffsim/settings.js';
import { listItems, itemPaths, ProtocolError, BENCHMARK_NAMES, DEFAULT_PROMPT, DEFAULT_SEED, benchmarkPreset, type BenchmarkName, type EvalItem, type ProtocolOptions } from '../../src/eval/protocols.js';
import { compareNames, listdir, walk } from '../../src/eval/listing.js';
import { PyRandom } from '../../src/eval/pyrandom.js';

const PYTHON = process.env.HUB_TEST_PYTHON ?? 'python3';
const SKIP_PYTHON = process.env.DIFFSIM_SKIP_PYTHON === '1';
const probe = spawnSync(PYTHON, ['-c', 'import sys; print(sys.version.split()[0])'], { encoding: 'utf8' });
const pythonVersion = probe.status === 0 ? probe.stdout.trim() : undefined;
const REFERENCE = join(REPO_ROOT, 'test', 'support', 'eval_protocols_reference.py');

const tmp = mkdtempSync(join(tmpdir(), 'diffsim-eval-'));

/** Creates placeholder files (and their folders) under root. */
function files(root: string, paths: Iterable<string>): void {
  for (const p of paths) {
    mkdirSync(dirname(join(root, p)), { recursive: true });
    writeFileSync(join(root, p), 'x');
  }
}
function dirs(root: string, paths: Iterable<string>): void {
  for (const p of paths) mkdirSync(join(root, p), { recursive: true });
}
const range = (n: number) => Array.from({ length: n }, (_, i) => i);

/** Runs the Python reference and returns its items. */
function reference(benchmark: BenchmarkName, dir: string, o: ProtocolOptions & { given?: boolean } = {}): EvalItem[] {
  const args = [REFERENCE, benchmark, dir, '--seed', String(o.seed ?? 2334)];
  if (o.given) args.push('--given');
  if (o.trials !== undefined) args.push('--trials', String(o.trials));
  if (o.originals !== undefined) args.push('--originals', o.originals);
  if (o.votesAtLeast !== undefined) args.push('--votes-at-least', String(o.votesAtLeast));
  const r = spawnSync(PYTHON, args, { encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`${PYTHON} ${args.join(' ')} exited with ${r.status}: ${r.stderr}`);
  return JSON.parse(r.stdout) as EvalItem[];
}

/** A test comparing listItems with the reference; fails clearly when Python is not there. */
function compare(name: string, benchmark: BenchmarkName, dir: () => string, o: ProtocolOptions = {}, check?: (items: EvalItem[]) => void): void {
  test(`${name}: the same items as the official loop in Python`, async () => {
    if (pythonVersion === undefined) {
      if (SKIP_PYTHON) return;
      assert.unreachable(`cannot run ${PYTHON} (set HUB_TEST_PYTHON to a Python 3, or DIFFSIM_SKIP_PYTHON=1 to skip the comparisons)`);
    }
    const items = await listItems(benchmark, dir(), o);
    const given = o.listing === 'given';
    const { listing: _l, ...rest } = o;
    const expected = reference(benchmark, dir(), { ...rest, given });
    assert.ok(items.length > 0, 'some items');
    assert.equal(items, expected);
    check?.(items);
  });
}

// ---------------------------------------------------------------------------------------------
// NIGHTS

const NIGHTS = join(tmp, 'nights');
const nightsRows = [
  // id, split, left_vote, votes, prompt
  [0, 'val', 1, 6, 'Bird'],
  [1, 'train', 0, 6, 'cat'],
  [2, 'val', 0, 4, '"Sea, ""Blue"" WAVES"'],
  [3, 'test', 1, 6, 'dog'],
  [4, 'val', 1, 5, 'ÉCLAIR'],
  [5, 'val', 0, 6, 'tree'],
  [6, 'val', 1, 7, 'a ""quoted"" name'],
] as const;
{
  const lines = ['id,ref_path,left_path,right_path,left_vote,right_vote,votes,is_imagenet,split,prompt'];
  for (const [id, split, vote, votes, prompt] of nightsRows) {
    const n = String(id).padStart(3, '0');
    lines.push(`${id},ref/${n}.png,distort/${n}_0.png,distort/${n}_1.png,${vote},${1 - vote},${votes},False,${split},${prompt}`);
    files(NIGHTS, [`ref/${n}.png`, `distort/${n}_0.png`, `distort/${n}_1.png`]);
  }
  // CRLF endings on some lines and a blank line, as csv in text mode reads them
  writeFileSync(join(NIGHTS, 'data.csv'), `${lines.slice(0, 3).join('\r\n')}\r\n\n${lines.slice(3).join('\n')}\n`);
}

compare('nights', 'nights', () => NIGHTS);
compare('nights with votesAtLeast 6', 'nights', () => NIGHTS, { votesAtLeast: 6 });

test('nights: val rows only, in file order; anchor ref, cand1 left; truth from left_vote; the script\'s prompt', async () => {
  const items = await listItems('nights', NIGHTS);
  assert.equal(items.map((i) => i.anchor), ['ref/000.png', 'ref/002.png', 'ref/004.png', 'ref/005.png', 'ref/006.png']);
  assert.equal(items.map((i) => i.cand1), ['distort/000_0.png', 'distort/002_0.png', 'distort/004_0.png', 'distort/005_0.png', 'distort/006_0.png']);
  assert.equal(items.map((i) => i.cand2), ['distort/000_1.png', 'distort/002_1.png', 'distort/004_1.png', 'distort/005_1.png', 'distort/006_1.png']);
  assert.equal(items.map((i) => i.label), [1, 0, 1, 0, 1]);
  assert.equal(items.map((i) => i.truth), [1, 2, 1, 2, 1]);
  assert.equal(items.map((i) => i.prompt), ['An image of a bird', 'An image of a sea, "blue" waves', 'An image of a éclair', 'An image of a tree', 'An image of a a ""quoted"" name']);
  assert.equal(items.map((i) => i.item), [0, 1, 2, 3, 4]);
  const filtered = await listItems('nights', NIGHTS, { votesAtLeast: 6 });
  assert.equal(filtered.map((i) => i.anchor), ['ref/000.png', 'ref/005.png', 'ref/006.png']);
  assert.equal(DIFFSIM_PRESETS[benchmarkPreset('nights')].step, 500);
});

// ---------------------------------------------------------------------------------------------
// TID2013: names in the four case variants the script tries, some folders with two variants

const TID = join(tmp, 'tid2013');
{
  const refVariants = (rr: string) => [`I${rr}.BMP`, `i${rr}.bmp`, `i${rr}.BMP`, `I${rr}.bmp`];
  const distVariants = (rr: string, dd: string, l: number) => [`i${rr}_${dd}_${l}.bmp`, `I${rr}_${dd}_${l}.BMP`, `I${rr}_${dd}_${l}.bmp`, `i${rr}_${dd}_${l}.BMP`];
  const names: string[] = [];
  for (let r = 1; r <= 25; r++) {
    const rr = String(r).padStart(2, '0');
    names.push(refVariants(rr)[r % 4]!);
    if (r === 7) names.push(refVariants(rr)[3]!, refVariants(rr)[1]!); // the first in the script's order wins
    if (r === 9) names.push(refVariants(rr)[0]!); // with i09.bmp: I09.BMP wins
    for (let d = 1; d <= 24; d++) {
      const dd = String(d).padStart(2, '0');
      for (const l of [1, 2, 3, 4, 5]) names.push(distVariants(rr, dd, l)[(r + d + l) % 4]!);
      if (d === 5) names.push(distVariants(rr, dd, 2)[(r + 1) % 4]!, distVariants(rr, dd, 3)[(r + 2) % 4]!);
    }
  }
  files(TID, names);
}

compare('tid2013', 'tid2013', () => TID, {}, (items) => assert.is(items.length, 600));

test('tid2013: reference-major, level 2 vs level 3, the first existing case variant', async () => {
  const items = await listItems('tid2013', TID);
  assert.is(items.length, 600);
  assert.equal(items[0], { item: 0, anchor: 'i01.bmp', cand1: 'i01_01_2.bmp', cand2: 'I01_01_3.BMP', prompt: 'High quality image', truth: 1 });
  assert.is(items[24]!.anchor, 'i02.BMP');
  assert.is(items[24]!.cand1, 'I02_01_2.BMP');
  assert.is(items[6 * 24]!.anchor, 'i07.bmp'); // I07.bmp (4th) and i07.bmp (2nd) exist: 2nd wins
  assert.is(items[8 * 24]!.anchor, 'I09.BMP'); // I09.BMP (1st) and i09.bmp (2nd) exist
  assert.ok(items.every((i) => i.truth === 1));
});

// ---------------------------------------------------------------------------------------------
// CUTE: <category>/<instance>/<condition>/<images>, with the cases the loop skips

const CUTE = join(tmp, 'cute');
{
  files(CUTE, ['main.py', '.DS_Store', 'readme.txt']);
  // car: three instances (and a link); "side" of inst_a has one usable image (.PNG does not
  // count), inst_b's "top" is empty, inst_a/front has 30 images (sample's set method)
  files(CUTE, range(30).map((i) => `car/inst_a/front/${String(i).padStart(2, '0')}.png`));
  files(CUTE, ['car/inst_a/front/notes.txt', 'car/inst_a/side/1.png', 'car/inst_a/side/2.PNG', 'car/inst_a/top/1.png']);
  files(CUTE, ['car/inst_b/front/1.png', 'car/inst_b/front/2.jpeg', 'car/inst_b/side/1.png', 'car/inst_b/side/2.png', 'car/inst_b/side/3.jpg']);
  dirs(CUTE, ['car/inst_b/top']);
  files(CUTE, ['car/inst_c/front/a.png', 'car/inst_c/front/b.png', 'car/inst_c/side/a.png', 'car/inst_c/side/b.png', 'car/inst_c/top/x.png', 'car/inst_c/top/y.png']);
  // pen: p1's only condition has one image (cond is drawn, then skipped); p2 has no condition
  // folders (skipped before any draw)
  files(CUTE, ['pen/p1/front/1.png', 'pen/p2/photo.png']);
  // cup: a single instance (no other instance to draw C from)
  files(CUTE, ['cup/only/front/1.png', 'cup/only/front/2.png']);
  // mug: conditions with subfolders, so a deeper walk level draws too
  files(CUTE, ['mug/i1/c1/1.png', 'mug/i1/c1/2.png', 'mug/i1/c1/deep/x.png', 'mug/i1/c1/deep/y.png', 'mug/i1/c2/deep/z.png', 'mug/i1/c2/3.png']);
  files(CUTE, ['mug/i2/c1/1.jpg', 'mug/i2/c1/2.jpg', 'mug/i2/c2/5.png', 'mug/i2/c2/6.png', 'mug/i2/c2/7.png']);
  // a symlinked instance: listed by os.walk, not descended into
  symlinkSync(join(CUTE, 'car', 'inst_b'), join(CUTE, 'car', 'inst_link'));
}

compare('cute', 'cute', () => CUTE);
compare('cute seed 7', 'cute', () => CUTE, { seed: 7 });
compare('cute, given listing order', 'cute', () => CUTE, { listing: 'given' });

test('cute: triplets same instance and condition (A, B) vs another instance, same condition (C)', async () => {
  const items = await listItems('cute', CUTE);
  for (const it of items) {
    const [a, b, c] = [it.anchor, it.cand1, it.cand2].map((p) => p.split('/'));
    assert.is(a!.slice(0, -1).join('/'), b!.slice(0, -1).join('/'), 'A and B share a folder');
    assert.is.not(a![a!.length - 1], b![b!.length - 1], 'A and B differ');
    assert.is(a![a!.length - 2], c![c!.length - 2], 'same condition');
    assert.is.not(a![a!.length - 3], c![c!.length - 3], 'another instance');
    assert.is(it.prompt, `The photo of a ${a![0]}`);
    assert.is(it.truth, 1);
  }
  assert.ok(items.some((i) => i.anchor.startsWith('mug/i1/c1/deep/')), 'the deeper walk level forms items');
  assert.not.ok(items.some((i) => i.anchor.startsWith('cup/')), 'a single instance forms none');
  assert.not.ok(items.some((i) => i.anchor.startsWith('pen/')), 'instances with < 2 images or no conditions form none');
  assert.ok(items.some((i) => i.anchor.startsWith('car/inst_link/')), 'a symlinked instance is used');
  assert.not.ok(items.some((i) => i.anchor.startsWith('car/inst_link/') && i.anchor.split('/').length > 4), 'but not walked into');
});

// ---------------------------------------------------------------------------------------------
// DreamBench++

const DREAM = join(tmp, 'dreambench');
{
  const r = new PyRandom(5); // only to make varied ratings
  const methods: [string, string][] = [
    ['blip_diffusion', 'blip_diffusion-cp.json'],
    ['dreambooth_lora', 'dreambooth_sd-cp.json'],
    ['ip_adapter_plus_sdxl', 'ip_adapter_plus_vit_h_sdxl-cp.json'],
    ['ip_adapter_sdxl_v2', 'ip_adapter_vit_g_sdxl-cp.json'],
  ];
  const refs = ['cat', 'catdog', 'dog', '7', 'owl'];
  for (const [method, json] of methods) {
    const g1: string[] = [];
    const g2: string[] = [];
    for (const ref of refs) {
      // integer-like keys (ref "7": "72", "70", ...) in non-ascending document order: a dict keeps
      // that order, a JS object would not
      const keys = ref === '7' ? ['72', '70', '75', '71', '79', '73'] : range(ref === 'owl' ? 3 : 10).map((i) => `${ref}_${(i * 7) % 10}`);
      for (const k of keys) {
        const v1 = r.randbelow(6);
        const v2 = Math.max(0, Math.min(5, v1 + r.randbelow(7) - 3));
        g1.push(`${JSON.stringify(k)}: ${v1}`);
        g2.push(`${JSON.stringify(k)}: ${v2}.0`);
      }
      files(DREAM, [`${method}/src_image/${ref}/0_0.jpg`, ...range(10).flatMap((i) => [`${method}/tgt_image/${ref}/${i}_0.jpg`, `${method}/text/${ref}/${i}_0.txt`])]);
    }
    files(DREAM, [`data_human_rating/merged_data/group1/${json}`, `data_human_rating/merged_data/group2/${json}`]);
    writeFileSync(join(DREAM, 'data_human_rating/merged_data/group1', json), `{${g1.join(', ')}}`);
    writeFileSync(join(DREAM, 'data_human_rating/merged_data/group2', json), `{\n  ${g2.reverse().join(',\n  ')}\n}`);
  }
  files(DREAM, ['unknown_method/src_image/cat/0_0.jpg']); // no rating file: skipped by the script
}

compare('dreambench', 'dreambench', () => DREAM);
compare('dreambench seed 11', 'dreambench', () => DREAM, { seed: 11 });

// A hand-checked DreamBench folder
const DREAM_SMALL = join(tmp, 'dreambench-small');
{
  // cat_0: (1, 1) → 1; cat_1: (5, 4) → 4.5; cat_2: (1, 5) dropped (|1 − 5| > 2); cat_3: (2, 2) → 2;
  // catdog_7: (5, 5) → 5, taken by the prefix "cat" too. Pairs in dict order with |Δ| ≥ 2:
  // (cat_0, cat_1) label 1, (cat_0, catdog_7) label 1, (cat_1, cat_3) label 0, (cat_3, catdog_7) label 1.
  // |cat_1 − catdog_7| = 0.5 and |cat_0 − cat_3| = 1 form no pair.
  const g1 = '{"cat_0": 1, "cat_1": 5, "cat_2": 1, "cat_3": 2, "catdog_7": 5}';
  const g2 = '{"catdog_7": 5, "cat_3": 2, "cat_2": 5, "cat_1": 4, "cat_0": 1}';
  files(DREAM_SMALL, ['data_human_rating/merged_data/group1/textual_inversion_sd-cp.json', 'data_human_rating/merged_data/group2/textual_inversion_sd-cp.json']);
  writeFileSync(join(DREAM_SMALL, 'data_human_rating/merged_data/group1/textual_inversion_sd-cp.json'), g1);
  writeFileSync(join(DREAM_SMALL, 'data_human_rating/merged_data/group2/textual_inversion_sd-cp.json'), g2);
  const m = 'textual_inversion';
  files(DREAM_SMALL, [`${m}/src_image/cat/0_0.jpg`, ...[0, 1, 3, 7].flatMap((i) => [`${m}/tgt_image/cat/${i}_0.jpg`, `${m}/text/cat/${i}_0.txt`])]);
  // "many" has 8 keys of alternating ratings: 16 pairs, of which sample(pairs, 5) keeps 5
  const vals = [0, 5, 0, 5, 1, 4, 1, 4];
  const many = vals.map((v, i) => `"many_${i}": ${v}`).join(', ');
  writeFileSync(join(DREAM_SMALL, 'data_human_rating/merged_data/group1/textual_inversion_sd-cp.json'), g1.replace('}', `, ${many}}`));
  writeFileSync(join(DREAM_SMALL, 'data_human_rating/merged_data/group2/textual_inversion_sd-cp.json'), g2.replace('}', `, ${many}}`));
  files(DREAM_SMALL, [`${m}/src_image/many/0_0.jpg`, ...range(8).flatMap((i) => [`${m}/tgt_image/many/${i}_0.jpg`, `${m}/text/many/${i}_0.txt`])]);
}

compare('dreambench, small', 'dreambench', () => DREAM_SMALL);

test('dreambench: prefix matching, |g1 − g2| > 2 dropped, pairs with |Δ| ≥ 2 once, labels, last-character index', async () => {
  const items = await listItems('dreambench', DREAM_SMALL);
  const cat = items.filter((i) => i.anchor === 'textual_inversion/src_image/cat/0_0.jpg');
  const t = (k: string) => `textual_inversion/tgt_image/cat/${k}_0.jpg`;
  assert.equal(
    cat.map((i) => [i.cand1, i.cand2, i.label, i.truth]),
    [
      [t('0'), t('1'), 1, 2],
      [t('0'), t('7'), 1, 2],
      [t('1'), t('3'), 0, 1],
      [t('3'), t('7'), 1, 2],
    ],
  );
  assert.ok(cat.every((i) => i.prompt === 'High quality image'));
});

test('dreambench: more than 5 pairs → random.sample(pairs, 5), in the sample\'s order', async () => {
  const items = await listItems('dreambench', DREAM_SMALL);
  const many = items.filter((i) => i.anchor.includes('/many/'));
  assert.is(many.length, 5);
  // the pairs in dict order (value 0/1 at even indices, 5/4 at odd: pairs (a, b) with |Δ| ≥ 2)
  const vals = [0, 5, 0, 5, 1, 4, 1, 4];
  const pairs: [number, number, number][] = [];
  const seen = new Set<string>();
  for (let a = 0; a < 8; a++)
    for (let b = 0; b < 8; b++) {
      if (a === b || Math.abs(vals[a]! - vals[b]!) < 2 || seen.has(`${b},${a}`)) continue;
      seen.add(`${a},${b}`);
      pairs.push([a, b, vals[a]! > vals[b]! ? 0 : 1]);
    }
  assert.is(pairs.length, 16);
  // "cat" (4 pairs) consumes nothing; "many" is the first draw of the seed
  const r = new PyRandom(2334);
  const expected = r.sample(pairs, 5);
  assert.equal(many.map((i) => [Number(i.cand1.at(-7)), Number(i.cand2.at(-7)), i.label]), expected);
});

// ---------------------------------------------------------------------------------------------
// IPref

const IPREF = join(tmp, 'ipref');
const ORIGINALS = join(tmp, 'ipa-bench');
{
  for (const cls of ['bear', 'apple', 'zebra']) {
    files(IPREF, ['1.0', '0.8', '0.6', '0.4', '0.35', '0.3', '0.2'].map((w) => `${cls}/${w}.png`));
    files(ORIGINALS, [`${cls}.JPG`]);
  }
}

compare('ipref', 'ipref', () => IPREF, { originals: ORIGINALS });

test('ipref: five fixed comparisons per class, anchors under the originals', async () => {
  const items = await listItems('ipref', IPREF, { originals: ORIGINALS });
  assert.is(items.length, 15);
  assert.equal(items.slice(0, 5).map((i) => [i.anchor, i.cand1, i.cand2]), [
    ['apple.JPG', 'apple/1.0.png', 'apple/0.6.png'],
    ['apple.JPG', 'apple/0.8.png', 'apple/0.4.png'],
    ['apple.JPG', 'apple/0.6.png', 'apple/0.3.png'],
    ['apple.JPG', 'apple/0.4.png', 'apple/0.35.png'],
    ['apple.JPG', 'apple/0.3.png', 'apple/0.2.png'],
  ]);
  assert.ok(items.every((i) => i.anchorRoot === 'originals' && i.truth === 1 && i.prompt === 'High quality image'));
  assert.equal(itemPaths(items[0]!, IPREF, { originals: ORIGINALS }), { anchor: join(ORIGINALS, 'apple.JPG'), cand1: join(IPREF, 'apple/1.0.png'), cand2: join(IPREF, 'apple/0.6.png') });
  await rejects(() => listItems('ipref', IPREF), /originals folder is required/, 'without originals');
});

// ---------------------------------------------------------------------------------------------
// Sref / InstantStyle

const SREF = join(tmp, 'sref');
{
  const counts = [2, 5, 1, 0, 30, 3, 2, 24, 7, 2, 4, 22];
  counts.forEach((n, g) => {
    const id = String(g * 37 + 1).padStart(3, '0');
    files(SREF, range(n).map((i) => `${id}/${String(i).padStart(2, '0')}.png`));
    if (n === 0) dirs(SREF, [id]);
  });
  files(SREF, ['010/notes.txt', '010/a.jpg', '010/b.jpeg', 'top.png', 'top2.png']); // the root itself is never a group
  files(SREF, ['nested/inner/x.png', 'nested/inner/y.jpg', 'nested/one.png']);
  symlinkSync(join(SREF, '038'), join(SREF, 'zlink')); // a group through a symlink; not walked into
}

compare('sref', 'sref', () => SREF, {}, (items) => assert.is(items.length, 2000));
compare('instantstyle, seed 1', 'instantstyle', () => SREF, { seed: 1 });
compare('sref, given listing order', 'sref', () => SREF, { listing: 'given' });
compare('sref, 37 trials', 'sref', () => SREF, { trials: 37 });

test('sref: trials N is the first N items of the full sequence', async () => {
  const full = await listItems('sref', SREF);
  assert.is(full.length, 2000);
  for (const n of [1, 37, 500]) assert.equal(await listItems('sref', SREF, { trials: n }), full.slice(0, n), `trials ${n}`);
  const more = await listItems('sref', SREF, { trials: 2100 });
  assert.equal(more.slice(0, 2000), full);
});

test('sref: A and B from one folder, C from another; folders with < 2 images and the root are no groups', async () => {
  const items = await listItems('sref', SREF);
  const folder = (p: string) => p.slice(0, p.lastIndexOf('/'));
  for (const it of items) {
    assert.is(folder(it.anchor), folder(it.cand1));
    assert.is.not(it.anchor, it.cand1);
    assert.is.not(folder(it.anchor), folder(it.cand2));
  }
  const used = new Set(items.flatMap((i) => [i.anchor, i.cand2].map(folder)));
  assert.ok(used.has('nested/inner') && used.has('zlink') && used.has('010'));
  for (const f of ['', 'nested', '075', '112']) assert.not.ok(used.has(f), `${f || 'root'} is no group`);
});

// ---------------------------------------------------------------------------------------------
// Listing

const LISTING = join(tmp, 'listing');
const odd = ['zeta', 'alpha', 'Beta', '10', '2', 'é', '\u{1F600}', '\uFF5E', 'a b', '_x', 'mid'];
files(LISTING, odd.map((n) => `flat/${n}`));
files(LISTING, ['tree/b/1', 'tree/b/c/2', 'tree/a/3', 'tree/a/d/e/4', 'tree/f', 'tree/z/5']);
symlinkSync(join(LISTING, 'tree', 'a'), join(LISTING, 'tree', 'link'));
symlinkSync(join(LISTING, 'nowhere'), join(LISTING, 'tree', 'broken'));

function pyJson(code: string, ...args: string[]): unknown {
  const r = spawnSync(PYTHON, ['-c', code, ...args], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`python: ${r.stderr}`);
  return JSON.parse(r.stdout);
}

test('listdir: "given" is os.listdir\'s order, "sorted" is sorted(os.listdir) (code points)', () => {
  const flat = join(LISTING, 'flat');
  if (pythonVersion === undefined) {
    if (!SKIP_PYTHON) assert.unreachable(`cannot run ${PYTHON} (HUB_TEST_PYTHON / DIFFSIM_SKIP_PYTHON=1)`);
  } else {
    assert.equal(listdir(flat, 'given'), pyJson('import os, sys, json; print(json.dumps(os.listdir(sys.argv[1])))', flat));
    assert.equal(listdir(flat, 'sorted'), pyJson('import os, sys, json; print(json.dumps(sorted(os.listdir(sys.argv[1]))))', flat));
  }
  assert.equal(listdir(flat), listdir(flat, 'sorted'));
  const sorted = listdir(flat);
  assert.ok(sorted.indexOf('\uFF5E') < sorted.indexOf('\u{1F600}'), 'U+FF5E before U+1F600 (UTF-16 order would swap them)');
  assert.is(compareNames('\uFF5E', '\u{1F600}'), -1);
  assert.is(compareNames('ab', 'abc'), -1);
  assert.is(compareNames('b', 'a'), 1);
  assert.equal([...listdir(flat, 'given')].sort(compareNames), sorted);
});

test('walk: os.walk top-down, symlinked dirs listed but not entered, order from the dir list', () => {
  const root = join(LISTING, 'tree');
  const w = walk(root).map((e) => [e.rel, e.dirs, e.files]);
  assert.equal(w, [
    ['', ['a', 'b', 'link', 'z'], ['broken', 'f']],
    ['a', ['d'], ['3']],
    ['a/d', ['e'], []],
    ['a/d/e', [], ['4']],
    ['b', ['c'], ['1']],
    ['b/c', [], ['2']],
    ['z', [], ['5']],
  ]);
  assert.is(walk(root)[1]!.path, join(root, 'a'));
  assert.equal(walk(join(root, 'f')), [], 'a file walks to nothing');
  assert.equal(walk(join(root, 'missing')), []);
  if (pythonVersion !== undefined) {
    const code = `import os, sys, json
print(json.dumps([[os.path.relpath(r, sys.argv[1]) if r != sys.argv[1] else "", d, f] for r, d, f in os.walk(sys.argv[1])]))`;
    assert.equal(walk(root, 'given').map((e) => [e.rel, e.dirs, e.files]), pyJson(code, root));
  } else if (!SKIP_PYTHON) assert.unreachable(`cannot run ${PYTHON}`);
});

test('given vs sorted: item lists differ where readdir order differs from sorted order', async () => {
  const given = listdir(SREF, 'given');
  if (given.join('/') === listdir(SREF, 'sorted').join('/')) return; // this filesystem lists sorted: nothing to tell apart
  const a = await listItems('sref', SREF, { listing: 'given', trials: 50 });
  const b = await listItems('sref', SREF, { trials: 50 });
  assert.not.equal(a, b);
});

// ---------------------------------------------------------------------------------------------
// Missing inputs are reported by name, before anything is returned

function freshCopy(name: string, build: (root: string) => void): string {
  const root = join(tmp, name);
  build(root);
  return root;
}

test('nights: missing data.csv, missing columns, missing images (first few + count)', async () => {
  const empty = freshCopy('nights-empty', (r) => dirs(r, ['x']));
  await rejects(() => listItems('nights', empty), /nights-empty\/data\.csv does not exist.*expected .*columns split, ref_path/, 'no data.csv');
  const noCol = freshCopy('nights-nocol', (r) => files(r, ['data.csv']));
  writeFileSync(join(noCol, 'data.csv'), 'ref_path,left_path,right_path,left_vote,prompt\na,b,c,1,d\n');
  await rejects(() => listItems('nights', noCol), /data\.csv lacks the column split/, 'no split column');
  const missing = freshCopy('nights-missing', (r) => files(r, ['ref/0.png', 'l/0.png', 'r/0.png']));
  const rows = range(9).map((i) => `${i === 0 ? 0 : i},l/${i}.png,r/${i}.png,ref/${i}.png,1,val,p`);
  writeFileSync(join(missing, 'data.csv'), `id,left_path,right_path,ref_path,left_vote,split,prompt\n${rows.join('\n')}\n`);
  try {
    await listItems('nights', missing);
    assert.unreachable('expected a ProtocolError');
  } catch (e) {
    assert.instance(e, ProtocolError);
    const err = e as ProtocolError;
    assert.is(err.missing.length, 24);
    assert.equal(err.missing.slice(0, 3), [join(missing, 'ref/1.png'), join(missing, 'l/1.png'), join(missing, 'r/1.png')]);
    assert.match(err.message, /^nights: 24 required files are missing/);
    assert.match(err.message, /ref\/1\.png.*l\/1\.png.*r\/1\.png.*ref\/2\.png.*l\/2\.png; and 19 more$/);
  }
  const badVote = freshCopy('nights-vote', (r) => files(r, ['a', 'b', 'c']));
  writeFileSync(join(badVote, 'data.csv'), 'split,ref_path,left_path,right_path,left_vote,prompt\nval,a,b,c,2,p\n');
  await rejects(() => listItems('nights', badVote), /line 2: left_vote is "2"; expected 0 or 1/, 'vote 2');
});

test('tid2013: a missing level file is named with the variants tried', async () => {
  const root = freshCopy('tid-missing', (r) => {
    const names: string[] = [];
    for (let i = 1; i <= 25; i++) {
      const rr = String(i).padStart(2, '0');
      names.push(`I${rr}.BMP`);
      for (let d = 1; d <= 24; d++) {
        const dd = String(d).padStart(2, '0');
        if (!(i === 3 && d === 17)) names.push(`i${rr}_${dd}_2.bmp`);
        names.push(`i${rr}_${dd}_3.bmp`);
      }
    }
    files(r, names);
  });
  await rejects(() => listItems('tid2013', root), /tid2013: 1 required file is missing.*i03_17_2\.bmp \(none of i03_17_2\.bmp, I03_17_2\.BMP, I03_17_2\.bmp, i03_17_2\.BMP exists/, 'level file');
  await rejects(() => listItems('tid2013', join(tmp, 'no-such-folder')), /no-such-folder is not a directory; expected the benchmark folder: one flat folder/, 'no folder');
});

test('cute: entries named main.py and .DS_Store are no categories, even as folders', async () => {
  const root = freshCopy('cute-skip', (r) => {
    for (const cat of ['main.py', '.DS_Store', 'toy']) files(r, [`${cat}/a/front/1.png`, `${cat}/a/front/2.png`, `${cat}/b/front/3.png`]);
  });
  const items = await listItems('cute', root);
  assert.is(items.length, 10); // a draws C from b once per experiment; b has a single image
  assert.ok(items.every((i) => i.anchor.startsWith('toy/')));
});

test('cute: a missing other/<cond> folder is named (the script would crash there)', async () => {
  const root = freshCopy('cute-crash', (r) => {
    files(r, ['toy/a/front/1.png', 'toy/a/front/2.png', 'toy/b/back/1.png', 'toy/b/back/2.png']);
  });
  await rejects(() => listItems('cute', root), /cute: .*toy\/b\/front \(no folder "front" in .*toy\/b; cute_main\.py crashes/, 'other/cond');
  const flat = freshCopy('cute-flat', (r) => files(r, ['a.png', 'b/c.png']));
  await rejects(() => listItems('cute', flat), /no items could be formed .*expected <dir>\/<category>\/<instance>\/<condition>/, 'no layout');
});

test('dreambench: missing rating file, missing group-2 key, missing text file', async () => {
  const noJson = freshCopy('dream-nojson', (r) => files(r, ['dreambooth/src_image/cat/0_0.jpg']));
  await rejects(() => listItems('dreambench', noJson), /group1\/dreambooth_sd-cp\.json \(the rating file dreambench_main\.py opens\).*group2/, 'rating files');
  const noMethod = freshCopy('dream-nomethod', (r) => files(r, ['other/src_image/cat/0_0.jpg']));
  await rejects(() => listItems('dreambench', noMethod), /no folder in .* has a name containing blip_diffusion, dreambooth/, 'no method');
  const keys = freshCopy('dream-key', (r) => {
    files(r, ['dreambooth/src_image/cat/0_0.jpg', 'data_human_rating/merged_data/group1/dreambooth_sd-cp.json', 'data_human_rating/merged_data/group2/dreambooth_sd-cp.json']);
    writeFileSync(join(r, 'data_human_rating/merged_data/group1/dreambooth_sd-cp.json'), '{"cat_0": 1, "cat_1": 5}');
    writeFileSync(join(r, 'data_human_rating/merged_data/group2/dreambooth_sd-cp.json'), '{"cat_0": 1}');
  });
  await rejects(() => listItems('dreambench', keys), /group2\/dreambooth_sd-cp\.json: no key "cat_1" .*KeyError/, 'key');
  writeFileSync(join(keys, 'data_human_rating/merged_data/group2/dreambooth_sd-cp.json'), '{"cat_0": 1, "cat_1": 5}');
  files(keys, ['dreambooth/tgt_image/cat/0_0.jpg', 'dreambooth/tgt_image/cat/1_0.jpg', 'dreambooth/text/cat/0_0.txt']);
  await rejects(() => listItems('dreambench', keys), /1 required file is missing .*dreambooth\/text\/cat\/1_0\.txt$/, 'text file');
});

test('ipref and sref: missing files and layouts', async () => {
  unlinkSync(join(ORIGINALS, 'zebra.JPG'));
  try {
    await rejects(() => listItems('ipref', IPREF, { originals: ORIGINALS }), /ipref: 1 required file is missing .*ipa-bench\/zebra\.JPG$/, 'original');
  } finally {
    files(ORIGINALS, ['zebra.JPG']);
  }
  const one = freshCopy('sref-one', (r) => files(r, ['a/1.png', 'a/2.png', 'b/1.png']));
  await rejects(() => listItems('sref', one), /sref: .*sref-one has 1 folder with two or more images; expected/, 'one group');
  const broken = freshCopy('sref-broken', (r) => files(r, ['a/1.png', 'a/2.png', 'b/1.png', 'b/2.png']));
  symlinkSync(join(broken, 'gone.png'), join(broken, 'b', '3.png'));
  await rejects(() => listItems('sref', broken, { trials: 300 }), /sref: 1 required file is missing .*b\/3\.png$/, 'broken symlink');
});

test('options are checked against the benchmark', async () => {
  await rejects(() => listItems('nights', NIGHTS, { trials: 5 }), /trials applies to sref and instantstyle only/, 'trials');
  await rejects(() => listItems('sref', SREF, { trials: 0 }), /trials must be a positive integer/, 'trials 0');
  await rejects(() => listItems('cute', CUTE, { seed: 1.5 }), /seed must be an integer/, 'seed');
  await rejects(() => listItems('cute', CUTE, { listing: 'random' as never }), /listing must be 'sorted' or 'given'/, 'listing');
  await rejects(() => listItems('tid2013', TID, { originals: ORIGINALS }), /originals applies to ipref only/, 'originals');
  await rejects(() => listItems('nope' as never, TID), /unknown benchmark "nope"/, 'benchmark');
});

test('the benchmark presets: the .sh table (target_step; the rest is the defaults: up, layer 0, cosine, seed 2334, SD1.5 size)', () => {
  assert.equal(Object.fromEntries(BENCHMARK_NAMES.map((b) => [b, DIFFSIM_PRESETS[benchmarkPreset(b)]])), {
    nights: { step: 500 },
    tid2013: { step: 900 },
    cute: { step: 600 },
    dreambench: { step: 750 },
    ipref: { step: 750 },
    sref: { step: 900 },
    instantstyle: { step: 900 },
  });
  assert.is(DEFAULT_PROMPT, 'High quality image');
  assert.is(DEFAULT_SEED, 2334);
  assert.is(DEFAULT_PROMPT, DIFFSIM_DEFAULTS.prompt);
  assert.is(DEFAULT_SEED, DIFFSIM_DEFAULTS.seed);
});

// KEEP_EVAL_TMP=1 keeps the synthetic datasets for a look
test.after(() => {
  if (process.env.KEEP_EVAL_TMP === '1') console.log(`kept ${tmp}`);
  else rmSync(tmp, { recursive: true, force: true });
});

test.run();
