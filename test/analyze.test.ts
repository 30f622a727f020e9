/**
 * `routelab analyze` on traces whose answers are known by construction (written with the trace writer, so the
 * format is the real one), then on a small real sweep of the bundled model.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { analyzeRun } from '../src/analyze/analyze.js';
import { writeAnalysis } from '../src/analyze/output.js';
import { RoutelabError } from '../src/errors.js';
import type { TraceMeta } from '../src/trace/format.js';
import { TraceWriter } from '../src/trace/writer.js';
import { gutenbergDir, repoRoot, tempDir } from './helpers.js';

const E = 8;
const L = 3;
const X = 7; // the token expert 3 gets, and the only one it gets
const BATCH = 50; // positions per batch: with row groups of 64 rows, a layer's run of rows straddles row groups

/** Tokens of each task: X is a quarter of task a and absent from task b. */
const TOKENS: Record<string, readonly number[]> = { a: [X, 1, 2, 3], b: [1, 2] };

/**
 * The base configuration selects two experts at layer 0: {3, 7} for X, {1, 2} for odd tokens, {0, 4} for even ones
 * (first-ranked first); layer ℓ shifts every id by ℓ (mod E), so each layer's first choice is a function of the last's
 * and the pairs stay together.
 */
function baseExperts(token: number, layer: number): number[] {
  const pair = token === X ? [3, 7] : token % 2 === 1 ? [1, 2] : [0, 4];
  return pair.map((e) => (e + layer) % E);
}

/**
 * The adaptive configuration on its own task: token 1 occurs 8 times per 15 positions, 2 four, 3 twice, 4 once, and
 * selects 1, 2, 3, 4 experts, so the count is a linear function of the unigram surprisal log₂15 − c. Its router
 * logits make c experts equally likely and the rest negligible: router entropy ln c, monotone in c.
 */
const ADAPTIVE_CYCLE = [...Array(8).fill(1), ...Array(4).fill(2), 3, 3, 4];

function meta(config: string, task: string, level: 'counts' | 'full', minK: number, maxK: number): TraceMeta {
  return { format: 'routelab.trace/1', level, numLayers: L, numExperts: E, minK, maxK, expertBytes: 1, router: `${config}-router`, config, task, model: 'none', routelabVersion: 'test' };
}

function writeTrace(dir: string, m: TraceMeta, tokens: readonly number[], experts: (token: number, layer: number) => number[]): void {
  const writer = TraceWriter.open(join(dir, `${m.config}_${m.task}_routing.parquet`), m, { rowGroupRows: 64 });
  const K = m.maxK;
  for (let start = 0; start < tokens.length; start += BATCH) {
    const n = Math.min(BATCH, tokens.length - start);
    const token = Int32Array.from({ length: n }, (_, i) => tokens[start + i]);
    const positions = { n, doc: new Int32Array(n), seq: new Int32Array(n), pos: Int32Array.from({ length: n }, (_, i) => start + i), token, row: Int32Array.from({ length: n }, (_, i) => i) };
    for (let layer = 0; layer < L; layer++) {
      const counts = new Int32Array(n);
      const ids = new Int32Array(n * K);
      const weights = new Float32Array(n * K);
      const logits = new Float32Array(n * E).fill(-30);
      for (let i = 0; i < n; i++) {
        const chosen = experts(token[i], layer);
        counts[i] = chosen.length;
        chosen.forEach((e, j) => {
          ids[i * K + j] = e;
          weights[i * K + j] = 1 / chosen.length;
          logits[i * E + e] = 10;
        });
      }
      writer.add(positions, { layer, maxK: K, counts, experts: ids, weights, routerLogits: logits });
    }
  }
  writer.close();
}

function syntheticRun(): string {
  const dir = tempDir('routelab-analyze-');
  const repeat = (cycle: readonly number[], n: number) => Array.from({ length: n }, (_, i) => cycle[i % cycle.length]);
  writeTrace(dir, meta('base', 'a', 'counts', 2, 2), repeat(TOKENS.a, 400), baseExperts);
  writeTrace(dir, meta('base', 'b', 'counts', 2, 2), repeat(TOKENS.b, 200), baseExperts);
  writeTrace(dir, meta('adaptive', 'a', 'full', 1, 4), repeat(ADAPTIVE_CYCLE, 300), (token) => Array.from({ length: token }, (_, j) => j));
  writeFileSync(join(dir, 'results.json'), JSON.stringify([{ config: 'base', task: 'a' }, { config: 'adaptive', task: 'a', baseline: 'base' }]));
  writeFileSync(join(dir, 'manifest.json'), JSON.stringify({ configs: [{ config: 'base' }, { config: 'adaptive' }], data: [{ task: 'a' }, { task: 'b' }] }));
  return dir;
}

const close = (actual: number, expected: number, tolerance = 1e-9) => assert.ok(Math.abs(actual - expected) <= tolerance, `${actual} ≠ ${expected}`);

