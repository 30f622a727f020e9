/**
 * Prefix sharing in the scorer: inputs of a group that begin alike run their common prefix once into a KV cache and
 * continue from copies of it. Scores, greedy/top-k decisions and the routing the observer sees must be those of
 * running every input whole, on every backend (webgpu where an adapter exists; native where its addon is built).
 * Also the one backend operation it rests on, copyKv, against the CPU reference.
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import type { Backend, BatchLayout, KvStore } from '../src/backends/backend.js';
import { CpuBackend, CpuKvStore } from '../src/backends/cpu.js';
import { loadNativeKernels, NativeBackend } from '../src/backends/native.js';
import { createWebGpuBackend, type WebGpuBackend } from '../src/backends/webgpu.js';
import { rollingWindows } from '../src/eval/requests.js';
import { scoreUnits, type ScoreOptions, type ScoringInput } from '../src/eval/scorer.js';
import { Checkpoint } from '../src/model/checkpoint.js';
import { MoeModel } from '../src/model/model.js';
import { maxAbsDiff, parityDir, tokenIds } from './helpers.js';

const native = loadNativeKernels();
const nativeSkip = native instanceof Error ? native.message : false;
let gpu: WebGpuBackend | null = null;
let gpuSkip: string | false = false;
try {
  gpu = await createWebGpuBackend();
} catch (e) {
  gpuSkip = `no WebGPU adapter: ${(e as Error).message}`;
}
after(() => gpu?.destroy());

const backends: { name: string; skip: string | false; open: () => Backend }[] = [
  { name: 'cpu', skip: false, open: () => new CpuBackend() },
  { name: 'native', skip: nativeSkip, open: () => new NativeBackend({ threads: 2 }) },
  { name: 'webgpu', skip: gpuSkip, open: () => gpu! },
];

const cpu = new CpuBackend();
const V = 1024; // parity model vocabulary
const EOS = 0;

function ids(length: number, seed: number): Int32Array {
  return Int32Array.from(tokenIds(length, V, seed));
}

function concat(...parts: Int32Array[]): Int32Array {
  const out = new Int32Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** A loglikelihood unit: input context ++ continuation minus its last token, the continuation as targets. */
function choice(context: Int32Array, continuation: Int32Array, group: number): ScoringInput {
  const stream = concat(context, continuation);
  return { input: stream.slice(0, -1), targets: continuation, group };
}

/**
 * Groups of every shape the scorer meets: one context with four continuations of odd lengths (one a single token;
 * inputs that are prefixes of others); continuations that begin alike; a short common prefix (below the sharing
 * threshold unless it is 1); identical inputs; one input alone; rolling windows (which share nothing).
 */
function units(): ScoringInput[] {
  const context = ids(13, 1);
  const ending = ids(9, 2);
  const alike = concat(ids(4, 3), ids(2, 4));
  return [
    choice(context, ending.subarray(0, 1), 0),
    choice(context, ending.subarray(0, 3), 0),
    choice(context, ending, 0),
    choice(context, ids(6, 5), 0),
    choice(ids(21, 6), concat(alike, ids(3, 7)), 1),
    choice(ids(21, 6), concat(alike, ids(1, 8)), 1),
    choice(ids(3, 9), ids(5, 10), 2),
    choice(ids(3, 9), ids(2, 11), 2),
    choice(ids(17, 12), ids(1, 13), 3),
    choice(ids(17, 12), ids(1, 14), 3),
    choice(ids(10, 15), ids(7, 16), 4),
    ...rollingWindows(ids(30, 17), EOS, 12).map((w) => ({ input: w.input, targets: w.targets, group: 5 })),
  ];
}

