/**
 * Streaming writer of routing traces (format in ./format.ts). Rows are buffered up to one row group (ROW_GROUP rows)
 * in preallocated typed arrays, then encoded by hyparquet-writer and appended to a temporary file next to the
 * target; `close()` writes the footer, fsyncs and renames it into place, so a trace is either complete or absent.
 */
import * as fs from 'node:fs';
import { gzipSync } from 'node:zlib';
import { ByteWriter, ParquetWriter, type ColumnSource } from 'hyparquet-writer';
import { tempPathFor } from '../atomic.js';
import { TRACE_META_KEY, toFloat16Bits, type TraceMeta } from './format.js';

/** Rows per row group: bounds the writer's memory (≈ 1.5 MB of buffers at top-8, plus E·8 bytes per row when full). */
const DEFAULT_ROW_GROUP = 1 << 16;

/** Where the scored positions of one layer's routing come from: n positions, their identities, their rows. */
export interface TracePositions {
  readonly n: number;
  readonly doc: ArrayLike<number>;
  readonly seq: ArrayLike<number>;
  readonly pos: ArrayLike<number>;
  readonly token: ArrayLike<number>;
  /** Packed row of each position in the forward pass (index into the routing arrays). */
  readonly row: ArrayLike<number>;
}

export interface TraceLayer {
  readonly layer: number;
  readonly maxK: number; // stride of experts/weights
  readonly counts: Int32Array;
  readonly experts: Int32Array;
  readonly weights: Float32Array;
  readonly routerLogits: Float32Array; // [T × E]
  readonly pValues?: Float32Array; // [T × E]
}

/** A ByteWriter that appends each finished row group to a file descriptor instead of growing in memory. */
export class FdWriter extends ByteWriter {
  /** `file` is what the bytes are for: a failed write (a full disk) names it. */
  constructor(private readonly fd: number, private readonly file: string) {
    super(1 << 20);
  }
  flush(): void {
    const bytes = new Uint8Array(this.buffer, 0, this.index);
    try {
      for (let done = 0; done < bytes.length; ) done += fs.writeSync(this.fd, bytes, done, bytes.length - done);
    } catch (e) {
      (e as NodeJS.ErrnoException).path ??= this.file;
      throw e;
    }
    this.index = 0;
  }
  finish(): void {
    this.flush();
  }
}

export class TraceWriter {
  private readonly temp: string;
  private readonly fd: number;
  private readonly writer: ParquetWriter;
  private readonly full: boolean;
  private readonly E: number;
  private readonly expertBytes: 1 | 2;
  private readonly groupRows: number;
  private n = 0;
  private closed = false;
  rows = 0;
  // Row-group buffers.
  private readonly doc: Int32Array;
  private readonly seq: Int32Array;
  private readonly pos: Int32Array;
  private readonly token: Int32Array;
  private readonly layer: Int32Array;
  private readonly count: Int32Array;
  private readonly expertBytesBuf: Uint8Array;
  private readonly weightBytesBuf: Uint8Array;
  private readonly logitBytes: Uint8Array;
  private readonly pBytes: Uint8Array;
  private readonly pLength: Uint8Array; // 1 when the row has p-values

  private constructor(
    readonly file: string,
    readonly meta: TraceMeta,
    rowGroupRows: number,
  ) {
    const ROW_GROUP = (this.groupRows = rowGroupRows);
    [this.doc, this.seq, this.pos, this.token, this.layer, this.count] = Array.from({ length: 6 }, () => new Int32Array(ROW_GROUP));
    this.pLength = new Uint8Array(ROW_GROUP);
    this.full = meta.level === 'full';
    this.E = meta.numExperts;
    this.expertBytes = meta.expertBytes;
    this.expertBytesBuf = new Uint8Array(ROW_GROUP * meta.maxK * meta.expertBytes);
    this.weightBytesBuf = new Uint8Array(ROW_GROUP * meta.maxK * 2);
    this.logitBytes = new Uint8Array(this.full ? ROW_GROUP * this.E * 4 : 0);
    this.pBytes = new Uint8Array(this.full ? ROW_GROUP * this.E * 4 : 0);
    this.temp = tempPathFor(file);
    this.fd = fs.openSync(this.temp, 'wx');
    const bin = (name: string) => ({ name, type: 'BYTE_ARRAY' as const, repetition_type: 'REQUIRED' as const });
    const int = (name: string) => ({ name, type: 'INT32' as const, repetition_type: 'REQUIRED' as const });
    const leaves = [int('doc'), int('seq'), int('pos'), int('token'), int('layer'), int('count'), bin('experts'), bin('weights')];
    if (this.full) leaves.push(bin('router_logits'), bin('p_values'));
    this.writer = new ParquetWriter({
      writer: new FdWriter(this.fd, file),
      schema: [{ name: 'root', num_children: leaves.length }, ...leaves],
      codec: 'GZIP',
      compressors: { GZIP: (bytes: Uint8Array) => gzipSync(bytes, { level: 6 }) },
      kvMetadata: [{ key: TRACE_META_KEY, value: JSON.stringify(meta) }],
      createdBy: `routelab ${meta.routelabVersion}`,
    });
  }

