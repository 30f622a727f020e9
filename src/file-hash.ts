/**
 * SHA-256 of file contents, streamed in 4 MiB reads. Large inputs (a 13.8 GB checkpoint) are hashed once: the
 * digest is cached per real path together with the file's size, mtime and inode, and reused while all three are
 * unchanged. The cache is one small JSON file under $ROUTELAB_CACHE (else $XDG_CACHE_HOME/routelab, else
 * ~/.cache/routelab); when it cannot be written the hash is simply recomputed next time.
 */
import { createHash } from 'node:crypto';
import { closeSync, mkdirSync, openSync, readFileSync, readSync, realpathSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { writeFileAtomic } from './atomic.js';

const CHUNK = 4 << 20;

/** SHA-256 (hex) of a file's bytes. */
export function fileSha256(file: string): string {
  const hash = createHash('sha256');
  const buffer = Buffer.allocUnsafe(CHUNK);
  const fd = openSync(file, 'r');
  try {
    for (let n; (n = readSync(fd, buffer, 0, CHUNK, null)) > 0; ) hash.update(buffer.subarray(0, n));
  } finally {
    closeSync(fd);
  }
  return hash.digest('hex');
}

interface CachedHash {
  readonly size: number;
  readonly mtimeMs: number;
  readonly ino: number;
  readonly sha256: string;
}

export function hashCacheFile(): string {
  const dir = process.env.ROUTELAB_CACHE ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'routelab');
  return join(dir, 'file-hashes.json');
}

function readCache(file: string): Record<string, CachedHash> {
  try {
    const value = JSON.parse(readFileSync(file, 'utf8'));
    return typeof value === 'object' && value !== null ? value : {};
  } catch {
    return {};
  }
}

/** fileSha256, reused from the cache while the file's size, mtime and inode are those it was hashed at. */
export function cachedFileSha256(file: string): string {
  const path = realpathSync(file);
  const { size, mtimeMs, ino } = statSync(path);
  const cacheFile = hashCacheFile();
  const cached = readCache(cacheFile)[path];
  if (cached && cached.size === size && cached.mtimeMs === mtimeMs && cached.ino === ino) return cached.sha256;
  const sha256 = fileSha256(path);
  try {
    mkdirSync(join(cacheFile, '..'), { recursive: true });
    // Re-read just before writing so hashes cached meanwhile by another process are kept.
    writeFileAtomic(cacheFile, JSON.stringify({ ...readCache(cacheFile), [path]: { size, mtimeMs, ino, sha256 } }));
  } catch {
    // A read-only or full cache directory only costs a rehash next time.
  }
  return sha256;
}
