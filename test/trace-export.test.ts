import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { parquetMetadata, parquetReadObjects, parquetSchema } from 'hyparquet';
import { compressors } from 'hyparquet-compressors';
import { loadTokenizer } from '../src/model/tokenizer.js';
import { readTrace, type TraceChunk } from '../src/trace/reader.js';
import { gutenbergDir, repoRoot, tempDir } from './helpers.js';

const cli = join(repoRoot, 'dist/src/cli/main.js');
const routelab = (...args: string[]) => spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', env: { ...process.env, HF_HUB_OFFLINE: '1' } });

/** An eval of two LAMBADA documents with an adaptive router, its trace at `level`. */
function evalTrace(level: 'counts' | 'full', router = 'topp:p=0.2,max_k=8'): string {
  const out = tempDir();
  const r = routelab('eval', '--model', gutenbergDir, '--task', 'lambada_openai', '--data', join(repoRoot, 'data/lambada_openai'),
    '--limit', '2', '--max-length', '32', '--router', router, '--trace', level, '--no-determinism', '--quiet', '--out', out);
  assert.equal(r.status, 0, r.stderr);
  return join(out, readdirSync(out).find((f) => f.endsWith('_routing.parquet'))!);
}

async function chunks(file: string): Promise<{ chunks: TraceChunk[]; maxK: number; numExperts: number }> {
  const trace = await readTrace(file);
  const all: TraceChunk[] = [];
  for await (const c of trace.chunks()) all.push(c);
  return { chunks: all, maxK: trace.meta.maxK, numExperts: trace.meta.numExperts };
}

const read = async (file: string) => parquetReadObjects({ file: new Uint8Array(readFileSync(file)).buffer, compressors });

test('trace export --format parquet: list columns of experts and weights, equal to the trace decoded', async () => {
  const file = evalTrace('counts');
  const out = join(tempDir(), 'wide.parquet');
  const r = routelab('trace', 'export', file, '--format', 'parquet', '--model', gutenbergDir, '--out', out);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, /trace export: \d+ rows × 10 columns/);
  // A standard 3-level LIST schema (what pyarrow, polars and DuckDB read as list<int32> / list<float>).
  const schema = parquetSchema(parquetMetadata(new Uint8Array(readFileSync(out)).buffer));
  const experts = schema.children.find((c) => c.element.name === 'experts')!;
  assert.equal(experts.element.converted_type, 'LIST');
  assert.equal(experts.children[0].element.repetition_type, 'REPEATED');
  assert.equal(experts.children[0].children[0].element.type, 'INT32');
  const rows = await read(out);
  const { chunks: trace, maxK } = await chunks(file);
  const expected = trace.flatMap((c) => Array.from({ length: c.rows }, (_, r) => ({
    doc: c.doc[r], seq: c.seq[r], pos: c.pos[r], token: c.token[r], layer: c.layer[r], count: c.count[r],
    experts: Array.from(c.experts.subarray(r * maxK, r * maxK + c.count[r])),
    weights: Array.from(c.weights.subarray(r * maxK, r * maxK + c.count[r])),
  })));
  assert.equal(rows.length, expected.length);
  const tokenizer = loadTokenizer(gutenbergDir)!;
  rows.forEach((row, i) => {
    const { token_text: text, decoder_layer: decoder, ...rest } = row as Record<string, unknown>;
    assert.deepEqual(rest, expected[i]);
    assert.equal(decoder, expected[i].layer, 'every layer of this model is MoE');
    assert.equal(text, tokenizer.decode([expected[i].token]));
  });
  assert.ok(new Set(rows.map((r) => r.count)).size > 1, 'an adaptive router: counts vary');
});

