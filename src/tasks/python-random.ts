/**
 * Python's `random.Random(seed).sample`, bit for bit, so that few-shot examples are the ones lm-evaluation-harness
 * draws (it samples them with `random.Random(fewshot_seed).sample(docs, k)`).
 *
 * The generator is MT19937 seeded as CPython seeds it from an int: init_by_array over the 32-bit words of |seed|,
 * least significant first ([0] for 0). On top of it, as in CPython's random.py (since 3.2, when _randbelow moved to
 * getrandbits): getrandbits(k ≤ 32) is the next word's top k bits; _randbelow(n) draws getrandbits(bit_length(n))
 * until the value is below n; sample(population of n, k) keeps a pool when n ≤ setsize (21, plus 4^⌈log₄ 3k⌉ when
 * k > 5) and picks j = _randbelow(n − i), moving the pool's last live element into the hole; otherwise it draws
 * _randbelow(n) until an index not yet selected comes up. Checked against python3 3.11 in test/task-fewshot.test.ts.
 */
const N = 624;
const M = 397;

export class PythonRandom {
  private readonly mt = new Uint32Array(N);
  private index = N;

  /** `seed`: a non-negative safe integer (CPython takes |seed|; a flag never needs a negative one). */
  constructor(seed: number) {
    if (!(Number.isSafeInteger(seed) && seed >= 0)) throw new Error(`PythonRandom: seed ${seed} is not an integer 0…2^53 − 1`);
    const key: number[] = [];
    for (let rest = seed; key.length === 0 || rest > 0; rest = Math.floor(rest / 2 ** 32)) key.push(rest % 2 ** 32);
    this.initByArray(key);
  }

  /** A uniform integer of `k` bits, 0 ≤ k ≤ 32 (Python's getrandbits for one word). */
  getrandbits(k: number): number {
    if (!(Number.isInteger(k) && k >= 0 && k <= 32)) throw new Error(`getrandbits(${k}): 0…32 bits supported`);
    return k === 0 ? 0 : this.next() >>> (32 - k);
  }

  /** A uniform integer in [0, n), 1 ≤ n < 2^32 (Python's _randbelow_with_getrandbits). */
  randbelow(n: number): number {
    if (!(Number.isInteger(n) && n >= 1 && n < 2 ** 32)) throw new Error(`randbelow(${n}): 1 ≤ n < 2^32 supported`);
    const bits = 32 - Math.clz32(n); // n.bit_length()
    let r = this.getrandbits(bits);
    while (r >= n) r = this.getrandbits(bits);
    return r;
  }

  /** The indices Python's sample(population, k) picks from a population of n, in selection order. */
  sample(n: number, k: number): number[] {
    if (!(Number.isInteger(k) && k >= 0 && k <= n)) throw new Error(`sample: k = ${k} of a population of ${n}`);
    const result: number[] = [];
    const setsize = 21 + (k > 5 ? 4 ** Math.ceil(Math.log(k * 3) / Math.log(4)) : 0);
    if (n <= setsize) {
      const pool = Array.from({ length: n }, (_, i) => i);
      for (let i = 0; i < k; i++) {
        const j = this.randbelow(n - i);
        result.push(pool[j]!);
        pool[j] = pool[n - i - 1]!;
      }
    } else {
      const selected = new Set<number>();
      for (let i = 0; i < k; i++) {
        let j = this.randbelow(n);
        while (selected.has(j)) j = this.randbelow(n);
        selected.add(j);
        result.push(j);
      }
    }
    return result;
  }

  private initGenrand(s: number): void {
    const mt = this.mt;
    mt[0] = s;
    for (let i = 1; i < N; i++) {
      const x = mt[i - 1]! ^ (mt[i - 1]! >>> 30);
      mt[i] = Math.imul(1812433253, x) + i;
    }
    this.index = N;
  }

  private initByArray(key: readonly number[]): void {
    const mt = this.mt;
    this.initGenrand(19650218);
    let i = 1;
    let j = 0;
    for (let k = Math.max(N, key.length); k > 0; k--) {
      const x = mt[i - 1]! ^ (mt[i - 1]! >>> 30);
      mt[i] = ((mt[i]! ^ Math.imul(x, 1664525)) >>> 0) + key[j]! + j; // Uint32Array stores it modulo 2^32
      i++;
      j++;
      if (i >= N) {
        mt[0] = mt[N - 1]!;
        i = 1;
      }
      if (j >= key.length) j = 0;
    }
    for (let k = N - 1; k > 0; k--) {
      const x = mt[i - 1]! ^ (mt[i - 1]! >>> 30);
      mt[i] = ((mt[i]! ^ Math.imul(x, 1566083941)) >>> 0) - i;
      i++;
      if (i >= N) {
        mt[0] = mt[N - 1]!;
        i = 1;
      }
    }
    mt[0] = 0x80000000; // the most significant bit set: a non-zero initial state
  }

  /** The next tempered 32-bit output (genrand_uint32). */
  private next(): number {
    const mt = this.mt;
    if (this.index >= N) {
      const twist = (a: number, b: number, c: number) => {
        const y = (mt[a]! & 0x80000000) | (mt[b]! & 0x7fffffff);
        mt[a] = mt[c]! ^ (y >>> 1) ^ (y & 1 ? 0x9908b0df : 0);
      };
      for (let kk = 0; kk < N - 1; kk++) twist(kk, kk + 1, (kk + M) % N);
      twist(N - 1, 0, M - 1);
      this.index = 0;
    }
    let y = mt[this.index++]!;
    y ^= y >>> 11;
    y ^= (y << 7) & 0x9d2c5680;
    y ^= (y << 15) & 0xefc60000;
    y ^= y >>> 18;
    return y >>> 0;
  }
}
