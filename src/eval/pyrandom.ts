// CPython's `random.Random` (Modules/_randommodule.c and Lib/random.py, 3.11/3.12), reproduced
// exactly for the functions the benchmark scripts use: the same seed gives the same stream of
// 32-bit outputs, and every derived function consumes that stream the way CPython does, so a
// sequence of calls here picks the same elements as the same calls in Python.
//
// Numbers: everything that fits stays a JS number (uint32 arithmetic via Math.imul and >>> 0);
// BigInt appears only for seeds and for getrandbits results wider than 53 bits.

const N = 624;
const M = 397;
const MATRIX_A = 0x9908b0df;
const UPPER_MASK = 0x80000000;
const LOWER_MASK = 0x7fffffff;

/** The 32-bit key words CPython derives from an integer seed: |n| in little-endian 32-bit words,
 *  at least one word (so 0 → [0]). */
export function seedWords(n: number | bigint): number[] {
  let v: bigint;
  if (typeof n === 'bigint') v = n;
  else {
    if (!Number.isSafeInteger(n)) throw new RangeError(`PyRandom seed: expected an integer (a safe integer or a bigint), got ${n}`);
    v = BigInt(n);
  }
  if (v < 0n) v = -v;
  const words: number[] = [];
  do {
    words.push(Number(v & 0xffffffffn));
    v >>= 32n;
  } while (v > 0n);
  return words;
}

/** Python's int.bit_length() for a non-negative safe integer. */
function bitLength(n: number): number {
  if (n < 2 ** 32) return 32 - Math.clz32(n);
  return 32 + bitLength(Math.floor(n / 2 ** 32));
}

export class PyRandom {
  private readonly mt = new Uint32Array(N);
  private mti = N + 1;

  constructor(seed: number | bigint = 0) {
    this.seed(seed);
  }

  /** `random.seed(n)` for an integer n (`init_by_array` over the words of |n|). */
  seed(n: number | bigint): void {
    this.initByArray(seedWords(n));
  }

  private initGenrand(s: number): void {
    const mt = this.mt;
    mt[0] = s >>> 0;
    for (let i = 1; i < N; i++) {
      const prev = mt[i - 1]!;
      mt[i] = (Math.imul(1812433253, prev ^ (prev >>> 30)) + i) >>> 0;
    }
    this.mti = N;
  }

  private initByArray(key: readonly number[]): void {
    const mt = this.mt;
    this.initGenrand(19650218);
    let i = 1;
    let j = 0;
    for (let k = Math.max(N, key.length); k > 0; k--) {
      const prev = mt[i - 1]!;
      mt[i] = ((mt[i]! ^ Math.imul(prev ^ (prev >>> 30), 1664525)) + key[j]! + j) >>> 0;
      i++;
      j++;
      if (i >= N) {
        mt[0] = mt[N - 1]!;
        i = 1;
      }
      if (j >= key.length) j = 0;
    }
    for (let k = N - 1; k > 0; k--) {
      const prev = mt[i - 1]!;
      mt[i] = ((mt[i]! ^ Math.imul(prev ^ (prev >>> 30), 1566083941)) - i) >>> 0;
      i++;
      if (i >= N) {
        mt[0] = mt[N - 1]!;
        i = 1;
      }
    }
    mt[0] = 0x80000000; // MSB is 1, assuring a non-zero initial array
  }

  /** The next raw 32-bit output (`genrand_uint32`). */
  nextUint32(): number {
    const mt = this.mt;
    if (this.mti >= N) {
      let kk = 0;
      for (; kk < N - M; kk++) {
        const y = (mt[kk]! & UPPER_MASK) | (mt[kk + 1]! & LOWER_MASK);
        mt[kk] = mt[kk + M]! ^ (y >>> 1) ^ (y & 1 ? MATRIX_A : 0);
      }
      for (; kk < N - 1; kk++) {
        const y = (mt[kk]! & UPPER_MASK) | (mt[kk + 1]! & LOWER_MASK);
        mt[kk] = mt[kk + (M - N)]! ^ (y >>> 1) ^ (y & 1 ? MATRIX_A : 0);
      }
      const y = (mt[N - 1]! & UPPER_MASK) | (mt[0]! & LOWER_MASK);
      mt[N - 1] = mt[M - 1]! ^ (y >>> 1) ^ (y & 1 ? MATRIX_A : 0);
      this.mti = 0;
    }
    let y = mt[this.mti++]!;
    y ^= y >>> 11;
    y ^= (y << 7) & 0x9d2c5680;
    y ^= (y << 15) & 0xefc60000;
    y ^= y >>> 18;
    return y >>> 0;
  }

  /** `random()`: a double in [0, 1) from two outputs (27 + 26 bits). */
  random(): number {
    const a = this.nextUint32() >>> 5;
    const b = this.nextUint32() >>> 6;
    return (a * 67108864 + b) * (1 / 9007199254740992);
  }

