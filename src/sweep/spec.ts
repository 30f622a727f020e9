/**
 * What a sweep runs: configurations × tasks and the evaluation settings they share. `quick` and `full` are the
 * seeds' defaults; `custom` reads a YAML or JSON file validated against a schema.
 *
 * Phase 1 is the top-k baselines (k ∈ {8, 16, 32, 64}); phase 2 is BH over max_k × alpha (min_k 1).
 */
import { CONTROL_MODES, type ControlMode } from './controls.js';
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { DEFAULT_MAX_COMPONENTS } from '../calibrate/gmm.js';
import { RoutelabError } from '../errors.js';
import { NULL_ESTIMATORS, type NullEstimator } from '../routers/null-model.js';
import { TASK_NAMES } from '../tasks/registry.js';
import { TRACE_LEVELS } from '../trace/format.js';
import type { TimingSpec } from '../experiments/timing.js';

export type SweepMode = 'quick' | 'full' | 'custom';

/** `text` is the bundled held-out Gutenberg prose (the bundled model's domain); other corpora are named by path. */
export const DEFAULT_TASKS = ['text', 'wikitext', 'lambada_openai', 'hellaswag'] as const;
export const SMALLBENCH_TASKS = ['sst2', 'rte', 'mrpc', 'boolq'] as const;

export interface SweepTask {
  readonly name: string;
  /** Named by the user (missing data is then an error) rather than by a mode's defaults (missing data: skipped). */
  readonly explicit: boolean;
  /** Data path or dataset id for this task; default: looked up in the data directory. */
  readonly data?: string;
}

export interface SweepSpec {
  readonly mode: SweepMode;
  /** Router specs in run order; `bh:` and `hc:` specs without `null=` get the sweep's null model. */
  readonly routers: readonly string[];
  readonly tasks: readonly SweepTask[];
  readonly limit: number | null;
  readonly sampleSeed: number | null;
  readonly maxLength: number | null;
  /** Few-shot examples per prompt, drawn as lm-eval draws them with its seed 1234 (src/tasks/fewshot.ts). */
  readonly numFewshot: number;
  readonly batchSize: number;
  readonly trace: 'off' | 'counts' | 'full';
  /** Null-model file for bh and hc; absent → calibration runs first and stores RUN_DIR/null.json. */
  readonly nullModel: string | null;
  readonly calibration: SweepCalibration;
  /** Seed of the paired bootstrap (and of --sample-seed sampling when set). */
  readonly seed: number;
  readonly bootstrapResamples: number;
  readonly profile: boolean;
  /** The timing protocol after the cells (src/experiments/timing.ts): interleaved rounds over a probe per task. */
  readonly timing: TimingSpec;
  /** `matched`: every adaptive cell also gets its top-k and randk controls (src/sweep/controls.ts). */
  readonly controls: ControlMode;
}

/** How a sweep calibrates its null: the text, its size, per-expert nulls, the estimator (max components: gmm only, else null). */
export interface SweepCalibration {
  readonly data: string | null;
  readonly tokens: number;
  readonly perExpert: boolean;
  readonly estimator: NullEstimator;
  readonly maxComponents: number | null;
}

/** The grid's k values as multiples of the model's own k (OLMoE-1B-7B, k = 8 of 64: 8, 16, 32, 64), at most E. */
const K_MULTIPLES = [1, 2, 4, 8];
const BH_ALPHA = [0.3, 0.4, 0.5, 0.6];

/** What the quick and full grids are built from: the model's experts, its own k, and the most its routing can pick. */
export interface GridModel {
  readonly numExperts: number;
  readonly numExpertsPerTok: number;
  /** The model's own routing can choose at most this many (DeepSeek's group limit: topk_group · E / n_group). */
  readonly maxRoutableK: number;
}

function gridK(model: GridModel, max: number): number[] {
  return [...new Set(K_MULTIPLES.map((m) => m * model.numExpertsPerTok).filter((k) => k <= max))];
}

/**
 * Phase 1 then phase 2, as router specs: phase 1 is the model's own routing at each baseline k (`default:k=…`: top-k
 * for OLMoE, Mixtral and Qwen, the family's router for DeepSeek and Granite), phase 2 BH over max_k × alpha.
 */
export function gridRouters(baselines: readonly number[], bh: { maxK: readonly number[]; alpha: readonly number[]; minK: number } | null, baseline = (k: number) => `topk:k=${k}`): string[] {
  const routers = baselines.map(baseline);
  if (bh) for (const maxK of bh.maxK) for (const alpha of bh.alpha) routers.push(`bh:alpha=${alpha},max_k=${maxK},min_k=${bh.minK}`);
  return routers;
}

const COMMON = {
  sampleSeed: null,
  numFewshot: 0,
  batchSize: 16,
  trace: 'counts' as const,
  nullModel: null,
  calibration: { data: null, tokens: 16384, perExpert: false, estimator: 'kde', maxComponents: null } as SweepCalibration,
  seed: 0,
  bootstrapResamples: 1000,
  profile: false,
  timing: { rounds: 5, tokens: 512 },
  controls: 'matched' as const,
};

/** The seeds' sweep over whole splits: 4 baselines + 16 BH configurations (for OLMoE-1B-7B; fewer when E < 8·k). */
export function fullSpec(smallbench: boolean, model: GridModel): SweepSpec {
  return {
    ...COMMON,
    mode: 'full',
    routers: gridRouters(gridK(model, model.maxRoutableK), { maxK: gridK(model, model.numExperts), alpha: BH_ALPHA, minK: 1 }, (k) => `default:k=${k}`),
    tasks: [...DEFAULT_TASKS, ...(smallbench ? SMALLBENCH_TASKS : [])].map((name) => ({ name, explicit: false })),
    limit: null,
    maxLength: null,
  };
}

