/**
 * The look shared by every report chart: one colour per configuration (the same in every chart), colour-blind-safe
 * palettes, DejaVu Sans (bundled, see fonts.ts: resvg draws text only with real font files), and the two styles'
 * font sizes: `screen`, readable when a figure is scaled to a printed page, and `paper`, 8.5–9 pt at the journal
 * column width each figure states it is printed at. Every size in px is a CSS px, 1/96 in.
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

/**
 * How the layer × expert activation heatmaps (one per configuration) colour their shares: `shared`, one scale from 0
 * to the highest share of any of them, so configurations compare by colour; `per-panel`, each from 0 to its own
 * highest, which shows the structure inside a configuration whose loads are all small.
 */
export const HEATMAP_SCALES = ['shared', 'per-panel'] as const;
export type HeatmapScale = (typeof HEATMAP_SCALES)[number];

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

/** CSS px per inch: an SVG W px wide prints W / 96 in wide. */
export const CSS_PX_PER_INCH = 96;
export const POINTS_PER_INCH = 72;

/** `screen` (the default): sized for a browser or a report page. `paper`: laid out for a journal's column widths. */
export const REPORT_STYLES = ['screen', 'paper'] as const;
export type ReportStyle = (typeof REPORT_STYLES)[number];

/** A paper figure spans one column of a two-column page or the whole text width (the common journal widths, in inches). */
export const COLUMN_WIDTH_IN = { single: 3.5, double: 7 } as const;
export type FigureColumn = keyof typeof COLUMN_WIDTH_IN;

/** What a paper chart's spec records in its metadata (Vega-Lite `usermeta`): the width it is printed at. */
export function printedMetadata(column: FigureColumn): { printedWidthInches: number; column: FigureColumn } {
  return { printedWidthInches: COLUMN_WIDTH_IN[column], column };
}

/** The width in inches a spec's metadata says the chart is printed at, or null: printed at its SVG's px / 96. */
export function printedWidthOf(spec: Record<string, unknown>): number | null {
  const inches = (spec.usermeta as { printedWidthInches?: unknown } | undefined)?.printedWidthInches;
  return typeof inches === 'number' && inches > 0 ? inches : null;
}

/** The width in CSS px of a figure printed `column` wide. */
export function columnWidthPx(column: FigureColumn): number {
  return COLUMN_WIDTH_IN[column] * CSS_PX_PER_INCH;
}

/** Font sizes of a chart's text, in CSS px of the SVG. */
export interface FontSizes {
  readonly title: number;
  readonly subtitle: number;
  readonly axisTitle: number;
  /** Tick and legend labels, facet headers. */
  readonly label: number;
  /** Values written on a chart (bar labels, table cells, heatmap annotations). */
  readonly mark: number;
  /** Secondary annotations: reference-line labels, bar values, token labels. */
  readonly note: number;
  /** Digits inside the cells of a dense grid (the per-token document view). */
  readonly cell: number;
  /** Titles of the panels of a multi-panel figure, and their subtitles. */
  readonly panelTitle: number;
  readonly panelSubtitle: number;
}

/** CSS px of `points` pt: 1 px is 1/96 in, 1 pt 1/72 in. */
const px = (points: number) => (points * CSS_PX_PER_INCH) / POINTS_PER_INCH;

/** Screen sizes: the widest figures (about 1000 px) still print at half size or more on a report page. */
const SCREEN_FONTS: FontSizes = { title: 15, subtitle: 12, axisTitle: 12, label: 11, mark: 11, note: 10, cell: 9, panelTitle: 13, panelSubtitle: 11 };

/**
 * Paper sizes: 8.5 pt text and 9 pt titles at the printed width (a journal's 8–9 pt). The half point over the
 * 8 pt floor leaves room for a composite figure whose layout comes out up to 6% wider than its column and is scaled
 * down to it.
 */
const PAPER_FONTS: FontSizes = {
  title: px(9), subtitle: px(8.5), axisTitle: px(9), label: px(8.5), mark: px(8.5), note: px(8.5), cell: px(8.5), panelTitle: px(9), panelSubtitle: px(8.5),
};

/** How a report's charts look: their fonts, and for paper the column they are printed across. */
export interface ChartStyle {
  readonly name: ReportStyle;
  readonly fonts: FontSizes;
  /** Vega-Lite `config` of every chart. */
  readonly config: Record<string, unknown>;
  /** Paper only: every chart states the column it is printed across. */
  readonly printed: boolean;
  /** Area of point marks relative to the screen's: a figure printed at 7 in needs smaller dots than one on a screen. */
  readonly pointScale: number;
}

function vegaLiteConfig(f: FontSizes, paper: boolean, pointScale: number): Record<string, unknown> {
  return {
    font: FONT_FAMILY,
    background: 'white',
    padding: paper ? 4 : 8,
    view: { stroke: '#bbbbbb' },
    title: { fontSize: f.title, fontWeight: 'bold', anchor: 'start', offset: paper ? 6 : 10, subtitleFontSize: f.subtitle, subtitleColor: '#444444' },
    axis: {
      labelFontSize: f.label,
      titleFontSize: f.axisTitle,
      titleFontWeight: 'normal',
      labelColor: '#222222',
      titleColor: '#222222',
      gridColor: '#e4e4e4',
      titlePadding: paper ? 4 : 8,
    },
    legend: {
      labelFontSize: f.label,
      titleFontSize: f.axisTitle,
      titleFontWeight: 'normal',
      symbolSize: paper ? 50 : 90,
      labelLimit: 260,
      ...(paper ? { rowPadding: 2, columnPadding: 8 } : {}),
    },
    header: { labelFontSize: f.label, titleFontSize: f.axisTitle, labelFontWeight: 'bold' },
    // One gap between paper panels, concatenated or faceted, so a row's width is computed one way (panelWidth).
    concat: { spacing: paper ? 14 : 40 },
    facet: { spacing: paper ? 14 : 24 },
    point: { size: 60 * pointScale, filled: true },
    line: { strokeWidth: paper ? 1.5 : 2 },
    text: { fontSize: f.mark },
  };
}

function chartStyle(name: ReportStyle, fonts: FontSizes, printed: boolean, pointScale: number): ChartStyle {
  return { name, fonts, config: vegaLiteConfig(fonts, printed, pointScale), printed, pointScale };
}

export const CHART_STYLES: Readonly<Record<ReportStyle, ChartStyle>> = {
  screen: chartStyle('screen', SCREEN_FONTS, false, 1),
  paper: chartStyle('paper', PAPER_FONTS, true, 0.5),
};
