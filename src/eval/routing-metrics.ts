/**
 * Routing metrics of SPEC §4, accumulated in a streaming fashion over the scored tokens t and layers ℓ.
 *
 * Which tokens: only *scored positions* — input positions whose logits predict a scored token. With rolling
 * windows each document token is therefore counted exactly once (as the position that predicts it), and context
 * tokens of loglikelihood requests are not counted. Requests with identical model input (of one document) share
 * their positions, so a position that predicts several continuations (e.g. single-token choices) counts once.
 *
 * Memory is bounded: per-layer sums, a [L × E] selection-count table, a histogram of c and, across adjacent layers,
 * the five sums a Pearson correlation needs. Nothing grows with the number of tokens.
 *
 * Conventions (all documented here because SPEC leaves them open):
 * - std of c and layer_expert_variance are population statistics (divide by n, resp. L).
 * - gini of one layer: G = Σ_i (2i − n − 1)·x_(i) / (n·Σx) over the E per-expert counts sorted ascending
 *   (i = 1…n); 0 when the layer selected nothing.
 * - selection_entropy pools the histogram of c over all (t, ℓ), in nats.
 * - layer_consistency averages the adjacent-layer Pearson correlations that are defined; null when none is.
 */

export interface RoutingShape {
  readonly numLayers: number; // L
  readonly numExperts: number; // E
  readonly minK: number; // router's min_k
  readonly maxK: number; // router's max_k
}

export interface RoutingMetrics {
  avg_experts: number;
  expert_activation_ratio: number;
  flops_per_token: number;
  flops_reduction_pct: number;
  tokens_per_second: number;
  latency_ms_per_token: number;
  expert_utilization: number;
  gini: number;
  adaptive_range: number;
  selection_entropy: number;
  selection_entropy_norm: number;
  std_experts: number;
  min_experts: number;
  max_experts: number;
  ceiling_hit_rate: number;
  floor_hit_rate: number;
  layer_expert_variance: number;
  layer_consistency: number | null;
  expert_overlap: number;
  output_determinism: number | null;
  /** Number of scored positions t (each counted once over all L layers). */
  scored_tokens: number;
  /** mean_t c[t, ℓ] per layer. */
  per_layer_avg_experts: number[];
  /** Per layer ℓ, the share of scored positions with c = 0 … max_k experts: what a randk control draws from. */
  per_layer_count_shares: number[][];
  /** Mean number of keys a scored position attends to (its position in its input + 1); enters flops_per_token. */
  mean_context_length: number;
}

export class RoutingAccumulator {
  private readonly L: number;
  private readonly E: number;
  /** Scored positions seen per layer (equal across layers once a batch is complete). */
  private readonly tokensPerLayer: Float64Array;
  private readonly sumC: Float64Array; // [L]
  private readonly expertCounts: Float64Array; // [L × E] times expert e was selected at layer ℓ
  private readonly histogram: Float64Array; // [E + 1] c values over all (t, ℓ)
  private readonly layerHistogram: Float64Array; // [L × (E + 1)] c values per layer
  private sumSq = 0;
  private minC = Infinity;
  private maxC = -Infinity;
  private overlapSum = 0;
  private overlapCount = 0;
  // Pearson sums for each adjacent pair (ℓ, ℓ+1): n, Σx, Σy, Σxx, Σyy, Σxy.
  private readonly pair: Float64Array; // [(L − 1) × 6]
  private previous: Int32Array = new Int32Array(0); // c of the last layer seen, first previousN entries
  private previousN = 0;
  private previousLayer = -1;
  private contextSum = 0;
  private contextCount = 0;

  constructor(readonly shape: RoutingShape) {
    this.L = shape.numLayers;
    this.E = shape.numExperts;
    this.tokensPerLayer = new Float64Array(this.L);
    this.sumC = new Float64Array(this.L);
    this.expertCounts = new Float64Array(this.L * this.E);
    this.histogram = new Float64Array(this.E + 1);
    this.layerHistogram = new Float64Array(this.L * (this.E + 1));
    this.pair = new Float64Array(Math.max(0, this.L - 1) * 6);
  }

