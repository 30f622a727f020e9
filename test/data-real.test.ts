/**
 * The full real data in ../shared/data (relative to the repo root): document counts of every task, and the wikitext
 * pages checked against a Python run of EleutherAI's builder + lm-eval's detokenizer. Skipped when the folder is absent.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DEFAULT_DATA, getTask } from '../src/tasks/registry.js';
import { fingerprintDocs } from '../src/tasks/selection.js';
import { wikitext, wikitextDetokenize, wikitextWords, utf8Bytes } from '../src/tasks/wikitext.js';

const REPO_ROOT = path.join(import.meta.dirname, '..', '..');
const SHARED = path.join(REPO_ROOT, '..', 'shared', 'data');
const skip = fs.existsSync(SHARED) ? false : `no ${SHARED}`;
const FIXTURE_WIKI = path.join(REPO_ROOT, 'test', 'fixtures', 'data', 'wikitext', 'wiki.test.raw');

const COUNTS: Record<string, number> = {
  wikitext: 62, // EleutherAI/wikitext_document_level, wikitext-2-raw-v1 test
  lambada_openai: 5153,
  hellaswag: 10042,
  sst2: 872,
  rte: 277,
  mrpc: 408,
  boolq: 3270,
};

for (const [name, count] of Object.entries(COUNTS)) {
  test(`${name}: the full shared data has ${count} documents and no bad rows`, { skip }, async () => {
    const task = getTask(name);
    const loaded = await task.load(path.join(SHARED, DEFAULT_DATA[name]!.shared), 'error');
    assert.equal(loaded.docs.length, count);
    assert.deepEqual(loaded.badRows, []);
    assert.deepEqual(loaded.docs.map((d) => d.index), [...Array(count).keys()]);
    for (const doc of loaded.docs.slice(0, 50)) assert.ok(task.requests(doc).length > 0);
    if (name === 'hellaswag') assert.equal(loaded.format, 'llama.cpp');
  });
}

test('wikitext: pages, words, bytes and detokenized text match the Python reference', { skip }, async () => {
  const loaded = await wikitext.load(path.join(SHARED, 'wikitext-2-raw-v1'), 'error');
  const pages = loaded.docs.map((d) => d.page);
  // Python: split as EleutherAI's builder, then sum(len(re.split(r'\s+', p))) and UTF-8 bytes.
  assert.equal(pages.reduce((n, p) => n + wikitextWords(p), 0), 241335);
  assert.equal(pages.reduce((n, p) => n + utf8Bytes(p), 0), 1290527);
  // Python: sha256 over f"{len(d.encode())}:" + d for d = lm-eval's wikitext_detokenizer(page), in order.
  const hash = createHash('sha256');
  for (const p of pages) {
    const d = Buffer.from(wikitextDetokenize(p), 'utf8');
    hash.update(`${d.length}:`);
    hash.update(d);
  }
  assert.equal(hash.digest('hex'), 'f47020f4337f5f95905d2ce14a6b438b3a1fe541f2d858e1047045a14f9d9329');
  // The fixture's documents are real pages, unchanged.
  const fixture = await wikitext.load(FIXTURE_WIKI, 'error');
  assert.deepEqual(fixture.docs.map((d) => d.page), [0, 27, 28, 29, 61].map((i) => pages[i]));
  assert.match(fingerprintDocs(wikitext, loaded.docs), /^[0-9a-f]{64}$/);
});

test('the derived JSONL copies give the same documents as the Arrow files', { skip }, async () => {
  for (const [name, arrowDir, jsonl] of [
    ['sst2', 'glue/sst2', 'glue/sst2/validation.derived.jsonl'],
    ['rte', 'glue/rte', 'glue/rte/validation.derived.jsonl'],
    ['mrpc', 'glue/mrpc', 'glue/mrpc/validation.derived.jsonl'],
    ['boolq', 'boolq', 'boolq/validation.derived.jsonl'],
  ] as const) {
    const task = getTask(name);
    const a = await task.load(path.join(SHARED, arrowDir), 'error');
    const b = await task.load(path.join(SHARED, jsonl), 'error');
    assert.equal(a.format, 'arrow');
    assert.equal(b.format, 'jsonl');
    assert.equal(fingerprintDocs(task, a.docs), fingerprintDocs(task, b.docs), name);
  }
});
