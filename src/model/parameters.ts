import type { OlmoeConfig } from './config.js';

/** Analytic parameter counts of an OLMoE config: what a token touches when it uses k experts per layer. */
export interface ParameterCounts {
  /** All parameters the config implies. */
  readonly total: number;
  /** Embedding table plus lm_head (once when tied). */
  readonly embedding: number;
  /** Parameters one token uses with k experts in every layer. */
  active(k: number): number;
}

export function parameterCounts(c: OlmoeConfig): ParameterCounts {
  const H = c.hiddenSize;
  const q = c.numHeads * c.headDim;
  const kv = c.numKvHeads * c.headDim;
  const attention = 2 * H * q + 2 * H * kv + q + kv; // q/k/v/o projections + q/k norms
  const perLayerShared = attention + 2 * H + c.numExperts * H; // + two RMSNorm gains + router
  const perExpert = 3 * H * c.intermediateSize;
  const embedding = c.vocabSize * H * (c.tieWordEmbeddings ? 1 : 2);
  const shared = embedding + H + c.numLayers * perLayerShared; // + final norm
  return {
    total: shared + c.numLayers * c.numExperts * perExpert,
    embedding,
    active: (k) => shared + c.numLayers * k * perExpert,
  };
}
