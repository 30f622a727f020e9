/**
 * The OLMoE forward pass (Hugging Face `OlmoeForCausalLM`, SPEC §1), top to bottom, with the router as a
 * swappable object at the one step that varies.
 *
 * Letters: B sequences, T packed tokens (all sequences back to back, no padding), H hidden, V vocabulary,
 * E experts, L layers, nh / nkv query / key-value heads of width hd.
 * All numeric work goes through a Backend; this file only decides what is computed, in which order.
 */
import type { Backend, BatchLayout, ExpertPlan, ExpertWeights, KvStore, Tensor, TokenScores, Weight } from '../backends/backend.js';
import { RoutelabError } from '../errors.js';
import type { Router, RouterDefaults, Routing } from '../routers/router.js';
import { TopKRouter } from '../routers/topk.js';
import type { OlmoeConfig } from './config.js';
import type { StoredTensor } from './tensor.js';

/** Where weights come from: a checkpoint (or anything that can hand out named tensors for a config). */
export interface TensorSource {
  readonly config: OlmoeConfig;
  tensor(name: string): StoredTensor;
}

interface LayerWeights {
  inputNorm: Weight;
  qProj: Weight;
  kProj: Weight;
  vProj: Weight;
  oProj: Weight;
  qNorm: Weight;
  kNorm: Weight;
  postNorm: Weight;
  gate: Weight; // router [E, H]
  experts: ExpertWeights[];
}

/** What a router did at one layer, for observers (traces, metrics). Arrays are only valid during the call. */
export interface RoutingEvent {
  readonly layer: number;
  readonly layout: BatchLayout; // which packed tokens belong to which sequence
  readonly numExperts: number;
  readonly routerLogits: Float32Array; // [T × E]
  readonly routing: Routing;
}

export interface ForwardObserver {
  onRouting(event: RoutingEvent): void;
}

export interface ForwardOptions {
  /** Default: the model's own routing (top-k with the config's k and norm_topk_prob). */
  readonly router?: Router;
  readonly observer?: ForwardObserver;
  /** Continue these sequences from a KV cache (generation, continuations of a shared context); it advances by the new tokens. */
  readonly cache?: KvCache;
  /**
   * Which logits to compute: every token (default), each sequence's last token, none, or the packed token rows
   * listed (in that order) — scoring needs only the positions that predict scored tokens, and [T × V] is large.
   */
  readonly logits?: 'all' | 'last' | 'none' | Int32Array;
  /**
   * Instead of returning logits, score tokens against them: pair i is token `targets[i]` at row `rows[i]` of the
   * logits selected above. The result's `scores` then holds log-probabilities and ranks, and `logits` is empty.
   */
  readonly score?: { readonly rows: Int32Array; readonly targets: Int32Array };
}

export interface ForwardResult {
  /** [T × V] for 'all', [B × V] for 'last', [rows × V] for listed rows, empty for 'none' or when scoring. */
  readonly logits: Float32Array;
  readonly scores?: TokenScores;
  readonly layout: BatchLayout;
}

/** Per-layer key/value stores for B sequences, and how many positions each sequence has filled. */
export class KvCache {
  readonly lengths: Int32Array;
  constructor(
    readonly stores: readonly KvStore[],
    readonly capacity: number,
  ) {
    this.lengths = new Int32Array(stores[0].batch);
  }
}

export class OlmoeModel {
  private constructor(
    readonly config: OlmoeConfig,
    readonly backend: Backend,
    private readonly embedTokens: Weight,
    private readonly layers: LayerWeights[],
    private readonly finalNorm: Weight,
    private readonly lmHead: Weight,
  ) {}

  /** Move every weight into the backend in its stored dtype (each tensor is read from disk once). */
  static load(source: TensorSource, backend: Backend): OlmoeModel {
    const c = source.config;
    const w = (name: string) => backend.weight(source.tensor(name));
    const layers: LayerWeights[] = [];
    for (let l = 0; l < c.numLayers; l++) {
      const p = `model.layers.${l}`;
      const experts: ExpertWeights[] = [];
      for (let e = 0; e < c.numExperts; e++) {
        const x = `${p}.mlp.experts.${e}`;
        experts.push({ gate: w(`${x}.gate_proj.weight`), up: w(`${x}.up_proj.weight`), down: w(`${x}.down_proj.weight`) });
      }
      layers.push({
        inputNorm: w(`${p}.input_layernorm.weight`),
        qProj: w(`${p}.self_attn.q_proj.weight`),
        kProj: w(`${p}.self_attn.k_proj.weight`),
        vProj: w(`${p}.self_attn.v_proj.weight`),
        oProj: w(`${p}.self_attn.o_proj.weight`),
        qNorm: w(`${p}.self_attn.q_norm.weight`),
        kNorm: w(`${p}.self_attn.k_norm.weight`),
        postNorm: w(`${p}.post_attention_layernorm.weight`),
        gate: w(`${p}.mlp.gate.weight`),
        experts,
      });
    }
    const embedTokens = w('model.embed_tokens.weight');
    const lmHead = c.tieWordEmbeddings ? embedTokens : w('lm_head.weight');
    return new OlmoeModel(c, backend, embedTokens, layers, w('model.norm.weight'), lmHead);
  }

