/**
 * Headless rendering of Vega-Lite charts: compile to Vega, lay out and draw to SVG without a browser (Vega's
 * renderer 'none'), and rasterise SVG to PNG with resvg using the bundled DejaVu fonts, the PNG tagged with its dpi.
 *
 * Without a browser Vega guesses every text as 0.8 em per character, about a third wider than DejaVu Sans: layouts
 * then leave wide gaps and cut labels short. So text is measured with the fonts' own advance widths.
 */
import { Resvg } from '@resvg/resvg-js';
import { readFileSync } from 'node:fs';
import * as vega from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';
import { RoutelabError } from '../errors.js';
import { DEJAVU } from './fonts.js';
import { CSS_PX_PER_INCH, FONT, FONT_FAMILY, printedWidthOf } from './theme.js';

/** Advance width in em of a code point, from a TrueType font's cmap (format 4, the BMP) and hmtx tables. */
type Advances = (codePoint: number) => number;

function readAdvances(file: string): Advances {
  const font = readFileSync(file);
  const tables = new Map<string, number>();
  for (let i = 0; i < font.readUInt16BE(4); i++) tables.set(font.toString('latin1', 12 + 16 * i, 16 + 16 * i), font.readUInt32BE(20 + 16 * i));
  const table = (tag: string) => {
    const offset = tables.get(tag);
    if (offset === undefined) throw new RoutelabError(file, `expected a TrueType font with a ${tag} table`);
    return offset;
  };
  const unitsPerEm = font.readUInt16BE(table('head') + 18);
  const longMetrics = font.readUInt16BE(table('hhea') + 34);
  const hmtx = table('hmtx');
  // Glyphs past the long metrics share the last advance.
  const advanceOf = (glyph: number) => font.readUInt16BE(hmtx + 4 * Math.min(glyph, longMetrics - 1)) / unitsPerEm;
  const cmap = table('cmap');
  let subtable = -1;
  for (let i = 0; i < font.readUInt16BE(cmap + 2) && subtable < 0; i++) {
    const platform = font.readUInt16BE(cmap + 4 + 8 * i);
    const encoding = font.readUInt16BE(cmap + 6 + 8 * i);
    const offset = cmap + font.readUInt32BE(cmap + 8 + 8 * i);
    if ((platform === 0 || (platform === 3 && encoding === 1)) && font.readUInt16BE(offset) === 4) subtable = offset;
  }
  if (subtable < 0) throw new RoutelabError(file, 'expected a Unicode BMP character map (cmap format 4)');
  const segments = font.readUInt16BE(subtable + 6) / 2;
  const ends = subtable + 14;
  const starts = ends + 2 * segments + 2;
  const deltas = starts + 2 * segments;
  const rangeOffsets = deltas + 2 * segments;
  const glyphOf = (c: number) => {
    for (let i = 0; i < segments; i++) {
      if (font.readUInt16BE(ends + 2 * i) < c) continue;
      const start = font.readUInt16BE(starts + 2 * i);
      if (start > c) return 0;
      const delta = font.readUInt16BE(deltas + 2 * i); // glyph ids wrap modulo 2^16, so its sign does not matter
      const rangeOffset = font.readUInt16BE(rangeOffsets + 2 * i);
      if (rangeOffset === 0) return (c + delta) & 0xffff;
      const glyph = font.readUInt16BE(rangeOffsets + 2 * i + rangeOffset + 2 * (c - start));
      return glyph === 0 ? 0 : (glyph + delta) & 0xffff;
    }
    return 0;
  };
  const cache = new Map<number, number>();
  return (c) => {
    let advance = cache.get(c);
    if (advance === undefined) cache.set(c, (advance = advanceOf(c > 0xffff ? 0 : glyphOf(c))));
    return advance;
  };
}

interface TextItem {
  font?: string;
  fontWeight?: string | number;
  fontSize?: number;
  limit?: number;
}

interface TextMetrics {
  width: (item: TextItem, text: unknown) => number;
  estimateWidth: (item: TextItem, text: unknown) => number;
  height: (item: TextItem) => number;
}

let fontMetricsInstalled = false;

/**
 * Measure text with DejaVu Sans (Mono for monospaced text; Bold from weight 600) through Vega's documented hook for
 * custom text metrics. Kerning is ignored, so widths err on the wide side.
 */
function useDejaVuFontMetrics(): void {
  if (fontMetricsInstalled) return;
  fontMetricsInstalled = true;
  const advances = { regular: readAdvances(DEJAVU.regular), bold: readAdvances(DEJAVU.bold), mono: readAdvances(DEJAVU.mono), monoBold: readAdvances(DEJAVU.monoBold) };
  const metrics = (vega as unknown as { textMetrics: TextMetrics }).textMetrics;
  metrics.width = (item, text) => {
    const bold = item.fontWeight === 'bold' || Number(item.fontWeight) >= 600;
    const mono = /mono/i.test(item.font ?? '');
    const advance = mono ? (bold ? advances.monoBold : advances.mono) : bold ? advances.bold : advances.regular;
    let em = 0;
    for (const ch of text == null ? '' : String(text).trim()) em += advance(ch.codePointAt(0) as number);
    // A label longer than its limit is drawn truncated to it (Vega truncates by asking this same function).
    const width = em * metrics.height(item);
    return item.limit && item.limit > 0 ? Math.min(width, item.limit) : width;
  };
}

