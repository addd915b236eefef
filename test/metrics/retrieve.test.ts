// Slow suite: about 197 s of CPU on lavapipe (556 s wall on a shared 2-core machine).
// Retrieval over a folder of images on the tiny models: scores equal the pair score bit for bit,
// the ranking (best first, lowest first for mse, equal scores by path), the gallery listing, the
// on-disk embedding cache (reused, invalidated by a changed file or setting, corrupt entries
// rewritten, roles and galleries kept apart), the command (`diffsim retrieve`) and its errors, and
// the progress lines.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { cpSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, truncateSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { createMetric, type Metric, type MetricEmbedding } from '../../src/diffsim/metric.js';
import { diffsimSettings, parseCommand } from '../../src/cli/metric-options.js';
import { EmbeddingCache } from '../../src/apps/embedding-cache.js';
import { listImages } from '../../src/apps/images.js';
import { rankResults, retrieve } from '../../src/apps/retrieve.js';
import { ItemProgress } from '../../src/cli/progress.js';
import { FIXTURES, rejects, runtime } from '../support/helpers.js';
import { cli, fails, IMAGE_A, IMAGE_B, lastJson, MODEL_ARGS, scoreOf, TINY, writeBmp } from '../support/gallery.js';

const T0 = 1_700_000_000; // whole seconds: a restored mtime is exactly the old one
const ROOT = mkdtempSync(join(tmpdir(), 'diffsim-retrieve-'));
let galleries = 0;

/** a.bmp, b.BMP, c.png, dup1.bmp, sub/dup2.bmp (= dup1), sub/deep/d.JPG, e.jpeg, notes.txt. */
function makeGallery(): string {
  const g = join(ROOT, `g${galleries++}`);
  mkdirSync(join(g, 'sub', 'deep'), { recursive: true });
  writeBmp(join(g, 'a.bmp'), 1);
  writeBmp(join(g, 'b.BMP'), 2);
  cpSync(IMAGE_B, join(g, 'c.png'));
  writeBmp(join(g, 'dup1.bmp'), 3);
  writeBmp(join(g, 'sub', 'dup2.bmp'), 3);
  cpSync(join(FIXTURES, 'images', 'jpeg_444.jpg'), join(g, 'sub', 'deep', 'd.JPG'));
  cpSync(join(FIXTURES, 'images', 'jpeg_420.jpg'), join(g, 'e.jpeg'));
  writeFileSync(join(g, 'notes.txt'), 'not an image');
  for (const f of ['a.bmp', 'b.BMP', 'c.png', 'dup1.bmp', 'sub/dup2.bmp', 'sub/deep/d.JPG', 'e.jpeg']) utimesSync(join(g, f), T0, T0);
  return g;
}
const RELS = ['a.bmp', 'b.BMP', 'c.png', 'dup1.bmp', 'e.jpeg', 'sub/deep/d.JPG', 'sub/dup2.bmp'];

const MODELS = { model: join(TINY, 'sd15'), ipAdapter: join(TINY, 'ip-adapter'), clipModel: join(TINY, 'clip'), dinoModel: join(TINY, 'dinov2') };

/** A metric with the settings the command line gives it (so the command's scores can be compared). */
async function cliMetric(...args: string[]): Promise<Metric> {
  const m = parseCommand('test', [...args, ...MODEL_ARGS]).metric;
  return createMetric(m.metric as 'diffsim', { ...MODELS, runtime: await runtime(), diffsim: diffsimSettings(m), layer: m.layer });
}

