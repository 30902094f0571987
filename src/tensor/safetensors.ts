// Safetensors read/write (the only weight format mmtrain reads: no pickle). Layout: u64 little-endian header
// length N, N bytes of JSON {name: {dtype, shape, data_offsets: [begin, end]}, __metadata__?: {str: str}}, then
// the data. The header is validated in full before any tensor is made, so a malformed file gives an error that
// names the file and the field, never a crash.
import { closeSync, openSync, readFileSync, readSync, statSync } from 'node:fs';
import { MmtrainError } from '../errors.js';
import { type DType, BYTES_PER_ELEMENT } from './dtype.js';
import { Tensor, fromBuffer, tensor } from './tensor.js';
import { writeFileAtomic } from '../files.js';
import { dropYoungBuffer } from '../heap.js';

const ST_TO_DTYPE: Record<string, DType> = {
  F64: 'float64', F32: 'float32', F16: 'float16', BF16: 'bfloat16', I64: 'int64', I32: 'int32', I16: 'int16',
  I8: 'int8', U8: 'uint8', BOOL: 'bool',
};
const DTYPE_TO_ST: Record<DType, string> = Object.fromEntries(Object.entries(ST_TO_DTYPE).map(([k, v]) => [v, k])) as Record<DType, string>;

/** Largest header accepted (the reference implementation's limit). */
const MAX_HEADER = 100_000_000;

export interface TensorInfo {
  dtype: DType;
  shape: number[];
  begin: number;
  end: number;
}

export interface SafetensorsHeader {
  tensors: Map<string, TensorInfo>;
  metadata: Record<string, string>;
  dataStart: number;
}

function fail(file: string, msg: string): never {
  throw new MmtrainError(`${file}: invalid safetensors file: ${msg}`);
}

/** Parses and validates the header of a safetensors buffer. */
export function parseSafetensorsHeader(buf: Uint8Array, file = '<buffer>', totalSize = buf.byteLength): SafetensorsHeader {
  if (totalSize < 8 || buf.byteLength < 8) fail(file, `expected at least 8 bytes (the header length) but the file has ${totalSize}`);
  // PyTorch's own formats are pickles (a bare pickle, or a zip holding one): name them, and never unpickle. A real
  // safetensors header starts with "{" at byte 8, whatever its length bytes look like.
  const notJson = buf.byteLength > 8 && buf[8] !== 0x7b;
  if (notJson && buf[0] === 0x80 && buf[1]! >= 2 && buf[1]! <= 5) fail(file, 'this is a Python pickle (torch.save / pytorch_model.bin), which mmtrain never loads; convert it to safetensors (safetensors.torch.save_file)');
  if (notJson && buf[0] === 0x50 && buf[1] === 0x4b && buf[2] === 0x03 && buf[3] === 0x04) fail(file, 'this is a zip archive (torch.save\'s format, holding a pickle), which mmtrain never loads; convert it to safetensors (safetensors.torch.save_file)');
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const n = view.getBigUint64(0, true);
  if (n > BigInt(MAX_HEADER)) fail(file, `header length ${n} is larger than the ${MAX_HEADER}-byte limit`);
  const headerLen = Number(n);
  if (8 + headerLen > totalSize || 8 + headerLen > buf.byteLength) fail(file, `header length ${headerLen} runs past the end of the file (${totalSize} bytes)`);
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(buf.subarray(8, 8 + headerLen));
  } catch {
    fail(file, 'header is not valid UTF-8');
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    fail(file, `header is not valid JSON (${(e as Error).message})`);
  }
  if (json === null || typeof json !== 'object' || Array.isArray(json)) fail(file, 'header must be a JSON object');
  const dataStart = 8 + headerLen;
  const dataLen = totalSize - dataStart;
  const tensors = new Map<string, TensorInfo>();
  let metadata: Record<string, string> = {};
  for (const [name, entry] of Object.entries(json as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (entry === null || typeof entry !== 'object' || Array.isArray(entry) || !Object.values(entry).every((v) => typeof v === 'string')) {
        fail(file, '__metadata__ must be an object of string values');
      }
      metadata = entry as Record<string, string>;
      continue;
    }
    const where = `tensor "${name}"`;
    if (entry === null || typeof entry !== 'object' || Array.isArray(entry)) fail(file, `${where}: expected an object with dtype, shape, data_offsets`);
    const e = entry as Record<string, unknown>;
    const dtype = typeof e.dtype === 'string' ? ST_TO_DTYPE[e.dtype] : undefined;
    if (!dtype) fail(file, `${where}: dtype ${JSON.stringify(e.dtype)} is not supported (expected one of ${Object.keys(ST_TO_DTYPE).join(', ')})`);
    const shape = e.shape;
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) fail(file, `${where}: shape must be an array of non-negative integers`);
    const offs = e.data_offsets;
    if (!Array.isArray(offs) || offs.length !== 2 || !offs.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      fail(file, `${where}: data_offsets must be [begin, end] with non-negative integers`);
    }
    const [begin, end] = offs as [number, number];
    let numel = 1;
    for (const d of shape as number[]) {
      numel *= d;
      if (!Number.isSafeInteger(numel)) fail(file, `${where}: shape [${(shape as number[]).join(', ')}] is too large`);
    }
    const want = numel * BYTES_PER_ELEMENT[dtype];
    if (end < begin || end - begin !== want) {
      fail(file, `${where}: data_offsets [${begin}, ${end}] hold ${end - begin} bytes but shape [${(shape as number[]).join(', ')}] of ${e.dtype} needs ${want}`);
    }
    if (end > dataLen) fail(file, `${where}: data_offsets end ${end} is past the end of the data (${dataLen} bytes)`);
    tensors.set(name, { dtype, shape: shape as number[], begin, end });
  }
  // Tensors must tile the data section exactly, in offset order, without gaps or overlaps.
  const sorted = [...tensors.entries()].sort((a, b) => a[1].begin - b[1].begin || a[1].end - b[1].end);
  let pos = 0;
  for (const [name, info] of sorted) {
    if (info.begin !== pos) fail(file, `tensor "${name}": data_offsets begin ${info.begin} ${info.begin < pos ? 'overlaps the previous tensor' : 'leaves a gap'} (expected ${pos})`);
    pos = info.end;
  }
  if (pos !== dataLen) fail(file, `the tensors cover ${pos} bytes of data but the file holds ${dataLen}`);
  return { tensors, metadata, dataStart };
}

