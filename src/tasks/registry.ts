/** The tasks by lm-eval name, and where each one's data lives by default. */
import { RoutelabError } from '../errors.js';
import { boolq } from './boolq.js';
import { hellaswag } from './hellaswag.js';
import { lambadaOpenai } from './lambada.js';
import { mrpc } from './mrpc.js';
import { rte } from './rte.js';
import { sst2 } from './sst2.js';
import type { Task, TaskDoc } from './task.js';
import { text } from './text.js';
import { wikitext } from './wikitext.js';

// Each task is typed by its own document; the engine sees them through the common Task<TaskDoc> seam.
const TASKS: readonly Task<TaskDoc>[] = [wikitext, lambadaOpenai, hellaswag, sst2, rte, mrpc, boolq, text];

export const TASK_NAMES: readonly string[] = TASKS.map((t) => t.name);

export function getTask(name: string): Task<TaskDoc> {
  const task = TASKS.find((t) => t.name === name);
  if (!task) throw new RoutelabError(name, `unknown task; known tasks: ${TASK_NAMES.join(', ')}`);
  return task;
}

export interface DefaultData {
  /** Hugging Face dataset id lm-eval reads (found in the hub cache, else downloaded); null for corpora named by path. */
  readonly hub: string | null;
  /** The copy under the shared data folder (`shared/data/…`), relative to it. */
  readonly shared: string;
}

/** Default data per task: lm-eval's hub dataset, and the folder in shared/data that holds the same split. */
export const DEFAULT_DATA: Readonly<Record<string, DefaultData>> = {
  wikitext: { hub: 'EleutherAI/wikitext_document_level', shared: 'wikitext-2-raw-v1' },
  lambada_openai: { hub: 'EleutherAI/lambada_openai', shared: 'lambada_openai' },
  hellaswag: { hub: 'Rowan/hellaswag', shared: 'hellaswag' },
  sst2: { hub: 'nyu-mll/glue', shared: 'glue/sst2' },
  rte: { hub: 'nyu-mll/glue', shared: 'glue/rte' },
  mrpc: { hub: 'nyu-mll/glue', shared: 'glue/mrpc' },
  boolq: { hub: 'google/boolq', shared: 'boolq' },
  // Held-out Project Gutenberg prose (no hub dataset: any corpus, by path).
  text: { hub: null, shared: 'gutenberg-heldout' },
};
