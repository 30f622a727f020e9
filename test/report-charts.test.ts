import assert from 'node:assert/strict';
import { test } from 'node:test';
import { buildCharts } from '../src/report/charts.js';
import { paretoOptimal, wilsonInterval } from '../src/experiments/stats.js';
import { chartToSvg, svgSize, svgToPng } from '../src/report/render.js';
import { BASELINE_COLOR, CSS_PX_PER_INCH, FONT_FAMILY, POINTS_PER_INCH } from '../src/report/theme.js';
import type { Chart, ConfigInfo, DocumentView, NullLayerView, ReportCell, RunData, TraceAggregate } from '../src/report/types.js';
import type { ResultRow } from '../src/sweep/results.js';

const topk = (k: number, isBaseline = false): ConfigInfo =>
  ({ name: `${k}experts_topk_baseline`, router: `topk:k=${k}`, routerKind: 'fixed', maxK: k, minK: k, alpha: null, isBaseline });
const bh = (maxK: number, alpha: number): ConfigInfo => ({
  name: `${maxK}experts_bh_a${String(100 * alpha).padStart(3, '0')}`,
  router: `bh:alpha=${alpha},max_k=${maxK},min_k=1`,
  routerKind: 'bh',
  maxK,
  minK: 1,
  alpha,
  isBaseline: false,
});

/** Two baselines and BH at 2 max_k × 2 alpha, in sweep order (baselines first). */
const CONFIGS = [topk(8, true), topk(16), bh(4, 0.3), bh(4, 0.5), bh(8, 0.3), bh(8, 0.5)];
const BASELINE = CONFIGS[0].name;
const TASKS = ['wikitext', 'lambada_openai', 'hellaswag'];
const NUM_LAYERS = 2;
/** Documents per cell: the accuracy intervals are binomial over them. */
const DOCS = 20;
const NUM_EXPERTS = 16;

/** Experts per token: k for top-k; for BH it grows with alpha and max_k, a little differently per task. */
function expertsOf(c: ConfigInfo, task: string): number {
  return c.routerKind === 'fixed' ? (c.maxK as number) : 1 + ((c.maxK as number) - 1) * (c.alpha as number) * (1 + 0.1 * TASKS.indexOf(task));
}

/** Task metrics that improve with experts (so BH loses quality and gains speed against the baseline). */
function metricsOf(c: ConfigInfo, task: string): ResultRow {
  const e = expertsOf(c, task);
  if (task === 'wikitext') return { primary_metric: 'word_perplexity', word_perplexity: 20 * (1 + 1 / e), cross_entropy: Math.log(15 * (1 + 1 / e)) };
  if (task === 'lambada_openai') return { primary_metric: 'perplexity', perplexity: 30 * (1 + 2 / e), acc: 0.4 + 0.01 * e };
  return { primary_metric: 'acc_norm', acc: 0.3 + 0.01 * e, acc_norm: 0.35 + 0.01 * e };
}

