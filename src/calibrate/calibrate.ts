/**
 * Calibration of bh's null model (SPEC §2): run the model with its own router over calibration text, collect every
 * layer's router logits (all E per token), and fit one Gaussian KDE per layer — or per (layer, expert) — whose CDF
 * grid becomes the `routelab.null/1` file.
 */
import type { MoeModel } from '../model/model.js';
import { NULL_MODEL_FORMAT, type NullGridJson, type NullModelFile } from '../routers/null-model.js';
import { VERSION } from '../version.js';
import { kdeCdfGrid } from './kde.js';

export interface CalibrationOptions {
  /** Sequences per forward pass. */
  readonly batchSize: number;
  /** One null per expert instead of one per layer. */
  readonly perExpert: boolean;
  /** CDF grid points (SPEC: 512). */
  readonly points: number;
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

/** Fit the null model from collected router logits. */
export function fitNullModel(logits: readonly Float32Array[], numExperts: number, options: Pick<CalibrationOptions, 'perExpert' | 'points' | 'meta'>): NullModelFile {
  const E = numExperts;
  const bandwidths: number[] = [];
  const layers = logits.map((layerLogits) => {
    const pooled = kdeCdfGrid(layerLogits, options.points);
    bandwidths.push(pooled.bandwidth);
    const grid = (g: { x: Float64Array; cdf: Float64Array }): NullGridJson => ({ x: Array.from(g.x), cdf: Array.from(g.cdf) });
    if (!options.perExpert) return grid(pooled);
    const tokens = layerLogits.length / E;
    const column = new Float32Array(tokens);
    const experts = Array.from({ length: E }, (_, e) => {
      for (let t = 0; t < tokens; t++) column[t] = layerLogits[t * E + e];
      return grid(kdeCdfGrid(column, options.points));
    });
    return { ...grid(pooled), experts };
  });
  return {
    format: NULL_MODEL_FORMAT,
    layers,
    meta: {
      ...options.meta,
      method: 'gaussian_kde',
      bandwidth_rule: 'silverman: h = 1.06 * std(ddof=1) * n^(-1/5)',
      grid: `${options.points} points on [min - 4h, max + 4h]`,
      per_expert: options.perExpert,
      samples_per_layer: logits[0]?.length ?? 0,
      tokens: (logits[0]?.length ?? 0) / E,
      bandwidths,
      routelab_version: VERSION,
      created: new Date().toISOString(),
    },
  };
}
