// Model files from the Hugging Face hub in browsers: the repo's commit and file list from the
// revision API, the files a model needs (select.ts's rules, the fp16 variant where published),
// their sizes before anything is downloaded, then each file through its resolve URL
// (`{endpoint}/{repo}/resolve/{commit}/{path}`), streamed with progress and kept in Cache Storage
// under that URL, so a reload reads it back instead of downloading it again; parts of a file (a
// safetensors header) can be read by Range requests without downloading it. Files the user picks
// (a folder through `<input webkitdirectory>`) offer the same interface.

import { selectRepoFiles, type ModelSelection } from '../hub/select.js';
import { checkRelativePath, quoteValue } from '../io/relpath.js';
import { blobSource, type ByteSource } from '../io/bytesource.js';
import type { LoadEventCallback } from '../io/events.js';
import type { ModelFiles } from '../io/model-files.js';

export interface WebHubOptions {
  /** Hub endpoint (default https://huggingface.co). */
  endpoint?: string;
  /** Branch, tag or commit (default main). */
  revision?: string;
  /** Access token for gated or private repos. */
  token?: string;
  /** Cache Storage name (default `diffsim-hub`); `null` downloads without caching. */
  cacheName?: string | null;
  /** Load events of each file, as the Node hub cache emits them: `initiate`, then `done` (cached)
   *  or `download`, `progress`… and `done`. */
  onProgress?: LoadEventCallback;
  /** The fetch to use (default globalThis.fetch). */
  fetch?: typeof fetch;
}

/** A file the model needs, with its size and whether Cache Storage already holds it. */
export interface PlannedFile {
  path: string;
  size: number;
  cached: boolean;
}

export class WebHubError extends Error {
  constructor(
    readonly url: string,
    message: string,
  ) {
    super(`${url}: ${message}`);
    this.name = 'WebHubError';
  }
}

const DEFAULT_ENDPOINT = 'https://huggingface.co';

function trimEndpoint(e: string): string {
  return e.replace(/\/+$/, '');
}

function encodePath(path: string): string {
  return path.split('/').map(encodeURIComponent).join('/');
}

/** The weight variant published for a repo's files: fp16 where any weight file has it. */
function variantOf(paths: readonly string[]): string | undefined {
  return paths.some((p) => /\.fp16\.safetensors$|\.safetensors\.index\.fp16\.json$/.test(p)) ? 'fp16' : undefined;
}

/** A hub repo at one commit: its needed files with their sizes, downloaded on demand and cached. */
export class HubModelFiles implements ModelFiles {
  private constructor(
    readonly name: string,
    readonly commit: string,
    readonly files: readonly PlannedFile[],
    private readonly endpoint: string,
    private readonly o: WebHubOptions,
  ) {}

  get paths(): readonly string[] {
    return this.files.map((f) => f.path);
  }

  /** Bytes of all the needed files. */
  get totalBytes(): number {
    return this.files.reduce((a, f) => a + f.size, 0);
  }

  /** Bytes still to download (the files Cache Storage does not hold). */
  get downloadBytes(): number {
    return this.files.filter((f) => !f.cached).reduce((a, f) => a + f.size, 0);
  }

  /** The resolve URL of a file at this commit (also its Cache Storage key). */
  url(path: string): string {
    return `${this.endpoint}/${this.name}/resolve/${this.commit}/${encodePath(path)}`;
  }

