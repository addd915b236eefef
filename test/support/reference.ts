// Plain TypeScript references for every kernel, accumulating in float64.

/** erf in double precision: Taylor series below 3, continued fraction for erfc above. */
export function erf(x: number): number {
  const ax = Math.abs(x);
  if (ax < 3) {
    let term = ax;
    let sum = ax;
    const x2 = ax * ax;
    for (let n = 1; n < 200; n++) {
      term *= -x2 / n;
      const add = term / (2 * n + 1);
      sum += add;
      if (Math.abs(add) < 1e-17 * Math.abs(sum)) break;
    }
    const r = (2 / Math.sqrt(Math.PI)) * sum;
    return x < 0 ? -r : r;
  }
  let f = 0;
  for (let n = 80; n >= 1; n--) f = (n / 2) / (ax + f);
  const erfc = Math.exp(-ax * ax) / Math.sqrt(Math.PI) / (ax + f);
  return x < 0 ? erfc - 1 : 1 - erfc;
}

export const act = {
  none: (x: number) => x,
  gelu: (x: number) => 0.5 * x * (1 + erf(x / Math.SQRT2)),
  gelu_tanh: (x: number) => 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3))),
  quick_gelu: (x: number) => x / (1 + Math.exp(-1.702 * x)),
  silu: (x: number) => x / (1 + Math.exp(-x)),
  relu: (x: number) => Math.max(x, 0),
};
export type ActName = keyof typeof act;

/** y[m, n] = act(Σ_k x[m,k]·w[n,k] + b[n]) + res[m,n]. */
export function refLinear(x: Float32Array, w: Float32Array, m: number, k: number, n: number, bias?: Float32Array, a: ActName = 'none', res?: Float32Array): Float64Array {
  const y = new Float64Array(m * n);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let t = 0; t < k; t++) s += x[i * k + t]! * w[j * k + t]!;
      y[i * n + j] = act[a](s + (bias ? bias[j]! : 0)) + (res ? res[i * n + j]! : 0);
    }
  }
  return y;
}

/** Batched a (batch, m, k) · b (batchB, k, n); batchB 1 broadcasts. */
export function refMatmul(a: Float32Array, b: Float32Array, batch: number, m: number, k: number, n: number, bBatched: boolean, transposeB = false): Float64Array {
  const y = new Float64Array(batch * m * n);
  for (let z = 0; z < batch; z++) {
    const ao = z * m * k;
    const bo = bBatched ? z * k * n : 0;
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < n; j++) {
        let s = 0;
        for (let t = 0; t < k; t++) s += a[ao + i * k + t]! * (transposeB ? b[bo + j * k + t]! : b[bo + t * n + j]!);
        y[z * m * n + i * n + j] = s;
      }
    }
  }
  return y;
}

export interface ConvShape {
  b: number;
  cin: number;
  h: number;
  w: number;
  cout: number;
  kh: number;
  kw: number;
  stride: number;
  pad: [number, number, number, number];
}

export function convOutSize(s: ConvShape): [number, number] {
  return [Math.floor((s.h + s.pad[0] + s.pad[1] - s.kh) / s.stride) + 1, Math.floor((s.w + s.pad[2] + s.pad[3] - s.kw) / s.stride) + 1];
}

/** One output element of a conv (for sampled checks of large shapes). */
export function refConvAt(x: Float32Array, w: Float32Array, s: ConvShape, bi: number, co: number, oy: number, ox: number, bias?: Float32Array, res?: Float32Array): number {
  const [oh, ow] = convOutSize(s);
  let acc = bias ? bias[co]! : 0;
  for (let ci = 0; ci < s.cin; ci++) {
    for (let ky = 0; ky < s.kh; ky++) {
      const iy = oy * s.stride + ky - s.pad[0];
      if (iy < 0 || iy >= s.h) continue;
      for (let kx = 0; kx < s.kw; kx++) {
        const ix = ox * s.stride + kx - s.pad[2];
        if (ix < 0 || ix >= s.w) continue;
        acc += x[((bi * s.cin + ci) * s.h + iy) * s.w + ix]! * w[((co * s.cin + ci) * s.kh + ky) * s.kw + kx]!;
      }
    }
  }
  return acc + (res ? res[((bi * s.cout + co) * oh + oy) * ow + ox]! : 0);
}

