/**
 * Typed access to one field of a record, throwing RowError with a reason that names the field. Values come from JSON,
 * Arrow (Int64 as bigint), Parquet or TSV (everything a string), so integers and booleans accept each encoding.
 */
import { RowError } from './bad-rows.js';

export type DataRecord = Readonly<Record<string, unknown>>;

/** The value of the first of `names` present in the record (aliases for the same column in different releases). */
function pick(record: DataRecord, names: readonly string[]): [string, unknown] {
  for (const name of names) {
    if (Object.hasOwn(record, name) && record[name] !== undefined && record[name] !== null) return [name, record[name]];
  }
  const present = names.find((n) => Object.hasOwn(record, n));
  if (present !== undefined) throw new RowError(`field "${present}" is null`);
  throw new RowError(`missing field ${names.map((n) => `"${n}"`).join(' or ')}`);
}

export function hasField(record: DataRecord, name: string): boolean {
  return Object.hasOwn(record, name) && record[name] !== undefined && record[name] !== null;
}

/** A string field; empty (or whitespace-only) text is rejected unless `allowEmpty`. */
export function textField(record: DataRecord, names: string | readonly string[], allowEmpty = false): string {
  const [name, value] = pick(record, typeof names === 'string' ? [names] : names);
  if (typeof value !== 'string') throw new RowError(`field "${name}": expected a string, got ${describe(value)}`);
  if (!allowEmpty && value.trim() === '') throw new RowError(`field "${name}": empty text`);
  return value;
}

/** An array of non-empty strings of exactly `count` entries. */
export function textListField(record: DataRecord, name: string, count: number): string[] {
  const [, value] = pick(record, [name]);
  const list = Array.isArray(value) ? value : isArrowVector(value) ? [...value] : undefined;
  if (!list) throw new RowError(`field "${name}": expected a list of ${count} strings, got ${describe(value)}`);
  if (list.length !== count) throw new RowError(`field "${name}": expected ${count} entries, got ${list.length}`);
  list.forEach((v, i) => {
    if (typeof v !== 'string') throw new RowError(`field "${name}"[${i}]: expected a string, got ${describe(v)}`);
    if (v.trim() === '') throw new RowError(`field "${name}"[${i}]: empty text`);
  });
  return list as string[];
}

/**
 * A class label in 0..classes−1, given as a number, bigint, numeric string or (when `labelNames` is given) one of the
 * names, e.g. GLUE TSV's `entailment`/`not_entailment`.
 */
export function labelField(
  record: DataRecord,
  names: string | readonly string[],
  classes: number,
  labelNames: readonly string[] = [],
): number {
  const [name, value] = pick(record, typeof names === 'string' ? [names] : names);
  let label: number | undefined;
  if (typeof value === 'number') label = value;
  else if (typeof value === 'bigint') label = Number(value);
  else if (typeof value === 'string') {
    const byName = labelNames.indexOf(value.trim());
    label = byName >= 0 ? byName : /^-?\d+$/.test(value.trim()) ? Number(value.trim()) : undefined;
  }
  const expected = `expected an integer 0…${classes - 1}${labelNames.length ? ` or ${labelNames.join('/')}` : ''}`;
  if (label === undefined || !Number.isInteger(label) || label < 0 || label >= classes) {
    throw new RowError(`field "${name}": ${expected}, got ${describe(value)}`);
  }
  return label;
}

/** A boolean given as true/false, 0/1 (number, bigint or string) or "true"/"false". */
export function booleanField(record: DataRecord, names: string | readonly string[]): boolean {
  const [name, value] = pick(record, typeof names === 'string' ? [names] : names);
  if (typeof value === 'boolean') return value;
  if (value === 0 || value === 1 || value === 0n || value === 1n) return Number(value) === 1;
  if (typeof value === 'string' && ['true', 'false', '0', '1'].includes(value.trim().toLowerCase())) {
    return ['true', '1'].includes(value.trim().toLowerCase());
  }
  throw new RowError(`field "${name}": expected a boolean, got ${describe(value)}`);
}

function isArrowVector(v: unknown): v is Iterable<unknown> & { length: number } {
  return typeof v === 'object' && v !== null && Symbol.iterator in v && typeof (v as { length?: unknown }).length === 'number';
}

export function describe(value: unknown): string {
  if (value === null) return 'null';
  if (value === undefined) return 'nothing';
  if (typeof value === 'string') return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value);
  if (typeof value === 'bigint') return `${value}`;
  if (Array.isArray(value)) return `a list of ${value.length}`;
  if (typeof value === 'object') return 'an object';
  return `${typeof value} ${String(value)}`;
}

/** A record and where it came from. */
export interface SourcedRecord {
  readonly record: DataRecord;
  /** `file:line` (line formats) or `file#row` (0-based row: arrow, parquet, JSON arrays). */
  readonly source: string;
}
