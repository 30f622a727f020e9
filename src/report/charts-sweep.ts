/**
 * The sweep figure, one chart per view: quality and speed against experts per token for every configuration,
 * the change against the baseline, the speed–quality trade-off, the loss and a summary table.
 */
import { paretoOptimal } from '../experiments/stats.js';
import {
  chanceLevels,
  configAxis,
  configColor,
  configLegend,
  configSummaries,
  FORMATS,
  LOG_AXIS,
  mainPerplexityTask,
  natsChange,
  panelWidth,
  powersOfTwoSpanning,
  tasksWith,
  textWidth,
  tooltip,
  vegaLiteSpec,
  viewSize,
  wrapped,
  type CellRecord,
  type ConfigSummary,
} from './charts-common.js';
import { formatNumber, metricColumn } from './table.js';
import { CHART_STYLES, columnWidthPx, type ChartStyle } from './theme.js';
import type { Chart, RunData } from './types.js';

/** Width in px of a y axis with its title and labels, besides a paper panel (panelWidth's overhead). */
const Y_AXIS_PX = 56;

/** "word_perplexity" → "word perplexity". */
function metricLabel(metric: string): string {
  return metric.replaceAll('_', ' ');
}

interface VersusExperts {
  readonly name: string;
  readonly title: string;
  readonly caption: string;
  readonly value: (r: CellRecord) => number | null;
  readonly metric: (r: CellRecord) => string;
  readonly axisTitle: string;
  readonly axis: Record<string, unknown>;
  readonly scale: Record<string, unknown>;
  /** A reference level per task drawn as a dashed line (accuracy: guessing among the task's choices). */
  readonly references?: readonly { task: string; value: number }[];
  /** A 95% interval per value, drawn as an error bar. */
  readonly interval?: (r: CellRecord) => { low: number | null; high: number | null };
}

/** One metric against experts per token: a grey line per task through its configurations, points in configuration colours. */
function versusExpertsChart(data: RunData, records: readonly CellRecord[], chart: VersusExperts, style: ChartStyle): Chart | null {
  const values = records
    .filter((r) => chart.value(r) !== null && r.experts !== null && r.experts > 0)
    .map((r) => ({ config: r.config, task: r.task, metric: chart.metric(r), experts: r.experts, value: chart.value(r), ...chart.interval?.(r) }));
  if (values.length === 0) return null;
  const experts = values.map((v) => v.experts as number);
  const ticks = powersOfTwoSpanning(Math.min(...experts), Math.max(...experts));
  const tasks = data.tasks.filter((t) => values.some((v) => v.task === t));
  const references = (chart.references ?? []).filter((r) => tasks.includes(r.task)).map((r) => ({ ...r, label: `chance: ${r.task}` }));
  const intervalTooltip = chart.interval ? [['low', '95% interval low', FORMATS.value], ['high', '95% interval high', FORMATS.value]] as const : [];
  return {
    name: chart.name,
    title: chart.title,
    caption: chart.caption,
    section: 'sweep',
    spec: vegaLiteSpec({
      title: chart.title,
      ...viewSize(style, { width: 520, height: 320 }, 230),
      data: { values },
      encoding: {
        x: {
          field: 'experts',
          type: 'quantitative',
          title: 'experts per token (mean over positions and layers, log₂ scale)',
          scale: { type: 'log', base: 2, domain: [ticks[0], ticks[ticks.length - 1]], nice: false },
          axis: { values: ticks, format: 'd' },
        },
        y: { field: 'value', type: 'quantitative', title: chart.axisTitle, scale: chart.scale, axis: chart.axis },
      },
      layer: [
        ...(references.length ? [{
          data: { values: references },
          mark: { type: 'rule', color: '#9a9a9a', strokeDash: [4, 3], strokeWidth: 1 },
          encoding: { x: null, y: { field: 'value', type: 'quantitative' }, tooltip: tooltip(['task', 'task'], ['value', 'chance level', '.0%']) },
        }, {
          data: { values: references },
          mark: { type: 'text', align: 'right', baseline: 'top', dx: -2, dy: 2, color: '#6a6a6a', fontSize: style.fonts.note },
          encoding: { x: { value: 'width' }, y: { field: 'value', type: 'quantitative' }, text: { field: 'label' } },
        }] : []),
        { mark: { type: 'line', color: '#9a9a9a', strokeWidth: 1.5 }, encoding: { detail: { field: 'task' }, order: { field: 'experts' } } },
        ...(values.some((v) => v.low != null) ? [{
          mark: { type: 'rule', strokeWidth: 1.5 },
          encoding: { y: { field: 'low', type: 'quantitative' }, y2: { field: 'high' }, color: configColor(data.configs, configLegend(style)) },
        }] : []),
        {
          mark: { type: 'point', size: 80 * style.pointScale, filled: true, opacity: 0.9 },
          encoding: {
            color: configColor(data.configs, configLegend(style)),
            shape: { field: 'task', type: 'nominal', title: 'task', sort: tasks },
            tooltip: tooltip(['config', 'configuration'], ['task', 'task'], ['metric', 'metric'], ['value', 'value', FORMATS.value], ...intervalTooltip, ['experts', 'experts per token', '.2f']),
          },
        },
      ],
    }, style),
  };
}

