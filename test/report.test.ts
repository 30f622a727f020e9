import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, test } from 'node:test';
import { RoutelabError } from '../src/errors.js';
import { htmlReport } from '../src/report/html.js';
import { markdownReport } from '../src/report/markdown.js';
import { PDF_TABLE_ROWS_PER_PAGE, pdfPagePlan } from '../src/report/pdf.js';
import { chartToSvg, compileToVega, svgSize } from '../src/report/render.js';
import type { ReportContent } from '../src/report/content.js';
import { reportContent, writeReport, type ReportFormat } from '../src/report/report.js';
import type { Chart } from '../src/report/types.js';
import { gutenbergDir, repoRoot, tempDir } from './helpers.js';

const cli = join(repoRoot, 'dist/src/cli/main.js');

function routelab(...args: string[]) {
  return spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8' });
}

/** Top-k 8 (the model's default: the baseline) and 16, BH max_k 8 at two alphas, on four tasks: 16 cells. */
const SPEC = `
tasks: [wikitext, lambada_openai, hellaswag, sst2]
baselines: [8, 16]
bh: { max_k: [8], alpha: [0.3, 0.6] }
limit: 2
max_length: 64
calibration: { tokens: 512 }
bootstrap_resamples: 200
`;
const CELLS = 16;

let run: string;
let content: ReportContent;
let charts: Chart[];
let written: string[];

before(async () => {
  const dir = tempDir('routelab-report-');
  writeFileSync(join(dir, 'sweep.yaml'), SPEC);
  run = join(dir, 'run');
  const sweep = routelab('sweep', '--model', gutenbergDir, '--data-dir', join(repoRoot, 'data'), '--out', run, '--spec', join(dir, 'sweep.yaml'), '--quiet');
  assert.equal(sweep.status, 0, sweep.stderr);
  const report = routelab('report', run);
  assert.equal(report.status, 0, report.stderr);
  written = report.stdout.trim().split('\n');
  content = (await reportContent(run)).content;
  charts = content.sections.flatMap((s) => s.charts);
});

/** A copy of the run directory (with its report), for tests that write reports of their own. */
function copyOfRun(): string {
  const copy = join(tempDir('routelab-report-copy-'), 'run');
  cpSync(run, copy, { recursive: true });
  return copy;
}

/** The cells of a Markdown table row `| a | b |` (cells with no escaped pipes). */
const cellsOf = (row: string) => row.slice(2, -2).split(' | ');
const pngSize = (png: Buffer) => ({ width: png.readUInt32BE(16), height: png.readUInt32BE(20) });
const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

test('routelab report writes Markdown, HTML, PDF and each chart as SVG, 300-dpi PNG and Vega-Lite spec', () => {
  const report = join(run, 'report');
  const expected = ['report.md', 'report.html', 'report.pdf', ...charts.flatMap((c) => ['svg', 'png', 'vl.json'].map((e) => `figures/${c.name}.${e}`))];
  assert.deepEqual([...written].sort(), expected.map((f) => join(report, f)).sort(), 'stdout lists exactly the files written');
  assert.deepEqual(readdirSync(join(report, 'figures')).sort(), expected.filter((f) => f.startsWith('figures/')).map((f) => f.slice(8)).sort());
  assert.ok(charts.length >= 10, `${charts.length} charts`);
  assert.deepEqual(new Set(charts.map((c) => c.section)), new Set(['sweep', 'bh', 'routing', 'null', 'analysis']));

  for (const chart of charts) {
    const svg = readFileSync(join(report, 'figures', `${chart.name}.svg`), 'utf8');
    const png = readFileSync(join(report, 'figures', `${chart.name}.png`));
    assert.deepEqual(png.subarray(0, 8), PNG_SIGNATURE, chart.name);
    const { width, height } = svgSize(svg);
    assert.deepEqual(pngSize(png), { width: Math.round((width * 300) / 96), height: Math.round((height * 300) / 96) }, `${chart.name}: 300 dpi`);
    const spec = JSON.parse(readFileSync(join(report, 'figures', `${chart.name}.vl.json`), 'utf8'));
    assert.deepEqual(spec, chart.spec);
  }
});

