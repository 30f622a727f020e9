/**
 * The report as one self-contained HTML file: styles, the Vega runtime and every chart's compiled Vega spec are
 * inlined, and a Content-Security-Policy forbids the page any network access, so it views the same offline, attached
 * to a mail or years later. Charts are drawn as SVG in the browser with tooltips; without scripts each chart's
 * static SVG shows instead. Every text from the run (names, token text, paths) is escaped.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { inlineMarkdown } from './markdown.js';
import type { Fact, ReportContent, ShownTable, TextTable } from './content.js';
import type { Chart } from './types.js';

/** A chart as the page needs it: the compiled Vega spec drawn by the script, the static SVG for <noscript>. */
export interface HtmlFigure {
  readonly chart: Chart;
  readonly vega: Record<string, unknown>;
  readonly svg: string;
}

/** Nothing may be fetched: scripts and styles are inline (Vega compiles its expressions with `Function`, hence eval). */
const CONTENT_SECURITY_POLICY = "default-src 'none'; script-src 'unsafe-inline' 'unsafe-eval'; style-src 'unsafe-inline'; img-src data:";

let vegaRuntime: string | null = null;

/** Vega's browser build, from the installed package (only its schema is exported; the build sits beside it). */
export function vegaBrowserBuild(): string {
  vegaRuntime ??= readFileSync(join(dirname(createRequire(import.meta.url).resolve('vega/vega-schema.json')), 'vega.min.js'), 'utf8');
  return vegaRuntime;
}

