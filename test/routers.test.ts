import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { RoutelabError } from '../src/errors.js';
import { BhRouter, type BhParams } from '../src/routers/bh.js';
import { NULL_MODEL_FORMAT, type NullModelFile, nullCdf, parseNullModel, readNullModel } from '../src/routers/null-model.js';
import { ROUTER_KINDS, parseRouterSpec, takesNullModel } from '../src/routers/registry.js';
import { softmaxRouting } from '../src/model/family.js';
import type { Router, RouterDefaults, Routing } from '../src/routers/router.js';
import { DeepseekV2Router, DeepseekV3Router } from '../src/routers/deepseek.js';
import { EntropyRouter } from '../src/routers/entropy.js';
import { GraniteRouter } from '../src/routers/granite.js';
import { HcRouter, type HcParams } from '../src/routers/hc.js';
import type { WeightMode } from '../src/routers/selection.js';
import { ThresholdRouter } from '../src/routers/threshold.js';
import { TopKRouter } from '../src/routers/topk.js';
import { TopPRouter } from '../src/routers/topp.js';
import { createRandom } from '../src/sampling.js';

const E = 4;
const nullShape = { numLayers: 2, numExperts: E };
/** An OLMoE-like model of E experts, top-2, in `numLayers` MoE layers. */
function routerDefaults(o: { normTopkProb?: boolean; numLayers?: number } = {}): RouterDefaults {
  const normTopkProb = o.normTopkProb ?? false;
  return {
    numExperts: E, numExpertsPerTok: 2, moeLayers: Array.from({ length: o.numLayers ?? 2 }, (_, l) => l),
    routing: softmaxRouting(normTopkProb), defaultSpec: (k) => `topk:k=${k},renormalize=${normTopkProb}`, selectionBias: () => null,
  };
}
const defaults = routerDefaults();

/** Softmax written independently of the routers: plain exp / sum in double, no max shift, rounded to float32. */
function softmax32(r: readonly number[], temperature = 1): number[] {
  const exps = r.map((x) => Math.exp(Math.fround(x) / temperature));
  const total = exps.reduce((a, b) => a + b, 0);
  return exps.map((x) => Math.fround(x / total));
}

/** Token t's choice as plain arrays. */
function choice(routing: Routing, t = 0): { experts: number[]; weights: number[] } {
  const start = t * routing.maxK;
  const end = start + routing.counts[t];
  return { experts: Array.from(routing.experts.subarray(start, end)), weights: Array.from(routing.weights.subarray(start, end)) };
}

function route(router: Router, logits: readonly number[], layer = 0): Routing {
  return router.route(layer, new Float32Array(logits), logits.length / E, E);
}

function assertClose(actual: readonly number[], expected: readonly number[], tolerance = 1e-7): void {
  assert.equal(actual.length, expected.length);
  actual.forEach((a, i) => assert.ok(Math.abs(a - expected[i]) <= tolerance, `[${i}]: ${a} vs ${expected[i]}`));
}

const sum = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0);

const tmp = mkdtempSync(join(tmpdir(), 'routelab-routers-'));
let fileCount = 0;
function writeJson(content: unknown, name = `null-${fileCount++}.json`): string {
  const file = join(tmp, name);
  writeFileSync(file, JSON.stringify(content));
  return file;
}

/** F(r) = r on [0, 1], so p = 1 − r: logits in [0, 1] spell out their p-values. */
const identity = { x: [0, 1], cdf: [0, 1] };
const identityNulls: NullModelFile = { format: NULL_MODEL_FORMAT, layers: [identity, identity], meta: { note: 'test' } };
const identityFile = writeJson(identityNulls);

function bh(params: Partial<BhParams> & { alpha: number; maxK: number }): BhRouter {
  return new BhRouter({ minK: 1, temperature: 1, nullModel: readNullModel(identityFile), weights: 'renorm', pValues: 'exact', ...params });
}

// ---- topk ----

test('topk picks the k most probable experts, weighted by float32 softmax probabilities', () => {
  const r = [1, 3, 2, 0];
  const probs = softmax32(r);
  assert.deepEqual(choice(route(new TopKRouter(1, false), r)), { experts: [1], weights: [probs[1]] });
  assert.deepEqual(choice(route(new TopKRouter(2, false), r)), { experts: [1, 2], weights: [probs[1], probs[2]] });
  const all = route(new TopKRouter(E, false), r);
  assert.deepEqual(choice(all), { experts: [1, 2, 0, 3], weights: [1, 2, 0, 3].map((e) => probs[e]) });
  assert.equal(all.maxK, E);
});

test('topk renormalize divides the chosen probabilities by their sum', () => {
  const r = [1, 3, 2, 0];
  const probs = softmax32(r);
  const { experts, weights } = choice(route(new TopKRouter(2, true), r));
  assert.deepEqual(experts, [1, 2]);
  assert.deepEqual(weights, [1, 2].map((e) => Math.fround(probs[e] / (probs[1] + probs[2]))));
  assert.ok(Math.abs(sum(weights) - 1) < 1e-6);
  assert.deepEqual(choice(route(new TopKRouter(1, true), r)).weights, [1]);
});

test('topk breaks ties by the lower expert index, per token, and leaves the logits alone', () => {
  const tied = new TopKRouter(3, false).route(0, new Float32Array([0, 2, 2, 1, 2]), 1, 5);
  assert.deepEqual(choice(tied).experts, [1, 2, 4]);
  const logits = new Float32Array([1, 3, 2, 0, 5, 0, 0, 5]);
  const routing = new TopKRouter(2, false).route(0, logits, 2, E);
  assert.deepEqual(Array.from(routing.counts), [2, 2]);
  assert.deepEqual(choice(routing, 0).experts, [1, 2]);
  assert.deepEqual(choice(routing, 1).experts, [0, 3]);
  assert.deepEqual(Array.from(logits), [1, 3, 2, 0, 5, 0, 0, 5]);
});

test('softmax subtracts the max, so large logits do not overflow', () => {
  const { weights } = choice(route(new TopKRouter(2, false), [1000, 999, -1000, 0]));
  assertClose(weights, softmax32([1, 0, -2000, -1000]).slice(0, 2));
});

