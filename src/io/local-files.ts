// Model files on a local disk (Node, Deno): a folder, listed once, or one file with its folder (a
// single-file checkpoint, an adapter file whose image encoder sits beside it). The listing is
// bounded, so pointing at a home folder by mistake is an error, not a walk of the whole disk.

import { openFile, type ByteSource } from './bytesource.js';
import { FileError } from './errors.js';
import { dirnameOf, joinPath, nodeFs } from '../platform/host.js';
import type { ModelFiles } from './model-files.js';

/** At most this many files are listed under a model folder, this many folders deep. */
export const MAX_LISTED_FILES = 20_000;
export const MAX_LISTED_DEPTH = 6;

interface DirentLike {
  name: string;
  isDirectory(): boolean;
  isFile(): boolean;
  isSymbolicLink(): boolean;
}

interface FsLike {
  stat(p: string): Promise<{ isFile(): boolean; isDirectory(): boolean; size: number; mtimeMs: number }>;
  readdir(p: string, o: { withFileTypes: true }): Promise<DirentLike[]>;
  realpath(p: string): Promise<string>;
}

class TooManyFiles extends FileError {}

/** The Hugging Face cache's snapshot commit in a path (`…/snapshots/<40 hex>/…`). */
export function snapshotCommitOf(path: string): string | undefined {
  return /[/\\]snapshots[/\\]([0-9a-f]{40})(?:[/\\]|$)/.exec(path)?.[1];
}

export class FolderModelFiles implements ModelFiles {
  readonly commit: string | undefined;
  private constructor(
    /** The folder (or, with `entry`, the file) as given. */
    readonly name: string,
    readonly root: string,
    readonly paths: readonly string[],
    readonly entry: string | undefined,
  ) {
    this.commit = snapshotCommitOf(root);
  }

  /** A folder's files, or a file's (its folder listed `depth` deep for what may sit beside it). */
  static async open(path: string, o: { depth?: number } = {}): Promise<FolderModelFiles> {
    const fs = (await nodeFs()) as unknown as FsLike;
    let st: { isFile(): boolean; isDirectory(): boolean };
    try {
      st = await fs.stat(path);
    } catch (e) {
      const code = (e as { code?: string }).code;
      throw new FileError(path, `cannot open (${code === 'ENOENT' ? 'no such file or folder' : code ?? (e as Error).message})`);
    }
    if (st.isDirectory()) return new FolderModelFiles(path, path, await list(fs, path, o.depth ?? MAX_LISTED_DEPTH), undefined);
    if (!st.isFile()) throw new FileError(path, 'not a regular file or a folder');
    const root = dirnameOf(path);
    const entry = path.slice(root.length).replace(/^[/\\]+/, '');
    // What sits beside the file (an adapter's image_encoder/) is listed too, unless the folder is a
    // large one (a downloads folder): then the file alone.
    const paths = await list(fs, root, o.depth ?? 2).catch((e: unknown) => {
      if (e instanceof TooManyFiles) return [entry];
      throw e;
    });
    return new FolderModelFiles(path, root, paths.includes(entry) ? paths : [...paths, entry].sort(), entry);
  }

  /** The identity of the files as they are now, by the make rule: a digest (sha256, 32 hex) of each
   *  file's relative path, size and mtime — all the files of a folder; of a file, it and the files in
   *  the folders beside it (an adapter's image encoder), not its sibling files. A file changed in
   *  place changes it; computed once per call (a stat per file, nothing read). */
  async stamp(): Promise<string> {
    const fs = (await nodeFs()) as unknown as FsLike;
    const paths = this.entry === undefined ? this.paths : this.paths.filter((p) => p === this.entry || p.includes('/'));
    const lines: string[] = [];
    for (const p of paths) {
      const full = joinPath(this.root, p);
      let st: { size: number; mtimeMs: number };
      try {
        st = await fs.stat(full);
      } catch (e) {
        throw new FileError(full, `cannot read (${(e as { code?: string }).code ?? (e as Error).message})`);
      }
      lines.push(`${JSON.stringify([p, st.size, st.mtimeMs])}\n`);
    }
    const digest = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(lines.join('')));
    return [...new Uint8Array(digest).subarray(0, 16)].map((b) => b.toString(16).padStart(2, '0')).join('');
  }

  private full(path: string): string {
    if (!this.paths.includes(path)) throw new FileError(joinPath(this.root, path), `not a file of the model ${this.name}`);
    return joinPath(this.root, path);
  }

  open(path: string): Promise<ByteSource> {
    return openFile(this.full(path));
  }
}

/** Relative paths of the regular files under `root` (symlinks followed, as the hub cache's
 *  snapshots are made of them; hidden entries skipped), sorted. */
async function list(fs: FsLike, root: string, maxDepth: number): Promise<string[]> {
  const out: string[] = [];
  const seen = new Set<string>();
  const walk = async (dir: string, rel: string, depth: number): Promise<void> => {
    const real = await fs.realpath(dir).catch(() => dir);
    if (seen.has(real)) return; // a symlink loop
    seen.add(real);
    let entries: DirentLike[];
    try {
      entries = await fs.readdir(dir, { withFileTypes: true });
    } catch (e) {
      throw new FileError(dir, `cannot list the folder (${(e as { code?: string }).code ?? (e as Error).message})`);
    }
    for (const d of entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
      if (d.name.startsWith('.')) continue;
      const childRel = rel ? `${rel}/${d.name}` : d.name;
      const child = joinPath(dir, d.name);
      let isDir = d.isDirectory();
      let isFile = d.isFile();
      if (d.isSymbolicLink()) {
        const s = await fs.stat(child).catch(() => undefined);
        isDir = s?.isDirectory() ?? false;
        isFile = s?.isFile() ?? false;
      }
      if (isFile) {
        out.push(childRel);
        if (out.length > MAX_LISTED_FILES) throw new TooManyFiles(root, `more than ${MAX_LISTED_FILES} files: not a model folder (give the model's own folder or file)`);
      } else if (isDir && depth < maxDepth) await walk(child, childRel, depth + 1);
    }
  };
  await walk(root, '', 1);
  return out.sort();
}

/** A local model folder or file as ModelFiles. */
export function localModelFiles(path: string, o: { depth?: number } = {}): Promise<FolderModelFiles> {
  return FolderModelFiles.open(path, o);
}
