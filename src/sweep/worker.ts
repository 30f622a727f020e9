/**
 * `routelab worker`: takes sweep cells from the Redis queue (queue.ts), rebuilds each job's plan exactly as the
 * coordinator did and keeps it — model loaded — while its cells last, refuses a cell whose key it computes
 * differently (its model or data differ from the plan: another worker takes it), and writes the cell into the run
 * directory as a local sweep would.
 */
import { hostname } from 'node:os';
import type { Job } from 'bullmq';
import { parseRouterSpec } from '../routers/registry.js';
import { type Cell, statusResult } from './cells.js';
import { type CellIdentity, staleness } from './identity.js';
import type { Progress } from './progress.js';
import { ATTEMPTS, type CellJob, QUEUE_NAME, redisConnection } from './queue.js';
import { evaluateCell, loadSweepInputs, planSweep, type SweepPlan } from './run.js';

/** A cell refused (its model or data differ from the plan) by this many workers, or this often, is failed. */
const MAX_REFUSING_WORKERS = 8;
const MAX_BOUNCES = 30;

export interface WorkerOptions {
  readonly queue: string;
  readonly concurrency: number;
  readonly backend?: string;
  readonly threads?: number;
  /** How long a cell's lock lives without renewal: a worker silent this long is taken for dead and its cell re-queued. */
  readonly lockSeconds: number;
  /** Exit after this long with nothing to do (null: run until stopped). */
  readonly idleExitSeconds: number | null;
  readonly log: (line: string) => void;
}

/** The plan a job belongs to, as a cache key: a worker keeps one plan (one model loaded) while its cells last. */
function planKey(job: CellJob): string {
  return JSON.stringify([job.runDir, job.model, job.dataDir, job.backend, job.spec]);
}

/** The identity fields where this worker's plan and the coordinator's differ, said briefly. */
function mismatch(planned: CellIdentity, mine: CellIdentity | undefined): string {
  if (!mine) return 'this worker does not plan that cell (its data or grid differ)';
  const fields = (Object.keys(planned) as (keyof CellIdentity)[]).filter((k) => JSON.stringify(planned[k]) !== JSON.stringify(mine[k]));
  return fields.map((k) => {
    const show = (v: unknown) => (typeof v === 'string' && /^[0-9a-f]{64}$/.test(v) ? `${v.slice(0, 12)}…` : JSON.stringify(v));
    return `${k === 'model' ? 'model fingerprint' : k === 'data' ? 'data fingerprint' : k}: planned ${show(planned[k])}, this worker ${show(mine[k])}`;
  }).join('; ');
}

