import assert from 'node:assert/strict';
import { test } from 'node:test';
import { argmaxRows } from '../src/backends/argmax.js';
import type { AttentionShape, Backend, ExpertWeights, KvStore, Rotary, Tensor, Weight } from '../src/backends/backend.js';
import { BlockScorer, CpuBackend } from '../src/backends/cpu.js';
import { createFastBackend, loadNativeKernels, NativeBackend } from '../src/backends/native.js';
import { Checkpoint } from '../src/model/checkpoint.js';
import { MoeModel } from '../src/model/model.js';
import { forwardPadded } from '../src/model/padded.js';
import { SafetensorsFile } from '../src/model/safetensors.js';
import type { StoredTensor, WeightDtype } from '../src/model/tensor.js';
import { generate } from '../src/generate.js';
import { greedy } from '../src/sampling.js';
import { gutenbergDir, maxAbsDiff, parityDir, parityExpected } from './helpers.js';

// The native kernels against the pure-TypeScript reference on random shapes (odd sizes, n = 1, both the
// dot-product path for few rows and the packed path for many). Skipped, with the reason, where the addon is absent.
const kernels = loadNativeKernels();
const skip = kernels instanceof Error ? kernels.message : false;
const ref = new CpuBackend();

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32 - 0.5;
  };
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** A random weight in the given storage dtype (values of magnitude ≲ 0.5). */
function randomWeight(name: string, dtype: WeightDtype, shape: number[], seed: number): StoredTensor {
  const r = rng(seed);
  const n = shape.reduce((a, b) => a * b, 1);
  if (dtype === 'F32') return { name, dtype, shape, data: Float32Array.from({ length: n }, r) };
  const data = new Uint16Array(n);
  for (let i = 0; i < n; i++) {
    if (dtype === 'BF16') {
      f32[0] = r();
      data[i] = u32[0] >>> 16;
    } else {
      // float16: random sign, exponent 9 … 14 (2^-6 … 2^-1), random mantissa
      const v = r();
      data[i] = (v < 0 ? 0x8000 : 0) | ((9 + Math.floor(Math.abs(v) * 12)) << 10) | Math.floor((v + 0.5) * 1023);
    }
  }
  return { name, dtype, shape, data };
}

function randomTensor(be: Backend, rows: number, cols: number, seed: number): Tensor {
  const r = rng(seed);
  return be.upload(Float32Array.from({ length: rows * cols }, () => 2 * r()), rows, cols);
}

/** Largest |a − b| relative to the largest |b| (1 when b is all zero). */
function relDiff(a: Float32Array, b: Float32Array): number {
  let scale = 0;
  for (const v of b) scale = Math.max(scale, Math.abs(v));
  return maxAbsDiff(a, b) / Math.max(scale, 1e-30);
}

async function both(fn: (be: Backend) => Tensor, native: Backend): Promise<[Float32Array, Float32Array]> {
  return [await native.read(fn(native)), await ref.read(fn(ref))];
}

/** The usual attention shape: value heads as wide as key heads, scale 1/√hd, no window. */
function plainShape(numHeads: number, numKvHeads: number, headDim: number): AttentionShape {
  return { numHeads, numKvHeads, headDim, valueDim: headDim, scale: 1 / Math.sqrt(headDim), window: null };
}

/** The starts of packed sequences of these lengths. */
function startsOf(lens: readonly number[]): Int32Array {
  const starts = new Int32Array(lens.length + 1);
  lens.forEach((n, b) => { starts[b + 1] = starts[b] + n; });
  return starts;
}

/**
 * Run attention steps (per step, the new tokens of each sequence) on both backends from empty stores, each step on
 * top of the cache the previous ones left, and require every step's output to agree (relative 1e-5).
 */
