// SD1.5 single-file checkpoints (model.diffusion_model.*, first_stage_model.*,
// cond_stage_model.transformer.*) as diffusers components: the key map, byte-exact views, parity of
// the models loaded through them, configs from shapes (tiny and full-size), EMA / state_dict. /
// fp16 variants and the errors for other files.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { tidy, type Runtime, type Tensor } from '../../src/gpu/runtime.js';
import { f32ArrayToF16 } from '../../src/platform/half.js';
import { blobSource } from '../../src/io/bytesource.js';
import { SafetensorsFile, encodeSafetensors, rawToInt32, type RawTensor, type TensorInfo, type TensorSource, type TensorToWrite } from '../../src/io/safetensors.js';
import { isSd15SingleFile, sd15SingleFile, emaKeyOf, SingleFileError, type SingleFileComponents } from '../../src/models/single-file.js';
import { textEncoderFromSource, unetFromSource, vaeEncoderFromSource } from '../../src/models/sources.js';
import { normalisedError, toleranceFor } from '../../src/parity/parity.js';
import type { Taps, Vocabulary } from '../../src/nn/context.js';
import { loadSd15 } from '../../src/models/load.js';
import { localModelFiles } from '../../src/io/local-files.js';
import { createMetric } from '../../src/diffsim/metric.js';
import { FIXTURES, rejects, runCli, runtime, take, unetTinyInputs } from '../support/helpers.js';

const DIR = join(FIXTURES, 'single-file');
const FILE = join(DIR, 'sd15-tiny-single-file.safetensors');
/** The diffusers-layout fixture each component must equal (README.json: "exactly the weights of"). */
const PARTS = { unet: join(FIXTURES, 'unet-tiny', 'unet.safetensors'), vae: join(FIXTURES, 'vae-encoder-tiny', 'vae.safetensors'), text_encoder: join(FIXTURES, 'clip-text-tiny', 'text_encoder.safetensors') } as const;
type Part = keyof typeof PARTS;

function viewsOf(c: SingleFileComponents): Record<Part, TensorSource> {
  return { unet: c.unet.source, vae: c.vae.source, text_encoder: c.textEncoder.source };
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}

/** Every tensor of the single file, raw (for in-memory variants). */
async function readAll(file: TensorSource): Promise<Map<string, RawTensor>> {
  const out = new Map<string, RawTensor>();
  for (const n of file.names()) out.set(n, await file.readRaw(n));
  return out;
}

async function encode(tensors: Map<string, RawTensor>, name: string, metadata?: Record<string, string>): Promise<SafetensorsFile> {
  const rec: Record<string, TensorToWrite> = {};
  for (const [k, t] of tensors) rec[k] = { dtype: t.dtype, shape: t.shape, data: t.bytes };
  return SafetensorsFile.open(blobSource(encodeSafetensors(rec, metadata), name));
}

/** A source without `__metadata__` (what most single files look like). */
class WithoutMetadata implements TensorSource {
  readonly metadata = {};
  constructor(private readonly src: TensorSource) {}
  get name(): string {
    return this.src.name;
  }
  names(): string[] {
    return this.src.names();
  }
  has(n: string): boolean {
    return this.src.has(n);
  }
  info(n: string): TensorInfo {
    return this.src.info(n);
  }
  readRaw(n: string): Promise<RawTensor> {
    return this.src.readRaw(n);
  }
  readFloat32(n: string): Promise<{ shape: number[]; data: Float32Array }> {
    return this.src.readFloat32(n);
  }
  close(): Promise<void> {
    return this.src.close();
  }
}

/** Names and shapes only (a manifest of a full-size file): reads are errors. */
function shapesOnly(name: string, tensors: Record<string, { shape: number[]; dtype: string }>): TensorSource {
  const info = (n: string): TensorInfo => {
    const t = tensors[n];
    if (!t) throw new Error(`no ${n}`);
    return { name: n, dtype: 'F32', shape: [...t.shape], begin: 0, end: 0 };
  };
  return {
    name,
    metadata: {},
    names: () => Object.keys(tensors),
    has: (n) => Object.prototype.hasOwnProperty.call(tensors, n),
    info,
    readRaw: () => Promise.reject(new Error('shapes only')),
    readFloat32: () => Promise.reject(new Error('shapes only')),
    close: async () => {},
  };
}

function readJson<T>(...p: string[]): T {
  return JSON.parse(readFileSync(join(...p), 'utf8')) as T;
}

