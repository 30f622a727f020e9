import assert from 'node:assert/strict';
import { test } from 'node:test';
import { loadModel, parseRouterSpec, type RoutingEvent } from '../src/index.js';
import { gutenbergDir } from './helpers.js';

test('library: load once, run several routers, observe every layer through an observer', async () => {
  const { model, tokenizer } = await loadModel(gutenbergDir);
  assert.ok(tokenizer);
  const ids = [Array.from(tokenizer.encode('She opened the door and looked out at the sea.'))];
  const T = ids[0].length;
  for (const spec of ['default', 'topk:k=2', 'topp:p=0.3,max_k=12']) {
    const router = parseRouterSpec(spec, model.routerDefaults);
    const seen: { layer: number; counts: number[]; logitsLength: number }[] = [];
    await model.forward(ids, {
      router,
      observer: {
        onRouting(e: RoutingEvent) {
          seen.push({ layer: e.layer, counts: Array.from(e.routing.counts), logitsLength: e.routerLogits.length });
        },
      },
      logits: 'none',
    });
    assert.deepEqual(seen.map((s) => s.layer), [0, 1, 2, 3], spec);
    for (const s of seen) {
      assert.equal(s.logitsLength, T * 64);
      assert.ok(s.counts.every((c) => c >= router.minK && c <= router.maxK), `${spec}: ${s.counts}`);
    }
  }
});
