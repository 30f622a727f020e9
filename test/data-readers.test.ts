import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parquetWriteFile } from 'hyparquet-writer';
import { BadRows, RowError } from '../src/data/bad-rows.js';
import { booleanField, labelField, textField, textListField } from '../src/data/fields.js';
import { readLines, readRecordLines } from '../src/data/lines.js';
import { readJson, readJsonl } from '../src/data/jsonl.js';
import { readTsv } from '../src/data/tsv.js';
import { readParquet } from '../src/data/parquet.js';
import { readArrow } from '../src/data/arrow.js';
import { chooseSplitFiles, formatOfFile, locateInDirectory } from '../src/data/locate.js';
import type { SourcedRecord } from '../src/data/fields.js';
import { readRecords, resolveData } from '../src/data/records.js';
import { resolveHubDataset } from '../src/data/hub-dataset.js';
import { RoutelabError } from '../src/errors.js';

const FIXTURES = path.join(import.meta.dirname, '..', '..', 'test', 'fixtures', 'data');
const TEMP_ROOT = fs.mkdtempSync(path.join(os.tmpdir(), 'routelab-data-'));
after(() => fs.rmSync(TEMP_ROOT, { recursive: true, force: true }));
const tempDir = () => fs.mkdtempSync(path.join(TEMP_ROOT, 'case-'));
const tempFile = (name: string, content: string) => {
  const file = path.join(tempDir(), name);
  fs.writeFileSync(file, content);
  return file;
};

async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// Line and record readers

test('readLines splits exactly like Python str.split("\\n"), the final empty piece included', async () => {
  const file = tempFile('a.raw', ' \n = A = \n x \n');
  assert.deepEqual((await collect(readLines(file))).map((l) => [l.line, l.text]), [[1, ' '], [2, ' = A = '], [3, ' x '], [4, '']]);
  assert.deepEqual((await collect(readRecordLines(file))).map((l) => l.text), [' ', ' = A = ', ' x ']);
  const noNewline = tempFile('b.raw', 'a\nb');
  assert.deepEqual((await collect(readLines(noNewline))).map((l) => l.text), ['a', 'b']);
});

test('readLines keeps multi-byte characters split across chunk boundaries', async () => {
  const text = `${'x'.repeat((1 << 20) - 1)}°\n°`;
  const lines = await collect(readLines(tempFile('c.raw', text)));
  assert.deepEqual(lines.map((l) => l.text.length), [1 << 20, 1]);
  assert.equal(lines[0]!.text.at(-1), '°');
});

test('JSONL: records with file:line; a bad line is skipped and counted, or stops the run naming file:line', async () => {
  const file = tempFile('x.jsonl', '{"text": "a"}\n\n{"text": \n[1, 2]\n{"text": "b"}\n');
  const bad = new BadRows('skip');
  const records = await collect(readJsonl(file, bad));
  assert.deepEqual(records, [
    { record: { text: 'a' }, source: `${file}:1` },
    { record: { text: 'b' }, source: `${file}:5` },
  ]);
  assert.equal(bad.rows.length, 2);
  assert.equal(bad.rows[0]!.source, `${file}:3`);
  assert.match(bad.rows[0]!.reason, /not valid JSON/);
  assert.deepEqual(bad.rows[1], { source: `${file}:4`, reason: 'expected a JSON object, got a list of 2' });
  await assert.rejects(collect(readJsonl(file, new BadRows('error'))), (e: unknown) => {
    assert.ok(e instanceof RoutelabError);
    assert.equal(e.where, `${file}:3`);
    assert.match(e.message, /bad row: not valid JSON/);
    return true;
  });
});

test('JSON: an array of records (file#row), or JSON Lines under a .json name', async () => {
  const array = tempFile('a.json', '\uFEFF [{"a": 1}, 7, {"a": 2}]');
  const bad = new BadRows('skip');
  assert.deepEqual(await collect(readJson(array, bad)), [
    { record: { a: 1 }, source: `${array}#0` },
    { record: { a: 2 }, source: `${array}#2` },
  ]);
  assert.deepEqual(bad.rows, [{ source: `${array}#1`, reason: 'expected a JSON object, got number 7' }]);
  const lines = tempFile('b.json', '{"a": 1}\n{"a": 2}\n');
  assert.deepEqual((await collect(readJson(lines, new BadRows('error')))).map((r) => r.source), [`${lines}:1`, `${lines}:2`]);
  const broken = tempFile('c.json', '[{"a": 1},');
  await assert.rejects(collect(readJson(broken, new BadRows('error'))), /c\.json: bad row: not valid JSON/);
});

