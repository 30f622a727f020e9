import assert from 'node:assert/strict';
import { test } from 'node:test';
import { crc32 } from 'node:zlib';
import { RoutelabError } from '../src/errors.js';
import { vegaLiteSpec } from '../src/report/charts-common.js';
import { chartToSvg, compileToVega, svgSize, svgToPng } from '../src/report/render.js';

interface PngChunk {
  readonly type: string;
  readonly data: Buffer;
  readonly crc: number;
}

function pngChunks(png: Buffer): PngChunk[] {
  assert.deepEqual([...png.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a], 'PNG signature');
  const chunks: PngChunk[] = [];
  for (let at = 8; at < png.length; ) {
    const length = png.readUInt32BE(at);
    chunks.push({ type: png.toString('latin1', at + 4, at + 8), data: png.subarray(at + 8, at + 8 + length), crc: png.readUInt32BE(at + 8 + length) });
    at += 12 + length;
  }
  return chunks;
}

function pngInfo(png: Buffer) {
  const chunks = pngChunks(png);
  for (const c of chunks) assert.equal(c.crc, crc32(Buffer.concat([Buffer.from(c.type, 'latin1'), c.data])), `${c.type} CRC`);
  const ihdr = chunks.find((c) => c.type === 'IHDR')!;
  const phys = chunks.filter((c) => c.type === 'pHYs');
  return {
    types: chunks.map((c) => c.type),
    width: ihdr.data.readUInt32BE(0),
    height: ihdr.data.readUInt32BE(4),
    phys: phys.map((c) => ({ x: c.data.readUInt32BE(0), y: c.data.readUInt32BE(4), unit: c.data.readUInt8(8) })),
  };
}

const BARS = vegaLiteSpec({
  title: 'Throughput by configuration',
  width: 217,
  height: 131,
  data: { values: [{ config: 'a', tps: 10 }, { config: 'b', tps: 30 }] },
  mark: 'bar',
  encoding: { x: { field: 'config', type: 'nominal', title: 'configuration' }, y: { field: 'tps', type: 'quantitative', title: 'throughput (tokens/s)' } },
});

test('svgSize reads the root element: width and height, else its viewBox', () => {
  assert.deepEqual(svgSize('<svg xmlns="http://www.w3.org/2000/svg" width="357" height="246.5" viewBox="0 0 1 1"><rect/></svg>'), { width: 357, height: 246.5 });
  assert.deepEqual(svgSize("<?xml version='1.0'?><svg viewBox='0 0 120 80'><svg width='5' height='5'/></svg>"), { width: 120, height: 80 });
  assert.deepEqual(svgSize('<svg width="40px" height="30px"></svg>'), { width: 40, height: 30 });
  assert.throws(() => svgSize('<svg></svg>'), RoutelabError);
  assert.throws(() => svgSize('<html></html>'), /expected an <svg> root element/);
});

test('a chart compiles to Vega and renders to SVG without a browser, in DejaVu Sans', async () => {
  const vega = compileToVega(BARS);
  assert.equal(vega.$schema, 'https://vega.github.io/schema/vega/v6.json');
  assert.ok(Array.isArray(vega.marks) && vega.marks.length > 0);
  const svg = await chartToSvg(BARS);
  const { width, height } = svgSize(svg);
  assert.ok(width > 217 && height > 131, 'the plot plus its axes, title and padding');
  for (const text of ['Throughput by configuration', 'throughput (tokens/s)', 'configuration', '>30<']) assert.ok(svg.includes(text), text);
  // A spec without a font of its own still gets the installed one.
  const plain = await chartToSvg({ data: { values: [{ a: 1 }] }, mark: 'point', encoding: { x: { field: 'a', type: 'quantitative' } } });
  assert.doesNotMatch(plain, /font-family="(?!DejaVu Sans, sans-serif")/);
});

test('text is measured with the bundled DejaVu fonts, so labels are cut only when they do not fit', async () => {
  // 12 letters at 10 px: about 61 px in DejaVu Sans, but 96 px by Vega's fallback guess of 0.8 em per character.
  const spec = {
    data: { values: [{ label: 'abcdefghijkl', v: 1 }, { label: 'abcdefghijkl mnopqrstuvwxyz', v: 2 }] },
    mark: 'bar',
    encoding: { x: { field: 'label', type: 'nominal', axis: { labelLimit: 80, labelAngle: 0, labelFontSize: 10 } }, y: { field: 'v', type: 'quantitative' } },
  };
  const svg = await chartToSvg(spec);
  assert.ok(svg.includes('>abcdefghijkl</text>'), 'a label that fits is drawn whole');
  assert.match(svg, />abcdefghijkl[^<]{0,3}…<\/text>/, 'a label that does not fit is cut to the limit');
});

test('PNG at 300 dpi: pixel size = round(SVG px × 300 / 96) and a pHYs chunk of 11811 px/m', async () => {
  const svg = await chartToSvg(BARS);
  const size = svgSize(svg);
  const png = pngInfo(svgToPng(svg));
  assert.equal(png.width, Math.round((size.width * 300) / 96));
  assert.equal(png.height, Math.round((size.height * 300) / 96));
  assert.deepEqual(png.phys, [{ x: 11811, y: 11811, unit: 1 }]);
  assert.equal(png.types[1], 'pHYs', 'pHYs right after IHDR, before the image data');
  assert.ok(png.types.indexOf('IDAT') > 1);
  assert.equal(png.types.at(-1), 'IEND');
});

test('PNG size rounds to the nearest pixel (resvg alone would round up) and follows the dpi', () => {
  // 33 × 3.125 = 103.125 and 21 × 3.125 = 65.625.
  const svg = '<svg xmlns="http://www.w3.org/2000/svg" width="33" height="21"><rect width="33" height="21" fill="#0072B2"/></svg>';
  const at300 = pngInfo(svgToPng(svg));
  assert.deepEqual([at300.width, at300.height], [103, 66]);
  const at96 = pngInfo(svgToPng(svg, 96));
  assert.deepEqual([at96.width, at96.height], [33, 21]);
  assert.deepEqual(at96.phys, [{ x: 3780, y: 3780, unit: 1 }]);
  // A root with a viewBox of another size is scaled into the same pixel box.
  const boxed = '<svg xmlns="http://www.w3.org/2000/svg" width="33" height="21" viewBox="0 0 66 42"><rect width="66" height="42"/></svg>';
  assert.deepEqual([pngInfo(svgToPng(boxed)).width, pngInfo(svgToPng(boxed)).height], [103, 66]);
});
