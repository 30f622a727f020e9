import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import type { StoredTensor, WeightDtype } from '../model/tensor.js';
import {
  type AttentionShape, type Backend, type BatchLayout, type ExpertPlan, type ExpertWeights, type KvStore, logitBlockRows,
  type Rotary, type Tensor, type TokenScores, type Weight,
} from './backend.js';
import { checkAttention, CpuBackend, CpuKvStore, rmsNormWidth } from './cpu.js';
import { kernelThreads } from './cpus.js';

/**
 * The fast CPU backend: the hot kernels (matrix multiply, grouped expert FFN, attention, RMSNorm) run in a C++
 * Node-API addon (native/routelab_kernels.cc) with AVX2/FMA micro-kernels on a persistent thread pool sized to the CPUs
 * this process may use (`usableCpus`: affinity mask within the cgroup quota), whose threads wait passively after a short
 * spin. Weights stay in the typed arrays the checkpoint produced (BF16/F16/F32) and are widened per tile inside the
 * kernels. Cheap element-wise operations (embedding rows, RoPE, bias add, scale, clamp, residual add, row and column
 * gathers, KV copies) reuse the reference backend: measured, they are < 2 % of a prefill.
 *
 * Tensors are plain `{rows, cols, data: Float32Array}` records, the same layout the reference backend uses, so the
 * two can share them.
 */
export interface NativeKernels {
  matmul(x: Float32Array, T: number, K: number, w: Uint16Array | Float32Array, dtype: number, N: number, out: Float32Array): void;
  /** out[t] = index of the largest entry of (factor ·) x[t] · Wᵀ, ties to the lowest: argmaxRow of matmul's logits. */
  matmulArgmax(x: Float32Array, T: number, K: number, w: Uint16Array | Float32Array, dtype: number, N: number, factor: number, out: Int32Array): void;
  moe(
    x: Float32Array, T: number, H: number, I: number, offsets: Int32Array, tokens: Int32Array, weights: Float32Array,
    gates: (Uint16Array | Float32Array)[], ups: (Uint16Array | Float32Array)[], downs: (Uint16Array | Float32Array)[],
    dtype: number, out: Float32Array,
  ): void;
  /**
   * Append k [T, kW] and v [T, vW] to the store, then attention → out [T, nh·vd]; kW = nkv·hd, vW = nkv·vd;
   * window ≤ 0 means none.
   */
  attention(
    q: Float32Array, k: Float32Array, v: Float32Array, keys: Float32Array, values: Float32Array, capacity: number,
    keyWidth: number, valueWidth: number, starts: Int32Array, past: Int32Array, nh: number, nkv: number, hd: number,
    vd: number, scale: number, window: number, out: Float32Array,
  ): void;
  /** Normalise each of `rows` runs of `cols` values (a per-head norm passes rows · heads runs of one head). */
  rmsNorm(x: Float32Array, rows: number, cols: number, w: Uint16Array | Float32Array, dtype: number, eps: number, out: Float32Array): void;
  /**
   * Pairs (rows[i], targets[i]) under log softmax(scale · x [R, K] · wᵀ [V, K]), the logits formed `blockRows`
   * rows at a time in one buffer the addon keeps → logProbs, ranks.
   */
  scoreTokens(
    x: Float32Array, R: number, K: number, w: Uint16Array | Float32Array, dtype: number, V: number, scale: number,
    blockRows: number, rows: Int32Array, targets: Int32Array, logProbs: Float64Array, ranks: Int32Array,
  ): void;
  setThreads(n: number): number;
  threads(): number;
  /** CPU seconds (user + system) of the process's terminated children so far (getrusage RUSAGE_CHILDREN). */
  childrenCpuSeconds(): number;
}

/** Where native/build.mjs puts the addon (this file compiles to dist/src/backends/). */
export const NATIVE_ADDON_PATH = fileURLToPath(new URL('../../../native/build/routelab_kernels.node', import.meta.url));

const DTYPE_CODE: Record<WeightDtype, number> = { F32: 0, BF16: 1, F16: 2 };

