/**
 * The key findings of a sweep, written from its numbers: each sentence states only what the data it quotes shows,
 * and is left out when that data is missing (no baseline, no BH grid, a metric no task reports).
 */
import { ksCritical95 } from '../calibrate/ks.js';
import { adjustPValues, type Correction, CORRECTION_NAMES, paretoOptimal } from '../experiments/stats.js';
import { COMPARED_METRICS, LOG_COMPARED } from '../sweep/results.js';
import { getTask } from '../tasks/registry.js';
import { formatNumber, metricColumn, rowNumber, rowValue, type TableColumn } from './table.js';
import type { ConfigInfo, Finding, ReportCell, RunData } from './types.js';

/** Tasks scored on fewer documents than this are flagged: a few documents more or less move their metrics a lot. */
const FEW_DOCUMENTS = 100;
/** BH's routing is worth describing when most decisions sit at min_k, or at least one in four at max_k. */
const NOTABLE_FLOOR_RATE = 0.5;
const NOTABLE_CEILING_RATE = 0.25;

export function keyFindings(data: RunData, correction: Correction = 'bh'): Finding[] {
  const family = comparisonFamily(data, correction);
  return [
    ...demoFinding(data),
    ...data.tasks.flatMap((task) => chanceFinding(data, task)),
    ...data.tasks.flatMap((task) => bestFinding(data, task)),
    ...data.tasks.flatMap((task) => fastestFinding(data, task)),
    ...data.tasks.flatMap((task) => paretoFinding(data, task)),
    ...data.tasks.flatMap((task) => COMPARED_METRICS.flatMap((metric) => significanceFinding(data, family, task, metric, correction))),
    ...data.configs.flatMap((config) => data.tasks.flatMap((task) => controlsFinding(data, config, task))),
    ...nullFitFinding(data),
    ...bhResponseFindings(data),
    ...data.configs.flatMap((config) => routingFinding(data, config)),
  ];
}

// ——— wording ———

const code = (name: string) => `\`${name}\``;

/** "a", "a and b", "a, b and c". */
function list(items: readonly string[]): string {
  return items.length <= 1 ? items.join('') : `${items.slice(0, -1).join(', ')} and ${items[items.length - 1]}`;
}

/** Names with their details; names whose details read the same share them: "`a`, `b` (each Δ 0.000, …) and `c` (…)". */
function withShared(entries: readonly { name: string; detail: string }[]): string {
  const byDetail = new Map<string, string[]>();
  for (const { name, detail } of entries) byDetail.set(detail, [...(byDetail.get(detail) ?? []), name]);
  return list([...byDetail].map(([detail, names]) => `${names.join(', ')} (${names.length > 1 ? 'each ' : ''}${detail})`));
}

const plural = (n: number, noun: string) => `${n} ${noun}${n === 1 ? '' : 's'}`;

/** The task's name, flagged with its document count when that is small. */
function taskName(data: RunData, task: string): string {
  const docs = data.cells.map((c) => (c.task === task ? rowNumber(c, 'num_docs') : null)).find((n): n is number => n !== null);
  return docs !== undefined && docs < FEW_DOCUMENTS ? `${code(task)} (${plural(docs, 'document')})` : code(task);
}

/** A metric's name inside a sentence: its column label, lower-cased. */
const noun = (column: TableColumn) => column.label.charAt(0).toLowerCase() + column.label.slice(1);
const show = (column: TableColumn, value: number, signed = false) => formatNumber(value, column.digits ?? 3, { signed });
const percent = (share: number) => `${formatNumber(100 * share, 1)}%`;

// ——— data ———

/** Equal up to rounding noise: ties are ties even when computed along different paths. */
const same = (a: number, b: number) => Math.abs(a - b) <= 1e-9 * Math.max(1, Math.abs(a), Math.abs(b));

interface Measured {
  readonly cell: ReportCell;
  readonly value: number;
}

/** The task's cells that report `key`, in the sweep's configuration order. */
function measured(data: RunData, task: string, key: string): Measured[] {
  const order = new Map(data.configs.map((c, i) => [c.name, i]));
  return data.cells
    .filter((cell) => cell.task === task)
    .sort((a, b) => (order.get(a.config) ?? Infinity) - (order.get(b.config) ?? Infinity))
    .flatMap((cell) => {
      const value = rowNumber(cell, key);
      return value === null ? [] : [{ cell, value }];
    });
}

