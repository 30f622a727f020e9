/**
 * The profiler: latency of single-sequence forward passes per sequence length, throughput over batch sizes, and
 * peak memory, for one model and router. Token ids are seeded random ids, so runs are repeatable. Timing protocol:
 * every shape is warmed up, then `runs` rounds each time every shape once, in turn — so a load change on a shared
 * machine spreads over all shapes instead of landing on one — and each shape reports its median and quartiles.
 */
import type { MoeModel } from '../model/model.js';
import type { Router } from '../routers/router.js';
import { createRandom } from '../sampling.js';
import { summarise, type Summary } from './stats.js';

export interface ProfileOptions {
  readonly router: Router;
  readonly seqLengths: readonly number[];
  readonly batchSizes: readonly number[];
  readonly warmup: number;
  readonly runs: number;
  readonly seed: number;
  readonly onProgress?: (line: string) => void;
}

export interface LatencyRow extends Summary {
  readonly seq_len: number;
  readonly runs: number;
}

export interface ThroughputRow {
  readonly batch: number;
  readonly seq_len: number;
  readonly runs: number;
  /** Median over the timed rounds, with the quartiles of the same runs (the spread to compare against). */
  readonly tokens_per_second: number;
  readonly tokens_per_second_p25: number;
  readonly tokens_per_second_p75: number;
  readonly seconds: number;
}

export interface ProfileResult {
  readonly router: string;
  /** Latency of one forward pass over one sequence (prefill; logits of the last position), in ms. */
  readonly latency_ms: LatencyRow[];
  /** Prefill throughput at each batch size, for the longest requested sequence length. */
  readonly throughput: ThroughputRow[];
  readonly peak_rss_mb: number;
  /**
   * Peak memory of the backend's buffers: device memory for GPU backends; for host backends (whose buffers are
   * part of the RSS) the largest ArrayBuffer total seen after a run — weights read into memory, KV stores, tensors.
   */
  readonly peak_backend_buffers_mb: number;
  readonly backend_buffers: 'device' | 'host';
  readonly backend: string;
  /** The backend's kernel threads (null: a device backend). */
  readonly threads: number | null;
}

function randomSequences(batch: number, length: number, vocab: number, random: () => number): number[][] {
  return Array.from({ length: batch }, () => Array.from({ length }, () => Math.floor(random() * vocab)));
}

export async function profileModel(model: MoeModel, options: ProfileOptions): Promise<ProfileResult> {
  const { router, warmup, runs } = options;
  const random = createRandom(options.seed);
  const V = model.architecture.vocabSize;
  let peakHostBuffers = 0;
  const timed = async (sequences: number[][]) => {
    const start = performance.now();
    await model.forward(sequences, { router, logits: 'last' });
    const ms = performance.now() - start;
    peakHostBuffers = Math.max(peakHostBuffers, process.memoryUsage().arrayBuffers);
    return ms;
  };

  const throughputLength = Math.max(...options.seqLengths);
  const shapes = [
    ...options.seqLengths.map((seqLen) => ({ kind: 'latency' as const, batch: 1, seqLen })),
    ...options.batchSizes.map((batch) => ({ kind: 'throughput' as const, batch, seqLen: throughputLength })),
  ].map((shape) => ({ ...shape, sequences: randomSequences(shape.batch, shape.seqLen, V, random), times: [] as number[] }));
  for (const shape of shapes) for (let i = 0; i < warmup; i++) await timed(shape.sequences);
  for (let round = 0; round < runs; round++) {
    for (const shape of shapes) shape.times.push(await timed(shape.sequences));
    options.onProgress?.(`round ${round + 1}/${runs}`);
  }
  const latency: LatencyRow[] = shapes.filter((s) => s.kind === 'latency').map((s) => ({ seq_len: s.seqLen, runs, ...summarise(s.times) }));
  const throughput: ThroughputRow[] = shapes.filter((s) => s.kind === 'throughput').map((s) => {
    const rates = summarise(s.times.map((ms) => (s.batch * s.seqLen) / (ms / 1000)));
    return { batch: s.batch, seq_len: s.seqLen, runs, tokens_per_second: rates.p50, tokens_per_second_p25: rates.p25, tokens_per_second_p75: rates.p75, seconds: summarise(s.times).p50 / 1000 };
  });
  const device = model.backend.deviceMemory();
  return {
    router: router.spec,
    latency_ms: latency,
    throughput,
    peak_rss_mb: process.resourceUsage().maxRSS / 1024,
    peak_backend_buffers_mb: (device?.peakBytes ?? peakHostBuffers) / 2 ** 20,
    backend_buffers: device ? 'device' : 'host',
    backend: model.backend.name,
    threads: model.backend.threads,
  };
}
