// Stable Diffusion 1.5 single-file checkpoints (A1111 / ComfyUI / the original CompVis layout, e.g.
// `v1-5-pruned-emaonly.safetensors`) as the three diffusers components the loaders take.
//
// What a user gets
// ----------------
//   isSd15SingleFile(src)            true when `src` holds an SD1.5 checkpoint in the original layout:
//                                    `model.diffusion_model.*` (U-Net), `first_stage_model.*` (VAE) and
//                                    `cond_stage_model.transformer.*` (CLIP text encoder).
//   sd15SingleFile(src, options?)    { unet, vae, textEncoder, ema }: each component is
//                                    { source, config, configFrom }, where `source` is a TensorSource
//                                    *view* of the one file under the diffusers names and shapes (what
//                                    unetFromSource / vaeEncoderFromSource / textEncoderFromSource read)
//                                    and `config` the diffusers config. Nothing is read or copied up
//                                    front: a view renames keys and forwards each read to the file.
//                                    Closing a view does nothing: the caller owns (and closes) the file.
//
//     const file = await SafetensorsFile.open('v1-5-pruned-emaonly.safetensors');  // or a Blob's source
//     const sd = sd15SingleFile(file);                      // sd15SingleFile(file, { ema: true }), …
//     const unet = await unetFromSource(rt, sd.unet.source, sd.unet.config);
//     const vae = await vaeEncoderFromSource(rt, sd.vae.source, sd.vae.config);
//     const text = await textEncoderFromSource(rt, sd.textEncoder.source, sd.textEncoder.config);
//     await file.close();                                  // the weights are on the GPU now
//
// The VAE view already has diffusers' names and Linear shapes, so vaeEncoderFromSource's legacy
// renames (legacyVaeKey) and allowSqueeze find nothing to do; other consumers of the view (a
// converter writing a diffusers folder, say) get exactly diffusers' state dict.
//
// What diffusers does the same (v0.29.2, loaders/single_file_utils.py)
// --------------------------------------------------------------------
// - Key names: convert_ldm_unet_checkpoint (input_blocks.{i}.0 → down_blocks.{b}.resnets.{l} with
//   b = (i−1) // (layers_per_block+1), l = (i−1) % (layers_per_block+1); .0.op → downsamplers.0.conv;
//   .1 → attentions.{l}; middle_block.0/1/2 → mid_block.resnets.0 / attentions.0 / resnets.1;
//   output_blocks.{i} → up_blocks.{i // (layers_per_block+1)}, with .1.conv / .2.conv the upsampler;
//   resnet in_layers.0/2, out_layers.0/3, emb_layers.1, skip_connection → norm1, conv1, norm2, conv2,
//   time_emb_proj, conv_shortcut; time_embed.0/2, input_blocks.0.0, out.0/2 → time_embedding.linear_1/2,
//   conv_in, conv_norm_out, conv_out), convert_ldm_vae_checkpoint (down.{i}.block.{j} →
//   down_blocks.{i}.resnets.{j}; decoder up.{b} → up_blocks.{n−1−b}; nin_shortcut → conv_shortcut;
//   norm_out → conv_norm_out; mid.block_1/2 → mid_block.resnets.0/1; mid.attn_1.{norm,q,k,v,proj_out}
//   → mid_block.attentions.0.{group_norm,to_q,to_k,to_v,to_out.0}, the 1×1-conv weights (C, C, 1, 1)
//   reshaped to Linear (C, C)) and convert_ldm_clip_checkpoint (strip `cond_stage_model.transformer.`).
// - EMA: a file may also carry EMA copies of the U-Net as `model_ema.<key after "model." without its
//   dots>` (LitEma's names: model.diffusion_model.input_blocks.0.0.weight →
//   model_ema.diffusion_modelinput_blocks00weight). Like diffusers (extract_ema=False by default) the
//   U-Net view reads the non-EMA `model.diffusion_model.*`; `{ ema: true }` reads the EMA copies
//   instead, when the file has them (else, as diffusers, the non-EMA ones: an "emaonly" file stores
//   its EMA weights as model.diffusion_model.*). `ema` in the result says which were taken.
//   diffusers counts "more than 100 model_ema* keys"; here any EMA copy of a U-Net key counts, and
//   then every U-Net key must have one (an error names the first without, where diffusers would
//   hand the model a None).
// - `state_dict.` prefix: diffusers unwraps a nested "state_dict" (while "state_dict" in checkpoint);
//   conversions of such .ckpt files to safetensors carry it as a key prefix, stripped here (repeated
//   prefixes too).
// - Keys outside the three models (alphas_cumprod and the other DDPM buffers, model_ema.decay,
//   model_ema.num_updates, the text encoder's position_ids buffer, logvar, …) are left out of the views.
// - fp16 / bf16 files: the views hand out the file's dtype; the weight loader converts.
// Beyond diffusers: configs can come from the file's metadata or from the tensor shapes (diffusers
// takes them from the original YAML / its hub defaults), and an older text-encoder layout without
// `text_model.` (cond_stage_model.transformer.embeddings.*) gets that prefix.
//
// Configs (per component; `options.unet` / `.vae` / `.textEncoder` fields always win):
//   1. the safetensors `__metadata__` key `config` when it is JSON {"configs": {"unet": {…}, "vae":
//      {…}, "text_encoder": {…}}} (a component missing there, or metadata that is not such JSON,
//      falls back to 2);
//   2. inferred from the tensor shapes (see inferUnetConfig / inferVaeConfig / inferTextConfig), the
//      rest from SD1.5's official configs (runwayml/stable-diffusion-v1-5 unet/vae/text_encoder).
// Every resulting config is checked against the view: the model it describes is declared (no GPU
// involved) and its parameter names and shapes must be exactly the view's, so a wrong config or a
// missing tensor is an error here, naming the keys, not a failed load later.
// SD 2.x (OpenCLIP text encoder `cond_stage_model.model.*`), SDXL (`conditioner.embedders.*`), SD3
// and files without the three models are errors that say what was expected and what the file holds.

