/**
 * The sweep figure, one chart per view: quality and speed against experts per token for every configuration,
 * the change against the baseline, the speed–quality trade-off, the loss and a summary table.
 */
import { getTask } from '../tasks/registry.js';
import { paretoOptimal } from '../experiments/stats.js';
import {
  configAxis,
  configColor,
  configSummaries,
  FORMATS,
  LOG_AXIS,
  mainPerplexityTask,
  natsChange,
  powersOfTwoSpanning,
  tasksWith,
  tooltip,
  vegaLiteSpec,
  type CellRecord,
  type ConfigSummary,
} from './charts-common.js';
import { formatNumber, metricColumn } from './table.js';
import type { Chart, RunData } from './types.js';


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
  readonly reference?: (task: string) => number | undefined;
}

/** One metric against experts per token: a grey line per task through its configurations, points in configuration colours. */
function versusExpertsChart(data: RunData, records: readonly CellRecord[], chart: VersusExperts): Chart | null {
  const values = records
    .filter((r) => chart.value(r) !== null && r.experts !== null && r.experts > 0)
    .map((r) => ({ config: r.config, task: r.task, metric: chart.metric(r), experts: r.experts, value: chart.value(r) }));
  if (values.length === 0) return null;
  const experts = values.map((v) => v.experts as number);
  const ticks = powersOfTwoSpanning(Math.min(...experts), Math.max(...experts));
  const tasks = data.tasks.filter((t) => values.some((v) => v.task === t));
  const references = tasks.flatMap((task) => {
    const value = chart.reference?.(task);
    return value === undefined ? [] : [{ task, value, label: `chance: ${task}` }];
  });
  return {
    name: chart.name,
    title: chart.title,
    caption: chart.caption,
    section: 'sweep',
    spec: vegaLiteSpec({
      title: chart.title,
      width: 520,
      height: 320,
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
          mark: { type: 'text', align: 'right', baseline: 'bottom', dx: -2, dy: -2, color: '#6a6a6a', fontSize: 10 },
          encoding: { x: { value: 520 }, y: { field: 'value', type: 'quantitative' }, text: { field: 'label' } },
        }] : []),
        { mark: { type: 'line', color: '#9a9a9a', strokeWidth: 1.5 }, encoding: { detail: { field: 'task' }, order: { field: 'experts' } } },
        {
          mark: { type: 'point', size: 80, filled: true, opacity: 0.9 },
          encoding: {
            color: configColor(data.configs),
            shape: { field: 'task', type: 'nominal', title: 'task', sort: tasks },
            tooltip: tooltip(['config', 'configuration'], ['task', 'task'], ['metric', 'metric'], ['value', 'value', FORMATS.value], ['experts', 'experts per token', '.2f']),
          },
        },
      ],
    }),
  };
}

function perplexityVsExperts(data: RunData, records: readonly CellRecord[]): Chart | null {
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
  });
}

function accuracyVsExperts(data: RunData, records: readonly CellRecord[]): Chart | null {
  return versusExpertsChart(data, records, {
    name: 'sweep-accuracy-vs-experts',
    title: 'Task accuracy vs experts per token',
    caption:
      'Accuracy of each configuration on each task that reports one (acc_norm for hellaswag, acc otherwise) against its mean number of experts per token; a grey line joins the configurations of one task, and a dashed line marks each task\'s chance level (guessing among its choices).',
    value: (r) => r.accuracy,
    metric: (r) => r.accuracyMetric ?? '',
    axisTitle: 'accuracy (% of documents correct)',
    axis: { format: '.0%' },
    scale: { domain: [0, 1] },
    reference: (task) => getTask(task).chanceAccuracy,
  });
}

function speedVsExperts(data: RunData, records: readonly CellRecord[]): Chart | null {
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
  });
}

/** Facet header of a perplexity task: the task and which perplexity it reports. */
function perplexityPanel(r: CellRecord): string {
  return `${r.task} (${metricLabel(r.perplexityMetric ?? '')})`;
}