test('analyze: answers known by construction', async () => {
  const run = syntheticRun();
  const a = await analyzeRun(run, { layer: 1, minCount: 1 });
  assert.equal(a.config, 'base'); // the recorded baseline
  assert.deepEqual(a.tasks, ['a', 'b']);
  const N = 600;
  assert.equal(a.vocabulary.positions, N);

  // Vocabulary: expert 3 of layer 0 gets X and only X, every time.
  const v = a.vocabulary;
  const cell = 0 * E + 3;
  close(v.score[cell], 1);
  close(v.topShare[cell], 1);
  const top = v.topTokens.filter((t) => t.layer === 0 && t.expert === 3);
  assert.deepEqual(top.map((t) => [t.ranking, t.token, t.selections, t.occurrences]), [['count', X, 100, 100], ['lift', X, 100, 100]]);
  close(top[1].lift, N / 100);
  close(top[1].specialisation, 1);

  // Task specialisation: 2 of 8 experts per position, so the even share is 1/4; X never occurs in task b.
  const { share, uniform } = a.taskSpecialisation;
  close(uniform[0 * L + 0], 0.25);
  close(share[(0 * L + 0) * E + 3], 0.25); // task a: X is a quarter of its tokens
  close(share[(1 * L + 0) * E + 3], 0);
  close(share[(1 * L + 0) * E + 1], 0.5); // task b: token 1 (odd) is half of it

  // Co-activation at layer 1: pairs {2, 3}, {4, 0} and {1, 5} always come together, and nothing else does.
  const co = a.coactivation;
  close(co.matrix[2 * E + 3], 1);
  close(co.matrix[3 * E + 2], 1);
  close(co.matrix[4 * E + 0], 1);
  close(co.matrix[2 * E + 4], 0);
  assert.ok(Number.isNaN(co.matrix[2 * E + 2]));
  assert.deepEqual(new Set(co.pairs.filter((p) => p.coactivation === 1).map((p) => `${p.i}-${p.j}`)), new Set(['2-3', '3-2', '4-0', '0-4', '1-5', '5-1']));

  // Cross-layer: layer ℓ+1's first choice is a function of layer ℓ's, so I = H(ℓ+1) and H(ℓ+1 | ℓ) = 0.
  // First choices: 3 for X (100 of 600), 1 for odd tokens (300), 0 for even ones (200).
  const h = -[100, 300, 200].reduce((s, c) => s + (c / N) * Math.log2(c / N), 0);
  assert.equal(a.crossLayer.length, L - 1);
  for (const p of a.crossLayer) {
    assert.equal(p.positions, N);
    close(p.entropyNext, h);
    close(p.mutualInformation, h);
    close(p.conditionalEntropy, 0);
  }

  // Adaptive counts: linear in unigram surprisal, monotone in router entropy.
  assert.equal(a.adaptive.length, 1);
  const adaptive = a.adaptive[0];
  assert.equal(adaptive.config, 'adaptive');
  assert.deepEqual([adaptive.minCount, adaptive.maxCount, adaptive.rows], [1, 4, 300 * L]);
  const pooled = (measure: string) => adaptive.correlations.find((c) => c.measure === measure && c.layer === null)!;
  const surprisal = pooled('unigram_surprisal');
  close(surprisal.pearson.value!, 1);
  close(surprisal.spearman.value!, 1);
  assert.ok(surprisal.spearman.low! > 1 - 1e-9 && surprisal.pearson.low! > 1 - 1e-9);
  const entropy = pooled('router_entropy');
  close(entropy.spearman.value!, 1);
  assert.ok(entropy.pearson.value! > 0.95 && entropy.pearson.value! < 1);
  assert.equal(adaptive.correlations.length, 2 * (L + 1)); // both measures, pooled and per layer
  const bins = adaptive.bins.filter((b) => b.measure === 'unigram_surprisal');
  assert.deepEqual(bins.map((b) => b.meanCount), [1, 2, 3, 4]); // ties are never split, so one bin per token
  assert.deepEqual(bins.map((b) => b.n), [160 * L, 80 * L, 40 * L, 20 * L]);

  // The outputs: every table and chart, written as a whole.
  const { dir, files } = await writeAnalysis(a);
  assert.equal(dir, join(run, 'analysis'));
  for (const f of files) assert.ok(existsSync(f), f);
  for (const name of ['analyze.md', 'vocabulary_tokens.csv', 'vocabulary_tokens.parquet', 'coactivation_layer_1.csv', 'cross_layer.csv', 'figures/adaptive-counts.png', 'figures/task-specialisation.svg']) {
    assert.ok(files.includes(join(dir, name)), name);
  }
  const crossCsv = readFileSync(join(dir, 'cross_layer.csv'), 'utf8').trim().split('\n');
  assert.equal(crossCsv[0], 'layer,next_layer,positions,entropy_next_bits,mutual_information_bits,conditional_entropy_bits,normalised_mutual_information');
  assert.equal(crossCsv.length, L);
});

