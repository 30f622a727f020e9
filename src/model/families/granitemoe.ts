import type { Family } from '../family.js';
import { COMMON_NAMES, commonFields, expertsPerToken, gqaHeads, parseRope } from '../family.js';

/**
 * Granite-MoE (`modeling_granitemoe.py`): embedding, residual, attention and logit multipliers; a router that takes
 * the top k raw logits and softmaxes over those k; experts fused into input_linear / output_linear.
 */
export const granitemoe: Family = {
  modelType: 'granitemoe',
  title: 'Granite-MoE',
  example: 'ibm-granite/granite-3.0-1b-a400m-base',
  architecture(f) {
    const c = commonFields(f, { vocabSize: 32000, hiddenSize: 4096, numLayers: 32, numHeads: 32, rmsNormEps: 1e-6, maxPositions: 2048, tieWordEmbeddings: false, pad: null, bos: 1, eos: 2 });
    const heads = gqaHeads(f, c.hiddenSize, c.numHeads, null, false);
    const bias = f.bool('attention_bias', false);
    const numExperts = f.int('num_local_experts', 8);
    return {
      ...c,
      attention: {
        kind: 'gqa', ...heads, qkNorm: 'none', qkvBias: bias, oBias: bias,
        clipQkv: null, slidingWindow: null, scale: f.num('attention_multiplier', 1),
      },
      rope: parseRope(f, heads.headDim, 10000, 'half'),
      layerKinds: Array(c.numLayers).fill('moe'),
      denseIntermediateSize: 0,
      moe: {
        numExperts, numExpertsPerTok: expertsPerToken(f, numExperts, 2), intermediateSize: f.int('intermediate_size', 11008),
        shared: null, selectionBias: false, fused: true,
      },
      routing: { normTopkProb: false, routedScalingFactor: 1, numGroups: 1, topkGroups: 1, topkMethod: 'greedy' },
      multipliers: {
        embedding: f.num('embedding_multiplier', 1), residual: f.num('residual_multiplier', 1), logitsScaling: f.num('logits_scaling', 1),
      },
    };
  },
  defaultRouter: (a) => `granite:k=${a.moe.numExpertsPerTok}`,
  names: { ...COMMON_NAMES, router: 'model.layers.{l}.block_sparse_moe.router.layer.weight' },
};
