import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statfsSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { NativeBackend } from '../backends/native.js';
import { RoutelabError } from '../errors.js';
import { availableMemory, requireMemory } from '../load.js';
import { Checkpoint } from '../model/checkpoint.js';
import { MoeModel } from '../model/model.js';
import { BENCH_SHAPES, benchConfig, fullSizeTarget, checkpointBytes, holdsCheckpoint, maxAbsDiffFile, peakRssMb, printTable, randomBf16, randomF32, randomIds, round, writeRandomCheckpoint } from './bench-common.js';
import { BENCH_GPU_OPTIONS, BENCH_GPU_USAGE, runBenchGpu } from './bench-gpu.js';
import { BENCH_STARTUP_USAGE, runBenchStartup } from './bench-startup.js';
import { BENCH_QUEUE_OPTIONS, BENCH_QUEUE_USAGE, runBenchQueue } from './bench-queue.js';
import { BENCH_CONTENTION_OPTIONS, BENCH_CONTENTION_USAGE, runBenchContention } from './bench-contention.js';
import { BENCH_LLAMA_OPTIONS, BENCH_LLAMA_USAGE, runBenchLlamaCpp } from './bench-llama.js';
import { numberFlag, type Command } from './command.js';

/**
 * `routelab bench cpu`: the same work on routelab's native backend and on the references, side by side in one run.
 *   1. GEMM [n×2048]·[2048×1024] (BF16 weights for routelab) vs numpy float32 (OpenBLAS sgemm), n ∈ {64, 512, 4096}.
 *   2. Prefill of a random-weight OLMoE-shaped stack (2 layers) at 1×512 and 8×512 vs a PyTorch eager float32
 *      implementation of the Hugging Face loop on the same safetensors file; logits compared.
 * Prints a table, then one JSON object as the last line.
 */
const SETUP = 'apt-get install -y --no-install-recommends python3-numpy python3-torch libopenblas0-pthread';
const REFERENCE_SCRIPT = fileURLToPath(new URL('../../../bench/cpu_reference.py', import.meta.url));
const GEMM_K = 2048;
const GEMM_N = 1024;

const BENCH_CONFIG = benchConfig('olmoe-1b-7b', 2);
const CLI = fileURLToPath(new URL('./main.js', import.meta.url));

