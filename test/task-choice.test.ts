import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Field, List, Table, tableToIPC, Utf8, vectorFromArray } from 'apache-arrow';
import { parquetWriteFile } from 'hyparquet-writer';
import { RoutelabError } from '../src/errors.js';
import { boolq } from '../src/tasks/boolq.js';
import { capitalize, choiceLength, hellaswag, hellaswagPreprocess } from '../src/tasks/hellaswag.js';
import { lambadaOpenai, splitLambada } from '../src/tasks/lambada.js';
import { argmax, f1Binary, mean, perplexityFromSums } from '../src/tasks/metrics.js';
import { mrpc } from '../src/tasks/mrpc.js';
import { DEFAULT_DATA, getTask, TASK_NAMES } from '../src/tasks/registry.js';
import { rte } from '../src/tasks/rte.js';
import { fingerprintDocs } from '../src/tasks/selection.js';
import { sst2 } from '../src/tasks/sst2.js';
import type { RequestResult } from '../src/tasks/task.js';

const FIXTURES = path.join(import.meta.dirname, '..', '..', 'test', 'fixtures', 'data');
const TEMP_ROOT = fs.mkdtempSync(path.join(os.tmpdir(), 'routelab-tasks-'));
after(() => fs.rmSync(TEMP_ROOT, { recursive: true, force: true }));
const tempFile = (name: string, content: string) => {
  const file = path.join(fs.mkdtempSync(path.join(TEMP_ROOT, 'case-')), name);
  fs.writeFileSync(file, content);
  return file;
};
const jsonl = (rows: object[]) => rows.map((r) => JSON.stringify(r)).join('\n') + '\n';
const ll = (...values: number[]): RequestResult[] => values.map((v) => ({ logLikelihood: v, tokens: 1, isGreedy: false, top1: 0, top5: 0 }));

// ---------------------------------------------------------------------------------------------------------------
// Shared metrics

test('metrics: argmax ties go to the lowest index, F1 with positive = 1, perplexity from sums', () => {
  assert.equal(argmax([-1, -0.5, -0.5, -2]), 1);
  assert.equal(argmax([-3, -3, -3, -3]), 0);
  assert.equal(argmax([NaN, -2, -1]), 2);
  assert.equal(f1Binary([1, 1, 0, 0, 1], [1, 0, 1, 0, 1]), 4 / 6);
  assert.equal(f1Binary([0, 0], [0, 0]), 0);
  assert.equal(f1Binary([0, 1], [0, 1]), 1);
  assert.equal(perplexityFromSums(-6, 3), Math.exp(2));
  assert.ok(Number.isNaN(mean([], 'acc')));
});

// ---------------------------------------------------------------------------------------------------------------
// lambada_openai

test('lambada: context up to the last space, continuation " " + last word', async () => {
  assert.deepEqual(splitLambada('a b c'), { context: 'a b', continuation: ' c' });
  assert.deepEqual(splitLambada('x\n\n"y z.'), { context: 'x\n\n"y', continuation: ' z.' });
  assert.deepEqual(splitLambada('word'), { context: '', continuation: ' word' });
  const file = path.join(FIXTURES, 'lambada_openai/lambada_test.jsonl');
  const loaded = await lambadaOpenai.load(path.dirname(file), 'error');
  assert.equal(loaded.format, 'jsonl');
  assert.equal(loaded.docs.length, 20);
  const first = loaded.docs[0]!;
  assert.equal(first.source, `${file}:1`);
  assert.ok(first.context.endsWith('his mouth curved in a confident grin, I don\'t care about'));
  assert.deepEqual(lambadaOpenai.requests(first), [{ kind: 'loglikelihood', context: first.context, continuation: ' signs' }]);
  assert.equal(first.context + first.continuation, first.text);
});

test('lambada: acc = greedy, perplexity = exp(−mean ll); bad rows', async () => {
  const doc = { index: 0, source: 'x', text: 'a b', context: 'a', continuation: ' b' };
  const a = lambadaOpenai.score(doc, [{ logLikelihood: -1, tokens: 1, isGreedy: true, top1: 1, top5: 1 }]);
  const b = lambadaOpenai.score(doc, [{ logLikelihood: -3, tokens: 2, isGreedy: false, top1: 1, top5: 2 }]);
  assert.deepEqual(a, { ll: -1, acc: 1, tokens: 1 });
  assert.deepEqual(lambadaOpenai.aggregate([a, b]), { perplexity: Math.exp(2), acc: 0.5 });
  const file = tempFile('lambada_test.jsonl', jsonl([{ text: 'one two' }, { text: '' }, { txt: 'x' }, { text: 'three four' }]));
  const loaded = await lambadaOpenai.load(file, 'skip');
  assert.deepEqual(loaded.docs.map((d) => [d.index, d.continuation]), [[0, ' two'], [1, ' four']]);
  assert.deepEqual(loaded.badRows, [
    { source: `${file}:2`, reason: 'field "text": empty text' },
    { source: `${file}:3`, reason: 'missing field "text"' },
  ]);
  await assert.rejects(lambadaOpenai.load(file, 'error'), (e: unknown) => e instanceof RoutelabError && e.where === `${file}:2`);
});

