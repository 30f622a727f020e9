/**
 * `routelab dashboard`'s HTTP server (node:http, no framework): the page at /, the run's state at /api/status,
 * nothing else. It only reads the run directory, so any number of dashboards may follow one sweep, and it binds to
 * loopback unless told otherwise: the status names paths and hosts of the machine.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { RoutelabError } from '../errors.js';
import { DashboardData } from './data.js';
import { dashboardPage } from './page.js';

export interface Dashboard {
  readonly url: string;
  close(): Promise<void>;
}

export async function startDashboard(runDir: string, options: { host: string; port: number }): Promise<Dashboard> {
  const data = new DashboardData(runDir);
  // The page is the same for the server's whole life: built once (the Vega runtime in it is about 1 MB).
  const page = dashboardPage(runDir);
  const server = createServer((request, response) => {
    const path = new URL(request.url ?? '/', 'http://localhost').pathname;
    const headers = { 'Cache-Control': 'no-store', 'X-Content-Type-Options': 'nosniff' };
    if (request.method !== 'GET' && request.method !== 'HEAD') {
      response.writeHead(405, { ...headers, Allow: 'GET, HEAD' }).end();
    } else if (path === '/') {
      response.writeHead(200, { ...headers, 'Content-Type': 'text/html; charset=utf-8' }).end(page);
    } else if (path === '/api/status') {
      let body: string;
      try {
        body = JSON.stringify(data.state());
      } catch (e) {
        response.writeHead(500, { ...headers, 'Content-Type': 'text/plain; charset=utf-8' }).end(`dashboard: ${(e as Error).message}\n`);
        return;
      }
      response.writeHead(200, { ...headers, 'Content-Type': 'application/json; charset=utf-8' }).end(body);
    } else {
      response.writeHead(404, { ...headers, 'Content-Type': 'text/plain; charset=utf-8' }).end('not found\n');
    }
  });
  await listen(server, options.host, options.port);
  const { port } = server.address() as AddressInfo;
  const shown = options.host.includes(':') ? `[${options.host}]` : options.host;
  return {
    url: `http://${shown}:${port}/`,
    close: () => new Promise((resolve) => {
      // Open polling connections are keep-alive: without closing them, close() would wait for the browser to leave.
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}

function listen(server: Server, host: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', (e: NodeJS.ErrnoException) => {
      const why = e.code === 'EADDRINUSE' ? 'the port is in use (--port 0 picks a free one)'
        : e.code === 'EACCES' ? 'permission denied (ports below 1024 need privileges)'
        : e.code === 'EADDRNOTAVAIL' || e.code === 'ENOTFOUND' ? 'no such address on this machine' : e.message;
      reject(new RoutelabError(`dashboard on ${host}:${port}`, `cannot listen: ${why}`));
    });
    server.listen(port, host, () => resolve());
  });
}
