/**
 * What the chart modules share: which metric of a cell each chart plots, the per-cell and per-configuration values
 * they draw, Pareto sets, the wrapper that makes a body a complete Vega-Lite spec in the report's theme, and the
 * layout helpers that fit a paper-style chart to its column (viewSize, panelWidth, wrapped, configLegend).
 */
import { wilsonInterval } from '../experiments/stats.js';
import { LOG_COMPARED } from '../sweep/results.js';
import { getTask } from '../tasks/registry.js';
import { formatNumber, rowNumber } from './table.js';
import { CHART_STYLES, columnWidthPx, configColorScale, printedMetadata, VEGA_LITE_SCHEMA, type ChartStyle, type FigureColumn } from './theme.js';
import type { ConfigInfo, ReportCell, RunData } from './types.js';

/** d3 formats shared by the charts: SI-prefixed axis ticks (an untrained model's perplexity runs to 10^11), signed changes. */
export const FORMATS = {
  axisNumber: ',.3~s',
  change: '+,.3~f',
  value: ',.4~f',
} as const;

/** A log axis: SI-prefixed labels, and few enough ticks that a span of many decades gets one grid line per decade. */
export const LOG_AXIS = { format: FORMATS.axisNumber, tickCount: 6 } as const;

/**
 * A complete top-level spec: the body plus `$schema` and the style's theme. A paper chart records the width it is
 * printed at (inches) in its metadata; the renderer draws its SVG to exactly that width (render.ts chartToSvg).
 */
export function vegaLiteSpec(body: Record<string, unknown>, style: ChartStyle = CHART_STYLES.screen, column: FigureColumn = 'double'): Record<string, unknown> {
  const spec = { $schema: VEGA_LITE_SCHEMA, config: style.config, ...body };
  if (!style.printed) return spec;
  return { ...spec, ...(body.title === undefined ? {} : { title: printedTitle(body.title, style, column) }), usermeta: printedMetadata(column) };
}

/** A chart title broken into lines across the column: Vega clips a title wider than the figure. */
function printedTitle(title: unknown, style: ChartStyle, column: FigureColumn): unknown {
  // Bold DejaVu Sans runs about a tenth wider than textWidth's regular estimate.
  const lines = (text: string) => wrapped(style, text, columnWidthPx(column) - 2 * (style.config.padding as number), 1.1 * style.fonts.title);
  if (typeof title === 'string') return lines(title);
  const text = (title as { text?: unknown }).text;
  return typeof text === 'string' ? { ...(title as object), text: lines(text) } : title;
}

/**
 * The size of a single (or layered) view: on screen its plot area is `screen`; on paper the whole figure, axes and
 * legend included, spans its column, with a plot `paperHeight` px high.
 */
export function viewSize(style: ChartStyle, screen: { width: number; height: number }, paperHeight: number, column: FigureColumn = 'double'): Record<string, unknown> {
  return style.printed ? { width: columnWidthPx(column), height: paperHeight, autosize: { type: 'fit-x', contains: 'padding' } } : { ...screen };
}

/** A chart-name fragment (`[a-z0-9-]+`) from a configuration or task name. */
export function slug(name: string): string {
  return name.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '');
}

/** Tasks with word perplexity are compared by it (wikitext); otherwise by perplexity (lambada). */
function perplexityMetricOf(cell: ReportCell): 'word_perplexity' | 'perplexity' | null {
  if (rowNumber(cell, 'word_perplexity') !== null) return 'word_perplexity';
  return rowNumber(cell, 'perplexity') !== null ? 'perplexity' : null;
}

/** Accuracy as lm-eval reports it: the primary metric where that is an accuracy (hellaswag: acc_norm), else acc. */
function accuracyMetricOf(cell: ReportCell): 'acc' | 'acc_norm' | null {
  const primary = cell.row.primary_metric;
  if (primary === 'acc' || primary === 'acc_norm') return primary;
  return rowNumber(cell, 'acc') !== null ? 'acc' : null;
}

/** What the charts plot of one (configuration × task) cell; null where the cell does not report it. */
export interface CellRecord {
  readonly config: string;
  readonly task: string;
  /** Mean experts per token over the scored positions and layers. */
  readonly experts: number | null;
  readonly tokensPerSecond: number | null;
  readonly perplexityMetric: string | null;
  readonly perplexity: number | null;
  /**
   * ln(perplexity) − ln(baseline's) on the same task, in nats (per word for word perplexity), with its bootstrap
   * interval: readable where a ratio of perplexities in the millions is not.
   */
  readonly perplexityChange: number | null;
  readonly perplexityChangeLow: number | null;
  readonly perplexityChangeHigh: number | null;
  readonly accuracyMetric: string | null;
  readonly accuracy: number | null;
  /** 95% Wilson interval of the accuracy over the cell's documents (each scored right or wrong). */
  readonly accuracyLow: number | null;
  readonly accuracyHigh: number | null;
  /** Nats per token, where the task reports it. */
  readonly crossEntropy: number | null;
  /** tokens/s ÷ the baseline's tokens/s on the same task. */
  readonly relativeSpeed: number | null;
}

