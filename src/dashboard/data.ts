/**
 * What the dashboard shows of a run directory while its sweep runs: the live status file as the sweep wrote it, and
 * the report's sweep charts drawn from the summaries of the cells finished so far. The report proper needs
 * results.json and manifest.json, written only when the sweep ends, so the charts' run data is assembled here from
 * the status file's grid (configuration and task order) and the finished cells' summaries.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { compile, type TopLevelSpec } from 'vega-lite';
import type { EvalSummary } from '../eval/evaluate.js';
import { cellRecords } from '../report/charts-common.js';
import { sweepCharts } from '../report/charts-sweep.js';
import type { ConfigInfo, ReportCell, RunData } from '../report/types.js';
import { resultRow } from '../sweep/results.js';
import { STATUS_FILE, type CellState, type SweepStatusFile } from '../sweep/status.js';

/** The report's charts that need neither a baseline nor traces, so they read the same with any subset of cells done. */
const LIVE_CHARTS = ['sweep-ppl-vs-experts', 'sweep-accuracy-vs-experts', 'sweep-speed-vs-experts', 'sweep-loss'] as const;

export interface DashboardChart {
  readonly name: string;
  readonly title: string;
  readonly caption: string;
  /** Compiled to Vega here, so the page needs only the Vega runtime (as report.html). */
  readonly vega: Record<string, unknown>;
}

/** The body of /api/status. */
export interface DashboardState {
  readonly runDir: string;
  /** Server time of this answer: the page times running cells against it, not against its own clock. */
  readonly now: string;
  /** Null while no sweep has written a status file here. */
  readonly status: SweepStatusFile | null;
  /** Why the status file could not be read, when it could not. */
  readonly error: string | null;
  /** Changes exactly when the set of charted cells does: the page redraws its charts only then. */
  readonly chartsKey: string;
  readonly charts: readonly DashboardChart[];
}

interface CachedSummary {
  readonly mtimeMs: number;
  readonly summary: Omit<EvalSummary, 'documents'>;
}

/** Reads one run directory on every call, re-reading a cell summary only when its file changed. */
export class DashboardData {
  private readonly summaries = new Map<string, CachedSummary>();
  private charts: { key: string; charts: DashboardChart[] } = { key: '', charts: [] };

  constructor(readonly runDir: string) {}

  state(): DashboardState {
    const now = new Date().toISOString();
    const { statuses, errors } = readStatusFiles(this.runDir);
    const error = errors.length ? errors.join('; ') : null;
    if (!statuses.length) return { runDir: this.runDir, now, status: null, error, chartsKey: '', charts: [] };
    const status = mergeStatuses(statuses);
    const { key, charts } = this.chartsOf(status);
    return { runDir: this.runDir, now, status, error, chartsKey: key, charts };
  }

  private chartsOf(status: SweepStatusFile): { key: string; charts: DashboardChart[] } {
    const cells = status.cells.filter((c) => c.state === 'done').flatMap((c) => {
      const summary = this.summary(c.name);
      return summary ? [{ name: c.name, summary }] : [];
    });
    const key = cells.map((c) => `${c.name}@${this.summaries.get(c.name)!.mtimeMs}`).join('\n');
    if (key !== this.charts.key) this.charts = { key, charts: cells.length ? liveCharts(status, cells.map((c) => c.summary)) : [] };
    return this.charts;
  }

  /** A finished cell's summary RUN/{name}.json, or null while it is not there (a queue worker may not have sent it yet). */
  private summary(name: string): Omit<EvalSummary, 'documents'> | null {
    const file = join(this.runDir, `${name}.json`);
    let mtimeMs: number;
    try {
      mtimeMs = statSync(file).mtimeMs;
    } catch {
      return null;
    }
    const cached = this.summaries.get(name);
    if (cached?.mtimeMs === mtimeMs) return cached.summary;
    try {
      // The per-document scores are the bulk of a summary and no chart needs them.
      const { documents: _, ...summary } = JSON.parse(readFileSync(file, 'utf8')) as EvalSummary;
      this.summaries.set(name, { mtimeMs, summary });
      return summary;
    } catch {
      return null;
    }
  }
}

/** `sweep-status.shard-I-of-N.json`: what each shard of a `sweep --shard I/N` run keeps. */
const SHARD_STATUS = /^sweep-status\.shard-(\d+)-of-(\d+)\.json$/;

/**
 * The run's status files — the sweep's own and every shard's, shards in index order — and what was wrong with any
 * that could not be read. Sweeps replace these files atomically, so a read never sees half of one.
 */
