/**
 * `routelab bench gpu`: an OLMoE-1B-7B-shaped model (random BF16 weights at the real shapes) on the webgpu backend
 * against a PyTorch eager implementation of the Hugging Face OLMoE loop (bench/gpu_reference.py) on the same
 * checkpoint, the same GPU and the same token ids, in one process run:
 *   - prefill tokens/s at each `--batches` × `--seq` (last-position logits read back, as generation needs),
 *   - decode tokens/s at batch 1 with a KV cache after a `--seq` prompt (logits read back each step),
 *   - max |Δ| of the last-position logits against torch (bf16 — the HF model on a GPU — and float32),
 *   - achieved TFLOP/s from analytic FLOPs (2 × active parameters per token + causal attention) and the fraction
 *     of the GPU's dense bf16 peak.
 * Prints a table, then one JSON object as the LAST line. How to run it on the device machine: bench/GPU.md.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createWebGpuBackend } from '../backends/webgpu.js';
import { RoutelabError } from '../errors.js';
import { Checkpoint } from '../model/checkpoint.js';
import type { Architecture } from '../model/architecture.js';
import { MoeModel } from '../model/model.js';
import { flopsPerToken, type TensorSpec } from '../model/tensors.js';
import { benchConfig, benchShapeFlags, checkpointBytes, holdsCheckpoint, maxAbsDiffFile, peakRssMb, printTable, randomIds, round, writeRandomCheckpoint } from './bench-common.js';
import { numberFlag } from './command.js';

const REFERENCE_SCRIPT = fileURLToPath(new URL('../../../bench/gpu_reference.py', import.meta.url));

/** Dense (no sparsity) bf16 tensor-core peaks, TFLOP/s, from the vendors' data sheets; first match wins. */
const PEAKS: readonly [RegExp, number, string][] = [
  [/H200/i, 989, 'H200'],
  [/H100.*PCIe/i, 756, 'H100 PCIe'],
  [/H100.*NVL/i, 835, 'H100 NVL'],
  [/H100/i, 989, 'H100 SXM'],
  [/A100/i, 312, 'A100'],
  [/\bL4\b/, 121, 'L4'],
];

export const BENCH_GPU_OPTIONS = {
  shape: { type: 'string' },
  layers: { type: 'string' },
  batches: { type: 'string' },
  seq: { type: 'string' },
  'decode-tokens': { type: 'string' },
  reps: { type: 'string' },
  'peak-tflops': { type: 'string' },
  'no-torch': { type: 'boolean' },
  device: { type: 'string' },
  'torch-dtypes': { type: 'string' },
  python: { type: 'string' },
  dir: { type: 'string' },
  keep: { type: 'boolean' },
} as const;

export const BENCH_GPU_USAGE = `Usage: routelab bench gpu [--shape olmoe-1b-7b|small] [--layers N] [--batches 1,8] [--seq 512] [--decode-tokens 32]
                         [--reps 3] [--peak-tflops X] [--no-torch] [--device cuda|cpu] [--torch-dtypes bf16,f32]
                         [--python PY] [--dir DIR] [--keep]

  routelab's webgpu backend vs a PyTorch eager Hugging Face OLMoE loop on the same random-weight checkpoint.
  --shape S          olmoe-1b-7b (default; 13.8 GB of BF16 at 16 layers) or small (hidden 256, 8 experts of 128,
                     vocab 4096: for software adapters)
  --layers N         decoder layers (default: the shape's, 16 / 4)
  --batches LIST     prefill batch sizes, each of --seq tokens (default 1,8); the last is the headline
  --seq N            prefill length, and the decode prompt's (default 512)
  --decode-tokens N  tokens decoded at batch 1 with a KV cache (default 32; 0 skips decode)
  --reps N           timed repetitions after one warm-up, best kept (default 3)
  --peak-tflops X    the GPU's dense bf16 peak for fraction_of_peak (default: from the adapter / torch device name:
                     ${PEAKS.map(([, t, n]) => `${n} ${t}`).join(', ')}; else none)
  --no-torch         skip the PyTorch reference
  --device D         torch device: cuda or cpu (default cuda when torch sees one, else cpu)
  --torch-dtypes L   torch compute dtypes, the first is the ratio's (default bf16,f32)
  --python PY        Python with torch (default: the first of python3, /usr/bin/python3 that imports it)
  --dir DIR          write the checkpoint here (reused when it already holds this shape) instead of a temp dir
  --keep             keep the temporary checkpoint and logits files`;