import { FileError } from '../io/errors.js';
import type { RawTensor, TensorInfo, TensorSource } from '../io/safetensors.js';
import { WeightStore } from '../nn/weights.js';
import { ClipTextModel, type ClipTextConfig } from './clip-text.js';
import { UNet2DConditionModel, type UNetConfig } from './unet.js';
import { VaeEncoder, type VaeConfig } from './vae.js';

export class SingleFileError extends FileError {
  override name = 'SingleFileError';
}

/** Where a component's config came from (fields given in the options override either). */
export type ConfigOrigin = 'metadata' | 'shapes';

export interface SingleFileComponent<C> {
  /** The component's tensors under their diffusers names and shapes; a view of the file (close() does nothing). */
  source: TensorSource;
  config: C;
  configFrom: ConfigOrigin;
}

export interface SingleFileComponents {
  unet: SingleFileComponent<UNetConfig>;
  /** The full AutoencoderKL (encoder, quant_conv, decoder, post_quant_conv) as diffusers names it. */
  vae: SingleFileComponent<VaeConfig>;
  textEncoder: SingleFileComponent<ClipTextConfig>;
  /** Whether the U-Net view reads the EMA copies (`model_ema.*`). */
  ema: boolean;
}

export interface SingleFileOptions {
  /** Config fields that win over the metadata's and the inferred ones (a whole config, or the
   *  fields that shapes cannot tell, such as attention_head_dim or norm_num_groups). */
  unet?: Partial<UNetConfig>;
  vae?: Partial<VaeConfig>;
  textEncoder?: Partial<ClipTextConfig>;
  /** Read the U-Net's EMA weights when the file has them (diffusers' extract_ema; default false). */
  ema?: boolean;
}

/** Key prefixes of the original layout. */
export const LDM_UNET_PREFIX = 'model.diffusion_model.';
export const LDM_VAE_PREFIX = 'first_stage_model.';
export const LDM_CLIP_PREFIX = 'cond_stage_model.transformer.';
/** EMA copies: `model_ema.` + the key after `model.` with its dots removed. */
export const LDM_EMA_PREFIX = 'model_ema.';

/** SD1.5's official configs (runwayml/stable-diffusion-v1-5) for what the shapes cannot tell. */
const SD15_UNET_DEFAULTS = {
  act_fn: 'silu',
  attention_head_dim: 8,
  center_input_sample: false,
  downsample_padding: 1,
  flip_sin_to_cos: true,
  freq_shift: 0,
  mid_block_scale_factor: 1,
  norm_eps: 1e-5,
  norm_num_groups: 32,
  sample_size: 64,
} as const;
const SD15_VAE_DEFAULTS = { act_fn: 'silu', norm_num_groups: 32, sample_size: 512, scaling_factor: 0.18215 } as const;
const SD15_TEXT_DEFAULTS = {
  attention_dropout: 0,
  bos_token_id: 0,
  dropout: 0,
  eos_token_id: 2,
  hidden_act: 'quick_gelu',
  initializer_factor: 1,
  initializer_range: 0.02,
  layer_norm_eps: 1e-5,
  model_type: 'clip_text_model',
  pad_token_id: 1,
  projection_dim: 768,
} as const;
/** CLIP text towers use 64-wide heads (ViT-L/14: 768 = 12 × 64). */
const CLIP_HEAD_SIZE = 64;

function q(s: string): string {
  return JSON.stringify(s);
}

/** "a, b, c and 4 more" */
function listSome(keys: readonly string[], n = 5): string {
  const shown = keys.slice(0, n).join(', ');
  return keys.length > n ? `${shown} and ${keys.length - n} more` : shown;
}

// ---------------------------------------------------------------------------------------------
// The view

interface Entry {
  /** Key in the file. */
  key: string;
  /** Shape under the diffusers name (differs from the file's only for reshaped weights). */
  shape: number[];
}

/** A component of the file under other names (and, for a few tensors, another shape with the same
 *  bytes). Reads go to the file; close() leaves it open. */
