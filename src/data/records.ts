/**
 * The entry point of the data layer: turn PATH (a file, a directory, or a Hugging Face dataset id) into the split's
 * files, and stream their records with where each came from.
 */
import * as fs from 'node:fs';
import { RoutelabError } from '../errors.js';
import { parseRepoId } from '../hub.js';
import { readArrow } from './arrow.js';
import type { BadRows } from './bad-rows.js';
import type { SourcedRecord } from './fields.js';
import { resolveHubDataset, type HubDatasetOptions } from './hub-dataset.js';
import { readJson, readJsonl } from './jsonl.js';
import { formatOfFile, locateInDirectory, type LocatedFiles, type SplitQuery } from './locate.js';
import { readParquet } from './parquet.js';
import { readTsv } from './tsv.js';


/** The split's files for PATH: an existing file as is, a directory searched, else a hub dataset id. */
export async function resolveData(spec: string, query: SplitQuery, hub: HubDatasetOptions = {}): Promise<LocatedFiles> {
  const stat = fs.statSync(spec, { throwIfNoEntry: false });
  if (stat?.isDirectory()) return locateInDirectory(spec, query);
  if (stat) {
    const format = formatOfFile(spec);
    if (!query.formats.includes(format)) {
      throw new RoutelabError(spec, `${format} files cannot hold this data: expected ${query.formats.join(', ')}`);
    }
    return { format, files: [spec] };
  }
  if (parseRepoId(spec) && !spec.startsWith('.')) return resolveHubDataset(spec, query, hub);
  throw new RoutelabError(spec, 'no such file or directory (nor a Hugging Face dataset id such as nyu-mll/glue)');
}

/** Streams the records of record-shaped files (every format but raw text). */
export async function* readRecords(located: LocatedFiles, bad: BadRows): AsyncGenerator<SourcedRecord> {
  for (const file of located.files) {
    switch (located.format) {
      case 'arrow':
        yield* readArrow(file);
        break;
      case 'parquet':
        yield* readParquet(file);
        break;
      case 'jsonl':
        yield* readJsonl(file, bad);
        break;
      case 'json':
        yield* readJson(file, bad);
        break;
      case 'tsv':
        yield* readTsv(file, bad);
        break;
      case 'text':
        throw new RoutelabError(file, 'raw text has no records; the task reads it line by line');
    }
  }
}