  get routerDefaults(): RouterDefaults {
    const c = this.config;
    return { numExperts: c.numExperts, numExpertsPerTok: c.numExpertsPerTok, normTopkProb: c.normTopkProb, numLayers: c.numLayers };
  }

  /** OLMoE's own routing: the config's top-k, renormalised when norm_topk_prob. */
  defaultRouter(): Router {
    return new TopKRouter(this.config.numExpertsPerTok, this.config.normTopkProb);
  }

  createCache(batch: number, capacity: number): KvCache {
    const width = this.config.numKvHeads * this.config.headDim;
    const stores = this.layers.map(() => this.backend.createKvStore(batch, capacity, width));
    return new KvCache(stores, capacity);
  }

  /**
   * Let sequence `toRow` of `to` continue from the first `positions` cached positions of sequence `fromRow` of
   * `from` (every layer's keys and values are copied): a context computed once, continued several ways.
   */
  copyCachePrefix(from: KvCache, fromRow: number, to: KvCache, toRow: number, positions: number): void {
    if (positions > from.lengths[fromRow]) {
      throw new Error(`copyCachePrefix: ${positions} positions from a sequence of ${from.lengths[fromRow]}`);
    }
    for (let l = 0; l < this.layers.length; l++) this.backend.copyKv(from.stores[l], fromRow, to.stores[l], toRow, positions);
    to.lengths[toRow] = positions;
  }

  /** Run B token sequences (any lengths ≥ 1) through the model. Sequences never see each other. */
  async forward(sequences: readonly ArrayLike<number>[], options: ForwardOptions = {}): Promise<ForwardResult> {
    const c = this.config;
    const be = this.backend;
    const { cache, observer } = options;
    const router = options.router ?? this.defaultRouter();
    const { ids, layout } = this.pack(sequences, cache);
    const T = ids.length;
    const B = sequences.length;
    const eps = c.rmsNormEps;
    const positions = new Int32Array(T); // each sequence counts from its own start (after its cached prefix)
    for (let b = 0; b < B; b++) {
      for (let t = layout.starts[b]; t < layout.starts[b + 1]; t++) positions[t] = layout.past[b] + t - layout.starts[b];
    }
    // Without a cache, one scratch store serves every layer: a layer's keys are dead once it is done.
    const kvWidth = c.numKvHeads * c.headDim;
    const scratch = cache ? null : be.createKvStore(B, maxLength(layout), kvWidth);
    const attentionShape = { numHeads: c.numHeads, numKvHeads: c.numKvHeads, headDim: c.headDim };

    let x = be.embed(ids, this.embedTokens); // [T, H], the residual stream
    for (let l = 0; l < c.numLayers; l++) {
      const w = this.layers[l];

      // Attention: q/k RMSNorm over the whole projection, optional clip, rotary, causal GQA attention.
      const h = be.rmsNorm(x, w.inputNorm, eps); // [T, H]
      const q = normed(be, be.matmul(h, w.qProj), w.qNorm, eps); // [T, nh·hd]
      const k = normed(be, be.matmul(h, w.kProj), w.kNorm, eps); // [T, nkv·hd]
      const v = be.matmul(h, w.vProj); // [T, nkv·hd]
      be.release(h);
      if (c.clipQkv !== null) for (const t of [q, k, v]) be.clampInPlace(t, c.clipQkv);
      be.ropeInPlace(q, positions, c.numHeads, c.headDim, c.ropeTheta);
      be.ropeInPlace(k, positions, c.numKvHeads, c.headDim, c.ropeTheta);
      const o = be.attention(q, k, v, cache ? cache.stores[l] : scratch!, layout, attentionShape); // [T, nh·hd]
      for (const t of [q, k, v]) be.release(t);
      addReleasing(be, x, be.matmul(o, w.oProj));
      be.release(o);

      // Mixture of experts: router logits → the router's choice → only the chosen experts run.
      const hm = be.rmsNorm(x, w.postNorm, eps); // [T, H]
      const logitsTensor = be.matmul(hm, w.gate); // [T, E]
      const routerLogits = await be.read(logitsTensor);
      be.release(logitsTensor);
      const routing = router.route(l, routerLogits, T, c.numExperts);
      observer?.onRouting({ layer: l, layout, numExperts: c.numExperts, routerLogits, routing });
      addReleasing(be, x, be.moeExperts(hm, expertPlan(routing, c.numExperts), w.experts));
      be.release(hm);
    }

    if (cache) for (let b = 0; b < B; b++) cache.lengths[b] += layout.starts[b + 1] - layout.starts[b];
    const mode = options.logits ?? 'all';
    if (mode === 'none') {
      be.release(x);
      return { logits: new Float32Array(0), layout };
    }
    if (mode !== 'all') {
      const rows = mode === 'last' ? layout.starts.slice(1).map((end) => end - 1) : mode;
      const all = x;
      x = be.gatherRows(all, rows);
      be.release(all);
    }
    const final = be.rmsNorm(x, this.finalNorm, eps);
    be.release(x);
    const logitsTensor = be.matmul(final, this.lmHead); // [rows, V]
    be.release(final);
    if (options.score) {
      const scores = await be.scoreTokens(logitsTensor, options.score.rows, options.score.targets);
      be.release(logitsTensor);
      return { logits: new Float32Array(0), scores, layout };
    }
    const logits = await be.read(logitsTensor);
    return { logits, layout };
  }

