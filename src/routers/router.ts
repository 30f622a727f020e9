import type { RoutingParameters } from '../model/architecture.js';
import type { WeightMode } from './selection.js';

/**
 * A router turns one layer's router logits r[T×E] into, per token, a set of experts and their weights
 * (SPEC §2). Results use a padded layout so the hot path allocates no per-token objects:
 * token t selected `counts[t]` experts, listed in `experts[t·maxK + j]` with weights `weights[t·maxK + j]`
 * for j < counts[t], in selection order (e.g. descending probability for top-k); slots j ≥ counts[t] are unused.
 */
export interface Routing {
  readonly tokens: number;
  readonly maxK: number;
  readonly counts: Int32Array; // [T]
  readonly experts: Int32Array; // [T·maxK]
  readonly weights: Float32Array; // [T·maxK]
  /** Routers that test hypotheses (bh) also report each expert's p-value, [T·E]; recorded by full traces. */
  readonly pValues?: Float32Array;
}

export interface Router {
  /** Canonical spec string, e.g. `topk:k=8,renormalize=false`; parsing it gives back an equal router. */
  readonly spec: string;
  /** Whether the number of experts varies per token (bh, topp) or is fixed (the baselines: topk and the family routers). */
  readonly adaptive: boolean;
  /**
   * The configuration name results, traces and reports use (SPEC §4): `{k}experts_topk_baseline`,
   * `{max_k}experts_bh_a040`, …; settings that differ from the model's routing parameters are spelled out.
   */
  configName(model: RoutingParameters): string;
  /** Bounds on the number of experts per token (topk: both k). */
  readonly minK: number;
  readonly maxK: number;
  /**
   * Route T tokens of MoE layer `moeLayer` (its index among the model's MoE layers, which is the decoder-layer index
   * when every layer is MoE); `logits` is r[T×E] row-major, float32. Must not modify `logits`.
   */
  route(moeLayer: number, logits: Float32Array, tokens: number, numExperts: number): Routing;
}

/** What a router is built from besides its own parameters: the model's experts, MoE layers and routing parameters. */
export interface RouterDefaults {
  readonly numExperts: number; // E routed experts
  readonly numExpertsPerTok: number; // config num_experts_per_tok
  /** Decoder-layer indices of the MoE layers (dense layers have no router). */
  readonly moeLayers: readonly number[];
  /** The family's routing parameters (norm_topk_prob, routed_scaling_factor, groups). */
  readonly routing: RoutingParameters;
  /** The family's own routing with k experts per token, as a spec (`default`, `default:k=16`). */
  defaultSpec(k: number): string;
  /** A MoE layer's per-expert selection bias (DeepSeek-V3's e_score_correction_bias), null when the model has none. */
  selectionBias(moeLayer: number): Float32Array | null;
}

/**
 * The configuration name of an adaptive router whose weights default to `probs` (topp, threshold, entropy, hc):
 * `{max_k}experts_{rule}`, then `_mink{n}` when min_k is not 1 and `_renorm` with `weights=renorm`.
 */
export function adaptiveConfigName(rule: string, { minK, maxK, weights }: { minK: number; maxK: number; weights: WeightMode }): string {
  return `${maxK}experts_${rule}${minK !== 1 ? `_mink${minK}` : ''}${weights === 'renorm' ? '_renorm' : ''}`;
}

/** A fraction in a configuration name: hundredths in 3 digits (0.5 → `050`), or all its digits when it has finer ones (0.555 → `0555`). */
export function fractionName(x: number): string {
  const hundredths = 100 * x;
  return Number.isInteger(Math.round(hundredths * 1e9) / 1e9) ? String(Math.round(hundredths)).padStart(3, '0') : String(x).replace('.', '');
}

/** A spec as a file-name-safe configuration name: `name:key=value,…` → `name_keyvalue_…` (paths reduced to their stem). */
export function specConfigName(spec: string): string {
  const [name, body = ''] = spec.split(/:(.*)/s);
  const parts = body ? body.split(/,(?=\s*[a-z_]+\s*=)/) : [];
  const pieces = parts.map((p) => {
    const [k, v = ''] = p.split(/=(.*)/s);
    const value = /[\\/]/.test(v) ? v.replace(/^.*[\\/]/, '').replace(/\.[^.]*$/, '') : v;
    return `${sanitize(k.trim())}${sanitize(value.trim())}`;
  });
  return [sanitize(name), ...pieces].join('_');
}

function sanitize(s: string): string {
  return s.replace(/[^A-Za-z0-9.]+/g, '-');
}
