/**
 * The profiler: latency of single-sequence forward passes per sequence length, throughput over batch sizes, and
 * peak memory, for one model and router. Token ids are seeded random ids, so runs are repeatable.
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
  readonly tokens_per_second: number;
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

  const latency: LatencyRow[] = [];
  for (const seqLen of options.seqLengths) {
    const sequence = randomSequences(1, seqLen, V, random);
    for (let i = 0; i < warmup; i++) await timed(sequence);
    const times: number[] = [];
    for (let i = 0; i < runs; i++) times.push(await timed(sequence));
    latency.push({ seq_len: seqLen, runs, ...summarise(times) });
    options.onProgress?.(`latency seq ${seqLen}: mean ${latency.at(-1)!.mean.toFixed(1)} ms`);
  }

  const throughputLength = Math.max(...options.seqLengths);
  const throughput: ThroughputRow[] = [];
  for (const batch of options.batchSizes) {
    const sequences = randomSequences(batch, throughputLength, V, random);
    await timed(sequences);
    const ms = await timed(sequences);
    throughput.push({ batch, seq_len: throughputLength, tokens_per_second: (batch * throughputLength) / (ms / 1000), seconds: ms / 1000 });
    options.onProgress?.(`throughput batch ${batch}×${throughputLength}: ${throughput.at(-1)!.tokens_per_second.toFixed(0)} tokens/s`);
  }
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
