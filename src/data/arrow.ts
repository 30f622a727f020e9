/**
 * Arrow IPC files as Hugging Face `datasets` writes them with `save_to_disk` (stream format, `data-*.arrow` next to
 * `dataset_info.json` and `state.json`), read batch by batch with apache-arrow so memory stays bounded by one record
 * batch. The IPC file format (ARROW1 magic) reads the same way.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { RoutelabError } from '../errors.js';
import type { SourcedRecord } from './fields.js';

/** Streams the records of one .arrow file; sources are `file#row` (0-based row of the file). Int64 stays bigint. */
export async function* readArrow(file: string): AsyncGenerator<SourcedRecord> {
  // apache-arrow takes a tenth of a second to load: only when an Arrow file is read.
  const { RecordBatchReader } = await import('apache-arrow');
  let reader;
  try {
    reader = await (await RecordBatchReader.from(fs.createReadStream(file))).open();
  } catch (e) {
    throw new RoutelabError(file, `not a readable Arrow IPC file (${(e as Error).message})`);
  }
  if (!reader.schema) throw new RoutelabError(file, 'not a readable Arrow IPC file (no schema message)');
  let row = 0;
  const batches = reader[Symbol.asyncIterator]();
  for (;;) {
    let next;
    try {
      next = await batches.next();
    } catch (e) {
      // A truncated or damaged record batch surfaces while reading it, after the schema.
      throw new RoutelabError(file, `not a readable Arrow IPC file: the record batch after row ${row} cannot be read (${(e as Error).message})`);
    }
    if (next.done) break;
    const batch = next.value;
    for (let i = 0; i < batch.numRows; i++) {
      const record = batch.get(i)?.toJSON() ?? {};
      yield { record, source: `${file}#${row++}` };
    }
  }
}

/**
 * The data files of a `save_to_disk` split directory, in order: those `state.json` lists under `_data_files`, else the
 * `data-*.arrow` files sorted by name. Undefined when the directory holds no Arrow data.
 */
export function arrowSplitFiles(dir: string): string[] | undefined {
  const statePath = path.join(dir, 'state.json');
  if (fs.existsSync(statePath)) {
    let state: unknown;
    try {
      state = JSON.parse(fs.readFileSync(statePath, 'utf8'));
    } catch (e) {
      throw new RoutelabError(statePath, `not valid JSON (${(e as Error).message})`);
    }
    const listed = (state as { _data_files?: unknown })._data_files;
    if (Array.isArray(listed) && listed.length > 0) {
      const files = listed.map((entry) => {
        const name = (entry as { filename?: unknown })?.filename;
        if (typeof name !== 'string' || name.includes('/') || name.includes('\\')) {
          throw new RoutelabError(statePath, `_data_files entry ${JSON.stringify(entry)} is not a file name`);
        }
        const file = path.join(dir, name);
        if (!fs.existsSync(file)) throw new RoutelabError(statePath, `lists ${name}, which is not in ${dir}`);
        return file;
      });
      return files;
    }
  }
  const files = fs
    .readdirSync(dir)
    .filter((f) => f.endsWith('.arrow') && !f.startsWith('cache-'))
    .sort();
  return files.length > 0 ? files.map((f) => path.join(dir, f)) : undefined;
}
