/**
 * The Hugging Face hub cache layout, shared by models and datasets: `{cache}/{models|datasets}--{org}--{name}/` holding
 * `refs/{revision}` (a commit hash), `snapshots/{commit}/…` (the files) and `blobs/`. Nothing here touches the network;
 * downloads live next to their users (model checkpoints, datasets) and go through @huggingface/hub.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

export type HubRepoType = 'model' | 'dataset';

export interface HubRepoId {
  readonly org: string;
  readonly name: string;
  /** `org/name` */
  readonly repo: string;
  /** The `@revision` suffix, when the spec had one. */
  readonly revision?: string;
}

const REPO_ID = /^([A-Za-z0-9][\w.-]*)\/([A-Za-z0-9][\w.-]*)(?:@(.+))?$/;
export const COMMIT_HASH = /^[0-9a-f]{40}$/;

/** Parses `org/name` or `org/name@revision`; undefined when `spec` is not shaped like a repo id. */
export function parseRepoId(spec: string): HubRepoId | undefined {
  const match = REPO_ID.exec(spec);
  if (!match) return undefined;
  const [, org, name] = match as unknown as [string, string, string];
  const revision: string | undefined = match[3];
  return { org, name, repo: `${org}/${name}`, ...(revision !== undefined ? { revision } : {}) };
}

/** $HF_HUB_CACHE, else ($HF_HOME or ~/.cache/huggingface)/hub. */
export function defaultHubCacheDir(): string {
  return (
    process.env.HF_HUB_CACHE ?? path.join(process.env.HF_HOME ?? path.join(os.homedir(), '.cache', 'huggingface'), 'hub')
  );
}

/** HF_HUB_OFFLINE set to 1/true/yes/on. */
export function offlineByEnvironment(): boolean {
  return ['1', 'true', 'yes', 'on'].includes((process.env.HF_HUB_OFFLINE ?? '').toLowerCase());
}

/** `{cacheDir}/{models|datasets}--{org}--{name}` */
export function repoCacheDir(cacheDir: string, type: HubRepoType, id: Pick<HubRepoId, 'org' | 'name'>): string {
  return path.join(cacheDir, `${type}s--${id.org}--${id.name}`);
}

/**
 * The snapshot directory of `revision` (a commit hash, or a branch/tag resolved through `refs/`), when it exists and
 * `isComplete(dir)` accepts it.
 */
export function cachedSnapshot(
  repoCache: string,
  revision: string,
  isComplete: (snapshotDir: string) => boolean,
): string | undefined {
  const refFile = path.join(repoCache, 'refs', revision);
  const commit = COMMIT_HASH.test(revision)
    ? revision
    : fs.existsSync(refFile)
      ? fs.readFileSync(refFile, 'utf8').trim()
      : undefined;
  if (commit === undefined) return undefined;
  const snapshot = path.join(repoCache, 'snapshots', commit);
  return fs.existsSync(snapshot) && isComplete(snapshot) ? snapshot : undefined;
}

/** Records `revision` → `commit` in `refs/`, as the hub's own clients do after a download by branch or tag. */
export function writeRef(repoCache: string, revision: string, commit: string): void {
  if (revision === commit) return;
  const refFile = path.join(repoCache, 'refs', revision);
  fs.mkdirSync(path.dirname(refFile), { recursive: true });
  fs.writeFileSync(refFile, commit);
}

/** Credentials and endpoint for @huggingface/hub calls: $HF_ENDPOINT and $HF_TOKEN unless overridden. */
export function hubAccess(opts: { readonly hubUrl?: string; readonly fetch?: typeof fetch }) {
  return { hubUrl: opts.hubUrl ?? process.env.HF_ENDPOINT, fetch: opts.fetch, accessToken: process.env.HF_TOKEN || undefined };
}

/** Node's fetch reports network failures as "fetch failed" with the useful part in `cause`. */
export function describeFailure(e: unknown): string {
  if (!(e instanceof Error)) return String(e);
  const cause = e.cause instanceof Error ? ` (${e.cause.message})` : '';
  return e.message + cause;
}
