// Building blocks whose parameter keys mirror PyTorch's (`<path>.weight`, `<path>.bias`).

import type { Tensor } from '../gpu/runtime.js';
import { conv1x1FromTokens, conv2d, linear } from '../kernels/matmul.js';
import { nchwToTokens, tokensToNchw } from '../kernels/layout.js';
import { groupNorm, layerNorm } from '../kernels/norm.js';
import { add, unary } from '../kernels/elementwise.js';
import type { Activation } from '../kernels/common.js';
import type { ForwardContext } from './context.js';
import type { Param, Scope } from './weights.js';

export class Linear {
  readonly path: string;
  readonly weight: Param;
  readonly bias: Param | undefined;
  constructor(
    scope: Scope,
    readonly inFeatures: number,
    readonly outFeatures: number,
    hasBias = true,
    /** Name used for recorded activations when it differs from the parameter prefix. */
    recordPath?: string,
  ) {
    this.path = recordPath ?? scope.path;
    this.weight = scope.param('weight', [outFeatures, inFeatures], true);
    this.bias = hasBias ? scope.param('bias', [outFeatures]) : undefined;
    scope.vocabulary.tap(`${this.path}:in`);
    scope.vocabulary.tap(`${this.path}:out`);
    scope.vocabulary.stop(this.path);
  }
  /** y = act(x·Wᵀ + b) + residual; records `<path>:in` and `<path>:out`. `preResidualTap` names
   *  the enclosing module's output before the residual (diffusers' `attn1:out`, `ff:out`, …): the
   *  residual add stays fused unless that name is being recorded. */
  forward(x: Tensor, ctx?: ForwardContext, o: { act?: Activation; residual?: Tensor | undefined; preResidualTap?: string | undefined } = {}): Tensor {
    ctx?.record(`${this.path}:in`, x);
    const tap = o.preResidualTap;
    let y: Tensor;
    if (o.residual && tap && ctx?.wants(tap)) {
      const a = linear(x, this.weight.tensor, { bias: this.bias?.tensor, act: o.act });
      ctx.record(`${this.path}:out`, a);
      ctx.record(tap, a);
      y = add(a, o.residual);
    } else {
      y = linear(x, this.weight.tensor, { bias: this.bias?.tensor, act: o.act, residual: o.residual });
      ctx?.record(`${this.path}:out`, y);
      if (tap && !o.residual) ctx?.record(tap, y);
    }
    ctx?.finished(this.path);
    return y;
  }
}

export interface Conv2dConfig {
  kernel: number;
  stride?: number;
  padding?: number | readonly [number, number, number, number];
  bias?: boolean;
}

export class Conv2d {
  readonly path: string;
  readonly weight: Param;
  readonly bias: Param | undefined;
  constructor(
    scope: Scope,
    readonly inChannels: number,
    readonly outChannels: number,
    readonly cfg: Conv2dConfig,
  ) {
    this.path = scope.path;
    this.weight = scope.param('weight', [outChannels, inChannels, cfg.kernel, cfg.kernel], true);
    this.bias = cfg.bias === false ? undefined : scope.param('bias', [outChannels]);
    scope.tap(':in');
    scope.tap(':out');
    scope.stoppable();
  }
  /** conv(x) + bias [+ batchBias [B, Cout]] → act → [+ residual]. `<path>:out` is the conv output
   *  alone (diffusers' module output): with a batch bias the add stays fused unless that is being
   *  recorded. With `tokensOut` (1×1 convs) the result is (B, H·W, Cout) token rows. */
  forward(x: Tensor, ctx?: ForwardContext, o: { residual?: Tensor; act?: Activation; batchBias?: Tensor; tokensOut?: boolean } = {}): Tensor {
    ctx?.record(`${this.path}:in`, x);
    const conv = { bias: this.bias?.tensor, stride: this.cfg.stride ?? 1, padding: this.cfg.padding ?? 0 };
    let y: Tensor;
    if ((o.batchBias || o.tokensOut) && ctx?.wants(`${this.path}:out`)) {
      // The unfused path, so that the module output can be recorded as diffusers has it (NCHW).
      if (o.residual || o.act) throw new Error(`${this.path}: a batch bias or token output with a residual or activation is not supported`);
      const out = conv2d(x, this.weight.tensor, conv);
      ctx.record(`${this.path}:out`, out);
      y = o.batchBias ? add(out, o.batchBias.reshape([o.batchBias.shape[0]!, o.batchBias.shape[1]!, 1, 1])) : out;
      if (o.tokensOut) y = nchwToTokens(y);
    } else {
      y = conv2d(x, this.weight.tensor, { ...conv, residual: o.residual, act: o.act, batchBias: o.batchBias, tokensOut: o.tokensOut });
      if (!o.batchBias && !o.tokensOut) ctx?.record(`${this.path}:out`, y);
    }
    ctx?.finished(this.path);
    return y;
  }

  /** This 1×1 conv on token rows (B, H·W, Cin) taken as the image [B, Cin, H, W], + residual (NCHW):
   *  the NCHW result without a layout copy of the input (recorded `<path>:in` is NCHW, copied then). */
  forwardTokens(tokens: Tensor, h: number, w: number, ctx?: ForwardContext, o: { residual?: Tensor } = {}): Tensor {
    if (ctx?.wants(`${this.path}:in`)) return this.forward(tokensToNchw(tokens, h, w), ctx, o);
    const y = conv1x1FromTokens(tokens, this.weight.tensor, h, w, { bias: this.bias?.tensor, residual: o.residual });
    ctx?.record(`${this.path}:out`, y);
    ctx?.finished(this.path);
    return y;
  }
}

export class GroupNorm {
  readonly path: string;
  readonly weight: Param;
  readonly bias: Param;
  constructor(
    scope: Scope,
    readonly groups: number,
    readonly channels: number,
    readonly eps: number,
  ) {
    this.path = scope.path;
    this.weight = scope.param('weight', [channels]);
    this.bias = scope.param('bias', [channels]);
    scope.tap(':out');
  }
  /** GroupNorm, optionally followed by an activation (SiLU in ResNet blocks) fused into the same
   *  dispatch; unfused when the pre-activation output `<path>:out` is being recorded. */
  forward(x: Tensor, ctx?: ForwardContext, o: { act?: Activation } = {}): Tensor {
    const act = o.act ?? 'none';
    const record = ctx?.wants(`${this.path}:out`) ?? false;
    const y = groupNorm(x, this.weight.tensor, this.bias.tensor, { groups: this.groups, eps: this.eps, act: record ? 'none' : act });
    if (!record) return y;
    ctx!.record(`${this.path}:out`, y);
    return act === 'none' ? y : unary(y, act);
  }
}

export class LayerNorm {
  readonly path: string;
  readonly weight: Param;
  readonly bias: Param;
  constructor(
    scope: Scope,
    readonly dim: number,
    readonly eps: number,
    recordPath?: string,
  ) {
    this.path = recordPath ?? scope.path;
    this.weight = scope.param('weight', [dim]);
    this.bias = scope.param('bias', [dim]);
    scope.vocabulary.tap(`${this.path}:out`);
  }
  forward(x: Tensor, ctx?: ForwardContext): Tensor {
    const y = layerNorm(x, this.weight.tensor, this.bias.tensor, this.eps);
    ctx?.record(`${this.path}:out`, y);
    return y;
  }
}
