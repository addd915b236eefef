// Shared WGSL snippets and launcher helpers.

import { Params, ShapeError, type DType, type OutputSpec, type Runtime, type Tensor } from '../gpu/runtime.js';

export { Params };

/** erf in f32 from fdlibm's s_erff.c rational approximations (error about 1 ulp). */
export const WGSL_ERF = /* wgsl */ `
fn erf_f32(x: f32) -> f32 {
  let ax = abs(x);
  if (ax < 0.84375) {
    let z = x * x;
    let r = 1.2837916613e-01 + z * (-3.2504209876e-01 + z * (-2.8481749818e-02 + z * (-5.7702702470e-03 + z * -2.3763017452e-05)));
    let s = 1.0 + z * (3.9791721106e-01 + z * (6.5022252500e-02 + z * (5.0813062117e-03 + z * (1.3249473704e-04 + z * -3.9602282413e-06))));
    return x + x * (r / s);
  }
  if (ax < 1.25) {
    let s = ax - 1.0;
    let p = -2.3621185683e-03 + s * (4.1485610604e-01 + s * (-3.7220788002e-01 + s * (3.1834661961e-01 + s * (-1.1089469492e-01 + s * (3.5478305072e-02 + s * -2.1663755178e-03)))));
    let q = 1.0 + s * (1.0642088205e-01 + s * (5.4039794207e-01 + s * (7.1828655899e-02 + s * (1.2617121637e-01 + s * (1.3637083583e-02 + s * 1.1984500103e-02)))));
    let r = 8.4506291151e-01 + p / q;
    return select(-r, r, x >= 0.0);
  }
  if (ax >= 4.0) { return select(-1.0, 1.0, x >= 0.0); }
  let s = 1.0 / (ax * ax);
  var r: f32; var q: f32;
  if (ax < 2.857142857) {
    r = -9.8649440333e-03 + s * (-6.9385856390e-01 + s * (-1.0558626175e+01 + s * (-6.2375331879e+01 + s * (-1.6239666748e+02 + s * (-1.8460508728e+02 + s * (-8.1287437439e+01 + s * -9.8143291473e+00))))));
    q = 1.0 + s * (1.9651271820e+01 + s * (1.3765776062e+02 + s * (4.3456588745e+02 + s * (6.4538726807e+02 + s * (4.2900814819e+02 + s * (1.0863500214e+02 + s * (6.5702495575e+00 + s * -6.0424413532e-02)))))));
  } else {
    r = -9.8649431020e-03 + s * (-7.9928326607e-01 + s * (-1.7757955551e+01 + s * (-1.6063638306e+02 + s * (-6.3756646729e+02 + s * (-1.0250950928e+03 + s * -4.8351919556e+02)))));
    q = 1.0 + s * (3.0338060379e+01 + s * (3.2579251099e+02 + s * (1.5367296143e+03 + s * (3.1998581543e+03 + s * (2.5530502930e+03 + s * (4.7452853394e+02 + s * -2.2440952301e+01))))));
  }
  // erfc(ax) = exp(-ax^2 - 0.5625 + r/q) / ax, with ax^2 split so the first exp's argument is exact.
  let zb = bitcast<f32>(bitcast<u32>(ax) & 0xfffff000u);
  let e = exp(-zb * zb - 0.5625) * exp((zb - ax) * (zb + ax) + r / q);
  let erfc = e / ax;
  return select(erfc - 1.0, 1.0 - erfc, x >= 0.0);
}
`;

/** Activation functions by name; `act_<name>(x)`. */
/** gelu_tanh: the tanh approximation 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))) (torch's
 *  GELU(approximate='tanh'), DiT's MLP), computed as x·σ(2u), the same function without tanh's
 *  overflow for large |u|. */
export type Activation = 'none' | 'gelu' | 'gelu_tanh' | 'quick_gelu' | 'silu' | 'relu';
export const WGSL_ACTIVATIONS = /* wgsl */ `
${WGSL_ERF}
fn act_gelu(x: f32) -> f32 { return 0.5 * x * (1.0 + erf_f32(x * 0.70710678118654752)); }
fn act_gelu_tanh(x: f32) -> f32 { return x / (1.0 + exp(-1.5957691216057308 * (x + 0.044715 * x * x * x))); }
fn act_quick_gelu(x: f32) -> f32 { return x / (1.0 + exp(-1.702 * x)); }
fn act_silu(x: f32) -> f32 { return x / (1.0 + exp(-x)); }
// torch's ReLU keeps a NaN; WGSL's max may return the other operand: NaN is found by its bits.
fn act_relu(x: f32) -> f32 { if ((bitcast<u32>(x) & 0x7fffffffu) > 0x7f800000u) { return x; } return max(x, 0.0); }
fn act_none(x: f32) -> f32 { return x; }
`;

/** Linear invocation index for 1-D work laid out on a 2-D grid (see Runtime.grid). */
export const WGSL_LINEAR_ID = (workgroupSize: number) => /* wgsl */ `
fn linear_id(gid: vec3<u32>, nwg: vec3<u32>) -> u32 { return gid.x + gid.y * nwg.x * ${workgroupSize}u; }
`;

