// IP-Adapter Plus for SD1.5, from the key layout of the released `ip-adapter-plus_sd15.safetensors`:
// the Resampler (`image_proj.*`: latents, proj_in, depth × [perceiver attention with fused to_kv,
// feed-forward], proj_out, norm_out) and the decoupled cross-attention projections
// `ip_adapter.N.to_k_ip / to_v_ip`, attached to the U-Net's attn2 layers in diffusers' order
// (N = 1, 3, 5, … over down, up, then mid blocks). Activations are recorded under diffusers' module
// names (`encoder_hid_proj.image_projection_layers.0.layers.i.ln0:out`, …).

import { ConfigError } from '../io/config-check.js';
import { ShapeError, tidy, type Tensor } from '../gpu/runtime.js';
import { add } from '../kernels/elementwise.js';
import { attention } from '../kernels/attention.js';
import { broadcastTo, concat, slice } from '../kernels/layout.js';
import { ForwardContext, type ForwardOptions, type Taps, type Vocabulary } from '../nn/context.js';
import { LayerNorm, Linear } from '../nn/modules.js';
import { Scope, WeightStore, type Param } from '../nn/weights.js';
import type { UNet2DConditionModel } from './unet.js';
import type { IpConditioning, IpProjection } from './sd-blocks.js';

export interface ResamplerConfig {
  embed_dims: number;
  output_dims: number;
  hidden_dims: number;
  depth: number;
  dim_head: number;
  heads: number;
  num_queries: number;
  ffn_ratio: number;
}

export interface IpAdapterConfig {
  resampler: ResamplerConfig;
  /** Default adapter scale (DiffSim uses 0.5). */
  ip_scale?: number;
}

/** The largest |scale| accepted (the released adapters are used at 0–1; a scale far beyond only
 *  overflows the attention it is added to). */
export const IP_SCALE_LIMIT = 100;

/** Why `scale` is not an IP-Adapter scale, or undefined when it is one. */
export function ipScaleProblem(scale: unknown): string | undefined {
  if (typeof scale !== 'number' || !Number.isFinite(scale)) return `must be a finite number, got ${JSON.stringify(scale) ?? String(scale)}`;
  return Math.abs(scale) > IP_SCALE_LIMIT ? `must be within ±${IP_SCALE_LIMIT}, got ${scale}` : undefined;
}

/** diffusers' name of the resampler module, used for recorded activations. */
export const RESAMPLER_PATH = 'encoder_hid_proj.image_projection_layers.0';

class ResamplerBlock {
  readonly ln0: LayerNorm;
  readonly ln1: LayerNorm;
  readonly to_q: Linear;
  readonly to_kv: Linear;
  readonly to_out: Linear;
  readonly ff_norm: LayerNorm;
  readonly ff_in: Linear;
  readonly ff_out: Linear;
  constructor(
    scope: Scope,
    readonly path: string,
    c: ResamplerConfig,
  ) {
    const h = c.hidden_dims;
    const inner = c.heads * c.dim_head;
    const attn = scope.child(0);
    const ff = scope.child(1);
    this.ln0 = new LayerNorm(attn.child('norm1'), h, 1e-5, `${path}.ln0`);
    this.ln1 = new LayerNorm(attn.child('norm2'), h, 1e-5, `${path}.ln1`);
    this.to_q = new Linear(attn.child('to_q'), h, inner, false, `${path}.attn.to_q`);
    this.to_kv = new Linear(attn.child('to_kv'), h, 2 * inner, false, `${path}.attn.to_kv`);
    this.to_out = new Linear(attn.child('to_out'), inner, h, false, `${path}.attn.to_out.0`);
    this.ff_norm = new LayerNorm(ff.child(0), h, 1e-5, `${path}.ff.0`);
    this.ff_in = new Linear(ff.child(1), h, h * c.ffn_ratio, false, `${path}.ff.1.net.0.proj`);
    this.ff_out = new Linear(ff.child(3), h * c.ffn_ratio, h, false, `${path}.ff.1.net.2`);
    scope.vocabulary.tap(`${path}.ff:out`);
    scope.vocabulary.tap(`${path}:out`);
    scope.vocabulary.stop(path);
  }

