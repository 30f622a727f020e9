/**
 * Charts of routing internals: from the traces, which experts each layer uses and how many experts a token gets;
 * the per-token view of one document; and the calibrated null model each BH test compares router logits against.
 */
import { RoutelabError } from '../errors.js';
import { panelWidth, slug, tooltip, vegaLiteSpec, viewSize } from './charts-common.js';
import { MONO_FONT_FAMILY, SEQUENTIAL_SCHEME, type ChartStyle, type HeatmapScale } from './theme.js';
import { formatNumber } from './table.js';
import type { Chart, DocumentView, NullLayerView, RunData, TraceAggregate } from './types.js';

/**
 * Positions of a document view shown: more token labels than this no longer fit a printed page (on paper, where
 * the labels are larger, a column's height).
 */
const MAX_DOCUMENT_TOKENS = { screen: 64, paper: 40 } as const;

/** Grid points per null-model layer drawn: the KDE is smooth, so thinning a finer grid changes nothing visible. */
const MAX_NULL_POINTS = 256;

/** One configuration's traces pooled over its tasks, each task weighted by its scored positions. */
interface PooledTrace {
  readonly config: string;
  readonly tasks: number;
  readonly numLayers: number;
  readonly numExperts: number;
  readonly maxK: number;
  readonly expertLoad: Float64Array;
  readonly countHistogram: Float64Array;
}

function pool(config: string, traces: readonly TraceAggregate[]): PooledTrace {
  const [first] = traces;
  const expertLoad = new Float64Array(first.numLayers * first.numExperts);
  const countHistogram = new Float64Array(first.numLayers * (first.maxK + 1));
  let tokens = 0;
  for (const t of traces) {
    if (t.numLayers !== first.numLayers || t.numExperts !== first.numExperts || t.maxK !== first.maxK) {
      throw new RoutelabError(
        `trace of ${config} on ${t.task}`,
        `expected ${first.numLayers} layers × ${first.numExperts} experts, max_k ${first.maxK} like its trace on ${first.task}, got ${t.numLayers} × ${t.numExperts}, max_k ${t.maxK}`,
      );
    }
    for (let i = 0; i < expertLoad.length; i++) expertLoad[i] += t.expertLoad[i] * t.tokens;
    for (let i = 0; i < countHistogram.length; i++) countHistogram[i] += t.countHistogram[i] * t.tokens;
    tokens += t.tokens;
  }
  if (tokens > 0) {
    for (let i = 0; i < expertLoad.length; i++) expertLoad[i] /= tokens;
    for (let i = 0; i < countHistogram.length; i++) countHistogram[i] /= tokens;
  }
  return { config, tasks: traces.length, numLayers: first.numLayers, numExperts: first.numExperts, maxK: first.maxK, expertLoad, countHistogram };
}

function pooledTraces(data: RunData): PooledTrace[] {
  return data.configs.flatMap(({ name }) => {
    const traces = data.traces.filter((t) => t.config === name);
    return traces.length > 0 ? [pool(name, traces)] : [];
  });
}

function tasksPhrase(n: number): string {
  return n === 1 ? 'its one traced task' : `its ${n} traced tasks, weighted by scored positions`;
}

/** The highest share of one trace's layer × expert loads. */
function highestLoad(trace: PooledTrace): number {
  return trace.expertLoad.reduce((m, v) => Math.max(m, v), 0);
}

