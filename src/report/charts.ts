/**
 * Every chart of a report, as complete Vega-Lite specs in the report's theme: the sweep figure, the BH 9-panel
 * figure, the routing-trace views and the null model. A chart whose data the run lacks is left out, never drawn empty.
 */
import { bhCharts } from './charts-bh.js';
import { cellRecords } from './charts-common.js';
import { nullCharts, routingCharts } from './charts-routing.js';
import { sweepCharts } from './charts-sweep.js';
import type { Chart, RunData } from './types.js';

export function buildCharts(data: RunData): Chart[] {
  const records = cellRecords(data);
  return [...sweepCharts(data, records), ...bhCharts(data, records), ...routingCharts(data), ...nullCharts(data)];
}
