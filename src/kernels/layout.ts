// Layout kernels: permute, slice, concat, nearest upsampling, NCHW ↔ tokens, head split/merge.
//
// They copy elements, so the result has the input's dtype. f16 tensors are read as packed pairs
// (`array<u32>`) and written element by element (`array<f16>`); the copy reinterprets the bits
// rather than converting, so it is bit-exact (subnormals, infinities and NaNs included).

import { ShapeError, numelOf, type DType, type Tensor } from '../gpu/runtime.js';
import { Params, activationDtype, outputType, runElementwise, runtimeOf, shapeStr, storageType } from './common.js';

const MAX_RANK = 6;

/** The bindings of a one-input copy kernel over `dtype`, and the WGSL expression of element
 *  `index` of `x` as a value to store into `y`: f16 pairs are bitcast, not converted. */
function copyKernel(dtype: DType): { bindings: string[]; f16: boolean; load: (index: string) => string } {
  const f16 = dtype === 'f16';
  return {
    bindings: [`var<storage, read> x: array<${storageType(dtype)}>`, `var<storage, read_write> y: array<${outputType(dtype)}>`],
    f16,
    load: (index) => (f16 ? `bitcast<vec2<f16>>(x[(${index}) >> 1u])[(${index}) & 1u]` : `x[${index}]`),
  };
}

function contiguousStrides(shape: readonly number[]): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    s[i] = acc;
    acc *= shape[i]!;
  }
  return s;
}

/** out[i] = x[offset + Σ_d idx_d · stride_d] for the output shape `shape` (rank ≤ 6; f32, f16, i32,
 *  u32). Element indices, offsets and strides count elements, also for f16. */
function gather(x: Tensor, shape: readonly number[], strides: readonly number[], offset: number, key: string): Tensor {
  const rt = runtimeOf(x);
  if (shape.length > MAX_RANK) throw new ShapeError(`${key}: rank ${shape.length} over ${MAX_RANK}`);
  // Writing f16 elements needs shader-f16.
  if (x.dtype === 'f16') activationDtype(x, key);
  const n = numelOf(shape);
  const pad = MAX_RANK - shape.length;
  const dims = [...new Array<number>(pad).fill(1), ...shape];
  const st = [...new Array<number>(pad).fill(0), ...strides];
  const ty = x.dtype;
  const prm = new Params().u32(offset, 0, 0);
  for (let d = 0; d < MAX_RANK; d++) prm.u32(dims[d]!, st[d]!, 0, 0);
  return runElementwise(
    rt,
    `gather:${ty}`,
    () => {
      const k = copyKernel(ty);
      return {
        fields: `offset: u32, _a: u32, _b: u32, dims: array<vec4<u32>, ${MAX_RANK}>`,
        bindings: k.bindings,
        inputs: 1,
        outputs: 1,
        f16: k.f16,
        body: `var rem = i;
  var src = p.offset;
  for (var d = ${MAX_RANK - 1}i; d >= 0; d--) {
    let q = rem % p.dims[d].x;
    rem = rem / p.dims[d].x;
    src += q * p.dims[d].y;
  }
  y[i] = ${k.load('src')};`,
      };
    },
    n,
    prm,
    [x],
    [{ shape, dtype: x.dtype }],
  )[0]!;
}

/** Permutes axes: out.shape[i] = x.shape[perm[i]]. */
export function permute(x: Tensor, perm: readonly number[]): Tensor {
  if (perm.length !== x.rank || [...perm].sort((a, b) => a - b).some((v, i) => v !== i)) {
    throw new ShapeError(`permute: [${perm.join(', ')}] is not a permutation of the axes of ${shapeStr(x.shape)}`);
  }
  const xs = contiguousStrides(x.shape);
  return gather(x, perm.map((p) => x.shape[p]!), perm.map((p) => xs[p]!), 0, 'permute');
}

