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
