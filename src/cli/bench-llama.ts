import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { RoutelabError } from '../errors.js';
import { generate } from '../generate.js';
import { loadNativeKernels } from '../backends/native.js';
import { loadModel } from '../load.js';
import { Checkpoint } from '../model/checkpoint.js';
import { writeGguf } from '../model/gguf.js';
import type { MoeModel } from '../model/model.js';
import { requireTokenizer, type TextTokenizer } from '../model/tokenizer.js';
import { greedy } from '../sampling.js';
import { BUNDLED_MODEL, peakRssMb, printTable, round } from './bench-common.js';
import { numberFlag } from './command.js';

/**
 * `routelab bench cpu --llama-cpp DIR`: routelab and a llama.cpp build of the user's on the same model, in one run.
 * The model is converted with llama.cpp's own converter (F32 and BF16); llama-perplexity on both and routelab, under
 * llama-perplexity's definition on the same text, show the three compute the same function; then interleaved rounds
 * time decode (128 new tokens at batch 1), prefill (128, 512 and 2048 tokens) and batched scoring (8 chunks of 512
 * tokens in one batch, llama-perplexity's own workload) on each, at the same thread count.
 */
export const BENCH_LLAMA_USAGE = `Usage: routelab bench cpu --llama-cpp DIR [--model DIR] [--convert FILE | --gguf F32.gguf,BF16.gguf]
                          [--python PY] [--text FILE] [--rounds 3] [--threads N] [--keep]

  routelab against llama.cpp: DIR is a llama.cpp build (llama-bench and llama-perplexity in DIR or DIR/bin).
  --model (default the bundled model) is written as GGUF at F32 and BF16 by routelab itself (OLMoE), or by
  llama.cpp's convert_hf_to_gguf.py (--convert FILE, or found in DIR or a folder above it for other families) run
  with --python (default python3, which needs the converter's torch, transformers and gguf), unless --gguf names
  the two files already converted. The perplexities of both GGUFs (llama-perplexity -c 128 --chunks 8
  on --text, default the bundled data/train-text) and routelab's under the same definition are compared; --rounds
  interleaved rounds then time decode (llama-bench -p 0 -n 128 against generate's loop after its first token),
  prefill of 128, 512 and 2048 tokens (llama-bench -p N -n 0 against one forward pass) and batched scoring
  (llama-perplexity -c 512 --chunks 8 -b 4096, its total less its load and warm-up time, against the same 8 chunks
  scored in one forward pass; its perplexity is checked too), each in wall-clock and CPU time (llama.cpp's CPU time
  is its process's less that of a run of one repetition or chunk), and record each process's peak RSS. A table of
  medians and routelab / llama.cpp ratios, then one JSON object as the last line; --keep keeps the GGUF files.`;

export const BENCH_LLAMA_OPTIONS = {
  'llama-cpp': { type: 'string' },
  convert: { type: 'string' },
  gguf: { type: 'string' },
  text: { type: 'string' },
} as const;

const BUNDLED_TEXT = fileURLToPath(new URL('../../../data/train-text/gutenberg_en_10.txt', import.meta.url));
const PPL_CONTEXT = 128;
const PPL_CHUNKS = 8;
const DECODE_TOKENS = 128;
const PREFILLS = [128, 512, 2048] as const;
/** Batched scoring: llama-perplexity's chunks of SCORE_CONTEXT tokens, SCORE_CHUNKS of them in one batch. */
const SCORE_CONTEXT = 512;
const SCORE_CHUNKS = 8;
/** |Δ ln ppl| below which two perplexities count as the same function on the same tokens. */
const PPL_TOLERANCE = 1e-3;

interface Measured {
  readonly stdout: string;
  readonly stderr: string;
  readonly peakRssMb: number | null;
  /** The child's CPU seconds (user + system), null without the native addon's getrusage. */
  readonly cpuSeconds: number | null;
}

/**
 * The timed workloads: decode, one prefill per length, and batched scoring (SCORE_CHUNKS × SCORE_CONTEXT tokens, each
 * chunk's second half scored), each as tokens per wall-clock second and per CPU second (null where not measured).
 */
const WORKLOADS = ['decode', ...PREFILLS.map((p) => `prefill_${p}` as const), 'scoring'] as const;
type Workload = (typeof WORKLOADS)[number];

