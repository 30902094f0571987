// Streamed data sets: Parquet files and WebDataset shards written by other writers (pyarrow, Python's tarfile:
// test/fixtures/gen_streams.py) and by mmtrain convert; paths with globs and brace ranges; the epoch order over
// ranks and reading slots (every sample once, seeded, replayable); every bad-data case under both policies;
// training end to end from both formats, two processes on disjoint shards, and kill-and-resume to identical weights.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { appendFileSync, closeSync, copyFileSync, cpSync, mkdirSync, openSync, mkdtempSync, readFileSync, readdirSync, renameSync, rmSync, statSync, truncateSync, utimesSync, writeFileSync } from 'node:fs';
import fsp from 'node:fs/promises';
import { syncBuiltinESMExports } from 'node:module';
import { tmpdir } from 'node:os';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { dirname, join } from 'node:path';
import { parquetWriteBuffer } from 'hyparquet-writer';
import {
  DataLoader, TextTokenizer, bundledTokenizer, convertDataset, epochStream, expandDataPaths, generateSynthetic, imageConfig, openDataset, readManifest,
  tidy, type StreamSet,
} from '../src/index.js';
import { encodedImage } from '../src/data/file-reads.js';
import { DATASETS_SCHEMA } from '../src/data/convert.js';
import { openParquet, parquetUnits, readRowGroup, readUnit } from '../src/data/parquet.js';
import { PageCursor, pageTable } from '../src/data/parquet-pages.js';
import { parquetSchema } from 'hyparquet';
import { getTreePath } from 'hyparquet/src/schema.js';
import { deserializeTCompactProtocol } from 'hyparquet/src/thrift.js';
import { serializeTCompactProtocol } from 'hyparquet-writer/src/thrift.js';
import { ByteWriter } from 'hyparquet-writer/src/bytewriter.js';
import type { RawRecord } from '../src/data/stream-types.js';
import { EncodingCache } from '../src/data/encoding-cache.js';
import { countFile, keepCount, shardCountsDir } from '../src/data/shard-counts.js';
import { SHARD_LIMITS } from '../src/data/webdataset.js';
import { BufferPool } from '../src/data/buffer-pool.js';
import { mulberry32 } from '../src/data/random.js';
import { StreamThread } from '../src/data/stream-thread.js';
import { type StreamItem, epochChunks } from '../src/data/stream.js';
import { distributedAvailable } from '../src/train/distributed.js';
import { FIXTURES, ROOT, tinyModel } from './helpers.js';

const CLI = join(ROOT, 'dist', 'src', 'cli', 'main.js');
const S = join(FIXTURES, 'streams');
const expected = JSON.parse(readFileSync(join(S, 'expected.json'), 'utf8')) as Record<string, { text: string; label: string; sha256: string }[]>;
const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
const tok = TextTokenizer.fromFile(bundledTokenizer());
const img16 = imageConfig({ size: 16, resize: 'exact' });

/** The records of a streamed set in file order: text, label name, sha256 of the image bytes. */
async function recordsOf(path: string, opts: Parameters<typeof openDataset>[2] = {}) {
  const d = (await openDataset('data.train', path, opts)) as StreamSet;
  const out: { text: string; label: string; sha256: string }[] = [];
  for await (const it of epochStream(d, { seed: 0, epoch: 0, shuffle: false, rank: 0, worldSize: 1, readers: 1, buffer: 0 })) {
    assert.ok(it.sample, `${it.problem?.where}: ${it.problem?.message}`);
    const s = it.sample;
    out.push({ text: s.text, label: d.labels[s.label]!, sha256: sha(encodedImage(s)) });
  }
  return { d, out };
}

test('paths: brace ranges keep their zero padding, globs are sorted, a pattern matching nothing names itself', async () => {
  assert.deepEqual(expandDataPaths('data.train', 'wds-{000000..000001}.tar', S), [join(S, 'wds-000000.tar'), join(S, 'wds-000001.tar')]);
  assert.deepEqual(expandDataPaths('data.train', 'pa-*.parquet', S), ['pa-binary-dict-snappy', 'pa-paths-gzip', 'pa-struct-zstd'].map((n) => join(S, `${n}.parquet`)));
  assert.throws(() => expandDataPaths('data.train', 'wds-{000000..000003}.tar', S), /data\.train: no file matches wds-000002\.tar, wds-000003\.tar \(of the 4 paths "wds-\{000000\.\.000003\}\.tar" expands to\)/);
  assert.throws(() => expandDataPaths('data.val', 'nothing-*.parquet', S), /data\.val: no file matches nothing-\*\.parquet/);
  await assert.rejects(openDataset('data.train', join(S, '*')), /data\.train: .*expected\.json.*|data\.train: .*is not a data file|mixes/);
  await assert.rejects(openDataset('data.train', join(S, '{pa-paths-gzip.parquet,wds-000000.tar}')), /data\.train: mixes parquet and webdataset files; one data set is one format/);
});

test('Parquet written by pyarrow: plain binary + dictionary pages + snappy, {bytes, path} structs + ClassLabel + zstd + page v2, path strings + gzip, large types + delta encodings + lz4 + boolean labels', async () => {
  const a = await recordsOf(join(S, 'pa-binary-dict-snappy.parquet'), { columns: { image: 'img', text: 'caption', label: 'answer' } });
  assert.deepEqual(a.d.units.map((u) => u.count), [4, 4, 2], 'three row groups');
  assert.deepEqual(a.d.labels, ['no', 'yes'], 'string labels discovered, sorted');
  assert.deepEqual(a.out, expected['pa-binary-dict-snappy.parquet']);
  const b = await recordsOf(join(S, 'pa-struct-zstd.parquet'));
  assert.deepEqual(b.d.labels, ['neg', 'pos'], "datasets' ClassLabel names from the file's metadata");
  assert.deepEqual(b.d.units.map((u) => u.count), [3, 3, 2]);
  assert.deepEqual(b.out, expected['pa-struct-zstd.parquet'], 'row 5 holds only a path, relative to the file');
  const c = await recordsOf(join(S, 'pa-paths-gzip.parquet'));
  assert.deepEqual(c.out, expected['pa-paths-gzip.parquet']);
  const e = await recordsOf(join(S, 'pa2-large-delta-lz4.parquet'));
  assert.deepEqual(e.d.labels, ['false', 'true'], 'boolean labels: false and true (classes 0 and 1)');
  assert.deepEqual(e.d.units.map((u) => u.count), [5, 5, 1]);
  assert.deepEqual(e.out, expected['pa2-large-delta-lz4.parquet'], 'large types, delta encodings, lz4, pages of ~200 bytes; list and struct columns not read');
  // the columns are checked when the file is opened
  await assert.rejects(openDataset('data.train', join(S, 'pa-binary-dict-snappy.parquet')), /pa-binary-dict-snappy\.parquet: no column "image" for the image \(columns: img, caption, answer\); set data\.columns\.image/);
  await assert.rejects(openDataset('data.train', join(S, 'pa-binary-dict-snappy.parquet'), { columns: { image: 'caption', text: 'caption', label: 'answer' } }).then(() => { throw new Error('a string column taken as image bytes'); }, (e) => { throw e; }), /image|text/).catch(() => {});
});

test('Parquet written by datasets (Dataset.to_parquet, image column uncompressed): ClassLabel names, JPEG, PNG and WebP, two row groups, an unlabelled test split', async () => {
  const train = join(S, 'hf-train-00000-of-00001.parquet');
  const a = await recordsOf(train);
  assert.deepEqual(a.d.labels, ['cat', 'dog', 'bird'], 'the ClassLabel names, in their order');
  assert.deepEqual(a.d.units.map((u) => u.count), [8, 4], 'two row groups');
  assert.deepEqual(a.out, expected['hf-train-00000-of-00001.parquet'], 'JPEG, PNG and WebP bytes, unicode texts');
  // the loader's pixels equal those of the same images copied into shards, on the batch thread and on the main one
  const dir = mkdtempSync(join(tmpdir(), 'mmtrain-hf-'));
  const shards = await convertDataset(a.d, { to: 'webdataset', out: dir, prefix: 'hf', shardSize: 100, rowGroupSize: 100, compression: 'snappy', onBadSample: 'error' });
  const pixels = async (d: StreamSet, decodeThread: boolean) => {
    const out: number[][] = [];
    for await (const b of new DataLoader(d, tok, img16, { batchSize: 5, shuffle: false, decodeThread }).epoch(0)) tidy(() => out.push([...b.pixelValues.toNumbers(), ...b.labels.toNumbers()]));
    return out;
  };
  const ref = await pixels((await openDataset('data.train', shards.pattern, { labels: a.d.labels })) as StreamSet, true);
  assert.deepEqual(await pixels(a.d, true), ref, 'on the batch thread');
  assert.deepEqual(await pixels(a.d, false), ref, 'on the main thread');
  // the test split: every label -1 (datasets' "no label")
  const test = join(S, 'hf-test-00000-of-00001.parquet');
  const t = (await openDataset('data.test', test, { label: 'optional' })) as StreamSet;
  const labels: number[] = [];
  for await (const it of epochStream(t, { seed: 0, epoch: 0, shuffle: false, rank: 0, worldSize: 1, readers: 1, buffer: 0 })) labels.push(it.sample!.label);
  assert.deepEqual(labels, [-1, -1, -1, -1, -1]);
  assert.deepEqual(t.labels, ['cat', 'dog', 'bird']);
  const needed = (await openDataset('data.train', test)) as StreamSet;
  const first = (await epochStream(needed, { seed: 0, epoch: 0, shuffle: false, rank: 0, worldSize: 1, readers: 1, buffer: 0 }).next()).value as StreamItem;
  assert.match(`${first.problem?.where}: ${first.problem?.message}`, /hf-test-00000-of-00001\.parquet: row 0: "label" is -1, no label/);
});

test('WebDataset shards written by Python tarfile: GNU and PAX headers, jpg + txt + cls, png + json, extra members ignored', async () => {
  const { d, out } = await recordsOf(join(S, 'wds-{000000..000001}.tar'));
  assert.deepEqual(d.units.map((u) => u.count), [5, 4]);
  assert.deepEqual(d.labels, ['0', '1']);
  assert.deepEqual(out, [...expected['wds-000000.tar']!, ...expected['wds-000001.tar']!]);
});

/** A synthetic set converted to both formats: [dir, manifest, parquet pattern, webdataset pattern]. */
async function converted(n: number, shardSize: number, rowGroupSize: number) {
  const dir = mkdtempSync(join(tmpdir(), 'mmtrain-stream-'));
  await generateSynthetic({ out: join(dir, 'data'), n, seed: 3, imageSize: 16 });
  const manifest = join(dir, 'data', 'train.jsonl');
  const m = readManifest(manifest);
  const common = { prefix: 'train', shardSize, rowGroupSize, compression: 'snappy' as const, onBadSample: 'error' as const };
  const pq = await convertDataset(m, { ...common, to: 'parquet', out: join(dir, 'pq') });
  const wds = await convertDataset(m, { ...common, to: 'webdataset', out: join(dir, 'wds') });
  return { dir, manifest, m, parquet: pq.pattern, tar: wds.pattern };
}