function perplexityVsExperts(data: RunData, records: readonly CellRecord[], style: ChartStyle): Chart | null {
  return versusExpertsChart(data, records, {
    name: 'sweep-ppl-vs-experts',
    title: 'Perplexity vs experts per token',
    caption:
      'Perplexity of each configuration (word perplexity where the task reports it, otherwise perplexity) against its mean number of experts per token; a grey line joins the configurations of one task in order of experts.',
    value: (r) => r.perplexity,
    metric: (r) => metricLabel(r.perplexityMetric ?? ''),
    axisTitle: 'perplexity (log scale)',
    axis: LOG_AXIS,
    scale: { type: 'log' },
  }, style);
}

function accuracyVsExperts(data: RunData, records: readonly CellRecord[], style: ChartStyle): Chart | null {
  return versusExpertsChart(data, records, {
    name: 'sweep-accuracy-vs-experts',
    title: 'Task accuracy vs experts per token',
    caption:
      'Accuracy of each configuration on each task that reports one (acc_norm for hellaswag, acc otherwise) against its mean number of experts per token, with its 95% Wilson interval over the task\'s documents as an error bar; a grey line joins the configurations of one task, and a dashed line marks each task\'s chance level (guessing among its choices).',
    value: (r) => r.accuracy,
    metric: (r) => r.accuracyMetric ?? '',
    axisTitle: 'accuracy (% of documents correct)',
    axis: { format: '.0%' },
    scale: { domain: [0, 1] },
    references: chanceLevels(data.tasks).map(({ task, chance }) => ({ task, value: chance })),
    interval: (r) => ({ low: r.accuracyLow, high: r.accuracyHigh }),
  }, style);
}

function speedVsExperts(data: RunData, records: readonly CellRecord[], style: ChartStyle): Chart | null {
  return versusExpertsChart(data, records, {
    name: 'sweep-speed-vs-experts',
    title: 'Throughput vs experts per token',
    caption:
      'Scored tokens per second of forward-pass time for each configuration and task against the mean number of experts per token; a grey line joins the configurations of one task.',
    value: (r) => r.tokensPerSecond,
    metric: () => 'tokens/s',
    axisTitle: 'throughput (scored tokens/s, log scale)',
    axis: LOG_AXIS,
    scale: { type: 'log' },
  }, style);
}