function perplexityChangeBars(data: RunData, records: readonly CellRecord[]): Chart | null {
  const baseline = data.baseline;
  const values = records
    .filter((r) => r.config !== baseline && r.perplexityChange !== null)
    .map((r) => ({ config: r.config, panel: perplexityPanel(r), change: r.perplexityChange, low: r.perplexityChangeLow, high: r.perplexityChangeHigh }));
  if (baseline === null || values.length === 0) return null;
  const names = data.configs.map((c) => c.name).filter((n) => values.some((v) => v.config === n));
  const title = `Perplexity change vs ${baseline}`;
  return {
    name: 'sweep-ppl-change',
    title,
    caption: `Change of each configuration's ln perplexity against ${baseline} on the same documents, in nats (per word for word perplexity; negative is lower perplexity), with the 95% paired-bootstrap interval as a black line where one was computed.`,
    section: 'sweep',
    spec: vegaLiteSpec({
      title,
      data: { values },
      facet: { column: { field: 'panel', type: 'nominal', title: null, sort: [...new Set(values.map((v) => v.panel))] } },
      spec: {
        width: Math.max(180, 26 * names.length),
        height: 300,
        encoding: { x: configAxis(names) },
        layer: [
          {
            mark: 'bar',
            encoding: {
              y: { field: 'change', type: 'quantitative', title: 'Δ ln perplexity vs baseline (nats)', axis: { format: FORMATS.change } },
              color: configColor(data.configs, null),
              tooltip: tooltip(['config', 'configuration'], ['panel', 'task'], ['change', 'Δ ln perplexity (nats)', FORMATS.change], ['low', '95% CI low', FORMATS.change], ['high', '95% CI high', FORMATS.change]),
            },
          },
          { mark: { type: 'rule', color: '#000000', strokeWidth: 1.5 }, encoding: { y: { field: 'low', type: 'quantitative' }, y2: { field: 'high' } } },
        ],
      },
      resolve: { scale: { y: 'independent' } },
    }),
  };
}

function speedQualityScatter(data: RunData, records: readonly CellRecord[]): Chart | null {
  const values = tasksWith(data, records, (r) => (r.tokensPerSecond === null ? null : r.perplexity)).flatMap((task) => {
    const points = records.filter((r) => r.task === task && r.perplexity !== null && r.tokensPerSecond !== null);
    // Faster is better, so its negation is minimised along with perplexity.
    const frontier = paretoOptimal(points.map((r) => -(r.tokensPerSecond as number)), points.map((r) => r.perplexity as number));
    return points.map((r, i) => ({ config: r.config, panel: perplexityPanel(r), tokensPerSecond: r.tokensPerSecond, perplexity: r.perplexity, paretoOptimal: frontier[i] }));
  });
  if (values.length === 0) return null;
  const title = 'Speed–quality trade-off';
  return {
    name: 'sweep-speed-quality',
    title,
    caption: 'Perplexity against throughput for each configuration, one panel per perplexity task; the black line joins the Pareto-optimal configurations (no other is both faster and lower in perplexity).',
    section: 'sweep',
    spec: vegaLiteSpec({
      title,
      data: { values },
      facet: { column: { field: 'panel', type: 'nominal', title: null, sort: [...new Set(values.map((v) => v.panel))] } },
      spec: {
        width: 300,
        height: 260,
        encoding: {
          x: { field: 'tokensPerSecond', type: 'quantitative', title: 'throughput (scored tokens/s, log scale)', scale: { type: 'log' }, axis: LOG_AXIS },
          y: { field: 'perplexity', type: 'quantitative', title: 'perplexity (log scale)', scale: { type: 'log' }, axis: LOG_AXIS },
        },
        layer: [
          {
            transform: [{ filter: 'datum.paretoOptimal' }],
            mark: { type: 'line', color: '#000000', strokeWidth: 1.5, strokeDash: [5, 3] },
            encoding: { order: { field: 'tokensPerSecond' } },
          },
          {
            mark: { type: 'point', size: 90, filled: true, opacity: 0.9 },
            encoding: {
              color: configColor(data.configs),
              tooltip: tooltip(['config', 'configuration'], ['panel', 'task'], ['perplexity', 'perplexity', FORMATS.value], ['tokensPerSecond', 'tokens/s', ',.1f'], ['paretoOptimal', 'Pareto-optimal']),
            },
          },
        ],
      },
      resolve: { scale: { x: 'independent', y: 'independent' } },
    }),
  };
}

