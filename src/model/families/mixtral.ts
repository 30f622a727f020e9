import type { Family } from '../family.js';
import { COMMON_NAMES, commonFields, expertsPerToken, gqaHeads, NO_MULTIPLIERS, parseRope, PLAIN_EXPERTS, softmaxRouting } from '../family.js';

const MOE = 'model.layers.{l}.block_sparse_moe';

/** Mixtral (`modeling_mixtral.py`): plain GQA with an optional sliding window, softmax top-k always renormalised. */
export const mixtral: Family = {
  modelType: 'mixtral',
  title: 'Mixtral',
  example: 'mistralai/Mixtral-8x7B-v0.1',
  architecture(f) {
    const c = commonFields(f, { vocabSize: 32000, hiddenSize: 4096, numLayers: 32, numHeads: 32, rmsNormEps: 1e-5, maxPositions: 4096 * 32, tieWordEmbeddings: false, bos: 1, eos: 2 });
    const heads = gqaHeads(f, c.hiddenSize, c.numHeads, 8, true);
    const numExperts = f.int('num_local_experts', 8);
    return {
      ...c,
      attention: {
        kind: 'gqa', ...heads, qkNorm: 'none', qkvBias: false, oBias: false,
        clipQkv: null, slidingWindow: f.optionalInt('sliding_window'), scale: heads.headDim ** -0.5,
      },
      rope: parseRope(f, heads.headDim, 1e6, 'half'),
      layerKinds: Array(c.numLayers).fill('moe'),
      denseIntermediateSize: 0,
      moe: { numExperts, numExpertsPerTok: expertsPerToken(f, numExperts, 2), intermediateSize: f.int('intermediate_size', 14336), ...PLAIN_EXPERTS },
      routing: softmaxRouting(true),
      multipliers: NO_MULTIPLIERS,
    };
  },
  defaultRouter: (a) => `topk:k=${a.moe.numExpertsPerTok},renormalize=true`,
  names: {
    ...COMMON_NAMES,
    router: `${MOE}.gate.weight`,
    expertGate: `${MOE}.experts.{e}.w1.weight`,
    expertUp: `${MOE}.experts.{e}.w3.weight`,
    expertDown: `${MOE}.experts.{e}.w2.weight`,
  },
};
