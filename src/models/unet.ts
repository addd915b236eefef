// UNet2DConditionModel (diffusers) for SD1.5's and SDXL's block types, built from its config.json:
// CrossAttnDownBlock2D / DownBlock2D, UNetMidBlock2DCrossAttn, UpBlock2D / CrossAttnUpBlock2D, with
// SDXL's config options: transformer depth per block, linear proj_in/proj_out, head counts per
// block, and the "text_time" added conditioning (pooled text embeds + size/crop time ids).
// A forward can record any module's activations and stop right after a named module.

import { tidy, type Tensor } from '../gpu/runtime.js';
import { concat } from '../kernels/layout.js';
import { binary, cast, unary } from '../kernels/elementwise.js';
import type { ActivationDType } from '../kernels/common.js';
import { timestepEmbedding } from '../kernels/embedding.js';
import { ForwardContext, type ForwardOptions, type ModelComputeOptions, type Taps, type Vocabulary } from '../nn/context.js';
import { Conv2d, GroupNorm, Linear } from '../nn/modules.js';
import { Scope, WeightStore } from '../nn/weights.js';
import { CONFIG_LIMITS, ConfigError, checkDivides, configNumber, configNumbers, requireConfigNumber } from '../io/config-check.js';
import { Downsample2D, ResnetBlock2D, Transformer2DModel, Upsample2D, type Attention, type Conditioning, type IpConditioning } from './sd-blocks.js';

export interface UNetConfig {
  in_channels: number;
  out_channels: number;
  block_out_channels: number[];
  down_block_types: string[];
  up_block_types: string[];
  layers_per_block: number;
  norm_num_groups: number;
  norm_eps: number;
  cross_attention_dim: number;
  attention_head_dim: number | number[];
  num_attention_heads?: number | number[] | null;
  flip_sin_to_cos: boolean;
  freq_shift: number;
  downsample_padding?: number;
  mid_block_scale_factor?: number;
  act_fn?: string;
  transformer_layers_per_block?: number | number[];
  use_linear_projection?: boolean;
  center_input_sample?: boolean;
  time_embedding_type?: string;
  mid_block_type?: string;
  class_embed_type?: string | null;
  addition_embed_type?: string | null;
  encoder_hid_dim?: number | null;
  only_cross_attention?: boolean | boolean[];
  upcast_attention?: boolean;
  resnet_time_scale_shift?: string;
  dual_cross_attention?: boolean;
  /** SDXL: sinusoid width of each of the 6 add_time_ids ("text_time" conditioning). */
  addition_time_embed_dim?: number | null;
  /** SDXL: input width of add_embedding = pooled text embeds + 6 · addition_time_embed_dim. */
  projection_class_embeddings_input_dim?: number | null;
  reverse_transformer_layers_per_block?: number[][] | null;
  /** The latent side the model was trained at (SD1.5: 64): the default image size. */
  sample_size?: number;
}

function perBlock<T>(v: T | T[], n: number, name: string, where = 'UNet config'): T[] {
  if (Array.isArray(v)) {
    if (v.length !== n) throw new Error(`${where}: ${name} has ${v.length} entries for ${n} blocks`);
    return v;
  }
  return new Array<T>(n).fill(v);
}

/** The largest sample_size accepted (a latent side; SD1.5's is 64). */
const MAX_SAMPLE_SIZE = 4096;

