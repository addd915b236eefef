// Dawn (the `webgpu` package's dawn.node) prints two lines straight to file descriptor 2 when it
// opens an adapter whose driver reports more dynamic buffers than Dawn can offset (lavapipe and
// most Vulkan drivers report 1000000; Dawn clamps to 16 and says so):
//   Warning: maxDynamicUniformBuffersPerPipelineLayout artificially reduced from 1000000 to 16 to fit dynamic offset allocation limit.
//   Warning: maxDynamicStorageBuffersPerPipelineLayout artificially reduced from 1000000 to 16 to fit dynamic offset allocation limit.
// They come from Dawn's own limit normalisation while the adapter is enumerated, before any limit
// is requested, so no requiredLimits avoid them, and native code writes them past Node's streams.
// The command therefore runs in a child whose stderr goes through DawnLineFilter (see bin.ts):
// exactly these lines are dropped, everything else (other warnings included) passes unchanged and
// without delay.

/** Dawn's clamping notices, one whole line each (no newline). */
export const DAWN_LIMIT_NOTICE = /^Warning: maxDynamic(?:Uniform|Storage)BuffersPerPipelineLayout artificially reduced from \d+ to \d+ to fit dynamic offset allocation limit\.\r?$/;

const PREFIX = 'Warning: maxDynamic';

/** Streams text through, dropping whole lines that match DAWN_LIMIT_NOTICE. Text is cut at `\n`
 *  and `\r` (a progress line is redrawn after `\r`); a piece is held back only while it still reads
 *  like the start of a notice, any other text is passed on as soon as it arrives. */
export class DawnLineFilter {
  /** The start of the current piece, held back while it may be a notice. */
  private held = '';
  /** True when the current piece has been passed on in part (so it is not a notice). */
  private passing = false;

  constructor(private readonly write: (text: string) => void) {}

  push(text: string): void {
    let out = '';
    let i = 0;
    while (i < text.length) {
      let end = i;
      while (end < text.length && text[end] !== '\n' && text[end] !== '\r') end++;
      const boundary = end < text.length ? text[end]! : '';
      if (boundary) end++;
      const piece = text.slice(i, end);
      i = end;
      if (this.passing) {
        out += piece;
        if (boundary) this.passing = false;
        continue;
      }
      const seg = this.held + piece;
      this.held = '';
      if (boundary === '\n') {
        if (!DAWN_LIMIT_NOTICE.test(seg.slice(0, -1))) out += seg;
      } else if (boundary === '\r') {
        // A notice ending "\r\n" (Windows) waits for its "\n".
        if (DAWN_LIMIT_NOTICE.test(seg)) this.held = seg;
        else out += seg;
      } else if (PREFIX.startsWith(seg) || seg.startsWith(PREFIX)) {
        this.held = seg;
      } else {
        out += seg;
        this.passing = true;
      }
    }
    if (out) this.write(out);
  }

  /** Passes on what is held back (the stream ended inside a line). */
  end(): void {
    if (this.held && !DAWN_LIMIT_NOTICE.test(this.held)) this.write(this.held);
    this.held = '';
    this.passing = false;
  }
}
