// The one interface every model is loaded through: the files of a model, wherever they are (a
// local folder or file, the Hugging Face cache, a hub repo streamed into browser Cache Storage, a
// folder the user picked, bytes in memory). Loaders (models/load.ts) see relative paths with '/'
// and read bytes; nothing above this layer walks folders or builds file-system paths.

import { blobSource, type ByteSource } from './bytesource.js';
import { FileError } from './errors.js';
import { MAX_HEADER_BYTES, SafetensorsFile, ShardedSafetensors, type TensorSource } from './safetensors.js';

export interface ModelFiles {
  /** The folder path, file path or repo id: what messages name. */
  readonly name: string;
  /** The hub commit the files belong to, where known. */
  readonly commit?: string | undefined;
  /** Relative paths ('/'-separated) of the files offered. */
  readonly paths: readonly string[];
  /** The file the user named when a single file rather than a folder was given (a single-file
   *  checkpoint, an adapter file); `paths` then lists its folder too. */
  readonly entry?: string | undefined;
  /** A file for positioned reads of all of it (downloaded or read from a cache first where remote). */
  open(path: string): Promise<ByteSource>;
  /** A file for reading a few parts (a safetensors header) without fetching all of it, where the
   *  source can (HTTP Range requests); `open` otherwise. */
  peek?(path: string): Promise<ByteSource>;
}

/** `dir/name`, '' being the root. */
export function joinRel(dir: string, name: string): string {
  return dir ? `${dir}/${name}` : name;
}

/** The folder part of a relative path ('' at the root). */
export function dirOfRel(path: string): string {
  const i = path.lastIndexOf('/');
  return i < 0 ? '' : path.slice(0, i);
}

/** How a file of a model is named in messages. */
export function describe(files: ModelFiles, path: string): string {
  return files.name.endsWith(`/${path}`) || files.name === path ? files.name : `${files.name}/${path}`;
}

export function hasFile(files: ModelFiles, path: string): boolean {
  return files.paths.includes(path);
}

/** The paths directly in `dir` ('' the root), without the folder prefix. */
export function namesIn(files: ModelFiles, dir: string): string[] {
  const prefix = dir ? `${dir}/` : '';
  return files.paths.filter((p) => p.startsWith(prefix) && !p.slice(prefix.length).includes('/')).map((p) => p.slice(prefix.length));
}

function missing(files: ModelFiles, path: string, what: string): FileError {
  const list = files.paths.slice(0, 8).join(', ');
  return new FileError(describe(files, path), `no ${what} (the model ${files.name} has ${files.paths.length} files${files.paths.length ? `: ${list}${files.paths.length > 8 ? ', …' : ''}` : ''})`);
}

/** A whole small file (configs, vocabularies), refused above `maxBytes`. */
export async function readBytes(files: ModelFiles, path: string, what: string, maxBytes = MAX_HEADER_BYTES): Promise<Uint8Array> {
  if (!hasFile(files, path)) throw missing(files, path, what);
  const src = await files.open(path);
  try {
    if (src.size > maxBytes) throw new FileError(describe(files, path), `the ${what} is ${src.size} bytes, more than the ${maxBytes}-byte limit for it`);
    return await src.read(0, src.size);
  } finally {
    await src.close();
  }
}

export async function readText(files: ModelFiles, path: string, what: string): Promise<string> {
  const bytes = await readBytes(files, path, what);
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new FileError(describe(files, path), `the ${what} is not UTF-8 text`);
  }
}

/** A JSON object file; `what` names it in errors ("U-Net config"). */
export async function readJson<T>(files: ModelFiles, path: string, what: string): Promise<T> {
  const text = await readText(files, path, what);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new FileError(describe(files, path), `the ${what} is not valid JSON (${(e as Error).message})`);
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new FileError(describe(files, path), `the ${what} is not a JSON object`);
  return value as T;
}

export async function optionalJson<T>(files: ModelFiles, path: string, what: string): Promise<T | undefined> {
  return hasFile(files, path) ? readJson<T>(files, path, what) : undefined;
}

/** Which of a component folder's file names holds its weights: a shard index
 *  (`*.safetensors.index.json`, or a variant's `*.safetensors.index.fp16.json`) or the single
 *  `*.safetensors`, preferring the non-variant name; `undefined` when there is none. */
