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

/** How many malformed rows were skipped, and the first few with file:line and reason (every one is in the summary). */
export function badRowsReport(rows: readonly { readonly source: string; readonly reason: string }[], shown = 5): string {
  const lines = rows.slice(0, shown).map((r) => `  ${r.source}: ${r.reason}`);
  const more = rows.length > shown ? [`  … and ${rows.length - shown} more (all listed in the summary's data.bad_rows)`] : [];
  return [`skipped ${rows.length} malformed row${rows.length === 1 ? '' : 's'}:`, ...lines, ...more].join('\n');
}