/** The cells with the best value, all of them when tied. */
function winners(entries: readonly Measured[], higherIsBetter: boolean): Measured[] {
  const best = entries.reduce((b, e) => ((higherIsBetter ? e.value > b : e.value < b) ? e.value : b), entries[0].value);
  return entries.filter((e) => same(e.value, best));
}

/** Direction of a perplexity or accuracy; null for metrics without one. */
function qualityColumn(metric: string): TableColumn | null {
  return (COMPARED_METRICS as readonly string[]).includes(metric) ? metricColumn(metric) : null;
}

// ——— findings ———

/** Best configuration per quality metric of one task, with the baseline's value for scale. */
function bestFinding(data: RunData, task: string): Finding[] {
  const fragments = COMPARED_METRICS.flatMap((metric) => {
    const column = metricColumn(metric);
    const entries = measured(data, task, metric);
    if (entries.length < 2) return [];
    const best = winners(entries, column.higherIsBetter!);
    const value = show(column, best[0].value);
    if (best.length === entries.length) return [`${noun(column)} ${value} for ${entries.length === 2 ? 'both' : `all ${entries.length}`} configurations`];
    const baseline = entries.find((e) => e.cell.config === data.baseline);
    const scale = baseline && !best.includes(baseline) ? `; baseline ${show(column, baseline.value)}` : '';
    return [`${column.higherIsBetter ? 'highest' : 'lowest'} ${noun(column)} ${value} (${list(best.map((e) => code(e.cell.config)))}${scale})`];
  });
  return fragments.length ? [{ topic: 'best', text: `On ${taskName(data, task)}: ${fragments.join('; ')}.` }] : [];
}

/**
 * The fastest configuration of a task by the timing protocol's medians (every configuration timed over the same
 * probe in interleaved rounds). Another configuration is called faster or slower than the baseline only when their
 * interquartile ranges do not overlap; otherwise the difference is said to be within the timing noise. Without the
 * protocol (timing rounds 0, an older run) the single timing of each evaluation makes no speed claim.
 */
function fastestFinding(data: RunData, task: string): Finding[] {
  const column = metricColumn('timed_tokens_per_second');
  const entries = measured(data, task, 'timed_tokens_per_second');
  if (entries.length < 2) return [];
  const quartiles = (e: Measured) => [rowNumber(e.cell, 'timed_tokens_per_second_p25') ?? e.value, rowNumber(e.cell, 'timed_tokens_per_second_p75') ?? e.value];
  const runs = rowNumber(entries[0].cell, 'timing_runs');
  const spread = (e: Measured) => `${show(column, e.value)} ${column.unit} (IQR ${quartiles(e).map((q) => show(column, q)).join('–')})`;
  const best = winners(entries, true);
  const baseline = entries.find((e) => e.cell.config === data.baseline);
  const names = list(best.map((e) => (e === baseline ? `the baseline ${code(e.cell.config)}` : code(e.cell.config))));
  let versus = '';
  if (baseline && !best.includes(baseline)) {
    const beyond = quartiles(best[0])[0] > quartiles(baseline)[1];
    versus = beyond
      ? `, ${formatNumber(best[0].value / baseline.value, 2)}× the baseline's ${spread(baseline)}`
      : `; ${best.length === 1 ? 'its' : 'their'} difference from the baseline's ${spread(baseline)} is within the timing noise (the interquartile ranges overlap)`;
  }
  const protocol = runs === null ? 'over interleaved timing rounds' : `over ${runs} interleaved timing rounds`;
  return [{ topic: 'speed', text: `On ${taskName(data, task)}, ${names} ${best.length === 1 ? 'is' : 'are'} fastest at ${spread(best[0])} ${protocol}${versus}.` }];
}

