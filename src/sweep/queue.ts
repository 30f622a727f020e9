/**
 * Scale-out (issue: scale-out): a sweep's cells spread over any number of worker processes through a Redis work
 * queue, with BullMQ as the engine — its job ids deduplicate cells, its stalled-job check re-queues the cell of a
 * worker that died, its retries with back-off absorb transient failures, and a cell that keeps failing is marked
 * failed while the rest of the grid goes on.
 *
 * The coordinator (`sweep --queue URL`) plans exactly as a local sweep does — same cells, keys, documents and null
 * model, calibrated before anything is queued — and queues the cells that are not complete in the run directory.
 * A worker rebuilds the same plan from the job (model, data, spec, run directory: on storage every worker reaches)
 * and keeps it, model loaded, while its cells last. It evaluates a cell only if the cell key it computes equals the
 * planned one (so a worker whose model files differ refuses it and another worker takes it), and writes the cell
 * exactly as a local sweep would; the coordinator takes a cell as done only when its files in the run directory are
 * complete (identity.ts), never on a worker's word.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import type { ConnectionOptions, Queue as QueueType } from 'bullmq';
import { RoutelabError } from '../errors.js';
import type { EvalSummary } from '../eval/evaluate.js';
import { type CellIdentity, staleness } from './identity.js';
import type { Progress } from './progress.js';
import { type Cell, readCellSummary, statusResult } from './cells.js';
import type { SweepSpec } from './spec.js';
import type { SweepStatus } from './status.js';

/** One queue for every routelab sweep on a Redis database; a job names its run directory. */
export const QUEUE_NAME = 'routelab-cells';
/** Times one cell is tried (a throw, or a worker that stalled twice) before it is failed. */
export const ATTEMPTS = 3;

export interface CellJob {
  readonly runDir: string;
  readonly model: string;
  readonly dataDir: string;
  readonly backend: string | null;
  readonly spec: SweepSpec;
  readonly name: string;
  readonly key: string;
  readonly identity: CellIdentity;
  readonly router: string;
  readonly task: string;
  /** A matched control's kind and the cell it was derived from (its summary is the randk control's input). */
  readonly control: string | null;
  readonly source: { readonly key: string; readonly file: string } | null;
  /** Workers that refused it (their model or data differ from the plan), and how often it was refused. */
  readonly refusedBy?: readonly string[];
  readonly bounces?: number;
}

/** What a job carries of the sweep it belongs to (paths as the coordinator sees them: shared storage). */
export interface QueuedRun {
  readonly runDir: string;
  readonly model: string;
  readonly dataDir: string;
  readonly backend?: string;
  readonly spec: SweepSpec;
}

/** What a worker reports while a cell runs (job progress) and when it is done (return value). */
export interface CellProgress {
  readonly worker: string;
  readonly done: number;
  readonly total: number;
}

/** `redis://[user:password@]host[:port][/db]` (or rediss:// for TLS) as BullMQ connection options. */
export function redisConnection(url: string): ConnectionOptions {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new RoutelabError('--queue', `expected redis://HOST[:PORT][/DB], got ${JSON.stringify(url)}`);
  }
  if (u.protocol !== 'redis:' && u.protocol !== 'rediss:') throw new RoutelabError('--queue', `expected a redis:// or rediss:// URL, got ${JSON.stringify(url)}`);
  const db = u.pathname.replace(/^\//, '');
  if (db !== '' && !/^\d+$/.test(db)) throw new RoutelabError('--queue', `the database in ${url} must be a number, got ${JSON.stringify(db)}`);
  return {
    host: u.hostname || '127.0.0.1',
    port: u.port ? Number(u.port) : 6379,
    db: db ? Number(db) : 0,
    ...(u.username ? { username: decodeURIComponent(u.username) } : {}),
    ...(u.password ? { password: decodeURIComponent(u.password) } : {}),
    ...(u.protocol === 'rediss:' ? { tls: {} } : {}),
    // Commands wait through a Redis restart instead of failing (BullMQ requires this for workers).
    maxRetriesPerRequest: null,
  };
}

