/**
 * Few-shot prompts (src/tasks/fewshot.ts) against lm-evaluation-harness's rules, Python's random.sample bit for bit,
 * the seam into the scorer, bad input, and `routelab eval` / `routelab sweep` end to end on the bundled model.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { parseCommandArgs } from '../src/cli/command.js';
import { evalCommand } from '../src/cli/eval.js';
import { resolveData } from '../src/data/records.js';
import { RoutelabError } from '../src/errors.js';
import { withContextPrefix } from '../src/eval/requests.js';
import { FEWSHOT_SEED, fewshotPrompts, loadFewshot } from '../src/tasks/fewshot.js';
import { PythonRandom } from '../src/tasks/python-random.js';
import { getTask } from '../src/tasks/registry.js';
import type { LoadedDocs, LoglikelihoodRequest, Task, TaskDoc } from '../src/tasks/task.js';
import { gutenbergDir, repoRoot, tempDir } from './helpers.js';

const FEWSHOT_FIXTURES = join(repoRoot, 'test/fixtures/fewshot');
/** Per task, per split, the records of test/fixtures/fewshot/records.json (synthetic, short, one few-shot split each). */
const RECORDS: Record<string, Record<string, object[]>> = JSON.parse(readFileSync(join(FEWSHOT_FIXTURES, 'records.json'), 'utf8'));
const FEWSHOT_TASKS = ['sst2', 'rte', 'mrpc', 'boolq', 'hellaswag', 'lambada_openai'];