test('TSV: header names the columns, tab split without quoting, wrong field count is a bad row', async () => {
  const file = tempFile('dev.tsv', 'sentence\tlabel\nit \'s " quoted\t1\nno label here\n\nfine\t0\n');
  const bad = new BadRows('skip');
  const records = await collect(readTsv(file, bad));
  assert.deepEqual(records, [
    { record: { sentence: 'it \'s " quoted', label: '1' }, source: `${file}:2` },
    { record: { sentence: 'fine', label: '0' }, source: `${file}:5` },
  ]);
  assert.deepEqual(bad.rows, [{ source: `${file}:3`, reason: 'expected 2 tab-separated fields (sentence, label), got 1' }]);
  await assert.rejects(collect(readTsv(file, new BadRows('error'))), /dev\.tsv:3: bad row: expected 2 tab-separated fields/);
});

test('TSV fixtures in GLUE dev.tsv layout', async () => {
  const rte = await collect(readTsv(path.join(FIXTURES, 'tsv/RTE/dev.tsv'), new BadRows('error')));
  assert.equal(rte.length, 15);
  assert.deepEqual(Object.keys(rte[0]!.record), ['index', 'sentence1', 'sentence2', 'label']);
  assert.equal(rte[0]!.record.label, 'not_entailment');
});

test('Parquet: hub export read row group by row group, with file#row sources', async () => {
  const file = path.join(FIXTURES, 'parquet/sst2/validation-00000-of-00001.parquet');
  const rows = await collect(readParquet(file));
  assert.equal(rows.length, 15);
  assert.equal(rows[0]!.source, `${file}#0`);
  assert.equal(rows[0]!.record.sentence, "it 's a charming and often affecting journey . ");
  assert.equal(Number(rows[0]!.record.label), 1);

  // Several row groups, compressed with a codec from hyparquet-compressors' set.
  const multi = path.join(tempDir(), 'multi.parquet');
  const texts = Array.from({ length: 25 }, (_, i) => `row ${i}`);
  await parquetWriteFile({ filename: multi, columnData: [{ name: 'text', data: texts, type: 'STRING' }], rowGroupSize: 10 });
  const read = await collect(readParquet(multi));
  assert.deepEqual(read.map((r) => r.record.text), texts);
  assert.equal(read[24]!.source, `${multi}#24`);
  await assert.rejects(collect(readParquet(tempFile('bad.parquet', 'not parquet at all'))), /not a readable parquet file/);
});

test('Arrow: save_to_disk stream files, Int64 labels as bigint, file#row sources', async () => {
  const file = path.join(FIXTURES, 'glue/rte/validation/data-00000-of-00001.arrow');
  const rows = await collect(readArrow(file));
  assert.equal(rows.length, 15);
  assert.equal(rows[3]!.source, `${file}#3`);
  assert.equal(typeof rows[0]!.record.label, 'bigint');
  assert.equal(rows[0]!.record.sentence2, 'Christopher Reeve had an accident.');
  const boolq = await collect(readArrow(path.join(FIXTURES, 'boolq/validation/data-00000-of-00001.arrow')));
  assert.equal(boolq[0]!.record.answer, false);
  await assert.rejects(collect(readArrow(tempFile('bad.arrow', 'nope'))), /bad\.arrow: not a readable Arrow IPC file/);
});

// ---------------------------------------------------------------------------------------------------------------
// Field checks

