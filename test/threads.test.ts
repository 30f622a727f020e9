/**
 * The native thread pool's size and its provenance: how many CPUs the process may use (affinity mask, cgroup v1/v2
 * quota), `--threads` and ROUTELAB_THREADS on every command that runs a model, the backend and thread count every
 * eval summary and profile records, results independent of the thread count (also beside busy processes), and
 * `routelab bench contention` end to end on a tiny workload. No timing is asserted anywhere.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { cpuLimits, kernelThreads, parseCfsQuota, parseCpuList, parseCpuMax, usableCpus } from '../src/backends/cpus.js';
import { loadNativeKernels, NativeBackend } from '../src/backends/native.js';
import { evaluate } from '../src/eval/evaluate.js';
import { profileModel } from '../src/experiments/profile.js';
import { loadModel } from '../src/load.js';
import { Checkpoint } from '../src/model/checkpoint.js';
import { MoeModel } from '../src/model/model.js';
import { loadTokenizer } from '../src/model/tokenizer.js';
import { parseRouterSpec } from '../src/routers/registry.js';
import { getTask } from '../src/tasks/registry.js';
import { gutenbergDir, parityDir, repoRoot, tempDir } from './helpers.js';

const kernels = loadNativeKernels();
const skip = kernels instanceof Error ? kernels.message : false;
const cli = join(repoRoot, 'dist/src/cli/main.js');

test('CPU lists, cgroup v2 cpu.max and v1 CFS quotas parse; malformed or unlimited ones give null', () => {
  assert.equal(parseCpuList('0-3,8,10-11'), 7);
  assert.equal(parseCpuList('5'), 1);
  assert.equal(parseCpuList('0-1\n'), 2);
  assert.equal(parseCpuList('3-1'), null);
  assert.equal(parseCpuList('a'), null);
  assert.equal(parseCpuMax('max 100000\n'), null);
  assert.equal(parseCpuMax('150000 100000\n'), 1.5);
  assert.equal(parseCpuMax('200000'), 2);
  assert.equal(parseCfsQuota('-1\n', '100000\n'), null);
  assert.equal(parseCfsQuota('50000', '100000'), 0.5);
});

/** A fake file-system root with /proc/self/{status,cgroup,mountinfo} and cgroup files. */
function fakeRoot(files: Record<string, string>): string {
  const root = tempDir('routelab-cpus-');
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(join(root, path, '..'), { recursive: true });
    writeFileSync(join(root, path), text);
  }
  return root;
}

const V2_MOUNT = '30 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw\n';

test('cpuLimits: the affinity mask within the tightest cgroup v2 quota of the cgroup and its ancestors, rounded up', () => {
  const root = fakeRoot({
    'proc/self/status': 'Name:\tnode\nCpus_allowed_list:\t0-7\n',
    'proc/self/cgroup': '0::/job/step\n',
    'proc/self/mountinfo': V2_MOUNT,
    'sys/fs/cgroup/cpu.max': 'max 100000\n',
    'sys/fs/cgroup/job/cpu.max': '250000 100000\n',
    'sys/fs/cgroup/job/step/cpu.max': 'max 100000\n',
  });
  assert.deepEqual(cpuLimits(root), { affinity: 8, quota: 2.5, usable: 3 });
  // The affinity mask is the tighter one.
  const narrow = fakeRoot({
    'proc/self/status': 'Cpus_allowed_list:\t2\n',
    'proc/self/cgroup': '0::/\n',
    'proc/self/mountinfo': V2_MOUNT,
    'sys/fs/cgroup/cpu.max': '400000 100000\n',
  });
  assert.deepEqual(cpuLimits(narrow), { affinity: 1, quota: 4, usable: 1 });
  // No quota anywhere: the affinity mask alone; a quota below one CPU still leaves one thread.
  assert.deepEqual(cpuLimits(fakeRoot({ 'proc/self/status': 'Cpus_allowed_list:\t0-3\n', 'proc/self/cgroup': '0::/\n', 'proc/self/mountinfo': V2_MOUNT, 'sys/fs/cgroup/cpu.max': 'max 100000\n' })), { affinity: 4, quota: null, usable: 4 });
  assert.deepEqual(cpuLimits(fakeRoot({ 'proc/self/status': 'Cpus_allowed_list:\t0-3\n', 'proc/self/cgroup': '0::/\n', 'proc/self/mountinfo': V2_MOUNT, 'sys/fs/cgroup/cpu.max': '20000 100000\n' })), { affinity: 4, quota: 0.2, usable: 1 });
});

