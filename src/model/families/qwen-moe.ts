import type { Family } from '../family.js';
import {
  COMMON_NAMES, commonFields, expertsPerToken, gqaHeads, NO_MULTIPLIERS, parseRope, refuseLayerSlidingWindow, softmaxRouting, sparseStepLayers,
} from '../family.js';

/**
 * Qwen2-MoE (`modeling_qwen2_moe.py`): q/k/v biases, dense layers by mlp_only_layers / decoder_sparse_step, and a
 * shared expert scaled by sigmoid(shared_expert_gate · x) beside the softmax top-k experts.
 */
export const qwen2Moe: Family = {
  modelType: 'qwen2_moe',
  title: 'Qwen2-MoE (Qwen1.5-MoE)',
  example: 'Qwen/Qwen1.5-MoE-A2.7B',
  architecture(f) {
    const c = commonFields(f, { vocabSize: 151936, hiddenSize: 2048, numLayers: 24, numHeads: 16, rmsNormEps: 1e-6, maxPositions: 32768, tieWordEmbeddings: false });
    refuseLayerSlidingWindow(f);
    const heads = gqaHeads(f, c.hiddenSize, c.numHeads, 16, false);
    const numExperts = f.int('num_experts', 60);
    const normTopkProb = f.bool('norm_topk_prob', false);
    return {
      ...c,
      attention: {
        kind: 'gqa', ...heads, qkNorm: 'none', qkvBias: f.bool('qkv_bias', true), oBias: false,
        clipQkv: null, slidingWindow: null, scale: heads.headDim ** -0.5,
      },
      rope: parseRope(f, heads.headDim, 10000, 'half'),
      layerKinds: sparseStepLayers(f, c.numLayers, numExperts),
      denseIntermediateSize: f.int('intermediate_size', 5632),
      moe: {
        numExperts, numExpertsPerTok: expertsPerToken(f, numExperts, 4), intermediateSize: f.int('moe_intermediate_size', 1408),
        shared: { intermediateSize: f.int('shared_expert_intermediate_size', 5632), gated: true }, selectionBias: false, fused: false,
      },
      routing: softmaxRouting(normTopkProb),
      multipliers: NO_MULTIPLIERS,
    };
  },
  defaultRouter: (a) => `topk:k=${a.moe.numExpertsPerTok},renormalize=${a.routing.normTopkProb}`,
  names: COMMON_NAMES,
};

/** Qwen3-MoE (`modeling_qwen3_moe.py`): head_dim from the config, per-head q/k RMSNorm, no shared expert. */
export const qwen3Moe: Family = {
  modelType: 'qwen3_moe',
  title: 'Qwen3-MoE',
  example: 'Qwen/Qwen3-30B-A3B',
  architecture(f) {
    const c = commonFields(f, { vocabSize: 151936, hiddenSize: 2048, numLayers: 24, numHeads: 32, rmsNormEps: 1e-6, maxPositions: 32768, tieWordEmbeddings: false });
    refuseLayerSlidingWindow(f);
    const heads = gqaHeads(f, c.hiddenSize, c.numHeads, 4, true);
    const bias = f.bool('attention_bias', false);
    const numExperts = f.int('num_experts', 128);
    const normTopkProb = f.bool('norm_topk_prob', false);
    return {
      ...c,
      attention: {
        kind: 'gqa', ...heads, qkNorm: 'head', qkvBias: bias, oBias: bias,
        clipQkv: null, slidingWindow: null, scale: heads.headDim ** -0.5,
      },
      rope: parseRope(f, heads.headDim, 10000, 'half'),
      layerKinds: sparseStepLayers(f, c.numLayers, numExperts),
      denseIntermediateSize: f.int('intermediate_size', 6144),
      moe: {
        numExperts, numExpertsPerTok: expertsPerToken(f, numExperts, 8), intermediateSize: f.int('moe_intermediate_size', 768),
        shared: null, selectionBias: false, fused: false,
      },
      routing: softmaxRouting(normTopkProb),
      multipliers: NO_MULTIPLIERS,
    };
  },
  defaultRouter: (a) => `topk:k=${a.moe.numExpertsPerTok},renormalize=${a.routing.normTopkProb}`,
  names: COMMON_NAMES,
};
