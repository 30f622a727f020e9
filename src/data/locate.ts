/**
 * Which files hold a split: PATH may be one file, or a directory in any of the layouts datasets ship in — a
 * `save_to_disk` split folder (`validation/data-*.arrow` + `state.json`), hub exports (`sst2/validation-00000-of-00001.parquet`,
 * `data/validation-*.parquet`, `default/validation/0000.parquet`), or plain files named after the split
 * (`wiki.test.raw`, `lambada_test.jsonl`, `dev.tsv`, `hellaswag_val_full.txt`).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { RoutelabError } from '../errors.js';
import { arrowSplitFiles } from './arrow.js';

export type DataFormat = 'arrow' | 'parquet' | 'jsonl' | 'json' | 'tsv' | 'text';

/** Preference when a directory holds the same split in several formats (the richest, most exact first). */
export const FORMAT_ORDER: readonly DataFormat[] = ['arrow', 'parquet', 'jsonl', 'json', 'tsv', 'text'];

export interface SplitQuery {
  /** Split name as lm-eval names it: test, validation, train. */
  readonly split: string;
  /** Hub config / subset folder tried first (e.g. `sst2` in nyu-mll/glue, `wikitext-2-raw-v1` in Salesforce/wikitext). */
  readonly config?: string;
  /** Formats the task can read. */
  readonly formats: readonly DataFormat[];
  /** Base names that win when several files match (e.g. `lambada_test.jsonl` over `lambada_test_de.jsonl`). */
  readonly prefer?: readonly string[];
}

export interface LocatedFiles {
  readonly files: string[];
  readonly format: DataFormat;
}

const SPLIT_ALIASES: Readonly<Record<string, readonly string[]>> = {
  validation: ['validation', 'valid', 'val', 'dev'],
  test: ['test'],
  train: ['train'],
};
const KNOWN_SPLITS: ReadonlySet<string> = new Set(Object.values(SPLIT_ALIASES).flat());
const METADATA_FILES = new Set(['state.json', 'dataset_info.json', 'dataset_dict.json', 'dataset_infos.json']);
const COMPRESSED = /\.(bz2|gz|xz|zst|zip|7z)$/i;
const SHARD = /(^|[-_])\d+(-of-\d+)?$/;

export function splitAliases(split: string): readonly string[] {
  return SPLIT_ALIASES[split] ?? [split];
}

/** The format of a file from its name; compressed files are refused with a hint. */
export function formatOfFile(file: string): DataFormat {
  if (COMPRESSED.test(file)) {
    throw new RoutelabError(file, 'compressed files are not read directly: decompress it first (e.g. bunzip2 -k)');
  }
  const ext = path.extname(file).toLowerCase();
  switch (ext) {
    case '.arrow':
      return 'arrow';
    case '.parquet':
      return 'parquet';
    case '.jsonl':
    case '.ndjson':
      return 'jsonl';
    case '.json':
      return 'json';
    case '.tsv':
      return 'tsv';
    default:
      return 'text';
  }
}

/** Whether a file found while searching a directory may hold data (metadata, READMEs, scripts are not). */
function isDataCandidate(rel: string): boolean {
  const base = path.posix.basename(rel);
  if (METADATA_FILES.has(base) || base.startsWith('.') || base.startsWith('cache-')) return false;
  const ext = path.posix.extname(base).toLowerCase();
  return ['.arrow', '.parquet', '.jsonl', '.ndjson', '.json', '.tsv', '.txt', '.raw', '.tokens'].includes(ext);
}

/** Path tokens (folders and the base name without extension) split on non-alphanumerics. */
function tokens(rel: string): string[] {
  const withoutExt = rel.slice(0, rel.length - path.posix.extname(rel).length);
  return withoutExt.toLowerCase().split(/[^a-z0-9]+/).filter(Boolean);
}

/**
 * Picks the split's files from the relative (posix) paths of a directory tree or hub repo. Returns the chosen paths
 * or throws a RoutelabError (at `where`) saying what was looked for.
 */
export function chooseSplitFiles(relPaths: readonly string[], query: SplitQuery, where: string): LocatedFiles {
  let paths = relPaths.filter(isDataCandidate);
  if (query.config !== undefined) {
    const inConfig = paths.filter((p) => p.startsWith(`${query.config}/`));
    if (inConfig.length > 0) paths = inConfig.map((p) => p.slice(query.config!.length + 1));
    const prefix = inConfig.length > 0 ? `${query.config}/` : '';
    const chosen = chooseIn(paths, query, where, relPaths);
    return { format: chosen.format, files: chosen.files.map((p) => prefix + p) };
  }
  return chooseIn(paths, query, where, relPaths);
}

