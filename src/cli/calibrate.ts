import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../atomic.js';
import { collectRouterLogits, fitNullModel, HOLDOUT_EVERY } from '../calibrate/calibrate.js';
import { ksCritical95 } from '../calibrate/ks.js';
import { DEFAULT_MAX_COMPONENTS } from '../calibrate/gmm.js';
import { readCalibrationText, tokenizeCalibrationText, type CalibrationText } from '../calibrate/text.js';
import { RoutelabError } from '../errors.js';
import { loadModel } from '../load.js';
import { requireTokenizer, type TextTokenizer } from '../model/tokenizer.js';
import { isNullEstimator, NULL_ESTIMATORS, NULL_MODEL_FORMAT, readNullModel, type NullGrid, type NullParams } from '../routers/null-model.js';
import { createProgress } from '../sweep/progress.js';
import { getTask } from '../tasks/registry.js';
import { fingerprintDocs } from '../tasks/selection.js';
import type { Request } from '../tasks/task.js';
import { numberFlag, requireString, type Command } from './command.js';
import { THREADS_OPTION, threadsFlag, threadsUsage } from './threads.js';

export const calibrateCommand: Command = {
  name: 'calibrate',
  summary: 'fit bh\'s null model (per-layer KDE, mixture, Student-t or empirical CDF of router logits) on calibration text; --show summarises one',
  usage: `Usage: routelab calibrate --model DIR --data PATH [--task T --split S] [--tokens N] [--seq-len S] [--batch-size B]
                          [--estimator E [--max-components K]] [--per-expert] [--points P] --out null.json
       routelab calibrate --show null.json [--json]

  --model DIR       model directory in Hugging Face layout, or a hub repo id
  --data PATH       calibration text: a .txt file or a directory of .txt files (never the evaluation documents);
                    with --task, that task's data (file, directory or dataset id)
  --task T          calibrate on a task's documents (the text its requests score), e.g. wikitext
  --split S         the split to read with --task (default validation); the split the task evaluates is refused
  --tokens N        calibration tokens (default 16384); every layer's E router logits per token are samples
  --seq-len S       tokens per sequence (default 512)
  --batch-size B    sequences per forward pass (default 4)
  --estimator E     ${NULL_ESTIMATORS.join('|')} (default kde): a Gaussian KDE, a Gaussian mixture by EM with
                    its components chosen by BIC, a Student-t by maximum likelihood, or the empirical CDF
                    (docs/semantics.md); every 10th token is held out for the KS goodness of fit
  --max-components K
                    the most components BIC may choose, with --estimator gmm (default ${DEFAULT_MAX_COMPONENTS})
  --per-expert      also fit one null per expert (bh then uses each expert's own null)
  --points P        CDF grid points (default 512)
${threadsUsage(16)}
  --out FILE        the routelab.null/1 JSON file to write
  --show FILE       print a summary of an existing null-model file
  --json            print the summary as one JSON object on stdout (progress and messages stay on stderr)
  --quiet           no progress on stderr (a live line on a terminal, plain lines otherwise)`,
  options: {
    model: { type: 'string' },
    data: { type: 'string' },
    task: { type: 'string' },
    split: { type: 'string' },
    tokens: { type: 'string' },
    'seq-len': { type: 'string' },
    'batch-size': { type: 'string' },
    estimator: { type: 'string', default: 'kde' },
    'max-components': { type: 'string' },
    'per-expert': { type: 'boolean', default: false },
    points: { type: 'string' },
    out: { type: 'string' },
    show: { type: 'string' },
    backend: { type: 'string', default: 'auto' },
    ...THREADS_OPTION,
    json: { type: 'boolean', default: false },
    quiet: { type: 'boolean', default: false },
  },
  async run(values) {
    const show = (file: string) => console.log(values.json === true ? JSON.stringify(nullModelSummary(file)) : summariseNullModel(file));
    if (values.show !== undefined) {
      show(values.show as string);
      return;
    }
    const positive = (flag: string, fallback: number) => {
      const v = numberFlag(values, flag, fallback, true);
      if (v < 1) throw new RoutelabError(`--${flag}`, `expected a positive integer, got ${v}`);
      return v;
    };
    const tokens = positive('tokens', 16384);
    const seqLen = positive('seq-len', 512);
    const batchSize = positive('batch-size', 4);
    const points = positive('points', 512);
    if (points < 2) throw new RoutelabError('--points', 'expected at least 2');
    const estimator = values.estimator as string;
    if (!isNullEstimator(estimator)) throw new RoutelabError('--estimator', `unknown estimator ${JSON.stringify(estimator)}; expected one of ${NULL_ESTIMATORS.join(', ')}`);
    if (values['max-components'] !== undefined && estimator !== 'gmm') throw new RoutelabError('--max-components', `applies to --estimator gmm only (here ${estimator})`);
    const maxComponents = positive('max-components', DEFAULT_MAX_COMPONENTS);
    const out = requireString(values, 'out');
    const dataPath = requireString(values, 'data');
    const modelSpec = requireString(values, 'model');

    const { dir, model, tokenizer } = await loadModel(modelSpec, { backend: values.backend as string, threads: threadsFlag(values) });
    const tok = requireTokenizer(tokenizer, dir);
    const { text, data } = values.task === undefined
      ? ((t) => ({ text: t, data: { path: dataPath, files: t.files, text_sha256: t.fingerprint } }))(readCalibrationText(dataPath, tok, tokens, seqLen))
      : await taskCalibrationText(values.task as string, (values.split as string | undefined) ?? 'validation', dataPath, tok, tokens, seqLen);
    const started = performance.now();
    const progress = createProgress(process.stderr, values.quiet === true, { label: 'calibrate', units: 'tokens' });
    progress.startCell(0, 1, `router logits of ${model.numMoeLayers} MoE layers`);
    const logits = await collectRouterLogits(model, text.sequences, {
      batchSize,
      onProgress: (done, total) => progress.update(done, total, (performance.now() - started) / 1000, done),
    });
    progress.endCell(`${text.tokens} tokens in ${((performance.now() - started) / 1000).toFixed(1)} s`);
    const nullModel = fitNullModel(logits, model.architecture.moe.numExperts, {
      perExpert: values['per-expert'] as boolean,
      points,
      estimator,
      maxComponents,
      meta: {
        model: { spec: modelSpec, config_sha256: createHash('sha256').update(readFileSync(join(dir, 'config.json'))).digest('hex') },
        data: { ...data, seq_len: seqLen },
        router: model.defaultRouter().spec,
        moe_layers: [...model.moeLayers],
      },
    });
    writeFileAtomic(out, JSON.stringify(nullModel));
    progress.log(`calibrate: ${text.tokens} tokens, ${model.numMoeLayers} MoE layers collected and fitted in ${((performance.now() - started) / 1000).toFixed(1)} s; wrote ${out}`);
    show(out);
  },
};

