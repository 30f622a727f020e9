/**
 * Reading routing traces back (format in ./format.ts): metadata, then row groups as typed arrays, decoded on
 * demand. Memory is one row group at a time unless the caller keeps them.
 */
import { asyncBufferFromFile, parquetMetadataAsync, parquetRead, type FileMetaData } from 'hyparquet';
import { compressors } from 'hyparquet-compressors';
import { RoutelabError } from '../errors.js';
import { fromFloat16Bits, TRACE_FORMAT, TRACE_META_KEY, type TraceMeta } from './format.js';

/** One row group of a trace, column by column; row r describes (doc[r], seq[r], pos[r]) at layer[r]. */
export interface TraceChunk {
  readonly rows: number;
  readonly doc: Int32Array;
  readonly seq: Int32Array;
  readonly pos: Int32Array;
  readonly token: Int32Array;
  readonly layer: Int32Array;
  readonly count: Int32Array;
  /** Padded [rows × maxK]: experts[r·maxK + j] for j < count[r]. */
  readonly experts: Int32Array;
  readonly weights: Float32Array; // [rows × maxK], decoded from float16
  /** Full traces: [rows × E] router logits; p-values NaN where the router reported none. */
  readonly routerLogits?: Float32Array;
  readonly pValues?: Float32Array;
}

export interface Trace {
  readonly file: string;
  readonly meta: TraceMeta;
  readonly rows: number;
  readonly rowGroups: number;
  /** Row groups in file order (evaluation order: batches of requests, longest first; within a batch, by layer). */
  chunks(): AsyncGenerator<TraceChunk>;
}

export async function readTrace(file: string): Promise<Trace> {
  let buffer;
  let metadata: FileMetaData;
  try {
    buffer = await asyncBufferFromFile(file);
    metadata = await parquetMetadataAsync(buffer);
  } catch (e) {
    throw new RoutelabError(file, `not a readable Parquet file: ${(e as Error).message}`);
  }
  const raw = metadata.key_value_metadata?.find((kv) => kv.key === TRACE_META_KEY)?.value;
  if (!raw) throw new RoutelabError(file, `not a routelab routing trace (no "${TRACE_META_KEY}" metadata)`);
  const meta = JSON.parse(raw) as TraceMeta;
  if (meta.format !== TRACE_FORMAT) throw new RoutelabError(file, `trace format ${JSON.stringify(meta.format)}; this routelab reads ${TRACE_FORMAT}`);
  const file_ = buffer;
  const groups = metadata.row_groups.map((g) => Number(g.num_rows));
  return {
    file,
    meta,
    rows: Number(metadata.num_rows),
    rowGroups: groups.length,
    async *chunks() {
      let start = 0;
      for (const size of groups) {
        const pieces = new Map<string, { rowStart: number; data: ArrayLike<unknown> }[]>();
        try {
          await parquetRead({
            file: file_,
            metadata,
            rowStart: start,
            rowEnd: start + size,
            compressors,
            utf8: false,
            onChunk: (chunk) => {
              // A column may arrive in several pieces (pages); put them back together in row order.
              const list = pieces.get(chunk.columnName) ?? [];
              list.push({ rowStart: chunk.rowStart, data: chunk.columnData as ArrayLike<unknown> });
              pieces.set(chunk.columnName, list);
            },
          });
        } catch (e) {
          throw new RoutelabError(file, `damaged routing trace: rows ${start}–${start + size - 1} cannot be decoded (${(e as Error).message}); rerun the sweep or eval that wrote it`);
        }
        const columns = new Map<string, unknown[]>();
        for (const [name, list] of pieces) {
          list.sort((a, b) => a.rowStart - b.rowStart);
          const all: unknown[] = [];
          for (const { rowStart, data } of list) {
            for (let i = Math.max(0, start - rowStart); i < data.length && rowStart + i < start + size; i++) {
              if (rowStart + i === start + all.length) all.push(data[i]);
            }
          }
          columns.set(name, all);
        }
        yield decodeChunk(meta, size, columns);
        start += size;
      }
    },
  };
}

