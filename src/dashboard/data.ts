/**
 * What the dashboard shows of a run directory while its sweep runs: the live status file as the sweep wrote it, and
 * the report's sweep charts drawn from the summaries of the cells finished so far. The report proper needs
 * results.json and manifest.json, written only when the sweep ends, so the charts' run data is assembled here from
 * the status file's grid (configuration and task order) and the finished cells' summaries.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { compile, type TopLevelSpec } from 'vega-lite';
import type { EvalSummary } from '../eval/evaluate.js';
import { cellRecords } from '../report/charts-common.js';
import { sweepCharts } from '../report/charts-sweep.js';
import type { ConfigInfo, ReportCell, RunData } from '../report/types.js';
import { resultRow } from '../sweep/results.js';
import { STATUS_FILE, type SweepStatusFile } from '../sweep/status.js';

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
    const file = join(this.runDir, STATUS_FILE);
    if (!existsSync(file)) return { runDir: this.runDir, now, status: null, error: null, chartsKey: '', charts: [] };
    let status: SweepStatusFile;
    try {
      // Sweeps replace the file atomically, so a read never sees half of it.
      status = JSON.parse(readFileSync(file, 'utf8')) as SweepStatusFile;
      if (status.format !== 'routelab.sweep-status/1' || !Array.isArray(status.cells)) throw new Error(`expected "format": "routelab.sweep-status/1"`);
    } catch (e) {
      return { runDir: this.runDir, now, status: null, error: `${file}: ${(e as Error).message}`, chartsKey: '', charts: [] };
    }
    const { key, charts } = this.chartsOf(status);
    return { runDir: this.runDir, now, status, error: null, chartsKey: key, charts };
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
