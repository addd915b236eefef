// An on-disk cache of one metric's embeddings of a folder's images, so that a later run (another
// query against the same gallery) embeds only what is new or changed.
//
// Layout (default root: <gallery>/.diffsim-cache):
//   <root>/CACHEDIR.TAG                                  backup tools skip the folder
//   <root>/<sha256(metric.key), 16 hex>/meta.json        { format, version, metric, key, settings }
//   <root>/<sha256(metric.key), 16 hex>/<role>/<sha256(source), 32 hex>.safetensors
// One folder per metric key, so a changed setting (another step, seed, size, model) finds no entry
// and re-embeds, while the old entries stay valid for that setting. An entry is `saveEmbedding`'s
// bytes (the metric, its key and the role are in the safetensors metadata and checked by
// `loadEmbedding`) with the image's identity added to the metadata: its source path, size and
// mtimeMs, and the sha256 of the tensor data (`dataSha256`), checked on every read: damaged data is
// a corrupt entry, never a wrong score. A changed file is noticed by its size or modification time, as make and rsync notice
// one (no content hash: a cached run reads no image); a file rewritten with the same size and
// mtime (e.g. `touch -r`) is not noticed, and `--no-cache` or deleting the folder is the remedy.
// The source path is the path relative to the gallery when the cache lies in it (moving or copying
// the gallery keeps the cache valid) and the absolute path when the cache is elsewhere (one cache
// folder can then serve several galleries without their relative paths colliding).
//
// Entries are written atomically (temp file + rename). An unreadable or corrupt entry is reported
// with one warning line and treated as missing, and the next `put` rewrites it; a failed write is
// reported once and the run goes on without caching.

