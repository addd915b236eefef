// The runnable examples of the documentation: fenced blocks in README.md and every Markdown file
// under docs/ whose info string is `sh example`, `js example` or `deno example`, each run against
// the tiny models in weights/tiny, and the `text output` block that may follow one, which holds
// what it prints. test/docs.test.ts runs them; docs/README.md states the rules for writers.
//
//   sh example    one command per line (a trailing `\` continues it; blank lines and `#` comments
//                 are skipped): `diffsim …` or `npx diffsim …`, optionally after VAR=value words,
//                 run as `node dist/cli/main.js …`. Nothing else runs (no pipes, no other programs).
//   js example    an ES module run by Node; `import … from 'diffsim'` resolves to this checkout's
//                 package (its exports map, i.e. dist/).
//   deno example  an ES module run by Deno. Its first line is a comment with the command,
//                 `// deno run --allow-read … example.mjs`: it runs with exactly those permissions
//                 (and none is ever prompted for: stdin is closed).
//   text output   directly after an example (blank lines between allowed): its stdout.
//
// Every example runs in a fresh folder holding links to weights/, test/ and docs/ (so the paths in
// the docs, docs/data's samples included, read as they do in a checkout) and node_modules/diffsim (this checkout), with the hub
// offline and its cache inside that folder. Outputs an example writes stay in that folder.
//
// Output rule (matchOutput): lines compare one by one after trailing blanks are dropped. A number
// written with a fraction or an exponent in the expected text matches a printed number within
// 1e-4 of its size (|got − want| ≤ 1e-4 · max(|want|, 0.01)), so the same docs hold on any GPU whose
// float rounding differs in the last digits; an integer must match exactly, and so must all other
// text. `…` in an expected line stands for any text (paths, timings).

import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';

export type ExampleKind = 'sh' | 'js' | 'deno';

export interface FencedBlock {
  /** The info string, trimmed. */
  info: string;
  /** 1-based line of the opening fence. */
  line: number;
  code: string;
  /** 1-based line of the closing fence (the last line for an unclosed block). */
  end: number;
}

export interface Example {
  /** Repository-relative path of the Markdown file. */
  file: string;
  line: number;
  kind: ExampleKind;
  code: string;
  /** The `text output` block after it, if any. */
  expected?: string;
}

const KINDS: Readonly<Record<string, ExampleKind>> = { 'sh example': 'sh', 'js example': 'js', 'deno example': 'deno' };

/** The fenced code blocks of a Markdown text (``` or ~~~ fences, CommonMark's closing rule). */
export function fencedBlocks(text: string): FencedBlock[] {
  const lines = text.split('\n');
  const out: FencedBlock[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = /^ {0,3}(`{3,}|~{3,})(.*)$/.exec(lines[i]!);
    if (!open) continue;
    const fence = open[1]!;
    const body: string[] = [];
    let j = i + 1;
    for (; j < lines.length; j++) {
      const close = /^ {0,3}(`{3,}|~{3,})\s*$/.exec(lines[j]!);
      if (close && close[1]![0] === fence[0] && close[1]!.length >= fence.length) break;
      body.push(lines[j]!);
    }
    out.push({ info: open[2]!.trim(), line: i + 1, code: body.join('\n'), end: Math.min(j, lines.length - 1) + 1 });
    i = j;
  }
  return out;
}

/** The examples of one Markdown text. A block whose info string mentions `example` without being one
 *  of the three kinds, or a `text output` block that follows no example, is an error (a typo would
 *  otherwise leave an example silently unrun). */
export function examplesOf(text: string, file: string): Example[] {
  const blocks = fencedBlocks(text);
  const lines = text.split('\n');
  const out: Example[] = [];
  for (let b = 0; b < blocks.length; b++) {
    const block = blocks[b]!;
    const kind = KINDS[block.info];
    if (block.info === 'text output') {
      const prev = blocks[b - 1];
      const between = prev ? lines.slice(prev.end, block.line - 1) : [];
      if (!prev || !KINDS[prev.info] || between.some((l) => l.trim() !== '')) throw new Error(`${file}:${block.line}: a \`text output\` block must follow an example block directly`);
      continue;
    }
    if (!kind) {
      if (/\bexamples?\b/.test(block.info)) throw new Error(`${file}:${block.line}: unknown example kind ${JSON.stringify(block.info)} (sh example, js example or deno example)`);
      continue;
    }
    const next = blocks[b + 1];
    const expected = next?.info === 'text output' && lines.slice(block.end, next.line - 1).every((l) => l.trim() === '') ? next.code : undefined;
    out.push({ file, line: block.line, kind, code: block.code, ...(expected !== undefined ? { expected } : {}) });
  }
  return out;
}

