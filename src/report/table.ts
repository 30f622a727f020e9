/**
 * The results table of a report: one row per (configuration × task) cell with the columns a researcher compares —
 * task quality, cost in experts and FLOPs, speed, routing behaviour, and the primary metric's difference from the
 * baseline with its bootstrap interval — each column with its unit, its decimals and which direction is better.
 */
import { RoutelabError } from '../errors.js';
import { higherIsBetter } from '../metrics.js';
import type { ReportCell, RunData } from './types.js';

export interface TableColumn {
  readonly key: string;
  readonly label: string;
  readonly unit: string | null;
  /** Decimals a number is shown with; null for text columns. */
  readonly digits: number | null;
  /** Which direction is better; null for text and for columns where neither is (routing behaviour, Δ of mixed metrics). */
  readonly higherIsBetter: boolean | null;
  /**
   * Detail behind the comparison (documents, cost, routing behaviour): a printed report sets these in an appendix
   * table, so the results table keeps a readable font.
   */
  readonly secondary?: boolean;
}

export interface ResultsTable {
  readonly columns: TableColumn[];
  readonly rows: (string | number | null)[][];
  /** The key of the column the rows are sorted by (`task` for the default order: tasks, then configurations). */
  readonly sortedBy: string;
}

interface ColumnDefinition extends TableColumn {
  value(cell: ReportCell): string | number | null;
  /** Meaningless for a fixed k (min_k = max_k = k: every decision is at both bounds): no value on those rows. */
  readonly adaptiveOnly?: boolean;
}

/** A number or text the results row records under `key`; NaN (e.g. speed without a timed forward pass) is no value. */
export function rowValue(cell: ReportCell, key: string): string | number | null {
  const v = cell.row[key];
  if (typeof v === 'number') return Number.isFinite(v) ? v : null;
  return typeof v === 'string' ? v : null;
}

/** A numeric metric of a cell, or null when the cell has none. */
export function rowNumber(cell: ReportCell, key: string): number | null {
  const v = rowValue(cell, key);
  return typeof v === 'number' ? v : null;
}

const fromRow = (key: string) => (cell: ReportCell) => rowValue(cell, key);
/** The primary metric's Δ, or an end of its interval, stored under `${prefix}${primary_metric}`. */
const ofPrimary = (prefix: string) => (cell: ReportCell) => rowNumber(cell, `${prefix}${cell.row.primary_metric}`);

/** A column of the row's `key`; which direction is better comes from the metric definitions (src/metrics.ts). */
const column = (key: string, label: string, unit: string | null, digits: number | null): ColumnDefinition =>
  ({ key, label, unit, digits, higherIsBetter: higherIsBetter(key), value: fromRow(key) });
const secondary = (c: ColumnDefinition): ColumnDefinition => ({ ...c, secondary: true });

/** Every column a table may have, in display order; a metric column appears only when some cell reports it. */
const COLUMNS: readonly ColumnDefinition[] = [
  column('config', 'Configuration', null, null),
  column('task', 'Task', null, null),
  secondary(column('num_docs', 'Documents', null, 0)),
  column('primary_metric', 'Primary metric', null, null),
  // Mixes perplexities (lower is better) and accuracies (higher is better) across tasks; the metric columns show it.
  secondary(column('primary_value', 'Primary value', null, 4)),
  column('word_perplexity', 'Word perplexity', null, 2),
  column('perplexity', 'Perplexity', null, 2),
  column('acc', 'Accuracy', null, 3),
  column('acc_norm', 'Normalised accuracy', null, 3),
  column('avg_experts', 'Experts per token', 'experts/token', 2),
  secondary(column('flops_reduction_pct', 'FLOPs reduction', '%', 1)),
  secondary(column('tokens_per_second', 'Throughput', 'tokens/s', 0)),
  secondary(column('timed_tokens_per_second', 'Timed throughput (median)', 'tokens/s', 0)),
  secondary(column('expert_utilization', 'Expert utilisation', 'share of experts', 3)),
  { ...secondary(column('floor_hit_rate', 'At floor (min_k)', 'share of decisions', 3)), adaptiveOnly: true },
  { ...secondary(column('ceiling_hit_rate', 'At ceiling (max_k)', 'share of decisions', 3)), adaptiveOnly: true },
  { ...column('delta_primary', 'Δ primary vs baseline', null, 4), value: ofPrimary('delta_') },
  { ...column('ci_low_primary', '95% CI low', null, 4), value: ofPrimary('ci_low_') },
  { ...column('ci_high_primary', '95% CI high', null, 4), value: ofPrimary('ci_high_') },
];