class RenamedSource implements TensorSource {
  readonly metadata: Readonly<Record<string, string>>;
  constructor(
    readonly name: string,
    private readonly file: TensorSource,
    private readonly entries: ReadonlyMap<string, Entry>,
    config: object,
  ) {
    // The file's metadata, with `config` the component's own (as in a diffusers component file).
    this.metadata = Object.freeze({ ...file.metadata, config: JSON.stringify(config) });
  }
  names(): string[] {
    return [...this.entries.keys()];
  }
  has(name: string): boolean {
    return this.entries.has(name);
  }
  private entry(name: string): Entry {
    const e = this.entries.get(name);
    if (!e) throw new SingleFileError(this.name, `no tensor named ${q(name)}`);
    return e;
  }
  info(name: string): TensorInfo {
    const e = this.entry(name);
    return { ...this.file.info(e.key), name, shape: [...e.shape] };
  }
  async readRaw(name: string): Promise<RawTensor> {
    const e = this.entry(name);
    const raw = await this.file.readRaw(e.key);
    return { ...raw, shape: [...e.shape] };
  }
  async readFloat32(name: string): Promise<{ shape: number[]; data: Float32Array }> {
    const e = this.entry(name);
    const { data } = await this.file.readFloat32(e.key);
    return { shape: [...e.shape], data };
  }
  /** The file belongs to the caller: nothing to close here. */
  async close(): Promise<void> {}
}

// ---------------------------------------------------------------------------------------------
// Layout detection

interface Layout {
  /** `state_dict.` repeated as often as the file nests it ('' for most files). */
  prefix: string;
}

/** Marker keys of the models this module does not read, with what they are. */
const OTHER_FAMILIES: { test: (key: string) => boolean; what: string }[] = [
  { test: (k) => k.startsWith('conditioner.embedders.'), what: 'an SDXL checkpoint (conditioner.embedders.*: CLIP ViT-L + OpenCLIP ViT-bigG text encoders)' },
  { test: (k) => k.startsWith('cond_stage_model.model.'), what: 'an SD 2.x checkpoint (cond_stage_model.model.*: OpenCLIP ViT-H text encoder)' },
  { test: (k) => k.startsWith('text_encoders.') || k.startsWith(`${LDM_UNET_PREFIX}joint_blocks.`), what: 'an SD3 checkpoint (MMDiT, text_encoders.*)' },
  { test: (k) => k.startsWith('control_model.'), what: 'a ControlNet checkpoint (control_model.*)' },
];

const EXPECTED = `an SD1.5 single file holds ${LDM_UNET_PREFIX}* (U-Net), ${LDM_VAE_PREFIX}* (VAE) and ${LDM_CLIP_PREFIX}text_model.* (CLIP text encoder), optionally under "state_dict."`;

function firstKeys(names: readonly string[]): string {
  return names.length ? `the file's first keys: ${listSome(names, 6)}` : 'the file has no tensors';
}

/** The layout of an SD1.5 single file, or why `src` is not one. */
function detect(src: TensorSource): Layout | { error: string } {
  const names = src.names();
  let prefix = '';
  while (!names.some((k) => k.startsWith(prefix + LDM_UNET_PREFIX)) && names.some((k) => k.startsWith(`${prefix}state_dict.`))) prefix += 'state_dict.';
  const rel = names.filter((k) => k.startsWith(prefix)).map((k) => k.slice(prefix.length));
  for (const f of OTHER_FAMILIES) {
    if (rel.some(f.test)) return { error: `this is ${f.what}, not Stable Diffusion 1.5; ${EXPECTED}` };
  }
  const has = (p: string) => rel.some((k) => k.startsWith(p));
  if (!has(LDM_UNET_PREFIX)) return { error: `no U-Net tensors (${LDM_UNET_PREFIX}*): not an SD1.5 single-file checkpoint; ${EXPECTED}; ${firstKeys(names)}` };
  // SD 2.x U-Nets cross-attend to 1024-wide OpenCLIP states (diffusers' "v2" check).
  const v2 = src.has(`${prefix}${LDM_UNET_PREFIX}input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight`) ? src.info(`${prefix}${LDM_UNET_PREFIX}input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight`).shape : null;
  if (v2 && v2[v2.length - 1] === 1024) return { error: `this U-Net cross-attends to 1024-wide text states (SD 2.x), not Stable Diffusion 1.5's 768; ${EXPECTED}` };
  const missing = [
    !has(LDM_VAE_PREFIX) ? `the VAE (${LDM_VAE_PREFIX}*)` : null,
    !has(LDM_CLIP_PREFIX) ? `the text encoder (${LDM_CLIP_PREFIX}*)` : null,
  ].filter((m): m is string => m !== null);
  if (missing.length) return { error: `has a U-Net but not ${missing.join(' or ')}; ${EXPECTED}; ${firstKeys(names)}` };
  return { prefix };
}

/** Whether `src` holds an SD1.5 checkpoint in the original single-file layout (the U-Net, the VAE
 *  and the CLIP text encoder; `state_dict.`-prefixed too). Reads only the key names. */
export function isSd15SingleFile(src: TensorSource): boolean {
  return !('error' in detect(src));
}

// ---------------------------------------------------------------------------------------------
// Key mapping (diffusers v0.29.2's converters, key by key)

const RESNET_UNET: Record<string, string> = {
  'in_layers.0': 'norm1',
  'in_layers.2': 'conv1',
  'out_layers.0': 'norm2',
  'out_layers.3': 'conv2',
  'emb_layers.1': 'time_emb_proj',
  skip_connection: 'conv_shortcut',
};

/** update_unet_resnet_ldm_to_diffusers on the part after the block (e.g. "in_layers.2.weight"). */
function unetResnet(rest: string): string {
  for (const [from, to] of Object.entries(RESNET_UNET)) if (rest.startsWith(`${from}.`)) return to + rest.slice(from.length);
  return rest;
}

