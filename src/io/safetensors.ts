// safetensors, read lazily and validated.
//
// Layout: u64 little-endian header length N, N bytes of UTF-8 JSON
// `{name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {str: str}}`, then the data
// block; offsets are relative to the start of the data block. Tensors are read one at a time with
// positioned reads.

import type { LoadOrigin } from './events.js';
import { FileError } from './errors.js';
import { bf16ArrayToF32, f16ArrayToF32 } from '../platform/half.js';
import { openFile, type ByteSource } from './bytesource.js';
import { dirnameOf, joinPath } from '../platform/host.js';
import { checkRelativePath, quoteValue } from './relpath.js';

export const SAFETENSORS_DTYPES = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U8: 1,
  BOOL: 1,
} as const;
export type SafetensorsDType = keyof typeof SAFETENSORS_DTYPES;

/** Header size bound, as in the reference implementation (100 MB). */
export const MAX_HEADER_BYTES = 100_000_000;

export class SafetensorsError extends FileError {
  override name = 'SafetensorsError';
}

export interface TensorInfo {
  name: string;
  dtype: SafetensorsDType;
  shape: number[];
  /** Absolute byte range in the file. */
  begin: number;
  end: number;
}

export interface RawTensor {
  dtype: SafetensorsDType;
  shape: number[];
  bytes: Uint8Array;
}

/** The read side shared by single files and sharded checkpoints. */
export interface TensorSource {
  readonly name: string;
  /** The model files and path it was opened from (set by `openWeights`): how load events name it. */
  origin?: LoadOrigin;
  readonly metadata: Readonly<Record<string, string>>;
  names(): string[];
  has(name: string): boolean;
  info(name: string): TensorInfo;
  /** Raw little-endian bytes of one tensor. */
  readRaw(name: string): Promise<RawTensor>;
  /** One tensor as float32 (F32 as is; F16/BF16/F64 and integer types converted). */
  readFloat32(name: string): Promise<{ shape: number[]; data: Float32Array }>;
  close(): Promise<void>;
}

/** A short JSON rendering of a parsed JSON value for messages: bounded in length and depth (a
 *  10,000-deep array must not overflow the stack, a million-element one must not fill the line). */
export function preview(value: unknown, max = 60): string {
  let out = '';
  const walk = (v: unknown, depth: number): void => {
    if (out.length > max) return;
    if (Array.isArray(v)) {
      if (depth >= 4) {
        out += '[…]';
        return;
      }
      out += '[';
      for (let i = 0; i < v.length && out.length <= max; i++) {
        if (i) out += ', ';
        walk(v[i], depth + 1);
      }
      out += ']';
    } else if (v !== null && typeof v === 'object') {
      if (depth >= 4) {
        out += '{…}';
        return;
      }
      out += '{';
      let first = true;
      for (const k in v) {
        if (!Object.prototype.hasOwnProperty.call(v, k)) continue;
        if (out.length > max) break;
        out += `${first ? '' : ', '}${JSON.stringify(k.length > max ? `${k.slice(0, max)}…` : k)}: `;
        first = false;
        walk((v as Record<string, unknown>)[k], depth + 1);
      }
      out += '}';
    } else if (typeof v === 'string') out += JSON.stringify(v.length > max ? `${v.slice(0, max)}…` : v);
    else out += String(v);
  };
  walk(value, 0);
  return out.length > max ? `${out.slice(0, max)}…` : out;
}

/** obj[key] = value as an own property, also for keys such as "__proto__". */
export function setOwn<T>(obj: Record<string, T>, key: string, value: T): void {
  Object.defineProperty(obj, key, { value, writable: true, enumerable: true, configurable: true });
}

/** A tensor or key name quoted for a message, shortened when very long. */
function q(name: string): string {
  return JSON.stringify(name.length > 200 ? `${name.slice(0, 200)}…` : name);
}

