/**
 * The webgpu backend against the CPU reference: each kernel on small odd shapes, then the whole model (parity
 * fixture, KV-cache generation, routers with other expert counts). Runs on any WebGPU adapter; CI has Mesa ≥ 25
 * lavapipe (scripts/install-lavapipe.sh). Without an adapter every test is skipped with the reason.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { argmaxRows } from '../src/backends/argmax.js';
import type { AttentionShape, BatchLayout, ExpertWeights, KvStore, Rotary, Tensor, Weight } from '../src/backends/backend.js';
import { BlockScorer, CpuBackend } from '../src/backends/cpu.js';
import { RoutelabError } from '../src/errors.js';
import { createWebGpuBackend, type WebGpuBackend } from '../src/backends/webgpu.js';
import { Checkpoint } from '../src/model/checkpoint.js';
import { MoeModel } from '../src/model/model.js';
import { forwardPadded } from '../src/model/padded.js';
import { SafetensorsFile } from '../src/model/safetensors.js';
import type { WeightDtype } from '../src/model/tensor.js';
import { parseRouterSpec } from '../src/routers/registry.js';
import { assertKvCacheMatchesFullForward, loadCpuModel, maxAbsDiff, parityDir, parityExpected, tempDir, tokenIds } from './helpers.js';

/** The webgpu backend, or why there is none. Weights are split into 4 KiB chunks so the chunked paths run too. */
async function open(): Promise<WebGpuBackend | string> {
  try {
    return await createWebGpuBackend({ weightChunkBytes: 4096 });
  } catch (e) {
    return `no WebGPU adapter: ${(e as Error).message}`;
  }
}
const opened = await open();
const skip = typeof opened === 'string' ? opened : false;
const gpu = opened as WebGpuBackend;
after(() => { if (!skip) gpu.destroy(); });
if (!skip) console.log(`webgpu adapter: ${gpu.adapterName}`);

const cpu = new CpuBackend();
const V = 1024; // parity model vocabulary

/** Deterministic values in [-scale, scale). */
function random(n: number, seed: number, scale = 1): Float32Array {
  let s = seed >>> 0;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = ((s / 2 ** 32) * 2 - 1) * scale;
  }
  return out;
}

/** The same random weight for both backends, stored as `dtype` (BF16/F16 keep the top bits of a float32). */
function weightPair(name: string, shape: number[], seed: number, dtype: WeightDtype, scale = 0.5): [Weight, Weight] {
  const n = shape.reduce((a, b) => a * b, 1);
  const values = random(n, seed, scale);
  let data: Float32Array | Uint16Array = values;
  if (dtype === 'BF16') data = Uint16Array.from(new Uint32Array(values.buffer), (u) => u >>> 16);
  if (dtype === 'F16') data = Uint16Array.from(values, (v) => toHalf(v));
  const stored = { name, dtype, shape, data };
  return [cpu.weight(stored), gpu.weight(stored)];
}

function toHalf(x: number): number {
  const sign = x < 0 ? 0x8000 : 0;
  const a = Math.abs(x);
  if (a < 2 ** -14) return sign | Math.round(a / 2 ** -24);
  const e = Math.floor(Math.log2(a));
  const m = Math.round((a / 2 ** e - 1) * 1024);
  return m === 1024 ? sign | ((e + 16) << 10) : sign | ((e + 15) << 10) | m;
}

function pair(rows: number, cols: number, seed: number, scale = 1): [Tensor, Tensor] {
  const data = random(rows * cols, seed, scale);
  return [cpu.upload(data.slice(), rows, cols), gpu.upload(data.slice(), rows, cols)];
}

async function close(a: Tensor, b: Tensor, tol: number, what: string): Promise<number> {
  const [x, y] = [await cpu.read(a), await gpu.read(b)];
  assert.equal(y.length, x.length, what);
  const diff = maxAbsDiff(x, y);
  assert.ok(diff <= tol, `${what}: max abs diff ${diff} > ${tol}`);
  return diff;
}

/** Rotary frequencies 1/θ^(2i/d) for i < d/2, as float32. */
function rotary(dim: number, theta: number, pairing: Rotary['pairing'], attentionScaling = 1): Rotary {
  const invFreq = Float32Array.from({ length: dim / 2 }, (_, i) => 1 / theta ** ((2 * i) / dim));
  return { invFreq, attentionScaling, pairing };
}

