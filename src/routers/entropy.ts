import { adaptiveConfigName, type Router, type Routing } from './router.js';
import { largestFirst, requireExperts, type WeightMode, writeSelection } from './selection.js';
import { softmaxRow } from './softmax.js';

export interface EntropyParams {
  readonly minK: number;
  readonly maxK: number;
  readonly weights: WeightMode;
}

/**
 * entropy(min_k, max_k, weights): the less certain the router, the more experts. Each token's count is linear in the
 * normalised entropy h = H(probs) / ln E ∈ [0, 1] of its router distribution,
 *   k = min_k + round(h · (max_k − min_k)), rounding halves up,
 * so a one-hot distribution gets min_k experts and a uniform one max_k; the k most probable are selected. Weights
 * are the probabilities (`probs`), or divided by their sum (`renorm`).
 */
export class EntropyRouter implements Router {
  readonly spec: string;
  readonly minK: number;
  readonly maxK: number;
  readonly weights: WeightMode;
  readonly adaptive = true;

  constructor({ minK, maxK, weights }: EntropyParams) {
    this.spec = `entropy:min_k=${minK},max_k=${maxK},weights=${weights}`;
    this.minK = minK;
    this.maxK = maxK;
    this.weights = weights;
  }

  /** `{max_k}experts_entropy`, then the settings that differ from the defaults. */
  configName(): string {
    return adaptiveConfigName('entropy', this);
  }

  route(_layer: number, logits: Float32Array, tokens: number, numExperts: number): Routing {
    const { minK, maxK } = this;
    requireExperts(this.spec, maxK, numExperts);
    const probs = new Float32Array(numExperts); // [E], one token at a time
    const order = new Int32Array(maxK); // only the selected are ordered
    const counts = new Int32Array(tokens);
    const experts = new Int32Array(tokens * maxK);
    const weights = new Float32Array(tokens * maxK);
    for (let t = 0; t < tokens; t++) {
      softmaxRow(logits, t * numExperts, numExperts, 1, probs);
      const k = minK + Math.round(normalisedEntropy(probs) * (maxK - minK));
      largestFirst(probs, k, order);
      counts[t] = k;
      writeSelection(probs, order, k, this.weights === 'renorm', experts, weights, t * maxK);
    }
    return { tokens, maxK, counts, experts, weights };
  }
}

/**
 * h = −Σ p ln p / ln E of float32 probabilities, summed in double, with 0 · ln 0 = 0 (a softmax can underflow to 0).
 * It is capped at 1 because float32 probabilities need not sum to exactly 1; E = 1 has no uncertainty (h = 0).
 */
function normalisedEntropy(probs: Float32Array): number {
  const E = probs.length;
  if (E === 1) return 0;
  let h = 0;
  for (let e = 0; e < E; e++) if (probs[e] > 0) h -= probs[e] * Math.log(probs[e]);
  return Math.min(1, h / Math.log(E));
}
