// transformers' CLIPTextModel: token + position embeddings, pre-LN causal transformer layers
// (quick_gelu or gelu MLP), final LayerNorm, and the pooled output at the end-of-text token; with
// a projection, CLIPTextModelWithProjection (SDXL's text_encoder_2): text_embeds =
// text_projection(pooled), no bias.

import { CONFIG_LIMITS, ConfigError, configNumber, requireConfigNumber } from '../io/config-check.js';
import { ShapeError, tidy, type Runtime, type Tensor } from '../gpu/runtime.js';
import { add } from '../kernels/elementwise.js';
import { attention } from '../kernels/attention.js';
import { embeddingLookup } from '../kernels/embedding.js';
import type { Activation } from '../kernels/common.js';
import { ForwardContext, runLayerStack, type ForwardOptions, type Taps, type Vocabulary } from '../nn/context.js';
import { LayerNorm, Linear } from '../nn/modules.js';
import { Scope, WeightStore, type Param } from '../nn/weights.js';

export interface ClipTextConfig {
  vocab_size: number;
  hidden_size: number;
  intermediate_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  max_position_embeddings: number;
  hidden_act: string;
  layer_norm_eps: number;
  eos_token_id?: number;
  /** CLIPTextModelWithProjection: the width of text_projection. */
  projection_dim?: number;
}

export function activationOf(name: string, where: string): Activation {
  if (name === 'quick_gelu') return 'quick_gelu';
  if (name === 'gelu') return 'gelu';
  if (name === 'silu' || name === 'swish') return 'silu';
  throw new Error(`${where}: activation "${name}" is not supported (quick_gelu, gelu, silu)`);
}

/** The sizes of a transformer encoder's config (ViT, CLIP text): positive integers within
 *  bounds, heads that divide the width, a positive LayerNorm eps; an image encoder's patch no
 *  larger than its image. Errors name `where` (the config file) and the key. */
export function checkEncoderSizes(config: object, where: string, kind: 'text' | 'image'): void {
  const int = (k: string, max: number) => requireConfigNumber(config, k, where, { integer: true, min: 1, max });
  const width = int('hidden_size', CONFIG_LIMITS.channels);
  int('num_hidden_layers', CONFIG_LIMITS.layers);
  const heads = int('num_attention_heads', CONFIG_LIMITS.channels);
  if (width % heads !== 0) throw new ConfigError(where, 'num_attention_heads', `${heads} does not divide hidden_size ${width}`);
  requireConfigNumber(config, 'layer_norm_eps', where, { above: 0, below: 1 });
  if (kind === 'text') {
    int('vocab_size', CONFIG_LIMITS.tokens);
    int('max_position_embeddings', CONFIG_LIMITS.tokens);
  } else {
    const image = int('image_size', CONFIG_LIMITS.imageSide);
    const patch = int('patch_size', CONFIG_LIMITS.imageSide);
    if (patch > image) throw new ConfigError(where, 'patch_size', `${patch} is larger than image_size ${image}`);
    configNumber(config, 'num_channels', where, { optional: true, integer: true, min: 1, max: 64 });
  }
}

function requireNumber(cfg: object, key: string, where: string): number {
  const v = (cfg as Record<string, unknown>)[key];
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new Error(`${where}: config field "${key}" must be a number, got ${JSON.stringify(v)}`);
  return v;
}

/** Self-attention of CLIP encoders (q/k/v/out projections with biases). */
export class ClipAttention {
  readonly q_proj: Linear;
  readonly k_proj: Linear;
  readonly v_proj: Linear;
  readonly out_proj: Linear;
  readonly path: string;
  constructor(
    scope: Scope,
    dim: number,
    readonly heads: number,
    readonly causal: boolean,
  ) {
    if (dim % heads !== 0) throw new Error(`${scope.path}: hidden size ${dim} not divisible by ${heads} heads`);
    this.q_proj = new Linear(scope.child('q_proj'), dim, dim);
    this.k_proj = new Linear(scope.child('k_proj'), dim, dim);
    this.v_proj = new Linear(scope.child('v_proj'), dim, dim);
    this.out_proj = new Linear(scope.child('out_proj'), dim, dim);
    this.path = scope.path;
    scope.tap(':out');
  }
  /** out_proj(attention(x)) + residual. */
  forward(x: Tensor, ctx: ForwardContext, residual?: Tensor): Tensor {
    return tidy(() => {
      const o = attention(this.q_proj.forward(x, ctx), this.k_proj.forward(x, ctx), this.v_proj.forward(x, ctx), { heads: this.heads, causal: this.causal });
      return this.out_proj.forward(o, ctx, { residual, preResidualTap: `${this.path}:out` });
    });
  }
}