/** Broadcasts x to `shape` (NumPy rules: size-1 or missing leading axes repeat), as a copy. */
export function broadcastTo(x: Tensor, shape: readonly number[]): Tensor {
  if (shape.length < x.rank) throw new ShapeError(`broadcastTo: ${shapeStr(x.shape)} has more axes than ${shapeStr(shape)}`);
  const xs = contiguousStrides(x.shape);
  const strides = shape.map((d, i) => {
    const j = i - (shape.length - x.rank);
    if (j < 0) return 0;
    if (x.shape[j] === d) return xs[j]!;
    if (x.shape[j] === 1) return 0;
    throw new ShapeError(`broadcastTo: ${shapeStr(x.shape)} does not broadcast to ${shapeStr(shape)}`);
  });
  return gather(x, shape, strides, 0, 'broadcastTo');
}

/** Slices `[start, start+size)` along each axis (size -1: to the end). */
export function slice(x: Tensor, starts: readonly number[], sizes: readonly number[]): Tensor {
  if (starts.length !== x.rank || sizes.length !== x.rank) throw new ShapeError(`slice: need ${x.rank} starts and sizes for ${shapeStr(x.shape)}`);
  const xs = contiguousStrides(x.shape);
  const outShape: number[] = [];
  let offset = 0;
  for (let d = 0; d < x.rank; d++) {
    const start = starts[d]!;
    const size = sizes[d] === -1 ? x.shape[d]! - start : sizes[d]!;
    if (!Number.isInteger(start) || !Number.isInteger(size) || start < 0 || size < 0 || start + size > x.shape[d]!) {
      throw new ShapeError(`slice: axis ${d} range [${start}, ${start + size}) outside ${shapeStr(x.shape)}`);
    }
    outShape.push(size);
    offset += start * xs[d]!;
  }
  return gather(x, outShape, xs, offset, 'slice');
}

/** Concatenates along `axis` (all other dimensions equal; all inputs of one dtype, which the result
 *  has). */
export function concat(tensors: readonly Tensor[], axis: number): Tensor {
  if (!tensors.length) throw new ShapeError('concat: no tensors');
  const first = tensors[0]!;
  const rank = first.rank;
  if (axis < 0) axis += rank;
  if (axis < 0 || axis >= rank) throw new ShapeError(`concat: axis out of range for ${shapeStr(first.shape)}`);
  tensors.forEach((t, i) => {
    if (t.dtype !== first.dtype) throw new TypeError(`concat: input ${i} is ${t.dtype} but input 0 is ${first.dtype} (all inputs must share one dtype)`);
    if (t.rank !== rank || t.shape.some((d, j) => j !== axis && d !== first.shape[j])) {
      throw new ShapeError(`concat along ${axis}: input ${i} ${shapeStr(t.shape)} does not match input 0 ${shapeStr(first.shape)}`);
    }
  });
  // Writing f16 elements needs shader-f16.
  if (first.dtype === 'f16') activationDtype(first, 'concat');
  const rt = runtimeOf(...tensors);
  const total = tensors.reduce((s, t) => s + t.shape[axis]!, 0);
  const outShape = [...first.shape];
  outShape[axis] = total;
  const y = rt.empty(outShape, first.dtype);
  if (y.numel === 0) return y;
  const inner = first.shape.slice(axis + 1).reduce((a, b) => a * b, 1);
  const ty = first.dtype;
  let offset = 0;
  for (const t of tensors) {
    const n = t.numel;
    const block = t.shape[axis]! * inner;
    // Element i of this input lands in output block i / block, `offset` elements into it (f16:
    // the two halves of an output word may come from different inputs, i.e. dispatches).
    runElementwise(
      rt,
      `concat:${ty}`,
      () => {
        const k = copyKernel(ty);
        return {
          fields: 'block: u32, out_block: u32, offset: u32',
          bindings: k.bindings,
          inputs: 1,
          outputs: 1,
          f16: k.f16,
          body: `y[(i / p.block) * p.out_block + p.offset + i % p.block] = ${k.load('i')};`,
        };
      },
      n,
      new Params().u32(block, total * inner, offset * inner),
      [t],
      [y],
    );
    offset += t.shape[axis]!;
  }
  return y;
}

/** Nearest-neighbour ×2 upsampling of NCHW (torch `interpolate(scale_factor=2, mode="nearest")`). */
export function upsampleNearest2x(x: Tensor): Tensor {
  if (x.rank !== 4) throw new ShapeError(`upsampleNearest2x: expected NCHW, got ${shapeStr(x.shape)}`);
  const [b, c, h, w] = x.shape as [number, number, number, number];
  // View the output [B, C, H, 2, W, 2] as a broadcast read of x: the two size-2 axes have stride 0.
  const y = gather(x, [b, c, h, 2, w, 2], [c * h * w, h * w, w, 0, 1, 0], 0, 'upsample');
  const r = y.reshape([b, c, 2 * h, 2 * w]);
  y.dispose();
  return r;
}

