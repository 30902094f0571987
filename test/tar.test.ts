// The tar reader under WebDataset shards (src/data/tar.ts): ustar names with a prefix, pax and GNU long names, pax
// sizes, base-256 sizes, archives without end blocks; corrupt headers and cut members as TarErrors naming the byte;
// window reads of small members and buffers of their own for large ones. Then a shard's images as byte ranges: read
// by the batch thread when decoded, and a shard cut after it was opened is an error naming the member.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, renameSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import tar from 'tar-stream';
import { DataLoader, TextTokenizer, bundledTokenizer, generateSynthetic, imageConfig, openDataset, readManifest, type StreamSet } from '../src/index.js';
import { readImageRange } from '../src/data/file-reads.js';
import { TarError, TarReader } from '../src/data/tar.js';

const dir = mkdtempSync(join(tmpdir(), 'mmtrain-tar-'));

/** A 512-byte header; `size` written as octal, or base-256 when `base256`. */
function header(name: string, size: number, o: { type?: string; prefix?: string; base256?: boolean; magic?: string } = {}): Buffer {
  const h = Buffer.alloc(512);
  h.write(name, 0, 'utf8');
  h.write('0000644\0', 100);
  h.write('0000000\0', 108);
  h.write('0000000\0', 116);
  if (o.base256) {
    h[124] = 0x80;
    h.writeUIntBE(size, 130, 6);
  } else h.write(size.toString(8).padStart(11, '0') + '\0', 124);
  h.write('00000000000\0', 136);
  h.write('        ', 148);
  h.write(o.type ?? '0', 156);
  h.write(o.magic ?? 'ustar\0', 257);
  h.write('00', 263);
  if (o.prefix) h.write(o.prefix, 345);
  let sum = 0;
  for (const x of h) sum += x;
  h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148);
  return h;
}

const pad = (n: number) => Buffer.alloc((512 - (n % 512)) % 512);
const entry = (h: Buffer, body: Buffer) => [h, body, pad(body.length)];
const pax = (records: Record<string, string>) => {
  const body = Buffer.from(Object.entries(records).map(([k, v]) => {
    const rest = ` ${k}=${v}\n`;
    let n = rest.length + 1;
    while (String(n).length + rest.length !== n) n = String(n).length + rest.length;
    return `${n}${rest}`;
  }).join(''));
  return entry(header('PaxHeader', body.length, { type: 'x' }), body);
};

function members(file: string) {
  const r = new TarReader(file);
  try {
    return [...r.members()].map((m) => ({ ...m, body: m.file ? r.bytes(m.offset, m.size).toString('latin1') : '' }));
  } finally {
    r.close();
  }
}

test('tar: ustar prefixes, pax path and size, GNU long names, base-256 sizes, directories, no end blocks', () => {
  const long = `${'d'.repeat(120)}/000001.txt`;
  const big = Buffer.alloc(200_000, 7); // past the 64 KiB window: a buffer of its own
  const file = join(dir, 'formats.tar');
  writeFileSync(file, Buffer.concat([
    ...entry(header('000000.txt', 5, { prefix: 'shard/a' }), Buffer.from('hello')),
    ...pax({ path: 'pax/000000.json', size: '2' }),
    ...entry(header('ignored-name', 0), Buffer.from('{}')), // pax size 2 overrides the header's 0
    ...entry(header('././@LongLink', long.length + 1, { type: 'L', magic: 'ustar  \0' }), Buffer.from(`${long}\0`)),
    ...entry(header('truncated-name', 3, { magic: 'ustar  \0' }), Buffer.from('abc')),
    ...entry(header('dir/', 0, { type: '5' }), Buffer.alloc(0)),
    ...entry(header('000002.bin', big.length, { base256: true }), big),
    // no end-of-archive blocks: accepted, as GNU tar and tar-stream do
  ]));
  const got = members(file);
  assert.deepEqual(got.map((m) => [m.name, m.file, m.size]), [
    ['shard/a/000000.txt', true, 5], ['pax/000000.json', true, 2], [long, true, 3], ['dir/', false, 0], ['000002.bin', true, 200_000],
  ]);
  assert.equal(got[0]!.body, 'hello');
  assert.equal(got[1]!.body, '{}');
  assert.equal(got[2]!.body, 'abc');
  assert.ok(Buffer.from(got[4]!.body, 'latin1').equals(big));
  // offsets point at the bodies in the file
  const raw = readFileSync(file);
  for (const m of got.filter((x) => x.file)) assert.equal(raw.toString('latin1', m.offset, m.offset + m.size), m.body);
});

