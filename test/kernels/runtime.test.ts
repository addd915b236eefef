import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Runtime, sizeClass, tidy, type KernelSource, type Tensor } from '../../src/gpu/runtime.js';
import { f16BitsToF32, f32ToF16Bits } from '../../src/platform/half.js';
import { affine, add, unary } from '../../src/kernels/elementwise.js';
import { FLAGS, FlagError, resolveFlag, resolveFlags, type FlagName } from '../../src/gpu/flags.js';
import { env } from '../../src/platform/env.js';
import { GEMM_TILE_NAMES, TILES } from '../../src/kernels/matmul.js';
import { LANE_TILES } from '../../src/kernels/matmul-lanes.js';
import { SUBGROUP_TILES } from '../../src/kernels/matmul-subgroup.js';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { randn, rejects, REPO_ROOT, runCli, runtime, take } from '../support/helpers.js';

const COPY_KERNEL: KernelSource = {
  code: `@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@compute @workgroup_size(64) fn main(@builtin(global_invocation_id) g: vec3<u32>) { if (g.x < arrayLength(&y)) { y[g.x] = x[g.x]; } }`,
  inputs: 1,
  outputs: 1,
  uniforms: false,
};

test('a kernel runs and reads back exactly (y = 2x + 1)', async () => {
  const rt = await runtime();
  const data = Float32Array.from({ length: 1000 }, (_, i) => i - 500.25);
  const x = rt.upload(data, [10, 100]);
  const out = await take(affine(x, 2, 1));
  for (let i = 0; i < data.length; i++) assert.is(out[i], Math.fround(data[i]! * 2 + 1), `element ${i}`);
  x.dispose();
});

test('upload and read back i32, u32 and f16 (packed pairs, odd length)', async () => {
  const rt = await runtime();
  const ints = rt.upload(Int32Array.from([-3, 0, 7, 2147483647]), [4], 'i32');
  assert.equal([...((await ints.read()) as Int32Array)], [-3, 0, 7, 2147483647]);
  const uints = rt.upload(Uint32Array.from([0, 1, 4294967295]), [3], 'u32');
  assert.equal([...((await uints.read()) as Uint32Array)], [0, 1, 4294967295]);
  const halves = rt.upload(Float32Array.from([1, -2.5, 65504, 1e-7, 0.1]), [5], 'f16');
  const back = [...((await halves.read()) as Float32Array)];
  assert.equal(back, [1, -2.5, 65504, f16BitsToF32(f32ToF16Bits(1e-7)), f16BitsToF32(f32ToF16Bits(0.1))]);
  for (const t of [ints, uints, halves]) t.dispose();
});

test('f16 conversion rounds to nearest even and handles specials', () => {
  assert.is(f32ToF16Bits(1), 0x3c00);
  assert.is(f32ToF16Bits(65520), 0x7c00); // rounds up to inf
  assert.is(f32ToF16Bits(65519), 0x7bff);
  assert.is(f32ToF16Bits(-0), 0x8000);
  assert.is(f32ToF16Bits(NaN) & 0x7c00, 0x7c00);
  assert.is(f16BitsToF32(0x0001), 2 ** -24);
  assert.is(f32ToF16Bits(2 ** -25), 0); // ties to even (0)
  assert.is(f32ToF16Bits(3 * 2 ** -25), 2); // 1.5 ulp → 2
  assert.is(f32ToF16Bits(1 + 2 ** -11), 0x3c00); // tie → even
  assert.is(f32ToF16Bits(1 + 3 * 2 ** -11), 0x3c02);
});