  /** Validate the token ids and lay the sequences out back to back. */
  private pack(sequences: readonly ArrayLike<number>[], cache?: KvCache): { ids: Int32Array; layout: BatchLayout } {
    const c = this.config;
    if (sequences.length === 0) throw new RoutelabError('input_ids', 'empty input: expected at least one sequence');
    if (cache && cache.lengths.length !== sequences.length) {
      throw new RoutelabError('input_ids', `${sequences.length} sequences for a KV cache of ${cache.lengths.length}`);
    }
    const starts = new Int32Array(sequences.length + 1);
    const past = cache ? Int32Array.from(cache.lengths) : new Int32Array(sequences.length);
    for (let b = 0; b < sequences.length; b++) {
      const n = sequences[b].length;
      if (n === 0) throw new RoutelabError('input_ids', `sequence ${b} is empty: every sequence needs at least one token`);
      const end = past[b] + n;
      if (end > c.maxPositionEmbeddings) {
        throw new RoutelabError('input_ids', `sequence ${b} reaches position ${end}, beyond max_position_embeddings ${c.maxPositionEmbeddings}`);
      }
      if (cache && end > cache.capacity) throw new RoutelabError('input_ids', `sequence ${b} reaches position ${end}, beyond the KV cache's ${cache.capacity}`);
      starts[b + 1] = starts[b] + n;
    }
    const ids = new Int32Array(starts[sequences.length]);
    for (let b = 0; b < sequences.length; b++) {
      const seq = sequences[b];
      for (let s = 0; s < seq.length; s++) {
        const id = seq[s];
        if (!Number.isInteger(id) || id < 0 || id >= c.vocabSize) {
          throw new RoutelabError('input_ids', `sequence ${b}, position ${s}: token id ${id} is not in [0, vocab_size ${c.vocabSize})`);
        }
        ids[starts[b] + s] = id;
      }
    }
    return { ids, layout: { starts, past } };
  }
}

function normed(be: Backend, x: Tensor, w: Weight, eps: number): Tensor {
  const y = be.rmsNorm(x, w, eps);
  be.release(x);
  return y;
}

function addReleasing(be: Backend, x: Tensor, y: Tensor): void {
  be.addInPlace(x, y);
  be.release(y);
}

function maxLength(layout: BatchLayout): number {
  let max = 0;
  for (let b = 0; b + 1 < layout.starts.length; b++) max = Math.max(max, layout.starts[b + 1] - layout.starts[b]);
  return max;
}

/** Group the router's (token, expert, weight) choices by expert: a counting sort keeps tokens in order. */
export function expertPlan(routing: Routing, numExperts: number): ExpertPlan {
  const { tokens: T, maxK, counts, experts, weights } = routing;
  const offsets = new Int32Array(numExperts + 1);
  for (let t = 0; t < T; t++) {
    if (counts[t] < 0 || counts[t] > maxK) throw new Error(`router chose ${counts[t]} experts for token ${t} (maxK ${maxK})`);
    for (let j = 0; j < counts[t]; j++) {
      const e = experts[t * maxK + j];
      if (e < 0 || e >= numExperts) throw new Error(`router chose expert ${e} of ${numExperts} for token ${t}`);
      offsets[e + 1]++;
    }
  }
  for (let e = 0; e < numExperts; e++) offsets[e + 1] += offsets[e];
  const fill = offsets.slice(0, numExperts);
  const planTokens = new Int32Array(offsets[numExperts]);
  const planWeights = new Float32Array(offsets[numExperts]);
  for (let t = 0; t < T; t++) {
    for (let j = 0; j < counts[t]; j++) {
      const slot = fill[experts[t * maxK + j]]++;
      planTokens[slot] = t;
      planWeights[slot] = weights[t * maxK + j];
    }
  }
  return { offsets, tokens: planTokens, weights: planWeights };
}
