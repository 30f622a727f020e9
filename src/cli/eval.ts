import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../atomic.js';
import { badRowsReport } from '../data/bad-rows.js';
import { RoutelabError } from '../errors.js';
import { evaluate } from '../eval/evaluate.js';
import { loadModel } from '../load.js';
import { requireTokenizer } from '../model/tokenizer.js';
import { parseRouterSpec } from '../routers/registry.js';
import { FEWSHOT_SEED, loadFewshot } from '../tasks/fewshot.js';
import { getTask } from '../tasks/registry.js';
import { selectDocs } from '../tasks/selection.js';
import type { BadRowPolicy } from '../tasks/task.js';
import { TRACE_LEVELS, type TraceLevel } from '../trace/format.js';
import { numberFlag, requireString, type Command } from './command.js';
import { THREADS_OPTION, threadsFlag, threadsUsage } from './threads.js';

export const evalCommand: Command = {
  name: 'eval',
  summary: 'evaluate one router on one task: task metrics, routing metrics, routing trace (JSON + Parquet)',
  usage: `Usage: routelab eval --model DIR --task T --data PATH --out DIR [options]

  --model DIR          model directory in Hugging Face layout, or a hub repo id (org/name[@revision])
  --task T             wikitext | lambada_openai | hellaswag | sst2 | rte | mrpc | boolq
  --data PATH          the task's data: a file or directory (jsonl, json, parquet, arrow, tsv, raw text, llama.cpp)
  --router SPEC        default (the model's own routing) | topk:k=16 | bh:alpha=0.3,max_k=16,null=null.json | topp:p=0.7
                       (every router and key: routelab list routers; tasks, metrics and routers defined in docs/semantics.md)
  --limit N            evaluate the first N documents (with --sample-seed: a seeded sample of N)
  --sample-seed S      take a seeded random sample of --limit documents instead of the first ones
  --num-fewshot N      put N solved examples before each prompt, drawn as lm-eval draws them (choice tasks and
                       lambada_openai; default 0)
  --fewshot-seed S     the few-shot sampling seed (default ${FEWSHOT_SEED}, lm-eval's)
  --fewshot-data PATH  where the task's few-shot split is (train for the choice tasks; default: --data)
  --max-length M       window / truncation length in tokens (default: the model's max_position_embeddings)
  --batch-size B       sequences per forward pass (default 16)
  --max-batch-tokens N tokens per forward pass (default 16384)
  --trace LEVEL        off | counts (experts, weights and count per scored token and layer; default) | full (+ router
                       logits and p-values)
  --on-bad-row P       skip (default: record and go on) | error (stop at the first malformed record)
  --no-determinism     skip the output_determinism probe (two extra forward passes of a short input)
  --backend NAME       auto (default: native SIMD kernels if built, else cpu) | native | cpu | webgpu
${threadsUsage(21)}
  --out DIR            writes {config}_{task}.json and {config}_{task}_routing.parquet there
  --json               also print the summary as one JSON object on stdout (with "files": where it was written)
  --quiet              print nothing on stderr`,
  options: {
    model: { type: 'string' },
    task: { type: 'string' },
    data: { type: 'string' },
    router: { type: 'string', default: 'default' },
    limit: { type: 'string' },
    'sample-seed': { type: 'string' },
    'num-fewshot': { type: 'string', default: '0' },
    'fewshot-seed': { type: 'string' },
    'fewshot-data': { type: 'string' },
    'max-length': { type: 'string' },
    'batch-size': { type: 'string' },
    'max-batch-tokens': { type: 'string' },
    trace: { type: 'string', default: 'counts' },
    'on-bad-row': { type: 'string', default: 'skip' },
    'no-determinism': { type: 'boolean', default: false },
    backend: { type: 'string', default: 'auto' },
    ...THREADS_OPTION,
    out: { type: 'string' },
    quiet: { type: 'boolean', default: false },
    json: { type: 'boolean', default: false },
  },
  async run(values) {
    const modelSpec = requireString(values, 'model');
    const task = getTask(requireString(values, 'task'));
    const dataPath = requireString(values, 'data');
    const outDir = requireString(values, 'out');
    const trace = values.trace as string;
    if (!TRACE_LEVELS.includes(trace as TraceLevel)) throw new RoutelabError('--trace', `expected one of ${TRACE_LEVELS.join(', ')}, got ${JSON.stringify(trace)}`);
    const onBadRow = values['on-bad-row'] as string;
    if (onBadRow !== 'skip' && onBadRow !== 'error') throw new RoutelabError('--on-bad-row', `expected skip or error, got ${JSON.stringify(onBadRow)}`);
    const optionalInt = (flag: string, min: number): number | undefined => {
      if (values[flag] === undefined) return undefined;
      const n = numberFlag(values, flag, 0, true);
      if (n < min) throw new RoutelabError(`--${flag}`, `expected an integer ≥ ${min}, got ${n}`);
      return n;
    };
    const limit = optionalInt('limit', 1);
    const sampleSeed = optionalInt('sample-seed', 0);
    const maxLength = optionalInt('max-length', 1);
    const batchSize = optionalInt('batch-size', 1);
    const maxBatchTokens = optionalInt('max-batch-tokens', 1);
    const numFewshot = optionalInt('num-fewshot', 0)!;
    const fewshotSeed = optionalInt('fewshot-seed', 0);
    for (const flag of ['fewshot-seed', 'fewshot-data']) {
      if (values[flag] !== undefined && numFewshot === 0) throw new RoutelabError(`--${flag}`, 'only with --num-fewshot N > 0');
    }
    const quiet = values.quiet === true;

    const loadStart = performance.now();
    const { dir, model, tokenizer } = await loadModel(modelSpec, { backend: values.backend as string, threads: threadsFlag(values) });
    const tok = requireTokenizer(tokenizer, dir);
    const router = parseRouterSpec(values.router as string, model.routerDefaults);
    const loaded = await task.load(dataPath, onBadRow as BadRowPolicy);
    const { docs, selection } = selectDocs(loaded.docs, { limit, sampleSeed });
    if (docs.length === 0) throw new RoutelabError(dataPath, `no ${task.name} documents to evaluate`);
    const fewshot = await loadFewshot(task, docs, loaded, {
      numFewshot, seed: fewshotSeed, path: (values['fewshot-data'] as string | undefined) ?? dataPath, onBadRow: onBadRow as BadRowPolicy,
    });
    const loadSeconds = (performance.now() - loadStart) / 1000;

    const config = router.configName(model.architecture.routing);
    mkdirSync(outDir, { recursive: true });
    const base = join(outDir, `${config}_${task.name}`);
    const traceFile = `${base}_routing.parquet`;
    if (!quiet) console.error(`eval: ${task.name}, ${docs.length} documents (${loaded.format}), router ${router.spec} → ${config}`);
    if (!quiet && loaded.badRows.length) console.error(badRowsReport(loaded.badRows));
    if (!quiet) for (const warning of loaded.warnings) console.error(`eval: warning: ${warning}`);
    if (!quiet && numFewshot > 0) {
      const from = fewshot.setting.split === task.split
        ? `the ${task.split} split itself (lm-eval's rule when a task has no other; never the document evaluated)`
        : `the ${fewshot.setting.split} split`;
      console.error(`eval: ${numFewshot}-shot, examples from ${from}, seed ${fewshot.setting.seed}`);
    }
    let lastReport = 0;
    const summary = await evaluate(model, tok, task, docs, {
      router,
      maxLength,
      fewshot,
      batchSize,
      maxBatchTokens,
      trace: trace as TraceLevel,
      traceFile,
      determinism: values['no-determinism'] !== true,
      model: { id: modelSpec, dir },
      data: { path: dataPath, format: loaded.format, files: loaded.files, badRows: loaded.badRows, warnings: loaded.warnings, totalDocs: selection.total, limit: limit ?? null, sampleSeed: sampleSeed ?? null },
      seed: sampleSeed ?? null,
      loadSeconds,
      onProgress: quiet ? undefined : (done, total, seconds) => {
        if (seconds - lastReport < 10 && done < total) return;
        lastReport = seconds;
        console.error(`eval: ${done}/${total} scoring units, ${seconds.toFixed(0)} s`);
      },
    });
    writeFileAtomic(`${base}.json`, JSON.stringify(summary, null, 2) + '\n');
    if (values.json === true) console.log(JSON.stringify({ files: { summary: `${base}.json`, trace: summary.trace.file }, ...summary }));
    if (!quiet && summary.fewshot.truncated_requests > 0 && numFewshot > 0) {
      console.error(`eval: ${summary.fewshot.truncated_requests} of ${summary.timings.requests} contexts were longer than ` +
        `${summary.max_length} tokens and lost their start (their first examples), as lm-eval truncates`);
    }
    if (!quiet) {
      const primary = summary.metrics[task.primaryMetric];
      console.error(`eval: ${task.primaryMetric} ${primary?.toFixed(4)}, avg_experts ${summary.routing.avg_experts.toFixed(3)}, ` +
        `${summary.routing.tokens_per_second.toFixed(1)} tokens/s; wrote ${base}.json${summary.trace.file ? ` and ${traceFile}` : ''}`);
    }
  },
};
