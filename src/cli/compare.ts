import { RoutelabError } from '../errors.js';
import { CORRECTIONS, type Correction } from '../experiments/stats.js';
import { numberFlag, type Command } from './command.js';

export const compareCommand: Command = {
  name: 'compare',
  summary: 'compare sweep runs (e.g. the same grid on two checkpoints): paired per-document differences with bootstrap intervals, table and charts',
  usage: `Usage: routelab compare RUN_A RUN_B [RUN_C …] [--out DIR] [--labels a,b,…] [--resamples N] [--seed S] [--correction bh|holm] [--json]

  RUN_A …          finished sweep run directories; RUN_A is the reference every other run is compared with
  --out DIR        write DIR/compare.md, compare.html (self-contained, the report's style), compare.json and
                   figures/ (SVG + Vega-Lite); without it the table is printed
  --labels LIST    names of the runs in tables and charts (default: their directory names)
  --resamples N    paired-bootstrap resamples over documents (default: RUN_A's sweep setting, else 1000)
  --seed S         bootstrap seed (default 0)
  --correction C   multiple-comparison adjustment of the p-values: bh (default) or holm
  --json           print the comparison as one JSON object on stdout (human text on stderr)

  Configurations are matched by name and task; the runs must have scored the same documents of each task (their
  data fingerprints), else the comparison is refused.`,
  options: {
    out: { type: 'string' },
    labels: { type: 'string' },
    resamples: { type: 'string' },
    seed: { type: 'string' },
    correction: { type: 'string', default: 'bh' },
    json: { type: 'boolean', default: false },
  },
  allowPositionals: true,
  async run(values, positionals) {
    if (positionals.length < 2) throw new RoutelabError('routelab compare', `expected at least two run directories, got ${positionals.length ? positionals.join(' ') : 'none'}`);
    const correction = values.correction as string;
    if (!(CORRECTIONS as readonly string[]).includes(correction)) throw new RoutelabError('--correction', `expected one of ${CORRECTIONS.join(', ')}, got ${JSON.stringify(correction)}`);
    const resamples = values.resamples === undefined ? undefined : numberFlag(values, 'resamples', 0, true);
    if (resamples !== undefined && resamples < 1) throw new RoutelabError('--resamples', `expected a positive integer, got ${resamples}`);
    const labels = values.labels === undefined ? undefined : (values.labels as string).split(',').map((l) => l.trim());
    // The report's renderers (Vega) load only when a comparison runs.
    const [{ compareRuns }, { comparisonText, writeComparison }] = await Promise.all([import('../compare/compare.js'), import('../compare/render.js')]);
    const comparison = compareRuns(positionals, { labels, resamples, seed: numberFlag(values, 'seed', 0, true), correction: correction as Correction });
    const human = values.json === true ? (line: string) => console.error(line) : (line: string) => console.log(line);
    if (values.json === true) console.log(JSON.stringify(comparison));
    if (values.out !== undefined) {
      const files = await writeComparison(comparison, values.out as string);
      console.error(`compare: ${comparison.cells.length} configuration × task cells of ${comparison.runs.length} runs; wrote ${files.length} files`);
      for (const file of files) human(file);
    } else {
      human(comparisonText(comparison));
    }
  },
};