function validate(c: UNetConfig, where: string): void {
  const num = (k: keyof UNetConfig) => {
    if (typeof c[k] !== 'number' || !Number.isFinite(c[k] as number)) throw new Error(`${where}: field "${k}" must be a number, got ${JSON.stringify(c[k])}`);
  };
  const list = (k: keyof UNetConfig, type: 'number' | 'string') => {
    const v = c[k];
    if (!Array.isArray(v) || v.length === 0 || v.some((x) => typeof x !== type)) throw new Error(`${where}: field "${k}" must be a list of ${type}s, got ${JSON.stringify(v)}`);
  };
  list('block_out_channels', 'number');
  list('down_block_types', 'string');
  list('up_block_types', 'string');
  for (const k of ['in_channels', 'out_channels', 'layers_per_block', 'norm_num_groups', 'norm_eps', 'cross_attention_dim', 'freq_shift'] as const) num(k);
  if (c.attention_head_dim === undefined && c.num_attention_heads == null) throw new Error(`${where}: needs "attention_head_dim" or "num_attention_heads"`);
  if (typeof c.flip_sin_to_cos !== 'boolean') throw new Error(`${where}: field "flip_sin_to_cos" must be a boolean`);
  const unsupported: string[] = [];
  if (c.center_input_sample) unsupported.push('center_input_sample');
  if (c.time_embedding_type && c.time_embedding_type !== 'positional') unsupported.push(`time_embedding_type ${c.time_embedding_type}`);
  if (c.mid_block_type && c.mid_block_type !== 'UNetMidBlock2DCrossAttn') unsupported.push(`mid_block_type ${c.mid_block_type}`);
  if (c.class_embed_type) unsupported.push('class_embed_type');
  if (c.addition_embed_type && c.addition_embed_type !== 'text_time') unsupported.push(`addition_embed_type ${c.addition_embed_type}`);
  if (c.reverse_transformer_layers_per_block) unsupported.push('reverse_transformer_layers_per_block');
  if (c.encoder_hid_dim) unsupported.push('encoder_hid_dim');
  if (c.act_fn && c.act_fn !== 'silu') unsupported.push(`act_fn ${c.act_fn}`);
  if (c.resnet_time_scale_shift && c.resnet_time_scale_shift !== 'default') unsupported.push(`resnet_time_scale_shift ${c.resnet_time_scale_shift}`);
  if (c.dual_cross_attention) unsupported.push('dual_cross_attention');
  if (c.only_cross_attention === true || (Array.isArray(c.only_cross_attention) && c.only_cross_attention.some(Boolean))) unsupported.push('only_cross_attention');
  if ((c.mid_block_scale_factor ?? 1) !== 1) unsupported.push(`mid_block_scale_factor ${c.mid_block_scale_factor}`);
  if (unsupported.length) throw new Error(`${where}: not supported: ${unsupported.join(', ')}`);
  if (c.down_block_types.length !== c.block_out_channels.length || c.up_block_types.length !== c.block_out_channels.length) {
    throw new Error(`${where}: down_block_types, up_block_types and block_out_channels must have equal lengths`);
  }
  // Sizes and their consistency, checked here so that a broken config is reported by its key
  // rather than by the kernel or allocation it would break.
  const n = c.block_out_channels.length;
  const channels = configNumbers(c, 'block_out_channels', where, { integer: true, min: 1, max: CONFIG_LIMITS.channels })!;
  for (const k of ['in_channels', 'out_channels', 'cross_attention_dim'] as const) requireConfigNumber(c, k, where, { integer: true, min: 1, max: CONFIG_LIMITS.channels });
  requireConfigNumber(c, 'layers_per_block', where, { integer: true, min: 1, max: CONFIG_LIMITS.layers });
  requireConfigNumber(c, 'norm_eps', where, { above: 0, below: 1 });
  configNumber(c, 'sample_size', where, { optional: true, integer: true, min: 1, max: MAX_SAMPLE_SIZE });
  const groups = requireConfigNumber(c, 'norm_num_groups', where, { integer: true, min: 1 });
  checkDivides(where, 'norm_num_groups', groups, channels, 'block_out_channels');
  // SD1.5's config names the head count "attention_head_dim"; num_attention_heads wins when set.
  const headsKey = c.num_attention_heads != null ? 'num_attention_heads' : 'attention_head_dim';
  configNumbers(c, headsKey, where, { integer: true, min: 1, max: CONFIG_LIMITS.channels });
  const heads = perBlock(c[headsKey] as number | number[], n, headsKey, where);
  const single = !Array.isArray(c[headsKey]);
  heads.forEach((h, i) => {
    if (channels[i]! % h !== 0) throw new ConfigError(where, single ? headsKey : `${headsKey}[${i}]`, `${h} (attention heads) does not divide block_out_channels[${i}] = ${channels[i]}`);
  });
  configNumbers(c, 'transformer_layers_per_block', where, { optional: true, integer: true, min: 1, max: CONFIG_LIMITS.layers });
  if (c.addition_embed_type === 'text_time') {
    const dim = requireConfigNumber(c, 'addition_time_embed_dim', where, { integer: true, min: 2, max: CONFIG_LIMITS.channels });
    const proj = requireConfigNumber(c, 'projection_class_embeddings_input_dim', where, { integer: true, min: 1, max: CONFIG_LIMITS.channels * 8 });
    if (proj <= 6 * dim) throw new ConfigError(where, 'projection_class_embeddings_input_dim', `${proj} leaves no room for the pooled text embeds beside the 6 time ids × addition_time_embed_dim ${dim}`);
  }
}

