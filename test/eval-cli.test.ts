import { badRowsReport } from '../src/data/bad-rows.js';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { evalCommand } from '../src/cli/eval.js';
import { parseCommandArgs } from '../src/cli/command.js';
import { traceCommand } from '../src/cli/trace.js';
import { readDocTrace, readTrace } from '../src/trace/reader.js';
import { gutenbergDir, repoRoot, tempDir } from './helpers.js';

const fixtures = join(repoRoot, 'test/fixtures/data');

async function run(command: typeof evalCommand, argv: string[]) {
  const { values, positionals } = parseCommandArgs(command, argv);
  await command.run(values, positionals);
}

const SUMMARY_KEYS = ['format', 'config', 'router', 'model', 'task', 'split', 'primary_metric', 'data', 'max_length', 'batch_size', 'metrics', 'routing', 'timings', 'trace', 'seed', 'routelab_version', 'git_commit', 'backend', 'created'];
const ROUTING_KEYS = ['avg_experts', 'expert_activation_ratio', 'flops_per_token', 'flops_reduction_pct', 'tokens_per_second', 'latency_ms_per_token', 'expert_utilization', 'gini', 'adaptive_range', 'selection_entropy', 'selection_entropy_norm', 'std_experts', 'min_experts', 'max_experts', 'ceiling_hit_rate', 'floor_hit_rate', 'layer_expert_variance', 'layer_consistency', 'expert_overlap', 'output_determinism'];

test('routelab eval end to end: lambada fixture, full trace, summary keys, trace matches the summary', async () => {
  const out = tempDir();
  await run(evalCommand, ['--model', gutenbergDir, '--task', 'lambada_openai', '--data', join(fixtures, 'lambada_openai'), '--limit', '3', '--trace', 'full', '--max-length', '256', '--batch-size', '2', '--out', out, '--quiet']);
  assert.deepEqual(readdirSync(out).sort(), ['8experts_topk_baseline_lambada_openai.json', '8experts_topk_baseline_lambada_openai_routing.parquet']);
  const s = JSON.parse(readFileSync(join(out, '8experts_topk_baseline_lambada_openai.json'), 'utf8'));
  for (const k of SUMMARY_KEYS) assert.ok(k in s, `summary has ${k}`);
  for (const k of ROUTING_KEYS) assert.ok(k in s.routing, `routing has ${k}`);
  assert.equal(s.config, '8experts_topk_baseline');
  assert.equal(s.router, 'topk:k=8,renormalize=false');
  assert.equal(s.task, 'lambada_openai');
  assert.equal(s.max_length, 256);
  assert.match(s.model.config_sha256, /^[0-9a-f]{64}$/);
  assert.match(s.data.fingerprint, /^[0-9a-f]{64}$/);
  assert.equal(s.data.num_docs, 3);
  assert.equal(s.data.limit, 3);
  assert.equal(s.data.format, 'jsonl');
  assert.ok(Number.isFinite(s.metrics.perplexity) && s.metrics.perplexity > 1);
  assert.ok(s.metrics.acc >= 0 && s.metrics.acc <= 1);
  // The model's own routing: exactly k everywhere, full overlap with itself, deterministic.
  assert.equal(s.routing.avg_experts, 8);
  assert.equal(s.routing.flops_reduction_pct, 0);
  assert.equal(s.routing.expert_overlap, 1);
  assert.equal(s.routing.output_determinism, 1);
  assert.equal(s.routing.layer_consistency, null);
  assert.ok(s.routing.tokens_per_second > 0);
  assert.equal(s.trace.level, 'full');

  const trace = await readTrace(join(out, '8experts_topk_baseline_lambada_openai_routing.parquet'));
  assert.equal(trace.rows, s.routing.scored_tokens * 4);
  assert.equal(trace.meta.task, 'lambada_openai');
  assert.equal(trace.meta.level, 'full');
  const d = await readDocTrace(trace, 0, 0);
  assert.ok(d.pos.length >= 1);
  for (const experts of d.experts) assert.equal(experts.length, 8);
  // Full traces carry the router logits: top-8 of the logits are the selected experts.
  const logits = d.routerLogits![0];
  const top = [...logits.keys()].sort((a, b) => logits[b] - logits[a] || a - b).slice(0, 8);
  assert.deepEqual(d.experts[0], top);

  const lines: string[] = [];
  const log = console.log;
  console.log = (x: string) => lines.push(x);
  try {
    await run(traceCommand, ['show', join(out, '8experts_topk_baseline_lambada_openai_routing.parquet'), '--doc', '0', '--layer', '1']);
  } finally {
    console.log = log;
  }
  const text = lines.join('\n');
  assert.match(text, /routelab\.trace\/1, level full/);
  assert.match(text, /document 0: \d+ rows/);
});

test('routelab eval: a top-k router other than the default, trace off, bad rows skipped and recorded', async () => {
  const dir = tempDir();
  const data = join(dir, 'lambada.jsonl');
  const good = readFileSync(join(fixtures, 'lambada_openai/lambada_test.jsonl'), 'utf8').split('\n').filter(Boolean).slice(0, 2);
  writeFileSync(data, [good[0], '{"text": 7}', good[1]].join('\n') + '\n');
  const out = join(dir, 'out');
  await run(evalCommand, ['--model', gutenbergDir, '--task', 'lambada_openai', '--data', data, '--router', 'topk:k=2', '--trace', 'off', '--no-determinism', '--out', out, '--quiet']);
  assert.deepEqual(readdirSync(out), ['2experts_topk_baseline_lambada_openai.json']);
  const s = JSON.parse(readFileSync(join(out, '2experts_topk_baseline_lambada_openai.json'), 'utf8'));
  assert.equal(s.data.num_docs, 2);
  assert.equal(s.data.bad_rows_skipped, 1);
  assert.match(s.data.bad_rows_first[0].source, /lambada\.jsonl:2/);
  assert.deepEqual(s.data.bad_rows.map((r: { source: string }) => r.source.replace(/^.*[/\\]/, '')), ['lambada.jsonl:2']);
  assert.equal(s.routing.avg_experts, 2);
  assert.equal(s.routing.expert_overlap, 0.25); // 2 of the default 8: |∩| = 2, |∪| = 8
  assert.ok(s.routing.flops_reduction_pct > 0);
  assert.equal(s.routing.output_determinism, null);
  assert.equal(s.trace.file, null);
});

test('skipped rows are counted on the console with the first few file:line reasons', () => {
  const rows = Array.from({ length: 7 }, (_, i) => ({ source: `d.jsonl:${i + 2}`, reason: 'missing field "text"' }));
  assert.equal(badRowsReport(rows), [
    'skipped 7 malformed rows:', ...rows.slice(0, 5).map((r) => `  ${r.source}: ${r.reason}`),
    "  … and 2 more (all listed in the summary's data.bad_rows)",
  ].join('\n'));
  assert.equal(badRowsReport(rows.slice(0, 1)), 'skipped 1 malformed row:\n  d.jsonl:2: missing field "text"');
});
