import { writeSafetensors } from '../model/safetensors.js';
import { forwardPadded } from '../model/padded.js';
import { requireTokenizer } from '../model/tokenizer.js';
import { loadModel } from '../load.js';
import { parseRouterSpec } from '../routers/registry.js';
import { VERSION } from '../version.js';
import { RoutelabError } from '../errors.js';
import { requireString, type Command } from './command.js';
import { readTokenIds } from './inputs.js';
import { THREADS_OPTION, threadsFlag, threadsUsage } from './threads.js';

export const forwardCommand: Command = {
  name: 'forward',
  summary: 'run the model on token ids or text; write logits, router logits and expert counts (safetensors)',
  usage: `Usage: routelab forward --model DIR (--input IDS | --text "…" [--text "…"]) [--router SPEC] [--out OUT.safetensors]

  --model DIR        model directory in Hugging Face layout, or a hub repo id (org/name[@revision])
  --input IDS        token ids: .safetensors with I64 input_ids [B, S] (+ optional attention_mask), or JSON [[id, …], …]
  --text "…"         text to tokenize with the model's tokenizer (repeat for a batch)
  --router SPEC      default (the model's own routing) | topk:k=16[,renormalize=true]
                     | bh:alpha=0.3,max_k=16,min_k=1,null=null.json | topp:p=0.7,max_k=16 | granite:… | deepseek_v3:…
                     (every router and key: routelab list routers; definitions: docs/semantics.md)
  --out FILE         safetensors with logits F32 [B, S, V], router_logits F32 [L, B·S, E], expert_counts I64 [L, B·S],
                     input_ids I64 [B, S], attention_mask I64 [B, S] (sequences right-padded; padding rows are zero)
  --dtype f32        compute precision (default f32)
  --backend NAME     auto (default: native SIMD kernels if built, else cpu) | native | cpu (TypeScript reference) | webgpu
${threadsUsage(19)}`,
  options: {
    model: { type: 'string' },
    input: { type: 'string' },
    text: { type: 'string', multiple: true },
    router: { type: 'string', default: 'default' },
    out: { type: 'string' },
    dtype: { type: 'string', default: 'f32' },
    backend: { type: 'string', default: 'auto' },
    ...THREADS_OPTION,
  },
  async run(values) {
    const modelSpec = requireString(values, 'model');
    const texts = (values.text as string[] | undefined) ?? [];
    if ((values.input === undefined) === (texts.length === 0)) throw new RoutelabError('routelab forward', 'give exactly one of --input IDS or --text "…"');
    const { dir, model, tokenizer } = await loadModel(modelSpec, { backend: values.backend as string, dtype: values.dtype as string, threads: threadsFlag(values) });
    const router = parseRouterSpec(values.router as string, model.routerDefaults);
    const sequences = values.input !== undefined
      ? readTokenIds(values.input as string)
      : texts.map((t) => Array.from(requireTokenizer(tokenizer, dir).encode(t)));

    const started = performance.now();
    const out = await forwardPadded(model, sequences, router);
    const seconds = (performance.now() - started) / 1000;
    const { batch: B, length: S } = out;
    const L = model.numMoeLayers;
    const E = model.architecture.moe.numExperts;
    const V = model.architecture.vocabSize;
    const tokens = sequences.reduce((n, s) => n + s.length, 0);
    let experts = 0;
    for (const c of out.expertCounts) experts += c;
    console.error(`forward: ${B} sequence(s), ${tokens} tokens, router ${router.spec}: ` +
      `${(experts / (tokens * L)).toFixed(3)} experts/token/layer, ${(tokens / seconds).toFixed(1)} tokens/s`);

    if (values.out === undefined) return;
    const inputIds = new BigInt64Array(B * S);
    const mask = new BigInt64Array(B * S);
    sequences.forEach((seq, b) => seq.forEach((id, s) => { inputIds[b * S + s] = BigInt(id); mask[b * S + s] = 1n; }));
    writeSafetensors(values.out as string, [
      { name: 'logits', dtype: 'F32', shape: [B, S, V], data: out.logits },
      { name: 'router_logits', dtype: 'F32', shape: [L, B * S, E], data: out.routerLogits },
      { name: 'expert_counts', dtype: 'I64', shape: [L, B * S], data: BigInt64Array.from(out.expertCounts, BigInt) },
      { name: 'input_ids', dtype: 'I64', shape: [B, S], data: inputIds },
      { name: 'attention_mask', dtype: 'I64', shape: [B, S], data: mask },
    ], { routelab_version: VERSION, model: modelSpec, router: router.spec });
    console.error(`forward: wrote ${values.out}`);
  },
};
