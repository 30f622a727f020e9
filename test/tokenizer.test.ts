import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RoutelabError } from '../src/errors.js';
import { createStreamDecoder, loadTokenizer, requireTokenizer, type TextTokenizer } from '../src/model/tokenizer.js';

import { gutenbergDir as modelDir, parityDir as noTokenizerDir, sharedDir } from './helpers.js';

const sharedTokenizerPath = join(sharedDir, 'data/tokenizers/olmoe/tokenizer.json');
const wikiTestPath = join(sharedDir, 'data/wikitext-2-raw-v1/wiki.test.raw');

let bundledTokenizer: TextTokenizer | null = null;
/** Loaded once: building the 50k-token BPE takes a few hundred milliseconds. */
function olmoeTokenizer(): TextTokenizer {
  bundledTokenizer ??= loadTokenizer(modelDir);
  assert.ok(bundledTokenizer, 'the bundled model has a tokenizer');
  return bundledTokenizer;
}

const ROUND_TRIP_TEXTS = [
  'The quick brown fox jumps over the lazy dog. It was, as they say, "fine" -- wasn\'t it ?',
  '  leading and trailing spaces  ',
  'line one\nline two\n\n\tindented\r\nwindows line',
  'Digits 0123456789 and 3.14159, 1,000,000 and 2024-01-01.',
  'Emoji 🙂👍🏽 and a family 👨‍👩‍👧 (ZWJ sequence).',
  'Accents: déjà vu, naïve café, Ångström, Łódź, Straße.',
  'CJK 中文字符 日本語のテキスト 한국어 텍스트',
  'Special text <|endoftext|> and <|padding|> written out',
  '                            many spaces',
];

test('loads the bundled OLMoE tokenizer with its vocabulary size and special ids', () => {
  const tokenizer = olmoeTokenizer();
  assert.equal(tokenizer.vocabSize, 50280);
  assert.equal(tokenizer.eosTokenId, 50279);
  assert.equal(tokenizer.padTokenId, 1);
  assert.equal(tokenizer.tokenToString(50279), '<|endoftext|>');
  assert.equal(tokenizer.tokenToString(1), '<|padding|>');
  assert.equal(tokenizer.tokenToString(1533), 'Ġworld');
  assert.throws(() => tokenizer.tokenToString(50280), RoutelabError);
  assert.throws(() => tokenizer.tokenToString(-1), RoutelabError);
});

test('encodes to the raw BPE ids of tokenizer.json with no special tokens added', () => {
  const tokenizer = olmoeTokenizer();
  // Ids read off model.vocab in tokenizer.json: Hello 12092, Ġworld 1533, The 510, Ġcat 5798, Ġsat 2206, . 15, Ċ 187.
  const expected: [string, number[]][] = [
    ['Hello world', [12092, 1533]],
    ['The cat sat.', [510, 5798, 2206, 15]],
    ['\n', [187]],
    ['', []],
  ];
  for (const [text, ids] of expected) {
    const encoded = tokenizer.encode(text);
    assert.ok(encoded instanceof Int32Array);
    assert.deepEqual(Array.from(encoded), ids, JSON.stringify(text));
  }
  // Neither BOS nor EOS appears unless the text spells the special token out.
  for (const text of ROUND_TRIP_TEXTS.slice(0, 7)) {
    const ids = Array.from(tokenizer.encode(text));
    assert.ok(!ids.includes(50279) && !ids.includes(1), JSON.stringify(text));
  }
});

test('decode(encode(text)) returns the text exactly', () => {
  const tokenizer = olmoeTokenizer();
  for (const text of ROUND_TRIP_TEXTS) {
    assert.equal(tokenizer.decode(tokenizer.encode(text)), text);
  }
  // Written-out special tokens become their ids and decode back (nothing skipped).
  const specialIds = Array.from(tokenizer.encode('<|endoftext|>'));
  assert.deepEqual(specialIds, [50279]);
  assert.equal(tokenizer.decode([50279, 12092, 1]), '<|endoftext|>Hello<|padding|>');
  assert.equal(tokenizer.decode(new Int32Array(0)), '');
  // The tokenizer's NFC normaliser composes decomposed accents: that is the one way text can come back changed.
  assert.equal(tokenizer.decode(tokenizer.encode('cafe\u0301')), 'caf\u00e9');
});

test('decode rejects ids outside the vocabulary', () => {
  const tokenizer = olmoeTokenizer();
  assert.throws(() => tokenizer.decode([12092, 50280]), RoutelabError);
  assert.throws(() => tokenizer.decode([1.5]), RoutelabError);
});

test('the stream decoder emits exactly decode(all ids), holding back split characters', () => {
  const tokenizer = olmoeTokenizer();
  for (const text of ROUND_TRIP_TEXTS) {
    const ids = tokenizer.encode(text);
    const stream = createStreamDecoder(tokenizer);
    const pieces = Array.from(ids, (id) => stream.push(id));
    pieces.push(stream.flush());
    assert.equal(pieces.join(''), tokenizer.decode(ids), JSON.stringify(text));
    assert.ok(pieces.every((piece) => !piece.includes('\uFFFD')), 'no partial character is emitted');
  }
  // 🙂 is split over two byte-level tokens: the first push must hold its partial bytes back.
  const smileyIds = tokenizer.encode('🙂');
  assert.equal(smileyIds.length, 2);
  const stream = createStreamDecoder(tokenizer);
  assert.equal(stream.push(smileyIds[0]), '');
  assert.equal(stream.push(smileyIds[1]), '🙂');
  assert.equal(stream.flush(), '');
});

