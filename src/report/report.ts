/**
 * A sweep's report: the run directory is read once, what the report says (facts, findings, results table, charts,
 * provenance) is decided once as a `ReportContent`, and each requested format renders that same content. Everything
 * is written into a fresh directory beside RUN_DIR/report/ that then replaces it as a whole, so a report never mixes
 * files of two runs and a crash part-way leaves the previous report as it was.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { writeFileAtomic } from '../atomic.js';
import { RoutelabError } from '../errors.js';
import type { Correction } from '../experiments/stats.js';
import { lockRunDirectory } from '../lock.js';
import { VERSION } from '../version.js';
import { analysisSection } from './analysis.js';
import { buildCharts, type ChartOptions } from './charts.js';
import { loadRunData } from './data.js';
import { keyFindings } from './findings.js';
import { htmlReport } from './html.js';
import { markdownReport } from './markdown.js';
import { pdfReport } from './pdf.js';
import { chartToSvg, compileToVega, svgToPng } from './render.js';
import { formatNumber, resultsTable, type ResultsTable, type TableColumn } from './table.js';
import type { Fact, ReportContent, ShownTable, TextTable } from './content.js';
import type { Chart, Finding, RunData } from './types.js';

export const REPORT_FORMATS = ['md', 'html', 'pdf', 'png', 'svg'] as const;
export type ReportFormat = (typeof REPORT_FORMATS)[number];

/** Headings of the findings, in the report's order (a Record, so a new topic cannot be left without one). */
const FINDING_TOPICS: Readonly<Record<Finding['topic'], string>> = {
  scope: 'What this model can show',
  best: 'Best configuration per metric',
  pareto: 'Pareto set: quality vs experts per token',
  significance: 'Significance against the baseline',
  controls: 'Adaptive routing against its matched controls',
  'null-fit': 'The null model behind BH\'s p-values',
  'bh-response': 'How BH responds to alpha and max_k',
  routing: 'Routing behaviour',
  speed: 'Speed',
  specialisation: 'What the experts do (routelab analyze)',
};

const SECTION_TITLES: Readonly<Record<Chart['section'], string>> = {
  sweep: 'Sweep: quality, cost and speed',
  bh: 'BH routing',
  routing: 'Routing traces',
  null: 'Null model',
  analysis: 'Expert specialisation',
};

export function parseReportFormats(list: string | undefined): ReportFormat[] {
  if (list === undefined) return [...REPORT_FORMATS];
  return checkedFormats(list.split(',').map((f) => f.trim()).filter(Boolean), '--format');
}

function checkedFormats(formats: readonly string[], where: string): ReportFormat[] {
  const unknown = formats.filter((f) => !(REPORT_FORMATS as readonly string[]).includes(f));
  if (formats.length === 0 || unknown.length) {
    throw new RoutelabError(where, `${unknown.length ? `unknown format(s) ${unknown.join(', ')}` : 'no format given'}; ` +
      `expected a comma-separated list of ${REPORT_FORMATS.join(', ')}`);
  }
  return REPORT_FORMATS.filter((f) => formats.includes(f));
}

