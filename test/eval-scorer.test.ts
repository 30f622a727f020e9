import assert from 'node:assert/strict';
import { test } from 'node:test';
import { rollingWindows } from '../src/eval/requests.js';
import { scoreUnits, type ScoringInput } from '../src/eval/scorer.js';
import { loadCpuModel, parityDir, tokenIds } from './helpers.js';

const model = loadCpuModel(parityDir); // random tiny model, vocab 1024
const V = model.architecture.vocabSize;
const EOS = model.architecture.eosTokenId!;

function unit(len: number, targets: number, seed: number, group = seed): ScoringInput {
  const ids = Int32Array.from(tokenIds(len + 1, V, seed));
  return { input: ids.slice(0, len), targets: ids.slice(len + 1 - targets), group };
}

test('scores do not depend on batch composition', async () => {
  const units = [unit(9, 3, 1), unit(17, 5, 2), unit(4, 1, 3), unit(12, 12, 4)];
  const together = await scoreUnits(model, units, { batchSize: 4 });
  assert.equal(together.batches, 1);
  for (let i = 0; i < units.length; i++) {
    const alone = await scoreUnits(model, [units[i]], { batchSize: 1 });
    assert.deepEqual(alone.results[0], together.results[i], `unit ${i}`);
  }
  const small = await scoreUnits(model, units, { batchSize: 2, maxBatchTokens: 20 });
  assert.deepEqual(small.results, together.results);
  assert.equal(together.scoredPositions, 3 + 5 + 1 + 12);
  assert.equal(together.inputTokens, 9 + 17 + 4 + 12); // one input per group: nothing to share
});

test('identical inputs of a group run once and share their rows', async () => {
  const input = Int32Array.from(tokenIds(8, V, 7));
  const out = await scoreUnits(model, [
    { input, targets: Int32Array.of(5), group: 0 },
    { input, targets: Int32Array.of(6), group: 0 },
    { input, targets: Int32Array.of(5), group: 1 },
  ]);
  assert.equal(out.sequences.length, 2);
  assert.deepEqual([...out.sequenceOf], [0, 0, 1]);
  assert.equal(out.results[0].logLikelihood, out.results[2].logLikelihood);
  assert.notEqual(out.results[0].logLikelihood, out.results[1].logLikelihood);
});

/** Independent reference: log p(target) from a full forward, log-softmax written the textbook way in double. */
function referenceLogProb(logits: Float32Array, row: number, target: number): { lp: number; argmax: number } {
  let max = -Infinity;
  let argmax = 0;
  for (let v = 0; v < V; v++) if (logits[row * V + v] > max) [max, argmax] = [logits[row * V + v], v];
  let z = 0;
  for (let v = 0; v < V; v++) z += Math.exp(logits[row * V + v] - max);
  return { lp: logits[row * V + target] - max - Math.log(z), argmax };
}

test('rolling loglikelihood = Σ per-token log-probs of one full forward when max_length ≥ length', async () => {
  const doc = Int32Array.from(tokenIds(40, V, 11));
  const windows = rollingWindows(doc, EOS, 64);
  assert.equal(windows.length, 1);
  const scored = await scoreUnits(model, windows.map((w) => ({ ...w, group: 0 })));
  const { logits } = await model.forward([[EOS, ...doc.subarray(0, doc.length - 1)]], { logits: 'all' });
  let ll = 0;
  let top1 = 0;
  for (let j = 0; j < doc.length; j++) {
    const { lp, argmax } = referenceLogProb(logits, j, doc[j]);
    ll += lp;
    if (argmax === doc[j]) top1++;
  }
  const r = scored.results[0];
  assert.equal(r.tokens, 40);
  assert.ok(Math.abs(r.logLikelihood - ll) < 1e-9, `${r.logLikelihood} vs ${ll}`);
  assert.equal(r.top1, top1);
  assert.equal(r.isGreedy, top1 === 40);
  assert.ok(r.top5 >= r.top1);

  // Shorter windows: the same tokens are each predicted once, so the counts add up (the values differ: less context).
  const short = await scoreUnits(model, rollingWindows(doc, EOS, 8).map((w) => ({ ...w, group: 0 })));
  assert.equal(short.results.reduce((n, x) => n + x.tokens, 0), 40);
  assert.equal(short.scoredPositions, 40);
});

test('the CPU backend scores block by block exactly as from the whole [R × V] logits (scaled, repeated rows)', async () => {
  const { BlockScorer, CpuBackend } = await import('../src/backends/cpu.js');
  const { logitBlockRows } = await import('../src/backends/backend.js');
  const be = new CpuBackend();
  const [R, V, K] = [170, 50304, 4]; // blocks of 166 and 4 rows
  assert.equal(logitBlockRows(V), 166);
  let s = 12345;
  const random = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32 - 0.5);
  const head = be.weight({ name: 'head', dtype: 'F32', shape: [V, K], data: Float32Array.from({ length: V * K }, random) });
  const hidden = be.upload(Float32Array.from({ length: R * K }, random), R, K);
  const rows = Int32Array.from({ length: R + 30 }, (_, i) => (i * 41) % R);
  const targets = Int32Array.from(rows, (_, i) => (i * 7919) % V);
  for (const scale of [1, 0.7]) {
    const got = await be.scoreTokens(hidden, head, scale, rows, targets);
    const logits = be.matmul(hidden, head);
    if (scale !== 1) be.scaleInPlace(logits, scale);
    const want = new BlockScorer(R, V, rows, targets);
    want.score(await be.read(logits), 0, R);
    assert.deepEqual(got.ranks, want.ranks);
    assert.deepEqual(got.logProbs, want.logProbs);
  }
});

test('argmax ties go to the lowest id (top-1 and rank), and log-probabilities normalise over the row', async () => {
  const { CpuBackend } = await import('../src/backends/cpu.js');
  const be = new CpuBackend();
  const x = Float32Array.of(1, 3, 3, 2, 3, /* row 1 */ 0, 0, 0, 0, Math.log(4));
  // An identity lm_head: the hidden rows are the logits, exactly.
  const identity = be.weight({ name: 'eye', dtype: 'F32', shape: [5, 5], data: Float32Array.from({ length: 25 }, (_, i) => (i % 6 === 0 ? 1 : 0)) });
  const { ranks, logProbs } = await be.scoreTokens(be.upload(x, 2, 5), identity, 1, Int32Array.of(0, 0, 0, 0, 1, 1), Int32Array.of(1, 2, 4, 0, 4, 0));
  assert.deepEqual(Array.from(ranks), [0, 1, 2, 4, 0, 1]);
  assert.ok(Math.abs(logProbs[4] - Math.log(0.5)) < 1e-6); // log 4 is rounded to float32
  assert.ok(Math.abs(logProbs[5] - Math.log(1 / 8)) < 1e-6);
  const z = Math.log(Math.E + 3 * Math.E ** 3 + Math.E ** 2);
  assert.ok(Math.abs(logProbs[0] - (3 - z)) < 1e-12);
});
