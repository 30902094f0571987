// The image addon's optional paths. JPEG (native/image/jpeg.cc, src/data/jpeg.ts): plain JPEGs decoded by libjpeg
// give sharp's pixels exactly, in every layout an encoder writes (subsampling, progressive, grey, odd sizes); files it
// must not take (CMYK, EXIF-rotated, with an ICC profile, truncated, not JPEG) are left to sharp, so that their pixels
// and their errors are sharp's. The PIL parity of the whole pipeline is in data.test.ts. Snappy (snappy.cc): Parquet
// pages decompress as hysnappy decompresses them; corrupt ones are errors. Resize (resample.cc): its SIMD passes give
// the bytes of Pillow's scalar loops (resizeWith('scalar')), every SIMD path, on random images, boxes and sizes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp, { type JpegOptions } from 'sharp';
import { imageConfig } from '../src/index.js';
import { decodeImage } from '../src/data/image.js';
import { decodeJpegResize, jpegHeader, libjpegAvailable } from '../src/data/jpeg.js';
import { FIXTURES } from './helpers.js';
import { imageAddon } from '../src/data/image-addon.js';
import { snappyUncompressor } from 'hysnappy';
import { asyncBufferFromFile, parquetReadObjects } from 'hyparquet';

const skipSnappy = imageAddon().snappyUncompress || process.env.CI ? false : 'this build has no snappy (apt-get install libsnappy-dev, then npm run build:native)';
const skip = libjpegAvailable() || process.env.CI ? false : 'this build has no libjpeg (apt-get install libjpeg-dev, then npm run build:native)';

/** A smooth, textured RGB test image (gradients plus a few hard edges), w x h. */
function scene(w: number, h: number): Buffer {
  const px = Buffer.alloc(w * h * 3);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const i = (y * w + x) * 3;
      px[i] = (x * 255) / w;
      px[i + 1] = (y * 255) / h;
      px[i + 2] = (x + y) % 17 < 8 ? 220 : 30;
    }
  }
  return px;
}

async function encode(w: number, h: number, opts: JpegOptions, grey = false): Promise<Buffer> {
  let img = sharp(scene(w, h), { raw: { width: w, height: h, channels: 3 } });
  if (grey) img = img.grayscale();
  return img.jpeg(opts).toBuffer();
}

/** sharp's full-size 8-bit RGB decoding of a file (the reference). */
async function sharpRgb(buf: Buffer): Promise<{ data: Buffer; width: number; height: number }> {
  const { data, info } = await sharp(buf, { failOn: 'error', autoOrient: true }).toColourspace('srgb').removeAlpha().raw().toBuffer({ resolveWithObject: true });
  return { data, width: info.width, height: info.height };
}

const LAYOUTS: [string, number, number, JpegOptions, boolean?][] = [
  ['4:2:0, quality 90', 320, 240, { quality: 90, chromaSubsampling: '4:2:0' }],
  ['4:4:4, quality 100', 97, 61, { quality: 100, chromaSubsampling: '4:4:4' }],
  ['progressive 4:2:0', 161, 203, { quality: 75, progressive: true }],
  ['optimised Huffman tables, quality 40', 64, 48, { quality: 40, optimiseCoding: true }],
  ['greyscale', 75, 33, { quality: 85 }, true],
  ['odd size 1 x 1', 1, 1, { quality: 90 }],
  ['odd size 333 x 17', 333, 17, { quality: 60, chromaSubsampling: '4:2:0' }],
];

for (const [name, w, h, opts, grey] of LAYOUTS) {
  test(`JPEG path: ${name} (${w} x ${h}) decodes to sharp's pixels exactly`, { skip }, async () => {
    const buf = await encode(w, h, opts, grey);
    assert.deepEqual(jpegHeader(buf), { width: w, height: h });
    // the whole image, not resized: the decoder alone
    const whole = await decodeJpegResize(buf, { width: w, height: h }, { left: 0, top: 0, width: w, height: h }, w, h, 'bilinear');
    const ref = await sharpRgb(buf);
    assert.ok(whole, 'the JPEG path declined a plain JPEG');
    assert.equal(whole.length, ref.data.length);
    assert.ok(Buffer.from(whole).equals(ref.data), 'pixels differ from sharp\'s decoding');
  });
}

