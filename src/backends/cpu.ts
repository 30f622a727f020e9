import { argmaxRows } from './argmax.js';
import { widenElements, type StoredTensor, type WeightDtype } from '../model/tensor.js';
import {
  type AttentionShape, type Backend, type BatchLayout, type ExpertPlan, type ExpertWeights, type KvStore, logitBlockRows,
  type Rotary, type Tensor, type TokenScores, type Weight,
} from './backend.js';

/**
 * The reference backend: straightforward TypeScript over Float32Arrays, one thread. Dot products accumulate in
 * double and round to float32 once, so results sit within float32 rounding of the Hugging Face float32 forward.
 * Every faster backend is tested against this one.
 */
class CpuTensor implements Tensor {
  constructor(
    readonly rows: number,
    readonly cols: number,
    readonly data: Float32Array,
  ) {}
}

class CpuWeight implements Weight {
  constructor(
    readonly name: string,
    readonly dtype: WeightDtype,
    readonly shape: readonly number[],
    readonly data: Uint16Array | Float32Array,
  ) {}
  get rows(): number { return this.shape[0]; }
  get cols(): number { return this.shape.length > 1 ? this.shape[1] : 1; }
}

/** Keys and values of B sequences × capacity positions × width, on the JS heap (shared by the CPU backends). */
export class CpuKvStore implements KvStore {
  readonly keys: Float32Array;
  readonly values: Float32Array;
  constructor(
    readonly batch: number,
    readonly capacity: number,
    readonly keyWidth: number,
    readonly valueWidth: number,
  ) {
    this.keys = new Float32Array(batch * capacity * keyWidth);
    this.values = new Float32Array(batch * capacity * valueWidth);
  }
}

/** Widen `count` stored elements starting at `offset` into `out` (float32). */
function widenInto(w: CpuWeight, offset: number, count: number, out: Float32Array): void {
  widenElements(w.dtype, w.data, offset, count, out);
}

function cpu(x: Tensor): CpuTensor { return x as CpuTensor; }

/** Element offsets (row starts) and length of one copyKv in a [batch × capacity × width] store array. */
export interface KvCopySpan { readonly from: number; readonly to: number; readonly length: number }

/**
 * Throw unless `Backend.copyKv(from, fromRow, to, toRow, positions)` is well formed; returns the copy's spans in
 * the key and the value arrays.
 */
export function kvCopyRange(from: KvStore, fromRow: number, to: KvStore, toRow: number, positions: number): { keys: KvCopySpan; values: KvCopySpan } {
  if (from === to) throw new Error('copyKv: source and destination must be distinct stores');
  if (from.keyWidth !== to.keyWidth || from.valueWidth !== to.valueWidth) {
    throw new Error(`copyKv: widths ${from.keyWidth}/${from.valueWidth} into widths ${to.keyWidth}/${to.valueWidth}`);
  }
  if (!(fromRow >= 0 && fromRow < from.batch && toRow >= 0 && toRow < to.batch)) {
    throw new Error(`copyKv: sequence ${fromRow} of ${from.batch} into sequence ${toRow} of ${to.batch}`);
  }
  if (!(positions >= 0 && positions <= from.capacity && positions <= to.capacity)) {
    throw new Error(`copyKv: ${positions} positions between stores of capacity ${from.capacity} and ${to.capacity}`);
  }
  const span = (w: number): KvCopySpan => ({ from: fromRow * from.capacity * w, to: toRow * to.capacity * w, length: positions * w });
  return { keys: span(from.keyWidth), values: span(from.valueWidth) };
}

