import { RoutelabError } from '../errors.js';

/** The OLMoE architecture as `config.json` describes it (SPEC §1), validated and with defaults filled in. */
export interface OlmoeConfig {
  readonly vocabSize: number; // V
  readonly hiddenSize: number; // H
  readonly intermediateSize: number; // I, per expert
  readonly numLayers: number; // L
  readonly numHeads: number; // nh
  readonly numKvHeads: number; // nkv
  readonly headDim: number; // hd = H / nh
  readonly numExperts: number; // E
  readonly numExpertsPerTok: number; // k
  readonly normTopkProb: boolean;
  readonly ropeTheta: number;
  readonly rmsNormEps: number;
  readonly clipQkv: number | null;
  readonly tieWordEmbeddings: boolean;
  readonly maxPositionEmbeddings: number;
  readonly eosTokenId: number | null;
  readonly padTokenId: number | null;
  readonly bosTokenId: number | null;
}

type Json = Record<string, unknown>;

export function parseOlmoeConfig(raw: unknown, file = 'config.json'): OlmoeConfig {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new RoutelabError(file, 'expected a JSON object');
  }
  const j = raw as Json;
  const err = (field: string, msg: string) => new RoutelabError(`${file}: ${field}`, msg);
  const int = (field: string, fallback?: number): number => {
    const v = j[field] ?? fallback;
    if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) throw err(field, `expected a positive integer, got ${JSON.stringify(v)}`);
    return v;
  };
  const num = (field: string, fallback: number): number => {
    const v = j[field] ?? fallback;
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) throw err(field, `expected a positive number, got ${JSON.stringify(v)}`);
    return v;
  };
  const bool = (field: string, fallback: boolean): boolean => {
    const v = j[field] ?? fallback;
    if (typeof v !== 'boolean') throw err(field, `expected true or false, got ${JSON.stringify(v)}`);
    return v;
  };
  const tokenId = (field: string): number | null => {
    const v = j[field];
    if (v === undefined || v === null) return null;
    // Some configs list several eos ids; the first is the one generation stops on by default.
    const id = Array.isArray(v) ? v[0] : v;
    if (typeof id !== 'number' || !Number.isInteger(id) || id < 0) throw err(field, `expected a token id, got ${JSON.stringify(v)}`);
    return id;
  };

  if (j.model_type !== 'olmoe') {
    throw err('model_type', `expected "olmoe" (routelab runs OLMoE checkpoints), got ${JSON.stringify(j.model_type)}`);
  }
  if (j.rope_scaling !== undefined && j.rope_scaling !== null) {
    throw err('rope_scaling', `only null is supported, got ${JSON.stringify(j.rope_scaling)}`);
  }
  if (j.attention_bias !== undefined && j.attention_bias !== false) {
    throw err('attention_bias', `only false is supported, got ${JSON.stringify(j.attention_bias)}`);
  }
  if (j.hidden_act !== undefined && j.hidden_act !== 'silu') {
    throw err('hidden_act', `only "silu" is supported, got ${JSON.stringify(j.hidden_act)}`);
  }
  const clip = j.clip_qkv;
  if (clip !== undefined && clip !== null && (typeof clip !== 'number' || !(clip > 0))) {
    throw err('clip_qkv', `expected null or a positive number, got ${JSON.stringify(clip)}`);
  }

  const hiddenSize = int('hidden_size');
  const numHeads = int('num_attention_heads');
  const numKvHeads = int('num_key_value_heads', numHeads);
  if (hiddenSize % numHeads !== 0) throw err('hidden_size', `${hiddenSize} is not divisible by num_attention_heads ${numHeads}`);
  if (numHeads % numKvHeads !== 0) {
    throw err('num_key_value_heads', `${numKvHeads} does not divide num_attention_heads ${numHeads}`);
  }
  const headDim = hiddenSize / numHeads;
  if (headDim % 2 !== 0) throw err('hidden_size', `head dim ${headDim} must be even for rotary embeddings`);
  const numExperts = int('num_experts');
  const numExpertsPerTok = int('num_experts_per_tok');
  if (numExpertsPerTok > numExperts) {
    throw err('num_experts_per_tok', `${numExpertsPerTok} exceeds num_experts ${numExperts}`);
  }
  const vocabSize = int('vocab_size');
  const config: OlmoeConfig = {
    vocabSize,
    hiddenSize,
    intermediateSize: int('intermediate_size'),
    numLayers: int('num_hidden_layers'),
    numHeads,
    numKvHeads,
    headDim,
    numExperts,
    numExpertsPerTok,
    normTopkProb: bool('norm_topk_prob', false),
    ropeTheta: num('rope_theta', 10000),
    rmsNormEps: num('rms_norm_eps', 1e-5),
    clipQkv: typeof clip === 'number' ? clip : null,
    tieWordEmbeddings: bool('tie_word_embeddings', false),
    maxPositionEmbeddings: int('max_position_embeddings', 4096),
    eosTokenId: tokenId('eos_token_id'),
    padTokenId: tokenId('pad_token_id'),
    bosTokenId: tokenId('bos_token_id'),
  };
  for (const f of ['eos_token_id', 'pad_token_id', 'bos_token_id'] as const) {
    const id = tokenId(f);
    if (id !== null && id >= vocabSize) throw err(f, `${id} is not below vocab_size ${vocabSize}`);
  }
  return config;
}

/** Every tensor an OLMoE checkpoint must hold, with the shape the config implies (SPEC §1 names). */
export function expectedTensorShapes(c: OlmoeConfig): Map<string, number[]> {
  const shapes = new Map<string, number[]>();
  const H = c.hiddenSize;
  const qDim = c.numHeads * c.headDim;
  const kvDim = c.numKvHeads * c.headDim;
  shapes.set('model.embed_tokens.weight', [c.vocabSize, H]);
  shapes.set('model.norm.weight', [H]);
  if (!c.tieWordEmbeddings) shapes.set('lm_head.weight', [c.vocabSize, H]);
  for (let l = 0; l < c.numLayers; l++) {
    const p = `model.layers.${l}`;
    shapes.set(`${p}.input_layernorm.weight`, [H]);
    shapes.set(`${p}.post_attention_layernorm.weight`, [H]);
    shapes.set(`${p}.self_attn.q_proj.weight`, [qDim, H]);
    shapes.set(`${p}.self_attn.k_proj.weight`, [kvDim, H]);
    shapes.set(`${p}.self_attn.v_proj.weight`, [kvDim, H]);
    shapes.set(`${p}.self_attn.o_proj.weight`, [H, qDim]);
    shapes.set(`${p}.self_attn.q_norm.weight`, [qDim]);
    shapes.set(`${p}.self_attn.k_norm.weight`, [kvDim]);
    shapes.set(`${p}.mlp.gate.weight`, [c.numExperts, H]);
    for (let e = 0; e < c.numExperts; e++) {
      shapes.set(`${p}.mlp.experts.${e}.gate_proj.weight`, [c.intermediateSize, H]);
      shapes.set(`${p}.mlp.experts.${e}.up_proj.weight`, [c.intermediateSize, H]);
      shapes.set(`${p}.mlp.experts.${e}.down_proj.weight`, [H, c.intermediateSize]);
    }
  }
  return shapes;
}
