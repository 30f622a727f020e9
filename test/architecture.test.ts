/** Structure the codebase promises: no import circles, and no code outside src/model/ reaching into one family. */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, normalize, relative } from 'node:path';
import { test } from 'node:test';
import { repoRoot } from './helpers.js';

const src = join(repoRoot, 'src');
const files = readdirSync(src, { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.ts')).map((f) => join(src, f));
const imports = new Map(files.map((file) => [file, [...readFileSync(file, 'utf8').matchAll(/from\s+'(\.[^']+)'/g)]
  .map((m) => normalize(join(dirname(file), m[1].replace(/\.js$/, '.ts'))))]));

test('src/ has no import circles (type imports included)', () => {
  const cycles: string[] = [];
  const state = new Map<string, 'open' | 'done'>();
  const stack: string[] = [];
  const visit = (file: string) => {
    state.set(file, 'open');
    stack.push(file);
    for (const dep of imports.get(file) ?? []) {
      if (state.get(dep) === 'open') cycles.push(stack.slice(stack.indexOf(dep)).map((f) => relative(src, f)).join(' → '));
      else if (!state.has(dep)) visit(dep);
    }
    stack.pop();
    state.set(file, 'done');
  };
  for (const file of files) if (!state.has(file)) visit(file);
  assert.deepEqual(cycles, []);
});

test('only src/model/ names a family: everything else goes through the family registry', () => {
  const families = join(src, 'model/families');
  const reaching = files.filter((f) => !f.startsWith(join(src, 'model')))
    .flatMap((f) => (imports.get(f) ?? []).filter((dep) => dep.startsWith(families) && dep !== join(families, 'index.ts')).map((dep) => `${relative(src, f)} → ${relative(src, dep)}`));
  assert.deepEqual(reaching, []);
});
