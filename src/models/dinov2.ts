// transformers' Dinov2Model (4.44): patch embedding, CLS token, position table interpolated
// bicubically for any input size exactly as transformers computes it, pre-LN layers with layer
// scale, final LayerNorm; pooler_output = last_hidden_state[:, 0].

import { ShapeError, tidy, type Tensor } from '../gpu/runtime.js';
import { add, binary } from '../kernels/elementwise.js';
import { broadcastTo, concat, nchwToTokens, permute, slice } from '../kernels/layout.js';
import { attention } from '../kernels/attention.js';
import type { Activation } from '../kernels/common.js';
import { resizeBicubic } from '../kernels/resize.js';
import { ForwardContext, runLayerStack, type Taps, type Vocabulary } from '../nn/context.js';
import { Conv2d, LayerNorm, Linear } from '../nn/modules.js';
import { Scope, WeightStore, type Param } from '../nn/weights.js';
import { configNumber, requireConfigNumber } from '../io/config-check.js';
import { activationOf, checkEncoderSizes, type EncoderForwardOptions } from './clip-text.js';

export interface Dinov2Config {
  hidden_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  mlp_ratio: number;
  image_size: number;
  patch_size: number;
  num_channels?: number;
  hidden_act: string;
  layer_norm_eps: number;
  qkv_bias?: boolean;
  use_swiglu_ffn?: boolean;
  layerscale_value?: number;
}

class Dinov2Layer {
  readonly norm1: LayerNorm;
  readonly query: Linear;
  readonly key: Linear;
  readonly value: Linear;
  readonly dense: Linear;
  readonly lambda1: Param;
  readonly norm2: LayerNorm;
  readonly fc1: Linear;
  readonly fc2: Linear;
  readonly lambda2: Param;
  readonly path: string;
  constructor(
    scope: Scope,
    d: number,
    hidden: number,
    readonly heads: number,
    eps: number,
    qkvBias: boolean,
    readonly act: Activation,
  ) {
    this.norm1 = new LayerNorm(scope.child('norm1'), d, eps);
    const att = scope.child('attention');
    this.query = new Linear(att.child('attention').child('query'), d, d, qkvBias);
    this.key = new Linear(att.child('attention').child('key'), d, d, qkvBias);
    this.value = new Linear(att.child('attention').child('value'), d, d, qkvBias);
    this.dense = new Linear(att.child('output').child('dense'), d, d);
    this.lambda1 = scope.child('layer_scale1').param('lambda1', [d]);
    this.norm2 = new LayerNorm(scope.child('norm2'), d, eps);
    this.fc1 = new Linear(scope.child('mlp').child('fc1'), d, hidden);
    this.fc2 = new Linear(scope.child('mlp').child('fc2'), hidden, d);
    this.lambda2 = scope.child('layer_scale2').param('lambda1', [d]);
    this.path = scope.path;
    for (const name of ['.attention:out', '.layer_scale1:out', '.mlp:out', '.layer_scale2:out', ':out']) scope.tap(name);
    scope.stoppable();
  }

  /** The layer's output; the stack records `<path>:out` and ends the module (runLayerStack). */
  forward(x: Tensor, ctx: ForwardContext): Tensor {
    const p = this.path;
    const y = tidy(() => {
      const n1 = this.norm1.forward(x, ctx);
      const o = attention(this.query.forward(n1, ctx), this.key.forward(n1, ctx), this.value.forward(n1, ctx), { heads: this.heads });
      const a = this.dense.forward(o, ctx);
      ctx.record(`${p}.attention:out`, a);
      const s1 = binary(a, this.lambda1.tensor, 'mul');
      ctx.record(`${p}.layer_scale1:out`, s1);
      const h = add(s1, x);
      const m = this.fc2.forward(this.fc1.forward(this.norm2.forward(h, ctx), ctx, { act: this.act }), ctx);
      ctx.record(`${p}.mlp:out`, m);
      const s2 = binary(m, this.lambda2.tensor, 'mul');
      ctx.record(`${p}.layer_scale2:out`, s2);
      return add(s2, h);
    });
    return y;
  }
}

export interface Dinov2Output {
  /** Null when the pass stopped early (as is the pooled output). */
  lastHiddenState: Tensor | null;
  /** layernorm(last hidden state)[:, 0] (the class token). */
  poolerOutput: Tensor | null;
  /** With outputHiddenStates: hidden_states[0] (embeddings) … [L]. */
  hiddenStates: Tensor[];
  stoppedAfter: string | undefined;
  taps: Taps;
}

export class Dinov2Model {
  readonly cls_token: Param;
  readonly mask_token: Param;
  readonly position_embeddings: Param;
  readonly projection: Conv2d;
  readonly layers: Dinov2Layer[] = [];
  readonly layernorm: LayerNorm;
  readonly gridSide: number;
  /** Every tap and stopping point of a pass. */
  readonly vocabulary: Vocabulary;