/** A data folder for `task` holding its records.json splits as JSONL files named after the split. */
function recordsFolder(task: string): string {
  const dir = tempDir('routelab-fewshot-');
  for (const [split, rows] of Object.entries(RECORDS[task]!)) {
    const name = task === 'lambada_openai' ? 'lambada_test.jsonl' : `${split}.jsonl`;
    writeFileSync(join(dir, name), rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
  }
  return dir;
}

async function loadTask(name: string): Promise<{ task: Task<TaskDoc>; dir: string; loaded: LoadedDocs<TaskDoc> }> {
  const task = getTask(name);
  const dir = recordsFolder(name);
  return { task, dir, loaded: await task.load(dir, 'error') };
}

const contextOf = (task: Task<TaskDoc>, doc: TaskDoc, prefix: string) =>
  (withContextPrefix(task.requests(doc)[0]!, prefix) as LoglikelihoodRequest).context;

async function run(argv: string[]) {
  const { values, positionals } = parseCommandArgs(evalCommand, argv);
  await evalCommand.run(values, positionals);
}

const rejects = (pattern: RegExp) => (e: unknown) => e instanceof RoutelabError && pattern.test(e.message);

// ---------------------------------------------------------------------------------------------------------------
// Python's random, bit for bit

test('PythonRandom reproduces random.Random(seed): getrandbits and sample, pool and set branches, multi-word seeds', () => {
  // Printed by python3 3.11.7:
  //   r = random.Random(seed); [r.getrandbits(32), r.getrandbits(1)], then [r.sample(range(n), k) for n, k in calls]
  const cases: [number, number[], [number, number][], number[][]][] = [
    [0, [3626764237, 0], [[10, 3], [30, 3], [100, 6], [30, 6]], [[6, 0, 4], [16, 15, 12], [38, 61, 45, 74, 27, 64], [4, 9, 29, 24, 3, 19]]],
    [1234, [4150886329, 1], [[30, 3], [30, 3], [22, 3], [21, 3], [7, 7]], [[14, 3, 0], [2, 29, 25], [18, 1, 21], [2, 3, 11], [1, 0, 5, 4, 6, 2, 3]]],
    [2 ** 32 + 5, [675479763, 0], [[5000, 4], [86, 7], [85, 7], [1, 1]], [[2314, 4951, 118, 2908], [80, 21, 84, 63, 45, 31, 40], [25, 64, 20, 51, 58, 79, 17], [0]]],
  ];
  for (const [seed, bits, calls, samples] of cases) {
    const random = new PythonRandom(seed);
    assert.deepEqual([random.getrandbits(32), random.getrandbits(1)], bits, `seed ${seed}`);
    assert.deepEqual(calls.map(([n, k]) => random.sample(n, k)), samples, `seed ${seed}`);
  }
});

// ---------------------------------------------------------------------------------------------------------------
// The prompts lm-eval builds

// Printed by test/fixtures/fewshot/lm_eval_prompts.py (python3, standard library only: lm-eval v0.4.9.2's templates
// and ContextSampler rules over records.json; N = 2, fewshot seed 1234, the first three evaluated documents).
const LM_EVAL: Record<string, { examples: number[]; context: string }[]> = {
  sst2: [
    { examples: [24, 14], context: 'the yarrow scene is dull\nQuestion: Is this sentence positive or negative?\nAnswer: negative\n\nthe orchid scene is lovely\nQuestion: Is this sentence positive or negative?\nAnswer: positive\n\na warm , funny film\nQuestion: Is this sentence positive or negative?\nAnswer:' },
    { examples: [0, 2], context: 'the amber scene is dull\nQuestion: Is this sentence positive or negative?\nAnswer: negative\n\nthe cedar scene is lovely\nQuestion: Is this sentence positive or negative?\nAnswer: positive\n\ntedious and long\nQuestion: Is this sentence positive or negative?\nAnswer:' },
    { examples: [25, 18], context: 'the zephyr scene is lovely\nQuestion: Is this sentence positive or negative?\nAnswer: positive\n\nthe summit scene is dull\nQuestion: Is this sentence positive or negative?\nAnswer: negative\n\nit works\nQuestion: Is this sentence positive or negative?\nAnswer:' },
  ],
  rte: [
    { examples: [7, 1], context: 'The heath was seen in town 7.\nQuestion: The heath exists. True or False?\nAnswer: False\n\nThe birch was seen in town 1.\nQuestion: The birch exists. True or False?\nAnswer: False\n\nAnn lives in Oslo.\nQuestion: Ann lives in Norway. True or False?\nAnswer:' },
    { examples: [1, 0], context: 'The birch was seen in town 1.\nQuestion: The birch exists. True or False?\nAnswer: False\n\nThe amber was seen in town 0.\nQuestion: The amber exists. True or False?\nAnswer: True\n\nBo sings.\nQuestion: Bo is mute. True or False?\nAnswer:' },
    { examples: [1, 5], context: 'The birch was seen in town 1.\nQuestion: The birch exists. True or False?\nAnswer: False\n\nThe fjord was seen in town 5.\nQuestion: The fjord exists. True or False?\nAnswer: False\n\nIt rained.\nQuestion: The ground is wet. True or False?\nAnswer:' },
  ],
  mrpc: [
    { examples: [7, 1], context: 'Sentence 1: The ridge rose 7 points.\nSentence 2: Ridge gained 7 points.\nQuestion: Do both sentences mean the same thing?\nAnswer: no\n\nSentence 1: The lagoon rose 1 points.\nSentence 2: Lagoon gained 1 points.\nQuestion: Do both sentences mean the same thing?\nAnswer: no\n\nSentence 1: He left early.\nSentence 2: He departed early.\nQuestion: Do both sentences mean the same thing?\nAnswer:' },
    { examples: [1, 9], context: 'Sentence 1: The lagoon rose 1 points.\nSentence 2: Lagoon gained 1 points.\nQuestion: Do both sentences mean the same thing?\nAnswer: no\n\nSentence 1: The tundra rose 9 points.\nSentence 2: Tundra gained 9 points.\nQuestion: Do both sentences mean the same thing?\nAnswer: no\n\nSentence 1: Sales fell.\nSentence 2: Rain fell.\nQuestion: Do both sentences mean the same thing?\nAnswer:' },
    { examples: [10, 1], context: 'Sentence 1: The upland rose 10 points.\nSentence 2: Upland gained 10 points.\nQuestion: Do both sentences mean the same thing?\nAnswer: yes\n\nSentence 1: The lagoon rose 1 points.\nSentence 2: Lagoon gained 1 points.\nQuestion: Do both sentences mean the same thing?\nAnswer: no\n\nSentence 1: We won.\nSentence 2: Victory was ours.\nQuestion: Do both sentences mean the same thing?\nAnswer:' },
  ],
  boolq: [
    { examples: [24, 14], context: 'Yarrow is entry 24 of the list.\nQuestion: is yarrow a word?\nAnswer: no\n\nOrchid is entry 14 of the list.\nQuestion: is orchid a word?\nAnswer: no\n\nThe sky is blue by day.\nQuestion: is the sky blue?\nAnswer:' },
    { examples: [0, 2], context: 'Amber is entry 0 of the list.\nQuestion: is amber a word?\nAnswer: no\n\nCedar is entry 2 of the list.\nQuestion: is cedar a word?\nAnswer: no\n\nFish swim.\nQuestion: do fish fly?\nAnswer:' },
    { examples: [1, 21], context: 'Birch is entry 1 of the list.\nQuestion: is birch a word?\nAnswer: yes\n\nValley is entry 21 of the list.\nQuestion: is valley a word?\nAnswer: yes\n\nIce is frozen water.\nQuestion: is ice cold?\nAnswer:' },
  ],
  hellaswag: [
    { examples: [7, 0], context: 'Task heath: A person picks up the heath. They sing.\n\nTask amber: A person picks up the amber. Then drop the amber.\n\nBaking: A man mixes flour. He' },
    { examples: [1, 6], context: 'Task birch: A person picks up the birch. They keep the birch.\n\nTask grove: A person picks up the grove. Then leave. now.\n\nRunning: A girl ties her shoes. She' },
    { examples: [0, 5], context: 'Task amber: A person picks up the amber. Then drop the amber.\n\nTask fjord: A person picks up the fjord. They keep the fjord.\n\nPainting: A brush is dipped. The' },
  ],
  lambada_openai: [
    { examples: [14, 3], context: 'In the orchid there lived a valley named  ridge\n\nIn the delta there lived a knoll named  grove\n\nIn the amber there lived a heath named' },
    { examples: [0, 2], context: 'In the amber there lived a heath named  delta\n\nIn the cedar there lived a jetty named  fjord\n\nIn the birch there lived a inlet named' },
    { examples: [18, 1], context: 'In the summit there lived a zephyr named  valley\n\nIn the birch there lived a inlet named  ember\n\nIn the cedar there lived a jetty named' },
  ],
};
const LAMBADA_SEED_7 = [
  { examples: [10, 4], context: 'In the knoll there lived a ridge named  nectar\n\nIn the ember there lived a lagoon named  heath\n\nIn the amber there lived a heath named' },
  { examples: [12, 20], context: 'In the marsh there lived a tundra named  prairie\n\nIn the upland there lived a bramble named  xylem\n\nIn the birch there lived a inlet named' },
  { examples: [1], context: 'In the birch there lived a inlet named  ember\n\nIn the cedar there lived a jetty named' },
];

test('for seed 1234 and N = 2, every task\'s prompts are lm-eval\'s, examples from the few-shot split, continuations unchanged', async () => {
  assert.equal(FEWSHOT_SEED, 1234);
  for (const name of FEWSHOT_TASKS) {
    const { task, dir, loaded } = await loadTask(name);
    const docs = loaded.docs.slice(0, 3);
    const prompts = await loadFewshot(task, docs, loaded, { numFewshot: 2, path: dir, onBadRow: 'error' });
    assert.deepEqual(prompts.examples, LM_EVAL[name]!.map((p) => p.examples), name);
    assert.deepEqual(docs.map((doc, d) => contextOf(task, doc, prompts.prefixes[d]!)), LM_EVAL[name]!.map((p) => p.context), name);
    const split = name === 'lambada_openai' ? 'test' : 'train';
    assert.deepEqual({ ...prompts.setting, fingerprint: null }, { num_fewshot: 2, seed: 1234, split, fingerprint: null }, name);
    assert.match(prompts.setting.fingerprint!, /^[0-9a-f]{64}$/);
    assert.deepEqual(prompts.files, [join(dir, name === 'lambada_openai' ? 'lambada_test.jsonl' : 'train.jsonl')]);
    // Every request of a document gets the same prefix; continuations stay as they are zero-shot.
    docs.forEach((doc, d) => {
      for (const request of task.requests(doc)) {
        const r = withContextPrefix(request, prompts.prefixes[d]!) as LoglikelihoodRequest;
        assert.equal(r.context, prompts.prefixes[d] + (request as LoglikelihoodRequest).context);
        assert.equal(r.continuation, (request as LoglikelihoodRequest).continuation);
      }
    });
  }
});

test('the evaluated document is never among its examples: a LAMBADA document that draws itself keeps N − 1, as lm-eval', async () => {
  const { task, dir, loaded } = await loadTask('lambada_openai');
  const docs = loaded.docs.slice(0, 3);
  const prompts = await loadFewshot(task, docs, loaded, { numFewshot: 2, seed: 7, path: dir, onBadRow: 'error' });
  assert.deepEqual(prompts.examples, LAMBADA_SEED_7.map((p) => p.examples));
  assert.deepEqual(docs.map((doc, d) => contextOf(task, doc, prompts.prefixes[d]!)), LAMBADA_SEED_7.map((p) => p.context));
  assert.equal(prompts.shortDocs, 1);
  // Over the whole split and several N: no document is its own example (the pool is the split evaluated).
  for (const n of [1, 5, 21]) {
    const all = fewshotPrompts(task, loaded.docs, loaded, n, FEWSHOT_SEED);
    all.examples.forEach((picked, d) => {
      assert.ok(!picked.includes(d), `N = ${n}, document ${d}`);
      assert.ok(picked.length === n || picked.length === n - 1);
    });
  }
});

test('the prompts are a function of the documents, N and the seed alone: one draw serves every configuration', async () => {
  const { task, loaded } = await loadTask('sst2');
  const pool = await task.load(recordsFolder('sst2'), 'error', 'train');
  const a = fewshotPrompts(task, loaded.docs, pool, 3, FEWSHOT_SEED);
  assert.deepEqual(fewshotPrompts(task, loaded.docs, pool, 3, FEWSHOT_SEED), a);
  assert.notEqual(fewshotPrompts(task, loaded.docs, pool, 3, 1235).setting.fingerprint, a.setting.fingerprint);
  assert.notEqual(fewshotPrompts(task, loaded.docs, pool, 2, FEWSHOT_SEED).setting.fingerprint, a.setting.fingerprint);
});

test('N = 0 leaves every request as it is today (the same objects), for every task', async () => {
  for (const name of [...FEWSHOT_TASKS, 'wikitext']) {
    const task = getTask(name);
    const dir = name === 'wikitext' ? join(repoRoot, 'test/fixtures/data/wikitext') : recordsFolder(name);
    const loaded = await task.load(dir, 'error');
    const prompts = await loadFewshot(task, loaded.docs, loaded, { numFewshot: 0, path: dir, onBadRow: 'error' });
    assert.deepEqual(prompts.setting, { num_fewshot: 0, seed: null, split: null, fingerprint: null });
    for (const doc of loaded.docs) for (const r of task.requests(doc)) assert.equal(withContextPrefix(r, prompts.prefixes[0] ?? ''), r);
  }
});

test('bad N and missing few-shot splits are refused, naming the flag and the files expected', async () => {
  const { task, dir, loaded } = await loadTask('rte'); // 10 train documents
  const fewshot = (numFewshot: number, path = dir) => loadFewshot(task, loaded.docs, loaded, { numFewshot, path, onBadRow: 'error' });
  await assert.rejects(fewshot(-1), rejects(/^--num-fewshot: expected an integer ≥ 0, got -1/));
  await assert.rejects(fewshot(1.5), rejects(/^--num-fewshot: expected an integer ≥ 0/));
  // lm-eval draws N + 1 for a task without a test split: 9 is the most 10 train documents allow.
  assert.equal((await fewshot(9)).examples[0]!.length, 9);
  await assert.rejects(fewshot(10), rejects(/^--num-fewshot: 10 examples take 11 draws .*one more than N.*rte's train split, which has 10 documents/));
  const lambada = await loadTask('lambada_openai'); // 22 test documents, drawn N at a time
  await assert.rejects(loadFewshot(lambada.task, lambada.loaded.docs, lambada.loaded, { numFewshot: 23, path: lambada.dir, onBadRow: 'error' }),
    rejects(/^--num-fewshot: 23 examples take 23 draws from lambada_openai's test split, which has 22 documents/));
  await assert.rejects(loadFewshot(task, loaded.docs, loaded, { numFewshot: 1, seed: -1, path: dir, onBadRow: 'error' }), rejects(/^--fewshot-seed: /));

  // The bundled GLUE folder holds only validation/: train is looked for and named, never replaced by validation.
  const sst2 = getTask('sst2');
  const bundled = join(repoRoot, 'data/glue/sst2');
  const validation = await sst2.load(bundled, 'error');
  await assert.rejects(loadFewshot(sst2, validation.docs, validation, { numFewshot: 1, path: bundled, onBadRow: 'error' }),
    rejects(/^--num-fewshot: sst2 draws its examples from its train split, as lm-eval does: .*data\/glue\/sst2: no train split here: looked for .*train\/ .*data-\*\.arrow.*found validation\/data-00000-of-00001\.arrow/));
  await assert.rejects(resolveData(bundled, { split: 'train', formats: ['arrow'] }), rejects(/no train split here/));
  // A file (or a save_to_disk split folder) answers any split with itself: refused rather than drawn from.
  const file = join(bundled, 'validation/data-00000-of-00001.arrow');
  const fromFile = await sst2.load(file, 'error');
  await assert.rejects(loadFewshot(sst2, fromFile.docs, fromFile, { numFewshot: 1, path: file, onBadRow: 'error' }),
    rejects(/holds the validation split being evaluated, not the train split .*--fewshot-data/));

  const wikitext = getTask('wikitext');
  const wiki = await wikitext.load(join(repoRoot, 'test/fixtures/data/wikitext'), 'error');
  await assert.rejects(loadFewshot(wikitext, wiki.docs, wiki, { numFewshot: 1, path: '', onBadRow: 'error' }),
    rejects(/^--num-fewshot: wikitext is scored as whole texts/));
});

// ---------------------------------------------------------------------------------------------------------------
// End to end on the bundled model

/** sst2 laid out as a hub download would be: the bundled validation/ folder and a train split beside it. */
function sst2Folder(): string {
  const dir = tempDir('routelab-fewshot-sst2-');
  cpSync(join(repoRoot, 'data/glue/sst2/validation'), join(dir, 'validation'), { recursive: true });
  writeFileSync(join(dir, 'train.jsonl'), RECORDS.sst2!.train!.map((r) => JSON.stringify(r)).join('\n') + '\n');
  return dir;
}

test('routelab eval --num-fewshot 2 on sst2 runs end to end: recorded setting, same examples under two routers', async () => {
  const data = sst2Folder();
  const summaries = [];
  for (const router of ['default', 'topk:k=2']) {
    const out = tempDir();
    await run(['--model', gutenbergDir, '--task', 'sst2', '--data', data, '--router', router, '--limit', '3', '--num-fewshot', '2',
      '--max-length', '256', '--trace', 'off', '--no-determinism', '--out', out, '--quiet']);
    const config = router === 'default' ? '8experts_topk_baseline' : '2experts_topk_baseline';
    summaries.push(JSON.parse(readFileSync(join(out, `${config}_sst2.json`), 'utf8')));
  }
  const [a, b] = summaries;
  assert.equal(a.data.num_docs, 3);
  assert.deepEqual({ ...a.fewshot, fingerprint: null }, {
    num_fewshot: 2, seed: 1234, split: 'train', fingerprint: null, files: [join(data, 'train.jsonl')], short_docs: 0, bad_rows_skipped: 0, truncated_requests: 0,
  });
  assert.equal(b.fewshot.fingerprint, a.fewshot.fingerprint);
  assert.equal(a.data.fingerprint, b.data.fingerprint);
  assert.ok(a.metrics.acc >= 0 && a.metrics.acc <= 1);
  assert.equal(a.timings.requests, 6);

  // Zero-shot is today's evaluation: the same documents scored alike, with the setting recorded as zero.
  const out = tempDir();
  await run(['--model', gutenbergDir, '--task', 'sst2', '--data', data, '--limit', '3', '--max-length', '256', '--trace', 'off', '--no-determinism', '--out', out, '--quiet']);
  const zero = JSON.parse(readFileSync(join(out, '8experts_topk_baseline_sst2.json'), 'utf8'));
  assert.equal(zero.fewshot.num_fewshot, 0);
  // The examples lengthen what the model reads; the scored continuations are the same tokens.
  assert.ok(a.timings.input_tokens > zero.timings.input_tokens + 3 * 2 * 10);
  assert.equal(a.timings.scored_tokens, zero.timings.scored_tokens);
  // A window too short for the examples cuts them from the left, as lm-eval does, and says how often.
  const short = tempDir();
  await run(['--model', gutenbergDir, '--task', 'sst2', '--data', data, '--limit', '3', '--num-fewshot', '2', '--max-length', '24', '--trace', 'off', '--no-determinism', '--out', short, '--quiet']);
  assert.equal(JSON.parse(readFileSync(join(short, '8experts_topk_baseline_sst2.json'), 'utf8')).fewshot.truncated_requests, 6);

  await assert.rejects(run(['--model', gutenbergDir, '--task', 'sst2', '--data', data, '--fewshot-seed', '3', '--out', out, '--quiet']),
    rejects(/^--fewshot-seed: only with --num-fewshot N > 0/));
  await assert.rejects(run(['--model', gutenbergDir, '--task', 'sst2', '--data', data, '--num-fewshot=-1', '--out', out, '--quiet']),
    rejects(/^--num-fewshot: expected an integer ≥ 0, got -1/));
});

test('a sweep with num_fewshot gives every configuration the same examples, and the setting enters the cell key', () => {
  const dataDir = tempDir('routelab-fewshot-data-');
  mkdirSync(join(dataDir, 'lambada_openai'));
  cpSync(join(repoRoot, 'test/fixtures/data/lambada_openai/lambada_test.jsonl'), join(dataDir, 'lambada_openai/lambada_test.jsonl'));
  const spec = join(dataDir, 'sweep.yaml');
  writeFileSync(spec, 'tasks: [lambada_openai]\nbaselines: [8, 2]\nlimit: 2\nmax_length: 128\ntrace: off\nnum_fewshot: 1\nbootstrap_resamples: 10\n');
  const sweep = (run: string, ...extra: string[]) =>
    spawnSync(process.execPath, [join(repoRoot, 'dist/src/cli/main.js'), 'sweep', '--model', gutenbergDir, '--data-dir', dataDir, '--out', run, '--spec', spec, '--quiet', ...extra], { encoding: 'utf8' });
  const cells = (run: string) => ['8experts_topk_baseline', '2experts_topk_baseline'].map((c) => JSON.parse(readFileSync(join(run, `${c}_lambada_openai.json`), 'utf8')));
  const oneShot = join(tempDir(), 'run');
  assert.equal(sweep(oneShot).status, 0);
  const [a, b] = cells(oneShot);
  assert.equal(a.fewshot.num_fewshot, 1);
  assert.equal(a.fewshot.fingerprint, b.fewshot.fingerprint);
  const zeroShot = join(tempDir(), 'run');
  const zero = sweep(zeroShot, '--num-fewshot', '0');
  assert.equal(zero.status, 0, zero.stderr);
  assert.notEqual(cells(zeroShot)[0].cell_key, a.cell_key);
  assert.equal(cells(zeroShot)[0].data.fingerprint, a.data.fingerprint);
  // Another N into the same run directory is another design.
  const again = sweep(oneShot, '--num-fewshot', '2');
  assert.notEqual(again.status, 0);
  assert.match(again.stderr, /numFewshot: 1 before, 2 now/);
});
