// DiT (Peebles & Xie, facebookresearch/DiT `models.py`, as vendored by DiffSim in `DiT/modelsdit.py`)
// up to what DiffSim reads: the patch embedding with its fixed 2-D sin-cos position table, the
// timestep and class-label embedders, and the adaLN-Zero blocks, whose attention exposes the q, k
// and v that DiffSim's forward pre-hook computes from the attention input. The final layer is not
// built: DiffSim stops each pass after the hooked attention.
//
// One pass, latent x [B, C, H, W] (B = 1 in DiffSim), timestep t, class labels y [L] (DiffSim: [1, null]):
//   x_embedder: conv k = p, stride p, then tokens                       [B, T, D], T = (H/p)·(W/p)
//   + pos_embed (2-D sin-cos, fixed)                                     [1, T, D]
//   t_embedder: sinusoid(t) [1, 256] → Linear → SiLU → Linear            [1, D]
//   y_embedder: embedding_table[y]                                       [L, D]
//   c = t_emb + y_emb (broadcast)                                        [L, D]
//   every block, with shift/scale/gate = adaLN_modulation(c) = Linear(SiLU(c)) split in 6 [L, D]:
//     x = x + gate_msa·attn(modulate(LN(x), shift_msa, scale_msa))     (LN without affine, eps 1e-6)
//     x = x + gate_mlp·mlp(modulate(LN(x), shift_mlp, scale_mlp))      (mlp: fc1, GELU-tanh, fc2)
//   modulate(h, shift, scale) = h·(1 + scale) + shift, per batch element.
// A batch-1 latent with L labels broadcasts to batch L in the first block (the official code relies on
// it): the pass broadcasts x to batch L at the start, which gives the same values.
//
// The timestep sinusoid is the official one, frequencies exp(−ln(10⁴)·i/128) for i < 128, [cos, sin].
// diffusers' DiT (`CombinedTimestepLabelEmbeddings`, downscale_freq_shift = 1) divides by 127
// instead: a model loaded from diffusers' layout uses that one (timestepEmbedding 'diffusers'), so it
// computes what diffusers computes with those weights, which is not what the official model computes.

import { ShapeError, tidy, type Tensor } from '../gpu/runtime.js';
import { add, binary, unary } from '../kernels/elementwise.js';
import { broadcastTo, nchwToTokens, slice } from '../kernels/layout.js';
import { attention } from '../kernels/attention.js';
import { embeddingLookup, timestepEmbedding } from '../kernels/embedding.js';
import { linearSplit } from '../kernels/matmul.js';
import { layerNorm } from '../kernels/norm.js';
import { runtimeOf } from '../kernels/common.js';
import { ConfigError, requireConfigNumber } from '../io/config-check.js';
import type { RawTensor, TensorInfo, TensorSource } from '../io/safetensors.js';
import { ForwardContext, type ForwardOptions, type Taps, type Vocabulary } from '../nn/context.js';
import { Conv2d, Linear } from '../nn/modules.js';
import { Scope, WeightStore, type Param } from '../nn/weights.js';

/** The official DiT constructor arguments (`DiT(input_size, patch_size, in_channels, hidden_size,
 *  depth, num_heads, mlp_ratio, class_dropout_prob, num_classes, learn_sigma)`). */
export interface DitConfig {
  /** Latent side the model was built for (image side / 8). */
  input_size: number;
  patch_size: number;
  in_channels: number;
  hidden_size: number;
  depth: number;
  num_heads: number;
  mlp_ratio?: number;
  num_classes: number;
  /** Only shapes the final layer (not built here). */
  learn_sigma?: boolean;
  class_dropout_prob?: number;
}

/** Which timestep sinusoid the embedder uses: the official DiT's (frequencies divided by half = 128)
 *  or diffusers' DiT's (downscale_freq_shift 1: divided by half − 1 = 127). */
export type DitTimestepEmbedding = 'official' | 'diffusers';

