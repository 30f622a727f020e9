/**
 * Every chart of a report, as complete Vega-Lite specs in the report's theme: the sweep figure, the BH 9-panel
 * figure, the routing-trace views and the null model. A chart whose data the run lacks is left out, never drawn empty.
 */
import { bhCharts } from './charts-bh.js';
import { cellRecords } from './charts-common.js';
import { nullCharts, routingCharts } from './charts-routing.js';
import { sweepCharts } from './charts-sweep.js';
import { CHART_STYLES, printedWidthOf, type HeatmapScale, type ReportStyle } from './theme.js';
import type { Chart, RunData } from './types.js';

export interface ChartOptions {
  readonly style?: ReportStyle;
  readonly heatmapScale?: HeatmapScale;
}

export function buildCharts(data: RunData, options: ChartOptions = {}): Chart[] {
  const style = CHART_STYLES[options.style ?? 'screen'];
  const records = cellRecords(data);
  const charts = [
    ...sweepCharts(data, records, style),
    ...bhCharts(data, records, style),
    ...routingCharts(data, style, options.heatmapScale ?? 'shared'),
    ...nullCharts(data, style),
  ];
  // A paper figure's caption says the width it was laid out for, the width its files print at.
  return charts.map((chart) => {
    const inches = printedWidthOf(chart.spec);
    return inches === null ? chart : { ...chart, caption: `${chart.caption} Laid out for printing ${inches} in wide.` };
  });
}
