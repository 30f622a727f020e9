/**
 * A model family is a small declaration: how its config.json fields map onto the family-neutral Architecture, the
 * names of its tensors by role, and its own routing (as a router spec). The forward pass, checkpoint validation,
 * parameter counts, FLOPs, `inspect` and the bench checkpoint writer all read this one declaration.
 */
import type { RouterDefaults } from '../routers/router.js';
import { type Architecture, moeLayerIndices, type RopeArchitecture, type RopeScaling } from './architecture.js';
import type { ConfigFields } from './config-fields.js';

/** What a tensor is for; names and shapes follow from the role, the family and the architecture. */
export type TensorRole =
  | 'embed' | 'finalNorm' | 'lmHead'
  | 'inputNorm' | 'postNorm'
  | 'q' | 'k' | 'v' | 'o' | 'qBias' | 'kBias' | 'vBias' | 'oBias' | 'qNorm' | 'kNorm'
  | 'qA' | 'qANorm' | 'qB' | 'kvA' | 'kvANorm' | 'kvB'
  | 'router' | 'routerBias'
  | 'expertGate' | 'expertUp' | 'expertDown' | 'expertsIn' | 'expertsOut'
  | 'sharedGate' | 'sharedUp' | 'sharedDown' | 'sharedExpertGate'
  | 'denseGate' | 'denseUp' | 'denseDown';

/** Tensor names by role: `{l}` is the layer index, `{e}` the expert index. */
export type TensorNames = Readonly<Record<TensorRole, string>>;

export interface Family {
  /** config.json `model_type`. */
  readonly modelType: string;
  /** How papers and model cards name it. */
  readonly title: string;
  /** A public checkpoint of this family (README and `list families`). */
  readonly example: string;
  /** config.json → architecture (validated, with the HF config class's defaults). */
  architecture(fields: ConfigFields): Architecture;
  /** The family's own routing as a router spec (`default` builds it). */
  defaultRouter(a: Architecture): string;
  readonly names: TensorNames;
  /** llama.cpp's name for the architecture and its tensors (`{l}`: layer), for families routelab writes as GGUF. */
  readonly gguf?: { readonly arch: string; readonly tensors: Partial<TensorNames> };
}

const ATTENTION = 'model.layers.{l}.self_attn';

/** The Hugging Face names most families share; a family overrides the roles it names differently. */
export const COMMON_NAMES: TensorNames = {
  embed: 'model.embed_tokens.weight',
  finalNorm: 'model.norm.weight',
  lmHead: 'lm_head.weight',
  inputNorm: 'model.layers.{l}.input_layernorm.weight',
  postNorm: 'model.layers.{l}.post_attention_layernorm.weight',
  q: `${ATTENTION}.q_proj.weight`,
  k: `${ATTENTION}.k_proj.weight`,
  v: `${ATTENTION}.v_proj.weight`,
  o: `${ATTENTION}.o_proj.weight`,
  qBias: `${ATTENTION}.q_proj.bias`,
  kBias: `${ATTENTION}.k_proj.bias`,
  vBias: `${ATTENTION}.v_proj.bias`,
  oBias: `${ATTENTION}.o_proj.bias`,
  qNorm: `${ATTENTION}.q_norm.weight`,
  kNorm: `${ATTENTION}.k_norm.weight`,
  qA: `${ATTENTION}.q_a_proj.weight`,
  qANorm: `${ATTENTION}.q_a_layernorm.weight`,
  qB: `${ATTENTION}.q_b_proj.weight`,
  kvA: `${ATTENTION}.kv_a_proj_with_mqa.weight`,
  kvANorm: `${ATTENTION}.kv_a_layernorm.weight`,
  kvB: `${ATTENTION}.kv_b_proj.weight`,
  router: 'model.layers.{l}.mlp.gate.weight',
  routerBias: 'model.layers.{l}.mlp.gate.e_score_correction_bias',
  expertGate: 'model.layers.{l}.mlp.experts.{e}.gate_proj.weight',
  expertUp: 'model.layers.{l}.mlp.experts.{e}.up_proj.weight',
  expertDown: 'model.layers.{l}.mlp.experts.{e}.down_proj.weight',
  expertsIn: 'model.layers.{l}.block_sparse_moe.input_linear.weight',
  expertsOut: 'model.layers.{l}.block_sparse_moe.output_linear.weight',
  sharedGate: 'model.layers.{l}.mlp.shared_expert.gate_proj.weight',
  sharedUp: 'model.layers.{l}.mlp.shared_expert.up_proj.weight',
  sharedDown: 'model.layers.{l}.mlp.shared_expert.down_proj.weight',
  sharedExpertGate: 'model.layers.{l}.mlp.shared_expert_gate.weight',
  denseGate: 'model.layers.{l}.mlp.gate_proj.weight',
  denseUp: 'model.layers.{l}.mlp.up_proj.weight',
  denseDown: 'model.layers.{l}.mlp.down_proj.weight',
};

