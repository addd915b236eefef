import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { closeSync, constants, mkdtempSync, openSync, readFileSync, writeFileSync, rmSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SafetensorsFile, ShardedSafetensors, encodeSafetensors, openSafetensors, rawToInt32, setOwn, type TensorToWrite } from '../../src/io/safetensors.js';
import { rejects, FIXTURES } from '../support/helpers.js';
import { header, malformedCorpus } from '../support/corpus.js';

const tmp = mkdtempSync(join(tmpdir(), 'diffsim-st-'));

function write(name: string, bytes: Uint8Array): string {
  const p = join(tmp, name);
  writeFileSync(p, bytes);
  return p;
}

test('reads every fixture file copied into the repo exactly as index.json describes it', async () => {
  const index = JSON.parse(readFileSync(join(FIXTURES, 'index.json'), 'utf8')) as { files: Record<string, { tensors: Record<string, { shape: number[]; dtype: string }>; config?: unknown }> };
  const files = Object.entries(index.files);
  assert.ok(files.length >= 5, 'fixture subset present');
  for (const [rel, entry] of files) {
    const f = await SafetensorsFile.open(join(FIXTURES, rel));
    try {
      assert.equal(f.names().sort(), Object.keys(entry.tensors).sort(), `${rel}: names`);
      for (const [name, t] of Object.entries(entry.tensors)) {
        const info = f.info(name);
        assert.is(info.dtype, t.dtype, `${rel}:${name} dtype`);
        assert.equal(info.shape, t.shape, `${rel}:${name} shape`);
      }
      assert.is(f.metadata.format, 'pt', `${rel}: metadata format`);
      if (entry.config) assert.equal(JSON.parse(f.metadata.config ?? 'null'), entry.config, `${rel}: metadata config`);
    } finally {
      await f.close();
    }
  }
});

test('round trip of every dtype; positioned reads return the right bytes', async () => {
  const f64 = Float64Array.from([1.5, -2]);
  const bytes = encodeSafetensors(
    {
      a: { dtype: 'F32', shape: [2, 2], data: Float32Array.from([1, 2, 3, 4]) },
      b: { dtype: 'F16', shape: [3], data: Uint16Array.from([0x3c00, 0xc000, 0x3800]) },
      c: { dtype: 'BF16', shape: [1], data: Uint16Array.from([0x3f80]) },
      d: { dtype: 'F64', shape: [2], data: f64 },
      e: { dtype: 'I64', shape: [2], data: BigInt64Array.from([5n, -6n]) },
      f: { dtype: 'I32', shape: [1], data: Int32Array.from([-7]) },
      g: { dtype: 'I16', shape: [1], data: Int16Array.from([-8]) },
      h: { dtype: 'I8', shape: [2], data: Int8Array.from([-9, 9]) },
      i: { dtype: 'U8', shape: [1], data: Uint8Array.from([200]) },
      j: { dtype: 'BOOL', shape: [2], data: Uint8Array.from([1, 0]) },
      scalar: { dtype: 'F32', shape: [], data: Float32Array.from([42]) },
      empty: { dtype: 'F32', shape: [0, 3], data: new Float32Array(0) },
    },
    { format: 'pt', note: 'x' },
  );
  const f = await SafetensorsFile.open(write('all.safetensors', bytes));
  assert.equal(f.metadata, { format: 'pt', note: 'x' });
  assert.equal([...(await f.readFloat32('a')).data], [1, 2, 3, 4]);
  assert.equal([...(await f.readFloat32('b')).data], [1, -2, 0.5]);
  assert.equal([...(await f.readFloat32('c')).data], [1]);
  assert.equal([...(await f.readFloat32('d')).data], [1.5, -2]);
  assert.equal([...rawToInt32(await f.readRaw('e'))], [5, -6]);
  assert.equal([...(await f.readFloat32('g')).data], [-8]);
  assert.equal([...(await f.readFloat32('h')).data], [-9, 9]);
  assert.equal([...(await f.readFloat32('i')).data], [200]);
  assert.equal([...(await f.readFloat32('j')).data], [1, 0]);
  assert.equal((await f.readFloat32('scalar')).shape, []);
  assert.equal([...(await f.readFloat32('scalar')).data], [42]);
  assert.equal((await f.readFloat32('empty')).shape, [0, 3]);
  assert.is(f.parameterCount(), 4 + 3 + 1 + 2 + 2 + 1 + 1 + 2 + 1 + 2 + 1);
  await rejects(() => f.readRaw('missing'), /no tensor named "missing"/, 'missing tensor');
  await f.close();
});

