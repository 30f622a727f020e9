/**
 * A sweep's results: one row per (configuration × task) cell with every metric, the paired-bootstrap significance
 * of each configuration against the top-k baseline, and the tables written as CSV, JSON and Parquet.
 */
import { parquetWriteBuffer } from 'hyparquet-writer';
import { writeFileAtomic } from '../atomic.js';
import type { EvalSummary } from '../eval/evaluate.js';
import { pairedBootstrap, type BootstrapInterval } from '../experiments/stats.js';
import { getTask } from '../tasks/registry.js';
import type { DocScores } from '../tasks/task.js';

/** Metrics compared against the baseline when a task reports them: perplexities and accuracies. */
export const COMPARED_METRICS = ['word_perplexity', 'perplexity', 'acc', 'acc_norm'] as const;

/**
 * Perplexities are also compared on the log scale: Δ ln(perplexity) is Δ nats per word (word_perplexity) or per
 * scored continuation (perplexity), readable where a perplexity ratio of millions is not.
 */
export const LOG_COMPARED = { word_perplexity: 'log_word_perplexity', perplexity: 'log_perplexity' } as const;

export interface Significance {
  readonly baseline: string;
  readonly resamples: number;
  readonly level: number;
  readonly seed: number;
  /** Per metric: Δ = configuration − baseline on the same documents, with its bootstrap interval. */
  readonly metrics: Record<string, BootstrapInterval>;
}

function docScoresOf(summary: EvalSummary): DocScores[] {
  const { scores } = summary.documents;
  const keys = Object.keys(scores);
  return summary.documents.index.map((_, i) => Object.fromEntries(keys.map((k) => [k, scores[k][i]])));
}

/**
 * Paired bootstrap of `summary` against `baseline` (same task, same documents): resampled documents are scored by
 * the task's own aggregate, so each interval is of exactly the metric reported (e.g. word perplexity as a ratio of
 * sums), not of a per-document average.
 */
export function compareToBaseline(summary: EvalSummary, baseline: EvalSummary, resamples: number, seed: number): Significance | null {
  if (summary.task !== baseline.task || summary.data.fingerprint !== baseline.data.fingerprint) return null;
  const task = getTask(summary.task);
  const mine = docScoresOf(summary);
  const theirs = docScoresOf(baseline);
  if (mine.length === 0) return null;
  const metrics: Record<string, BootstrapInterval> = {};
  for (const metric of COMPARED_METRICS) {
    if (!(metric in summary.metrics)) continue;
    const statistic = (docs: DocScores[], transform = (v: number) => v) => (indices: Int32Array) => transform(task.aggregate(Array.from(indices, (i) => docs[i]))[metric]);
    metrics[metric] = pairedBootstrap(mine.length, statistic(mine), statistic(theirs), { resamples, seed });
    if (metric in LOG_COMPARED) {
      const log = LOG_COMPARED[metric as keyof typeof LOG_COMPARED];
      metrics[log] = pairedBootstrap(mine.length, statistic(mine, Math.log), statistic(theirs, Math.log), { resamples, seed });
    }
  }
  return { baseline: baseline.config, resamples, level: 0.95, seed, metrics };
}

export type ResultRow = Record<string, string | number | boolean | null>;

/** One flat row of a cell: identity, task metrics, routing metrics, speed, significance. */
export function resultRow(summary: EvalSummary, file: string, avgTaskAccuracy: number | null, significance: Significance | null): ResultRow {
  const row: ResultRow = {
    config: summary.config,
    router: summary.router,
    task: summary.task,
    num_docs: summary.data.num_docs,
    data_fingerprint: summary.data.fingerprint,
    primary_metric: summary.primary_metric,
    primary_value: summary.metrics[summary.primary_metric] ?? null,
  };
  for (const [k, v] of Object.entries(summary.metrics)) row[k] = v;
  for (const [k, v] of Object.entries(summary.routing)) row[k] = Array.isArray(v) ? JSON.stringify(v) : (v as number | null);
  row.avg_task_accuracy = avgTaskAccuracy;
  row.forward_s = summary.timings.forward_s;
  row.eval_wall_s = summary.timings.eval_wall_s;
  row.baseline = significance?.baseline ?? null;
  for (const metric of COMPARED_METRICS) {
    if (!(metric in summary.metrics)) continue;
    const log = LOG_COMPARED[metric as keyof typeof LOG_COMPARED];
    for (const m of log ? [metric, log] : [metric]) {
      const s = significance?.metrics[m];
      row[`delta_${m}`] = s?.delta ?? null;
      row[`ci_low_${m}`] = s?.low ?? null;
      row[`ci_high_${m}`] = s?.high ?? null;
      row[`p_${m}`] = s?.pValue ?? null;
    }
  }
  row.summary_file = file;
  return row;
}

/** Columns in first-seen order over all rows. */
function columnsOf(rows: readonly ResultRow[]): string[] {
  const seen = new Set<string>();
  for (const row of rows) for (const k of Object.keys(row)) seen.add(k);
  return [...seen];
}

function csvCell(v: ResultRow[string] | undefined): string {
  if (v === null || v === undefined) return '';
  const s = String(v);
  return /[",\n]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s;
}

export function writeResults(runDir: string, rows: readonly ResultRow[]): void {
  const columns = columnsOf(rows);
  const csv = [columns.join(','), ...rows.map((r) => columns.map((c) => csvCell(r[c])).join(','))].join('\n') + '\n';
  writeFileAtomic(`${runDir}/results.csv`, csv);
  writeFileAtomic(`${runDir}/results.json`, JSON.stringify(rows, null, 2) + '\n');
  const columnData = columns.map((name) => {
    const values = rows.map((r) => r[name] ?? null);
    const kind = values.find((v) => v !== null);
    const type = typeof kind === 'number' ? 'DOUBLE' : typeof kind === 'boolean' ? 'BOOLEAN' : 'STRING';
    const data = type === 'STRING' ? values.map((v) => (v === null ? null : String(v))) : values;
    return { name, data, type } as const;
  });
  writeFileAtomic(`${runDir}/results.parquet`, new Uint8Array(parquetWriteBuffer({ columnData: columnData as never })));
}
