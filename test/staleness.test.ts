/**
 * A stored cell is current only while everything it was computed from is unchanged and its files are intact: changed
 * model weights (same shapes), changed calibration text, a damaged trace and a hand-edited summary each make exactly
 * the affected cells be redone, with the reason said. Model shards are hashed once and then cached by size + mtime.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, readdirSync, readFileSync, statSync, truncateSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { cachedFileSha256, fileSha256, hashCacheFile } from '../src/file-hash.js';
import { codeTreeSha256 } from '../src/sweep/identity.js';
import { gutenbergDir, repoRoot, tempDir } from './helpers.js';

const cli = join(repoRoot, 'dist/src/cli/main.js');

/** A private hash cache per test run, so the developer's ~/.cache is neither read nor written. */
const cacheDir = tempDir('routelab-cache-');
const env = { ...process.env, ROUTELAB_CACHE: cacheDir };
const routelab = (...args: string[]) => spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', env });

/** A small sweep: two baselines and one bh cell (with its controls off) on held-out prose, traced. */
function setUp() {
  const dir = tempDir();
  const model = join(dir, 'model');
  cpSync(gutenbergDir, model, { recursive: true });
  const calibration = join(dir, 'calibration');
  mkdirSync(calibration);
  const prose = readFileSync(join(repoRoot, 'data/train-text', readdirSync(join(repoRoot, 'data/train-text'))[0]), 'utf8');
  writeFileSync(join(calibration, 'a.txt'), prose.slice(0, 60_000));
  const spec = join(dir, 'sweep.yaml');
  writeFileSync(spec, `tasks: [text]\nbaselines: [8, 4]\nbh: { max_k: [8], alpha: [0.5] }\ncontrols: none\nlimit: 2\nmax_length: 128\n` +
    `bootstrap_resamples: 50\ntrace: full\ncalibration: { data: ${JSON.stringify(calibration)}, tokens: 1024 }\n`);
  const run = join(dir, 'run');
  const sweep = () => routelab('sweep', '--model', model, '--data-dir', join(repoRoot, 'data'), '--out', run, '--spec', spec);
  const first = sweep();
  assert.equal(first.status, 0, first.stderr);
  assert.match(first.stderr, /3 cells \(3 evaluated, 0 already complete\)/);
  return { model, calibration, run, sweep };
}

const cells = (run: string) => readdirSync(run).filter((f) => f.endsWith('_text.json')).sort();

test('changed weights (same shapes and size) redo every cell; changed calibration text recalibrates and redoes only the bh cell', () => {
  const { model, calibration, run, sweep } = setUp();
  assert.equal(cells(run).length, 3);
  const resumed = sweep();
  assert.match(resumed.stderr, /3 cells \(0 evaluated, 3 already complete\)/, 'an unchanged run resumes whole');

  // Flip bits of one byte of the last tensor's data: same header, shapes and file size.
  const weights = join(model, 'model.safetensors');
  const bytes = readFileSync(weights);
  bytes[bytes.length - 3] ^= 0x5a;
  writeFileSync(weights, bytes);
  const afterWeights = sweep();
  assert.equal(afterWeights.status, 0, afterWeights.stderr);
  assert.match(afterWeights.stderr, /redoing 2 cells \(model weights or tokenizer changed\): 8experts_topk_baseline_text, 4experts_topk_baseline_text/);
  assert.match(afterWeights.stderr, /redoing 1 cell \(router or its null model changed; model weights or tokenizer changed\): 8experts_bh_a050_text/);
  assert.match(afterWeights.stderr, /recalibrating .*null\.json: the model, the calibration text or the calibration settings changed/);
  assert.match(afterWeights.stderr, /3 cells \(3 evaluated, 0 already complete\)/);

  writeFileSync(join(calibration, 'a.txt'), readFileSync(join(calibration, 'a.txt'), 'utf8').replace(/the/g, 'a'));
  const afterText = sweep();
  assert.equal(afterText.status, 0, afterText.stderr);
  assert.match(afterText.stderr, /recalibrating .*null\.json/);
  assert.match(afterText.stderr, /redoing 1 cell \(router or its null model changed\): 8experts_bh_a050/);
  assert.match(afterText.stderr, /3 cells \(1 evaluated, 2 already complete\)/);
});