// ---------------------------------------------------------------------------------------------------------------
// hellaswag

test('hellaswag preprocessing: strip, " [title]" → ". ", [...] removed, double spaces, capitalize', () => {
  assert.equal(hellaswagPreprocess('  a [title] b  '), 'a. b');
  assert.equal(hellaswagPreprocess('[header] How to x [title] Do y. [step] z'), ' How to x. Do y. z');
  assert.equal(hellaswagPreprocess('a [b] c [d]'), 'a c ', 'tags go after the strip, so a trailing one leaves its space');
  assert.equal(hellaswagPreprocess('[substeps] Water it.'), ' Water it.', 'strip runs first, so a removed leading tag leaves a space (as in lm-eval)');
  assert.equal(hellaswagPreprocess('a   b'), 'a  b', 'one pass of "  " → " ", as Python str.replace');
  assert.equal(hellaswagPreprocess('tap the " [" button'), 'tap the " [" button');
  assert.equal(capitalize('the LADY'), 'The lady');
  assert.equal(capitalize('[step] Push'), '[step] push');
  assert.equal(capitalize(''), '');
  assert.equal(choiceLength('é😀 a'), 4);
});

test('hellaswag from the original schema: lm-eval query and choices', async () => {
  const file = path.join(FIXTURES, 'hellaswag-original/hellaswag_val.jsonl');
  const loaded = await hellaswag.load(file, 'error');
  assert.equal(loaded.format, 'jsonl');
  assert.deepEqual(
    loaded.docs.map((d) => [d.context, d.gold]),
    [
      ['Roof shingle removal: A man is sitting on a roof. He', 3],
      ['Clean and jerk: A lady walks to a barbell. She bends down and grabs the pole. The lady', 3],
      ['Home and Garden: How to water a cactus. Check the soil. push a finger into the soil', 1],
      ['Kayaking: A man paddles a kayak down a river. The man', 2],
      ['Shaving: A man rubs cream on his face.', 0],
    ],
  );
  assert.deepEqual(loaded.docs[2]!.choices, [' Water it every day.', 'If it is dry, water it. Use a can.', 'Paint the pot.', 'Sing to it.']);
  assert.deepEqual(hellaswag.requests(loaded.docs[2]!)[0], {
    kind: 'loglikelihood',
    context: 'Home and Garden: How to water a cactus. Check the soil. push a finger into the soil',
    continuation: '  Water it every day.',
  });
  assert.equal(loaded.docs[0]!.source, `${file}:1`);
});

