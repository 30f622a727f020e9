/**
 * The Kolmogorov–Smirnov distance D = sup_x |F(x) − G_m(x)| between a CDF F and the empirical CDF G_m of m samples:
 * with y_(1) ≤ … ≤ y_(m), D = max_i max(i/m − F(y_(i)), F(y_(i)) − (i − 1)/m), as scipy.stats.kstest computes it
 * (ties included: the terms of a tied run bound both one-sided limits there).
 */
export function ksDistance(sorted: Float64Array, cdf: (x: number) => number): number {
  const m = sorted.length;
  let d = 0;
  for (let i = 0; i < m; i++) {
    const F = cdf(sorted[i]);
    d = Math.max(d, (i + 1) / m - F, F - i / m);
  }
  return d;
}

/**
 * The KS distance that m independent samples of the null itself exceed with probability 0.05 (Kolmogorov's
 * asymptotic 1.358/√m): a scale for the held-out distances, which at a few hundred tokens are mostly sampling noise.
 */
export function ksCritical95(m: number): number {
  return 1.3581 / Math.sqrt(m);
}
