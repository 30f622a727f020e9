/**
 * What `routelab bench cpu` and `routelab bench gpu` share: seeded random OLMoE-shaped checkpoints written the way
 * Hugging Face shards them, seeded random inputs, logits compared against a reference's raw float32 file, and the
 * table they print.
 */
import { closeSync, existsSync, openSync, readdirSync, readFileSync, readSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { RoutelabError } from '../errors.js';
import { Checkpoint } from '../model/checkpoint.js';
import { FAMILIES, parseArchitecture } from '../model/families/index.js';
import { type TensorSpec, tensorLayout } from '../model/tensors.js';
import { writeSafetensors, type TensorToWrite } from '../model/safetensors.js';
import { numberFlag } from './command.js';

/** Architectures the benches build random checkpoints of. */
/** The model the benches run when given none: the bundled demo checkpoint (dist/src/cli → the package root). */
export const BUNDLED_MODEL = fileURLToPath(new URL('../../../models/tiny-olmoe-gutenberg', import.meta.url));

export const BENCH_SHAPES = {
  'olmoe-1b-7b': { hidden_size: 2048, intermediate_size: 1024, num_hidden_layers: 16, num_attention_heads: 16, num_key_value_heads: 16, num_experts: 64, num_experts_per_tok: 8, vocab_size: 50304 },
  small: { hidden_size: 256, intermediate_size: 128, num_hidden_layers: 4, num_attention_heads: 4, num_key_value_heads: 4, num_experts: 8, num_experts_per_tok: 2, vocab_size: 4096 },
} as const;
export type BenchShape = keyof typeof BENCH_SHAPES;

/** The shipped real config.json of a family (configs/<checkpoint>/), by model_type; null when none is shipped. */
export function familyConfig(modelType: string): { checkpoint: string; config: Record<string, unknown> } | null {
  const root = fileURLToPath(new URL('../../../configs/', import.meta.url));
  for (const checkpoint of existsSync(root) ? readdirSync(root).sort() : []) {
    const file = join(root, checkpoint, 'config.json');
    if (!existsSync(file)) continue;
    const config = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
    if (config.model_type === modelType) return { checkpoint, config };
  }
  return null;
}

/** What `bench cpu --full-size` builds: a family's real config (`--family`), else a `--shape`, with `--layers` layers. */
export function fullSizeTarget(values: Record<string, unknown>): { name: string; config: Record<string, unknown> } {
  if (values.family === undefined) {
    const { shape, layers } = benchShapeFlags(values);
    return { name: `${shape} (${layers} layers)`, config: benchConfig(shape, layers) };
  }
  const family = values.family as string;
  const found = familyConfig(family);
  if (!found) {
    const known = FAMILIES.map((f) => f.modelType).filter((t) => familyConfig(t) !== null);
    throw new RoutelabError('--family', `no shipped config for ${JSON.stringify(family)}; expected one of ${known.join(', ')}`);
  }
  const all = found.config.num_hidden_layers as number;
  const layers = numberFlag(values, 'layers', all, true);
  if (layers < 1 || layers > all) throw new RoutelabError('--layers', `expected an integer in [1, ${all}] for ${found.checkpoint}, got ${layers}`);
  return { name: `${found.checkpoint} (${layers} layers)`, config: { ...found.config, num_hidden_layers: layers } };
}

/** `--shape` (default olmoe-1b-7b) and `--layers` (default: all of the shape's). */
export function benchShapeFlags(values: Record<string, unknown>): { shape: BenchShape; layers: number } {
  const shape = (values.shape as string | undefined) ?? 'olmoe-1b-7b';
  if (!(shape in BENCH_SHAPES)) throw new RoutelabError('--shape', `expected one of ${Object.keys(BENCH_SHAPES).join(', ')}, got ${JSON.stringify(shape)}`);
  return { shape: shape as BenchShape, layers: numberFlag(values, 'layers', BENCH_SHAPES[shape as BenchShape].num_hidden_layers, true) };
}

/** A Hugging Face OLMoE config.json of `shape` with `layers` decoder layers (OLMoE-1B-7B's other settings). */
export function benchConfig(shape: BenchShape, layers: number): Record<string, unknown> {
  const dims = BENCH_SHAPES[shape];
  return {
    architectures: ['OlmoeForCausalLM'], model_type: 'olmoe', ...dims, num_hidden_layers: layers,
    norm_topk_prob: false, rope_theta: 10000, rope_scaling: null, rms_norm_eps: 1e-5, clip_qkv: null,
    tie_word_embeddings: false, max_position_embeddings: 4096, attention_bias: false, eos_token_id: 50279 % dims.vocab_size,
    pad_token_id: 1, bos_token_id: null, torch_dtype: 'bfloat16',
  };
}

/** True when `dir` already holds a complete checkpoint written for exactly this config (an earlier `--dir` run). */
export function holdsCheckpoint(dir: string, config: object): boolean {
  const file = join(dir, 'config.json');
  if (!existsSync(file) || !existsSync(join(dir, 'model.safetensors.index.json'))) return false;
  try {
    return readFileSync(file, 'utf8') === JSON.stringify(config, null, 2) && Checkpoint.open(dir) !== null;
  } catch {
    return false;
  }
}

/** The tensors a config.json implies, as its family names and shapes them. */
function layoutOf(raw: object): TensorSpec[] {
  const { family, architecture } = parseArchitecture(raw);
  return tensorLayout(family, architecture);
}

/** Bytes of a config's BF16 weights. */
export function checkpointBytes(raw: object): number {
  let n = 0;
  for (const { shape } of layoutOf(raw)) n += shape.reduce((a, b) => a * b, 1) * 2;
  return n;
}

/**
 * Random BF16 weights in shards of one decoder layer each (so at most one layer — 0.86 GB for OLMoE-1B-7B — is in
 * memory at a time) plus model.safetensors.index.json, as Hugging Face lays out a sharded checkpoint. Norm gains near
 * 1, projections ~ U(±0.04) (std ≈ 0.023, like OLMoE's 0.02 init); embeddings larger. config.json is written last,
 * so a directory with one is complete.
 */
export function writeRandomCheckpoint(dir: string, raw: object): void {
  const groups = new Map<string, TensorSpec[]>();
  for (const spec of layoutOf(raw)) {
    const key = spec.layer !== null ? `layer${spec.layer}` : 'rest';
    if (!groups.has(key)) groups.set(key, []);
    groups.get(key)!.push(spec);
  }
  const weightMap: Record<string, string> = {};
  let seed = 7;
  let index = 0;
  for (const tensors of groups.values()) {
    const file = `model-${String(++index).padStart(5, '0')}-of-${String(groups.size).padStart(5, '0')}.safetensors`;
    const out: TensorToWrite[] = tensors.map(({ name, shape: dims, role }) => {
      const shape = [...dims];
      const n = shape.reduce((a, b) => a * b, 1);
      const data = /norm$/i.test(role) ? randomBf16(n, 0.2, seed++, 1) : randomBf16(n, role === 'embed' ? 1 : 0.04, seed++);
      weightMap[name] = file;
      return { name, dtype: 'BF16', shape, data };
    });
    writeSafetensors(join(dir, file), out);
  }
  writeFileSync(join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: { total_size: checkpointBytes(raw) }, weight_map: weightMap }, null, 2));
  writeFileSync(join(dir, 'config.json'), JSON.stringify(raw, null, 2));
}

