/// <reference types="@webgpu/types" />
/**
 * The webgpu backend: every kernel of the forward pass in WGSL, through Dawn (npm `webgpu`) on Linux/Windows and
 * Metal on macOS. Weights stay 16-bit on the GPU (BF16/F16 as packed u32 pairs, widened exactly in the shader);
 * activations and all accumulation are float32; no float atomics, so runs are bit-reproducible.
 *
 * Commands are recorded into one encoder and submitted when a result is read. Weights larger than the device's
 * storage-binding limit (lm_head of OLMoE-1B-7B is 206 MB) are split into row chunks, one dispatch each.
 * Keep hot JS loops out of async functions that await Dawn promises (it crashes dawn.node): every loop here lives
 * in a synchronous method.
 */
import { RoutelabError } from '../errors.js';
import type { StoredTensor, WeightDtype } from '../model/tensor.js';
import {
  type AttentionShape, type Backend, type BatchLayout, type DeviceMemory, type ExpertPlan, type ExpertWeights, type KvStore,
  logitBlockRows, type Rotary, type Tensor, type TokenScores, type Weight,
} from './backend.js';
import { argmaxRows } from './argmax.js';
import { BlockScorer, checkAttention, checkGatherCols, checkRotary, kvCopyRange, rmsNormWidth, rotaryTables } from './cpu.js';
import {
  ADD, ATTENTION, ATTENTION_MAX_DIM, biasKernel, CLAMP, embedKernel, GATHER_COLS, GATHER_ROWS, GEMV_MAX_T, gemvKernel, KV_APPEND,
  matmulKernel, MM_TILE_N, MM_TILE_T, type MatmulMode, rmsNormKernel, ROPE, SCALE,
} from './webgpu-kernels.js';

export interface WebGpuOptions {
  /** Flags for Dawn's `create` (e.g. `backend=vulkan`, `adapter=NAME`); default none. */
  readonly dawnFlags?: readonly string[];
  readonly powerPreference?: GPUPowerPreference;
  /** Split weights into row chunks of at most this many bytes (default and cap: the device's storage-binding limit). */
  readonly weightChunkBytes?: number;
  /** Treat the storage-binding limit as at most this (tests of the blocked paths); default the device's. */
  readonly maxBindingBytes?: number;
}

// GPUBufferUsage / GPUMapMode exist as globals only once Dawn's are installed; these are their fixed values.
const USAGE = {
  storage: 0x80 | 0x04 | 0x08, // STORAGE | COPY_SRC | COPY_DST
  uniform: 0x40 | 0x08, // UNIFORM | COPY_DST
  read: 0x01 | 0x08, // MAP_READ | COPY_DST
};
const MAP_READ = 0x1;

class GpuTensor implements Tensor {
  constructor(
    readonly rows: number,
    readonly cols: number,
    readonly buffer: GPUBuffer,
  ) {}
}

interface WeightChunk {
  readonly buffer: GPUBuffer;
  readonly row0: number;
  readonly rows: number;
}

class GpuWeight implements Weight {
  constructor(
    readonly name: string,
    readonly dtype: WeightDtype,
    readonly shape: readonly number[],
    readonly rows: number,
    readonly cols: number,
    readonly chunks: readonly WeightChunk[],
  ) {}
}

class GpuKvStore implements KvStore {
  constructor(
    readonly batch: number,
    readonly capacity: number,
    readonly keyWidth: number,
    readonly valueWidth: number,
    readonly keys: GPUBuffer,
    readonly values: GPUBuffer,
  ) {}
}

/** A whole buffer, or a range of one (offset 256-byte aligned). */
type Binding = GPUBuffer | { buffer: GPUBuffer; offset: number; size: number };

const MAX_GROUPS = 65535;
const POOL_LIMIT_BYTES = 2 ** 30;
const UNIFORM_CACHE_LIMIT = 8192;

