/**
 * The BH figure: nine fixed-size panels comparing the BH configurations with the baseline, as one concatenated
 * chart. Configuration colours are one shared scale (one legend); every other scale is the panel's own. Panels with
 * configuration names on their x axis share the last row, so only one row pays for the slanted names.
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
  meanOf,
  panelWidth,
  tooltip,
  vegaLiteSpec,
  wrapped,
  type CellRecord,
  type ConfigSummary,
} from './charts-common.js';
import { formatNumber, rowNumber } from './table.js';
import { SEQUENTIAL_SCHEME, type ChartStyle } from './theme.js';
import type { Chart, ConfigInfo, RunData } from './types.js';

const COLUMNS = 3;
/**
 * Width in px beside each panel's plot: its y axis with title, and the overhang of an x-axis title wider than the
 * plot. Three share the row with the panels (panelWidth).
 */
const Y_AXIS_PX = 72;
/**
 * Plot size of a panel. On screen three abreast with their axes come to about 1000 px, printed at half size or
 * more; on paper they fill the 7 in text width.
 */
function panelSize(style: ChartStyle): { width: number; height: number } {
  return { width: panelWidth(style, 230, COLUMNS, COLUMNS * Y_AXIS_PX), height: style.printed ? 90 : 170 };
}
/** The one configuration legend, under the grid rather than beside it so it adds no width. */
function legendOf(style: ChartStyle): Record<string, unknown> {
  return configLegend(style, { orient: 'bottom', direction: 'horizontal', columns: 4, symbolLimit: 0 });
}

/** Light to dark: the more experts a share of positions selects, the darker its segment. */
const BEHAVIOUR_COLORS = ['#c6dbef', '#6baed6', '#08306b'];

/** A panel before it is lettered: what the figure's caption says of it, and its Vega-Lite view. */
interface Panel {
  readonly title: string;
  /** Every panel has one, so titles line up across a row. */
  readonly subtitle: string;
  readonly caption: string;
  readonly view: Record<string, unknown>;
}

/** "(a)", "(b)", … by position in the figure, so skipped panels leave no gaps. */
function letter(index: number): string {
  return `(${String.fromCharCode(97 + index)})`;
}

function lettered(style: ChartStyle): (panel: Panel, index: number) => Record<string, unknown> {
  const { fonts } = style;
  // A title may span the panel and its y axis.
  const width = panelSize(style).width + Y_AXIS_PX;
  return (panel, index) => ({
    title: {
      text: `${letter(index)} ${panel.title}`,
      subtitle: wrapped(style, panel.subtitle, width, fonts.panelSubtitle),
      fontSize: fonts.panelTitle,
      subtitleFontSize: fonts.panelSubtitle,
    },
    ...panelSize(style),
    ...panel.view,
  });
}

/**
 * A config axis without its title: the panel title already says what the bars are. On paper the names stand upright:
 * slanted, they reach as far left as down, into the next panel's column, and the grid would widen to clear them.
 */
function panelConfigAxis(names: readonly string[], style: ChartStyle): Record<string, unknown> {
  const axis = configAxis(names);
  return { ...axis, title: null, ...(style.printed ? { axis: { ...(axis.axis as object), labelAngle: -90 } } : {}) };
}

function perplexityPanel(data: RunData, records: readonly CellRecord[], shown: readonly string[], style: ChartStyle): Panel | null {
  const values = records
    .filter((r) => shown.includes(r.config) && r.perplexity !== null)
    .map((r) => ({ config: r.config, task: r.task, perplexity: r.perplexity }));
  if (values.length === 0) return null;
  return {
    title: 'Perplexity',
    subtitle: 'baseline vs BH, per task',
    caption: 'perplexity per task',
    view: {
      data: { values },
      mark: { type: 'point', filled: true, size: 70 * style.pointScale, opacity: 0.9 },
      encoding: {
        x: { field: 'task', type: 'nominal', title: null, sort: data.tasks, axis: { labelAngle: -35 } },
        xOffset: { field: 'config', type: 'nominal', sort: shown },
        y: { field: 'perplexity', type: 'quantitative', title: 'perplexity (log scale)', scale: { type: 'log' }, axis: LOG_AXIS },
        color: configColor(data.configs, legendOf(style)),
        tooltip: tooltip(['config', 'configuration'], ['task', 'task'], ['perplexity', 'perplexity', FORMATS.value]),
      },
    },
  };
}