test('JPEG path: pool threads reuse their scratch memory across image sizes (growing, one over 16 MB given back, smaller again) and still decode exactly', { skip }, async () => {
  const sizes: [number, number][] = [[97, 61], [2600, 2300], [640, 480], [33, 17], [2600, 2300], [97, 61], [320, 240], [1, 1]];
  const files = await Promise.all(sizes.map(([w, h]) => encode(w, h, { quality: 80, chromaSubsampling: '4:2:0' })));
  const refs = await Promise.all(files.map((f) => sharpRgb(f)));
  // twice, all in flight at once: every pool thread meets several sizes in some order
  for (let round = 0; round < 2; round++) {
    const out = await Promise.all(files.map((f, i) => {
      const [w, h] = sizes[i]!;
      return decodeJpegResize(f, { width: w, height: h }, { left: 0, top: 0, width: w, height: h }, w, h, 'bilinear');
    }));
    out.forEach((o, i) => assert.ok(o && Buffer.from(o).equals(refs[i]!.data), `round ${round}: ${sizes[i]!.join(' x ')} differs from sharp's decoding`));
  }
});

test('JPEG path: decodeImage gives the same pixels as sharp then the resize, for every resize mode and with augmentation', { skip }, async () => {
  const buf = await encode(320, 240, { quality: 90 });
  const ref = await sharpRgb(buf);
  const { resize } = await import('../src/data/resample.js');
  // exact 224 x 224 bilinear
  const exact = await decodeImage(buf, 'x.jpg', imageConfig({ size: 224, resize: 'exact' }));
  assert.ok(Buffer.from(exact.data).equals(Buffer.from(await resize(ref.data, 320, { left: 0, top: 0, width: 320, height: 240 }, 224, 224))));
  // shorter side to 64 (85 x 64), centre crop 64: columns 10.. (round((85 - 64) / 2) = 10)
  const short = await decodeImage(buf, 'x.jpg', imageConfig({ size: 64, resample: 'bicubic' }));
  const r = await resize(ref.data, 320, { left: 0, top: 0, width: 320, height: 240 }, 85, 64, 'bicubic');
  const crop = Buffer.alloc(64 * 64 * 3);
  for (let y = 0; y < 64; y++) crop.set(r.subarray((y * 85 + 10) * 3, (y * 85 + 74) * 3), y * 64 * 3);
  assert.ok(Buffer.from(short.data).equals(crop));
  // augmented: the same seed gives the same crop whichever decoder runs (the box is drawn from the header's size)
  const cfg = imageConfig({ size: 48, augment: { randomResizedCrop: { scale: [0.3, 1], ratio: [0.75, 1.33] }, horizontalFlip: 0.5 } });
  const { mulberry32 } = await import('../src/data/random.js');
  const a = await decodeImage(buf, 'x.jpg', cfg, mulberry32(7));
  const b = await decodeImage(buf, 'x.jpg', cfg, mulberry32(7));
  assert.ok(Buffer.from(a.data).equals(Buffer.from(b.data)));
});