export function cellRecords(data: RunData): CellRecord[] {
  const baselineOf = new Map(data.cells.filter((c) => c.config === data.baseline).map((c) => [c.task, c]));
  return data.cells.map((cell) => {
    const base = baselineOf.get(cell.task);
    const perplexityMetric = perplexityMetricOf(cell);
    const accuracyMetric = accuracyMetricOf(cell);
    const perplexity = perplexityMetric ? rowNumber(cell, perplexityMetric) : null;
    const basePerplexity = base && perplexityMetric ? rowNumber(base, perplexityMetric) : null;
    // The sweep's bootstrap of ln(perplexity) (LOG_COMPARED) gives the interval on the bars' scale.
    const logMetric = perplexityMetric ? LOG_COMPARED[perplexityMetric as keyof typeof LOG_COMPARED] : undefined;
    const logBound = (bound: 'low' | 'high') => (logMetric ? rowNumber(cell, `ci_${bound}_${logMetric}`) : null);
    const accuracy = accuracyMetric ? rowNumber(cell, accuracyMetric) : null;
    const documents = rowNumber(cell, 'num_docs');
    const accuracyInterval = accuracy !== null && documents ? wilsonInterval(accuracy, documents) : null;
    const tokensPerSecond = rowNumber(cell, 'tokens_per_second');
    const baseSpeed = base ? rowNumber(base, 'tokens_per_second') : null;
    return {
      config: cell.config,
      task: cell.task,
      experts: rowNumber(cell, 'avg_experts'),
      tokensPerSecond,
      perplexityMetric,
      perplexity,
      perplexityChange: perplexity !== null && basePerplexity ? Math.log(perplexity) - Math.log(basePerplexity) : null,
      perplexityChangeLow: logBound('low'),
      perplexityChangeHigh: logBound('high'),
      accuracyMetric,
      accuracy,
      accuracyLow: accuracyInterval?.low ?? null,
      accuracyHigh: accuracyInterval?.high ?? null,
      crossEntropy: rowNumber(cell, 'cross_entropy'),
      relativeSpeed: tokensPerSecond !== null && baseSpeed ? tokensPerSecond / baseSpeed : null,
    };
  });
}

/** Each task's chance accuracy (guessing among its choices), for the tasks that declare one. */
export function chanceLevels(tasks: readonly string[]): { task: string; chance: number }[] {
  return tasks.flatMap((task) => {
    const chance = getTask(task).chanceAccuracy;
    return chance === undefined ? [] : [{ task, chance }];
  });
}

/** Tasks (sweep order) where some cell has a value for `pick`. */
export function tasksWith(data: RunData, records: readonly CellRecord[], pick: (r: CellRecord) => number | null): string[] {
  return data.tasks.filter((task) => records.some((r) => r.task === task && pick(r) !== null));
}

export function meanOf(values: readonly (number | null)[]): number | null {
  const present = values.filter((v): v is number => v !== null);
  return present.length > 0 ? present.reduce((a, b) => a + b, 0) / present.length : null;
}

/** The mean of ratios that treats ×2 and ×½ symmetrically. */
function geometricMeanOf(ratios: readonly (number | null)[]): number | null {
  const logs = ratios.filter((v): v is number => v !== null && v > 0).map(Math.log);
  return logs.length > 0 ? Math.exp(logs.reduce((a, b) => a + b, 0) / logs.length) : null;
}

/** One configuration summarised over its tasks, or on the main perplexity task where one task must stand for all. */
export interface ConfigSummary {
  readonly config: string;
  /** Mean over tasks of experts per token. */
  readonly experts: number | null;
  /** Mean over tasks that report an accuracy. */
  readonly accuracy: number | null;
  /** Geometric mean over tasks of tokens/s ÷ the baseline's. */
  readonly relativeSpeed: number | null;
  /** On the main perplexity task: */
  readonly perplexity: number | null;
  readonly perplexityChange: number | null;
  readonly perplexityExperts: number | null;
  readonly perplexityTokensPerSecond: number | null;
}

