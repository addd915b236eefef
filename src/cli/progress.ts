// Progress on stderr only. Model loading: the library's load events (downloads, weights going onto
// the GPU, models ready) drawn as one redrawn line on a terminal, or as one line per finished
// download and per loaded model where asked for off one (a pipe, a log file, CI). Items (images
// embedded, pairs scored): a redrawn line on a terminal (at most ten times a second), one line
// every few seconds otherwise, and a closing line with the time taken and the rate.

import process from 'node:process';
import type { LoadEvent, LoadEventCallback } from '../io/events.js';

/** The parts of a stream the displays use (`process.stderr` by default). */
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

/** The load display of a command that loads models: on a terminal always; off one only with
 *  `--progress` (`asked`); `undefined` (silence) otherwise. */
export function loadDisplay(asked: boolean, stream: ProgressStream = process.stderr): LoadDisplay | undefined {
  return stream.isTTY || asked ? new LoadDisplay(stream) : undefined;
}

/** Renders load events. On a terminal one line is redrawn (at most ten times a second) with the
 *  downloads in flight (percent, bytes, rate, ETA) or the checkpoint going onto the GPU; off one
 *  nothing is redrawn. Either way a finished download, a wait for another process's lock and a
 *  loaded model each print a line. Files found in a cache print nothing. */
export class LoadDisplay {
  private readonly downloads = new Map<string, { loaded: number; total: number; rate: number; file: string; started: number }>();
  private weights: string | undefined;
  private readonly weightBytes = new Map<string, number>();
  private lastDraw = 0;
  private drawn = false;

  constructor(private readonly stream: ProgressStream = process.stderr) {}

  /** The callback to give as `onProgress`. */
  readonly onProgress: LoadEventCallback = (e) => this.render(e);

  /** Clears the redrawn line (once loading is over, before other output). */
  end(): void {
    this.clear();
    this.downloads.clear();
    this.weights = undefined;
  }

  private clear(): void {
    if (this.drawn) this.stream.write('\r\x1b[K');
    this.drawn = false;
  }

  private line(text: string): void {
    this.clear();
    this.stream.write(`${text}\n`);
    this.draw(true);
  }

  private draw(force: boolean): void {
    if (!this.stream.isTTY) return;
    const now = Date.now();
    if (!force && now - this.lastDraw < 100) return;
    let line: string | undefined;
    if (this.downloads.size) {
      let loaded = 0;
      let total = 0;
      let rate = 0;
      let file = '';
      for (const d of this.downloads.values()) {
        loaded += d.loaded;
        total += d.total;
        rate += d.rate;
        file = d.file;
      }
      const pct = total ? Math.floor((100 * loaded) / total) : 0;
      const eta = rate > 0 && total > loaded ? ` ETA ${formatSeconds((total - loaded) / rate)}` : '';
      const what = this.downloads.size > 1 ? `${this.downloads.size} files` : file;
      line = `${what}: ${pct}% ${formatBytes(loaded)}/${formatBytes(total)} ${formatBytes(rate)}/s${eta}`;
    } else line = this.weights;
    if (line === undefined) return;
    this.lastDraw = now;
    // A pseudo-terminal may report 0 columns.
    const width = (this.stream.columns || 100) - 1;
    if (line.length > width) line = `…${line.slice(line.length - width + 1)}`;
    this.stream.write(`\r\x1b[K${line}`);
    this.drawn = true;
  }

