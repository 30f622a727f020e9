import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseArchitecture } from '../src/model/families/index.js';
import { flopsPerToken, tensorLayout } from '../src/model/tensors.js';
import { giniSorted, jaccard, outputDeterminism, pearsonFromSums, RoutingAccumulator } from '../src/eval/routing-metrics.js';

const close = (a: number, b: number, eps = 1e-12) => assert.ok(Math.abs(a - b) <= eps, `${a} ≉ ${b}`);

/**
 * The hand-made trace: L = 2 layers, E = 4 experts, min_k 1, max_k 3, four scored tokens.
 *   layer 0: t0 {0}, t1 {0,1}, t2 {0,1,2}, t3 {1,2}      → c = 1 2 3 2
 *   layer 1: t0 {3,0}, t1 {3,1}, t2 {3,0,1}, t3 {3}      → c = 2 2 3 1
 */
const K = 3;
const layers = [
  { counts: [1, 2, 3, 2], experts: [[0], [0, 1], [0, 1, 2], [1, 2]] },
  { counts: [2, 2, 3, 1], experts: [[3, 0], [3, 1], [3, 0, 1], [3]] },
];
function padded(experts: number[][], from = 0, to = experts.length): Int32Array {
  const out = new Int32Array((to - from) * K).fill(-1);
  for (let i = from; i < to; i++) experts[i].forEach((e, j) => (out[(i - from) * K + j] = e));
  return out;
}
// H=2, nh=nkv=1, hd=2, E=4, I=3, L=2, V=5, k=3, as an OLMoE config.
const tiny = parseArchitecture({
  model_type: 'olmoe', hidden_size: 2, num_attention_heads: 1, num_key_value_heads: 1, num_experts: 4, intermediate_size: 3,
  num_hidden_layers: 2, vocab_size: 5, num_experts_per_tok: 3, eos_token_id: 1,
});
const tinyLayout = tensorLayout(tiny.family, tiny.architecture);
const tinyFlops = { flops: (c: number, ctx: number) => flopsPerToken(tiny.architecture, tinyLayout, c, ctx), defaultK: 3 };

function accumulate(batches: [number, number][]): RoutingAccumulator {
  const acc = new RoutingAccumulator({ numLayers: 2, numExperts: 4, minK: 1, maxK: 3 });
  for (const [from, to] of batches) {
    layers.forEach((l, layer) => acc.addLayer(layer, to - from, l.counts.slice(from, to), padded(l.experts, from, to), K, [1, 0.5, 0.25, 0.25].slice(from, to)));
    acc.addContext(3 * (to - from), to - from); // every token attends to 3 keys
  }
  return acc;
}

test('every routing metric on a hand-made trace', () => {
  const m = accumulate([[0, 4]]).finish({ ...tinyFlops, forwardSeconds: 2, determinism: 1 });
  assert.equal(m.scored_tokens, 4);
  assert.equal(m.avg_experts, 2); // (8 + 8) / 8
  assert.equal(m.expert_activation_ratio, 0.5);
  assert.deepEqual(m.per_layer_avg_experts, [2, 2]);
  assert.equal(m.layer_expert_variance, 0); // both layers average 2
  close(m.std_experts, Math.sqrt(0.5)); // c = 1 2 3 2 2 2 3 1: E[c²] = 36/8 = 4.5, minus 2²
  assert.equal(m.min_experts, 1);
  assert.equal(m.max_experts, 3);
  assert.equal(m.adaptive_range, 2);
  // Histogram of c: 1 → 2, 2 → 4, 3 → 2 of 8: H = −(¼ln¼ + ½ln½ + ¼ln¼) = 1.5 ln 2.
  close(m.selection_entropy, 1.5 * Math.log(2));
  close(m.selection_entropy_norm, (1.5 * Math.log(2)) / Math.log(3));
  assert.equal(m.ceiling_hit_rate, 0.25); // c = 3 twice
  assert.equal(m.floor_hit_rate, 0.25); // c = 1 twice
  // Layer 0 uses experts {0,1,2}, layer 1 {0,1,3}: 3/4 each.
  assert.equal(m.expert_utilization, 0.75);
  // Gini: layer 0 counts sorted [0,2,3,3] → (−3·0 −1·2 +1·3 +3·3)/(4·8) = 10/32; layer 1 [0,2,2,4] → 12/32.
  close(m.gini, (10 / 32 + 12 / 32) / 2);
  // Pearson of x = 1 2 3 2 and y = 2 2 3 1: deviations (−1,0,1,0), (0,0,1,−1): r = 1 / √(2·2) = 0.5.
  close(m.layer_consistency!, 0.5);
  close(m.expert_overlap, (1 + 0.5 + 0.25 + 0.25) / 4);
  assert.equal(m.output_determinism, 1);
  assert.equal(m.tokens_per_second, 2); // 4 tokens / 2 s
  assert.equal(m.latency_ms_per_token, 500);
  assert.equal(m.mean_context_length, 3);
  // FLOPs (H=2, nh=nkv=1, hd=2, E=4, I=3, L=2, V=5, ctx=3): per layer 8 + 16 + 8 (q,k,v,o) + 8·3 (attention)
  // + 16 (router) + 36·c (experts); plus 2·2·5 for lm_head. c = 2 → 2·(48 + 24 + 72) + 20 = 308; k = 3 → 380.
  assert.equal(m.flops_per_token, 308);
  close(m.flops_reduction_pct, 100 * (1 - 308 / 380));
});