test('(a) every key of key_map.json maps as stated: the view reads that tensor, under the diffusers name and shape, and nothing else', async () => {
  const km = readJson<{ map: Record<string, string>; reshaped_keys: Record<string, { single_file_shape: number[] }> }>(DIR, 'key_map.json');
  const file = await SafetensorsFile.open(FILE);
  assert.ok(isSd15SingleFile(file));
  const c = sd15SingleFile(file);
  assert.is(c.ema, false);
  const views = viewsOf(c);
  const expected: Record<Part, string[]> = { unet: [], vae: [], text_encoder: [] };
  assert.is(Object.keys(km.map).length, file.names().length, 'the key map covers the file');
  for (const [ldm, target] of Object.entries(km.map)) {
    const part = target.slice(0, target.indexOf('.')) as Part;
    const key = target.slice(part.length + 1);
    const view = views[part];
    assert.ok(view.has(key), `${ldm} → ${target}: not in the ${part} view`);
    const info = view.info(key);
    const orig = file.info(ldm);
    assert.equal([info.begin, info.end, info.dtype], [orig.begin, orig.end, orig.dtype], `${target} reads ${ldm}`);
    const reshaped = km.reshaped_keys[ldm];
    assert.equal(info.shape, reshaped ? reshaped.single_file_shape.slice(0, 2) : orig.shape, `${target} shape`);
    if (reshaped) assert.equal(orig.shape, reshaped.single_file_shape);
    expected[part].push(key);
  }
  for (const part of Object.keys(PARTS) as Part[]) assert.equal(views[part].names().sort(), expected[part].sort(), `${part}: the view holds exactly the mapped keys`);
  assert.is(Object.keys(km.reshaped_keys).length, 8, 'encoder and decoder q, k, v, proj_out');
  await file.close();
});

test('(a) each view gives exactly the bytes, dtype, shape and values of the diffusers fixture files, and their configs', async () => {
  const file = await SafetensorsFile.open(FILE);
  const c = sd15SingleFile(file);
  const views = viewsOf(c);
  const configs = { unet: c.unet, vae: c.vae, text_encoder: c.textEncoder };
  for (const part of Object.keys(PARTS) as Part[]) {
    const ref = await SafetensorsFile.open(PARTS[part]);
    const view = views[part];
    const refNames = ref.names().sort();
    if (part === 'vae') {
      // The fixture holds the encoder half of AutoencoderKL; the view holds the whole model.
      assert.equal(view.names().filter((k) => ref.has(k)).sort(), refNames);
      const rest = view.names().filter((k) => !ref.has(k));
      assert.ok(rest.length > 100 && rest.every((k) => k.startsWith('decoder.') || k.startsWith('post_quant_conv.')), 'the rest is the decoder');
    } else assert.equal(view.names().sort(), refNames, `${part}: names`);
    for (const n of refNames) {
      const a = await view.readRaw(n);
      const b = await ref.readRaw(n);
      assert.is(a.dtype, b.dtype, `${part} ${n}: dtype`);
      assert.equal(a.shape, b.shape, `${part} ${n}: shape`);
      assert.equal(view.info(n).shape, b.shape, `${part} ${n}: info shape`);
      assert.ok(sameBytes(a.bytes, b.bytes), `${part} ${n}: bytes`);
      const fa = await view.readFloat32(n);
      assert.equal(fa.shape, b.shape);
      assert.ok(sameBytes(new Uint8Array(fa.data.buffer, fa.data.byteOffset, fa.data.byteLength), b.bytes), `${part} ${n}: float32 values`);
    }
    const refConfig = JSON.parse(ref.metadata.config!) as unknown;
    assert.equal(configs[part].config, refConfig, `${part}: config`);
    assert.is(configs[part].configFrom, 'metadata');
    assert.equal(JSON.parse(view.metadata.config!), refConfig, `${part}: the view's metadata config is the component's`);
    await ref.close();
  }
  // Closing the views leaves the file open (the caller owns it).
  for (const v of Object.values(views)) await v.close();
  const one = file.names()[0]!;
  assert.ok((await file.readRaw(one)).bytes.byteLength > 0, 'the file is still readable');
  await file.close();
});