let loaded: NativeKernels | Error | undefined;

/** Load the addon once; an Error (never a throw) says why it is unavailable. */
export function loadNativeKernels(): NativeKernels | Error {
  if (loaded) return loaded;
  try {
    if (process.arch !== 'x64') throw new Error(`needs x86-64, this is ${process.arch}`);
    if (process.platform === 'linux') {
      const flags = /^flags\s*:(.*)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1].split(/\s+/) ?? [];
      const missing = ['avx2', 'fma', 'f16c'].filter((f) => !flags.includes(f));
      if (missing.length) throw new Error(`CPU lacks ${missing.join(', ')}`);
    }
    loaded = createRequire(import.meta.url)(NATIVE_ADDON_PATH) as NativeKernels;
  } catch (e) {
    const reason = (e as Error).message.split('\n')[0];
    loaded = new Error(`native kernels unavailable (${reason}); build them with \`node native/build.mjs\``);
  }
  return loaded;
}

interface Dense extends Tensor {
  readonly data: Float32Array;
}

class NativeTensor implements Dense {
  /** Set by release: the buffer went back to the pool (a second release must not hand it out twice). */
  released = false;
  constructor(
    readonly rows: number,
    readonly cols: number,
    readonly data: Float32Array,
  ) {}
}

/**
 * Output buffers of the native kernels, recycled through `release`: the model releases every intermediate tensor, so
 * after the first decode step each step's activations come from here and a step allocates none (llama2.c's run
 * state, without a second code path). Only small buffers are kept, within a fixed total, so that prefills and scoring
 * of many lengths never make it hold memory: at batch 1 an allocation costs more than the kernel that fills it.
 */
class BufferPool {
  private readonly free = new Map<number, Float32Array[]>();
  private bytes = 0;

  /** A buffer of n floats, with arbitrary contents when recycled. */
  take(n: number): Float32Array {
    const recycled = this.free.get(n)?.pop();
    if (recycled === undefined) return new Float32Array(n);
    this.bytes -= recycled.byteLength;
    return recycled;
  }

  give(buffer: Float32Array): void {
    if (buffer.length === 0 || buffer.byteLength > POOLED_MAX_BYTES || this.bytes + buffer.byteLength > POOL_MAX_BYTES) return;
    let list = this.free.get(buffer.length);
    if (list === undefined) this.free.set(buffer.length, list = []);
    list.push(buffer);
    this.bytes += buffer.byteLength;
  }
}

const POOLED_MAX_BYTES = 64 * 1024; // a decode step's largest activation for hidden sizes up to 16k
const POOL_MAX_BYTES = 4 * 1024 * 1024;

/** The reference backend's weight record: the checkpoint's typed array, never copied. */
interface DenseWeight extends Weight {
  readonly data: Uint16Array | Float32Array;
}


function dense(x: Tensor): Dense { return x as Dense; }
function denseWeight(w: Weight): DenseWeight { return w as DenseWeight; }

export interface NativeBackendOptions {
  /** Kernel threads (default: ROUTELAB_THREADS, else `usableCpus()`: the affinity mask within the cgroup CPU quota). */
  readonly threads?: number;
}

export class NativeBackend implements Backend {
  readonly name = 'native';

  deviceMemory(): null {
    return null;
  }

  /** Threads the kernels run on. */
  readonly threads: number;
  private readonly ref = new CpuBackend();

  /** Throws when the addon is unavailable; see `createFastBackend` for the falling-back variant. */
  constructor(options: NativeBackendOptions = {}) {
    const k = loadNativeKernels();
    if (k instanceof Error) throw k;
    this.k = k;
    this.threads = k.setThreads(kernelThreads(options.threads));
  }

  private readonly k: NativeKernels;

  weight(stored: StoredTensor): Weight { return this.ref.weight(stored); }
  upload(data: Float32Array, rows: number, cols: number): Tensor { return this.ref.upload(data, rows, cols); }
  read(x: Tensor): Promise<Float32Array> { return Promise.resolve(dense(x).data); }
  /** Only the kernels' own outputs are recycled: uploads and the reference backend's tensors may be aliased. */
  release(x: Tensor): void {
    if (!(x instanceof NativeTensor) || x.released) return;
    x.released = true;
    this.pool.give(x.data);
  }

