/**
 * The analysis's charts as complete Vega-Lite specs in the report's theme (fonts, palette, viridis heatmaps),
 * sized so that a heatmap keeps every expert a visible cell at E = 128 and its axis labels apart.
 */
import { tooltip, vegaLiteSpec } from '../report/charts-common.js';
import { CONFIG_PALETTE, configColorScale, DIVERGING_SCHEME, SEQUENTIAL_SCHEME } from '../report/theme.js';
import { MEASURES } from './adaptive.js';
import type { Analysis } from './analyze.js';

export interface AnalysisChart {
  /** File stem under figures/. */
  readonly name: string;
  readonly title: string;
  /** What the chart shows, in one sentence (analyze.md puts it under the figure). */
  readonly caption: string;
  readonly spec: Record<string, unknown>;
}

/** Pixels per expert in a heatmap: 8 up to E = 64, then fewer so that E = 128 stays within a page's width. */
function cellSize(E: number): number {
  return E <= 64 ? 8 : 6;
}

/** An expert axis labelled every 8 experts (every 16 past E = 64, where 8 would crowd). */
function expertAxis(E: number, title: string): Record<string, unknown> {
  const step = E <= 64 ? 8 : 16;
  return { values: Array.from({ length: Math.ceil(E / step) }, (_, i) => step * i), labelAngle: 0, title };
}

