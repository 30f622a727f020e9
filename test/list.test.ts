import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { test } from 'node:test';
import { listMetrics, listRouters, listTasks } from '../src/catalog.js';
import { RoutingAccumulator } from '../src/eval/routing-metrics.js';
import { betterDirection, higherIsBetter, metricDefinition, METRICS } from '../src/metrics.js';
import { FAMILIES } from '../src/model/families/index.js';
import { metricColumn } from '../src/report/table.js';
import { ROUTER_KINDS } from '../src/routers/registry.js';
import { COMPARED_METRICS, LOG_COMPARED } from '../src/sweep/results.js';
import { getTask, TASK_NAMES } from '../src/tasks/registry.js';
import { repoRoot } from './helpers.js';

const cli = join(repoRoot, 'dist/src/cli/main.js');
const routelab = (...args: string[]) => spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8' });

test('list --json: every task, router and family, read from their registries', () => {
  const tasks = JSON.parse(routelab('list', 'tasks', '--json').stdout);
  assert.deepEqual(tasks.map((t: { name: string }) => t.name), TASK_NAMES);
  const wikitext = tasks.find((t: { name: string }) => t.name === 'wikitext');
  assert.deepEqual(wikitext.formats, [...getTask('wikitext').formats]);
  assert.equal(wikitext.primary_metric, 'word_perplexity');
  assert.ok(wikitext.metrics.includes('bits_per_byte'));
  assert.deepEqual(tasks.find((t: { name: string }) => t.name === 'mrpc').metrics, ['acc', 'f1']);
  assert.equal(tasks.find((t: { name: string }) => t.name === 'hellaswag').hub_dataset, 'Rowan/hellaswag');

  const routers = JSON.parse(routelab('list', 'routers', '--json').stdout);
  assert.deepEqual(routers.map((r: { name: string }) => r.name), ROUTER_KINDS.map((k) => k.name));
  const topp = routers.find((r: { name: string }) => r.name === 'topp');
  assert.deepEqual(topp.keys.find((k: { key: string }) => k.key === 'p'), { key: 'p', meaning: 'probability mass to cover, a number in (0, 1]', default: null, required: true });
  assert.equal(topp.keys.find((k: { key: string }) => k.key === 'min_k').default, '1');
  for (const r of routers) for (const k of r.keys) assert.ok(k.required || k.default !== null, `${r.name}.${k.key} has a default or is required`);

  const families = JSON.parse(routelab('list', 'families', '--json').stdout);
  assert.deepEqual(families, FAMILIES.map((f) => ({ model_type: f.modelType, title: f.title, example: f.example })));
});

test('list metrics: every metric a task, the routing observer or the sweep reports has one definition and direction', () => {
  const defined = new Set(METRICS.map((m) => m.key));
  assert.equal(defined.size, METRICS.length, 'each metric declared once');
  for (const name of TASK_NAMES) for (const key of Object.keys(getTask(name).aggregate([]))) assert.ok(defined.has(key), `${name}: ${key}`);
  const routing = new RoutingAccumulator({ numLayers: 2, numExperts: 4, minK: 1, maxK: 2 }).finish();
  for (const key of Object.keys(routing)) assert.ok(defined.has(key), `routing: ${key}`);
  for (const key of [...COMPARED_METRICS, ...Object.values(LOG_COMPARED)]) {
    assert.ok(metricDefinition(`delta_${key}`) && metricDefinition(`ci_low_${key}`), `delta_${key}`);
    assert.equal(betterDirection(`delta_${key}`), betterDirection(key));
  }
  assert.equal(betterDirection('word_perplexity'), 'lower');
  assert.equal(betterDirection('acc'), 'higher');
  assert.equal(betterDirection('gini'), null);
  // The report's table reads its directions from the same definitions.
  for (const key of ['word_perplexity', 'acc', 'avg_experts', 'tokens_per_second', 'floor_hit_rate', 'flops_reduction_pct']) {
    assert.equal(metricColumn(key).higherIsBetter, higherIsBetter(key), key);
  }
  const listed = JSON.parse(routelab('list', 'metrics', '--json').stdout);
  assert.deepEqual(listed, listMetrics());
  assert.deepEqual(listed.find((m: { key: string }) => m.key === 'acc_norm')!.tasks, ['hellaswag']);
});

test('list prints text, and a bad kind is one clear error', () => {
  const tasks = routelab('list', 'tasks');
  assert.equal(tasks.status, 0, tasks.stderr);
  for (const t of listTasks()) assert.match(tasks.stdout, new RegExp(`^${t.name}  \\(split ${t.split}; primary metric ${t.primary_metric}`, 'm'));
  const routers = routelab('list', 'routers');
  for (const r of listRouters()) assert.match(routers.stdout, new RegExp(`^${r.name}: `, 'm'));
  assert.match(routers.stdout, /^ {2}alpha +false discovery rate, a number in \(0, 1\] \(required\)$/m);
  assert.match(routelab('list', 'metrics').stdout, /^ {2}word_perplexity +lower is better +exp/m);
  assert.match(routelab('list', 'families').stdout, /^olmoe +OLMoE +allenai\/OLMoE-1B-7B-0924$/m);
  const bad = routelab('list', 'configs');
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /expected one of tasks, routers, metrics, families, got "configs"/);
});
