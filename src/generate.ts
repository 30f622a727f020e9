import type { MoeModel } from './model/model.js';
import type { Router } from './routers/router.js';

export interface GenerateOptions {
  readonly router?: Router;
  readonly maxNewTokens: number;
  /** Picks the next token from the last position's logits [V] (greedy, temperature, top-p: see sampling.ts). */
  readonly sample: (logits: Float32Array) => number;
  /** Generation ends after producing one of these (typically the model's eos). */
  readonly stopTokens?: readonly number[];
}

/**
 * Autoregressive generation with a KV cache: one forward pass over the prompt, then one single-token pass per
 * new token, each attending to the cached keys and values. Yields token ids as they are chosen.
 */
export async function* generate(model: MoeModel, prompt: ArrayLike<number>, options: GenerateOptions): AsyncGenerator<number> {
  const { router, maxNewTokens, sample, stopTokens = [] } = options;
  if (maxNewTokens <= 0) return;
  const capacity = Math.min(prompt.length + maxNewTokens, model.architecture.maxPositionEmbeddings);
  const cache = model.createCache(1, capacity);
  let input: ArrayLike<number> = prompt;
  for (let produced = 0; produced < maxNewTokens && cache.lengths[0] + input.length <= capacity; produced++) {
    const { logits } = await model.forward([input], { router, cache, logits: 'last' });
    const next = sample(logits);
    yield next;
    if (stopTokens.includes(next)) return;
    input = [next];
  }
}
