import { resolve } from 'node:path';
import { RoutelabError } from '../errors.js';
import { BhRouter, P_VALUE_MODES } from './bh.js';
import { DeepseekV2Router, DeepseekV3Router, type GroupLimit, requireGroups } from './deepseek.js';
import { EntropyRouter } from './entropy.js';
import { GraniteRouter } from './granite.js';
import { HcRouter, searchedRanks } from './hc.js';
import { RandKRouter, readCountShares } from './randk.js';
import { readNullModel } from './null-model.js';
import type { Router, RouterDefaults } from './router.js';
import { TopKRouter } from './topk.js';
import { WEIGHT_MODES } from './selection.js';
import { ThresholdRouter } from './threshold.js';
import { TopPRouter } from './topp.js';

/**
 * Router specs as the CLI takes them (`--router`): `name` or `name:key=value,key=value`, e.g. `topk:k=16`,
 * `bh:alpha=0.3,max_k=16,null=nulls/olmoe.json`; empty or `default` is the model's own routing. Adding a router is
 * one file plus one entry in ROUTER_KINDS.
 */
export interface RouterKind {
  readonly name: string;
  readonly summary: string;
  readonly keys: readonly { readonly key: string; readonly meaning: string }[];
  build(args: SpecArgs, defaults: RouterDefaults): Router;
}

/** Keys several routers share, declared once. */
const K_KEY = { key: 'k', meaning: "experts per token, an integer in [1, E]; default the config's num_experts_per_tok" };
const RENORMALIZE_KEY = { key: 'renormalize', meaning: "true or false: divide the weights by their sum; default the config's norm_topk_prob" };
const SCALE_KEY = { key: 'scale', meaning: "routed_scaling_factor multiplying the weights, a number > 0; default the model's (1 without one)" };
const MIN_K_KEY = { key: 'min_k', meaning: 'fewest experts per token, an integer in [1, max_k]; default 1' };
const MAX_K_KEY = { key: 'max_k', meaning: 'most experts per token, an integer in [1, E]; default E' };
const WEIGHTS_KEY = { key: 'weights', meaning: "probs (each selected expert's probability, as OLMoE's top-k) or renorm (divided by their sum); default probs" };
const NULL_KEY = { key: 'null', meaning: 'path of the null-model file (routelab.null/1) written by calibration; required' };

/** An adaptive router's `min_k`: at least 1, at most its `max_k`. */
function fewestExperts(a: SpecArgs, maxK: number): number {
  return a.int('min_k', 1, 1, maxK, `max_k = ${maxK}`);
}

/** min_k, max_k and weights of the adaptive routers that take MIN_K_KEY, MAX_K_KEY and WEIGHTS_KEY (topp, threshold, entropy, hc). */
function adaptiveSettings(a: SpecArgs, d: RouterDefaults) {
  const maxK = a.int('max_k', d.numExperts, 1, d.numExperts);
  return { minK: fewestExperts(a, maxK), maxK, weights: a.choice('weights', WEIGHT_MODES, 'probs') };
}

/** The null model of a spec's `null` key (a path, resolved against the working directory), checked against the model. */
function nullModelOf(a: SpecArgs, d: RouterDefaults) {
  return readNullModel(resolve(a.text('null')), { numLayers: d.moeLayers.length, numExperts: d.numExperts });
}

/** A fixed-k router's `k`: the config's num_experts_per_tok unless given, in [1, E]. */
function expertsPerToken(a: SpecArgs, d: RouterDefaults): number {
  return a.int('k', d.numExpertsPerTok, 1, d.numExperts);
}

/** n_group / topk_group keys of the DeepSeek routers. */
const GROUP_KEYS = [
  { key: 'n_group', meaning: "groups of contiguous experts, an integer dividing E; default the model's n_group (1: no groups)" },
  { key: 'topk_group', meaning: "groups experts may come from, an integer in [1, n_group]; default the model's topk_group" },
] as const;