/** The float32 cos and sin of every (row, pair) of a rotary embedding → [rows × pairs] each (shared by backends). */
export function rotaryTables(positions: Int32Array, rotary: Rotary): { cos: Float32Array; sin: Float32Array } {
  const { invFreq, attentionScaling } = rotary;
  const P = invFreq.length;
  const cos = new Float32Array(positions.length * P);
  const sin = new Float32Array(positions.length * P);
  const s = Math.fround(attentionScaling);
  for (let r = 0; r < positions.length; r++) {
    for (let i = 0; i < P; i++) {
      const angle = Math.fround(positions[r] * invFreq[i]);
      cos[r * P + i] = s === 1 ? Math.cos(angle) : Math.fround(Math.cos(angle)) * s;
      sin[r * P + i] = s === 1 ? Math.sin(angle) : Math.fround(Math.sin(angle)) * s;
    }
  }
  return { cos, sin };
}

/** Throw unless the rotary columns fit in x's heads; returns the number of pairs per head. */
export function checkRotary(x: Tensor, rotary: Rotary, heads: number, headWidth: number, offset: number): number {
  const pairs = rotary.invFreq.length;
  if (heads * headWidth > x.cols || offset < 0 || offset + 2 * pairs > headWidth) {
    throw new Error(`ropeInPlace: ${heads} heads of width ${headWidth}, rotary columns ${offset}…${offset + 2 * pairs - 1}, in a tensor of ${x.cols} columns`);
  }
  return pairs;
}

/** Throw unless gatherCols' parts share their rows and every column exists; returns the parts' column offsets. */
export function checkGatherCols(parts: readonly Tensor[], cols: Int32Array): Int32Array {
  if (parts.length === 0) throw new Error('gatherCols: no parts');
  const starts = new Int32Array(parts.length + 1);
  for (let i = 0; i < parts.length; i++) {
    if (parts[i].rows !== parts[0].rows) throw new Error(`gatherCols: part ${i} has ${parts[i].rows} rows, part 0 ${parts[0].rows}`);
    starts[i + 1] = starts[i] + parts[i].cols;
  }
  for (const c of cols) if (!(c >= 0 && c < starts[parts.length])) throw new Error(`gatherCols: column ${c} of ${starts[parts.length]}`);
  return starts;
}

/**
 * TokenScores of the pairs (rows[i], targets[i]) over R rows of logits that arrive a block of rows at a time, so that
 * only one block need exist: pairs are grouped by row; each row's normaliser log Σ exp is taken once (max-shifted,
 * summed in double), then each pair's log-probability and rank. The host backends score this way, and so does any
 * backend without a scoring kernel of its own (synchronous, so that no hot loop runs inside an async function).
 */
export class BlockScorer {
  readonly logProbs: Float64Array;
  readonly ranks: Int32Array;
  /** Pairs grouped by row (a counting sort): rows r0 … r1 − 1 own pairs order[first[r0] … first[r1]). */
  private readonly first: Int32Array;
  private readonly order: Int32Array;

  constructor(
    R: number,
    private readonly V: number,
    private readonly rows: Int32Array,
    private readonly targets: Int32Array,
  ) {
    const P = rows.length;
    if (targets.length !== P) throw new Error(`scoreTokens: ${P} rows for ${targets.length} targets`);
    for (let i = 0; i < P; i++) {
      if (!(rows[i] >= 0 && rows[i] < R)) throw new Error(`scoreTokens: row ${rows[i]} of ${R}`);
      if (!(targets[i] >= 0 && targets[i] < V)) throw new Error(`scoreTokens: token ${targets[i]} outside the vocabulary of ${V}`);
    }
    this.first = new Int32Array(R + 1);
    for (let i = 0; i < P; i++) this.first[rows[i] + 1]++;
    for (let r = 0; r < R; r++) this.first[r + 1] += this.first[r];
    const fill = this.first.slice(0, R);
    this.order = new Int32Array(P);
    for (let i = 0; i < P; i++) this.order[fill[rows[i]]++] = i;
    this.logProbs = new Float64Array(P);
    this.ranks = new Int32Array(P);
  }

  /** Whether any pair lies in rows r0 … r0 + n − 1 (a block without one need not be formed). */
  needs(r0: number, n: number): boolean {
    return this.first[r0 + n] > this.first[r0];
  }