test('reshape is a view: no copy, shared storage, released with the last reference', async () => {
  const rt = await runtime();
  const before = rt.memory().liveBytes;
  const x = rt.upload(randn(24, 1), [2, 3, 4]);
  const v = x.reshape([6, -1]);
  assert.equal(v.shape, [6, 4]);
  assert.is(v.storage, x.storage);
  x.dispose();
  assert.ok(rt.memory().liveBytes > before, 'view keeps the storage alive');
  const data = (await v.read()) as Float32Array;
  assert.equal([...data], [...randn(24, 1)]);
  v.dispose();
  assert.is(rt.memory().liveBytes, before);
  assert.throws(() => v.reshape([24]), /disposed/);
  const y = rt.upload(randn(6, 2), [6]);
  assert.throws(() => y.reshape([4, 2]), /cannot reshape/);
  y.dispose();
});

test('ops are recorded when called: a later host write to an input does not reach a queued op', async () => {
  const rt = await runtime();
  const x = rt.upload([1, 1, 1], [3]);
  const p = unary(x, 'exp'); // not read yet
  rt.writeTensor(x, [0, 0, 0]);
  const got = await take(p);
  for (const v of got) assert.ok(Math.abs(v - Math.E) < 1e-6, `exp(1) expected, got ${v}`);
  assert.equal([...(await take(unary(x, 'exp')))], [1, 1, 1], 'the write itself took effect');
  x.dispose();
});

test('ops are recorded when called: disposing an input right after the call is safe, its buffer is not handed to a new upload first', async () => {
  const rt = await runtime();
  const n = 1 << 12;
  const data = randn(n, 5);
  const x2 = rt.upload(data, [n]);
  const p = affine(x2, 2, 0);
  x2.dispose();
  const z = rt.upload(new Float32Array(n).fill(100), [n]);
  const out = await take(p);
  for (let i = 0; i < n; i++) assert.is(out[i], Math.fround(data[i]! * 2), `element ${i}`);
  z.dispose();
});

test('a buffer released while its reader is unsubmitted serves the next kernel in the same batch; the reader still sees the old contents', async () => {
  const rt = await runtime();
  await rt.sync();
  const n = 1 << 14;
  const data = randn(n, 5);
  const x = rt.upload(data, [n]);
  const buffer = x.storage.buffer;
  const y = affine(x, 3, 0); // recorded, reads x, not yet submitted
  x.dispose();
  const z = affine(y, 1, 1); // its output takes x's buffer, later in the same batch
  assert.is(z.storage.buffer, buffer, 'the released buffer is reused before the batch is submitted');
  const [yv, zv] = [await take(y), await take(z)];
  for (let i = 0; i < n; i++) {
    assert.is(yv[i], Math.fround(data[i]! * 3), `y element ${i}`);
    assert.is(zv[i], Math.fround(Math.fround(data[i]! * 3) + 1), `z element ${i}`);
  }
});

test('the pool hands out the same buffers to the same ops wherever the batches are cut, so bind groups repeat', async () => {
  const rt = await runtime();
  await rt.sync();
  const x = rt.upload(randn(4096, 9), [64, 64]);
  const pass = () => {
    const buffers: GPUBuffer[] = [];
    const y = tidy(() => {
      let h = x;
      for (let i = 0; i < 12; i++) {
        h = affine(h, 1, 0.5);
        buffers.push(h.storage.buffer);
      }
      return h;
    });
    y.dispose();
    return buffers;
  };
  pass(); // from here on each pass starts from the pool the previous one left
  const first = pass(); // recorded into the batch the previous pass left open
  rt.flush(); // a different cut: the next pass starts a batch of its own
  const second = pass();
  await rt.sync();
  assert.equal(second, first, 'the same buffer for each op');
  let made = 0;
  const create = rt.device.createBindGroup.bind(rt.device);
  rt.device.createBindGroup = (d) => {
    made++;
    return create(d);
  };
  try {
    for (let i = 0; i < 5; i++) pass(); // batches cut after a varying number of dispatches
    await rt.sync();
  } finally {
    rt.device.createBindGroup = create;
  }
  assert.is(made, 0, 'every bind group from the cache');
  x.dispose();
});

