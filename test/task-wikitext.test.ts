import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parquetWriteFile } from 'hyparquet-writer';
import {
  isWikitextHeading,
  splitWikitextPages,
  utf8Bytes,
  wikitext,
  wikitextDetokenize,
  wikitextWords,
} from '../src/tasks/wikitext.js';
import type { RequestResult } from '../src/tasks/task.js';

const FIXTURE = path.join(import.meta.dirname, '..', '..', 'test', 'fixtures', 'data', 'wikitext', 'wiki.test.raw');
const TEMP_ROOT = fs.mkdtempSync(path.join(os.tmpdir(), 'routelab-wikitext-'));
after(() => fs.rmSync(TEMP_ROOT, { recursive: true, force: true }));

const rawLines = fs.readFileSync(FIXTURE, 'utf8').split('\n');

test('level-1 headings: "= Title =" only; sub-headings and blank lines never split', () => {
  assert.equal(isWikitextHeading(' = Robert Boulter = '), true);
  assert.equal(isWikitextHeading(' = Kiss You ( One Direction song ) = '), true);
  assert.equal(isWikitextHeading(' = = Career = = '), false);
  assert.equal(isWikitextHeading(' = = = 2000 – 2005 = = = '), false);
  assert.equal(isWikitextHeading(' = = = = Sub = = = = '), false);
  // A formula line of "Constant k filter" reads as a heading; EleutherAI's builder splits there too.
  assert.equal(isWikitextHeading(' = 1 rad / s and a nominal impedance k = '), true);
  assert.equal(isWikitextHeading(' '), false);
  assert.equal(isWikitextHeading(''), false);
  assert.equal(isWikitextHeading(' = '), false);
  assert.equal(isWikitextHeading('= A ='), true);
});

test('document splitting on real lines: blank page dropped, pages joined with \\n, the last page kept whole', async () => {
  const pages = [];
  for await (const p of splitWikitextPages(rawLines.map((text, i) => ({ line: i + 1, text })))) pages.push(p);
  assert.deepEqual(pages.map((p) => p.first.line), [2, 33, 88, 90, 99]);
  // Fixture lines: 1–32 real 0–31, 33–98 real 2093–2158, 99– real 4303–end.
  assert.equal(pages[0]!.page, rawLines.slice(1, 32).join('\n'));
  assert.ok(pages[0]!.page.startsWith(' = Robert Boulter = \n \n Robert Boulter is an English film'));
  assert.ok(pages[0]!.page.includes('\n = = Career = = \n'), 'sub-headings stay inside the page');
  assert.ok(pages[0]!.page.endsWith('\n '), 'the blank line before the next heading ends the page');
  assert.equal(pages[2]!.page, rawLines.slice(87, 89).join('\n'));
  assert.ok(pages[2]!.page.startsWith(' = 1 rad / s and a nominal impedance k = \n 1 Ω . This is produced'));
  assert.ok(pages[4]!.page.startsWith(' = The Hustler ( film ) = \n'));
  assert.ok(pages[4]!.page.endsWith(' \n \n'), 'the last page keeps the empty piece after the final newline');

  const loaded = await wikitext.load(FIXTURE, 'error');
  assert.equal(loaded.format, 'wikitext-raw');
  assert.deepEqual(loaded.files, [FIXTURE]);
  assert.deepEqual(loaded.docs.map((d) => d.page), pages.map((p) => p.page));
  assert.deepEqual(loaded.docs.map((d) => [d.index, d.source]), pages.map((p, i) => [i, `${FIXTURE}:${p.first.line}`]));
  // A directory finds wiki.test.raw.
  assert.equal((await wikitext.load(path.dirname(FIXTURE), 'error')).docs.length, 5);
});

test('text before the first heading is kept when it is not blank; an empty file has no pages (nothing to evaluate)', async () => {
  const lines = (s: string) => s.split('\n').map((text, i) => ({ line: i + 1, text }));
  const pages = async (s: string) => {
    const out = [];
    for await (const p of splitWikitextPages(lines(s))) out.push(p.page);
    return out;
  };
  assert.deepEqual(await pages('intro\n = A = \na\n = B = \nb\n'), ['intro', ' = A = \na', ' = B = \nb\n']);
  assert.deepEqual(await pages(''), []);
  assert.deepEqual(await pages('\n \n'), []);
});