/** Tensors from a safetensors buffer; tensors view the buffer without copying where its alignment allows. */
export function decodeSafetensors(buf: Uint8Array, file = '<buffer>'): { tensors: Map<string, Tensor>; metadata: Record<string, string> } {
  const header = parseSafetensorsHeader(buf, file);
  const out = new Map<string, Tensor>();
  try {
    for (const [name, info] of header.tensors) {
      const start = buf.byteOffset + header.dataStart + info.begin;
      const bytes = info.end - info.begin;
      const size = BYTES_PER_ELEMENT[info.dtype];
      let arr: ArrayBufferView;
      if (start % size === 0) {
        arr = viewAs(info.dtype, buf.buffer as ArrayBuffer, start, bytes / size);
        out.set(name, bytes === 0 ? tensor(arr, { shape: info.shape, dtype: info.dtype }) : fromBuffer(arr, info.shape, info.dtype));
      } else {
        const copy = new Uint8Array(bytes);
        copy.set(buf.subarray(header.dataStart + info.begin, header.dataStart + info.end));
        arr = viewAs(info.dtype, copy.buffer, 0, bytes / size);
        out.set(name, fromBuffer(arr, info.shape, info.dtype));
      }
    }
  } catch (e) {
    for (const t of out.values()) t.dispose();
    throw e;
  }
  return { tensors: out, metadata: header.metadata };
}

function viewAs(dtype: DType, buf: ArrayBuffer, byteOffset: number, length: number): ArrayBufferView {
  switch (dtype) {
    case 'float32': return new Float32Array(buf, byteOffset, length);
    case 'float64': return new Float64Array(buf, byteOffset, length);
    case 'int32': return new Int32Array(buf, byteOffset, length);
    case 'int64': return new BigInt64Array(buf, byteOffset, length);
    case 'int16': return new Int16Array(buf, byteOffset, length);
    case 'int8': return new Int8Array(buf, byteOffset, length);
    case 'uint8': case 'bool': return new Uint8Array(buf, byteOffset, length);
    case 'float16': case 'bfloat16': return new Uint16Array(buf, byteOffset, length);
  }
}

