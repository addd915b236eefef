// Random-access byte sources: files (Node, Deno) and Blobs (browsers). Reads are positioned, so a
// multi-GB checkpoint is never held in memory as a whole.

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

/** Opens a file for positioned reads (Node ≥ 20 and Deno 2 through `node:fs/promises`). */
export async function openFile(path: string): Promise<ByteSource> {
  const fs = (await import('node:fs/promises')) as unknown as { open(p: string, flags: string): Promise<FileHandleLike> };
  let handle: FileHandleLike;
  try {
    handle = await fs.open(path, 'r');
  } catch (e) {
    const code = (e as { code?: string }).code;
    throw new Error(`${path}: cannot open (${code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'is a directory' : (e as Error).message})`);
  }
  const st = await handle.stat();
  if (!st.isFile()) {
    await handle.close();
    throw new Error(`${path}: not a regular file`);
  }
  const size = Number(st.size);
  return {
    name: path,
    size,
    async read(offset: number, length: number): Promise<Uint8Array> {
      if (offset < 0 || length < 0 || offset + length > size) {
        throw new Error(`${path}: read of ${length} bytes at ${offset} is past the end of the file (${size} bytes)`);
      }
      const out = new Uint8Array(length);
      let done = 0;
      while (done < length) {
        const want = Math.min(MAX_SINGLE_READ, length - done);
        const { bytesRead } = await handle.read(out.subarray(done, done + want), 0, want, offset + done);
        if (bytesRead === 0) throw new Error(`${path}: file ended early at byte ${offset + done} (truncated?)`);
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

/** Wraps a Blob/File (browsers) or an in-memory buffer. */
export function blobSource(blob: BlobLike | Uint8Array, name = 'buffer'): ByteSource {
  if (blob instanceof Uint8Array) {
    const bytes = blob;
    return {
      name,
      size: bytes.byteLength,
      async read(offset, length) {
        if (offset < 0 || offset + length > bytes.byteLength) throw new Error(`${name}: read past the end (${bytes.byteLength} bytes)`);
        return bytes.subarray(offset, offset + length);
      },
      async close() {},
    };
  }
  return {
    name,
    size: blob.size,
    async read(offset, length) {
      if (offset < 0 || offset + length > blob.size) throw new Error(`${name}: read past the end (${blob.size} bytes)`);
      return new Uint8Array(await blob.slice(offset, offset + length).arrayBuffer());
    },
    async close() {},
  };
}
