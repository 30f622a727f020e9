import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../atomic.js';
import { RoutelabError } from '../errors.js';
import { profileModel } from '../experiments/profile.js';
import { loadModel } from '../load.js';
import { parseRouterSpec } from '../routers/registry.js';
import { numberFlag, requireString, type Command } from './command.js';
import { THREADS_OPTION, threadsFlag, threadsUsage } from './threads.js';

function positiveList(values: Record<string, unknown>, flag: string, fallback: string): number[] {
  const raw = (values[flag] as string | undefined) ?? fallback;
  const list = raw.split(',').map((s) => Number(s.trim()));
  if (list.length === 0 || !list.every((n) => Number.isInteger(n) && n > 0)) {
    throw new RoutelabError(`--${flag}`, `expected comma-separated positive integers, got ${JSON.stringify(raw)}`);
  }
  return list;
}

export const profileCommand: Command = {
  name: 'profile',
  summary: 'latency (mean/std/quartiles/p95/p99) per sequence length, throughput (median, IQR) per batch size, peak memory; shapes timed in interleaved rounds',
  usage: `Usage: routelab profile --model DIR [--router SPEC] [--seq 128,512] [--batch 1,4,16] [--warmup 2] [--runs 10]
                        [--seed 0] [--backend auto|native|cpu|webgpu] [--threads N] --out DIR

  Latency: one sequence per forward pass (prefill, logits of the last position) at each --seq length, after
  --warmup untimed runs, over --runs timed runs. Throughput: tokens/s at each --batch size for the longest length.
  Writes DIR/profile.json and prints a table (with --json: the table on stderr, profile.json's object on stdout).

${threadsUsage(13)}`,
  options: {
    model: { type: 'string' },
    router: { type: 'string', default: 'default' },
    seq: { type: 'string' },
    batch: { type: 'string' },
    warmup: { type: 'string' },
    runs: { type: 'string' },
    seed: { type: 'string' },
    out: { type: 'string' },
    backend: { type: 'string', default: 'auto' },
    ...THREADS_OPTION,
    json: { type: 'boolean', default: false },
  },
  async run(values) {
    const out = requireString(values, 'out');
    const seqLengths = positiveList(values, 'seq', '128,512');
    const batchSizes = positiveList(values, 'batch', '1,4,16');
    const warmup = numberFlag(values, 'warmup', 2, true);
    const runs = numberFlag(values, 'runs', 10, true);
    if (warmup < 0) throw new RoutelabError('--warmup', 'expected ≥ 0');
    if (runs < 1) throw new RoutelabError('--runs', 'expected ≥ 1');
    const { model } = await loadModel(requireString(values, 'model'), { backend: values.backend as string, threads: threadsFlag(values) });
    const router = parseRouterSpec(values.router as string, model.routerDefaults);
    const result = await profileModel(model, {
      router, seqLengths, batchSizes, warmup, runs, seed: numberFlag(values, 'seed', 0, true),
      onProgress: (line) => console.error(`profile: ${line}`),
    });
    mkdirSync(out, { recursive: true });
    writeFileAtomic(join(out, 'profile.json'), JSON.stringify(result, null, 2) + '\n');
    const f = (x: number) => x.toFixed(2).padStart(9);
    // Scripts read the one JSON object on stdout; people the table, then on stderr.
    const print = values.json === true ? (line: string) => console.error(line) : (line: string) => console.log(line);
    if (values.json === true) console.log(JSON.stringify({ file: join(out, 'profile.json'), ...result }));
    print(`router ${result.router}, backend ${result.backend}${result.threads === null ? '' : ` (${result.threads} threads)`}, peak RSS ${result.peak_rss_mb.toFixed(0)} MB, peak ${result.backend_buffers} buffers ${result.peak_backend_buffers_mb.toFixed(0)} MB`);
    print('  seq   runs     mean      std      min      p25   median      p75      max      p95      p99  (ms)');
    for (const r of result.latency_ms) print(`${String(r.seq_len).padStart(5)} ${String(r.runs).padStart(6)}${[r.mean, r.std, r.min, r.p25, r.p50, r.p75, r.max, r.p95, r.p99].map(f).join('')}`);
    print('batch × seq    runs   tokens/s (median)   IQR');
    for (const t of result.throughput) {
      print(`${`${t.batch} × ${t.seq_len}`.padEnd(12)} ${String(t.runs).padStart(6)} ${t.tokens_per_second.toFixed(1).padStart(18)}   ${t.tokens_per_second_p25.toFixed(1)}–${t.tokens_per_second_p75.toFixed(1)}`);
    }
  },
};
