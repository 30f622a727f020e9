/**
 * What a report is made of, shared by its three stages: loading a sweep's run directory (data.ts), deciding what
 * to say and draw (findings.ts, charts.ts) and writing it out (render.ts, markdown.ts, html.ts, pdf.ts).
 */
import type { EvalSummary } from '../eval/evaluate.js';
import type { NullEstimator } from '../routers/null-model.js';
import type { ResultRow } from '../sweep/results.js';

/**
 * How a configuration routes, which decides the charts it appears in: 'fixed' k per token (the baselines: topk and
 * the family routers), 'bh', or another 'adaptive' router (topp, …).
 */
export type RouterKindName = 'fixed' | 'bh' | 'adaptive';

/** One router configuration of the sweep, in the order of the sweep's spec (baselines first). */
export interface ConfigInfo {
  readonly name: string; // e.g. 8experts_bh_a040
  readonly router: string; // the router spec string
  readonly routerKind: RouterKindName;
  /** The router's k (fixed) or max_k / min_k (adaptive). */
  readonly maxK: number | null;
  readonly minK: number | null;
  /** bh only. */
  readonly alpha: number | null;
  /** True for the configuration every other is compared against (the model's default top-k). */
  readonly isBaseline: boolean;
}

/** One (configuration × task) cell: its results.* row and its summary JSON (per-document scores dropped). */
export interface ReportCell {
  readonly config: string;
  readonly task: string;
  readonly row: ResultRow;
  readonly summary: Omit<EvalSummary, 'documents'>;
  /** Absolute path of the cell's routing trace, when one was written. */
  readonly traceFile: string | null;
}

/** Aggregates of one cell's routing trace, streamed chunk by chunk (bounded memory). */
export interface TraceAggregate {
  readonly config: string;
  readonly task: string;
  readonly numLayers: number; // L
  readonly numExperts: number; // E
  readonly maxK: number; // K of the trace (the router's max_k)
  /** Scored positions per layer (the same for every layer). */
  readonly tokens: number;
  /** [L × E]: share of positions at layer ℓ that selected expert e (sums to the layer's mean c over e). */
  readonly expertLoad: Float64Array;
  /** [L × (K + 1)]: share of positions at layer ℓ that selected exactly c experts, c = 0..K. */
  readonly countHistogram: Float64Array;
}

/** The per-token view of one document under one configuration: c[t, ℓ] with the token text. */
export interface DocumentView {
  readonly config: string;
  readonly task: string;
  readonly doc: number;
  readonly numLayers: number;
  /** Decoded text of each position's token (tokenizer of the run's model; the id as text when unavailable). */
  readonly tokens: readonly string[];
  /** Scored positions of the whole document (`tokens` holds its first ones only). */
  readonly totalPositions: number;
  /** [T × L] experts selected at position t, layer ℓ. */
  readonly counts: Int32Array;
}

/** One layer of the calibrated null model: the CDF grid and its density (the CDF's derivative on the grid). */
export interface NullLayerView {
  readonly layer: number;
  readonly x: Float64Array;
  readonly cdf: Float64Array;
  readonly density: Float64Array;
  /** Silverman bandwidth from the file's metadata, when recorded. */
  readonly bandwidth: number | null;
  /** KS distance of the layer's null to held-out calibration logits, when recorded. */
  readonly ks?: number;
  /** The largest per-expert KS distance (an expert's held-out logits against the null bh uses for it), when recorded. */
  readonly ksWorstExpert?: number;
  /** How many experts' KS distances exceed the 95% critical value for the held-out tokens, when recorded. */
  readonly ksExpertsAboveCritical?: number;
}

/** Everything a report needs from a run directory. */
export interface RunData {
  readonly runDir: string;
  /** manifest.json as written by the sweep (spec, model, data fingerprints, versions, machine, times). */
  readonly manifest: Readonly<Record<string, unknown>>;
  readonly configs: readonly ConfigInfo[];
  /** Tasks in the sweep's order. */
  readonly tasks: readonly string[];
  readonly cells: readonly ReportCell[];
  /** Name of the baseline configuration (significance is against it), or null when the sweep had none. */
  readonly baseline: string | null;
  readonly traces: readonly TraceAggregate[];
  readonly documents: readonly DocumentView[];
  /** Decoder-layer index of each MoE layer: charts name layers by these (traces, metrics and nulls count MoE layers). */
  readonly moeLayers: readonly number[];
  /** The model card (README.md front matter) tags the model `demo`: its numbers show the pipeline, not findings. */
  readonly demoModel?: boolean;
  readonly nullModel: {
    /** As the report names it: relative to the run directory when inside it. */
    readonly file: string;
    readonly estimator?: NullEstimator;
    readonly layers: readonly NullLayerView[];
    /** Whether each expert has its own null (bh then uses it instead of the layer's). */
    readonly perExpert: boolean;
    readonly numExperts: number;
    /** Calibration tokens held out for the goodness of fit, when recorded. */
    readonly heldOutTokens: number | null;
  } | null;
}

/** A sentence of the key findings, written from the data (Markdown inline syntax allowed). */
export interface Finding {
  readonly topic: 'scope' | 'best' | 'pareto' | 'significance' | 'controls' | 'null-fit' | 'bh-response' | 'routing' | 'speed' | 'specialisation';
  readonly text: string;
}

/** A chart: its Vega-Lite spec plus how the report refers to it. */
export interface Chart {
  /** File stem under report/figures/: `[a-z0-9-]+`. */
  readonly name: string;
  readonly title: string;
  /** One sentence saying what the chart shows, under it in the report. */
  readonly caption: string;
  readonly section: 'sweep' | 'bh' | 'routing' | 'null' | 'analysis';
  /** A complete top-level Vega-Lite spec with its data inlined (values), renderable on its own. */
  readonly spec: Record<string, unknown>;
}
