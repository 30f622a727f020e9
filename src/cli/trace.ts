import { existsSync } from 'node:fs';
import { RoutelabError } from '../errors.js';
import { loadTokenizer, type TextTokenizer } from '../model/tokenizer.js';
import { EXPORT_FORMATS, exportTrace, type ExportFormat } from '../trace/export.js';
import { readDocTrace, readTrace, type Trace } from '../trace/reader.js';
import { numberFlag, requireString, type Command } from './command.js';

export const traceCommand: Command = {
  name: 'trace',
  summary: 'show a routing trace written by `routelab eval` (metadata, per-layer summary, one document token by token), or export it for pandas/polars',
  usage: `Usage: routelab trace show FILE [--doc I] [--layer L] [--model DIR] [--max-rows N]
       routelab trace export FILE --format parquet|csv [--long] [--model DIR] --out FILE

  FILE          a {config}_{task}_routing.parquet trace
  --doc I       print document I (its index in the task's order) token by token; default: the first traced document
  --layer L     only MoE layer L (0 … number of MoE layers − 1)
  --model DIR   decode token ids with this model's tokenizer (show: default the model recorded in the trace, if
                present; export: adds a token_text column)
  --max-rows N  print at most N rows (default 200)

  export writes the trace in a form pandas, polars or DuckDB read directly (layout: docs/trace.md):
  --format F    parquet (experts and weights as list columns) or csv (lists as JSON arrays)
  --long        one row per (position, layer, selected expert): rank, expert, weight
  --out FILE    the file to write`,
  options: {
    doc: { type: 'string' },
    layer: { type: 'string' },
    model: { type: 'string' },
    'max-rows': { type: 'string' },
    format: { type: 'string' },
    long: { type: 'boolean', default: false },
    out: { type: 'string' },
  },
  allowPositionals: true,
  async run(values, positionals) {
    if (positionals[0] === 'export' && positionals.length === 2) return exportCommand(values, positionals[1]);
    if (positionals[0] !== 'show' || positionals.length !== 2) throw new RoutelabError('routelab trace', `expected "show FILE" or "export FILE"\n\n${this.usage}`);
    const trace = await readTrace(positionals[1]);
    const layer = values.layer === undefined ? undefined : numberFlag(values, 'layer', 0, true);
    const { numLayers, moeLayers } = trace.meta;
    if (layer !== undefined && !(layer >= 0 && layer < numLayers)) {
      throw new RoutelabError('--layer', `${layer} is out of range: the trace has ${numLayers} MoE layers, 0…${numLayers - 1}` +
        `${moeLayers ? ` (decoder layers ${moeLayers.join(', ')})` : ''}`);
    }
    const maxRows = numberFlag(values, 'max-rows', 200, true);
    const modelDir = (values.model as string | undefined) ?? trace.meta.model;
    let tokenizer: TextTokenizer | null = null;
    try {
      tokenizer = modelDir && existsSync(modelDir) ? loadTokenizer(modelDir) : null;
    } catch {
      tokenizer = null;
    }
    const { text, firstDoc, docs } = await describeTrace(trace);
    const doc = values.doc === undefined ? firstDoc : numberFlag(values, 'doc', 0, true);
    if (doc !== null && !docs.has(doc)) {
      throw new RoutelabError('--doc', `${doc} is not in the trace: it has ${docs.size} documents, ${describeIndices([...docs])}`);
    }
    console.log(text);
    if (doc === null) return;
    console.log(await formatDoc(trace, doc, layer, tokenizer, maxRows));
  },
};

/** Sorted indices as ranges: "0…5", "0…3, 7, 9…12". */
export function describeIndices(indices: readonly number[]): string {
  const sorted = [...indices].sort((a, b) => a - b);
  const ranges: string[] = [];
  for (let i = 0; i < sorted.length; ) {
    let j = i;
    while (j + 1 < sorted.length && sorted[j + 1] === sorted[j] + 1) j++;
    ranges.push(j > i ? `${sorted[i]}…${sorted[j]}` : String(sorted[i]));
    i = j + 1;
  }
  return ranges.join(', ') || 'none';
}

