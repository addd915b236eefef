// `diffsim parity` for a dit-tiny fixture folder: DiffSim on DiT (`diffsim/diffsim_dit.py`) against
// diffsim_dit.safetensors and scores.json, through the DiT loader and the DiffSimDiT metric, with
// the stored images, process_image tensors, latents and noise as inputs.
//
// The folder holds the tiny DiT in the official checkpoint layout (DiT-XL-2-tiny.safetensors, with
// its constructor arguments in the "config" metadata) and diffusers' conversion of it (diffusers/:
// transformer/, vae/, scheduler/). The official model is built from the checkpoint and the VAE from
// diffusers/vae. Every stored value is compared: the embeddings, every block's attention input and
// q/k/v of the first pass (step 600, image A), per step the timesteps and noisy latents, per step
// and layer q/k/v of A and B and the AAS values, the attention outputs stored for one layer, the
// diffusers-layout model's q/k/v (with diffusers' own timestep sinusoid), and every scalar of
// scores.json. The stored latents are the posterior samples of noise the fixture does not store:
// they are the passes' input, and are checked for consistency with our VAE posterior (the implied
// ε = (latents/0.18215 − mean)/std must look like a standard normal draw). The stored noise is input.

import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Runtime, Tensor } from '../gpu/runtime.js';
import { loadImage, type RgbImage } from '../io/image.js';
import { processImage } from '../io/preprocess.js';
import { localModelFiles } from '../io/local-files.js';
import { SafetensorsFile, rawToInt32 } from '../io/safetensors.js';
import { ditConfigFromDiffusers, type DiffusersDitConfig, type DitConfig } from '../models/dit.js';
import { loadDit, SD15_SCHEDULER_CONFIG, type LoadedDit } from '../models/load.js';
import { PNDMScheduler } from '../models/scheduler.js';
import { ditFromSource, vaeEncoderFromSource } from '../models/sources.js';
import type { VaeConfig } from '../models/vae.js';
import { DiffSimDiT, ditTimesteps } from '../diffsim/dit.js';
import type { DiffSimEmbedding } from '../diffsim/embedding.js';
import { F16_WEIGHTS_TOLERANCE, maxAbsError, toleranceFor, type FixtureIndex, type ParityRow, type ParitySettings } from './common.js';
import { Rows, splitHeadsHost } from './diffsim.js';

const ROLES = ['A', 'B'] as const;

async function read(t: Tensor): Promise<Float32Array> {
  return (await t.read()) as Float32Array;
}

/** Tolerance of a stored activation of the first pass: the fixtures README classes; the timestep
 *  sinusoid at t = 667 is compared at 1e-4 (one float32 ulp of a frequency, times t, moves sin/cos
 *  by up to ~8e-5: torch's vectorised exp and a correctly rounded one differ by an ulp at places). */
function activationTolerance(name: string): number {
  if (/t_freq$/.test(name)) return 1e-4;
  if (/^emb\.|^x_embedder:out$|^pos_embed$|attn:in$|attn\.[qkv]$|adaLN_modulation:out$/.test(name)) return 1e-5;
  return toleranceFor(name);
}

interface DitFileConfig {
  img_size: number;
  generator_seed: number;
  layers: number[];
  target_steps: number[];
  class_labels: number[];
  checkpoint: DitConfig;
  model: DitConfig;
}

