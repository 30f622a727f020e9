import assert from 'node:assert/strict';
import { test } from 'node:test';
import { loglikelihoodUnit, rollingWindows, type TokenEncoder } from '../src/eval/requests.js';
import { loadTokenizer } from '../src/model/tokenizer.js';
import { gutenbergDir } from './helpers.js';

const P = 99; // prefix token
const t = (...ids: number[]) => Int32Array.from(ids);
const doc10 = t(10, 11, 12, 13, 14, 15, 16, 17, 18, 19); // t0 … t9 = 10 … 19

function pairs(units: ReturnType<typeof rollingWindows>) {
  return units.map((u) => ({ input: [...u.input], targets: [...u.targets], offset: u.offset }));
}

test('rolling windows of a 10-token document with max_length 4 (worked by hand)', () => {
  // W1 predicts t0..t3 from [P, t0, t1, t2]; W2 the next 4 (t4..t7) from the 4 tokens ending before t7: t3..t6;
  // W3 the last 2 (t8, t9) from the 4 tokens ending before t9: t5..t8.
  assert.deepEqual(pairs(rollingWindows(doc10, P, 4)), [
    { input: [P, 10, 11, 12], targets: [10, 11, 12, 13], offset: 0 },
    { input: [13, 14, 15, 16], targets: [14, 15, 16, 17], offset: 4 },
    { input: [15, 16, 17, 18], targets: [18, 19], offset: 6 },
  ]);
});

test('rolling windows: max_length ≥ length gives one window; length 1; max_length 1; empty', () => {
  assert.deepEqual(pairs(rollingWindows(t(10, 11, 12), P, 3)), [{ input: [P, 10, 11], targets: [10, 11, 12], offset: 0 }]);
  assert.deepEqual(pairs(rollingWindows(t(10, 11, 12), P, 50)), [{ input: [P, 10, 11], targets: [10, 11, 12], offset: 0 }]);
  assert.deepEqual(pairs(rollingWindows(t(10), P, 4)), [{ input: [P], targets: [10], offset: 0 }]);
  assert.deepEqual(pairs(rollingWindows(t(10, 11, 12), P, 1)), [
    { input: [P], targets: [10], offset: 0 },
    { input: [10], targets: [11], offset: 1 },
    { input: [11], targets: [12], offset: 2 },
  ]);
  assert.deepEqual(rollingWindows(t(), P, 4), []);
});

test('rolling windows predict every token exactly once, inputs never exceed max_length, stream offsets line up', () => {
  const doc = Int32Array.from({ length: 37 }, (_, i) => 100 + i);
  for (const m of [1, 2, 5, 8, 36, 37, 40]) {
    const stream = [P, ...doc];
    const predicted: number[] = [];
    for (const u of rollingWindows(doc, P, m)) {
      assert.ok(u.input.length <= m && u.input.length >= u.targets.length);
      assert.deepEqual([...u.input], stream.slice(u.offset, u.offset + u.input.length), `m=${m}: input is the stream at offset`);
      const first = u.input.length - u.targets.length; // input position predicting targets[0]
      assert.deepEqual([...u.targets], stream.slice(u.offset + first + 1, u.offset + u.input.length + 1));
      predicted.push(...u.targets);
    }
    assert.deepEqual(predicted, [...doc], `m=${m}`);
  }
});

/** A toy word-level encoder: each maximal run of non-spaces with its leading spaces is one token (id = length·100 + code of its first char). */
const words: TokenEncoder = {
  encode: (text) => Int32Array.from(text.match(/ *[^ ]+| +$/g) ?? [], (w) => w.length * 100 + w.trimStart().charCodeAt(0) % 100),
};

test('loglikelihood: trailing spaces move to the continuation; continuation = whole after len(encode(context))', () => {
  const u = loglikelihoodUnit(words, 'the cat ', 'sat', P, 100);
  // context "the cat" → [the, " cat"]; whole "the cat sat" → [the, " cat", " sat"]; continuation [" sat"].
  const whole = words.encode('the cat sat');
  assert.deepEqual([...u.input], [...whole.slice(0, 2)]);
  assert.deepEqual([...u.targets], [whole[2]]);
  assert.equal(u.offset, 0);
});

test('loglikelihood: empty context uses the prefix token; long inputs keep their last max_length + 1 tokens', () => {
  const e = loglikelihoodUnit(words, '', 'a b', P, 100);
  assert.deepEqual([...e.input], [P, ...words.encode('a')]);
  assert.deepEqual([...e.targets], [...words.encode('a b')]);
  const ctx = 'a b c d e f';
  const u = loglikelihoodUnit(words, ctx, ' g h', P, 4);
  const stream = [...words.encode(ctx + ' g h')]; // 8 tokens; keep the last 5, input = first 4 of those
  assert.deepEqual([...u.input], stream.slice(3, 7));
  assert.deepEqual([...u.targets], stream.slice(6));
  assert.equal(u.offset, 3);
  // A continuation longer than max_length: only the last max_length tokens can be predicted in the window.
  const long = loglikelihoodUnit(words, 'x', ' a b c d e', P, 3);
  assert.equal(long.input.length, 3);
  assert.deepEqual([...long.targets], [...words.encode('x a b c d e')].slice(-3));
});

test('loglikelihood with the real OLMoE tokenizer: boundary merges follow the whole string', () => {
  const tok = loadTokenizer(gutenbergDir)!;
  const u = loglikelihoodUnit(tok, 'Hello ', 'world', 50279, 2048);
  assert.deepEqual([...u.input], [...tok.encode('Hello')]);
  assert.deepEqual([...u.targets], [...tok.encode(' world')]);
  assert.equal(tok.decode(u.targets), ' world');
});