export function readStatusFiles(runDir: string): { statuses: SweepStatusFile[]; errors: string[] } {
  let names: string[];
  try {
    names = readdirSync(runDir);
  } catch {
    return { statuses: [], errors: [] }; // not created yet: the sweep about to start makes it
  }
  const shards = names.flatMap((n) => {
    const m = SHARD_STATUS.exec(n);
    return m ? [{ name: n, index: Number(m[1]) }] : [];
  }).sort((a, b) => a.index - b.index).map((s) => s.name);
  const statuses: SweepStatusFile[] = [];
  const errors: string[] = [];
  for (const name of [...(names.includes(STATUS_FILE) ? [STATUS_FILE] : []), ...shards]) {
    const file = join(runDir, name);
    try {
      const status = JSON.parse(readFileSync(file, 'utf8')) as SweepStatusFile;
      if (status.format !== 'routelab.sweep-status/1' || !Array.isArray(status.cells) || !Array.isArray(status.workers)) {
        throw new Error('expected "format": "routelab.sweep-status/1" with cells and workers');
      }
      statuses.push(status);
    } catch (e) {
      errors.push(`${file}: ${(e as Error).message}`);
    }
  }
  return { statuses, errors };
}

/** How far a cell has got: where two files list the same cell, the one further along is shown. */
const PROGRESS: Record<CellState, number> = { pending: 0, queued: 1, running: 2, failed: 3, done: 4 };

/**
 * One status of several (a sharded run's shards, and the merging sweep's own once it runs): every cell once, at its
 * furthest state, in the grid's order (the shards' lists taken in turn, as a shard takes every N-th cell); every
 * shard's workers; finished when every file is.
 */
export function mergeStatuses(statuses: readonly SweepStatusFile[]): SweepStatusFile {
  if (statuses.length === 1) return statuses[0];
  const byName = new Map<string, SweepStatusFile['cells'][number]>();
  const longest = Math.max(...statuses.map((s) => s.cells.length));
  for (let i = 0; i < longest; i++) {
    for (const s of statuses) {
      const cell = s.cells[i];
      if (cell === undefined) continue;
      const known = byName.get(cell.name);
      if (known === undefined || PROGRESS[cell.state] > PROGRESS[known.state]) byName.set(cell.name, cell);
    }
  }
  // Insertion order of the first sighting is the order shown.
  const cells = [...byName.values()];
  return {
    format: 'routelab.sweep-status/1',
    mode: statuses.some((s) => s.mode === 'shard') ? 'shard' : statuses[0].mode,
    queue: statuses.find((s) => s.queue !== null)?.queue ?? null,
    updated: statuses.map((s) => s.updated).sort().at(-1)!,
    finished: statuses.every((s) => s.finished),
    cells,
    workers: statuses.flatMap((s) => s.workers),
  };
}

/**
 * The report's charts of the finished cells. Configurations and tasks keep the grid's order (so colours do not
 * shift as cells finish); no configuration is marked the baseline, since only the finished sweep's manifest says
 * which one is.
 */
function liveCharts(status: SweepStatusFile, summaries: readonly Omit<EvalSummary, 'documents'>[]): DashboardChart[] {
  const configs: ConfigInfo[] = [...new Set(status.cells.map((c) => c.config))].map((name) => {
    const router = summaries.find((s) => s.config === name)?.router ?? '';
    return { name, router, routerKind: 'fixed', maxK: null, minK: null, alpha: null, isBaseline: false };
  });
  const cells: ReportCell[] = summaries.map((summary) => ({
    config: summary.config,
    task: summary.task,
    row: resultRow(summary as EvalSummary, `${summary.config}_${summary.task}.json`, null, null),
    summary,
    traceFile: null,
  }));
  const data: RunData = {
    runDir: '', manifest: {}, configs, tasks: [...new Set(status.cells.map((c) => c.task))], cells,
    baseline: null, traces: [], documents: [], moeLayers: [], nullModel: null,
  };
  return sweepCharts(data, cellRecords(data))
    .filter((chart) => (LIVE_CHARTS as readonly string[]).includes(chart.name))
    .map((chart) => {
      // The $schema URL is documentation only; leaving it out keeps the page free of any external URL.
      const { $schema: _, ...vega } = compile(chart.spec as unknown as TopLevelSpec).spec as unknown as Record<string, unknown>;
      return { name: chart.name, title: chart.title, caption: chart.caption, vega };
    });
}