  /** Score the pairs of rows r0 … r0 + n − 1 against `logits`, whose row i is row r0 + i ([≥ n × V]). */
  score(logits: Float32Array, r0: number, n: number): void {
    const { V, rows, targets, order } = this;
    let z = 0;
    let zRow = -1;
    for (let p = this.first[r0]; p < this.first[r0 + n]; p++) {
      const i = order[p];
      const off = (rows[i] - r0) * V;
      if (rows[i] !== zRow) {
        let max = -Infinity;
        for (let v = off; v < off + V; v++) if (logits[v] > max) max = logits[v];
        let sum = 0;
        for (let v = off; v < off + V; v++) sum += Math.exp(logits[v] - max);
        z = max + Math.log(sum);
        zRow = rows[i];
      }
      const t = targets[i];
      const xt = logits[off + t];
      let rank = 0;
      for (let v = 0; v < V; v++) {
        const xv = logits[off + v];
        if (xv > xt || (xv === xt && v < t)) rank++;
      }
      this.logProbs[i] = xt - z;
      this.ranks[i] = rank;
    }
  }
}

function cpuWeight(w: Weight): CpuWeight { return w as CpuWeight; }

/** The run rmsNorm normalises over: w's length, which must divide x's rows (per-head norms) or equal them. */
export function rmsNormWidth(x: Tensor, w: Weight): number {
  const width = w.shape.reduce((a, b) => a * b, 1);
  if (w.shape.length !== 1 || x.cols % width !== 0) throw new Error(`rmsNorm: ${w.name} [${w.shape}] does not divide rows of ${x.cols} columns`);
  return width;
}

/** Throw unless q, k, v and the store agree with the attention shape (shared by the CPU backends). */
export function checkAttention(q: Tensor, k: Tensor, v: Tensor, store: KvStore, shape: AttentionShape): void {
  const { numHeads: nh, numKvHeads: nkv, headDim: hd, valueDim: vd, window } = shape;
  const ok = nh % nkv === 0 && q.cols === nh * hd && k.cols === nkv * hd && v.cols === nkv * vd
    && store.keyWidth === nkv * hd && store.valueWidth === nkv * vd && k.rows === q.rows && v.rows === q.rows
    && (window === null || (Number.isInteger(window) && window >= 1));
  if (!ok) {
    throw new Error(`attention: q [${q.rows}, ${q.cols}], k [${k.rows}, ${k.cols}], v [${v.rows}, ${v.cols}], store ${store.keyWidth}/${store.valueWidth} for ${nh} heads of ${hd}/${vd} over ${nkv} kv heads, window ${window}`);
  }
}

/**
 * out[t, n] = Σ_k x[t, k] · W[n, k] for the rows `rowIndex` of x (all rows when null). Four weight rows are
 * widened at a time and share each load of x; sums are in double.
 */
function matmulRows(x: Float32Array, K: number, rowIndex: Int32Array | null, rows: number, w: CpuWeight, out: Float32Array): void {
  const N = w.rows;
  const panel = new Float32Array(4 * K);
  for (let n = 0; n < N; n += 4) {
    const width = Math.min(4, N - n);
    widenInto(w, n * K, width * K, panel);
    for (let t = 0; t < rows; t++) {
      const xo = (rowIndex ? rowIndex[t] : t) * K;
      let s0 = 0, s1 = 0, s2 = 0, s3 = 0;
      for (let k = 0; k < K; k++) {
        const xv = x[xo + k];
        s0 += xv * panel[k];
        s1 += xv * panel[K + k];
        s2 += xv * panel[2 * K + k];
        s3 += xv * panel[3 * K + k];
      }
      const o = t * N + n;
      out[o] = s0;
      if (width > 1) out[o + 1] = s1;
      if (width > 2) out[o + 2] = s2;
      if (width > 3) out[o + 3] = s3;
    }
  }
}

export class CpuBackend implements Backend {
  readonly name = 'cpu';
  readonly threads = 1;

  deviceMemory(): null {
    return null;
  }

