import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Backend, ExpertWeights, Tensor } from '../src/backends/backend.js';
import { CpuBackend } from '../src/backends/cpu.js';
import { createFastBackend, loadNativeKernels, NativeBackend } from '../src/backends/native.js';
import { Checkpoint } from '../src/model/checkpoint.js';
import { OlmoeModel } from '../src/model/olmoe.js';
import { forwardPadded } from '../src/model/padded.js';
import { SafetensorsFile } from '../src/model/safetensors.js';
import type { StoredTensor, WeightDtype } from '../src/model/tensor.js';
import { maxAbsDiff, parityDir, parityExpected } from './helpers.js';

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

test('native rmsNorm agrees with the reference', { skip }, async () => {
  const be = new NativeBackend();
  for (const [rows, cols, dtype] of [[1, 1, 'F32'], [3, 7, 'BF16'], [40, 2048, 'BF16'], [5, 130, 'F16']] as const) {
    const w = randomWeight('g', dtype, [cols], rows + cols);
    const x = randomTensor(be, rows, cols, cols);
    const [got, want] = await both((b) => b.rmsNorm(x, b.weight(w), 1e-5), be);
    assert.ok(relDiff(got, want) < 1e-6, `[${rows}×${cols}] ${dtype}: ${relDiff(got, want)}`);
  }
});

test('native attention agrees with the reference (GQA, ragged batch, KV cache continuation, odd head dim)', { skip }, async () => {
  const be = new NativeBackend();
  for (const [nh, nkv, hd] of [[4, 2, 16], [3, 3, 12], [2, 1, 8], [4, 4, 64]]) {
    const shape = { numHeads: nh, numKvHeads: nkv, headDim: hd };
    const lens = [5, 1, 37];
    const capacity = 50;
    const nativeStore = be.createKvStore(lens.length, capacity, nkv * hd);
    const refStore = ref.createKvStore(lens.length, capacity, nkv * hd);
    let past = new Int32Array(lens.length);
    // Two steps: a prefill, then one more token per sequence on top of the cache.
    for (const step of [lens, [1, 1, 1]]) {
      const starts = new Int32Array(step.length + 1);
      step.forEach((n, b) => { starts[b + 1] = starts[b] + n; });
      const T = starts[step.length];
      const layout = { starts, past };
      const q = randomTensor(be, T, nh * hd, T + hd);
      const k = randomTensor(be, T, nkv * hd, T + hd + 1);
      const v = randomTensor(be, T, nkv * hd, T + hd + 2);
      const got = await be.read(be.attention(q, k, v, nativeStore, layout, shape));
      const want = await ref.read(ref.attention(q, k, v, refStore, layout, shape));
      assert.ok(relDiff(got, want) < 1e-5, `nh ${nh} nkv ${nkv} hd ${hd}: ${relDiff(got, want)}`);
      past = Int32Array.from(past, (p, b) => p + step[b]);
    }
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
  const native = new NativeBackend();
  for (const V of [1, 7, 50304]) {
    const R = 5;
    const r = rng(V);
    const data = Float32Array.from({ length: R * V }, () => Math.round(8 * r()) / 2); // coarse values: many ties
    const rows = Int32Array.from({ length: 12 }, (_, i) => i % R);
    const targets = Int32Array.from({ length: 12 }, (_, i) => (i * 7919) % V);
    const got = await native.scoreTokens(native.upload(data, R, V), rows, targets);
    const want = await ref.scoreTokens(ref.upload(data, R, V), rows, targets);
    assert.deepEqual(got.ranks, want.ranks, `V=${V}`);
    assert.ok(maxAbsDiff(got.logProbs, want.logProbs) < 1e-6, `V=${V}: ${maxAbsDiff(got.logProbs, want.logProbs)}`);
  }
});

test('tiny-olmoe parity fixture passes on the native backend', { skip }, async () => {
  const expected = SafetensorsFile.open(parityExpected);
  const ids = expected.readArray('input_ids', 'I64');
  const [B, S] = expected.entry('input_ids').shape;
  const sequences = Array.from({ length: B }, (_, b) => Array.from(ids.subarray(b * S, (b + 1) * S), Number));
  const out = await forwardPadded(OlmoeModel.load(await Checkpoint.open(parityDir), new NativeBackend()), sequences);
  const logitsDiff = maxAbsDiff(out.logits, expected.readArray('logits', 'F32'));
  const routerDiff = maxAbsDiff(out.routerLogits, expected.readArray('router_logits', 'F32'));
  assert.ok(logitsDiff < 1e-3, `logits max abs diff ${logitsDiff}`);
  assert.ok(routerDiff < 1e-3, `router logits max abs diff ${routerDiff}`);
  console.log(`native parity: logits max abs diff ${logitsDiff.toExponential(2)}, router logits ${routerDiff.toExponential(2)}`);
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
