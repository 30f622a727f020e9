import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { parseArchitecture } from '../src/model/families/index.js';
import { SafetensorsFile, writeSafetensors } from '../src/model/safetensors.js';
import { tensorLayout } from '../src/model/tensors.js';
import { gutenbergDir, maxAbsDiff, parityDir, parityExpected, repoRoot, tempDir } from './helpers.js';

const cli = join(repoRoot, 'dist/src/cli/main.js');

function routelab(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', env: { ...process.env, HF_HUB_OFFLINE: '1' } });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('forward on the parity ids writes Hugging Face-equal logits, router logits and expert counts', () => {
  const out = join(tempDir(), 'out.safetensors');
  const r = routelab('forward', '--model', parityDir, '--input', parityExpected, '--out', out);
  assert.equal(r.status, 0, r.stderr);
  const got = SafetensorsFile.open(out);
  const expected = SafetensorsFile.open(parityExpected);
  assert.deepEqual(got.entry('logits').shape, [2, 24, 1024]);
  assert.deepEqual(got.entry('router_logits').shape, [2, 48, 64]);
  assert.deepEqual(got.entry('expert_counts'), { ...got.entry('expert_counts'), dtype: 'I64', shape: [2, 48] });
  assert.ok(maxAbsDiff(got.readArray('logits', 'F32'), expected.readArray('logits', 'F32')) < 1e-3);
  assert.ok(maxAbsDiff(got.readArray('router_logits', 'F32'), expected.readArray('router_logits', 'F32')) < 1e-3);
  assert.ok(got.readArray('expert_counts', 'I64').every((c) => c === 8n));
  assert.match(got.metadata.router, /^topk:k=8,renormalize=false$/);
  assert.deepEqual(readdirSync(join(out, '..')), ['out.safetensors']); // no temp file left behind
});

test('forward takes ragged JSON ids and left-padded safetensors ids, padding with zeros', () => {
  const dir = tempDir();
  const json = join(dir, 'ids.json');
  writeFileSync(json, JSON.stringify([[5, 6, 7, 8], [9, 10]]));
  const fromJson = join(dir, 'json.safetensors');
  assert.equal(routelab('forward', '--model', parityDir, '--input', json, '--router', 'topk:k=4', '--out', fromJson).status, 0);
  const a = SafetensorsFile.open(fromJson);
  assert.deepEqual(a.entry('logits').shape, [2, 4, 1024]);
  assert.deepEqual(Array.from(a.readArray('expert_counts', 'I64'), Number), [4, 4, 4, 4, 4, 4, 0, 0, 4, 4, 4, 4, 4, 4, 0, 0]);
  assert.ok(a.readArray('logits', 'F32').subarray(6 * 1024).every((x) => x === 0));

  // The same two sequences as a left-padded batch with an attention mask give the same logits.
  const st = join(dir, 'ids.safetensors');
  writeSafetensors(st, [
    { name: 'input_ids', dtype: 'I64', shape: [2, 4], data: BigInt64Array.of(5n, 6n, 7n, 8n, 1n, 1n, 9n, 10n) },
    { name: 'attention_mask', dtype: 'I64', shape: [2, 4], data: BigInt64Array.of(1n, 1n, 1n, 1n, 0n, 0n, 1n, 1n) },
  ]);
  const fromMask = join(dir, 'mask.safetensors');
  assert.equal(routelab('forward', '--model', parityDir, '--input', st, '--router', 'topk:k=4', '--out', fromMask).status, 0);
  assert.deepEqual(SafetensorsFile.open(fromMask).readArray('logits', 'F32'), a.readArray('logits', 'F32'));
});

test('forward --text tokenizes with the model tokenizer, and fails clearly without one', () => {
  const out = join(tempDir(), 't.safetensors');
  const ok = routelab('forward', '--model', gutenbergDir, '--text', 'Hello world', '--text', 'The old man', '--out', out);
  assert.equal(ok.status, 0, ok.stderr);
  assert.deepEqual(SafetensorsFile.open(out).entry('logits').shape, [2, 3, 50304]);
  const none = routelab('forward', '--model', parityDir, '--text', 'Hello');
  assert.equal(none.status, 2);
  assert.match(none.stderr, /no tokenizer\.json in this model directory/);
});