function cellOf(c: ConfigInfo, task: string): ReportCell {
  const experts = expertsOf(c, task);
  const metrics = metricsOf(c, task);
  const primary = metrics.primary_metric as string;
  const alpha = c.alpha ?? 0;
  const row: ResultRow = {
    config: c.name,
    task,
    ...metrics,
    num_docs: DOCS,
    primary_value: metrics[primary],
    avg_experts: experts,
    tokens_per_second: (1000 * 8) / (experts + 4),
    floor_hit_rate: c.routerKind === 'bh' ? 0.6 - 0.5 * alpha : 1,
    ceiling_hit_rate: c.routerKind === 'bh' ? 0.1 + 0.2 * alpha : 1,
    expert_utilization: c.routerKind === 'bh' ? 0.5 + alpha : 1,
    baseline: c.isBaseline ? null : BASELINE,
  };
  if (!c.isBaseline) {
    const base = metricsOf(CONFIGS[0], task);
    for (const metric of ['word_perplexity', 'perplexity', 'acc', 'acc_norm'].filter((m) => m in metrics)) {
      const delta = (metrics[metric] as number) - (base[metric] as number);
      Object.assign(row, { [`delta_${metric}`]: delta, [`ci_low_${metric}`]: delta * 0.5 - 1, [`ci_high_${metric}`]: delta * 1.5 + 1 });
      if (metric.includes('perplexity')) {
        const logDelta = Math.log(metrics[metric] as number) - Math.log(base[metric] as number);
        Object.assign(row, { [`delta_log_${metric}`]: logDelta, [`ci_low_log_${metric}`]: logDelta - 0.1, [`ci_high_log_${metric}`]: logDelta + 0.1 });
      }
    }
  }
  // The charts read the results row; of the summary only the per-layer expert counts, which the row flattens to text.
  const summary = { routing: { per_layer_avg_experts: [experts * 1.2, experts * 0.8] } } as unknown as ReportCell['summary'];
  return { config: c.name, task, row, summary, traceFile: `/runs/x/${c.name}_${task}_routing.parquet` };
}

/** A trace whose expert load and count histogram agree with the configuration's experts per token. */
function traceOf(c: ConfigInfo, task: string): TraceAggregate {
  const K = c.maxK as number;
  const expertLoad = new Float64Array(NUM_LAYERS * NUM_EXPERTS);
  const countHistogram = new Float64Array(NUM_LAYERS * (K + 1));
  for (let layer = 0; layer < NUM_LAYERS; layer++) {
    const row = cellOf(c, task).row;
    const floor = c.routerKind === 'bh' ? (row.floor_hit_rate as number) : 0;
    const ceiling = c.routerKind === 'bh' ? (row.ceiling_hit_rate as number) : 1;
    countHistogram[layer * (K + 1) + 1] += floor;
    countHistogram[layer * (K + 1) + 2] += 1 - floor - ceiling;
    countHistogram[layer * (K + 1) + K] += ceiling;
    let meanCount = 0;
    for (let count = 0; count <= K; count++) meanCount += count * countHistogram[layer * (K + 1) + count];
    for (let e = 0; e < NUM_EXPERTS; e++) expertLoad[layer * NUM_EXPERTS + e] = meanCount / NUM_EXPERTS;
  }
  return { config: c.name, task, numLayers: NUM_LAYERS, numExperts: NUM_EXPERTS, maxK: K, tokens: 100 + TASKS.indexOf(task), expertLoad, countHistogram };
}

const DOCUMENT: DocumentView = {
  config: CONFIGS[4].name,
  task: 'wikitext',
  doc: 3,
  numLayers: NUM_LAYERS,
  tokens: ['The', ' cat', '\n', ' "sat"', '.'],
  counts: Int32Array.from([1, 8, 2, 1, 8, 8, 1, 1, 3, 1]),
  totalPositions: 5,
};

/** A logistic null per layer: CDF 1/(1 + e^−(x − μ)), density its derivative. */
function nullLayer(layer: number): NullLayerView {
  const x = Float64Array.from({ length: 41 }, (_, i) => -6 + 0.3 * i);
  const cdf = x.map((v) => 1 / (1 + Math.exp(-(v + layer))));
  return { layer, x, cdf, density: cdf.map((p) => p * (1 - p)), bandwidth: 0.2 };
}

const FULL: RunData = {
  runDir: '/runs/x',
  manifest: {},
  configs: CONFIGS,
  tasks: TASKS,
  cells: CONFIGS.flatMap((c) => TASKS.map((task) => cellOf(c, task))),
  baseline: BASELINE,
  traces: CONFIGS.flatMap((c) => ['wikitext', 'lambada_openai'].map((task) => traceOf(c, task))),
  documents: [DOCUMENT],
  moeLayers: [0, 1],
  nullModel: { file: '/runs/x/null.json', layers: [nullLayer(0), nullLayer(1)], perExpert: false, numExperts: 8, heldOutTokens: null },
};