/** The spec's group limit, checked against the model: the groups must split E evenly and keep at least k experts. */
function groupLimit(a: SpecArgs, d: RouterDefaults, k: number, router: string): GroupLimit {
  const numGroups = a.int('n_group', d.routing.numGroups, 1, d.numExperts);
  const limit = { numGroups, topkGroups: a.int('topk_group', Math.min(d.routing.topkGroups, numGroups), 1, numGroups, `n_group = ${numGroups}`) };
  requireGroups(router, limit, d.numExperts, k);
  return limit;
}

export const ROUTER_KINDS: readonly RouterKind[] = [
  {
    name: 'default',
    summary: "the model's own routing, as its family's Hugging Face code computes it (OLMoE: topk with the config's num_experts_per_tok and norm_topk_prob)",
    keys: [K_KEY],
    build: (a, d) => parseRouterSpec(d.defaultSpec(expertsPerToken(a, d)), d),
  },
  {
    name: 'topk',
    summary: 'the k most probable experts',
    keys: [
      K_KEY,
      RENORMALIZE_KEY,
    ],
    build: (a, d) => new TopKRouter(expertsPerToken(a, d), a.bool('renormalize', d.routing.normTopkProb)),
  },
  {
    name: 'granite',
    summary: "Granite-MoE's routing: the k largest logits, weighted by a softmax over those k",
    keys: [K_KEY],
    build: (a, d) => new GraniteRouter(expertsPerToken(a, d)),
  },
  {
    name: 'deepseek_v2',
    summary: "DeepSeek-V2's routing: softmax top-k (within the topk_group best groups by max probability), × scale, no renormalisation",
    keys: [
      K_KEY,
      ...GROUP_KEYS,
      SCALE_KEY,
    ],
    build: (a, d) => {
      const k = expertsPerToken(a, d);
      return new DeepseekV2Router(k, groupLimit(a, d, k, 'deepseek_v2'), a.real('scale', d.routing.routedScalingFactor, 0, Infinity));
    },
  },
  {
    name: 'deepseek_v3',
    summary: "DeepSeek-V3's routing: sigmoid scores, top-k on scores + the model's e_score_correction_bias within the topk_group best groups, unbiased weights, × scale",
    keys: [
      K_KEY,
      ...GROUP_KEYS,
      RENORMALIZE_KEY,
      SCALE_KEY,
    ],
    build: (a, d) => {
      const k = expertsPerToken(a, d);
      return new DeepseekV3Router(k, groupLimit(a, d, k, 'deepseek_v3'), a.bool('renormalize', d.routing.normTopkProb), a.real('scale', d.routing.routedScalingFactor, 0, Infinity), d.selectionBias);
    },
  },
  {
    name: 'topp',
    summary: 'the fewest most probable experts whose probabilities sum to at least p',
    keys: [
      { key: 'p', meaning: 'probability mass to cover, a number in (0, 1]; required' },
      MIN_K_KEY,
      MAX_K_KEY,
      WEIGHTS_KEY,
    ],
    build: (a, d) => new TopPRouter({ p: a.real('p', undefined, 0, 1), ...adaptiveSettings(a, d) }),
  },
  {
    name: 'threshold',
    summary: 'the experts whose probability is at least tau, most probable first, clamped to [min_k, max_k]',
    keys: [
      { key: 'tau', meaning: 'probability an expert must reach, a number in (0, 1]; required' },
      MIN_K_KEY,
      MAX_K_KEY,
      WEIGHTS_KEY,
    ],
    build: (a, d) => new ThresholdRouter({ tau: a.real('tau', undefined, 0, 1), ...adaptiveSettings(a, d) }),
  },
  {
    name: 'entropy',
    summary: "the k most probable experts, k linear in the router's normalised entropy from min_k (one-hot) to max_k (uniform)",
    keys: [
      MIN_K_KEY,
      MAX_K_KEY,
      WEIGHTS_KEY,
    ],
    build: (a, d) => new EntropyRouter(adaptiveSettings(a, d)),
  },
  {
    name: 'bh',
    summary: 'Benjamini–Hochberg: the experts whose logits are significant under a calibrated null model',
    keys: [
      { key: 'alpha', meaning: 'false discovery rate, a number in (0, 1]; required' },
      { key: 'max_k', meaning: 'most experts per token, an integer in [1, E]; required' },
      MIN_K_KEY,
      { key: 'temperature', meaning: 'softmax temperature of the weights, a number > 0; default 1' },
      NULL_KEY,
      { key: 'weights', meaning: 'renorm (softmax(r / temperature) renormalised over the selected, as the original BH-routing code) or probs (each selected expert\'s softmax probability, like-for-like with OLMoE\'s top-k); default renorm' },
      { key: 'pvalues', meaning: 'exact (double) or bf16 (rounded to bfloat16, clamped to [2^-7, 1 - 2^-7], float32 thresholds: how the original code ran on OLMoE); default exact' },
    ],
    build: (a, d) => {
      const maxK = a.int('max_k', undefined, 1, d.numExperts);
      return new BhRouter({
        alpha: a.real('alpha', undefined, 0, 1),
        maxK,
        minK: fewestExperts(a, maxK),
        temperature: a.real('temperature', 1, 0, Infinity),
        weights: a.choice('weights', WEIGHT_MODES, 'renorm'),
        pValues: a.choice('pvalues', P_VALUE_MODES, 'exact'),
        nullModel: nullModelOf(a, d),
      });
    },
  },
  {
    name: 'hc',
    summary: "Higher Criticism (Donoho & Jin's HC⁺): the experts below the HC-optimal threshold on bh's p-values under a calibrated null model",
    keys: [
      { key: 'alpha0', meaning: 'share of the ranks HC⁺ searches (i ≤ alpha0·E), a number in [1/E, 1]; default 0.5' },
      MIN_K_KEY,
      MAX_K_KEY,
      WEIGHTS_KEY,
      NULL_KEY,
    ],
    build: (a, d) => {
      const alpha0 = a.real('alpha0', 0.5, 0, 1);
      if (searchedRanks(alpha0, d.numExperts) < 1) {
        throw new RoutelabError('--router', `hc: invalid alpha0=${alpha0}; expected a number in [1/E, 1] = [${1 / d.numExperts}, 1], so that HC⁺ searches at least one rank`);
      }
      return new HcRouter({ alpha0, ...adaptiveSettings(a, d), nullModel: nullModelOf(a, d) });
    },
  },
  {
    name: 'randk',
    summary: "a control: each token's expert count drawn from another configuration's per-layer count distribution, then that many top experts",
    keys: [
      { key: 'from', meaning: 'path of the eval summary (routelab.eval/1) whose per_layer_count_shares the counts are drawn from; required' },
      { key: 'seed', meaning: 'seed of the draws, a non-negative integer; default 0' },
      { key: 'weights', meaning: 'probs (each selected expert\'s probability) or renorm (divided by their sum); default probs' },
    ],
    build: (a, d) => {
      const file = resolve(a.text('from'));
      return new RandKRouter({
        ...readCountShares(file, d.moeLayers.length), file, seed: a.int('seed', 0, 0, 2 ** 31 - 1), weights: a.choice('weights', WEIGHT_MODES, 'probs'),
      });
    },
  },
];

