/**
 * Vocabulary specialisation: which input tokens each expert of each layer receives.
 *
 * Over the positions of the analysed traces, with x a token id, ℓ a MoE layer and e an expert:
 *   N        positions (the same at every layer)
 *   N(x)     positions whose input token is x
 *   N(ℓ,e,x) positions with token x whose routing at layer ℓ selected e
 *   N(ℓ,e)   = Σ_x N(ℓ,e,x), the expert's selections
 *
 *   spec(ℓ,e,x) = N(ℓ,e,x) / N(x)                   the OLMoE paper's vocabulary specialisation: the share of
 *                                                    token x's occurrences routed to e (k/E when routing ignores x)
 *   lift(ℓ,e,x) = [N(ℓ,e,x) / N(ℓ,e)] / [N(x) / N]  how much more often x reaches e than x occurs at all
 *   score(ℓ,e)  = Σ_x N(ℓ,e,x) · spec(ℓ,e,x) / N(ℓ,e) the mean of spec over the expert's selections: 1 when every
 *                                                    token the expert receives goes to it at every occurrence
 *   topShare(ℓ,e) = Σ_{x ∈ top_n(ℓ,e)} N(ℓ,e,x) / N(ℓ,e), top_n the expert's n most frequent tokens
 *
 * N(ℓ,e,x) is sparse (most tokens are rare, and a rare token meets few experts), so it is kept in an open-addressing
 * hash of typed arrays: memory grows with the distinct (layer, expert, token) triples seen, never with the trace.
 */
import { RoutelabError } from '../errors.js';
import type { TraceChunk } from '../trace/reader.js';

/** (cell, token) → count, cell = ℓ·E + e; linear probing, at most half full. */
class PairCounts {
  cells = new Int32Array(1 << 12);
  tokens = new Int32Array(1 << 12).fill(-1);
  counts = new Float64Array(1 << 12);
  size = 0;

  add(cell: number, token: number): void {
    if (2 * (this.size + 1) > this.tokens.length) this.grow();
    const mask = this.tokens.length - 1;
    let slot = hash(cell, token) & mask;
    while (this.tokens[slot] !== -1 && (this.cells[slot] !== cell || this.tokens[slot] !== token)) slot = (slot + 1) & mask;
    if (this.tokens[slot] === -1) {
      this.cells[slot] = cell;
      this.tokens[slot] = token;
      this.size++;
    }
    this.counts[slot]++;
  }

  private grow(): void {
    const { cells, tokens, counts } = this;
    this.cells = new Int32Array(2 * cells.length);
    this.tokens = new Int32Array(2 * tokens.length).fill(-1);
    this.counts = new Float64Array(2 * counts.length);
    const mask = this.tokens.length - 1;
    for (let i = 0; i < tokens.length; i++) {
      if (tokens[i] === -1) continue;
      let slot = hash(cells[i], tokens[i]) & mask;
      while (this.tokens[slot] !== -1) slot = (slot + 1) & mask;
      this.cells[slot] = cells[i];
      this.tokens[slot] = tokens[i];
      this.counts[slot] = counts[i];
    }
  }
}

function hash(cell: number, token: number): number {
  let h = Math.imul(cell, 0x9e3779b1) ^ Math.imul(token, 0x85ebca77);
  h ^= h >>> 15;
  return Math.imul(h, 0xc2b2ae3d) ^ (h >>> 13);
}

/** Token occurrences N(x), indexed by token id (grown to the largest id seen). */
export class TokenCounts {
  counts = new Float64Array(1 << 16);
  total = 0;

  add(token: number): void {
    if (token >= this.counts.length) {
      const grown = new Float64Array(Math.max(2 * this.counts.length, token + 1));
      grown.set(this.counts);
      this.counts = grown;
    }
    this.counts[token]++;
    this.total++;
  }
}

export class VocabularyCounts {
  readonly pairs = new PairCounts();
  readonly tokens = new TokenCounts();

  constructor(
    readonly numLayers: number,
    readonly numExperts: number,
  ) {}