export class ClipEncoderLayer {
  readonly self_attn: ClipAttention;
  readonly layer_norm1: LayerNorm;
  readonly layer_norm2: LayerNorm;
  readonly fc1: Linear;
  readonly fc2: Linear;
  readonly path: string;
  constructor(
    scope: Scope,
    dim: number,
    intermediate: number,
    heads: number,
    eps: number,
    readonly act: Activation,
    causal: boolean,
  ) {
    this.path = scope.path;
    this.self_attn = new ClipAttention(scope.child('self_attn'), dim, heads, causal);
    this.layer_norm1 = new LayerNorm(scope.child('layer_norm1'), dim, eps);
    this.layer_norm2 = new LayerNorm(scope.child('layer_norm2'), dim, eps);
    const mlp = scope.child('mlp');
    this.fc1 = new Linear(mlp.child('fc1'), dim, intermediate);
    this.fc2 = new Linear(mlp.child('fc2'), intermediate, dim);
    mlp.tap(':out');
    scope.tap(':out');
    scope.stoppable();
  }
  /** The layer's output; the stack records `<path>:out` and ends the module (runLayerStack). */
  forward(x: Tensor, ctx: ForwardContext): Tensor {
    const y = tidy(() => {
      const a = this.self_attn.forward(this.layer_norm1.forward(x, ctx), ctx, x);
      const m = this.fc1.forward(this.layer_norm2.forward(a, ctx), ctx, { act: this.act });
      return this.fc2.forward(m, ctx, { residual: a, preResidualTap: `${this.path}.mlp:out` });
    });
    return y;
  }
}

export interface ClipTextOutput {
  /** Null when the pass stopped early (as are the other outputs). */
  lastHiddenState: Tensor | null;
  poolerOutput: Tensor | null;
  /** text_projection(pooler_output) (CLIPTextModelWithProjection), else null. */
  textEmbeds: Tensor | null;
  /** hidden_states[0] = embeddings, [i] = output of layer i−1 (only with outputHiddenStates). */
  hiddenStates: Tensor[];
  stoppedAfter: string | undefined;
  taps: Taps;
}

export interface EncoderForwardOptions extends ForwardOptions {
  /** Also return every layer's hidden state (transformers' output_hidden_states). */
  outputHiddenStates?: boolean;
}

export class ClipTextModel {
  readonly token_embedding: Param;
  readonly position_embedding: Param;
  readonly layers: ClipEncoderLayer[] = [];
  readonly final_layer_norm: LayerNorm;
  /** CLIPTextModelWithProjection's text_projection (key `text_projection.weight`, no bias). */
  readonly text_projection: Linear | undefined;
  private tableBlocks: Tensor[] | null = null;
  private blockRows = 0;
  /** Every tap and stopping point of a pass. */
  readonly vocabulary: Vocabulary;

  constructor(
    readonly store: WeightStore,
    readonly config: ClipTextConfig,
    prefix = 'text_model',
    /** What errors about the config name (its file where it came from one). */
    where = 'CLIP text config',
    /** Build text_projection (CLIPTextModelWithProjection; needs projection_dim). */
    projection = false,
  ) {
    for (const k of ['vocab_size', 'hidden_size', 'intermediate_size', 'num_hidden_layers', 'num_attention_heads', 'max_position_embeddings', 'layer_norm_eps']) requireNumber(config, k, where);
    checkEncoderSizes(config, where, 'text');
    requireConfigNumber(config, 'intermediate_size', where, { integer: true, min: 1, max: CONFIG_LIMITS.channels * 8 });
    const root = Scope.root(store, prefix);
    this.vocabulary = root.vocabulary;
    const d = config.hidden_size;
    root.child('embeddings').tap(':out');
    for (let i = 0; i <= config.num_hidden_layers; i++) this.vocabulary.tap(`hidden_states.${i}`);
    const emb = root.child('embeddings');
    this.token_embedding = emb.child('token_embedding').param('weight', [config.vocab_size, d]);
    this.position_embedding = emb.child('position_embedding').param('weight', [config.max_position_embeddings, d]);
    const act = activationOf(config.hidden_act, where);
    const enc = root.child('encoder').child('layers');
    for (let i = 0; i < config.num_hidden_layers; i++) {
      this.layers.push(new ClipEncoderLayer(enc.child(i), d, config.intermediate_size, config.num_attention_heads, config.layer_norm_eps, act, true));
    }
    this.final_layer_norm = new LayerNorm(root.child('final_layer_norm'), d, config.layer_norm_eps);
    this.vocabulary.tap('last_hidden_state');
    this.vocabulary.tap('pooler_output');
    if (projection) {
      const p = requireConfigNumber(config, 'projection_dim', where, { integer: true, min: 1, max: CONFIG_LIMITS.channels });
      this.text_projection = new Linear(Scope.root(store, 'text_projection', this.vocabulary), d, p, false);
      this.vocabulary.tap('text_embeds');
    }
  }

