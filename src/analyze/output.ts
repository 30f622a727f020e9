/**
 * Writing an analysis out: its tables as CSV and Parquet, its charts as Vega-Lite, SVG and PNG (the report's
 * renderer), and analyze.md, a short summary linking them. Everything is written into a staging folder beside the
 * target that then replaces it as a whole, so a failure leaves a previous analysis as it was.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, rmSync } from 'node:fs';
import { basename, dirname, join, relative, resolve } from 'node:path';
import { parquetWriteBuffer } from 'hyparquet-writer';
import { writeFileAtomic } from '../atomic.js';
import { RoutelabError } from '../errors.js';
import { lockRunDirectory } from '../lock.js';
import { chartToSvg, svgToPng } from '../report/render.js';
import { replaceDirectory } from '../report/report.js';
import { formatNumber } from '../report/table.js';
import { MEASURES, RESAMPLES, SAMPLE_ROWS, type Interval } from './adaptive.js';
import { type Analysis, shownToken } from './analyze.js';
import { analysisCharts, type AnalysisChart } from './charts.js';

type Value = string | number | null;
type ColumnType = 'INT32' | 'DOUBLE' | 'STRING';

/** A table as it is written: typed columns, then rows. */
interface Table {
  readonly name: string;
  readonly columns: readonly (readonly [string, ColumnType])[];
  readonly rows: readonly Value[][];
}

const finite = (v: number | null): number | null => (v !== null && Number.isFinite(v) ? v : null);

