/**
 * The look shared by every report chart: one colour per configuration (the same in every chart), colour-blind-safe
 * palettes, DejaVu Sans (bundled, see fonts.ts: resvg draws text only with real font files), and font sizes that
 * stay readable when a figure is scaled to a printed page.
 */
import type { ConfigInfo } from './types.js';

export const VEGA_LITE_SCHEMA = 'https://vega.github.io/schema/vega-lite/v6.json';

export const FONT = 'DejaVu Sans';
/** What charts ask for: DejaVu (always for headless rendering), else the viewer's sans-serif, never its serif default. */
export const FONT_FAMILY = `${FONT}, sans-serif`;
export const MONO_FONT_FAMILY = 'DejaVu Sans Mono, monospace';

/** The baseline is drawn in black so every other configuration reads as a deviation from it. */
export const BASELINE_COLOR = '#000000';

/**
 * Okabe–Ito without black (yellow last: weakest on white), then Paul Tol's "muted" set for sweeps with more
 * configurations; both were designed to stay distinguishable under the common colour-vision deficiencies. Past
 * 1 + 16 configurations colours repeat.
 */
export const CONFIG_PALETTE: readonly string[] = [
  '#E69F00', '#56B4E9', '#009E73', '#0072B2', '#D55E00', '#CC79A7', '#F0E442',
  '#332288', '#88CCEE', '#44AA99', '#117733', '#999933', '#DDCC77', '#CC6677', '#882255', '#AA4499',
];

/** Perceptually uniform and colour-blind-safe: used for every heatmap. */
export const SEQUENTIAL_SCHEME = 'viridis';
/** For heatmaps of signed deviations, centred on 0: viridis would give 0 a colour of its own and hide the sign. */
export const DIVERGING_SCHEME = 'blueorange';

/** Vega-Lite colour scale giving each configuration its colour: the same domain and range in every chart keep colours consistent. */
export function configColorScale(configs: readonly Pick<ConfigInfo, 'name' | 'isBaseline'>[]): { domain: string[]; range: string[] } {
  let next = 0;
  const range = configs.map((c) => (c.isBaseline ? BASELINE_COLOR : CONFIG_PALETTE[next++ % CONFIG_PALETTE.length]));
  return { domain: configs.map((c) => c.name), range };
}

/** Vega-Lite `config` of every chart. Sizes are in CSS px; the widest figures (about 1000 px) print at about half size. */
export const VEGA_LITE_CONFIG: Record<string, unknown> = {
  font: FONT_FAMILY,
  background: 'white',
  padding: 8,
  view: { stroke: '#bbbbbb' },
  title: { fontSize: 15, fontWeight: 'bold', anchor: 'start', offset: 10, subtitleFontSize: 12, subtitleColor: '#444444' },
  axis: {
    labelFontSize: 11,
    titleFontSize: 12,
    titleFontWeight: 'normal',
    labelColor: '#222222',
    titleColor: '#222222',
    gridColor: '#e4e4e4',
    titlePadding: 8,
  },
  legend: { labelFontSize: 11, titleFontSize: 12, titleFontWeight: 'normal', symbolSize: 90, labelLimit: 260 },
  header: { labelFontSize: 12, titleFontSize: 12, labelFontWeight: 'bold' },
  concat: { spacing: 40 },
  facet: { spacing: 24 },
  point: { size: 60, filled: true },
  line: { strokeWidth: 2 },
  text: { fontSize: 11 },
};
