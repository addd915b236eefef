// A whole repo, or the part of it a selection asks for, into the cache (huggingface_hub's
// `snapshot_download`): the revision resolved to a commit, the commit's file list (cached in
// `trees/<commit>.json`), then every wanted file through the same path as a single download.

import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { isDirectory, listSnapshot, readRef, readTreeCache, repoCacheDir, writeRef, writeTreeCache, type TreeEntry } from './cache.js';
import { callContext, downloadFile, notCachedError, type CallContext, type DownloadOptions } from './download.js';
import { HubError, isHubError } from './errors.js';
import { listTree, repoInfo } from './http.js';
import { COMMIT_HASH, filterRepoPaths, repoUrlName, validateRepoId, validateRevision, type Patterns } from './paths.js';
import { isSafetensorsIndex, selectRepoFiles, shardsOf, type FileSelection } from './select.js';

/** Options of {@link snapshotDownload}. */
export interface SnapshotOptions extends DownloadOptions {
  /** Only files matching one of these globs (`*` crosses `/`; `dir/` means the folder). */
  allowPatterns?: Patterns;
  /** No file matching one of these globs. */
  ignorePatterns?: Patterns;
  /** The model-aware selection (components, fp16 variant, safetensors only) applied after the patterns. */
  select?: FileSelection;
  /** Files downloaded at once (default 4). */
  concurrency?: number;
}

function wanted(files: readonly string[], o: SnapshotOptions): string[] {
  const filtered = filterRepoPaths(files, o.allowPatterns, o.ignorePatterns);
  return o.select ? selectRepoFiles(filtered, o.select) : filtered.sort();
}

async function pool<T>(items: readonly T[], n: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  let failed: unknown;
  const worker = async (): Promise<void> => {
    while (next < items.length && failed === undefined) {
      const item = items[next++]!;
      try {
        await fn(item);
      } catch (e) {
        failed ??= e;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(n, items.length)) }, worker));
  if (failed !== undefined) throw failed;
}

async function readIndex(path: string, repoId: string, name: string, repoPath: string): Promise<unknown> {
  try {
    return JSON.parse(await readFile(path, 'utf8'));
  } catch (e) {
    throw new HubError('protocol', `${name}: "${repoPath}" is not a readable safetensors index (${(e as Error).message})`, { repoId, path: repoPath });
  }
}

/** The cached snapshot folder, checked against the selection, for when the hub cannot be asked. */
async function cachedSnapshot(ctx: CallContext, repoId: string, revision: string, o: SnapshotOptions, failure: HubError | undefined): Promise<string> {
  const storage = repoCacheDir(repoId, ctx.settings.cacheDir, ctx.repoType);
  const commit = await readRef(storage, revision);
  const folder = commit ? join(storage, 'snapshots', commit) : undefined;
  const at = revision === 'main' ? '' : ` at revision "${revision}"`;
  if (!commit || !folder || !(await isDirectory(folder))) throw notCachedError(ctx, repoId, `the snapshot${at}`, failure);
  const tree = await readTreeCache(storage, commit);
  const present = await listSnapshot(folder);
  const expected = new Set(wanted(tree ? [...tree.keys()] : present, o));
  // Names the selection requires even without a file list: exact includes, and shards of indexes.
  for (const inc of o.select?.include ?? []) if (!/[*?[]/.test(inc)) expected.add(inc);
  for (const p of [...expected]) {
    if (isSafetensorsIndex(p) && present.includes(p)) for (const sh of shardsOf(p, await readIndex(join(folder, ...p.split('/')), repoId, repoUrlName(repoId, ctx.repoType), p))) expected.add(sh);
  }
  const have = new Set(present);
  const missing = [...expected].filter((p) => !have.has(p)).sort();
  if (missing.length) {
    const list = missing.slice(0, 3).map((m) => `"${m}"`).join(', ') + (missing.length > 3 ? ` and ${missing.length - 3} more` : '');
    throw notCachedError(ctx, repoId, `${list}${at}`, failure, { path: missing[0], plural: missing.length > 1, code: 'incomplete' });
  }
  return folder;
}

/** The local snapshot folder of repo `repoId` (a model; a dataset with `repoType: 'dataset'`) at a
 *  revision, with the wanted files downloaded into the Hugging Face cache (huggingface_hub's
 *  `snapshot_download`).
 *
 *  A branch or tag costs one request (the commit it points at now); the file list of a commit is
 *  fetched once and kept in `trees/<commit>.json`; cached files cost nothing. Offline, or when the
 *  hub cannot be reached, the cached snapshot is returned if it holds every wanted file. */
export async function snapshotDownload(repoId: string, options: SnapshotOptions = {}): Promise<string> {
  validateRepoId(repoId);
  const revision = options.revision ?? 'main';
  validateRevision(repoId, revision);
  const ctx = callContext(options);
  const s = ctx.settings;
  const { repoType } = ctx;
  const name = repoUrlName(repoId, repoType);
  const storage = repoCacheDir(repoId, s.cacheDir, repoType);
  let commit = COMMIT_HASH.test(revision) ? revision : undefined;
  let failure: HubError | undefined;
  if (!commit && !s.offline) {
    try {
      commit = (await repoInfo(s, { repoId, repoType, revision })).sha;
    } catch (e) {
      if (!isHubError(e) || e.code === 'revision-not-found' || e.code === 'invalid') throw e;
      failure = e;
    }
  }
  let tree: Map<string, TreeEntry> | undefined = commit ? await readTreeCache(storage, commit) : undefined;
  if (commit && !tree && !s.offline && !failure) {
    try {
      tree = await listTree(s, { repoId, repoType, revision: commit });
      await writeTreeCache(storage, commit, tree);
    } catch (e) {
      if (!isHubError(e) || e.code === 'revision-not-found') throw e;
      failure = e;
    }
  }
  if (!commit || !tree || s.offline || failure) {
    return cachedSnapshot(ctx, repoId, revision, options, failure);
  }
  const files = wanted([...tree.keys()], options);
  await writeRef(storage, revision, commit);
  const folder = join(storage, 'snapshots', commit);
  const n = options.concurrency ?? 4;
  const done = new Set<string>();
  const get = async (p: string): Promise<void> => {
    if (done.has(p)) return;
    done.add(p);
    const local = await downloadFile(ctx, repoId, p, commit!, tree!.get(p));
    if (isSafetensorsIndex(p)) {
      const shards = shardsOf(p, await readIndex(local, repoId, name, p));
      const unknown = shards.find((sh) => !tree!.has(sh));
      if (unknown) throw new HubError('entry-not-found', `${name}: "${p}" names the shard "${unknown}", which is not in the repository at ${commit}`, { repoId, path: unknown });
      await pool(shards.filter((sh) => !done.has(sh)), n, get);
    }
  };
  await pool(files, n, get);
  return folder;
}
