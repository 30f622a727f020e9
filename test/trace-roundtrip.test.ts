import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fromFloat16Bits, toFloat16Bits, TRACE_FORMAT, type TraceMeta } from '../src/trace/format.js';
import { readDocTrace, readTrace } from '../src/trace/reader.js';
import { TraceWriter } from '../src/trace/writer.js';
import { tempDir } from './helpers.js';

test('float16 conversion matches numpy (round to nearest even)', () => {
  // numpy: np.float16(x).view(np.uint16)
  const cases: [number, number][] = [[0.3, 13517], [1e-6, 17], [65519, 31743], [0.1234567, 12263], [2 ** -25 * 1.5, 1], [-3e-5, 33271], [0, 0], [1, 0x3c00]];
  for (const [x, bits] of cases) assert.equal(toFloat16Bits(x), bits, `${x}`);
  assert.equal(fromFloat16Bits(0x3c00), 1);
  assert.equal(fromFloat16Bits(13517), 0.300048828125); // (1 + 205/1024) · 2⁻²
  assert.equal(fromFloat16Bits(1), 2 ** -24);
});

function meta(level: 'counts' | 'full', E: number, maxK: number): TraceMeta {
  return { format: TRACE_FORMAT, level, numLayers: 2, numExperts: E, minK: 1, maxK, expertBytes: E <= 256 ? 1 : 2, router: 'test', config: 'cfg', task: 'toy', model: '', routelabVersion: '0' };
}

/** Writes `docs` documents of `n` positions × 2 layers; position i of doc d selects c = 1 + (i + d + layer) % maxK experts. */
function writeToy(file: string, m: TraceMeta, docs: number, n: number, rowGroupRows?: number) {
  const E = m.numExperts;
  const K = m.maxK;
  const w = TraceWriter.open(file, m, { rowGroupRows });
  const T = n + 2; // two unscored rows in front: rows map positions to packed rows
  for (let d = 0; d < docs; d++) {
    for (let layer = 0; layer < 2; layer++) {
      const counts = new Int32Array(T);
      const experts = new Int32Array(T * K);
      const weights = new Float32Array(T * K);
      const logits = new Float32Array(T * E);
      const pValues = new Float32Array(T * E);
      for (let r = 0; r < T; r++) {
        counts[r] = 1 + ((r + d + layer) % K);
        for (let j = 0; j < counts[r]; j++) {
          experts[r * K + j] = (r * 7 + j * 13 + d + E - 1) % E;
          weights[r * K + j] = 1 / (j + 2);
        }
        for (let e = 0; e < E; e++) {
          logits[r * E + e] = Math.sin(r + e + layer);
          pValues[r * E + e] = e / E;
        }
      }
      w.add(
        { n, doc: new Int32Array(n).fill(d), seq: new Int32Array(n).fill(d % 2), pos: Int32Array.from({ length: n }, (_, i) => 10 + i), token: Int32Array.from({ length: n }, (_, i) => 1000 + i), row: Int32Array.from({ length: n }, (_, i) => i + 2) },
        { layer, maxK: K, counts, experts, weights, routerLogits: logits, pValues },
      );
    }
  }
  w.close();
  return w.rows;
}

for (const [level, E] of [['counts', 64], ['full', 300]] as const) {
  test(`trace round trip: ${level}, E = ${E}, several row groups`, async () => {
    const dir = tempDir();
    const file = join(dir, 'x_routing.parquet');
    const m = meta(level, E, 5);
    const rows = writeToy(file, m, 3, 7, 10);
    assert.equal(rows, 3 * 7 * 2);
    assert.deepEqual(readdirSync(dir), ['x_routing.parquet'], 'no temporary file left behind');
    const trace = await readTrace(file);
    assert.deepEqual(trace.meta, m);
    assert.equal(trace.rows, rows);
    assert.equal(trace.rowGroups, Math.ceil(rows / 10));
    const d = await readDocTrace(trace, 1);
    assert.equal(d.pos.length, 14);
    for (let k = 0; k < d.pos.length; k++) {
      const i = d.pos[k] - 10;
      const r = i + 2;
      const layer = d.layer[k];
      assert.equal(d.seq[k], 1);
      assert.equal(d.token[k], 1000 + i);
      const c = 1 + ((r + 1 + layer) % 5);
      assert.deepEqual(d.experts[k], Array.from({ length: c }, (_, j) => (r * 7 + j * 13 + 1 + E - 1) % E));
      assert.deepEqual(d.weights[k], Array.from({ length: c }, (_, j) => fromFloat16Bits(toFloat16Bits(1 / (j + 2)))));
      if (level === 'full') {
        assert.deepEqual([...d.routerLogits![k]], Array.from({ length: E }, (_, e) => Math.fround(Math.sin(r + e + layer))));
        assert.deepEqual([...d.pValues![k]], Array.from({ length: E }, (_, e) => Math.fround(e / E)));
      } else assert.equal(d.routerLogits, undefined);
    }
    const layer1 = await readDocTrace(trace, 1, 1);
    assert.deepEqual(layer1.layer, new Array(7).fill(1));
  });
}

test('an aborted trace leaves no file', () => {
  const dir = tempDir();
  const file = join(dir, 'y.parquet');
  const w = TraceWriter.open(file, meta('counts', 8, 2));
  w.abort();
  assert.equal(existsSync(file), false);
  assert.deepEqual(readdirSync(dir), []);
});
