#!/usr/bin/env node
import { accessSync, constants, existsSync } from 'node:fs';
import { dirname } from 'node:path';
import { RoutelabError } from '../errors.js';
import { VERSION } from '../version.js';
import { nearest } from '../suggest.js';
import { parseCommandArgs, type Command } from './command.js';

/**
 * The commands, each loaded only when it runs: a command's module pulls in what it needs (the model, the report's
 * Vega, Arrow, Parquet), so `--version` and one command's `--help` never load the others'.
 */
const COMMANDS: readonly { readonly name: string; load(): Promise<Command> }[] = [
  { name: 'forward', load: async () => (await import('./forward.js')).forwardCommand },
  { name: 'generate', load: async () => (await import('./generate.js')).generateCommand },
  { name: 'inspect', load: async () => (await import('./inspect.js')).inspectCommand },
  { name: 'eval', load: async () => (await import('./eval.js')).evalCommand },
  { name: 'trace', load: async () => (await import('./trace.js')).traceCommand },
  { name: 'calibrate', load: async () => (await import('./calibrate.js')).calibrateCommand },
  { name: 'sweep', load: async () => (await import('./sweep.js')).sweepCommand },
  { name: 'worker', load: async () => (await import('./worker.js')).workerCommand },
  { name: 'report', load: async () => (await import('./report.js')).reportCommand },
  { name: 'dashboard', load: async () => (await import('./dashboard.js')).dashboardCommand },
  { name: 'analyze', load: async () => (await import('./analyze.js')).analyzeCommand },
  { name: 'compare', load: async () => (await import('./compare.js')).compareCommand },
  { name: 'list', load: async () => (await import('./list.js')).listCommand },
  { name: 'profile', load: async () => (await import('./profile.js')).profileCommand },
  { name: 'bench', load: async () => (await import('./bench.js')).benchCommand },
];

async function help(): Promise<string> {
  const commands = await Promise.all(COMMANDS.map((c) => c.load()));
  const width = Math.max(...commands.map((c) => c.name.length));
  return [
    `routelab ${VERSION} — routing research for Mixture-of-Experts language models (OLMoE)`,
    '',
    'Usage: routelab <command> [options]   (routelab <command> --help for its options)',
    '',
    ...commands.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
  ].join('\n');
}

// Library code (the hub client's download progress) logs through console.debug; stdout carries results.
console.debug = console.error;

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    console.log(await help());
    return name === undefined ? 2 : 0;
  }
  if (name === '--version' || name === '-V') {
    console.log(VERSION);
    return 0;
  }
  const entry = COMMANDS.find((c) => c.name === name);
  if (!entry) {
    const near = nearest(name, COMMANDS.map((c) => c.name));
    console.error(`routelab: unknown command ${JSON.stringify(name)}; ${near ? `did you mean ${near}? ` : ''}commands: ${COMMANDS.map((c) => c.name).join(', ')}`);
    return 2;
  }
  const command = await entry.load();
  if (rest.includes('--help') || rest.includes('-h')) {
    console.log(command.usage);
    return 0;
  }
  const { values, positionals } = parseCommandArgs(command, rest);
  await command.run(values, positionals);
  return 0;
}

/**
 * Failures of the machine rather than of routelab (a full disk, a read-only mount, permissions, a file where a
 * directory was expected): one line naming the path, exit 2. ROUTELAB_DEBUG=1 prints the stack as well.
 */
const OS_ERRORS: Readonly<Record<string, string>> = {
  ENOSPC: 'no space left on the device',
  EDQUOT: 'disk quota exceeded',
  EROFS: 'the file system is read-only',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  EEXIST: 'already exists, and is not what was expected there',
  ENOTDIR: 'a part of this path is a file, not a directory',
  EISDIR: 'is a directory, not a file',
  EMFILE: 'too many open files in this process (raise the limit: ulimit -n)',
  ENFILE: 'too many open files on the system',
};

/**
 * A recursive mkdir on a read-only (or unwritable) file system reports ENOENT: the real cause is found by asking the
 * nearest existing ancestor whether it may be written.
 */
function mkdirCause(e: NodeJS.ErrnoException): void {
  if (e.code !== 'ENOENT' || e.syscall !== 'mkdir' || !e.path) return;
  let dir = dirname(e.path);
  while (!existsSync(dir) && dirname(dir) !== dir) dir = dirname(dir);
  try {
    accessSync(dir, constants.W_OK);
  } catch (cause) {
    e.code = (cause as NodeJS.ErrnoException).code;
  }
}

function osFailure(error: unknown): string | null {
  const e = error as NodeJS.ErrnoException;
  if (error instanceof Error) mkdirCause(e);
  if (!(error instanceof Error) || typeof e.code !== 'string' || !(e.code in OS_ERRORS)) return null;
  const where = (e as { dest?: string }).dest ?? e.path ?? 'routelab';
  return `${where}: ${OS_ERRORS[e.code]} (${e.code}${e.syscall ? ` in ${e.syscall}` : ''}); nothing half-written was left in place`;
}

main(process.argv.slice(2)).then(
  (code) => { process.exitCode = code; },
  (error: unknown) => {
    const os = osFailure(error);
    if (error instanceof RoutelabError || os !== null) {
      console.error(`routelab: ${os ?? (error as Error).message}`);
      if (process.env.ROUTELAB_DEBUG === '1') console.error((error as Error).stack);
      process.exitCode = 2;
    } else {
      console.error(error);
      process.exitCode = 1;
    }
  },
);
