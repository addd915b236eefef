// The two pixel-wise ops of torchvision's VGG/AlexNet `features` and LPIPS that are neither a conv
// nor elementwise: max pooling (nn.MaxPool2d, no padding, floor mode) and LPIPS' unit
// normalisation over channels (`x / (‖x‖₂ over C + eps)` at every pixel). Both NCHW, f32.

import { ShapeError, type Tensor } from '../gpu/runtime.js';
import { Params, assertFloat, runElementwise, runtimeOf, shapeStr } from './common.js';

/** The output side of a max pool without padding in floor mode (torch's default ceil_mode=False). */
export function poolOutputSize(size: number, kernel: number, stride: number): number {
  return Math.floor((size - kernel) / stride) + 1;
}

/** nn.MaxPool2d(kernel, stride) on [B, C, H, W]: no padding, floor mode, dilation 1. A NaN in a
 *  window gives NaN, as torch's max pool does. */
export function maxPool2d(x: Tensor, kernel: number, stride = kernel): Tensor {
  assertFloat(x, 'maxPool2d');
  if (x.rank !== 4) throw new ShapeError(`maxPool2d: expected NCHW, got ${shapeStr(x.shape)}`);
  if (!Number.isInteger(kernel) || kernel < 1 || !Number.isInteger(stride) || stride < 1) throw new ShapeError(`maxPool2d: kernel ${kernel} and stride ${stride} must be positive integers`);
  const [b, c, h, w] = x.shape as [number, number, number, number];
  if (h < kernel || w < kernel) throw new ShapeError(`maxPool2d: a ${h}×${w} map is smaller than the ${kernel}×${kernel} window`);
  const oh = poolOutputSize(h, kernel, stride);
  const ow = poolOutputSize(w, kernel, stride);
  return runElementwise(
    runtimeOf(x),
    'max_pool2d',
    () => ({
      fields: 'ih: u32, iw: u32, oh: u32, ow: u32, k: u32, s: u32',
      bindings: ['var<storage, read> x: array<f32>', 'var<storage, read_write> y: array<f32>'],
      inputs: 1,
      outputs: 1,
      body: `let ox = i % p.ow;
  let oy = (i / p.ow) % p.oh;
  let base = (i / (p.ow * p.oh)) * p.ih * p.iw;
  var m = x[base + oy * p.s * p.iw + ox * p.s];
  var nan = false;
  var nanv = 0.0;
  for (var r = 0u; r < p.k; r++) {
    for (var q = 0u; q < p.k; q++) {
      let v = x[base + (oy * p.s + r) * p.iw + ox * p.s + q];
      // WGSL's max may drop a NaN (and a compiler may fold v != v away); torch's max pool keeps
      // it: NaN is found by its bits (exponent all ones, mantissa not zero).
      let bits = bitcast<u32>(v);
      if ((bits & 0x7f800000u) == 0x7f800000u && (bits & 0x007fffffu) != 0u) { nan = true; nanv = v; }
      m = max(m, v);
    }
  }
  y[i] = select(m, nanv, nan);`,
    }),
    b * c * oh * ow,
    new Params().u32(h, w, oh, ow, kernel, stride),
    [x],
    [{ shape: [b, c, oh, ow] }],
  )[0]!;
}

/** LPIPS' normalize_tensor: x / (sqrt(Σ_c x²) + eps) at every (b, y, x) of [B, C, H, W]
 *  (lpips/__init__.py, eps 1e-10). */
export function channelUnitNorm(x: Tensor, eps = 1e-10): Tensor {
  assertFloat(x, 'channelUnitNorm');
  if (x.rank !== 4) throw new ShapeError(`channelUnitNorm: expected NCHW, got ${shapeStr(x.shape)}`);
  const [b, c, h, w] = x.shape as [number, number, number, number];
  const plane = h * w;
  return runElementwise(
    runtimeOf(x),
    'channel_unit_norm',
    () => ({
      fields: 'c: u32, plane: u32, eps: f32',
      bindings: ['var<storage, read> x: array<f32>', 'var<storage, read_write> y: array<f32>'],
      inputs: 1,
      outputs: 1,
      body: `let pix = i % p.plane;
  let base = (i / p.plane) * p.c * p.plane + pix;
  var ss = 0.0;
  for (var ch = 0u; ch < p.c; ch++) {
    let v = x[base + ch * p.plane];
    ss += v * v;
  }
  let d = sqrt(ss) + p.eps;
  for (var ch = 0u; ch < p.c; ch++) {
    y[base + ch * p.plane] = x[base + ch * p.plane] / d;
  }`,
    }),
    b * plane,
    new Params().u32(c, plane).f32(eps),
    [x],
    [{ shape: [b, c, h, w] }],
  )[0]!;
}