export class WebGpuBackend implements Backend {
  readonly name = 'webgpu';
  readonly threads = null;
  private readonly pipelines = new Map<string, GPUComputePipeline>();
  private readonly uniforms = new Map<string, GPUBuffer>();
  private readonly pool = new Map<number, GPUBuffer[]>();
  private pooledBytes = 0;
  /** Buffers to destroy once the commands recorded so far have been submitted. */
  private garbage: GPUBuffer[] = [];
  private encoder: GPUCommandEncoder | null = null;
  private pass: GPUComputePassEncoder | null = null;
  private error: string | null = null;
  /** The last rotary cos/sin table and what it was built from (q and k of a layer, and every layer, share one). */
  private ropeCache: { positions: Int32Array; invFreq: Float32Array; scaling: number; table: GPUBuffer } | null = null;
  private destroyed = false;
  /** Bytes of live GPU buffers: counted at creation, uncounted when destroyed or garbage-collected. */
  private liveBytes = 0;
  private peakBytes = 0;
  private readonly collected = new FinalizationRegistry<number>((size) => {
    this.liveBytes -= size;
  });
  readonly maxBindingBytes: number;
  readonly weightChunkBytes: number;

  constructor(
    readonly device: GPUDevice,
    /** What the adapter calls itself (vendor, architecture, device, description). */
    readonly adapterName: string,
    options: WebGpuOptions = {},
    /** Dawn's instance: held so that it lives as long as the device. */
    readonly instance?: GPU,
  ) {
    this.maxBindingBytes = Math.min(options.maxBindingBytes ?? Infinity, device.limits.maxStorageBufferBindingSize);
    this.weightChunkBytes = Math.min(options.weightChunkBytes ?? Infinity, this.maxBindingBytes);
    device.addEventListener('uncapturederror', (event) => {
      this.error ??= (event as GPUUncapturedErrorEvent).error.message;
    });
  }

  // ---- memory ----

  deviceMemory(): DeviceMemory {
    return { bytes: this.liveBytes, peakBytes: this.peakBytes };
  }

  /** Every GPU buffer comes from here, so that device memory is accounted. */
  private createBuffer(descriptor: GPUBufferDescriptor): GPUBuffer {
    const buffer = this.device.createBuffer(descriptor);
    this.liveBytes += buffer.size;
    this.peakBytes = Math.max(this.peakBytes, this.liveBytes);
    this.collected.register(buffer, buffer.size, buffer);
    return buffer;
  }

  private destroyBuffer(buffer: GPUBuffer): void {
    if (this.collected.unregister(buffer)) this.liveBytes -= buffer.size;
    buffer.destroy();
  }

  weight(stored: StoredTensor): Weight {
    const { shape, dtype, data } = stored;
    const rows = shape.length > 1 ? shape[0] : 1;
    const cols = shape.length > 1 ? shape.slice(1).reduce((a, b) => a * b, 1) : shape[0] ?? 1;
    const elemBytes = dtype === 'F32' ? 4 : 2;
    const rowBytes = cols * elemBytes;
    if (rowBytes > this.maxBindingBytes) {
      throw new RoutelabError(stored.name, `a row of ${rowBytes} bytes exceeds the device's storage binding limit ${this.maxBindingBytes}`);
    }
    const chunkRows = Math.max(1, Math.floor(this.weightChunkBytes / rowBytes));
    const chunks: WeightChunk[] = [];
    for (let row0 = 0; row0 < rows; row0 += chunkRows) {
      const n = Math.min(chunkRows, rows - row0);
      const part = data.subarray(row0 * cols, (row0 + n) * cols);
      const buffer = this.createBuffer({ size: align4(Math.max(4, part.byteLength)), usage: USAGE.storage, mappedAtCreation: true });
      const range = buffer.getMappedRange();
      if (part instanceof Float32Array) new Float32Array(range).set(part);
      else new Uint16Array(range).set(part);
      buffer.unmap();
      chunks.push({ buffer, row0, rows: n });
    }
    return new GpuWeight(stored.name, dtype, shape, rows, cols, chunks);
  }

  upload(data: Float32Array, rows: number, cols: number): Tensor {
    if (data.length !== rows * cols) throw new Error(`upload: ${data.length} values for [${rows}, ${cols}]`);
    return new GpuTensor(rows, cols, this.fresh(data));
  }

  async read(x: Tensor): Promise<Float32Array> {
    const { rows, cols, buffer } = gpu(x);
    const bytes = rows * cols * 4;
    const staging = this.createBuffer({ size: Math.max(4, bytes), usage: USAGE.read });
    this.endPass();
    if (bytes > 0) this.commands().copyBufferToBuffer(buffer, 0, staging, 0, bytes);
    this.flush();
    await staging.mapAsync(MAP_READ);
    const out = new Float32Array(staging.getMappedRange().slice(0, bytes));
    staging.unmap();
    this.destroyBuffer(staging);
    this.throwIfFailed();
    return out;
  }