/** The metric, counting the embeddings it makes by role. */
function counting(m: Metric): { metric: Metric; count: { A: number; B: number } } {
  const count = { A: 0, B: 0 };
  const metric = new Proxy(m, {
    get(target, p) {
      if (p === 'embed') {
        return (image: Parameters<Metric['embed']>[0], role: 'A' | 'B' = 'A') => {
          count[role]++;
          return target.embed(image, role);
        };
      }
      const v = Reflect.get(target, p, target) as unknown;
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
  return { metric, count };
}

/** Every .safetensors entry under a cache folder. */
function entries(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return (readdirSync(dir, { recursive: true }) as string[]).filter((f) => f.endsWith('.safetensors')).map((f) => join(dir, f));
}

let cosine: Metric;
let mse: Metric;

test.before(async () => {
  cosine = await cliMetric();
  mse = await cliMetric('--similarity', 'mse');
});
test.after(async () => {
  await cosine.close();
  await mse.close();
});

test('listImages: recursive, sorted by relative path, extensions in any case, the cache folder left out', async () => {
  const g = makeGallery();
  mkdirSync(join(g, '.diffsim-cache'));
  writeBmp(join(g, '.diffsim-cache', 'planted.bmp'), 9);
  mkdirSync(join(g, 'elsewhere'));
  writeBmp(join(g, 'elsewhere', 'planted.png'), 9);
  writeBmp(join(g, 'x.gif'), 9);
  const all = await listImages(g, { recursive: true });
  assert.equal(all.map((x) => x.rel), [...RELS.slice(0, 5), 'elsewhere/planted.png', ...RELS.slice(5)]);
  assert.is(all[0]!.path, join(g, 'a.bmp'));
  const some = await listImages(g, { recursive: true, excludeDirs: [join(g, 'elsewhere')] });
  assert.equal(some.map((x) => x.rel), RELS);
  assert.equal((await listImages(g)).map((x) => x.rel), RELS.slice(0, 5), 'not recursive: the top folder only');
  await rejects(() => listImages(join(g, 'missing')), /missing: no such folder/, 'missing folder');
  await rejects(() => listImages(join(g, 'a.bmp')), /a\.bmp: not a folder/, 'a file');
});

test('rankResults: best first, lowerBetter lowest first, equal scores by path, NaN last', () => {
  const rows = () => [
    { rel: 'z', score: 0.5 },
    { rel: 'b', score: NaN },
    { rel: 'm', score: 0.9 },
    { rel: 'a', score: 0.5 },
    { rel: 'c', score: 0.1 },
  ];
  assert.equal(rankResults(rows(), false).map((x) => x.rel), ['m', 'a', 'z', 'c', 'b']);
  assert.equal(rankResults(rows(), true).map((x) => x.rel), ['c', 'a', 'z', 'm', 'b']);
});

test('retrieve: each score is metric.score(query, image) bit for bit, best first; k; no cache: nothing written', async () => {
  const g = makeGallery();
  const { metric, count } = counting(cosine);
  const r = await retrieve(metric, IMAGE_A, g, { cache: false, k: 100 });
  assert.is(r.gallery, 7);
  assert.is(r.results.length, 7, 'k beyond the gallery: all');
  assert.is(r.embedded, 7);
  assert.is(r.fromCache, 0);
  assert.is(r.cache, null);
  assert.equal(count, { A: 1, B: 7 }, 'the query once in role A, each image once in role B');
  assert.not.ok(existsSync(join(g, '.diffsim-cache')), 'no cache folder without a cache');
  const byRel = new Map(r.results.map((x) => [x.rel, x]));
  for (const rel of RELS) {
    const x = byRel.get(rel)!;
    assert.is(x.path, join(g, rel));
    assert.ok(Object.is(x.score, await cosine.score(IMAGE_A, join(g, rel))), `${rel}: the pair score`);
  }
  for (let i = 1; i < r.results.length; i++) assert.ok(r.results[i - 1]!.score >= r.results[i]!.score, 'higher first');
  assert.is(byRel.get('dup1.bmp')!.score, byRel.get('sub/dup2.bmp')!.score, 'equal images, equal scores');
  const top = await retrieve(cosine, IMAGE_A, g, { cache: false, k: 3 });
  assert.equal(top.results, r.results.slice(0, 3));
  assert.is((await retrieve(cosine, IMAGE_A, g, { cache: false })).results.length, 7, 'default k 10');
  await rejects(() => retrieve(cosine, IMAGE_A, g, { cache: false, k: 0 }), /k must be a positive integer/, 'k 0');
});

/** A gallery with its cache filled by the cosine metric (built once, copied with timestamps). */
let warm: { dir: string; results: { rel: string; score: number }[] } | undefined;
async function warmGallery(): Promise<string> {
  if (!warm) {
    const dir = makeGallery();
    const r = await retrieve(cosine, IMAGE_A, dir, { k: 100 });
    assert.is(r.embedded, 7);
    warm = { dir, results: r.results };
  }
  const copy = join(ROOT, `g${galleries++}`);
  cpSync(warm.dir, copy, { recursive: true, preserveTimestamps: true });
  return copy;
}

test('the cache: a second run embeds only the query and gives the same results bit for bit; the layout', async () => {
  const g = makeGallery();
  const first = await retrieve(cosine, IMAGE_A, g, { k: 100 });
  assert.is(first.embedded, 7);
  assert.is(first.cache, join(g, '.diffsim-cache'));
  const files = entries(join(g, '.diffsim-cache'));
  assert.is(files.length, 7);
  const keyDirs = readdirSync(join(g, '.diffsim-cache')).filter((f) => f !== 'CACHEDIR.TAG');
  assert.is(keyDirs.length, 1);
  assert.match(keyDirs[0]!, /^[0-9a-f]{16}$/);
  const meta = JSON.parse(readFileSync(join(g, '.diffsim-cache', keyDirs[0]!, 'meta.json'), 'utf8')) as Record<string, unknown>;
  assert.is(meta.metric, 'diffsim');
  assert.is(meta.key, cosine.key);
  for (const f of files) assert.match(f, new RegExp(`${keyDirs[0]}/B/[0-9a-f]{32}\\.safetensors$`));
  assert.ok(existsSync(join(g, '.diffsim-cache', 'CACHEDIR.TAG')));
  const all = (readdirSync(join(g, '.diffsim-cache'), { recursive: true }) as string[]).filter((f) => statSync(join(g, '.diffsim-cache', f)).isFile());
  assert.is(all.length, 9, `the entries, meta.json and CACHEDIR.TAG, no temporary files: ${all.join(', ')}`);

  const { metric, count } = counting(cosine);
  const again = await retrieve(metric, IMAGE_A, g, { k: 100 });
  assert.is(again.embedded, 0);
  assert.is(again.fromCache, 7);
  assert.equal(count, { A: 1, B: 0 }, 'only the query embedded');
  assert.equal(again.results, first.results);
  for (const x of again.results) assert.ok(Object.is(x.score, await cosine.score(IMAGE_A, x.path)), `${x.rel}: cached = pair score`);

  // mse compares the same embeddings (the scoring settings are not part of the key): from the cache, lowest first.
  const low = await retrieve(mse, IMAGE_A, g, { k: 100 });
  assert.is(low.fromCache, 7);
  for (let i = 1; i < low.results.length; i++) assert.ok(low.results[i - 1]!.score <= low.results[i]!.score, 'mse: lower first');
  for (const x of low.results) assert.ok(Object.is(x.score, await mse.score(IMAGE_A, x.path)), `${x.rel}: mse pair score`);
});

test('a changed file alone is re-embedded: a new mtime at the same size, a new size at the same mtime', async () => {
  const g = await warmGallery();
  const before = statSync(join(g, 'a.bmp')).size;
  writeBmp(join(g, 'a.bmp'), 101);
  assert.is(statSync(join(g, 'a.bmp')).size, before, 'same size');
  utimesSync(join(g, 'a.bmp'), T0 + 10, T0 + 10);
  const { metric, count } = counting(cosine);
  const r = await retrieve(metric, IMAGE_A, g, { k: 100 });
  assert.is(r.embedded, 1);
  assert.is(r.fromCache, 6);
  assert.equal(count, { A: 1, B: 1 });
  const a = r.results.find((x) => x.rel === 'a.bmp')!;
  assert.ok(Object.is(a.score, await cosine.score(IMAGE_A, join(g, 'a.bmp'))), 'the new image scored');
  assert.is.not(a.score, warm!.results.find((x) => x.rel === 'a.bmp')!.score, 'not the old score');

  // Another size, the old mtime.
  writeBmp(join(g, 'b.BMP'), 102, 20, 16);
  utimesSync(join(g, 'b.BMP'), T0, T0);
  const r2 = await retrieve(cosine, IMAGE_A, g, { k: 100 });
  assert.is(r2.embedded, 1);
  assert.ok(Object.is(r2.results.find((x) => x.rel === 'b.BMP')!.score, await cosine.score(IMAGE_A, join(g, 'b.BMP'))));
  assert.is((await retrieve(cosine, IMAGE_A, g, { k: 100 })).embedded, 0, 'rewritten entries are used next time');
});

test('another setting (--step) finds no entry: all re-embedded, in a folder of its own; the old entries stay', async () => {
  const g = await warmGallery();
  const step = await cliMetric('--step', '500');
  try {
    assert.is.not(step.key, cosine.key);
    const r = await retrieve(step, IMAGE_A, g, { k: 100 });
    assert.is(r.embedded, 7);
    for (const x of r.results) assert.ok(Object.is(x.score, await step.score(IMAGE_A, x.path)), x.rel);
    assert.is(readdirSync(join(g, '.diffsim-cache')).filter((f) => f !== 'CACHEDIR.TAG').length, 2);
    assert.is((await retrieve(cosine, IMAGE_A, g, { k: 100 })).embedded, 0, 'step 600 entries still valid');
  } finally {
    await step.close();
  }
});

test('a corrupt or truncated entry: one warning naming it, re-embedded, rewritten', async () => {
  const g = await warmGallery();
  const cache = await EmbeddingCache.open(g, cosine);
  const bad = cache.entryPath(join(g, 'c.png'), 'B');
  const cut = cache.entryPath(join(g, 'e.jpeg'), 'B');
  assert.ok(existsSync(bad) && existsSync(cut));
  writeFileSync(bad, 'garbage, not safetensors');
  truncateSync(cut, statSync(cut).size - 10);
  const warnings: string[] = [];
  const r = await retrieve(cosine, IMAGE_A, g, { k: 100, onWarning: (m) => warnings.push(m) });
  assert.is(r.embedded, 2);
  assert.is(warnings.length, 2, warnings.join('\n'));
  assert.ok(warnings.some((w) => w.startsWith(`${bad}: ignoring a corrupt cache entry`)), warnings.join('\n'));
  assert.ok(warnings.some((w) => w.startsWith(`${cut}: ignoring a corrupt cache entry`)), warnings.join('\n'));
  assert.equal(r.results.map((x) => [x.rel, x.score]), warm!.results.map((x) => [x.rel, x.score]), 'the same ranking and scores as before');
  const again: string[] = [];
  assert.is((await retrieve(cosine, IMAGE_A, g, { k: 100, onWarning: (m) => again.push(m) })).embedded, 0, 'rewritten');
  assert.equal(again, []);
});

test('an entry whose tensor data was damaged (100 bytes flipped, header intact): one warning, re-embedded, the right scores', async () => {
  const g = await warmGallery();
  const cache = await EmbeddingCache.open(g, cosine);
  const entry = cache.entryPath(join(g, 'c.png'), 'B');
  const bytes = readFileSync(entry);
  const header = 8 + Number(bytes.readBigUInt64LE(0));
  assert.ok(bytes.length - header > 200, 'data to damage');
  for (let i = 0; i < 100; i++) bytes[header + 50 + i] ^= 0xff;
  writeFileSync(entry, bytes);
  const warnings: string[] = [];
  const r = await retrieve(cosine, IMAGE_A, g, { k: 100, onWarning: (m) => warnings.push(m) });
  assert.is(r.embedded, 1);
  assert.equal(warnings.length, 1, warnings.join('\n'));
  assert.match(warnings[0]!, /ignoring a corrupt cache entry \(its tensor data does not match its sha256/);
  assert.ok(warnings[0]!.startsWith(`${entry}: `));
  assert.equal(r.results.map((x) => [x.rel, x.score]), warm!.results.map((x) => [x.rel, x.score]), 'the same ranking and scores as before');
  assert.is((await retrieve(cosine, IMAGE_A, g, { k: 100 })).embedded, 0, 'rewritten');
});

test('a local model is known by its absolute path and its files\' sizes and mtimes: weights changed in place find no cached entry', async () => {
  const clip = join(ROOT, 'clip-model');
  cpSync(join(TINY, 'clip'), clip, { recursive: true });
  const g = makeGallery();
  const open = async (path: string) => createMetric('clip', { clipModel: path, runtime: await runtime() });
  const a = await open(clip);
  const rel = await open(relative(process.cwd(), clip));
  let b: Metric | undefined;
  try {
    assert.is(rel.key, a.key, 'a relative path is the same model');
    assert.ok(a.key.includes(clip), 'the absolute path in the key');
    assert.is((await retrieve(a, IMAGE_A, g, { k: 100 })).embedded, 7);
    assert.is((await retrieve(rel, IMAGE_A, g, { k: 100 })).embedded, 0, 'cached');
    const weights = join(clip, 'model.safetensors');
    const t = statSync(weights).mtimeMs + 5000;
    utimesSync(weights, new Date(t), new Date(t));
    b = await open(clip);
    assert.is.not(b.key, a.key, 'the weights changed');
    assert.is((await retrieve(b, IMAGE_A, g, { k: 100 })).embedded, 7, 'nothing from the old weights\' cache');
  } finally {
    await a.close();
    await rel.close();
    await b?.close();
  }
});

test('cache entries through a symlink: the link\'s target is written, the link kept', async () => {
  const g = await warmGallery();
  const cache = await EmbeddingCache.open(g, cosine);
  const entry = cache.entryPath(join(g, 'a.bmp'), 'B');
  const elsewhere = join(ROOT, `entry-target-${galleries}.safetensors`);
  writeFileSync(elsewhere, 'stale');
  rmSync(entry);
  symlinkSync(elsewhere, entry);
  const warnings: string[] = [];
  const r = await retrieve(cosine, IMAGE_A, g, { k: 100, onWarning: (m) => warnings.push(m) });
  assert.is(r.embedded, 1, warnings.join('\n'));
  assert.ok(lstatSync(entry).isSymbolicLink(), 'still a link');
  assert.is.not(readFileSync(elsewhere, 'utf8'), 'stale', 'the target rewritten');
  assert.is((await retrieve(cosine, IMAGE_A, g, { k: 100 })).embedded, 0, 'read through the link');
});

test('EmbeddingCache: roles kept apart; a copied gallery keeps its cache; an outside cache keys by absolute path', async () => {
  const g = await warmGallery();
  const cache = await EmbeddingCache.open(g, cosine);
  const path = join(g, 'a.bmp');
  assert.is(await cache.get(path, 'A'), undefined, 'only role B was cached');
  const ea = await cosine.embed(path, 'A');
  await cache.put(path, 'A', ea);
  const got = (await cache.get(path, 'A'))!;
  const gb = (await cache.get(path, 'B'))!;
  assert.is(got.role, 'A');
  assert.is(gb.role, 'B');
  const eb = await cosine.embed(IMAGE_B, 'B');
  assert.is(await cosine.compare(got, eb), await cosine.compare(ea, eb), 'the role A entry is the role A embedding');
  for (const e of [ea, eb, got, gb] as MetricEmbedding[]) e.dispose();
  assert.is(cache.stats.hits, 2);
  // warmGallery copies the gallery with its cache: found through the relative paths.
  assert.is((await retrieve(cosine, IMAGE_A, g, { k: 1 })).fromCache, 7);

  // One outside cache, two galleries with the same relative paths, sizes and mtimes but other pixels.
  const outside = join(ROOT, `outside${galleries}`);
  const g1 = makeGallery();
  const g2 = makeGallery();
  writeBmp(join(g2, 'a.bmp'), 55);
  utimesSync(join(g2, 'a.bmp'), T0, T0);
  assert.is((await retrieve(cosine, IMAGE_A, g1, { k: 100, cache: outside })).embedded, 7);
  const r2 = await retrieve(cosine, IMAGE_A, g2, { k: 100, cache: outside });
  assert.is(r2.embedded, 7, 'no entry of the other gallery used');
  assert.ok(Object.is(r2.results.find((x) => x.rel === 'a.bmp')!.score, await cosine.score(IMAGE_A, join(g2, 'a.bmp'))));
  assert.not.ok(existsSync(join(g1, '.diffsim-cache')), 'nothing in the gallery');
  assert.is(entries(outside).length, 14);
  assert.is((await retrieve(cosine, IMAGE_A, g1, { k: 100, cache: outside })).fromCache, 7);
});

test('a cache that cannot be written: one warning, the run goes on with the same scores', async () => {
  const g = join(ROOT, `small${galleries++}`);
  mkdirSync(g);
  writeBmp(join(g, 'a.bmp'), 1);
  writeBmp(join(g, 'b.bmp'), 2);
  const blocked = join(ROOT, `blocked${galleries}`);
  writeFileSync(blocked, 'a file where the cache folder would go');
  const warnings: string[] = [];
  const r = await retrieve(cosine, IMAGE_A, g, { cache: blocked, onWarning: (m) => warnings.push(m) });
  assert.is(r.results.length, 2);
  assert.is(warnings.length, 1, warnings.join('\n'));
  assert.match(warnings[0]!, new RegExp(`^${blocked}: cannot write the embedding cache \\(\\w+\\); going on without it$`));
  for (const x of r.results) assert.ok(Object.is(x.score, await cosine.score(IMAGE_A, x.path)), x.rel);
});

test('the query lies in the gallery: it is left out', async () => {
  const g = await warmGallery();
  const r = await retrieve(cosine, join(g, 'sub', '..', 'c.png'), g, { k: 100 });
  assert.is(r.queryExcluded, true);
  assert.is(r.gallery, 6);
  assert.not.ok(r.results.some((x) => x.rel === 'c.png'));
  const only = join(ROOT, 'only');
  mkdirSync(only);
  cpSync(IMAGE_A, join(only, 'q.png'));
  await rejects(() => retrieve(cosine, join(only, 'q.png'), only), /only: no images \(\.png \.jpg \.jpeg \.bmp\) in the folder besides the query/, 'only the query');
});

test('diffsim retrieve --json: each score is what diffsim score QUERY PATH prints; plain output; -k; the cache reused', () => {
  const g = makeGallery();
  const j = lastJson(cli('retrieve', IMAGE_A, g, '-k', '3', '--json', ...MODEL_ARGS), 'json');
  assert.is(j.query, IMAGE_A);
  assert.is(j.dir, g);
  assert.is(j.k, 3);
  assert.is(j.metric, 'diffsim');
  assert.is(j.t, 401);
  assert.is(j.embedded, 7);
  assert.is(j.gallery, 7);
  const results = j.results as { path: string; score: number }[];
  assert.is(results.length, 3);
  for (const x of results.slice(0, 2)) assert.ok(Object.is(x.score, scoreOf(cli('score', IMAGE_A, x.path, ...MODEL_ARGS), x.path)), `${x.path}: = score`);
  const plain = cli('retrieve', IMAGE_A, g, ...MODEL_ARGS);
  assert.is(plain.code, 0, plain.stderr);
  const lines = plain.stdout.trim().split('\n');
  assert.is(lines.length, 7, 'default k 10: all seven');
  assert.equal(lines.slice(0, 3), results.map((x) => `${x.score}\t${x.path}`));
  assert.match(plain.stderr, /retrieve: 7 images, 0 embedded, 7 from the cache/);
  assert.match(plain.stderr, /7\/7 images in [\d.]+ s/);
});

test('diffsim retrieve: --similarity mse lowest first; --cache DIR; --no-cache writes nothing', () => {
  const g = makeGallery();
  const out = join(ROOT, `cli-cache${galleries}`);
  const j = lastJson(cli('retrieve', IMAGE_A, g, '--similarity', 'mse', '-k', '10', '--cache', out, '--json', ...MODEL_ARGS), 'mse');
  assert.is(j.lowerBetter, true);
  assert.is(j.cache, out);
  const s = (j.results as { score: number }[]).map((x) => x.score);
  assert.equal([...s].sort((a, b) => a - b), s, 'ascending');
  assert.is(entries(out).length, 7);
  assert.not.ok(existsSync(join(g, '.diffsim-cache')));
  const none = lastJson(cli('retrieve', IMAGE_A, g, '--similarity', 'mse', '--no-cache', '--json', ...MODEL_ARGS), 'no-cache');
  assert.is(none.embedded, 7);
  assert.is(none.cache, null);
  assert.equal(none.results, j.results);
  assert.not.ok(existsSync(join(g, '.diffsim-cache')), '--no-cache: no folder');
});

test('diffsim retrieve errors: one line naming the argument or file; exit 2 for the command line, 1 otherwise', () => {
  const g = makeGallery();
  fails(cli('retrieve', IMAGE_A, join(g, 'nope'), ...MODEL_ARGS), 1, /nope: no such folder/, 'missing DIR');
  const empty = join(ROOT, 'empty');
  mkdirSync(empty);
  writeFileSync(join(empty, 'readme.txt'), 'x');
  fails(cli('retrieve', IMAGE_A, empty, ...MODEL_ARGS), 1, /empty: no images \(\.png \.jpg \.jpeg \.bmp\) in the folder/, 'empty gallery');
  writeFileSync(join(g, 'sub', 'broken.png'), 'not a png');
  fails(cli('retrieve', IMAGE_A, g, '--no-cache', ...MODEL_ARGS), 1, /sub\/broken\.png: /, 'unreadable image');
  fails(cli('retrieve', join(g, 'missing.png'), g, ...MODEL_ARGS), 1, /missing\.png: /, 'missing query');
  for (const k of ['0', 'abc', '-3', '1.5']) fails(cli('retrieve', IMAGE_A, g, '-k', k, ...MODEL_ARGS), 2, new RegExp(`retrieve: -k must be a positive integer, got "${k.replace('.', '\\.')}"`), `-k ${k}`);
  fails(cli('retrieve', IMAGE_A, g, '-k'), 2, /retrieve: --k needs a value/, '-k without a value');
  fails(cli('retrieve', IMAGE_A, g, '--metric', 'ensemble', ...MODEL_ARGS), 2, /retrieve: --metric ensemble is a majority vote .* not a score of one pair/, 'ensemble');
  fails(cli('retrieve', IMAGE_A), 2, /retrieve: expected QUERY and DIR, got 1 argument/, 'one argument');
  fails(cli('retrieve', IMAGE_A, g, '--cache', join(ROOT, 'c'), '--no-cache'), 2, /retrieve: give --cache DIR or --no-cache, not both/, 'both');
  fails(cli('retrieve', IMAGE_A, g, '--metric', 'clip', '--step', '500'), 2, /retrieve: --step does not apply to --metric clip/, 'metric option check');
});

test('ItemProgress: a line every 5 s off a terminal, a redrawn line on one, a closing line with the rate', () => {
  let t = 0;
  const written: string[] = [];
  const p = new ItemProgress(10, 'embed', { stream: { write: (s: string) => written.push(s) }, unit: 'images', now: () => t });
  t = 1000;
  p.tick();
  assert.equal(written, [], 'nothing before 5 s');
  t = 6000;
  p.tick();
  assert.equal(written, ['embed: 2/10 20% 0.33 images/s ETA 24 s\n']);
  t = 7000;
  p.tick();
  assert.is(written.length, 1);
  t = 20_000;
  p.tick(7);
  p.finish();
  p.finish();
  assert.equal(written.slice(1), ['embed: 10/10 images in 20 s (0.50 images/s)\n']);

  const tty: string[] = [];
  t = 0;
  const q = new ItemProgress(4, 'x', { stream: { write: (s: string) => tty.push(s), isTTY: true, columns: 80 }, now: () => t });
  t = 500;
  q.tick();
  t = 550;
  q.tick();
  assert.equal(tty, ['\r\x1b[Kx: 1/4 25% 2.00 items/s ETA 2 s'], 'at most ten redraws a second');
  t = 2000;
  q.tick(2);
  q.finish();
  assert.equal(tty.slice(1), ['\r\x1b[Kx: 4/4 100% 2.00 items/s', '\r\x1b[K', 'x: 4/4 items in 2.0 s (2.00 items/s)\n']);
});

test.run();
