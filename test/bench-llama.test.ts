/**
 * `routelab bench cpu --llama-cpp DIR` end to end against a stand-in llama.cpp build: shell scripts that answer as
 * llama-bench and llama-perplexity do, and a converter that writes its output file. What is checked is routelab's
 * side (conversion, the perplexity check, interleaved rounds, the table and the JSON line), not llama.cpp.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { loadNativeKernels } from '../src/backends/native.js';
import { repoRoot, tempDir } from './helpers.js';

const kernels = loadNativeKernels();
const skip = kernels instanceof Error ? kernels.message : false;
const cli = join(repoRoot, 'dist/src/cli/main.js');

/**
 * A build folder whose tools log their arguments; `ppl` is what llama-perplexity reports at -c 128, `ppl512` at -c 512
 * (the batched scoring), each with llama.cpp's closing times: 1,400.32 ms in all, 91.61 of them loading.
 */
function fakeLlamaCpp(ppl: number, ppl512 = 124.5528): { dir: string; log: string } {
  const dir = tempDir('routelab-fake-llama-');
  const log = join(dir, 'calls.log');
  const script = (name: string, body: string) => {
    writeFileSync(join(dir, name), `#!/bin/sh\necho "${name} $*" >> ${log}\n${body}\n`);
    chmodSync(join(dir, name), 0o755);
  };
  script('llama-bench', `case "$*" in *"-n 128"*) echo '{"avg_ts": 500.0}' ;; *"-p 128"*) echo '{"avg_ts": 4000.0}' ;; *) echo '{"avg_ts": 2000.0}' ;; esac`);
  script('llama-perplexity', `echo "[1]3340.8,[2]745.1," >&2
case "$*" in *"-c 512"*) p=${ppl512} ;; *) p=${ppl} ;; esac
echo "Final estimate: PPL = $p +/- 30.1" >&2
echo "llama_perf_context_print:        load time =      91.61 ms" >&2
echo "llama_perf_context_print:       total time =    1400.32 ms /  4097 tokens" >&2`);
  // The converter: `python3 convert_hf_to_gguf.py MODEL --outtype T --outfile F` writes F.
  writeFileSync(join(dir, 'convert_hf_to_gguf.py'), `import sys\nopen(sys.argv[sys.argv.index('--outfile') + 1], 'w').write('GGUF ' + sys.argv[sys.argv.index('--outtype') + 1])\n`);
  return { dir, log };
}

const python = spawnSync('python3', ['-c', '0']).status === 0;