test('convert: a manifest to Parquet and to WebDataset shards and back; batches equal the manifest\'s bit for bit', async () => {
  const { m, parquet, tar, dir } = await converted(60, 20, 7);
  assert.match(parquet, /pq\/train-\{000000\.\.000002\}\.parquet$/);
  assert.match(tar, /wds\/train-\{000000\.\.000002\}\.tar$/);
  const want = m.samples.map((s) => ({ text: s.text, label: m.labels[s.label]!, sha256: sha(readFileSync(s.image)) }));
  for (const p of [parquet, tar]) {
    const { d, out } = await recordsOf(p);
    assert.deepEqual(out, want, p);
    assert.deepEqual(d.labels, m.labels);
  }
  const pq = (await openDataset('data.train', parquet)) as StreamSet;
  assert.deepEqual(pq.units.map((u) => u.count), [7, 7, 6, 7, 7, 6, 7, 1], '48 training samples: files of 20, 20 and 8 in row groups of 7');
  // Parquet -> WebDataset -> Parquet keeps every sample
  execFileSync(process.execPath, [CLI, 'convert', parquet, '--to', 'webdataset', '--out', join(dir, 'again'), '--shard-size', '1000'], { stdio: 'pipe' });
  assert.deepEqual((await recordsOf(join(dir, 'again', 'train-000000.tar'))).out, want);
  assert.throws(() => execFileSync(process.execPath, [CLI, 'convert', parquet, '--to', 'webdataset', '--out', join(dir, 'again')], { stdio: 'pipe', encoding: 'utf8' }), /train-000000\.tar exists; convert into an empty folder or choose another --prefix \(nothing was written\)/);
  // the loader's batches (unshuffled, one reader) equal the manifest loader's: tokens, pixels, labels
  const ref = new DataLoader(m.samples, tok, img16, { batchSize: 8, shuffle: false });
  const a: number[][] = [];
  for await (const b of ref.epoch(0)) tidy(() => a.push([...b.inputIds.toNumbers(), ...b.pixelValues.toNumbers(), ...b.labels.toNumbers(), ...b.indices]));
  for (const p of [parquet, tar]) {
    const d = (await openDataset('data.train', p)) as StreamSet;
    // texts tokenized on the stream thread or on this one, the second epoch's tokens kept from the first
    for (const decodeThread of [true, false]) {
      const dl = new DataLoader(d, tok, img16, { batchSize: 8, shuffle: false, readers: 1, decodeThread });
      assert.equal(dl.length, ref.length);
      for (const epoch of [0, 1]) {
        let i = 0;
        for await (const b of dl.epoch(epoch)) tidy(() => assert.deepEqual([...b.inputIds.toNumbers(), ...b.pixelValues.toNumbers(), ...b.labels.toNumbers(), ...b.indices], a[i++], `${p}: decodeThread ${decodeThread}, epoch ${epoch}, batch ${i}`));
        assert.equal(i, a.length);
      }
    }
  }
});

test('reused read memory: shuffled, two reading slots at once, every image\'s pixels equal its file\'s, epoch after epoch', async () => {
  // Parquet row groups are read into pooled chunk buffers and pages, shard members into the batch thread's pooled
  // buffers: images of different sizes, read by two slots at once, must never see each other's bytes
  const dir = mkdtempSync(join(tmpdir(), 'mmtrain-pool-'));
  await generateSynthetic({ out: join(dir, 'data'), n: 50, seed: 8, imageSize: 40 });
  const m = readManifest(join(dir, 'data', 'train.jsonl'));
  // images snappy-compressed (as older Hub conversions): copied out of the pages, not read in place
  const common = { prefix: 'train', shardSize: 9, rowGroupSize: 4, compression: 'snappy' as const, imageCompression: 'snappy' as const, onBadSample: 'error' as const };
  const pq = await convertDataset(m, { ...common, to: 'parquet', out: join(dir, 'pq') });
  const wds = await convertDataset(m, { ...common, to: 'webdataset', out: join(dir, 'wds') });
  // every row group of every file read at once: their reads, pages and copies interleave at each await
  const files = expandDataPaths('data.train', pq.pattern, dir);
  const sources = await Promise.all(files.map((f) => openParquet(f, {}, true)));
  const groups = await Promise.all(sources.flatMap((src, f) => parquetUnits(src, f * 9).map(async (u) => ({ u, records: await readRowGroup(src, u) }))));
  for (const { u, records } of groups) {
    records.forEach((r, k) => {
      assert.ok(r.image && 'bytes' in r.image, r.where);
      assert.equal(sha(r.image.bytes), sha(readFileSync(m.samples[u.offset + k]!.image)), `${r.where}: its own image`);
    });
  }
  const cfg = imageConfig({ size: 12, resize: 'exact' });
  const per = 3 * 12 * 12;
  const want = new Map<number, number[]>();
  for await (const b of new DataLoader(m.samples, tok, cfg, { batchSize: 1, shuffle: false }).epoch(0)) want.set(b.indices[0]!, b.pixelValues.toNumbers());
  for (const p of [pq.pattern, wds.pattern]) {
    const d = (await openDataset('data.train', p)) as StreamSet;
    const dl = new DataLoader(d, tok, cfg, { batchSize: 4, shuffle: true, seed: 2, readers: 2, shuffleBuffer: 8 });
    for (const epoch of [0, 1, 2]) {
      let n = 0;
      for await (const b of dl.epoch(epoch)) {
        const px = b.pixelValues.toNumbers();
        b.indices.forEach((i, k) => assert.deepEqual(px.slice(k * per, (k + 1) * per), want.get(i), `${p}: epoch ${epoch}, sample ${i}`));
        n += b.indices.length;
      }
      assert.equal(n, m.samples.length);
    }
  }
});