/** The configurations no other beats in both the task's primary metric and experts per token. */
function paretoFinding(data: RunData, task: string): Finding[] {
  const primary = data.cells.map((c) => (c.task === task ? rowValue(c, 'primary_metric') : null)).find((m) => m !== null);
  const column = typeof primary === 'string' ? qualityColumn(primary) : null;
  if (typeof primary !== 'string' || !column) return [];
  const experts = new Map(measured(data, task, 'avg_experts').map((e) => [e.cell, e.value]));
  const points = measured(data, task, primary).flatMap((e) => {
    const cost = experts.get(e.cell);
    return cost === undefined ? [] : [{ cell: e.cell, cost, quality: e.value }];
  });
  if (points.length < 2) return [];
  const optimal = paretoOptimal(points.map((p) => p.cost), points.map((p) => (column.higherIsBetter ? -p.quality : p.quality)));
  const front = points.filter((_, i) => optimal[i]).sort((a, b) => a.cost - b.cost);
  const item = (p: (typeof points)[number]) => `${code(p.cell.config)} (${show(metricColumn('avg_experts'), p.cost)} experts/token, ${show(column, p.quality)})`;
  const name = taskName(data, task);
  let text: string;
  if (front.length === 1) {
    const [p] = front;
    text = `On ${name}, ${code(p.cell.config)} dominates every other configuration in ${noun(column)} and experts per token ` +
      `(${show(metricColumn('avg_experts'), p.cost)} experts/token, ${noun(column)} ${show(column, p.quality)}).`;
  } else if (front.length === points.length) {
    text = `On ${name}, every configuration is Pareto-optimal in ${noun(column)} vs experts per token: ${list(front.map(item))}.`;
  } else {
    const dominated = points.length - front.length;
    text = `On ${name}, the Pareto set of ${noun(column)} vs experts per token is ${list(front.map(item))}; ` +
      `the other ${plural(dominated, 'configuration')} ${dominated === 1 ? 'is' : 'are'} dominated.`;
  }
  return [{ topic: 'pareto', text }];
}

/** The level at which an adjusted p-value counts as significant. */
const SIGNIFICANCE_LEVEL = 0.05;

/** One comparison against the baseline (a configuration on a task and metric), with its adjusted p-value. */
interface Comparison {
  readonly cell: ReportCell;
  readonly task: string;
  readonly metric: string;
  readonly delta: number;
  readonly low: number;
  readonly high: number;
  readonly p: number;
  adjusted: number;
}

/**
 * Every comparison the report makes against the baseline, with p-values adjusted over that whole family by
 * `correction`: the significance statements are about the family, not about each comparison alone.
 */
export function comparisonFamily(data: RunData, correction: Correction): Comparison[] {
  if (data.baseline === null) return [];
  const family: Comparison[] = [];
  for (const task of data.tasks) {
    for (const metric of COMPARED_METRICS) {
      for (const { cell, value } of measured(data, task, `delta_${metric}`)) {
        const low = rowNumber(cell, `ci_low_${metric}`);
        const high = rowNumber(cell, `ci_high_${metric}`);
        const p = rowNumber(cell, `p_${metric}`);
        if (cell.row.baseline === data.baseline && low !== null && high !== null && p !== null) family.push({ cell, task, metric, delta: value, low, high, p, adjusted: p });
      }
    }
  }
  adjustPValues(family.map((c) => c.p), correction).forEach((q, i) => { family[i].adjusted = q; });
  return family;
}

/**
 * Which configurations differ from the baseline on one metric of one task: adjusted p ≤ 0.05 over the report's
 * family of comparisons. Perplexities are quoted as Δ ln(perplexity) in nats, with their bootstrap interval.
 */
function significanceFinding(data: RunData, family: readonly Comparison[], task: string, metric: string, correction: Correction): Finding[] {
  const compared = family.filter((c) => c.task === task && c.metric === metric);
  if (compared.length === 0) return [];
  const column = metricColumn(metric);
  const log = LOG_COMPARED[metric as keyof typeof LOG_COMPARED];
  const stats = (c: Comparison) => {
    const logDelta = log ? rowNumber(c.cell, `delta_${log}`) : null;
    const logLow = log ? rowNumber(c.cell, `ci_low_${log}`) : null;
    const logHigh = log ? rowNumber(c.cell, `ci_high_${log}`) : null;
    const effect = logDelta !== null && logLow !== null && logHigh !== null
      ? `Δ ln ${noun(column)} ${formatNumber(logDelta, 3, { signed: true })} nats, 95% CI [${formatNumber(logLow, 3)}, ${formatNumber(logHigh, 3)}]`
      : `Δ ${show(column, c.delta, true)}, 95% CI [${show(column, c.low)}, ${show(column, c.high)}]`;
    return `${effect}, adjusted p ${formatP(c.adjusted)}`;
  };
  const items = (group: readonly Comparison[]) => withShared(group.map((c) => ({ name: code(c.cell.config), detail: stats(c) })));
  const significant = compared.filter((c) => c.adjusted <= SIGNIFICANCE_LEVEL);
  const higher = significant.filter((c) => c.delta > 0);
  const lower = significant.filter((c) => c.delta < 0);
  const neither = compared.filter((c) => !significant.includes(c));
  const [better, worse] = column.higherIsBetter ? [higher, lower] : [lower, higher];
  const [up, down] = column.higherIsBetter ? ['higher', 'lower'] : ['lower', 'higher'];
  const parts = [
    better.length ? `significantly better (${up}) for ${items(better)}` : '',
    worse.length ? `significantly worse (${down}) for ${items(worse)}` : '',
    neither.length ? `no significant difference for ${items(neither)}` : '',
  ].filter(Boolean);
  const docs = rowNumber(compared[0].cell, 'num_docs');
  const caveat = docs !== null && docs < FEW_DOCUMENTS
    ? ` With ${plural(docs, 'document')}, these intervals are wide and rest on few documents: treat them as indicative.` : '';
  return [{
    topic: 'significance',
    text: `On ${taskName(data, task)}, ${noun(column)} vs the baseline ${code(data.baseline!)} ` +
      `(paired bootstrap over documents; p-values adjusted by ${CORRECTION_NAMES[correction]} over all ${family.length} comparisons of this report, significant at ≤ ${SIGNIFICANCE_LEVEL}): ` +
      `${parts.join('; ')}.${caveat}`,
  }];
}

