/**
 * A checkpoint of any supported family in Hugging Face layout: `config.json` plus weights in `model.safetensors`, or in shards listed
 * by `model.safetensors.index.json`. Opening validates the whole layout against config.json from the safetensors
 * headers alone; tensor bytes are read only when asked for.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { RoutelabError } from '../errors.js';
import { nearest } from '../suggest.js';
import {
  cachedSnapshot, defaultHubCacheDir, describeFailure, hubAccess, offlineByEnvironment, parseRepoId, repoCacheDir, writeRef,
} from '../hub.js';
import type { Architecture } from './architecture.js';
import type { Family } from './family.js';
import { parseArchitecture } from './families/index.js';
import { type TensorSpec, tensorLayout } from './tensors.js';
import { isWeightDtype, SafetensorsFile, type SafetensorsDtype, type TensorEntry } from './safetensors.js';
import { numel, type StoredTensor } from './tensor.js';

const CONFIG_FILE = 'config.json';
const SINGLE_WEIGHTS_FILE = 'model.safetensors';
const INDEX_FILE = 'model.safetensors.index.json';

export interface ShardInfo {
  /** Path relative to the checkpoint directory, as the index names it. */
  readonly file: string;
  readonly bytes: number;
  readonly tensorCount: number;
}

/** Where one tensor lives. */
export interface TensorLocation {
  readonly entry: TensorEntry;
  readonly shard: SafetensorsFile;
}

export class Checkpoint {
  private constructor(
    readonly dir: string,
    readonly family: Family,
    readonly architecture: Architecture,
    /** Every tensor the architecture implies, as the family names them. */
    readonly layout: readonly TensorSpec[],
    /** config.json exactly as parsed, for reports that want keys routelab does not interpret. */
    readonly rawConfig: Readonly<Record<string, unknown>>,
    private readonly shardFiles: readonly SafetensorsFile[],
    private readonly locations: ReadonlyMap<string, TensorLocation>,
    /** Tensors present beyond those config.json implies (allowed, never read by the model). */
    readonly unexpectedTensors: readonly string[],
  ) {}

  /**
   * Opens and validates a checkpoint directory (synchronously: only config.json, the index and the safetensors headers
   * are read). Throws a RoutelabError naming the file at fault when the layout is broken or does not match config.json.
   */
  static open(dir: string): Checkpoint {
    const { family, architecture, layout, rawConfig } = Checkpoint.readArchitecture(dir);
    const shardFiles = openWeightFiles(dir);
    const locations = locateTensors(shardFiles);
    const expected = new Map(layout.map((t) => [t.name, [...t.shape]]));
    checkAgainstConfig(dir, expected, locations);
    const unexpected = [...locations.keys()].filter((name) => !expected.has(name));
    return new Checkpoint(dir, family, architecture, layout, rawConfig, shardFiles, locations, unexpected);
  }

  /** The family, architecture and tensor layout config.json describes (no weights needed: `inspect` on a config). */
  static readArchitecture(dir: string): { family: Family; architecture: Architecture; layout: TensorSpec[]; rawConfig: Record<string, unknown> } {
    if (!isDirectory(dir)) throw new RoutelabError(dir, 'no such model directory');
    const configPath = path.join(dir, CONFIG_FILE);
    if (!fs.existsSync(configPath)) throw new RoutelabError(configPath, 'missing: a model directory needs config.json');
    const rawConfig = readJson(configPath) as Record<string, unknown>;
    const { family, architecture } = parseArchitecture(rawConfig, configPath);
    return { family, architecture, layout: tensorLayout(family, architecture), rawConfig };
  }

  /** Whether a directory holds weights (a config.json alone can still be inspected). */
  static hasWeights(dir: string): boolean {
    return fs.existsSync(path.join(dir, SINGLE_WEIGHTS_FILE)) || fs.existsSync(path.join(dir, INDEX_FILE));
  }

  /** Reads one tensor from its shard. Nothing is cached here: the caller owns the memory. */
  tensor(name: string): StoredTensor {
    return this.locate(name).shard.readWeight(name);
  }

