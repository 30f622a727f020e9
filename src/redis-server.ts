/**
 * A private redis-server (Debian's `redis-server`) on 127.0.0.1, without persistence, for `bench queue` and the
 * work-queue tests: started on a free port (or a given one, to restart it where it was) and ready when it says so.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { createServer } from 'node:net';
import { RoutelabError } from './errors.js';

export const hasRedisServer = (): boolean => spawnSync('redis-server', ['--version']).status === 0;

export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  await new Promise((r) => server.close(r));
  return port;
}

export async function startRedisServer(port?: number): Promise<{ url: string; port: number; process: ChildProcess }> {
  if (!hasRedisServer()) throw new RoutelabError('redis-server', 'not installed here: apt-get install redis-server, or give --queue URL');
  const at = port ?? (await freePort());
  const child = spawn('redis-server', ['--port', String(at), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: ['ignore', 'pipe', 'ignore'] });
  await new Promise<void>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d) => {
      out += d;
      if (out.includes('Ready to accept connections')) resolve();
    });
    child.on('exit', (code) => reject(new RoutelabError('redis-server', `exited with ${code} before it was ready: ${out.trim().split('\n').at(-1) ?? ''}`)));
  });
  return { url: `redis://127.0.0.1:${at}/0`, port: at, process: child };
}