export async function ditParity(rt: Runtime, dir: string, fixture: string, index: FixtureIndex, settings: ParitySettings): Promise<ParityRow[]> {
  const r = new Rows(fixture, settings.weights === 'f16');
  const folder = join(dir, fixture);
  const rel = `${fixture}/diffsim_dit.safetensors`;
  if (!index.files[rel]) {
    r.skip('diffsim_dit.safetensors', 'not in this fixture set');
    return r.rows;
  }
  const ref = await SafetensorsFile.open(join(dir, rel));
  const made: LoadedDit[] = [];
  const metrics: DiffSimDiT[] = [];
  try {
    const cfg = JSON.parse(ref.metadata.config ?? 'null') as DitFileConfig | null;
    if (!cfg) throw new Error(`${rel}: no "config" metadata`);
    const names = new Set(ref.names());
    const done = new Set<string>();
    const use = (n: string) => {
      done.add(n);
      return names.has(n);
    };
    const stored = async (n: string) => (await ref.readFloat32(n)).data;
    const f16 = settings.weights === 'f16';
    const tol = (t: number) => (f16 ? Math.max(t, F16_WEIGHTS_TOLERANCE) : t);
    const tensorRow = async (name: string, ours: Float32Array, shape: readonly number[], refName = name, t = activationTolerance(refName)) => {
      await r.tensor(name, ours, shape, ref, refName, t);
    };

    // The official model: the checkpoint with its own config metadata, built with learn_sigma as the
    // metric builds it (the final layer is not built either way), VAE from diffusers/vae.
    const ckptRel = Object.keys(index.files).find((f) => f.startsWith(`${fixture}/`) && !f.includes('/diffusers/') && f !== rel);
    if (!ckptRel) throw new Error(`${fixture}: no official-layout checkpoint listed in index.json`);
    const ckpt = await SafetensorsFile.open(join(dir, ckptRel));
    let official: LoadedDit;
    const vaeFolder = join(folder, 'diffusers', 'vae');
    try {
      const dit = await ditFromSource(rt, ckpt, cfg.model, { weights: settings.weights }, ckptRel);
      try {
        const vaeCfg = JSON.parse(await readFile(join(vaeFolder, 'config.json'), 'utf8')) as VaeConfig;
        const vaeFile = await SafetensorsFile.open(join(vaeFolder, 'diffusion_pytorch_model.safetensors'));
        try {
          official = { dit, vae: await vaeEncoderFromSource(rt, vaeFile, vaeCfg, { weights: settings.weights }), layout: { kind: 'official', file: ckptRel } };
        } finally {
          await vaeFile.close();
        }
      } catch (e) {
        dit.dispose();
        throw e;
      }
      made.push(official);
      // scores.json's checkpoint_keys_skipped_by_official_loader: the checkpoint keys whose shape differs
      // from a learn_sigma=False model's (the official loader's shape filter), computed from the file.
      const p = cfg.model.patch_size;
      const skippedKeys = ckpt.names().filter((k) => /^final_layer\.linear\./.test(k) && ckpt.info(k).shape[0] !== p * p * cfg.model.in_channels * (cfg.model.learn_sigma ? 2 : 1)).sort();
      r.values.set('checkpoint_keys_skipped_by_official_loader', JSON.stringify(skippedKeys));
    } finally {
      await ckpt.close();
    }
    const diffusersRoot = join(folder, 'diffusers');
    const diffusers = await loadDit(rt, await localModelFiles(diffusersRoot), { weights: settings.weights });
    made.push(diffusers);

    const imgs: Partial<Record<'A' | 'B', RgbImage>> = {};
    for (const x of ROLES) imgs[x] = await loadImage(join(folder, `image_${x}.png`));
    const processed: Record<string, Float32Array> = {};
    const latents: Record<string, Float32Array> = {};
    for (const x of ROLES) {
      if (use(`input.tensor_${x}`)) {
        processed[x] = await stored(`input.tensor_${x}`);
        const ours = processImage(imgs[x]!, cfg.img_size);
        const err = maxAbsError(ours, processed[x]!);
        r.rows.push({ fixture, name: `input.tensor_${x}`, err, tol: 2 / 255, kind: 'absolute', pass: err <= 2 / 255, note: 'process_image of the PNG' });
      }
      if (!use(`latents_${x}`)) throw new Error(`${rel}: no latents_${x}`);
      latents[x] = await stored(`latents_${x}`);
    }
    const shared = { seed: cfg.generator_seed, imageSize: cfg.img_size };
    const labels = cfg.class_labels;

    // The latents against our VAE posterior of the stored process_image tensor.
    {
      const probe = new DiffSimDiT(rt, official, { ...shared, step: cfg.target_steps[0]! }, { classLabel: labels[0]! });
      for (const x of ROLES) {
        const post = official.vae.encode(rt.upload(processed[x]!, [1, 3, cfg.img_size, cfg.img_size])).posterior!;
        const [mean, std] = [await read(post.mean), await read(post.std)];
        for (const t of Object.values(post)) t.dispose();
        const scale = official.vae.scalingFactor;
        const eps = latents[x]!.map((z, i) => (z / scale - mean[i]!) / std[i]!);
        let m = 0;
        let s2 = 0;
        let worst = 0;
        for (const e of eps) {
          m += e;
          s2 += e * e;
          worst = Math.max(worst, Number.isFinite(e) ? Math.abs(e) : Infinity);
        }
        m /= eps.length;
        const sd = Math.sqrt(s2 / eps.length - m * m);
        const ok = worst <= 6 && Math.abs(m) <= 0.2 && Math.abs(sd - 1) <= 0.2 && latents[x]!.length === probe.models.vae.config.latent_channels * probe.latentSize ** 2;
        r.rows.push({ fixture, name: `latents_${x}`, err: worst, tol: 6, kind: 'absolute', pass: ok, note: `implied posterior ε: max |ε| ${worst.toFixed(2)}, mean ${m.toFixed(3)}, std ${sd.toFixed(3)} (the fixture stores no VAE noise; the latents are the passes' input)` });
      }
    }

    if (use('scheduler.alphas_cumprod')) {
      const s = new PNDMScheduler({ ...SD15_SCHEDULER_CONFIG });
      const err = maxAbsError(s.alphasCumprod, await stored('scheduler.alphas_cumprod'));
      r.rows.push({ fixture, name: 'scheduler.alphas_cumprod', err, tol: 1e-6, kind: 'absolute', pass: err <= 1e-6, note: 'SD1.5 DDIM schedule (noising)' });
    }

    const layerOf = new Map<number, DiffSimDiT>();
    let firstDone = false;
    for (const step of cfg.target_steps) {
      const pre = `step${step}`;
      const ts = ditTimesteps(step, 'official');
      for (const [k, v] of [['t_noise', ts.tNoise], ['t_index', ts.tIndex], ['t_model', ts.tModel]] as const) {
        r.values.set(`dit.${pre}.${k}`, v);
        if (use(`${pre}.${k}`)) r.scalar(`${pre}.${k}`, v, rawToInt32(await ref.readRaw(`${pre}.${k}`))[0], 'exact');
      }
      const noise: Record<string, Float32Array> = {};
      for (const x of ROLES) {
        if (!use(`${pre}.noise_${x}`)) throw new Error(`${rel}: no ${pre}.noise_${x}`);
        noise[x] = await stored(`${pre}.noise_${x}`);
      }
      for (const layer of cfg.layers) {
        const lp = `${pre}.layer${layer}`;
        const metric = new DiffSimDiT(rt, official, { ...shared, step, layer }, { classLabel: labels[0]! });
        metrics.push(metric);
        layerOf.set(layer, metric);
        const emb: Partial<Record<'A' | 'B', DiffSimEmbedding>> = {};
        try {
          for (const x of ROLES) {
            // The first pass (step 600, image A) also records every block's attention input and q/k/v.
            const first = !firstDone && x === 'A';
            const taps = first ? official.dit.vocabulary.taps.filter((n) => names.has(n)) : [];
            const e = (emb[x] = metric.embed(imgs[x]!, x, { noise: { forward: noise[x]! }, latents: latents[x]!, keepIntermediates: true, taps }));
            if (first) {
              firstDone = true;
              for (const n of taps) {
                use(n);
                const own = { [`${metric.settings.module}.q`]: e.q, [`${metric.settings.module}.k`]: e.k, [`${metric.settings.module}.v`]: e.v }[n];
                const t = own ?? e.taps.get(n);
                if (!t) throw new Error(`tap ${n} was not recorded`);
                const qkv = /^blocks\.\d+\.attn\.[qkv]$/.test(n);
                const data = qkv ? splitHeadsHost(await read(t), t.shape, metric.settings.heads) : { data: await read(t), shape: t.shape };
                await tensorRow(n, data.data, data.shape);
              }
            }
            const im = e.intermediates!;
            if (layer === cfg.layers[0] && use(`${pre}.noisy_latents_${x}`)) {
              const ours = await read(im.noisyLatents);
              const err = maxAbsError(ours, await stored(`${pre}.noisy_latents_${x}`));
              const t = tol(1e-6);
              r.rows.push({ fixture, name: `${pre}.noisy_latents_${x}`, err, tol: t, kind: 'absolute', pass: err <= t, note: `add_noise at t = ${ts.tNoise}` });
            }
            for (const c of ['q', 'k', 'v'] as const) {
              const n = `${lp}.${c}_${x}`;
              if (!use(n)) continue;
              const t = e[c];
              const split = splitHeadsHost(await read(t), t.shape, metric.settings.heads);
              await tensorRow(n, split.data, split.shape, n, 1e-5);
            }
          }
          const out = metric.attentionOutputs(emb.A!, emb.B!);
          try {
            for (const [n, t] of [['attn_a_on_b', out.ab], ['attn_b_on_a', out.ba], ['self_attn_a', out.aa], ['self_attn_b', out.bb]] as const) {
              if (!use(`${lp}.${n}`)) continue;
              const split = splitHeadsHost(await read(t), t.shape, metric.settings.heads);
              await tensorRow(`${lp}.${n}`, split.data, split.shape, `${lp}.${n}`, 1e-4);
            }
          } finally {
            for (const t of Object.values(out)) t.dispose();
          }
          const sc = await metric.compareDetailed(emb.A!, emb.B!);
          const vals: Record<string, number> = { aas_ab_cos: sc.ab.cos, aas_ba_cos: sc.ba.cos, score_cos: sc.cosine, aas_ab_mse: sc.ab.mse, aas_ba_mse: sc.ba.mse, score_mse: sc.mse };
          for (const [k, v] of Object.entries(vals)) {
            r.values.set(`dit.${lp}.${k}`, v);
            if (use(`${lp}.${k}`)) r.scalar(`${lp}.${k}`, v, (await stored(`${lp}.${k}`))[0], k.endsWith('mse') ? 'mse' : 'cos');
          }
        } finally {
          for (const e of Object.values(emb)) e.dispose();
        }
      }
    }

    // diffusers' layout: the converted model on the first pass's input (step 600, image A), with
    // diffusers' own sinusoid, and (for scores.json) with the official one substituted.
    const step0 = cfg.target_steps[0]!;
    const noisyA = await stored(`step${step0}.noisy_latents_A`);
    const lat = latents.A!;
    const side = Math.round(Math.sqrt(lat.length / cfg.model.in_channels));
    const ts0 = ditTimesteps(step0, 'official');
    const y = Int32Array.from(labels);
    const pass = async (m: LoadedDit, caps: string[], timestepEmbedding?: 'official') => {
      const dit = timestepEmbedding ? await officialSinusoidView(rt, diffusersRoot, settings) : m.dit;
      try {
        const o = dit.forward(rt.upload(noisyA, [1, cfg.model.in_channels, side, side]), ts0.tModel, y, { capture: caps });
        const got = new Map<string, Float32Array>();
        for (const n of caps) got.set(n, await read(o.taps.get(n)));
        o.taps.dispose();
        o.hidden?.dispose();
        return got;
      } finally {
        if (timestepEmbedding) dit.dispose();
      }
    };
    const qkvNames = cfg.layers.flatMap((l) => ['q', 'k', 'v'].map((c) => `blocks.${l}.attn.${c}`));
    const caps = ['emb.t_freq', 'x_embedder:out', 'pos_embed', ...qkvNames];
    const ours = await pass(official, caps);
    const dif = await pass(diffusers, caps);
    const difOfficialSin = await pass(diffusers, qkvNames, 'official');
    const shapeQ = [2, side * side / cfg.model.patch_size ** 2, cfg.model.hidden_size];
    if (use('diffusers.t_freq')) {
      const f = dif.get('emb.t_freq')!;
      // diffusers broadcasts the timestep to the batch: the same row twice.
      const both = new Float32Array(f.length * 2);
      both.set(f);
      both.set(f, f.length);
      await tensorRow('diffusers.t_freq', both, [2, f.length], 'diffusers.t_freq', 1e-4);
    }
    for (const l of cfg.layers) {
      for (const c of ['q', 'k', 'v'] as const) {
        const n = `diffusers.step${step0}.layer${l}.${c}_A`;
        if (!use(n)) continue;
        const split = splitHeadsHost(dif.get(`blocks.${l}.attn.${c}`)!, shapeQ, cfg.model.num_heads);
        await tensorRow(n, split.data, split.shape, n, 1e-5);
      }
    }
    const maxDiff = (a: Float32Array, b: Float32Array) => maxAbsError(a, b);
    for (const l of cfg.layers) {
      for (const c of ['q', 'k', 'v'] as const) {
        r.values.set(`diffusers_vs_official.layer${l}.${c}`, maxDiff(dif.get(`blocks.${l}.attn.${c}`)!, ours.get(`blocks.${l}.attn.${c}`)!));
        r.values.set(`diffusers_vs_official.with_official_sinusoid.layer${l}.${c}`, maxDiff(difOfficialSin.get(`blocks.${l}.attn.${c}`)!, ours.get(`blocks.${l}.attn.${c}`)!));
      }
    }
    r.values.set('diffusers_vs_official.t_freq_max_abs_diff_vs_official', maxDiff(dif.get('emb.t_freq')!, ours.get('emb.t_freq')!));
    const sum = (m: Map<string, Float32Array>) => {
      const x = m.get('x_embedder:out')!;
      const p = m.get('pos_embed')!;
      return x.map((v, i) => v + p[i]!);
    };
    r.values.set('diffusers_vs_official.x_embed_plus_pos_max_abs_diff', maxDiff(sum(dif), sum(ours)));

    for (const n of names) if (!done.has(n)) r.rows.push({ fixture, name: n, err: Infinity, tol: 0, kind: 'exact', pass: false, note: 'stored, but not compared by this handler' });

    // scores.json: every value.
    const scores = JSON.parse(await readFile(join(folder, 'scores.json'), 'utf8')) as Record<string, unknown>;
    scoresJson(r, scores, cfg, diffusers);
    return r.rows;
  } catch (e) {
    r.error('diffsim_dit.safetensors', e);
    return r.rows;
  } finally {
    for (const m of made) {
      m.dit.dispose();
      m.vae.store.dispose();
    }
    await ref.close();
  }
}