interface Timing {
  wall: Record<Workload, number>;
  cpu: Record<Workload, number | null>;
  peakRssMb: number | null;
}

/** One perplexity under llama-perplexity's definition, and the seconds its chunks took. */
interface Scored {
  readonly ppl: number;
  readonly seconds: number;
}

export async function runBenchLlamaCpp(values: Record<string, unknown>): Promise<void> {
  const dir = values['llama-cpp'] as string;
  const bench = findFile('--llama-cpp', 'llama-bench', [dir, join(dir, 'bin')]);
  const perplexity = findFile('--llama-cpp', 'llama-perplexity', [dir, join(dir, 'bin')]);
  const rounds = numberFlag(values, 'rounds', 3, true);
  if (rounds < 1) throw new RoutelabError('--rounds', `expected a positive integer, got ${rounds}`);
  const text = (values.text as string | undefined) ?? BUNDLED_TEXT;
  if (!existsSync(text)) throw new RoutelabError('--text', `${text} does not exist`);
  const modelDir = (values.model as string | undefined) ?? BUNDLED_MODEL;
  const { model, tokenizer } = await loadModel(modelDir, values.threads === undefined ? {} : { threads: numberFlag(values, 'threads', 0, true) });
  const tok = requireTokenizer(tokenizer, modelDir);
  const threads = model.backend.threads ?? 1;
  const log = (line: string) => console.error(line);
  log(`bench: routelab backend ${model.backend.name}, ${threads} thread(s); llama.cpp ${bench}`);

  const work = mkdtempSync(join(tmpdir(), 'routelab-llama-'));
  try {
    if (values.gguf !== undefined && values.convert !== undefined) throw new RoutelabError('--gguf', 'converted files or a converter (--convert), not both');
    // Converted files as given; else llama.cpp's converter when asked for, or when routelab cannot write the family.
    const ownWriter = values.convert === undefined && Checkpoint.readArchitecture(modelDir).family.gguf !== undefined;
    const gguf = values.gguf !== undefined ? splitGguf(values.gguf as string) : ownWriter ? writeOwn(modelDir, work, log) : convert(
      (values.convert as string | undefined) ?? findFile('--llama-cpp', 'convert_hf_to_gguf.py', [dir, dirname(dir), dirname(dirname(dir))]),
      modelDir, work, (values.python as string | undefined) ?? 'python3', log,
    );

    // Same function: llama.cpp's perplexity of both conversions and routelab's, on the same text and definition.
    // The text is cut to what the batched scoring needs, so that llama-perplexity's timing tokenizes no more.
    const ids = tok.encode(readFileSync(text, 'utf8'));
    const needed = SCORE_CONTEXT * SCORE_CHUNKS;
    if (ids.length < needed + 16) throw new RoutelabError('--text', `${ids.length} tokens; the batched scoring needs ${needed + 16}`);
    const scoreText = join(work, 'text.txt');
    writeFileSync(scoreText, tok.decode(ids.subarray(0, needed + 16)));
    const ppl = {
      routelab: (await routelabPerplexity(model, ids, PPL_CONTEXT, PPL_CHUNKS, 1)).ppl,
      f32: (await llamaPerplexity(perplexity, gguf.f32, scoreText, PPL_CONTEXT, PPL_CHUNKS, PPL_CONTEXT, threads)).ppl,
      bf16: (await llamaPerplexity(perplexity, gguf.bf16, scoreText, PPL_CONTEXT, PPL_CHUNKS, PPL_CONTEXT, threads)).ppl,
    };
    const lnDiff = (a: number, b: number) => Math.abs(Math.log(a) - Math.log(b));
    const agree = lnDiff(ppl.f32, ppl.bf16) <= PPL_TOLERANCE && lnDiff(ppl.routelab, ppl.f32) <= PPL_TOLERANCE;
    log(`bench: perplexity (-c ${PPL_CONTEXT} --chunks ${PPL_CHUNKS}): routelab ${ppl.routelab.toFixed(4)}, llama.cpp F32 ${ppl.f32.toFixed(4)}, BF16 ${ppl.bf16.toFixed(4)}${agree ? '' : ' — they disagree: the timings below may not compare the same computation'}`);

    // Interleaved rounds: every variant once per round, in alternating order, so load changes hit all alike.
    const variants = ['routelab', 'f32', 'bf16'] as const;
    const timings: Record<(typeof variants)[number], Timing[]> = { routelab: [], f32: [], bf16: [] };
    const scored: Record<(typeof variants)[number], number[]> = { routelab: [], f32: [], bf16: [] };
    await routelabTiming(model, tok, ids); // warm-up: fault the weights in
    for (let r = 0; r < rounds; r++) {
      for (const v of r % 2 === 0 ? variants : [...variants].reverse()) {
        const t = v === 'routelab' ? await routelabTiming(model, tok, ids) : await llamaTiming(bench, perplexity, gguf[v], scoreText, threads);
        timings[v].push(t.timing);
        scored[v].push(t.scoringPpl);
      }
      log(`bench: round ${r + 1}/${rounds}: decode tokens/s routelab ${timings.routelab[r].wall.decode.toFixed(0)}, F32 ${timings.f32[r].wall.decode.toFixed(0)}, BF16 ${timings.bf16[r].wall.decode.toFixed(0)}`);
    }
    type Variant = (typeof variants)[number];
    const medianOf = (v: Variant, pick: (t: Timing) => number | null) => medianOrNull(timings[v].map(pick));
    // The batched scoring computes a perplexity too (-c 512): a second check that the three agree.
    const scoringPpl = Object.fromEntries(variants.map((v) => [v, scored[v][0]])) as Record<(typeof variants)[number], number>;
    const scoringAgree = lnDiff(scoringPpl.f32, scoringPpl.bf16) <= PPL_TOLERANCE && lnDiff(scoringPpl.routelab, scoringPpl.f32) <= PPL_TOLERANCE;
    log(`bench: perplexity (-c ${SCORE_CONTEXT} --chunks ${SCORE_CHUNKS}, batched): routelab ${scoringPpl.routelab.toFixed(4)}, llama.cpp F32 ${scoringPpl.f32.toFixed(4)}, BF16 ${scoringPpl.bf16.toFixed(4)}${scoringAgree ? '' : ' — they disagree'}`);

    const ratio = (a: number | null, b: number | null) => (a === null || b === null ? null : round(a / b, 3));
    const label: Record<Workload, string> = {
      decode: `decode (batch 1, ${DECODE_TOKENS} tokens)`,
      ...Object.fromEntries(PREFILLS.map((p) => [`prefill_${p}`, `prefill ${p}`])) as Record<`prefill_${(typeof PREFILLS)[number]}`, string>,
      scoring: `batched scoring (${SCORE_CHUNKS} × ${SCORE_CONTEXT})`,
    };
    // Medians over rounds, wall-clock then CPU, and the peak RSS.
    const metrics: { name: string; key: string; get: (v: Variant) => number | null }[] = [
      ...WORKLOADS.map((w) => ({ name: `${label[w]} tokens/s`, key: w, get: (v: Variant) => medianOf(v, (t) => t.wall[w]) })),
      ...WORKLOADS.map((w) => ({ name: `${label[w]} tokens/CPU-s`, key: `${w}_cpu`, get: (v: Variant) => medianOf(v, (t) => t.cpu[w]) })),
      { name: 'peak RSS MB', key: 'peak_rss_mb', get: (v: Variant) => (v === 'routelab' ? peakRssMb() : maxOrNull(timings[v].map((t) => t.peakRssMb))) },
    ];
    const cell = (x: number | null, digits = 1) => (x === null ? '-' : x.toFixed(digits));
    printTable([
      ['median of rounds', 'routelab', 'llama.cpp F32', 'llama.cpp BF16', 'ratio F32', 'ratio BF16'],
      ...metrics.map((m) => [m.name, cell(m.get('routelab')), cell(m.get('f32')), cell(m.get('bf16')),
        cell(ratio(m.get('routelab'), m.get('f32')), 2), cell(ratio(m.get('routelab'), m.get('bf16')), 2)]),
    ]);
    console.log(JSON.stringify({
      bench: 'llama-cpp', threads, rounds, model: modelDir,
      perplexity: { context: PPL_CONTEXT, chunks: PPL_CHUNKS, routelab: ppl.routelab, f32: ppl.f32, bf16: ppl.bf16, agree },
      scoring_perplexity: { context: SCORE_CONTEXT, chunks: SCORE_CHUNKS, ...scoringPpl, agree: scoringAgree },
      routelab: Object.fromEntries(metrics.map((m) => [m.key, m.get('routelab')])),
      llama_f32: Object.fromEntries(metrics.map((m) => [m.key, m.get('f32')])),
      llama_bf16: Object.fromEntries(metrics.map((m) => [m.key, m.get('bf16')])),
      ratio_f32: Object.fromEntries(metrics.map((m) => [m.key, ratio(m.get('routelab'), m.get('f32'))])),
      ratio_bf16: Object.fromEntries(metrics.map((m) => [m.key, ratio(m.get('routelab'), m.get('bf16'))])),
    }));
  } finally {
    if (values.keep) log(`bench: kept ${work} (the GGUF files and the scored text)`);
    else rmSync(work, { recursive: true, force: true });
  }
}

