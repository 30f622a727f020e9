/**
 * The two-phase sweep (issue: experiments): every configuration × task cell evaluated on the same documents with the
 * model loaded once, resumable at cell granularity. A cell is complete when its summary JSON exists and carries the
 * cell key of the current run (configuration, model, data, evaluation settings, code version); the summary is
 * written last and atomically, after the trace, so a run killed at any moment loses at most the cell in flight.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { hostname, cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { writeFileAtomic } from '../atomic.js';
import { collectRouterLogits, fitNullModel } from '../calibrate/calibrate.js';
import { readCalibrationText } from '../calibrate/text.js';
import { RoutelabError } from '../errors.js';
import { configHash, evaluate, gitCommit, type EvalSummary } from '../eval/evaluate.js';
import { profileModel } from '../experiments/profile.js';
import { loadModel, type LoadedModel } from '../load.js';
import type { Checkpoint } from '../model/checkpoint.js';
import { requireTokenizer, type TextTokenizer } from '../model/tokenizer.js';
import { readNullModel } from '../routers/null-model.js';
import { parseRouterSpec } from '../routers/registry.js';
import type { Router } from '../routers/router.js';
import { DEFAULT_DATA, getTask } from '../tasks/registry.js';
import { fingerprintDocs, selectDocs } from '../tasks/selection.js';
import type { LoadedDocs, Task, TaskDoc } from '../tasks/task.js';
import { badRowsReport } from '../data/bad-rows.js';
import { lockRunDirectory } from '../lock.js';
import { VERSION } from '../version.js';
import { clearRun, previousManifest, specDifferences } from './design.js';
import { matchedControls } from './controls.js';
import type { Progress } from './progress.js';
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
}

interface TaskData {
  readonly task: Task<TaskDoc>;
  readonly loaded: LoadedDocs<TaskDoc>;
  readonly docs: TaskDoc[];
  readonly total: number;
  readonly path: string;
  readonly fingerprint: string;
}

interface Cell {
  readonly router: Router;
  readonly config: string;
  readonly data: TaskData;
  readonly file: string; // summary JSON
  readonly key: string;
}

export interface SweepOutcome {
  readonly cells: number;
  readonly evaluated: number;
  readonly resumed: number;
  readonly skippedTasks: readonly string[];
  readonly rows: readonly ResultRow[];
}

const sha256 = (data: string | Uint8Array) => createHash('sha256').update(data).digest('hex');

/** Content identity of a checkpoint without reading 14 GB: config.json and every tensor's name, dtype, shape, offsets and shard size. */
export function modelFingerprint(checkpoint: Checkpoint): string {
  const hash = createHash('sha256').update(readFileSync(join(checkpoint.dir, 'config.json')));
  for (const shard of checkpoint.shards) hash.update(`${shard.file}:${shard.bytes}\n`);
  for (const name of checkpoint.tensorNames.sort()) {
    const { entry } = checkpoint.locate(name);
    hash.update(`${name}:${entry.dtype}:${entry.shape.join('x')}:${entry.dataOffsets.join('-')}\n`);
  }
  return hash.digest('hex');
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

async function loadTaskData(options: SweepOptions): Promise<{ data: TaskData[]; skipped: string[] }> {
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
    data.push({ task, loaded, docs, total: selection.total, path, fingerprint: fingerprintDocs(task, docs) });
  }
  return { data, skipped };
}

/**
 * The null model for bh: the spec's file, else RUN_DIR/null.json, calibrated when absent on the calibration text
 * (never the evaluation documents: a document found verbatim in the calibration text stops the sweep).
 */