test('a router asking for more experts than the model has is an error', () => {
  assert.throws(() => new TopKRouter(5, false).route(0, new Float32Array(4), 1, 4), RoutelabError);
});

// ---- bh ----

test('bh step-up: the largest passing rank counts even when a smaller rank fails', () => {
  // p = [0.5, 0.21875, 0.0625, 0.25]; ascending e2, e1, e3, e0 against i·0.4/4 = 0.1, 0.2, 0.3, 0.4:
  // pass, fail, pass, fail → n = 3 (stopping at the first failure would give 1).
  const r = [0.5, 0.78125, 0.9375, 0.75];
  const routing = route(bh({ alpha: 0.4, maxK: 4 }), r);
  const { experts, weights } = choice(routing);
  assert.deepEqual(experts, [2, 1, 3]);
  assert.deepEqual(Array.from(routing.pValues!), [0.5, 0.21875, 0.0625, 0.25]);
  const exps = experts.map((e) => Math.exp(r[e]));
  assertClose(weights, exps.map((x) => x / sum(exps)));
  assert.ok(Math.abs(sum(weights) - 1) < 1e-6);
});

test('bh breaks p-value ties by the lower expert index and clamps to max_k', () => {
  // p = [0.25, 0.0625, 0.25, 0.5]: ascending e1, e0, e2, e3; pass, fail, pass, fail → n = 3.
  const r = [0.75, 0.9375, 0.75, 0.5];
  assert.deepEqual(choice(route(bh({ alpha: 0.4, maxK: 4 }), r)).experts, [1, 0, 2]);
  const capped = route(bh({ alpha: 0.4, maxK: 2 }), r);
  assert.deepEqual(choice(capped).experts, [1, 0]);
  assert.equal(capped.maxK, 2);
});

test('bh: n = 0 falls back to min_k experts, lowest p-values first', () => {
  // p = [0.875, 0.75, 0.9375, 0.8125], all above every threshold i·0.5/4 ≤ 0.5.
  const r = [0.125, 0.25, 0.0625, 0.1875];
  assert.deepEqual(choice(route(bh({ alpha: 0.5, maxK: 4 }), r)), { experts: [1], weights: [1] });
  assert.deepEqual(choice(route(bh({ alpha: 0.5, maxK: 4, minK: 2 }), r)).experts, [1, 3]);
  assert.deepEqual(choice(route(bh({ alpha: 0.5, maxK: 3, minK: 3 }), r)).experts, [1, 3, 0]);
});

test('bh: logits outside the null grid take its end values (p = 0 or 1)', () => {
  // p = [0, 0, 1, 0.5]: e0, e1 pass (ties, lower index first); 0.5 > 3·0.5/4 and 1 > 0.5 fail.
  const routing = route(bh({ alpha: 0.5, maxK: 4 }), [2, 5, -1, 0.5]);
  assert.deepEqual(Array.from(routing.pValues!), [0, 0, 1, 0.5]);
  assert.deepEqual(choice(routing).experts, [0, 1]);
});

test('bh temperature changes the weights, not the selection', () => {
  const r = [0.5, 0.78125, 0.9375, 0.75];
  const cold = choice(route(bh({ alpha: 0.4, maxK: 4 }), r));
  const warm = choice(route(bh({ alpha: 0.4, maxK: 4, temperature: 2 }), r));
  assert.deepEqual(warm.experts, cold.experts);
  assert.notDeepEqual(warm.weights, cold.weights);
  const exps = warm.experts.map((e) => Math.exp(r[e] / 2));
  assertClose(warm.weights, exps.map((x) => x / sum(exps)));
});

test('bh uses per-expert nulls where the layer has them, the layer null elsewhere', () => {
  const perExpert: NullModelFile = {
    format: NULL_MODEL_FORMAT,
    layers: [
      { ...identity, experts: [{ x: [0, 2], cdf: [0, 1] }, { x: [0, 4], cdf: [0, 1] }, identity, { x: [-1, 1], cdf: [0, 1] }] },
      identity,
    ],
    meta: {},
  };
  const router = new BhRouter({ alpha: 0.5, maxK: 4, minK: 1, temperature: 1, nullModel: readNullModel(writeJson(perExpert), nullShape), weights: 'renorm', pValues: 'exact' });
  assert.deepEqual(Array.from(route(router, [1, 1, 1, 1], 0).pValues!), [0.5, 0.75, 0, 0]);
  assert.deepEqual(Array.from(route(router, [1, 1, 1, 1], 1).pValues!), [0, 0, 0, 0]);
  assert.throws(() => route(router, [1, 1, 1, 1], 2), /has 2 layers; cannot route layer 2/);
});

test('the null CDF follows numpy.interp: on grid points, flat stretches, outside the grid', () => {
  const grid = { x: Float64Array.of(0, 1, 2, 3), cdf: Float64Array.of(0, 0.5, 0.5, 1) };
  const at = (r: number) => nullCdf(grid, r);
  assert.deepEqual([1, 1.5, 2, 2.5, 3, -10, 10, 0, 0.25].map(at), [0.5, 0.5, 0.5, 0.75, 1, 0, 1, 0, 0.125]);
  // Values from numpy 2.4 np.interp, compared exactly (same formula, same rounding).
  const uneven = { x: Float64Array.of(-1.3, 0.2, 0.7, 2.9), cdf: Float64Array.of(0.01, 0.3, 0.31, 0.99) };
  const expected = [0.305, 0.242, 0.4752298, 0.9899690909090908];
  assert.deepEqual([0.45, -0.1, 1.234567, 2.8999].map((r) => nullCdf(uneven, r)), expected);
});

// ---- topp ----

