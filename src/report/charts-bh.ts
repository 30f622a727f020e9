/**
 * The BH figure: nine fixed-size panels comparing the BH configurations with the baseline, as one concatenated
 * chart. Configuration colours are one shared scale (one legend); every other scale is the panel's own. Panels with
 * configuration names on their x axis share the last row, so only one row pays for the slanted names.
 */
import { paretoOptimal } from '../experiments/stats.js';
import {
  configAxis,
  configColor,
  configSummaries,
  FORMATS,
  LOG_AXIS,
  mainPerplexityTask,
  meanOf,
  natsChange,
  tooltip,
  vegaLiteSpec,
  type CellRecord,
  type ConfigSummary,
} from './charts-common.js';
import { formatNumber, rowNumber } from './table.js';
import { SEQUENTIAL_SCHEME } from './theme.js';
import type { Chart, ConfigInfo, RunData } from './types.js';

/** Three panels abreast with their axes come to about 1000 px: a page still prints the figure at half size or more. */
const PANEL_WIDTH = 230;
const PANEL_HEIGHT = 170;
/** The one configuration legend, under the grid rather than beside it so it adds no width. */
const CONFIG_LEGEND = { orient: 'bottom', direction: 'horizontal', columns: 4, symbolLimit: 0 };

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

function lettered(panel: Panel, index: number): Record<string, unknown> {
  const text = `${letter(index)} ${panel.title}`;
  return { title: { text, subtitle: panel.subtitle, fontSize: 13, subtitleFontSize: 11 }, width: PANEL_WIDTH, height: PANEL_HEIGHT, ...panel.view };
}

/** A config axis without its title: the panel title already says what the bars are. */
function panelConfigAxis(names: readonly string[]): Record<string, unknown> {
  return { ...configAxis(names), title: null };
}

function perplexityPanel(data: RunData, records: readonly CellRecord[], shown: readonly string[]): Panel | null {
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
      mark: { type: 'point', filled: true, size: 70, opacity: 0.9 },
      encoding: {
        x: { field: 'task', type: 'nominal', title: null, sort: data.tasks, axis: { labelAngle: 0 } },
        xOffset: { field: 'config', type: 'nominal', sort: shown },
        y: { field: 'perplexity', type: 'quantitative', title: 'perplexity (log scale)', scale: { type: 'log' }, axis: LOG_AXIS },
        color: configColor(data.configs, CONFIG_LEGEND),
        tooltip: tooltip(['config', 'configuration'], ['task', 'task'], ['perplexity', 'perplexity', FORMATS.value]),
      },
    },
  };
}

function accuracyPanel(data: RunData, records: readonly CellRecord[], shown: readonly string[]): Panel | null {
  const values = records
    .filter((r) => shown.includes(r.config) && r.accuracy !== null)
    .map((r) => ({ config: r.config, task: r.task, metric: r.accuracyMetric, accuracy: r.accuracy }));
  if (values.length === 0) return null;
  return {
    title: 'Task accuracy',
    subtitle: 'baseline vs BH, per task',
    caption: 'accuracy per task',
    view: {
      data: { values },
      mark: 'bar',
      encoding: {
        x: { field: 'task', type: 'nominal', title: null, sort: data.tasks, axis: { labelAngle: -35 } },
        xOffset: { field: 'config', type: 'nominal', sort: shown },
        y: { field: 'accuracy', type: 'quantitative', title: 'accuracy (% correct)', scale: { domain: [0, 1] }, axis: { format: '.0%' } },
        color: configColor(data.configs, CONFIG_LEGEND),
        tooltip: tooltip(['config', 'configuration'], ['task', 'task'], ['metric', 'metric'], ['accuracy', 'accuracy', '.1%']),
      },
    },
  };
}

