/**
 * Malformed records: with policy 'skip' each is recorded as a BadRow and reading goes on; with 'error' the first one
 * stops the run with a RoutelabError naming `file:line` (or `file#row`).
 */
import { RoutelabError } from '../errors.js';
import type { BadRow, BadRowPolicy } from '../tasks/task.js';

/** What a field check throws: the reason only; the reader that caught it knows the source. */
export class RowError extends Error {
  constructor(readonly reason: string) {
    super(reason);
    this.name = 'RowError';
  }
}

export class BadRows {
  readonly rows: BadRow[] = [];

  constructor(readonly policy: BadRowPolicy) {}

  report(source: string, reason: string): void {
    if (this.policy === 'error') throw new RoutelabError(source, `bad row: ${reason}`);
    this.rows.push({ source, reason });
  }

  /** Runs `parse`; a RowError it throws becomes a bad row at `source` (undefined is returned when skipped). */
  guard<T>(source: string, parse: () => T): T | undefined {
    try {
      return parse();
    } catch (e) {
      if (!(e instanceof RowError)) throw e;
      this.report(source, e.reason);
      return undefined;
    }
  }
}