/** DiT-XL/2 (the model DiffSim's supplementary row uses): 28 blocks, width 1152, 16 heads of 72. */
export const DIT_XL_2: Readonly<Omit<DitConfig, 'input_size'>> = Object.freeze({ patch_size: 2, in_channels: 4, hidden_size: 1152, depth: 28, num_heads: 16, mlp_ratio: 4, num_classes: 1000, learn_sigma: true, class_dropout_prob: 0.1 });

/** Heads of the released DiT sizes by width (S 384, B 768, L 1024, XL 1152): official checkpoints
 *  carry no config, and the head count is not in the tensor shapes. */
export const DIT_HEADS_BY_WIDTH: Readonly<Record<number, number>> = Object.freeze({ 384: 6, 768: 12, 1024: 16, 1152: 16 });

/** The fixed 2-D sin-cos position table of the official `get_2d_sincos_pos_embed(D, grid)` (float64
 *  in NumPy, stored as float32): token n = i·grid + j gets [sin(j·ω), cos(j·ω), sin(i·ω), cos(i·ω)],
 *  ω_k = 10000^(−k/(D/4)), k < D/4. diffusers' PatchEmbed computes the same table for DiT. */
export function sincosPositionTable(dim: number, grid: number): Float32Array {
  if (dim % 4 !== 0) throw new ShapeError(`DiT: the position table needs a width divisible by 4, got ${dim}`);
  const q = dim / 4;
  const omega = new Float64Array(q);
  // get_1d_sincos_pos_embed_from_grid(D/2, pos): omega = 1 / 10000^(arange(D/4) / (D/4)).
  for (let k = 0; k < q; k++) omega[k] = 1 / 10000 ** (k / q);
  const out = new Float32Array(grid * grid * dim);
  for (let i = 0; i < grid; i++) {
    for (let j = 0; j < grid; j++) {
      const row = (i * grid + j) * dim;
      for (let k = 0; k < q; k++) {
        out[row + k] = Math.sin(j * omega[k]!);
        out[row + q + k] = Math.cos(j * omega[k]!);
        out[row + 2 * q + k] = Math.sin(i * omega[k]!);
        out[row + 3 * q + k] = Math.cos(i * omega[k]!);
      }
    }
  }
  return out;
}

/** Checks a DiT config; `where` names it in errors. */
export function validateDitConfig(config: DitConfig, where: string): void {
  for (const k of ['input_size', 'patch_size', 'in_channels', 'hidden_size', 'depth', 'num_heads', 'num_classes'] as const) requireConfigNumber(config, k, where, { integer: true, min: 1 });
  if (config.mlp_ratio !== undefined) requireConfigNumber(config, 'mlp_ratio', where, { above: 0, max: 64 });
  if (config.hidden_size % config.num_heads !== 0) throw new ConfigError(where, 'hidden_size', `${config.hidden_size} is not divisible by num_heads ${config.num_heads}`);
  if (config.hidden_size % 4 !== 0) throw new ConfigError(where, 'hidden_size', `${config.hidden_size} is not divisible by 4 (the 2-D sin-cos position table)`);
  if (config.hidden_size < 2) throw new ConfigError(where, 'hidden_size', 'must be at least 2');
}

/** One adaLN-Zero block: `blocks.N.{adaLN_modulation.1, attn.qkv, attn.proj, mlp.fc1, mlp.fc2}`. */
export class DiTBlock {
  readonly adaLN_modulation: Linear;
  readonly qkv: Linear;
  readonly proj: Linear;
  readonly fc1: Linear;
  readonly fc2: Linear;
  readonly path: string;
  /** Path of the attention module (`blocks.N.attn`), the module DiffSim hooks. */
  readonly attnPath: string;
  constructor(
    scope: Scope,
    readonly dim: number,
    readonly heads: number,
    hidden: number,
  ) {
    this.path = scope.path;
    this.adaLN_modulation = new Linear(scope.child('adaLN_modulation').child(1), dim, 6 * dim, true, `${scope.path}.adaLN_modulation`);
    const attn = scope.child('attn');
    this.attnPath = attn.path;
    this.qkv = new Linear(attn.child('qkv'), dim, 3 * dim);
    this.proj = new Linear(attn.child('proj'), dim, dim);
    this.fc1 = new Linear(scope.child('mlp').child('fc1'), dim, hidden);
    this.fc2 = new Linear(scope.child('mlp').child('fc2'), hidden, dim);
    // attn:in = the modulated LayerNorm (the hooked input); attn.q/k/v = its projections before the
    // head split (B, T, D); attn:out after proj; mlp:out; :out the block output.
    for (const name of ['.attn:in', '.attn.q', '.attn.k', '.attn.v', '.attn:out', '.mlp:in', '.mlp:out', ':out']) scope.tap(name);
    scope.stoppable();
  }

