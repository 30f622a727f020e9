import { expertPValues, layerNull, type NullModel } from './null-model.js';
import { adaptiveConfigName, fractionName, type Router, type Routing } from './router.js';
import { requireExperts, smallestFirst, type WeightMode, writeSelection } from './selection.js';
import { softmaxRow } from './softmax.js';

export interface HcParams {
  readonly alpha0: number; // share of the ranks HC⁺ searches, in [1/E, 1]
  readonly minK: number;
  readonly maxK: number;
  readonly nullModel: NullModel;
  readonly weights: WeightMode;
}

/**
 * hc(alpha0, min_k, max_k, weights, null): Higher-Criticism thresholding (Donoho & Jin 2004, 2008) — BH's sibling
 * for sparse signals — on the p-values bh tests, p_e = 1 − F_ℓ(r_e). With p sorted ascending, the HC statistic of
 * rank i is
 *   HC(i) = √E · (i/E − p_(i)) / √(p_(i) · (1 − p_(i))),
 * how far the i smallest p-values lie below their uniform expectation, in null standard deviations. HC⁺ searches
 * only the ranks i ≤ alpha0·E with p_(i) ≥ 1/E: below 1/E the denominator makes the single smallest p-values
 * dominate whatever the rest say. n = the searched rank of largest HC (ties to the smaller rank; HC = −∞ where
 * p_(i) = 1), clamped to [min_k, max_k]; the n smallest p-values are selected, weighted by their softmax
 * probabilities (`probs`) or those divided by their sum (`renorm`).
 */
export class HcRouter implements Router {
  readonly spec: string;
  readonly alpha0: number;
  readonly minK: number;
  readonly maxK: number;
  readonly nullModel: NullModel;
  readonly weights: WeightMode;
  readonly adaptive = true;

  constructor({ alpha0, minK, maxK, nullModel, weights }: HcParams) {
    // The null file is last: its path may contain commas (the spec parser splits only before `key=`).
    this.spec = `hc:alpha0=${alpha0},min_k=${minK},max_k=${maxK},weights=${weights},null=${nullModel.file}`;
    this.alpha0 = alpha0;
    this.minK = minK;
    this.maxK = maxK;
    this.nullModel = nullModel;
    this.weights = weights;
  }

  /** `{max_k}experts_hc_a050` (alpha0 in hundredths, more digits when it has them), then the settings that differ from the defaults. */
  configName(): string {
    return adaptiveConfigName(`hc_a${fractionName(this.alpha0)}`, this);
  }

  route(layer: number, logits: Float32Array, tokens: number, numExperts: number): Routing {
    const { minK, maxK } = this;
    const E = numExperts;
    requireExperts(this.spec, maxK, E);
    const nulls = layerNull(this.nullModel, layer, E);
    const searched = searchedRanks(this.alpha0, E);
    const ordered = Math.max(searched, maxK); // ranks that are searched or may be selected
    const p = new Float64Array(E); // [E], one token at a time
    const order = new Int32Array(ordered);
    const probs = new Float32Array(E);
    const pValues = new Float32Array(tokens * E);
    const counts = new Int32Array(tokens);
    const experts = new Int32Array(tokens * maxK);
    const weights = new Float32Array(tokens * maxK);
    for (let t = 0; t < tokens; t++) {
      const row = t * E;
      expertPValues(nulls, logits, row, E, p);
      for (let e = 0; e < E; e++) pValues[row + e] = p[e];
      smallestFirst(p, ordered, order);
      const n = Math.min(maxK, Math.max(minK, hcPlusRank(p, order, searched, E)));
      counts[t] = n;
      softmaxRow(logits, row, E, 1, probs);
      writeSelection(probs, order, n, this.weights === 'renorm', experts, weights, t * maxK);
    }
    return { tokens, maxK, counts, experts, weights, pValues };
  }
}

/**
 * ⌊alpha0 · E⌋, the ranks HC⁺ searches. alpha0 is a decimal as typed, and alpha0 · E in double can fall just short of
 * the integer it means (0.29 · 100 = 28.999…), hence the 1e-9.
 */
export function searchedRanks(alpha0: number, numExperts: number): number {
  return Math.floor(alpha0 * numExperts + 1e-9);
}

/**
 * The HC⁺-optimal rank among 1 … `searched`, given p-values whose first `searched` ranks `order` lists ascending.
 * The ranks with p_(i) ≥ 1/E are the searched ranks from the first such one on. When there are none, all `searched`
 * ranks are taken: the null expects one p-value below 1/E, and every searched one is.
 */
function hcPlusRank(p: Float64Array, order: Int32Array, searched: number, E: number): number {
  let i = 1;
  while (i <= searched && p[order[i - 1]] < 1 / E) i++;
  if (i > searched) return searched;
  let best = i;
  let bestHc = hc(i, p[order[i - 1]], E);
  for (i++; i <= searched; i++) {
    const h = hc(i, p[order[i - 1]], E);
    if (h > bestHc) {
      best = i;
      bestHc = h;
    }
  }
  return best;
}

/** HC(i) of rank i with p-value p_(i) among E; −∞ at p_(i) = 1, which is no evidence at all (and 0/0 at i = E). */
function hc(i: number, p: number, E: number): number {
  return p < 1 ? (Math.sqrt(E) * (i / E - p)) / Math.sqrt(p * (1 - p)) : -Infinity;
}
