import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fitNullModel } from '../src/calibrate/calibrate.js';
import { erfc, kdeCdfGrid, normalCdf } from '../src/calibrate/kde.js';
import { createRandom } from '../src/sampling.js';
import { parseNullModel, readNullModel } from '../src/routers/null-model.js';
import { gutenbergDir, repoRoot, tempDir } from './helpers.js';

test('erfc has relative error below 1.2e-7, tails included', () => {
  const known: [number, number][] = [
    [0, 1], [0.5, 0.4795001221869535], [1, 0.15729920705028513], [2, 0.004677734981047266],
    [3, 2.209049699858544e-5], [5, 1.5374597944280349e-12], [-1, 1.8427007929497148],
  ];
  for (const [x, want] of known) assert.ok(Math.abs(erfc(x) - want) / want < 1.2e-7, `erfc(${x}) = ${erfc(x)}, want ${want}`);
  assert.ok(Math.abs(normalCdf(1.959963984540054) - 0.975) < 1e-7);
});

test('KDE: Silverman bandwidth, grid span and CDF values by hand', () => {
  const samples = [0, 1, 2, 3];
  const g = kdeCdfGrid(samples, 5);
  const std = Math.sqrt((2.25 + 0.25 + 0.25 + 2.25) / 3);
  const h = 1.06 * std * 4 ** -0.2;
  assert.ok(Math.abs(g.bandwidth - h) < 1e-12);
  assert.equal(g.std, std);
  assert.equal(g.mean, 1.5);
  const lo = -4 * h;
  const hi = 3 + 4 * h;
  assert.deepEqual(Array.from(g.x), [0, 1, 2, 3, 4].map((i) => lo + ((hi - lo) * i) / 4));
  // The middle grid point sits at the symmetric centre: F = 0.5 exactly (up to erfc's error).
  assert.ok(Math.abs(g.cdf[2] - 0.5) < 1e-7);
  // F(x) = mean of Φ((x − x_i)/h), checked at the first point against a direct sum.
  const direct = samples.reduce((s, xi) => s + normalCdf((lo - xi) / h), 0) / 4;
  assert.ok(Math.abs(g.cdf[0] - direct) < 1e-15);
  assert.ok(g.cdf.every((c, i) => c >= 0 && c <= 1 && (i === 0 || c >= g.cdf[i - 1])));
});

test('KDE of standard-normal samples has the normal quantiles', () => {
  const random = createRandom(1);
  const samples = Float32Array.from({ length: 20000 }, () => Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random()));
  const g = kdeCdfGrid(samples, 512);
  const at = (x: number) => {
    const i = g.x.findIndex((v) => v >= x);
    return g.cdf[i - 1] + ((x - g.x[i - 1]) / (g.x[i] - g.x[i - 1])) * (g.cdf[i] - g.cdf[i - 1]);
  };
  assert.ok(Math.abs(at(0) - 0.5) < 0.01, `F(0) = ${at(0)}`);
  assert.ok(Math.abs(at(1.645) - 0.95) < 0.01, `F(1.645) = ${at(1.645)}`);
  assert.ok(Math.abs(at(-1.645) - 0.05) < 0.01);
});

test('fitNullModel writes a valid routelab.null/1 model, with per-expert nulls when asked', () => {
  const random = createRandom(2);
  const E = 4;
  const logits = [0, 1].map(() => Float32Array.from({ length: 50 * E }, () => random() * 4 - 2));
  const file = fitNullModel(logits, E, { perExpert: true, points: 64, meta: { note: 'test' } });
  const parsed = parseNullModel(JSON.parse(JSON.stringify(file)), 'null.json', { numLayers: 2, numExperts: E });
  assert.equal(parsed.layers.length, 2);
  assert.equal(parsed.layers[0].x.length, 64);
  assert.equal(parsed.layers[1].experts?.length, E);
  assert.equal(parsed.meta.tokens, 50);
  assert.equal(parsed.meta.note, 'test');
  assert.equal((parsed.meta.bandwidths as number[]).length, 2);
});

