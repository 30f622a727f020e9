/**
 * What makes a sweep cell's result current (issue: reliability). A cell's identity is every input its numbers depend
 * on — router (with its null model by content), model weights and tokenizer by content, task, documents, evaluation
 * settings, code version — and its key is the SHA-256 of that identity. A stored cell is complete only when its
 * summary still hashes to the value it was sealed with, its key is the current one, and its trace (when traced) hashes
 * to what the summary recorded; otherwise it is redone, with the reason said.
 */
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { NATIVE_ADDON_PATH } from '../backends/native.js';
import { cachedFileSha256, fileSha256 } from '../file-hash.js';
import type { Checkpoint } from '../model/checkpoint.js';
import { VERSION } from '../version.js';

export const sha256 = (data: string | Uint8Array) => createHash('sha256').update(data).digest('hex');

/** Files beside the weights that change what a model computes on text. */
const MODEL_FILES = ['config.json', 'tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json'];

/**
 * Content identity of a model: its config, tokenizer files and every weight shard by SHA-256 of its bytes (each shard
 * hashed once and then cached by size + mtime + inode, so resuming a run over a 13.8 GB checkpoint does not rehash it).
 */
export function modelFingerprint(checkpoint: Checkpoint): string {
  const hash = createHash('sha256');
  for (const name of MODEL_FILES) {
    const file = join(checkpoint.dir, name);
    if (existsSync(file)) hash.update(`${name}:${fileSha256(file)}\n`);
  }
  for (const shard of checkpoint.shards) hash.update(`${shard.file}:${cachedFileSha256(join(checkpoint.dir, shard.file))}\n`);
  return hash.digest('hex');
}

/** Folders of the compiled sources that only present results (reports, the live page, analyses, comparisons). */
const PRESENTATION = new Set(['report', 'dashboard', 'analyze', 'compare']);

/**
 * SHA-256 (hex) of a compiled source tree — every .js file under `root` but the presentation folders at its top, by
 * relative path and content — and of the native kernels' binary `addon` when there is one.
 */
export function codeTreeSha256(root: string, addon: string | null): string {
  const hash = createHash('sha256');
  const walk = (dir: string): void => {
    for (const entry of readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) {
        if (!(dir === root && PRESENTATION.has(entry.name))) walk(path);
      } else if (entry.name.endsWith('.js')) {
        hash.update(`${relative(root, path)}:${fileSha256(path)}\n`);
      }
    }
  };
  walk(root);
  if (addon !== null && existsSync(addon)) hash.update(`native:${fileSha256(addon)}\n`);
  return hash.digest('hex');
}

let codeHash: string | undefined;

/**
 * What code computes a cell: routelab's version and codeTreeSha256 of its compiled modules (dist/src) and native
 * kernels. So a cell is redone after any change to the code that computes it, committed or not, and stays current
 * across changes to documentation, tests or reports (a git commit would be neither).
 */
export function codeFingerprint(): string {
  codeHash ??= `${VERSION}+code.${codeTreeSha256(fileURLToPath(new URL('..', import.meta.url)), NATIVE_ADDON_PATH).slice(0, 16)}`;
  return codeHash;
}

/** Every input a cell's result depends on; its JSON's SHA-256 is the cell key. */
export interface CellIdentity {
  readonly router: string;
  readonly model: string;
  readonly task: string;
  readonly data: string;
  readonly maxLength: number | null;
  /** Few-shot setting: N, seed, split and the fingerprint of the examples. */
  readonly fewshot: unknown;
  readonly trace: string;
  readonly code: string;
}

export const cellKey = (identity: CellIdentity): string => sha256(JSON.stringify(identity));

/** What each identity field is, for saying why a cell is stale. */
const CHANGED: Readonly<Record<keyof CellIdentity, string>> = {
  router: 'router or its null model changed',
  model: 'model weights or tokenizer changed',
  task: 'task changed',
  data: 'documents changed',
  maxLength: 'max length changed',
  fewshot: 'few-shot examples changed',
  trace: 'trace level changed',
  code: 'routelab code changed',
};

/** Seal a summary: the SHA-256 of its JSON without the seal, so an edited or damaged summary is recognised. */
export function sealSummary<T extends object>(summary: T): T & { summary_sha256: string } {
  const { summary_sha256: _, ...content } = summary as T & { summary_sha256?: string };
  return { ...content, summary_sha256: sha256(JSON.stringify(content)) } as T & { summary_sha256: string };
}

interface StoredCell {
  readonly cell_key?: unknown;
  readonly cell_identity?: Partial<CellIdentity>;
  readonly summary_sha256?: unknown;
  readonly trace_sha256?: unknown;
}

/**
 * Why the cell stored at `summaryFile` (and `traceFile`, when traced) is not the complete result of `identity`, or
 * null when it is.
 */
export function staleness(summaryFile: string, traceFile: string | null, identity: CellIdentity): string | null {
  if (!existsSync(summaryFile)) return 'not evaluated yet';
  let stored: StoredCell;
  try {
    stored = JSON.parse(readFileSync(summaryFile, 'utf8'));
  } catch {
    return 'summary unreadable';
  }
  if (typeof stored !== 'object' || stored === null || typeof stored.cell_key !== 'string') return 'summary is not a sweep cell';
  if (stored.summary_sha256 !== sealSummary(stored).summary_sha256) return 'summary edited or damaged (its content hash does not match its seal)';
  if (stored.cell_key !== cellKey(identity)) {
    const before = stored.cell_identity ?? {};
    const fields = (Object.keys(CHANGED) as (keyof CellIdentity)[]).filter((k) => JSON.stringify(before[k]) !== JSON.stringify(identity[k]));
    return fields.length && stored.cell_identity ? fields.map((k) => CHANGED[k]).join('; ') : 'evaluated by an older routelab';
  }
  if (traceFile !== null) {
    if (!existsSync(traceFile)) return 'trace missing';
    if (stored.trace_sha256 !== fileSha256(traceFile)) return 'trace damaged (its hash differs from the one its summary recorded)';
  }
  return null;
}