/** `scale` is `shared` (`maxLoad` is then the highest over every heatmap of the report) or `per-panel`. */
function activationHeatmap(trace: PooledTrace, layerName: (moeLayer: number) => number, scale: HeatmapScale, maxLoad: number, style: ChartStyle): Chart {
  const { numLayers: L, numExperts: E } = trace;
  const values = Array.from({ length: L * E }, (_, i) => ({ layer: layerName(Math.floor(i / E)), expert: i % E, load: trace.expertLoad[i] }));
  const title = `Expert activation: ${trace.config}`;
  const top = scale === 'shared' ? maxLoad : highestLoad(trace);
  const range = `0 to ${formatNumber(100 * top, 1)}%`;
  return {
    name: `routing-heatmap-${slug(trace.config)}`,
    title,
    caption: `Share of scored positions at each layer that selected each expert under ${trace.config}, pooled over ${tasksPhrase(trace.tasks)}; ${
      scale === 'shared' ? `every heatmap of this report shares one colour scale (${range})` : `this heatmap's colour scale is its own (${range}): colours do not compare across heatmaps`}.`,
    section: 'routing',
    spec: vegaLiteSpec({
      title,
      ...viewSize(style, { width: Math.max(320, 8 * E), height: Math.max(120, 16 * L) }, Math.max(90, 12 * L), 'single'),
      data: { values },
      mark: 'rect',
      encoding: {
        x: {
          field: 'expert',
          type: 'ordinal',
          title: 'expert index',
          axis: { values: Array.from({ length: Math.ceil(E / 8) }, (_, i) => 8 * i), labelAngle: 0 },
        },
        y: { field: 'layer', type: 'ordinal', title: 'layer' },
        fill: { field: 'load', type: 'quantitative', title: 'share of positions', scale: { scheme: SEQUENTIAL_SCHEME, domain: [0, top] }, legend: { format: '.0%' } },
        tooltip: tooltip(['layer', 'layer', 'd'], ['expert', 'expert', 'd'], ['load', 'share of positions selecting it', '.2%']),
      },
    }, style, 'single'),
  };
}

/** Top-k selects exactly k everywhere, so only adaptive configurations have a distribution worth drawing. */
function expertsPerTokenDistribution(data: RunData, traces: readonly PooledTrace[], style: ChartStyle): Chart | null {
  const adaptive = traces.filter((t) => data.configs.find((c) => c.name === t.config)?.routerKind !== 'fixed');
  if (adaptive.length === 0) return null;
  const values = adaptive.flatMap((t) => {
    const K = t.maxK;
    return Array.from({ length: t.numLayers * (K + 1) }, (_, i) => ({ config: t.config, layer: layerName(data, Math.floor(i / (K + 1))), experts: i % (K + 1), share: t.countHistogram[i] }))
      .filter((v) => v.share > 0);
  });
  const maxK = Math.max(...adaptive.map((t) => t.maxK));
  const numLayers = Math.max(...adaptive.map((t) => t.numLayers));
  const title = 'Experts per token by layer';
  // Three to a row, or as many as fill the last row (Vega-Lite draws an x axis under an empty slot too): four on
  // screen, two on paper, where four configuration names do not fit across 7 in.
  const fills = [3, style.printed ? 2 : 4].find((c) => adaptive.length % c === 0) ?? 3;
  const columns = Math.min(fills, adaptive.length);
  return {
    name: 'routing-experts-per-token',
    title,
    caption: `Share of scored positions at each layer that selected exactly c experts, per adaptive configuration, pooled over its traced tasks (weighted by scored positions); blank cells never occurred.`,
    section: 'routing',
    spec: vegaLiteSpec({
      title,
      data: { values },
      columns,
      facet: { field: 'config', type: 'nominal', title: null, sort: adaptive.map((t) => t.config) },
      spec: {
        // Overhead: each panel's layer axis, and the colour legend.
        width: panelWidth(style, Math.max(160, 18 * (maxK + 1)), columns, 40 * columns + 70),
        height: style.printed ? Math.max(70, 12 * numLayers) : Math.max(100, 16 * numLayers),
        mark: 'rect',
        encoding: {
          x: { field: 'experts', type: 'ordinal', title: 'experts selected (c)', scale: { domain: Array.from({ length: maxK + 1 }, (_, c) => c) }, axis: { labelAngle: 0 } },
          y: { field: 'layer', type: 'ordinal', title: 'layer' },
          fill: { field: 'share', type: 'quantitative', title: 'share of positions', scale: { scheme: SEQUENTIAL_SCHEME }, legend: { format: '.0%' } },
          tooltip: tooltip(['config', 'configuration'], ['layer', 'layer', 'd'], ['experts', 'experts selected', 'd'], ['share', 'share of positions', '.2%']),
        },
      },
    }, style),
  };
}

