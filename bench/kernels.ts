// Kernel benchmark: SD1.5 shapes at 512², square matmuls, adapter probes (FMA peak, copy
// bandwidth) and the same ops on tfjs-backend-webgpu as the peer, on the same adapter in the same
// process. Prints a table and writes bench/results/kernels-<adapter>.json.
//
//   node build/bench/kernels.js [--scale S] [--iters N] [--only substring] [--no-peer] [--out DIR]
//
// --scale multiplies the token/pixel counts (and square matmul sizes) for slow software adapters.

import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Params, Runtime, type Tensor } from '../src/gpu/runtime.js';
import { conv2d, linear, matmul } from '../src/kernels/matmul.js';
import { attention } from '../src/kernels/attention.js';
import { groupNorm } from '../src/kernels/norm.js';

interface Args {
  scale: number;
  iters: number;
  only: string | undefined;
  peer: boolean;
  out: string;
}

function parseArgs(argv: string[]): Args {
  const here = dirname(fileURLToPath(import.meta.url));
  const a: Args = { scale: 1, iters: 0, only: undefined, peer: true, out: join(here, '..', '..', 'bench', 'results') };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i];
    const v = argv[i + 1];
    if (k === '--scale') (a.scale = Number(v)), i++;
    else if (k === '--iters') (a.iters = Number(v)), i++;
    else if (k === '--only') (a.only = v), i++;
    else if (k === '--no-peer') a.peer = false;
    else if (k === '--out') (a.out = v!), i++;
    else throw new Error(`unknown argument ${k}`);
  }
  if (!(a.scale > 0 && a.scale <= 1)) throw new Error('--scale must be in (0, 1]');
  return a;
}

export interface BenchRow {
  op: string;
  shape: string;
  ms: number;
  gflops: number | null;
  gbps: number | null;
  peakPct: number | null;
  peerMs: number | null;
  speedup: number | null;
}

function rand(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = (s / 4294967296 - 0.5) * 2;
  }
  return out;
}

function release(t: Tensor | Tensor[] | void): void {
  for (const x of Array.isArray(t) ? t : t ? [t] : []) x.dispose();
}

/** Times `step` (which records GPU work) over repeated runs; returns ms per run. */
async function time(rt: Runtime, step: () => Tensor | Tensor[] | void, iters: number): Promise<number> {
  for (let i = 0; i < 2; i++) {
    const t = step();
    await rt.sync();
    release(t);
  }
  let n = iters;
  if (n <= 0) {
    // Aim at ~1 s of work, between 3 and 50 runs.
    const t0 = performance.now();
    const t = step();
    await rt.sync();
    release(t);
    const once = performance.now() - t0;
    n = Math.max(3, Math.min(50, Math.round(1000 / Math.max(once, 0.01))));
  }
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    release(step());
  }
  await rt.sync();
  return (performance.now() - t0) / n;
}

async function probeFma(rt: Runtime): Promise<number> {
  const wg = 256;
  const inner = 1024;
  const chains = 8;
  const groups = rt.adapterInfo.isFallbackAdapter ? 64 : 8192;
  const out = rt.empty([groups * wg * 4]);
  const def = {
    key: 'probe:fma',
    inputs: 0,
    outputs: 1,
    uniforms: true,
    code: /* wgsl */ `
struct P { seed: f32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read_write> o: array<vec4<f32>>;
@compute @workgroup_size(${wg})
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  var a: array<vec4<f32>, ${chains}>;
  for (var c = 0u; c < ${chains}u; c++) { a[c] = vec4<f32>(f32(gid.x + c) * 1e-7); }
  let m = vec4<f32>(0.9999, 0.9998, 0.9997, 0.9996);
  let s = vec4<f32>(p.seed);
  for (var i = 0u; i < ${inner}u; i++) {
    for (var c = 0u; c < ${chains}u; c++) { a[c] = fma(a[c], m, s); }
  }
  var r = vec4<f32>(0.0);
  for (var c = 0u; c < ${chains}u; c++) { r += a[c]; }
  o[gid.x] = r;
}`,
  };
  const flops = groups * wg * inner * chains * 4 * 2;
  // The output is the probe's own tensor: nothing for time() to release.
  const ms = await time(rt, () => void rt.run(rt.kernel(def.key, () => def), { params: new Params().f32(1e-6).build(), inputs: [], outputs: [out], workgroups: [groups] }), 0);
  out.dispose();
  return flops / (ms * 1e6);
}