/** Nearest-neighbour resize of NCHW (f32 or f16) to outH × outW, as torch
 *  `interpolate(size=…, mode="nearest")`: source index min(floor(dst · (in/out)), in − 1) with the
 *  scale and product in float32. */
export function resizeNearest(x: Tensor, outH: number, outW: number): Tensor {
  if (x.rank !== 4) throw new ShapeError(`resizeNearest: expected NCHW, got ${shapeStr(x.shape)}`);
  if (!Number.isInteger(outH) || !Number.isInteger(outW) || outH < 1 || outW < 1) throw new ShapeError(`resizeNearest: bad output size ${outH}×${outW}`);
  const dtype = activationDtype(x, 'resizeNearest');
  const [b, c, h, w] = x.shape as [number, number, number, number];
  if (outH === 2 * h && outW === 2 * w) return upsampleNearest2x(x);
  const n = b * c * outH * outW;
  return runElementwise(
    runtimeOf(x),
    `resize_nearest:${dtype}`,
    () => {
      const k = copyKernel(dtype);
      return {
        fields: 'ih: u32, iw: u32, oh: u32, ow: u32, sy: f32, sx: f32',
        bindings: k.bindings,
        inputs: 1,
        outputs: 1,
        f16: k.f16,
        body: `let ox = i % p.ow;
  let oy = (i / p.ow) % p.oh;
  let plane = i / (p.ow * p.oh);
  let iy = min(u32(floor(f32(oy) * p.sy)), p.ih - 1u);
  let ix = min(u32(floor(f32(ox) * p.sx)), p.iw - 1u);
  y[i] = ${k.load('(plane * p.ih + iy) * p.iw + ix')};`,
      };
    },
    n,
    new Params().u32(h, w, outH, outW).f32(Math.fround(h / outH), Math.fround(w / outW)),
    [x],
    [{ shape: [b, c, outH, outW], dtype }],
  )[0]!;
}

/** NCHW → (B, H·W, C), token n = y·W + x. */
export function nchwToTokens(x: Tensor): Tensor {
  if (x.rank !== 4) throw new ShapeError(`nchwToTokens: expected NCHW, got ${shapeStr(x.shape)}`);
  const [b, c, h, w] = x.shape as [number, number, number, number];
  const v = x.reshape([b, c, h * w]);
  const y = permute(v, [0, 2, 1]);
  v.dispose();
  return y;
}

/** (B, H·W, C) → NCHW. */
export function tokensToNchw(x: Tensor, h: number, w: number): Tensor {
  if (x.rank !== 3 || x.shape[1] !== h * w) throw new ShapeError(`tokensToNchw: ${shapeStr(x.shape)} is not (B, ${h}·${w}, C)`);
  const [b, , c] = x.shape as [number, number, number];
  const y = permute(x, [0, 2, 1]);
  const r = y.reshape([b, c, h, w]);
  y.dispose();
  return r;
}

/** (B, N, H·D) → (B, H, N, D); channel c = head·D + d. */
export function splitHeads(x: Tensor, heads: number): Tensor {
  const [b, n, c] = x.shape as [number, number, number];
  if (x.rank !== 3 || c % heads !== 0) throw new ShapeError(`splitHeads: ${shapeStr(x.shape)} channels not divisible by ${heads} heads`);
  const v = x.reshape([b, n, heads, c / heads]);
  const y = permute(v, [0, 2, 1, 3]);
  v.dispose();
  return y;
}

/** (B, H, N, D) → (B, N, H·D). */
export function mergeHeads(x: Tensor): Tensor {
  if (x.rank !== 4) throw new ShapeError(`mergeHeads: expected (B, H, N, D), got ${shapeStr(x.shape)}`);
  const [b, h, n, d] = x.shape as [number, number, number, number];
  const y = permute(x, [0, 2, 1, 3]);
  const r = y.reshape([b, n, h * d]);
  y.dispose();
  return r;
}