/**
 * Points with their 95% Wilson intervals rather than bars, so an accuracy of 0 (LAMBADA on a small model) is a dot on
 * the axis with an upper bound, not an absent bar; a grey line across a task marks its chance level.
 */
function accuracyPanel(data: RunData, records: readonly CellRecord[], shown: readonly string[], style: ChartStyle): Panel | null {
  const values = records
    .filter((r) => shown.includes(r.config) && r.accuracy !== null)
    .map((r) => ({ config: r.config, task: r.task, metric: r.accuracyMetric, accuracy: r.accuracy, low: r.accuracyLow, high: r.accuracyHigh }));
  if (values.length === 0) return null;
  const tasks = data.tasks.filter((t) => values.some((v) => v.task === t));
  const chance = chanceLevels(tasks);
  // Cells without a document count (no interval) are drawn as points alone.
  const intervals = values.some((v) => v.low !== null);
  const x = { field: 'task', type: 'nominal', title: null, sort: tasks, axis: { labelAngle: -35 } };
  const xOffset = { field: 'config', type: 'nominal', sort: shown };
  const y = { field: 'accuracy', type: 'quantitative', title: 'accuracy (% correct)', scale: { domain: [0, 1] }, axis: { format: '.0%' } };
  return {
    title: 'Task accuracy',
    subtitle: ['per task', ...(intervals ? ['95% intervals'] : []), ...(chance.length ? ['grey: chance'] : [])].join(', '),
    caption: `accuracy per task${intervals ? " with its 95% Wilson interval over the task's documents" : ''}${chance.length ? ' and the chance level as a grey line' : ''}`,
    view: {
      layer: [
        ...(chance.length ? [{
          data: { values: chance },
          mark: { type: 'tick', orient: 'horizontal', color: '#8a8a8a', thickness: 1.5 },
          encoding: { x, y: { field: 'chance', type: 'quantitative' }, tooltip: tooltip(['task', 'task'], ['chance', 'chance level', '.1%']) },
        }] : []),
        ...(intervals ? [{
          data: { values },
          mark: { type: 'rule', strokeWidth: 1.5 },
          encoding: { x, xOffset, y: { ...y, field: 'low' }, y2: { field: 'high' }, color: configColor(data.configs, legendOf(style)) },
        }] : []),
        {
          data: { values },
          mark: { type: 'point', filled: true, size: 50 * style.pointScale, opacity: 1 },
          encoding: {
            x,
            xOffset,
            y,
            color: configColor(data.configs, legendOf(style)),
            tooltip: tooltip(['config', 'configuration'], ['task', 'task'], ['metric', 'metric'], ['accuracy', 'accuracy', '.1%'], ['low', '95% interval low', '.1%'], ['high', '95% interval high', '.1%']),
          },
        },
      ],
    },
  };
}

function expertsPanel(data: RunData, experts: Map<string, number | null>, shown: readonly string[], style: ChartStyle): Panel | null {
  const values = shown.filter((c) => experts.get(c) !== null).map((config) => ({ config, experts: experts.get(config) }));
  if (values.length === 0) return null;
  const y = { field: 'experts', type: 'quantitative', title: 'experts per token' };
  return {
    title: 'Expert efficiency',
    subtitle: 'experts per token, mean over tasks',
    caption: 'mean experts per token',
    view: {
      data: { values },
      encoding: { x: panelConfigAxis(shown, style), y },
      layer: [
        { mark: 'bar', encoding: { color: configColor(data.configs, legendOf(style)), tooltip: tooltip(['config', 'configuration'], ['experts', 'experts per token', '.3f']) } },
        { mark: { type: 'text', dy: -7, fontSize: style.fonts.note }, encoding: { text: { field: 'experts', type: 'quantitative', format: '.2f' } } },
      ],
    },
  };
}

