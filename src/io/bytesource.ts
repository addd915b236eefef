// Random-access byte sources: files (Node, Deno) and Blobs (browsers). Reads are positioned, so a
// multi-GB checkpoint is never held in memory as a whole.

import { FileError } from './errors.js';
import { nodeFs } from '../platform/host.js';

export interface ByteSource {
  /** A name for error messages (the file path). */
  readonly name: string;
  readonly size: number;
  /** Reads exactly `length` bytes at `offset`; fails if the source is shorter. */
  read(offset: number, length: number): Promise<Uint8Array>;
  close(): Promise<void>;
}

const MAX_SINGLE_READ = 1 << 30;

interface FileHandleLike {
  read(buffer: Uint8Array, offset: number, length: number, position: number): Promise<{ bytesRead: number }>;
  stat(): Promise<{ size: number | bigint; isFile(): boolean }>;
  close(): Promise<void>;
}

interface StatLike {
  isFile(): boolean;
  isDirectory(): boolean;
  isFIFO(): boolean;
}

function kindOf(st: StatLike): string {
  return st.isDirectory() ? 'a directory' : st.isFIFO() ? 'a FIFO' : 'a device or socket';
}

/** Opens a file for positioned reads (Node ≥ 20 and Deno 2 through `node:fs/promises`). The path
 *  is checked to be a regular file before it is opened: opening a FIFO blocks until a writer comes. */
export async function openFile(path: string): Promise<ByteSource> {
  const fs = (await nodeFs()) as unknown as { open(p: string, flags: string): Promise<FileHandleLike>; stat(p: string): Promise<StatLike> };
  const cannot = (e: unknown) => {
    const code = (e as { code?: string }).code;
    return new FileError(path, `cannot open (${code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'is a directory' : code === 'EACCES' ? 'permission denied' : (e as Error).message})`);
  };
  let before: StatLike;
  try {
    before = await fs.stat(path);
  } catch (e) {
    throw cannot(e);
  }
  if (!before.isFile()) throw new FileError(path, `not a regular file (${kindOf(before)})`);
  let handle: FileHandleLike;
  try {
    handle = await fs.open(path, 'r');
  } catch (e) {
    throw cannot(e);
  }
  const st = await handle.stat();
  if (!st.isFile()) {
    await handle.close();
    throw new FileError(path, 'not a regular file');
  }
  const size = Number(st.size);
  return {
    name: path,
    size,
    async read(offset: number, length: number): Promise<Uint8Array> {
      if (offset < 0 || length < 0 || offset + length > size) {
        throw new FileError(path, `read of ${length} bytes at ${offset} is past the end of the file (${size} bytes)`);
      }
      const out = new Uint8Array(length);
      let done = 0;
      while (done < length) {
        const want = Math.min(MAX_SINGLE_READ, length - done);
        const { bytesRead } = await handle.read(out.subarray(done, done + want), 0, want, offset + done);
        if (bytesRead === 0) throw new FileError(path, `file ended early at byte ${offset + done} (truncated?)`);
        done += bytesRead;
      }
      return out;
    },
    close: () => handle.close(),
  };
}

/** What `blobSource` needs of a Blob or File (structural, so the declarations need no DOM types). */
export interface BlobLike {
  readonly size: number;
  slice(start?: number, end?: number): { arrayBuffer(): Promise<ArrayBuffer> };
}

/** Reads a whole regular file (refusing FIFOs, devices and directories before opening them, and
 *  files larger than `maxBytes`). */
export async function readRegularFile(path: string, maxBytes = 2 ** 30): Promise<Uint8Array> {
  const src = await openFile(path);
  try {
    if (src.size > maxBytes) throw new FileError(path, `${src.size} bytes is more than the ${maxBytes}-byte limit for this kind of file`);
    return await src.read(0, src.size);
  } finally {
    await src.close();
  }
}

/** Wraps a Blob/File (browsers) or an in-memory buffer. */
export function blobSource(blob: BlobLike | Uint8Array, name = 'buffer'): ByteSource {
  if (blob instanceof Uint8Array) {
    const bytes = blob;
    return {
      name,
      size: bytes.byteLength,
      async read(offset, length) {
        if (offset < 0 || length < 0 || offset + length > bytes.byteLength) throw new FileError(name, `read past the end (${bytes.byteLength} bytes)`);
        return bytes.subarray(offset, offset + length);
      },
      async close() {},
    };
  }
  return {
    name,
    size: blob.size,
    async read(offset, length) {
      if (offset < 0 || length < 0 || offset + length > blob.size) throw new FileError(name, `read past the end (${blob.size} bytes)`);
      return new Uint8Array(await blob.slice(offset, offset + length).arrayBuffer());
    },
    async close() {},
  };
}