class DownBlock {
  readonly resnets: ResnetBlock2D[] = [];
  readonly attentions: Transformer2DModel[] = [];
  readonly downsamplers: Downsample2D[] = [];
  constructor(
    readonly scope: Scope,
    type: string,
    inC: number,
    outC: number,
    temb: number,
    c: UNetConfig,
    heads: number,
    layers: number,
    addDownsample: boolean,
  ) {
    const cross = type === 'CrossAttnDownBlock2D';
    if (!cross && type !== 'DownBlock2D') throw new Error(`UNet config: down block type "${type}" is not supported`);
    for (let i = 0; i < c.layers_per_block; i++) {
      this.resnets.push(new ResnetBlock2D(scope.child('resnets').child(i), i === 0 ? inC : outC, outC, temb, c.norm_num_groups, c.norm_eps));
      if (cross) this.attentions.push(new Transformer2DModel(scope.child('attentions').child(i), outC, heads, outC / heads, c.cross_attention_dim, c.norm_num_groups, layers, c.use_linear_projection ?? false));
    }
    if (addDownsample) this.downsamplers.push(new Downsample2D(scope.child('downsamplers').child(0), outC, outC, c.downsample_padding ?? 1));
    scope.tap(':out');
    scope.stoppable();
  }
  /** Returns the states kept for the skip connections (the last is the block output). */
  forward(x: Tensor, ctx: ForwardContext, temb: Tensor, cond: Conditioning): Tensor[] {
    const states: Tensor[] = [];
    let h = x;
    for (let i = 0; i < this.resnets.length; i++) {
      h = this.resnets[i]!.forward(h, ctx, temb);
      const attn = this.attentions[i];
      if (attn) {
        const a = attn.forward(h, ctx, cond);
        h.dispose();
        h = a;
      }
      states.push(h);
    }
    if (this.downsamplers[0]) {
      h = this.downsamplers[0].forward(h, ctx);
      states.push(h);
    }
    ctx.record(`${this.scope.path}:out`, h);
    ctx.finished(this.scope.path);
    return states;
  }
}

class MidBlock {
  readonly resnets: ResnetBlock2D[];
  readonly attentions: Transformer2DModel[];
  constructor(
    readonly scope: Scope,
    ch: number,
    temb: number,
    c: UNetConfig,
    heads: number,
    layers: number,
  ) {
    this.resnets = [0, 1].map((i) => new ResnetBlock2D(scope.child('resnets').child(i), ch, ch, temb, c.norm_num_groups, c.norm_eps));
    this.attentions = [new Transformer2DModel(scope.child('attentions').child(0), ch, heads, ch / heads, c.cross_attention_dim, c.norm_num_groups, layers, c.use_linear_projection ?? false)];
    scope.tap(':out');
    scope.stoppable();
  }
  forward(x: Tensor, ctx: ForwardContext, temb: Tensor, cond: Conditioning): Tensor {
    const h = tidy(() => this.resnets[1]!.forward(this.attentions[0]!.forward(this.resnets[0]!.forward(x, ctx, temb), ctx, cond), ctx, temb));
    ctx.record(`${this.scope.path}:out`, h);
    ctx.finished(this.scope.path);
    return h;
  }
}

