// LPIPS and VGG Gram pair benchmark on full-size backbones with random weights: torchvision VGG16
// (LPIPS vgg, 64/128/256/512/512), AlexNet (LPIPS alex, 64/192/384/256/256) and VGG19 up to conv5_1
// (Gram), widths from the manifests of the real checkpoints. Timed per stage on one S×S image (GPU
// included): `embed` = one image's pass (LPIPS: the five normalised slices; Gram: conv5_1 and its
// Gram matrix read back), `compare` = LPIPS' heads and means on two embeddings (Gram: a host cosine,
// not timed), `pair` = 2 × embed + compare.
//
//   node build/bench/perceptual.js [--size S] [--weights f32|f16] [--iters N]

import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import { Runtime, tidy, type Tensor } from '../src/gpu/runtime.js';
import type { WeightPrecision } from '../src/nn/weights.js';
import { WeightStore } from '../src/nn/weights.js';
import { convIndices, featureOps, gramForward, GRAM_LAYER, LpipsHeads, LpipsModel, TorchvisionFeatures, type TorchvisionArch } from '../src/models/vgg.js';
import { pixels, ROOT } from './sd15-random.js';

function parse(argv: string[]) {
  const a = { size: 512, weights: 'f32' as WeightPrecision, iters: 3 };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i];
    if (k === '--size') a.size = Number(argv[++i]);
    else if (k === '--iters') a.iters = Number(argv[++i]);
    else if (k === '--weights') a.weights = argv[++i] as WeightPrecision;
    else throw new Error(`perceptual bench: unknown argument ${k}`);
  }
  if (!Number.isInteger(a.size) || a.size < 32) throw new Error(`--size must be an integer ≥ 32, got ${a.size}`);
  return a;
}

const manifest = (name: string) => (JSON.parse(readFileSync(join(ROOT, 'test', 'fixtures', 'manifests', `${name}.json`), 'utf8')) as { tensors: Record<string, { shape: number[] }> }).tensors;

async function features(rt: Runtime, arch: TorchvisionArch, upTo: number | undefined, weights: WeightPrecision): Promise<TorchvisionFeatures> {
  const m = manifest(`torchvision-${arch}-features`);
  const f = new TorchvisionFeatures(new WeightStore(), arch, convIndices(arch).filter((i) => upTo === undefined || i <= upTo).map((i) => m[`features.${i}.weight`]!.shape[0]!), upTo ?? featureOps(arch).length - 1);
  await f.store.initRandom(rt, 1, { weights });
  return f;
}

async function timed(rt: Runtime, iters: number, fn: () => Promise<void>): Promise<number> {
  await fn();
  await rt.sync();
  const t0 = performance.now();
  for (let i = 0; i < iters; i++) await fn();
  await rt.sync();
  return (performance.now() - t0) / iters;
}

const a = parse(process.argv.slice(2));
const rt = await Runtime.create();
const S = a.size;
console.log(`adapter: ${rt.adapterInfo.description || 'adapter'}; ${S}×${S}, weights ${a.weights}, ${a.iters} timed runs`);
const x = rt.upload(pixels(3 * S * S, 7), [1, 3, S, S]).keep();
const y = rt.upload(pixels(3 * S * S, 8), [1, 3, S, S]).keep();
for (const net of ['vgg', 'alex'] as const) {
  const arch = net === 'vgg' ? 'vgg16' : 'alexnet';
  const f = await features(rt, arch, undefined, a.weights);
  const m = manifest(`lpips-v0.1-${net}`);
  const heads = new LpipsHeads([0, 1, 2, 3, 4].map((k) => m[`lin${k}.model.1.weight`]!.shape[1]!));
  await heads.store.initRandom(rt, 2, { weights: a.weights });
  const model = new LpipsModel(rt, net, f, heads);
  const embed = (img: Tensor) => tidy(() => model.forward(img).normed);
  const ea = embed(x).map((t) => t.keep());
  const eb = embed(y).map((t) => t.keep());
  const tEmbed = await timed(rt, a.iters, async () => {
    for (const t of embed(x)) t.dispose();
  });
  const tCompare = await timed(rt, a.iters, async () => {
    await model.distance(ea, eb);
  });
  console.log(`lpips ${net}: embed ${tEmbed.toFixed(1)} ms, compare ${tCompare.toFixed(1)} ms, pair ${(2 * tEmbed + tCompare).toFixed(1)} ms`);
  for (const t of [...ea, ...eb]) t.dispose();
  model.dispose();
}
const g = await features(rt, 'vgg19', GRAM_LAYER, a.weights);
const tGram = await timed(rt, a.iters, async () => {
  const r = tidy(() => gramForward(g, x));
  await r.gram.read();
  r.feature.dispose();
  r.gram.dispose();
});
console.log(`gram: embed ${tGram.toFixed(1)} ms, pair ${(2 * tGram).toFixed(1)} ms (the cosine is on the host)`);
g.store.dispose();
x.dispose();
y.dispose();
await rt.close();
