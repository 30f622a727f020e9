/**
 * What every null estimator starts from: a calibration sample, sorted, with its moments; the grid every estimator
 * tabulates its CDF on (the KDE's: `points` equally spaced on [min − 4h, max + 4h], h Silverman's bandwidth), and
 * the histogram the parametric fits run on.
 */
import type { NullParams } from '../routers/null-model.js';

/** What every estimator produces: its CDF on a grid (what bh's p-values read) and its fitted parameters. */
export interface NullFit {
  readonly x: Float64Array;
  readonly cdf: Float64Array;
  readonly params: NullParams;
}


export interface Sample {
  readonly sorted: Float64Array;
  readonly n: number;
  readonly mean: number;
  /** Standard deviation with ddof = 1, as numpy's std(ddof=1). */
  readonly std: number;
  /** Silverman's rule of thumb h = 1.06·σ·n^(−1/5); a tiny positive width for a constant sample. */
  readonly bandwidth: number;
}

export function describeSample(samples: ArrayLike<number>): Sample {
  const n = samples.length;
  if (n < 2) throw new Error(`a null model needs at least 2 samples, got ${n}`);
  const sorted = Float64Array.from(samples).sort();
  let sum = 0;
  for (let i = 0; i < n; i++) sum += sorted[i];
  const mean = sum / n;
  let ss = 0;
  for (let i = 0; i < n; i++) ss += (sorted[i] - mean) ** 2;
  const std = Math.sqrt(ss / (n - 1));
  // A constant sample has σ = 0; any positive width keeps every CDF a valid (steep) step.
  const bandwidth = std > 0 ? 1.06 * std * n ** -0.2 : Math.max(Math.abs(mean), 1) * 1e-6;
  return { sorted, n, mean, std, bandwidth };
}

/** [min − 4h, max + 4h]: the tabulated span, so a kernel at the sample's edge is (Φ(4) ≈ 1 − 3e-5) inside it. */
function span(sample: Sample): [number, number] {
  const { sorted, n, bandwidth } = sample;
  return [sorted[0] - 4 * bandwidth, sorted[n - 1] + 4 * bandwidth];
}

/**
 * An estimator's CDF on the grid bh interpolates: `points` equally spaced x over the span, F clamped to ≤ 1 and made
 * non-decreasing (rounding may break monotonicity by an ulp; a CDF must not decrease).
 */
export function tabulateCdf(sample: Sample, points: number, cdf: (x: number) => number): { x: Float64Array; cdf: Float64Array } {
  const [lo, hi] = span(sample);
  const x = new Float64Array(points);
  const F = new Float64Array(points);
  for (let p = 0; p < points; p++) {
    const g = lo + ((hi - lo) * p) / (points - 1);
    x[p] = g;
    F[p] = Math.min(1, cdf(g));
  }
  for (let p = 1; p < points; p++) if (F[p] < F[p - 1]) F[p] = F[p - 1];
  return { x, cdf: F };
}

/**
 * The sample as a histogram of HISTOGRAM_BINS equal-width bins over the span (non-empty bins only), centres measured
 * from the sample mean. The parametric fits iterate over bins instead of samples — a million logits per layer become
 * at most 4096 weighted points — at the cost of Sheppard's w²/12 in each fitted variance, w the bin width: below
 * 1e-5 of the sample variance whenever the span is under 40 standard deviations.
 */
export interface Histogram {
  /** Bin centres minus `origin` (the sample mean), so variances accumulate without cancellation. */
  readonly x: Float64Array;
  readonly count: Float64Array;
  readonly origin: number;
  /** Bin width w: also the narrowest scale a fit may take (a narrower component would model the binning). */
  readonly width: number;
  readonly n: number;
}

export const HISTOGRAM_BINS = 4096;

export function histogram(sample: Sample): Histogram {
  const [lo, hi] = span(sample);
  const width = (hi - lo) / HISTOGRAM_BINS;
  const counts = new Float64Array(HISTOGRAM_BINS);
  for (const v of sample.sorted) counts[Math.min(HISTOGRAM_BINS - 1, Math.floor((v - lo) / width))]++;
  let used = 0;
  for (const c of counts) if (c > 0) used++;
  const x = new Float64Array(used);
  const count = new Float64Array(used);
  for (let b = 0, j = 0; b < HISTOGRAM_BINS; b++) {
    if (counts[b] === 0) continue;
    x[j] = lo + (b + 0.5) * width - sample.mean;
    count[j++] = counts[b];
  }
  return { x, count, origin: sample.mean, width, n: sample.n };
}

/** First index i with a[i] ≥ v (a sorted ascending). */
export function lowerBound(a: Float64Array, v: number): number {
  let lo = 0;
  let hi = a.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (a[mid] < v) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** First index i with a[i] > v (a sorted ascending): the number of elements ≤ v. */
export function upperBound(a: Float64Array, v: number): number {
  let lo = 0;
  let hi = a.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (a[mid] <= v) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * The parametric fits (EM for the mixture, ECM for the Student-t) stop when an iteration raises the log-likelihood by
 * less than EM_TOLERANCE nats per sample, or after EM_MAX_ITERATIONS iterations.
 */
export const EM_TOLERANCE = 1e-8;
export const EM_MAX_ITERATIONS = 500;