/** "12: \" the\"": position and quoted token text, so spaces and newlines stay visible and labels stay unique. */
function tokenLabel(position: number, text: string): string {
  return `${position}: ${JSON.stringify(text)}`;
}

function documentView(view: DocumentView, layerName: (moeLayer: number) => number, style: ChartStyle): Chart {
  const shown = Math.min(view.tokens.length, MAX_DOCUMENT_TOKENS[style.name]);
  const L = view.numLayers;
  const labels = view.tokens.slice(0, shown).map((text, t) => tokenLabel(t, text));
  const values = Array.from({ length: shown * L }, (_, i) => ({ token: labels[Math.floor(i / L)], layer: layerName(i % L), experts: view.counts[i] }));
  let highest = 0;
  for (let i = 0; i < shown * L; i++) highest = Math.max(highest, view.counts[i]);
  const title = `Experts per token: ${view.config}, ${view.task} document ${view.doc}`;
  const truncated = shown < view.totalPositions ? `first ${shown} of ${view.totalPositions} positions` : '';
  return {
    name: `routing-document-${slug(view.config)}-${slug(view.task)}-${view.doc}`,
    title,
    caption: `Experts selected at each position (rows, with the token's text) and layer (columns) of document ${view.doc} of ${view.task} under ${view.config}${truncated ? ` (${truncated})` : ''}.`,
    section: 'routing',
    spec: vegaLiteSpec({
      title: truncated ? { text: title, subtitle: truncated } : title,
      ...viewSize(style, { width: Math.max(160, 30 * L), height: 14 * shown }, 15 * shown, 'single'),
      data: { values },
      encoding: {
        x: { field: 'layer', type: 'ordinal', title: 'layer', axis: { orient: 'top', labelAngle: 0 } },
        y: { field: 'token', type: 'nominal', title: 'position: token', sort: labels, axis: { labelFont: MONO_FONT_FAMILY, labelFontSize: style.fonts.note, labelLimit: 220 } },
      },
      layer: [
        {
          mark: 'rect',
          encoding: {
            fill: { field: 'experts', type: 'quantitative', title: 'experts selected', scale: { scheme: SEQUENTIAL_SCHEME, domain: [0, Math.max(1, highest)] } },
            tooltip: tooltip(['token', 'position: token'], ['layer', 'layer', 'd'], ['experts', 'experts selected', 'd']),
          },
        },
        {
          mark: { type: 'text', fontSize: style.fonts.cell },
          encoding: {
            text: { field: 'experts', type: 'quantitative' },
            // Viridis is dark at its low end: light digits there, dark digits on the light high end.
            color: { condition: { test: `datum.experts < ${highest / 2}`, value: 'white' }, value: 'black' },
          },
        },
      ],
    }, style, 'single'),
  };
}

/** The held-out goodness of fit in words, when every layer recorded it: the layers' KS range, and their worst experts'. */
function fitCaption(layers: readonly NullLayerView[]): string {
  const range = (values: (number | undefined)[]) => {
    if (values.some((v) => v === undefined)) return null;
    const v = values as number[];
    return `${Math.min(...v).toFixed(3)}–${Math.max(...v).toFixed(3)}`;
  };
  const pooled = range(layers.map((l) => l.ks));
  if (pooled === null) return '';
  const worst = range(layers.map((l) => l.ksWorstExpert));
  return ` Kolmogorov–Smirnov distance of each layer's null to held-out calibration logits: ${pooled}` +
    (worst === null ? '.' : `; of each layer's worst-fitting expert (its held-out logits against the null bh uses for it): ${worst}.`);
}

