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
  /** Lines that were not valid UTF-8 (kept, decoded with U+FFFD): how many, and the first few. */
  private invalidLines = 0;
  private readonly invalidFirst: string[] = [];

  constructor(readonly policy: BadRowPolicy) {}

  /** Text that is not UTF-8 is decoded with replacement characters and said; under 'error' it stops the run. */
  invalidUtf8(source: string): void {
    if (this.policy === 'error') throw new RoutelabError(source, 'not valid UTF-8 (with --on-bad-row skip it is decoded with U+FFFD replacement characters and reported)');
    if (this.invalidLines++ < 5) this.invalidFirst.push(source);
  }

  /** Warnings about the data that did not drop any row. */
  get warnings(): string[] {
    if (this.invalidLines === 0) return [];
    return [`${this.invalidFirst[0]}: not valid UTF-8; ${this.invalidLines} line${this.invalidLines === 1 ? '' : 's'} in all ` +
      `(${this.invalidFirst.join(', ')}${this.invalidLines > 5 ? ', …' : ''}) decoded with U+FFFD replacement characters`];
  }

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