/** The diffusers name of a U-Net key (after `model.diffusion_model.`), or null when it is none of
 *  SD1.5's. `layersPerBlock` places input/output blocks as diffusers does. */
export function unetKeyToDiffusers(key: string, layersPerBlock: number): string | null {
  const per = layersPerBlock + 1;
  const top: Record<string, string> = { 'time_embed.0': 'time_embedding.linear_1', 'time_embed.2': 'time_embedding.linear_2', 'input_blocks.0.0': 'conv_in', 'out.0': 'conv_norm_out', 'out.2': 'conv_out' };
  let m = /^(time_embed\.[02]|input_blocks\.0\.0|out\.[02])\.(weight|bias)$/.exec(key);
  if (m) return `${top[m[1]!]}.${m[2]}`;
  m = /^input_blocks\.(\d+)\.([01])\.(.+)$/.exec(key);
  if (m) {
    const i = Number(m[1]);
    if (i < 1) return null;
    const b = Math.floor((i - 1) / per);
    const l = (i - 1) % per;
    if (m[2] === '1') return `down_blocks.${b}.attentions.${l}.${m[3]}`;
    const op = /^op\.(weight|bias)$/.exec(m[3]!);
    if (op) return `down_blocks.${b}.downsamplers.0.conv.${op[1]}`;
    return `down_blocks.${b}.resnets.${l}.${unetResnet(m[3]!)}`;
  }
  m = /^middle_block\.([012])\.(.+)$/.exec(key);
  if (m) return m[1] === '1' ? `mid_block.attentions.0.${m[2]}` : `mid_block.resnets.${m[1] === '0' ? 0 : 1}.${unetResnet(m[2]!)}`;
  m = /^output_blocks\.(\d+)\.([012])\.(.+)$/.exec(key);
  if (m) {
    const i = Number(m[1]);
    const b = Math.floor(i / per);
    const l = i % per;
    if (m[2] === '0') return `up_blocks.${b}.resnets.${l}.${unetResnet(m[3]!)}`;
    const conv = /^conv\.(weight|bias)$/.exec(m[3]!);
    if (conv) return `up_blocks.${b}.upsamplers.0.conv.${conv[1]}`;
    return m[2] === '1' ? `up_blocks.${b}.attentions.${l}.${m[3]}` : null;
  }
  return null;
}

const VAE_ATTN: Record<string, string> = { norm: 'group_norm', q: 'to_q', k: 'to_k', v: 'to_v', proj_out: 'to_out.0' };

/** The diffusers name of a VAE key (after `first_stage_model.`), or null when it is none of an
 *  AutoencoderKL's. `blocks` is the number of down (and up) blocks: decoder up.{b} is
 *  up_blocks.{blocks−1−b}. */
export function vaeKeyToDiffusers(key: string, blocks: number): string | null {
  const resnet = (rest: string) => rest.replace(/^nin_shortcut\./, 'conv_shortcut.');
  if (/^(post_)?quant_conv\.(weight|bias)$/.test(key) || /^(en|de)coder\.conv_(in|out)\.(weight|bias)$/.test(key)) return key;
  let m = /^((?:en|de)coder)\.norm_out\.(weight|bias)$/.exec(key);
  if (m) return `${m[1]}.conv_norm_out.${m[2]}`;
  m = /^encoder\.down\.(\d+)\.(block\.(\d+)\.(.+)|downsample\.conv\.(weight|bias))$/.exec(key);
  if (m) {
    if (Number(m[1]) >= blocks) return null;
    return m[3] !== undefined ? `encoder.down_blocks.${m[1]}.resnets.${m[3]}.${resnet(m[4]!)}` : `encoder.down_blocks.${m[1]}.downsamplers.0.conv.${m[5]}`;
  }
  m = /^decoder\.up\.(\d+)\.(block\.(\d+)\.(.+)|upsample\.conv\.(weight|bias))$/.exec(key);
  if (m) {
    const b = blocks - 1 - Number(m[1]);
    if (b < 0) return null;
    return m[3] !== undefined ? `decoder.up_blocks.${b}.resnets.${m[3]}.${resnet(m[4]!)}` : `decoder.up_blocks.${b}.upsamplers.0.conv.${m[5]}`;
  }
  m = /^((?:en|de)coder)\.mid\.block_([12])\.(.+)$/.exec(key);
  if (m) return `${m[1]}.mid_block.resnets.${Number(m[2]) - 1}.${resnet(m[3]!)}`;
  m = /^((?:en|de)coder)\.mid\.attn_1\.(norm|q|k|v|proj_out)\.(weight|bias)$/.exec(key);
  if (m) return `${m[1]}.mid_block.attentions.0.${VAE_ATTN[m[2]!]}.${m[3]}`;
  return null;
}

/** The diffusers (transformers CLIPTextModel) name of a text-encoder key (after
 *  `cond_stage_model.transformer.`); null for the position_ids buffer. */
export function clipKeyToDiffusers(key: string): string | null {
  if (/(^|\.)position_ids$/.test(key)) return null;
  // transformers < 4.? (early SD checkpoints) had no text_model level.
  if (/^(embeddings|encoder|final_layer_norm)\./.test(key)) return `text_model.${key}`;
  return key;
}