function relativeSpeedBars(data: RunData, records: readonly CellRecord[]): Chart | null {
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
      width: Math.max(260, 40 * names.length),
      height: 280,
      layer: [
        {
          data: { values: summaries.map((s) => ({ config: s.config, relativeSpeed: s.relativeSpeed })) },
          mark: 'bar',
          encoding: {
            x: configAxis(names),
            y: { field: 'relativeSpeed', type: 'quantitative', title: axisTitle, axis: { format: '.2~f' } },
            color: configColor(data.configs),
            tooltip: tooltip(['config', 'configuration'], ['relativeSpeed', 'geometric mean over tasks (×)', '.3f']),
          },
        },
        {
          data: { values: perTask },
          mark: { type: 'point', filled: true, color: '#555555', size: 40 },
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
    }),
  };
}

function lossBars(data: RunData, records: readonly CellRecord[]): Chart | null {
  const values = records.filter((r) => r.crossEntropy !== null).map((r) => ({ config: r.config, task: r.task, crossEntropy: r.crossEntropy }));
  if (values.length === 0) return null;
  const names = data.configs.map((c) => c.name).filter((n) => values.some((v) => v.config === n));
  const title = 'Loss comparison';
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
        width: Math.max(180, 30 * names.length),
        height: 260,
        mark: 'bar',
        encoding: {
          x: configAxis(names),
          y: { field: 'crossEntropy', type: 'quantitative', title: 'cross-entropy (nats per token)' },
          color: configColor(data.configs),
          tooltip: tooltip(['config', 'configuration'], ['task', 'task'], ['crossEntropy', 'cross-entropy (nats/token)', '.4f']),
        },
      },
      resolve: { scale: { y: 'independent' } },
    }),
  };
}

interface SummaryColumn {
  readonly label: string;
  readonly value: (s: ConfigSummary) => number | null;
  readonly format: (v: number) => string;
}

/** The headline numbers per configuration as a text grid (the full table is the report's results table). */
function summaryTable(data: RunData, records: readonly CellRecord[]): Chart | null {
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
  return {
    name: 'sweep-summary-table',
    title,
    caption: `Per configuration: ${columns.map((c) => c.label).join(', ')}; experts, accuracy and speed summarise all tasks (speed as the geometric mean of the ratio to the baseline), – where not available.`,
    section: 'sweep',
    spec: vegaLiteSpec({
      title,
      width: 200 * columns.length,
      height: 24 * summaries.length,
      data: { values },
      mark: { type: 'text', fontSize: 12 },
      encoding: {
        x: {
          field: 'column',
          type: 'nominal',
          sort: columns.map((c) => c.label),
          title: null,
          axis: { orient: 'top', labelAngle: 0, labelFontWeight: 'bold', labelLimit: 300, domain: false, ticks: false },
        },
        y: { field: 'config', type: 'nominal', sort: summaries.map((s) => s.config), title: null, axis: { domain: false, ticks: false, labelLimit: 300 } },
        text: { field: 'text' },
        tooltip: tooltip(['config', 'configuration'], ['column', 'column'], ['text', 'value']),
      },
    }),
  };
}

export function sweepCharts(data: RunData, records: readonly CellRecord[]): Chart[] {
  return [
    perplexityVsExperts(data, records),
    accuracyVsExperts(data, records),
    speedVsExperts(data, records),
    perplexityChangeBars(data, records),
    speedQualityScatter(data, records),
    relativeSpeedBars(data, records),
    lossBars(data, records),
    summaryTable(data, records),
  ].filter((c): c is Chart => c !== null);
}