import { createHash } from 'node:crypto';
import { readFile, stat, writeFile, mkdir } from 'node:fs/promises';
import { dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import type { ImageRole } from '../diffsim/embedding.js';
import type { Metric, MetricEmbedding } from '../diffsim/metric.js';
import { writeFileAtomic } from '../io/atomic.js';
import { blobSource } from '../io/bytesource.js';
import { SafetensorsFile } from '../io/safetensors.js';
import { CACHE_FOLDER } from './images.js';

const META_FORMAT = 'diffsim-embedding-cache';
const META_VERSION = '1';
const CACHEDIR_TAG = 'Signature: 8a477f597d28d172789f06886806bc55\n# This file is a cache directory tag created by diffsim (embeddings of the images of this gallery).\n# For information about cache directory tags, see https://bford.info/cachedir/\n';

const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');

export interface EmbeddingCacheOptions {
  /** The cache folder (default `<gallery>/.diffsim-cache`). */
  dir?: string;
  /** Where warnings go (default: one line on stderr each). */
  onWarning?: (message: string) => void;
}

/** What a cache did so far. */
export interface EmbeddingCacheStats {
  /** Valid entries found. */
  hits: number;
  /** No entry, or one for an older version of the file. */
  misses: number;
  /** Entries that could not be read or parsed (warned about, then treated as missing). */
  corrupt: number;
  /** Entries written. */
  writes: number;
}

/** The identity of a gallery file: what an entry must match to be used. */
interface Source {
  id: string;
  size: number;
  mtimeMs: number;
}

export class EmbeddingCache {
  readonly stats: EmbeddingCacheStats = { hits: 0, misses: 0, corrupt: 0, writes: 0 };
  /** `<root>/<key hash>`: this metric's entries. */
  readonly folder: string;
  private readonly inGallery: boolean;
  private writable = true;
  private metaWritten = false;

  private constructor(
    /** The gallery folder (absolute). */
    readonly gallery: string,
    /** The cache root. */
    readonly root: string,
    readonly metric: Metric,
    private readonly warn: (message: string) => void,
  ) {
    this.folder = join(root, sha256(metric.key).slice(0, 16));
    const rel = relative(gallery, root);
    this.inGallery = rel !== '' && !rel.startsWith('..') && !isAbsolute(rel);
  }

  /** A cache of `metric`'s embeddings of the images of `gallery`. Nothing is written until `put`. */
  static async open(gallery: string, metric: Metric, o: EmbeddingCacheOptions = {}): Promise<EmbeddingCache> {
    const g = resolve(gallery);
    const root = resolve(o.dir ?? join(g, CACHE_FOLDER));
    const warn = o.onWarning ?? ((m: string) => process.stderr.write(`diffsim: warning: ${m}\n`));
    return new EmbeddingCache(g, root, metric, warn);
  }

  /** The source path an image is known by: relative to the gallery for a cache inside it, absolute otherwise. */
  private sourceId(path: string): string {
    const abs = resolve(path);
    if (!this.inGallery) return abs;
    const rel = relative(this.gallery, abs);
    if (rel.startsWith('..') || isAbsolute(rel)) return abs;
    return rel.split(sep).join('/');
  }

  private async source(path: string): Promise<Source> {
    const st = await stat(path);
    return { id: this.sourceId(path), size: st.size, mtimeMs: st.mtimeMs };
  }

  /** The entry file of an image in a role. */
  entryPath(path: string, role: ImageRole): string {
    return join(this.folder, role, `${sha256(this.sourceId(path)).slice(0, 32)}.safetensors`);
  }

  /** The cached embedding of the image at `path` in `role`, if there is one for the file as it is now. */
  async get(path: string, role: ImageRole): Promise<MetricEmbedding | undefined> {
    const entry = this.entryPath(path, role);
    let bytes: Uint8Array;
    try {
      bytes = await readFile(entry);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      // No entry (ENOTDIR: a file stands where a folder of the path would be; writing reports it).
      if (code !== 'ENOENT' && code !== 'ENOTDIR') this.corrupt(entry, `cannot read it (${code ?? (e as Error).message})`);
      else this.stats.misses++;
      return undefined;
    }
    let src: Source;
    try {
      src = await this.source(path);
    } catch {
      // The image itself is unreadable: embedding it reports that.
      this.stats.misses++;
      return undefined;
    }
    let meta: Record<string, string>;
    try {
      const file = await SafetensorsFile.open(blobSource(bytes, entry));
      meta = file.metadata;
      await file.close();
    } catch (e) {
      this.corrupt(entry, (e as Error).message.replace(`${entry}: `, ''));
      return undefined;
    }
    // An entry without a digest (an older version's) is rewritten like a stale one.
    if (meta.source !== src.id || meta.sourceSize !== String(src.size) || meta.sourceMtimeMs !== String(src.mtimeMs) || meta.role !== role || meta.dataSha256 === undefined) {
      this.stats.misses++;
      return undefined;
    }
    const digest = dataDigest(bytes);
    if (meta.dataSha256 !== digest) {
      this.corrupt(entry, `its tensor data does not match its sha256 (${meta.dataSha256.slice(0, 12)}…, the data's ${digest.slice(0, 12)}…)`);
      return undefined;
    }
    try {
      const e = await this.metric.loadEmbedding(bytes, entry);
      if (e.role !== role) {
        e.dispose();
        throw new Error(`role ${e.role}, expected ${role}`);
      }
      this.stats.hits++;
      return e;
    } catch (e) {
      this.corrupt(entry, (e as Error).message.replace(`${entry}: `, ''));
      return undefined;
    }
  }

  /** Stores `embedding` as the embedding of the image at `path` in `role`. `file` is the file's
   *  size and mtimeMs when it was read for embedding (default: as it is now); pass it, stat'ed before
   *  reading, so that a file changed during the pass is not cached under its new identity. */
  async put(path: string, role: ImageRole, embedding: MetricEmbedding, file?: { size: number; mtimeMs: number }): Promise<void> {
    if (!this.writable) return;
    if (embedding.role !== role) throw new RangeError(`EmbeddingCache.put: the embedding has role ${embedding.role}, not ${role}`);
    try {
      const src = file ? { id: this.sourceId(path), size: file.size, mtimeMs: file.mtimeMs } : await this.source(path);
      const saved = await this.metric.saveEmbedding(embedding);
      const bytes = withMetadata(saved, { source: src.id, sourceSize: String(src.size), sourceMtimeMs: String(src.mtimeMs), dataSha256: dataDigest(saved) });
      await this.writeMeta();
      const entry = this.entryPath(path, role);
      await mkdir(dirname(entry), { recursive: true });
      await writeFileAtomic(entry, bytes);
      this.stats.writes++;
    } catch (e) {
      this.writable = false;
      this.warn(`${this.root}: cannot write the embedding cache (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}); going on without it`);
    }
  }

  private async writeMeta(): Promise<void> {
    if (this.metaWritten) return;
    const meta = { format: META_FORMAT, version: Number(META_VERSION), metric: this.metric.name, key: this.metric.key, settings: this.metric.settings };
    const path = join(this.folder, 'meta.json');
    const text = `${JSON.stringify(meta, null, 1)}\n`;
    const have = await readFile(path, 'utf8').catch(() => undefined);
    if (have !== text) {
      await mkdir(this.folder, { recursive: true });
      await writeFileAtomic(path, text);
    }
    await mkdir(this.root, { recursive: true });
    await writeFile(join(this.root, 'CACHEDIR.TAG'), CACHEDIR_TAG, { flag: 'wx' }).catch(() => undefined);
    this.metaWritten = true;
  }

  private corrupt(entry: string, why: string): void {
    this.stats.corrupt++;
    this.warn(`${entry}: ignoring a corrupt cache entry (${why}); it is re-embedded and rewritten`);
  }
}

/** The sha256 (hex) of a safetensors file's tensor data (what follows the header). */
export function dataDigest(bytes: Uint8Array): string {
  const n = Number(new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getBigUint64(0, true));
  return createHash('sha256').update(bytes.subarray(8 + n)).digest('hex');
}

/** Safetensors bytes with entries added to their `__metadata__` (tensor data untouched: its
 *  offsets are relative to the end of the header). */
export function withMetadata(bytes: Uint8Array, extra: Record<string, string>): Uint8Array {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = Number(view.getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n))) as Record<string, unknown>;
  header.__metadata__ = { ...((header.__metadata__ as Record<string, string> | undefined) ?? {}), ...extra };
  const enc = new TextEncoder();
  let json = JSON.stringify(header);
  const len = enc.encode(json).byteLength;
  json += ' '.repeat(Math.ceil(len / 8) * 8 - len);
  const jsonBytes = enc.encode(json);
  const data = bytes.subarray(8 + n);
  const out = new Uint8Array(8 + jsonBytes.byteLength + data.byteLength);
  new DataView(out.buffer).setBigUint64(0, BigInt(jsonBytes.byteLength), true);
  out.set(jsonBytes, 8);
  out.set(data, 8 + jsonBytes.byteLength);
  return out;
}