/** LitEma's name of the EMA copy of a U-Net key (after `model.diffusion_model.`). */
export function emaKeyOf(unetKey: string): string {
  return `${LDM_EMA_PREFIX}diffusion_model${unetKey.replace(/\./g, '')}`;
}

// ---------------------------------------------------------------------------------------------
// Config inference

/** Shapes of one component's keys (relative to its prefix) in the file. */
class Shapes {
  constructor(
    readonly file: string,
    readonly what: string,
    readonly keyPrefix: string,
    private readonly shapes: ReadonlyMap<string, readonly number[]>,
  ) {}
  has(k: string): boolean {
    return this.shapes.has(k);
  }
  get(k: string, ndim?: number): readonly number[] {
    const s = this.shapes.get(k);
    if (!s) throw new SingleFileError(this.file, `${this.what}: no tensor ${q(this.keyPrefix + k)}, which an SD1.5 ${this.what} has (${EXPECTED})`);
    if (ndim !== undefined && s.length !== ndim) throw new SingleFileError(this.file, `${this.what}: ${q(this.keyPrefix + k)} has shape [${s.join(', ')}], expected ${ndim} dimensions`);
    return s;
  }
  /** The indices i present as `<pattern i>` (pattern: a regex with one number group). */
  indices(re: RegExp): number[] {
    const out = new Set<number>();
    for (const k of this.shapes.keys()) {
      const m = re.exec(k);
      if (m) out.add(Number(m[1]));
    }
    return [...out].sort((a, b) => a - b);
  }
  fail(problem: string): never {
    throw new SingleFileError(this.file, `${this.what}: ${problem}`);
  }
}

/** Counts 0..n−1 and checks there are no gaps. */
function contiguous(s: Shapes, idx: number[], what: string): number {
  idx.forEach((v, i) => {
    if (v !== i) s.fail(`${what} are numbered ${listSome(idx.map(String), 12)}, expected 0…${idx.length - 1}`);
  });
  return idx.length;
}

/** The U-Net config from shapes (keys after `model.diffusion_model.`):
 *  in_channels, block_out_channels[0] ← input_blocks.0.0.weight [C0, in, 3, 3];
 *  out_channels ← out.2.weight [out, C0, 3, 3];
 *  number of blocks ← the downsamplers input_blocks.{i}.0.op + 1;
 *  layers_per_block ← (input blocks − 1 − downsamplers) / blocks, checked against the output blocks (blocks × (layers+1));
 *  block_out_channels[b] ← input_blocks.{1+b(layers+1)}.0.out_layers.3.weight [C_b, …];
 *  down_block_types ← whether input_blocks.{1+b(layers+1)}.1 (a transformer) exists;
 *  up_block_types ← whether output_blocks.{b(layers+1)}.1.proj_in exists;
 *  cross_attention_dim ← attn2.to_k.weight [inner, context] of the first transformer;
 *  transformer_layers_per_block ← its transformer_blocks (only set when not 1);
 *  use_linear_projection ← proj_in.weight being 2-D (SD 2.x; SD1.5 uses 1×1 convs, not set then).
 *  The rest: SD1.5's config (attention_head_dim 8, norm_num_groups 32, …). */
function inferUnetConfig(s: Shapes): UNetConfig & { sample_size: number } {
  const [c0, inChannels] = s.get('input_blocks.0.0.weight', 4) as [number, number];
  const [outChannels] = s.get('out.2.weight', 4) as [number];
  const inputs = contiguous(s, s.indices(/^input_blocks\.(\d+)\./), 'input blocks');
  const outputs = contiguous(s, s.indices(/^output_blocks\.(\d+)\./), 'output blocks');
  const blocks = s.indices(/^input_blocks\.(\d+)\.0\.op\.weight$/).length + 1;
  const layers = (inputs - 1 - (blocks - 1)) / blocks;
  if (!Number.isInteger(layers) || layers < 1 || outputs !== blocks * (layers + 1)) {
    s.fail(`${inputs} input blocks, ${outputs} output blocks and ${blocks - 1} downsamplers do not make ${blocks} blocks of equal depth (SD1.5: 12 input blocks, 12 output blocks, 3 downsamplers)`);
  }
  const first = (b: number) => 1 + b * (layers + 1);
  const blockOut = Array.from({ length: blocks }, (_, b) => s.get(`input_blocks.${first(b)}.0.out_layers.3.weight`, 4)[0]!);
  if (blockOut[0] !== c0) s.fail(`conv_in gives ${c0} channels but the first block has ${blockOut[0]}`);
  const down = Array.from({ length: blocks }, (_, b) => (s.has(`input_blocks.${first(b)}.1.proj_in.weight`) ? 'CrossAttnDownBlock2D' : 'DownBlock2D'));
  const up = Array.from({ length: blocks }, (_, b) => (s.has(`output_blocks.${b * (layers + 1)}.1.proj_in.weight`) ? 'CrossAttnUpBlock2D' : 'UpBlock2D'));
  const attn = down.indexOf('CrossAttnDownBlock2D');
  const t = attn >= 0 ? `input_blocks.${first(attn)}.1` : 'middle_block.1';
  const cfg: UNetConfig & { sample_size: number; _class_name: string } = {
    _class_name: 'UNet2DConditionModel',
    ...SD15_UNET_DEFAULTS,
    block_out_channels: blockOut,
    cross_attention_dim: s.get(`${t}.transformer_blocks.0.attn2.to_k.weight`, 2)[1]!,
    down_block_types: down,
    in_channels: inChannels,
    layers_per_block: layers,
    out_channels: outChannels,
    up_block_types: up,
  };
  const depth = s.indices(new RegExp(`^${t.replace(/\./g, '\\.')}\\.transformer_blocks\\.(\\d+)\\.`)).length;
  if (depth !== 1) cfg.transformer_layers_per_block = depth;
  if (s.get(`${t}.proj_in.weight`).length === 2) cfg.use_linear_projection = true;
  return cfg;
}

