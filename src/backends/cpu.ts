import type { StoredTensor, WeightDtype } from '../model/tensor.js';
import type {
  AttentionShape, Backend, BatchLayout, ExpertPlan, ExpertWeights, KvStore, Tensor, TokenScores, Weight,
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
    readonly width: number,
  ) {
    this.keys = new Float32Array(batch * capacity * width);
    this.values = new Float32Array(batch * capacity * width);
  }
}

/** float16 bit pattern → float32 value, for every pattern (built once, 256 KiB). */
let f16Table: Float32Array | undefined;
function halfToFloatTable(): Float32Array {
  if (f16Table) return f16Table;
  f16Table = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const sign = h & 0x8000 ? -1 : 1;
    const exp = (h >> 10) & 0x1f;
    const frac = h & 0x3ff;
    f16Table[h] = exp === 0 ? sign * frac * 2 ** -24
      : exp === 31 ? (frac ? NaN : sign * Infinity)
        : sign * (1 + frac / 1024) * 2 ** (exp - 15);
  }
  return f16Table;
}

/** Widen `count` stored elements starting at `offset` into `out` (float32); `bits` views the same memory as out. */
function widenInto(w: CpuWeight, offset: number, count: number, out: Float32Array, bits = new Uint32Array(out.buffer, out.byteOffset, count)): void {
  const src = w.data;
  if (w.dtype === 'F32') {
    out.set((src as Float32Array).subarray(offset, offset + count));
  } else if (w.dtype === 'BF16') {
    // bf16 is the top half of a float32: shift the bits into place through an integer view.
    for (let i = 0; i < count; i++) bits[i] = src[offset + i] << 16;
  } else {
    const table = halfToFloatTable();
    for (let i = 0; i < count; i++) out[i] = table[src[offset + i]];
  }
}

function cpu(x: Tensor): CpuTensor { return x as CpuTensor; }

/**
 * Throw unless `Backend.copyKv(from, fromRow, to, toRow, positions)` is well formed; returns the copy's element
 * offsets (row starts) and length in each store's [batch × capacity × width] layout.
 */
export function kvCopyRange(from: KvStore, fromRow: number, to: KvStore, toRow: number, positions: number): { from: number; to: number; length: number } {
  if (from === to) throw new Error('copyKv: source and destination must be distinct stores');
  if (from.width !== to.width) throw new Error(`copyKv: width ${from.width} into width ${to.width}`);
  if (!(fromRow >= 0 && fromRow < from.batch && toRow >= 0 && toRow < to.batch)) {
    throw new Error(`copyKv: sequence ${fromRow} of ${from.batch} into sequence ${toRow} of ${to.batch}`);
  }
  if (!(positions >= 0 && positions <= from.capacity && positions <= to.capacity)) {
    throw new Error(`copyKv: ${positions} positions between stores of capacity ${from.capacity} and ${to.capacity}`);
  }
  return { from: fromRow * from.capacity * from.width, to: toRow * to.capacity * to.width, length: positions * from.width };
}

/**
 * TokenScores from logits held on the host [R × V]: each distinct row's normaliser log Σ exp once (max-shifted,
 * summed in double), then each pair's log-probability and rank. Backends without a kernel of their own use this.
 */
export function scoreTokensOnHost(logits: Float32Array, V: number, rows: Int32Array, targets: Int32Array): TokenScores {
  const logZ = new Map<number, number>();
  const logProbs = new Float64Array(rows.length);
  const ranks = new Int32Array(rows.length);
  for (let i = 0; i < rows.length; i++) {
    const off = rows[i] * V;
    const t = targets[i];
    if (!(t >= 0 && t < V)) throw new Error(`scoreTokens: token ${t} outside the vocabulary of ${V}`);
    let z = logZ.get(rows[i]);
    if (z === undefined) {
      let max = -Infinity;
      for (let v = off; v < off + V; v++) if (logits[v] > max) max = logits[v];
      let sum = 0;
      for (let v = off; v < off + V; v++) sum += Math.exp(logits[v] - max);
      z = max + Math.log(sum);
      logZ.set(rows[i], z);
    }
    const xt = logits[off + t];
    let rank = 0;
    for (let v = 0; v < V; v++) {
      const xv = logits[off + v];
      if (xv > xt || (xv === xt && v < t)) rank++;
    }
    logProbs[i] = xt - z;
    ranks[i] = rank;
  }
  return { logProbs, ranks };
}
function cpuWeight(w: Weight): CpuWeight { return w as CpuWeight; }

/**
 * out[t, n] = Σ_k x[t, k] · W[n, k] for the rows `rowIndex` of x (all rows when null). Four weight rows are
 * widened at a time and share each load of x; sums are in double.
 */