function findFile(flag: string, name: string, dirs: readonly string[]): string {
  const found = dirs.map((d) => join(d, name)).find((p) => existsSync(p));
  if (!found) throw new RoutelabError(flag, `no ${name} in ${dirs.join(' or ')}`);
  return found;
}

function splitGguf(spec: string): { f32: string; bf16: string } {
  const [f32, bf16, ...rest] = spec.split(',');
  if (!f32 || !bf16 || rest.length) throw new RoutelabError('--gguf', `expected F32.gguf,BF16.gguf, got ${JSON.stringify(spec)}`);
  for (const f of [f32, bf16]) if (!existsSync(f)) throw new RoutelabError('--gguf', `${f} does not exist`);
  return { f32, bf16 };
}

/** The model at F32 and BF16 by routelab's own GGUF writer (src/model/gguf.ts). */
function writeOwn(modelDir: string, work: string, log: (line: string) => void): { f32: string; bf16: string } {
  const out = { f32: join(work, 'model-f32.gguf'), bf16: join(work, 'model-bf16.gguf') };
  for (const [type, file] of [['F32', out.f32], ['BF16', out.bf16]] as const) {
    log(`bench: writing ${modelDir} as ${type} GGUF`);
    writeGguf(modelDir, file, type);
  }
  return out;
}