/**
 * An adaptive configuration against its matched controls on one task (sweep `controls: matched`): top-k at the floor
 * and ceiling of its average count, and randk drawing its counts. Each Δ is adaptive − control on the same documents,
 * with its paired-bootstrap 95% interval; perplexities on the log scale.
 */
function controlsFinding(data: RunData, config: ConfigInfo, task: string): Finding[] {
  const own = data.cells.find((c) => c.config === config.name && c.task === task);
  const controls = data.cells.filter((c) => c.task === task && c.row.control_of === config.name);
  if (!own || controls.length === 0) return [];
  const primary = rowValue(own, 'primary_metric');
  if (typeof primary !== 'string') return [];
  const logMetric = LOG_COMPARED[primary as keyof typeof LOG_COMPARED];
  const metric = logMetric ?? primary;
  const column = metricColumn(primary);
  const experts = (c: ReportCell) => formatNumber(rowNumber(c, 'avg_experts') ?? NaN, 2);
  const parts = controls.flatMap((c) => {
    const [delta, low, high] = ['delta', 'ci_low', 'ci_high'].map((k) => rowNumber(c, `vs_control_${k}_${metric}`));
    const value = rowNumber(c, primary);
    if (delta === null || low === null || high === null || value === null) return [];
    const effect = logMetric ? `Δ ln ${noun(column)} ${formatNumber(delta, 3, { signed: true })} nats, 95% CI [${formatNumber(low, 3)}, ${formatNumber(high, 3)}]`
      : `Δ ${show(column, delta, true)}, 95% CI [${show(column, low)}, ${show(column, high)}]`;
    return [`${code(c.config)} (${experts(c)} experts/token, ${show(column, value)}; ${effect})`];
  });
  if (parts.length === 0) return [];
  const better = column.higherIsBetter ? 'positive' : 'negative';
  return [{
    topic: 'controls',
    text: `On ${taskName(data, task)}, ${code(config.name)} (${experts(own)} experts/token, ${noun(column)} ${show(column, rowNumber(own, primary) ?? NaN)}) ` +
      `against its matched controls — Δ is ${code(config.name)} minus the control on the same documents, ${better} favours ${code(config.name)}: ${list(parts)}.`,
  }];
}

/** A demonstration model's numbers are about the pipeline, and the report says so first. */
function demoFinding(data: RunData): Finding[] {
  return data.demoModel ? [{
    topic: 'scope',
    text: 'This run\'s model is a demonstration model (its model card tags it `demo`): its numbers exercise routelab\'s pipeline and show how a router behaves on it; they are not findings about Mixture-of-Experts routing in real models.',
  }] : [];
}

/**
 * An accuracy task beyond the model: every configuration's accuracy within the 95% range of guessing (chance ±
 * 1.96·√(chance·(1 − chance)/n)), or zero for every configuration when the task has no guessing floor (LAMBADA).
 */
