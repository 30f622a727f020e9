import { RoutelabError } from '../errors.js';
import type { RoutingParameters } from '../model/architecture.js';
import type { Router, Routing } from './router.js';
import { largestFirst, requireExperts } from './selection.js';
import { softmaxRow } from './softmax.js';

export interface GroupLimit {
  readonly numGroups: number; // experts split into contiguous groups of E / numGroups (1: no limit)
  readonly topkGroups: number; // only the best topkGroups groups may be chosen from
}

/**
 * Keep the `topkGroups` best groups of `scores` (a group's score by `groupScore`) and set every other expert's
 * score to 0.0 (not −∞, as Hugging Face masks), in place; ties between groups go to the lower group index.
 */
function limitGroups(scores: Float32Array, limit: GroupLimit, groupScore: (scores: Float32Array, start: number, size: number) => number, groupValues: Float32Array, groupOrder: Int32Array): void {
  const { numGroups, topkGroups } = limit;
  if (numGroups <= 1 || topkGroups >= numGroups) return;
  const size = scores.length / numGroups;
  for (let g = 0; g < numGroups; g++) groupValues[g] = groupScore(scores, g * size, size);
  largestFirst(groupValues, topkGroups, groupOrder);
  for (let g = 0; g < numGroups; g++) {
    let kept = false;
    for (let j = 0; j < topkGroups; j++) if (groupOrder[j] === g) kept = true;
    if (!kept) scores.fill(0, g * size, (g + 1) * size);
  }
}

function groupMax(s: Float32Array, start: number, size: number): number {
  let m = -Infinity;
  for (let i = start; i < start + size; i++) m = Math.max(m, s[i]);
  return m;
}

/** The sum of a group's two largest scores (the group's only score when it has one expert), in float32. */
function groupTopTwo(s: Float32Array, start: number, size: number): number {
  let a = -Infinity;
  let b = -Infinity;
  for (let i = start; i < start + size; i++) {
    if (s[i] > a) [a, b] = [s[i], a];
    else if (s[i] > b) b = s[i];
  }
  return size === 1 ? a : Math.fround(a + b);
}

/**
 * deepseek_v2(k, n_group, topk_group, scale): DeepSeek-V2's gate (`DeepseekV2MoEGate`): p = softmax(r); greedy top-k,
 * or — with n_group > 1 — only within the topk_group groups of the highest max p ("group_limited_greedy"); weights
 * are p × scale, never renormalised.
 */
export class DeepseekV2Router implements Router {
  readonly spec: string;
  readonly minK: number;
  readonly maxK: number;

  constructor(
    readonly k: number,
    readonly groups: GroupLimit,
    readonly scale: number,
  ) {
    this.spec = `deepseek_v2:k=${k},n_group=${groups.numGroups},topk_group=${groups.topkGroups},scale=${scale}`;
    this.minK = k;
    this.maxK = k;
  }

  readonly adaptive = false;

  configName(model: RoutingParameters): string {
    return `${this.k}experts_deepseek_v2${groupSuffix(this.groups, model)}${this.scale !== model.routedScalingFactor ? `_scale${this.scale}` : ''}_baseline`;
  }

  route(_layer: number, logits: Float32Array, tokens: number, numExperts: number): Routing {
    const { k, groups, scale } = this;
    requireExperts(this.spec, k, numExperts);
    requireGroups(this.spec, groups, numExperts, k);
    const probs = new Float32Array(numExperts);
    const masked = new Float32Array(numExperts);
    const { chosen, groupValues, groupOrder, routing } = groupedSelection(tokens, k, groups);
    const { experts, weights } = routing;
    const s = Math.fround(scale);
    for (let t = 0; t < tokens; t++) {
      softmaxRow(logits, t * numExperts, numExperts, 1, probs);
      masked.set(probs);
      limitGroups(masked, groups, groupMax, groupValues, groupOrder);
      largestFirst(masked, k, chosen);
      for (let j = 0; j < k; j++) {
        experts[t * k + j] = chosen[j];
        weights[t * k + j] = masked[chosen[j]] * s;
      }
    }
    return routing;
  }
}