test('memory returns to its baseline after tidy; the pool reuses buffers across submissions', async () => {
  const rt = await runtime();
  await rt.trim();
  const base = rt.memory();
  const steps = 200;
  const x0 = randn(4096, 3);
  const y = tidy(() => {
    let x = rt.upload(x0, [64, 64]);
    for (let i = 0; i < steps; i++) {
      const next = affine(x, 1, 1);
      x.dispose(); // released at once, so its buffer can serve a later step
      x = next;
    }
    return x;
  });
  const out = await take(y);
  let exact = 0;
  for (let i = 0; i < out.length; i++) {
    let v = x0[i]!;
    for (let s = 0; s < steps; s++) v = Math.fround(v + 1);
    if (out[i] === v) exact++;
  }
  assert.is(exact, out.length, 'every value is x + 200 in float32');
  await rt.sync();
  const after = rt.memory();
  assert.is(after.liveBytes, base.liveBytes, 'live bytes back to baseline');
  assert.is(after.liveTensors, base.liveTensors);
  assert.ok(after.pooledBytes > 0, 'released buffers are pooled');
  // 201 tensors of 16 KiB; within a batch of 32 dispatches released buffers wait, so about 33 exist.
  const storageBytes = after.allocatedBytes - base.allocatedBytes;
  assert.ok(storageBytes <= 48 * 16384, `allocated ${storageBytes} bytes for ${steps + 1} tensors`);
  await rt.trim();
  assert.is(rt.memory().allocatedBytes, base.allocatedBytes, 'trim destroys pooled buffers');
});

test('tidy keeps returned tensors (also in arrays, Maps and objects), disposes the rest, also on error, and refuses async functions', async () => {
  const rt = await runtime();
  const base = rt.memory().liveTensors;
  const kept = tidy(() => {
    const a = rt.upload([1, 2, 3], [3]);
    const b = affine(a, 1, 1);
    const c = affine(a, 2, 0);
    const d = affine(a, 0, 5);
    affine(a, 9, 9); // dropped
    return { b, list: [c], map: new Map([['d', d]]) };
  });
  assert.is(rt.memory().liveTensors, base + 3);
  assert.equal([...(await take(kept.b))], [2, 3, 4]);
  assert.equal([...(await take(kept.list[0]!))], [2, 4, 6]);
  assert.equal([...(await take(kept.map.get('d')!))], [5, 5, 5]);
  assert.throws(
    () =>
      tidy(() => {
        rt.upload([1, 2, 3], [3]);
        throw new Error('boom');
      }),
    /boom/,
  );
  assert.is(rt.memory().liveTensors, base, 'a throwing tidy frees what it made');
  assert.throws(() => tidy((async () => affine(rt.upload([1], [1]), 1, 0)) as unknown as () => Tensor), /returned a Promise/);
  const outer = tidy(() => {
    const inner = tidy(() => affine(rt.upload([4], [1]), 1, 0));
    const keepMe = affine(inner, 1, 1).keep();
    return keepMe;
  });
  assert.equal([...(await take(outer))], [5]);
  assert.is(rt.memory().liveTensors, base, 'nested tidies and keep() leave nothing behind');
});

test('concurrent async tasks interleaving their tidy calls do not free each other\'s tensors', async () => {
  const rt = await runtime();
  const pause = () => new Promise((r) => setTimeout(r, 1));
  const task = async (offset: number) => {
    const results: Tensor[] = [];
    for (let i = 0; i < 10; i++) {
      await pause();
      results.push(tidy(() => affine(affine(rt.upload([i], [1]), 1, offset), 2, 0)));
    }
    const values: number[] = [];
    for (const r of results) values.push((await take(r))[0]!);
    return values;
  };
  const [a, b] = await Promise.all([task(100), task(1000)]);
  assert.equal(a, Array.from({ length: 10 }, (_, i) => 2 * (i + 100)));
  assert.equal(b, Array.from({ length: 10 }, (_, i) => 2 * (i + 1000)));
});

