/**
 * Two or more sweep runs side by side — the same grid on two checkpoints or two families, before and after a change:
 * configurations are matched by name (the name results give a router, relative to the model's own routing) and task;
 * their documents must be the same (the data fingerprint), or the comparison is refused; each later run is compared
 * with the first on those documents by the sweep's paired bootstrap (src/sweep/results.ts compareToBaseline), and
 * the p-values of the primary metrics are adjusted over the whole family of comparisons.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { RoutelabError } from '../errors.js';
import type { EvalSummary } from '../eval/evaluate.js';
import { adjustPValues, type BootstrapInterval, type Correction } from '../experiments/stats.js';
import { betterDirection, type Better } from '../metrics.js';
import { compareToBaseline } from '../sweep/results.js';

export const COMPARE_FORMAT = 'routelab.compare/1';

/** One sweep run directory as compared: its manifest and every cell's full summary (per-document scores included). */
export interface ComparedRun {
  readonly dir: string;
  readonly label: string;
  readonly manifest: Readonly<Record<string, unknown>>;
  /** Cell summaries by `${config}\t${task}`, in the run's results order. */
  readonly cells: ReadonlyMap<string, EvalSummary>;
}

/** One (configuration × task) present in every run. */
export interface ComparedCell {
  readonly config: string;
  readonly task: string;
  /** Each run's router spec (bh and randk specs name run-specific files). */
  readonly routers: readonly string[];
  readonly numDocs: number;
  readonly fingerprint: string;
  readonly primaryMetric: string;
  readonly better: Better;
  /** The primary metric, experts per token and throughput in each run, in run order. */
  readonly values: readonly (number | null)[];
  readonly experts: readonly (number | null)[];
  readonly tokensPerSecond: readonly (number | null)[];
  /**
   * For each run after the first: run − first run on the same documents, per compared metric (the sweep's set:
   * perplexities, their logarithms, accuracies), with the primary metric's p-value adjusted over every comparison.
   */
  readonly deltas: readonly { readonly run: string; readonly metrics: Readonly<Record<string, BootstrapInterval>>; readonly adjustedPValue: number | null }[];
}

export interface Comparison {
  readonly format: typeof COMPARE_FORMAT;
  readonly runs: readonly { readonly dir: string; readonly label: string; readonly model: string | null; readonly modelFingerprint: string | null; readonly routelabVersion: string | null; readonly gitCommit: string | null; readonly ended: string | null }[];
  /** The run every other is compared with (the first). */
  readonly reference: string;
  readonly resamples: number;
  readonly seed: number;
  readonly level: number;
  readonly correction: Correction;
  /** Tasks in the first run's order that every run has. */
  readonly tasks: readonly string[];
  /** Configurations in the first run's order that every run has. */
  readonly configs: readonly string[];
  readonly cells: readonly ComparedCell[];
  /** (configuration × task) cells some run lacks, with the runs that have them. */
  readonly unmatched: readonly { readonly config: string; readonly task: string; readonly in: readonly string[] }[];
}

export interface CompareOptions {
  /** Names of the runs in tables and charts (default: their directory names, made unique). */
  readonly labels?: readonly string[];
  /** Bootstrap resamples (default: the first run's spec, else 1000) and seed (default 0). */
  readonly resamples?: number;
  readonly seed?: number;
  readonly correction?: Correction;
}

const key = (config: string, task: string) => `${config}\t${task}`;

function readJson(file: string, expected: string): unknown {
  try {
    return JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new RoutelabError(file, `cannot read it as JSON (${(e as Error).message}); expected ${expected}`);
  }
}

/** A sweep run directory: manifest.json, results.json and the summary of every row. */
export function readComparedRun(dir: string, label: string): ComparedRun {
  const root = resolve(dir);
  if (!existsSync(root) || !statSync(root).isDirectory()) throw new RoutelabError(dir, 'no such run directory');
  for (const file of ['manifest.json', 'results.json']) {
    if (!existsSync(join(root, file))) throw new RoutelabError(dir, `not a finished sweep run directory: no ${file} (run the sweep to the end first)`);
  }
  const manifest = readJson(join(root, 'manifest.json'), 'a sweep manifest') as Record<string, unknown>;
  if (manifest?.format !== 'routelab.sweep/1') throw new RoutelabError(join(root, 'manifest.json'), 'expected a sweep manifest with "format": "routelab.sweep/1"');
  const rows = readJson(join(root, 'results.json'), 'an array of result rows');
  if (!Array.isArray(rows) || rows.length === 0) throw new RoutelabError(join(root, 'results.json'), 'expected a non-empty array of result rows');
  const cells = new Map<string, EvalSummary>();
  for (const row of rows as Record<string, unknown>[]) {
    const config = String(row.config);
    const task = String(row.task);
    const file = join(root, typeof row.summary_file === 'string' ? basename(row.summary_file) : `${config}_${task}.json`);
    if (!existsSync(file)) throw new RoutelabError(file, `missing: the summary of cell ${config} × ${task}, which results.json lists`);
    const summary = readJson(file, `the evaluation summary of ${config} × ${task}`) as EvalSummary;
    if (summary?.format !== 'routelab.eval/1' || summary.config !== config || summary.task !== task || !summary.documents) {
      throw new RoutelabError(file, `expected a routelab.eval/1 summary of ${config} on ${task} with its per-document scores`);
    }
    cells.set(key(config, task), summary);
  }
  return { dir: root, label, manifest, cells };
}

