/**
 * Few-shot prompts as lm-evaluation-harness builds them (v0.4.9.2: `ContextSampler.get_context`, `Task.fewshot_docs`,
 * the evaluator's `fewshot_random_seed`), so that `--num-fewshot N` scores the prompts lm-eval scores:
 *
 * - Examples come from the task's few-shot split (FewshotRules.split: `train` for the choice tasks; LAMBADA has only
 *   its test split, which lm-eval then samples from itself).
 * - One `random.Random(seed)` (seed 1234 unless given) serves the whole task: the i-th evaluated document takes the
 *   i-th `sample(fewshot_docs, k)`. k is N + 1 where lm-eval's `fewshot_split == test_split` holds — for these tasks,
 *   which set no fewshot_split, that is every task without a test split (the choice tasks) — and N for LAMBADA.
 * - Drawn documents equal to the evaluated one are dropped and the first N of the rest kept: a choice task keeps N
 *   (it drew one more); a LAMBADA document that draws itself keeps N − 1, as in lm-eval. Equality is on the task's
 *   canonical text (its fingerprint), where lm-eval compares whole records.
 * - The prompt is each example (FewshotRules.example) followed by "\n\n", then the document's own context; the
 *   continuation is unchanged.
 *
 * A sweep computes the prompts once per task, so every configuration sees the same examples.
 */
import { RoutelabError } from '../errors.js';
import { PythonRandom } from './python-random.js';
import { fingerprintTexts } from './selection.js';
import type { BadRowPolicy, LoadedDocs, Task, TaskDoc } from './task.js';

/** lm-eval's defaults (TaskConfig, simple_evaluate): between a context and its target; after each example; the seed. */
export const TARGET_DELIMITER = ' ';
export const FEWSHOT_DELIMITER = '\n\n';
export const FEWSHOT_SEED = 1234;

/** What identifies the examples a run used (it enters a sweep's cell key); all null but num_fewshot when zero-shot. */
export interface FewshotSetting {
  readonly num_fewshot: number;
  readonly seed: number | null;
  readonly split: string | null;
  /** fingerprintTexts over the task name and every evaluated document's prefix, in order. */
  readonly fingerprint: string | null;
}

export interface FewshotPrompts {
  readonly setting: FewshotSetting;
  /** The files the examples were read from. */
  readonly files: readonly string[];
  /** Per evaluated document: its examples, each followed by "\n\n" (empty when zero-shot). */
  readonly prefixes: readonly string[];
  /** Per evaluated document: its examples' positions in the few-shot split. */
  readonly examples: readonly (readonly number[])[];
  /** Documents that drew themselves and kept N − 1 examples. */
  readonly shortDocs: number;
  /** Malformed rows of the few-shot split that were skipped (they shift the positions drawn from). */
  readonly badRowsSkipped: number;
}

export function zeroShot(): FewshotPrompts {
  return { setting: { num_fewshot: 0, seed: null, split: null, fingerprint: null }, files: [], prefixes: [], examples: [], shortDocs: 0, badRowsSkipped: 0 };
}

export interface FewshotOptions {
  readonly numFewshot: number;
  readonly seed?: number;
  /** Where the few-shot split is (file, directory or dataset id); the evaluated data's path unless given. */
  readonly path: string;
  readonly onBadRow: BadRowPolicy;
}

/** The few-shot prompts of `docs` (selected from `evaluated`), reading the few-shot split when it is another one. */
export async function loadFewshot<D extends TaskDoc>(
  task: Task<D>, docs: readonly D[], evaluated: LoadedDocs<D>, options: FewshotOptions,
): Promise<FewshotPrompts> {
  const { numFewshot: n, seed = FEWSHOT_SEED, path } = options;
  if (!(Number.isInteger(n) && n >= 0)) throw new RoutelabError('--num-fewshot', `expected an integer ≥ 0, got ${n}`);
  if (!(Number.isSafeInteger(seed) && seed >= 0)) throw new RoutelabError('--fewshot-seed', `expected an integer 0…${Number.MAX_SAFE_INTEGER}, got ${seed}`);
  if (n === 0) return zeroShot();
  const rules = task.fewshot;
  if (!rules) {
    throw new RoutelabError('--num-fewshot', `${task.name} is scored as whole texts (rolling log-likelihood), where a prompt has no ` +
      'place (lm-eval ignores few-shot examples there): few-shot applies to the choice tasks and lambada_openai');
  }
  if (rules.split === task.split) return fewshotPrompts(task, docs, evaluated, n, seed);
  let pool: LoadedDocs<D>;
  try {
    pool = await task.load(path, options.onBadRow, rules.split);
  } catch (e) {
    if (!(e instanceof RoutelabError)) throw e;
    throw new RoutelabError('--num-fewshot', `${task.name} draws its examples from its ${rules.split} split, as lm-eval does: ${e.message}`);
  }
  // A file, or a folder that is one split, answers every split query with itself: never the documents evaluated.
  if (pool.files.join('\n') === evaluated.files.join('\n')) {
    throw new RoutelabError(path, `holds the ${task.split} split being evaluated, not the ${rules.split} split ${task.name}'s ` +
      `few-shot examples come from (${pool.files.join(', ')}): give the ${rules.split} split's file or folder (eval: --fewshot-data)`);
  }
  return fewshotPrompts(task, docs, pool, n, seed);
}

/** lm-eval's prompts for `docs` in evaluation order, with `n` examples drawn from `pool` under `seed`. */
export function fewshotPrompts<D extends TaskDoc>(task: Task<D>, docs: readonly D[], pool: LoadedDocs<D>, n: number, seed: number): FewshotPrompts {
  const rules = task.fewshot;
  if (!rules) throw new Error(`${task.name} has no few-shot form`);
  const draws = task.split === 'test' ? n : n + 1;
  if (draws > pool.docs.length) {
    throw new RoutelabError('--num-fewshot', `${n} examples take ${draws} draws${draws > n ? ' (lm-eval draws one more than N for a task without a test split)' : ''} ` +
      `from ${task.name}'s ${rules.split} split, which has ${pool.docs.length} documents (${pool.files.join(', ')})`);
  }
  const random = new PythonRandom(seed);
  const examples: number[][] = [];
  const prefixes: string[] = [];
  let shortDocs = 0;
  for (const doc of docs) {
    const self = task.fingerprint(doc);
    const picked = random.sample(pool.docs.length, draws).filter((i) => task.fingerprint(pool.docs[i]!) !== self).slice(0, n);
    if (picked.length < n) shortDocs++;
    examples.push(picked);
    prefixes.push(picked.map((i) => rules.example(pool.docs[i]!) + FEWSHOT_DELIMITER).join(''));
  }
  return {
    setting: { num_fewshot: n, seed, split: rules.split, fingerprint: fingerprintTexts([task.name, ...prefixes]) },
    files: pool.files,
    prefixes,
    examples,
    shortDocs,
    badRowsSkipped: pool.badRows.length,
  };
}
