import { generate } from '../generate.js';
import { loadModel } from '../load.js';
import { createStreamDecoder, requireTokenizer } from '../model/tokenizer.js';
import { parseRouterSpec } from '../routers/registry.js';
import { createSampler } from '../sampling.js';
import { numberFlag, requireString, type Command } from './command.js';
import { RoutelabError } from '../errors.js';
import { THREADS_OPTION, threadsFlag, threadsUsage } from './threads.js';

export const generateCommand: Command = {
  name: 'generate',
  summary: 'generate text with a KV cache (greedy, or sampled with --temperature / --top-p), streaming to stdout',
  usage: `Usage: routelab generate --model DIR --prompt "…" [--router SPEC] [--max-new-tokens N]
                         [--temperature T] [--top-p P] [--seed S] [--ignore-eos]

  --model DIR            model directory in Hugging Face layout, or a hub repo id (org/name[@revision])
  --prompt "…"           text to continue (tokenized with the model's tokenizer)
  --router SPEC          default (the model's own routing) | topk:k=… | bh:… | topp:…  (see routelab forward --help)
  --max-new-tokens N     tokens to generate (default 64)
  --temperature T        0 = greedy (default); > 0 samples from softmax(logits / T)
  --top-p P              nucleus sampling: keep the smallest set of tokens with probability ≥ P (default 1)
  --seed S               seed of the sampler's random generator (default 0)
  --ignore-eos           keep generating after the end-of-text token
  --backend NAME         auto (default) | native | cpu | webgpu
${threadsUsage(23)}`,
  options: {
    model: { type: 'string' },
    prompt: { type: 'string' },
    router: { type: 'string', default: 'default' },
    'max-new-tokens': { type: 'string' },
    temperature: { type: 'string' },
    'top-p': { type: 'string' },
    seed: { type: 'string' },
    'ignore-eos': { type: 'boolean', default: false },
    backend: { type: 'string', default: 'auto' },
    dtype: { type: 'string', default: 'f32' },
    ...THREADS_OPTION,
  },
  async run(values) {
    const modelSpec = requireString(values, 'model');
    const prompt = requireString(values, 'prompt');
    const maxNewTokens = numberFlag(values, 'max-new-tokens', 64, true);
    if (maxNewTokens < 1) throw new RoutelabError('--max-new-tokens', `expected a positive integer, got ${maxNewTokens}`);
    const sample = createSampler({
      temperature: numberFlag(values, 'temperature', 0),
      topP: numberFlag(values, 'top-p', 1),
      seed: numberFlag(values, 'seed', 0, true),
    });
    const { dir, model, tokenizer } = await loadModel(modelSpec, { backend: values.backend as string, dtype: values.dtype as string, threads: threadsFlag(values) });
    const tok = requireTokenizer(tokenizer, dir);
    const router = parseRouterSpec(values.router as string, model.routerDefaults);
    const promptIds = tok.encode(prompt);
    if (promptIds.length === 0) throw new RoutelabError('--prompt', 'encodes to no tokens');
    const eos = values['ignore-eos'] ? [] : [tok.eosTokenId ?? model.architecture.eosTokenId].filter((id): id is number => id !== null);

    process.stdout.write(prompt);
    const decoder = createStreamDecoder(tok);
    let produced = 0;
    const started = performance.now();
    let firstTokenAt = 0;
    for await (const id of generate(model, promptIds, { router, maxNewTokens, sample, stopTokens: eos })) {
      if (produced++ === 0) firstTokenAt = performance.now();
      if (!eos.includes(id)) process.stdout.write(decoder.push(id));
    }
    process.stdout.write(decoder.flush() + '\n');
    const ended = performance.now();
    const decodeRate = produced > 1 ? ((produced - 1) / ((ended - firstTokenAt) / 1000)).toFixed(1) : 'n/a';
    console.error(`generate: prompt ${promptIds.length} tokens (${((firstTokenAt - started) / 1000).toFixed(2)} s to first token), ` +
      `${produced} new tokens, ${decodeRate} tokens/s decoding, router ${router.spec}`);
  },
};