/** WGSL element type used to bind a tensor of `dtype` (f16 is stored as packed pairs in u32). */
export function storageType(dtype: DType): string {
  switch (dtype) {
    case 'f32':
      return 'f32';
    case 'f16':
      return 'u32';
    case 'i32':
      return 'i32';
    case 'u32':
      return 'u32';
  }
}

/** WGSL element type of an output binding of `dtype`. f16 tensors are written element by element
 *  as `f16` (WGSL's `enable f16`, i.e. the adapter's `shader-f16`), so no two invocations share a
 *  word; they are read anywhere as packed pairs (`storageType`), the same bytes. */
export function outputType(dtype: DType): string {
  return dtype === 'f16' ? 'f16' : storageType(dtype);
}

/** The f32 expression `expr` as a value for an output of `dtype`: f16 saturates to its finite
 *  range (±65504), since an out-of-range conversion is undefined in WGSL. */
export function storeValue(dtype: DType, expr: string): string {
  return dtype === 'f16' ? `f16(clamp(${expr}, -65504.0, 65504.0))` : expr;
}

/** The `enable f16;` directive a module needs when it writes any tensor of these dtypes (it must
 *  open the module). */
export function enableF16(...dtypes: readonly DType[]): string {
  return dtypes.includes('f16') ? 'enable f16;\n' : '';
}

/** Activations are f32 or f16; an op's result takes the dtype of its (first) activation input. */
export type ActivationDType = 'f32' | 'f16';

/** Checks that `t` is an f32 or f16 activation and returns its dtype; f16 activations are written
 *  as f16 elements, which needs the adapter's `shader-f16`. */
export function activationDtype(t: Tensor, what: string): ActivationDType {
  if (t.dtype === 'f32') return 'f32';
  if (t.dtype === 'f16') {
    if (!t.runtime.hasShaderF16) throw new TypeError(`${what}: f16 activations need the adapter's shader-f16 feature, which this adapter (${t.runtime.adapterInfo.description}) does not offer`);
    return 'f16';
  }
  throw new TypeError(`${what}: expected an f32 or f16 tensor, got ${t.dtype}`);
}

/** WGSL expression reading element `index` of buffer `name` as f32. */
export function loadF32(name: string, dtype: DType, index: string): string {
  if (dtype === 'f16') return `unpack2x16float(${name}[(${index}) >> 1u])[(${index}) & 1u]`;
  if (dtype === 'f32') return `${name}[${index}]`;
  return `f32(${name}[${index}])`;
}

export function assertFloat(t: Tensor, what: string, allowF16 = false): void {
  if (t.dtype !== 'f32' && !(allowF16 && t.dtype === 'f16')) {
    throw new TypeError(`${what}: expected an f32${allowF16 ? ' or f16' : ''} tensor, got ${t.dtype}`);
  }
}

export function assertShape(t: Tensor, shape: readonly number[], what: string): void {
  if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
    throw new ShapeError(`${what}: expected shape [${shape.join(', ')}], got [${t.shape.join(', ')}]`);
  }
}

export function shapeStr(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}

export function ceilDiv(a: number, b: number): number {
  return Math.floor((a + b - 1) / b);
}

/** The runtime of the first tensor, checking that all tensors share it. */
export function runtimeOf(...tensors: Tensor[]): Runtime {
  const rt = tensors[0]!.runtime;
  for (const t of tensors) if (t.runtime !== rt) throw new Error('tensors belong to different runtimes');
  return rt;
}

export const ELEMENTWISE_WG = 256;

export interface ElementwiseKernel {
  /** Uniform fields after the leading `n: u32` element count, WGSL syntax (`c: u32, scale: f32`). */
  fields?: string;
  /** Storage declarations for bindings 1…, read-only inputs first, then outputs. */
  bindings: string[];
  inputs: number;
  outputs: number;
  /** Helper functions placed before `main`. */
  prelude?: string;
  /** The module writes f16 elements (see `enableF16`). */
  f16?: boolean;
  /** Statements run for element `i` (already bounds-checked against `p.n`). */
  body: string;
}

/** One invocation per element over `n` elements on a 2-D grid: the shared skeleton of the
 *  elementwise and layout kernels. `build` runs once per `key`; `params` follows `n` in the
 *  uniform block. Returns the outputs (those given as shapes are allocated). */
export function runElementwise(
  rt: Runtime,
  key: string,
  build: () => ElementwiseKernel,
  n: number,
  params: Params,
  inputs: readonly Tensor[],
  outputs: readonly (Tensor | OutputSpec)[],
): Tensor[] {
  const kernel = rt.kernel(key, () => {
    const k = build();
    const code = /* wgsl */ `${k.f16 ? enableF16('f16') : ''}
struct P { n: u32, ${k.fields ?? ''} }
@group(0) @binding(0) var<uniform> p: P;
${k.bindings.map((b, i) => `@group(0) @binding(${i + 1}) ${b};`).join('\n')}
${k.prelude ?? ''}
${WGSL_LINEAR_ID(ELEMENTWISE_WG)}
@compute @workgroup_size(${ELEMENTWISE_WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = linear_id(gid, nwg);
  if (i >= p.n) { return; }
  ${k.body}
}`;
    return { code, inputs: k.inputs, outputs: k.outputs, uniforms: true };
  });
  return rt.run(kernel, { params: new Params().u32(n).append(params).build(), inputs, outputs, workgroups: rt.grid(ceilDiv(n, ELEMENTWISE_WG)) });
}
