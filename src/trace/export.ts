/**
 * A routing trace (format in ./format.ts, bytes in docs/trace.md) rewritten for data-frame libraries: pandas,
 * polars, DuckDB or Arrow read the result directly, with no byte arrays to decode.
 *
 * - wide (default): one row per (scored position, MoE layer) with `experts` and `weights` as list columns (Parquet
 *   LIST<INT32>, LIST<FLOAT>; in CSV a JSON array per cell), plus `router_logits` and `p_values` for full traces;
 * - long (`long: true`): one row per (position, layer, selected expert) with `rank` (0 = the router's first choice),
 *   `expert` and `weight` (and that expert's `router_logit` and `p_value` for full traces).
 *
 * Both add `decoder_layer` (the MoE layer's index among the model's decoder layers) and, when a tokenizer is given,
 * `token_text`. Rows keep the trace's order; the file is written to a temporary name and renamed into place.
 */
import * as fs from 'node:fs';
import { tempPathFor } from '../atomic.js';
import type { TextTokenizer } from '../model/tokenizer.js';
import type { Trace, TraceChunk } from './reader.js';

export const EXPORT_FORMATS = ['parquet', 'csv'] as const;
export type ExportFormat = (typeof EXPORT_FORMATS)[number];

export interface ExportOptions {
  readonly format: ExportFormat;
  /** One row per selected expert instead of one per (position, layer). */
  readonly long?: boolean;
  /** Adds `token_text` (the position's token decoded on its own). */
  readonly tokenizer?: TextTokenizer | null;
}

type ColumnKind = 'int' | 'float' | 'string' | 'int_list' | 'float_list';

interface ColumnDef {
  readonly name: string;
  readonly kind: ColumnKind;
  /** Null values allowed (p-values of routers that report none). */
  readonly nullable?: boolean;
}

/** The columns an export has, in order. */
export function exportColumns(trace: Trace, options: Pick<ExportOptions, 'long'> & { tokens?: boolean }): ColumnDef[] {
  const full = trace.meta.level === 'full';
  const columns: ColumnDef[] = [
    { name: 'doc', kind: 'int' }, { name: 'seq', kind: 'int' }, { name: 'pos', kind: 'int' }, { name: 'token', kind: 'int' },
    ...(options.tokens ? [{ name: 'token_text', kind: 'string' } as const] : []),
    { name: 'layer', kind: 'int' }, { name: 'decoder_layer', kind: 'int' },
  ];
  if (options.long) {
    columns.push({ name: 'rank', kind: 'int' }, { name: 'expert', kind: 'int' }, { name: 'weight', kind: 'float' });
    if (full) columns.push({ name: 'router_logit', kind: 'float' }, { name: 'p_value', kind: 'float', nullable: true });
  } else {
    columns.push({ name: 'count', kind: 'int' }, { name: 'experts', kind: 'int_list' }, { name: 'weights', kind: 'float_list' });
    if (full) columns.push({ name: 'router_logits', kind: 'float_list' }, { name: 'p_values', kind: 'float_list', nullable: true });
  }
  return columns;
}

type Value = number | string | number[] | null;

/** The rows of one trace chunk as columns of plain values. */
function chunkColumns(trace: Trace, chunk: TraceChunk, columns: readonly ColumnDef[], options: ExportOptions, decode: (id: number) => string): Map<string, Value[]> {
  const { maxK: K, numExperts: E } = trace.meta;
  const moeLayers = trace.meta.moeLayers;
  const out = new Map<string, Value[]>(columns.map((c) => [c.name, []]));
  const push = (name: string, v: Value) => out.get(name)?.push(v);
  const identity = (r: number) => {
    push('doc', chunk.doc[r]);
    push('seq', chunk.seq[r]);
    push('pos', chunk.pos[r]);
    push('token', chunk.token[r]);
    push('token_text', out.has('token_text') ? decode(chunk.token[r]) : null);
    push('layer', chunk.layer[r]);
    push('decoder_layer', moeLayers?.[chunk.layer[r]] ?? chunk.layer[r]);
  };
  const hasP = (r: number) => chunk.pValues !== undefined && !Number.isNaN(chunk.pValues[r * E]);
  for (let r = 0; r < chunk.rows; r++) {
    const c = chunk.count[r];
    if (options.long) {
      for (let j = 0; j < c; j++) {
        const expert = chunk.experts[r * K + j];
        identity(r);
        push('rank', j);
        push('expert', expert);
        push('weight', chunk.weights[r * K + j]);
        if (chunk.routerLogits) {
          push('router_logit', chunk.routerLogits[r * E + expert]);
          push('p_value', hasP(r) ? chunk.pValues![r * E + expert] : null);
        }
      }
    } else {
      identity(r);
      push('count', c);
      push('experts', Array.from(chunk.experts.subarray(r * K, r * K + c)));
      push('weights', Array.from(chunk.weights.subarray(r * K, r * K + c)));
      if (chunk.routerLogits) {
        push('router_logits', Array.from(chunk.routerLogits.subarray(r * E, (r + 1) * E)));
        push('p_values', hasP(r) ? Array.from(chunk.pValues!.subarray(r * E, (r + 1) * E)) : null);
      }
    }
  }
  return out;
}

