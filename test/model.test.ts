import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { argmaxRows } from '../src/backends/argmax.js';
import { CpuBackend } from '../src/backends/cpu.js';
import type { Backend, ExpertPlan, ExpertWeights, Tensor } from '../src/backends/backend.js';
import { RoutelabError } from '../src/errors.js';
import { Checkpoint } from '../src/model/checkpoint.js';
import { expertPlan, MoeModel } from '../src/model/model.js';
import { forwardPadded } from '../src/model/padded.js';
import type { TensorToWrite } from '../src/model/safetensors.js';
import { generate } from '../src/generate.js';
import { parseRouterSpec } from '../src/routers/registry.js';
import { greedy } from '../src/sampling.js';
import { assertKvCacheMatchesFullForward, loadCpuModel, maxAbsDiff, parityDir, tempDir, tokenIds, variantCheckpoint } from './helpers.js';

const V = 1024; // parity model vocabulary

/** Rows [from, from + count) of a 2-D BF16 tensor's raw data, `cols` wide. */
function rows(t: TensorToWrite, from: number, count: number, cols: number): Uint16Array {
  return (t.data as Uint16Array).slice(from * cols, (from + count) * cols);
}

function concat(parts: Uint16Array[]): Uint16Array {
  const out = new Uint16Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) { out.set(p, o); o += p.length; }
  return out;
}

test('a sequence gets the same logits and routing alone or batched with others of other lengths', async () => {
  const model = loadCpuModel(parityDir);
  const a = tokenIds(24, V, 1);
  const b = tokenIds(7, V, 2);
  const c = tokenIds(15, V, 3);
  const alone = await forwardPadded(model, [a]);
  const batched = await forwardPadded(model, [c, a, b]);
  const S = 24;
  const aRows = (o: typeof alone, index: number) => o.logits.subarray(index * S * V, (index + 1) * S * V);
  assert.deepEqual(aRows(batched, 1), aRows(alone, 0));
  const E = 64;
  for (let l = 0; l < 2; l++) {
    const aloneRouter = alone.routerLogits.subarray(l * S * E, (l + 1) * S * E);
    const batchedRouter = batched.routerLogits.subarray((l * 3 + 1) * S * E, (l * 3 + 2) * S * E);
    assert.deepEqual(batchedRouter, aloneRouter);
  }
  // Padding rows of the shorter sequences are zero and route no experts.
  assert.equal(batched.expertCounts[2 * S + 7], 0);
  assert.ok(batched.logits.subarray((2 * S + 7) * V, 3 * S * V).every((x) => x === 0));
});

test('generation with a KV cache gives the logits of a full forward pass over the same prefix', async () => {
  await assertKvCacheMatchesFullForward(loadCpuModel(parityDir), V);
});

test('forward with argmax returns the greedy choice from the logits it would have returned (rows, batch, ties)', async () => {
  const model = loadCpuModel(parityDir);
  const sequences = [tokenIds(9, V, 4), tokenIds(3, V, 5)];
  for (const logits of ['last', 'all', Int32Array.of(0, 5, 11)] as const) {
    const full = await model.forward(sequences, { logits });
    const fused = await model.forward(sequences, { logits, argmax: true });
    assert.equal(fused.logits.length, 0);
    assert.deepEqual(fused.tokens, argmaxRows(full.logits, full.logits.length / V, V));
  }
});

test('greedy generation through the fused argmax yields the same tokens as sampling the read-back logits', async () => {
  const model = loadCpuModel(parityDir);
  const prompt = tokenIds(5, V, 6);
  const run = async (sample: (logits: Float32Array) => number) => {
    const ids: number[] = [];
    for await (const id of generate(model, prompt, { maxNewTokens: 12, sample })) ids.push(id);
    return ids;
  };
  assert.deepEqual(await run(greedy), await run((logits) => greedy(logits)));
});

