// The huggingface_hub cache layout, read and written exactly as Python's huggingface_hub does:
//
//   <cache>/models--org--name/blobs/<etag>                 file contents, named by ETag
//                            /snapshots/<commit>/<path>      relative symlinks to ../../blobs/<etag>
//                            /refs/<revision>                 the commit a branch or tag was last seen at
//                            /.no_exist/<commit>/<path>       empty markers: known missing at that commit
//                            /trees/<commit>.json             the commit's file list (format_version 1)
//   <cache>/.locks/models--org--name/<etag>.lock
//   <cache>/CACHEDIR.TAG
//
// A dataset repo has the same layout under `datasets--org--name` (and `.locks/datasets--org--name`).

import { randomBytes } from 'node:crypto';
import { copyFile, lstat, mkdir, readFile, readdir, readlink, rename, rm, stat, symlink, unlink, writeFile } from 'node:fs/promises';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { HubError } from './errors.js';
import { COMMIT_HASH, repoFolderName, validateCommit, validateEtag, validateRepoFilePath, validateRepoPath, validateRevision, type RepoType } from './paths.js';
import { hubCacheDir, type HubOptions } from './settings.js';

/** What {@link tryToLoadFromCache} returns when the cache records that the file does not exist at
 *  that revision (a `.no_exist` marker), like huggingface_hub's `_CACHED_NO_EXIST`. */
export const CACHED_NO_EXIST: unique symbol = Symbol.for('diffsim.hub.CACHED_NO_EXIST');
export type CachedNoExist = typeof CACHED_NO_EXIST;

/** `<cache>/models--org--name`, or `<cache>/datasets--org--name` for a dataset. */
export function repoCacheDir(repoId: string, cacheDir: string, repoType: RepoType = 'model'): string {
  return join(cacheDir, repoFolderName(repoId, repoType));
}

// The path builders below are where names become file-system paths: each checks its names again
// (commit, ETag, repo path), whatever its caller did, so that no value from a server or a file can
// name a place outside the repo's cache folder.

/** `<storage>/snapshots/<commit>/<path>`, refusing paths that would leave the snapshot folder. */
export function pointerPath(storage: string, commit: string, path: string): string {
  validateCommit(commit, `the snapshot folder name for "${path}"`, { path }, 'invalid');
  validateRepoFilePath(path, `the snapshot file at ${commit}`, { path }, 'invalid');
  const snapshots = resolve(storage, 'snapshots');
  const p = resolve(snapshots, commit, ...path.split('/'));
  if (!p.startsWith(snapshots + sep)) throw new HubError('invalid', `"${path}" at "${commit}" would leave the snapshot folder ${snapshots}`, { path });
  return p;
}

export function noExistPath(storage: string, commit: string, path: string): string {
  validateCommit(commit, `the .no_exist folder name for "${path}"`, { path }, 'invalid');
  validateRepoFilePath(path, `the .no_exist marker at ${commit}`, { path }, 'invalid');
  return join(storage, '.no_exist', commit, ...path.split('/'));
}

export function blobPath(storage: string, etag: string): string {
  return join(storage, 'blobs', validateEtag(etag, `the blob name in ${join(storage, 'blobs')}`));
}

async function isFile(p: string): Promise<boolean> {
  try {
    return (await stat(p)).isFile();
  } catch {
    return false;
  }
}

async function isDir(p: string): Promise<boolean> {
  try {
    return (await stat(p)).isDirectory();
  } catch {
    return false;
  }
}

export { isDir as isDirectory, isFile };

/** The commit `refs/<revision>` records, if any (a commit hash is its own answer). A ref file that
 *  holds anything but a commit hash is refused (it would name the snapshot folder). */
export async function readRef(storage: string, revision: string): Promise<string | undefined> {
  if (COMMIT_HASH.test(revision)) return revision;
  const ref = join(storage, 'refs', ...revision.split('/'));
  let text: string;
  try {
    text = (await readFile(ref, 'utf8')).trim();
  } catch {
    return undefined;
  }
  return text ? validateCommit(text, `the cache file ${ref}`, {}, 'filesystem') : undefined;
}