interface BenchConfig { B: number; S: number }
interface OurRun { batch: number; length: number; seconds: number; tokensPerS: number; logits: Float32Array; ids: string }
interface TorchDtypeResult {
  dtype: string;
  runs: { batch: number; length: number; seconds: number; tokens_per_s: number; logits: string }[];
  decode: { tokens: number; seconds: number; tokens_per_s: number; logits: string } | null;
  peak_gpu_mem_mb: number | null;
}
interface TorchResult { torch: string; device: string; device_name: string; results: TorchDtypeResult[]; peak_rss_mb: number; threads: number }
interface Probe { exe: string; torch: string; cuda: boolean; device_name: string | null }

export async function runBenchGpu(values: Record<string, unknown>, positionals: readonly string[]): Promise<void> {
  if (positionals.length !== 1 || positionals[0] !== 'gpu') throw new RoutelabError('routelab bench', `expected \`routelab bench gpu\`, got ${JSON.stringify(positionals.join(' '))}`);
  const { shape: shapeName, layers } = benchShapeFlags(values);
  const seq = numberFlag(values, 'seq', 512, true);
  const decodeTokens = numberFlag(values, 'decode-tokens', 32, true);
  const reps = numberFlag(values, 'reps', 3, true);
  const batches = ((values.batches as string | undefined) ?? '1,8').split(',').map((s) => {
    const n = Number(s.trim());
    if (!Number.isInteger(n) || n < 1) throw new RoutelabError('--batches', `expected positive integers separated by commas, got ${JSON.stringify(values.batches)}`);
    return n;
  });
  if (layers < 1 || seq < 1 || decodeTokens < 0 || reps < 1) throw new RoutelabError('routelab bench gpu', '--layers, --seq and --reps must be ≥ 1, --decode-tokens ≥ 0');
  const peakFlag = values['peak-tflops'] === undefined ? null : numberFlag(values, 'peak-tflops', 0);
  const dtypes = ((values['torch-dtypes'] as string | undefined) ?? 'bf16,f32').split(',').map((s) => s.trim());
  for (const d of dtypes) if (d !== 'bf16' && d !== 'f32') throw new RoutelabError('--torch-dtypes', `expected bf16 and/or f32, got ${JSON.stringify(d)}`);
  const device = values.device as string | undefined;
  if (device !== undefined && device !== 'cuda' && device !== 'cpu') throw new RoutelabError('--device', `expected cuda or cpu, got ${JSON.stringify(device)}`);
  const log = (line: string) => console.error(line);

  const config = benchConfig(shapeName, layers);
  if (seq + decodeTokens > (config.max_position_embeddings as number)) throw new RoutelabError('--seq', `--seq + --decode-tokens exceeds max_position_embeddings ${config.max_position_embeddings}`);

  // The adapter first: no point writing 13.8 GB without one.
  const be = await createWebGpuBackend();
  const adapter = be.adapterName;
  log(`bench gpu: webgpu adapter ${adapter}; shape ${shapeName}, ${layers} layer(s), batches ${batches.join(',')} × ${seq}, decode ${decodeTokens}`);
  let probe: Probe | null = null;
  if (!values['no-torch']) {
    probe = probeTorch(values.python as string | undefined);
    if (!probe) log('bench gpu: no python with torch found (looked at --python, python3, /usr/bin/python3) — torch reference skipped');
    else log(`bench gpu: torch ${probe.torch} at ${probe.exe}, cuda ${probe.cuda ? `yes (${probe.device_name})` : 'no'}`);
  }
  const torchDevice = device ?? (probe?.cuda ? 'cuda' : 'cpu');
  if (probe && torchDevice === 'cuda' && !probe.cuda) throw new RoutelabError('--device', `torch at ${probe.exe} sees no CUDA device; pass --device cpu or --no-torch`);

  const ownDir = values.dir === undefined;
  const dir = ownDir ? mkdtempSync(join(tmpdir(), 'routelab-bench-gpu-')) : (values.dir as string);
  const result: Record<string, unknown> = {};
  const rows: string[][] = [['benchmark', 'routelab', 'torch eager', 'ratio']];
  try {
    mkdirSync(dir, { recursive: true });
    const t0 = performance.now();
    if (holdsCheckpoint(dir, config)) log(`bench gpu: reusing the checkpoint in ${dir}`);
    else {
      log(`bench gpu: writing the random checkpoint (${layers} layers, BF16, ${(checkpointBytes(config) / 1e9).toFixed(2)} GB) to ${dir}`);
      writeRandomCheckpoint(dir, config);
    }
    const tWrite = (performance.now() - t0) / 1000;
    const t1 = performance.now();
    const model = MoeModel.load(Checkpoint.open(dir), be);
    await model.forward([[1, 2, 3, 4, 5, 6, 7, 8]], { logits: 'last' }); // pipelines compiled, weights resident
    const tLoad = (performance.now() - t1) / 1000;
    log(`bench gpu: checkpoint ${tWrite.toFixed(1)} s, routelab load + first forward ${tLoad.toFixed(1)} s`);
    const c = model.architecture;

    // Prefill: one warm-up at each shape (buffer pool sized), then the best of --reps.
    const configs: BenchConfig[] = batches.map((B) => ({ B, S: seq }));
    const ours: OurRun[] = [];
    for (const { B, S } of configs) {
      const seqs = Array.from({ length: B }, (_, b) => randomIds(S, c.vocabSize, 1000 + b));
      const ids = join(dir, `ids-${B}x${S}.bin`);
      writeFileSync(ids, Int32Array.from(seqs.flat()));
      let logits = (await model.forward(seqs, { logits: 'last' })).logits;
      let best = Infinity;
      for (let r = 0; r < reps; r++) {
        const t = performance.now();
        logits = (await model.forward(seqs, { logits: 'last' })).logits;
        best = Math.min(best, (performance.now() - t) / 1000);
      }
      ours.push({ batch: B, length: S, seconds: best, tokensPerS: (B * S) / best, logits, ids });
      log(`bench gpu: routelab prefill ${B}×${S}: ${(best * 1000).toFixed(1)} ms`);
    }

    // Decode at batch 1: prefill the 1×seq prompt into a cache (untimed), then one token at a time (fixed ids, so
    // both sides do the same work), each step's logits read back.
    const prompt = randomIds(seq, c.vocabSize, 1000);
    const decodeIds = randomIds(decodeTokens, c.vocabSize, 77);
    writeFileSync(join(dir, 'decode-prompt.bin'), Int32Array.from(prompt));
    writeFileSync(join(dir, 'decode-ids.bin'), Int32Array.from(decodeIds));
    let decode: { seconds: number; tokensPerS: number; logits: Float32Array } | null = null;
    if (decodeTokens > 0) {
      const warm = model.createCache(1, 8);
      await model.forward([[1, 2, 3, 4]], { cache: warm, logits: 'last' });
      for (const id of [5, 6]) await model.forward([[id]], { cache: warm, logits: 'last' });
      const cache = model.createCache(1, seq + decodeTokens);
      await model.forward([prompt], { cache, logits: 'last' });
      let logits: Float32Array = new Float32Array(0);
      const t = performance.now();
      for (const id of decodeIds) logits = (await model.forward([[id]], { cache, logits: 'last' })).logits;
      const seconds = (performance.now() - t) / 1000;
      decode = { seconds, tokensPerS: decodeTokens / seconds, logits };
      log(`bench gpu: routelab decode ${decodeTokens} tokens: ${(seconds * 1000).toFixed(1)} ms`);
    }
    const rss = peakRssMb();
    be.destroy(); // give the GPU's memory to torch

    // The torch reference, in a child process on the same files.
    let torch: TorchResult | null = null;
    if (probe) {
      log(`bench gpu: running the PyTorch eager reference on ${torchDevice} (${dtypes.join(', ')})…`);
      torch = runReference(probe.exe, {
        weights: dir, device: torchDevice, dtypes, reps,
        runs: ours.map((r) => ({ batch: r.batch, length: r.length, ids: r.ids })),
        decode: decodeTokens > 0 ? { prompt: join(dir, 'decode-prompt.bin'), ids: join(dir, 'decode-ids.bin') } : null,
        out: dir,
      });
    }

    const peakSource = peakFlag !== null ? { tflops: peakFlag, from: '--peak-tflops' } : detectPeak([adapter, torch?.device_name ?? probe?.device_name ?? '']);
    if (!peakSource) log(`bench gpu: the GPU's bf16 peak is not known for "${adapter}" — fraction_of_peak is null; pass --peak-tflops`);
    const peak = peakSource?.tflops ?? null;
    const main = torch?.results[0] ?? null;
    const perConfig = ours.map((r, i) => {
      const flops = prefillFlops(c, model.tensors, r.batch, r.length);
      const tf = flops / r.seconds / 1e12;
      const byDtype = Object.fromEntries((torch?.results ?? []).map((d) => {
        const tr = d.runs[i];
        return [d.dtype, { tokens_per_s: round(tr.tokens_per_s), achieved_tflops: sig(flops / tr.seconds / 1e12), max_abs_diff: maxAbsDiffFile(r.logits, tr.logits) }];
      }));
      return {
        batch: r.batch, seq: r.length, seconds: round(r.seconds, 4), prefill_tokens_per_s: round(r.tokensPerS), flops, achieved_tflops: sig(tf),
        fraction_of_peak: peak ? sig(tf / peak) : null, torch: byDtype,
        prefill_ratio_vs_torch_eager: main ? round(r.tokensPerS / main.runs[i].tokens_per_s, 3) : null,
      };
    });
    for (const p of perConfig) {
      const ref = main ? p.torch[main.dtype] : null;
      const diffs = Object.entries(p.torch).map(([d, v]) => `${d} ${(v as { max_abs_diff: number }).max_abs_diff.toExponential(1)}`).join(', ');
      rows.push([`prefill ${p.batch}×${p.seq} tokens/s${diffs ? ` (max |Δlogits| ${diffs})` : ''}`, p.prefill_tokens_per_s.toFixed(1), ref ? `${ref.tokens_per_s.toFixed(1)} (${main!.dtype})` : '-', p.prefill_ratio_vs_torch_eager?.toFixed(2) ?? '-']);
      rows.push([`prefill ${p.batch}×${p.seq} TFLOP/s${peak ? ` (of ${peak} peak)` : ''}`, `${p.achieved_tflops}${p.fraction_of_peak !== null ? ` (${(p.fraction_of_peak * 100).toPrecision(3)}%)` : ''}`, ref ? String(ref.achieved_tflops) : '-', '']);
    }
    for (const d of torch?.results.slice(1) ?? []) {
      perConfig.forEach((p, i) => rows.push([`  torch ${d.dtype} prefill ${p.batch}×${p.seq} tokens/s`, '', d.runs[i].tokens_per_s.toFixed(1), (ours[i].tokensPerS / d.runs[i].tokens_per_s).toFixed(2)]));
    }
    const decodeDiffs = decode ? Object.fromEntries((torch?.results ?? []).filter((d) => d.decode).map((d) => [d.dtype, maxAbsDiffFile(decode!.logits, d.decode!.logits)])) : {};
    if (decode) {
      const ref = main?.decode;
      rows.push([`decode 1×${decodeTokens} after ${seq} tokens/s`, decode.tokensPerS.toFixed(2), ref ? `${ref.tokens_per_s.toFixed(2)} (${main!.dtype})` : '-', ref ? (decode.tokensPerS / ref.tokens_per_s).toFixed(2) : '-']);
    }
    const head = perConfig[perConfig.length - 1];
    const headDiffs = Object.fromEntries(Object.entries(head.torch).map(([d, v]) => [d, (v as { max_abs_diff: number }).max_abs_diff]));
    Object.assign(result, {
      bench: 'gpu', backend: 'webgpu', adapter, shape: shapeName, layers, seq, batches, reps, decode_tokens: decodeTokens,
      prefill_config: `${head.batch}x${head.seq}`,
      prefill_tokens_per_s: head.prefill_tokens_per_s,
      torch_tokens_per_s: main ? round(main.runs[perConfig.length - 1].tokens_per_s) : null,
      prefill_ratio_vs_torch_eager: head.prefill_ratio_vs_torch_eager,
      decode_tokens_per_s: decode ? round(decode.tokensPerS, 3) : null,
      torch_decode_tokens_per_s: main?.decode ? round(main.decode.tokens_per_s, 3) : null,
      decode_ratio_vs_torch_eager: decode && main?.decode ? round(decode.tokensPerS / main.decode.tokens_per_s, 3) : null,
      achieved_tflops: head.achieved_tflops,
      torch_achieved_tflops: main ? head.torch[main.dtype].achieved_tflops : null,
      peak_tflops: peak, peak_tflops_from: peakSource?.from ?? null,
      fraction_of_peak: head.fraction_of_peak,
      max_abs_diff: main ? headDiffs[main.dtype] : null,
      max_abs_diff_by_dtype: torch ? headDiffs : null,
      decode_max_abs_diff_by_dtype: torch && decode ? decodeDiffs : null,
      torch_dtype: main?.dtype ?? null, torch_device: torch?.device ?? null, torch_device_name: torch?.device_name ?? null, torch_version: torch?.torch ?? null,
      torch_peak_gpu_mem_mb: torch ? Object.fromEntries(torch.results.map((d) => [d.dtype, d.peak_gpu_mem_mb])) : null,
      torch_peak_rss_mb: torch ? round(torch.peak_rss_mb) : null,
      configs: perConfig, checkpoint_write_s: round(tWrite, 2), routelab_load_s: round(tLoad, 2), peak_rss_mb: round(rss),
    });
    rows.push(['peak RSS MB (routelab process)', String(result.peak_rss_mb), torch ? `${round(torch.peak_rss_mb)}` : '', '']);
    rows.push(['bf16 peak TFLOP/s', peak === null ? 'unknown' : `${peak} (${peakSource!.from})`, '', '']);
    rows.push(['adapter', adapter, torch ? `${torch.device_name} (torch ${torch.torch})` : '', '']);
  } finally {
    if (values.keep || !ownDir) log(`bench gpu: kept ${dir}`);
    else rmSync(dir, { recursive: true, force: true });
    be.destroy();
  }
  printTable(rows);
  console.log(JSON.stringify(result));
}

