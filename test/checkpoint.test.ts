import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { RoutelabError } from '../src/errors.js';
import { Checkpoint, resolveModelPath } from '../src/model/checkpoint.js';
import { SafetensorsFile, writeSafetensors, type TensorToWrite } from '../src/model/safetensors.js';

const PARITY_DIR = path.join(import.meta.dirname, '..', '..', 'test', 'fixtures', 'parity', 'tiny-olmoe');
const PARITY_CONFIG = JSON.parse(fs.readFileSync(path.join(PARITY_DIR, 'config.json'), 'utf8')) as Record<string, unknown>;
const PARITY_WEIGHTS = SafetensorsFile.open(path.join(PARITY_DIR, 'model.safetensors'));
/** vocab 1024, hidden 64, 2 layers of 64 experts (SPEC §1 tensor names): 3 + 2 × (9 + 3 × 64) tensors. */
const PARITY_TENSOR_COUNT = 3 + 2 * (9 + 3 * 64);

const TEMP_ROOT = fs.mkdtempSync(path.join(os.tmpdir(), 'routelab-checkpoint-'));
after(() => fs.rmSync(TEMP_ROOT, { recursive: true, force: true }));
const tempDir = () => fs.mkdtempSync(path.join(TEMP_ROOT, 'case-'));

function parityTensors(): TensorToWrite[] {
  return PARITY_WEIGHTS.entries.map((t) => ({ name: t.name, dtype: t.dtype, shape: t.shape, data: PARITY_WEIGHTS.readArray(t.name) }));
}

/** A model directory holding the parity checkpoint, as one file or split in shards, with optional edits. */
function modelDir(
  options: { config?: Record<string, unknown>; tensors?: TensorToWrite[]; shards?: number } = {},
): string {
  const dir = tempDir();
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(options.config ?? PARITY_CONFIG));
  const tensors = options.tensors ?? parityTensors();
  const shards = options.shards ?? 1;
  if (shards === 1) {
    writeSafetensors(path.join(dir, 'model.safetensors'), tensors, { format: 'pt' });
    return dir;
  }
  const weightMap: Record<string, string> = {};
  const perShard = Math.ceil(tensors.length / shards);
  for (let s = 0; s < shards; s++) {
    const name = `model-${String(s + 1).padStart(5, '0')}-of-${String(shards).padStart(5, '0')}.safetensors`;
    const part = tensors.slice(s * perShard, (s + 1) * perShard);
    writeSafetensors(path.join(dir, name), part, { format: 'pt' });
    for (const t of part) weightMap[t.name] = name;
  }
  writeIndex(dir, weightMap);
  return dir;
}

function writeIndex(dir: string, weightMap: Record<string, string>): void {
  fs.writeFileSync(path.join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: { total_size: 0 }, weight_map: weightMap }));
}

function readIndex(dir: string): Record<string, string> {
  return JSON.parse(fs.readFileSync(path.join(dir, 'model.safetensors.index.json'), 'utf8')).weight_map;
}

/** Asserts that opening `dir` fails with a RoutelabError whose message matches every pattern. */
function assertOpenFails(dir: string, ...patterns: RegExp[]): void {
  assert.throws(
    () => Checkpoint.open(dir),
    (e: unknown) => {
      assert.ok(e instanceof RoutelabError, `expected a RoutelabError, got ${String(e)}`);
      for (const p of patterns) assert.match(e.message, p);
      return true;
    },
  );
}

const escape = (s: string) => new RegExp(s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));