  constructor(
    readonly store: WeightStore,
    readonly config: Dinov2Config,
    prefix = '',
    /** What errors about the config name (its file where it came from one). */
    where = 'DINOv2 config',
  ) {
    for (const k of ['hidden_size', 'num_hidden_layers', 'num_attention_heads', 'mlp_ratio', 'image_size', 'patch_size', 'layer_norm_eps'] as const) {
      if (typeof config[k] !== 'number') throw new Error(`${where}: field "${k}" must be a number, got ${JSON.stringify(config[k])}`);
    }
    checkEncoderSizes(config, where, 'image');
    requireConfigNumber(config, 'mlp_ratio', where, { above: 0, max: 64 });
    configNumber(config, 'layerscale_value', where, { optional: true });
    if (config.use_swiglu_ffn) throw new Error(`${where}: use_swiglu_ffn is not supported`);
    const d = config.hidden_size;
    const root = Scope.root(store, prefix);
    this.vocabulary = root.vocabulary;
    const emb = root.child('embeddings');
    for (const name of ['embeddings.patch_embeddings:out', 'position_embeddings.used', 'embeddings:out']) this.vocabulary.tap(name);
    this.gridSide = Math.floor(config.image_size / config.patch_size);
    this.cls_token = emb.param('cls_token', [1, 1, d]);
    this.mask_token = emb.param('mask_token', [1, d]);
    this.position_embeddings = emb.param('position_embeddings', [1, this.gridSide ** 2 + 1, d]);
    this.projection = new Conv2d(emb.child('patch_embeddings').child('projection'), config.num_channels ?? 3, d, { kernel: config.patch_size, stride: config.patch_size });
    const act = activationOf(config.hidden_act, where);
    const hidden = Math.floor(d * config.mlp_ratio);
    for (let i = 0; i < config.num_hidden_layers; i++) {
      this.layers.push(new Dinov2Layer(root.child('encoder').child('layer').child(i), d, hidden, config.num_attention_heads, config.layer_norm_eps, config.qkv_bias ?? true, act));
    }
    this.layernorm = new LayerNorm(root.child('layernorm'), d, config.layer_norm_eps);
    for (let i = 0; i <= config.num_hidden_layers; i++) this.vocabulary.tap(`hidden_states.${i}`);
    this.vocabulary.tap('last_hidden_state');
    this.vocabulary.tap('pooler_output');
  }

  /** The position table for an input of h×w pixels: as stored when the patch grid equals the
   *  config's square grid, else the patch part resized bicubically with transformers 4.44's
   *  scale factors ((h/p + 0.1)/√N, (w/p + 0.1)/√N). */
  positionTable(h: number, w: number): Tensor {
    const d = this.config.hidden_size;
    const p = this.config.patch_size;
    const gh = Math.floor(h / p);
    const gw = Math.floor(w / p);
    const n = this.gridSide ** 2;
    const table = this.position_embeddings.tensor;
    if (gh * gw === n && h === w) return table.reshape(table.shape);
    const side = Math.sqrt(n);
    const fy = (gh + 0.1) / side;
    const fx = (gw + 0.1) / side;
    const outH = Math.floor(side * fy);
    const outW = Math.floor(side * fx);
    if (outH !== gh || outW !== gw) throw new ShapeError(`DINOv2: position interpolation gave ${outH}×${outW}, expected ${gh}×${gw}`);
    return tidy(() => {
      const grid = permute(slice(table, [0, 1, 0], [1, n, d]).reshape([1, this.gridSide, this.gridSide, d]), [0, 3, 1, 2]);
      const tokens = nchwToTokens(resizeBicubic(grid, gh, gw, { scaleY: Math.fround(1 / fy), scaleX: Math.fround(1 / fx) }));
      return concat([slice(table, [0, 0, 0], [1, 1, d]), tokens], 1);
    });
  }

  /** pixel_values [B, C, H, W] (H, W multiples of the patch size are not required: the grid floors). */
  forward(pixels: Tensor, opts: EncoderForwardOptions = {}): Dinov2Output {
    const [b, ch, h, w] = pixels.shape as [number, number, number, number];
    const c = this.config;
    if (pixels.rank !== 4 || ch !== (c.num_channels ?? 3)) throw new ShapeError(`DINOv2: pixel_values must be [B, ${c.num_channels ?? 3}, H, W], got [${pixels.shape.join(', ')}]`);
    if (h < c.patch_size || w < c.patch_size) throw new ShapeError(`DINOv2: input ${h}×${w} is smaller than one ${c.patch_size}×${c.patch_size} patch`);
    const d = c.hidden_size;
    const ctx = new ForwardContext(this.vocabulary, opts, 'DINOv2');
    const { result, stoppedAfter } = ctx.run(() => {
      const tokens = nchwToTokens(this.projection.forward(pixels, ctx));
      ctx.record('embeddings.patch_embeddings:out', tokens);
      const seq = concat([broadcastTo(this.cls_token.tensor, [b, 1, d]), tokens], 1);
      const pos = this.positionTable(h, w);
      ctx.record('position_embeddings.used', pos);
      const x0 = add(seq, pos);
      ctx.record('embeddings:out', x0);
      const hidden: Tensor[] = [];
      const x = runLayerStack(x0, this.layers, ctx, (t) => opts.outputHiddenStates && hidden.push(t));
      const last = this.layernorm.forward(x, ctx);
      ctx.record('last_hidden_state', last);
      const pooled = slice(last, [0, 0, 0], [b, 1, d]).reshape([b, d]);
      ctx.record('pooler_output', pooled);
      return { last, pooled, hidden };
    });
    return { lastHiddenState: result?.last ?? null, poolerOutput: result?.pooled ?? null, hiddenStates: result?.hidden ?? [], stoppedAfter, taps: ctx.taps };
  }
}
