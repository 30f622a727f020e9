/**
 * Raw text files read as a stream of lines, split exactly like Python's `str.split('\n')`: the piece after the last
 * newline is yielded too (empty when the file ends with a newline), and nothing else is touched (no `\r` handling).
 */
import * as fs from 'node:fs';

export interface Line {
  /** 1-based line number. */
  readonly line: number;
  readonly text: string;
}

export async function* readLines(file: string): AsyncGenerator<Line> {
  let pending = '';
  let line = 0;
  for await (const chunk of fs.createReadStream(file, { encoding: 'utf8', highWaterMark: 1 << 20 })) {
    const pieces = (pending + (chunk as string)).split('\n');
    pending = pieces.pop()!;
    for (const text of pieces) yield { line: ++line, text };
  }
  yield { line: ++line, text: pending };
}

/** Like readLines, without the final empty piece of a file that ends with a newline (record-per-line formats). */
export async function* readRecordLines(file: string): AsyncGenerator<Line> {
  let previous: Line | undefined;
  for await (const line of readLines(file)) {
    if (previous) yield previous;
    previous = line;
  }
  if (previous && previous.text !== '') yield previous;
}