function decodeChunk(meta: TraceMeta, rows: number, columns: Map<string, unknown[]>): TraceChunk {
  const ints = (name: string) => {
    const c = columns.get(name);
    if (!c || c.length !== rows) throw new Error(`trace column ${name}: expected ${rows} values, got ${c?.length}`);
    return Int32Array.from(c as number[]);
  };
  const bytes = (name: string) => columns.get(name) as Uint8Array[];
  const K = meta.maxK;
  const E = meta.numExperts;
  const count = ints('count');
  const experts = new Int32Array(rows * K);
  const weights = new Float32Array(rows * K);
  const eCol = bytes('experts');
  const wCol = bytes('weights');
  for (let r = 0; r < rows; r++) {
    const eb = eCol[r];
    const wb = wCol[r];
    for (let j = 0; j < count[r]; j++) {
      experts[r * K + j] = meta.expertBytes === 1 ? eb[j] : eb[2 * j] | (eb[2 * j + 1] << 8);
      weights[r * K + j] = fromFloat16Bits(wb[2 * j] | (wb[2 * j + 1] << 8));
    }
  }
  const chunk: TraceChunk = {
    rows,
    doc: ints('doc'),
    seq: ints('seq'),
    pos: ints('pos'),
    token: ints('token'),
    layer: ints('layer'),
    count,
    experts,
    weights,
  };
  if (meta.level !== 'full') return chunk;
  const routerLogits = new Float32Array(rows * E);
  const pValues = new Float32Array(rows * E).fill(NaN);
  const lCol = bytes('router_logits');
  const pCol = bytes('p_values');
  for (let r = 0; r < rows; r++) {
    routerLogits.set(floats(lCol[r]), r * E);
    if (pCol[r].length > 0) pValues.set(floats(pCol[r]), r * E);
  }
  return { ...chunk, routerLogits, pValues };
}

function floats(b: Uint8Array): Float32Array {
  const copy = new Uint8Array(b); // align
  return new Float32Array(copy.buffer, 0, copy.length / 4);
}

/** Every row of a trace for one document (optionally one layer), ordered by (seq, pos, layer). For tests and `trace show`. */
export interface DocTrace {
  readonly seq: number[];
  readonly pos: number[];
  readonly token: number[];
  readonly layer: number[];
  readonly experts: number[][];
  readonly weights: number[][];
  readonly routerLogits?: Float32Array[];
  readonly pValues?: Float32Array[];
}

export async function readDocTrace(trace: Trace, doc: number, layer?: number): Promise<DocTrace> {
  const rows: { seq: number; pos: number; token: number; layer: number; experts: number[]; weights: number[]; logits?: Float32Array; p?: Float32Array }[] = [];
  const K = trace.meta.maxK;
  const E = trace.meta.numExperts;
  for await (const c of trace.chunks()) {
    for (let r = 0; r < c.rows; r++) {
      if (c.doc[r] !== doc || (layer !== undefined && c.layer[r] !== layer)) continue;
      const n = c.count[r];
      rows.push({
        seq: c.seq[r],
        pos: c.pos[r],
        token: c.token[r],
        layer: c.layer[r],
        experts: Array.from(c.experts.subarray(r * K, r * K + n)),
        weights: Array.from(c.weights.subarray(r * K, r * K + n)),
        logits: c.routerLogits?.slice(r * E, (r + 1) * E),
        p: c.pValues?.slice(r * E, (r + 1) * E),
      });
    }
  }
  rows.sort((a, b) => a.seq - b.seq || a.pos - b.pos || a.layer - b.layer);
  const full = trace.meta.level === 'full';
  return {
    seq: rows.map((r) => r.seq),
    pos: rows.map((r) => r.pos),
    token: rows.map((r) => r.token),
    layer: rows.map((r) => r.layer),
    experts: rows.map((r) => r.experts),
    weights: rows.map((r) => r.weights),
    routerLogits: full ? rows.map((r) => r.logits!) : undefined,
    pValues: full ? rows.map((r) => r.p!) : undefined,
  };
}
