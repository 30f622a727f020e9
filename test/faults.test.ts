/**
 * Data and disk faults end in one line naming the file: text that is not UTF-8 (a warning at its first file:line, or
 * an error under --on-bad-row error), a Parquet file with a damaged data page, an Arrow file cut short, and a disk
 * that fills up under an eval trace, an eval summary, a sweep and a report (a 2 MB tmpfs, where the test may mount
 * one) — exit 2, no stack trace, nothing half-written, earlier outputs intact.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, cpSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { parquetWriteFile } from 'hyparquet-writer';
import { readLines } from '../src/data/lines.js';
import { BadRows } from '../src/data/bad-rows.js';
import { getTask } from '../src/tasks/registry.js';
import { gutenbergDir, repoRoot, tempDir } from './helpers.js';

const cli = join(repoRoot, 'dist/src/cli/main.js');
const routelab = (...args: string[]) => spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8' });

/** One line naming `path`, exit 2, no stack. */
function assertOneLine(r: ReturnType<typeof routelab>, pattern: RegExp): void {
  assert.equal(r.status, 2, r.stderr);
  assert.match(r.stderr, pattern);
  assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
}

test('text that is not UTF-8 is decoded with U+FFFD and said at its first file:line; under --on-bad-row error it stops', async () => {
  const dir = tempDir();
  const file = join(dir, 'lambada.jsonl');
  const good = (text: string) => Buffer.from(JSON.stringify({ text }) + '\n');
  writeFileSync(file, Buffer.concat([good('one two three four'), Buffer.from('{"text": "caf\xe9 ol\xe9"}\n', 'latin1'), good('five six seven eight')]));
  const lambada = getTask('lambada_openai');
  const loaded = await lambada.load(file, 'skip');
  assert.equal(loaded.docs.length, 3, 'the row is kept');
  assert.equal(loaded.badRows.length, 0);
  assert.deepEqual(loaded.warnings, [`${file}:2: not valid UTF-8; 1 line in all (${file}:2) decoded with U+FFFD replacement characters`]);
  await assert.rejects(lambada.load(file, 'error'), new RegExp(`${file}:2: not valid UTF-8`));

  const r = routelab('eval', '--model', gutenbergDir, '--task', 'lambada_openai', '--data', file, '--limit', '1', '--out', join(dir, 'out'));
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, new RegExp(`eval: warning: ${file}:2: not valid UTF-8`));
  const summary = JSON.parse(readFileSync(join(dir, 'out', readdirSync(join(dir, 'out')).find((f) => f.endsWith('.json'))!), 'utf8'));
  assert.equal(summary.data.warnings.length, 1);
  assertOneLine(routelab('eval', '--model', gutenbergDir, '--task', 'lambada_openai', '--data', file, '--on-bad-row', 'error', '--out', join(dir, 'out2')),
    new RegExp(`^routelab: ${file}:2: not valid UTF-8`, 'm'));
});

test('a character split across two reads is whole again: no warning for valid UTF-8 at a chunk boundary', async () => {
  const file = join(tempDir(), 'long.txt');
  // 'é' is two bytes; put one across the 1 MiB read boundary.
  const text = `${'a'.repeat((1 << 20) - 1)}é\nsecond line`;
  writeFileSync(file, text);
  const bad = new BadRows('error');
  const lines: string[] = [];
  for await (const { text: t } of readLines(file, bad)) lines.push(t);
  assert.deepEqual(lines, text.split('\n'));
  assert.deepEqual(bad.warnings, []);
});