test('bad input gets one clear error and exit status 2, with nothing written', () => {
  const dir = tempDir();
  const out = join(dir, 'never.safetensors');
  const ids = join(dir, 'ids.json');
  writeFileSync(ids, '[[1, 2, 3]]');
  const cases: [string[], RegExp][] = [
    [['--router', 'topk:k=65'], /--router.*k.*65/s],
    [['--router', 'topk:q=2'], /unknown key "?q"?.*k/s],
    [['--router', 'nope:k=2'], /topk.*bh.*topp|known routers/s],
    [['--router', 'bh:alpha=1.5,max_k=8,null=x.json'], /alpha/],
  ];
  for (const [args, pattern] of cases) {
    const r = routelab('forward', '--model', parityDir, '--input', ids, '--out', out, ...args);
    assert.equal(r.status, 2, args.join(' '));
    assert.match(r.stderr, pattern);
    assert.doesNotMatch(r.stderr, /    at /, 'no stack trace for bad input');
  }
  writeFileSync(ids, '[[1, 5000]]');
  const big = routelab('forward', '--model', parityDir, '--input', ids, '--out', out);
  assert.match(big.stderr, /token id 5000 is not in \[0, vocab_size 1024\)/);
  writeFileSync(ids, '[]');
  assert.match(routelab('forward', '--model', parityDir, '--input', ids).stderr, /non-empty/);
  assert.match(routelab('forward', '--model', join(dir, 'missing'), '--input', ids).stderr, /no such model directory/);
  assert.match(routelab('frobnicate').stderr, /unknown command "frobnicate"/);
  assert.match(routelab('forward', '--model', parityDir, '--bogus').stderr, /bogus/);
  assert.equal(existsSync(out), false);
});

test('generate streams the greedy continuation the model card records, through the KV cache', () => {
  const r = routelab('generate', '--model', gutenbergDir, '--prompt', 'The old man', '--max-new-tokens', '30');
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout, 'The old man, and the\ntravared, and the other, and the other of the same\ns-tch, and the other, and the\n');
  assert.match(r.stderr, /30 new tokens/);
});

test('generate samples reproducibly with a seed', () => {
  const args = ['generate', '--model', gutenbergDir, '--prompt', 'It was a dark', '--max-new-tokens', '12', '--temperature', '0.8', '--top-p', '0.9'];
  const a = routelab(...args, '--seed', '1');
  assert.equal(a.status, 0, a.stderr);
  assert.equal(routelab(...args, '--seed', '1').stdout, a.stdout);
  assert.notEqual(routelab(...args, '--seed', '2').stdout, a.stdout);
});

test('inspect prints architecture, parameter counts, dtypes and shards', () => {
  const r = routelab('inspect', gutenbergDir);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /family +OLMoE \(olmoe\); default router topk:k=8,renormalize=false/);
  assert.match(r.stdout, /4 layers, hidden 128, vocab 50304; grouped-query attention, 4 heads \(4 kv, q\/k 32, v 32\); 64 experts × 128, top-8/);
  assert.match(r.stdout, /total 25,757,824 \(25\.76 M\)/);
  assert.match(r.stdout, /active per token under topk:k=8,renormalize=false: 14,747,776 /);
  assert.match(r.stdout, /without the input embedding: 8,308,864 .*without embedding and lm_head: 1,869,952/);
  assert.match(r.stdout, /BF16 25,757,824/);
  assert.match(r.stdout, /model\.safetensors .*807 tensors/);
  const json = JSON.parse(routelab('inspect', gutenbergDir, '--router', 'topp:p=0.5,min_k=2,max_k=16', '--json').stdout);
  assert.deepEqual(json.parameters.activePerToken, [25757824 - 4 * 62 * 3 * 128 * 128, 25757824 - 4 * 48 * 3 * 128 * 128]);
});

test('a checkpoint larger than the memory available is refused before any weight is read', () => {
  // An OLMoE-shaped checkpoint of 103 GB as a sparse file: the header is real, the bytes are holes on disk.
  const dir = tempDir();
  const config = {
    model_type: 'olmoe', hidden_size: 4096, intermediate_size: 4096, num_hidden_layers: 16, num_attention_heads: 32,
    num_experts: 64, num_experts_per_tok: 8, vocab_size: 1024, eos_token_id: 1,
  };
  writeFileSync(join(dir, 'config.json'), JSON.stringify(config));
  const { family, architecture } = parseArchitecture(config);
  const header: Record<string, unknown> = {};
  let offset = 0;
  for (const t of tensorLayout(family, architecture)) {
    const bytes = 2 * t.shape.reduce((a, b) => a * b, 1);
    header[t.name] = { dtype: 'BF16', shape: t.shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  const json = Buffer.from(JSON.stringify(header));
  const file = join(dir, 'model.safetensors');
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(BigInt(json.length));
  writeFileSync(file, Buffer.concat([length, json]));
  truncateSync(file, 8 + json.length + offset);
  writeFileSync(join(dir, 'ids.json'), '[[1, 2, 3]]');
  const started = performance.now();
  const r = routelab('forward', '--model', dir, '--input', join(dir, 'ids.json'), '--out', join(dir, 'out.safetensors'));
  assert.equal(r.status, 2, r.stderr);
  assert.match(r.stderr, /its weights need 10[0-9]\.\d\d GB \(\d+ bytes\) of memory, but only [\d.]+ GB \(\d+ bytes\) is available/);
  assert.ok(performance.now() - started < 20_000, 'refused without reading the weights');
  assert.ok(!existsSync(join(dir, 'out.safetensors')));
});