/** Read the run directory and decide what its report says; `charts` picks the figures' style and heatmap scales. */
export async function reportContent(
  runDir: string, sortBy?: string, correction: Correction = 'bh', charts: ChartOptions = {},
): Promise<{ data: RunData; content: ReportContent }> {
  const data = await loadRunData(runDir);
  const table = resultsTable(data, sortBy);
  const analysis = await analysisSection(data, { charts: (charts.style ?? 'screen') === 'screen' });
  const figures = [...buildCharts(data, charts), ...analysis.charts];
  const findings = [...keyFindings(data, correction), ...analysis.findings];
  const mode = text(pick(data.manifest, 'spec', 'mode'));
  const content: ReportContent = {
    title: `Routing report: ${text(pick(data.manifest, 'model', 'spec')) ?? basename(data.runDir)}${mode ? ` (${mode} sweep)` : ''}`,
    runDir: data.runDir,
    facts: runFacts(data),
    dataSets: dataSets(data),
    findings: Object.entries(FINDING_TOPICS)
      .map(([topic, title]) => ({ title, findings: findings.filter((f) => f.topic === topic).map((f) => f.text) }))
      .filter((g) => g.findings.length > 0),
    noFindings: findings.length === 0 ? 'No key findings for this run.' : null,
    results: shownTable(table),
    resultsNote: resultsNote(data),
    sections: Object.entries(SECTION_TITLES)
      .map(([section, title]) => ({ title, charts: figures.filter((c) => c.section === section) }))
      .filter((s) => s.charts.length > 0),
    configurations: {
      header: ['Configuration', 'Router', 'Family', 'max_k', 'min_k', 'alpha', 'Baseline'],
      rows: data.configs.map((c) => [c.name, c.router, c.routerKind, orDash(c.maxK), orDash(c.minK), orDash(c.alpha), c.isBaseline ? 'yes' : '']),
    },
    routers: Object.fromEntries(data.configs.map((c) => [c.name, c.router])),
    provenance: provenance(data),
  };
  return { data, content };
}

export async function writeReport(
  runDir: string,
  options: { formats: ReportFormat[]; sortBy?: string; correction?: Correction; charts?: ChartOptions; log?: (line: string) => void },
): Promise<{ dir: string; files: string[] }> {
  const formats = checkedFormats(options.formats, 'formats');
  const log = options.log ?? (() => {});
  const { data, content } = await reportContent(runDir, options.sortBy, options.correction, options.charts);
  const charts = content.sections.flatMap((s) => s.charts);
  log(`${data.cells.length} cells, ${data.traces.length} traces, ${charts.length} charts`);

  const target = join(data.runDir, 'report');
  const lock = lockRunDirectory(data.runDir, 'report', log);
  // mkdtemp would create it 0700, and the rename would keep that: a plain mkdir gives the usual permissions (umask).
  const staging = join(data.runDir, `.report-${process.pid}-${randomBytes(6).toString('hex')}`);
  try {
    removeStaleStaging(data.runDir, log);
    mkdirSync(staging);
    const written: string[] = [];
    const write = (name: string, bytes: string | Uint8Array) => {
      writeFileAtomic(join(staging, name), bytes);
      written.push(name);
    };
    const wants = (f: ReportFormat) => formats.includes(f);
    // The static SVG is the figure file, the PNG's source, the PDF's drawing and the HTML's no-script fallback.
    const svgs = new Map<string, string>();
    if (wants('svg') || wants('png') || wants('pdf') || wants('html')) {
      for (const chart of charts) svgs.set(chart.name, await chartToSvg(chart.spec));
      log(`rendered ${charts.length} charts to SVG`);
    }
    const figures = { svg: wants('svg'), png: wants('png') };
    if (figures.svg || figures.png) {
      mkdirSync(join(staging, 'figures'));
      for (const chart of charts) {
        const svg = svgs.get(chart.name)!;
        write(`figures/${chart.name}.vl.json`, `${JSON.stringify(chart.spec, null, 2)}\n`);
        if (figures.svg) write(`figures/${chart.name}.svg`, svg);
        if (figures.png) write(`figures/${chart.name}.png`, svgToPng(svg));
      }
      log(`figures: ${charts.length} × ${[figures.svg && 'svg', figures.png && 'png (300 dpi)', 'vl.json'].filter(Boolean).join(', ')}`);
    }
    if (wants('md')) write('report.md', markdownReport(content, figures));
    if (wants('html')) {
      write('report.html', htmlReport(content, charts.map((chart) => ({ chart, vega: compileToVega(chart.spec), svg: svgs.get(chart.name)! }))));
    }
    if (wants('pdf')) {
      const pdf = await pdfReport(content, svgs);
      write('report.pdf', pdf.bytes);
      log(`report.pdf: ${pdf.pages.length} pages`);
    }
    replaceDirectory(staging, target);
    return { dir: target, files: written.map((name) => join(target, name)) };
  } finally {
    rmSync(staging, { recursive: true, force: true });
    lock.release();
  }
}