export function chooseWeights(names: readonly string[]): string | undefined {
  const byVariant = (a: string, b: string) => a.split('.').length - b.split('.').length || a.localeCompare(b);
  const index = names.filter((n) => /\.safetensors\.index(\.[^.]+)?\.json$/.test(n)).sort(byVariant);
  if (index.length) return index[0];
  return names.filter((n) => n.endsWith('.safetensors')).sort(byVariant)[0];
}

/** The weights file of a component folder ('' the root), as `chooseWeights` picks it. */
export function weightsPath(files: ModelFiles, dir: string, what: string): string {
  const chosen = chooseWeights(namesIn(files, dir));
  if (!chosen) {
    const others = namesIn(files, dir).filter((n) => /\.(bin|ckpt|pt|pth|onnx|msgpack|h5)$/.test(n));
    throw new FileError(describe(files, dir || '.'), `no .safetensors weights for the ${what}${others.length ? ` (found ${others.join(', ')}: only .safetensors is read; convert them first)` : ''}`);
  }
  return joinRel(dir, chosen);
}

/** Opens a weights file (a `.safetensors`, or a shard index and the shards beside it) as one tensor
 *  source. `headersOnly` reads through `peek` (a header needs a few kB of a remote file). */
export async function openWeights(files: ModelFiles, path: string, o: { headersOnly?: boolean } = {}): Promise<TensorSource> {
  const open = (p: string) => (o.headersOnly && files.peek ? files.peek(p) : files.open(p));
  const openOne = async (p: string) => {
    if (!hasFile(files, p)) throw missing(files, p, 'weights file');
    return SafetensorsFile.open(await open(p));
  };
  let src: TensorSource;
  if (!path.endsWith('.json')) src = await openOne(path);
  else {
    const bytes = await readBytes(files, path, 'shard index');
    const dir = dirOfRel(path);
    src = await ShardedSafetensors.fromIndex(describe(files, path), bytes, (shard) => openOne(joinRel(dir, shard)));
  }
  src.origin = { name: files.name, file: path };
  return src;
}

/** Runs `fn` on opened weights and closes them whatever happens. */
export async function withWeights<T>(files: ModelFiles, path: string, fn: (src: TensorSource) => Promise<T>, o: { headersOnly?: boolean } = {}): Promise<T> {
  const src = await openWeights(files, path, o);
  try {
    return await fn(src);
  } finally {
    await src.close();
  }
}

/** The files under `dir` as a model of their own (h94/IP-Adapter's `models/`, a pipeline's `tokenizer/`). */
export function subFiles(files: ModelFiles, dir: string): ModelFiles {
  if (!dir) return files;
  const prefix = `${dir}/`;
  const view: ModelFiles = {
    name: `${files.name}/${dir}`,
    commit: files.commit,
    paths: files.paths.filter((p) => p.startsWith(prefix)).map((p) => p.slice(prefix.length)),
    entry: files.entry?.startsWith(prefix) ? files.entry.slice(prefix.length) : undefined,
    open: (p) => files.open(prefix + p),
    ...(files.peek ? { peek: (p: string) => files.peek!(prefix + p) } : {}),
  };
  return view;
}

/** A model whose files are bytes in memory (tests, files built in a page). */
export class MemoryModelFiles implements ModelFiles {
  readonly paths: readonly string[];
  constructor(
    readonly name: string,
    private readonly files: ReadonlyMap<string, Uint8Array> | Readonly<Record<string, Uint8Array | string>>,
    readonly entry?: string,
    readonly commit?: string,
  ) {
    this.paths = (files instanceof Map ? [...files.keys()] : Object.keys(files)).sort();
    if (entry !== undefined && !this.paths.includes(entry)) throw new RangeError(`${name}: the entry ${entry} is not among its files`);
  }
  async open(path: string): Promise<ByteSource> {
    const v = this.files instanceof Map ? this.files.get(path) : Object.prototype.hasOwnProperty.call(this.files, path) ? (this.files as Record<string, Uint8Array | string>)[path] : undefined;
    if (v === undefined) throw missing(this, path, 'such file');
    return blobSource(typeof v === 'string' ? new TextEncoder().encode(v) : v, describe(this, path));
  }
}
