/**
 * The null model's density estimate (SPEC §2): a Gaussian kernel density estimate of router logits with
 * Silverman's rule-of-thumb bandwidth h = 1.06·σ·n^(−1/5), its CDF evaluated on a grid of points spanning
 * [min − 4h, max + 4h] (the grid every null estimator shares, src/calibrate/sample.ts).
 */
import { describeSample, lowerBound, type Sample, tabulateCdf, type NullFit } from './sample.js';

export interface KdeGrid {
  readonly x: Float64Array;
  readonly cdf: Float64Array;
  /** Bandwidth h, sample count n, mean and standard deviation σ (ddof = 1, as numpy's std(ddof=1)). */
  readonly bandwidth: number;
  readonly n: number;
  readonly mean: number;
  readonly std: number;
}

/** Kernels further than this many bandwidths from a point contribute 0 or 1 to its CDF (Φ(−9) ≈ 1e-19). */
const KERNEL_REACH = 9;

/**
 * The KDE's CDF F(x) = (1/n) Σ Φ((x − x_i)/h) on `points` grid points. Samples are sorted once; each grid point
 * counts the samples far below it and evaluates Φ only for those within reach, so a million samples stay cheap.
 */
export function kdeCdfGrid(samples: ArrayLike<number>, points = 512): KdeGrid {
  const sample = describeSample(samples);
  const { x, cdf } = fitKde(sample, points);
  return { x, cdf, bandwidth: sample.bandwidth, n: sample.n, mean: sample.mean, std: sample.std };
}

/** The KDE as a null estimator: its grid, and its one parameter, the bandwidth. */
export function fitKde(sample: Sample, points: number): NullFit {
  const { sorted, n, bandwidth } = sample;
  const grid = tabulateCdf(sample, points, (g) => {
    const first = lowerBound(sorted, g - KERNEL_REACH * bandwidth);
    const end = lowerBound(sorted, g + KERNEL_REACH * bandwidth);
    let acc = first; // samples far below g: Φ = 1 each
    for (let i = first; i < end; i++) acc += normalCdf((g - sorted[i]) / bandwidth);
    return acc / n;
  });
  return { ...grid, params: { bandwidth } };
}

/** Φ(z), the standard normal CDF. */
export function normalCdf(z: number): number {
  return 0.5 * erfc(-z / Math.SQRT2);
}

/**
 * Complementary error function with relative error < 1.2e-7 everywhere (the Chebyshev-fitted form in Numerical
 * Recipes, §6.2), so small tail probabilities keep their precision.
 */
export function erfc(x: number): number {
  const z = Math.abs(x);
  const t = 1 / (1 + 0.5 * z);
  const r = t * Math.exp(-z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806 +
    t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))));
  return x >= 0 ? r : 2 - r;
}