/** Where a bar chart of one value per configuration, a panel per task, puts its configurations and its values. */
interface BarLayout {
  readonly width: number;
  readonly height: number;
  readonly config: 'x' | 'y';
  readonly value: 'x' | 'y';
  /** The configuration channel's encoding. */
  readonly configEncoding: Record<string, unknown>;
  /** Each panel's value axis title: wrapped on paper to the panel's width. */
  valueTitle(title: string): string | string[];
}

/**
 * On screen the bars stand on an axis of slanted names under each panel. On paper they lie along one upright list of
 * names that the panels share: twenty names slanted under a third of 7 in would overlap.
 */
function barLayout(style: ChartStyle, names: readonly string[], panels: number, screen: { width: number; height: number }): BarLayout {
  if (!style.printed) return { ...screen, config: 'x', value: 'y', configEncoding: configAxis(names), valueTitle: (title) => title };
  const namesPx = Math.max(...names.map((n) => textWidth(n, style.fonts.label))) + 10;
  const width = panelWidth(style, screen.width, panels, namesPx);
  return {
    width,
    height: 12 * names.length,
    config: 'y',
    value: 'x',
    configEncoding: { field: 'config', type: 'nominal', title: null, sort: names, axis: { labelLimit: 300 } },
    valueTitle: (title) => wrapped(style, title, width, style.fonts.axisTitle),
  };
}

/** Facet header of a perplexity task: the task and which perplexity it reports. */
function perplexityPanel(r: CellRecord): string {
  return `${r.task} (${metricLabel(r.perplexityMetric ?? '')})`;
}

/** The facet header of perplexityPanel's panels: on paper the metric goes on a second line, or a third of 7 in would not hold it. */
function perplexityHeader(style: ChartStyle): Record<string, unknown> {
  return style.printed ? { labelExpr: "split(replace(datum.value, ' (', '|('), '|')" } : {};
}

function perplexityChangeBars(data: RunData, records: readonly CellRecord[], style: ChartStyle): Chart | null {
  const baseline = data.baseline;
  const values = records
    .filter((r) => r.config !== baseline && r.perplexityChange !== null)
    .map((r) => ({ config: r.config, panel: perplexityPanel(r), change: r.perplexityChange, low: r.perplexityChangeLow, high: r.perplexityChangeHigh }));
  if (baseline === null || values.length === 0) return null;
  const names = data.configs.map((c) => c.name).filter((n) => values.some((v) => v.config === n));
  const title = `Perplexity change vs ${baseline}`;
  const panels = [...new Set(values.map((v) => v.panel))];
  const bars = barLayout(style, names, panels.length, { width: Math.max(180, 26 * names.length), height: 300 });
  return {
    name: 'sweep-ppl-change',
    title,
    caption: `Change of each configuration's ln perplexity against ${baseline} on the same documents, in nats (per word for word perplexity; negative is lower perplexity), with the 95% paired-bootstrap interval as a black line where one was computed.`,
    section: 'sweep',
    spec: vegaLiteSpec({
      title,
      data: { values },
      facet: { column: { field: 'panel', type: 'nominal', title: null, sort: panels, header: perplexityHeader(style) } },
      spec: {
        width: bars.width,
        height: bars.height,
        encoding: { [bars.config]: bars.configEncoding },
        layer: [
          {
            mark: 'bar',
            encoding: {
              [bars.value]: { field: 'change', type: 'quantitative', title: bars.valueTitle('Δ ln perplexity vs baseline (nats)'), axis: { format: FORMATS.change } },
              color: configColor(data.configs, null),
              tooltip: tooltip(['config', 'configuration'], ['panel', 'task'], ['change', 'Δ ln perplexity (nats)', FORMATS.change], ['low', '95% CI low', FORMATS.change], ['high', '95% CI high', FORMATS.change]),
            },
          },
          {
            mark: { type: 'rule', color: '#000000', strokeWidth: 1.5 },
            encoding: { [bars.value]: { field: 'low', type: 'quantitative' }, [`${bars.value}2`]: { field: 'high' } },
          },
        ],
      },
      resolve: { scale: { [bars.value]: 'independent' } },
    }, style),
  };
}

