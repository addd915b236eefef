// zlib/deflate decompression (RFC 1950/1951) in plain TypeScript, so that image decoding needs no
// Node module and runs the same in Node, Deno and browsers. The output size is fixed by the caller
// (a PNG's IHDR says exactly how many bytes its image data inflates to): nothing beyond it is ever
// allocated or written, whatever the stream claims.

export class InflateError extends Error {
  override name = 'InflateError';
}

const LEN_BASE = new Uint16Array([3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258]);
const LEN_EXTRA = new Uint8Array([0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0]);
const DIST_BASE = new Uint16Array([1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577]);
const DIST_EXTRA = new Uint8Array([0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13]);
const CLEN_ORDER = [16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15];

/** A decoding table indexed by the next `bits` input bits (LSB first): (symbol << 4) | length,
 *  0 for bit patterns that are no code. */
interface Huffman {
  table: Int32Array;
  bits: number;
}

function buildHuffman(lengths: Uint8Array, n: number): Huffman {
  const count = new Uint16Array(16);
  let maxLen = 0;
  for (let i = 0; i < n; i++) {
    const l = lengths[i]!;
    count[l]!++;
    if (l > maxLen) maxLen = l;
  }
  count[0] = 0;
  // Over-subscribed code sets are invalid; incomplete ones are allowed (unused patterns fail when met).
  let left = 1;
  for (let l = 1; l <= 15; l++) {
    left = (left << 1) - count[l]!;
    if (left < 0) throw new InflateError('invalid Huffman code lengths (over-subscribed)');
  }
  const next = new Uint16Array(16);
  let code = 0;
  for (let l = 1; l <= 15; l++) {
    code = (code + count[l - 1]!) << 1;
    next[l] = code;
  }
  const bits = Math.max(maxLen, 1);
  const table = new Int32Array(1 << bits);
  for (let sym = 0; sym < n; sym++) {
    const l = lengths[sym]!;
    if (l === 0) continue;
    let c = next[l]!++;
    let rev = 0;
    for (let i = 0; i < l; i++) {
      rev = (rev << 1) | (c & 1);
      c >>= 1;
    }
    const entry = (sym << 4) | l;
    for (let i = rev; i < 1 << bits; i += 1 << l) table[i] = entry;
  }
  return { table, bits };
}

let fixedLit: Huffman | null = null;
let fixedDist: Huffman | null = null;

function fixedTables(): [Huffman, Huffman] {
  if (!fixedLit || !fixedDist) {
    const l = new Uint8Array(288);
    l.fill(8, 0, 144);
    l.fill(9, 144, 256);
    l.fill(7, 256, 280);
    l.fill(8, 280, 288);
    fixedLit = buildHuffman(l, 288);
    fixedDist = buildHuffman(new Uint8Array(30).fill(5), 30);
  }
  return [fixedLit, fixedDist];
}

export interface InflateResult {
  /** The output buffer (`size` bytes when `exact`, else the bytes produced). */
  data: Uint8Array;
  /** The stream reached its final block's end (not only the output limit). */
  ended: boolean;
}

/**
 * Inflates a zlib stream into at most `size` bytes.
 *  - exact: the stream must produce at least `size` bytes (else "ends early"); bytes the stream
 *    would produce beyond `size` are ignored, as Pillow's PNG decoder ignores them.
 *  - not exact: producing more than `size` bytes is an error ("larger than"), fewer is fine.
 * When the final block ends with the input still holding the Adler-32 trailer, it is checked.
 */