test('many dispatches are batched into few submissions; dispatches are counted', async () => {
  const rt = await runtime();
  const before = rt.submittedSerial;
  const count = rt.dispatchCount;
  const y = tidy(() => {
    let x = rt.upload(randn(256, 7), [256]);
    for (let i = 0; i < 100; i++) x = affine(x, 1, 0.5);
    return x;
  });
  const out = await take(y);
  assert.ok(Math.abs(out[0]! - (randn(256, 7)[0]! + 50)) < 1e-4);
  const submits = rt.submittedSerial - before;
  assert.ok(submits <= 5, `100 dispatches took ${submits} submissions`);
  assert.is(rt.dispatchCount - count, 100);
});

test('kernels are built once per key (WGSL generated once); a WGSL error names the kernel', async () => {
  const rt = await runtime();
  let builds = 0;
  const build = () => {
    builds++;
    return COPY_KERNEL;
  };
  const x = rt.upload([1, 2, 3], [3]);
  const outs: Tensor[] = [];
  for (let i = 0; i < 5; i++) outs.push(rt.run(rt.kernel('test:copy', build), { inputs: [x], outputs: [{ shape: [3] }], workgroups: [1] })[0]!);
  assert.is(builds, 1);
  assert.is(rt.kernel('test:copy', build), rt.kernel('test:copy', build));
  assert.equal([...(await take(outs[4]!))], [1, 2, 3]);
  for (const t of [x, ...outs]) t.dispose();

  const rt2 = await Runtime.create();
  try {
    rt2.kernel('test:bad', () => ({ code: 'fn main( {', inputs: 0, outputs: 0, uniforms: false }));
    await rejects(() => rt2.sync(), /kernel 'test:bad' failed to compile/, 'bad WGSL');
  } finally {
    rt2.destroy();
  }
});