  /** `getrandbits(k)` for any k ≥ 0, as a bigint. For k ≤ 32 one output shifted right by 32 − k;
   *  for larger k, ceil(k/32) outputs fill the result least-significant word first, and the last
   *  (most significant) word keeps only its top k mod 32 bits. */
  getrandbits(k: number): bigint {
    if (!Number.isSafeInteger(k) || k < 0) throw new RangeError(`getrandbits: expected a non-negative integer number of bits, got ${k}`);
    if (k === 0) return 0n;
    if (k <= 32) return BigInt(this.nextUint32() >>> (32 - k));
    let result = 0n;
    let shift = 0n;
    for (let left = k; left > 0; left -= 32, shift += 32n) {
      let r = this.nextUint32();
      if (left < 32) r >>>= 32 - left;
      result |= BigInt(r) << shift;
    }
    return result;
  }

  /** `getrandbits(k)` as a number, for k ≤ 53 (same draws as `getrandbits`). */
  getrandbitsNumber(k: number): number {
    if (!Number.isInteger(k) || k < 0 || k > 53) throw new RangeError(`getrandbitsNumber: expected an integer number of bits in 0..53, got ${k}`);
    if (k === 0) return 0;
    if (k <= 32) return this.nextUint32() >>> (32 - k);
    const low = this.nextUint32();
    const high = this.nextUint32() >>> (64 - k);
    return high * 2 ** 32 + low;
  }

  /** `_randbelow(n)` (the getrandbits variant): draw getrandbits(bit_length(n)) until it is < n.
   *  n must be a positive safe integer. */
  randbelow(n: number): number {
    if (!Number.isSafeInteger(n) || n <= 0) throw new RangeError(`randbelow: expected a positive safe integer, got ${n}`);
    const k = bitLength(n);
    let r = this.getrandbitsNumber(k);
    while (r >= n) r = this.getrandbitsNumber(k);
    return r;
  }

  /** `randrange(stop)` / `randrange(start, stop[, step])` for safe integers (CPython 3.12 logic). */
  randrange(start: number, stop?: number, step = 1): number {
    for (const [name, v] of [['start', start], ['stop', stop], ['step', step]] as const) {
      if (v !== undefined && !Number.isSafeInteger(v)) throw new RangeError(`randrange: ${name} must be an integer, got ${v}`);
    }
    if (stop === undefined) {
      if (step !== 1) throw new TypeError('randrange: missing a non-None stop argument');
      if (start > 0) return this.randbelow(start);
      throw new RangeError(`randrange: empty range for randrange(${start})`);
    }
    const width = stop - start;
    if (step === 1) {
      if (width > 0) return start + this.randbelow(width);
      throw new RangeError(`randrange: empty range in randrange(${start}, ${stop})`);
    }
    let n: number;
    if (step > 0) n = Math.floor((width + step - 1) / step);
    else if (step < 0) n = Math.floor((width + step + 1) / step);
    else throw new RangeError('randrange: zero step for randrange()');
    if (n <= 0) throw new RangeError(`randrange: empty range in randrange(${start}, ${stop}, ${step})`);
    return start + step * this.randbelow(n);
  }

  /** `choice(seq)`: seq[_randbelow(len(seq))]. */
  choice<T>(seq: readonly T[]): T {
    if (seq.length === 0) throw new RangeError('choice: cannot choose from an empty sequence');
    return seq[this.randbelow(seq.length)]!;
  }

  /** `sample(population, k)`: k distinct elements in selection order. CPython picks between two
   *  methods that consume the stream differently: with setsize = 21, plus 4^ceil(log4(3k)) when
   *  k > 5, a population of n ≤ setsize uses the pool method (j = _randbelow(n − i), take pool[j],
   *  move the last live element into j), a larger one the set method (j = _randbelow(n), redrawn
   *  while already chosen). */
  sample<T>(population: readonly T[], k: number): T[] {
    const n = population.length;
    if (!Number.isInteger(k) || k < 0 || k > n) throw new RangeError(`sample: sample larger than population or is negative (k = ${k}, population of ${n})`);
    let setsize = 21;
    if (k > 5) setsize += 4 ** Math.ceil(Math.log(k * 3) / Math.log(4));
    const result: T[] = new Array<T>(k);
    if (n <= setsize) {
      const pool = population.slice();
      for (let i = 0; i < k; i++) {
        const j = this.randbelow(n - i);
        result[i] = pool[j]!;
        pool[j] = pool[n - i - 1]!;
      }
    } else {
      const selected = new Set<number>();
      for (let i = 0; i < k; i++) {
        let j = this.randbelow(n);
        while (selected.has(j)) j = this.randbelow(n);
        selected.add(j);
        result[i] = population[j]!;
      }
    }
    return result;
  }

  /** `shuffle(x)` in place: for i from len − 1 down to 1, swap x[i] with x[_randbelow(i + 1)]. */
  shuffle<T>(x: T[]): void {
    for (let i = x.length - 1; i > 0; i--) {
      const j = this.randbelow(i + 1);
      const t = x[i]!;
      x[i] = x[j]!;
      x[j] = t;
    }
  }
}
