/**
 * `routelab analyze`: what a sweep's routing traces say about its experts (definitions in docs/analyze.md and in
 * each analysis's module). Every trace is streamed once, one row group at a time, into count arrays:
 *   - the analysed configuration (default the run's baseline: the model's own routing) on every task gives task
 *     specialisation, and on the analysed tasks vocabulary specialisation, co-activation and cross-layer routing;
 *   - every configuration whose count varies (or the analysed one alone, when named) gives a sample of its rows
 *     for what drives its counts.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { RoutelabError } from '../errors.js';
import { loadTokenizer, type TextTokenizer } from '../model/tokenizer.js';
import { nearest } from '../suggest.js';
import { readTrace, type Trace } from '../trace/reader.js';
import { adaptiveCounts, CountSample, type AdaptiveCounts } from './adaptive.js';
import { coactivation, CoactivationCounts, type Coactivation } from './coactivation.js';
import { crossLayer, CrossLayerCounts, type LayerPair } from './layers.js';
import { TaskCounts, taskSpecialisation, type TaskSpecialisation } from './tasks.js';
import { vocabulary, VocabularyCounts, type Vocabulary } from './vocabulary.js';

export interface AnalyzeOptions {
  /** The configuration whose experts are analysed; default the run's baseline. */
  readonly config?: string;
  /** Restrict vocabulary, co-activation, cross-layer and count analyses to one task (task specialisation keeps all). */
  readonly task?: string;
  /** MoE layer of the co-activation matrix; default the middle one, ⌊L/2⌋. */
  readonly layer?: number;
  /** Entries per top list (tokens per expert, co-activation pairs). */
  readonly top?: number;
  /** Fewest selections of a token by an expert (an expert's, for co-activation) before it is ranked by lift. */
  readonly minCount?: number;
  /** Model directory whose tokenizer decodes token ids; default the model the traces record. */
  readonly model?: string;
  readonly log?: (line: string) => void;
}

export const DEFAULT_TOP = 10;
export const DEFAULT_MIN_COUNT = 5;

export interface Analysis {
  readonly runDir: string;
  /** Configurations with traces in the sweep's order, and the run's baseline when it records one. */
  readonly configs: readonly string[];
  readonly baseline: string | null;
  readonly config: string;
  readonly router: string;
  readonly level: 'counts' | 'full';
  readonly numLayers: number;
  readonly numExperts: number;
  /** Every task the configuration has a trace for, and those the token-level analyses cover. */
  readonly tasks: readonly string[];
  readonly analysedTasks: readonly string[];
  readonly top: number;
  readonly minCount: number;
  readonly vocabulary: Vocabulary;
  /** Decoded text of the tokens the top lists name (empty without a tokenizer). */
  readonly tokenText: ReadonlyMap<number, string>;
  readonly taskSpecialisation: TaskSpecialisation;
  readonly coactivation: Coactivation;
  readonly crossLayer: readonly LayerPair[];
  /** Configurations whose count varied on the analysed tasks. */
  readonly adaptive: readonly AdaptiveCounts[];
}

/** A token as analyze.md and the report show it: quoted, so spaces and newlines stay visible, and safe inside a table. */
export function shownToken(a: Analysis, token: number): string {
  const text = a.tokenText.get(token);
  return (text === undefined ? `#${token}` : JSON.stringify(text)).replaceAll('|', '\\|').replaceAll('`', "'");
}

