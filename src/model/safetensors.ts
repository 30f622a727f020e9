/**
 * The safetensors format (https://github.com/huggingface/safetensors): an 8-byte little-endian u64 header length N,
 * N bytes of JSON header `{name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__"?: {str: str}}`, then the
 * data area, which the offsets index. Only the header is read up front; tensor bytes are read on request.
 *
 * Typed arrays take the host's byte order, and safetensors is little-endian: routelab assumes a little-endian host,
 * as every platform Node supports is.
 */
import * as fs from 'node:fs';
import { writeFileAtomic } from '../atomic.js';
import { RoutelabError } from '../errors.js';
import { numel, type StoredTensor, type WeightDtype } from './tensor.js';

/** The typed array that holds each dtype's elements. BF16 and F16 stay as their raw 16-bit patterns. */
export interface DtypeArrays {
  F64: Float64Array;
  F32: Float32Array;
  F16: Uint16Array;
  BF16: Uint16Array;
  I64: BigInt64Array;
  I32: Int32Array;
  I16: Int16Array;
  I8: Int8Array;
  U8: Uint8Array;
  BOOL: Uint8Array;
}
export type SafetensorsDtype = keyof DtypeArrays;
export type TensorData = DtypeArrays[SafetensorsDtype];

type ArrayConstructorFor<D extends SafetensorsDtype> = {
  new (buffer: ArrayBuffer): DtypeArrays[D];
  new (length: number): DtypeArrays[D];
  readonly BYTES_PER_ELEMENT: number;
  readonly name: string;
};

const ARRAY_TYPES: { readonly [D in SafetensorsDtype]: ArrayConstructorFor<D> } = {
  F64: Float64Array,
  F32: Float32Array,
  F16: Uint16Array,
  BF16: Uint16Array,
  I64: BigInt64Array,
  I32: Int32Array,
  I16: Int16Array,
  I8: Int8Array,
  U8: Uint8Array,
  BOOL: Uint8Array,
};

export const SAFETENSORS_DTYPES = Object.keys(ARRAY_TYPES) as readonly SafetensorsDtype[];

export function itemSize(dtype: SafetensorsDtype): number {
  return ARRAY_TYPES[dtype].BYTES_PER_ELEMENT;
}

function isDtype(value: unknown): value is SafetensorsDtype {
  return typeof value === 'string' && Object.hasOwn(ARRAY_TYPES, value);
}

const WEIGHT_DTYPES: readonly WeightDtype[] = ['BF16', 'F16', 'F32'];

export function isWeightDtype(dtype: SafetensorsDtype): dtype is WeightDtype {
  return (WEIGHT_DTYPES as readonly string[]).includes(dtype);
}

/** One tensor's header entry. Offsets are relative to the start of the data area, as in the file. */
export interface TensorEntry {
  readonly name: string;
  readonly dtype: SafetensorsDtype;
  readonly shape: readonly number[];
  readonly dataOffsets: readonly [begin: number, end: number];
  readonly byteLength: number;
}

export interface SafetensorsHeader {
  /** Tensors in the order the header lists them. */
  readonly tensors: ReadonlyMap<string, TensorEntry>;
  readonly metadata: Readonly<Record<string, string>>;
}

const HEADER_LENGTH_BYTES = 8;
/** The reference library refuses larger headers; so do we, rather than allocate whatever 8 stray bytes claim. */
const MAX_HEADER_BYTES = 100_000_000;
const METADATA_KEY = '__metadata__';

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

/**
 * Validates the header JSON against a data area of `dataBytes` bytes. Every problem is a RoutelabError naming `file`
 * (and the tensor where there is one).
 */