  add(chunk: TraceChunk, maxK: number): void {
    const E = this.numExperts;
    for (let r = 0; r < chunk.rows; r++) {
      const token = chunk.token[r];
      if (!(token >= 0)) throw new RoutelabError('trace', `a row has token id ${token}; expected a non-negative id`);
      // Every position has one row per layer: count its token once.
      if (chunk.layer[r] === 0) this.tokens.add(token);
      const cell = chunk.layer[r] * E;
      for (let j = 0; j < chunk.count[r]; j++) this.pairs.add(cell + chunk.experts[r * maxK + j], token);
    }
  }
}

/** One (layer, expert, token) entry of an expert's top list. */
export interface TopToken {
  readonly layer: number;
  readonly expert: number;
  readonly ranking: 'count' | 'lift';
  readonly rank: number; // 1 = first
  readonly token: number;
  readonly selections: number; // N(ℓ,e,x)
  readonly occurrences: number; // N(x)
  readonly specialisation: number;
  readonly lift: number;
}

export interface Vocabulary {
  readonly positions: number; // N
  readonly distinctTokens: number;
  /** [L × E] N(ℓ,e), score(ℓ,e), topShare(ℓ,e). */
  readonly selections: Float64Array;
  readonly score: Float64Array;
  readonly topShare: Float64Array;
  /** Per (ℓ, e): the `top` tokens by N(ℓ,e,x), then the `top` by lift among those with N(ℓ,e,x) ≥ minCount. */
  readonly topTokens: readonly TopToken[];
}

/** Rank every expert's tokens: one pass groups the hash's entries by (layer, expert), then each group is sorted. */
export function vocabulary(counts: VocabularyCounts, top: number, minCount: number): Vocabulary {
  const { numLayers: L, numExperts: E, pairs, tokens } = counts;
  const N = tokens.total;
  const cellsN = L * E;
  const start = new Int32Array(cellsN + 1);
  for (let i = 0; i < pairs.tokens.length; i++) if (pairs.tokens[i] !== -1) start[pairs.cells[i] + 1]++;
  for (let c = 0; c < cellsN; c++) start[c + 1] += start[c];
  const fill = start.slice(0, cellsN);
  const token = new Int32Array(pairs.size);
  const count = new Float64Array(pairs.size);
  for (let i = 0; i < pairs.tokens.length; i++) {
    if (pairs.tokens[i] === -1) continue;
    const at = fill[pairs.cells[i]]++;
    token[at] = pairs.tokens[i];
    count[at] = pairs.counts[i];
  }
  const selections = new Float64Array(cellsN);
  const score = new Float64Array(cellsN);
  const topShare = new Float64Array(cellsN);
  const topTokens: TopToken[] = [];
  for (let cell = 0; cell < cellsN; cell++) {
    const [lo, hi] = [start[cell], start[cell + 1]];
    let n = 0;
    let weighted = 0;
    for (let i = lo; i < hi; i++) {
      n += count[i];
      weighted += (count[i] * count[i]) / tokens.counts[token[i]];
    }
    selections[cell] = n;
    if (n === 0) continue;
    score[cell] = weighted / n;
    const layer = Math.floor(cell / E);
    const expert = cell % E;
    const entry = (i: number, ranking: TopToken['ranking'], rank: number): TopToken => {
      const occurrences = tokens.counts[token[i]];
      return { layer, expert, ranking, rank, token: token[i], selections: count[i], occurrences, specialisation: count[i] / occurrences, lift: (count[i] * N) / (n * occurrences) };
    };
    const ids = Int32Array.from({ length: hi - lo }, (_, i) => lo + i);
    ids.sort((a, b) => count[b] - count[a] || token[a] - token[b]);
    let inTop = 0;
    for (let r = 0; r < Math.min(top, ids.length); r++) {
      inTop += count[ids[r]];
      topTokens.push(entry(ids[r], 'count', r + 1));
    }
    topShare[cell] = inTop / n;
    // Within one expert N and N(ℓ,e) are fixed, so lift orders tokens as spec does.
    const spec = (i: number) => count[i] / tokens.counts[token[i]];
    const frequent = ids.filter((i) => count[i] >= minCount).sort((a, b) => spec(b) - spec(a) || count[b] - count[a] || token[a] - token[b]);
    for (let r = 0; r < Math.min(top, frequent.length); r++) topTokens.push(entry(frequent[r], 'lift', r + 1));
  }
  let distinctTokens = 0;
  for (const c of tokens.counts) if (c > 0) distinctTokens++;
  return { positions: N, distinctTokens, selections, score, topShare, topTokens };
}
