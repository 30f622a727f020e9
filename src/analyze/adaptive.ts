/**
 * What drives adaptive counts: for a configuration whose number of experts varies, the count c[t,ℓ] of each
 * (position, layer) row against a measure of how hard the position is.
 *
 * The trace records no log-probabilities (docs/trace.md), so the model's surprisal of a token is not available
 * here. Two measures are:
 *   unigram surprisal  s(t)   = −log₂ (N(x_t) / N) bits, x_t the input token at t (what the router saw), with N(x)
 *                               and N counted over the configuration's analysed positions: token rarity;
 *   router entropy     H(t,ℓ) = −Σ_e p_e ln p_e nats, p = softmax of the E router logits at (t, ℓ): full traces
 *                               only (counts traces keep the selected experts' weights alone, whose entropy is
 *                               bounded by ln c and so says nothing beyond c).
 * Statistics come from a uniform sample of SAMPLE_ROWS rows (reservoir sampling, Algorithm R, seeded; every row
 * when there are fewer), pooled over layers and per layer: Pearson's r and Spearman's ρ (Pearson's r of average
 * ranks), each with a 95% percentile bootstrap interval over RESAMPLES resamples of rows. Rows of one document
 * are not independent, so the intervals are narrower than a resampling of documents would give. The binned table
 * cuts the pooled sample into BINS quantile bins of the measure (a run of equal values is never split) and gives
 * each bin's mean count with its standard error.
 */
import { createRandom } from '../sampling.js';
import { percentile } from '../experiments/stats.js';
import type { TraceChunk } from '../trace/reader.js';
import { TokenCounts } from './vocabulary.js';

export const SAMPLE_ROWS = 50_000;
export const RESAMPLES = 1000;
export const BINS = 10;
const SEED = 0;

export const MEASURES = {
  unigram_surprisal: { title: 'unigram surprisal of the input token', unit: 'bits' },
  router_entropy: { title: 'router entropy', unit: 'nats' },
} as const;
export type Measure = keyof typeof MEASURES;

export class CountSample {
  readonly layer = new Int32Array(SAMPLE_ROWS);
  readonly count = new Int32Array(SAMPLE_ROWS);
  readonly token = new Int32Array(SAMPLE_ROWS);
  readonly entropy = new Float64Array(SAMPLE_ROWS);
  readonly tokens = new TokenCounts();
  private readonly random = createRandom(SEED);
  /** Rows offered so far. */
  rows = 0;
  minCount = Infinity;
  maxCount = -Infinity;
  /** Whether every trace so far had router logits. */
  hasLogits = true;

  constructor(
    readonly config: string,
    readonly numLayers: number,
    readonly numExperts: number,
  ) {}

  add(chunk: TraceChunk): void {
    const E = this.numExperts;
    const logits = chunk.routerLogits;
    if (!logits) this.hasLogits = false;
    for (let r = 0; r < chunk.rows; r++) {
      const c = chunk.count[r];
      if (c < this.minCount) this.minCount = c;
      if (c > this.maxCount) this.maxCount = c;
      if (chunk.layer[r] === 0) this.tokens.add(chunk.token[r]);
      const seen = this.rows++;
      const slot = seen < SAMPLE_ROWS ? seen : Math.floor(this.random() * (seen + 1));
      if (slot >= SAMPLE_ROWS) continue;
      this.layer[slot] = chunk.layer[r];
      this.count[slot] = c;
      this.token[slot] = chunk.token[r];
      this.entropy[slot] = logits ? softmaxEntropy(logits, r * E, E) : NaN;
    }
  }

  get size(): number {
    return Math.min(this.rows, SAMPLE_ROWS);
  }
}

/** Entropy (nats) of softmax(v[at … at+E)): ln Z − Σ p (v − max), Z = Σ exp(v − max). */
function softmaxEntropy(v: Float32Array, at: number, E: number): number {
  let max = -Infinity;
  for (let e = 0; e < E; e++) max = Math.max(max, v[at + e]);
  let z = 0;
  let weighted = 0;
  for (let e = 0; e < E; e++) {
    const d = v[at + e] - max;
    const w = Math.exp(d);
    z += w;
    weighted += w * d;
  }
  return Math.log(z) - weighted / z;
}

export interface Interval {
  readonly value: number | null;
  readonly low: number | null;
  readonly high: number | null;
}

export interface CountCorrelation {
  readonly measure: Measure;
  /** A MoE layer, or null for the rows of every layer pooled. */
  readonly layer: number | null;
  readonly n: number;
  readonly pearson: Interval;
  readonly spearman: Interval;
}

export interface CountBin {
  readonly measure: Measure;
  readonly bin: number;
  readonly n: number;
  readonly low: number;
  readonly high: number;
  readonly mean: number; // of the measure
  readonly meanCount: number;
  readonly standardError: number | null; // of meanCount; null for a bin of one row
}

export interface AdaptiveCounts {
  readonly config: string;
  readonly rows: number;
  readonly sampled: number;
  readonly minCount: number;
  readonly maxCount: number;
  readonly measures: readonly Measure[];
  readonly correlations: readonly CountCorrelation[];
  readonly bins: readonly CountBin[];
}