test('streaming: the same tokens in two batches give the same metrics', () => {
  const one = accumulate([[0, 4]]).finish(tinyFlops);
  const two = accumulate([[0, 1], [1, 4]]).finish(tinyFlops);
  assert.deepEqual({ ...two, layer_consistency: null }, { ...one, layer_consistency: null });
  close(two.layer_consistency!, one.layer_consistency!);
});

test('layer_consistency is null where a layer is constant; entropy_norm is 0 when max_k = 1', () => {
  const acc = new RoutingAccumulator({ numLayers: 2, numExperts: 4, minK: 1, maxK: 1 });
  acc.addLayer(0, 3, [1, 1, 1], [0, 1, 2], 1);
  acc.addLayer(1, 3, [1, 1, 1], [3, 3, 3], 1);
  const m = acc.finish();
  assert.equal(m.layer_consistency, null);
  assert.equal(m.selection_entropy, 0);
  assert.equal(m.selection_entropy_norm, 0);
  assert.equal(m.ceiling_hit_rate, 1);
  assert.equal(m.floor_hit_rate, 1);
  // Layer 0 counts [1,1,1,0] sorted [0,1,1,1]: (−3·0 −1 +1 +3)/(4·3) = 0.25; layer 1 [0,0,0,3]: 9/12 = 0.75.
  close(m.gini, 0.5);
  assert.equal(m.expert_utilization, (3 / 4 + 1 / 4) / 2);
});

test('helpers: gini, pearson, jaccard, flops, determinism', () => {
  assert.equal(giniSorted([0, 0, 0, 0]), 0);
  assert.equal(giniSorted([5, 5, 5, 5]), 0);
  close(giniSorted([0, 0, 0, 4]), 0.75); // (n−1)/n for one holder
  close(pearsonFromSums([3, 6, 6, 14, 14, 14])!, 1); // x = y = 1 2 3
  assert.equal(pearsonFromSums([3, 3, 6, 3, 14, 6]), null); // x constant
  const mark = new Uint8Array(4);
  assert.equal(jaccard([0, 1, 2], 0, 3, [1, 2, 3], 0, 3, mark), 0.5);
  assert.equal(jaccard([0], 0, 1, [0], 0, 1, mark), 1);
  assert.equal(jaccard([0], 0, 1, [1], 0, 1, mark), 0);
  assert.deepEqual([...mark], [0, 0, 0, 0]);
  assert.equal(tinyFlops.flops(0, 0), 2 * (32 + 16) + 20);
  assert.equal(outputDeterminism(Float32Array.of(1, 2), Float32Array.of(1, 2)), 1);
  close(outputDeterminism(Float32Array.of(1, 2), Float32Array.of(1, 2.5)), 0.5);
});
