// Deno smoke test: the engine runs through navigator.gpu (Deno's WebGPU) and reads back correctly.
// Prints one line "deno: N passed, M failed".
import { Runtime } from '../../dist/gpu/runtime.js';
import { affine, add } from '../../dist/kernels/elementwise.js';
import { linear } from '../../dist/kernels/matmul.js';
import { SafetensorsFile } from '../../dist/io/safetensors.js';
import { loadImage } from '../../dist/io/image.js';

let passed = 0;
let failed = 0;
async function check(name, fn) {
  try {
    await fn();
    passed++;
    console.log(`  ok   ${name}`);
  } catch (e) {
    failed++;
    console.log(`  FAIL ${name}: ${e?.message ?? e}`);
  }
}
function assert(cond, msg) {
  if (!cond) throw new Error(msg);
}

let rt;
await check('a device is acquired through navigator.gpu', async () => {
  rt = await Runtime.create();
  assert(rt.adapterInfo.host === 'deno', `host ${rt.adapterInfo.host}`);
});
if (rt) {
  await check('elementwise kernel runs and reads back', async () => {
    const x = rt.upload(Float32Array.from([1, 2, 3, 4]), [4]);
    const y = await affine(x, 2, 1);
    const z = await add(y, x);
    const out = await z.read();
    assert([...out].join() === '4,7,10,13', `got ${[...out]}`);
  });
  await check('tiled linear kernel matches a direct sum', async () => {
    const m = 5, k = 7, n = 3;
    const xs = Float32Array.from({ length: m * k }, (_, i) => Math.sin(i));
    const ws = Float32Array.from({ length: n * k }, (_, i) => Math.cos(i));
    const y = await linear(rt.upload(xs, [m, k]), rt.upload(ws, [n, k]));
    const out = await y.read();
    for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) {
      let s = 0;
      for (let t = 0; t < k; t++) s += xs[i * k + t] * ws[j * k + t];
      assert(Math.abs(out[i * n + j] - s) < 1e-5, `(${i},${j}): ${out[i * n + j]} vs ${s}`);
    }
  });
  await check('safetensors reader works under Deno', async () => {
    const f = await SafetensorsFile.open(new URL('../fixtures/scheduler/pndm_sd15.safetensors', import.meta.url).pathname);
    const { data } = await f.readFloat32('alphas_cumprod');
    await f.close();
    assert(data.length === 1000 && data[0] > 0.99, 'alphas_cumprod');
  });
  await rt.close();
}
await check('images decode under Deno exactly as Pillow decodes them', async () => {
  const ref = await SafetensorsFile.open(new URL('../fixtures/images/reference.safetensors', import.meta.url).pathname);
  for (const name of ['jpeg_progressive_420.jpg', 'png_adam7_palette4.png', 'bmp_rle8.bmp']) {
    const img = await loadImage(new URL(`../fixtures/images/${name}`, import.meta.url).pathname);
    const want = (await ref.readRaw(name)).bytes;
    assert(img.data.length === want.length && img.data.every((v, i) => v === want[i]), `${name} differs`);
  }
  await ref.close();
});
console.log(`deno: ${passed} passed, ${failed} failed`);
