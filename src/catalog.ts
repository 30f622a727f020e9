/**
 * What exists, for `routelab list` and for scripts: every task, router, metric and model family, read from the one
 * place each is declared (the task registry, ROUTER_KINDS, METRICS, FAMILIES) — nothing here is a second copy.
 */
import { METRICS, type MetricDefinition } from './metrics.js';
import { FAMILIES } from './model/families/index.js';
import { ROUTER_KINDS } from './routers/registry.js';
import { DEFAULT_DATA, getTask, TASK_NAMES } from './tasks/registry.js';

export const CATALOG_KINDS = ['tasks', 'routers', 'metrics', 'families'] as const;
export type CatalogKind = (typeof CATALOG_KINDS)[number];

export interface TaskEntry {
  readonly name: string;
  readonly split: string;
  readonly primary_metric: string;
  /** The metrics its aggregate reports, in its order. */
  readonly metrics: readonly string[];
  readonly formats: readonly string[];
  /** Whether its acc enters avg_task_accuracy. */
  readonly accuracy_task: boolean;
  /** Where its data is found by default: lm-eval's hub dataset, and the folder under a sweep's --data-dir. */
  readonly hub_dataset: string | null;
  readonly data_dir_folder: string;
}

export interface RouterKeyEntry {
  readonly key: string;
  /** What the key is and the values it takes. */
  readonly meaning: string;
  /** The default as its declaration words it ("1", "the config's num_experts_per_tok"), or null when required. */
  readonly default: string | null;
  readonly required: boolean;
}

export interface RouterEntry {
  readonly name: string;
  readonly summary: string;
  readonly keys: readonly RouterKeyEntry[];
}

export interface FamilyEntry {
  readonly model_type: string;
  readonly title: string;
  readonly example: string;
}

export function listTasks(): TaskEntry[] {
  return TASK_NAMES.map((name) => {
    const task = getTask(name);
    return {
      name,
      split: task.split,
      primary_metric: task.primaryMetric,
      // The aggregate of no documents still names every metric (their values are NaN).
      metrics: Object.keys(task.aggregate([])),
      formats: [...task.formats],
      accuracy_task: task.isAccuracyTask,
      hub_dataset: DEFAULT_DATA[name].hub,
      data_dir_folder: DEFAULT_DATA[name].shared,
    };
  });
}

/** A key's meaning is declared as "what, values; default X" or "what, values; required". */
function routerKey({ key, meaning }: { key: string; meaning: string }): RouterKeyEntry {
  const cut = meaning.lastIndexOf('; ');
  const tail = cut < 0 ? '' : meaning.slice(cut + 2);
  if (tail === 'required') return { key, meaning: meaning.slice(0, cut), default: null, required: true };
  if (tail.startsWith('default ')) return { key, meaning: meaning.slice(0, cut), default: tail.slice('default '.length), required: false };
  return { key, meaning, default: null, required: false };
}

export function listRouters(): RouterEntry[] {
  return ROUTER_KINDS.map((k) => ({ name: k.name, summary: k.summary, keys: k.keys.map(routerKey) }));
}

export function listMetrics(): (MetricDefinition & { readonly tasks: readonly string[] })[] {
  const tasks = listTasks();
  return METRICS.map((m) => ({ ...m, tasks: tasks.filter((t) => t.metrics.includes(m.key)).map((t) => t.name) }));
}

export function listFamilies(): FamilyEntry[] {
  return FAMILIES.map((f) => ({ model_type: f.modelType, title: f.title, example: f.example }));
}

export function catalog(kind: CatalogKind): readonly object[] {
  switch (kind) {
    case 'tasks': return listTasks();
    case 'routers': return listRouters();
    case 'metrics': return listMetrics();
    case 'families': return listFamilies();
  }
}
