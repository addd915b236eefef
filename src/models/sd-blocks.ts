// diffusers building blocks shared by the SD1.5 U-Net and the VAE encoder: ResnetBlock2D,
// Downsample2D, Upsample2D, Attention (with Q/K/V taps), BasicTransformerBlock, Transformer2DModel.
// Parameter keys mirror diffusers' state_dict keys. Each forward runs in its own `tidy`, so a
// block's intermediates are freed when it returns.

import { tidy, type Tensor } from '../gpu/runtime.js';
import { binary, geglu } from '../kernels/elementwise.js';
import { linearSplit } from '../kernels/matmul.js';
import { attention } from '../kernels/attention.js';
import { nchwToTokens, resizeNearest, tokensToNchw, upsampleNearest2x } from '../kernels/layout.js';
import type { ForwardContext } from '../nn/context.js';
import { Conv2d, GroupNorm, LayerNorm, Linear } from '../nn/modules.js';
import type { FusedParam, Scope } from '../nn/weights.js';

export class ResnetBlock2D {
  readonly norm1: GroupNorm;
  readonly conv1: Conv2d;
  readonly time_emb_proj: Linear | undefined;
  readonly norm2: GroupNorm;
  readonly conv2: Conv2d;
  readonly conv_shortcut: Conv2d | undefined;
  readonly path: string;
  constructor(
    scope: Scope,
    inChannels: number,
    outChannels: number,
    tembChannels: number | null,
    groups: number,
    eps: number,
    readonly outputScaleFactor = 1,
  ) {
    this.path = scope.path;
    this.norm1 = new GroupNorm(scope.child('norm1'), groups, inChannels, eps);
    this.conv1 = new Conv2d(scope.child('conv1'), inChannels, outChannels, { kernel: 3, padding: 1 });
    this.time_emb_proj = tembChannels ? new Linear(scope.child('time_emb_proj'), tembChannels, outChannels) : undefined;
    this.norm2 = new GroupNorm(scope.child('norm2'), groups, outChannels, eps);
    this.conv2 = new Conv2d(scope.child('conv2'), outChannels, outChannels, { kernel: 3, padding: 1 });
    this.conv_shortcut = inChannels !== outChannels ? new Conv2d(scope.child('conv_shortcut'), inChannels, outChannels, { kernel: 1 }) : undefined;
    if (outputScaleFactor !== 1) throw new Error(`${scope.path}: output_scale_factor ${outputScaleFactor} is not supported`);
    scope.tap(':out');
    scope.stoppable();
  }

  /** `tembSilu` is silu(temb) [B, Ct] (shared by all blocks of a pass). */
  forward(x: Tensor, ctx: ForwardContext, tembSilu?: Tensor): Tensor {
    const y = tidy(() => {
      // h = conv1(silu(norm1(x))) + time_emb_proj(silu(temb))[:, :, None, None], the add fused into conv1.
      let temb: Tensor | undefined;
      if (this.time_emb_proj) {
        if (!tembSilu) throw new Error(`${this.path}: needs a time embedding`);
        temb = this.time_emb_proj.forward(tembSilu, ctx);
      }
      let h = this.conv1.forward(this.norm1.forward(x, ctx, { act: 'silu' }), ctx, { batchBias: temb });
      h = this.norm2.forward(h, ctx, { act: 'silu' });
      const shortcut = this.conv_shortcut ? this.conv_shortcut.forward(x, ctx) : x;
      return this.conv2.forward(h, ctx, { residual: shortcut });
    });
    ctx.record(`${this.path}:out`, y);
    ctx.finished(this.path);
    return y;
  }
}

export class Downsample2D {
  readonly conv: Conv2d;
  readonly path: string;
  constructor(
    scope: Scope,
    channels: number,
    outChannels: number,
    /** diffusers' `padding`: 1 → symmetric pad 1; 0 → the VAE's asymmetric (0, 1, 0, 1) pad. */
    padding: number,
  ) {
    this.path = scope.path;
    this.conv = new Conv2d(scope.child('conv'), channels, outChannels, { kernel: 3, stride: 2, padding: padding === 0 ? [0, 1, 0, 1] : padding });
    scope.tap(':out');
    scope.stoppable();
  }
  forward(x: Tensor, ctx: ForwardContext): Tensor {
    const y = this.conv.forward(x, ctx);
    ctx.record(`${this.path}:out`, y);
    ctx.finished(this.path);
    return y;
  }
}

