import { RoutelabError } from '../errors.js';

/**
 * Typed reads of config.json fields, each with the default of the family's Hugging Face config class (saved configs
 * may omit fields that equal it). A missing or wrong value is one RoutelabError naming the file and field.
 */
export class ConfigFields {
  readonly raw: Readonly<Record<string, unknown>>;

  constructor(
    raw: unknown,
    readonly file: string,
  ) {
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new RoutelabError(file, 'expected a JSON object');
    this.raw = raw as Record<string, unknown>;
  }

  error(field: string, message: string): RoutelabError {
    return new RoutelabError(`${this.file}: ${field}`, message);
  }

  /** The field's value, or the fallback when it is absent or null. */
  private value(field: string, fallback: unknown): unknown {
    const v = this.raw[field];
    return v === undefined || v === null ? fallback : v;
  }

  /** A positive integer (≥ min). */
  int(field: string, fallback?: number, min = 1): number {
    const v = this.value(field, fallback);
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min) {
      throw this.error(field, `expected ${min === 1 ? 'a positive integer' : `an integer ≥ ${min}`}, got ${JSON.stringify(this.raw[field])}`);
    }
    return v;
  }

  /** A positive finite number. */
  num(field: string, fallback?: number): number {
    const v = this.value(field, fallback);
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) throw this.error(field, `expected a positive number, got ${JSON.stringify(this.raw[field])}`);
    return v;
  }

  bool(field: string, fallback: boolean): boolean {
    const v = this.value(field, fallback);
    if (typeof v !== 'boolean') throw this.error(field, `expected true or false, got ${JSON.stringify(v)}`);
    return v;
  }

  /** A positive number or null (absent = fallback). */
  optionalNum(field: string, fallback: number | null = null): number | null {
    const v = this.raw[field] === undefined ? fallback : this.raw[field];
    if (v === null) return null;
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) throw this.error(field, `expected null or a positive number, got ${JSON.stringify(v)}`);
    return v;
  }

  /** A positive integer or null (absent = fallback). */
  optionalInt(field: string, fallback: number | null = null): number | null {
    const v = this.optionalNum(field, fallback);
    if (v !== null && !Number.isInteger(v)) throw this.error(field, `expected null or a positive integer, got ${v}`);
    return v;
  }

  /** One of the listed strings. */
  choice<T extends string>(field: string, allowed: readonly T[], fallback: T): T {
    const v = this.value(field, fallback);
    if (!allowed.includes(v as T)) throw this.error(field, `expected one of ${allowed.map((a) => JSON.stringify(a)).join(', ')}, got ${JSON.stringify(v)}`);
    return v as T;
  }

  /** A list of non-negative integers. */
  intList(field: string): number[] {
    const v = this.value(field, []);
    if (!Array.isArray(v) || !v.every((x) => Number.isInteger(x) && x >= 0)) throw this.error(field, `expected a list of layer indices, got ${JSON.stringify(v)}`);
    return v as number[];
  }

  /** A token id (the first of a list, which is the one generation stops on by default), below the vocabulary size. */
  tokenId(field: string, vocabSize: number, fallback: number | null = null): number | null {
    const v = this.value(field, fallback);
    if (v === null) return null;
    const id = Array.isArray(v) ? v[0] : v;
    if (typeof id !== 'number' || !Number.isInteger(id) || id < 0) throw this.error(field, `expected a token id, got ${JSON.stringify(v)}`);
    if (id >= vocabSize) throw this.error(field, `${id} is not below vocab_size ${vocabSize}`);
    return id;
  }

  /** Refuse a field whose value routelab does not implement (absent or null counts as the fallback). */
  only(field: string, allowed: readonly unknown[], why: string): void {
    const v = this.value(field, allowed[0]);
    if (!allowed.includes(v)) throw this.error(field, `${why}; got ${JSON.stringify(v)}`);
  }
}
