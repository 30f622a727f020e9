import type { Architecture, MlaAttention } from '../architecture.js';
import type { ConfigFields } from '../config-fields.js';
import type { Family } from '../family.js';
import { COMMON_NAMES, commonFields, expertsPerToken, NO_MULTIPLIERS, parseRope, yarnMscale } from '../family.js';

const NAMES = {
  ...COMMON_NAMES,
  sharedGate: 'model.layers.{l}.mlp.shared_experts.gate_proj.weight',
  sharedUp: 'model.layers.{l}.mlp.shared_experts.up_proj.weight',
  sharedDown: 'model.layers.{l}.mlp.shared_experts.down_proj.weight',
};

interface DeepseekDefaults {
  readonly version: 2 | 3;
  readonly numLayers: number;
  readonly hidden: number;
  readonly heads: number;
  readonly vocab: number;
  readonly qLoraRank: number | null;
  readonly firstDense: number;
  readonly sharedExperts: number | null;
  readonly routedExperts: number | null;
  readonly expertsPerTok: number | null;
  readonly intermediate: number;
  readonly moeIntermediate: number;
  readonly normTopkProb: boolean;
  readonly scaling: number;
  readonly maxPositions: number;
}

/** Both DeepSeek versions: multi-head latent attention, first_k_dense_replace dense layers, ungated shared experts. */
function deepseekArchitecture(f: ConfigFields, d: DeepseekDefaults): Omit<Architecture, 'routing' | 'rope'> & { mla: MlaAttention; numExperts: number } {
  const c = commonFields(f, { vocabSize: d.vocab, hiddenSize: d.hidden, numLayers: d.numLayers, numHeads: d.heads, rmsNormEps: 1e-6, maxPositions: d.maxPositions, tieWordEmbeddings: false, bos: 0, eos: 1 });
  f.only('attention_bias', [false], 'DeepSeek attention biases are not implemented');
  f.only('mlp_bias', [false], 'DeepSeek MLP biases are not implemented');
  const numKvHeads = f.int('num_key_value_heads', c.numHeads);
  if (numKvHeads !== c.numHeads) throw f.error('num_key_value_heads', `multi-head latent attention needs as many kv heads as heads (${c.numHeads}), got ${numKvHeads}`);
  const qkNopeDim = f.int('qk_nope_head_dim', 128);
  const qkRopeDim = f.int('qk_rope_head_dim', 64);
  if (qkRopeDim % 2 !== 0) throw f.error('qk_rope_head_dim', `${qkRopeDim} must be even for rotary embeddings`);
  const mla: MlaAttention = {
    kind: 'mla', numHeads: c.numHeads, qLoraRank: f.optionalInt('q_lora_rank', d.qLoraRank), kvLoraRank: f.int('kv_lora_rank', 512),
    qkNopeDim, qkRopeDim, vDim: f.int('v_head_dim', 128), latentNormEps: 1e-6, scale: (qkNopeDim + qkRopeDim) ** -0.5,
  };
  const numExperts = f.int('n_routed_experts', d.routedExperts ?? undefined);
  const firstDense = f.int('first_k_dense_replace', d.firstDense, 0);
  const layerKinds = Array.from({ length: c.numLayers }, (_, l) => (l >= firstDense ? 'moe' as const : 'dense' as const));
  const moeIntermediate = f.int('moe_intermediate_size', d.moeIntermediate);
  const shared = f.int('n_shared_experts', d.sharedExperts ?? undefined);
  return {
    ...c, mla, numExperts,
    attention: mla,
    layerKinds,
    denseIntermediateSize: f.int('intermediate_size', d.intermediate),
    moe: {
      numExperts, numExpertsPerTok: expertsPerToken(f, numExperts, d.expertsPerTok ?? undefined), intermediateSize: moeIntermediate,
      shared: { intermediateSize: moeIntermediate * shared, gated: false }, selectionBias: d.version === 3, fused: false,
    },
    multipliers: NO_MULTIPLIERS,
  };
}

