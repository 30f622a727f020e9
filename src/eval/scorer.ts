/**
 * The scoring engine: (input, targets) units → log-likelihoods, batched like lm-eval (SPEC §3).
 *
 * - Identical inputs of the same group (e.g. one document's choices whose continuations are single tokens) run once.
 * - Distinct inputs of a group that begin alike (one context, several continuations) run their common prefix once
 *   into a KV cache, and each continues from a copy of it. The shared prefix ends before the first scored position
 *   of any of them, so every scored row, with its routing, belongs to one input's own continuation pass.
 * - Inputs are sorted longest first (those sharing a prefix kept together) and cut into batches of at most
 *   `batchSize` sequences, `maxBatchTokens` tokens run and `maxBatchLogitRows` scored rows; one forward per batch
 *   (after one over the batch's shared prefixes) computes logits only for the rows that predict targets, a block of
 *   rows at a time inside the backend, so that only the scored tokens' log-probabilities and ranks leave it.
 * - Each such row gets a full-vocabulary log-softmax in double precision from the float32 logits.
 * - Greedy/top-k use the rank of the target: #{v : x_v > x_t} + #{v < t : x_v = x_t}, i.e. ties go to the lowest id,
 *   as torch.argmax (first maximal index) does; top-1 ⇔ rank 0, top-5 ⇔ rank < 5.
 *
 * Scores do not depend on batch composition as long as the backend computes each token row independently
 * (sequences are packed without padding and never attend to each other): a prefix run then computes exactly the keys
 * and values the whole input would, so sharing (which depends on which inputs meet in a batch) changes nothing either.
 */
import type { KvCache, MoeModel, RoutingEvent } from '../model/model.js';
import type { Router } from '../routers/router.js';
import type { ScoringUnit } from './requests.js';

export interface ScoringInput extends Pick<ScoringUnit, 'input' | 'targets'> {
  /** Inputs are shared only within a group (the evaluator uses the document index). */
  readonly group: number;
}

export interface TokenScores {
  readonly logLikelihood: number;
  readonly tokens: number;
  readonly isGreedy: boolean;
  readonly top1: number;
  readonly top5: number;
}

/** The scored positions of one batch: packed row, distinct-sequence id and index within that sequence's input. */
export interface ScoredRows {
  readonly n: number;
  readonly row: Int32Array;
  readonly sequence: Int32Array;
  readonly position: Int32Array;
}

export interface ScoringObserver {
  /** Called for every layer of every batch (inside the forward pass: the event's arrays are valid only then). */
  onRouting(event: RoutingEvent, scored: ScoredRows): void;
}

export interface ScoreOptions {
  readonly router?: Router;
  readonly batchSize?: number; // sequences per forward (default 16)
  readonly maxBatchTokens?: number; // tokens per forward (default 16384; a longer single sequence still runs alone)
  /**
   * Scored rows per forward. Their logits are formed a block at a time whatever this is (Backend.scoreTokens); the
   * default, 2²⁹ / (4 V) rows (2,668 at V = 50,304), is the batch plan earlier results were computed with, kept because
   * batch composition moves native scores in the last bits (its matmul kernels choose by row count): 4,096-token
   * windows batched four at a time moved WikiText word perplexity by 4.6e-9 relative.
   */
  readonly maxBatchLogitRows?: number;
  /** Run a group's common input prefix once when it has at least this many tokens (default 8; Infinity: never). */
  readonly minSharedPrefix?: number;
  readonly observer?: ScoringObserver;
  /** Called once before the first forward with the distinct inputs and, per unit, which one it uses. */
  readonly onPrepared?: (sequences: readonly Int32Array[], sequenceOf: Int32Array) => void;
  /** After each batch: scoring units done of total, seconds so far, scored tokens so far. */
  readonly onProgress?: (done: number, total: number, seconds: number, tokens: number) => void;
}

