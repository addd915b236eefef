// A lock file per blob, at the path huggingface_hub locks (`<cache>/.locks/models--org--name/<etag>.lock`),
// so that two processes do not download the same blob into the same `.incomplete` file.
//
// Node has no flock(2), so this is an exclusive-create lock: the file holds `pid host time`, is
// refreshed while held, and is removed on release. A lock whose owner is gone (same host, dead pid)
// or that has not been refreshed for `staleMs` is taken over; so is an empty file, which is what
// huggingface_hub's flock-based lock leaves behind. Correctness never rests on the lock alone: blobs
// are only ever renamed into place after they are complete and verified.

import { randomBytes } from 'node:crypto';
import { mkdir, open, readFile, rename, rm, stat, utimes } from 'node:fs/promises';
import { hostname } from 'node:os';
import { dirname } from 'node:path';
import process from 'node:process';

export interface LockOptions {
  /** A lock not refreshed for this long is considered abandoned (default 60 s). */
  staleMs?: number;
  /** How often to look again while another process holds it (default 250 ms). */
  pollMs?: number;
  /** Called once when the lock is held by someone else and this call starts waiting. */
  onWait?: () => void;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function isStale(path: string, staleMs: number): Promise<boolean> {
  let text: string;
  let mtime: number;
  try {
    text = await readFile(path, 'utf8');
    mtime = (await stat(path)).mtimeMs;
  } catch {
    return false; // vanished: just try again
  }
  const age = Date.now() - mtime;
  const m = /^(\d+) (\S+) \d+$/.exec(text.trim());
  if (!m) return age > 1000; // empty (a Python flock file) or foreign; a fresh one may be mid-write
  if (m[2] === hostname() && !alive(Number(m[1]))) return true;
  return age > staleMs;
}

/** Takes the lock at `path`, waiting while another live process holds it; resolves to its release. */
export async function acquireLock(path: string, o: LockOptions = {}): Promise<() => Promise<void>> {
  const staleMs = o.staleMs ?? 60_000;
  const pollMs = o.pollMs ?? 250;
  const mine = `${process.pid} ${hostname()} ${Date.now()}`;
  await mkdir(dirname(path), { recursive: true });
  let waited = false;
  for (;;) {
    try {
      const fh = await open(path, 'wx', 0o664);
      try {
        await fh.writeFile(mine);
      } finally {
        await fh.close();
      }
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    if (await isStale(path, staleMs)) {
      const aside = `${path}.${randomBytes(4).toString('hex')}.stale`;
      try {
        await rename(path, aside);
        await rm(aside, { force: true });
      } catch {
        // someone else took it over first
      }
      continue;
    }
    if (!waited) {
      waited = true;
      o.onWait?.();
    }
    await new Promise((r) => setTimeout(r, pollMs));
  }
  const beat = setInterval(() => {
    const now = new Date();
    utimes(path, now, now).catch(() => undefined);
  }, Math.max(1000, Math.floor(staleMs / 4)));
  beat.unref?.();
  return async () => {
    clearInterval(beat);
    try {
      if ((await readFile(path, 'utf8')) === mine) await rm(path, { force: true });
    } catch {
      // already gone
    }
  };
}