/** n_group / topk_group, checked: groups must split the experts evenly and keep at least k experts. */
function groups(f: ConfigFields, numExperts: number, k: number, defaults: [number | null, number | null]): { numGroups: number; topkGroups: number } {
  const numGroups = f.optionalInt('n_group', defaults[0]) ?? 1;
  const topkGroups = f.optionalInt('topk_group', defaults[1]) ?? 1;
  if (numExperts % numGroups !== 0) throw f.error('n_group', `${numGroups} groups do not split ${numExperts} experts evenly`);
  if (topkGroups > numGroups) throw f.error('topk_group', `${topkGroups} exceeds n_group ${numGroups}`);
  if (topkGroups * (numExperts / numGroups) < k) throw f.error('topk_group', `${topkGroups} groups of ${numExperts / numGroups} experts cannot hold ${k} experts per token`);
  return { numGroups, topkGroups };
}

/**
 * DeepSeek-V2 (`modeling_deepseek_v2.py`, transformers v4.54): softmax router, greedy or group-limited greedy top-k
 * (group score: max probability), no renormalisation, × routed_scaling_factor; RoPE on adjacent pairs.
 */
export const deepseekV2: Family = {
  modelType: 'deepseek_v2',
  title: 'DeepSeek-V2',
  example: 'deepseek-ai/DeepSeek-V2-Lite',
  architecture(f) {
    const a = deepseekArchitecture(f, {
      version: 2, numLayers: 30, hidden: 4096, heads: 32, vocab: 102400, qLoraRank: 1536, firstDense: 0, sharedExperts: null,
      routedExperts: null, expertsPerTok: null, intermediate: 11008, moeIntermediate: 1407, normTopkProb: false, scaling: 1, maxPositions: 2048,
    });
    const topkMethod = f.choice('topk_method', ['greedy', 'group_limited_greedy'] as const, 'greedy');
    const g = topkMethod === 'greedy' ? { numGroups: 1, topkGroups: 1 } : groups(f, a.numExperts, a.moe.numExpertsPerTok, [null, null]);
    const { mla, numExperts: _, ...rest } = a;
    return {
      ...rest,
      rope: parseRope(f, mla.qkRopeDim, 10000, 'adjacent'),
      routing: { normTopkProb: false, routedScalingFactor: f.num('routed_scaling_factor', 1), ...g, topkMethod },
    };
  },
  defaultRouter: (a) => {
    const r = a.routing;
    return `deepseek_v2:k=${a.moe.numExpertsPerTok},n_group=${r.numGroups},topk_group=${r.topkGroups},scale=${r.routedScalingFactor}`;
  },
  names: NAMES,
};

/**
 * DeepSeek-V3 (`modeling_deepseek_v3.py`): sigmoid scores; selection on scores + e_score_correction_bias within the
 * topk_group best of n_group groups (group score: sum of its top-2 biased scores); weights are the unbiased scores,
 * renormalised when norm_topk_prob, × routed_scaling_factor. YaRN's mscale² corrects the softmax scale.
 */
export const deepseekV3: Family = {
  modelType: 'deepseek_v3',
  title: 'DeepSeek-V3',
  example: 'deepseek-ai/DeepSeek-V3',
  architecture(f) {
    const a = deepseekArchitecture(f, {
      version: 3, numLayers: 61, hidden: 7168, heads: 128, vocab: 129280, qLoraRank: 1536, firstDense: 3, sharedExperts: 1,
      routedExperts: 256, expertsPerTok: 8, intermediate: 18432, moeIntermediate: 2048, normTopkProb: true, scaling: 2.5, maxPositions: 4096,
    });
    const { mla, numExperts, ...rest } = a;
    const scaling = f.raw.rope_scaling as Record<string, unknown> | null | undefined;
    const mscaleAll = typeof scaling?.mscale_all_dim === 'number' ? scaling.mscale_all_dim : 0;
    const m = scaling && mscaleAll ? yarnMscale(scaling.factor as number, mscaleAll) : 1;
    const attention: MlaAttention = { ...mla, scale: mla.scale * m * m };
    return {
      ...rest,
      attention,
      rope: parseRope(f, mla.qkRopeDim, 10000, f.bool('rope_interleave', true) ? 'adjacent' : 'half'),
      routing: {
        normTopkProb: f.bool('norm_topk_prob', true), routedScalingFactor: f.num('routed_scaling_factor', 2.5),
        ...groups(f, numExperts, a.moe.numExpertsPerTok, [8, 4]), topkMethod: 'noaux_tc',
      },
    };
  },
  defaultRouter: (a) => {
    const r = a.routing;
    return `deepseek_v3:k=${a.moe.numExpertsPerTok},n_group=${r.numGroups},topk_group=${r.topkGroups},renormalize=${r.normTopkProb},scale=${r.routedScalingFactor}`;
  },
  names: NAMES,
};