async function compareAttention(native: Backend, shape: AttentionShape, steps: readonly (readonly number[])[], capacity: number, label: string): Promise<Float32Array[]> {
  const { numHeads: nh, numKvHeads: nkv, headDim: hd, valueDim: vd } = shape;
  const B = steps[0].length;
  const stores: [KvStore, KvStore] = [native.createKvStore(B, capacity, nkv * hd, nkv * vd), ref.createKvStore(B, capacity, nkv * hd, nkv * vd)];
  let past = new Int32Array(B);
  const outputs: Float32Array[] = [];
  for (const [i, step] of steps.entries()) {
    const starts = startsOf(step);
    const T = starts[B];
    const layout = { starts, past };
    const seed = 1000 * i + T + hd + 7 * vd;
    const [got, want] = await both((be) => be.attention(
      randomTensor(be, T, nh * hd, seed), randomTensor(be, T, nkv * hd, seed + 1), randomTensor(be, T, nkv * vd, seed + 2),
      be === native ? stores[0] : stores[1], layout, shape,
    ), native);
    assert.equal(got.length, T * nh * vd, `${label}, step ${i}: output size`);
    assert.ok(relDiff(got, want) < 1e-5, `${label}, step ${i}: ${relDiff(got, want)}`);
    outputs.push(got);
    past = Int32Array.from(past, (p, b) => p + step[b]);
  }
  return outputs;
}

test('native matmul agrees with the reference (BF16/F16/F32, odd shapes, n = 1)', { skip }, async () => {
  for (const threads of [1, 2]) {
    const be = new NativeBackend({ threads });
    let seed = 1;
    for (const dtype of ['BF16', 'F16', 'F32'] as const) {
      for (const [T, K, N] of [[1, 1, 1], [1, 64, 37], [2, 7, 3], [5, 300, 17], [23, 67, 130], [24, 64, 16], [25, 520, 33], [61, 257, 129], [130, 96, 300]]) {
        const w = be.weight(randomWeight('w', dtype, [N, K], seed++));
        const rw = ref.weight(randomWeight('w', dtype, [N, K], seed - 1));
        const x = randomTensor(be, T, K, seed++);
        const got = await be.read(be.matmul(x, w));
        const want = await ref.read(ref.matmul(x, rw));
        assert.equal(got.length, T * N);
        const d = relDiff(got, want);
        assert.ok(d < 2e-6, `${dtype} [${T}×${K}]·[${N}×${K}]ᵀ, ${threads} thread(s): relative diff ${d}`);
      }
    }
  }
});

/** The scan every backend's matmulArgmax must reproduce, over the logits the same backend's matmul gives. */
async function argmaxOfMatmul(be: Backend, x: Tensor, w: Weight, factor: number): Promise<Int32Array> {
  const logits = be.matmul(x, w);
  if (factor !== 1) be.scaleInPlace(logits, factor);
  return argmaxRows(await be.read(logits), logits.rows, logits.cols);
}

test('native matmulArgmax picks exactly the argmax of native matmul\'s logits (random, odd shapes, K > 512, 1–2 threads)', { skip }, async () => {
  for (const threads of [1, 2]) {
    const be = new NativeBackend({ threads });
    let seed = 500;
    for (const dtype of ['BF16', 'F16', 'F32'] as const) {
      for (const [T, K, N] of [[1, 1, 1], [1, 64, 37], [1, 128, 50304], [3, 7, 3], [2, 520, 1001], [5, 300, 4099], [100, 96, 300]]) {
        const w = be.weight(randomWeight('w', dtype, [N, K], seed++));
        const x = randomTensor(be, T, K, seed++);
        for (const factor of [1, 1 / 7]) {
          const got = await be.matmulArgmax(x, w, factor);
          assert.deepEqual(got, await argmaxOfMatmul(be, x, w, factor), `${dtype} [${T}×${K}]·[${N}×${K}]ᵀ ×${factor}, ${threads} thread(s)`);
        }
      }
    }
  }
});

test('native matmulArgmax resolves ties to the lowest index and treats NaN and ±Infinity as the scan does', { skip }, async () => {
  for (const threads of [1, 2]) {
    const be = new NativeBackend({ threads });
    const K = 8;
    for (const N of [5, 3000, 50304]) {
      // Weights of a few exact values and small-integer inputs: the dot products are exact, and many rows tie.
      const r = rng(N);
      const wData = Float32Array.from({ length: N * K }, () => Math.round(4 * r()) / 2);
      const w = be.weight({ name: 'w', dtype: 'F32', shape: [N, K], data: wData });
      const rows = [
        Float32Array.from({ length: K }, () => Math.round(4 * r())), // ties among the largest
        new Float32Array(K), // every logit 0: index 0
        Float32Array.of(Infinity, 0, 0, 0, 0, 0, 0, 0), // ±Infinity, and NaN where the weight is 0
        Float32Array.of(NaN, 0, 0, 0, 0, 0, 0, 0), // every logit NaN: index 0
        Float32Array.of(-Infinity, 1, 0, 0, 0, 0, 0, 0), // −Infinity and NaN
      ];
      const x = be.upload(Float32Array.from(rows.flatMap((row) => [...row])), rows.length, K);
      const got = await be.matmulArgmax(x, w, 1);
      const want = await argmaxOfMatmul(be, x, w, 1);
      assert.deepEqual(got, want, `N=${N}, ${threads} thread(s)`);
      assert.equal(got[1], 0, 'all ties: the lowest index');
      assert.equal(got[3], 0, 'all NaN: index 0');
      const logits = await be.read(be.matmul(x, w));
      const top = Math.max(...logits.subarray(0, N));
      assert.equal(got[0], logits.subarray(0, N).indexOf(top), 'the first of the tied maxima');
    }
  }
});