/** Every routing the observer sees, by (sequence, position, layer): the experts chosen and the router logits. */
async function scoreObserved(model: MoeModel, input: ScoringInput[], options: ScoreOptions) {
  const E = model.architecture.moe.numExperts;
  const routing = new Map<string, { experts: string; logits: Float32Array }>();
  const out = await scoreUnits(model, input, {
    ...options,
    observer: {
      onRouting(event, scored) {
        const K = event.routing.maxK;
        for (let i = 0; i < scored.n; i++) {
          const key = `${scored.sequence[i]}/${scored.position[i]}/${event.layer}`;
          assert.ok(!routing.has(key), `routing of ${key} reported twice`);
          const r = scored.row[i];
          const experts = event.routing.experts.subarray(r * K, r * K + event.routing.counts[r]).join();
          routing.set(key, { experts, logits: event.routerLogits.slice(r * E, (r + 1) * E) });
        }
      },
    },
  });
  return { out, routing };
}

for (const { name, skip, open } of backends) {
  test(`${name}: shared prefixes give the scores, decisions and routing of whole inputs`, { skip }, async () => {
    const model = MoeModel.load(Checkpoint.open(parityDir), open());
    const input = units();
    const whole = await scoreObserved(model, input, { minSharedPrefix: Infinity });
    for (const options of [{ minSharedPrefix: 4 }, { minSharedPrefix: 4, batchSize: 3 }, { minSharedPrefix: 1, batchSize: 2, maxBatchTokens: 64 }]) {
      const shared = await scoreObserved(model, input, options);
      const what = `${name} ${JSON.stringify(options)}`;
      for (let u = 0; u < input.length; u++) {
        const [a, b] = [shared.out.results[u], whole.out.results[u]];
        assert.ok(Math.abs(a.logLikelihood - b.logLikelihood) <= 1e-4, `${what} unit ${u}: ${a.logLikelihood} vs ${b.logLikelihood}`);
        assert.deepEqual({ ...a, logLikelihood: 0 }, { ...b, logLikelihood: 0 }, `${what} unit ${u}`);
      }
      assert.deepEqual([...shared.routing.keys()].sort(), [...whole.routing.keys()].sort(), what);
      for (const [key, r] of shared.routing) {
        assert.equal(r.experts, whole.routing.get(key)!.experts, `${what} experts at ${key}`);
        assert.ok(maxAbsDiff(r.logits, whole.routing.get(key)!.logits) <= 1e-4, `${what} router logits at ${key}`);
      }
      assert.equal(shared.out.scoredPositions, whole.out.scoredPositions, what);
      assert.ok(shared.out.inputTokens < whole.out.inputTokens, what);
    }
  });
}

test('the reference backend gives bit-identical scores with and without sharing (every row is computed alone)', async () => {
  const model = MoeModel.load(Checkpoint.open(parityDir), cpu);
  const input = units();
  const whole = await scoreUnits(model, input, { minSharedPrefix: Infinity });
  const shared = await scoreUnits(model, input, { minSharedPrefix: 4, batchSize: 5 });
  assert.deepEqual(shared.results, whole.results);
});

test('a group shares the common prefix of all its inputs, cut before their first scored position, once per batch', async () => {
  const model = MoeModel.load(Checkpoint.open(parityDir), cpu);
  const input = units();
  const distinct = new Map(input.map((u) => [`${u.group}:${u.input.join()}`, u.input.length]));
  const wholeTokens = [...distinct.values()].reduce((a, b) => a + b, 0);
  const whole = await scoreUnits(model, input, { minSharedPrefix: Infinity });
  assert.equal(whole.inputTokens, wholeTokens);
  // Shared prefixes: group 0, its 13-token context minus the last token, which predicts the first continuation token
  // (12 tokens, four inputs); group 1, likewise 20 tokens of two inputs (their common continuation tokens are scored, so
  // they stay in each input's own pass). Group 3's inputs are identical and run once; group 2's common prefix
  // (2 tokens) is below the threshold; rolling windows share nothing.
  const shared = await scoreUnits(model, input, { minSharedPrefix: 4 });
  assert.equal(shared.batches, 1);
  assert.equal(shared.inputTokens, wholeTokens - (4 - 1) * 12 - (2 - 1) * 20);
  // In batches of two the four inputs of group 0 need two prefix runs.
  const pairs = await scoreUnits(model, input, { minSharedPrefix: 4, batchSize: 2 });
  assert.equal(pairs.inputTokens, shared.inputTokens + 12);
  // Where two inputs of a group and their KV cache (inputs × longest) exceed maxBatchTokens, each runs whole; so does
  // every input under a threshold above every common prefix.
  assert.equal((await scoreUnits(model, input, { minSharedPrefix: 4, maxBatchTokens: 24 })).inputTokens, wholeTokens);
  assert.equal((await scoreUnits(model, input, { minSharedPrefix: 21 })).inputTokens, wholeTokens);
});