function chanceFinding(data: RunData, task: string): Finding[] {
  const entries = measured(data, task, 'acc');
  if (entries.length === 0) return [];
  const chance = getTask(task).chanceAccuracy;
  const n = rowNumber(entries[0].cell, 'num_docs') ?? 0;
  const values = entries.map((e) => e.value);
  const range = `${formatNumber(Math.min(...values), 3)}–${formatNumber(Math.max(...values), 3)}`;
  if (chance === undefined) {
    return values.every((v) => v === 0) ? [{
      topic: 'scope', text: `On ${taskName(data, task)}, accuracy is 0 for every configuration: the task is beyond this model, and its accuracy says nothing about routing.`,
    }] : [];
  }
  const margin = 1.96 * Math.sqrt((chance * (1 - chance)) / n);
  if (!values.every((v) => Math.abs(v - chance) <= margin)) return [];
  return [{
    topic: 'scope',
    text: `On ${taskName(data, task)}, every configuration's accuracy (${range}) lies within the 95% range of guessing ` +
      `(${formatNumber(chance, 3)} ± ${formatNumber(margin, 3)} over ${plural(n, 'document')}): the task is beyond this model, and its accuracy differences say nothing about routing.`,
  }];
}

/**
 * BH's p-values assume each expert's logit is a draw from the null it is tested against. A null shared by a layer's
 * experts can fit the layer's logits as a whole and still miss each expert's: reported when, in some layer, clearly
 * more experts than chance would give (3× the 5% expected) exceed the held-out KS critical value.
 */
function nullFitFinding(data: RunData): Finding[] {
  const n = data.nullModel;
  if (n === null || n.heldOutTokens === null || n.numExperts === 0) return [];
  const above = n.layers.map((l) => l.ksExpertsAboveCritical);
  const worst = n.layers.map((l) => l.ksWorstExpert);
  const pooled = n.layers.map((l) => l.ks);
  if (above.some((a) => a === undefined) || worst.some((w) => w === undefined) || pooled.some((k) => k === undefined)) return [];
  const E = n.numExperts;
  const expected = 0.05 * E;
  if (!(above as number[]).some((a) => a > 3 * expected)) return [];
  const range = (xs: number[], digits: number) => {
    const [lo, hi] = [Math.min(...xs), Math.max(...xs)];
    return lo === hi ? formatNumber(lo, digits) : `${formatNumber(lo, digits)}–${formatNumber(hi, digits)}`;
  };
  const critical = formatNumber(ksCritical95(n.heldOutTokens), 3);
  const nulls = n.perExpert ? 'each expert\'s own null' : 'one null per layer';
  const text = `bh's p-values come from ${nulls} (${code(n.file)}). ` +
    (n.perExpert ? '' : `It fits each layer's router logits taken together (held-out KS distance ${range(pooled as number[], 3)}) but not each expert's: `) +
    `in each layer ${range(above as number[], 0)} of ${E} experts' held-out logits lie further from ${n.perExpert ? 'their null' : 'it'} than ${plural(n.heldOutTokens, 'held-out token')} ` +
    `of a correct null would 95% of the time (KS > ${critical}; about ${formatNumber(expected, 0)} would by chance), the worst by ${range(worst as number[], 3)}. ` +
    (n.perExpert
      ? 'Those experts\' p-values are not uniform under the null either, so treat bh\'s error rate as approximate.'
      : 'Under it, an expert whose logits sit above the others\' gets small p-values on every token, so bh\'s selections follow the experts\' typical logit levels as well as each token\'s evidence; a null per expert (`routelab calibrate --per-expert`) tests each expert against its own distribution.');
  return [{ topic: 'null-fit', text }];
}

/** A p-value as text: 3 significant digits, "< 0.001" below that. */
function formatP(p: number): string {
  return p < 0.001 ? '< 0.001' : formatNumber(p, 3);
}

type Trend = 'rises' | 'falls' | 'flat' | 'mixed';

function trendOf(values: readonly number[]): Trend {
  const steps = values.slice(1).map((v, i) => (same(v, values[i]) ? 0 : Math.sign(v - values[i])));
  if (steps.every((s) => s === 0)) return 'flat';
  if (steps.every((s) => s >= 0)) return 'rises';
  if (steps.every((s) => s <= 0)) return 'falls';
  return 'mixed';
}

/**
 * How BH's average experts per token responds to alpha at each (max_k, min_k), and to max_k at each (alpha, min_k):
 * per task, whether it moves monotonically and by how much from the lowest to the highest setting.
 */
function bhResponseFindings(data: RunData): Finding[] {
  const bh = data.configs.filter((c) => c.routerKind === 'bh' && c.alpha !== null && c.maxK !== null);
  const minK = (c: ConfigInfo) => (c.minK !== null && c.minK !== 1 ? `, min_k = ${c.minK}` : '');
  return [
    ...seriesOf(bh, (c) => c.alpha!, (c) => `max_k = ${c.maxK}${minK(c)}`).map((s) => bhResponse(data, 'alpha', s)),
    ...seriesOf(bh, (c) => c.maxK!, (c) => `alpha = ${c.alpha}${minK(c)}`).map((s) => bhResponse(data, 'max_k', s)),
  ].flat();
}