  /** x [B, T, D], c [B, D]; `norm` = LayerNorm without affine (ones, zeros). Returns the block output. */
  forward(x: Tensor, c: Tensor, ctx: ForwardContext, norm: { ones: Tensor; zeros: Tensor }): Tensor {
    const p = this.path;
    const [b, , d] = x.shape as [number, number, number];
    const y = tidy(() => {
      const mod = this.adaLN_modulation.forward(c, ctx);
      const chunk = (i: number) => slice(mod, [0, i * d], [b, d]).reshape([b, 1, d]);
      // modulate: h·(1 + scale) + shift, in the official order of operations.
      const modulate = (h: Tensor, shift: Tensor, scale: Tensor) => add(binary(h, unary(scale, 'none', 1, 1), 'mul'), shift);
      const ln = (h: Tensor) => layerNorm(h, norm.ones, norm.zeros, 1e-6);
      const [shiftMsa, scaleMsa, gateMsa, shiftMlp, scaleMlp, gateMlp] = [0, 1, 2, 3, 4, 5].map(chunk) as [Tensor, Tensor, Tensor, Tensor, Tensor, Tensor];
      const a = modulate(ln(x), shiftMsa, scaleMsa);
      ctx.record(`${this.attnPath}:in`, a);
      // timm Attention: qkv (B, T, 3D) → q, k, v in that order along the last axis, heads contiguous.
      ctx.record(`${this.qkv.path}:in`, a);
      const [q, k, v] = linearSplit(a, this.qkv.weight.tensor, 3, this.qkv.bias?.tensor) as [Tensor, Tensor, Tensor];
      ctx.record(`${this.attnPath}.q`, q);
      ctx.record(`${this.attnPath}.k`, k);
      ctx.record(`${this.attnPath}.v`, v);
      ctx.finished(this.qkv.path);
      const o = this.proj.forward(attention(q, k, v, { heads: this.heads }), ctx);
      ctx.record(`${this.attnPath}:out`, o);
      const h = add(x, binary(o, gateMsa, 'mul'));
      const m = modulate(ln(h), shiftMlp, scaleMlp);
      ctx.record(`${p}.mlp:in`, m);
      const f = this.fc2.forward(this.fc1.forward(m, ctx, { act: 'gelu_tanh' }), ctx);
      ctx.record(`${p}.mlp:out`, f);
      return add(h, binary(f, gateMlp, 'mul'));
    });
    ctx.record(`${p}:out`, y);
    ctx.finished(p);
    return y;
  }
}

export interface DitForwardOptions extends ForwardOptions {}

export interface DitOutput {
  /** The last block's output [B, T, D] (null when the pass stopped early). */
  hidden: Tensor | null;
  stoppedAfter: string | undefined;
  taps: Taps;
}

/** The official DiT module tree (keys of `DiT-XL-2-{S}x{S}.pt`), without `final_layer` and with the
 *  position table computed for the latent at hand (see `sincosPositionTable`). */
export class DiT {
  readonly x_embedder: Conv2d;
  readonly t_mlp0: Linear;
  readonly t_mlp2: Linear;
  readonly embedding_table: Param;
  readonly blocks: DiTBlock[] = [];
  readonly vocabulary: Vocabulary;
  readonly where: string;
  readonly timestepEmbedding: DitTimestepEmbedding;
  private consts: { ones: Tensor; zeros: Tensor } | null = null;
  private posTables = new Map<number, Tensor>();

