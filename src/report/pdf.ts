/**
 * The report as a PDF for printing: A4, DejaVu fonts so Δ, ± and − print, text and the results table landscape
 * (the table is wide; it is paginated with its header repeated), each chart drawn as vectors from its SVG on a page
 * of its own, portrait or landscape as prints it larger (a paper-style chart at its stated printed width); page
 * numbers and a bookmark per section. Every table is set at 8 pt or more: the results table keeps the columns that
 * compare configurations, and an appendix table after the charts holds the secondary ones (documents, cost, routing
 * behaviour; table.ts TableColumn.secondary).
 *
 * The page count is fixed by the content, in this order: the front pages (title, run facts, data sets, key
 * findings; as many as that text needs), ⌈rows / PDF_TABLE_ROWS_PER_PAGE⌉ results pages (more only if cells must wrap
 * even at the smallest font), one page per chart, as many appendix pages, then the methods and provenance pages.
 * `pdfPagePlan` gives the kind of every page without drawing anything.
 */
import { createRequire } from 'node:module';
import PDFDocument from 'pdfkit';
import { DEJAVU } from './fonts.js';
import { inlineMarkdown } from './markdown.js';
import type { Fact, ReportContent, ShownColumn, TextTable } from './content.js';
import { svgSize } from './render.js';
import { IDENTITY_COLUMNS } from './table.js';
import { CSS_PX_PER_INCH, POINTS_PER_INCH, printedWidthOf } from './theme.js';

/** svg-to-pdfkit ships no types; this is the part of its API used here. */
type SvgToPdf = (doc: PDFKit.PDFDocument, svg: string, x: number, y: number, options: {
  width: number;
  height: number;
  assumePt: boolean;
  fontCallback: (family: string, bold: boolean, italic: boolean, fontOptions: { fauxItalic: boolean }) => string;
  warningCallback: (warning: string) => void;
}) => void;
const svgToPdf = createRequire(import.meta.url)('svg-to-pdfkit') as SvgToPdf;

export const PDF_TABLE_ROWS_PER_PAGE = 24;
export type PdfPageKind = 'front' | 'table' | 'chart' | 'appendix' | 'provenance';

/** A4 in points. Text and tables are set landscape (the results table is wide); a chart takes whichever prints it larger. */
const LANDSCAPE: Frame = { layout: 'landscape', width: 841.89, height: 595.28 };
const PORTRAIT: Frame = { layout: 'portrait', width: 595.28, height: 841.89 };
const MARGIN = 40;
const CONTENT_WIDTH = LANDSCAPE.width - 2 * MARGIN;
const TOP = MARGIN;
const BOTTOM = LANDSCAPE.height - MARGIN;
/** A chart is drawn at most at 1 pt per CSS px (133% of its on-screen size), so small charts keep readable text. */
const MAX_CHART_SCALE = 1;
/** A chart with a printed width is drawn at it: 1 CSS px is 1/96 in, so 0.75 pt. */
const PRINTED_CHART_SCALE = POINTS_PER_INCH / CSS_PX_PER_INCH;
/** Space between a chart and its caption. */
const CAPTION_GAP = 10;
const INK = '#1b1b1b';
const MUTED = '#555555';
const CODE = '#0b4f79';

type FontName = 'regular' | 'bold' | 'mono';

/** Something laid out in the page's flow: its height is measured before any page is drawn. */
interface Block {
  readonly height: number;
  /** A heading stays on the page of the block after it. */
  readonly keepWithNext?: boolean;
  draw(y: number): void;
}

interface Frame {
  readonly layout: 'landscape' | 'portrait';
  readonly width: number;
  readonly height: number;
}

interface Page {
  readonly kind: PdfPageKind;
  /** Decided when the page is drawn (a chart's page needs its SVG's size). */
  frame(): Frame;
  /** Bookmark of the page in the PDF outline. */
  readonly bookmark: string | null;
  draw(): void;
}

