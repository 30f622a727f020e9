import assert from 'node:assert/strict';
import { test } from 'node:test';
import { forwardPadded } from '../src/model/padded.js';
import { SafetensorsFile } from '../src/model/safetensors.js';
import { loadCpuModel, maxAbsDiff, parityDir, parityExpected } from './helpers.js';

test('tiny-olmoe matches the Hugging Face reference forward pass (own top-8 routing)', async () => {
  const expected = SafetensorsFile.open(parityExpected);
  const ids = expected.readArray('input_ids', 'I64');
  const [B, S] = expected.entry('input_ids').shape;
  const sequences = Array.from({ length: B }, (_, b) => Array.from(ids.subarray(b * S, (b + 1) * S), Number));
  const out = await forwardPadded(loadCpuModel(parityDir), sequences);
  const logitsDiff = maxAbsDiff(out.logits, expected.readArray('logits', 'F32'));
  const routerDiff = maxAbsDiff(out.routerLogits, expected.readArray('router_logits', 'F32'));
  assert.ok(logitsDiff < 1e-3, `logits max abs diff ${logitsDiff}`);
  assert.ok(routerDiff < 1e-3, `router logits max abs diff ${routerDiff}`);
  assert.ok(out.expertCounts.every((c) => c === 8));
  console.log(`parity: logits max abs diff ${logitsDiff.toExponential(2)}, router logits ${routerDiff.toExponential(2)}`);
});