test('JPEG path: files it must not take are left to sharp (CMYK, EXIF orientation, ICC profile, not a JPEG)', { skip }, async () => {
  const img = join(FIXTURES, 'images');
  const bad = join(FIXTURES, 'bad');
  for (const f of [join(img, 'cmyk-red.jpg'), join(img, 'exif-rot6.jpg'), join(bad, 'exif-rotated.jpg'), join(bad, 'cmyk.jpg'), join(img, 'rgb.png'), join(bad, 'random-bytes.jpg')]) {
    assert.equal(jpegHeader(readFileSync(f)), null, f);
  }
  const withIcc = await sharp(scene(40, 30), { raw: { width: 40, height: 30, channels: 3 } }).withIccProfile('p3').jpeg().toBuffer();
  assert.equal(jpegHeader(withIcc), null, 'a JPEG with an ICC profile must go to sharp, which converts it to sRGB');
  // (exif-rot6.jpg above: orientation 6 and no ICC profile, written by PIL)
  const rotated = await sharp(scene(40, 30), { raw: { width: 40, height: 30, channels: 3 } }).withMetadata({ orientation: 8 }).jpeg().toBuffer();
  assert.equal(jpegHeader(rotated), null);
  const upright = await sharp(scene(40, 30), { raw: { width: 40, height: 30, channels: 3 } }).withExif({ IFD0: { Orientation: '1', Make: 'mmtrain' } }).jpeg().toBuffer();
  assert.equal((await sharp(upright).metadata()).orientation, 1);
  assert.deepEqual(jpegHeader(upright), { width: 40, height: 30 }, 'EXIF orientation 1 needs no rotation');
  // the rotated file still decodes, by sharp, to its displayed size
  const shown = await decodeImage(rotated, 'rotated.jpg', imageConfig({ size: 16, resize: 'exact' }));
  assert.equal(shown.data.length, 16 * 16 * 3);
});

/** `jpeg` with an APP1 EXIF segment holding `tiff` (a TIFF header and IFD0) inserted after its SOI marker. */
function withExifSegment(jpeg: Buffer, tiff: Buffer): Buffer {
  const body = Buffer.concat([Buffer.from('Exif\0\0', 'latin1'), tiff]);
  const len = Buffer.alloc(2);
  len.writeUInt16BE(body.length + 2);
  return Buffer.concat([jpeg.subarray(0, 2), Buffer.from([0xff, 0xe1]), len, body, jpeg.subarray(2)]);
}

test('JPEG path: EXIF orientation is read from big- and little-endian IFDs; offsets past the segment are ignored safely', { skip }, async () => {
  const plain = await encode(40, 30, { quality: 90 });
  const ifd = (little: boolean, orientation: number, offset = 8) => {
    const b = Buffer.alloc(8 + 2 + 12 + 4);
    b.write(little ? 'II' : 'MM', 0, 'latin1');
    const u16 = (v: number, at: number) => (little ? b.writeUInt16LE(v, at) : b.writeUInt16BE(v, at));
    const u32 = (v: number, at: number) => (little ? b.writeUInt32LE(v, at) : b.writeUInt32BE(v, at));
    u16(42, 2);
    u32(offset, 4);
    u16(1, 8); // one entry
    u16(0x0112, 10); // Orientation, SHORT, count 1, value
    u16(3, 12);
    u32(1, 14);
    u16(orientation, 18);
    return b;
  };
  assert.equal(jpegHeader(withExifSegment(plain, ifd(true, 6))), null, 'little-endian orientation 6: left to sharp');
  assert.equal(jpegHeader(withExifSegment(plain, ifd(false, 3))), null, 'big-endian orientation 3: left to sharp');
  assert.deepEqual(jpegHeader(withExifSegment(plain, ifd(false, 1))), { width: 40, height: 30 });
  for (const offset of [0xfffffffe, 0xffffffff, 0x7fffffff, 30]) {
    assert.deepEqual(jpegHeader(withExifSegment(plain, ifd(true, 6, offset))), { width: 40, height: 30 }, `IFD offset ${offset}: unreadable, taken as upright`);
  }
  // and sharp agrees that the rotated one is rotated: decodeImage gives the rotated size's pixels
  const shown = await decodeImage(withExifSegment(plain, ifd(true, 6)), 'rot.jpg', imageConfig({ size: 8, resize: 'exact' }));
  assert.equal(shown.data.length, 8 * 8 * 3);
});