/** max_k × alpha, colour = mean experts per token; the text is the main task's perplexity change vs the baseline. */
function sensitivityPanel(bh: readonly ConfigInfo[], experts: Map<string, number | null>, change: Map<string, number | null>, task: string, style: ChartStyle): Panel | null {
  const annotated = bh.some((c) => change.get(c.name) != null);
  const measured = bh.filter((c) => experts.get(c.name) != null);
  if (measured.length === 0) return null;
  const labelOf = (c: ConfigInfo, digits: number) => {
    const delta = change.get(c.name) ?? null;
    if (!annotated) return formatNumber(experts.get(c.name) as number, digits);
    return delta === null ? '' : formatNumber(delta, digits, { signed: true });
  };
  // The longest label must fit its cell: digits, signs and % average under 0.7 em in DejaVu Sans. On screen the
  // text shrinks to fit; on paper it keeps the style's size, the least readable in print, and drops a decimal instead.
  const cellWidth = panelSize(style).width / new Set(measured.map((c) => c.alpha)).size;
  const longestAt = (digits: number) => Math.max(...measured.map((c) => labelOf(c, digits).length));
  const fontSize = style.printed ? style.fonts.note : Math.max(7, Math.min(11, Math.floor(cellWidth / (0.7 * longestAt(2)))));
  const digits = style.printed && longestAt(2) * 0.7 * fontSize > cellWidth ? 1 : 2;
  const values = measured.map((c) => ({
    config: c.name, alpha: c.alpha, maxK: c.maxK, experts: experts.get(c.name) as number, change: change.get(c.name) ?? null, label: labelOf(c, digits),
  }));
  const range = values.map((v) => v.experts);
  // Viridis is dark at its low end: light text there, dark text on the light high end.
  const midpoint = (Math.min(...range) + Math.max(...range)) / 2;
  return {
    title: 'Alpha sensitivity',
    subtitle: annotated ? 'colour: experts/token; text: Δ ln perplexity (nats)' : 'colour and text: experts/token',
    caption: annotated ? `mean experts per token over max_k × alpha, with the change of ln perplexity vs the baseline on ${task} (nats) as text` : 'mean experts per token over max_k × alpha',
    view: {
      data: { values },
      encoding: {
        x: { field: 'alpha', type: 'ordinal', title: 'alpha (BH false-discovery rate)', sort: 'ascending', axis: { labelAngle: 0 } },
        y: { field: 'maxK', type: 'ordinal', title: 'max_k', sort: 'descending' },
      },
      layer: [
        {
          mark: 'rect',
          encoding: {
            fill: {
              field: 'experts',
              type: 'quantitative',
              title: 'experts / token',
              scale: { scheme: SEQUENTIAL_SCHEME },
              legend: { orient: 'bottom', direction: 'horizontal', gradientLength: 160, format: '.1f' },
            },
            tooltip: tooltip(['config', 'configuration'], ['alpha', 'alpha', '.2f'], ['maxK', 'max_k', 'd'], ['experts', 'experts per token', '.3f'], ['change', 'Δ ln perplexity vs baseline (nats)', FORMATS.change]),
          },
        },
        {
          mark: { type: 'text', fontSize },
          encoding: { text: { field: 'label', type: 'nominal' }, color: { condition: { test: `datum.experts < ${midpoint}`, value: 'white' }, value: 'black' } },
        },
      ],
    },
  };
}

/** Mean experts vs perplexity on the main task for every configuration, the Pareto set joined by a dashed line. */
function paretoPanel(data: RunData, summaries: readonly ConfigSummary[], task: string, style: ChartStyle): Panel | null {
  const points = summaries.filter((s) => s.perplexity !== null && s.perplexityExperts !== null);
  if (points.length === 0) return null;
  const frontier = paretoOptimal(points.map((s) => s.perplexityExperts as number), points.map((s) => s.perplexity as number));
  const values = points.map((s, i) => ({ config: s.config, experts: s.perplexityExperts, perplexity: s.perplexity, paretoOptimal: frontier[i] }));
  return {
    title: 'Pareto frontier',
    subtitle: `on ${task}; dashed: Pareto set`,
    caption: `experts per token vs perplexity on ${task}, the Pareto set joined by a dashed line`,
    view: {
      data: { values },
      encoding: {
        x: { field: 'experts', type: 'quantitative', title: 'experts per token (log₂ scale)', scale: { type: 'log', base: 2 } },
        y: { field: 'perplexity', type: 'quantitative', title: 'perplexity (log scale)', scale: { type: 'log' }, axis: LOG_AXIS },
      },
      layer: [
        { transform: [{ filter: 'datum.paretoOptimal' }], mark: { type: 'line', color: '#000000', strokeDash: [5, 3], strokeWidth: 1.5 }, encoding: { order: { field: 'experts' } } },
        {
          mark: { type: 'point', filled: true, size: 80 * style.pointScale, opacity: 0.9 },
          encoding: {
            color: configColor(data.configs, legendOf(style)),
            tooltip: tooltip(['config', 'configuration'], ['experts', 'experts per token', '.3f'], ['perplexity', 'perplexity', FORMATS.value], ['paretoOptimal', 'Pareto-optimal']),
          },
        },
      ],
    },
  };
}