  weight(stored: StoredTensor): Weight {
    return new CpuWeight(stored.name, stored.dtype, stored.shape, stored.data);
  }

  upload(data: Float32Array, rows: number, cols: number): Tensor {
    if (data.length !== rows * cols) throw new Error(`upload: ${data.length} values for [${rows}, ${cols}]`);
    return new CpuTensor(rows, cols, data);
  }

  read(x: Tensor): Promise<Float32Array> {
    return Promise.resolve(cpu(x).data);
  }

  release(): void {}

  gatherRows(x: Tensor, rows: Int32Array): Tensor {
    const { cols, data } = cpu(x);
    const out = new Float32Array(rows.length * cols);
    for (let i = 0; i < rows.length; i++) out.set(data.subarray(rows[i] * cols, (rows[i] + 1) * cols), i * cols);
    return new CpuTensor(rows.length, cols, out);
  }

  embed(ids: Int32Array, table: Weight): Tensor {
    const t = cpuWeight(table);
    const H = t.cols;
    const out = new Float32Array(ids.length * H);
    for (let i = 0; i < ids.length; i++) widenInto(t, ids[i] * H, H, out.subarray(i * H, (i + 1) * H));
    return new CpuTensor(ids.length, H, out);
  }

  rmsNorm(x: Tensor, w: Weight, eps: number): Tensor {
    const { rows, cols, data } = cpu(x);
    const width = rmsNormWidth(x, w);
    const gain = new Float32Array(width);
    widenInto(cpuWeight(w), 0, width, gain);
    const out = new Float32Array(rows * cols);
    for (let off = 0; off < rows * cols; off += width) {
      let ss = 0;
      for (let c = 0; c < width; c++) ss += data[off + c] * data[off + c];
      const inv = Math.fround(1 / Math.sqrt(Math.fround(ss / width) + eps));
      for (let c = 0; c < width; c++) out[off + c] = gain[c] * Math.fround(data[off + c] * inv);
    }
    return new CpuTensor(rows, cols, out);
  }

  matmul(x: Tensor, w: Weight): Tensor {
    const xt = cpu(x);
    const wt = cpuWeight(w);
    if (wt.cols !== xt.cols) throw new Error(`matmul: x has ${xt.cols} columns, ${wt.name} expects ${wt.cols}`);
    const out = new Float32Array(xt.rows * wt.rows);
    matmulRows(xt.data, xt.cols, null, xt.rows, wt, out);
    return new CpuTensor(xt.rows, wt.rows, out);
  }

  matmulArgmax(x: Tensor, w: Weight, factor: number): Promise<Int32Array> {
    const logits = cpu(this.matmul(x, w));
    if (factor !== 1) this.scaleInPlace(logits, factor);
    return Promise.resolve(argmaxRows(logits.data, logits.rows, logits.cols));
  }

