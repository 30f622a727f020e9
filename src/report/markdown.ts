/**
 * The report as Markdown (report.md, GitHub-flavoured: tables, images beside it under figures/), and the inline
 * Markdown subset the findings are written in (`code`, **strong**, *emphasis*), read back for the HTML and PDF.
 */
import type { Fact, ReportContent, ShownTable, TextTable } from './content.js';

/** Which figure files the report directory has, so the Markdown links only to files that exist. */
export interface FigureFiles {
  readonly svg: boolean;
  readonly png: boolean;
}

export function markdownReport(content: ReportContent, figures: FigureFiles): string {
  const lines: string[] = [`# ${plain(content.title)}`, '', `${content.runDirLabel ?? 'Run directory'}: ${codeSpan(content.runDir)}`, ''];
  lines.push(...content.facts.map(factLine), '');
  lines.push('## Data', '', ...textTable(content.dataSets), '');
  lines.push('## Key findings', '');
  if (content.noFindings) lines.push(plain(content.noFindings), '');
  for (const group of content.findings) lines.push(`### ${plain(group.title)}`, '', ...group.findings.map((f) => `- ${inline(f)}`), '');
  lines.push('## Results', '', sortSentence(content.results), inline(content.resultsNote), '', ...resultsTable(content.results), '');
  lines.push('## Figures', '');
  if (!figures.svg && !figures.png) lines.push('Figure files were not written with this report (ask for `--format svg` or `png`).', '');
  let number = 0;
  for (const section of content.sections) {
    lines.push(`### ${plain(section.title)}`, '');
    for (const chart of section.charts) {
      number++;
      const files = [
        figures.svg && `[SVG](figures/${chart.name}.svg)`,
        figures.png && `[PNG, 300 dpi](figures/${chart.name}.png)`,
        (figures.svg || figures.png) && `[Vega-Lite spec](figures/${chart.name}.vl.json)`,
      ].filter(Boolean);
      lines.push(`#### Figure ${number}. ${plain(chart.title)}`, '');
      if (files.length) lines.push(`![${plain(chart.title)}](figures/${chart.name}.${figures.svg ? 'svg' : 'png'})`, '');
      lines.push(`${plain(chart.caption)}${files.length ? ` (${files.join(' · ')})` : ''}`, '');
    }
  }
  lines.push('## Methods and provenance', '', '### Configurations', '', ...textTable(content.configurations), '');
  lines.push('### Settings', '', ...content.provenance.map(factLine), '');
  return lines.join('\n');
}

function factLine(fact: Fact): string {
  return `- **${plain(fact.label)}:** ${fact.code ? codeSpan(fact.value) : plain(fact.value)}`;
}

function sortSentence(table: ShownTable): string {
  const column = table.columns.find((c) => c.key === table.sortedBy)!;
  const order = table.direction === null ? 'in the sweep\'s order' : table.direction === 'descending' ? 'highest first' : 'lowest first';
  return `Sorted by ${plain(column.label)} (${codeSpan(table.sortedBy)}, ${order}).`;
}

function resultsTable(table: ShownTable): string[] {
  return tableLines(
    table.columns.map((c) => c.label),
    table.columns.map((c) => c.numeric),
    table.rows.map((row) => row.map((cell) => cell.text)),
  );
}

function textTable(table: TextTable): string[] {
  return tableLines(table.header, table.header.map(() => false), table.rows);
}

function tableLines(header: readonly string[], rightAligned: readonly boolean[], rows: readonly (readonly string[])[]): string[] {
  const row = (cells: readonly string[]) => `| ${cells.map((c) => tableCell(c)).join(' | ')} |`;
  return [row(header), `|${rightAligned.map((r) => (r ? ' ---: ' : ' --- ')).join('|')}|`, ...rows.map(row)];
}

/** A table cell: plain text on one line, with `|` escaped so it cannot end the cell. */
function tableCell(text: string): string {
  return plain(oneLine(text));
}

function oneLine(text: string): string {
  return text.replace(/\s*\n\s*/g, ' ');
}

/**
 * Text shown as written: Markdown's inline syntax is escaped where it could act (underscores only at word edges,
 * where they could start emphasis; `]` only where it could close a link), so names like 8experts_bh_a030 and
 * intervals like [0.1, 0.3] stay readable in the source.
 */
function plain(text: string): string {
  return text.replace(/[\\`*<>|]|\](?=[([:])|(?<![\p{L}\p{N}])_|_(?![\p{L}\p{N}])/gu, (c) => `\\${c}`);
}

/**
 * A finding's Markdown written again from its parsed spans: code, strong and emphasis keep their meaning and
 * everything else is escaped text, so no name inside a sentence can become a link or raw HTML.
 */
function inline(markdown: string): string {
  return inlineMarkdown(oneLine(markdown)).map((span) => {
    const [, before, core, after] = /^(\s*)([\s\S]*?)(\s*)$/.exec(span.text)!;
    if (!core) return span.text;
    let md = span.code ? codeSpan(core) : plain(core);
    if (span.emphasis) md = `*${md}*`;
    if (span.strong) md = `**${md}**`;
    return `${before}${md}${after}`;
  }).join('');
}

/** A code span whose fence is longer than any run of backticks inside it. */
function codeSpan(text: string): string {
  const longest = Math.max(0, ...(oneLine(text).match(/`+/g) ?? []).map((run) => run.length));
  const fence = '`'.repeat(longest + 1);
  const pad = text.startsWith('`') || text.endsWith('`') ? ' ' : '';
  return `${fence}${pad}${oneLine(text)}${pad}${fence}`;
}

export interface InlineSpan {
  readonly text: string;
  readonly strong: boolean;
  readonly emphasis: boolean;
  readonly code: boolean;
}

const INLINE = /(`+)([\s\S]*?[^`])\1(?!`)|\*\*([\s\S]+?)\*\*|\*([^*\s](?:[^*]*[^*\s])?)\*|\\([!-/:-@[-`{-~])/g;

/**
 * The findings' inline Markdown as styled runs of text: code spans, **strong** and *emphasis* (nesting inside
 * strong and emphasis), backslash escapes; anything else is literal text.
 */
export function inlineMarkdown(text: string, style: Omit<InlineSpan, 'text'> = { strong: false, emphasis: false, code: false }): InlineSpan[] {
  const spans: InlineSpan[] = [];
  const literal = (s: string) => {
    if (s) spans.push({ text: s, ...style });
  };
  let at = 0;
  for (const m of text.matchAll(INLINE)) {
    literal(text.slice(at, m.index));
    at = m.index + m[0].length;
    if (m[2] !== undefined) spans.push({ text: m[2].replace(/^ (.*) $/s, '$1'), ...style, code: true });
    else if (m[3] !== undefined) spans.push(...inlineMarkdown(m[3], { ...style, strong: true }));
    else if (m[4] !== undefined) spans.push(...inlineMarkdown(m[4], { ...style, emphasis: true }));
    else literal(m[5]);
  }
  literal(text.slice(at));
  return spans;
}
