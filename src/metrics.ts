/**
 * What every metric routelab reports means, declared once: its definition, where it comes from and which direction
 * is better. The numbers themselves are computed by the tasks (src/tasks/*: task metrics), by
 * src/eval/routing-metrics.ts (routing and speed) and by the sweep (src/sweep/results.ts: averages and differences
 * against the baseline); `routelab list metrics`, the report's sort order and `routelab compare` read this table.
 */

/** Which way a metric improves: 'higher', 'lower', or null where neither is better (it describes behaviour). */
export type Better = 'higher' | 'lower' | null;

export interface MetricDefinition {
  readonly key: string;
  /** 'task': a task's own metric (lm-eval semantics); 'routing': of the routers' decisions; 'speed'; 'sweep': per configuration. */
  readonly kind: 'task' | 'routing' | 'speed' | 'sweep';
  readonly definition: string;
  readonly better: Better;
  readonly unit: string | null;
}

const metric = (key: string, kind: MetricDefinition['kind'], better: Better, unit: string | null, definition: string): MetricDefinition =>
  ({ key, kind, better, unit, definition });

export const METRICS: readonly MetricDefinition[] = [
  // Task metrics (aggregated over documents as lm-evaluation-harness does: perplexities are ratios of sums).
  metric('word_perplexity', 'task', 'lower', null, 'exp(−Σ log-likelihood / Σ words) over the documents; words are the whitespace-separated pieces of the original page'),
  metric('byte_perplexity', 'task', 'lower', null, 'exp(−Σ log-likelihood / Σ UTF-8 bytes of the original pages)'),
  metric('bits_per_byte', 'task', 'lower', 'bits/byte', '−Σ log-likelihood / Σ UTF-8 bytes / ln 2'),
  metric('token_perplexity', 'task', 'lower', null, 'exp(−Σ log-likelihood / Σ scored tokens) (depends on the tokenizer)'),
  metric('cross_entropy', 'task', 'lower', 'nats/token', '−Σ log-likelihood / Σ scored tokens'),
  metric('token_acc_top1', 'task', 'higher', 'share of tokens', 'share of scored tokens that were the model\'s most probable prediction'),
  metric('token_acc_top5', 'task', 'higher', 'share of tokens', 'share of scored tokens within the model\'s five most probable predictions'),
  metric('perplexity', 'task', 'lower', null, 'exp(−mean over documents of the target word\'s log-likelihood)'),
  metric('acc', 'task', 'higher', 'share of documents', 'share of documents answered correctly: the target is the greedy continuation (cloze tasks), or the choice of highest log-likelihood is the gold one (multiple-choice tasks)'),
  metric('acc_norm', 'task', 'higher', 'share of documents', 'accuracy when each choice\'s log-likelihood is divided by its length in characters (lm-eval acc_norm)'),
  metric('f1', 'task', 'higher', null, 'binary F1 of the predicted choices with "yes" (equivalent) as the positive class'),
  // Routing metrics, over the scored positions t and MoE layers ℓ (each document token counts once).
  metric('avg_experts', 'routing', 'lower', 'experts/token', 'mean number of routed experts selected per scored position and MoE layer (the compute cost)'),
  metric('expert_activation_ratio', 'routing', 'lower', 'share of experts', 'avg_experts / E, the share of a layer\'s routed experts a token runs'),
  metric('flops_per_token', 'routing', 'lower', 'FLOPs', 'forward-pass FLOPs per token at the mean expert count and the mean context length'),
  metric('flops_reduction_pct', 'routing', 'higher', '%', '100 · (1 − flops_per_token / the FLOPs per token of the model\'s own k at the same context length)'),
  metric('expert_utilization', 'routing', null, 'share of experts', 'mean over layers of the share of experts selected at least once'),
  metric('gini', 'routing', null, null, 'mean over layers of the Gini coefficient of the per-expert selection counts (0: even load, towards 1: concentrated)'),
  metric('adaptive_range', 'routing', null, 'experts', 'max − min experts per token over all positions and layers (0 for fixed k)'),
  metric('selection_entropy', 'routing', null, 'nats', 'entropy of the distribution of experts per token c over all (t, ℓ)'),
  metric('selection_entropy_norm', 'routing', null, null, 'selection_entropy / ln(max_k)'),
  metric('std_experts', 'routing', null, 'experts', 'population standard deviation of experts per token over all (t, ℓ)'),
  metric('min_experts', 'routing', null, 'experts', 'fewest experts any position selected at any layer'),
  metric('max_experts', 'routing', null, 'experts', 'most experts any position selected at any layer'),
  metric('ceiling_hit_rate', 'routing', null, 'share of decisions', 'share of (t, ℓ) decisions that selected max_k experts (meaningful for adaptive routers only)'),
  metric('floor_hit_rate', 'routing', null, 'share of decisions', 'share of (t, ℓ) decisions that selected min_k experts (meaningful for adaptive routers only)'),
  metric('layer_expert_variance', 'routing', null, null, 'population variance over layers of each layer\'s mean experts per token'),
  metric('layer_consistency', 'routing', null, null, 'mean Pearson correlation of experts per token between adjacent layers (null when undefined)'),
  metric('expert_overlap', 'routing', null, null, 'mean Jaccard index of each selection with the model\'s own top-k selection at the same position'),
  metric('output_determinism', 'routing', null, null, '1 when two forward passes of the same input give bit-identical logits, else their largest absolute difference'),
  metric('scored_tokens', 'routing', null, 'tokens', 'number of scored positions (each document token once)'),
  metric('per_layer_avg_experts', 'routing', null, 'experts/token', 'mean experts per token at each MoE layer (a list)'),
  metric('per_layer_count_shares', 'routing', null, 'share of positions', 'per MoE layer, the share of positions that selected c = 0, 1, … experts (a list of lists; randk draws its counts from it)'),
  metric('mean_context_length', 'routing', null, 'tokens', 'mean number of keys a scored position attends to (enters flops_per_token)'),
  // Speed.
  metric('tokens_per_second', 'speed', 'higher', 'tokens/s', 'scored positions per second of forward-pass time'),
  metric('latency_ms_per_token', 'speed', 'lower', 'ms/token', '1000 / tokens_per_second'),
  metric('input_tokens_per_second', 'speed', 'higher', 'tokens/s', 'tokens run through the model (contexts included) per second of forward-pass time'),
  metric('timed_tokens_per_second', 'speed', 'higher', 'tokens/s', 'a sweep\'s timing protocol: median tokens/s of the configuration\'s forward pass over its task\'s probe tokens, over interleaved rounds (timed_tokens_per_second_p25 / _p75: the quartiles)'),
  // Per configuration, from a sweep.
  metric('log_word_perplexity', 'sweep', 'lower', 'nats/word', 'ln(word_perplexity): its differences are nats per word, readable where perplexity ratios are not'),
  metric('log_perplexity', 'sweep', 'lower', 'nats', 'ln(perplexity): its differences are nats per continuation'),
  metric('avg_task_accuracy', 'sweep', 'higher', 'share of documents', 'mean acc over the configuration\'s accuracy tasks (those `routelab list tasks` marks as entering avg_task_accuracy)'),
  metric('delta_METRIC', 'sweep', null, null, 'METRIC of the configuration − METRIC of the baseline on the same documents (sweeps: the model\'s own routing; compare: the first run); better as METRIC is'),
  metric('ci_low_METRIC', 'sweep', null, null, 'lower end of the 95% paired-bootstrap interval of delta_METRIC (documents resampled, the task\'s own aggregate recomputed)'),
  metric('ci_high_METRIC', 'sweep', null, null, 'upper end of the 95% paired-bootstrap interval of delta_METRIC'),
];

const BY_KEY = new Map(METRICS.map((m) => [m.key, m]));

/** The definition of a metric key (delta_acc, ci_low_acc, … resolve to their METRIC pattern), or undefined. */
export function metricDefinition(key: string): MetricDefinition | undefined {
  return BY_KEY.get(key) ?? BY_KEY.get(key.replace(/^(delta|ci_low|ci_high)_.+$/, '$1_METRIC'));
}

/** Which direction of `key` is better; a difference (delta_X) improves the way X does; null for anything else. */
export function betterDirection(key: string): Better {
  const delta = /^(?:delta|ci_low|ci_high)_(.+)$/.exec(key);
  if (delta) return BY_KEY.get(delta[1])?.better ?? null;
  return BY_KEY.get(key)?.better ?? null;
}

/** betterDirection as the report's tables use it: true (higher is better), false (lower) or null (neither). */
export function higherIsBetter(key: string): boolean | null {
  const better = betterDirection(key);
  return better === null ? null : better === 'higher';
}