function speedQualityScatter(data: RunData, records: readonly CellRecord[], style: ChartStyle): Chart | null {
  const values = tasksWith(data, records, (r) => (r.tokensPerSecond === null ? null : r.perplexity)).flatMap((task) => {
    const points = records.filter((r) => r.task === task && r.perplexity !== null && r.tokensPerSecond !== null);
    // Faster is better, so its negation is minimised along with perplexity.
    const frontier = paretoOptimal(points.map((r) => -(r.tokensPerSecond as number)), points.map((r) => r.perplexity as number));
    return points.map((r, i) => ({ config: r.config, panel: perplexityPanel(r), tokensPerSecond: r.tokensPerSecond, perplexity: r.perplexity, paretoOptimal: frontier[i] }));
  });
  if (values.length === 0) return null;
  const title = 'Speed–quality trade-off';
  const panels = [...new Set(values.map((v) => v.panel))];
  const width = panelWidth(style, 300, panels.length, Y_AXIS_PX * panels.length);
  return {
    name: 'sweep-speed-quality',
    title,
    caption: 'Perplexity against throughput for each configuration, one panel per perplexity task; the black line joins the Pareto-optimal configurations (no other is both faster and lower in perplexity).',
    section: 'sweep',
    spec: vegaLiteSpec({
      title,
      data: { values },
      facet: { column: { field: 'panel', type: 'nominal', title: null, sort: panels, header: perplexityHeader(style) } },
      spec: {
        width,
        height: style.printed ? 160 : 260,
        encoding: {
          x: {
            field: 'tokensPerSecond',
            type: 'quantitative',
            title: wrapped(style, 'throughput (scored tokens/s, log scale)', width, style.fonts.axisTitle),
            scale: { type: 'log' },
            axis: LOG_AXIS,
          },
          y: { field: 'perplexity', type: 'quantitative', title: 'perplexity (log scale)', scale: { type: 'log' }, axis: LOG_AXIS },
        },
        layer: [
          {
            transform: [{ filter: 'datum.paretoOptimal' }],
            mark: { type: 'line', color: '#000000', strokeWidth: 1.5, strokeDash: [5, 3] },
            encoding: { order: { field: 'tokensPerSecond' } },
          },
          {
            mark: { type: 'point', size: 90 * style.pointScale, filled: true, opacity: 0.9 },
            encoding: {
              color: configColor(data.configs, configLegend(style)),
              tooltip: tooltip(['config', 'configuration'], ['panel', 'task'], ['perplexity', 'perplexity', FORMATS.value], ['tokensPerSecond', 'tokens/s', ',.1f'], ['paretoOptimal', 'Pareto-optimal']),
            },
          },
        ],
      },
      resolve: { scale: { x: 'independent', y: 'independent' } },
    }, style),
  };
}

/** Plot height of the relative-speed bars on paper: the y-axis title, which names the baseline, is wrapped to it. */
const RELATIVE_SPEED_PAPER_HEIGHT = 170;