/** The model at F32 and BF16 by llama.cpp's converter (found beside or above the build folder: it usually sits in the source tree). */
function convert(script: string, modelDir: string, work: string, python: string, log: (line: string) => void): { f32: string; bf16: string } {
  if (!existsSync(script)) throw new RoutelabError('--convert', `${script} does not exist`);
  const out = { f32: join(work, 'model-f32.gguf'), bf16: join(work, 'model-bf16.gguf') };
  for (const [type, file] of Object.entries(out)) {
    log(`bench: converting ${modelDir} to ${type.toUpperCase()} GGUF with ${script}`);
    const r = spawnSync(python, [script, modelDir, '--outtype', type, '--outfile', file], { encoding: 'utf8' });
    if (r.status !== 0) {
      const tail = `${r.stderr ?? ''}${r.error?.message ?? ''}`.trim().split('\n').slice(-3).join(' | ');
      throw new RoutelabError('--llama-cpp', `${python} ${script} failed (exit ${r.status}): ${tail}; it needs torch, transformers and gguf (or pass --python, or --gguf with converted files)`);
    }
  }
  return out;
}

/**
 * llama-perplexity's estimate, and the seconds its chunks took: its own `total time` less its `load time` (which runs
 * to the end of the warm-up evaluation), so start-up, model loading and warm-up are not counted.
 */
async function llamaPerplexity(exe: string, gguf: string, text: string, context: number, chunks: number, batch: number,
                               threads: number): Promise<Scored & Measured> {
  const run = await runMeasured(exe, ['-m', gguf, '-f', text, '-c', String(context), '--chunks', String(chunks), '-b', String(batch), '-t', String(threads)]);
  const output = `${run.stdout}\n${run.stderr}`;
  const found = /Final estimate: PPL = ([0-9.]+)/.exec(output);
  const total = /total time =\s*([0-9.]+) ms/.exec(output);
  const load = /load time =\s*([0-9.]+) ms/.exec(output);
  if (!found || !total || !load) {
    throw new RoutelabError('--llama-cpp', `llama-perplexity on ${gguf} printed no estimate and times: ${output.trim().split('\n').slice(-2).join(' | ')}`);
  }
  return { ...run, ppl: Number(found[1]), seconds: (Number(total[1]) - Number(load[1])) / 1000 };
}

