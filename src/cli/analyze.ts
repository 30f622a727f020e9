import { RoutelabError } from '../errors.js';
import { numberFlag, type Command } from './command.js';

export const analyzeCommand: Command = {
  name: 'analyze',
  summary: 'what a sweep\'s routing traces say about its experts: vocabulary and task specialisation, co-activation, cross-layer routing, what drives adaptive counts',
  usage: `Usage: routelab analyze RUN_DIR [--config C] [--task T] [--layer L] [--out DIR] [--top N] [--min-count M] [--model DIR] [--json]

  RUN_DIR        a sweep's run directory (or an eval --out directory) holding {config}_{task}_routing.parquet traces
  --config C     the configuration whose experts are analysed (default: the run's baseline, the model's own routing);
                 naming one also limits the adaptive-count analysis to it
  --task T       vocabulary, co-activation, cross-layer and adaptive-count analyses on task T only (default: every
                 task of the configuration); task specialisation always compares all its tasks
  --layer L      MoE layer of the co-activation matrix (default: the middle one)
  --out DIR      where the analysis goes (default RUN_DIR/analysis), replaced as a whole: analyze.md, tables as CSV
                 and Parquet, figures/ as Vega-Lite, SVG and PNG
  --top N        entries per top list: tokens per expert, co-activation pairs (default 10)
  --min-count M  fewest selections of a token by an expert before it is ranked by lift, and of an expert before its
                 pairs are ranked (default 5)
  --model DIR    decode token ids with this model's tokenizer (default: the model the traces record, if present)
  --json         print the outcome as one JSON object on stdout
  --quiet        print nothing but errors

  Definitions: docs/analyze.md. Traces are streamed one row group at a time.`,
  options: {
    config: { type: 'string' },
    task: { type: 'string' },
    layer: { type: 'string' },
    out: { type: 'string' },
    top: { type: 'string' },
    'min-count': { type: 'string' },
    model: { type: 'string' },
    json: { type: 'boolean', default: false },
    quiet: { type: 'boolean', default: false },
  },
  allowPositionals: true,
  async run(values, positionals) {
    if (positionals.length !== 1) {
      throw new RoutelabError('routelab analyze', `expected one RUN_DIR, got ${positionals.length ? positionals.join(' ') : 'none'}`);
    }
    // Absent flags stay undefined: the defaults live with the analysis.
    const positive = (flag: string) => {
      if (values[flag] === undefined) return undefined;
      const n = numberFlag(values, flag, 0, true);
      if (n < 1) throw new RoutelabError(`--${flag}`, `expected a positive integer, got ${n}`);
      return n;
    };
    const top = positive('top');
    const minCount = positive('min-count');
    const layer = values.layer === undefined ? undefined : numberFlag(values, 'layer', 0, true);
    const json = values.json === true;
    const log = values.quiet === true || json ? () => {} : (line: string) => console.error(`analyze: ${line}`);
    // The analysis pulls in the report's renderer (Vega, resvg): loaded when it runs, not for --help.
    const { analyzeRun } = await import('../analyze/analyze.js');
    const { writeAnalysis } = await import('../analyze/output.js');
    const analysis = await analyzeRun(positionals[0], {
      config: values.config as string | undefined,
      task: values.task as string | undefined,
      layer,
      top,
      minCount,
      model: values.model as string | undefined,
      log,
    });
    const { dir, files } = await writeAnalysis(analysis, values.out as string | undefined, log);
    if (json) {
      const pooled = (c: (typeof analysis.adaptive)[number]) => c.correlations.filter((r) => r.layer === null);
      console.log(JSON.stringify({
        run: analysis.runDir,
        config: analysis.config,
        router: analysis.router,
        tasks: analysis.tasks,
        analysed_tasks: analysis.analysedTasks,
        num_layers: analysis.numLayers,
        num_experts: analysis.numExperts,
        positions: analysis.vocabulary.positions,
        dir,
        files,
        cross_layer: analysis.crossLayer,
        coactivation: { layer: analysis.coactivation.layer, pairs: analysis.coactivation.pairs },
        adaptive: analysis.adaptive.map((c) => ({ config: c.config, rows: c.rows, sampled: c.sampled, min_count: c.minCount, max_count: c.maxCount, correlations: pooled(c) })),
      }));
    } else if (values.quiet !== true) {
      console.log(`${dir}/analyze.md`);
    }
  },
};
