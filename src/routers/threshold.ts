import { adaptiveConfigName, fractionName, type Router, type Routing } from './router.js';
import { largestFirst, requireExperts, type WeightMode, writeSelection } from './selection.js';
import { softmaxRow } from './softmax.js';

export interface ThresholdParams {
  readonly tau: number; // probability an expert must reach, in (0, 1]
  readonly minK: number;
  readonly maxK: number;
  readonly weights: WeightMode;
}

/**
 * threshold(tau, min_k, max_k, weights): each token takes the experts whose probability is at least tau, most
 * probable first, with the count clamped to [min_k, max_k] — too few are topped up with the next most probable, too
 * many cut to the max_k most probable. Weights are the probabilities (`probs`), or divided by their sum (`renorm`).
 */
export class ThresholdRouter implements Router {
  readonly spec: string;
  readonly tau: number;
  readonly minK: number;
  readonly maxK: number;
  readonly weights: WeightMode;
  readonly adaptive = true;

  constructor({ tau, minK, maxK, weights }: ThresholdParams) {
    this.spec = `threshold:tau=${tau},min_k=${minK},max_k=${maxK},weights=${weights}`;
    this.tau = tau;
    this.minK = minK;
    this.maxK = maxK;
    this.weights = weights;
  }

  /** `{max_k}experts_threshold_t010` (tau in hundredths, more digits when it has them), then the settings that differ from the defaults. */
  configName(): string {
    return adaptiveConfigName(`threshold_t${fractionName(this.tau)}`, this);
  }

  route(_layer: number, logits: Float32Array, tokens: number, numExperts: number): Routing {
    const { tau, minK, maxK } = this;
    requireExperts(this.spec, maxK, numExperts);
    const probs = new Float32Array(numExperts); // [E], one token at a time
    const order = new Int32Array(maxK); // only the selected are ordered
    const counts = new Int32Array(tokens);
    const experts = new Int32Array(tokens * maxK);
    const weights = new Float32Array(tokens * maxK);
    for (let t = 0; t < tokens; t++) {
      softmaxRow(logits, t * numExperts, numExperts, 1, probs);
      let above = 0;
      for (let e = 0; e < numExperts; e++) if (probs[e] >= tau) above++;
      // The experts at or above tau are exactly the `above` most probable, so the clamped count names the selection.
      const n = Math.min(maxK, Math.max(minK, above));
      largestFirst(probs, n, order);
      counts[t] = n;
      writeSelection(probs, order, n, this.weights === 'renorm', experts, weights, t * maxK);
    }
    return { tokens, maxK, counts, experts, weights };
  }
}
