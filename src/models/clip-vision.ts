// transformers' CLIPVisionModelWithProjection: patch embedding (no bias) + class token + position
// table, pre_layrnorm, pre-LN encoder layers (non-causal), post_layernorm on the class token and the
// visual projection. Every hidden state (IP-Adapter reads the penultimate one) and every layer's
// q/k/v can be recorded.

import { ShapeError, type Runtime, type Tensor } from '../gpu/runtime.js';
import { add } from '../kernels/elementwise.js';
import { broadcastTo, concat, nchwToTokens, slice } from '../kernels/layout.js';
import { conv2d } from '../kernels/matmul.js';
import { ForwardContext, runLayerStack, type ForwardOptions } from '../nn/context.js';
import { LayerNorm, Linear } from '../nn/modules.js';
import { Scope, WeightStore, type Param } from '../nn/weights.js';
import { ClipEncoderLayer, ClipTextModel, activationOf, type ClipTextConfig } from './clip-text.js';

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
  lastHiddenState: Tensor;
  /** post_layernorm(last_hidden_state[:, 0]). */
  poolerOutput: Tensor;
  /** visual_projection(pooler_output), when the model has a projection. */
  imageEmbeds: Tensor | null;
  /** hidden_states[0] (after pre_layrnorm) … hidden_states[L], when asked for. */
  hiddenStates: Tensor[];
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

  constructor(
    readonly store: WeightStore,
    readonly config: ClipVisionConfig,
    opts: { projection?: boolean; prefix?: string } = {},
  ) {
    const where = 'CLIP vision config';
    for (const k of ['hidden_size', 'intermediate_size', 'num_hidden_layers', 'num_attention_heads', 'image_size', 'patch_size', 'layer_norm_eps'] as const) {
      if (typeof config[k] !== 'number') throw new Error(`${where}: field "${k}" must be a number, got ${JSON.stringify(config[k])}`);
    }
    const d = config.hidden_size;
    const root = Scope.root(store, opts.prefix ?? 'vision_model');
    const emb = root.child('embeddings');
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
    if ((opts.projection ?? true) && config.projection_dim) this.visual_projection = new Linear(Scope.root(store, 'visual_projection'), d, config.projection_dim, false);
  }

  /** pixel_values [B, C, S, S] with S = image_size (as the CLIP processors produce). */
  async forward(rt: Runtime, pixels: Tensor, opts: ForwardOptions & { outputHiddenStates?: boolean } = {}, ctx = new ForwardContext(opts)): Promise<ClipVisionOutput> {
    const c = this.config;
    const [b, ch, h, w] = pixels.shape as [number, number, number, number];
    if (pixels.rank !== 4 || ch !== (c.num_channels ?? 3) || h !== c.image_size || w !== c.image_size) {
      throw new ShapeError(`CLIP vision: pixel_values must be [B, ${c.num_channels ?? 3}, ${c.image_size}, ${c.image_size}], got [${pixels.shape.join(', ')}]`);
    }
    const d = c.hidden_size;
    const prefix = this.pre_layrnorm.path.replace(/\.?pre_layrnorm$/, '');
    const pre = prefix ? `${prefix}.` : '';
    return rt.scope(async () => {
      const patches = await conv2d(pixels, this.patch_embedding.tensor, { stride: c.patch_size });
      const n = this.numPatchesPerSide ** 2;
      // [B, D, g, g] → [B, g·g, D]
      const tokens = await nchwToTokens(patches);
      const cls = await broadcastTo(this.class_embedding.tensor.reshape([1, 1, d]), [b, 1, d]);
      const seq = await concat([cls, tokens], 1);
      const x0 = await add(seq, this.position_embedding.tensor.reshape([1, n + 1, d]));
      ctx.record(`${pre}embeddings:out`, x0);
      const hidden: Tensor[] = [];
      const penultimate = this.layers.length - 1; // hidden_states[-2], what IP-Adapter reads
      const x = await runLayerStack(await this.pre_layrnorm.forward(x0, ctx), this.layers, ctx, opts.outputHiddenStates ? hidden : null, (t, i) => {
        if (i === penultimate) ctx.record('penultimate', t);
      });
      ctx.record('last_hidden_state', x);
      const clsOut = (await slice(x, [0, 0, 0], [b, 1, d])).reshape([b, d]);
      const pooled = await this.post_layernorm.forward(clsOut, ctx);
      ctx.record('pooler_output', pooled);
      const imageEmbeds = this.visual_projection ? await this.visual_projection.forward(pooled, ctx) : null;
      if (imageEmbeds) ctx.record('image_embeds', imageEmbeds);
      return { lastHiddenState: x, poolerOutput: pooled, imageEmbeds, hiddenStates: hidden };
    });
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
  ) {
    this.text = new ClipTextModel(store, config.text_config, 'text_model');
    this.vision = new ClipVisionModel(store, { ...config.vision_config, projection_dim: config.projection_dim }, { projection: true });
    this.text_projection = new Linear(Scope.root(store, 'text_projection'), config.text_config.hidden_size, config.projection_dim, false);
    this.logit_scale = Scope.root(store).param('logit_scale', []);
  }
}
