/**
 * The Redis work queue (BullMQ) with real redis-server and real worker processes: a queued sweep gives exactly the
 * results of a single-machine sweep even when a worker is SIGKILLed mid-cell and the coordinator is killed and
 * started again; a Redis restart (without persistence) loses nothing and runs nothing twice; a worker whose model
 * differs from the plan refuses its cells, naming the difference, and another worker takes them; a cell that keeps
 * throwing fails alone, with its error in the exit message and manifest.json. Skipped without redis-server.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { freePort, hasRedisServer, startRedisServer } from '../src/redis-server.js';
import { gutenbergDir, repoRoot, tempDir, untimedResults } from './helpers.js';

const cli = join(repoRoot, 'dist/src/cli/main.js');
const data = join(repoRoot, 'data');
const hasRedis = hasRedisServer();

/** redis-server on 127.0.0.1 at `port`, no persistence (the worst case for a restart). */
const startRedis = async (port: number) => (await startRedisServer(port)).process;

/** A routelab child process with its stderr collected; `exited` resolves with its code. */
function start(args: string[], env: NodeJS.ProcessEnv = process.env) {
  const child = spawn(process.execPath, [cli, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env });
  const p = { child, log: '', exited: null as unknown as Promise<number | null> };
  child.stderr!.on('data', (d) => { p.log += d; });
  child.stdout!.on('data', () => {});
  p.exited = new Promise((resolve) => child.on('exit', (code) => resolve(code)));
  return p;
}