function relativeSpeedBars(data: RunData, records: readonly CellRecord[], style: ChartStyle): Chart | null {
  const baseline = data.baseline;
  const perTask = records.filter((r) => r.relativeSpeed !== null).map((r) => ({ config: r.config, task: r.task, relativeSpeed: r.relativeSpeed }));
  if (baseline === null || perTask.length === 0) return null;
  const summaries = configSummaries(data, records).filter((s) => s.relativeSpeed !== null);
  const names = summaries.map((s) => s.config);
  const axisTitle = `speed relative to ${baseline} (× its tokens/s)`;
  const title = `Relative speed vs ${baseline}`;
  return {
    name: 'sweep-relative-speed',
    title,
    caption: `Throughput of each configuration divided by that of ${baseline} on the same task: bars are the geometric mean over tasks, grey marks the individual tasks, the dashed line is parity.`,
    section: 'sweep',
    spec: vegaLiteSpec({
      title,
      ...viewSize(style, { width: Math.max(260, 40 * names.length), height: 280 }, RELATIVE_SPEED_PAPER_HEIGHT),
      layer: [
        {
          data: { values: summaries.map((s) => ({ config: s.config, relativeSpeed: s.relativeSpeed })) },
          mark: 'bar',
          encoding: {
            x: configAxis(names),
            y: { field: 'relativeSpeed', type: 'quantitative', title: wrapped(style, axisTitle, RELATIVE_SPEED_PAPER_HEIGHT, style.fonts.axisTitle), axis: { format: '.2~f' } },
            // On paper the x axis names each bar: a legend saying it again would take a fifth of the column.
            color: configColor(data.configs, style.printed ? null : {}),
            tooltip: tooltip(['config', 'configuration'], ['relativeSpeed', 'geometric mean over tasks (×)', '.3f']),
          },
        },
        {
          data: { values: perTask },
          mark: { type: 'point', filled: true, color: '#555555', size: 40 * style.pointScale },
          encoding: {
            x: configAxis(names),
            y: { field: 'relativeSpeed', type: 'quantitative' },
            shape: { field: 'task', type: 'nominal', title: 'task', sort: data.tasks },
            tooltip: tooltip(['config', 'configuration'], ['task', 'task'], ['relativeSpeed', 'relative speed (×)', '.3f']),
          },
        },
        // A layer without data of its own draws nothing, so parity is a one-row data set.
        { data: { values: [{ parity: 1 }] }, mark: { type: 'rule', strokeDash: [4, 4], color: '#000000' }, encoding: { y: { field: 'parity', type: 'quantitative' } } },
      ],
    }, style),
  };
}

function lossBars(data: RunData, records: readonly CellRecord[], style: ChartStyle): Chart | null {
  const values = records.filter((r) => r.crossEntropy !== null).map((r) => ({ config: r.config, task: r.task, crossEntropy: r.crossEntropy }));
  if (values.length === 0) return null;
  const names = data.configs.map((c) => c.name).filter((n) => values.some((v) => v.config === n));
  const title = 'Loss comparison';
  const tasks = data.tasks.filter((t) => values.some((v) => v.task === t));
  const bars = barLayout(style, names, tasks.length, { width: Math.max(180, 30 * names.length), height: 260 });
  return {
    name: 'sweep-loss',
    title,
    caption: 'Cross-entropy of the scored tokens for each configuration, one panel per task that reports it.',
    section: 'sweep',
    spec: vegaLiteSpec({
      title,
      data: { values },
      facet: { column: { field: 'task', type: 'nominal', title: null, sort: data.tasks } },
      spec: {
        width: bars.width,
        height: bars.height,
        mark: 'bar',
        encoding: {
          [bars.config]: bars.configEncoding,
          [bars.value]: { field: 'crossEntropy', type: 'quantitative', title: bars.valueTitle('cross-entropy (nats per token)') },
          // On paper the axis names each bar: a legend saying it again would take a fifth of the column.
          color: configColor(data.configs, style.printed ? null : {}),
          tooltip: tooltip(['config', 'configuration'], ['task', 'task'], ['crossEntropy', 'cross-entropy (nats/token)', '.4f']),
        },
      },
      resolve: { scale: { [bars.value]: 'independent' } },
    }, style),
  };
}

interface SummaryColumn {
  readonly label: string;
  readonly value: (s: ConfigSummary) => number | null;
  readonly format: (v: number) => string;
}

