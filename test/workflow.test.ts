/**
 * The daily loop's rough edges (issue 16): scripting with --json, typos in flags, commands, model paths and spec task
 * names, a sweep re-run with another design, calibration progress in logs, the start-up benchmark, and the report's
 * folder permissions and fixed-k rows.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { RoutelabError } from '../src/errors.js';
import { resolveModelPath } from '../src/model/checkpoint.js';
import { readCustomSpec } from '../src/sweep/spec.js';
import { TASK_NAMES } from '../src/tasks/registry.js';
import { gutenbergDir, repoRoot, tempDir } from './helpers.js';

const cli = join(repoRoot, 'dist/src/cli/main.js');
const dataDir = join(repoRoot, 'data');

function routelab(args: string[], env: Record<string, string> = {}, cwd = repoRoot) {
  return spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', cwd, env: { ...process.env, HF_HUB_OFFLINE: '1', ...env } });
}

function writeSpec(body: string): string {
  const file = join(tempDir(), 'sweep.yaml');
  writeFileSync(file, body);
  return file;
}

/** A fixed-k baseline and an adaptive top-p configuration on two LAMBADA documents: seconds. */
const SPEC = `
tasks: [lambada_openai]
baselines: [2]
routers: ["topp:p=0.2,max_k=8"]
limit: 2
max_length: 32
bootstrap_resamples: 50
`;

test('a mistyped flag or command gets the nearest one suggested, not the whole usage', () => {
  const flag = routelab(['eval', '--modle', gutenbergDir]);
  assert.equal(flag.status, 2);
  assert.match(flag.stderr, /^routelab: routelab eval: unknown option --modle; did you mean --model\? \(routelab eval --help lists every option\)\n$/);
  const far = routelab(['inspect', '--colour']);
  assert.match(far.stderr, /unknown option --colour; options: --router, .*--json/);
  assert.doesNotMatch(far.stderr, /Usage:/);
  const command = routelab(['sweeep']);
  assert.equal(command.status, 2);
  assert.match(command.stderr, /unknown command "sweeep"; did you mean sweep\? commands: forward, /);
});

test('a mistyped local model path is named as such, with no hub request; a hub id not cached is said so before the network is tried', async () => {
  const cache = tempDir();
  const r = routelab(['inspect', 'models/tiny-olmoe'], { HF_HUB_OFFLINE: '', HF_HUB_CACHE: cache });
  assert.equal(r.status, 2);
  assert.match(r.stderr, /models\/tiny-olmoe: no such directory \(did you mean models\/tiny-olmoe-gutenberg\?\), not in the Hugging Face cache \(.*\); it looks like a local path, so the hub is not asked/);
  assert.doesNotMatch(r.stderr, /ENOTFOUND|download/);
  for (const spec of ['./models/nope', '/no/such/model', 'a/b/c']) {
    assert.match(routelab(['inspect', spec], { HF_HUB_OFFLINE: '', HF_HUB_CACHE: cache }).stderr, /no such (model )?directory/, spec);
  }
  // A real repo id: the notice comes first, then the hub is asked.
  const events: string[] = [];
  const debug = console.debug;
  console.debug = (line: string) => events.push(`notice: ${line}`);
  const offline = process.env.HF_HUB_OFFLINE;
  delete process.env.HF_HUB_OFFLINE;
  try {
    const fetch = (async () => {
      events.push('fetch');
      throw new TypeError('fetch failed');
    }) as unknown as typeof globalThis.fetch;
    await assert.rejects(resolveModelPath('someorg/some-model', { cacheDir: cache, fetch }), /someorg\/some-model: no such directory, not in the Hugging Face cache .*, and the download failed/);
  } finally {
    console.debug = debug;
    if (offline !== undefined) process.env.HF_HUB_OFFLINE = offline;
  }
  assert.match(events[0], /^notice: routelab: someorg\/some-model: no such directory, not in the Hugging Face cache .*; trying the Hugging Face hub$/);
  assert.equal(events[1], 'fetch');
});

test('a bad task name in a sweep spec lists the valid names', () => {
  for (const body of ['tasks: [wikitext, wikitxt]\nbaselines: [8]\n', 'tasks: [{ name: wikitxt, data: x }]\nbaselines: [8]\n']) {
    assert.throws(() => readCustomSpec(writeSpec(body)), (e: unknown) => e instanceof RoutelabError &&
      new RegExp(`tasks\\.\\d: (name: )?unknown task "wikitxt"; valid tasks: ${TASK_NAMES.join(', ')}`).test(e.message), body);
  }
  assert.throws(() => readCustomSpec(writeSpec('tasks: [3]\nbaselines: [8]\n')), /tasks\.0: expected a task name \(wikitext, .*\) or \{ name: TASK, data: PATH \}/);
});