/**
 * llama-perplexity's definition: consecutive chunks of `context` tokens of the tokenized text (no BOS), each scored
 * on its second half (positions first … n−2 predicting the next token), exp of the mean negative log-likelihood.
 * `perBatch` chunks go through each forward pass, as llama-perplexity packs n_batch / n_ctx of them; the seconds are
 * those of the forward passes.
 */
async function routelabPerplexity(model: MoeModel, ids: Int32Array, context: number, chunks: number, perBatch: number): Promise<Scored> {
  const first = context / 2;
  const inChunk = Int32Array.from({ length: context - 1 - first }, (_, i) => first + i);
  let nll = 0;
  let seconds = 0;
  for (let c0 = 0; c0 < chunks; c0 += perBatch) {
    const batch = Array.from({ length: Math.min(perBatch, chunks - c0) }, (_, b) => ids.subarray((c0 + b) * context, (c0 + b + 1) * context));
    const rows = Int32Array.from({ length: batch.length * inChunk.length }, (_, i) => Math.floor(i / inChunk.length) * context + inChunk[i % inChunk.length]);
    const targets = Int32Array.from(rows, (r) => batch[Math.floor(r / context)][(r % context) + 1]);
    const start = performance.now();
    const { scores } = await model.forward(batch, { logits: rows, score: { rows: Int32Array.from(rows, (_, i) => i), targets } });
    seconds += (performance.now() - start) / 1000;
    for (const lp of scores!.logProbs) nll -= lp;
  }
  return { ppl: Math.exp(nll / (inChunk.length * chunks)), seconds };
}

/** CPU seconds of this process so far (user + system). */
function ownCpuSeconds(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
}

/**
 * generate's loop at batch 1 (timed after the first token, as llama-bench's -n excludes the prompt), prefills and
 * batched scoring, each in wall-clock and CPU time.
 */
async function routelabTiming(model: MoeModel, tok: TextTokenizer, ids: Int32Array): Promise<{ timing: Timing; scoringPpl: number }> {
  const wall = {} as Record<Workload, number>;
  const cpu = {} as Record<Workload, number | null>;
  const timed = async (w: Workload, tokens: number, run: () => Promise<void>) => {
    const [t0, c0] = [performance.now(), ownCpuSeconds()];
    await run();
    wall[w] = tokens / ((performance.now() - t0) / 1000);
    cpu[w] = tokens / (ownCpuSeconds() - c0);
  };
  const decoding = generate(model, tok.encode('The old man'), { maxNewTokens: DECODE_TOKENS + 1, sample: greedy });
  await decoding.next(); // the prompt's prefill and the first token
  await timed('decode', DECODE_TOKENS, async () => {
    while (!(await decoding.next()).done) { /* tokens are counted, not kept */ }
  });
  for (const p of PREFILLS) {
    const prompt = Array.from({ length: p }, (_, i) => (i * 7919 + 13) % model.architecture.vocabSize);
    await timed(`prefill_${p}`, p, async () => { await model.forward([prompt], { logits: 'last' }); });
  }
  let scoringPpl = NaN;
  await timed('scoring', SCORE_CONTEXT * SCORE_CHUNKS, async () => {
    scoringPpl = (await routelabPerplexity(model, ids, SCORE_CONTEXT, SCORE_CHUNKS, SCORE_CHUNKS)).ppl;
  });
  return { timing: { wall, cpu, peakRssMb: null }, scoringPpl };
}

/**
 * Repetitions of a llama-bench test of `tokens` tokens: its figures come from a run of this many, its CPU time from
 * that run less a run of 1, so the repetitions beyond the first must outlast the jitter of start-up and loading:
 * about 4,096 prompt or 512 generated tokens (33 at 128 tokens, 3 at 2,048; 5 for decode).
 */
function llamaReps(prompt: number, generated: number): number {
  return 1 + Math.max(2, Math.ceil(prompt > 0 ? 4096 / prompt : 512 / generated));
}

/**
 * llama-bench's decode and prefills and llama-perplexity's batched scoring. Wall clock: llama-bench's own average
 * over LLAMA_REPS repetitions, and llama-perplexity's total less its load and warm-up time. CPU: the process's CPU
 * time (getrusage of children, from the native addon; null without it) with a run of 1 repetition subtracted, which
 * cancels start-up, loading and llama-bench's warm-up; for llama-perplexity the same with 1 chunk of SCORE_CHUNKS.
 */
