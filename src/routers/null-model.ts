import { readFileSync } from 'node:fs';
import { RoutelabError } from '../errors.js';

/**
 * The null model bh tests router logits against (SPEC §2): per layer, the CDF F_ℓ of a logit under "this expert is
 * not specifically relevant", as a grid. Calibration writes it (`NullModelFile`); `readNullModel` validates it.
 */
export const NULL_MODEL_FORMAT = 'routelab.null/1';

/**
 * How the CDF was estimated (docs/semantics.md, null models). Every estimator writes the same grid, so bh reads them
 * all alike; the name and each grid's `params` record what was fitted. A file without `estimator` is a KDE.
 */
export const NULL_ESTIMATORS = ['kde', 'gmm', 'student-t', 'empirical'] as const;
export type NullEstimator = (typeof NULL_ESTIMATORS)[number];
export const isNullEstimator = (name: unknown): name is NullEstimator => NULL_ESTIMATORS.includes(name as NullEstimator);

/** Each estimator's fitted parameters, as recorded with each of its grids. */
export interface NullParamsOf {
  readonly kde: { readonly bandwidth: number };
  /** Mixture weights, means and standard deviations (one per component), and the BIC of 1 … max components. */
  readonly gmm: { readonly weights: readonly number[]; readonly means: readonly number[]; readonly sigmas: readonly number[]; readonly bic: readonly number[] };
  readonly 'student-t': { readonly nu: number; readonly mu: number; readonly sigma: number };
  /** The sample size: the empirical p-value is never below 1/(n + 1). */
  readonly empirical: { readonly n: number };
}
export type NullParams = NullParamsOf[NullEstimator];

/** What each parameter must be: a positive or any finite number, or a non-empty array of them. */
type ParamKind = 'positive' | 'finite' | 'positive[]' | 'finite[]';
const PARAM_KINDS: { readonly [E in NullEstimator]: { readonly [K in keyof NullParamsOf[E]]: ParamKind } } = {
  kde: { bandwidth: 'positive' },
  gmm: { weights: 'positive[]', means: 'finite[]', sigmas: 'positive[]', bic: 'finite[]' },
  'student-t': { nu: 'positive', mu: 'finite', sigma: 'positive' },
  empirical: { n: 'positive' },
};

/** A CDF on a grid: x strictly increasing, cdf non-decreasing in [0, 1], at least 2 points. */
export interface NullGrid {
  readonly x: Float64Array;
  readonly cdf: Float64Array;
  /** What the estimator fitted (absent in files older than the field, bar a KDE's pooled bandwidths). */
  readonly params?: NullParams;
}

/** One layer's null: a CDF shared by its experts, and optionally one CDF per expert (used instead when present). */
export interface NullLayer extends NullGrid {
  readonly experts?: readonly NullGrid[]; // [E]
  /** Kolmogorov–Smirnov distance of the layer's null to held-out calibration logits (calibrate.ts), when recorded. */
  readonly ks?: number;
  /** [E]: the same per expert, against the null bh uses for it, when recorded. */
  readonly ksExperts?: readonly number[];
}

export interface NullModel {
  readonly file: string;
  /** Always set by parseNullModel (`kde` for a file without the field); optional so hand-built models may omit it. */
  readonly estimator?: NullEstimator;
  readonly layers: readonly NullLayer[]; // [L_moe], one per MoE layer
  readonly meta: Readonly<Record<string, unknown>>;
}

/** The file as calibration writes it (JSON). Grids are float64, so the seed project's pickled grids convert exactly. */
export interface NullModelFile {
  readonly format: typeof NULL_MODEL_FORMAT;
  readonly estimator?: NullEstimator;
  readonly layers: readonly (NullGridJson & { readonly experts?: readonly NullGridJson[]; readonly ks?: number; readonly ks_experts?: readonly number[] })[];
  readonly meta: Readonly<Record<string, unknown>>; // provenance: model, calibration text, method, …
}
export interface NullGridJson {
  readonly x: readonly number[];
  readonly cdf: readonly number[];
  readonly params?: NullParams;
}

/** The model shape a null file must match: one layer entry per model layer, one expert entry per expert. */
export interface NullModelShape {
  readonly numLayers: number;
  readonly numExperts: number;
}