const chartsOf = (data: RunData) => buildCharts(data);
const named = (charts: readonly Chart[], name: string) => {
  const chart = charts.find((c) => c.name === name);
  assert.ok(chart, `chart ${name} present`);
  return chart.spec as Record<string, any>;
};

/** Every object nested in a spec, with the key it sits under. */
function* walk(value: unknown, key = ''): Generator<[string, Record<string, any>]> {
  if (Array.isArray(value)) for (const v of value) yield* walk(v, key);
  else if (value && typeof value === 'object') {
    yield [key, value as Record<string, any>];
    for (const [k, v] of Object.entries(value)) yield* walk(v, k);
  }
}

const dataValues = (spec: unknown) => [...walk(spec)].filter(([k]) => k === 'data').map(([, d]) => d);

test('a full sweep gets every chart, each a complete spec with inlined, non-empty data in the theme', () => {
  const charts = chartsOf(FULL);
  assert.deepEqual(charts.map((c) => c.name), [
    'sweep-ppl-vs-experts',
    'sweep-accuracy-vs-experts',
    'sweep-speed-vs-experts',
    'sweep-ppl-change',
    'sweep-speed-quality',
    'sweep-relative-speed',
    'sweep-loss',
    'sweep-summary-table',
    'bh-9-panel',
    ...CONFIGS.map((c) => `routing-heatmap-${c.name.replaceAll('_', '-')}`),
    'routing-experts-per-token',
    'routing-document-8experts-bh-a030-wikitext-3',
    'null-density-cdf',
  ]);
  for (const chart of charts) {
    assert.match(chart.name, /^[a-z0-9-]+$/);
    assert.ok(chart.title.length > 0 && chart.caption.endsWith('.'), chart.name);
    assert.equal(chart.spec.$schema, 'https://vega.github.io/schema/vega-lite/v6.json');
    assert.equal((chart.spec.config as { font: string }).font, FONT_FAMILY);
    const data = dataValues(chart.spec);
    assert.ok(data.length > 0, `${chart.name} has data`);
    for (const d of data) {
      assert.ok(Array.isArray(d.values) && d.values.length > 0, `${chart.name}: data inlined and non-empty`);
      assert.equal(d.url, undefined);
    }
    // Every mark that shows data offers a tooltip for the HTML view.
    const marked = [...walk(chart.spec)].filter(([, o]) => 'mark' in o && o.mark !== 'rule' && o.mark?.type !== 'rule');
    assert.ok(marked.some(([, o]) => o.encoding?.tooltip), `${chart.name} has tooltips`);
  }
  assert.deepEqual([...new Set(charts.map((c) => c.section))], ['sweep', 'bh', 'routing', 'null']);
});

test('axis titles say what is measured and in which unit', () => {
  const charts = chartsOf(FULL);
  const title = (name: string, channel: 'x' | 'y') => {
    const titles = [...walk(named(charts, name))].filter(([k, o]) => k === channel && typeof o.title === 'string').map(([, o]) => o.title);
    assert.ok(titles.length > 0, `${name} ${channel} title`);
    return titles.join(' | ');
  };
  assert.match(title('sweep-ppl-vs-experts', 'x'), /^experts per token \(.*log₂ scale\)$/);
  assert.match(title('sweep-ppl-vs-experts', 'y'), /^perplexity \(log scale\)$/);
  assert.match(title('sweep-accuracy-vs-experts', 'y'), /accuracy \(% of documents correct\)/);
  assert.match(title('sweep-speed-vs-experts', 'y'), /tokens\/s/);
  assert.match(title('sweep-ppl-change', 'y'), /^Δ ln perplexity vs baseline \(nats\)$/);
  assert.equal(named(charts, 'sweep-ppl-change').title, `Perplexity change vs ${BASELINE}`);
  assert.match(title('sweep-relative-speed', 'y'), new RegExp(`speed relative to ${BASELINE} \\(× its tokens/s\\)`));
  assert.match(title('sweep-loss', 'y'), /nats per token/);
  assert.match(title('null-density-cdf', 'x'), /router logit/);
  // Every quantitative position channel is titled (in one of a chart's layers, which share the axis).
  for (const chart of charts) {
    const encodings = [...walk(chart.spec)].filter(([k, o]) => (k === 'x' || k === 'y') && o.type === 'quantitative');
    for (const channel of new Set(encodings.map(([k]) => k))) {
      assert.ok(encodings.some(([k, o]) => k === channel && typeof o.title === 'string' && o.title.length > 0), `${chart.name}: ${channel} titled`);
    }
  }
});