interface RunTrace {
  readonly config: string;
  readonly task: string;
  readonly trace: Trace;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function readJsonIfPresent(file: string): unknown {
  if (!existsSync(file)) return null;
  try {
    return JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new RoutelabError(file, `not valid JSON (${(e as Error).message})`);
  }
}

/** Names in the order `listed` gives them, then the rest in alphabetical order. */
function ordered(names: Iterable<string>, listed: readonly unknown[]): string[] {
  const present = new Set(names);
  const first = listed.filter((n): n is string => typeof n === 'string' && present.has(n));
  return [...new Set([...first, ...[...present].sort()])];
}

/** The run directory's traces, the sweep's order of configurations and tasks, and its baseline. */
async function runTraces(runDir: string): Promise<{ traces: RunTrace[]; configs: string[]; tasks: string[]; baseline: string | null }> {
  if (!existsSync(runDir) || !statSync(runDir).isDirectory()) throw new RoutelabError(runDir, 'no such run directory');
  const manifest = readJsonIfPresent(join(runDir, 'manifest.json'));
  const results = readJsonIfPresent(join(runDir, 'results.json'));
  const files = readdirSync(runDir).filter((f) => f.endsWith('_routing.parquet')).sort();
  if (files.length === 0) {
    const off = isObject(manifest) && isObject(manifest.spec) && manifest.spec.trace === 'off';
    throw new RoutelabError(runDir, off
      ? 'the sweep ran with trace off, so there are no routing traces to analyse; run it again with trace: counts (or full, for router entropy)'
      : 'no routing traces ({config}_{task}_routing.parquet): expected a sweep\'s run directory (routelab sweep --out) or an eval --out directory');
  }
  const traces: RunTrace[] = [];
  for (const f of files) {
    const trace = await readTrace(join(runDir, f));
    if (trace.meta.level !== 'counts' && trace.meta.level !== 'full') {
      throw new RoutelabError(trace.file, `trace level ${JSON.stringify(trace.meta.level)}; expected counts or full (a trace that records the routing)`);
    }
    traces.push({ config: trace.meta.config, task: trace.meta.task, trace });
  }
  const manifestConfigs = isObject(manifest) && Array.isArray(manifest.configs) ? manifest.configs.map((c) => (isObject(c) ? c.config : null)) : [];
  const manifestTasks = isObject(manifest) && Array.isArray(manifest.data) ? manifest.data.map((d) => (isObject(d) ? d.task : null)) : [];
  // Every result row but the baseline's own names the baseline it was compared with.
  const baseline = Array.isArray(results) ? (results.map((r) => (isObject(r) ? r.baseline : null)).find((b): b is string => typeof b === 'string') ?? null) : null;
  return {
    traces,
    configs: ordered(traces.map((t) => t.config), manifestConfigs),
    tasks: ordered(traces.map((t) => t.task), manifestTasks),
    baseline: baseline !== null && traces.some((t) => t.config === baseline) ? baseline : null,
  };
}

function chooseConfig(configs: readonly string[], baseline: string | null, asked: string | undefined): string {
  if (asked !== undefined) {
    if (configs.includes(asked)) return asked;
    const near = nearest(asked, configs);
    throw new RoutelabError('--config', `no traces of configuration ${JSON.stringify(asked)}; ${near ? `did you mean ${near}? ` : ''}configurations with traces: ${configs.join(', ')}`);
  }
  if (baseline !== null) return baseline;
  if (configs.length === 1) return configs[0];
  throw new RoutelabError('--config', `the run records no baseline; name the configuration to analyse (one of ${configs.join(', ')})`);
}

/** The tokenizer of `--model`, else of the model the traces record (a path that may not exist here). */
function tokenizerFor(model: string | undefined, recorded: string): TextTokenizer | null {
  if (model !== undefined) {
    const tokenizer = loadTokenizer(model);
    if (tokenizer === null) throw new RoutelabError('--model', `${model} has no tokenizer.json to decode token ids with`);
    return tokenizer;
  }
  try {
    return existsSync(recorded) ? loadTokenizer(recorded) : null;
  } catch {
    return null; // the recorded model is not readable here: tokens are shown by id
  }
}

export async function analyzeRun(runDir: string, options: AnalyzeOptions = {}): Promise<Analysis> {
  const dir = resolve(runDir);
  const log = options.log ?? (() => {});
  const top = options.top ?? DEFAULT_TOP;
  const minCount = options.minCount ?? DEFAULT_MIN_COUNT;
  const run = await runTraces(dir);
  const config = chooseConfig(run.configs, run.baseline, options.config);
  const own = run.traces.filter((t) => t.config === config).sort((a, b) => run.tasks.indexOf(a.task) - run.tasks.indexOf(b.task));
  const tasks = own.map((t) => t.task);
  if (options.task !== undefined && !tasks.includes(options.task)) {
    const near = nearest(options.task, tasks);
    throw new RoutelabError('--task', `${config} has no trace for task ${JSON.stringify(options.task)}; ${near ? `did you mean ${near}? ` : ''}its tasks: ${tasks.join(', ')}`);
  }
  const analysed = (task: string) => options.task === undefined || task === options.task;
  const { numLayers: L, numExperts: E } = own[0].trace.meta;
  for (const t of run.traces) {
    if (t.trace.meta.numLayers !== L || t.trace.meta.numExperts !== E) {
      throw new RoutelabError(t.trace.file, `has ${t.trace.meta.numLayers} MoE layers × ${t.trace.meta.numExperts} experts; expected ${L} × ${E} like ${own[0].trace.file}`);
    }
  }
  const layer = options.layer ?? Math.floor(L / 2);
  if (!(Number.isInteger(layer) && layer >= 0 && layer < L)) throw new RoutelabError('--layer', `${layer} is out of range: the traces have ${L} MoE layers, 0…${L - 1}`);

  const vocabularyCounts = new VocabularyCounts(L, E);
  const taskCounts = new TaskCounts(tasks, L, E);
  const coactivationCounts = new CoactivationCounts(layer, E);
  const crossLayerCounts = L > 1 ? new CrossLayerCounts(L, E) : null;
  // A router whose bounds coincide cannot vary its count; the others are kept if they did.
  const candidates = (options.config === undefined ? run.configs : [config]).filter((c) => {
    const meta = run.traces.find((t) => t.config === c)!.trace.meta;
    return meta.minK < meta.maxK;
  });
  const samples = new Map(candidates.map((c) => [c, new CountSample(c, L, E)]));
  const streamed = run.traces.filter((t) => (t.config === config || samples.has(t.config)) && (t.config === config || analysed(t.task)));
  for (const { config: c, task, trace } of streamed) {
    const K = trace.meta.maxK;
    const specialisation = c === config;
    const tokenLevel = analysed(task);
    const sample = tokenLevel ? samples.get(c) : undefined;
    if (specialisation && tokenLevel) crossLayerCounts?.begin(trace.file);
    for await (const chunk of trace.chunks()) {
      if (specialisation) {
        taskCounts.add(tasks.indexOf(task), chunk, K);
        if (tokenLevel) {
          vocabularyCounts.add(chunk, K);
          coactivationCounts.add(chunk, K);
          crossLayerCounts?.add(chunk, K);
        }
      }
      sample?.add(chunk);
    }
    if (specialisation && tokenLevel) crossLayerCounts?.finish();
    log(`${c} × ${task}: ${trace.rows} rows`);
  }

  const vocab = vocabulary(vocabularyCounts, top, minCount);
  const meta = own[0].trace.meta;
  const tokenizer = tokenizerFor(options.model, meta.model);
  const tokenText = new Map<number, string>();
  if (tokenizer) for (const t of vocab.topTokens) if (!tokenText.has(t.token)) tokenText.set(t.token, tokenizer.decode([t.token]));
  return {
    runDir: dir,
    configs: run.configs,
    baseline: run.baseline,
    config,
    router: meta.router,
    level: own.every((t) => t.trace.meta.level === 'full') ? 'full' : 'counts',
    numLayers: L,
    numExperts: E,
    tasks,
    analysedTasks: tasks.filter(analysed),
    top,
    minCount,
    vocabulary: vocab,
    tokenText,
    taskSpecialisation: taskSpecialisation(taskCounts),
    coactivation: coactivation(coactivationCounts, top, minCount),
    crossLayer: crossLayerCounts ? crossLayer(crossLayerCounts) : [],
    adaptive: [...samples.values()].filter((s) => s.rows > 0 && s.minCount < s.maxCount).map(adaptiveCounts),
  };
}