function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** Parses and validates a header; `fileSize` bounds every byte range. */
export function parseHeader(file: string, headerBytes: Uint8Array, fileSize: number): { tensors: Map<string, TensorInfo>; metadata: Record<string, string> } {
  const headerLength = headerBytes.byteLength;
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(headerBytes);
  } catch {
    throw new SafetensorsError(file, 'header is not valid UTF-8');
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new SafetensorsError(file, `header is not valid JSON (${(e as Error).message})`);
  }
  if (json === null || typeof json !== 'object' || Array.isArray(json)) {
    throw new SafetensorsError(file, 'header JSON is not an object');
  }
  const dataStart = 8 + headerLength;
  const dataSize = fileSize - dataStart;
  const tensors = new Map<string, TensorInfo>();
  let metadata: Record<string, string> = {};
  for (const [name, value] of Object.entries(json as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (value === null || typeof value !== 'object' || Array.isArray(value)) {
        throw new SafetensorsError(file, '__metadata__ must be an object of strings');
      }
      for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
        if (typeof v !== 'string') {
          throw new SafetensorsError(file, `__metadata__[${q(k)}] is ${v === null ? 'null' : Array.isArray(v) ? 'an array' : typeof v}, expected a string`);
        }
      }
      metadata = value as Record<string, string>; // JSON.parse made every key an own property, "__proto__" too
      continue;
    }
    if (value === null || typeof value !== 'object' || Array.isArray(value)) {
      throw new SafetensorsError(file, `tensor ${q(name)}: entry is not an object`);
    }
    const entry = value as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (typeof entry.dtype !== 'string' || !Object.prototype.hasOwnProperty.call(SAFETENSORS_DTYPES, entry.dtype)) {
      throw new SafetensorsError(
        file,
        `tensor ${q(name)}: unknown dtype ${preview(entry.dtype)} (expected one of ${Object.keys(SAFETENSORS_DTYPES).join(' ')})`,
      );
    }
    const dtype = entry.dtype as SafetensorsDType;
    if (!Array.isArray(entry.shape) || !entry.shape.every((d) => Number.isSafeInteger(d) && (d as number) >= 0)) {
      throw new SafetensorsError(file, `tensor ${q(name)}: shape ${preview(entry.shape)} is not a list of non-negative integers`);
    }
    const shape = entry.shape as number[];
    const offsets = entry.data_offsets;
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((o) => Number.isSafeInteger(o) && (o as number) >= 0)) {
      throw new SafetensorsError(file, `tensor ${q(name)}: data_offsets ${preview(offsets)} is not [begin, end] with non-negative integers`);
    }
    const [begin, end] = offsets as [number, number];
    if (end < begin) throw new SafetensorsError(file, `tensor ${q(name)}: data_offsets [${begin}, ${end}] end before begin`);
    if (end > dataSize) {
      throw new SafetensorsError(file, `tensor ${q(name)}: data_offsets [${begin}, ${end}] out of range, the data block has ${Math.max(0, dataSize)} bytes (file truncated?)`);
    }
    const expected = numel(shape) * SAFETENSORS_DTYPES[dtype];
    if (end - begin !== expected) {
      throw new SafetensorsError(
        file,
        `tensor ${q(name)}: ${end - begin} bytes in data_offsets [${begin}, ${end}] but shape ${preview(shape)} × ${dtype} needs ${expected}`,
      );
    }
    tensors.set(name, { name, dtype, shape, begin: dataStart + begin, end: dataStart + end });
  }
  // No two tensors may share bytes, and (as in the reference implementation) the data block must
  // be covered exactly, without gaps or trailing bytes.
  const sorted = [...tensors.values()].filter((t) => t.end > t.begin).sort((a, b) => a.begin - b.begin);
  let cursor = dataStart;
  for (const t of sorted) {
    if (t.begin < cursor) {
      const prev = sorted[sorted.indexOf(t) - 1]!;
      throw new SafetensorsError(file, `tensors ${q(prev.name)} and ${q(t.name)} overlap (byte ranges [${prev.begin - dataStart}, ${prev.end - dataStart}] and [${t.begin - dataStart}, ${t.end - dataStart}])`);
    }
    if (t.begin > cursor) {
      throw new SafetensorsError(file, `bytes [${cursor - dataStart}, ${t.begin - dataStart}) of the data block belong to no tensor`);
    }
    cursor = t.end;
  }
  if (cursor !== fileSize) {
    throw new SafetensorsError(file, `${fileSize - cursor} bytes after the last tensor belong to no tensor (data block is ${dataSize} bytes, tensors cover ${cursor - dataStart})`);
  }
  return { tensors, metadata };
}

export class SafetensorsFile implements TensorSource {
  origin?: LoadOrigin;
  private constructor(
    private readonly source: ByteSource,
    private readonly tensors: Map<string, TensorInfo>,
    readonly metadata: Readonly<Record<string, string>>,
    readonly headerLength: number,
  ) {}

