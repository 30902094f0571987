// A small builder for ONNX graphs over onnx-proto (ONNX's own protobuf schema, generated for JavaScript): named
// values, operator nodes with typed attributes, initializers, and the model file, with the weights as external
// data when asked or when the protobuf would pass its 2 GB limit. Knows nothing of mmtrain's models (onnx.ts).
import { closeSync, openSync, writeSync } from 'node:fs';
import onnxProto from 'onnx-proto';
import { MmtrainError } from '../errors.js';

const { onnx } = onnxProto;

/** Element types used here, with ONNX's TensorProto.DataType codes. */
export const ONNX_TYPES = { float32: 1, uint8: 2, int8: 3, int32: 6, int64: 7, bool: 9, float16: 10 } as const;
export type OnnxType = keyof typeof ONNX_TYPES;

/** A dimension: fixed, or named (dynamic: "batch", "sequence"). */
export type Dim = number | string;

/** An attribute value, tagged with its ONNX type (a JS number alone cannot say int or float). */
export type Attr = { i: number } | { f: number } | { ints: number[] } | { floats: number[] } | { s: string };

/** protobuf's limit on one message: past it the weights must go to an external data file */
export const PROTOBUF_LIMIT = 2 ** 31 - 1;

interface Initializer {
  name: string;
  type: OnnxType;
  dims: number[];
  bytes: Uint8Array;
}

export class OnnxGraph {
  readonly #nodes: onnxProto.onnx.INodeProto[] = [];
  readonly #inits: Initializer[] = [];
  readonly #inputs: onnxProto.onnx.IValueInfoProto[] = [];
  readonly #outputs: onnxProto.onnx.IValueInfoProto[] = [];
  readonly #used = new Set<string>();
  readonly #consts = new Map<string, string>();

  /** A fresh value name from `hint` (a suffix added when taken). */
  name(hint: string): string {
    let n = hint;
    for (let k = 1; this.#used.has(n); k++) n = `${hint}_${k}`;
    this.#used.add(n);
    return n;
  }

  input(name: string, type: OnnxType, dims: Dim[]): string {
    this.#inputs.push(valueInfo(this.name(name), type, dims));
    return name;
  }

  /** Makes `value` a graph output called `name`. */
  output(name: string, value: string, type: OnnxType, dims: Dim[]): void {
    this.#nodes.push({ opType: 'Identity', input: [value], output: [this.name(name)], name: `${name}_out` });
    this.#outputs.push(valueInfo(name, type, dims));
  }

  /** A weight (an initializer) of raw little-endian bytes. */
  initializer(name: string, type: OnnxType, dims: number[], bytes: Uint8Array): string {
    const n = this.name(name);
    this.#inits.push({ name: n, type, dims, bytes });
    return n;
  }

  /** A constant 1-D int64 tensor (shapes, axes, indices), shared between the nodes that use the same values. */
  ints(values: number[]): string {
    return this.#const(`int64:${values.join(',')}`, () => this.initializer('const_i64', 'int64', [values.length], bytesOf(BigInt64Array.from(values.map(BigInt)))));
  }

  /** A constant int64 scalar (0-d: a Gather index that drops its axis). */
  intScalar(v: number): string {
    return this.#const(`int64s:${v}`, () => this.initializer('const_i64', 'int64', [], bytesOf(BigInt64Array.of(BigInt(v)))));
  }

  /** A constant float32 scalar. */
  scalar(v: number): string {
    return this.#const(`f32:${v}`, () => this.initializer('const_f32', 'float32', [], bytesOf(Float32Array.of(v))));
  }

  #const(key: string, make: () => string): string {
    let n = this.#consts.get(key);
    if (!n) this.#consts.set(key, (n = make()));
    return n;
  }

  /** One node; returns its output's name. An empty string in `inputs` is an omitted optional input. */
  op(type: string, inputs: string[], attrs: Record<string, Attr> = {}, hint?: string): string {
    return this.opN(type, inputs, 1, attrs, hint)[0]!;
  }

