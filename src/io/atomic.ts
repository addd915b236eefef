// Whole-file writes that never leave a half-written file under the final name: the bytes go to a
// temporary file in the same folder (so the rename stays on one file system), which is then renamed
// over the target. A reader sees the old file or the new one, never a mixture; a crash leaves at
// most a stray `.<name>.<random>.tmp` beside it.

import { randomBytes } from 'node:crypto';
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

/** Writes `data` to `path` atomically (creating the folder if needed). */
export async function writeFileAtomic(path: string, data: Uint8Array | string): Promise<void> {
  const dir = dirname(path);
  await mkdir(dir, { recursive: true });
  const tmp = join(dir, `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  try {
    await writeFile(tmp, data);
    await rename(tmp, path);
  } catch (e) {
    await rm(tmp, { force: true }).catch(() => undefined);
    throw e;
  }
}
