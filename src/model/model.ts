/**
 * The forward pass of every supported MoE family (Hugging Face `*ForCausalLM`), top to bottom, with the router as a
 * swappable object at the one step that varies. A family differs only by its declared Architecture: which
 * attention (grouped-query or DeepSeek's latent attention), which optional steps (biases, q/k norms, clip, sliding
 * window, multipliers), which layers are dense, whether a shared expert runs beside the routed ones.
 *
 * Letters: B sequences, T packed tokens (all sequences back to back, no padding), H hidden, V vocabulary,
 * E routed experts, nh / nkv query / key-value heads of width hd (values vd).
 * All numeric work goes through a Backend; this file only decides what is computed, in which order.
 */
import type {
  AttentionShape, Backend, BatchLayout, ExpertPlan, ExpertWeights, KvStore, Rotary, Tensor, TokenScores, Weight,
} from '../backends/backend.js';
import { RoutelabError } from '../errors.js';
import { parseRouterSpec } from '../routers/registry.js';
import type { Router, RouterDefaults, Routing } from '../routers/router.js';
import { type Architecture, attentionWidths, type GqaAttention, type MlaAttention, moeLayerIndices } from './architecture.js';
import { type Family, routerDefaultsOf, type TensorRole } from './family.js';
import { rotaryFor } from './rope.js';
import { type TensorSpec, tensorLayout } from './tensors.js';
import { storedSlice, storedToFloat32, type StoredTensor } from './tensor.js';

/** Where weights come from: a checkpoint (or anything that can hand out named tensors for an architecture). */
export interface TensorSource {
  readonly family: Family;
  readonly architecture: Architecture;
  tensor(name: string): StoredTensor;
}

interface GqaWeights {
  readonly kind: 'gqa';
  readonly q: Weight; readonly k: Weight; readonly v: Weight; readonly o: Weight;
  readonly qBias?: Weight; readonly kBias?: Weight; readonly vBias?: Weight; readonly oBias?: Weight;
  readonly qNorm?: Weight; readonly kNorm?: Weight;
}

interface MlaWeights {
  readonly kind: 'mla';
  readonly q?: Weight; // without q LoRA
  readonly qA?: Weight; readonly qANorm?: Weight; readonly qB?: Weight;
  readonly kvA: Weight; readonly kvANorm: Weight; readonly kvB: Weight; readonly o: Weight;
}

interface MoeWeights {
  readonly kind: 'moe';
  readonly router: Weight; // [E, H]
  readonly experts: readonly ExpertWeights[];
  readonly shared?: readonly [ExpertWeights]; // a one-expert list, built once (backends cache per list)
  readonly sharedGate?: Weight; // [1, H]
}

interface LayerWeights {
  readonly inputNorm: Weight;
  readonly attention: GqaWeights | MlaWeights;
  readonly postNorm: Weight;
  readonly ffn: MoeWeights | { readonly kind: 'dense'; readonly mlp: readonly [ExpertWeights] };
}

/** What a router did at one MoE layer, for observers (traces, metrics). Arrays are only valid during the call. */
export interface RoutingEvent {
  readonly layer: number; // the decoder layer's index (dense layers have no event)
  readonly moeLayer: number; // its index among the MoE layers: what routers, metrics, traces and nulls count by
  readonly layout: BatchLayout; // which packed tokens belong to which sequence
  readonly numExperts: number;
  readonly routerLogits: Float32Array; // [T × E], raw gate outputs
  readonly routing: Routing;
  /** Qwen2-MoE: sigmoid(shared_expert_gate · x) per token, the shared expert's weight. */
  readonly sharedGate?: Float32Array; // [T]
}

export interface ForwardObserver {
  onRouting?(event: RoutingEvent): void;
  /** The residual stream after each decoder layer, [T × H] (read from the backend only when this is given). */
  onLayerOutput?(event: { readonly layer: number; readonly layout: BatchLayout; readonly hidden: Float32Array }): void;
}

