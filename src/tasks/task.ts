/**
 * The seam between tasks and the engine, as in lm-evaluation-harness: a task turns documents into requests; the
 * engine scores requests (batched, sorted by length) without knowing the task; the task turns each document's
 * request results into per-document scores and aggregates them into metrics (SPEC §3).
 */

/** Log-likelihood of `continuation` given `context` (SPEC §3 tokenization rules). */
export interface LoglikelihoodRequest {
  readonly kind: 'loglikelihood';
  readonly context: string;
  readonly continuation: string;
}

/** Log-likelihood of a whole text, scored with lm-eval's disjoint rolling windows. */
export interface RollingRequest {
  readonly kind: 'rolling';
  readonly text: string;
}

export type Request = LoglikelihoodRequest | RollingRequest;

/** What the engine returns for one request. */
export interface RequestResult {
  /** Σ log p(token) over the scored tokens, natural log, full-vocabulary log-softmax in float32 logits. */
  readonly logLikelihood: number;
  /** Number of scored tokens. */
  readonly tokens: number;
  /** Every scored token was the argmax at its position (lm-eval `is_greedy`). */
  readonly isGreedy: boolean;
  /** Scored tokens that were the top-1 / within the top-5 prediction (token accuracy). */
  readonly top1: number;
  readonly top5: number;
}

/** One document as read from a data file, with where it came from (for error messages and fingerprints). */
export interface TaskDoc {
  /** Position in the task's document order (0-based), before --limit. */
  readonly index: number;
  /** `file:line` (or `file#row`) of the record. */
  readonly source: string;
}

/** A malformed record that was skipped (or that stopped the run under --on-bad-row error). */
export interface BadRow {
  readonly source: string; // file:line or file#row
  readonly reason: string; // e.g. 'field "label": expected 0 or 1, got 7'
}

export interface LoadedDocs<D extends TaskDoc> {
  readonly docs: D[];
  readonly badRows: BadRow[];
  /** What was read but is doubtful (text that was not valid UTF-8), one sentence each, naming file:line. */
  readonly warnings: readonly string[];
  /** Input format as detected, e.g. 'wikitext-raw', 'jsonl', 'arrow', 'parquet', 'tsv', 'llama.cpp'. */
  readonly format: string;
  /** The files read, in order. */
  readonly files: string[];
}

export type BadRowPolicy = 'skip' | 'error';

/** Metric values of one document, by metric name (e.g. { acc: 1, acc_norm: 0 } or { ll: -123.4, words: 56 }). */
export type DocScores = Readonly<Record<string, number>>;

export interface Task<D extends TaskDoc = TaskDoc> {
  /** lm-eval task name: wikitext, lambada_openai, hellaswag, sst2, rte, mrpc, boolq. */
  readonly name: string;
  /** The split evaluated by default (SPEC §3). */
  readonly split: string;
  /** The metric that ranks configurations: 'word_perplexity', 'perplexity', 'acc', … */
  readonly primaryMetric: string;
  /** Whether `acc` of this task enters avg_task_accuracy (SPEC §4). */
  readonly isAccuracyTask: boolean;
  /** Accuracy of guessing uniformly among a document's choices (1 / choices); absent when acc has no such floor. */
  readonly chanceAccuracy?: number;
  /** The data formats `load` reads (src/data/locate.ts DataFormat), in the order it prefers them in a directory. */
  readonly formats: readonly string[];
  /**
   * Read the documents from a file or directory in any supported format; `split` (default: the task's own) picks
   * the split where PATH holds several (a directory, a dataset id). Calibration reads other splits this way.
   */
  load(path: string, onBadRow: BadRowPolicy, split?: string): Promise<LoadedDocs<D>>;
  /** Canonical text of a document for the data fingerprint (sha256 over the selected documents in order). */
  fingerprint(doc: D): string;
  requests(doc: D): Request[];
  /** Per-document scores from the results of `requests(doc)`, in the same order. */
  score(doc: D, results: readonly RequestResult[]): DocScores;
  /** The task's metrics (SPEC §3) over the per-document scores. */
  aggregate(scores: readonly DocScores[]): Record<string, number>;
  /** How lm-eval shows this task's documents as few-shot examples; absent for tasks scored as whole texts. */
  readonly fewshot?: FewshotRules<D>;
}

/** A task's few-shot form (lm-eval's rules, src/tasks/fewshot.ts). */
export interface FewshotRules<D extends TaskDoc> {
  /** The split examples come from: lm-eval's fewshot_split, else training_split, else validation_split, else test_split. */
  readonly split: string;
  /** One solved example: doc_to_text, target_delimiter ' ', the gold target (without the "\n\n" that follows it). */
  example(doc: D): string;
}