test('bench cpu --llama-cpp: writes the GGUFs, checks perplexity, times interleaved rounds, prints ratios', { skip }, () => {
  const { dir, log } = fakeLlamaCpp(183.709);
  const r = spawnSync(process.execPath, [cli, 'bench', 'cpu', '--llama-cpp', dir, '--threads', '1', '--rounds', '2'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  // OLMoE is written by routelab itself (the converter beside the build is not needed).
  assert.match(r.stderr, /bench: writing .* as F32 GGUF\nbench: writing .* as BF16 GGUF/);
  assert.doesNotMatch(readFileSync(log, 'utf8'), /convert/);
  const lines = r.stdout.trim().split('\n');
  assert.match(lines[0], /^median of rounds\s+routelab\s+llama\.cpp F32\s+llama\.cpp BF16\s+ratio F32\s+ratio BF16$/);
  const out = JSON.parse(lines[lines.length - 1]);
  assert.equal(out.bench, 'llama-cpp');
  assert.equal(out.threads, 1);
  assert.equal(out.perplexity.f32, 183.709);
  assert.ok(Math.abs(Math.log(out.perplexity.routelab / 183.709)) < 1e-3, `routelab's perplexity ${out.perplexity.routelab}`);
  assert.equal(out.perplexity.agree, true);
  // The batched scoring's perplexity: routelab's over the same 8 × 512 tokens is close to what the stand-in says.
  assert.equal(out.scoring_perplexity.context, 512);
  assert.ok(Math.abs(Math.log(out.scoring_perplexity.routelab / 124.5528)) < 1e-3, `routelab's -c 512 perplexity ${out.scoring_perplexity.routelab}`);
  assert.equal(out.scoring_perplexity.agree, true);
  // llama-perplexity's seconds are its total less its load time: 4,096 tokens in 1.30871 s.
  const workloads = ['decode', 'prefill_128', 'prefill_512', 'prefill_2048', 'scoring'];
  assert.deepEqual(workloads.map((w) => out.llama_f32[w]), [500, 4000, 2000, 2000, 4096 / 1.30871]);
  for (const key of workloads) {
    assert.ok(out.routelab[key] > 0, key);
    assert.equal(out.ratio_bf16[key], Number((out.routelab[key] / out.llama_bf16[key]).toFixed(3)), key);
    // CPU time: routelab's own; the stand-in's (a shell script's CPU difference between runs) may be too small to read.
    assert.ok(out.routelab[`${key}_cpu`] > 0, `${key}_cpu`);
    const ref = out.llama_bf16[`${key}_cpu`];
    assert.ok(ref === null || ref > 0, `${key}_cpu ${ref}`);
    assert.equal(out.ratio_bf16[`${key}_cpu`], ref === null ? null : Number((out.routelab[`${key}_cpu`] / ref).toFixed(3)));
  }
  assert.ok(out.routelab.peak_rss_mb > 0);
  const calls = readFileSync(log, 'utf8').trim().split('\n');
  // Two conversions' outputs were given to both tools, at the thread count asked for, once per round and metric.
  // Each timed run has a shorter twin whose CPU time is subtracted (1 repetition, 1 chunk).
  const perplexities = calls.filter((c) => c.startsWith('llama-perplexity'));
  assert.equal(perplexities.length, 2 + 2 * 2 * 2);
  assert.equal(perplexities.filter((c) => / -c 512 --chunks 8 -b 4096 -t 1$/.test(c)).length, 2 * 2);
  assert.equal(perplexities.filter((c) => / -c 512 --chunks 1 -b 4096 -t 1$/.test(c)).length, 2 * 2);
  const benches = calls.filter((c) => c.startsWith('llama-bench'));
  assert.equal(benches.length, 2 * 2 * 4 * 2);
  assert.deepEqual(['-p 0 -n 128 -t 1 -r 5', '-p 128 -n 0 -t 1 -r 33', '-p 512 -n 0 -t 1 -r 9', '-p 2048 -n 0 -t 1 -r 3']
    .map((args) => benches.filter((c) => c.includes(args)).length), [4, 4, 4, 4]);
  assert.ok(benches.every((c) => / -t 1 /.test(c) && /model-(f32|bf16)\.gguf/.test(c)));
  assert.ok(!existsSync(benches[0].split(' ')[2]), 'the converted files are removed');
});

test('bench cpu --llama-cpp --convert runs llama.cpp\'s converter instead', { skip: skip || (python ? false : 'no python3') }, () => {
  const { dir, log } = fakeLlamaCpp(183.709);
  const r = spawnSync(process.execPath, [cli, 'bench', 'cpu', '--llama-cpp', dir, '--convert', join(dir, 'convert_hf_to_gguf.py'), '--threads', '1', '--rounds', '1'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, /bench: converting .* to F32 GGUF with .*convert_hf_to_gguf\.py/);
  assert.ok(readFileSync(log, 'utf8').split('\n').some((c) => /^llama-perplexity .*model-bf16\.gguf/.test(c)));
});

test('bench cpu --llama-cpp reports disagreeing perplexities and a missing converter clearly', { skip }, () => {
  const { dir } = fakeLlamaCpp(250);
  const gguf = join(dir, 'a.gguf');
  writeFileSync(gguf, 'GGUF');
  const r = spawnSync(process.execPath, [cli, 'bench', 'cpu', '--llama-cpp', dir, '--gguf', `${gguf},${gguf}`, '--threads', '1', '--rounds', '1'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, /they disagree/);
  assert.equal(JSON.parse(r.stdout.trim().split('\n').pop()!).perplexity.agree, false);
  const empty = tempDir('routelab-no-llama-');
  const missing = spawnSync(process.execPath, [cli, 'bench', 'cpu', '--llama-cpp', empty], { encoding: 'utf8' });
  assert.equal(missing.status, 2);
  assert.match(missing.stderr, /--llama-cpp: no llama-bench in /);
});