function tables(a: Analysis): Table[] {
  const { numLayers: L, numExperts: E, vocabulary: v, coactivation: co } = a;
  const text = (token: number) => a.tokenText.get(token) ?? null;
  const experts: Value[][] = [];
  for (let cell = 0; cell < L * E; cell++) {
    const used = v.selections[cell] > 0;
    experts.push([Math.floor(cell / E), cell % E, v.selections[cell], v.selections[cell] / v.positions, used ? v.score[cell] : null, used ? v.topShare[cell] : null]);
  }
  const { tasks, share, uniform } = a.taskSpecialisation;
  const taskRows = tasks.flatMap((task, t) => Array.from({ length: L * E }, (_, cell): Value[] => {
    const u = uniform[t * L + Math.floor(cell / E)];
    const s = share[t * L * E + cell];
    return [task, Math.floor(cell / E), cell % E, s, u, s - u];
  }));
  const coRows: Value[][] = [];
  for (let i = 0; i < E; i++) for (let j = 0; j < E; j++) if (i !== j) coRows.push([i, j, co.both[i * E + j], co.both[i * E + i], finite(co.matrix[i * E + j])]);
  const interval = (x: Interval) => [x.value, x.low, x.high];
  return [
    {
      name: 'vocabulary_experts',
      columns: [['layer', 'INT32'], ['expert', 'INT32'], ['selections', 'INT32'], ['load', 'DOUBLE'], ['specialisation', 'DOUBLE'], ['top_share', 'DOUBLE']],
      rows: experts,
    },
    {
      name: 'vocabulary_tokens',
      columns: [['layer', 'INT32'], ['expert', 'INT32'], ['ranking', 'STRING'], ['rank', 'INT32'], ['token', 'INT32'], ['token_text', 'STRING'],
        ['selections', 'INT32'], ['occurrences', 'INT32'], ['specialisation', 'DOUBLE'], ['lift', 'DOUBLE']],
      rows: v.topTokens.map((t) => [t.layer, t.expert, t.ranking, t.rank, t.token, text(t.token), t.selections, t.occurrences, t.specialisation, t.lift]),
    },
    {
      name: 'task_specialisation',
      columns: [['task', 'STRING'], ['layer', 'INT32'], ['expert', 'INT32'], ['share', 'DOUBLE'], ['even_share', 'DOUBLE'], ['deviation', 'DOUBLE']],
      rows: taskRows,
    },
    {
      name: `coactivation_layer_${co.layer}`,
      columns: [['expert_i', 'INT32'], ['expert_j', 'INT32'], ['both', 'INT32'], ['selected_i', 'INT32'], ['coactivation', 'DOUBLE']],
      rows: coRows,
    },
    {
      name: 'coactivation_pairs',
      columns: [['layer', 'INT32'], ['rank', 'INT32'], ['expert_i', 'INT32'], ['expert_j', 'INT32'], ['both', 'INT32'], ['selected_i', 'INT32'], ['coactivation', 'DOUBLE'], ['independent', 'DOUBLE']],
      rows: co.pairs.map((p, r) => [co.layer, r + 1, p.i, p.j, p.both, p.selected, p.coactivation, p.independent]),
    },
    {
      name: 'cross_layer',
      columns: [['layer', 'INT32'], ['next_layer', 'INT32'], ['positions', 'INT32'], ['entropy_next_bits', 'DOUBLE'], ['mutual_information_bits', 'DOUBLE'],
        ['conditional_entropy_bits', 'DOUBLE'], ['normalised_mutual_information', 'DOUBLE']],
      rows: a.crossLayer.map((p) => [p.from, p.from + 1, p.positions, p.entropyNext, p.mutualInformation, p.conditionalEntropy, p.entropyNext > 0 ? p.mutualInformation / p.entropyNext : null]),
    },
    {
      name: 'adaptive_correlations',
      columns: [['config', 'STRING'], ['measure', 'STRING'], ['layer', 'INT32'], ['rows', 'INT32'],
        ['pearson', 'DOUBLE'], ['pearson_low', 'DOUBLE'], ['pearson_high', 'DOUBLE'], ['spearman', 'DOUBLE'], ['spearman_low', 'DOUBLE'], ['spearman_high', 'DOUBLE']],
      rows: a.adaptive.flatMap((c) => c.correlations.map((r) => [c.config, r.measure, r.layer, r.n, ...interval(r.pearson), ...interval(r.spearman)])),
    },
    {
      name: 'adaptive_bins',
      columns: [['config', 'STRING'], ['measure', 'STRING'], ['bin', 'INT32'], ['rows', 'INT32'], ['low', 'DOUBLE'], ['high', 'DOUBLE'], ['mean', 'DOUBLE'],
        ['mean_count', 'DOUBLE'], ['standard_error', 'DOUBLE']],
      rows: a.adaptive.flatMap((c) => c.bins.map((b) => [c.config, b.measure, b.bin, b.n, b.low, b.high, b.mean, b.meanCount, b.standardError])),
    },
  ];
}

