/**
 * A comparison of runs written the way a sweep's report is: the same content model (src/report/content.ts), so the
 * same Markdown and self-contained HTML renderers, charts as Vega-Lite specs in the report's theme drawn to SVG, and
 * the whole folder written beside its target and renamed into place.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { writeFileAtomic } from '../atomic.js';
import { RoutelabError } from '../errors.js';
import { LOG_COMPARED } from '../sweep/results.js';
import { VERSION } from '../version.js';
import { configAxis, FORMATS, LOG_AXIS, slug, tooltip, vegaLiteSpec } from '../report/charts-common.js';
import type { Fact, ReportContent, ShownCell, ShownTable } from '../report/content.js';
import { htmlReport } from '../report/html.js';
import { markdownReport } from '../report/markdown.js';
import { chartToSvg, compileToVega } from '../report/render.js';
import { replaceDirectory } from '../report/report.js';
import { formatNumber, metricColumn } from '../report/table.js';
import { configColorScale } from '../report/theme.js';
import type { Chart, ConfigInfo } from '../report/types.js';
import { CORRECTION_NAMES } from '../experiments/stats.js';
import type { ComparedCell, Comparison } from './compare.js';

/** Adjusted p-values at or below this are called significant. */
const LEVEL = 0.05;

const digitsOf = (metric: string) => {
  try {
    return metricColumn(metric).digits ?? 4;
  } catch {
    return 4;
  }
};
const shown = (value: number | null, digits: number, signed = false) => (value === null ? '–' : formatNumber(value, digits, { signed }).replace(/-/g, '\u2212'));
const label = (metric: string) => metric.replaceAll('_', ' ');

/** The difference a chart draws for a cell: Δ ln(perplexity) in nats for perplexities (ratios of millions stay readable), else Δ of the metric. */
function plotted(cell: ComparedCell): { key: string; title: string } {
  const log = LOG_COMPARED[cell.primaryMetric as keyof typeof LOG_COMPARED];
  return log ? { key: log, title: `Δ ln ${label(cell.primaryMetric)} (nats)` } : { key: cell.primaryMetric, title: `Δ ${label(cell.primaryMetric)}` };
}

/** Runs as the theme's configurations: the reference in black, every other run in the palette, the same in every chart. */
function runColor(comparison: Comparison, runs = comparison.runs.map((r) => r.label)): Record<string, unknown> {
  const infos: ConfigInfo[] = comparison.runs.map((r, i) => ({ name: r.label, router: '', routerKind: 'fixed', maxK: null, minK: null, alpha: null, isBaseline: i === 0 }));
  const all = configColorScale(infos);
  const scale = { domain: runs, range: runs.map((r) => all.range[all.domain.indexOf(r)]) };
  return { field: 'run', type: 'nominal', title: 'run', scale, sort: runs, legend: { orient: 'bottom' } };
}