function chooseIn(paths: readonly string[], query: SplitQuery, where: string, relPaths: readonly string[]): LocatedFiles {
  const aliases = splitAliases(query.split);
  const matching = paths.filter((p) => tokens(p).some((t) => aliases.includes(t)));
  // A single data file in a save_to_disk folder (no split in its path) is the split when the folder is all there is;
  // one under another split's folder (validation/data-*.arrow when train is asked for) never is.
  const namesASplit = (p: string) => tokens(p).some((t) => KNOWN_SPLITS.has(t));
  const candidates = matching.length > 0 ? matching : paths.filter((p) => path.posix.basename(p).startsWith('data-') && p.endsWith('.arrow') && !namesASplit(p));
  for (const format of FORMAT_ORDER) {
    if (!query.formats.includes(format)) continue;
    const ofFormat = candidates.filter((p) => safeFormat(p) === format);
    if (ofFormat.length === 0) continue;
    return { format, files: pickGroup(ofFormat, query, where) };
  }
  throw new RoutelabError(where, notFound(query, relPaths));
}

function safeFormat(p: string): DataFormat | undefined {
  return COMPRESSED.test(p) ? undefined : formatOfFile(p);
}

/** One file, or all shards of one folder; anything else is ambiguous unless a preferred name settles it. */
function pickGroup(files: readonly string[], query: SplitQuery, where: string): string[] {
  if (files.length === 1) return [...files];
  const byDepth = Math.min(...files.map((f) => f.split('/').length));
  const shallow = files.filter((f) => f.split('/').length === byDepth);
  for (const name of query.prefer ?? []) {
    const hit = shallow.find((f) => path.posix.basename(f) === name) ?? files.find((f) => path.posix.basename(f) === name);
    if (hit) return [hit];
  }
  const dirs = new Set(shallow.map((f) => path.posix.dirname(f)));
  const stem = (f: string) => path.posix.basename(f).slice(0, -path.posix.extname(f).length || undefined);
  if (dirs.size === 1 && shallow.every((f) => SHARD.test(stem(f)))) return [...shallow].sort();
  const exact = shallow.filter((f) => splitAliases(query.split).includes(stem(f).toLowerCase()));
  if (exact.length === 1) return exact;
  throw new RoutelabError(
    where,
    `several files could hold the ${query.split} split: ${files.join(', ')}; pass one of them as the path`,
  );
}

function notFound(query: SplitQuery, relPaths: readonly string[]): string {
  const aliases = splitAliases(query.split).join('|');
  const looked = [
    `a ${query.split}/ (or ${aliases}) folder with data-*.arrow (save_to_disk)`,
    `files whose path names the split (*${aliases}*) as ${query.formats.map(extensionsOf).join(', ')}`,
  ];
  if (query.config !== undefined) looked.unshift(`the ${query.config}/ subfolder first`);
  const compressed = relPaths.filter((p) => COMPRESSED.test(p));
  const hint = compressed.length > 0 ? `; found compressed ${compressed.slice(0, 3).join(', ')}: decompress first` : '';
  const seen = relPaths.length === 0 ? 'it is empty' : `found ${relPaths.slice(0, 8).join(', ')}${relPaths.length > 8 ? ', …' : ''}`;
  return `no ${query.split} split here: looked for ${looked.join('; ')} — ${seen}${hint}`;
}

function extensionsOf(format: DataFormat): string {
  return { arrow: '.arrow', parquet: '.parquet', jsonl: '.jsonl', json: '.json', tsv: '.tsv', text: '.txt/.raw' }[format];
}

/** Relative posix paths of the files under `dir`, at most `depth` folders deep, hidden entries skipped. */
export function listTree(dir: string, depth = 3): string[] {
  const out: string[] = [];
  const walk = (rel: string, level: number) => {
    for (const entry of fs.readdirSync(path.join(dir, rel), { withFileTypes: true })) {
      if (entry.name.startsWith('.')) continue;
      const child = rel === '' ? entry.name : `${rel}/${entry.name}`;
      const full = path.join(dir, child);
      const stat = fs.statSync(full, { throwIfNoEntry: false }); // follows the hub cache's symlinks
      if (stat?.isDirectory()) {
        if (level < depth) walk(child, level + 1);
      } else if (stat?.isFile()) out.push(child);
    }
  };
  walk('', 0);
  return out.sort();
}

/** The split's files under a local directory (absolute paths). */
export function locateInDirectory(dir: string, query: SplitQuery): LocatedFiles {
  // The folder itself is a save_to_disk split.
  if (query.formats.includes('arrow')) {
    const own = isSaveToDiskFolder(dir) ? arrowSplitFiles(dir) : undefined;
    if (own) return { format: 'arrow', files: own };
  }
  const chosen = chooseSplitFiles(listTree(dir), query, dir);
  if (chosen.format === 'arrow') {
    // Keep state.json's order for the folder that holds the chosen shards.
    const folder = path.join(dir, path.posix.dirname(chosen.files[0]!));
    const files = arrowSplitFiles(folder);
    if (files) return { format: 'arrow', files };
  }
  return { format: chosen.format, files: chosen.files.map((f) => path.join(dir, f)) };
}

function isSaveToDiskFolder(dir: string): boolean {
  return (
    fs.existsSync(path.join(dir, 'state.json')) ||
    fs.readdirSync(dir).some((f) => f.startsWith('data-') && f.endsWith('.arrow'))
  );
}
