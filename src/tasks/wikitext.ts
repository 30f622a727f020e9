/**
 * WikiText-2 raw, test split, one document per article (lm-eval `wikitext` over EleutherAI's
 * `wikitext_document_level`): rolling loglikelihood over the detokenized page; word/byte counts over the original one.
 */
import { BadRows } from '../data/bad-rows.js';
import { hasField, textField } from '../data/fields.js';
import { readLines, type Line } from '../data/lines.js';
import type { SourcedRecord } from '../data/fields.js';
import { readRecords, resolveData } from '../data/records.js';
import { rollingMetrics, rollingScores, utf8Bytes, whitespaceWords } from './metrics.js';
import type { Task, TaskDoc } from './task.js';

export interface WikitextDoc extends TaskDoc {
  /** The page as EleutherAI's builder makes it (original tokenization, ` @-@ ` and all). */
  readonly page: string;
}

/** A level-1 heading (`= Title =`), after `= = =`→`===` and `= =`→`==` so sub-headings never match. */
export function isWikitextHeading(line: string): boolean {
  const r = line.replaceAll('= = =', '===').replaceAll('= =', '==').trim();
  return r.startsWith('= ') && r.endsWith(' =');
}

/**
 * Groups the raw file's lines (split on '\n', the empty piece after the final newline included) into pages: each
 * heading starts a page that runs to the next heading, pages joined with '\n'; a blank page (the text before the first
 * heading) is dropped; the last page is kept as is.
 */
export async function* splitWikitextPages<L extends Line>(
  lines: AsyncIterable<L> | Iterable<L>,
): AsyncGenerator<{ page: string; first: L }> {
  let current: string[] = [];
  let first: L | undefined;
  for await (const line of lines) {
    if (isWikitextHeading(line.text)) {
      const page = current.join('\n');
      if (page.trim() !== '') yield { page, first: first! };
      current = [];
      first = undefined;
    }
    first ??= line;
    current.push(line.text);
  }
  // The last page is kept as it is; it can only be blank when no heading started it (an empty file has no pages).
  if (first && current.join('\n').trim() !== '') yield { page: current.join('\n'), first };
}

/** lm-eval's wikitext detokenizer, rule by rule in its order. */
export function wikitextDetokenize(page: string): string {
  let s = page;
  // contractions
  s = s.replaceAll("s '", "s'");
  // number separators
  s = s.replaceAll(' @-@ ', '-').replaceAll(' @,@ ', ',').replaceAll(' @.@ ', '.');
  // punctuation
  s = s.replaceAll(' : ', ': ').replaceAll(' ; ', '; ').replaceAll(' . ', '. ');
  s = s.replaceAll(' ! ', '! ').replaceAll(' ? ', '? ').replaceAll(' , ', ', ');
  // whitespace just inside bracket and quote pairs
  s = s.replace(/\(\s*([^)]*?)\s*\)/g, '($1)');
  s = s.replace(/\[\s*([^\]]*?)\s*\]/g, '[$1]');
  s = s.replace(/{\s*([^}]*?)\s*}/g, '{$1}');
  s = s.replace(/"\s*([^"]*?)\s*"/g, '"$1"');
  s = s.replace(/'\s*([^']*?)\s*'/g, "'$1'");
  // miscellaneous
  s = s.replaceAll('= = = =', '====').replaceAll('= = =', '===').replaceAll('= =', '==');
  s = s.replaceAll(' \u00b0 ', '\u00b0');
  s = s.replaceAll(' \n', '\n').replaceAll('\n ', '\n');
  s = s.replaceAll(' N ', ' 1 ');
  s = s.replaceAll(" 's", "'s");
  return s;
}

/** Words of the original page as lm-eval counts them: pieces of split(/\s+/), empty end pieces included. */
export const wikitextWords = whitespaceWords;
export { utf8Bytes };

/**
 * HF `Salesforce/wikitext` rows are the raw file's lines (each with its '\n') with blank ones as '': rebuild the raw
 * lines from them, each tagged with the row it came from.
 */
async function* rowsAsRawLines(rows: AsyncIterable<SourcedRecord>, bad: BadRows): AsyncGenerator<Line & { source: string }> {
  let pending = '';
  let pendingSource = '';
  let line = 0;
  for await (const { record, source } of rows) {
    const text = bad.guard(source, () => textField(record, 'text', true));
    if (text === undefined) continue;
    if (pending === '') pendingSource = source;
    const pieces = (pending + (text === '' ? ' \n' : text)).split('\n');
    pending = pieces.pop()!;
    for (const piece of pieces) {
      yield { line: ++line, text: piece, source: pendingSource };
      pendingSource = source;
    }
  }
  yield { line: ++line, text: pending, source: pendingSource };
}

const QUERY = { split: 'test', config: 'wikitext-2-raw-v1', formats: ['arrow', 'parquet', 'jsonl', 'json', 'text'] } as const;

export const wikitext: Task<WikitextDoc> = {
  name: 'wikitext',
  split: 'test',
  primaryMetric: 'word_perplexity',
  isAccuracyTask: false,
  formats: QUERY.formats,
  async load(path, onBadRow, split = 'test') {
    const located = await resolveData(path, { ...QUERY, split });
    const bad = new BadRows(onBadRow);
    if (located.format === 'text') {
      // Raw wiki.test.raw: never malformed, only split (text that is not UTF-8 is said).
      const file = located.files[0]!;
      const docs = await toDocs(splitWikitextPages(readLines(file, bad)), ({ line }) => `${file}:${line}`);
      return { docs, badRows: [], warnings: bad.warnings, format: 'wikitext-raw', files: located.files };
    }
    // Document-level exports carry a `page` column, used as is; line-level ones (`text`) are rebuilt into pages.
    const records = readRecords(located, bad);
    const first = await records.next();
    const all = (async function* () {
      if (!first.done) yield first.value;
      yield* records;
    })();
    if (first.done || hasField(first.value.record, 'page')) {
      const docs: WikitextDoc[] = [];
      for await (const { record, source } of all) {
        const doc = bad.guard(source, () => ({ index: docs.length, source, page: textField(record, 'page') }));
        if (doc) docs.push(doc);
      }
      return { docs, badRows: bad.rows, warnings: bad.warnings, format: `${located.format}-pages`, files: located.files };
    }
    const docs = await toDocs(splitWikitextPages(rowsAsRawLines(all, bad)), ({ source }) => source);
    return { docs, badRows: bad.rows, warnings: bad.warnings, format: `${located.format}-lines`, files: located.files };
  },
  fingerprint: (doc) => doc.page,
  requests: (doc) => [{ kind: 'rolling', text: wikitextDetokenize(doc.page) }],
  score: (doc, [result]) => rollingScores(doc.page, result!),
  aggregate: rollingMetrics,
};

async function toDocs<L extends Line>(
  pages: AsyncIterable<{ page: string; first: L }>,
  sourceOf: (first: L) => string,
): Promise<WikitextDoc[]> {
  const docs: WikitextDoc[] = [];
  for await (const { page, first } of pages) docs.push({ index: docs.length, source: sourceOf(first), page });
  return docs;
}