/** A spec's router name (before the `:`; `default` when empty) and its key=value text (after the `:`). */
export function splitSpec(spec: string): { name: string; body: string } {
  const trimmed = spec.trim();
  const colon = trimmed.indexOf(':');
  return colon < 0 ? { name: trimmed || 'default', body: '' } : { name: trimmed.slice(0, colon).trim(), body: trimmed.slice(colon + 1).trim() };
}

/** Whether a spec names a router that tests logits against a null model (one whose kind takes `null=`: bh, hc). */
export function takesNullModel(spec: string): boolean {
  return ROUTER_KINDS.find((k) => k.name === splitSpec(spec).name)?.keys.includes(NULL_KEY) ?? false;
}

/** Build the router a spec string names, for a model with these routing defaults. */
export function parseRouterSpec(spec: string, defaults: RouterDefaults): Router {
  const { name, body } = splitSpec(spec);
  const kind = ROUTER_KINDS.find((k) => k.name === name);
  if (!kind) {
    const known = ROUTER_KINDS.map((k) => `${k.name} (${k.summary})`).join('; ');
    throw new RoutelabError('--router', `unknown router "${name}"; known routers: ${known}`);
  }
  const values = new Map<string, string>();
  // Split only before `key=`, so a comma inside a value (a null-model path) stays part of it.
  for (const pair of body ? body.split(/,(?=\s*[a-z_]+\s*=)/) : []) {
    const eq = pair.indexOf('=');
    if (eq < 0) throw new RoutelabError('--router', `${name}: expected key=value, got "${pair.trim()}"`);
    const key = pair.slice(0, eq).trim();
    if (!kind.keys.some((k) => k.key === key)) {
      const valid = kind.keys.length ? `valid keys: ${kind.keys.map((k) => `${k.key} (${k.meaning})`).join('; ')}` : 'it takes no keys';
      throw new RoutelabError('--router', `${name}: unknown key "${key}"; ${valid}`);
    }
    if (values.has(key)) throw new RoutelabError('--router', `${name}: ${key} is given twice`);
    values.set(key, pair.slice(eq + 1).trim());
  }
  return kind.build(new SpecArgs(kind, values), defaults);
}