export function compareCharts(comparison: Comparison): Chart[] {
  const { cells, configs, reference } = comparison;
  const names = configs;
  const width = Math.max(200, 24 * names.length);

  const values = cells.flatMap((c) => comparison.runs.map((r, i) => ({ config: c.config, task: c.task, run: r.label, value: c.values[i], experts: c.experts[i] })))
    .filter((v) => v.value !== null);
  const runNames = comparison.runs.map((r) => r.label);
  const isPerplexity = (metric: string) => LOG_COMPARED[metric as keyof typeof LOG_COMPARED] !== undefined;
  // One panel per task, each with its own scale: perplexities (which span decades) on a log axis, accuracies linear.
  const valuePanels = comparison.tasks.map((task) => {
    const metric = cells.find((c) => c.task === task)!.primaryMetric;
    return {
      title: `${task} (${label(metric)})`,
      width,
      height: 260,
      transform: [{ filter: { field: 'task', equal: task } }],
      mark: { type: 'point', filled: true, size: 70 },
      encoding: {
        x: configAxis(names),
        xOffset: { field: 'run', type: 'nominal', sort: runNames },
        y: { field: 'value', type: 'quantitative', title: label(metric), ...(isPerplexity(metric) ? { scale: { type: 'log' }, axis: LOG_AXIS } : { scale: { zero: false } }) },
        color: runColor(comparison),
        tooltip: tooltip(['config', 'configuration'], ['task', 'task'], ['run', 'run'], ['value', label(metric), FORMATS.value], ['experts', 'experts per token', '.3f']),
      },
    };
  });
  const valuesChart: Chart = {
    name: 'compare-values',
    title: 'Primary metric per run',
    caption: 'Each configuration\'s primary metric in every run, on the same documents per task (perplexities on a log scale).',
    section: 'sweep',
    spec: vegaLiteSpec({
      title: 'Primary metric per run',
      data: { values },
      hconcat: valuePanels,
      resolve: { scale: { y: 'independent' } },
    }),
  };

  const others = comparison.runs.slice(1).map((r) => r.label);
  const deltas = cells.flatMap((c) => c.deltas.map((d) => {
    const { key, title } = plotted(c);
    const interval = d.metrics[key];
    return interval ? { config: c.config, task: c.task, panel: `${c.task}: ${title}`, run: d.run, delta: interval.delta, low: interval.low, high: interval.high, p: d.adjustedPValue } : null;
  })).filter((v) => v !== null);
  const deltaPanels = [...new Set(deltas.map((d) => d.panel))];
  const byConfig = {
    y: { field: 'config', type: 'nominal', title: 'configuration', sort: names, axis: { labelLimit: 300 } },
    yOffset: { field: 'run', type: 'nominal', sort: others },
    color: runColor(comparison, others),
  };
  const deltasChart: Chart = {
    name: 'compare-deltas',
    title: `Difference from ${reference}`,
    caption: `Each run minus ${reference} on the same documents, per configuration, with the 95% paired-bootstrap interval ` +
      `(${comparison.resamples} resamples of documents); perplexities as Δ of their logarithm (nats per word or per continuation), accuracies as Δ share.`,
    section: 'sweep',
    spec: vegaLiteSpec({
      title: `Difference from ${reference}`,
      data: { values: deltas },
      facet: { column: { field: 'panel', type: 'nominal', title: null, sort: deltaPanels } },
      spec: {
        width: 260,
        height: Math.max(120, 22 * names.length * Math.max(1, others.length) ** 0.5),
        layer: [
          // The zero line first, under the intervals; it has no y, so it spans the panel.
          { mark: { type: 'rule', color: '#888888', strokeDash: [4, 3] }, encoding: { x: { datum: 0, type: 'quantitative' } } },
          { mark: { type: 'rule', strokeWidth: 2 }, encoding: { ...byConfig, x: { field: 'low', type: 'quantitative', title: 'difference (95% CI)' }, x2: { field: 'high' } } },
          {
            mark: { type: 'point', filled: true, size: 60 },
            encoding: {
              ...byConfig,
              x: { field: 'delta', type: 'quantitative' },
              tooltip: tooltip(['config', 'configuration'], ['task', 'task'], ['run', 'run'], ['delta', 'difference', FORMATS.value], ['low', '95% CI low', FORMATS.value], ['high', '95% CI high', FORMATS.value], ['p', `p (${comparison.correction}-adjusted)`, '.3f']),
            },
          },
        ],
      },
      resolve: { scale: { x: 'independent' } },
    }),
  };

  const experts = cells.flatMap((c) => comparison.runs.map((r, i) => ({ config: c.config, task: c.task, run: r.label, experts: c.experts[i] }))).filter((v) => v.experts !== null);
  const tasks = comparison.tasks;
  const expertsChart: Chart = {
    name: 'compare-experts',
    title: 'Experts per token per run',
    caption: 'Mean experts per token of each configuration in every run (fixed-k configurations are flat; adaptive ones follow their model\'s router logits).',
    section: 'routing',
    spec: vegaLiteSpec({
      title: 'Experts per token per run',
      data: { values: experts },
      facet: { column: { field: 'task', type: 'nominal', title: null, sort: tasks } },
      spec: {
        width,
        height: 220,
        mark: { type: 'point', filled: true, size: 70 },
        encoding: {
          x: configAxis(names),
          xOffset: { field: 'run', type: 'nominal', sort: runNames },
          y: { field: 'experts', type: 'quantitative', title: 'experts per token', scale: { type: 'log', base: 2 }, axis: LOG_AXIS },
          color: runColor(comparison),
          tooltip: tooltip(['config', 'configuration'], ['task', 'task'], ['run', 'run'], ['experts', 'experts per token', '.3f']),
        },
      },
    }),
  };
  return [valuesChart, deltasChart, expertsChart].map((c) => ({ ...c, name: slug(c.name) }));
}

