/**
 * The real configs of one public checkpoint per family (configs/, provenance in its README): `inspect` reads each
 * without weights, and its parameter counts equal the figures the model cards publish, to the card's precision.
 * Cards round or truncate to one decimal, and count active parameters with or without the embeddings; each case
 * says which of `inspect`'s counts its card uses.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { test } from 'node:test';
import { repoRoot } from './helpers.js';

const cli = join(repoRoot, 'dist/src/cli/main.js');

type ActiveCount = 'activePerToken' | 'activePerTokenWithoutInputEmbedding';
const cases: { dir: string; family: string; total: number; active: number; counted: ActiveCount }[] = [
  { dir: 'olmoe-1b-7b-0924', family: 'olmoe', total: 6.9e9, active: 1.3e9, counted: 'activePerToken' },
  { dir: 'mixtral-8x7b-v0.1', family: 'mixtral', total: 46.7e9, active: 12.9e9, counted: 'activePerToken' },
  { dir: 'qwen1.5-moe-a2.7b', family: 'qwen2_moe', total: 14.3e9, active: 2.7e9, counted: 'activePerToken' },
  { dir: 'qwen3-30b-a3b', family: 'qwen3_moe', total: 30.5e9, active: 3.3e9, counted: 'activePerToken' },
  // DeepSeek counts activated parameters without the token-embedding table (2.45 B); with it, 2.66 B.
  { dir: 'deepseek-v2-lite', family: 'deepseek_v2', total: 15.7e9, active: 2.4e9, counted: 'activePerTokenWithoutInputEmbedding' },
  { dir: 'granite-3.0-1b-a400m-base', family: 'granitemoe', total: 1.3e9, active: 0.4e9, counted: 'activePerToken' },
];

/** A one-decimal published figure: the count rounded, or truncated, to that decimal. */
function matchesPublished(count: number, published: number): boolean {
  const unit = 0.1e9;
  return Math.abs(count - published) <= unit / 2 || (count >= published && count < published + unit);
}

for (const c of cases) {
  test(`${c.dir}: inspect on its config.json gives the published ${c.total / 1e9} B total / ${c.active / 1e9} B active`, () => {
    const dir = join(repoRoot, 'configs', c.dir);
    const r = spawnSync(process.execPath, [cli, 'inspect', dir, '--json'], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const report = JSON.parse(r.stdout);
    assert.equal(report.family, c.family);
    assert.equal(report.shards, null, 'a config-only directory has no weights');
    const { total } = report.parameters;
    const active = report.parameters[c.counted];
    assert.ok(matchesPublished(total, c.total), `total ${total}`);
    assert.ok(matchesPublished(active, c.active), `${c.counted} ${active}`);
    const text = spawnSync(process.execPath, [cli, 'inspect', dir], { encoding: 'utf8' }).stdout;
    assert.match(text, /weights +none \(config\.json only\)/);
  });
}

test('a count off by more than the published precision fails the comparison', () => {
  assert.ok(matchesPublished(1.282e9, 1.3e9) && matchesPublished(3.353e9, 3.3e9));
  assert.ok(!matchesPublished(2.661e9, 2.4e9) && !matchesPublished(1.178e9, 1.3e9));
});