const METRES_PER_INCH = 0.0254;

export function compileToVega(spec: Record<string, unknown>): Record<string, unknown> {
  // A spec without a font of its own still gets one resvg can find; the spec's config wins where it sets one.
  return compile(spec as unknown as TopLevelSpec, { config: { font: FONT_FAMILY } }).spec as unknown as Record<string, unknown>;
}

/**
 * The chart as SVG. A chart with a printed width gets exactly that width in px (its layout in the viewBox), so
 * its SVG, its PNG (px × dpi / 96) and its PDF drawing all print at the stated width.
 */
export async function chartToSvg(spec: Record<string, unknown>): Promise<string> {
  useDejaVuFontMetrics();
  const view = new vega.View(vega.parse(compileToVega(spec) as vega.Spec), { renderer: 'none' });
  let svg: string;
  try {
    svg = await view.toSVG();
  } finally {
    view.finalize();
  }
  const inches = printedWidthOf(spec);
  if (inches === null) return svg;
  const { width, height } = svgSize(svg);
  const target = inches * CSS_PX_PER_INCH;
  return resized(svg, target, Math.round((100 * height * target) / width) / 100);
}

function rootElement(svg: string): string {
  const root = /<svg\b[^>]*>/.exec(svg);
  if (!root) throw new RoutelabError('SVG', 'expected an <svg> root element');
  return root[0];
}

function attribute(element: string, name: string): string | null {
  return new RegExp(`\\s${name}\\s*=\\s*["']([^"']*)["']`).exec(element)?.[1] ?? null;
}

/** Width and height (CSS px) of the root element: its width/height attributes, else its viewBox. */
export function svgSize(svg: string): { width: number; height: number } {
  const root = rootElement(svg);
  const width = Number.parseFloat(attribute(root, 'width') ?? '');
  const height = Number.parseFloat(attribute(root, 'height') ?? '');
  if (width > 0 && height > 0) return { width, height };
  const box = (attribute(root, 'viewBox') ?? '').trim().split(/[\s,]+/).map(Number);
  if (box.length === 4 && box[2] > 0 && box[3] > 0) return { width: box[2], height: box[3] };
  throw new RoutelabError('SVG root element', `expected width and height in px or a viewBox, got ${root}`);
}

/**
 * The SVG drawn into exactly `width` × `height` pixels: the root gets those as its size and keeps (or gains) a
 * viewBox of its own size. (resvg's zoom rounds the pixel size up; the size here is rounded to nearest.)
 */
function resized(svg: string, width: number, height: number): string {
  const root = rootElement(svg);
  const size = svgSize(svg);
  let sized = root.replace(/\s(width|height)\s*=\s*["'][^"']*["']/g, '');
  if (attribute(root, 'viewBox') === null) sized = sized.replace(/^<svg\b/, `<svg viewBox="0 0 ${size.width} ${size.height}"`);
  sized = sized.replace(/^<svg\b/, `<svg width="${width}" height="${height}"`);
  return svg.replace(root, sized);
}

const CRC_TABLE = Uint32Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

/** CRC-32 as PNG chunks use it (ISO 3309, over the chunk type and data). */
function crc32(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of bytes) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** A pHYs chunk: pixels per metre on both axes, unit = metre. */
function physChunk(dpi: number): Buffer {
  const pixelsPerMetre = Math.round(dpi / METRES_PER_INCH);
  const chunk = Buffer.alloc(4 + 4 + 9 + 4);
  chunk.writeUInt32BE(9, 0);
  chunk.write('pHYs', 4, 'latin1');
  chunk.writeUInt32BE(pixelsPerMetre, 8);
  chunk.writeUInt32BE(pixelsPerMetre, 12);
  chunk.writeUInt8(1, 16);
  chunk.writeUInt32BE(crc32(chunk.subarray(4, 17)), 17);
  return chunk;
}

/** PNG signature (8 bytes) + IHDR (length, type, 13 bytes of data, CRC): pHYs must come after it, before IDAT. */
const IHDR_END = 8 + 4 + 4 + 13 + 4;

/** Rasterise at `dpi` (pixel size = round(px × dpi / 96)), with a pHYs chunk so viewers print it at its true size. */
export function svgToPng(svg: string, dpi = 300): Buffer {
  const { width, height } = svgSize(svg);
  const pixels = (px: number) => Math.max(1, Math.round((px * dpi) / CSS_PX_PER_INCH));
  const image = new Resvg(resized(svg, pixels(width), pixels(height)), {
    fitTo: { mode: 'original' },
    font: { fontFiles: Object.values(DEJAVU), loadSystemFonts: false, defaultFontFamily: FONT },
  }).render();
  const png = image.asPng();
  return Buffer.concat([png.subarray(0, IHDR_END), physChunk(dpi), png.subarray(IHDR_END)]);
}