test('trace export --long: one row per selected expert; full traces add router logits and p-values; csv reads the same', async () => {
  const file = evalTrace('full', 'topk:k=4');
  const { chunks: trace, maxK, numExperts } = await chunks(file);
  const long = join(tempDir(), 'long.parquet');
  assert.equal(routelab('trace', 'export', file, '--format', 'parquet', '--long', '--out', long).status, 0);
  const rows = await read(long);
  const expected = trace.flatMap((c) => Array.from({ length: c.rows }, (_, r) => Array.from({ length: c.count[r] }, (_, j) => {
    const expert = c.experts[r * maxK + j];
    return { doc: c.doc[r], seq: c.seq[r], pos: c.pos[r], token: c.token[r], layer: c.layer[r], decoder_layer: c.layer[r], rank: j, expert,
      weight: c.weights[r * maxK + j], router_logit: c.routerLogits![r * numExperts + expert], p_value: null };
  })).flat());
  assert.equal(rows.length, expected.length);
  assert.deepEqual(rows.slice(0, 50), expected.slice(0, 50));
  assert.deepEqual(rows.at(-1), expected.at(-1));

  const wide = join(tempDir(), 'wide.parquet');
  assert.equal(routelab('trace', 'export', file, '--format', 'parquet', '--out', wide).status, 0);
  const first = (await read(wide))[0] as Record<string, unknown>;
  assert.equal((first.router_logits as number[]).length, numExperts);
  assert.equal(first.p_values, undefined, 'topk reports no p-values: null');

  const csv = join(tempDir(), 'long.csv');
  assert.equal(routelab('trace', 'export', file, '--format', 'csv', '--long', '--out', csv).status, 0);
  const lines = readFileSync(csv, 'utf8').trimEnd().split('\n');
  assert.equal(lines[0], 'doc,seq,pos,token,layer,decoder_layer,rank,expert,weight,router_logit,p_value');
  assert.equal(lines.length, expected.length + 1);
  const cells = lines[1].split(',');
  assert.deepEqual(cells.slice(0, 8).map(Number), [expected[0].doc, expected[0].seq, expected[0].pos, expected[0].token, expected[0].layer, expected[0].layer, 0, expected[0].expert]);
  assert.equal(Math.fround(Number(cells[8])), expected[0].weight, 'float32 values round-trip');
  assert.equal(Math.fround(Number(cells[9])), expected[0].router_logit);
  assert.equal(cells[10], '');

  const wideCsv = join(tempDir(), 'wide.csv');
  assert.equal(routelab('trace', 'export', file, '--format', 'csv', '--out', wideCsv).status, 0);
  const [header, row] = readFileSync(wideCsv, 'utf8').split('\n');
  assert.equal(header, 'doc,seq,pos,token,layer,decoder_layer,count,experts,weights,router_logits,p_values');
  const lists = [...row.matchAll(/"\[([^\]]*)\]"/g)].map((m) => m[1].split(',').map(Number));
  assert.deepEqual(lists[0], Array.from(trace[0].experts.subarray(0, trace[0].count[0])), 'experts as a JSON array');
  assert.equal(lists.length, 3);
});

test('trace export and show refuse bad requests with the valid choices; show names the valid --doc and --layer range', () => {
  const file = evalTrace('counts', 'topk:k=2');
  const cases: [string[], RegExp][] = [
    [['export', file, '--format', 'xlsx', '--out', '/tmp/x'], /--format: expected parquet or csv, got "xlsx"/],
    [['export', file, '--format', 'csv'], /--out: is required/],
    [['show', file, '--doc', '99'], /--doc: 99 is not in the trace: it has 2 documents, 0…1/],
    [['show', file, '--layer', '9'], /--layer: 9 is out of range: the trace has 4 MoE layers, 0…3/],
    [['show', file, '--layer=-1'], /--layer: -1 is out of range/],
  ];
  for (const [args, pattern] of cases) {
    const r = routelab('trace', ...args);
    assert.equal(r.status, 2, args.join(' '));
    assert.match(r.stderr, pattern);
  }
  const ok = routelab('trace', 'show', file, '--doc', '1', '--layer', '3', '--max-rows', '3');
  assert.equal(ok.status, 0, ok.stderr);
  assert.match(ok.stdout, /document 1: \d+ rows/);
});
