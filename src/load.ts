import { freemem } from 'node:os';
import type { Backend } from './backends/backend.js';
import { CpuBackend } from './backends/cpu.js';
import { kernelThreads } from './backends/cpus.js';
import { createFastBackend, NativeBackend } from './backends/native.js';
import { RoutelabError } from './errors.js';
import { Checkpoint, resolveModelPath } from './model/checkpoint.js';
import { MoeModel } from './model/model.js';
import { loadTokenizer, type TextTokenizer } from './model/tokenizer.js';

export const BACKENDS = ['auto', 'native', 'cpu', 'webgpu'] as const;
export type BackendName = (typeof BACKENDS)[number];

/**
 * `auto` (the default): the native SIMD kernels when their addon is built and the CPU supports them, else the
 * reference backend with a one-line warning. `native` insists on the addon; `cpu` is the pure-TypeScript reference;
 * `webgpu` runs WGSL kernels on a WebGPU adapter (a GPU, or Mesa lavapipe on a CPU).
 */
export async function createBackend(name: string = 'auto', options: BackendOptions = {}): Promise<Backend> {
  // Dawn is loaded only when asked for: the CPU paths never touch it.
  if (name === 'webgpu') return (await import('./backends/webgpu.js')).createWebGpuBackend();
  if (name === 'cpu') return new CpuBackend();
  // The thread count is checked (--threads, ROUTELAB_THREADS) whichever CPU backend ends up running.
  const threads = kernelThreads(options.threads);
  if (name === 'native') {
    try {
      return new NativeBackend({ threads });
    } catch (e) {
      throw new RoutelabError('--backend native', `${(e as Error).message}; build it with npm run build:native, or use --backend cpu`);
    }
  }
  if (name === 'auto') return createFastBackend({ threads });
  throw new RoutelabError('--backend', `unknown backend ${JSON.stringify(name)}; available: ${BACKENDS.join(', ')}`);
}

export interface BackendOptions {
  /**
   * Threads of the native backend's kernels (default: ROUTELAB_THREADS, else `usableCpus()` — the CPUs this process
   * may use); the reference backend runs on one, webgpu on its device.
   */
  readonly threads?: number;
}

export interface LoadedModel {
  readonly dir: string;
  readonly checkpoint: Checkpoint;
  readonly model: MoeModel;
  /** null when the model directory has no tokenizer files (token-id input still works). */
  readonly tokenizer: TextTokenizer | null;
}

export interface LoadOptions extends BackendOptions {
  readonly backend?: Backend | string;
  /** Compute precision of activations; the CPU backends compute in float32. */
  readonly dtype?: string;
}

/** Bytes this process may still allocate: the OS's available memory, within a cgroup limit (Slurm, Kubernetes) if set. */
export function availableMemory(): number {
  const constrained = process.constrainedMemory?.() ?? 0;
  const free = freemem();
  return constrained > 0 ? Math.min(free, Math.max(0, constrained - process.memoryUsage.rss())) : free;
}

/** One clear error when a model's weights cannot fit, naming what they need and what there is. */
export function requireMemory(needed: number, available: number, dir: string): void {
  if (needed > available) {
    const gb = (b: number) => `${(b / 1e9).toFixed(2)} GB`;
    throw new RoutelabError(dir, `its weights need ${gb(needed)} (${needed} bytes) of memory, but only ${gb(available)} (${available} bytes) is available; use a machine with more memory, or --backend webgpu on a GPU that holds them`);
  }
}

/** Open a model directory or Hugging Face repo id (`org/name[@revision]`) and load it into a backend. */
export async function loadModel(spec: string, options: LoadOptions = {}): Promise<LoadedModel> {
  const dtype = options.dtype ?? 'f32';
  if (dtype !== 'f32') throw new RoutelabError('--dtype', `unsupported compute dtype ${JSON.stringify(dtype)}; available: f32`);
  const backend = typeof options.backend === 'object' ? options.backend : await createBackend(options.backend, options);
  const dir = await resolveModelPath(spec);
  const checkpoint = await Checkpoint.open(dir);
  // Host backends hold every weight in process memory: refuse before reading any rather than die half-way.
  if (backend.deviceMemory() === null) requireMemory(checkpoint.weightBytes, availableMemory(), dir);
  const model = MoeModel.load(checkpoint, backend);
  return { dir, checkpoint, model, tokenizer: await loadTokenizer(dir) };
}