class UpBlock {
  readonly resnets: ResnetBlock2D[] = [];
  readonly attentions: Transformer2DModel[] = [];
  readonly upsamplers: Upsample2D[] = [];
  constructor(
    readonly scope: Scope,
    type: string,
    inC: number,
    prevC: number,
    outC: number,
    temb: number,
    c: UNetConfig,
    heads: number,
    layers: number,
    addUpsample: boolean,
  ) {
    const cross = type === 'CrossAttnUpBlock2D';
    if (!cross && type !== 'UpBlock2D') throw new Error(`UNet config: up block type "${type}" is not supported`);
    const n = c.layers_per_block + 1;
    for (let i = 0; i < n; i++) {
      const skip = i === n - 1 ? inC : outC;
      const resIn = i === 0 ? prevC : outC;
      this.resnets.push(new ResnetBlock2D(scope.child('resnets').child(i), resIn + skip, outC, temb, c.norm_num_groups, c.norm_eps));
      if (cross) this.attentions.push(new Transformer2DModel(scope.child('attentions').child(i), outC, heads, outC / heads, c.cross_attention_dim, c.norm_num_groups, layers, c.use_linear_projection ?? false));
    }
    if (addUpsample) this.upsamplers.push(new Upsample2D(scope.child('upsamplers').child(0), outC, outC));
    scope.tap(':out');
    scope.stoppable();
  }
  /** `skips` is consumed from the end; consumed skips are freed. With `matchSkipSize` the upsampler
   *  resizes to the next remaining skip connection (diffusers' `forward_upsample_size`). */
  forward(x: Tensor, ctx: ForwardContext, temb: Tensor, cond: Conditioning, skips: Tensor[], matchSkipSize = false): Tensor {
    const h = tidy(() => {
      let h = x;
      for (let i = 0; i < this.resnets.length; i++) {
        const skip = skips.pop();
        if (!skip) throw new Error(`${this.scope.path}: ran out of skip connections`);
        h = this.resnets[i]!.forward(concat([h, skip], 1), ctx, temb);
        skip.dispose();
        const attn = this.attentions[i];
        if (attn) h = attn.forward(h, ctx, cond);
      }
      const next = skips[skips.length - 1];
      const size = matchSkipSize && next ? ([next.shape[2]!, next.shape[3]!] as const) : undefined;
      return this.upsamplers[0] ? this.upsamplers[0].forward(h, ctx, size) : h;
    });
    ctx.record(`${this.scope.path}:out`, h);
    ctx.finished(this.scope.path);
    return h;
  }
}

export interface UNetOutput {
  /** The noise prediction, or null when the pass stopped early. */
  sample: Tensor | null;
  /** The module after which the pass stopped, if it did. */
  stoppedAfter: string | undefined;
  /** What the pass recorded (owned by the caller). */
  taps: Taps;
}

/** SDXL's `added_cond_kwargs` ("text_time" added conditioning). */
export interface AddedConditioning {
  /** Pooled text embeds [B, P] (text_encoder_2's text_embeds). */
  textEmbeds: Tensor;
  /** add_time_ids, 6 per batch element (original size, crop top-left, target size): B·6 values,
   *  or 6 used for every element. */
  timeIds: readonly number[];
}

export interface UNetForwardOptions extends ForwardOptions {
  /** IP-Adapter image tokens and projections, for this call only (see IpAdapterPlus.conditioning). */
  ip?: IpConditioning;
  /** The added conditioning of an addition_embed_type "text_time" U-Net (SDXL); required there. */
  added?: AddedConditioning;
}

export class UNet2DConditionModel {
  readonly time_embedding_linear_1: Linear;
  readonly time_embedding_linear_2: Linear;
  /** SDXL ("text_time"): add_embedding (TimestepEmbedding of [text_embeds, time ids sinusoids]). */
  readonly add_embedding_linear_1: Linear | undefined;
  readonly add_embedding_linear_2: Linear | undefined;
  readonly conv_in: Conv2d;
  readonly down_blocks: DownBlock[] = [];
  readonly mid_block: MidBlock;
  readonly up_blocks: UpBlock[] = [];
  readonly conv_norm_out: GroupNorm;
  readonly conv_out: Conv2d;
  readonly timeChannels: number;
  /** Every tap and stopping point of a pass. */
  readonly vocabulary: Vocabulary;

  /** The dtype of the activations between ops (see ModelComputeOptions). */
  readonly activations: ActivationDType;
  /** What errors about the config name: its file where it came from one, else "UNet config". */
  readonly where: string;

