import { existsSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import { RoutelabError } from '../errors.js';
import { numberFlag, type Command } from './command.js';

export const dashboardCommand: Command = {
  name: 'dashboard',
  summary: 'follow a sweep while it runs: a local web page with its cells, workers, ETA and charts, updated live',
  usage: `Usage: routelab dashboard RUN_DIR [--port P] [--host H]

  RUN_DIR            a sweep's run directory (its --out); the sweep may be running, finished or not started yet
  --port P           the port to serve on (default 0: a free one); the page's URL is printed on stderr
  --host H           the address to bind (default 127.0.0.1: this machine only; 0.0.0.0 shows it to the network)

The page reads RUN_DIR/sweep-status.json — or, for a run split with sweep --shard I/N, every shard's
sweep-status.shard-I-of-N.json, merged into one view — and the finished cells' summaries every second; a queue
coordinator keeps the queue's workers and running cells in the status file. Ctrl-C stops it.`,
  options: {
    port: { type: 'string' },
    host: { type: 'string', default: '127.0.0.1' },
  },
  allowPositionals: true,
  async run(values, positionals) {
    if (positionals.length !== 1) {
      throw new RoutelabError('routelab dashboard', `expected one RUN_DIR, got ${positionals.length ? positionals.join(' ') : 'none'}`);
    }
    const runDir = resolve(positionals[0]);
    // A file is a mistake; a directory not there yet is not: the sweep about to start creates it.
    if (existsSync(runDir) && !statSync(runDir).isDirectory()) throw new RoutelabError(positionals[0], 'is a file, not a run directory');
    const port = numberFlag(values, 'port', 0, true);
    if (port < 0 || port > 65535) throw new RoutelabError('--port', `expected a port from 0 to 65535, got ${port}`);
    const host = values.host as string;
    if (host === '') throw new RoutelabError('--host', 'expected an address, e.g. 127.0.0.1');
    const { startDashboard } = await import('../dashboard/server.js');
    const dashboard = await startDashboard(runDir, { host, port });
    console.error(`dashboard: ${dashboard.url}`);
    await new Promise<void>((done) => {
      const stop = () => {
        process.off('SIGINT', stop);
        process.off('SIGTERM', stop);
        void dashboard.close().then(done);
      };
      process.on('SIGINT', stop);
      process.on('SIGTERM', stop);
    });
  },
};
