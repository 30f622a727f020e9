/**
 * Datasets named by Hugging Face id (`nyu-mll/glue`, `Salesforce/wikitext@<rev>`): found in the hub cache
 * (`datasets--{org}--{name}/snapshots/{commit}/`), else downloaded there with @huggingface/hub — only the files of
 * the wanted split — unless HF_HUB_OFFLINE is set.
 */
import * as path from 'node:path';
import { RoutelabError } from '../errors.js';
import {
  cachedSnapshot,
  defaultHubCacheDir,
  describeFailure,
  hubAccess,
  offlineByEnvironment,
  parseRepoId,
  repoCacheDir,
  writeRef,
  type HubRepoId,
} from '../hub.js';
import { chooseSplitFiles, locateInDirectory, type LocatedFiles, type SplitQuery } from './locate.js';

export interface HubDatasetOptions {
  /** Hub cache root; default $HF_HUB_CACHE, else ($HF_HOME or ~/.cache/huggingface)/hub. */
  readonly cacheDir?: string;
  /** Default: true unless HF_HUB_OFFLINE is set to 1/true/yes/on. */
  readonly allowDownload?: boolean;
  /** Hub endpoint; default $HF_ENDPOINT, else https://huggingface.co. */
  readonly hubUrl?: string;
  /** Replaces the global fetch for hub requests (proxies, tests). */
  readonly fetch?: typeof fetch;
}

/** The split's files for a dataset id: from the cache, else downloaded. `spec` is `org/name` or `org/name@revision`. */
export async function resolveHubDataset(
  spec: string,
  query: SplitQuery,
  opts: HubDatasetOptions = {},
): Promise<LocatedFiles> {
  const id = parseRepoId(spec);
  if (!id) throw new RoutelabError(spec, 'not a Hugging Face dataset id (org/name[@revision])');
  const revision = id.revision ?? 'main';
  const cacheDir = opts.cacheDir ?? defaultHubCacheDir();
  const repoCache = repoCacheDir(cacheDir, 'dataset', id);

  let located: LocatedFiles | undefined;
  cachedSnapshot(repoCache, revision, (dir) => {
    try {
      located = locateInDirectory(dir, query);
      return true;
    } catch (e) {
      if (e instanceof RoutelabError) return false;
      throw e;
    }
  });
  if (located) return located;

  const notCached = `not in cache (${path.join(cacheDir, path.basename(repoCache))}) and no network`;
  if (!(opts.allowDownload ?? !offlineByEnvironment())) {
    const why = opts.allowDownload === false ? 'downloads are disabled' : `HF_HUB_OFFLINE=${process.env.HF_HUB_OFFLINE}`;
    throw new RoutelabError(spec, `${notCached}: ${why}`);
  }
  let snapshot: string;
  try {
    snapshot = await downloadSplit(id, revision, query, repoCache, cacheDir, opts);
  } catch (e) {
    if (e instanceof RoutelabError) throw e;
    throw new RoutelabError(spec, `${notCached}: the download failed: ${describeFailure(e)}`);
  }
  return locateInDirectory(snapshot, query);
}

/** Downloads the split's files of one commit into the standard cache layout; returns the snapshot directory. */
async function downloadSplit(
  id: HubRepoId,
  revision: string,
  query: SplitQuery,
  repoCache: string,
  cacheDir: string,
  opts: HubDatasetOptions,
): Promise<string> {
  const hub = await import('@huggingface/hub'); // loaded only when a download is due
  const access = hubAccess(opts);
  const repo = { type: 'dataset' as const, name: id.repo };
  const info = await hub.datasetInfo({ ...access, name: id.repo, revision, additionalFields: ['sha'] });
  const all: string[] = [];
  for await (const entry of hub.listFiles({ ...access, repo, revision: info.sha, recursive: true })) {
    if (entry.type === 'file') all.push(entry.path);
  }
  const chosen = chooseSplitFiles(all, query, `${id.repo}@${info.sha}`);
  const folders = new Set(chosen.files.map((f) => path.posix.dirname(f)));
  // save_to_disk folders need their state.json for the file order.
  const extras = all.filter((f) => folders.has(path.posix.dirname(f)) && ['state.json', 'dataset_info.json'].includes(path.posix.basename(f)));
  for (const file of [...extras, ...chosen.files]) {
    await hub.downloadFileToCacheDir({ ...access, repo, path: file, revision: info.sha, cacheDir });
  }
  writeRef(repoCache, revision, info.sha);
  return path.join(repoCache, 'snapshots', info.sha);
}