test('grouped-query attention equals multi-head attention with each kv head repeated', async () => {
  const H = 64, hd = 16;
  // GQA: 2 kv heads made of original heads 0 and 2. MHA twin: kv heads [0, 0, 2, 2] (repeat_kv order).
  const pick = (t: TensorToWrite, heads: number[]): TensorToWrite => {
    const isNorm = t.shape.length === 1;
    const data = concat(heads.map((h) => (isNorm ? (t.data as Uint16Array).slice(h * hd, (h + 1) * hd) : rows(t, h * hd, hd, H))));
    return { ...t, shape: isNorm ? [heads.length * hd] : [heads.length * hd, H], data };
  };
  const build = (heads: number[], nkv: number) => variantCheckpoint({ num_key_value_heads: nkv }, (tensors) => {
    for (let l = 0; l < 2; l++) {
      for (const n of ['k_proj', 'v_proj', 'k_norm']) {
        const name = `model.layers.${l}.self_attn.${n}.weight`;
        tensors.set(name, pick(tensors.get(name)!, heads));
      }
    }
  });
  const gqa = loadCpuModel(build([0, 2], 2));
  const mha = loadCpuModel(build([0, 0, 2, 2], 4));
  const ids = [tokenIds(17, V, 6)];
  const diff = maxAbsDiff((await gqa.forward(ids)).logits, (await mha.forward(ids)).logits);
  assert.ok(diff < 1e-5, `max abs diff ${diff}`);
});

test('tied word embeddings use the embedding matrix as lm_head', async () => {
  const tied = variantCheckpoint({ tie_word_embeddings: true }, (t) => t.delete('lm_head.weight'));
  const copied = variantCheckpoint({}, (t) => {
    const embed = t.get('model.embed_tokens.weight')!;
    t.set('lm_head.weight', { ...embed, name: 'lm_head.weight' });
  });
  const ids = [tokenIds(9, V, 7)];
  assert.deepEqual((await loadCpuModel(tied).forward(ids)).logits, (await loadCpuModel(copied).forward(ids)).logits);
});

/** Records the largest |v| that reaches attention (q and k are rotated after the clip, so can exceed it). */
class AttentionSpy extends CpuBackend {
  maxAbs = 0;
  override attention(...args: Parameters<CpuBackend['attention']>): Tensor {
    for (const x of (args[2] as unknown as { data: Float32Array }).data) this.maxAbs = Math.max(this.maxAbs, Math.abs(x));
    return super.attention(...args);
  }
}

test('clip_qkv clamps q, k and v (before rotary); a clip above every value changes nothing', async () => {
  const ids = [tokenIds(12, V, 8)];
  const plain = await loadCpuModel(parityDir).forward(ids);
  const loose = await loadCpuModel(variantCheckpoint({ clip_qkv: 1e6 })).forward(ids);
  assert.deepEqual(loose.logits, plain.logits);
  const spy = new AttentionSpy();
  const clipped = await MoeModel.load(Checkpoint.open(variantCheckpoint({ clip_qkv: 0.5 })), spy).forward(ids);
  assert.equal(spy.maxAbs, 0.5);
  assert.ok(maxAbsDiff(clipped.logits, plain.logits) > 1e-3);
});

test('F32 and F16 checkpoints run like the BF16 one with the same values', async () => {
  const widen = (bits: Uint16Array) => new Float32Array(Uint32Array.from(bits, (b) => b << 16).buffer);
  const asF32 = variantCheckpoint({}, (tensors) => {
    for (const t of tensors.values()) tensors.set(t.name, { ...t, dtype: 'F32', data: widen(t.data as Uint16Array) });
  });
  const ids = [tokenIds(10, V, 9)];
  assert.deepEqual((await loadCpuModel(asF32).forward(ids)).logits, (await loadCpuModel(parityDir).forward(ids)).logits);

  // F16: round every weight to the nearest half, and compare with F32 weights holding the same rounded values.
  const toHalf = (x: number) => {
    const f = new Float32Array([x]);
    const u = new Uint32Array(f.buffer)[0];
    const sign = (u >>> 16) & 0x8000;
    const abs = Math.abs(x);
    if (abs < 2 ** -14) return sign | Math.round(abs / 2 ** -24); // subnormal (tiny weights)
    const e = Math.floor(Math.log2(abs));
    let m = Math.round((abs / 2 ** e - 1) * 1024);
    let exp = e + 15;
    if (m === 1024) { m = 0; exp++; }
    return sign | (exp << 10) | m;
  };
  const fromHalf = (h: number) => (h & 0x8000 ? -1 : 1) * ((h >> 10) & 31 ? (1 + (h & 1023) / 1024) * 2 ** (((h >> 10) & 31) - 15) : (h & 1023) * 2 ** -24);
  const halves = new Map<string, Uint16Array>();
  const asF16 = variantCheckpoint({}, (tensors) => {
    for (const t of tensors.values()) {
      const h = Uint16Array.from(widen(t.data as Uint16Array), toHalf);
      halves.set(t.name, h);
      tensors.set(t.name, { ...t, dtype: 'F16', data: h });
    }
  });
  const sameAsF32 = variantCheckpoint({}, (tensors) => {
    for (const t of tensors.values()) tensors.set(t.name, { ...t, dtype: 'F32', data: Float32Array.from(halves.get(t.name)!, fromHalf) });
  });
  assert.deepEqual((await loadCpuModel(asF16).forward(ids)).logits, (await loadCpuModel(sameAsF32).forward(ids)).logits);
});