export interface ScoreOutput {
  /** Per input unit, in the order given. */
  readonly results: TokenScores[];
  /** Distinct model inputs and, per input unit, which one it used. */
  readonly sequences: readonly Int32Array[];
  readonly sequenceOf: Int32Array;
  /** Wall time of the forward passes (observer time excluded), seconds. */
  readonly forwardSeconds: number;
  /** Distinct scored positions (rows whose logits were computed). */
  readonly scoredPositions: number;
  /** Tokens run through the model: each shared prefix once per batch holding it, plus every input's own tokens. */
  readonly inputTokens: number;
  readonly batches: number;
}

export async function scoreUnits(model: MoeModel, units: readonly ScoringInput[], options: ScoreOptions = {}): Promise<ScoreOutput> {
  const V = model.architecture.vocabSize;
  const batchSize = Math.max(1, options.batchSize ?? 16);
  const maxBatchTokens = Math.max(1, options.maxBatchTokens ?? 16384);
  const maxRows = Math.max(1, options.maxBatchLogitRows ?? Math.floor(2 ** 29 / (4 * V)));

  // Distinct inputs (per group), and how many trailing rows of each must produce logits.
  const sequences: Int32Array[] = [];
  const groupOf: number[] = [];
  const scoredFrom: number[] = [];
  const sequenceOf = new Int32Array(units.length);
  const byKey = new Map<string, number>();
  units.forEach((u, i) => {
    if (u.targets.length < 1 || u.targets.length > u.input.length) throw new Error(`unit ${i}: ${u.targets.length} targets for ${u.input.length} input tokens`);
    const key = `${u.group}:${u.input.join(',')}`;
    let s = byKey.get(key);
    if (s === undefined) {
      s = sequences.length;
      byKey.set(key, s);
      sequences.push(u.input);
      groupOf.push(u.group);
      scoredFrom.push(u.input.length);
    }
    sequenceOf[i] = s;
    scoredFrom[s] = Math.min(scoredFrom[s], u.input.length - u.targets.length);
  });
  options.onPrepared?.(sequences, sequenceOf);
  const unitsOf: number[][] = sequences.map(() => []);
  units.forEach((_, i) => unitsOf[sequenceOf[i]].push(i));

  const shared = sharedPrefixes(sequences, groupOf, scoredFrom, Math.max(1, options.minSharedPrefix ?? 8));

  // Longest first (ties: first seen), inputs sharing a prefix together, then greedy batches. A batch counts the tokens
  // it runs (a prefix once for the inputs that share it there) and, once it needs a KV cache, the cache's
  // sequences × capacity.
  const familyLongest = new Int32Array(sequences.length); // per owner: its longest input
  for (let s = 0; s < sequences.length; s++) {
    familyLongest[shared.owner[s]] = Math.max(familyLongest[shared.owner[s]], sequences[s].length);
  }
  const order = sequences.map((_, i) => i).sort((a, b) => {
    const [fa, fb] = [shared.owner[a], shared.owner[b]];
    return familyLongest[fb] - familyLongest[fa] || fa - fb || sequences[b].length - sequences[a].length || a - b;
  });
  const batches: number[][] = [];
  for (let i = 0; i < order.length; ) {
    const batch: number[] = [];
    const owners = new Set<number>();
    let tokens = 0;
    let rows = 0;
    let longest = 0;
    let cached = false;
    const joinsPrefix = (s: number) => shared.length[s] > 0 && owners.has(shared.owner[s]);
    const runTokens = (s: number) => sequences[s].length - (joinsPrefix(s) ? shared.length[s] : 0);
    const fits = (s: number) => {
      const cacheFits = !(cached || joinsPrefix(s)) || (batch.length + 1) * Math.max(longest, sequences[s].length) <= maxBatchTokens;
      return cacheFits && tokens + runTokens(s) <= maxBatchTokens && rows + sequences[s].length - scoredFrom[s] <= maxRows;
    };
    while (i < order.length && batch.length < batchSize && (batch.length === 0 || fits(order[i]))) {
      const s = order[i++];
      tokens += runTokens(s);
      rows += sequences[s].length - scoredFrom[s];
      longest = Math.max(longest, sequences[s].length);
      cached ||= joinsPrefix(s);
      owners.add(shared.owner[s]);
      batch.push(s);
    }
    batches.push(batch);
  }

  const prefill = new PrefixPrefill(model, sequences, shared.owner, options.router);
  const results = new Array<TokenScores>(units.length);
  let forwardSeconds = 0;
  let scoredPositions = 0;
  let inputTokens = 0;
  let done = 0;
  const started = performance.now();
  for (const batch of batches) {
    // Packed rows whose logits we need: each sequence's trailing scored rows, all among the tokens it runs itself.
    const skip = prefixSkips(batch, shared);
    let nRows = 0;
    for (const s of batch) nRows += sequences[s].length - scoredFrom[s];
    const row = new Int32Array(nRows);
    const sequence = new Int32Array(nRows);
    const position = new Int32Array(nRows);
    const firstRowOf = new Map<number, number>(); // sequence → index of its first scored row in `row`
    let start = 0; // packed row of each sequence's first own token; after the loop, the tokens this forward runs
    let k = 0;
    batch.forEach((s, b) => {
      const len = sequences[s].length;
      firstRowOf.set(s, k);
      for (let p = scoredFrom[s]; p < len; p++, k++) {
        row[k] = start + p - skip[b];
        sequence[k] = s;
        position[k] = p;
      }
      start += len - skip[b];
    });
    const scored: ScoredRows = { n: nRows, row, sequence, position };
    // One (logit row, target token) pair per scored token of every unit; the backend scores them in place.
    let nPairs = 0;
    for (const s of batch) for (const u of unitsOf[s]) nPairs += units[u].targets.length;
    const pairRows = new Int32Array(nPairs);
    const pairTargets = new Int32Array(nPairs);
    let p = 0;
    for (const s of batch) {
      const base = firstRowOf.get(s)! - scoredFrom[s]; // index in `row` of input position q is base + q
      for (const u of unitsOf[s]) {
        const targets = units[u].targets;
        const first = sequences[s].length - targets.length;
        for (let j = 0; j < targets.length; j++, p++) {
          pairRows[p] = base + first + j;
          pairTargets[p] = targets[j];
        }
      }
    }
    let observerSeconds = 0;
    const observer = options.observer;
    const t0 = performance.now();
    const prefilled = await prefill.run(batch, skip);
    const { scores } = await model.forward(batch.map((s, b) => sequences[s].subarray(skip[b])), {
      cache: prefilled?.cache,
      router: options.router,
      logits: row,
      score: { rows: pairRows, targets: pairTargets },
      observer: observer && {
        onRouting(event) {
          const o0 = performance.now();
          observer.onRouting(event, scored);
          observerSeconds += (performance.now() - o0) / 1000;
        },
      },
    });
    forwardSeconds += (performance.now() - t0) / 1000 - observerSeconds;
    scoredPositions += nRows;
    inputTokens += (prefilled?.tokens ?? 0) + start;

    p = 0;
    for (const s of batch) {
      for (const u of unitsOf[s]) {
        const n = units[u].targets.length;
        let ll = 0;
        let top1 = 0;
        let top5 = 0;
        for (let j = 0; j < n; j++, p++) {
          ll += scores!.logProbs[p];
          if (scores!.ranks[p] === 0) top1++;
          if (scores!.ranks[p] < 5) top5++;
        }
        results[u] = { logLikelihood: ll, tokens: n, isGreedy: top1 === n, top1, top5 };
      }
      done += unitsOf[s].length;
    }
    options.onProgress?.(done, units.length, (performance.now() - started) / 1000, scoredPositions);
    // The CPU backends resolve every await at once, so nothing else would run until the whole evaluation ends: give
    // the event loop a turn per batch (a Ctrl-C / SIGTERM handler, a progress redraw).
    await new Promise((resolve) => setImmediate(resolve));
  }
  return { results, sequences, sequenceOf, forwardSeconds, scoredPositions, inputTokens, batches: batches.length };
}

