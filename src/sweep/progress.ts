/**
 * Sweep progress on stderr: on a terminal, a live line with the sweep's overall bar and the current cell's bar,
 * rate and ETA; elsewhere (logs, CI) plain lines, one per cell; nothing but errors with --quiet.
 */
export interface Progress {
  /** A plain message (skips, calibration, summaries). */
  log(line: string): void;
  /** A cell begins: `index` of `total` cells. */
  startCell(index: number, total: number, name: string): void;
  /** Scoring units done so far in the current cell, and the tokens they scored. */
  update(done: number, total: number, seconds: number, tokens: number): void;
  /** The cell finished; `summary` is its one-line result. */
  endCell(summary: string): void;
}

function bar(fraction: number, width: number): string {
  const filled = Math.round(Math.max(0, Math.min(1, fraction)) * width);
  return `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}]`;
}

function clock(seconds: number): string {
  if (!Number.isFinite(seconds)) return '--:--';
  const s = Math.round(seconds);
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
}

/**
 * `label` starts every line (other commands show their progress the same way: `calibrate`), `units` names what
 * update() counts (scoring units; calibration counts tokens).
 */
export function createProgress(stream: NodeJS.WriteStream, quiet: boolean, { label = 'sweep', units = 'units' } = {}): Progress {
  if (quiet) return { log() {}, startCell() {}, update() {}, endCell() {} };
  const tty = stream.isTTY === true;
  let cell = { index: 0, total: 0, name: '' };
  let lastDraw = 0;
  const clear = () => tty && stream.write('\r\x1b[2K');
  return {
    log(line) {
      clear();
      stream.write(`${line}\n`);
    },
    startCell(index, total, name) {
      cell = { index, total, name };
      if (!tty) stream.write(`${label}: [${index + 1}/${total}] ${name} …\n`);
    },
    update(done, total, seconds, tokens) {
      if (!tty) return;
      const now = performance.now();
      if (now - lastDraw < 100 && done < total) return;
      lastDraw = now;
      const eta = ((total - done) * seconds) / Math.max(done, 1e-9);
      const overall = (cell.index + done / Math.max(total, 1)) / Math.max(cell.total, 1);
      const width = Math.max(10, Math.min(30, (stream.columns ?? 100) - 90));
      clear();
      stream.write(`${label} ${bar(overall, 10)} ${cell.index + 1}/${cell.total} ${cell.name} ${bar(done / Math.max(total, 1), width)} ` +
        `${done}/${total} ${units} ${(tokens / Math.max(seconds, 1e-9)).toFixed(0)} tokens/s ETA ${clock(eta)}`);
    },
    endCell(summary) {
      clear();
      stream.write(`${label}: [${cell.index + 1}/${cell.total}] ${cell.name}: ${summary}\n`);
    },
  };
}