export interface ForwardOptions {
  /** Default: the family's own routing. */
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
   * logits selected above. The result's `scores` then holds log-probabilities and ranks, and `logits` is empty; the
   * selected rows' logits are never all held at once (Backend.scoreTokens).
   */
  readonly score?: { readonly rows: Int32Array; readonly targets: Int32Array };
  /**
   * Instead of returning logits, pick each selected row's largest logit (greedy decoding): the result's `tokens`
   * holds the ids, chosen as the greedy sampler would from the logits, and `logits` is empty. The backend fuses the
   * choice into the lm_head, so the [rows × V] logits are neither read back nor kept.
   */
  readonly argmax?: boolean;
}

export interface ForwardResult {
  /** [T × V] for 'all', [B × V] for 'last', [rows × V] for listed rows, empty for 'none' or when scoring. */
  readonly logits: Float32Array;
  readonly scores?: TokenScores;
  /** With `argmax`: per selected row, the id of its largest logit (the lowest id on ties). */
  readonly tokens?: Int32Array;
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

export class MoeModel {
  /** Column maps of latent attention (computed once): the compressed kv split, and each head's k and v. */
  private readonly latentColumns: LatentColumns | null;
  private readonly rotary: Rotary;
  readonly moeLayers: readonly number[];

  private constructor(
    readonly family: Family,
    readonly architecture: Architecture,
    readonly tensors: readonly TensorSpec[],
    readonly backend: Backend,
    private readonly embedTokens: Weight,
    private readonly layers: readonly LayerWeights[],
    private readonly finalNorm: Weight,
    private readonly lmHead: Weight,
    private readonly selectionBias: ReadonlyMap<number, Float32Array>,
  ) {
    this.rotary = rotaryFor(architecture.rope);
    this.moeLayers = moeLayerIndices(architecture);
    this.latentColumns = architecture.attention.kind === 'mla' ? latentColumns(architecture.attention) : null;
  }

