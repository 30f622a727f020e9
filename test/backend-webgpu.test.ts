/**
 * The webgpu backend against the CPU reference: each kernel on small odd shapes, then the whole model (parity
 * fixture, KV-cache generation, routers with other expert counts). Runs on any WebGPU adapter; CI has Mesa ≥ 25
 * lavapipe (scripts/install-lavapipe.sh). Without an adapter every test is skipped with the reason.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import type { BatchLayout, ExpertWeights, Tensor, Weight } from '../src/backends/backend.js';
import { CpuBackend } from '../src/backends/cpu.js';
import { RoutelabError } from '../src/errors.js';
import { createWebGpuBackend, type WebGpuBackend } from '../src/backends/webgpu.js';
import { Checkpoint } from '../src/model/checkpoint.js';
import { OlmoeModel } from '../src/model/olmoe.js';
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

test('webgpu matmul, embed, gatherRows, rmsNorm agree with the CPU backend (odd shapes, T = 1, chunked weights)', { skip }, async () => {
  for (const dtype of ['BF16', 'F16', 'F32'] as const) {
    for (const [T, K, N] of [[1, 7, 3], [3, 37, 65], [5, 37, 65], [17, 130, 33], [33, 64, 131], [1, 2048, 1]]) {
      const [wc, wg] = weightPair(`w${K}x${N}`, [N, K], T + K + N, dtype);
      const [xc, xg] = pair(T, K, T * 7 + K);
      await close(cpu.matmul(xc, wc), gpu.matmul(xg, wg), 1e-5 * Math.sqrt(K), `matmul ${dtype} [${T},${K}]x[${N},${K}]ᵀ`);
      const [gc, gg] = weightPair('gain', [K], K, dtype, 2);
      await close(cpu.rmsNorm(xc, gc, 1e-5), gpu.rmsNorm(xg, gg, 1e-5), 1e-5, `rmsNorm ${dtype} [${T},${K}]`);
    }
    const [tc, tg] = weightPair('table', [301, 19], 3, dtype); // 4 KiB chunks: several
    const ids = Int32Array.of(0, 300, 7, 7, 150, 299);
    await close(cpu.embed(ids, tc), gpu.embed(ids, tg), 0, `embed ${dtype}`);
  }
  const [xc, xg] = pair(9, 13, 4);
  const rows = Int32Array.of(8, 0, 3, 3);
  await close(cpu.gatherRows(xc, rows), gpu.gatherRows(xg, rows), 0, 'gatherRows');
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

test('webgpu elementwise kernels and rotary agree with the CPU backend', { skip }, async () => {
  const [xc, xg] = pair(7, 24, 5, 3);
  const [yc, yg] = pair(7, 24, 6);
  cpu.addInPlace(xc, yc);
  gpu.addInPlace(xg, yg);
  await close(xc, xg, 0, 'addInPlace');
  cpu.clampInPlace(xc, 1.5);
  gpu.clampInPlace(xg, 1.5);
  await close(xc, xg, 0, 'clampInPlace');
  const positions = Int32Array.of(0, 1, 2, 3000, 4, 5, 17);
  cpu.ropeInPlace(xc, positions, 3, 8, 10000);
  gpu.ropeInPlace(xg, positions, 3, 8, 10000);
  await close(xc, xg, 1e-6, 'ropeInPlace');
});

test('webgpu attention (packed sequences, KV cache past, GQA) agrees with the CPU backend', { skip }, async () => {
  const shape = { numHeads: 4, numKvHeads: 2, headDim: 12 };
  const W = shape.numKvHeads * shape.headDim;
  const cs = cpu.createKvStore(3, 90, W);
  const gs = gpu.createKvStore(3, 90, W);
  // Prefill of lengths 70 (over one block of 64 keys), 1, 9; then one step each; then 5 tokens for sequence 1 only.
  const steps: BatchLayout[] = [
    { starts: Int32Array.of(0, 70, 71, 80), past: Int32Array.of(0, 0, 0) },
    { starts: Int32Array.of(0, 1, 2, 3), past: Int32Array.of(70, 1, 9) },
  ];
  for (const [i, layout] of steps.entries()) {
    const T = layout.starts[layout.starts.length - 1];
    const [qc, qg] = pair(T, shape.numHeads * shape.headDim, 10 + i, 2);
    const [kc, kg] = pair(T, W, 20 + i, 2);
    const [vc, vg] = pair(T, W, 30 + i);
    await close(cpu.attention(qc, kc, vc, cs, layout, shape), gpu.attention(qg, kg, vg, gs, layout, shape), 2e-6, `attention step ${i}`);
  }
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

function gpuModel(dir = parityDir): OlmoeModel {
  return OlmoeModel.load(Checkpoint.open(dir), gpu);
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
