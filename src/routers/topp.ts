import { adaptiveConfigName, fractionName, type Router, type Routing } from './router.js';
import { largestFirst, requireExperts, type WeightMode, writeSelection } from './selection.js';
import { softmaxRow } from './softmax.js';

export interface TopPParams {
  readonly p: number; // probability mass to cover, in (0, 1]
  readonly minK: number;
  readonly maxK: number;
  readonly weights: WeightMode;
}

/**
 * topp(p, min_k, max_k, weights) (nucleus routing): sort probs descending and keep the shortest prefix whose
 * cumulative sum reaches p — the expert that crosses p is kept — then clamp the count to [min_k, max_k]. Weights are
 * the probabilities (`probs`), or divided by the kept experts' total (`renorm`).
 */
export class TopPRouter implements Router {
  readonly spec: string;
  readonly p: number;
  readonly minK: number;
  readonly maxK: number;
  readonly weights: WeightMode;
  readonly adaptive = true;

  constructor({ p, minK, maxK, weights }: TopPParams) {
    this.spec = `topp:p=${p},min_k=${minK},max_k=${maxK},weights=${weights}`;
    this.p = p;
    this.minK = minK;
    this.maxK = maxK;
    this.weights = weights;
  }

  /** `{max_k}experts_topp_p050` (p in hundredths, more digits when it has them), then the settings that differ from the defaults. */
  configName(): string {
    return adaptiveConfigName(`topp_p${fractionName(this.p)}`, this);
  }

  route(_layer: number, logits: Float32Array, tokens: number, numExperts: number): Routing {
    const { minK, maxK } = this;
    const renormalize = this.weights === 'renorm';
    requireExperts(this.spec, maxK, numExperts);
    const probs = new Float32Array(numExperts); // [E], one token at a time
    const order = new Int32Array(numExperts);
    const counts = new Int32Array(tokens);
    const experts = new Int32Array(tokens * maxK);
    const weights = new Float32Array(tokens * maxK);
    for (let t = 0; t < tokens; t++) {
      softmaxRow(logits, t * numExperts, numExperts, 1, probs);
      largestFirst(probs, numExperts, order);
      const n = Math.min(maxK, Math.max(minK, this.nucleusSize(probs, order)));
      counts[t] = n;
      writeSelection(probs, order, n, renormalize, experts, weights, t * maxK);
    }
    return { tokens, maxK, counts, experts, weights };
  }

  /** Length of the shortest prefix of `order` whose probabilities sum (in double) to at least p. */
  private nucleusSize(probs: Float32Array, order: Int32Array): number {
    // Every softmax probability is positive, so only all E experts hold mass 1; float32 rounding can make a shorter
    // prefix sum to 1 and drop the tail, so p = 1 is answered exactly rather than by summing.
    if (this.p >= 1) return order.length;
    let mass = 0;
    for (let j = 0; j < order.length; j++) {
      mass += probs[order[j]];
      if (mass >= this.p) return j + 1;
    }
    return order.length; // rounding left the total just short of p: the whole distribution is the nucleus
  }
}