/** Per distinct input: how many leading tokens come from a prefix run shared within its group, and whose tokens. */
interface SharedPrefixes {
  readonly length: Int32Array; // 0: the input runs alone
  readonly owner: Int32Array; // the group's first input when shared, else the input itself
}

/**
 * A group with several distinct inputs shares the common prefix of all of them, cut at the first scored position of
 * any (so each input keeps every row it scores), when that is at least `minLength` tokens long.
 */
function sharedPrefixes(
  sequences: readonly Int32Array[], groupOf: readonly number[], scoredFrom: readonly number[], minLength: number,
): SharedPrefixes {
  const length = new Int32Array(sequences.length);
  const owner = Int32Array.from(sequences, (_, s) => s);
  const membersOf = new Map<number, number[]>();
  groupOf.forEach((g, s) => {
    const members = membersOf.get(g);
    if (members) members.push(s);
    else membersOf.set(g, [s]);
  });
  for (const members of membersOf.values()) {
    if (members.length < 2) continue;
    const first = sequences[members[0]];
    let common = first.length;
    for (const s of members) {
      common = Math.min(common, scoredFrom[s]);
      let i = 0;
      while (i < common && sequences[s][i] === first[i]) i++;
      common = i;
    }
    if (common < minLength) continue;
    for (const s of members) {
      length[s] = common;
      owner[s] = members[0];
    }
  }
  return { length, owner };
}

