/**
 * Matched controls for adaptive routers (sweep `controls: matched`). An adaptive configuration differs from the
 * baseline in three ways at once — how many experts, which ones, and how they are weighted — so each adaptive cell
 * gets controls on the same task and documents that change only the first two:
 *   - top-k at ⌊avg⌋ and ⌈avg⌉ experts per token (its average count), with its weight mode;
 *   - randk: each token's count drawn from its own per-layer count distribution, the top experts taken, its weight mode.
 * If the adaptive router beats its top-k controls, adaptivity helps beyond "fewer experts"; if it beats randk,
 * *which tokens* get more experts matters, not only the distribution of counts.
 */
import type { EvalSummary } from '../eval/evaluate.js';
import { parseRouterSpec } from '../routers/registry.js';
import type { Router, RouterDefaults } from '../routers/router.js';
import type { WeightMode } from '../routers/selection.js';

export const CONTROL_MODES = ['none', 'matched'] as const;
export type ControlMode = (typeof CONTROL_MODES)[number];

export interface Control {
  readonly kind: 'topk-floor' | 'topk-ceil' | 'randk';
  readonly router: Router;
}

/** The weight mode of an adaptive router (its `weights` setting; renorm for routers without one). */
function weightModeOf(router: Router): WeightMode {
  return (router as Router & { weights?: WeightMode }).weights ?? 'renorm';
}

/** The controls of one adaptive cell, from its summary (average count) and summary file (count distribution). */
export function matchedControls(router: Router, summary: EvalSummary, summaryFile: string, defaults: RouterDefaults, seed: number): Control[] {
  const avg = summary.routing.avg_experts;
  const renormalize = weightModeOf(router) === 'renorm';
  const clamp = (k: number) => Math.min(defaults.numExperts, Math.max(1, k));
  const ks = [...new Set([clamp(Math.floor(avg)), clamp(Math.ceil(avg))])];
  const controls: Control[] = ks.map((k, i) => ({
    kind: ks.length === 1 || i === 1 ? 'topk-ceil' : 'topk-floor',
    router: parseRouterSpec(`topk:k=${k},renormalize=${renormalize}`, defaults),
  }));
  controls.push({ kind: 'randk', router: parseRouterSpec(`randk:seed=${seed},weights=${weightModeOf(router)},from=${summaryFile}`, defaults) });
  return controls;
}