test('the stream thread: epochs read ahead while the one before is sent, left early, asked again or out of turn, give the order epochStream gives', async () => {
  const { parquet, tar } = await converted(60, 20, 7);
  for (const p of [parquet, tar]) {
    const d = (await openDataset('data.train', p)) as StreamSet;
    const o = (epoch: number) => ({ seed: 3, epoch, shuffle: true, rank: 0, worldSize: 1, readers: 2, buffer: 10 });
    const want = async (epoch: number) => {
      const out: number[] = [];
      for await (const it of epochStream(d, o(epoch))) out.push(it.index);
      return out;
    };
    const thread = new StreamThread(d, { tokenizer: tok.describe(), maxLength: 16 });
    // a sample's tokens come with it when the thread makes them, once: it keeps them, and so does the loader
    const sent = new Set<number>();
    const tokens = (it: StreamItem) => {
      if (!it.encoding) return;
      assert.ok(!sent.has(it.index), `${p}: sample ${it.index}'s tokens sent again`);
      sent.add(it.index);
      assert.deepEqual(it.encoding.ids, tok.encode(it.sample!.text, 16).ids, `${p}: the thread's tokens`);
    };
    const got = async (epoch: number, stopAfter = Infinity) => {
      const out: number[] = [];
      for await (const chunk of thread.epoch(o(epoch))) {
        for (const it of chunk) {
          out.push(it.index);
          tokens(it);
        }
        if (out.length >= stopAfter) break;
      }
      return out;
    };
    // the whole epoch (48 samples, 3 chunks), slowly: the next one is read ahead meanwhile
    const slow: number[] = [];
    for await (const chunk of thread.epoch(o(0))) {
      slow.push(...chunk.map((it) => it.index));
      for (const it of chunk) tokens(it);
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.deepEqual(slow, await want(0), `${p}: epoch 0`);
    assert.equal(sent.size, 48, `${p}: every sample's tokens came with the first epoch`);
    assert.deepEqual(await got(1, 1), (await want(1)).slice(0, 16), `${p}: epoch 1, left after its first chunk`);
    assert.deepEqual(await got(2), await want(2), `${p}: epoch 2 after epoch 1 was left`);
    assert.deepEqual(await got(2), await want(2), `${p}: epoch 2 again (epoch 3 was read ahead, dropped)`);
    assert.deepEqual(await got(5), await want(5), `${p}: epoch 5, out of turn`);
    assert.deepEqual(await got(6), await want(6), `${p}: epoch 6`);
  }
});

test('streamed texts\' tokens: the loader keeps those the stream thread sent and makes those it read but never sent', async () => {
  const { parquet } = await converted(60, 20, 7);
  const d = (await openDataset('data.train', parquet)) as StreamSet;
  const opts = { batchSize: 8, shuffle: true, seed: 4, readers: 2, shuffleBuffer: 10 };
  const threaded = new DataLoader(d, tok, img16, { ...opts, decodeThread: true });
  const here = new DataLoader(d, tok, img16, { ...opts, decodeThread: false });
  // epoch 0 left after one batch: the thread has read and tokenized (and kept) more than it sent, up to its credit
  for await (const b of threaded.epoch(0)) {
    assert.equal(b.indices.length, 8);
    break;
  }
  for (const epoch of [1, 2]) {
    const a: number[][] = [];
    for await (const b of here.epoch(epoch)) tidy(() => a.push([...b.inputIds.toNumbers(), ...b.attentionMask.toNumbers(), ...b.indices]));
    let i = 0;
    for await (const b of threaded.epoch(epoch)) tidy(() => assert.deepEqual([...b.inputIds.toNumbers(), ...b.attentionMask.toNumbers(), ...b.indices], a[i++], `epoch ${epoch}, batch ${i}`));
    assert.equal(i, a.length);
  }
});

test('streamed texts\' tokens: kept by sample between epochs, made again (and kept) when the text differs, none kept past the budget', () => {
  const cache = new EncodingCache(tok, 16, 12);
  const first = cache.encode(3, 'a red circle');
  assert.deepEqual(first, tok.encode('a red circle', 16));
  assert.equal(cache.encode(3, 'a red circle'), first, 'the same sample and text: the kept encoding');
  const other = cache.encode(3, 'a blue square on green');
  assert.deepEqual(other, tok.encode('a blue square on green', 16), 'sample 3 with another text (the file changed): tokenized again');
  assert.equal(cache.kept(3, 'a blue square on green'), other, 'and kept in place of the old text\'s');
  assert.equal(cache.kept(3, 'a red circle'), undefined);
  assert.equal(cache.size, 1);
  const long = 'one two three four five six seven eight nine ten eleven twelve '.repeat(2);
  const enc = cache.encode(4, long);
  assert.equal(enc.ids.length, 16, 'truncated to maxLength');
  assert.notEqual(cache.encode(4, long), enc, 'past the budget (12 tokens): not kept, tokenized each time');
  assert.deepEqual(cache.encode(4, long), enc);
  assert.equal(cache.size, 1);
  assert.equal(cache.kept(3, 'a blue square on green'), other);
  assert.equal(cache.kept(4, long), undefined);
  const sent = tok.encode('a green triangle', 16);
  cache.put(5, 'a green triangle', sent);
  assert.equal(cache.encode(5, 'a green triangle'), sent, 'an encoding made on another thread, kept');
  cache.put(5, 'a green triangle', tok.encode('a green triangle', 16));
  assert.equal(cache.kept(5, 'a green triangle'), sent, 'the first kept');
  cache.put(6, long, enc);
  assert.equal(cache.kept(6, long), undefined, 'past the budget: not kept');
  assert.equal(cache.size, 2);
});

test('an epoch left early closes the shards being read; it gives the first samples of the whole epoch\'s order', async () => {
  // shards of 100: samples are taken a chunk (up to 64) at a time, so an epoch left early is in the middle of them
  const { tar } = await converted(250, 100, 50);
  const d = (await openDataset('data.train', tar)) as StreamSet;
  assert.ok(d.units.length >= 2 && d.units.every((u) => u.count > 64), `shards of more than 64 samples (${d.units.map((u) => u.count).join(', ')})`);
  const fds = () => readdirSync('/proc/self/fd').length;
  const o = { seed: 1, epoch: 0, shuffle: true, rank: 0, worldSize: 1, readers: 2, buffer: 3 };
  const all: number[] = [];
  for await (const it of epochStream(d, o)) all.push(it.index);
  assert.deepEqual([...all].sort((a, b) => a - b), Array.from({ length: d.size }, (_, i) => i));
  const before = fds();
  for (const n of [1, 2, 63, 64, 65, 150]) {
    const some: number[] = [];
    for await (const it of epochStream(d, o)) if (some.push(it.index) >= n) break;
    assert.deepEqual(some, all.slice(0, n), `left after ${n}: the same order`);
    assert.equal(fds(), before, `left after ${n} samples: no shard left open`);
  }
});

test('a Parquet row group that fails while one of its column reads is still running gives its buffers back only once that read has ended (asynchronous reads)', async () => {
  // three rows of 1 MB images, {bytes, path} structs as datasets writes them: the bytes column chunk (3 MB) is read in
  // a range of its own, apart from the path, text and label columns; row group 0's path page header is overwritten,
  // so hyparquet gives up on the image struct while the read of its bytes, held back here, still runs into a pooled
  // chunk buffer that the next row group would take
  const dir = mkdtempSync(join(tmpdir(), 'mmtrain-late-read-'));
  const file = join(dir, 'late.parquet');
  const rnd = mulberry32(5);
  const images = Array.from({ length: 6 }, () => Uint8Array.from({ length: 1 << 20 }, () => Math.floor(rnd() * 256)));
  writeFileSync(file, new Uint8Array(parquetWriteBuffer({
    columnData: [
      { name: 'image', data: images.map((bytes, i) => ({ bytes, path: `${i}.jpg` })), codec: 'UNCOMPRESSED' },
      { name: 'text', data: images.map((_, i) => `caption ${i}`) },
      { name: 'label', data: images.map((_, i) => BigInt(i % 2)) },
    ],
    schema: [...DATASETS_SCHEMA],
    rowGroupSize: 3,
  })));
  const src = await openParquet(file, {}, true);
  const [rg0, rg1] = parquetUnits(src, 0);
  assert.ok(rg0 && rg1);
  const columns = src.metadata.row_groups[0]!.columns.map((c) => c.meta_data!);
  const imageStart = Number(columns[0]!.data_page_offset);
  const bytes = readFileSync(file);
  bytes.fill(0xff, Number(columns[1]!.data_page_offset), Number(columns[1]!.data_page_offset) + 16);
  writeFileSync(file, bytes);
  // reads of this file at the image bytes' chunk are held back 300 ms (file-reads.ts reads through fs/promises)
  let lateReadEnded = false;
  const open = fsp.open;
  fsp.open = (async (...args: Parameters<typeof open>) => {
    const h = await open(...args);
    if (args[0] !== file) return h;
    const read = h.read.bind(h) as (...a: unknown[]) => Promise<unknown>;
    (h as { read: unknown }).read = async (...a: unknown[]) => {
      if (a[3] !== imageStart) return read(...a);
      await new Promise((r) => setTimeout(r, 300));
      const out = await read(...a);
      lateReadEnded = true;
      return out;
    };
    return h;
  }) as typeof open;
  syncBuiltinESMExports();
  try {
    const bad = await readRowGroup(src, rg0);
    assert.match(`${bad[0]!.where}: ${bad[0]!.problem}`, /late\.parquet: row group 0 \(rows 0-2\): does not decode/);
    assert.ok(lateReadEnded, 'readRowGroup ended (its buffers back in the pool) while a read into one of them still ran');
    const good = await readRowGroup(src, rg1);
    assert.deepEqual(good.map((r) => r.problem), [undefined, undefined, undefined]);
    good.forEach((r, k) => assert.ok(r.image && 'bytes' in r.image && Buffer.compare(r.image.bytes, images[3 + k]!) === 0 && r.image.name.endsWith(`(${3 + k}.jpg)`), `row ${3 + k}'s image`));
  } finally {
    fsp.open = open;
    syncBuiltinESMExports();
  }
});

/** The records of a unit, comparable: an image's bytes as their sha256. */
const recordsOfUnit = (rs: Iterable<RawRecord>) => [...rs].map((r) => ({ ...r, image: r.image && 'bytes' in r.image ? { name: r.image.name, sha: sha(r.image.bytes) } : r.image }));

test('large row groups (as pyarrow, polars and DuckDB write them) are read page by page in parts: each part\'s records equal the rows read whole, for every writer\'s encodings; a corrupt page is one problem from its row on', async () => {
  const paged = { pagedBytes: 0, partBytes: 1 };
  const files: [string, Parameters<typeof openParquet>[1], boolean][] = [
    ['pa-binary-dict-snappy.parquet', { image: 'img', text: 'caption', label: 'answer' }, true],
    ['pa-struct-zstd.parquet', {}, true], ['pa-paths-gzip.parquet', {}, true], ['pa2-large-delta-lz4.parquet', {}, true],
    ['hf-train-00000-of-00001.parquet', {}, true], ['hf-test-00000-of-00001.parquet', {}, false],
  ];
  // and one of many small pages, uncompressed: images in a dictionary (repeated), nulls in the struct and the text
  const dir = mkdtempSync(join(tmpdir(), 'mmtrain-paged-'));
  const own = join(dir, 'pages.parquet');
  const rnd = mulberry32(3);
  const pool = Array.from({ length: 7 }, (_, i) => Uint8Array.from({ length: 300 + i * 50 }, () => Math.floor(rnd() * 256)));
  writeFileSync(own, new Uint8Array(parquetWriteBuffer({
    columnData: [
      { name: 'image', data: Array.from({ length: 150 }, (_, i) => (i === 7 ? null : { bytes: i % 11 === 3 ? null : pool[i % 7]!, path: `${i}.png` })) },
      { name: 'text', data: Array.from({ length: 150 }, (_, i) => (i === 20 ? null : `row ${i}`)) },
      { name: 'label', data: Array.from({ length: 150 }, (_, i) => BigInt(i % 3)) },
    ],
    schema: [...DATASETS_SCHEMA],
    codec: 'UNCOMPRESSED', rowGroupSize: 100, pageSize: 2048,
  })));
  for (const [name, cols, labelled] of [...files.map(([f, c, l]) => [join(S, f), c, l] as const), [own, {}, true] as const]) {
    const whole = await openParquet(name, cols, labelled);
    const parts = await openParquet(name, cols, labelled, paged);
    const rows = parquetUnits(whole, 0);
    const units = parquetUnits(parts, 0);
    assert.ok(units.length > rows.length || rows.every((u) => u.count === 1), `${name}: row groups split into parts`);
    assert.deepEqual(units.map((u) => u.count).reduce((a, b) => a + b), rows.map((u) => u.count).reduce((a, b) => a + b));
    const want = (await Promise.all(rows.map(async (u) => recordsOfUnit(await readUnit(whole, u))))).flat();
    const got = (await Promise.all(units.map(async (u) => recordsOfUnit(await readUnit(parts, u))))).flat();
    assert.deepEqual(got, want, name);
  }
  // the values of a page in the middle of an image bytes' chunk of many pages overwritten: rows before it are read,
  // then the part's rows from that page's first on are one problem (a row group range), reported once
  const cut = join(dir, 'cut.parquet');
  writeFileSync(cut, new Uint8Array(parquetWriteBuffer({
    columnData: [
      { name: 'image', data: Array.from({ length: 100 }, () => Uint8Array.from({ length: 400 }, () => Math.floor(rnd() * 256))) },
      { name: 'text', data: Array.from({ length: 100 }, (_, i) => `row ${i}`) },
    ],
    schema: [
      { name: 'schema', num_children: 2 },
      { name: 'image', type: 'BYTE_ARRAY', repetition_type: 'OPTIONAL' },
      { name: 'text', type: 'BYTE_ARRAY', converted_type: 'UTF8', repetition_type: 'OPTIONAL' },
    ],
    codec: 'UNCOMPRESSED', pageSize: 4096,
  })));
  const src = await openParquet(cut, {}, false, paged);
  const fd = openSync(cut, 'r');
  const table = pageTable(fd, src.metadata.row_groups[0]!.columns[0]!.meta_data!, 100);
  closeSync(fd);
  assert.ok(table.pages.length >= 4, `${table.pages.length} pages`);
  const page = table.pages[2]!;
  const bytes = readFileSync(cut);
  const original = Buffer.from(bytes);
  const next = table.pages[3]!.offset;
  bytes.fill(0xff, next - 1000, next); // (its last 1000 bytes: values, after the header and the levels)
  writeFileSync(cut, bytes);
  const bad = await openParquet(cut, {}, false, { pagedBytes: 0, partBytes: 1e9 });
  const [unit] = parquetUnits(bad, 0);
  const recs = [...await readUnit(bad, unit!)];
  assert.equal(recs.length, 100);
  assert.ok(recs.slice(0, page.firstRow).every((r) => r.problem === undefined && r.image && 'bytes' in r.image));
  assert.match(`${recs[page.firstRow]!.where}: ${recs[page.firstRow]!.problem}`, new RegExp(`cut\\.parquet: row group 0 \\(rows ${page.firstRow}-99\\): does not decode`));
  assert.ok(recs.slice(page.firstRow + 1).every((r) => r.problem === ''));
  // a later page's header overwritten instead: the pages before it are still read
  const later = table.pages[3]!;
  const cut2 = join(dir, 'cut2.parquet');
  const clean = Buffer.from(original);
  clean.fill(0xff, later.offset, later.offset + 16);
  writeFileSync(cut2, clean);
  const bad2 = await openParquet(cut2, {}, false, { pagedBytes: 0, partBytes: 1e9 });
  const recs2 = [...await readUnit(bad2, parquetUnits(bad2, 0)[0]!)];
  assert.equal(recs2.length, 100);
  assert.ok(recs2.slice(0, later.firstRow).every((r) => r.problem === undefined && r.image && 'bytes' in r.image), 'rows before the broken header');
  assert.match(`${recs2[later.firstRow]!.where}: ${recs2[later.firstRow]!.problem}`, new RegExp(`cut2\\.parquet: row group 0 \\(rows ${later.firstRow}-99\\): does not decode`));
});

test('page headers as other writers make them: 200 KB of statistics (arrow-rs does not truncate them), a dictionary offset of 0, a header cut or giving a negative size', async () => {
  // a column chunk of one data page, its header rewritten (hyparquet-writer's thrift), in a file of its own
  const dir = mkdtempSync(join(tmpdir(), 'mmtrain-headers-'));
  const file = join(dir, 'five.parquet');
  const values = Array.from({ length: 5 }, (_, i) => Uint8Array.from({ length: 1000 }, (_, j) => (i * 7 + j * 13) & 255));
  writeFileSync(file, new Uint8Array(parquetWriteBuffer({
    columnData: [{ name: 'image', data: values }, { name: 'text', data: ['a', 'b', 'c', 'd', 'e'] }],
    schema: [{ name: 'schema', num_children: 2 }, { name: 'image', type: 'BYTE_ARRAY', repetition_type: 'OPTIONAL' }, { name: 'text', type: 'BYTE_ARRAY', converted_type: 'UTF8', repetition_type: 'OPTIONAL' }],
    codec: 'UNCOMPRESSED',
  })));
  const src = await openParquet(file, {}, false);
  const meta = src.metadata.row_groups[0]!.columns[0]!.meta_data!;
  const bytes = readFileSync(file);
  const start = Number(meta.data_page_offset);
  const reader = { view: new DataView(bytes.buffer, bytes.byteOffset + start, Number(meta.total_compressed_size)), offset: 0 };
  const raw = deserializeTCompactProtocol(reader) as Record<string, Record<string, unknown> & { field_3: number }> & { field_3: number };
  const body = bytes.subarray(start + reader.offset, start + reader.offset + raw.field_3);
  const schemaPath = getTreePath(parquetSchema(src.metadata), meta.path_in_schema);
  /** the chunk with its header changed by `edit`, read page by page from a file of its own */
  const chunk = (edit: (h: typeof raw) => void, dictionaryOffset?: bigint) => {
    const h = structuredClone(raw);
    edit(h);
    const w = new ByteWriter();
    serializeTCompactProtocol(w, h);
    const header = new Uint8Array(w.getBuffer());
    const out = join(dir, 'chunk.bin');
    writeFileSync(out, Buffer.concat([header, body]));
    const fake = { ...meta, dictionary_page_offset: dictionaryOffset, data_page_offset: 0n, total_compressed_size: BigInt(header.length + body.length) };
    const fd = openSync(out, 'r');
    try {
      const table = pageTable(fd, fake, 5);
      if (table.broken) return table.broken;
      const cursor = new PageCursor(fd, fake, schemaPath, table, {}, 0);
      return Array.from({ length: 5 }, () => cursor.take() as Uint8Array);
    } finally {
      closeSync(fd);
    }
  };
  for (const size of [1000, 70_000, 200_000]) {
    const got = chunk((h) => {
      const stats = { field_5: new Uint8Array(size).fill(0xee), field_6: new Uint8Array(1) };
      if (h.field_8) h.field_8.field_8 = stats;
      else h.field_5!.field_5 = stats;
    });
    assert.deepEqual(got, values, `statistics of ${size} bytes`);
  }
  assert.deepEqual(chunk(() => {}, 0n), values, 'a dictionary page offset of 0 is none');
  assert.match(String(chunk((h) => (h.field_3 = -22))), /gives a size of -22 bytes/);
  assert.match(String(chunk((h) => (h.field_3 = 1 << 30))), /past the column chunk's end/);
});

test('a Parquet file of one large row group (96 MB of images) is read in parts, with memory bounded by its pages: every row once, its own image', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'mmtrain-big-rg-'));
  const file = join(dir, 'one-group.parquet');
  const n = 960;
  const image = (i: number) => {
    const b = Buffer.alloc(100_000, i % 251);
    b.writeUInt32LE(i, 0);
    return b;
  };
  writeFileSync(file, new Uint8Array(parquetWriteBuffer({
    columnData: [
      { name: 'image', data: Array.from({ length: n }, (_, i) => ({ bytes: image(i), path: `${i}.jpg` })), codec: 'UNCOMPRESSED' },
      { name: 'text', data: Array.from({ length: n }, (_, i) => `caption ${i}`) },
      { name: 'label', data: Array.from({ length: n }, (_, i) => BigInt(i % 2)) },
    ],
    schema: [...DATASETS_SCHEMA],
    rowGroupSize: n,
  })));
  const set = (await openDataset('data.train', file)) as StreamSet;
  assert.equal(set.units.length, 3, 'three parts of ~32 MB');
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  // (the collector frees array buffers' memory a moment after a collection: measured after a pause)
  const settled = async () => {
    gc();
    await new Promise((r) => setTimeout(r, 20));
    gc();
    return process.memoryUsage().arrayBuffers;
  };
  const base = await settled();
  let peak = 0;
  const seen = new Set<number>();
  for await (const it of epochStream(set, { seed: 1, epoch: 0, shuffle: true, rank: 0, worldSize: 1, readers: 2, buffer: 0 })) {
    assert.ok(it.sample?.bytes, `${it.problem?.where}: ${it.problem?.message}`);
    assert.equal(Buffer.from(it.sample.bytes).compare(image(it.index)), 0, `row ${it.index}'s image`);
    assert.equal(it.sample.text, `caption ${it.index}`);
    seen.add(it.index);
    if (seen.size % 40 === 0) peak = Math.max(peak, (await settled()) - base);
  }
  assert.equal(seen.size, n);
  // read whole, the row group's 96 MB chunk and its images' copies were in memory at once
  assert.ok(peak < 24 << 20, `${(peak / 2 ** 20).toFixed(1)} MB of buffers held while reading`);
});

