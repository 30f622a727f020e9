/**
 * A sweep's run directory read back for a report: the manifest, the results rows, every cell's summary, aggregates
 * of the routing traces (streamed row group by row group), one document's per-token routing, and the null model.
 * A run directory that was moved or copied still loads: recorded file paths are looked up by name inside it.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { basename, dirname, isAbsolute, join, relative, resolve } from 'node:path';
import { RoutelabError } from '../errors.js';
import type { EvalSummary } from '../eval/evaluate.js';
import { loadTokenizer, type TextTokenizer } from '../model/tokenizer.js';
import { BhRouter } from '../routers/bh.js';
import { ksCritical95 } from '../calibrate/ks.js';
import { readNullModel } from '../routers/null-model.js';
import { parseRouterSpec, splitSpec, takesNullModel } from '../routers/registry.js';
import { softmaxRouting } from '../model/family.js';
import type { RouterDefaults } from '../routers/router.js';
import type { ResultRow } from '../sweep/results.js';
import { readTrace } from '../trace/reader.js';
import type { ConfigInfo, DocumentView, NullLayerView, ReportCell, RunData, TraceAggregate } from './types.js';

export interface LoadRunOptions {
  /** Configuration of the per-token document view; default the baseline and the most adaptive BH configuration. */
  readonly documentConfig?: string;
  /** Task of the document view; default wikitext, else the first task with a trace. */
  readonly documentTask?: string;
  /** Document index (in the task's order) of the view; default the first document evaluated. */
  readonly doc?: number;
}

const SWEEP_FORMAT = 'routelab.sweep/1';
const SUMMARY_FORMAT = 'routelab.eval/1';
/** The document view shows the first positions only: more would make its token labels unreadable. */
const DOCUMENT_POSITIONS = 128;

interface ManifestConfig {
  readonly config: string;
  readonly router: string;
}

interface LoadedCell extends ReportCell {
  /** Indices of the documents the cell scored, from its summary (the per-document scores themselves are dropped). */
  readonly docs: readonly number[];
}

export async function loadRunData(runDir: string, options: LoadRunOptions = {}): Promise<RunData> {
  const dir = resolve(runDir);
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new RoutelabError(runDir, 'no such run directory');
  const resultsFile = join(dir, 'results.json');
  const manifestFile = join(dir, 'manifest.json');
  if (!existsSync(resultsFile)) {
    throw new RoutelabError(dir, 'not a routelab sweep run directory: no results.json (a sweep writes it once every cell is evaluated)');
  }
  if (!existsSync(manifestFile)) {
    throw new RoutelabError(dir, 'not a routelab sweep run directory: no manifest.json (the sweep did not finish; run the same sweep again to complete it)');
  }
  const manifest = readManifest(manifestFile);
  const rows = readRows(resultsFile);
  const cells = rows.map((row) => readCell(dir, row));

  const { model } = cells[0].summary;
  // Recorded router specs are canonical (every key spelled out), so the family's routing defaults are never consulted.
  const defaults: RouterDefaults = {
    numExperts: model.num_experts,
    numExpertsPerTok: model.num_experts_per_tok,
    moeLayers: moeLayersOf(model),
    routing: softmaxRouting(false),
    defaultSpec: (k) => `topk:k=${k}`,
    selectionBias: () => null,
  };
  const nullFile = locateNullModel(dir, manifest);
  const described = (manifest.configs as ManifestConfig[]).map((c) => describeConfig(c, defaults, nullFile, manifestFile));
  const unknown = cells.find((c) => !described.some((d) => d.name === c.config));
  if (unknown) throw new RoutelabError(resultsFile, `has a row for configuration ${unknown.config}, which manifest.json does not list`);
  const baseline = rows.map((r) => r.baseline).find((b): b is string => typeof b === 'string') ??
    described.find((c) => c.routerKind === 'fixed' && c.maxK === defaults.numExpertsPerTok)?.name ?? null;
  const configs = described.map((c) => ({ ...c, isBaseline: c.name === baseline }));
  const tasks = taskOrder(manifest, cells);

  const choice = documentChoice(dir, { configs, tasks, cells, baseline }, options);
  const traces: TraceAggregate[] = [];
  const documentRows: { cell: LoadedCell; rows: DocumentRows; numLayers: number }[] = [];
  for (const cell of cells) {
    if (cell.traceFile === null) continue;
    const wanted = choice && cell.task === choice.task && choice.configs.includes(cell.config) ? choice.doc : null;
    const { aggregate, rows } = await readCellTrace(cell, cell.traceFile, wanted);
    traces.push(aggregate);
    if (rows) documentRows.push({ cell, rows, numLayers: aggregate.numLayers });
  }
  const tokenizer = documentRows.length ? modelTokenizer(manifest) : null;
  const documents = documentRows.flatMap(({ cell, rows, numLayers }) => documentView(cell, choice!.doc, rows, numLayers, tokenizer));

  return {
    runDir: dir,
    manifest,
    configs,
    tasks,
    cells: cells.map(({ docs: _, ...cell }) => cell),
    baseline,
    traces,
    documents,
    moeLayers: moeLayersOf(model),
    demoModel: isDemoModel((manifest.model as { dir?: unknown } | undefined)?.dir),
    nullModel: nullFile ? nullView(nullFile, dir) : null,
  };
}

