import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { RoutelabError } from '../src/errors.js';
import { SafetensorsFile, writeSafetensors, type TensorToWrite } from '../src/model/safetensors.js';

const FIXTURES = path.join(import.meta.dirname, '..', '..', 'test', 'fixtures', 'parity');
const MODEL_FILE = path.join(FIXTURES, 'tiny-olmoe', 'model.safetensors');
const EXPECTED_FILE = path.join(FIXTURES, 'tiny-olmoe-expected.safetensors');

const TEMP_ROOT = fs.mkdtempSync(path.join(os.tmpdir(), 'routelab-safetensors-'));
after(() => fs.rmSync(TEMP_ROOT, { recursive: true, force: true }));
const tempDir = () => fs.mkdtempSync(path.join(TEMP_ROOT, 'case-'));

/** A file with the given header (object or literal text) and data area, the length prefix taken from the header. */
function craft(header: unknown, dataBytes: number, lengthPrefix?: bigint): string {
  const headerBytes = Buffer.from(typeof header === 'string' ? header : JSON.stringify(header));
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(lengthPrefix ?? BigInt(headerBytes.length));
  const file = path.join(tempDir(), 'crafted.safetensors');
  fs.writeFileSync(file, Buffer.concat([prefix, headerBytes, Buffer.alloc(dataBytes)]));
  return file;
}

/** Asserts that opening `file` fails with a RoutelabError naming the file and matching `problem`. */
function assertRejected(file: string, problem: RegExp): void {
  assert.throws(
    () => SafetensorsFile.open(file),
    (e: unknown) => {
      assert.ok(e instanceof RoutelabError, `expected a RoutelabError, got ${String(e)}`);
      assert.ok(e.message.startsWith(`${file}: `), `message does not name the file: ${e.message}`);
      assert.match(e.message, problem);
      return true;
    },
  );
}

test('reads the header of the parity checkpoint without reading tensor data', () => {
  const file = SafetensorsFile.open(MODEL_FILE);
  assert.deepEqual(file.metadata, { format: 'pt' });
  assert.equal(file.fileBytes, fs.statSync(MODEL_FILE).size);
  assert.ok(file.names.includes('model.embed_tokens.weight'));
  const embed = file.entry('model.embed_tokens.weight');
  assert.equal(embed.dtype, 'BF16');
  assert.deepEqual(embed.shape, [1024, 64]);
  assert.equal(embed.byteLength, 1024 * 64 * 2);
  // The data area is exactly covered by the tensors.
  assert.equal(file.entries.reduce((sum, t) => sum + t.byteLength, 0), file.fileBytes - file.dataStart);
});

test('readWeight gives BF16 raw bits in a fresh aligned buffer', () => {
  const file = SafetensorsFile.open(MODEL_FILE);
  const norm = file.readWeight('model.norm.weight');
  assert.equal(norm.dtype, 'BF16');
  assert.deepEqual(norm.shape, [64]);
  assert.ok(norm.data instanceof Uint16Array);
  assert.equal(norm.data.length, 64);
  assert.equal(norm.data.byteOffset, 0);
  assert.equal(norm.data.buffer.byteLength, 128);
  // The same bytes as a plain read of the file at the header's offsets.
  const [begin, end] = file.entry('model.norm.weight').dataOffsets;
  const raw = fs.readFileSync(MODEL_FILE).subarray(file.dataStart + begin, file.dataStart + end);
  assert.deepEqual(new Uint8Array(norm.data.buffer), new Uint8Array(raw));
});

test('readArray reads the I64 input_ids and F32 outputs of the expected-output file', () => {
  const file = SafetensorsFile.open(EXPECTED_FILE);
  const ids = file.readArray('input_ids', 'I64');
  assert.ok(ids instanceof BigInt64Array);
  assert.equal(ids.length, 48);
  assert.deepEqual(file.entry('input_ids').shape, [2, 24]);
  for (const id of ids) assert.ok(id >= 0n && id < 1024n);
  const logits = file.readArray('logits');
  assert.ok(logits instanceof Float32Array);
  assert.equal(logits.length, 2 * 24 * 1024);
  assert.ok(logits.every(Number.isFinite));
  assert.equal(file.readWeight('router_logits').data.length, 2 * 48 * 64);
});