function csvCell(v: Value): string {
  if (v === null) return '';
  const s = String(v);
  return /[",\n\r]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s;
}

function csv(t: Table): string {
  return [t.columns.map(([name]) => name).join(','), ...t.rows.map((r) => r.map(csvCell).join(','))].join('\n') + '\n';
}

function parquet(t: Table): Uint8Array {
  const columnData = t.columns.map(([name, type], c) => ({ name, type, data: t.rows.map((r) => r[c]) }));
  return new Uint8Array(parquetWriteBuffer({ columnData: columnData as never }));
}


const num = (v: number | null, digits: number) => (v === null ? '–' : formatNumber(v, digits));
const percent = (v: number) => `${formatNumber(100 * v, 1)}%`;

function markdown(a: Analysis, charts: readonly AnalysisChart[], tableFiles: readonly string[]): string {
  const { numExperts: E, vocabulary: v, coactivation: co } = a;
  const lines: string[] = [
    `# Routing analysis: ${a.config}`,
    '',
    `Run \`${a.runDir}\`, router \`${a.router}\`: ${a.numLayers} MoE layers × ${E} experts, traces at level ${a.level}. ` +
      `Task specialisation covers ${a.tasks.join(', ')}; the token-level analyses cover ${a.analysedTasks.join(', ')} ` +
      `(${v.positions} positions, ${v.distinctTokens} distinct tokens). Definitions: docs/analyze.md.`,
    '',
    '## Vocabulary specialisation',
    '',
    `Specialisation of an expert: the mean, over its selections, of the share of that token's occurrences routed to it ` +
      `(the OLMoE paper's vocabulary specialisation N(ℓ,e,x)/N(x), averaged over the expert's tokens). The most specialised experts ` +
      `selected at least ${a.minCount} times, with their top tokens by lift (selections/occurrences):`,
    '',
    '| layer | expert | selections | specialisation | top tokens by lift |',
    '|---:|---:|---:|---:|---|',
  ];
  const cells = Array.from({ length: v.selections.length }, (_, c) => c).filter((c) => v.selections[c] >= a.minCount).sort((x, y) => v.score[y] - v.score[x]).slice(0, 8);
  for (const cell of cells) {
    const layer = Math.floor(cell / E);
    const expert = cell % E;
    const liftTokens = v.topTokens.filter((t) => t.layer === layer && t.expert === expert && t.ranking === 'lift').slice(0, 4)
      .map((t) => `${shownToken(a, t.token)} (${t.selections}/${t.occurrences})`).join(', ');
    lines.push(`| ${layer} | ${expert} | ${v.selections[cell]} | ${num(v.score[cell], 3)} | ${liftTokens || '–'} |`);
  }

  const { tasks, share, uniform } = a.taskSpecialisation;
  const L = a.numLayers;
  lines.push('', '## Task specialisation', '', 'Per task, the expert whose share of the task\'s positions exceeds the even share (mean experts per position ÷ E) the most, and the one furthest below it:', '',
    '| task | most over-represented | most under-represented |', '|---|---|---|');
  tasks.forEach((task, t) => {
    let hi = 0;
    let lo = 0;
    const dev = (cell: number) => share[t * L * E + cell] - uniform[t * L + Math.floor(cell / E)];
    for (let cell = 0; cell < L * E; cell++) {
      if (dev(cell) > dev(hi)) hi = cell;
      if (dev(cell) < dev(lo)) lo = cell;
    }
    const describe = (cell: number) => `layer ${Math.floor(cell / E)} expert ${cell % E}: ${percent(share[t * L * E + cell])} vs ${percent(uniform[t * L + Math.floor(cell / E)])}`;
    lines.push(`| ${task} | ${describe(hi)} | ${describe(lo)} |`);
  });

  lines.push('', `## Co-activation at MoE layer ${co.layer}`, '', `Of ${co.positions} positions; co-activation(i, j) = N(i ∧ j) / N(i), against N(j)/N under independent selection. Strongest pairs (experts selected at least ${a.minCount} times):`, '',
    '| i | j | N(i ∧ j) | N(i) | co-activation | independent |', '|---:|---:|---:|---:|---:|---:|');
  for (const p of co.pairs.slice(0, 10)) lines.push(`| ${p.i} | ${p.j} | ${p.both} | ${p.selected} | ${num(p.coactivation, 3)} | ${num(p.independent, 3)} |`);

  if (a.crossLayer.length > 0) {
    lines.push('', '## Cross-layer routing', '', 'The first-ranked expert of layer ℓ+1 against that of layer ℓ (plug-in estimates, bits; I/H = 1: ℓ+1\'s choice is a function of ℓ\'s):', '',
      '| ℓ → ℓ+1 | positions | H(ℓ+1) | I(ℓ; ℓ+1) | H(ℓ+1 \\| ℓ) | I / H(ℓ+1) |', '|---|---:|---:|---:|---:|---:|');
    for (const p of a.crossLayer) {
      lines.push(`| ${p.from} → ${p.from + 1} | ${p.positions} | ${num(p.entropyNext, 3)} | ${num(p.mutualInformation, 3)} | ${num(p.conditionalEntropy, 3)} | ${num(p.entropyNext > 0 ? p.mutualInformation / p.entropyNext : null, 3)} |`);
    }
  }

  lines.push('', '## What drives adaptive counts', '',
    'The traces record no token log-probabilities, so the model\'s surprisal of a token is not available: unigram surprisal ' +
    '(−log₂ of the input token\'s frequency among the analysed positions) stands in for how unusual a token is' +
    `${a.level === 'full' || a.adaptive.some((c) => c.measures.includes('router_entropy')) ? ', beside the router\'s entropy' : '; router entropy needs traces at level full'}. ` +
    `Correlations over (position, layer) rows pooled over layers (a sample of ${SAMPLE_ROWS} rows where there are more), with 95% bootstrap intervals (${RESAMPLES} resamples of rows); per layer in adaptive_correlations.csv.`, '');
  if (a.adaptive.length === 0) lines.push('No analysed configuration varies its number of experts.');
  else {
    lines.push('| configuration | rows (sampled) | experts | measure | Pearson r [95%] | Spearman ρ [95%] |', '|---|---:|---:|---|---:|---:|');
    const shown = (x: Interval) => (x.value === null ? '–' : `${num(x.value, 3)} [${num(x.low, 3)}, ${num(x.high, 3)}]`);
    for (const c of a.adaptive) {
      for (const r of c.correlations.filter((r) => r.layer === null)) {
        lines.push(`| ${c.config} | ${c.rows} (${c.sampled}) | ${c.minCount}…${c.maxCount} | ${MEASURES[r.measure].title} | ${shown(r.pearson)} | ${shown(r.spearman)} |`);
      }
    }
  }

  lines.push('', '## Figures', '');
  for (const chart of charts) lines.push(`![${chart.title}](figures/${chart.name}.png)`, '', chart.caption, '');
  lines.push('## Tables', '', `CSV and Parquet, one row per entry: ${tableFiles.map((f) => `\`${f}\``).join(', ')}.`, '');
  return lines.join('\n');
}

/**
 * Write the analysis into `out` (default RUN/analysis). Inside the run directory the run's lock is held, as a
 * report holds it, so a sweep cannot change the traces underneath.
 */
export async function writeAnalysis(a: Analysis, out?: string, log: (line: string) => void = () => {}): Promise<{ dir: string; files: string[] }> {
  const target = resolve(out ?? join(a.runDir, 'analysis'));
  // The output directory is replaced as a whole: it must not hold the run.
  if (!relative(target, a.runDir).startsWith('..')) throw new RoutelabError('--out', `${target} holds the run directory ${a.runDir}; expected a directory of its own`);
  const inRun = !relative(a.runDir, target).startsWith('..');
  const lock = inRun ? lockRunDirectory(a.runDir, 'analyze', log) : null;
  const staging = join(dirname(target), `.${basename(target)}-${process.pid}-${randomBytes(6).toString('hex')}`);
  try {
    mkdirSync(dirname(target), { recursive: true });
    mkdirSync(join(staging, 'figures'), { recursive: true });
    const written: string[] = [];
    const write = (name: string, bytes: string | Uint8Array) => {
      writeFileAtomic(join(staging, name), bytes);
      written.push(name);
    };
    const tableFiles: string[] = [];
    for (const t of tables(a)) {
      write(`${t.name}.csv`, csv(t));
      write(`${t.name}.parquet`, parquet(t));
      tableFiles.push(`${t.name}.csv`);
    }
    const charts = analysisCharts(a);
    for (const chart of charts) {
      const svg = await chartToSvg(chart.spec);
      write(`figures/${chart.name}.vl.json`, `${JSON.stringify(chart.spec, null, 2)}\n`);
      write(`figures/${chart.name}.svg`, svg);
      write(`figures/${chart.name}.png`, svgToPng(svg));
    }
    log(`${tableFiles.length} tables, ${charts.length} charts`);
    write('analyze.md', markdown(a, charts, tableFiles));
    replaceDirectory(staging, target);
    return { dir: target, files: written.map((name) => join(target, name)) };
  } finally {
    rmSync(staging, { recursive: true, force: true });
    lock?.release();
  }
}