async function exportCommand(values: Record<string, unknown>, file: string): Promise<void> {
  const format = requireString(values, 'format');
  if (!(EXPORT_FORMATS as readonly string[]).includes(format)) throw new RoutelabError('--format', `expected ${EXPORT_FORMATS.join(' or ')}, got ${JSON.stringify(format)}`);
  const out = requireString(values, 'out');
  const trace = await readTrace(file);
  const tokenizer = values.model === undefined ? null : loadTokenizer(values.model as string);
  if (values.model !== undefined && tokenizer === null) throw new RoutelabError('--model', `${values.model} has no tokenizer.json to decode token ids with`);
  const { rows, columns } = await exportTrace(trace, out, { format: format as ExportFormat, long: values.long === true, tokenizer });
  console.error(`trace export: ${rows} rows × ${columns.length} columns (${columns.join(', ')}) → ${out}`);
}

/** Metadata and per-layer mean expert counts. */
export async function describeTrace(trace: Trace): Promise<{ text: string; firstDoc: number | null; docs: ReadonlySet<number> }> {
  const m = trace.meta;
  const sums = new Float64Array(m.numLayers);
  const rows = new Float64Array(m.numLayers);
  const docs = new Set<number>();
  let firstDoc: number | null = null;
  for await (const c of trace.chunks()) {
    for (let r = 0; r < c.rows; r++) {
      sums[c.layer[r]] += c.count[r];
      rows[c.layer[r]]++;
      docs.add(c.doc[r]);
      if (firstDoc === null || c.doc[r] < firstDoc) firstDoc = c.doc[r];
    }
  }
  const lines = [
    `${trace.file}: ${m.format}, level ${m.level}`,
    `  config ${m.config}, task ${m.task}, router ${m.router}, model ${m.model}`,
    `  ${m.numLayers} MoE layers${m.moeLayers ? ` (decoder layers ${m.moeLayers.join(', ')})` : ''} × ${m.numExperts} experts, ` +
      `${m.minK}…${m.maxK} per token; ${trace.rows} rows (token × layer) ` +
      `in ${trace.rowGroups} row groups, ${docs.size} documents`,
    `  mean experts per layer: ${Array.from(sums, (s, l) => (rows[l] ? (s / rows[l]).toFixed(2) : '-')).join(' ')}`,
  ];
  return { text: lines.join('\n'), firstDoc, docs };
}

/** One document: a line per (token, layer): position, token text, count and expert:weight pairs. */
export async function formatDoc(trace: Trace, doc: number, layer: number | undefined, tokenizer: TextTokenizer | null, maxRows: number): Promise<string> {
  const d = await readDocTrace(trace, doc, layer);
  if (d.pos.length === 0) return `document ${doc}: no rows${layer !== undefined ? ` at layer ${layer}` : ''}`;
  const lines = [`document ${doc}: ${d.pos.length} rows`, '  seq    pos  token                 layer  c  experts (weight)'];
  for (let i = 0; i < Math.min(d.pos.length, maxRows); i++) {
    let shown = `#${d.token[i]}`;
    if (tokenizer) {
      try {
        shown = JSON.stringify(tokenizer.decode([d.token[i]]));
      } catch {
        // id outside the tokenizer: keep the number
      }
    }
    const experts = d.experts[i].map((e, j) => `${e}(${d.weights[i][j].toFixed(3)})`).join(' ');
    lines.push(`  ${String(d.seq[i]).padStart(3)} ${String(d.pos[i]).padStart(6)}  ${shown.slice(0, 20).padEnd(20)}  ${String(d.layer[i]).padStart(5)} ${String(d.experts[i].length).padStart(2)}  ${experts}`);
  }
  if (d.pos.length > maxRows) lines.push(`  … ${d.pos.length - maxRows} more rows (--max-rows)`);
  return lines.join('\n');
}
