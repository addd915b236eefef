// The source folders import downward only, and no two files import each other, directly or
// around a loop. Every `import`/`export … from` and every `import()` of a literal in src/**/*.ts
// counts, type-only ones too: a type import still ties a lower layer to a higher one's shapes.
//
// Layers, lowest first; a folder may import from its own layer and the ones below it:

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import ts from 'typescript';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, posix, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

export const LAYERS: readonly (readonly string[])[] = [
  ['src/platform'], // host detection, environment, half floats: nothing else from src
  ['src/gpu'], // device, runtime, the flags registry
  ['src/io', 'src/hub', 'src/kernels'], // files and images, the Hugging Face cache, WGSL kernels
  ['src/nn'],
  ['src/models'],
  ['src/diffsim'], // the metrics
  ['src/parity', 'src/eval', 'src/apps'], // fixture parity, benchmark protocols, retrieval/video/agreement map
  ['src/web'], // browser loaders
  ['src/cli'],
  ['src/index.ts', 'src/browser.ts', 'src/api.ts'], // the entry files and the API they share
];

/** Imports tolerated for now, as `importer -> imported`. */
export const ALLOWED: readonly string[] = [];

const REPO_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

/** The repository-relative paths of the .ts files under `dir` (POSIX separators). */
function tsFiles(root: string, dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const name of readdirSync(d).sort()) {
      const p = join(d, name);
      if (statSync(p).isDirectory()) walk(p);
      else if (name.endsWith('.ts') && !name.endsWith('.d.ts')) out.push(relative(root, p).split(sep).join('/'));
    }
  };
  walk(join(root, dir));
  return out;
}

/** File → the src files it imports (relative specifiers; `.js` written for the `.ts` source). */
export function importGraph(root: string, dir = 'src'): Map<string, string[]> {
  const graph = new Map<string, string[]>();
  for (const file of tsFiles(root, dir)) {
    const info = ts.preProcessFile(readFileSync(join(root, file), 'utf8'), true, true);
    const targets = info.importedFiles
      .map((r) => r.fileName)
      .filter((s) => s.startsWith('./') || s.startsWith('../'))
      .map((s) => posix.normalize(posix.join(posix.dirname(file), s)).replace(/\.js$/, '.ts'));
    graph.set(file, [...new Set(targets)]);
  }
  return graph;
}

/** The layer of a file: that of the listed file or folder holding it. */
function layerOf(file: string, layers: readonly (readonly string[])[]): { layer: number; folder: string } | undefined {
  for (const [layer, entries] of layers.entries()) {
    for (const folder of entries) if (file === folder || file.startsWith(`${folder}/`)) return { layer, folder };
  }
  return undefined;
}

export interface LayerReport {
  /** `file -> import` going to a higher layer. */
  upward: string[];
  /** Files in no listed folder. */
  unplaced: string[];
  /** Imports of files that do not exist. */
  missing: string[];
  /** Each a loop of files, the first repeated at the end. */
  cycles: string[][];
  /** Allowed entries that no longer occur. */
  stale: string[];
}

export function checkLayers(graph: ReadonlyMap<string, readonly string[]>, layers: readonly (readonly string[])[], allowed: readonly string[]): LayerReport {
  const allow = new Set(allowed);
  const seen = new Set<string>();
  const report: LayerReport = { upward: [], unplaced: [], missing: [], cycles: [], stale: [] };
  const edges = new Map<string, string[]>();
  for (const [file, targets] of graph) {
    const from = layerOf(file, layers);
    if (!from) report.unplaced.push(file);
    const kept: string[] = [];
    for (const t of targets) {
      const edge = `${file} -> ${t}`;
      if (allow.has(edge)) {
        seen.add(edge);
        continue;
      }
      if (!graph.has(t)) report.missing.push(edge);
      const to = layerOf(t, layers);
      if (from && to && to.layer > from.layer) report.upward.push(`${edge}  (${from.folder} imports from the higher ${to.folder})`);
      kept.push(t);
    }
    edges.set(file, kept);
  }
  report.stale = allowed.filter((e) => !seen.has(e));
  report.cycles = cycles(edges);
  return report;
}

/** One loop through each strongly connected component of more than one file (Tarjan), or a file
 *  importing itself. */