/** Shortest decimal that reads back as the same float32 (weights are float16 values, logits float32). */
function float32Text(x: number): string {
  return Number.isFinite(x) ? String(Number(x.toPrecision(9))) : String(x);
}

function csvText(v: Value, kind: ColumnKind): string {
  if (v === null) return '';
  if (Array.isArray(v)) return `"[${(kind === 'float_list' ? v.map(float32Text) : v.map(String)).join(',')}]"`;
  if (typeof v === 'string') return /[",\n\r]/.test(v) ? `"${v.replaceAll('"', '""')}"` : v;
  return kind === 'float' ? float32Text(v) : String(v);
}

function parquetSchema(columns: readonly ColumnDef[]): Record<string, unknown>[] {
  const schema: Record<string, unknown>[] = [{ name: 'root', num_children: columns.length }];
  const repetition = (c: ColumnDef) => (c.nullable ? 'OPTIONAL' : 'REQUIRED');
  for (const c of columns) {
    if (c.kind === 'int_list' || c.kind === 'float_list') {
      schema.push(
        { name: c.name, repetition_type: repetition(c), converted_type: 'LIST', logical_type: { type: 'LIST' }, num_children: 1 },
        { name: 'list', repetition_type: 'REPEATED', num_children: 1 },
        { name: 'element', type: c.kind === 'int_list' ? 'INT32' : 'FLOAT', repetition_type: 'REQUIRED' },
      );
    } else if (c.kind === 'string') {
      schema.push({ name: c.name, type: 'BYTE_ARRAY', converted_type: 'UTF8', logical_type: { type: 'STRING' }, repetition_type: repetition(c) });
    } else {
      schema.push({ name: c.name, type: c.kind === 'int' ? 'INT32' : 'FLOAT', repetition_type: repetition(c) });
    }
  }
  return schema;
}

/** Write `trace` to `file` as Parquet or CSV; returns the rows and columns written. */
export async function exportTrace(trace: Trace, file: string, options: ExportOptions): Promise<{ rows: number; columns: string[] }> {
  const columns = exportColumns(trace, { long: options.long, tokens: Boolean(options.tokenizer) });
  const cache = new Map<number, string>();
  const decode = (id: number) => {
    let text = cache.get(id);
    if (text === undefined) {
      try {
        text = options.tokenizer!.decode([id]);
      } catch {
        text = `#${id}`; // an id outside the tokenizer
      }
      cache.set(id, text);
    }
    return text;
  };
  const temp = tempPathFor(file);
  const fd = fs.openSync(temp, 'wx');
  let rows = 0;
  try {
    if (options.format === 'csv') {
      const write = (text: string) => fs.writeSync(fd, text);
      write(`${columns.map((c) => c.name).join(',')}\n`);
      for await (const chunk of trace.chunks()) {
        const data = chunkColumns(trace, chunk, columns, options, decode);
        const n = data.get('doc')!.length;
        const lines: string[] = [];
        for (let i = 0; i < n; i++) lines.push(columns.map((c) => csvText(data.get(c.name)![i], c.kind)).join(','));
        if (n > 0) write(`${lines.join('\n')}\n`);
        rows += n;
      }
    } else {
      const [{ ParquetWriter }, { FdWriter }, { gzipSync }] = await Promise.all([import('hyparquet-writer'), import('./writer.js'), import('node:zlib')]);
      const writer = new ParquetWriter({
        writer: new FdWriter(fd, file),
        schema: parquetSchema(columns) as never,
        codec: 'GZIP',
        compressors: { GZIP: (bytes: Uint8Array) => gzipSync(bytes, { level: 6 }) },
        kvMetadata: [{ key: 'routelab.trace.export', value: JSON.stringify({ source: trace.file, long: options.long === true, meta: trace.meta }) }],
        createdBy: `routelab ${trace.meta.routelabVersion}`,
      });
      for await (const chunk of trace.chunks()) {
        const data = chunkColumns(trace, chunk, columns, options, decode);
        const n = data.get('doc')!.length;
        if (n === 0) continue;
        const columnData = columns.map((c) => ({
          name: c.name,
          data: c.kind === 'int' ? Int32Array.from(data.get(c.name) as number[]) : c.kind === 'float' && !c.nullable ? Float32Array.from(data.get(c.name) as number[]) : data.get(c.name)!,
        }));
        void writer.write({ columnData: columnData as never, rowGroupSize: n });
        rows += n;
      }
      void writer.finish();
    }
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    fs.renameSync(temp, file);
  } catch (e) {
    try {
      fs.closeSync(fd);
    } catch {
      // already closed
    }
    fs.rmSync(temp, { force: true });
    throw e;
  }
  return { rows, columns: columns.map((c) => c.name) };
}
