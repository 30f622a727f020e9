import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { RoutelabError } from '../errors.js';
import { summarise } from '../experiments/stats.js';
import { printTable, round } from './bench-common.js';
import { numberFlag } from './command.js';

export const BENCH_STARTUP_USAGE = `Usage: routelab bench startup [--reps 10]

  How long the CLI takes to start: wall time of \`routelab --version\` and \`routelab eval --help\` as fresh Node
  processes (one untimed warm-up each, then --reps timed runs), beside a bare \`node -e 0\`. A table, then one JSON
  object as the last line.`;

const CLI = fileURLToPath(new URL('./main.js', import.meta.url));

/** What is timed: a label and the arguments of a fresh `node` process. */
export const STARTUP_CASES: readonly { readonly label: string; readonly args: readonly string[] }[] = [
  { label: 'node -e 0', args: ['-e', '0'] },
  { label: 'routelab --version', args: [CLI, '--version'] },
  { label: 'routelab eval --help', args: [CLI, 'eval', '--help'] },
];

function timeOnce(args: readonly string[]): number {
  const start = performance.now();
  const r = spawnSync(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8' });
  const ms = performance.now() - start;
  if (r.status !== 0) throw new RoutelabError('bench startup', `node ${args.join(' ')} exited with ${r.status}: ${r.stderr.trim()}`);
  return ms;
}

export async function runBenchStartup(values: Record<string, unknown>): Promise<void> {
  const reps = numberFlag(values, 'reps', 10, true);
  if (reps < 1) throw new RoutelabError('--reps', `expected a positive integer, got ${reps}`);
  const results = STARTUP_CASES.map(({ label, args }) => {
    timeOnce(args); // warm the file-system cache
    const s = summarise(Array.from({ length: reps }, () => timeOnce(args)));
    return { command: label, runs: reps, min_ms: round(s.min, 1), p50_ms: round(s.p50, 1), mean_ms: round(s.mean, 1), max_ms: round(s.max, 1) };
  });
  printTable([
    ['command', 'runs', 'min ms', 'median ms', 'mean ms', 'max ms'],
    ...results.map((r) => [r.command, String(r.runs), r.min_ms.toFixed(1), r.p50_ms.toFixed(1), r.mean_ms.toFixed(1), r.max_ms.toFixed(1)]),
  ]);
  console.log(JSON.stringify({ bench: 'startup', node: process.version, results }));
}