export function refConv(x: Float32Array, w: Float32Array, s: ConvShape, bias?: Float32Array, res?: Float32Array): Float64Array {
  const [oh, ow] = convOutSize(s);
  const y = new Float64Array(s.b * s.cout * oh * ow);
  let i = 0;
  for (let bi = 0; bi < s.b; bi++)
    for (let co = 0; co < s.cout; co++)
      for (let oy = 0; oy < oh; oy++) for (let ox = 0; ox < ow; ox++) y[i++] = refConvAt(x, w, s, bi, co, oy, ox, bias, res);
  return y;
}

/** PyTorch's F.group_norm (biased variance) over [B, C, spatial], then `a`. */
export function refGroupNorm(x: Float32Array, b: number, c: number, spatial: number, groups: number, w: Float32Array, bias: Float32Array, eps: number, a: ActName = 'none'): Float64Array {
  const y = new Float64Array(x.length);
  const cpg = c / groups;
  for (let bi = 0; bi < b; bi++) {
    for (let g = 0; g < groups; g++) {
      const start = (bi * c + g * cpg) * spatial;
      const len = cpg * spatial;
      let mean = 0;
      for (let i = 0; i < len; i++) mean += x[start + i]!;
      mean /= len;
      let v = 0;
      for (let i = 0; i < len; i++) v += (x[start + i]! - mean) ** 2;
      v /= len;
      const r = 1 / Math.sqrt(v + eps);
      for (let i = 0; i < len; i++) {
        const ch = g * cpg + Math.floor(i / spatial);
        const val = (x[start + i]! - mean) * r * w[ch]! + bias[ch]!;
        y[start + i] = act[a](val);
      }
    }
  }
  return y;
}

export function refLayerNorm(x: Float32Array, c: number, w: Float32Array, bias: Float32Array, eps: number): Float64Array {
  const rows = x.length / c;
  const y = new Float64Array(x.length);
  for (let r = 0; r < rows; r++) {
    let mean = 0;
    for (let i = 0; i < c; i++) mean += x[r * c + i]!;
    mean /= c;
    let v = 0;
    for (let i = 0; i < c; i++) v += (x[r * c + i]! - mean) ** 2;
    v /= c;
    const inv = 1 / Math.sqrt(v + eps);
    for (let i = 0; i < c; i++) y[r * c + i] = (x[r * c + i]! - mean) * inv * w[i]! + bias[i]!;
  }
  return y;
}

export function refSoftmax(x: Float32Array, c: number, scale = 1): Float64Array {
  const y = new Float64Array(x.length);
  for (let r = 0; r < x.length / c; r++) {
    let m = -Infinity;
    for (let i = 0; i < c; i++) m = Math.max(m, x[r * c + i]! * scale);
    let s = 0;
    for (let i = 0; i < c; i++) s += Math.exp(x[r * c + i]! * scale - m);
    for (let i = 0; i < c; i++) y[r * c + i] = Math.exp(x[r * c + i]! * scale - m) / s;
  }
  return y;
}