/** One spec's key=value pairs, read as typed values; a missing or bad value is one error naming key, value and range. */
export class SpecArgs {
  constructor(
    private readonly kind: RouterKind,
    private readonly values: ReadonlyMap<string, string>,
  ) {}

  /** An integer in [min, max]; `maxName` says where max comes from when it is another key. */
  int(key: string, fallback: number | undefined, min: number, max: number, maxName = String(max)): number {
    const text = this.values.get(key);
    if (text === undefined) return fallback ?? this.missing(key);
    const v = decimal(text);
    if (!Number.isInteger(v) || v < min || v > max) throw this.invalid(key, text, `an integer in [${min}, ${maxName}]`);
    return v;
  }

  /** A number in (lo, hi]. */
  real(key: string, fallback: number | undefined, lo: number, hi: number): number {
    const text = this.values.get(key);
    if (text === undefined) return fallback ?? this.missing(key);
    const v = decimal(text);
    if (!(v > lo && v <= hi)) throw this.invalid(key, text, hi === Infinity ? `a number > ${lo}` : `a number in (${lo}, ${hi}]`);
    return v;
  }

  /** One of the listed words. */
  choice<T extends string>(key: string, allowed: readonly T[], fallback: T): T {
    const text = this.values.get(key);
    if (text === undefined) return fallback;
    if (!allowed.includes(text as T)) throw this.invalid(key, text, `one of ${allowed.join(', ')}`);
    return text as T;
  }

  bool(key: string, fallback: boolean): boolean {
    const text = this.values.get(key);
    if (text === undefined) return fallback;
    if (text !== 'true' && text !== 'false') throw this.invalid(key, text, 'true or false');
    return text === 'true';
  }

  /** A required non-empty string. */
  text(key: string): string {
    const text = this.values.get(key);
    if (!text) return this.missing(key);
    return text;
  }

  private missing(key: string): never {
    const meaning = this.kind.keys.find((k) => k.key === key)?.meaning;
    throw new RoutelabError('--router', `${this.kind.name}: ${key} is required (${meaning})`);
  }

  private invalid(key: string, text: string, expected: string): RoutelabError {
    return new RoutelabError('--router', `${this.kind.name}: invalid ${key}=${text}; expected ${expected}`);
  }
}

/** A plain decimal number (`0.3`, `16`, `1e-2`); NaN for anything else, which no range accepts. */
function decimal(text: string): number {
  return /^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i.test(text) ? Number(text) : NaN;
}