export function parseSafetensorsHeader(headerText: string, dataBytes: number, file: string): SafetensorsHeader {
  let raw: unknown;
  try {
    raw = JSON.parse(headerText);
  } catch (e) {
    throw new RoutelabError(file, `safetensors header is not valid JSON (${(e as Error).message})`);
  }
  if (!isObject(raw)) throw new RoutelabError(file, 'safetensors header is not a JSON object');

  let metadata: Record<string, string> = {};
  const tensors = new Map<string, TensorEntry>();
  for (const [name, value] of Object.entries(raw)) {
    if (name === METADATA_KEY) {
      if (!isObject(value) || !Object.values(value).every((v) => typeof v === 'string')) {
        throw new RoutelabError(file, `${METADATA_KEY} must map strings to strings`);
      }
      metadata = value as Record<string, string>;
      continue;
    }
    const bad = (message: string) => new RoutelabError(file, `tensor "${name}": ${message}`);
    if (!isObject(value)) throw bad('header entry is not an object');
    const { dtype, shape, data_offsets: offsets } = value;
    if (!isDtype(dtype)) throw bad(`unknown dtype ${JSON.stringify(dtype)} (known: ${SAFETENSORS_DTYPES.join(', ')})`);
    if (!Array.isArray(shape) || !shape.every(isCount)) {
      throw bad(`shape ${JSON.stringify(shape)} is not an array of non-negative integers`);
    }
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isCount) || offsets[0] > offsets[1]) {
      throw bad(`data_offsets ${JSON.stringify(offsets)} are not [begin, end] integers with 0 <= begin <= end`);
    }
    const [begin, end] = offsets as [number, number];
    if (end > dataBytes) {
      throw bad(`data_offsets [${begin}, ${end}] run past the end of the data area (${dataBytes} bytes): file truncated?`);
    }
    const byteLength = end - begin;
    const expectedBytes = numel(shape) * itemSize(dtype);
    if (byteLength !== expectedBytes) {
      throw bad(`holds ${byteLength} bytes but ${dtype} × [${shape.join(', ')}] needs ${expectedBytes}`);
    }
    tensors.set(name, { name, dtype, shape, dataOffsets: [begin, end], byteLength });
  }
  rejectOverlaps([...tensors.values()], file);
  return { tensors, metadata };
}

/** Two tensors sharing a byte would alias each other's storage; the reference library rejects that too. */
function rejectOverlaps(entries: TensorEntry[], file: string): void {
  const byBegin = entries.filter((t) => t.byteLength > 0).sort((a, b) => a.dataOffsets[0] - b.dataOffsets[0]);
  let reach: TensorEntry | undefined; // the entry extending furthest so far
  for (const t of byBegin) {
    if (reach && t.dataOffsets[0] < reach.dataOffsets[1]) {
      throw new RoutelabError(
        file,
        `tensors "${reach.name}" [${reach.dataOffsets.join(', ')}) and "${t.name}" [${t.dataOffsets.join(', ')}) overlap`,
      );
    }
    if (!reach || t.dataOffsets[1] > reach.dataOffsets[1]) reach = t;
  }
}

/** Reads exactly `target.length` bytes from `position`; a short read means the file changed under us. */
function readFully(fd: number, target: Uint8Array, position: number, file: string): void {
  // One read call moves at most ~2 GiB, so large tensors arrive in chunks.
  const chunk = 1 << 30;
  for (let done = 0; done < target.length; ) {
    const n = fs.readSync(fd, target, done, Math.min(chunk, target.length - done), position + done);
    if (n === 0) throw new RoutelabError(file, `unexpected end of file at byte ${position + done}: file truncated?`);
    done += n;
  }
}

/**
 * A safetensors file opened for lazy reading: the header is parsed and validated on open; each read opens the file,
 * reads one tensor into a freshly allocated (hence aligned) buffer and closes it again, so no descriptor outlives
 * a call.
 */
export class SafetensorsFile {
  private constructor(
    readonly path: string,
    readonly fileBytes: number,
    /** Absolute file offset of the data area: 8 + header length. */
    readonly dataStart: number,
    private readonly header: SafetensorsHeader,
  ) {}

  static open(file: string): SafetensorsFile {
    const fd = openForReading(file);
    try {
      const stats = fs.fstatSync(fd);
      if (!stats.isFile()) throw new RoutelabError(file, 'not a regular file, expected a safetensors file');
      const fileBytes = stats.size;
      if (fileBytes < HEADER_LENGTH_BYTES) {
        throw new RoutelabError(file, `truncated: ${fileBytes} bytes, shorter than the 8-byte safetensors header length`);
      }
      const lengthBytes = new Uint8Array(HEADER_LENGTH_BYTES);
      readFully(fd, lengthBytes, 0, file);
      const headerLength = new DataView(lengthBytes.buffer).getBigUint64(0, true);
      if (headerLength > BigInt(fileBytes - HEADER_LENGTH_BYTES)) {
        throw new RoutelabError(
          file,
          `safetensors header length ${headerLength} runs past the end of the file (${fileBytes} bytes): truncated, or not a safetensors file`,
        );
      }
      if (headerLength > BigInt(MAX_HEADER_BYTES)) {
        throw new RoutelabError(file, `safetensors header length ${headerLength} exceeds the ${MAX_HEADER_BYTES}-byte limit`);
      }
      const headerBytes = new Uint8Array(Number(headerLength));
      readFully(fd, headerBytes, HEADER_LENGTH_BYTES, file);
      let headerText: string;
      try {
        headerText = new TextDecoder('utf-8', { fatal: true }).decode(headerBytes);
      } catch {
        throw new RoutelabError(file, 'safetensors header is not valid UTF-8');
      }
      const dataStart = HEADER_LENGTH_BYTES + headerBytes.length;
      return new SafetensorsFile(file, fileBytes, dataStart, parseSafetensorsHeader(headerText, fileBytes - dataStart, file));
    } finally {
      fs.closeSync(fd);
    }
  }

