// transformers' CLIPVisionModelWithProjection: patch embedding (no bias) + class token + position
// table, pre_layrnorm, pre-LN encoder layers (non-causal), post_layernorm on the class token and the
// visual projection. Every hidden state (IP-Adapter reads the penultimate one) and every layer's
// q/k/v can be recorded.

import { ShapeError, type Tensor } from '../gpu/runtime.js';
import { add } from '../kernels/elementwise.js';
import { broadcastTo, concat, nchwToTokens, slice } from '../kernels/layout.js';
import { conv2d } from '../kernels/matmul.js';
import { ForwardContext, runLayerStack, type Taps, type Vocabulary } from '../nn/context.js';
import { LayerNorm, Linear } from '../nn/modules.js';
import { Scope, WeightStore, type Param } from '../nn/weights.js';
import { CONFIG_LIMITS, configNumber, requireConfigNumber } from '../io/config-check.js';
import { ClipEncoderLayer, ClipTextModel, activationOf, checkEncoderSizes, type ClipTextConfig, type EncoderForwardOptions } from './clip-text.js';

export interface ClipVisionConfig {
  hidden_size: number;
  intermediate_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  num_channels?: number;
  image_size: number;
  patch_size: number;
  hidden_act: string;
  layer_norm_eps: number;
  projection_dim?: number;
}

export interface ClipVisionOutput {
  /** Null when the pass stopped early (as are the other outputs). */
  lastHiddenState: Tensor | null;
  /** post_layernorm(last_hidden_state[:, 0]). */
  poolerOutput: Tensor | null;
  /** visual_projection(pooler_output), when the model has a projection. */
  imageEmbeds: Tensor | null;
  /** hidden_states[0] (after pre_layrnorm) … hidden_states[L], with outputHiddenStates. */
  hiddenStates: Tensor[];
  stoppedAfter: string | undefined;
  taps: Taps;
}

export class ClipVisionModel {
  readonly class_embedding: Param;
  readonly patch_embedding: Param;
  readonly position_embedding: Param;
  readonly pre_layrnorm: LayerNorm;
  readonly layers: ClipEncoderLayer[] = [];
  readonly post_layernorm: LayerNorm;
  readonly visual_projection: Linear | undefined;
  readonly numPatchesPerSide: number;
  /** Every tap and stopping point of a pass. */
  readonly vocabulary: Vocabulary;

  constructor(
    readonly store: WeightStore,
    readonly config: ClipVisionConfig,
    opts: { projection?: boolean; prefix?: string; where?: string } = {},
  ) {
    const where = opts.where ?? 'CLIP vision config';
    for (const k of ['hidden_size', 'intermediate_size', 'num_hidden_layers', 'num_attention_heads', 'image_size', 'patch_size', 'layer_norm_eps'] as const) {
      if (typeof config[k] !== 'number') throw new Error(`${where}: field "${k}" must be a number, got ${JSON.stringify(config[k])}`);
    }
    checkEncoderSizes(config, where, 'image');
    requireConfigNumber(config, 'intermediate_size', where, { integer: true, min: 1, max: CONFIG_LIMITS.channels * 8 });
    configNumber(config, 'projection_dim', where, { optional: true, integer: true, min: 1, max: CONFIG_LIMITS.channels });
    const d = config.hidden_size;
    const root = Scope.root(store, opts.prefix ?? 'vision_model');
    this.vocabulary = root.vocabulary;
    const emb = root.child('embeddings');
    emb.tap(':out');
    const p = config.patch_size;
    this.numPatchesPerSide = Math.floor(config.image_size / p);
    this.class_embedding = emb.param('class_embedding', [d]);
    this.patch_embedding = emb.child('patch_embedding').param('weight', [d, config.num_channels ?? 3, p, p]);
    this.position_embedding = emb.child('position_embedding').param('weight', [this.numPatchesPerSide ** 2 + 1, d]);
    this.pre_layrnorm = new LayerNorm(root.child('pre_layrnorm'), d, config.layer_norm_eps);
    const act = activationOf(config.hidden_act, where);
    for (let i = 0; i < config.num_hidden_layers; i++) {
      this.layers.push(new ClipEncoderLayer(root.child('encoder').child('layers').child(i), d, config.intermediate_size, config.num_attention_heads, config.layer_norm_eps, act, false));
    }
    this.post_layernorm = new LayerNorm(root.child('post_layernorm'), d, config.layer_norm_eps);
    if ((opts.projection ?? true) && config.projection_dim) this.visual_projection = new Linear(Scope.root(store, 'visual_projection', this.vocabulary), d, config.projection_dim, false);
    for (let i = 0; i <= config.num_hidden_layers; i++) this.vocabulary.tap(`hidden_states.${i}`);
    for (const name of ['penultimate', 'last_hidden_state', 'pooler_output']) this.vocabulary.tap(name);
    if (this.visual_projection) this.vocabulary.tap('image_embeds');
  }

