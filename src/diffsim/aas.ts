// The Aligned Attention Score, shared by DiffSim-S/C and the CLIP/DINOv2 variants.
//
// With each image's queries, keys and values from the same attention layer,
//   O_AB = SDPA(Q_A, K_B, V_B)   (A's queries read B's keys/values)
//   O_AA = SDPA(Q_A, K_A, V_A)   (A's own self-attention output)
//   O_BA = SDPA(Q_B, K_A, V_A),  O_BB = SDPA(Q_B, K_B, V_B)
// per batch element and head (softmax over the key tokens, scale 1/√d), and
//   AAS = ½·[cos(O_AB, O_AA) + cos(O_BA, O_BB)]   (each cosine over the whole flattened tensor),
// or in mse mode ½·[mean((O_AB − O_AA)²) + mean((O_BA − O_BB)²)].
//
// Tensors stay in the merged (B, N, H·D) layout of the projections: the attention kernel reads
// the heads in place, and a cosine or mean over all elements does not depend on the layout.

import { tidy, type Tensor } from '../gpu/runtime.js';
import { attention } from '../kernels/attention.js';
import { concat } from '../kernels/layout.js';
import { pairSums } from '../kernels/reduce.js';

/** One image's queries (B, Nq, C), keys and values (B, Nk, C) of the hooked layer. */
export interface Qkv {
  readonly q: Tensor;
  readonly k: Tensor;
  readonly v: Tensor;
}

export interface AasOutputs {
  /** SDPA(Q_A, K_B, V_B) */
  ab: Tensor;
  /** SDPA(Q_A, K_A, V_A) */
  aa: Tensor;
  /** SDPA(Q_B, K_A, V_A) */
  ba: Tensor;
  /** SDPA(Q_B, K_B, V_B) */
  bb: Tensor;
}

/** Where the query tokens of an AAS layer sit on an image: `prefix` tokens first (the ViTs' CLS
 *  token; none for DiffSim), then a gridHeight×gridWidth grid in row-major order, covering
 *  `region` of the image (continuous pixel coordinates: the whole image for DiffSim, which squashes
 *  it to S×S; the centre crop's patches for the ViTs). */
export interface AttentionLayout {
  /** The attention module whose queries these are (its weight path). */
  module: string;
  prefix: number;
  gridWidth: number;
  gridHeight: number;
  region: { x: number; y: number; width: number; height: number };
}

export interface AasOptions {
  heads: number;
  /** Batch elements taking part (e.g. [1] = the conditional CFG half only); all when absent.
   *  Selected through the attention kernel's batch maps, without copies. */
  batch?: readonly number[];
  /** Applied to each attention output before the comparison (CLIP AAS applies out_proj). */
  project?: (o: Tensor) => Tensor;
}

/** The four attention outputs of a pair (owned by the caller). */
export function aasOutputs(a: Qkv, b: Qkv, o: AasOptions): AasOutputs {
  return tidy(() => {
    const maps = o.batch ? { qBatch: o.batch, kvBatch: o.batch } : {};
    const sdpa = (q: Tensor, kv: Qkv) => {
      const out = attention(q, kv.k, kv.v, { heads: o.heads, ...maps });
      return o.project ? o.project(out) : out;
    };
    return { ab: sdpa(a.q, b), aa: sdpa(a.q, a), ba: sdpa(b.q, a), bb: sdpa(b.q, b) };
  });
}

/** [8] on the GPU: pair sums (Σxy, Σx², Σy², Σ(x−y)²) of (O_AB, O_AA) then of (O_BA, O_BB). */
export function aasSums(out: AasOutputs): Tensor {
  return tidy(() => concat([pairSums(out.ab, out.aa), pairSums(out.ba, out.bb)], 0));
}

export interface PairScore {
  /** torch.cosine_similarity of the two flattened tensors (each norm clamped at 1e-8). */
  cos: number;
  /** mean squared difference. */
  mse: number;
  /** The sums were finite and neither tensor was all zeros. Otherwise the values compared were
   *  not finite, or the GPU turned them into zeros (WGSL lets an implementation assume finite
   *  math: its attention can map NaN inputs to zero rows): the pair has no meaningful score. */
  sound: boolean;
}

export interface AasScores {
  /** (O_AB, O_AA) */
  ab: PairScore;
  /** (O_BA, O_BB) */
  ba: PairScore;
  /** ½(ab.cos + ba.cos), in float32 as the reference computes it. */
  cosine: number;
  /** ½(ab.mse + ba.mse). */
  mse: number;
  /** ab.sound and ba.sound. */
  sound: boolean;
}

const f = Math.fround;

/** Cosine and mse from pair sums [Σxy, Σx², Σy², Σ(x−y)²] at `offset` over `count` elements. */
export function pairScore(sums: ArrayLike<number>, offset: number, count: number, eps = 1e-8): PairScore {
  const dot = sums[offset]!;
  const na = Math.max(Math.sqrt(sums[offset + 1]!), eps);
  const nb = Math.max(Math.sqrt(sums[offset + 2]!), eps);
  const sq = [sums[offset]!, sums[offset + 1]!, sums[offset + 2]!, sums[offset + 3]!];
  const sound = sq.every(Number.isFinite) && sq[1]! > 0 && sq[2]! > 0;
  return { cos: f(dot / (na * nb)), mse: f(sums[offset + 3]! / count), sound };
}

/** AAS from the [8] sums of `aasSums` (read back), `count` = elements of one attention output. */
export function aasFromSums(sums: ArrayLike<number>, count: number, offset = 0): AasScores {
  const ab = pairScore(sums, offset, count);
  const ba = pairScore(sums, offset + 4, count);
  return { ab, ba, cosine: f(f(ab.cos + ba.cos) / 2), mse: f(f(ab.mse + ba.mse) / 2), sound: ab.sound && ba.sound };
}

/** Computes the AAS of a pair with one read-back. */
export async function aasScores(a: Qkv, b: Qkv, o: AasOptions): Promise<AasScores> {
  const { sums, count } = tidy(() => {
    const out = aasOutputs(a, b, o);
    return { sums: aasSums(out), count: out.ab.numel };
  });
  try {
    return aasFromSums((await sums.read()) as Float32Array, count);
  } finally {
    sums.dispose();
  }
}
