import type { StoredTensor, WeightDtype } from '../model/tensor.js';

/**
 * The numeric kernels of the forward pass, behind one narrow interface. Model code holds only the opaque
 * handles below and never touches their memory, so a backend may keep them anywhere (JS heap, worker-shared
 * memory, GPU buffers). Activations are float32 matrices [rows × cols]; weights keep their stored dtype
 * (BF16/F16/F32) and are widened inside the kernels.
 */
export interface Tensor {
  readonly rows: number;
  readonly cols: number;
}

export interface Weight {
  readonly name: string;
  readonly dtype: WeightDtype;
  readonly shape: readonly number[];
}

/** One SwiGLU expert: down(silu(gate(x)) ⊙ up(x)). */
export interface ExpertWeights {
  readonly gate: Weight; // [I, H]
  readonly up: Weight; // [I, H]
  readonly down: Weight; // [H, I]
}

/**
 * Which tokens each expert serves, in compressed-sparse-row form so that an expert's work is one gathered
 * matrix multiply: expert e serves tokens `tokens[offsets[e] .. offsets[e+1])` with routing weights `weights[…]`.
 * Tokens are listed in increasing order within an expert.
 */
export interface ExpertPlan {
  readonly offsets: Int32Array; // [E + 1]
  readonly tokens: Int32Array; // [assignments]
  readonly weights: Float32Array; // [assignments]
}

/**
 * How packed tokens [T] split into sequences: sequence b owns tokens `starts[b] .. starts[b+1])`, and its first
 * new token sits at position `past[b]` (tokens already in the KV cache). There is no padding anywhere.
 */
export interface BatchLayout {
  readonly starts: Int32Array; // [B + 1]
  readonly past: Int32Array; // [B]
}

/** Key/value storage of one attention layer for B sequences of up to `capacity` positions. */
export interface KvStore {
  readonly batch: number;
  readonly capacity: number;
  readonly width: number; // nkv · hd
}

export interface AttentionShape {
  readonly numHeads: number;
  readonly numKvHeads: number;
  readonly headDim: number;
}

/** Per requested (row, token) pair: the token's log-probability and its rank in that row. */
export interface TokenScores {
  /** log softmax(row)[token], the normaliser summed in double over the full row. */
  readonly logProbs: Float64Array;
  /** Tokens with a larger logit, plus lower ids with an equal one (0 = argmax, ties to the lowest id). */
  readonly ranks: Int32Array;
}

export interface Backend {
  readonly name: string;

  /** Take a checkpoint tensor into backend memory in its stored dtype. */
  weight(stored: StoredTensor): Weight;
  upload(data: Float32Array, rows: number, cols: number): Tensor;
  read(x: Tensor): Promise<Float32Array>;
  /** Return a tensor's memory early (GPU backends); the tensor must not be used afterwards. */
  release(x: Tensor): void;

  /** Rows `rows` of x, in that order → [rows.length, cols]. */
  gatherRows(x: Tensor, rows: Int32Array): Tensor;
  /** Rows of `table` [V, H] for each id → [T, H]. */
  embed(ids: Int32Array, table: Weight): Tensor;
  /** w ⊙ x / sqrt(mean(x²) + eps) over each row. */
  rmsNorm(x: Tensor, w: Weight, eps: number): Tensor;
  /** x · Wᵀ: [T, K] × [N, K] → [T, N]. */
  matmul(x: Tensor, w: Weight): Tensor;
  /** x ← clamp(x, −limit, limit). */
  clampInPlace(x: Tensor, limit: number): void;
  /** x ← x + y. */
  addInPlace(x: Tensor, y: Tensor): void;
  /** NeoX rotate-half rotary embedding in place over each head of x [T, heads · headDim]; one position per row. */
  ropeInPlace(x: Tensor, positions: Int32Array, heads: number, headDim: number, theta: number): void;

  createKvStore(batch: number, capacity: number, width: number): KvStore;
  /**
   * Append each sequence's new k, v rows at positions past[b]… of `store`, then causal attention of q over
   * positions 0 … (own position) of the same sequence; query head h reads kv head ⌊h / (nh / nkv)⌋.
   */
  attention(q: Tensor, k: Tensor, v: Tensor, store: KvStore, layout: BatchLayout, shape: AttentionShape): Tensor;
  /**
   * Copy positions 0 … positions−1 of sequence `fromRow` of `from` into sequence `toRow` of `to`, a distinct store
   * of the same width: a context computed once can then be continued by several sequences.
   */
  copyKv(from: KvStore, fromRow: number, to: KvStore, toRow: number, positions: number): void;

  /** Σ over experts e of weight · expert_e(x) for the tokens of `plan` → [T, H] (rows of unrouted tokens are 0). */
  moeExperts(x: Tensor, plan: ExpertPlan, experts: readonly ExpertWeights[]): Tensor;

  /**
   * Score tokens under the log-softmax of `logits` [R, V] rows: pair i is token targets[i] of row rows[i]. Scoring
   * needs only these numbers, so the [R × V] logits never have to leave the backend.
   */
  scoreTokens(logits: Tensor, rows: Int32Array, targets: Int32Array): Promise<TokenScores>;

  /**
   * Device memory the backend holds (weights, activations, KV stores, pools), now and at most so far; null for host
   * backends, whose buffers are ordinary process memory and already part of its RSS.
   */
  deviceMemory(): DeviceMemory | null;
}

export interface DeviceMemory {
  readonly bytes: number;
  readonly peakBytes: number;
}
