/**
 * Tab-separated files in GLUE's dev.tsv style: a header line naming the columns, then one record per line, fields
 * split on tabs with no quoting (GLUE files have none, and their sentences contain bare quotes).
 */
import type { BadRows } from './bad-rows.js';
import { readRecordLines } from './lines.js';
import type { SourcedRecord } from './fields.js';

export async function* readTsv(file: string, bad: BadRows): AsyncGenerator<SourcedRecord> {
  let header: string[] | undefined;
  for await (const { line, text } of readRecordLines(file, bad)) {
    const row = text.replace(/\r$/, '');
    if (header === undefined) {
      header = row.replace(/^\uFEFF/, '').split('\t');
      continue;
    }
    if (row === '') continue;
    const source = `${file}:${line}`;
    const fields = row.split('\t');
    if (fields.length !== header.length) {
      bad.report(source, `expected ${header.length} tab-separated fields (${header.join(', ')}), got ${fields.length}`);
      continue;
    }
    yield { record: Object.fromEntries(header.map((name, i) => [name, fields[i]])), source };
  }
}
