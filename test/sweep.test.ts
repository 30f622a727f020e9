import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { cpSync, existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { parquetReadObjects } from 'hyparquet';
import { RoutelabError } from '../src/errors.js';
import { readCustomSpec } from '../src/sweep/spec.js';
import { gutenbergDir, repoRoot, tempDir } from './helpers.js';

const cli = join(repoRoot, 'dist/src/cli/main.js');
const dataDir = join(repoRoot, 'data');

function routelab(...args: string[]) {
  return spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8' });
}

function writeSpec(body: string): string {
  const file = join(tempDir(), 'sweep.yaml');
  writeFileSync(file, body);
  return file;
}

const SMALL_SPEC = `
tasks: [lambada_openai, hellaswag]
baselines: [8, 2]
bh: { max_k: [8], alpha: [0.5] }
limit: 3
calibration: { tokens: 512 }
bootstrap_resamples: 200
`;

test('custom sweep specs are validated with every problem named by its path', () => {
  const cases: [string, RegExp][] = [
    ['tasks: [wikitext]\nbaselines: [8]\ncolour: red\n', /Unrecognized key.*colour/],
    ['tasks: [wikitext, squad]\nbaselines: [8]\n', /tasks\.1/],
    ['tasks: [wikitext]\nbh: { max_k: [8], alpha: [1.5] }\n', /bh\.alpha\.0/],
    ['tasks: [wikitext]\nbaselines: [0]\n', /baselines\.0/],
    ['tasks: [wikitext]\n', /no configurations/],
    ['tasks: [wikitext\n', /cannot read the sweep spec/],
  ];
  for (const [body, pattern] of cases) {
    assert.throws(() => readCustomSpec(writeSpec(body)), (e: unknown) => e instanceof RoutelabError && pattern.test(e.message), body);
  }
  const spec = readCustomSpec(writeSpec(SMALL_SPEC));
  assert.deepEqual(spec.routers, ['topk:k=8', 'topk:k=2', 'bh:alpha=0.5,max_k=8,min_k=1']);
  assert.deepEqual(spec.tasks, [{ name: 'lambada_openai', explicit: true }, { name: 'hellaswag', explicit: true }]);
});

test('a sweep evaluates every configuration × task on the same documents, writes results, and resumes', async () => {
  const run = join(tempDir(), 'run');
  const spec = writeSpec(SMALL_SPEC);
  const first = routelab('sweep', '--model', gutenbergDir, '--data-dir', dataDir, '--out', run, '--spec', spec);
  assert.equal(first.status, 0, first.stderr);
  assert.match(first.stderr, /6 cells \(6 evaluated, 0 already complete\)/);
  const configs = ['8experts_topk_baseline', '2experts_topk_baseline', '8experts_bh_a050'];
  for (const c of configs) for (const t of ['lambada_openai', 'hellaswag']) {
    assert.ok(existsSync(join(run, `${c}_${t}.json`)), `${c}_${t}.json`);
    assert.ok(existsSync(join(run, `${c}_${t}_routing.parquet`)));
  }
  const rows = JSON.parse(readFileSync(join(run, 'results.json'), 'utf8'));
  assert.equal(rows.length, 6);
  for (const t of ['lambada_openai', 'hellaswag']) {
    const fingerprints = new Set(rows.filter((r: { task: string }) => r.task === t).map((r: { data_fingerprint: string }) => r.data_fingerprint));
    assert.equal(fingerprints.size, 1, `${t}: one document set for every configuration`);
  }
  const bh = JSON.parse(readFileSync(join(run, '8experts_bh_a050_hellaswag.json'), 'utf8'));
  assert.equal(bh.significance.baseline, '8experts_topk_baseline');
  for (const m of ['acc', 'acc_norm']) {
    const s = bh.significance.metrics[m];
    assert.ok(s.low <= s.delta && s.delta <= s.high, m);
    assert.equal(s.resamples, 200);
  }
  assert.equal(typeof bh.avg_task_accuracy, 'number');
  const parquet = await parquetReadObjects({ file: new Uint8Array(readFileSync(join(run, 'results.parquet'))).buffer });
  assert.equal(parquet.length, 6);
  assert.equal(readFileSync(join(run, 'results.csv'), 'utf8').trim().split('\n').length, 7);
  const manifest = JSON.parse(readFileSync(join(run, 'manifest.json'), 'utf8'));
  assert.equal(manifest.cells.total, 6);
  assert.ok(manifest.null_model.sha256 && existsSync(join(run, 'null.json')));
  assert.match(manifest.model.fingerprint, /^[0-9a-f]{64}$/);

  const again = routelab('sweep', '--model', gutenbergDir, '--data-dir', dataDir, '--out', run, '--spec', spec);
  assert.equal(again.status, 0, again.stderr);
  assert.match(again.stderr, /6 cells \(0 evaluated, 6 already complete\)/);
});

test('a sweep killed with SIGKILL mid-run leaves only complete cells, and the same command finishes the rest', async () => {
  const run = join(tempDir(), 'run');
  const spec = writeSpec(SMALL_SPEC.replace('limit: 3', 'limit: 6'));
  const args = [cli, 'sweep', '--model', gutenbergDir, '--data-dir', dataDir, '--out', run, '--spec', spec];
  const child = spawn(process.execPath, args, { stdio: 'ignore' });
  const summaries = () => (existsSync(run) ? readdirSync(run).filter((f) => /_(lambada_openai|hellaswag)\.json$/.test(f)) : []);
  const deadline = Date.now() + 120_000;
  while (summaries().length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 25));
  child.kill('SIGKILL');
  await new Promise((r) => child.once('exit', r));
  const done = summaries();
  assert.ok(done.length >= 2 && done.length < 6, `killed after ${done.length} cells`);
  for (const f of done) JSON.parse(readFileSync(join(run, f), 'utf8')); // every summary on disk is whole
  assert.ok(!existsSync(join(run, 'results.json')));

  const rest = routelab('sweep', '--model', gutenbergDir, '--data-dir', dataDir, '--out', run, '--spec', spec);
  assert.equal(rest.status, 0, rest.stderr);
  const [, evaluated, resumed] = /6 cells \((\d+) evaluated, (\d+) already complete\)/.exec(rest.stderr)!.map(Number);
  assert.equal(evaluated + resumed, 6);
  assert.equal(resumed, done.length, 'every cell written before the kill is trusted, and only those');
  assert.equal(JSON.parse(readFileSync(join(run, 'results.json'), 'utf8')).length, 6);
  assert.deepEqual(readdirSync(run).filter((f) => f.endsWith('.tmp')), []);
});