/**
 * Calibration text from a task's documents on a split other than the one it evaluates: what its requests score
 * (a rolling text, or context + continuation). The documents' fingerprint goes into the null model's metadata so a
 * sweep can refuse to evaluate on them.
 */
async function taskCalibrationText(name: string, split: string, path: string, tok: TextTokenizer, tokens: number, seqLen: number) {
  const task = getTask(name);
  if (split === task.split) {
    throw new RoutelabError('--split', `${split} is the split ${name} evaluates; calibrate on another (e.g. validation or train)`);
  }
  const loaded = await task.load(path, 'skip', split);
  const scoredText = (r: Request) => (r.kind === 'rolling' ? r.text : r.context + r.continuation);
  const text: CalibrationText = { ...tokenizeCalibrationText(loaded.docs.map((d) => scoredText(task.requests(d)[0])), tok, tokens, seqLen, path), files: loaded.files };
  return { text, data: { path, task: name, split, files: loaded.files, text_sha256: text.fingerprint, fingerprint: fingerprintDocs(task, loaded.docs), num_docs: loaded.docs.length } };
}

/** x where the grid's CDF first reaches q (by linear interpolation between grid points). */
function quantile(g: NullGrid, q: number): number {
  for (let i = 1; i < g.x.length; i++) {
    if (g.cdf[i] >= q) {
      const span = g.cdf[i] - g.cdf[i - 1];
      return span > 0 ? g.x[i - 1] + ((q - g.cdf[i - 1]) / span) * (g.x[i] - g.x[i - 1]) : g.x[i];
    }
  }
  return g.x[g.x.length - 1];
}

/**
 * A null-model file as data: its metadata, and per MoE layer the grid's range, the logits at p = 0.5, 0.05, 0.01, the
 * held-out KS distance (pooled, and per expert: the worst, the median, and how many exceed the 95% critical value for
 * that many independent samples) and the fitted parameters.
 */