  constructor(
    readonly store: WeightStore,
    readonly config: UNetConfig,
    o: ModelComputeOptions & { where?: string } = {},
  ) {
    const c = config;
    this.where = o.where ?? 'UNet config';
    validate(c, this.where);
    this.activations = o.activations ?? 'f32';
    const root = Scope.root(store);
    this.vocabulary = root.vocabulary;
    root.tap('time_proj:out');
    root.tap('time_embedding:out');
    const ch = c.block_out_channels;
    const nBlocks = ch.length;
    // SD1.5's config names the head count "attention_head_dim" (8 heads); num_attention_heads wins when set.
    const heads = perBlock(c.num_attention_heads ?? c.attention_head_dim, nBlocks, 'attention heads', this.where);
    const layers = perBlock(c.transformer_layers_per_block ?? 1, nBlocks, 'transformer_layers_per_block', this.where);
    this.timeChannels = ch[0]!;
    const tembDim = ch[0]! * 4;
    const te = root.child('time_embedding');
    this.time_embedding_linear_1 = new Linear(te.child('linear_1'), ch[0]!, tembDim);
    this.time_embedding_linear_2 = new Linear(te.child('linear_2'), tembDim, tembDim);
    if (c.addition_embed_type === 'text_time') {
      const ae = root.child('add_embedding');
      this.add_embedding_linear_1 = new Linear(ae.child('linear_1'), c.projection_class_embeddings_input_dim!, tembDim);
      this.add_embedding_linear_2 = new Linear(ae.child('linear_2'), tembDim, tembDim);
      root.tap('add_time_proj:out');
      root.tap('add_embedding:out');
    }
    this.conv_in = new Conv2d(root.child('conv_in'), c.in_channels, ch[0]!, { kernel: 3, padding: 1 });
    let out = ch[0]!;
    c.down_block_types.forEach((type, i) => {
      const inC = out;
      out = ch[i]!;
      this.down_blocks.push(new DownBlock(root.child('down_blocks').child(i), type, inC, out, tembDim, c, heads[i]!, layers[i]!, i !== nBlocks - 1));
    });
    this.mid_block = new MidBlock(root.child('mid_block'), ch[nBlocks - 1]!, tembDim, c, heads[nBlocks - 1]!, layers[nBlocks - 1]!);
    const rev = [...ch].reverse();
    const revHeads = [...heads].reverse();
    const revLayers = [...layers].reverse();
    let outC = rev[0]!;
    c.up_block_types.forEach((type, i) => {
      const prevC = outC;
      outC = rev[i]!;
      const inC = rev[Math.min(i + 1, nBlocks - 1)]!;
      this.up_blocks.push(new UpBlock(root.child('up_blocks').child(i), type, inC, prevC, outC, tembDim, c, revHeads[i]!, revLayers[i]!, i !== nBlocks - 1));
    });
    this.conv_norm_out = new GroupNorm(root.child('conv_norm_out'), c.norm_num_groups, ch[0]!, c.norm_eps);
    this.conv_out = new Conv2d(root.child('conv_out'), ch[0]!, c.out_channels, { kernel: 3, padding: 1 });
    root.tap('output.sample');
  }

  /** The cross-attention (attn2) layers in diffusers' attn_processors order (down, up, mid): the
   *  order in which IP-Adapter checkpoints number them (ip_adapter.1, .3, …). */
  crossAttentionLayers(): Attention[] {
    const out: Attention[] = [];
    for (const blocks of [this.down_blocks, this.up_blocks, [this.mid_block]] as { attentions: Transformer2DModel[] }[][]) {
      for (const b of blocks) for (const t of b.attentions) for (const tb of t.transformer_blocks) out.push(tb.attn2);
    }
    return out;
  }

  /** Head count of every attention module, by module path. */
  attentionHeads(): Record<string, number> {
    const out: Record<string, number> = {};
    const visit = (blocks: { attentions: Transformer2DModel[] }[]) => {
      for (const b of blocks)
        for (const t of b.attentions)
          for (const tb of t.transformer_blocks) {
            out[tb.attn1.path] = tb.attn1.heads;
            out[tb.attn2.path] = tb.attn2.heads;
          }
    };
    visit(this.down_blocks);
    visit([this.mid_block]);
    visit(this.up_blocks);
    return out;
  }

