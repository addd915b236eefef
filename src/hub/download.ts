// One file into the cache (huggingface_hub's `hf_hub_download` without `local_dir`): metadata from
// the HEAD, the blob written to `blobs/<etag>.incomplete` (resumed with a Range request), checked
// (size; sha256 for LFS files), synced and renamed into place under the lock, then pointed at from
// `snapshots/<commit>/<path>`. Offline, or when the hub cannot be reached, the cache answers alone.

import { createHash, type Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { LoadEventCallback } from '../io/events.js';
import { quoteValue } from '../io/relpath.js';
import { blobPath, createCacheDirTag, isFile, linkBlob, noExistPath, pointerPath, readRef, repoCacheDir, writeNoExist, writeRef, type TreeEntry } from './cache.js';
import { HubError, isHubError } from './errors.js';
import { authHeaders, describeCause, fileMetadata, httpError, hubFetch, type FileMetadata } from './http.js';
import { acquireLock } from './lock.js';
import { COMMIT_HASH, repoFolderName, repoUrlName, SHA256, validateRepoPath, validateRepoType, validateRevision, type RepoType } from './paths.js';
import { hubSettings, type HubOptions, type HubSettings } from './settings.js';

/** Options of the download functions. */
export interface DownloadOptions extends HubOptions {
  /** `model` (default) or `dataset`: which kind of repo `repoId` names (huggingface_hub's `repo_type`). */
  repoType?: RepoType;
  /** Branch, tag or commit hash (default `main`). */
  revision?: string;
  /** Load events of each file (`initiate`, `download`, `progress`, `done`; `wait` on another
   *  process's lock). Nothing is printed without it. */
  onProgress?: LoadEventCallback;
  /** Times a broken transfer is resumed (Range request) before giving up (default 5; a transfer
   *  that made progress gets its count back). The `.incomplete` file stays for a later call. */
  retries?: number;
  /** Pause before a resume, in ms (default 1000). */
  retryDelayMs?: number;
  /** A blob lock not refreshed for this long is taken over (default 60 000 ms). */
  lockStaleMs?: number;
}

/** What the internal steps share for one call. */
export interface CallContext {
  settings: HubSettings;
  repoType: RepoType;
  progress: LoadEventCallback | undefined;
  retries: number;
  retryDelayMs: number;
  lockStaleMs: number;
}

export function callContext(o: DownloadOptions): CallContext {
  const repoType = o.repoType ?? 'model';
  validateRepoType(repoType);
  return {
    settings: hubSettings(o),
    repoType,
    progress: o.onProgress,
    retries: o.retries ?? 5,
    retryDelayMs: o.retryDelayMs ?? 1000,
    lockStaleMs: o.lockStaleMs ?? 60_000,
  };
}

const ACCESS_CODES = new Set(['repo-not-found', 'gated']);

/** The error for "not usable from the cache, and the hub cannot be asked": the access error itself
 *  when the hub refused (missing or gated repo), else one line naming what is missing and the fix. */
export function notCachedError(ctx: CallContext, repoId: string, what: string, cause: HubError | undefined, o: { path?: string; plural?: boolean; code?: 'incomplete' } = {}): HubError {
  const s = ctx.settings;
  if (cause && ACCESS_CODES.has(cause.code)) return cause;
  const is = o.plural ? 'are' : 'is';
  const name = repoUrlName(repoId, ctx.repoType);
  if (s.offline || !cause) {
    return new HubError(o.code ?? 'offline', `${name}: ${what} ${is} not in the Hugging Face cache (${s.cacheDir}) and offline mode is on (HF_HUB_OFFLINE=1); set HF_HUB_OFFLINE=0 to download, or pass a local folder`, { repoId, path: o.path });
  }
  const reason = cause.code === 'network' ? `${s.endpoint} cannot be reached (${describeCause(cause.cause)})` : `the hub answered: ${cause.message.startsWith(`${name}: `) ? cause.message.slice(name.length + 2) : cause.message}`;
  // A refused answer (a hostile or broken hub: a path for an ETag, a redirect loop) stays a
  // `protocol` error; anything else that kept the hub from answering is a `network` one.
  const code = o.code ?? (cause.code === 'protocol' ? 'protocol' : 'network');
  return new HubError(code, `${name}: ${what} ${is} not in the Hugging Face cache (${s.cacheDir}) and ${reason}; ${code === 'protocol' ? 'check HF_ENDPOINT and any proxy in between' : 'check the connection or HF_ENDPOINT'}, or pass a local folder`, { repoId, path: o.path, status: cause.status, cause });
}

/** What a transfer writes a blob's pieces to (a `node:fs/promises` FileHandle), described here so
 *  the package's declarations need no Node types. */
export interface BlobHandle {
  write(chunk: Uint8Array): Promise<unknown>;
}

/** How a transfer writes each piece of a blob: the one place bytes go to disk, replaced by tests to
 *  simulate a full disk. */
export const blobWriter = {
  write: (fh: BlobHandle, chunk: Uint8Array): Promise<unknown> => fh.write(chunk),
};

/** System errors that mean the cache cannot take the file: no retry helps, the user must act. */
const NO_ROOM: Readonly<Record<string, string>> = { ENOSPC: 'no space left', EDQUOT: 'disk quota exceeded', EROFS: 'read-only file system' };

function errnoCode(e: unknown): string | undefined {
  const c = (e as { code?: unknown } | null)?.code;
  return typeof c === 'string' && /^E[A-Z0-9]+$/.test(c) ? c : undefined;
}

/** The `filesystem` HubError for a system error while writing `file` into the cache (the disk is
 *  full, over quota, read-only, or another errno); `undefined` when `e` is not a system error. */
function storageError(ctx: CallContext, repoId: string, path: string, e: unknown, file: string, partialDeleted: boolean): HubError | undefined {
  const code = errnoCode(e);
  if (!code) return undefined;
  const name = repoUrlName(repoId, ctx.repoType);
  const dir = ctx.settings.cacheDir;
  const reason = NO_ROOM[code];
  if (reason) {
    const fix = code === 'EROFS' ? 'set HF_HUB_CACHE to a writable folder, or HF_HUB_OFFLINE=1 to use only what is cached' : 'free space there, or set HF_HUB_CACHE to a folder on a larger disk';
    return new HubError('filesystem', `${name}: cannot download "${path}": ${reason} in ${dir} (${code} on ${file})${partialDeleted ? '; the partial download was deleted' : ''}; ${fix}`, { repoId, path, cause: e });
  }
  const msg = e instanceof Error && e.message.startsWith(code) ? e.message : `${code} on ${file}`;
  return new HubError('filesystem', `${name}: cannot write "${path}" into the cache ${dir} (${msg})`, { repoId, path, cause: e });
}

/** A system error met while writing into the cache, kept apart from network failures so that the
 *  retry loop of a transfer does not take a full disk for a broken connection. */
class StorageFailure extends Error {
  constructor(readonly error: unknown) {
    super('storage failure');
  }
}

async function hashFile(path: string, hash: Hash): Promise<void> {
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
}

function contentRangeStart(h: string | null): number | undefined {
  const m = h ? /^bytes (\d+)-/.exec(h) : null;
  return m ? Number(m[1]) : undefined;
}

/** What a transfer did, for its `done` event. */
interface Transferred {
  total: number;
  elapsed: number;
  resumedFrom: number;
}

/** Downloads `meta.location` into `incomplete` (appending to what is there), verifies it and renames
 *  it to `blob`. */
async function transfer(ctx: CallContext, repoId: string, path: string, meta: FileMetadata, incomplete: string, blob: string): Promise<Transferred> {
  const s = ctx.settings;
  const name = repoUrlName(repoId, ctx.repoType);
  const subject = { repoId, repoType: ctx.repoType, revision: meta.commit, path };
  const verify = SHA256.test(meta.etag);
  const fh = await open(incomplete, 'a+');
  let closed = false;
  try {
    let size = (await fh.stat()).size;
    if (size > meta.size) {
      await fh.truncate(0);
      size = 0;
    }
    let hash = createHash('sha256');
    if (verify && size > 0) await hashFile(incomplete, hash);
    const resumedFrom = size;
    const started = Date.now();
    let received = 0;
    const emit = ctx.progress;
    emit?.({ status: 'download', name, file: path });
    // Authorization goes to the hub, not to a CDN on another host (as huggingface_hub drops it).
    const sameHost = new URL(meta.location).host === new URL(s.endpoint).host;
    let left = ctx.retries;
    while (size < meta.size) {
      const headers: Record<string, string> = { ...authHeaders(s), 'accept-encoding': 'identity' };
      if (!sameHost) delete headers.authorization;
      if (size > 0) headers.range = `bytes=${size}-`;
      const abort = new AbortController();
      let idle: ReturnType<typeof setTimeout> | undefined;
      const arm = (): void => {
        clearTimeout(idle);
        idle = setTimeout(() => abort.abort(new Error(`no data for ${s.downloadTimeout} s`)), s.downloadTimeout * 1000);
      };
      const before = size;
      try {
        arm();
        const res = await hubFetch(meta.location, { headers, redirect: 'follow', signal: abort.signal }, s, subject);
        if (res.status === 416 && size > 0) {
          await res.body?.cancel();
          await fh.truncate(0);
          size = 0;
          hash = createHash('sha256');
          continue;
        }
        if (!res.ok) {
          await res.body?.cancel();
          throw httpError(res, s, subject);
        }
        if (size > 0 && (res.status !== 206 || contentRangeStart(res.headers.get('content-range')) !== size)) {
          // The server ignored the Range (or answered another one): start again from byte 0.
          await fh.truncate(0);
          size = 0;
          hash = createHash('sha256');
        }
        if (!res.body) throw new HubError('protocol', `${name}: empty answer for "${path}"`, { repoId, path });
        for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
          arm();
          if (size + chunk.byteLength > meta.size) {
            throw new HubError('checksum', `${name}: "${path}" is larger than the ${meta.size} bytes the hub announced`, { repoId, path });
          }
          try {
            await blobWriter.write(fh, chunk);
          } catch (e) {
            throw new StorageFailure(e);
          }
          if (verify) hash.update(chunk);
          size += chunk.byteLength;
          received += chunk.byteLength;
          if (emit) {
            const elapsed = (Date.now() - started) / 1000;
            const rate = elapsed > 0 ? received / elapsed : 0;
            emit({ status: 'progress', name, file: path, loaded: size, total: meta.size, progress: meta.size ? (100 * size) / meta.size : 100, rate, ...(rate > 0 ? { eta: (meta.size - size) / rate } : {}), elapsed, resumedFrom });
          }
        }
        if (size < meta.size) throw new Error(`the answer ended at ${size} of ${meta.size} bytes`);
      } catch (e) {
        if (e instanceof StorageFailure) throw e.error;
        if (isHubError(e) && e.code === 'checksum') await rm(incomplete, { force: true });
        if (isHubError(e) && e.code !== 'network') throw e;
        if (size > before) left = ctx.retries;
        if (left-- <= 0) {
          const why = isHubError(e) ? describeCause(e.cause) : describeCause(e);
          throw new HubError('network', `${name}: the download of "${path}" broke off at ${size} of ${meta.size} bytes (${why}); run again to resume it`, { repoId, path, cause: e });
        }
        await new Promise((r) => setTimeout(r, ctx.retryDelayMs));
      } finally {
        clearTimeout(idle);
      }
    }
    await fh.sync();
    await fh.close();
    closed = true;
    const got = (await stat(incomplete)).size;
    if (got !== meta.size) {
      await rm(incomplete, { force: true });
      throw new HubError('checksum', `${name}: "${path}" has ${got} bytes, the hub announced ${meta.size}; the partial file was deleted, run again`, { repoId, path });
    }
    if (verify) {
      const digest = hash.digest('hex');
      if (digest !== meta.etag) {
        await rm(incomplete, { force: true });
        throw new HubError('checksum', `${name}: "${path}" failed its sha256 check (got ${digest}, expected ${meta.etag}); the download was deleted, run again`, { repoId, path });
      }
    }
    await rename(incomplete, blob);
    return { total: meta.size, elapsed: (Date.now() - started) / 1000, resumedFrom };
  } finally {
    if (!closed) await fh.close().catch(() => undefined);
  }
}

