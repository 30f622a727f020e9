/**
 * The sweep's timing protocol: a warm-up pass per cell, then rounds that time every cell once in an order rotated by
 * one per round (interleaved across configurations), each cell summarised by its median and quartiles of tokens/s
 * over the same probe tokens.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { probeSequences, timeCells } from '../src/experiments/timing.js';
import { parseRouterSpec } from '../src/routers/registry.js';
import type { Router } from '../src/routers/router.js';
import { getTask } from '../src/tasks/registry.js';
import type { TaskDoc } from '../src/tasks/task.js';
import { loadCpuModel, parityDir, tokenIds } from './helpers.js';

test('timing rounds interleave the cells, rotating their order, and summarise each by median and quartiles', async () => {
  const model = loadCpuModel(parityDir);
  const calls: string[] = [];
  /** A router that says when it runs (once per MoE layer of each forward pass). */
  const spy = (name: string, spec: string): Router => {
    const inner = parseRouterSpec(spec, model.routerDefaults);
    return Object.assign(Object.create(Object.getPrototypeOf(inner)), inner, {
      route: (...args: Parameters<Router['route']>) => {
        if (calls.at(-1) !== name) calls.push(name);
        return inner.route(...args);
      },
    });
  };
  const probe = [tokenIds(24, model.architecture.vocabSize, 7), tokenIds(10, model.architecture.vocabSize, 8)];
  const cells = ['a', 'b', 'c'].map((name, i) => ({ name, router: spy(name, `topk:k=${i + 1}`), probe }));
  const timing = await timeCells(model, cells, 3);
  // Warm-up a b c, then round 1 a b c, round 2 b c a, round 3 c a b.
  assert.deepEqual(calls.join(''), 'abc' + 'abc' + 'bca' + 'cab');
  for (const name of ['a', 'b', 'c']) {
    const t = timing.get(name)!;
    assert.equal(t.runs, 3);
    assert.equal(t.samples.length, 3);
    assert.equal(t.tokens, 34);
    assert.ok(t.tokens_per_second_p25 <= t.tokens_per_second && t.tokens_per_second <= t.tokens_per_second_p75);
    assert.equal(t.tokens_per_second, [...t.samples].sort((x, y) => x - y)[1], 'the median of three rounds');
  }
});

test('a task probe is its documents\' canonical text, tokenized, cut to the token budget in windows', () => {
  const task = getTask('text');
  const docs = [{ index: 0, source: 'a', text: 'one two three' }, { index: 1, source: 'b', text: 'four five six seven' }] as unknown as TaskDoc[];
  const tokenizer = { encode: (text: string) => Int32Array.from(text.split(' ').map((w) => w.length)), decode: () => '' };
  assert.deepEqual(probeSequences(tokenizer as never, task, docs, 6, 4), [[3, 3, 5, 4], [4, 3]]);
});