async function probeCopy(rt: Runtime): Promise<number> {
  const n = rt.adapterInfo.isFallbackAdapter ? 1 << 22 : 1 << 26;
  const src = rt.upload(rand(n, 1), [n]);
  const dst = rt.empty([n]);
  const def = {
    key: 'probe:copy',
    inputs: 1,
    outputs: 1,
    uniforms: true,
    code: /* wgsl */ `
struct P { n: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> y: array<vec4<f32>>;
@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i < p.n) { y[i] = x[i]; }
}`,
  };
  const ms = await time(rt, () => void rt.run(rt.kernel(def.key, () => def), { params: new Params().u32(n / 4).build(), inputs: [src], outputs: [dst], workgroups: rt.grid(n / 4 / 256) }), 0);
  src.dispose();
  dst.dispose();
  return (2 * n * 4) / (ms * 1e6);
}

interface TfLike {
  tidy<T>(fn: () => T): T;
  randomNormal(shape: number[]): TfTensor;
  matMul(a: TfTensor, b: TfTensor, ta?: boolean, tb?: boolean): TfTensor;
  conv2d(x: TfTensor, f: TfTensor, strides: number, pad: 'same' | 'valid'): TfTensor;
  softmax(x: TfTensor): TfTensor;
  mul(a: TfTensor, b: TfTensor | number): TfTensor;
  add(a: TfTensor, b: TfTensor): TfTensor;
  sub(a: TfTensor, b: TfTensor): TfTensor;
  rsqrt(a: TfTensor): TfTensor;
  moments(x: TfTensor, axes: number[], keepDims: boolean): { mean: TfTensor; variance: TfTensor };
  reshape(x: TfTensor, shape: number[]): TfTensor;
  scalar(v: number): TfTensor;
  setBackend(name: string): Promise<boolean>;
  ready(): Promise<void>;
  getBackend(): string;
}
interface TfTensor {
  data(): Promise<unknown>;
  dispose(): void;
}

async function loadPeer(): Promise<TfLike | null> {
  try {
    const nav = (globalThis as { navigator?: { gpu?: GPU } }).navigator;
    if (!nav?.gpu) {
      const mod = (await import('webgpu')) as unknown as { create(a: string[]): GPU; globals: object };
      Object.assign(globalThis, mod.globals);
      (globalThis as { navigator?: unknown }).navigator = { gpu: mod.create(['backend=vulkan']) };
    }
    const tf = (await import('@tensorflow/tfjs-core' as string)) as unknown as TfLike;
    await import('@tensorflow/tfjs-backend-webgpu' as string);
    if (!(await tf.setBackend('webgpu'))) return null;
    await tf.ready();
    return tf;
  } catch (e) {
    console.error(`peer unavailable: ${(e as Error).message}`);
    return null;
  }
}

async function timePeer(tf: TfLike, make: () => TfTensor, iters: number): Promise<number> {
  for (let i = 0; i < 2; i++) {
    const t = make();
    await t.data();
    t.dispose();
  }
  let n = iters;
  if (n <= 0) {
    const t0 = performance.now();
    const t = make();
    await t.data();
    t.dispose();
    const once = performance.now() - t0;
    n = Math.max(3, Math.min(50, Math.round(1000 / Math.max(once, 0.01))));
  }
  const t0 = performance.now();
  let last: TfTensor | null = null;
  for (let i = 0; i < n; i++) {
    last?.dispose();
    last = make();
  }
  await last!.data();
  last!.dispose();
  return (performance.now() - t0) / n;
}

interface Case {
  op: string;
  shape: string;
  flops?: number;
  bytes?: number;
  ours: (rt: Runtime) => Promise<{ step: () => Tensor; free: () => void }>;
  peer?: (tf: TfLike) => { make: () => TfTensor; free: () => void };
}