/** Every stored activation the model records, at the parity tolerances; returns the worst. */
async function compareStored(acts: SafetensorsFile, isInput: (n: string) => boolean, vocabulary: Vocabulary, pass: (capture: string[]) => Taps | Promise<Taps>, label: string, extra: Map<string, Tensor> = new Map(), tol: (n: string) => number = toleranceFor): Promise<{ worst: number; worstName: string; ratio: number; count: number; outputs: string }> {
  const names = acts.names().filter((n) => !isInput(n));
  const taps = await pass(names.filter((n) => vocabulary.hasTap(n)));
  let worst = 0;
  let worstName = '';
  let ratio = 0;
  let count = 0;
  const outputs: string[] = [];
  try {
    for (const n of names) {
      const t = taps.has(n) ? taps.get(n) : extra.get(n);
      assert.ok(t, `${label}: ${n} stored but not produced`);
      const ref = await acts.readFloat32(n);
      assert.equal(t!.shape, ref.shape, `${label} ${n}: shape`);
      const err = normalisedError((await t!.read()) as Float32Array, ref.data);
      assert.ok(err <= tol(n), `${label} ${n}: normalised error ${err.toExponential(2)} over ${tol(n)}`);
      if (err > worst) [worst, worstName] = [err, n];
      if (/^(output\.sample|posterior\.mean|latent\.scaled|last_hidden_state|pooler_output)$/.test(n)) outputs.push(`${n} ${err.toExponential(2)}`);
      ratio = Math.max(ratio, err / tol(n));
      count++;
    }
  } finally {
    taps.dispose();
    for (const t of extra.values()) t.dispose();
  }
  return { worst, worstName, ratio, count, outputs: outputs.join(', ') };
}

async function unetParity(rt: Runtime, c: SingleFileComponents, label: string, tol?: (n: string) => number) {
  const acts = await SafetensorsFile.open(join(FIXTURES, 'unet-tiny', 'activations.safetensors'));
  const model = await unetFromSource(rt, c.unet.source, c.unet.config);
  const up = async (n: string) => {
    const { shape, data } = await acts.readFloat32(n);
    return rt.upload(data, shape);
  };
  const sample = await up('input.sample');
  const text = await up('input.encoder_hidden_states');
  const t = [...rawToInt32(await acts.readRaw('input.timestep'), 'input.timestep')];
  try {
    if (acts.metadata.attention_heads) {
      const heads = JSON.parse(acts.metadata.attention_heads) as Record<string, number>;
      const ours = model.attentionHeads();
      assert.equal(Object.keys(heads).filter((m) => ours[m] !== heads[m]), [], `${label}: attention heads`);
    }
    return await compareStored(
      acts,
      (n) => n.startsWith('input.'),
      model.vocabulary,
      (capture) => {
        const out = model.forward(sample, t, text, { capture });
        out.sample?.dispose();
        return out.taps;
      },
      label,
      new Map(),
      tol,
    );
  } finally {
    sample.dispose();
    text.dispose();
    model.store.dispose();
    await acts.close();
  }
}

async function vaeParity(rt: Runtime, c: SingleFileComponents, label: string, tol?: (n: string) => number) {
  const acts = await SafetensorsFile.open(join(FIXTURES, 'vae-encoder-tiny', 'activations.safetensors'));
  const vae = await vaeEncoderFromSource(rt, c.vae.source, c.vae.config);
  const { shape, data } = await acts.readFloat32('input.image');
  const image = rt.upload(data, shape);
  const e = acts.has('eps') ? await acts.readFloat32('eps') : null;
  const eps = e ? rt.upload(e.data, e.shape) : null;
  const latent = new Map<string, Tensor>();
  try {
    return await compareStored(
      acts,
      (n) => n === 'input.image' || n === 'eps',
      vae.vocabulary,
      (capture) => {
        const out = vae.encode(image, { capture });
        if (eps && out.posterior) {
          const { sample, scaled } = vae.sample(out.posterior, eps);
          latent.set('latent.sample', sample).set('latent.scaled', scaled);
        }
        if (out.posterior) for (const p of Object.values(out.posterior)) p.dispose();
        return out.taps;
      },
      label,
      latent,
      tol,
    );
  } finally {
    image.dispose();
    eps?.dispose();
    vae.store.dispose();
    await acts.close();
  }
}

async function textParity(rt: Runtime, c: SingleFileComponents, label: string, tol?: (n: string) => number) {
  const acts = await SafetensorsFile.open(join(FIXTURES, 'clip-text-tiny', 'activations.safetensors'));
  const model = await textEncoderFromSource(rt, c.textEncoder.source, c.textEncoder.config);
  const raw = await acts.readRaw('input_ids');
  const ids = rawToInt32(raw, 'input_ids');
  const batch = raw.shape[0]!;
  try {
    return await compareStored(acts, (n) => n === 'input_ids' || n === 'attention_mask', model.vocabulary, (capture) => tidy(() => model.forward(ids, batch, { capture }).taps), label, new Map(), tol);
  } finally {
    model.store.dispose();
    await acts.close();
  }
}