test('each configuration has one colour, the same in every chart; the baseline is black', () => {
  const charts = chartsOf(FULL);
  const scales = charts.flatMap((chart) =>
    [...walk(chart.spec)].filter(([k, o]) => k === 'color' && o.field === 'config').map(([, o]) => ({ chart: chart.name, scale: o.scale })),
  );
  assert.ok(new Set(scales.map((s) => s.chart)).size >= 8, 'most charts colour by configuration');
  const [first] = scales;
  assert.deepEqual(first.scale.domain, CONFIGS.map((c) => c.name));
  for (const { chart, scale } of scales) assert.deepEqual(scale, first.scale, chart);
  assert.equal(first.scale.range[0], BASELINE_COLOR);
  assert.equal(new Set(first.scale.range).size, CONFIGS.length, 'colours are distinct');
});

test('the BH figure: nine fixed-size panels in three columns with their own titles and scales', () => {
  const spec = named(chartsOf(FULL), 'bh-9-panel');
  assert.equal(spec.columns, 3);
  assert.equal(spec.concat.length, 9);
  const titles = spec.concat.map((p: any) => p.title.text);
  assert.deepEqual(titles.map((t: string) => t.slice(0, 3)), ['(a)', '(b)', '(c)', '(d)', '(e)', '(f)', '(g)', '(h)', '(i)']);
  for (const p of spec.concat) {
    assert.equal(typeof p.width, 'number');
    assert.equal(typeof p.height, 'number');
    assert.equal(typeof p.title.subtitle, 'string', 'every panel has a subtitle so titles line up');
  }
  assert.equal(spec.resolve.scale.y, 'independent');
  // The alpha-sensitivity grid has one cell per BH configuration, annotated with its perplexity change.
  const grid = spec.concat.find((p: any) => p.title.text.includes('Alpha sensitivity'));
  assert.deepEqual(
    grid.data.values.map((v: any) => [v.maxK, v.alpha]),
    [[4, 0.3], [4, 0.5], [8, 0.3], [8, 0.5]],
  );
  const wiki = (name: string) => FULL.cells.find((c) => c.config === name && c.task === 'wikitext')!.row.word_perplexity as number;
  const change = Math.log(wiki(CONFIGS[2].name)) - Math.log(wiki(BASELINE));
  assert.equal(grid.data.values[0].label, `+${change.toFixed(2)}`);
  // Routing behaviour: floor, middle and ceiling shares of each BH configuration add up to 1.
  const behaviour = spec.concat.find((p: any) => p.title.text.includes('Routing behaviour'));
  for (const c of CONFIGS.filter((c) => c.routerKind === 'bh')) {
    const shares = behaviour.data.values.filter((v: any) => v.config === c.name).map((v: any) => v.share);
    assert.equal(shares.length, 3);
    assert.ok(Math.abs(shares.reduce((a: number, b: number) => a + b, 0) - 1) < 1e-12);
  }
});

