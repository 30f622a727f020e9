/**
 * The quick sweep and its report on families other than OLMoE: Mixtral (8 experts, top-2 renormalised, sliding
 * window) and DeepSeek-V3 (a dense first layer, shared experts, group-limited sigmoid routing). The grid follows the
 * model: baselines are the family's own routing at k, 2k, 4k, 8k (at most what it can route), BH max_k = k.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { repoRoot, tempDir, withSmallTokenizer } from './helpers.js';

const cli = join(repoRoot, 'dist/src/cli/main.js');
const routelab = (...args: string[]) => spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8' });

const cases = [
  { family: 'mixtral', baseline: '2experts_topk_baseline', configs: ['2experts_topk_baseline', '4experts_topk_baseline', '8experts_topk_baseline', '2experts_bh_a030'], moeLayers: [0, 1, 2] },
  { family: 'deepseek_v3', baseline: '4experts_deepseek_v3_baseline', configs: ['4experts_deepseek_v3_baseline', '8experts_deepseek_v3_baseline', '4experts_bh_a060'], moeLayers: [1, 2] },
];

for (const c of cases) {
  test(`quick sweep and report on the ${c.family} fixture`, () => {
    const model = withSmallTokenizer(join(repoRoot, 'test/fixtures/families', c.family), 999);
    const run = join(tempDir(), 'run');
    const sweep = routelab('sweep', '--mode', 'quick', '--model', model, '--data-dir', join(repoRoot, 'data'), '--out', run, '--limit', '3', '--quiet');
    assert.equal(sweep.status, 0, sweep.stderr);
    const manifest = JSON.parse(readFileSync(join(run, 'manifest.json'), 'utf8'));
    const names = manifest.configs.map((x: { config: string }) => x.config);
    for (const name of c.configs) assert.ok(names.includes(name), `${name} in ${names}`);
    assert.ok(!names.some((n: string) => /^16experts_(topk|deepseek)/.test(n)), 'no baseline beyond what the routing can choose');
    const rows = JSON.parse(readFileSync(join(run, 'results.json'), 'utf8')) as Record<string, unknown>[];
    assert.ok(rows.every((r) => r.baseline === (r.config === c.baseline ? null : c.baseline)), 'every row compares against the family\'s own routing');
    const summary = JSON.parse(readFileSync(join(run, `${c.baseline}_wikitext.json`), 'utf8'));
    assert.equal(summary.model.family, c.family);
    assert.deepEqual(summary.model.moe_layers, c.moeLayers);
    assert.equal(summary.routing.per_layer_avg_experts.length, c.moeLayers.length);
    const trace = routelab('trace', 'show', join(run, `${c.baseline}_wikitext_routing.parquet`));
    assert.equal(trace.status, 0, trace.stderr);
    assert.match(trace.stdout, new RegExp(`${c.moeLayers.length} MoE layers`));
    const report = routelab('report', run, '--format', 'md,html,svg', '--quiet');
    assert.equal(report.status, 0, report.stderr);
    const md = readFileSync(join(run, 'report/report.md'), 'utf8');
    assert.match(md, new RegExp(`baseline ${c.baseline}`));
    assert.ok(existsSync(join(run, 'report/report.html')));
    // Charts name layers by their decoder-layer index (DeepSeek-V3's layer 0 is dense).
    const heatmap = JSON.parse(readFileSync(join(run, 'report/figures', `routing-heatmap-${c.baseline.replace(/_/g, '-')}.vl.json`), 'utf8'));
    assert.deepEqual([...new Set(heatmap.data.values.map((v: { layer: number }) => v.layer))], c.moeLayers);
  });
}
