#!/usr/bin/env node
// Build the optional native kernels (native/build/routelab_kernels.node) with the system C++ compiler against the
// Node-API headers that ship with Node itself: no network, no node-gyp download. A failed build is not an error —
// routelab then runs on its pure-TypeScript reference backend — so this script always exits 0 unless --strict.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const strict = process.argv.includes('--strict');
const source = join(here, 'routelab_kernels.cc');
const output = join(here, 'build', 'routelab_kernels.node');
const candidates = [
  process.env.npm_config_nodedir && join(process.env.npm_config_nodedir, 'include', 'node'),
  join(dirname(dirname(process.execPath)), 'include', 'node'),
].filter(Boolean);
const include = candidates.find((dir) => existsSync(join(dir, 'node_api.h')));
const cxx = process.env.CXX || 'g++';

function fail(message) {
  console.warn(`routelab: native kernels not built (${message}); the reference 'cpu' backend will be used`);
  process.exit(strict ? 1 : 0);
}

if (process.platform !== 'linux' || process.arch !== 'x64') fail(`no x86-64 Linux (${process.platform}/${process.arch})`);
if (!include) fail(`node_api.h not found in ${candidates.join(', ')}`);
mkdirSync(dirname(output), { recursive: true });
const args = ['-O3', '-std=c++17', '-mavx2', '-mfma', '-mf16c', '-fPIC', '-shared', '-pthread', '-fvisibility=hidden',
  '-DNAPI_VERSION=8', '-DNODE_GYP_MODULE_NAME=routelab_kernels', '-I', include, source, '-o', output];
try {
  execFileSync(cxx, args, { stdio: ['ignore', 'inherit', 'inherit'] });
} catch (e) {
  fail(`${cxx} failed: ${e.message.split('\n')[0]}`);
}
console.log(`routelab: built ${output}`);