  /** Resolves `revision` to a commit, lists the repo (with sizes), and keeps the files `selection`
   *  asks for (default: every folder's configs and weights; the fp16 variant where published). */
  static async open(repo: string, selection: ModelSelection = {}, o: WebHubOptions = {}): Promise<HubModelFiles> {
    const endpoint = trimEndpoint(o.endpoint ?? DEFAULT_ENDPOINT);
    const revision = o.revision ?? 'main';
    const doFetch = o.fetch ?? globalThis.fetch.bind(globalThis);
    const headers: Record<string, string> = o.token ? { authorization: `Bearer ${o.token}` } : {};
    const api = `${endpoint}/api/models/${repo}/revision/${encodeURIComponent(revision)}?blobs=true`;
    let res: Response;
    try {
      res = await doFetch(api, { headers });
    } catch (e) {
      throw new WebHubError(api, `cannot reach the hub (${(e as Error).message}; is the endpoint right, and does it allow this page's origin?)`);
    }
    if (!res.ok) {
      const code = res.headers.get('x-error-code');
      const why = res.status === 401 || code === 'RepoNotFound' ? 'no such repo, or it is private (a token is needed)' : res.status === 403 || code === 'GatedRepo' ? 'the repo is gated: accept its terms on the hub and give a token' : code === 'RevisionNotFound' ? `no revision ${JSON.stringify(revision)}` : `HTTP ${res.status}`;
      throw new WebHubError(api, why);
    }
    const info = (await res.json()) as { sha?: unknown; siblings?: { rfilename?: unknown; size?: number; lfs?: { size?: number } }[] };
    if (typeof info.sha !== 'string' || !/^[0-9a-f]{40}$/.test(info.sha)) throw new WebHubError(api, 'the answer has no commit sha');
    const siblings = Array.isArray(info.siblings) ? info.siblings : [];
    // Each name becomes a resolve URL and a Cache Storage key: checked before any is used.
    for (const s of siblings) {
      const r = typeof s?.rfilename === 'string' ? checkRelativePath(s.rfilename) : { problem: 'it is not a string' };
      const problem = 'problem' in r ? r.problem : r.path !== s.rfilename ? "it has empty or '.' segments" : undefined;
      if (problem !== undefined) throw new WebHubError(api, `the "siblings" entry ${quoteValue(s?.rfilename)} is not a relative file path inside the repository (${problem})`);
    }
    const names = siblings.map((s) => s.rfilename as string);
    const variant = selection.variant ?? variantOf(names);
    const wanted = selectRepoFiles(names, { ...selection, ...(variant ? { variant } : {}) });
    if (!wanted.length) throw new WebHubError(api, `none of the repo's ${names.length} files is a config or safetensors weights of the selected folders`);
    const sizeOf = new Map(siblings.map((s) => [s.rfilename as string, s.lfs?.size ?? s.size]));
    const partial = new HubModelFiles(repo, info.sha, [], endpoint, o);
    const cache = await openCache(o.cacheName);
    const files: PlannedFile[] = [];
    for (const path of wanted) {
      let size = sizeOf.get(path);
      const cached = cache ? (await cache.match(partial.url(path))) !== undefined : false;
      if (size === undefined) size = await headSize(doFetch, partial.url(path), headers);
      files.push({ path, size, cached });
    }
    return new HubModelFiles(repo, info.sha, files, endpoint, o);
  }

  private fileOf(path: string): PlannedFile {
    const f = this.files.find((x) => x.path === path);
    if (!f) throw new WebHubError(this.url(path), `not among the files selected from ${this.name} (${this.paths.join(', ')})`);
    return f;
  }

  private headers(extra: Record<string, string> = {}): Record<string, string> {
    return this.o.token ? { authorization: `Bearer ${this.o.token}`, ...extra } : extra;
  }

  /** The whole file (downloaded into Cache Storage on first use). */
  async open(path: string): Promise<ByteSource> {
    return blobSource(await this.blob(path), `${this.name}/${path}`);
  }

  /** Range reads of the file: from Cache Storage when it holds it, else over HTTP; nothing is kept. */
  async peek(path: string): Promise<ByteSource> {
    const f = this.fileOf(path);
    const url = this.url(path);
    const name = `${this.name}/${path}`;
    const cache = await openCache(this.o.cacheName);
    const hit = cache ? await cache.match(url) : undefined;
    if (hit) {
      const blob = await hit.blob();
      if (blob.size === f.size) return blobSource(blob, name);
    }
    const doFetch = this.o.fetch ?? globalThis.fetch.bind(globalThis);
    return {
      name,
      size: f.size,
      read: (offset, length) => readRange(doFetch, url, this.headers(), offset, length, f.size),
      close: async () => {},
    };
  }

  async blob(path: string): Promise<Blob> {
    const f = this.fileOf(path);
    const url = this.url(path);
    const emit = this.o.onProgress;
    const name = this.name;
    emit?.({ status: 'initiate', name, file: path });
    const cache = await openCache(this.o.cacheName);
    const hit = cache ? await cache.match(url) : undefined;
    if (hit) {
      const blob = await hit.blob();
      if (blob.size === f.size) {
        emit?.({ status: 'done', name, file: path, total: f.size, cached: true });
        return blob;
      }
      await cache!.delete(url);
    }
    const doFetch = this.o.fetch ?? globalThis.fetch.bind(globalThis);
    let res: Response;
    try {
      res = await doFetch(url, { headers: this.headers() });
    } catch (e) {
      throw new WebHubError(url, `download failed (${(e as Error).message})`);
    }
    if (!res.ok || !res.body) throw new WebHubError(url, `download failed (HTTP ${res.status})`);
    emit?.({ status: 'download', name, file: path });
    let loaded = 0;
    const started = Date.now();
    const counted = res.body.pipeThrough(
      new TransformStream<Uint8Array, Uint8Array>({
        transform(chunk, controller) {
          loaded += chunk.byteLength;
          if (emit) {
            const elapsed = (Date.now() - started) / 1000;
            const rate = elapsed > 0 ? loaded / elapsed : 0;
            emit({ status: 'progress', name, file: path, loaded, total: f.size, progress: f.size ? (100 * loaded) / f.size : 100, rate, ...(rate > 0 ? { eta: Math.max(0, f.size - loaded) / rate } : {}), elapsed });
          }
          controller.enqueue(chunk);
        },
      }),
    );
    let blob: Blob;
    if (cache) {
      // Streamed into the cache and read back: the bytes are not held twice.
      await cache.put(url, new Response(counted, { headers: { 'content-type': 'application/octet-stream' } }));
      blob = await (await cache.match(url))!.blob();
    } else blob = await new Response(counted).blob();
    if (blob.size !== f.size) {
      await cache?.delete(url);
      throw new WebHubError(url, `got ${blob.size} bytes, the hub lists ${f.size} (interrupted download?)`);
    }
    f.cached = cache !== null;
    emit?.({ status: 'done', name, file: path, total: f.size, elapsed: (Date.now() - started) / 1000 });
    return blob;
  }
}

