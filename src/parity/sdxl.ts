// `diffsim parity` for an sdxl-tiny fixture folder: DiffSim on SDXL (diffsim_xl.py and
// DiffSimXLPipeline.step) against diffsim_xl.safetensors and scores.json. The folder is an SDXL
// pipeline in the hub layout and is loaded as a user's would be (loadDiffSimModels); the stored
// inputs (processed images) and noise draws are injected. Every stored tensor is compared: one left
// over is a failed row, so a new reference value cannot go unchecked.
//
// Read from the files: image size, prompt, seed, inference steps, target steps and the list-valued
// targets from the file's "config" metadata; the extra prompts from the stored token ids.

import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { tidy, type Runtime, type Tensor } from '../gpu/runtime.js';
import { loadImage } from '../io/image.js';
import { processImage } from '../io/preprocess.js';
import { SafetensorsFile, rawToInt32 } from '../io/safetensors.js';
import { EulerDiscreteScheduler } from '../models/scheduler.js';
import { concat } from '../kernels/layout.js';
import { adoptTap } from '../nn/context.js';
import { DiffSim, type DiffSimModels } from '../diffsim/core.js';
import { disposeDiffSimModels, loadDiffSimModels } from '../diffsim/load.js';
import type { DiffSimEmbedding } from '../diffsim/embedding.js';
import { DiffSimSettingsError, type DiffSimBlock } from '../diffsim/settings.js';
import { F16_WEIGHTS_TOLERANCE_SDXL, normalisedError, type ParityRow, type ParitySettings } from './common.js';
import { Rows, splitHeadsHost } from './diffsim.js';

interface XlFileConfig {
  img_size: number;
  prompt: string;
  guidance_scale?: number;
  num_inference_steps: number;
  target_steps: number[];
  generator_seed: number;
  targets: Record<string, { target_block: string; target_layer: number[]; module: string; heads: number }>;
}

const ROLES = ['A', 'B'] as const;
const f = Math.fround;

async function read(t: Tensor): Promise<Float32Array> {
  return (await t.read()) as Float32Array;
}

/** Token ids back to text with the tokenizer's vocab.json (the fixture's extra prompts are stored
 *  only as ids): byte-level symbols joined, `</w>` as a space, specials and padding dropped. */