/** Attention on split layout (B, H, N, D) arrays. */
export function refAttention(q: Float32Array, k: Float32Array, v: Float32Array, b: number, h: number, nq: number, nk: number, d: number, scale: number, causal: boolean): Float64Array {
  const o = new Float64Array(b * h * nq * d);
  const s = new Float64Array(nk);
  for (let z = 0; z < b * h; z++) {
    for (let i = 0; i < nq; i++) {
      let m = -Infinity;
      for (let j = 0; j < nk; j++) {
        let acc = 0;
        for (let t = 0; t < d; t++) acc += q[(z * nq + i) * d + t]! * k[(z * nk + j) * d + t]!;
        s[j] = causal && j > i ? -Infinity : acc * scale;
        m = Math.max(m, s[j]!);
      }
      let sum = 0;
      for (let j = 0; j < nk; j++) sum += s[j] = Math.exp(s[j]! - m);
      for (let t = 0; t < d; t++) {
        let acc = 0;
        for (let j = 0; j < nk; j++) acc += s[j]! * v[(z * nk + j) * d + t]!;
        o[(z * nq + i) * d + t] = acc / sum;
      }
    }
  }
  return o;
}

/** Generic strided permutation of a contiguous array. */
export function refPermute(x: ArrayLike<number>, shape: number[], perm: number[]): Float64Array {
  const rank = shape.length;
  const strides = new Array<number>(rank);
  let acc = 1;
  for (let i = rank - 1; i >= 0; i--) {
    strides[i] = acc;
    acc *= shape[i]!;
  }
  const outShape = perm.map((p) => shape[p]!);
  const y = new Float64Array(x.length);
  const idx = new Array<number>(rank).fill(0);
  for (let o = 0; o < y.length; o++) {
    let src = 0;
    for (let d = 0; d < rank; d++) src += idx[d]! * strides[perm[d]!]!;
    y[o] = x[src]!;
    for (let d = rank - 1; d >= 0; d--) {
      if (++idx[d]! < outShape[d]!) break;
      idx[d] = 0;
    }
  }
  return y;
}

/** torch bicubic (align_corners=False, A=−0.75, border clamp) on one NCHW tensor. */
export function refBicubic(x: Float32Array, planes: number, h: number, w: number, oh: number, ow: number, sy = h / oh, sx = w / ow): Float64Array {
  const A = -0.75;
  const c1 = (t: number) => ((A + 2) * t - (A + 3)) * t * t + 1;
  const c2 = (t: number) => ((A * t - 5 * A) * t + 8 * A) * t - 4 * A;
  const wts = (t: number) => [c2(t + 1), c1(t), c1(1 - t), c2(2 - t)];
  const y = new Float64Array(planes * oh * ow);
  for (let p = 0; p < planes; p++)
    for (let oy = 0; oy < oh; oy++)
      for (let ox = 0; ox < ow; ox++) {
        const fy = sy * (oy + 0.5) - 0.5;
        const fx = sx * (ox + 0.5) - 0.5;
        const y0 = Math.floor(fy);
        const x0 = Math.floor(fx);
        const wy = wts(fy - y0);
        const wx = wts(fx - x0);
        let acc = 0;
        for (let r = 0; r < 4; r++) {
          const yy = Math.min(Math.max(y0 - 1 + r, 0), h - 1);
          for (let c = 0; c < 4; c++) {
            const xx = Math.min(Math.max(x0 - 1 + c, 0), w - 1);
            acc += x[(p * h + yy) * w + xx]! * wy[r]! * wx[c]!;
          }
        }
        y[(p * oh + oy) * ow + ox] = acc;
      }
  return y;
}

/** diffusers get_timestep_embedding in float64. */
export function refTimestepEmbedding(t: number[], dim: number, flip: boolean, shift: number, scale = 1, maxPeriod = 10000): Float64Array {
  const half = Math.floor(dim / 2);
  const y = new Float64Array(t.length * dim);
  for (let b = 0; b < t.length; b++) {
    for (let j = 0; j < half; j++) {
      const f = Math.exp((-Math.log(maxPeriod) * j) / (half - shift));
      const arg = scale * t[b]! * f;
      const s = Math.sin(arg);
      const c = Math.cos(arg);
      y[b * dim + j] = flip ? c : s;
      y[b * dim + half + j] = flip ? s : c;
    }
  }
  return y;
}