const report = (label: string, r: { worst: number; worstName: string; ratio: number; count: number; outputs: string }) =>
  console.log(`  ${label}: ${r.count} activations, worst normalised error ${r.worst.toExponential(2)} (${r.worstName}), worst error/tolerance ${r.ratio.toFixed(3)}; ${r.outputs}`);

test('(b) the U-Net, VAE encoder and text encoder loaded through the views reproduce every stored activation of unet-tiny, vae-encoder-tiny and clip-text-tiny', async () => {
  const rt = await runtime();
  const file = await SafetensorsFile.open(FILE);
  const c = sd15SingleFile(file);
  const u = await unetParity(rt, c, 'unet-tiny');
  const v = await vaeParity(rt, c, 'vae-encoder-tiny');
  const t = await textParity(rt, c, 'clip-text-tiny');
  report('unet-tiny', u);
  report('vae-encoder-tiny', v);
  report('clip-text-tiny', t);
  assert.ok(u.count > 100 && v.count > 20 && t.count > 10, 'all stored activations compared');
  await file.close();
});

/** Fields the shapes cannot tell (supplied below as the fixture's values). */
const NOT_IN_SHAPES = { unet: ['attention_head_dim', 'norm_num_groups', 'sample_size'], vae: ['norm_num_groups', 'sample_size'], text_encoder: ['num_attention_heads', 'projection_dim'] } as const;

test('(c) configs from the shapes alone equal the metadata configs on every field, given the ones shapes cannot tell', async () => {
  const file = await SafetensorsFile.open(FILE);
  const meta = (JSON.parse(file.metadata.config!) as { configs: Record<Part, Record<string, unknown>> }).configs;
  const bare = new WithoutMetadata(file);
  assert.ok(isSd15SingleFile(bare));
  // Without them the tiny sizes are not SD1.5's: 4 heads of 8, groups of 8 (SD1.5: 12 of 64, 32).
  assert.throws(() => sd15SingleFile(bare), (e: unknown) => e instanceof SingleFileError && /text encoder: num_attention_heads 12 does not divide hidden_size 32/.test((e as Error).message));
  assert.throws(() => sd15SingleFile(bare, { textEncoder: { num_attention_heads: 4 } }), /VAE: norm_num_groups 32 does not divide the block channels \[16, 32, 64, 64\]/);
  const pick = (part: Part) => Object.fromEntries(NOT_IN_SHAPES[part].map((k) => [k, meta[part][k]]));
  const c = sd15SingleFile(bare, { unet: pick('unet'), vae: pick('vae'), textEncoder: pick('text_encoder') });
  const inferred: Record<Part, Record<string, unknown>> = { unet: { ...c.unet.config }, vae: { ...c.vae.config }, text_encoder: { ...c.textEncoder.config } };
  for (const part of Object.keys(PARTS) as Part[]) {
    assert.is((part === 'text_encoder' ? c.textEncoder : c[part]).configFrom, 'shapes');
    for (const [k, v] of Object.entries(meta[part])) assert.equal(inferred[part][k], v, `${part}.${k}`);
    const extra = Object.keys(inferred[part]).filter((k) => !(k in meta[part]));
    assert.equal(extra, part === 'text_encoder' ? ['architectures'] : [], `${part}: fields the metadata config does not have`);
  }
  // Given fields win over the metadata too.
  const given = sd15SingleFile(file, { unet: { attention_head_dim: 4 } });
  assert.is(given.unet.config.attention_head_dim, 4);
  assert.equal(given.unet.config.block_out_channels, meta.unet.block_out_channels);
  assert.is(given.unet.configFrom, 'metadata');
  await file.close();
});

