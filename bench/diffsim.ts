// DiffSim pair benchmark on full-size SD1.5-shaped models with random weights: one pair of S×S
// images (default 512) scored as the metric does it, with the official defaults (DiffSim-S, up block
// 1, layer 0 → up_blocks.1.attentions.2.transformer_blocks.0.attn1, t = 401, CFG batch 2, early
// stop after the hooked attn1). Stages, each timed on its own (GPU included) with the host time spent
// recording it (the JS cost, GPU waits excluded, as bench/dispatch.ts measures it):
//   text      CLIP text encoder on the CFG batch [negative prompt, prompt] (2×77 tokens): once per
//             metric (its states are cached), so it is not part of a pair
//   vae       VAE encoder of one image [1, 3, S, S] → posterior
//   unetStop  U-Net on [2, 4, S/8, S/8] up to the hooked attn1 (early stop), its q/k/v recorded
//   unetFull  the whole U-Net with the same q/k/v recorded (what the official code runs)
//   aas       the Aligned Attention Score of two embeddings (four attentions, sums, one read-back)
//   pair      embed(A) + embed(B) + compare: 2× (VAE, sample, add noise, U-Net stopped) + AAS
// FLOPs are counted by the GEMM, convolution and attention launchers from their shapes (2 per
// multiply-add: GEMM 2·M·N·K, convolution 2·Cout·OH·OW·Cin·KH·KW per image, attention
// 4·Nq·Nk·D per batch element and head); norms and elementwise ops are not counted.
// Writes a table to stdout and bench/results/diffsim-<adapter>-<S>[-f16].json; `--torch-json FILE`
// merges the PyTorch run of bench/torch_diffsim.py (same shapes) into the JSON and the table.
//
//   node build/bench/diffsim.js [--size S] [--weights f32|f16] [--activations f32|f16] [--iters N] [--out DIR]
//                               [--torch-json FILE] [--no-full] [--tensor-cores off|auto|on|emulate] [--profile] [--stages text,vae,unetStop,…]
// --profile: after each stage's timed runs, one more run with every dispatch timed (GPU timestamps,
// src/gpu/profile.ts): tables by kernel, block and module, and bench/results/profile-<adapter>-<S>….json
// (one JSON line per stage).
// (--tensor-cores default off: the SIMT kernels; the file name gains -tc when subgroup matrices ran.)

import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Runtime, TENSOR_CORE_MODES, type TensorCoreMode } from '../src/gpu/runtime.js';
import type { WeightPrecision } from '../src/nn/weights.js';
import type { ActivationDType } from '../src/kernels/common.js';
import { formatProfile, profileStage, type StageProfile } from '../src/gpu/profile.js';
import { pixels, randomDiffSim, ROOT as root } from './sd15-random.js';

function parse(argv: string[]) {
  const a = { size: 512, weights: 'f32' as WeightPrecision, iters: 3, out: join(root, 'bench', 'results'), torchJson: '', full: true, profile: false, stages: null as Set<string> | null, tensorCores: 'off' as TensorCoreMode, activations: 'f32' as ActivationDType };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i];
    if (k === '--size') a.size = Number(argv[++i]);
    else if (k === '--iters') a.iters = Number(argv[++i]);
    else if (k === '--out') a.out = argv[++i]!;
    else if (k === '--torch-json') a.torchJson = argv[++i]!;
    else if (k === '--no-full') a.full = false;
    else if (k === '--profile') a.profile = true;
    else if (k === '--stages') a.stages = new Set(argv[++i]!.split(','));
    else if (k === '--tensor-cores') {
      const m = argv[++i] as TensorCoreMode;
      if (!TENSOR_CORE_MODES.includes(m)) throw new Error(`--tensor-cores must be one of ${TENSOR_CORE_MODES.join(', ')}, got ${m}`);
      a.tensorCores = m;
    }
    else if (k === '--weights' || k === '--activations') {
      const w = argv[++i];
      if (w !== 'f32' && w !== 'f16') throw new Error(`${k} must be f32 or f16, got ${w}`);
      if (k === '--weights') a.weights = w;
      else a.activations = w;
    } else throw new Error(`unknown argument ${k}`);
  }
  if (!Number.isInteger(a.size) || a.size < 8 || a.size % 8 !== 0) throw new Error(`--size must be a multiple of 8, got ${a.size}`);
  if (!Number.isInteger(a.iters) || a.iters < (a.profile ? 0 : 1)) throw new Error(`--iters must be ≥ 1 (≥ 0 with --profile: a cold profile only), got ${a.iters}`);
  return a;
}

