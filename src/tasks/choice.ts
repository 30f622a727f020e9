/**
 * Multiple-choice tasks (lm-eval `output_type: multiple_choice`): one loglikelihood request per choice, continuation
 * target_delimiter ' ' + choice, prediction = argmax ll. sst2, rte, mrpc and boolq are this plus data.
 */
import { RowError } from '../data/bad-rows.js';
import type { DataFormat, SplitQuery } from '../data/locate.js';
import { TARGET_DELIMITER } from './fewshot.js';
import { loadRecordTask, type ParseRecord } from './load.js';
import { argmax, f1FromScores, mean } from './metrics.js';
import type { DocScores, FewshotRules, LoglikelihoodRequest, RequestResult, Task, TaskDoc } from './task.js';

export interface ChoiceDoc extends TaskDoc {
  /** The prompt, exactly as the model sees it. */
  readonly context: string;
  /** Choice texts without the leading space. */
  readonly choices: readonly string[];
  /** Index of the right choice. */
  readonly gold: number;
}

export function choiceRequests(doc: ChoiceDoc): LoglikelihoodRequest[] {
  return doc.choices.map((choice) => ({ kind: 'loglikelihood', context: doc.context, continuation: TARGET_DELIMITER + choice }));
}

/** lm-eval's few-shot form of every choice task here: examples from the train split, each answered with its gold choice. */
export const CHOICE_FEWSHOT: FewshotRules<ChoiceDoc> = {
  split: 'train',
  example: (doc) => doc.context + TARGET_DELIMITER + doc.choices[doc.gold]!,
};

/** The fields every multiple-choice fingerprint covers: prompt, choices, gold. */
export function choiceFingerprint(doc: ChoiceDoc): string {
  return JSON.stringify([doc.context, doc.choices, doc.gold]);
}

/** { acc, pred, gold } from the choices' loglikelihoods. */
export function scoreChoices(doc: ChoiceDoc, results: readonly RequestResult[]): { acc: number; pred: number; gold: number } {
  if (results.length !== doc.choices.length) {
    throw new Error(`${doc.source}: expected ${doc.choices.length} results (one per choice), got ${results.length}`);
  }
  const pred = argmax(results.map((r) => r.logLikelihood));
  return { acc: pred === doc.gold ? 1 : 0, pred, gold: doc.gold };
}

export const RECORD_FORMATS: readonly DataFormat[] = ['arrow', 'parquet', 'jsonl', 'json', 'tsv'];

export interface ChoiceTaskSpec {
  readonly name: string;
  readonly split: string;
  /** Where to look inside a directory or hub repo (config folder, preferred names). */
  readonly data: Omit<SplitQuery, 'split' | 'formats'>;
  readonly choices: readonly string[];
  /** Builds the prompt and the gold index from one record (throw RowError for a bad one). */
  readonly parse: (record: Parameters<ParseRecord<ChoiceDoc>>[0]) => { context: string; gold: number };
  /** Also report binary F1 with this choice index as the positive class (mrpc). */
  readonly f1Positive?: number;
}

/** A multiple-choice task over record-shaped data whose choices are the same for every document. */
export function choiceTask(spec: ChoiceTaskSpec): Task<ChoiceDoc> {
  return {
    name: spec.name,
    split: spec.split,
    primaryMetric: 'acc',
    isAccuracyTask: true,
    chanceAccuracy: 1 / spec.choices.length,
    formats: RECORD_FORMATS,
    load: (path, onBadRow, split = spec.split) =>
      loadRecordTask(path, onBadRow, { ...spec.data, split, formats: RECORD_FORMATS }, (record, where) => {
        const { context, gold } = spec.parse(record);
        if (!(gold >= 0 && gold < spec.choices.length)) throw new RowError(`gold index ${gold} out of range`);
        return { ...where, context, choices: spec.choices, gold };
      }),
    fingerprint: choiceFingerprint,
    requests: choiceRequests,
    score: (doc, results): DocScores => scoreChoices(doc, results),
    aggregate: (scores) => {
      const metrics: Record<string, number> = { acc: mean(scores, 'acc') };
      if (spec.f1Positive !== undefined) metrics.f1 = f1FromScores(scores, spec.f1Positive);
      return metrics;
    },
    fewshot: CHOICE_FEWSHOT,
  };
}
