import assert from 'node:assert/strict';
import { test } from 'node:test';
import { RoutelabError } from '../src/errors.js';
import { keyFindings } from '../src/report/findings.js';
import { formatNumber, resultsTable } from '../src/report/table.js';
import type { ConfigInfo, ReportCell, RunData } from '../src/report/types.js';
import type { ResultRow } from '../src/sweep/results.js';

const topk = (name: string, k: number, isBaseline = false): ConfigInfo =>
  ({ name, router: `topk:k=${k}`, routerKind: 'fixed', maxK: k, minK: k, alpha: null, isBaseline });
const bh = (name: string, maxK: number, alpha: number): ConfigInfo =>
  ({ name, router: `bh:alpha=${alpha},max_k=${maxK}`, routerKind: 'bh', maxK, minK: 1, alpha, isBaseline: false });

/** A cell as findings and the table see it: its results row (the summary is not read by either). */
const cell = (config: string, task: string, row: ResultRow): ReportCell =>
  ({ config, task, row: { config, task, ...row }, summary: {} as ReportCell['summary'], traceFile: null });

function run(configs: ConfigInfo[], tasks: string[], cells: ReportCell[]): RunData {
  const baseline = configs.find((c) => c.isBaseline)?.name ?? null;
  return { runDir: '/runs/x', manifest: {}, configs, tasks, cells, baseline, traces: [], documents: [], moeLayers: [0, 1], nullModel: null };
}

/** Significance columns of a row against `base`. */
const vs = (metric: string, delta: number, low: number, high: number, p: number): ResultRow =>
  ({ baseline: 'base', [`delta_${metric}`]: delta, [`ci_low_${metric}`]: low, [`ci_high_${metric}`]: high, [`p_${metric}`]: p });

/**
 * wikitext (200 documents): k16 is best and significantly better; bh_a030 is cheapest and significantly worse;
 * bh_a050 costs more than bh_a030 for a worse perplexity (dominated) and its interval spans 0.
 * hellaswag (10 documents): ties in accuracy and normalised accuracy, a tie for fastest, no significant difference.
 * Speed comes from the timing protocol (median and quartiles of interleaved rounds); wikitext's fastest is beyond
 * the baseline's spread, hellaswag's k16 differs from the baseline only within it.
 */
const timed = (median: number, p25: number, p75: number): ResultRow =>
  ({ timed_tokens_per_second: median, timed_tokens_per_second_p25: p25, timed_tokens_per_second_p75: p75, timing_runs: 5 });
