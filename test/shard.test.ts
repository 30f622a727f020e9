/**
 * `sweep --shard I/N`: N processes side by side on one run directory each evaluate their slice of the grid (and the
 * controls of their own adaptive cells) under their own lock; the same command without --shard then only merges,
 * and its results equal those of one uninterrupted sweep in every column that is not a timing.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { DashboardData } from '../src/dashboard/data.js';
import { gutenbergDir, repoRoot, tempDir, untimedResults } from './helpers.js';

const cli = join(repoRoot, 'dist/src/cli/main.js');
const data = join(repoRoot, 'data');

test('two shards side by side, then a merge, give exactly the results of one sweep', async () => {
  const dir = tempDir();
  const spec = join(dir, 'sweep.yaml');
  writeFileSync(spec, 'tasks: [text]\nbaselines: [8, 4]\nbh: { max_k: [8], alpha: [0.5] }\ncontrols: matched\nlimit: 2\nmax_length: 128\n' +
    'bootstrap_resamples: 50\ntrace: off\ncalibration: { tokens: 1024 }\n');
  const single = join(dir, 'single');
  const one = spawnSync(process.execPath, [cli, 'sweep', '--model', gutenbergDir, '--data-dir', data, '--out', single, '--spec', spec, '--quiet'], { encoding: 'utf8' });
  assert.equal(one.status, 0, one.stderr);

  const sharded = join(dir, 'sharded');
  const args = ['sweep', '--model', gutenbergDir, '--data-dir', data, '--out', sharded, '--spec', spec];
  const shards = [1, 2].map((i) => spawn(process.execPath, [cli, ...args, '--shard', `${i}/2`], { stdio: ['ignore', 'ignore', 'pipe'] }));
  const logs = shards.map((child) => {
    let text = '';
    child.stderr.on('data', (d) => { text += d; });
    return new Promise<{ code: number | null; text: string }>((resolve) => child.on('exit', (code) => resolve({ code, text })));
  });
  const [first, second] = await Promise.all(logs);
  assert.equal(first.code, 0, first.text);
  assert.equal(second.code, 0, second.text);
  assert.match(first.text, /shard 1\/2: \d+ cells/);
  assert.match(second.text, /shard 2\/2: \d+ cells .*run the same command without --shard/);

  // The dashboard shows the two shards' status files as one sweep: all 6 cells done, once each, both shards' workers.
  const live = new DashboardData(sharded).state();
  assert.equal(live.error, null);
  assert.equal(live.status?.mode, 'shard');
  assert.equal(live.status?.finished, true);
  assert.equal(live.status?.cells.length, 6);
  assert.deepEqual(new Set(live.status?.cells.map((c) => c.name)).size, 6);
  assert.ok(live.status?.cells.every((c) => c.state === 'done'));
  assert.equal(live.status?.workers.length, 2);
  assert.ok(live.charts.length > 0, 'charts of the finished cells');
  // An unreadable shard file is named, and the other shard still shows.
  writeFileSync(join(sharded, 'sweep-status.shard-2-of-2.json'), '{"format":');
  const damaged = new DashboardData(sharded).state();
  assert.match(damaged.error ?? '', /sweep-status\.shard-2-of-2\.json: /);
  assert.ok((damaged.status?.cells.length ?? 0) > 0 && (damaged.status?.cells.length ?? 0) < 6);

  const merge = spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8' });
  assert.equal(merge.status, 0, merge.stderr);
  assert.match(merge.stderr, /sweep: 6 cells \(0 evaluated, 6 already complete\)/, 'the merge evaluates nothing');
  assert.deepEqual(untimedResults(sharded), untimedResults(single));

  const bad = spawnSync(process.execPath, [cli, ...args, '--shard', '3/2'], { encoding: 'utf8' });
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /--shard: expected I\/N with 1 ≤ I ≤ N \(e\.g\. 2\/8\), got "3\/2"/);
});