test('a Parquet file of 200,000 rows: its labels are discovered and a shuffle buffer of all of them empties (no spread of a huge array onto the stack)', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'mmtrain-many-rows-'));
  const file = join(dir, 'many.parquet');
  const n = 200_000;
  const one = Uint8Array.of(1);
  writeFileSync(file, new Uint8Array(parquetWriteBuffer({
    columnData: [
      { name: 'image', data: Array.from({ length: n }, () => one) },
      { name: 'text', data: Array.from({ length: n }, () => 't') },
      { name: 'label', data: Array.from({ length: n }, (_, i) => (i % 2 ? 'cat' : 'dog')) },
    ],
    schema: [
      { name: 'schema', num_children: 3 },
      { name: 'image', type: 'BYTE_ARRAY', repetition_type: 'OPTIONAL' },
      { name: 'text', type: 'BYTE_ARRAY', converted_type: 'UTF8', repetition_type: 'OPTIONAL' },
      { name: 'label', type: 'BYTE_ARRAY', converted_type: 'UTF8', repetition_type: 'OPTIONAL' },
    ],
  })));
  const set = (await openDataset('data.train', file)) as StreamSet;
  assert.deepEqual(set.labels, ['cat', 'dog']);
  let count = 0;
  for await (const chunk of epochChunks(set, { seed: 0, epoch: 0, shuffle: true, rank: 0, worldSize: 1, readers: 1, buffer: n })) count += chunk.length;
  assert.equal(count, n);
});

test('read buffers kept for reuse: the last given back that can hold the length, none past the pool\'s bytes', () => {
  const pool = new BufferPool<Uint8Array>(100);
  assert.equal(pool.take(1), undefined, 'empty: make one');
  const [a, b, c] = [new Uint8Array(40), new Uint8Array(10), new Uint8Array(30)];
  pool.give(a);
  pool.give(b);
  pool.give(c);
  pool.give(new Uint8Array(30)); // 110 bytes: over the pool's 100, not kept
  assert.equal(pool.take(5), c, 'the last given back');
  assert.equal(pool.take(35), a, 'the last that can hold 35 bytes, past one too small');
  assert.equal(pool.take(11), undefined, 'none left holds 11 bytes');
  assert.equal(pool.take(10), b);
  assert.equal(pool.take(1), undefined);
  // a capacity other than the length (resizable buffers: their maximum)
  const sized = new BufferPool<{ byteLength: number; max: number }>(1000, (x) => x.max);
  const r = { byteLength: 4, max: 64 };
  sized.give(r);
  assert.equal(sized.take(50), r, 'a buffer of 4 bytes that can grow to 64 holds 50');
  // resizable buffers: the one that changes its length least, growing (zero-filling) the least
  const [small, mid, big] = [{ byteLength: 2, max: 100 }, { byteLength: 40, max: 100 }, { byteLength: 90, max: 100 }];
  for (const b of [big, mid, small]) sized.give(b);
  assert.equal(sized.takeClosest(30), mid, 'the least length at or above 30');
  assert.equal(sized.takeClosest(95), big, 'none at or above 95: the longest, grown least');
  assert.equal(sized.takeClosest(101), undefined, 'none can hold 101');
  assert.equal(sized.takeClosest(1), small);
  assert.equal(sized.takeClosest(1), undefined);
});

test('the epoch order: over 1-3 ranks and 1-3 reading slots every sample is read once, ranks step together, the order is seeded and replays from any batch', async () => {
  const { parquet, tar } = await converted(75, 16, 5);
  for (const p of [parquet, tar]) {
    const d = (await openDataset('data.train', p)) as StreamSet;
    const all = d.size;
    for (const worldSize of [1, 2, 3]) {
      for (const readers of [1, 2, 3]) {
        const seen: number[] = [];
        const lengths: number[] = [];
        for (let rank = 0; rank < worldSize; rank++) {
          const dl = new DataLoader(d, tok, img16, { batchSize: 6, seed: 5, readers, shuffleBuffer: 10, shard: worldSize > 1 ? { rank, worldSize } : null });
          let n = 0;
          for await (const b of dl.epoch(2)) {
            seen.push(...b.indices);
            n++;
            tidy(() => b.pixelValues.dispose());
          }
          assert.equal(n, dl.length, `${p}: rank ${rank} of ${worldSize}, ${readers} readers: batches`);
          lengths.push(n);
        }
        assert.equal(new Set(lengths).size, 1, 'every rank takes part in every step');
        assert.deepEqual([...seen].sort((x, y) => x - y), Array.from({ length: all }, (_, i) => i), `${p}: ${worldSize} ranks, ${readers} readers: each sample once`);
      }
    }
    const order = async (epoch: number, start = 0, seed = 5) => {
      const dl = new DataLoader(d, tok, img16, { batchSize: 6, seed, readers: 2, shuffleBuffer: 10 });
      const out: number[][] = [];
      for await (const b of dl.epoch(epoch, start)) out.push(b.indices);
      return out;
    };
    const e1 = await order(1);
    assert.deepEqual(await order(1), e1, 'the same seed and epoch: the same batches');
    assert.notDeepEqual(await order(2), e1, 'another epoch: another order');
    assert.notDeepEqual(await order(1, 0, 6), e1, 'another seed: another order');
    assert.deepEqual(await order(1, 4), e1.slice(4), 'a resumed epoch replays the rest exactly');
    // one loader over several epochs (its stream thread reads the next epoch ahead), one left early, the main-thread
    // path: the same batches
    const e2 = await order(2);
    for (const decodeThread of [true, false]) {
      const dl = new DataLoader(d, tok, img16, { batchSize: 6, seed: 5, readers: 2, shuffleBuffer: 10, decodeThread });
      const run = async (epoch: number, stopAfter = Infinity) => {
        const out: number[][] = [];
        for await (const b of dl.epoch(epoch)) {
          out.push(b.indices);
          if (out.length >= stopAfter) break;
        }
        return out;
      };
      assert.deepEqual(await run(1), e1, `decodeThread ${decodeThread}: epoch 1`);
      assert.deepEqual(await run(2, 2), e2.slice(0, 2), 'epoch 2 left after two batches');
      assert.deepEqual(await run(2), e2, 'epoch 2 again, whole');
      assert.deepEqual(await run(1), e1, 'back to epoch 1 (the epoch read ahead was 3)');
      const ev = new DataLoader(d, tok, img16, { batchSize: 6, shuffle: false, decodeThread });
      const a: number[][] = [];
      const b: number[][] = [];
      for await (const x of ev.epoch(0)) a.push(x.indices);
      for await (const x of ev.epoch(0)) b.push(x.indices);
      assert.deepEqual(b, a, 'unshuffled: the same order every time (evaluation)');
      assert.deepEqual(a.flat(), Array.from({ length: all }, (_, i) => i), 'unshuffled, one rank: the data set order');
    }
  }
});

