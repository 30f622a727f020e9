/**
 * The report's expert-specialisation section: `routelab analyze` (src/analyze) on the run's traces for the baseline
 * configuration (or the first traced one), its charts, and one sentence per analysis with its numbers — the most token-specialised expert, the
 * strongest co-activation, how predictable each layer's choice is from the one before, and what drives each adaptive
 * configuration's expert count. Definitions: docs/analyze.md.
 */
import { analyzeRun, shownToken } from '../analyze/analyze.js';
import { analysisCharts } from '../analyze/charts.js';
import { MEASURES } from '../analyze/adaptive.js';
import { formatNumber } from './table.js';
import type { Chart, Finding, RunData } from './types.js';

const num = (v: number, digits = 3) => formatNumber(v, digits);
const code = (s: string) => `\`${s}\``;

/**
 * `charts: false` (the paper style: analyze's figures are laid out for screens, not for a 3.5 or 7 in column) keeps the
 * sentences and leaves the figures to `routelab analyze`.
 */
export async function analysisSection(data: RunData, { charts: withCharts = true } = {}): Promise<{ charts: Chart[]; findings: Finding[] }> {
  if (data.traces.length === 0) return { charts: [], findings: [] };
  // The baseline's experts, else (a run without one) the first configuration with traces.
  const traced = new Set(data.traces.map((t) => t.config));
  const config = data.baseline !== null && traced.has(data.baseline) ? data.baseline : data.configs.find((c) => traced.has(c.name))?.name;
  const a = await analyzeRun(data.runDir, { config });
  const charts = withCharts ? analysisCharts(a).map((c) => ({ ...c, name: `analysis-${c.name}`, section: 'analysis' as const })) : [];
  const findings: string[] = [];
  const E = a.numExperts;
  const v = a.vocabulary;
  let best = -1;
  for (let c = 0; c < v.selections.length; c++) if (v.selections[c] >= a.minCount && (best < 0 || v.score[c] > v.score[best])) best = c;
  if (best >= 0) {
    const [layer, expert] = [Math.floor(best / E), best % E];
    const tokens = v.topTokens.filter((t) => t.layer === layer && t.expert === expert && t.ranking === 'lift').slice(0, 3)
      .map((t) => `${shownToken(a, t.token)} (${t.selections}/${t.occurrences})`);
    findings.push(`For ${code(a.config)}, the most token-specialised expert is expert ${expert} of MoE layer ${layer}: on average ` +
      `${num(v.score[best])} of each of its tokens' occurrences go to it (over ${v.selections[best]} selections)` +
      `${tokens.length ? `; its top tokens by lift: ${tokens.join(', ')}` : ''}.`);
  }
  const pair = a.coactivation.pairs[0];
  if (pair) {
    findings.push(`At MoE layer ${a.coactivation.layer}, expert ${pair.j} is selected with expert ${pair.i} for ${num(pair.coactivation)} of ` +
      `expert ${pair.i}'s ${pair.selected} tokens, against ${num(pair.independent)} if experts were chosen independently.`);
  }
  const shares = a.crossLayer.filter((p) => p.entropyNext > 0).map((p) => p.mutualInformation / p.entropyNext);
  if (shares.length) {
    findings.push(`Between adjacent MoE layers, the first-ranked expert of layer ℓ carries ${num(Math.min(...shares), 2)}–${num(Math.max(...shares), 2)} ` +
      `of the entropy of layer ℓ+1's (mutual information / entropy, plug-in estimates over ${a.crossLayer[0].positions} positions; 1: fully predictable).`);
  }
  // What drives adaptive counts: one sentence per measure over the adaptive configurations (their controls left out).
  const controls = new Set(data.cells.filter((c) => typeof c.row.control_of === 'string').map((c) => c.config));
  const adaptive = a.adaptive.filter((c) => !controls.has(c.config));
  for (const measure of [...new Set(adaptive.flatMap((c) => c.measures))]) {
    const parts = adaptive.flatMap((c) => c.correlations.filter((r) => r.layer === null && r.measure === measure && r.spearman.value !== null)
      .map((r) => `${code(c.config)} ${num(r.spearman.value!, 2)} [${num(r.spearman.low!, 2)}, ${num(r.spearman.high!, 2)}]`));
    if (parts.length === 0) continue;
    findings.push(`Experts per token against ${MEASURES[measure].title.toLowerCase()} (Spearman ρ with 95% bootstrap intervals over sampled ` +
      `(position, layer) rows; rows of one document are not independent, so the intervals are optimistic): ${parts.join('; ')}.`);
  }
  return { charts, findings: findings.map((text) => ({ topic: 'specialisation', text })) };
}
