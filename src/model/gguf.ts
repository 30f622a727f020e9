/**
 * A checkpoint written as GGUF (version 3), the file format of llama.cpp, so that `bench cpu --llama-cpp` can run
 * llama.cpp on exactly the weights routelab runs without Python, torch or transformers. Only families that declare
 * their llama.cpp names (`Family.gguf`) can be written; what llama.cpp's own converter would store is mirrored: its
 * architecture's hyper-parameter keys, a GPT-2-style BPE vocabulary from tokenizer.json, one tensor per weight with
 * each layer's routed experts stacked [E, rows, cols], norms and the router kept in F32, every other weight at the
 * chosen type. Whether the result computes the same function is checked where it is used, by perplexity.
 *
 * Layout: header, metadata, tensor infos (name, dims innermost first, type, offset), padding to the 32-byte alignment,
 * then each tensor's bytes at its aligned offset. Written to a temporary file and renamed, so a failed write leaves
 * nothing behind.
 */
import { closeSync, existsSync, openSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { RoutelabError } from '../errors.js';
import { Checkpoint } from './checkpoint.js';
import type { TensorRole } from './family.js';
import { numel, storedToFloat32, type StoredTensor } from './tensor.js';
import type { TensorSpec } from './tensors.js';

export type GgufType = 'F32' | 'BF16';

const ALIGNMENT = 32;
/** ggml_type codes. */
const GGML_TYPE: Record<GgufType, number> = { F32: 0, BF16: 30 };
/** llama_ftype of the whole file (general.file_type). */
const FILE_TYPE: Record<GgufType, number> = { F32: 0, BF16: 32 };
/** gguf_type codes of metadata values. */
const enum Kv { Uint32 = 4, Int32 = 5, Float32 = 6, Bool = 7, String = 8, Array = 9 }
/** llama.cpp's token types. */
const TOKEN_TYPE = { normal: 1, control: 3, userDefined: 4, unused: 5 } as const;
/** Routed-expert roles, stacked per layer into one [E, …] tensor. */
const STACKED: readonly TensorRole[] = ['expertGate', 'expertUp', 'expertDown'];

type Value = { type: Kv.Uint32 | Kv.Int32 | Kv.Float32; value: number } | { type: Kv.Bool; value: boolean } | { type: Kv.String; value: string }
  | { type: Kv.Array; of: Kv.Int32 | Kv.String; value: readonly (number | string)[] };

/** One GGUF tensor: its name, its shape (outermost first, as the checkpoint's), and the checkpoint tensors it is made of. */
interface GgufTensor {
  readonly name: string;
  readonly shape: readonly number[];
  readonly type: GgufType;
  readonly parts: readonly TensorSpec[];
}

/** Writes `dir`'s checkpoint to `file` as GGUF with its matrices at `type` (BF16 checkpoints at BF16 are copied bit for bit). */
export function writeGguf(dir: string, file: string, type: GgufType): void {
  const checkpoint = Checkpoint.open(dir);
  const { family, architecture: a } = checkpoint;
  const names = family.gguf;
  if (!names) throw new RoutelabError(dir, `routelab writes GGUF for OLMoE checkpoints only, this is ${family.title}: use llama.cpp's converter (--convert) or --gguf`);
  const att = a.attention;
  const plain = att.kind === 'gqa' && !att.qkvBias && !att.oBias && att.clipQkv === null && att.slidingWindow === null &&
    a.rope.scaling === null && !a.routing.normTopkProb && !a.moe.shared && !a.moe.fused;
  if (!plain) throw new RoutelabError(join(dir, 'config.json'), 'GGUF is written for the plain OLMoE architecture only (no attention bias, clip_qkv, window, RoPE scaling or norm_topk_prob)');

  const tensors: GgufTensor[] = [];
  const stacks = new Map<string, TensorSpec[]>();
  for (const spec of checkpoint.layout) {
    const template = names.tensors[spec.role];
    if (template === undefined) throw new RoutelabError(dir, `no GGUF name for ${spec.name} (role ${spec.role})`);
    const name = template.replace('{l}', String(spec.layer));
    if (STACKED.includes(spec.role)) {
      let parts = stacks.get(name);
      if (!parts) {
        parts = [];
        stacks.set(name, parts);
        tensors.push({ name, shape: [a.moe.numExperts, ...spec.shape], type, parts });
      }
      parts.push(spec);
    } else {
      // As llama.cpp's converter: vectors (norms) and the router stay F32 whatever the file's type.
      tensors.push({ name, shape: spec.shape, type: spec.shape.length === 1 || spec.role === 'router' ? 'F32' : type, parts: [spec] });
    }
  }

  const meta = metadata(checkpoint, names.arch, type);
  const header = new ByteWriter();
  header.u32(0x46554747); // "GGUF"
  header.u32(3);
  header.u64(tensors.length);
  header.u64(meta.length);
  for (const [key, value] of meta) {
    header.string(key);
    header.value(value);
  }
  let offset = 0;
  const offsets: number[] = [];
  for (const t of tensors) {
    header.string(t.name);
    header.u32(t.shape.length);
    for (const d of [...t.shape].reverse()) header.u64(d); // ggml: innermost dimension first
    header.u32(GGML_TYPE[t.type]);
    header.u64(offset);
    offsets.push(offset);
    offset = align(offset + numel(t.shape) * (t.type === 'F32' ? 4 : 2));
  }
  const head = header.bytes();

  const temp = `${file}.partial-${process.pid}`;
  const fd = openSync(temp, 'w');
  try {
    writeAll(fd, head, 0);
    const dataStart = align(head.length);
    for (const [i, t] of tensors.entries()) {
      let at = dataStart + offsets[i];
      for (const spec of t.parts) {
        const bytes = encode(checkpoint.tensor(spec.name), t.type);
        writeAll(fd, bytes, at);
        at += bytes.length;
      }
    }
    // The last tensor's padding, so the file ends aligned as llama.cpp's writer leaves it.
    writeAll(fd, new Uint8Array(align(dataStart + offset) - (dataStart + offset)), dataStart + offset);
    closeSync(fd);
    renameSync(temp, file);
  } catch (e) {
    try {
      closeSync(fd);
    } catch {
      // closed already
    }
    rmSync(temp, { force: true });
    throw e;
  }
}

function align(n: number): number {
  return Math.ceil(n / ALIGNMENT) * ALIGNMENT;
}

function writeAll(fd: number, bytes: Uint8Array, position: number): void {
  for (let done = 0; done < bytes.length;) done += writeSync(fd, bytes, done, bytes.length - done, position + done);
}

/** A stored tensor's elements as GGUF bytes of `type`: BF16 kept as is, anything else through float32 (BF16 by rounding to nearest even). */
function encode(t: StoredTensor, type: GgufType): Uint8Array {
  if (type === 'BF16' && t.dtype === 'BF16') return new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
  const f32 = storedToFloat32(t);
  if (type === 'F32') return new Uint8Array(f32.buffer, f32.byteOffset, f32.byteLength);
  const bits = new Uint32Array(f32.buffer, f32.byteOffset, f32.length);
  const out = new Uint16Array(f32.length);
  for (let i = 0; i < bits.length; i++) {
    const u = bits[i];
    out[i] = (u & 0x7fffffff) > 0x7f800000 ? (u >>> 16) | 0x40 : (u + 0x7fff + ((u >>> 16) & 1)) >>> 16; // NaN stays NaN
  }
  return new Uint8Array(out.buffer);
}

/** The metadata llama.cpp reads for a decoder with routed experts and a GPT-2-style BPE tokenizer. */
function metadata(checkpoint: Checkpoint, arch: string, type: GgufType): [string, Value][] {
  const a = checkpoint.architecture;
  const u32 = (value: number): Value => ({ type: Kv.Uint32, value });
  const f32 = (value: number): Value => ({ type: Kv.Float32, value });
  const att = a.attention;
  if (att.kind !== 'gqa') throw new Error('unreachable: checked by writeGguf');
  const vocab = vocabulary(checkpoint.dir, a.vocabSize);
  if (a.eosTokenId === null) throw new RoutelabError(join(checkpoint.dir, 'config.json'), 'GGUF needs eos_token_id');
  const eos = a.eosTokenId;
  const bos = a.bosTokenId ?? eos; // llama.cpp wants one; with add_bos_token false it is never added
  const config = checkpoint.rawConfig;
  const name = typeof config._name_or_path === 'string' ? config._name_or_path : checkpoint.dir.split('/').filter(Boolean).pop() ?? arch;
  return [
    ['general.architecture', { type: Kv.String, value: arch }],
    ['general.name', { type: Kv.String, value: name }],
    ['general.file_type', u32(FILE_TYPE[type])],
    [`${arch}.vocab_size`, u32(a.vocabSize)],
    [`${arch}.context_length`, u32(a.maxPositionEmbeddings)],
    [`${arch}.embedding_length`, u32(a.hiddenSize)],
    [`${arch}.block_count`, u32(a.numLayers)],
    [`${arch}.feed_forward_length`, u32(a.moe.intermediateSize)],
    [`${arch}.expert_feed_forward_length`, u32(a.moe.intermediateSize)],
    [`${arch}.attention.head_count`, u32(att.numHeads)],
    [`${arch}.attention.head_count_kv`, u32(att.numKvHeads)],
    [`${arch}.rope.freq_base`, f32(a.rope.theta)],
    [`${arch}.attention.layer_norm_rms_epsilon`, f32(a.rmsNormEps)],
    [`${arch}.expert_count`, u32(a.moe.numExperts)],
    [`${arch}.expert_used_count`, u32(a.moe.numExpertsPerTok)],
    ['tokenizer.ggml.model', { type: Kv.String, value: 'gpt2' }],
    ['tokenizer.ggml.pre', { type: Kv.String, value: arch === 'olmoe' ? 'olmo' : 'default' }],
    ['tokenizer.ggml.tokens', { type: Kv.Array, of: Kv.String, value: vocab.tokens }],
    ['tokenizer.ggml.token_type', { type: Kv.Array, of: Kv.Int32, value: vocab.types }],
    ['tokenizer.ggml.merges', { type: Kv.Array, of: Kv.String, value: vocab.merges }],
    ['tokenizer.ggml.bos_token_id', u32(bos)],
    ['tokenizer.ggml.eos_token_id', u32(eos)],
    ...(a.padTokenId === null ? [] : [['tokenizer.ggml.padding_token_id', u32(a.padTokenId)] as [string, Value]]),
    ['tokenizer.ggml.add_bos_token', { type: Kv.Bool, value: false }],
  ];
}

/** tokenizer.json's BPE vocabulary over ids 0 … size − 1 (ids it lacks become unused `[PAD{id}]` entries) and its merges. */
function vocabulary(dir: string, size: number): { tokens: string[]; types: number[]; merges: string[] } {
  const file = join(dir, 'tokenizer.json');
  if (!existsSync(file)) throw new RoutelabError(file, 'missing: GGUF needs the tokenizer');
  const json = JSON.parse(readFileSync(file, 'utf8')) as {
    model?: { type?: string; vocab?: Record<string, number>; merges?: (string | [string, string])[] };
    added_tokens?: { id: number; content: string; special?: boolean }[];
  };
  if (json.model?.type !== 'BPE' || !json.model.vocab || !json.model.merges) throw new RoutelabError(file, 'expected a BPE model with vocab and merges');
  const tokens: string[] = Array.from({ length: size }, (_, i) => `[PAD${i}]`);
  const types: number[] = Array(size).fill(TOKEN_TYPE.unused);
  for (const [token, id] of Object.entries(json.model.vocab)) {
    if (id >= 0 && id < size) [tokens[id], types[id]] = [token, TOKEN_TYPE.normal];
  }
  for (const t of json.added_tokens ?? []) {
    if (t.id >= 0 && t.id < size) [tokens[t.id], types[t.id]] = [t.content, t.special ? TOKEN_TYPE.control : TOKEN_TYPE.userDefined];
  }
  const merges = json.model.merges.map((m) => (typeof m === 'string' ? m : m.join(' ')));
  return { tokens, types, merges };
}

/** Little-endian bytes, grown as written. */
class ByteWriter {
  private buffer = new Uint8Array(1 << 16);
  private view = new DataView(this.buffer.buffer);
  private length = 0;
  private static readonly encoder = new TextEncoder();

  private reserve(n: number): void {
    if (this.length + n <= this.buffer.length) return;
    const grown = new Uint8Array(Math.max(2 * this.buffer.length, this.length + n));
    grown.set(this.buffer.subarray(0, this.length));
    this.buffer = grown;
    this.view = new DataView(grown.buffer);
  }

  private put(bytes: number, write: (view: DataView, at: number) => void): void {
    this.reserve(bytes);
    write(this.view, this.length);
    this.length += bytes;
  }

  u32(v: number): void {
    this.put(4, (d, at) => d.setUint32(at, v, true));
  }

  i32(v: number): void {
    this.put(4, (d, at) => d.setInt32(at, v, true));
  }

  f32(v: number): void {
    this.put(4, (d, at) => d.setFloat32(at, v, true));
  }

  u64(v: number): void {
    this.put(8, (d, at) => d.setBigUint64(at, BigInt(v), true));
  }

  string(s: string): void {
    const bytes = ByteWriter.encoder.encode(s);
    this.u64(bytes.length);
    this.reserve(bytes.length);
    this.buffer.set(bytes, this.length);
    this.length += bytes.length;
  }

  value(v: Value): void {
    this.u32(v.type);
    switch (v.type) {
      case Kv.Uint32: return this.u32(v.value);
      case Kv.Int32: return this.i32(v.value);
      case Kv.Float32: return this.f32(v.value);
      case Kv.Bool: return this.put(1, (d, at) => d.setUint8(at, v.value ? 1 : 0));
      case Kv.String: return this.string(v.value);
      case Kv.Array:
        this.u32(v.of);
        this.u64(v.value.length);
        for (const x of v.value) {
          if (v.of === Kv.String) this.string(x as string);
          else this.i32(x as number);
        }
    }
  }

  bytes(): Uint8Array {
    return this.buffer.subarray(0, this.length);
  }
}
