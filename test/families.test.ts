/**
 * Every model family against the float32 outputs of the real Hugging Face modeling code (test/fixtures/families/,
 * provenance in its README): logits and every layer's output within 2e-4, router logits within 1e-4, routing
 * weights within 1e-5, expert choices identical — on the cpu, native and webgpu backends (webgpu and native skip
 * with their reason when unavailable).
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { join } from 'node:path';
import type { Backend } from '../src/backends/backend.js';
import { CpuBackend } from '../src/backends/cpu.js';
import { loadNativeKernels, NativeBackend } from '../src/backends/native.js';
import { Checkpoint } from '../src/model/checkpoint.js';
import { MoeModel, type RoutingEvent } from '../src/model/model.js';
import { SafetensorsFile } from '../src/model/safetensors.js';
import { maxAbsDiff, repoRoot } from './helpers.js';

const FIXTURES = ['olmoe', 'mixtral', 'qwen2_moe', 'qwen3_moe', 'deepseek_v2', 'deepseek_v3', 'granitemoe'] as const;
const fixtureDir = (family: string) => join(repoRoot, 'test/fixtures/families', family);

const native = loadNativeKernels();
const gpu: Backend | string = await (async () => {
  try {
    const { createWebGpuBackend } = await import('../src/backends/webgpu.js');
    return await createWebGpuBackend({ weightChunkBytes: 4096 });
  } catch (e) {
    return `no WebGPU adapter: ${(e as Error).message}`;
  }
})();
after(() => { if (typeof gpu !== 'string') (gpu as unknown as { destroy(): void }).destroy(); });

const backends: { name: string; make: () => Backend; skip: string | false }[] = [
  { name: 'cpu', make: () => new CpuBackend(), skip: false },
  { name: 'native', make: () => new NativeBackend(), skip: native instanceof Error ? native.message : false },
  { name: 'webgpu', make: () => gpu as Backend, skip: typeof gpu === 'string' ? gpu : false },
];

interface Expected {
  ids: number[][];
  logits: Float32Array;
  routerLogits: Float32Array; // [L_moe, T, E]
  selected: BigInt64Array; // [L_moe, T, k]
  weights: Float32Array; // [L_moe, T, k]
  moeLayers: number[];
  layerOutputs: Float32Array; // [L, T, H]
  sharedGate: Float32Array | null;
  k: number;
}

function readExpected(family: string): Expected {
  const f = SafetensorsFile.open(join(fixtureDir(family), 'expected.safetensors'));
  const ids = f.readArray('input_ids') as BigInt64Array;
  const [B, S] = f.entries.find((e) => e.name === 'input_ids')!.shape;
  const k = f.entries.find((e) => e.name === 'selected_experts')!.shape[2];
  return {
    ids: Array.from({ length: B }, (_, b) => Array.from(ids.subarray(b * S, (b + 1) * S), Number)),
    logits: f.readArray('logits') as Float32Array,
    routerLogits: f.readArray('router_logits') as Float32Array,
    selected: f.readArray('selected_experts') as BigInt64Array,
    weights: f.readArray('routing_weights') as Float32Array,
    moeLayers: Array.from(f.readArray('moe_layer_indices') as BigInt64Array, Number),
    layerOutputs: f.readArray('layer_outputs') as Float32Array,
    sharedGate: f.has('shared_expert_gate') ? f.readArray('shared_expert_gate') as Float32Array : null,
    k,
  };
}

/** Run the fixture's input through the family's own routing and compare everything the reference recorded. */
async function checkFamily(family: string, backend: Backend): Promise<Record<string, number>> {
  const want = readExpected(family);
  const model = MoeModel.load(Checkpoint.open(fixtureDir(family)), backend);
  assert.deepEqual([...model.moeLayers], want.moeLayers);
  const E = model.architecture.moe.numExperts;
  const H = model.architecture.hiddenSize;
  const T = want.ids.length * want.ids[0].length;
  const routing: RoutingEvent[] = [];
  const routerLogits = new Float32Array(want.routerLogits.length);
  const sharedGate = new Float32Array(want.sharedGate?.length ?? 0);
  const outputs = new Float32Array(want.layerOutputs.length);
  let weightError = 0;
  let choiceMismatches = 0;
  const { logits } = await model.forward(want.ids, {
    observer: {
      onRouting(event) {
        routing.push(event);
        const m = event.moeLayer;
        routerLogits.set(event.routerLogits, m * T * E);
        if (event.sharedGate) sharedGate.set(event.sharedGate, m * T);
        const r = event.routing;
        for (let t = 0; t < T; t++) {
          assert.equal(r.counts[t], want.k);
          // Both lists hold (expert, weight) pairs; compare as sets keyed by expert.
          const ours = new Map<number, number>();
          for (let j = 0; j < r.counts[t]; j++) ours.set(r.experts[t * r.maxK + j], r.weights[t * r.maxK + j]);
          for (let j = 0; j < want.k; j++) {
            const i = (m * T + t) * want.k + j;
            const w = ours.get(Number(want.selected[i]));
            if (w === undefined) choiceMismatches++;
            else weightError = Math.max(weightError, Math.abs(w - want.weights[i]));
          }
        }
      },
      onLayerOutput({ layer, hidden }) { outputs.set(hidden, layer * T * H); },
    },
  });
  assert.equal(routing.length, want.moeLayers.length);
  const errors = {
    logits: maxAbsDiff(logits, want.logits),
    layerOutputs: maxAbsDiff(outputs, want.layerOutputs),
    routerLogits: maxAbsDiff(routerLogits, want.routerLogits),
    routingWeights: weightError,
    sharedGate: want.sharedGate ? maxAbsDiff(sharedGate, want.sharedGate) : 0,
  };
  assert.equal(choiceMismatches, 0, `${family}: ${choiceMismatches} expert choices differ from Hugging Face`);
  assert.ok(errors.logits <= 2e-4, `${family} logits ${errors.logits}`);
  assert.ok(errors.layerOutputs <= 2e-4, `${family} layer outputs ${errors.layerOutputs}`);
  assert.ok(errors.routerLogits <= 1e-4, `${family} router logits ${errors.routerLogits}`);
  assert.ok(errors.routingWeights <= 1e-5, `${family} routing weights ${errors.routingWeights}`);
  assert.ok(errors.sharedGate <= 1e-5, `${family} shared-expert gate ${errors.sharedGate}`);
  return errors;
}