export class Upsample2D {
  readonly conv: Conv2d;
  readonly path: string;
  constructor(
    scope: Scope,
    channels: number,
    outChannels: number,
  ) {
    this.path = scope.path;
    this.conv = new Conv2d(scope.child('conv'), channels, outChannels, { kernel: 3, padding: 1 });
    scope.tap(':out');
    scope.stoppable();
  }
  /** ×2 nearest upsampling, or to `size` [H, W] (diffusers' `upsample_size`, used when the latent
   *  is not a multiple of the U-Net's overall factor), then the 3×3 conv. */
  forward(x: Tensor, ctx: ForwardContext, size?: readonly [number, number]): Tensor {
    const y = tidy(() => this.conv.forward(size ? resizeNearest(x, size[0], size[1]) : upsampleNearest2x(x), ctx));
    ctx.record(`${this.path}:out`, y);
    ctx.finished(this.path);
    return y;
  }
}

/** An IP-Adapter's projections for one attn2 layer (diffusers IPAdapterAttnProcessor). */
export interface IpProjection {
  to_k_ip: Linear;
  to_v_ip: Linear;
}

/** What the cross-attention layers attend to: text tokens and, with an IP-Adapter, image tokens. */
export interface Conditioning {
  /** encoder_hidden_states [B, T, D]. */
  text: Tensor;
  /** IP-Adapter image tokens and the adapter's per-layer projections, for this call only. */
  ip?: IpConditioning | undefined;
}

export interface IpConditioning {
  /** Image tokens [B, Nip, D'] from the resampler. */
  tokens: Tensor;
  /** out = SDPA(q, k, v) + scale · SDPA(q, to_k_ip(ip), to_v_ip(ip)). */
  scale: number;
  /** attn2 module path → its projections. */
  projections: ReadonlyMap<string, IpProjection>;
}

export interface AttentionCall {
  /** Keys/values come from this (cross-attention); self-attention when absent. */
  context?: Tensor | undefined;
  /** Added to the output (fused into to_out). */
  residual?: Tensor | undefined;
  /** diffusers' `residual_connection`: the module output `<path>:out` includes the residual. */
  residualInOutput?: boolean;
  /** Record `<path>:out` here (default true); false when the caller records it in another layout. */
  recordOutput?: boolean;
  ip?: IpConditioning | undefined;
}

/** diffusers `Attention` on token sequences (B, N, C): to_q/to_k/to_v, SDPA, to_out.0. Taps:
 *  `<path>.to_q:out`, `.to_k:out`, `.to_v:out` (before the head split), `<path>.to_out.0:in`
 *  (attention output before the projection), `<path>:out`, and with an IP-Adapter
 *  `<path>.processor.to_k_ip.0:out` / `to_v_ip.0:out`. */
export class Attention {
  readonly to_q: Linear;
  readonly to_k: Linear;
  readonly to_v: Linear;
  readonly to_out: Linear;
  readonly path: string;
  /** to_q/to_k/to_v (self-attention) or to_k/to_v (cross-attention) weights [n·inner, K] and biases
   *  stacked at load, for one GEMM (`linearSplit`) writing the same q, k, v as the three linears. */
  private readonly fusedWeight: FusedParam | undefined;
  private readonly fusedBias: FusedParam | undefined;
  constructor(
    scope: Scope,
    queryDim: number,
    contextDim: number,
    readonly heads: number,
    headDim: number,
    qkvBias: boolean,
    ipTaps = false,
    /** 'qkv': always self-attention (q, k, v from x); 'kv': always cross-attention (k, v from the context). */
    readonly fuse: 'qkv' | 'kv' | 'none' = 'none',
  ) {
    this.path = scope.path;
    const inner = heads * headDim;
    this.to_q = new Linear(scope.child('to_q'), queryDim, inner, qkvBias);
    this.to_k = new Linear(scope.child('to_k'), contextDim, inner, qkvBias);
    this.to_v = new Linear(scope.child('to_v'), contextDim, inner, qkvBias);
    this.to_out = new Linear(scope.child('to_out').child(0), inner, queryDim, true);
    if (fuse !== 'none') {
      if (fuse === 'qkv' && queryDim !== contextDim) throw new Error(`${scope.path}: fused q/k/v needs equal query and context dimensions`);
      const members = fuse === 'qkv' ? [this.to_q, this.to_k, this.to_v] : [this.to_k, this.to_v];
      const name = fuse === 'qkv' ? 'to_qkv' : 'to_kv';
      this.fusedWeight = scope.store.fuse(`${scope.path}.${name}.weight`, members.map((l) => l.weight));
      if (qkvBias) this.fusedBias = scope.store.fuse(`${scope.path}.${name}.bias`, members.map((l) => l.bias!));
    }
    scope.tap(':out');
    if (ipTaps) {
      for (const name of ['to_k_ip', 'to_v_ip']) for (const t of ['.0:out', '.0.linear:in', '.0.linear:out']) scope.tap(`.processor.${name}${t}`);
    }
    scope.stoppable();
  }