interface Stage {
  /** Wall time per run, recording and GPU included (mean over the timed runs). */
  ms: number;
  /** Host time spent recording one run (best of the runs), GPU waits excluded. */
  jsMs: number;
  dispatches: number;
  flops: number;
  /** flops / ms, in GFLOP/s. */
  gflops: number;
}

/** Runs `fn` once to warm up (kernels built, pool filled), then `iters` times, waiting for the GPU
 *  after each. `fn` records synchronously and may return a promise for its read-back: the host
 *  time until it returns is its recording time. */
async function measure(rt: Runtime, iters: number, fn: () => Promise<unknown> | unknown): Promise<Stage> {
  if (iters === 0) return { ms: NaN, jsMs: NaN, dispatches: 0, flops: 0, gflops: NaN }; // --profile --iters 0: the profile only
  await fn();
  await rt.sync();
  let total = 0;
  let js = Infinity;
  let dispatches = 0;
  let flops = 0;
  for (let i = 0; i < iters; i++) {
    const d0 = rt.dispatchCount;
    const f0 = rt.flopCount;
    const t0 = performance.now();
    const pending = fn();
    const t1 = performance.now();
    await pending;
    await rt.sync();
    total += performance.now() - t0;
    js = Math.min(js, t1 - t0);
    dispatches = rt.dispatchCount - d0;
    flops = rt.flopCount - f0;
  }
  const ms = total / iters;
  return { ms, jsMs: js, dispatches, flops, gflops: flops / ms / 1e6 };
}

interface TorchRun {
  stages?: Record<string, number>;
  pair_ms?: number;
  pair_full_ms?: number;
  peak_bytes?: number;
}