test('the stream decoder emits exactly decode(all ids) for random ids, split and invalid UTF-8 included', () => {
  const tokenizer = olmoeTokenizer();
  // Byte-level BPE's 256 single-byte tokens come first in its vocabulary: drawing half the ids among them makes
  // partial, completed and invalid UTF-8 sequences at every window boundary.
  let state = 12345;
  const next = (n: number) => {
    state = (Math.imul(state, 1103515245) + 12345) >>> 0;
    return state % n;
  };
  for (let trial = 0; trial < 40; trial++) {
    const ids = Array.from({ length: 1 + next(60) }, () => (next(2) === 0 ? next(256) : next(tokenizer.vocabSize)));
    const stream = createStreamDecoder(tokenizer);
    const pieces = ids.map((id) => stream.push(id));
    pieces.push(stream.flush());
    assert.equal(pieces.join(''), tokenizer.decode(ids), JSON.stringify(ids));
  }
});

test('the stream decoder flushes a trailing incomplete character as U+FFFD', () => {
  const tokenizer = olmoeTokenizer();
  const [firstSmileyId] = tokenizer.encode('🙂');
  const stream = createStreamDecoder(tokenizer);
  assert.equal(stream.push(12092), 'Hello');
  assert.equal(stream.push(firstSmileyId), '');
  assert.equal(stream.flush(), tokenizer.decode([firstSmileyId]));
  assert.ok(stream.flush() === '');
});

test('a model directory without tokenizer.json has no tokenizer, and text input then fails clearly', () => {
  const tokenizer = loadTokenizer(noTokenizerDir);
  assert.equal(tokenizer, null);
  assert.throws(
    () => requireTokenizer(tokenizer, noTokenizerDir),
    (error: unknown) =>
      error instanceof RoutelabError &&
      error.where === noTokenizerDir &&
      error.message ===
        `${noTokenizerDir}: no tokenizer.json in this model directory: text input needs the model's tokenizer; ` +
          'pass token ids instead (--input ids.json / .safetensors)',
  );
  const loaded = olmoeTokenizer();
  assert.equal(requireTokenizer(loaded, modelDir), loaded);
});

test('malformed tokenizer files are reported by name', () => {
  const dir = mkdtempSync(join(tmpdir(), 'routelab-tokenizer-'));
  try {
    const tokenizerPath = join(dir, 'tokenizer.json');
    writeFileSync(tokenizerPath, '{"version": "1.0", "model": ');
    assert.throws(
      () => loadTokenizer(dir),
      (error: unknown) => error instanceof RoutelabError && error.where === tokenizerPath && /not valid JSON/.test(error.message),
    );
    // A valid tokenizer.json with a broken tokenizer_config.json names the config file.
    writeFileSync(tokenizerPath, readFileSync(join(modelDir, 'tokenizer.json')));
    const configPath = join(dir, 'tokenizer_config.json');
    writeFileSync(configPath, '{"eos_token": ');
    assert.throws(() => loadTokenizer(dir), (error: unknown) => error instanceof RoutelabError && error.where === configPath);
    // Without tokenizer_config.json the tokenizer still loads; it just names no special tokens.
    rmSync(configPath);
    const bare = loadTokenizer(dir);
    assert.ok(bare);
    assert.equal(bare.eosTokenId, null);
    assert.equal(bare.padTokenId, null);
    assert.equal(bare.decode(bare.encode('Hello world .')), 'Hello world .');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the shared OLMoE tokenizer matches the bundled one', {
  skip: existsSync(sharedTokenizerPath) ? false : `${sharedTokenizerPath} is absent`,
}, (t) => {
  const bundled = readFileSync(join(modelDir, 'tokenizer.json'));
  if (bundled.equals(readFileSync(sharedTokenizerPath))) return;
  if (!existsSync(wikiTestPath)) {
    t.skip(`the files differ and ${wikiTestPath} is absent to compare encodings`);
    return;
  }
  const sharedDir = mkdtempSync(join(tmpdir(), 'routelab-tokenizer-'));
  try {
    writeFileSync(join(sharedDir, 'tokenizer.json'), readFileSync(sharedTokenizerPath));
    const shared = loadTokenizer(sharedDir);
    assert.ok(shared);
    const paragraph = readFileSync(wikiTestPath, 'utf8').slice(0, 2000);
    assert.deepEqual(shared.encode(paragraph), olmoeTokenizer().encode(paragraph));
  } finally {
    rmSync(sharedDir, { recursive: true, force: true });
  }
});

test('WikiText-2 text round-trips through the bundled tokenizer', {
  skip: existsSync(wikiTestPath) ? false : `${wikiTestPath} is absent`,
}, () => {
  const tokenizer = olmoeTokenizer();
  const paragraph = readFileSync(wikiTestPath, 'utf8').slice(0, 2000);
  const ids = tokenizer.encode(paragraph);
  assert.ok(ids.length > 300);
  assert.equal(tokenizer.decode(ids), paragraph.normalize('NFC'));
});
