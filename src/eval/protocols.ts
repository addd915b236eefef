// The item lists of the paper's seven benchmarks, formed exactly as the official scripts
// (showlab/DiffSim: night_main.py, tid_main.py, cute_main.py, dreambench_main.py, ipref_main.py,
// style_main.py) form them: same loops, same filters, same calls into Python's `random` (PyRandom,
// seeded like `random.seed(args.seed)`), in the same order, so with the same directory listing
// order the same triplets come out. Only the listing order is a choice ('sorted' by default; the
// scripts used the machine's readdir order, see listing.ts).
//
// Every item is a triplet (anchor, cand1, cand2) scored as score(anchor, cand1) and
// score(anchor, cand2), with the anchor passed as image A both times. Paths are relative to the
// benchmark folder (IPref's anchors: relative to the originals folder); `itemPaths` resolves them.
//
// Before returning, each protocol checks that every file its items reference exists (and the
// inputs the script opens: data.csv, rating JSONs, DreamBench's text files), and where the script
// would crash (a TID level file missing, a CUTE instance without the chosen condition folder, a
// DreamBench rating key missing from group 2) it reports that too, all in one ProtocolError.
//
// Assumption: style_main.py and dreambench_main.py call random.seed before constructing their
// models and draw afterwards; the draws match only if model loading takes no numbers from Python's
// global `random` (none of the loaders used calls it). cute_main.py seeds after loading.