  private readonly pool = new BufferPool();
  gatherRows(x: Tensor, rows: Int32Array): Tensor { return this.ref.gatherRows(x, rows); }
  embed(ids: Int32Array, table: Weight): Tensor { return this.ref.embed(ids, table); }
  clampInPlace(x: Tensor, limit: number): void { this.ref.clampInPlace(x, limit); }
  addInPlace(x: Tensor, y: Tensor): void { this.ref.addInPlace(x, y); }
  addBiasInPlace(x: Tensor, bias: Weight): void { this.ref.addBiasInPlace(x, bias); }
  scaleInPlace(x: Tensor, factor: number): void { this.ref.scaleInPlace(x, factor); }
  gatherCols(parts: readonly Tensor[], cols: Int32Array): Tensor { return this.ref.gatherCols(parts, cols); }
  ropeInPlace(x: Tensor, positions: Int32Array, rotary: Rotary, heads: number, headWidth: number, offset: number): void {
    this.ref.ropeInPlace(x, positions, rotary, heads, headWidth, offset);
  }

  rmsNorm(x: Tensor, w: Weight, eps: number): Tensor {
    const { rows, cols, data } = dense(x);
    const width = rmsNormWidth(x, w);
    const gain = denseWeight(w);
    const out = this.pool.take(rows * cols);
    // A per-head norm is the same kernel over rows · (cols / width) runs of `width` values: the memory is identical.
    this.k.rmsNorm(data, rows * (cols / width), width, gain.data, DTYPE_CODE[gain.dtype], eps, out);
    return new NativeTensor(rows, cols, out);
  }

  matmul(x: Tensor, w: Weight): Tensor {
    const { rows: T, cols: K, data } = dense(x);
    const wt = denseWeight(w);
    const N = wt.shape[0];
    const wK = wt.shape.length > 1 ? wt.shape[1] : 1;
    if (wK !== K) throw new Error(`matmul: x has ${K} columns, ${wt.name} expects ${wK}`);
    const out = this.pool.take(T * N);
    if (K === 0) out.fill(0); // an empty dot product: the kernel writes nothing
    this.k.matmul(data, T, K, wt.data, DTYPE_CODE[wt.dtype], N, out);
    return new NativeTensor(T, N, out);
  }

  matmulArgmax(x: Tensor, w: Weight, factor: number): Promise<Int32Array> {
    const { rows: T, cols: K, data } = dense(x);
    const wt = denseWeight(w);
    const N = wt.shape[0];
    const wK = wt.shape.length > 1 ? wt.shape[1] : 1;
    if (wK !== K) throw new Error(`matmulArgmax: x has ${K} columns, ${wt.name} expects ${wK}`);
    const out = new Int32Array(T);
    this.k.matmulArgmax(data, T, K, wt.data, DTYPE_CODE[wt.dtype], N, Math.fround(factor), out);
    return Promise.resolve(out);
  }

  createKvStore(batch: number, capacity: number, keyWidth: number, valueWidth: number): KvStore {
    return new CpuKvStore(batch, capacity, keyWidth, valueWidth);
  }

  copyKv(from: KvStore, fromRow: number, to: KvStore, toRow: number, positions: number): void {
    this.ref.copyKv(from, fromRow, to, toRow, positions);
  }

  attention(q: Tensor, k: Tensor, v: Tensor, store: KvStore, layout: BatchLayout, shape: AttentionShape): Tensor {
    const kv = store as CpuKvStore;
    checkAttention(q, k, v, kv, shape);
    const { numHeads, numKvHeads, headDim, valueDim, scale, window } = shape;
    const T = q.rows;
    const out = this.pool.take(T * numHeads * valueDim);
    // The kernel reads 0 as no window; a window of the whole cache or more is none (and would not fit in an int32).
    const w = window === null || window >= kv.capacity ? 0 : window;
    this.k.attention(dense(q).data, dense(k).data, dense(v).data, kv.keys, kv.values, kv.capacity, kv.keyWidth,
      kv.valueWidth, layout.starts, layout.past, numHeads, numKvHeads, headDim, valueDim, scale, w, out);
    return new NativeTensor(T, numHeads * valueDim, out);
  }