/**
 * Analytic prefill FLOPs of B sequences of S tokens, from the model's declared tensors (flopsPerToken): every
 * token's projections and k experts, causal attention over 1…S keys, lm_head on the last position only.
 */
export function prefillFlops(a: Architecture, specs: readonly TensorSpec[], B: number, S: number): number {
  const lmHead = 2 * a.vocabSize * a.hiddenSize;
  const perToken = flopsPerToken(a, specs, a.moe.numExpertsPerTok, 0) - lmHead;
  const attention = flopsPerToken(a, specs, a.moe.numExpertsPerTok, 1) - lmHead - perToken; // per key of context
  return B * (S * perToken + (attention * S * (S + 1)) / 2 + lmHead);
}

function detectPeak(names: readonly string[]): { tflops: number; from: string } | null {
  for (const name of names) {
    for (const [re, tflops, label] of PEAKS) if (re.test(name)) return { tflops, from: `${label} (from "${name}")` };
  }
  return null;
}

function probeTorch(explicit?: string): Probe | null {
  const code = 'import json, torch\nc = torch.cuda.is_available()\nprint(json.dumps({"torch": torch.__version__, "cuda": c, "device_name": torch.cuda.get_device_name(0) if c else None}))';
  for (const exe of explicit ? [explicit] : ['python3', '/usr/bin/python3']) {
    const r = spawnSync(exe, ['-c', code], { encoding: 'utf8' });
    if (r.status !== 0) continue;
    try {
      const lines = r.stdout.trim().split('\n');
      return { exe, ...(JSON.parse(lines[lines.length - 1]) as Omit<Probe, 'exe'>) };
    } catch {
      continue;
    }
  }
  return null;
}

function runReference(exe: string, request: Record<string, unknown>): TorchResult {
  const r = spawnSync(exe, [REFERENCE_SCRIPT, JSON.stringify(request)], { encoding: 'utf8', env: { ...process.env, PYTHONUNBUFFERED: '1' }, stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 1 << 24 });
  if (r.status !== 0) throw new RoutelabError('bench gpu', `${exe} ${REFERENCE_SCRIPT} failed (exit ${r.status ?? r.signal})`);
  const lines = r.stdout.trim().split('\n');
  return JSON.parse(lines[lines.length - 1]) as TorchResult;
}

function sig(x: number, digits = 4): number { return Number(x.toPrecision(digits)); }