export function configSummaries(data: RunData, records: readonly CellRecord[]): ConfigSummary[] {
  const mainTask = mainPerplexityTask(data, records);
  return data.configs.map(({ name }) => {
    const own = records.filter((r) => r.config === name);
    const main = own.find((r) => r.task === mainTask);
    return {
      config: name,
      experts: meanOf(own.map((r) => r.experts)),
      accuracy: meanOf(own.map((r) => r.accuracy)),
      relativeSpeed: geometricMeanOf(own.map((r) => r.relativeSpeed)),
      perplexity: main?.perplexity ?? null,
      perplexityChange: main?.perplexityChange ?? null,
      perplexityExperts: main?.experts ?? null,
      perplexityTokensPerSecond: main?.tokensPerSecond ?? null,
    };
  });
}

/** A tooltip entry per [field, title, d3 format]; quantitative when a format is given. */
export function tooltip(...fields: readonly (readonly [string, string, string?])[]): Record<string, unknown>[] {
  return fields.map(([field, title, format]) => (format ? { field, title, type: 'quantitative', format } : { field, title, type: 'nominal' }));
}

/**
 * Width of each of `panels` side-by-side panels (facets or concatenated views) whose figure, with `overhead` px of
 * axes and legends per row besides the panels, spans the paper column; on screen `screen`.
 */
export function panelWidth(style: ChartStyle, screen: number, panels: number, overhead: number, column: FigureColumn = 'double'): number {
  if (!style.printed) return screen;
  const spacing = (style.config.facet as { spacing: number }).spacing;
  const padding = 2 * (style.config.padding as number);
  return Math.floor((columnWidthPx(column) - padding - overhead - spacing * (panels - 1)) / panels);
}

/** Estimated width in px of `text` at `fontSize`: DejaVu Sans averages 0.56 em a character over names and lower-case words. */
export function textWidth(text: string, fontSize: number): number {
  return 0.56 * fontSize * text.length;
}

/**
 * A title on paper broken into lines (Vega draws an array as lines) that fit `width` px at `fontSize`: a paper panel
 * or axis is often narrower than its screen title. On screen the text as it is.
 */
export function wrapped(style: ChartStyle, text: string, width: number, fontSize: number): string | string[] {
  if (!style.printed) return text;
  const perLine = Math.max(1, Math.floor(width / textWidth('x', fontSize)));
  const lines: string[] = [];
  for (const word of text.split(' ')) {
    const last = lines.length - 1;
    if (last >= 0 && lines[last].length + 1 + word.length <= perLine) lines[last] += ` ${word}`;
    else lines.push(word);
  }
  return lines.length === 1 ? lines[0] : lines;
}

/**
 * The configuration legend of a chart: `screen` on screen; on paper under the chart in three columns (a 7 in column
 * fits three of the longest names at 8.5 pt), so the plots keep the width.
 */
export function configLegend(style: ChartStyle, screen: Record<string, unknown> = {}): Record<string, unknown> {
  return style.printed ? { orient: 'bottom', direction: 'horizontal', columns: 3, symbolLimit: 0 } : screen;
}

/** Vega-Lite colour channel for configurations: the sweep's colours, legend in sweep order. */
export function configColor(configs: readonly ConfigInfo[], legend: Record<string, unknown> | null = {}): Record<string, unknown> {
  return {
    field: 'config',
    type: 'nominal',
    title: 'configuration',
    scale: configColorScale(configs),
    sort: configs.map((c) => c.name),
    legend,
  };
}

/** Configuration names as a nominal x axis in sweep order; slanted at 45°, adjacent names clear each other from a step of about 16 px. */
export function configAxis(names: readonly string[]): Record<string, unknown> {
  return { field: 'config', type: 'nominal', title: 'configuration', sort: names, axis: { labelAngle: -45, labelLimit: 300 } };
}

/** A change of ln(perplexity) as signed nats: two decimals. */
export function natsChange(change: number): string {
  return formatNumber(change, 2, { signed: true });
}

/** Tick values of a log₂ axis: the powers of two spanning [low, high]. */
export function powersOfTwoSpanning(low: number, high: number): number[] {
  const values: number[] = [];
  for (let p = 2 ** Math.floor(Math.log2(low)); p <= 2 ** Math.ceil(Math.log2(high)); p *= 2) values.push(p);
  return values;
}

/** The first task (sweep order) with a perplexity: the quality axis of single-task comparisons. */
export function mainPerplexityTask(data: RunData, records: readonly CellRecord[]): string | null {
  return tasksWith(data, records, (r) => r.perplexity)[0] ?? null;
}
