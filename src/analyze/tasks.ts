/**
 * Task (domain) specialisation, as the OLMoE paper measures domain specialisation: the share of a task's positions
 * whose routing at layer ℓ selected expert e,
 *   share(D,ℓ,e) = N_D(ℓ,e) / N_D,
 * against the share every expert would get if the task's selections were spread evenly, uniform(D,ℓ) = c̄(D,ℓ) / E
 * with c̄ the task's mean experts per position at ℓ (k/E for top-k), so that Σ_e share = Σ_e uniform = c̄.
 *   deviation(D,ℓ,e) = share(D,ℓ,e) − uniform(D,ℓ)
 */
import type { TraceChunk } from '../trace/reader.js';

export class TaskCounts {
  /** [T × L × E] selections N_D(ℓ,e) and [T × L] positions N_D at each layer. */
  readonly selections: Float64Array;
  readonly positions: Float64Array;

  constructor(
    readonly tasks: readonly string[],
    readonly numLayers: number,
    readonly numExperts: number,
  ) {
    this.selections = new Float64Array(tasks.length * numLayers * numExperts);
    this.positions = new Float64Array(tasks.length * numLayers);
  }

  add(task: number, chunk: TraceChunk, maxK: number): void {
    const { numLayers: L, numExperts: E } = this;
    for (let r = 0; r < chunk.rows; r++) {
      const tl = task * L + chunk.layer[r];
      this.positions[tl]++;
      for (let j = 0; j < chunk.count[r]; j++) this.selections[tl * E + chunk.experts[r * maxK + j]]++;
    }
  }
}

export interface TaskSpecialisation {
  readonly tasks: readonly string[];
  /** [T × L × E] share, [T × L] uniform share; deviation = share − uniform. */
  readonly share: Float64Array;
  readonly uniform: Float64Array;
}

export function taskSpecialisation(counts: TaskCounts): TaskSpecialisation {
  const { tasks, numLayers: L, numExperts: E, selections, positions } = counts;
  const share = new Float64Array(selections.length);
  const uniform = new Float64Array(positions.length);
  for (let tl = 0; tl < tasks.length * L; tl++) {
    if (positions[tl] === 0) continue;
    let total = 0;
    for (let e = 0; e < E; e++) {
      share[tl * E + e] = selections[tl * E + e] / positions[tl];
      total += selections[tl * E + e];
    }
    uniform[tl] = total / positions[tl] / E;
  }
  return { tasks, share, uniform };
}
