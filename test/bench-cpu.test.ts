/**
 * `routelab bench cpu` end to end without the Python references (`--python` pointed at nothing): the GEMM rows and,
 * with `--full-size` at the small shape, a whole model written, profiled in a child process and removed. Skipped
 * when the native addon is not built.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { loadNativeKernels } from '../src/backends/native.js';
import { repoRoot } from './helpers.js';

const kernels = loadNativeKernels();
const skip = kernels instanceof Error ? kernels.message : false;
const cli = join(repoRoot, 'dist/src/cli/main.js');
const benchDirs = () => readdirSync(tmpdir()).filter((f) => f.startsWith('routelab-bench-full-'));

test('bench cpu --gemm-only --full-size --shape small: a table, then a JSON last line with the GEMM and the whole-model run', { skip }, () => {
  const before = benchDirs();
  const r = spawnSync(process.execPath, [cli, 'bench', 'cpu', '--gemm-only', '--full-size', '--shape', 'small', '--layers', '2', '--threads', '1', '--python', '/nonexistent/python'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const lines = r.stdout.trim().split('\n');
  assert.match(lines[0], /^benchmark\s+routelab\s+reference\s+ratio$/);
  for (const n of [64, 512, 4096]) assert.ok(lines.some((l) => l.startsWith(`GEMM n=${n} `)), `GEMM n=${n} row`);
  const out = JSON.parse(lines[lines.length - 1]) as Record<string, unknown>;
  assert.equal(out.threads, 1);
  assert.ok((out.gemm_gflops as number) > 0);
  assert.equal(out.openblas_gflops, null);
  assert.equal(out.gemm_ratio_vs_openblas, null);
  assert.equal(out.full_size_model, 'small (2 layers)');
  assert.equal(out.full_size_family, 'olmoe');
  assert.equal(out.full_size_layers, 2);
  assert.ok((out.full_size_prefill_tokens_per_s as number) > 0);
  assert.ok((out.full_size_peak_rss_mb as number) > 0);
  assert.ok(!('prefill_tokens_per_s' in out), '--gemm-only skips the prefill comparison');
  assert.deepEqual(benchDirs(), before, 'the temporary checkpoint is removed');
});

test('bench cpu --full-size with a --dir keeps the checkpoint and reuses it; a bad --shape is a usage error', { skip }, () => {
  const dir = join(tmpdir(), `routelab-bench-test-${process.pid}`);
  const run = () => spawnSync(process.execPath, [cli, 'bench', 'cpu', '--gemm-only', '--full-size', '--shape', 'small', '--layers', '1', '--dir', dir, '--python', '/nonexistent/python'], { encoding: 'utf8' });
  try {
    const first = run();
    assert.equal(first.status, 0, first.stderr);
    assert.match(first.stderr, /writing the small \(1 layers\) checkpoint/);
    assert.ok(existsSync(join(dir, 'config.json')) && existsSync(join(dir, 'model.safetensors.index.json')));
    const second = run();
    assert.equal(second.status, 0, second.stderr);
    assert.match(second.stderr, /reusing the small \(1 layers\) checkpoint/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const bad = spawnSync(process.execPath, [cli, 'bench', 'cpu', '--gemm-only', '--full-size', '--shape', 'huge'], { encoding: 'utf8' });
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /--shape: expected one of olmoe-1b-7b, small/);
});

test('bench cpu --full-size --family: a family’s real shapes (here one Granite layer); one too large for memory is refused first', { skip }, () => {
  const r = spawnSync(process.execPath, [cli, 'bench', 'cpu', '--gemm-only', '--full-size', '--family', 'granitemoe', '--layers', '1', '--threads', '1', '--python', '/nonexistent/python'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const lines = r.stdout.trim().split('\n');
  const out = JSON.parse(lines[lines.length - 1]) as Record<string, unknown>;
  assert.equal(out.full_size_model, 'granite-3.0-1b-a400m-base (1 layers)');
  assert.equal(out.full_size_family, 'granitemoe');
  assert.ok((out.full_size_prefill_tokens_per_s as number) > 0);
  const huge = spawnSync(process.execPath, [cli, 'bench', 'cpu', '--gemm-only', '--full-size', '--family', 'mixtral'], { encoding: 'utf8' });
  assert.equal(huge.status, 2);
  assert.match(huge.stderr, /--full-size mixtral-8x7b-v0\.1 \(32 layers\): its weights need 93\.\d\d GB .* of memory, but only/);
  const unknown = spawnSync(process.execPath, [cli, 'bench', 'cpu', '--full-size', '--family', 'llama'], { encoding: 'utf8' });
  assert.equal(unknown.status, 2);
  assert.match(unknown.stderr, /--family: no shipped config for "llama"; expected one of olmoe, mixtral, qwen2_moe, qwen3_moe, deepseek_v2, granitemoe/);
});