/** README.md and every Markdown file under docs/, sorted: files added later are picked up. */
export function docFiles(root: string): string[] {
  const found: string[] = [];
  const walk = (dir: string) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile() && e.name.endsWith('.md')) found.push(relative(root, p));
    }
  };
  if (existsSync(join(root, 'docs'))) walk(join(root, 'docs'));
  return ['README.md', ...found.sort()];
}

export function allExamples(root: string): Example[] {
  return docFiles(root).flatMap((f) => examplesOf(readFileSync(join(root, f), 'utf8'), f));
}

/** Shell words of one command line: '…' and "…" quoting, backslash escapes, an unquoted `#` ends
 *  the line. Expansions ($VAR, globs) are not supported and are refused. */
export function shellWords(line: string): string[] {
  const words: string[] = [];
  let word: string | null = null;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (c === "'") {
      const end = line.indexOf("'", i + 1);
      if (end < 0) throw new Error(`unclosed ' in: ${line}`);
      word = (word ?? '') + line.slice(i + 1, end);
      i = end;
    } else if (c === '"') {
      let s = '';
      for (i++; i < line.length && line[i] !== '"'; i++) {
        if (line[i] === '\\' && i + 1 < line.length) s += line[++i];
        else if (line[i] === '$' || line[i] === '`') throw new Error(`expansions are not supported in examples: ${line}`);
        else s += line[i];
      }
      if (i >= line.length) throw new Error(`unclosed " in: ${line}`);
      word = (word ?? '') + s;
    } else if (c === '\\' && i + 1 < line.length) {
      word = (word ?? '') + line[++i];
    } else if (/\s/.test(c)) {
      if (word !== null) words.push(word);
      word = null;
    } else if (c === '#' && word === null) {
      break;
    } else if ('$`|&;<>*?'.includes(c)) {
      throw new Error(`only plain diffsim command lines run as examples (found ${JSON.stringify(c)}): ${line}`);
    } else word = (word ?? '') + c;
  }
  if (word !== null) words.push(word);
  return words;
}

export interface ShCommand {
  env: Record<string, string>;
  args: string[];
}

/** The commands of an `sh example` block. */
export function shCommands(code: string): ShCommand[] {
  const logical: string[] = [];
  let pending = '';
  for (const raw of code.split('\n')) {
    if (raw.endsWith('\\')) {
      pending += `${raw.slice(0, -1)} `;
      continue;
    }
    logical.push(pending + raw);
    pending = '';
  }
  if (pending) logical.push(pending);
  const out: ShCommand[] = [];
  for (const l of logical) {
    const words = shellWords(l);
    if (words.length === 0) continue;
    const env: Record<string, string> = {};
    while (words.length && /^[A-Za-z_][A-Za-z0-9_]*=/.test(words[0]!)) {
      const w = words.shift()!;
      env[w.slice(0, w.indexOf('='))] = w.slice(w.indexOf('=') + 1);
    }
    if (words[0] === 'npx') words.shift();
    if (words[0] !== 'diffsim') throw new Error(`an sh example runs only diffsim command lines, got: ${l.trim()}`);
    out.push({ env, args: words.slice(1) });
  }
  return out;
}

/** The permission flags of a `deno example` (from its first-line comment `// deno run … FILE`). */
export function denoFlags(code: string): string[] {
  const first = code.split('\n')[0] ?? '';
  const m = /^\/\/\s*deno run((?:\s+--[a-z-]+(?:=\S+)?)*)\s+\S+\.m?[jt]s\s*$/.exec(first);
  if (!m) throw new Error(`a deno example starts with the command that runs it, e.g. "// deno run --allow-read example.mjs"; got ${JSON.stringify(first)}`);
  return m[1]!.trim().split(/\s+/).filter(Boolean);
}

/** Compares printed text with a `text output` block (the rule in the header); null when they match,
 *  else a message naming the first line that differs. */
