import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fitNullModel } from '../src/calibrate/calibrate.js';
import { ksCritical95 } from '../src/calibrate/ks.js';
import { DEFAULT_MAX_COMPONENTS } from '../src/calibrate/gmm.js';
import { RoutelabError } from '../src/errors.js';
import { erfc, kdeCdfGrid, normalCdf } from '../src/calibrate/kde.js';
import { createRandom } from '../src/sampling.js';
import { specDifferences } from '../src/sweep/design.js';
import { readCustomSpec } from '../src/sweep/spec.js';
import { NULL_ESTIMATORS, NULL_MODEL_FORMAT, parseNullModel, readNullModel } from '../src/routers/null-model.js';
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
  assert.equal(parsed.estimator, 'kde');
  assert.ok(parsed.layers.every((l) => l.params && 'bandwidth' in l.params && l.params.bandwidth > 0 && l.experts!.every((g) => g.params && 'bandwidth' in g.params)));
});

test('each estimator writes its name, every grid\'s parameters and a held-out KS per layer; kde grids are the plain KDE of all tokens', () => {
  const random = createRandom(3);
  const E = 4;
  const tokens = 200;
  const logits = [0, 1].map(() => Float32Array.from({ length: tokens * E }, () => random() * 4 - 2));
  for (const estimator of NULL_ESTIMATORS) {
    const file = fitNullModel(logits, E, { perExpert: true, points: 64, meta: {}, estimator, maxComponents: 2 });
    const parsed = parseNullModel(JSON.parse(JSON.stringify(file)), 'null.json', { numLayers: 2, numExperts: E });
    assert.equal(parsed.estimator, estimator);
    assert.equal(parsed.meta.heldout_tokens, 20);
    for (const layer of parsed.layers) {
      assert.ok(layer.ks! > 0 && layer.ks! < 0.2, `${estimator}: ks = ${layer.ks}`);
      assert.ok(layer.params && layer.experts!.every((g) => g.params), estimator);
    }
    if (estimator === 'gmm') assert.equal(parsed.meta.max_components, 2);
  }
  const kde = fitNullModel(logits, E, { perExpert: false, points: 64, meta: {} });
  assert.deepEqual(kde.layers[1].x, Array.from(kdeCdfGrid(logits[1], 64).x));
  assert.deepEqual(kde.layers[1].cdf, Array.from(kdeCdfGrid(logits[1], 64).cdf));
});

test('the held-out tokens are t mod 10 = 9: shifting only their logits drives the KS distance to 1', () => {
  const random = createRandom(4);
  const E = 2;
  const logits = Float32Array.from({ length: 100 * E }, (_, i) => random() + (Math.floor(i / E) % 10 === 9 ? 50 : 0));
  const shifted = fitNullModel([logits], E, { perExpert: false, points: 64, meta: {}, estimator: 'empirical' });
  assert.ok(shifted.layers[0].ks! > 0.99, `ks = ${shifted.layers[0].ks}`);
  const onTokenZero = Float32Array.from({ length: 100 * E }, (_, i) => random() + (Math.floor(i / E) % 10 === 0 ? 50 : 0));
  assert.ok(fitNullModel([onTokenZero], E, { perExpert: false, points: 64, meta: {}, estimator: 'empirical' }).layers[0].ks! < 0.5);
});

test('per-expert KS: a pooled null that fits the layer still shows the expert whose logits sit apart; its own null fits it', () => {
  // 8 experts of standard normal logits, expert 5 shifted by +1.5: the pooled null is their mixture.
  const random = createRandom(11);
  const gauss = () => Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
  const E = 8, T = 4000;
  const logits = Float32Array.from({ length: T * E }, (_, i) => gauss() + (i % E === 5 ? 1.5 : 0));
  const pooled = fitNullModel([logits], E, { perExpert: false, points: 256, meta: {} }).layers[0];
  const critical = ksCritical95(T / 10);
  assert.equal(pooled.ks_experts!.length, E);
  const worst = pooled.ks_experts!.indexOf(Math.max(...pooled.ks_experts!));
  assert.equal(worst, 5, `the shifted expert is the worst: ${pooled.ks_experts}`);
  assert.ok(pooled.ks_experts![5] > 0.4, `${pooled.ks_experts![5]}`);
  // The others sit a little below the mixture (it leans towards expert 5), which 400 held-out tokens can also see.
  assert.ok(pooled.ks_experts!.filter((_, e) => e !== 5).every((d) => d < 0.15), `${pooled.ks_experts}`);
  // Per-expert nulls: each expert's held-out logits against its own null, all at the level of sampling noise.
  const own = fitNullModel([logits], E, { perExpert: true, points: 256, meta: {} }).layers[0];
  assert.ok(own.ks_experts!.every((d) => d < 2 * critical), `${own.ks_experts} vs critical ${critical}`);
  // The file reads back with the distances, and a wrong count is refused.
  const file = fitNullModel([logits], E, { perExpert: false, points: 64, meta: {} });
  assert.deepEqual(parseNullModel(file, 'null.json', { numLayers: 1, numExperts: E }).layers[0].ksExperts, file.layers[0].ks_experts);
  assert.throws(() => parseNullModel({ ...file, layers: [{ ...file.layers[0], ks_experts: [0.1, 0.2] }] }, 'null.json', { numLayers: 1, numExperts: E }),
    /null\.json: layers\[0\]\.ks_experts: expected 8 KS distances in \[0, 1\], one per expert/);
});

