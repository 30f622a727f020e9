import { kernelThreads } from '../backends/cpus.js';

/** `--threads N` of every command that runs a model: the native backend's kernel threads. */
export const THREADS_OPTION = { threads: { type: 'string' } } as const;

/** Its help text, the flag padded to `width` columns as the command's other flags are. */
export function threadsUsage(width: number): string {
  const indent = ' '.repeat(2 + width);
  return `  ${'--threads N'.padEnd(width)}kernel threads of the native backend (default: the ROUTELAB_THREADS environment\n` +
    `${indent}variable, else the CPUs this process may use: its affinity mask within its cgroup CPU quota)`;
}

/** The --threads flag checked (an integer 1 … 1024), or undefined when absent (ROUTELAB_THREADS, else usable CPUs). */
export function threadsFlag(values: Record<string, unknown>): number | undefined {
  return values.threads === undefined ? undefined : kernelThreads(values.threads as string);
}