async function decodeIds(folder: string, ids: Int32Array): Promise<string> {
  const vocab = JSON.parse(await readFile(join(folder, 'tokenizer', 'vocab.json'), 'utf8')) as Record<string, number>;
  const byId = new Map(Object.entries(vocab).map(([k, v]) => [v, k]));
  const bos = vocab['<|startoftext|>'];
  const eos = vocab['<|endoftext|>'];
  let text = '';
  for (const id of ids) {
    if (id === bos) continue;
    if (id === eos) break;
    text += byId.get(id) ?? '';
  }
  // GPT-2 byte-level symbols → bytes (printable ASCII and Latin-1 map to themselves; the rest to 256+).
  const bytes: number[] = [];
  const printable = (b: number) => (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
  const table = new Map<number, number>();
  let n = 0;
  for (let b = 0; b < 256; b++) table.set(printable(b) ? b : 256 + n++, b);
  for (const part of text.split('</w>')) {
    for (const ch of part) bytes.push(table.get(ch.codePointAt(0)!) ?? 63);
    bytes.push(32);
  }
  return new TextDecoder().decode(Uint8Array.from(bytes)).trim().replace(/ +/g, ' ');
}

export async function sdxlParity(rt: Runtime, dir: string, fixture: string, settings: ParitySettings): Promise<ParityRow[]> {
  const r = new Rows(fixture, settings.weights === 'f16');
  const folder = join(dir, fixture);
  const ref = await SafetensorsFile.open(join(folder, 'diffsim_xl.safetensors'));
  let models: DiffSimModels | undefined;
  const metrics: DiffSim[] = [];
  const used = new Set<string>();
  const names = new Set(ref.names());
  const stored = async (n: string) => {
    used.add(n);
    return (await ref.readFloat32(n)).data;
  };
  const tensor = async (name: string, ours: Float32Array, shape: readonly number[], tol: number) => {
    used.add(name);
    await r.tensor(name, ours, shape, ref, name, settings.weights === 'f16' ? Math.max(tol, F16_WEIGHTS_TOLERANCE_SDXL) : tol);
  };
  try {
    const cfg = JSON.parse(ref.metadata.config ?? 'null') as XlFileConfig | null;
    if (!cfg) throw new Error(`${fixture}/diffsim_xl.safetensors: no "config" metadata`);
    const scores = JSON.parse(await readFile(join(folder, 'scores.json'), 'utf8')) as {
      diffsim_xl: Record<string, Record<string, unknown>>;
      official_crosscheck?: Record<string, { official?: number; error?: string }>;
    };
    models = await loadDiffSimModels(rt, folder, { weights: settings.weights, pipeline: 'sdxl' });
    const m = models;
    const sched = m.scheduler;
    if (!(sched instanceof EulerDiscreteScheduler) || !m.xl) throw new Error(`${fixture}: not loaded as an SDXL pipeline`);
    const steps = cfg.num_inference_steps;

    // Scheduler tables.
    // Scheduler values: |ours − ref| / max(1, |ref|) per entry (σ reaches 14.6).
    const table = (name: string, ours: ArrayLike<number>, refData: Float32Array) => {
      used.add(name);
      let err = ours.length === refData.length ? 0 : Infinity;
      for (let i = 0; i < refData.length && err < Infinity; i++) err = Math.max(err, Math.abs(ours[i]! - refData[i]!) / Math.max(1, Math.abs(refData[i]!)));
      r.rows.push({ fixture, name, err, tol: 1e-6, kind: 'absolute', pass: err <= 1e-6 });
    };
    table('scheduler.alphas_cumprod', sched.alphasCumprod, await stored('scheduler.alphas_cumprod'));
    table('scheduler.sigmas_1000', sched.sigmas(steps), await stored('scheduler.sigmas_1000'));
    table('scheduler.init_noise_sigma', [sched.initNoiseSigma(steps)], await stored('scheduler.init_noise_sigma'));
    {
      const ts = sched.timesteps(steps);
      const refTs = await stored('scheduler.timesteps_1000');
      const bad = refTs.length === ts.length ? refTs.filter((v, i) => v !== ts[i]).length : refTs.length;
      r.rows.push({ fixture, name: 'scheduler.timesteps_1000', err: bad, tol: 0, kind: 'exact', pass: bad === 0 });
    }

    // Text: tokenizers and both encoders, per stored prompt.
    const ids1 = rawToInt32(await ref.readRaw('text.input_ids_1'));
    const ids2 = rawToInt32(await ref.readRaw('text.input_ids_2'));
    used.add('text.input_ids_1').add('text.input_ids_2');
    const nPrompts = ids1.length / 77;
    const prompts: string[] = [];
    for (let i = 0; i < nPrompts; i++) prompts.push(i === 0 ? cfg.prompt : await decodeIds(folder, ids1.subarray(i * 77, (i + 1) * 77)));
    const ours1 = Int32Array.from(prompts.flatMap((p) => m.tokenizer.encode(p)));
    const ours2 = Int32Array.from(prompts.flatMap((p) => m.xl!.tokenizer2.encode(p)));
    for (const [name, ours, refIds] of [['text.input_ids_1', ours1, ids1], ['text.input_ids_2', ours2, ids2]] as const) {
      const bad = ours.length === refIds.length ? refIds.filter((v, i) => v !== ours[i]).length : refIds.length;
      r.rows.push({ fixture, name, err: bad, tol: 0, kind: 'exact', pass: bad === 0, note: `${nPrompts} prompts: ${prompts.map((p) => JSON.stringify(p)).join(', ')}` });
    }
    const enc = (which: 1 | 2) => {
      const model = which === 1 ? m.textEncoder : m.xl!.textEncoder2;
      const taps = ['last_hidden_state', `hidden_states.${model.layers.length - 1}`, which === 1 ? 'pooler_output' : 'text_embeds'];
      return tidy(() => {
        const out = model.forward(which === 1 ? ids1 : ids2, nPrompts, { capture: taps });
        const got = taps.map((t) => adoptTap(out.taps.take(t)).keep());
        out.taps.dispose();
        return got;
      });
    };
    const [last1, pen1, pool1] = enc(1);
    const [last2, pen2, emb2] = enc(2);
    try {
      await tensor('text.te1.last_hidden_state', await read(last1!), last1!.shape, 2e-4);
      await tensor('text.te1.penultimate', await read(pen1!), pen1!.shape, 1e-4);
      await tensor('text.te1.pooler_output', await read(pool1!), pool1!.shape, 2e-4);
      await tensor('text.te2.last_hidden_state', await read(last2!), last2!.shape, 2e-4);
      await tensor('text.te2.penultimate', await read(pen2!), pen2!.shape, 1e-4);
      await tensor('text.te2.text_embeds', await read(emb2!), emb2!.shape, 2e-4);
      const both = tidy(() => concat([pen1!, pen2!], 2));
      await tensor('text.prompt_embeds', await read(both), both.shape, 1e-4);
      both.dispose();
    } finally {
      for (const t of [last1, pen1, pool1, last2, pen2, emb2]) t?.dispose();
    }

    // Images as the official process_image gives them (the stored ones are injected below).
    const imgs = { A: await loadImage(join(folder, 'image_A.png')), B: await loadImage(join(folder, 'image_B.png')) };
    const processed: Record<string, Float32Array> = {};
    for (const x of ROLES) {
      processed[x] = await stored(`input.tensor_${x}`);
      const ours = processImage(imgs[x], cfg.img_size);
      let max = ours.length === processed[x]!.length ? 0 : Infinity;
      for (let i = 0; i < ours.length && max < Infinity; i++) max = Math.max(max, Math.abs(ours[i]! - processed[x]![i]!));
      r.rows.push({ fixture, name: `input.tensor_${x}`, err: max, tol: 2 / 255, kind: 'absolute', pass: max <= 2 / 255, note: 'process_image of the PNG' });
    }

    // The VAE posterior (its noise injected).
    const eps: Record<string, Float32Array> = {};
    for (const x of ROLES) {
      eps[x] = await stored(`vae.eps_${x}`);
      r.rows.push({ fixture, name: `vae.eps_${x}`, err: 0, tol: 0, kind: 'exact', pass: true, note: 'the stored draw, injected as the posterior noise' });
      const S = cfg.img_size;
      const post = tidy(() => {
        const p = m.vae.encode(rt.upload(processed[x]!, [1, 3, S, S])).posterior!;
        return [p.mean.keep(), p.std.keep()];
      });
      try {
        await tensor(`vae.mean_${x}`, await read(post[0]!), post[0]!.shape, 2e-4);
        await tensor(`vae.std_${x}`, await read(post[1]!), post[1]!.shape, 2e-4);
      } finally {
        for (const t of post) t.dispose();
      }
    }

    const targets = Object.entries(cfg.targets);
    let stepCount = 0;
    for (const step of cfg.target_steps) {
      const pre = `step${step}`;
      let first = true;
      for (const [tag, target] of targets) {
        const block = target.target_block.replace(/_blocks$/, '') as DiffSimBlock;
        const ds = new DiffSim(rt, m, { block, target: target.target_layer, step, inferenceSteps: steps, seed: cfg.generator_seed, prompt: cfg.prompt, imageSize: cfg.img_size, cfg: (cfg.guidance_scale ?? 7.5) > 1 });
        metrics.push(ds);
        r.scalar(`${tag}.module`, ds.settings.module, target.module, 'exact');
        r.scalar(`${tag}.heads`, ds.settings.heads, target.heads, 'exact');
        const emb: Partial<Record<'A' | 'B', DiffSimEmbedding>> = {};
        try {
          for (const x of ROLES) {
            emb[x] = ds.embed(imgs[x], x, { noise: { vae: eps[x], forward: await stored(`${pre}.noise_${x}`) }, processed: processed[x]!, keepIntermediates: first });
          }
          if (first) {
            // Conditioning and the noising chain, once per step.
            const xl = ds.xl!;
            if (stepCount === 0) {
              const text = ds.textConditioning();
              await tensor('cfg.prompt_embeds', await read(text.states), text.states.shape, 1e-4);
              await tensor('cfg.add_text_embeds', await read(text.pooled!), text.pooled!.shape, 2e-4);
              const ids = [...xl.timeIds, ...xl.timeIds];
              const refIds = await stored('cfg.add_time_ids');
              const bad = refIds.filter((v, i) => v !== ids[i]).length;
              r.rows.push({ fixture, name: 'cfg.add_time_ids', err: bad, tol: 0, kind: 'exact', pass: bad === 0, note: `(${xl.timeIds.join(', ')}) per sample` });
            }
            r.scalar(`${pre}.t`, ds.settings.t, (await stored(`${pre}.t`))[0], 'exact');
            used.add(`${pre}.t`);
            table(`${pre}.sigma (scores.json)`, [xl.sigma], Float32Array.of(scores.diffsim_xl[pre]?.sigma as number));
            r.scalar(`${pre}.t (scores.json)`, ds.settings.t, scores.diffsim_xl[pre]?.t, 'exact');
            for (const x of ROLES) {
              const im = emb[x]!.intermediates!;
              r.rows.push({ fixture, name: `${pre}.noise_${x}`, err: 0, tol: 0, kind: 'exact', pass: true, note: 'the stored draw, injected as the forward noise' });
              used.add(`${pre}.noise_${x}`);
              const z0 = await read(im.latents);
              if (stepCount === 0) await tensor(`latents_${x}`, z0, im.latents.shape, 2e-4);
              await tensor(`${pre}.latents_x_init_noise_sigma_${x}`, z0.map((v) => f(v * xl.latentScale)), im.latents.shape, 2e-4);
              await tensor(`${pre}.noisy_latents_${x}`, await read(im.noisyLatents), im.noisyLatents.shape, 2e-4);
              const inp = await read(im.modelInput!);
              const both = new Float32Array(inp.length * 2);
              both.set(inp);
              both.set(inp, inp.length);
              await tensor(`${pre}.latent_model_input_${x}`, both, [2, ...im.modelInput!.shape.slice(1)], 2e-4);
              // The schedule alone, from the stored clean latents and noise (float32 as torch).
              const refZ = await stored(`latents_${x}`);
              const refNoise = await stored(`${pre}.noise_${x}`);
              const noisy = refZ.map((v, i) => f(f(v * xl.latentScale) + f(refNoise[i]! * xl.sigma)));
              const refNoisy = await stored(`${pre}.noisy_latents_${x}`);
              // Normalised as the tensors (|x| reaches ≈ 30 here, where a float32 ulp is 2e-6).
              const err = normalisedError(noisy, refNoisy);
              r.rows.push({ fixture, name: `${pre}.noisy_latents_${x} (add_noise of the stored latents)`, err, tol: 1e-6, kind: 'normalised', pass: err <= 1e-6 });
            }
            if (names.has(`${pre}.unet_output_A`)) {
              // The full U-Net on the stored model input and conditioning.
              const inp = await stored(`${pre}.latent_model_input_A`);
              const ts = (await stored(`${pre}.unet_timestep`))[0]!;
              r.scalar(`${pre}.unet_timestep`, ds.settings.t, ts, 'exact');
              const pe = await ref.readFloat32('cfg.prompt_embeds');
              const te = await ref.readFloat32('cfg.add_text_embeds');
              const lat = ds.latentSize;
              const out = tidy(() => m.unet.forward(rt.upload(inp, [2, 4, lat, lat]), ts, rt.upload(pe.data, pe.shape), { added: { textEmbeds: rt.upload(te.data, te.shape), timeIds: xl.timeIds } }).sample!.keep());
              try {
                await tensor(`${pre}.unet_output_A`, await read(out), out.shape, 2e-4);
              } finally {
                out.dispose();
              }
            }
          }
          first = false;
          const heads = ds.settings.heads;
          for (const x of ROLES) {
            for (const [n, t] of [['q', emb[x]!.q], ['k', emb[x]!.k], ['v', emb[x]!.v]] as const) {
              const s = splitHeadsHost(await read(t), t.shape, heads);
              await tensor(`${pre}.${tag}.${n}_${x}`, s.data, s.shape, 1e-4);
            }
          }
          const outNames = { ab: 'attn_a_on_b', aa: 'self_attn_a', ba: 'attn_b_on_a', bb: 'self_attn_b' } as const;
          if (Object.values(outNames).some((n) => names.has(`${pre}.${tag}.${n}`))) {
            const outs = ds.attentionOutputs(emb.A!, emb.B!);
            try {
              for (const [key, n] of Object.entries(outNames) as [keyof typeof outs, string][]) {
                const s = splitHeadsHost(await read(outs[key]), outs[key].shape, heads);
                await tensor(`${pre}.${tag}.${n}`, s.data, s.shape, 1e-4);
              }
            } finally {
              for (const t of Object.values(outs)) t.dispose();
            }
          }
          const d = await ds.compareDetailed(emb.A!, emb.B!);
          const ours: Record<string, number> = { aas_ab_cos: d.ab.cos, aas_ba_cos: d.ba.cos, score_cos: d.cosine, aas_ab_mse: d.ab.mse, aas_ba_mse: d.ba.mse, score_mse: d.mse };
          const json = (scores.diffsim_xl[pre]?.[tag] ?? {}) as Record<string, number>;
          for (const [n, v] of Object.entries(ours)) {
            const check = n.endsWith('mse') ? 'mse' : 'cos';
            r.scalar(`${pre}.${tag}.${n}`, v, (await stored(`${pre}.${tag}.${n}`))[0], check);
            r.scalar(`${pre}.${tag}.${n} (scores.json)`, v, json[n], check);
          }
          const cross = scores.official_crosscheck ?? {};
          for (const [kind, v] of [['cosine', d.cosine], ['mse', d.mse]] as const) {
            const c = cross[`${pre}.${tag}.${kind}`];
            if (c) r.scalar(`official_crosscheck.${pre}.${tag}.${kind}`, v, c.official, kind === 'mse' ? 'mse' : 'cos');
          }
        } finally {
          for (const e of Object.values(emb)) e?.dispose();
        }
      }
      stepCount++;
    }

    // The official code crashes on a single target_layer value (IndexError); here it is accepted as
    // [layer, last attention, last transformer block].
    const single = scores.official_crosscheck?.single_target_layer;
    if (single) {
      let ours: string;
      try {
        // The defaults' block and single layer, with no list-valued target.
        const ds = new DiffSim(rt, m, { imageSize: cfg.img_size, target: [] });
        ours = `accepted: ${ds.settings.module}`;
        ds.dispose();
      } catch (e) {
        ours = e instanceof DiffSimSettingsError ? `refused: ${e.message}` : String(e);
      }
      const ok = ours.startsWith('accepted');
      r.rows.push({ fixture, name: 'official_crosscheck.single_target_layer', err: ok ? 0 : 1, tol: 0, kind: 'exact', pass: ok, note: `official: ${single.error}; ours: ${ours}` });
    }

    const left = [...names].filter((n) => !used.has(n));
    for (const n of left) r.rows.push({ fixture, name: n, err: NaN, tol: 0, kind: 'exact', pass: false, note: 'stored but not compared' });
  } finally {
    for (const ds of metrics) ds.dispose();
    if (models) disposeDiffSimModels(models);
    await ref.close();
  }
  return r.rows;
}