test('topp keeps the shortest prefix reaching p, the crossing expert included', () => {
  const r = [Math.log(0.2), Math.log(0.5), Math.log(0.3)];
  const probs = softmax32(r);
  const topp = (p: number, minK = 1, maxK = 3, weights: 'probs' | 'renorm' = 'probs') =>
    choice(new TopPRouter({ p, minK, maxK, weights }).route(0, new Float32Array(r), 1, 3));
  assert.deepEqual(topp(0.3), { experts: [1], weights: [probs[1]] });
  assert.deepEqual(topp(0.6), { experts: [1, 2], weights: [probs[1], probs[2]] });
  assert.deepEqual(topp(0.9).experts, [1, 2, 0]);
  assert.deepEqual(topp(0.3, 2).experts, [1, 2]);
  assert.deepEqual(topp(0.9, 1, 2).experts, [1, 2]);
  const renormalized = topp(0.6, 1, 3, 'renorm').weights;
  assert.deepEqual(renormalized, [1, 2].map((e) => Math.fround(probs[e] / (probs[1] + probs[2]))));
  assert.ok(Math.abs(sum(renormalized) - 1) < 1e-6);
});

test('topp: reaching p exactly stops there; ties by the lower index', () => {
  const equal = [0, 0, 0, 0]; // probs exactly 0.25 each, cumulative 0.25, 0.5, 0.75, 1
  const count = (p: number, maxK = E) => route(new TopPRouter({ p, minK: 1, maxK, weights: 'probs' }), equal).counts[0];
  assert.deepEqual([0.25, 0.5, 0.75, 0.5000001, 1].map((p) => count(p)), [1, 2, 3, 3, 4]);
  assert.deepEqual(choice(route(new TopPRouter({ p: 0.5, minK: 1, maxK: E, weights: 'probs' }), equal)).experts, [0, 1]);
  assert.equal(count(1, 2), 2);
});

test('topp p = 1 keeps every expert even when float32 rounding makes a shorter prefix sum to 1', () => {
  // probs = [0.5, 0.5, 1.9e-44]: the first two already sum to 1.0 in double, but the third has positive mass.
  const logits = new Float32Array([0, 0, -100]);
  const routing = new TopPRouter({ p: 1, minK: 1, maxK: 3, weights: 'probs' }).route(0, logits, 1, 3);
  assert.ok(routing.weights[2] > 0);
  assert.deepEqual(choice(routing).experts, [0, 1, 2]);
});

// ---- specs ----

test('router specs: every valid form, with defaults filled in canonically', () => {
  const spec = (s: string, d = defaults) => parseRouterSpec(s, d).spec;
  assert.equal(spec(''), 'topk:k=2,renormalize=false');
  assert.equal(spec('default'), 'topk:k=2,renormalize=false');
  assert.equal(spec('default:k=3'), 'topk:k=3,renormalize=false'); // the model's own routing at another k
  assert.equal(spec(' default ', routerDefaults({ normTopkProb: true })), 'topk:k=2,renormalize=true');
  assert.equal(spec('topk'), 'topk:k=2,renormalize=false');
  assert.equal(spec('topk:k=3'), 'topk:k=3,renormalize=false');
  assert.equal(spec('topk:k=3.0, renormalize=true'), 'topk:k=3,renormalize=true');
  assert.equal(spec('topp:p=0.7,max_k=3'), 'topp:p=0.7,min_k=1,max_k=3,weights=probs');
  assert.equal(spec('topp:p=1'), 'topp:p=1,min_k=1,max_k=4,weights=probs');
  assert.equal(spec(`bh:alpha=0.3,max_k=3,min_k=1,null=${identityFile}`), `bh:alpha=0.3,max_k=3,min_k=1,temperature=1,weights=renorm,pvalues=exact,null=${identityFile}`);
  // The null path is resolved against the working directory, so the canonical spec holds an absolute path.
  assert.equal(spec(`bh:null=${relative(process.cwd(), identityFile)},temperature=0.5,max_k=4,alpha=1`), `bh:alpha=1,max_k=4,min_k=1,temperature=0.5,weights=renorm,pvalues=exact,null=${identityFile}`);
  const comma = writeJson(identityNulls, 'a,b.json'); // a comma inside the path is part of the value
  assert.equal(spec(`bh:alpha=0.5,max_k=2,null=${comma}`), `bh:alpha=0.5,max_k=2,min_k=1,temperature=1,weights=renorm,pvalues=exact,null=${comma}`);
});

test('a router spec parses back to an equal router', () => {
  const specs = [
    'default', 'topk:k=4,renormalize=true', 'topp:p=0.55,min_k=2,max_k=3,weights=renorm', `bh:alpha=0.35,max_k=3,min_k=2,temperature=0.7,weights=probs,pvalues=bf16,null=${identityFile}`,
    'granite:k=3', 'deepseek_v2:k=2,n_group=2,topk_group=1,scale=1.5', 'deepseek_v3:k=2,n_group=2,topk_group=1,renormalize=true,scale=2.5',
    'threshold:tau=0.3,min_k=2,max_k=3,weights=renorm', 'entropy:min_k=2,max_k=3,weights=renorm', `hc:alpha0=1,min_k=2,max_k=3,weights=renorm,null=${identityFile}`,
  ];
  const logits = new Float32Array([0.2, 0.9, 0.4, 0.7, 0.95, 0.1, 0.6, 0.3]);
  for (const s of specs) {
    const router = parseRouterSpec(s, defaults);
    const again = parseRouterSpec(router.spec, defaults);
    assert.equal(again.spec, router.spec);
    assert.deepEqual([again.minK, again.maxK], [router.minK, router.maxK]);
    assert.deepEqual(again.route(1, logits, 2, E), router.route(1, logits, 2, E));
  }
  assert.deepEqual(ROUTER_KINDS.map((k) => k.name), ['default', 'topk', 'granite', 'deepseek_v2', 'deepseek_v3', 'topp', 'threshold', 'entropy', 'bh', 'hc', 'randk']);
});