test('a Parquet file with a damaged data page and an Arrow file cut in half are one line naming the file', async () => {
  const dir = tempDir();
  const parquet = join(dir, 'validation.parquet');
  const sentences = Array.from({ length: 400 }, (_, i) => `sentence number ${i} with some words to fill a page`);
  parquetWriteFile({ filename: parquet, columnData: [{ name: 'sentence', data: sentences }, { name: 'label', data: sentences.map((_, i) => i % 2), type: 'INT32' }, { name: 'idx', data: sentences.map((_, i) => i), type: 'INT32' }] });
  assert.equal((await getTask('sst2').load(parquet, 'skip')).docs.length, 400, 'the intact file reads');
  const bytes = readFileSync(parquet);
  bytes.fill(0xff, 40, 400); // inside the first column chunk, before the footer
  writeFileSync(parquet, bytes);
  assertOneLine(routelab('eval', '--model', gutenbergDir, '--task', 'sst2', '--data', parquet, '--limit', '2', '--out', join(dir, 'o1')),
    new RegExp(`^routelab: ${parquet}: not a readable parquet file`, 'm'));

  const arrowDir = join(dir, 'sst2');
  cpSync(join(repoRoot, 'data/glue/sst2/validation'), arrowDir, { recursive: true });
  const arrow = join(arrowDir, 'data-00000-of-00001.arrow');
  writeFileSync(arrow, readFileSync(arrow).subarray(0, Math.floor(statSync(arrow).size / 2)));
  assertOneLine(routelab('eval', '--model', gutenbergDir, '--task', 'sst2', '--data', arrowDir, '--limit', '2', '--out', join(dir, 'o2')),
    new RegExp(`^routelab: ${arrow}: not a readable Arrow IPC file`, 'm'));
});

