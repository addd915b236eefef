// PyRandom against CPython's random.Random: test/fixtures/eval/pyrandom.json holds, per seed, a
// program of calls and what CPython returned (scripts/make-pyrandom-vectors.py). Each case replays
// the whole program on one instance, so any extra or missing draw shows up in every later op.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { FIXTURES } from '../support/helpers.js';
import { PyRandom, seedWords } from '../../src/eval/pyrandom.js';

type Op =
  | { op: 'getrandbits'; k: number; out: string }
  | { op: 'random'; out: number }
  | { op: 'choice'; n: number; out: number }
  | { op: 'sample'; n: number; k: number; out: number[] }
  | { op: 'shuffle'; n: number; out: number[] }
  | { op: 'randrange'; start: number; stop: number | null; step: number; out: number }
  | { op: 'uint32'; count: number; out: number[] };

interface Vectors {
  python: string;
  cases: { seed: string; ops: Op[] }[];
}

const vectors = JSON.parse(readFileSync(join(FIXTURES, 'eval', 'pyrandom.json'), 'utf8')) as Vectors;
const range = (n: number) => Array.from({ length: n }, (_, i) => i);

test('the fixture covers the seeds and ops the brief lists', () => {
  const seeds = vectors.cases.map((c) => c.seed);
  for (const s of ['0', '1', '2334', String(2 ** 32 + 5), '-7']) assert.ok(seeds.includes(s), `seed ${s}`);
  assert.ok(seeds.some((s) => BigInt(s) > 2n ** 64n), 'a seed of more than two words');
  const kinds = new Set<string>(vectors.cases[0]!.ops.map((o) => o.op));
  for (const k of ['getrandbits', 'random', 'choice', 'sample', 'shuffle', 'randrange', 'uint32']) assert.ok(kinds.has(k), k);
});

test('seed words: |n| in little-endian 32-bit words, 0 → [0]', () => {
  assert.equal(seedWords(0), [0]);
  assert.equal(seedWords(2334), [2334]);
  assert.equal(seedWords(-2334), [2334]);
  assert.equal(seedWords(2 ** 32), [0, 1]);
  assert.equal(seedWords(2 ** 32 + 5), [5, 1]);
  assert.equal(seedWords(2n ** 64n + 3n), [3, 0, 1]);
  assert.throws(() => seedWords(1.5), /integer/);
});

for (const c of vectors.cases) {
  test(`CPython ${vectors.python} stream for seed ${c.seed.length > 24 ? `${c.seed.slice(0, 12)}…(${c.seed.length} digits)` : c.seed}`, () => {
    const r = new PyRandom(BigInt(c.seed));
    c.ops.forEach((op, i) => {
      const at = `op ${i} ${JSON.stringify({ ...op, out: undefined })}`;
      switch (op.op) {
        case 'getrandbits':
          assert.is(r.getrandbits(op.k).toString(), op.out, at);
          break;
        case 'random':
          assert.is(r.random(), op.out, at);
          break;
        case 'choice':
          // choice(range(n)) is _randbelow(n); small n also goes through choice() on an array
          assert.is(op.n <= 1000 ? r.choice(range(op.n)) : r.randbelow(op.n), op.out, at);
          break;
        case 'sample':
          assert.equal(r.sample(range(op.n), op.k), op.out, at);
          break;
        case 'shuffle': {
          const x = range(op.n);
          r.shuffle(x);
          assert.equal(x, op.out, at);
          break;
        }
        case 'randrange':
          assert.is(op.stop === null ? r.randrange(op.start) : r.randrange(op.start, op.stop, op.step), op.out, at);
          break;
        case 'uint32': {
          const got = Array.from({ length: op.count }, () => r.nextUint32());
          assert.equal(got, op.out, at);
          break;
        }
      }
    });
  });
}

test('seeding again restarts the stream; a number and a bigint seed agree', () => {
  const r = new PyRandom(2334);
  const first = [r.random(), r.random()];
  r.seed(2334);
  assert.equal([r.random(), r.random()], first);
  const a = new PyRandom(2 ** 40 + 1);
  const b = new PyRandom(2n ** 40n + 1n);
  assert.is(a.nextUint32(), b.nextUint32());
});

test('getrandbitsNumber draws like getrandbits up to 53 bits', () => {
  for (const k of [0, 1, 31, 32, 33, 52, 53]) {
    const a = new PyRandom(99);
    const b = new PyRandom(99);
    assert.is(a.getrandbitsNumber(k), Number(b.getrandbits(k)), `k = ${k}`);
    assert.is(a.nextUint32(), b.nextUint32(), `k = ${k}: same number of draws`);
  }
  assert.throws(() => new PyRandom(1).getrandbitsNumber(54), /0\.\.53/);
});

test('argument errors say what was expected', () => {
  const r = new PyRandom(1);
  assert.throws(() => r.choice([]), /empty sequence/);
  assert.throws(() => r.sample([1, 2], 3), /larger than population/);
  assert.throws(() => r.sample([1, 2], -1), /negative/);
  assert.throws(() => r.randbelow(0), /positive/);
  assert.throws(() => r.randrange(0), /empty range/);
  assert.throws(() => r.randrange(5, 5), /empty range/);
  assert.throws(() => r.randrange(0, 10, 0), /zero step/);
  assert.throws(() => r.getrandbits(-1), /non-negative/);
});

test.run();
