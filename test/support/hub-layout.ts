// Test helpers for the Hugging Face cache: a scan that applies the checks of huggingface_hub's
// `scan_cache_dir` (a repo folder it would report as corrupted becomes a warning here), and a
// hand-built cache laid out the way Python's huggingface_hub writes one.

import { existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, realpathSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';

export interface ScannedRevision {
  refs: Set<string>;
  /** Repo path → the blob it resolves to. */
  files: Map<string, string>;
}

export interface ScannedRepo {
  repoId: string;
  repoType: 'model' | 'dataset' | 'space';
  revisions: Map<string, ScannedRevision>;
  blobs: Set<string>;
}

export interface Scan {
  /** By repo id for models, `datasets/org/name` and `spaces/org/name` for the others. */
  repos: Map<string, ScannedRepo>;
  warnings: string[];
  incomplete: string[];
}

function walkFiles(dir: string, prefix = ''): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p, { throwIfNoEntry: false })?.isDirectory()) out.push(...walkFiles(p, `${prefix}${name}/`));
    else out.push(`${prefix}${name}`);
  }
  return out;
}

const IGNORED = new Set(['.DS_Store', 'Thumbs.db', 'desktop.ini']);

/** The checks of huggingface_hub's `scan_cache_dir` / `_scan_cached_repo`. */
export function scanLikePython(cacheDir: string): Scan {
  const scan: Scan = { repos: new Map(), warnings: [], incomplete: [] };
  for (const name of readdirSync(cacheDir).sort()) {
    if (IGNORED.has(name) || name === '.locks' || name === 'CACHEDIR.TAG') continue;
    const repoPath = join(cacheDir, name);
    try {
      if (!statSync(repoPath).isDirectory()) throw new Error(`Repo path is not a directory: ${repoPath}`);
      if (!name.includes('--')) throw new Error(`Repo path is not a valid HuggingFace cache directory: ${repoPath}`);
      const [type, ...rest] = name.split('--');
      if (!['datasets', 'models', 'spaces'].includes(type!)) throw new Error(`Repo type must be dataset, model or space, found ${type}`);
      const snapshots = join(repoPath, 'snapshots');
      if (!statSync(snapshots, { throwIfNoEntry: false })?.isDirectory()) throw new Error(`Snapshots dir doesn't exist in cached repo: ${snapshots}`);
      const refsByHash = new Map<string, Set<string>>();
      const refs = join(repoPath, 'refs');
      if (existsSync(refs)) {
        if (statSync(refs).isFile()) throw new Error(`Refs directory cannot be a file: ${refs}`);
        for (const ref of walkFiles(refs)) {
          if (IGNORED.has(ref.split('/').pop()!)) continue;
          const hash = readFileSync(join(refs, ref), 'utf8'); // read as is, as Python does
          if (!refsByHash.has(hash)) refsByHash.set(hash, new Set());
          refsByHash.get(hash)!.add(ref);
        }
      }
      const repoType = type!.slice(0, -1) as ScannedRepo['repoType'];
      const repo: ScannedRepo = { repoId: rest.join('/'), repoType, revisions: new Map(), blobs: new Set() };
      for (const rev of readdirSync(snapshots).sort()) {
        if (IGNORED.has(rev)) continue;
        const revPath = join(snapshots, rev);
        if (statSync(revPath).isFile()) throw new Error(`Snapshots folder corrupted. Found a file: ${revPath}`);
        const files = new Map<string, string>();
        for (const f of walkFiles(revPath)) {
          const p = join(revPath, f);
          if (!existsSync(p)) throw new Error(`Blob missing (broken symlink): ${p}`);
          const blob = realpathSync(p);
          files.set(f, blob);
          repo.blobs.add(blob);
        }
        repo.revisions.set(rev, { refs: refsByHash.get(rev) ?? new Set(), files });
        refsByHash.delete(rev);
      }
      if (refsByHash.size) throw new Error(`Reference(s) refer to missing commit hashes: ${[...refsByHash.keys()].join(', ')} (${repoPath})`);
      scan.repos.set(repoType === 'model' ? repo.repoId : `${type}/${repo.repoId}`, repo);
    } catch (e) {
      scan.warnings.push((e as Error).message);
    }
    const blobs = join(repoPath, 'blobs');
    if (existsSync(blobs)) for (const b of readdirSync(blobs)) if (b.endsWith('.incomplete')) scan.incomplete.push(join(blobs, b));
  }
  return scan;
}

/** The target of every symlink under `snapshots/<commit>/`, by repo path (copies are absent). */
export function snapshotLinks(folder: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (dir: string, prefix: string): void => {
    for (const name of readdirSync(dir).sort()) {
      const p = join(dir, name);
      const st = lstatSync(p);
      if (st.isSymbolicLink()) out.set(`${prefix}${name}`, readlinkSync(p));
      else if (st.isDirectory()) walk(p, `${prefix}${name}/`);
    }
  };
  walk(folder, '');
  return out;
}

export interface PythonCacheFile {
  path: string;
  content: Uint8Array;
  /** The blob name: the sha256 for LFS files, the git blob sha1 otherwise. */
  etag: string;
}

/** Writes a cache exactly as huggingface_hub's `hf_hub_download` leaves it: `blobs/<etag>`,
 *  `snapshots/<commit>/<path>` as relative symlinks (or copies, as on systems without symlinks),
 *  `refs/<revision>` with the commit (no newline), `.no_exist/<commit>/<path>` markers, and the empty
 *  `.locks/…/<etag>.lock` files its file lock leaves behind. */
export function writePythonCache(cacheDir: string, repoId: string, commit: string, files: readonly PythonCacheFile[], o: { revision?: string; noExist?: readonly string[]; copies?: boolean; repoType?: 'model' | 'dataset' } = {}): string {
  const folder = [`${o.repoType ?? 'model'}s`, ...repoId.split('/')].join('--');
  const storage = join(cacheDir, folder);
  mkdirSync(join(storage, 'blobs'), { recursive: true });
  for (const f of files) {
    const blob = join(storage, 'blobs', f.etag);
    const pointer = join(storage, 'snapshots', commit, ...f.path.split('/'));
    mkdirSync(dirname(pointer), { recursive: true });
    if (o.copies) {
      writeFileSync(pointer, f.content);
    } else {
      writeFileSync(blob, f.content);
      symlinkSync(relative(dirname(pointer), blob), pointer);
    }
    const lock = join(cacheDir, '.locks', folder, `${f.etag}.lock`);
    mkdirSync(dirname(lock), { recursive: true });
    writeFileSync(lock, '');
  }
  if (o.revision !== undefined && o.revision !== commit) {
    mkdirSync(join(storage, 'refs'), { recursive: true });
    writeFileSync(join(storage, 'refs', o.revision), commit);
  }
  for (const p of o.noExist ?? []) {
    const marker = join(storage, '.no_exist', commit, ...p.split('/'));
    mkdirSync(dirname(marker), { recursive: true });
    writeFileSync(marker, '');
  }
  writeFileSync(join(cacheDir, 'CACHEDIR.TAG'), 'Signature: 8a477f597d28d172789f06886806bc55\n');
  return storage;
}