  static open(file: string, meta: TraceMeta, options: { rowGroupRows?: number } = {}): TraceWriter {
    if (meta.expertBytes === 1 && meta.numExperts > 256) throw new Error('expertBytes 1 needs E ≤ 256');
    return new TraceWriter(file, meta, options.rowGroupRows ?? DEFAULT_ROW_GROUP);
  }

  /** Append the routing of `p.n` scored positions at one layer. */
  add(p: TracePositions, r: TraceLayer): void {
    const E = this.E;
    const K = this.meta.maxK;
    if (r.maxK > K) throw new Error(`trace opened for max_k ${K}, router padded to ${r.maxK}`);
    for (let i = 0; i < p.n; i++) {
      if (this.n === this.groupRows) this.flushGroup();
      const k = this.n;
      const row = p.row[i];
      const c = r.counts[row];
      this.doc[k] = p.doc[i];
      this.seq[k] = p.seq[i];
      this.pos[k] = p.pos[i];
      this.token[k] = p.token[i];
      this.layer[k] = r.layer;
      this.count[k] = c;
      const eb = k * K * this.expertBytes;
      const wb = k * K * 2;
      for (let j = 0; j < c; j++) {
        const e = r.experts[row * r.maxK + j];
        if (this.expertBytes === 1) this.expertBytesBuf[eb + j] = e;
        else {
          this.expertBytesBuf[eb + 2 * j] = e & 0xff;
          this.expertBytesBuf[eb + 2 * j + 1] = e >>> 8;
        }
        const h = toFloat16Bits(r.weights[row * r.maxK + j]);
        this.weightBytesBuf[wb + 2 * j] = h & 0xff;
        this.weightBytesBuf[wb + 2 * j + 1] = h >>> 8;
      }
      if (this.full) {
        const src = new Uint8Array(r.routerLogits.buffer, r.routerLogits.byteOffset + row * E * 4, E * 4);
        this.logitBytes.set(src, k * E * 4);
        if (r.pValues) {
          this.pBytes.set(new Uint8Array(r.pValues.buffer, r.pValues.byteOffset + row * E * 4, E * 4), k * E * 4);
          this.pLength[k] = 1;
        } else this.pLength[k] = 0;
      }
      this.n++;
      this.rows++;
    }
  }

  private flushGroup(): void {
    const n = this.n;
    if (n === 0) return;
    const K = this.meta.maxK;
    const E = this.E;
    const eb = K * this.expertBytes;
    const experts = new Array<Uint8Array>(n);
    const weights = new Array<Uint8Array>(n);
    for (let k = 0; k < n; k++) {
      experts[k] = this.expertBytesBuf.subarray(k * eb, k * eb + this.count[k] * this.expertBytes);
      weights[k] = this.weightBytesBuf.subarray(k * K * 2, k * K * 2 + this.count[k] * 2);
    }
    const raw = (name: string, data: Uint8Array[]): ColumnSource => ({ name, data, encoding: 'DELTA_LENGTH_BYTE_ARRAY', statistics: false });
    const ints = (name: string, data: Int32Array): ColumnSource => ({ name, data: data.subarray(0, n) });
    const columns: ColumnSource[] = [
      ints('doc', this.doc),
      ints('seq', this.seq),
      ints('pos', this.pos),
      ints('token', this.token),
      ints('layer', this.layer),
      ints('count', this.count),
      raw('experts', experts),
      raw('weights', weights),
    ];
    if (this.full) {
      const logits = new Array<Uint8Array>(n);
      const pv = new Array<Uint8Array>(n);
      for (let k = 0; k < n; k++) {
        logits[k] = this.logitBytes.subarray(k * E * 4, (k + 1) * E * 4);
        pv[k] = this.pBytes.subarray(k * E * 4, k * E * 4 + this.pLength[k] * E * 4);
      }
      columns.push(raw('router_logits', logits), raw('p_values', pv));
    }
    // Everything is encoded (and copied into the writer) before write() returns, so the buffers can be reused.
    void this.writer.write({ columnData: columns, rowGroupSize: n });
    this.n = 0;
  }

  /** Flush the last row group, write the footer, and move the file into place. */
  close(): void {
    if (this.closed) return;
    try {
      this.flushGroup();
      void this.writer.finish();
      fs.fsyncSync(this.fd);
      fs.closeSync(this.fd);
      this.closed = true;
      fs.renameSync(this.temp, this.file);
    } catch (e) {
      this.abort();
      throw e;
    }
  }

  /** Drop the partial file (after an error). */
  abort(): void {
    if (!this.closed) {
      this.closed = true;
      try {
        fs.closeSync(this.fd);
      } catch {
        // already closed
      }
    }
    fs.rmSync(this.temp, { force: true });
  }
}