  /**
   * The routing of n scored positions at one layer. Layers of one batch must arrive in order 0…L−1 with the same
   * positions in the same order (that is how adjacent layers are paired for layer_consistency).
   * `experts` is the router's padded layout ([n × stride], first counts[i] entries used).
   * `overlap`, when given, holds the Jaccard index of each position's selection against the default top-k.
   */
  addLayer(layer: number, n: number, counts: ArrayLike<number>, experts: ArrayLike<number>, stride: number, overlap?: ArrayLike<number>): void {
    const E = this.E;
    const base = layer * E;
    let sum = 0;
    for (let i = 0; i < n; i++) {
      const c = counts[i];
      sum += c;
      this.sumSq += c * c;
      if (c < this.minC) this.minC = c;
      if (c > this.maxC) this.maxC = c;
      this.histogram[c]++;
      this.layerHistogram[layer * (E + 1) + c]++;
      for (let j = 0; j < c; j++) this.expertCounts[base + experts[i * stride + j]]++;
    }
    this.sumC[layer] += sum;
    this.tokensPerLayer[layer] += n;
    if (overlap) {
      for (let i = 0; i < n; i++) this.overlapSum += overlap[i];
      this.overlapCount += n;
    }
    if (layer > 0 && this.previousLayer === layer - 1 && this.previousN === n) {
      const p = (layer - 1) * 6;
      const s = this.pair;
      for (let i = 0; i < n; i++) {
        const x = this.previous[i];
        const y = counts[i];
        s[p] += 1;
        s[p + 1] += x;
        s[p + 2] += y;
        s[p + 3] += x * x;
        s[p + 4] += y * y;
        s[p + 5] += x * y;
      }
    } else if (layer > 0) {
      throw new Error(`routing of layer ${layer} arrived without layer ${layer - 1} for the same ${n} positions`);
    }
    if (this.previous.length < n) this.previous = new Int32Array(n);
    for (let i = 0; i < n; i++) this.previous[i] = counts[i];
    this.previousN = n;
    this.previousLayer = layer;
  }

  /** Context lengths (keys attended) of scored positions, for the attention term of flops_per_token. */
  addContext(sumOfContextLengths: number, positions: number): void {
    this.contextSum += sumOfContextLengths;
    this.contextCount += positions;
  }

  get scoredTokens(): number {
    return this.tokensPerLayer[0] ?? 0;
  }

  /**
   * The metrics. `flops` prices a token for a mean expert count and context length (the model's flopsPerToken),
   * `defaultK` is the model's own experts per token (the FLOPs baseline); `forwardSeconds` is the
   * wall time of the forward passes; `determinism` comes from outputDeterminism (null when not measured).
   */
  finish(options: { flops?: (avgExperts: number, contextLength: number) => number; defaultK?: number; forwardSeconds?: number; determinism?: number | null } = {}): RoutingMetrics {
    const { L, E } = this;
    const n = this.scoredTokens;
    const cells = n * L;
    let total = 0;
    for (let l = 0; l < L; l++) total += this.sumC[l];
    const avg = cells > 0 ? total / cells : 0;
    const perLayer = Array.from(this.sumC, (s, l) => (this.tokensPerLayer[l] > 0 ? s / this.tokensPerLayer[l] : 0));
    const variance = cells > 0 ? Math.max(0, this.sumSq / cells - avg * avg) : 0;

    let utilization = 0;
    let gini = 0;
    const sorted = new Float64Array(E);
    for (let l = 0; l < L; l++) {
      const counts = this.expertCounts.subarray(l * E, (l + 1) * E);
      let used = 0;
      for (let e = 0; e < E; e++) if (counts[e] > 0) used++;
      utilization += used / E;
      sorted.set(counts);
      sorted.sort();
      gini += giniSorted(sorted);
    }
    utilization = L > 0 ? utilization / L : 0;
    gini = L > 0 ? gini / L : 0;

    const { minK, maxK } = this.shape;
    let entropy = 0;
    let ceiling = 0;
    let floor = 0;
    if (cells > 0) {
      for (let c = 0; c <= E; c++) {
        const p = this.histogram[c] / cells;
        if (p > 0) entropy -= p * Math.log(p);
      }
      ceiling = this.histogram[maxK] / cells;
      floor = this.histogram[minK] / cells;
    }

    let layerMean = 0;
    for (const v of perLayer) layerMean += v / L;
    let layerVariance = 0;
    for (const v of perLayer) layerVariance += (v - layerMean) ** 2 / L;

    let rSum = 0;
    let rCount = 0;
    for (let p = 0; p + 1 < L; p++) {
      const r = pearsonFromSums(this.pair.subarray(p * 6, p * 6 + 6));
      if (r !== null) {
        rSum += r;
        rCount++;
      }
    }

    const meanContext = this.contextCount > 0 ? this.contextSum / this.contextCount : 0;
    let flops = NaN;
    let reduction = NaN;
    if (options.flops && options.defaultK !== undefined) {
      flops = options.flops(avg, meanContext);
      const base = options.flops(options.defaultK, meanContext);
      reduction = 100 * (1 - flops / base);
    }
    const seconds = options.forwardSeconds ?? NaN;
    const tps = seconds > 0 ? n / seconds : NaN;
    return {
      avg_experts: avg,
      expert_activation_ratio: avg / E,
      flops_per_token: flops,
      flops_reduction_pct: reduction,
      tokens_per_second: tps,
      latency_ms_per_token: tps > 0 ? 1000 / tps : NaN,
      expert_utilization: utilization,
      gini,
      adaptive_range: cells > 0 ? this.maxC - this.minC : 0,
      selection_entropy: entropy,
      selection_entropy_norm: maxK > 1 ? entropy / Math.log(maxK) : 0,
      std_experts: Math.sqrt(variance),
      min_experts: cells > 0 ? this.minC : 0,
      max_experts: cells > 0 ? this.maxC : 0,
      ceiling_hit_rate: ceiling,
      floor_hit_rate: floor,
      layer_expert_variance: layerVariance,
      layer_consistency: rCount > 0 ? rSum / rCount : null,
      expert_overlap: this.overlapCount > 0 ? this.overlapSum / this.overlapCount : NaN,
      output_determinism: options.determinism ?? null,
      scored_tokens: n,
      per_layer_avg_experts: perLayer,
      per_layer_count_shares: Array.from({ length: this.L }, (_, l) => Array.from(
        this.layerHistogram.subarray(l * (this.E + 1), l * (this.E + 1) + maxK + 1),
        (count) => (this.tokensPerLayer[l] > 0 ? count / this.tokensPerLayer[l] : 0),
      )),
      mean_context_length: meanContext,
    };
  }
}

