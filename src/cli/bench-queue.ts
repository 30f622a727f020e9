import { spawn, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { RoutelabError } from '../errors.js';
import { startRedisServer } from '../redis-server.js';
import { summarise } from '../experiments/stats.js';
import { BUNDLED_MODEL, printTable, round } from './bench-common.js';
import { numberFlag } from './command.js';

export const BENCH_QUEUE_USAGE = `Usage: routelab bench queue [--queue URL] [--model DIR] [--data-dir DIR] [--limit N] [--rounds 2] [--workers 1,2]

  A queued sweep (sweep --mode quick --queue) run with 1 worker and with 2 workers of one thread each, interleaved
  over --rounds rounds (the order alternates), on the same grid, documents and null model: wall time of the grid, the
  ratio, and the queue's overhead per cell — pickup (a worker free → its next cell started, from BullMQ's job times)
  and record (a worker finished → the coordinator recorded the cell). Without --queue it starts its own redis-server
  on 127.0.0.1 at a free port. Defaults: the bundled model and data. A table, then one JSON object as the last line.`;

/** Its flags beyond those other bench subcommands share (--model, --rounds). */
export const BENCH_QUEUE_OPTIONS = { queue: { type: 'string' }, 'data-dir': { type: 'string' }, limit: { type: 'string' }, workers: { type: 'string' } } as const;

const CLI = fileURLToPath(new URL('./main.js', import.meta.url));
const PACKAGE = fileURLToPath(new URL('../../../', import.meta.url));

interface RunTimes {
  readonly workers: number;
  readonly wallSeconds: number;
  readonly gridSeconds: number;
  readonly cells: number;
  readonly pickupMs: number[];
  readonly recordMs: number[];
}

/** One queued quick sweep with `workers` one-thread workers; the null model is copied in so none is calibrated. */
async function timedRun(workers: number, o: { url: string; model: string; dataDir: string; limit: number | null; nullFile: string | null }): Promise<RunTimes & { runDir: string }> {
  const runDir = mkdtempSync(join(tmpdir(), 'routelab-bench-queue-'));
  if (o.nullFile) copyFileSync(o.nullFile, join(runDir, 'null.json'));
  const children = Array.from({ length: workers }, () =>
    spawn(process.execPath, [CLI, 'worker', '--queue', o.url, '--threads', '1', '--quiet'], { stdio: 'ignore' }));
  try {
    const args = [CLI, 'sweep', '--mode', 'quick', '--model', o.model, '--data-dir', o.dataDir, '--out', runDir, '--queue', o.url, '--quiet',
      ...(o.limit ? ['--limit', String(o.limit)] : [])];
    const start = performance.now();
    const r = spawnSync(process.execPath, args, { encoding: 'utf8' });
    const wallSeconds = (performance.now() - start) / 1000;
    if (r.status !== 0) throw new RoutelabError('bench queue', `the queued sweep failed: ${r.stderr.trim()}`);
    // BullMQ's own job times (created, processed, finished, by which worker) and the coordinator's record times.
    const { Queue } = await import('bullmq');
    const { QUEUE_NAME, redisConnection } = await import('../sweep/queue.js');
    const queue = new Queue(QUEUE_NAME, { connection: redisConnection(o.url) });
    const jobs = (await queue.getJobs(['completed'])).filter((j) => j.data.runDir === resolve(runDir));
    await queue.close();
    const status = JSON.parse(readFileSync(join(runDir, 'sweep-status.json'), 'utf8')) as { cells: { name: string; finished: string | null }[] };
    const recorded = new Map(status.cells.map((c) => [c.name, c.finished ? Date.parse(c.finished) : NaN]));
    const pickupMs: number[] = [];
    const recordMs: number[] = [];
    const byWorker = new Map<string, typeof jobs>();
    for (const j of jobs) {
      const w = (j.returnvalue as { worker?: string } | null)?.worker ?? '?';
      byWorker.set(w, [...(byWorker.get(w) ?? []), j]);
      recordMs.push(recorded.get(j.data.name)! - j.finishedOn!);
    }
    for (const list of byWorker.values()) {
      list.sort((a, b) => a.processedOn! - b.processedOn!);
      for (let i = 0; i < list.length; i++) {
        const free = Math.max(list[i].timestamp, i > 0 ? list[i - 1].finishedOn! : list[i].timestamp);
        pickupMs.push(list[i].processedOn! - free);
      }
    }
    const gridSeconds = (Math.max(...jobs.map((j) => j.finishedOn!)) - Math.min(...jobs.map((j) => j.processedOn!))) / 1000;
    return { runDir, workers, wallSeconds, gridSeconds, cells: jobs.length, pickupMs, recordMs };
  } finally {
    for (const c of children) c.kill('SIGKILL');
  }
}

export async function runBenchQueue(values: Record<string, unknown>): Promise<void> {
  const rounds = numberFlag(values, 'rounds', 2, true);
  if (rounds < 1) throw new RoutelabError('--rounds', `expected a positive integer, got ${rounds}`);
  const counts = ((values.workers as string | undefined) ?? '1,2').split(',').map((w) => Number(w));
  if (counts.some((w) => !Number.isInteger(w) || w < 1)) throw new RoutelabError('--workers', `expected positive integers like 1,2, got ${JSON.stringify(values.workers)}`);
  const limit = values.limit === undefined ? null : numberFlag(values, 'limit', 0, true);
  const model = (values.model as string | undefined) ?? BUNDLED_MODEL;
  const dataDir = (values['data-dir'] as string | undefined) ?? join(PACKAGE, 'data');
  const own = values.queue === undefined ? await startRedisServer() : null;
  const url = (values.queue as string | undefined) ?? own!.url;
  const log = (line: string) => console.error(line);
  const runs: RunTimes[] = [];
  let nullFile: string | null = null;
  try {
    log(`bench: queued quick sweeps on ${url}; ${rounds} round(s) × workers ${counts.join(', ')} (1 thread each)`);
    for (let round_ = 0; round_ < rounds; round_++) {
      for (const w of round_ % 2 === 0 ? counts : [...counts].reverse()) {
        const run = await timedRun(w, { url, model, dataDir, limit, nullFile });
        if (nullFile === null && existsSync(join(run.runDir, 'null.json'))) {
          nullFile = join(mkdtempSync(join(tmpdir(), 'routelab-bench-null-')), 'null.json');
          copyFileSync(join(run.runDir, 'null.json'), nullFile);
        } else rmSync(run.runDir, { recursive: true, force: true });
        log(`bench: round ${round_ + 1}, ${w} worker(s): ${run.cells} cells, grid ${run.gridSeconds.toFixed(1)} s, wall ${run.wallSeconds.toFixed(1)} s`);
        runs.push(run);
      }
    }
  } finally {
    own?.process.kill('SIGKILL');
  }
  // The first round's first run also calibrated the null model: its wall time is not compared, its grid time is.
  const per = counts.map((w) => {
    const mine = runs.filter((r) => r.workers === w);
    return {
      workers: w,
      grid_s: round(summarise(mine.map((r) => r.gridSeconds)).p50, 2),
      wall_s: round(summarise(mine.map((r) => r.wallSeconds)).p50, 2),
      cells: mine[0].cells,
      pickup_ms_p50: round(summarise(mine.flatMap((r) => r.pickupMs)).p50, 1),
      record_ms_p50: round(summarise(mine.flatMap((r) => r.recordMs)).p50, 1),
    };
  });
  const base = per[0];
  printTable([
    ['workers', 'cells', 'grid s (median)', 'speed-up vs first', 'sweep wall s (median)', 'pickup ms (median)', 'record ms (median)'],
    ...per.map((p) => [String(p.workers), String(p.cells), p.grid_s.toFixed(2), (base.grid_s / p.grid_s).toFixed(2), p.wall_s.toFixed(2), p.pickup_ms_p50.toFixed(1), p.record_ms_p50.toFixed(1)]),
  ]);
  console.log(JSON.stringify({ benchmark: 'queue', queue: url, rounds, limit, model, results: per }));
}