  release(x: Tensor): void {
    const { buffer } = gpu(x);
    const size = buffer.size;
    if (this.pooledBytes + size > POOL_LIMIT_BYTES) {
      this.garbage.push(buffer);
      return;
    }
    let list = this.pool.get(size);
    if (!list) this.pool.set(size, (list = []));
    list.push(buffer);
    this.pooledBytes += size;
  }

  /** Submit what is recorded and give every GPU resource back; the backend is unusable afterwards. */
  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.flush();
    this.device.destroy();
  }

  // ---- kernels ----

  gatherRows(x: Tensor, rows: Int32Array): Tensor {
    const { cols } = x;
    this.bindable('gatherRows', x, rows.length * cols);
    const out = this.tensor(rows.length, cols);
    const index = this.fresh(rows, true);
    this.run('gather', GATHER_ROWS, [index, gpu(x).buffer, out.buffer], [rows.length * cols, cols], rows.length * cols);
    return out;
  }

  embed(ids: Int32Array, table: Weight): Tensor {
    const t = gpuWeight(table);
    this.bindable('embed', null, ids.length * t.cols);
    const out = this.tensor(ids.length, t.cols);
    const index = this.fresh(ids, true);
    const n = ids.length * t.cols;
    for (const c of t.chunks) {
      this.run(`embed.${t.dtype}`, embedKernel(t.dtype), [index, out.buffer, c.buffer], [n, t.cols, c.row0, c.rows], n);
    }
    return out;
  }

  rmsNorm(x: Tensor, w: Weight, eps: number): Tensor {
    const { rows, cols } = x;
    const width = rmsNormWidth(x, w);
    this.bindable('rmsNorm', x);
    const gain = gpuWeight(w);
    const out = this.tensor(rows, cols);
    const runs = (rows * cols) / width;
    if (runs === 0) return out;
    const [gx, gy] = grid(runs);
    this.dispatch(`rms.${gain.dtype}`, rmsNormKernel(gain.dtype), [gpu(x).buffer, out.buffer, gain.chunks[0].buffer], [runs, width, f32bits(eps)], gx, gy);
    return out;
  }

  matmul(x: Tensor, w: Weight): Tensor {
    const wt = gpuWeight(w);
    if (wt.cols !== x.cols) throw new Error(`matmul: x has ${x.cols} columns, ${wt.name} expects ${wt.cols}`);
    const out = this.tensor(x.rows, wt.rows);
    this.matmulInto('plain', x.rows, wt, null, gpu(x).buffer, out.buffer, wt.rows, [], 0);
    return out;
  }

  addBiasInPlace(x: Tensor, bias: Weight): void {
    const b = gpuWeight(bias);
    if (b.shape.length !== 1 || b.shape[0] !== x.cols) throw new Error(`addBiasInPlace: ${b.name} [${b.shape}] for ${x.cols} columns`);
    this.elementwise(`bias.${b.dtype}`, biasKernel(b.dtype), [x], [b.chunks[0].buffer], (base, n) => [n, x.cols, base]);
  }

  clampInPlace(x: Tensor, limit: number): void {
    this.elementwise('clamp', CLAMP, [x], [], (_, n) => [n, f32bits(limit)]);
  }

  scaleInPlace(x: Tensor, factor: number): void {
    this.elementwise('scale', SCALE, [x], [], (_, n) => [n, f32bits(factor)]);
  }

  addInPlace(x: Tensor, y: Tensor): void {
    if (y.rows * y.cols !== x.rows * x.cols) throw new Error(`addInPlace: [${x.rows}, ${x.cols}] + [${y.rows}, ${y.cols}]`);
    if (gpu(x).buffer === gpu(y).buffer) {
      this.scaleInPlace(x, 2); // x + x, exactly; WebGPU forbids binding one buffer as both operands of a write
      return;
    }
    this.elementwise('add', ADD, [x, y], [], (_, n) => [n]);
  }

  gatherCols(parts: readonly Tensor[], cols: Int32Array): Tensor {
    const starts = checkGatherCols(parts, cols);
    const rows = parts[0].rows;
    this.bindable('gatherCols', null, rows * cols.length);
    const out = this.tensor(rows, cols.length);
    // One dispatch per part, over the output columns it supplies: (output column, column within the part) pairs.
    const picks: number[][] = parts.map(() => []);
    for (let j = 0; j < cols.length; j++) {
      let p = 0;
      while (cols[j] >= starts[p + 1]) p++;
      picks[p].push(j, cols[j] - starts[p]);
    }
    for (let p = 0; p < parts.length; p++) {
      const count = picks[p].length / 2;
      if (count === 0 || rows === 0) continue;
      this.bindable('gatherCols', parts[p]);
      const index = this.fresh(Int32Array.from(picks[p]), true);
      this.run('gatherCols', GATHER_COLS, [index, gpu(parts[p]).buffer, out.buffer], [rows * count, count, parts[p].cols, cols.length], rows * count);
    }
    return out;
  }

  ropeInPlace(x: Tensor, positions: Int32Array, rotary: Rotary, heads: number, headWidth: number, offset: number): void {
    const pairs = checkRotary(x, rotary, heads, headWidth, offset);
    if (positions.length !== x.rows) throw new Error(`ropeInPlace: ${positions.length} positions for ${x.rows} rows`);
    const n = x.rows * heads * pairs;
    if (n === 0) return;
    this.bindable('ropeInPlace', x);
    const table = this.ropeTable(positions, rotary);
    const [stride, gap] = rotary.pairing === 'half' ? [1, pairs] : [2, 1];
    this.run('rope', ROPE, [gpu(x).buffer, table], [n, heads, pairs, x.cols, headWidth, offset, stride, gap], n);
  }

  createKvStore(batch: number, capacity: number, keyWidth: number, valueWidth: number): KvStore {
    if (![batch, capacity, keyWidth, valueWidth].every((n) => Number.isInteger(n) && n >= 0)) {
      throw new Error(`createKvStore: batch ${batch}, capacity ${capacity}, widths ${keyWidth}/${valueWidth}`);
    }
    const bytes = (width: number) => batch * capacity * width * 4;
    const widest = Math.max(keyWidth, valueWidth);
    if (bytes(widest) > this.maxBindingBytes) {
      throw new RoutelabError('--backend webgpu', `a KV cache of ${batch} × ${capacity} positions × ${widest} needs ${bytes(widest)} bytes per layer, over the device's storage binding limit ${this.maxBindingBytes}; use smaller batches or shorter inputs`);
    }
    const make = (width: number) => this.createBuffer({ size: Math.max(4, bytes(width)), usage: USAGE.storage });
    return new GpuKvStore(batch, capacity, keyWidth, valueWidth, make(keyWidth), make(valueWidth));
  }

  copyKv(from: KvStore, fromRow: number, to: KvStore, toRow: number, positions: number): void {
    const { keys, values } = kvCopyRange(from, fromRow, to, toRow, positions);
    const [src, dst] = [from as GpuKvStore, to as GpuKvStore];
    this.endPass(); // copies are recorded on the encoder, between compute passes, so they stay in order with kernels
    if (keys.length > 0) this.commands().copyBufferToBuffer(src.keys, keys.from * 4, dst.keys, keys.to * 4, keys.length * 4);
    if (values.length > 0) this.commands().copyBufferToBuffer(src.values, values.from * 4, dst.values, values.to * 4, values.length * 4);
  }

  attention(q: Tensor, k: Tensor, v: Tensor, store: KvStore, layout: BatchLayout, shape: AttentionShape): Tensor {
    const kv = store as GpuKvStore;
    checkAttention(q, k, v, kv, shape);
    const { numHeads, numKvHeads, headDim, valueDim, window } = shape;
    if (headDim > ATTENTION_MAX_DIM || valueDim > ATTENTION_MAX_DIM) {
      throw new Error(`attention: head dims ${headDim}/${valueDim} (query-key/value) over ${ATTENTION_MAX_DIM} are not supported by the webgpu kernel`);
    }
    const T = q.rows;
    if (T > MAX_GROUPS) throw new Error(`attention: ${T} tokens in one call; the webgpu kernel takes at most ${MAX_GROUPS}`);
    const oWidth = numHeads * valueDim;
    for (const t of [q, k, v]) this.bindable('attention', t);
    this.bindable('attention', null, T * oWidth);
    const tok = tokenSlots(layout, kv.capacity, T);
    const tokBuffer = this.fresh(tok, true);
    const [KW, VW] = [kv.keyWidth, kv.valueWidth];
    const n = T * (KW + VW);
    this.run('kv', KV_APPEND, [gpu(k).buffer, gpu(v).buffer, kv.keys, kv.values, tokBuffer], [n, KW, VW, kv.capacity], n);
    const out = this.tensor(T, oWidth);
    if (T > 0 && oWidth > 0) {
      const params = [
        numHeads / numKvHeads, headDim, valueDim, numHeads * headDim, oWidth, KW, VW, kv.capacity, f32bits(shape.scale),
        window === null ? 0 : Math.min(window, 0xffffffff),
      ];
      this.dispatch('attention', ATTENTION, [gpu(q).buffer, kv.keys, kv.values, out.buffer, tokBuffer], params, numHeads, T);
    }
    return out;
  }

  moeExperts(x: Tensor, plan: ExpertPlan, experts: readonly ExpertWeights[]): Tensor {
    const { rows: T, cols: H } = x;
    const out = this.tensor(T, H);
    this.endPass();
    this.commands().clearBuffer(out.buffer);
    if (plan.tokens.length === 0) return out;
    const tokens = this.fresh(plan.tokens, true);
    const weights = this.fresh(plan.weights, true);
    // Experts run one after another, each adding its rows into out: the same order of sums as the reference.
    for (let e = 0; e < experts.length; e++) {
      const begin = plan.offsets[e];
      const n = plan.offsets[e + 1] - begin;
      if (n === 0) continue;
      const { gate, up, down } = experts[e];
      const I = gpuWeight(gate).rows;
      const act = this.tensor(n, I);
      this.matmulInto('gateup', n, gpuWeight(gate), gpuWeight(up), gpu(x).buffer, act.buffer, I, [tokens], begin);
      this.matmulInto('scatter', n, gpuWeight(down), null, act.buffer, out.buffer, H, [tokens, weights], begin);
      this.release(act);
    }
    return out;
  }

  /** The logits are read back and scanned on the host: at batch 1 a [1 × V] readback is small next to the matmul. */
  async matmulArgmax(x: Tensor, w: Weight, factor: number): Promise<Int32Array> {
    const logits = this.matmul(x, w);
    if (factor !== 1) this.scaleInPlace(logits, factor);
    const data = await this.read(logits);
    this.release(logits);
    return argmaxRows(data, logits.rows, logits.cols);
  }

  /**
   * Score on the host (the reference's double-precision normaliser, bit for bit) from logits formed and read back a
   * block of rows at a time, so that device and host hold one block of [logitBlockRows(V) × V], never [R × V]; a
   * block's buffer goes back to the pool for the next one.
   */
  async scoreTokens(hidden: Tensor, head: Weight, scale: number, rows: Int32Array, targets: Int32Array): Promise<TokenScores> {
    const wt = gpuWeight(head);
    if (wt.cols !== hidden.cols) throw new Error(`scoreTokens: hidden has ${hidden.cols} columns, ${wt.name} expects ${wt.cols}`);
    const R = hidden.rows;
    const blockRows = logitBlockRows(wt.rows);
    const scorer = new BlockScorer(R, wt.rows, rows, targets);
    for (let r0 = 0; r0 < R; r0 += blockRows) {
      const n = Math.min(blockRows, R - r0);
      if (!scorer.needs(r0, n)) continue;
      const block = this.blockLogits(hidden, head, scale, r0, n);
      const logits = await this.read(block);
      this.release(block);
      scorer.score(logits, r0, n);
    }
    return { logProbs: scorer.logProbs, ranks: scorer.ranks };
  }

  /** fround(scale) · hidden[r0 … r0 + n − 1] · headᵀ: one block of scoring logits, as matmul gives every row. */
  private blockLogits(hidden: Tensor, head: Weight, scale: number, r0: number, n: number): Tensor {
    const x = this.gatherRows(hidden, Int32Array.from({ length: n }, (_, i) => r0 + i));
    const logits = this.matmul(x, head);
    this.release(x);
    if (Math.fround(scale) !== 1) this.scaleInPlace(logits, scale);
    return logits;
  }

  // ---- plumbing ----

  /**
   * One tiled matmul per weight chunk; `extra` are the idx (and weights) buffers of the gathered modes. A plain
   * matmul whose input or output exceeds the storage-binding limit (lm_head logits of many tokens) runs in blocks of
   * rows, each bound as a range of the buffers (blocks of 64 rows keep offsets 256-byte aligned).
   */
  private matmulInto(mode: MatmulMode, T: number, w: GpuWeight, w2: GpuWeight | null, x: GPUBuffer, out: GPUBuffer, outStride: number, extra: GPUBuffer[], rowOff: number): void {
    if (T === 0) return;
    const rowBytes = Math.max(w.cols, outStride) * 4;
    let block = T;
    if (T * rowBytes > this.maxBindingBytes) {
      if (mode !== 'plain') throw new Error(`matmul: ${T} rows of ${rowBytes} bytes exceed the storage binding limit`);
      block = Math.floor(this.maxBindingBytes / rowBytes / 64) * 64;
      if (block === 0) throw new Error(`matmul: a block of 64 rows of ${rowBytes} bytes exceeds the storage binding limit`);
    }
    const maxBlock = Math.floor((MAX_GROUPS * MM_TILE_T) / 64) * 64; // the workgroup-count limit, kept 64-aligned
    if (block > maxBlock) block = maxBlock;
    for (let t0 = 0; t0 < T; t0 += block) {
      const rows = Math.min(block, T - t0);
      const xs: Binding = block === T ? x : { buffer: x, offset: t0 * w.cols * 4, size: rows * w.cols * 4 };
      const os: Binding = block === T ? out : { buffer: out, offset: t0 * outStride * 4, size: rows * outStride * 4 };
      for (let i = 0; i < w.chunks.length; i++) {
        const c = w.chunks[i];
        const buffers: Binding[] = [xs, os, c.buffer, ...extra];
        if (w2) buffers.push(w2.chunks[i].buffer);
        if (mode === 'plain' && rows <= GEMV_MAX_T) {
          this.dispatch(`gemv.${w.dtype}`, gemvKernel(w.dtype), buffers, [rows, w.cols, c.rows, outStride, c.row0], Math.ceil(c.rows / 64), 1);
          continue;
        }
        const params = [rows, w.cols, c.rows, outStride, c.row0, rowOff];
        this.dispatch(`mm.${mode}.${w.dtype}`, matmulKernel(w.dtype, mode), buffers, params, Math.ceil(c.rows / MM_TILE_N), Math.ceil(rows / MM_TILE_T));
      }
    }
  }

  /** cos/sin [T, 2, pairs] of rotaryTables on the device; reused while the positions and the rotary are the same. */
  private ropeTable(positions: Int32Array, rotary: Rotary): GPUBuffer {
    const c = this.ropeCache;
    if (c && c.scaling === rotary.attentionScaling && sameValues(c.positions, positions) && sameValues(c.invFreq, rotary.invFreq)) return c.table;
    if (c) this.garbage.push(c.table);
    const { cos, sin } = rotaryTables(positions, rotary);
    const P = rotary.invFreq.length;
    const data = new Float32Array(positions.length * 2 * P);
    for (let r = 0; r < positions.length; r++) {
      data.set(cos.subarray(r * P, (r + 1) * P), r * 2 * P);
      data.set(sin.subarray(r * P, (r + 1) * P), r * 2 * P + P);
    }
    const table = this.fresh(data);
    this.ropeCache = { positions: positions.slice(), invFreq: rotary.invFreq.slice(), scaling: rotary.attentionScaling, table };
    return table;
  }

  /**
   * Throw a clear error unless tensor `x` (and an output of `outElems` floats) can be bound whole; kernels that
   * cannot run in blocks of rows check this, elementwise ones run in blocks instead.
   */
  private bindable(what: string, x: Tensor | null, outElems = 0): void {
    const bytes = Math.max(x ? x.rows * x.cols * 4 : 0, outElems * 4);
    if (bytes > this.maxBindingBytes) {
      const shape = x && x.rows * x.cols * 4 === bytes ? `a tensor [${x.rows}, ${x.cols}]` : `an output of ${outElems} values`;
      throw new RoutelabError('--backend webgpu', `${what}: ${shape} needs ${bytes} bytes, over the device's storage binding limit ${this.maxBindingBytes}; use smaller batches or shorter inputs`);
    }
  }

  /**
   * An elementwise kernel over every element of `flat` (tensors of one size, bound as bindings 1…, the first
   * written in place), then the whole buffers `fixed`. A tensor over the storage-binding limit (logits of many
   * tokens) runs in blocks, each bound as an aligned range; params(base, n) gets the block's first flat index.
   */
  private elementwise(name: string, code: string, flat: Tensor[], fixed: GPUBuffer[], params: (base: number, n: number) => number[]): void {
    const total = flat[0].rows * flat[0].cols;
    if (total === 0) return;
    const align = this.device.limits.minStorageBufferOffsetAlignment;
    const block = total * 4 <= this.maxBindingBytes ? total : (Math.floor(this.maxBindingBytes / align) * align) / 4;
    for (let base = 0; base < total; base += block) {
      const n = Math.min(block, total - base);
      const buffers: Binding[] = flat.map((t) => (n === total ? gpu(t).buffer : { buffer: gpu(t).buffer, offset: base * 4, size: n * 4 }));
      const [gx, gy] = grid(Math.ceil(n / 256));
      this.dispatch(name, code, [...buffers, ...fixed], params(base, n), gx, gy);
    }
  }

  /** A float32 tensor [rows, cols] whose contents the next kernel overwrites (from the pool when one fits). */
  private tensor(rows: number, cols: number): GpuTensor {
    const size = align16(Math.max(16, rows * cols * 4));
    const reuse = this.pool.get(size)?.pop();
    if (reuse) {
      this.pooledBytes -= size;
      return new GpuTensor(rows, cols, reuse);
    }
    return new GpuTensor(rows, cols, this.createBuffer({ size, usage: USAGE.storage }));
  }

  /** A new buffer holding `data`; a temporary one (an index for one kernel) is destroyed after the next submit. */
  private fresh(data: Float32Array | Int32Array, temporary = false): GPUBuffer {
    const buffer = this.createBuffer({ size: align16(Math.max(16, data.byteLength)), usage: USAGE.storage, mappedAtCreation: true });
    if (data instanceof Float32Array) new Float32Array(buffer.getMappedRange(), 0, data.length).set(data);
    else new Int32Array(buffer.getMappedRange(), 0, data.length).set(data);
    buffer.unmap();
    if (temporary) this.garbage.push(buffer);
    return buffer;
  }

  private run(name: string, code: string, buffers: GPUBuffer[], params: number[], n: number): void {
    if (n === 0) return;
    const [gx, gy] = grid(Math.ceil(n / 256));
    this.dispatch(name, code, buffers, params, gx, gy);
  }

  private dispatch(name: string, code: string, buffers: Binding[], params: number[], gx: number, gy: number): void {
    const pipeline = this.pipeline(name, code);
    const entries: GPUBindGroupEntry[] = [{ binding: 0, resource: { buffer: this.uniform(params) } }];
    buffers.forEach((b, i) => entries.push({ binding: i + 1, resource: 'offset' in b ? b : { buffer: b } }));
    const group = this.device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries });
    const pass = this.computePass();
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, group);
    pass.dispatchWorkgroups(gx, gy);
  }

  private pipeline(name: string, code: string): GPUComputePipeline {
    let p = this.pipelines.get(name);
    if (!p) {
      const module = this.device.createShaderModule({ code, label: name });
      p = this.device.createComputePipeline({ layout: 'auto', compute: { module, entryPoint: 'main' }, label: name });
      this.pipelines.set(name, p);
    }
    return p;
  }

  /** Parameters as a uniform buffer; buffers are immutable and shared by content. */
  private uniform(params: number[]): GPUBuffer {
    const key = params.join(',');
    let buffer = this.uniforms.get(key);
    if (!buffer) {
      if (this.uniforms.size >= UNIFORM_CACHE_LIMIT) {
        for (const b of this.uniforms.values()) this.garbage.push(b);
        this.uniforms.clear();
      }
      buffer = this.createBuffer({ size: align16(Math.max(16, params.length * 4)), usage: USAGE.uniform, mappedAtCreation: true });
      new Uint32Array(buffer.getMappedRange()).set(params);
      buffer.unmap();
      this.uniforms.set(key, buffer);
    }
    return buffer;
  }

  private commands(): GPUCommandEncoder {
    if (this.destroyed) throw new Error('webgpu backend used after destroy()');
    this.encoder ??= this.device.createCommandEncoder();
    return this.encoder;
  }

  private computePass(): GPUComputePassEncoder {
    this.pass ??= this.commands().beginComputePass();
    return this.pass;
  }

  private endPass(): void {
    this.pass?.end();
    this.pass = null;
  }

  private flush(): void {
    this.endPass();
    if (this.encoder) this.device.queue.submit([this.encoder.finish()]);
    this.encoder = null;
    for (const b of this.garbage) this.destroyBuffer(b);
    this.garbage = [];
  }

  private throwIfFailed(): void {
    if (this.error) throw new Error(`webgpu: ${this.error}`);
  }
}

