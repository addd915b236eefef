// Sinusoidal timestep embedding (diffusers `get_timestep_embedding`) and row gathers (token embeddings).

import { ShapeError, type Tensor } from '../gpu/runtime.js';
import { Params, runElementwise, runtimeOf, shapeStr } from './common.js';


export interface TimestepEmbeddingOptions {
  flipSinToCos: boolean;
  downscaleFreqShift: number;
  scale?: number;
  maxPeriod?: number;
}

/** timesteps [B] (f32) → [B, dim]: half = dim/2, freq_j = exp(−ln(maxPeriod)·j/(half − shift)),
 *  emb = [sin(t·freq), cos(t·freq)] (or [cos, sin] with flipSinToCos), zero-padded when dim is odd.
 *  The frequency table follows torch's float32 arithmetic; sin/cos use an explicit range reduction so
 *  large arguments (t ≈ 1000) keep full float32 accuracy on GPUs with approximate trig. */
export function timestepEmbedding(timesteps: Tensor, dim: number, o: TimestepEmbeddingOptions): Tensor {
  if (timesteps.rank !== 1 || timesteps.dtype !== 'f32') throw new ShapeError(`timestepEmbedding: timesteps must be a 1-D f32 tensor, got ${shapeStr(timesteps.shape)} ${timesteps.dtype}`);
  if (!Number.isInteger(dim) || dim < 2) throw new ShapeError(`timestepEmbedding: dim ${dim} must be an integer ≥ 2`);
  const rt = runtimeOf(timesteps);
  const half = Math.floor(dim / 2);
  if (half - o.downscaleFreqShift === 0) throw new ShapeError('timestepEmbedding: half dimension equals the frequency shift');
  // exponent_j = fl(fl(−ln(maxPeriod) · j) / (half − shift)); freq_j = fl(exp(exponent_j)), as torch computes in float32.
  const lnMax = Math.fround(-Math.log(o.maxPeriod ?? 10000));
  const freqs = new Float32Array(half);
  for (let j = 0; j < half; j++) {
    const e = Math.fround(Math.fround(lnMax * j) / Math.fround(half - o.downscaleFreqShift));
    freqs[j] = Math.fround(Math.exp(e));
  }
  const freqTensor = rt.upload(freqs, [half]);
  const b = timesteps.shape[0]!;
  const n = b * dim;
  const [y] = runElementwise(
    rt,
    'timestep_embedding',
    () => ({
      fields: 'dim: u32, half: u32, flip: u32, scale: f32',
      bindings: ['var<storage, read> t: array<f32>', 'var<storage, read> freq: array<f32>', 'var<storage, read_write> y: array<f32>'],
      inputs: 2,
      outputs: 1,
      // x − k·2π in three parts (Cody–Waite), so sin/cos see an argument in [−π, π].
      prelude: `fn reduce_2pi(x: f32) -> f32 {
  let k = round(x * 0.15915494309189535);
  return ((x - k * 6.28125) - k * 1.9350051879882812e-3) - k * 3.019916050561733e-7;
}`,
      body: `let row = i / p.dim;
  let col = i % p.dim;
  if (col >= 2u * p.half) { y[i] = 0.0; return; }
  let first = col < p.half;
  let j = select(col - p.half, col, first);
  let r = reduce_2pi(p.scale * (t[row] * freq[j]));
  y[i] = select(cos(r), sin(r), first != (p.flip != 0u));`,
    }),
    n,
    new Params().u32(dim, half, o.flipSinToCos ? 1 : 0).f32(o.scale ?? 1),
    [timesteps, freqTensor],
    [{ shape: [b, dim] }],
  );
  freqTensor.dispose();
  return y!;
}

/** Gathers rows of a [V, D] table by integer ids (host data of shape `idsShape`): out [...idsShape, D].
 *  The ids are checked on the host (no GPU read-back) and uploaded. The table may be split into
 *  several row blocks (each under the adapter's binding limit); `blockRows` is the rows per block. */
export function embeddingLookup(idsHost: Int32Array, idsShape: readonly number[], blocks: readonly Tensor[], blockRows: number): Tensor {
  const first = blocks[0];
  if (!first || first.rank !== 2) throw new ShapeError('embeddingLookup: need at least one [rows, D] table block');
  if (idsHost.length !== idsShape.reduce((a, b) => a * b, 1)) throw new ShapeError(`embeddingLookup: ${idsHost.length} ids for shape ${shapeStr(idsShape)}`);
  const d = first.shape[1]!;
  const vocab = blocks.reduce((s, b) => s + b.shape[0]!, 0);
  for (let i = 0; i < idsHost.length; i++) {
    if (idsHost[i]! < 0 || idsHost[i]! >= vocab) throw new RangeError(`embeddingLookup: id ${idsHost[i]} at position ${i} outside the vocabulary of ${vocab}`);
  }
  for (const table of blocks) {
    if (table.rank !== 2 || table.dtype !== first.dtype || table.shape[1] !== d) throw new ShapeError('embeddingLookup: table blocks differ in rank, dtype or width');
  }
  const rt = runtimeOf(...blocks);
  const ids = rt.upload(idsHost, idsShape, 'i32');
  const y = rt.zeros([...idsShape, d]);
  const n = ids.numel * d;
  for (let blk = 0; blk < blocks.length; blk++) {
    const table = blocks[blk]!;
    const ty = table.dtype === 'f16' ? 'u32' : 'f32';
    const load = table.dtype === 'f16' ? 'unpack2x16float(table[src >> 1u])[src & 1u]' : 'table[src]';
    runElementwise(
      rt,
      `embedding:${table.dtype}`,
      () => ({
        fields: 'd: u32, row0: u32, rows: u32',
        bindings: ['var<storage, read> ids: array<i32>', `var<storage, read> table: array<${ty}>`, 'var<storage, read_write> y: array<f32>'],
        inputs: 2,
        outputs: 1,
        body: `let id = u32(ids[i / p.d]);
  if (id < p.row0 || id >= p.row0 + p.rows) { return; }
  let src = (id - p.row0) * p.d + i % p.d;
  y[i] = ${load};`,
      }),
      n,
      new Params().u32(d, blk * blockRows, table.shape[0]!),
      [ids, table],
      [y],
    );
  }
  ids.dispose();
  return y;
}
