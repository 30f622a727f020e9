import { parseArgs, type ParseArgsConfig } from 'node:util';
import { RoutelabError } from '../errors.js';
import { nearest } from '../suggest.js';

type Options = NonNullable<ParseArgsConfig['options']>;

/** One CLI subcommand: its flags (node:util parseArgs), usage text and what it does. */
export interface Command<O extends Options = Options> {
  readonly name: string;
  readonly summary: string;
  readonly usage: string;
  readonly options: O;
  readonly allowPositionals?: boolean;
  run(values: Record<string, unknown>, positionals: string[]): Promise<void>;
}

export function parseCommandArgs(command: Command, argv: string[]): { values: Record<string, unknown>; positionals: string[] } {
  try {
    const { values, positionals } = parseArgs({ args: argv, options: command.options, allowPositionals: command.allowPositionals ?? false, strict: true });
    return { values, positionals };
  } catch (e) {
    const message = (e as Error).message;
    const unknown = /^Unknown option '(-{1,2}[^'=]+)/.exec(message)?.[1];
    const help = `(routelab ${command.name} --help lists every option)`;
    if (unknown !== undefined) {
      const flags = Object.keys(command.options).map((o) => `--${o}`);
      const near = nearest(unknown, flags);
      throw new RoutelabError(`routelab ${command.name}`, `unknown option ${unknown}; ${near ? `did you mean ${near}?` : `options: ${flags.join(', ')}`} ${help}`);
    }
    // parseArgs errors name the flag already; say where to look for the valid ones.
    throw new RoutelabError(`routelab ${command.name}`, `${message} ${help}`);
  }
}

export function requireString(values: Record<string, unknown>, flag: string): string {
  const v = values[flag];
  if (typeof v !== 'string' || v === '') throw new RoutelabError(`--${flag}`, 'is required');
  return v;
}

/** A numeric flag: absent → fallback; otherwise a finite number (an integer when `integer`). */
export function numberFlag(values: Record<string, unknown>, flag: string, fallback: number, integer = false): number {
  const v = values[flag];
  if (v === undefined) return fallback;
  const n = Number(v);
  if (typeof v !== 'string' || v.trim() === '' || !Number.isFinite(n) || (integer && !Number.isInteger(n))) {
    throw new RoutelabError(`--${flag}`, `expected ${integer ? 'an integer' : 'a number'}, got ${JSON.stringify(v)}`);
  }
  return n;
}
