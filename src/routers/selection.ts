import { RoutelabError } from '../errors.js';

/**
 * Orderings shared by the routers. SPEC §2 breaks every tie by the lower expert index; an insertion that only
 * moves an expert past strictly worse ones gives exactly that, since experts arrive in index order.
 */
type Precedes = (a: number, b: number) => boolean;
const greater: Precedes = (a, b) => a > b;
const smaller: Precedes = (a, b) => a < b;

/** order[0..n) ← the n largest of `values`, largest first (topk, topp). */
export function largestFirst(values: Float32Array | Float64Array, n: number, order: Int32Array): void {
  bestFirst(values, n, order, greater);
}

/** order[0..n) ← the n smallest of `values`, smallest first (bh's ascending p-values). */
export function smallestFirst(values: Float32Array | Float64Array, n: number, order: Int32Array): void {
  bestFirst(values, n, order, smaller);
}

/** A bounded insertion sort: O(E·n) and allocation-free, which beats a full sort for top-8 of 64. */
function bestFirst(values: Float32Array | Float64Array, n: number, order: Int32Array, precedes: Precedes): void {
  let filled = 0;
  for (let e = 0; e < values.length; e++) {
    const v = values[e];
    if (filled === n && !precedes(v, values[order[n - 1]])) continue;
    let j = filled < n ? filled++ : n - 1;
    for (; j > 0 && precedes(v, values[order[j - 1]]); j--) order[j] = order[j - 1];
    order[j] = e;
  }
}

/**
 * Write one token's choice into a Routing's padded slots at `offset`: the first `count` experts of `order` with
 * their probabilities as weights, divided by the chosen experts' total (summed in double) when `renormalize`.
 */
export function writeSelection(
  probs: Float32Array,
  order: Int32Array,
  count: number,
  renormalize: boolean,
  experts: Int32Array,
  weights: Float32Array,
  offset: number,
): void {
  let total = 1;
  if (renormalize) {
    total = 0;
    for (let j = 0; j < count; j++) total += probs[order[j]];
  }
  for (let j = 0; j < count; j++) {
    experts[offset + j] = order[j];
    weights[offset + j] = probs[order[j]] / total;
  }
}

/**
 * How an adaptive router weights the experts it selects: `probs` keeps each one's softmax probability (as OLMoE's
 * own top-k does), `renorm` divides them by their sum (as the original BH-routing code does).
 */
export const WEIGHT_MODES = ['renorm', 'probs'] as const;
export type WeightMode = (typeof WEIGHT_MODES)[number];

/** A router built for more experts than the model has was built for another model. */
export function requireExperts(spec: string, maxK: number, numExperts: number): void {
  if (maxK > numExperts) throw new RoutelabError(spec, `selects up to ${maxK} experts but the model has ${numExperts}`);
}
