import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { repoRoot, tempDir } from './helpers.js';

const npm = spawnSync('npm', ['--version'], { encoding: 'utf8' }).status === 0;

/** The README's example of using routelab from another project, exactly as printed there. */
function readmeExample(): { install: string; code: string } {
  const readme = readFileSync(join(repoRoot, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('### From another project'));
  const install = /```bash\n([\s\S]*?)```/.exec(section)![1];
  const code = /```js\n([\s\S]*?)```/.exec(section)![1];
  return { install, code };
}

test('the README\'s library example runs as written in a separate project that installed routelab with npm', { skip: npm ? false : 'no npm on PATH' }, () => {
  const { install, code } = readmeExample();
  assert.match(install, /npm install \/path\/to\/routelab/);
  const project = tempDir('routelab-consumer-');
  writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'my-study', version: '1.0.0', private: true, type: 'module' }));
  // This checkout is built already, and no registry is needed: npm links the folder (its scripts would rebuild it).
  const installed = spawnSync('npm', ['install', '--offline', '--ignore-scripts', '--no-audit', '--no-fund', repoRoot], { cwd: project, encoding: 'utf8' });
  assert.equal(installed.status, 0, installed.stderr);
  assert.equal(JSON.parse(readFileSync(join(project, 'package.json'), 'utf8')).dependencies.routelab.startsWith('file:'), true);
  writeFileSync(join(project, 'study.mjs'), code);
  const run = spawnSync(process.execPath, ['study.mjs'], { cwd: project, encoding: 'utf8', env: { ...process.env, HF_HUB_OFFLINE: '1' } });
  assert.equal(run.status, 0, run.stderr);
  const lines = run.stdout.trim().split('\n');
  assert.equal(lines.length, 3, run.stdout);
  assert.match(lines[0], /^8experts_topk_baseline: token perplexity \d+\.\d, 8\.00 experts\/token$/);
  assert.match(lines[1], /^2experts_topk_baseline: token perplexity \d+\.\d, 2\.00 experts\/token$/);
  assert.match(lines[2], /^8experts_topp_p020: token perplexity \d+\.\d, \d\.\d{2} experts\/token$/);
});
