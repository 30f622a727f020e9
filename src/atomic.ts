import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';

/** A temporary name beside `file` (same directory, so the final rename is atomic on one file system). */
export function tempPathFor(file: string): string {
  return path.join(path.dirname(file), `.${path.basename(file)}.${randomBytes(6).toString('hex')}.tmp`);
}

/**
 * Write `parts` to `file` so that readers see either the old file or the complete new one, never a torn write:
 * the bytes go to a temporary file, are flushed to disk, and the temporary file is renamed over `file`. On any
 * failure the temporary file is removed and `file` is untouched.
 */
export function writeFileAtomic(file: string, ...parts: (string | Uint8Array)[]): void {
  const temp = tempPathFor(file);
  let fd: number;
  try {
    fd = fs.openSync(temp, 'wx');
  } catch (e) {
    (e as NodeJS.ErrnoException).path = file; // the directory refused the temporary file: name the file it was for
    throw e;
  }
  try {
    try {
      for (const part of parts) {
        const bytes = typeof part === 'string' ? Buffer.from(part) : part;
        for (let done = 0; done < bytes.length; ) done += fs.writeSync(fd, bytes, done, bytes.length - done);
      }
      fs.fsyncSync(fd); // the rename must not publish a file whose bytes are still only in the page cache
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(temp, file);
  } catch (e) {
    fs.rmSync(temp, { force: true });
    // A failed write (a full disk) has no path of its own: name the file it was for.
    const error = e as NodeJS.ErrnoException;
    if (error.path === undefined || error.path === temp) error.path = file;
    throw e;
  }
}
