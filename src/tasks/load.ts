/** Loading helpers shared by the tasks: PATH → located files → records → documents, with bad rows counted. */
import { BadRows } from '../data/bad-rows.js';
import type { DataRecord } from '../data/fields.js';
import type { LocatedFiles, SplitQuery } from '../data/locate.js';
import { readRecords, resolveData } from '../data/records.js';
import type { BadRowPolicy, LoadedDocs, TaskDoc } from './task.js';

/** What a task builds from one record; throw RowError for a malformed one. */
export type ParseRecord<D extends TaskDoc> = (record: DataRecord, where: TaskDoc) => D;

/** Reads record-shaped data (arrow, parquet, jsonl, json, tsv) into documents numbered in file order. */
export async function loadRecordDocs<D extends TaskDoc>(
  located: LocatedFiles,
  onBadRow: BadRowPolicy,
  parse: ParseRecord<D>,
): Promise<LoadedDocs<D>> {
  const bad = new BadRows(onBadRow);
  const docs: D[] = [];
  for await (const { record, source } of readRecords(located, bad)) {
    const doc = bad.guard(source, () => parse(record, { index: docs.length, source }));
    if (doc) docs.push(doc);
  }
  return { docs, badRows: bad.rows, warnings: bad.warnings, format: located.format, files: located.files };
}

/** resolveData + loadRecordDocs for tasks whose every format is record-shaped. */
export async function loadRecordTask<D extends TaskDoc>(
  path: string,
  onBadRow: BadRowPolicy,
  query: SplitQuery,
  parse: ParseRecord<D>,
): Promise<LoadedDocs<D>> {
  return loadRecordDocs(await resolveData(path, query), onBadRow, parse);
}
