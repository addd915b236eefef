// Full-size SD1.5 benchmark with random weights: U-Net at a latent of S×S (default 64, i.e. 512²
// images), batch 2 (the classifier-free-guidance batch), full pass and stopped right after DiffSim's
// default hooked layer; VAE encoder at 8S×8S; CLIP text encoder on 2×77 tokens. Reports time and
// peak GPU memory and the dispatch count of a pass; writes bench/results/sd15-<adapter>.json.
// Ops are recorded synchronously and buffers are allocated when recorded, so the peak memory of a
// pass is known once it is recorded (`--record-only` skips waiting for a slow adapter to run it).
//
//   node build/bench/sd15.js [--latent S] [--batch B] [--iters N] [--out DIR] [--parts unet,text,vae]
//                            [--weights f32|f16] [--activations f32|f16] [--record-only]

import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Runtime } from '../src/gpu/runtime.js';
import { fillUniform } from '../src/kernels/elementwise.js';
import { WeightStore, type WeightPrecision } from '../src/nn/weights.js';
import type { ActivationDType } from '../src/kernels/common.js';
import { UNet2DConditionModel, type UNetConfig } from '../src/models/unet.js';
import { VaeEncoder, type VaeConfig } from '../src/models/vae.js';
import { ClipTextModel, type ClipTextConfig } from '../src/models/clip-text.js';
import { PNDMScheduler, type SchedulerConfig } from '../src/models/scheduler.js';
import { DiffSim } from '../src/diffsim/core.js';
import { resolveHook } from '../src/diffsim/hook.js';
import { blockOf, DIFFSIM_DEFAULTS } from '../src/diffsim/settings.js';

const here = dirname(fileURLToPath(import.meta.url));
const manifests = join(here, '..', '..', 'test', 'fixtures', 'manifests');

function parse(argv: string[]) {
  const a = { latent: 64, batch: 2, iters: 5, out: join(here, '..', '..', 'bench', 'results'), parts: ['unet', 'text', 'vae'], weights: 'f32' as WeightPrecision, activations: 'f32' as ActivationDType, recordOnly: false };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i];
    if (k === '--latent') a.latent = Number(argv[++i]);
    else if (k === '--batch') a.batch = Number(argv[++i]);
    else if (k === '--iters') a.iters = Number(argv[++i]);
    else if (k === '--out') a.out = argv[++i]!;
    else if (k === '--parts') a.parts = argv[++i]!.split(',');
    else if (k === '--weights' || k === '--activations') {
      const w = argv[++i];
      if (w !== 'f32' && w !== 'f16') throw new Error(`${k} must be f32 or f16, got ${w}`);
      if (k === '--weights') a.weights = w;
      else a.activations = w;
    } else if (k === '--record-only') a.recordOnly = true;
    else throw new Error(`unknown argument ${k}`);
  }
  return a;
}

const config = <T>(name: string) => JSON.parse(readFileSync(join(manifests, `${name}.config.json`), 'utf8')) as T;

async function timeIt(rt: Runtime, iters: number, fn: () => void): Promise<{ ms: number; firstMs: number }> {
  let t0 = performance.now();
  fn();
  await rt.sync();
  const firstMs = performance.now() - t0;
  fn();
  await rt.sync();
  t0 = performance.now();
  for (let i = 0; i < iters; i++) fn();
  await rt.sync();
  return { ms: (performance.now() - t0) / iters, firstMs };
}

function writeResults(a: ReturnType<typeof parse>, desc: string, results: Record<string, unknown>): void {
  const slug = desc.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '').slice(0, 40);
  mkdirSync(a.out, { recursive: true });
  const file = join(a.out, `sd15-${slug}-${a.parts.join('-')}-latent${a.latent}${a.weights === 'f16' ? '-f16' : ''}${a.activations === 'f16' ? '-f16act' : ''}.json`);
  writeFileSync(file, `${JSON.stringify(results, null, 2)}\n`);
  console.log(`wrote ${file}`);
}