  /** Move every weight into the backend in its stored dtype (each tensor is read from disk once). */
  static load(source: TensorSource, backend: Backend): MoeModel {
    const a = source.architecture;
    const specs = tensorLayout(source.family, a);
    const byRole = new Map<string, TensorSpec>();
    for (const s of specs) byRole.set(`${s.role}/${s.layer}/${s.expert}`, s);
    const stored = (role: TensorRole, layer: number | null = null, expert: number | null = null): StoredTensor => {
      const spec = byRole.get(`${role}/${layer}/${expert}`);
      if (!spec) throw new Error(`no ${role} tensor for layer ${layer} expert ${expert} in the ${source.family.modelType} layout`);
      return source.tensor(spec.name);
    };
    const w = (role: TensorRole, layer: number | null = null, expert: number | null = null) => backend.weight(stored(role, layer, expert));
    const optional = (present: boolean, role: TensorRole, l: number) => (present ? w(role, l) : undefined);
    const swiglu = (roles: readonly [TensorRole, TensorRole, TensorRole], l: number, e: number | null = null): ExpertWeights => (
      { gate: w(roles[0], l, e), up: w(roles[1], l, e), down: w(roles[2], l, e) });

    const selectionBias = new Map<number, Float32Array>(); // by MoE-layer index
    const layers: LayerWeights[] = [];
    for (let l = 0; l < a.numLayers; l++) {
      const att = a.attention;
      const attention: GqaWeights | MlaWeights = att.kind === 'gqa'
        ? {
          kind: 'gqa', q: w('q', l), k: w('k', l), v: w('v', l), o: w('o', l),
          qBias: optional(att.qkvBias, 'qBias', l), kBias: optional(att.qkvBias, 'kBias', l), vBias: optional(att.qkvBias, 'vBias', l),
          oBias: optional(att.oBias, 'oBias', l),
          qNorm: optional(att.qkNorm !== 'none', 'qNorm', l), kNorm: optional(att.qkNorm !== 'none', 'kNorm', l),
        }
        : {
          kind: 'mla', q: optional(att.qLoraRank === null, 'q', l),
          qA: optional(att.qLoraRank !== null, 'qA', l), qANorm: optional(att.qLoraRank !== null, 'qANorm', l), qB: optional(att.qLoraRank !== null, 'qB', l),
          kvA: w('kvA', l), kvANorm: w('kvANorm', l), kvB: w('kvB', l), o: w('o', l),
        };
      let ffn: LayerWeights['ffn'];
      if (a.layerKinds[l] === 'dense') {
        ffn = { kind: 'dense', mlp: [swiglu(['denseGate', 'denseUp', 'denseDown'], l)] };
      } else {
        const m = a.moe;
        if (m.selectionBias) selectionBias.set(selectionBias.size, storedToFloat32(stored('routerBias', l)));
        ffn = {
          kind: 'moe',
          router: w('router', l),
          experts: m.fused ? fusedExperts(stored('expertsIn', l), stored('expertsOut', l), m.numExperts, m.intermediateSize, backend)
            : Array.from({ length: m.numExperts }, (_, e) => swiglu(['expertGate', 'expertUp', 'expertDown'], l, e)),
          shared: m.shared ? [swiglu(['sharedGate', 'sharedUp', 'sharedDown'], l)] : undefined,
          sharedGate: m.shared?.gated ? w('sharedExpertGate', l) : undefined,
        };
      }
      layers.push({ inputNorm: w('inputNorm', l), attention, postNorm: w('postNorm', l), ffn });
    }
    const embedTokens = w('embed');
    const lmHead = a.tieWordEmbeddings ? embedTokens : w('lmHead');
    return new MoeModel(source.family, a, specs, backend, embedTokens, layers, w('finalNorm'), lmHead, selectionBias);
  }

  /** What routers are built from besides their own parameters: the model's experts, layers and routing parameters. */
  get routerDefaults(): RouterDefaults {
    return routerDefaultsOf(this.family, this.architecture, (moeLayer) => this.selectionBias.get(moeLayer) ?? null);
  }

  /** The family's own routing (`default`). */
  defaultRouter(): Router {
    return parseRouterSpec('default', this.routerDefaults);
  }

  /** Decoder layers with a router. */
  get numMoeLayers(): number {
    return this.moeLayers.length;
  }