function newDocument(title: string): PDFKit.PDFDocument {
  const doc = new PDFDocument({
    size: 'A4',
    layout: 'landscape',
    margins: { top: MARGIN, bottom: MARGIN, left: MARGIN, right: MARGIN },
    bufferPages: true,
    info: { Title: title, Creator: 'routelab' },
  });
  for (const name of ['regular', 'bold', 'mono'] as const) doc.registerFont(name, DEJAVU[name]);
  return doc.font('regular').fillColor(INK);
}

/** The kind of each page the PDF of `content` has, in order, without drawing. */
export function pdfPagePlan(content: ReportContent): PdfPageKind[] {
  return layOut(newDocument(content.title), content, new Map()).map((p) => p.kind);
}

export async function pdfReport(content: ReportContent, svgs: ReadonlyMap<string, string>): Promise<{ bytes: Buffer; pages: PdfPageKind[] }> {
  const doc = newDocument(content.title);
  const chunks: Buffer[] = [];
  doc.on('data', (chunk: Buffer) => chunks.push(chunk));
  const ended = new Promise<void>((resolve, reject) => {
    doc.on('end', resolve);
    doc.on('error', reject);
  });
  const pages = layOut(doc, content, svgs);
  pages.forEach((page, i) => {
    const frame = page.frame();
    // The first page exists from the start, landscape; every layout puts the front pages first.
    if (i > 0) doc.addPage({ size: 'A4', layout: frame.layout, margins: { top: MARGIN, bottom: MARGIN, left: MARGIN, right: MARGIN } });
    if (page.bookmark) doc.outline.addItem(page.bookmark);
    page.draw();
  });
  // Text that ran past a page's bottom margin would have made pdfkit start a page the layout did not plan.
  const drawn = doc.bufferedPageRange().count;
  if (drawn !== pages.length) throw new Error(`PDF layout: planned ${pages.length} pages, drew ${drawn}`);
  footers(doc, content.title);
  doc.end();
  await ended;
  return { bytes: Buffer.concat(chunks), pages: pages.map((p) => p.kind) };
}

function footers(doc: PDFKit.PDFDocument, title: string): void {
  const { count } = doc.bufferedPageRange();
  for (let i = 0; i < count; i++) {
    doc.switchToPage(i);
    const { width, height } = doc.page;
    // Text below the bottom margin would start a new page; the footer lives in the margin.
    doc.page.margins.bottom = 0;
    const y = height - MARGIN / 2 - 4;
    doc.font('regular').fontSize(7.5).fillColor(MUTED);
    doc.text(title, MARGIN, y, { width: (width - 2 * MARGIN) * 0.75, lineBreak: false, ellipsis: true });
    doc.text(`page ${i + 1} of ${count}`, MARGIN, y, { width: width - 2 * MARGIN, align: 'right', lineBreak: false });
    doc.page.margins.bottom = MARGIN;
  }
}

