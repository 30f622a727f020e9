/**
 * routelab's library API: load an OLMoE checkpoint once, run any router over it, and observe every layer's
 * routing. The CLI (src/cli/) is a thin layer over these exports.
 */
export { RoutelabError } from './errors.js';
export { VERSION } from './version.js';

export { loadModel, createBackend, BACKENDS, type LoadedModel, type LoadOptions } from './load.js';
export {
  MoeModel, KvCache, expertPlan,
  type ForwardOptions, type ForwardResult, type ForwardObserver, type RoutingEvent, type TensorSource,
} from './model/model.js';
export { forwardPadded, type PaddedOutputs } from './model/padded.js';
export { FAMILIES, parseArchitecture } from './model/families/index.js';
export type { Family, TensorRole } from './model/family.js';
export type { Architecture, AttentionArchitecture, MoeArchitecture, RopeArchitecture, RoutingParameters } from './model/architecture.js';
export { tensorLayout, parameterCounts, flopsPerToken, type TensorSpec, type ParameterCounts } from './model/tensors.js';
export { Checkpoint, resolveModelPath, defaultHubCacheDir, type ResolveModelOptions } from './model/checkpoint.js';
export { SafetensorsFile, writeSafetensors, type TensorToWrite, type SafetensorsDtype } from './model/safetensors.js';
export { loadTokenizer, requireTokenizer, createStreamDecoder, type TextTokenizer, type StreamDecoder } from './model/tokenizer.js';
export type { StoredTensor, WeightDtype } from './model/tensor.js';

export type { Router, Routing, RouterDefaults } from './routers/router.js';
export { parseRouterSpec, ROUTER_KINDS, type RouterKind } from './routers/registry.js';
export { TopKRouter } from './routers/topk.js';
export { TopPRouter, type TopPParams } from './routers/topp.js';
export { BhRouter, type BhParams } from './routers/bh.js';
export { ThresholdRouter, type ThresholdParams } from './routers/threshold.js';
export { EntropyRouter, type EntropyParams } from './routers/entropy.js';
export { HcRouter, type HcParams } from './routers/hc.js';
export { readNullModel, parseNullModel, nullCdf, NULL_MODEL_FORMAT, NULL_ESTIMATORS, type NullEstimator, type NullModel, type NullModelFile } from './routers/null-model.js';

export type { Backend, Tensor, Weight, ExpertPlan, ExpertWeights, BatchLayout, KvStore, AttentionShape } from './backends/backend.js';
export { CpuBackend } from './backends/cpu.js';

export type { Task, TaskDoc, Request, RequestResult, DocScores, BadRow } from './tasks/task.js';
export { getTask, TASK_NAMES, DEFAULT_DATA } from './tasks/registry.js';
export { selectDocs, fingerprintDocs } from './tasks/selection.js';
export { loadFewshot, fewshotPrompts, FEWSHOT_SEED, type FewshotPrompts } from './tasks/fewshot.js';
export { evaluate, type EvaluateOptions, type EvalSummary } from './eval/evaluate.js';
export { scoreUnits } from './eval/scorer.js';
export { readTrace, readDocTrace, type Trace } from './trace/reader.js';
export { exportTrace, EXPORT_FORMATS, type ExportFormat, type ExportOptions } from './trace/export.js';
export { METRICS, metricDefinition, betterDirection, type MetricDefinition, type Better } from './metrics.js';
export { catalog, listTasks, listRouters, listMetrics, listFamilies, CATALOG_KINDS, type CatalogKind } from './catalog.js';

export { writeReport, REPORT_FORMATS, type ReportFormat } from './report/report.js';
export { loadRunData } from './report/data.js';
export { buildCharts } from './report/charts.js';
export { chartToSvg, svgToPng } from './report/render.js';
export type { RunData, Chart, Finding } from './report/types.js';
export { compareRuns, type Comparison, type ComparedCell, type CompareOptions } from './compare/compare.js';
export { writeComparison, comparisonText } from './compare/render.js';

export { generate, type GenerateOptions } from './generate.js';
export { createSampler, createRandom, type Sampler, type SamplerOptions } from './sampling.js';
