/**
 * What evaluation records of the routing: for every scored position and MoE layer, the router's choice goes into
 * the routing metrics (SPEC §4), its overlap with the model's own routing, and — when asked — the routing trace.
 * Positions that only feed context (an unscored prefix) are not observed, so a document token counts once even
 * under rolling windows.
 */
import type { MoeModel, RoutingEvent } from '../model/model.js';
import type { Router } from '../routers/router.js';
import { flopsPerToken } from '../model/tensors.js';
import { TRACE_FORMAT, type TraceLevel } from '../trace/format.js';
import { TraceWriter } from '../trace/writer.js';
import { VERSION } from '../version.js';
import { jaccard, RoutingAccumulator, type RoutingMetrics } from './routing-metrics.js';
import type { ScoredRows } from './scorer.js';

export interface TraceTarget {
  readonly file: string;
  readonly level: Exclude<TraceLevel, 'off'>;
  readonly config: string;
  readonly task: string;
  readonly model: string;
}

/** Where each scoring unit sits in its document (as the trace names positions). */
export interface UnitPlace {
  readonly doc: number;
  readonly seqInDoc: number;
  readonly offset: number;
}

/** Per-batch scratch, sized once per batch of scored rows and reused across its layers. */
interface BatchScratch {
  readonly key: ScoredRows;
  readonly counts: Int32Array;
  readonly experts: Int32Array;
  readonly logits: Float32Array;
  readonly overlap: Float64Array;
  readonly doc: Int32Array;
  readonly seq: Int32Array;
  readonly pos: Int32Array;
  readonly token: Int32Array;
}

export class RoutingObservation {
  private readonly accumulator: RoutingAccumulator;
  private readonly defaultRouter: Router;
  private readonly trace: TraceWriter | null;
  private readonly E: number;
  private readonly mark: Uint8Array;
  private scratch: BatchScratch | null = null;
  // Distinct input → (doc, seq, offset) of the first unit that uses it, and its tokens (set by prepare).
  private seqDoc = new Int32Array(0);
  private seqSeq = new Int32Array(0);
  private seqOffset = new Int32Array(0);
  private sequences: readonly Int32Array[] = [];

  constructor(
    private readonly model: MoeModel,
    router: Router,
    trace: TraceTarget | null,
  ) {
    this.E = model.architecture.moe.numExperts;
    this.mark = new Uint8Array(this.E);
    this.defaultRouter = model.defaultRouter();
    this.accumulator = new RoutingAccumulator({ numLayers: model.numMoeLayers, numExperts: this.E, minK: router.minK, maxK: router.maxK });
    this.trace = trace && TraceWriter.open(trace.file, {
      format: TRACE_FORMAT,
      level: trace.level,
      numLayers: model.numMoeLayers,
      moeLayers: [...model.moeLayers],
      numExperts: this.E,
      minK: router.minK,
      maxK: router.maxK,
      expertBytes: this.E <= 256 ? 1 : 2,
      router: router.spec,
      config: trace.config,
      task: trace.task,
      model: trace.model,
      routelabVersion: VERSION,
    });
  }

  /** The distinct inputs the scorer runs, and which one each scoring unit uses. */
  prepare(sequences: readonly Int32Array[], sequenceOf: ArrayLike<number>, units: readonly UnitPlace[]): void {
    const first = new Int32Array(sequences.length).fill(-1);
    for (let u = 0; u < sequenceOf.length; u++) if (first[sequenceOf[u]] < 0) first[sequenceOf[u]] = u;
    this.seqDoc = Int32Array.from(first, (u) => units[u].doc);
    this.seqSeq = Int32Array.from(first, (u) => units[u].seqInDoc);
    this.seqOffset = Int32Array.from(first, (u) => units[u].offset);
    this.sequences = sequences;
  }

  /** One MoE layer's routing of a batch, restricted to its scored rows. */
  onRouting(event: RoutingEvent, scored: ScoredRows): void {
    const { routing, routerLogits, moeLayer: layer } = event;
    const { E } = this;
    const n = scored.n;
    const K = routing.maxK;
    const s = this.batchScratch(scored, K);
    for (let i = 0; i < n; i++) {
      const r = scored.row[i];
      const cnt = routing.counts[r];
      s.counts[i] = cnt;
      for (let j = 0; j < cnt; j++) s.experts[i * K + j] = routing.experts[r * K + j];
      s.logits.set(routerLogits.subarray(r * E, (r + 1) * E), i * E);
    }
    const def = this.defaultRouter.route(layer, s.logits.subarray(0, n * E), n, E);
    for (let i = 0; i < n; i++) s.overlap[i] = jaccard(s.experts, i * K, s.counts[i], def.experts, i * def.maxK, def.counts[i], this.mark);
    this.accumulator.addLayer(layer, n, s.counts, s.experts, K, s.overlap);
    this.trace?.add({ n, doc: s.doc, seq: s.seq, pos: s.pos, token: s.token, row: scored.row }, {
      layer,
      maxK: K,
      counts: routing.counts,
      experts: routing.experts,
      weights: routing.weights,
      routerLogits,
      pValues: routing.pValues,
    });
  }

  /** The trace's rows so far; null without a trace. */
  get traceRows(): number | null {
    return this.trace ? this.trace.rows : null;
  }

  close(): void {
    this.trace?.close();
  }

  /** Remove a partial trace (evaluation failed). */
  abort(): void {
    this.trace?.abort();
  }

  /** The routing metrics; FLOPs are priced by the model's declared tensors, against its own k. */
  metrics(forwardSeconds: number, determinism: number | null): RoutingMetrics {
    const { architecture: a, tensors } = this.model;
    return this.accumulator.finish({
      flops: (avg, context) => flopsPerToken(a, tensors, avg, context),
      defaultK: a.moe.numExpertsPerTok,
      forwardSeconds,
      determinism,
    });
  }

  /** Scratch for this batch of scored rows: positions, tokens and context lengths are looked up once per batch. */
  private batchScratch(scored: ScoredRows, K: number): BatchScratch {
    if (this.scratch && this.scratch.key === scored) return this.scratch;
    const n = scored.n;
    const doc = new Int32Array(n);
    const seq = new Int32Array(n);
    const pos = new Int32Array(n);
    const token = new Int32Array(n);
    let contextSum = 0;
    for (let i = 0; i < n; i++) {
      const s = scored.sequence[i];
      doc[i] = this.seqDoc[s];
      seq[i] = this.seqSeq[s];
      pos[i] = this.seqOffset[s] + scored.position[i];
      token[i] = this.sequences[s][scored.position[i]];
      contextSum += scored.position[i] + 1;
    }
    this.accumulator.addContext(contextSum, n);
    this.scratch = {
      key: scored, doc, seq, pos, token,
      counts: new Int32Array(n), experts: new Int32Array(n * K), logits: new Float32Array(n * this.E), overlap: new Float64Array(n),
    };
    return this.scratch;
  }
}
