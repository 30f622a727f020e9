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
import { flopsPerToken } from '../model/tensors.js';
import type { MoeModel, RoutingEvent } from '../model/model.js';
import type { TextTokenizer } from '../model/tokenizer.js';
import type { Router } from '../routers/router.js';
import { fingerprintDocs } from '../tasks/selection.js';
import type { BadRow, DocScores, RequestResult, Task, TaskDoc } from '../tasks/task.js';
import { TRACE_FORMAT, type TraceLevel } from '../trace/format.js';
import { TraceWriter } from '../trace/writer.js';
import { VERSION } from '../version.js';
import { requestUnits, type ScoringUnit } from './requests.js';
import { jaccard, outputDeterminism, RoutingAccumulator, type RoutingMetrics } from './routing-metrics.js';
import { scoreUnits, type ScoredRows, type ScoringInput } from './scorer.js';

export interface EvaluateOptions {
  /** Default: the model's own routing. */
  readonly router?: Router;
  /** Window / truncation length m (SPEC §3); default the model's max_position_embeddings. */
  readonly maxLength?: number;
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
  readonly backend?: string;
  readonly loadSeconds?: number;
  /** After each batch: scoring units done of total, seconds so far, scored tokens so far. */
  readonly onProgress?: (done: number, total: number, seconds: number, tokens: number) => void;
}

