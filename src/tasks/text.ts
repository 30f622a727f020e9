/**
 * `text`: lm-eval's loglikelihood_rolling perplexity on any corpus — the same windows and metrics as wikitext, on
 * text used as it is (no detokenizer). A plain-text file splits into documents at runs of two or more blank lines
 * (how books and articles are usually joined); JSONL, JSON, Parquet and Arrow files give one document per record's
 * `text` field. The bundled default is held-out Project Gutenberg prose, the bundled model's own domain.
 */
import { readdirSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { BadRows } from '../data/bad-rows.js';
import { textField } from '../data/fields.js';
import { formatOfFile, type LocatedFiles } from '../data/locate.js';
import { readTextFile } from '../data/lines.js';
import { readRecords, resolveData } from '../data/records.js';
import { rollingMetrics, rollingScores } from './metrics.js';
import type { Task, TaskDoc } from './task.js';

export interface TextDoc extends TaskDoc {
  readonly text: string;
}

/** Documents of a plain-text file: the pieces between runs of ≥ 2 blank lines, whitespace-only pieces dropped. */
export function splitTextDocuments(text: string): { text: string; line: number }[] {
  const docs: { text: string; line: number }[] = [];
  let line = 1;
  for (const piece of text.split(/(\n[ \t]*\n(?:[ \t]*\n)+)/)) {
    if (/^\n[ \t]*\n/.test(piece)) {
      line += piece.split('\n').length - 1;
      continue;
    }
    if (piece.trim() !== '') docs.push({ text: piece, line });
    line += piece.split('\n').length - 1;
  }
  return docs;
}

const QUERY = { split: 'test', formats: ['text', 'jsonl', 'json', 'parquet', 'arrow'] } as const;

/**
 * A corpus directory is read whole: every file in it of one supported format (sorted by name), split or not. A
 * directory laid out by split (or holding several formats) goes through the usual split lookup instead.
 */
function corpusFiles(path: string): LocatedFiles | null {
  if (!statSync(path, { throwIfNoEntry: false })?.isDirectory()) return null;
  const files = readdirSync(path).sort().map((f) => join(path, f)).filter((f) => statSync(f).isFile() && !basename(f).startsWith('.'));
  const formats = new Set(files.map((f) => { try { return formatOfFile(f); } catch { return null; } }));
  const [format] = [...formats];
  if (files.length === 0 || formats.size !== 1 || format === null || format === undefined || !(QUERY.formats as readonly string[]).includes(format)) return null;
  return { format, files };
}

export const text: Task<TextDoc> = {
  name: 'text',
  split: 'test',
  primaryMetric: 'word_perplexity',
  isAccuracyTask: false,
  formats: QUERY.formats,
  async load(path, onBadRow, split = 'test') {
    const located = corpusFiles(path) ?? await resolveData(path, { ...QUERY, split });
    const docs: TextDoc[] = [];
    const bad = new BadRows(onBadRow);
    if (located.format === 'text') {
      for (const file of located.files) {
        for (const d of splitTextDocuments(readTextFile(file, bad))) docs.push({ index: docs.length, source: `${file}:${d.line}`, text: d.text });
      }
      return { docs, badRows: [], warnings: bad.warnings, format: 'text', files: located.files };
    }
    for await (const { record, source } of readRecords(located, bad)) {
      const doc = bad.guard(source, () => ({ index: docs.length, source, text: textField(record, 'text') }));
      if (doc) docs.push(doc);
    }
    return { docs, badRows: bad.rows, warnings: bad.warnings, format: located.format, files: located.files };
  },
  fingerprint: (doc) => doc.text,
  requests: (doc) => [{ kind: 'rolling', text: doc.text }],
  score: (doc, [result]) => rollingScores(doc.text, result!),
  aggregate: rollingMetrics,
};