async function nullModelFor(options: SweepOptions, loaded: LoadedModel, tokenizer: TextTokenizer, data: readonly TaskData[]): Promise<string> {
  const { spec, runDir, dataDir, progress } = options;
  if (spec.nullModel) {
    // A null calibrated on a task's documents records the task, split and fingerprint: never the ones evaluated here.
    const source = (readNullModel(spec.nullModel).meta as { data?: { task?: string; split?: string; fingerprint?: string } }).data;
    const clash = data.find((d) => source?.task === d.task.name && (source.split === d.task.split || source.fingerprint === d.fingerprint));
    if (clash) throw new RoutelabError(spec.nullModel, `calibrated on ${clash.task.name} ${source!.split}, the documents this sweep evaluates: calibrate on another split`);
    return spec.nullModel;
  }
  const file = join(runDir, 'null.json');
  if (existsSync(file)) return file;
  const source = spec.calibration.data ?? join(dataDir, 'train-text');
  if (!existsSync(source)) {
    throw new RoutelabError(source, 'no calibration text for the bh null model: give calibration.data in the spec, --calibration-data, or --null');
  }
  const text = readCalibrationText(source, tokenizer, spec.calibration.tokens, 512);
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
      model: { spec: options.model, config_sha256: configHash(loaded.dir) },
      data: { path: source, files: text.files, text_sha256: text.fingerprint, seq_len: 512 },
      router: loaded.model.defaultRouter().spec,
      moe_layers: [...loaded.model.moeLayers],
    },
  });
  writeFileAtomic(file, JSON.stringify(nullModel));
  return file;
}

/** A bh spec without `null=` gets the sweep's null model. */
function withNull(spec: string, nullFile: string | null): string {
  if (!spec.startsWith('bh:') || /(^|,)\s*null\s*=/.test(spec.slice(3))) return spec;
  if (nullFile === null) throw new Error('bh router without a null model');
  return `${spec},null=${nullFile}`;
}

function readSummary(file: string): EvalSummary & { cell_key?: string } | null {
  try {
    return JSON.parse(readFileSync(file, 'utf8'));
  } catch {
    return null;
  }
}

/** Temp files of writes interrupted by a kill: never trusted, removed on the next run. */
function removeStaleTemps(dir: string): void {
  for (const f of readdirSync(dir)) if (f.startsWith('.') && f.endsWith('.tmp')) rmSync(join(dir, f), { force: true });
}

