/**
 * Raw text files read as a stream of lines, split exactly like Python's `str.split('\n')`: the piece after the last
 * newline is yielded too (empty when the file ends with a newline), and nothing else is touched (no `\r` handling).
 * Bytes that are not UTF-8 are decoded with U+FFFD, as Python's `errors="replace"` would, and reported to `bad`.
 */
import { isUtf8 } from 'node:buffer';
import * as fs from 'node:fs';
import type { BadRows } from './bad-rows.js';

export interface Line {
  /** 1-based line number. */
  readonly line: number;
  readonly text: string;
}

export async function* readLines(file: string, bad?: BadRows): AsyncGenerator<Line> {
  let pending: Buffer = Buffer.alloc(0);
  let line = 0;
  // Lines are cut on the newline byte, so a character split across two reads is whole again before it is decoded.
  for await (const chunk of fs.createReadStream(file, { highWaterMark: 1 << 20 })) {
    const data = pending.length ? Buffer.concat([pending, chunk as Buffer]) : (chunk as Buffer);
    const last = data.lastIndexOf(10);
    if (last < 0) {
      pending = data;
      continue;
    }
    const complete = data.subarray(0, last);
    pending = data.subarray(last + 1);
    if (isUtf8(complete)) {
      for (const text of complete.toString('utf8').split('\n')) yield { line: ++line, text };
    } else {
      for (let start = 0; start <= complete.length; ) {
        const end = complete.indexOf(10, start) < 0 ? complete.length : complete.indexOf(10, start);
        yield { line: ++line, text: decodeLine(complete.subarray(start, end), file, line, bad) };
        start = end + 1;
      }
    }
  }
  yield { line: ++line, text: decodeLine(pending, file, line, bad) };
}

function decodeLine(bytes: Buffer, file: string, line: number, bad: BadRows | undefined): string {
  if (!isUtf8(bytes)) bad?.invalidUtf8(`${file}:${line}`);
  return bytes.toString('utf8');
}

/** A whole text file's contents, decoded as readLines decodes it (invalid UTF-8 reported to `bad` at its first line). */
export function readTextFile(file: string, bad?: BadRows): string {
  const bytes = fs.readFileSync(file);
  if (!isUtf8(bytes)) {
    let line = 1;
    for (let start = 0; start <= bytes.length; line++) {
      const end = bytes.indexOf(10, start) < 0 ? bytes.length : bytes.indexOf(10, start);
      if (!isUtf8(bytes.subarray(start, end))) bad?.invalidUtf8(`${file}:${line}`);
      start = end + 1;
    }
  }
  return bytes.toString('utf8');
}

/** Like readLines, without the final empty piece of a file that ends with a newline (record-per-line formats). */
export async function* readRecordLines(file: string, bad?: BadRows): AsyncGenerator<Line> {
  let previous: Line | undefined;
  for await (const line of readLines(file, bad)) {
    if (previous) yield previous;
    previous = line;
  }
  if (previous && previous.text !== '') yield previous;
}
