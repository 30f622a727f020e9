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
 * Up to `maxTokens` tokens of plain text from a file or a directory of `.txt` files (in name order), cut into
 * sequences of `seqLen` tokens.
 */
export function readCalibrationText(path: string, tokenizer: TextTokenizer, maxTokens: number, seqLen: number): CalibrationText {
  const files = textFiles(path);
  const ids: number[] = [];
  const used = createHash('sha256');
  const usedFiles: string[] = [];
  for (const file of files) {
    if (ids.length >= maxTokens) break;
    usedFiles.push(file);
    const text = readFileSync(file, 'utf8');
    for (let start = 0; start < text.length && ids.length < maxTokens; ) {
      let end = Math.min(text.length, start + PIECE_CHARS);
      const paragraph = text.indexOf('\n\n', end);
      end = end === text.length || paragraph < 0 ? text.length : paragraph + 2;
      const piece = text.slice(start, end);
      used.update(piece);
      for (const id of tokenizer.encode(piece)) ids.push(id);
      start = end;
    }
  }
  if (ids.length === 0) throw new RoutelabError(path, 'no calibration text: the files are empty');
  ids.length = Math.min(ids.length, maxTokens);
  const sequences: number[][] = [];
  for (let i = 0; i < ids.length; i += seqLen) sequences.push(ids.slice(i, i + seqLen));
  return { sequences, tokens: ids.length, files: usedFiles, fingerprint: used.digest('hex') };
}

function textFiles(path: string): string[] {
  const stat = statSync(path, { throwIfNoEntry: false });
  if (!stat) throw new RoutelabError(path, 'no such calibration file or directory');
  if (stat.isFile()) return [path];
  const files = readdirSync(path).filter((f) => f.endsWith('.txt')).sort().map((f) => join(path, f));
  if (files.length === 0) throw new RoutelabError(path, 'no .txt files in this directory');
  return files;
}
