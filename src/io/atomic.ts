// Writing the files the command line produces (pictures, rows, cache entries) without ever
// replacing what is not a regular file.
//
// `writeFileAtomic` writes so that readers see either the old content or the whole new one: the
// bytes go to `<path>.tmp-<pid>-<random>` in the same folder, are flushed to disk (fsync) and the
// file is renamed over `path` (atomic within one file system). On any failure the temporary file is
// removed and `path` is left as it was.
//
// What `path` names decides how it is written (`outputTarget`):
// - nothing, or a regular file: atomically, as above;
// - a symlink: resolved (link by link, a dangling one to the file it names) and its target
//   written by these same rules; the link itself is left in place;
// - a character device (/dev/null, a terminal) or a FIFO, or a link through /proc/<pid>/fd or
//   /dev/fd: opened for appending and written directly, never renamed over; one of this process's
//   own descriptors (/dev/stdout, /proc/self/fd/1) is written to that descriptor;
// - a folder, a block device or a socket: refused with an error naming the path.
// `openAppend` applies the same rules to a file that rows are appended to.

import { randomBytes } from 'node:crypto';
import { closeSync, fdatasyncSync, fstatSync, lstatSync, openSync, readlinkSync, writeSync, type Stats } from 'node:fs';
import { open, rename, rm } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
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
    ELOOP: 'too many levels of symbolic links',
    ENXIO: 'no process reads from it',
  };
  return (err.code && reasons[err.code]) ?? err.message ?? String(e);
}

/** Where an output goes and how it is written. */
export interface OutputTarget {
  /** The path written: `path` with its symlinks resolved (a stream: the path to open). */
  path: string;
  /** 'file': a regular file, replaced atomically (or appended to); 'missing': nothing there yet,
   *  created; 'stream': a character device, a FIFO or an open descriptor, written directly. */
  kind: 'file' | 'missing' | 'stream';
  /** A stream that is one of this process's own descriptors (/dev/stdout, /proc/self/fd/1):
   *  written to that descriptor, so that the bytes go where the process's other output goes. */
  fd?: number;
}

/** `/proc/<pid>/fd/<n>`, `/dev/fd/<n>`: a link that reopens a descriptor (it may name no path). */
const DESCRIPTOR_LINK = /^(?:\/proc\/([^/]+)\/fd|\/dev\/fd)\/(\d+)$/;

/** Writes all of `data` to an open descriptor, waiting out EAGAIN (a non-blocking pipe). */
function writeFd(fd: number, data: Uint8Array): void {
  let off = 0;
  while (off < data.byteLength) {
    try {
      off += writeSync(fd, data, off, data.byteLength - off);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EAGAIN') throw e;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 5);
    }
  }
}

function kindOf(st: Stats): string {
  if (st.isDirectory()) return 'it is a folder';
  if (st.isBlockDevice()) return 'it is a block device, not a regular file';
  if (st.isSocket()) return 'it is a socket, not a regular file';
  return 'it is not a regular file';
}

/** How an output at `path` is written (see the module comment); a FileError naming `path` for one
 *  that is refused. */
export function outputTarget(path: string): OutputTarget {
  let p = resolve(path);
  for (let hops = 0; ; hops++) {
    if (hops > 40) throw new FileError(path, `cannot write: ${problem({ code: 'ELOOP' })}`);
    let st: Stats;
    try {
      st = lstatSync(p);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      // Nothing there (ENOTDIR: a file where a folder of the path would be; writing reports it).
      if (code === 'ENOENT' || code === 'ENOTDIR') return { path: p, kind: 'missing' };
      throw new FileError(path, `cannot write: ${problem(e)}`);
    }
    if (st.isSymbolicLink()) {
      const d = DESCRIPTOR_LINK.exec(p);
      if (d) return d[1] === undefined || d[1] === 'self' || d[1] === String(pid) ? { path: p, kind: 'stream', fd: Number(d[2]) } : { path: p, kind: 'stream' };
      p = resolve(dirname(p), readlinkSync(p));
      continue;
    }
    if (st.isFile()) return { path: p, kind: 'file' };
    if (st.isCharacterDevice() || st.isFIFO()) return { path: p, kind: 'stream' };
    throw new FileError(path, `cannot write: ${kindOf(st)}`);
  }
}

async function writeAll(path: string, flags: string, data: Uint8Array, sync: boolean, opened?: () => void): Promise<void> {
  const fh = await open(path, flags, 0o666);
  opened?.();
  try {
    let off = 0;
    while (off < data.byteLength) off += (await fh.write(data, off, data.byteLength - off)).bytesWritten;
    if (sync) await fh.sync();
  } finally {
    await fh.close();
  }
}

/** Writes `data` to `path` (see the module comment): atomically for a regular file or a new one,
 *  directly to a device or FIFO. Errors are FileErrors naming `path`. */
export async function writeFileAtomic(path: string, content: Uint8Array | string): Promise<void> {
  const data = typeof content === 'string' ? new TextEncoder().encode(content) : content;
  const target = outputTarget(path);
  if (target.kind === 'stream') {
    try {
      // Appending: a descriptor link to a regular file (`> log`) is not truncated.
      if (target.fd !== undefined) writeFd(target.fd, data);
      else await writeAll(target.path, 'a', data, false);
    } catch (e) {
      throw new FileError(path, `cannot write: ${problem(e)}`);
    }
    return;
  }
  const tmp = temporaryPath(target.path);
  let created = false;
  try {
    await writeAll(tmp, 'wx', data, true, () => (created = true));
    await rename(tmp, target.path);
    created = false;
  } catch (e) {
    if (created) await rm(tmp, { force: true }).catch(() => undefined);
    throw new FileError(path, `cannot write: ${problem(e)}`);
  }
  // The rename itself reaches the disk with the folder's entry; best effort (not every platform
  // lets a folder be opened and synced).
  try {
    const dir = await open(dirname(target.path), 'r');
    try {
      await dir.sync();
    } finally {
      await dir.close();
    }
  } catch {
    // the file is in place either way
  }
}

/** A file opened for appending by the rules of `outputTarget`: each `write` is one write(2) of
 *  the whole buffer, flushed to disk (fdatasync) when the file is a regular one. */
export class Appender {
  private constructor(
    /** The path as given. */
    readonly file: string,
    readonly target: OutputTarget,
    private readonly fd: number,
    private readonly regular: boolean,
    /** Whether the descriptor is this Appender's to close (not one of the process's own). */
    private readonly owned: boolean,
  ) {}

  /** Opens (creating) `path` for appending; a FileError naming it when it cannot be. */
  static open(path: string): Appender {
    const target = outputTarget(path);
    if (target.fd !== undefined) return new Appender(path, target, target.fd, false, false);
    let fd: number;
    try {
      fd = openSync(target.path, 'a', 0o666);
    } catch (e) {
      throw new FileError(path, `cannot open for appending: ${problem(e)}`);
    }
    let regular: boolean;
    try {
      const st = fstatSync(fd);
      regular = st.isFile();
      if (!regular && !st.isCharacterDevice() && !st.isFIFO()) throw new FileError(path, `cannot write: ${kindOf(st)}`);
    } catch (e) {
      closeSync(fd);
      throw e;
    }
    return new Appender(path, target, fd, regular, true);
  }

  write(data: Uint8Array): void {
    try {
      writeFd(this.fd, data);
      if (this.regular) fdatasyncSync(this.fd);
    } catch (e) {
      throw new FileError(this.file, `cannot write: ${problem(e)}`);
    }
  }

  close(): void {
    if (this.owned) closeSync(this.fd);
  }
}
