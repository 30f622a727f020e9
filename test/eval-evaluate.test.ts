import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { evaluate } from '../src/eval/evaluate.js';
import { softmaxRouting } from '../src/model/family.js';
import { rollingWindows } from '../src/eval/requests.js';
import { loadTokenizer } from '../src/model/tokenizer.js';
import { BhRouter } from '../src/routers/bh.js';
import { TopKRouter } from '../src/routers/topk.js';
import { TopPRouter } from '../src/routers/topp.js';
import { getTask } from '../src/tasks/registry.js';
import { wikitextDetokenize } from '../src/tasks/wikitext.js';
import { readTrace } from '../src/trace/reader.js';
import { gutenbergDir, loadCpuModel, tempDir } from './helpers.js';

const model = loadCpuModel(gutenbergDir);
const tokenizer = loadTokenizer(gutenbergDir)!;

test('wikitext through evaluate(): rolling windows count every document token once, in metrics and in the trace', async () => {
  const task = getTask('wikitext');
  const pages = [
    ' = Alpha = \n \n The alpha page is short , but it has @-@ some words . \n',
    ' = Beta = \n \n Beta follows ; it is " quoted " and ends here . \n',
  ];
  const docs = pages.map((page, index) => ({ index, source: `mem:${index}`, page }));
  const dir = tempDir();
  const traceFile = join(dir, 't.parquet');
  const s = await evaluate(model, tokenizer, task, docs, { maxLength: 8, batchSize: 3, trace: 'counts', traceFile, determinism: false });
  const tokens = pages.map((p) => tokenizer.encode(wikitextDetokenize(p)).length);
  const windows = pages.map((p, i) => rollingWindows(tokenizer.encode(wikitextDetokenize(p)), 50279, 8).length + 0 * i);
  assert.equal(s.routing.scored_tokens, tokens[0] + tokens[1]);
  assert.equal(s.timings.forward_inputs, windows[0] + windows[1]);
  assert.ok(Number.isFinite(s.metrics.word_perplexity) && s.metrics.word_perplexity > 1);
  assert.equal(s.config, '8experts_topk_baseline');
  assert.equal(s.data.num_docs, 2);

  const trace = await readTrace(traceFile);
  const seen = new Map<string, number>();
  for await (const c of trace.chunks()) {
    for (let r = 0; r < c.rows; r++) {
      const key = `${c.doc[r]}:${c.pos[r]}:${c.layer[r]}`;
      seen.set(key, (seen.get(key) ?? 0) + 1);
    }
  }
  for (let d = 0; d < 2; d++) {
    const ids = tokenizer.encode(wikitextDetokenize(pages[d]));
    for (let j = 0; j < ids.length; j++) for (let l = 0; l < 4; l++) assert.equal(seen.get(`${d}:${j}:${l}`), 1, `doc ${d} token ${j} layer ${l}`);
  }
  assert.equal(seen.size, (tokens[0] + tokens[1]) * 4);
});

test('configuration names', () => {
  assert.equal(new TopKRouter(8, false).configName(softmaxRouting(false)), '8experts_topk_baseline');
  assert.equal(new TopKRouter(16, true).configName(softmaxRouting(false)), '16experts_topk_renorm_baseline');
  const nullModel = { file: '/x/null.json', layers: [], meta: {} };
  assert.equal(new BhRouter({ alpha: 0.4, maxK: 8, minK: 1, temperature: 1, nullModel, weights: 'renorm', pValues: 'exact' }).configName(), '8experts_bh_a040');
  assert.equal(new BhRouter({ alpha: 0.05, maxK: 16, minK: 2, temperature: 1, nullModel, weights: 'renorm', pValues: 'exact' }).configName(), '16experts_bh_a005_mink2');
  assert.equal(new TopPRouter({ p: 0.7, minK: 1, maxK: 16, weights: 'probs' }).configName(), '16experts_topp_p070');
  assert.equal(new TopPRouter({ p: 0.5, minK: 2, maxK: 64, weights: 'renorm' }).configName(), '64experts_topp_p050_mink2_renorm');
  assert.equal(new TopPRouter({ p: 0.555, minK: 1, maxK: 16, weights: 'probs' }).configName(), '16experts_topp_p0555');
  assert.equal(new TopPRouter({ p: 1, minK: 1, maxK: 8, weights: 'probs' }).configName(), '8experts_topp_p100');
});
