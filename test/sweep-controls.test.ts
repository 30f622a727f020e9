/**
 * `controls: matched`: every adaptive cell gets top-k controls at ⌊avg⌋ and ⌈avg⌉ experts per token with its weight
 * mode and a randk control drawing from its own count distribution, on the same documents; the control rows carry
 * the paired bootstrap of the adaptive configuration against them, and the report states it next to the adaptive one.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { gutenbergDir, repoRoot, tempDir } from './helpers.js';

const cli = join(repoRoot, 'dist/src/cli/main.js');
const routelab = (...args: string[]) => spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8' });

test('matched controls: planned from each adaptive cell, evaluated on its documents, compared and reported', () => {
  const dir = tempDir();
  const spec = join(dir, 'sweep.yaml');
  writeFileSync(spec, 'tasks: [wikitext]\nbaselines: [8]\nbh: { max_k: [8], alpha: [0.5] }\nlimit: 2\nmax_length: 256\n' +
    'calibration: { tokens: 512 }\nbootstrap_resamples: 200\ncontrols: matched\n');
  const run = join(dir, 'run');
  const sweep = routelab('sweep', '--model', gutenbergDir, '--data-dir', join(repoRoot, 'data'), '--out', run, '--spec', spec, '--quiet');
  assert.equal(sweep.status, 0, sweep.stderr);
  const bh = JSON.parse(readFileSync(join(run, '8experts_bh_a050_wikitext.json'), 'utf8'));
  const avg = bh.routing.avg_experts as number;
  const [lo, hi] = [Math.floor(avg), Math.ceil(avg)];
  const manifest = JSON.parse(readFileSync(join(run, 'manifest.json'), 'utf8'));
  const controls = manifest.configs.filter((c: { control_of?: string }) => c.control_of === '8experts_bh_a050');
  assert.deepEqual(controls.map((c: { router: string }) => c.router).sort(), [
    `randk:seed=0,weights=renorm,from=${join(run, '8experts_bh_a050_wikitext.json')}`,
    `topk:k=${lo},renormalize=true`, ...(hi !== lo ? [`topk:k=${hi},renormalize=true`] : []),
  ].sort());
  // Controls follow their adaptive configuration in the run's order.
  const names = manifest.configs.map((c: { config: string }) => c.config);
  assert.equal(names.indexOf('8experts_bh_a050') + 1, names.indexOf(controls[0].config));
  const rows = JSON.parse(readFileSync(join(run, 'results.json'), 'utf8')) as Record<string, unknown>[];
  const randk = rows.find((r) => r.config === '8experts_bh_a050_randk')!;
  assert.equal(randk.control_of, '8experts_bh_a050');
  assert.equal(randk.data_fingerprint, bh.data.fingerprint);
  assert.ok(typeof randk.vs_control_delta_log_word_perplexity === 'number' && typeof randk.vs_control_ci_low_log_word_perplexity === 'number');
  // randk drew its counts from BH's distribution: the same average up to sampling noise, at most max_k.
  const drawn = JSON.parse(readFileSync(join(run, '8experts_bh_a050_randk_wikitext.json'), 'utf8')).routing;
  assert.ok(drawn.max_experts <= 8 && Math.abs(drawn.avg_experts - avg) < 0.5, `${drawn.avg_experts} vs ${avg}`);
  const report = routelab('report', run, '--format', 'md', '--quiet');
  assert.equal(report.status, 0, report.stderr);
  const md = readFileSync(join(run, 'report/report.md'), 'utf8');
  assert.match(md, /## Key findings[\s\S]*### Adaptive routing against its matched controls[\s\S]*`8experts_bh_a050` \([\d.]+ experts\/token, word perplexity [\d.,e]+\) against its matched controls — Δ is `8experts_bh_a050` minus the control/);
  assert.match(md, /`8experts_bh_a050_randk` \([\d.]+ experts\/token, [\d.,e]+; Δ ln word perplexity [+-][\d.]+ nats, 95% CI \[/);
  // Resuming redoes nothing, controls included.
  const again = routelab('sweep', '--model', gutenbergDir, '--data-dir', join(repoRoot, 'data'), '--out', run, '--spec', spec);
  assert.equal(again.status, 0, again.stderr);
  assert.match(again.stderr, /(\d+) cells \(0 evaluated, \1 already complete\)/);
});