function expertsPanel(data: RunData, experts: Map<string, number | null>, shown: readonly string[]): Panel | null {
  const values = shown.filter((c) => experts.get(c) !== null).map((config) => ({ config, experts: experts.get(config) }));
  if (values.length === 0) return null;
  const y = { field: 'experts', type: 'quantitative', title: 'experts per token' };
  return {
    title: 'Average experts per token',
    subtitle: 'mean over tasks',
    caption: 'mean experts per token',
    view: {
      data: { values },
      encoding: { x: panelConfigAxis(shown), y },
      layer: [
        { mark: 'bar', encoding: { color: configColor(data.configs, CONFIG_LEGEND), tooltip: tooltip(['config', 'configuration'], ['experts', 'experts per token', '.3f']) } },
        { mark: { type: 'text', dy: -7, fontSize: 10 }, encoding: { text: { field: 'experts', type: 'quantitative', format: '.2f' } } },
      ],
    },
  };
}

/** max_k × alpha, colour = mean experts per token; the text is the main task's perplexity change vs the baseline. */
function sensitivityPanel(bh: readonly ConfigInfo[], experts: Map<string, number | null>, change: Map<string, number | null>, task: string): Panel | null {
  const annotated = bh.some((c) => change.get(c.name) != null);
  const values = bh
    .filter((c) => experts.get(c.name) != null)
    .map((c) => {
      const delta = change.get(c.name) ?? null;
      const perToken = experts.get(c.name) as number;
      const label = annotated ? (delta === null ? '' : natsChange(delta)) : formatNumber(perToken, 2);
      return { config: c.name, alpha: c.alpha, maxK: c.maxK, experts: perToken, change: delta, label };
    });
  if (values.length === 0) return null;
  const range = values.map((v) => v.experts);
  // Viridis is dark at its low end: light text there, dark text on the light high end.
  const midpoint = (Math.min(...range) + Math.max(...range)) / 2;
  // The longest label must fit its cell: digits, signs and % average under 0.7 em in DejaVu Sans.
  const cellWidth = PANEL_WIDTH / new Set(values.map((v) => v.alpha)).size;
  const longest = Math.max(...values.map((v) => v.label.length));
  const fontSize = Math.max(7, Math.min(11, Math.floor(cellWidth / (0.7 * longest))));
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
function paretoPanel(data: RunData, summaries: readonly ConfigSummary[], task: string): Panel | null {
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
          mark: { type: 'point', filled: true, size: 80, opacity: 0.9 },
          encoding: {
            color: configColor(data.configs, CONFIG_LEGEND),
            tooltip: tooltip(['config', 'configuration'], ['experts', 'experts per token', '.3f'], ['perplexity', 'perplexity', FORMATS.value], ['paretoOptimal', 'Pareto-optimal']),
          },
        },
      ],
    },
  };
}

/** Share of (position, layer) pairs at min_k, strictly between, and at max_k, mean over tasks. */
function behaviourPanel(data: RunData, bh: readonly ConfigInfo[]): Panel | null {
  const levels = ['min_k (floor)', 'between', 'max_k (ceiling)'];
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
    subtitle: 'experts selected, mean over tasks',
    caption: 'share of token–layer decisions at min_k, between and at max_k',
    view: {
      data: { values },
      mark: 'bar',
      encoding: {
        x: panelConfigAxis(names),
        y: { field: 'share', type: 'quantitative', stack: 'zero', title: 'share of decisions', scale: { domain: [0, 1] }, axis: { format: '.0%' } },
        fill: { field: 'level', type: 'nominal', title: 'experts selected', sort: levels, scale: { domain: levels, range: BEHAVIOUR_COLORS }, legend: { orient: 'top', direction: 'horizontal', title: null } },
        order: { field: 'order' },
        tooltip: tooltip(['config', 'configuration'], ['level', 'experts selected'], ['share', 'share', '.1%']),
      },
    },
  };
}