  /** The token table split into row blocks that fit the adapter's binding limit. */
  private blocks(rt: Runtime): Tensor[] {
    if (this.tableBlocks) return this.tableBlocks;
    const table = this.token_embedding.tensor;
    const [vocab, d] = table.shape as [number, number];
    const limit = rt.limits.maxStorageBufferBindingSize ?? 134217728;
    if (table.byteLength <= limit) {
      this.blockRows = vocab;
      this.tableBlocks = [table];
      return this.tableBlocks;
    }
    this.blockRows = Math.floor(limit / (d * 4));
    this.tableBlocks = [];
    for (let r = 0; r < vocab; r += this.blockRows) {
      const rows = Math.min(this.blockRows, vocab - r);
      const blk = rt.empty([rows, d]).keep();
      rt.copyRegion(table, r * d * 4, blk, 0, rows * d * 4);
      this.tableBlocks.push(blk);
    }
    return this.tableBlocks;
  }

  /** Runs the encoder on token ids [B, N] (N ≤ max_position_embeddings), on the runtime its
   *  weights were loaded on. */
  forward(inputIds: Int32Array, batch: number, opts: EncoderForwardOptions = {}): ClipTextOutput {
    const rt = this.position_embedding.tensor.runtime;
    const n = inputIds.length / batch;
    if (!Number.isInteger(n) || n < 1) throw new ShapeError(`CLIP text: ${inputIds.length} ids do not split into batch ${batch}`);
    if (n > this.config.max_position_embeddings) throw new ShapeError(`CLIP text: ${n} tokens exceed max_position_embeddings ${this.config.max_position_embeddings}`);
    for (let i = 0; i < inputIds.length; i++) {
      if (inputIds[i]! < 0 || inputIds[i]! >= this.config.vocab_size) throw new RangeError(`CLIP text: token id ${inputIds[i]} at ${i} outside the vocabulary (${this.config.vocab_size})`);
    }
    const d = this.config.hidden_size;
    const prefix = this.final_layer_norm.path.replace(/\.?final_layer_norm$/, '');
    const ctx = new ForwardContext(this.vocabulary, opts, 'CLIP text');
    const { result, stoppedAfter } = ctx.run(() => {
      const hidden: Tensor[] = [];
      const tok = embeddingLookup(inputIds, [batch, n], this.blocks(rt), this.blockRows);
      const pos = embeddingLookup(Int32Array.from({ length: n }, (_, i) => i), [1, n], [this.position_embedding.tensor], this.config.max_position_embeddings);
      const x0 = add(tok, pos);
      ctx.record(`${prefix ? `${prefix}.` : ''}embeddings:out`, x0);
      const x = runLayerStack(x0, this.layers, ctx, (t) => opts.outputHiddenStates && hidden.push(t));
      const last = this.final_layer_norm.forward(x, ctx);
      ctx.record('last_hidden_state', last);
      // Pooled output: the token at argmax(id) (legacy eos_token_id 2, as SD1.5's config) or the
      // first end-of-text token.
      const eos = this.config.eos_token_id ?? 2;
      const rows = new Int32Array(batch);
      for (let b = 0; b < batch; b++) {
        const seq = inputIds.subarray(b * n, (b + 1) * n);
        let at = 0;
        if (eos === 2) {
          for (let i = 1; i < n; i++) if (seq[i]! > seq[at]!) at = i;
        } else {
          const idx = seq.indexOf(eos);
          at = idx >= 0 ? idx : 0;
        }
        rows[b] = b * n + at;
      }
      const pooled = embeddingLookup(rows, [batch], [last.reshape([batch * n, d])], batch * n).reshape([batch, d]);
      ctx.record('pooler_output', pooled);
      const embeds = this.text_projection ? this.text_projection.forward(pooled, ctx) : null;
      if (embeds) ctx.record('text_embeds', embeds);
      return { last, pooled, hidden, embeds };
    });
    return { lastHiddenState: result?.last ?? null, poolerOutput: result?.pooled ?? null, textEmbeds: result?.embeds ?? null, hiddenStates: result?.hidden ?? [], stoppedAfter, taps: ctx.taps };
  }
}
