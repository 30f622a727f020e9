/** Storage dtypes routelab reads from checkpoints. Weights stay in these forms in memory; kernels widen them. */
export type WeightDtype = 'BF16' | 'F16' | 'F32';

/** A tensor as stored in a checkpoint: raw element storage in its own dtype, row-major. */
export interface StoredTensor {
  readonly name: string;
  readonly dtype: WeightDtype;
  readonly shape: readonly number[];
  /** BF16 / F16: the raw 16-bit patterns; F32: the values. Always a freshly aligned buffer. */
  readonly data: Uint16Array | Float32Array;
}

export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** float16 bit pattern → float32 value, for every pattern (built once, 256 KiB). */
let f16Table: Float32Array | undefined;
function halfToFloatTable(): Float32Array {
  if (f16Table) return f16Table;
  f16Table = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const sign = h & 0x8000 ? -1 : 1;
    const exp = (h >> 10) & 0x1f;
    const frac = h & 0x3ff;
    f16Table[h] = exp === 0 ? sign * frac * 2 ** -24
      : exp === 31 ? (frac ? NaN : sign * Infinity)
        : sign * (1 + frac / 1024) * 2 ** (exp - 15);
  }
  return f16Table;
}

/** Widen `count` stored elements from `offset` into `out` exactly (every BF16/F16 value is a float32 value). */
export function widenElements(dtype: WeightDtype, src: Uint16Array | Float32Array, offset: number, count: number, out: Float32Array): void {
  if (dtype === 'F32') {
    out.set((src as Float32Array).subarray(offset, offset + count));
  } else if (dtype === 'BF16') {
    // bf16 is the top half of a float32: shift the bits into place through an integer view.
    const bits = new Uint32Array(out.buffer, out.byteOffset, count);
    for (let i = 0; i < count; i++) bits[i] = src[offset + i] << 16;
  } else {
    const table = halfToFloatTable();
    for (let i = 0; i < count; i++) out[i] = table[src[offset + i]];
  }
}

/** A whole stored tensor as float32 values (small tensors the host needs: a router's selection bias). */
export function storedToFloat32(t: StoredTensor): Float32Array {
  const out = new Float32Array(t.data.length);
  widenElements(t.dtype, t.data, 0, t.data.length, out);
  return out;
}

/**
 * Elements offset … offset + numel(shape) − 1 of a stored tensor as a tensor of `shape`, sharing its memory: one
 * expert's block of a fused expert tensor.
 */
export function storedSlice(t: StoredTensor, name: string, offset: number, shape: readonly number[]): StoredTensor {
  const n = numel(shape);
  if (offset < 0 || offset + n > t.data.length) throw new Error(`storedSlice: ${n} elements at ${offset} of ${t.name} (${t.data.length})`);
  return { name, dtype: t.dtype, shape, data: t.data.subarray(offset, offset + n) };
}
