// How the subgroup-matrix kernels spell the types and builtins of
// `chromium_experimental_subgroup_matrix`: natively (in the spelling the runtime probed), or
// emulated in plain WGSL with the same semantics so that the kernels' tiling, staging and epilogues
// are tested on adapters without the feature. Emulated, a left/right matrix is a reference to the
// f16 workgroup array and offset it was loaded from (the kernels never rewrite a staged tile
// between a load and the multiply that uses it) and a result matrix is spread over the SG
// invocations of an emulated subgroup (consecutive local invocation indices), element e in lane
// e % SG, as hardware spreads it over its lanes.

import type { SubgroupMatrixSupport } from '../gpu/runtime.js';

export interface MatrixOps {
  prelude: string;
  left: string;
  right: string;
  result: string;
  /** Extra entry-point parameters, and the statements defining `sg` (this invocation's subgroup). */
  entryArgs: string;
  setup: string;
  /** A left (M×K) matrix from f16 workgroup array `arr`, row-major with row stride `stride`. */
  loadLeft(arr: string, offset: string, stride: number): string;
  /** A right (K×N) matrix from `arr`: row-major, or column-major (`arr` holds rows of N-index). */
  loadRight(arr: string, offset: string, colMajor: boolean, stride: number): string;
  mma(left: string, right: string, acc: string): string;
  /** Row-major store of a result into f32 workgroup array `arr` (a statement). */
  store(arr: string, offset: string, value: string, stride: number): string;
}

/** `f16Arrays`: the f16 workgroup arrays the kernel loads matrices from (the emulation reads them). */
export function matrixOps(sm: SubgroupMatrixSupport, f16Arrays: readonly string[]): MatrixOps {
  return sm.syntax === 'emulated' ? emulatedOps(sm, f16Arrays) : nativeOps(sm);
}

function nativeOps(sm: SubgroupMatrixSupport): MatrixOps {
  const left = `subgroup_matrix_left<f16, ${sm.K}, ${sm.M}>`;
  const right = `subgroup_matrix_right<f16, ${sm.N}, ${sm.K}>`;
  const result = `subgroup_matrix_result<f32, ${sm.N}, ${sm.M}>`;
  const tmpl = sm.syntax === 'template';
  const ld = (type: string, arr: string, offset: string, colMajor: boolean, stride: number) =>
    tmpl
      ? `subgroupMatrixLoad<${type}, ${colMajor ? 'column_major' : 'row_major'}>(&${arr}, ${offset}, ${stride}u)`
      : `subgroupMatrixLoad<${type}>(&${arr}, ${offset}, ${colMajor}, ${stride}u)`;
  return {
    prelude: `enable f16;
enable subgroups;
enable chromium_experimental_subgroup_matrix;
diagnostic(off, chromium_experimental.subgroup_matrix_uniformity);`,
    left,
    right,
    result,
    entryArgs: ', @builtin(subgroup_id) sg: u32',
    setup: '',
    loadLeft: (arr, offset, stride) => ld(left, arr, offset, false, stride),
    loadRight: (arr, offset, colMajor, stride) => ld(right, arr, offset, colMajor, stride),
    mma: (l, r, acc) => `subgroupMatrixMultiplyAccumulate(${l}, ${r}, ${acc})`,
    store: (arr, offset, value, stride) => (tmpl ? `subgroupMatrixStore<row_major>(&${arr}, ${offset}, ${value}, ${stride}u)` : `subgroupMatrixStore(&${arr}, ${offset}, ${value}, false, ${stride}u)`),
  };
}

function emulatedOps(sm: SubgroupMatrixSupport, f16Arrays: readonly string[]): MatrixOps {
  const SG = sm.subgroupSize;
  const per = (sm.M * sm.N) / SG;
  if (!Number.isInteger(per) || per < 1) throw new Error(`emulated subgroup matrices: ${sm.M}×${sm.N} does not spread over ${SG} invocations`);
  const id = (arr: string) => {
    const i = f16Arrays.indexOf(arr);
    if (i < 0) throw new Error(`emulated subgroup matrices: ${arr} is not one of the kernel's f16 arrays (${f16Arrays.join(', ')})`);
    return i;
  };
  const cases = f16Arrays.map((a, i) => `    case ${i}u: { return f32(${a}[idx]); }`).join('\n');
  return {
    prelude: `enable f16;
struct EmuOperand { arr: u32, off: u32, stride: u32, col_major: bool }
struct EmuResult { v: array<f32, ${per}> }
var<private> emu_lane: u32;
fn emu_read(arr: u32, idx: u32) -> f32 {
  switch arr {
${cases}
    default: { return 0.0; }
  }
}
fn emu_mma(l: EmuOperand, r: EmuOperand, acc: EmuResult) -> EmuResult {
  var out = acc;
  for (var i = 0u; i < ${per}u; i++) {
    let e = emu_lane + i * ${SG}u;
    let row = e / ${sm.N}u;
    let col = e % ${sm.N}u;
    var s = out.v[i];
    for (var k = 0u; k < ${sm.K}u; k++) {
      let a = emu_read(l.arr, select(l.off + row * l.stride + k, l.off + k * l.stride + row, l.col_major));
      let b = emu_read(r.arr, select(r.off + k * r.stride + col, r.off + col * r.stride + k, r.col_major));
      s = fma(a, b, s);
    }
    out.v[i] = s;
  }
  return out;
}`,
    left: 'EmuOperand',
    right: 'EmuOperand',
    result: 'EmuResult',
    entryArgs: '',
    setup: `let sg = tid / ${SG}u;
  emu_lane = tid % ${SG}u;`,
    loadLeft: (arr, offset, stride) => `EmuOperand(${id(arr)}u, ${offset}, ${stride}u, false)`,
    loadRight: (arr, offset, colMajor, stride) => `EmuOperand(${id(arr)}u, ${offset}, ${stride}u, ${colMajor})`,
    mma: (l, r, acc) => `emu_mma(${l}, ${r}, ${acc})`,
    store: (arr, offset, value, stride) => {
      return `for (var emu_i = 0u; emu_i < ${per}u; emu_i++) {
      let emu_e = emu_lane + emu_i * ${SG}u;
      ${arr}[${offset} + (emu_e / ${sm.N}u) * ${stride}u + emu_e % ${sm.N}u] = ${value}.v[emu_i];
    }`;
    },
  };
}
