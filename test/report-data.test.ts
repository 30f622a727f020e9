import assert from 'node:assert/strict';
import { appendFileSync, cpSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { RoutelabError } from '../src/errors.js';
import { loadTokenizer } from '../src/model/tokenizer.js';
import { loadRunData, type LoadRunOptions } from '../src/report/data.js';
import { keyFindings } from '../src/report/findings.js';
import { resultsTable } from '../src/report/table.js';
import { readNullModel } from '../src/routers/null-model.js';
import { readDocTrace, readTrace } from '../src/trace/reader.js';
import { TraceWriter } from '../src/trace/writer.js';
import { gutenbergDir, repoRoot, tempDir } from './helpers.js';

/** A real sweep (4 configurations × 2 tasks, 3 documents each; see test/fixtures/report/sweep.yaml). */
const fixture = join(repoRoot, 'test/fixtures/report/run');

/** A copy of the fixture run (its recorded paths point elsewhere: a moved run), with the model's tokenizer findable. */
function runCopy(edit: (dir: string) => void = () => {}): string {
  const dir = join(tempDir('routelab-report-'), 'run');
  cpSync(fixture, dir, { recursive: true });
  editJson(join(dir, 'manifest.json'), (m) => ({ ...m, model: { ...m.model, dir: gutenbergDir } }));
  edit(dir);
  return dir;
}

function editJson(file: string, edit: (value: any) => unknown): void {
  writeFileSync(file, JSON.stringify(edit(JSON.parse(readFileSync(file, 'utf8')))));
}

const summaryOf = (dir: string, config: string, task: string) => JSON.parse(readFileSync(join(dir, `${config}_${task}.json`), 'utf8'));

/** Each position's count at each layer, from readDocTrace: positions in (seq, pos) order, the first `limit` of them. */
async function docCounts(file: string, doc: number, limit = Infinity) {
  const rows = await readDocTrace(await readTrace(file), doc);
  const keys = [...new Set(rows.seq.map((s, i) => `${s}:${rows.pos[i]}`))].slice(0, limit);
  const numLayers = Math.max(...rows.layer) + 1;
  const counts = new Int32Array(keys.length * numLayers);
  const tokens = new Array<number>(keys.length);
  rows.seq.forEach((s, i) => {
    const t = keys.indexOf(`${s}:${rows.pos[i]}`);
    if (t < 0) return;
    counts[t * numLayers + rows.layer[i]] = rows.experts[i].length;
    tokens[t] = rows.token[i];
  });
  return { counts, tokens };
}

test('a run directory loads: configurations through the router registry, tasks in sweep order, every cell', async () => {
  const dir = runCopy();
  const data = await loadRunData(dir);
  assert.equal(data.runDir, dir);
  assert.deepEqual(data.configs.map((c) => ({ ...c, router: undefined })), [
    { name: '8experts_topk_baseline', router: undefined, routerKind: 'fixed', maxK: 8, minK: 8, alpha: null, isBaseline: true },
    { name: '2experts_topk_baseline', router: undefined, routerKind: 'fixed', maxK: 2, minK: 2, alpha: null, isBaseline: false },
    { name: '8experts_bh_a030', router: undefined, routerKind: 'bh', maxK: 8, minK: 1, alpha: 0.3, isBaseline: false },
    { name: '8experts_bh_a060', router: undefined, routerKind: 'bh', maxK: 8, minK: 1, alpha: 0.6, isBaseline: false },
  ]);
  assert.equal(data.baseline, '8experts_topk_baseline');
  assert.deepEqual(data.tasks, ['lambada_openai', 'hellaswag']);
  assert.equal(data.cells.length, 8);
  for (const cell of data.cells) {
    const onDisk = summaryOf(dir, cell.config, cell.task);
    assert.equal(cell.summary.config, cell.config);
    assert.ok(!('documents' in cell.summary), 'per-document scores dropped');
    assert.deepEqual(cell.summary.metrics, onDisk.metrics);
    assert.equal(cell.row.primary_value, onDisk.metrics[onDisk.primary_metric]);
    assert.equal(cell.traceFile, join(dir, `${cell.config}_${cell.task}_routing.parquet`));
  }
  const table = resultsTable(data);
  assert.equal(table.rows.length, 8);
  assert.deepEqual(table.rows.map((r) => `${r[1]}/${r[0]}`).slice(0, 4), data.configs.map((c) => `lambada_openai/${c.name}`));
});

test('trace aggregates equal counts taken independently from every document of each trace', async () => {
  const dir = runCopy();
  const data = await loadRunData(dir);
  assert.equal(data.traces.length, 8);
  for (const aggregate of data.traces) {
    const { numLayers: L, numExperts: E, maxK: K } = aggregate;
    const trace = await readTrace(join(dir, `${aggregate.config}_${aggregate.task}_routing.parquet`));
    const summary = summaryOf(dir, aggregate.config, aggregate.task);
    const load = new Float64Array(L * E);
    const histogram = new Float64Array(L * (K + 1));
    let rows = 0;
    for (const doc of summary.documents.index as number[]) {
      const d = await readDocTrace(trace, doc);
      d.layer.forEach((l, i) => {
        for (const e of d.experts[i]) load[l * E + e]++;
        histogram[l * (K + 1) + d.experts[i].length]++;
      });
      rows += d.layer.length;
    }
    const what = `${aggregate.config} × ${aggregate.task}`;
    assert.equal(aggregate.tokens * L, rows, what);
    assert.equal(aggregate.tokens, summary.routing.scored_tokens, what);
    assert.deepEqual(Array.from(aggregate.expertLoad, (v) => Math.round(v * aggregate.tokens)), Array.from(load), what);
    assert.deepEqual(Array.from(aggregate.countHistogram, (v) => Math.round(v * aggregate.tokens)), Array.from(histogram), what);
    for (let l = 0; l < L; l++) {
      const loadSum = aggregate.expertLoad.subarray(l * E, (l + 1) * E).reduce((a, b) => a + b, 0);
      assert.ok(Math.abs(loadSum - summary.routing.per_layer_avg_experts[l]) < 1e-9, `${what}: layer ${l} load sums to its mean count`);
      const shares = aggregate.countHistogram.subarray(l * (K + 1), (l + 1) * (K + 1)).reduce((a, b) => a + b, 0);
      assert.ok(Math.abs(shares - 1) < 1e-12, `${what}: layer ${l} histogram sums to 1`);
    }
  }
});

test('the document view shows the baseline beside the most adaptive BH configuration, token by token', async () => {
  const dir = runCopy();
  const data = await loadRunData(dir);
  // No wikitext in this run: the first task with a trace.
  const task = 'lambada_openai';
  const [a030, a060] = ['8experts_bh_a030', '8experts_bh_a060'].map((c) => summaryOf(dir, c, task).routing.std_experts);
  const adaptive = a030 >= a060 ? '8experts_bh_a030' : '8experts_bh_a060';
  assert.deepEqual(data.documents.map((d) => [d.config, d.task, d.doc]), [['8experts_topk_baseline', task, 0], [adaptive, task, 0]]);
  const tokenizer = loadTokenizer(gutenbergDir)!;
  for (const view of data.documents) {
    const expected = await docCounts(join(dir, `${view.config}_${task}_routing.parquet`), 0);
    assert.equal(view.numLayers, 4);
    assert.deepEqual(Array.from(view.counts), Array.from(expected.counts), view.config);
    assert.deepEqual(view.tokens, expected.tokens.map((id) => tokenizer.decode([id])));
  }
});

/**
 * Replace a cell's trace by one of document 2 only: two inputs of 100 positions (pos 10…109), the second input
 * written first and in row groups of 64 rows, so the view must put positions back in input order.
 */
async function writeLongDocument(file: string): Promise<{ count: (seq: number, pos: number, layer: number) => number; token: (seq: number, pos: number) => number }> {
  const { meta } = await readTrace(file);
  const { numLayers: L, maxK: K } = meta;
  const count = (seq: number, pos: number, layer: number) => (seq + pos + layer) % (K + 1);
  const token = (seq: number, pos: number) => 100 + 200 * seq + pos;
  const writer = TraceWriter.open(file, meta, { rowGroupRows: 64 });
  const n = 100;
  for (const seq of [1, 0]) {
    const pos = Int32Array.from({ length: n }, (_, i) => 10 + i);
    const positions = { n, doc: new Int32Array(n).fill(2), seq: new Int32Array(n).fill(seq), pos, token: pos.map((p) => token(seq, p)), row: pos.map((_, i) => i) };
    for (let layer = 0; layer < L; layer++) {
      const counts = pos.map((p) => count(seq, p, layer));
      const experts = Int32Array.from({ length: n * K }, (_, i) => i % K);
      writer.add(positions, { layer, maxK: K, counts, experts, weights: new Float32Array(n * K).fill(0.5), routerLogits: new Float32Array(0) });
    }
  }
  writer.close();
  return { count, token };
}

test('the document view follows the options and keeps the first 128 positions in input order', async () => {
  const dir = runCopy();
  const written = await writeLongDocument(join(dir, '2experts_topk_baseline_hellaswag_routing.parquet'));
  const data = await loadRunData(dir, { documentConfig: '2experts_topk_baseline', documentTask: 'hellaswag', doc: 2 });
  assert.equal(data.documents.length, 1);
  const [view] = data.documents;
  assert.deepEqual([view.config, view.task, view.doc, view.numLayers], ['2experts_topk_baseline', 'hellaswag', 2, 4]);
  // All 100 positions of input 0, then the first 28 of input 1.
  const positions = [...Array.from({ length: 100 }, (_, i) => [0, 10 + i]), ...Array.from({ length: 28 }, (_, i) => [1, 10 + i])];
  const tokenizer = loadTokenizer(gutenbergDir)!;
  assert.deepEqual(view.tokens, positions.map(([seq, pos]) => tokenizer.decode([written.token(seq, pos)])));
  assert.deepEqual(Array.from(view.counts), positions.flatMap(([seq, pos]) => [0, 1, 2, 3].map((l) => written.count(seq, pos, l))));
  const aggregate = data.traces.find((t) => t.config === '2experts_topk_baseline' && t.task === 'hellaswag')!;
  assert.equal(aggregate.tokens, 200);
  assert.equal(view.totalPositions, 200, 'the whole document, not just the positions kept');
  // The per-token figure's caption counts the shown positions against the whole document's.
  const { buildCharts } = await import('../src/report/charts.js');
  const chart = buildCharts(data).find((c) => c.name.startsWith('routing-document-'))!;
  assert.match(chart.caption, /\(first 64 of 200 positions\)/);
});

test('without the model tokenizer the document view labels tokens by id', async () => {
  const dir = runCopy((d) => editJson(join(d, 'manifest.json'), (m) => ({ ...m, model: { ...m.model, dir: join(d, 'no-model') } })));
  const data = await loadRunData(dir, { documentConfig: '8experts_topk_baseline' });
  const expected = await docCounts(join(dir, '8experts_topk_baseline_lambada_openai_routing.parquet'), 0);
  assert.deepEqual(data.documents[0].tokens, expected.tokens.map((id) => `#${id}`));
});

test('the null model view has each layer CDF, its central-difference density and the recorded bandwidth', async () => {
  const dir = runCopy();
  const { nullModel } = await loadRunData(dir);
  assert.ok(nullModel);
  assert.equal(nullModel.file, 'null.json', 'named relative to the run directory');
  const file = readNullModel(join(dir, 'null.json'));
  const bandwidths = file.meta.bandwidths as number[];
  assert.equal(nullModel.layers.length, 4);
  for (const view of nullModel.layers) {
    const { x, cdf } = file.layers[view.layer];
    assert.deepEqual(view.x, x);
    assert.deepEqual(view.cdf, cdf);
    assert.equal(view.bandwidth, bandwidths[view.layer]);
    const i = 200;
    assert.equal(view.density[i], (cdf[i + 1] - cdf[i - 1]) / (x[i + 1] - x[i - 1]));
    let area = 0;
    for (let j = 1; j < x.length; j++) area += ((view.density[j] + view.density[j - 1]) / 2) * (x[j] - x[j - 1]);
    assert.ok(Math.abs(area - 1) < 0.01, `layer ${view.layer}: density integrates to ${area}`);
  }
});

test('findings on the fixture run state what its results show', async () => {
  const data = await loadRunData(runCopy());
  const bh = keyFindings(data).filter((f) => f.topic === 'bh-response');
  // results.json: 8experts_bh_a030 / a060 average 1.312 / 2.196 experts on hellaswag and 1 / 1 on lambada_openai.
  assert.deepEqual(bh.map((f) => f.text), [
    "At max_k = 8, as alpha rises from 0.3 to 0.6, BH's average experts per token rises monotonically on `hellaswag` (1.31 → 2.20, +0.88, +67%); " +
      'does not change on `lambada_openai` (1.00).',
  ]);
});

async function rejects(dir: string, pattern: RegExp, options?: LoadRunOptions): Promise<void> {
  await assert.rejects(loadRunData(dir, options), (e: unknown) => e instanceof RoutelabError && pattern.test(e.message), String(pattern));
}

test('a directory that is not a complete sweep run, or a bad option, is a clear error', async () => {
  await rejects(join(tempDir(), 'absent'), /absent: no such run directory/);
  await rejects(tempDir(), /not a routelab sweep run directory: no results\.json/);
  await rejects(runCopy((d) => rmSync(join(d, 'manifest.json'))), /no manifest\.json \(the sweep did not finish/);
  await rejects(runCopy((d) => writeFileSync(join(d, 'results.json'), '[{"config": ')), /results\.json: not valid JSON/);
  await rejects(runCopy((d) => writeFileSync(join(d, 'results.json'), '{}')), /results\.json: expected a non-empty array of result rows/);
  await rejects(runCopy((d) => editJson(join(d, 'manifest.json'), (m) => ({ ...m, format: 'other' }))), /manifest\.json: expected a sweep manifest/);
  await rejects(runCopy((d) => rmSync(join(d, '8experts_bh_a030_hellaswag.json'))),
    /8experts_bh_a030_hellaswag\.json: missing: the summary of cell 8experts_bh_a030 × hellaswag/);
  await rejects(runCopy((d) => appendFileSync(join(d, 'null.json'), ' ')), /null\.json: is not the null model this sweep used/);
  const dir = runCopy();
  await rejects(dir, /no routing trace for task "wikitext"; tasks with traces: lambada_openai, hellaswag/, { documentTask: 'wikitext' });
  await rejects(dir, /no routing trace for configuration "16experts_topk_baseline"/, { documentConfig: '16experts_topk_baseline' });
  await rejects(dir, /did not score document 7; its documents are 0, 1, 2/, { doc: 7 });
});