test('(c) the full-size SD1.5 single file (shapes of v1-5-pruned-emaonly): configs from shapes are the official ones, views hold the diffusers manifests exactly', () => {
  const m = readJson<{ tensors: Record<string, { shape: number[]; dtype: string }> }>(FIXTURES, 'manifests', 'sd15-single-file.json');
  const src = shapesOnly('v1-5-pruned-emaonly.safetensors', m.tensors);
  assert.ok(isSd15SingleFile(src));
  const c = sd15SingleFile(src);
  const official = (n: string) => {
    const cfg = readJson<Record<string, unknown>>(FIXTURES, 'manifests', `sd15-${n}.config.json`);
    delete cfg._source;
    return cfg;
  };
  const ours: Record<string, Record<string, unknown>> = { unet: { ...c.unet.config }, vae: { ...c.vae.config }, 'text-encoder': { ...c.textEncoder.config } };
  for (const [n, cfg] of Object.entries(ours)) {
    const off = official(n);
    for (const [k, v] of Object.entries(off)) assert.equal(cfg[k], v, `${n}.${k}`);
    assert.equal(Object.keys(cfg).filter((k) => !(k in off)), [], `${n}: fields the official config does not have`);
  }
  const views: Record<string, TensorSource> = { unet: c.unet.source, vae: c.vae.source, 'text-encoder': c.textEncoder.source };
  for (const [n, view] of Object.entries(views)) {
    const manifest = readJson<{ tensors: Record<string, { shape: number[] }> }>(FIXTURES, 'manifests', `sd15-${n}.json`).tensors;
    // transformers 4.44 lists the position_ids buffer in the text encoder's state dict; diffusers and the loaders ignore it.
    const want = Object.keys(manifest).filter((k) => !k.endsWith('position_ids')).sort();
    assert.equal(view.names().sort(), want, `${n}: names`);
    for (const k of want) assert.equal(view.info(k).shape, manifest[k]!.shape, `${n} ${k}`);
  }
});

test('(d) an fp16 copy loads: F16 views, values the rounded fixture weights, outputs within the f16-weight tolerance', async () => {
  const rt = await runtime();
  const file = await SafetensorsFile.open(FILE);
  const all = await readAll(file);
  const half = new Map<string, RawTensor>();
  for (const [k, t] of all) {
    const f = await file.readFloat32(k);
    const h = f32ArrayToF16(f.data);
    half.set(k, { dtype: 'F16', shape: t.shape, bytes: new Uint8Array(h.buffer, h.byteOffset, h.byteLength) });
  }
  const f16 = await encode(half, 'sd15-fp16.safetensors', { ...file.metadata });
  const c = sd15SingleFile(f16);
  const ref = await SafetensorsFile.open(PARTS.unet);
  for (const n of ref.names()) {
    assert.is(c.unet.source.info(n).dtype, 'F16');
    const got = (await c.unet.source.readFloat32(n)).data;
    const want = (await ref.readFloat32(n)).data;
    assert.ok(normalisedError(got, want) < 2e-3, `${n}: f16 rounding`);
  }
  await ref.close();
  assert.is(c.vae.source.info('encoder.mid_block.attentions.0.to_q.weight').shape.length, 2);
  const tol = () => 1e-2; // F16_WEIGHTS_TOLERANCE: every weight rounded to f16
  report('fp16 unet-tiny', await unetParity(rt, c, 'fp16 unet', tol));
  report('fp16 vae-encoder-tiny', await vaeParity(rt, c, 'fp16 vae', tol));
  report('fp16 clip-text-tiny', await textParity(rt, c, 'fp16 text', tol));
  await f16.close();
  await file.close();
});