/** Puts the blob of `meta` in the cache (unless there) and the snapshot pointer to it; says what
 *  was transferred (nothing when the blob was there).
 *
 *  A system error on the way (the disk full while the blob is written, a read-only cache) is one
 *  `filesystem` HubError at once, never retried as a broken connection. On ENOSPC, EDQUOT and
 *  EROFS the `.incomplete` file is deleted (best effort), under the lock: it holds the space that
 *  ran out, and keeping it for a resume would keep the disk full; huggingface_hub likewise keeps no
 *  partial file after a failed write (its temporary file is unlinked on any failure). A broken
 *  connection keeps it, to be resumed by a Range request. */
async function fetchIntoCache(ctx: CallContext, repoId: string, path: string, revision: string, meta: FileMetadata): Promise<{ pointer: string; transferred?: Transferred }> {
  const s = ctx.settings;
  const storage = repoCacheDir(repoId, s.cacheDir, ctx.repoType);
  const pointer = pointerPath(storage, meta.commit, path);
  if (await isFile(pointer)) {
    await writeRef(storage, revision, meta.commit).catch(() => undefined);
    return { pointer };
  }
  const blob = blobPath(storage, meta.etag);
  const incomplete = `${blob}.incomplete`;
  const failed = (e: unknown, deleted = false): unknown => {
    if (isHubError(e)) return e;
    const file = typeof (e as { path?: unknown } | null)?.path === 'string' ? (e as { path: string }).path : incomplete;
    return storageError(ctx, repoId, path, e, file, deleted) ?? e;
  };
  let release: () => Promise<void>;
  try {
    await mkdir(join(storage, 'blobs'), { recursive: true });
    await createCacheDirTag(s.cacheDir);
    await writeRef(storage, revision, meta.commit);
    const lock = join(s.cacheDir, '.locks', repoFolderName(repoId, ctx.repoType), `${meta.etag}.lock`);
    release = await acquireLock(lock, {
      staleMs: ctx.lockStaleMs,
      onWait: () => ctx.progress?.({ status: 'wait', name: repoUrlName(repoId, ctx.repoType), file: path, lock }),
    });
  } catch (e) {
    throw failed(e);
  }
  let transferred: Transferred | undefined;
  try {
    if (!(await isFile(blob))) transferred = await transfer(ctx, repoId, path, meta, incomplete, blob);
    if (!(await isFile(pointer))) await linkBlob(blob, pointer, { newBlob: transferred !== undefined, disableSymlinks: s.disableSymlinks });
  } catch (e) {
    const code = isHubError(e) ? undefined : errnoCode(e);
    const deleted = code !== undefined && code in NO_ROOM && (await isFile(incomplete)) && (await rm(incomplete, { force: true }).then(() => true, () => false));
    throw failed(e, deleted);
  } finally {
    await release();
  }
  return transferred ? { pointer, transferred } : { pointer };
}