test('cpuLimits: cgroup v1 CFS quota, seen through a container mount whose root is the container\'s cgroup', () => {
  const root = fakeRoot({
    'proc/self/status': 'Cpus_allowed_list:\t0-15\n',
    'proc/self/cgroup': '12:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n0::/\n',
    'proc/self/mountinfo': '40 31 0:38 /docker/abc /sys/fs/cgroup/cpu,cpuacct ro,nosuid - cgroup cgroup rw,cpu,cpuacct\n' +
      '41 31 0:39 /docker/abc /sys/fs/cgroup/memory ro,nosuid - cgroup cgroup rw,memory\n',
    'sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us': '300000\n',
    'sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us': '100000\n',
    'sys/fs/cgroup/memory/cpu.cfs_quota_us': '100000\n',
  });
  assert.deepEqual(cpuLimits(root), { affinity: 16, quota: 3, usable: 3 });
  // Unlimited (-1) v1 quota on a hybrid system, as on this project's machine.
  const hybrid = fakeRoot({
    'proc/self/status': 'Cpus_allowed_list:\t0-1\n',
    'proc/self/cgroup': '1:cpu:/\n0::/\n',
    'proc/self/mountinfo': '32 31 0:29 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n41 31 0:38 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n',
    'sys/fs/cgroup/cpu/cpu.cfs_quota_us': '-1\n',
    'sys/fs/cgroup/cpu/cpu.cfs_period_us': '100000\n',
  });
  assert.deepEqual(cpuLimits(hybrid), { affinity: 2, quota: null, usable: 2 });
});

test('usableCpus under taskset -c 0 is 1, and the native pool of a model-running command is sized from it', (t) => {
  const probe = spawnSync('taskset', ['-c', '0', 'true']);
  if (probe.error || probe.status !== 0) return t.skip('taskset is not available here');
  const cpus = join(repoRoot, 'dist/src/backends/cpus.js');
  const r = spawnSync('taskset', ['-c', '0', process.execPath, '--input-type=module', '-e', `import { usableCpus } from ${JSON.stringify(cpus)}; console.log(usableCpus());`], { encoding: 'utf8', env: { ...process.env, ROUTELAB_THREADS: '' } });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout.trim(), '1');
  assert.ok(usableCpus() >= 1);
});

test('kernelThreads: --threads, else ROUTELAB_THREADS, else the usable CPUs; anything but an integer 1 … 1024 is refused by name', () => {
  const saved = process.env.ROUTELAB_THREADS;
  try {
    delete process.env.ROUTELAB_THREADS;
    assert.equal(kernelThreads(), usableCpus());
    assert.equal(kernelThreads('3'), 3);
    process.env.ROUTELAB_THREADS = '5';
    assert.equal(kernelThreads(), 5);
    assert.equal(kernelThreads(2), 2);
    process.env.ROUTELAB_THREADS = 'many';
    assert.throws(() => kernelThreads(), /ROUTELAB_THREADS: expected a thread count from 1 to 1024, got "many"/);
    for (const bad of ['0', '-1', '1.5', '', 'x', '2000']) assert.throws(() => kernelThreads(bad), /--threads: expected a thread count/);
  } finally {
    if (saved === undefined) delete process.env.ROUTELAB_THREADS;
    else process.env.ROUTELAB_THREADS = saved;
  }
});

test('the addon refuses a pool of 0 threads; results are bit-identical at 1, 2, 3 and 7 threads, also beside busy processes', { skip }, async () => {
  assert.throws(() => (kernels as Exclude<typeof kernels, Error>).setThreads(0), /expected 1 … 1024 threads, got 0/);
  const run = async (threads: number) => {
    const model = MoeModel.load(Checkpoint.open(gutenbergDir), new NativeBackend({ threads }));
    const seqs = [Array.from({ length: 130 }, (_, i) => 100 + ((i * 31) % 5000)), [5, 6, 7], [42]];
    const { logits } = await model.forward(seqs);
    return Buffer.from(logits.buffer, logits.byteOffset, logits.byteLength);
  };
  const one = await run(1);
  for (const threads of [2, 3, 7]) assert.ok(one.equals(await run(threads)), `${threads} threads`);
  // Workers the scheduler keeps waiting (two busy processes on the cores) join late or not at all: same bits.
  const busy = [0, 1].map(() => spawn(process.execPath, ['-e', 'for (;;) {}'], { stdio: 'ignore' }));
  try {
    for (const threads of [2, 4]) assert.ok(one.equals(await run(threads)), `${threads} threads beside busy processes`);
  } finally {
    for (const b of busy) b.kill('SIGKILL');
  }
});