test('the reference backend\'s matmulArgmax is the scan over its own logits', async () => {
  const w = ref.weight(randomWeight('w', 'BF16', [300, 40], 3));
  const x = randomTensor(ref, 4, 40, 4);
  for (const factor of [1, 0.3]) assert.deepEqual(await ref.matmulArgmax(x, w, factor), await argmaxOfMatmul(ref, x, w, factor));
});

test('native rmsNorm agrees with the reference', { skip }, async () => {
  const be = new NativeBackend();
  for (const [rows, cols, dtype] of [[1, 1, 'F32'], [3, 7, 'BF16'], [40, 2048, 'BF16'], [5, 130, 'F16']] as const) {
    const w = randomWeight('g', dtype, [cols], rows + cols);
    const x = randomTensor(be, rows, cols, cols);
    const [got, want] = await both((b) => b.rmsNorm(x, b.weight(w), 1e-5), be);
    assert.ok(relDiff(got, want) < 1e-6, `[${rows}×${cols}] ${dtype}: ${relDiff(got, want)}`);
  }
});

test('native per-head rmsNorm (weight one head wide) agrees with the reference', { skip }, async () => {
  const be = new NativeBackend();
  // [rows, heads, head width]: Qwen3-style q/k norms, odd widths, a single head, many narrow runs.
  for (const [rows, heads, width, dtype] of [[5, 4, 24, 'BF16'], [3, 2, 64, 'F32'], [1, 1, 16, 'F16'], [7, 3, 5, 'F32'], [300, 16, 128, 'BF16']] as const) {
    const w = randomWeight('qn', dtype, [width], rows + width);
    const x = randomTensor(be, rows, heads * width, heads * width + rows);
    const [got, want] = await both((b) => b.rmsNorm(x, b.weight(w), 1e-6), be);
    assert.equal(got.length, rows * heads * width);
    assert.ok(relDiff(got, want) < 1e-6, `[${rows}×${heads}·${width}] ${dtype}: ${relDiff(got, want)}`);
  }
  // A weight whose width does not divide the row is refused, with the reference's message.
  const x = randomTensor(be, 2, 10, 3);
  const w = randomWeight('bad', 'F32', [4], 1);
  assert.throws(() => be.rmsNorm(x, be.weight(w), 1e-6), /rmsNorm: bad \[4\] does not divide rows of 10 columns/);
});

test('native attention agrees with the reference (GQA, ragged batch, KV cache continuation, odd head dim)', { skip }, async () => {
  const be = new NativeBackend();
  for (const [nh, nkv, hd] of [[4, 2, 16], [3, 3, 12], [2, 1, 8], [4, 4, 64]]) {
    // Two steps: a prefill, then one more token per sequence on top of the cache.
    await compareAttention(be, plainShape(nh, nkv, hd), [[5, 1, 37], [1, 1, 1]], 50, `nh ${nh} nkv ${nkv} hd ${hd}`);
  }
});

test('native attention with value heads of another width than key heads, and explicit scales', { skip }, async () => {
  const be = new NativeBackend();
  // [nh, nkv, hd, vd, scale]: DeepSeek-style latent attention (q/k 24, v 12), GQA, v wider than k, widths that are
  // no multiple of 8 (the scalar paths), Granite-style scale 1/16, a large scale (sharp softmax).
  for (const [nh, nkv, hd, vd, scale] of [
    [4, 4, 24, 12, 1 / Math.sqrt(24)], [4, 2, 24, 12, 0.0625], [2, 2, 8, 16, 0.3], [3, 1, 7, 5, 0.0625],
    [6, 3, 16, 24, 1.5], [2, 1, 32, 8, 0.01],
  ]) {
    const shape = { numHeads: nh, numKvHeads: nkv, headDim: hd, valueDim: vd, scale, window: null };
    await compareAttention(be, shape, [[5, 1, 37], [1, 1, 1], [3, 9, 2]], 60, `nh ${nh} nkv ${nkv} hd ${hd} vd ${vd} scale ${scale}`);
  }
});