  forward(x: Tensor, latents: Tensor, ctx: ForwardContext, heads: number): Tensor {
    const [b, nq, h] = latents.shape as [number, number, number];
    const y = tidy(() => {
      const lat = this.ln1.forward(latents, ctx);
      const kv = this.to_kv.forward(concat([this.ln0.forward(x, ctx), lat], 1), ctx);
      const [, n, kv2] = kv.shape as [number, number, number];
      const inner = kv2 / 2;
      // to_kv's rows are [to_k; to_v]: diffusers splits the fused weight the same way.
      const o = attention(this.to_q.forward(lat, ctx), slice(kv, [0, 0, 0], [b, n, inner]), slice(kv, [0, 0, inner], [b, n, inner]), { heads });
      const a = this.to_out.forward(o, ctx, { residual: latents });
      const f = this.ff_out.forward(this.ff_in.forward(this.ff_norm.forward(a, ctx), ctx, { act: 'gelu' }), ctx);
      ctx.record(`${this.path}.ff:out`, f);
      return add(f, a);
    });
    ctx.record(`${this.path}:out`, y);
    if (nq !== y.shape[1] || h !== y.shape[2]) throw new ShapeError('resampler block changed the latent shape');
    ctx.finished(this.path);
    return y;
  }
}

export class IpAdapterPlus {
  readonly latents: Param;
  readonly proj_in: Linear;
  readonly layers: ResamplerBlock[] = [];
  readonly proj_out: Linear;
  readonly norm_out: LayerNorm;
  /** to_k_ip / to_v_ip per attn2 layer, in the U-Net's cross-attention order. */
  readonly ipLayers: { key: string; module: string; to_k_ip: Linear; to_v_ip: Linear }[] = [];
  /** Every tap and stopping point of a resampler pass. */
  readonly vocabulary: Vocabulary;
  private readonly projections: ReadonlyMap<string, IpProjection>;

  constructor(
    readonly store: WeightStore,
    readonly config: IpAdapterConfig,
    readonly unet: UNet2DConditionModel,
    /** What errors about the config name (the adapter file, whose tensor shapes give the config). */
    where = 'IP-Adapter config',
  ) {
    const c = config.resampler;
    if (config.ip_scale !== undefined) {
      const bad = ipScaleProblem(config.ip_scale);
      if (bad) throw new ConfigError(where, 'ip_scale', bad);
    }
    for (const k of ['embed_dims', 'output_dims', 'hidden_dims', 'depth', 'dim_head', 'heads', 'num_queries', 'ffn_ratio'] as const) {
      if (typeof c?.[k] !== 'number') throw new Error(`IP-Adapter config: resampler.${k} must be a number, got ${JSON.stringify(c?.[k])}`);
    }
    const root = Scope.root(store, 'image_proj');
    this.vocabulary = root.vocabulary;
    this.latents = root.param('latents', [1, c.num_queries, c.hidden_dims]);
    this.proj_in = new Linear(root.child('proj_in'), c.embed_dims, c.hidden_dims, true, `${RESAMPLER_PATH}.proj_in`);
    for (let i = 0; i < c.depth; i++) this.layers.push(new ResamplerBlock(root.child('layers').child(i), `${RESAMPLER_PATH}.layers.${i}`, c));
    this.proj_out = new Linear(root.child('proj_out'), c.hidden_dims, c.output_dims, true, `${RESAMPLER_PATH}.proj_out`);
    this.norm_out = new LayerNorm(root.child('norm_out'), c.output_dims, 1e-5, `${RESAMPLER_PATH}.norm_out`);
    this.vocabulary.tap(`${RESAMPLER_PATH}:out`);
    this.vocabulary.tap('resampler.output');
    // The projections run inside U-Net passes, which declare their taps (Attention's `ipTaps`).
    const ip = Scope.root(store, 'ip_adapter');
    unet.crossAttentionLayers().forEach((attn2, k) => {
      const key = String(1 + 2 * k);
      const inner = attn2.to_k.outFeatures;
      const rec = `${attn2.path}.processor`;
      this.ipLayers.push({
        key: `ip_adapter.${key}`,
        module: attn2.path,
        to_k_ip: new Linear(ip.child(key).child('to_k_ip'), c.output_dims, inner, false, `${rec}.to_k_ip.0.linear`),
        to_v_ip: new Linear(ip.child(key).child('to_v_ip'), c.output_dims, inner, false, `${rec}.to_v_ip.0.linear`),
      });
    });
    this.projections = new Map(this.ipLayers.map((l) => [l.module, { to_k_ip: l.to_k_ip, to_v_ip: l.to_v_ip }]));
  }