const configs = [topk('base', 8, true), topk('k16', 16), bh('bh_a030', 8, 0.3), bh('bh_a050', 8, 0.5)];
const wiki = (extra: ResultRow): ResultRow => ({ num_docs: 200, primary_metric: 'word_perplexity', primary_value: extra.word_perplexity, ...extra });
const hella = (extra: ResultRow): ResultRow => ({ num_docs: 10, primary_metric: 'acc_norm', primary_value: extra.acc_norm, ...extra });
const sweep = run(configs, ['wikitext', 'hellaswag'], [
  cell('base', 'wikitext', wiki({ word_perplexity: 20, avg_experts: 8, tokens_per_second: 1000, ...timed(1000, 950, 1040), baseline: null })),
  cell('k16', 'wikitext', wiki({ word_perplexity: 18, avg_experts: 16, tokens_per_second: 600, ...timed(600, 580, 620), ...vs('word_perplexity', -2, -3, -1, 0.002), ...vs('log_word_perplexity', -0.105, -0.16, -0.05, 0.002) })),
  cell('bh_a030', 'wikitext', wiki({ word_perplexity: 25, avg_experts: 2, tokens_per_second: 1500, ...timed(1500, 1450, 1530), floor_hit_rate: 0.7, ceiling_hit_rate: 0.1, ...vs('word_perplexity', 5, 2, 8, 0.004) })),
  cell('bh_a050', 'wikitext', wiki({ word_perplexity: 26, avg_experts: 3, tokens_per_second: 1400, ...timed(1400, 1380, 1420), floor_hit_rate: 0.3, ceiling_hit_rate: 0.2, ...vs('word_perplexity', 6, -1, 12, 0.2) })),
  cell('base', 'hellaswag', hella({ acc: 0.5, acc_norm: 0.4, avg_experts: 8, tokens_per_second: 500, ...timed(500, 470, 530), baseline: null })),
  cell('k16', 'hellaswag', hella({ acc: 0.5, acc_norm: 0.4, avg_experts: 16, tokens_per_second: 300, ...timed(520, 490, 560), ...vs('acc', 0, 0, 0, 1), ...vs('acc_norm', 0, 0, 0, 1) })),
  cell('bh_a030', 'hellaswag', hella({ acc: 0.6, acc_norm: 0.3, avg_experts: 2.5, tokens_per_second: 500, ...timed(520, 500, 540), floor_hit_rate: 0.6, ceiling_hit_rate: 0.2,
    ...vs('acc', 0.1, -0.1, 0.3, 0.3), ...vs('acc_norm', -0.1, -0.3, 0.1, 0.4) })),
  cell('bh_a050', 'hellaswag', hella({ acc: 0.6, acc_norm: 0.4, avg_experts: 3, tokens_per_second: 450, ...timed(450, 440, 460), floor_hit_rate: 0.4, ceiling_hit_rate: 0.1,
    ...vs('acc', 0.1, -0.1, 0.3, 0.3), ...vs('acc_norm', 0, -0.2, 0.2, 1) })),
]);

const BH_FAMILY = '(paired bootstrap over documents; p-values adjusted by Benjamini–Hochberg (false discovery rate) over all 9 comparisons of this report, significant at ≤ 0.05)';
const FEW = 'With 10 documents, these intervals are wide and rest on few documents: treat them as indicative.';

