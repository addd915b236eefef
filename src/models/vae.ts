// AutoencoderKL encoder + quant_conv (diffusers): image [-1, 1] → posterior moments → latent.

import { CONFIG_LIMITS, checkDivides, configNumber, configNumbers, requireConfigNumber } from '../io/config-check.js';
import { tidy, type Tensor } from '../gpu/runtime.js';
import { binary, cast, unary } from '../kernels/elementwise.js';
import { slice } from '../kernels/layout.js';
import { ForwardContext, type ForwardOptions, type ModelComputeOptions, type Taps, type Vocabulary } from '../nn/context.js';
import type { ActivationDType } from '../kernels/common.js';
import { Conv2d, GroupNorm } from '../nn/modules.js';
import { Scope, WeightStore } from '../nn/weights.js';
import { Downsample2D, ResnetBlock2D, SpatialSelfAttention } from './sd-blocks.js';

export interface VaeConfig {
  in_channels: number;
  latent_channels: number;
  block_out_channels: number[];
  down_block_types: string[];
  layers_per_block: number;
  norm_num_groups: number;
  act_fn?: string;
  scaling_factor?: number;
  mid_block_add_attention?: boolean;
  force_upcast?: boolean;
}

/** Checkpoint key renames for VAE files that still use the legacy attention names. */
export function legacyVaeKey(key: string): string {
  return key
    .replace(/(mid_block\.attentions\.0)\.query\./, '$1.to_q.')
    .replace(/(mid_block\.attentions\.0)\.key\./, '$1.to_k.')
    .replace(/(mid_block\.attentions\.0)\.value\./, '$1.to_v.')
    .replace(/(mid_block\.attentions\.0)\.proj_attn\./, '$1.to_out.0.');
}

export interface VaeEncoderOutput {
  posterior: Posterior | null;
  stoppedAfter: string | undefined;
  taps: Taps;
}

export interface Posterior {
  /** quant_conv output [B, 2·latent, h, w]. */
  moments: Tensor;
  mean: Tensor;
  /** Clamped to [−30, 20]. */
  logvar: Tensor;
  std: Tensor;
}

class DownEncoderBlock2D {
  readonly resnets: ResnetBlock2D[] = [];
  readonly downsamplers: Downsample2D[] = [];
  constructor(
    readonly scope: Scope,
    inC: number,
    outC: number,
    layers: number,
    groups: number,
    addDownsample: boolean,
  ) {
    for (let i = 0; i < layers; i++) this.resnets.push(new ResnetBlock2D(scope.child('resnets').child(i), i === 0 ? inC : outC, outC, null, groups, 1e-6));
    if (addDownsample) this.downsamplers.push(new Downsample2D(scope.child('downsamplers').child(0), outC, outC, 0));
    scope.tap(':out');
    scope.stoppable();
  }
  forward(x: Tensor, ctx: ForwardContext): Tensor {
    const h = tidy(() => {
      let h = x;
      for (const r of [...this.resnets, ...this.downsamplers]) h = r.forward(h, ctx);
      return h;
    });
    ctx.record(`${this.scope.path}:out`, h);
    ctx.finished(this.scope.path);
    return h;
  }
}

export class VaeEncoder {
  readonly conv_in: Conv2d;
  readonly down_blocks: DownEncoderBlock2D[] = [];
  readonly mid_resnets: ResnetBlock2D[];
  readonly mid_attention: SpatialSelfAttention | undefined;
  readonly conv_norm_out: GroupNorm;
  readonly conv_out: Conv2d;
  readonly quant_conv: Conv2d;
  readonly scalingFactor: number;
  /** Every tap and stopping point of a pass. */
  readonly vocabulary: Vocabulary;

  /** The dtype of the activations between ops (see ModelComputeOptions). */
  readonly activations: ActivationDType;
  /** What errors about the config name: its file where it came from one, else "VAE config". */
  readonly where: string;