  constructor(
    readonly store: WeightStore,
    readonly config: DitConfig,
    o: { where?: string; timestepEmbedding?: DitTimestepEmbedding } = {},
  ) {
    this.where = o.where ?? 'DiT config';
    validateDitConfig(config, this.where);
    this.timestepEmbedding = o.timestepEmbedding ?? 'official';
    const d = config.hidden_size;
    const root = Scope.root(store);
    this.vocabulary = root.vocabulary;
    this.x_embedder = new Conv2d(root.child('x_embedder').child('proj'), config.in_channels, d, { kernel: config.patch_size, stride: config.patch_size });
    const t = root.child('t_embedder').child('mlp');
    this.t_mlp0 = new Linear(t.child(0), 256, d);
    this.t_mlp2 = new Linear(t.child(2), d, d);
    // num_classes + 1 rows: the last is the null class of classifier-free guidance.
    this.embedding_table = root.child('y_embedder').child('embedding_table').param('weight', [config.num_classes + 1, d]);
    for (const name of ['x_embedder:out', 'pos_embed', 'emb.t_freq', 'emb.t_embedder', 'emb.y_embedder', 'emb.c']) this.vocabulary.tap(name);
    const hidden = Math.floor(d * (config.mlp_ratio ?? 4));
    for (let i = 0; i < config.depth; i++) this.blocks.push(new DiTBlock(root.child('blocks').child(i), d, config.num_heads, hidden));
  }

  get heads(): number {
    return this.config.num_heads;
  }

  /** The null class label (num_classes). */
  get nullClass(): number {
    return this.config.num_classes;
  }

  /** Frees the weights and the tables the model keeps. */
  dispose(): void {
    this.store.dispose();
    this.consts?.ones.dispose();
    this.consts?.zeros.dispose();
    this.consts = null;
    for (const t of this.posTables.values()) t.dispose();
    this.posTables.clear();
  }

  private norm(x: Tensor): { ones: Tensor; zeros: Tensor } {
    if (!this.consts) {
      const rt = runtimeOf(x);
      const d = this.config.hidden_size;
      this.consts = { ones: rt.upload(new Float32Array(d).fill(1), [d]).keep(), zeros: rt.zeros([d]).keep() };
    }
    return this.consts;
  }

  private positions(x: Tensor, grid: number): Tensor {
    let t = this.posTables.get(grid);
    if (!t) {
      const d = this.config.hidden_size;
      t = runtimeOf(x).upload(sincosPositionTable(d, grid), [1, grid * grid, d]).keep();
      this.posTables.set(grid, t);
    }
    return t;
  }

  /** latent [1 or L, C, H, W] (H = W, a multiple of the patch size), the timestep the model is
   *  told, class labels [L] (ints in 0…num_classes, num_classes = null). */
  forward(latent: Tensor, t: number, labels: Int32Array, opts: DitForwardOptions = {}): DitOutput {
    const c = this.config;
    const [b, ch, h, w] = latent.shape as [number, number, number, number];
    if (latent.rank !== 4 || ch !== c.in_channels) throw new ShapeError(`DiT: the latent must be [B, ${c.in_channels}, H, W], got [${latent.shape.join(', ')}]`);
    if (h !== w || h % c.patch_size !== 0) throw new ShapeError(`DiT: the latent must be square with a side divisible by the patch size ${c.patch_size}, got ${h}×${w}`);
    const labelCount = labels.length;
    if (labelCount < 1) throw new ShapeError('DiT: at least one class label is needed');
    if (b !== 1 && b !== labelCount) throw new ShapeError(`DiT: a latent batch of ${b} does not broadcast against ${labelCount} class labels`);
    for (const y of labels) if (!Number.isInteger(y) || y < 0 || y > c.num_classes) throw new RangeError(`DiT: class label ${y} outside 0–${c.num_classes} (${c.num_classes} = the null class)`);
    if (!Number.isFinite(t)) throw new RangeError(`DiT: timestep ${t} is not finite`);
    const d = c.hidden_size;
    const grid = h / c.patch_size;
    const ctx = new ForwardContext(this.vocabulary, opts, 'DiT');
    const norm = this.norm(latent);
    const pos = this.positions(latent, grid);
    const { result, stoppedAfter } = ctx.run(() => {
      const tokens = nchwToTokens(this.x_embedder.forward(ctx.input(latent), ctx));
      ctx.record('x_embedder:out', tokens);
      ctx.record('pos_embed', pos);
      let x = add(tokens, pos);
      const freq = timestepEmbedding(runtimeOf(latent).upload([t], [1]), 256, { flipSinToCos: true, downscaleFreqShift: this.timestepEmbedding === 'diffusers' ? 1 : 0 });
      ctx.record('emb.t_freq', freq);
      const temb = this.t_mlp2.forward(this.t_mlp0.forward(freq, ctx, { act: 'silu' }), ctx);
      ctx.record('emb.t_embedder', temb);
      const yemb = embeddingLookup(labels, [labelCount], [this.embedding_table.tensor], c.num_classes + 1);
      ctx.record('emb.y_embedder', yemb);
      const cond = add(yemb, temb);
      ctx.record('emb.c', cond);
      // adaLN_modulation = Sequential(SiLU, Linear): the SiLU of c, once for every block.
      const siluC = unary(cond, 'silu');
      if (b !== labelCount) x = broadcastTo(x, [labelCount, grid * grid, d]);
      for (const block of this.blocks) {
        const input = x;
        x = tidy(() => block.forward(input, siluC, ctx, norm));
      }
      return x;
    });
    return { hidden: result ?? null, stoppedAfter, taps: ctx.taps };
  }
}