test('JPEG path: a truncated or corrupt JPEG is declined and sharp names the problem', { skip }, async () => {
  const good = await encode(320, 240, { quality: 90 });
  const cut = good.subarray(0, Math.floor(good.length * 0.6));
  // the header is whole, so the path takes it; the decoding warns (premature end) and answers null
  assert.deepEqual(jpegHeader(cut), { width: 320, height: 240 });
  assert.equal(await decodeJpegResize(cut, { width: 320, height: 240 }, { left: 0, top: 0, width: 320, height: 240 }, 32, 32, 'bilinear'), null);
  await assert.rejects(decodeImage(Buffer.from(cut), 'cut.jpg', imageConfig({ size: 32 })), /cut\.jpg: image data is truncated or corrupt/);
  // a header cut short: not taken at all
  assert.equal(jpegHeader(good.subarray(0, 40)), null);
  await assert.rejects(decodeImage(good.subarray(0, 40), 'head.jpg', imageConfig({ size: 32 })), /head\.jpg: /);
  // over the pixel limit: sharp's error, not a decode
  await assert.rejects(decodeImage(good, 'big.jpg', imageConfig({ size: 32, maxPixels: 1000 })), /big\.jpg: image is over the pixel limit of 1000/);
});

test('JPEG path: a box outside the image is a RangeError naming it', { skip }, async () => {
  const buf = await encode(40, 30, { quality: 90 });
  assert.throws(() => decodeJpegResize(buf, { width: 40, height: 30 }, { left: 10, top: 0, width: 40, height: 30 }, 8, 8, 'bilinear'), /box 10,0 40x30 is outside the 40x30 image/);
  assert.throws(() => decodeJpegResize(buf, { width: 40, height: 30 }, { left: 0, top: 0, width: 0, height: 30 }, 8, 8, 'bilinear'), /positive integer sizes/);
});

test('decodeImage writes into a given buffer (the batch thread\'s given-back pixels): the same pixels, for the JPEG path, the crop and sharp\'s formats; a wrong length is an error', async () => {
  const { resize } = await import('../src/data/resample.js');
  const jpeg = await encode(320, 240, { quality: 90 });
  const png = await sharp(jpeg).png().toBuffer();
  const cases = [
    { buf: jpeg, cfg: imageConfig({ size: 224, resize: 'exact' }) }, // resized straight into it
    { buf: jpeg, cfg: imageConfig({ size: 64, resample: 'bicubic' }) }, // resized to 85 x 64, cropped into it
    { buf: png, cfg: imageConfig({ size: 56, resize: 'exact' }) }, // sharp decodes, the resize writes into it
    { buf: readFileSync(join(FIXTURES, 'images', 'gray.png')), cfg: imageConfig({ size: 32 }) },
  ];
  for (const { buf, cfg } of cases) {
    const want = await decodeImage(buf, 'x', cfg);
    const into = new Uint8Array(cfg.size * cfg.size * 3).fill(7); // a buffer used before
    const got = await decodeImage(buf, 'x', cfg, undefined, into);
    assert.equal(got.data, into, `size ${cfg.size}: the result is the given buffer`);
    assert.ok(Buffer.from(into).equals(Buffer.from(want.data)), `size ${cfg.size}: the same pixels`);
  }
  const cfg = imageConfig({ size: 8 });
  await assert.rejects(decodeImage(jpeg, 'x', cfg, undefined, new Uint8Array(10)), /decodeImage: into must be a Uint8Array of 8 x 8 x 3 = 192 bytes, received 10 bytes/);
  const src = new Uint8Array(4 * 4 * 3);
  assert.throws(() => resize(src, 4, { left: 0, top: 0, width: 4, height: 4 }, 2, 2, 'bilinear', new Uint8Array(11)), /resize: into must be a Uint8Array of 2 x 2 x 3 = 12 bytes, received 11 bytes/);
  if (!skip) assert.throws(() => decodeJpegResize(jpeg, { width: 320, height: 240 }, { left: 0, top: 0, width: 320, height: 240 }, 8, 8, 'bilinear', new Uint8Array(3)), /decodeJpegResize: into must be a Uint8Array of 8 x 8 x 3 = 192 bytes/);
});