function utilisationPanel(data: RunData, shown: readonly string[]): Panel | null {
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
        x: panelConfigAxis(shown),
        y: { field: 'utilisation', type: 'quantitative', title: 'experts used (%)', scale: { domain: [0, 1] }, axis: { format: '.0%' } },
        color: configColor(data.configs, CONFIG_LEGEND),
        tooltip: tooltip(['config', 'configuration'], ['utilisation', 'experts used at least once', '.1%']),
      },
    },
  };
}

/** Per-layer mean experts per token, averaged element-wise over the configuration's tasks. */
function layerPanel(data: RunData, shown: readonly string[]): Panel | null {
  const values = shown.flatMap((config) => {
    const perTask = data.cells.filter((c) => c.config === config).map((c) => c.summary.routing.per_layer_avg_experts);
    const layers = Math.max(0, ...perTask.map((p) => p.length));
    const at = (layer: number) => (p: readonly number[]) => (Number.isFinite(p[layer]) ? p[layer] : null);
    return Array.from({ length: layers }, (_, layer) => ({ config, layer: data.moeLayers[layer] ?? layer, experts: meanOf(perTask.map(at(layer))) })).filter((v) => v.experts !== null);
  });
  if (values.length === 0) return null;
  return {
    title: 'Layer-wise experts per token',
    subtitle: 'mean over tasks',
    caption: 'mean experts per token by layer',
    view: {
      data: { values },
      mark: { type: 'line', point: { filled: true, size: 40 } },
      encoding: {
        x: { field: 'layer', type: 'quantitative', title: 'layer', axis: { tickMinStep: 1, format: 'd' } },
        y: { field: 'experts', type: 'quantitative', title: 'experts per token' },
        color: configColor(data.configs, CONFIG_LEGEND),
        tooltip: tooltip(['config', 'configuration'], ['layer', 'layer', 'd'], ['experts', 'experts per token', '.3f']),
      },
    },
  };
}

function speedQualityPanel(data: RunData, summaries: readonly ConfigSummary[], task: string): Panel | null {
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
      mark: { type: 'point', filled: true, size: 80, opacity: 0.9 },
      encoding: {
        x: { field: 'tokensPerSecond', type: 'quantitative', title: 'throughput (scored tokens/s)', scale: { zero: false }, axis: { format: FORMATS.axisNumber } },
        y: { field: 'perplexity', type: 'quantitative', title: 'perplexity (log scale)', scale: { type: 'log' }, axis: LOG_AXIS },
        color: configColor(data.configs, CONFIG_LEGEND),
        tooltip: tooltip(['config', 'configuration'], ['tokensPerSecond', 'tokens/s', ',.1f'], ['perplexity', 'perplexity', FORMATS.value]),
      },
    },
  };
}

export function bhCharts(data: RunData, records: readonly CellRecord[]): Chart[] {
  const bh = data.configs.filter((c) => c.routerKind === 'bh');
  if (bh.length === 0) return [];
  const shown = data.configs.filter((c) => c.isBaseline || c.routerKind === 'bh').map((c) => c.name);
  const summaries = configSummaries(data, records);
  const experts = new Map(summaries.map((s) => [s.config, s.experts]));
  const change = new Map(summaries.map((s) => [s.config, s.perplexityChange]));
  const task = mainPerplexityTask(data, records) ?? '';
  const panels = [
    perplexityPanel(data, records, shown),
    accuracyPanel(data, records, shown),
    sensitivityPanel(bh, experts, change, task),
    paretoPanel(data, summaries, task),
    layerPanel(data, shown),
    speedQualityPanel(data, summaries, task),
    expertsPanel(data, experts, shown),
    behaviourPanel(data, bh),
    utilisationPanel(data, shown),
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
        columns: 3,
        align: 'each',
        spacing: { row: 40, column: 40 },
        concat: panels.map(lettered),
        resolve: {
          scale: { x: 'independent', y: 'independent', fill: 'independent', shape: 'independent' },
          legend: { fill: 'independent', shape: 'independent' },
        },
      }),
    },
  ];
}
