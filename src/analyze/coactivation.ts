/**
 * Co-activation at one layer ℓ, normalised as in the OLMoE paper: of the positions that selected expert i, the share
 * that also selected j,
 *   coactivation(i,j) = N(i ∧ j) / N(i)        (i ≠ j; not symmetric: N(i) ≠ N(j) in general)
 * with N(i ∧ j) the positions whose routing at ℓ selected both and N(i) those that selected i. Against it stands
 * what independent selection would give, N(j) / N; the strongest pairs are ranked by coactivation(i,j).
 */
import type { TraceChunk } from '../trace/reader.js';

export class CoactivationCounts {
  /** [E × E] N(i ∧ j); the diagonal is N(i). */
  readonly both: Float64Array;
  positions = 0;

  constructor(
    readonly layer: number,
    readonly numExperts: number,
  ) {
    this.both = new Float64Array(numExperts * numExperts);
  }

  add(chunk: TraceChunk, maxK: number): void {
    const E = this.numExperts;
    for (let r = 0; r < chunk.rows; r++) {
      if (chunk.layer[r] !== this.layer) continue;
      this.positions++;
      const base = r * maxK;
      for (let a = 0; a < chunk.count[r]; a++) {
        const row = chunk.experts[base + a] * E;
        for (let b = 0; b < chunk.count[r]; b++) this.both[row + chunk.experts[base + b]]++;
      }
    }
  }
}

export interface CoactivationPair {
  readonly i: number;
  readonly j: number;
  readonly both: number; // N(i ∧ j)
  readonly selected: number; // N(i)
  readonly coactivation: number;
  /** N(j) / N: the coactivation independent selection would give. */
  readonly independent: number;
}

export interface Coactivation {
  readonly layer: number;
  readonly positions: number;
  /** [E × E] N(i ∧ j), N(i) on the diagonal. */
  readonly both: Float64Array;
  /** [E × E] coactivation(i, j), NaN on the diagonal and where N(i) = 0. */
  readonly matrix: Float64Array;
  /** The `top` ordered pairs with the highest coactivation among experts selected at least `minCount` times. */
  readonly pairs: readonly CoactivationPair[];
}

export function coactivation(counts: CoactivationCounts, top: number, minCount: number): Coactivation {
  const { both, numExperts: E, positions } = counts;
  const matrix = new Float64Array(E * E).fill(NaN);
  const pairs: CoactivationPair[] = [];
  for (let i = 0; i < E; i++) {
    const selected = both[i * E + i];
    if (selected === 0) continue;
    for (let j = 0; j < E; j++) {
      if (j === i) continue;
      const value = both[i * E + j] / selected;
      matrix[i * E + j] = value;
      if (selected >= minCount && both[i * E + j] > 0) {
        pairs.push({ i, j, both: both[i * E + j], selected, coactivation: value, independent: both[j * E + j] / positions });
      }
    }
  }
  pairs.sort((a, b) => b.coactivation - a.coactivation || b.both - a.both || a.i - b.i || a.j - b.j);
  return { layer: counts.layer, positions, both, matrix, pairs: pairs.slice(0, top) };
}