async function until(what: string, check: () => boolean, seconds = 120): Promise<void> {
  const end = Date.now() + seconds * 1000;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function writeSpec(dir: string, extra = ''): string {
  const spec = join(dir, 'sweep.yaml');
  writeFileSync(spec, 'tasks: [text]\nbaselines: [8, 4, 2, 1]\nbh: { max_k: [8], alpha: [0.5] }\ncontrols: matched\nlimit: 2\nmax_length: 256\n' +
    `bootstrap_resamples: 50\ntrace: off\ncalibration: { tokens: 1024 }\n${extra}`);
  return spec;
}

function localSweep(spec: string, run: string): void {
  const r = spawnSync(process.execPath, [cli, 'sweep', '--model', gutenbergDir, '--data-dir', data, '--out', run, '--spec', spec, '--quiet'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
}

const skip = !hasRedis && 'redis-server is not installed';

test('queued sweep = single-machine sweep, through a worker SIGKILLed mid-cell and a coordinator killed and restarted', { skip }, async () => {
  const port = await freePort();
  const redis = await startRedis(port);
  const url = `redis://127.0.0.1:${port}/0`;
  const workers: ReturnType<typeof start>[] = [];
  try {
    const dir = tempDir();
    const spec = writeSpec(dir);
    localSweep(spec, join(dir, 'single'));
    const run = join(dir, 'queued');
    const sweepArgs = ['sweep', '--model', gutenbergDir, '--data-dir', data, '--out', run, '--spec', spec, '--queue', url];
    const worker = () => start(['worker', '--queue', url, '--threads', '1', '--lock-seconds', '2', '--idle-exit', '60']);
    const first = start(sweepArgs);
    const doomed = worker();
    workers.push(doomed, worker());
    // The doomed worker dies in the middle of its first cell.
    await until('a worker to start a cell', () => /: (\S+_text) …/.test(doomed.log));
    const killedCell = /: (\S+_text) …/.exec(doomed.log)![1];
    doomed.child.kill('SIGKILL');
    // A local sweep on the directory the queue is filling is refused, naming the coordinator.
    const intruder = spawnSync(process.execPath, [cli, 'sweep', '--model', gutenbergDir, '--data-dir', data, '--out', run, '--spec', spec], { encoding: 'utf8' });
    assert.equal(intruder.status, 2, intruder.stderr);
    assert.match(intruder.stderr, /is being written by routelab sweep --queue redis:\/\/127\.0\.0\.1:\d+\/0 \(pid \d+/);
    // The coordinator dies after its first finished cell; started again, it adopts what is queued or running.
    await until('a finished cell', () => / done by /.test(first.log));
    first.child.kill('SIGKILL');
    await first.exited;
    const second = start(sweepArgs);
    assert.equal(await second.exited, 0, second.log);
    assert.match(second.log, /removed the stale lock of routelab sweep --queue/);
    assert.match(second.log, /adopted \d+ cells? already queued or running|redoing|already complete/);
    assert.match(workers[1].log, new RegExp(`${killedCell} done`), 'the killed worker\'s cell was run by the other worker');
    assert.deepEqual(untimedResults(run), untimedResults(join(dir, 'single')));
    const manifest = JSON.parse(readFileSync(join(run, 'manifest.json'), 'utf8'));
    assert.deepEqual(manifest.failed_cells, []);
    const status = JSON.parse(readFileSync(join(run, 'sweep-status.json'), 'utf8'));
    assert.equal(status.mode, 'queue');
    assert.ok(status.cells.every((c: { state: string }) => c.state === 'done'));
    assert.ok(status.workers.some((w: { cells_done: number; tokens: number }) => w.cells_done > 0 && w.tokens > 0), 'workers and their throughput are followed');
  } finally {
    for (const w of workers) w.child.kill('SIGKILL');
    redis.kill('SIGKILL');
  }
});

test('Redis restarted mid-sweep (no persistence): coordinator and worker reconnect, nothing is lost or run twice', { skip }, async () => {
  const port = await freePort();
  let redis = await startRedis(port);
  const url = `redis://127.0.0.1:${port}/0`;
  const worker = start(['worker', '--queue', url, '--threads', '1', '--lock-seconds', '2', '--idle-exit', '60']);
  try {
    const dir = tempDir();
    const spec = writeSpec(dir);
    const run = join(dir, 'queued');
    const coordinator = start(['sweep', '--model', gutenbergDir, '--data-dir', data, '--out', run, '--spec', spec, '--queue', url]);
    await until('a finished cell', () => / done by /.test(coordinator.log));
    redis.kill('SIGKILL');
    await new Promise((r) => setTimeout(r, 1500));
    redis = await startRedis(port);
    assert.equal(await coordinator.exited, 0, coordinator.log);
    assert.match(coordinator.log, /Redis at .* is unreachable/);
    assert.match(coordinator.log, /Redis at .* is back/);
    const evaluatedTwice = [...worker.log.matchAll(/: (\S+_text) done:/g)].map((m) => m[1]).filter((name, i, all) => all.indexOf(name) !== i);
    assert.deepEqual(evaluatedTwice, [], 'no cell evaluated twice');
    localSweep(spec, join(dir, 'single'));
    assert.deepEqual(untimedResults(run), untimedResults(join(dir, 'single')));
  } finally {
    worker.child.kill('SIGKILL');
    redis.kill('SIGKILL');
  }
});

test('a worker whose model differs refuses, naming the fingerprint; a cell that keeps throwing fails alone', { skip }, async () => {
  const port = await freePort();
  const redis = await startRedis(port);
  const url = `redis://127.0.0.1:${port}/0`;
  const workers: ReturnType<typeof start>[] = [];
  try {
    const dir = tempDir();
    // The model as a hub id, resolved in each machine's own hub cache: the bad worker's copy has other weights.
    const hubCache = (name: string, flip: boolean) => {
      const cache = join(dir, name);
      const snapshot = join(cache, 'models--demo--tiny-olmoe', 'snapshots', 'abc123');
      mkdirSync(join(cache, 'models--demo--tiny-olmoe', 'refs'), { recursive: true });
      cpSync(gutenbergDir, snapshot, { recursive: true });
      writeFileSync(join(cache, 'models--demo--tiny-olmoe', 'refs', 'main'), 'abc123');
      if (flip) {
        const weights = readFileSync(join(snapshot, 'model.safetensors'));
        weights[weights.length - 3] ^= 0x5a;
        writeFileSync(join(snapshot, 'model.safetensors'), weights);
      }
      return cache;
    };
    const good = hubCache('good-cache', false);
    const bad = hubCache('bad-cache', true);
    const env = (cache: string) => ({ ...process.env, HF_HUB_CACHE: cache, HF_HUB_OFFLINE: '1', ROUTELAB_CACHE: join(dir, `hashes-${cache.length}`) });
    const spec = join(dir, 'sweep.yaml');
    writeFileSync(spec, 'tasks: [text]\nbaselines: [8, 4]\nlimit: 2\nmax_length: 128\nbootstrap_resamples: 20\ntrace: full\n');
    const run = join(dir, 'run');
    // The 4-expert cell's trace path is a directory: its trace can never be published, on every attempt.
    mkdirSync(join(run, '4experts_topk_baseline_text_routing.parquet', 'blocker'), { recursive: true });
    const badWorker = start(['worker', '--queue', url, '--threads', '1', '--idle-exit', '60'], env(bad));
    await until('the bad worker to listen', () => /taking cells/.test(badWorker.log));
    const coordinator = start(['sweep', '--model', 'demo/tiny-olmoe', '--data-dir', data, '--out', run, '--spec', spec, '--queue', url], env(good));
    workers.push(badWorker);
    await until('a refusal', () => /refusing/.test(badWorker.log));
    assert.match(badWorker.log, /refusing 8experts_topk_baseline_text|refusing 4experts_topk_baseline_text/);
    assert.match(badWorker.log, /model fingerprint: planned [0-9a-f]{12}…, this worker [0-9a-f]{12}…/);
    workers.push(start(['worker', '--queue', url, '--threads', '1', '--idle-exit', '60'], env(good)));
    const code = await coordinator.exited;
    assert.equal(code, 2, coordinator.log);
    assert.match(coordinator.log, /1 cell failed: 4experts_topk_baseline_text \(.*4experts_topk_baseline_text_routing\.parquet.*\)/);
    assert.match(coordinator.log, /4experts_topk_baseline_text failed after 3 attempts/);
    assert.match(workers[1].log, /8experts_topk_baseline_text done/, 'the good worker took the refused cell');
    const manifest = JSON.parse(readFileSync(join(run, 'manifest.json'), 'utf8'));
    assert.deepEqual(manifest.failed_cells.map((c: { cell: string }) => c.cell), ['4experts_topk_baseline_text']);
    const results = JSON.parse(readFileSync(join(run, 'results.json'), 'utf8')) as { config: string }[];
    assert.deepEqual(results.map((r) => r.config), ['8experts_topk_baseline'], 'the rest of the grid went on');
  } finally {
    for (const w of workers) w.child.kill('SIGKILL');
    redis.kill('SIGKILL');
  }
});