  get name(): string {
    return this.source.name;
  }
  get size(): number {
    return this.source.size;
  }

  /** Opens a file path (Node/Deno) or a ByteSource, reading and validating only the header. */
  static async open(pathOrSource: string | ByteSource): Promise<SafetensorsFile> {
    const source = typeof pathOrSource === 'string' ? await openFile(pathOrSource) : pathOrSource;
    try {
      const name = source.name;
      if (source.size < 8) {
        throw new SafetensorsError(name, source.size === 0 ? 'empty file (expected an 8-byte header length)' : `only ${source.size} bytes, shorter than the 8-byte header length`);
      }
      const lengthBytes = await source.read(0, 8);
      const length = new DataView(lengthBytes.buffer, lengthBytes.byteOffset, 8).getBigUint64(0, true);
      if (length > BigInt(MAX_HEADER_BYTES)) {
        throw new SafetensorsError(name, `header length ${length} exceeds the ${MAX_HEADER_BYTES}-byte limit (not a safetensors file?)`);
      }
      const headerLength = Number(length);
      if (8 + headerLength > source.size) {
        throw new SafetensorsError(name, `header length ${headerLength} runs past the end of the file (${source.size} bytes)`);
      }
      if (headerLength < 2) throw new SafetensorsError(name, `header length ${headerLength} is too small for a JSON object`);
      const headerBytes = await source.read(8, headerLength);
      const { tensors, metadata } = parseHeader(name, headerBytes, source.size);
      return new SafetensorsFile(source, tensors, metadata, headerLength);
    } catch (e) {
      await source.close();
      throw e;
    }
  }

  names(): string[] {
    return [...this.tensors.keys()];
  }
  has(name: string): boolean {
    return this.tensors.has(name);
  }
  info(name: string): TensorInfo {
    const t = this.tensors.get(name);
    if (!t) throw new SafetensorsError(this.name, `no tensor named ${q(name)}`);
    return t;
  }
  entries(): TensorInfo[] {
    return [...this.tensors.values()];
  }
  /** Total number of elements over all tensors. */
  parameterCount(): number {
    let n = 0;
    for (const t of this.tensors.values()) n += numel(t.shape);
    return n;
  }

  async readRaw(name: string): Promise<RawTensor> {
    const t = this.info(name);
    const bytes = await this.source.read(t.begin, t.end - t.begin);
    return { dtype: t.dtype, shape: [...t.shape], bytes };
  }

  async readFloat32(name: string): Promise<{ shape: number[]; data: Float32Array }> {
    const raw = await this.readRaw(name);
    return { shape: raw.shape, data: rawToFloat32(raw) };
  }

  close(): Promise<void> {
    return this.source.close();
  }
}

/** Converts raw tensor bytes to float32 (copying into an aligned buffer when needed). */
export function rawToFloat32(raw: RawTensor): Float32Array {
  const n = numel(raw.shape);
  const aligned = (size: number): ArrayBuffer => {
    const b = raw.bytes;
    if (b.byteOffset === 0 && b.byteLength === b.buffer.byteLength) return b.buffer as ArrayBuffer; // a fresh read: no copy
    if (b.byteOffset % size === 0) return b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer;
    return b.slice().buffer as ArrayBuffer;
  };
  switch (raw.dtype) {
    case 'F32':
      return new Float32Array(aligned(4), 0, n);
    case 'F16':
      return f16ArrayToF32(new Uint16Array(aligned(2), 0, n));
    case 'BF16':
      return bf16ArrayToF32(new Uint16Array(aligned(2), 0, n));
    case 'F64':
      return Float32Array.from(new Float64Array(aligned(8), 0, n));
    case 'I64': {
      const v = new BigInt64Array(aligned(8), 0, n);
      const out = new Float32Array(n);
      for (let i = 0; i < n; i++) out[i] = Number(v[i]);
      return out;
    }
    case 'I32':
      return Float32Array.from(new Int32Array(aligned(4), 0, n));
    case 'I16':
      return Float32Array.from(new Int16Array(aligned(2), 0, n));
    case 'I8':
      return Float32Array.from(new Int8Array(aligned(1), 0, n));
    case 'U8':
    case 'BOOL':
      return Float32Array.from(raw.bytes.subarray(0, n));
  }
}

