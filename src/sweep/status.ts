/**
 * A sweep's live state, `RUN/sweep-status.json` (format routelab.sweep-status/1): every cell with its state, worker,
 * times and headline metric, and the workers with their throughput. A local sweep and a queue coordinator both keep it
 * current (rewritten atomically whenever a cell changes state), so `routelab dashboard`
 * follows either the same way. It describes progress only; results stay in the cell summaries.
 */
import { join } from 'node:path';
import { writeFileAtomic } from '../atomic.js';

export const STATUS_FILE = 'sweep-status.json';
export const CELL_STATES = ['pending', 'queued', 'running', 'done', 'failed'] as const;
export type CellState = (typeof CELL_STATES)[number];

export interface CellStatus {
  readonly name: string;
  readonly config: string;
  readonly task: string;
  state: CellState;
  worker: string | null;
  started: string | null;
  finished: string | null;
  seconds: number | null;
  /** The task's primary metric, once done. */
  metric: { readonly name: string; readonly value: number } | null;
  avg_experts: number | null;
  error: string | null;
  /** Whether it was complete before this sweep started (resumed, not evaluated). */
  resumed: boolean;
}

export interface WorkerStatus {
  readonly id: string;
  cells_done: number;
  tokens: number;
  seconds: number;
  last_seen: string;
}

export interface SweepStatusFile {
  readonly format: 'routelab.sweep-status/1';
  readonly mode: 'local' | 'queue' | 'shard';
  readonly queue: string | null;
  updated: string;
  finished: boolean;
  readonly cells: CellStatus[];
  readonly workers: WorkerStatus[];
}

export class SweepStatus {
  private readonly status: SweepStatusFile;
  private readonly file: string;

  /** Shards of one run write side by side, each its own file (`sweep-status.shard-I-of-N.json`). */
  constructor(runDir: string, mode: SweepStatusFile['mode'], { queue = null as string | null, shard = null as string | null } = {}) {
    this.file = join(runDir, shard ? STATUS_FILE.replace('.json', `.shard-${shard}.json`) : STATUS_FILE);
    this.status = { format: 'routelab.sweep-status/1', mode, queue, updated: new Date().toISOString(), finished: false, cells: [], workers: [] };
  }

  /** Add cells (the grid, later its controls) in the pending state, unless known. */
  plan(cells: readonly { name: string; config: string; data: { task: { name: string } } }[]): void {
    for (const c of cells) {
      if (this.cell(c.name)) continue;
      this.status.cells.push({ name: c.name, config: c.config, task: c.data.task.name, state: 'pending', worker: null, started: null, finished: null, seconds: null, metric: null, avg_experts: null, error: null, resumed: false });
    }
    this.write();
  }

  private cell(name: string): CellStatus | undefined {
    return this.status.cells.find((c) => c.name === name);
  }

  /** A cell moves to `state`; `result` when it is done, `error` when it failed. */
  update(name: string, state: CellState, details: { worker?: string | null; error?: string | null; resumed?: boolean;
    result?: { metric: string; value: number; avgExperts: number; tokens: number; seconds: number } } = {}): void {
    const c = this.cell(name);
    if (!c) return;
    // A queue coordinator reports every poll; the file changes only when the cell does.
    const unchanged = c.state === state && (details.worker === undefined || details.worker === c.worker) &&
      details.error === undefined && details.result === undefined && details.resumed === undefined;
    if (unchanged) return;
    const now = new Date().toISOString();
    c.state = state;
    if (details.worker !== undefined) c.worker = details.worker;
    if (state === 'running') {
      c.started = now;
      c.error = null;
    }
    if (state === 'done' || state === 'failed') c.finished = now;
    if (details.error !== undefined) c.error = details.error;
    if (details.resumed) c.resumed = true;
    const r = details.result;
    if (r) {
      c.metric = { name: r.metric, value: r.value };
      c.avg_experts = r.avgExperts;
      c.seconds = r.seconds;
      if (c.worker && !c.resumed) {
        const w = this.worker(c.worker);
        w.cells_done++;
        w.tokens += r.tokens;
        w.seconds += r.seconds;
      }
    }
    this.write();
  }

  private worker(id: string): WorkerStatus {
    let w = this.status.workers.find((x) => x.id === id);
    if (!w) {
      w = { id, cells_done: 0, tokens: 0, seconds: 0, last_seen: new Date().toISOString() };
      this.status.workers.push(w);
    }
    w.last_seen = new Date().toISOString();
    return w;
  }

  finish(): void {
    this.status.finished = true;
    this.write();
  }

  get cells(): readonly CellStatus[] {
    return this.status.cells;
  }

  get workers(): readonly WorkerStatus[] {
    return this.status.workers;
  }

  private write(): void {
    this.status.updated = new Date().toISOString();
    writeFileAtomic(this.file, JSON.stringify(this.status, null, 1) + '\n');
  }
}