test('native sliding-window attention agrees with the reference (prefill and KV-cache continuation, GQA)', { skip }, async () => {
  const be = new NativeBackend();
  // Prefills longer than the window, one-token steps, then multi-token steps whose queries straddle the window edge.
  const steps = [[5, 1, 37], [1, 1, 1], [3, 20, 2], [1, 1, 1]];
  for (const [nh, nkv, hd, vd, window] of [[4, 2, 16, 16, 4], [4, 4, 24, 12, 1], [3, 1, 7, 5, 3], [2, 2, 8, 8, 16], [8, 2, 32, 32, 9], [2, 1, 8, 8, 64]]) {
    const shape = { numHeads: nh, numKvHeads: nkv, headDim: hd, valueDim: vd, scale: 1 / Math.sqrt(hd), window };
    const label = `nh ${nh} nkv ${nkv} hd ${hd} vd ${vd} window ${window}`;
    const windowed = await compareAttention(be, shape, steps, 70, label);
    if (window < 37) {
      // The window must matter: without it the long sequence's outputs differ.
      const full = await compareAttention(be, { ...shape, window: null }, steps, 70, `${label} (no window)`);
      assert.ok(maxAbsDiff(windowed[0], full[0]) > 1e-3, `${label}: the window changed nothing`);
    }
  }
  // A window covering the whole cache or more is no window (even one beyond int32).
  for (const window of [70, 1000, 2 ** 32 + 5]) {
    const shape = { ...plainShape(4, 2, 16), window };
    const got = await compareAttention(be, shape, steps, 70, `window ${window}`);
    const none = await compareAttention(be, plainShape(4, 2, 16), steps, 70, 'no window');
    got.forEach((g, i) => assert.ok(maxAbsDiff(g, none[i]) === 0, `window ${window}, step ${i}`));
  }
});

test('native attention gives each query the output it gets alone: one long call equals token-by-token steps, bit for bit', { skip }, async () => {
  // A task attends up to 16 queries over blocks of 64 keys, sharing loads between them; every query must still be
  // computed exactly as a one-query step computes it (vector and scalar head widths, value widths of 8 to 72 columns,
  // windows inside and across key blocks, GQA).
  const be = new NativeBackend();
  const T = 150;
  for (const [nh, nkv, hd, vd, window] of [[4, 2, 32, 32, null], [2, 1, 16, 72, 70], [2, 2, 24, 8, 5], [3, 1, 7, 5, null], [2, 2, 8, 12, 131]] as const) {
    const shape = { numHeads: nh, numKvHeads: nkv, headDim: hd, valueDim: vd, scale: 1 / Math.sqrt(hd), window };
    const q = await be.read(randomTensor(be, T, nh * hd, 1));
    const k = await be.read(randomTensor(be, T, nkv * hd, 2));
    const v = await be.read(randomTensor(be, T, nkv * vd, 3));
    const whole = await be.read(be.attention(be.upload(q, T, nh * hd), be.upload(k, T, nkv * hd), be.upload(v, T, nkv * vd),
      be.createKvStore(1, T, nkv * hd, nkv * vd), { starts: Int32Array.of(0, T), past: Int32Array.of(0) }, shape));
    const store = be.createKvStore(1, T, nkv * hd, nkv * vd);
    const rows = (x: Float32Array, w: number, t: number) => be.upload(x.slice(t * w, (t + 1) * w), 1, w);
    for (let t = 0; t < T; t++) {
      const one = await be.read(be.attention(rows(q, nh * hd, t), rows(k, nkv * hd, t), rows(v, nkv * vd, t), store,
        { starts: Int32Array.of(0, 1), past: Int32Array.of(t) }, shape));
      const expected = whole.subarray(t * nh * vd, (t + 1) * nh * vd);
      assert.ok(one.every((x, i) => Object.is(x, expected[i])), `nh ${nh} hd ${hd} vd ${vd} window ${window}: token ${t} differs`);
    }
  }
});