export function nullModelSummary(file: string) {
  const nullModel = readNullModel(file);
  const meta = nullModel.meta as Record<string, unknown>;
  const heldOut = typeof meta.heldout_tokens === 'number' && meta.heldout_tokens > 0 ? meta.heldout_tokens : null;
  const critical = heldOut === null ? null : ksCritical95(heldOut);
  const perExpertKs = (ks: readonly number[] | undefined) => {
    if (!ks?.length || critical === null) return { ks_experts_max: null, ks_experts_worst: null, ks_experts_median: null, ks_experts_above_critical: null };
    const sorted = [...ks].sort((a, b) => a - b);
    const max = sorted[sorted.length - 1];
    return { ks_experts_max: max, ks_experts_worst: ks.indexOf(max), ks_experts_median: sorted[(sorted.length - 1) >> 1], ks_experts_above_critical: ks.filter((d) => d > critical).length };
  };
  return {
    file,
    format: NULL_MODEL_FORMAT,
    estimator: nullModel.estimator,
    meta,
    /** The 95% critical KS distance for one expert's held-out logits (heldout_tokens independent samples). */
    ks_critical_95: critical,
    layers: nullModel.layers.map((layer, l) => ({
      layer: l,
      decoder_layer: (meta.moe_layers as number[] | undefined)?.[l] ?? l,
      grid_points: layer.x.length,
      x_min: layer.x[0],
      x_max: layer.x[layer.x.length - 1],
      bandwidth: layer.params && 'bandwidth' in layer.params ? layer.params.bandwidth : null,
      median: quantile(layer, 0.5),
      p05_at: quantile(layer, 0.95),
      p01_at: quantile(layer, 0.99),
      expert_nulls: layer.experts?.length ?? 0,
      ks: layer.ks ?? null,
      ...perExpertKs(layer.ksExperts),
      ks_experts: layer.ksExperts ?? null,
      params: layer.params ?? null,
    })),
  };
}

/** A layer's fitted parameters in a few characters. */
function describeParams(params: NullParams | null): string {
  if (params === null) return '–';
  const f = (v: number) => (v !== 0 && Math.abs(v) < 1e-3 ? v.toExponential(3) : v.toPrecision(4));
  if ('bandwidth' in params) return `h=${f(params.bandwidth)}`;
  if ('weights' in params) return `K=${params.weights.length}: ${params.weights.map((w, k) => `${f(w)}·N(${f(params.means[k])}, ${f(params.sigmas[k])}²)`).join(' + ')}`;
  if ('nu' in params) return `ν=${f(params.nu)} μ=${f(params.mu)} σ=${f(params.sigma)}`;
  return `n=${params.n}, p ≥ ${f(1 / (params.n + 1))}`;
}

export function summariseNullModel(file: string): string {
  const { estimator, meta, layers, ks_critical_95: critical } = nullModelSummary(file);
  const E = layers[0]?.ks_experts?.length ?? 0;
  const rows = layers.map((l) => {
    const cells = [l.layer, l.x_min, l.x_max, l.median, l.p05_at, l.p01_at, l.ks, l.ks_experts_max];
    const worst = l.ks_experts_worst === null ? '–' : `e${l.ks_experts_worst}`;
    const above = l.ks_experts_above_critical === null ? '–' : `${l.ks_experts_above_critical}/${E}`;
    return cells.map((c, i) => (i === 0 ? String(c).padStart(5) : (c === null ? '–' : c.toFixed(4)).padStart(10))).join(' ') +
      ` ${worst.padStart(5)} ${above.padStart(8)}  ${describeParams(l.params)}` + (l.expert_nulls ? `  (${l.expert_nulls} expert nulls)` : '');
  });
  const header = ['layer', 'x min', 'x max', 'median', 'p=0.05 at', 'p=0.01 at', 'KS', 'KS worst'].map((h, i) => h.padStart(i === 0 ? 5 : 10)).join(' ') +
    ` ${'which'.padStart(5)} ${'> crit'.padStart(8)}  fit`;
  const about = [`null model ${file}`, `  ${layers.length} layers, ${layers[0].grid_points} grid points, estimator ${estimator}`];
  if (meta.tokens !== undefined) about.push(`  calibrated on ${meta.tokens} tokens (${meta.samples_per_layer} logits per layer); ${meta.bandwidth_rule ?? meta.method ?? ''}`);
  if (meta.heldout_tokens !== undefined) about.push(`  KS: distance to the logits of ${meta.heldout_tokens} held-out tokens (every ${HOLDOUT_EVERY}th) of the null fitted without them`);
  if (critical !== null && E > 0) {
    about.push(`  KS worst: the largest per-expert distance (each expert's held-out logits against the null bh uses for it) and which expert; ` +
      `> crit: experts above ${critical.toFixed(4)}, the distance ${meta.heldout_tokens} independent samples of a correct null exceed 5% of the time ` +
      `(about ${Math.round(0.05 * E)} of ${E} by chance)`);
  }
  return [...about, header, ...rows].join('\n');
}