test('a dispatch that fails validation allocates nothing (no leak outside tidy)', async () => {
  const rt = await runtime();
  await rt.sync();
  const before = rt.memory();
  const kernel = rt.kernel('test:copy', () => COPY_KERNEL);
  const x = rt.upload([1, 2, 3], [3]);
  const maxBinding = rt.limits.maxStorageBufferBindingSize ?? 134217728;
  const huge = Math.floor(maxBinding / 4) + 1024;
  for (let i = 0; i < 5; i++) {
    assert.throws(() => rt.run(kernel, { inputs: [x], outputs: [{ shape: [huge] }], workgroups: [1] }), /over this adapter's maxStorageBufferBindingSize/);
  }
  const dead = rt.upload([1], [1]);
  dead.dispose();
  assert.throws(() => rt.run(kernel, { inputs: [dead], outputs: [{ shape: [1 << 20] }], workgroups: [1] }), /already disposed/);
  x.dispose();
  assert.is(rt.memory().liveBytes, before.liveBytes);
  assert.ok(rt.memory().allocatedBytes - before.allocatedBytes <= 4096, 'no output buffer was created');
});

test('a long synchronous loop reuses cached bind groups and one parameter arena (no per-batch allocations)', async () => {
  const rt = await runtime();
  const x = rt.upload([1, 2, 3, 4], [4]);
  for (let i = 0; i < 100; i++) affine(x, 1, 1).dispose();
  await rt.sync();
  const device = rt.device;
  const create = device.createBindGroup.bind(device);
  let created = 0;
  device.createBindGroup = (d: GPUBindGroupDescriptor) => {
    created++;
    return create(d);
  };
  const allocated = rt.memory().allocatedBytes;
  try {
    for (let i = 0; i < 3000; i++) affine(x, 1, 1).dispose(); // ~94 batches, no await in between
    assert.ok(created <= 40, `${created} bind groups created for 3000 dispatches`);
    assert.ok(rt.memory().allocatedBytes - allocated <= 64 * 1024, `allocated ${rt.memory().allocatedBytes - allocated} more bytes`);
  } finally {
    device.createBindGroup = create;
  }
  assert.equal([...(await take(affine(x, 2, 0)))], [2, 4, 6, 8]);
  x.dispose();
});

test('size classes: ≤ 12.5% slack, monotone', () => {
  let prev = 0;
  for (const n of [1, 255, 256, 257, 1000, 4096, 5000, 1 << 20, (1 << 20) + 1, 123456789]) {
    const c = sizeClass(n);
    assert.ok(c >= n && c <= Math.max(256, n * 1.125 + 256), `${n} → ${c}`);
    assert.ok(c >= prev);
    prev = c;
  }
});

test('buffers beyond the largest size class that fits maxBufferSize are pooled at exact size and reused', async () => {
  const rt = await Runtime.create();
  try {
    // A small maxBufferSize puts 1,090,000 bytes (class 1,179,648) beyond the largest class.
    (rt.limits as Record<string, number>).maxBufferSize = 1_100_000;
    const n = 1_090_000 / 4;
    assert.ok(sizeClass(n * 4) > 1_100_000);
    const base = rt.memory().allocatedBytes;
    for (let i = 0; i < 20; i++) {
      rt.empty([n]).dispose();
      rt.flush();
    }
    assert.is(rt.memory().allocatedBytes - base, n * 4, 'one exact-size buffer, reused 20 times');
    assert.throws(() => rt.empty([300_000]), /exceeds this adapter's maxBufferSize/);
  } finally {
    await rt.close();
  }
});

test('bad arguments give clear errors, synchronously', async () => {
  const rt = await runtime();
  assert.throws(() => rt.upload([1, 2, 3], [2, 2]), /3 values given for shape \[2, 2\]/);
  assert.throws(() => rt.empty([2, -1]), /non-negative integers/);
  const x = rt.upload([1, 2], [2]);
  x.dispose();
  assert.throws(() => affine(x, 1, 0), /already disposed/);
  const a = rt.upload([1, 2], [2]);
  const b = rt.upload([1, 2, 3], [3]);
  assert.throws(() => add(a, b), /do not broadcast/);
  a.dispose();
  b.dispose();
});

test('a second runtime can be created and closed independently; memory() reads zero after close', async () => {
  const rt2 = await Runtime.create();
  const t = rt2.upload([5, 6], [2]);
  assert.equal([...((await t.read()) as Float32Array)], [5, 6]);
  assert.ok(rt2.memory().liveBytes > 0);
  await rt2.close();
  const m = rt2.memory();
  assert.is(m.allocatedBytes, 0);
  assert.is(m.liveBytes, 0);
  assert.is(m.liveTensors, 0);
  assert.throws(() => rt2.empty([1]), /destroyed/);
});

test('flags: an option wins over the variable, the variable over the default; each says where it came from', () => {
  const vars: Record<string, string> = { DIFFSIM_GEMM_TILE: 'small', DIFFSIM_GROUPNORM: 'split:64', DIFFSIM_DAWN_TOGGLES: ' a, b ,,', DIFFSIM_GEMM_SCALAR: 'TRUE', DIFFSIM_TC_SUBGROUP: '' };
  const { flags, sources } = resolveFlags({ groupNorm: 'single', tcShape: '8x8x8' }, (n) => vars[n]);
  assert.is(flags.gemmTile, 'small');
  assert.is(sources.gemmTile, 'env');
  assert.is(flags.groupNorm, 'single');
  assert.is(sources.groupNorm, 'option');
  assert.is(flags.tcShape, '8x8x8');
  assert.equal(flags.dawnToggles, ['a', 'b']);
  assert.is(flags.gemmScalar, true);
  assert.is(flags.tcSubgroup, 32, 'an empty variable counts as unset');
  assert.is(sources.tcSubgroup, 'default');
  assert.is(flags.tensorCores, 'auto');
  assert.ok(Object.isFrozen(flags));
  for (const name of Object.keys(FLAGS) as FlagName[]) {
    const spec = FLAGS[name];
    assert.ok(spec.env.startsWith('DIFFSIM_') && spec.doc.length > 0, name);
    assert.ok(spec.accepts(spec.default), `${name}: its default is allowed`);
  }
});

test('flags: a value that is not allowed names the flag, its variable and the allowed values', () => {
  const throwsWith = (fn: () => unknown, re: RegExp) => {
    try {
      fn();
    } catch (e) {
      assert.instance(e, FlagError);
      assert.match((e as Error).message, re);
      return;
    }
    assert.unreachable(`no error for ${re}`);
  };
  throwsWith(() => resolveFlag('groupNorm', undefined, () => 'fast'), /^DIFFSIM_GROUPNORM=fast in the environment: groupNorm expects one of auto, single, split, split:<chunk elements>$/);
  throwsWith(() => resolveFlag('groupNorm', undefined, () => 'split:0'), /DIFFSIM_GROUPNORM=split:0/);
  throwsWith(() => resolveFlag('gemmTile', undefined, () => 'huge'), /DIFFSIM_GEMM_TILE=huge in the environment: gemmTile expects one of auto, large, medium, small, tall, n16, n4, n2, m8, ln2r4, ln2r2, ln2r1, lm2r2, lm2r1/);
  throwsWith(() => resolveFlag('tcSubgroup', undefined, () => '33'), /DIFFSIM_TC_SUBGROUP=33 .*4, 8, 16, 32, 64, 128/);
  throwsWith(() => resolveFlag('gemmScalar', undefined, () => 'yes'), /DIFFSIM_GEMM_SCALAR=yes/);
  throwsWith(() => resolveFlag('gemmScalar', undefined, () => 'constructor'), /DIFFSIM_GEMM_SCALAR=constructor/);
  throwsWith(() => resolveFlags({ dawnToggles: 'a,b' as never }, () => undefined), /^dawnToggles \(DIFFSIM_DAWN_TOGGLES\): expected comma-separated names, got 'a,b'$/);
  throwsWith(() => resolveFlags({ gemmTile: 'huge' as 'large' }, () => undefined), /^gemmTile \(DIFFSIM_GEMM_TILE\): expected one of auto, large, medium, small, tall, n16, n4, n2, m8, ln2r4, ln2r2, ln2r1, lm2r2, lm2r1, got 'huge'$/);
  throwsWith(() => resolveFlags({ gemmTiles: 'large' } as never, () => undefined), /unknown flag 'gemmTiles'/);
});

test('the tile flags name the kernels\' tiles', () => {
  assert.equal(FLAGS.gemmTile.values.split(' | '), ['auto', ...GEMM_TILE_NAMES]);
  assert.equal(GEMM_TILE_NAMES, [...Object.keys(TILES), ...Object.keys(LANE_TILES)]);
  assert.equal(FLAGS.tcTile.values.split(' | '), ['auto', ...Object.keys(SUBGROUP_TILES)]);
});

test('every DIFFSIM_ variable src mentions is in the registry, and only src/platform/env.ts reads the environment', () => {
  const known = new Set(Object.values(FLAGS).map((f) => f.env));
  // Constants of the code that share the prefix (DIFFSIM_DEFAULTS, DIFFSIM_PRESETS, …) are not
  // variables: every name declared as a binding somewhere in src.
  const identifiers = new Set<string>();
  const files: string[] = [];
  const collect = (dir: string) => {
    for (const name of readdirSync(dir)) {
      const p = join(dir, name);
      if (statSync(p).isDirectory()) collect(p);
      else if (name.endsWith('.ts')) files.push(p);
    }
  };
  collect(join(REPO_ROOT, 'src'));
  for (const p of files) for (const m of readFileSync(p, 'utf8').matchAll(/\b(?:const|let|var|function|class|type|interface)\s+(DIFFSIM_[A-Z0-9_]+)/g)) identifiers.add(m[1]!);
  const unknown: string[] = [];
  const readers: string[] = [];
  const walk = (dir: string) => {
    for (const name of readdirSync(dir)) {
      const p = join(dir, name);
      if (statSync(p).isDirectory()) walk(p);
      else if (name.endsWith('.ts')) {
        const text = readFileSync(p, 'utf8');
        const rel = p.slice(REPO_ROOT.length + 1);
        for (const m of text.matchAll(/\bDIFFSIM_[A-Z0-9_]+/g)) if (!known.has(m[0]) && !identifiers.has(m[0])) unknown.push(`${rel}: ${m[0]}`);
        // The Hugging Face variables (src/hub) and the shard variables of `diffsim eval` are read
        // by their own modules, from an env record a caller may replace.
        if (/\bDeno\.env\b|process\??\.env\?*\.DIFFSIM|globalThis as \{ process\?: \{ env/.test(text) && rel !== join('src', 'platform', 'env.ts')) readers.push(rel);
      }
    }
  };
  walk(join(REPO_ROOT, 'src'));
  assert.equal(unknown, []);
  assert.equal(readers, []);
});

test('env() reads the process environment; unset is undefined', () => {
  assert.is(env('PATH'), process.env.PATH);
  assert.is(env('DIFFSIM_NO_SUCH_VARIABLE'), undefined);
});

test('Runtime.create({ flags }) fixes rt.flags; tensorCores is the same flag; a bad flag fails before a device is acquired', async () => {
  const rt = await Runtime.create({ tensorCores: 'off', flags: { gemmTile: 'tall', groupNorm: 'split:8' } });
  try {
    assert.is(rt.flags.gemmTile, 'tall');
    assert.is(rt.flagSources.gemmTile, 'option');
    assert.is(rt.flags.groupNorm, 'split:8');
    assert.is(rt.tensorCores, 'off');
    assert.is(rt.flags.tensorCores, 'off');
    assert.is(rt.flagSources.tensorCores, 'option');
    assert.is(rt.subgroupMatrix, null);
  } finally {
    rt.destroy();
  }
  await rejects(() => Runtime.create({ flags: { groupNorm: 'twice' as 'split' } }), /^groupNorm \(DIFFSIM_GROUPNORM\): expected one of auto, single, split, split:<chunk elements>, got 'twice'$/, 'bad flag option');
});

test('the environment variables reach rt.flags (diffsim info); a bad one is an error naming it', () => {
  const ok = runCli(['info', '--json'], { env: { DIFFSIM_GEMM_TILE: 'medium', DIFFSIM_GROUPNORM: 'split:33', DIFFSIM_TC_TILE: '' } });
  assert.is(ok.code, 0, ok.stderr);
  const flags = (JSON.parse(ok.stdout) as { flags: Record<string, { value: unknown; source: string; env: string }> }).flags;
  assert.equal(flags.gemmTile, { value: 'medium', source: 'env', env: 'DIFFSIM_GEMM_TILE' });
  assert.equal(flags.groupNorm, { value: 'split:33', source: 'env', env: 'DIFFSIM_GROUPNORM' });
  assert.equal(flags.tcTile, { value: 'auto', source: 'default', env: 'DIFFSIM_TC_TILE' });
  const text = runCli(['info'], { env: { DIFFSIM_GEMM_TILE: 'medium' } });
  assert.match(text.stdout, /^ {2}gemmTile +medium +env DIFFSIM_GEMM_TILE$/m);
  const bad = runCli(['info'], { env: { DIFFSIM_GEMM_TILE: 'huge' } });
  assert.is(bad.code, 1);
  assert.match(bad.stderr, /^diffsim: DIFFSIM_GEMM_TILE=huge in the environment: gemmTile expects one of auto, large, medium, small, tall, n16, n4, n2, m8, ln2r4, ln2r2, ln2r1, lm2r2, lm2r1$/m);
});

test.run();