test('each chart plots the metric lm-eval reports for the task', () => {
  const charts = chartsOf(FULL);
  const values = (name: string) => dataValues(named(charts, name)).flatMap((d) => d.values);
  const perplexity = values('sweep-ppl-vs-experts');
  const cell = (config: string, task: string) => FULL.cells.find((c) => c.config === config && c.task === task)!.row;
  const point = perplexity.find((v) => v.config === BASELINE && v.task === 'wikitext');
  assert.equal(point.value, cell(BASELINE, 'wikitext').word_perplexity);
  assert.equal(perplexity.find((v) => v.config === BASELINE && v.task === 'lambada_openai').value, cell(BASELINE, 'lambada_openai').perplexity);
  assert.ok(!perplexity.some((v) => v.task === 'hellaswag'));
  const accuracy = values('sweep-accuracy-vs-experts');
  assert.equal(accuracy.find((v) => v.config === BASELINE && v.task === 'hellaswag').value, cell(BASELINE, 'hellaswag').acc_norm);
  assert.equal(accuracy.find((v) => v.config === BASELINE && v.task === 'lambada_openai').value, cell(BASELINE, 'lambada_openai').acc);
  // The speed–quality frontier: faster and lower perplexity, here the fewer experts the faster and the worse.
  const frontier = values('sweep-speed-quality').filter((v) => v.panel.startsWith('wikitext'));
  assert.equal(frontier.length, CONFIGS.length);
  assert.ok(frontier.every((v) => v.paretoOptimal), 'every configuration trades speed for quality here');
  // Relative speed bars: geometric mean over tasks of tokens/s ÷ the baseline's; the baseline is 1.
  const speed = values('sweep-relative-speed');
  assert.equal(speed.find((v) => v.config === BASELINE && v.task === undefined).relativeSpeed, 1);
});

test('charts whose data the run lacks are left out, never drawn empty', () => {
  const names = (data: RunData) => chartsOf(data).map((c) => c.name);
  const full = names(FULL);
  const withoutBh = names({
    ...FULL,
    configs: CONFIGS.filter((c) => c.routerKind !== 'bh'),
    cells: FULL.cells.filter((c) => c.config.includes('topk')),
    traces: FULL.traces.filter((t) => t.config.includes('topk')),
    documents: [],
  });
  assert.ok(!withoutBh.includes('bh-9-panel'));
  assert.ok(!withoutBh.includes('routing-experts-per-token'), 'top-k alone has no distribution of experts per token');
  const bare = names({ ...FULL, traces: [], documents: [], nullModel: null });
  assert.deepEqual(bare, full.filter((n) => !n.startsWith('routing-') && n !== 'null-density-cdf'));
  const noBaseline = names({ ...FULL, baseline: null, configs: CONFIGS.map((c) => ({ ...c, isBaseline: false })) });
  assert.deepEqual(noBaseline, full.filter((n) => n !== 'sweep-ppl-change' && n !== 'sweep-relative-speed'));
  const accuracyOnly = names({ ...FULL, tasks: ['hellaswag'], cells: FULL.cells.filter((c) => c.task === 'hellaswag') });
  for (const name of ['sweep-ppl-vs-experts', 'sweep-ppl-change', 'sweep-speed-quality', 'sweep-loss']) assert.ok(!accuracyOnly.includes(name), name);
  const bhFigure = named(chartsOf({ ...FULL, tasks: ['hellaswag'], cells: FULL.cells.filter((c) => c.task === 'hellaswag') }), 'bh-9-panel');
  assert.equal(bhFigure.concat.length, 6, 'the three perplexity panels are left out');
});

test('Pareto sets: points no other beats in both coordinates', () => {
  assert.deepEqual(paretoOptimal([1, 2, 3, 4], [4, 3, 3.5, 1]), [true, true, false, true]);
  assert.deepEqual(paretoOptimal([2, 2, 1], [1, 1, 5]), [true, true, true], 'identical points are optimal together');
  assert.deepEqual(paretoOptimal([2, 2, 3], [1, 2, 1]), [true, false, false], 'a point no better in either coordinate is dominated');
  assert.deepEqual(paretoOptimal([], []), []);
});