  constructor(
    readonly store: WeightStore,
    readonly config: VaeConfig,
    o: ModelComputeOptions & { where?: string } = {},
  ) {
    const c = config;
    this.activations = o.activations ?? 'f32';
    const where = (this.where = o.where ?? 'VAE config');
    for (const k of ['block_out_channels', 'down_block_types'] as const) {
      if (!Array.isArray(c[k]) || c[k].length === 0) throw new Error(`${where}: field "${k}" must be a non-empty list, got ${JSON.stringify(c[k])}`);
    }
    for (const k of ['in_channels', 'latent_channels', 'layers_per_block', 'norm_num_groups'] as const) {
      if (typeof c[k] !== 'number') throw new Error(`${where}: field "${k}" must be a number, got ${JSON.stringify(c[k])}`);
    }
    if (c.block_out_channels.length !== c.down_block_types.length) throw new Error(`${where}: block_out_channels and down_block_types differ in length`);
    for (const t of c.down_block_types) if (t !== 'DownEncoderBlock2D') throw new Error(`${where}: down block type "${t}" is not supported`);
    if (c.act_fn && c.act_fn !== 'silu') throw new Error(`${where}: act_fn "${c.act_fn}" is not supported`);
    const channels = configNumbers(c, 'block_out_channels', where, { integer: true, min: 1, max: CONFIG_LIMITS.channels })!;
    for (const k of ['in_channels', 'latent_channels'] as const) requireConfigNumber(c, k, where, { integer: true, min: 1, max: CONFIG_LIMITS.channels });
    requireConfigNumber(c, 'layers_per_block', where, { integer: true, min: 1, max: CONFIG_LIMITS.layers });
    const groups = requireConfigNumber(c, 'norm_num_groups', where, { integer: true, min: 1 });
    checkDivides(where, 'norm_num_groups', groups, channels, 'block_out_channels');
    // The latents are multiplied by it: a zero, negative or non-finite factor makes every score meaningless.
    configNumber(c, 'scaling_factor', where, { optional: true, above: 0, max: 1e6 });
    const root = Scope.root(store);
    this.vocabulary = root.vocabulary;
    const enc = root.child('encoder');
    const ch = c.block_out_channels;
    this.conv_in = new Conv2d(enc.child('conv_in'), c.in_channels, ch[0]!, { kernel: 3, padding: 1 });
    let prev = ch[0]!;
    ch.forEach((out, i) => {
      this.down_blocks.push(new DownEncoderBlock2D(enc.child('down_blocks').child(i), prev, out, c.layers_per_block, groups, i !== ch.length - 1));
      prev = out;
    });
    const mid = enc.child('mid_block');
    const last = ch[ch.length - 1]!;
    this.mid_resnets = [0, 1].map((i) => new ResnetBlock2D(mid.child('resnets').child(i), last, last, null, groups, 1e-6));
    this.mid_attention = c.mid_block_add_attention === false ? undefined : new SpatialSelfAttention(mid.child('attentions').child(0), last, last, groups, 1e-6);
    this.conv_norm_out = new GroupNorm(enc.child('conv_norm_out'), groups, last, 1e-6);
    this.conv_out = new Conv2d(enc.child('conv_out'), last, 2 * c.latent_channels, { kernel: 3, padding: 1 });
    this.quant_conv = new Conv2d(root.child('quant_conv'), 2 * c.latent_channels, 2 * c.latent_channels, { kernel: 1 });
    this.scalingFactor = c.scaling_factor ?? 0.18215;
    mid.tap(':out');
    for (const name of ['moments', 'mean', 'logvar', 'std']) root.tap(`posterior.${name}`);
  }

  /** Encodes images [B, 3, H, W] in [−1, 1] to the posterior (null when the pass stopped early). */
  encode(image: Tensor, opts: ForwardOptions = {}): VaeEncoderOutput {
    if (image.rank !== 4 || image.shape[1] !== this.config.in_channels) throw new Error(`VAE: image must be [B, ${this.config.in_channels}, H, W], got [${image.shape.join(', ')}]`);
    const ctx = new ForwardContext(this.vocabulary, opts, 'VAE encoder', this.activations);
    const { result, stoppedAfter } = ctx.run(() => {
      let h = this.conv_in.forward(ctx.input(image), ctx);
      for (const b of this.down_blocks) h = b.forward(h, ctx);
      h = this.mid_resnets[0]!.forward(h, ctx);
      if (this.mid_attention) h = this.mid_attention.forward(h, ctx);
      h = this.mid_resnets[1]!.forward(h, ctx);
      ctx.record('encoder.mid_block:out', h);
      h = this.conv_out.forward(this.conv_norm_out.forward(h, ctx, { act: 'silu' }), ctx);
      // The posterior is f32 in either precision (the latents are small).
      const moments = cast(this.quant_conv.forward(h, ctx), 'f32');
      const [b, c2, hh, ww] = moments.shape as [number, number, number, number];
      const lc = c2 / 2;
      const mean = slice(moments, [0, 0, 0, 0], [b, lc, hh, ww]);
      const logvar = unary(slice(moments, [0, lc, 0, 0], [b, lc, hh, ww]), 'none', 1, 0, [-30, 20]);
      const std = unary(logvar, 'exp', 0.5, 0);
      ctx.record('posterior.moments', moments);
      ctx.record('posterior.mean', mean);
      ctx.record('posterior.logvar', logvar);
      ctx.record('posterior.std', std);
      return { moments, mean, logvar, std };
    });
    return { posterior: result ?? null, stoppedAfter, taps: ctx.taps };
  }

  /** z = mean + std·eps, and the scaled latent scaling_factor·z. */
  sample(posterior: Posterior, eps: Tensor): { sample: Tensor; scaled: Tensor } {
    return tidy(() => {
      const sample = binary(posterior.mean, binary(posterior.std, eps, 'mul'), 'add');
      return { sample, scaled: unary(sample, 'none', this.scalingFactor, 0) };
    });
  }
}