export async function runSweep(options: SweepOptions): Promise<SweepOutcome> {
  const { spec, runDir, progress } = options;
  const started = new Date();
  if (!existsSync(options.dataDir) || !statSync(options.dataDir).isDirectory()) throw new RoutelabError(options.dataDir, 'no such data directory');
  // One run directory, one design: another spec is refused before anything loads, another model once it is loaded
  // (--force starts afresh).
  const previous = previousManifest(runDir);
  const refuse = (differences: string[]) => {
    throw new RoutelabError(join(runDir, 'manifest.json'), `holds a finished sweep of another design (${differences.join('; ')}); ` +
      'give another --out, or --force to remove that run\'s results and start afresh there');
  };
  const changed = previous ? specDifferences(previous.spec, spec) : [];
  if (changed.length && !options.force) refuse(changed);
  const loadStart = performance.now();
  const loaded = await loadModel(options.model, { backend: options.backend, threads: options.threads });
  const { model, checkpoint } = loaded;
  const tokenizer = requireTokenizer(loaded.tokenizer, loaded.dir);
  const { data, skipped } = await loadTaskData(options);
  if (data.length === 0) throw new RoutelabError(options.dataDir, 'no task has data here: nothing to evaluate');
  const loadSeconds = (performance.now() - loadStart) / 1000;
  const previousModel = (previous?.model as { fingerprint?: unknown } | undefined)?.fingerprint;
  if (!options.force && typeof previousModel === 'string' && previousModel !== modelFingerprint(checkpoint)) {
    refuse([`model: ${(previous!.model as { spec?: string }).spec} (fingerprint ${previousModel.slice(0, 12)}…) before, ${options.model} now`]);
  }
  // Nothing is written before the data is known to be there; then this sweep is the directory's one writer.
  mkdirSync(runDir, { recursive: true });
  const lock = lockRunDirectory(runDir, 'sweep', (line) => progress.log(line));
  try {
    if (options.force) {
      const removed = clearRun(runDir, spec.nullModel ? [spec.nullModel] : []);
      if (removed.length) progress.log(`sweep: --force: removed ${removed.length} files of the previous run from ${runDir}`);
    }
    removeStaleTemps(runDir);

    const needsNull = spec.routers.some((r) => withNull(r, '') !== r);
    const nullFile = needsNull ? await nullModelFor(options, loaded, tokenizer, data) : null;
    const routers = spec.routers.map((r) => parseRouterSpec(withNull(r, nullFile), model.routerDefaults));
    const configs = routers.map((r) => r.configName(model.architecture.routing));
    const duplicate = configs.find((c, i) => configs.indexOf(c) !== i);
    if (duplicate) throw new RoutelabError('sweep spec', `two routers share the configuration name ${duplicate}`);

    const modelHash = modelFingerprint(checkpoint);
    const nullHash = nullFile ? sha256(readFileSync(nullFile)) : null;
    const codeVersion = `${VERSION}${gitCommit() ? `+${gitCommit()}` : ''}`;
    const cells: Cell[] = [];
    /** A cell of `router` on `d`; `source` is the key of the cell a control was derived from (it enters the key). */
    const cellOf = (router: Router, config: string, d: TaskData, source?: { key: string; file: string }): Cell => {
      // The null file enters by content, not by path, so a moved run directory still resumes; a control's source cell
      // enters by its key.
      let routerIdentity = nullFile ? router.spec.replace(nullFile, `sha256:${nullHash}`) : router.spec;
      if (source) routerIdentity = routerIdentity.replace(source.file, `cell:${source.key}`);
      const key = sha256(JSON.stringify({
        router: routerIdentity, model: modelHash, task: d.task.name, data: d.fingerprint,
        maxLength: spec.maxLength, trace: spec.trace, code: codeVersion,
      }));
      return { router, config, data: d, file: join(runDir, `${config}_${d.task.name}.json`), key };
    };
    routers.forEach((router, i) => {
      for (const d of data) cells.push(cellOf(router, configs[i], d));
    });

    let evaluated = 0;
    let resumed = 0;
    const summaries = new Map<Cell, EvalSummary>();
    const runCells = async (list: readonly Cell[], count: number, first: number) => {
    for (const [n, cell] of list.entries()) {
      const index = first + n;
      const name = `${cell.config}_${cell.data.task.name}`;
      const previous = readSummary(cell.file);
      const traceFile = join(runDir, `${name}_routing.parquet`);
      if (previous?.cell_key === cell.key && (spec.trace === 'off' || existsSync(traceFile))) {
        summaries.set(cell, previous);
        resumed++;
        continue;
      }
      progress.startCell(index, count, name);
      const { task, docs, loaded: l, total, path } = cell.data;
      const summary = await evaluate(model, tokenizer, task, docs, {
        router: cell.router,
        maxLength: spec.maxLength ?? undefined,
        batchSize: spec.batchSize,
        trace: spec.trace,
        traceFile,
        model: { id: options.model, dir: loaded.dir },
        data: { path, format: l.format, files: l.files, badRows: l.badRows, totalDocs: total, limit: spec.limit, sampleSeed: spec.sampleSeed },
        seed: spec.seed,
        loadSeconds,
        onProgress: (done, total, seconds, tokens) => progress.update(done, total, seconds, tokens),
      });
      const stored = { ...summary, cell_key: cell.key, sweep: { run_dir: runDir, mode: spec.mode } };
      writeFileAtomic(cell.file, JSON.stringify(stored, null, 2) + '\n');
      summaries.set(cell, stored);
      evaluated++;
      progress.endCell(`${task.primaryMetric} ${summary.metrics[task.primaryMetric]?.toFixed(4)}, ` +
        `avg_experts ${summary.routing.avg_experts.toFixed(2)}, ${summary.routing.tokens_per_second.toFixed(0)} tokens/s`);
    }
    };
    await runCells(cells, cells.length, 0);

    // Matched controls of every adaptive cell, on its task and documents (they need its results, so they come after).
    const controlOf = new Map<string, { config: string; kind: string }>();
    const sourceOf = new Map<Cell, Cell>(); // control cell → the adaptive cell it controls
    if (spec.controls === 'matched') {
      const planned = new Map<string, Cell>(cells.map((c) => [`${c.config}/${c.data.task.name}`, c]));
      const extra: Cell[] = [];
      for (const cell of cells.filter((c) => c.router.adaptive)) {
        for (const control of matchedControls(cell.router, summaries.get(cell)!, cell.file, model.routerDefaults, spec.seed)) {
          const config = control.router.configName(model.architecture.routing);
          const id = `${config}/${cell.data.task.name}`;
          if (planned.has(id)) continue; // a top-k control the grid (or another adaptive cell) already has
          const c = cellOf(control.router, config, cell.data, control.kind === 'randk' ? { key: cell.key, file: cell.file } : undefined);
          planned.set(id, c);
          extra.push(c);
          sourceOf.set(c, cell);
          if (!controlOf.has(config)) controlOf.set(config, { config: cell.config, kind: control.kind });
        }
      }
      await runCells(extra, cells.length + extra.length, cells.length);
      for (const c of extra) {
        if (!configs.includes(c.config)) {
          // A control's configuration follows the configuration it controls and its earlier controls, in tables and charts.
          const source = controlOf.get(c.config)!.config;
          const after = Math.max(...configs.map((name, i) => (name === source || controlOf.get(name)?.config === source ? i : -1)));
          configs.splice(after + 1, 0, c.config);
          routers.splice(after + 1, 0, c.router);
        }
      }
      cells.push(...extra);
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

    const rows = finishResults(cells, summaries, spec, model.defaultRouter().configName(model.architecture.routing), sourceOf);
    writeResults(runDir, rows);
    writeFileAtomic(join(runDir, 'manifest.json'), JSON.stringify({
      format: 'routelab.sweep/1',
      spec,
      model: { spec: options.model, dir: loaded.dir, fingerprint: modelHash, config_sha256: configHash(loaded.dir) },
      data_dir: options.dataDir,
      data: data.map((d) => ({ task: d.task.name, path: d.path, format: d.loaded.format, files: d.loaded.files, fingerprint: d.fingerprint, num_docs: d.docs.length, total_docs: d.total })),
      skipped_tasks: skipped,
      null_model: nullFile ? { file: nullFile, sha256: nullHash } : null,
      configs: routers.map((r, i) => ({
        config: configs[i], router: r.spec, ...(controlOf.has(configs[i]) ? { control_of: controlOf.get(configs[i])!.config, control: controlOf.get(configs[i])!.kind } : {}),
      })),
      routelab_version: VERSION,
      git_commit: gitCommit(),
      machine: { hostname: hostname(), cpus: cpus().length, cpu_model: cpus()[0]?.model ?? null, memory_gb: totalmem() / 2 ** 30, node: process.version, platform: `${process.platform}/${process.arch}`, backend: model.backend.name, threads: model.backend.threads },
      cells: { total: cells.length, evaluated, resumed },
      started: started.toISOString(),
      ended: new Date().toISOString(),
    }, null, 2) + '\n');
    return { cells: cells.length, evaluated, resumed, skippedTasks: skipped, rows };
  } finally {
    lock.release();
  }
}

/**
 * avg_task_accuracy per configuration (mean acc over its accuracy tasks) and each cell's paired bootstrap against
 * the model's own routing (`baselineConfig`) on the same task; both are written back into the summaries (atomically) and
 * into the rows.
 */
function finishResults(cells: readonly Cell[], summaries: Map<Cell, EvalSummary>, spec: SweepSpec, baselineConfig: string, sourceOf: ReadonlyMap<Cell, Cell>): ResultRow[] {
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
      writeFileAtomic(cell.file, JSON.stringify(updated, null, 2) + '\n');
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