export function inflateZlib(input: Uint8Array, size: number, exact: boolean): InflateResult {
  if (input.length < 2) throw new InflateError('zlib stream ends early (no header)');
  const cmf = input[0]!;
  const flg = input[1]!;
  if ((cmf & 15) !== 8 || cmf >> 4 > 7) throw new InflateError(`unknown zlib compression method (header byte 0x${cmf.toString(16)})`);
  if (((cmf << 8) | flg) % 31 !== 0) throw new InflateError('bad zlib header check bits');
  if (flg & 0x20) throw new InflateError('zlib preset dictionaries are not supported');
  const out = new Uint8Array(size);
  const end = input.length;
  let pos = 2;
  let bitbuf = 0;
  let bitcnt = 0;
  let o = 0;
  let full = false;
  let ended = false;
  /** Input bytes consumed when the output became full. */
  let fullAt = Infinity;

  // Bytes past the end read as zeros; a decode that really uses them is caught below.
  const need = (n: number): void => {
    while (bitcnt < n) {
      if (pos < end) bitbuf |= input[pos]! << bitcnt;
      pos++;
      bitcnt += 8;
    }
  };
  const overrun = (): boolean => pos - (bitcnt >> 3) > end;
  const bitsOf = (n: number): number => {
    need(n);
    const v = bitbuf & ((1 << n) - 1);
    bitbuf >>>= n;
    bitcnt -= n;
    return v;
  };
  const decodeSym = (h: Huffman): number => {
    need(h.bits);
    const e = h.table[bitbuf & ((1 << h.bits) - 1)]!;
    const l = e & 15;
    if (l === 0) throw new InflateError('invalid Huffman code in deflate data');
    bitbuf >>>= l;
    bitcnt -= l;
    return e >> 4;
  };

  const lengths = new Uint8Array(320);
  try {
    while (!ended && !full) {
      if (overrun()) break;
      const final = bitsOf(1);
      const type = bitsOf(2);
      if (type === 0) {
        // Stored block: skip to a byte boundary, give back whole buffered bytes.
        bitbuf >>>= bitcnt & 7;
        bitcnt -= bitcnt & 7;
        pos -= bitcnt >> 3;
        bitbuf = 0;
        bitcnt = 0;
        if (pos + 4 > end) break;
        const len = input[pos]! | (input[pos + 1]! << 8);
        const nlen = input[pos + 2]! | (input[pos + 3]! << 8);
        if ((len ^ 0xffff) !== nlen) throw new InflateError('stored block length check failed');
        pos += 4;
        const avail = Math.min(len, end - pos);
        const take = Math.min(avail, size - o);
        out.set(input.subarray(pos, pos + take), o);
        o += take;
        if (o === size) fullAt = pos + take;
        if (exact && o === size && (take < len || !final)) {
          full = true;
          break;
        }
        if (avail < len) {
          pos = end + 1;
          break;
        }
        pos += len;
        if (!exact && o === size && len > take) {
          full = true;
          break;
        }
      } else if (type === 1 || type === 2) {
        let lit: Huffman;
        let dist: Huffman;
        if (type === 1) [lit, dist] = fixedTables();
        else {
          const hlit = bitsOf(5) + 257;
          const hdist = bitsOf(5) + 1;
          const hclen = bitsOf(4) + 4;
          if (hlit > 286 || hdist > 30) throw new InflateError('too many length or distance codes');
          const cl = new Uint8Array(19);
          for (let i = 0; i < hclen; i++) cl[CLEN_ORDER[i]!] = bitsOf(3);
          const clh = buildHuffman(cl, 19);
          lengths.fill(0);
          let i = 0;
          while (i < hlit + hdist) {
            if (overrun()) throw new InflateError('deflate data ends early');
            const sym = decodeSym(clh);
            if (sym < 16) lengths[i++] = sym;
            else {
              let rep: number;
              let val = 0;
              if (sym === 16) {
                if (i === 0) throw new InflateError('repeat of no previous code length');
                val = lengths[i - 1]!;
                rep = 3 + bitsOf(2);
              } else if (sym === 17) rep = 3 + bitsOf(3);
              else rep = 11 + bitsOf(7);
              if (i + rep > hlit + hdist) throw new InflateError('code lengths overflow');
              lengths.fill(val, i, i + rep);
              i += rep;
            }
          }
          if (lengths[256] === 0) throw new InflateError('no end-of-block code');
          lit = buildHuffman(lengths.subarray(0, hlit), hlit);
          dist = buildHuffman(lengths.subarray(hlit, hlit + hdist), hdist);
        }
        // The symbol loop, with the bit buffer in locals.
        const lt = lit.table;
        const lb = lit.bits;
        const lm = (1 << lb) - 1;
        const dt = dist.table;
        const db = dist.bits;
        const dm = (1 << db) - 1;
        for (;;) {
          while (bitcnt < lb) {
            if (pos < end) bitbuf |= input[pos]! << bitcnt;
            pos++;
            bitcnt += 8;
          }
          if (pos - (bitcnt >> 3) > end + 4) throw new InflateError('deflate data ends early');
          let e = lt[bitbuf & lm]!;
          let l = e & 15;
          if (l === 0) throw new InflateError('invalid literal/length code');
          bitbuf >>>= l;
          bitcnt -= l;
          const sym = e >> 4;
          if (sym < 256) {
            if (o === size) {
              // One byte more than the output holds: ignored in exact mode (after checking that the
              // image bytes themselves did not run past the input), an error otherwise.
              full = true;
              break;
            }
            out[o++] = sym;
            if (o === size) fullAt = pos - (bitcnt >> 3);
            continue;
          }
          if (sym === 256) break;
          const li = sym - 257;
          if (li >= 29) throw new InflateError('invalid length symbol');
          let len = LEN_BASE[li]!;
          const le = LEN_EXTRA[li]!;
          if (le) len += bitsOf(le);
          while (bitcnt < db) {
            if (pos < end) bitbuf |= input[pos]! << bitcnt;
            pos++;
            bitcnt += 8;
          }
          e = dt[bitbuf & dm]!;
          l = e & 15;
          if (l === 0) throw new InflateError('invalid distance code');
          bitbuf >>>= l;
          bitcnt -= l;
          const di = e >> 4;
          if (di >= 30) throw new InflateError('invalid distance symbol');
          let d = DIST_BASE[di]!;
          const de = DIST_EXTRA[di]!;
          if (de) d += bitsOf(de);
          if (d > o) throw new InflateError('distance too far back');
          if (o + len > size) {
            len = size - o;
            full = true;
          }
          if (len < 24) for (let k = 0; k < len; k++, o++) out[o] = out[o - d]!;
          else if (d === 1) {
            out.fill(out[o - 1]!, o, o + len);
            o += len;
          } else if (d >= len) {
            out.copyWithin(o, o - d, o - d + len);
            o += len;
          } else for (let k = 0; k < len; k++, o++) out[o] = out[o - d]!;
          if (o === size) fullAt = pos - (bitcnt >> 3);
          if (full) break;
        }
        if (full) break;
      } else throw new InflateError('invalid deflate block type 3');
      if (overrun()) break;
      if (final) ended = true;
    }
  } catch (e) {
    // Garbage decoded from the zeros read past a cut stream: report the cut, not the garbage.
    if (e instanceof InflateError && pos - (bitcnt >> 3) > end) throw new InflateError('deflate data ends early');
    throw e;
  }
  // Input bits past the end were used: the stream is cut short (for a full output, the symbol that
  // found it full may sit in the missing part: then only bytes up to the output's end count).
  if (overrun() && !(full && fullAt <= end)) throw new InflateError('deflate data ends early');
  if (exact && o < size) throw new InflateError(ended ? `compressed data holds ${o} of the ${size} bytes needed` : 'deflate data ends early');
  if (!exact && full) throw new InflateError(`decompressed data larger than ${size} bytes`);
  if (ended) {
    // Adler-32 over the output, when the trailer is present.
    bitbuf >>>= bitcnt & 7;
    bitcnt -= bitcnt & 7;
    pos -= bitcnt >> 3;
    if (pos + 4 <= end) {
      const want = ((input[pos]! << 24) | (input[pos + 1]! << 16) | (input[pos + 2]! << 8) | input[pos + 3]!) >>> 0;
      if (adler32(out, o) !== want) throw new InflateError('zlib checksum mismatch (corrupt data)');
    }
  }
  return { data: exact ? out : out.subarray(0, o), ended };
}

export function adler32(data: Uint8Array, n = data.length): number {
  let a = 1;
  let b = 0;
  let i = 0;
  while (i < n) {
    const stop = Math.min(n, i + 3800);
    for (; i < stop; i++) {
      a += data[i]!;
      b += a;
    }
    a %= 65521;
    b %= 65521;
  }
  return ((b << 16) | a) >>> 0;
}