function layOut(doc: PDFKit.PDFDocument, content: ReportContent, svgs: ReadonlyMap<string, string>): Page[] {
  const text = new TextBlocks(doc, CONTENT_WIDTH);
  const front = flow('front', 'Overview', [
    text.paragraph(content.title, 'bold', 20, INK, 4),
    text.paragraph(`${content.runDirLabel ?? 'Run directory'}: ${content.runDir}`, 'regular', 9, MUTED, 10),
    ...text.facts(content.facts),
    text.heading('Data', 14),
    ...tableBlocks(doc, content.dataSets),
    text.heading('Key findings', 14),
    ...(content.noFindings ? [text.paragraph(content.noFindings, 'regular', 9, INK, 0)] : []),
    ...content.findings.flatMap((group) => [text.heading(group.title, 11), ...group.findings.map((f) => text.bullet(f))]),
  ]);
  const results = tablePages(doc, content, text, {
    kind: 'table', title: 'Results', note: content.resultsNote, shown: (c) => !c.secondary,
  });
  let number = 0;
  const charts = content.sections.flatMap((section) => section.charts.map((chart): Page => {
    const title = `Figure ${++number}. ${chart.title}`;
    let placement: ChartPlacement | undefined;
    const maxScale = printedWidthOf(chart.spec) === null ? MAX_CHART_SCALE : PRINTED_CHART_SCALE;
    const place = () => (placement ??= chartPlacement(doc, title, `${section.title}. ${chart.caption}`, svgs.get(chart.name)!, maxScale));
    return { kind: 'chart', bookmark: title, frame: () => place().frame, draw: () => drawChart(doc, place(), title, svgs.get(chart.name)!) };
  }));
  const appendix = content.results.columns.some((c) => c.secondary) ? tablePages(doc, content, text, {
    kind: 'appendix',
    title: 'Appendix: documents, cost and routing per cell',
    note: 'The secondary columns of the results table, row for row in its order.',
    shown: (c) => IDENTITY_COLUMNS.has(c.key) || c.secondary === true,
  }) : [];
  const provenance = flow('provenance', 'Methods and provenance', [
    text.heading('Methods and provenance', 14),
    text.heading('Configurations', 11),
    ...tableBlocks(doc, content.configurations),
    text.heading('Settings', 11),
    ...text.facts(content.provenance),
  ]);
  return [...front, ...results, ...charts, ...appendix, ...provenance];
}

/** Blocks packed onto pages top to bottom; a block starts a new page when it (with its keep-with-next) does not fit. */
function flow(kind: PdfPageKind, bookmark: string, blocks: readonly Block[]): Page[] {
  const pages: { placed: { y: number; block: Block }[] }[] = [];
  let y = BOTTOM;
  blocks.forEach((block, i) => {
    const needed = block.height + (block.keepWithNext && blocks[i + 1] ? blocks[i + 1].height : 0);
    if (pages.length === 0 || (y + needed > BOTTOM && y > TOP)) {
      pages.push({ placed: [] });
      y = TOP;
    }
    pages.at(-1)!.placed.push({ y, block });
    y += block.height;
  });
  return pages.map((page, i) => ({
    kind,
    bookmark: i === 0 ? bookmark : null,
    frame: () => LANDSCAPE,
    draw: () => page.placed.forEach(({ y, block }) => block.draw(y)),
  }));
}

/** The columns of the results table that `shown` picks, as pages of at most PDF_TABLE_ROWS_PER_PAGE rows under `title`. */
function tablePages(
  doc: PDFKit.PDFDocument, content: ReportContent, text: TextBlocks,
  part: { kind: PdfPageKind; title: string; note: string; shown: (column: ShownColumn) => boolean },
): Page[] {
  const table = content.results;
  const picked = table.columns.flatMap((c, i) => (part.shown(c) ? [i] : []));
  const columns = picked.map((i) => table.columns[i]);
  const header = columns.map((c) => (c.key === table.sortedBy && table.direction ? `${c.label} ${table.direction === 'ascending' ? '▲' : '▼'}` : c.label));
  // Split from the secondary columns the table is narrow enough for a Δ and its interval on one line, which keeps
  // PDF_TABLE_ROWS_PER_PAGE rows of 8 pt on a page; a cell wraps only where its column must be capped.
  const rows = table.rows.map((row) => picked.map((i) => row[i].text));
  const headings = [text.heading(part.title, 14), text.heading(`${part.title} (continued)`, 14)];
  const note = text.paragraph(part.note, 'regular', 8.5, MUTED, 8, true);
  const space = BOTTOM - TOP - Math.max(...headings.map((h) => h.height)) - note.height;
  const layout = tableLayout(doc, header, rows, columns.map((c) => (c.numeric ? 'right' : 'left')), { rows: PDF_TABLE_ROWS_PER_PAGE, space });
  return tableChunks(doc, layout, header, rows, space, PDF_TABLE_ROWS_PER_PAGE).map((block, i): Page => ({
    kind: part.kind,
    bookmark: i === 0 ? part.title : null,
    frame: () => LANDSCAPE,
    draw: () => {
      const heading = headings[i === 0 ? 0 : 1];
      heading.draw(TOP);
      note.draw(TOP + heading.height);
      block.draw(TOP + heading.height + note.height);
    },
  }));
}

