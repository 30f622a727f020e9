import { Checkpoint, resolveModelPath } from '../model/checkpoint.js';
import { join } from 'node:path';
import { RoutelabError } from '../errors.js';
import { createProgress } from '../sweep/progress.js';
import type { SweepSpec } from '../sweep/spec.js';
import { TASK_NAMES } from '../tasks/registry.js';
import { numberFlag, requireString, type Command } from './command.js';
import { THREADS_OPTION, threadsFlag, threadsUsage } from './threads.js';

/** `I/N` with 1 ≤ I ≤ N. */
function parseShard(text: string): { index: number; count: number } {
  const m = /^(\d+)\/(\d+)$/.exec(text.trim());
  const [index, count] = m ? [Number(m[1]), Number(m[2])] : [NaN, NaN];
  if (!(index >= 1 && count >= 1 && index <= count)) throw new RoutelabError('--shard', `expected I/N with 1 ≤ I ≤ N (e.g. 2/8), got ${JSON.stringify(text)}`);
  return { index, count };
}

export const sweepCommand: Command = {
  name: 'sweep',
  summary: 'top-k baselines and BH routing over tasks on the same documents: resumable, with results tables',
  usage: `Usage: routelab sweep --model DIR --data-dir DIR --out RUN_DIR [--mode quick|full|custom] [--spec sweep.yaml]

  --model DIR        model directory in Hugging Face layout, or a hub repo id
  --data-dir DIR     a folder laid out like the bundled data/ (wikitext-2-raw-v1/, lambada_openai/, hellaswag/,
                     glue/{sst2,rte,mrpc}/, boolq/, train-text/), or a Hugging Face hub cache
  --out RUN_DIR      where cells ({config}_{task}.json + _routing.parquet), results.{csv,json,parquet},
                     manifest.json and null.json go; re-running the same command resumes; a sweep of another
                     design (spec, model) into a finished run is refused
  --force            remove a previous run's results from RUN_DIR first and start afresh
  --queue URL        queue the cells on Redis (redis://HOST:6379/0) for \`routelab worker\`s on any machines
                     (RUN_DIR, --model and --data-dir on storage they all reach); this command plans, calibrates,
                     follows the grid and writes the results when every cell is done
  --shard I/N        evaluate only the I-th of N deterministic slices of the grid (for job arrays; shards of one
                     RUN_DIR run side by side); the same command without --shard then merges them into results
  --mode MODE        quick (10 documents per task, 512-token windows, BH max_k 8 × 4 alphas + 4 baselines),
                     full (whole splits: baselines k ∈ {8,16,32,64}, BH max_k ∈ {8,16,32,64} × alpha ∈ {.3,.4,.5,.6}),
                     custom (--spec FILE, YAML or JSON; see the README)
  --spec FILE        the custom sweep spec (implies --mode custom)
  --tasks a,b        evaluate these tasks (their data must exist) instead of the mode's defaults
  --smallbench       add sst2, rte, mrpc, boolq to the default tasks
  --limit N          documents per task (overrides the mode)
  --max-length M     window / truncation length (overrides the mode)
  --num-fewshot N    few-shot examples per prompt, lm-eval's draw (choice tasks and lambada_openai; default 0)
  --null FILE        bh/hc null model (default: calibrate on DATA_DIR/train-text into RUN_DIR/null.json)
  --profile          also profile every configuration (latency, throughput, memory) into {config}_profile.json
  --backend NAME     auto (default) | native | cpu | webgpu
${threadsUsage(17)}
  --json             print the outcome as one JSON object on stdout (cells, files, every results row)
  --quiet            print nothing but errors`,
  options: {
    model: { type: 'string' },
    'data-dir': { type: 'string' },
    out: { type: 'string' },
    mode: { type: 'string' },
    spec: { type: 'string' },
    tasks: { type: 'string' },
    smallbench: { type: 'boolean', default: false },
    limit: { type: 'string' },
    'max-length': { type: 'string' },
    'num-fewshot': { type: 'string' },
    null: { type: 'string' },
    profile: { type: 'boolean', default: false },
    backend: { type: 'string', default: 'auto' },
    ...THREADS_OPTION,
    quiet: { type: 'boolean', default: false },
    force: { type: 'boolean', default: false },
    shard: { type: 'string' },
    queue: { type: 'string' },
    json: { type: 'boolean', default: false },
  },
  async run(values) {
    // yaml, zod and the evaluation engine load when a sweep runs, not for --help.
    const [{ fullSpec, quickSpec, readCustomSpec }, { runSweep }] = await Promise.all([import('../sweep/spec.js'), import('../sweep/run.js')]);
    const mode = (values.mode as string | undefined) ?? (values.spec !== undefined ? 'custom' : 'quick');
    let spec: SweepSpec;
    if (mode === 'custom') spec = readCustomSpec(requireString(values, 'spec'));
    else if (mode === 'quick' || mode === 'full') {
      if (values.spec !== undefined) throw new RoutelabError('--spec', `only with --mode custom (got --mode ${mode})`);
      // The grid's k values follow the model's own k and expert count, read from its config.json.
      const { architecture } = Checkpoint.readArchitecture(await resolveModelPath(requireString(values, 'model')));
      const { moe, routing } = architecture;
      const maxRoutableK = (routing.topkGroups * moe.numExperts) / routing.numGroups;
      spec = (mode === 'quick' ? quickSpec : fullSpec)(values.smallbench === true, { ...moe, maxRoutableK });
    } else throw new RoutelabError('--mode', `expected quick, full or custom, got ${JSON.stringify(mode)}`);

    if (values.tasks !== undefined) {
      const names = (values.tasks as string).split(',').map((t) => t.trim()).filter(Boolean);
      const unknown = names.filter((t) => !TASK_NAMES.includes(t));
      if (names.length === 0 || unknown.length) throw new RoutelabError('--tasks', `unknown task(s) ${unknown.join(', ')}; known: ${TASK_NAMES.join(', ')}`);
      spec = { ...spec, tasks: names.map((name) => ({ name, explicit: true })) };
    }
    const positive = (flag: string) => {
      const n = numberFlag(values, flag, 0, true);
      if (n < 1) throw new RoutelabError(`--${flag}`, `expected a positive integer, got ${n}`);
      return n;
    };
    if (values.limit !== undefined) spec = { ...spec, limit: positive('limit') };
    if (values['max-length'] !== undefined) spec = { ...spec, maxLength: positive('max-length') };
    if (values['num-fewshot'] !== undefined) spec = { ...spec, numFewshot: numberFlag(values, 'num-fewshot', 0, true) };
    if (values.null !== undefined) spec = { ...spec, nullModel: values.null as string };
    if (values.profile === true) spec = { ...spec, profile: true };

    if (values.queue !== undefined && values.shard !== undefined) throw new RoutelabError('--shard', 'not with --queue: the queue spreads the cells itself');
    if (values.queue !== undefined) (await import('../sweep/queue.js')).redisConnection(values.queue as string); // a bad URL is refused first
    // Ctrl-C or a scheduler's SIGTERM: every finished cell is already on disk (summaries are published atomically),
    // so say what happened and how to go on instead of vanishing.
    for (const [signal, code] of [['SIGINT', 130], ['SIGTERM', 143]] as const) {
      process.once(signal, () => {
        console.error(`\nsweep: interrupted by ${signal}; the completed cells are kept in ${values.out as string} and the cell in flight ` +
          'was not written; run the same command again to resume from there');
        process.exit(code);
      });
    }
    const outcome = await runSweep({
      spec,
      model: requireString(values, 'model'),
      dataDir: requireString(values, 'data-dir'),
      runDir: requireString(values, 'out'),
      backend: values.backend as string,
      threads: threadsFlag(values),
      progress: createProgress(process.stderr, values.quiet === true),
      force: values.force === true,
      shard: values.shard === undefined ? undefined : parseShard(values.shard as string),
      queue: values.queue as string | undefined,
    });
    const runDir = values.out as string;
    if (values.json === true) {
      console.log(JSON.stringify({
        run_dir: runDir, cells: outcome.cells, evaluated: outcome.evaluated, resumed: outcome.resumed, skipped_tasks: outcome.skippedTasks,
        files: { manifest: join(runDir, 'manifest.json'), ...Object.fromEntries(['csv', 'json', 'parquet'].map((f) => [`results_${f}`, join(runDir, `results.${f}`)])) },
        results: outcome.rows,
      }));
    }
    if (values.quiet !== true && values.shard !== undefined) {
      console.error(`sweep: shard ${values.shard}: ${outcome.cells} cells (${outcome.evaluated} evaluated, ${outcome.resumed} already complete); ` +
        'when every shard is done, run the same command without --shard to write the results');
    } else if (values.quiet !== true) {
      console.error(`sweep: ${outcome.cells} cells (${outcome.evaluated} evaluated, ${outcome.resumed} already complete)` +
        `${outcome.skippedTasks.length ? `; skipped tasks without data: ${outcome.skippedTasks.join(', ')}` : ''}; ` +
        `results in ${values.out}/results.{csv,json,parquet}`);
    }
  },
};