/** Integer tensors (I64/I32/I16/I8/U8/BOOL) as Int32Array; I64 values must fit in 32 bits. */
export function rawToInt32(raw: RawTensor, tensorName = 'tensor'): Int32Array {
  const n = numel(raw.shape);
  const b = raw.bytes.slice();
  switch (raw.dtype) {
    case 'I32':
      return new Int32Array(b.buffer, 0, n);
    case 'I64': {
      const v = new BigInt64Array(b.buffer, 0, n);
      const out = new Int32Array(n);
      for (let i = 0; i < n; i++) {
        const x = v[i]!;
        if (x > 2147483647n || x < -2147483648n) throw new RangeError(`${tensorName}: I64 value ${x} does not fit in int32`);
        out[i] = Number(x);
      }
      return out;
    }
    case 'I16':
      return Int32Array.from(new Int16Array(b.buffer, 0, n));
    case 'I8':
      return Int32Array.from(new Int8Array(b.buffer, 0, n));
    case 'U8':
    case 'BOOL':
      return Int32Array.from(b.subarray(0, n));
    default:
      throw new TypeError(`${tensorName}: ${raw.dtype} is not an integer dtype`);
  }
}

/** A checkpoint split over several files, described by `*.safetensors.index.json`. */
export class ShardedSafetensors implements TensorSource {
  origin?: LoadOrigin;
  private constructor(
    readonly name: string,
    private readonly shards: Map<string, SafetensorsFile>,
    private readonly weightMap: Map<string, string>,
    readonly metadata: Readonly<Record<string, string>>,
  ) {}

  /** Opens a `*.safetensors.index.json` and the shards it names, beside it. */
  static async open(indexPath: string): Promise<ShardedSafetensors> {
    const source = await openFile(indexPath);
    let bytes: Uint8Array;
    try {
      if (source.size > MAX_HEADER_BYTES) throw new SafetensorsError(indexPath, `shard index of ${source.size} bytes exceeds the ${MAX_HEADER_BYTES}-byte limit`);
      bytes = await source.read(0, source.size);
    } finally {
      await source.close();
    }
    const dir = dirnameOf(indexPath);
    return ShardedSafetensors.fromIndex(indexPath, bytes, (file) => SafetensorsFile.open(joinPath(dir, file)));
  }

  /** A checkpoint from the bytes of its shard index (`indexName` names it in errors) and a way to
   *  open each shard by the file name in `weight_map` (a file beside it, a download, a Blob). */
  static async fromIndex(indexName: string, indexBytes: Uint8Array, openShard: (file: string) => Promise<SafetensorsFile>): Promise<ShardedSafetensors> {
    const indexPath = indexName;
    let index: unknown;
    try {
      if (indexBytes.byteLength > MAX_HEADER_BYTES) throw new SafetensorsError(indexPath, `shard index of ${indexBytes.byteLength} bytes exceeds the ${MAX_HEADER_BYTES}-byte limit`);
      index = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(indexBytes));
    } catch (e) {
      if (e instanceof SafetensorsError) throw e;
      throw new SafetensorsError(indexPath, `cannot read the shard index (${(e as Error).message})`);
    }
    if (index === null || typeof index !== 'object' || Array.isArray(index)) throw new SafetensorsError(indexPath, 'shard index is not a JSON object');
    // Metadata, when present: an object of strings (numbers such as total_size are kept as text).
    const rawMeta = Object.prototype.hasOwnProperty.call(index, 'metadata') ? (index as { metadata: unknown }).metadata : {};
    if (rawMeta === null || typeof rawMeta !== 'object' || Array.isArray(rawMeta)) {
      throw new SafetensorsError(indexPath, `shard index "metadata" must be an object of strings, not ${rawMeta === null ? 'null' : Array.isArray(rawMeta) ? 'an array' : typeof rawMeta}`);
    }
    const metadata: Record<string, string> = {};
    for (const [k, v] of Object.entries(rawMeta as Record<string, unknown>)) {
      if (typeof v === 'string') setOwn(metadata, k, v);
      else if (typeof v === 'number' && Number.isFinite(v)) setOwn(metadata, k, String(v));
      else throw new SafetensorsError(indexPath, `shard index metadata[${q(k)}] is ${v === null ? 'null' : Array.isArray(v) ? 'an array' : typeof v}, expected a string`);
    }
    const weightMap = (index as { weight_map?: unknown }).weight_map;
    if (!weightMap || typeof weightMap !== 'object' || Array.isArray(weightMap)) {
      throw new SafetensorsError(indexPath, 'shard index has no "weight_map" object');
    }
    const map = new Map<string, string>();
    for (const [k, v] of Object.entries(weightMap as Record<string, unknown>)) {
      // The shard name becomes a path beside the index: checked before anything is opened.
      const r = typeof v === 'string' ? checkRelativePath(v) : { problem: `it is ${v === null ? 'null' : Array.isArray(v) ? 'an array' : typeof v}, not a string` };
      if ('problem' in r) throw new SafetensorsError(indexPath, `weight_map[${q(k)}] = ${quoteValue(v)} is not a shard file name in this folder (${r.problem})`);
      map.set(k, r.path);
    }
    const shards = new Map<string, SafetensorsFile>();
    try {
      for (const file of new Set(map.values())) shards.set(file, await openShard(file));
    } catch (e) {
      for (const s of shards.values()) await s.close();
      throw e;
    }
    for (const [k, file] of map) {
      if (!shards.get(file)!.has(k)) {
        for (const s of shards.values()) await s.close();
        throw new SafetensorsError(indexPath, `weight_map says ${q(k)} is in ${file}, which has no such tensor`);
      }
    }
    return new ShardedSafetensors(indexPath, shards, map, metadata);
  }

  names(): string[] {
    return [...this.weightMap.keys()];
  }
  has(name: string): boolean {
    return this.weightMap.has(name);
  }
  private shard(name: string): SafetensorsFile {
    const file = this.weightMap.get(name);
    if (!file) throw new SafetensorsError(this.name, `no tensor named ${q(name)}`);
    return this.shards.get(file)!;
  }
  info(name: string): TensorInfo {
    return this.shard(name).info(name);
  }
  readRaw(name: string): Promise<RawTensor> {
    return this.shard(name).readRaw(name);
  }
  readFloat32(name: string): Promise<{ shape: number[]; data: Float32Array }> {
    return this.shard(name).readFloat32(name);
  }
  async close(): Promise<void> {
    for (const s of this.shards.values()) await s.close();
  }
}