/**
 * Open the first WebGPU adapter Dawn offers (a GPU, or a CPU Vulkan driver such as Mesa ≥ 25 lavapipe) and a
 * device with its largest storage limits. Throws a RoutelabError naming what was looked for when there is none.
 */
export async function createWebGpuBackend(options: WebGpuOptions = {}): Promise<WebGpuBackend> {
  const where = '--backend webgpu';
  let dawn: { create(flags: string[]): GPU; globals: object };
  try {
    const specifier = 'webgpu';
    dawn = (await import(specifier)) as typeof dawn;
  } catch (e) {
    throw new RoutelabError(where, `the \`webgpu\` package (Dawn for Node.js) could not be loaded: ${(e as Error).message}`);
  }
  Object.assign(globalThis, dawn.globals);
  const flags = [...(options.dawnFlags ?? [])];
  const instance = dawn.create(flags);
  let adapter: GPUAdapter | null = null;
  let why = '';
  try {
    adapter = await instance.requestAdapter({ powerPreference: options.powerPreference ?? 'high-performance' });
  } catch (e) {
    why = `: ${(e as Error).message.split('\n').join(' ')}`; // Dawn lists the adapters it saw when a flag names none
  }
  if (!adapter) {
    const looked = process.platform === 'darwin' ? 'Metal' : process.platform === 'win32' ? 'D3D12/Vulkan' : 'Vulkan (a GPU driver, or Mesa ≥ 25 lavapipe as a CPU adapter)';
    throw new RoutelabError(where, `no WebGPU adapter found (looked for ${looked} through Dawn, the \`webgpu\` package${flags.length ? `, flags ${flags.join(' ')}` : ''})${why}; on Linux without a GPU run scripts/install-lavapipe.sh`);
  }
  const l = adapter.limits;
  const device = await adapter.requestDevice({
    requiredLimits: {
      maxStorageBufferBindingSize: l.maxStorageBufferBindingSize,
      maxBufferSize: l.maxBufferSize,
      maxComputeWorkgroupStorageSize: l.maxComputeWorkgroupStorageSize,
      maxStorageBuffersPerShaderStage: l.maxStorageBuffersPerShaderStage,
    },
  });
  const i = adapter.info;
  const name = [i.vendor, i.architecture, i.device, i.description].filter((s) => s).join(' ') || 'unknown adapter';
  return new WebGpuBackend(device, name, options, instance);
}