/** Read and validate a null-model file; with `shape`, also check it was calibrated for a model of that shape. */
export function readNullModel(file: string, shape?: NullModelShape): NullModel {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new RoutelabError(file, `cannot read the null-model file (${(e as Error).message})`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new RoutelabError(file, `not valid JSON (${(e as Error).message})`);
  }
  return parseNullModel(raw, file, shape);
}

/** Validate parsed JSON as a null model; errors name `file` and the JSON path of the offending value. */
export function parseNullModel(raw: unknown, file: string, shape?: NullModelShape): NullModel {
  const err = (path: string, message: string) => new RoutelabError(`${file}: ${path}`, message);
  if (!isObject(raw)) throw new RoutelabError(file, `expected a JSON object {"format": "${NULL_MODEL_FORMAT}", "layers": [...]}`);
  if (raw.format !== NULL_MODEL_FORMAT) throw err('format', `expected "${NULL_MODEL_FORMAT}", got ${JSON.stringify(raw.format)}`);
  const meta = raw.meta ?? {};
  if (!isObject(meta)) throw err('meta', 'expected an object');
  const recorded = raw.estimator !== undefined;
  if (recorded && !isNullEstimator(raw.estimator)) {
    throw err('estimator', `unknown estimator ${JSON.stringify(raw.estimator)}; expected one of ${NULL_ESTIMATORS.join(', ')}`);
  }
  const estimator = recorded ? (raw.estimator as NullEstimator) : 'kde';
  if (!Array.isArray(raw.layers)) throw err('layers', 'expected an array with one entry per model layer');
  if (shape && raw.layers.length !== shape.numLayers) {
    throw err('layers', `expected ${shape.numLayers} entries (one per MoE layer of the model), got ${raw.layers.length}`);
  }

  const numbers = (value: unknown, path: string): Float64Array => {
    if (!Array.isArray(value) || !value.every((v) => typeof v === 'number')) throw err(path, 'expected an array of numbers');
    return Float64Array.from(value as number[]);
  };

  // A file that names its estimator records every grid's parameters; an older KDE file kept its pooled bandwidths in meta.
  const params = (value: unknown, path: string): NullParams | undefined => {
    if (value === undefined && !recorded) return undefined;
    const kinds: Readonly<Record<string, ParamKind>> = PARAM_KINDS[estimator];
    const expected = Object.keys(kinds).join(', ');
    if (!isObject(value)) throw err(path, `expected the ${estimator} parameters {${expected}}`);
    const unknown = Object.keys(value).find((k) => !(k in kinds));
    if (unknown !== undefined) throw err(`${path}.${unknown}`, `not a ${estimator} parameter (expected ${expected})`);
    for (const [key, kind] of Object.entries(kinds)) {
      const v = value[key];
      const positive = kind.startsWith('positive');
      const ok = (n: unknown) => typeof n === 'number' && Number.isFinite(n) && (!positive || n > 0);
      if (kind.endsWith('[]') ? !(Array.isArray(v) && v.length > 0 && v.every(ok)) : !ok(v)) {
        throw err(`${path}.${key}`, `expected ${kind.endsWith('[]') ? 'a non-empty array of' : 'a'} ${positive ? 'positive' : 'finite'} number(s), got ${JSON.stringify(v)}`);
      }
    }
    const { weights, means, sigmas } = value as Partial<NullParamsOf['gmm']>;
    if (weights && (means!.length !== weights.length || sigmas!.length !== weights.length)) {
      throw err(path, `expected as many means and sigmas as weights (${weights.length})`);
    }
    return value as NullParams;
  };

  const grid = (value: unknown, path: string, fallback?: NullParams): NullGrid => {
    if (!isObject(value)) throw err(path, 'expected an object {"x": [...], "cdf": [...]}');
    const x = numbers(value.x, `${path}.x`);
    const cdf = numbers(value.cdf, `${path}.cdf`);
    if (x.length < 2) throw err(`${path}.x`, `expected at least 2 points, got ${x.length}`);
    if (cdf.length !== x.length) throw err(`${path}.cdf`, `expected ${x.length} values (as many as x), got ${cdf.length}`);
    for (let i = 0; i < x.length; i++) {
      if (!Number.isFinite(x[i]) || (i > 0 && !(x[i] > x[i - 1]))) {
        throw err(`${path}.x`, `expected strictly increasing finite numbers; x[${i}] = ${x[i]}${i > 0 ? ` after ${x[i - 1]}` : ''}`);
      }
      if (!(cdf[i] >= 0 && cdf[i] <= 1) || (i > 0 && cdf[i] < cdf[i - 1])) {
        throw err(`${path}.cdf`, `expected non-decreasing values in [0, 1]; cdf[${i}] = ${cdf[i]}${i > 0 ? ` after ${cdf[i - 1]}` : ''}`);
      }
    }
    const fitted = params(value.params, `${path}.params`) ?? fallback;
    return fitted ? { x, cdf, params: fitted } : { x, cdf };
  };
  const bandwidths = Array.isArray(meta.bandwidths) ? meta.bandwidths : [];

  const layers = raw.layers.map((entry: unknown, l): NullLayer => {
    const path = `layers[${l}]`;
    const legacy = !recorded && typeof bandwidths[l] === 'number' && bandwidths[l] > 0 ? { bandwidth: bandwidths[l] as number } : undefined;
    const pooled = grid(entry, path, legacy);
    const { ks, ks_experts: ksExperts, experts } = entry as Record<string, unknown>;
    const isKs = (v: unknown) => typeof v === 'number' && v >= 0 && v <= 1;
    if (ks !== undefined && !isKs(ks)) throw err(`${path}.ks`, `expected a KS distance in [0, 1], got ${JSON.stringify(ks)}`);
    if (ksExperts !== undefined && !(Array.isArray(ksExperts) && ksExperts.every(isKs) && (!shape || ksExperts.length === shape.numExperts))) {
      throw err(`${path}.ks_experts`, `expected ${shape ? `${shape.numExperts} KS distances` : 'KS distances'} in [0, 1], one per expert`);
    }
    const layer: NullLayer = { ...pooled, ...(ks === undefined ? {} : { ks: ks as number }), ...(ksExperts === undefined ? {} : { ksExperts: ksExperts as number[] }) };
    if (experts === undefined) return layer;
    if (!Array.isArray(experts)) throw err(`${path}.experts`, 'expected an array with one {"x", "cdf"} per expert');
    if (shape && experts.length !== shape.numExperts) {
      throw err(`${path}.experts`, `expected ${shape.numExperts} entries (one per expert), got ${experts.length}`);
    }
    return { ...layer, experts: experts.map((g: unknown, e) => grid(g, `${path}.experts[${e}]`)) };
  });
  return { file, estimator, layers, meta };
}