export function htmlReport(content: ReportContent, figures: readonly HtmlFigure[]): string {
  const byName = new Map(figures.map((f) => [f.chart.name, f]));
  // The $schema URL is documentation only; leaving it out keeps the page free of any external URL.
  const specs = Object.fromEntries(figures.map(({ chart, vega: { $schema: _, ...spec } }) => [chart.name, spec]));
  let number = 0;
  const sections = content.sections.map((section, s) => `
<section id="figures-${s + 1}">
<h3>${escapeHtml(section.title)}</h3>
${section.charts.map((chart) => figure(byName.get(chart.name) ?? missing(chart), ++number)).join('\n')}
</section>`);
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="${CONTENT_SECURITY_POLICY}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="routelab">
<title>${escapeHtml(content.title)}</title>
<style>${STYLE}</style>
</head>
<body>
<header>
<h1>${escapeHtml(content.title)}</h1>
<p class="run">${escapeHtml(content.runDirLabel ?? 'Run directory')}: <code>${escapeHtml(content.runDir)}</code></p>
${factList(content.facts)}
</header>
<nav aria-label="Contents"><ol>
<li><a href="#data">Data</a></li><li><a href="#findings">Key findings</a></li><li><a href="#results">Results</a></li>
<li><a href="#figures">Figures</a></li><li><a href="#provenance">Methods and provenance</a></li>
</ol></nav>
<main>
<section id="data">
<h2>Data</h2>
${textTable(content.dataSets, 'Data sets of the sweep')}
</section>
<section id="findings">
<h2>Key findings</h2>
${content.noFindings ? `<p>${escapeHtml(content.noFindings)}</p>` : ''}
${content.findings.map((g) => `<h3>${escapeHtml(g.title)}</h3>\n<ul>\n${g.findings.map((f) => `<li>${inlineHtml(f)}</li>`).join('\n')}\n</ul>`).join('\n')}
</section>
<section id="results">
<h2>Results</h2>
<p>${inlineHtml(content.resultsNote)} Click a column header to sort by it; the table scrolls sideways with its first column pinned.</p>
${resultsTable(content.results, content.routers)}
</section>
<section id="figures">
<h2>Figures</h2>
${sections.join('\n')}
</section>
<section id="provenance">
<h2>Methods and provenance</h2>
<h3>Configurations</h3>
${textTable(content.configurations, 'Router configurations of the sweep')}
<h3>Settings</h3>
${factList(content.provenance)}
</section>
</main>
<script type="application/json" id="chart-specs">${jsonForScript(specs)}</script>
<script type="application/json" id="config-routers">${jsonForScript(content.routers)}</script>
<script>${scriptText(vegaBrowserBuild())}</script>
<script>${PAGE_SCRIPT}</script>
</body>
</html>
`;
}

function figure({ chart, svg }: HtmlFigure, number: number): string {
  return `<figure id="figure-${escapeHtml(chart.name)}">
<div class="chart" data-chart="${escapeHtml(chart.name)}" role="img" aria-label="${escapeHtml(chart.title)}"></div>
<noscript>${svg}</noscript>
<figcaption><strong>Figure ${number}. ${escapeHtml(chart.title)}.</strong> ${escapeHtml(chart.caption)}</figcaption>
</figure>`;
}

function missing(chart: Chart): never {
  throw new Error(`htmlReport: no compiled spec and SVG for chart ${chart.name}`);
}

function factList(facts: readonly Fact[]): string {
  const item = (f: Fact) => `<dt>${escapeHtml(f.label)}</dt><dd>${f.code ? `<code>${escapeHtml(f.value)}</code>` : escapeHtml(f.value)}</dd>`;
  return `<dl class="facts">\n${facts.map(item).join('\n')}\n</dl>`;
}

function sortableHeader(label: string, numeric: boolean, sort: 'ascending' | 'descending' | null): string {
  return `<th scope="col"${numeric ? ' class="num"' : ''}${sort ? ` aria-sort="${sort}"` : ''}><button type="button">${escapeHtml(label)}</button></th>`;
}

function resultsTable(table: ShownTable, routers: Readonly<Record<string, string>>): string {
  const header = table.columns.map((c) => sortableHeader(c.label, c.numeric, c.key === table.sortedBy ? table.direction : null)).join('');
  const rows = table.rows.map((row) => `<tr>${row.map((cell, i) => {
    const numeric = table.columns[i].numeric;
    // data-value carries the number a cell sorts by (its text is rounded and formatted); empty = no value.
    const value = typeof cell.value === 'number' ? String(cell.value) : cell.value === null ? '' : null;
    // A configuration's short name carries its full router spec as a tooltip.
    const spec = table.columns[i].key === 'config' && typeof cell.value === 'string' ? routers[cell.value] : undefined;
    return `<td${numeric ? ' class="num"' : ''}${value !== null ? ` data-value="${escapeHtml(value)}"` : ''}${spec ? ` title="${escapeHtml(spec)}"` : ''}>${escapeHtml(cell.text)}</td>`;
  }).join('')}</tr>`);
  return `<div class="table-wrap results-wrap"><table class="sortable results">
<caption class="visually-hidden">Results per configuration and task</caption>
<thead><tr>${header}</tr></thead>
<tbody>
${rows.join('\n')}
</tbody>
</table></div>`;
}

function textTable(table: TextTable, caption: string): string {
  return `<div class="table-wrap"><table class="sortable">
<caption class="visually-hidden">${escapeHtml(caption)}</caption>
<thead><tr>${table.header.map((h) => sortableHeader(h, false, null)).join('')}</tr></thead>
<tbody>
${table.rows.map((row) => `<tr>${row.map((cell) => `<td>${escapeHtml(cell)}</td>`).join('')}</tr>`).join('\n')}
</tbody>
</table></div>`;
}

/** The findings' inline Markdown as HTML: every piece of text escaped, the styling as elements. */
function inlineHtml(markdown: string): string {
  return inlineMarkdown(markdown).map((span) => {
    let html = escapeHtml(span.text);
    if (span.code) html = `<code>${html}</code>`;
    if (span.emphasis) html = `<em>${html}</em>`;
    if (span.strong) html = `<strong>${html}</strong>`;
    return html;
  }).join('');
}

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** JSON inside <script>: `<` escaped so no string in it can close the element or open a comment. */
function jsonForScript(value: unknown): string {
  return JSON.stringify(value).replace(/</g, '\\u003c');
}

/** Script source inside <script>: a `</script` or `<!--` in it would end the element early. */
export function scriptText(source: string): string {
  return source.replace(/<\/(script)/gi, '<\\/$1').replace(/<!--/g, '<\\!--');
}

/**
 * Draws each chart with Vega (SVG renderer) into its container, shows tooltips in a small box that follows the
 * pointer, and sorts a table when a column header is clicked (numbers by their data-value, text by locale order,
 * cells without a value last in both directions).
 */
const PAGE_SCRIPT = `
(() => {
  'use strict';
  const specs = JSON.parse(document.getElementById('chart-specs').textContent);
  const routers = JSON.parse(document.getElementById('config-routers').textContent);
  const tip = document.createElement('div');
  tip.className = 'tooltip';
  tip.setAttribute('role', 'tooltip');
  tip.hidden = true;
  document.body.appendChild(tip);
  const formatValue = (v) => (typeof v === 'number' ? String(+v.toPrecision(6)) : String(v));
  function tooltip(handler, event, item, value) {
    if (value === null || value === undefined || value === '') { tip.hidden = true; return; }
    // A configuration's short name gets its full router spec beside it.
    const entries = typeof value === 'object' ? Object.entries(value) : null;
    if (entries && typeof value.configuration === 'string' && routers[value.configuration]) {
      entries.splice(entries.findIndex(([k]) => k === 'configuration') + 1, 0, ['router', routers[value.configuration]]);
    }
    tip.textContent = entries
      ? entries.map(([k, v]) => k + ': ' + formatValue(v)).join('\\n')
      : formatValue(value);
    tip.hidden = false;
    const x = Math.min(event.clientX + 14, window.innerWidth - tip.offsetWidth - 8);
    const y = event.clientY + 14 + tip.offsetHeight > window.innerHeight ? event.clientY - tip.offsetHeight - 8 : event.clientY + 14;
    tip.style.left = Math.max(4, x) + 'px';
    tip.style.top = Math.max(4, y) + 'px';
  }
  for (const container of document.querySelectorAll('[data-chart]')) {
    const view = new vega.View(vega.parse(specs[container.dataset.chart]), { renderer: 'svg', container, hover: true, tooltip });
    view.runAsync().then(
      () => { container.dataset.rendered = 'true'; },
      (error) => {
        console.error('chart ' + container.dataset.chart + ': ' + error);
        container.textContent = 'This chart could not be drawn: ' + error.message;
      });
  }

  function sortValue(cell) {
    if (cell.hasAttribute('data-value')) {
      const raw = cell.getAttribute('data-value');
      return raw === '' ? null : Number.isNaN(Number(raw)) ? raw : Number(raw);
    }
    return cell.textContent;
  }
  function sortTable(table, column) {
    const headers = table.tHead.rows[0].cells;
    const direction = headers[column].getAttribute('aria-sort') === 'ascending' ? 'descending' : 'ascending';
    for (const th of headers) th.removeAttribute('aria-sort');
    headers[column].setAttribute('aria-sort', direction);
    const sign = direction === 'ascending' ? 1 : -1;
    const body = table.tBodies[0];
    const rows = Array.from(body.rows, (row, index) => ({ row, index, value: sortValue(row.cells[column]) }));
    rows.sort((a, b) => {
      if (a.value === null || b.value === null) return (a.value === null) - (b.value === null) || a.index - b.index;
      const order = typeof a.value === 'number' && typeof b.value === 'number'
        ? a.value - b.value
        : String(a.value).localeCompare(String(b.value), undefined, { numeric: true });
      return sign * order || a.index - b.index;
    });
    for (const { row } of rows) body.appendChild(row);
  }
  for (const table of document.querySelectorAll('table.sortable')) {
    Array.from(table.tHead.rows[0].cells).forEach((th, column) => {
      th.querySelector('button').addEventListener('click', () => sortTable(table, column));
    });
  }
})();
`;

const STYLE = `
:root { color-scheme: light; --ink: #1b1b1b; --muted: #555; --rule: #d6d6d6; --accent: #0072B2; }
* { box-sizing: border-box; }
body { margin: 0 auto; max-width: 1280px; padding: 24px 32px 64px; font: 15px/1.5 "DejaVu Sans", system-ui, sans-serif; color: var(--ink); background: #fff; }
h1 { font-size: 1.6rem; margin: 0 0 4px; }
h2 { font-size: 1.3rem; margin: 40px 0 8px; border-bottom: 1px solid var(--rule); padding-bottom: 4px; }
h3 { font-size: 1.05rem; margin: 24px 0 6px; }
code { font: 0.88em/1.3 "DejaVu Sans Mono", ui-monospace, monospace; background: #f3f3f3; padding: 0 3px; border-radius: 3px; overflow-wrap: anywhere; }
.run { color: var(--muted); margin: 0 0 12px; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 2px 16px; margin: 0; }
dl.facts dt { color: var(--muted); }
dl.facts dd { margin: 0; }
nav ol { display: flex; flex-wrap: wrap; gap: 4px 20px; padding: 12px 0; margin: 16px 0 0; list-style: none; border-top: 1px solid var(--rule); border-bottom: 1px solid var(--rule); }
nav a { color: var(--accent); }
.table-wrap { overflow-x: auto; max-width: 100%; }
/* The results table is far wider than the page: it scrolls inside its box, its first column (the configuration) pinned. */
.results-wrap { border: 1px solid #e6e6e6; }
table.results th:first-child, table.results td:first-child { position: sticky; left: 0; z-index: 1; background: #fff; box-shadow: 1px 0 0 var(--rule); }
table.results th:first-child { z-index: 2; background: #f7f7f7; }
table.results tbody tr:hover td:first-child { background: #f4f8fb; }
table { border-collapse: collapse; font-size: 13px; margin: 8px 0; }
th, td { padding: 3px 8px; border-bottom: 1px solid #e6e6e6; text-align: left; vertical-align: top; white-space: nowrap; }
th { position: sticky; top: 0; background: #f7f7f7; border-bottom: 2px solid var(--rule); }
th.num, td.num { text-align: right; font-variant-numeric: tabular-nums; }
th button { all: unset; cursor: pointer; font-weight: bold; }
th button:focus-visible { outline: 2px solid var(--accent); }
th[aria-sort="ascending"] button::after { content: " ▲"; }
th[aria-sort="descending"] button::after { content: " ▼"; }
tbody tr:hover { background: #f4f8fb; }
figure { margin: 24px 0 32px; }
.chart { overflow-x: auto; min-height: 40px; }
noscript svg { max-width: 100%; height: auto; }
figcaption { color: var(--muted); font-size: 0.92rem; max-width: 80ch; margin-top: 6px; }
.tooltip { position: fixed; z-index: 10; pointer-events: none; white-space: pre; font-size: 12px; line-height: 1.4;
  background: rgba(255, 255, 255, 0.96); border: 1px solid #999; border-radius: 4px; padding: 4px 8px; box-shadow: 0 2px 6px rgba(0, 0, 0, 0.15); }
.visually-hidden { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; }
@media print {
  body { max-width: none; padding: 0; font-size: 11px; }
  nav, .tooltip { display: none; }
  figure { break-inside: avoid; }
  .chart { overflow: visible; }
  .chart svg { max-width: 100%; height: auto; }
  th, table.results td:first-child { position: static; }
}
`;