function cases(scale: number): Case[] {
  const list: Case[] = [];
  const s = (n: number) => Math.max(1, Math.round(n * scale));
  const side = (n: number) => Math.max(1, Math.round(n * Math.sqrt(scale)));

  for (const [hw, c, label] of [[64, 320, 'down0'], [32, 640, 'down1'], [16, 1280, 'down2'], [512, 128, 'vae']] as const) {
    const h = side(hw);
    const b = label === 'vae' ? 1 : 2;
    list.push({
      op: 'conv3x3',
      shape: `${b}x${c}x${h}x${h}→${c} (${label})`,
      flops: 2 * b * c * h * h * c * 9,
      ours: async (rt) => {
        const x = rt.upload(rand(b * c * h * h, 1), [b, c, h, h]);
        const w = rt.upload(rand(c * c * 9, 2), [c, c, 3, 3]);
        const bias = rt.upload(rand(c, 3), [c]);
        return { step: () => conv2d(x, w, { bias, padding: 1 }), free: () => [x, w, bias].forEach((t) => t.dispose()) };
      },
      peer: (tf) => {
        const x = tf.randomNormal([b, h, h, c]);
        const w = tf.randomNormal([3, 3, c, c]);
        return { make: () => tf.conv2d(x, w, 1, 'same'), free: () => [x, w].forEach((t) => t.dispose()) };
      },
    });
  }
  for (const [m0, k, n] of [[4096, 320, 320], [4096, 320, 2560], [1024, 640, 640], [256, 1280, 1280]] as const) {
    const m = s(m0) * 2;
    list.push({
      op: 'linear',
      shape: `${m}x${k}→${n}`,
      flops: 2 * m * k * n,
      ours: async (rt) => {
        const x = rt.upload(rand(m * k, 4), [m, k]);
        const w = rt.upload(rand(n * k, 5), [n, k]);
        const bias = rt.upload(rand(n, 6), [n]);
        return { step: () => linear(x, w, { bias }), free: () => [x, w, bias].forEach((t) => t.dispose()) };
      },
      peer: (tf) => {
        const x = tf.randomNormal([m, k]);
        const w = tf.randomNormal([n, k]);
        return { make: () => tf.matMul(x, w, false, true), free: () => [x, w].forEach((t) => t.dispose()) };
      },
    });
  }
  for (const [n0, heads, d] of [[4096, 8, 40], [1024, 8, 80], [256, 8, 160]] as const) {
    const n = s(n0);
    const b = 2;
    list.push({
      op: 'attention',
      shape: `${b}x${n}x${heads}x${d}`,
      flops: 4 * b * heads * n * n * d,
      ours: async (rt) => {
        const q = rt.upload(rand(b * n * heads * d, 7), [b, n, heads * d]);
        const k = rt.upload(rand(b * n * heads * d, 8), [b, n, heads * d]);
        const v = rt.upload(rand(b * n * heads * d, 9), [b, n, heads * d]);
        return { step: () => attention(q, k, v, { heads }), free: () => [q, k, v].forEach((t) => t.dispose()) };
      },
      peer: (tf) => {
        const q = tf.randomNormal([b * heads, n, d]);
        const k = tf.randomNormal([b * heads, n, d]);
        const v = tf.randomNormal([b * heads, n, d]);
        const scale = 1 / Math.sqrt(d);
        return {
          make: () => tf.tidy(() => tf.matMul(tf.softmax(tf.mul(tf.matMul(q, k, false, true), scale)), v)),
          free: () => [q, k, v].forEach((t) => t.dispose()),
        };
      },
    });
  }
  {
    const h = side(64);
    const [b, c, g] = [2, 320, 32];
    list.push({
      op: 'groupnorm',
      shape: `${b}x${c}x${h}x${h} g${g}`,
      bytes: 3 * b * c * h * h * 4,
      ours: async (rt) => {
        const x = rt.upload(rand(b * c * h * h, 10), [b, c, h, h]);
        const w = rt.upload(rand(c, 11), [c]);
        const bias = rt.upload(rand(c, 12), [c]);
        return { step: () => groupNorm(x, w, bias, { groups: g, eps: 1e-5 }), free: () => [x, w, bias].forEach((t) => t.dispose()) };
      },
      peer: (tf) => {
        const x = tf.randomNormal([b, g, (c / g) * h * h]);
        const w = tf.randomNormal([1, g, (c / g) * h * h]);
        return {
          make: () =>
            tf.tidy(() => {
              const { mean, variance } = tf.moments(x, [2], true);
              return tf.mul(tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, tf.scalar(1e-5)))), w);
            }),
          free: () => [x, w].forEach((t) => t.dispose()),
        };
      },
    });
  }
  // GroupNorm's two paths forced on the U-Net's 320 × 64² rows (40 960 elements) and the VAE's
  // 128 × 512² rows (1 Mi): where one workgroup per row stops paying for its saved dispatch.
  for (const [hw, c, b, label] of [[64, 320, 2, 'down0'], [512, 128, 1, 'vae']] as const) {
    const h = side(hw);
    for (const path of ['single', 'split'] as const) {
      list.push({
        op: 'groupnorm',
        shape: `${b}x${c}x${h}x${h} g32 ${path} (${label})`,
        bytes: 3 * b * c * h * h * 4,
        ours: async (rt) => {
          const x = rt.upload(rand(b * c * h * h, 10), [b, c, h, h]);
          const w = rt.upload(rand(c, 11), [c]);
          const bias = rt.upload(rand(c, 12), [c]);
          return { step: () => groupNorm(x, w, bias, { groups: 32, eps: 1e-5, act: 'silu', path }), free: () => [x, w, bias].forEach((t) => t.dispose()) };
        },
      });
    }
  }
  for (const n0 of [1024, 2048, 4096]) {
    const n = Math.max(64, Math.round(n0 * Math.cbrt(scale) / 16) * 16);
    list.push({
      op: 'matmul',
      shape: `${n}x${n}x${n}`,
      flops: 2 * n * n * n,
      ours: async (rt) => {
        const a = rt.upload(rand(n * n, 13), [n, n]);
        const b = rt.upload(rand(n * n, 14), [n, n]);
        return { step: () => matmul(a, b), free: () => [a, b].forEach((t) => t.dispose()) };
      },
      peer: (tf) => {
        const a = tf.randomNormal([n, n]);
        const b = tf.randomNormal([n, n]);
        return { make: () => tf.matMul(a, b), free: () => [a, b].forEach((t) => t.dispose()) };
      },
    });
  }
  return list;
}

