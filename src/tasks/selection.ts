/**
 * Which documents a run evaluates, and the fingerprint that proves two runs saw the same ones (SPEC §3): the first N,
 * or a seeded sample of N kept in document order; the fingerprint is sha256 over the task name and each selected
 * document's canonical text, in order, each length-prefixed so concatenation is unambiguous.
 */
import { createHash } from 'node:crypto';
import { RoutelabError } from '../errors.js';
import type { Task, TaskDoc } from './task.js';

export interface SelectOptions {
  /** Keep N documents (all when absent or ≥ the count). */
  readonly limit?: number;
  /** Take a seeded random sample of `limit` documents instead of the first ones. */
  readonly sampleSeed?: number;
}

/** How the documents were chosen, for the results file. */
export interface Selection {
  readonly mode: 'all' | 'first' | 'sample';
  /** Documents available before selection. */
  readonly total: number;
  readonly selected: number;
  readonly limit?: number;
  readonly sampleSeed?: number;
}

export function selectDocs<D extends TaskDoc>(docs: readonly D[], opts: SelectOptions = {}): { docs: D[]; selection: Selection } {
  const { limit, sampleSeed } = opts;
  if (limit !== undefined && !(Number.isInteger(limit) && limit > 0)) {
    throw new RoutelabError('--limit', `expected a positive integer, got ${limit}`);
  }
  if (sampleSeed !== undefined && !(Number.isInteger(sampleSeed) && sampleSeed >= 0 && sampleSeed <= 0xffffffff)) {
    throw new RoutelabError('--sample-seed', `expected an integer 0…4294967295, got ${sampleSeed}`);
  }
  if (sampleSeed !== undefined && limit === undefined) {
    throw new RoutelabError('--sample-seed', 'a sample needs --limit N (the sample size)');
  }
  const total = docs.length;
  if (limit === undefined || limit >= total) {
    return { docs: [...docs], selection: { mode: 'all', total, selected: total, ...(limit !== undefined ? { limit } : {}) } };
  }
  if (sampleSeed === undefined) {
    return { docs: docs.slice(0, limit), selection: { mode: 'first', total, selected: limit, limit } };
  }
  const picked = sampleIndices(total, limit, sampleSeed).map((i) => docs[i]!);
  return { docs: picked, selection: { mode: 'sample', total, selected: limit, limit, sampleSeed } };
}

/**
 * `k` distinct indices of 0…n−1, ascending: a partial Fisher–Yates shuffle driven by mulberry32(seed) — step i swaps
 * slot i with slot i + floor(u·(n−i)) — then the first k slots sorted. Fixed here so a recorded seed reproduces.
 */
export function sampleIndices(n: number, k: number, seed: number): number[] {
  const random = mulberry32(seed);
  const slots = Array.from({ length: n }, (_, i) => i);
  for (let i = 0; i < k; i++) {
    const j = i + Math.floor(random() * (n - i));
    [slots[i], slots[j]] = [slots[j]!, slots[i]!];
  }
  return slots.slice(0, k).sort((a, b) => a - b);
}

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** sha256 hex over `len:text` for the task name, then each document's canonical text (len = UTF-8 bytes). */
export function fingerprintDocs<D extends TaskDoc>(task: Task<D>, docs: readonly D[]): string {
  return fingerprintTexts([task.name, ...docs.map((doc) => task.fingerprint(doc))]);
}

/** sha256 hex over `len:text` for each text in order (len = UTF-8 bytes), so that concatenation is unambiguous. */
export function fingerprintTexts(texts: Iterable<string>): string {
  const hash = createHash('sha256');
  for (const text of texts) {
    const bytes = Buffer.from(text, 'utf8');
    hash.update(`${bytes.length}:`);
    hash.update(bytes);
  }
  return hash.digest('hex');
}