/** The largest difference of each op-level check, printed at the end. */
const maxErrors = new Map<string, number>();
function log(what: string, diff: number): void {
  maxErrors.set(what, Math.max(diff, maxErrors.get(what) ?? 0));
}
after(() => {
  if (maxErrors.size) console.log(`webgpu max abs errors vs cpu:\n${[...maxErrors].map(([k, v]) => `  ${k}: ${v.toExponential(2)}`).join('\n')}`);
});

test('webgpu matmul, embed, gatherRows, rmsNorm agree with the CPU backend (odd shapes, T = 1, chunked weights)', { skip }, async () => {
  for (const dtype of ['BF16', 'F16', 'F32'] as const) {
    for (const [T, K, N] of [[1, 7, 3], [3, 37, 65], [5, 37, 65], [17, 130, 33], [33, 64, 131], [1, 2048, 1]]) {
      const [wc, wg] = weightPair(`w${K}x${N}`, [N, K], T + K + N, dtype);
      const [xc, xg] = pair(T, K, T * 7 + K);
      await close(cpu.matmul(xc, wc), gpu.matmul(xg, wg), 1e-5 * Math.sqrt(K), `matmul ${dtype} [${T},${K}]x[${N},${K}]ᵀ`);
      const [gc, gg] = weightPair('gain', [K], K, dtype, 2);
      await close(cpu.rmsNorm(xc, gc, 1e-5), gpu.rmsNorm(xg, gg, 1e-5), 1e-5, `rmsNorm ${dtype} [${T},${K}]`);
    }
    // Per-head norms (Qwen3's q/k norms): w one head wide normalises each head of the row on its own.
    for (const [T, heads, width] of [[1, 3, 8], [5, 4, 24], [3, 2, 300]]) {
      const [xc, xg] = pair(T, heads * width, T + heads + width, 3);
      const [gc, gg] = weightPair('head_gain', [width], width, dtype, 2);
      const d = await close(cpu.rmsNorm(xc, gc, 1e-6), gpu.rmsNorm(xg, gg, 1e-6), 1e-5, `rmsNorm per head ${dtype} [${T}, ${heads} × ${width}]`);
      log(`rmsNorm per head ${dtype} [${T}, ${heads} × ${width}]`, d);
    }
    const [tc, tg] = weightPair('table', [301, 19], 3, dtype); // 4 KiB chunks: several
    const ids = Int32Array.of(0, 300, 7, 7, 150, 299);
    await close(cpu.embed(ids, tc), gpu.embed(ids, tg), 0, `embed ${dtype}`);
  }
  const [xc, xg] = pair(9, 13, 4);
  const rows = Int32Array.of(8, 0, 3, 3);
  await close(cpu.gatherRows(xc, rows), gpu.gatherRows(xg, rows), 0, 'gatherRows');
});

test('webgpu matmulArgmax is the argmax scan over its own matmul\'s logits (scaled or not)', { skip }, async () => {
  for (const [T, K, N] of [[1, 37, 1001], [3, 64, 65]]) {
    const [, wg] = weightPair(`w${K}x${N}`, [N, K], K + N, 'BF16');
    const [, xg] = pair(T, K, T + K);
    for (const factor of [1, 1 / 3]) {
      const logits = gpu.matmul(xg, wg);
      if (factor !== 1) gpu.scaleInPlace(logits, factor);
      assert.deepEqual(await gpu.matmulArgmax(xg, wg, factor), argmaxRows(await gpu.read(logits), T, N), `[${T},${K}]x[${N},${K}]ᵀ ×${factor}`);
    }
  }
});

test('webgpu matmul whose output exceeds the binding limit runs in blocks of rows (T = 150 → 64 + 64 + 22)', { skip }, async () => {
  const small = await createWebGpuBackend({ maxBindingBytes: 16384 });
  try {
    const data = random(150 * 40, 31);
    const stored = { name: 'w', dtype: 'BF16' as const, shape: [60, 40], data: Uint16Array.from(random(60 * 40, 32), (v) => new Uint32Array(Float32Array.of(v).buffer)[0] >>> 16) };
    const expected = await cpu.read(cpu.matmul(cpu.upload(data.slice(), 150, 40), cpu.weight(stored)));
    const got = await small.read(small.matmul(small.upload(data.slice(), 150, 40), small.weight(stored)));
    assert.ok(maxAbsDiff(got, expected) < 1e-5, `max abs diff ${maxAbsDiff(got, expected)}`);
  } finally {
    small.destroy();
  }
});