/** The diffusers-layout weights with the official timestep sinusoid (the fixture's
 *  "with_official_sinusoid" comparison). */
async function officialSinusoidView(rt: Runtime, root: string, settings: ParitySettings) {
  const files = await localModelFiles(root);
  const config = ditConfigFromDiffusers(JSON.parse(await readFile(join(root, 'transformer', 'config.json'), 'utf8')) as DiffusersDitConfig, 'transformer/config.json');
  const file = await SafetensorsFile.open(join(root, 'transformer', 'diffusion_pytorch_model.safetensors'));
  try {
    return await ditFromSource(rt, file, config, { weights: settings.weights, layout: 'diffusers', timestepEmbedding: 'official' }, files.name);
  } finally {
    await file.close();
  }
}

function scoresJson(r: Rows, scores: Record<string, unknown>, cfg: DitFileConfig, diffusers: LoadedDit): void {
  const leaf = (path: string, value: unknown) => {
    const name = `scores.json:${path}`;
    let m: RegExpExecArray | null;
    // The difference of the two reference values beside it (each compared with ours).
    if (/\.abs_diff$/.test(path)) return;
    if ((m = /^(img_size|seed)$/.exec(path))) return r.scalar(name, m[1] === 'seed' ? cfg.generator_seed : cfg.img_size, value, 'exact');
    if ((m = /^(layers|target_steps|class_labels)\.(\d+)$/.exec(path))) return r.scalar(name, cfg[m[1] as 'layers' | 'target_steps' | 'class_labels'][Number(m[2])], value, 'exact');
    if ((m = /^checkpoint_keys_skipped_by_official_loader\.(\d+)$/.exec(path))) {
      const ours = JSON.parse(String(r.values.get('checkpoint_keys_skipped_by_official_loader') ?? '[]')) as string[];
      return r.scalar(name, ours[Number(m[1])], value, 'exact');
    }
    if (path === 'diffusers_converter') {
      // A description of how the folder was made: what we check is that it loads as is.
      const ok = diffusers.layout.kind === 'diffusers';
      r.rows.push({ fixture: r.fixture, name, err: ok ? 0 : 1, tol: 0, kind: 'exact', pass: ok, note: `${JSON.stringify(value)}: the converted folder loads through the diffusers layout as is` });
      return;
    }
    if ((m = /^dit\.(step\d+)\.(t_noise|t_index|t_model)$/.exec(path))) return r.scalar(name, r.values.get(`dit.${m[1]}.${m[2]}`), value, 'exact');
    if ((m = /^dit\.(step\d+\.layer\d+\.\w+)$/.exec(path))) return r.scalar(name, r.values.get(`dit.${m[1]}`), value, path.endsWith('mse') ? 'mse' : 'cos');
    if ((m = /^official_crosscheck\.(step\d+)\.(layer\d+)\.(cosine|mse)\.(official|fixture)$/.exec(path))) {
      return r.scalar(name, r.values.get(`dit.${m[1]}.${m[2]}.score_${m[3] === 'cosine' ? 'cos' : 'mse'}`), value, m[3] === 'mse' ? 'mse' : 'cos');
    }
    if ((m = /^official_crosscheck\.target_step_(\d+)\.error$/.exec(path))) {
      // The official code crashes; ours refuses the step with an error naming it.
      let refused = '';
      try {
        ditTimesteps(Number(m[1]), 'official');
      } catch (e) {
        refused = (e as Error).message;
      }
      r.rows.push({ fixture: r.fixture, name, err: refused ? 0 : 1, tol: 0, kind: 'exact', pass: !!refused, note: refused ? `official: ${String(value)}; ours refuses: ${refused.slice(0, 90)}…` : `official: ${String(value)}; ours computed a score` });
      return;
    }
    if ((m = /^diffusers_vs_official_qkv_max_abs_diff\.(.+)$/.exec(path))) {
      const key = m[1]!;
      const ours = r.values.get(`diffusers_vs_official.${key}`);
      if (typeof ours !== 'number' || typeof value !== 'number') return r.scalar(name, ours, value, 'exact');
      // A difference of two computations that are each within the q/k/v tolerance of the reference:
      // compared at 1e-4 of the scale (the differences of order 1 come from the sinusoid).
      const err = Math.abs(ours - value) / Math.max(1, Math.abs(value));
      const tol = r.f16 ? F16_WEIGHTS_TOLERANCE * 10 : 1e-4;
      r.rows.push({ fixture: r.fixture, name, err, tol, kind: 'normalised', pass: err <= tol, note: `ours ${ours.toPrecision(6)}, reference ${value.toPrecision(6)}` });
      return;
    }
    r.rows.push({ fixture: r.fixture, name, err: Infinity, tol: 0, kind: 'exact', pass: false, note: 'a value this handler does not know' });
  };
  const walk = (prefix: string, v: unknown) => {
    if (v !== null && typeof v === 'object' && !Array.isArray(v)) for (const [k, x] of Object.entries(v)) walk(prefix ? `${prefix}.${k}` : k, x);
    else if (Array.isArray(v)) v.forEach((x, i) => walk(`${prefix}.${i}`, x));
    else leaf(prefix, v);
  };
  walk('', scores);
}