async function llamaTiming(exe: string, perplexityExe: string, gguf: string, text: string, threads: number): Promise<{ timing: Timing; scoringPpl: number }> {
  const wall = {} as Record<Workload, number>;
  const cpu = {} as Record<Workload, number | null>;
  let peak: number | null = null;
  const bench = async (w: Workload, p: number, n: number) => {
    const run = (reps: number) => runMeasured(exe, ['-m', gguf, '-p', String(p), '-n', String(n), '-t', String(threads), '-r', String(reps), '-o', 'jsonl']);
    const reps = llamaReps(p, n);
    const once = await run(1);
    const timed = await run(reps);
    const line = timed.stdout.trim().split('\n').pop() ?? '';
    let avg: unknown;
    try {
      avg = (JSON.parse(line) as { avg_ts?: unknown }).avg_ts;
    } catch {
      avg = undefined;
    }
    if (typeof avg !== 'number') throw new RoutelabError('--llama-cpp', `llama-bench printed no avg_ts: ${JSON.stringify(line.slice(0, 200))}`);
    wall[w] = avg;
    cpu[w] = cpuRate((reps - 1) * (p + n), timed.cpuSeconds, once.cpuSeconds);
    peak = maxOrNull([peak, once.peakRssMb, timed.peakRssMb]);
  };
  await bench('decode', 0, DECODE_TOKENS);
  for (const p of PREFILLS) await bench(`prefill_${p}`, p, 0);
  const scoring = (chunks: number) => llamaPerplexity(perplexityExe, gguf, text, SCORE_CONTEXT, chunks, SCORE_CONTEXT * SCORE_CHUNKS, threads);
  const one = await scoring(1);
  const all = await scoring(SCORE_CHUNKS);
  wall.scoring = (SCORE_CONTEXT * SCORE_CHUNKS) / all.seconds;
  cpu.scoring = cpuRate((SCORE_CHUNKS - 1) * SCORE_CONTEXT, all.cpuSeconds, one.cpuSeconds);
  peak = maxOrNull([peak, one.peakRssMb, all.peakRssMb]);
  return { timing: { wall, cpu, peakRssMb: peak }, scoringPpl: all.ppl };
}

/** Tokens per CPU second of the difference between a longer and a shorter run (null when either is unmeasured). */
function cpuRate(tokens: number, longer: number | null, shorter: number | null): number | null {
  return longer === null || shorter === null || longer <= shorter ? null : tokens / (longer - shorter);
}

/** Run a process to completion, following its peak RSS (VmHWM, which only grows) in /proc while it runs. */
function runMeasured(exe: string, args: readonly string[]): Promise<Measured> {
  return new Promise((resolve, reject) => {
    const kernels = loadNativeKernels();
    const childrenCpu = () => (kernels instanceof Error ? null : kernels.childrenCpuSeconds());
    const cpuBefore = childrenCpu();
    const child = spawn(exe, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let peak: number | null = null;
    const sample = () => {
      try {
        const kb = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'));
        if (kb) peak = Math.max(peak ?? 0, Number(kb[1]) / 1024);
      } catch {
        // gone already, or no /proc: the peak stays what was last seen
      }
    };
    const timer = setInterval(sample, 10);
    child.stdout.on('data', (d: Buffer) => { stdout += d; sample(); });
    child.stderr.on('data', (d: Buffer) => { stderr += d; });
    child.on('error', (e) => { clearInterval(timer); reject(new RoutelabError('--llama-cpp', `${exe}: ${e.message}`)); });
    child.on('close', (code) => {
      clearInterval(timer);
      if (code !== 0) reject(new RoutelabError('--llama-cpp', `${exe} ${args.join(' ')} exited with ${code}: ${stderr.trim().split('\n').slice(-2).join(' | ')}`));
      else {
        const cpuAfter = childrenCpu();
        resolve({ stdout, stderr, peakRssMb: peak, cpuSeconds: cpuBefore === null || cpuAfter === null ? null : cpuAfter - cpuBefore });
      }
    });
  });
}

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

function medianOrNull(xs: readonly (number | null)[]): number | null {
  return xs.some((x) => x === null) ? null : median(xs as number[]);
}

function maxOrNull(xs: readonly (number | null)[]): number | null {
  const known = xs.filter((x): x is number => x !== null);
  return known.length ? Math.max(...known) : null;
}