/** Fields every family reads the same way (Hugging Face's PretrainedConfig and the common transformer fields). */
export function refuseUnsupportedActivation(f: ConfigFields): void {
  f.only('hidden_act', ['silu'], 'only "silu" experts and MLPs are implemented');
}

/**
 * rope_theta and rope_scaling (Hugging Face modeling_rope_utils): null/default, linear, dynamic or yarn; `dim`
 * rotated columns per head. Dynamic NTK only rescales positions beyond max_position_embeddings, which routelab never
 * runs, so it is the default rotation here. Anything else is refused by name.
 */
export function parseRope(f: ConfigFields, dim: number, thetaDefault: number, pairing: RopeArchitecture['pairing']): RopeArchitecture {
  const theta = f.num('rope_theta', thetaDefault);
  f.only('partial_rotary_factor', [1], 'only full-width rotary embeddings are implemented (partial_rotary_factor 1)');
  const raw = f.raw.rope_scaling;
  if (raw === undefined || raw === null) return { theta, dim, scaling: null, pairing };
  if (typeof raw !== 'object' || Array.isArray(raw)) throw f.error('rope_scaling', `expected null or an object, got ${JSON.stringify(raw)}`);
  const s = raw as Record<string, unknown>;
  const type = s.rope_type ?? s.type;
  const num = (key: string, fallback?: number): number => {
    const v = s[key] ?? fallback;
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) throw f.error(`rope_scaling.${key}`, `expected a positive number, got ${JSON.stringify(s[key])}`);
    return v;
  };
  let scaling: RopeScaling | null;
  if (type === 'default' || type === 'dynamic') scaling = null;
  else if (type === 'linear') scaling = { type: 'linear', factor: num('factor') };
  else if (type === 'yarn') {
    const maxPositions = f.int('max_position_embeddings');
    const hasOriginal = s.original_max_position_embeddings !== undefined && s.original_max_position_embeddings !== null;
    const original = hasOriginal ? num('original_max_position_embeddings') : maxPositions;
    const factor = hasOriginal ? maxPositions / original : num('factor');
    const mscale = s.mscale as number | undefined;
    const mscaleAll = s.mscale_all_dim as number | undefined;
    const given = s.attention_factor;
    const attentionFactor = typeof given === 'number' ? given
      : mscale && mscaleAll ? yarnMscale(factor, mscale) / yarnMscale(factor, mscaleAll) : yarnMscale(factor);
    scaling = {
      type: 'yarn', factor, originalMaxPositions: original, attentionFactor,
      betaFast: (s.beta_fast as number | undefined) || 32, betaSlow: (s.beta_slow as number | undefined) || 1,
    };
  } else {
    throw f.error('rope_scaling', `rope type ${JSON.stringify(type)} is not implemented (routelab implements default, linear, dynamic and yarn)`);
  }
  return { theta, dim, scaling, pairing };
}

/** YaRN's magnitude correction: 0.1 · m · ln(s) + 1 for a scale s > 1, else 1. */
export function yarnMscale(scale: number, m = 1): number {
  return scale <= 1 ? 1 : 0.1 * m * Math.log(scale) + 1;
}

/** The dense / MoE pattern of Qwen-MoE configs: MoE unless in mlp_only_layers or off the decoder_sparse_step. */
export function sparseStepLayers(f: ConfigFields, numLayers: number, numExperts: number): ('moe' | 'dense')[] {
  const only = new Set(f.intList('mlp_only_layers'));
  const step = f.int('decoder_sparse_step', 1);
  return Array.from({ length: numLayers }, (_, l) => (!only.has(l) && numExperts > 0 && (l + 1) % step === 0 ? 'moe' : 'dense'));
}

