// diffusers building blocks shared by the SD1.5 U-Net and the VAE encoder: ResnetBlock2D,
// Downsample2D, Upsample2D, Attention (with Q/K/V taps), BasicTransformerBlock, Transformer2DModel.
// Parameter keys mirror diffusers' state_dict keys.

import type { Tensor } from '../gpu/runtime.js';
import { add, binary, geglu } from '../kernels/elementwise.js';
import { attention } from '../kernels/attention.js';
import { nchwToTokens, tokensToNchw, upsampleNearest2x } from '../kernels/layout.js';
import type { ForwardContext } from '../nn/context.js';
import { Conv2d, GroupNorm, LayerNorm, Linear } from '../nn/modules.js';
import type { Scope } from '../nn/weights.js';

export class ResnetBlock2D {
  readonly norm1: GroupNorm;
  readonly conv1: Conv2d;
  readonly time_emb_proj: Linear | undefined;
  readonly norm2: GroupNorm;
  readonly conv2: Conv2d;
  readonly conv_shortcut: Conv2d | undefined;
  constructor(
    readonly scope: Scope,
    inChannels: number,
    outChannels: number,
    tembChannels: number | null,
    groups: number,
    eps: number,
    readonly outputScaleFactor = 1,
  ) {
    this.norm1 = new GroupNorm(scope.child('norm1'), groups, inChannels, eps);
    this.conv1 = new Conv2d(scope.child('conv1'), inChannels, outChannels, { kernel: 3, padding: 1 });
    this.time_emb_proj = tembChannels ? new Linear(scope.child('time_emb_proj'), tembChannels, outChannels) : undefined;
    this.norm2 = new GroupNorm(scope.child('norm2'), groups, outChannels, eps);
    this.conv2 = new Conv2d(scope.child('conv2'), outChannels, outChannels, { kernel: 3, padding: 1 });
    this.conv_shortcut = inChannels !== outChannels ? new Conv2d(scope.child('conv_shortcut'), inChannels, outChannels, { kernel: 1 }) : undefined;
    if (outputScaleFactor !== 1) throw new Error(`${scope.path}: output_scale_factor ${outputScaleFactor} is not supported`);
  }

  /** `tembSilu` is silu(temb) [B, Ct] (shared by all blocks of a pass). */
  async forward(x: Tensor, ctx: ForwardContext, tembSilu?: Tensor): Promise<Tensor> {
    let h = await this.norm1.forward(x, ctx, true);
    let h1 = await this.conv1.forward(h, ctx);
    h.dispose();
    if (this.time_emb_proj) {
      if (!tembSilu) throw new Error(`${this.scope.path}: needs a time embedding`);
      const t = await this.time_emb_proj.forward(tembSilu, ctx);
      const tb = t.reshape([t.shape[0]!, t.shape[1]!, 1, 1]);
      const withT = await add(h1, tb);
      t.dispose();
      tb.dispose();
      h1.dispose();
      h1 = withT;
    }
    h = await this.norm2.forward(h1, ctx, true);
    h1.dispose();
    const shortcut = this.conv_shortcut ? await this.conv_shortcut.forward(x, ctx) : x;
    const y = await this.conv2.forward(h, ctx, { residual: shortcut });
    h.dispose();
    if (shortcut !== x) shortcut.dispose();
    ctx.record(`${this.scope.path}:out`, y);
    ctx.finished(this.scope.path);
    return y;
  }
}

export class Downsample2D {
  readonly conv: Conv2d;
  constructor(
    readonly scope: Scope,
    channels: number,
    outChannels: number,
    /** diffusers' `padding`: 1 → symmetric pad 1; 0 → the VAE's asymmetric (0, 1, 0, 1) pad. */
    padding: number,
  ) {
    this.conv = new Conv2d(scope.child('conv'), channels, outChannels, { kernel: 3, stride: 2, padding: padding === 0 ? [0, 1, 0, 1] : padding });
  }
  async forward(x: Tensor, ctx: ForwardContext): Promise<Tensor> {
    const y = await this.conv.forward(x, ctx);
    ctx.record(`${this.scope.path}:out`, y);
    ctx.finished(this.scope.path);
    return y;
  }
}

export class Upsample2D {
  readonly conv: Conv2d;
  constructor(
    readonly scope: Scope,
    channels: number,
    outChannels: number,
  ) {
    this.conv = new Conv2d(scope.child('conv'), channels, outChannels, { kernel: 3, padding: 1 });
  }
  async forward(x: Tensor, ctx: ForwardContext): Promise<Tensor> {
    const up = await upsampleNearest2x(x);
    const y = await this.conv.forward(up, ctx);
    up.dispose();
    ctx.record(`${this.scope.path}:out`, y);
    ctx.finished(this.scope.path);
    return y;
  }
}