async function main(): Promise<void> {
  const a = parse(process.argv.slice(2));
  const rt = await Runtime.create();
  const desc = rt.adapterInfo.description;
  console.log(`adapter: ${desc}; latent ${a.latent}×${a.latent}, batch ${a.batch}`);
  const results: Record<string, unknown> = { adapter: rt.adapterInfo, date: new Date().toISOString(), latent: a.latent, batch: a.batch, iters: a.iters };
  const mib = (b: number) => Math.round(b / 2 ** 20);

  if (a.parts.includes('unet')) {
    const store = new WeightStore();
    const unet = new UNet2DConditionModel(store, config<UNetConfig>('sd15-unet'), { activations: a.activations });
    await store.initRandom(rt, 1, { weights: a.weights });
    // The default DiffSim hook and timestep (up_blocks.1.attentions.2.transformer_blocks.0.attn1, t = 401).
    const DIFFSIM_LAYER = resolveHook(unet, blockOf(DIFFSIM_DEFAULTS.block), DIFFSIM_DEFAULTS.layer, 'attn1').module;
    const t = DiffSim.timestepFor(new PNDMScheduler(config<SchedulerConfig>('sd15-scheduler')), DIFFSIM_DEFAULTS);
    await rt.sync();
    const weightsBytes = rt.memory().allocatedBytes;
    const sample = rt.empty([a.batch, 4, a.latent, a.latent]);
    fillUniform(sample, 7, 1);
    const ehs = rt.empty([a.batch, 77, 768]);
    fillUniform(ehs, 8, 1);
    const pass = (stopAfter?: string) => {
      const out = unet.forward(sample, t, ehs, stopAfter ? { stopAfter } : {});
      out.sample?.dispose();
      out.taps.dispose();
    };
    // One recorded pass of each kind: dispatches and peak memory (known at record time).
    const recorded = async (stopAfter?: string) => {
      await rt.trim(); // the peak counts this pass's buffers, not a pool left by the previous one
      rt.resetPeak();
      const d0 = rt.dispatchCount;
      const t0 = performance.now();
      pass(stopAfter);
      return { dispatches: rt.dispatchCount - d0, recordMs: performance.now() - t0, peakMiB: mib(rt.memory().peakAllocatedBytes) };
    };
    // The stopped pass first: only the weights' initialisation is waited for before it.
    const stoppedRec = await recorded(DIFFSIM_LAYER);
    const fullRec = await recorded();
    const unetResult: Record<string, unknown> = {
      parameters: store.parameterCount(),
      weights: a.weights,
      activations: a.activations,
      weightsMiB: mib(weightsBytes),
      fullDispatches: fullRec.dispatches,
      fullRecordMs: fullRec.recordMs,
      fullPeakMiB: fullRec.peakMiB,
      stoppedAfter: DIFFSIM_LAYER,
      stoppedDispatches: stoppedRec.dispatches,
      stoppedPeakMiB: stoppedRec.peakMiB,
    };
    if (!a.recordOnly) {
      const full = await timeIt(rt, a.iters, () => pass());
      const stopped = await timeIt(rt, a.iters, () => pass(DIFFSIM_LAYER));
      Object.assign(unetResult, { fullMs: full.ms, fullFirstMs: full.firstMs, stoppedMs: stopped.ms });
    }
    results.unet = unetResult;
    console.log(JSON.stringify(results.unet, null, 1));
    store.dispose();
    sample.dispose();
    ehs.dispose();
    // Record-only: the adapter may need minutes to run what was recorded; the numbers are in.
    if (!a.recordOnly) await rt.trim();
  }

  if (a.parts.includes('text') && !a.recordOnly) {
    const s = new WeightStore();
    const text = new ClipTextModel(s, config<ClipTextConfig>('sd15-text-encoder'));
    await s.initRandom(rt, 2);
    const ids = Int32Array.from({ length: 2 * 77 }, (_, i) => (i % 77 === 0 ? 49406 : i % 77 < 6 ? 320 + i : 49407));
    const t = await timeIt(rt, a.iters, () => {
      const o = text.forward(ids, 2);
      o.lastHiddenState!.dispose();
      o.poolerOutput!.dispose();
      o.taps.dispose();
    });
    results.textEncoder = { parameters: s.parameterCount(), ms: t.ms, firstMs: t.firstMs };
    console.log(JSON.stringify(results.textEncoder));
    s.dispose();
    await rt.trim();
  }

  if (a.parts.includes('vae')) {
    const s = new WeightStore();
    const vae = new VaeEncoder(s, config<VaeConfig>('sd15-vae'), { activations: a.activations });
    await s.initRandom(rt, 3);
    const img = rt.empty([1, 3, a.latent * 8, a.latent * 8]);
    fillUniform(img, 9, 1);
    rt.resetPeak();
    const encode = () => {
      const o = vae.encode(img);
      for (const x of Object.values(o.posterior!)) x.dispose();
      o.taps.dispose();
    };
    const t = a.recordOnly ? (encode(), null) : await timeIt(rt, a.iters, encode);
    results.vaeEncoder = { parameters: s.parameterCount(), image: a.latent * 8, activations: a.activations, ...(t ? { ms: t.ms, firstMs: t.firstMs } : {}), peakMiB: mib(rt.memory().peakAllocatedBytes) };
    console.log(JSON.stringify(results.vaeEncoder));
    img.dispose();
    s.dispose();
  }
  writeResults(a, desc, results);
  if (a.recordOnly) {
    // The adapter may need minutes to run what was recorded; the numbers are in.
    rt.destroy();
    process.exit(0);
  }
  await rt.close();
  process.exit(0);
}

main().catch((e: unknown) => {
  console.error(`sd15 bench: ${(e as Error).stack ?? e}`);
  process.exit(1);
});