// ---------------------------------------------------------------------------------------------
// Checkpoint layouts

/** Official keys that are not part of the module tree: the final layer (DiffSim stops before it;
 *  the official loader skips its mis-shaped linear anyway) and the fixed position table (computed). */
export const DIT_OFFICIAL_IGNORED = [/^final_layer\./, /^pos_embed$/];

/** The config of an official checkpoint from its tensor shapes (the file carries none); the head
 *  count from `heads`, else from the released sizes by width. */
export function inferDitConfig(src: TensorSource, where: string, heads?: number): DitConfig {
  const shape = (k: string) => {
    if (!src.has(k)) throw new ConfigError(where, k, 'is missing: not a DiT checkpoint in the official layout (x_embedder.proj.weight, t_embedder.mlp.*, y_embedder.embedding_table.weight, blocks.N.*)');
    return src.info(k).shape;
  };
  const [d, inC, p] = shape('x_embedder.proj.weight') as [number, number, number];
  const [rows] = shape('y_embedder.embedding_table.weight') as [number];
  const [hidden] = shape('blocks.0.mlp.fc1.weight') as [number];
  let depth = 0;
  while (src.has(`blocks.${depth}.attn.qkv.weight`)) depth++;
  const nHeads = heads ?? DIT_HEADS_BY_WIDTH[d];
  if (nHeads === undefined) throw new ConfigError(where, 'num_heads', `cannot be told from the shapes for width ${d} (the released DiT widths are ${Object.keys(DIT_HEADS_BY_WIDTH).join(', ')}): give a config with num_heads`);
  const pos = src.has('pos_embed') ? src.info('pos_embed').shape[1] : undefined;
  const input = pos !== undefined ? Math.round(Math.sqrt(pos)) * p : 32;
  const finalRows = src.has('final_layer.linear.weight') ? src.info('final_layer.linear.weight').shape[0]! : undefined;
  return { input_size: input, patch_size: p, in_channels: inC, hidden_size: d, depth, num_heads: nHeads, mlp_ratio: hidden / d, num_classes: rows - 1, learn_sigma: finalRows !== undefined ? finalRows === p * p * inC * 2 : true };
}

/** diffusers' `Transformer2DModel` config of a DiT (`norm_type: ada_norm_zero`). */
export interface DiffusersDitConfig {
  num_attention_heads: number;
  attention_head_dim: number;
  in_channels: number;
  out_channels?: number;
  num_layers: number;
  sample_size: number;
  patch_size: number;
  num_embeds_ada_norm: number;
  norm_type?: string;
  activation_fn?: string;
}

