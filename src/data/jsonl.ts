/** JSON Lines (one object per line, blank lines ignored) and JSON files (an array of objects). */
import * as fs from 'node:fs';
import type { BadRows } from './bad-rows.js';
import { type DataRecord, describe, type SourcedRecord } from './fields.js';
import { readRecordLines, readTextFile } from './lines.js';

/** Streams the records of a JSONL file; a line that is not a JSON object is a bad row at `file:line`. */
export async function* readJsonl(file: string, bad: BadRows): AsyncGenerator<SourcedRecord> {
  for await (const { line, text: raw } of readRecordLines(file, bad)) {
    const text = line === 1 ? raw.replace(/^\uFEFF/, '') : raw;
    if (text.trim() === '') continue;
    const source = `${file}:${line}`;
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (e) {
      bad.report(source, `not valid JSON (${(e as Error).message})`);
      continue;
    }
    if (!isRecord(value)) {
      bad.report(source, `expected a JSON object, got ${describe(value)}`);
      continue;
    }
    yield { record: value, source };
  }
}

/**
 * A `.json` file: an array of objects (sources `file#row`, 0-based), or, as Hugging Face `datasets` also accepts,
 * JSON Lines under a .json name. The array form is read whole; the JSONL form streams.
 */
export async function* readJson(file: string, bad: BadRows): AsyncGenerator<SourcedRecord> {
  if (!(await startsWithArray(file))) {
    yield* readJsonl(file, bad);
    return;
  }
  let value: unknown;
  try {
    value = JSON.parse(readTextFile(file, bad).replace(/^\uFEFF/, ''));
  } catch (e) {
    bad.report(file, `not valid JSON (${(e as Error).message})`);
    return;
  }
  const rows = value as unknown[];
  for (let i = 0; i < rows.length; i++) {
    const source = `${file}#${i}`;
    const row = rows[i];
    if (!isRecord(row)) bad.report(source, `expected a JSON object, got ${describe(row)}`);
    else yield { record: row, source };
  }
}

async function startsWithArray(file: string): Promise<boolean> {
  const handle = await fs.promises.open(file);
  try {
    const { buffer, bytesRead } = await handle.read(Buffer.alloc(4096), 0, 4096, 0);
    const head = buffer.subarray(0, bytesRead).toString('utf8').replace(/^\uFEFF/, '').trimStart();
    return head.startsWith('[');
  } finally {
    await handle.close();
  }
}

function isRecord(v: unknown): v is DataRecord {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
