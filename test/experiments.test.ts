import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { test } from 'node:test';
import { profileModel } from '../src/experiments/profile.js';
import { adjustPValues, pairedBootstrap, percentile, summarise } from '../src/experiments/stats.js';
import { parseRouterSpec } from '../src/routers/registry.js';
import { createRandom } from '../src/sampling.js';
import { loadCpuModel, parityDir, repoRoot, tempDir } from './helpers.js';

test('percentile interpolates linearly like numpy, and summarise reports mean/std/min/max/p50/p95/p99', () => {
  const v = [1, 2, 3, 4, 10];
  // numpy.percentile([1,2,3,4,10], [50, 95, 99]) = [3, 8.8, 9.76]
  assert.equal(percentile(v, 50), 3);
  assert.ok(Math.abs(percentile(v, 95) - 8.8) < 1e-12);
  assert.ok(Math.abs(percentile(v, 99) - 9.76) < 1e-12);
  const s = summarise([10, 4, 3, 2, 1]);
  assert.equal(s.mean, 4);
  assert.ok(Math.abs(s.std - Math.sqrt(10)) < 1e-12); // population std: sqrt(((−3)²+(−2)²+(−1)²+0²+6²)/5)
  assert.deepEqual([s.min, s.max, s.p50], [1, 10, 3]);
});

test('paired bootstrap: identical configurations give a zero interval; a constant shift gives exactly the shift', () => {
  const a = [0.2, 0.5, 0.9, 0.1, 0.4, 0.7];
  const mean = (xs: number[]) => (idx: Int32Array) => idx.reduce((s, i) => s + xs[i], 0) / idx.length;
  const same = pairedBootstrap(a.length, mean(a), mean(a), { seed: 3 });
  assert.deepEqual([same.delta, same.low, same.high], [0, 0, 0]);
  const shifted = pairedBootstrap(a.length, mean(a.map((x) => x + 0.25)), mean(a), { seed: 3 });
  for (const v of [shifted.delta, shifted.low, shifted.high]) assert.ok(Math.abs(v - 0.25) < 1e-12);
  const b = [0.1, 0.6, 0.2, 0.3, 0.4, 0.9];
  const one = pairedBootstrap(a.length, mean(a), mean(b), { seed: 7, resamples: 500 });
  assert.deepEqual(pairedBootstrap(a.length, mean(a), mean(b), { seed: 7, resamples: 500 }), one);
  assert.ok(one.low <= one.delta && one.delta <= one.high && one.low < one.high);
  assert.equal(one.resamples, 500);
});

test('profileModel reports latency statistics per length and throughput per batch size', async () => {
  const model = loadCpuModel(parityDir);
  const result = await profileModel(model, {
    router: parseRouterSpec('topk:k=4', model.routerDefaults), seqLengths: [8, 16], batchSizes: [1, 3], warmup: 1, runs: 3, seed: 0,
  });
  assert.deepEqual(result.latency_ms.map((r) => [r.seq_len, r.runs]), [[8, 3], [16, 3]]);
  for (const r of result.latency_ms) assert.ok(r.min <= r.p50 && r.p50 <= r.p95 && r.p95 <= r.p99 && r.p99 <= r.max && r.min > 0);
  assert.deepEqual(result.throughput.map((t) => [t.batch, t.seq_len]), [[1, 16], [3, 16]]);
  assert.ok(result.throughput.every((t) => t.tokens_per_second > 0));
  assert.ok(result.peak_rss_mb > 0);
  assert.equal(result.backend_buffers, 'host');
  assert.ok(result.peak_backend_buffers_mb > 0 && result.peak_backend_buffers_mb <= result.peak_rss_mb);
  assert.equal(result.router, 'topk:k=4,renormalize=false');
});

test('routelab profile writes profile.json and rejects bad lists', () => {
  const out = tempDir();
  const cli = join(repoRoot, 'dist/src/cli/main.js');
  const r = spawnSync(process.execPath, [cli, 'profile', '--model', parityDir, '--seq', '8', '--batch', '2', '--runs', '2', '--warmup', '0', '--out', out], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.ok(existsSync(join(out, 'profile.json')));
  assert.equal(JSON.parse(readFileSync(join(out, 'profile.json'), 'utf8')).latency_ms[0].runs, 2);
  const bad = spawnSync(process.execPath, [cli, 'profile', '--model', parityDir, '--seq', '8,x', '--out', out], { encoding: 'utf8' });
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /--seq: expected comma-separated positive integers/);
});

test('adjusted p-values equal their definitions (Benjamini–Hochberg step-up, Holm step-down), computed naively', () => {
  const random = createRandom(5);
  for (let trial = 0; trial < 50; trial++) {
    const m = 1 + Math.floor(random() * 12);
    const p = Array.from({ length: m }, () => (random() < 0.2 ? 1 : random() ** 3));
    const rank = (i: number) => p.filter((q, j) => q < p[i] || (q === p[i] && j < i)).length + 1; // 1-based, ties by index
    const sorted = [...p].sort((a, b) => a - b);
    const bh = p.map((_, i) => Math.min(1, ...sorted.map((q, j) => (j + 1 >= rank(i) ? (m * q) / (j + 1) : Infinity))));
    const holm = p.map((_, i) => Math.max(...sorted.map((q, j) => (j + 1 <= rank(i) ? Math.min(1, (m - j) * q) : 0))));
    assert.deepEqual(adjustPValues(p, 'bh').map((x) => +x.toFixed(12)), bh.map((x) => +x.toFixed(12)));
    assert.deepEqual(adjustPValues(p, 'holm').map((x) => +x.toFixed(12)), holm.map((x) => +x.toFixed(12)));
  }
  // A worked example: p = 0.01, 0.04, 0.03, 0.5 → BH 0.04, 0.0533, 0.0533, 0.5; Holm 0.04, 0.09, 0.09, 0.5.
  assert.deepEqual(adjustPValues([0.01, 0.04, 0.03, 0.5], 'bh').map((x) => +x.toFixed(4)), [0.04, 0.0533, 0.0533, 0.5]);
  assert.deepEqual(adjustPValues([0.01, 0.04, 0.03, 0.5], 'holm').map((x) => +x.toFixed(4)), [0.04, 0.09, 0.09, 0.5]);
});

test('the paired bootstrap p-value: 2·(resamples on the far side of 0 + 1)/(R + 1), at most 1', () => {
  // Configuration A beats B on every document: no resample crosses 0.
  const all = pairedBootstrap(20, (idx) => idx.length, () => 0, { resamples: 99 });
  assert.equal(all.pValue, 2 / 100);
  // Identical configurations: every resampled difference is 0, on both sides at once.
  assert.equal(pairedBootstrap(20, () => 1, () => 1, { resamples: 99 }).pValue, 1);
});
