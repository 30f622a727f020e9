/**
 * routelab's GGUF writer, read back by an independent reader (Hugging Face's @huggingface/gguf): the metadata llama.cpp
 * needs, every tensor at its shape and type with the checkpoint's bytes (experts stacked), and clear refusals.
 */
import assert from 'node:assert/strict';
import { cpSync, existsSync, openSync, readdirSync, readFileSync, readSync, closeSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { gguf } from '@huggingface/gguf';
import { Checkpoint } from '../src/model/checkpoint.js';
import { writeGguf } from '../src/model/gguf.js';
import { storedToFloat32 } from '../src/model/tensor.js';
import { gutenbergDir, repoRoot, tempDir } from './helpers.js';

function bytesAt(file: string, offset: number, length: number): Buffer {
  const fd = openSync(file, 'r');
  try {
    const out = Buffer.alloc(length);
    readSync(fd, out, 0, length, offset);
    return out;
  } finally {
    closeSync(fd);
  }
}

for (const type of ['F32', 'BF16'] as const) {
  test(`the bundled OLMoE as ${type} GGUF reads back with llama.cpp's names, hyper-parameters, vocabulary and the same weights`, async () => {
    const dir = tempDir();
    const file = join(dir, 'model.gguf');
    writeGguf(gutenbergDir, file, type);
    assert.deepEqual(readdirSync(dir), ['model.gguf'], 'no temporary file is left');
    const { metadata, tensorInfos, tensorDataOffset } = await gguf(file, { allowLocalFile: true });
    const config = JSON.parse(readFileSync(join(gutenbergDir, 'config.json'), 'utf8'));
    const m = metadata as unknown as Record<string, unknown>;
    assert.equal(m.version, 3);
    assert.equal(m['general.architecture'], 'olmoe');
    assert.equal(m['general.file_type'], type === 'F32' ? 0 : 32);
    assert.equal(m['olmoe.embedding_length'], config.hidden_size);
    assert.equal(m['olmoe.block_count'], config.num_hidden_layers);
    assert.equal(m['olmoe.expert_count'], config.num_experts);
    assert.equal(m['olmoe.expert_used_count'], config.num_experts_per_tok);
    assert.equal(m['olmoe.attention.head_count'], config.num_attention_heads);
    assert.equal(m['olmoe.rope.freq_base'], config.rope_theta);
    assert.equal(m['olmoe.attention.layer_norm_rms_epsilon'], Math.fround(config.rms_norm_eps));
    assert.equal(m['tokenizer.ggml.model'], 'gpt2');
    assert.equal(m['tokenizer.ggml.eos_token_id'], config.eos_token_id);
    assert.equal(m['tokenizer.ggml.add_bos_token'], false);
    const tokens = m['tokenizer.ggml.tokens'] as string[];
    const tokenizer = JSON.parse(readFileSync(join(gutenbergDir, 'tokenizer.json'), 'utf8'));
    assert.equal(tokens.length, config.vocab_size);
    for (const [token, id] of Object.entries(tokenizer.model.vocab as Record<string, number>).slice(0, 500)) assert.equal(tokens[id], token);
    assert.equal((m['tokenizer.ggml.merges'] as string[]).length, tokenizer.model.merges.length);

    // 1 + 4 × (2 norms + 4 projections + 2 q/k norms + router + 3 stacked experts) + 2 tensors.
    assert.equal(tensorInfos.length, 1 + config.num_hidden_layers * 12 + 2);
    const info = (name: string) => tensorInfos.find((t) => t.name === name)!;
    const H = config.hidden_size, I = config.intermediate_size, E = config.num_experts;
    assert.deepEqual(info('blk.2.ffn_gate_exps.weight').shape.map(Number), [H, I, E], 'innermost dimension first');
    assert.deepEqual(info('output.weight').shape.map(Number), [H, config.vocab_size]);
    assert.equal(info('blk.0.attn_norm.weight').dtype, 0, 'norms stay F32');
    assert.equal(info('blk.0.ffn_gate_inp.weight').dtype, 0, 'the router stays F32');
    assert.equal(info('blk.0.attn_q.weight').dtype, type === 'F32' ? 0 : 30);
    for (const t of tensorInfos) assert.equal(Number(t.offset) % 32, 0, `${t.name} aligned`);

    // The bytes: the lm_head, a norm, and expert 37's down projection inside layer 3's stack, as the checkpoint holds them.
    const checkpoint = Checkpoint.open(gutenbergDir);
    const expect = (name: string, gg: string, within = 0) => {
      const stored = checkpoint.tensor(name);
      const t = info(gg);
      const f32 = t.dtype === 0;
      const want = f32 ? Buffer.from(storedToFloat32(stored).buffer) : Buffer.from(stored.data.buffer, stored.data.byteOffset, stored.data.byteLength);
      const got = bytesAt(file, Number(tensorDataOffset + t.offset) + within * want.length, want.length);
      assert.ok(got.equals(want), `${gg} holds ${name}`);
    };
    expect('lm_head.weight', 'output.weight');
    expect('model.layers.1.post_attention_layernorm.weight', 'blk.1.ffn_norm.weight');
    expect('model.layers.3.mlp.experts.37.down_proj.weight', 'blk.3.ffn_down_exps.weight', 37);
    expect('model.layers.0.mlp.gate.weight', 'blk.0.ffn_gate_inp.weight');
  });
}

test('GGUF is refused, with nothing written, for a family routelab has no llama.cpp names for', () => {
  const mixtral = join(repoRoot, 'test/fixtures/families/mixtral');
  const file = join(tempDir(), 'x.gguf');
  assert.throws(() => writeGguf(mixtral, file, 'BF16'), /routelab writes GGUF for OLMoE checkpoints only, this is Mixtral: use llama\.cpp's converter \(--convert\) or --gguf/);
  assert.equal(existsSync(file), false);
});

test('GGUF is refused for an OLMoE configuration llama.cpp would compute differently', () => {
  const dir = join(tempDir(), 'model');
  cpSync(gutenbergDir, dir, { recursive: true });
  const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...config, norm_topk_prob: true }));
  assert.throws(() => writeGguf(dir, join(dir, 'x.gguf'), 'F32'), /config\.json: GGUF is written for the plain OLMoE architecture only/);
});
