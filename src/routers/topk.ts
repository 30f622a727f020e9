import type { RoutingParameters } from '../model/architecture.js';
import type { Router, Routing } from './router.js';
import { largestFirst, requireExperts, writeSelection } from './selection.js';
import { softmaxRow } from './softmax.js';

/**
 * topk(k, renormalize), SPEC §2: each token takes the k most probable experts, weighted by their probabilities
 * (divided by the chosen experts' total when `renormalize`). OLMoE's own routing is topk(8, false).
 */
export class TopKRouter implements Router {
  readonly spec: string;
  readonly minK: number;
  readonly maxK: number;
  readonly adaptive = false;

  constructor(
    readonly k: number,
    readonly renormalize: boolean,
  ) {
    this.spec = `topk:k=${k},renormalize=${renormalize}`;
    this.minK = k;
    this.maxK = k;
  }

  /** `{k}experts_topk_baseline`; `_renorm` / `_norenorm` when renormalisation differs from the model's own. */
  configName(model: RoutingParameters): string {
    const renorm = this.renormalize !== model.normTopkProb ? (this.renormalize ? '_renorm' : '_norenorm') : '';
    return `${this.k}experts_topk${renorm}_baseline`;
  }

  route(_layer: number, logits: Float32Array, tokens: number, numExperts: number): Routing {
    const { k, renormalize } = this;
    requireExperts(this.spec, k, numExperts);
    const probs = new Float32Array(numExperts); // [E], one token at a time
    const chosen = new Int32Array(k);
    const counts = new Int32Array(tokens).fill(k);
    const experts = new Int32Array(tokens * k);
    const weights = new Float32Array(tokens * k);
    for (let t = 0; t < tokens; t++) {
      softmaxRow(logits, t * numExperts, numExperts, 1, probs);
      largestFirst(probs, k, chosen);
      writeSelection(probs, chosen, k, renormalize, experts, weights, t * k);
    }
    return { tokens, maxK: k, counts, experts, weights };
  }
}