test('detokenizer: each rule of lm-eval in isolation', () => {
  const cases: [string, string][] = [
    ["the players ' union", "the players' union"],
    ['a guest @-@ starring role', 'a guest-starring role'],
    ['1 @,@ 000 people', '1,000 people'],
    ['3 @.@ 5 m', '3.5 m'],
    ['a : b ; c . d ! e ? f , g', 'a: b; c. d! e? f, g'],
    ['x ( JMA ) y', 'x (JMA) y'],
    ['x [ 1 ] y', 'x [1] y'],
    ['x { 2 } y', 'x {2} y'],
    ['as " Craig " in', 'as "Craig" in'],
    ['" a " and " b "', '"a" and "b"'],
    ["x ' y ' z", "x 'y' z"],
    ['= = = = Deep = = = =', '==== Deep ===='],
    ['= = = Sub = = =', '=== Sub ==='],
    ['= = Sub = =', '== Sub =='],
    ['135 ° E', '135°E'],
    ['a \nb', 'a\nb'],
    ['a\n b', 'a\nb'],
    ['at N points', 'at 1 points'],
    ["Teddy 's Story", "Teddy's Story"],
  ];
  for (const [input, expected] of cases) assert.equal(wikitextDetokenize(input), expected, JSON.stringify(input));
});

test('detokenizer: rule order matters as in lm-eval', () => {
  // ° before N: "135 ° N of" loses the spaces around ° first, so " N " no longer matches.
  assert.equal(wikitextDetokenize('135 ° N of'), '135°N of');
  // Punctuation before brackets: "( a , b )" → "( a, b )" → "(a, b)".
  assert.equal(wikitextDetokenize('( a , b )'), '(a, b)');
  // " \n" then "\n ": a blank line " \n \n" collapses to "\n\n".
  assert.equal(wikitextDetokenize('x . \n \n y'), 'x.\n\ny');
  // "s '" runs before the quote-pair rule; the pair rule then pairs the possessive's quote with the next one
  // (lm-eval's own output, checked against its Python: "the boys'toys and' x '").
  assert.equal(wikitextDetokenize("the boys ' toys and ' x '"), "the boys'toys and' x '");
});

test('detokenizer on real lines of wiki.test.raw', () => {
  assert.equal(
    wikitextDetokenize(rawLines[3]!).slice(0, 120),
    ' Robert Boulter is an English film, television and theatre actor. He had a guest-starring role on the television series ',
  );
  assert.equal(
    wikitextDetokenize(' In 2004 Boulter landed a role as " Craig " in the episode " Teddy \'s Story " of the television series The Long Firm ; he'),
    ' In 2004 Boulter landed a role as "Craig" in the episode "Teddy\'s Story" of the television series The Long Firm; he',
  );
  const page = rawLines.slice(1, 32).join('\n');
  const detok = wikitextDetokenize(page);
  assert.ok(detok.startsWith(' = Robert Boulter =\n\nRobert Boulter is an English film, television and theatre actor.'));
  assert.ok(detok.includes('\n== Career ==\n'));
  assert.deepEqual(wikitext.requests({ index: 0, source: 'x', page }), [{ kind: 'rolling', text: detok }]);
});

test('words and bytes of the original page: split(/\\s+/) with empty end pieces, UTF-8 bytes', () => {
  assert.equal(wikitextWords('a b'), 2);
  assert.equal(wikitextWords(' a b '), 4);
  assert.equal(wikitextWords(' = A = \n \n x . \n'), 7);
  assert.equal(wikitextWords(''), 1);
  assert.equal(utf8Bytes('a°é'), 5);
  const page = ' = Café = \n x \n';
  const scores = wikitext.score({ index: 0, source: 'x', page }, [{ logLikelihood: -7, tokens: 5, isGreedy: false, top1: 2, top5: 4 }]);
  assert.deepEqual(scores, { ll: -7, tokens: 5, words: 6, bytes: 16, top1: 2, top5: 4 });
});