/** The comparison table: identity, each run's value, each later run's Δ [95% CI] and adjusted p, each run's experts per token. */
export function compareTable(comparison: Comparison): ShownTable {
  const { runs, reference } = comparison;
  const others = runs.slice(1);
  const columns = [
    { key: 'config', label: 'Configuration', numeric: false },
    { key: 'task', label: 'Task', numeric: false },
    { key: 'metric', label: 'Metric', numeric: false },
    ...runs.map((r) => ({ key: `value_${r.label}`, label: r.label, numeric: true })),
    ...others.flatMap((r) => [
      { key: `delta_${r.label}`, label: `Δ ${r.label} − ${reference} [95% CI]`, numeric: true },
      { key: `p_${r.label}`, label: `p ${r.label} (${comparison.correction})`, numeric: true },
    ]),
    ...runs.map((r) => ({ key: `experts_${r.label}`, label: `Experts per token, ${r.label}`, numeric: true })),
  ];
  const cell = (parts: string[], value: number | string | null): ShownCell => ({ text: parts.join(' '), value });
  const rows = comparison.cells.map((c) => {
    const digits = digitsOf(c.primaryMetric);
    return [
      cell([c.config], c.config),
      cell([c.task], c.task),
      cell([c.primaryMetric], c.primaryMetric),
      ...c.values.map((v) => cell([shown(v, digits)], v)),
      ...c.deltas.flatMap((d) => {
        const i = d.metrics[c.primaryMetric];
        return [
          i ? cell([shown(i.delta, digits, true), `[${shown(i.low, digits)}, ${shown(i.high, digits)}]`], i.delta) : cell(['–'], null),
          cell([d.adjustedPValue === null ? '–' : formatNumber(d.adjustedPValue, 3)], d.adjustedPValue),
        ];
      }),
      ...c.experts.map((v) => cell([shown(v, 2)], v)),
    ];
  });
  return { columns, rows, sortedBy: 'task', direction: null };
}

const code = (s: string) => `\`${s}\``;

