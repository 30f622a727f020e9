import type { MoeModel } from './model/model.js';
import type { Router } from './routers/router.js';
import { greedy, type Sampler } from './sampling.js';

export interface GenerateOptions {
  readonly router?: Router;
  readonly maxNewTokens: number;
  /** Picks the next token from the last position's logits [V] (greedy, temperature, top-p: see sampling.ts). */
  readonly sample: Sampler;
  /** Generation ends after producing one of these (typically the model's eos). */
  readonly stopTokens?: readonly number[];
}

/**
 * Autoregressive generation with a KV cache: one forward pass over the prompt, then one single-token pass per
 * new token, each attending to the cached keys and values. Yields token ids as they are chosen.
 *
 * What a step needs beyond the forward pass is set up once, as llama2.c's run state is: the one-token input and the
 * forward options are reused. With the greedy sampler the backend picks the token inside the lm_head (no [V] logits
 * are read back or allocated per token); any other sampler gets the last position's logits.
 */
export async function* generate(model: MoeModel, prompt: ArrayLike<number>, options: GenerateOptions): AsyncGenerator<number> {
  const { router, maxNewTokens, sample, stopTokens = [] } = options;
  if (maxNewTokens <= 0) return;
  const capacity = Math.min(prompt.length + maxNewTokens, model.architecture.maxPositionEmbeddings);
  const cache = model.createCache(1, capacity);
  const argmax = sample === greedy;
  const forwardOptions = { router, cache, logits: 'last', argmax } as const;
  const step = new Int32Array(1);
  const stepBatch = [step];
  let batch: readonly ArrayLike<number>[] = [prompt];
  for (let produced = 0; produced < maxNewTokens && cache.lengths[0] + batch[0].length <= capacity; produced++) {
    const { logits, tokens } = await model.forward(batch, forwardOptions);
    const next = argmax ? tokens![0] : sample(logits);
    yield next;
    if (stopTokens.includes(next)) return;
    step[0] = next;
    batch = stepBatch;
  }
}