/** Share of (position, layer) pairs at min_k, strictly between, and at max_k, mean over tasks. */
function behaviourPanel(data: RunData, bh: readonly ConfigInfo[], style: ChartStyle): Panel | null {
  // Short enough for the legend to span no more than its panel.
  const levels = ['floor', 'mid', 'ceiling'];
  const values = bh.flatMap((c) => {
    const cells = data.cells.filter((cell) => cell.config === c.name);
    const floor = meanOf(cells.map((cell) => rowNumber(cell, 'floor_hit_rate')));
    const ceiling = meanOf(cells.map((cell) => rowNumber(cell, 'ceiling_hit_rate')));
    if (floor === null || ceiling === null) return [];
    const shares = [floor, Math.max(0, 1 - floor - ceiling), ceiling];
    return levels.map((level, i) => ({ config: c.name, level, order: i, share: shares[i] }));
  });
  if (values.length === 0) return null;
  const names = bh.map((c) => c.name);
  return {
    title: 'Routing behaviour',
    subtitle: 'floor = min_k, ceiling = max_k; mean over tasks',
    caption: 'share of token–layer decisions at min_k (floor), between (mid) and at max_k (ceiling)',
    view: {
      data: { values },
      mark: 'bar',
      encoding: {
        x: panelConfigAxis(names, style),
        y: { field: 'share', type: 'quantitative', stack: 'zero', title: 'share of decisions', scale: { domain: [0, 1] }, axis: { format: '.0%' } },
        fill: { field: 'level', type: 'nominal', title: 'experts selected', sort: levels, scale: { domain: levels, range: BEHAVIOUR_COLORS }, legend: { orient: 'top', direction: 'horizontal', title: null } },
        order: { field: 'order' },
        tooltip: tooltip(['config', 'configuration'], ['level', 'experts selected'], ['share', 'share', '.1%']),
      },
    },
  };
}

function utilisationPanel(data: RunData, shown: readonly string[], style: ChartStyle): Panel | null {
  const values = shown
    .map((config) => ({ config, utilisation: meanOf(data.cells.filter((c) => c.config === config).map((c) => rowNumber(c, 'expert_utilization'))) }))
    .filter((v) => v.utilisation !== null);
  if (values.length === 0) return null;
  return {
    title: 'Expert utilisation',
    subtitle: 'per layer, mean over tasks',
    caption: 'share of experts used per layer',
    view: {
      data: { values },
      mark: 'bar',
      encoding: {
        x: panelConfigAxis(shown, style),
        y: { field: 'utilisation', type: 'quantitative', title: 'experts used (%)', scale: { domain: [0, 1] }, axis: { format: '.0%' } },
        color: configColor(data.configs, legendOf(style)),
        tooltip: tooltip(['config', 'configuration'], ['utilisation', 'experts used at least once', '.1%']),
      },
    },
  };
}

