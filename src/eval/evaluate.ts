/**
 * One configuration × one task: documents → requests → scoring units → batched forward passes → per-document scores,
 * task metrics, routing metrics over the scored positions (routing-metrics.ts) and, optionally, a routing trace.
 * Returns the summary object that `routelab eval` writes as `{config}_{task}.json`; sweeps call this directly.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { RoutelabError } from '../errors.js';
import type { MoeModel } from '../model/model.js';
import type { TextTokenizer } from '../model/tokenizer.js';
import type { Router } from '../routers/router.js';
import { zeroShot, type FewshotPrompts } from '../tasks/fewshot.js';
import { fingerprintDocs } from '../tasks/selection.js';
import type { BadRow, DocScores, RequestResult, Task, TaskDoc } from '../tasks/task.js';
import { TRACE_FORMAT, type TraceLevel } from '../trace/format.js';
import { VERSION } from '../version.js';
import { requestUnits, withContextPrefix, type ScoringUnit } from './requests.js';
import { RoutingObservation } from './observation.js';
import { outputDeterminism, type RoutingMetrics } from './routing-metrics.js';
import { scoreUnits, type ScoringInput } from './scorer.js';

export interface EvaluateOptions {
  /** Default: the model's own routing. */
  readonly router?: Router;
  /** Window / truncation length m (SPEC §3); default the model's max_position_embeddings. */
  readonly maxLength?: number;
  /** Each document's few-shot examples, put before its contexts (src/tasks/fewshot.ts); default zero-shot. */
  readonly fewshot?: FewshotPrompts;
  readonly batchSize?: number;
  readonly maxBatchTokens?: number;
  readonly maxBatchLogitRows?: number;
  readonly trace?: TraceLevel;
  /** Where to write the trace (required unless trace is 'off'). */
  readonly traceFile?: string;
  /** Run a probe batch twice to measure output_determinism (default true). */
  readonly determinism?: boolean;
  /** Provenance recorded in the summary. */
  readonly model?: { readonly id: string; readonly dir?: string };
  readonly data?: DataInfo;
  readonly seed?: number | null;
  readonly loadSeconds?: number;
  /** After each batch: scoring units done of total, seconds so far, scored tokens so far. */
  readonly onProgress?: (done: number, total: number, seconds: number, tokens: number) => void;
}

export interface DataInfo {
  readonly path: string;
  readonly format: string;
  readonly files?: readonly string[];
  readonly badRows?: readonly BadRow[];
  /** The loader's warnings (e.g. text that is not valid UTF-8), one sentence each. */
  readonly warnings?: readonly string[];
  /** Documents before --limit / sampling. */
  readonly totalDocs?: number;
  readonly limit?: number | null;
  readonly sampleSeed?: number | null;
}

export interface EvalSummary {
  format: 'routelab.eval/1';
  config: string;
  router: string;
  model: { id: string; config_sha256: string | null; family?: string; num_layers: number; moe_layers?: number[]; num_experts: number; num_experts_per_tok: number };
  task: string;
  split: string;
  primary_metric: string;
  data: {
    path: string | null;
    format: string | null;
    files: string[];
    fingerprint: string;
    num_docs: number;
    total_docs: number | null;
    bad_rows_skipped: number;
    bad_rows_first: BadRow[];
    /** Every malformed row skipped, with file:line and reason. */
    bad_rows: BadRow[]; warnings: string[];
    limit: number | null;
    sample_seed: number | null;
  };
  max_length: number;
  batch_size: number;
  fewshot: {
    num_fewshot: number;
    seed: number | null;
    split: string | null;
    fingerprint: string | null;
    /** Where the examples were read from. */
    files: string[];
    /** Documents that drew themselves among their examples and kept N − 1 (LAMBADA, as lm-eval). */
    short_docs: number;
    bad_rows_skipped: number;
    /** Loglikelihood requests whose context (examples first) lost its start to max_length, lm-eval's left truncation. */
    truncated_requests: number;
  };
  metrics: Record<string, number>;
  /** Per-document scores in document order (columnar), for paired comparisons such as the bootstrap. */
  documents: { index: number[]; scores: Record<string, number[]> };
  routing: RoutingMetrics;
  timings: {
    load_s: number | null;
    eval_wall_s: number;
    forward_s: number;
    batches: number;
    scored_tokens: number;
    /** Tokens run through the model (contexts included) and their rate over the forward time. */
    input_tokens: number;
    input_tokens_per_second: number;
    requests: number;
    forward_inputs: number;
  };
  trace: { level: TraceLevel; file: string | null; rows: number; format: string | null };
  seed: number | null;
  routelab_version: string;
  git_commit: string | null;
  /** The backend that ran (`native`, `cpu`, `webgpu` — never `auto`) and its kernel threads (null: a device backend). */
  backend: string;
  threads: number | null;
  created: string;
}