export interface DataInfo {
  readonly path: string;
  readonly format: string;
  readonly files?: readonly string[];
  readonly badRows?: readonly BadRow[];
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
    limit: number | null;
    sample_seed: number | null;
  };
  max_length: number;
  batch_size: number;
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
  backend: string | null;
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
  const defaultRouter = model.defaultRouter();
  const maxLength = options.maxLength ?? c.maxPositionEmbeddings;
  if (!Number.isInteger(maxLength) || maxLength < 1 || maxLength > c.maxPositionEmbeddings) {
    throw new RoutelabError('--max-length', `expected an integer in [1, max_position_embeddings ${c.maxPositionEmbeddings}], got ${maxLength}`);
  }
  const prefixToken = c.bosTokenId ?? tokenizer.eosTokenId ?? c.eosTokenId;
  if (prefixToken === null) throw new RoutelabError('config.json', 'neither bos_token_id nor eos_token_id is set: loglikelihood needs a prefix token');
  const batchSize = options.batchSize ?? 16;
  const traceLevel = options.trace ?? 'off';
  const config = router.configName(c.routing);

  // Requests → scoring units (rolling requests have several windows).
  const scoring: ScoringInput[] = [];
  const unitInfo: { doc: number; seqInDoc: number; offset: number }[] = [];
  const requestSpans: { doc: number; first: number; count: number }[][] = []; // per doc, per request
  let requestCount = 0;
  docs.forEach((doc, d) => {
    const spans: { doc: number; first: number; count: number }[] = [];
    let seqInDoc = 0;
    for (const request of task.requests(doc)) {
      const units: ScoringUnit[] = requestUnits(tokenizer, request, prefixToken, maxLength);
      spans.push({ doc: d, first: scoring.length, count: units.length });
      for (const u of units) {
        scoring.push({ input: u.input, targets: u.targets, group: d });
        unitInfo.push({ doc: doc.index, seqInDoc: seqInDoc++, offset: u.offset });
      }
      requestCount++;
    }
    requestSpans.push(spans);
  });

  // Routing observation of the scored positions; optional trace.
  const acc = new RoutingAccumulator({ numLayers: model.numMoeLayers, numExperts: E, minK: router.minK, maxK: router.maxK });
  let trace: TraceWriter | null = null;
  if (traceLevel !== 'off') {
    if (!options.traceFile) throw new Error('evaluate: trace level set without traceFile');
    trace = TraceWriter.open(options.traceFile, {
      format: TRACE_FORMAT,
      level: traceLevel,
      numLayers: model.numMoeLayers,
      moeLayers: [...model.moeLayers],
      numExperts: E,
      minK: router.minK,
      maxK: router.maxK,
      expertBytes: E <= 256 ? 1 : 2,
      router: router.spec,
      config,
      task: task.name,
      model: options.model?.id ?? '',
      routelabVersion: VERSION,
    });
  }
  // Distinct-sequence id → (doc, seq, offset) of the first unit that uses it; filled after dedup (see below).
  let seqDoc = new Int32Array(0);
  let seqSeq = new Int32Array(0);
  let seqOffset = new Int32Array(0);
  const mark = new Uint8Array(E);
  // Per-batch scratch, reused across layers.
  let scratch: { key: ScoredRows; counts: Int32Array; experts: Int32Array; logits: Float32Array; overlap: Float64Array; doc: Int32Array; seq: Int32Array; pos: Int32Array; token: Int32Array; index: Int32Array } | null = null;
  let sequencesRef: readonly Int32Array[] = [];

  const observer = {
    onRouting(event: RoutingEvent, scored: ScoredRows) {
      const { routing, routerLogits, moeLayer: layer } = event;
      const n = scored.n;
      const K = routing.maxK;
      if (!scratch || scratch.key !== scored) {
        const doc = new Int32Array(n);
        const seq = new Int32Array(n);
        const pos = new Int32Array(n);
        const token = new Int32Array(n);
        let contextSum = 0;
        for (let i = 0; i < n; i++) {
          const s = scored.sequence[i];
          doc[i] = seqDoc[s];
          seq[i] = seqSeq[s];
          pos[i] = seqOffset[s] + scored.position[i];
          token[i] = sequencesRef[s][scored.position[i]];
          contextSum += scored.position[i] + 1;
        }
        acc.addContext(contextSum, n);
        scratch = {
          key: scored,
          counts: new Int32Array(n),
          experts: new Int32Array(n * K),
          logits: new Float32Array(n * E),
          overlap: new Float64Array(n),
          doc,
          seq,
          pos,
          token,
          index: Int32Array.from({ length: n }, (_, i) => i),
        };
      }
      const s = scratch;
      for (let i = 0; i < n; i++) {
        const r = scored.row[i];
        const cnt = routing.counts[r];
        s.counts[i] = cnt;
        for (let j = 0; j < cnt; j++) s.experts[i * K + j] = routing.experts[r * K + j];
        s.logits.set(routerLogits.subarray(r * E, (r + 1) * E), i * E);
      }
      const def = defaultRouter.route(layer, s.logits.subarray(0, n * E), n, E);
      for (let i = 0; i < n; i++) s.overlap[i] = jaccard(s.experts, i * K, s.counts[i], def.experts, i * def.maxK, def.counts[i], mark);
      acc.addLayer(layer, n, s.counts, s.experts, K, s.overlap);
      trace?.add({ n, doc: s.doc, seq: s.seq, pos: s.pos, token: s.token, row: scored.row }, {
        layer,
        maxK: K,
        counts: routing.counts,
        experts: routing.experts,
        weights: routing.weights,
        routerLogits,
        pValues: routing.pValues,
      });
    },
  };

  let out;
  try {
    out = await scoreUnits(model, scoring, {
      router,
      batchSize,
      maxBatchTokens: options.maxBatchTokens,
      maxBatchLogitRows: options.maxBatchLogitRows,
      observer,
      onPrepared(sequences, sequenceOf) {
        // Distinct input → the (doc, seq, offset) of the first unit that uses it.
        const first = new Int32Array(sequences.length).fill(-1);
        sequenceOf.forEach((s, u) => {
          if (first[s] < 0) first[s] = u;
        });
        seqDoc = Int32Array.from(first, (u) => unitInfo[u].doc);
        seqSeq = Int32Array.from(first, (u) => unitInfo[u].seqInDoc);
        seqOffset = Int32Array.from(first, (u) => unitInfo[u].offset);
        sequencesRef = sequences;
      },
      onProgress: options.onProgress,
    });
    trace?.close();
  } catch (e) {
    trace?.abort();
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
  const routing = acc.finish({
    flops: (avg, context) => flopsPerToken(c, model.tensors, avg, context), defaultK: c.moe.numExpertsPerTok, forwardSeconds: out.forwardSeconds, determinism });

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
      limit: data?.limit ?? null,
      sample_seed: data?.sampleSeed ?? null,
    },
    max_length: maxLength,
    batch_size: batchSize,
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
    trace: { level: traceLevel, file: trace ? options.traceFile! : null, rows: trace?.rows ?? 0, format: trace ? TRACE_FORMAT : null },
    seed: options.seed ?? null,
    routelab_version: VERSION,
    git_commit: gitCommit(),
    backend: options.backend ?? null,
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
