import { existsSync } from 'node:fs';
import { RoutelabError } from '../errors.js';
import { loadTokenizer, type TextTokenizer } from '../model/tokenizer.js';
import { readDocTrace, readTrace, type Trace } from '../trace/reader.js';
import { numberFlag, type Command } from './command.js';

export const traceCommand: Command = {
  name: 'trace',
  summary: 'show a routing trace written by `routelab eval` (metadata, per-layer summary, one document token by token)',
  usage: `Usage: routelab trace show FILE [--doc I] [--layer L] [--model DIR] [--max-rows N]

  FILE          a {config}_{task}_routing.parquet trace
  --doc I       print document I (its index in the task's order) token by token; default: the first traced document
  --layer L     only layer L
  --model DIR   decode token ids with this model's tokenizer (default: the model recorded in the trace, if present)
  --max-rows N  print at most N rows (default 200)`,
  options: {
    doc: { type: 'string' },
    layer: { type: 'string' },
    model: { type: 'string' },
    'max-rows': { type: 'string' },
  },
  allowPositionals: true,
  async run(values, positionals) {
    if (positionals[0] !== 'show' || positionals.length !== 2) throw new RoutelabError('routelab trace', `expected "show FILE"\n\n${this.usage}`);
    const trace = await readTrace(positionals[1]);
    const layer = values.layer === undefined ? undefined : numberFlag(values, 'layer', 0, true);
    const maxRows = numberFlag(values, 'max-rows', 200, true);
    const modelDir = (values.model as string | undefined) ?? trace.meta.model;
    let tokenizer: TextTokenizer | null = null;
    try {
      tokenizer = modelDir && existsSync(modelDir) ? loadTokenizer(modelDir) : null;
    } catch {
      tokenizer = null;
    }
    const { text, firstDoc } = await describeTrace(trace);
    console.log(text);
    const doc = values.doc === undefined ? firstDoc : numberFlag(values, 'doc', 0, true);
    if (doc === null) return;
    console.log(await formatDoc(trace, doc, layer, tokenizer, maxRows));
  },
};

/** Metadata and per-layer mean expert counts. */
export async function describeTrace(trace: Trace): Promise<{ text: string; firstDoc: number | null }> {
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
  return { text: lines.join('\n'), firstDoc };
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