test('analyze: --task and --config narrow what is analysed', async () => {
  const run = syntheticRun();
  const onlyB = await analyzeRun(run, { task: 'b' });
  assert.deepEqual(onlyB.analysedTasks, ['b']);
  assert.deepEqual(onlyB.taskSpecialisation.tasks, ['a', 'b']); // still compares every task
  assert.equal(onlyB.vocabulary.positions, 200);
  assert.equal(onlyB.adaptive.length, 0); // the adaptive configuration has no trace on b
  const adaptive = await analyzeRun(run, { config: 'adaptive' });
  assert.equal(adaptive.config, 'adaptive');
  assert.deepEqual(adaptive.adaptive.map((c) => c.config), ['adaptive']);
  const base = await analyzeRun(run, { config: 'base' });
  assert.equal(base.adaptive.length, 0); // naming a fixed configuration leaves no adaptive one
});

test('analyze: bad input is one RoutelabError naming what was expected', async () => {
  const run = syntheticRun();
  const empty = tempDir('routelab-analyze-empty-');
  const off = tempDir('routelab-analyze-off-');
  writeFileSync(join(off, 'manifest.json'), JSON.stringify({ spec: { trace: 'off' } }));
  const cases: [() => Promise<unknown>, RegExp][] = [
    [() => analyzeRun(join(empty, 'missing')), /no such run directory/],
    [() => analyzeRun(empty), /no routing traces/],
    [() => analyzeRun(off), /ran with trace off/],
    [() => analyzeRun(run, { config: 'bse' }), /--config: no traces of configuration "bse"; did you mean base\?/],
    [() => analyzeRun(run, { task: 'c' }), /--task: base has no trace for task "c"/],
    [() => analyzeRun(run, { layer: 3 }), /--layer: 3 is out of range: the traces have 3 MoE layers/],
  ];
  for (const [call, message] of cases) await assert.rejects(call, (e: unknown) => e instanceof RoutelabError && message.test(e.message));
  // Without a recorded baseline and with several configurations, the configuration must be named.
  writeFileSync(join(run, 'results.json'), '[]');
  await assert.rejects(analyzeRun(run), /--config: the run records no baseline/);
  // The output replaces its directory as a whole, so it may not hold the run.
  const a = await analyzeRun(run, { config: 'base' });
  await assert.rejects(writeAnalysis(a, join(run, '..')), /holds the run directory/);
});

test('analyze: a small real sweep of the bundled model', () => {
  const dir = tempDir('routelab-analyze-real-');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'sweep.yaml'), 'tasks: [wikitext, hellaswag]\nbaselines: [8]\nrouters: ["topp:p=0.5,max_k=16"]\nlimit: 2\nmax_length: 128\ntrace: full\ncalibration: { tokens: 512 }\n');
  const cli = join(repoRoot, 'dist/src/cli/main.js');
  const run = join(dir, 'run');
  const sweep = spawnSync(process.execPath, [cli, 'sweep', '--model', gutenbergDir, '--data-dir', join(repoRoot, 'data'), '--out', run, '--spec', join(dir, 'sweep.yaml'), '--quiet'], { encoding: 'utf8' });
  assert.equal(sweep.status, 0, sweep.stderr);
  const analyze = spawnSync(process.execPath, [cli, 'analyze', run, '--json'], { encoding: 'utf8' });
  assert.equal(analyze.status, 0, analyze.stderr);
  const out = JSON.parse(analyze.stdout);
  assert.equal(out.config, '8experts_topk_baseline');
  assert.deepEqual(out.tasks, ['wikitext', 'hellaswag']);
  assert.equal(out.num_experts, 64);
  assert.ok(out.positions > 100);
  for (const p of out.cross_layer) assert.ok(p.mutualInformation >= 0 && p.mutualInformation <= p.entropyNext && p.entropyNext <= Math.log2(65));
  assert.ok(out.coactivation.pairs.length > 0 && out.coactivation.pairs.every((p: { coactivation: number }) => p.coactivation > 0 && p.coactivation <= 1));
  assert.deepEqual(out.adaptive.map((c: { config: string }) => c.config), ['16experts_topp_p050']);
  for (const c of out.adaptive[0].correlations) assert.ok(Math.abs(c.spearman.value) <= 1 && c.spearman.low <= c.spearman.value && c.spearman.value <= c.spearman.high);
  for (const f of out.files) assert.ok(existsSync(f), f);
  const png = readFileSync(join(out.dir, 'figures/coactivation-layer-2.png'));
  assert.equal(png.subarray(1, 4).toString('latin1'), 'PNG');
  const md = readFileSync(join(out.dir, 'analyze.md'), 'utf8');
  assert.match(md, /^# Routing analysis: 8experts_topk_baseline/);
  assert.match(md, /no token log-probabilities/);
  // Token text comes from the model the traces record.
  assert.match(readFileSync(join(out.dir, 'vocabulary_tokens.csv'), 'utf8'), /,count,1,\d+, [A-Za-z]+,/);
});