test('an eval summary and a profile record the backend that ran (never "auto") and its thread count', async () => {
  const { model } = await loadModel(gutenbergDir, { backend: 'auto', threads: 2 });
  const expected = kernels instanceof Error ? { backend: 'cpu', threads: 1 } : { backend: 'native', threads: 2 };
  const tokenizer = loadTokenizer(gutenbergDir)!;
  const task = getTask('wikitext');
  const docs = [{ index: 0, source: 'mem:0', page: ' = Alpha = \n \n The alpha page is short . \n' }];
  const summary = await evaluate(model, tokenizer, task, docs, { maxLength: 8, trace: 'off', determinism: false });
  assert.deepEqual({ backend: summary.backend, threads: summary.threads }, expected);
  const profile = await profileModel(model, { router: parseRouterSpec('default', model.routerDefaults), seqLengths: [4], batchSizes: [1], warmup: 0, runs: 1, seed: 0 });
  assert.deepEqual({ backend: profile.backend, threads: profile.threads }, expected);
  const cpu = await loadModel(parityDir, { backend: 'cpu' });
  assert.equal(cpu.model.backend.threads, 1);
});

test('every command that runs a model takes --threads N and documents it and ROUTELAB_THREADS in --help; a bad count exits 2', () => {
  for (const command of [['forward'], ['generate'], ['eval'], ['calibrate'], ['sweep'], ['profile'], ['bench']]) {
    const r = spawnSync(process.execPath, [cli, ...command, '--help'], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const help = r.stdout + r.stderr;
    assert.match(help, /--threads N/, `${command} --help`);
    assert.match(help, /ROUTELAB_THREADS/, `${command} --help`);
  }
  const bad = spawnSync(process.execPath, [cli, 'generate', '--model', gutenbergDir, '--prompt', 'The', '--threads', '0'], { encoding: 'utf8' });
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /--threads: expected a thread count from 1 to 1024, got "0"/);
  const env = spawnSync(process.execPath, [cli, 'generate', '--model', gutenbergDir, '--prompt', 'The', '--max-new-tokens', '1'], { encoding: 'utf8', env: { ...process.env, ROUTELAB_THREADS: 'all' } });
  assert.equal(env.status, 2);
  assert.match(env.stderr, /ROUTELAB_THREADS: expected a thread count/);
});

test('bench contention on a tiny workload: a table, then a JSON last line with every load level and thread count', { skip }, () => {
  const r = spawnSync(process.execPath, [cli, 'bench', 'contention', '--prompt-tokens', '4', '--new-tokens', '3', '--seconds', '0.01', '--rounds', '1', '--busy', '0,C', '--threads', '2'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const lines = r.stdout.trim().split('\n');
  assert.match(lines[0], /^busy processes\s+threads\s+tokens\/s/);
  const out = JSON.parse(lines[lines.length - 1]) as Record<string, any>;
  assert.equal(out.bench, 'contention');
  assert.equal(out.backend, 'native');
  assert.equal(out.default_threads, 2);
  assert.equal(out.prompt_tokens, 4);
  assert.equal(out.new_tokens, 3);
  assert.equal(out.cpus.usable, usableCpus());
  assert.deepEqual(out.busy_levels, [0, usableCpus()]);
  assert.deepEqual(out.results.map((x: any) => [x.busy, x.threads]), [[0, 2], [0, 1], [usableCpus(), 2], [usableCpus(), 1]]);
  for (const row of out.results) {
    for (const key of ['tokens_per_s', 'prefill_tokens_per_s', 'decode_tokens_per_s', 'ratio_vs_idle', 'ratio_vs_1_thread']) assert.ok(row[key] > 0, `${key} of ${JSON.stringify(row)}`);
  }
  assert.equal(out.acceptance.busy, usableCpus());
  assert.equal(typeof out.acceptance.pass, 'boolean');
  const bad = spawnSync(process.execPath, [cli, 'bench', 'contention', '--busy', 'lots'], { encoding: 'utf8' });
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /--busy: expected comma-separated counts/);
});