async function openCache(name: string | null | undefined): Promise<Cache | null> {
  if (name === null) return null;
  const caches = (globalThis as { caches?: CacheStorage }).caches;
  if (!caches) return null; // not a secure context (http other than localhost)
  return caches.open(name ?? 'diffsim-hub');
}

/** `length` bytes at `offset` of a file by a Range request; a server that ignores Range (200 with
 *  the whole body) is read only as far as needed, then the rest of the body is cancelled. */
async function readRange(doFetch: typeof fetch, url: string, headers: Record<string, string>, offset: number, length: number, size: number): Promise<Uint8Array> {
  if (offset < 0 || length < 0 || offset + length > size) throw new WebHubError(url, `read of ${length} bytes at ${offset} is past the end of the file (${size} bytes)`);
  if (length === 0) return new Uint8Array(0);
  let res: Response;
  try {
    res = await doFetch(url, { headers: { ...headers, range: `bytes=${offset}-${offset + length - 1}` } });
  } catch (e) {
    throw new WebHubError(url, `range request failed (${(e as Error).message})`);
  }
  if ((res.status !== 206 && res.status !== 200) || !res.body) throw new WebHubError(url, `range request failed (HTTP ${res.status})`);
  const skip = res.status === 206 ? 0 : offset;
  const out = new Uint8Array(length);
  let seen = 0;
  let got = 0;
  const reader = res.body.getReader();
  try {
    while (got < length) {
      const { done, value } = await reader.read();
      if (done) break;
      const from = Math.max(0, skip - seen);
      seen += value.byteLength;
      if (from >= value.byteLength) continue;
      const part = value.subarray(from, from + (length - got));
      out.set(part, got);
      got += part.byteLength;
    }
  } finally {
    await reader.cancel().catch(() => {});
  }
  if (got < length) throw new WebHubError(url, `range request gave ${got} of ${length} bytes at ${offset}`);
  return out;
}

/** A file's size from a HEAD of its resolve URL: X-Linked-Size (LFS) or Content-Length. */
async function headSize(doFetch: typeof fetch, url: string, headers: Record<string, string>): Promise<number> {
  const res = await doFetch(url, { method: 'HEAD', headers });
  if (!res.ok) throw new WebHubError(url, `HEAD failed (HTTP ${res.status})`);
  const v = res.headers.get('x-linked-size') ?? res.headers.get('content-length');
  const n = v === null ? NaN : Number(v);
  if (!Number.isFinite(n)) throw new WebHubError(url, 'the hub gave no size (X-Linked-Size or Content-Length)');
  return n;
}

/** What `<input webkitdirectory>` or a drop gives: files with their path below the picked folder. */
export interface PickedFile {
  /** `folder/sub/file` (webkitRelativePath) or a path relative to the model root. */
  readonly path: string;
  readonly file: Blob;
}

/** Files the user picked as one model folder: paths are taken relative to the picked folder (its
 *  first path segment is dropped when every path shares it). */
export class PickedModelFiles implements ModelFiles {
  readonly commit = undefined;
  private readonly byPath: Map<string, Blob>;
  constructor(
    readonly name: string,
    files: readonly PickedFile[],
    private readonly onProgress?: LoadEventCallback,
  ) {
    const first = new Set(files.map((f) => f.path.split('/')[0]));
    const strip = first.size === 1 && files.every((f) => f.path.includes('/'));
    this.byPath = new Map(files.map((f) => [strip ? f.path.slice(f.path.indexOf('/') + 1) : f.path, f.file]));
  }
  get paths(): readonly string[] {
    return [...this.byPath.keys()].sort();
  }
  async open(path: string): Promise<ByteSource> {
    return blobSource(await this.blob(path), `${this.name}/${path}`);
  }
  async peek(path: string): Promise<ByteSource> {
    const b = this.byPath.get(path);
    if (!b) throw new Error(`${this.name}: the picked folder has no ${path}`);
    return blobSource(b, `${this.name}/${path}`);
  }
  async blob(path: string): Promise<Blob> {
    const b = this.byPath.get(path);
    if (!b) throw new Error(`${this.name}: the picked folder has no ${path}`);
    this.onProgress?.({ status: 'initiate', name: this.name, file: path });
    this.onProgress?.({ status: 'done', name: this.name, file: path, total: b.size, cached: true });
    return b;
  }
}