export function matchOutput(actual: string, expected: string): string | null {
  const norm = (s: string) => {
    const ls = s.split('\n').map((l) => l.trimEnd());
    while (ls.length && ls[ls.length - 1] === '') ls.pop();
    return ls;
  };
  const got = norm(actual);
  const want = norm(expected);
  for (let i = 0; i < Math.max(got.length, want.length); i++) {
    const g = got[i];
    const w = want[i];
    if (g === undefined || w === undefined) return `line ${i + 1}: expected ${JSON.stringify(w ?? '(no more lines)')}, got ${JSON.stringify(g ?? '(no more lines)')}`;
    if (!lineMatches(g, w)) return `line ${i + 1}: expected ${JSON.stringify(w)}, got ${JSON.stringify(g)}`;
  }
  return null;
}

const NUMBER = /-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?/g;

function lineMatches(got: string, want: string): boolean {
  if (want.includes('…')) {
    const re = new RegExp(`^${want.split('…').map((p) => p.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`);
    return re.test(got);
  }
  const gText = got.split(NUMBER);
  const wText = want.split(NUMBER);
  if (gText.length !== wText.length || gText.some((t, i) => t !== wText[i])) return false;
  const gNums = got.match(NUMBER) ?? [];
  const wNums = want.match(NUMBER) ?? [];
  return wNums.every((w, i) => {
    const g = gNums[i]!;
    if (!/[.eE]/.test(w)) return g === w;
    return Math.abs(Number(g) - Number(w)) <= 1e-4 * Math.max(Math.abs(Number(w)), 0.01);
  });
}

/** A fresh folder to run examples in (see the header). */
export function makeSandbox(root: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'diffsim-docs-'));
  for (const name of ['weights', 'test', 'docs']) symlinkSync(join(root, name), join(dir, name), 'dir');
  mkdirSync(join(dir, 'node_modules'));
  symlinkSync(root, join(dir, 'node_modules', 'diffsim'), 'dir');
  writeFileSync(join(dir, 'package.json'), `${JSON.stringify({ name: 'diffsim-docs-examples', private: true, type: 'module', dependencies: { diffsim: '*' } }, null, 2)}\n`);
  return dir;
}

export interface ExampleRun {
  ok: boolean;
  stdout: string;
  /** What went wrong: the failing command with its exit status and stderr. */
  error?: string;
}

/** Runs one example in a fresh sandbox (see the header). */
export function runExample(root: string, ex: Example, timeoutMs = 120_000): ExampleRun {
  const dir = makeSandbox(root);
  try {
    return runIn(dir, root, ex, timeoutMs);
  } finally {
    rmSync(dir, { recursive: true, force: true }); // the links go, not what they point at
  }
}

function runIn(dir: string, root: string, ex: Example, timeoutMs: number): ExampleRun {
  const env: Record<string, string> = { ...(process.env as Record<string, string>), HF_HUB_OFFLINE: '1', HF_HOME: join(dir, 'hf'), HF_HUB_CACHE: join(dir, 'hf', 'hub'), HF_TOKEN: '', NO_COLOR: '1' };
  delete env.HUGGINGFACE_HUB_CACHE;
  delete env.FORCE_COLOR; // Deno colours its console output when the variable is set at all
  const run = (cmd: string, args: string[], extraEnv: Record<string, string> = {}): ExampleRun => {
    const r = spawnSync(cmd, args, { cwd: dir, env: { ...env, ...extraEnv }, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: timeoutMs, maxBuffer: 64 * 2 ** 20 });
    const stderr = (r.stderr ?? '').split('\n').filter((l) => l && !l.startsWith('Warning: maxDynamic')).join('\n');
    if (r.error || r.status !== 0) return { ok: false, stdout: r.stdout ?? '', error: `${[cmd, ...args].join(' ')}: ${r.error?.message ?? `exit ${r.status ?? r.signal}`}\n${stderr}` };
    return { ok: true, stdout: r.stdout };
  };
  if (ex.kind === 'sh') {
    let stdout = '';
    for (const c of shCommands(ex.code)) {
      const r = run(process.execPath, [join(root, 'dist', 'cli', 'main.js'), ...c.args], c.env);
      stdout += r.stdout;
      if (!r.ok) return { ...r, stdout };
    }
    return { ok: true, stdout };
  }
  const file = join(dir, 'example.mjs');
  writeFileSync(file, `${ex.code}\n`);
  if (ex.kind === 'js') return run(process.execPath, [file]);
  const deno = join(root, 'node_modules', '.bin', 'deno');
  if (!existsSync(deno)) return { ok: false, stdout: '', error: `deno is not installed (${deno}; npm install brings it as a dev dependency)` };
  return run(deno, ['run', ...denoFlags(ex.code), file]);
}
