import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { test } from 'node:test';
import { chromium } from 'playwright-core';
import { findChromium, gutenbergDir, repoRoot, tempDir } from './helpers.js';

const executablePath = findChromium();

/** One top-k baseline and one BH configuration on a perplexity and a choice task: every kind of chart, quickly. */
const SPEC = `
tasks: [wikitext, hellaswag]
baselines: [8]
bh: { max_k: [8], alpha: [0.5] }
limit: 2
max_length: 64
calibration: { tokens: 512 }
bootstrap_resamples: 100
`;

test('report.html in a headless browser: charts drawn, tooltips, sortable tables, no network, no errors', {
  skip: executablePath ? false : 'no chromium: install it (Debian: apt-get install chromium) or set CHROMIUM_PATH',
}, async () => {
  const dir = tempDir('routelab-report-browser-');
  writeFileSync(join(dir, 'sweep.yaml'), SPEC);
  const run = join(dir, 'run');
  const cli = join(repoRoot, 'dist/src/cli/main.js');
  const sweep = spawnSync(process.execPath, [cli, 'sweep', '--model', gutenbergDir, '--data-dir', join(repoRoot, 'data'), '--out', run,
    '--spec', join(dir, 'sweep.yaml'), '--quiet'], { encoding: 'utf8' });
  assert.equal(sweep.status, 0, sweep.stderr);
  const report = spawnSync(process.execPath, [cli, 'report', run, '--format', 'html', '--quiet'], { encoding: 'utf8' });
  assert.equal(report.status, 0, report.stderr);
  const file = join(run, 'report', 'report.html');
  const charts = (readFileSync(file, 'utf8').match(/<div class="chart" data-chart=/g) ?? []).length;
  assert.ok(charts >= 10, `${charts} charts`);

  const browser = await chromium.launch({ executablePath: executablePath!, args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking'] });
  try {
    const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
    const requests: string[] = [];
    const errors: string[] = [];
    page.on('request', (request) => requests.push(request.url()));
    page.on('console', (message) => {
      if (message.type() === 'error') errors.push(message.text());
    });
    page.on('pageerror', (error) => errors.push(error.message));
    const url = pathToFileURL(file).href;
    await page.goto(url);
    // The page script marks each chart container once Vega has drawn it (a string: tests compile without the DOM types).
    await page.waitForFunction(`[...document.querySelectorAll('[data-chart]')].every((c) => c.dataset.rendered === 'true')`, null, { timeout: 60_000 });

    const marks = await page.$$eval('[data-chart]', (containers) => containers.map((c) => ({
      name: c.getAttribute('data-chart'),
      marks: c.querySelectorAll(':scope > svg g[class^="mark-"] > :is(path, rect, line, text, g)').length,
    })));
    assert.equal(marks.length, charts);
    for (const chart of marks) assert.ok(chart.marks > 0, `${chart.name}: an <svg> with marks`);

    // A point of the first chart (perplexity vs experts) shows its values in the tooltip.
    const point = page.locator('[data-chart="sweep-ppl-vs-experts"] g.mark-symbol path').first();
    await point.hover({ force: true });
    const tooltip = page.locator('.tooltip');
    await tooltip.waitFor({ state: 'visible', timeout: 5_000 });
    assert.match(await tooltip.innerText(), /experts/i);
    assert.match(await tooltip.innerText(), /^router: (topk|bh):/m, 'a configuration\'s tooltip gives its full router spec');

    // Clicking a results header sorts by it, ascending and then descending, and says so in aria-sort.
    const results = page.locator('table.results');
    const headers = await results.locator('thead th').allInnerTexts();
    const column = headers.findIndex((h) => h.startsWith('Experts per token'));
    assert.ok(column >= 0, headers.join(', '));
    const header = results.locator('thead th').nth(column);
    const values = () => results.locator(`tbody tr td:nth-child(${column + 1})`).evaluateAll((cells) => cells.map((c) => Number(c.getAttribute('data-value'))));
    await header.locator('button').click();
    assert.equal(await header.getAttribute('aria-sort'), 'ascending');
    const ascending = await values();
    assert.deepEqual(ascending, [...ascending].sort((a, b) => a - b));
    assert.ok(ascending[0] < ascending.at(-1)!, 'the column has different values');
    await header.locator('button').click();
    assert.equal(await header.getAttribute('aria-sort'), 'descending');
    assert.deepEqual(await values(), [...ascending].reverse());

    // The wide results table scrolls inside its box, the configuration column pinned; its cells carry the full router spec.
    await page.setViewportSize({ width: 900, height: 1000 });
    const wrap = page.locator('.results-wrap');
    const box = await wrap.evaluate((w) => ({ scroll: w.scrollWidth, client: w.clientWidth, right: w.getBoundingClientRect().right, page: w.closest('main')!.getBoundingClientRect().right }));
    assert.ok(box.right <= box.page + 1, `the table's box stays within the page column (${box.right} > ${box.page})`);
    assert.ok(box.scroll > box.client, `the table is wider than its box (${box.scroll} ≤ ${box.client})`);
    const firstCell = results.locator('tbody tr').first().locator('td').first();
    const secondCell = results.locator('tbody tr').first().locator('td').nth(1);
    const [before, second] = [(await firstCell.boundingBox())!.x, (await secondCell.boundingBox())!.x];
    await wrap.evaluate((w) => { w.scrollLeft = w.scrollWidth; });
    assert.equal(Math.round((await firstCell.boundingBox())!.x), Math.round(before), 'the configuration column stays in view');
    assert.ok((await secondCell.boundingBox())!.x < second - 50, 'the other columns scroll');
    await page.setViewportSize({ width: 1400, height: 1000 });
    assert.match((await results.locator('tbody tr td:first-child').first().getAttribute('title')) ?? '', /^(topk|bh|default):/);

    const screenshot = join(dir, 'report.png');
    await page.screenshot({ path: screenshot, fullPage: false });
    assert.ok(statSync(screenshot).size > 10_000, 'a screenshot with content');
    assert.deepEqual(readFileSync(screenshot).subarray(1, 4).toString('latin1'), 'PNG');

    assert.deepEqual(errors, []);
    assert.deepEqual(requests, [url], 'the page loads nothing but itself');
  } finally {
    await browser.close();
  }
});