/** Counts the (token, expert) pairs the expert kernel is asked to compute. */
class ExpertSpy extends CpuBackend {
  assignments = 0;
  override moeExperts(x: Tensor, plan: ExpertPlan, experts: readonly ExpertWeights[]): Tensor {
    this.assignments += plan.tokens.length;
    return super.moeExperts(x, plan, experts);
  }
}

test('experts run only for the tokens routed to them, so cost follows the router', async () => {
  const ids = [tokenIds(10, V, 10), tokenIds(6, V, 11)];
  for (const k of [1, 8, 16, 64]) {
    const spy: Backend & ExpertSpy = new ExpertSpy();
    const model = MoeModel.load(Checkpoint.open(parityDir), spy);
    const out = await forwardPadded(model, ids, parseRouterSpec(`topk:k=${k}`, model.routerDefaults));
    assert.equal(spy.assignments, 2 * 16 * k, `k=${k}`);
    assert.equal(out.expertCounts.filter((c) => c === k).length, 2 * 16);
  }
});

test('expertPlan groups tokens by expert in token order with their weights', () => {
  const routing = {
    tokens: 3, maxK: 2,
    counts: Int32Array.of(2, 1, 2),
    experts: Int32Array.of(3, 0, 3, -1, 0, 1),
    weights: Float32Array.of(0.5, 0.25, 1, 0, 0.75, 0.125),
  };
  const plan = expertPlan(routing, 4);
  assert.deepEqual(Array.from(plan.offsets), [0, 2, 3, 3, 5]);
  assert.deepEqual(Array.from(plan.tokens), [0, 2, 2, 0, 1]);
  assert.deepEqual(Array.from(plan.weights), [0.25, 0.75, 0.125, 0.5, 1]);
});

test('routers with other expert counts run through the model: topk k=16, topp, bh', async () => {
  const model = loadCpuModel(parityDir);
  const ids = [tokenIds(16, V, 12)];
  const counts = async (spec: string) => (await forwardPadded(model, ids, parseRouterSpec(spec, model.routerDefaults))).expertCounts;
  assert.ok((await counts('topk:k=16,renormalize=true')).every((c) => c === 16));
  const topp = await counts('topp:p=0.5,max_k=20');
  assert.ok(topp.every((c) => c >= 1 && c <= 20) && new Set(topp).size > 1, `topp counts ${topp}`);
  // A standard-normal null: logits well above 0 get small p-values.
  const x = Array.from({ length: 161 }, (_, i) => -8 + i * 0.1);
  const cdf = x.map((v) => 0.5 * (1 + erf(v / Math.SQRT2)));
  const nullFile = join(tempDir(), 'null.json');
  writeFileSync(nullFile, JSON.stringify({ format: 'routelab.null/1', layers: [{ x, cdf }, { x, cdf }], meta: {} }));
  const bh = await counts(`bh:alpha=0.3,max_k=12,min_k=2,null=${nullFile}`);
  assert.ok(bh.every((c) => c >= 2 && c <= 12), `bh counts ${bh}`);
});

function erf(x: number): number {
  // Abramowitz–Stegun 7.1.26 (|error| < 1.5e-7) is plenty for a test null.
  const t = 1 / (1 + 0.3275911 * Math.abs(x));
  const y = 1 - ((((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496735) * t + 0.254829592) * t * Math.exp(-x * x);
  return Math.sign(x) * y;
}

test('bad token input gets one clear error', async () => {
  const model = loadCpuModel(parityDir);
  const rejects = (ids: number[][], pattern: RegExp) => assert.rejects(model.forward(ids), (e: unknown) => e instanceof RoutelabError && pattern.test(e.message));
  await rejects([], /empty input/);
  await rejects([[1, 2], []], /sequence 1 is empty/);
  await rejects([[1, 1024]], /token id 1024 is not in \[0, vocab_size 1024\)/);
  await rejects([[1, -3]], /token id -3/);
  await rejects([new Array(4097).fill(1)], /beyond max_position_embeddings 4096/);
});