/** The AutoencoderKL config from shapes (keys after `first_stage_model.`):
 *  in_channels, block_out_channels[0] ← encoder.conv_in.weight [ch, in, 3, 3];
 *  block_out_channels ← encoder.down.{i}.block.0.conv1.weight [C_i, …] (one per down block);
 *  layers_per_block ← encoder.down.0.block.{j};
 *  latent_channels ← encoder.conv_out.weight [2·latent, …] (mean and log-variance);
 *  out_channels ← decoder.conv_out.weight [out, …] (in_channels without a decoder);
 *  mid_block_add_attention ← encoder.mid.attn_1 (only set when absent).
 *  The rest: SD1.5's config (norm_num_groups 32, scaling_factor 0.18215, …). */
function inferVaeConfig(s: Shapes): VaeConfig & { out_channels: number; up_block_types: string[]; sample_size: number } {
  const [ch, inChannels] = s.get('encoder.conv_in.weight', 4) as [number, number];
  const blocks = contiguous(s, s.indices(/^encoder\.down\.(\d+)\./), 'encoder down blocks');
  if (blocks === 0) s.fail(`no encoder down blocks (${s.keyPrefix}encoder.down.0.*)`);
  const blockOut = Array.from({ length: blocks }, (_, i) => s.get(`encoder.down.${i}.block.0.conv1.weight`, 4)[0]!);
  if (blockOut[0] !== ch) s.fail(`conv_in gives ${ch} channels but the first block has ${blockOut[0]}`);
  const layers = contiguous(s, s.indices(/^encoder\.down\.0\.block\.(\d+)\./), 'resnets of encoder.down.0');
  const [moments] = s.get('encoder.conv_out.weight', 4) as [number];
  if (moments % 2 !== 0) s.fail(`encoder.conv_out has ${moments} output channels, not 2 × latent channels`);
  const cfg: VaeConfig & { _class_name: string; out_channels: number; up_block_types: string[]; sample_size: number } = {
    _class_name: 'AutoencoderKL',
    ...SD15_VAE_DEFAULTS,
    block_out_channels: blockOut,
    down_block_types: blockOut.map(() => 'DownEncoderBlock2D'),
    in_channels: inChannels,
    latent_channels: moments / 2,
    layers_per_block: layers,
    out_channels: s.has('decoder.conv_out.weight') ? s.get('decoder.conv_out.weight', 4)[0]! : inChannels,
    up_block_types: blockOut.map(() => 'UpDecoderBlock2D'),
  };
  if (!s.has('encoder.mid.attn_1.q.weight')) cfg.mid_block_add_attention = false;
  return cfg;
}

/** The CLIPTextModel config from shapes (keys after `cond_stage_model.transformer.text_model.`):
 *  vocab_size, hidden_size ← embeddings.token_embedding.weight [vocab, hidden];
 *  max_position_embeddings ← embeddings.position_embedding.weight [positions, hidden];
 *  num_hidden_layers ← encoder.layers.{i};
 *  intermediate_size ← encoder.layers.0.mlp.fc1.weight [intermediate, hidden];
 *  num_attention_heads ← hidden_size / 64 (CLIP's head size; 12 for SD1.5's 768), when it divides.
 *  The rest: SD1.5's config (quick_gelu, layer_norm_eps 1e-5, eos_token_id 2, …). */
function inferTextConfig(s: Shapes): ClipTextConfig & Record<string, unknown> {
  const [vocab, hidden] = s.get('embeddings.token_embedding.weight', 2) as [number, number];
  const [positions] = s.get('embeddings.position_embedding.weight', 2) as [number];
  const layers = contiguous(s, s.indices(/^encoder\.layers\.(\d+)\./), 'encoder layers');
  if (layers === 0) s.fail(`no encoder layers (${s.keyPrefix}encoder.layers.0.*)`);
  return {
    architectures: ['CLIPTextModel'],
    ...SD15_TEXT_DEFAULTS,
    hidden_size: hidden,
    intermediate_size: s.get('encoder.layers.0.mlp.fc1.weight', 2)[0]!,
    max_position_embeddings: positions,
    // Not in the shapes; CLIP text towers use 64-wide heads. A size 64 does not divide keeps
    // SD1.5's 12 and the check below asks for the value.
    num_attention_heads: hidden % CLIP_HEAD_SIZE === 0 ? hidden / CLIP_HEAD_SIZE : 12,
    num_hidden_layers: layers,
    vocab_size: vocab,
  };
}

// ---------------------------------------------------------------------------------------------
// Putting it together