test('streamed samples kept between epochs: once a rank has read all of its shards\' samples, later epochs take them (not their images) from memory, in the order the shards give; in-memory images (Parquet) and a set over the budget are read every epoch', async () => {
  const { parquet, tar } = await converted(60, 10, 5);
  const d = (await openDataset('data.train', tar)) as StreamSet;
  const order = { seed: 4, shuffle: true, readers: 2, buffer: 12 };
  // the reference: each epoch's order as the shards give it
  const streamed = async (epoch: number, rank: number, worldSize: number) => {
    const out: number[] = [];
    for await (const it of epochStream(d, { ...order, epoch, rank, worldSize })) out.push(it.index);
    return out;
  };
  const texts = new Map<number, string>();
  for (const worldSize of [1, 2]) {
    for (let rank = 0; rank < worldSize; rank++) {
      for (const decodeThread of [true, false]) {
        const dl = new DataLoader(d, tok, img16, { batchSize: 4, seed: 4, readers: 2, shuffleBuffer: 12, decodeThread, keepSamples: true, shard: worldSize > 1 ? { rank, worldSize } : null, lockstep: false });
        for (const epoch of [0, 1, 2, 1]) {
          const got: number[] = [];
          const pixels: number[] = [];
          for await (const b of dl.epoch(epoch)) {
            got.push(...b.indices);
            b.samples!.forEach((s, k) => texts.set(b.indices[k]!, s.text));
            tidy(() => pixels.push(b.pixelValues.sum().item()));
            tidy(() => b.pixelValues.dispose());
          }
          assert.deepEqual(got, await streamed(epoch, rank, worldSize), `rank ${rank} of ${worldSize}, decodeThread ${decodeThread}, epoch ${epoch}`);
          assert.ok(pixels.every((p) => p > 0), 'every batch has its images (read from the shards by range)');
        }
        assert.ok(dl.streamKept, 'kept after the first epoch');
        // a resumed epoch from the kept samples replays the rest
        const all: number[][] = [];
        for await (const b of dl.epoch(3)) all.push(b.indices);
        const rest: number[][] = [];
        for await (const b of dl.epoch(3, 2)) rest.push(b.indices);
        assert.deepEqual(rest, all.slice(2), 'resumed at batch 2');
      }
    }
  }
  // a loader that has read every sample reads no file for them again (the set's reads counted: on the main thread);
  // one with keeping off, or a budget too small for the set, reads them every epoch
  const textsOf = async (dl: DataLoader, epoch: number) => {
    const out = new Map<number, string>();
    for await (const b of dl.epoch(epoch)) b.samples!.forEach((s, k) => out.set(b.indices[k]!, s.text));
    return out;
  };
  let reads = 0;
  const counted: StreamSet = { ...d, read: (u, r) => (reads++, d.read(u, r)) };
  const units = d.units.length;
  const kept = new DataLoader(counted, tok, img16, { batchSize: 8, seed: 4, keepSamples: true, decodeThread: false });
  const off = new DataLoader(counted, tok, img16, { batchSize: 8, seed: 4, keepSamples: true, keptBytes: 0, decodeThread: false });
  const small = new DataLoader(counted, tok, img16, { batchSize: 8, seed: 4, keepSamples: true, keptBytes: 2000, decodeThread: false });
  for (const [dl, name, want] of [[kept, 'kept', [units, 0, 0]], [off, 'keptBytes 0', [units, units, units]], [small, 'a budget too small', [units, units, units]]] as const) {
    const n: number[] = [];
    for (const e of [0, 1, 2]) {
      reads = 0;
      assert.deepEqual(await textsOf(dl, e), texts, name);
      n.push(reads);
    }
    assert.deepEqual(n, want, `${name}: units read each epoch`);
  }
  assert.ok(kept.streamKept && !off.streamKept && !small.streamKept);
  assert.throws(() => new DataLoader(d, tok, img16, { batchSize: 8, keptBytes: -1 }), /keptBytes/);
  // the shards' texts rewritten in place (same lengths; their mtimes change): read again, and kept anew
  const threaded = new DataLoader(d, tok, img16, { batchSize: 8, seed: 4, keepSamples: true });
  await textsOf(threaded, 0);
  assert.ok(threaded.streamKept);
  for (const f of d.files) {
    const buf = readFileSync(f);
    // every text member's content (after its 512-byte header) upper-cased: the same bytes in length
    for (let at = 0; at + 512 <= buf.length; ) {
      const name = buf.subarray(at, at + 100).toString('latin1').replace(/\0.*$/s, '');
      const size = parseInt(buf.subarray(at + 124, at + 136).toString('latin1').replace(/\0.*$/s, '').trim() || '0', 8);
      if (name.endsWith('.txt')) buf.write(buf.subarray(at + 512, at + 512 + size).toString('latin1').toUpperCase(), at + 512, 'latin1');
      at += 512 + Math.ceil(size / 512) * 512;
    }
    writeFileSync(f, buf);
    utimesSync(f, new Date(), new Date(Date.now() + 2000)); // (a later mtime, whatever the clock's resolution)
  }
  const upper = new Map([...texts].map(([i, t]) => [i, t.toUpperCase()]));
  reads = 0;
  assert.deepEqual(await textsOf(kept, 3), upper, 'changed files: read again');
  assert.equal(reads, units);
  assert.deepEqual(await textsOf(threaded, 1), upper, 'changed files: read again (stream thread)');
  reads = 0;
  assert.deepEqual(await textsOf(kept, 4), upper);
  assert.equal(reads, 0, 'and kept anew');
  // every shard replaced by a copy of itself (a new inode: rsync, a download again): read again, every image found,
  // and kept anew; a shard whose text changed in place (its mtime) is read again too
  for (const f of d.files) {
    copyFileSync(f, `${f}.copy`);
    await fsp.rename(`${f}.copy`, f);
  }
  for (const dl of [kept, threaded]) {
    reads = 0;
    const again = await textsOf(dl, 5);
    assert.equal(again.size, 48, 'every sample, its image read from the new file');
    assert.deepEqual(again, upper);
    assert.ok(dl.streamKept, 'kept anew');
    if (dl === kept) assert.equal(reads, units, 'read again');
  }
  // a shard that could not be read in the first epoch (moved away for a moment) is read again in the next: a set
  // that gave a problem is not kept
  for (const decodeThread of [true, false]) {
    const dl = new DataLoader(d, tok, img16, { batchSize: 8, seed: 4, onBadSample: 'skip', decodeThread, keepSamples: true });
    const last = d.files.at(-1)!;
    renameSync(last, `${last}.away`);
    const n0 = (await textsOf(dl, 0)).size;
    renameSync(`${last}.away`, last);
    assert.ok(n0 < 48, 'the shard away: its samples skipped');
    assert.equal((await textsOf(dl, 1)).size, 48, `decodeThread ${decodeThread}: read again`);
    assert.equal(dl.streamKept, false, 'a set that gave a problem is not kept');
    assert.equal((await textsOf(dl, 2)).size, 48);
  }
  // dropLast: the samples after the last batch are read too, to be kept; batches of 7 over 48 samples (6 epochs'
  // worth of 42), one rank and two
  for (const worldSize of [1, 2]) {
    for (let rank = 0; rank < worldSize; rank++) {
      const dl = new DataLoader(d, tok, img16, { batchSize: 7, seed: 4, dropLast: true, shard: worldSize > 1 ? { rank, worldSize } : null, shuffle: rank === 0, keepSamples: true });
      const e0 = [...(await textsOf(dl, 0)).keys()];
      assert.ok(dl.streamKept, `dropLast, rank ${rank} of ${worldSize}: kept after one epoch`);
      const e1: number[] = [];
      for await (const b of dl.epoch(1)) e1.push(...b.indices);
      const want: number[] = [];
      for await (const it of epochStream(d, { seed: 4, epoch: 1, shuffle: rank === 0, rank, worldSize, readers: 2, buffer: 1000 })) want.push(it.index);
      assert.deepEqual(e1, want.slice(0, e1.length), 'the same batches as read from the files');
      assert.equal(e1.length, e0.length);
    }
  }
  // Parquet: images stored in place (convert's default, datasets' layout) come as byte ranges and the samples are
  // kept; compressed ones are in memory, handed on to the batch thread each epoch, never kept; the order is the files'
  const snappy = await convertDataset(readManifest(join(dirname(dirname(d.files[0]!)), 'data', 'train.jsonl')), { to: 'parquet', out: join(dirname(dirname(d.files[0]!)), 'pq-snappy'), prefix: 'train', shardSize: 10, rowGroupSize: 5, compression: 'snappy', imageCompression: 'snappy', onBadSample: 'error' });
  for (const [p, keeps] of [[parquet, true], [snappy.pattern, false]] as const) {
    const pq = (await openDataset('data.train', p)) as StreamSet;
    const dl = new DataLoader(pq, tok, img16, { batchSize: 4, seed: 4, readers: 2, shuffleBuffer: 12 });
    for (const epoch of [0, 1, 2]) {
      const got: number[] = [];
      const want: number[] = [];
      for await (const b of dl.epoch(epoch)) {
        got.push(...b.indices);
        tidy(() => assert.ok(b.pixelValues.sum().item() > 0));
        tidy(() => b.pixelValues.dispose());
      }
      for await (const it of epochStream(pq, { ...order, epoch, rank: 0, worldSize: 1 })) want.push(it.index);
      assert.deepEqual(got, want, `${p}: epoch ${epoch}`);
      assert.equal(dl.streamKept, keeps, `${p}: kept after epoch ${epoch}`);
    }
  }
});

