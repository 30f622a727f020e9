/** The `text` task: lm-eval rolling perplexity on any corpus, and the bundled held-out Gutenberg prose. */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { splitTextDocuments, text } from '../src/tasks/text.js';
import { gutenbergDir, repoRoot, tempDir } from './helpers.js';

test('plain text splits into documents at runs of two or more blank lines, each with its first line', () => {
  const docs = splitTextDocuments('Chapter I.\nIt began.\n\nStill one.\n\n\nChapter II.\nThen.\n \n\t\n\n\n  \nEnd.\n');
  assert.deepEqual(docs, [
    { text: 'Chapter I.\nIt began.\n\nStill one.', line: 1 },
    { text: 'Chapter II.\nThen.', line: 7 },
    { text: 'End.\n', line: 14 },
  ]);
  assert.deepEqual(splitTextDocuments('\n\n\n\n'), []);
});

test('a corpus directory, a text file and JSONL records load; a record without text is a bad row', async () => {
  const bundled = await text.load(join(repoRoot, 'data/gutenberg-heldout'), 'error');
  assert.equal(bundled.docs.length, 20);
  assert.equal(bundled.format, 'jsonl');
  assert.match(bundled.docs[0].text, /^Chapter XXI\.\nA Seasick Passenger\./);
  // Held out: none of it is in the calibration slice of the same shard.
  const calibration = readFileSync(join(repoRoot, 'data/train-text/gutenberg_en_10.txt'), 'utf8');
  assert.ok(bundled.docs.every((d) => !calibration.includes(d.text.slice(0, 200))));
  const dir = tempDir();
  mkdirSync(join(dir, 'books'));
  writeFileSync(join(dir, 'books', 'a.txt'), 'One.\n\n\nTwo.\n');
  writeFileSync(join(dir, 'books', 'b.txt'), 'Three.\n');
  const plain = await text.load(join(dir, 'books'), 'error');
  assert.deepEqual(plain.docs.map((d) => [d.text, d.source]), [
    ['One.', `${join(dir, 'books', 'a.txt')}:1`], ['Two.\n', `${join(dir, 'books', 'a.txt')}:4`], ['Three.\n', `${join(dir, 'books', 'b.txt')}:1`],
  ]);
  const jsonl = join(dir, 'corpus.jsonl');
  writeFileSync(jsonl, '{"text": "first"}\n{"body": "no text"}\n{"text": "third"}\n');
  const rows = await text.load(jsonl, 'skip');
  assert.deepEqual(rows.docs.map((d) => d.text), ['first', 'third']);
  assert.equal(rows.badRows.length, 1);
  assert.match(`${rows.badRows[0].source}`, /corpus\.jsonl:2/);
});

test('the bundled model is in its domain on the held-out prose: token perplexity near its model card\'s 120', () => {
  const out = join(tempDir(), 'eval');
  const r = spawnSync(process.execPath, [join(repoRoot, 'dist/src/cli/main.js'), 'eval', '--model', gutenbergDir, '--task', 'text',
    '--data', join(repoRoot, 'data/gutenberg-heldout'), '--limit', '2', '--max-length', '512', '--trace', 'off', '--out', out], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const summary = JSON.parse(readFileSync(join(out, '8experts_topk_baseline_text.json'), 'utf8'));
  assert.ok(summary.metrics.token_perplexity > 60 && summary.metrics.token_perplexity < 200, String(summary.metrics.token_perplexity));
  for (const m of ['word_perplexity', 'byte_perplexity', 'bits_per_byte', 'cross_entropy', 'token_acc_top1']) assert.ok(Number.isFinite(summary.metrics[m]), m);
});