for (const { name, make, skip } of backends) {
  for (const family of FIXTURES) {
    test(`${family} matches Hugging Face on the ${name} backend`, { skip }, async () => {
      const errors = await checkFamily(family, make());
      console.log(`${family} ${name}: ${Object.entries(errors).map(([k, v]) => `${k} ${v.toExponential(2)}`).join(', ')}`);
    });
  }
}

test('the library loads every family through the same call, and its default routing is the family\'s', async () => {
  const { loadModel } = await import('../src/index.js');
  const expected: Record<string, string> = {
    olmoe: 'topk:k=4,renormalize=true', mixtral: 'topk:k=2,renormalize=true', qwen2_moe: 'topk:k=4,renormalize=false',
    qwen3_moe: 'topk:k=4,renormalize=true', deepseek_v2: 'deepseek_v2:k=4,n_group=1,topk_group=1,scale=1',
    deepseek_v3: 'deepseek_v3:k=4,n_group=4,topk_group=2,renormalize=true,scale=2.5', granitemoe: 'granite:k=2',
  };
  for (const family of FIXTURES) {
    const { model, tokenizer } = await loadModel(fixtureDir(family), { backend: 'cpu' });
    assert.equal(model.family.modelType, family);
    assert.equal(model.defaultRouter().spec, expected[family]);
    assert.equal(tokenizer, null);
    const { logits } = await model.forward([[1, 2, 3]], { logits: 'last' });
    assert.equal(logits.length, model.architecture.vocabSize);
  }
});