/**
 * Put `fresh` where `target` is: the old directory is moved aside, the new one takes its name, then the old one is
 * deleted. A failure between the two renames moves the old one back.
 */
export function replaceDirectory(fresh: string, target: string): void {
  if (!existsSync(target)) {
    renameSync(fresh, target);
    return;
  }
  const old = join(dirname(target), `.${basename(target)}-old-${process.pid}-${Date.now()}`);
  renameSync(target, old);
  try {
    renameSync(fresh, target);
  } catch (e) {
    renameSync(old, target);
    throw e;
  }
  rmSync(old, { recursive: true, force: true });
}

/**
 * The results table with numbers as the report prints them: each column's decimals and unit, a Unicode minus, and
 * each Δ column merged with its interval columns into one `Δ [low, high]` column.
 */
function shownTable(table: ResultsTable): ShownTable {
  const index = new Map(table.columns.map((c, i) => [c.key, i]));
  /** The columns of a Δ column's interval, when the table has both. */
  const intervalOf = (c: TableColumn) => {
    if (!c.key.startsWith('delta_')) return null;
    const metric = c.key.slice('delta_'.length);
    const [low, high] = [`ci_low_${metric}`, `ci_high_${metric}`];
    return index.has(low) && index.has(high) ? { low: index.get(low)!, high: index.get(high)!, keys: [low, high] } : null;
  };
  const merged = new Set(table.columns.flatMap((c) => intervalOf(c)?.keys ?? []));
  const shown = table.columns.map((column, i) => ({ column, i, interval: intervalOf(column) })).filter(({ column }) => !merged.has(column.key));
  const sortColumn = table.columns[index.get(table.sortedBy)!];
  return {
    columns: shown.map(({ column, interval }) => ({
      key: column.key,
      label: `${column.label}${column.unit ? ` (${column.unit})` : ''}${interval ? ' [95% CI]' : ''}`,
      numeric: column.digits !== null,
      secondary: column.secondary === true,
    })),
    rows: table.rows.map((row) => shown.map(({ column, i, interval }) => {
      const value = row[i];
      const cell = (parts: string[]) => ({ text: parts.join(' '), value });
      if (value === null) return cell(['–']);
      if (typeof value === 'string') return cell([value]);
      const digits = column.digits ?? 2;
      if (!interval) return cell([shownNumber(value, digits)]);
      const [low, high] = [row[interval.low], row[interval.high]];
      const bounds = typeof low === 'number' && typeof high === 'number' ? [`[${shownNumber(low, digits)}, ${shownNumber(high, digits)}]`] : [];
      return cell([shownNumber(value, digits, true), ...bounds]);
    })),
    sortedBy: table.sortedBy,
    // resultsTable sorts best first where a direction is better, ascending otherwise, and by the sweep's order for task/config.
    direction: table.sortedBy === 'task' || table.sortedBy === 'config' ? null : sortColumn.higherIsBetter ? 'descending' : 'ascending',
  };
}

/**
 * Staging folders left by a report killed part-way (`.report-<pid>-…`, never read): removed when their process is
 * gone, so a run directory does not collect them.
 */
