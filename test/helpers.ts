import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CpuBackend } from '../src/backends/cpu.js';
import { Checkpoint } from '../src/model/checkpoint.js';
import { MoeModel } from '../src/model/model.js';
import { SafetensorsFile, writeSafetensors, type TensorToWrite } from '../src/model/safetensors.js';

/** The repository root (tests compile to dist/test/). */
export const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
export const parityDir = join(repoRoot, 'test/fixtures/parity/tiny-olmoe');
export const parityExpected = join(repoRoot, 'test/fixtures/parity/tiny-olmoe-expected.safetensors');
export const gutenbergDir = join(repoRoot, 'models/tiny-olmoe-gutenberg');

export function loadCpuModel(dir: string): MoeModel {
  return MoeModel.load(Checkpoint.open(dir), new CpuBackend());
}

export function tempDir(prefix = 'routelab-test-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/**
 * A copy of the parity checkpoint with config changes and tensors replaced/removed/added, written to a temp dir:
 * the way tests build models whose correct outputs follow from the original's.
 */
export function variantCheckpoint(
  configChanges: Record<string, unknown>,
  edit: (tensors: Map<string, TensorToWrite>) => void = () => {},
): string {
  const dir = tempDir('routelab-variant-');
  const config = { ...JSON.parse(readFileSync(join(parityDir, 'config.json'), 'utf8')), ...configChanges };
  writeFileSync(join(dir, 'config.json'), JSON.stringify(config, null, 2));
  const source = SafetensorsFile.open(join(parityDir, 'model.safetensors'));
  const tensors = new Map<string, TensorToWrite>();
  for (const e of source.entries) tensors.set(e.name, { name: e.name, dtype: e.dtype, shape: e.shape, data: source.readArray(e.name) });
  edit(tensors);
  writeSafetensors(join(dir, 'model.safetensors'), [...tensors.values()]);
  return dir;
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let max = 0;
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs(a[i] - b[i]));
  return max;
}

/** Deterministic token ids in [0, vocab). */
export function tokenIds(length: number, vocab: number, seed: number): number[] {
  let s = seed >>> 0;
  return Array.from({ length }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s % vocab;
  });
}

/** `../shared` beside the repository (present on developer machines and CI, absent for users who clone). */
export const sharedDir = join(repoRoot, '../shared');

/**
 * Prefill two sequences of different lengths into a KV cache, then feed their remaining tokens one at a time:
 * every step's last-position logits must equal a full forward pass over the same prefix (< 1e-5).
 */
export async function assertKvCacheMatchesFullForward(model: MoeModel, vocab: number): Promise<void> {
  const seqs = [tokenIds(20, vocab, 4), tokenIds(13, vocab, 5)];
  const full = [await model.forward([seqs[0]]), await model.forward([seqs[1]])];
  const cache = model.createCache(2, 20);
  const prefill = [8, 5];
  let step = await model.forward(seqs.map((s, b) => s.slice(0, prefill[b])), { cache, logits: 'last' });
  for (let i = 0; ; i++) {
    for (let b = 0; b < 2; b++) {
      const pos = prefill[b] + i - 1;
      const diff = maxAbsDiff(step.logits.subarray(b * vocab, (b + 1) * vocab), full[b].logits.subarray(pos * vocab, (pos + 1) * vocab));
      if (!(diff < 1e-5)) throw new Error(`sequence ${b} position ${pos}: max abs diff ${diff}`);
    }
    if (prefill[1] + i >= seqs[1].length) break;
    step = await model.forward(seqs.map((s, b) => [s[prefill[b] + i]]), { cache, logits: 'last' });
  }
  if (cache.lengths[0] !== 16 || cache.lengths[1] !== 13) throw new Error(`cache lengths ${cache.lengths}`);
}

/**
 * A copy of a model directory with a byte-level BPE tokenizer cut down from the bundled model's OLMoE tokenizer to
 * ids below `vocabLimit` (merges kept only when both parts and the result survive): text tasks can then run on the
 * tiny family fixtures, whose vocabularies have 1000 ids.
 */
export function withSmallTokenizer(modelDir: string, vocabLimit: number): string {
  const dir = tempDir('routelab-tokenized-');
  cpSync(modelDir, dir, { recursive: true });
  const full = JSON.parse(readFileSync(join(gutenbergDir, 'tokenizer.json'), 'utf8'));
  const vocab = Object.fromEntries(Object.entries(full.model.vocab as Record<string, number>).filter(([, id]) => id < vocabLimit));
  const merges = (full.model.merges as string[]).filter((m) => m.replace(' ', '') in vocab && m.split(' ').every((part) => part in vocab));
  const added = (full.added_tokens as { id: number }[]).filter((t) => t.id < vocabLimit);
  writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify({ ...full, added_tokens: added, model: { ...full.model, vocab, merges } }));
  writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify({ add_bos_token: false, add_eos_token: false, clean_up_tokenization_spaces: false }));
  return dir;
}

/** Results rows without the columns that time things (tokens/s, seconds), which no two runs share; paths as RUN/…. */
export function untimedResults(run: string): unknown[] {
  const rows = JSON.parse(readFileSync(join(run, 'results.json'), 'utf8').replaceAll(run, 'RUN')) as Record<string, unknown>[];
  return rows.map((row) => Object.fromEntries(Object.entries(row).filter(([k]) => !/per_second|seconds|_s$|speedup|latency/.test(k))));
}

/** CHROMIUM_PATH, Debian's /usr/bin/chromium, or a chromium on PATH (the browser tests skip without one). */
export function findChromium(): string | null {
  const candidates = [process.env.CHROMIUM_PATH, '/usr/bin/chromium'];
  for (const name of ['chromium', 'chromium-browser']) {
    try {
      candidates.push(execFileSync('which', [name], { encoding: 'utf8' }).trim());
    } catch {
      // not on PATH
    }
  }
  return candidates.find((c): c is string => !!c && existsSync(c)) ?? null;
}
