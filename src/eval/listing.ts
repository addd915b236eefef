// Directory listings as the benchmark scripts see them: `os.listdir` and `os.walk` (top-down,
// followlinks=False), with a choice of order.
//
// The official scripts use the filesystem's readdir order, which differs between machines (ext4
// hashes names, tmpfs returns newest first, ...), and that order drives their random sampling. So
// there are two orders here:
//   'sorted' (default): names in code-point order, which is Python's sorted() on str and the UTF-8
//                        byte order of the names; reproducible anywhere.
//   'given':            the raw readdir order, the one os.listdir returns on this machine. It is read
//                        with fs.opendirSync: fs.readdirSync cannot be used because libuv sorts its
//                        result.
// The functions are synchronous: they are called while building item lists, before any model runs.

import { opendirSync, statSync, lstatSync, type Dirent } from 'node:fs';
import { join } from 'node:path';

export type ListingOrder = 'sorted' | 'given';

/** Code-point order of two strings (Python's str comparison); plain `<` on JS strings compares
 *  UTF-16 code units, which differs for characters above U+FFFF against U+E000..U+FFFF. */
export function compareNames(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.codePointAt(i)!;
    const y = b.codePointAt(i)!;
    if (x !== y) return x < y ? -1 : 1;
    if (x > 0xffff) i++; // both are the same astral character: skip its low surrogate
  }
  return a.length - b.length;
}

function checkOrder(order: unknown): asserts order is ListingOrder {
  if (order !== 'sorted' && order !== 'given') throw new TypeError(`listing order: expected 'sorted' or 'given', got ${JSON.stringify(order)}`);
}

/** The entries of `dir` in readdir order ('.' and '..' excluded, as os.listdir does). */
function readEntries(dir: string): Dirent[] {
  const d = opendirSync(dir);
  const out: Dirent[] = [];
  try {
    for (let e = d.readSync(); e !== null; e = d.readSync()) out.push(e);
  } finally {
    d.closeSync();
  }
  return out;
}

function ordered(entries: Dirent[], order: ListingOrder): Dirent[] {
  return order === 'sorted' ? entries.sort((a, b) => compareNames(a.name, b.name)) : entries;
}

/** `os.listdir(dir)`: every entry name (files, directories, symlinks, broken ones too). Throws the
 *  filesystem's error (ENOENT, ENOTDIR, EACCES) like os.listdir. */
export function listdir(dir: string, order: ListingOrder = 'sorted'): string[] {
  checkOrder(order);
  return ordered(readEntries(dir), order).map((e) => e.name);
}

/** `os.path.isdir(p)`: a directory, or a symlink to one; false when it does not exist. */
export function isDirectory(p: string): boolean {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
}

/** `os.path.isfile(p)`: a regular file, or a symlink to one. */
export function isFile(p: string): boolean {
  try {
    return statSync(p).isFile();
  } catch {
    return false;
  }
}

/** DirEntry.is_dir() as os.walk calls it: follows symlinks, false on error. */
function entryIsDir(dir: string, e: Dirent): boolean {
  if (e.isDirectory()) return true;
  if (e.isFile() || e.isFIFO() || e.isSocket() || e.isBlockDevice() || e.isCharacterDevice()) return false;
  return isDirectory(join(dir, e.name)); // a symlink, or a filesystem that does not report types
}

function isSymlink(p: string): boolean {
  try {
    return lstatSync(p).isSymbolicLink();
  } catch {
    return false;
  }
}

/** One step of os.walk: `path` is what os.walk yields as its first element (root joined with the
 *  directory names on the way down), `rel` the same relative to root ('' for root itself). */
export interface WalkEntry {
  path: string;
  rel: string;
  dirs: string[];
  files: string[];
}

/** `os.walk(root)` top-down with followlinks=False, all at once: per directory its subdirectory
 *  names (is_dir(), so symlinks to directories count) and the other names; then the subdirectories
 *  in the order of that list, depth first. Symlinked directories are listed but not entered.
 *  Directories that cannot be read are skipped silently (onerror=None), and so is a root that is
 *  not a directory. */
export function walk(root: string, order: ListingOrder = 'sorted'): WalkEntry[] {
  checkOrder(order);
  const out: WalkEntry[] = [];
  const stack: { path: string; rel: string }[] = [{ path: root, rel: '' }];
  while (stack.length > 0) {
    const top = stack.pop()!;
    let entries: Dirent[];
    try {
      entries = ordered(readEntries(top.path), order);
    } catch {
      continue;
    }
    const dirs: string[] = [];
    const files: string[] = [];
    for (const e of entries) (entryIsDir(top.path, e) ? dirs : files).push(e.name);
    out.push({ path: top.path, rel: top.rel, dirs, files });
    for (let i = dirs.length - 1; i >= 0; i--) {
      const p = join(top.path, dirs[i]!);
      if (!isSymlink(p)) stack.push({ path: p, rel: join(top.rel, dirs[i]!) });
    }
  }
  return out;
}