/** Evaluate `docs` (already selected) of `task` with `model` under one router. */
export async function evaluate<D extends TaskDoc>(
  model: MoeModel,
  tokenizer: TextTokenizer,
  task: Task<D>,
  docs: readonly D[],
  options: EvaluateOptions = {},
): Promise<EvalSummary> {
  const wallStart = performance.now();
  const c = model.architecture;
  const E = c.moe.numExperts;
  const router = options.router ?? model.defaultRouter();
  const maxLength = options.maxLength ?? c.maxPositionEmbeddings;
  if (!Number.isInteger(maxLength) || maxLength < 1 || maxLength > c.maxPositionEmbeddings) {
    throw new RoutelabError('--max-length', `expected an integer in [1, max_position_embeddings ${c.maxPositionEmbeddings}], got ${maxLength}`);
  }
  const prefixToken = c.bosTokenId ?? tokenizer.eosTokenId ?? c.eosTokenId;
  if (prefixToken === null) throw new RoutelabError('config.json', 'neither bos_token_id nor eos_token_id is set: loglikelihood needs a prefix token');
  const batchSize = options.batchSize ?? 16;
  const traceLevel = options.trace ?? 'off';
  const config = router.configName(c.routing);
  const fewshot = options.fewshot ?? zeroShot();
  if (fewshot.setting.num_fewshot > 0 && fewshot.prefixes.length !== docs.length) {
    throw new Error(`evaluate: ${fewshot.prefixes.length} few-shot prefixes for ${docs.length} documents`);
  }

  // Requests → scoring units (rolling requests have several windows).
  const scoring: ScoringInput[] = [];
  const unitInfo: { doc: number; seqInDoc: number; offset: number }[] = [];
  const requestSpans: { doc: number; first: number; count: number }[][] = []; // per doc, per request
  let requestCount = 0;
  let truncatedRequests = 0;
  docs.forEach((doc, d) => {
    const spans: { doc: number; first: number; count: number }[] = [];
    let seqInDoc = 0;
    for (const request of task.requests(doc)) {
      const units: ScoringUnit[] = requestUnits(tokenizer, withContextPrefix(request, fewshot.prefixes[d] ?? ''), prefixToken, maxLength);
      if (request.kind === 'loglikelihood' && units[0]!.offset > 0) truncatedRequests++;
      spans.push({ doc: d, first: scoring.length, count: units.length });
      for (const u of units) {
        scoring.push({ input: u.input, targets: u.targets, group: d });
        unitInfo.push({ doc: doc.index, seqInDoc: seqInDoc++, offset: u.offset });
      }
      requestCount++;
    }
    requestSpans.push(spans);
  });

  // Routing observation of the scored positions (metrics, optional trace).
  if (traceLevel !== 'off' && !options.traceFile) throw new Error('evaluate: trace level set without traceFile');
  const observation = new RoutingObservation(model, router, traceLevel === 'off' ? null : {
    file: options.traceFile!, level: traceLevel, config, task: task.name, model: options.model?.id ?? '',
  });

  let out;
  try {
    out = await scoreUnits(model, scoring, {
      router,
      batchSize,
      maxBatchTokens: options.maxBatchTokens,
      maxBatchLogitRows: options.maxBatchLogitRows,
      observer: observation,
      onPrepared: (sequences, sequenceOf) => observation.prepare(sequences, sequenceOf, unitInfo),
      onProgress: options.onProgress,
    });
    observation.close();
  } catch (e) {
    observation.abort();
    throw e;
  }

  // Per-request results → per-document scores → task metrics.
  const docScores: DocScores[] = docs.map((doc, d) => {
    const results: RequestResult[] = requestSpans[d].map(({ first, count }) => {
      let logLikelihood = 0;
      let tokens = 0;
      let top1 = 0;
      let top5 = 0;
      let isGreedy = true;
      for (let u = first; u < first + count; u++) {
        const r = out.results[u];
        logLikelihood += r.logLikelihood;
        tokens += r.tokens;
        top1 += r.top1;
        top5 += r.top5;
        isGreedy &&= r.isGreedy;
      }
      return { logLikelihood, tokens, top1, top5, isGreedy };
    });
    return task.score(doc, results);
  });
  const metrics = task.aggregate(docScores);

  // output_determinism: the shortest distinct input (at most 64 tokens) through the model twice.
  let determinism: number | null = null;
  if ((options.determinism ?? true) && out.sequences.length > 0) {
    let shortest = out.sequences[0];
    for (const s of out.sequences) if (s.length < shortest.length) shortest = s;
    const probe = shortest.subarray(0, 64);
    const a = (await model.forward([probe], { router, logits: 'all' })).logits.slice();
    const b = (await model.forward([probe], { router, logits: 'all' })).logits;
    determinism = outputDeterminism(a, b);
  }
  const routing = observation.metrics(out.forwardSeconds, determinism);

  const data = options.data;
  const badRows = data?.badRows ?? [];
  return {
    format: 'routelab.eval/1',
    config,
    router: router.spec,
    model: {
      id: options.model?.id ?? '',
      config_sha256: options.model?.dir ? configHash(options.model.dir) : null,
      family: c.modelType,
      num_layers: c.numLayers,
      moe_layers: [...model.moeLayers],
      num_experts: E,
      num_experts_per_tok: c.moe.numExpertsPerTok,
    },
    task: task.name,
    split: task.split,
    primary_metric: task.primaryMetric,
    data: {
      path: data?.path ?? null,
      format: data?.format ?? null,
      files: [...(data?.files ?? [])],
      fingerprint: fingerprintDocs(task, docs),
      num_docs: docs.length,
      total_docs: data?.totalDocs ?? null,
      bad_rows_skipped: badRows.length,
      bad_rows_first: badRows.slice(0, 5),
      bad_rows: [...badRows],
      warnings: [...(data?.warnings ?? [])],
      limit: data?.limit ?? null,
      sample_seed: data?.sampleSeed ?? null,
    },
    max_length: maxLength,
    batch_size: batchSize,
    fewshot: {
      ...fewshot.setting,
      files: [...fewshot.files],
      short_docs: fewshot.shortDocs,
      bad_rows_skipped: fewshot.badRowsSkipped,
      truncated_requests: truncatedRequests,
    },
    metrics,
    documents: {
      index: docs.map((d) => d.index),
      scores: Object.fromEntries(Object.keys(docScores[0] ?? {}).map((key) => [key, docScores.map((s) => s[key])])),
    },
    routing,
    timings: {
      load_s: options.loadSeconds ?? null,
      eval_wall_s: (performance.now() - wallStart) / 1000,
      forward_s: out.forwardSeconds,
      batches: out.batches,
      scored_tokens: out.scoredPositions,
      input_tokens: out.inputTokens,
      input_tokens_per_second: out.inputTokens / out.forwardSeconds,
      requests: requestCount,
      forward_inputs: out.sequences.length,
    },
    trace: { level: traceLevel, file: observation.traceRows === null ? null : options.traceFile!, rows: observation.traceRows ?? 0, format: observation.traceRows === null ? null : TRACE_FORMAT },
    seed: options.seed ?? null,
    routelab_version: VERSION,
    git_commit: gitCommit(),
    backend: model.backend.name,
    threads: model.backend.threads,
    created: new Date().toISOString(),
  };
}

/** sha256 hex of the model directory's config.json; null when there is none. */
export function configHash(dir: string): string | null {
  const file = join(dir, 'config.json');
  return existsSync(file) ? createHash('sha256').update(readFileSync(file)).digest('hex') : null;
}

let cachedCommit: string | null | undefined;
/** `git rev-parse HEAD` in the routelab package's directory; null outside a git checkout. */
export function gitCommit(): string | null {
  if (cachedCommit !== undefined) return cachedCommit;
  const packageRoot = join(dirname(fileURLToPath(import.meta.url)), '../../..');
  try {
    cachedCommit = execFileSync('git', ['rev-parse', 'HEAD'], { cwd: packageRoot, stdio: ['ignore', 'pipe', 'ignore'], timeout: 5000 }).toString().trim() || null;
  } catch {
    cachedCommit = null;
  }
  return cachedCommit;
}