test('aggregate: ratios of sums over documents, not means of per-document ratios', () => {
  const result = (ll: number, tokens: number, top1: number, top5: number): RequestResult => ({ logLikelihood: ll, tokens, isGreedy: false, top1, top5 });
  const a = wikitext.score({ index: 0, source: 'a', page: 'w1 w2 w3 w4 w5' }, [result(-10, 4, 2, 3)]); // 5 words, 14 bytes
  const b = wikitext.score({ index: 1, source: 'b', page: 'x '.repeat(20).trim() }, [result(-20, 6, 3, 5)]); // 20 words, 39 bytes
  const m = wikitext.aggregate([a, b]);
  const close = (x: number, y: number) => assert.ok(Math.abs(x - y) < 1e-12 * Math.max(1, Math.abs(y)), `${x} vs ${y}`);
  close(m.word_perplexity!, Math.exp(30 / 25));
  close(m.byte_perplexity!, Math.exp(30 / 53));
  close(m.bits_per_byte!, 30 / 53 / Math.LN2);
  close(m.token_perplexity!, Math.exp(3));
  close(m.cross_entropy!, 3);
  close(m.token_acc_top1!, 0.5);
  close(m.token_acc_top5!, 0.8);
  assert.ok(Math.abs(m.word_perplexity! - (Math.exp(10 / 5) + Math.exp(20 / 20)) / 2) > 1);
  assert.deepEqual(Object.keys(m), ['word_perplexity', 'byte_perplexity', 'bits_per_byte', 'token_perplexity', 'cross_entropy', 'token_acc_top1', 'token_acc_top5']);
  assert.equal(wikitext.primaryMetric, 'word_perplexity');
  assert.equal(wikitext.isAccuracyTask, false);
});

test('a `page` column (document-level JSONL/parquet) is used as is; bad rows skipped or fatal', async () => {
  const dir = fs.mkdtempSync(path.join(TEMP_ROOT, 'pages-'));
  const file = path.join(dir, 'test.jsonl');
  fs.writeFileSync(file, [{ page: ' = A = \n a @-@ b ' }, { page: '' }, { page: 3 }, { page: ' = B = \n' }].map((r) => JSON.stringify(r)).join('\n') + '\n');
  const loaded = await wikitext.load(dir, 'skip');
  assert.equal(loaded.format, 'jsonl-pages');
  assert.deepEqual(loaded.docs, [
    { index: 0, source: `${file}:1`, page: ' = A = \n a @-@ b ' },
    { index: 1, source: `${file}:4`, page: ' = B = \n' },
  ]);
  assert.deepEqual(loaded.badRows, [
    { source: `${file}:2`, reason: 'field "page": empty text' },
    { source: `${file}:3`, reason: 'field "page": expected a string, got number 3' },
  ]);
  await assert.rejects(wikitext.load(file, 'error'), new RegExp(`${file.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}:2: bad row: field "page": empty text`));

  const parquet = path.join(dir, 'wikitext-2-raw-v1', 'test-00000-of-00001.parquet');
  fs.mkdirSync(path.dirname(parquet));
  await parquetWriteFile({ filename: parquet, columnData: [{ name: 'page', data: [' = A = \n a ', ' = B = \n b '], type: 'STRING' }] });
  const fromParquet = await wikitext.load(dir, 'error');
  assert.equal(fromParquet.format, 'parquet-pages');
  assert.deepEqual(fromParquet.docs.map((d) => [d.source, d.page]), [[`${parquet}#0`, ' = A = \n a '], [`${parquet}#1`, ' = B = \n b ']]);
});

test('line-level rows (Salesforce/wikitext parquet: `text`, blank rows "") rebuild the same documents', async () => {
  const dir = fs.mkdtempSync(path.join(TEMP_ROOT, 'rows-'));
  const file = path.join(dir, 'wikitext-2-raw-v1', 'test-00000-of-00001.parquet');
  fs.mkdirSync(path.dirname(file));
  const rows = rawLines.slice(0, -1).map((l) => (l === ' ' ? '' : `${l}\n`));
  await parquetWriteFile({ filename: file, columnData: [{ name: 'text', data: rows, type: 'STRING' }] });
  const fromRows = await wikitext.load(dir, 'error');
  const fromRaw = await wikitext.load(FIXTURE, 'error');
  assert.equal(fromRows.format, 'parquet-lines');
  assert.deepEqual(fromRows.docs.map((d) => d.page), fromRaw.docs.map((d) => d.page));
  assert.equal(fromRows.docs[0]!.source, `${file}#1`);
  assert.equal(fromRows.docs[1]!.source, `${file}#32`);
});