  /** One node with `n` outputs. */
  opN(type: string, inputs: string[], n: number, attrs: Record<string, Attr> = {}, hint?: string): string[] {
    const outs = Array.from({ length: n }, (_, k) => this.name(`${hint ?? type}${n > 1 ? `_${k}` : ''}`));
    this.#nodes.push({ opType: type, input: inputs, output: outs, name: this.name(`${hint ?? type}_node`), attribute: Object.entries(attrs).map(([k, v]) => attribute(k, v)) });
    return outs;
  }

  /** Total bytes of the weights. */
  get weightBytes(): number {
    return this.#inits.reduce((s, t) => s + t.bytes.length, 0);
  }

  /**
   * Writes the model to `file`. With `externalData` (a file name beside it), every weight of 1 KiB or more goes
   * there (4 KiB-aligned, as ONNX Runtime maps it), the rest stays inline.
   */
  write(file: string, meta: { opset: number; producer: string; version: string; doc?: string; metadata?: Record<string, string> }, externalData: string | null): void {
    const dir = file.slice(0, file.lastIndexOf('/') + 1);
    let fd: number | null = null;
    let offset = 0;
    try {
      if (externalData) fd = openSync(dir + externalData, 'w');
      const initializer = this.#inits.map((t) => {
        const base = { name: t.name, dataType: ONNX_TYPES[t.type], dims: t.dims };
        if (fd === null || t.bytes.length < 1024) return onnx.TensorProto.create({ ...base, rawData: t.bytes });
        const pad = (4096 - (offset % 4096)) % 4096;
        if (pad) writeSync(fd, new Uint8Array(pad));
        offset += pad;
        writeSync(fd, t.bytes);
        const entry = { location: externalData!, offset: String(offset), length: String(t.bytes.length) };
        offset += t.bytes.length;
        return onnx.TensorProto.create({ ...base, dataLocation: onnx.TensorProto.DataLocation.EXTERNAL, externalData: Object.entries(entry).map(([key, value]) => ({ key, value })) });
      });
      const model = onnx.ModelProto.create({
        irVersion: 8, producerName: meta.producer, producerVersion: meta.version, docString: meta.doc ?? '',
        opsetImport: [{ domain: '', version: meta.opset }],
        metadataProps: Object.entries(meta.metadata ?? {}).map(([key, value]) => ({ key, value })),
        graph: { name: 'mmtrain', node: this.#nodes, initializer, input: this.#inputs, output: this.#outputs },
      });
      const bytes = onnx.ModelProto.encode(model).finish();
      if (bytes.length > PROTOBUF_LIMIT) throw new MmtrainError(`ONNX: the model is ${bytes.length} bytes, over protobuf's 2 GB limit; write its weights as external data`);
      const out = openSync(file, 'w');
      try {
        writeSync(out, bytes);
      } finally {
        closeSync(out);
      }
    } finally {
      if (fd !== null) closeSync(fd);
    }
  }
}

function valueInfo(name: string, type: OnnxType, dims: Dim[]): onnxProto.onnx.IValueInfoProto {
  return {
    name,
    type: { tensorType: { elemType: ONNX_TYPES[type], shape: { dim: dims.map((d) => (typeof d === 'string' ? { dimParam: d } : { dimValue: d })) } } },
  };
}

function attribute(name: string, v: Attr): onnxProto.onnx.IAttributeProto {
  const T = onnx.AttributeProto.AttributeType;
  if ('i' in v) return { name, type: T.INT, i: v.i };
  if ('f' in v) return { name, type: T.FLOAT, f: v.f };
  if ('ints' in v) return { name, type: T.INTS, ints: v.ints };
  if ('floats' in v) return { name, type: T.FLOATS, floats: v.floats };
  return { name, type: T.STRING, s: new TextEncoder().encode(v.s) };
}

/** The bytes of a typed array (a view, no copy). */
export function bytesOf(a: ArrayBufferView): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}