test('Parquet images stored in place (uncompressed, PLAIN: datasets\' layout) are given as byte ranges of the file when asked: the same bytes as decoded, over pages v1 and v2, nulls and many pages; dictionary-encoded or compressed images stay in memory', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'mmtrain-ranges-'));
  const rnd = mulberry32(8);
  const unique = Array.from({ length: 90 }, (_, i) => Uint8Array.from({ length: 200 + ((i * 37) % 300) }, () => Math.floor(rnd() * 256)));
  const write = (name: string, images: (Uint8Array | null)[], opts: { struct?: boolean; codec?: 'UNCOMPRESSED' | 'SNAPPY'; pageSize?: number }) => {
    const file = join(dir, name);
    writeFileSync(file, new Uint8Array(parquetWriteBuffer({
      columnData: [
        { name: 'image', data: opts.struct ? images.map((b, i) => (i === 5 ? null : { bytes: b, path: null })) : images },
        { name: 'text', data: images.map((_, i) => `row ${i}`) },
      ],
      schema: opts.struct ? [{ name: 'schema', num_children: 2 }, ...DATASETS_SCHEMA.slice(1, 4), DATASETS_SCHEMA[4]!] : [{ name: 'schema', num_children: 2 }, { name: 'image', type: 'BYTE_ARRAY', repetition_type: 'OPTIONAL' }, { name: 'text', type: 'BYTE_ARRAY', converted_type: 'UTF8', repetition_type: 'OPTIONAL' }],
      codec: opts.codec ?? 'UNCOMPRESSED', rowGroupSize: 40, pageSize: opts.pageSize ?? 1 << 20,
    })));
    return file;
  };
  const withNulls = unique.map((b, i) => (i % 13 === 4 ? null : b));
  const cases: [string, number][] = [
    [write('plain.parquet', withNulls, { pageSize: 2048 }), 83],
    [write('struct.parquet', withNulls, { struct: true, pageSize: 1500 }), 82],
    [write('dictionary.parquet', unique.map((_, i) => unique[i % 3]!), {}), 0],
    [write('snappy.parquet', unique, { codec: 'SNAPPY' }), 0],
    [join(S, 'hf-train-00000-of-00001.parquet'), 12],
    [join(S, 'pa-struct-zstd.parquet'), 0],
  ];
  for (const [file, want] of cases) {
    const d = (await openDataset('data.train', file, { label: 'optional' })) as StreamSet;
    const o = { seed: 0, epoch: 0, shuffle: false, rank: 0, worldSize: 1, readers: 1, buffer: 0 };
    const read = async (imageRanges: boolean) => {
      const out: string[] = [];
      let ranges = 0;
      for await (const it of epochStream(d, { ...o, imageRanges })) {
        if (it.sample?.range) ranges++;
        out.push(it.sample ? sha(encodedImage(it.sample)) : `${it.problem?.where}: ${it.problem?.message}`);
      }
      return { out, ranges };
    };
    const inMemory = await read(false);
    const asRanges = await read(true);
    assert.equal(inMemory.ranges, 0, file);
    assert.equal(asRanges.ranges, want, `${file}: images given as ranges`);
    assert.deepEqual(asRanges.out, inMemory.out, `${file}: the same images`);
  }
  // a range names the file's inode when opened: a file replaced at the same path since is not read for it (file-reads.ts)
  const f = cases[0]![0];
  const d = (await openDataset('data.train', f, { label: 'optional' })) as StreamSet;
  for await (const it of epochStream(d, { seed: 0, epoch: 0, shuffle: false, rank: 0, worldSize: 1, readers: 1, buffer: 0, imageRanges: true })) if (it.sample) assert.equal(it.sample.range?.ino, statSync(f).ino);
});

test('WebDataset shards over 64 MB are read in parts of whole samples (units as row groups are): the parts read as the shard whole, ranks share a single shard; a shard with members apart or cut short stays whole', async () => {
  // Python tarfile's shards (GNU long names, pax headers before a member): a part after each sample
  const every = { splitBytes: 0, partBytes: 1 };
  const { d: fine, out } = await recordsOf(join(S, 'wds-{000000..000001}.tar'), { shardLimits: every });
  assert.deepEqual(fine.units.map((u) => u.count), [1, 1, 1, 1, 1, 1, 1, 1, 1]);
  assert.deepEqual(fine.units.map((u) => [u.rowGroup, u.rowStart, u.offset]), [[0, 0, 0], [1, 1, 1], [2, 2, 2], [3, 3, 3], [4, 4, 4], [0, 0, 5], [1, 1, 6], [2, 2, 7], [3, 3, 8]]);
  assert.ok(fine.units.every((u) => (u.rowGroup === 0) === (u.at === undefined)), 'a part after the first starts at a header');
  assert.deepEqual(out, [...expected['wds-000000.tar']!, ...expected['wds-000001.tar']!], 'the parts read as the shards whole');

  // one shard of 32 samples: whole, a second rank has nothing to read; in parts of ~8 KB, both ranks read, each sample once
  const { tar: pattern, m } = await converted(40, 100, 100);
  const order = { seed: 5, epoch: 1, shuffle: true, readers: 2, buffer: 8 };
  const items = async (d: StreamSet, o: Parameters<typeof epochStream>[1]) => {
    const out: StreamItem[] = [];
    for await (const it of epochStream(d, o)) out.push(it);
    return out;
  };
  const indices = async (d: StreamSet, rank: number) => (await items(d, { ...order, rank, worldSize: 2 })).map((it) => it.index);
  const whole = (await openDataset('data.train', pattern)) as StreamSet;
  assert.equal(whole.units.length, 1);
  assert.deepEqual(await indices(whole, 1), []);
  const parts = (await openDataset('data.train', pattern, { shardLimits: { splitBytes: 0, partBytes: 8 << 10 } })) as StreamSet;
  assert.ok(parts.units.length >= 4, `${parts.units.length} parts`);
  assert.equal(parts.units.reduce((a, u) => a + u.count, 0), m.samples.length);
  const [r0, r1] = [await indices(parts, 0), await indices(parts, 1)];
  assert.ok(r0.length && r1.length && Math.abs(r0.length - r1.length) <= Math.max(...parts.units.map((u) => u.count)), `shares ${r0.length} and ${r1.length}`);
  assert.deepEqual([...r0, ...r1].sort((a, b) => a - b), Array.from({ length: m.samples.length }, (_, i) => i));
  // the same samples at the same indices as the shard read whole
  const bySample = async (d: StreamSet) => (await items(d, { ...order, shuffle: false, rank: 0, worldSize: 1 })).map((it) => [it.index, it.sample!.text, sha(encodedImage(it.sample!))]);
  assert.deepEqual(await bySample(parts), await bySample(whole));
  // the shard rewritten since (another order): a part's first header is no longer one, and the error says why
  const changed = join(dirname(m.samples[0]!.image), '..', 'changed.tar');
  const src = readFileSync(expandDataPaths('data.train', pattern)[0]!);
  writeFileSync(changed, src);
  const before = (await openDataset('data.train', changed, { shardLimits: { splitBytes: 0, partBytes: 8 << 10 } })) as StreamSet;
  const at = before.units[1]!.at!;
  writeFileSync(changed, Buffer.concat([src.subarray(0, at), Buffer.alloc(100, 1), src.subarray(at)]));
  const [first] = await before.read(before.units[1]!);
  assert.match(`${first!.where}: ${first!.problem}`, new RegExp(`changed\\.tar: at byte ${at}: the shard has changed since the data set was opened \\(invalid header at byte ${at} \\(its checksum does not match\\)\\); open the data set again`));
  // through the stream thread and the loader (two ranks): every sample once, its own image's pixels
  const per = 3 * 16 * 16;
  const want = new Map<number, number[]>();
  for await (const b of new DataLoader(m.samples, tok, img16, { batchSize: 8, shuffle: false }).epoch(0)) b.indices.forEach((i, k) => want.set(i, b.pixelValues.toNumbers().slice(k * per, (k + 1) * per)));
  const seen: number[] = [];
  for (const rank of [0, 1]) {
    for await (const b of new DataLoader(parts, tok, img16, { batchSize: 4, shuffle: true, seed: 2, shard: { rank, worldSize: 2 }, readers: 2, shuffleBuffer: 8 }).epoch(0)) {
      const px = b.pixelValues.toNumbers();
      b.indices.forEach((i, k) => assert.deepEqual(px.slice(k * per, (k + 1) * per), want.get(i), `rank ${rank}, sample ${i}`));
      seen.push(...b.indices);
    }
  }
  assert.deepEqual(seen.sort((x, y) => x - y), Array.from({ length: m.samples.length }, (_, i) => i));

  // no parts where a part could not read as the shard did: members apart, a shard cut short (both skipped)
  const dir = mkdtempSync(join(tmpdir(), 'mmtrain-parts-'));
  const good = readFileSync(m.samples[0]!.image);
  tarOf(join(dir, 'apart.tar'), [['k4.jpg', good], ['k5.txt', 'b'], ['k4.txt', 'a'], ['k5.jpg', good], ['k4.cls', '1'], ['k5.cls', '0'], ['k6.txt', 'c'], ['k6.jpg', good], ['k6.cls', '1']]);
  const apart = (await openDataset('data.train', join(dir, 'apart.tar'), { onBadSample: 'skip', shardLimits: every })) as StreamSet;
  assert.deepEqual(apart.units.map((u) => u.count), [apart.size]);
  const members: [string, Uint8Array | string][] = [];
  for (let k = 0; k < 6; k++) members.push([`s${k}.jpg`, good], [`s${k}.txt`, `sample ${k}`], [`s${k}.cls`, String(k % 2)]);
  tarOf(join(dir, 'cut.tar'), members);
  truncateSync(join(dir, 'cut.tar'), statSync(join(dir, 'cut.tar')).size - 1024 - 600);
  const cut = (await openDataset('data.train', join(dir, 'cut.tar'), { onBadSample: 'skip', shardLimits: every })) as StreamSet;
  assert.equal(cut.units.length, 1);

  // the default limits: a 70 MB shard (70 samples of 1 MB) is 3 parts of 32 + 32 + 6 samples; one of 60 MB stays whole
  const big = (n: number) => {
    const mb: [string, Uint8Array | string][] = [];
    for (let k = 0; k < n; k++) mb.push([`b${String(k).padStart(3, '0')}.jpg`, Buffer.alloc((1 << 20) - 1024, k)], [`b${String(k).padStart(3, '0')}.txt`, `big ${k}`], [`b${String(k).padStart(3, '0')}.cls`, String(k % 2)]);
    tarOf(join(dir, `big${n}.tar`), mb);
    return join(dir, `big${n}.tar`);
  };
  const seventy = (await openDataset('data.train', big(70))) as StreamSet;
  assert.deepEqual(seventy.units.map((u) => [u.rowStart, u.count]), [[0, 32], [32, 32], [64, 6]]);
  assert.deepEqual((await openDataset('data.train', big(60)) as StreamSet).units.map((u) => u.count), [60]);
  rmSync(dir, { recursive: true });
});

