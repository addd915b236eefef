// Malformed safetensors files for the reader and CLI tests.

import { encodeSafetensors } from '../../src/io/safetensors.js';

export function header(json: string, dataBytes = 0, declaredLength?: bigint): Uint8Array {
  const h = new TextEncoder().encode(json);
  const out = new Uint8Array(8 + h.byteLength + dataBytes);
  new DataView(out.buffer).setBigUint64(0, declaredLength ?? BigInt(h.byteLength), true);
  out.set(h, 8);
  return out;
}

/** The malformed corpus: [file name, bytes, expected message]. */
export function malformedCorpus(): [string, Uint8Array, RegExp][] {
  const good = encodeSafetensors({ w: { dtype: 'F32', shape: [4], data: Float32Array.from([1, 2, 3, 4]) } });
  const two = (a: string, b: string, data: number) => header(`{"a":${a},"b":${b}}`, data);
  return [
    ['empty.safetensors', new Uint8Array(0), /empty file/],
    ['short.safetensors', new Uint8Array(5), /only 5 bytes/],
    ['truncated.safetensors', good.subarray(0, good.byteLength - 3), /out of range.*truncated/],
    ['header-past-end.safetensors', header('{}', 0, 4096n), /header length 4096 runs past the end of the file/],
    ['header-2p60.safetensors', header('{}', 0, 1n << 60n), /header length 1152921504606846976 exceeds/],
    ['not-json.safetensors', header('{"a": nope}'), /not valid JSON/],
    ['json-array.safetensors', header('[1,2]'), /not an object/],
    ['bad-utf8.safetensors', (() => { const h = header('{"a":1}'); h[10] = 0xff; return h; })(), /not valid UTF-8/],
    ['unknown-dtype.safetensors', header('{"w":{"dtype":"F8_E4M3","shape":[1],"data_offsets":[0,1]}}', 1), /tensor "w": unknown dtype "F8_E4M3"/],
    ['shape-size-mismatch.safetensors', header('{"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}', 8), /8 bytes in data_offsets \[0, 8\] but shape \[3\] × F32 needs 12/],
    ['overlap.safetensors', two('{"dtype":"F32","shape":[2],"data_offsets":[0,8]}', '{"dtype":"F32","shape":[2],"data_offsets":[4,12]}', 12), /overlap/],
    ['out-of-range.safetensors', header('{"w":{"dtype":"F32","shape":[2],"data_offsets":[100,108]}}', 8), /out of range/],
    ['end-before-begin.safetensors', header('{"w":{"dtype":"F32","shape":[0],"data_offsets":[8,4]}}', 8), /end before begin/],
    ['negative-shape.safetensors', header('{"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}', 4), /not a list of non-negative integers/],
    ['gap.safetensors', header('{"w":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}', 8), /belong to no tensor/],
    ['trailing.safetensors', header('{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}', 12), /after the last tensor/],
    ['metadata-number.safetensors', header('{"__metadata__":{"format":"pt","n":3}}'), /__metadata__\["n"\] is number, expected a string/],
    ['metadata-not-object.safetensors', header('{"__metadata__":"pt"}'), /__metadata__ must be an object/],
    ['entry-not-object.safetensors', header('{"w":5}'), /tensor "w": entry is not an object/],
    ['bad-offsets.safetensors', header('{"w":{"dtype":"F32","shape":[1],"data_offsets":[0]}}', 4), /data_offsets \[0\] is not \[begin, end\]/],
    ['dtype-inherited.safetensors', header('{"w":{"dtype":"constructor","shape":[1],"data_offsets":[0,4]}}', 4), /tensor "w": unknown dtype "constructor"/],
    ['deep-shape.safetensors', header(`{"w":{"dtype":"F32","shape":${'['.repeat(10_000)}${']'.repeat(10_000)},"data_offsets":[0,4]}}`, 4), /tensor "w": shape \[+…\]+ is not a list of non-negative integers/],
    ['huge-shape-list.safetensors', header(`{"w":{"dtype":"F32","shape":[${Array(200_000).fill(-1).join(',')}],"data_offsets":[0,4]}}`, 4), /tensor "w": shape \[-1, -1, .*…/],
  ];
}