/** Reads a .safetensors file in one read. */
export function loadSafetensors(path: string): { tensors: Map<string, Tensor>; metadata: Record<string, string> } {
  let buf: Buffer;
  try {
    buf = readFileSync(path);
  } catch (e) {
    throw new MmtrainError(`${path}: cannot read safetensors file (${(e as Error).message})`);
  }
  return decodeSafetensors(buf, path);
}

/** Reads only the header of a .safetensors file (names, dtypes, shapes), validated against the file's size. */
export function readSafetensorsHeader(path: string): SafetensorsHeader {
  let fd: number;
  let size: number;
  try {
    size = statSync(path).size;
    fd = openSync(path, 'r');
  } catch (e) {
    throw new MmtrainError(`${path}: cannot read safetensors file (${(e as Error).message})`);
  }
  try {
    const head = Buffer.alloc(Math.min(size, 8));
    readSync(fd, head, 0, head.length, 0);
    if (size < 8) fail(path, `expected at least 8 bytes (the header length) but the file has ${size}`);
    const n = head.readBigUInt64LE(0);
    if (n > BigInt(MAX_HEADER) || 8 + Number(n) > size) fail(path, `header length ${n} runs past the end of the file (${size} bytes)`);
    const buf = Buffer.alloc(8 + Number(n));
    let off = 0;
    while (off < buf.length) {
      const got = readSync(fd, buf, off, buf.length - off, off);
      if (got === 0) break;
      off += got;
    }
    return parseSafetensorsHeader(buf, path, size);
  } finally {
    closeSync(fd);
  }
}

export type TensorMap = Map<string, Tensor> | Record<string, Tensor>;

/** Encodes tensors (sorted by name) with optional string metadata. */
export function encodeSafetensors(tensors: TensorMap, metadata?: Record<string, string>): Buffer[] {
  return [...safetensorsChunks(tensors, metadata)];
}

/**
 * The bytes of a safetensors file as chunks, each tensor's made only when it is reached: the header comes from
 * shapes and dtypes alone, so a writer holds one tensor's copy at a time instead of the whole model's.
 */
function safetensorsChunks(tensors: TensorMap, metadata?: Record<string, string>): Iterable<Buffer> {
  const entries = (tensors instanceof Map ? [...tensors.entries()] : Object.entries(tensors)).sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  const header: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length) header.__metadata__ = metadata;
  let offset = 0;
  const sizes: number[] = [];
  for (const [name, t] of entries) {
    if (!(t instanceof Tensor)) throw new MmtrainError(`Expected a Tensor for safetensors entry "${name}" but received ${typeof t}`);
    const bytes = t.numel * BYTES_PER_ELEMENT[t.dtype];
    header[name] = { dtype: DTYPE_TO_ST[t.dtype], shape: t.shape, data_offsets: [offset, offset + bytes] };
    sizes.push(bytes);
    offset += bytes;
  }
  let json = Buffer.from(JSON.stringify(header), 'utf8');
  // Pad the header with spaces so the data starts 8-byte aligned (zero-copy views on load).
  const pad = (8 - (json.length % 8)) % 8;
  if (pad) json = Buffer.concat([json, Buffer.alloc(pad, 0x20)]);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  // The header is checked and built above, before anything is written; the tensors' bytes follow one at a time.
  return (function* () {
    yield len;
    yield json;
    for (const [k, [name, t]] of entries.entries()) {
      const data = t.device === 'cpu' ? t.toBuffer() : t.cpu().toBuffer();
      if (data.length !== sizes[k]) throw new MmtrainError(`safetensors entry "${name}": ${data.length} bytes, expected ${sizes[k]}`);
      yield data;
      // A written copy is dead and young: counted for a scheduled scavenge, so the copies never add up to the model.
      dropYoungBuffer(data.length);
    }
  })();
}

/**
 * Writes tensors to a .safetensors file durably and atomically (writeFileAtomic, chunk by chunk): a crash or a
 * failing disk leaves the previous file intact.
 */
export function saveSafetensors(path: string, tensors: TensorMap, metadata?: Record<string, string>): void {
  const chunks = safetensorsChunks(tensors, metadata); // a bad entry is refused here, before the file is touched
  try {
    writeFileAtomic(path, chunks);
  } catch (e) {
    throw new MmtrainError(`${path}: cannot write safetensors file (${(e as Error).message})`, { cause: e });
  }
}
