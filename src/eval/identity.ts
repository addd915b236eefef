// What a benchmark run is made from: the files of its items. Two digests, one per use:
// - `listing`, the same on every machine holding the same data: each file's path within the
//   dataset (or the originals folder) and its size. It enters the run id, which merge checks
//   across shard files made on other machines, where the folders lie elsewhere and mtimes differ.
// - `local`, this machine's: the dataset's (and originals') resolved folder and each file's size
//   and mtime, the make rule. Resume checks it row by row, so a results file made on another folder
//   or before an image changed is refused instead of mixed with new rows.

import { createHash } from 'node:crypto';
import { realpath, stat } from 'node:fs/promises';
import { FileError } from '../io/errors.js';
import { itemPaths, type EvalItem } from './protocols.js';

export interface DatasetIdentity {
  /** Relative paths and sizes (portable). */
  listing: string;
  /** Resolved folders, paths, sizes and mtimes (this machine's). */
  local: string;
}

/** The identity of the files `items` read under `dir` (and `originals`). */
export async function datasetIdentity(items: readonly EvalItem[], dir: string, originals?: string): Promise<DatasetIdentity> {
  const listing = createHash('sha256');
  const local = createHash('sha256');
  const root = await realpath(dir).catch(() => dir);
  const origRoot = originals === undefined ? null : await realpath(originals).catch(() => originals);
  local.update(`${JSON.stringify([root, origRoot])}\n`);
  const seen = new Set<string>();
  for (const item of items) {
    const paths = itemPaths(item, dir, originals !== undefined ? { originals } : {});
    const named: [string, string, string][] = [
      [item.anchorRoot === 'originals' ? 'originals' : 'dir', item.anchor, paths.anchor],
      ['dir', item.cand1, paths.cand1],
      ['dir', item.cand2, paths.cand2],
    ];
    for (const [base, rel, path] of named) {
      const key = `${base}\u0000${rel}`;
      if (seen.has(key)) continue;
      seen.add(key);
      let st;
      try {
        st = await stat(path);
      } catch (e) {
        throw new FileError(path, `cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
      }
      listing.update(`${JSON.stringify([base, rel, st.size])}\n`);
      local.update(`${JSON.stringify([base, rel, st.size, st.mtimeMs])}\n`);
    }
  }
  return { listing: listing.digest('hex').slice(0, 16), local: local.digest('hex').slice(0, 16) };
}
