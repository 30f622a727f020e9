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
  readonly keyWidth: number; // nkv · hd
  readonly valueWidth: number; // nkv · vd
}

export interface AttentionShape {
  readonly numHeads: number; // nh
  readonly numKvHeads: number; // nkv, dividing nh
  readonly headDim: number; // hd: width of each query and key head
  readonly valueDim: number; // vd: width of each value (and output) head; hd except in multi-head latent attention
  readonly scale: number; // multiplies q·k before the softmax (1/√hd unless the family says otherwise)
  /** Sliding window: a query at position p sees keys max(0, p − window + 1) … p; null sees every earlier key. */
  readonly window: number | null;
}

/** Rotary position embedding of one family: which frequencies, how pairs are formed, how cos/sin are scaled. */
export interface Rotary {
  /** [rotaryDim / 2] float32; pair i turns by the float32 angle position · invFreq[i]. */
  readonly invFreq: Float32Array;
  /** cos and sin (each rounded to float32) are multiplied by this (YaRN's attention factor; 1 otherwise). */
  readonly attentionScaling: number;
  /** 'half': NeoX rotate-half, pair i = (i, i + d/2); 'adjacent': pair i = (2i, 2i + 1), as DeepSeek's. */
  readonly pairing: 'half' | 'adjacent';
}

/** Per requested (row, token) pair: the token's log-probability and its rank in that row. */
export interface TokenScores {
  /** log softmax(row)[token], the normaliser summed in double over the full row. */
  readonly logProbs: Float64Array;
  /** Tokens with a larger logit, plus lower ids with an equal one (0 = argmax, ties to the lowest id). */
  readonly ranks: Int32Array;
}

/** Bytes of float32 logits a backend holds at once while scoring (one block of rows; see `Backend.scoreTokens`). */
const LOGIT_BLOCK_BYTES = 32 * 2 ** 20;

/**
 * Rows per block of scoring logits for a vocabulary of V: LOGIT_BLOCK_BYTES worth, but at least 64 rows, so that
 * each block's matrix multiply still amortises its pass over the lm_head: 166 rows at V = 50,304. Measured on the
 * native backend (4,096 rows, H = 128, 2 threads), blocked scoring took 0.63× the CPU time of the whole [R × V]
 * product and its scoring, 16 MiB blocks 0.68×, 64 MiB 0.64×: a block in cache beats a fresh 824 MB array.
 */
export function logitBlockRows(V: number): number {
  return Math.max(64, Math.floor(LOGIT_BLOCK_BYTES / (4 * V)));
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
  /**
   * w ⊙ x / sqrt(mean(x²) + eps) over each run of w's length within a row: the whole row, or each head when w is
   * one head wide (Qwen3's per-head q/k norms). w's length must divide the row.
   */
  rmsNorm(x: Tensor, w: Weight, eps: number): Tensor;
  /** x · Wᵀ: [T, K] × [N, K] → [T, N]. */
  matmul(x: Tensor, w: Weight): Tensor;
  /**
   * Per row of x · Wᵀ (each entry times `factor`, rounded to float32, when it is not 1), the index of its largest
   * entry, the lowest on ties, exactly as backends/argmax.ts scans: greedy decoding's lm_head, whose [T × N] logits
   * then never have to leave the backend.
   */
  matmulArgmax(x: Tensor, w: Weight, factor: number): Promise<Int32Array>;
  /** x[r, c] ← x[r, c] + bias[c] (a linear layer's bias, bias of shape [cols]). */
  addBiasInPlace(x: Tensor, bias: Weight): void;
  /** x ← clamp(x, −limit, limit). */
  clampInPlace(x: Tensor, limit: number): void;
  /** x ← x · factor (factor rounded to float32). */
  scaleInPlace(x: Tensor, factor: number): void;
  /** x ← x + y. */
  addInPlace(x: Tensor, y: Tensor): void;
  /**
   * Columns `cols` (in that order) of the side-by-side concatenation of `parts` (all with the same rows) →
   * [rows, cols.length]: splitting and reassembling heads, as multi-head latent attention does.
   */
  gatherCols(parts: readonly Tensor[], cols: Int32Array): Tensor;
  /**
   * Rotary embedding in place, one position per row: within each of `heads` heads of width `headWidth` in x, the
   * columns offset … offset + 2·invFreq.length − 1 are rotated (the whole head when offset is 0 and the widths agree).
   */
  ropeInPlace(x: Tensor, positions: Int32Array, rotary: Rotary, heads: number, headWidth: number, offset: number): void;

  createKvStore(batch: number, capacity: number, keyWidth: number, valueWidth: number): KvStore;
  /**
   * Append each sequence's new k, v rows at positions past[b]… of `store`, then causal attention of q over
   * positions 0 … (own position) of the same sequence (or the last `shape.window` of them), softmax(scale · q·k)
   * in float32; query head h reads kv head ⌊h / (nh / nkv)⌋. Output [T, nh · vd].
   */
  attention(q: Tensor, k: Tensor, v: Tensor, store: KvStore, layout: BatchLayout, shape: AttentionShape): Tensor;
  /**
   * Copy positions 0 … positions−1 of sequence `fromRow` of `from` into sequence `toRow` of `to`, a distinct store
   * of the same widths: a context computed once can then be continued by several sequences.
   */
  copyKv(from: KvStore, fromRow: number, to: KvStore, toRow: number, positions: number): void;

  /**
   * Σ over experts e of weight · expert_e(x) for the tokens of `plan` → [T, H] (rows of unrouted tokens are 0).
   * Dense MLPs and shared experts are a one-expert plan over every token.
   */
  moeExperts(x: Tensor, plan: ExpertPlan, experts: readonly ExpertWeights[]): Tensor;

  /**
   * Score tokens under log softmax(fround(scale) · hidden · headᵀ): pair i is token targets[i] of row rows[i] of
   * hidden [R, H], head [V, H] (the lm_head). Scoring needs only these numbers, so a backend forms the [R × V]
   * logits at most `logitBlockRows(V)` rows at a time, in one buffer reused from block to block: the logits of a
   * whole batch never exist at once. Each row's logits are those `matmul(hidden, head)` gives, bit for bit (native:
   * at vocabularies of 2 · threads · 128 tokens or more).
   */
  scoreTokens(hidden: Tensor, head: Weight, scale: number, rows: Int32Array, targets: Int32Array): Promise<TokenScores>;

  /**
   * Device memory the backend holds (weights, activations, KV stores, pools), now and at most so far; null for host
   * backends, whose buffers are ordinary process memory and already part of its RSS.
   */
  deviceMemory(): DeviceMemory | null;

  /** Host threads the kernels run on (the reference backend: 1); null for a device backend. */
  readonly threads: number | null;
}

export interface DeviceMemory {
  readonly bytes: number;
  readonly peakBytes: number;
}