test('hellaswag from hub exports (parquet, save_to_disk arrow) with a list column and string labels', async () => {
  const original = await hellaswag.load(path.join(FIXTURES, 'hellaswag-original/hellaswag_val.jsonl'), 'error');
  const rows = fs
    .readFileSync(path.join(FIXTURES, 'hellaswag-original/hellaswag_val.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { activity_label: string; ctx_a: string; ctx_b: string; endings: string[]; label: number | string });
  const column = <K extends keyof (typeof rows)[0]>(k: K) => rows.map((r) => r[k]);
  const root = fs.mkdtempSync(path.join(TEMP_ROOT, 'hellaswag-'));
  const parquet = path.join(root, 'parquet', 'data', 'validation-00000-of-00001.parquet');
  fs.mkdirSync(path.dirname(parquet), { recursive: true });
  await parquetWriteFile({
    filename: parquet,
    columnData: [
      ...(['activity_label', 'ctx_a', 'ctx_b'] as const).map((name) => ({ name, data: column(name), type: 'STRING' as const })),
      { name: 'endings', data: column('endings') },
      { name: 'label', data: rows.map((r) => String(r.label)), type: 'STRING' as const },
    ],
  });
  const fromParquet = await hellaswag.load(path.join(root, 'parquet'), 'error');
  assert.equal(fromParquet.format, 'parquet');
  assert.equal(fingerprintDocs(hellaswag, fromParquet.docs), fingerprintDocs(hellaswag, original.docs));

  const utf8 = (k: 'activity_label' | 'ctx_a' | 'ctx_b') => vectorFromArray(column(k), new Utf8());
  const table = new Table({
    activity_label: utf8('activity_label'),
    ctx_a: utf8('ctx_a'),
    ctx_b: utf8('ctx_b'),
    endings: vectorFromArray(column('endings'), new List(new Field('item', new Utf8(), true))),
    label: vectorFromArray(rows.map((r) => String(r.label)), new Utf8()),
  });
  fs.mkdirSync(path.join(root, 'arrow', 'validation'), { recursive: true });
  fs.writeFileSync(path.join(root, 'arrow', 'validation', 'data-00000-of-00001.arrow'), tableToIPC(table, 'stream'));
  const fromArrow = await hellaswag.load(path.join(root, 'arrow'), 'error');
  assert.equal(fromArrow.format, 'arrow');
  assert.equal(fingerprintDocs(hellaswag, fromArrow.docs), fingerprintDocs(hellaswag, original.docs));
});

test('hellaswag from llama.cpp text: the context line as query, pre on endings, format llama.cpp', async () => {
  const file = path.join(FIXTURES, 'hellaswag/hellaswag_val_full.txt');
  const loaded = await hellaswag.load(path.dirname(file), 'error');
  assert.equal(loaded.format, 'llama.cpp');
  assert.deepEqual(loaded.files, [file]);
  assert.equal(loaded.docs.length, 11);
  const first = loaded.docs[0]!;
  assert.deepEqual([first.source, first.context, first.gold], [`${file}:1`, 'Roof shingle removal: A man is sitting on a roof. he', 3]);
  assert.deepEqual(hellaswag.requests(first).map((r) => r.kind === 'loglikelihood' && r.continuation), [
    ' is using wrap to wrap a pair of skis.',
    ' is ripping level tiles off.',
    " is holding a rubik's cube.",
    ' starts pulling up roofing on a roof.',
  ]);
  const tagged = loaded.docs[10]!;
  assert.equal(tagged.source, `${file}:61`);
  assert.ok(tagged.choices[0]!.endsWith('it would be best to hire one. See .'));
});

test('hellaswag llama.cpp bad tasks: a bad gold line, an empty ending, an incomplete last task', async () => {
  const task = (ctx: string, gold: string, endings = ['a.', 'b.', 'c.', 'd.']) => [ctx, gold, ...endings].join('\n');
  const file = tempFile('hellaswag_val_full.txt', [task('A: x', '1'), task('B: y', '7'), task('C: z', '0', ['a.', '[title]', 'c.', 'd.']), task('D: w', '2'), 'E: v\n3'].join('\n') + '\n');
  const loaded = await hellaswag.load(file, 'skip');
  assert.deepEqual(loaded.docs.map((d) => [d.index, d.context, d.gold]), [[0, 'A: x', 1], [1, 'D: w', 2]]);
  assert.deepEqual(loaded.badRows, [
    { source: `${file}:7`, reason: 'line 2: expected the gold index 0…3, got "7"' },
    { source: `${file}:13`, reason: 'line 4: empty ending' },
    { source: `${file}:25`, reason: 'incomplete task at the end of the file: 2 of 6 lines' },
  ]);
  await assert.rejects(hellaswag.load(file, 'error'), new RegExp(`${path.basename(file)}:7: bad row: line 2`));
});

test('hellaswag scores: acc = argmax ll, acc_norm = argmax ll / characters, ties to the first', () => {
  const doc = { index: 0, source: 'x', context: 'q', choices: ['ab', 'abcd', 'a', 'abc'], gold: 1 };
  assert.deepEqual(hellaswag.score(doc, ll(-2, -3, -1.5, -3)), { acc: 0, acc_norm: 1, pred: 2, pred_norm: 1, gold: 1 });
  const tie = { ...doc, choices: ['ab', 'cd', 'ef', 'gh'], gold: 3 };
  assert.deepEqual(hellaswag.score(tie, ll(-1, -2, -2, -1)), { acc: 0, acc_norm: 0, pred: 0, pred_norm: 0, gold: 3 });
  const s = [hellaswag.score(doc, ll(-2, -3, -1.5, -3)), hellaswag.score(tie, ll(-1, -2, -2, -1))];
  assert.deepEqual(hellaswag.aggregate(s), { acc: 0, acc_norm: 0.5 });
  assert.throws(() => hellaswag.score(doc, ll(-1)), /expected 4 results/);
});

// ---------------------------------------------------------------------------------------------------------------
// GLUE and BoolQ

test('sst2: exact prompt and choices, label 1 = positive', async () => {
  const loaded = await sst2.load(path.join(FIXTURES, 'glue/sst2'), 'error');
  assert.equal(loaded.format, 'arrow');
  assert.equal(loaded.docs.length, 15);
  assert.deepEqual(sst2.requests(loaded.docs[0]!), [
    { kind: 'loglikelihood', context: "it 's a charming and often affecting journey . \nQuestion: Is this sentence positive or negative?\nAnswer:", continuation: ' negative' },
    { kind: 'loglikelihood', context: "it 's a charming and often affecting journey . \nQuestion: Is this sentence positive or negative?\nAnswer:", continuation: ' positive' },
  ]);
  assert.equal(loaded.docs[0]!.gold, 1);
  assert.deepEqual(sst2.score(loaded.docs[0]!, ll(-2, -1)), { acc: 1, pred: 1, gold: 1 });
  assert.deepEqual(sst2.aggregate([{ acc: 1, pred: 1, gold: 1 }, { acc: 0, pred: 1, gold: 0 }]), { acc: 0.5 });
  // The parquet export holds the same documents.
  const parquet = await sst2.load(path.join(FIXTURES, 'parquet'), 'error');
  assert.equal(parquet.format, 'parquet');
  assert.equal(fingerprintDocs(sst2, parquet.docs), fingerprintDocs(sst2, loaded.docs));
});

test('rte: exact prompt, entailment = " True" = index 0; arrow and GLUE dev.tsv agree', async () => {
  const loaded = await rte.load(path.join(FIXTURES, 'glue/rte/validation'), 'error');
  const doc = loaded.docs[0]!;
  assert.equal(
    doc.context,
    'Dana Reeve, the widow of the actor Christopher Reeve, has died of lung cancer at age 44, according to the Christopher Reeve Foundation.\nQuestion: Christopher Reeve had an accident. True or False?\nAnswer:',
  );
  assert.deepEqual(rte.requests(doc).map((r) => r.kind === 'loglikelihood' && r.continuation), [' True', ' False']);
  assert.equal(doc.gold, 1); // label 1 = not_entailment
  const tsv = await rte.load(path.join(FIXTURES, 'tsv/RTE'), 'error');
  assert.equal(tsv.format, 'tsv');
  assert.equal(fingerprintDocs(rte, tsv.docs), fingerprintDocs(rte, loaded.docs));
  assert.equal(tsv.docs[0]!.source, `${path.join(FIXTURES, 'tsv/RTE/dev.tsv')}:2`);
});

test('mrpc: exact prompt, " no"/" yes", acc and F1 with positive = yes; GLUE dev.tsv columns', async () => {
  const loaded = await mrpc.load(path.join(FIXTURES, 'glue/mrpc'), 'error');
  const doc = loaded.docs[0]!;
  assert.equal(
    doc.context,
    "Sentence 1: He said the foodservice pie business doesn 't fit the company 's long-term growth strategy .\n" +
      'Sentence 2: " The foodservice pie business does not fit our long-term growth strategy .\n' +
      'Question: Do both sentences mean the same thing?\nAnswer:',
  );
  assert.deepEqual(mrpc.requests(doc).map((r) => r.kind === 'loglikelihood' && r.continuation), [' no', ' yes']);
  assert.equal(doc.gold, 1);
  const tsv = await mrpc.load(path.join(FIXTURES, 'tsv/MRPC/dev.tsv'), 'error');
  assert.equal(fingerprintDocs(mrpc, tsv.docs), fingerprintDocs(mrpc, loaded.docs));
  const d = (gold: number) => ({ ...doc, gold });
  const scores = [
    mrpc.score(d(1), ll(-2, -1)), // tp
    mrpc.score(d(0), ll(-2, -1)), // fp
    mrpc.score(d(1), ll(-1, -2)), // fn
    mrpc.score(d(0), ll(-1, -2)), // tn
    mrpc.score(d(1), ll(-1, -1)), // tie → no: fn
  ];
  assert.deepEqual(mrpc.aggregate(scores), { acc: 2 / 5, f1: 2 / (2 + 1 + 2) });
});

test('boolq: exact prompt, gold = yes when answer/label is true', async () => {
  const loaded = await boolq.load(path.join(FIXTURES, 'boolq'), 'error');
  const doc = loaded.docs[0]!;
  assert.ok(doc.context.startsWith('All biomass goes through at least some of these steps'));
  assert.ok(doc.context.endsWith('.\nQuestion: does ethanol take more energy make that produces?\nAnswer:'));
  assert.deepEqual(boolq.requests(doc).map((r) => r.kind === 'loglikelihood' && r.continuation), [' no', ' yes']);
  assert.equal(doc.gold, 0);
  const superglue = tempFile('val.jsonl', jsonl([
    { question: 'is it', passage: 'P.', idx: 0, label: true },
    { question: 'is it', passage: 'P.', idx: 1, label: 0 },
    { question: 'is it', passage: 'P.', idx: 2, answer: true },
    { question: 'is it', passage: 'P.', idx: 3, label: 'perhaps' },
  ]));
  const sg = await boolq.load(superglue, 'skip');
  assert.deepEqual(sg.docs.map((x) => [x.context, x.gold]), [['P.\nQuestion: is it?\nAnswer:', 1], ['P.\nQuestion: is it?\nAnswer:', 0], ['P.\nQuestion: is it?\nAnswer:', 1]]);
  assert.deepEqual(sg.badRows, [{ source: `${superglue}:4`, reason: 'field "label": expected a boolean, got "perhaps"' }]);
});

test('GLUE label out of range, missing sentence: skipped and counted, or an error naming file:line', async () => {
  const file = tempFile('validation.jsonl', jsonl([{ sentence: 'good .', label: 1 }, { sentence: 'bad .', label: 7 }, { label: 0 }, { sentence: 'meh .', label: -1 }]));
  const loaded = await sst2.load(file, 'skip');
  assert.equal(loaded.docs.length, 1);
  assert.deepEqual(loaded.badRows, [
    { source: `${file}:2`, reason: 'field "label": expected an integer 0…1 or negative/positive, got number 7' },
    { source: `${file}:3`, reason: 'missing field "sentence"' },
    { source: `${file}:4`, reason: 'field "label": expected an integer 0…1 or negative/positive, got number -1' },
  ]);
  await assert.rejects(sst2.load(file, 'error'), (e: unknown) => {
    assert.ok(e instanceof RoutelabError);
    assert.equal(e.message, `${file}:2: bad row: field "label": expected an integer 0…1 or negative/positive, got number 7`);
    return true;
  });
});

// ---------------------------------------------------------------------------------------------------------------
// Registry

test('registry: every task by its lm-eval name; unknown names list the known ones', () => {
  assert.deepEqual(TASK_NAMES, ['wikitext', 'lambada_openai', 'hellaswag', 'sst2', 'rte', 'mrpc', 'boolq', 'text']);
  for (const name of TASK_NAMES) {
    const task = getTask(name);
    assert.equal(task.name, name);
    assert.ok(DEFAULT_DATA[name], `default data for ${name}`);
  }
  assert.equal(getTask('sst2'), sst2);
  assert.deepEqual(TASK_NAMES.map((n) => [getTask(n).split, getTask(n).primaryMetric, getTask(n).isAccuracyTask]), [
    ['test', 'word_perplexity', false],
    ['test', 'perplexity', true],
    ['validation', 'acc_norm', true],
    ['validation', 'acc', true],
    ['validation', 'acc', true],
    ['validation', 'acc', true],
    ['validation', 'acc', true],
    ['test', 'word_perplexity', false],
  ]);
  assert.deepEqual(TASK_NAMES.map((n) => getTask(n).chanceAccuracy), [undefined, undefined, 0.25, 0.5, 0.5, 0.5, 0.5, undefined]);
  assert.throws(() => getTask('piqa'), /^RoutelabError: piqa: unknown task; known tasks: wikitext, lambada_openai, hellaswag, sst2, rte, mrpc, boolq, text$/);
});

test('hellaswag llama.cpp: a task with 3 or 5 endings is skipped alone; the tasks after it keep their framing', async () => {
  const task = (ctx: string, gold: string, endings = ['a.', 'b.', 'c.', 'd.']) => [ctx, gold, ...endings].join('\n');
  const file = tempFile('hellaswag_val_full.txt', [
    task('A: x', '1'), task('B: three', '0', ['a.', 'b.', 'c.']), task('C: y', '2'), task('D: five', '3', ['a.', 'b.', 'c.', 'd.', 'e.']), task('E: z', '0'),
  ].join('\n') + '\n');
  const loaded = await hellaswag.load(file, 'skip');
  assert.deepEqual(loaded.docs.map((d) => [d.context, d.gold, d.choices.length]), [['A: x', 1, 4], ['C: y', 2, 4], ['E: z', 0, 4]]);
  assert.deepEqual(loaded.badRows, [
    { source: `${file}:7`, reason: '3 endings, expected 4 (the next task starts at line 12)' },
    { source: `${file}:18`, reason: '5 endings, expected 4 (the next task starts at line 25)' },
  ]);
});
