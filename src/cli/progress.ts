// A progress bar for counted work (benchmark items, gallery images) on stderr: on a terminal a
// redrawn line (count, percent, rate, ETA) at most ten times a second; elsewhere (a pipe, a log
// file, CI, a Slurm job) one line every few seconds. Never writes to stdout.

import process from 'node:process';
import { formatSeconds, type ProgressStream } from '../hub/progress.js';

export class ItemProgress {
  private done = 0;
  private readonly started = performance.now();
  private lastDraw = 0;
  private drawn = false;

  constructor(
    readonly total: number,
    readonly label: string,
    private readonly stream: ProgressStream = process.stderr,
    /** Seconds between lines when the stream is not a terminal. */
    private readonly logEverySeconds = 5,
  ) {}

  /** The line as it would be drawn now. */
  line(): string {
    const elapsed = (performance.now() - this.started) / 1000;
    const rate = elapsed > 0 ? this.done / elapsed : 0;
    const pct = this.total ? Math.floor((100 * this.done) / this.total) : 100;
    const eta = rate > 0 && this.done < this.total ? ` ETA ${formatSeconds((this.total - this.done) / rate)}` : '';
    const speed = rate >= 1 ? `${rate.toFixed(1)} items/s` : rate > 0 ? `${(1 / rate).toFixed(1)} s/item` : '';
    return `${this.label}: ${this.done}/${this.total} ${pct}%${speed ? ` ${speed}` : ''}${eta} (${formatSeconds(elapsed)})`;
  }

  tick(n = 1): void {
    this.done += n;
    const now = performance.now();
    const every = this.stream.isTTY ? 100 : this.logEverySeconds * 1000;
    if (now - this.lastDraw < every && this.done < this.total) return;
    this.lastDraw = now;
    this.draw();
  }

  private draw(): void {
    let text = this.line();
    if (this.stream.isTTY) {
      const width = (this.stream.columns ?? 100) - 1;
      if (text.length > width) text = `…${text.slice(text.length - width + 1)}`;
      this.stream.write(`\r\x1b[K${text}`);
      this.drawn = true;
    } else this.stream.write(`${text}\n`);
  }

  /** Ends the bar (a final line on a terminal). */
  finish(): void {
    if (this.stream.isTTY && this.drawn) {
      this.stream.write('\n');
      this.drawn = false;
    }
  }
}