test('field checks: missing, wrong type, empty, out of range, label names, booleans', () => {
  const reason = (f: () => unknown) => {
    try {
      f();
    } catch (e) {
      assert.ok(e instanceof RowError);
      return e.reason;
    }
    assert.fail('expected a RowError');
  };
  assert.equal(reason(() => textField({}, 'sentence')), 'missing field "sentence"');
  assert.equal(reason(() => textField({ sentence: null }, 'sentence')), 'field "sentence" is null');
  assert.equal(reason(() => textField({ sentence: 3 }, 'sentence')), 'field "sentence": expected a string, got number 3');
  assert.equal(reason(() => textField({ sentence: '  ' }, 'sentence')), 'field "sentence": empty text');
  assert.equal(textField({ b: 'x' }, ['a', 'b']), 'x');
  assert.equal(reason(() => textField({}, ['sentence1', '#1 String'])), 'missing field "sentence1" or "#1 String"');
  assert.equal(labelField({ label: 1n }, 'label', 2), 1);
  assert.equal(labelField({ label: '0' }, 'label', 2), 0);
  assert.equal(labelField({ label: 'not_entailment' }, 'label', 2, ['entailment', 'not_entailment']), 1);
  assert.equal(reason(() => labelField({ label: 7 }, 'label', 2)), 'field "label": expected an integer 0…1, got number 7');
  assert.equal(reason(() => labelField({ label: -1n }, 'label', 2)), 'field "label": expected an integer 0…1, got -1');
  assert.equal(reason(() => labelField({ label: 0.5 }, 'label', 2)), 'field "label": expected an integer 0…1, got number 0.5');
  assert.equal(booleanField({ answer: true }, ['label', 'answer']), true);
  assert.equal(booleanField({ label: 0n }, ['label', 'answer']), false);
  assert.equal(booleanField({ label: 'True' }, 'label'), true);
  assert.equal(reason(() => booleanField({ answer: 'maybe' }, 'answer')), 'field "answer": expected a boolean, got "maybe"');
  assert.deepEqual(textListField({ endings: ['a', 'b'] }, 'endings', 2), ['a', 'b']);
  assert.equal(reason(() => textListField({ endings: ['a'] }, 'endings', 4)), 'field "endings": expected 4 entries, got 1');
  assert.equal(reason(() => textListField({ endings: ['a', ''] }, 'endings', 2)), 'field "endings"[1]: empty text');
});

// ---------------------------------------------------------------------------------------------------------------
// Locating a split

const RECORDS = ['arrow', 'parquet', 'jsonl', 'json', 'tsv'] as const;

test('chooseSplitFiles: hub export layouts, shards in order, config folder first, aliases', () => {
  const q = (split: string, extra: object = {}) => ({ split, formats: [...RECORDS, 'text' as const], ...extra });
  assert.deepEqual(chooseSplitFiles(['README.md', 'sst2/train-00000-of-00001.parquet', 'sst2/validation-00000-of-00001.parquet', 'rte/validation-00000-of-00001.parquet'], q('validation', { config: 'sst2' }), 'x'), {
    format: 'parquet',
    files: ['sst2/validation-00000-of-00001.parquet'],
  });
  assert.deepEqual(chooseSplitFiles(['data/test-00001-of-00002.parquet', 'data/test-00000-of-00002.parquet', 'data/train-00000-of-00001.parquet'], q('test'), 'x').files, [
    'data/test-00000-of-00002.parquet',
    'data/test-00001-of-00002.parquet',
  ]);
  assert.deepEqual(chooseSplitFiles(['default/validation/0000.parquet', 'default/train/0000.parquet'], q('validation', { config: 'default' }), 'x').files, [
    'default/validation/0000.parquet',
  ]);
  assert.deepEqual(chooseSplitFiles(['wiki.test.raw', 'wiki.valid.raw', 'wiki.train.raw'], q('test'), 'x'), { format: 'text', files: ['wiki.test.raw'] });
  assert.deepEqual(chooseSplitFiles(['hellaswag_val_full.txt', 'hellaswag_val_full.txt.bz2'], q('validation'), 'x').files, ['hellaswag_val_full.txt']);
  assert.deepEqual(chooseSplitFiles(['SST-2/dev.tsv', 'SST-2/train.tsv'], q('validation'), 'x'), { format: 'tsv', files: ['SST-2/dev.tsv'] });
  // Arrow beats the derived JSONL next to it.
  assert.equal(chooseSplitFiles(['validation/data-00000-of-00001.arrow', 'validation/state.json', 'validation.derived.jsonl'], q('validation'), 'x').format, 'arrow');
  // Only the formats the task reads count.
  assert.equal(chooseSplitFiles(['validation.derived.jsonl', 'wiki.valid.raw'], { split: 'validation', formats: ['jsonl'] }, 'x').format, 'jsonl');
  // A preferred name settles several matches.
  const lambada = ['data/lambada_test.jsonl', 'data/lambada_test_de.jsonl', 'data/lambada_test_en.jsonl'];
  assert.deepEqual(chooseSplitFiles(lambada, q('test', { prefer: ['lambada_test.jsonl'] }), 'x').files, ['data/lambada_test.jsonl']);
  assert.throws(() => chooseSplitFiles(lambada, q('test'), 'x'), /several files could hold the test split: data\/lambada_test\.jsonl, /);
});

