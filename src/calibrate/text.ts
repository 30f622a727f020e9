import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { RoutelabError } from '../errors.js';
import type { TextTokenizer } from '../model/tokenizer.js';

export interface CalibrationText {
  /** Token sequences of `seqLen` tokens (the last may be shorter). */
  readonly sequences: number[][];
  readonly tokens: number;
  /** The files read and the sha256 of the text actually used. */
  readonly files: string[];
  readonly fingerprint: string;
}

/** Characters encoded at a time; pieces are cut at paragraph breaks so no word is split. */
const PIECE_CHARS = 16384;

/**
 * Up to `maxTokens` tokens of `pieces` (texts tokenized one by one, in order), cut into sequences of `seqLen`
 * tokens; the fingerprint is sha256 over the pieces read.
 */
export function tokenizeCalibrationText(pieces: Iterable<string>, tokenizer: TextTokenizer, maxTokens: number, seqLen: number, where: string): Omit<CalibrationText, 'files'> {
  const ids: number[] = [];
  const used = createHash('sha256');
  for (const piece of pieces) {
    if (ids.length >= maxTokens) break;
    used.update(piece);
    for (const id of tokenizer.encode(piece)) ids.push(id);
  }
  if (ids.length === 0) throw new RoutelabError(where, 'no calibration text: nothing to tokenize');
  ids.length = Math.min(ids.length, maxTokens);
  const sequences: number[][] = [];
  for (let i = 0; i < ids.length; i += seqLen) sequences.push(ids.slice(i, i + seqLen));
  return { sequences, tokens: ids.length, fingerprint: used.digest('hex') };
}

/** Up to `maxTokens` tokens of plain text from a file or a directory of `.txt` files (in name order). */
export function readCalibrationText(path: string, tokenizer: TextTokenizer, maxTokens: number, seqLen: number): CalibrationText {
  const files = textFiles(path);
  const usedFiles: string[] = [];
  // Files are read lazily, in pieces cut at paragraph breaks so no word is split.
  function* pieces(): Generator<string> {
    for (const file of files) {
      usedFiles.push(file);
      const text = readFileSync(file, 'utf8');
      for (let start = 0; start < text.length; ) {
        let end = Math.min(text.length, start + PIECE_CHARS);
        const paragraph = text.indexOf('\n\n', end);
        end = end === text.length || paragraph < 0 ? text.length : paragraph + 2;
        yield text.slice(start, end);
        start = end;
      }
    }
  }
  return { ...tokenizeCalibrationText(pieces(), tokenizer, maxTokens, seqLen, path), files: usedFiles };
}

function textFiles(path: string): string[] {
  const stat = statSync(path, { throwIfNoEntry: false });
  if (!stat) throw new RoutelabError(path, 'no such calibration file or directory');
  if (stat.isFile()) return [path];
  const files = readdirSync(path).filter((f) => f.endsWith('.txt')).sort().map((f) => join(path, f));
  if (files.length === 0) throw new RoutelabError(path, 'no .txt files in this directory');
  return files;
}
