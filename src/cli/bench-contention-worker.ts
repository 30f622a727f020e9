/**
 * One measurement of `routelab bench contention`, in a process of its own (so that its thread pool is sized by
 * --threads alone): load the model on the native backend, run the workload once untimed, then repeat it — a greedy
 * generation of `newTokens` tokens from a `promptTokens`-token prompt (the prefill, then one single-token pass per
 * further token) — until `seconds` have passed. The last stdout line is one JSON object.
 *
 *   node bench-contention-worker.js '{"model": DIR, "threads": N, "promptTokens": 128, "newTokens": 32, "seconds": 3}'
 */
import { generate } from '../generate.js';
import { loadModel } from '../load.js';

interface Request { model: string; threads: number; promptTokens: number; newTokens: number; seconds: number }

const request = JSON.parse(process.argv[2]) as Request;
const { model } = await loadModel(request.model, { backend: 'native', threads: request.threads });
const vocab = model.architecture.vocabSize;
// A fixed prompt of ordinary token ids (the same in every process), away from the special tokens at the ends.
const prompt = Array.from({ length: request.promptTokens }, (_, i) => 100 + ((i * 7919) % Math.max(1, vocab - 200)));
const argmax = (logits: Float32Array) => {
  let best = 0;
  for (let i = 1; i < logits.length; i++) if (logits[i] > logits[best]) best = i;
  return best;
};

async function once(): Promise<{ prefill: number; decode: number }> {
  const start = performance.now();
  let first = 0;
  let produced = 0;
  for await (const _ of generate(model, prompt, { maxNewTokens: request.newTokens, sample: argmax })) {
    if (produced++ === 0) first = performance.now();
  }
  const end = performance.now();
  return { prefill: (first - start) / 1000, decode: (end - first) / 1000 };
}

await once();
let runs = 0;
let prefill = 0;
let decode = 0;
const started = performance.now();
do {
  const r = await once();
  prefill += r.prefill;
  decode += r.decode;
  runs++;
} while ((performance.now() - started) / 1000 < request.seconds);

const tokens = runs * (request.promptTokens + request.newTokens);
console.log(JSON.stringify({
  backend: model.backend.name, threads: model.backend.threads, runs, seconds: prefill + decode,
  tokens_per_s: tokens / (prefill + decode),
  prefill_tokens_per_s: (runs * request.promptTokens) / prefill,
  // The first new token comes from the prefill's logits; each further one is a single-token pass.
  decode_tokens_per_s: request.newTokens > 1 ? (runs * (request.newTokens - 1)) / decode : null,
}));