test('(d) EMA copies (model_ema.diffusion_model<key without dots>): non-EMA weights by default as diffusers, EMA with { ema: true }; schedule buffers and position_ids ignored', async () => {
  const rt = await runtime();
  const file = await SafetensorsFile.open(FILE);
  const all = await readAll(file);
  const tensors = new Map<string, RawTensor>();
  const U = 'model.diffusion_model.';
  for (const [k, t] of all) {
    if (k.startsWith(U)) {
      // The EMA copy holds the fixture weights; the training weights are these negated.
      tensors.set(emaKeyOf(k.slice(U.length)), t);
      const f = (await file.readFloat32(k)).data.map((x) => -x);
      tensors.set(k, { dtype: 'F32', shape: t.shape, bytes: new Uint8Array(f.buffer) });
    } else tensors.set(k, t);
  }
  assert.ok(tensors.has('model_ema.diffusion_modelinput_blocks00weight'), "LitEma's name of input_blocks.0.0.weight");
  assert.ok(tensors.has('model_ema.diffusion_modeloutput_blocks51transformer_blocks0attn2to_kweight'));
  const scalar = (v: number): RawTensor => ({ dtype: 'F32', shape: [], bytes: new Uint8Array(new Float32Array([v]).buffer) });
  tensors.set('model_ema.decay', scalar(0.9999));
  tensors.set('model_ema.num_updates', { dtype: 'I32', shape: [], bytes: new Uint8Array(new Int32Array([1000]).buffer) });
  tensors.set('alphas_cumprod', { dtype: 'F32', shape: [1000], bytes: new Uint8Array(4000) });
  tensors.set('betas', { dtype: 'F32', shape: [1000], bytes: new Uint8Array(4000) });
  tensors.set('cond_stage_model.transformer.text_model.embeddings.position_ids', { dtype: 'I64', shape: [1, 77], bytes: new Uint8Array(new BigInt64Array(77).map((_, i) => BigInt(i)).buffer) });
  const ema = await encode(tensors, 'sd15-ema.safetensors'); // no metadata: configs from shapes
  const given = { unet: { norm_num_groups: 8 }, vae: { norm_num_groups: 8 }, textEncoder: { num_attention_heads: 4 } };
  const ref = await SafetensorsFile.open(PARTS.unet);
  const def = sd15SingleFile(ema, given);
  assert.is(def.ema, false);
  const on = sd15SingleFile(ema, { ...given, ema: true });
  assert.is(on.ema, true);
  for (const n of ref.names()) {
    const want = await ref.readFloat32(n);
    assert.ok(sameBytes((await on.unet.source.readRaw(n)).bytes, (await ref.readRaw(n)).bytes), `ema ${n}`);
    const neg = (await def.unet.source.readFloat32(n)).data;
    assert.ok(neg.every((x, i) => x === -want.data[i]!), `non-EMA ${n}`);
  }
  assert.equal(on.unet.source.names().sort(), ref.names().sort());
  assert.ok(!on.textEncoder.source.names().some((k) => k.includes('position_ids')), 'position_ids left out');
  report('EMA unet-tiny', await unetParity(rt, on, 'EMA unet'));
  // EMA asked for but a copy is missing: an error naming it.
  tensors.delete(emaKeyOf('out.2.weight'));
  const partial = await encode(tensors, 'sd15-partial-ema.safetensors');
  await rejects(() => sd15SingleFile(partial, { ...given, ema: true }), /U-Net: EMA weights requested, but 1 of the \d+ model\.diffusion_model\.\* tensors have no EMA copy, e\.g\. model_ema\.diffusion_modelout2weight/, 'partial EMA');
  assert.is(sd15SingleFile(partial, given).ema, false, 'the non-EMA weights still load');
  // A file without EMA copies: { ema: true } takes the weights it has, as diffusers does.
  assert.is(sd15SingleFile(file, { ema: true }).ema, false);
  await ref.close();
  await file.close();
});

test('(d) a state_dict.-prefixed copy (a nested .ckpt converted) maps to the same views', async () => {
  const file = await SafetensorsFile.open(FILE);
  const all = await readAll(file);
  const prefixed = new Map([...all].map(([k, t]) => [`state_dict.${k}`, t] as const));
  prefixed.set('state_dict.alphas_cumprod', { dtype: 'F32', shape: [4], bytes: new Uint8Array(16) });
  const src = await encode(prefixed, 'sd15-state-dict.safetensors', { ...file.metadata });
  assert.ok(isSd15SingleFile(src));
  const a = viewsOf(sd15SingleFile(src));
  const b = viewsOf(sd15SingleFile(file));
  for (const part of Object.keys(PARTS) as Part[]) {
    assert.equal(a[part].names().sort(), b[part].names().sort(), part);
    for (const n of b[part].names()) {
      assert.equal(a[part].info(n).shape, b[part].info(n).shape);
      assert.ok(sameBytes((await a[part].readRaw(n)).bytes, (await b[part].readRaw(n)).bytes), `${part} ${n}`);
    }
  }
  // Nested twice, without metadata.
  const twice = await encode(new Map([...prefixed].map(([k, t]) => [`state_dict.${k}`, t] as const)), 'twice.safetensors');
  const t = sd15SingleFile(twice, { unet: { norm_num_groups: 8 }, vae: { norm_num_groups: 8 }, textEncoder: { num_attention_heads: 4 } });
  assert.is(t.unet.source.info('conv_in.weight').name, 'conv_in.weight');
  assert.equal(t.unet.source.names().sort(), b.unet.names().sort());
  await file.close();
});

/** A small F32 tensor of `shape`. */
function zeros(shape: number[]): RawTensor {
  return { dtype: 'F32', shape, bytes: new Uint8Array(4 * shape.reduce((a, b) => a * b, 1)) };
}

