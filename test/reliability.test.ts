/**
 * Faults end in one clear line: operating-system failures (read-only directory, a file where a directory belongs),
 * a sweep interrupted by a signal (and then resumed), and a report killed part-way (its staging folder is removed).
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { gutenbergDir, repoRoot, tempDir } from './helpers.js';

const cli = join(repoRoot, 'dist/src/cli/main.js');
const routelab = (...args: string[]) => spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8' });
const asRoot = process.getuid?.() === 0;

test('an --out under a file, or in a read-only directory, is one line naming the path, exit 2, no stack', () => {
  const dir = tempDir();
  writeFileSync(join(dir, 'ids.json'), '[[1, 2, 3]]');
  writeFileSync(join(dir, 'file'), 'not a directory');
  const underFile = routelab('forward', '--model', gutenbergDir, '--input', join(dir, 'ids.json'), '--out', join(dir, 'file', 'out.safetensors'));
  assert.equal(underFile.status, 2, underFile.stderr);
  assert.match(underFile.stderr, /^routelab: .*file[/\\]out\.safetensors: a part of this path is a file, not a directory \(ENOTDIR in open\)/m);
  assert.doesNotMatch(underFile.stderr, /\n\s+at /, 'no stack trace');
  const debug = spawnSync(process.execPath, [cli, 'forward', '--model', gutenbergDir, '--input', join(dir, 'ids.json'), '--out', join(dir, 'file', 'x.safetensors')],
    { encoding: 'utf8', env: { ...process.env, ROUTELAB_DEBUG: '1' } });
  assert.match(debug.stderr, /\n\s+at /, 'ROUTELAB_DEBUG=1 shows the stack');
});

test('a read-only output directory is one clear line (skipped as root, who may write anywhere)', { skip: asRoot && 'running as root' }, () => {
  const dir = tempDir();
  writeFileSync(join(dir, 'ids.json'), '[[1, 2, 3]]');
  mkdirSync(join(dir, 'locked'));
  chmodSync(join(dir, 'locked'), 0o555);
  const r = routelab('forward', '--model', gutenbergDir, '--input', join(dir, 'ids.json'), '--out', join(dir, 'locked', 'out.safetensors'));
  assert.equal(r.status, 2, r.stderr);
  assert.match(r.stderr, /locked[/\\]out\.safetensors: permission denied \(EACCES/);
});

test('SIGTERM mid-sweep says what was kept and how to resume; the rerun finishes without redoing finished cells', async () => {
  const dir = tempDir();
  const spec = join(dir, 'sweep.yaml');
  // Eight short cells: the signal is handled between batches, so it lands mid-sweep, just after the first cell.
  writeFileSync(spec, 'tasks: [wikitext]\nbaselines: [8, 4, 2, 1, 16, 32, 64, 3]\nlimit: 2\nmax_length: 256\nbootstrap_resamples: 50\n');
  const run = join(dir, 'run');
  const args = [cli, 'sweep', '--model', gutenbergDir, '--data-dir', join(repoRoot, 'data'), '--out', run, '--spec', spec];
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => { stderr += d; });
  // Wait for the first finished cell, then interrupt.
  while (!(existsSync(run) && readdirSync(run).some((f) => f.endsWith('_wikitext.json')))) await new Promise((r) => setTimeout(r, 20));
  child.kill('SIGTERM');
  const code = await new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
  assert.equal(code, 143, stderr);
  assert.match(stderr, /sweep: interrupted by SIGTERM; the completed cells are kept in .*run and the cell in flight was not written; run the same command again to resume/);
  const done = readdirSync(run).filter((f) => f.endsWith('_wikitext.json')).length;
  const again = spawnSync(process.execPath, args, { encoding: 'utf8' });
  assert.equal(again.status, 0, again.stderr);
  assert.ok(done < 8, 'the signal landed before the last cell');
  assert.match(again.stderr, new RegExp(`8 cells \\(${8 - done} evaluated, ${done} already complete\\)`));
});

test('a report killed part-way leaves a staging folder that the next report removes', () => {
  const run = join(tempDir(), 'run');
  const spec = join(tempDir(), 'sweep.yaml');
  writeFileSync(spec, 'tasks: [wikitext]\nbaselines: [8, 4]\nlimit: 1\nmax_length: 128\nbootstrap_resamples: 20\ntrace: off\n');
  assert.equal(routelab('sweep', '--model', gutenbergDir, '--data-dir', join(repoRoot, 'data'), '--out', run, '--spec', spec, '--quiet').status, 0);
  const stale = join(run, '.report-999999-abcdef012345'); // a process that is not running
  mkdirSync(stale);
  writeFileSync(join(stale, 'report.md'), 'half');
  const r = routelab('report', run, '--format', 'md');
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, /removed \.report-999999-abcdef012345, the staging folder of an interrupted report/);
  assert.ok(!existsSync(stale));
  assert.ok(existsSync(join(run, 'report', 'report.md')));
});

test('one writer per run directory: a live holder refuses a second sweep or report by name; a dead one is taken over', async () => {
  const run = join(tempDir(), 'run');
  const spec = join(tempDir(), 'sweep.yaml');
  writeFileSync(spec, 'tasks: [wikitext]\nbaselines: [8]\nlimit: 1\nmax_length: 128\nbootstrap_resamples: 20\ntrace: off\n');
  const sweep = () => routelab('sweep', '--model', gutenbergDir, '--data-dir', join(repoRoot, 'data'), '--out', run, '--spec', spec, '--quiet');
  assert.equal(sweep().status, 0);
  assert.ok(!existsSync(join(run, '.routelab.lock')), 'released when done');
  // A live process holds the lock: both commands are refused, naming it.
  const holder = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)'], { stdio: 'ignore' });
  try {
    writeFileSync(join(run, '.routelab.lock'), JSON.stringify({ host: hostname(), pid: holder.pid, command: 'sweep', started: '2026-12-01T10:00:00.000Z' }));
    for (const r of [sweep(), routelab('report', run, '--format', 'md')]) {
      assert.equal(r.status, 2, r.stderr);
      assert.match(r.stderr, new RegExp(`is being written by routelab sweep \\(pid ${holder.pid} on ${hostname()}, since 2026-12-01T10:00:00\\.000Z\\); one run directory has one writer at a time`));
    }
  } finally {
    holder.kill();
  }
  await new Promise((r) => setTimeout(r, 200));
  // Its process is gone: the lock is stale, taken over with a word.
  const report = routelab('report', run, '--format', 'md');
  assert.equal(report.status, 0, report.stderr);
  assert.match(report.stderr, new RegExp(`removed the stale lock of routelab sweep \\(pid ${holder.pid}, no longer running\\)`));
  assert.ok(!existsSync(join(run, '.routelab.lock')));
});