test('every chart renders headless to SVG with its titles and axis labels as text', async () => {
  for (const chart of chartsOf(FULL)) {
    const svg = await chartToSvg(chart.spec);
    assert.match(svg, /^<svg[^>]+width="\d+(\.\d+)?"/, chart.name);
    assert.ok(svg.includes(`>${chart.title}</text>`), `${chart.name}: title drawn`);
    assert.ok((svg.match(/<text/g) ?? []).length > 5, `${chart.name}: axis labels drawn`);
    assert.doesNotMatch(svg, /NaN|undefined|Infinity/, chart.name);
    assert.doesNotMatch(svg, /<g class="mark-\w+ role-mark[^>]*\/>/, `${chart.name}: every mark draws something`);
    assert.match(svg, /font-family="DejaVu Sans, sans-serif"/);
  }
});

/** Font sizes of every <text> of an SVG in pt when it is printed `inches` wide: font-size × printed width / viewBox width. */
function printedFontSizes(svg: string, inches: number): number[] {
  const root = /<svg\b[^>]*>/.exec(svg)![0];
  const viewBoxWidth = Number(/viewBox="[\d.-]+ [\d.-]+ ([\d.]+) [\d.]+"/.exec(root)![1]);
  const texts = [...svg.matchAll(/<text\b[^>]*>/g)].map((m) => m[0]);
  return texts.map((text) => {
    const size = /font-size="([\d.]+)px"/.exec(text);
    assert.ok(size, `every text states its font size: ${text}`);
    return (Number(size[1]) * inches * POINTS_PER_INCH) / viewBoxWidth;
  });
}

test('--style paper: every chart states a column width, and prints there with every text at 8 pt or more', async () => {
  const charts = buildCharts(FULL, { style: 'paper' });
  assert.deepEqual(charts.map((c) => c.name), chartsOf(FULL).map((c) => c.name), 'the same charts as on screen');
  for (const chart of charts) {
    const inches = chart.spec.usermeta && (chart.spec.usermeta as { printedWidthInches: number }).printedWidthInches;
    assert.ok(inches === 3.5 || inches === 7, `${chart.name}: single or double column, got ${inches}`);
    assert.ok(chart.caption.endsWith(`Laid out for printing ${inches} in wide.`), `${chart.name}: the caption says the width`);
    const svg = await chartToSvg(chart.spec);
    // An SVG W px wide prints W / 96 in wide: the file is exactly the stated width, its layout in the viewBox.
    assert.equal(svgSize(svg).width, inches * CSS_PX_PER_INCH, chart.name);
    const png = svgToPng(svg, 300);
    assert.equal(png.readUInt32BE(16), inches * 300, `${chart.name}: the 300-dpi PNG is as wide`);
    const sizes = printedFontSizes(svg, inches);
    assert.ok(sizes.length > 5, chart.name);
    const smallest = Math.min(...sizes);
    assert.ok(smallest >= 8 - 1e-9, `${chart.name}: smallest text ${smallest.toFixed(2)} pt at ${inches} in`);
  }
  // The BH figure spans the double column; the screen style states no printed width.
  assert.equal(named(charts, 'bh-9-panel').usermeta.printedWidthInches, 7);
  assert.ok(chartsOf(FULL).every((c) => c.spec.usermeta === undefined && !c.caption.includes('Laid out for printing')));
});

test('the activation heatmaps share one colour scale by default, each its own with per-panel', () => {
  const domains = (charts: readonly Chart[]) => charts.filter((c) => c.name.startsWith('routing-heatmap-'))
    .map((c) => [...walk(c.spec)].find(([k]) => k === 'fill')![1].scale.domain as number[]);
  const shared = domains(chartsOf(FULL));
  assert.equal(shared.length, CONFIGS.length);
  // Pooled over the traced tasks (weighted by positions), the highest share is top-k 16's: 16 of 16 experts.
  const highest = Math.max(...FULL.traces.flatMap((t) => [...t.expertLoad]));
  for (const domain of shared) assert.deepEqual(domain, shared[0]);
  assert.ok(Math.abs(shared[0][1] - highest) < 1e-12 && shared[0][0] === 0);
  const perPanel = domains(buildCharts(FULL, { heatmapScale: 'per-panel' }));
  const own = CONFIGS.map((c) => Math.max(...FULL.traces.filter((t) => t.config === c.name).flatMap((t) => [...t.expertLoad])));
  perPanel.forEach((domain, i) => assert.ok(domain[0] === 0 && Math.abs(domain[1] - own[i]) < 1e-12, CONFIGS[i].name));
  assert.ok(new Set(perPanel.map((d) => d[1])).size > 1, 'the configurations differ, so their scales do');
});

test('accuracy charts: 95% Wilson intervals as error bars and each task\'s chance level as a line', () => {
  // Hand-computed: at 0 of n correct the Wilson interval is [0, z² / (n + z²)], not the empty [0, 0].
  const zero = wilsonInterval(0, 10);
  assert.equal(zero.low, 0);
  assert.ok(Math.abs(zero.high - 1.96 ** 2 / (10 + 1.96 ** 2)) < 1e-12);
  // At 1/2 of 100: centre 1/2, half-width z·√(1/400 + z²/40000) / (1 + z²/100).
  const half = wilsonInterval(0.5, 100);
  const width = (1.96 * Math.sqrt(1 / 400 + 1.96 ** 2 / 40000)) / (1 + 1.96 ** 2 / 100);
  assert.ok(Math.abs(half.low - (0.5 - width)) < 1e-12 && Math.abs(half.high - (0.5 + width)) < 1e-12);

  const zeroLambada: RunData = { ...FULL, cells: FULL.cells.map((c) => (c.task === 'lambada_openai' ? { ...c, row: { ...c.row, acc: 0 } } : c)) };
  const layers = (spec: Record<string, any>) => [...walk(spec)].filter(([k]) => k === 'layer').flatMap(([, l]) => l as unknown as Record<string, any>[]);
  const sweep = named(chartsOf(zeroLambada), 'sweep-accuracy-vs-experts');
  const bars = layers(sweep).find((l) => l.mark.type === 'rule' && l.encoding.y2)!;
  assert.deepEqual([bars.encoding.y.field, bars.encoding.y2.field], ['low', 'high']);
  const points = sweep.data.values as { task: string; value: number; low: number; high: number }[];
  for (const p of points) {
    const expected = wilsonInterval(p.value, DOCS);
    assert.ok(p.low <= p.value && p.value <= p.high && p.low === expected.low && p.high === expected.high, JSON.stringify(p));
  }
  // LAMBADA's zero accuracy is a point at 0 with an upper bound, not a missing value.
  const lambada = points.filter((p) => p.task === 'lambada_openai');
  assert.ok(lambada.length === CONFIGS.length && lambada.every((p) => p.value === 0 && p.high > 0.1));
  const chance = layers(sweep).find((l) => l.mark.type === 'rule' && l.data)!;
  assert.deepEqual(chance.data.values.map((v: any) => [v.task, v.value]), [['hellaswag', 0.25]], 'hellaswag guesses among 4 endings; lambada declares no chance level');

  const panel = named(chartsOf(zeroLambada), 'bh-9-panel').concat.find((p: any) => p.title.text.includes('Task accuracy'));
  assert.deepEqual(panel.layer.map((l: any) => l.mark.type), ['tick', 'rule', 'point'], 'the chance line, the error bars, the points');
  assert.deepEqual(panel.layer[0].data.values, [{ task: 'hellaswag', chance: 0.25 }]);
  assert.deepEqual([panel.layer[1].encoding.y.field, panel.layer[1].encoding.y2.field], ['low', 'high']);
  assert.ok(panel.layer[2].data.values.filter((v: any) => v.task === 'lambada_openai').every((v: any) => v.accuracy === 0 && v.high > 0.1));
});
