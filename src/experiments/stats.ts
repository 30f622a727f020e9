/** Small statistics used by the profiler and the significance tests. */
import { createRandom } from '../sampling.js';

/** Percentile q ∈ [0, 100] of ascending-sorted values with linear interpolation (numpy's default method). */
export function percentile(sorted: ArrayLike<number>, q: number): number {
  const n = sorted.length;
  if (n === 0) return NaN;
  const pos = ((n - 1) * q) / 100;
  const lo = Math.floor(pos);
  const hi = Math.min(n - 1, lo + 1);
  return sorted[lo] + (pos - lo) * (sorted[hi] - sorted[lo]);
}

export interface Summary {
  readonly mean: number;
  readonly std: number; // population std (numpy's default ddof = 0)
  readonly min: number;
  readonly max: number;
  readonly p25: number;
  readonly p50: number;
  readonly p75: number;
  readonly p95: number;
  readonly p99: number;
}

export function summarise(values: readonly number[]): Summary {
  const sorted = Float64Array.from(values).sort();
  const n = sorted.length;
  const mean = sorted.reduce((s, v) => s + v, 0) / n;
  const std = Math.sqrt(sorted.reduce((s, v) => s + (v - mean) ** 2, 0) / n);
  return { mean, std, min: sorted[0], max: sorted[n - 1], p25: percentile(sorted, 25), p50: percentile(sorted, 50), p75: percentile(sorted, 75), p95: percentile(sorted, 95), p99: percentile(sorted, 99) };
}

/**
 * Wilson score interval of a binomial proportion: `successRate` of `n` trials, at the normal quantile `z` (1.96:
 * 95%). Unlike the normal approximation it stays inside [0, 1] and is not empty at 0 or 1 successes, so an accuracy
 * of 0 gets an honest upper bound.
 */
export function wilsonInterval(successRate: number, n: number, z = 1.96): { low: number; high: number } {
  const z2 = z * z;
  const centre = (successRate + z2 / (2 * n)) / (1 + z2 / n);
  const half = (z / (1 + z2 / n)) * Math.sqrt((successRate * (1 - successRate)) / n + z2 / (4 * n * n));
  return { low: Math.max(0, centre - half), high: Math.min(1, centre + half) };
}

export interface BootstrapInterval {
  /** The statistic's difference on the full sample. */
  readonly delta: number;
  /** Percentile confidence interval of the difference. */
  readonly low: number;
  readonly high: number;
  readonly resamples: number;
  readonly level: number;
  readonly seed: number;
  /**
   * Two-sided bootstrap p-value of "no difference": twice the smaller share of resampled differences on either side
   * of 0, counted with the observed sample ((n + 1) / (R + 1), so it is never 0), at most 1.
   */
  readonly pValue: number;
}

/**
 * Paired bootstrap over documents: resample document indices with replacement (the same indices for both
 * configurations, since they scored the same documents), recompute each configuration's statistic, and take the
 * percentile interval of their difference. `statistic(indices)` computes a configuration's metric over the
 * documents at `indices` (repeats allowed), e.g. a perplexity from sums of log-likelihoods and word counts.
 */
export function pairedBootstrap(
  documents: number,
  statisticA: (indices: Int32Array) => number,
  statisticB: (indices: Int32Array) => number,
  { resamples = 1000, level = 0.95, seed = 0 }: { resamples?: number; level?: number; seed?: number } = {},
): BootstrapInterval {
  const random = createRandom(seed);
  const all = Int32Array.from({ length: documents }, (_, i) => i);
  const delta = statisticA(all) - statisticB(all);
  const deltas = new Float64Array(resamples);
  const indices = new Int32Array(documents);
  for (let r = 0; r < resamples; r++) {
    for (let i = 0; i < documents; i++) indices[i] = Math.floor(random() * documents);
    deltas[r] = statisticA(indices) - statisticB(indices);
  }
  deltas.sort();
  const tail = ((1 - level) / 2) * 100;
  let atOrBelow = 0;
  let atOrAbove = 0;
  for (const d of deltas) {
    if (d <= 0) atOrBelow++;
    if (d >= 0) atOrAbove++;
  }
  const pValue = Math.min(1, (2 * (Math.min(atOrBelow, atOrAbove) + 1)) / (resamples + 1));
  return { delta, low: percentile(deltas, tail), high: percentile(deltas, 100 - tail), resamples, level, seed, pValue };
}

/** Multiple-comparison procedures for a family of p-values. */
export const CORRECTIONS = ['bh', 'holm'] as const;
export type Correction = (typeof CORRECTIONS)[number];
export const CORRECTION_NAMES: Readonly<Record<Correction, string>> = {
  bh: 'Benjamini–Hochberg (false discovery rate)',
  holm: 'Holm (family-wise error rate)',
};

/**
 * Adjusted p-values of a family: Benjamini–Hochberg's step-up q_(i) = min over j ≥ i of m·p_(j)/j, or Holm's
 * step-down max over j ≤ i of (m − j + 1)·p_(j); both capped at 1 and returned in the input's order. A comparison is
 * significant at level a when its adjusted p-value is ≤ a.
 */
export function adjustPValues(p: readonly number[], method: Correction): number[] {
  const m = p.length;
  const order = p.map((_, i) => i).sort((a, b) => p[a] - p[b] || a - b);
  const adjusted = new Array<number>(m);
  if (method === 'bh') {
    let running = 1;
    for (let r = m - 1; r >= 0; r--) {
      running = Math.min(running, (m * p[order[r]]) / (r + 1));
      adjusted[order[r]] = running;
    }
  } else {
    let running = 0;
    for (let r = 0; r < m; r++) {
      running = Math.max(running, Math.min(1, (m - r) * p[order[r]]));
      adjusted[order[r]] = running;
    }
  }
  return adjusted;
}

/**
 * Which points no other point beats in both coordinates, both to be minimised (negate one to maximise it): the
 * points sorted by x, each kept if its y is below every y kept before it. Identical points share their fate, so
 * configurations that score the same are named together.
 */
export function paretoOptimal(xs: ArrayLike<number>, ys: ArrayLike<number>): boolean[] {
  const order = Array.from(xs, (_, i) => i).sort((a, b) => xs[a] - xs[b] || ys[a] - ys[b]);
  const optimal = new Array<boolean>(xs.length).fill(false);
  let bestY = Infinity;
  let last = -1;
  for (const i of order) {
    if (ys[i] < bestY || (last >= 0 && optimal[last] && xs[i] === xs[last] && ys[i] === ys[last])) {
      optimal[i] = true;
      bestY = ys[i];
    }
    last = i;
  }
  return optimal;
}