  /** pixel_values [B, C, S, S] with S = image_size (as the CLIP processors produce). */
  forward(pixels: Tensor, opts: EncoderForwardOptions = {}): ClipVisionOutput {
    const c = this.config;
    const [b, ch, h, w] = pixels.shape as [number, number, number, number];
    if (pixels.rank !== 4 || ch !== (c.num_channels ?? 3) || h !== c.image_size || w !== c.image_size) {
      throw new ShapeError(`CLIP vision: pixel_values must be [B, ${c.num_channels ?? 3}, ${c.image_size}, ${c.image_size}], got [${pixels.shape.join(', ')}]`);
    }
    const d = c.hidden_size;
    const prefix = this.pre_layrnorm.path.replace(/\.?pre_layrnorm$/, '');
    const pre = prefix ? `${prefix}.` : '';
    const ctx = new ForwardContext(this.vocabulary, opts, 'CLIP vision');
    const { result, stoppedAfter } = ctx.run(() => {
      const n = this.numPatchesPerSide ** 2;
      // [B, D, g, g] → [B, g·g, D]
      const tokens = nchwToTokens(conv2d(pixels, this.patch_embedding.tensor, { stride: c.patch_size }));
      const cls = broadcastTo(this.class_embedding.tensor.reshape([1, 1, d]), [b, 1, d]);
      const x0 = add(concat([cls, tokens], 1), this.position_embedding.tensor.reshape([1, n + 1, d]));
      ctx.record(`${pre}embeddings:out`, x0);
      const hidden: Tensor[] = [];
      const penultimate = this.layers.length - 1; // hidden_states[-2], what IP-Adapter reads
      const x = runLayerStack(this.pre_layrnorm.forward(x0, ctx), this.layers, ctx, (t, i) => {
        if (opts.outputHiddenStates) hidden.push(t);
        if (i === penultimate) ctx.record('penultimate', t);
      });
      ctx.record('last_hidden_state', x);
      const pooled = this.post_layernorm.forward(slice(x, [0, 0, 0], [b, 1, d]).reshape([b, d]), ctx);
      ctx.record('pooler_output', pooled);
      const imageEmbeds = this.visual_projection ? this.visual_projection.forward(pooled, ctx) : null;
      if (imageEmbeds) ctx.record('image_embeds', imageEmbeds);
      return { x, pooled, imageEmbeds, hidden };
    });
    return {
      lastHiddenState: result?.x ?? null,
      poolerOutput: result?.pooled ?? null,
      imageEmbeds: result?.imageEmbeds ?? null,
      hiddenStates: result?.hidden ?? [],
      stoppedAfter,
      taps: ctx.taps,
    };
  }
}

export interface ClipModelConfig {
  projection_dim: number;
  text_config: ClipTextConfig;
  vision_config: ClipVisionConfig;
}

/** transformers' CLIPModel (text tower, vision tower, both projections, logit_scale), as the
 *  openai/clip-vit-base-patch32 checkpoint used by CLIP-I and CLIP AAS stores it. */
export class ClipModel {
  readonly text: ClipTextModel;
  readonly vision: ClipVisionModel;
  readonly text_projection: Linear;
  readonly logit_scale: Param;
  constructor(
    readonly store: WeightStore,
    readonly config: ClipModelConfig,
    /** What errors about the config name (its file where it came from one). */
    where = 'CLIP config',
  ) {
    requireConfigNumber(config, 'projection_dim', where, { integer: true, min: 1, max: CONFIG_LIMITS.channels });
    this.text = new ClipTextModel(store, config.text_config, 'text_model', `${where} (text_config)`);
    this.vision = new ClipVisionModel(store, { ...config.vision_config, projection_dim: config.projection_dim }, { projection: true, where: `${where} (vision_config)` });
    this.text_projection = new Linear(Scope.root(store, 'text_projection'), config.text_config.hidden_size, config.projection_dim, false);
    this.logit_scale = Scope.root(store).param('logit_scale', []);
  }
}
