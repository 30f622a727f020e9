/**
 * Router probabilities, SPEC §2: `probs = softmax(r)` over all E experts in float32. Each row is computed in double
 * (max-subtracted, so large logits cannot overflow) and rounded once to float32 on store.
 */
export function softmaxRow(logits: Float32Array, offset: number, numExperts: number, temperature: number, out: Float32Array): void {
  let max = -Infinity;
  for (let e = 0; e < numExperts; e++) max = Math.max(max, logits[offset + e] / temperature);
  let sum = 0;
  for (let e = 0; e < numExperts; e++) sum += Math.exp(logits[offset + e] / temperature - max);
  // exp is recomputed rather than kept in a double scratch row: it keeps this a pure function of its inputs.
  for (let e = 0; e < numExperts; e++) out[e] = Math.exp(logits[offset + e] / temperature - max) / sum;
}