test('null files: the estimator and its parameters are validated by name; a file without them reads as kde', () => {
  const grid = { x: [0, 1], cdf: [0, 1] };
  const rejects = (content: unknown, where: string, pattern: RegExp) =>
    assert.throws(() => parseNullModel(content, 'null.json'), (e: unknown) => e instanceof RoutelabError && e.where === where && pattern.test(e.message), where);
  const base = { format: NULL_MODEL_FORMAT, meta: {} };
  rejects({ ...base, estimator: 'gauss', layers: [grid] }, 'null.json: estimator', /unknown estimator "gauss"; expected one of kde, gmm, student-t, empirical/);
  rejects({ ...base, estimator: 3, layers: [grid] }, 'null.json: estimator', /unknown estimator 3/);
  rejects({ ...base, estimator: 'gmm', layers: [grid] }, 'null.json: layers[0].params', /expected the gmm parameters \{weights, means, sigmas, bic\}/);
  rejects({ ...base, estimator: 'student-t', layers: [{ ...grid, params: { nu: -1, mu: 0, sigma: 1 } }] }, 'null.json: layers[0].params.nu', /expected a positive number/);
  rejects({ ...base, estimator: 'student-t', layers: [{ ...grid, params: { nu: 4, mu: 0, sigma: 1, df: 4 } }] }, 'null.json: layers[0].params.df', /not a student-t parameter/);
  const gmm = { weights: [0.5, 0.5], means: [0, 1], sigmas: [1, 1], bic: [10, 9] };
  rejects({ ...base, estimator: 'gmm', layers: [{ ...grid, params: { ...gmm, means: [0] } }] }, 'null.json: layers[0].params', /as many means and sigmas as weights \(2\)/);
  rejects({ ...base, estimator: 'gmm', layers: [{ ...grid, params: gmm, experts: [grid] }] }, 'null.json: layers[0].experts[0].params', /gmm parameters/);
  rejects({ ...base, estimator: 'empirical', layers: [{ ...grid, params: { n: 9 }, ks: 1.5 }] }, 'null.json: layers[0].ks', /KS distance in \[0, 1\], got 1.5/);
  const good = parseNullModel({ ...base, estimator: 'gmm', layers: [{ ...grid, params: gmm, ks: 0.01 }] }, 'null.json');
  assert.deepEqual([good.estimator, good.layers[0].params, good.layers[0].ks], ['gmm', gmm, 0.01]);
  // Files from before the field: a KDE whose pooled bandwidths sit in meta.
  const old = parseNullModel({ format: NULL_MODEL_FORMAT, layers: [grid, grid], meta: { bandwidths: [0.2, 0.3] } }, 'null.json');
  assert.equal(old.estimator, 'kde');
  assert.deepEqual(old.layers.map((l) => l.params), [{ bandwidth: 0.2 }, { bandwidth: 0.3 }]);
  assert.deepEqual(parseNullModel({ format: NULL_MODEL_FORMAT, layers: [grid] }, 'null.json').layers[0], { x: Float64Array.of(0, 1), cdf: Float64Array.of(0, 1) });
  const file = join(tempDir(), 'corrupt.json');
  writeFileSync(file, JSON.stringify({ ...base, estimator: 'gauss', layers: [grid] }));
  assert.throws(() => readNullModel(file), (e: unknown) => e instanceof RoutelabError && e.where === `${file}: estimator`);
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

test('calibrate --estimator gmm on the bundled model: --show reports the fit and KS, and bh evaluates with it end to end', () => {
  const dir = tempDir();
  const out = join(dir, 'gmm.json');
  const cli = join(repoRoot, 'dist/src/cli/main.js');
  const run = (...args: string[]) => spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8' });
  const train = join(repoRoot, 'data/train-text');
  const r = run('calibrate', '--model', gutenbergDir, '--data', train, '--tokens', '400', '--seq-len', '200', '--estimator', 'gmm', '--max-components', '3', '--out', out, '--quiet');
  assert.equal(r.status, 0, r.stderr);
  const nullModel = readNullModel(out, { numLayers: 4, numExperts: 64 });
  assert.equal(nullModel.estimator, 'gmm');
  assert.equal(nullModel.meta.heldout_tokens, 40);
  assert.match(r.stdout, /4 layers, 512 grid points, estimator gmm[\s\S]*KS   KS worst which   > crit  fit\n\s+0 .* e\d+ +\d+\/64  K=\d: /);
  assert.match(r.stdout, /> crit: experts above 0\.2147, the distance 40 independent samples of a correct null exceed 5% of the time/);
  const shown = JSON.parse(run('calibrate', '--show', out, '--json').stdout);
  assert.equal(shown.estimator, 'gmm');
  assert.equal(shown.ks_critical_95, 1.3581 / Math.sqrt(40));
  for (const layer of shown.layers) {
    assert.ok(layer.ks > 0 && layer.ks < 0.2, `ks = ${layer.ks}`);
    assert.equal(layer.ks_experts.length, 64);
    assert.equal(layer.ks_experts_max, Math.max(...layer.ks_experts));
    assert.equal(layer.ks_experts[layer.ks_experts_worst], layer.ks_experts_max);
    assert.equal(layer.ks_experts_above_critical, layer.ks_experts.filter((d: number) => d > shown.ks_critical_95).length);
    assert.ok(layer.params.weights.length >= 1 && layer.params.weights.length <= 3);
    assert.equal(layer.bandwidth, null);
  }

  const evalDir = join(dir, 'eval');
  const heldout = join(repoRoot, 'data/gutenberg-heldout');
  const ev = run('eval', '--model', gutenbergDir, '--task', 'text', '--data', heldout, '--limit', '1', '--max-length', '64', '--trace', 'off',
    '--router', `bh:alpha=0.3,max_k=16,null=${out}`, '--out', evalDir, '--json', '--quiet');
  assert.equal(ev.status, 0, ev.stderr);
  const { routing } = JSON.parse(ev.stdout);
  assert.ok(routing.avg_experts >= 1 && routing.avg_experts <= 16 && routing.std_experts > 0, JSON.stringify(routing));

  const unknown = run('calibrate', '--model', gutenbergDir, '--data', train, '--estimator', 'gauss', '--out', join(dir, 'x.json'));
  assert.equal(unknown.status, 2);
  assert.match(unknown.stderr, /--estimator: unknown estimator "gauss"; expected one of kde, gmm, student-t, empirical/);
  const misplaced = run('calibrate', '--model', gutenbergDir, '--data', train, '--estimator', 'student-t', '--max-components', '2', '--out', join(dir, 'x.json'));
  assert.equal(misplaced.status, 2);
  assert.match(misplaced.stderr, /--max-components: applies to --estimator gmm only \(here student-t\)/);
  writeFileSync(join(dir, 'corrupt.json'), readFileSync(out, 'utf8').replace('"estimator":"gmm"', '"estimator":"gaussian"'));
  const corrupt = run('calibrate', '--show', join(dir, 'corrupt.json'));
  assert.equal(corrupt.status, 2);
  assert.match(corrupt.stderr, /corrupt\.json: estimator: unknown estimator "gaussian"/);
});

test('a sweep spec calibrates with its estimator; a run recorded before the field compares as kde', () => {
  const dir = tempDir();
  const spec = (body: string) => {
    const file = join(dir, 'spec.yaml');
    writeFileSync(file, `tasks: [text]\nbh: { max_k: [4], alpha: [0.5] }\n${body}`);
    return readCustomSpec(file);
  };
  assert.deepEqual(spec('').calibration, { data: null, tokens: 16384, perExpert: false, estimator: 'kde', maxComponents: null });
  assert.deepEqual(spec('calibration: { estimator: gmm }\n').calibration.maxComponents, DEFAULT_MAX_COMPONENTS);
  assert.deepEqual(spec('calibration: { estimator: gmm, max_components: 2 }\n').calibration.maxComponents, 2);
  assert.throws(() => spec('calibration: { estimator: student-t, max_components: 2 }\n'), /calibration\.max_components: max_components applies to estimator gmm only/);
  assert.throws(() => spec('calibration: { estimator: gauss }\n'), /calibration\.estimator: .*"kde"/);
  const kde = spec('calibration: { tokens: 256 }\n');
  const before = { ...kde, calibration: { data: null, tokens: 256, perExpert: false } };
  assert.deepEqual(specDifferences(before, kde), []);
  assert.match(specDifferences(before, spec('calibration: { tokens: 256, estimator: empirical }\n')).join(), /calibration: .*"kde".* before, .*"empirical".* now/);

  // End to end: the run's null is a gmm, and bh cells are keyed by its content (manifest.json records its hash).
  const runDir = join(dir, 'run');
  writeFileSync(join(dir, 'gmm.yaml'), 'tasks: [text]\nbh: { max_k: [4], alpha: [0.5] }\nlimit: 1\nmax_length: 64\ncalibration: { tokens: 256, estimator: gmm, max_components: 2 }\n');
  const cli = join(repoRoot, 'dist/src/cli/main.js');
  const sweep = spawnSync(process.execPath, [cli, 'sweep', '--model', gutenbergDir, '--data-dir', join(repoRoot, 'data'), '--out', runDir, '--spec', join(dir, 'gmm.yaml'), '--quiet'], { encoding: 'utf8' });
  assert.equal(sweep.status, 0, sweep.stderr);
  const nullFile = join(runDir, 'null.json');
  assert.equal(readNullModel(nullFile).estimator, 'gmm');
  assert.equal(readNullModel(nullFile).meta.max_components, 2);
  const manifest = JSON.parse(readFileSync(join(runDir, 'manifest.json'), 'utf8'));
  assert.equal(manifest.null_model.sha256, createHash('sha256').update(readFileSync(nullFile)).digest('hex'));
});
