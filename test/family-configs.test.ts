/**
 * What each family reads from config.json: Hugging Face defaults for absent fields, layer patterns, rotary and
 * attention scalings, and one clear error for everything routelab does not implement. Plus, per family, KV-cached
 * decoding equal to full forward passes (sliding window and latent attention included).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { RoutelabError } from '../src/errors.js';
import { parseArchitecture } from '../src/model/families/index.js';
import { rotaryFor } from '../src/model/rope.js';
import { assertKvCacheMatchesFullForward, loadCpuModel, repoRoot } from './helpers.js';

const fixture = (family: string) => join(repoRoot, 'test/fixtures/families', family);
const fixtureConfig = (family: string) => JSON.parse(readFileSync(join(fixture(family), 'config.json'), 'utf8')) as Record<string, unknown>;
const arch = (config: Record<string, unknown>) => parseArchitecture(config, 'config.json').architecture;
const refuses = (config: Record<string, unknown>, field: string, pattern: RegExp) =>
  assert.throws(() => arch(config), (e: unknown) => e instanceof RoutelabError && e.where === `config.json: ${field}` && pattern.test(e.message), field);

test('Qwen-MoE layers: MoE unless in mlp_only_layers or off the decoder_sparse_step', () => {
  const a = arch({ ...fixtureConfig('qwen2_moe'), num_hidden_layers: 6, decoder_sparse_step: 2, mlp_only_layers: [3] });
  assert.deepEqual(a.layerKinds, ['dense', 'moe', 'dense', 'dense', 'dense', 'moe']);
  assert.deepEqual(a.moe.shared, { intermediateSize: 48, gated: true });
  assert.equal(arch({ ...fixtureConfig('qwen3_moe'), mlp_only_layers: [0] }).layerKinds[0], 'dense');
});

test('DeepSeek: first_k_dense_replace, shared experts, group defaults and the YaRN-corrected softmax scale', () => {
  const v3 = arch(fixtureConfig('deepseek_v3'));
  assert.deepEqual(v3.layerKinds, ['dense', 'moe', 'moe']);
  assert.deepEqual(v3.moe.shared, { intermediateSize: 16, gated: false });
  assert.deepEqual([v3.routing.numGroups, v3.routing.topkGroups, v3.routing.routedScalingFactor], [4, 2, 2.5]);
  const m = 0.1 * 0.8 * Math.log(4) + 1; // mscale_all_dim 0.8 at rope_scaling.factor 4
  assert.ok(v3.attention.kind === 'mla' && Math.abs(v3.attention.scale - (24 ** -0.5) * m * m) < 1e-15);
  const rope = rotaryFor(v3.rope);
  assert.equal(rope.pairing, 'adjacent');
  assert.ok(Math.abs(rope.attentionScaling - (0.1 * Math.log(4) + 1) / m) < 1e-15);
  assert.equal(rotaryFor(arch({ ...fixtureConfig('deepseek_v3'), rope_interleave: false }).rope).pairing, 'half');
  // DeepSeek-V2 applies no mscale² to the softmax scale, and its greedy routing ignores n_group.
  const v2 = arch(fixtureConfig('deepseek_v2'));
  assert.ok(v2.attention.kind === 'mla' && v2.attention.scale === 24 ** -0.5 && v2.attention.qLoraRank === null);
  assert.deepEqual([v2.routing.topkMethod, v2.routing.numGroups], ['greedy', 1]);
  const limited = arch({ ...fixtureConfig('deepseek_v2'), topk_method: 'group_limited_greedy', n_group: 4, topk_group: 2 });
  assert.deepEqual([limited.routing.numGroups, limited.routing.topkGroups], [4, 2]);
});

test('defaults of the config classes fill absent fields', () => {
  const { rope_theta: _, head_dim: __, ...mixtral } = fixtureConfig('mixtral');
  const a = arch(mixtral);
  assert.equal(a.rope.theta, 1e6);
  assert.ok(a.attention.kind === 'gqa' && a.attention.headDim === 16); // hidden / heads without head_dim
  const granite = arch(fixtureConfig('granitemoe'));
  assert.deepEqual(granite.multipliers, { embedding: 12, residual: 0.22, logitsScaling: 6 });
  assert.ok(granite.attention.kind === 'gqa' && granite.attention.scale === 0.0625 && granite.moe.fused);
});

test('rotary scalings: linear divides the frequencies; dynamic is the default rotation within max_position_embeddings', () => {
  const base = rotaryFor(arch(fixtureConfig('olmoe')).rope);
  const linear = rotaryFor(arch({ ...fixtureConfig('olmoe'), rope_scaling: { type: 'linear', factor: 4 } }).rope);
  base.invFreq.forEach((f, i) => assert.equal(linear.invFreq[i], Math.fround(f / 4)));
  assert.deepEqual(rotaryFor(arch({ ...fixtureConfig('olmoe'), rope_scaling: { rope_type: 'dynamic', factor: 4 } }).rope), base);
});

test('what routelab does not implement is one error naming config.json and the field', () => {
  refuses({ ...fixtureConfig('olmoe'), hidden_act: 'gelu' }, 'hidden_act', /only "silu"/);
  refuses({ ...fixtureConfig('olmoe'), num_experts_per_tok: 17 }, 'num_experts_per_tok', /17 exceeds the 16 routed experts/);
  refuses({ ...fixtureConfig('olmoe'), num_key_value_heads: 3 }, 'num_key_value_heads', /3 does not divide num_attention_heads 4/);
  refuses({ ...fixtureConfig('olmoe'), partial_rotary_factor: 0.5 }, 'partial_rotary_factor', /full-width rotary/);
  refuses({ ...fixtureConfig('olmoe'), rope_scaling: { type: 'llama3', factor: 8 } }, 'rope_scaling', /"llama3" is not implemented/);
  refuses({ ...fixtureConfig('qwen2_moe'), use_sliding_window: true }, 'use_sliding_window', /per-layer sliding-window attention/);
  refuses({ ...fixtureConfig('deepseek_v3'), num_key_value_heads: 2 }, 'num_key_value_heads', /as many kv heads as heads \(4\)/);
  refuses({ ...fixtureConfig('deepseek_v3'), n_group: 3 }, 'n_group', /3 groups do not split 16 experts evenly/);
  refuses({ ...fixtureConfig('deepseek_v3'), topk_group: 1, num_experts_per_tok: 5 }, 'topk_group', /1 groups of 4 experts cannot hold 5/);
  refuses({ ...fixtureConfig('deepseek_v2'), n_shared_experts: null }, 'n_shared_experts', /positive integer/);
  refuses({ ...fixtureConfig('deepseek_v2'), topk_method: 'noaux_tc' }, 'topk_method', /expected one of "greedy", "group_limited_greedy"/);
  refuses({ ...fixtureConfig('deepseek_v2'), mlp_bias: true }, 'mlp_bias', /MLP biases are not implemented/);
  refuses({ ...fixtureConfig('mixtral'), eos_token_id: 1000 }, 'eos_token_id', /1000 is not below vocab_size 1000/);
  refuses({ ...fixtureConfig('mixtral'), model_type: 'llama' }, 'model_type', /expected one of "olmoe", "mixtral", "qwen2_moe", "qwen3_moe", "deepseek_v2", "deepseek_v3", "granitemoe", got "llama"/);
});

for (const family of ['olmoe', 'mixtral', 'qwen2_moe', 'qwen3_moe', 'deepseek_v2', 'deepseek_v3', 'granitemoe']) {
  test(`${family}: KV-cached decoding gives the logits of full forward passes`, async () => {
    const model = loadCpuModel(fixture(family));
    await assertKvCacheMatchesFullForward(model, model.architecture.vocabSize);
  });
}
