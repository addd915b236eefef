import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Runtime, sizeClass } from '../src/gpu/runtime.js';
import { f16BitsToF32, f32ToF16Bits } from '../src/gpu/half.js';
import { affine, add } from '../src/kernels/elementwise.js';
import { randn, rejects, runtime } from './helpers.js';

test('a kernel runs and reads back exactly (y = 2x + 1)', async () => {
  const rt = await runtime();
  const data = Float32Array.from({ length: 1000 }, (_, i) => i - 500.25);
  const x = rt.upload(data, [10, 100]);
  const y = await affine(x, 2, 1);
  const out = (await y.read()) as Float32Array;
  for (let i = 0; i < data.length; i++) assert.is(out[i], Math.fround(data[i]! * 2 + 1), `element ${i}`);
  x.dispose();
  y.dispose();
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

test('memory returns to its baseline after tensors are released; the pool reuses buffers', async () => {
  const rt = await runtime();
  await rt.trim();
  const base = rt.memory();
  const steps = 200;
  await rt.scope(async () => {
    let x = rt.upload(randn(4096, 3), [64, 64]);
    for (let i = 0; i < steps; i++) {
      const next = await add(x, x);
      x.dispose();
      x = next;
    }
    const out = (await x.read()) as Float32Array;
    assert.is(out[1], Math.fround(randn(4096, 3)[1]! * 2 ** steps) || out[1]);
  });
  await rt.sync();
  const after = rt.memory();
  assert.is(after.liveBytes, base.liveBytes, 'live bytes back to baseline');
  assert.is(after.liveTensors, base.liveTensors);
  assert.ok(after.pooledBytes > 0, 'released buffers are pooled');
  // Buffers are reused across submissions: far fewer than 201 tensors of 16 KiB were allocated
  // (at most one batch of dispatches keeps its released buffers).
  const storageBytes = after.allocatedBytes - base.allocatedBytes;
  assert.ok(storageBytes <= 48 * 16384, `allocated ${storageBytes} bytes for ${steps + 1} tensors`);
  await rt.trim();
  assert.is(rt.memory().allocatedBytes, base.allocatedBytes, 'trim destroys pooled buffers');
});

test('scope keeps returned tensors and disposes the rest, also on error', async () => {
  const rt = await runtime();
  const base = rt.memory().liveBytes;
  const kept = await rt.scope(async () => {
    const a = rt.upload([1, 2, 3], [3]);
    const b = await affine(a, 1, 1);
    return { b };
  });
  assert.equal([...((await kept.b.read()) as Float32Array)], [2, 3, 4]);
  kept.b.dispose();
  await rejects(
    () =>
      rt.scope(async () => {
        rt.upload([1, 2, 3], [3]);
        throw new Error('boom');
      }),
    /boom/,
    'error in scope',
  );
  assert.is(rt.memory().liveBytes, base);
});

test('a buffer released while work is queued is not reused before the GPU is done', async () => {
  const rt = await runtime();
  const x = rt.upload(randn(1 << 16, 5), [1 << 16]);
  const y = await affine(x, 3, 0); // recorded, not yet submitted
  x.dispose();
  assert.ok(rt.memory().pendingBytes > 0 || rt.memory().pooledBytes >= 0);
  // A new upload of the same size must not overwrite x before the queued kernel has read it.
  const z = rt.upload(new Float32Array(1 << 16).fill(100), [1 << 16]);
  const out = (await y.read()) as Float32Array;
  const ref = randn(1 << 16, 5);
  for (let i = 0; i < 16; i++) assert.is(out[i], Math.fround(ref[i]! * 3));
  y.dispose();
  z.dispose();
});

test('many dispatches are batched into few submissions', async () => {
  const rt = await runtime();
  const before = rt.submittedSerial;
  await rt.scope(async () => {
    let x = rt.upload(randn(256, 7), [256]);
    for (let i = 0; i < 100; i++) x = await affine(x, 1, 0.5);
    const out = (await x.read()) as Float32Array;
    assert.ok(Math.abs(out[0]! - (randn(256, 7)[0]! + 50)) < 1e-4);
  });
  const submits = rt.submittedSerial - before;
  assert.ok(submits <= 4, `100 dispatches took ${submits} submissions`);
});

test('pipelines are compiled once and cached; WGSL errors name the kernel', async () => {
  const rt = await runtime();
  const def = { key: 'test:bad', code: 'fn main( {', inputs: 0, outputs: 0, uniforms: false };
  await rejects(() => rt.pipeline(def), /WGSL compilation failed for kernel 'test:bad'/, 'bad WGSL');
  const good = { key: 'test:good', code: '@compute @workgroup_size(1) fn main() {}', inputs: 0, outputs: 0, uniforms: false };
  const p1 = await rt.pipeline(good);
  const p2 = await rt.pipeline(good);
  assert.is(p1, p2);
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

test('bad arguments give clear errors', async () => {
  const rt = await runtime();
  assert.throws(() => rt.upload([1, 2, 3], [2, 2]), /3 values given for shape \[2, 2\]/);
  assert.throws(() => rt.empty([2, -1]), /non-negative integers/);
  const x = rt.upload([1, 2], [2]);
  x.dispose();
  await rejects(() => affine(x, 1, 0), /already disposed/, 'disposed input');
});

test('a second runtime can be created and destroyed independently', async () => {
  const rt2 = await Runtime.create();
  const t = rt2.upload([5, 6], [2]);
  assert.equal([...((await t.read()) as Float32Array)], [5, 6]);
  rt2.destroy();
  assert.throws(() => rt2.empty([1]), /destroyed/);
});

test.run();
