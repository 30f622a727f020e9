/**
 * LAMBADA, OpenAI's detokenized test set (lm-eval `lambada_openai`): predict the last word of a passage. The context is
 * the text up to its last space, the continuation ' ' + the last word (lm-eval splits on ' ' and rejoins).
 * acc = the continuation is the greedy decode; perplexity = exp(−mean over documents of ll).
 */
import { textField } from '../data/fields.js';
import { TARGET_DELIMITER } from './fewshot.js';
import { loadRecordTask } from './load.js';
import { mean } from './metrics.js';
import type { Task, TaskDoc } from './task.js';

export interface LambadaDoc extends TaskDoc {
  readonly text: string;
  readonly context: string;
  readonly continuation: string;
}

export function splitLambada(text: string): { context: string; continuation: string } {
  const cut = text.lastIndexOf(' ');
  return { context: cut < 0 ? '' : text.slice(0, cut), continuation: ` ${text.slice(cut + 1)}` };
}

const FORMATS = ['arrow', 'parquet', 'jsonl', 'json'] as const;

export const lambadaOpenai: Task<LambadaDoc> = {
  name: 'lambada_openai',
  split: 'test',
  primaryMetric: 'perplexity',
  isAccuracyTask: true,
  formats: FORMATS,
  load: (path, onBadRow, split = 'test') =>
    loadRecordTask(
      path,
      onBadRow,
      { split, config: 'default', prefer: ['lambada_test.jsonl', 'lambada_test_en.jsonl'], formats: FORMATS },
      (record, where) => {
        const text = textField(record, 'text');
        return { ...where, text, ...splitLambada(text) };
      },
    ),
  fingerprint: (doc) => doc.text,
  requests: (doc) => [{ kind: 'loglikelihood', context: doc.context, continuation: doc.continuation }],
  score: (_doc, [result]) => ({ ll: result!.logLikelihood, acc: result!.isGreedy ? 1 : 0, tokens: result!.tokens }),
  aggregate: (scores) => ({ perplexity: Math.exp(-mean(scores, 'll')), acc: mean(scores, 'acc') }),
  // No other split: lm-eval samples the test split itself. Its target ' ' + word follows target_delimiter ' ', so an
  // example has two spaces before its last word, exactly as lm-eval writes it.
  fewshot: { split: 'test', example: (doc) => doc.context + TARGET_DELIMITER + doc.continuation },
};