test('chooseSplitFiles: a clear error listing what was looked for', () => {
  assert.throws(
    () => chooseSplitFiles(['train.jsonl', 'notes.md', 'test.txt.bz2'], { split: 'test', config: 'sst2', formats: ['jsonl', 'text'] }, '/data/x'),
    (e: unknown) => {
      assert.ok(e instanceof RoutelabError);
      assert.equal(e.where, '/data/x');
      assert.match(e.message, /no test split here: looked for the sst2\/ subfolder first; a test\/ \(or test\) folder with data-\*\.arrow \(save_to_disk\); files whose path names the split \(\*test\*\) as \.jsonl, \.txt\/\.raw — found train\.jsonl, notes\.md, test\.txt\.bz2; found compressed test\.txt\.bz2: decompress first/);
      return true;
    },
  );
});

test('locateInDirectory: save_to_disk folders by state.json order, the split folder found from its parent', () => {
  const q = { split: 'validation', formats: RECORDS };
  const sst2 = path.join(FIXTURES, 'glue/sst2');
  const expected = [path.join(sst2, 'validation', 'data-00000-of-00001.arrow')];
  assert.deepEqual(locateInDirectory(sst2, q), { format: 'arrow', files: expected });
  assert.deepEqual(locateInDirectory(path.join(sst2, 'validation'), q), { format: 'arrow', files: expected });
  assert.deepEqual(locateInDirectory(path.join(FIXTURES, 'glue'), { ...q, config: 'sst2' }).files, expected);

  // state.json decides the order of several data files.
  const dir = tempDir();
  for (const f of ['data-00000-of-00002.arrow', 'data-00001-of-00002.arrow']) fs.copyFileSync(expected[0]!, path.join(dir, f));
  fs.writeFileSync(path.join(dir, 'state.json'), JSON.stringify({ _data_files: [{ filename: 'data-00001-of-00002.arrow' }, { filename: 'data-00000-of-00002.arrow' }] }));
  assert.deepEqual(locateInDirectory(dir, q).files.map((f) => path.basename(f)), ['data-00001-of-00002.arrow', 'data-00000-of-00002.arrow']);
  fs.writeFileSync(path.join(dir, 'state.json'), JSON.stringify({ _data_files: [{ filename: 'data-00009-of-00010.arrow' }] }));
  assert.throws(() => locateInDirectory(dir, q), /state\.json: lists data-00009-of-00010\.arrow, which is not in/);
});

