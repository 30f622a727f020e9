import type { Architecture } from '../architecture.js';
import type { ConfigFields } from '../config-fields.js';
import type { Family } from '../family.js';
import {
  COMMON_NAMES, commonFields, expertsPerToken, gqaHeads, NO_MULTIPLIERS, parseRope, refuseLayerSlidingWindow, softmaxRouting, sparseStepLayers,
} from '../family.js';

/** The two Qwen-MoE generations differ in their config defaults, q/k norms, q/k/v biases and shared expert. */
interface QwenGeneration {
  readonly defaults: { readonly numHeads: number; readonly kvHeads: number; readonly numExperts: number; readonly k: number; readonly intermediate: number; readonly moeIntermediate: number };
  readonly headDimField: boolean; // Qwen3 reads head_dim; Qwen2 uses hidden / heads
  readonly attention: (f: ConfigFields) => { qkNorm: 'none' | 'head'; qkvBias: boolean; oBias: boolean };
  readonly shared: (f: ConfigFields) => Architecture['moe']['shared'];
}

/** Dense layers by mlp_only_layers / decoder_sparse_step, softmax top-k renormalised when norm_topk_prob. */
function qwenArchitecture(f: ConfigFields, g: QwenGeneration): Architecture {
  const d = g.defaults;
  const c = commonFields(f, { vocabSize: 151936, hiddenSize: 2048, numLayers: 24, numHeads: d.numHeads, rmsNormEps: 1e-6, maxPositions: 32768, tieWordEmbeddings: false });
  refuseLayerSlidingWindow(f);
  const heads = gqaHeads(f, c.hiddenSize, c.numHeads, d.kvHeads, g.headDimField);
  const numExperts = f.int('num_experts', d.numExperts);
  return {
    ...c,
    attention: { kind: 'gqa', ...heads, ...g.attention(f), clipQkv: null, slidingWindow: null, scale: heads.headDim ** -0.5 },
    rope: parseRope(f, heads.headDim, 10000, 'half'),
    layerKinds: sparseStepLayers(f, c.numLayers, numExperts),
    denseIntermediateSize: f.int('intermediate_size', d.intermediate),
    moe: {
      numExperts, numExpertsPerTok: expertsPerToken(f, numExperts, d.k), intermediateSize: f.int('moe_intermediate_size', d.moeIntermediate),
      shared: g.shared(f), selectionBias: false, fused: false,
    },
    routing: softmaxRouting(f.bool('norm_topk_prob', false)),
    multipliers: NO_MULTIPLIERS,
  };
}

const topkRouter = (a: Architecture) => `topk:k=${a.moe.numExpertsPerTok},renormalize=${a.routing.normTopkProb}`;

/**
 * Qwen2-MoE (`modeling_qwen2_moe.py`): q/k/v biases, dense layers by mlp_only_layers / decoder_sparse_step, and a
 * shared expert scaled by sigmoid(shared_expert_gate · x) beside the softmax top-k experts.
 */
export const qwen2Moe: Family = {
  modelType: 'qwen2_moe',
  title: 'Qwen2-MoE (Qwen1.5-MoE)',
  example: 'Qwen/Qwen1.5-MoE-A2.7B',
  architecture: (f) => qwenArchitecture(f, {
    defaults: { numHeads: 16, kvHeads: 16, numExperts: 60, k: 4, intermediate: 5632, moeIntermediate: 1408 },
    headDimField: false,
    attention: (f) => ({ qkNorm: 'none', qkvBias: f.bool('qkv_bias', true), oBias: false }),
    shared: (f) => ({ intermediateSize: f.int('shared_expert_intermediate_size', 5632), gated: true }),
  }),
  defaultRouter: topkRouter,
  names: COMMON_NAMES,
};

/** Qwen3-MoE (`modeling_qwen3_moe.py`): head_dim from the config, per-head q/k RMSNorm, no shared expert. */
export const qwen3Moe: Family = {
  modelType: 'qwen3_moe',
  title: 'Qwen3-MoE',
  example: 'Qwen/Qwen3-30B-A3B',
  architecture: (f) => qwenArchitecture(f, {
    defaults: { numHeads: 32, kvHeads: 4, numExperts: 128, k: 8, intermediate: 6144, moeIntermediate: 768 },
    headDimField: true,
    attention: (f) => {
      const bias = f.bool('attention_bias', false);
      return { qkNorm: 'head', qkvBias: bias, oBias: bias };
    },
    shared: () => null,
  }),
  defaultRouter: topkRouter,
  names: COMMON_NAMES,
};