/** The file from the cache, for when the hub cannot be asked; `undefined` when not there. */
async function fromCache(storage: string, revision: string, path: string): Promise<{ pointer?: string; noExist: boolean }> {
  const commit = await readRef(storage, revision);
  if (!commit) return { noExist: false };
  const pointer = pointerPath(storage, commit, path);
  if (await isFile(pointer)) return { pointer, noExist: false };
  return { noExist: await isFile(noExistPath(storage, commit, path)) };
}

/** The local path of `path` of repo `repoId` (a model; a dataset with `repoType: 'dataset'`) at
 *  `revision`, downloading it into the Hugging Face cache when needed (huggingface_hub's
 *  `hf_hub_download`).
 *
 *  A commit-hash revision whose file is cached costs no request; a branch or tag costs one HEAD, as
 *  in huggingface_hub, to learn the commit it points at now. Offline (`HF_HUB_OFFLINE`, `offline`),
 *  or when the hub cannot be reached or refuses access, the cached file is returned (through
 *  `refs/<revision>`); with nothing cached the call fails with one line saying what to do. */
export async function resolveModelFile(repoId: string, path: string, options: DownloadOptions = {}): Promise<string> {
  return downloadFile(callContext(options), repoId, path, options.revision ?? 'main');
}

/** The file as {@link resolveModelFile} gives it, with its `initiate` and `done` events (`done`
 *  only once the snapshot pointer is in place). */