test('findings name the best, the fastest, the Pareto set and the significant differences, with ties', () => {
  assert.deepEqual(keyFindings(sweep), [
    { topic: 'best', text: 'On `wikitext`: lowest word perplexity 18.00 (`k16`; baseline 20.00).' },
    { topic: 'best', text: 'On `hellaswag` (10 documents): highest accuracy 0.600 (`bh_a030` and `bh_a050`; baseline 0.500); ' +
      'highest normalised accuracy 0.400 (`base`, `k16` and `bh_a050`).' },
    { topic: 'speed', text: "On `wikitext`, `bh_a030` is fastest at 1,500 tokens/s (IQR 1,450–1,530) over 5 interleaved timing rounds, 1.50× the baseline's 1,000 tokens/s (IQR 950–1,040)." },
    { topic: 'speed', text: "On `hellaswag` (10 documents), `k16` and `bh_a030` are fastest at 520 tokens/s (IQR 490–560) over 5 interleaved timing rounds; " +
      "their difference from the baseline's 500 tokens/s (IQR 470–530) is within the timing noise (the interquartile ranges overlap)." },
    { topic: 'pareto', text: 'On `wikitext`, the Pareto set of word perplexity vs experts per token is `bh_a030` (2.00 experts/token, 25.00), ' +
      '`base` (8.00 experts/token, 20.00) and `k16` (16.00 experts/token, 18.00); the other 1 configuration is dominated.' },
    { topic: 'pareto', text: 'On `hellaswag` (10 documents), the Pareto set of normalised accuracy vs experts per token is ' +
      '`bh_a030` (2.50 experts/token, 0.300) and `bh_a050` (3.00 experts/token, 0.400); the other 2 configurations are dominated.' },
    { topic: 'significance', text: `On \`wikitext\`, word perplexity vs the baseline \`base\` ${BH_FAMILY}: ` +
      'significantly better (lower) for `k16` (Δ ln word perplexity -0.105 nats, 95% CI [-0.160, -0.050], adjusted p 0.018); ' +
      'significantly worse (higher) for `bh_a030` (Δ +5.00, 95% CI [2.00, 8.00], adjusted p 0.018); ' +
      'no significant difference for `bh_a050` (Δ +6.00, 95% CI [-1.00, 12.00], adjusted p 0.540).' },
    { topic: 'significance', text: `On \`hellaswag\` (10 documents), accuracy vs the baseline \`base\` ${BH_FAMILY}: no significant difference for ` +
      '`k16` (Δ 0.000, 95% CI [0.000, 0.000], adjusted p 1.000) and `bh_a030`, `bh_a050` (each Δ +0.100, 95% CI [-0.100, 0.300], adjusted p 0.540).' +
      ` ${FEW}` },
    { topic: 'significance', text: `On \`hellaswag\` (10 documents), normalised accuracy vs the baseline \`base\` ${BH_FAMILY}: no significant difference for ` +
      '`k16` (Δ 0.000, 95% CI [0.000, 0.000], adjusted p 1.000), `bh_a030` (Δ -0.100, 95% CI [-0.300, 0.100], adjusted p 0.600) and ' +
      `\`bh_a050\` (Δ 0.000, 95% CI [-0.200, 0.200], adjusted p 1.000). ${FEW}` },
    { topic: 'bh-response', text: "At max_k = 8, as alpha rises from 0.3 to 0.5, BH's average experts per token rises monotonically on " +
      '`wikitext` (2.00 → 3.00, +1.00, +50%) and `hellaswag` (2.50 → 3.00, +0.50, +20%).' },
    // bh_a050 sits at its floor for at most 40% and at its ceiling for at most 20% of decisions: not notable.
    { topic: 'routing', text: '`bh_a030` routes 60.0–70.0% of (token, layer) decisions to its floor of 1 expert and 10.0–20.0% to its ceiling of 8, across its 2 tasks.' },
  ]);
});

test("BH's response to alpha and to max_k: monotone, flat or not, by how much, per task", () => {
  const grid = [8, 16].flatMap((maxK) => [0.3, 0.4, 0.5].map((alpha) => bh(`${maxK}_a${alpha}`, maxK, alpha)));
  const experts: Record<string, [number, number]> = { // [wikitext, rte]
    '8_a0.3': [2.0, 1.5], '8_a0.4': [2.5, 1.8], '8_a0.5': [3.0, 1.7],
    '16_a0.3': [2.2, 1.0], '16_a0.4': [3.0, 1.0], '16_a0.5': [4.0, 1.0],
  };
  const cells = grid.flatMap((c) => ['wikitext', 'rte'].map((task, i) => cell(c.name, task, { avg_experts: experts[c.name][i] })));
  // Nothing but expert counts: only the BH response can be claimed.
  assert.deepEqual(keyFindings(run(grid, ['wikitext', 'rte'], cells)).map((f) => `${f.topic}: ${f.text}`), [
    "bh-response: At max_k = 8, as alpha rises from 0.3 to 0.5, BH's average experts per token rises monotonically on " +
      '`wikitext` (2.00 → 3.00, +1.00, +50%); is not monotone on `rte` (1.50, 1.80, 1.70).',
    "bh-response: At max_k = 16, as alpha rises from 0.3 to 0.5, BH's average experts per token rises monotonically on " +
      '`wikitext` (2.20 → 4.00, +1.80, +82%); does not change on `rte` (1.00).',
    "bh-response: At alpha = 0.3, as max_k rises from 8 to 16, BH's average experts per token rises monotonically on " +
      '`wikitext` (2.00 → 2.20, +0.20, +10%); falls monotonically on `rte` (1.50 → 1.00, -0.50, -33%).',
    "bh-response: At alpha = 0.4, as max_k rises from 8 to 16, BH's average experts per token rises monotonically on " +
      '`wikitext` (2.50 → 3.00, +0.50, +20%); falls monotonically on `rte` (1.80 → 1.00, -0.80, -44%).',
    "bh-response: At alpha = 0.5, as max_k rises from 8 to 16, BH's average experts per token rises monotonically on " +
      '`wikitext` (3.00 → 4.00, +1.00, +33%); falls monotonically on `rte` (1.70 → 1.00, -0.70, -41%).',
  ]);
});