test('native attention continues a context copied with copyKv (separate key and value widths)', { skip }, async () => {
  const be = new NativeBackend();
  const shape = { numHeads: 4, numKvHeads: 2, headDim: 24, valueDim: 12, scale: 0.125, window: 6 };
  const [kW, vW] = [2 * 24, 2 * 12];
  const context = 11;
  const outputs: Float32Array[][] = [];
  for (const b of [be, ref] as Backend[]) {
    const source = b.createKvStore(1, 20, kW, vW);
    b.attention(randomTensor(b, context, 4 * 24, 1), randomTensor(b, context, kW, 2), randomTensor(b, context, vW, 3),
      source, { starts: Int32Array.of(0, context), past: Int32Array.of(0) }, shape);
    const target = b.createKvStore(2, 20, kW, vW);
    b.copyKv(source, 0, target, 0, context);
    b.copyKv(source, 0, target, 1, context);
    const out = b.attention(randomTensor(b, 5, 4 * 24, 4), randomTensor(b, 5, kW, 5), randomTensor(b, 5, vW, 6),
      target, { starts: Int32Array.of(0, 2, 5), past: Int32Array.of(context, context) }, shape);
    outputs.push([await b.read(out)]);
  }
  assert.ok(relDiff(outputs[0][0], outputs[1][0]) < 1e-5, `${relDiff(outputs[0][0], outputs[1][0])}`);
  assert.throws(() => be.copyKv(be.createKvStore(1, 4, kW, vW), 0, be.createKvStore(1, 4, kW, kW), 0, 2), /copyKv: widths 48\/24 into widths 48\/48/);
});

test('native attention refuses bad shapes and overfull caches with clear errors', { skip }, async () => {
  const be = new NativeBackend();
  const shape = { numHeads: 4, numKvHeads: 2, headDim: 8, valueDim: 4, scale: 0.5, window: null };
  const store = be.createKvStore(1, 10, 16, 8);
  const layout = { starts: Int32Array.of(0, 3), past: Int32Array.of(0) };
  const q = randomTensor(be, 3, 32, 1);
  const k = randomTensor(be, 3, 16, 2);
  // v as wide as k, but the shape says value heads of 4.
  assert.throws(() => be.attention(q, k, randomTensor(be, 3, 16, 3), store, layout, shape), /attention: q \[3, 32\], k \[3, 16\], v \[3, 16\]/);
  assert.throws(() => be.attention(q, k, randomTensor(be, 3, 8, 3), store, layout, { ...shape, window: 0 }), /window 0/);
  assert.throws(() => be.attention(q, k, randomTensor(be, 3, 8, 3), store, { starts: layout.starts, past: Int32Array.of(8) }, shape),
    /sequence 0 needs 11 positions, cache holds 10/);
  if (kernels instanceof Error) return;
  const kn = kernels;
  // The addon checks its own arguments too (memory safety does not rest on the TypeScript checks).
  const f = (n: number): Float32Array => new Float32Array(n);
  const args = (): Parameters<typeof kn.attention> => [f(96), f(48), f(24), f(160), f(80), 10, 16, 8, Int32Array.of(0, 3), Int32Array.of(0), 4, 2, 8, 4, 0.5, 0, f(48)];
  kn.attention(...args());
  const bad = (edit: (a: Parameters<typeof kn.attention>) => void, pattern: RegExp): void => {
    const a = args();
    edit(a);
    assert.throws(() => kn.attention(...a), pattern);
  };
  bad((a) => { a[0] = new Float64Array(96) as unknown as Float32Array; }, /attention: q must be a Float32Array/);
  bad((a) => { a[8] = Float32Array.of(0, 3) as unknown as Int32Array; }, /attention: starts must be an Int32Array/);
  bad((a) => { a[7] = 12; }, /bad shapes \(4 heads over 2 kv heads of 8\/4, widths 16\/12\)/);
  bad((a) => { a[4] = f(79); }, /cannot hold 1 sequences of 10 positions/);
  bad((a) => { a[9] = Int32Array.of(8); }, /sequence 0 needs 11 positions, cache holds 10/);
  bad((a) => { a[16] = f(47); }, /3 tokens need q\/k\/v\/out of 96\/48\/24\/48 values/);
  bad((a) => { a[8] = Int32Array.of(-1, 3); }, /starts\[0\] is -1/);
});

