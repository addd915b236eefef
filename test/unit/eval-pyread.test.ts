// The csv / json readers of src/eval/pyread.ts against Python's csv.DictReader (text-mode open, as
// night_main.py reads data.csv) and json.load (dict order), on awkward inputs. Python is
// $HUB_TEST_PYTHON, else python3; DIFFSIM_SKIP_PYTHON=1 skips the comparisons.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeUtf8, parseCsv, parseJsonOrdered, readCsvDicts, type JsonValue } from '../../src/eval/pyread.js';

const PYTHON = process.env.HUB_TEST_PYTHON ?? 'python3';
const SKIP_PYTHON = process.env.DIFFSIM_SKIP_PYTHON === '1';
const hasPython = spawnSync(PYTHON, ['-c', 'pass']).status === 0;
const tmp = mkdtempSync(join(tmpdir(), 'diffsim-pyread-'));

/** Runs `code` once over all files; it prints one JSON list, an entry per file. */
function python(code: string, files: string[]): unknown[] {
  const r = spawnSync(PYTHON, ['-c', code, ...files], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`python: ${r.stderr}`);
  return JSON.parse(r.stdout) as unknown[];
}

/** Writes each text to its own file under tmp. */
function write(texts: Record<string, string>, ext: string): string[] {
  return Object.values(texts).map((text, i) => {
    const file = join(tmp, `${i}.${ext}`);
    writeFileSync(file, text);
    return file;
  });
}

function withPython(name: string, fn: () => void): void {
  test(name, () => {
    if (!hasPython) {
      if (SKIP_PYTHON) return;
      assert.unreachable(`cannot run ${PYTHON} (set HUB_TEST_PYTHON, or DIFFSIM_SKIP_PYTHON=1 to skip)`);
    }
    fn();
  });
}

const CSVS: Record<string, string> = {
  plain: 'a,b,c\n1,2,3\n4,5,6\n',
  'no final newline': 'a,b\n1,2',
  crlf: 'a,b\r\n1,2\r\n\r\n3,4\r\n',
  'lone cr': 'a,b\r1,2\r3,4',
  'blank lines': '\n\na,b\n\n1,2\n\n\n3,4\n',
  quotes: 'a,b\n"x, y","say ""hi"""\n"multi\nline",z\n',
  'quote in unquoted field': 'a,b\nab"c,d""e\n',
  'text after a closing quote': 'a,b\n"ab"cd,"x"\n',
  'short and long rows': 'a,b,c\n1\n1,2,3,4,5\n,,\n',
  'duplicate header': 'a,b,a\n1,2,3\n',
  'trailing comma': 'a,b\n1,\n2,',
  'eof in quotes': 'a,b\n1,"open\nstill',
  bom: '\ufeffsplit,x\nval,1\n',
  'spaces kept': 'a, b\n 1 , 2 \n',
  'crlf inside quotes': 'a,b\n"x\r\ny",2\n',
};

const DICTS = `
import csv, json, sys
out = []
for path in sys.argv[1:]:
    with open(path, mode='r', encoding='utf-8') as f:
        r = csv.DictReader(f)
        rows = [{k: v for k, v in row.items() if k is not None and v is not None} for row in r]
        out.append({"fieldnames": r.fieldnames or [], "rows": rows})
print(json.dumps(out))
`;

withPython('readCsvDicts = csv.DictReader(open(path)) on awkward inputs', () => {
  const files = write(CSVS, 'csv');
  const wants = python(DICTS, files) as { fieldnames: string[]; rows: Record<string, string>[] }[];
  Object.entries(CSVS).forEach(([name, text], i) => {
    const want = wants[i]!;
    const got = readCsvDicts(decodeUtf8(new TextEncoder().encode(text), files[i]!));
    assert.equal(got.fieldnames, want.fieldnames, `${name}: fieldnames`);
    assert.equal(got.rows.map((r) => Object.fromEntries(r.values)), want.rows, `${name}: rows`);
  });
});

test('parseCsv: records and the lines they start on', () => {
  assert.equal(parseCsv('a,b\n\n"x\ny",2\nz\n').map((r) => [r.line, r.fields]), [
    [1, ['a', 'b']],
    [2, []],
    [3, ['x\ny', '2']],
    [5, ['z']],
  ]);
});

const JSONS: Record<string, string> = {
  'integer-like keys keep document order': '{"72": 1, "70": 2, "b": 3, "1": 4, "a": 5}',
  'a repeated key keeps its first place and last value': '{"x": 1, "y": 2, "x": 3}',
  nested: '{"a": [1, {"2": null, "1": true}], "b": {"z": "s\\u00e9\\n", "y": -0.5e3}}',
  'python extensions': '{"n": NaN, "i": Infinity, "m": -Infinity}',
  whitespace: ' \n\t{ "a" :\r\n 1 } \n',
};

/** A JsonValue as plain data with object entries as [key, value] lists (order visible). */
function plain(v: JsonValue): unknown {
  if (v instanceof Map) return { entries: [...v].map(([k, x]) => [k, plain(x)]) };
  if (Array.isArray(v)) return v.map(plain);
  if (typeof v === 'number' && !Number.isFinite(v)) return String(v);
  return v;
}

const PY_PLAIN = `
import json, sys, math
def plain(v):
    if isinstance(v, dict): return {"entries": [[k, plain(x)] for k, x in v.items()]}
    if isinstance(v, list): return [plain(x) for x in v]
    if isinstance(v, float) and not math.isfinite(v): return {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}[str(v)]
    return v
out = []
for path in sys.argv[1:]:
    with open(path) as f:
        out.append(plain(json.load(f)))
print(json.dumps(out))
`;

withPython('parseJsonOrdered = json.load, dict order included', () => {
  const files = write(JSONS, 'json');
  const wants = python(PY_PLAIN, files);
  Object.entries(JSONS).forEach(([name, text], i) => assert.equal(plain(parseJsonOrdered(text, files[i]!)), wants[i], name));
});

test('parseJsonOrdered: errors name the file and the place', () => {
  assert.throws(() => parseJsonOrdered('{"a": 1,}', 'r.json'), /r\.json: invalid JSON at line 1 column 9/);
  assert.throws(() => parseJsonOrdered('{"a": 1} x', 'r.json'), /extra data/);
  assert.throws(() => parseJsonOrdered('{"a"\n: tru}', 'r.json'), /line 2/);
  assert.throws(() => decodeUtf8(new Uint8Array([0x61, 0xff]), 'd.csv'), /d\.csv: not valid UTF-8/);
  assert.is(decodeUtf8(new Uint8Array([0xef, 0xbb, 0xbf, 0x61]), 'b'), '\ufeffa', 'the BOM stays, as in Python');
});

test.after(() => rmSync(tmp, { recursive: true, force: true }));

test.run();