interface Series {
  readonly fixed: string;
  readonly levels: readonly number[];
  readonly configs: readonly ConfigInfo[];
}

/** Configurations that share everything but one setting, ordered by it; only series with two or more distinct levels. */
function seriesOf(configs: readonly ConfigInfo[], level: (c: ConfigInfo) => number, fixed: (c: ConfigInfo) => string): Series[] {
  const groups = new Map<string, ConfigInfo[]>();
  for (const c of configs) groups.set(fixed(c), [...(groups.get(fixed(c)) ?? []), c]);
  return [...groups].flatMap(([name, members]) => {
    const sorted = [...members].sort((a, b) => level(a) - level(b));
    const levels = sorted.map(level);
    // Two configurations at one level (differing in a setting ConfigInfo does not record) make no series.
    if (levels.length < 2 || new Set(levels).size !== levels.length) return [];
    return [{ fixed: name, levels, configs: sorted }];
  });
}

function bhResponse(data: RunData, axis: 'alpha' | 'max_k', series: Series): Finding[] {
  const column = metricColumn('avg_experts');
  const byTrend = new Map<Trend, string[]>();
  for (const task of data.tasks) {
    const cost = new Map(measured(data, task, 'avg_experts').map((e) => [e.cell.config, e.value]));
    const values = series.configs.map((c) => cost.get(c.name));
    if (values.some((v) => v === undefined)) continue;
    const v = values as number[];
    const trend = trendOf(v);
    const first = v[0];
    const last = v[v.length - 1];
    const change = first > 0 ? `, ${formatNumber((100 * (last - first)) / first, 0, { signed: true })}%` : '';
    const detail = trend === 'mixed' ? v.map((x) => show(column, x)).join(', ')
      : trend === 'flat' ? show(column, first)
      : `${show(column, first)} → ${show(column, last)}, ${show(column, last - first, true)}${change}`;
    byTrend.set(trend, [...(byTrend.get(trend) ?? []), `${code(task)} (${detail})`]);
  }
  const wording: Record<Trend, string> = { rises: 'rises monotonically on', falls: 'falls monotonically on', flat: 'does not change on', mixed: 'is not monotone on' };
  const parts = (['rises', 'falls', 'flat', 'mixed'] as const).flatMap((t) => (byTrend.has(t) ? [`${wording[t]} ${list(byTrend.get(t)!)}`] : []));
  if (parts.length === 0) return [];
  const lo = series.levels[0];
  const hi = series.levels[series.levels.length - 1];
  return [{ topic: 'bh-response', text: `At ${series.fixed}, as ${axis} rises from ${lo} to ${hi}, BH's average experts per token ${parts.join('; ')}.` }];
}

/** How often a BH configuration sits at its bounds, when that is a large share of its decisions. */
function routingFinding(data: RunData, config: ConfigInfo): Finding[] {
  if (config.routerKind !== 'bh' || config.minK === null || config.maxK === null || config.minK === config.maxK) return [];
  const cells = data.tasks.flatMap((task) => {
    const cell = data.cells.find((c) => c.config === config.name && c.task === task);
    const floor = cell && rowNumber(cell, 'floor_hit_rate');
    const ceiling = cell && rowNumber(cell, 'ceiling_hit_rate');
    return typeof floor === 'number' && typeof ceiling === 'number' ? [{ task, floor, ceiling }] : [];
  });
  if (cells.length === 0) return [];
  const range = (shares: number[]) => {
    const [lo, hi] = [percent(Math.min(...shares)), percent(Math.max(...shares))];
    return lo === hi ? lo : `${lo.slice(0, -1)}–${hi}`;
  };
  const floors = cells.map((c) => c.floor);
  const ceilings = cells.map((c) => c.ceiling);
  if (Math.max(...floors) < NOTABLE_FLOOR_RATE && Math.max(...ceilings) < NOTABLE_CEILING_RATE) return [];
  const where = cells.length === 1 ? `on ${code(cells[0].task)}` : `across its ${cells.length} tasks`;
  return [{
    topic: 'routing',
    text: `${code(config.name)} routes ${range(floors)} of (token, layer) decisions to its floor of ${plural(config.minK, 'expert')} ` +
      `and ${range(ceilings)} to its ceiling of ${config.maxK}, ${where}.`,
  }];
}
