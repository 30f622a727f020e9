import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { cpuLimits, kernelThreads } from '../backends/cpus.js';
import { RoutelabError } from '../errors.js';
import { BUNDLED_MODEL, printTable, round } from './bench-common.js';
import { numberFlag } from './command.js';

/**
 * `routelab bench contention`: does the native thread pool keep its speed when other processes want the cores?
 * The same workload — greedy generation on the bundled model, a prefill then single-token decoding — alone, then
 * beside N busy processes (each a `node` spinning on one core), at the default thread count and at 1 thread. Every
 * measurement is a fresh process; rounds interleave every load level and thread count, so all the figures of one run
 * come from the same stretch of time on the same machine. Prints a table and one JSON object as the last line.
 */
export const BENCH_CONTENTION_USAGE = `Usage: routelab bench contention [--model DIR] [--prompt-tokens 128] [--new-tokens 32] [--threads N]
                                 [--busy 0,C,2C] [--seconds 3] [--rounds 2]

  The same greedy generation (a --prompt-tokens prefill, then --new-tokens tokens) on the native backend, alone and
  beside N busy processes (a node process spinning each; default N = 0, C and 2C, C = the CPUs this process may
  use), at the default thread count (--threads, else ROUTELAB_THREADS, else C) and at 1 thread. Each measurement is
  a fresh process that repeats the workload for at least --seconds; --rounds interleaved rounds are summed.
  Prints tokens/s (prompt + new tokens over the wall time), prefill and decode tokens/s, and the ratios contended /
  alone and default threads / 1 thread; a JSON object as the last line.
  --model DIR          default models/tiny-olmoe-gutenberg (the bundled model)`;

export const BENCH_CONTENTION_OPTIONS = {
  model: { type: 'string' },
  'prompt-tokens': { type: 'string' },
  'new-tokens': { type: 'string' },
  busy: { type: 'string' },
  seconds: { type: 'string' },
  rounds: { type: 'string' },
} as const;

const WORKER = fileURLToPath(new URL('./bench-contention-worker.js', import.meta.url));

interface Measurement { backend: string; threads: number; runs: number; seconds: number; tokens_per_s: number; prefill_tokens_per_s: number; decode_tokens_per_s: number | null }

export interface ContentionRow {
  busy: number;
  threads: number;
  runs: number;
  tokens_per_s: number;
  prefill_tokens_per_s: number;
  decode_tokens_per_s: number | null;
  /** tokens/s here ÷ tokens/s with no busy process, same thread count (null without a busy = 0 level). */
  ratio_vs_idle: number | null;
  /** tokens/s here ÷ tokens/s at 1 thread, same load. */
  ratio_vs_1_thread: number | null;
}

/** `--busy 0,C,2C`: counts of busy processes; C is the usable CPU count. */
export function parseBusyLevels(raw: string, cpus: number): number[] {
  const levels = raw.split(',').map((s) => s.trim()).filter(Boolean).map((s) => {
    const m = /^(\d*)\s*(C?)$/i.exec(s);
    const n = m === null ? NaN : m[2] ? (m[1] === '' ? 1 : Number(m[1])) * cpus : Number(m[1]);
    if (!Number.isInteger(n) || n < 0 || n > 256) throw new RoutelabError('--busy', `expected comma-separated counts of busy processes (an integer, C = ${cpus} usable CPUs, or kC), got ${JSON.stringify(raw)}`);
    return n;
  });
  if (levels.length === 0) throw new RoutelabError('--busy', 'expected at least one level');
  return [...new Set(levels)];
}

function startBusy(n: number): ChildProcess[] {
  return Array.from({ length: n }, () => spawn(process.execPath, ['-e', 'for (;;) {}'], { stdio: 'ignore' }));
}

function stopBusy(children: ChildProcess[]): void {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
}

function measure(request: { model: string; threads: number; promptTokens: number; newTokens: number; seconds: number }): Measurement {
  const r = spawnSync(process.execPath, [WORKER, JSON.stringify(request)], {
    encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: (request.seconds * 30 + 300) * 1000,
    // The thread count comes from the request alone.
    env: { ...process.env, ROUTELAB_THREADS: '' },
  });
  if (r.status !== 0) throw new RoutelabError('bench contention', `the workload process failed (exit ${r.status ?? r.signal}): ${r.stderr.trim().split('\n').slice(-3).join(' | ')}`);
  const lines = r.stdout.trim().split('\n');
  return JSON.parse(lines[lines.length - 1]) as Measurement;
}

function loadAverage(): number | null {
  try {
    return Number(readFileSync('/proc/loadavg', 'utf8').split(' ')[0]);
  } catch {
    return null;
  }
}

