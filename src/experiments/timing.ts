/**
 * A sweep's timing protocol (issue: speed). Each cell's own evaluation is timed once, while the machine may be doing
 * anything; a speed comparison needs repeated timings taken under the same conditions. So every task gets one probe —
 * the same token windows, cut from the start of its own documents, for every configuration — and after a warm-up
 * pass per cell, `rounds` rounds each time every cell's forward pass over its probe once (scoring every next token,
 * as a rolling evaluation does), in an order rotated by one per round: interleaved across configurations, so a load
 * change on a shared machine spreads over all of them instead of landing on one. Per cell: the median tokens/s and its quartiles (the spread a difference must exceed).
 */
import type { MoeModel } from '../model/model.js';
import type { TextTokenizer } from '../model/tokenizer.js';
import type { Router } from '../routers/router.js';
import type { Task, TaskDoc } from '../tasks/task.js';
import { summarise } from './stats.js';

export interface TimingSpec {
  /** Timed rounds (0: no timing protocol). */
  readonly rounds: number;
  /** Tokens in each task's probe. */
  readonly tokens: number;
}

export interface CellTiming {
  readonly runs: number;
  readonly tokens: number;
  /** Median of the rounds' tokens/s, and its quartiles. */
  readonly tokens_per_second: number;
  readonly tokens_per_second_p25: number;
  readonly tokens_per_second_p75: number;
  readonly samples: readonly number[];
}

/** A task's probe: its documents' canonical text, tokenized and concatenated, cut into windows of at most `window` tokens. */
export function probeSequences(tokenizer: TextTokenizer, task: Task<TaskDoc>, docs: readonly TaskDoc[], tokens: number, window: number): number[][] {
  const ids: number[] = [];
  for (const doc of docs) {
    if (ids.length >= tokens) break;
    ids.push(...tokenizer.encode(task.fingerprint(doc)));
  }
  const probe = ids.slice(0, tokens);
  const sequences: number[][] = [];
  for (let i = 0; i < probe.length; i += window) sequences.push(probe.slice(i, i + window));
  return sequences;
}

/** The packed rows that predict a next token within their window, and the pairs scoring it (row i → its next token). */
function nextTokenScoring(sequences: readonly number[][]): { logits: Int32Array; score: { rows: Int32Array; targets: Int32Array } } {
  const rows: number[] = [];
  const targets: number[] = [];
  let offset = 0;
  for (const s of sequences) {
    for (let t = 0; t + 1 < s.length; t++) {
      rows.push(offset + t);
      targets.push(s[t + 1]);
    }
    offset += s.length;
  }
  return { logits: Int32Array.from(rows), score: { rows: Int32Array.from(rows, (_, i) => i), targets: Int32Array.from(targets) } };
}

/** Time every cell's forward pass over its probe by the protocol above; `onRound` hears of each round. */
export async function timeCells(
  model: MoeModel,
  cells: readonly { readonly name: string; readonly router: Router; readonly probe: readonly number[][] }[],
  rounds: number,
  onRound: (round: number) => void = () => {},
): Promise<Map<string, CellTiming>> {
  // What a rolling evaluation does: every position but each window's last scores the next token.
  const scoring = new Map(cells.map((cell) => [cell, nextTokenScoring(cell.probe)]));
  const pass = async (cell: (typeof cells)[number]) => {
    const { logits, score } = scoring.get(cell)!;
    const start = performance.now();
    await model.forward(cell.probe, { router: cell.router, logits, score });
    return (performance.now() - start) / 1000;
  };
  for (const cell of cells) await pass(cell); // warm-up: caches, pools, lazily sized buffers
  const seconds = cells.map(() => [] as number[]);
  for (let round = 0; round < rounds; round++) {
    for (let j = 0; j < cells.length; j++) {
      const i = (j + round) % cells.length;
      seconds[i].push(await pass(cells[i]));
    }
    onRound(round + 1);
  }
  return new Map(cells.map((cell, i) => {
    const tokens = cell.probe.reduce((n, s) => n + s.length, 0);
    const rates = seconds[i].map((s) => tokens / s);
    const r = summarise(rates);
    return [cell.name, { runs: rounds, tokens, tokens_per_second: r.p50, tokens_per_second_p25: r.p25, tokens_per_second_p75: r.p75, samples: rates }];
  }));
}