/** How a metric reads (label, unit, decimals, direction), for sentences and charts that quote it. */
export function metricColumn(key: string): TableColumn {
  const found = COLUMNS.find((c) => c.key === key);
  if (!found) throw new Error(`no table column describes ${key}`);
  const { value: _, adaptiveOnly: __, ...described } = found;
  return described;
}

/** The columns that name a row: every table of the cells starts with them (the PDF's appendix repeats them). */
export const IDENTITY_COLUMNS: ReadonlySet<string> = new Set(['config', 'task']);

export function resultsTable(data: RunData, sortBy?: string): ResultsTable {
  const fixed = new Set(data.configs.filter((c) => c.routerKind === 'fixed').map((c) => c.name));
  const columns = COLUMNS.map((c) => (c.adaptiveOnly ? { ...c, value: (cell: ReportCell) => (fixed.has(cell.config) ? null : c.value(cell)) } : c));
  const present = columns.filter((c) => IDENTITY_COLUMNS.has(c.key) || data.cells.some((cell) => c.value(cell) !== null));
  const key = sortBy ?? 'task';
  const sortColumn = present.find((c) => c.key === key);
  if (!sortColumn) {
    throw new RoutelabError('--sort', `unknown column "${key}"; sortable columns: ${present.map((c) => c.key).join(', ')}`);
  }
  const taskOrder = new Map(data.tasks.map((t, i) => [t, i]));
  const configOrder = new Map(data.configs.map((c, i) => [c.name, i]));
  const byTask = (a: ReportCell, b: ReportCell) => (taskOrder.get(a.task) ?? Infinity) - (taskOrder.get(b.task) ?? Infinity);
  const byConfig = (a: ReportCell, b: ReportCell) => (configOrder.get(a.config) ?? Infinity) - (configOrder.get(b.config) ?? Infinity);
  const cells = [...data.cells].sort((a, b) => byTask(a, b) || byConfig(a, b));
  // Array.prototype.sort is stable: cells equal in the chosen column keep the default order.
  if (key === 'config') cells.sort(byConfig);
  else if (key !== 'task') cells.sort((a, b) => compareValues(sortColumn.value(a), sortColumn.value(b), sortColumn.higherIsBetter));
  return {
    columns: present.map(({ value: _, adaptiveOnly: __, ...described }) => described),
    rows: cells.map((cell) => present.map((c) => c.value(cell))),
    sortedBy: key,
  };
}

/** Best first when a direction is better (ascending otherwise); cells without a value last. */
function compareValues(a: string | number | null, b: string | number | null, higherIsBetter: boolean | null): number {
  if (a === null || b === null) return (a === null ? 1 : 0) - (b === null ? 1 : 0);
  if (typeof a === 'string' || typeof b === 'string') return String(a).localeCompare(String(b));
  return higherIsBetter ? b - a : a - b;
}

const formatters = new Map<string, Intl.NumberFormat>();

/**
 * A number as a report shows it: `digits` decimals with thousands separators, or three significant digits in
 * exponent form from a million up (an untrained model's perplexities); `signed` shows + on positive differences.
 */
export function formatNumber(value: number, digits: number, options: { signed?: boolean } = {}): string {
  if (!Number.isFinite(value)) return 'n/a';
  const sign = options.signed ? 'exceptZero' : 'negative';
  if (Math.abs(value) >= 1e6) return `${options.signed && value > 0 ? '+' : ''}${value.toExponential(2).replace('e+', 'e')}`;
  const id = `${digits}:${sign}`;
  let format = formatters.get(id);
  if (!format) {
    format = new Intl.NumberFormat('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits, signDisplay: sign });
    formatters.set(id, format);
  }
  return format.format(value);
}