/** The `configs` object of the metadata `config` key, when it is one. */
function metadataConfigs(src: TensorSource): Record<string, unknown> {
  const raw = src.metadata.config;
  if (typeof raw !== 'string') return {};
  try {
    const parsed = JSON.parse(raw) as unknown;
    const configs = parsed !== null && typeof parsed === 'object' ? (parsed as { configs?: unknown }).configs : undefined;
    return configs !== null && typeof configs === 'object' && !Array.isArray(configs) ? (configs as Record<string, unknown>) : {};
  } catch {
    return {}; // some other tool's `config` text: not ours
  }
}

function resolveConfig<C extends object>(meta: unknown, given: Partial<C> | undefined, infer: () => C): { config: C; from: ConfigOrigin } {
  const fromMeta = meta !== null && typeof meta === 'object' && !Array.isArray(meta);
  const base = fromMeta ? ({ ...(meta as C) } as C) : infer();
  const config = { ...base } as C;
  for (const [k, v] of Object.entries(given ?? {})) if (v !== undefined) (config as Record<string, unknown>)[k] = v;
  return { config, from: fromMeta ? 'metadata' : 'shapes' };
}

/** Checks a view against the parameters the config declares (names and shapes, exactly); `extra`
 *  view keys may be left over (the VAE decoder, which the encoder does not declare). */
function checkAgainstConfig(file: string, what: string, from: ConfigOrigin, given: object | undefined, view: RenamedSource, declare: (store: WeightStore) => void, extra: (k: string) => boolean = () => false): void {
  const origin = `${from === 'metadata' ? 'the file metadata' : 'the tensor shapes'}${given && Object.keys(given).length ? ' and the given fields' : ''}`;
  const store = new WeightStore();
  try {
    declare(store);
  } catch (e) {
    throw new SingleFileError(file, `${what}: the config from ${origin} is not usable (${(e as Error).message})`);
  }
  const declared = store.manifest();
  const missing: string[] = [];
  const misshaped: string[] = [];
  for (const [k, shape] of Object.entries(declared)) {
    if (!view.has(k)) {
      missing.push(k);
      continue;
    }
    const s = view.info(k).shape;
    if (s.length !== shape.length || s.some((d, i) => d !== shape[i])) misshaped.push(`${k} [${s.join(', ')}] (config: [${shape.join(', ')}])`);
  }
  const unexpected = view.names().filter((k) => !(k in declared) && !extra(k));
  if (missing.length || misshaped.length || unexpected.length) {
    const parts: string[] = [];
    if (missing.length) parts.push(`${missing.length} missing: ${listSome(missing)}`);
    if (misshaped.length) parts.push(`${misshaped.length} with another shape: ${listSome(misshaped, 3)}`);
    if (unexpected.length) parts.push(`${unexpected.length} not in the config's model: ${listSome(unexpected)}`);
    throw new SingleFileError(file, `${what}: the tensors (diffusers names) do not match the config from ${origin}: ${parts.join('; ')}`);
  }
}

/** The U-Net, the VAE and the CLIP text encoder of an SD1.5 single-file checkpoint, as diffusers'
 *  from_single_file maps them (see the top of this file). Synchronous: reads only the key names,
 *  shapes and metadata. Throws SingleFileError when `src` is not such a file or a config does not
 *  fit its tensors. */