function findings(comparison: Comparison): string[] {
  const sentences: string[] = [];
  for (const run of comparison.runs.slice(1).map((r) => r.label)) {
    for (const task of comparison.tasks) {
      const here = comparison.cells.filter((c) => c.task === task);
      const metric = here[0].primaryMetric;
      const better = here[0].better;
      const judged = here.map((c) => ({ c, d: c.deltas.find((d) => d.run === run)! }))
        .map(({ c, d }) => ({ c, interval: d.metrics[metric], p: d.adjustedPValue }))
        .filter((x) => x.interval !== undefined && x.p !== null);
      if (judged.length === 0) continue;
      const significant = judged.filter((x) => x.p! <= LEVEL);
      const up = significant.filter((x) => x.interval.delta > 0).map((x) => code(x.c.config));
      const down = significant.filter((x) => x.interval.delta < 0).map((x) => code(x.c.config));
      const [improved, worsened] = better === 'lower' ? [down, up] : [up, down];
      const word = better === 'lower' ? ['lower', 'higher'] : ['higher', 'lower'];
      const criterion = `${comparison.correction === 'bh' ? 'Benjamini–Hochberg' : 'Holm'}-adjusted p ≤ ${LEVEL} over all ` +
        `${comparison.cells.length * (comparison.runs.length - 1)} comparisons`;
      if (significant.length === 0) {
        sentences.push(`On ${code(task)}, no configuration's ${label(metric)} differs significantly between ${code(run)} and ${code(comparison.reference)} ` +
          `(${judged.length} compared; ${criterion}).`);
        continue;
      }
      const part = (names: string[], how: string) => names.length ? [`a significantly ${how} ${label(metric)} for ${names.length} of ${judged.length} configurations (${names.join(', ')})`] : [];
      const parts = [...part(improved, `${word[0]} (better)`), ...part(worsened, `${word[1]} (worse)`)];
      const rest = judged.length - significant.length;
      sentences.push(`On ${code(task)}, ${code(run)} has ${parts.join(' and ')} than ${code(comparison.reference)}` +
        `${rest ? `; the other ${rest} do not differ significantly` : ''} (${criterion}).`);
    }
  }
  return sentences;
}

export function compareContent(comparison: Comparison, outDir: string): ReportContent {
  const { runs } = comparison;
  const facts: Fact[] = runs.flatMap((r, i) => [
    { label: `Run ${r.label}${i === 0 ? ' (reference)' : ''}`, value: r.dir, code: true },
    ...(r.model ? [{ label: `Model of ${r.label}`, value: r.model, code: true }] : []),
    ...(r.modelFingerprint ? [{ label: `Model fingerprint of ${r.label} (SHA-256)`, value: r.modelFingerprint, code: true }] : []),
    ...(r.routelabVersion ? [{ label: `routelab version of ${r.label}`, value: `${r.routelabVersion}${r.gitCommit ? ` (${r.gitCommit.slice(0, 12)})` : ''}`, code: false }] : []),
    ...(r.ended ? [{ label: `${r.label} finished`, value: r.ended, code: false }] : []),
  ]);
  const byTask = comparison.tasks.map((task) => comparison.cells.find((c) => c.task === task)!);
  const sentences = findings(comparison);
  const charts = compareCharts(comparison);
  const unmatched = comparison.unmatched.length
    ? ` Left out, not in every run: ${comparison.unmatched.map((u) => `${u.config} × ${u.task} (only ${u.in.join(', ')})`).join('; ')}.`
    : '';
  return {
    title: `Comparison: ${runs.map((r) => r.label).join(' vs ')}`,
    runDir: runs.map((r) => r.dir).join(', '),
    runDirLabel: 'Run directories',
    facts,
    dataSets: {
      header: ['Task', 'Documents', 'Data fingerprint (SHA-256)', 'Configurations compared'],
      rows: byTask.map((c) => [c.task, String(c.numDocs), c.fingerprint, String(comparison.cells.filter((x) => x.task === c.task).length)]),
    },
    findings: sentences.length ? [{ title: `Significance against ${comparison.reference}`, findings: sentences }] : [],
    noFindings: sentences.length ? null : 'No comparison had an interval to judge.',
    results: compareTable(comparison),
    resultsNote: `Configurations are matched by name and task; every run scored the same documents of each task (equal data fingerprints). ` +
      `Δ is a run's primary metric minus that of \`${comparison.reference}\` on those documents, with its 95% paired-bootstrap interval ` +
      `(${comparison.resamples} resamples of documents, seed ${comparison.seed}); p is the bootstrap p-value adjusted by ${CORRECTION_NAMES[comparison.correction]}.${unmatched}`,
    sections: [
      { title: 'Quality', charts: charts.filter((c) => c.section === 'sweep') },
      { title: 'Routing', charts: charts.filter((c) => c.section === 'routing') },
    ],
    configurations: {
      header: ['Configuration', ...runs.map((r) => `Router in ${r.label}`)],
      rows: comparison.configs.map((config) => [config, ...runs.map((_, i) => comparison.cells.find((c) => c.config === config)!.routers[i])]),
    },
    // The router spec, or each run's when they differ (bh's null model, a family's own routing).
    routers: Object.fromEntries(comparison.configs.map((config) => [config, [...new Set(comparison.cells.find((c) => c.config === config)!.routers)].join('  |  ')])),
    provenance: [
      { label: 'Bootstrap resamples', value: String(comparison.resamples), code: false },
      { label: 'Bootstrap seed', value: String(comparison.seed), code: false },
      { label: 'Interval level', value: '95%', code: false },
      { label: 'Multiple comparisons', value: `${CORRECTION_NAMES[comparison.correction]} over ${comparison.cells.length * (runs.length - 1)} comparisons`, code: false },
      { label: 'Output directory', value: resolve(outDir), code: true },
      { label: 'Compared by', value: `routelab ${VERSION}`, code: false },
    ],
  };
}