  scoreTokens(hidden: Tensor, head: Weight, scale: number, rows: Int32Array, targets: Int32Array): Promise<TokenScores> {
    const { rows: R, cols: K, data } = dense(hidden);
    const w = denseWeight(head);
    const V = w.shape[0];
    if ((w.shape[1] ?? 1) !== K) throw new Error(`scoreTokens: hidden has ${K} columns, ${w.name} expects ${w.shape[1] ?? 1}`);
    const logProbs = new Float64Array(rows.length);
    const ranks = new Int32Array(rows.length);
    this.k.scoreTokens(data, R, K, w.data, DTYPE_CODE[w.dtype], V, Math.fround(scale), logitBlockRows(V), rows, targets, logProbs, ranks);
    return Promise.resolve({ logProbs, ranks });
  }

  moeExperts(x: Tensor, plan: ExpertPlan, experts: readonly ExpertWeights[]): Tensor {
    const { rows: T, cols: H, data } = dense(x);
    const set = this.expertSet(experts, H);
    if (set === null || plan.offsets.length !== experts.length + 1) return this.ref.moeExperts(x, plan, experts);
    const out = this.pool.take(T * H).fill(0); // the kernel accumulates, and unrouted tokens' rows stay 0
    this.k.moe(data, T, H, set.I, plan.offsets, plan.tokens, plan.weights, set.gates, set.ups, set.downs, set.dtype, out);
    return new NativeTensor(T, H, out);
  }

  /**
   * The kernel's view of a layer's experts — one dtype and shape for all, their arrays listed per matrix — or null
   * when they differ (the reference then runs them). Worked out once per expert list (a model's lists live as long
   * as it does), not once per token: at batch 1 the checks over every expert cost as much as the experts run.
   */
  private expertSet(experts: readonly ExpertWeights[], H: number): ExpertSet | null {
    let set = this.expertSets.get(experts);
    if (set === undefined) {
      const dtype = experts[0]?.gate.dtype;
      const I = experts[0]?.gate.shape[0] ?? 0;
      const uniform = experts.every((e) => [e.gate, e.up, e.down].every((w) => w.dtype === dtype))
        && experts.every((e) => e.gate.shape[0] === I && e.gate.shape[1] === H && e.up.shape[0] === I && e.up.shape[1] === H
          && e.down.shape[0] === H && e.down.shape[1] === I);
      set = uniform
        ? {
          H, I, dtype: DTYPE_CODE[dtype],
          gates: experts.map((e) => denseWeight(e.gate).data), ups: experts.map((e) => denseWeight(e.up).data),
          downs: experts.map((e) => denseWeight(e.down).data),
        }
        : null;
      this.expertSets.set(experts, set);
    }
    return set !== null && set.H === H ? set : null;
  }

  private readonly expertSets = new WeakMap<readonly ExpertWeights[], ExpertSet | null>();
}

interface ExpertSet {
  readonly H: number;
  readonly I: number;
  readonly dtype: number;
  readonly gates: (Uint16Array | Float32Array)[];
  readonly ups: (Uint16Array | Float32Array)[];
  readonly downs: (Uint16Array | Float32Array)[];
}

/**
 * The default CPU policy: the native backend when its addon loads, else the reference backend with one warning line
 * on stderr (`--backend cpu` always selects the reference explicitly).
 */
export function createFastBackend(options: NativeBackendOptions = {}, warn: (line: string) => void = (l) => console.warn(l)): Backend {
  const k = loadNativeKernels();
  if (k instanceof Error) {
    warn(`routelab: ${k.message}; using the reference 'cpu' backend`);
    return new CpuBackend();
  }
  return new NativeBackend(options);
}