function cycles(edges: ReadonlyMap<string, readonly string[]>): string[][] {
  let next = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const components: string[][] = [];
  const visit = (v: string) => {
    index.set(v, next);
    low.set(v, next++);
    stack.push(v);
    onStack.add(v);
    for (const w of edges.get(v) ?? []) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) === index.get(v)) {
      const c: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        c.push(w);
      } while (w !== v);
      if (c.length > 1 || (edges.get(v) ?? []).includes(v)) components.push(c);
    }
  };
  for (const v of [...edges.keys()].sort()) if (!index.has(v)) visit(v);
  // A shortest loop from the component's first file back to itself (breadth first inside it).
  const loops = components.map((c) => {
    const inside = new Set(c);
    const start = [...c].sort()[0]!;
    const from = new Map<string, string>();
    const queue = [start];
    for (let i = 0; i < queue.length; i++) {
      const v = queue[i]!;
      for (const w of edges.get(v) ?? []) {
        if (!inside.has(w)) continue;
        if (w === start) {
          const path = [v];
          while (path[0] !== start) path.unshift(from.get(path[0]!)!);
          return [...path, start];
        }
        if (!from.has(w)) {
          from.set(w, v);
          queue.push(w);
        }
      }
    }
    return [start, start];
  });
  return loops.sort((x, y) => x[0]!.localeCompare(y[0]!));
}

function describe(r: LayerReport): string {
  const lines: string[] = [];
  if (r.upward.length) lines.push('imports from a higher layer:', ...r.upward.map((e) => `  ${e}`));
  if (r.cycles.length) lines.push('import cycles:', ...r.cycles.map((c) => `  ${c.join(' -> ')}`));
  if (r.unplaced.length) lines.push('files in no layer (add their folder to LAYERS):', ...r.unplaced.map((f) => `  ${f}`));
  if (r.missing.length) lines.push('imports of missing files:', ...r.missing.map((e) => `  ${e}`));
  if (r.stale.length) lines.push('ALLOWED entries that no longer occur (remove them):', ...r.stale.map((e) => `  ${e}`));
  return lines.join('\n');
}

test('src imports downward only, without cycles', () => {
  const report = checkLayers(importGraph(REPO_ROOT), LAYERS, ALLOWED);
  const problems = describe(report);
  assert.ok(problems === '', `\n${problems}`);
});

test('src/platform imports nothing from the rest of src', () => {
  const outside = [...importGraph(REPO_ROOT, 'src/platform')].flatMap(([f, ts]) => ts.filter((t) => !t.startsWith('src/platform/')).map((t) => `${f} -> ${t}`));
  assert.equal(outside, []);
});

test('the check finds an upward import, cycles, an unplaced file and a stale allowance', () => {
  const root = mkdtempSync(join(tmpdir(), 'diffsim-layers-'));
  try {
    const write = (path: string, text: string) => {
      mkdirSync(join(root, dirname(path)), { recursive: true });
      writeFileSync(join(root, path), text);
    };
    write('src/platform/a.ts', "import { b } from '../gpu/b.js';\nexport const a = b;\n");
    write('src/gpu/b.ts', "export { c } from './c.js';\nexport const b = 2;\n");
    write('src/gpu/c.ts', "import type { b } from './b.js';\nexport const c: typeof b = 3;\n");
    write('src/kernels/d.ts', "export const d = () => import('./d.js');\n");
    write('src/elsewhere/e.ts', '// import("../gpu/b.js") in a comment is no import\nexport {};\n');
    const graph = importGraph(root);
    assert.equal(graph.get('src/elsewhere/e.ts'), []);
    const r = checkLayers(graph, LAYERS, ['src/gpu/b.ts -> src/platform/a.ts']);
    assert.equal(r.upward, ['src/platform/a.ts -> src/gpu/b.ts  (src/platform imports from the higher src/gpu)']);
    assert.equal(r.cycles, [['src/gpu/b.ts', 'src/gpu/c.ts', 'src/gpu/b.ts'], ['src/kernels/d.ts', 'src/kernels/d.ts']]);
    assert.equal(r.unplaced, ['src/elsewhere/e.ts']);
    assert.equal(r.stale, ['src/gpu/b.ts -> src/platform/a.ts']);
    assert.ok(describe(r).includes('  src/gpu/b.ts -> src/gpu/c.ts -> src/gpu/b.ts'));
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test.run();
