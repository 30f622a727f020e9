/**
 * One writer per run directory: `.routelab.lock` holds the writer's host, pid, command and start time, created
 * exclusively. A second sweep or report on the same directory is refused with who holds it; a lock whose process is
 * gone (same host, pid not running) is stale and taken over with a word.
 */
import { closeSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
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

/** Take the run directory's lock for `command`, or throw naming its holder. `log` hears of a stale lock removed. */
export function lockRunDirectory(dir: string, command: string, log: (line: string) => void = () => {}): RunLock {
  const file = join(dir, LOCK_FILE);
  const me: LockHolder = { host: hostname(), pid: process.pid, command, started: new Date().toISOString() };
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
    let holder: LockHolder | null = null;
    try {
      holder = JSON.parse(readFileSync(file, 'utf8')) as LockHolder;
    } catch {
      holder = null; // unreadable or half-written: treated as held, below, unless it is ours to judge
    }
    const stale = holder !== null && holder.host === me.host && !alive(holder.pid);
    if (!stale) {
      const who = holder ? `routelab ${holder.command} (pid ${holder.pid} on ${holder.host}, since ${holder.started})` : 'another routelab process';
      throw new RoutelabError(dir, `is being written by ${who}; one run directory has one writer at a time: wait for it to finish, ` +
        `or remove ${file} if that process is gone`);
    }
    log(`${command}: removed the stale lock of routelab ${holder!.command} (pid ${holder!.pid}, no longer running) on ${dir}`);
    rmSync(file, { force: true });
  }
  throw new RoutelabError(dir, `could not take ${file}`);
}
