import { readFileSync } from 'node:fs';
import { RoutelabError } from '../errors.js';
import type { Router, Routing } from './router.js';
import { largestFirst, requireExperts, type WeightMode, writeSelection } from './selection.js';
import { softmaxRow } from './softmax.js';

export interface RandKParams {
  /** Per MoE layer, the share of positions that chose c = 0, 1, … experts under the source configuration. */
  readonly shares: readonly (readonly number[])[];
  /** The eval summary the shares come from, and its configuration name. */
  readonly file: string;
  readonly source: string;
  readonly seed: number;
  readonly weights: WeightMode;
}

/**
 * randk(from, seed, weights): the control that separates an adaptive router's *choice* from its *count*. Each token
 * draws its number of experts c from the source configuration's count distribution at that layer, then takes the c
 * most probable experts, weighted by their probabilities (`probs`) or renormalised (`renorm`). The draw is a hash of
 * the seed, the layer and the token's router logits, so it is reproducible and never depends on the batch.
 */
export class RandKRouter implements Router {
  readonly spec: string;
  readonly minK: number;
  readonly maxK: number;
  readonly adaptive = true;
  private readonly cumulative: Float64Array[]; // per layer, P(c ≤ j)

  constructor(readonly params: RandKParams) {
    const { shares, file, seed, weights } = params;
    // `from` is last: a path may contain commas (the spec parser splits only before `key=`).
    this.spec = `randk:seed=${seed},weights=${weights},from=${file}`;
    this.cumulative = shares.map((row) => {
      const total = row.reduce((a, b) => a + b, 0);
      let running = 0;
      return Float64Array.from(row, (share) => (running += share / total));
    });
    const used = shares.flatMap((row) => row.flatMap((share, c) => (share > 0 ? [c] : [])));
    this.minK = Math.min(...used);
    this.maxK = Math.max(...used);
  }

  configName(): string {
    const { source, seed, weights } = this.params;
    return `${source}_randk${weights === 'probs' ? '_probs' : ''}${seed !== 0 ? `_s${seed}` : ''}`;
  }

  route(layer: number, logits: Float32Array, tokens: number, numExperts: number): Routing {
    const { maxK } = this;
    requireExperts(this.spec, maxK, numExperts);
    const cumulative = this.cumulative[layer];
    if (!cumulative) throw new RoutelabError(this.params.file, `has count distributions for ${this.cumulative.length} MoE layers; cannot route MoE layer ${layer}`);
    const bits = new Uint32Array(logits.buffer, logits.byteOffset, logits.length);
    const probs = new Float32Array(numExperts);
    const order = new Int32Array(maxK);
    const counts = new Int32Array(tokens);
    const experts = new Int32Array(tokens * maxK);
    const weights = new Float32Array(tokens * maxK);
    for (let t = 0; t < tokens; t++) {
      const u = uniformOf(bits, t * numExperts, numExperts, this.params.seed, layer);
      let c = 0;
      while (c < cumulative.length - 1 && u >= cumulative[c]) c++;
      counts[t] = c;
      softmaxRow(logits, t * numExperts, numExperts, 1, probs);
      largestFirst(probs, c, order);
      writeSelection(probs, order, c, this.params.weights === 'renorm', experts, weights, t * maxK);
    }
    return { tokens, maxK, counts, experts, weights };
  }
}

/** A uniform number in [0, 1) from the seed, the layer and one token's logits (MurmurHash3's 32-bit mixing). */
function uniformOf(bits: Uint32Array, offset: number, length: number, seed: number, layer: number): number {
  let h = (seed ^ Math.imul(layer + 1, 0x9e3779b1)) >>> 0;
  for (let i = offset; i < offset + length; i++) {
    let k = Math.imul(bits[i], 0xcc9e2d51);
    k = Math.imul((k << 15) | (k >>> 17), 0x1b873593);
    h ^= k;
    h = (Math.imul((h << 13) | (h >>> 19), 5) + 0xe6546b64) | 0;
  }
  h ^= length;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  h ^= h >>> 16;
  return (h >>> 0) / 2 ** 32;
}

/** The count distributions of an eval summary (routelab.eval/1), checked against the model's MoE layers. */
export function readCountShares(file: string, numLayers: number): { shares: number[][]; source: string } {
  let summary: { format?: unknown; config?: unknown; routing?: { per_layer_count_shares?: unknown } };
  try {
    summary = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new RoutelabError(file, `cannot read an eval summary to draw counts from (${(e as Error).message})`);
  }
  const shares = summary?.routing?.per_layer_count_shares;
  const valid = summary?.format === 'routelab.eval/1' && typeof summary.config === 'string' && Array.isArray(shares)
    && shares.every((row) => Array.isArray(row) && row.every((v) => typeof v === 'number' && v >= 0) && row.some((v) => v > 0));
  if (!valid) throw new RoutelabError(file, 'expected a routelab.eval/1 summary with routing.per_layer_count_shares (written by routelab eval or sweep)');
  if ((shares as number[][]).length !== numLayers) {
    throw new RoutelabError(file, `has count distributions for ${(shares as number[][]).length} MoE layers, the model has ${numLayers}`);
  }
  return { shares: shares as number[][], source: summary.config as string };
}
