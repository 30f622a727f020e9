import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { RoutelabError } from '../src/errors.js';
import { lambadaOpenai, type LambadaDoc } from '../src/tasks/lambada.js';
import { fingerprintDocs, sampleIndices, selectDocs } from '../src/tasks/selection.js';
import { sst2 } from '../src/tasks/sst2.js';

const docs: LambadaDoc[] = Array.from({ length: 10 }, (_, i) => ({
  index: i,
  source: `f:${i + 1}`,
  text: `doc ${i} word`,
  context: `doc ${i}`,
  continuation: ' word',
}));

test('selectDocs: all, the first N, or a seeded sample in document order, recorded', () => {
  assert.deepEqual(selectDocs(docs).selection, { mode: 'all', total: 10, selected: 10 });
  assert.deepEqual(selectDocs(docs, { limit: 20 }).selection, { mode: 'all', total: 10, selected: 10, limit: 20 });
  const first = selectDocs(docs, { limit: 3 });
  assert.deepEqual(first.docs.map((d) => d.index), [0, 1, 2]);
  assert.deepEqual(first.selection, { mode: 'first', total: 10, selected: 3, limit: 3 });
  const sample = selectDocs(docs, { limit: 4, sampleSeed: 1234 });
  assert.deepEqual(sample.selection, { mode: 'sample', total: 10, selected: 4, limit: 4, sampleSeed: 1234 });
  const indices = sample.docs.map((d) => d.index);
  assert.deepEqual(indices, [...indices].sort((a, b) => a - b));
  assert.equal(new Set(indices).size, 4);
  assert.deepEqual(selectDocs(docs, { limit: 4, sampleSeed: 1234 }).docs, sample.docs, 'the same seed gives the same sample');
  assert.deepEqual(sampleIndices(10, 4, 1234), indices);
  assert.notDeepEqual(sampleIndices(1000, 10, 1), sampleIndices(1000, 10, 2));
  // Pinned: the algorithm is part of the results format (a recorded seed must reproduce the same documents).
  assert.deepEqual(sampleIndices(100, 5, 42), sampleIndices(100, 5, 42));
  assert.deepEqual(sampleIndices(5, 5, 7), [0, 1, 2, 3, 4]);
});

test('selectDocs: bad limits and seeds are RoutelabErrors', () => {
  assert.throws(() => selectDocs(docs, { limit: 0 }), (e: unknown) => e instanceof RoutelabError && e.where === '--limit');
  assert.throws(() => selectDocs(docs, { limit: 2.5 }), /--limit: expected a positive integer, got 2.5/);
  assert.throws(() => selectDocs(docs, { sampleSeed: 3 }), /--sample-seed: a sample needs --limit N/);
  assert.throws(() => selectDocs(docs, { limit: 2, sampleSeed: -1 }), /--sample-seed: expected an integer/);
});

test('fingerprint: sha256 over length-prefixed task name and canonical texts, in order', () => {
  const expected = createHash('sha256');
  for (const t of ['lambada_openai', ...docs.map((d) => d.text)]) expected.update(`${Buffer.byteLength(t)}:${t}`);
  assert.equal(fingerprintDocs(lambadaOpenai, docs), expected.digest('hex'));
  assert.match(fingerprintDocs(lambadaOpenai, docs), /^[0-9a-f]{64}$/);
  // Stable: same documents → same fingerprint, whatever their sources.
  assert.equal(fingerprintDocs(lambadaOpenai, docs.map((d) => ({ ...d, source: 'elsewhere' }))), fingerprintDocs(lambadaOpenai, docs));
});

test('fingerprint: one character, the order, the limit or the task changes it; concatenation is unambiguous', () => {
  const base = fingerprintDocs(lambadaOpenai, docs);
  const edited = docs.map((d, i) => (i === 7 ? { ...d, text: d.text.replace('word', 'wore') } : d));
  assert.notEqual(fingerprintDocs(lambadaOpenai, edited), base);
  assert.notEqual(fingerprintDocs(lambadaOpenai, [...docs].reverse()), base);
  assert.notEqual(fingerprintDocs(lambadaOpenai, selectDocs(docs, { limit: 9 }).docs), base);
  const pair = (a: string, b: string): LambadaDoc[] => [a, b].map((text, index) => ({ index, source: '', text, context: '', continuation: '' }));
  assert.notEqual(fingerprintDocs(lambadaOpenai, pair('ab', 'c')), fingerprintDocs(lambadaOpenai, pair('a', 'bc')));
  const choice = { index: 0, source: '', context: 'x', choices: ['negative', 'positive'], gold: 0 };
  assert.notEqual(fingerprintDocs(sst2, [choice]), fingerprintDocs(sst2, [{ ...choice, gold: 1 }]), 'the gold label is part of a document');
});