export async function runBenchContention(values: Record<string, unknown>): Promise<void> {
  const positive = (flag: string, fallback: number, integer = true) => {
    const v = numberFlag(values, flag, fallback, integer);
    if (!(v > 0)) throw new RoutelabError(`--${flag}`, `expected a positive ${integer ? 'integer' : 'number'}, got ${v}`);
    return v;
  };
  const promptTokens = positive('prompt-tokens', 128);
  const newTokens = positive('new-tokens', 32);
  const seconds = positive('seconds', 3, false);
  const rounds = positive('rounds', 2);
  const limits = cpuLimits();
  const cpus = limits.usable;
  const busyLevels = parseBusyLevels((values.busy as string | undefined) ?? '0,C,2C', cpus);
  const defaultThreads = kernelThreads(values.threads as string | undefined);
  const threadCounts = [...new Set([defaultThreads, 1])];
  const model = (values.model as string | undefined) ?? BUNDLED_MODEL;
  const log = (line: string) => console.error(line);
  const loadBefore = loadAverage();
  log(`bench contention: ${cpus} usable CPU(s) (affinity ${limits.affinity}, cgroup quota ${limits.quota ?? 'none'}), ` +
    `default ${defaultThreads} thread(s); busy processes ${busyLevels.join(', ')}; ${rounds} round(s) of ≥ ${seconds} s; load average ${loadBefore ?? '?'}`);

  const sums = new Map<string, { runs: number; tokens: number; seconds: number; prefillTokens: number; prefillSeconds: number; decodeTokens: number; decodeSeconds: number }>();
  let backend = 'native';
  const busy: ChildProcess[] = [];
  const kill = () => stopBusy(busy);
  process.on('exit', kill);
  try {
    for (let round = 0; round < rounds; round++) {
      for (const level of busyLevels) {
        busy.push(...startBusy(level));
        if (level > 0) await new Promise((r) => setTimeout(r, 300));
        // Alternate which thread count goes first, so neither always meets the load just started.
        const order = round % 2 === 0 ? threadCounts : [...threadCounts].reverse();
        for (const threads of order) {
          const m = measure({ model, threads, promptTokens, newTokens, seconds });
          backend = m.backend;
          const key = `${level}/${threads}`;
          const s = sums.get(key) ?? { runs: 0, tokens: 0, seconds: 0, prefillTokens: 0, prefillSeconds: 0, decodeTokens: 0, decodeSeconds: 0 };
          s.runs += m.runs;
          s.tokens += m.tokens_per_s * m.seconds;
          s.seconds += m.seconds;
          s.prefillTokens += m.runs * promptTokens;
          s.prefillSeconds += (m.runs * promptTokens) / m.prefill_tokens_per_s;
          if (m.decode_tokens_per_s !== null) {
            s.decodeTokens += m.runs * (newTokens - 1);
            s.decodeSeconds += (m.runs * (newTokens - 1)) / m.decode_tokens_per_s;
          }
          sums.set(key, s);
          log(`bench contention: round ${round + 1}/${rounds}, ${level} busy, ${threads} thread(s): ${m.tokens_per_s.toFixed(1)} tokens/s over ${m.runs} run(s)`);
        }
        stopBusy(busy.splice(0));
      }
    }
  } finally {
    kill();
    process.off('exit', kill);
  }

  const rate = (level: number, threads: number) => {
    const s = sums.get(`${level}/${threads}`);
    return s ? s.tokens / s.seconds : null;
  };
  const results: ContentionRow[] = [];
  for (const level of busyLevels) {
    for (const threads of threadCounts) {
      const s = sums.get(`${level}/${threads}`)!;
      const tps = s.tokens / s.seconds;
      const idle = busyLevels.includes(0) ? rate(0, threads) : null;
      const one = rate(level, 1);
      results.push({
        busy: level, threads, runs: s.runs, tokens_per_s: round(tps), prefill_tokens_per_s: round(s.prefillTokens / s.prefillSeconds),
        decode_tokens_per_s: s.decodeSeconds > 0 ? round(s.decodeTokens / s.decodeSeconds) : null,
        ratio_vs_idle: idle ? round(tps / idle, 3) : null, ratio_vs_1_thread: one ? round(tps / one, 3) : null,
      });
    }
  }
  const cell = (x: number | null, digits: number) => (x === null ? '-' : x.toFixed(digits));
  printTable([
    ['busy processes', 'threads', 'tokens/s', 'prefill tokens/s', 'decode tokens/s', 'vs alone', 'vs 1 thread'],
    ...results.map((r) => [String(r.busy), String(r.threads), r.tokens_per_s.toFixed(1), r.prefill_tokens_per_s.toFixed(1), cell(r.decode_tokens_per_s, 1), cell(r.ratio_vs_idle, 2), cell(r.ratio_vs_1_thread, 2)]),
  ]);
  // The acceptance check of the pool: with as many busy processes as CPUs, the default thread count keeps ≥ 0.35 of
  // its speed alone and never falls below 1 thread under the same load.
  const atCpus = results.find((r) => r.busy === cpus && r.threads === defaultThreads);
  const acceptance = atCpus && atCpus.ratio_vs_idle !== null && atCpus.ratio_vs_1_thread !== null
    ? { busy: cpus, threads: defaultThreads, ratio_vs_idle: atCpus.ratio_vs_idle, ratio_vs_1_thread: atCpus.ratio_vs_1_thread, pass: atCpus.ratio_vs_idle >= 0.35 && atCpus.ratio_vs_1_thread >= 1 }
    : null;
  console.log(JSON.stringify({
    bench: 'contention', model, backend, cpus: limits, default_threads: defaultThreads, prompt_tokens: promptTokens,
    new_tokens: newTokens, seconds, rounds, busy_levels: busyLevels, load_average_before: loadBefore, results, acceptance,
  }));
}
