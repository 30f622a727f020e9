/**
 * The Gaussian-mixture null: F(x) = Σ_k w_k Φ((x − μ_k)/σ_k), fitted by EM (Dempster, Laird & Rubin 1977) for each
 * number of components K = 1 … max_components, the K of least BIC = −2 ln L + (3K − 1) ln n kept.
 *
 * EM runs on the sample's histogram (src/calibrate/sample.ts): bin centres weighted by their counts. Initialisation
 * is deterministic: the sorted sample cut into K blocks of equal count, each block's mean, standard deviation and
 * share 1/K (a bin goes to the block holding its middle sample). No σ_k may fall below the bin width. K stops growing
 * at the first K that leaves a component without samples (a block of the cut holding no bin, as when one value holds
 * more than 1/K of the sample).
 */
import { normalCdf } from './kde.js';
import { EM_MAX_ITERATIONS, EM_TOLERANCE, type Histogram, histogram, type Sample, tabulateCdf, type NullFit } from './sample.js';

export const DEFAULT_MAX_COMPONENTS = 4;

export const GMM_METHOD = `gaussian mixture by EM on a histogram of the sample, components chosen by BIC; stops below ${EM_TOLERANCE} nats/sample or after ${EM_MAX_ITERATIONS} iterations`;

export interface Mixture {
  readonly weights: Float64Array;
  readonly means: Float64Array;
  readonly sigmas: Float64Array;
  /** ln L of the histogram at the last E-step (within EM_TOLERANCE·n of the returned parameters'). */
  readonly logLikelihood: number;
}

export function fitGmm(sample: Sample, points: number, maxComponents: number): NullFit {
  const h = histogram(sample);
  const bic: number[] = [];
  let best: Mixture | null = null;
  let bestBic = Infinity;
  for (let K = 1; K <= maxComponents; K++) {
    const mixture = emMixture(h, K);
    if (mixture === null) break;
    bic.push(-2 * mixture.logLikelihood + (3 * K - 1) * Math.log(h.n));
    if (bic[K - 1] < bestBic) [best, bestBic] = [mixture, bic[K - 1]];
  }
  const { weights, means, sigmas } = best!; // K = 1 always fits: one block holds every bin
  const K = weights.length;
  const grid = tabulateCdf(sample, points, (x) => {
    let F = 0;
    for (let k = 0; k < K; k++) F += weights[k] * normalCdf((x - means[k]) / sigmas[k]);
    return F;
  });
  return { ...grid, params: { weights: Array.from(weights), means: Array.from(means), sigmas: Array.from(sigmas), bic } };
}

const LOG_SQRT_2PI = 0.5 * Math.log(2 * Math.PI);

/** EM for a K-component mixture on the histogram; null when a component ends up (or starts) with no samples. */
export function emMixture(h: Histogram, K: number): Mixture | null {
  const { x, count, n, width } = h;
  const B = x.length;
  const weights = new Float64Array(K);
  const means = new Float64Array(K);
  const sigmas = new Float64Array(K);
  // Sufficient statistics per component: Σ r, Σ r·x, Σ r·x² over bins weighted by count.
  const N = new Float64Array(K);
  const S = new Float64Array(K);
  const Q = new Float64Array(K);
  const mStep = (): boolean => {
    for (let k = 0; k < K; k++) {
      if (!(N[k] > 0)) return false;
      weights[k] = N[k] / n;
      means[k] = S[k] / N[k];
      sigmas[k] = Math.max(width, Math.sqrt(Math.max(0, Q[k] / N[k] - means[k] ** 2)));
    }
    return true;
  };

  let below = 0;
  for (let j = 0; j < B; j++) {
    const k = Math.min(K - 1, Math.floor((K * (below + count[j] / 2)) / n));
    below += count[j];
    N[k] += count[j];
    S[k] += count[j] * x[j];
    Q[k] += count[j] * x[j] * x[j];
  }
  if (!mStep()) return null;

  const logTerm = new Float64Array(K); // ln(w_k φ_k(x_j)), then the responsibilities
  const offset = new Float64Array(K);
  const precision = new Float64Array(K);
  let logLikelihood = -Infinity;
  for (let iteration = 0; iteration < EM_MAX_ITERATIONS; iteration++) {
    for (let k = 0; k < K; k++) {
      offset[k] = Math.log(weights[k]) - Math.log(sigmas[k]) - LOG_SQRT_2PI;
      precision[k] = 1 / sigmas[k];
    }
    N.fill(0);
    S.fill(0);
    Q.fill(0);
    let ll = 0;
    for (let j = 0; j < B; j++) {
      const xj = x[j];
      let max = -Infinity;
      for (let k = 0; k < K; k++) {
        const z = (xj - means[k]) * precision[k];
        logTerm[k] = offset[k] - 0.5 * z * z;
        if (logTerm[k] > max) max = logTerm[k];
      }
      let sum = 0;
      for (let k = 0; k < K; k++) sum += logTerm[k] = Math.exp(logTerm[k] - max);
      ll += count[j] * (max + Math.log(sum));
      for (let k = 0; k < K; k++) {
        const r = (count[j] * logTerm[k]) / sum;
        N[k] += r;
        S[k] += r * xj;
        Q[k] += r * xj * xj;
      }
    }
    if (!mStep()) return null;
    const converged = ll - logLikelihood < EM_TOLERANCE * n;
    logLikelihood = ll;
    if (converged) break;
  }
  for (let k = 0; k < K; k++) means[k] += h.origin;
  return { weights, means, sigmas, logLikelihood };
}