  get metadata(): Readonly<Record<string, string>> {
    return this.header.metadata;
  }

  /** Tensor names in header order. */
  get names(): string[] {
    return [...this.header.tensors.keys()];
  }

  get entries(): TensorEntry[] {
    return [...this.header.tensors.values()];
  }

  has(name: string): boolean {
    return this.header.tensors.has(name);
  }

  entry(name: string): TensorEntry {
    const entry = this.header.tensors.get(name);
    if (!entry) throw new RoutelabError(this.path, `no tensor "${name}" in this file`);
    return entry;
  }

  /** A weight tensor in its stored form (BF16/F16 raw bits, F32 values). */
  readWeight(name: string): StoredTensor {
    const { dtype, shape } = this.entry(name);
    if (!isWeightDtype(dtype)) {
      throw new RoutelabError(this.path, `tensor "${name}" has dtype ${dtype}; expected BF16, F16 or F32 weights`);
    }
    return { name, dtype, shape, data: this.readArray(name, dtype) };
  }

  /** Any tensor's elements; passing `dtype` checks it and narrows the array type (e.g. 'I64' → BigInt64Array). */
  readArray<D extends SafetensorsDtype>(name: string, dtype: D): DtypeArrays[D];
  readArray(name: string): TensorData;
  readArray(name: string, dtype?: SafetensorsDtype): TensorData {
    const entry = this.entry(name);
    if (dtype !== undefined && entry.dtype !== dtype) {
      throw new RoutelabError(this.path, `tensor "${name}" has dtype ${entry.dtype}; expected ${dtype}`);
    }
    const buffer = new ArrayBuffer(entry.byteLength);
    const fd = openForReading(this.path);
    try {
      readFully(fd, new Uint8Array(buffer), this.dataStart + entry.dataOffsets[0], this.path);
    } finally {
      fs.closeSync(fd);
    }
    return new ARRAY_TYPES[entry.dtype](buffer);
  }
}

function openForReading(file: string): number {
  try {
    return fs.openSync(file, 'r');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new RoutelabError(file, 'no such file');
    throw e;
  }
}

export interface TensorToWrite {
  readonly name: string;
  readonly dtype: SafetensorsDtype;
  readonly shape: readonly number[];
  /** The array type of `dtype` (see DtypeArrays), numel(shape) elements. */
  readonly data: TensorData;
}

/**
 * Writes a safetensors file laid out in the given tensor order, with the header padded by spaces to a multiple of
 * 8 bytes as the reference library does (so the data area starts 8-byte aligned). The write is atomic: the bytes go
 * to a temporary file in the same directory, which is renamed over `file` only once complete; on failure it is
 * removed and `file` is untouched.
 */
export function writeSafetensors(file: string, tensors: readonly TensorToWrite[], metadata?: Record<string, string>): void {
  const header: Record<string, unknown> = {};
  if (metadata !== undefined) header[METADATA_KEY] = metadata;
  let offset = 0;
  for (const t of tensors) {
    const bad = (message: string) => new RoutelabError(file, `tensor "${t.name}": ${message}`);
    const shape = `[${t.shape.join(', ')}]`;
    if (t.name === METADATA_KEY || Object.hasOwn(header, t.name)) throw bad('name is reserved or used twice');
    if (!isDtype(t.dtype)) throw bad(`unknown dtype ${JSON.stringify(t.dtype)} (known: ${SAFETENSORS_DTYPES.join(', ')})`);
    if (!t.shape.every(isCount)) throw bad(`shape ${shape} is not made of non-negative integers`);
    if (!(t.data instanceof ARRAY_TYPES[t.dtype])) throw bad(`${t.dtype} data must be a ${ARRAY_TYPES[t.dtype].name}`);
    if (t.data.length !== numel(t.shape)) {
      throw bad(`${t.data.length} elements do not fill shape ${shape} (${numel(t.shape)} elements)`);
    }
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + t.data.byteLength] };
    offset += t.data.byteLength;
  }
  const json = JSON.stringify(header);
  const headerBytes = Buffer.from(json + ' '.repeat((8 - (Buffer.byteLength(json) % 8)) % 8));
  const lengthBytes = Buffer.alloc(HEADER_LENGTH_BYTES);
  lengthBytes.writeBigUInt64LE(BigInt(headerBytes.length));

  writeFileAtomic(file, lengthBytes, headerBytes, ...tensors.map((t) => new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength)));
}

