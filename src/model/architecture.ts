/**
 * The architecture a checkpoint's config.json describes, in one family-neutral form: what the forward pass,
 * the tensor layout, parameter counts and FLOPs read. A family (src/model/families/) turns its config fields into
 * this; nothing outside src/model/ needs to know which family a model is.
 *
 * Letters: H hidden, V vocabulary, L layers, E routed experts, k experts per token, nh / nkv query / key-value heads.
 */

/** Grouped-query attention (MHA and MQA included): q/k/v/o projections, optional q/k norms, bias, clip, window. */
export interface GqaAttention {
  readonly kind: 'gqa';
  readonly numHeads: number; // nh
  readonly numKvHeads: number; // nkv
  readonly headDim: number; // hd (q_proj has nh·hd rows, which need not equal H)
  /** RMSNorm of q and k: 'projection' over the whole projection (OLMoE), 'head' over each head (Qwen3). */
  readonly qkNorm: 'none' | 'projection' | 'head';
  readonly qkvBias: boolean;
  readonly oBias: boolean;
  readonly clipQkv: number | null; // clamp q, k, v to [−c, c] (after their norms)
  readonly slidingWindow: number | null; // keys a query sees, itself included
  readonly scale: number; // softmax scale
}

/** DeepSeek's multi-head latent attention: low-rank q (optional) and kv, a rotary key part shared by all heads. */
export interface MlaAttention {
  readonly kind: 'mla';
  readonly numHeads: number; // nh (kv heads = nh)
  readonly qLoraRank: number | null; // null: one q_proj
  readonly kvLoraRank: number;
  readonly qkNopeDim: number;
  readonly qkRopeDim: number;
  readonly vDim: number;
  readonly latentNormEps: number; // q_a_layernorm / kv_a_layernorm eps (the class default, not rms_norm_eps)
  readonly scale: number;
}

export type AttentionArchitecture = GqaAttention | MlaAttention;

/** Rotary embedding: frequencies of `dim` rotated columns per head, how cos/sin are scaled, how pairs are formed. */
export interface RopeArchitecture {
  readonly theta: number;
  readonly dim: number; // rotated columns per head (hd, or MLA's qk_rope_head_dim)
  readonly scaling: RopeScaling | null;
  readonly pairing: 'half' | 'adjacent';
}

export type RopeScaling =
  | { readonly type: 'linear'; readonly factor: number }
  | {
    readonly type: 'yarn';
    readonly factor: number; // max_position_embeddings / original when the original is given
    readonly originalMaxPositions: number;
    readonly betaFast: number;
    readonly betaSlow: number;
    readonly attentionFactor: number; // multiplies cos and sin
  };

/** The routed-expert feed-forward of the MoE layers. */
export interface MoeArchitecture {
  readonly numExperts: number; // E
  readonly numExpertsPerTok: number; // k
  readonly intermediateSize: number; // per routed expert
  /** Always-on experts beside the routed ones: one SwiGLU, optionally scaled by sigmoid(gate · x) (Qwen2-MoE). */
  readonly shared: { readonly intermediateSize: number; readonly gated: boolean } | null;
  /** The router has a per-expert selection bias tensor (DeepSeek-V3's e_score_correction_bias). */
  readonly selectionBias: boolean;
  /** Experts stored fused: input_linear [E, 2I, H] (gate rows, then up rows) and output_linear [E, H, I] (Granite). */
  readonly fused: boolean;
}

/** The family's own routing parameters, which its default router (and family routers applied elsewhere) read. */
export interface RoutingParameters {
  readonly normTopkProb: boolean;
  readonly routedScalingFactor: number;
  readonly numGroups: number; // n_group (1: no group limit)
  readonly topkGroups: number; // topk_group
  readonly topkMethod: 'greedy' | 'group_limited_greedy' | 'noaux_tc';
}

export interface Architecture {
  readonly modelType: string; // config.json model_type
  readonly vocabSize: number;
  readonly hiddenSize: number;
  readonly numLayers: number;
  readonly rmsNormEps: number;
  readonly maxPositionEmbeddings: number;
  readonly tieWordEmbeddings: boolean;
  readonly attention: AttentionArchitecture;
  readonly rope: RopeArchitecture;
  /** Per layer: a routed MoE block or a dense SwiGLU MLP. */
  readonly layerKinds: readonly ('moe' | 'dense')[];
  readonly denseIntermediateSize: number; // dense layers' MLP width (unused without dense layers)
  readonly moe: MoeArchitecture;
  readonly routing: RoutingParameters;
  /** Granite's scalings: embeddings × embedding, each residual branch × residual, logits ÷ logitsScaling. */
  readonly multipliers: { readonly embedding: number; readonly residual: number; readonly logitsScaling: number };
  readonly eosTokenId: number | null;
  readonly padTokenId: number | null;
  readonly bosTokenId: number | null;
}

/** Layer indices of the MoE layers, in order: routing metrics, traces and nulls name layers by these. */
export function moeLayerIndices(a: Architecture): number[] {
  const out: number[] = [];
  a.layerKinds.forEach((kind, l) => { if (kind === 'moe') out.push(l); });
  return out;
}

/** Widths of one attention layer's keys and values per token, and the shape the backend's attention needs. */
export function attentionWidths(a: AttentionArchitecture): { heads: number; kvHeads: number; keyDim: number; valueDim: number } {
  return a.kind === 'gqa'
    ? { heads: a.numHeads, kvHeads: a.numKvHeads, keyDim: a.headDim, valueDim: a.headDim }
    : { heads: a.numHeads, kvHeads: a.numHeads, keyDim: a.qkNopeDim + a.qkRopeDim, valueDim: a.vDim };
}