  createCache(batch: number, capacity: number): KvCache {
    const { kvHeads, keyDim, valueDim } = attentionWidths(this.architecture.attention);
    const stores = this.layers.map(() => this.backend.createKvStore(batch, capacity, kvHeads * keyDim, kvHeads * valueDim));
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
    const a = this.architecture;
    const be = this.backend;
    const { cache, observer } = options;
    const router = options.router ?? this.defaultRouter();
    const { ids, layout } = this.pack(sequences, cache);
    const T = ids.length;
    const B = sequences.length;
    const eps = a.rmsNormEps;
    const positions = new Int32Array(T); // each sequence counts from its own start (after its cached prefix)
    for (let b = 0; b < B; b++) {
      for (let t = layout.starts[b]; t < layout.starts[b + 1]; t++) positions[t] = layout.past[b] + t - layout.starts[b];
    }
    // Without a cache, one scratch store serves every layer: a layer's keys are dead once it is done.
    const { kvHeads, keyDim, valueDim } = attentionWidths(a.attention);
    const scratch = cache ? null : be.createKvStore(B, maxLength(layout), kvHeads * keyDim, kvHeads * valueDim);
    const { embedding, residual, logitsScaling } = a.multipliers;

    let x = be.embed(ids, this.embedTokens); // [T, H], the residual stream
    if (embedding !== 1) be.scaleInPlace(x, embedding);
    for (let l = 0; l < a.numLayers; l++) {
      const w = this.layers[l];
      const store = cache ? cache.stores[l] : scratch!;

      // Attention (pre-norm), then the residual add.
      const h = be.rmsNorm(x, w.inputNorm, eps); // [T, H]
      const attn = w.attention.kind === 'gqa'
        ? this.groupedQueryAttention(h, w.attention, positions, store, layout)
        : this.latentAttention(h, w.attention, positions, store, layout);
      be.release(h);
      addResidual(be, x, attn, residual);

      // Feed-forward: a dense SwiGLU, or router logits → the router's choice → only the chosen experts run.
      const hm = be.rmsNorm(x, w.postNorm, eps); // [T, H]
      const ffn = w.ffn.kind === 'dense'
        ? be.moeExperts(hm, everyToken(T, null), w.ffn.mlp)
        : await this.mixtureOfExperts(l, this.moeLayers.indexOf(l), hm, w.ffn, router, layout, observer);
      be.release(hm);
      addResidual(be, x, ffn, residual);
      if (observer?.onLayerOutput) observer.onLayerOutput({ layer: l, layout, hidden: Float32Array.from(await be.read(x)) });
    }

    if (cache) for (let b = 0; b < B; b++) cache.lengths[b] += layout.starts[b + 1] - layout.starts[b];
    const mode = options.logits ?? 'all';
    if (options.argmax && options.score) throw new Error('forward: argmax and score are exclusive');
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
    if (options.score) {
      // The backend forms the logits a block of rows at a time: [rows × V] float32 would dwarf everything else.
      const scores = await be.scoreTokens(final, this.lmHead, 1 / logitsScaling, options.score.rows, options.score.targets);
      be.release(final);
      return { logits: new Float32Array(0), scores, layout };
    }
    if (options.argmax) {
      const tokens = await be.matmulArgmax(final, this.lmHead, 1 / logitsScaling);
      be.release(final);
      return { logits: new Float32Array(0), tokens, layout };
    }
    const logitsTensor = be.matmul(final, this.lmHead); // [rows, V]
    be.release(final);
    if (logitsScaling !== 1) be.scaleInPlace(logitsTensor, 1 / logitsScaling);
    const logits = await be.read(logitsTensor);
    return { logits, layout };
  }

  /** q/k/v projections (+ bias) → optional q/k RMSNorm → optional clip → rotary → causal GQA → o_proj (+ bias). */
  private groupedQueryAttention(h: Tensor, w: GqaWeights, positions: Int32Array, store: KvStore, layout: BatchLayout): Tensor {
    const be = this.backend;
    const att = this.architecture.attention as GqaAttention;
    const eps = this.architecture.rmsNormEps;
    const project = (weight: Weight, bias: Weight | undefined, norm: Weight | undefined): Tensor => {
      const y = be.matmul(h, weight);
      if (bias) be.addBiasInPlace(y, bias);
      return norm ? normed(be, y, norm, eps) : y;
    };
    const q = project(w.q, w.qBias, w.qNorm); // [T, nh·hd]
    const k = project(w.k, w.kBias, w.kNorm); // [T, nkv·hd]
    const v = project(w.v, w.vBias, undefined); // [T, nkv·hd]
    if (att.clipQkv !== null) for (const t of [q, k, v]) be.clampInPlace(t, att.clipQkv);
    be.ropeInPlace(q, positions, this.rotary, att.numHeads, att.headDim, 0);
    be.ropeInPlace(k, positions, this.rotary, att.numKvHeads, att.headDim, 0);
    const shape: AttentionShape = {
      numHeads: att.numHeads, numKvHeads: att.numKvHeads, headDim: att.headDim, valueDim: att.headDim, scale: att.scale, window: att.slidingWindow,
    };
    const o = be.attention(q, k, v, store, layout, shape); // [T, nh·hd]
    for (const t of [q, k, v]) be.release(t);
    const out = be.matmul(o, w.o);
    be.release(o);
    if (w.oBias) be.addBiasInPlace(out, w.oBias);
    return out;
  }

