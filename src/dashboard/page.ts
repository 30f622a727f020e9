/**
 * The dashboard's one page: static HTML whose script polls /api/status and redraws the counts, the workers and the
 * cell grid on every answer, and the charts whenever the set of finished cells changes. Like report.html it carries
 * the Vega runtime inline and a Content-Security-Policy that allows no request but to its own server, so it works
 * on a machine without network access and loads nothing from anywhere else.
 */
import { escapeHtml, scriptText, vegaBrowserBuild } from '../report/html.js';

/** Scripts and styles inline (Vega compiles its expressions with `Function`, hence eval); fetch() to this server only. */
const CONTENT_SECURITY_POLICY = "default-src 'none'; script-src 'unsafe-inline' 'unsafe-eval'; style-src 'unsafe-inline'; img-src data:; connect-src 'self'";

export function dashboardPage(runDir: string): string {
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="${CONTENT_SECURITY_POLICY}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="routelab">
<title>Sweep dashboard — ${escapeHtml(runDir)}</title>
<style>${STYLE}</style>
</head>
<body>
<header>
<h1>Sweep dashboard</h1>
<p class="run">Run directory: <code>${escapeHtml(runDir)}</code> <span id="sweep-state" class="state-line"></span></p>
</header>
<main>
<p id="empty" class="notice" hidden>No sweep has run here yet: this page shows it as soon as one starts.</p>
<p id="error" class="notice error" hidden></p>
<div id="live" hidden>
<section id="progress" aria-label="Progress">
<ul id="counts" class="counts"></ul>
<div class="bar" aria-hidden="true"><span class="done"></span><span class="failed"></span><span class="running"></span></div>
<p id="eta" class="eta"></p>
</section>
<section>
<h2>Workers</h2>
<div class="table-wrap"><table id="workers"><thead><tr><th scope="col">Worker</th><th scope="col" class="num">Cells done</th><th scope="col" class="num">Tokens</th><th scope="col" class="num">Throughput (tokens/s)</th><th scope="col">Last seen</th></tr></thead><tbody></tbody></table></div>
</section>
<section>
<h2>Cells</h2>
<div class="table-wrap"><table id="cells"><thead><tr><th scope="col">Cell</th><th scope="col">Configuration</th><th scope="col">Task</th><th scope="col">State</th><th scope="col">Worker</th><th scope="col" class="num">Elapsed</th><th scope="col">Metric</th><th scope="col" class="num">Value</th><th scope="col" class="num">Experts per token</th><th scope="col">Error</th></tr></thead><tbody></tbody></table></div>
</section>
<section>
<h2>Charts of the finished cells</h2>
<p id="no-charts" class="muted">The charts appear once the first cell is done.</p>
<div id="charts"></div>
</section>
</div>
</main>
<script>${scriptText(vegaBrowserBuild())}</script>
<script>${PAGE_SCRIPT}</script>
</body>
</html>
`;
}

/**
 * Polling rather than Server-Sent Events: the status file is the only source and is rewritten at most every half
 * second, a 1 s poll is all the liveness it has to give, and a poll recovers by itself when the dashboard restarts
 * or the machine sleeps, where an event stream needs reconnection and replay logic on both ends.
 */
const PAGE_SCRIPT = `
(() => {
  'use strict';
  const POLL_MS = 1000;
  const STATES = ['done', 'running', 'queued', 'failed', 'pending'];
  const $ = (id) => document.getElementById(id);
  const esc = (s) => String(s ?? '').replace(/[&<>"']/g, (c) => '&#' + c.charCodeAt(0) + ';');
  const num = (v, digits) => (v === null || v === undefined ? '' : Number(v).toLocaleString('en-US', { maximumFractionDigits: digits }));
  function duration(seconds) {
    if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return '';
    const s = Math.max(0, Math.round(seconds));
    if (s < 60) return (seconds < 10 ? Math.max(0, seconds).toFixed(1) : s) + ' s';
    const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
    return h ? h + ' h ' + String(m).padStart(2, '0') + ' min' : m + ' min ' + String(r).padStart(2, '0') + ' s';
  }
  let chartsKey = null;
  let views = [];

  function render(state) {
    $('error').hidden = !state.error;
    $('error').textContent = state.error || '';
    const status = state.status;
    $('empty').hidden = status !== null || !!state.error;
    $('live').hidden = status === null;
    if (status === null) { $('sweep-state').textContent = ''; return; }
    const now = Date.parse(state.now);
    const cells = status.cells;
    const count = Object.fromEntries(STATES.map((s) => [s, cells.filter((c) => c.state === s).length]));
    $('sweep-state').textContent = '· ' + status.mode + ' sweep' + (status.queue ? ' (queue ' + status.queue + ')' : '') + ', ' +
      (status.finished ? 'finished' : 'in progress') + ' · updated ' + new Date(status.updated).toLocaleTimeString();
    $('counts').innerHTML = STATES.map((s) => '<li class="count ' + s + '" data-state="' + s + '"><span class="n">' + count[s] +
      '</span> ' + s + '</li>').join('') + '<li class="count total"><span class="n">' + cells.length + '</span> cells</li>';
    const share = (n) => (cells.length ? (100 * n) / cells.length : 0) + '%';
    const bar = document.querySelector('.bar');
    bar.querySelector('.done').style.width = share(count.done);
    bar.querySelector('.failed').style.width = share(count.failed);
    bar.querySelector('.running').style.width = share(count.running);
    $('eta').textContent = eta(status, count);

    $('workers').tBodies[0].innerHTML = status.workers.length ? status.workers.map((w) => '<tr><td>' + esc(w.id) + '</td><td class="num">' + w.cells_done +
      '</td><td class="num">' + num(w.tokens, 0) + '</td><td class="num">' + (w.seconds > 0 ? num(w.tokens / w.seconds, 0) : '') +
      '</td><td>' + esc(new Date(w.last_seen).toLocaleTimeString()) + '</td></tr>').join('')
      : '<tr><td colspan="5" class="muted">no worker has reported yet</td></tr>';

    $('cells').tBodies[0].innerHTML = cells.map((c) => {
      // A running cell's time counts up from its start; a finished one shows its evaluation time.
      const elapsed = c.state === 'running' && c.started ? (now - Date.parse(c.started)) / 1000 : c.seconds;
      return '<tr data-cell="' + esc(c.name) + '" data-state="' + c.state + '"><td>' + esc(c.name) + '</td><td>' + esc(c.config) + '</td><td>' + esc(c.task) +
        '</td><td><span class="pill ' + c.state + '">' + c.state + (c.resumed ? ' (resumed)' : '') + '</span></td><td>' + esc(c.worker) +
        '</td><td class="num">' + duration(elapsed) + '</td><td>' + esc(c.metric ? c.metric.name.replaceAll('_', ' ') : '') +
        '</td><td class="num">' + (c.metric ? num(c.metric.value, 4) : '') + '</td><td class="num">' + num(c.avg_experts, 2) +
        '</td><td class="error-text">' + esc(c.error) + '</td></tr>';
    }).join('');

    if (state.chartsKey !== chartsKey) drawCharts(state);
  }

  /** Mean seconds of the cells evaluated in this sweep (resumed ones took no time), times the cells left, over the cells running at once. */
  function eta(status, count) {
    const left = count.pending + count.queued + count.running;
    if (status.finished || left === 0) return count.failed ? count.failed + ' failed' : 'All cells done.';
    const timed = status.cells.filter((c) => c.state === 'done' && !c.resumed && c.seconds !== null);
    if (!timed.length) return 'ETA: after the first cell finishes.';
    const mean = timed.reduce((a, c) => a + c.seconds, 0) / timed.length;
    const parallel = Math.max(1, count.running);
    return 'ETA: about ' + duration((mean * left) / parallel) + ' (' + left + ' cells left at ' + duration(mean) + ' each' +
      (parallel > 1 ? ', ' + parallel + ' at a time' : '') + ')';
  }

  function drawCharts(state) {
    chartsKey = state.chartsKey;
    for (const view of views) view.finalize();
    views = [];
    const box = $('charts');
    box.textContent = '';
    $('no-charts').hidden = state.charts.length > 0;
    for (const chart of state.charts) {
      const figure = document.createElement('figure');
      const container = document.createElement('div');
      container.className = 'chart';
      container.dataset.chart = chart.name;
      container.setAttribute('role', 'img');
      container.setAttribute('aria-label', chart.title);
      const caption = document.createElement('figcaption');
      caption.textContent = chart.caption;
      figure.append(container, caption);
      box.appendChild(figure);
      const view = new vega.View(vega.parse(chart.vega), { renderer: 'svg', container, hover: true });
      views.push(view);
      view.runAsync().then(
        () => { container.dataset.rendered = 'true'; },
        (error) => {
          console.error('chart ' + chart.name + ': ' + error);
          container.textContent = 'This chart could not be drawn: ' + error.message;
        });
    }
  }

  // One request at a time: a slow answer delays the next poll instead of piling requests up.
  async function poll() {
    try {
      const response = await fetch('/api/status', { cache: 'no-store' });
      if (!response.ok) throw new Error('HTTP ' + response.status);
      render(await response.json());
    } catch (error) {
      $('error').hidden = false;
      $('error').textContent = 'The dashboard server does not answer (' + error.message + '); retrying.';
    }
    setTimeout(poll, POLL_MS);
  }
  poll();
})();
`;

/** report.html's look (fonts, ink, rules, accent), plus one colour per cell state. */
const STYLE = `
:root { color-scheme: light; --ink: #1b1b1b; --muted: #555; --rule: #d6d6d6; --accent: #0072B2;
  --done: #009E73; --running: #0072B2; --queued: #E69F00; --failed: #D55E00; --pending: #999999; }
* { box-sizing: border-box; }
body { margin: 0 auto; max-width: 1280px; padding: 24px 32px 64px; font: 15px/1.5 "DejaVu Sans", system-ui, sans-serif; color: var(--ink); background: #fff; }
h1 { font-size: 1.6rem; margin: 0 0 4px; }
h2 { font-size: 1.3rem; margin: 32px 0 8px; border-bottom: 1px solid var(--rule); padding-bottom: 4px; }
code { font: 0.88em/1.3 "DejaVu Sans Mono", ui-monospace, monospace; background: #f3f3f3; padding: 0 3px; border-radius: 3px; overflow-wrap: anywhere; }
.run, .muted, .state-line { color: var(--muted); }
.run { margin: 0 0 12px; }
.notice { padding: 12px 16px; border: 1px solid var(--rule); border-radius: 4px; background: #f7f7f7; }
.notice.error { border-color: var(--failed); background: #fdf1ea; }
.counts { display: flex; flex-wrap: wrap; gap: 8px 12px; list-style: none; padding: 0; margin: 16px 0 8px; }
.count { border: 1px solid var(--rule); border-left: 4px solid var(--pending); border-radius: 4px; padding: 4px 12px; color: var(--muted); }
.count .n { font-size: 1.3rem; font-weight: bold; color: var(--ink); font-variant-numeric: tabular-nums; }
.count.done { border-left-color: var(--done); } .count.running { border-left-color: var(--running); }
.count.queued { border-left-color: var(--queued); } .count.failed { border-left-color: var(--failed); }
.count.total { border-left-color: var(--ink); }
.bar { display: flex; height: 8px; background: #ececec; border-radius: 4px; overflow: hidden; max-width: 720px; }
.bar span { transition: width 0.4s; } .bar .done { background: var(--done); } .bar .failed { background: var(--failed); } .bar .running { background: var(--running); }
.eta { margin: 8px 0 0; }
.table-wrap { overflow-x: auto; max-width: 100%; }
table { border-collapse: collapse; font-size: 13px; margin: 8px 0; }
th, td { padding: 3px 8px; border-bottom: 1px solid #e6e6e6; text-align: left; vertical-align: top; white-space: nowrap; }
th { background: #f7f7f7; border-bottom: 2px solid var(--rule); }
th.num, td.num { text-align: right; font-variant-numeric: tabular-nums; }
tbody tr:hover { background: #f4f8fb; }
td.error-text { color: var(--failed); white-space: normal; min-width: 20ch; max-width: 60ch; }
.pill { display: inline-block; padding: 0 8px; border-radius: 9px; font-size: 12px; color: #fff; background: var(--pending); }
.pill.done { background: var(--done); } .pill.running { background: var(--running); } .pill.queued { background: var(--queued); color: #1b1b1b; }
.pill.failed { background: var(--failed); }
/* Charts side by side where they fit: each figure as wide as its chart (min-content), its caption wrapping to that. */
#charts { display: flex; flex-wrap: wrap; align-items: flex-start; gap: 0 40px; }
figure { margin: 16px 0 24px; width: min-content; max-width: 100%; }
figcaption { min-width: 40ch; }
.chart { overflow-x: auto; min-height: 40px; }
figcaption { color: var(--muted); font-size: 0.92rem; max-width: 80ch; margin-top: 6px; }
`;
