// The image files of a folder, as retrieval galleries and frame sequences list them.

import { readdir, stat } from 'node:fs/promises';
import { join, relative, resolve, sep } from 'node:path';
import { FileError } from '../io/errors.js';

/** The file name endings taken as images (case-insensitive). */
export const IMAGE_EXTENSIONS = ['.png', '.jpg', '.jpeg', '.bmp'] as const;

/** The folder `retrieve` keeps its embedding cache in, inside the gallery. */
export const CACHE_FOLDER = '.diffsim-cache';

export function isImageName(name: string): boolean {
  const lower = name.toLowerCase();
  return IMAGE_EXTENSIONS.some((e) => lower.endsWith(e) && lower.length > e.length);
}

/** One listed image: its path as `join(dir, rel)` and its path relative to the folder ('/'-separated). */
export interface ListedImage {
  path: string;
  rel: string;
}

export interface ListImagesOptions {
  /** Descend into sub-folders (default false). */
  recursive?: boolean;
  /** Folders not to list (absolute or relative to the working directory). */
  excludeDirs?: readonly string[];
}

async function folderOf(dir: string): Promise<void> {
  let st;
  try {
    st = await stat(dir);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new FileError(dir, code === 'ENOENT' ? 'no such folder' : `cannot read the folder (${code ?? (e as Error).message})`);
  }
  if (!st.isDirectory()) throw new FileError(dir, 'not a folder');
}

/** Compares two strings by code units (locale-independent, the same everywhere). */
export function codeUnitCompare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** The image files under `dir`, sorted by their relative path (code-unit order). Folders named
 *  `.diffsim-cache` and `excludeDirs` are skipped; symbolic links to files are listed, links to
 *  folders are not followed. */
export async function listImages(dir: string, o: ListImagesOptions = {}): Promise<ListedImage[]> {
  await folderOf(dir);
  const excluded = new Set((o.excludeDirs ?? []).map((d) => resolve(d)));
  const out: ListedImage[] = [];
  const walk = async (folder: string): Promise<void> => {
    let entries;
    try {
      entries = await readdir(folder, { withFileTypes: true });
    } catch (e) {
      throw new FileError(folder, `cannot list the folder (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
    }
    for (const ent of entries) {
      const full = join(folder, ent.name);
      if (ent.isDirectory()) {
        if (o.recursive && ent.name !== CACHE_FOLDER && !excluded.has(resolve(full))) await walk(full);
        continue;
      }
      if (!isImageName(ent.name)) continue;
      if (ent.isSymbolicLink() && !(await stat(full).then((s) => s.isFile(), () => false))) continue;
      if (!ent.isFile() && !ent.isSymbolicLink()) continue;
      out.push({ path: full, rel: relative(dir, full).split(sep).join('/') });
    }
  };
  await walk(dir);
  return out.sort((a, b) => codeUnitCompare(a.rel, b.rel));
}

/** Natural order: runs of digits compare as numbers (frame2 < frame10), the rest by code units;
 *  names equal that way (frame02, frame2) fall back to plain code-unit order. */
export function naturalCompare(a: string, b: string): number {
  const ra = a.match(/\d+|\D+/g) ?? [];
  const rb = b.match(/\d+|\D+/g) ?? [];
  for (let i = 0; i < Math.min(ra.length, rb.length); i++) {
    const x = ra[i]!;
    const y = rb[i]!;
    const dx = /^\d/.test(x);
    const dy = /^\d/.test(y);
    if (dx && dy) {
      const sx = x.replace(/^0+(?=\d)/, '');
      const sy = y.replace(/^0+(?=\d)/, '');
      // Equal-length digit strings compare as numbers by code units; any length of digits works.
      if (sx.length !== sy.length) return sx.length - sy.length;
      const c = codeUnitCompare(sx, sy);
      if (c) return c;
    } else {
      const c = codeUnitCompare(x, y);
      if (c) return c;
    }
  }
  return ra.length - rb.length || codeUnitCompare(a, b);
}