test('a configuration that dominates all others, a tie of every configuration, and no baseline', () => {
  const configs = [topk('small', 2), topk('large', 8)];
  const row = (avg: number): ResultRow => ({ num_docs: 1, primary_metric: 'acc', acc: 0.5, primary_value: 0.5, avg_experts: avg });
  const findings = keyFindings(run(configs, ['sst2'], [cell('small', 'sst2', row(2)), cell('large', 'sst2', row(8))]));
  assert.deepEqual(findings, [
    { topic: 'scope', text: "On `sst2` (1 document), every configuration's accuracy (0.500–0.500) lies within the 95% range of guessing " +
      '(0.500 ± 0.980 over 1 document): the task is beyond this model, and its accuracy differences say nothing about routing.' },
    { topic: 'best', text: 'On `sst2` (1 document): accuracy 0.500 for both configurations.' },
    { topic: 'pareto', text: 'On `sst2` (1 document), `small` dominates every other configuration in accuracy and experts per token (2.00 experts/token, accuracy 0.500).' },
  ]);
});

test('the results table: columns present in the data, default order, sorting by a metric in its better direction', () => {
  const table = resultsTable(sweep);
  assert.deepEqual(table.columns.map((c) => c.key), [
    'config', 'task', 'num_docs', 'primary_metric', 'primary_value', 'word_perplexity', 'acc', 'acc_norm', 'avg_experts',
    'tokens_per_second', 'timed_tokens_per_second', 'floor_hit_rate', 'ceiling_hit_rate', 'delta_primary', 'ci_low_primary', 'ci_high_primary',
  ]);
  const column = (key: string) => table.columns.find((c) => c.key === key)!;
  assert.deepEqual(column('word_perplexity'), { key: 'word_perplexity', label: 'Word perplexity', unit: null, digits: 2, higherIsBetter: false });
  assert.deepEqual(column('tokens_per_second'), { key: 'tokens_per_second', label: 'Throughput', unit: 'tokens/s', digits: 0, higherIsBetter: true, secondary: true });
  // Documents, cost and routing behaviour are secondary: a printed report sets them in an appendix table.
  assert.deepEqual(table.columns.filter((c) => c.secondary).map((c) => c.key), ['num_docs', 'primary_value', 'tokens_per_second', 'timed_tokens_per_second', 'floor_hit_rate', 'ceiling_hit_rate']);
  assert.equal(table.sortedBy, 'task');
  const order = (t: typeof table) => t.rows.map((r) => `${r[1]}/${r[0]}`);
  assert.deepEqual(order(table), [...configs.map((c) => `wikitext/${c.name}`), ...configs.map((c) => `hellaswag/${c.name}`)]);
  const delta = table.columns.indexOf(column('delta_primary'));
  assert.deepEqual(table.rows.map((r) => r[delta]), [null, -2, 5, 6, null, 0, -0.1, 0]);

  const byPerplexity = resultsTable(sweep, 'word_perplexity');
  assert.equal(byPerplexity.sortedBy, 'word_perplexity');
  assert.deepEqual(order(byPerplexity), [
    'wikitext/k16', 'wikitext/base', 'wikitext/bh_a030', 'wikitext/bh_a050', // lowest first
    'hellaswag/base', 'hellaswag/k16', 'hellaswag/bh_a030', 'hellaswag/bh_a050', // no value: last, in default order
  ]);
  assert.deepEqual(order(resultsTable(sweep, 'acc')).slice(0, 4), ['hellaswag/bh_a030', 'hellaswag/bh_a050', 'hellaswag/base', 'hellaswag/k16']);
  assert.deepEqual(order(resultsTable(sweep, 'config')).slice(0, 3), ['wikitext/base', 'hellaswag/base', 'wikitext/k16']);

  assert.throws(() => resultsTable(sweep, 'perplexity'), (e: unknown) =>
    e instanceof RoutelabError && /--sort: unknown column "perplexity"; sortable columns: config, task, num_docs, .*acc_norm, avg_experts/.test(e.message));
});