/** Writes `refs/<revision>` = `commit` (no newline, atomically, only when it changes) unless the
 *  revision is the commit itself, and makes sure `snapshots/<commit>/` exists so that the cache
 *  never holds a ref to a missing snapshot (which `scan_cache_dir` reports as corrupted). */
export async function writeRef(storage: string, revision: string, commit: string): Promise<void> {
  validateCommit(commit, `the commit for refs/${revision}`, {}, 'invalid');
  validateRevision(storage, revision);
  await mkdir(join(storage, 'snapshots', commit), { recursive: true });
  if (revision === commit) return;
  const ref = join(storage, 'refs', ...revision.split('/'));
  try {
    if ((await readFile(ref, 'utf8')) === commit) return;
  } catch {
    // not there yet
  }
  await mkdir(dirname(ref), { recursive: true });
  const tmp = `${ref}.${randomBytes(4).toString('hex')}.tmp`;
  await writeFile(tmp, commit);
  await rename(tmp, ref);
}

/** Records that `path` does not exist at `commit` (an empty `.no_exist/<commit>/<path>` file). */
export async function writeNoExist(storage: string, commit: string, path: string): Promise<void> {
  const p = noExistPath(storage, commit, path);
  try {
    await mkdir(dirname(p), { recursive: true });
    await writeFile(p, '', { flag: 'a' });
  } catch {
    // best effort, as in huggingface_hub
  }
}

export const CACHEDIR_TAG = 'Signature: 8a477f597d28d172789f06886806bc55\n# This file is a cache directory tag created by huggingface_hub.\n# For information about cache directory tags, see:\n#\thttps://bford.info/cachedir/\n';

/** `<cache>/CACHEDIR.TAG` (the Cache Directory Tagging Standard), written once, best effort. */
export async function createCacheDirTag(cacheDir: string): Promise<void> {
  try {
    await writeFile(join(cacheDir, 'CACHEDIR.TAG'), CACHEDIR_TAG, { flag: 'wx' });
  } catch {
    // exists, or read-only
  }
}

/** Makes `pointer` show the content of `blob`: a relative symlink (`../../blobs/<etag>`, one more
 *  `../` per folder level of the path), or, where symlinks are disabled or refused, the file itself
 *  (a new blob is moved there, as huggingface_hub does; an existing one is copied). */
export async function linkBlob(blob: string, pointer: string, o: { newBlob: boolean; disableSymlinks: boolean }): Promise<void> {
  await mkdir(dirname(pointer), { recursive: true });
  const target = relative(dirname(pointer), blob);
  if (!o.disableSymlinks) {
    try {
      const st = await lstat(pointer);
      if (st.isSymbolicLink() && (await readlink(pointer)) === target && (await isFile(pointer))) return;
      await unlink(pointer);
    } catch {
      // no pointer yet
    }
    try {
      await symlink(target, pointer);
      return;
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'EEXIST' && (await lstat(pointer)).isSymbolicLink() && (await readlink(pointer)) === target) return;
      if (!['EPERM', 'EACCES', 'ENOTSUP', 'EOPNOTSUPP', 'ENOSYS', 'EINVAL', 'EXDEV'].includes(code ?? '')) throw e;
    }
  }
  const tmp = `${pointer}.${randomBytes(4).toString('hex')}.incomplete`;
  try {
    if (o.newBlob) await rename(blob, tmp);
    else await copyFile(blob, tmp);
    await rm(pointer, { force: true });
    await rename(tmp, pointer);
  } finally {
    await rm(tmp, { force: true });
  }
}

/** One file of a commit as the tree API lists it; the `trees/<commit>.json` entry. */
export interface TreeEntry {
  size: number;
  /** The git blob sha1 (the ETag of a file stored in git). */
  blob_id: string;
  /** The sha256 of an LFS file (its ETag) and its size. */
  lfs_sha256?: string;
  lfs_size?: number;
  xet_hash?: string;
}

const TREE_FORMAT_VERSION = 1;

