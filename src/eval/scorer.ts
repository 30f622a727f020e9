/**
 * The scoring engine: (input, targets) units → log-likelihoods, batched like lm-eval (SPEC §3).
 *
 * - Identical inputs of the same group (e.g. one document's choices whose continuations are single tokens) run once.
 * - Distinct inputs are sorted longest first and cut into batches of at most `batchSize` sequences and
 *   `maxBatchTokens` tokens; one forward per batch computes logits only for the rows that predict targets.
 * - Each such row gets a full-vocabulary log-softmax in double precision from the float32 logits.
 * - Greedy/top-k use the rank of the target: #{v : x_v > x_t} + #{v < t : x_v = x_t}, i.e. ties go to the lowest id,
 *   as torch.argmax (first maximal index) does; top-1 ⇔ rank 0, top-5 ⇔ rank < 5.
 *
 * Scores do not depend on batch composition as long as the backend computes each token row independently
 * (sequences are packed without padding and never attend to each other).
 */
import type { RoutingEvent } from '../model/olmoe.js';
import type { OlmoeModel } from '../model/olmoe.js';
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
  /** Logit rows (scored positions) per forward, bounding the [rows × V] float32 logits; default 512 MiB worth. */
  readonly maxBatchLogitRows?: number;
  readonly observer?: ScoringObserver;
  /** Called once before the first forward with the distinct inputs and, per unit, which one it uses. */
  readonly onPrepared?: (sequences: readonly Int32Array[], sequenceOf: Int32Array) => void;
  /** Progress after each batch: units scored so far and total. */
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
  readonly batches: number;
}

export async function scoreUnits(model: OlmoeModel, units: readonly ScoringInput[], options: ScoreOptions = {}): Promise<ScoreOutput> {
  const V = model.config.vocabSize;
  const batchSize = Math.max(1, options.batchSize ?? 16);
  const maxBatchTokens = Math.max(1, options.maxBatchTokens ?? 16384);
  const maxRows = Math.max(1, options.maxBatchLogitRows ?? Math.floor(2 ** 29 / (4 * V)));

  // Distinct inputs (per group), and how many trailing rows of each must produce logits.
  const sequences: Int32Array[] = [];
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
      scoredFrom.push(u.input.length);
    }
    sequenceOf[i] = s;
    scoredFrom[s] = Math.min(scoredFrom[s], u.input.length - u.targets.length);
  });
  options.onPrepared?.(sequences, sequenceOf);
  const unitsOf: number[][] = sequences.map(() => []);
  units.forEach((_, i) => unitsOf[sequenceOf[i]].push(i));

  // Longest first (ties: first seen), then greedy batches.
  const order = sequences.map((_, i) => i).sort((a, b) => sequences[b].length - sequences[a].length || a - b);
  const batches: number[][] = [];
  for (let i = 0; i < order.length; ) {
    const batch: number[] = [];
    let tokens = 0;
    let rows = 0;
    const fits = (s: number) => tokens + sequences[s].length <= maxBatchTokens && rows + sequences[s].length - scoredFrom[s] <= maxRows;
    while (i < order.length && batch.length < batchSize && (batch.length === 0 || fits(order[i]))) {
      tokens += sequences[order[i]].length;
      rows += sequences[order[i]].length - scoredFrom[order[i]];
      batch.push(order[i++]);
    }
    batches.push(batch);
  }

  const results = new Array<TokenScores>(units.length);
  let forwardSeconds = 0;
  let scoredPositions = 0;
  let done = 0;
  const started = performance.now();
  for (const batch of batches) {
    // Packed rows whose logits we need: each sequence's trailing scored rows.
    let nRows = 0;
    for (const s of batch) nRows += sequences[s].length - scoredFrom[s];
    const row = new Int32Array(nRows);
    const sequence = new Int32Array(nRows);
    const position = new Int32Array(nRows);
    const firstRowOf = new Map<number, number>(); // sequence → index of its first scored row in `row`
    let start = 0;
    let k = 0;
    for (const s of batch) {
      const len = sequences[s].length;
      firstRowOf.set(s, k);
      for (let p = scoredFrom[s]; p < len; p++, k++) {
        row[k] = start + p;
        sequence[k] = s;
        position[k] = p;
      }
      start += len;
    }
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
    const { scores } = await model.forward(batch.map((s) => sequences[s]), {
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
  }
  return { results, sequences, sequenceOf, forwardSeconds, scoredPositions, batches: batches.length };
}
