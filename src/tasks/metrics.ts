/**
 * Aggregations shared by the tasks (lm-eval's): perplexities are ratios of sums over documents, never means of
 * per-document ratios; argmax takes the first (lowest) index on ties, as numpy's does. An empty input gives NaN.
 */
import type { DocScores, RequestResult } from './task.js';

/** Σ scores[key] */
export function sum(scores: readonly DocScores[], key: string): number {
  let total = 0;
  for (const s of scores) total += value(s, key);
  return total;
}

/** Mean of scores[key] over documents (acc, acc_norm). */
export function mean(scores: readonly DocScores[], key: string): number {
  return scores.length === 0 ? NaN : sum(scores, key) / scores.length;
}

/** exp(−Σll / Σunits): word, byte or token perplexity from per-document sums. */
export function perplexityFromSums(totalLogLikelihood: number, units: number): number {
  return Math.exp(-totalLogLikelihood / units);
}

/** −Σll / Σbytes / ln 2 */
export function bitsPerByte(totalLogLikelihood: number, bytes: number): number {
  return -totalLogLikelihood / bytes / Math.LN2;
}

/** Index of the largest value, the first one on ties (numpy argmax). NaN never wins. */
export function argmax(values: readonly number[]): number {
  let best = -1;
  for (let i = 0; i < values.length; i++) {
    if (Number.isNaN(values[i]!)) continue;
    if (best < 0 || values[i]! > values[best]!) best = i;
  }
  if (best < 0) throw new Error('argmax of no comparable values');
  return best;
}

/**
 * Binary F1 of predictions against gold labels with `positive` as the positive class (sklearn's f1_score; 0 when
 * there is no true positive, as sklearn returns with zero_division).
 */
export function f1Binary(preds: readonly number[], golds: readonly number[], positive = 1): number {
  let tp = 0;
  let fp = 0;
  let fn = 0;
  for (let i = 0; i < preds.length; i++) {
    const p = preds[i] === positive;
    const g = golds[i] === positive;
    if (p && g) tp++;
    else if (p) fp++;
    else if (g) fn++;
  }
  return tp === 0 ? 0 : (2 * tp) / (2 * tp + fp + fn);
}

/** F1 over per-document `pred` / `gold` scores. */
export function f1FromScores(scores: readonly DocScores[], positive = 1): number {
  if (scores.length === 0) return NaN;
  return f1Binary(
    scores.map((s) => value(s, 'pred')),
    scores.map((s) => value(s, 'gold')),
    positive,
  );
}

function value(s: DocScores, key: string): number {
  const v = s[key];
  if (typeof v !== 'number') throw new Error(`document scores lack "${key}"`);
  return v;
}

/** Words of a text as lm-eval counts them for word perplexity: pieces of split(/\s+/), empty end pieces included. */
export function whitespaceWords(text: string): number {
  return text.split(/\s+/).length;
}

export function utf8Bytes(text: string): number {
  return Buffer.byteLength(text, 'utf8');
}

/** A rolling-loglikelihood document's scores; words and bytes count `original`, the text before any detokenizer. */
export function rollingScores(original: string, result: RequestResult): DocScores {
  return {
    ll: result.logLikelihood,
    tokens: result.tokens,
    words: whitespaceWords(original),
    bytes: utf8Bytes(original),
    top1: result.top1,
    top5: result.top5,
  };
}

/** lm-eval's loglikelihood_rolling metrics (word / byte / token perplexity, bits per byte) and token accuracies. */
export function rollingMetrics(scores: readonly DocScores[]): Record<string, number> {
  const ll = sum(scores, 'll');
  const tokens = sum(scores, 'tokens');
  const bytes = sum(scores, 'bytes');
  return {
    word_perplexity: perplexityFromSums(ll, sum(scores, 'words')),
    byte_perplexity: perplexityFromSums(ll, bytes),
    bits_per_byte: bitsPerByte(ll, bytes),
    token_perplexity: perplexityFromSums(ll, tokens),
    cross_entropy: -ll / tokens,
    token_acc_top1: sum(scores, 'top1') / tokens,
    token_acc_top5: sum(scores, 'top5') / tokens,
  };
}
