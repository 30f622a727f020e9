/**
 * Requests → token sequences for the scorer, with lm-evaluation-harness's tokenization rules (SPEC §3).
 *
 * Everything the scorer needs is a *scoring unit*: a model input (token ids) and, for the last `targets.length`
 * input positions, the token each of them must predict. Input position i predicts token i + 1 of the unit's
 * token stream, so the prediction rows of a unit are `input.length − targets.length … input.length − 1`.
 *
 * `offset` says where input[0] sits in the request's untruncated token stream (prefix/context + continuation, or
 * [prefix] + document for rolling requests), so that a trace can name the same token in every window.
 */
import { RoutelabError } from '../errors.js';
import type { Request } from '../tasks/task.js';

export interface TokenEncoder {
  encode(text: string): Int32Array;
}

export interface ScoringUnit {
  /** Model input, 1 ≤ length ≤ maxLength. */
  readonly input: Int32Array;
  /** Tokens predicted by the last `targets.length` input positions, in order. 1 ≤ length ≤ input.length. */
  readonly targets: Int32Array;
  /** Stream index of input[0] (stream = [prefix or context tokens] + continuation, or [prefix] + document). */
  readonly offset: number;
}

/** Python's `str.isspace` characters, so that trailing-whitespace handling matches lm-eval's `context.rstrip()`. */
const TRAILING_PY_WHITESPACE = /[\t\n\v\f\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+$/u;

/**
 * loglikelihood(context, continuation) as lm-eval's `_encode_pair` + `_loglikelihood_tokens` build it:
 * trailing whitespace of the context moves to the front of the continuation; the continuation tokens are
 * encode(context + continuation) after the first len(encode(context)); an empty context (or one that encodes to no
 * tokens) is replaced by the prefix token; the stream context ++ continuation keeps its last maxLength + 1 tokens and
 * the model input is all of those but the last. If the continuation alone is longer than maxLength, only its last
 * maxLength tokens can be predicted inside the window and only those are scored (lm-eval leaves this case undefined).
 */
export function loglikelihoodUnit(
  tok: TokenEncoder,
  context: string,
  continuation: string,
  prefixToken: number,
  maxLength: number,
): ScoringUnit {
  checkMaxLength(maxLength);
  let contextEnc: Int32Array;
  let continuationEnc: Int32Array;
  if (context === '') {
    contextEnc = Int32Array.of(prefixToken);
    continuationEnc = tok.encode(continuation);
  } else {
    const spaces = TRAILING_PY_WHITESPACE.exec(context)?.[0] ?? '';
    const ctx = context.slice(0, context.length - spaces.length);
    const cont = spaces + continuation;
    const whole = tok.encode(ctx + cont);
    const ctxEnc = tok.encode(ctx);
    contextEnc = ctxEnc.length === 0 ? Int32Array.of(prefixToken) : ctxEnc;
    continuationEnc = whole.slice(ctxEnc.length);
  }
  if (continuationEnc.length === 0) {
    throw new RoutelabError('loglikelihood request', `continuation ${JSON.stringify(continuation)} encodes to no tokens after context ${JSON.stringify(context.slice(-40))}`);
  }
  const stream = new Int32Array(contextEnc.length + continuationEnc.length);
  stream.set(contextEnc);
  stream.set(continuationEnc, contextEnc.length);
  const start = Math.max(0, stream.length - (maxLength + 1));
  const input = stream.slice(start, stream.length - 1);
  const nTargets = Math.min(continuationEnc.length, input.length);
  return { input, targets: stream.slice(stream.length - nTargets), offset: start };
}

/**
 * lm-eval's `get_rolling_token_windows(tokens, prefix, max_seq_len = m, context_len = 1)` followed by
 * `make_disjoint_window`, as (input, targets) pairs: every token is predicted exactly once. The first window predicts
 * tokens[0 : m] from [prefix] + tokens[0 : m − 1]; each later window predicts the next ≤ m tokens, and its input is
 * the m tokens ending just before its last target (so a full later window's first target sees one token of context).
 * `offset` is relative to the stream [prefix] + tokens (stream index j + 1 is document token j).
 */
export function rollingWindows(tokens: Int32Array, prefixToken: number, maxLength: number): ScoringUnit[] {
  checkMaxLength(maxLength);
  const m = maxLength;
  const n = tokens.length;
  const windows: ScoringUnit[] = [];
  if (n === 0) return windows;
  const first = Math.min(m, n);
  const input0 = new Int32Array(first);
  input0[0] = prefixToken;
  input0.set(tokens.subarray(0, first - 1), 1);
  windows.push({ input: input0, targets: tokens.slice(0, first), offset: 0 });
  let predicted = first;
  while (predicted < n) {
    const count = Math.min(n - predicted, m);
    const end = predicted + count; // exclusive end of this window's targets
    // Input tokens[end − m − 1, end − 1) — m tokens; end ≥ m + 1 here because predicted ≥ m.
    windows.push({ input: tokens.slice(end - m - 1, end - 1), targets: tokens.slice(predicted, end), offset: end - m });
    predicted = end;
  }
  return windows;
}

/**
 * A loglikelihood request with `prefix` (its few-shot examples) before the context, the continuation unchanged; the
 * request itself when there is no prefix. Rolling requests have no context to put examples before.
 */
export function withContextPrefix(request: Request, prefix: string): Request {
  if (prefix === '') return request;
  if (request.kind !== 'loglikelihood') throw new Error('a rolling request takes no few-shot prefix');
  return { ...request, context: prefix + request.context };
}

/** The scoring units of one request (one for loglikelihood; one per window for rolling). */
export function requestUnits(tok: TokenEncoder, request: Request, prefixToken: number, maxLength: number): ScoringUnit[] {
  if (request.kind === 'loglikelihood') return [loglikelihoodUnit(tok, request.context, request.continuation, prefixToken, maxLength)];
  return rollingWindows(tok.encode(request.text), prefixToken, maxLength);
}

function checkMaxLength(maxLength: number): void {
  if (!Number.isInteger(maxLength) || maxLength < 1) throw new RoutelabError('--max-length', `expected a positive integer, got ${maxLength}`);
}