  /**
   * DeepSeek's multi-head latent attention: q from q_proj or its LoRA pair; the kv latent (RMSNorm, kv_b_proj)
   * gives each head's k_nope and v, and one rotary key is shared by every head; rotary only on the rope columns.
   */
  private latentAttention(h: Tensor, w: MlaWeights, positions: Int32Array, store: KvStore, layout: BatchLayout): Tensor {
    const be = this.backend;
    const att = this.architecture.attention as MlaAttention;
    const eps = att.latentNormEps;
    const nh = att.numHeads;
    const qkDim = att.qkNopeDim + att.qkRopeDim;
    let q: Tensor; // [T, nh·(nope + rope)]
    if (w.q) q = be.matmul(h, w.q);
    else {
      const qLatent = normed(be, be.matmul(h, w.qA!), w.qANorm!, eps);
      q = be.matmul(qLatent, w.qB!);
      be.release(qLatent);
    }
    const compressed = be.matmul(h, w.kvA); // [T, kv_lora + rope]
    const columns = this.latentColumns!;
    const latent = be.gatherCols([compressed], columns.latent);
    const kRot = be.gatherCols([compressed], columns.rotary); // [T, rope]
    be.release(compressed);
    const kv = be.matmul(normed(be, latent, w.kvANorm, eps), w.kvB); // [T, nh·(nope + vd)]
    be.ropeInPlace(q, positions, this.rotary, nh, qkDim, att.qkNopeDim);
    be.ropeInPlace(kRot, positions, this.rotary, 1, att.qkRopeDim, 0);
    const k = be.gatherCols([kv, kRot], columns.keys); // [T, nh·(nope + rope)]
    const v = be.gatherCols([kv], columns.values); // [T, nh·vd]
    for (const t of [kv, kRot]) be.release(t);
    const shape: AttentionShape = { numHeads: nh, numKvHeads: nh, headDim: qkDim, valueDim: att.vDim, scale: att.scale, window: null };
    const o = be.attention(q, k, v, store, layout, shape); // [T, nh·vd]
    for (const t of [q, k, v]) be.release(t);
    const out = be.matmul(o, w.o);
    be.release(o);
    return out;
  }

  /** Router logits → the router's choice → the chosen experts, plus the shared expert (gated or not) when present. */
  private async mixtureOfExperts(layer: number, moeLayer: number, hm: Tensor, w: MoeWeights, router: Router, layout: BatchLayout, observer?: ForwardObserver): Promise<Tensor> {
    const be = this.backend;
    const E = this.architecture.moe.numExperts;
    const T = hm.rows;
    const logitsTensor = be.matmul(hm, w.router); // [T, E]
    const routerLogits = await be.read(logitsTensor); // may alias the tensor: released once observers are done
    const routing = router.route(moeLayer, routerLogits, T, E);
    let sharedGate: Float32Array | undefined;
    if (w.sharedGate) {
      const g = be.matmul(hm, w.sharedGate); // [T, 1]
      sharedGate = Float32Array.from(await be.read(g), (z) => 1 / (1 + Math.exp(-z)));
      be.release(g);
    }
    observer?.onRouting?.({ layer, moeLayer, layout, numExperts: E, routerLogits, routing, sharedGate });
    be.release(logitsTensor);
    const out = be.moeExperts(hm, expertPlan(routing, E), w.experts);
    if (w.shared) addResidual(be, out, be.moeExperts(hm, everyToken(T, sharedGate ?? null), w.shared), 1);
    return out;
  }

