/**
 * HellaSwag validation (lm-eval `hellaswag`): pick the ending of an activity description. From the original schema
 * (activity_label, ctx_a, ctx_b, endings, label) the query is lm-eval's; from llama.cpp's `hellaswag_val_full.txt`
 * (6 lines a task) the already-joined context line is the query (format 'llama.cpp', comparable with llama.cpp's
 * score, not bit-exact with lm-eval's: ctx_b is not capitalised there). acc = argmax ll, acc_norm = argmax ll/len(choice).
 */
import { BadRows, RowError } from '../data/bad-rows.js';
import { labelField, textField, textListField } from '../data/fields.js';
import { readRecordLines, type Line } from '../data/lines.js';
import { resolveData } from '../data/records.js';
import { CHOICE_FEWSHOT, choiceFingerprint, choiceRequests, scoreChoices, type ChoiceDoc } from './choice.js';
import { loadRecordDocs } from './load.js';
import { argmax, mean } from './metrics.js';
import type { Task } from './task.js';

/** lm-eval's hellaswag `preprocess`: strip, ` [title]`→`. `, drop every `[...]`, `  `→` `. */
export function hellaswagPreprocess(text: string): string {
  return text.trim().replaceAll(' [title]', '. ').replace(/\[.*?\]/g, '').replaceAll('  ', ' ');
}

/** Python's str.capitalize: first character upper-cased, the rest lower-cased. */
export function capitalize(text: string): string {
  const [head = '', ...rest] = [...text];
  return head.toUpperCase() + rest.join('').toLowerCase();
}

/** Characters (code points, as Python's len) of a choice, for acc_norm. */
export function choiceLength(choice: string): number {
  return [...choice].length;
}

const CHOICES = 4;
/** The record formats, or `text`: llama.cpp's hellaswag_val_full.txt. */
const FORMATS = ['arrow', 'parquet', 'jsonl', 'json', 'text'] as const;

export const hellaswag: Task<ChoiceDoc> = {
  name: 'hellaswag',
  split: 'validation',
  primaryMetric: 'acc_norm',
  isAccuracyTask: true,
  chanceAccuracy: 1 / CHOICES,
  formats: FORMATS,
  async load(path, onBadRow, split = 'validation') {
    const located = await resolveData(path, { split, formats: FORMATS });
    if (located.format === 'text') return loadLlamaCpp(located.files, onBadRow);
    return loadRecordDocs(located, onBadRow, (r, where) => {
      const ctx = `${textField(r, 'ctx_a', true)} ${capitalize(textField(r, 'ctx_b', true))}`;
      return {
        ...where,
        context: hellaswagPreprocess(`${textField(r, 'activity_label')}: ${ctx}`),
        choices: textListField(r, 'endings', CHOICES).map(hellaswagPreprocess),
        gold: labelField(r, 'label', CHOICES),
      };
    });
  },
  fingerprint: choiceFingerprint,
  requests: choiceRequests,
  score(doc, results) {
    const { acc, pred, gold } = scoreChoices(doc, results);
    const predNorm = argmax(results.map((r, i) => r.logLikelihood / choiceLength(doc.choices[i]!)));
    return { acc, acc_norm: predNorm === doc.gold ? 1 : 0, pred, pred_norm: predNorm, gold };
  },
  aggregate: (scores) => ({ acc: mean(scores, 'acc'), acc_norm: mean(scores, 'acc_norm') }),
  fewshot: CHOICE_FEWSHOT,
};

/**
 * llama.cpp's text format: `activity_label: ctx`, the gold index, then the 4 endings — 6 lines per task. A task
 * with more or fewer endings is skipped alone: the next task is found again where a line is followed by a bare
 * integer (its gold index), so one bad task never shifts the framing of the tasks after it.
 */
async function loadLlamaCpp(files: string[], onBadRow: 'skip' | 'error') {
  const bad = new BadRows(onBadRow);
  const docs: ChoiceDoc[] = [];
  // Framing looks for a bare integer on the second line; whether it is a valid gold index (0–3) is parsing's concern.
  const isLabel = (l: Line | undefined) => l !== undefined && /^\s*-?\d+\s*$/.test(l.text);
  for (const file of files) {
    const lines: Line[] = [];
    for await (const line of readRecordLines(file, bad)) lines.push(line);
    let p = 0;
    while (p < lines.length) {
      // This task runs to the next line that starts a task (a non-label line followed by a label), or the end.
      let next = p + 6;
      if (!(next >= lines.length || (!isLabel(lines[next]) && isLabel(lines[next + 1])))) {
        next = p + 2;
        while (next < lines.length && !(!isLabel(lines[next]) && isLabel(lines[next + 1]))) next++;
      }
      const group = lines.slice(p, next);
      const source = `${file}:${group[0]!.line}`;
      const doc = bad.guard(source, () => {
        if (group.length !== 6) {
          throw new RowError(next >= lines.length && group.length < 6
            ? `incomplete task at the end of the file: ${group.length} of 6 lines`
            : `${Math.max(0, group.length - 2)} endings, expected 4 (the next task starts at line ${lines[next]?.line})`);
        }
        return parseLlamaCppTask(group.map((l) => l.text), { index: docs.length, source });
      });
      if (doc) docs.push(doc);
      p = next;
    }
  }
  return { docs, badRows: bad.rows, warnings: bad.warnings, format: 'llama.cpp', files };
}

function parseLlamaCppTask(lines: string[], where: { index: number; source: string }): ChoiceDoc {
  const [query = '', label = '', ...endings] = lines;
  if (query.trim() === '') throw new RowError('empty context line');
  if (!/^[0-3]$/.test(label.trim())) throw new RowError(`line 2: expected the gold index 0…3, got ${JSON.stringify(label)}`);
  const choices = endings.map(hellaswagPreprocess);
  choices.forEach((c, i) => {
    if (c === '') throw new RowError(`line ${i + 3}: empty ending`);
  });
  return { ...where, context: query, choices, gold: Number(label.trim()) };
}