/** Whether a model directory's card (README.md YAML front matter) lists `demo` among its tags. */
function isDemoModel(dir: unknown): boolean {
  if (typeof dir !== 'string') return false;
  const card = join(dir, 'README.md');
  if (!existsSync(card)) return false;
  const front = /^---\n([\s\S]*?)\n---/.exec(readFileSync(card, 'utf8'))?.[1] ?? '';
  const tags = /^tags:\s*\[([^\]]*)\]/m.exec(front)?.[1] ?? /^tags:\s*\n((?:\s*-\s*.+\n?)*)/m.exec(front)?.[1] ?? '';
  return tags.split(/[,\n]/).map((t) => t.replace(/^\s*-?\s*/, '').trim().replace(/^['"]|['"]$/g, '')).includes('demo');
}

/** MoE layers of a summary's model (summaries before families record none: every layer was MoE). */
function moeLayersOf(model: EvalSummary['model']): number[] {
  return model.moe_layers ?? Array.from({ length: model.num_layers }, (_, l) => l);
}

function readJson(file: string, expected: string): unknown {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new RoutelabError(file, `cannot read it (${(e as Error).message}); expected ${expected}`);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new RoutelabError(file, `not valid JSON (${(e as Error).message}); expected ${expected}`);
  }
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function readManifest(file: string): Record<string, unknown> {
  const manifest = readJson(file, `a sweep manifest (format ${SWEEP_FORMAT})`);
  if (!isObject(manifest) || manifest.format !== SWEEP_FORMAT) {
    throw new RoutelabError(file, `expected a sweep manifest with "format": "${SWEEP_FORMAT}"`);
  }
  const configs = manifest.configs;
  if (!Array.isArray(configs) || !configs.every((c) => isObject(c) && typeof c.config === 'string' && typeof c.router === 'string')) {
    throw new RoutelabError(`${file}: configs`, 'expected an array of {"config": name, "router": spec}');
  }
  return manifest;
}

function readRows(file: string): ResultRow[] {
  const rows = readJson(file, 'an array of result rows');
  if (!Array.isArray(rows) || rows.length === 0 || !rows.every((r) => isObject(r) && typeof r.config === 'string' && typeof r.task === 'string')) {
    throw new RoutelabError(file, 'expected a non-empty array of result rows, each with "config" and "task"');
  }
  return rows as ResultRow[];
}

/** A row's summary JSON (by its recorded file name, inside the run directory) and its trace when that is there. */
function readCell(dir: string, row: ResultRow): LoadedCell {
  const config = row.config as string;
  const task = row.task as string;
  const file = join(dir, typeof row.summary_file === 'string' ? basename(row.summary_file) : `${config}_${task}.json`);
  if (!existsSync(file)) throw new RoutelabError(file, `missing: the summary of cell ${config} × ${task}, which results.json lists`);
  const parsed = readJson(file, `the evaluation summary of ${config} × ${task}`);
  if (!isObject(parsed) || parsed.format !== SUMMARY_FORMAT || parsed.config !== config || parsed.task !== task) {
    throw new RoutelabError(file, `expected a ${SUMMARY_FORMAT} summary of configuration ${config} on task ${task}`);
  }
  const { documents, ...summary } = parsed as unknown as EvalSummary;
  // A trace deleted to save space leaves the cell without trace charts, not the report without the cell.
  const trace = summary.trace?.file ? join(dir, basename(summary.trace.file)) : null;
  return { config, task, row, summary, traceFile: trace && existsSync(trace) ? trace : null, docs: documents?.index ?? [] };
}

/** The run directory's copy of the null model first (the recorded path may predate a move), checked against its hash. */
function locateNullModel(dir: string, manifest: Record<string, unknown>): string | null {
  const recorded = isObject(manifest.null_model) ? manifest.null_model : {};
  const file = typeof recorded.file === 'string' ? recorded.file : null;
  const found = [...(file ? [join(dir, basename(file)), file] : []), join(dir, 'null.json')].find((f) => existsSync(f));
  if (!found) return null;
  if (typeof recorded.sha256 === 'string' && createHash('sha256').update(readFileSync(found)).digest('hex') !== recorded.sha256) {
    throw new RoutelabError(found, `is not the null model this sweep used (manifest.json records sha256 ${recorded.sha256})`);
  }
  return found;
}

/** Family and settings of a configuration, from its router as the registry builds it. */
function describeConfig(entry: ManifestConfig, defaults: RouterDefaults, nullFile: string | null, manifestFile: string): Omit<ConfigInfo, 'isBaseline'> {
  let spec = entry.router;
  if (takesNullModel(spec)) {
    if (nullFile === null) throw new RoutelabError(manifestFile, `configuration ${entry.config} routes with ${splitSpec(spec).name}, but its null model is not in the run directory`);
    // A bh or hc spec ends with null=<path> (BhRouter.spec, HcRouter.spec); point it at the copy found.
    spec = spec.replace(/null=.*$/s, () => `null=${nullFile}`);
  }
  // A randk control draws from a summary of this run (its spec ends with from=<path>): read the copy in the run directory.
  if (spec.startsWith('randk:')) spec = spec.replace(/from=(.*)$/s, (_, file: string) => `from=${join(dirname(manifestFile), basename(file))}`);
  let router;
  try {
    router = parseRouterSpec(spec, defaults);
  } catch (e) {
    if (!(e instanceof RoutelabError)) throw e;
    throw new RoutelabError(`${manifestFile}: configs`, `${entry.config}: ${e.message}`);
  }
  const base = { name: entry.config, router: entry.router };
  if (router instanceof BhRouter) return { ...base, routerKind: 'bh', maxK: router.maxK, minK: router.minK, alpha: router.alpha };
  return { ...base, routerKind: router.adaptive ? 'adaptive' : 'fixed', maxK: router.maxK, minK: router.minK, alpha: null };
}

/** The sweep's task order (manifest `data`), then any task only the rows name. */
function taskOrder(manifest: Record<string, unknown>, cells: readonly ReportCell[]): string[] {
  const data = Array.isArray(manifest.data) ? manifest.data : [];
  const listed = data.map((d) => (isObject(d) && typeof d.task === 'string' ? d.task : null)).filter((t): t is string => t !== null);
  const present = new Set(cells.map((c) => c.task));
  return [...new Set([...listed, ...cells.map((c) => c.task)])].filter((t) => present.has(t));
}

interface DocumentChoice {
  readonly task: string;
  readonly configs: readonly string[];
  readonly doc: number;
}

/**
 * Which cells the per-token view shows. By default the baseline beside the BH configuration whose expert count
 * varies most between tokens (highest std_experts on the task): the one that shows adaptive routing best.
 */
function documentChoice(
  dir: string,
  run: { configs: readonly ConfigInfo[]; tasks: readonly string[]; cells: readonly LoadedCell[]; baseline: string | null },
  options: LoadRunOptions,
): DocumentChoice | null {
  const traced = run.cells.filter((c) => c.traceFile !== null);
  const asked = options.documentConfig !== undefined || options.documentTask !== undefined || options.doc !== undefined;
  if (traced.length === 0) {
    if (asked) throw new RoutelabError(dir, 'has no routing traces (the sweep ran with trace off), so there is no document to show');
    return null;
  }
  const tracedTasks = run.tasks.filter((t) => traced.some((c) => c.task === t));
  const task = options.documentTask ?? (tracedTasks.includes('wikitext') ? 'wikitext' : tracedTasks[0]);
  if (!tracedTasks.includes(task)) throw new RoutelabError('documentTask', `no routing trace for task "${task}"; tasks with traces: ${tracedTasks.join(', ')}`);
  const here = traced.filter((c) => c.task === task);
  let chosen: LoadedCell[];
  if (options.documentConfig !== undefined) {
    const cell = here.find((c) => c.config === options.documentConfig);
    if (!cell) {
      throw new RoutelabError('documentConfig', `no routing trace for configuration "${options.documentConfig}" on ${task}; ` +
        `configurations with one: ${here.map((c) => c.config).join(', ')}`);
    }
    chosen = [cell];
  } else {
    const routerKind = new Map(run.configs.map((c) => [c.name, c.routerKind]));
    const adaptive = here
      .filter((c) => routerKind.get(c.config) === 'bh')
      .reduce<LoadedCell | null>((best, c) => (best === null || c.summary.routing.std_experts > best.summary.routing.std_experts ? c : best), null);
    chosen = [here.find((c) => c.config === run.baseline), adaptive].filter((c): c is LoadedCell => c !== undefined && c !== null);
    if (chosen.length === 0) chosen = [here[0]];
  }
  const doc = options.doc ?? chosen[0].docs[0];
  const lacking = chosen.find((c) => !c.docs.includes(doc));
  if (doc === undefined || lacking) {
    throw new RoutelabError('doc', `${lacking?.config ?? chosen[0].config} on ${task} did not score document ${doc}; ` +
      `its documents are ${(lacking ?? chosen[0]).docs.join(', ')}`);
  }
  return { task, configs: chosen.map((c) => c.config), doc };
}

/** One document's trace rows, kept while streaming (bounded by the document's length, not the trace's). */
interface DocumentRows {
  readonly seq: number[];
  readonly pos: number[];
  readonly token: number[];
  readonly layer: number[];
  readonly count: number[];
}

/** Expert load and count histogram of one trace, one row group in memory at a time; plus document `doc`'s rows. */
async function readCellTrace(cell: ReportCell, file: string, doc: number | null): Promise<{ aggregate: TraceAggregate; rows: DocumentRows | null }> {
  const trace = await readTrace(file);
  const { numLayers: L, numExperts: E, maxK: K } = trace.meta;
  const load = new Float64Array(L * E);
  const histogram = new Float64Array(L * (K + 1));
  const positions = new Float64Array(L);
  const rows: DocumentRows | null = doc === null ? null : { seq: [], pos: [], token: [], layer: [], count: [] };
  for await (const chunk of trace.chunks()) {
    for (let r = 0; r < chunk.rows; r++) {
      const layer = chunk.layer[r];
      const count = chunk.count[r];
      if (!(layer >= 0 && layer < L && count >= 0 && count <= K)) {
        throw new RoutelabError(file, `a row has layer ${layer} and count ${count}; expected a layer in [0, ${L - 1}] and a count in [0, ${K}]`);
      }
      positions[layer]++;
      histogram[layer * (K + 1) + count]++;
      for (let j = 0; j < count; j++) load[layer * E + chunk.experts[r * K + j]]++;
      if (rows && chunk.doc[r] === doc) {
        rows.seq.push(chunk.seq[r]);
        rows.pos.push(chunk.pos[r]);
        rows.token.push(chunk.token[r]);
        rows.layer.push(layer);
        rows.count.push(count);
      }
    }
  }
  const tokens = L > 0 ? positions[0] : 0;
  const uneven = positions.findIndex((p) => p !== tokens);
  if (uneven >= 0) throw new RoutelabError(file, `layer ${uneven} has ${positions[uneven]} positions and layer 0 has ${tokens}; expected the same at every layer`);
  if (tokens > 0) {
    for (let i = 0; i < load.length; i++) load[i] /= tokens;
    for (let i = 0; i < histogram.length; i++) histogram[i] /= tokens;
  }
  const aggregate = { config: cell.config, task: cell.task, numLayers: L, numExperts: E, maxK: K, tokens, expertLoad: load, countHistogram: histogram };
  return { aggregate, rows };
}

/** The tokenizer of the run's model, or null when it cannot be loaded (the view then labels tokens by id). */
function modelTokenizer(manifest: Record<string, unknown>): TextTokenizer | null {
  const model = isObject(manifest.model) ? manifest.model : {};
  if (typeof model.dir !== 'string') return null;
  try {
    return loadTokenizer(resolve(model.dir));
  } catch {
    return null;
  }
}

/** c[t, ℓ] over the document's first positions in input order (seq, then pos), with each position's token text. */
function documentView(cell: ReportCell, doc: number, rows: DocumentRows, numLayers: number, tokenizer: TextTokenizer | null): DocumentView[] {
  const order = rows.seq.map((_, i) => i).sort((a, b) => rows.seq[a] - rows.seq[b] || rows.pos[a] - rows.pos[b]);
  const position = new Map<string, number>();
  const all = new Set<string>();
  for (const i of order) {
    const key = `${rows.seq[i]}:${rows.pos[i]}`;
    all.add(key);
    if (!position.has(key) && position.size < DOCUMENT_POSITIONS) position.set(key, position.size);
  }
  if (position.size === 0) return [];
  const counts = new Int32Array(position.size * numLayers);
  const ids = new Int32Array(position.size);
  for (let i = 0; i < rows.seq.length; i++) {
    const t = position.get(`${rows.seq[i]}:${rows.pos[i]}`);
    if (t === undefined) continue;
    counts[t * numLayers + rows.layer[i]] = rows.count[i];
    ids[t] = rows.token[i];
  }
  const tokens = Array.from(ids, (id) => (tokenizer ? tokenizer.decode([id]) : `#${id}`));
  return [{ config: cell.config, task: cell.task, doc, numLayers, tokens, counts, totalPositions: all.size }];
}

/** The null's estimator, and each layer's CDF with its density (central differences on the grid, one-sided at the ends). */
function nullView(file: string, runDir: string): NonNullable<RunData['nullModel']> {
  const { estimator, layers, meta } = readNullModel(file);
  // Named as the report's readers can find it: inside the run directory, relative to it.
  const inRun = relative(resolve(runDir), resolve(file));
  const label = inRun.startsWith('..') || isAbsolute(inRun) ? file : inRun;
  const heldOutTokens = typeof meta.heldout_tokens === 'number' && meta.heldout_tokens > 0 ? meta.heldout_tokens : null;
  const critical = heldOutTokens === null ? null : ksCritical95(heldOutTokens);
  const views = layers.map(({ x, cdf, params, ks, ksExperts }, layer): NullLayerView => {
    const n = x.length;
    const density = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      const lo = Math.max(0, i - 1);
      const hi = Math.min(n - 1, i + 1);
      density[i] = (cdf[hi] - cdf[lo]) / (x[hi] - x[lo]);
    }
    return { layer, x, cdf, density, bandwidth: params && 'bandwidth' in params ? params.bandwidth : null, ks,
      ...(ksExperts?.length ? { ksWorstExpert: Math.max(...ksExperts) } : {}),
      ...(ksExperts?.length && critical !== null ? { ksExpertsAboveCritical: ksExperts.filter((d) => d > critical).length } : {}) };
  });
  const numExperts = layers[0]?.experts?.length ?? layers[0]?.ksExperts?.length ?? 0;
  return { file: label, estimator, layers: views, perExpert: layers.some((l) => l.experts !== undefined), numExperts, heldOutTokens };
}
