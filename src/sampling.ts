/**
 * Next-token choice for `routelab generate`: greedy argmax, or temperature + nucleus (top-p) sampling driven by a
 * seeded generator so that a run is reproducible from its flags.
 */
import { argmaxRow } from './backends/argmax.js';
import { RoutelabError } from './errors.js';

export interface SamplerOptions {
  /** 0 (the default) picks the argmax; above 0 samples from softmax(logits / temperature). */
  temperature?: number;
  /** Nucleus mass in (0, 1]; 1 (the default) samples from the full distribution. */
  topP?: number;
  /** Any safe integer, taken modulo 2^64. Defaults to DEFAULT_SEED, so runs repeat unless the user changes it. */
  seed?: number;
}

/** Picks the next token id from one position's logits over the vocabulary. */
export type Sampler = (logits: Float32Array) => number;

export const DEFAULT_SEED = 0;

/**
 * The greedy sampler: the largest logit's id, the lowest on ties. `generate` recognises it by identity and lets the
 * backend fuse the choice into the lm_head (ForwardOptions.argmax), which picks the same id from the same logits.
 */
export const greedy: Sampler = (logits) => argmaxRow(logits, 0, logits.length);

export function createSampler({ temperature = 0, topP = 1, seed = DEFAULT_SEED }: SamplerOptions = {}): Sampler {
  if (!Number.isFinite(temperature) || temperature < 0) {
    throw new RoutelabError('--temperature', `expected a finite number >= 0, got ${temperature}`);
  }
  if (!(topP > 0 && topP <= 1)) {
    throw new RoutelabError('--top-p', `expected a number in (0, 1], got ${topP}`);
  }
  const random = createRandom(seed); // built even for greedy decoding so that a bad --seed is always reported
  if (temperature === 0) return greedy;
  return (logits) => {
    const weights = softmaxWeights(logits, temperature);
    return topP === 1 ? sampleFromWeights(weights, random()) : sampleNucleus(weights, topP, random());
  };
}

/**
 * Uniform doubles in [0, 1) with 53 random bits, from xoshiro128** 1.1 (Blackman & Vigna) whose 128-bit state is
 * filled by two outputs of splitmix64 started at `seed`, the seeding its authors recommend.
 */
export function createRandom(seed: number): () => number {
  if (!Number.isSafeInteger(seed)) throw new RoutelabError('--seed', `expected an integer, got ${seed}`);
  const state = new Uint32Array(4);
  let splitmixState = BigInt.asUintN(64, BigInt(seed));
  for (let word = 0; word < 4; word += 2) {
    splitmixState = BigInt.asUintN(64, splitmixState + 0x9e3779b97f4a7c15n);
    let z = splitmixState;
    z = BigInt.asUintN(64, (z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n);
    z = BigInt.asUintN(64, (z ^ (z >> 27n)) * 0x94d049bb133111ebn);
    z ^= z >> 31n;
    state[word] = Number(z & 0xffffffffn);
    state[word + 1] = Number(z >> 32n);
  }
  const next32 = (): number => {
    const result = Math.imul(rotateLeft(Math.imul(state[1], 5), 7), 9) >>> 0;
    const shifted = state[1] << 9;
    state[2] ^= state[0];
    state[3] ^= state[1];
    state[1] ^= state[2];
    state[0] ^= state[3];
    state[2] ^= shifted;
    state[3] = rotateLeft(state[3], 11);
    return result;
  };
  // 27 + 26 bits, as in MT19937's genrand_res53.
  return () => ((next32() >>> 5) * 67108864 + (next32() >>> 6)) / 9007199254740992;
}

function rotateLeft(x: number, bits: number): number {
  return (x << bits) | (x >>> (32 - bits));
}

/** exp((logit - max) / temperature) in double: proportional to the softmax and never overflowing. */
function softmaxWeights(logits: Float32Array, temperature: number): Float64Array {
  const maxLogit = logits[argmaxRow(logits, 0, logits.length)];
  const weights = new Float64Array(logits.length);
  for (let id = 0; id < logits.length; id++) weights[id] = Math.exp((logits[id] - maxLogit) / temperature);
  return weights;
}

/** Draws an id with probability weight / sum(weights), scanning in id order; no sort needed. */
function sampleFromWeights(weights: Float64Array, uniform: number): number {
  let total = 0;
  for (let id = 0; id < weights.length; id++) total += weights[id];
  const target = uniform * total;
  // The running sum ends at exactly `total` (same additions in the same order), which exceeds target < total.
  let cumulative = 0;
  for (let id = 0; id < weights.length; id++) {
    cumulative += weights[id];
    if (target < cumulative) return id;
  }
  throw notFiniteLogits();
}

/**
 * Top-p: sort by probability (descending, lower id first on ties), keep the shortest prefix whose mass reaches
 * topP (so the token that crosses it is kept), renormalise, and draw from that prefix.
 */
function sampleNucleus(weights: Float64Array, topP: number, uniform: number): number {
  let total = 0;
  for (let id = 0; id < weights.length; id++) total += weights[id];
  // Tokens below probability (1 - topP) / vocab hold less than 1 - topP in all, so the rest hold more than topP
  // and contain the nucleus: only they need sorting (usually a few hundred of a 50k vocabulary).
  const minWeight = ((1 - topP) / weights.length) * total;
  const candidates: number[] = [];
  for (let id = 0; id < weights.length; id++) if (weights[id] >= minWeight) candidates.push(id);
  const order = Uint32Array.from(candidates).sort((a, b) => weights[b] - weights[a] || a - b);
  let keptCount = 0;
  let keptMass = 0;
  while (keptCount < order.length) {
    keptMass += weights[order[keptCount]] / total;
    keptCount++;
    if (keptMass >= topP) break;
  }
  const target = uniform * keptMass;
  let cumulative = 0;
  for (let rank = 0; rank < keptCount; rank++) {
    cumulative += weights[order[rank]] / total;
    if (target < cumulative) return order[rank];
  }
  throw notFiniteLogits();
}

/** Only NaN weights, from a NaN or +Infinity logit, get a draw past the end: a model bug, not bad input. */
function notFiniteLogits(): Error {
  return new Error('cannot sample: the logits contain NaN or +Infinity');
}
