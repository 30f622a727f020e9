import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { CpuBackend } from '../src/backends/cpu.js';
import { Checkpoint } from '../src/model/checkpoint.js';
import { OlmoeModel } from '../src/model/olmoe.js';
import { forwardPadded } from '../src/model/padded.js';
import { SafetensorsFile } from '../src/model/safetensors.js';

const fixtures = fileURLToPath(new URL('../../test/fixtures/parity/', import.meta.url));

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let max = 0;
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs(a[i] - b[i]));
  return max;
}

test('tiny-olmoe matches the Hugging Face reference forward pass (own top-8 routing)', async () => {
  const expected = SafetensorsFile.open(`${fixtures}tiny-olmoe-expected.safetensors`);
  const ids = expected.readArray('input_ids') as BigInt64Array;
  const [B, S] = expected.entry('input_ids').shape;
  const sequences = Array.from({ length: B }, (_, b) => Array.from(ids.subarray(b * S, (b + 1) * S), Number));
  const model = OlmoeModel.load(Checkpoint.open(`${fixtures}tiny-olmoe`), new CpuBackend());
  const out = await forwardPadded(model, sequences);
  const logitsDiff = maxAbsDiff(out.logits, expected.readArray('logits') as Float32Array);
  const routerDiff = maxAbsDiff(out.routerLogits, expected.readArray('router_logits') as Float32Array);
  assert.ok(logitsDiff < 1e-3, `logits max abs diff ${logitsDiff}`);
  assert.ok(routerDiff < 1e-3, `router logits max abs diff ${routerDiff}`);
  assert.ok(out.expertCounts.every((c) => c === 8));
  console.log(`parity: logits max abs diff ${logitsDiff.toExponential(2)}, router logits ${routerDiff.toExponential(2)}`);
});