interface ChartPlacement {
  readonly frame: Frame;
  readonly heading: Block;
  readonly caption: Block;
  /** Points per SVG px, and the chart's top-left corner. */
  readonly scale: number;
  readonly x: number;
  readonly y: number;
}

/** The chart's page and place on it: the orientation that prints it larger, scaled to the space the title and caption leave. */
function chartPlacement(doc: PDFKit.PDFDocument, title: string, caption: string, svg: string, maxScale: number): ChartPlacement {
  const size = svgSize(svg);
  const [landscape, portrait] = [LANDSCAPE, PORTRAIT].map((frame): ChartPlacement => {
    const width = frame.width - 2 * MARGIN;
    const text = new TextBlocks(doc, width);
    const heading = text.paragraph(title, 'bold', 13, INK, 8);
    const below = text.paragraph(caption, 'regular', 9, MUTED, 0);
    const height = frame.height - 2 * MARGIN - heading.height - below.height - CAPTION_GAP;
    const scale = Math.min(width / size.width, height / size.height, maxScale);
    return { frame, heading, caption: below, scale, x: MARGIN + (width - size.width * scale) / 2, y: MARGIN + heading.height };
  });
  return portrait.scale > landscape.scale ? portrait : landscape;
}

function drawChart(doc: PDFKit.PDFDocument, place: ChartPlacement, title: string, svg: string): void {
  const size = svgSize(svg);
  place.heading.draw(TOP);
  doc.save();
  doc.translate(place.x, place.y);
  doc.scale(place.scale);
  svgToPdf(doc, svg, 0, 0, {
    width: size.width,
    height: size.height,
    assumePt: true, // one SVG unit per point: the scale set above is the whole of it (otherwise px are also × 0.75)
    // Vega writes the theme's font family; every text in a chart prints in the DejaVu faces the document carries.
    fontCallback: (family, bold, italic, fontOptions) => {
      fontOptions.fauxItalic = italic;
      return bold ? 'bold' : /mono/i.test(family) ? 'mono' : 'regular';
    },
    warningCallback: (warning) => {
      throw new Error(`drawing the SVG of "${title}" into the PDF: ${warning}`);
    },
  });
  doc.restore();
  place.caption.draw(place.y + size.height * place.scale + CAPTION_GAP);
}

/** Text blocks measured with the document's fonts. */
class TextBlocks {
  constructor(
    private readonly doc: PDFKit.PDFDocument,
    private readonly width: number,
  ) {}

  paragraph(text: string, font: FontName, size: number, color: string, spaceAfter: number, markdown = false): Block {
    const shown = markdown ? inlineMarkdown(text).map((s) => s.text).join('') : text;
    const height = this.doc.font(font).fontSize(size).heightOfString(shown, { width: this.width }) + spaceAfter;
    return {
      height,
      draw: (y) => {
        if (markdown) this.spans(text, font, size, color, MARGIN, y, this.width);
        else this.doc.font(font).fontSize(size).fillColor(color).text(text, MARGIN, y, { width: this.width });
      },
    };
  }

  heading(text: string, size: number): Block {
    const block = this.paragraph(text, 'bold', size, INK, size * 0.45);
    const above = size * 0.9;
    return { height: above + block.height, keepWithNext: true, draw: (y) => block.draw(y + above) };
  }

  /** A finding: a bullet and its sentence, code spans coloured (the same font throughout, so the measure holds). */
  bullet(markdown: string): Block {
    const indent = 12;
    const size = 9;
    const plain = inlineMarkdown(markdown).map((s) => s.text).join('');
    const height = this.doc.font('regular').fontSize(size).heightOfString(plain, { width: this.width - indent }) + 3;
    return {
      height,
      draw: (y) => {
        this.doc.font('regular').fontSize(size).fillColor(INK).text('•', MARGIN + 2, y, { lineBreak: false });
        this.spans(markdown, 'regular', size, INK, MARGIN + indent, y, this.width - indent);
      },
    };
  }