  locate(name: string): TensorLocation {
    const location = this.locations.get(name);
    if (!location) throw new RoutelabError(this.dir, `no tensor "${name}" in the checkpoint`);
    return location;
  }

  get tensorNames(): string[] {
    return [...this.locations.keys()];
  }

  get shards(): ShardInfo[] {
    return this.shardFiles.map((s) => ({
      file: path.relative(this.dir, s.path),
      bytes: s.fileBytes,
      tensorCount: s.entries.length,
    }));
  }

  /** Element count per storage dtype, over every tensor in the checkpoint. */
  get dtypeHistogram(): Map<SafetensorsDtype, number> {
    const histogram = new Map<SafetensorsDtype, number>();
    for (const { entry } of this.locations.values()) {
      histogram.set(entry.dtype, (histogram.get(entry.dtype) ?? 0) + numel(entry.shape));
    }
    return histogram;
  }

  /** Bytes of the tensors the model reads (each stays in its stored dtype in memory). */
  get weightBytes(): number {
    let bytes = 0;
    for (const spec of this.layout) bytes += this.locate(spec.name).entry.byteLength;
    return bytes;
  }

  /** Total elements over every tensor in the checkpoint. */
  get parameterCount(): number {
    let total = 0;
    for (const count of this.dtypeHistogram.values()) total += count;
    return total;
  }
}

function isDirectory(p: string): boolean {
  return fs.statSync(p, { throwIfNoEntry: false })?.isDirectory() ?? false;
}

function readJson(file: string): unknown {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    if (e instanceof SyntaxError) throw new RoutelabError(file, `not valid JSON (${e.message})`);
    throw e;
  }
}

/**
 * The weight files, in the order transformers looks for them: `model.safetensors` first, else the shards of
 * `model.safetensors.index.json` (each checked to hold the tensors the index maps to it).
 */
function openWeightFiles(dir: string): SafetensorsFile[] {
  const single = path.join(dir, SINGLE_WEIGHTS_FILE);
  if (fs.existsSync(single)) return [SafetensorsFile.open(single)];
  const indexPath = path.join(dir, INDEX_FILE);
  if (!fs.existsSync(indexPath)) {
    const stray = fs.readdirSync(dir).filter((f) => f.endsWith('.safetensors'));
    const found = stray.length > 0 ? ` (found ${stray.join(', ')} but no index)` : '';
    throw new RoutelabError(dir, `no weights: expected ${SINGLE_WEIGHTS_FILE} or ${INDEX_FILE}${found}`);
  }

  const weightMap = readWeightMap(indexPath);
  const shardNames = [...new Set(weightMap.values())];
  const shards = new Map<string, SafetensorsFile>();
  for (const shardName of shardNames) {
    const shardPath = path.join(dir, shardName);
    if (!fs.existsSync(shardPath)) throw new RoutelabError(indexPath, `lists shard "${shardName}", which is not in ${dir}`);
    shards.set(shardName, SafetensorsFile.open(shardPath));
  }
  for (const [tensor, shardName] of weightMap) {
    if (!shards.get(shardName)!.has(tensor)) {
      throw new RoutelabError(indexPath, `maps tensor "${tensor}" to shard "${shardName}", which does not contain it`);
    }
  }
  return [...shards.values()];
}

function readWeightMap(indexPath: string): Map<string, string> {
  const index = readJson(indexPath);
  const weightMap = (index as { weight_map?: unknown } | null)?.weight_map;
  if (typeof weightMap !== 'object' || weightMap === null || Array.isArray(weightMap)) {
    throw new RoutelabError(indexPath, 'expected an object with a "weight_map" object {tensor name: shard file}');
  }
  const map = new Map<string, string>();
  for (const [tensor, shard] of Object.entries(weightMap)) {
    // Shards must stay inside the checkpoint directory: the index is data, not a licence to read elsewhere.
    if (typeof shard !== 'string' || path.isAbsolute(shard) || path.normalize(shard).split(path.sep).includes('..')) {
      throw new RoutelabError(indexPath, `weight_map["${tensor}"] = ${JSON.stringify(shard)} is not a shard file name`);
    }
    map.set(tensor, shard);
  }
  if (map.size === 0) throw new RoutelabError(indexPath, 'weight_map is empty');
  return map;
}