/** A few minutes on a CPU: the same grid with one BH max_k, 10 documents per task, 512-token windows. */
export function quickSpec(smallbench: boolean, model: GridModel): SweepSpec {
  return {
    ...fullSpec(smallbench, model),
    mode: 'quick',
    routers: gridRouters(gridK(model, model.maxRoutableK), { maxK: [model.numExpertsPerTok], alpha: BH_ALPHA, minK: 1 }, (k) => `default:k=${k}`),
    limit: 10,
    maxLength: 512,
    calibration: { ...COMMON.calibration, tokens: 4096 },
    timing: { rounds: 5, tokens: 256 },
  };
}

const positiveInt = z.number().int().positive();
const unknownTask = (name: unknown) => `unknown task ${JSON.stringify(name)}; valid tasks: ${TASK_NAMES.join(', ')}`;
const taskName = z.enum(TASK_NAMES as [string, ...string[]], { error: (issue) => unknownTask(issue.input) });
/** A task entry: its name, or { name, data }; a wrong name is reported with the valid ones, not as "Invalid input". */
const taskEntry = z.union([taskName, z.strictObject({ name: taskName, data: z.string().min(1).optional() })], {
  error: (issue) => {
    const input = issue.input as { name?: unknown } | null;
    if (typeof input === 'string') return unknownTask(input);
    if (typeof input === 'object' && input !== null && 'name' in input && !TASK_NAMES.includes(input.name as string)) return `name: ${unknownTask(input.name)}`;
    return `expected a task name (${TASK_NAMES.join(', ')}) or { name: TASK, data: PATH }`;
  },
});
const customSchema = z.strictObject({
  tasks: z.array(taskEntry).min(1),
  baselines: z.array(positiveInt).default([]),
  bh: z.strictObject({
    max_k: z.array(positiveInt).min(1),
    alpha: z.array(z.number().gt(0).lte(1)).min(1),
    min_k: positiveInt.default(1),
  }).optional(),
  routers: z.array(z.string().min(1)).default([]),
  limit: positiveInt.nullable().default(null),
  sample_seed: z.number().int().min(0).nullable().default(null),
  max_length: positiveInt.nullable().default(null),
  num_fewshot: z.number().int().min(0).default(0),
  batch_size: positiveInt.default(16),
  trace: z.enum(TRACE_LEVELS as unknown as [string, ...string[]]).default('counts'),
  null: z.string().min(1).nullable().default(null),
  calibration: z.strictObject({
    data: z.string().min(1).nullable().default(null),
    tokens: positiveInt.default(16384),
    per_expert: z.boolean().default(false),
    estimator: z.enum(NULL_ESTIMATORS).default('kde'),
    max_components: positiveInt.optional(),
  }).refine((c) => c.max_components === undefined || c.estimator === 'gmm', { message: 'max_components applies to estimator gmm only', path: ['max_components'] })
    .default({ data: null, tokens: 16384, per_expert: false, estimator: 'kde' }),
  seed: z.number().int().min(0).default(0),
  bootstrap_resamples: positiveInt.default(1000),
  profile: z.boolean().default(false),
  timing: z.strictObject({ rounds: z.number().int().min(0).default(3), tokens: positiveInt.default(256) }).default({ rounds: 3, tokens: 256 }),
  controls: z.enum(CONTROL_MODES).default('none'),
});

/** Read and validate a custom sweep spec (YAML or JSON). Every problem is listed with its path in the file. */
export function readCustomSpec(file: string): SweepSpec {
  let raw: unknown;
  try {
    const text = readFileSync(file, 'utf8');
    raw = file.endsWith('.json') ? JSON.parse(text) : parseYaml(text);
  } catch (e) {
    throw new RoutelabError(file, `cannot read the sweep spec: ${(e as Error).message}`);
  }
  const parsed = customSchema.safeParse(raw);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `  ${i.path.length ? i.path.join('.') : '(top level)'}: ${i.message}`);
    throw new RoutelabError(file, `invalid sweep spec:\n${problems.join('\n')}`);
  }
  const s = parsed.data;
  const routers = [...gridRouters(s.baselines, s.bh ? { maxK: s.bh.max_k, alpha: s.bh.alpha, minK: s.bh.min_k } : null), ...s.routers];
  if (routers.length === 0) throw new RoutelabError(file, 'invalid sweep spec: no configurations (give baselines, bh or routers)');
  return {
    mode: 'custom',
    routers,
    tasks: s.tasks.map((t) => (typeof t === 'string' ? { name: t, explicit: true } : { name: t.name, explicit: true, data: t.data })),
    limit: s.limit,
    sampleSeed: s.sample_seed,
    maxLength: s.max_length,
    numFewshot: s.num_fewshot,
    batchSize: s.batch_size,
    trace: s.trace as SweepSpec['trace'],
    nullModel: s.null,
    calibration: {
      data: s.calibration.data,
      tokens: s.calibration.tokens,
      perExpert: s.calibration.per_expert,
      estimator: s.calibration.estimator,
      maxComponents: s.calibration.estimator === 'gmm' ? (s.calibration.max_components ?? DEFAULT_MAX_COMPONENTS) : null,
    },
    seed: s.seed,
    bootstrapResamples: s.bootstrap_resamples,
    profile: s.profile,
    timing: s.timing,
    controls: s.controls,
  };
}