/** `trees/<commit>.json` as huggingface_hub ≥ 1.x writes it, or `undefined` when absent or unreadable. */
async function parseTreeCache(storage: string, commit: string): Promise<Map<string, TreeEntry> | undefined> {
  try {
    const data = JSON.parse(await readFile(join(storage, 'trees', `${commit}.json`), 'utf8')) as { format_version?: unknown; files?: Record<string, TreeEntry> };
    if (data.format_version !== TREE_FORMAT_VERSION || typeof data.files !== 'object' || data.files === null) return undefined;
    const out = new Map<string, TreeEntry>();
    for (const [p, e] of Object.entries(data.files)) {
      if (typeof e?.size !== 'number' || typeof e.blob_id !== 'string') return undefined;
      out.set(p, e);
    }
    return out;
  } catch {
    return undefined;
  }
}

/** `trees/<commit>.json` as {@link readTreeCache} reads it, its file names checked: a name that
 *  would leave the snapshot folder fails naming the cache file. */
export async function readTreeCache(storage: string, commit: string): Promise<Map<string, TreeEntry> | undefined> {
  validateCommit(commit, 'the commit of a cached file list', {}, 'invalid');
  const tree = await parseTreeCache(storage, commit);
  if (tree) for (const p of tree.keys()) validateRepoFilePath(p, `the cache file ${join(storage, 'trees', `${commit}.json`)} lists a file`, {}, 'filesystem');
  return tree;
}

export async function writeTreeCache(storage: string, commit: string, entries: ReadonlyMap<string, TreeEntry>): Promise<void> {
  validateCommit(commit, 'the commit of a file list to cache', {}, 'invalid');
  const files: Record<string, TreeEntry> = {};
  for (const p of [...entries.keys()].sort()) {
    const e = entries.get(p)!;
    const o: TreeEntry = { size: e.size, blob_id: e.blob_id };
    if (e.lfs_sha256 !== undefined) {
      o.lfs_sha256 = e.lfs_sha256;
      o.lfs_size = e.lfs_size ?? e.size;
    }
    if (e.xet_hash !== undefined) o.xet_hash = e.xet_hash;
    files[p] = o;
  }
  const path = join(storage, 'trees', `${commit}.json`);
  const tmp = `${path}.${randomBytes(4).toString('hex')}.tmp`;
  try {
    await mkdir(dirname(path), { recursive: true });
    await writeFile(tmp, JSON.stringify({ format_version: TREE_FORMAT_VERSION, files }, null, 1));
    await rename(tmp, path);
  } catch {
    await rm(tmp, { force: true }).catch(() => undefined);
  }
}

/** Every file under a snapshot folder, as repo paths (`a/b.json`), symlinked or copied. */
export async function listSnapshot(folder: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (dir: string, prefix: string): Promise<void> => {
    let names: string[];
    try {
      names = await readdir(dir);
    } catch {
      return;
    }
    for (const name of names.sort()) {
      const p = join(dir, name);
      if (await isDir(p)) await walk(p, `${prefix}${name}/`);
      else if (await isFile(p)) out.push(`${prefix}${name}`);
    }
  };
  await walk(folder, '');
  return out;
}

/** Looks a file up in the cache without any network access, like huggingface_hub's
 *  `try_to_load_from_cache`: the local path when the file is cached at that revision (a branch or
 *  tag is read through `refs/`), {@link CACHED_NO_EXIST} when the cache records that it does not
 *  exist there, `null` when the cache does not know. `repoType: 'dataset'` looks in the dataset's
 *  cache folder. */
export async function tryToLoadFromCache(repoId: string, path: string, revision = 'main', options: HubOptions & { repoType?: RepoType } = {}): Promise<string | CachedNoExist | null> {
  validateRepoPath(repoId, path);
  validateRevision(repoId, revision);
  const storage = repoCacheDir(repoId, hubCacheDir(options), options.repoType ?? 'model');
  if (!(await isDir(storage))) return null;
  const commit = (await readRef(storage, revision)) ?? revision;
  if (!COMMIT_HASH.test(commit)) return null; // a branch or tag the cache has no ref for
  if (await isFile(noExistPath(storage, commit, path))) return CACHED_NO_EXIST;
  let shas: string[];
  try {
    shas = await readdir(join(storage, 'snapshots'));
  } catch {
    return null;
  }
  if (!shas.includes(commit)) return null;
  const p = pointerPath(storage, commit, path);
  return (await isFile(p)) ? p : null;
}