/** Write DIR/compare.md, compare.html, compare.json and figures/ (SVG + Vega-Lite), replacing a previous comparison there as a whole. */
export async function writeComparison(comparison: Comparison, outDir: string): Promise<string[]> {
  const target = resolve(outDir);
  if (existsSync(target) && readdirSync(target).length > 0 && !existsSync(join(target, 'compare.json'))) {
    throw new RoutelabError(outDir, 'exists and is not the output of routelab compare (no compare.json): give a new or empty folder');
  }
  mkdirSync(dirname(target), { recursive: true });
  const content = compareContent(comparison, target);
  const charts = content.sections.flatMap((s) => s.charts);
  const staging = join(dirname(target), `.compare-${process.pid}-${randomBytes(6).toString('hex')}`);
  mkdirSync(staging);
  try {
    mkdirSync(join(staging, 'figures'));
    const svgs = new Map<string, string>();
    for (const chart of charts) {
      const svg = await chartToSvg(chart.spec);
      svgs.set(chart.name, svg);
      writeFileAtomic(join(staging, 'figures', `${chart.name}.svg`), svg);
      writeFileAtomic(join(staging, 'figures', `${chart.name}.vl.json`), `${JSON.stringify(chart.spec, null, 2)}\n`);
    }
    writeFileAtomic(join(staging, 'compare.md'), markdownReport(content, { svg: true, png: false }));
    writeFileAtomic(join(staging, 'compare.html'), htmlReport(content, charts.map((chart) => ({ chart, vega: compileToVega(chart.spec), svg: svgs.get(chart.name)! }))));
    writeFileAtomic(join(staging, 'compare.json'), `${JSON.stringify(comparison, null, 2)}\n`);
    replaceDirectory(staging, target);
  } finally {
    rmSync(staging, { recursive: true, force: true });
  }
  return ['compare.md', 'compare.html', 'compare.json', ...charts.flatMap((c) => [`figures/${c.name}.svg`, `figures/${c.name}.vl.json`])].map((f) => join(target, f));
}

/** The table as aligned text for a terminal: one line per cell, Δ with its interval. */
export function comparisonText(comparison: Comparison): string {
  const table = compareTable(comparison);
  const rows = [table.columns.map((c) => c.label), ...table.rows.map((r) => r.map((c) => c.text))];
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  const lines = rows.map((r) => r.map((c, i) => (table.columns[i].numeric ? c.padStart(widths[i]) : c.padEnd(widths[i]))).join('  ').trimEnd());
  const notes = [...findings(comparison)].map((s) => `- ${s.replaceAll('`', '')}`);
  if (comparison.unmatched.length) notes.push(`- left out (not in every run): ${comparison.unmatched.map((u) => `${u.config} × ${u.task} (only ${u.in.join(', ')})`).join('; ')}`);
  return [...lines, '', ...notes].join('\n');
}
