import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { once } from 'node:events';
import { test } from 'node:test';
import { chromium } from 'playwright-core';
import { findChromium, gutenbergDir, repoRoot, tempDir } from './helpers.js';

const executablePath = findChromium();
const cli = join(repoRoot, 'dist/src/cli/main.js');

/** Four short cells on one perplexity task, each long enough (a few polls) to be seen running. */
const SPEC = `
tasks: [text]
baselines: [8, 4, 2, 1]
limit: 4
max_length: 128
bootstrap_resamples: 20
trace: off
`;

/** The dashboard's URL from its first stderr line. */
async function dashboardUrl(child: ChildProcess): Promise<string> {
  let text = '';
  for await (const chunk of child.stderr!) {
    text += String(chunk);
    const url = /dashboard: (http:\/\/\S+)/.exec(text)?.[1];
    if (url) return url;
  }
  throw new Error(`the dashboard exited without printing its URL: ${text}`);
}

test('dashboard --port rejects what is not a port', () => {
  for (const port of ['abc', '-1', '65536', '80.5'].map((p) => `--port=${p}`)) {
    const run = spawnSync(process.execPath, [cli, 'dashboard', tempDir(), port], { encoding: 'utf8' });
    assert.equal(run.status, 2, run.stderr);
    assert.match(run.stderr, /^routelab: --port: expected /);
  }
});

test('dashboard in a headless browser follows a running sweep: cells progress, counts, charts, no reload, no network', {
  skip: executablePath ? false : 'no chromium: install it (Debian: apt-get install chromium) or set CHROMIUM_PATH',
  timeout: 90_000,
}, async () => {
  const dir = tempDir('routelab-dashboard-');
  writeFileSync(join(dir, 'sweep.yaml'), SPEC);
  const run = join(dir, 'run');
  const dashboard = spawn(process.execPath, [cli, 'dashboard', run, '--port', '0'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let sweep: ChildProcess | null = null;
  const browser = await chromium.launch({ executablePath: executablePath!, args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking'] });
  try {
    const url = await dashboardUrl(dashboard);
    assert.match(url, /^http:\/\/127\.0\.0\.1:\d+\/$/, 'bound to loopback by default');
    const page = await browser.newPage({ viewport: { width: 1400, height: 1100 } });
    const requests: string[] = [];
    const errors: string[] = [];
    page.on('request', (request) => requests.push(request.url()));
    page.on('console', (message) => {
      if (message.type() === 'error') errors.push(message.text());
    });
    page.on('pageerror', (error) => errors.push(error.message));
    let loads = 0;
    page.on('load', () => loads++);
    await page.goto(url);

    // Before the sweep: the page says so, and keeps polling.
    await page.locator('#empty').waitFor({ state: 'visible', timeout: 10_000 });
    assert.match(await page.locator('#empty').innerText(), /no sweep has run here yet/i);

    sweep = spawn(process.execPath, [cli, 'sweep', '--model', gutenbergDir, '--data-dir', join(repoRoot, 'data'), '--out', run,
      '--spec', join(dir, 'sweep.yaml'), '--quiet'], { stdio: ['ignore', 'ignore', 'pipe'] });
    let sweepErr = '';
    sweep.stderr!.on('data', (chunk) => { sweepErr += String(chunk); });
    const sweepExit = once(sweep, 'exit');

    // Sample the grid and the counts as the page shows them until every cell is done (strings: tests compile without DOM types).
    const seen = new Map<string, Set<string>>();
    const doneCounts: number[] = [];
    let chartAfterFirstDone = false;
    const deadline = Date.now() + 60_000;
    for (;;) {
      const snapshot = await page.evaluate(`({
        rows: [...document.querySelectorAll('#cells tbody tr')].map((r) => [r.dataset.cell, r.dataset.state, r.cells[5].textContent]),
        done: Number(document.querySelector('.count.done .n')?.textContent ?? -1),
        charts: document.querySelectorAll('[data-chart][data-rendered="true"] svg').length,
      })`) as { rows: [string, string, string][]; done: number; charts: number };
      for (const [cell, state] of snapshot.rows) (seen.get(cell) ?? seen.set(cell, new Set()).get(cell)!).add(state);
      if (snapshot.done >= 0 && doneCounts.at(-1) !== snapshot.done) doneCounts.push(snapshot.done);
      if (snapshot.done >= 1 && snapshot.charts > 0) chartAfterFirstDone = true;
      if (snapshot.rows.length === 4 && snapshot.done === 4 && chartAfterFirstDone) break;
      assert.ok(Date.now() < deadline, `the page did not show the sweep finishing: ${JSON.stringify(snapshot)} ${sweepErr}`);
      await page.waitForTimeout(150);
    }
    const [code] = await sweepExit;
    assert.equal(code, 0, sweepErr);

    assert.equal(loads, 1, 'the page was never reloaded');
    assert.equal(seen.size, 4);
    const watched = [...seen].filter(([, states]) => states.has('running') && states.has('done')).map(([cell]) => cell);
    assert.ok(watched.length >= 2, `cells seen running and then done on the page: ${JSON.stringify([...seen].map(([c, s]) => [c, [...s]]))}`);
    assert.ok(doneCounts.length >= 3 && doneCounts.every((n, i) => i === 0 || n > doneCounts[i - 1]), `the done count rose step by step: ${doneCounts}`);
    assert.ok(chartAfterFirstDone, 'a Vega chart was drawn');

    // Every finished cell has its metric and experts; the charts plot all four cells; no ETA is left.
    const rows = await page.$$eval('#cells tbody tr', (trs) => trs.map((tr) => [...tr.querySelectorAll('td')].map((td) => td.textContent ?? '')));
    for (const row of rows) {
      assert.equal(row[3], 'done');
      assert.equal(row[6], 'word perplexity');
      assert.ok(Number(row[7].replaceAll(',', '')) > 1, row.join(' | '));
      assert.match(row[8], /^[1248]$/);
      assert.match(row[5], /s$/, 'elapsed time shown');
    }
    await page.waitForFunction(`document.querySelectorAll('[data-chart="sweep-ppl-vs-experts"] g.mark-symbol.role-mark > path').length === 4`, null, { timeout: 5_000 });
    assert.match(await page.locator('#eta').innerText(), /all cells done/i);
    const worker = await page.$$eval('#workers tbody tr td', (tds) => tds.map((td) => td.textContent ?? ''));
    assert.equal(worker[1], '4', 'the worker did four cells');
    assert.ok(Number(worker[3].replaceAll(',', '')) > 0, `throughput ${worker[3]}`);

    const screenshot = process.env.DASHBOARD_SCREENSHOT ?? join(dir, 'dashboard.png');
    await page.screenshot({ path: screenshot, fullPage: true });
    assert.ok(statSync(screenshot).size > 10_000, 'a screenshot with content');
    assert.deepEqual(readFileSync(screenshot).subarray(1, 4).toString('latin1'), 'PNG');

    assert.deepEqual(errors, []);
    const origin = new URL(url).origin;
    assert.deepEqual(requests.filter((r) => !r.startsWith(origin + '/')), [], 'the page asks nothing of any other server');
    assert.ok(requests.filter((r) => r === `${origin}/api/status`).length >= 5, 'it polled');
  } finally {
    await browser.close();
    sweep?.kill();
    dashboard.kill('SIGINT');
    await once(dashboard, 'exit');
  }
});
