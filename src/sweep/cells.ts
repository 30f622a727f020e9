/** A sweep cell — one configuration on one task's documents — and what is read back from a complete one. */
import { readFileSync } from 'node:fs';
import type { EvalSummary } from '../eval/evaluate.js';
import type { Router } from '../routers/router.js';
import type { FewshotPrompts } from '../tasks/fewshot.js';
import type { LoadedDocs, Task, TaskDoc } from '../tasks/task.js';
import type { CellIdentity } from './identity.js';

export interface TaskData {
  readonly task: Task<TaskDoc>;
  readonly loaded: LoadedDocs<TaskDoc>;
  readonly docs: TaskDoc[];
  readonly total: number;
  readonly path: string;
  readonly fingerprint: string;
  /** The documents' few-shot examples, the same for every configuration. */
  readonly fewshot: FewshotPrompts;
}

export interface Cell {
  readonly router: Router;
  readonly config: string;
  readonly data: TaskData;
  /** `{config}_{task}`: the stem of its files. */
  readonly name: string;
  readonly file: string; // summary JSON
  readonly traceFile: string | null; // routing trace Parquet (null with trace off)
  readonly identity: CellIdentity;
  readonly key: string;
  /** A matched control's kind (topk-floor, topk-ceil, randk); absent for the grid's own cells. */
  readonly control?: string;
}

/** The stored summary of a complete cell. */
export function readCellSummary(cell: Cell): EvalSummary {
  return JSON.parse(readFileSync(cell.file, 'utf8'));
}

/** What a cell's result says on its progress line. */
export function cellResultLine(cell: Cell, summary: EvalSummary): string {
  const metric = cell.data.task.primaryMetric;
  return `${metric} ${summary.metrics[metric]?.toFixed(4)}, avg_experts ${summary.routing.avg_experts.toFixed(2)}, ` +
    `${summary.routing.tokens_per_second.toFixed(0)} tokens/s`;
}

/** What the live status shows of a finished cell. */
export function statusResult(cell: Cell, summary: EvalSummary) {
  const metric = cell.data.task.primaryMetric;
  return { metric, value: summary.metrics[metric], avgExperts: summary.routing.avg_experts, tokens: summary.timings.input_tokens, seconds: summary.timings.eval_wall_s };
}