test('numbers are shown with their decimals, exponents from a million, and signed differences', () => {
  assert.equal(formatNumber(10271.714, 2), '10,271.71');
  assert.equal(formatNumber(1256954.366, 2), '1.26e6');
  assert.equal(formatNumber(1246682.6, 2, { signed: true }), '+1.25e6');
  assert.equal(formatNumber(-0.00004, 3, { signed: true }), '0.000');
  assert.equal(formatNumber(-0.2, 3), '-0.200');
  assert.equal(formatNumber(Number.NaN, 1), 'n/a');
});

test('significance is corrected over the report\'s family: Holm on request, and an adjusted p above 0.05 is not significant', () => {
  // 9 comparisons; raw p 0.002 and 0.004 become 9·0.002 = 0.018 and 8·0.004 = 0.032 under Holm, 0.2 becomes 1.
  const wikitext = keyFindings(sweep, 'holm').find((f) => f.topic === 'significance' && f.text.startsWith('On `wikitext`'))!;
  assert.match(wikitext.text, /adjusted by Holm \(family-wise error rate\) over all 9 comparisons/);
  assert.match(wikitext.text, /`k16` \(Δ ln word perplexity -0\.105 nats, 95% CI \[-0\.160, -0\.050\], adjusted p 0\.018\)/);
  assert.match(wikitext.text, /`bh_a030` \(Δ \+5\.00, 95% CI \[2\.00, 8\.00\], adjusted p 0\.032\)/);
  assert.match(wikitext.text, /no significant difference for `bh_a050` \(.*adjusted p 1\.000\)/);
  // Raw p-values of 0.04 that the family pushes above 0.05 (Holm: 3 · 0.04, then max(0.12, 2 · 0.04)) are not called
  // significant, although their intervals exclude 0.
  const marginal = run(configs, ['wikitext'], [
    cell('base', 'wikitext', wiki({ word_perplexity: 20, avg_experts: 8, baseline: null })),
    cell('k16', 'wikitext', wiki({ word_perplexity: 18, avg_experts: 16, ...vs('word_perplexity', -2, -3, -0.1, 0.04) })),
    cell('bh_a030', 'wikitext', wiki({ word_perplexity: 19, avg_experts: 2, ...vs('word_perplexity', -1, -2, -0.1, 0.04) })),
    cell('bh_a050', 'wikitext', wiki({ word_perplexity: 21, avg_experts: 3, ...vs('word_perplexity', 1, -1, 3, 0.9) })),
  ]);
  const text = keyFindings(marginal, 'holm').find((f) => f.topic === 'significance')!.text;
  assert.match(text, /: no significant difference for `k16` .*adjusted p 0\.120\), `bh_a030` .*adjusted p 0\.120\) and `bh_a050`/);
});