test('a truncated trace and a hand-edited summary are noticed, and only those cells redone', () => {
  const { run, sweep } = setUp();
  const [first, second] = cells(run);
  const trace = join(run, first.replace('.json', '_routing.parquet'));
  truncateSync(trace, Math.floor(statSync(trace).size / 2));
  const summaryFile = join(run, second);
  const summary = JSON.parse(readFileSync(summaryFile, 'utf8'));
  summary.metrics.word_perplexity *= 0.5;
  writeFileSync(summaryFile, JSON.stringify(summary, null, 2));
  const again = sweep();
  assert.equal(again.status, 0, again.stderr);
  assert.match(again.stderr, new RegExp(`redoing 1 cell \\(trace damaged \\(its hash differs from the one its summary recorded\\)\\): ${first.replace('.json', '')}`));
  assert.match(again.stderr, new RegExp(`redoing 1 cell \\(summary edited or damaged[^)]*\\)\\): ${second.replace('.json', '')}`));
  assert.match(again.stderr, /3 cells \(2 evaluated, 1 already complete\)/);
  assert.notEqual(JSON.parse(readFileSync(summaryFile, 'utf8')).metrics.word_perplexity, summary.metrics.word_perplexity, 'the edited metric was recomputed');
});

test('a file is hashed once and then taken from the cache while its size, mtime and inode are unchanged', () => {
  const previous = process.env.ROUTELAB_CACHE;
  process.env.ROUTELAB_CACHE = tempDir('routelab-cache-');
  try {
    const file = join(tempDir(), 'weights.bin');
    writeFileSync(file, 'abc');
    const digest = cachedFileSha256(file);
    assert.equal(digest, 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad'); // sha256("abc")
    // Plant a different digest for the same size + mtime + inode: the cache, not the file, answers.
    const cache = JSON.parse(readFileSync(hashCacheFile(), 'utf8'));
    const key = Object.keys(cache)[0];
    cache[key].sha256 = 'planted';
    writeFileSync(hashCacheFile(), JSON.stringify(cache));
    assert.equal(cachedFileSha256(file), 'planted');
    // A write changes the mtime: hashed again.
    writeFileSync(file, 'abd');
    const later = new Date(Date.now() + 5000);
    utimesSync(file, later, later);
    assert.equal(cachedFileSha256(file), fileSha256(file));
    assert.notEqual(cachedFileSha256(file), 'planted');
  } finally {
    if (previous === undefined) delete process.env.ROUTELAB_CACHE;
    else process.env.ROUTELAB_CACHE = previous;
  }
});

test('the code identity covers the computing modules and the native binary, not the presentation folders or declarations', () => {
  const root = join(tempDir(), 'dist-src');
  const files: Record<string, string> = {
    'model/model.js': 'forward();', 'routers/bh.js': 'route();', 'report/report.js': 'render();', 'dashboard/page.js': 'page();',
    'version.js': 'v();', 'model/model.d.ts': 'declare', 'model/model.js.map': '{}',
  };
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(join(root, path, '..'), { recursive: true });
    writeFileSync(join(root, path), text);
  }
  const addon = join(root, '..', 'kernels.node');
  writeFileSync(addon, 'binary');
  const base = codeTreeSha256(root, addon);
  const changed = (path: string, text: string) => {
    const before = readFileSync(path);
    writeFileSync(path, text);
    const after = codeTreeSha256(root, addon);
    writeFileSync(path, before);
    return after !== base;
  };
  assert.equal(changed(join(root, 'report/report.js'), 'render(2);'), false, 'reports do not compute cells');
  assert.equal(changed(join(root, 'dashboard/page.js'), 'page(2);'), false);
  assert.equal(changed(join(root, 'model/model.d.ts'), 'declare 2'), false, 'declarations are not code');
  assert.equal(changed(join(root, 'model/model.js'), 'forward(2);'), true, 'the forward pass computes cells');
  assert.equal(changed(join(root, 'routers/bh.js'), 'route(2);'), true);
  assert.equal(changed(addon, 'binary 2'), true, 'the native kernels compute cells');
  // A report folder below the top is not a presentation folder.
  mkdirSync(join(root, 'model/report'));
  writeFileSync(join(root, 'model/report/x.js'), 'x();');
  assert.notEqual(codeTreeSha256(root, addon), base);
  assert.equal(codeTreeSha256(root, addon), codeTreeSha256(root, addon), 'stable');
  assert.notEqual(codeTreeSha256(root, null), codeTreeSha256(root, addon));
});