test('report.md: run facts, key findings, the results table with intervals, every figure with its caption, provenance', () => {
  const md = readFileSync(join(run, 'report', 'report.md'), 'utf8');
  assert.match(md, /^# Routing report: .*tiny-olmoe-gutenberg/);
  const manifest = JSON.parse(readFileSync(join(run, 'manifest.json'), 'utf8'));
  for (const fact of [manifest.model.fingerprint, manifest.git_commit, manifest.routelab_version, manifest.started, manifest.data[0].fingerprint]) {
    assert.ok(md.includes(fact), `run fact ${fact}`);
  }
  const findings = md.slice(md.indexOf('## Key findings'), md.indexOf('## Results'));
  assert.ok(findings.split('\n').filter((l) => l.startsWith('- ')).length >= 4, findings);

  const results = md.slice(md.indexOf('## Results'), md.indexOf('## Figures')).split('\n').filter((l) => l.startsWith('|'));
  assert.equal(results.length, 2 + CELLS, 'header, alignment and one row per cell');
  const header = cellsOf(results[0]);
  assert.equal(header[0], 'Configuration');
  const delta = header.findIndex((h) => h.includes('[95% CI]'));
  assert.ok(delta > 0, results[0]);
  const intervals = results.slice(2).map((row) => cellsOf(row)[delta]);
  // Compared cells show `Δ [low, high]` with typographic minus signs; the baseline's own rows show none.
  assert.ok(intervals.some((c) => /^[+\u2212]?[\d.,e]+ \[\u2212?[\d.,e]+, \u2212?[\d.,e]+\]$/.test(c)), intervals.join('\n'));
  assert.ok(intervals.every((c) => !/-\d/.test(c)), 'no hyphen-minus in numbers');
  assert.match(md, /Sorted by Task \(`task`, in the sweep's order\)/);

  for (const chart of charts) {
    assert.ok(md.includes(`](figures/${chart.name}.svg)`), `${chart.name}: SVG shown`);
    assert.ok(md.includes(`(figures/${chart.name}.png)`), `${chart.name}: PNG linked`);
  }
  assert.match(md, /## Methods and provenance[\s\S]*\| 8experts_bh_a030 \| bh:alpha=0\.3/);
});

test('report.html is one self-contained file: nothing external, every chart with its spec and a static fallback', () => {
  const html = readFileSync(join(run, 'report', 'report.html'), 'utf8');
  assert.match(html, /<meta http-equiv="Content-Security-Policy" content="default-src 'none';/);
  const markup = html.replace(/<script\b[^>]*>[\s\S]*?<\/script>/g, '<script></script>');
  assert.equal((html.match(/<script\b/g) ?? []).length, 4, 'chart specs, router specs, the Vega runtime, the page script');
  for (const [, attr, value] of markup.matchAll(/\s((?:xlink:)?href|src|action|poster)\s*=\s*["']?([^"'\s>]*)/gi)) {
    assert.ok(value.startsWith('#'), `${attr}="${value}" leaves the page`);
  }
  assert.doesNotMatch(markup, /@import|url\(\s*['"]?(?!#|data:)/i);
  // Outside namespace names, neither the runtime nor any spec names a URL.
  const urls = [...html.matchAll(/(?:https?:)?\/\/[\w.-]+\.[a-z]{2,}[^\s"'<>)]*/gi)].map((m) => m[0]);
  assert.deepEqual(urls.filter((u) => !/^http:\/\/www\.w3\.org\/(2000\/svg|1999\/xlink|2000\/xmlns\/)$/.test(u)), []);
  const specs = JSON.parse(/<script type="application\/json" id="chart-specs">([\s\S]*?)<\/script>/.exec(html)![1]);
  assert.deepEqual(Object.keys(specs).sort(), charts.map((c) => c.name).sort());
  assert.doesNotMatch(JSON.stringify(specs), /"url"\s*:/, 'all chart data is inlined');
  assert.equal((markup.match(/<div class="chart" data-chart=/g) ?? []).length, charts.length);
  assert.equal((markup.match(/<noscript><svg\b/g) ?? []).length, charts.length);
  assert.equal((markup.match(/<table class="sortable/g) ?? []).length, 3, 'data sets, results, configurations');
});

test('report.html and report.md escape text from the run: names, findings, chart titles', async () => {
  const evil = '<img src=x onerror=alert(1)>|</script><script>alert(2)</script>';
  const chart = charts[0];
  const evilSpec = { ...chart.spec, title: evil };
  const tampered: ReportContent = {
    ...content,
    title: evil,
    findings: [{ title: evil, findings: [`\`${evil}\` and **${evil}**`] }],
    results: { ...content.results, rows: content.results.rows.map((row) => [{ text: evil, lines: [evil], value: evil }, ...row.slice(1)]) },
    sections: [{ title: evil, charts: [{ ...chart, title: evil, caption: evil, spec: evilSpec }] }],
    routers: { [evil]: evil },
  };
  const html = htmlReport(tampered, [{ chart: tampered.sections[0].charts[0], vega: compileToVega(evilSpec), svg: await chartToSvg(evilSpec) }]);
  assert.ok(!html.includes('<img src=x'), 'no injected element');
  assert.ok(!html.includes('<script>alert(2)'), 'no injected script');
  assert.equal((html.match(/<script\b/g) ?? []).length, 4);
  assert.ok(html.includes('&#60;img src=x onerror=alert(1)&#62;'), 'shown as text');

  const md = markdownReport(tampered, { svg: true, png: false });
  const row = md.split('\n').find((l) => l.startsWith('| \\<img'))!;
  const columns = content.results.columns.length;
  assert.equal(row.replace(/\\\|/g, '').split('|').length, columns + 2, 'the | in a cell is escaped');
  assert.doesNotMatch(md.replace(/(`+)[\s\S]*?\1/g, ''), /(?<!\\)</, 'no raw HTML outside code spans');
});

const poppler = spawnSync('pdfinfo', ['-v']).error ? 'poppler-utils (pdfinfo, pdftoppm) is not installed' : false;

test('report.pdf: front pages, one page per 24 results rows, one per chart, as many appendix pages, provenance; page 1 renders', { skip: poppler }, () => {
  const pdf = join(run, 'report', 'report.pdf');
  const info = spawnSync('pdfinfo', [pdf], { encoding: 'utf8' });
  assert.equal(info.status, 0, info.stderr);
  const pages = Number(/^Pages:\s+(\d+)$/m.exec(info.stdout)![1]);
  const plan = pdfPagePlan(content);
  assert.equal(pages, plan.length);
  const count = (kind: string) => plan.filter((k) => k === kind).length;
  assert.equal(count('table'), Math.ceil(CELLS / PDF_TABLE_ROWS_PER_PAGE));
  assert.equal(count('chart'), charts.length);
  assert.equal(count('appendix'), Math.ceil(CELLS / PDF_TABLE_ROWS_PER_PAGE), 'the secondary columns, after the charts');
  assert.equal(plan[0], 'front');
  assert.equal(plan.at(-1), 'provenance');
  assert.equal(plan.indexOf('appendix'), plan.lastIndexOf('chart') + 1);
  assert.equal(pages, count('front') + count('table') + count('chart') + count('appendix') + count('provenance'));

  const table = plan.indexOf('table') + 1;
  const text = spawnSync('pdftotext', ['-f', String(table), '-l', String(table), pdf, '-'], { encoding: 'utf8' });
  assert.match(text.stdout, /Results[\s\S]*Δ primary vs baseline/, 'the results page, with its Unicode');
  const out = join(tempDir(), 'page');
  const render = spawnSync('pdftoppm', ['-png', '-r', '50', '-f', '1', '-l', '1', pdf, out], { encoding: 'utf8' });
  assert.equal(render.status, 0, render.stderr);
  const image = readdirSync(join(out, '..')).find((f) => f.startsWith('page') && f.endsWith('.png'))!;
  const png = readFileSync(join(out, '..', image));
  assert.deepEqual(png.subarray(0, 8), PNG_SIGNATURE);
  const { width, height } = pngSize(png);
  assert.ok(Math.abs(width - (841.89 * 50) / 72) <= 1 && Math.abs(height - (595.28 * 50) / 72) <= 1, `A4 landscape at 50 dpi: ${width} × ${height}`);
});

/**
 * pdftotext -bbox reports a word's box from the font's ascent to its descent: for DejaVu Sans (hhea 1901 + 483 of
 * 2048 units) 1.164 × the font size.
 */
const DEJAVU_BOX_EM = (1901 + 483) / 2048;

test('report.pdf: the results and appendix tables are set at 8 pt or more', { skip: poppler }, () => {
  const pdf = join(run, 'report', 'report.pdf');
  const plan = pdfPagePlan(content);
  const boxes = spawnSync('pdftotext', ['-bbox', pdf, '-'], { encoding: 'utf8', maxBuffer: 1 << 28 }).stdout;
  const pages = boxes.split('<page ').slice(1);
  const tablePages = plan.flatMap((kind, i) => (kind === 'table' || kind === 'appendix' ? [i] : []));
  assert.ok(tablePages.length >= 2);
  for (const i of tablePages) {
    const height = Number(/height="([\d.]+)"/.exec(pages[i])![1]);
    const words = [...pages[i].matchAll(/yMin="([\d.]+)" xMax="[\d.]+" yMax="([\d.]+)">([^<]*)</g)]
      // The footer (page number, title) sits in the bottom margin.
      .filter((m) => Number(m[2]) < height - 40)
      .map((m) => ({ word: m[3], size: (Number(m[2]) - Number(m[1])) / DEJAVU_BOX_EM }));
    assert.ok(words.length > 50, `page ${i + 1} has its table`);
    const smallest = words.reduce((a, b) => (b.size < a.size ? b : a));
    assert.ok(smallest.size >= 8 - 0.01, `page ${i + 1} (${plan[i]}): "${smallest.word}" at ${smallest.size.toFixed(2)} pt`);
  }
});

test('--style paper: figures print at their stated column width with 8 pt text; --heatmap-scale per-panel', () => {
  const copy = copyOfRun();
  const r = routelab('report', copy, '--style', 'paper', '--heatmap-scale', 'per-panel', '--format', 'svg,md', '--quiet');
  assert.equal(r.status, 0, r.stderr);
  const figures = join(copy, 'report', 'figures');
  const names = readdirSync(figures).filter((f) => f.endsWith('.svg'));
  // The analysis section keeps its sentences; its screen-sized figures are left to routelab analyze.
  assert.equal(names.length, charts.filter((c) => c.section !== 'analysis').length);
  assert.ok(!names.some((n) => n.startsWith('analysis-')));
  const domains: string[] = [];
  for (const name of names) {
    const svg = readFileSync(join(figures, name), 'utf8');
    const spec = JSON.parse(readFileSync(join(figures, name.replace(/\.svg$/, '.vl.json')), 'utf8'));
    const inches = spec.usermeta.printedWidthInches;
    assert.ok(inches === 3.5 || inches === 7, name);
    assert.equal(svgSize(svg).width, inches * 96, `${name}: W px prints W / 96 in`);
    const viewBox = Number(/viewBox="[\d.-]+ [\d.-]+ ([\d.]+)/.exec(svg)![1]);
    const sizes = [...svg.matchAll(/<text\b[^>]*font-size="([\d.]+)px"/g)].map((m) => (Number(m[1]) * inches * 72) / viewBox);
    assert.ok(sizes.length > 0 && Math.min(...sizes) >= 8 - 1e-9, `${name}: smallest text ${Math.min(...sizes).toFixed(2)} pt at ${inches} in`);
    if (name.startsWith('routing-heatmap-')) domains.push(JSON.stringify(spec.encoding.fill.scale.domain));
  }
  assert.ok(new Set(domains).size > 1, 'per-panel: the heatmaps have scales of their own');
  assert.match(readFileSync(join(copy, 'report', 'report.md'), 'utf8'), /Laid out for printing 7 in wide\./);
  const bad = routelab('report', copy, '--style', 'poster');
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /--style: expected one of screen, paper, got "poster"/);
});

test('--sort orders the table; --format md writes only report.md, replacing the whole previous report', () => {
  const copy = copyOfRun();
  writeFileSync(join(copy, 'report', 'figures', 'stale.svg'), '<svg/>');
  const r = routelab('report', copy, '--format', 'md', '--sort', 'avg_experts', '--quiet');
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout, '', '--quiet prints nothing');
  assert.deepEqual(readdirSync(join(copy, 'report')), ['report.md']);
  assert.deepEqual(readdirSync(copy).filter((f) => f.startsWith('.report')), [], 'no staging directory left');
  const md = readFileSync(join(copy, 'report', 'report.md'), 'utf8');
  assert.match(md, /Sorted by Experts per token \(experts\/token\) \(`avg_experts`, lowest first\)/);
  assert.match(md, /Figure files were not written/);
  assert.doesNotMatch(md, /\]\(figures\//, 'no links to figures that do not exist');
  const rows = md.slice(md.indexOf('## Results'), md.indexOf('## Figures')).split('\n').filter((l) => l.startsWith('|'));
  const column = cellsOf(rows[0]).findIndex((h) => h.startsWith('Experts per token'));
  const experts = rows.slice(2).map((row) => Number(cellsOf(row)[column].replace(/,/g, '')));
  assert.equal(experts.length, CELLS);
  assert.deepEqual(experts, [...experts].sort((a, b) => a - b));
});

test('a bad run directory, format or sort key is one clear error, and the previous report stays as it was', async () => {
  const before = readFileSync(join(run, 'report', 'report.md'), 'utf8');
  const empty = tempDir();
  const cases: [string[], RegExp][] = [
    [[join(empty, 'missing')], /no such run directory/],
    [[empty], /not a routelab sweep run directory: no results\.json/],
    [[run, '--format', 'md,docx'], /--format: unknown format\(s\) docx; expected a comma-separated list of md, html, pdf, png, svg/],
    [[run, '--sort', 'perplexities'], /--sort: unknown column "perplexities"; sortable columns: .*avg_experts/],
    [[], /expected one RUN_DIR, got none/],
  ];
  for (const [args, pattern] of cases) {
    const r = routelab('report', ...args);
    assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, pattern);
    assert.equal(r.stderr.trim().split('\n').length, 1, `one line: ${r.stderr}`);
  }
  await assert.rejects(writeReport(run, { formats: ['docx' as ReportFormat] }), RoutelabError);
  assert.equal(readFileSync(join(run, 'report', 'report.md'), 'utf8'), before);
  assert.deepEqual(readdirSync(run).filter((f) => f.startsWith('.report')), []);
  assert.ok(!existsSync(join(empty, 'report')), 'nothing written for a directory that is not a run');
});