  /** q = to_q(x), k = to_k(c), v = to_v(c), with the taps and stopping points of the three linears;
   *  the fused ones in one GEMM. */
  private projections(x: Tensor, c: Tensor, ctx: ForwardContext, cross: boolean): { q: Tensor; k: Tensor; v: Tensor } {
    const w = this.fusedWeight?.tensor;
    const b = this.fusedBias?.tensor ?? undefined;
    if (!w || (this.fusedBias && !b)) return { q: this.to_q.forward(x, ctx), k: this.to_k.forward(c, ctx), v: this.to_v.forward(c, ctx) };
    if ((this.fuse === 'qkv') === cross) throw new Error(`${this.path}: built for ${this.fuse === 'qkv' ? 'self' : 'cross'}-attention, called for ${cross ? 'cross' : 'self'}-attention`);
    const record = (l: Linear, input: Tensor, out: Tensor) => {
      ctx.record(`${l.path}:in`, input);
      ctx.record(`${l.path}:out`, out);
    };
    let q: Tensor, k: Tensor, v: Tensor;
    if (this.fuse === 'qkv') {
      [q, k, v] = linearSplit(x, w, 3, b) as [Tensor, Tensor, Tensor];
      record(this.to_q, x, q);
    } else {
      q = this.to_q.forward(x, ctx);
      [k, v] = linearSplit(c, w, 2, b) as [Tensor, Tensor];
    }
    record(this.to_k, c, k);
    record(this.to_v, c, v);
    // Stopping after one of the three: all three exist by then, as the pass asked to stop there.
    for (const l of this.fuse === 'qkv' ? [this.to_q, this.to_k, this.to_v] : [this.to_k, this.to_v]) ctx.finished(l.path);
    return { q, k, v };
  }

  /** y = to_out(SDPA(q(x), k(c), v(c))) + residual, with c = context ?? x. The residual add is
   *  fused into to_out; `<path>:out` follows diffusers (without the residual unless
   *  `residualInOutput`, as the VAE's mid-block attention has `residual_connection`). */
  forward(x: Tensor, ctx: ForwardContext, o: AttentionCall = {}): Tensor {
    const recordOutput = o.recordOutput ?? true;
    const y = tidy(() => {
      const c = o.context ?? x;
      const { q, k, v } = this.projections(x, c, ctx, o.context !== undefined);
      let out = attention(q, k, v, { heads: this.heads, f16Inputs: this.to_out.weight.tensor.dtype === 'f16' });
      const ip = o.ip?.projections.get(this.path);
      if (o.ip && ip) {
        const kip = ip.to_k_ip.forward(o.ip.tokens, ctx);
        const vip = ip.to_v_ip.forward(o.ip.tokens, ctx);
        // Taps as diffusers names them: processor.to_k_ip.0:out in the (B, images, N, C) layout.
        ctx.record(`${this.path}.processor.to_k_ip.0:out`, kip.reshape([kip.shape[0]!, 1, kip.shape[1]!, kip.shape[2]!]));
        ctx.record(`${this.path}.processor.to_v_ip.0:out`, vip.reshape([vip.shape[0]!, 1, vip.shape[1]!, vip.shape[2]!]));
        out = binary(out, attention(q, kip, vip, { heads: this.heads }), 'add', 1, o.ip.scale);
      }
      const preResidualTap = recordOutput && !o.residualInOutput ? `${this.path}:out` : undefined;
      return this.to_out.forward(out, ctx, { residual: o.residual, preResidualTap });
    });
    if (!recordOutput) return y; // the caller records the output and ends the module
    if (o.residualInOutput) ctx.record(`${this.path}:out`, y);
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
  readonly path: string;
  constructor(
    scope: Scope,
    dim: number,
    heads: number,
    headDim: number,
    crossDim: number,
  ) {
    this.path = scope.path;
    this.norm1 = new LayerNorm(scope.child('norm1'), dim, 1e-5);
    this.attn1 = new Attention(scope.child('attn1'), dim, dim, heads, headDim, false, false, 'qkv');
    this.norm2 = new LayerNorm(scope.child('norm2'), dim, 1e-5);
    this.attn2 = new Attention(scope.child('attn2'), dim, crossDim, heads, headDim, false, true, 'kv');
    this.norm3 = new LayerNorm(scope.child('norm3'), dim, 1e-5);
    const net = scope.child('ff').child('net');
    this.ff_proj = new Linear(net.child(0).child('proj'), dim, dim * 4 * 2);
    this.ff_out = new Linear(net.child(2), dim * 4, dim);
    scope.tap('.ff.net.0:out');
    scope.tap('.ff:out');
    scope.tap(':out');
    scope.stoppable();
  }

  forward(x: Tensor, ctx: ForwardContext, cond: Conditioning): Tensor {
    const y = tidy(() => {
      const h1 = this.attn1.forward(this.norm1.forward(x, ctx), ctx, { residual: x });
      const h2 = this.attn2.forward(this.norm2.forward(h1, ctx), ctx, { context: cond.text, residual: h1, ip: cond.ip });
      const gated = geglu(this.ff_proj.forward(this.norm3.forward(h2, ctx), ctx));
      ctx.record(`${this.path}.ff.net.0:out`, gated);
      return this.ff_out.forward(gated, ctx, { residual: h2, preResidualTap: `${this.path}.ff:out` });
    });
    ctx.record(`${this.path}:out`, y);
    ctx.finished(this.path);
    return y;
  }
}

export class Transformer2DModel {
  readonly norm: GroupNorm;
  /** A 1×1 conv (SD1.5) or, with `use_linear_projection` (SDXL), a Linear on the token rows. */
  readonly proj_in: Conv2d | Linear;
  readonly transformer_blocks: BasicTransformerBlock[] = [];
  readonly proj_out: Conv2d | Linear;
  readonly path: string;
  constructor(
    scope: Scope,
    channels: number,
    heads: number,
    headDim: number,
    crossDim: number,
    groups: number,
    layers = 1,
    /** diffusers' `use_linear_projection`: proj_in/proj_out are nn.Linear ([out, in] weights). */
    readonly linearProjection = false,
  ) {
    this.path = scope.path;
    const inner = heads * headDim;
    this.norm = new GroupNorm(scope.child('norm'), groups, channels, 1e-6);
    this.proj_in = linearProjection ? new Linear(scope.child('proj_in'), channels, inner) : new Conv2d(scope.child('proj_in'), channels, inner, { kernel: 1 });
    for (let i = 0; i < layers; i++) this.transformer_blocks.push(new BasicTransformerBlock(scope.child('transformer_blocks').child(i), inner, heads, headDim, crossDim));
    this.proj_out = linearProjection ? new Linear(scope.child('proj_out'), inner, channels) : new Conv2d(scope.child('proj_out'), inner, channels, { kernel: 1 });
    scope.tap(':out');
    scope.stoppable();
  }

