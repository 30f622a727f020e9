import { RoutelabError } from '../errors.js';
import { type Correction, CORRECTIONS } from '../experiments/stats.js';
// theme.ts has no imports: naming the choices loads nothing of the report.
import { HEATMAP_SCALES, REPORT_STYLES, type HeatmapScale, type ReportStyle } from '../report/theme.js';
import type { Command } from './command.js';

export const reportCommand: Command = {
  name: 'report',
  summary: 'turn a sweep\'s run directory into a report: Markdown, self-contained HTML, PDF and figures (SVG, PNG)',
  usage: `Usage: routelab report RUN_DIR [--format md,html,pdf,png,svg] [--sort METRIC] [--correction bh|holm]
                              [--style screen|paper] [--heatmap-scale shared|per-panel] [--quiet]

  RUN_DIR            a sweep's run directory (results.json, manifest.json, the cells' summaries and traces)
  --format LIST      which of md, html, pdf, png, svg to write (default: all); everything goes to RUN_DIR/report/,
                     replacing a previous report there as a whole
  --sort METRIC      the results table's sort column (a column key, e.g. word_perplexity or avg_experts)
  --correction M     how the significance statements correct for the report's many comparisons: bh
                     (Benjamini–Hochberg adjusted p-values, false discovery rate; default) or holm (family-wise)
  --style S          screen (default) or paper: every figure laid out for a journal column, 3.5 in (single) or
                     7 in (double) wide with 8.5–9 pt text at that width; the figure files and the PDF print it at
                     that width, and each caption says which
  --heatmap-scale M  the layer × expert activation heatmaps share one colour scale (shared, default: colours compare
                     across configurations) or each has its own (per-panel)
  --quiet            print nothing but errors (otherwise: progress on stderr, the files written on stdout)`,
  options: {
    format: { type: 'string' },
    sort: { type: 'string' },
    correction: { type: 'string', default: 'bh' },
    style: { type: 'string', default: 'screen' },
    'heatmap-scale': { type: 'string', default: 'shared' },
    quiet: { type: 'boolean', default: false },
  },
  allowPositionals: true,
  async run(values, positionals) {
    if (positionals.length !== 1) {
      throw new RoutelabError('routelab report', `expected one RUN_DIR, got ${positionals.length ? positionals.join(' ') : 'none'}`);
    }
    const quiet = values.quiet === true;
    const correction = values.correction as string;
    const style = values.style as string;
    const heatmapScale = values['heatmap-scale'] as string;
    const oneOf = (option: string, value: string, choices: readonly string[]) => {
      if (!choices.includes(value)) throw new RoutelabError(option, `expected one of ${choices.join(', ')}, got ${JSON.stringify(value)}`);
    };
    oneOf('--correction', correction, CORRECTIONS);
    oneOf('--style', style, REPORT_STYLES);
    oneOf('--heatmap-scale', heatmapScale, HEATMAP_SCALES);
    // The report's modules (Vega, resvg, pdfkit) load only when a report is written, not for --help.
    const { parseReportFormats, writeReport } = await import('../report/report.js');
    const { files } = await writeReport(positionals[0], {
      formats: parseReportFormats(values.format as string | undefined),
      sortBy: values.sort as string | undefined,
      correction: correction as Correction,
      charts: { style: style as ReportStyle, heatmapScale: heatmapScale as HeatmapScale },
      log: quiet ? undefined : (line) => console.error(`report: ${line}`),
    });
    if (!quiet) for (const file of files) console.log(file);
  },
};
