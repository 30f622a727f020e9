import { RoutelabError } from '../errors.js';
import { parseReportFormats, writeReport } from '../report/report.js';
import type { Command } from './command.js';

export const reportCommand: Command = {
  name: 'report',
  summary: 'turn a sweep\'s run directory into a report: Markdown, self-contained HTML, PDF and figures (SVG, PNG)',
  usage: `Usage: routelab report RUN_DIR [--format md,html,pdf,png,svg] [--sort METRIC] [--quiet]

  RUN_DIR            a sweep's run directory (results.json, manifest.json, the cells' summaries and traces)
  --format LIST      which of md, html, pdf, png, svg to write (default: all); everything goes to RUN_DIR/report/,
                     replacing a previous report there as a whole
  --sort METRIC      the results table's sort column (a column key, e.g. word_perplexity or avg_experts)
  --quiet            print nothing but errors (otherwise: progress on stderr, the files written on stdout)`,
  options: {
    format: { type: 'string' },
    sort: { type: 'string' },
    quiet: { type: 'boolean', default: false },
  },
  allowPositionals: true,
  async run(values, positionals) {
    if (positionals.length !== 1) {
      throw new RoutelabError('routelab report', `expected one RUN_DIR, got ${positionals.length ? positionals.join(' ') : 'none'}`);
    }
    const quiet = values.quiet === true;
    const { files } = await writeReport(positionals[0], {
      formats: parseReportFormats(values.format as string | undefined),
      sortBy: values.sort as string | undefined,
      log: quiet ? undefined : (line) => console.error(`report: ${line}`),
    });
    if (!quiet) for (const file of files) console.log(file);
  },
};