function nullDensityCdf(data: RunData, style: ChartStyle): Chart | null {
  const nullModel = data.nullModel;
  if (nullModel === null || nullModel.layers.length === 0) return null;
  const values = nullModel.layers.flatMap((layer) => {
    const stride = Math.ceil(layer.x.length / MAX_NULL_POINTS);
    const rows = [];
    for (let i = 0; i < layer.x.length; i += stride) rows.push({ layer: layerName(data, layer.layer), logit: layer.x[i], density: layer.density[i], cdf: layer.cdf[i], bandwidth: layer.bandwidth, ks: layer.ks ?? null, ksWorst: layer.ksWorstExpert ?? null });
    return rows;
  });
  const densityColor = '#0072B2';
  const cdfColor = '#D55E00';
  const title = 'Null model per layer';
  // On paper two to a row: each panel carries two y axes (density left, CDF right).
  const columns = Math.min(style.printed ? 2 : 4, nullModel.layers.length);
  return {
    name: 'null-density-cdf',
    title,
    caption: `Calibrated null distribution of router logits for each layer (${nullModel.file}${nullModel.estimator ? `, estimator ${nullModel.estimator}` : ''}): density as the blue area (left axis) and CDF as the orange line (right axis).${fitCaption(nullModel.layers)}`,
    section: 'null',
    spec: vegaLiteSpec({
      title,
      data: { values },
      columns,
      facet: { field: 'layer', type: 'ordinal', title: null, header: { labelExpr: "'layer ' + datum.value" } },
      spec: {
        width: panelWidth(style, 170, columns, 85 * columns),
        height: style.printed ? 100 : 120,
        encoding: { x: { field: 'logit', type: 'quantitative', title: 'router logit', scale: { zero: false, nice: false } } },
        layer: [
          {
            mark: { type: 'area', color: densityColor, opacity: 0.45, line: { color: densityColor } },
            encoding: {
              y: { field: 'density', type: 'quantitative', title: 'density (1/logit)', axis: { titleColor: densityColor } },
              tooltip: tooltip(['layer', 'layer', 'd'], ['logit', 'router logit', '.3f'], ['density', 'density', '.4f'], ['cdf', 'CDF', '.4f'], ['bandwidth', 'KDE bandwidth', '.4f'], ['ks', 'KS to held-out logits', '.4f'], ['ksWorst', 'worst expert\'s KS', '.4f']),
            },
          },
          {
            mark: { type: 'line', color: cdfColor, strokeWidth: 2 },
            encoding: { y: { field: 'cdf', type: 'quantitative', title: 'CDF', scale: { domain: [0, 1] }, axis: { titleColor: cdfColor, orient: 'right' } } },
          },
        ],
        resolve: { scale: { y: 'independent' } },
      },
      resolve: { scale: { x: 'independent', y: 'independent' } },
    }, style),
  };
}

export function routingCharts(data: RunData, style: ChartStyle, heatmapScale: HeatmapScale): Chart[] {
  const traces = pooledTraces(data);
  const name = (moeLayer: number) => layerName(data, moeLayer);
  const maxLoad = Math.max(0, ...traces.map(highestLoad));
  return [
    ...traces.map((t) => activationHeatmap(t, name, heatmapScale, maxLoad, style)),
    expertsPerTokenDistribution(data, traces, style),
    ...data.documents.map((v) => documentView(v, name, style)),
  ].filter((c): c is Chart => c !== null);
}

/** The decoder-layer index charts show for a MoE layer (they differ when a model has dense layers). */
function layerName(data: RunData, moeLayer: number): number {
  return data.moeLayers[moeLayer] ?? moeLayer;
}

export function nullCharts(data: RunData, style: ChartStyle): Chart[] {
  const chart = nullDensityCdf(data, style);
  return chart ? [chart] : [];
}