test('webgpu elementwise kernels over a tensor beyond the binding limit run in blocks; other kernels refuse it clearly', { skip }, async () => {
  const small = await createWebGpuBackend({ maxBindingBytes: 16384 });
  try {
    const [R, C] = [150, 43]; // 25800 bytes: blocks of 4096 values, whose first elements are not row starts
    const data = random(R * C, 70, 3);
    const other = random(R * C, 71);
    const bias = { name: 'b', dtype: 'BF16' as const, shape: [C], data: Uint16Array.from(random(C, 72), (v) => new Uint32Array(Float32Array.of(v).buffer)[0] >>> 16) };
    const results: Float32Array[] = [];
    for (const be of [cpu, small] as const) {
      const [x, y, b] = [be.upload(data.slice(), R, C), be.upload(other.slice(), R, C), be.weight(bias)];
      be.addInPlace(x, y);
      be.scaleInPlace(x, 1 / 3);
      be.addBiasInPlace(x, b);
      be.clampInPlace(x, 1.2);
      results.push(await be.read(x));
    }
    assert.equal(maxAbsDiff(results[0], results[1]), 0, 'blocked elementwise kernels differ from the CPU backend');
    const x = small.upload(data.slice(), R, C);
    const gain = small.weight({ name: 'g', dtype: 'F32', shape: [C], data: new Float32Array(C).fill(1) });
    assert.throws(() => small.rmsNorm(x, gain, 1e-5), (e: unknown) => e instanceof RoutelabError
      && /rmsNorm: a tensor \[150, 43\] needs 25800 bytes, over the device's storage binding limit 16384/.test(e.message));
  } finally {
    small.destroy();
  }
});

test('webgpu elementwise kernels agree with the CPU backend: add, clamp, scale, bias (BF16, F16, F32)', { skip }, async () => {
  const [xc, xg] = pair(7, 24, 5, 3);
  const [yc, yg] = pair(7, 24, 6);
  cpu.addInPlace(xc, yc);
  gpu.addInPlace(xg, yg);
  await close(xc, xg, 0, 'addInPlace');
  cpu.addInPlace(xc, xc);
  gpu.addInPlace(xg, xg);
  await close(xc, xg, 0, 'addInPlace x + x');
  cpu.clampInPlace(xc, 1.5);
  gpu.clampInPlace(xg, 1.5);
  await close(xc, xg, 0, 'clampInPlace');
  cpu.scaleInPlace(xc, 0.1); // not a float32: both round it
  gpu.scaleInPlace(xg, 0.1);
  await close(xc, xg, 0, 'scaleInPlace 0.1');
  cpu.scaleInPlace(xc, 1 / 0.0625);
  gpu.scaleInPlace(xg, 1 / 0.0625);
  await close(xc, xg, 0, 'scaleInPlace 16');
  for (const dtype of ['BF16', 'F16', 'F32'] as const) {
    const [bc, bg] = weightPair(`bias.${dtype}`, [24], 40, dtype, 2);
    cpu.addBiasInPlace(xc, bc);
    gpu.addBiasInPlace(xg, bg);
    await close(xc, xg, 0, `addBiasInPlace ${dtype}`);
    const [wc, wg] = weightPair('wrong', [23], 41, dtype);
    assert.throws(() => gpu.addBiasInPlace(xg, wg), /addBiasInPlace: wrong \[23\] for 24 columns/);
    assert.throws(() => cpu.addBiasInPlace(xc, wc), /addBiasInPlace/);
  }
  // A bias over rows of 301 columns (rows and workgroups of 256 do not line up).
  const [rc, rg] = pair(3, 301, 42);
  const [bc, bg] = weightPair('bias301', [301], 43, 'BF16');
  cpu.addBiasInPlace(rc, bc);
  gpu.addBiasInPlace(rg, bg);
  await close(rc, rg, 0, 'addBiasInPlace [3, 301]');
});

test('webgpu gatherCols takes columns of the side-by-side concatenation of parts', { skip }, async () => {
  const [ac, ag] = pair(6, 10, 50);
  const [bc, bg] = pair(6, 7, 51);
  for (const cols of [Int32Array.of(12, 0, 9, 10, 16, 3, 3, 11), Int32Array.of(10, 11, 12), Int32Array.of(4), Int32Array.from({ length: 17 }, (_, i) => 16 - i)]) {
    await close(cpu.gatherCols([ac, bc], cols), gpu.gatherCols([ag, bg], cols), 0, `gatherCols [${cols}]`);
  }
  // The split-and-reassemble of multi-head latent attention: per head, 5 columns of a then 3 of b.
  const heads = 2;
  const cols = Int32Array.from({ length: heads * 8 }, (_, i) => {
    const [h, j] = [Math.floor(i / 8), i % 8];
    return j < 5 ? h * 5 + j : 10 + h * 3 + (j - 5);
  });
  await close(cpu.gatherCols([ac, bc], cols), gpu.gatherCols([ag, bg], cols), 0, 'gatherCols MLA heads');
  await close(cpu.gatherCols([ac], Int32Array.of(1, 2)), gpu.gatherCols([ag], Int32Array.of(1, 2)), 0, 'gatherCols one part');
  assert.throws(() => gpu.gatherCols([ag, bg], Int32Array.of(17)), /gatherCols: column 17 of 17/);
  const [, short] = pair(5, 7, 52);
  assert.throws(() => gpu.gatherCols([ag, short], Int32Array.of(0)), /gatherCols: part 1 has 5 rows/);
});

test('webgpu ropeInPlace agrees with the CPU backend: both pairings, offsets, partial rotary, attention scaling', { skip }, async () => {
  const positions = Int32Array.of(0, 1, 2, 3000, 4, 5, 17);
  const cases: [string, Rotary, number, number, number, number][] = [
    // name, rotary, heads, headWidth, offset, columns of x
    ['half, whole head', rotary(8, 10000, 'half'), 3, 8, 0, 24],
    ['adjacent, whole head', rotary(8, 10000, 'adjacent'), 3, 8, 0, 24],
    ['half, offset 5 of 20, scaling 1.3', rotary(8, 500000, 'half', 1.3), 3, 20, 5, 60],
    ['adjacent, offset 16 of 24 (MLA rope part), scaling 0.7', rotary(8, 10000, 'adjacent', 0.7), 2, 24, 16, 48],
    ['adjacent, offset 3 of 12, 2 heads of a wider row', rotary(4, 10000, 'adjacent', 1.1), 2, 12, 3, 31],
  ];
  for (const [name, rot, heads, headWidth, offset, cols] of cases) {
    const seed = cols + offset;
    const [xc, xg] = pair(positions.length, cols, seed, 3);
    cpu.ropeInPlace(xc, positions, rot, heads, headWidth, offset);
    gpu.ropeInPlace(xg, positions, rot, heads, headWidth, offset);
    log(`ropeInPlace ${name}`, await close(xc, xg, 2e-6, `ropeInPlace ${name}`));
    // Columns outside the rotary ones are untouched.
    const [before, got] = [random(positions.length * cols, seed, 3), await gpu.read(xg)];
    for (let r = 0; r < positions.length; r++) {
      for (let c = 0; c < cols; c++) {
        const inRotary = Math.floor(c / headWidth) < heads && c % headWidth >= offset && c % headWidth < offset + 2 * rot.invFreq.length;
        if (!inRotary) assert.equal(got[r * cols + c], before[r * cols + c], `${name}: column ${c} of row ${r} changed`);
      }
    }
  }
  // The cached cos/sin table must follow a change of positions or of the rotary itself.
  const [xc, xg] = pair(positions.length, 24, 60);
  for (const rot of [rotary(8, 10000, 'half'), rotary(8, 10000, 'half', 2), rotary(8, 1000, 'half')]) {
    for (const pos of [positions, positions.map((p) => p + 1)]) {
      cpu.ropeInPlace(xc, pos, rot, 3, 8, 0);
      gpu.ropeInPlace(xg, pos, rot, 3, 8, 0);
    }
  }
  log('ropeInPlace after table changes', await close(xc, xg, 1e-5, 'ropeInPlace after table changes'));
  const [, bad] = pair(3, 24, 61);
  assert.throws(() => gpu.ropeInPlace(bad, Int32Array.of(0, 1, 2), rotary(8, 10000, 'half'), 3, 8, 1), /ropeInPlace: 3 heads of width 8/);
  assert.throws(() => gpu.ropeInPlace(bad, Int32Array.of(0, 1), rotary(8, 10000, 'half'), 3, 8, 0), /ropeInPlace: 2 positions for 3 rows/);
});

/**
 * Prefill of three packed sequences (lengths first, 1, 9), one step each, 5 tokens for sequence 1 only; then the
 * context of sequence 0 copied into another store and continued there by one token, on both backends.
 */
async function attentionSteps(shape: AttentionShape, first: number, tol: number, what: string): Promise<void> {
  const KW = shape.numKvHeads * shape.headDim;
  const VW = shape.numKvHeads * shape.valueDim;
  const capacity = first + 10;
  const cs = cpu.createKvStore(3, capacity, KW, VW);
  const gs = gpu.createKvStore(3, capacity, KW, VW);
  assert.deepEqual([gs.keyWidth, gs.valueWidth], [KW, VW]);
  const steps: BatchLayout[] = [
    { starts: Int32Array.of(0, first, first + 1, first + 10), past: Int32Array.of(0, 0, 0) },
    { starts: Int32Array.of(0, 1, 2, 3), past: Int32Array.of(first, 1, 9) },
    { starts: Int32Array.of(0, 0, 5, 5), past: Int32Array.of(first + 1, 2, 10) },
  ];
  const step = async (c: KvStore, g: KvStore, layout: BatchLayout, seed: number, name: string) => {
    const T = layout.starts[layout.starts.length - 1];
    const [qc, qg] = pair(T, shape.numHeads * shape.headDim, seed, 2);
    const [kc, kg] = pair(T, KW, seed + 1, 2);
    const [vc, vg] = pair(T, VW, seed + 2);
    const [oc, og] = [cpu.attention(qc, kc, vc, c, layout, shape), gpu.attention(qg, kg, vg, g, layout, shape)];
    assert.deepEqual([og.rows, og.cols], [T, shape.numHeads * shape.valueDim]);
    log(what, await close(oc, og, tol, `${what}: ${name}`));
  };
  for (const [i, layout] of steps.entries()) await step(cs, gs, layout, 10 * i, `step ${i}`);
  const [cs2, gs2] = [cpu.createKvStore(2, capacity, KW, VW), gpu.createKvStore(2, capacity, KW, VW)];
  cpu.copyKv(cs, 0, cs2, 1, first + 1);
  gpu.copyKv(gs, 0, gs2, 1, first + 1);
  await step(cs2, gs2, { starts: Int32Array.of(0, 0, 1), past: Int32Array.of(0, first + 1) }, 90, 'after copyKv');
}

test('webgpu attention (packed sequences, KV cache past, GQA) agrees with the CPU backend', { skip }, async () => {
  await attentionSteps({ numHeads: 4, numKvHeads: 2, headDim: 12, valueDim: 12, scale: 1 / Math.sqrt(12), window: null }, 70, 2e-6, 'attention GQA');
});

test('webgpu attention with a value head narrower or wider than the query-key head and its own scale', { skip }, async () => {
  await attentionSteps({ numHeads: 4, numKvHeads: 1, headDim: 24, valueDim: 12, scale: 0.0625, window: null }, 70, 2e-6, 'attention hd 24, vd 12, scale 1/16');
  await attentionSteps({ numHeads: 2, numKvHeads: 2, headDim: 8, valueDim: 20, scale: 0.3, window: null }, 66, 2e-6, 'attention hd 8, vd 20, scale 0.3');
});

test('webgpu attention with a sliding window agrees with the CPU backend (prefill and cached steps)', { skip }, async () => {
  await attentionSteps({ numHeads: 4, numKvHeads: 2, headDim: 12, valueDim: 12, scale: 1 / Math.sqrt(12), window: 5 }, 20, 2e-6, 'attention window 5');
  await attentionSteps({ numHeads: 2, numKvHeads: 1, headDim: 16, valueDim: 8, scale: 0.25, window: 70 }, 100, 2e-6, 'attention window 70 over 100, vd 8');
  await attentionSteps({ numHeads: 2, numKvHeads: 1, headDim: 16, valueDim: 16, scale: 0.25, window: 1 }, 9, 2e-6, 'attention window 1');
  const [q, k, v] = [pair(2, 24, 1)[1], pair(2, 12, 2)[1], pair(2, 12, 3)[1]];
  const store = gpu.createKvStore(1, 4, 12, 12);
  const layout = { starts: Int32Array.of(0, 2), past: Int32Array.of(0) };
  assert.throws(() => gpu.attention(q, k, v, store, layout, { numHeads: 2, numKvHeads: 1, headDim: 12, valueDim: 12, scale: 1, window: 0 }), /attention: .*window 0/);
  assert.throws(() => gpu.attention(q, k, v, store, layout, { numHeads: 2, numKvHeads: 1, headDim: 12, valueDim: 6, scale: 1, window: null }), /attention: /);
});

test('webgpu moeExperts agrees with the CPU backend (variable experts per token, empty experts)', { skip }, async () => {
  const T = 11, H = 20, I = 13, E = 5;
  for (const dtype of ['BF16', 'F32'] as const) {
    const experts: [ExpertWeights, ExpertWeights][] = [];
    for (let e = 0; e < E; e++) {
      const [gc, gg] = weightPair(`g${e}`, [I, H], 100 + e, dtype);
      const [uc, ug] = weightPair(`u${e}`, [I, H], 200 + e, dtype);
      const [dc, dg] = weightPair(`d${e}`, [H, I], 300 + e, dtype);
      experts.push([{ gate: gc, up: uc, down: dc }, { gate: gg, up: ug, down: dg }]);
    }
    // Expert 0: tokens 0..10; expert 1: none; expert 2: token 3; expert 3: odd tokens; expert 4: none. Token 4 gets 1.
    const lists = [[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10], [], [3], [1, 3, 5, 7, 9], []];
    const offsets = new Int32Array(E + 1);
    lists.forEach((l, e) => { offsets[e + 1] = offsets[e] + l.length; });
    const tokens = Int32Array.from(lists.flat());
    const weights = random(tokens.length, 9).map(Math.abs);
    const plan = { offsets, tokens, weights };
    const [xc, xg] = pair(T, H, 11);
    await close(cpu.moeExperts(xc, plan, experts.map((p) => p[0])), gpu.moeExperts(xg, plan, experts.map((p) => p[1])), 1e-5, `moeExperts ${dtype}`);
    const none = { offsets: new Int32Array(E + 1), tokens: new Int32Array(0), weights: new Float32Array(0) };
    await close(cpu.moeExperts(xc, none, experts.map((p) => p[0])), gpu.moeExperts(xg, none, experts.map((p) => p[1])), 0, 'moeExperts no tokens');
  }
});

function gpuModel(dir = parityDir): MoeModel {
  return MoeModel.load(Checkpoint.open(dir), gpu);
}

test('tiny-olmoe on webgpu matches the Hugging Face reference (1e-3) and the CPU backend, bit-reproducibly', { skip }, async () => {
  const expected = SafetensorsFile.open(parityExpected);
  const ids = expected.readArray('input_ids', 'I64');
  const [B, S] = expected.entry('input_ids').shape;
  const sequences = Array.from({ length: B }, (_, b) => Array.from(ids.subarray(b * S, (b + 1) * S), Number));
  const model = gpuModel();
  const out = await forwardPadded(model, sequences);
  const hfDiff = maxAbsDiff(out.logits, expected.readArray('logits', 'F32'));
  const routerDiff = maxAbsDiff(out.routerLogits, expected.readArray('router_logits', 'F32'));
  const ref = await forwardPadded(loadCpuModel(parityDir), sequences);
  const cpuDiff = maxAbsDiff(out.logits, ref.logits);
  assert.ok(hfDiff < 1e-3, `logits vs HF: max abs diff ${hfDiff}`);
  assert.ok(routerDiff < 1e-3, `router logits vs HF: max abs diff ${routerDiff}`);
  assert.ok(cpuDiff < 1e-4, `logits vs cpu: max abs diff ${cpuDiff}`);
  assert.deepEqual(out.expertCounts, ref.expertCounts);
  const again = await forwardPadded(model, sequences);
  assert.deepEqual(again.logits, out.logits, 'two runs differ');
  console.log(`webgpu parity: logits vs HF ${hfDiff.toExponential(2)}, router logits vs HF ${routerDiff.toExponential(2)}, logits vs cpu ${cpuDiff.toExponential(2)}`);
});

test('webgpu scoreTokens gives the log-probabilities and ranks of the CPU backend', { skip }, async () => {
  const ids = [tokenIds(12, V, 14), tokenIds(7, V, 15)];
  const score = { rows: Int32Array.of(0, 3, 3, 18), targets: Int32Array.of(5, 0, 1023, 77) };
  const g = (await gpuModel().forward(ids, { score })).scores!;
  const c = (await loadCpuModel(parityDir).forward(ids, { score })).scores!;
  assert.deepEqual(g.ranks, c.ranks);
  assert.ok(maxAbsDiff(g.logProbs, c.logProbs) < 1e-4, `logProbs max abs diff ${maxAbsDiff(g.logProbs, c.logProbs)}`);
});

test('webgpu scoreTokens scores, block by block, exactly the logits its matmul gives (scaled, repeated rows)', { skip }, async () => {
  // 200 rows at V = 50,304: blocks of 166 and 34 rows, each formed, read back and scored on the host in turn.
  const [R, K, Vb] = [200, 8, 50304];
  const [, head] = weightPair('head', [Vb, K], 31, 'BF16');
  const [, hidden] = pair(R, K, 32);
  const rows = Int32Array.from({ length: R + 17 }, (_, i) => (i * 53) % R);
  const targets = Int32Array.from(rows, (_, i) => (i * 7919 + 1) % Vb);
  for (const scale of [1, 0.4]) {
    const got = await gpu.scoreTokens(hidden, head, scale, rows, targets);
    const logits = gpu.matmul(hidden, head);
    if (scale !== 1) gpu.scaleInPlace(logits, scale);
    const want = new BlockScorer(R, Vb, rows, targets);
    want.score(await gpu.read(logits), 0, R);
    gpu.release(logits);
    assert.deepEqual(got.ranks, want.ranks, `scale ${scale}`);
    assert.deepEqual(got.logProbs, want.logProbs, `scale ${scale}`);
  }
});

test('webgpu generation with a KV cache gives the logits of a full forward pass', { skip }, async () => {
  await assertKvCacheMatchesFullForward(gpuModel(), V);
});

test('routers with other expert counts on webgpu choose what they choose on CPU: topk k=16, topp, bh', { skip }, async () => {
  const gm = gpuModel();
  const cm = loadCpuModel(parityDir);
  const ids = [tokenIds(16, V, 12), tokenIds(9, V, 13)];
  const x = Array.from({ length: 161 }, (_, i) => -8 + i * 0.1);
  const cdf = x.map((v) => 0.5 * (1 + erf(v / Math.SQRT2)));
  const nullFile = join(tempDir(), 'null.json');
  writeFileSync(nullFile, JSON.stringify({ format: 'routelab.null/1', layers: [{ x, cdf }, { x, cdf }], meta: {} }));
  for (const spec of ['topk:k=16,renormalize=true', 'topp:p=0.5,max_k=20', `bh:alpha=0.3,max_k=12,min_k=2,null=${nullFile}`]) {
    const g = await forwardPadded(gm, ids, parseRouterSpec(spec, gm.routerDefaults));
    const c = await forwardPadded(cm, ids, parseRouterSpec(spec, cm.routerDefaults));
    assert.deepEqual(g.expertCounts, c.expertCounts, spec);
    const diff = maxAbsDiff(g.logits, c.logits);
    assert.ok(diff < 1e-4, `${spec}: logits max abs diff ${diff}`);
  }
});

function erf(x: number): number {
  const t = 1 / (1 + 0.3275911 * Math.abs(x));
  const y = 1 - ((((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496735) * t + 0.254829592) * t * Math.exp(-x * x);
  return Math.sign(x) * y;
}

test('webgpu accounts its device memory: weights, then activations on top; host backends report none', { skip }, async () => {
  const be = await createWebGpuBackend();
  try {
    const before = be.deviceMemory();
    be.weight({ name: 'w', dtype: 'BF16', shape: [64, 32], data: new Uint16Array(64 * 32) });
    const withWeight = be.deviceMemory();
    assert.ok(withWeight.bytes >= before.bytes + 64 * 32 * 2, `${before.bytes} → ${withWeight.bytes}`);
    const x = be.upload(random(8 * 32, 2), 8, 32);
    await be.read(x); // the staging buffer is created and destroyed: live bytes return, the peak keeps it
    const after = be.deviceMemory();
    assert.ok(after.peakBytes >= after.bytes + 8 * 32 * 4 && after.bytes >= withWeight.bytes + 8 * 32 * 4);
  } finally {
    be.destroy();
  }
  assert.equal(cpu.deviceMemory(), null);
});

test('no usable adapter is one clear error naming what was looked for', async () => {
  await assert.rejects(createWebGpuBackend({ dawnFlags: ['adapter=no-such-adapter'] }), (e: unknown) =>
    e instanceof RoutelabError && /--backend webgpu: (no WebGPU adapter found \(looked for .+\)|the `webgpu` package .* could not be loaded)/.test(e.message));
});