/** The official config a diffusers DiT config stands for. */
export function ditConfigFromDiffusers(c: DiffusersDitConfig, where: string): DitConfig {
  if (c.norm_type !== 'ada_norm_zero') throw new ConfigError(where, 'norm_type', `${JSON.stringify(c.norm_type)}: only DiT's "ada_norm_zero" Transformer2DModel is supported`);
  if (c.activation_fn !== undefined && c.activation_fn !== 'gelu-approximate') throw new ConfigError(where, 'activation_fn', `${JSON.stringify(c.activation_fn)}: DiT uses "gelu-approximate"`);
  for (const k of ['num_attention_heads', 'attention_head_dim', 'in_channels', 'num_layers', 'sample_size', 'patch_size', 'num_embeds_ada_norm'] as const) requireConfigNumber(c, k, where, { integer: true, min: 1 });
  return {
    input_size: c.sample_size,
    patch_size: c.patch_size,
    in_channels: c.in_channels,
    hidden_size: c.num_attention_heads * c.attention_head_dim,
    depth: c.num_layers,
    num_heads: c.num_attention_heads,
    mlp_ratio: 4,
    num_classes: c.num_embeds_ada_norm,
    learn_sigma: (c.out_channels ?? c.in_channels) === 2 * c.in_channels,
  };
}

/** The official key a diffusers DiT key maps to (null: not used — the final layer, the fixed
 *  position table, and the embedder copies of blocks 1…, which diffusers' converter writes as copies
 *  of the one official embedder; block 0's is used). q/k/v are fused by `DiffusersDitSource`. */
export function diffusersDitKey(key: string): string | null {
  let m: RegExpExecArray | null;
  if ((m = /^pos_embed\.proj\.(weight|bias)$/.exec(key))) return `x_embedder.proj.${m[1]}`;
  if ((m = /^transformer_blocks\.0\.norm1\.emb\.timestep_embedder\.linear_([12])\.(weight|bias)$/.exec(key))) return `t_embedder.mlp.${m[1] === '1' ? 0 : 2}.${m[2]}`;
  if (key === 'transformer_blocks.0.norm1.emb.class_embedder.embedding_table.weight') return 'y_embedder.embedding_table.weight';
  if (/^transformer_blocks\.\d+\.norm1\.emb\./.test(key)) return null;
  if ((m = /^transformer_blocks\.(\d+)\.norm1\.linear\.(weight|bias)$/.exec(key))) return `blocks.${m[1]}.adaLN_modulation.1.${m[2]}`;
  if ((m = /^transformer_blocks\.(\d+)\.attn1\.to_out\.0\.(weight|bias)$/.exec(key))) return `blocks.${m[1]}.attn.proj.${m[2]}`;
  if ((m = /^transformer_blocks\.(\d+)\.ff\.net\.0\.proj\.(weight|bias)$/.exec(key))) return `blocks.${m[1]}.mlp.fc1.${m[2]}`;
  if ((m = /^transformer_blocks\.(\d+)\.ff\.net\.2\.(weight|bias)$/.exec(key))) return `blocks.${m[1]}.mlp.fc2.${m[2]}`;
  if (/^proj_out_[12]\./.test(key) || key === 'pos_embed') return null;
  return key;
}

interface Virtual {
  /** The file's tensors concatenated along the first axis (one entry: a rename). */
  parts: string[];
  shape: number[];
}

/** A diffusers DiT transformer file seen under the official keys: renamed tensors, and
 *  `blocks.N.attn.qkv.{weight,bias}` = concat(to_q, to_k, to_v) along the first axis (the official
 *  fused projection, which diffusers' converter splits with torch.chunk). Keys that map to nothing
 *  are hidden; keys the map does not know pass through (so the loader reports them as unexpected). */