test('tar: what tar-stream writes (convert\'s writer), long names included, reads back member for member', async () => {
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  pack.on('data', (c: unknown) => chunks.push(c as Buffer));
  const done = new Promise<void>((r) => pack.on('end', () => r()));
  const names = ['a/000000.jpg', `${'x'.repeat(150)}/000001.txt`, 'b/000002.json'];
  for (const [i, n] of names.entries()) await new Promise<void>((r, j) => pack.entry({ name: n }, Buffer.alloc(1000 * (i + 1), i + 1), (e) => (e ? j(e) : r())));
  pack.finalize();
  await done;
  const file = join(dir, 'packed.tar');
  writeFileSync(file, Buffer.concat(chunks));
  const got = members(file);
  assert.deepEqual(got.map((m) => m.name), names);
  got.forEach((m, i) => assert.ok(Buffer.from(m.body, 'latin1').equals(Buffer.alloc(1000 * (i + 1), i + 1)), m.name));
});

test('tar: a corrupt header, a member cut short and a header cut short are TarErrors naming the byte', () => {
  const good = Buffer.concat([...entry(header('a.txt', 3), Buffer.from('abc')), ...entry(header('b.jpg', 1000), Buffer.alloc(1000, 1)), Buffer.alloc(1024)]);
  const corrupt = Buffer.from(good);
  corrupt[1024 + 10] ^= 0xff; // b.jpg's header
  writeFileSync(join(dir, 'corrupt.tar'), corrupt);
  assert.throws(() => members(join(dir, 'corrupt.tar')), (e: Error) => e instanceof TarError && /invalid header at byte 1024 \(its checksum does not match\)/.test(e.message));
  // compressed shards: named as such, with the command that unpacks them
  writeFileSync(join(dir, 'gz.tar'), gzipSync(good));
  assert.throws(() => members(join(dir, 'gz.tar')), (e: Error) => e instanceof TarError && /not a tar archive but gzip-compressed data: decompress it \(gunzip/.test(e.message));
  writeFileSync(join(dir, 'bz.tar'), Buffer.concat([Buffer.from('BZh91AY&SY'), Buffer.alloc(600, 7)]));
  assert.throws(() => members(join(dir, 'bz.tar')), /bzip2-compressed data: decompress it \(bunzip2/);
  writeFileSync(join(dir, 'cut.tar'), good.subarray(0, 1536 + 100));
  assert.throws(() => members(join(dir, 'cut.tar')), /member b\.jpg has 1000 bytes, the file ends 100 bytes into it/);
  writeFileSync(join(dir, 'cut-header.tar'), good.subarray(0, 1024 + 200));
  assert.throws(() => members(join(dir, 'cut-header.tar')), /unexpected end of file at byte 1224/);
  const bad = Buffer.from(good);
  bad.write('9z', 124); // not an octal size
  let sum = 0;
  bad.write('        ', 148);
  for (const x of bad.subarray(0, 512)) sum += x;
  bad.write(sum.toString(8).padStart(6, '0') + '\0 ', 148);
  writeFileSync(join(dir, 'bad-size.tar'), bad);
  assert.throws(() => members(join(dir, 'bad-size.tar')), /invalid header at byte 0 \(its size field is not a number\)/);
  // a pax size that is not a number, and a long name of gigabytes: TarErrors, not a silent end or an allocation
  writeFileSync(join(dir, 'pax-size.tar'), Buffer.concat([...pax({ size: 'x12' }), ...entry(header('a.txt', 3), Buffer.from('abc')), Buffer.alloc(1024)]));
  assert.throws(() => members(join(dir, 'pax-size.tar')), (e: Error) => e instanceof TarError && /invalid pax header before byte 1024 \(size "x12" is not a number\)/.test(e.message));
  const huge = header('././@LongLink', 3 * 2 ** 30, { type: 'L', base256: true });
  writeFileSync(join(dir, 'long-name.tar'), Buffer.concat([huge, Buffer.alloc(1024)]));
  assert.throws(() => members(join(dir, 'long-name.tar')), (e: Error) => e instanceof TarError && /invalid header at byte 0 \(a 3221225472-byte long name or pax header; at most 4194304\)/.test(e.message));
  // a pax size applies to the member, not to a GNU long name between them
  const name = 'n'.repeat(120);
  writeFileSync(join(dir, 'pax-then-long.tar'), Buffer.concat([...pax({ size: '3' }), ...entry(header('././@LongLink', name.length + 1, { type: 'L' }), Buffer.from(`${name}\0`)), ...entry(header('x', 0), Buffer.from('abc')), Buffer.alloc(1024)]));
  assert.deepEqual(members(join(dir, 'pax-then-long.tar')).map((m) => [m.name, m.size, m.body]), [[name, 3, 'abc']]);
});

test('shards: images stay in the shard as byte ranges, read when decoded; a shard cut after opening names the member', async () => {
  const src = join(dir, 'synth');
  await generateSynthetic({ out: src, n: 12, seed: 5, imageSize: 24 });
  const m = readManifest(join(src, 'train.jsonl'));
  const blocks: Buffer[] = [];
  for (const [i, s] of m.samples.entries()) {
    const img = readFileSync(s.image);
    const key = String(i).padStart(6, '0');
    blocks.push(...entry(header(`${key}.jpg`, img.length), img), ...entry(header(`${key}.txt`, Buffer.byteLength(s.text)), Buffer.from(s.text)), ...entry(header(`${key}.cls`, String(s.label).length), Buffer.from(String(s.label))));
  }
  const shard = join(dir, 'ranges-000000.tar');
  writeFileSync(shard, Buffer.concat([...blocks, Buffer.alloc(1024)]));
  const d = (await openDataset('data.train', shard, { labels: m.labels })) as StreamSet;
  const records = [];
  for (const r of await d.read(d.units[0]!)) records.push(r);
  assert.equal(records.length, m.samples.length);
  for (const [i, r] of records.entries()) {
    assert.ok(r.image && 'range' in r.image, 'an image range, not bytes');
    assert.ok(readImageRange(r.image.range).equals(readFileSync(m.samples[i]!.image)), `sample ${i}: the range holds the image`);
    assert.ok(readImageRange(r.image.range, Buffer.alloc(r.image.range.length + 100)).equals(readFileSync(m.samples[i]!.image)), 'read into a larger buffer');
  }
  // the shard's pixels equal the image files', through the batch thread and on this thread
  const tok = TextTokenizer.fromFile(bundledTokenizer());
  const cfg = imageConfig({ size: 16, resize: 'exact' });
  const pixels = async (source: StreamSet | typeof m.samples, decodeThread: boolean) => {
    const out: number[] = [];
    for await (const b of new DataLoader(source, tok, cfg, { batchSize: 5, shuffle: false, decodeThread }).epoch(0)) out.push(...b.pixelValues.toNumbers());
    return out;
  };
  const want = await pixels(m.samples, true);
  assert.deepEqual(await pixels(d, true), want);
  assert.deepEqual(await pixels(d, false), want);
  // cut inside the last image after the shard was opened (counted): the epoch's reading finds it and names the member
  const last = records[records.length - 1]!;
  const key = String(records.length - 1).padStart(6, '0');
  const before = String(records.length - 2).padStart(6, '0');
  const range = (last.image as { range: { file: string; offset: number; length: number } }).range;
  truncateSync(shard, range.offset + 10);
  for (const decodeThread of [true, false]) {
    const dl = new DataLoader(d, tok, cfg, { batchSize: 12, shuffle: false, decodeThread });
    await assert.rejects((async () => { for await (const b of dl.epoch(0)) void b; })(), new RegExp(`ranges-000000\\.tar: after member ${before}\\.cls: the shard is truncated or corrupt \\(member ${key}\\.jpg has \\d+ bytes, the file ends 10 bytes into it\\)`));
  }
  // a range read after it was handed out (the shard cut between reading and decoding): the decoding names the image
  assert.throws(() => readImageRange(range), /unexpected end of file at byte \d+/);
  const sample = { image: `${shard}: ${key}.jpg`, range, text: 'a red circle', label: 0, where: `${shard}: sample ${key}` };
  for (const decodeThread of [true, false]) {
    const dl = new DataLoader([sample], tok, cfg, { batchSize: 1, shuffle: false, decodeThread });
    await assert.rejects((async () => { for await (const b of dl.epoch(0)) void b; })(), new RegExp(`ranges-000000\\.tar: ${key}\\.jpg: cannot read image \\(unexpected end of file at byte \\d+ \\(the file changed while being read\\?\\)\\)`));
  }
});

test('shards: a shard replaced at the same path (a new file renamed over it) is read anew, not through a kept-open file', async () => {
  const tok = TextTokenizer.fromFile(bundledTokenizer());
  const cfg = imageConfig({ size: 16, resize: 'exact' });
  const sets: { m: ReturnType<typeof readManifest>; file: string }[] = [];
  for (const seed of [1, 2]) {
    const src = join(dir, `replace-${seed}`);
    await generateSynthetic({ out: src, n: 10, seed, imageSize: 24 });
    const m = readManifest(join(src, 'train.jsonl'));
    const blocks: Buffer[] = [];
    for (const [i, s] of m.samples.entries()) {
      const img = readFileSync(s.image);
      const key = String(i).padStart(6, '0');
      blocks.push(...entry(header(`${key}.jpg`, img.length), img), ...entry(header(`${key}.txt`, Buffer.byteLength(s.text)), Buffer.from(s.text)), ...entry(header(`${key}.cls`, 1), Buffer.from(String(s.label))));
    }
    const file = join(dir, `replace-${seed}.tar`);
    writeFileSync(file, Buffer.concat([...blocks, Buffer.alloc(1024)]));
    sets.push({ m, file });
  }
  const shard = join(dir, 'replaced-000000.tar');
  const pixels = async (source: StreamSet | ReturnType<typeof readManifest>['samples'], decodeThread: boolean) => {
    const out: number[] = [];
    for await (const b of new DataLoader(source, tok, cfg, { batchSize: 4, shuffle: false, decodeThread }).epoch(0)) out.push(...b.pixelValues.toNumbers());
    return out;
  };
  for (const decodeThread of [true, false]) {
    for (const { m, file } of sets) {
      renameSync(file, shard);
      writeFileSync(file, readFileSync(shard)); // for the next round
      const d = (await openDataset('data.train', shard, { labels: m.labels })) as StreamSet;
      assert.deepEqual(await pixels(d, decodeThread), await pixels(m.samples, decodeThread), `${file}: decodeThread ${decodeThread}`);
    }
  }
  // a range read after its shard was replaced, from a file not kept open: an error, not another file's bytes
  const fresh = join(dir, 'fresh-000000.tar');
  writeFileSync(fresh, readFileSync(sets[1]!.file));
  const d = (await openDataset('data.train', fresh, { labels: sets[1]!.m.labels })) as StreamSet;
  let range: Parameters<typeof readImageRange>[0] | null = null;
  for (const r of await d.read(d.units[0]!)) if (r.image && 'range' in r.image) range ??= r.image.range;
  renameSync(sets[0]!.file, fresh);
  assert.throws(() => readImageRange(range!), /the file was replaced since its samples were read/);
});

test('a compressed shard is named as such, not as a corrupt one', async () => {
  const good = Buffer.concat([...entry(header('a.jpg', 3), Buffer.from('abc')), ...entry(header('a.txt', 1), Buffer.from('x')), Buffer.alloc(1024)]);
  writeFileSync(join(dir, 'zipped.tar'), gzipSync(good));
  await assert.rejects(openDataset('data.train', join(dir, 'zipped.tar')), (e: Error) => /zipped\.tar: not a tar archive but gzip-compressed data: decompress it \(gunzip/.test(e.message) && !/truncated or corrupt/.test(e.message));
});
