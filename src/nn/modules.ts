// Building blocks whose parameter keys mirror PyTorch's (`<path>.weight`, `<path>.bias`).

import type { Tensor } from '../gpu/runtime.js';
import { conv2d, linear } from '../kernels/matmul.js';
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
    this.weight = scope.param('weight', [outFeatures, inFeatures]);
    this.bias = hasBias ? scope.param('bias', [outFeatures]) : undefined;
  }
  /** y = act(x·Wᵀ + b) + residual; records `<path>:in` and `<path>:out`. `preResidualTap` names
   *  the enclosing module's output before the residual (diffusers' `attn1:out`, `ff:out`, …): the
   *  residual add stays fused unless that name is being recorded. */
  async forward(x: Tensor, ctx?: ForwardContext, o: { act?: Activation; residual?: Tensor | undefined; preResidualTap?: string | undefined } = {}): Promise<Tensor> {
    ctx?.record(`${this.path}:in`, x);
    const tap = o.preResidualTap;
    if (o.residual && tap && ctx?.wants(tap)) {
      const a = await linear(x, this.weight.tensor, { bias: this.bias?.tensor, act: o.act });
      ctx.record(`${this.path}:out`, a);
      ctx.record(tap, a);
      const y = await add(a, o.residual);
      a.dispose();
      return y;
    }
    const y = await linear(x, this.weight.tensor, { bias: this.bias?.tensor, act: o.act, residual: o.residual });
    ctx?.record(`${this.path}:out`, y);
    if (tap && !o.residual) ctx?.record(tap, y);
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
    this.weight = scope.param('weight', [outChannels, inChannels, cfg.kernel, cfg.kernel]);
    this.bias = cfg.bias === false ? undefined : scope.param('bias', [outChannels]);
  }
  async forward(x: Tensor, ctx?: ForwardContext, o: { residual?: Tensor; act?: Activation } = {}): Promise<Tensor> {
    ctx?.record(`${this.path}:in`, x);
    const y = await conv2d(x, this.weight.tensor, { bias: this.bias?.tensor, stride: this.cfg.stride ?? 1, padding: this.cfg.padding ?? 0, residual: o.residual, act: o.act });
    ctx?.record(`${this.path}:out`, y);
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
  }
  /** GroupNorm, optionally followed by SiLU fused into the same pass (unfused when the
   *  pre-activation output `<path>:out` is being recorded). */
  async forward(x: Tensor, ctx?: ForwardContext, silu = false): Promise<Tensor> {
    const record = ctx?.wants(`${this.path}:out`) ?? false;
    const y = await groupNorm(x, this.weight.tensor, this.bias.tensor, { groups: this.groups, eps: this.eps, silu: silu && !record });
    if (!record) return y;
    ctx!.record(`${this.path}:out`, y);
    if (!silu) return y;
    const z = await unary(y, 'silu');
    y.dispose();
    return z;
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
  }
  async forward(x: Tensor, ctx?: ForwardContext): Promise<Tensor> {
    const y = await layerNorm(x, this.weight.tensor, this.bias.tensor, this.eps);
    ctx?.record(`${this.path}:out`, y);
    return y;
  }
}