test('a sweep into a run of another design is refused with what differs; --force starts afresh; --json prints the outcome', () => {
  const run = join(tempDir(), 'run');
  const sweep = (spec: string, ...more: string[]) => routelab(['sweep', '--model', gutenbergDir, '--data-dir', dataDir, '--out', run, '--spec', spec, '--quiet', ...more]);
  const first = sweep(writeSpec(SPEC), '--json');
  assert.equal(first.status, 0, first.stderr);
  const outcome = JSON.parse(first.stdout);
  assert.deepEqual([outcome.cells, outcome.evaluated, outcome.resumed], [2, 2, 0]);
  assert.equal(outcome.results.length, 2);
  assert.equal(outcome.files.results_json, join(run, 'results.json'));

  const same = sweep(writeSpec(SPEC.replace('bootstrap_resamples: 50', 'bootstrap_resamples: 50\nbatch_size: 4')), '--json');
  assert.equal(same.status, 0, same.stderr);
  assert.equal(JSON.parse(same.stdout).resumed, 2, 'a batch size changes no result: the same design resumes');
  const manifest = readFileSync(join(run, 'manifest.json'), 'utf8');

  const changed = sweep(writeSpec(SPEC.replace('limit: 2', 'limit: 3').replace('baselines: [2]', 'baselines: [2, 4]')));
  assert.equal(changed.status, 2);
  assert.match(changed.stderr, /manifest\.json: holds a finished sweep of another design \(routers: adds topk:k=4; limit: 2 before, 3 now\); give another --out, or --force/);
  assert.equal(readFileSync(join(run, 'manifest.json'), 'utf8'), manifest, 'nothing of the old run touched');

  // Another model (here: the same weights under another config) is another design too.
  const variant = join(tempDir(), 'model');
  mkdirSync(variant);
  for (const f of ['model.safetensors', 'tokenizer.json', 'tokenizer_config.json']) symlinkSync(join(gutenbergDir, f), join(variant, f));
  writeFileSync(join(variant, 'config.json'), readFileSync(join(gutenbergDir, 'config.json'), 'utf8').replace('"rms_norm_eps": 1e-05', '"rms_norm_eps": 1.1e-05'));
  const other = routelab(['sweep', '--model', variant, '--data-dir', dataDir, '--out', run, '--spec', writeSpec(SPEC), '--quiet']);
  assert.equal(other.status, 2);
  assert.match(other.stderr, /another design \(model: .*tiny-olmoe-gutenberg \(fingerprint [0-9a-f]{12}…\) before, .*model now\)/);

  const forced = sweep(writeSpec(SPEC.replace('limit: 2', 'limit: 3')), '--force', '--json');
  assert.equal(forced.status, 0, forced.stderr);
  assert.equal(JSON.parse(forced.stdout).evaluated, 2);
  const rows = JSON.parse(readFileSync(join(run, 'results.json'), 'utf8'));
  assert.deepEqual(rows.map((r: { num_docs: number }) => r.num_docs), [3, 3]);
  assert.equal(JSON.parse(readFileSync(join(run, 'manifest.json'), 'utf8')).spec.limit, 3);
});