  /** Facts as a two-column list: labels, then values (hashes and paths in the fixed-width face). */
  facts(facts: readonly Fact[]): Block[] {
    const size = 8.5;
    const labelWidth = Math.max(...facts.map((f) => this.doc.font('regular').fontSize(size).widthOfString(f.label))) + 12;
    const valueWidth = this.width - labelWidth;
    return facts.map((f) => {
      const font: FontName = f.code ? 'mono' : 'regular';
      const height = this.doc.font(font).fontSize(size).heightOfString(f.value, { width: valueWidth }) + 2;
      return {
        height,
        draw: (y) => {
          this.doc.font('regular').fontSize(size).fillColor(MUTED).text(f.label, MARGIN, y, { width: labelWidth, lineBreak: false });
          this.doc.font(font).fontSize(size).fillColor(INK).text(f.value, MARGIN + labelWidth, y, { width: valueWidth });
        },
      };
    });
  }

  private spans(markdown: string, font: FontName, size: number, color: string, x: number, y: number, width: number): void {
    const spans = inlineMarkdown(markdown);
    this.doc.font(font).fontSize(size);
    spans.forEach((span, i) => {
      this.doc.fillColor(span.code ? CODE : color);
      const options = { width, continued: i < spans.length - 1 };
      if (i === 0) this.doc.text(span.text, x, y, options);
      else this.doc.text(span.text, options);
    });
  }
}

interface TableLayout {
  readonly fontSize: number;
  readonly widths: readonly number[];
  readonly align: readonly ('left' | 'right')[];
}

const CELL_PAD_X = 2.5;
const CELL_PAD_Y = 2;
/** Tables print at 8 to 9 pt, the least a printed table is read at; headers are bold at the cells' size. */
const TABLE_FONT_MAX = 9;
const TABLE_FONT_MIN = 8;
const TABLE_FONT_STEP = 0.25;

/**
 * Column widths and a font size for a table across the page: the largest size (at most 9 pt) at which every cell
 * line and every header word fits its column, and, given `fit`, `fit.rows` of the tallest rows fit `fit.space`.
 * Below 8 pt the widest columns are capped instead, and their cells wrap.
 */
function tableLayout(
  doc: PDFKit.PDFDocument, header: readonly string[], rows: readonly (readonly string[])[], align: TableLayout['align'],
  fit?: { rows: number; space: number },
): TableLayout {
  // Widths at 1 pt; they scale linearly with the font size.
  // Each line and word is measured with a space after it: pdfkit counts a word's trailing space when it decides
  // whether the word fits a line, and splits the word where it does not.
  const unit = header.map((label, c) => Math.max(
    ...rows.flatMap((row) => row[c].split('\n').map((line) => doc.font('regular').fontSize(1).widthOfString(`${line} `))),
    ...label.split(/\s+/).map((word) => doc.font('bold').fontSize(1).widthOfString(`${word} `)),
  ));
  // One point of slack per column: measured at 1 pt and scaled, a width can fall a hair short of the text's.
  const widthsAt = (size: number) => unit.map((u) => u * size + 2 * CELL_PAD_X + 1);
  const widest = (CONTENT_WIDTH - (2 * CELL_PAD_X + 1) * header.length) / unit.reduce((a, b) => a + b, 0);
  let fontSize = Math.max(TABLE_FONT_MIN, Math.min(TABLE_FONT_MAX, Math.floor(widest / TABLE_FONT_STEP) * TABLE_FONT_STEP));
  const fits = (layout: TableLayout) => {
    if (!fit) return true;
    const { header: h, rows: r } = measureTable(doc, layout, header, rows);
    return h + [...r].sort((a, b) => b - a).slice(0, fit.rows).reduce((a, b) => a + b, 0) <= fit.space;
  };
  while (fontSize > TABLE_FONT_MIN && !fits({ fontSize, widths: widthsAt(fontSize), align })) fontSize -= TABLE_FONT_STEP;
  const widths = widthsAt(fontSize);
  return { fontSize, widths: capped(widths, CONTENT_WIDTH), align };
}

