import type { Router, Routing } from './router.js';
import { largestFirst, requireExperts } from './selection.js';

/**
 * granite(k): Granite-MoE's routing (`GraniteMoeTopKGating`): the k largest raw logits, weighted by a softmax over
 * those k logits only (so the weights always sum to 1).
 */
export class GraniteRouter implements Router {
  readonly spec: string;
  readonly minK: number;
  readonly maxK: number;
  readonly adaptive = false;

  constructor(readonly k: number) {
    this.spec = `granite:k=${k}`;
    this.minK = k;
    this.maxK = k;
  }

  configName(): string {
    return `${this.k}experts_granite_baseline`;
  }

  route(_layer: number, logits: Float32Array, tokens: number, numExperts: number): Routing {
    const { k } = this;
    requireExperts(this.spec, k, numExperts);
    const row = new Float32Array(numExperts);
    const chosen = new Int32Array(k);
    const counts = new Int32Array(tokens).fill(k);
    const experts = new Int32Array(tokens * k);
    const weights = new Float32Array(tokens * k);
    for (let t = 0; t < tokens; t++) {
      row.set(logits.subarray(t * numExperts, (t + 1) * numExperts));
      largestFirst(row, k, chosen);
      const max = row[chosen[0]];
      let sum = 0;
      for (let j = 0; j < k; j++) sum += Math.exp(row[chosen[j]] - max);
      for (let j = 0; j < k; j++) {
        experts[t * k + j] = chosen[j];
        weights[t * k + j] = Math.exp(row[chosen[j]] - max) / sum;
      }
    }
    return { tokens, maxK: k, counts, experts, weights };
  }
}