import { existsSync, readFileSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';
import { PyRandom } from './pyrandom.js';
import { isDirectory, isFile, listdir, walk, type ListingOrder } from './listing.js';
import { decodeUtf8, parseJsonOrdered, readCsvDicts, type JsonValue } from './pyread.js';
import { DIFFSIM_DEFAULTS, type DiffSimPresetName } from '../diffsim/settings.js';

export type BenchmarkName = 'nights' | 'tid2013' | 'cute' | 'dreambench' | 'ipref' | 'sref' | 'instantstyle';
export const BENCHMARK_NAMES: readonly BenchmarkName[] = ['nights', 'tid2013', 'cute', 'dreambench', 'ipref', 'sref', 'instantstyle'];

export interface EvalItem {
  /** 0-based index in the protocol's order. */
  item: number;
  /** Relative to the benchmark folder, or (anchorRoot 'originals') to the originals folder. */
  anchor: string;
  cand1: string;
  cand2: string;
  /** The prompt the official script passes to DiffSim for this item. */
  prompt: string;
  /** Which candidate the ground truth says is the more similar one. */
  truth: 1 | 2;
  /** NIGHTS: the row's left_vote; DreamBench: the pair label (0: cand1 rated higher, 1: cand2). */
  label?: number;
  /** IPref: the anchor lives under the originals folder (--original_path). */
  anchorRoot?: 'originals';
}

export interface ProtocolOptions {
  /** random.seed(seed); default DEFAULT_SEED, the .sh files' --seed. */
  seed?: number;
  /** Directory listing order (default 'sorted'; 'given' = readdir order, what os.listdir returns). */
  listing?: ListingOrder;
  /** sref / instantstyle: the first N trials of the official sequence (2000 by default; larger N
   *  continues the same random stream past the official run). */
  trials?: number;
  /** ipref: the folder of the original images, <class>.JPG (--original_path). Required for ipref. */
  originals?: string;
  /** nights: keep only rows with votes ≥ this (DreamSim's loader uses 6; the official script has no
   *  such filter, so it is off by default). */
  votesAtLeast?: number;
}

/** The `--prompt` default of argprocess.py (tid_main.py and ipref_main.py also hard-code it): the
 *  DiffSim default prompt. */
export const DEFAULT_PROMPT = DIFFSIM_DEFAULTS.prompt;
/** random.seed(args.seed): the DiffSim seed, which every .sh file passes as --seed. */
export const DEFAULT_SEED = DIFFSIM_DEFAULTS.seed;

/** The DiffSim preset of a benchmark: the settings of its official .sh file (DIFFSIM_PRESETS in
 *  settings.ts; nights and cute form the prompt per item, see EvalItem.prompt). */
export function benchmarkPreset(benchmark: BenchmarkName): DiffSimPresetName {
  return benchmark;
}

export const STYLE_TRIALS = 2000;

/** The layout each protocol reads, for error messages. */
const LAYOUT: Record<BenchmarkName, string> = {
  nights: 'DreamSim\'s nights/ folder: data.csv (columns split, ref_path, left_path, right_path, left_vote, prompt) and the images it names',
  tid2013: 'one flat folder holding the TID2013 reference images I01.BMP..I25.BMP and the distorted images iRR_DD_L.bmp',
  cute: '<dir>/<category>/<instance>/<condition>/<images .png/.jpg/.jpeg>',
  dreambench: '<dir>/<method>/{src_image,tgt_image,text}/<ref>/... with <method> containing blip_diffusion, dreambooth, ip_adapter_plus_sdxl, ip_adapter_sdxl or textual_inversion, and <dir>/data_human_rating/merged_data/{group1,group2}/<method json>',
  ipref: '<dir>/<class>/{1.0,0.8,0.6,0.4,0.35,0.3,0.2}.png with the anchors <originals>/<class>.JPG',
  sref: '<dir>/.../<style folder>/<images .png/.jpg/.jpeg>, at least two folders with two or more images',
  instantstyle: '<dir>/.../<style folder>/<images .png/.jpg/.jpeg>, at least two folders with two or more images',
};

const SHOW_MISSING = 5;

export class ProtocolError extends Error {
  override readonly name = 'ProtocolError';
  constructor(
    readonly benchmark: BenchmarkName,
    message: string,
    /** The paths (or descriptions, for crash points) that are missing, all of them. */
    readonly missing: readonly string[] = [],
  ) {
    super(`${benchmark}: ${message}`);
  }
}

/** The full paths of an item's images: a relative path is joined to its root, an absolute one (a
 *  NIGHTS csv may hold those; os.path.join keeps them) is kept. */
export function itemPaths(item: EvalItem, dir: string, o: { originals?: string } = {}): { anchor: string; cand1: string; cand2: string } {
  let anchorRoot = dir;
  if (item.anchorRoot === 'originals') {
    if (o.originals === undefined) throw new TypeError(`itemPaths: item ${item.item} has its anchor under the originals folder; pass o.originals`);
    anchorRoot = o.originals;
  }
  return { anchor: under(anchorRoot, item.anchor), cand1: under(dir, item.cand1), cand2: under(dir, item.cand2) };
}

function under(root: string, p: string): string {
  return isAbsolute(p) ? p : join(root, p);
}

/** The image filter of cute_main.py and style_main.py: `f.endswith(('.png', '.jpg', '.jpeg'))`
 *  (case-sensitive). */
export function isImageName(name: string): boolean {
  return name.endsWith('.png') || name.endsWith('.jpg') || name.endsWith('.jpeg');
}

/** Collects what a protocol needs but cannot find, then throws once. */
class Needs {
  readonly missing: string[] = [];
  private readonly seen = new Set<string>();
  constructor(readonly benchmark: BenchmarkName) {}
  /** A crash point or an unreadable input, described. */
  problem(description: string): void {
    if (!this.seen.has(description)) {
      this.seen.add(description);
      this.missing.push(description);
    }
  }
  /** A file that must exist as a regular file (symlinks followed). */
  file(path: string): void {
    if (!this.seen.has(path)) {
      this.seen.add(path);
      if (!isFile(path)) this.missing.push(path);
    }
  }
  throwIfAny(): void {
    const m = this.missing;
    if (m.length === 0) return;
    const shown = m.slice(0, SHOW_MISSING).join('; ');
    const more = m.length > SHOW_MISSING ? `; and ${m.length - SHOW_MISSING} more` : '';
    throw new ProtocolError(this.benchmark, `${m.length} required file${m.length === 1 ? ' is' : 's are'} missing or unusable: ${shown}${more}`, m);
  }
}

function requireDir(benchmark: BenchmarkName, dir: string, what = 'the benchmark folder'): void {
  if (!isDirectory(dir)) throw new ProtocolError(benchmark, `${dir} is not a directory; expected ${what}: ${LAYOUT[benchmark]}`);
}

/** os.listdir that reports a failure as a ProtocolError naming the folder. */
function lister(benchmark: BenchmarkName, order: ListingOrder): (dir: string) => string[] {
  const cache = new Map<string, string[]>();
  return (dir) => {
    let names = cache.get(dir);
    if (names === undefined) {
      try {
        names = listdir(dir, order);
      } catch (e) {
        throw new ProtocolError(benchmark, `cannot list ${dir} (${(e as Error).message}); expected ${LAYOUT[benchmark]}`);
      }
      cache.set(dir, names);
    }
    return names;
  };
}

function numbered(items: Omit<EvalItem, 'item'>[]): EvalItem[] {
  return items.map((it, item) => ({ item, ...it }));
}

function requireItems(benchmark: BenchmarkName, dir: string, items: unknown[], detail = ''): void {
  if (items.length === 0) throw new ProtocolError(benchmark, `no items could be formed from ${dir}${detail}; expected ${LAYOUT[benchmark]}`);
}

// ---------------------------------------------------------------------------------------------
// NIGHTS (night_main.py): data.csv rows with split == 'val', in file order.

/** Python's int() of a string: optional whitespace and sign, decimal digits (underscores between
 *  digits allowed). */
function pyInt(s: string): number | undefined {
  if (!/^\s*[+-]?\d+(?:_\d+)*\s*$/.test(s)) return undefined;
  return Number(s.trim().replace(/_/g, ''));
}

export function nightsItems(dir: string, o: ProtocolOptions = {}): EvalItem[] {
  const b: BenchmarkName = 'nights';
  checkOptions(b, o);
  requireDir(b, dir);
  const csvPath = join(dir, 'data.csv');
  if (!isFile(csvPath)) throw new ProtocolError(b, `${csvPath} does not exist or is not a file; expected ${LAYOUT[b]}`);
  let text: string;
  try {
    text = decodeUtf8(readFileSync(csvPath), csvPath);
  } catch (e) {
    throw new ProtocolError(b, (e as Error).message);
  }
  const { fieldnames, rows } = readCsvDicts(text);
  const required = ['split', 'ref_path', 'left_path', 'right_path', 'left_vote', 'prompt'];
  if (o.votesAtLeast !== undefined) required.push('votes');
  const absent = required.filter((c) => !fieldnames.includes(c));
  if (absent.length > 0) {
    const bom = fieldnames[0]?.startsWith('\ufeff') ? ' (the header starts with a byte-order mark, which Python\'s csv keeps as part of the first name)' : '';
    throw new ProtocolError(b, `${csvPath} lacks the column${absent.length > 1 ? 's' : ''} ${absent.join(', ')}${bom}; its header is ${JSON.stringify(fieldnames)}`);
  }
  const needs = new Needs(b);
  const items: Omit<EvalItem, 'item'>[] = [];
  const bad = (line: number, what: string): never => {
    throw new ProtocolError(b, `${csvPath} line ${line}: ${what}`);
  };
  for (const row of rows) {
    const get = (c: string) => row.values.get(c);
    if (get('split') !== 'val') continue;
    if (o.votesAtLeast !== undefined) {
      const text = get('votes') ?? '';
      const v = text.trim() === '' ? NaN : Number(text);
      if (Number.isNaN(v)) bad(row.line, `votes is ${JSON.stringify(get('votes') ?? null)}; expected a number (votesAtLeast filters on it)`);
      if (v < o.votesAtLeast) continue;
    }
    const [ref, left, right, voteText, prompt] = ['ref_path', 'left_path', 'right_path', 'left_vote', 'prompt'].map(get);
    if (ref === undefined || left === undefined || right === undefined || voteText === undefined || prompt === undefined) {
      bad(row.line, `the row has ${row.values.size} of the ${fieldnames.length} columns; expected values for ref_path, left_path, right_path, left_vote and prompt`);
    }
    const vote = pyInt(voteText!);
    if (vote !== 0 && vote !== 1) bad(row.line, `left_vote is ${JSON.stringify(voteText)}; expected 0 or 1 (1: left is the more similar to ref)`);
    items.push({ anchor: ref!, cand1: left!, cand2: right!, prompt: `An image of a ${prompt!.toLowerCase()}`, truth: vote === 1 ? 1 : 2, label: vote });
  }
  requireItems(b, dir, items, ` (no data.csv row has split == 'val'${o.votesAtLeast !== undefined ? ` and votes >= ${o.votesAtLeast}` : ''})`);
  for (const it of items) for (const p of [it.anchor, it.cand1, it.cand2]) needs.file(under(dir, p));
  needs.throwIfAny();
  return numbered(items);
}

// ---------------------------------------------------------------------------------------------
// TID2013 (tid_main.py): for reference r = 1..25 and distortion d = 1..24, level 2 vs level 3.

const pad2 = (n: number) => String(n).padStart(2, '0');

/** The file names tid_main.py tries, in its order, for a reference image. */
export function tidReferenceNames(r: number): string[] {
  const rr = pad2(r);
  return [`I${rr}.BMP`, `i${rr}.bmp`, `i${rr}.BMP`, `I${rr}.bmp`];
}

/** The file names tid_main.py tries, in its order, for distortion d of reference r at a level. */
export function tidDistortedNames(r: number, d: number, level: number): string[] {
  const [rr, dd] = [pad2(r), pad2(d)];
  return [`i${rr}_${dd}_${level}.bmp`, `I${rr}_${dd}_${level}.BMP`, `I${rr}_${dd}_${level}.bmp`, `i${rr}_${dd}_${level}.BMP`];
}

export function tid2013Items(dir: string, o: ProtocolOptions = {}): EvalItem[] {
  const b: BenchmarkName = 'tid2013';
  checkOptions(b, o);
  requireDir(b, dir);
  const needs = new Needs(b);
  // os.path.exists (existsSync alike): true for anything that exists, following symlinks; a
  // directory with such a name is taken, and the file check below reports it
  const first = (names: string[]): string | undefined => names.find((n) => existsSync(join(dir, n)));
  const items: Omit<EvalItem, 'item'>[] = [];
  const pick = (names: string[], what: string): string => {
    const found = first(names);
    if (found === undefined) needs.problem(`${join(dir, names[0]!)} (none of ${names.join(', ')} exists; tid_main.py keeps the tuple of names and crashes loading ${what})`);
    else needs.file(join(dir, found));
    return found ?? names[0]!;
  };
  for (let r = 1; r <= 25; r++) {
    const ref = pick(tidReferenceNames(r), `reference image ${r}`);
    for (let d = 1; d <= 24; d++) {
      const cand1 = pick(tidDistortedNames(r, d, 2), `distortion ${d} level 2 of reference ${r}`);
      const cand2 = pick(tidDistortedNames(r, d, 3), `distortion ${d} level 3 of reference ${r}`);
      items.push({ anchor: ref, cand1, cand2, prompt: DEFAULT_PROMPT, truth: 1 });
    }
  }
  needs.throwIfAny();
  return numbered(items);
}

// ---------------------------------------------------------------------------------------------
// CUTE (cute_main.py). Per category (listing order; "main.py" and ".DS_Store" skipped), 10
// experiments; each walks the category folder and, at every level of the walk, for each
// subdirectory X of that level (an instance, at the first level) that itself has subdirectories:
//   cond = choice(subdirs of X)                      always drawn, before any skip
//   images = names in X/cond ending .png/.jpg/.jpeg;  skip if fewer than 2
//   A, B = sample(images, 2)
//   other = choice(the level's other subdirectories); skip if there is none
//   C = choice(images in other/cond);                skip if none, the script crashes if missing
// Deeper walk levels take part too, but draw nothing unless their folders have subfolders.

export function cuteItems(dir: string, o: ProtocolOptions = {}): EvalItem[] {
  const b: BenchmarkName = 'cute';
  checkOptions(b, o);
  requireDir(b, dir);
  const order = o.listing ?? 'sorted';
  const rng = new PyRandom(o.seed ?? DEFAULT_SEED);
  const ls = lister(b, order);
  const needs = new Needs(b);
  const subdirsOf = new Map<string, string[]>();
  const items: Omit<EvalItem, 'item'>[] = [];
  for (const cls of ls(dir)) {
    if (cls === 'main.py' || cls === '.DS_Store') continue;
    // os.walk runs again in every experiment; the tree does not change in between, so walk once
    const tree = walk(join(dir, cls), order);
    for (let experiment = 0; experiment < 10; experiment++) {
      for (const level of tree) {
        for (const inst of level.dirs) {
          const instPath = join(level.path, inst);
          let conds = subdirsOf.get(instPath);
          if (conds === undefined) {
            conds = ls(instPath).filter((d) => isDirectory(join(instPath, d)));
            subdirsOf.set(instPath, conds);
          }
          if (conds.length === 0) continue;
          const cond = rng.choice(conds);
          const images = ls(join(instPath, cond)).filter(isImageName);
          if (images.length < 2) continue;
          const [a, bb] = rng.sample(images, 2) as [string, string];
          const others = level.dirs.filter((d) => d !== inst);
          if (others.length === 0) continue;
          const other = rng.choice(others);
          const otherCond = join(level.path, other, cond);
          if (!isDirectory(otherCond)) {
            // os.listdir raises here (FileNotFoundError / NotADirectoryError) and the run ends
            needs.problem(`${otherCond} (no folder "${cond}" in ${join(level.path, other)}; cute_main.py crashes listing it when ${join(instPath, cond)} draws ${other} as the other instance)`);
            continue;
          }
          const otherImages = ls(otherCond).filter(isImageName);
          if (otherImages.length === 0) continue;
          const c = rng.choice(otherImages);
          const rel = join(cls, level.rel);
          items.push({ anchor: join(rel, inst, cond, a), cand1: join(rel, inst, cond, bb), cand2: join(rel, other, cond, c), prompt: `The photo of a ${cls}`, truth: 1 });
        }
      }
    }
  }
  needs.throwIfAny();
  requireItems(b, dir, items);
  for (const it of items) for (const p of [it.anchor, it.cand1, it.cand2]) needs.file(join(dir, p));
  needs.throwIfAny();
  return numbered(items);
}

// ---------------------------------------------------------------------------------------------
// DreamBench++ (dreambench_main.py). Per method folder (listing order) whose name contains one of
// the known substrings, the two groups' rating JSONs; per reference folder in src_image (listing
// order): the rating keys that start with the reference name (a prefix match, so "dog" also takes
// "dog2_..."), dropped when the groups differ by more than 2, else averaged; ordered pairs (a, b)
// of those keys in dict order with |v_a − v_b| ≥ 2, the first orientation only, label 0 if v_a >
// v_b else 1; sample(pairs, 5) when there are more than 5. The image of a key is the last
// character of the key: tgt_image/<ref>/<k>_0.jpg (and text/<ref>/<k>_0.txt, which the script
// opens). The anchor is src_image/<ref>/0_0.jpg.

/** Method folder → rating file, tested in this order on the folder name (substring). */
export const DREAMBENCH_RATINGS: readonly (readonly [string, string])[] = [
  ['blip_diffusion', 'blip_diffusion-cp.json'],
  ['dreambooth', 'dreambooth_sd-cp.json'],
  ['ip_adapter_plus_sdxl', 'ip_adapter_plus_vit_h_sdxl-cp.json'],
  ['ip_adapter_sdxl', 'ip_adapter_vit_g_sdxl-cp.json'],
  ['textual_inversion', 'textual_inversion_sd-cp.json'],
];

/** A rating as Python arithmetic sees it: numbers, and booleans as 0/1. */
function ratingValue(v: JsonValue | undefined): number | undefined {
  if (typeof v === 'number') return v;
  if (typeof v === 'boolean') return v ? 1 : 0;
  return undefined;
}

function lastCodePoint(s: string): string {
  const cps = Array.from(s);
  return cps[cps.length - 1] ?? '';
}

export function dreambenchItems(dir: string, o: ProtocolOptions = {}): EvalItem[] {
  const b: BenchmarkName = 'dreambench';
  checkOptions(b, o);
  requireDir(b, dir);
  const order = o.listing ?? 'sorted';
  const rng = new PyRandom(o.seed ?? DEFAULT_SEED);
  const ls = lister(b, order);
  const needs = new Needs(b);
  const ratingDir = join(dir, 'data_human_rating', 'merged_data');
  const ratings = new Map<string, Map<string, JsonValue> | undefined>();
  const loadRatings = (file: string): Map<string, JsonValue> | undefined => {
    if (ratings.has(file)) return ratings.get(file);
    let m: Map<string, JsonValue> | undefined;
    if (!isFile(file)) needs.problem(`${file} (the rating file dreambench_main.py opens)`);
    else {
      try {
        const v = parseJsonOrdered(decodeUtf8(readFileSync(file), file), file);
        if (v instanceof Map) m = v;
        else needs.problem(`${file} (expected a JSON object of rating key → score)`);
      } catch (e) {
        needs.problem((e as Error).message);
      }
    }
    ratings.set(file, m);
    return m;
  };
  let methods = 0;
  const items: Omit<EvalItem, 'item'>[] = [];
  const texts: string[][] = []; // per item, the two text files the script opens
  for (const method of ls(dir)) {
    const json = DREAMBENCH_RATINGS.find(([sub]) => method.includes(sub))?.[1];
    if (json === undefined) continue;
    methods++;
    const [g1File, g2File] = [join(ratingDir, 'group1', json), join(ratingDir, 'group2', json)];
    const [g1, g2] = [loadRatings(g1File), loadRatings(g2File)];
    const srcDir = join(dir, method, 'src_image');
    if (!isDirectory(srcDir)) {
      needs.problem(`${srcDir} (the reference folder of method ${method}, which dreambench_main.py lists)`);
      continue;
    }
    if (g1 === undefined || g2 === undefined) continue; // reported; nothing to pair
    for (const ref of ls(srcDir)) {
      // averaged ratings of the keys that start with ref, in group 1's order
      const result: [string, number][] = [];
      for (const [key, raw1] of g1) {
        if (!key.startsWith(ref)) continue;
        const v1 = ratingValue(raw1);
        if (!g2.has(key)) {
          needs.problem(`${g2File}: no key ${JSON.stringify(key)} (present in ${g1File}; dreambench_main.py raises KeyError)`);
          continue;
        }
        const v2 = ratingValue(g2.get(key));
        if (v1 === undefined || v2 === undefined) {
          needs.problem(`${v1 === undefined ? g1File : g2File}: the rating of ${JSON.stringify(key)} is ${JSON.stringify(v1 === undefined ? raw1 : g2.get(key))}; expected a number`);
          continue;
        }
        if (Math.abs(v1 - v2) > 2) continue; // the two groups disagree too much
        result.push([key, (v1 + v2) / 2]);
      }
      const pairs: [string, string, 0 | 1][] = [];
      const chosen = new Set<string>();
      for (const [ka, va] of result) {
        for (const [kb, vb] of result) {
          if (ka === kb || Math.abs(va - vb) < 2) continue;
          if (chosen.has(JSON.stringify([kb, ka]))) continue;
          chosen.add(JSON.stringify([ka, kb]));
          pairs.push([ka, kb, va > vb ? 0 : 1]);
        }
      }
      const selected = pairs.length > 5 ? rng.sample(pairs, 5) : pairs;
      const anchor = join(method, 'src_image', ref, '0_0.jpg');
      for (const [ka, kb, label] of selected) {
        const [ia, ib] = [lastCodePoint(ka), lastCodePoint(kb)];
        texts.push([join(method, 'text', ref, `${ia}_0.txt`), join(method, 'text', ref, `${ib}_0.txt`)]);
        items.push({
          anchor,
          cand1: join(method, 'tgt_image', ref, `${ia}_0.jpg`),
          cand2: join(method, 'tgt_image', ref, `${ib}_0.jpg`),
          prompt: DEFAULT_PROMPT,
          truth: label === 0 ? 1 : 2,
          label,
        });
      }
    }
  }
  if (methods === 0) throw new ProtocolError(b, `no folder in ${dir} has a name containing ${DREAMBENCH_RATINGS.map(([s]) => s).join(', ')}; expected ${LAYOUT[b]}`);
  needs.throwIfAny();
  requireItems(b, dir, items, ' (no reference has two ratings that differ by 2 or more)');
  items.forEach((it, i) => {
    for (const p of [it.anchor, it.cand1, it.cand2, ...texts[i]!]) needs.file(join(dir, p));
  });
  needs.throwIfAny();
  return numbered(items);
}

// ---------------------------------------------------------------------------------------------
// IPref (ipref_main.py): every entry of the folder is a class; five fixed comparisons each, the
// higher IP-Adapter weight (cand1) being the more similar to <originals>/<class>.JPG.

export const IPREF_PAIRS: readonly (readonly [string, string])[] = [
  ['1.0.png', '0.6.png'],
  ['0.8.png', '0.4.png'],
  ['0.6.png', '0.3.png'],
  ['0.4.png', '0.35.png'],
  ['0.3.png', '0.2.png'],
];

export function iprefItems(dir: string, o: ProtocolOptions = {}): EvalItem[] {
  const b: BenchmarkName = 'ipref';
  checkOptions(b, o);
  requireDir(b, dir);
  if (o.originals === undefined) throw new ProtocolError(b, `the originals folder is required (option originals, --original_path of ipref_main.py): it holds the anchors <class>.JPG; expected ${LAYOUT[b]}`);
  requireDir(b, o.originals, 'the originals folder');
  const needs = new Needs(b);
  const items: Omit<EvalItem, 'item'>[] = [];
  for (const cls of lister(b, o.listing ?? 'sorted')(dir)) {
    for (const [w1, w2] of IPREF_PAIRS) {
      items.push({ anchor: `${cls}.JPG`, anchorRoot: 'originals', cand1: join(cls, w1), cand2: join(cls, w2), prompt: DEFAULT_PROMPT, truth: 1 });
    }
  }
  requireItems(b, dir, items, ' (the folder is empty)');
  for (const it of items) {
    needs.file(join(o.originals, it.anchor));
    needs.file(join(dir, it.cand1));
    needs.file(join(dir, it.cand2));
  }
  needs.throwIfAny();
  return numbered(items);
}

// ---------------------------------------------------------------------------------------------
// Sref / InstantStyle (style_main.py): every folder met in os.walk (as a subdirectory of a walked
// level, so never the root itself) with ≥ 2 image names is a group, in walk order; then per trial
//   dir_A, dir_C = sample(groups, 2); A, B = sample(files(dir_A), 2); C = choice(files(dir_C)).

export function styleItems(dir: string, o: ProtocolOptions = {}, benchmark: 'sref' | 'instantstyle' = 'sref'): EvalItem[] {
  const b = benchmark;
  checkOptions(b, o);
  requireDir(b, dir);
  const order = o.listing ?? 'sorted';
  const trials = o.trials ?? STYLE_TRIALS;
  const ls = lister(b, order);
  const groups: string[][] = [];
  for (const level of walk(dir, order)) {
    for (const d of level.dirs) {
      const images = ls(join(level.path, d)).filter(isImageName).map((f) => join(level.rel, d, f));
      if (images.length >= 2) groups.push(images);
    }
  }
  if (groups.length < 2) throw new ProtocolError(b, `${dir} has ${groups.length} folder${groups.length === 1 ? '' : 's'} with two or more images; expected ${LAYOUT[b]}`);
  const rng = new PyRandom(o.seed ?? DEFAULT_SEED);
  const items: Omit<EvalItem, 'item'>[] = [];
  for (let t = 0; t < trials; t++) {
    const [ga, gc] = rng.sample(groups, 2) as [string[], string[]];
    const [a, bb] = rng.sample(ga, 2) as [string, string];
    const c = rng.choice(gc);
    items.push({ anchor: a, cand1: bb, cand2: c, prompt: DEFAULT_PROMPT, truth: 1 });
  }
  const needs = new Needs(b);
  for (const it of items) for (const p of [it.anchor, it.cand1, it.cand2]) needs.file(join(dir, p));
  needs.throwIfAny();
  return numbered(items);
}

// ---------------------------------------------------------------------------------------------

function checkOptions(benchmark: BenchmarkName, o: ProtocolOptions): void {
  const fail = (msg: string): never => {
    throw new ProtocolError(benchmark, msg);
  };
  if (o.seed !== undefined && !Number.isSafeInteger(o.seed)) fail(`option seed must be an integer, got ${o.seed}`);
  if (o.listing !== undefined && o.listing !== 'sorted' && o.listing !== 'given') fail(`option listing must be 'sorted' or 'given', got ${JSON.stringify(o.listing)}`);
  if (o.trials !== undefined) {
    if (benchmark !== 'sref' && benchmark !== 'instantstyle') fail('option trials applies to sref and instantstyle only (the other protocols have no trial count)');
    if (!Number.isSafeInteger(o.trials) || o.trials < 1) fail(`option trials must be a positive integer, got ${o.trials}`);
  }
  if (o.originals !== undefined && benchmark !== 'ipref') fail('option originals applies to ipref only');
  if (o.votesAtLeast !== undefined) {
    if (benchmark !== 'nights') fail('option votesAtLeast applies to nights only');
    if (typeof o.votesAtLeast !== 'number' || Number.isNaN(o.votesAtLeast)) fail(`option votesAtLeast must be a number, got ${o.votesAtLeast}`);
  }
}

/** The ordered item list of a benchmark stored in `dir`, as the official script forms it. Throws a
 *  ProtocolError naming what is missing before returning anything. */
export async function listItems(benchmark: BenchmarkName, dir: string, o: ProtocolOptions = {}): Promise<EvalItem[]> {
  if (!BENCHMARK_NAMES.includes(benchmark)) throw new TypeError(`listItems: unknown benchmark ${JSON.stringify(benchmark)}; expected one of ${BENCHMARK_NAMES.join(', ')}`);
  switch (benchmark) {
    case 'nights':
      return nightsItems(dir, o);
    case 'tid2013':
      return tid2013Items(dir, o);
    case 'cute':
      return cuteItems(dir, o);
    case 'dreambench':
      return dreambenchItems(dir, o);
    case 'ipref':
      return iprefItems(dir, o);
    case 'sref':
    case 'instantstyle':
      return styleItems(dir, o, benchmark);
  }
}
