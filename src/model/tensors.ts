/**
 * Every tensor a checkpoint of an architecture holds: role, Hugging Face name (from the family's table) and shape
 * (from the architecture), listed once. Loading, validation, parameter counts, FLOPs and the bench writer read it.
 */
import { type Architecture, attentionWidths } from './architecture.js';
import type { Family, TensorRole } from './family.js';
import { numel } from './tensor.js';

/**
 * How a token uses a tensor: `lookup` (the embedding table: read, not multiplied), `matmul` (every token multiplies
 * it), `gain` (norm weights, biases, a selection bias: O(width) work), `routed` (routed experts' weights, one
 * expert's or all E fused: a token selecting k experts uses k/E of a layer's routed weights).
 */
export type TensorUse = 'lookup' | 'matmul' | 'gain' | 'routed';

export interface TensorSpec {
  readonly role: TensorRole;
  readonly name: string;
  readonly shape: readonly number[];
  readonly layer: number | null;
  readonly expert: number | null; // unfused routed experts: which one
  readonly use: TensorUse;
}

/** The checkpoint's tensors, in a fixed order: embedding, layer by layer, final norm, lm_head. */
export function tensorLayout(family: Family, a: Architecture): TensorSpec[] {
  const specs: TensorSpec[] = [];
  const H = a.hiddenSize;
  const add = (role: TensorRole, shape: number[], use: TensorUse, layer: number | null = null, expert: number | null = null) => {
    const name = family.names[role].replace('{l}', String(layer)).replace('{e}', String(expert));
    specs.push({ role, name, shape, layer, expert, use });
  };
  const swiglu = (roles: readonly [TensorRole, TensorRole, TensorRole], I: number, l: number, use: TensorUse = 'matmul', e: number | null = null) => {
    add(roles[0], [I, H], use, l, e);
    add(roles[1], [I, H], use, l, e);
    add(roles[2], [H, I], use, l, e);
  };

  add('embed', [a.vocabSize, H], 'lookup');
  const att = a.attention;
  const { heads, kvHeads, keyDim, valueDim } = attentionWidths(att);
  for (let l = 0; l < a.numLayers; l++) {
    add('inputNorm', [H], 'gain', l);
    if (att.kind === 'gqa') {
      const q = heads * keyDim;
      const kv = kvHeads * keyDim;
      add('q', [q, H], 'matmul', l);
      add('k', [kv, H], 'matmul', l);
      add('v', [kv, H], 'matmul', l);
      add('o', [H, q], 'matmul', l);
      if (att.qkvBias) for (const [role, n] of [['qBias', q], ['kBias', kv], ['vBias', kv]] as const) add(role, [n], 'gain', l);
      if (att.oBias) add('oBias', [H], 'gain', l);
      if (att.qkNorm !== 'none') {
        add('qNorm', [att.qkNorm === 'head' ? keyDim : q], 'gain', l);
        add('kNorm', [att.qkNorm === 'head' ? keyDim : kv], 'gain', l);
      }
    } else {
      if (att.qLoraRank === null) add('q', [heads * keyDim, H], 'matmul', l);
      else {
        add('qA', [att.qLoraRank, H], 'matmul', l);
        add('qANorm', [att.qLoraRank], 'gain', l);
        add('qB', [heads * keyDim, att.qLoraRank], 'matmul', l);
      }
      add('kvA', [att.kvLoraRank + att.qkRopeDim, H], 'matmul', l);
      add('kvANorm', [att.kvLoraRank], 'gain', l);
      add('kvB', [heads * (att.qkNopeDim + valueDim), att.kvLoraRank], 'matmul', l);
      add('o', [H, heads * valueDim], 'matmul', l);
    }
    add('postNorm', [H], 'gain', l);
    if (a.layerKinds[l] === 'dense') {
      swiglu(['denseGate', 'denseUp', 'denseDown'], a.denseIntermediateSize, l);
      continue;
    }
    const m = a.moe;
    const E = m.numExperts;
    const I = m.intermediateSize;
    add('router', [E, H], 'matmul', l);
    if (m.selectionBias) add('routerBias', [E], 'gain', l);
    if (m.fused) {
      add('expertsIn', [E, 2 * I, H], 'routed', l);
      add('expertsOut', [E, H, I], 'routed', l);
    } else {
      for (let e = 0; e < E; e++) swiglu(['expertGate', 'expertUp', 'expertDown'], I, l, 'routed', e);
    }
    if (m.shared) {
      swiglu(['sharedGate', 'sharedUp', 'sharedDown'], m.shared.intermediateSize, l);
      if (m.shared.gated) add('sharedExpertGate', [1, H], 'matmul', l);
    }
  }
  add('finalNorm', [H], 'gain');
  if (!a.tieWordEmbeddings) add('lmHead', [a.vocabSize, H], 'matmul');
  return specs;
}

/** Parameter counts of an architecture: everything, and what one token uses with k routed experts per MoE layer. */
export interface ParameterCounts {
  readonly total: number;
  /** Embedding table plus lm_head (once when tied). */
  readonly embedding: number;
  /** Parameters one token uses with k routed experts in every MoE layer (embedding table and lm_head included). */
  active(k: number): number;
}

export function parameterCounts(a: Architecture, specs: readonly TensorSpec[]): ParameterCounts {
  let total = 0;
  let routed = 0;
  let embedding = 0;
  for (const s of specs) {
    const n = numel(s.shape);
    total += n;
    if (s.role === 'embed' || s.role === 'lmHead') embedding += n;
    if (s.use === 'routed') routed += n;
  }
  return { total, embedding, active: (k) => total - routed + (routed * k) / a.moe.numExperts };
}

/**
 * Analytic forward FLOPs of one token (multiply-add = 2 FLOPs) with `avgExperts` routed experts per MoE layer and
 * attention over `contextLength` keys: 2 per weight of every matmul tensor (lm_head included, also when tied), 2 per
 * weight of the selected experts, and per attention layer 2·nh·ctx·(hd + vd) for the scores and the weighted sum.
 * Norms, rotary, softmaxes, the embedding lookup and the weighted expert sum are O(H) and left out.
 */
export function flopsPerToken(a: Architecture, specs: readonly TensorSpec[], avgExperts: number, contextLength: number): number {
  let flops = a.tieWordEmbeddings ? 2 * a.vocabSize * a.hiddenSize : 0;
  for (const s of specs) {
    if (s.use === 'matmul') flops += 2 * numel(s.shape);
    else if (s.use === 'routed') flops += (2 * numel(s.shape) * avgExperts) / a.moe.numExperts;
  }
  const { heads, keyDim, valueDim } = attentionWidths(a.attention);
  return flops + a.numLayers * 2 * heads * contextLength * (keyDim + valueDim);
}