/**
 * deepseek_v3(k, n_group, topk_group, renormalize, scale): DeepSeek-V3's gate (`DeepseekV3TopkRouter`): scores
 * s = sigmoid(r); experts are chosen on s + b (b = the model's e_score_correction_bias for the layer, 0 for a model
 * without one) within the topk_group groups of the highest sum of their two best biased scores; weights are the
 * unbiased s of the chosen, divided by their sum + 1e-20 when `renormalize`, × scale.
 */
export class DeepseekV3Router implements Router {
  readonly spec: string;
  readonly minK: number;
  readonly maxK: number;

  constructor(
    readonly k: number,
    readonly groups: GroupLimit,
    readonly renormalize: boolean,
    readonly scale: number,
    private readonly selectionBias: (layer: number) => Float32Array | null,
  ) {
    this.spec = `deepseek_v3:k=${k},n_group=${groups.numGroups},topk_group=${groups.topkGroups},renormalize=${renormalize},scale=${scale}`;
    this.minK = k;
    this.maxK = k;
  }

  readonly adaptive = false;

  configName(model: RoutingParameters): string {
    const renorm = this.renormalize !== model.normTopkProb ? (this.renormalize ? '_renorm' : '_norenorm') : '';
    return `${this.k}experts_deepseek_v3${groupSuffix(this.groups, model)}${renorm}${this.scale !== model.routedScalingFactor ? `_scale${this.scale}` : ''}_baseline`;
  }

  route(layer: number, logits: Float32Array, tokens: number, numExperts: number): Routing {
    const { k, groups, renormalize } = this;
    requireExperts(this.spec, k, numExperts);
    requireGroups(this.spec, groups, numExperts, k);
    const bias = this.selectionBias(layer);
    const scores = new Float32Array(numExperts);
    const biased = new Float32Array(numExperts);
    const { chosen, groupValues, groupOrder, routing } = groupedSelection(tokens, k, groups);
    const { experts, weights } = routing;
    const scale = Math.fround(this.scale);
    for (let t = 0; t < tokens; t++) {
      for (let e = 0; e < numExperts; e++) {
        scores[e] = 1 / (1 + Math.exp(-logits[t * numExperts + e]));
        biased[e] = bias ? scores[e] + bias[e] : scores[e];
      }
      limitGroups(biased, groups, groupTopTwo, groupValues, groupOrder);
      largestFirst(biased, k, chosen);
      let denominator = 1;
      if (renormalize) {
        let sum = 0;
        for (let j = 0; j < k; j++) sum = Math.fround(sum + scores[chosen[j]]);
        denominator = Math.fround(sum + 1e-20);
      }
      for (let j = 0; j < k; j++) {
        experts[t * k + j] = chosen[j];
        weights[t * k + j] = Math.fround(scores[chosen[j]] / denominator) * scale;
      }
    }
    return routing;
  }
}

/** The output of a fixed-k routing of T tokens and the scratch a group-limited selection reuses per token. */
function groupedSelection(tokens: number, k: number, groups: GroupLimit) {
  return {
    chosen: new Int32Array(k),
    groupValues: new Float32Array(groups.numGroups),
    groupOrder: new Int32Array(groups.numGroups),
    routing: { tokens, maxK: k, counts: new Int32Array(tokens).fill(k), experts: new Int32Array(tokens * k), weights: new Float32Array(tokens * k) } satisfies Routing,
  };
}

/** `_g{n_group}of{topk_group}` when the group limit differs from the model's own. */
function groupSuffix(g: GroupLimit, model: RoutingParameters): string {
  return g.numGroups !== model.numGroups || g.topkGroups !== model.topkGroups ? `_g${g.topkGroups}of${g.numGroups}` : '';
}

/** A group limit must split the experts evenly and keep at least k of them. */
export function requireGroups(spec: string, g: GroupLimit, numExperts: number, k: number): void {
  if (numExperts % g.numGroups !== 0 || (numExperts / g.numGroups) * g.topkGroups < k) {
    throw new RoutelabError('--router', `${spec}: ${g.numGroups} groups with ${g.topkGroups} kept cannot route ${k} of ${numExperts} experts (n_group must divide E and keep at least k experts)`);
  }
}
