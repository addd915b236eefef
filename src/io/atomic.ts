// Writing a file so that readers see either the old content or the whole new one: the bytes go
// to `<path>.tmp-<pid>-<random>` in the same folder, are flushed to disk (fsync) and the file is
// renamed over `path` (atomic within one file system). On any failure the temporary file is
// removed and `path` is left as it was.

import { randomBytes } from 'node:crypto';
import { open, rename, rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import { pid } from 'node:process';
import { FileError } from './errors.js';

/** The temporary name `writeFileAtomic` uses for `path`. */
export function temporaryPath(path: string): string {
  return `${path}.tmp-${pid}-${randomBytes(6).toString('hex')}`;
}

function problem(e: unknown): string {
  const err = e as NodeJS.ErrnoException;
  const reasons: Record<string, string> = {
    ENOENT: 'the folder does not exist',
    ENOTDIR: 'a part of the folder path is not a folder',
    EACCES: 'permission denied',
    EPERM: 'permission denied',
    EROFS: 'read-only file system',
    EISDIR: 'it is a folder',
    ENOSPC: 'no space left on the device',
    EDQUOT: 'disk quota exceeded',
  };
  return (err.code && reasons[err.code]) ?? err.message ?? String(e);
}

/** Writes `data` to `path` atomically (see the module comment). Errors are FileErrors naming `path`. */
export async function writeFileAtomic(path: string, content: Uint8Array | string): Promise<void> {
  const data = typeof content === 'string' ? new TextEncoder().encode(content) : content;
  const tmp = temporaryPath(path);
  let created = false;
  try {
    const fh = await open(tmp, 'wx', 0o666);
    created = true;
    try {
      let off = 0;
      while (off < data.byteLength) off += (await fh.write(data, off, data.byteLength - off)).bytesWritten;
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
    created = false;
  } catch (e) {
    if (created) await rm(tmp, { force: true }).catch(() => undefined);
    throw new FileError(path, `cannot write: ${problem(e)}`);
  }
  // The rename itself reaches the disk with the folder's entry; best effort (not every platform
  // lets a folder be opened and synced).
  try {
    const dir = await open(dirname(path), 'r');
    try {
      await dir.sync();
    } finally {
      await dir.close();
    }
  } catch {
    // the file is in place either way
  }
}