  /** `ip_adapter.N` → the attn2 module it drives. */
  keyToModule(): Record<string, string> {
    return Object.fromEntries(this.ipLayers.map((l) => [l.key, l.module]));
  }

  /** What a U-Net pass needs to apply the adapter (`unet.forward(…, { ip })`): the image tokens
   *  from `resample` and the scale (default: the config's), for that call only. */
  conditioning(tokens: Tensor, scale = this.config.ip_scale ?? 1): IpConditioning {
    const bad = ipScaleProblem(scale);
    if (bad) throw new RangeError(`IP-Adapter: scale ${bad}`);
    if (tokens.rank !== 3 || tokens.shape[2] !== this.config.resampler.output_dims) {
      throw new ShapeError(`IP-Adapter: tokens must be [B, N, ${this.config.resampler.output_dims}], got [${tokens.shape.join(', ')}]`);
    }
    return { tokens, scale, projections: this.projections };
  }

  /** Resampler: image_embeds [B, T, E] or [B, 1, T, E] (penultimate CLIP-H states) → tokens [B, Q, D]. */
  resample(imageEmbeds: Tensor, opts: ForwardOptions = {}): ResamplerOutput {
    const c = this.config.resampler;
    const e = imageEmbeds;
    if (e.rank === 4 && e.shape[1] !== 1) throw new ShapeError(`IP-Adapter: one image per sample is supported, got image_embeds [${e.shape.join(', ')}]`);
    const shape3 = e.rank === 4 ? [e.shape[0]!, e.shape[2]!, e.shape[3]!] : e.shape;
    if (shape3.length !== 3 || shape3[2] !== c.embed_dims) throw new ShapeError(`IP-Adapter: image_embeds must be [B, T, ${c.embed_dims}] or [B, 1, T, ${c.embed_dims}], got [${e.shape.join(', ')}]`);
    const b = shape3[0]!;
    const ctx = new ForwardContext(this.vocabulary, opts, 'IP-Adapter resampler');
    const { result, stoppedAfter } = ctx.run(() => {
      const h = this.proj_in.forward(e.reshape(shape3), ctx);
      let lat = broadcastTo(this.latents.tensor, [b, c.num_queries, c.hidden_dims]);
      for (const layer of this.layers) lat = layer.forward(h, lat, ctx, c.heads);
      const out = this.norm_out.forward(this.proj_out.forward(lat, ctx), ctx);
      ctx.record(`${RESAMPLER_PATH}:out`, out);
      ctx.record('resampler.output', out);
      return out;
    });
    return { tokens: result ?? null, stoppedAfter, taps: ctx.taps };
  }
}

export interface ResamplerOutput {
  /** Image tokens [B, num_queries, output_dims], or null when the pass stopped early. */
  tokens: Tensor | null;
  stoppedAfter: string | undefined;
  taps: Taps;
}