export const benchCommand: Command = {
  name: 'bench',
  summary: 'benchmark the CPU kernels against OpenBLAS (numpy) and PyTorch in one run; table + JSON line',
  usage: `Usage: routelab bench cpu [--setup] [--python PY] [--threads N] [--gemm-only] [--keep]

  --setup       install the references first: ${SETUP} (root)
  --python PY   Python with numpy and torch (default: the first of python3, /usr/bin/python3 that imports both)
  --threads N   threads for routelab and the references (default: ROUTELAB_THREADS, else the CPUs this process may
                use: its affinity mask within its cgroup CPU quota)
  --gemm-only   skip the prefill comparison
  --full-size   also write a whole model of --shape S (default olmoe-1b-7b: 16 layers, 13.8 GB of BF16; --layers N
                to change) into --dir DIR if given (reused there on later runs), and profile a 1×512 prefill on it
                in a child process: its peak RSS and tokens/s
  --family F    with --full-size: the real shapes of family F's shipped config (configs/: olmoe, mixtral, qwen2_moe,
                qwen3_moe, deepseek_v2, granitemoe) instead of --shape; refused up front when its weights exceed
                this machine's available memory or the disk's free space
  --keep        keep the temporary checkpoint and logits files

${BENCH_LLAMA_USAGE}

${BENCH_GPU_USAGE}

${BENCH_STARTUP_USAGE}

${BENCH_CONTENTION_USAGE}

${BENCH_QUEUE_USAGE}`,
  options: {
    ...BENCH_GPU_OPTIONS,
    ...BENCH_CONTENTION_OPTIONS,
    ...BENCH_QUEUE_OPTIONS,
    ...BENCH_LLAMA_OPTIONS,
    setup: { type: 'boolean' },
    python: { type: 'string' },
    threads: { type: 'string' },
    'gemm-only': { type: 'boolean' },
    'full-size': { type: 'boolean' },
    family: { type: 'string' },
    keep: { type: 'boolean' },
  },
  allowPositionals: true,
  async run(values, positionals) {
    if (positionals[0] === 'gpu') return runBenchGpu(values, positionals);
    if (positionals[0] === 'startup' && positionals.length === 1) return runBenchStartup(values);
    if (positionals[0] === 'contention' && positionals.length === 1) return runBenchContention(values);
    if (positionals[0] === 'queue' && positionals.length === 1) return runBenchQueue(values);
    if (positionals.length !== 1 || positionals[0] !== 'cpu') throw new RoutelabError('routelab bench', `expected \`routelab bench cpu\`, got ${JSON.stringify(positionals.join(' '))}`);
    if (values['llama-cpp'] !== undefined) return runBenchLlamaCpp(values);
    if (values.family !== undefined && !values['full-size']) throw new RoutelabError('--family', 'only with --full-size');
    const fullSize = values['full-size'] ? fullSizeTarget(values) : null;
    if (values.setup) {
      const r = spawnSync('sh', ['-c', `apt-get update && ${SETUP}`], { stdio: 'inherit', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
      if (r.status !== 0) throw new RoutelabError('--setup', `\`${SETUP}\` failed (exit ${r.status}); run it as root`);
    }
    const be = new NativeBackend(values.threads === undefined ? {} : { threads: numberFlag(values, 'threads', 0, true) });
    const threads = be.threads;
    const python = findPython(values.python as string | undefined);
    const log = (line: string) => console.error(line);
    log(`bench: routelab backend native, ${threads} thread(s); references: ${python.exe ?? 'none'} (numpy ${python.numpy ? 'yes' : 'no'}, torch ${python.torch ? 'yes' : 'no'})`);
    if (!python.numpy) log(`bench: numpy not found — install the references with \`routelab bench cpu --setup\` or \`${SETUP}\``);

    // 1. GEMM
    const sizes = [64, 512, 4096];
    const gemm: Record<string, number> = {};
    const weight = be.weight({ name: 'w', dtype: 'BF16', shape: [GEMM_N, GEMM_K], data: randomBf16(GEMM_N * GEMM_K, 0.05, 1) });
    for (const n of sizes) {
      const x = be.upload(randomF32(n * GEMM_K, 2), n, GEMM_K);
      be.matmul(x, weight);
      let best = Infinity;
      for (let r = 0; r < 5; r++) {
        const t0 = performance.now();
        be.matmul(x, weight);
        best = Math.min(best, performance.now() - t0);
      }
      gemm[n] = (2 * n * GEMM_K * GEMM_N) / best / 1e6;
    }
    const gemmRss = peakRssMb();
    const env = { ...process.env, OMP_NUM_THREADS: String(threads), OPENBLAS_NUM_THREADS: String(threads) };
    const blas = python.numpy ? runPython(python.exe!, { mode: 'gemm', K: GEMM_K, N: GEMM_N, sizes, reps: 5 }, env) as { gflops: Record<string, number>; numpy: string } : null;
    const rows: string[][] = [['benchmark', 'routelab', 'reference', 'ratio']];
    for (const n of sizes) {
      const ref = blas?.gflops[n];
      rows.push([`GEMM n=${n} [n×${GEMM_K}]·[${GEMM_K}×${GEMM_N}] GFLOP/s`, gemm[n].toFixed(1), ref === undefined ? '-' : `${ref.toFixed(1)} (OpenBLAS f32)`, ref === undefined ? '-' : (gemm[n] / ref).toFixed(2)]);
    }

    // 2. Prefill
    const result: Record<string, unknown> = {
      backend: 'native', threads, gemm_gflops: round(gemm[4096]), openblas_gflops: blas ? round(blas.gflops[4096]) : null,
      gemm_ratio_vs_openblas: blas ? round(gemm[4096] / blas.gflops[4096], 3) : null,
      gemm_gflops_by_n: mapValues(gemm), openblas_gflops_by_n: blas ? mapValues(blas.gflops) : null, gemm_peak_rss_mb: round(gemmRss),
    };
    if (!values['gemm-only']) {
      const dir = mkdtempSync(join(tmpdir(), 'routelab-bench-'));
      try {
        log(`bench: writing the random OLMoE-shaped checkpoint (${BENCH_CONFIG.num_hidden_layers} layers, BF16) to ${dir}`);
        writeRandomCheckpoint(dir, BENCH_CONFIG);
        const model = MoeModel.load(Checkpoint.open(dir), be);
        await model.forward([[1, 2, 3, 4, 5, 6, 7, 8]]); // warm-up: fault the weights in
        const runs = [{ batch: 1, length: 512 }, { batch: 8, length: 512 }];
        const ours: { batch: number; length: number; tokensPerS: number; rss: number; logits: Float32Array; ids: string; logitsFile: string }[] = [];
        for (const run of runs) {
          const seqs = Array.from({ length: run.batch }, (_, b) => randomIds(run.length, BENCH_SHAPES['olmoe-1b-7b'].vocab_size, 1000 + b));
          const ids = join(dir, `ids-${run.batch}x${run.length}.bin`);
          writeFileSync(ids, Int32Array.from(seqs.flat()));
          const t0 = performance.now();
          const out = await model.forward(seqs);
          const seconds = (performance.now() - t0) / 1000;
          ours.push({ ...run, tokensPerS: (run.batch * run.length) / seconds, rss: peakRssMb(), logits: out.logits, ids, logitsFile: join(dir, `torch-${run.batch}x${run.length}.f32`) });
          log(`bench: routelab prefill ${run.batch}×${run.length}: ${seconds.toFixed(2)} s`);
        }
        let torch: TorchResult | null = null;
        if (python.torch) {
          log('bench: running the PyTorch reference (same weights, same ids)…');
          torch = runPython(python.exe!, {
            mode: 'prefill', threads, weights: dir, config: join(dir, 'config.json'),
            runs: ours.map((r) => ({ batch: r.batch, length: r.length, ids: r.ids, logits: r.logitsFile })),
          }, env) as TorchResult;
        } else {
          log(`bench: torch not found — prefill reference skipped; install with \`${SETUP}\``);
        }
        let maxDiff = 0;
        ours.forEach((r, i) => {
          const ref = torch?.runs[i].tokens_per_s;
          const diff = torch ? maxAbsDiffFile(r.logits, r.logitsFile) : NaN;
          maxDiff = Math.max(maxDiff, diff);
          rows.push([`prefill ${r.batch}×${r.length} tokens/s (max |Δlogits| ${torch ? diff.toExponential(1) : '-'})`, r.tokensPerS.toFixed(1), ref === undefined ? '-' : `${ref.toFixed(1)} (torch ${torch!.torch} f32)`, ref === undefined ? '-' : (r.tokensPerS / ref).toFixed(2)]);
        });
        const big = ours[ours.length - 1];
        Object.assign(result, {
          prefill_tokens_per_s: round(big.tokensPerS), torch_tokens_per_s: torch ? round(torch.runs[ours.length - 1].tokens_per_s) : null,
          prefill_ratio_vs_torch: torch ? round(big.tokensPerS / torch.runs[ours.length - 1].tokens_per_s, 3) : null,
          prefill_tokens_per_s_1x512: round(ours[0].tokensPerS), torch_tokens_per_s_1x512: torch ? round(torch.runs[0].tokens_per_s) : null,
          max_abs_diff: torch ? maxDiff : null, torch_threads: torch?.threads ?? null, torch_peak_rss_mb: torch ? round(torch.peak_rss_mb) : null,
          peak_rss_mb_1x512: round(ours[0].rss), peak_rss_mb_8x512: round(big.rss),
        });
      } finally {
        if (values.keep) log(`bench: kept ${dir}`);
        else rmSync(dir, { recursive: true, force: true });
      }
    }
    if (fullSize) Object.assign(result, fullSizeRun(fullSize.name, fullSize.config, values.dir as string | undefined, threads, Boolean(values.keep), rows, log));
    result.peak_rss_mb = round(peakRssMb());
    rows.push(['peak RSS MB (routelab, whole run)', String(result.peak_rss_mb), '', '']);
    rows.push(['threads', String(threads), '', '']);
    printTable(rows);
    console.log(JSON.stringify(result));
  },
};

/**
 * The memory check of a real model (OLMoE-1B-7B's 13.8 GB of BF16 weights must run in 24 GB): a random checkpoint at
 * its shapes, profiled in a child process so that its peak RSS is the model's alone, not this bench's. A model that
 * cannot fit in memory, or on the disk, is refused before anything is written.
 */
function fullSizeRun(name: string, config: Record<string, unknown>, dirFlag: string | undefined, threads: number, keep: boolean, rows: string[][], log: (line: string) => void): Record<string, number | string> {
  const bytes = checkpointBytes(config);
  const what = `${name} checkpoint (${(bytes / 1e9).toFixed(2)} GB of BF16)`;
  requireMemory(bytes, availableMemory(), `--full-size ${name}`);
  const dir = dirFlag ?? mkdtempSync(join(tmpdir(), 'routelab-bench-full-'));
  try {
    mkdirSync(dir, { recursive: true });
    const disk = statfsSync(dir);
    if (!holdsCheckpoint(dir, config) && disk.bavail * disk.bsize < bytes) {
      throw new RoutelabError(`--full-size ${name}`, `writing it needs ${(bytes / 1e9).toFixed(2)} GB on disk, ${dir} has ${(disk.bavail * disk.bsize / 1e9).toFixed(2)} GB free; pass --dir on a larger disk`);
    }
    if (holdsCheckpoint(dir, config)) log(`bench: reusing the ${what} in ${dir}`);
    else {
      log(`bench: writing the ${what} to ${dir}`);
      writeRandomCheckpoint(dir, config);
    }
    const out = join(dir, 'profile');
    const args = [CLI, 'profile', '--model', dir, '--backend', 'native', '--seq', '512', '--batch', '1', '--warmup', '1', '--runs', '1', '--out', out];
    const r = spawnSync(process.execPath, args, { stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, ROUTELAB_THREADS: String(threads) } });
    if (r.status !== 0) throw new RoutelabError('--full-size', `routelab profile on ${dir} failed (exit ${r.status ?? r.signal})`);
    const profile = JSON.parse(readFileSync(join(out, 'profile.json'), 'utf8')) as { peak_rss_mb: number; throughput: { tokens_per_second: number }[] };
    const tokensPerS = profile.throughput[0].tokens_per_second;
    rows.push([`${name} prefill 1×512 tokens/s`, tokensPerS.toFixed(1), '', '']);
    rows.push([`${name} peak RSS MB (child process)`, profile.peak_rss_mb.toFixed(0), '', '']);
    return {
      full_size_model: name, full_size_family: config.model_type as string, full_size_layers: config.num_hidden_layers as number,
      full_size_checkpoint_gb: round(bytes / 1e9, 2),
      full_size_prefill_tokens_per_s: round(tokensPerS), full_size_peak_rss_mb: round(profile.peak_rss_mb),
    };
  } finally {
    if (keep || dirFlag !== undefined) log(`bench: kept ${dir}`);
    else rmSync(dir, { recursive: true, force: true });
  }
}

interface TorchResult { runs: { tokens_per_s: number }[]; torch: string; threads: number; peak_rss_mb: number }
interface PythonInfo { exe: string | null; numpy: boolean; torch: boolean }

function findPython(explicit?: string): PythonInfo {
  let fallback: PythonInfo = { exe: null, numpy: false, torch: false };
  for (const exe of explicit ? [explicit] : ['python3', '/usr/bin/python3']) {
    const r = spawnSync(exe, ['-c', 'import numpy\ntry:\n import torch; print("torch")\nexcept Exception: print("numpy")'], { encoding: 'utf8' });
    if (r.status !== 0) continue;
    const info = { exe, numpy: true, torch: r.stdout.trim() === 'torch' };
    if (info.torch) return info;
    if (!fallback.exe) fallback = info;
  }
  return fallback;
}

function runPython(exe: string, request: Record<string, unknown>, env: NodeJS.ProcessEnv): unknown {
  const r = spawnSync(exe, [REFERENCE_SCRIPT, JSON.stringify({ ...request, threads: request.threads ?? Number(env.OMP_NUM_THREADS) })], { encoding: 'utf8', env, stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 1 << 24 });
  if (r.status !== 0) throw new RoutelabError('bench', `${exe} ${REFERENCE_SCRIPT} failed (exit ${r.status ?? r.signal})`);
  const lines = r.stdout.trim().split('\n');
  return JSON.parse(lines[lines.length - 1]);
}

function mapValues(o: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.entries(o).map(([k, v]) => [k, round(v)]));
}