test('resolveData: a file by its extension, a directory searched, a missing path named', async () => {
  const q = { split: 'validation', formats: RECORDS };
  const tsv = path.join(FIXTURES, 'tsv/RTE/dev.tsv');
  assert.deepEqual(await resolveData(tsv, q), { format: 'tsv', files: [tsv] });
  assert.equal((await resolveData(path.join(FIXTURES, 'tsv/RTE'), q)).format, 'tsv');
  await assert.rejects(resolveData(path.join(FIXTURES, 'wikitext/wiki.test.raw'), q), /text files cannot hold this data: expected arrow, parquet, jsonl, json, tsv/);
  await assert.rejects(resolveData('./no/such/dir', q), /\.\/no\/such\/dir: no such file or directory \(nor a Hugging Face dataset id/);
  await assert.rejects(resolveData(tempFile('x.txt.bz2', 'BZh'), { split: 'validation', formats: ['text'] }), /compressed files are not read directly/);
  assert.equal(formatOfFile('a/b.NDJSON'), 'jsonl');
  const located = await resolveData(path.join(FIXTURES, 'parquet'), { ...q, config: 'sst2' });
  const rows: SourcedRecord[] = await collect(readRecords(located, new BadRows('error')));
  assert.equal(rows.length, 15);
});

// ---------------------------------------------------------------------------------------------------------------
// Hugging Face hub cache

const COMMIT = '0123456789abcdef0123456789abcdef01234567';

/** A hub cache holding nyu-mll/glue (sst2 validation parquet) at COMMIT, `main` → COMMIT, files as blob symlinks. */
function fakeDatasetCache(): string {
  const cache = tempDir();
  const repo = path.join(cache, 'datasets--nyu-mll--glue');
  fs.mkdirSync(path.join(repo, 'blobs'), { recursive: true });
  fs.mkdirSync(path.join(repo, 'refs'));
  fs.writeFileSync(path.join(repo, 'refs', 'main'), COMMIT);
  fs.copyFileSync(path.join(FIXTURES, 'parquet/sst2/validation-00000-of-00001.parquet'), path.join(repo, 'blobs', 'etag-sst2'));
  const snapshot = path.join(repo, 'snapshots', COMMIT, 'sst2');
  fs.mkdirSync(snapshot, { recursive: true });
  fs.symlinkSync(path.join('..', '..', '..', 'blobs', 'etag-sst2'), path.join(snapshot, 'validation-00000-of-00001.parquet'));
  return cache;
}

async function withEnv<T>(vars: Record<string, string | undefined>, body: () => Promise<T>): Promise<T> {
  const saved = Object.fromEntries(Object.keys(vars).map((k) => [k, process.env[k]]));
  const set = (v: Record<string, string | undefined>) => {
    for (const [k, x] of Object.entries(v)) {
      if (x === undefined) delete process.env[k];
      else process.env[k] = x;
    }
  };
  set(vars);
  try {
    return await body();
  } finally {
    set(saved);
  }
}

const sst2Query = { split: 'validation', config: 'sst2', formats: RECORDS };
const noFetch: typeof fetch = () => assert.fail('no network request expected');

test('a dataset id resolves to its snapshot in the hub cache (by branch or commit, $HF_HUB_CACHE / $HF_HOME)', async () => {
  const cache = fakeDatasetCache();
  const expected = path.join(cache, 'datasets--nyu-mll--glue', 'snapshots', COMMIT, 'sst2', 'validation-00000-of-00001.parquet');
  assert.deepEqual(await resolveHubDataset('nyu-mll/glue', sst2Query, { cacheDir: cache, fetch: noFetch }), { format: 'parquet', files: [expected] });
  assert.deepEqual((await resolveHubDataset(`nyu-mll/glue@${COMMIT}`, sst2Query, { cacheDir: cache, fetch: noFetch })).files, [expected]);
  await withEnv({ HF_HUB_CACHE: cache, HF_HUB_OFFLINE: '1' }, async () => {
    assert.deepEqual((await resolveData('nyu-mll/glue', sst2Query)).files, [expected]);
  });
  const home = tempDir();
  fs.renameSync(cache, path.join(home, 'hub'));
  await withEnv({ HF_HUB_CACHE: undefined, HF_HOME: home, HF_HUB_OFFLINE: '1' }, async () => {
    const files = (await resolveData('nyu-mll/glue', sst2Query)).files;
    assert.equal(files[0], path.join(home, 'hub', 'datasets--nyu-mll--glue', 'snapshots', COMMIT, 'sst2', 'validation-00000-of-00001.parquet'));
    assert.equal((await collect(readRecords({ format: 'parquet', files }, new BadRows('error')))).length, 15);
  });
});

test('not cached and offline: "not in cache and no network", with no request made', async () => {
  const cache = fakeDatasetCache();
  await withEnv({ HF_HUB_OFFLINE: '1' }, async () => {
    await assert.rejects(resolveHubDataset('google/boolq', { split: 'validation', formats: RECORDS }, { cacheDir: cache, fetch: noFetch }), (e: unknown) => {
      assert.ok(e instanceof RoutelabError);
      assert.equal(e.where, 'google/boolq');
      assert.equal(e.message, `google/boolq: not in cache (${path.join(cache, 'datasets--google--boolq')}) and no network: HF_HUB_OFFLINE=1`);
      return true;
    });
    // Cached, but not the wanted split: the same error.
    await assert.rejects(resolveHubDataset('nyu-mll/glue', { ...sst2Query, split: 'test' }, { cacheDir: cache, fetch: noFetch }), /not in cache .* and no network: HF_HUB_OFFLINE=1/);
    // A revision that is not cached.
    await assert.rejects(resolveHubDataset('nyu-mll/glue@v2', sst2Query, { cacheDir: cache, fetch: noFetch }), /not in cache .* and no network/);
  });
  await assert.rejects(resolveHubDataset('google/boolq', { split: 'validation', formats: RECORDS }, { cacheDir: cache, allowDownload: false }), /and no network: downloads are disabled$/);
});

test('not cached and the hub unreachable: one error naming the cause', async () => {
  const unreachable: typeof fetch = () => Promise.reject(new TypeError('fetch failed', { cause: new Error('getaddrinfo ENOTFOUND huggingface.co') }));
  await withEnv({ HF_HUB_OFFLINE: undefined }, async () => {
    await assert.rejects(
      resolveHubDataset('google/boolq', { split: 'validation', formats: RECORDS }, { cacheDir: tempDir(), fetch: unreachable }),
      /^RoutelabError: google\/boolq: not in cache \(.*\) and no network: the download failed: fetch failed \(getaddrinfo ENOTFOUND huggingface\.co\)$/,
    );
  });
});