  /**
   * sample [B, C, H, W], timesteps (one per sample, or one for all), encoderHiddenStates [B, T, D],
   * and with an IP-Adapter its conditioning `ip` (image tokens [B, N, D'], scale, projections).
   * With `stopAfter` the pass ends right after that module and `sample` is null.
   */
  forward(sample: Tensor, timesteps: number | readonly number[], encoderHiddenStates: Tensor, opts: UNetForwardOptions = {}): UNetOutput {
    const rt = sample.runtime;
    const [b] = sample.shape as [number];
    if (sample.rank !== 4 || sample.shape[1] !== this.config.in_channels) throw new Error(`UNet: sample must be [B, ${this.config.in_channels}, H, W], got [${sample.shape.join(', ')}]`);
    if (encoderHiddenStates.rank !== 3 || encoderHiddenStates.shape[0] !== b || encoderHiddenStates.shape[2] !== this.config.cross_attention_dim) {
      throw new Error(`UNet: encoder_hidden_states must be [${b}, T, ${this.config.cross_attention_dim}], got [${encoderHiddenStates.shape.join(', ')}]`);
    }
    // Latents that are not a multiple of the overall up factor take upsampler sizes from the skips.
    const factor = 2 ** this.up_blocks.filter((u) => u.upsamplers.length).length;
    const matchSkipSize = sample.shape[2]! % factor !== 0 || sample.shape[3]! % factor !== 0;
    const ip = opts.ip;
    if (ip && (ip.tokens.rank !== 3 || ip.tokens.shape[0] !== b)) throw new Error(`UNet: IP-Adapter tokens must be [${b}, N, D], got [${ip.tokens.shape.join(', ')}]`);
    const list = typeof timesteps === 'number' ? [timesteps] : [...timesteps];
    const ts = list.length === 1 ? new Array<number>(b).fill(list[0]!) : list;
    if (ts.length !== b || ts.some((t) => !Number.isFinite(t))) throw new Error(`UNet: need 1 or ${b} finite timesteps, got [${list.join(', ')}]`);
    const added = opts.added;
    let timeIds: number[] | undefined;
    if (this.add_embedding_linear_1) {
      const pooled = this.config.projection_class_embeddings_input_dim! - 6 * this.config.addition_time_embed_dim!;
      if (!added) throw new Error(`UNet (${this.where}): addition_embed_type "text_time" needs the added conditioning (pooled text embeds [B, ${pooled}] and 6 time ids per sample)`);
      if (added.textEmbeds.rank !== 2 || added.textEmbeds.shape[0] !== b || added.textEmbeds.shape[1] !== pooled) throw new Error(`UNet: text_embeds must be [${b}, ${pooled}], got [${added.textEmbeds.shape.join(', ')}]`);
      timeIds = added.timeIds.length === 6 ? Array.from({ length: b }, () => [...added.timeIds]).flat() : [...added.timeIds];
      if (timeIds.length !== 6 * b || timeIds.some((t) => !Number.isFinite(t))) throw new Error(`UNet: need 6 or ${6 * b} finite time ids, got ${added.timeIds.length}`);
    } else if (added) throw new Error(`UNet (${this.where}): added conditioning given, but the config has no addition_embed_type "text_time"`);
    const ctx = new ForwardContext(this.vocabulary, opts, 'UNet', this.activations);
    const { result, stoppedAfter } = ctx.run(() => {
      const cond: Conditioning = { text: ctx.input(encoderHiddenStates), ip: ip && { ...ip, tokens: ctx.input(ip.tokens) } };
      const tproj = timestepEmbedding(rt.upload(ts, [b]), this.timeChannels, { flipSinToCos: this.config.flip_sin_to_cos, downscaleFreqShift: this.config.freq_shift });
      ctx.record('time_proj:out', tproj);
      let emb = this.time_embedding_linear_2.forward(this.time_embedding_linear_1.forward(tproj, ctx, { act: 'silu' }), ctx);
      ctx.record('time_embedding:out', emb);
      if (this.add_embedding_linear_1 && this.add_embedding_linear_2 && added && timeIds) {
        // aug_emb = add_embedding(concat([text_embeds, add_time_proj(time_ids.flatten()).reshape(B, −1)], −1))
        const dim = this.config.addition_time_embed_dim!;
        const tids = timestepEmbedding(rt.upload(timeIds, [6 * b]), dim, { flipSinToCos: this.config.flip_sin_to_cos, downscaleFreqShift: this.config.freq_shift }).reshape([b, 6 * dim]);
        ctx.record('add_time_proj:out', tids);
        const aug = this.add_embedding_linear_2.forward(this.add_embedding_linear_1.forward(concat([cast(added.textEmbeds, 'f32'), tids], 1), ctx, { act: 'silu' }), ctx);
        ctx.record('add_embedding:out', aug);
        emb = binary(emb, aug, 'add');
      }
      // The time embedding stays f32: it enters the ResNets as a bias.
      const tembSilu = unary(emb, 'silu');
      let h = this.conv_in.forward(ctx.input(sample), ctx);
      const skips: Tensor[] = [h];
      for (const block of this.down_blocks) {
        const states = block.forward(h, ctx, tembSilu, cond);
        skips.push(...states);
        h = states[states.length - 1]!;
      }
      h = this.mid_block.forward(h, ctx, tembSilu, cond);
      for (const block of this.up_blocks) {
        const next = block.forward(h, ctx, tembSilu, cond, skips, matchSkipSize);
        h.dispose();
        h = next;
      }
      const out = cast(this.conv_out.forward(this.conv_norm_out.forward(h, ctx, { act: 'silu' }), ctx), 'f32');
      ctx.record('output.sample', out);
      return out;
    });
    return { sample: result ?? null, stoppedAfter, taps: ctx.taps };
  }
}
