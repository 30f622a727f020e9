/**
 * The greedy choice over one row of logits, shared by the sampler and by the backends that have no kernel for it:
 * `if (x[i] > x[best]) best = i` from best = 0, so the lowest index wins a tie and a NaN never wins (nor loses, at
 * index 0). Native kernels that fuse it into the lm_head reproduce exactly this scan (native/routelab_kernels.cc).
 */
export function argmaxRow(values: Float32Array, offset: number, length: number): number {
  let best = 0;
  for (let i = 1; i < length; i++) if (values[offset + i] > values[offset + best]) best = i;
  return best;
}

/** argmaxRow of every row of a [rows × cols] matrix. */
export function argmaxRows(data: Float32Array, rows: number, cols: number): Int32Array {
  const out = new Int32Array(rows);
  for (let r = 0; r < rows; r++) out[r] = argmaxRow(data, r * cols, cols);
  return out;
}
