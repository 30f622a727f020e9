/**
 * Calibration of bh's null model (SPEC §2): run the model with its own router over calibration text, collect every
 * layer's router logits (all E per token), and fit the chosen estimator (a Gaussian KDE unless told otherwise) per
 * layer — or per (layer, expert) — whose CDF grid becomes the `routelab.null/1` file, with each layer's
 * goodness of fit on held-out tokens.
 */
import type { MoeModel } from '../model/model.js';
import { NULL_MODEL_FORMAT, nullCdf, type NullEstimator, type NullGridJson, type NullModelFile } from '../routers/null-model.js';
import { VERSION } from '../version.js';
import { ESTIMATORS, type EstimatorOptions } from './estimators.js';
import { DEFAULT_MAX_COMPONENTS } from './gmm.js';
import { ksDistance } from './ks.js';
import { describeSample } from './sample.js';

export interface CalibrationOptions {
  /** Sequences per forward pass. */
  readonly batchSize: number;
  /** One null per expert instead of one per layer. */
  readonly perExpert: boolean;
  /** CDF grid points (SPEC: 512). */
  readonly points: number;
  /** How each null is estimated (default kde). */
  readonly estimator?: NullEstimator;
  /** The most mixture components BIC may choose, for gmm (default DEFAULT_MAX_COMPONENTS). */
  readonly maxComponents?: number;
  /** Provenance recorded in the file's meta (model, data, …). */
  readonly meta: Record<string, unknown>;
  /** Called after each batch with the tokens done so far. */
  readonly onProgress?: (tokensDone: number, tokensTotal: number) => void;
}

/** Router logits of every MoE layer, [L_moe][tokens × E], under the model's own routing. */
export async function collectRouterLogits(model: MoeModel, sequences: readonly ArrayLike<number>[], options: Pick<CalibrationOptions, 'batchSize' | 'onProgress'>): Promise<Float32Array[]> {
  const L = model.numMoeLayers;
  const E = model.architecture.moe.numExperts;
  const total = sequences.reduce((n, s) => n + s.length, 0);
  const logits = Array.from({ length: L }, () => new Float32Array(total * E));
  let done = 0;
  for (let i = 0; i < sequences.length; i += options.batchSize) {
    const batch = sequences.slice(i, i + options.batchSize);
    const offset = done;
    await model.forward(batch, {
      logits: 'none',
      observer: { onRouting: ({ moeLayer, routerLogits }) => logits[moeLayer].set(routerLogits, offset * E) },
    });
    done += batch.reduce((n, s) => n + s.length, 0);
    options.onProgress?.(done, total);
  }
  return logits;
}

/**
 * The goodness-of-fit holdout: every HOLDOUT_EVERY-th token (t mod 10 = 9, all its E logits) is held out, the layer's
 * null is fitted on the other tokens, and its KS distance to the held-out logits is recorded. The null stored is then
 * fitted on every token, so the holdout changes no null (a KDE file's grids are what they were before it).
 */
export const HOLDOUT_EVERY = 10;

/** Fit the null model from collected router logits. */
export function fitNullModel(logits: readonly Float32Array[], numExperts: number, options: Pick<CalibrationOptions, 'perExpert' | 'points' | 'meta' | 'estimator' | 'maxComponents'>): NullModelFile {
  const E = numExperts;
  const estimator = options.estimator ?? 'kde';
  const fitOptions: EstimatorOptions = { points: options.points, maxComponents: options.maxComponents ?? DEFAULT_MAX_COMPONENTS };
  const fit = (samples: ArrayLike<number>) => ESTIMATORS[estimator].fit(describeSample(samples), fitOptions);
  const grid = (samples: ArrayLike<number>): NullGridJson => {
    const { x, cdf, params } = fit(samples);
    return { x: Array.from(x), cdf: Array.from(cdf), params };
  };
  const tokens = (logits[0]?.length ?? 0) / E;
  const heldOut = Math.floor(tokens / HOLDOUT_EVERY);
  const layers = logits.map((layerLogits) => {
    const pooled = { ...grid(layerLogits), ...(heldOut > 0 ? heldOutKs(layerLogits, E, fit, options.perExpert) : {}) };
    if (!options.perExpert) return pooled;
    const column = new Float32Array(tokens);
    const experts = Array.from({ length: E }, (_, e) => {
      for (let t = 0; t < tokens; t++) column[t] = layerLogits[t * E + e];
      return grid(column);
    });
    return { ...pooled, experts };
  });
  return {
    format: NULL_MODEL_FORMAT,
    estimator,
    layers,
    meta: {
      ...options.meta,
      ...ESTIMATORS[estimator].method(fitOptions),
      grid: `${options.points} points on [min - 4h, max + 4h]`,
      per_expert: options.perExpert,
      samples_per_layer: logits[0]?.length ?? 0,
      tokens,
      goodness_of_fit: `ks: Kolmogorov-Smirnov distance of the layer's null fitted without tokens t % ${HOLDOUT_EVERY} == ${HOLDOUT_EVERY - 1} to their logits; ` +
        `ks_experts: the same per expert, its held-out logits against the null bh uses for it (the layer's, or with per_expert its own)`,
      heldout_tokens: heldOut,
      routelab_version: VERSION,
      created: new Date().toISOString(),
    },
  };
}

/**
 * KS distances of nulls fitted on the kept tokens to the held-out tokens' logits (HOLDOUT_EVERY): the layer's null
 * against all held-out logits (`ks`), and per expert its held-out logits against the null bh uses for that expert —
 * the layer's, or with per-expert nulls its own (`ks_experts`). A pooled null can fit the layer well and still miss
 * an expert whose logits sit apart from the others', which would bias that expert's p-values.
 */
function heldOutKs(layerLogits: Float32Array, E: number, fit: (samples: ArrayLike<number>) => { x: Float64Array; cdf: Float64Array },
                   perExpert: boolean): { ks: number; ks_experts: number[] } {
  const tokens = layerLogits.length / E;
  const heldOut = Math.floor(tokens / HOLDOUT_EVERY);
  const kept = new Float64Array((tokens - heldOut) * E);
  const held = new Float64Array(heldOut * E);
  for (let t = 0, k = 0, h = 0; t < tokens; t++) {
    const row = layerLogits.subarray(t * E, (t + 1) * E);
    if (t % HOLDOUT_EVERY === HOLDOUT_EVERY - 1) held.set(row, E * h++);
    else kept.set(row, E * k++);
  }
  const layerNull = fit(kept);
  const column = (from: Float64Array, e: number) => Float64Array.from({ length: from.length / E }, (_, t) => from[t * E + e]);
  const ks_experts = Array.from({ length: E }, (_, e) => {
    const own = perExpert ? fit(column(kept, e)) : layerNull;
    return ksDistance(column(held, e).sort(), (r) => nullCdf(own, r));
  });
  return { ks: ksDistance(held.sort(), (r) => nullCdf(layerNull, r)), ks_experts };
}