export function sd15SingleFile(src: TensorSource, options: SingleFileOptions = {}): SingleFileComponents {
  const layout = detect(src);
  if ('error' in layout) throw new SingleFileError(src.name, layout.error);
  const { prefix } = layout;
  const names = src.names();
  const under = (p: string) => names.filter((k) => k.startsWith(prefix + p)).map((k) => k.slice(prefix.length + p.length));

  // U-Net: the non-EMA keys name the tensors; with `ema` each is read from its EMA copy.
  const unetKeys = under(LDM_UNET_PREFIX);
  const emaPresent = unetKeys.some((k) => src.has(prefix + emaKeyOf(k)));
  const ema = !!options.ema && emaPresent;
  if (ema) {
    const without = unetKeys.filter((k) => !src.has(prefix + emaKeyOf(k)));
    if (without.length) throw new SingleFileError(src.name, `U-Net: EMA weights requested, but ${without.length} of the ${unetKeys.length} ${LDM_UNET_PREFIX}* tensors have no EMA copy, e.g. ${prefix}${emaKeyOf(without[0]!)} for ${prefix}${LDM_UNET_PREFIX}${without[0]}`);
  }
  const unetFileKey = (k: string) => prefix + (ema ? emaKeyOf(k) : LDM_UNET_PREFIX + k);
  const shapesOf = (keys: string[], fileKey: (k: string) => string) => new Map(keys.map((k) => [k, src.info(fileKey(k)).shape] as const));
  const unetShapes = new Shapes(src.name, 'U-Net', prefix + LDM_UNET_PREFIX, shapesOf(unetKeys, unetFileKey));
  const vaeKeys = under(LDM_VAE_PREFIX);
  const vaeShapes = new Shapes(src.name, 'VAE', prefix + LDM_VAE_PREFIX, shapesOf(vaeKeys, (k) => prefix + LDM_VAE_PREFIX + k));
  // The text encoder's keys under their transformers names (`text_model.…`).
  const clipEntries = new Map<string, string>();
  for (const k of under(LDM_CLIP_PREFIX)) {
    const d = clipKeyToDiffusers(k);
    if (d !== null) clipEntries.set(d, prefix + LDM_CLIP_PREFIX + k);
  }
  const textShapes = new Shapes(
    src.name,
    'text encoder',
    `${prefix}${LDM_CLIP_PREFIX}text_model.`,
    new Map([...clipEntries].filter(([d]) => d.startsWith('text_model.')).map(([d, k]) => [d.slice('text_model.'.length), src.info(k).shape] as const)),
  );

  const meta = metadataConfigs(src);
  const unet = resolveConfig<UNetConfig>(meta.unet, options.unet, () => inferUnetConfig(unetShapes));
  const vae = resolveConfig<VaeConfig>(meta.vae, options.vae, () => inferVaeConfig(vaeShapes));
  const text = resolveConfig<ClipTextConfig>(meta.text_encoder, options.textEncoder, () => inferTextConfig(textShapes));

  // Views.
  const lpb = unet.config.layers_per_block;
  if (!Number.isInteger(lpb) || lpb < 1) throw new SingleFileError(src.name, `U-Net: layers_per_block ${JSON.stringify(lpb)} is not a positive integer`);
  const unetEntries = new Map<string, Entry>();
  const unknown: string[] = [];
  for (const k of unetKeys) {
    const d = unetKeyToDiffusers(k, lpb);
    if (d === null) unknown.push(prefix + LDM_UNET_PREFIX + k);
    else if (unetEntries.has(d)) throw new SingleFileError(src.name, `U-Net: ${q(unetEntries.get(d)!.key)} and ${q(unetFileKey(k))} both map to ${q(d)}: layers_per_block ${lpb} does not fit the file's blocks`);
    else unetEntries.set(d, { key: unetFileKey(k), shape: [...unetShapes.get(k)] });
  }
  if (unknown.length) throw new SingleFileError(src.name, `U-Net: ${unknown.length} tensors that SD1.5's U-Net does not have: ${listSome(unknown)}`);
  const vaeBlocks = ((vae.config as { up_block_types?: unknown[] }).up_block_types ?? vae.config.block_out_channels)?.length ?? 0;
  const vaeEntries = new Map<string, Entry>();
  for (const k of vaeKeys) {
    const d = vaeKeyToDiffusers(k, vaeBlocks);
    if (d === null) unknown.push(prefix + LDM_VAE_PREFIX + k);
    else if (vaeEntries.has(d)) throw new SingleFileError(src.name, `VAE: ${q(vaeEntries.get(d)!.key)} and ${q(prefix + LDM_VAE_PREFIX + k)} both map to ${q(d)}`);
    else {
      // diffusers: the mid-block attention's 1×1 convs (C, C, 1, 1) or 1-D convs (C, C, 1) as Linear (C, C).
      const shape = [...vaeShapes.get(k)];
      vaeEntries.set(d, { key: prefix + LDM_VAE_PREFIX + k, shape: /mid_block\.attentions\.0\.to_/.test(d) && shape.length > 2 ? shape.slice(0, 2) : shape });
    }
  }
  if (unknown.length) throw new SingleFileError(src.name, `VAE: ${unknown.length} tensors that an AutoencoderKL with ${vaeBlocks} blocks does not have: ${listSome(unknown)}`);
  const textEntries = new Map<string, Entry>([...clipEntries].map(([d, k]) => [d, { key: k, shape: [...src.info(k).shape] }]));

  const unetView = new RenamedSource(`${src.name} (unet)`, src, unetEntries, unet.config);
  const vaeView = new RenamedSource(`${src.name} (vae)`, src, vaeEntries, vae.config);
  const textView = new RenamedSource(`${src.name} (text_encoder)`, src, textEntries, text.config);

  // Each config against its tensors.
  const heads = text.config.num_attention_heads;
  if (!(Number.isInteger(heads) && heads > 0 && text.config.hidden_size % heads === 0)) {
    throw new SingleFileError(src.name, `text encoder: num_attention_heads ${JSON.stringify(heads)} does not divide hidden_size ${text.config.hidden_size} (SD1.5: 12 heads of 64); pass options.textEncoder.num_attention_heads`);
  }
  for (const [what, channels, groups, given] of [
    ['U-Net', unet.config.block_out_channels, unet.config.norm_num_groups, 'options.unet.norm_num_groups'],
    ['VAE', vae.config.block_out_channels, vae.config.norm_num_groups, 'options.vae.norm_num_groups'],
  ] as const) {
    if (Array.isArray(channels) && !channels.every((c) => c % groups === 0)) {
      throw new SingleFileError(src.name, `${what}: norm_num_groups ${groups} does not divide the block channels [${channels.join(', ')}] (SD1.5: 32); pass ${given}`);
    }
  }
  checkAgainstConfig(src.name, 'U-Net', unet.from, options.unet, unetView, (s) => new UNet2DConditionModel(s, unet.config));
  checkAgainstConfig(src.name, 'VAE', vae.from, options.vae, vaeView, (s) => new VaeEncoder(s, vae.config), (k) => k.startsWith('decoder.') || k.startsWith('post_quant_conv.'));
  checkAgainstConfig(src.name, 'text encoder', text.from, options.textEncoder, textView, (s) => new ClipTextModel(s, text.config));
  return {
    unet: { source: unetView, config: unet.config, configFrom: unet.from },
    vae: { source: vaeView, config: vae.config, configFrom: vae.from },
    textEncoder: { source: textView, config: text.config, configFrom: text.from },
    ema,
  };
}
