// Bicubic resize of NCHW tensors as torch.nn.functional.interpolate(mode="bicubic",
// align_corners=False, antialias=False): Keys cubic with A = −0.75, taps clamped to the border.

import { ShapeError, type Tensor } from '../gpu/runtime.js';
import { Params, WGSL_LINEAR_ID, assertFloat, ceilDiv, runtimeOf, shapeStr } from './common.js';

const WG = 256;

export interface BicubicOptions {
  /** Source pixels per output pixel along y and x. torch uses 1/scale_factor when a scale factor
   *  is passed (DINOv2 does), else in/out. Default in/out. */
  scaleY?: number;
  scaleX?: number;
}

export async function resizeBicubic(x: Tensor, outH: number, outW: number, o: BicubicOptions = {}): Promise<Tensor> {
  assertFloat(x, 'resizeBicubic');
  if (x.rank !== 4) throw new ShapeError(`resizeBicubic: expected NCHW, got ${shapeStr(x.shape)}`);
  if (!Number.isInteger(outH) || !Number.isInteger(outW) || outH < 1 || outW < 1) throw new ShapeError(`resizeBicubic: bad output size ${outH}×${outW}`);
  const [b, c, h, w] = x.shape as [number, number, number, number];
  const rt = runtimeOf(x);
  const y = rt.empty([b, c, outH, outW]);
  const n = y.numel;
  // torch: float(input)/output, or float(1/scale_factor) computed in double.
  const sy = Math.fround(o.scaleY ?? Math.fround(h) / Math.fround(outH));
  const sx = Math.fround(o.scaleX ?? Math.fround(w) / Math.fround(outW));
  await rt.run(
    {
      key: 'resize_bicubic',
      inputs: 1,
      outputs: 1,
      uniforms: true,
      code: /* wgsl */ `
struct P { n: u32, ih: u32, iw: u32, oh: u32, ow: u32, sy: f32, sx: f32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
${WGSL_LINEAR_ID(WG)}
const A = -0.75;
fn cubic1(t: f32) -> f32 { return ((A + 2.0) * t - (A + 3.0)) * t * t + 1.0; }
fn cubic2(t: f32) -> f32 { return ((A * t - 5.0 * A) * t + 8.0 * A) * t - 4.0 * A; }
fn weights(t: f32) -> vec4<f32> {
  return vec4<f32>(cubic2(t + 1.0), cubic1(t), cubic1(1.0 - t), cubic2(2.0 - t));
}
fn at(base: u32, yy: i32, xx: i32) -> f32 {
  let cy = u32(clamp(yy, 0, i32(p.ih) - 1));
  let cx = u32(clamp(xx, 0, i32(p.iw) - 1));
  return x[base + cy * p.iw + cx];
}
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = linear_id(gid, nwg);
  if (i >= p.n) { return; }
  let ox = i % p.ow;
  let oy = (i / p.ow) % p.oh;
  let plane = i / (p.ow * p.oh);
  let base = plane * p.ih * p.iw;
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
  y[i] = acc;
}`,
    },
    { params: new Params().u32(n, h, w, outH, outW).f32(sy, sx).build(), inputs: [x], outputs: [y], workgroups: rt.grid(ceilDiv(n, WG)) },
  );
  return y;
}
