import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, test } from 'node:test';
import { compareRuns, readComparedRun, runLabels } from '../src/compare/compare.js';
import { RoutelabError } from '../src/errors.js';
import { compareToBaseline } from '../src/sweep/results.js';
import { gutenbergDir, repoRoot, tempDir } from './helpers.js';

const cli = join(repoRoot, 'dist/src/cli/main.js');
const routelab = (...args: string[]) => spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8' });

/** The same grid "before and after a change" (here: the window length), on the same documents; and one on fewer documents. */
const SPEC = `
tasks: [lambada_openai, sst2]
baselines: [8, 2]
routers: ["topp:p=0.2,max_k=8"]
limit: 3
max_length: 32
bootstrap_resamples: 100
`;

const root = tempDir('routelab-compare-');
const runs = { before: join(root, 'before'), after: join(root, 'after'), fewer: join(root, 'fewer') };

function sweep(out: string, spec: string): void {
  const file = join(root, `${out.split('/').pop()}.yaml`);
  writeFileSync(file, spec);
  const r = routelab('sweep', '--model', gutenbergDir, '--data-dir', join(repoRoot, 'data'), '--out', out, '--spec', file, '--quiet');
  assert.equal(r.status, 0, r.stderr);
}

before(() => {
  sweep(runs.before, SPEC);
  sweep(runs.after, SPEC.replace('max_length: 32', 'max_length: 16'));
  sweep(runs.fewer, SPEC.replace('limit: 3', 'limit: 2'));
});

test('compare matches configurations × tasks and gives paired deltas by the sweep\'s bootstrap', () => {
  const comparison = compareRuns([runs.before, runs.after], { labels: ['before', 'after'] });
  assert.deepEqual(comparison.configs, ['8experts_topk_baseline', '2experts_topk_baseline', '8experts_topp_p020']);
  assert.deepEqual(comparison.tasks, ['lambada_openai', 'sst2']);
  assert.equal(comparison.cells.length, 6);
  assert.equal(comparison.resamples, 100, 'the first run\'s bootstrap setting');
  const a = readComparedRun(runs.before, 'before');
  const b = readComparedRun(runs.after, 'after');
  for (const cell of comparison.cells) {
    const key = `${cell.config}\t${cell.task}`;
    const [sa, sb] = [a.cells.get(key)!, b.cells.get(key)!];
    assert.deepEqual(cell.values, [sa.metrics[cell.primaryMetric], sb.metrics[cell.primaryMetric]]);
    // Exactly the sweep's paired bootstrap of the later run against the first, on the same documents.
    assert.deepEqual(cell.deltas[0].metrics, compareToBaseline(sb, sa, 100, 0)!.metrics);
    const d = cell.deltas[0].metrics[cell.primaryMetric];
    assert.ok(d.low <= d.delta && d.delta <= d.high, key);
    assert.ok(cell.deltas[0].adjustedPValue! >= d.pValue, 'adjusted p-values are never smaller');
  }
  assert.ok(comparison.cells.find((c) => c.task === 'lambada_openai')!.deltas[0].metrics.log_perplexity, 'perplexities also on the log scale');
  assert.equal(comparison.cells.find((c) => c.task === 'sst2')!.primaryMetric, 'acc');
  assert.deepEqual(runLabels(['/x/a/run', '/x/b/run']), ['a/run', 'b/run']);
});

test('compare refuses runs that scored other documents, naming the task and both document sets', () => {
  assert.throws(() => compareRuns([runs.before, runs.fewer]), (e: unknown) => e instanceof RoutelabError &&
    /fewer: evaluated other lambada_openai documents than .*before: data fingerprint [0-9a-f]{12}… \(2 documents \(limit 2\) of .*\) vs [0-9a-f]{12}… \(3 documents \(limit 3\)/.test(e.message) &&
    /paired differences need the same documents/.test(e.message));
  const r = routelab('compare', runs.before, runs.fewer);
  assert.equal(r.status, 2);
  assert.match(r.stderr, /evaluated other lambada_openai documents/);
  assert.match(routelab('compare', runs.before).stderr, /expected at least two run directories/);
  assert.match(routelab('compare', runs.before, join(root, 'nowhere')).stderr, /nowhere: no such run directory/);
});

test('compare prints a table, writes Markdown, HTML, JSON and figures in the report\'s style, and --json prints the comparison', () => {
  const text = routelab('compare', runs.before, runs.after);
  assert.equal(text.status, 0, text.stderr);
  assert.match(text.stdout, /^Configuration +Task +Metric +before +after +Δ after − before \[95% CI\] +p after \(bh\)/);
  assert.match(text.stdout, /^8experts_topp_p020 +lambada_openai +perplexity /m);
  assert.match(text.stdout, /^- On lambada_openai, /m);

  const out = join(root, 'comparison');
  const written = routelab('compare', runs.before, runs.after, '--out', out);
  assert.equal(written.status, 0, written.stderr);
  for (const f of ['compare.md', 'compare.html', 'compare.json', 'figures/compare-values.svg', 'figures/compare-deltas.vl.json', 'figures/compare-experts.svg']) {
    assert.ok(existsSync(join(out, f)), f);
  }
  const md = readFileSync(join(out, 'compare.md'), 'utf8');
  assert.match(md, /^# Comparison: before vs after$/m);
  assert.match(md, /^Run directories: `.*before, .*after`$/m);
  assert.match(md, /^\| Configuration \| Task \| Metric \| before \| after \| Δ after − before \[95% CI\] \|/m);
  assert.match(md, /!\[Difference from before\]\(figures\/compare-deltas\.svg\)/);
  const html = readFileSync(join(out, 'compare.html'), 'utf8');
  assert.match(html, /<meta http-equiv="Content-Security-Policy" content="default-src 'none';/);
  assert.match(html, /data-chart="compare-deltas"/);
  assert.match(html, /<td title="topp:p=0\.2,min_k=1,max_k=8,weights=probs">8experts_topp_p020<\/td>/);
  const spec = JSON.parse(readFileSync(join(out, 'figures/compare-deltas.vl.json'), 'utf8'));
  assert.equal(spec.config.font, 'DejaVu Sans, sans-serif', 'the report\'s theme');
  const saved = JSON.parse(readFileSync(join(out, 'compare.json'), 'utf8'));
  assert.equal(saved.format, 'routelab.compare/1');
  assert.equal(saved.cells.length, 6);

  // A second comparison replaces the folder as a whole; a folder of something else is refused.
  assert.equal(routelab('compare', runs.before, runs.after, '--out', out, '--labels', 'x,y').status, 0);
  assert.match(readFileSync(join(out, 'compare.md'), 'utf8'), /^# Comparison: x vs y$/m);
  const refused = routelab('compare', runs.before, runs.after, '--out', runs.before);
  assert.equal(refused.status, 2);
  assert.match(refused.stderr, /exists and is not the output of routelab compare/);

  const json = routelab('compare', runs.before, runs.after, '--json');
  assert.equal(json.status, 0, json.stderr);
  const parsed = JSON.parse(json.stdout);
  assert.deepEqual(parsed.runs.map((r: { label: string }) => r.label), ['before', 'after']);
  assert.match(json.stderr, /^Configuration +Task/);
});