/** The headline numbers per configuration as a text grid (the full table is the report's results table). */
function summaryTable(data: RunData, records: readonly CellRecord[], style: ChartStyle): Chart | null {
  const summaries = configSummaries(data, records);
  if (summaries.length === 0) return null;
  const mainTask = mainPerplexityTask(data, records);
  const mainMetric = records.find((r) => r.task === mainTask)?.perplexityMetric ?? 'perplexity';
  const number = (key: string) => (v: number) => formatNumber(v, metricColumn(key).digits ?? 2);
  const columns: SummaryColumn[] = [{ label: 'experts per token', value: (s) => s.experts, format: number('avg_experts') }];
  if (mainTask !== null) columns.push({ label: `${mainTask} ${metricLabel(mainMetric)}`, value: (s) => s.perplexity, format: number(mainMetric) });
  if (mainTask !== null && data.baseline !== null) columns.push({ label: 'Δ ln ppl (nats)', value: (s) => s.perplexityChange, format: natsChange });
  columns.push({ label: 'mean accuracy', value: (s) => s.accuracy, format: (v) => `${formatNumber(100 * v, 1)}%` });
  if (data.baseline !== null) columns.push({ label: 'speed vs baseline', value: (s) => s.relativeSpeed, format: (v) => `${formatNumber(v, 2)}×` });
  const values = summaries.flatMap((s) =>
    columns.map(({ label, value, format }) => {
      const v = value(s);
      return { config: s.config, column: label, text: v === null ? '–' : format(v) };
    }),
  );
  const title = 'Summary by configuration';
  // On paper a column is a fifth of 7 in less the names: its header breaks into lines that fit it. Vega hangs a
  // label's lines down from the first, into the table; so each header gets as many lines, blank ones first, and
  // the labels stand that many lines above it.
  const namesPx = Math.max(...summaries.map((s) => textWidth(s.config, style.fonts.label)));
  const columnPx = (columnWidthPx('double') - namesPx) / columns.length;
  const lines = columns.map((c) => [wrapped(style, c.label, columnPx - 8, style.fonts.label)].flat());
  const headerLines = Math.max(...lines.map((l) => l.length));
  const lineHeight = Math.round(1.2 * style.fonts.label);
  const headers = Object.fromEntries(columns.map((c, i) => [c.label, [...Array(headerLines - lines[i].length).fill(''), ...lines[i]]]));
  return {
    name: 'sweep-summary-table',
    title,
    caption: `Per configuration: ${columns.map((c) => c.label).join(', ')}; experts, accuracy and speed summarise all tasks (speed as the geometric mean of the ratio to the baseline), – where not available.`,
    section: 'sweep',
    spec: vegaLiteSpec({
      title,
      ...viewSize(style, { width: 200 * columns.length, height: 24 * summaries.length }, 18 * summaries.length),
      data: { values },
      mark: { type: 'text', fontSize: style.fonts.mark },
      encoding: {
        x: {
          field: 'column',
          type: 'nominal',
          sort: columns.map((c) => c.label),
          title: null,
          axis: {
            orient: 'top', labelAngle: 0, labelFontWeight: 'bold', labelLimit: 300, domain: false, ticks: false,
            ...(style.printed ? { labelExpr: `${JSON.stringify(headers)}[datum.label]`, labelLineHeight: lineHeight, labelPadding: 4 + (headerLines - 1) * lineHeight } : {}),
          },
        },
        y: { field: 'config', type: 'nominal', sort: summaries.map((s) => s.config), title: null, axis: { domain: false, ticks: false, labelLimit: 300 } },
        text: { field: 'text' },
        tooltip: tooltip(['config', 'configuration'], ['column', 'column'], ['text', 'value']),
      },
    }, style),
  };
}

export function sweepCharts(data: RunData, records: readonly CellRecord[], style: ChartStyle = CHART_STYLES.screen): Chart[] {
  return [
    perplexityVsExperts(data, records, style),
    accuracyVsExperts(data, records, style),
    speedVsExperts(data, records, style),
    perplexityChangeBars(data, records, style),
    speedQualityScatter(data, records, style),
    relativeSpeedBars(data, records, style),
    lossBars(data, records, style),
    summaryTable(data, records, style),
  ].filter((c): c is Chart => c !== null);
}