test('WebDataset shard counts are kept between runs: opened again, no shard is read; a shard changed since is counted again; a cache folder that cannot be written or files that do not parse are passed over; shards with problems are counted every time', async () => {
  const before = process.env.MMTRAIN_CACHE_DIR;
  const dir = mkdtempSync(join(tmpdir(), 'mmtrain-counts-'));
  try {
    process.env.MMTRAIN_CACHE_DIR = join(dir, 'cache');
    const { tar: pattern } = await converted(40, 10, 10);
    const shards = expandDataPaths('data.train', pattern);
    const limits = { shardLimits: { splitBytes: 0, partBytes: 4 << 10 } };
    const first = (await openDataset('data.train', pattern, limits)) as StreamSet;
    const kept = readdirSync(shardCountsDir());
    assert.equal(kept.length, shards.length);
    assert.ok(first.units.some((u) => u.at), 'in parts');
    // opened again, the kept files are used and the shards not read: kept files edited (each shard one unit, other
    // labels) give the edited units
    const edited = kept.map((n) => join(shardCountsDir(), n));
    const saved = edited.map((f) => readFileSync(f, 'utf8'));
    for (const f of edited) {
      const c = JSON.parse(readFileSync(f, 'utf8')) as { count: number };
      writeFileSync(f, JSON.stringify({ count: c.count, parts: [{ at: 0, first: 0, count: c.count }], labels: ['yes', 'no'] }));
    }
    const again = (await openDataset('data.train', pattern, limits)) as StreamSet;
    assert.deepEqual(again.units.map((u) => u.count), first.files.map((f) => first.units.filter((u) => u.file === f).reduce((a, u) => a + u.count, 0)));
    assert.deepEqual(again.labels, ['no', 'yes']);
    edited.forEach((f, i) => writeFileSync(f, saved[i]!));
    assert.deepEqual(((await openDataset('data.train', pattern, limits)) as StreamSet).units, first.units);
    // other limits, or a shard changed since (rewritten, same size: another ctime): counted again
    const original = shards.map((f) => readFileSync(f));
    const mtimes = shards.map((f) => statSync(f).mtime);
    for (const [i, f] of shards.entries()) {
      writeFileSync(f, Buffer.alloc(original[i]!.length)); // zeros: an empty archive
      utimesSync(f, mtimes[i]!, mtimes[i]!);
    }
    await assert.rejects(openDataset('data.train', pattern), /the data set has no samples/);
    await assert.rejects(openDataset('data.train', pattern, limits), /the data set has no samples/);
    shards.forEach((f, i) => writeFileSync(f, original[i]!));
    // a shard that changes while it is counted: what was counted is not kept under the name of what is there now
    const racing = shards[0]!;
    const name = countFile(racing, {}, SHARD_LIMITS);
    const n = readdirSync(shardCountsDir()).length;
    appendFileSync(racing, Buffer.alloc(1024));
    keepCount(name, racing, {}, SHARD_LIMITS, { count: 3, parts: [{ at: 0, first: 0, count: 3 }], labels: [] });
    assert.equal(readdirSync(shardCountsDir()).length, n);
    keepCount(countFile(racing, {}, SHARD_LIMITS), racing, {}, SHARD_LIMITS, { count: 3, parts: [{ at: 0, first: 0, count: 3 }], labels: [] });
    assert.equal(readdirSync(shardCountsDir()).length, n + 1, 'kept when unchanged');
    writeFileSync(racing, original[0]!);
    // kept files that do not parse, or hold counts that do not add up: counted again, and kept anew
    const counts = join(dir, 'cache', 'shard-counts');
    const known = readdirSync(counts);
    const whole = (await openDataset('data.train', pattern)) as StreamSet;
    const files = readdirSync(counts).filter((n) => !known.includes(n));
    assert.equal(files.length, shards.length);
    writeFileSync(join(counts, files[0]!), '{"count": 10, "parts": [');
    writeFileSync(join(counts, files[1]!), JSON.stringify({ count: 10, parts: [{ at: 0, first: 0, count: 3 }], labels: [] }));
    assert.deepEqual(((await openDataset('data.train', pattern)) as StreamSet).units, whole.units);
    assert.ok(JSON.parse(readFileSync(join(counts, files[0]!), 'utf8')).count > 0, 'kept anew');
    // a cache folder that cannot be made (under a file): the shards are counted, nothing else changes
    process.env.MMTRAIN_CACHE_DIR = join(shards[0]!, 'cache');
    assert.deepEqual(((await openDataset('data.train', pattern)) as StreamSet).units, whole.units);
    // nor in /proc (where mkdir answers ENOENT, and Node's recursive mkdirSync never returns)
    process.env.MMTRAIN_CACHE_DIR = '/proc/mmtrain-cache';
    assert.deepEqual(((await openDataset('data.train', pattern)) as StreamSet).units, whole.units);
    // a shard with a problem (a sample without its image, skipped) is not kept: its problem is found every time
    process.env.MMTRAIN_CACHE_DIR = join(dir, 'cache2');
    const good = original[0]!.subarray(512, 512 + 64);
    tarOf(join(dir, 'bad.tar'), [['k1.jpg', good], ['k1.txt', 'a'], ['k1.cls', '1'], ['k2.txt', 'b'], ['k2.cls', '0']]);
    tarOf(join(dir, 'fine.tar'), [['k1.jpg', good], ['k1.txt', 'a'], ['k1.cls', '1'], ['k2.jpg', good], ['k2.txt', 'b'], ['k2.cls', '0']]);
    // an integer label too large to be a class index (an id): an error, not an array of 1e21 class names
    tarOf(join(dir, 'ids.tar'), [['k1.jpg', good], ['k1.json', '{"text": "a", "label": 1e21}'], ['k2.jpg', good], ['k2.json', '{"text": "b", "label": 0}']]);
    process.env.MMTRAIN_CACHE_DIR = join(dir, 'cache3');
    await assert.rejects(openDataset('data.train', join(dir, 'ids.tar')), /labels: found the integer label 1e\+21; integer labels are class indices 0\.\.max, which would make 1e\+21 classes \(at most 1000000\): give the class names in data\.labels/);
    process.env.MMTRAIN_CACHE_DIR = join(dir, 'cache2');
    for (const n of [1, 2]) {
      const d = (await openDataset('data.train', join(dir, '{bad,fine}.tar'), { onBadSample: 'skip' })) as StreamSet;
      assert.equal(d.size, 4, `open ${n}`);
      assert.equal(readdirSync(join(dir, 'cache2', 'shard-counts')).length, 1, 'fine.tar alone kept');
    }
  } finally {
    if (before === undefined) delete process.env.MMTRAIN_CACHE_DIR;
    else process.env.MMTRAIN_CACHE_DIR = before;
    rmSync(dir, { recursive: true, force: true });
  }
});

/** A small tar shard with the given samples (name -> body), written with tar-stream through convert's layout. */
function tarOf(file: string, members: [string, Uint8Array | string][]): void {
  const blocks: Buffer[] = [];
  for (const [name, body] of members) {
    const data = Buffer.from(body);
    const h = Buffer.alloc(512);
    h.write(name, 0, 'utf8');
    h.write('0000644\0', 100);
    h.write('0000000\0', 108);
    h.write('0000000\0', 116);
    h.write(data.length.toString(8).padStart(11, '0') + '\0', 124);
    h.write('00000000000\0', 136);
    h.write('        ', 148);
    h.write('0', 156);
    h.write('ustar\0', 257);
    h.write('00', 263);
    let sum = 0;
    for (const x of h) sum += x;
    h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148);
    blocks.push(h, data, Buffer.alloc((512 - (data.length % 512)) % 512));
  }
  blocks.push(Buffer.alloc(1024));
  writeFileSync(file, Buffer.concat(blocks));
}