/** What the cross-attention layers attend to: text tokens and, with an IP-Adapter, image tokens. */
export interface Conditioning {
  /** encoder_hidden_states [B, T, D]. */
  text: Tensor;
  /** IP-Adapter image tokens [B, Nip, D'] (from the resampler), used by layers with an adapter. */
  ip?: Tensor | undefined;
}

/** An IP-Adapter's decoupled cross-attention on one attn2 layer (diffusers IPAdapterAttnProcessor):
 *  out = SDPA(q, k, v) + scale · SDPA(q, to_k_ip(ip), to_v_ip(ip)). */
export interface IpAttention {
  to_k_ip: Linear;
  to_v_ip: Linear;
  scale: number;
}

/** diffusers `Attention` on token sequences (B, N, C): to_q/to_k/to_v, SDPA, to_out.0. Taps:
 *  `<path>.to_q:out`, `.to_k:out`, `.to_v:out` (before the head split), `<path>.to_out.0:in`
 *  (attention output before the projection), `<path>:out`. */
export class Attention {
  readonly to_q: Linear;
  readonly to_k: Linear;
  readonly to_v: Linear;
  readonly to_out: Linear;
  readonly path: string;
  /** Set by an IP-Adapter on cross-attention layers. */
  ip: IpAttention | null = null;
  constructor(
    readonly scope: Scope,
    queryDim: number,
    contextDim: number,
    readonly heads: number,
    headDim: number,
    qkvBias: boolean,
  ) {
    this.path = scope.path;
    const inner = heads * headDim;
    this.to_q = new Linear(scope.child('to_q'), queryDim, inner, qkvBias);
    this.to_k = new Linear(scope.child('to_k'), contextDim, inner, qkvBias);
    this.to_v = new Linear(scope.child('to_v'), contextDim, inner, qkvBias);
    this.to_out = new Linear(scope.child('to_out').child(0), inner, queryDim, true);
  }

  /** y = to_out(SDPA(q(x), k(c), v(c))) + residual, with c = context ?? x. The residual add is
   *  fused into to_out; `<path>:out` follows diffusers (without the residual unless the module has
   *  `residual_connection`, as the VAE's mid-block attention does). */
  async forward(x: Tensor, ctx: ForwardContext, context?: Tensor, residual?: Tensor, residualInOutput = false, ipTokens?: Tensor): Promise<Tensor> {
    const c = context ?? x;
    const q = await this.to_q.forward(x, ctx);
    const k = await this.to_k.forward(c, ctx);
    const v = await this.to_v.forward(c, ctx);
    let o = await attention(q, k, v, { heads: this.heads });
    k.dispose();
    v.dispose();
    if (this.ip && ipTokens) {
      // Taps as diffusers names them: processor.to_k_ip.0:out in the (B, images, N, C) layout.
      const kip = await this.ip.to_k_ip.forward(ipTokens, ctx);
      const vip = await this.ip.to_v_ip.forward(ipTokens, ctx);
      for (const [t, name] of [[kip, 'to_k_ip'], [vip, 'to_v_ip']] as const) {
        const view = t.reshape([t.shape[0]!, 1, t.shape[1]!, t.shape[2]!]);
        ctx.record(`${this.path}.processor.${name}.0:out`, view);
        view.dispose();
      }
      const oip = await attention(q, kip, vip, { heads: this.heads });
      kip.dispose();
      vip.dispose();
      const sum = await binary(o, oip, 'add', 1, this.ip.scale);
      oip.dispose();
      o.dispose();
      o = sum;
    }
    q.dispose();
    const y = await this.to_out.forward(o, ctx, { residual, preResidualTap: residualInOutput ? undefined : `${this.path}:out` });
    if (residualInOutput) ctx.record(`${this.path}:out`, y);
    o.dispose();
    ctx.finished(this.path);
    return y;
  }
}

export class BasicTransformerBlock {
  readonly norm1: LayerNorm;
  readonly attn1: Attention;
  readonly norm2: LayerNorm;
  readonly attn2: Attention;
  readonly norm3: LayerNorm;
  readonly ff_proj: Linear;
  readonly ff_out: Linear;
  constructor(
    readonly scope: Scope,
    dim: number,
    heads: number,
    headDim: number,
    crossDim: number,
  ) {
    this.norm1 = new LayerNorm(scope.child('norm1'), dim, 1e-5);
    this.attn1 = new Attention(scope.child('attn1'), dim, dim, heads, headDim, false);
    this.norm2 = new LayerNorm(scope.child('norm2'), dim, 1e-5);
    this.attn2 = new Attention(scope.child('attn2'), dim, crossDim, heads, headDim, false);
    this.norm3 = new LayerNorm(scope.child('norm3'), dim, 1e-5);
    const net = scope.child('ff').child('net');
    this.ff_proj = new Linear(net.child(0).child('proj'), dim, dim * 4 * 2);
    this.ff_out = new Linear(net.child(2), dim * 4, dim);
  }