/** Opens a `.safetensors` file or a `*.safetensors.index.json` shard index. */
export async function openSafetensors(path: string): Promise<TensorSource & { parameterCount?: () => number }> {
  if (path.endsWith('.json')) return ShardedSafetensors.open(path);
  return SafetensorsFile.open(path);
}

export interface TensorToWrite {
  dtype: SafetensorsDType;
  shape: readonly number[];
  /** Little-endian bytes (a typed array's bytes). */
  data: ArrayBufferView;
}

/** Serialises tensors to safetensors bytes (largest dtype first, then by name, so offsets stay
 *  aligned to the element size). */
export function encodeSafetensors(tensors: Record<string, TensorToWrite>, metadata?: Record<string, string>): Uint8Array {
  const names = Object.keys(tensors).sort((a, b) => SAFETENSORS_DTYPES[tensors[b]!.dtype] - SAFETENSORS_DTYPES[tensors[a]!.dtype] || (a < b ? -1 : a > b ? 1 : 0));
  const header: Record<string, unknown> = {};
  if (metadata) {
    const meta: Record<string, string> = {};
    for (const [k, v] of Object.entries(metadata)) setOwn(meta, k, v);
    header.__metadata__ = meta;
  }
  let offset = 0;
  for (const name of names) {
    const t = tensors[name]!;
    const size = numel(t.shape) * SAFETENSORS_DTYPES[t.dtype];
    if (t.data.byteLength !== size) throw new Error(`encodeSafetensors: tensor "${name}" has ${t.data.byteLength} bytes, shape [${t.shape.join(', ')}] × ${t.dtype} needs ${size}`);
    setOwn(header, name, { dtype: t.dtype, shape: [...t.shape], data_offsets: [offset, offset + size] });
    offset += size;
  }
  let json = JSON.stringify(header);
  const enc = new TextEncoder();
  let jsonBytes = enc.encode(json);
  const padded = Math.ceil(jsonBytes.byteLength / 8) * 8;
  json += ' '.repeat(padded - jsonBytes.byteLength);
  jsonBytes = enc.encode(json);
  const out = new Uint8Array(8 + jsonBytes.byteLength + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(jsonBytes.byteLength), true);
  out.set(jsonBytes, 8);
  let pos = 8 + jsonBytes.byteLength;
  for (const name of names) {
    const d = tensors[name]!.data;
    out.set(new Uint8Array(d.buffer, d.byteOffset, d.byteLength), pos);
    pos += d.byteLength;
  }
  return out;
}
