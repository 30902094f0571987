// TensorBoard event files: TFRecord framing (length, masked CRC32C of the length, an Event protobuf, masked CRC32C
// of the data) with scalar summaries, readable by TensorBoard. Each record is appended as it is written, so a crash
// loses at most the record being written.
import { appendFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import protobuf from 'protobufjs';
import CRC32C from 'crc-32/crc32c.js';
import { makeFolder } from '../files.js';

const PROTO = `
syntax = "proto3";
message SummaryValue { string tag = 1; float simple_value = 2; }
message Summary { repeated SummaryValue value = 1; }
message Event { double wall_time = 1; int64 step = 2; string file_version = 3; Summary summary = 5; }
`;
const root = protobuf.parse(PROTO, { keepCase: true }).root;
const Event = root.lookupType('Event');

/** CRC-32C (Castagnoli), as TFRecord framing uses it. */
export function crc32c(buf: Uint8Array): number {
  return CRC32C.buf(buf) >>> 0;
}

/** TFRecord's masked CRC: rotated right by 15 bits, plus a constant (tensorflow/core/lib/hash/crc32c.h). */
export function maskedCrc(buf: Uint8Array): number {
  const crc = crc32c(buf);
  return ((((crc >>> 15) | (crc << 17)) >>> 0) + 0xa282ead8) >>> 0;
}

export function tfRecord(data: Uint8Array): Buffer {
  const out = Buffer.alloc(8 + 4 + data.length + 4);
  out.writeBigUInt64LE(BigInt(data.length), 0);
  out.writeUInt32LE(maskedCrc(out.subarray(0, 8)), 8);
  Buffer.from(data).copy(out, 12);
  out.writeUInt32LE(maskedCrc(data), 12 + data.length);
  return out;
}

/** One framed record for an Event: `{ wall_time, file_version }` or `{ wall_time, step, summary: { value: [{ tag, simple_value }] } }`. */
export function eventRecord(ev: Record<string, unknown>): Buffer {
  // proto3 leaves fields at their default out (PyTorch's writer does); protobufjs would write an explicit step 0
  const fields = Object.fromEntries(Object.entries(ev).filter(([k, v]) => !(k === 'step' && v === 0)));
  return tfRecord(Event.encode(Event.fromObject(fields)).finish());
}

export class TensorBoardWriter {
  readonly file: string;
  constructor(dir: string) {
    makeFolder(dir);
    this.file = join(dir, `events.out.tfevents.${Math.floor(Date.now() / 1000)}.${hostname()}.${process.pid}.mmtrain`);
    this.#write({ wall_time: Date.now() / 1000, file_version: 'brain.Event:2' });
  }

  #write(ev: Record<string, unknown>): void {
    appendFileSync(this.file, eventRecord(ev));
  }

  /** Scalars at one step, e.g. { 'train/loss': 0.5, 'lr/text_encoder': 1e-4 }; non-finite values are skipped. */
  scalars(step: number, values: Record<string, number>): void {
    const value = Object.entries(values).filter(([, v]) => typeof v === 'number' && Number.isFinite(v)).map(([tag, v]) => ({ tag, simple_value: v }));
    if (value.length) this.#write({ wall_time: Date.now() / 1000, step, summary: { value } });
  }
}

/** Reads back the scalar records of an event file (for tests and reports). */
export function readScalars(buf: Buffer): { step: number; tag: string; value: number }[] {
  const out: { step: number; tag: string; value: number }[] = [];
  let off = 0;
  while (off + 12 <= buf.length) {
    const len = Number(buf.readBigUInt64LE(off));
    if (buf.readUInt32LE(off + 8) !== maskedCrc(buf.subarray(off, off + 8))) throw new Error(`bad length CRC at byte ${off}`);
    const data = buf.subarray(off + 12, off + 12 + len);
    if (buf.readUInt32LE(off + 12 + len) !== maskedCrc(data)) throw new Error(`bad data CRC at byte ${off}`);
    const ev = Event.toObject(Event.decode(data), { longs: Number }) as { step?: number; summary?: { value?: { tag: string; simple_value: number }[] } };
    for (const v of ev.summary?.value ?? []) out.push({ step: ev.step ?? 0, tag: v.tag, value: v.simple_value });
    off += 12 + len + 4;
  }
  return out;
}