/** Gini coefficient of non-negative values sorted ascending; 0 for an all-zero or empty list. */
export function giniSorted(x: ArrayLike<number>): number {
  const n = x.length;
  let total = 0;
  let weighted = 0;
  for (let i = 0; i < n; i++) {
    total += x[i];
    weighted += (2 * (i + 1) - n - 1) * x[i];
  }
  return total > 0 ? weighted / (n * total) : 0;
}

/** Pearson r from [n, Σx, Σy, Σxx, Σyy, Σxy]; null when either variable is constant (or n < 2). */
export function pearsonFromSums(s: ArrayLike<number>): number | null {
  const [n, sx, sy, sxx, syy, sxy] = [s[0], s[1], s[2], s[3], s[4], s[5]];
  if (n < 2) return null;
  const vx = n * sxx - sx * sx;
  const vy = n * syy - sy * sy;
  if (vx <= 0 || vy <= 0) return null;
  return (n * sxy - sx * sy) / Math.sqrt(vx * vy);
}

/**
 * Jaccard index |A ∩ B| / |A ∪ B| of two expert sets given as lists; `mark` is scratch of length E, all zero on
 * entry and on exit. Two empty sets give 1.
 */
export function jaccard(a: ArrayLike<number>, aStart: number, aCount: number, b: ArrayLike<number>, bStart: number, bCount: number, mark: Uint8Array): number {
  for (let j = 0; j < aCount; j++) mark[a[aStart + j]] = 1;
  let both = 0;
  for (let j = 0; j < bCount; j++) if (mark[b[bStart + j]] === 1) both++;
  for (let j = 0; j < aCount; j++) mark[a[aStart + j]] = 0;
  const union = aCount + bCount - both;
  return union > 0 ? both / union : 1;
}

/** output_determinism: 1 when the two logit arrays are bit-identical, else their max absolute difference. */
export function outputDeterminism(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) return Infinity;
  const ua = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const ub = new Uint32Array(b.buffer, b.byteOffset, b.length);
  let identical = true;
  for (let i = 0; i < ua.length; i++) {
    if (ua[i] !== ub[i]) {
      identical = false;
      break;
    }
  }
  if (identical) return 1;
  let max = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    if (d > max || Number.isNaN(d)) max = Number.isNaN(d) ? Infinity : d;
  }
  return max;
}
