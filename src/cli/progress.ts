// Progress over a known number of items (images embedded, pairs scored), on stderr only: a redrawn
// line on a terminal (at most ten times a second), one line every few seconds otherwise (a pipe, a
// log file, CI), and a closing line with the time taken and the rate.

import process from 'node:process';
import { formatSeconds, type ProgressStream } from '../hub/progress.js';

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
      const width = (this.stream.columns ?? 100) - 1;
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
