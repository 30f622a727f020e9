/**
 * The empirical null: F(x) = #{x_i ≤ x} / (n + 1), the sample's own CDF with n + 1 in the denominator, tabulated on
 * the shared grid (src/calibrate/sample.ts) and interpolated linearly between grid points like every null.
 *
 * The n + 1 is what keeps bh's p-values honest beyond the sample: p = 1 − F = (1 + #{x_i > x}) / (n + 1) at every
 * grid point, the permutation-test p-value, so it is 1 below the sample and never less than 1/(n + 1) — the smallest
 * p-value n null draws can support — at and beyond the sample's maximum (where the grid's clamp holds it).
 */
import { type Sample, tabulateCdf, upperBound, type NullFit } from './sample.js';

export const EMPIRICAL_METHOD = 'empirical CDF #{x_i <= x} / (n + 1) at the grid points, linear between (p >= 1/(n + 1))';

export function fitEmpirical(sample: Sample, points: number): NullFit {
  const { sorted, n } = sample;
  return { ...tabulateCdf(sample, points, (g) => upperBound(sorted, g) / (n + 1)), params: { n } };
}