test('opens the parity checkpoint and describes it', () => {
  const checkpoint = Checkpoint.open(PARITY_DIR);
  assert.equal(checkpoint.dir, PARITY_DIR);
  assert.equal(checkpoint.family.modelType, 'olmoe');
  assert.equal(checkpoint.architecture.moe.numExperts, 64);
  assert.equal(checkpoint.rawConfig.torch_dtype, 'bfloat16');
  assert.deepEqual(checkpoint.shards, [
    { file: 'model.safetensors', bytes: fs.statSync(path.join(PARITY_DIR, 'model.safetensors')).size, tensorCount: PARITY_TENSOR_COUNT },
  ]);
  assert.deepEqual(checkpoint.unexpectedTensors, []);
  assert.equal(checkpoint.tensorNames.length, PARITY_TENSOR_COUNT);
  const params = 2 * 1024 * 64 + 64 + 2 * (2 * 64 + 4 * 64 * 64 + 2 * 64 + 64 * 64 + 64 * 3 * 32 * 64);
  assert.deepEqual([...checkpoint.dtypeHistogram], [['BF16', params]]);
  assert.equal(checkpoint.parameterCount, params);

  const gate = checkpoint.tensor('model.layers.1.mlp.gate.weight');
  assert.equal(gate.dtype, 'BF16');
  assert.deepEqual(gate.shape, [64, 64]);
  assert.deepEqual(gate.data, PARITY_WEIGHTS.readArray('model.layers.1.mlp.gate.weight'));
  assert.notEqual(checkpoint.tensor('model.norm.weight').data, checkpoint.tensor('model.norm.weight').data, 'no caching');
  assert.throws(() => checkpoint.tensor('model.layers.2.mlp.gate.weight'), /no tensor "model\.layers\.2\.mlp\.gate\.weight"/);
});

test('a sharded checkpoint loads the same tensors as the single file', () => {
  const dir = modelDir({ shards: 3 });
  const sharded = Checkpoint.open(dir);
  const single = Checkpoint.open(PARITY_DIR);
  assert.deepEqual(
    sharded.shards.map((s) => s.file),
    ['model-00001-of-00003.safetensors', 'model-00002-of-00003.safetensors', 'model-00003-of-00003.safetensors'],
  );
  assert.equal(sharded.shards.reduce((n, s) => n + s.tensorCount, 0), PARITY_TENSOR_COUNT);
  assert.equal(sharded.parameterCount, single.parameterCount);
  assert.deepEqual(new Set(sharded.tensorNames), new Set(single.tensorNames));
  for (const name of single.tensorNames) assert.deepEqual(sharded.tensor(name), single.tensor(name), name);
});

test('extra tensors are allowed and listed', () => {
  const extra: TensorToWrite = { name: 'model.rotary_emb.inv_freq', dtype: 'F32', shape: [8], data: new Float32Array(8) };
  const checkpoint = Checkpoint.open(modelDir({ tensors: [...parityTensors(), extra] }));
  assert.deepEqual(checkpoint.unexpectedTensors, ['model.rotary_emb.inv_freq']);
  assert.equal(checkpoint.dtypeHistogram.get('F32'), 8);
});

test('a missing tensor is named; many missing ones are counted', () => {
  const one = parityTensors().filter((t) => t.name !== 'model.layers.1.mlp.experts.63.down_proj.weight');
  assertOpenFails(
    modelDir({ tensors: one }),
    /does not match config\.json: 1 expected tensor\(s\) missing: model\.layers\.1\.mlp\.experts\.63\.down_proj\.weight$/,
  );
  const noLayer1 = parityTensors().filter((t) => !t.name.startsWith('model.layers.1.'));
  assertOpenFails(modelDir({ tensors: noLayer1 }), /201 expected tensor\(s\) missing: model\.layers\.1\.input_layernorm\.weight, .*\(196 more\)/);
});