/**
 * F(r) on the grid by linear interpolation, clamped to the end values outside it — numpy `interp` exactly: a point on
 * the grid returns its cdf value, and between points the result is slope·(r − x_j) + cdf_j.
 */
export function nullCdf(grid: NullGrid, r: number): number {
  const { x, cdf } = grid;
  const last = x.length - 1;
  if (r <= x[0]) return cdf[0];
  if (r >= x[last]) return cdf[last];
  let lo = 0; // invariant: x[lo] ≤ r < x[hi]
  let hi = last;
  while (hi - lo > 1) {
    const mid = (lo + hi) >>> 1;
    if (x[mid] <= r) lo = mid;
    else hi = mid;
  }
  if (x[lo] === r) return cdf[lo];
  const slope = (cdf[hi] - cdf[lo]) / (x[hi] - x[lo]);
  return slope * (r - x[lo]) + cdf[lo];
}

/** The null CDFs of MoE layer `layer`, checked against the model: a file for another model must not be read out of range. */
export function layerNull({ file, layers }: NullModel, layer: number, numExperts: number): NullLayer {
  const nulls = layers[layer];
  if (nulls === undefined) throw new RoutelabError(file, `has ${layers.length} layers; cannot route layer ${layer}`);
  if (nulls.experts && nulls.experts.length !== numExperts) {
    throw new RoutelabError(`${file}: layers[${layer}].experts`, `has ${nulls.experts.length} entries but the model has ${numExperts} experts`);
  }
  return nulls;
}

/**
 * The p-values of one token's logits r = logits[offset … offset + E) under a layer's null (SPEC §1, BH routing):
 * p[e] ← 1 − F(r_e), with expert e's own CDF where the layer has per-expert grids. bh and hc test the same p-values.
 */
export function expertPValues(nulls: NullLayer, logits: Float32Array, offset: number, numExperts: number, p: Float64Array): void {
  for (let e = 0; e < numExperts; e++) p[e] = 1 - nullCdf(nulls.experts?.[e] ?? nulls, logits[offset + e]);
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