/** Take cells from the queue until stopped (or idle for idleExitSeconds); resolves when the worker has closed. */
export async function runWorker(options: WorkerOptions): Promise<{ cells: number }> {
  const { Queue, Worker, DelayedError, UnrecoverableError } = await import('bullmq');
  const id = `${hostname()}:${process.pid}`;
  const quiet: Progress = { log: options.log, startCell() {}, update() {}, endCell() {} };
  let plan: { key: string; plan: Promise<SweepPlan> } | null = null;
  let cellsDone = 0;
  let lastActive = performance.now();
  let running = 0;

  const planFor = (job: CellJob): Promise<SweepPlan> => {
    const key = planKey(job);
    if (plan?.key !== key) {
      options.log(`worker ${id}: loading ${job.model} for ${job.runDir}`);
      const inputs = { spec: job.spec, model: job.model, dataDir: job.dataDir, runDir: job.runDir, backend: options.backend ?? job.backend ?? undefined, threads: options.threads, progress: quiet };
      plan = { key, plan: loadSweepInputs(inputs).then((loaded) => planSweep(inputs, loaded, { calibrate: false })) };
      plan.plan.catch(() => { plan = null; }); // a failed load is retried by the next job, not cached
    }
    return plan.plan;
  };

  const cellOf = (p: SweepPlan, job: CellJob): Cell | undefined => {
    if (job.source === null) return p.cells.find((c) => c.name === job.name);
    const { model } = p.loaded;
    const router = parseRouterSpec(job.router, model.routerDefaults);
    const data = p.data.find((d) => d.task.name === job.task);
    if (!data) return undefined;
    const cell = p.cellOf(router, router.configName(model.architecture.routing), data, job.control === 'randk' ? job.source : undefined);
    return { ...cell, control: job.control ?? undefined };
  };

  const worker = new Worker<CellJob>(QUEUE_NAME, async (job: Job<CellJob>, token?: string) => {
    running++;
    try {
      const p = await planFor(job.data);
      const cell = cellOf(p, job.data);
      if (!cell || cell.key !== job.data.key) {
        // Left for another worker (a delay is not an attempt). A worker that meets the cell again waits longer, so one
        // mismatched worker cannot use up the refusals while the others are busy.
        const why = mismatch(job.data.identity, cell?.identity);
        const refusedBy = [...new Set([...(job.data.refusedBy ?? []), id])];
        const bounces = (job.data.bounces ?? 0) + 1;
        options.log(`worker ${id}: refusing ${job.data.name}: ${why}`);
        if (refusedBy.length >= MAX_REFUSING_WORKERS || bounces >= MAX_BOUNCES) {
          throw new UnrecoverableError(`refused ${bounces} times by ${refusedBy.length} worker${refusedBy.length === 1 ? '' : 's'} (${refusedBy.join(', ')}): ${why}`);
        }
        const again = job.data.refusedBy?.includes(id) === true;
        await job.updateData({ ...job.data, refusedBy, bounces });
        await job.moveToDelayed(Date.now() + (again ? Math.min(30_000, 1000 * 2 ** Math.min(bounces, 5)) : 1000), token);
        throw new DelayedError();
      }
      if (staleness(cell.file, cell.traceFile, cell.identity) === null) {
        options.log(`worker ${id}: ${cell.name} is already complete in ${job.data.runDir}`);
        return { worker: id, skipped: true };
      }
      await job.updateProgress({ worker: id, done: 0, total: 0 });
      options.log(`worker ${id}: ${cell.name} …`);
      let lastReport = 0;
      const summary = await evaluateCell(p, cell, (done, total) => {
        if (performance.now() - lastReport < 1000) return;
        lastReport = performance.now();
        job.updateProgress({ worker: id, done, total }).catch(() => {});
      });
      cellsDone++;
      const result = statusResult(cell, summary);
      options.log(`worker ${id}: ${cell.name} done: ${result.metric} ${result.value.toFixed(4)}, ${(result.tokens / result.seconds).toFixed(0)} tokens/s`);
      return { worker: id, ...result };
    } finally {
      running--;
      lastActive = performance.now();
    }
  }, {
    connection: redisConnection(options.queue),
    concurrency: options.concurrency,
    lockDuration: options.lockSeconds * 1000,
    stalledInterval: Math.max(1000, (options.lockSeconds * 1000) / 2),
    maxStalledCount: ATTEMPTS - 1,
  });
  let lastError = '';
  worker.on('error', (e) => {
    if (e.message !== lastError) options.log(`worker ${id}: ${e.message}`);
    lastError = e.message;
  });
  worker.on('failed', (job, e) => {
    if (job && !(e instanceof DelayedError) && e.name !== 'DelayedError') options.log(`worker ${id}: ${job.data.name} failed: ${e.message}`);
  });
  options.log(`worker ${id}: taking cells from ${options.queue} (${QUEUE_NAME}), concurrency ${options.concurrency}`);

  let stop: () => void = () => {};
  const stopped = new Promise<void>((r) => { stop = r; });
  // Idle means nothing to do here and nothing left in the queue: a cell waiting out a retry's back-off or another
  // worker's refusal is still work, and this worker may be the one that can take it.
  const counts = options.idleExitSeconds === null ? null : new Queue(QUEUE_NAME, { connection: redisConnection(options.queue) });
  counts?.on('error', () => {}); // the worker's own connection reports Redis errors
  let checking = false;
  const idle = counts === null ? null : setInterval(() => {
    if (checking || running > 0 || performance.now() - lastActive < options.idleExitSeconds! * 1000) return;
    checking = true;
    counts.getJobCounts('waiting', 'delayed', 'active', 'prioritized', 'paused').then((c) => {
      if (Object.values(c).every((n) => n === 0)) stop();
      else lastActive = performance.now();
    }, () => {}).finally(() => { checking = false; });
  }, 500);
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => {
    options.log(`worker ${id}: ${signal}: finishing the cell in flight, then stopping`);
    stop();
  });
  await stopped;
  if (idle) clearInterval(idle);
  await counts?.close();
  await worker.close();
  options.log(`worker ${id}: stopped after ${cellsDone} cell${cellsDone === 1 ? '' : 's'}`);
  return { cells: cellsDone };
}
