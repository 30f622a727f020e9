/**
 * `routelab bench gpu` end to end at a tiny shape on whatever WebGPU adapter there is (CI: Mesa lavapipe), without
 * the torch reference: the table, then the JSON line with every key (torch's null). Skipped, with the reason, when
 * there is no adapter.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { createWebGpuBackend } from '../src/backends/webgpu.js';
import { prefillFlops } from '../src/cli/bench-gpu.js';
import { benchConfig } from '../src/cli/bench-common.js';
import { parseArchitecture } from '../src/model/families/index.js';
import { tensorLayout } from '../src/model/tensors.js';

const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
const cli = join(repoRoot, 'dist/src/cli/main.js');

async function adapterMissing(): Promise<string | false> {
  try {
    (await createWebGpuBackend()).destroy();
    return false;
  } catch (e) {
    return `no WebGPU adapter: ${(e as Error).message}`;
  }
}
const skip = await adapterMissing();

test('bench gpu --shape small --no-torch prints a table and a JSON last line with every key', { skip }, () => {
  const r = spawnSync(process.execPath, [cli, 'bench', 'gpu', '--shape', 'small', '--layers', '1', '--seq', '16', '--batches', '1', '--decode-tokens', '2', '--reps', '1', '--no-torch'], { encoding: 'utf8', env: { ...process.env, HF_HUB_OFFLINE: '1' } });
  assert.equal(r.status, 0, r.stderr);
  const lines = r.stdout.trim().split('\n');
  assert.match(lines[0], /^benchmark\s+routelab\s+torch eager\s+ratio$/);
  assert.ok(lines.some((l) => l.startsWith('prefill 1×16 tokens/s')), r.stdout);
  const out = JSON.parse(lines[lines.length - 1]) as Record<string, unknown>;
  for (const key of ['prefill_tokens_per_s', 'decode_tokens_per_s', 'achieved_tflops']) {
    assert.equal(typeof out[key], 'number', key);
    assert.ok((out[key] as number) >= 0, key);
  }
  assert.ok((out.prefill_tokens_per_s as number) > 0 && (out.decode_tokens_per_s as number) > 0);
  for (const key of ['torch_tokens_per_s', 'prefill_ratio_vs_torch_eager', 'torch_decode_tokens_per_s', 'max_abs_diff']) assert.equal(out[key], null, key);
  assert.ok('peak_tflops' in out && 'fraction_of_peak' in out);
  if (out.peak_tflops === null) assert.equal(out.fraction_of_peak, null);
  assert.equal(typeof out.adapter, 'string');
  assert.ok((out.adapter as string).length > 0);
  assert.equal(out.prefill_config, '1x16');
  assert.equal(out.layers, 1);
});

test('bench gpu: --peak-tflops gives the fraction of peak; bad flags are usage errors', { skip }, () => {
  const r = spawnSync(process.execPath, [cli, 'bench', 'gpu', '--shape', 'small', '--layers', '1', '--seq', '8', '--batches', '2', '--decode-tokens', '0', '--reps', '1', '--no-torch', '--peak-tflops', '0.5'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const lines = r.stdout.trim().split('\n');
  const out = JSON.parse(lines[lines.length - 1]) as Record<string, number | null>;
  assert.equal(out.peak_tflops, 0.5);
  assert.equal(out.decode_tokens_per_s, null);
  assert.ok(Math.abs(out.fraction_of_peak! - out.achieved_tflops! / 0.5) <= 1e-3 * out.fraction_of_peak!);
  const bad = spawnSync(process.execPath, [cli, 'bench', 'gpu', '--shape', 'huge'], { encoding: 'utf8' });
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /--shape/);
});

test('prefill FLOPs of OLMoE-1B-7B: 2 × 1.07 B active parameters per token plus causal attention', () => {
  const { family, architecture: c } = parseArchitecture(benchConfig('olmoe-1b-7b', 16));
  const layout = tensorLayout(family, c);
  const perToken = 2 * 16 * (4 * 2048 * 2048 + 2048 * 64 + 8 * 3 * 2048 * 1024);
  assert.equal(prefillFlops(c, layout, 1, 1), perToken + 16 * 2 * 2048 * 2 + 2 * 2048 * 50304);
  const flops = prefillFlops(c, layout, 8, 512);
  assert.equal(flops, 8 * (512 * perToken + 16 * 2 * 2048 * 512 * 513 + 2 * 2048 * 50304));
  assert.ok(flops > 8.8e12 && flops < 9.1e12, String(flops));
});