/** Directory names as labels; where two are the same, their parent folders too, and as a last resort the position. */
export function runLabels(dirs: readonly string[]): string[] {
  const paths = dirs.map((d) => resolve(d).split(/[\\/]/).filter(Boolean));
  for (let depth = 1; depth <= Math.max(...paths.map((p) => p.length)); depth++) {
    const labels = paths.map((p) => p.slice(-depth).join('/'));
    if (new Set(labels).size === labels.length) return labels;
  }
  return dirs.map((_, i) => `run ${i + 1}`);
}

const pick = (value: unknown, ...path: string[]): unknown =>
  path.reduce<unknown>((at, k) => (typeof at === 'object' && at !== null ? (at as Record<string, unknown>)[k] : undefined), value);
const text = (value: unknown): string | null => (typeof value === 'string' ? value : null);
const finite = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);

/** Compare runs: the first is the reference. */
export function compareRuns(dirs: readonly string[], options: CompareOptions = {}): Comparison {
  if (dirs.length < 2) throw new RoutelabError('routelab compare', `expected at least two run directories, got ${dirs.length}`);
  const labels = options.labels ?? runLabels(dirs);
  if (labels.length !== dirs.length) throw new RoutelabError('--labels', `expected ${dirs.length} labels (one per run), got ${labels.length}`);
  if (new Set(labels).size !== labels.length) throw new RoutelabError('--labels', `expected distinct labels, got ${labels.join(', ')}`);
  const runs = dirs.map((d, i) => readComparedRun(d, labels[i]));
  const [first, ...rest] = runs;
  const resamples = options.resamples ?? finite(pick(first.manifest, 'spec', 'bootstrapResamples')) ?? 1000;
  const seed = options.seed ?? 0;
  const correction = options.correction ?? 'bh';

  // Cells in the first run's order (then any only later runs have, for the unmatched list).
  const order: string[] = [];
  for (const run of runs) for (const k of run.cells.keys()) if (!order.includes(k)) order.push(k);
  const matched = order.filter((k) => runs.every((r) => r.cells.has(k)));
  const unmatched = order.filter((k) => !matched.includes(k)).map((k) => {
    const [config, task] = k.split('\t');
    return { config, task, in: runs.filter((r) => r.cells.has(k)).map((r) => r.label) };
  });
  if (matched.length === 0) {
    throw new RoutelabError('routelab compare', `the runs have no configuration × task in common (${runs.map((r) => `${r.label}: ${[...r.cells.keys()].map((k) => k.replace('\t', ' × ')).join(', ')}`).join('; ')})`);
  }

  // Paired differences need the same documents: refuse where a task's documents differ.
  for (const k of matched) {
    const reference = first.cells.get(k)!;
    for (const run of rest) {
      const other = run.cells.get(k)!;
      if (other.data.fingerprint !== reference.data.fingerprint) {
        const docs = (s: EvalSummary) => `${s.data.num_docs} documents${s.data.limit !== null ? ` (limit ${s.data.limit}${s.data.sample_seed !== null ? `, sample_seed ${s.data.sample_seed}` : ''})` : ''} of ${s.data.path ?? 'unrecorded data'}`;
        throw new RoutelabError(run.dir, `evaluated other ${reference.task} documents than ${first.dir}: data fingerprint ${other.data.fingerprint.slice(0, 12)}… ` +
          `(${docs(other)}) vs ${reference.data.fingerprint.slice(0, 12)}… (${docs(reference)}); paired differences need the same documents: ` +
          'run both sweeps on the same data with the same limit and sample_seed');
      }
    }
  }

  const cells = matched.map((k) => {
    const [config, task] = k.split('\t');
    const summaries = runs.map((r) => r.cells.get(k)!);
    const reference = summaries[0];
    const primary = reference.primary_metric;
    return {
      config,
      task,
      routers: summaries.map((s) => s.router),
      numDocs: reference.data.num_docs,
      fingerprint: reference.data.fingerprint,
      primaryMetric: primary,
      better: betterDirection(primary),
      values: summaries.map((s) => finite(s.metrics[primary])),
      experts: summaries.map((s) => finite(s.routing.avg_experts)),
      tokensPerSecond: summaries.map((s) => finite(s.routing.tokens_per_second)),
      deltas: summaries.slice(1).map((s, i) => ({
        run: rest[i].label,
        metrics: compareToBaseline(s, reference, resamples, seed)?.metrics ?? {},
        adjustedPValue: null as number | null,
      })),
    };
  });
  // One family: every later run's primary-metric comparison on every matched cell.
  const family = cells.flatMap((c) => c.deltas.map((d) => ({ d, p: d.metrics[c.primaryMetric]?.pValue })));
  const measured = family.filter((f): f is { d: (typeof family)[number]['d']; p: number } => typeof f.p === 'number');
  const adjusted = adjustPValues(measured.map((f) => f.p), correction);
  measured.forEach((f, i) => { f.d.adjustedPValue = adjusted[i]; });

  const tasks = [...new Set(cells.map((c) => c.task))];
  const configs = [...new Set(cells.map((c) => c.config))];
  return {
    format: COMPARE_FORMAT,
    runs: runs.map((r) => ({
      dir: r.dir,
      label: r.label,
      model: text(pick(r.manifest, 'model', 'spec')),
      modelFingerprint: text(pick(r.manifest, 'model', 'fingerprint')),
      routelabVersion: text(pick(r.manifest, 'routelab_version')),
      gitCommit: text(pick(r.manifest, 'git_commit')),
      ended: text(pick(r.manifest, 'ended')),
    })),
    reference: first.label,
    resamples,
    seed,
    level: 0.95,
    correction,
    tasks,
    configs,
    cells,
    unmatched,
  };
}
