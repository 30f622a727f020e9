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
  readonly p50: number;
  readonly p95: number;
  readonly p99: number;
}

export function summarise(values: readonly number[]): Summary {
  const sorted = Float64Array.from(values).sort();
  const n = sorted.length;
  const mean = sorted.reduce((s, v) => s + v, 0) / n;
  const std = Math.sqrt(sorted.reduce((s, v) => s + (v - mean) ** 2, 0) / n);
  return { mean, std, min: sorted[0], max: sorted[n - 1], p50: percentile(sorted, 50), p95: percentile(sorted, 95), p99: percentile(sorted, 99) };
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
  return { delta, low: percentile(deltas, tail), high: percentile(deltas, 100 - tail), resamples, level, seed };
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
