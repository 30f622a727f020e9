import { RoutelabError } from '../errors.js';
import { type Correction, CORRECTIONS } from '../experiments/stats.js';
import type { Command } from './command.js';

export const reportCommand: Command = {
  name: 'report',
  summary: 'turn a sweep\'s run directory into a report: Markdown, self-contained HTML, PDF and figures (SVG, PNG)',
  usage: `Usage: routelab report RUN_DIR [--format md,html,pdf,png,svg] [--sort METRIC] [--correction bh|holm] [--quiet]

  RUN_DIR            a sweep's run directory (results.json, manifest.json, the cells' summaries and traces)
  --format LIST      which of md, html, pdf, png, svg to write (default: all); everything goes to RUN_DIR/report/,
                     replacing a previous report there as a whole
  --sort METRIC      the results table's sort column (a column key, e.g. word_perplexity or avg_experts)
  --correction M     how the significance statements correct for the report's many comparisons: bh
                     (Benjamini–Hochberg adjusted p-values, false discovery rate; default) or holm (family-wise)
  --quiet            print nothing but errors (otherwise: progress on stderr, the files written on stdout)`,
  options: {
    format: { type: 'string' },
    sort: { type: 'string' },
    correction: { type: 'string', default: 'bh' },
    quiet: { type: 'boolean', default: false },
  },
  allowPositionals: true,
  async run(values, positionals) {
    if (positionals.length !== 1) {
      throw new RoutelabError('routelab report', `expected one RUN_DIR, got ${positionals.length ? positionals.join(' ') : 'none'}`);
    }
    const quiet = values.quiet === true;
    const correction = values.correction as string;
    if (!(CORRECTIONS as readonly string[]).includes(correction)) throw new RoutelabError('--correction', `expected one of ${CORRECTIONS.join(', ')}, got ${JSON.stringify(correction)}`);
    // The report's modules (Vega, resvg, pdfkit) load only when a report is written, not for --help.
    const { parseReportFormats, writeReport } = await import('../report/report.js');
    const { files } = await writeReport(positionals[0], {
      formats: parseReportFormats(values.format as string | undefined),
      sortBy: values.sort as string | undefined,
      correction: correction as Correction,
      log: quiet ? undefined : (line) => console.error(`report: ${line}`),
    });
    if (!quiet) for (const file of files) console.log(file);
  },
};