test('a default task without data is skipped; a task named explicitly without data stops the sweep first', () => {
  const partial = join(tempDir(), 'data');
  cpSync(dataDir, partial, { recursive: true });
  for (const d of ['hellaswag', 'wikitext-2-raw-v1']) rmSync(join(partial, d), { recursive: true });
  const run = join(tempDir(), 'run');
  const quick = routelab('sweep', '--model', gutenbergDir, '--data-dir', partial, '--out', run, '--mode', 'quick', '--limit', '2',
    '--null', join(run, '..', 'no-bh.json'), '--tasks', 'hellaswag');
  assert.equal(quick.status, 2);
  assert.match(quick.stderr, /no data for hellaswag/);
  assert.equal(existsSync(run), false, 'nothing written before the error');

  const spec = writeSpec('tasks: [lambada_openai]\nbaselines: [4]\nlimit: 2\n');
  const ok = routelab('sweep', '--model', gutenbergDir, '--data-dir', partial, '--out', run, '--spec', spec);
  assert.equal(ok.status, 0, ok.stderr);
  const defaults = routelab('sweep', '--model', gutenbergDir, '--data-dir', partial, '--out', join(run, 'q'), '--mode', 'quick', '--limit', '2');
  assert.equal(defaults.status, 0, defaults.stderr);
  assert.match(defaults.stderr, /no data for wikitext .*skipping it/);
  assert.match(defaults.stderr, /skipped tasks without data: wikitext, hellaswag/);
});

test('progress: a live bar with tokens/s and ETA on a terminal, plain lines elsewhere, nothing when quiet', async () => {
  const { createProgress } = await import('../src/sweep/progress.js');
  const capture = (isTTY: boolean) => {
    const out: string[] = [];
    const stream = { isTTY, columns: 140, write: (s: string) => out.push(s) } as unknown as NodeJS.WriteStream;
    return { out, stream };
  };
  const tty = capture(true);
  const p = createProgress(tty.stream, false);
  p.startCell(1, 4, '8experts_topk_baseline_wikitext');
  p.update(5, 10, 2, 3000);
  p.endCell('word_perplexity 12.3');
  const live = tty.out.join('');
  assert.match(live, /sweep \[####\.{6}\] 2\/4 8experts_topk_baseline_wikitext \[#+\.+\] 5\/10 units 1500 tokens\/s ETA 0:02/);
  assert.match(live, /\[2\/4\] 8experts_topk_baseline_wikitext: word_perplexity 12\.3\n/);
  const plain = capture(false);
  const q = createProgress(plain.stream, false);
  q.startCell(0, 2, 'a');
  q.update(1, 2, 1, 10);
  q.endCell('done');
  assert.deepEqual(plain.out, ['sweep: [1/2] a …\n', 'sweep: [1/2] a: done\n']);
  const quiet = capture(true);
  const r = createProgress(quiet.stream, true);
  r.startCell(0, 1, 'a');
  r.update(1, 1, 1, 1);
  r.endCell('x');
  r.log('y');
  assert.deepEqual(quiet.out, []);
});