test('native delegated element-wise ops agree exactly with the reference (bias, scale, gatherCols, rope)', { skip }, async () => {
  const be = new NativeBackend();
  // In-place ops on identical copies of the same data.
  const pair = (rows: number, cols: number, seed: number): [Tensor, Tensor] => [randomTensor(be, rows, cols, seed), randomTensor(ref, rows, cols, seed)];
  const [xb, rb] = pair(5, 12, 1);
  const bias = randomWeight('b', 'BF16', [12], 2);
  be.addBiasInPlace(xb, be.weight(bias));
  ref.addBiasInPlace(rb, ref.weight(bias));
  assert.deepEqual(await be.read(xb), await ref.read(rb));
  be.scaleInPlace(xb, 0.1);
  ref.scaleInPlace(rb, 0.1);
  assert.deepEqual(await be.read(xb), await ref.read(rb));

  const [p0, p1] = [randomTensor(be, 3, 4, 5), randomTensor(be, 3, 6, 6)];
  const cols = Int32Array.of(9, 0, 4, 4, 3);
  const [got, want] = await both((b) => b.gatherCols([p0, p1], cols), be);
  assert.deepEqual(got, want);

  const positions = Int32Array.of(0, 1, 7, 300);
  for (const [pairing, attentionScaling, heads, headWidth, offset, pairs] of [['half', 1, 2, 8, 0, 4], ['adjacent', 1.2, 3, 10, 4, 3], ['half', 0.9, 2, 12, 2, 4]] as const) {
    const rotary: Rotary = { invFreq: Float32Array.from({ length: pairs }, (_, i) => 10000 ** (-i / pairs)), attentionScaling, pairing };
    const [xn, xr] = pair(4, heads * headWidth + 3, 9);
    be.ropeInPlace(xn, positions, rotary, heads, headWidth, offset);
    ref.ropeInPlace(xr, positions, rotary, heads, headWidth, offset);
    assert.deepEqual(await be.read(xn), await ref.read(xr), `${pairing} offset ${offset}`);
  }
});

test('native moeExperts agrees with the reference (empty experts, 1 token, packed path)', { skip }, async () => {
  for (const dtype of ['BF16', 'F32'] as const) {
    const be = new NativeBackend();
    const H = 40;
    const I = 24;
    const E = 5;
    const T = 70;
    const r = rng(7);
    // Expert 0 serves 1 token, expert 1 none, expert 2 many (packed kernel), experts 3, 4 a handful.
    const served = [[3], [], Array.from({ length: 60 }, (_, i) => i + 5), [0, 1, 2, 69], Array.from({ length: T }, (_, i) => i)];
    const offsets = new Int32Array(E + 1);
    served.forEach((s, e) => { offsets[e + 1] = offsets[e] + s.length; });
    const tokens = Int32Array.from(served.flat());
    const weights = Float32Array.from(tokens, () => r() + 0.5);
    const stored = Array.from({ length: E }, (_, e) => ({
      gate: randomWeight(`g${e}`, dtype, [I, H], 100 + e),
      up: randomWeight(`u${e}`, dtype, [I, H], 200 + e),
      down: randomWeight(`d${e}`, dtype, [H, I], 300 + e),
    }));
    const experts = (b: Backend): ExpertWeights[] => stored.map((s) => ({ gate: b.weight(s.gate), up: b.weight(s.up), down: b.weight(s.down) }));
    const x = randomTensor(be, T, H, 11);
    const plan = { offsets, tokens, weights };
    const [got, want] = await both((b) => b.moeExperts(x, plan, experts(b)), be);
    assert.ok(relDiff(got, want) < 2e-6, `${dtype}: ${relDiff(got, want)}`);
  }
});

test('native scoreTokens agrees with the reference (log-probabilities, ranks with ties, repeated rows)', { skip }, async () => {
  // Coarse hidden states and weights make exact logits (sums of multiples of 1/4) with many ties, whatever the order
  // of summation: both backends see the same logits, so the ranks must agree exactly.
  const native = new NativeBackend();
  const coarse = (n: number, seed: number) => {
    const r = rng(seed);
    return Float32Array.from({ length: n }, () => Math.round(4 * r()) / 2);
  };
  for (const [R, V, K] of [[5, 1, 8], [5, 7, 8], [5, 50304, 8], [130, 333, 4]]) {
    const head: StoredTensor = { name: 'head', dtype: 'F32', shape: [V, K], data: coarse(V * K, V) };
    const hidden = coarse(R * K, R + V);
    const rows = Int32Array.from({ length: 2 * R + 2 }, (_, i) => (i * 3) % R);
    const targets = Int32Array.from(rows, (_, i) => (i * 7919) % V);
    for (const scale of [1, 0.25]) {
      const got = await native.scoreTokens(native.upload(hidden, R, K), native.weight(head), scale, rows, targets);
      const want = await ref.scoreTokens(ref.upload(hidden, R, K), ref.weight(head), scale, rows, targets);
      assert.deepEqual(got.ranks, want.ranks, `R=${R} V=${V} scale=${scale}`);
      assert.ok(maxAbsDiff(got.logProbs, want.logProbs) < 1e-6, `R=${R} V=${V}: ${maxAbsDiff(got.logProbs, want.logProbs)}`);
    }
  }
});