test('sharded checkpoints through *.safetensors.index.json', async () => {
  write('model-00001-of-00002.safetensors', encodeSafetensors({ w1: { dtype: 'F32', shape: [2], data: Float32Array.from([1, 2]) } }));
  write('model-00002-of-00002.safetensors', encodeSafetensors({ w2: { dtype: 'F16', shape: [1], data: Uint16Array.from([0x4000]) } }));
  const idx = write(
    'model.safetensors.index.json',
    new TextEncoder().encode(JSON.stringify({ metadata: { total_size: 10 }, weight_map: { w1: 'model-00001-of-00002.safetensors', w2: 'model-00002-of-00002.safetensors' } })),
  );
  const s = await openSafetensors(idx);
  assert.ok(s instanceof ShardedSafetensors);
  assert.equal(s.names().sort(), ['w1', 'w2']);
  assert.equal([...(await s.readFloat32('w2')).data], [2]);
  assert.is(s.metadata.total_size, '10');
  await s.close();
  const bad = write('bad.safetensors.index.json', new TextEncoder().encode(JSON.stringify({ weight_map: { w9: 'model-00001-of-00002.safetensors' } })));
  await rejects(() => openSafetensors(bad), /"w9" is in model-00001-of-00002.safetensors, which has no such tensor/, 'bad weight map');
  for (const [name, metadata, pattern] of [
    ['string-meta', 'pt', /"metadata" must be an object of strings, not string/],
    ['array-meta', ['pt'], /"metadata" must be an object of strings, not an array/],
    ['null-meta', null, /"metadata" must be an object of strings, not null/],
    ['nested-meta', { total_size: 10, nested: { a: 1 } }, /metadata\["nested"\] is object, expected a string/],
  ] as const) {
    const p = write(`${name}.safetensors.index.json`, new TextEncoder().encode(JSON.stringify({ metadata, weight_map: { w1: 'model-00001-of-00002.safetensors' } })));
    await rejects(() => openSafetensors(p), pattern, name);
  }
  // Key names are data: "__proto__" is a key like any other.
  const proto = write('proto.safetensors.index.json', new TextEncoder().encode('{"metadata":{"__proto__":"x"},"weight_map":{"w1":"model-00001-of-00002.safetensors"}}'));
  const ps = await openSafetensors(proto);
  assert.equal(Object.keys(ps.metadata), ['__proto__']);
  assert.is(ps.metadata['__proto__'], 'x');
  await ps.close();
});

test('every malformed file is rejected with an error naming the file and the problem', async () => {
  for (const [name, bytes, pattern] of malformedCorpus()) {
    const path = write(name, bytes);
    await rejects(() => SafetensorsFile.open(path), pattern, name);
    await rejects(() => SafetensorsFile.open(path), new RegExp(name.replace(/\./g, '\\.')), `${name} names the file`);
  }
  await rejects(() => SafetensorsFile.open(join(tmp, 'does-not-exist.safetensors')), /cannot open \(no such file\)/, 'missing file');
  await rejects(() => SafetensorsFile.open(tmp), /not a regular file/, 'directory');
});

test('a tensor named "__proto__" is a tensor like any other', async () => {
  const f = await SafetensorsFile.open(write('proto.safetensors', header('{"__proto__":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}', 8)));
  assert.equal(f.names().sort(), ['__proto__', 'b']);
  assert.equal(f.info('__proto__').shape, [1]);
  await f.close();
  const tensors: Record<string, TensorToWrite> = {};
  setOwn(tensors, '__proto__', { dtype: 'F32', shape: [2], data: Float32Array.from([1, 2]) });
  const g = await SafetensorsFile.open(write('proto2.safetensors', encodeSafetensors(tensors)));
  assert.equal([...(await g.readFloat32('__proto__')).data], [1, 2], 'written and read back');
  await g.close();
});

test('a FIFO is refused before it is opened (opening it would block)', async () => {
  const fifo = join(tmp, 'pipe.safetensors');
  if (spawnSync('mkfifo', [fifo]).status !== 0) return;
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      rejects(() => SafetensorsFile.open(fifo), /pipe\.safetensors: not a regular file \(a FIFO\)/, 'FIFO'),
      new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error('SafetensorsFile.open blocked on a FIFO')), 5000))),
    ]);
  } finally {
    clearTimeout(timer);
    try {
      closeSync(openSync(fifo, constants.O_WRONLY | constants.O_NONBLOCK));
    } catch {
      // no blocked reader
    }
  }
});

test.after(() => rmSync(tmp, { recursive: true, force: true }));
test.run();