function gpu(x: Tensor): GpuTensor { return x as GpuTensor; }
function gpuWeight(w: Weight): GpuWeight { return w as GpuWeight; }
function align4(n: number): number { return Math.ceil(n / 4) * 4; }
function align16(n: number): number { return Math.ceil(n / 16) * 16; }

function f32bits(x: number): number {
  return new Uint32Array(Float32Array.of(x).buffer)[0];
}

/** Workgroups as a 2-D grid within the per-dimension limit. */
function grid(groups: number): [number, number] {
  if (groups <= MAX_GROUPS) return [Math.max(1, groups), 1];
  const gy = Math.ceil(groups / MAX_GROUPS);
  return [Math.ceil(groups / gy), gy];
}

function sameValues(a: Int32Array | Float32Array, b: Int32Array | Float32Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (!Object.is(a[i], b[i])) return false;
  return true;
}

/** Per packed token: (sequence, cache position). */
function tokenSlots(layout: BatchLayout, capacity: number, T: number): Int32Array {
  const tok = new Int32Array(Math.max(1, T) * 2);
  const B = layout.starts.length - 1;
  for (let b = 0; b < B; b++) {
    const start = layout.starts[b];
    const len = layout.starts[b + 1] - start;
    if (layout.past[b] + len > capacity) throw new Error(`attention: sequence ${b} needs ${layout.past[b] + len} positions, cache holds ${capacity}`);
    for (let s = 0; s < len; s++) {
      tok[2 * (start + s)] = b;
      tok[2 * (start + s) + 1] = layout.past[b] + s;
    }
  }
  return tok;
}