test('snappy: the Parquet pages of a pyarrow-written file decompress as hysnappy decompresses them; bad data is an error', { skip: skipSnappy }, async () => {
  const native = imageAddon().snappyUncompress!;
  const wasm = snappyUncompressor();
  const pages: [Uint8Array, number][] = [];
  // a file written by pyarrow with snappy (gen_writers.py): every page the reader asks to decompress
  const file = await asyncBufferFromFile(join(FIXTURES, 'streams', 'pa-binary-dict-snappy.parquet'));
  await parquetReadObjects({ file, compressors: { SNAPPY: (input: Uint8Array, n: number) => (pages.push([input.slice(), n]), wasm(input, n)) } });
  assert.ok(pages.length >= 3, `${pages.length} snappy pages`);
  for (const [input, n] of pages) {
    const out = native(input, n);
    assert.equal(out.byteOffset, 0);
    assert.equal(out.byteLength, out.buffer.byteLength, 'a buffer of its own (transferable)');
    assert.ok(Buffer.from(out).equals(Buffer.from(wasm(input, n))));
  }
  const [big, n] = pages.reduce((a, b) => (b[1] > a[1] ? b : a));
  assert.throws(() => native(big, n + 1), /snappy data of \d+ bytes uncompressed, expected \d+/);
  assert.throws(() => native(big.subarray(0, Math.floor(big.length / 2)), n), /invalid snappy data/);
  assert.throws(() => native(new Uint8Array([0xff, 0xff, 0xff, 0xff, 0xff, 0xff]), 4), /invalid snappy data/);
});

test('resize: every SIMD path (SSE2; AVX2 where the CPU has it) equals Pillow\'s scalar loops byte for byte (random boxes and sizes, odd widths, big down- and upscales, both filters)', async () => {
  const addon = imageAddon();
  const simd = addon.resizePaths.filter((p) => p !== 'scalar');
  if (process.arch === 'x64') {
    assert.ok(simd.includes('sse2'), `an x86-64 build has the SSE2 path (paths: ${addon.resizePaths.join(', ')})`);
    assert.equal(addon.resizePaths[0], simd.includes('avx2') ? 'avx2' : 'sse2', 'resize uses the widest path the CPU has');
  }
  assert.throws(() => addon.resizeWith('avx512' as 'avx2', new Uint8Array(3), 1, 0, 0, 1, 1, 1, 1, 0), /no resize path "avx512"/);
  let seed = 7;
  const rnd = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32;
  const cases: number[][] = [[1000, 700, 0, 0, 1000, 700, 7, 5], [1000, 3, 0, 0, 1000, 3, 1, 1], [3, 1000, 0, 0, 3, 1000, 2, 9], [2, 2, 0, 0, 2, 2, 300, 300], [640, 480, 80, 0, 480, 480, 224, 224], [224, 225, 0, 0, 224, 225, 224, 224], [320, 320, 0, 0, 320, 320, 224, 224], [321, 17, 0, 0, 321, 17, 223, 16]];
  for (let t = 0; t < 120; t++) {
    const W = 1 + Math.floor(rnd() * 300), H = 1 + Math.floor(rnd() * 200);
    const left = Math.floor((rnd() * W) / 3), top = Math.floor((rnd() * H) / 3);
    cases.push([W, H, left, top, 1 + Math.floor(rnd() * (W - left - 1)), 1 + Math.floor(rnd() * (H - top - 1)), 1 + Math.floor(rnd() * 260), 1 + Math.floor(rnd() * 100)]);
  }
  for (const [W, H, left, top, w, h, ow, oh] of cases as [number, number, number, number, number, number, number, number][]) {
    // noise with saturated pixels: the sums reach both ends of the 8-bit range, where the clipping is
    const src = Uint8Array.from({ length: W * H * 3 }, () => (rnd() < 0.3 ? (rnd() < 0.5 ? 0 : 255) : Math.floor(rnd() * 256)));
    for (const filter of [0, 1]) {
      const ref = addon.resizeWith('scalar', src, W, left, top, w, h, ow, oh, filter);
      const at = `${W}x${H} box (${left}, ${top}, ${w}, ${h}) to ${ow}x${oh}, filter ${filter}`;
      assert.ok(Buffer.from(await addon.resize(src, W, left, top, w, h, ow, oh, filter)).equals(Buffer.from(ref)), `resize: ${at}`);
      for (const path of simd) assert.ok(Buffer.from(addon.resizeWith(path, src, W, left, top, w, h, ow, oh, filter)).equals(Buffer.from(ref)), `${path}: ${at}`);
    }
  }
});