/** No selection bias, no fusion, no shared expert: the plain routed MoE most families have. */
export const PLAIN_EXPERTS = { shared: null, selectionBias: false, fused: false } as const;

/** Routing parameters of families without groups or scaling. */
export function softmaxRouting(normTopkProb: boolean) {
  return { normTopkProb, routedScalingFactor: 1, numGroups: 1, topkGroups: 1, topkMethod: 'greedy' } as const;
}

export const NO_MULTIPLIERS = { embedding: 1, residual: 1, logitsScaling: 1 } as const;

/** Hugging Face config-class defaults of the fields every family has. */
export interface CommonDefaults {
  readonly vocabSize: number;
  readonly hiddenSize: number;
  readonly numLayers: number;
  readonly numHeads: number;
  readonly rmsNormEps: number;
  readonly maxPositions: number;
  readonly tieWordEmbeddings: boolean;
  readonly bos?: number | null;
  readonly eos?: number | null;
  readonly pad?: number | null;
}

/** The fields every family reads the same way. */
export function commonFields(f: ConfigFields, d: CommonDefaults) {
  refuseUnsupportedActivation(f);
  const vocabSize = f.int('vocab_size', d.vocabSize);
  return {
    modelType: f.raw.model_type as string,
    vocabSize,
    hiddenSize: f.int('hidden_size', d.hiddenSize),
    numLayers: f.int('num_hidden_layers', d.numLayers),
    numHeads: f.int('num_attention_heads', d.numHeads),
    rmsNormEps: f.num('rms_norm_eps', d.rmsNormEps),
    maxPositionEmbeddings: f.int('max_position_embeddings', d.maxPositions),
    tieWordEmbeddings: f.bool('tie_word_embeddings', d.tieWordEmbeddings),
    bosTokenId: f.tokenId('bos_token_id', vocabSize, d.bos ?? null),
    eosTokenId: f.tokenId('eos_token_id', vocabSize, d.eos ?? null),
    padTokenId: f.tokenId('pad_token_id', vocabSize, d.pad ?? null),
  };
}

/** Query/key-value head counts and head width of grouped-query attention (head_dim: config field, else H / nh). */
export function gqaHeads(f: ConfigFields, hiddenSize: number, numHeads: number, kvDefault: number | null, headDimField: boolean) {
  const numKvHeads = f.int('num_key_value_heads', kvDefault ?? numHeads);
  if (numHeads % numKvHeads !== 0) throw f.error('num_key_value_heads', `${numKvHeads} does not divide num_attention_heads ${numHeads}`);
  const given = headDimField ? f.optionalInt('head_dim') : null;
  if (given === null && hiddenSize % numHeads !== 0) throw f.error('hidden_size', `${hiddenSize} is not divisible by num_attention_heads ${numHeads}`);
  const headDim = given ?? hiddenSize / numHeads;
  if (headDim % 2 !== 0) throw f.error('head_dim', `head width ${headDim} must be even for rotary embeddings`);
  return { numHeads, numKvHeads, headDim };
}

/** Experts per token, checked against the expert count. */
export function expertsPerToken(f: ConfigFields, numExperts: number, fallback?: number): number {
  const k = f.int('num_experts_per_tok', fallback);
  if (k > numExperts) throw f.error('num_experts_per_tok', `${k} exceeds the ${numExperts} routed experts`);
  return k;
}

/** Refuse Qwen-style per-layer sliding windows (use_sliding_window), which routelab does not implement. */
export function refuseLayerSlidingWindow(f: ConfigFields): void {
  f.only('use_sliding_window', [false], 'per-layer sliding-window attention (use_sliding_window) is not implemented');
}

/** What routers are built from for a model of this family (the selection bias only exists once weights are read). */
export function routerDefaultsOf(family: Family, a: Architecture, selectionBias: (moeLayer: number) => Float32Array | null = () => null): RouterDefaults {
  return {
    numExperts: a.moe.numExperts,
    numExpertsPerTok: a.moe.numExpertsPerTok,
    moeLayers: moeLayerIndices(a),
    routing: a.routing,
    defaultSpec: (k) => family.defaultRouter({ ...a, moe: { ...a.moe, numExpertsPerTok: k } }),
    selectionBias,
  };
}