  addBiasInPlace(x: Tensor, bias: Weight): void {
    const { rows, cols, data } = cpu(x);
    const b = cpuWeight(bias);
    if (b.shape.length !== 1 || b.shape[0] !== cols) throw new Error(`addBiasInPlace: ${b.name} [${b.shape}] for ${cols} columns`);
    const values = new Float32Array(cols);
    widenInto(b, 0, cols, values);
    for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) data[r * cols + c] += values[c];
  }

  scaleInPlace(x: Tensor, factor: number): void {
    const d = cpu(x).data;
    const f = Math.fround(factor);
    for (let i = 0; i < d.length; i++) d[i] *= f;
  }

  gatherCols(parts: readonly Tensor[], cols: Int32Array): Tensor {
    const starts = checkGatherCols(parts, cols);
    const rows = parts[0].rows;
    const out = new Float32Array(rows * cols.length);
    for (let j = 0; j < cols.length; j++) {
      let p = 0;
      while (cols[j] >= starts[p + 1]) p++;
      const { cols: width, data } = cpu(parts[p]);
      const c = cols[j] - starts[p];
      for (let r = 0; r < rows; r++) out[r * cols.length + j] = data[r * width + c];
    }
    return new CpuTensor(rows, cols.length, out);
  }

  clampInPlace(x: Tensor, limit: number): void {
    const d = cpu(x).data;
    for (let i = 0; i < d.length; i++) d[i] = Math.min(limit, Math.max(-limit, d[i]));
  }

  addInPlace(x: Tensor, y: Tensor): void {
    const a = cpu(x).data;
    const b = cpu(y).data;
    for (let i = 0; i < a.length; i++) a[i] += b[i];
  }

  ropeInPlace(x: Tensor, positions: Int32Array, rotary: Rotary, heads: number, headWidth: number, offset: number): void {
    const { rows, cols, data } = cpu(x);
    const P = checkRotary(x, rotary, heads, headWidth, offset);
    if (positions.length !== rows) throw new Error(`ropeInPlace: ${positions.length} positions for ${rows} rows`);
    const { cos, sin } = rotaryTables(positions, rotary);
    // Pair i is (i, i + P) for NeoX's rotate-half, (2i, 2i + 1) for adjacent pairs.
    const [stride, gap] = rotary.pairing === 'half' ? [1, P] : [2, 1];
    for (let r = 0; r < rows; r++) {
      for (let h = 0; h < heads; h++) {
        const off = r * cols + h * headWidth + offset;
        for (let i = 0; i < P; i++) {
          const ia = off + i * stride;
          const a = data[ia];
          const b = data[ia + gap];
          const c = cos[r * P + i];
          const s = sin[r * P + i];
          data[ia] = Math.fround(a * c) - Math.fround(b * s);
          data[ia + gap] = Math.fround(b * c) + Math.fround(a * s);
        }
      }
    }
  }

  createKvStore(batch: number, capacity: number, keyWidth: number, valueWidth: number): KvStore {
    return new CpuKvStore(batch, capacity, keyWidth, valueWidth);
  }

  copyKv(from: KvStore, fromRow: number, to: KvStore, toRow: number, positions: number): void {
    const { keys, values } = kvCopyRange(from, fromRow, to, toRow, positions);
    const [src, dst] = [from as CpuKvStore, to as CpuKvStore];
    dst.keys.set(src.keys.subarray(keys.from, keys.from + keys.length), keys.to);
    dst.values.set(src.values.subarray(values.from, values.from + values.length), values.to);
  }

  attention(q: Tensor, k: Tensor, v: Tensor, store: KvStore, layout: BatchLayout, shape: AttentionShape): Tensor {
    const kv = store as CpuKvStore;
    checkAttention(q, k, v, kv, shape);
    const { numHeads, numKvHeads, headDim, valueDim, window } = shape;
    const qd = cpu(q).data;
    const kd = cpu(k).data;
    const vd = cpu(v).data;
    const KW = kv.keyWidth;
    const VW = kv.valueWidth;
    const qWidth = numHeads * headDim;
    const oWidth = numHeads * valueDim;
    const group = numHeads / numKvHeads;
    const scale = Math.fround(shape.scale);
    const T = cpu(q).rows;
    const out = new Float32Array(T * oWidth);
    const B = layout.starts.length - 1;
    for (let b = 0; b < B; b++) {
      const start = layout.starts[b];
      const len = layout.starts[b + 1] - start;
      const past = layout.past[b];
      if (past + len > kv.capacity) throw new Error(`attention: sequence ${b} needs ${past + len} positions, cache holds ${kv.capacity}`);
      const kBase = b * kv.capacity * KW;
      const vBase = b * kv.capacity * VW;
      kv.keys.set(kd.subarray(start * KW, (start + len) * KW), kBase + past * KW);
      kv.values.set(vd.subarray(start * VW, (start + len) * VW), vBase + past * VW);
      const scores = new Float32Array(past + len);
      for (let s = 0; s < len; s++) {
        const t = start + s;
        const end = past + s + 1; // keys first … end − 1 are visible
        const first = window === null ? 0 : Math.max(0, end - window);
        for (let h = 0; h < numHeads; h++) {
          const qOff = t * qWidth + h * headDim;
          const kOffHead = Math.floor(h / group) * headDim;
          const vOffHead = Math.floor(h / group) * valueDim;
          let max = -Infinity;
          for (let j = first; j < end; j++) {
            const kOff = kBase + j * KW + kOffHead;
            let dot = 0;
            for (let d = 0; d < headDim; d++) dot += qd[qOff + d] * kv.keys[kOff + d];
            scores[j] = Math.fround(Math.fround(dot) * scale);
            if (scores[j] > max) max = scores[j];
          }
          let sum = 0;
          for (let j = first; j < end; j++) {
            scores[j] = Math.exp(scores[j] - max);
            sum += scores[j];
          }
          const oOff = t * oWidth + h * valueDim;
          for (let d = 0; d < valueDim; d++) {
            let acc = 0;
            for (let j = first; j < end; j++) acc += scores[j] * kv.values[vBase + j * VW + vOffHead + d];
            out[oOff + d] = acc / sum;
          }
        }
      }
    }
    return new CpuTensor(T, oWidth, out);
  }

  /** One block of scoring logits, [logitBlockRows(V) × V], kept from call to call (regrown only for a larger V). */
  private logitBlock = new Float32Array(0);

  scoreTokens(hidden: Tensor, head: Weight, scale: number, rows: Int32Array, targets: Int32Array): Promise<TokenScores> {
    const { rows: R, cols: K, data } = cpu(hidden);
    const w = cpuWeight(head);
    if (w.cols !== K) throw new Error(`scoreTokens: hidden has ${K} columns, ${w.name} expects ${w.cols}`);
    const V = w.rows;
    const blockRows = logitBlockRows(V);
    if (this.logitBlock.length < blockRows * V) this.logitBlock = new Float32Array(blockRows * V);
    const f = Math.fround(scale);
    const scorer = new BlockScorer(R, V, rows, targets);
    const logits = this.logitBlock;
    for (let r0 = 0; r0 < R; r0 += blockRows) {
      const n = Math.min(blockRows, R - r0);
      if (!scorer.needs(r0, n)) continue;
      matmulRows(data.subarray(r0 * K, (r0 + n) * K), K, null, n, w, logits);
      if (f !== 1) for (let i = 0; i < n * V; i++) logits[i] *= f;
      scorer.score(logits, r0, n);
    }
    return Promise.resolve({ logProbs: scorer.logProbs, ranks: scorer.ranks });
  }

  moeExperts(x: Tensor, plan: ExpertPlan, experts: readonly ExpertWeights[]): Tensor {
    const { rows: T, cols: H, data } = cpu(x);
    const out = new Float32Array(T * H);
    for (let e = 0; e < experts.length; e++) {
      const begin = plan.offsets[e];
      const n = plan.offsets[e + 1] - begin;
      if (n === 0) continue;
      const tokens = plan.tokens.subarray(begin, begin + n);
      const gate = cpuWeight(experts[e].gate);
      const I = gate.rows;
      const g = new Float32Array(n * I);
      const u = new Float32Array(n * I);
      matmulRows(data, H, tokens, n, gate, g);
      matmulRows(data, H, tokens, n, cpuWeight(experts[e].up), u);
      for (let i = 0; i < g.length; i++) g[i] = Math.fround(g[i] / (1 + Math.exp(-g[i]))) * u[i];
      const y = new Float32Array(n * H);
      matmulRows(g, I, null, n, cpuWeight(experts[e].down), y);
      // Experts accumulate in index order, each scaled by its routing weight, as the reference's index_add does.
      for (let i = 0; i < n; i++) {
        const w = plan.weights[begin + i];
        const oOff = tokens[i] * H;
        for (let c = 0; c < H; c++) out[oOff + c] += Math.fround(y[i * H + c] * w);
      }
    }
    return new CpuTensor(T, H, out);
  }
}