  forward(x: Tensor, ctx: ForwardContext, cond: Conditioning): Tensor {
    const [, , h, w] = x.shape as [number, number, number, number];
    const y = tidy(() => {
      if (this.proj_in instanceof Linear && this.proj_out instanceof Linear) {
        // use_linear_projection: norm → (B, H·W, C) → proj_in → blocks → proj_out → NCHW + x.
        let t = this.proj_in.forward(nchwToTokens(this.norm.forward(x, ctx)), ctx);
        for (const block of this.transformer_blocks) t = block.forward(t, ctx, cond);
        return binary(tokensToNchw(this.proj_out.forward(t, ctx), h, w), x, 'add');
      }
      // proj_in writes token rows (B, H·W, C) and proj_out reads them: no layout copies.
      let t = (this.proj_in as Conv2d).forward(this.norm.forward(x, ctx), ctx, { tokensOut: true });
      for (const block of this.transformer_blocks) t = block.forward(t, ctx, cond);
      return (this.proj_out as Conv2d).forwardTokens(t, h, w, ctx, { residual: x });
    });
    ctx.record(`${this.path}:out`, y);
    ctx.finished(this.path);
    return y;
  }
}

/** The VAE mid-block's single-head spatial self-attention (GroupNorm, q/k/v with bias, residual). */
export class SpatialSelfAttention {
  readonly group_norm: GroupNorm;
  readonly attn: Attention;
  readonly path: string;
  constructor(
    scope: Scope,
    channels: number,
    headDim: number,
    groups: number,
    eps: number,
  ) {
    this.path = scope.path;
    this.group_norm = new GroupNorm(scope.child('group_norm'), groups, channels, eps);
    this.attn = new Attention(scope, channels, channels, channels / headDim, headDim, true, false, 'qkv');
  }
  forward(x: Tensor, ctx: ForwardContext): Tensor {
    const [b, c, h, w] = x.shape as [number, number, number, number];
    const y = tidy(() => {
      const normTap = `${this.path}.group_norm:out`;
      const wantsNorm = ctx.wants(normTap);
      const normed = this.group_norm.forward(x, wantsNorm ? undefined : ctx);
      // diffusers normalises the (B, C, H·W) view: record it in that shape.
      if (wantsNorm) ctx.record(normTap, normed.reshape([b, c, h * w]));
      const tokens = this.attn.forward(nchwToTokens(normed), ctx, { residual: nchwToTokens(x), residualInOutput: true, recordOutput: false });
      return tokensToNchw(tokens, h, w);
    });
    // The module output is NCHW (Attention would have recorded the token layout).
    ctx.record(`${this.path}:out`, y);
    ctx.finished(this.path);
    return y;
  }
}