/** A cell's job id: its key, qualified by its run directory (two run directories of one design are two jobs). */
export function jobIdOf(runDir: string, cell: Pick<Cell, 'name' | 'key'>): string {
  const run = createHash('sha256').update(resolve(runDir)).digest('hex').slice(0, 12);
  return `${cell.name}-${cell.key.slice(0, 24)}-${run}`;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The coordinator's side: queue cells, follow them to the end, and say which failed. */
export class CellQueue {
  private readonly queue: QueueType;
  private redisDown = false;

  private constructor(queue: QueueType, private readonly url: string, private readonly progress: Progress) {
    this.queue = queue;
  }

  static async open(url: string, progress: Progress): Promise<CellQueue> {
    const { Queue } = await import('bullmq');
    const queue = new Queue(QUEUE_NAME, { connection: redisConnection(url) });
    const cells = new CellQueue(queue, url, progress);
    // Commands wait while Redis is away (maxRetriesPerRequest: null); the connection's errors say so, once.
    queue.on('error', (e) => cells.down(e));
    return cells;
  }

  private down(e: Error): void {
    if (!this.redisDown) this.progress.log(`sweep: Redis at ${this.url} is unreachable (${e.message}); waiting for it`);
    this.redisDown = true;
  }

  close(): Promise<void> {
    return this.queue.close();
  }

  private jobData(options: QueuedRun, cell: Cell, source: Cell | undefined): CellJob {
    // Paths travel absolute (workers may start elsewhere on the shared storage); a hub id stays an id.
    const { spec } = options;
    const absolute = <T extends string | null>(p: T): T => (p && existsSync(p) ? resolve(p) : p) as T;
    return {
      runDir: resolve(options.runDir), model: absolute(options.model), dataDir: resolve(options.dataDir),
      backend: options.backend ?? null,
      spec: { ...spec, nullModel: absolute(spec.nullModel), calibration: { ...spec.calibration, data: absolute(spec.calibration.data) },
        tasks: spec.tasks.map((t) => (t.data ? { ...t, data: absolute(t.data) } : t)) },
      name: cell.name, key: cell.key, identity: cell.identity, router: cell.router.spec, task: cell.data.task.name,
      control: cell.control ?? null, source: source ? { key: source.key, file: source.file } : null,
    };
  }

  /** Queue `cells` (adopting those already queued or running) and wait until each is complete or failed. */
  async run(options: QueuedRun, cells: readonly Cell[], sourceOf: ReadonlyMap<Cell, Cell>, status: SweepStatus, summaries: Map<Cell, EvalSummary>): Promise<Map<Cell, string>> {
    const failed = new Map<Cell, string>();
    const pending = new Map<string, Cell>();
    let adopted = 0;
    for (const cell of cells) {
      const id = jobIdOf(options.runDir, cell);
      const existing = await this.retrying(() => this.queue.getJob(id));
      const state = existing ? await this.retrying(() => existing.getState()) : null;
      if (existing && (state === 'completed' || state === 'failed')) await this.retrying(() => existing.remove()); // its cell is stale again: redo it
      else if (existing) adopted++;
      if (!existing || state === 'completed' || state === 'failed') await this.add(options, cell, sourceOf.get(cell));
      pending.set(id, cell);
      status.update(cell.name, 'queued');
    }
    if (adopted) this.progress.log(`sweep: adopted ${adopted} cell${adopted === 1 ? '' : 's'} already queued or running on ${this.url}`);
    if (cells.length) this.progress.log(`sweep: ${cells.length} cell${cells.length === 1 ? '' : 's'} on the queue ${this.url} (${QUEUE_NAME}); start workers with: routelab worker --queue ${this.url}`);
    const started = performance.now();
    let lastLine = 0;
    while (pending.size) {
      for (const [id, cell] of pending) {
        const job = await this.retrying(() => this.queue.getJob(id));
        if (!job) {
          // Redis lost it (restarted without persistence): queue it again; a worker that finds it complete skips it.
          if (staleness(cell.file, cell.traceFile, cell.identity) !== null) {
            await this.add(options, cell, sourceOf.get(cell));
            this.progress.log(`sweep: ${cell.name}: its job was gone from Redis; queued again`);
          } else this.finishCell(cell, summaries, status, pending, id);
          continue;
        }
        const state = await this.retrying(() => job.getState());
        const worker = (job.progress as Partial<CellProgress> | undefined)?.worker ?? null;
        if (state === 'active') status.update(cell.name, 'running', { worker });
        else if (state === 'waiting' || state === 'delayed' || state === 'prioritized') status.update(cell.name, 'queued', { worker: null });
        if (state !== 'completed' && state !== 'failed') continue;
        const stale = staleness(cell.file, cell.traceFile, cell.identity);
        if (state === 'completed' && stale === null) {
          this.finishCell(cell, summaries, status, pending, id, worker);
        } else {
          const error = state === 'failed' ? job.failedReason : `the worker reported it done, but ${stale}`;
          failed.set(cell, error);
          pending.delete(id);
          status.update(cell.name, 'failed', { error });
          this.progress.log(`sweep: ${cell.name} failed after ${job.attemptsMade} attempt${job.attemptsMade === 1 ? '' : 's'}: ${error}`);
        }
      }
      if (performance.now() - lastLine > 10_000 && pending.size) {
        lastLine = performance.now();
        const counts = { done: 0, running: 0, queued: 0, failed: 0 };
        for (const c of status.cells) if (c.state in counts) counts[c.state as keyof typeof counts]++;
        const finished = cells.length - pending.size;
        const eta = finished ? ((performance.now() - started) / finished) * pending.size / 1000 : NaN;
        const workers = status.workers.map((w) => `${w.id} ${w.cells_done} done`).join(', ');
        this.progress.log(`sweep: ${counts.done} done, ${counts.running} running, ${counts.queued} queued, ${counts.failed} failed` +
          `${Number.isFinite(eta) ? `; ETA ${Math.round(eta)} s` : ''}${workers ? `; workers: ${workers}` : ''}`);
      }
      if (pending.size) await sleep(250);
    }
    return failed;
  }

  private finishCell(cell: Cell, summaries: Map<Cell, EvalSummary>, status: SweepStatus, pending: Map<string, Cell>, id: string, worker: string | null = null): void {
    const summary = readCellSummary(cell);
    summaries.set(cell, summary);
    pending.delete(id);
    status.update(cell.name, 'done', { worker, result: statusResult(cell, summary) });
    this.progress.log(`sweep: ${cell.name} done${worker ? ` by ${worker}` : ''}: ${cell.data.task.primaryMetric} ${summary.metrics[cell.data.task.primaryMetric]?.toFixed(4)}`);
  }

  private add(options: QueuedRun, cell: Cell, source: Cell | undefined): Promise<unknown> {
    return this.retrying(() => this.queue.add('cell', this.jobData(options, cell, source), {
      jobId: jobIdOf(options.runDir, cell),
      attempts: ATTEMPTS,
      backoff: { type: 'exponential', delay: 2000 },
      removeOnComplete: { age: 7 * 24 * 3600 },
      removeOnFail: { age: 7 * 24 * 3600 },
    }));
  }

  /** A Redis call that waits out a restart (said once) instead of failing the sweep. */
  private async retrying<T>(call: () => Promise<T>): Promise<T> {
    for (;;) {
      try {
        const value = await call();
        if (this.redisDown) this.progress.log(`sweep: Redis at ${this.url} is back`);
        this.redisDown = false;
        return value;
      } catch (e) {
        this.down(e as Error);
        await sleep(1000);
      }
    }
  }
}

