import type { Family } from '../family.js';
import { COMMON_NAMES, commonFields, expertsPerToken, gqaHeads, NO_MULTIPLIERS, parseRope, PLAIN_EXPERTS, softmaxRouting } from '../family.js';

/** OLMoE (transformers `modeling_olmoe.py`): q/k RMSNorm over the whole projection, optional clip_qkv, softmax top-k. */
export const olmoe: Family = {
  modelType: 'olmoe',
  title: 'OLMoE',
  example: 'allenai/OLMoE-1B-7B-0924',
  architecture(f) {
    const c = commonFields(f, { vocabSize: 50304, hiddenSize: 2048, numLayers: 16, numHeads: 16, rmsNormEps: 1e-5, maxPositions: 4096, tieWordEmbeddings: false, pad: 1, eos: 50279 });
    const heads = gqaHeads(f, c.hiddenSize, c.numHeads, null, false);
    const bias = f.bool('attention_bias', false);
    const numExperts = f.int('num_experts', 64);
    const normTopkProb = f.bool('norm_topk_prob', false);
    return {
      ...c,
      attention: {
        kind: 'gqa', ...heads, qkNorm: 'projection', qkvBias: bias, oBias: bias,
        clipQkv: f.optionalNum('clip_qkv'), slidingWindow: null, scale: heads.headDim ** -0.5,
      },
      rope: parseRope(f, heads.headDim, 10000, 'half'),
      layerKinds: Array(c.numLayers).fill('moe'),
      denseIntermediateSize: 0,
      moe: { numExperts, numExpertsPerTok: expertsPerToken(f, numExperts, 8), intermediateSize: f.int('intermediate_size', 2048), ...PLAIN_EXPERTS },
      routing: softmaxRouting(normTopkProb),
      multipliers: NO_MULTIPLIERS,
    };
  },
  defaultRouter: (a) => `topk:k=${a.moe.numExpertsPerTok},renormalize=${a.routing.normTopkProb}`,
  names: COMMON_NAMES,
  gguf: {
    arch: 'olmoe',
    tensors: {
      embed: 'token_embd.weight', finalNorm: 'output_norm.weight', lmHead: 'output.weight',
      inputNorm: 'blk.{l}.attn_norm.weight', postNorm: 'blk.{l}.ffn_norm.weight',
      q: 'blk.{l}.attn_q.weight', k: 'blk.{l}.attn_k.weight', v: 'blk.{l}.attn_v.weight', o: 'blk.{l}.attn_output.weight',
      qNorm: 'blk.{l}.attn_q_norm.weight', kNorm: 'blk.{l}.attn_k_norm.weight', router: 'blk.{l}.ffn_gate_inp.weight',
      expertGate: 'blk.{l}.ffn_gate_exps.weight', expertUp: 'blk.{l}.ffn_up_exps.weight', expertDown: 'blk.{l}.ffn_down_exps.weight',
    },
  },
};