/** Seeded LCG stream in [−1, 1). */
function* uniform(seed: number): Generator<number, never> {
  let s = seed >>> 0;
  for (;;) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    yield s / 2 ** 31 - 1;
  }
}

export function randomBf16(n: number, amplitude: number, seed: number, center = 0): Uint16Array {
  const out = new Uint16Array(n);
  const f = new Float32Array(1);
  const u = new Uint32Array(f.buffer);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    // Inlined LCG (the same as `uniform`): 7 G values for OLMoE-1B-7B, where a generator call per value is too slow.
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    f[0] = center + amplitude * (s / 2 ** 31 - 1);
    out[i] = u[0] >>> 16;
  }
  return out;
}

export function randomF32(n: number, seed: number): Float32Array {
  const values = uniform(seed);
  return Float32Array.from({ length: n }, () => values.next().value);
}

export function randomIds(length: number, vocab: number, seed: number): number[] {
  const values = uniform(seed);
  return Array.from({ length }, () => Math.floor(((values.next().value + 1) / 2) * vocab));
}

/** Max |a − b| against a raw float32 file holding exactly a.length values, read in chunks. */
export function maxAbsDiffFile(a: Float32Array, file: string): number {
  const fd = openSync(file, 'r');
  const chunk = new Float32Array(1 << 22);
  const bytes = new Uint8Array(chunk.buffer);
  let max = 0;
  let pos = 0;
  try {
    for (;;) {
      const n = readSync(fd, bytes, 0, bytes.length, pos * 4) / 4;
      if (n === 0) break;
      for (let i = 0; i < n; i++) max = Math.max(max, Math.abs(a[pos + i] - chunk[i]));
      pos += n;
    }
  } finally {
    closeSync(fd);
  }
  if (pos !== a.length) throw new RoutelabError('bench', `${file} holds ${pos} logits, routelab produced ${a.length}`);
  return max;
}

export function peakRssMb(): number {
  return process.resourceUsage().maxRSS / 1024;
}

export function round(x: number, digits = 1): number {
  return Number(x.toFixed(digits));
}

/** Left-aligned first column, right-aligned numbers. */
export function printTable(rows: readonly string[][]): void {
  const width = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  for (const r of rows) console.log(r.map((cell, c) => (c === 0 ? cell.padEnd(width[c]) : cell.padStart(width[c]))).join('  '));
}