  async forward(x: Tensor, ctx: ForwardContext, cond: Conditioning): Promise<Tensor> {
    const n1 = await this.norm1.forward(x, ctx);
    const h1 = await this.attn1.forward(n1, ctx, undefined, x);
    n1.dispose();
    const n2 = await this.norm2.forward(h1, ctx);
    const h2 = await this.attn2.forward(n2, ctx, cond.text, h1, false, cond.ip);
    n2.dispose();
    h1.dispose();
    const n3 = await this.norm3.forward(h2, ctx);
    const proj = await this.ff_proj.forward(n3, ctx);
    n3.dispose();
    const gated = await geglu(proj);
    proj.dispose();
    ctx.record(`${this.scope.path}.ff.net.0:out`, gated);
    const y = await this.ff_out.forward(gated, ctx, { residual: h2, preResidualTap: `${this.scope.path}.ff:out` });
    gated.dispose();
    h2.dispose();
    ctx.record(`${this.scope.path}:out`, y);
    ctx.finished(this.scope.path);
    return y;
  }
}

export class Transformer2DModel {
  readonly norm: GroupNorm;
  readonly proj_in: Conv2d;
  readonly transformer_blocks: BasicTransformerBlock[] = [];
  readonly proj_out: Conv2d;
  constructor(
    readonly scope: Scope,
    channels: number,
    heads: number,
    headDim: number,
    crossDim: number,
    groups: number,
    layers = 1,
  ) {
    const inner = heads * headDim;
    this.norm = new GroupNorm(scope.child('norm'), groups, channels, 1e-6);
    this.proj_in = new Conv2d(scope.child('proj_in'), channels, inner, { kernel: 1 });
    for (let i = 0; i < layers; i++) this.transformer_blocks.push(new BasicTransformerBlock(scope.child('transformer_blocks').child(i), inner, heads, headDim, crossDim));
    this.proj_out = new Conv2d(scope.child('proj_out'), inner, channels, { kernel: 1 });
  }

  async forward(x: Tensor, ctx: ForwardContext, cond: Conditioning): Promise<Tensor> {
    const [, , h, w] = x.shape as [number, number, number, number];
    const n = await this.norm.forward(x, ctx);
    const p = await this.proj_in.forward(n, ctx);
    n.dispose();
    let t = await nchwToTokens(p);
    p.dispose();
    for (const block of this.transformer_blocks) {
      const next = await block.forward(t, ctx, cond);
      t.dispose();
      t = next;
    }
    const back = await tokensToNchw(t, h, w);
    t.dispose();
    const y = await this.proj_out.forward(back, ctx, { residual: x });
    back.dispose();
    ctx.record(`${this.scope.path}:out`, y);
    ctx.finished(this.scope.path);
    return y;
  }
}

/** The VAE mid-block's single-head spatial self-attention (GroupNorm, q/k/v with bias, residual). */
export class SpatialSelfAttention {
  readonly group_norm: GroupNorm;
  readonly attn: Attention;
  constructor(
    readonly scope: Scope,
    channels: number,
    headDim: number,
    groups: number,
    eps: number,
  ) {
    this.group_norm = new GroupNorm(scope.child('group_norm'), groups, channels, eps);
    this.attn = new Attention(scope, channels, channels, channels / headDim, headDim, true);
  }
  async forward(x: Tensor, ctx: ForwardContext): Promise<Tensor> {
    const [b, c, h, w] = x.shape as [number, number, number, number];
    const wantsNorm = ctx.wants(`${this.scope.path}.group_norm:out`);
    const normed = await this.group_norm.forward(x, wantsNorm ? undefined : ctx);
    // diffusers normalises the (B, C, H·W) view: record it in that shape.
    if (wantsNorm) {
      const v = normed.reshape([b, c, h * w]);
      ctx.record(`${this.scope.path}.group_norm:out`, v);
      v.dispose();
    }
    const tokens = await nchwToTokens(normed);
    normed.dispose();
    const residual = await nchwToTokens(x);
    const y = await this.attn.forward(tokens, ctx, undefined, residual, true);
    tokens.dispose();
    residual.dispose();
    const out = await tokensToNchw(y, h, w);
    y.dispose();
    // Attention.forward recorded the token-layout output; the module output is NCHW.
    ctx.taps.get(`${this.scope.path}:out`)?.dispose();
    ctx.taps.delete(`${this.scope.path}:out`);
    ctx.record(`${this.scope.path}:out`, out);
    return out;
  }
}
