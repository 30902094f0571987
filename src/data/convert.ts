// mmtrain convert: any data set mmtrain reads (manifest, Parquet, WebDataset) written as Parquet files or WebDataset
// shards of a chosen size, in the data set's order. Images are copied as they are encoded (never re-encoded).
//   Parquet: the layout `datasets` writes for an image data set, so the Hub tools and `datasets.load_dataset` read it
//     as such: image as a {bytes, path} struct, text as a string, label as an int64 class index, and the Features
//     (Image, Value, ClassLabel with the class names) under the "huggingface" key; row groups of --row-group-size
//     rows (datasets uses 100 for images); the image column stored uncompressed, as datasets 5 stores image columns
//     (encoded images do not compress, and the reader then hands each image on as its byte range in the file),
//     --compression for the text and label (--image-compression snappy compresses the images too, as older
//     conversions did). Written with hyparquet-writer.
//   WebDataset: per sample "<key>.<jpg|png|webp|...>", "<key>.txt" (the text) and "<key>.json" ({"text", "label"}
//     with the class name), keys numbered across shards. Written with tar-stream.
// Each output file is complete or absent: written to a temporary name, then renamed (files.ts).
import { existsSync, readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import tar from 'tar-stream';
import { parquetWriteBuffer } from 'hyparquet-writer';
import { MmtrainError } from '../errors.js';
import { makeFolder, writeFileAtomic } from '../files.js';
import { type Dataset, isStreamSet } from './dataset.js';
import type { Problem, Sample } from './manifest.js';
import { encodedImage } from './file-reads.js';
import { epochStream } from './stream.js';

export interface ConvertOptions {
  to: 'parquet' | 'webdataset';
  out: string;
  /** output file names: <prefix>-000000.parquet / .tar */
  prefix: string;
  /** samples per output file */
  shardSize: number;
  /** Parquet: rows per row group */
  rowGroupSize: number;
  /** Parquet: the text and label columns' page compression */
  compression: 'snappy' | 'none';
  /** Parquet: the image column's (default none, as datasets stores images: they do not compress) */
  imageCompression?: 'snappy' | 'none';
  onBadSample: 'error' | 'skip';
  print?: (line: string) => void;
}

export interface ConvertResult {
  files: string[];
  samples: number;
  skipped: Problem[];
  /** the path to give as data.train (a brace range over the files) */
  pattern: string;
}

/** The image format from its first bytes (the extension a WebDataset member gets). */
export function imageExtension(b: Uint8Array): string {
  if (b[0] === 0xff && b[1] === 0xd8) return 'jpg';
  if (b[0] === 0x89 && b[1] === 0x50 && b[2] === 0x4e && b[3] === 0x47) return 'png';
  if (b[0] === 0x52 && b[1] === 0x49 && b[2] === 0x46 && b[3] === 0x46 && b[8] === 0x57 && b[9] === 0x45) return 'webp';
  if (b[0] === 0x47 && b[1] === 0x49 && b[2] === 0x46) return 'gif';
  if (b[0] === 0x42 && b[1] === 0x4d) return 'bmp';
  if ((b[0] === 0x49 && b[1] === 0x49) || (b[0] === 0x4d && b[1] === 0x4d)) return 'tiff';
  return 'img';
}

/** The samples of a data set in its order (streamed sets unshuffled, one reader), image bytes read. */
async function* samplesOf(d: Dataset, policy: 'error' | 'skip', skipped: Problem[]): AsyncGenerator<{ sample: Sample; bytes: Uint8Array }> {
  const bad = (p: Problem) => {
    if (policy === 'error') throw new MmtrainError(`${p.where}: ${p.message}\nUse --on-bad-sample skip to convert without such samples.`);
    skipped.push(p);
  };
  if (!isStreamSet(d)) {
    for (const s of d.samples) {
      let bytes: Uint8Array;
      try {
        bytes = readFileSync(s.image);
      } catch (e) {
        bad({ where: s.where, message: `cannot read ${s.image} (${(e as Error).message})` });
        continue;
      }
      if (!bytes.length) bad({ where: s.where, message: `${s.image} is empty` });
      else yield { sample: s, bytes };
    }
    return;
  }
  for await (const it of epochStream(d, { seed: 0, epoch: 0, shuffle: false, rank: 0, worldSize: 1, readers: 1, buffer: 0 })) {
    if (it.problem) bad(it.problem);
    if (!it.sample) continue;
    const s = it.sample;
    if (s.bytes) yield { sample: s, bytes: s.bytes };
    else {
      try {
        yield { sample: s, bytes: encodedImage(s) };
      } catch (e) {
        bad({ where: s.where, message: `cannot read ${s.image} (${(e as Error).message})` });
      }
    }
  }
}

function featuresJson(labels: string[]): string {
  return JSON.stringify({ info: { features: { image: { _type: 'Image' }, text: { dtype: 'string', _type: 'Value' }, label: { names: labels, _type: 'ClassLabel' } } } });
}

/** The Parquet schema datasets writes for an image data set: an {bytes, path} image struct, a text, an int64 label. */
export const DATASETS_SCHEMA = [
  { name: 'schema', num_children: 3 },
  { name: 'image', num_children: 2, repetition_type: 'OPTIONAL' },
  { name: 'bytes', type: 'BYTE_ARRAY', repetition_type: 'OPTIONAL' },
  { name: 'path', type: 'BYTE_ARRAY', converted_type: 'UTF8', repetition_type: 'OPTIONAL' },
  { name: 'text', type: 'BYTE_ARRAY', converted_type: 'UTF8', repetition_type: 'OPTIONAL' },
  { name: 'label', type: 'INT64', repetition_type: 'OPTIONAL' },
] as const;

function parquetFile(rows: { sample: Sample; bytes: Uint8Array }[], labels: string[], o: ConvertOptions): Uint8Array {
  const buf = parquetWriteBuffer({
    columnData: [
      { name: 'image', data: rows.map((r) => ({ bytes: r.bytes, path: r.sample.bytes || r.sample.range ? null : basename(r.sample.image) })), codec: o.imageCompression === 'snappy' ? 'SNAPPY' : 'UNCOMPRESSED' },
      { name: 'text', data: rows.map((r) => r.sample.text) },
      { name: 'label', data: rows.map((r) => (r.sample.label < 0 ? null : BigInt(r.sample.label))) },
    ],
    schema: [...DATASETS_SCHEMA],
    codec: o.compression === 'snappy' ? 'SNAPPY' : 'UNCOMPRESSED',
    rowGroupSize: o.rowGroupSize,
    kvMetadata: [{ key: 'huggingface', value: featuresJson(labels) }],
    createdBy: 'mmtrain convert',
  });
  return new Uint8Array(buf);
}

async function tarFile(rows: { sample: Sample; bytes: Uint8Array }[], labels: string[], firstKey: number): Promise<Buffer> {
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  pack.on('data', (c: unknown) => chunks.push(c as Buffer));
  const done = new Promise<void>((resolve, reject) => {
    pack.on('end', resolve);
    pack.on('error', reject);
  });
  const entry = (name: string, body: Uint8Array | string) => new Promise<void>((resolve, reject) => pack.entry({ name, mtime: new Date(0) }, typeof body === 'string' ? body : Buffer.from(body.buffer, body.byteOffset, body.byteLength), (e) => (e ? reject(e) : resolve())));
  for (const [k, r] of rows.entries()) {
    const key = String(firstKey + k).padStart(9, '0');
    await entry(`${key}.${imageExtension(r.bytes)}`, r.bytes);
    await entry(`${key}.txt`, r.sample.text);
    await entry(`${key}.json`, JSON.stringify({ text: r.sample.text, ...(r.sample.label >= 0 ? { label: labels[r.sample.label] } : {}) }));
  }
  pack.finalize();
  await done;
  return Buffer.concat(chunks);
}

/** Writes `d` (labels: its class names) as Parquet files or WebDataset shards of o.shardSize samples each. */
export async function convertDataset(d: Dataset, o: ConvertOptions): Promise<ConvertResult> {
  const ext = o.to === 'parquet' ? 'parquet' : 'tar';
  const name = (i: number) => join(o.out, `${o.prefix}-${String(i).padStart(6, '0')}.${ext}`);
  if (existsSync(name(0))) throw new MmtrainError(`--out: ${name(0)} exists; convert into an empty folder or choose another --prefix (nothing was written)`);
  makeFolder(o.out);
  const skipped: Problem[] = [];
  const files: string[] = [];
  let rows: { sample: Sample; bytes: Uint8Array }[] = [];
  let samples = 0;
  const t0 = performance.now();
  const flush = async () => {
    if (!rows.length) return;
    const file = name(files.length);
    const data = o.to === 'parquet' ? parquetFile(rows, d.labels, o) : await tarFile(rows, d.labels, samples - rows.length);
    writeFileAtomic(file, data);
    files.push(file);
    rows = [];
    if (files.length % 10 === 0) o.print?.(`wrote ${files.length} files (${samples} samples) in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  };
  for await (const r of samplesOf(d, o.onBadSample, skipped)) {
    rows.push(r);
    samples++;
    if (rows.length >= o.shardSize) await flush();
  }
  await flush();
  if (!files.length) throw new MmtrainError(`${d.file}: no sample to convert`);
  const last = String(files.length - 1).padStart(6, '0');
  const pattern = files.length === 1 ? files[0]! : join(o.out, `${o.prefix}-{000000..${last}}.${ext}`);
  return { files, samples, skipped, pattern };
}
