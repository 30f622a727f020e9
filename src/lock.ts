/**
 * One writer per run directory: `.routelab.lock` holds the writer's host, pid, command and start time, created
 * exclusively. A second sweep or report on the same directory is refused with who holds it; a lock whose process is
 * gone (same host, pid not running) is stale and taken over with a word.
 */
import { closeSync, openSync, readdirSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { RoutelabError } from './errors.js';

export const LOCK_FILE = '.routelab.lock';

interface LockHolder {
  readonly host: string;
  readonly pid: number;
  readonly command: string;
  readonly started: string;
}

export interface RunLock {
  release(): void;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Shard locks (`sweep --shard I/N`): shards of one run hold their own, and exclude the run's main lock. */
export const shardLockFile = (index: number, count: number) => `.routelab.shard-${index}-of-${count}.lock`;
const isShardLock = (name: string) => /^\.routelab\.shard-\d+-of-\d+\.lock$/.test(name);

function readHolder(file: string): LockHolder | null {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as LockHolder;
  } catch {
    return null; // unreadable or half-written: treated as held unless it is ours to judge
  }
}

const isStale = (holder: LockHolder | null) => holder !== null && holder.host === hostname() && !alive(holder.pid);
const describeHolder = (h: LockHolder | null) => (h ? `routelab ${h.command} (pid ${h.pid} on ${h.host}, since ${h.started})` : 'another routelab process');

/**
 * Take the run directory's lock for `command`, or throw naming its holder. `log` hears of a stale lock removed. The
 * main lock and the shard locks exclude each other; shards of one run (`shard`) run side by side.
 */
export function lockRunDirectory(dir: string, command: string, log: (line: string) => void = () => {}, shard?: { index: number; count: number }): RunLock {
  const file = join(dir, shard ? shardLockFile(shard.index, shard.count) : LOCK_FILE);
  const me: LockHolder = { host: hostname(), pid: process.pid, command, started: new Date().toISOString() };
  const refuse = (holder: LockHolder | null, held: string) => {
    throw new RoutelabError(dir, `is being written by ${describeHolder(holder)}; one run directory has one writer at a time: wait for it to finish, ` +
      `or remove ${held} if that process is gone`);
  };
  // The locks this one excludes: a shard, the main lock; the main lock, every shard's.
  for (const name of readdirSync(dir).filter((f) => (shard ? f === LOCK_FILE : isShardLock(f)))) {
    const other = join(dir, name);
    const holder = readHolder(other);
    if (!isStale(holder)) refuse(holder, other);
    log(`${command}: removed the stale lock of routelab ${holder!.command} (pid ${holder!.pid}, no longer running) on ${dir}`);
    rmSync(other, { force: true });
  }
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(file, 'wx');
      try {
        writeSync(fd, JSON.stringify(me) + '\n');
      } catch (e) {
        rmSync(file, { force: true }); // a lock without its holder would look held by "another routelab process"
        (e as NodeJS.ErrnoException).path ??= file;
        throw e;
      } finally {
        closeSync(fd);
      }
      let held = true;
      const release = () => {
        if (!held) return;
        held = false;
        rmSync(file, { force: true });
        process.removeListener('exit', release);
      };
      process.on('exit', release); // a signal's process.exit still removes it
      return { release };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    const holder = readHolder(file);
    if (!isStale(holder)) refuse(holder, file);
    log(`${command}: removed the stale lock of routelab ${holder!.command} (pid ${holder!.pid}, no longer running) on ${dir}`);
    rmSync(file, { force: true });
  }
  throw new RoutelabError(dir, `could not take ${file}`);
}