test('bad router specs are one --router error naming the key, the value and the valid range', () => {
  const rejects = (spec: string, ...patterns: RegExp[]) =>
    assert.throws(
      () => parseRouterSpec(spec, defaults),
      (e: unknown) => e instanceof RoutelabError && e.where === '--router' && patterns.every((p) => p.test(e.message)),
      spec,
    );
  rejects('topq:p=0.5', /unknown router "topq"/, /default \(/, /topk \(/, /topp \(/, /bh \(/);
  rejects('topk:kk=3', /topk: unknown key "kk"/, /k \(experts per token/, /renormalize \(true or false/);
  rejects('default:r=3', /default: unknown key "r"; valid keys: k \(experts per token/);
  rejects('default:k=5', /default: invalid k=5; expected an integer in \[1, 4\]/);
  rejects('topk:k', /expected key=value, got "k"/);
  rejects('topk:k=2,k=3', /k is given twice/);
  rejects('topk:k=5', /invalid k=5; expected an integer in \[1, 4\]/);
  rejects('topk:k=0', /invalid k=0; expected an integer in \[1, 4\]/);
  rejects('topk:k=1.5', /invalid k=1\.5; expected an integer/);
  rejects('topk:k=two', /invalid k=two/);
  rejects('topk:k=', /invalid k=; expected an integer/);
  rejects('topk:renormalize=yes', /invalid renormalize=yes; expected true or false/);
  rejects('topp:max_k=3', /topp: p is required \(probability mass/);
  rejects('topp:p=0', /invalid p=0; expected a number in \(0, 1\]/);
  rejects('topp:p=1.2', /invalid p=1\.2; expected a number in \(0, 1\]/);
  rejects('topp:p=0.5,min_k=4,max_k=3', /invalid min_k=4; expected an integer in \[1, max_k = 3\]/);
  rejects(`bh:alpha=0,max_k=2,null=${identityFile}`, /bh: invalid alpha=0; expected a number in \(0, 1\]/);
  rejects(`bh:alpha=1.5,max_k=2,null=${identityFile}`, /invalid alpha=1\.5/);
  rejects(`bh:alpha=0x1,max_k=2,null=${identityFile}`, /invalid alpha=0x1/);
  rejects(`bh:alpha=0.3,max_k=5,null=${identityFile}`, /invalid max_k=5; expected an integer in \[1, 4\]/);
  rejects(`bh:alpha=0.3,max_k=2,min_k=3,null=${identityFile}`, /invalid min_k=3; expected an integer in \[1, max_k = 2\]/);
  rejects(`bh:alpha=0.3,max_k=2,temperature=0,null=${identityFile}`, /invalid temperature=0; expected a number > 0/);
  rejects(`bh:alpha=0.3,max_k=2,weights=softmax,null=${identityFile}`, /invalid weights=softmax; expected one of renorm, probs/);
  rejects(`bh:alpha=0.3,max_k=2,pvalues=f16,null=${identityFile}`, /invalid pvalues=f16; expected one of exact, bf16/);
  rejects(`bh:max_k=2,null=${identityFile}`, /bh: alpha is required/);
  rejects('bh:alpha=0.3,max_k=2', /bh: null is required \(path of the null-model file/);
});

// ---- null-model files ----

test('null-model files are validated, errors naming the file and the JSON path', () => {
  const rejects = (content: unknown, where: string, pattern: RegExp) =>
    assert.throws(
      () => parseNullModel(content, 'null.json', nullShape),
      (e: unknown) => e instanceof RoutelabError && e.where === where && pattern.test(e.message),
      where,
    );
  const layers = (bad: unknown) => ({ format: NULL_MODEL_FORMAT, layers: [identity, bad] });
  rejects([], 'null.json', /expected a JSON object/);
  rejects({ ...identityNulls, format: 'routelab.null/2' }, 'null.json: format', /expected "routelab.null\/1", got "routelab.null\/2"/);
  rejects({ format: NULL_MODEL_FORMAT, layers: [identity] }, 'null.json: layers', /expected 2 entries \(one per MoE layer of the model\), got 1/);
  rejects(layers([1]), 'null.json: layers[1]', /expected an object/);
  rejects(layers({ x: [0, 1, 1], cdf: [0, 0.5, 1] }), 'null.json: layers[1].x', /expected strictly increasing finite numbers; x\[2\] = 1 after 1/);
  rejects(layers({ x: [0, 1e400], cdf: [0, 1] }), 'null.json: layers[1].x', /x\[1\] = Infinity/);
  rejects(layers({ x: [0, '1'], cdf: [0, 1] }), 'null.json: layers[1].x', /expected an array of numbers/);
  rejects(layers({ x: [0], cdf: [0] }), 'null.json: layers[1].x', /at least 2 points, got 1/);
  rejects(layers({ x: [0, 1], cdf: [0, 0.5, 1] }), 'null.json: layers[1].cdf', /expected 2 values \(as many as x\), got 3/);
  rejects(layers({ x: [0, 1, 2], cdf: [0, 0.6, 0.5] }), 'null.json: layers[1].cdf', /non-decreasing values in \[0, 1\]; cdf\[2\] = 0.5 after 0.6/);
  rejects(layers({ x: [0, 1], cdf: [0, 1.5] }), 'null.json: layers[1].cdf', /cdf\[1\] = 1.5/);
  rejects(layers({ ...identity, experts: [identity] }), 'null.json: layers[1].experts', /expected 4 entries \(one per expert\), got 1/);
  rejects(layers({ ...identity, experts: [identity, identity, { x: [1, 0], cdf: [0, 1] }, identity] }), 'null.json: layers[1].experts[2].x', /x\[1\] = 0 after 1/);
  rejects({ ...identityNulls, meta: 3 }, 'null.json: meta', /expected an object/);

  const missing = join(tmp, 'missing.json');
  assert.throws(() => readNullModel(missing), (e: unknown) => e instanceof RoutelabError && e.where === missing && /cannot read/.test(e.message));
  const garbled = join(tmp, 'garbled.json');
  writeFileSync(garbled, '{"format": ');
  assert.throws(() => readNullModel(garbled), (e: unknown) => e instanceof RoutelabError && e.where === garbled && /not valid JSON/.test(e.message));
  // The layer count is checked when the spec is built for a model.
  assert.throws(() => parseRouterSpec(`bh:alpha=0.3,max_k=2,null=${identityFile}`, routerDefaults({ numLayers: 3 })), /layers: expected 3 entries/);
});

test('a valid null-model file keeps its grids as float64 and its meta', () => {
  const model = readNullModel(identityFile, nullShape);
  assert.equal(model.file, identityFile);
  assert.deepEqual(model.meta, { note: 'test' });
  assert.ok(model.layers[0].x instanceof Float64Array);
  assert.deepEqual(Array.from(model.layers[1].cdf), [0, 1]);
});

// ---- family routers (hand-checked cases; the family fixtures check them against Hugging Face) ----

test('granite: the k largest raw logits, softmax over those k only', () => {
  const r = route(new GraniteRouter(2), [0.5, 2, -1, 1]);
  assert.deepEqual(Array.from(r.experts), [1, 3]);
  const z = Math.exp(2) + Math.exp(1);
  assertClose(Array.from(r.weights), [Math.exp(2) / z, Math.exp(1) / z]);
  // Ties go to the lower index, as everywhere.
  assert.deepEqual(Array.from(route(new GraniteRouter(1), [1, 1, 1, 1]).experts), [0]);
});

test('deepseek_v2: greedy softmax top-k × scale, never renormalised; group-limited keeps the groups of highest max p', () => {
  const logits = [0, 1, 3, 2]; // softmax: experts 2 > 3 > 1 > 0
  const p = softmax32(logits);
  const greedy = route(new DeepseekV2Router(2, { numGroups: 1, topkGroups: 1 }, 1.5), logits);
  assert.deepEqual(Array.from(greedy.experts), [2, 3]);
  assertClose(Array.from(greedy.weights), [p[2] * 1.5, p[3] * 1.5], 1e-6);
  // Groups {0,1} and {2,3}: keeping only the best group (max p = p[2]) gives experts 2 and 3 again; with logits where
  // the second-best expert sits in the other group, the group limit changes the choice.
  const split = [0, 2.5, 3, -1];
  const q = softmax32(split);
  assert.deepEqual(Array.from(route(new DeepseekV2Router(2, { numGroups: 1, topkGroups: 1 }, 1), split).experts), [2, 1]);
  const limited = route(new DeepseekV2Router(2, { numGroups: 2, topkGroups: 1 }, 1), split);
  assert.deepEqual(Array.from(limited.experts), [2, 3]);
  assertClose(Array.from(limited.weights), [q[2], q[3]], 1e-7);
});

test('deepseek_v3: sigmoid scores, selection on score + bias within groups ranked by their top-2 sum, unbiased weights', () => {
  const sig = (x: number) => Math.fround(1 / (1 + Math.exp(-x)));
  const logits = [1, 0.5, 0.9, 0.8];
  const bias = [0, 0, 0, 0.5]; // expert 3 wins selection only through its bias
  const v3 = (groups: { numGroups: number; topkGroups: number }, renormalize: boolean, scale: number) =>
    route(new DeepseekV3Router(2, groups, renormalize, scale, () => Float32Array.from(bias)), logits);
  const plain = v3({ numGroups: 1, topkGroups: 1 }, false, 1);
  assert.deepEqual(Array.from(plain.experts), [3, 0]);
  assertClose(Array.from(plain.weights), [sig(0.8), sig(1)], 1e-7);
  const renormalised = v3({ numGroups: 1, topkGroups: 1 }, true, 2.5);
  const sum = sig(0.8) + sig(1);
  assertClose(Array.from(renormalised.weights), [(sig(0.8) / sum) * 2.5, (sig(1) / sum) * 2.5], 1e-6);
  // Groups {0,1}: 0.731 + 0.622; {2,3}: 0.711 + 0.690 + 0.5 → the second group alone: experts 3 and 2.
  const grouped = v3({ numGroups: 2, topkGroups: 1 }, false, 1);
  assert.deepEqual(Array.from(grouped.experts), [3, 2]);
  // Without a bias (a model that has none) it is sigmoid top-k.
  const unbiased = new DeepseekV3Router(2, { numGroups: 1, topkGroups: 1 }, false, 1, () => null);
  assert.deepEqual(Array.from(route(unbiased, logits).experts), [0, 2]);
});

test('group limits that cannot hold k experts are refused naming the router', () => {
  assert.throws(() => parseRouterSpec('deepseek_v3:k=3,n_group=2,topk_group=1', defaults), /n_group must divide E and keep at least k/);
  assert.throws(() => parseRouterSpec('deepseek_v2:k=2,n_group=3', defaults), /n_group must divide E/);
  assert.throws(() => parseRouterSpec('deepseek_v2:k=2,n_group=2,topk_group=3', defaults), /invalid topk_group=3; expected an integer in \[1, n_group = 2\]/);
});

// ---- weight modes and bf16 p-values ----

test('bh weights=probs keeps the selected experts\' softmax probabilities; renorm (the default) divides by their sum', () => {
  const logits = [0.9, 0.8, 0.1, 0.2]; // p = 0.1, 0.2, 0.9, 0.8: alpha 0.5 passes ranks 1–2 (0.1 ≤ 0.125, 0.2 ≤ 0.25)
  const probs = softmax32(logits);
  const renorm = choice(route(bh({ alpha: 0.5, maxK: 4 }), logits));
  assert.deepEqual(renorm.experts, [0, 1]);
  assertClose(renorm.weights, [probs[0] / (probs[0] + probs[1]), probs[1] / (probs[0] + probs[1])], 1e-7);
  const kept = choice(route(bh({ alpha: 0.5, maxK: 4, weights: 'probs' }), logits));
  assert.deepEqual(kept, { experts: [0, 1], weights: [probs[0], probs[1]] });
});

test('bh pvalues=bf16: p-values rounded to bfloat16 and clamped to [2^-7, 1 - 2^-7] change the count', () => {
  // alpha 0.99, E 4: thresholds 0.2475, 0.495, 0.7425, 0.99. Exact p = 0.24753, 0.4951, 0.995, 0.995 pass no rank
  // (n clamps to min_k 1); in bf16 the first two round down to 253·2^-10 and 253·2^-9, which pass ranks 1 and 2.
  const logits = [0.75247, 0.5049, 0.005, 0.005];
  assert.equal(route(bh({ alpha: 0.99, maxK: 4 }), logits).counts[0], 1);
  const rounded = route(bh({ alpha: 0.99, maxK: 4, pValues: 'bf16' }), logits);
  assert.equal(rounded.counts[0], 2);
  assert.deepEqual(Array.from(rounded.pValues!), [253 * 2 ** -10, 253 * 2 ** -9, 1 - 2 ** -7, 1 - 2 ** -7]);
  // The clamp: p = 0.001 becomes 2^-7, which fails alpha = 0.02's first threshold (0.005) but passes the second.
  const clamped = route(bh({ alpha: 0.02, maxK: 4, pValues: 'bf16' }), [0.999, 0.9985, 0, 0]);
  assert.deepEqual([clamped.pValues![0], clamped.pValues![1], clamped.pValues![2]], [2 ** -7, 2 ** -7, 1 - 2 ** -7]);
  assert.equal(clamped.counts[0], 2);
});

// ---- randk ----

test('randk draws each token\'s count from the source\'s per-layer distribution: reproducible, batch-independent, top experts', () => {
  const shares = [[0, 0.5, 0.25, 0.25], [0, 0, 0, 1]];
  const file = writeJson({ format: 'routelab.eval/1', config: '3experts_bh_a030', routing: { per_layer_count_shares: shares } });
  const router = parseRouterSpec(`randk:seed=7,from=${file}`, defaults);
  assert.equal(router.spec, `randk:seed=7,weights=probs,from=${file}`);
  assert.equal(router.configName(softmaxRouting(false)), '3experts_bh_a030_randk_probs_s7');
  assert.deepEqual([router.minK, router.maxK, router.adaptive], [1, 3, true]);
  const random = createRandom(11);
  const T = 4000;
  const logits = Float32Array.from({ length: T * E }, () => random() * 4 - 2);
  const layer0 = router.route(0, logits, T, E);
  const seen = [0, 0, 0, 0];
  for (let t = 0; t < T; t++) seen[layer0.counts[t]]++;
  shares[0].forEach((p, c) => assert.ok(Math.abs(seen[c] / T - p) <= 3 * Math.sqrt((p * (1 - p)) / T) + 1e-12, `c = ${c}: ${seen[c] / T} vs ${p}`));
  assert.ok(router.route(1, logits, T, E).counts.every((c) => c === 3));
  // The same seed draws the same counts; one token alone draws what it drew in the batch; another seed draws others.
  assert.deepEqual(parseRouterSpec(`randk:seed=7,from=${file}`, defaults).route(0, logits, T, E), layer0);
  for (const t of [0, 17, 3999]) assert.equal(router.route(0, logits.slice(t * E, (t + 1) * E), 1, E).counts[0], layer0.counts[t]);
  const other = parseRouterSpec(`randk:seed=8,from=${file}`, defaults).route(0, logits, T, E);
  assert.ok(other.counts.some((c, t) => c !== layer0.counts[t]));
  // The c most probable experts, with their probabilities (weights=probs) or renormalised.
  const t = layer0.counts.findIndex((c) => c === 2);
  const row = Array.from(logits.subarray(t * E, (t + 1) * E));
  const probs = softmax32(row);
  const top2 = [0, 1, 2, 3].sort((a, b) => probs[b] - probs[a] || a - b).slice(0, 2);
  assert.deepEqual(choice(router.route(0, Float32Array.from(row), 1, E)), { experts: top2, weights: top2.map((e) => probs[e]) });
  const renorm = choice(parseRouterSpec(`randk:seed=7,weights=renorm,from=${file}`, defaults).route(0, Float32Array.from(row), 1, E));
  assertClose(renorm.weights, top2.map((e) => probs[e] / (probs[top2[0]] + probs[top2[1]])), 1e-7);
});

test('randk refuses a source that is not an eval summary of a model with the same MoE layers', () => {
  const bad = writeJson({ format: 'routelab.eval/1', config: 'x', routing: {} });
  assert.throws(() => parseRouterSpec(`randk:from=${bad}`, defaults), /expected a routelab\.eval\/1 summary with routing\.per_layer_count_shares/);
  const oneLayer = writeJson({ format: 'routelab.eval/1', config: 'x', routing: { per_layer_count_shares: [[0, 1]] } });
  assert.throws(() => parseRouterSpec(`randk:from=${oneLayer}`, defaults), /count distributions for 1 MoE layers, the model has 2/);
});

// ---- threshold, entropy, hc ----

test('threshold keeps the experts with probability ≥ tau, most probable first, clamped to [min_k, max_k]', () => {
  // probs ≈ [0.1, 0.4, 0.2, 0.3]: tau 0.25 passes e1, e3; 0.15 passes e1, e3, e2; 0.5 passes none.
  const r = [Math.log(0.1), Math.log(0.4), Math.log(0.2), Math.log(0.3)];
  const probs = softmax32(r);
  const threshold = (tau: number, minK = 1, maxK = E, weights: WeightMode = 'probs') => choice(route(new ThresholdRouter({ tau, minK, maxK, weights }), r));
  assert.deepEqual(threshold(0.25), { experts: [1, 3], weights: [probs[1], probs[3]] });
  assert.deepEqual(threshold(0.15).experts, [1, 3, 2]);
  assert.deepEqual(threshold(0.5).experts, [1]); // none passes: min_k = 1, the most probable
  assert.deepEqual(threshold(1).experts, [1]);
  assert.deepEqual(threshold(0.35, 3).experts, [1, 3, 2]); // one passes, topped up to min_k = 3
  assert.deepEqual(threshold(0.15, 1, 2).experts, [1, 3]); // three pass, cut to max_k = 2
  const renorm = threshold(0.25, 1, E, 'renorm').weights;
  assert.deepEqual(renorm, [1, 3].map((e) => Math.fround(probs[e] / (probs[1] + probs[3]))));
  // Equal logits: probs exactly 0.25, so tau = 0.25 keeps all four (≥), and a hair above keeps none (min_k: e0, the lower index).
  assert.deepEqual(choice(route(new ThresholdRouter({ tau: 0.25, minK: 1, maxK: E, weights: 'probs' }), [0, 0, 0, 0])).experts, [0, 1, 2, 3]);
  assert.deepEqual(choice(route(new ThresholdRouter({ tau: 0.2500001, minK: 1, maxK: E, weights: 'probs' }), [0, 0, 0, 0])).experts, [0]);
});

test('entropy: k = min_k + round(h·(max_k − min_k)) from the normalised entropy h, halves rounded up', () => {
  const entropy = (logits: number[], minK = 1, maxK = E, weights: WeightMode = 'probs') => choice(route(new EntropyRouter({ minK, maxK, weights }), logits));
  // Uniform: h = ln 4 / ln 4 = 1 → k = max_k.
  assert.deepEqual(entropy([0, 0, 0, 0]).experts, [0, 1, 2, 3]);
  assert.deepEqual(entropy([0, 0, 0, 0], 2, 3).experts, [0, 1, 2]);
  // One-hot (e^-100 ≈ 4e-44): h ≈ 1e-42 → k = min_k.
  assert.deepEqual(entropy([0, 100, 0, 0]).experts, [1]);
  assert.deepEqual(entropy([0, 100, 0, 0], 2).experts, [1, 0]);
  // probs [0.5, 0.5, 0, 0] (e^-200 underflows to 0, and 0·ln 0 counts 0): h = ln 2 / ln 4 = 0.5 exactly.
  // min_k 1, max_k 4: 1 + round(1.5) = 3 (the half rounds up; the third expert's weight is its probability, 0).
  const half = [0, 0, -200, -200];
  assert.deepEqual(entropy(half), { experts: [0, 1, 2], weights: [0.5, 0.5, 0] });
  assert.deepEqual(entropy(half, 1, 3).experts, [0, 1]); // 1 + round(0.5·2) = 2
  // probs [1/3, 1/3, 1/3, 0]: h = ln 3 / ln 4 = 0.7925 → 1 + round(2.377) = 3.
  assert.deepEqual(entropy([0, 0, 0, -200]).experts, [0, 1, 2]);
  // renorm divides by the selected experts' total: [0.5, 0.5, 0] already sums to 1; min_k = max_k is top-k.
  assert.deepEqual(entropy(half, 1, E, 'renorm').weights, [0.5, 0.5, 0]);
  const r = [0.3, -1, 2, 0.5];
  const probs = softmax32(r);
  assert.deepEqual(entropy(r, 2, 2, 'renorm'), { experts: [2, 3], weights: [2, 3].map((e) => Math.fround(probs[e] / (probs[2] + probs[3]))) });
});

function hc(params: Partial<HcParams> = {}): HcRouter {
  return new HcRouter({ alpha0: 0.5, minK: 1, maxK: E, weights: 'probs', nullModel: readNullModel(identityFile), ...params });
}

test('hc: HC⁺ searches the ranks i ≤ alpha0·E with p_(i) ≥ 1/E and keeps the i* smallest p-values', () => {
  // Identity null: p = 1 − r = [0.5, 0.875, 1/128, 0.375]; ascending e2, e3, e0, e1. E = 4, √E = 2, 1/E = 0.25.
  // HC(i) = 2·(i/4 − p_(i)) / √(p_(i)(1 − p_(i))):
  //   HC(1) = 2·(0.25 − 0.0078125)/√(0.0078125·0.9921875) = 5.50   (excluded: p_(1) < 1/E)
  //   HC(2) = 2·(0.5 − 0.375)/√(0.375·0.625)             = 0.516
  //   HC(3) = 2·(0.75 − 0.5)/√(0.5·0.5)                   = 1
  //   HC(4) = 2·(1 − 0.875)/√(0.875·0.125)               = 0.756
  // alpha0 = 1 searches ranks 2–4: i* = 3 (plain HC would take rank 1); alpha0 = 0.5 searches rank 2 only: i* = 2.
  const r = [0.5, 0.125, 0.9921875, 0.625];
  const probs = softmax32(r);
  const all = route(hc({ alpha0: 1 }), r);
  assert.deepEqual(choice(all), { experts: [2, 3, 0], weights: [2, 3, 0].map((e) => probs[e]) });
  assert.deepEqual(Array.from(all.pValues!), [0.5, 0.875, 0.0078125, 0.375]);
  assert.deepEqual(choice(route(hc(), r)).experts, [2, 3]);
  assert.deepEqual(choice(route(hc({ alpha0: 1, maxK: 2 }), r)).experts, [2, 3]); // clamped to max_k
  assert.deepEqual(choice(route(hc({ minK: 4 }), r)).experts, [2, 3, 0, 1]); // clamped to min_k
  const renorm = choice(route(hc({ weights: 'renorm' }), r)).weights;
  assert.deepEqual(renorm, [2, 3].map((e) => Math.fround(probs[e] / (probs[2] + probs[3]))));
});

test('hc: with every searched p-value below 1/E all searched ranks are kept; p = 1 is no evidence (HC = −∞, ties to the smaller rank)', () => {
  // p = [0.0625, 0.125, 0.5, 0.875]: HC = 1.55, 2.27, 1, 0.756. alpha0 = 0.5 searches ranks 1–2, both below 1/E = 0.25:
  // i* = 2. alpha0 = 1 also searches ranks 3–4 and finds i* = 3 (plain HC would take rank 2).
  const r = [0.9375, 0.875, 0.5, 0.125];
  assert.deepEqual(choice(route(hc(), r)).experts, [0, 1]);
  assert.deepEqual(choice(route(hc({ alpha0: 1 }), r)).experts, [0, 1, 2]);
  // Logits below the grid: p = 1 for every expert, HC(i) = −∞ at every rank, so the first searched rank wins.
  const none = route(hc({ alpha0: 1 }), [-1, -1, -1, -1]);
  assert.deepEqual(Array.from(none.pValues!), [1, 1, 1, 1]);
  assert.deepEqual(choice(none).experts, [0]);
  assert.deepEqual(choice(route(hc({ alpha0: 1, minK: 2 }), [-1, -1, -1, -1])).experts, [0, 1]);
});

test('hc agrees with an independent numpy HC⁺ on random logits (skipped without python3 and numpy)', (t) => {
  if (spawnSync('python3', ['-c', 'import numpy'], { encoding: 'utf8' }).status !== 0) return t.skip('python3 with numpy is not available');
  const [T, n] = [400, 16];
  const random = createRandom(5);
  const logits = Float32Array.from({ length: T * n }, () => random() * 7 - 3.5);
  // A logistic null rescaled to reach 0 and 1 on [−3, 3], narrower than the logits: some p-values are exactly 0 or 1.
  const x = Array.from({ length: 25 }, (_, j) => -3 + j / 4);
  const logistic = (v: number) => 1 / (1 + Math.exp(-v));
  const cdf = x.map((v) => (logistic(v) - logistic(-3)) / (logistic(3) - logistic(-3)));
  const nullFile = writeJson({ format: NULL_MODEL_FORMAT, layers: [{ x, cdf }], meta: {} });
  const cases = [{ alpha0: 0.5, minK: 1, maxK: n }, { alpha0: 1, minK: 1, maxK: n }, { alpha0: 0.25, minK: 2, maxK: 6 }];
  const script = `
import json, sys
import numpy as np
d = json.load(sys.stdin)
E, T = d['E'], d['T']
r = np.array(d['logits'], dtype=np.float64).reshape(T, E)
p = 1 - np.interp(r, d['x'], d['cdf'])
out = []
for c in d['cases']:
    m = int(np.floor(c['alpha0'] * E + 1e-9))
    chosen = []
    for row in p:
        order = np.argsort(row, kind='stable')
        s = row[order]
        i = np.arange(1, E + 1)
        with np.errstate(divide='ignore', invalid='ignore'):
            h = np.where(s < 1, np.sqrt(E) * (i / E - s) / np.sqrt(s * (1 - s)), -np.inf)
        ok = (i <= m) & (s >= 1 / E)
        star = m if not ok.any() else int(np.flatnonzero(ok)[np.argmax(h[ok])]) + 1
        chosen.append(order[:min(c['maxK'], max(c['minK'], star))].tolist())
    out.append(chosen)
print(json.dumps(out))
`;
  const python = spawnSync('python3', ['-c', script], { input: JSON.stringify({ E: n, T, logits: Array.from(logits), x, cdf, cases }), encoding: 'utf8' });
  assert.equal(python.status, 0, python.stderr);
  const expected = JSON.parse(python.stdout) as number[][][];
  cases.forEach((c, k) => {
    const routing = new HcRouter({ ...c, weights: 'probs', nullModel: readNullModel(nullFile) }).route(0, logits, T, n);
    const got = Array.from({ length: T }, (_, t) => Array.from(routing.experts.subarray(t * routing.maxK, t * routing.maxK + routing.counts[t])));
    assert.deepEqual(got, expected[k], `alpha0 = ${c.alpha0}`);
    assert.ok(new Set(routing.counts).size > 2, 'the counts vary'); // the case is not degenerate
    if (k === 0) assert.ok(routing.pValues!.includes(0) && routing.pValues!.includes(1));
  });
});

test('threshold, entropy and hc specs: canonical forms, configuration names, errors', () => {
  const router = (s: string) => parseRouterSpec(s, defaults);
  assert.equal(router('threshold:tau=0.2').spec, 'threshold:tau=0.2,min_k=1,max_k=4,weights=probs');
  assert.equal(router('entropy').spec, 'entropy:min_k=1,max_k=4,weights=probs');
  assert.equal(router(`hc:null=${identityFile}`).spec, `hc:alpha0=0.5,min_k=1,max_k=4,weights=probs,null=${identityFile}`);
  const named = (s: string) => router(s).configName(softmaxRouting(false));
  assert.equal(named('threshold:tau=0.2'), '4experts_threshold_t020');
  assert.equal(named('threshold:tau=0.015,min_k=2,max_k=3,weights=renorm'), '3experts_threshold_t0015_mink2_renorm');
  assert.equal(named('entropy:max_k=3'), '3experts_entropy');
  assert.equal(named('entropy:min_k=2,weights=renorm'), '4experts_entropy_mink2_renorm');
  assert.equal(named(`hc:null=${identityFile}`), '4experts_hc_a050');
  assert.equal(named(`hc:alpha0=1,max_k=2,null=${identityFile}`), '2experts_hc_a100');
  for (const s of ['threshold:tau=0.2', 'entropy', `hc:null=${identityFile}`]) assert.deepEqual([router(s).adaptive, router(s).minK, router(s).maxK], [true, 1, 4]);
  const rejects = (spec: string, pattern: RegExp) =>
    assert.throws(() => router(spec), (e: unknown) => e instanceof RoutelabError && e.where === '--router' && pattern.test(e.message), spec);
  rejects('threshold:max_k=3', /threshold: tau is required \(probability an expert must reach/);
  rejects('threshold:tau=0', /threshold: invalid tau=0; expected a number in \(0, 1\]/);
  rejects('threshold:tau=1.5', /threshold: invalid tau=1\.5; expected a number in \(0, 1\]/);
  rejects('threshold:tau=0.2,min_k=4,max_k=3', /threshold: invalid min_k=4; expected an integer in \[1, max_k = 3\]/);
  rejects('threshold:tau=0.2,weights=softmax', /threshold: invalid weights=softmax; expected one of renorm, probs/);
  rejects('entropy:max_k=5', /entropy: invalid max_k=5; expected an integer in \[1, 4\]/);
  rejects('entropy:min_k=3,max_k=2', /entropy: invalid min_k=3; expected an integer in \[1, max_k = 2\]/);
  rejects('entropy:k=2', /entropy: unknown key "k"; valid keys: min_k \(/);
  rejects('hc:alpha0=0.5', /hc: null is required \(path of the null-model file/);
  rejects(`hc:alpha0=0,null=${identityFile}`, /hc: invalid alpha0=0; expected a number in \(0, 1\]/);
  rejects(`hc:alpha0=0.2,null=${identityFile}`, /hc: invalid alpha0=0\.2; expected a number in \[1\/E, 1\] = \[0\.25, 1\]/);
  rejects(`hc:max_k=5,null=${identityFile}`, /hc: invalid max_k=5; expected an integer in \[1, 4\]/);
  rejects(`hc:alpha=0.5,null=${identityFile}`, /hc: unknown key "alpha"; valid keys: alpha0 \(/);
});

test('bh and hc take a null model; the others do not', () => {
  assert.deepEqual(['bh:alpha=0.3', ' hc ', 'hc:max_k=2', 'topp:p=0.5', 'threshold', 'default', ''].map(takesNullModel), [true, true, true, false, false, false, false]);
});