function fmt(v: number | null, digits = 1): string {
  return v === null ? '-' : v.toFixed(digits);
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const rt = await Runtime.create();
  const a = rt.adapterInfo;
  console.log(`adapter: ${a.description} (${a.vendor} ${a.architecture}), ${a.host}/${a.backend}; features: ${[...rt.features].sort().join(', ')}`);
  const fma = await probeFma(rt);
  const copy = await probeCopy(rt);
  console.log(`measured peak: FMA ${fma.toFixed(0)} GFLOP/s (fp32), copy ${copy.toFixed(1)} GB/s`);
  const tf = args.peer ? await loadPeer() : null;
  const rows: BenchRow[] = [];
  const header = ['op', 'shape', 'ms', 'GFLOP/s', 'GB/s', '% peak', 'peer ms', 'speed-up'];
  console.log(header.join('\t'));
  for (const c of cases(args.scale)) {
    if (args.only && !`${c.op} ${c.shape}`.includes(args.only)) continue;
    const ours = await c.ours(rt);
    const ms = await time(rt, ours.step, args.iters);
    ours.free();
    let peerMs: number | null = null;
    if (tf && c.peer) {
      try {
        const p = c.peer(tf);
        peerMs = await timePeer(tf, p.make, args.iters);
        p.free();
      } catch (e) {
        console.error(`peer failed on ${c.op} ${c.shape}: ${(e as Error).message.split('\n')[0]}`);
      }
    }
    const gflops = c.flops ? c.flops / (ms * 1e6) : null;
    const gbps = c.bytes ? c.bytes / (ms * 1e6) : null;
    const peakPct = gflops !== null ? (100 * gflops) / fma : gbps !== null ? (100 * gbps) / copy : null;
    const row: BenchRow = { op: c.op, shape: c.shape, ms, gflops, gbps, peakPct, peerMs, speedup: peerMs === null ? null : peerMs / ms };
    rows.push(row);
    console.log([row.op, row.shape, fmt(ms, 3), fmt(gflops), fmt(gbps), fmt(peakPct), fmt(peerMs, 3), fmt(row.speedup, 2)].join('\t'));
  }
  const slug = (a.description || a.vendor || 'adapter').toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '').slice(0, 60);
  mkdirSync(args.out, { recursive: true });
  const file = join(args.out, `kernels-${slug}.json`);
  const report = {
    adapter: a,
    features: [...rt.features].sort(),
    date: new Date().toISOString(),
    scale: args.scale,
    peak: { fmaGflops: fma, copyGbps: copy },
    peer: tf ? `@tensorflow/tfjs-backend-webgpu ${tf.getBackend()}` : null,
    results: rows,
  };
  writeFileSync(file, `${JSON.stringify(report, null, 2)}\n`);
  console.log(`wrote ${file}`);
  await rt.close();
  process.exit(0);
}

main().catch((e: unknown) => {
  console.error(`bench: ${(e as Error).stack ?? e}`);
  process.exit(1);
});