test('native scoreTokens scores the logits matmul gives, bit for bit, block by block (both kernels, scaled)', { skip }, async () => {
  // 40 rows: the dot-product kernel; 200: the packed one, in blocks of 166 rows at V = 50,304, the last of 34 (which
  // must still use the packed kernel, as matmul over all 200 rows does). Equal logits give equal ranks everywhere.
  const native = new NativeBackend();
  const V = 50304;
  const K = 24;
  for (const dtype of ['BF16', 'F32'] as const) {
    const head = native.weight(randomWeight('head', dtype, [V, K], 7));
    for (const R of [40, 200]) {
      const hidden = randomTensor(native, R, K, R);
      const rows = Int32Array.from({ length: R + 9 }, (_, i) => (i * 37) % R);
      const targets = Int32Array.from(rows, (_, i) => (i * 7919 + 3) % V);
      for (const scale of [1, 1 / 3]) {
        const got = await native.scoreTokens(hidden, head, scale, rows, targets);
        const logits = native.matmul(hidden, head);
        if (scale !== 1) native.scaleInPlace(logits, scale);
        const want = new BlockScorer(R, V, rows, targets);
        want.score(await native.read(logits), 0, R);
        assert.deepEqual(got.ranks, want.ranks, `${dtype} R=${R} scale=${scale}`);
        assert.ok(maxAbsDiff(got.logProbs, want.logProbs) < 1e-6, `${dtype} R=${R}: ${maxAbsDiff(got.logProbs, want.logProbs)}`);
      }
    }
  }
});

test('tiny-olmoe parity fixture passes on the native backend', { skip }, async () => {
  const expected = SafetensorsFile.open(parityExpected);
  const ids = expected.readArray('input_ids', 'I64');
  const [B, S] = expected.entry('input_ids').shape;
  const sequences = Array.from({ length: B }, (_, b) => Array.from(ids.subarray(b * S, (b + 1) * S), Number));
  const out = await forwardPadded(MoeModel.load(await Checkpoint.open(parityDir), new NativeBackend()), sequences);
  const logitsDiff = maxAbsDiff(out.logits, expected.readArray('logits', 'F32'));
  const routerDiff = maxAbsDiff(out.routerLogits, expected.readArray('router_logits', 'F32'));
  assert.ok(logitsDiff < 1e-3, `logits max abs diff ${logitsDiff}`);
  assert.ok(routerDiff < 1e-3, `router logits max abs diff ${routerDiff}`);
  console.log(`native parity: logits max abs diff ${logitsDiff.toExponential(2)}, router logits ${routerDiff.toExponential(2)}`);
});

test('greedy generation on the bundled model: the fused lm_head argmax gives the tokens of read-back logits', { skip }, async () => {
  for (const threads of [1, 2]) {
    const model = MoeModel.load(await Checkpoint.open(gutenbergDir), new NativeBackend({ threads }));
    const prompt = [510, 1711, 637]; // "The old man"
    const run = async (sample: (logits: Float32Array) => number) => {
      const ids: number[] = [];
      for await (const id of generate(model, prompt, { maxNewTokens: 64, sample })) ids.push(id);
      return ids;
    };
    assert.deepEqual(await run(greedy), await run((logits) => greedy(logits)), `${threads} thread(s)`);
  }
});

test('createFastBackend picks native when available, else warns once and falls back', () => {
  const lines: string[] = [];
  const be = createFastBackend({}, (l) => lines.push(l));
  if (kernels instanceof Error) {
    assert.equal(be.name, 'cpu');
    assert.equal(lines.length, 1);
  } else {
    assert.equal(be.name, 'native');
    assert.equal(lines.length, 0);
  }
});