export async function downloadFile(ctx: CallContext, repoId: string, path: string, revision: string, listed?: TreeEntry): Promise<string> {
  validateRepoPath(repoId, path);
  validateRevision(repoId, revision);
  const name = repoUrlName(repoId, ctx.repoType);
  const emit = ctx.progress;
  emit?.({ status: 'initiate', name, file: path });
  const { pointer, size, transferred } = await locateFile(ctx, repoId, path, revision, listed);
  if (emit) {
    if (transferred) emit({ status: 'done', name, file: path, ...transferred });
    else emit({ status: 'done', name, file: path, ...(size !== undefined ? { total: size } : {}), cached: true });
  }
  return pointer;
}

async function locateFile(ctx: CallContext, repoId: string, path: string, revision: string, listed: TreeEntry | undefined): Promise<{ pointer: string; size?: number; transferred?: Transferred }> {
  const s = ctx.settings;
  const name = repoUrlName(repoId, ctx.repoType);
  const storage = repoCacheDir(repoId, s.cacheDir, ctx.repoType);
  if (COMMIT_HASH.test(revision)) {
    const pointer = pointerPath(storage, revision, path);
    if (await isFile(pointer)) return { pointer };
    if (await isFile(noExistPath(storage, revision, path))) {
      throw new HubError('entry-not-found', `${name}: no file "${path}" at revision "${revision}" (known from the cache)`, { repoId, path });
    }
  }
  let meta: FileMetadata | undefined;
  let failure: HubError | undefined;
  if (!s.offline) {
    try {
      meta = await fileMetadata(s, { repoId, repoType: ctx.repoType, revision, path });
    } catch (e) {
      if (!isHubError(e)) throw e;
      if (e.code === 'entry-not-found') {
        const commit = e.commit;
        if (commit && COMMIT_HASH.test(commit)) {
          await writeNoExist(storage, commit, path);
          await writeRef(storage, revision, commit).catch(() => undefined);
        }
        throw e;
      }
      if (e.code === 'revision-not-found') throw e;
      failure = e;
    }
  }
  if (!meta) {
    const cached = await fromCache(storage, revision, path);
    if (cached.pointer) return { pointer: cached.pointer };
    if (cached.noExist) throw new HubError('entry-not-found', `${name}: no file "${path}" at revision "${revision}" (known from the cache)`, { repoId, path });
    throw notCachedError(ctx, repoId, `"${path}"${revision === 'main' ? '' : ` at revision "${revision}"`}`, failure, { path });
  }
  if (listed?.lfs_sha256 !== undefined && meta.etag !== listed.lfs_sha256) {
    // The listing says LFS: the ETag must be that sha256, or the download could not be checked.
    throw new HubError('protocol', `${name}: the HEAD for "${path}" at ${meta.commit} gave the ETag ${quoteValue(meta.etag)}, but the tree listing gives the file's LFS sha256 as "${listed.lfs_sha256}"; the file is not downloaded`, { repoId, path });
  }
  return { ...(await fetchIntoCache(ctx, repoId, path, revision, meta)), size: meta.size };
}
