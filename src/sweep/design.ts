/**
 * One run directory holds one sweep design. Re-running the same sweep into it resumes; running a different one
 * (another limit, grid, task list, trace level, model, …) is refused with what differs, or — with --force — starts
 * afresh after removing the previous run's outputs (only the files a sweep and its report write; nothing else).
 */
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { SweepSpec } from './spec.js';
import { STATUS_FILE } from './status.js';

/** Spec fields that do not change any result (a document's scores never depend on its batch; profiling and timing only add files). */
const NOT_DESIGN: ReadonlySet<string> = new Set(['batchSize', 'profile', 'timing']);

/**
 * A spec field as compared: tasks by name and data (not by how they were named); calibration with the estimator a
 * spec recorded before the field existed calibrated with (kde).
 */
function comparable(key: string, value: unknown): unknown {
  if (key === 'tasks' && Array.isArray(value)) return value.map((t: { name?: unknown; data?: unknown }) => ({ name: t.name, data: t.data ?? null }));
  if (key === 'calibration' && typeof value === 'object' && value !== null) return { estimator: 'kde', maxComponents: null, ...value };
  return value ?? null;
}

function shown(key: string, value: unknown): string {
  if (key === 'tasks' && Array.isArray(value)) return `[${value.map((t: { name: string; data: string | null }) => (t.data ? `${t.name} (${t.data})` : t.name)).join(', ')}]`;
  return JSON.stringify(value);
}

/** How `next` differs from the spec a previous run recorded (manifest.json `spec`), one phrase per field; empty when the same design. */
export function specDifferences(previous: unknown, next: SweepSpec): string[] {
  const before = (typeof previous === 'object' && previous !== null ? previous : {}) as Record<string, unknown>;
  const after = next as unknown as Record<string, unknown>;
  const keys = [...new Set([...Object.keys(after), ...Object.keys(before)])].filter((k) => !NOT_DESIGN.has(k));
  const differences: string[] = [];
  for (const key of keys) {
    const [a, b] = [comparable(key, before[key]), comparable(key, after[key])];
    if (JSON.stringify(a) === JSON.stringify(b)) continue;
    if (key === 'routers' && Array.isArray(a) && Array.isArray(b)) {
      const added = b.filter((r) => !a.includes(r));
      const removed = a.filter((r) => !b.includes(r));
      const parts = [added.length && `adds ${added.join(', ')}`, removed.length && `drops ${removed.join(', ')}`, !added.length && !removed.length && 'reorders them'];
      differences.push(`routers: ${parts.filter(Boolean).join('; ')}`);
    } else {
      differences.push(`${key}: ${shown(key, a)} before, ${shown(key, b)} now`);
    }
  }
  return differences;
}

/** The manifest of the run in `runDir`, when a sweep finished there (null otherwise or when unreadable). */
export function previousManifest(runDir: string): Record<string, unknown> | null {
  try {
    const manifest = JSON.parse(readFileSync(join(runDir, 'manifest.json'), 'utf8'));
    return typeof manifest === 'object' && manifest !== null && manifest.format === 'routelab.sweep/1' ? manifest : null;
  } catch {
    return null;
  }
}

function isCellSummary(file: string): boolean {
  try {
    const s = JSON.parse(readFileSync(file, 'utf8'));
    return s?.format === 'routelab.eval/1' && typeof s.cell_key === 'string';
  } catch {
    return false;
  }
}

/**
 * Remove what a sweep (and its report) wrote into `runDir`: cell summaries and traces, profiles, results.*, the
 * manifest, the report, and the calibrated null.json unless `keep` names it. Other files stay.
 */
export function clearRun(runDir: string, keep: readonly string[] = []): string[] {
  if (!existsSync(runDir)) return [];
  const kept = new Set(keep.map((f) => resolve(f)));
  const removed: string[] = [];
  for (const name of readdirSync(runDir)) {
    const file = join(runDir, name);
    const ours = ['results.csv', 'results.json', 'results.parquet', 'manifest.json', 'null.json', 'timing.json', 'report', STATUS_FILE].includes(name) ||
      name.endsWith('_routing.parquet') || name.endsWith('_profile.json') || name.startsWith('.report-') ||
      (name.startsWith('.') && name.endsWith('.tmp')) || (name.endsWith('.json') && isCellSummary(file));
    if (!ours || kept.has(resolve(file))) continue;
    rmSync(file, { recursive: true, force: true });
    removed.push(name);
  }
  return removed;
}