function matmulRows(x: Float32Array, K: number, rowIndex: Int32Array | null, rows: number, w: CpuWeight, out: Float32Array): void {
  const N = w.rows;
  const panel = new Float32Array(4 * K);
  const bits = new Uint32Array(panel.buffer);
  for (let n = 0; n < N; n += 4) {
    const width = Math.min(4, N - n);
    widenInto(w, n * K, width * K, panel, bits);
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
    const gain = new Float32Array(cols);
    widenInto(cpuWeight(w), 0, cols, gain);
    const out = new Float32Array(rows * cols);
    for (let r = 0; r < rows; r++) {
      const off = r * cols;
      let ss = 0;
      for (let c = 0; c < cols; c++) ss += data[off + c] * data[off + c];
      const inv = Math.fround(1 / Math.sqrt(Math.fround(ss / cols) + eps));
      for (let c = 0; c < cols; c++) out[off + c] = gain[c] * Math.fround(data[off + c] * inv);
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

  clampInPlace(x: Tensor, limit: number): void {
    const d = cpu(x).data;
    for (let i = 0; i < d.length; i++) d[i] = Math.min(limit, Math.max(-limit, d[i]));
  }

  addInPlace(x: Tensor, y: Tensor): void {
    const a = cpu(x).data;
    const b = cpu(y).data;
    for (let i = 0; i < a.length; i++) a[i] += b[i];
  }

  ropeInPlace(x: Tensor, positions: Int32Array, heads: number, headDim: number, theta: number): void {
    const { rows, cols, data } = cpu(x);
    const half = headDim / 2;
    // inv_freq and the angles are float32 in the reference; cos/sin are rounded to float32 as well.
    const invFreq = new Float32Array(half);
    for (let i = 0; i < half; i++) invFreq[i] = 1 / theta ** ((2 * i) / headDim);
    const cos = new Float32Array(half);
    const sin = new Float32Array(half);
    for (let r = 0; r < rows; r++) {
      for (let i = 0; i < half; i++) {
        const angle = Math.fround(positions[r] * invFreq[i]);
        cos[i] = Math.cos(angle);
        sin[i] = Math.sin(angle);
      }
      for (let h = 0; h < heads; h++) {
        const off = r * cols + h * headDim;
        for (let i = 0; i < half; i++) {
          const a = data[off + i];
          const b = data[off + half + i];
          data[off + i] = Math.fround(a * cos[i]) - Math.fround(b * sin[i]);
          data[off + half + i] = Math.fround(b * cos[i]) + Math.fround(a * sin[i]);
        }
      }
    }
  }

  createKvStore(batch: number, capacity: number, width: number): KvStore {
    return new CpuKvStore(batch, capacity, width);
  }

  copyKv(from: KvStore, fromRow: number, to: KvStore, toRow: number, positions: number): void {
    const range = kvCopyRange(from, fromRow, to, toRow, positions);
    const [src, dst] = [from as CpuKvStore, to as CpuKvStore];
    dst.keys.set(src.keys.subarray(range.from, range.from + range.length), range.to);
    dst.values.set(src.values.subarray(range.from, range.from + range.length), range.to);
  }

  attention(q: Tensor, k: Tensor, v: Tensor, store: KvStore, layout: BatchLayout, shape: AttentionShape): Tensor {
    const kv = store as CpuKvStore;
    const { numHeads, numKvHeads, headDim } = shape;
    const qd = cpu(q).data;
    const kd = cpu(k).data;
    const vd = cpu(v).data;
    const W = kv.width;
    const qWidth = numHeads * headDim;
    const group = numHeads / numKvHeads;
    const scale = 1 / Math.sqrt(headDim);
    const T = cpu(q).rows;
    const out = new Float32Array(T * qWidth);
    const B = layout.starts.length - 1;
    for (let b = 0; b < B; b++) {
      const start = layout.starts[b];
      const len = layout.starts[b + 1] - start;
      const past = layout.past[b];
      if (past + len > kv.capacity) throw new Error(`attention: sequence ${b} needs ${past + len} positions, cache holds ${kv.capacity}`);
      const base = b * kv.capacity * W;
      kv.keys.set(kd.subarray(start * W, (start + len) * W), base + past * W);
      kv.values.set(vd.subarray(start * W, (start + len) * W), base + past * W);
      const scores = new Float32Array(past + len);
      for (let s = 0; s < len; s++) {
        const t = start + s;
        const visible = past + s + 1;
        for (let h = 0; h < numHeads; h++) {
          const qOff = t * qWidth + h * headDim;
          const kvOff = Math.floor(h / group) * headDim;
          let max = -Infinity;
          for (let j = 0; j < visible; j++) {
            const kOff = base + j * W + kvOff;
            let dot = 0;
            for (let d = 0; d < headDim; d++) dot += qd[qOff + d] * kv.keys[kOff + d];
            scores[j] = Math.fround(dot) * scale;
            if (scores[j] > max) max = scores[j];
          }
          let sum = 0;
          for (let j = 0; j < visible; j++) {
            scores[j] = Math.exp(scores[j] - max);
            sum += scores[j];
          }
          const oOff = t * qWidth + h * headDim;
          for (let d = 0; d < headDim; d++) {
            let acc = 0;
            for (let j = 0; j < visible; j++) acc += scores[j] * kv.values[base + j * W + kvOff + d];
            out[oOff + d] = acc / sum;
          }
        }
      }
    }
    return new CpuTensor(T, qWidth, out);
  }

  scoreTokens(logits: Tensor, rows: Int32Array, targets: Int32Array): Promise<TokenScores> {
    const { cols, data } = cpu(logits);
    return Promise.resolve(scoreTokensOnHost(data, cols, rows, targets));
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