const attentionShape = { numHeads: 4, numKvHeads: 2, headDim: 6, valueDim: 6, scale: 6 ** -0.5, window: null };

/** Fill store rows through attention (the only way keys and values enter a store), as a forward pass does. */
function fill(be: Backend, store: KvStore, layout: BatchLayout, seed: number, shape = attentionShape) {
  const T = layout.starts[layout.starts.length - 1];
  const W = shape.numKvHeads * shape.headDim;
  const values = (n: number, s: number) => Float32Array.from(tokenIds(n, 2000, s), (x) => x / 1000 - 1);
  const [q, k, v] = [shape.numHeads * shape.headDim, W, W].map((cols, i) => be.upload(values(T * cols, seed + i), T, cols));
  return be.attention(q, k, v, store, layout, shape);
}

test('copyKv copies the first positions of one sequence into another store and nothing else', () => {
  const W = 12;
  const from = cpu.createKvStore(3, 10, W, W) as CpuKvStore;
  fill(cpu, from, { starts: Int32Array.of(0, 10, 14, 21), past: new Int32Array(3) }, 1);
  const to = cpu.createKvStore(2, 8, W, W) as CpuKvStore;
  cpu.copyKv(from, 2, to, 1, 7);
  for (const part of ['keys', 'values'] as const) {
    assert.deepEqual(to[part].subarray(8 * W, 15 * W), from[part].subarray(20 * W, 27 * W), part);
    assert.ok(to[part].subarray(0, 8 * W).every((x) => x === 0) && to[part].subarray(15 * W).every((x) => x === 0), part);
  }
  assert.throws(() => cpu.copyKv(from, 0, from, 1, 3), /distinct stores/);
  assert.throws(() => cpu.copyKv(from, 0, to, 0, 9), /9 positions/);
  assert.throws(() => cpu.copyKv(from, 3, to, 0, 1), /sequence 3 of 3/);
  assert.throws(() => cpu.copyKv(from, 0, cpu.createKvStore(1, 8, 6, 6), 0, 1), /widths 12\/12 into widths 6\/6/);
});

for (const { name, skip, open } of backends.slice(1)) {
  test(`${name} copyKv: attention continuing from copied positions matches the CPU reference`, { skip }, async () => {
    const be = open();
    const shape = attentionShape;
    const W = shape.numKvHeads * shape.headDim;
    const run = async (b: Backend) => {
      const from = b.createKvStore(2, 70, W, W);
      fill(b, from, { starts: Int32Array.of(0, 70, 75), past: new Int32Array(2) }, 1, shape); // one block of 64 keys and more
      const to = b.createKvStore(3, 80, W, W);
      b.copyKv(from, 0, to, 0, 67);
      b.copyKv(from, 1, to, 2, 5);
      b.copyKv(from, 0, to, 1, 1);
      return b.read(fill(b, to, { starts: Int32Array.of(0, 3, 4, 13), past: Int32Array.of(67, 1, 5) }, 7, shape));
    };
    const diff = maxAbsDiff(await run(be), await run(cpu));
    assert.ok(diff <= 2e-6, `${name}: max abs diff ${diff}`);
  });
}