export class DiffusersDitSource implements TensorSource {
  readonly metadata: Readonly<Record<string, string>>;
  readonly origin: TensorSource['origin'];
  private readonly entries = new Map<string, Virtual>();
  constructor(private readonly file: TensorSource) {
    this.metadata = file.metadata;
    this.origin = file.origin;
    const qkv = /^transformer_blocks\.(\d+)\.attn1\.to_([qkv])\.(weight|bias)$/;
    for (const k of file.names()) {
      const m = qkv.exec(k);
      if (m) {
        if (m[2] !== 'q') continue;
        const parts = ['q', 'k', 'v'].map((x) => `transformer_blocks.${m[1]}.attn1.to_${x}.${m[3]}`);
        const shapes = parts.map((p) => (file.has(p) ? file.info(p).shape : null));
        // An incomplete triple is left under its own names: the loader then names what is missing.
        if (shapes.some((s) => !s)) continue;
        const [first] = shapes as number[][];
        this.entries.set(`blocks.${m[1]}.attn.qkv.${m[3]}`, { parts, shape: [first![0]! * 3, ...first!.slice(1)] });
        continue;
      }
      const to = diffusersDitKey(k);
      if (to !== null) this.entries.set(to, { parts: [k], shape: file.info(k).shape });
    }
    for (const k of file.names()) {
      const m = qkv.exec(k);
      if (m && !this.entries.has(`blocks.${m[1]}.attn.qkv.${m[3]}`)) this.entries.set(k, { parts: [k], shape: file.info(k).shape });
    }
  }
  get name(): string {
    return this.file.name;
  }
  names(): string[] {
    return [...this.entries.keys()];
  }
  has(name: string): boolean {
    return this.entries.has(name);
  }
  private entry(name: string): Virtual {
    const e = this.entries.get(name);
    if (!e) throw new Error(`${this.file.name}: no tensor ${JSON.stringify(name)}`);
    return e;
  }
  info(name: string): TensorInfo {
    const e = this.entry(name);
    const infos = e.parts.map((p) => this.file.info(p));
    const dtypes = new Set(infos.map((i) => i.dtype));
    if (dtypes.size > 1) throw new Error(`${this.file.name}: ${e.parts.join(', ')} have different dtypes (${[...dtypes].join(', ')})`);
    const bytes = infos.reduce((s, i) => s + (i.end - i.begin), 0);
    return { name, dtype: infos[0]!.dtype, shape: [...e.shape], begin: infos[0]!.begin, end: infos[0]!.begin + bytes };
  }
  async readRaw(name: string): Promise<RawTensor> {
    const e = this.entry(name);
    const raws = [];
    for (const p of e.parts) raws.push(await this.file.readRaw(p));
    if (raws.length === 1) return { ...raws[0]!, shape: [...e.shape] };
    const bytes = new Uint8Array(raws.reduce((s, r) => s + r.bytes.byteLength, 0));
    let o = 0;
    for (const r of raws) {
      bytes.set(r.bytes, o);
      o += r.bytes.byteLength;
    }
    return { dtype: raws[0]!.dtype, shape: [...e.shape], bytes };
  }
  async readFloat32(name: string): Promise<{ shape: number[]; data: Float32Array }> {
    const e = this.entry(name);
    const parts = [];
    for (const p of e.parts) parts.push((await this.file.readFloat32(p)).data);
    if (parts.length === 1) return { shape: [...e.shape], data: parts[0]! };
    const data = new Float32Array(parts.reduce((s, x) => s + x.length, 0));
    let o = 0;
    for (const x of parts) {
      data.set(x, o);
      o += x.length;
    }
    return { shape: [...e.shape], data };
  }
  /** The file belongs to the caller. */
  async close(): Promise<void> {}
}

// ---------------------------------------------------------------------------------------------
// The DiT diffusion's respacing (DiT/diffusion/respace.py), which decides the timestep the model sees

/** Python's round() of a float: to the nearest integer, ties to even. */
function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** `SpacedDiffusion(space_timesteps(total, str(count))).timestep_map`: `count` steps taken evenly
 *  from `total` by accumulating the float stride (total − 1)/(count − 1) and rounding as Python does,
 *  in increasing order. `create_diffusion(str(count))` in DiffSim's DiT path. */
export function respacedTimestepMap(total: number, count: number): number[] {
  if (!Number.isInteger(count) || count < 1 || count > total) throw new RangeError(`cannot divide a section of ${total} steps into ${count}`);
  const stride = count <= 1 ? 1 : (total - 1) / (count - 1);
  const taken = new Set<number>();
  let cur = 0;
  for (let i = 0; i < count; i++) {
    taken.add(roundHalfEven(cur));
    cur += stride;
  }
  return [...taken].sort((a, b) => a - b);
}