function removeStaleStaging(runDir: string, log: (line: string) => void): void {
  for (const name of readdirSync(runDir)) {
    const pid = /^\.report-(\d+)-[0-9a-f]+$/.exec(name)?.[1];
    if (pid === undefined || processAlive(Number(pid))) continue;
    rmSync(join(runDir, name), { recursive: true, force: true });
    log(`removed ${name}, the staging folder of an interrupted report`);
  }
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** formatNumber with a typographic minus sign (U+2212), as printed tables show negatives. */
function shownNumber(value: number, digits: number, signed = false): string {
  return formatNumber(value, digits, { signed }).replace(/-/g, '\u2212');
}

function resultsNote(data: RunData): string {
  if (data.baseline === null) return 'The sweep had no baseline configuration, so no differences against one are shown.';
  const resamples = text(pick(data.manifest, 'spec', 'bootstrapResamples'));
  return `Δ is a configuration's primary metric minus that of the baseline \`${data.baseline}\` on the same documents, with its ` +
    `95% paired-bootstrap interval${resamples ? ` (${resamples} resamples over documents)` : ''}.`;
}

/** A field of the manifest (JSON written by the sweep, read without trusting its shape). */
function pick(value: unknown, ...path: string[]): unknown {
  let at = value;
  for (const key of path) at = typeof at === 'object' && at !== null ? (at as Record<string, unknown>)[key] : undefined;
  return at;
}

function text(value: unknown): string | null {
  return typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean' ? String(value) : null;
}

function orDash(value: number | null): string {
  return value === null ? '–' : String(value);
}

function fact(label: string, value: unknown, code = false): Fact[] {
  const shown = text(value);
  return shown === null || shown === '' ? [] : [{ label, value: shown, code }];
}

function runFacts(data: RunData): Fact[] {
  const m = data.manifest;
  const tasks = data.tasks.map((task) => {
    const docs = new Set(data.cells.filter((c) => c.task === task).map((c) => c.row.num_docs));
    return `${task} (${[...docs].join('/')})`;
  });
  return [
    ...fact('Model', pick(m, 'model', 'spec'), true),
    ...fact('Model fingerprint (SHA-256)', pick(m, 'model', 'fingerprint'), true),
    ...fact('Model config (SHA-256)', pick(m, 'model', 'config_sha256'), true),
    ...fact('routelab version', pick(m, 'routelab_version')),
    ...fact('Git commit', pick(m, 'git_commit'), true),
    ...fact('Sweep started', pick(m, 'started')),
    ...fact('Sweep finished', pick(m, 'ended')),
    ...fact('Sweep mode', pick(m, 'spec', 'mode')),
    ...fact('Configurations', `${data.configs.length}${data.baseline ? ` (baseline ${data.baseline})` : ' (no baseline)'}`),
    ...fact('Tasks (documents each)', tasks.join(', ')),
  ];
}

function dataSets(data: RunData): TextTable {
  const entries = pick(data.manifest, 'data');
  const rows = (Array.isArray(entries) ? entries : []).map((e: unknown) => [
    text(pick(e, 'task')) ?? '–',
    `${text(pick(e, 'num_docs')) ?? '–'} of ${text(pick(e, 'total_docs')) ?? '–'}`,
    text(pick(e, 'format')) ?? '–',
    text(pick(e, 'path')) ?? '–',
    text(pick(e, 'fingerprint')) ?? '–',
  ]);
  return { header: ['Task', 'Documents', 'Format', 'Path', 'Data fingerprint (SHA-256)'], rows };
}

function provenance(data: RunData): Fact[] {
  const m = data.manifest;
  const spec = (key: string) => pick(m, 'spec', key);
  const machine = (key: string) => text(pick(m, 'machine', key));
  const calibrated = spec('nullModel') === null;
  return [
    ...fact('Run directory', data.runDir, true),
    ...fact('Documents per task (limit)', spec('limit') ?? 'whole split'),
    ...fact('Window / truncation length (tokens)', spec('maxLength') ?? 'model maximum'),
    ...fact('Batch size', spec('batchSize')),
    ...fact('Seed', spec('seed')),
    ...fact('Bootstrap resamples', spec('bootstrapResamples')),
    ...fact('Routing traces', spec('trace')),
    ...fact('Null model', data.nullModel?.file ?? null, true),
    ...fact('Null model (SHA-256)', pick(m, 'null_model', 'sha256'), true),
    ...(calibrated && data.nullModel ? fact('Null model calibration tokens', pick(m, 'spec', 'calibration', 'tokens')) : []),
    ...fact('Backend', machine('backend')),
    ...fact('Machine', [machine('cpu_model'), machine('cpus') && `${machine('cpus')} CPUs`, machine('platform'), machine('node') && `Node ${machine('node')}`]
      .filter(Boolean).join(', ')),
    ...fact('Report written by', `routelab ${VERSION}`),
  ];
}