/** Per-layer mean experts per token, averaged element-wise over the configuration's tasks. */
function layerPanel(data: RunData, shown: readonly string[], style: ChartStyle): Panel | null {
  const values = shown.flatMap((config) => {
    const perTask = data.cells.filter((c) => c.config === config).map((c) => c.summary.routing.per_layer_avg_experts);
    const layers = Math.max(0, ...perTask.map((p) => p.length));
    const at = (layer: number) => (p: readonly number[]) => (Number.isFinite(p[layer]) ? p[layer] : null);
    return Array.from({ length: layers }, (_, layer) => ({ config, layer: data.moeLayers[layer] ?? layer, experts: meanOf(perTask.map(at(layer))) })).filter((v) => v.experts !== null);
  });
  if (values.length === 0) return null;
  return {
    title: 'Layer-wise analysis',
    subtitle: 'experts per token by layer, mean over tasks',
    caption: 'mean experts per token by layer',
    view: {
      data: { values },
      mark: { type: 'line', point: { filled: true, size: 40 * style.pointScale } },
      encoding: {
        x: { field: 'layer', type: 'quantitative', title: 'layer', axis: { tickMinStep: 1, format: 'd' } },
        y: { field: 'experts', type: 'quantitative', title: 'experts per token' },
        color: configColor(data.configs, legendOf(style)),
        tooltip: tooltip(['config', 'configuration'], ['layer', 'layer', 'd'], ['experts', 'experts per token', '.3f']),
      },
    },
  };
}

function speedQualityPanel(data: RunData, summaries: readonly ConfigSummary[], task: string, style: ChartStyle): Panel | null {
  const values = summaries
    .filter((s) => s.perplexity !== null && s.perplexityTokensPerSecond !== null)
    .map((s) => ({ config: s.config, tokensPerSecond: s.perplexityTokensPerSecond, perplexity: s.perplexity }));
  if (values.length === 0) return null;
  return {
    title: 'Speed–quality trade-off',
    subtitle: `on ${task}`,
    caption: `throughput vs perplexity on ${task}`,
    view: {
      data: { values },
      mark: { type: 'point', filled: true, size: 80 * style.pointScale, opacity: 0.9 },
      encoding: {
        x: { field: 'tokensPerSecond', type: 'quantitative', title: 'throughput (scored tokens/s)', scale: { zero: false }, axis: { format: FORMATS.axisNumber } },
        y: { field: 'perplexity', type: 'quantitative', title: 'perplexity (log scale)', scale: { type: 'log' }, axis: LOG_AXIS },
        color: configColor(data.configs, legendOf(style)),
        tooltip: tooltip(['config', 'configuration'], ['tokensPerSecond', 'tokens/s', ',.1f'], ['perplexity', 'perplexity', FORMATS.value]),
      },
    },
  };
}

export function bhCharts(data: RunData, records: readonly CellRecord[], style: ChartStyle): Chart[] {
  const bh = data.configs.filter((c) => c.routerKind === 'bh');
  if (bh.length === 0) return [];
  const shown = data.configs.filter((c) => c.isBaseline || c.routerKind === 'bh').map((c) => c.name);
  const summaries = configSummaries(data, records);
  const experts = new Map(summaries.map((s) => [s.config, s.experts]));
  const change = new Map(summaries.map((s) => [s.config, s.perplexityChange]));
  const task = mainPerplexityTask(data, records) ?? '';
  const panels = [
    perplexityPanel(data, records, shown, style),
    accuracyPanel(data, records, shown, style),
    sensitivityPanel(bh, experts, change, task, style),
    paretoPanel(data, summaries, task, style),
    layerPanel(data, shown, style),
    speedQualityPanel(data, summaries, task, style),
    expertsPanel(data, experts, shown, style),
    behaviourPanel(data, bh, style),
    utilisationPanel(data, shown, style),
  ].filter((p): p is Panel => p !== null);
  const title = 'BH routing against the baseline';
  const parts = panels.map((p, i) => `${letter(i)} ${p.caption}`);
  return [
    {
      name: 'bh-9-panel',
      title,
      caption: `BH configurations and the baseline: ${parts.join(', ')}; means are over tasks.`,
      section: 'bh',
      spec: vegaLiteSpec({
        title,
        columns: COLUMNS,
        align: 'each',
        // On paper the theme's panel gap, which panelSize counts on.
        ...(style.printed ? {} : { spacing: { row: 40, column: 40 } }),
        concat: panels.map(lettered(style)),
        resolve: {
          scale: { x: 'independent', y: 'independent', fill: 'independent', shape: 'independent' },
          legend: { fill: 'independent', shape: 'independent' },
        },
      }, style),
    },
  ];
}