test('report: the usual folder permissions, and no floor/ceiling hit rates on fixed-k rows', () => {
  const run = join(tempDir(), 'run');
  const sweep = routelab(['sweep', '--model', gutenbergDir, '--data-dir', dataDir, '--out', run, '--spec', writeSpec(SPEC), '--quiet']);
  assert.equal(sweep.status, 0, sweep.stderr);
  const report = routelab(['report', run, '--format', 'md,html', '--quiet']);
  assert.equal(report.status, 0, report.stderr);
  const umask = process.umask();
  assert.equal(statSync(join(run, 'report')).mode & 0o777, 0o777 & ~umask, 'a folder like mkdir makes, not mkdtemp\'s 0700');
  assert.ok(!readdirSync(run).some((f) => f.startsWith('.report-')), 'no staging folder left');

  const md = readFileSync(join(run, 'report', 'report.md'), 'utf8');
  const lines = md.split('\n');
  const start = lines.findIndex((l) => l.startsWith('| Configuration | Task |'));
  const table = lines.slice(start, lines.findIndex((l, i) => i > start && !l.startsWith('|')));
  const cellsOf = (line: string) => line.replace(/^\| | \|$/g, '').split(' | ');
  const header = cellsOf(table[0]);
  const [floor, ceiling] = [header.findIndex((h) => h.startsWith('At floor')), header.findIndex((h) => h.startsWith('At ceiling'))];
  assert.ok(floor > 0 && ceiling > 0, table[0]);
  const row = (config: string) => cellsOf(table.find((l) => l.startsWith(`| ${config} `))!);
  assert.deepEqual([row('2experts_topk_baseline')[floor], row('2experts_topk_baseline')[ceiling]], ['–', '–']);
  assert.match(row('8experts_topp_p020')[floor], /^\d\.\d{3}$/);

  const html = readFileSync(join(run, 'report', 'report.html'), 'utf8');
  assert.match(html, /table\.results th:first-child, table\.results td:first-child \{ position: sticky; left: 0;/);
  assert.match(html, /<td title="topp:p=0\.2,min_k=1,max_k=8,weights=probs">8experts_topp_p020<\/td>/);
  assert.match(html, /<script type="application\/json" id="config-routers">\{"2experts_topk_baseline":"topk:k=2,renormalize=false",/);
});

test('--json: eval, profile, inspect and calibrate print one JSON object on stdout and their human text on stderr', () => {
  const out = tempDir();
  const evaluated = routelab(['eval', '--model', gutenbergDir, '--task', 'lambada_openai', '--data', join(dataDir, 'lambada_openai'), '--limit', '2',
    '--max-length', '32', '--router', 'topk:k=2', '--no-determinism', '--out', out, '--json']);
  assert.equal(evaluated.status, 0, evaluated.stderr);
  const summary = JSON.parse(evaluated.stdout);
  assert.equal(summary.format, 'routelab.eval/1');
  assert.equal(summary.files.summary, join(out, '2experts_topk_baseline_lambada_openai.json'));
  assert.deepEqual(summary.metrics, JSON.parse(readFileSync(summary.files.summary, 'utf8')).metrics);
  assert.match(evaluated.stderr, /eval: perplexity/);

  const profiled = routelab(['profile', '--model', gutenbergDir, '--seq', '8', '--batch', '1', '--warmup', '0', '--runs', '1', '--out', out, '--json']);
  assert.equal(profiled.status, 0, profiled.stderr);
  const profile = JSON.parse(profiled.stdout);
  assert.equal(profile.file, join(out, 'profile.json'));
  assert.equal(profile.latency_ms[0].seq_len, 8);
  assert.match(profiled.stderr, /seq +runs +mean/);

  const inspected = JSON.parse(routelab(['inspect', gutenbergDir, '--json']).stdout);
  assert.equal(inspected.family, 'olmoe');

  const nullFile = join(out, 'null.json');
  const calibrated = routelab(['calibrate', '--model', gutenbergDir, '--data', join(dataDir, 'train-text'), '--tokens', '256', '--seq-len', '64', '--points', '32', '--out', nullFile, '--json']);
  assert.equal(calibrated.status, 0, calibrated.stderr);
  const fitted = JSON.parse(calibrated.stdout);
  assert.equal(fitted.layers.length, 4);
  // Not a terminal: plain progress lines, never a carriage return.
  assert.doesNotMatch(calibrated.stderr, /\r/);
  assert.match(calibrated.stderr, /^calibrate: \[1\/1\] router logits of 4 MoE layers …\ncalibrate: \[1\/1\] router logits of 4 MoE layers: 256 tokens in [\d.]+ s\n/);
  const shown = routelab(['calibrate', '--show', nullFile, '--json']);
  assert.deepEqual(JSON.parse(shown.stdout), fitted);
  assert.equal(shown.stderr, '');
  assert.equal(fitted.layers[0].grid_points, 32);
  assert.ok(fitted.layers.every((l: { x_min: number; median: number; x_max: number }) => l.x_min < l.median && l.median < l.x_max));
  const quiet = routelab(['calibrate', '--model', gutenbergDir, '--data', join(dataDir, 'train-text'), '--tokens', '128', '--seq-len', '64', '--points', '32', '--out', nullFile, '--quiet']);
  assert.equal(quiet.status, 0, quiet.stderr);
  assert.equal(quiet.stderr, '');
  assert.match(quiet.stdout, /4 layers, 32 grid points/);
});

test('bench startup prints the start time of --version and eval --help (measured, not asserted)', () => {
  const r = routelab(['bench', 'startup', '--reps', '1']);
  assert.equal(r.status, 0, r.stderr);
  const result = JSON.parse(r.stdout.trim().split('\n').at(-1)!);
  assert.deepEqual(result.results.map((x: { command: string }) => x.command), ['node -e 0', 'routelab --version', 'routelab eval --help']);
  for (const x of result.results) assert.ok(x.p50_ms > 0);
  assert.match(r.stdout, /^command +runs +min ms +median ms/);
  assert.ok(existsSync(cli));
});
