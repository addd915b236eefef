// Download progress: events with rate and ETA, and the default reporter, which writes to stderr
// only (a redrawn line on a terminal, one line per finished file otherwise).

import process from 'node:process';
import { repoUrlName, type RepoType } from './paths.js';

/** One progress report for one file. */
export interface DownloadProgress {
  repoId: string;
  /** `model` or `dataset`. */
  repoType: RepoType;
  /** The file's path in the repo. */
  path: string;
  /** `start` before the first byte, `progress` while bytes arrive, `done` once the file is in place. */
  phase: 'start' | 'progress' | 'done';
  /** Bytes of the file on disk so far (resumed bytes included). */
  loaded: number;
  /** The file's size. */
  total: number;
  /** Bytes that were already on disk from an earlier, interrupted download. */
  resumedFrom: number;
  /** Bytes per second received by this download so far (0 before the first byte). */
  rate: number;
  /** Seconds left at that rate; `null` while unknown. */
  etaSeconds: number | null;
  /** Seconds since this download started. */
  elapsedSeconds: number;
}

/** Receives progress reports. */
export type ProgressCallback = (p: DownloadProgress) => void;

/** The parts of a stream the reporter uses (`process.stderr` by default). */
export interface ProgressStream {
  write(text: string): unknown;
  isTTY?: boolean;
  columns?: number;
}

/** `1.5 GB`, `320 kB`, `12 B` (decimal units, as tqdm prints them). */
export function formatBytes(n: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let v = n;
  let i = 0;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return `${i === 0 ? v.toFixed(0) : v < 10 ? v.toFixed(2) : v < 100 ? v.toFixed(1) : v.toFixed(0)} ${units[i]}`;
}

/** `42 s`, `3 min 05 s`, `1 h 02 min`. */
export function formatSeconds(s: number): string {
  const t = Math.max(0, Math.round(s));
  if (t < 60) return `${t} s`;
  if (t < 3600) return `${Math.floor(t / 60)} min ${String(t % 60).padStart(2, '0')} s`;
  return `${Math.floor(t / 3600)} h ${String(Math.floor((t % 3600) / 60)).padStart(2, '0')} min`;
}

/** The default reporter. On a terminal it redraws one line (all files in flight together: percent,
 *  bytes, rate, ETA) at most ten times a second; elsewhere (a pipe, a log file, CI) it prints one
 *  line per finished file. It never writes to stdout. */
export function stderrProgress(stream: ProgressStream = process.stderr): ProgressCallback {
  const active = new Map<string, DownloadProgress>();
  let lastDraw = 0;
  let drawn = false;
  const clear = (): void => {
    if (drawn) stream.write('\r\x1b[K');
    drawn = false;
  };
  const draw = (): void => {
    if (!active.size) return;
    let loaded = 0;
    let total = 0;
    let rate = 0;
    let last: DownloadProgress | undefined;
    for (const p of active.values()) {
      loaded += p.loaded;
      total += p.total;
      rate += p.rate;
      last = p;
    }
    const pct = total ? Math.floor((100 * loaded) / total) : 100;
    const eta = rate > 0 ? ` ETA ${formatSeconds((total - loaded) / rate)}` : '';
    const files = active.size > 1 ? `${active.size} files` : last!.path;
    let line = `${files}: ${pct}% ${formatBytes(loaded)}/${formatBytes(total)} ${formatBytes(rate)}/s${eta}`;
    const width = (stream.columns ?? 100) - 1;
    if (line.length > width) line = `…${line.slice(line.length - width + 1)}`;
    stream.write(`\r\x1b[K${line}`);
    drawn = true;
  };
  return (p) => {
    const repo = repoUrlName(p.repoId, p.repoType ?? 'model');
    const key = `${repo}/${p.path}`;
    if (p.phase === 'done') {
      active.delete(key);
      const took = p.elapsedSeconds;
      const got = p.loaded - p.resumedFrom;
      const line = `${repo}: ${p.path} ${formatBytes(p.total)} in ${formatSeconds(took)}${took > 0 ? ` (${formatBytes(got / took)}/s)` : ''}${p.resumedFrom ? `, resumed at ${formatBytes(p.resumedFrom)}` : ''}`;
      if (stream.isTTY) {
        clear();
        stream.write(`${line}\n`);
        draw();
      } else {
        stream.write(`${line}\n`);
      }
      return;
    }
    active.set(key, p);
    if (!stream.isTTY) return;
    const now = Date.now();
    if (p.phase === 'start' || now - lastDraw >= 100) {
      lastDraw = now;
      draw();
    }
  };
}