/** Maps every tensor to the one file holding it; a tensor stored twice would make the checkpoint ambiguous. */
function locateTensors(files: readonly SafetensorsFile[]): Map<string, TensorLocation> {
  const locations = new Map<string, TensorLocation>();
  for (const shard of files) {
    for (const entry of shard.entries) {
      const seen = locations.get(entry.name);
      if (seen) {
        throw new RoutelabError(
          path.dirname(shard.path),
          `tensor "${entry.name}" is stored in both ${path.basename(seen.shard.path)} and ${path.basename(shard.path)}`,
        );
      }
      locations.set(entry.name, { entry, shard });
    }
  }
  return locations;
}

function checkAgainstConfig(dir: string, expected: Map<string, number[]>, locations: Map<string, TensorLocation>): void {
  const missing = [...expected.keys()].filter((name) => !locations.has(name));
  if (missing.length > 0) {
    const shown = missing.slice(0, 5).join(', ');
    const more = missing.length > 5 ? `, … (${missing.length - 5} more)` : '';
    throw new RoutelabError(
      dir,
      `the checkpoint does not match config.json: ${missing.length} expected tensor(s) missing: ${shown}${more}`,
    );
  }
  for (const [name, shape] of expected) {
    const { entry, shard } = locations.get(name)!;
    if (entry.shape.length !== shape.length || entry.shape.some((d, i) => d !== shape[i])) {
      throw new RoutelabError(
        shard.path,
        `tensor "${name}" has shape [${entry.shape.join(', ')}] but config.json implies [${shape.join(', ')}]: ` +
          'the checkpoint does not match config.json',
      );
    }
    if (!isWeightDtype(entry.dtype)) {
      throw new RoutelabError(shard.path, `tensor "${name}" has dtype ${entry.dtype}; expected BF16, F16 or F32 weights`);
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Hugging Face hub resolution

export interface ResolveModelOptions {
  /** Hub cache root; default $HF_HUB_CACHE, else ($HF_HOME or ~/.cache/huggingface)/hub. */
  readonly cacheDir?: string;
  /** Default: true unless HF_HUB_OFFLINE is set to 1/true/yes/on. */
  readonly allowDownload?: boolean;
  /** Branch, tag or commit hash; default "main". `org/name@revision` in the spec says the same. */
  readonly revision?: string;
  /** Hub endpoint; default $HF_ENDPOINT, else https://huggingface.co. */
  readonly hubUrl?: string;
  /** Replaces the global fetch for hub requests (proxies, tests). */
  readonly fetch?: typeof fetch;
}

/** Files a routelab model directory needs; anything else in a repo (other formats, images) is not downloaded. */
const HUB_FILES = new Set([
  CONFIG_FILE,
  INDEX_FILE,
  'tokenizer.json',
  'tokenizer_config.json',
  'generation_config.json',
]);
const isWantedHubFile = (f: string) => HUB_FILES.has(f) || (!f.includes('/') && f.endsWith('.safetensors'));

/**
 * Turns a model spec into a local directory: an existing directory as is; a Hugging Face repo id (`org/name`,
 * optionally `org/name@revision`) as its snapshot in the hub cache, downloading the files routelab needs first when
 * it is not cached and downloads are allowed.
 */
export async function resolveModelPath(spec: string, opts: ResolveModelOptions = {}): Promise<string> {
  if (isDirectory(spec)) return spec;
  if (fs.existsSync(spec)) throw new RoutelabError(spec, 'not a directory: a model is a directory with config.json');
  const id = parseRepoId(spec);
  if (!id) {
    throw new RoutelabError(spec, `no such model directory${similarDirectory(spec)} (nor a Hugging Face repo id such as allenai/OLMoE-1B-7B-0924)`);
  }
  const { repo, revision: specRevision } = id;
  if (specRevision !== undefined && opts.revision !== undefined && specRevision !== opts.revision) {
    throw new RoutelabError(spec, `revision "${specRevision}" conflicts with the requested revision "${opts.revision}"`);
  }
  const revision = specRevision ?? opts.revision ?? 'main';
  const cacheDir = opts.cacheDir ?? defaultHubCacheDir();
  const repoCache = repoCacheDir(cacheDir, 'model', id);

  // config.json marks a complete snapshot: downloads write it last.
  const cached = cachedSnapshot(repoCache, revision, (dir) => fs.existsSync(path.join(dir, CONFIG_FILE)));
  if (cached) return cached;

  const notCached = `no such directory${similarDirectory(spec)}, not in the Hugging Face cache (${cacheDir})`;
  // A spec shaped like a path (./m, /m, a/b/c, or org/name where ./org is a local folder) names a local directory.
  if (looksLikePath(spec)) throw new RoutelabError(spec, `${notCached}; it looks like a local path, so the hub is not asked`);
  if (!(opts.allowDownload ?? !offlineByEnvironment())) {
    const why = opts.allowDownload === false ? 'downloads are disabled' : `offline (HF_HUB_OFFLINE=${process.env.HF_HUB_OFFLINE})`;
    throw new RoutelabError(spec, `${notCached}, and ${why}`);
  }
  // Said before any network access, so a mistyped path is recognised even while the download attempt hangs.
  console.debug(`routelab: ${spec}: ${notCached}; trying the Hugging Face hub`);
  try {
    return await downloadSnapshot(repo, revision, repoCache, cacheDir, opts);
  } catch (e) {
    throw new RoutelabError(spec, `${notCached}, and the download failed: ${describeFailure(e)}`);
  }
}

/** A relative or absolute path rather than a repo id: starts with ./ ../ / ~, has a backslash or two slashes, or its first part is a local folder. */
function looksLikePath(spec: string): boolean {
  if (/^(\.{1,2}[\\/]|[\\/]|~)/.test(spec) || spec.includes('\\') || spec.split('/').length > 2) return true;
  return isDirectory(spec.split('/')[0]);
}

/** ": did you mean models/tiny-olmoe-gutenberg?" when the parent folder exists and holds a model directory of a similar name. */
function similarDirectory(spec: string): string {
  const parent = path.dirname(spec);
  const base = path.basename(spec);
  let entries: string[];
  try {
    entries = fs.readdirSync(parent).filter((e) => fs.existsSync(path.join(parent, e, CONFIG_FILE)));
  } catch {
    return '';
  }
  const near = entries.find((e) => e.startsWith(base) || base.startsWith(e)) ?? nearest(base, entries);
  return near ? ` (did you mean ${path.join(parent, near)}?)` : '';
}

/**
 * Downloads the needed files of one commit into the standard cache layout (blobs/, snapshots/{commit}/, refs/), the
 * way @huggingface/hub's snapshotDownload does, but only the files routelab reads.
 */
async function downloadSnapshot(
  repo: string,
  revision: string,
  repoCache: string,
  cacheDir: string,
  opts: ResolveModelOptions,
): Promise<string> {
  const hub = await import('@huggingface/hub'); // loaded only when a download is due
  const access = hubAccess(opts);
  const info = await hub.modelInfo({ ...access, name: repo, revision, additionalFields: ['sha', 'filePaths'] });
  const files = info.filePaths.filter(isWantedHubFile);
  if (!files.includes(CONFIG_FILE)) throw new Error(`the repository has no ${CONFIG_FILE} at revision ${revision}`);
  // config.json last: its presence in the snapshot is what marks the download complete.
  const ordered = [...files.filter((f) => f !== CONFIG_FILE), CONFIG_FILE];
  for (const file of ordered) {
    await hub.downloadFileToCacheDir({ ...access, repo: { type: 'model', name: repo }, path: file, revision: info.sha, cacheDir });
  }
  writeRef(repoCache, revision, info.sha);
  return path.join(repoCache, 'snapshots', info.sha);
}

export { defaultHubCacheDir };
