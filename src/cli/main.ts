#!/usr/bin/env node
import { RoutelabError } from '../errors.js';
import { VERSION } from '../version.js';
import { parseCommandArgs, type Command } from './command.js';
import { benchCommand } from './bench.js';
import { calibrateCommand } from './calibrate.js';
import { evalCommand } from './eval.js';
import { forwardCommand } from './forward.js';
import { generateCommand } from './generate.js';
import { inspectCommand } from './inspect.js';
import { profileCommand } from './profile.js';
import { reportCommand } from './report.js';
import { sweepCommand } from './sweep.js';
import { traceCommand } from './trace.js';

const COMMANDS: readonly Command[] = [
  forwardCommand, generateCommand, inspectCommand, evalCommand, traceCommand, calibrateCommand, sweepCommand, reportCommand,
  profileCommand, benchCommand,
];

function help(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length));
  return [
    `routelab ${VERSION} — routing research for Mixture-of-Experts language models (OLMoE)`,
    '',
    'Usage: routelab <command> [options]   (routelab <command> --help for its options)',
    '',
    ...COMMANDS.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
  ].join('\n');
}

// Library code (the hub client's download progress) logs through console.debug; stdout carries results.
console.debug = console.error;

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    console.log(help());
    return name === undefined ? 2 : 0;
  }
  if (name === '--version' || name === '-V') {
    console.log(VERSION);
    return 0;
  }
  const command = COMMANDS.find((c) => c.name === name);
  if (!command) {
    console.error(`routelab: unknown command ${JSON.stringify(name)}; commands: ${COMMANDS.map((c) => c.name).join(', ')}`);
    return 2;
  }
  if (rest.includes('--help') || rest.includes('-h')) {
    console.log(command.usage);
    return 0;
  }
  const { values, positionals } = parseCommandArgs(command, rest);
  await command.run(values, positionals);
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => { process.exitCode = code; },
  (error: unknown) => {
    if (error instanceof RoutelabError) {
      console.error(`routelab: ${error.message}`);
      process.exitCode = 2;
    } else {
      console.error(error);
      process.exitCode = 1;
    }
  },
);