async function main(): Promise<void> {
  const a = parse(process.argv.slice(2));
  const rt = await Runtime.create({ tensorCores: a.tensorCores });
  const desc = rt.adapterInfo.description || 'adapter';
  const S = a.size;
  const lat = S / 8;
  const sm = rt.subgroupMatrix;
  const tc = sm ? `tensor cores ${sm.M}x${sm.N}x${sm.K} (${sm.syntax}, mode ${rt.tensorCores})` : 'no tensor cores';
  console.log(`adapter: ${desc}; DiffSim pair at ${S}×${S} (latent ${lat}×${lat}), weights ${a.weights}, activations ${a.activations}, ${tc}, ${a.iters} timed runs per stage`);

  const { metric, unet, vae, textEncoder, tokenizer, weightsBytes, dispose } = await randomDiffSim(rt, S, a.weights, a.activations);
  const s = metric.settings;
  const pxA = pixels(3 * S * S, 1);
  const pxB = pixels(3 * S * S, 2);
  const stages: Record<string, Stage> = {};
  const profiles: StageProfile[] = [];
  const profile = async (name: string, fn: () => unknown) => {
    if (!a.profile) return;
    const p = await profileStage(rt, name, fn);
    profiles.push(p);
    console.log(`\n${formatProfile(p, 12)}\n`);
  };
  const log = (name: string, st: Stage) => console.log(`  ${name.padEnd(9)} ${st.ms.toFixed(1).padStart(10)} ms  ${st.jsMs.toFixed(2).padStart(8)} ms JS  ${String(st.dispatches).padStart(5)} dispatches  ${(st.flops / 1e9).toFixed(1).padStart(8)} GFLOP  ${st.gflops.toFixed(1).padStart(8)} GFLOP/s`);

  // Text: once per metric.
  const ids = Int32Array.from([s.negativePrompt, s.prompt].flatMap((p) => tokenizer.encode(p)));
  const textPass = () => {
    const o = textEncoder.forward(ids, 2);
    o.lastHiddenState!.dispose();
    o.poolerOutput?.dispose();
    o.taps.dispose();
  };
  const want = (name: string) => !a.stages || a.stages.has(name);
  const slug = desc.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '').slice(0, 40);
  const suffix = `${S}${a.weights === 'f16' ? '-f16' : ''}${a.activations === 'f16' ? '-f16act' : ''}${sm ? '-tc' : ''}`;
  const writeProfiles = (date: string) => {
    if (!profiles.length) return;
    mkdirSync(a.out, { recursive: true });
    const pfile = join(a.out, `profile-${slug}-${suffix}.json`);
    writeFileSync(pfile, profiles.map((p) => JSON.stringify({ ...p, date, size: S, weights: a.weights, activations: a.activations })).join('\n') + '\n');
    console.log(`wrote ${pfile}`);
  };
  if (want('text')) {
    stages.text = await measure(rt, a.iters, textPass);
    log('text', stages.text);
    await profile('text', textPass);
  }
  const text = metric.textConditioning().states; // cached from here on

  const img = rt.upload(pxA, [1, 3, S, S]);
  const vaePass = () => {
    const o = vae.encode(img);
    for (const x of Object.values(o.posterior!)) x.dispose();
    o.taps.dispose();
  };
  if (want('vae')) {
    stages.vae = await measure(rt, a.iters, vaePass);
    log('vae', stages.vae);
    await profile('vae', vaePass);
  }
  img.dispose();

  const sample = rt.upload(pixels(2 * 4 * lat * lat, 3), [2, 4, lat, lat]);
  const capture = [`${s.module}.to_q:out`, `${s.module}.to_k:out`, `${s.module}.to_v:out`];
  const unetPass = (stop: boolean) => () => {
    const o = unet.forward(sample, s.t, text, { capture, ...(stop ? { stopAfter: s.module } : {}) });
    o.sample?.dispose();
    o.taps.dispose();
  };
  if (want('unetStop')) {
    stages.unetStop = await measure(rt, a.iters, unetPass(true));
    log('unetStop', stages.unetStop);
    await profile('unetStop', unetPass(true));
  }
  if (a.full && want('unetFull')) {
    stages.unetFull = await measure(rt, a.iters, unetPass(false));
    log('unetFull', stages.unetFull);
    await profile('unetFull', unetPass(false));
  }
  sample.dispose();
  if (!want('aas') || !want('pair')) {
    // A partial run (--stages): the profiles only.
    writeProfiles(new Date().toISOString());
    dispose();
    await rt.close();
    process.exit(0);
  }

  const ea = metric.embed(null as never, 'A', { processed: pxA });
  const eb = metric.embed(null as never, 'B', { processed: pxB });
  let score = NaN;
  stages.aas = await measure(rt, a.iters, () => metric.compare(ea, eb).then((v) => (score = v)));
  log('aas', stages.aas);
  ea.dispose();
  eb.dispose();

  // The pair, from a trimmed pool: its peak is the weights plus what one pair needs.
  await rt.trim();
  rt.resetPeak();
  const pairPass = async () => {
    const x = metric.embed(null as never, 'A', { processed: pxA });
    const y = metric.embed(null as never, 'B', { processed: pxB });
    try {
      return await metric.compare(x, y);
    } finally {
      x.dispose();
      y.dispose();
    }
  };
  stages.pair = await measure(rt, a.iters, pairPass);
  const peakGpuBytes = rt.memory().peakAllocatedBytes;
  log('pair', stages.pair);
  await profile('pair', pairPass);

  const mib = (b: number) => (b / 2 ** 20).toFixed(0);
  const result: Record<string, unknown> = {
    adapter: desc,
    adapterInfo: rt.adapterInfo,
    features: [...rt.features].sort(),
    date: new Date().toISOString(),
    size: S,
    latent: lat,
    weights: a.weights,
    activations: a.activations,
    tensorCores: { mode: rt.tensorCores, subgroupMatrix: sm },
    iters: a.iters,
    module: s.module,
    timestep: s.t,
    score,
    pairMs: stages.pair.ms,
    dispatchesPerPair: stages.pair.dispatches,
    jsMsPerPair: stages.pair.jsMs,
    pairGflops: stages.pair.flops / 1e9,
    achievedGflopsPerS: stages.pair.gflops,
    peakGpuBytes,
    weightsBytes,
    textMsPerMetric: stages.text.ms,
    note: 'pairMs = 2× (VAE encode + U-Net stopped after the hooked attn1) + AAS; the text encoder runs once per metric (cached) and is reported as stages.text',
    stages,
  };
  let torch: { fp32?: TorchRun; fp16?: TorchRun } | null = null;
  if (a.torchJson) {
    if (!existsSync(a.torchJson)) console.log(`(no PyTorch results at ${a.torchJson})`);
    else {
      torch = JSON.parse(readFileSync(a.torchJson, 'utf8')) as { fp32?: TorchRun; fp16?: TorchRun };
      Object.assign(result, {
        torchFp32PairMs: torch.fp32?.pair_ms ?? null,
        torchFp16PairMs: torch.fp16?.pair_ms ?? null,
        torchFp32PairFullMs: torch.fp32?.pair_full_ms ?? null,
        torchFp16PairFullMs: torch.fp16?.pair_full_ms ?? null,
        torch,
      });
    }
  }

  console.log(`\n| ${desc} | ${S}² ${a.weights} weights, ${a.activations} activations, ${tc} |`);
  console.log('|---|---|');
  console.log(`| pair (2× VAE + 2× U-Net stopped + AAS) | ${stages.pair.ms.toFixed(1)} ms |`);
  console.log(`| dispatches per pair | ${stages.pair.dispatches} |`);
  console.log(`| JS (recording) per pair | ${stages.pair.jsMs.toFixed(1)} ms |`);
  console.log(`| FLOPs per pair / achieved | ${(stages.pair.flops / 1e9).toFixed(1)} GFLOP / ${stages.pair.gflops >= 1000 ? `${(stages.pair.gflops / 1000).toFixed(2)} TFLOP/s` : `${stages.pair.gflops.toFixed(1)} GFLOP/s`} |`);
  console.log(`| peak GPU memory (weights) | ${mib(peakGpuBytes)} MiB (${mib(weightsBytes)} MiB) |`);
  console.log(`| text encoder (once per metric) | ${stages.text.ms.toFixed(1)} ms |`);
  if (torch) {
    const cell = (r?: TorchRun, k: 'pair_ms' | 'pair_full_ms' = 'pair_ms') => (r?.[k] !== undefined ? `${r[k]!.toFixed(1)} ms` : 'n/a');
    console.log(`\n| stage | ours (${a.weights} weights) | torch fp32 | torch fp16 |`);
    console.log('|---|---|---|---|');
    for (const [name, st] of Object.entries(stages)) {
      const t32 = torch.fp32?.stages?.[name];
      const t16 = torch.fp16?.stages?.[name];
      console.log(`| ${name} | ${st.ms.toFixed(1)} ms | ${t32 !== undefined ? `${t32.toFixed(1)} ms` : 'n/a'} | ${t16 !== undefined ? `${t16.toFixed(1)} ms` : 'n/a'} |`);
    }
    const fullSum = stages.unetFull ? `${((stages.vae.ms + stages.unetFull.ms) * 2 + stages.aas.ms).toFixed(1)} ms (sum of stages)` : 'n/a (--no-full)';
    console.log(`| pair, official full U-Net | ${fullSum} | ${cell(torch.fp32, 'pair_full_ms')} | ${cell(torch.fp16, 'pair_full_ms')} |`);
  }
  mkdirSync(a.out, { recursive: true });
  const file = join(a.out, `diffsim-${slug}-${suffix}.json`);
  writeFileSync(file, `${JSON.stringify(result, null, 2)}\n`);
  console.log(`wrote ${file}`);
  writeProfiles(String(result.date));
  dispose();
  await rt.close();
  process.exit(0);
}

main().catch((e: unknown) => {
  console.error(`diffsim bench: ${(e as Error).stack ?? e}`);
  process.exit(1);
});