function vocabularyChart(a: Analysis): AnalysisChart {
  const { numLayers: L, numExperts: E, vocabulary: v } = a;
  const liftTokens = new Map<number, string>();
  for (const t of v.topTokens) {
    if (t.ranking !== 'lift' || t.rank > 3) continue;
    const cell = t.layer * E + t.expert;
    liftTokens.set(cell, `${liftTokens.has(cell) ? `${liftTokens.get(cell)}, ` : ''}${JSON.stringify(a.tokenText.get(t.token) ?? `#${t.token}`)}`);
  }
  const values = Array.from({ length: L * E }, (_, cell) => ({
    layer: Math.floor(cell / E), expert: cell % E, score: v.selections[cell] > 0 ? v.score[cell] : null,
    topShare: v.topShare[cell], selections: v.selections[cell], tokens: liftTokens.get(cell) ?? '',
  })).filter((d) => d.score !== null);
  const title = `Vocabulary specialisation: ${a.config}`;
  return {
    name: 'vocabulary-specialisation',
    title,
    caption: `For each MoE layer and expert, the mean over the expert's selections of the share of that token's occurrences the expert received (1: every token it gets comes to it every time), over ${a.analysedTasks.join(', ')}; blank: never selected.`,
    spec: vegaLiteSpec({
      title,
      width: cellSize(E) * E,
      height: Math.max(80, 18 * L),
      data: { values },
      mark: 'rect',
      encoding: {
        x: { field: 'expert', type: 'ordinal', axis: expertAxis(E, 'expert') },
        y: { field: 'layer', type: 'ordinal', title: 'MoE layer' },
        fill: { field: 'score', type: 'quantitative', title: 'specialisation', scale: { scheme: SEQUENTIAL_SCHEME, domain: [0, Math.max(...values.map((d) => d.score!))] } },
        tooltip: tooltip(['layer', 'MoE layer', 'd'], ['expert', 'expert', 'd'], ['score', 'specialisation', '.3f'], ['topShare', `share in its top ${a.top} tokens`, '.1%'],
          ['selections', 'selections', ',d'], ['tokens', 'top tokens by lift']),
      },
    }),
  };
}

function taskChart(a: Analysis): AnalysisChart {
  const { numLayers: L, numExperts: E } = a;
  const { tasks, share, uniform } = a.taskSpecialisation;
  const values = tasks.flatMap((task, t) => Array.from({ length: L * E }, (_, cell) => {
    const layer = Math.floor(cell / E);
    const s = share[t * L * E + cell];
    const u = uniform[t * L + layer];
    return { task, layer, expert: cell % E, share: s, uniform: u, deviation: 100 * (s - u) };
  }));
  const extreme = Math.max(1e-9, ...values.map((d) => Math.abs(d.deviation)));
  const title = `Task specialisation: ${a.config}`;
  return {
    name: 'task-specialisation',
    title,
    caption: `Share of each task's positions routed to each expert minus the even share (mean experts per position ÷ ${E}), in percentage points; orange: the expert takes more of this task than an even spread would give it, blue: less.`,
    spec: vegaLiteSpec({
      title,
      data: { values },
      facet: { row: { field: 'task', type: 'nominal', title: null, sort: [...tasks], header: { labelAngle: 0, labelAlign: 'left' } } },
      spec: {
        width: cellSize(E) * E,
        height: Math.max(60, 14 * L),
        mark: 'rect',
        encoding: {
          x: { field: 'expert', type: 'ordinal', axis: expertAxis(E, 'expert') },
          y: { field: 'layer', type: 'ordinal', title: 'MoE layer' },
          fill: { field: 'deviation', type: 'quantitative', title: 'share − even (pp)', scale: { scheme: DIVERGING_SCHEME, domain: [-extreme, extreme], domainMid: 0 } },
          tooltip: tooltip(['task', 'task'], ['layer', 'MoE layer', 'd'], ['expert', 'expert', 'd'], ['share', 'share of positions', '.2%'], ['uniform', 'even share', '.2%'], ['deviation', 'deviation (pp)', '+.2f']),
        },
      },
    }),
  };
}

function coactivationChart(a: Analysis): AnalysisChart {
  const E = a.numExperts;
  const { matrix, layer } = a.coactivation;
  const values = [];
  for (let i = 0; i < E; i++) for (let j = 0; j < E; j++) if (Number.isFinite(matrix[i * E + j])) values.push({ i, j, value: matrix[i * E + j] });
  const size = E <= 64 ? 8 : 5;
  const title = `Co-activation at MoE layer ${layer}: ${a.config}`;
  return {
    name: `coactivation-layer-${layer}`,
    title,
    caption: `Of the positions that selected expert i (row), the share that also selected expert j (column), at MoE layer ${layer}, over ${a.analysedTasks.join(', ')}; the diagonal is left blank.`,
    spec: vegaLiteSpec({
      title,
      width: size * E,
      height: size * E,
      data: { values },
      mark: 'rect',
      encoding: {
        x: { field: 'j', type: 'ordinal', axis: expertAxis(E, 'expert j (also selected)') },
        y: { field: 'i', type: 'ordinal', axis: { ...expertAxis(E, 'expert i (selected)') } },
        fill: { field: 'value', type: 'quantitative', title: 'N(i ∧ j) / N(i)', scale: { scheme: SEQUENTIAL_SCHEME, domain: [0, Math.max(1e-9, ...values.map((d) => d.value))] } },
        tooltip: tooltip(['i', 'expert i', 'd'], ['j', 'expert j', 'd'], ['value', 'co-activation', '.3f']),
      },
    }),
  };
}

function crossLayerChart(a: Analysis): AnalysisChart | null {
  if (a.crossLayer.length === 0) return null;
  const parts = [['mutual information I(ℓ; ℓ+1)', 'mutualInformation'], ['conditional entropy H(ℓ+1 | ℓ)', 'conditionalEntropy']] as const;
  const values = a.crossLayer.flatMap((p) => parts.map(([part, key], order) => ({ pair: `${p.from} → ${p.from + 1}`, part, order, bits: p[key], total: p.entropyNext })));
  const title = `Cross-layer routing: ${a.config}`;
  return {
    name: 'cross-layer',
    title,
    caption: `For each pair of adjacent MoE layers, the entropy of layer ℓ+1's first-ranked expert (bar height) split into what layer ℓ's first-ranked expert tells about it (mutual information) and what it leaves (conditional entropy), in bits, plug-in estimates over ${a.analysedTasks.join(', ')}.`,
    spec: vegaLiteSpec({
      title,
      width: Math.max(200, 60 * a.crossLayer.length),
      height: 220,
      data: { values },
      mark: 'bar',
      encoding: {
        x: { field: 'pair', type: 'ordinal', title: 'MoE layers ℓ → ℓ+1', sort: a.crossLayer.map((p) => `${p.from} → ${p.from + 1}`), axis: { labelAngle: 0 } },
        y: { field: 'bits', type: 'quantitative', title: 'bits', stack: 'zero' },
        color: { field: 'part', type: 'nominal', title: null, sort: parts.map(([part]) => part), scale: { domain: parts.map(([part]) => part), range: CONFIG_PALETTE.slice(0, 2) }, legend: { orient: 'bottom', direction: 'vertical' } },
        order: { field: 'order', type: 'quantitative' },
        tooltip: tooltip(['pair', 'layers'], ['part', 'part'], ['bits', 'bits', '.3f'], ['total', 'H(ℓ+1)', '.3f']),
      },
    }),
  };
}

function adaptiveChart(a: Analysis): AnalysisChart | null {
  if (a.adaptive.length === 0) return null;
  const values = a.adaptive.flatMap((c) => c.bins.map((b) => {
    const half = b.standardError === null ? 0 : 1.96 * b.standardError;
    return { config: c.config, measure: `${MEASURES[b.measure].title} (${MEASURES[b.measure].unit})`, x: b.mean, count: b.meanCount, low: b.meanCount - half, high: b.meanCount + half, n: b.n };
  }));
  // Colours are assigned over all the run's configurations, so each keeps the colour the report gives it.
  const all = configColorScale(a.configs.map((name) => ({ name, isBaseline: name === a.baseline })));
  const shown = all.domain.flatMap((name, i) => (a.adaptive.some((c) => c.config === name) ? [[name, all.range[i]]] : []));
  const scale = { domain: shown.map(([name]) => name), range: shown.map(([, colour]) => colour) };
  const measures = [...new Set(values.map((v) => v.measure))];
  const color = { field: 'config', type: 'nominal', title: 'configuration', scale, legend: { orient: 'bottom', direction: 'vertical' } };
  const title = 'What drives adaptive counts';
  return {
    name: 'adaptive-counts',
    title,
    caption: 'Mean experts selected per (position, layer) in quantile bins of each measure, with ±1.96 standard errors, for every configuration whose count varies (a sample of its rows when it has many).',
    spec: vegaLiteSpec({
      title,
      data: { values },
      facet: { column: { field: 'measure', type: 'nominal', title: null, sort: measures } },
      spec: {
        width: 260,
        height: 200,
        encoding: { x: { field: 'x', type: 'quantitative', title: 'bin mean', scale: { zero: false } }, color },
        layer: [
          { mark: { type: 'rule' }, encoding: { y: { field: 'low', type: 'quantitative', title: 'mean experts selected', scale: { zero: false } }, y2: { field: 'high' } } },
          { mark: { type: 'line', point: true }, encoding: { y: { field: 'count', type: 'quantitative' }, tooltip: tooltip(['config', 'configuration'], ['x', 'bin mean', '.3f'], ['count', 'mean experts', '.2f'], ['n', 'rows', ',d']) } },
        ],
      },
      resolve: { scale: { x: 'independent' } },
    }),
  };
}

export function analysisCharts(a: Analysis): AnalysisChart[] {
  return [vocabularyChart(a), taskChart(a), coactivationChart(a), crossLayerChart(a), adaptiveChart(a)].filter((c): c is AnalysisChart => c !== null);
}
