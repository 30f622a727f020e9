import { readFileSync } from 'node:fs';
import { RoutelabError } from '../errors.js';
import { SafetensorsFile } from '../model/safetensors.js';

/**
 * Token-id sequences from a file: a safetensors file with an integer `input_ids` [B, S] (or [S]) tensor — and,
 * when present, an `attention_mask` [B, S] whose zeros mark padding (left or right) — or a JSON array of
 * arrays of token ids (a flat array is one sequence). Range checks against the vocabulary happen in the model.
 */
export function readTokenIds(file: string): number[][] {
  return file.endsWith('.safetensors') ? readSafetensorsIds(file) : readJsonIds(file);
}

function readSafetensorsIds(file: string): number[][] {
  const st = SafetensorsFile.open(file);
  if (!st.has('input_ids')) throw new RoutelabError(file, `no "input_ids" tensor (found: ${st.names.join(', ') || 'none'})`);
  const rows = matrix(st, 'input_ids', file);
  if (!st.has('attention_mask')) return rows;
  const mask = matrix(st, 'attention_mask', file);
  if (mask.length !== rows.length || mask.some((m, b) => m.length !== rows[b].length)) {
    throw new RoutelabError(`${file}: attention_mask`, 'shape differs from input_ids');
  }
  return rows.map((ids, b) => {
    const first = mask[b].findIndex((m) => m !== 0);
    const end = mask[b].findLastIndex((m) => m !== 0) + 1;
    if (first < 0) throw new RoutelabError(`${file}: attention_mask`, `row ${b} masks every token: empty sequence`);
    if (mask[b].slice(first, end).some((m) => m === 0)) {
      throw new RoutelabError(`${file}: attention_mask`, `row ${b} has padding inside the sequence; only left or right padding is supported`);
    }
    return ids.slice(first, end);
  });
}

function matrix(st: SafetensorsFile, name: string, file: string): number[][] {
  const { dtype, shape } = st.entry(name);
  if (!['I64', 'I32', 'I16', 'U8', 'I8', 'BOOL'].includes(dtype)) throw new RoutelabError(`${file}: ${name}`, `expected an integer tensor, got ${dtype}`);
  if (shape.length !== 1 && shape.length !== 2) throw new RoutelabError(`${file}: ${name}`, `expected shape [B, S] or [S], got [${shape.join(', ')}]`);
  const [B, S] = shape.length === 2 ? shape : [1, shape[0]];
  const data = st.readArray(name);
  return Array.from({ length: B }, (_, b) => Array.from({ length: S }, (_, s) => Number(data[b * S + s])));
}

function readJsonIds(file: string): number[][] {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    if (e instanceof SyntaxError) throw new RoutelabError(file, `not valid JSON (${e.message}); expected token ids as [[id, ...], ...] or a .safetensors file`);
    throw new RoutelabError(file, `cannot read: ${(e as Error).message}`);
  }
  const rows = Array.isArray(raw) && raw.length > 0 && raw.every((x) => typeof x === 'number') ? [raw] : raw;
  if (!Array.isArray(rows) || rows.length === 0) throw new RoutelabError(file, 'expected a non-empty JSON array of token-id arrays');
  rows.forEach((row: unknown, b) => {
    if (!Array.isArray(row) || !row.every((id) => Number.isInteger(id))) {
      throw new RoutelabError(`${file}: [${b}]`, 'expected an array of integer token ids');
    }
  });
  return rows as number[][];
}
