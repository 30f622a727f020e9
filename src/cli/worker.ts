import { RoutelabError } from '../errors.js';
import { numberFlag, requireString, type Command } from './command.js';
import { THREADS_OPTION, threadsFlag, threadsUsage } from './threads.js';

export const workerCommand: Command = {
  name: 'worker',
  summary: 'take sweep cells from a Redis queue (`sweep --queue`) and evaluate them, on any number of machines',
  usage: `Usage: routelab worker --queue redis://HOST:6379/0 [--concurrency 1] [--backend NAME] [--threads N]

  --queue URL          the Redis the coordinator (routelab sweep --queue URL) queues cells on
  --concurrency N      cells evaluated at once by this process (default 1; each shares the loaded model)
  --backend NAME       auto (default: the sweep's) | native | cpu | webgpu
${threadsUsage(19)}
  --lock-seconds S     a worker silent this long is taken for dead and its cell re-queued (default 30)
  --idle-exit S        exit after S seconds with no cell to do here and none left on the queue (waiting,
                       delayed or running elsewhere); default: run until SIGINT/SIGTERM
  --quiet              print nothing but errors

A worker loads a sweep's model once and keeps it while that sweep's cells last. Each cell is evaluated only if this
worker computes the same cell key as the coordinator planned (same model weights, data, routelab version); else it is
refused, with the difference named, and left for another worker. The run directory, model and data must be at the
same paths as on the coordinator's machine (shared storage: NFS, Lustre, a Kubernetes volume).`,
  options: {
    queue: { type: 'string' },
    concurrency: { type: 'string' },
    backend: { type: 'string' },
    ...THREADS_OPTION,
    'lock-seconds': { type: 'string' },
    'idle-exit': { type: 'string' },
    quiet: { type: 'boolean', default: false },
  },
  async run(values) {
    const [{ redisConnection }, { runWorker }] = await Promise.all([import('../sweep/queue.js'), import('../sweep/worker.js')]);
    const queue = requireString(values, 'queue');
    redisConnection(queue);
    const positive = (flag: string, fallback: number, integer: boolean) => {
      const n = numberFlag(values, flag, fallback, integer);
      if (!(n > 0)) throw new RoutelabError(`--${flag}`, `expected a positive ${integer ? 'integer' : 'number'}, got ${n}`);
      return n;
    };
    await runWorker({
      queue,
      concurrency: positive('concurrency', 1, true),
      backend: values.backend as string | undefined,
      threads: threadsFlag(values),
      lockSeconds: positive('lock-seconds', 30, false),
      idleExitSeconds: values['idle-exit'] === undefined ? null : positive('idle-exit', 0, false),
      log: values.quiet === true ? () => {} : (line) => console.error(line),
    });
  },
};