test('what the model can show: a demo model is said first, and tasks at chance (or at zero) are named as beyond it', () => {
  const chance = run(configs.slice(0, 2), ['hellaswag', 'lambada_openai'], [
    cell('base', 'hellaswag', hella({ acc: 0.3, acc_norm: 0.3, avg_experts: 8, baseline: null })),
    cell('k16', 'hellaswag', hella({ acc: 0.4, acc_norm: 0.2, avg_experts: 16 })),
    cell('base', 'lambada_openai', { num_docs: 10, primary_metric: 'perplexity', acc: 0, perplexity: 1e6, avg_experts: 8, baseline: null }),
    cell('k16', 'lambada_openai', { num_docs: 10, primary_metric: 'perplexity', acc: 0, perplexity: 2e6, avg_experts: 16 }),
  ]);
  const scope = keyFindings({ ...chance, demoModel: true }).filter((f) => f.topic === 'scope').map((f) => f.text);
  assert.equal(scope.length, 3);
  assert.match(scope[0], /^This run's model is a demonstration model \(its model card tags it `demo`\)/);
  // 10 documents, 4 choices: 0.25 ± 1.96·√(0.1875 / 10) = 0.25 ± 0.268.
  assert.equal(scope[1], "On `hellaswag` (10 documents), every configuration's accuracy (0.300–0.400) lies within the 95% range of guessing " +
    '(0.250 ± 0.268 over 10 documents): the task is beyond this model, and its accuracy differences say nothing about routing.');
  assert.match(scope[2], /^On `lambada_openai` \(10 documents\), accuracy is 0 for every configuration: the task is beyond this model/);
  // Above chance, or not a demo: nothing is said.
  assert.deepEqual(keyFindings(sweep).filter((f) => f.topic === 'scope'), []);
});

test('a pooled null that misses the experts one by one is reported with its numbers; a fit at chance level is not', () => {
  const layer = (l: number, ks: number, worst: number, above: number) =>
    ({ layer: l, x: new Float64Array(2), cdf: new Float64Array(2), density: new Float64Array(2), bandwidth: 0.1, ks, ksWorstExpert: worst, ksExpertsAboveCritical: above });
  const withNull = (nullModel: RunData['nullModel']): RunData => ({ ...run([topk('base', 8, true)], ['text'], []), nullModel });
  const pooled = { file: 'runs/quick/null.json', estimator: 'kde' as const, perExpert: false, numExperts: 64, heldOutTokens: 1638 };
  const found = keyFindings(withNull({ ...pooled, layers: [layer(0, 0.0084, 0.5106, 64), layer(1, 0.0038, 0.4214, 64)] })).filter((f) => f.topic === 'null-fit');
  assert.equal(found.length, 1);
  assert.equal(found[0].text,
    "bh's p-values come from one null per layer (`runs/quick/null.json`). It fits each layer's router logits taken together (held-out KS distance 0.004–0.008) " +
    "but not each expert's: in each layer 64 of 64 experts' held-out logits lie further from it than 1638 held-out tokens of a correct null would 95% of the time " +
    '(KS > 0.034; about 3 would by chance), the worst by 0.421–0.511. Under it, an expert whose logits sit above the others\' gets small p-values on every token, ' +
    "so bh's selections follow the experts' typical logit levels as well as each token's evidence; a null per expert (`routelab calibrate --per-expert`) tests each expert against its own distribution.");
  // 9 of 64 is under 3 × the 3.2 expected by chance: no finding; nor without per-expert distances.
  assert.deepEqual(keyFindings(withNull({ ...pooled, layers: [layer(0, 0.01, 0.05, 9)] })).filter((f) => f.topic === 'null-fit'), []);
  assert.deepEqual(keyFindings(withNull({ ...pooled, layers: [{ ...layer(0, 0.01, 0.05, 9), ksWorstExpert: undefined, ksExpertsAboveCritical: undefined }] }))
    .filter((f) => f.topic === 'null-fit'), []);
  // Per-expert nulls that still miss: said as such.
  const own = keyFindings(withNull({ ...pooled, perExpert: true, layers: [layer(0, 0.01, 0.3, 20)] })).filter((f) => f.topic === 'null-fit');
  assert.match(own[0].text, /^bh's p-values come from each expert's own null .* in each layer 20 of 64 experts' held-out logits lie further from their null .* treat bh's error rate as approximate\.$/);
});