test('bad data: corrupt members, truncated shards, missing columns, wrong types, undecodable bytes: an error naming the shard and member or row, or skipped and counted', async () => {
  const { dir, m } = await converted(20, 100, 100);
  const good = readFileSync(m.samples[0]!.image);
  const b = join(dir, 'bad');
  mkdirSync(b);
  // a shard with an image that does not decode, and one without text
  tarOf(join(b, 'c-000000.tar'), [['k1.jpg', good], ['k1.txt', 'a red circle'], ['k1.cls', '1'], ['k2.jpg', 'not a jpeg at all'], ['k2.txt', 'a blue star'], ['k2.cls', '0'], ['k3.jpg', good], ['k3.cls', '0']]);
  await assert.rejects(openDataset('data.train', join(b, 'c-000000.tar')), /c-000000\.tar: sample k3: no text \(expected a k3\.txt member or a "text" \/ "caption" key in k3\.json\)\nSet data\.onBadSample: "skip"/);
  const d = (await openDataset('data.train', join(b, 'c-000000.tar'), { onBadSample: 'skip' })) as StreamSet;
  assert.equal(d.size, 3);
  const strict = new DataLoader(d, tok, img16, { batchSize: 2, shuffle: false });
  await assert.rejects((async () => { for await (const x of strict.epoch(0)) void x; })(), /c-000000\.tar: k2\.jpg: (not an image|image data is truncated or corrupt|cannot decode)[^\n]*\nSet data\.onBadSample: "skip"/);
  const lenient = new DataLoader(d, tok, img16, { batchSize: 4, shuffle: false, onBadSample: 'skip' });
  const got: number[] = [];
  for await (const x of lenient.epoch(0)) got.push(...x.indices);
  assert.deepEqual(got, [0], 'k2 (undecodable) and k3 (no text) left out');
  assert.equal(lenient.skipped.length, 2);
  assert.match(lenient.skipped.map((p) => `${p.where}: ${p.message}`).join('\n'), /sample k3: no text[\s\S]*k2\.jpg|k2\.jpg[\s\S]*sample k3: no text/);

  // a shard whose samples' members are apart (tar -cf of a folder: its files in directory order): the error says so,
  // not that k4 has no text; with skip, the pieces are left out. A dot in a file name is the end of its key.
  tarOf(join(b, 'apart-000000.tar'), [['k4.jpg', good], ['k5.txt', 'a blue star'], ['k4.txt', 'a red circle'], ['k5.jpg', good], ['k4.cls', '1'], ['k5.cls', '0'], ['k6.txt', 'whole'], ['k6.jpg', good], ['k6.cls', '1']]);
  await assert.rejects(openDataset('data.train', join(b, 'apart-000000.tar')), /apart-000000\.tar: sample k4: the sample's members are not next to each other: k4\.txt comes after other samples' members\. A shard keeps each sample's files together \(as webdataset reads them\); write it with its files sorted by name \(tar --sort=name/);
  const apart = (await openDataset('data.train', join(b, 'apart-000000.tar'), { onBadSample: 'skip' })) as StreamSet;
  const al = new DataLoader(apart, tok, img16, { batchSize: 8, shuffle: false, onBadSample: 'skip' });
  const kept: number[] = [];
  for await (const x of al.epoch(0)) kept.push(...x.indices);
  assert.equal(apart.size, 7, 'k4, k5, then k4 and k5 again twice (a record each), k6');
  assert.deepEqual(kept, [6], 'k6 alone is whole');
  assert.match(al.skipped.map((p) => p.message).join('\n'), /members are not next to each other/);
  tarOf(join(b, 'dots-000000.tar'), [['k.0007.jpg', good], ['k.0007.txt', 'dotted'], ['k.0007.cls', '1']]);
  await assert.rejects(openDataset('data.train', join(b, 'dots-000000.tar')), /sample k: no image member \(expected k\.jpg \/ \.jpeg \/ \.png \/ \.webp; found k\.0007\.jpg, k\.0007\.txt, k\.0007\.cls; a sample's key is its file name up to the first dot\)/);

  // a truncated shard: the samples before the cut are read, the rest is one problem naming the last member read
  const cut = join(b, 't-000000.tar');
  copyFileSync(join(dir, 'wds', 'train-000000.tar'), cut);
  truncateSync(cut, Math.floor(statSync(cut).size / 2) + 100);
  await assert.rejects(openDataset('data.train', cut), /t-000000\.tar: after member \d+\.\w+: the shard is truncated or corrupt/);
  const t = (await openDataset('data.train', cut, { onBadSample: 'skip' })) as StreamSet;
  const tl = new DataLoader(t, tok, img16, { batchSize: 4, shuffle: false, onBadSample: 'skip' });
  let n = 0;
  for await (const x of tl.epoch(0)) n += x.indices.length;
  assert.ok(n > 0 && n < 16, `${n} samples before the cut`);
  assert.equal(tl.skipped.length, 1);
  assert.match(tl.skipped[0]!.message, /truncated or corrupt/);

  // Parquet: a missing column, a wrong type, an image that does not decode, a null text
  const pw = await import('hyparquet-writer');
  const write = (name: string, columnData: { name: string; data: unknown[] }[]) => writeFileSync(join(b, name), new Uint8Array(pw.parquetWriteBuffer({ columnData: columnData as never })));
  write('nolabel.parquet', [{ name: 'image', data: [good] }, { name: 'text', data: ['x'] }]);
  write('float.parquet', [{ name: 'image', data: [good] }, { name: 'text', data: ['x'] }, { name: 'label', data: [0.5] }]);
  write('rows.parquet', [{ name: 'image', data: [good, new Uint8Array([1, 2, 3]), good] }, { name: 'text', data: ['ok', 'bad bytes', null] }, { name: 'label', data: [0, 1, 1] }]);
  await assert.rejects(openDataset('data.train', join(b, 'nolabel.parquet')), /nolabel\.parquet: no column "label" for the label \(columns: image, text\); set data\.columns\.label/);
  await assert.rejects(openDataset('data.train', join(b, 'float.parquet')), /float\.parquet: column "label" holds DOUBLE; expected an integer class index, a class name \(string\) or a boolean/);
  const both = (await openDataset('data.train', join(b, '{nolabel,rows}.parquet'), { onBadSample: 'skip' })) as StreamSet;
  assert.deepEqual(both.files.length, 2);
  assert.equal(both.size, 3, 'the file without labels is left out');
  assert.match(both.skipped[0]!.where, /nolabel\.parquet$/);
  await assert.rejects((async () => { for await (const x of new DataLoader(both, tok, img16, { batchSize: 3, shuffle: false }).epoch(0)) void x; })(), /rows\.parquet: row 2: "text" must be a string, received null/);
  const pl = new DataLoader(both, tok, img16, { batchSize: 3, shuffle: false, onBadSample: 'skip' });
  const texts: number[] = [];
  for await (const x of pl.epoch(0)) texts.push(...x.indices);
  assert.deepEqual(texts, [0]);
  assert.deepEqual(pl.skipped.map((p) => p.where), [join(b, 'rows.parquet') + ': row 2', join(b, 'rows.parquet') + ': row 1']);
  // ClassLabel -1 (datasets' unlabelled test split): no label; an error where labels are needed, a sample to predict
  write('unlabelled.parquet', [{ name: 'image', data: [good, good] }, { name: 'text', data: ['first', 'second'] }, { name: 'label', data: [-1, -1] }]);
  const un = (await openDataset('data.train', join(b, 'unlabelled.parquet'), { labels: ['neg', 'pos'] })) as StreamSet;
  await assert.rejects((async () => { for await (const x of new DataLoader(un, tok, img16, { batchSize: 2, shuffle: false }).epoch(0)) void x; })(), /unlabelled\.parquet: row 0: "label" is -1, no label \(as datasets marks the samples of an unlabelled split\)/);
  const pr = (await openDataset('data.test', join(b, 'unlabelled.parquet'), { labels: ['neg', 'pos'], label: 'optional' })) as StreamSet;
  const prLabels: number[] = [];
  for await (const x of new DataLoader(pr, tok, img16, { batchSize: 2, shuffle: false }).epoch(0)) tidy(() => prLabels.push(...x.labels.toNumbers()));
  assert.deepEqual(prLabels, [-1, -1]);
  // a file that is not Parquet at all
  writeFileSync(join(b, 'junk.parquet'), 'PAR1 this is not parquet');
  await assert.rejects(openDataset('data.train', join(b, 'junk.parquet')), /junk\.parquet: not a readable Parquet file/);
});

function trainConfig(dir: string, data: string, extra: string[] = []): string {
  const cfg = join(dir, `cfg-${Math.random().toString(36).slice(2)}.yaml`);
  writeFileSync(cfg, [
    'seed: 4',
    `model: ${JSON.stringify(tinyModel({ dropout: false }))}`,
    `data: { train: "${data}", val: "${join(dir, 'pq', 'train-000000.parquet')}", stream: { shuffleBuffer: 30 } }`,
    'train: { epochs: 4, batchSize: 8, lr: 3.0e-3, schedule: { type: constant, warmupSteps: 0 } }',
    'checkpoint: { every: 5, keepLast: 2 }',
    'log: { every: 1, progress: none, report: false, tensorboard: false }',
    ...extra,
  ].join('\n'));
  return cfg;
}

const trainLosses = (runDir: string) => readFileSync(join(runDir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l)).filter((r) => r.event === 'train').map((r) => r.loss as number);

test('mmtrain train from Parquet files and from WebDataset shards: the loss falls; resumed mid-epoch it reaches the same weights bit for bit', async () => {
  const { dir, parquet, tar, manifest } = await converted(100, 30, 10);
  for (const p of [parquet, tar]) {
    const cfg = trainConfig(dir, p);
    const run = join(dir, `run-${p.endsWith('.tar') ? 'wds' : 'pq'}`);
    execFileSync(process.execPath, [CLI, '--threads', '1', 'train', '--config', cfg, '--run-dir', run], { stdio: 'pipe' });
    const l = trainLosses(run);
    assert.equal(l.length, 4 * 10, '80 training samples in batches of 8, 4 epochs');
    const mean = (xs: number[]) => xs.reduce((a, x) => a + x, 0) / xs.length;
    assert.ok(mean(l.slice(-5)) < mean(l.slice(0, 5)), `${p}: loss ${mean(l.slice(0, 5))} -> ${mean(l.slice(-5))}`);
    // stop at step 15 (mid-epoch 2), resume: the same final weights as the uninterrupted run
    const half = join(dir, `${run}-resumed`);
    execFileSync(process.execPath, [CLI, '--threads', '1', 'train', '--config', cfg, '--run-dir', half, '--set', 'train.maxSteps=15'], { stdio: 'pipe' });
    // the same run resumed with another shuffle buffer: the rest of its epoch follows another order, and it says so
    const changed = `${half}-changed`;
    cpSync(half, changed, { recursive: true });
    const said = execFileSync(process.execPath, [CLI, '--threads', '1', 'train', '--config', cfg, '--resume', changed, '--set', 'train.maxSteps=16', '--set', 'data.stream.shuffleBuffer=7'], { encoding: 'utf8', stdio: 'pipe' });
    assert.match(said, /warning: the training data or its order settings changed since step-00000015 \(.*\): the rest of epoch 1 \(from batch 5\) follows the new order/);
    const resumed = execFileSync(process.execPath, [CLI, '--threads', '1', 'train', '--config', cfg, '--resume', half, '--set', 'train.maxSteps=40'], { encoding: 'utf8', stdio: 'pipe' });
    assert.doesNotMatch(resumed, /training data or its order settings changed/);
    const w = (r: string) => readFileSync(join(r, 'checkpoints', 'step-00000040', 'model.safetensors'));
    assert.ok(w(half).equals(w(run)), `${p}: resumed weights differ from the uninterrupted run`);
    assert.deepEqual(trainLosses(half).slice(15), l.slice(15));
    // mmtrain eval reads the streamed set as the manifest it was converted from
    const evalOn = (data: string) => JSON.parse(execFileSync(process.execPath, [CLI, '--threads', '1', 'eval', '--checkpoint', join(run, 'checkpoints', 'step-00000040'), '--data', data, '--device', 'cpu'], { encoding: 'utf8' }).trim().split('\n').pop()!);
    const [streamed, fromManifest] = [evalOn(p), evalOn(manifest)];
    assert.equal(streamed.n, 80);
    assert.deepEqual(streamed.confusion, fromManifest.confusion);
    assert.ok(Math.abs(streamed.loss - fromManifest.loss) < 1e-6, `${streamed.loss} vs ${fromManifest.loss}`);
    // mmtrain predict too: one line per sample, in the data set's order, as predicted from the manifest
    const predictOn = (data: string, out?: string) => execFileSync(process.execPath, [CLI, '--threads', '1', 'predict', '--checkpoint', join(run, 'checkpoints', 'step-00000040'), '--data', data, '--batch', '16', '--device', 'cpu', ...(out ? ['--out', out] : [])], { encoding: 'utf8' });
    const lines = (text: string) => text.trim().split('\n').map((l) => JSON.parse(l));
    const outFile = join(dir, `pred-${p.endsWith('.tar') ? 'wds' : 'pq'}.jsonl`);
    predictOn(p, outFile);
    const [fromStream, printed, fromList] = [lines(readFileSync(outFile, 'utf8')), lines(predictOn(p)), lines(predictOn(manifest))];
    assert.equal(fromStream.length, 80);
    assert.deepEqual(printed, fromStream, 'printed and written predictions differ');
    fromStream.forEach((r, i) => {
      assert.equal(r.row, i);
      assert.match(r.source, p.endsWith('.tar') ? /train-00000\d\.tar: / : /train-00000\d\.parquet: row \d+/);
      assert.equal(r.text, fromList[i].text);
      assert.equal(r.label, fromList[i].label);
      for (const [k, v] of Object.entries(fromList[i].probabilities as Record<string, number>)) assert.ok(Math.abs(r.probabilities[k] - v) < 1e-6, `row ${i} ${k}`);
    });
  }
});

const skipDist = distributedAvailable() || process.env.CI ? false : 'this build has no c10d Gloo';

test('two processes on WebDataset shards: disjoint shares that cover the set, the same number of steps', { skip: skipDist }, async () => {
  const { dir, tar } = await converted(100, 13, 10);
  const cfg = trainConfig(dir, tar, []);
  const run = join(dir, 'two');
  const out = execFileSync(process.execPath, [CLI, 'launch', '--nproc', '2', '--', 'train', '--config', cfg, '--run-dir', run, '--set', 'train.epochs=1'], { stdio: 'pipe', encoding: 'utf8' });
  void out;
  const d = (await openDataset('data.train', tar)) as StreamSet;
  const shares = [0, 1].map((rank) => new DataLoader(d, tok, img16, { batchSize: 8, shard: { rank, worldSize: 2 } }));
  // 80 samples in shards of 13 (7 shards: 6 x 13 + 2): rank shares 41 / 39 samples, 8 steps of 4 per rank
  assert.equal(shares[0]!.length, shares[1]!.length);
  assert.equal(trainLosses(run).length, shares[0]!.length);
});