/** Per input of a batch: the tokens it takes from its group's prefix run, if another input of the batch shares it. */
function prefixSkips(batch: readonly number[], shared: SharedPrefixes): Int32Array {
  const sharers = new Map<number, number>(); // owner → inputs of the batch sharing its prefix
  for (const s of batch) if (shared.length[s] > 0) sharers.set(shared.owner[s], (sharers.get(shared.owner[s]) ?? 0) + 1);
  return Int32Array.from(batch, (s) => ((sharers.get(shared.owner[s]) ?? 0) > 1 ? shared.length[s] : 0));
}

/**
 * Runs each batch's shared prefixes once (no logits: none of their rows is scored) and starts every input that skips
 * one from a copy of its keys and values. Its two KV caches (the prefixes; the batch's inputs) are reused from batch
 * to batch while their shape allows — batches come longest first, so mostly one allocation each — rather than left
 * to the garbage collector, which does not see device memory.
 */
class PrefixPrefill {
  private prefixes: KvCache | null = null;
  private inputs: KvCache | null = null;

  constructor(
    private readonly model: MoeModel,
    private readonly sequences: readonly Int32Array[],
    private readonly owner: Int32Array,
    private readonly router?: Router,
  ) {}

  /** The cache the batch's inputs continue from, and the prefix tokens run; null when no input skips a prefix. */
  async run(batch: readonly number[], skip: Int32Array): Promise<{ cache: KvCache; tokens: number } | null> {
    const rowOf = new Map<number, number>(); // owner → its row among the prefixes
    const prefixes: Int32Array[] = [];
    let tokens = 0;
    let longest = 0;
    batch.forEach((s, b) => {
      if (skip[b] === 0 || rowOf.has(this.owner[s])) return;
      rowOf.set(this.owner[s], prefixes.length);
      prefixes.push(this.sequences[s].subarray(0, skip[b]));
      tokens += skip[b];
      longest = Math.max(longest, skip[b]);
    });
    if (prefixes.length === 0) return null;
    this.prefixes = this.reuse(this.prefixes, prefixes.length, longest);
    await this.model.forward(prefixes, { cache: this.prefixes, router: this.router, logits: 'none' });
    this.inputs = this.reuse(this.inputs, batch.length, Math.max(...batch.map((s) => this.sequences[s].length)));
    batch.forEach((s, b) => {
      if (skip[b] > 0) this.model.copyCachePrefix(this.prefixes!, rowOf.get(this.owner[s])!, this.inputs!, b, skip[b]);
    });
    return { cache: this.inputs, tokens };
  }

  /** `held` emptied when it has `rows` sequences of at least `capacity` positions, else a new cache. */
  private reuse(held: KvCache | null, rows: number, capacity: number): KvCache {
    const cache = held && held.lengths.length === rows && held.capacity >= capacity ? held : this.model.createCache(rows, capacity);
    cache.lengths.fill(0);
    return cache;
  }
}