/** A 2 MB tmpfs (root only, where mounts are allowed); null where the test cannot mount one. */
function smallDisk(): { dir: string; unmount(): void } | null {
  if (process.getuid?.() !== 0) return null;
  const dir = tempDir('routelab-full-');
  if (spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=2m', 'tmpfs', dir]).status !== 0) return null;
  return { dir, unmount: () => { spawnSync('umount', [dir]); } };
}

/** Append to `file` until the disk has less than 512 bytes left. */
function fillUp(file: string): void {
  writeFileSync(file, Buffer.alloc(0));
  for (let size = 1 << 20; size >= 512; size >>= 1) {
    try {
      writeFileSync(file, Buffer.alloc(size), { flag: 'a' });
    } catch {
      // this size no longer fits: try half
    }
  }
}

const disk = smallDisk();
test('a full disk under an eval trace, an eval summary, a sweep and a report: one line naming the file, nothing half-written', { skip: disk === null && 'cannot mount a small tmpfs here (needs root)' }, () => {
  try {
    const full = disk!.dir;
    const wikitext = join(repoRoot, 'data/wikitext-2-raw-v1');
    // A full trace of 3 pages is ≈ 10 MB: the trace write fails.
    const trace = routelab('eval', '--model', gutenbergDir, '--task', 'wikitext', '--data', wikitext, '--limit', '3', '--trace', 'full', '--out', join(full, 'eval'));
    assertOneLine(trace, /^routelab: .*eval[/\\]8experts_topk_baseline_wikitext_routing\.parquet: no space left on the device \(ENOSPC/m);
    assert.deepEqual(readdirSync(join(full, 'eval')), [], 'no temporary or partial file left');

    // Fill the disk to its last few bytes: the summary itself cannot be written.
    const filler = join(full, 'filler');
    fillUp(filler);
    const summary = routelab('eval', '--model', gutenbergDir, '--task', 'wikitext', '--data', wikitext, '--limit', '1', '--trace', 'off', '--out', join(full, 'eval'));
    assertOneLine(summary, /^routelab: .*8experts_topk_baseline_wikitext\.json: no space left on the device \(ENOSPC/m);
    assert.deepEqual(readdirSync(join(full, 'eval')), []);

    // A sweep whose run directory is on the full disk, resumed from a finished run copied there with no room to spare.
    const spec = join(tempDir(), 'sweep.yaml');
    writeFileSync(spec, 'tasks: [wikitext]\nbaselines: [8, 4]\nlimit: 1\nmax_length: 128\nbootstrap_resamples: 20\ntrace: off\n');
    const sweep = routelab('sweep', '--model', gutenbergDir, '--data-dir', join(repoRoot, 'data'), '--out', join(full, 'run'), '--spec', spec, '--quiet');
    assertOneLine(sweep, /^routelab: .*run[/\\].*: no space left on the device \(ENOSPC/m);
    assert.ok(readdirSync(join(full, 'run')).every((f) => !f.endsWith('.tmp') && f !== '.routelab.lock'), 'no temporary file or lock left');

    const run = join(tempDir(), 'run');
    assert.equal(routelab('sweep', '--model', gutenbergDir, '--data-dir', join(repoRoot, 'data'), '--out', run, '--spec', spec, '--quiet').status, 0);
    rmSync(filler);
    const copy = join(full, 'finished');
    mkdirSync(copy);
    for (const f of readdirSync(run)) copyFileSync(join(run, f), join(copy, f));
    fillUp(filler);
    const before = readdirSync(copy).sort();
    const report = routelab('report', copy, '--format', 'md');
    assertOneLine(report, /^routelab: .*finished[/\\].*: no space left on the device \(ENOSPC/m);
    assert.deepEqual(readdirSync(copy).sort(), before, 'the run is as it was: no staging folder, no lock, no partial report');
  } finally {
    disk?.unmount();
  }
});

/** `dir` mounted again, read-only, at a new path (root only); null where the test cannot. */
function readOnlyView(dir: string): { dir: string; unmount(): void } | null {
  if (process.getuid?.() !== 0) return null;
  const view = tempDir('routelab-ro-');
  if (spawnSync('mount', ['--bind', dir, view]).status !== 0) return null;
  if (spawnSync('mount', ['-o', 'remount,ro,bind', view]).status !== 0) {
    spawnSync('umount', [view]);
    return null;
  }
  return { dir: view, unmount: () => { spawnSync('umount', [view]); } };
}

test('a finished run on a read-only mount: a resuming sweep and a report are refused in one line, nothing changes', { skip: process.getuid?.() !== 0 && 'needs root to mount' }, (t) => {
  const spec = join(tempDir(), 'sweep.yaml');
  writeFileSync(spec, 'tasks: [wikitext]\nbaselines: [8]\nlimit: 1\nmax_length: 128\nbootstrap_resamples: 20\ntrace: off\n');
  const run = join(tempDir(), 'run');
  assert.equal(routelab('sweep', '--model', gutenbergDir, '--data-dir', join(repoRoot, 'data'), '--out', run, '--spec', spec, '--quiet').status, 0);
  const view = readOnlyView(run);
  if (view === null) return t.skip('cannot bind-mount read-only here');
  try {
    const before = readdirSync(view.dir).sort();
    const sweep = routelab('sweep', '--model', gutenbergDir, '--data-dir', join(repoRoot, 'data'), '--out', view.dir, '--spec', spec);
    assertOneLine(sweep, new RegExp(`^routelab: ${view.dir}: is on a read-only file system: a sweep \\(even one that only resumes\\) writes`, 'm'));
    const report = routelab('report', view.dir, '--format', 'md');
    assertOneLine(report, /^routelab: .*: the file system is read-only \(EROFS/m);
    const out = routelab('eval', '--model', gutenbergDir, '--task', 'wikitext', '--data', join(repoRoot, 'data/wikitext-2-raw-v1'), '--limit', '1', '--out', join(view.dir, 'eval'));
    assertOneLine(out, /^routelab: .*eval.*: the file system is read-only \(EROFS/m);
    assert.deepEqual(readdirSync(view.dir).sort(), before);
  } finally {
    view.unmount();
  }
});

test('--out naming an existing file is one line', () => {
  const dir = tempDir();
  const file = join(dir, 'taken');
  writeFileSync(file, 'a file');
  const r = routelab('eval', '--model', gutenbergDir, '--task', 'wikitext', '--data', join(repoRoot, 'data/wikitext-2-raw-v1'), '--limit', '1', '--out', file);
  assertOneLine(r, /^routelab: .*taken.*: (already exists, and is not what was expected there \(EEXIST|a part of this path is a file, not a directory \(ENOTDIR)/m);
  assert.equal(readFileSync(file, 'utf8'), 'a file', 'the file is untouched');
});

const hasPrlimit = spawnSync('prlimit', ['--version']).status === 0;
test('too few file descriptors (EMFILE) is one line saying how to raise the limit', { skip: !hasPrlimit && 'prlimit (util-linux) is not installed' }, () => {
  // 24 descriptors: enough for Node to start, too few for routelab to load its modules and the model.
  const r = spawnSync('prlimit', ['--nofile=24:24', process.execPath, cli, 'eval', '--model', gutenbergDir, '--task', 'wikitext',
    '--data', join(repoRoot, 'data/wikitext-2-raw-v1'), '--limit', '1', '--out', join(tempDir(), 'out')], { encoding: 'utf8' });
  assertOneLine(r, /^routelab: .*: too many open files in this process \(raise the limit: ulimit -n\) \(EMFILE in open\)/m);
});