export function adaptiveCounts(sample: CountSample): AdaptiveCounts {
  const n = sample.size;
  const count = Float64Array.from(sample.count.subarray(0, n));
  const values: Partial<Record<Measure, Float64Array>> = {
    unigram_surprisal: Float64Array.from(sample.token.subarray(0, n), (x) => -Math.log2(sample.tokens.counts[x] / sample.tokens.total)),
  };
  if (sample.hasLogits) values.router_entropy = sample.entropy.slice(0, n);
  const measures = Object.keys(values) as Measure[];
  const random = createRandom(SEED);
  const correlations: CountCorrelation[] = [];
  const bins: CountBin[] = [];
  for (const measure of measures) {
    const x = values[measure]!;
    for (const layer of [null, ...Array.from({ length: sample.numLayers }, (_, l) => l)]) {
      const rows = layer === null ? null : Int32Array.from({ length: n }, (_, i) => i).filter((i) => sample.layer[i] === layer);
      const pick = (v: Float64Array) => (rows === null ? v : Float64Array.from(rows, (i) => v[i]));
      correlations.push({ measure, layer, n: rows === null ? n : rows.length, ...correlate(pick(x), pick(count), random) });
    }
    bins.push(...binned(measure, x, count));
  }
  return { config: sample.config, rows: sample.rows, sampled: n, minCount: sample.minCount, maxCount: sample.maxCount, measures, correlations, bins };
}

/** Indices of v in ascending order. */
function ascending(v: Float64Array): Int32Array {
  return Int32Array.from({ length: v.length }, (_, i) => i).sort((a, b) => v[a] - v[b]);
}

/**
 * Average ranks (1-based) of v in the sample that holds row i w[i] times: walking v's ascending order, a run of
 * equal values of total weight g that starts after s rows gets s + (g + 1)/2. O(n) given the order, so a bootstrap
 * resample is ranked without sorting it.
 */
function weightedRanks(v: Float64Array, order: Int32Array, w: Float64Array, out: Float64Array): void {
  let before = 0;
  for (let i = 0; i < order.length; ) {
    let j = i;
    let g = 0;
    for (; j < order.length && v[order[j]] === v[order[i]]; j++) g += w[order[j]];
    for (let k = i; k < j; k++) out[order[k]] = before + (g + 1) / 2;
    before += g;
    i = j;
  }
}

/** Pearson's r of x and y in the sample holding row i w[i] times; NaN when either is constant. */
function weightedPearson(x: Float64Array, y: Float64Array, w: Float64Array): number {
  let total = 0;
  let sx = 0;
  let sy = 0;
  for (let i = 0; i < x.length; i++) {
    total += w[i];
    sx += w[i] * x[i];
    sy += w[i] * y[i];
  }
  const mx = sx / total;
  const my = sy / total;
  let cxy = 0;
  let cxx = 0;
  let cyy = 0;
  for (let i = 0; i < x.length; i++) {
    const dx = x[i] - mx;
    const dy = y[i] - my;
    cxy += w[i] * dx * dy;
    cxx += w[i] * dx * dx;
    cyy += w[i] * dy * dy;
  }
  return cxx > 0 && cyy > 0 ? cxy / Math.sqrt(cxx * cyy) : NaN;
}

function correlate(x: Float64Array, y: Float64Array, random: () => number): { pearson: Interval; spearman: Interval } {
  const n = x.length;
  const ox = ascending(x);
  const oy = ascending(y);
  const rx = new Float64Array(n);
  const ry = new Float64Array(n);
  const w = new Float64Array(n);
  const statistics = (): [number, number] => {
    weightedRanks(x, ox, w, rx);
    weightedRanks(y, oy, w, ry);
    return [weightedPearson(x, y, w), weightedPearson(rx, ry, w)];
  };
  if (n < 3) return { pearson: { value: null, low: null, high: null }, spearman: { value: null, low: null, high: null } };
  w.fill(1);
  const [pearson, spearman] = statistics();
  const resampled = [new Float64Array(RESAMPLES), new Float64Array(RESAMPLES)];
  for (let b = 0; b < RESAMPLES; b++) {
    w.fill(0);
    for (let i = 0; i < n; i++) w[Math.floor(random() * n)]++;
    [resampled[0][b], resampled[1][b]] = statistics();
  }
  const interval = (value: number, draws: Float64Array): Interval => {
    if (!Number.isFinite(value)) return { value: null, low: null, high: null };
    const finite = draws.filter(Number.isFinite).sort();
    return { value, low: percentile(finite, 2.5), high: percentile(finite, 97.5) };
  };
  return { pearson: interval(pearson, resampled[0]), spearman: interval(spearman, resampled[1]) };
}

function binned(measure: Measure, x: Float64Array, count: Float64Array): CountBin[] {
  const n = x.length;
  const order = ascending(x);
  const bins: CountBin[] = [];
  for (let i = 0; i < n; ) {
    // Bin b holds the runs of equal values that start in [b·n/BINS, (b+1)·n/BINS).
    const bin = Math.floor((i * BINS) / n);
    let j = i + 1;
    while (j < n && (x[order[j]] === x[order[j - 1]] || Math.floor((j * BINS) / n) === bin)) j++;
    let sx = 0;
    let sc = 0;
    let scc = 0;
    for (let k = i; k < j; k++) {
      sx += x[order[k]];
      sc += count[order[k]];
      scc += count[order[k]] ** 2;
    }
    const m = j - i;
    const meanCount = sc / m;
    const variance = m > 1 ? (scc - m * meanCount * meanCount) / (m - 1) : NaN;
    bins.push({
      measure, bin: bins.length, n: m, low: x[order[i]], high: x[order[j - 1]], mean: sx / m, meanCount,
      standardError: m > 1 ? Math.sqrt(Math.max(0, variance) / m) : null,
    });
    i = j;
  }
  return bins;
}