test('(e) SDXL, SD 2.x, diffusers-layout and garbage files are clear errors; so are missing tensors and configs that do not fit', async () => {
  const sdxl = await encode(
    new Map([
      ['conditioner.embedders.0.transformer.text_model.embeddings.position_embedding.weight', zeros([77, 8])],
      ['conditioner.embedders.1.model.positional_embedding', zeros([77, 8])],
      ['model.diffusion_model.input_blocks.0.0.weight', zeros([8, 4, 3, 3])],
      ['first_stage_model.encoder.conv_in.weight', zeros([8, 3, 3, 3])],
    ]),
    'sdxl.safetensors',
  );
  assert.not.ok(isSd15SingleFile(sdxl));
  await rejects(() => sd15SingleFile(sdxl), /^sdxl\.safetensors: this is an SDXL checkpoint \(conditioner\.embedders\.\*.*\), not Stable Diffusion 1\.5; an SD1\.5 single file holds model\.diffusion_model\.\*/, 'SDXL');
  const sd2 = await encode(
    new Map([
      ['cond_stage_model.model.token_embedding.weight', zeros([10, 8])],
      ['model.diffusion_model.input_blocks.0.0.weight', zeros([8, 4, 3, 3])],
      ['first_stage_model.encoder.conv_in.weight', zeros([8, 3, 3, 3])],
    ]),
    'sd2.safetensors',
  );
  await rejects(() => sd15SingleFile(sd2), /this is an SD 2\.x checkpoint \(cond_stage_model\.model\.\*: OpenCLIP/, 'SD 2.x');
  const garbage = await encode(new Map([['foo.weight', zeros([2])], ['bar.bias', zeros([3])]]), 'garbage.safetensors');
  assert.not.ok(isSd15SingleFile(garbage));
  await rejects(() => sd15SingleFile(garbage), /^garbage\.safetensors: no U-Net tensors \(model\.diffusion_model\.\*\): not an SD1\.5 single-file checkpoint; .*first_stage_model\.\*.*cond_stage_model\.transformer\.text_model\.\*.*; the file's first keys: (foo\.weight, bar\.bias|bar\.bias, foo\.weight)$/, 'garbage');
  const diffusersUnet = await SafetensorsFile.open(PARTS.unet);
  await rejects(() => sd15SingleFile(diffusersUnet), /no U-Net tensors .*first keys: .*conv_in\./, 'a diffusers component file');
  await diffusersUnet.close();

  const file = await SafetensorsFile.open(FILE);
  const all = await readAll(file);
  const without = async (drop: (k: string) => boolean, name: string, meta = true) => encode(new Map([...all].filter(([k]) => !drop(k))), name, meta ? { ...file.metadata } : undefined);
  await rejects(async () => sd15SingleFile(await without((k) => k.startsWith('first_stage_model.'), 'unet-only.safetensors')), /has a U-Net but not the VAE \(first_stage_model\.\*\)/, 'no VAE');
  // A tensor missing: named under its diffusers name, with the config's origin.
  await rejects(async () => sd15SingleFile(await without((k) => k === 'model.diffusion_model.output_blocks.4.1.proj_out.weight', 'missing.safetensors')), /U-Net: the tensors \(diffusers names\) do not match the config from the file metadata: 1 missing: up_blocks\.1\.attentions\.1\.proj_out\.weight$/, 'missing U-Net tensor');
  await rejects(async () => sd15SingleFile(await without((k) => k === 'first_stage_model.encoder.mid.attn_1.q.bias', 'missing-vae.safetensors')), /VAE: .* 1 missing: encoder\.mid_block\.attentions\.0\.to_q\.bias/, 'missing VAE tensor');
  // Without metadata, a tensor the inference needs: its single-file name.
  await rejects(async () => sd15SingleFile(await without((k) => k === 'cond_stage_model.transformer.text_model.embeddings.token_embedding.weight', 'no-tokens.safetensors', false)), /text encoder: no tensor "cond_stage_model\.transformer\.text_model\.embeddings\.token_embedding\.weight"/, 'inference needs a tensor');
  // A given config that does not fit the tensors.
  await rejects(() => sd15SingleFile(file, { unet: { layers_per_block: 1 } }), /U-Net: the tensors \(diffusers names\) do not match the config from the file metadata and the given fields: \d+ missing: .*not in the config's model/, 'wrong layers_per_block');
  await rejects(() => sd15SingleFile(file, { textEncoder: { intermediate_size: 64 } }), /text encoder: the tensors \(diffusers names\) do not match the config from the file metadata and the given fields: 6 with another shape: .*text_model\.encoder\.layers\.0\.mlp\.fc1\.bias \[128\] \(config: \[64\]\)/, 'wrong intermediate_size');
  await file.close();
});

test.run();

/** A diffusers pipeline folder holding the three fixture models the single file was converted from
 *  (the same tensors and configs), with the fixture tokenizer and SD1.5's scheduler. */
function pipelineFolder(): string {
  const dir = mkdtempSync(join(tmpdir(), 'diffsim-single-'));
  const put = (part: string, file: string, weights: string) => {
    mkdirSync(join(dir, part), { recursive: true });
    copyFileSync(weights, join(dir, part, file));
    const config = JSON.parse(readSafetensorsMetadata(weights).config!) as unknown;
    writeFileSync(join(dir, part, 'config.json'), JSON.stringify(config));
  };
  put('unet', 'diffusion_pytorch_model.safetensors', PARTS.unet);
  put('vae', 'diffusion_pytorch_model.safetensors', PARTS.vae);
  put('text_encoder', 'model.safetensors', PARTS.text_encoder);
  mkdirSync(join(dir, 'tokenizer'));
  for (const f of ['vocab.json', 'merges.txt', 'tokenizer_config.json', 'special_tokens_map.json']) copyFileSync(join(FIXTURES, 'clip-text-tiny', 'tokenizer', f), join(dir, 'tokenizer', f));
  mkdirSync(join(dir, 'scheduler'));
  copyFileSync(join(FIXTURES, 'manifests', 'sd15-scheduler.config.json'), join(dir, 'scheduler', 'scheduler_config.json'));
  return dir;
}

function readSafetensorsMetadata(path: string): Record<string, string> {
  const bytes = readFileSync(path);
  const n = Number(bytes.readBigUInt64LE(0));
  return (JSON.parse(bytes.subarray(8, 8 + n).toString('utf8')) as { __metadata__?: Record<string, string> }).__metadata__ ?? {};
}

test('the loader layer takes the single file: loadSd15, createMetric and `diffsim score --model FILE --tokenizer DIR` give the score of the same models as a pipeline folder', async () => {
  const rt = await runtime();
  const tokenizer = join(FIXTURES, 'clip-text-tiny', 'tokenizer');
  // loadSd15 recognises the file by its tensor names and needs a tokenizer from elsewhere.
  await rejects(() => loadSd15(rt, FILE), /sd15-tiny-single-file\.safetensors: a single-file checkpoint holds no tokenizer/, 'no tokenizer');
  const sd = await loadSd15(rt, FILE, { tokenizer: await localModelFiles(tokenizer) });
  assert.equal(sd.layout, { kind: 'single-file', file: 'sd15-tiny-single-file.safetensors' });
  assert.equal(sd.scheduler!.timesteps(1000).slice(0, 3), [1000, 999, 999]);
  const inputs = await unetTinyInputs(rt);
  const out = await take(sd.unet!.forward(inputs.sample, inputs.t, inputs.text).sample!);
  const err = normalisedError(out, inputs.ref);
  assert.ok(err <= toleranceFor('output.sample'), `U-Net from the single file: ${err}`);
  await inputs.dispose();
  for (const m of [sd.unet!, sd.vae!, sd.textEncoder!]) m.store.dispose();

  const dir = pipelineFolder();
  try {
    const images = [join(FIXTURES, 'diffsim-tiny', 'image_A.png'), join(FIXTURES, 'diffsim-tiny', 'image_B.png')] as const;
    const fromFolder = await createMetric('diffsim', { runtime: rt, model: dir });
    const want = await fromFolder.score(images[0], images[1]);
    await fromFolder.close();
    const fromFile = await createMetric('diffsim', { runtime: rt, model: FILE, tokenizer });
    assert.is(await fromFile.score(images[0], images[1]), want, 'createMetric: single file vs pipeline folder');
    await fromFile.close();
    const cli = runCli(['score', ...images, '--model', FILE, '--tokenizer', tokenizer, '--json']);
    assert.is(cli.code, 0, cli.stderr);
    assert.is((JSON.parse(cli.stdout.trim().split('\n').pop()!) as { score: number }).score, want, 'CLI: single file vs pipeline folder');
    // A file that is no SD1.5 checkpoint is named with what was expected.
    const bad = runCli(['score', ...images, '--model', PARTS.unet, '--tokenizer', tokenizer]);
    assert.is(bad.code, 1);
    assert.match(bad.stderr, /unet\.safetensors: not an SD1\.5 checkpoint: expected a diffusers pipeline folder .* or a single file with model\.diffusion_model\.\*/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