test('reading with the wrong dtype, a non-weight dtype or an unknown name is a clear error', () => {
  const file = SafetensorsFile.open(EXPECTED_FILE);
  assert.throws(() => file.readWeight('input_ids'), /input_ids" has dtype I64; expected BF16, F16 or F32 weights/);
  assert.throws(() => file.readArray('logits', 'I64'), /logits" has dtype F32; expected I64/);
  assert.throws(() => file.entry('nope'), /no tensor "nope"/);
  assert.throws(() => SafetensorsFile.open(path.join(tempDir(), 'absent.safetensors')), /absent\.safetensors: no such file/);
  assert.throws(() => SafetensorsFile.open(FIXTURES), /parity: not a regular file/);
});

test('rejects a file shorter than the 8-byte length prefix', () => {
  const file = path.join(tempDir(), 'tiny.safetensors');
  fs.writeFileSync(file, Buffer.from([1, 2, 3]));
  assertRejected(file, /truncated: 3 bytes, shorter than the 8-byte/);
});

test('rejects a header length running past the end of the file', () => {
  assertRejected(craft({}, 0, 1000n), /header length 1000 runs past the end of the file \(10 bytes\)/);
  assertRejected(craft({}, 0, 2n ** 64n - 1n), /runs past the end of the file/);
});

test('rejects a header that is not JSON, or not a JSON object', () => {
  assertRejected(craft('{"a": [1, 2', 0), /header is not valid JSON/);
  assertRejected(craft('[1, 2]', 0), /header is not a JSON object/);
  assertRejected(craft({ __metadata__: { n: 1 } }, 0), /__metadata__ must map strings to strings/);
});

test('rejects an unknown dtype, listing the known ones', () => {
  const file = craft({ w: { dtype: 'Q4_K', shape: [2], data_offsets: [0, 2] } }, 2);
  assertRejected(file, /tensor "w": unknown dtype "Q4_K" \(known: F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL\)/);
});

test('rejects a shape that is not non-negative integers', () => {
  for (const shape of [[-1], [1.5], '4', [2, null]]) {
    assertRejected(craft({ w: { dtype: 'U8', shape, data_offsets: [0, 0] } }, 0), /tensor "w": shape .* is not an array of non-negative integers/);
  }
});

test('rejects offsets that are not [begin <= end] integers', () => {
  for (const offsets of [[4, 2], [0], [0, 2.5], [-2, 0], 'x']) {
    assertRejected(
      craft({ w: { dtype: 'U8', shape: [2], data_offsets: offsets } }, 8),
      /tensor "w": data_offsets .* are not \[begin, end\] integers/,
    );
  }
});

test('rejects offsets past the end of the data area (a truncated file)', () => {
  assertRejected(
    craft({ w: { dtype: 'F32', shape: [4], data_offsets: [0, 16] } }, 12),
    /tensor "w": data_offsets \[0, 16\] run past the end of the data area \(12 bytes\): file truncated\?/,
  );
  // The real checkpoint cut in half.
  const file = path.join(tempDir(), 'half.safetensors');
  const bytes = fs.readFileSync(MODEL_FILE);
  fs.writeFileSync(file, bytes.subarray(0, bytes.length >> 1));
  assertRejected(file, /run past the end of the data area/);
});

test('rejects a byte size that does not match dtype × shape', () => {
  assertRejected(
    craft({ w: { dtype: 'BF16', shape: [2, 3], data_offsets: [0, 10] } }, 16),
    /tensor "w": holds 10 bytes but BF16 × \[2, 3\] needs 12/,
  );
});

test('rejects tensors that overlap, allows ones that only touch', () => {
  const overlapping = {
    a: { dtype: 'F32', shape: [4], data_offsets: [0, 16] },
    b: { dtype: 'F32', shape: [2], data_offsets: [12, 20] },
  };
  assertRejected(craft(overlapping, 20), /tensors "a" \[0, 16\) and "b" \[12, 20\) overlap/);
  const nested = {
    outer: { dtype: 'U8', shape: [10], data_offsets: [0, 10] },
    first: { dtype: 'U8', shape: [2], data_offsets: [10, 12] },
    inner: { dtype: 'U8', shape: [2], data_offsets: [4, 6] },
  };
  assertRejected(craft(nested, 12), /"outer" \[0, 10\) and "inner" \[4, 6\) overlap/);
  const touching = {
    a: { dtype: 'U8', shape: [4], data_offsets: [0, 4] },
    empty: { dtype: 'F32', shape: [0, 3], data_offsets: [2, 2] },
    b: { dtype: 'U8', shape: [4], data_offsets: [4, 8] },
  };
  assert.deepEqual(SafetensorsFile.open(craft(touching, 8)).names, ['a', 'empty', 'b']);
});

test('writeSafetensors round-trips every dtype, with metadata, and pads the header to 8 bytes', () => {
  const dir = tempDir();
  const file = path.join(dir, 'out.safetensors');
  const tensors: TensorToWrite[] = [
    { name: 'ids', dtype: 'I64', shape: [2, 3], data: new BigInt64Array([0n, 1n, -2n, 2n ** 62n, 5n, -(2n ** 63n)]) },
    { name: 'f32', dtype: 'F32', shape: [3], data: new Float32Array([1.5, -0, Infinity]) },
    { name: 'bf16', dtype: 'BF16', shape: [1, 2], data: new Uint16Array([0x3f80, 0xbf80]) },
    { name: 'f16', dtype: 'F16', shape: [1], data: new Uint16Array([0x3c00]) },
    { name: 'i32', dtype: 'I32', shape: [2], data: new Int32Array([-7, 2 ** 31 - 1]) },
    { name: 'mask', dtype: 'BOOL', shape: [3], data: new Uint8Array([1, 0, 1]) },
    { name: 'f64', dtype: 'F64', shape: [1], data: new Float64Array([Math.PI]) },
    { name: 'empty', dtype: 'F32', shape: [0], data: new Float32Array(0) },
  ];
  writeSafetensors(file, tensors, { format: 'pt', note: 'routelab' });
  assert.deepEqual(fs.readdirSync(dir), ['out.safetensors'], 'no temporary file is left behind');

  const read = SafetensorsFile.open(file);
  assert.equal(read.dataStart % 8, 0);
  assert.deepEqual(read.metadata, { format: 'pt', note: 'routelab' });
  assert.deepEqual(read.names, tensors.map((t) => t.name));
  for (const t of tensors) {
    assert.deepEqual(read.entry(t.name).shape, t.shape);
    assert.deepEqual(read.readArray(t.name, t.dtype), t.data, t.name);
  }
  const header = fs.readFileSync(file).subarray(8, read.dataStart).toString();
  assert.match(header, /^\{"__metadata__".*\} *$/);
});

test('writeSafetensors reproduces the reference library byte for byte', () => {
  const source = SafetensorsFile.open(MODEL_FILE);
  const file = path.join(tempDir(), 'copy.safetensors');
  writeSafetensors(
    file,
    source.entries.map((t) => ({ name: t.name, dtype: t.dtype, shape: t.shape, data: source.readArray(t.name) })),
    { ...source.metadata },
  );
  assert.ok(fs.readFileSync(file).equals(fs.readFileSync(MODEL_FILE)));
});

test('writeSafetensors validates its input and leaves neither the target nor a temp file on failure', () => {
  const dir = tempDir();
  const file = path.join(dir, 'bad.safetensors');
  const f32 = (length: number) => new Float32Array(length);
  assert.throws(() => writeSafetensors(file, [{ name: 'w', dtype: 'F32', shape: [2, 2], data: f32(3) }]), /bad\.safetensors: tensor "w": 3 elements do not fill shape \[2, 2\] \(4 elements\)/);
  assert.throws(() => writeSafetensors(file, [{ name: 'w', dtype: 'BF16', shape: [2], data: f32(2) }]), /BF16 data must be a Uint16Array/);
  assert.throws(() => writeSafetensors(file, [{ name: 'w', dtype: 'I64', shape: [2], data: new Int32Array(2) }]), /I64 data must be a BigInt64Array/);
  assert.throws(
    () => writeSafetensors(file, [{ name: 'w', dtype: 'F32', shape: [1], data: f32(1) }, { name: 'w', dtype: 'F32', shape: [1], data: f32(1) }]),
    /tensor "w": name is reserved or used twice/,
  );
  assert.deepEqual(fs.readdirSync(dir), []);

  // A failure at the final rename (the target is a non-empty directory) removes the temp file.
  const occupied = path.join(dir, 'occupied.safetensors');
  fs.mkdirSync(occupied);
  fs.writeFileSync(path.join(occupied, 'x'), '');
  assert.throws(() => writeSafetensors(occupied, [{ name: 'w', dtype: 'F32', shape: [1], data: f32(1) }]));
  assert.deepEqual(fs.readdirSync(dir), ['occupied.safetensors']);
});

test('writeSafetensors replaces an existing file whole', () => {
  const file = path.join(tempDir(), 'w.safetensors');
  writeSafetensors(file, [{ name: 'a', dtype: 'F32', shape: [1000], data: new Float32Array(1000).fill(1) }]);
  writeSafetensors(file, [{ name: 'b', dtype: 'I32', shape: [1], data: new Int32Array([42]) }]);
  const read = SafetensorsFile.open(file);
  assert.deepEqual(read.names, ['b']);
  assert.deepEqual(read.readArray('b', 'I32'), new Int32Array([42]));
});
