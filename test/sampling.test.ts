import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RoutelabError } from '../src/errors.js';
import { createRandom, createSampler } from '../src/sampling.js';

function draws(sample: (logits: Float32Array) => number, logits: Float32Array, count: number): number[] {
  return Array.from({ length: count }, () => sample(logits));
}

function softmax(logits: number[], temperature: number): number[] {
  const exps = logits.map((logit) => Math.exp(logit / temperature));
  const total = exps.reduce((a, b) => a + b, 0);
  return exps.map((e) => e / total);
}

test('temperature 0 (and the default) is argmax, the lower id winning ties', () => {
  const logits = new Float32Array([0.5, 2, -1, 2, 1.5]);
  assert.equal(createSampler()(logits), 1);
  assert.equal(createSampler({ temperature: 0, topP: 0.1, seed: 7 })(logits), 1);
  assert.equal(createSampler()(new Float32Array([-Infinity, -3, -2])), 2);
  assert.equal(createSampler()(new Float32Array([4])), 0);
});

test('the generator reproduces xoshiro128** seeded by splitmix64 (values from the C reference)', () => {
  const expected: [number, number[]][] = [
    [0, [0.870254774404272, 0.6697971505310978, 0.3616586206733957, 0.759190638670705]],
    [42, [0.4137016681565887, 0.003983993377814743, 0.6500837027638867, 0.6846020186141416]],
    // -1 is 2^64 - 1 taken modulo 2^64.
    [-1, [0.11122081116347982, 0.12938300625619603, 0.014282055722108056, 0.5770673274801271]],
  ];
  for (const [seed, values] of expected) {
    const random = createRandom(seed);
    assert.deepEqual(
      values.map(() => random()),
      values,
      `seed ${seed}`,
    );
  }
});

test('the same seed gives the same sequence and a different seed a different one', () => {
  const logits = new Float32Array([1, 0.5, 0, -0.5, 0.25, 0.75, 1.25, -1]);
  const options = { temperature: 1, topP: 0.95 };
  const first = draws(createSampler({ ...options, seed: 123 }), logits, 200);
  assert.deepEqual(draws(createSampler({ ...options, seed: 123 }), logits, 200), first);
  assert.notDeepEqual(draws(createSampler({ ...options, seed: 124 }), logits, 200), first);
  // The default seed is fixed, so runs without --seed repeat too.
  assert.deepEqual(draws(createSampler({ temperature: 1 }), logits, 200), draws(createSampler({ temperature: 1 }), logits, 200));
});

test('empirical frequencies follow softmax(logits / temperature)', () => {
  const logitValues = [1, 0, 2, -1];
  const drawCount = 200_000;
  for (const temperature of [1, 0.5, 3]) {
    const expected = softmax(logitValues, temperature);
    const counts = [0, 0, 0, 0];
    for (const id of draws(createSampler({ temperature, seed: 5 }), new Float32Array(logitValues), drawCount)) counts[id]++;
    counts.forEach((count, id) => {
      // 5 standard deviations of a binomial proportion.
      const tolerance = 5 * Math.sqrt((expected[id] * (1 - expected[id])) / drawCount);
      assert.ok(Math.abs(count / drawCount - expected[id]) < tolerance, `T=${temperature} id ${id}: ${count / drawCount} vs ${expected[id]}`);
    });
  }
});

test('top-p keeps the shortest prefix reaching p, including the crossing token, and renormalises', () => {
  // Probabilities 0.5, 0.3, 0.15, 0.05 (in id order 2, 0, 3, 1 so the sort matters).
  const probabilities = [0.3, 0.05, 0.5, 0.15];
  const logits = new Float32Array(probabilities.map(Math.log));
  const frequencies = (topP: number): number[] => {
    const counts = [0, 0, 0, 0];
    for (const id of draws(createSampler({ temperature: 1, topP, seed: 11 }), logits, 100_000)) counts[id]++;
    return counts.map((count) => count / 100_000);
  };
  // p = 0.6 is crossed by the second token (0.5 + 0.3): keep ids 2 and 0, renormalised to 0.625 / 0.375.
  const crossing = frequencies(0.6);
  assert.equal(crossing[1], 0);
  assert.equal(crossing[3], 0);
  assert.ok(Math.abs(crossing[2] - 0.625) < 0.01 && Math.abs(crossing[0] - 0.375) < 0.01, String(crossing));
  // Just under the two-token mass 0.8 still keeps two; just over it needs the third, and the 0.05 tail stays out.
  assert.equal(frequencies(0.79)[3], 0);
  const three = frequencies(0.81);
  assert.equal(three[1], 0);
  assert.ok(three[3] > 0.1, String(three));
  // A tiny p keeps only the most likely token; p = 1 keeps everything.
  assert.deepEqual(frequencies(1e-9), [0, 0, 1, 0]);
  assert.ok(frequencies(1).every((frequency) => frequency > 0));
});

test('top-p over a large vocabulary draws exactly what a full sort of the vocabulary gives', () => {
  // Reference: the definition applied to every token, consuming the same uniform stream.
  const referenceNucleus = (logits: Float32Array, temperature: number, topP: number, uniform: number): number => {
    const maxLogit = Math.max(...logits);
    const weights = Array.from(logits, (logit) => Math.exp((logit - maxLogit) / temperature));
    const total = weights.reduce((a, b) => a + b, 0);
    const order = weights.map((_, id) => id).sort((a, b) => weights[b] - weights[a] || a - b);
    const kept: number[] = [];
    let mass = 0;
    for (const id of order) {
      kept.push(id);
      mass += weights[id] / total;
      if (mass >= topP) break;
    }
    let cumulative = 0;
    return kept.find((id) => uniform * mass < (cumulative += weights[id] / total))!;
  };
  const random = createRandom(99);
  const logits = Float32Array.from({ length: 5000 }, () => (random() - 0.5) * 16);
  for (const [temperature, topP] of [[1, 0.5], [0.7, 0.9], [2, 0.99], [1, 0.999999]]) {
    const sample = createSampler({ temperature, topP, seed: 17 });
    const uniforms = createRandom(17);
    for (let draw = 0; draw < 200; draw++) {
      assert.equal(sample(logits), referenceNucleus(logits, temperature, topP, uniforms()), `T=${temperature} p=${topP}`);
    }
  }
});

test('top-p breaks probability ties by lower id', () => {
  // Two equally likely leaders at e / (2 + 2e) = 0.366 each: p = 0.3 is crossed by the first, which must be id 1.
  const logits = new Float32Array([0, 1, 1, 0]);
  assert.deepEqual([...new Set(draws(createSampler({ temperature: 1, topP: 0.3, seed: 3 }), logits, 1000))], [1]);
});

test('invalid arguments are rejected by flag name', () => {
  const rejects = (options: Parameters<typeof createSampler>[0], flag: string) =>
    assert.throws(() => createSampler(options), (error: unknown) => error instanceof RoutelabError && error.where === flag);
  rejects({ temperature: -0.1 }, '--temperature');
  rejects({ temperature: Number.NaN }, '--temperature');
  rejects({ temperature: Number.POSITIVE_INFINITY }, '--temperature');
  rejects({ topP: 0 }, '--top-p');
  rejects({ topP: 1.01 }, '--top-p');
  rejects({ topP: Number.NaN }, '--top-p');
  rejects({ temperature: 1, seed: 1.5 }, '--seed');
  rejects({ seed: Number.NaN }, '--seed');
});