test('routelab calibrate fits a null on text that bh then routes with; --show summarises it', () => {
  const dir = tempDir();
  const text = join(dir, 'calibration.txt');
  writeFileSync(text, 'The old man walked down to the harbour, where the boats lay at anchor.\n\n'.repeat(40));
  const out = join(dir, 'null.json');
  const cli = join(repoRoot, 'dist/src/cli/main.js');
  const run = (...args: string[]) => spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8' });
  const r = run('calibrate', '--model', gutenbergDir, '--data', text, '--tokens', '300', '--seq-len', '100', '--points', '128', '--out', out);
  assert.equal(r.status, 0, r.stderr);
  const nullModel = readNullModel(out, { numLayers: 4, numExperts: 64 });
  assert.equal(nullModel.meta.tokens, 300);
  assert.equal(nullModel.meta.samples_per_layer, 300 * 64);
  assert.deepEqual(readdirSync(dir).sort(), ['calibration.txt', 'null.json']);
  assert.match(run('calibrate', '--show', out).stdout, /4 layers, 128 grid points[\s\S]*p=0\.05 at/);
  const fwd = run('forward', '--model', gutenbergDir, '--text', 'It was a dark and stormy night.', '--router', `bh:alpha=0.3,max_k=16,null=${out}`);
  assert.equal(fwd.status, 0, fwd.stderr);
  assert.match(fwd.stderr, /experts\/token\/layer/);
  const missing = run('calibrate', '--model', gutenbergDir, '--data', join(dir, 'nope.txt'), '--out', out);
  assert.equal(missing.status, 2);
  assert.match(missing.stderr, /nope\.txt: no such calibration file or directory/);
});

test('calibrate --task reads a task split other than the evaluated one, and the sweep refuses a null from the evaluated split', () => {
  const dir = tempDir();
  const cli = join(repoRoot, 'dist/src/cli/main.js');
  const run = (...args: string[]) => spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8' });
  const wiki = join(repoRoot, 'test/fixtures/data/wikitext/wiki.test.raw'); // stands in for a validation file here
  const out = join(dir, 'null.json');
  const ok = run('calibrate', '--model', gutenbergDir, '--task', 'wikitext', '--split', 'validation', '--data', wiki, '--tokens', '256', '--points', '64', '--out', out);
  assert.equal(ok.status, 0, ok.stderr);
  const meta = readNullModel(out).meta as { data: Record<string, unknown> };
  assert.equal(meta.data.task, 'wikitext');
  assert.equal(meta.data.split, 'validation');
  assert.match(String(meta.data.fingerprint), /^[0-9a-f]{64}$/);

  const refused = run('calibrate', '--model', gutenbergDir, '--task', 'wikitext', '--split', 'test', '--data', wiki, '--out', join(dir, 'x.json'));
  assert.equal(refused.status, 2);
  assert.match(refused.stderr, /test is the split wikitext evaluates/);

  const onTest = join(dir, 'on-test.json');
  const parsed = JSON.parse(readFileSync(out, 'utf8'));
  writeFileSync(onTest, JSON.stringify({ ...parsed, meta: { ...parsed.meta, data: { ...parsed.meta.data, split: 'test' } } }));
  const spec = join(dir, 'sweep.yaml');
  writeFileSync(spec, 'tasks: [wikitext]\nbh: { max_k: [4], alpha: [0.5] }\nlimit: 1\nmax_length: 64\n');
  const sweep = run('sweep', '--model', gutenbergDir, '--data-dir', join(repoRoot, 'data'), '--out', join(dir, 'run'), '--spec', spec, '--null', onTest);
  assert.equal(sweep.status, 2);
  assert.match(sweep.stderr, /calibrated on wikitext test, the documents this sweep evaluates/);
});