  /** Validate the token ids and lay the sequences out back to back. */
  private pack(sequences: readonly ArrayLike<number>[], cache?: KvCache): { ids: Int32Array; layout: BatchLayout } {
    const a = this.architecture;
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
      if (end > a.maxPositionEmbeddings) {
        throw new RoutelabError('input_ids', `sequence ${b} reaches position ${end}, beyond max_position_embeddings ${a.maxPositionEmbeddings}`);
      }
      if (cache && end > cache.capacity) throw new RoutelabError('input_ids', `sequence ${b} reaches position ${end}, beyond the KV cache's ${cache.capacity}`);
      starts[b + 1] = starts[b] + n;
    }
    const ids = new Int32Array(starts[sequences.length]);
    for (let b = 0; b < sequences.length; b++) {
      const seq = sequences[b];
      for (let s = 0; s < seq.length; s++) {
        const id = seq[s];
        if (!Number.isInteger(id) || id < 0 || id >= a.vocabSize) {
          throw new RoutelabError('input_ids', `sequence ${b}, position ${s}: token id ${id} is not in [0, vocab_size ${a.vocabSize})`);
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

/** x ← x + y · multiplier (Granite scales each residual branch), releasing y. */
function addResidual(be: Backend, x: Tensor, y: Tensor, multiplier: number): void {
  if (multiplier !== 1) be.scaleInPlace(y, multiplier);
  be.addInPlace(x, y);
  be.release(y);
}

function maxLength(layout: BatchLayout): number {
  let max = 0;
  for (let b = 0; b + 1 < layout.starts.length; b++) max = Math.max(max, layout.starts[b + 1] - layout.starts[b]);
  return max;
}

function range(start: number, count: number): Int32Array {
  return Int32Array.from({ length: count }, (_, i) => start + i);
}

/**
 * Latent attention's column maps: the compressed projection [kv_lora | rope] split into the latent and the shared
 * rotary key, and per head the keys from [kv | kRot] and the values from kv.
 */
interface LatentColumns {
  readonly latent: Int32Array;
  readonly rotary: Int32Array;
  readonly keys: Int32Array;
  readonly values: Int32Array;
}

function latentColumns(att: MlaAttention): LatentColumns {
  const { numHeads: nh, qkNopeDim: nope, qkRopeDim: rope, vDim } = att;
  const stride = nope + vDim; // kv_b_proj rows per head: [k_nope | v]
  const keys = new Int32Array(nh * (nope + rope));
  const values = new Int32Array(nh * vDim);
  for (let h = 0; h < nh; h++) {
    for (let i = 0; i < nope; i++) keys[h * (nope + rope) + i] = h * stride + i;
    for (let i = 0; i < rope; i++) keys[h * (nope + rope) + nope + i] = nh * stride + i;
    for (let i = 0; i < vDim; i++) values[h * vDim + i] = h * stride + nope + i;
  }
  return { latent: range(0, att.kvLoraRank), rotary: range(att.kvLoraRank, rope), keys, values };
}

/** Granite's fused experts as ordinary ones: expert e's gate, up and down are contiguous blocks of the two tensors. */
function fusedExperts(input: StoredTensor, output: StoredTensor, E: number, I: number, backend: Backend): ExpertWeights[] {
  const H = input.shape[2];
  return Array.from({ length: E }, (_, e) => ({
    gate: backend.weight(storedSlice(input, `${input.name}[${e}].gate`, e * 2 * I * H, [I, H])),
    up: backend.weight(storedSlice(input, `${input.name}[${e}].up`, (e * 2 + 1) * I * H, [I, H])),
    down: backend.weight(storedSlice(output, `${output.name}[${e}]`, e * H * I, [H, I])),
  }));
}

/** A one-expert plan over every token: a dense MLP (weight 1) or a shared expert (weight 1 or its gate). */
function everyToken(T: number, weights: Float32Array | null): ExpertPlan {
  return {
    offsets: Int32Array.of(0, T),
    tokens: Int32Array.from({ length: T }, (_, t) => t),
    weights: weights ?? new Float32Array(T).fill(1),
  };
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
