// Bicubic resize of NCHW tensors as torch.nn.functional.interpolate(mode="bicubic",
// align_corners=False, antialias=False): Keys cubic with A = −0.75, taps clamped to the border.

import { ShapeError, type Tensor } from '../gpu/runtime.js';
import { Params, assertFloat, runElementwise, runtimeOf, shapeStr } from './common.js';


export interface BicubicOptions {
  /** Source pixels per output pixel along y and x. torch uses 1/scale_factor when a scale factor
   *  is passed (DINOv2 does), else in/out. Default in/out. */
  scaleY?: number;
  scaleX?: number;
}

export function resizeBicubic(x: Tensor, outH: number, outW: number, o: BicubicOptions = {}): Tensor {
  assertFloat(x, 'resizeBicubic');
  if (x.rank !== 4) throw new ShapeError(`resizeBicubic: expected NCHW, got ${shapeStr(x.shape)}`);
  if (!Number.isInteger(outH) || !Number.isInteger(outW) || outH < 1 || outW < 1) throw new ShapeError(`resizeBicubic: bad output size ${outH}×${outW}`);
  const [b, c, h, w] = x.shape as [number, number, number, number];
  const rt = runtimeOf(x);
  const n = b * c * outH * outW;
  // torch: float(input)/output, or float(1/scale_factor) computed in double.
  const sy = Math.fround(o.scaleY ?? Math.fround(h) / Math.fround(outH));
  const sx = Math.fround(o.scaleX ?? Math.fround(w) / Math.fround(outW));
  return runElementwise(
    rt,
    'resize_bicubic',
    () => ({
      fields: 'ih: u32, iw: u32, oh: u32, ow: u32, sy: f32, sx: f32',
      bindings: ['var<storage, read> x: array<f32>', 'var<storage, read_write> y: array<f32>'],
      inputs: 1,
      outputs: 1,
      prelude: `const A = -0.75;
fn cubic1(t: f32) -> f32 { return ((A + 2.0) * t - (A + 3.0)) * t * t + 1.0; }
fn cubic2(t: f32) -> f32 { return ((A * t - 5.0 * A) * t + 8.0 * A) * t - 4.0 * A; }
fn weights(t: f32) -> vec4<f32> { return vec4<f32>(cubic2(t + 1.0), cubic1(t), cubic1(1.0 - t), cubic2(2.0 - t)); }
fn at(base: u32, yy: i32, xx: i32) -> f32 {
  let cy = u32(clamp(yy, 0, i32(p.ih) - 1));
  let cx = u32(clamp(xx, 0, i32(p.iw) - 1));
  return x[base + cy * p.iw + cx];
}`,
      body: `let ox = i % p.ow;
  let oy = (i / p.ow) % p.oh;
  let base = (i / (p.ow * p.oh)) * p.ih * p.iw;
  let fy = p.sy * (f32(oy) + 0.5) - 0.5;
  let fx = p.sx * (f32(ox) + 0.5) - 0.5;
  let y0 = floor(fy);
  let x0 = floor(fx);
  let wy = weights(fy - y0);
  let wx = weights(fx - x0);
  let iy = i32(y0);
  let ix = i32(x0);
  var acc = 0.0;
  for (var r = 0; r < 4; r++) {
    let rowv = at(base, iy - 1 + r, ix - 1) * wx.x + at(base, iy - 1 + r, ix) * wx.y
             + at(base, iy - 1 + r, ix + 1) * wx.z + at(base, iy - 1 + r, ix + 2) * wx.w;
    acc += rowv * wy[r];
  }
  y[i] = acc;`,
    }),
    n,
    new Params().u32(h, w, outH, outW).f32(sy, sx),
    [x],
    [{ shape: [b, c, outH, outW] }],
  )[0]!;
}