  private render(e: LoadEvent): void {
    switch (e.status) {
      case 'initiate':
        return;
      case 'download':
        this.downloads.set(`${e.name}/${e.file}`, { loaded: 0, total: 0, rate: 0, file: `${e.name}/${e.file}`, started: Date.now() });
        return this.draw(true);
      case 'progress': {
        const key = `${e.name}/${e.file}`;
        const d = this.downloads.get(key);
        this.downloads.set(key, { loaded: e.loaded, total: e.total, rate: e.rate ?? 0, file: key, started: d?.started ?? Date.now() });
        return this.draw(false);
      }
      case 'done': {
        const key = `${e.name}/${e.file}`;
        const d = this.downloads.get(key);
        this.downloads.delete(key);
        if (e.cached || !d) return this.draw(true);
        const took = e.elapsed ?? (Date.now() - d.started) / 1000;
        const size = e.total ?? d.total;
        const resumed = e.resumedFrom ?? 0;
        const got = size - resumed;
        return this.line(`${e.name}: ${e.file} ${formatBytes(size)} in ${formatSeconds(took)}${took > 0 ? ` (${formatBytes(got / took)}/s)` : ''}${resumed ? `, resumed at ${formatBytes(resumed)}` : ''}`);
      }
      case 'wait':
        return this.line(`${e.name}: waiting for another process downloading "${e.file}" (${e.lock})`);
      case 'weights': {
        const pct = e.totalBytes ? Math.floor((100 * e.bytes) / e.totalBytes) : 100;
        this.weights = `loading ${e.role ? `${e.role} ` : ''}${e.name}/${e.file}: ${pct}% ${formatBytes(e.bytes)}/${formatBytes(e.totalBytes)}`;
        if (e.loaded === e.total) {
          const key = e.role ?? e.name;
          this.weightBytes.set(key, (this.weightBytes.get(key) ?? 0) + e.totalBytes);
        }
        return this.draw(e.loaded === 0 || e.loaded === e.total);
      }
      case 'ready': {
        this.weights = undefined;
        const bytes = this.weightBytes.get(e.role ?? e.name);
        return this.line(`${e.role ? `${e.role}: ` : ''}${e.name} ready${bytes ? ` (${formatBytes(bytes)} of weights on the GPU)` : ''}`);
      }
    }
  }
}

export interface ItemProgressOptions {
  /** Where to write (default process.stderr). */
  stream?: ProgressStream;
  /** What the items are called in the lines (default "items"). */
  unit?: string;
  /** Milliseconds between lines when the stream is not a terminal (default 5000). */
  intervalMs?: number;
  /** The clock in milliseconds (default performance.now). */
  now?: () => number;
}

/** `label: 3/10 30% 1.52 images/s ETA 5 s` */
export class ItemProgress {
  done = 0;
  private readonly stream: ProgressStream;
  private readonly unit: string;
  private readonly interval: number;
  private readonly now: () => number;
  private readonly started: number;
  private last: number;
  private drawn = false;
  private finished = false;

  constructor(
    readonly total: number,
    readonly label: string,
    o: ItemProgressOptions = {},
  ) {
    this.stream = o.stream ?? process.stderr;
    this.unit = o.unit ?? 'items';
    this.interval = o.intervalMs ?? 5000;
    this.now = o.now ?? (() => performance.now());
    this.started = this.now();
    this.last = this.started;
  }

  /** Items per second so far. */
  rate(): number {
    const s = (this.now() - this.started) / 1000;
    return s > 0 ? this.done / s : 0;
  }

  /** The current line (no newline). */
  line(): string {
    const pct = this.total ? Math.floor((100 * this.done) / this.total) : 100;
    const rate = this.rate();
    const eta = rate > 0 && this.done < this.total ? ` ETA ${formatSeconds((this.total - this.done) / rate)}` : '';
    return `${this.label}: ${this.done}/${this.total} ${pct}% ${formatRate(rate)} ${this.unit}/s${eta}`;
  }

  /** `n` more items done. */
  tick(n = 1): void {
    this.done += n;
    const now = this.now();
    if (this.stream.isTTY) {
      if (now - this.last < 100 && this.done < this.total) return;
      this.last = now;
      let line = this.line();
      const width = (this.stream.columns || 100) - 1;
      if (line.length > width) line = line.slice(0, width);
      this.stream.write(`\r\x1b[K${line}`);
      this.drawn = true;
      return;
    }
    if (now - this.last >= this.interval && this.done < this.total) {
      this.last = now;
      this.stream.write(`${this.line()}\n`);
    }
  }

  /** The closing line: how many, in how long, at what rate (once). */
  finish(): void {
    if (this.finished) return;
    this.finished = true;
    const s = (this.now() - this.started) / 1000;
    if (this.drawn) this.stream.write('\r\x1b[K');
    this.stream.write(`${this.label}: ${this.done}/${this.total} ${this.unit} in ${s < 10 ? `${s.toFixed(1)} s` : formatSeconds(s)} (${formatRate(this.rate())} ${this.unit}/s)\n`);
  }
}

function formatRate(r: number): string {
  return r >= 100 ? r.toFixed(0) : r >= 10 ? r.toFixed(1) : r.toFixed(2);
}
