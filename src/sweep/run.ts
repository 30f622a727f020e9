/**
 * The two-phase sweep (issue: experiments): every configuration × task cell evaluated on the same documents with the
 * model loaded once, resumable at cell granularity. A cell is complete when its summary JSON exists and carries the
 * cell key of the current run (configuration, model, data, evaluation settings, code version); the summary is
 * written last and atomically, after the trace, so a run killed at any moment loses at most the cell in flight.
 */
import { accessSync, constants, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { hostname, cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { writeFileAtomic } from '../atomic.js';
import { collectRouterLogits, fitNullModel } from '../calibrate/calibrate.js';
import { readCalibrationText } from '../calibrate/text.js';
import { RoutelabError } from '../errors.js';
import { configHash, evaluate, gitCommit, type EvalSummary } from '../eval/evaluate.js';
import { profileModel } from '../experiments/profile.js';
import { type CellTiming, probeSequences, timeCells } from '../experiments/timing.js';
import { loadModel, type LoadedModel } from '../load.js';
import { fileSha256 } from '../file-hash.js';
import { requireTokenizer, type TextTokenizer } from '../model/tokenizer.js';
import { readNullModel } from '../routers/null-model.js';
import { parseRouterSpec, splitSpec, takesNullModel } from '../routers/registry.js';
import type { Router } from '../routers/router.js';
import { loadFewshot } from '../tasks/fewshot.js';
import { DEFAULT_DATA, getTask } from '../tasks/registry.js';
import { fingerprintDocs, selectDocs } from '../tasks/selection.js';
import { badRowsReport } from '../data/bad-rows.js';
import { lockRunDirectory } from '../lock.js';
import { VERSION } from '../version.js';
import { clearRun, previousManifest, specDifferences } from './design.js';
import { matchedControls } from './controls.js';
import { type Cell, cellResultLine, readCellSummary, statusResult, type TaskData } from './cells.js';
import type { Progress } from './progress.js';
import { CellQueue } from './queue.js';
import { SweepStatus } from './status.js';
import { cellKey, type CellIdentity, codeFingerprint, modelFingerprint, sealSummary, sha256, staleness } from './identity.js';
import { compareToBaseline, resultRow, writeResults, type ResultRow } from './results.js';
import type { SweepSpec } from './spec.js';

export interface SweepOptions {
  readonly spec: SweepSpec;
  readonly model: string;
  /** A folder laid out like shared/data (one sub-folder per dataset), or a Hugging Face hub cache. */
  readonly dataDir: string;
  readonly runDir: string;
  readonly backend?: string;
  /** Native kernel threads (default: ROUTELAB_THREADS, else the CPUs this process may use). */
  readonly threads?: number;
  readonly progress: Progress;
  /** Start afresh: remove a previous run's outputs from runDir first (else a run of another design there is refused). */
  readonly force?: boolean;
  /** Queue the cells on this Redis (redis://HOST:PORT/DB) for `routelab worker`s instead of evaluating them here. */
  readonly queue?: string;
  /** Run only the `index`-th (1-based) of `count` deterministic slices of the grid; a later run without it merges. */
  readonly shard?: { readonly index: number; readonly count: number };
}

export interface SweepOutcome {
  readonly cells: number;
  readonly evaluated: number;
  readonly resumed: number;
  readonly skippedTasks: readonly string[];
  readonly rows: readonly ResultRow[];
}

/** Where a task's data lives under the data directory: its shared/data folder, else its dataset id in a hub cache. */
function locateTaskData(dataDir: string, name: string, explicitPath?: string): string | null {
  if (explicitPath) return explicitPath;
  const local = join(dataDir, DEFAULT_DATA[name].shared);
  if (existsSync(local)) return local;
  const hub = DEFAULT_DATA[name].hub;
  if (hub === null) return null;
  const [org, repo] = hub.split('/');
  return existsSync(join(dataDir, `datasets--${org}--${repo}`)) ? hub : null;
}

async function loadTaskData(options: PlanInputs): Promise<{ data: TaskData[]; skipped: string[] }> {
  const { spec, dataDir, progress } = options;
  const isHubCache = readdirSync(dataDir).some((f) => f.startsWith('datasets--'));
  if (isHubCache) process.env.HF_HUB_CACHE = dataDir; // dataset ids resolve in this cache
  const located = spec.tasks.map((t) => ({ t, path: locateTaskData(dataDir, t.name, t.data) }));
  // A task asked for by name must have its data before anything runs; a default task without data is skipped.
  const missing = located.filter(({ t, path }) => t.explicit && path === null);
  if (missing.length) {
    throw new RoutelabError(dataDir, `no data for ${missing.map(({ t }) => t.name).join(', ')} ` +
      `(looked for ${missing.map(({ t }) => `${DEFAULT_DATA[t.name].shared}/${DEFAULT_DATA[t.name].hub ? ` or a ${DEFAULT_DATA[t.name].hub} hub cache` : ''}`).join('; ')})`);
  }
  const data: TaskData[] = [];
  const skipped: string[] = [];
  for (const { t, path } of located) {
    if (path === null) {
      skipped.push(t.name);
      progress.log(`sweep: no data for ${t.name} in ${dataDir} (looked for ${DEFAULT_DATA[t.name].shared}/); skipping it`);
      continue;
    }
    const task = getTask(t.name);
    const loaded = await task.load(path, 'skip');
    const { docs, selection } = selectDocs(loaded.docs, { limit: spec.limit ?? undefined, sampleSeed: spec.sampleSeed ?? undefined });
    if (docs.length === 0) throw new RoutelabError(path, `no ${t.name} documents to evaluate`);
    if (loaded.badRows.length) progress.log(`sweep: ${t.name}: ${badRowsReport(loaded.badRows)}`);
    for (const warning of loaded.warnings) progress.log(`sweep: ${t.name}: warning: ${warning}`);
    const fewshot = await loadFewshot(task, docs, loaded, { numFewshot: spec.numFewshot, path, onBadRow: 'skip' });
    data.push({ task, loaded, docs, total: selection.total, path, fingerprint: fingerprintDocs(task, docs), fewshot });
  }
  return { data, skipped };
}

/**
 * The null model for bh: the spec's file, else RUN_DIR/null.json, calibrated when absent on the calibration text
 * (never the evaluation documents: a document found verbatim in the calibration text stops the sweep).
 */
async function nullModelFor(options: PlanInputs, loaded: LoadedModel, tokenizer: TextTokenizer, data: readonly TaskData[], modelHash: string): Promise<string> {
  const { spec, runDir, dataDir, progress } = options;
  if (spec.nullModel) {
    // A null calibrated on a task's documents records the task, split and fingerprint: never the ones evaluated here.
    const source = (readNullModel(spec.nullModel).meta as { data?: { task?: string; split?: string; fingerprint?: string } }).data;
    const clash = data.find((d) => source?.task === d.task.name && (source.split === d.task.split || source.fingerprint === d.fingerprint));
    if (clash) throw new RoutelabError(spec.nullModel, `calibrated on ${clash.task.name} ${source!.split}, the documents this sweep evaluates: calibrate on another split`);
    return spec.nullModel;
  }
  const file = join(runDir, 'null.json');
  const source = spec.calibration.data ?? join(dataDir, 'train-text');
  if (!existsSync(source)) {
    throw new RoutelabError(source, 'no calibration text for the bh null model: give calibration.data in the spec, --calibration-data, or --null');
  }
  const text = readCalibrationText(source, tokenizer, spec.calibration.tokens, 512);
  // The null is the run's as long as what it was fitted from is unchanged: model, calibration text and settings.
  const calibrationKey = sha256(JSON.stringify({ model: modelHash, text: text.fingerprint, tokens: text.tokens, settings: spec.calibration, code: codeFingerprint() }));
  if (existsSync(file)) {
    let recorded: unknown;
    try {
      recorded = (readNullModel(file).meta as { calibration_key?: unknown }).calibration_key;
    } catch {
      recorded = 'unreadable';
    }
    if (recorded === calibrationKey) return file;
    if (options.shard && options.shard.index > 1) return awaitNull(file, calibrationKey, progress);
    progress.log(`sweep: recalibrating ${file}: ${recorded === 'unreadable' ? 'it is unreadable' : recorded === undefined ? 'it records no calibration inputs (an older routelab)' : 'the model, the calibration text or the calibration settings changed'}; its bh cells will be redone`);
  }
  // Shards of one run share one null: the first calibrates it, the others wait for it (same inputs, same key).
  if (options.shard && options.shard.index > 1) return awaitNull(file, calibrationKey, progress);
  const calibrationText = text.files.map((f) => readFileSync(f, 'utf8')).join('\n');
  for (const d of data) {
    for (const doc of d.docs) {
      const canonical = d.task.fingerprint(doc);
      if (canonical.length >= 64 && calibrationText.includes(canonical)) {
        throw new RoutelabError(source, `calibration text contains ${d.task.name} document ${doc.index} (${doc.source}): calibrate on text disjoint from the evaluation data`);
      }
    }
  }
  progress.log(`sweep: calibrating the bh null model on ${text.tokens} tokens of ${source}`);
  const logits = await collectRouterLogits(loaded.model, text.sequences, { batchSize: 4 });
  const nullModel = fitNullModel(logits, loaded.model.architecture.moe.numExperts, {
    perExpert: spec.calibration.perExpert,
    points: 512,
    estimator: spec.calibration.estimator,
    maxComponents: spec.calibration.maxComponents ?? undefined,
    meta: {
      model: { spec: options.model, config_sha256: configHash(loaded.dir), fingerprint: modelHash },
      data: { path: source, files: text.files, text_sha256: text.fingerprint, seq_len: 512 },
      router: loaded.model.defaultRouter().spec,
      moe_layers: [...loaded.model.moeLayers],
      calibration_key: calibrationKey,
    },
  });
  writeFileAtomic(file, JSON.stringify(nullModel));
  return file;
}

async function awaitNull(file: string, calibrationKey: string, progress: Progress): Promise<string> {
  progress.log(`sweep: waiting for shard 1 to calibrate ${file}`);
  for (;;) {
    try {
      if ((readNullModel(file).meta as { calibration_key?: unknown }).calibration_key === calibrationKey) return file;
    } catch {
      // not there yet
    }
    await new Promise((r) => setTimeout(r, 1000));
  }
}

/** A spec of a router that tests against a null model (bh, hc) without `null=` gets the sweep's null model. */
function withNull(spec: string, nullFile: string | null): string {
  const { name, body } = splitSpec(spec);
  if (!takesNullModel(spec) || /(^|,)\s*null\s*=/.test(body)) return spec;
  if (nullFile === null) throw new Error(`${spec}: router without a null model`);
  return `${name}:${body ? `${body},` : ''}null=${nullFile}`;
}

/** Temp files of writes interrupted by a kill: never trusted, removed on the next run. */
function removeStaleTemps(dir: string): void {
  for (const f of readdirSync(dir)) if (f.startsWith('.') && f.endsWith('.tmp')) rmSync(join(dir, f), { force: true });
}

/** Everything a sweep's cells are built from: the model, the documents, the null model and the grid's cells. */
export interface SweepPlan {
  readonly options: PlanInputs;
  readonly loaded: LoadedModel;
  readonly tokenizer: TextTokenizer;
  readonly data: readonly TaskData[];
  readonly skipped: readonly string[];
  readonly loadSeconds: number;
  readonly nullFile: string | null;
  readonly nullHash: string | null;
  readonly modelHash: string;
  readonly routers: Router[];
  readonly configs: string[];
  /** The grid's cells, configuration-major (controls come later: they need these cells' results). */
  readonly cells: readonly Cell[];
  /** A cell of `router` on `d`; `source` is the cell a control was derived from (its key enters this cell's key). */
  cellOf(router: Router, config: string, d: TaskData, source?: { key: string; file: string }): Cell;
}

export type PlanInputs = Pick<SweepOptions, 'spec' | 'model' | 'dataDir' | 'runDir' | 'backend' | 'threads' | 'progress' | 'shard'>;

/** What a sweep reads before it writes anything: the model (with its content fingerprint) and every task's documents. */
export interface SweepInputs {
  readonly loaded: LoadedModel;
  readonly tokenizer: TextTokenizer;
  readonly data: readonly TaskData[];
  readonly skipped: readonly string[];
  readonly loadSeconds: number;
  readonly modelHash: string;
}

export async function loadSweepInputs(options: PlanInputs): Promise<SweepInputs> {
  if (!existsSync(options.dataDir) || !statSync(options.dataDir).isDirectory()) throw new RoutelabError(options.dataDir, 'no such data directory');
  const loadStart = performance.now();
  const loaded = await loadModel(options.model, { backend: options.backend, threads: options.threads });
  const tokenizer = requireTokenizer(loaded.tokenizer, loaded.dir);
  const { data, skipped } = await loadTaskData(options);
  if (data.length === 0) throw new RoutelabError(options.dataDir, 'no task has data here: nothing to evaluate');
  return { loaded, tokenizer, data, skipped, loadSeconds: (performance.now() - loadStart) / 1000, modelHash: modelFingerprint(loaded.checkpoint) };
}

/**
 * Build the grid's cells from the loaded inputs. The null model is calibrated here when the run needs one
 * and has none (`calibrate: false`: it must exist — a worker never calibrates, the plan did).
 */
export async function planSweep(options: PlanInputs, inputs: SweepInputs, { calibrate = true } = {}): Promise<SweepPlan> {
  const { spec, runDir } = options;
  const { loaded, tokenizer, data, modelHash } = inputs;
  const { model } = loaded;

  const needsNull = spec.routers.some((r) => withNull(r, '') !== r);
  let nullFile: string | null = null;
  if (needsNull && calibrate) nullFile = await nullModelFor(options, loaded, tokenizer, data, modelHash);
  else if (needsNull) {
    nullFile = spec.nullModel ?? join(runDir, 'null.json');
    if (!existsSync(nullFile)) throw new RoutelabError(nullFile, 'missing: the sweep that planned this run calibrates it before any cell is queued');
  }
  const routers = spec.routers.map((r) => parseRouterSpec(withNull(r, nullFile), model.routerDefaults));
  const configs = routers.map((r) => r.configName(model.architecture.routing));
  const duplicate = configs.find((c, i) => configs.indexOf(c) !== i);
  if (duplicate) throw new RoutelabError('sweep spec', `two routers share the configuration name ${duplicate}`);

  const nullHash = nullFile ? sha256(readFileSync(nullFile)) : null;
  const code = codeFingerprint();
  const cellOf = (router: Router, config: string, d: TaskData, source?: { key: string; file: string }): Cell => {
    // The null file enters by content, not by path, so a moved run directory still resumes; a control's source cell
    // enters by its key.
    let routerIdentity = nullFile ? router.spec.replace(nullFile, `sha256:${nullHash}`) : router.spec;
    if (source) routerIdentity = routerIdentity.replace(source.file, `cell:${source.key}`);
    const identity: CellIdentity = {
      router: routerIdentity, model: modelHash, task: d.task.name, data: d.fingerprint,
      maxLength: spec.maxLength, fewshot: d.fewshot.setting, trace: spec.trace, code,
    };
    const name = `${config}_${d.task.name}`;
    return {
      router, config, data: d, name, identity, key: cellKey(identity),
      file: join(runDir, `${name}.json`), traceFile: spec.trace === 'off' ? null : join(runDir, `${name}_routing.parquet`),
    };
  };
  const cells = routers.flatMap((router, i) => data.map((d) => cellOf(router, configs[i], d)));
  return { ...inputs, options, nullFile, nullHash, routers, configs, cells, cellOf };
}

/** Cells of `list` that are not complete, with why; said in one line per reason. */
export function staleCells(list: readonly Cell[], log: (line: string) => void): Map<Cell, string> {
  const stale = new Map<Cell, string>();
  for (const cell of list) {
    const reason = staleness(cell.file, cell.traceFile, cell.identity);
    if (reason !== null) stale.set(cell, reason);
  }
  const byReason = new Map<string, string[]>();
  for (const [cell, reason] of stale) if (reason !== 'not evaluated yet') byReason.set(reason, [...(byReason.get(reason) ?? []), cell.name]);
  for (const [reason, names] of byReason) {
    log(`sweep: redoing ${names.length} cell${names.length === 1 ? '' : 's'} (${reason}): ${names.slice(0, 4).join(', ')}${names.length > 4 ? `, … ${names.length - 4} more` : ''}`);
  }
  return stale;
}

/** Evaluate one cell and publish its sealed summary (its key, identity and trace hash) atomically, after its trace. */
export async function evaluateCell(plan: SweepPlan, cell: Cell, onProgress?: (done: number, total: number, seconds: number, tokens: number) => void): Promise<EvalSummary> {
  const { spec, model: modelSpec, runDir } = plan.options;
  const { task, docs, loaded: l, total, path } = cell.data;
  const summary = await evaluate(plan.loaded.model, plan.tokenizer, task, docs, {
    router: cell.router,
    maxLength: spec.maxLength ?? undefined,
    fewshot: cell.data.fewshot,
    batchSize: spec.batchSize,
    trace: spec.trace,
    traceFile: cell.traceFile ?? undefined,
    model: { id: modelSpec, dir: plan.loaded.dir },
    data: { path, format: l.format, files: l.files, badRows: l.badRows, warnings: l.warnings, totalDocs: total, limit: spec.limit, sampleSeed: spec.sampleSeed },
    seed: spec.seed,
    loadSeconds: plan.loadSeconds,
    onProgress,
  });
  const stored = sealSummary({
    ...summary, cell_key: cell.key, cell_identity: cell.identity,
    trace_sha256: cell.traceFile === null ? null : fileSha256(cell.traceFile), sweep: { run_dir: runDir, mode: spec.mode },
  });
  writeFileAtomic(cell.file, JSON.stringify(stored, null, 2) + '\n');
  return stored;
}

/** The matched controls of the plan's adaptive cells (they need those cells' summaries), in grid order. */
export function plannedControls(plan: SweepPlan, summaries: ReadonlyMap<Cell, EvalSummary>, of: readonly Cell[] = plan.cells): { cells: Cell[]; sourceOf: Map<Cell, Cell> } {
  const { model } = plan.loaded;
  const planned = new Map<string, Cell>(plan.cells.map((c) => [c.name, c]));
  const cells: Cell[] = [];
  const sourceOf = new Map<Cell, Cell>();
  if (plan.options.spec.controls !== 'matched') return { cells, sourceOf };
  for (const cell of of.filter((c) => c.router.adaptive)) {
    for (const control of matchedControls(cell.router, summaries.get(cell)!, cell.file, model.routerDefaults, plan.options.spec.seed)) {
      const config = control.router.configName(model.architecture.routing);
      if (planned.has(`${config}_${cell.data.task.name}`)) continue; // a top-k control the grid (or another adaptive cell) already has
      const c = { ...plan.cellOf(control.router, config, cell.data, control.kind === 'randk' ? { key: cell.key, file: cell.file } : undefined), control: control.kind };
      planned.set(c.name, c);
      cells.push(c);
      sourceOf.set(c, cell);
    }
  }
  return { cells, sourceOf };
}

export async function runSweep(options: SweepOptions): Promise<SweepOutcome> {
  const { spec, runDir, progress } = options;
  const started = new Date();
  // One run directory, one design: another spec is refused before anything loads, another model once it is loaded
  // (--force starts afresh).
  const previous = previousManifest(runDir);
  const refuse = (differences: string[]) => {
    throw new RoutelabError(join(runDir, 'manifest.json'), `holds a finished sweep of another design (${differences.join('; ')}); ` +
      'give another --out, or --force to remove that run\'s results and start afresh there');
  };
  const changed = previous ? specDifferences(previous.spec, spec) : [];
  if (changed.length && !options.force) refuse(changed);
  // Another model is another design; the same model with changed weights is the same design with stale cells.
  const previousModel = previous?.model as { spec?: unknown; fingerprint?: unknown } | undefined;
  if (!options.force && typeof previousModel?.spec === 'string' && previousModel.spec !== options.model) {
    const fingerprint = typeof previousModel.fingerprint === 'string' ? ` (fingerprint ${previousModel.fingerprint.slice(0, 12)}…)` : '';
    refuse([`model: ${previousModel.spec}${fingerprint} before, ${options.model} now`]);
  }
  if (existsSync(runDir)) requireWritable(runDir);
  // Nothing is written before the model and the data are read; then this sweep is the directory's one writer.
  const inputs = await loadSweepInputs(options);
  mkdirSync(runDir, { recursive: true });
  const { shard } = options;
  const lock = lockRunDirectory(runDir, shard ? `sweep --shard ${shard.index}/${shard.count}` : options.queue ? `sweep --queue ${options.queue}` : 'sweep', (line) => progress.log(line), shard);
  let queue: CellQueue | null = null;
  try {
    if (options.force) {
      const removed = clearRun(runDir, spec.nullModel ? [spec.nullModel] : []);
      if (removed.length) progress.log(`sweep: --force: removed ${removed.length} files of the previous run from ${runDir}`);
    }
    removeStaleTemps(runDir);
    const plan = await planSweep(options, inputs);

    let evaluated = 0;
    let resumed = 0;
    const summaries = new Map<Cell, EvalSummary>();
    const status = new SweepStatus(runDir, shard ? 'shard' : options.queue ? 'queue' : 'local', { queue: options.queue ?? null, shard: shard ? `${shard.index}-of-${shard.count}` : null });
    const worker = `${hostname()}:${process.pid}`;
    const failed = new Map<Cell, string>();
    queue = options.queue ? await CellQueue.open(options.queue, progress) : null;
    const runCells = async (list: readonly Cell[], count: number, first: number, sourceOf: ReadonlyMap<Cell, Cell> = new Map()) => {
      status.plan(list);
      const stale = staleCells(list, (line) => progress.log(line));
      for (const cell of list) {
        if (stale.has(cell)) continue;
        const summary = readCellSummary(cell);
        summaries.set(cell, summary);
        status.update(cell.name, 'done', { resumed: true, result: statusResult(cell, summary) });
        resumed++;
      }
      if (queue) {
        for (const [cell, error] of await queue.run(options, [...stale.keys()], sourceOf, status, summaries)) failed.set(cell, error);
        evaluated += stale.size - [...stale.keys()].filter((c) => failed.has(c)).length;
        return;
      }
      for (const [n, cell] of list.entries()) {
        if (!stale.has(cell)) continue;
        progress.startCell(first + n, count, cell.name);
        status.update(cell.name, 'running', { worker });
        let summary: EvalSummary;
        try {
          summary = await evaluateCell(plan, cell, (done, total, seconds, tokens) => progress.update(done, total, seconds, tokens));
        } catch (e) {
          status.update(cell.name, 'failed', { error: (e as Error).message });
          throw e;
        }
        summaries.set(cell, summary);
        status.update(cell.name, 'done', { result: statusResult(cell, summary) });
        evaluated++;
        progress.endCell(cellResultLine(cell, summary));
      }
    };
    // A shard takes every count-th cell of the grid, and the controls of its own adaptive cells.
    const mine = shard ? plan.cells.filter((_, i) => i % shard.count === shard.index - 1) : plan.cells;
    await runCells(mine, mine.length, 0);
    // Matched controls of every adaptive cell, on its task and documents (they need its results, so they come after).
    const controls = plannedControls(plan, summaries, mine.filter((c) => summaries.has(c)));
    await runCells(controls.cells, mine.length + controls.cells.length, mine.length, controls.sourceOf);
    if (shard) {
      status.finish();
      return { cells: mine.length + controls.cells.length, evaluated, resumed, skippedTasks: plan.skipped, rows: [] };
    }
    const rows = await finishSweep(plan, controls, summaries, { evaluated, resumed, started, failed });
    status.finish();
    if (failed.size) {
      throw new RoutelabError(runDir, `${failed.size} cell${failed.size === 1 ? '' : 's'} failed: ` +
        `${[...failed].map(([c, e]) => `${c.name} (${e})`).join('; ')}; results.* and manifest.json hold the other cells ` +
        '(failed_cells lists these); fix the cause and run the same command again to redo only them');
    }
    return { cells: plan.cells.length + controls.cells.length, evaluated, resumed, skippedTasks: plan.skipped, rows };
  } finally {
    await queue?.close();
    lock.release();
  }
}

/** A run directory another user owns is refused up front, not found out cell by cell. */
function requireWritable(runDir: string): void {
  try {
    accessSync(runDir, constants.W_OK);
  } catch (e) {
    const why = (e as NodeJS.ErrnoException).code === 'EROFS' ? 'is on a read-only file system' : 'is not writable by you';
    throw new RoutelabError(runDir, `${why}: a sweep (even one that only resumes) writes its results, manifest and lock there; ` +
      'give another --out, or ask for write access');
  }
}

/**
 * After every cell: profiles (when asked), results tables with significance, and the manifest. Controls follow the
 * configuration they control in tables and charts.
 */
export async function finishSweep(plan: SweepPlan, controls: { cells: readonly Cell[]; sourceOf: ReadonlyMap<Cell, Cell> }, summaries: ReadonlyMap<Cell, EvalSummary>,
  counts: { evaluated: number; resumed: number; started: Date; failed?: ReadonlyMap<Cell, string> }): Promise<ResultRow[]> {
  const { spec, runDir, progress } = plan.options;
  const { model } = plan.loaded;
  const routers = [...plan.routers];
  const configs = [...plan.configs];
  const controlOf = new Map<string, { config: string; kind: string }>();
  for (const c of controls.cells) {
    if (configs.includes(c.config)) continue;
    const source = controls.sourceOf.get(c)!;
    controlOf.set(c.config, { config: source.config, kind: c.control! });
    // After the configuration it controls and that configuration's earlier controls.
    const after = Math.max(...configs.map((name, i) => (name === source.config || controlOf.get(name)?.config === source.config ? i : -1)));
    configs.splice(after + 1, 0, c.config);
    routers.splice(after + 1, 0, c.router);
  }
  if (spec.profile) {
    for (const [i, router] of routers.entries()) {
      const file = join(runDir, `${configs[i]}_profile.json`);
      if (existsSync(file)) continue;
      const result = await profileModel(model, { router, seqLengths: [128, 512], batchSizes: [1, 4], warmup: 1, runs: 5, seed: spec.seed });
      writeFileAtomic(file, JSON.stringify(result, null, 2) + '\n');
      progress.log(`sweep: profiled ${configs[i]}`);
    }
  }
  // Failed cells (a queued sweep goes on without them) have no summary: they are listed, not tabled.
  const cells = [...plan.cells, ...controls.cells].filter((c) => summaries.has(c));
  const rows = finishResults(cells, summaries, spec, model.defaultRouter().configName(model.architecture.routing), controls.sourceOf);
  const timing = await sweepTiming(plan, cells);
  cells.forEach((cell, i) => {
    rows[i].input_tokens_per_second = summaries.get(cell)!.timings.input_tokens_per_second;
    const t = timing?.get(cell.name);
    rows[i].timed_tokens_per_second = t?.tokens_per_second ?? null;
    rows[i].timed_tokens_per_second_p25 = t?.tokens_per_second_p25 ?? null;
    rows[i].timed_tokens_per_second_p75 = t?.tokens_per_second_p75 ?? null;
    rows[i].timing_runs = t?.runs ?? null;
  });
  writeResults(runDir, rows);
  const { loaded, data } = plan;
  writeFileAtomic(join(runDir, 'manifest.json'), JSON.stringify({
    format: 'routelab.sweep/1',
    spec,
    model: { spec: plan.options.model, dir: loaded.dir, fingerprint: plan.modelHash, config_sha256: configHash(loaded.dir) },
    data_dir: plan.options.dataDir,
    data: data.map((d) => ({ task: d.task.name, path: d.path, format: d.loaded.format, files: d.loaded.files, fingerprint: d.fingerprint, num_docs: d.docs.length, total_docs: d.total })),
    skipped_tasks: plan.skipped,
    null_model: plan.nullFile ? { file: plan.nullFile, sha256: plan.nullHash } : null,
    configs: routers.map((r, i) => ({
      config: configs[i], router: r.spec, ...(controlOf.has(configs[i]) ? { control_of: controlOf.get(configs[i])!.config, control: controlOf.get(configs[i])!.kind } : {}),
    })),
    routelab_version: VERSION,
    git_commit: gitCommit(),
    machine: { hostname: hostname(), cpus: cpus().length, cpu_model: cpus()[0]?.model ?? null, memory_gb: totalmem() / 2 ** 30, node: process.version, platform: `${process.platform}/${process.arch}`, backend: model.backend.name, threads: model.backend.threads },
    cells: { total: cells.length + (counts.failed?.size ?? 0), evaluated: counts.evaluated, resumed: counts.resumed },
    failed_cells: [...(counts.failed ?? [])].map(([c, error]) => ({ cell: c.name, config: c.config, task: c.data.task.name, error })),
    started: counts.started.toISOString(),
    ended: new Date().toISOString(),
  }, null, 2) + '\n');
  return rows;
}

/**
 * The timing protocol over the finished cells (src/experiments/timing.ts) on this machine, kept in RUN_DIR/timing.json
 * and reused while the cells, the protocol and the machine's backend are the same; null when the spec turns it off.
 */
async function sweepTiming(plan: SweepPlan, cells: readonly Cell[]): Promise<Map<string, CellTiming> | null> {
  const { spec, runDir, progress } = plan.options;
  if (spec.timing.rounds === 0 || cells.length === 0) return null;
  const { model } = plan.loaded;
  const machine = { hostname: hostname(), backend: model.backend.name, threads: model.backend.threads };
  const key = sha256(JSON.stringify({ cells: cells.map((c) => c.key), timing: spec.timing, machine }));
  const file = join(runDir, 'timing.json');
  try {
    const stored = JSON.parse(readFileSync(file, 'utf8'));
    if (stored.key === key) return new Map(Object.entries(stored.cells as Record<string, CellTiming>));
  } catch {
    // none yet, or unreadable: time again
  }
  const probes = new Map(plan.data.map((d) => [d.task.name, probeSequences(plan.tokenizer, d.task, d.docs, spec.timing.tokens, spec.maxLength ?? 512)]));
  progress.log(`sweep: timing protocol: ${cells.length} cells × ${spec.timing.rounds} interleaved rounds over ${spec.timing.tokens} probe tokens per task`);
  const timing = await timeCells(model, cells.map((c) => ({ name: c.name, router: c.router, probe: probes.get(c.data.task.name)! })), spec.timing.rounds);
  writeFileAtomic(file, JSON.stringify({ format: 'routelab.timing/1', key, timing: spec.timing, machine, cells: Object.fromEntries(timing) }, null, 2) + '\n');
  return timing;
}

/**
 * avg_task_accuracy per configuration (mean acc over its accuracy tasks) and each cell's paired bootstrap against
 * the model's own routing (`baselineConfig`) on the same task; both are written back into the summaries (atomically) and
 * into the rows.
 */
function finishResults(cells: readonly Cell[], summaries: ReadonlyMap<Cell, EvalSummary>, spec: SweepSpec, baselineConfig: string, sourceOf: ReadonlyMap<Cell, Cell>): ResultRow[] {
  const baselineOf = new Map<string, EvalSummary>();
  for (const cell of cells) if (cell.config === baselineConfig) baselineOf.set(cell.data.task.name, summaries.get(cell)!);
  const accuracy = new Map<string, number[]>();
  for (const cell of cells) {
    const s = summaries.get(cell)!;
    if (cell.data.task.isAccuracyTask && 'acc' in s.metrics) accuracy.set(cell.config, [...(accuracy.get(cell.config) ?? []), s.metrics.acc]);
  }
  return cells.map((cell) => {
    const summary = summaries.get(cell)!;
    const baseline = baselineOf.get(cell.data.task.name);
    const significance = baseline && cell.config !== baselineConfig ? compareToBaseline(summary, baseline, spec.bootstrapResamples, spec.seed) : null;
    const accs = accuracy.get(cell.config);
    const avgTaskAccuracy = accs ? accs.reduce((a, b) => a + b, 0) / accs.length : null;
    const updated = { ...summary, avg_task_accuracy: avgTaskAccuracy, significance };
    if (JSON.stringify((summary as { significance?: unknown }).significance ?? null) !== JSON.stringify(significance) ||
        (summary as { avg_task_accuracy?: unknown }).avg_task_accuracy !== avgTaskAccuracy) {
      writeFileAtomic(cell.file, JSON.stringify(sealSummary(updated), null, 2) + '\n');
    }
    const row = resultRow(summary, cell.file, avgTaskAccuracy, significance);
    // A control's row also carries the paired bootstrap of its adaptive configuration against it (adaptive − control).
    const source = sourceOf.get(cell);
    const versus = source ? compareToBaseline(summaries.get(source)!, summary, spec.bootstrapResamples, spec.seed) : null;
    row.control_of = source?.config ?? null;
    for (const [metric, s] of Object.entries(versus?.metrics ?? {})) {
      row[`vs_control_delta_${metric}`] = s.delta;
      row[`vs_control_ci_low_${metric}`] = s.low;
      row[`vs_control_ci_high_${metric}`] = s.high;
    }
    return row;
  });
}