/** `widths` with the widest capped at the one width c where their total is `total` (unchanged when they fit). */
function capped(widths: readonly number[], total: number): number[] {
  if (widths.reduce((a, b) => a + b, 0) <= total) return [...widths];
  const sorted = [...widths].sort((a, b) => a - b);
  let rest = total;
  let cap = sorted.at(-1)!;
  for (let i = 0; i < sorted.length; i++) {
    if (sorted[i] * (sorted.length - i) >= rest) {
      cap = rest / (sorted.length - i);
      break;
    }
    rest -= sorted[i];
  }
  return widths.map((w) => Math.min(w, cap));
}

/** Heights of the header row and of each row, with their cell padding. */
function measureTable(doc: PDFKit.PDFDocument, layout: TableLayout, header: readonly string[], rows: readonly (readonly string[])[]) {
  const height = (cells: readonly string[], font: FontName, size: number) =>
    Math.max(...cells.map((cell, c) => doc.font(font).fontSize(size).heightOfString(cell, { width: layout.widths[c] - 2 * CELL_PAD_X }))) + 2 * CELL_PAD_Y;
  return { header: height(header, 'bold', layout.fontSize), rows: rows.map((row) => height(row, 'regular', layout.fontSize)) };
}

/** The table as blocks of at most `maxRows` rows that fit `space` each, every block with the header. */
function tableChunks(
  doc: PDFKit.PDFDocument, layout: TableLayout, header: readonly string[], rows: readonly (readonly string[])[], space: number, maxRows: number,
): Block[] {
  const heights = measureTable(doc, layout, header, rows);
  const blocks: Block[] = [];
  for (let start = 0; start < rows.length;) {
    let end = start + 1;
    let used = heights.header + heights.rows[start];
    while (end < rows.length && end - start < maxRows && used + heights.rows[end] <= space) used += heights.rows[end++];
    blocks.push(tableBlock(doc, layout, header, rows.slice(start, end), heights.header, heights.rows.slice(start, end)));
    start = end;
  }
  return blocks;
}

function tableBlock(
  doc: PDFKit.PDFDocument, layout: TableLayout, header: readonly string[], rows: readonly (readonly string[])[], headerHeight: number, heights: readonly number[],
): Block {
  const { fontSize, widths, align } = layout;
  const tableWidth = widths.reduce((a, b) => a + b, 0);
  const drawRow = (cells: readonly string[], font: FontName, size: number, y: number) => {
    let x = MARGIN;
    cells.forEach((cell, c) => {
      doc.font(font).fontSize(size).fillColor(INK).text(cell, x + CELL_PAD_X, y + CELL_PAD_Y, { width: widths[c] - 2 * CELL_PAD_X, align: align[c] });
      x += widths[c];
    });
  };
  const rule = (y: number) => doc.moveTo(MARGIN, y).lineTo(MARGIN + tableWidth, y).lineWidth(0.8).strokeColor('#999999').stroke();
  return {
    height: headerHeight + heights.reduce((a, b) => a + b, 0) + 6,
    draw: (top) => {
      drawRow(header, 'bold', fontSize, top);
      let y = top + headerHeight;
      rule(y);
      rows.forEach((row, r) => {
        if (r % 2 === 1) doc.rect(MARGIN, y, tableWidth, heights[r]).fillColor('#f2f2f2').fill();
        drawRow(row, 'regular', fontSize, y);
        y += heights[r];
      });
      rule(y);
    },
  };
}

/** A text table in the page flow, in blocks of the rows that fit a page. */
function tableBlocks(doc: PDFKit.PDFDocument, table: TextTable): Block[] {
  const layout = tableLayout(doc, table.header, table.rows, table.header.map(() => 'left'));
  return tableChunks(doc, layout, table.header, table.rows, BOTTOM - TOP, Infinity);
}
