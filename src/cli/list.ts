import { CATALOG_KINDS, catalog, listFamilies, listMetrics, listRouters, listTasks, type CatalogKind } from '../catalog.js';
import { RoutelabError } from '../errors.js';
import type { Command } from './command.js';

export const listCommand: Command = {
  name: 'list',
  summary: 'list what exists: tasks (data formats, metrics), routers (keys, defaults), metrics (definition, direction), model families',
  usage: `Usage: routelab list tasks|routers|metrics|families [--json]

  tasks      every task: split, primary metric, metrics, data formats, where its data is looked for
  routers    every router spec name with its keys, what each takes and its default
  metrics    every metric routelab reports: its definition, which direction is better, the tasks that report it
  families   every model family (config.json model_type) with a public checkpoint of it
  --json     print one JSON array instead of text`,
  options: {
    json: { type: 'boolean', default: false },
  },
  allowPositionals: true,
  async run(values, positionals) {
    const kind = positionals[0];
    if (positionals.length !== 1 || !(CATALOG_KINDS as readonly string[]).includes(kind)) {
      throw new RoutelabError('routelab list', `expected one of ${CATALOG_KINDS.join(', ')}, got ${positionals.length ? JSON.stringify(positionals.join(' ')) : 'nothing'}`);
    }
    if (values.json) {
      console.log(JSON.stringify(catalog(kind as CatalogKind), null, 2));
      return;
    }
    console.log(TEXT[kind as CatalogKind]());
  },
};

const pad = (rows: readonly (readonly string[])[]): string[] => {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]))).join('  ').trimEnd());
};

const TEXT: Readonly<Record<CatalogKind, () => string>> = {
  tasks: () => listTasks().map((t) => [
    `${t.name}  (split ${t.split}; primary metric ${t.primary_metric}${t.accuracy_task ? '; enters avg_task_accuracy' : ''})`,
    `  metrics  ${t.metrics.join(', ')}`,
    `  formats  ${t.formats.join(', ')}`,
    `  data     --data-dir folder ${t.data_dir_folder}/${t.hub_dataset ? `, or the hub dataset ${t.hub_dataset}` : ", or any corpus by path"}`,
  ].join('\n')).join('\n\n'),
  routers: () => listRouters().map((r) => [
    `${r.name}: ${r.summary}`,
    ...pad(r.keys.map((k) => [`  ${k.key}`, `${k.meaning} (${k.required ? 'required' : `default: ${k.default}`})`])),
  ].join('\n')).join('\n\n'),
  metrics: () => {
    const better = (b: string | null) => (b === null ? 'neither' : `${b} is better`);
    const kinds = [...new Set(listMetrics().map((m) => m.kind))];
    return kinds.map((kind) => [
      `${kind} metrics`,
      ...pad(listMetrics().filter((m) => m.kind === kind).map((m) => [
        `  ${m.key}`, better(m.better), `${m.definition}${m.unit ? ` [${m.unit}]` : ''}${m.tasks.length ? ` (tasks: ${m.tasks.join(', ')})` : ''}`,
      ])),
    ].join('\n')).join('\n\n');
  },
  families: () => pad([['model_type', 'family', 'example checkpoint'], ...listFamilies().map((f) => [f.model_type, f.title, f.example])]).join('\n'),
};