test('a shape that differs from config.json names tensor, both shapes and the mismatch', () => {
  const tensors = parityTensors().map((t) =>
    t.name === 'model.layers.0.self_attn.k_proj.weight' ? { ...t, shape: [32, 128] } : t,
  );
  const dir = modelDir({ tensors });
  assertOpenFails(
    dir,
    escape(path.join(dir, 'model.safetensors')),
    /tensor "model\.layers\.0\.self_attn\.k_proj\.weight" has shape \[32, 128\] but config\.json implies \[64, 64\]: the checkpoint does not match config\.json/,
  );
  // A config that disagrees with the weights is the same error seen from the other side.
  assertOpenFails(modelDir({ config: { ...PARITY_CONFIG, vocab_size: 2048 } }), /model\.embed_tokens\.weight" has shape \[1024, 64\] but config\.json implies \[2048, 64\]/);
});

test('a required tensor stored as integers is rejected', () => {
  const tensors = parityTensors().map((t) =>
    t.name === 'model.norm.weight' ? { name: t.name, dtype: 'I16' as const, shape: [64], data: new Int16Array(64) } : t,
  );
  assertOpenFails(modelDir({ tensors }), /model\.norm\.weight" has dtype I16; expected BF16, F16 or F32 weights/);
});

test('config.json problems name the file', () => {
  const wrongType = modelDir({ config: { ...PARITY_CONFIG, model_type: 'llama' } });
  assertOpenFails(wrongType, escape(path.join(wrongType, 'config.json')), /model_type: expected one of "olmoe", "mixtral", .* got "llama"/);
  assertOpenFails(modelDir({ config: { ...PARITY_CONFIG, rope_scaling: { type: 'longrope', factor: 2 } } }), /config\.json: rope_scaling: rope type "longrope" is not implemented \(routelab implements default, linear, dynamic and yarn\)/);

  const badJson = modelDir();
  fs.writeFileSync(path.join(badJson, 'config.json'), '{"model_type": "olmoe",');
  assertOpenFails(badJson, escape(`${path.join(badJson, 'config.json')}: not valid JSON`));
  const noConfig = modelDir();
  fs.rmSync(path.join(noConfig, 'config.json'));
  assertOpenFails(noConfig, /config\.json: missing/);
  assertOpenFails(path.join(TEMP_ROOT, 'nowhere'), /nowhere: no such model directory/);
});

test('a directory without weights is a clear error', () => {
  const dir = modelDir();
  fs.rmSync(path.join(dir, 'model.safetensors'));
  assertOpenFails(dir, escape(`${dir}: no weights: expected model.safetensors or model.safetensors.index.json`));
  const shardsOnly = modelDir({ shards: 2 });
  fs.rmSync(path.join(shardsOnly, 'model.safetensors.index.json'));
  assertOpenFails(shardsOnly, /found model-00001-of-00002\.safetensors, model-00002-of-00002\.safetensors but no index/);
});

test('index problems: invalid, shard absent, tensor not in its shard, tensor in two shards', () => {
  const invalid = modelDir({ shards: 2 });
  fs.writeFileSync(path.join(invalid, 'model.safetensors.index.json'), '{"weight_map": ');
  assertOpenFails(invalid, /model\.safetensors\.index\.json: not valid JSON/);
  fs.writeFileSync(path.join(invalid, 'model.safetensors.index.json'), '{"metadata": {}}');
  assertOpenFails(invalid, /model\.safetensors\.index\.json: expected an object with a "weight_map" object/);
  writeIndex(invalid, { 'model.norm.weight': '../elsewhere.safetensors' });
  assertOpenFails(invalid, /weight_map\["model\.norm\.weight"\] = "\.\.\/elsewhere\.safetensors" is not a shard file name/);

  const absent = modelDir({ shards: 3 });
  fs.rmSync(path.join(absent, 'model-00002-of-00003.safetensors'));
  assertOpenFails(absent, /model\.safetensors\.index\.json: lists shard "model-00002-of-00003\.safetensors", which is not in/);

  const misplaced = modelDir({ shards: 2 });
  writeIndex(misplaced, { ...readIndex(misplaced), 'model.norm.weight': 'model-00001-of-00002.safetensors' });
  assert.equal(readIndex(modelDir({ shards: 2 }))['model.norm.weight'], 'model-00002-of-00002.safetensors');
  assertOpenFails(misplaced, /maps tensor "model\.norm\.weight" to shard "model-00001-of-00002\.safetensors", which does not contain it/);

  const doubled = modelDir({ shards: 2 });
  const secondShard = path.join(doubled, 'model-00002-of-00002.safetensors');
  const second = SafetensorsFile.open(secondShard);
  const stolen: TensorToWrite = { ...parityTensors()[0]! };
  writeSafetensors(secondShard, [...second.entries.map((t) => ({ name: t.name, dtype: t.dtype, shape: t.shape, data: second.readArray(t.name) })), stolen]);
  assertOpenFails(doubled, escape(`tensor "${stolen.name}" is stored in both model-00001-of-00002.safetensors and model-00002-of-00002.safetensors`));
});

test('a truncated shard is reported by file', () => {
  const dir = modelDir({ shards: 2 });
  const shard = path.join(dir, 'model-00002-of-00002.safetensors');
  fs.truncateSync(shard, fs.statSync(shard).size - 100);
  assertOpenFails(dir, escape(shard), /run past the end of the data area/);
});

// ---------------------------------------------------------------------------------------------------------------
// Hub resolution

const COMMIT = '0123456789abcdef0123456789abcdef01234567';
const OTHER_COMMIT = 'fedcba9876543210fedcba9876543210fedcba98';

/** A hub cache holding allenai/tiny-olmoe at two commits, `main` → COMMIT and tag `v1` → OTHER_COMMIT, as the hub lays it out. */
function fakeHubCache(): string {
  const cache = tempDir();
  const repo = path.join(cache, 'models--allenai--tiny-olmoe');
  fs.mkdirSync(path.join(repo, 'blobs'), { recursive: true });
  fs.mkdirSync(path.join(repo, 'refs'));
  fs.copyFileSync(path.join(PARITY_DIR, 'model.safetensors'), path.join(repo, 'blobs', 'weights-etag'));
  for (const [ref, commit] of [['main', COMMIT], ['v1', OTHER_COMMIT]] as const) {
    fs.writeFileSync(path.join(repo, 'refs', ref), commit);
    const snapshot = path.join(repo, 'snapshots', commit);
    fs.mkdirSync(snapshot, { recursive: true });
    fs.copyFileSync(path.join(PARITY_DIR, 'config.json'), path.join(snapshot, 'config.json'));
    fs.symlinkSync(path.join('..', '..', 'blobs', 'weights-etag'), path.join(snapshot, 'model.safetensors'));
  }
  return cache;
}

/** Runs `body` with HF_HUB_OFFLINE set as given, restoring the environment afterwards. */
async function withOffline<T>(value: string | undefined, body: () => Promise<T>): Promise<T> {
  const saved = process.env.HF_HUB_OFFLINE;
  if (value === undefined) delete process.env.HF_HUB_OFFLINE;
  else process.env.HF_HUB_OFFLINE = value;
  try {
    return await body();
  } finally {
    if (saved === undefined) delete process.env.HF_HUB_OFFLINE;
    else process.env.HF_HUB_OFFLINE = saved;
  }
}

const unreachable: typeof fetch = () => Promise.reject(new TypeError('fetch failed', { cause: new Error('getaddrinfo ENOTFOUND huggingface.co') }));

test('an existing directory resolves to itself', async () => {
  assert.equal(await resolveModelPath(PARITY_DIR, { allowDownload: false }), PARITY_DIR);
});

test('a repo id resolves to its snapshot in the hub cache, by branch, tag or commit', async () => {
  const cacheDir = fakeHubCache();
  const snapshots = path.join(cacheDir, 'models--allenai--tiny-olmoe', 'snapshots');
  const resolve = (spec: string, revision?: string) => resolveModelPath(spec, { cacheDir, revision, fetch: unreachable });
  assert.equal(await resolve('allenai/tiny-olmoe'), path.join(snapshots, COMMIT));
  assert.equal(await resolve('allenai/tiny-olmoe@v1'), path.join(snapshots, OTHER_COMMIT));
  assert.equal(await resolve('allenai/tiny-olmoe', 'v1'), path.join(snapshots, OTHER_COMMIT));
  assert.equal(await resolve(`allenai/tiny-olmoe@${OTHER_COMMIT}`), path.join(snapshots, OTHER_COMMIT));
  await assert.rejects(resolve('allenai/tiny-olmoe@v1', 'main'), /revision "v1" conflicts with the requested revision "main"/);
  // The snapshot is a loadable checkpoint, weights reached through the cache's symlink.
  assert.equal(Checkpoint.open(await resolve('allenai/tiny-olmoe')).parameterCount, Checkpoint.open(PARITY_DIR).parameterCount);
});

test('the cache location follows HF_HUB_CACHE, then HF_HOME', async () => {
  const cacheDir = fakeHubCache();
  const saved = { HF_HUB_CACHE: process.env.HF_HUB_CACHE, HF_HOME: process.env.HF_HOME };
  try {
    delete process.env.HF_HUB_CACHE;
    const home = tempDir();
    fs.renameSync(cacheDir, path.join(home, 'hub'));
    process.env.HF_HOME = home;
    assert.equal(await resolveModelPath('allenai/tiny-olmoe', { allowDownload: false }), path.join(home, 'hub', 'models--allenai--tiny-olmoe', 'snapshots', COMMIT));
    process.env.HF_HUB_CACHE = path.join(home, 'hub');
    process.env.HF_HOME = path.join(TEMP_ROOT, 'not-here');
    assert.equal(await resolveModelPath('allenai/tiny-olmoe', { allowDownload: false }), path.join(home, 'hub', 'models--allenai--tiny-olmoe', 'snapshots', COMMIT));
  } finally {
    for (const [key, value] of Object.entries(saved)) {
      if (value === undefined) delete process.env[key];
      else process.env[key] = value;
    }
  }
});

test('not cached and offline: one clear error', async () => {
  const cacheDir = tempDir();
  await withOffline('1', async () => {
    await assert.rejects(
      resolveModelPath('allenai/OLMoE-1B-7B-0924', { cacheDir }),
      (e: unknown) =>
        e instanceof RoutelabError &&
        e.message === `allenai/OLMoE-1B-7B-0924: no such directory, not in the Hugging Face cache (${cacheDir}), and offline (HF_HUB_OFFLINE=1)`,
    );
    // A cached snapshot is still found offline; an uncached revision of a cached repo is not.
    const cached = fakeHubCache();
    assert.match(await resolveModelPath('allenai/tiny-olmoe', { cacheDir: cached }), /snapshots/);
    await assert.rejects(resolveModelPath('allenai/tiny-olmoe@v2', { cacheDir: cached }), /not in the Hugging Face cache .*, and offline/);
  });
  await assert.rejects(resolveModelPath('allenai/OLMoE-1B-7B-0924', { cacheDir, allowDownload: false }), /and downloads are disabled$/);
});

test('not cached and the hub unreachable: one clear error naming the cause', async () => {
  const cacheDir = tempDir();
  await withOffline(undefined, async () => {
    await assert.rejects(
      resolveModelPath('allenai/OLMoE-1B-7B-0924', { cacheDir, fetch: unreachable }),
      (e: unknown) =>
        e instanceof RoutelabError &&
        e.message ===
          `allenai/OLMoE-1B-7B-0924: no such directory, not in the Hugging Face cache (${cacheDir}), and the download failed: fetch failed (getaddrinfo ENOTFOUND huggingface.co)`,
    );
    // A real connection attempt to a closed local port fails fast too.
    await assert.rejects(
      resolveModelPath('allenai/OLMoE-1B-7B-0924', { cacheDir, hubUrl: 'http://127.0.0.1:9' }),
      /allenai\/OLMoE-1B-7B-0924: no such directory, not in the Hugging Face cache .*, and the download failed: fetch failed/,
    );
  });
});

test('a spec that is neither a directory nor a repo id', async () => {
  await assert.rejects(resolveModelPath('no-such-model', { allowDownload: false }), /^RoutelabError: no-such-model: no such model directory/);
  await assert.rejects(resolveModelPath('./a/b/c', { allowDownload: false }), /\.\/a\/b\/c: no such model directory/);
  const file = path.join(tempDir(), 'model.safetensors');
  fs.writeFileSync(file, '');
  await assert.rejects(resolveModelPath(file), /not a directory/);
});

/**
 * A stand-in for the hub's HTTP API serving `files` for one repo at one commit: the model-info, paths-info and
 * resolve endpoints that @huggingface/hub's downloads use. Records every file fetched in full.
 */
function fakeHub(repo: string, commit: string, files: Record<string, Buffer>, fetched: string[]): typeof fetch {
  return async (input, init) => {
    const url = new URL(String(input));
    const json = (body: unknown) => new Response(JSON.stringify(body), { headers: { 'Content-Type': 'application/json' } });
    if (url.pathname.startsWith(`/api/models/${repo}/revision/`)) {
      return json({ _id: 'x', id: repo, sha: commit, siblings: Object.keys(files).map((rfilename) => ({ rfilename })) });
    }
    if (url.pathname.startsWith(`/api/models/${repo}/paths-info/`)) {
      const paths: string[] = JSON.parse(String(init?.body)).paths;
      return json(paths.map((p) => ({ path: p, type: 'file', oid: `oid-${p.replace(/\W/g, '-')}`, size: files[p]!.length })));
    }
    const resolved = url.pathname.match(new RegExp(`^/${repo}/resolve/[^/]+/(.+)$`));
    const body = resolved && files[resolved[1]!];
    if (!body) return new Response('not found', { status: 404 });
    const range = new Headers(init?.headers).get('Range');
    if (range === 'bytes=0-0') {
      return new Response(body.subarray(0, 1), { status: 206, headers: { 'Content-Range': `bytes 0-0/${body.length}`, ETag: '"e"' } });
    }
    fetched.push(resolved[1]!);
    return new Response(body, { headers: { ETag: '"e"' } });
  };
}

test('a download lands in the standard cache layout, only the files routelab needs, config.json last', async () => {
  const cacheDir = tempDir();
  const files: Record<string, Buffer> = {
    'config.json': fs.readFileSync(path.join(PARITY_DIR, 'config.json')),
    'model.safetensors': fs.readFileSync(path.join(PARITY_DIR, 'model.safetensors')),
    'tokenizer.json': Buffer.from('{}'),
    'README.md': Buffer.from('# not needed'),
    'pytorch_model.bin': Buffer.from('not needed'),
  };
  const fetched: string[] = [];
  const debug = console.debug; // the client logs each download on stdout
  console.debug = () => {};
  try {
    const dir = await withOffline(undefined, () =>
      resolveModelPath('allenai/tiny-olmoe@v1', { cacheDir, fetch: fakeHub('allenai/tiny-olmoe', COMMIT, files, fetched) }),
    );
    const repoCache = path.join(cacheDir, 'models--allenai--tiny-olmoe');
    assert.equal(dir, path.join(repoCache, 'snapshots', COMMIT));
    assert.deepEqual(fetched, ['model.safetensors', 'tokenizer.json', 'config.json']);
    assert.equal(fs.readFileSync(path.join(repoCache, 'refs', 'v1'), 'utf8'), COMMIT);
    assert.ok(fs.lstatSync(path.join(dir, 'model.safetensors')).isSymbolicLink());
    assert.deepEqual(fs.readdirSync(dir).sort(), ['config.json', 'model.safetensors', 'tokenizer.json']);
    assert.equal(Checkpoint.open(dir).parameterCount, Checkpoint.open(PARITY_DIR).parameterCount);
    // Now cached: resolving again needs no hub at all.
    assert.equal(await resolveModelPath('allenai/tiny-olmoe@v1', { cacheDir, allowDownload: false }), dir);
  } finally {
    console.debug = debug;
  }
});
