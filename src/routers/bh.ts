import { expertPValues, layerNull, type NullModel } from './null-model.js';
import type { Router, Routing } from './router.js';
import { requireExperts, smallestFirst, type WeightMode, writeSelection } from './selection.js';
import { softmaxRow } from './softmax.js';

export interface BhParams {
  readonly alpha: number; // false discovery rate, in (0, 1]
  readonly maxK: number;
  readonly minK: number;
  readonly temperature: number; // of the softmax that weights the selected experts
  readonly nullModel: NullModel;
  readonly weights: WeightMode;
  readonly pValues: PValueMode;
}

/** `exact`: p-values and thresholds in double. `bf16`: as the original BH-routing code ran on OLMoE (see route). */
export const P_VALUE_MODES = ['exact', 'bf16'] as const;
export type PValueMode = (typeof P_VALUE_MODES)[number];

/** The clamp of bf16 p-values: [ε, 1 − ε] with ε = 2⁻⁷. */
const BF16_P_EPSILON = 2 ** -7;

/** float32 → the nearest bfloat16 (round half to even), as a number. */
const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);
function toBf16(x: number): number {
  f32[0] = x;
  const bits = u32[0];
  u32[0] = ((bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16) << 16;
  return f32[0];
}

/**
 * bh(alpha, max_k, min_k, temperature, null, weights, pvalues): route each token to the experts whose logits are
 * significantly high under a null model, by the Benjamini–Hochberg step-up procedure. Expert e gets the p-value
 * p_e = 1 − F_ℓ(r_e); with p sorted ascending, n = the largest i with p_(i) ≤ i·alpha/E (0 if none), clamped to
 * [min_k, max_k]; the first n are selected and weighted by softmax(r / temperature), renormalised over them
 * (`weights=renorm`, the original code's choice) or not (`probs`). `pvalues=bf16` rounds each p-value to bfloat16 and
 * clamps it to [2⁻⁷, 1 − 2⁻⁷], with float32 thresholds, as the original code computed them on a bf16 OLMoE.
 */
export class BhRouter implements Router {
  readonly spec: string;
  readonly alpha: number;
  readonly minK: number;
  readonly maxK: number;
  readonly temperature: number;
  readonly nullModel: NullModel;
  readonly weights: WeightMode;
  readonly pValues: PValueMode;
  readonly adaptive = true;

  constructor({ alpha, maxK, minK, temperature, nullModel, weights, pValues }: BhParams) {
    // The null file is last: its path may contain commas (the spec parser splits only before `key=`).
    this.spec = `bh:alpha=${alpha},max_k=${maxK},min_k=${minK},temperature=${temperature},weights=${weights},pvalues=${pValues},null=${nullModel.file}`;
    this.alpha = alpha;
    this.minK = minK;
    this.maxK = maxK;
    this.temperature = temperature;
    this.nullModel = nullModel;
    this.weights = weights;
    this.pValues = pValues;
  }

  /** `{max_k}experts_bh_a{100·alpha}`, with `_mink{n}` / `_t{temperature}` when not 1. */
  configName(): string {
    const a = String(Math.round(100 * this.alpha)).padStart(3, '0');
    const minK = this.minK !== 1 ? `_mink${this.minK}` : '';
    const temp = this.temperature !== 1 ? `_t${String(this.temperature).replace(/[^A-Za-z0-9.]+/g, '-')}` : '';
    const modes = `${this.weights === 'probs' ? '_probs' : ''}${this.pValues === 'bf16' ? '_bf16p' : ''}`;
    return `${this.maxK}experts_bh_a${a}${minK}${temp}${modes}`;
  }

  route(layer: number, logits: Float32Array, tokens: number, numExperts: number): Routing {
    const { alpha, minK, maxK, temperature } = this;
    const E = numExperts;
    requireExperts(this.spec, maxK, E);
    const nulls = layerNull(this.nullModel, layer, E);
    const p = new Float64Array(E); // [E], one token at a time; decisions use double p-values, as numpy would
    const order = new Int32Array(E);
    const probs = new Float32Array(E);
    const pValues = new Float32Array(tokens * E);
    const counts = new Int32Array(tokens);
    const experts = new Int32Array(tokens * maxK);
    const weights = new Float32Array(tokens * maxK);
    const bf16 = this.pValues === 'bf16';
    const thresholds = Float64Array.from({ length: E }, (_, i) => (bf16 ? Math.fround(Math.fround((i + 1) * Math.fround(alpha)) / E) : ((i + 1) * alpha) / E));
    for (let t = 0; t < tokens; t++) {
      const row = t * E;
      expertPValues(nulls, logits, row, E, p);
      for (let e = 0; e < E; e++) {
        if (bf16) p[e] = Math.min(1 - BF16_P_EPSILON, Math.max(BF16_P_EPSILON, toBf16(p[e])));
        pValues[row + e] = p[e];
      }
      smallestFirst(p, E, order);
      // Step-up: the largest passing rank counts even when smaller ranks fail.
      let n = 0;
      for (let i = 1; i <= E; i++) if (p[order[i - 1]] <= thresholds[i - 1]) n = i;
      n = Math.min(maxK, Math.max(minK, n));
      counts[t] = n;
      softmaxRow(logits, row, E, temperature, probs);
      writeSelection(probs, order, n, this.weights === 'renorm', experts, weights, t * maxK);
    }
    return { tokens, maxK, counts, experts, weights, pValues };
  }
}
