// Data pipeline: image parity with PIL + torchvision, colour modes, tokenizers, manifests and their errors, the
// loader (determinism, exact resume, padding, bucketing), the image cache, and bad inputs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, rmSync, writeFileSync, readFileSync, mkdirSync, utimesSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MessageChannel } from 'node:worker_threads';
import { spawnSync } from 'node:child_process';
import sharp from 'sharp';
import {
  DataLoader, ImageCache, disposeBatch, generateSynthetic, type Batch, TextTokenizer, imageConfig, imagesToTensor, loadImage, loadSafetensors, memory, readManifest,
  F, fromBuffer, tidy, type Sample,
} from '../src/index.js';
import { FIXTURES, ROOT, settleGarbage } from './helpers.js';
import { decodeOnThread, decodeStats, givePixelsBack, returnImagesTo } from '../src/data/batch-thread.js';
import { giveImageBuffers, imageBuffer, isAlone } from '../src/data/image-buffers.js';
import { decodeImage } from '../src/data/image.js';

const IMG = join(FIXTURES, 'images');
const TOKENIZER = join(ROOT, 'assets', 'bert-base-uncased', 'tokenizer.json');
const ref = loadSafetensors(join(IMG, 'reference.safetensors')).tensors;

async function normalized(file: string, resize: 'shorter-side' | 'exact' = 'shorter-side') {
  const cfg = imageConfig({ size: 32, resize });
  return imagesToTensor([await loadImage(file, cfg)], cfg).squeeze(0);
}

// The same pixels as PIL: mmtrain resizes as Pillow does (resample.ts) and sharp's JPEG decoder gives PIL's
// pixels, so only the float32 normalisation's rounding remains (one grey level would be 1/(255 * 0.224) = 0.0175).
// With libvips' own linear resize the striped and text images were off by up to 17 levels (0.3), 2 on average.
const MAX_ABS = 1e-5;
const MEAN_ABS = 1e-6;

for (const name of ['rgb.jpg', 'rgb.png', 'gray.png', 'rgba.png', 'palette.png', 'exif-rot6.jpg', 'gray16.png', 'stripes-text.png', 'stripes-text.jpg', 'odd-crop.png']) {
  for (const resize of name === 'gray16.png' ? ['shorter-side'] as const : ['shorter-side', 'exact'] as const) {
    test(`image ${name} (${resize}) matches PIL + torchvision pixel for pixel (within ${MAX_ABS} after normalisation)`, async () => {
      const ours = await normalized(join(IMG, name), resize);
      const expected = ref.get(resize === 'exact' ? `${name}.exact` : name)!;
      tidy(() => {
        assert.deepEqual(ours.shape, [3, 32, 32]);
        const d = ours.sub(expected).abs();
        const max = d.max().item();
        const mean = d.mean().item();
        assert.ok(max <= MAX_ABS && mean <= MEAN_ABS, `max ${max.toFixed(4)}, mean ${mean.toFixed(5)}`);
      });
      ours.dispose();
    });
  }
}

// Bicubic (CLIP's, SigLIP's and DeiT's processors): the pixels of PIL's BICUBIC resize through torchvision, exactly
const bicubic = loadSafetensors(join(IMG, 'reference-bicubic.safetensors')).tensors;
test('bicubic resampling equals PIL + torchvision (InterpolationMode.BICUBIC) pixel for pixel: shorter side + crop, exact, and exact to a larger size then the centre crop', async () => {
  for (const name of ['rgb.png', 'stripes-text.png', 'odd-crop.png', 'rgb.jpg', 'stripes-text.jpg']) {
    for (const [resize, size, key, resizeSize] of [['shorter-side', 32, name, undefined], ['exact', 24, `${name}.exact`, undefined], ['exact', 32, `${name}.exact40crop32`, 40]] as const) {
      const img = await decodeImage(readFileSync(join(IMG, name)), name, imageConfig({ size, resize, resample: 'bicubic', resizeSize }));
      const want = bicubic.get(key)!.toFloat32Array();
      let worst = 0;
      img.data.forEach((v, i) => (worst = Math.max(worst, Math.abs(v - want[i]!))));
      assert.equal(img.data.length, want.length);
      assert.equal(worst, 0, `${key}: up to ${worst} grey levels from PIL`);
    }
  }
  // and it differs from bilinear where there is detail
  const stripes = readFileSync(join(IMG, 'stripes-text.png'));
  const [a, b] = await Promise.all(['bilinear', 'bicubic'].map((r) => decodeImage(stripes, 'x', imageConfig({ size: 32, resample: r as 'bilinear' | 'bicubic' }))));
  assert.ok(a!.data.some((v, i) => v !== b!.data[i]));
});

test('normalizeImages equals transpose, widen, subtract, divide (tolerance 1e-6); bad input is named', () => {
  const B = 2, H = 3, W = 5;
  const px = Uint8Array.from({ length: B * H * W * 3 }, (_, i) => (i * 37) % 256);
  const mean = [0.485, 0.456, 0.406];
  const std = [0.229, 0.224, 0.225];
  tidy(() => {
    const u8 = fromBuffer(px, [B, H, W, 3]);
    const ours = F.normalizeImages(u8, mean, std);
    assert.deepEqual(ours.shape, [B, 3, H, W]);
    assert.equal(ours.dtype, 'float32');
    const got = ours.toFloat32Array();
    for (let b = 0; b < B; b++) for (let c = 0; c < 3; c++) for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) {
      const want = (px[((b * H + y) * W + x) * 3 + c]! / 255 - mean[c]!) / std[c]!;
      const v = got[((b * 3 + c) * H + y) * W + x]!;
      assert.ok(Math.abs(v - want) <= 1e-6 * Math.max(1, Math.abs(want)), `(${b}, ${c}, ${y}, ${x}): ${v} vs ${want}`);
    }
    assert.throws(() => F.normalizeImages(u8.float(), mean, std), /Expected a uint8 tensor of shape \(B, H, W, 3\) for images but received "float32 \(2, 3, 5, 3\)"/);
    assert.throws(() => F.normalizeImages(u8, mean, [0.2, 0, 0.2]), /Expected three positive numbers for std/);
  });
});

test('imagesToTensor: batches of 3, 1, 2 and 3 images in turn (one reused buffer) each normalise their own pixels', () => {
  const cfg = imageConfig({ size: 4 });
  const n = 4 * 4 * 3;
  const image = (k: number) => ({ data: Uint8Array.from({ length: n }, (_, i) => (i * 7 + k * 31) % 256), width: 4, height: 4 });
  let k = 0;
  for (const B of [3, 1, 2, 3]) {
    const images = Array.from({ length: B }, () => image(k++));
    tidy(() => {
      const t = imagesToTensor(images, cfg);
      assert.deepEqual(t.shape, [B, 3, 4, 4]);
      const got = t.toFloat32Array();
      images.forEach((im, b) => {
        for (let c = 0; c < 3; c++) for (let p = 0; p < 16; p++) {
          const want = (im.data[p * 3 + c]! / 255 - cfg.mean[c]!) / cfg.std[c]!;
          const v = got[(b * 3 + c) * 16 + p]!;
          assert.ok(Math.abs(v - want) <= 1e-6 * Math.max(1, Math.abs(want)), `batch of ${B}, image ${b}, channel ${c}, pixel ${p}: ${v} vs ${want}`);
        }
      });
    });
  }
});

test('colour modes decode to the right RGB: CMYK, animated GIF first frame, EXIF orientation', async () => {
  const cfg = imageConfig({ size: 16, resize: 'exact' });
  const red = await loadImage(join(IMG, 'cmyk-red.jpg'), cfg);
  const [r, g, b] = [red.data[0]!, red.data[1]!, red.data[2]!];
  assert.ok(r > 200 && g < 70 && b < 70, `CMYK red decoded to ${r},${g},${b}`);
  const gif = await loadImage(join(IMG, 'animated.gif'), cfg);
  assert.deepEqual([gif.data[0], gif.data[1], gif.data[2]], [255, 0, 0]);
  // stored 60x45 with orientation 6: shown 45 wide, 60 tall; shorter-side keeps that orientation
  const meta = await sharp(join(IMG, 'exif-rot6.jpg')).metadata();
  assert.equal(meta.orientation, 6);
  const gray = await loadImage(join(IMG, 'gray.png'), cfg);
  assert.equal(gray.data.length, 16 * 16 * 3, 'gray.png: 16x16 RGB pixels');
  for (let i = 0; i < 16 * 16; i++) assert.ok(gray.data[3 * i] === gray.data[3 * i + 1] && gray.data[3 * i] === gray.data[3 * i + 2]);
});

test('bad images end in clear errors naming the file', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'mmtrain-img-'));
  const cfg = imageConfig({ size: 32 });
  const jpg = readFileSync(join(IMG, 'rgb.jpg'));
  writeFileSync(join(dir, 'empty.jpg'), '');
  writeFileSync(join(dir, 'truncated.jpg'), jpg.subarray(0, Math.floor(jpg.length / 2)));
  writeFileSync(join(dir, 'random.jpg'), Buffer.from(Array.from({ length: 500 }, (_, i) => (i * 7919) % 256)));
  await sharp({ create: { width: 3000, height: 2000, channels: 3, background: '#888' } }).png().toFile(join(dir, 'big.png'));
  await assert.rejects(loadImage(join(dir, 'missing.jpg'), cfg), /missing\.jpg: cannot read image \(file not found\)/);
  await assert.rejects(loadImage(join(dir, 'empty.jpg'), cfg), /empty\.jpg: image file is empty \(0 bytes\)/);
  await assert.rejects(loadImage(join(dir, 'truncated.jpg'), cfg), /truncated\.jpg: image data is truncated or corrupt/);
  await assert.rejects(loadImage(join(dir, 'random.jpg'), cfg), /random\.jpg: not an image \(unsupported or unrecognised format\)/);
  await assert.rejects(loadImage(join(dir, 'big.png'), imageConfig({ size: 32, maxPixels: 1_000_000 })), /big\.png: .*over the pixel limit of 1000000 \(data\.image\.maxPixels\)/);
  // the same through the single-pipeline JPEG path (exact resize)
  const exact = imageConfig({ size: 32, resize: 'exact', maxPixels: 1_000_000 });
  await sharp({ create: { width: 3000, height: 2000, channels: 3, background: '#888' } }).jpeg().toFile(join(dir, 'big.jpg'));
  await assert.rejects(loadImage(join(dir, 'big.jpg'), exact), /big\.jpg: .*over the pixel limit of 1000000 \(data\.image\.maxPixels\)/);
  await assert.rejects(loadImage(join(dir, 'truncated.jpg'), exact), /truncated\.jpg: image data is truncated or corrupt/);
  const red = await loadImage(join(IMG, 'cmyk-red.jpg'), exact);
  assert.ok(red.data[0]! > 200 && red.data[1]! < 70, 'CMYK through the JPEG path');
  rmSync(dir, { recursive: true });
});

test('tokenizer.json gives the known ids; a vocab.txt tokenizer gives the same ids on varied text', () => {
  const a = TextTokenizer.fromFile(TOKENIZER);
  assert.deepEqual(a.encode('Hello world!').ids, [101, 7592, 2088, 999, 102]);
  assert.deepEqual(a.encode('PyTorch').ids.slice(1, -1), [1052, 22123, 2953, 2818]);
  const dir = mkdtempSync(join(tmpdir(), 'mmtrain-vocab-'));
  const vocab = Object.entries(JSON.parse(readFileSync(TOKENIZER, 'utf8')).model.vocab as Record<string, number>).sort((x, y) => x[1] - y[1]).map(([t]) => t);
  writeFileSync(join(dir, 'vocab.txt'), `${vocab.join('\n')}\n`);
  const b = TextTokenizer.fromVocab(join(dir, 'vocab.txt'), { doLowerCase: true });
  const texts = ['Héllo Crème brûlée, naïve café!', '你好世界 and 東京', "don't stop—it's 3.14 × 2 (really?)", 'ÅNGSTRÖM Ελληνικά русский',
    '  spaces\ttabs\nnewlines  ', 'a red circle to the left of a blue square', 'supercalifragilisticexpialidocious', '$100 @user #tag ...'];
  for (const t of texts) assert.deepEqual(b.encode(t).ids, a.encode(t).ids, t);
  // truncation keeps [CLS] ... [SEP]
  const long = a.encode('word '.repeat(300), 16);
  assert.equal(long.ids.length, 16);
  assert.equal(long.ids[0], 101);
  assert.equal(long.ids[15], 102);
  assert.throws(() => TextTokenizer.fromVocab(join(dir, 'none.txt')), /none\.txt: cannot read vocab\.txt/);
  writeFileSync(join(dir, 'bad.txt'), 'a\nb\n');
  assert.throws(() => TextTokenizer.fromVocab(join(dir, 'bad.txt')), /bad\.txt: vocab\.txt has no \[UNK\] token/);
  rmSync(dir, { recursive: true });
});

/** A small data folder: images copied from the fixtures, manifests written by the test. */
function dataDir(n = 10): { dir: string; samples: string[] } {
  const dir = mkdtempSync(join(tmpdir(), 'mmtrain-data-'));
  mkdirSync(join(dir, 'img'));
  const lines: string[] = [];
  for (let i = 0; i < n; i++) {
    copyFileSync(join(IMG, i % 2 ? 'rgb.jpg' : 'rgb.png'), join(dir, 'img', `${i}${i % 2 ? '.jpg' : '.png'}`));
    lines.push(JSON.stringify({ image: `img/${i}${i % 2 ? '.jpg' : '.png'}`, text: `sample number ${i}${' word'.repeat(i % 4)}`, label: i % 3 === 0 ? 'cat' : 'dog' }));
  }
  writeFileSync(join(dir, 'train.jsonl'), `${lines.join('\n')}\n`);
  return { dir, samples: lines };
}

test('manifests: JSONL and CSV, label names discovered or given, boolean labels, -1 as no label', () => {
  const { dir } = dataDir(6);
  const m = readManifest(join(dir, 'train.jsonl'));
  assert.deepEqual(m.labels, ['cat', 'dog']);
  assert.equal(m.samples.length, 6);
  assert.equal(m.samples[0]!.label, 0);
  assert.ok(m.samples[0]!.image.endsWith('img/0.png'));
  writeFileSync(join(dir, 'd.csv'), 'image,text,label\nimg/0.png,"a text, with a comma",1\nimg/1.jpg,other,0\n');
  const c = readManifest(join(dir, 'd.csv'));
  assert.equal(c.samples[0]!.text, 'a text, with a comma');
  assert.deepEqual(c.labels, ['0', '1']);
  const given = readManifest(join(dir, 'train.jsonl'), { labels: ['dog', 'cat'] });
  assert.equal(given.samples[0]!.label, 1);
  // JSON booleans (a yes/no question): classes "false" and "true", or the names given for 0 and 1
  writeFileSync(join(dir, 'b.jsonl'), '{"image": "img/0.png", "text": "yes?", "label": true}\n{"image": "img/1.jpg", "text": "no?", "label": false}\n');
  const b = readManifest(join(dir, 'b.jsonl'));
  assert.deepEqual(b.labels, ['false', 'true']);
  assert.deepEqual(b.samples.map((s) => s.label), [1, 0]);
  assert.deepEqual(readManifest(join(dir, 'b.jsonl'), { labels: ['no', 'yes'] }).samples.map((s) => s.label), [1, 0]);
  // -1: no label (datasets' mark for an unlabelled split): a sample to predict, not a class
  writeFileSync(join(dir, 'u.jsonl'), '{"image": "img/0.png", "text": "a", "label": 1}\n{"image": "img/1.jpg", "text": "b", "label": -1}\n{"image": "img/0.png", "text": "c", "label": 0}\n');
  assert.throws(() => readManifest(join(dir, 'u.jsonl')), /u\.jsonl:2: "label" is -1, no label \(as datasets marks the samples of an unlabelled split\)/);
  const u = readManifest(join(dir, 'u.jsonl'), { label: 'optional' });
  assert.deepEqual(u.labels, ['0', '1'], '-1 is not a class');
  assert.deepEqual(u.samples.map((s) => s.label), [1, -1, 0]);
  rmSync(dir, { recursive: true });
});

test('a broken manifest is refused with every problem by file and line; skip mode counts them', () => {
  const { dir } = dataDir(4);
  writeFileSync(join(dir, 'zero.jpg'), '');
  const lines = [
    '{"image": "img/0.png", "text": "fine", "label": "cat"}',
    '{"image": "img/1.jpg", "text": "broken", "label": ',
    '{"image": "img/missing.jpg", "text": "x", "label": "cat"}',
    '{"image": "img/2.png", "text": "x", "label": "horse"}',
    '{"image": "img/3.jpg", "text": "   ", "label": "dog"}',
    '{"image": "../outside.jpg", "text": "x", "label": "dog"}',
    '{"image": "zero.jpg", "text": "x", "label": "dog"}',
    '[1, 2]',
  ];
  writeFileSync(join(dir, 'bad.jsonl'), `${lines.join('\n')}\n`);
  const opts = { labels: ['cat', 'dog'] };
  assert.throws(() => readManifest(join(dir, 'bad.jsonl'), opts), (e: Error) => {
    const m = e.message;
    return /bad\.jsonl: 7 problems in the manifest/.test(m) &&
      /bad\.jsonl:2: invalid JSON/.test(m) &&
      /bad\.jsonl:3: image not found: img\/missing\.jpg/.test(m) &&
      /bad\.jsonl:4: unknown label "horse" \(known: cat, dog\)/.test(m) &&
      /bad\.jsonl:5: "text" is empty/.test(m) &&
      /bad\.jsonl:6: image path "\.\.\/outside\.jpg" escapes the data root/.test(m) &&
      /bad\.jsonl:7: image file is empty \(0 bytes\): zero\.jpg/.test(m) &&
      /bad\.jsonl:8: expected a JSON object/.test(m) &&
      /set data\.onBadSample: "skip"/.test(m);
  });
  const skipped = readManifest(join(dir, 'bad.jsonl'), { ...opts, onBadSample: 'skip' });
  assert.equal(skipped.samples.length, 1);
  assert.equal(skipped.skipped.length, 7);
  // more than 20 problems: the first 20 and a count
  writeFileSync(join(dir, 'many.jsonl'), Array.from({ length: 30 }, () => '{oops').join('\n'));
  assert.throws(() => readManifest(join(dir, 'many.jsonl')), /30 problems[\s\S]*many\.jsonl:20: invalid JSON[\s\S]*\.\.\. and 10 more/);
  writeFileSync(join(dir, 'nolabel.csv'), 'image,text\nimg/0.png,hello\n');
  assert.throws(() => readManifest(join(dir, 'nolabel.csv')), /nolabel\.csv:1: the CSV header lacks the column label \(header: image,text; expected image,text,label\)/);
  writeFileSync(join(dir, 'short.csv'), 'image,text,label\nimg/0.png,hello\n');
  assert.throws(() => readManifest(join(dir, 'short.csv')), /short\.csv:2: expected 3 columns \(image,text,label\)/);
  rmSync(dir, { recursive: true });
});

function loaderFor(dir: string, opts: Partial<ConstructorParameters<typeof DataLoader>[3]> = {}) {
  const m = readManifest(join(dir, 'train.jsonl'));
  const tok = TextTokenizer.fromFile(TOKENIZER);
  return new DataLoader(m.samples, tok, imageConfig({ size: 16 }), { batchSize: 3, seed: 7, ...opts });
}

async function collectIndices(loader: DataLoader, epoch: number, start = 0): Promise<number[][]> {
  const out: number[][] = [];
  for await (const b of loader.epoch(epoch, start)) {
    out.push(b.indices);
    disposeBatch(b);
  }
  return out;
}

test('loader: same order for the same seed and epoch, new order per epoch, every sample once', async () => {
  const { dir } = dataDir(10);
  const a = loaderFor(dir);
  const e0 = await collectIndices(a, 0);
  assert.deepEqual(await collectIndices(loaderFor(dir), 0), e0);
  const e1 = await collectIndices(a, 1);
  assert.notDeepEqual(e1, e0);
  for (const e of [e0, e1]) assert.deepEqual(e.flat().sort((x, y) => x - y), [...Array(10).keys()]);
  assert.deepEqual(e0.map((b) => b.length), [3, 3, 3, 1]);
  const dropped = await collectIndices(loaderFor(dir, { dropLast: true }), 0);
  assert.deepEqual(dropped.map((b) => b.length), [3, 3, 3]);
  // resume from the cursor mid-epoch gives the same remaining batches
  const l = loaderFor(dir);
  const it = l.epoch(0);
  const first = await it.next();
  const second = await it.next();
  for (const b of [first.value, second.value]) disposeBatch(b as Batch);
  assert.deepEqual(l.cursor, { epoch: 0, position: 2 });
  await it.return(undefined);
  assert.deepEqual(await collectIndices(loaderFor(dir), l.cursor.epoch, l.cursor.position), e0.slice(2));
  rmSync(dir, { recursive: true });
});

test('loader: dynamic padding to the longest text, masks, labels, bucketing by length', async () => {
  const { dir } = dataDir(12);
  const l = loaderFor(dir, { shuffle: false });
  await settleGarbage();
  const before = memory().liveTensors;
  let batches = 0;
  for await (const b of l.epoch(0)) {
    batches++;
    tidy(() => {
      const lens = b.attentionMask.sum(1).toNumbers();
      assert.equal(b.inputIds.size(1), Math.max(...lens));
      assert.deepEqual(b.pixelValues.shape, [b.indices.length, 3, 16, 16]);
      assert.deepEqual(b.labels.toNumbers(), b.indices.map((i) => l.samples[i]!.label));
      // padding positions hold [PAD] (0) and mask 0
      assert.equal(b.inputIds.mul(b.attentionMask.rsub(1)).abs().sum().item(), 0);
      disposeBatch(b);
    });
  }
  assert.equal(batches, 4, 'dynamic padding: 12 samples in batches of 3');
  await settleGarbage();
  assert.equal(memory().liveTensors, before);
  const fixed = loaderFor(dir, { padding: 'max_length', maxLength: 24 });
  let fixedBatches = 0;
  for await (const b of fixed.epoch(0)) {
    fixedBatches++;
    assert.equal(b.inputIds.size(1), 24);
    disposeBatch(b);
  }
  assert.equal(fixedBatches, 4, 'max_length padding: 12 samples in batches of 3');
  const bucketed = loaderFor(dir, { bucketByLength: true });
  const plan = bucketed.plan(0);
  const lenOf = (i: number) => bucketed.encodings[i]!.ids.length;
  const spread = (p: number[][]) => p.reduce((s, b) => s + Math.max(...b.map(lenOf)) - Math.min(...b.map(lenOf)), 0);
  assert.ok(spread(plan) < spread(loaderFor(dir).plan(0)), 'bucketing should reduce padding');
  assert.deepEqual(plan.flat().sort((x, y) => x - y), [...Array(12).keys()]);
  rmSync(dir, { recursive: true });
});

test('image cache: later epochs read cached pixels; a changed file or setting is decoded again', async () => {
  const { dir } = dataDir(6);
  const cfg = imageConfig({ size: 16 });
  const cacheDir = join(dir, 'cache');
  const cache = new ImageCache(cacheDir, cfg);
  const l = loaderFor(dir, { cache });
  await collectIndices(l, 0);
  assert.equal(cache.misses, 6);
  cache.flush();
  const again = new ImageCache(cacheDir, cfg);
  const l2 = loaderFor(dir, { cache: again, shuffle: false });
  const seen: number[][] = [];
  for await (const b of l2.epoch(0)) {
    seen.push(b.pixelValues.toNumbers());
    disposeBatch(b);
  }
  assert.equal(again.hits, 6);
  assert.equal(again.misses, 0);
  // cached pixels equal freshly decoded ones
  const fresh: number[][] = [];
  for await (const b of loaderFor(dir, { shuffle: false }).epoch(0)) {
    fresh.push(b.pixelValues.toNumbers());
    disposeBatch(b);
  }
  assert.deepEqual(seen, fresh);
  // touching a source file invalidates its entry; another size uses another cache file
  utimesSync(join(dir, 'img', '0.png'), new Date(), new Date(Date.now() + 5000));
  const third = new ImageCache(cacheDir, cfg);
  await collectIndices(loaderFor(dir, { cache: third }), 0);
  assert.equal(third.misses, 1);
  assert.notEqual(new ImageCache(cacheDir, imageConfig({ size: 24 })).key, third.key);
  rmSync(dir, { recursive: true });
});

for (const decodeThread of [true, false]) {
  test(`loader: a bad image stops the epoch with its manifest line, or is skipped and counted (decodeThread: ${decodeThread})`, async () => {
    const { dir } = dataDir(6);
    writeFileSync(join(dir, 'img', '2.png'), 'not an image at all');
    const l = loaderFor(dir, { decodeThread });
    await assert.rejects(collectIndices(l, 0), /train\.jsonl:3: .*2\.png: not an image[\s\S]*onBadSample: "skip"/);
    writeFileSync(join(dir, 'img', '4.png'), Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0])); // a cut PNG
    const s = loaderFor(dir, { onBadSample: 'skip', decodeThread });
    const got = await collectIndices(s, 0);
    assert.equal(got.flat().length, 4);
    assert.deepEqual(s.skipped.map((p) => p.where.replace(/.*train\.jsonl/, 'train.jsonl')).sort(), ['train.jsonl:3', 'train.jsonl:5']);
    assert.match(s.skipped.find((p) => p.where.endsWith(':5'))!.message, /4\.png: (image data is truncated or corrupt|not an image|cannot decode image)/);
    rmSync(dir, { recursive: true });
  });
}

test('the batch thread decodes files to the same pixels as the main thread and reports errors by file', async () => {
  const cfg = imageConfig({ size: 16, resize: 'exact' });
  const decoded = await loadImage(join(IMG, 'rgb.jpg'), cfg);
  const { images: out } = await decodeOnThread([{ file: join(IMG, 'rgb.jpg'), seed: null }, { file: join(IMG, 'nope.jpg'), seed: null }], cfg, { background: 2, concurrency: 2 }).results;
  assert.deepEqual(Buffer.from((out[0] as { data: Uint8Array }).data), Buffer.from(decoded.data));
  assert.equal((out[0] as { width: number }).width, 16);
  assert.match((out[1] as Error).message, /nope\.jpg: cannot read image \(file not found\)/);
});

test('in-memory images on the batch thread: a buffer holding one image alone travels by transfer and comes back decoded; any other is copied and left as it was', async () => {
  const cfg = imageConfig({ size: 16, resize: 'exact' });
  const file = readFileSync(join(IMG, 'rgb.jpg'));
  const want = Buffer.from((await loadImage(join(IMG, 'rgb.jpg'), cfg)).data);
  const { port1, port2 } = new MessageChannel();
  const returnTo = returnImagesTo(port2);
  // two images copied into buffers of their own (as the stream thread copies Parquet's), and a caller's bytes: one
  // spanning its whole buffer, one a view into a larger one
  const alone = [imageBuffer(file.length), imageBuffer(file.length)];
  for (const a of alone) a.set(file);
  const capacity = alone[0]!.buffer.byteLength;
  assert.ok(capacity >= file.length && isAlone(alone[0]!));
  const whole = new Uint8Array(file);
  const shared = new Uint8Array(file.length + 10);
  shared.set(file, 10);
  const view = shared.subarray(10);
  assert.ok(!isAlone(whole) && !isAlone(view));
  const back = new Promise<ArrayBuffer[]>((resolve, reject) => {
    const t = setTimeout(() => (port1.close(), reject(new Error('no buffers came back within 10 s'))), 10_000);
    port1.once('message', (m: { buffers: ArrayBuffer[] }) => (clearTimeout(t), resolve(m.buffers)));
  });
  const items = [...alone, whole, view].map((bytes, k) => ({ file: `image ${k}`, bytes, seed: null, returnTo }));
  const { images } = await decodeOnThread(items, cfg, { background: 4, concurrency: 4 }).results;
  for (const img of images) assert.deepEqual(Buffer.from((img as { data: Uint8Array }).data), want);
  // the buffers that held one image alone were transferred, not copied: empty here now
  assert.deepEqual(alone.map((a) => a.byteLength), [0, 0]);
  // sent again, such a buffer is empty: an error naming the image, not a request that never returns
  const [again0] = (await decodeOnThread([{ file: 'image 0', bytes: alone[0]!, seed: null }], cfg, { background: 1, concurrency: 1 }).results).images;
  assert.match((again0 as Error).message, /image 0/);
  // the caller's bytes were copied: still there, for the next epoch
  assert.deepEqual(Buffer.from(whole), file);
  assert.deepEqual(Buffer.from(view), file);
  // and every buffer comes back once decoded, the transferred ones whole (the copies are the images' length)
  const buffers = await back;
  port1.close();
  assert.deepEqual(buffers.map((b) => b.byteLength).sort((a, b) => a - b), [file.length, file.length, capacity, capacity]);
  // a buffer given back is filled again: the pool hands out the same memory
  giveImageBuffers(buffers.filter((b) => b.byteLength === capacity));
  const again = imageBuffer(file.length - 100);
  assert.ok(buffers.includes(again.buffer as ArrayBuffer) && again.byteLength === file.length - 100 && isAlone(again));
});

test('a loader over in-memory images keeps its samples\' bytes: every epoch decodes them, on the batch thread or not', async () => {
  const cfg = imageConfig({ size: 16, resize: 'exact' });
  const tk = TextTokenizer.fromFile(TOKENIZER);
  const names = ['rgb.jpg', 'rgb.png', 'gray.png'];
  const fromFiles: Sample[] = names.map((n, i) => ({ image: join(IMG, n), text: `image ${i}`, label: i % 2, where: n }));
  // bytes spanning their whole ArrayBuffer (as readFileSync gives for files over 4 KB): before, they were sent to the
  // batch thread by transfer, and the second epoch found them empty
  const inMemory: Sample[] = fromFiles.map((s) => ({ ...s, bytes: Uint8Array.from(readFileSync(s.image)) }));
  const pixels = async (dl: DataLoader, epoch: number) => {
    const out: number[][] = [];
    for await (const b of dl.epoch(epoch)) {
      out.push(b.pixelValues.toNumbers());
      disposeBatch(b);
    }
    return out;
  };
  const want = await pixels(new DataLoader(fromFiles, tk, cfg, { batchSize: 3, shuffle: false }), 0);
  for (const decodeThread of [true, false]) {
    const dl = new DataLoader(inMemory, tk, cfg, { batchSize: 3, shuffle: false, decodeThread });
    for (const epoch of [0, 1, 2]) assert.deepEqual(await pixels(dl, epoch), want, `decodeThread ${decodeThread}, epoch ${epoch}`);
  }
  for (const [k, s] of inMemory.entries()) assert.deepEqual(Buffer.from(s.bytes!), readFileSync(fromFiles[k]!.image));
});

test('the batch thread decodes ahead `background` images at a time, and a hurried batch up to its concurrency', async () => {
  const cfg = imageConfig({ size: 16, resize: 'exact' });
  const items = Array.from({ length: 6 }, () => ({ file: join(IMG, 'rgb.jpg'), seed: null }));
  const ahead = decodeOnThread(items, cfg, { background: 1, concurrency: 6 });
  const a = await ahead.results;
  assert.equal(a.peak, 1);
  assert.equal(a.images.filter((x) => !(x instanceof Error)).length, 6);
  // hurried: the images not yet started all start at once (the thread may finish one or two first, one at a time, before
  // the hurry reaches it: small images decode in well under a millisecond), where one at a time would peak at 1
  const many = Array.from({ length: 10 }, () => items[0]!);
  const waited = decodeOnThread(many, cfg, { background: 1, concurrency: 10 });
  waited.hurry(1);
  const peak = (await waited.results).peak;
  assert.ok(peak >= 5, `a hurried batch starts its images at once (peak ${peak} of 10)`);
  const capped = decodeOnThread(items, cfg, { background: 1, concurrency: 2 });
  capped.hurry(1);
  assert.equal((await capped.results).peak, 2);
  const late = decodeOnThread(items.slice(0, 1), cfg, { background: 1, concurrency: 6 });
  await late.results;
  late.hurry(3); // a batch already answered: nothing to do, nothing breaks
  assert.equal((await decodeOnThread(items, cfg, { background: 3, concurrency: 6 }).results).peak, 3);
});

test('pixels given back go to the batch thread with its next request and are decoded into again; images from elsewhere are left alone', async () => {
  const cfg = imageConfig({ size: 24, resize: 'exact' });
  const items = ['rgb.jpg', 'gray.png', 'palette.png'].map((f) => ({ file: join(IMG, f), seed: null }));
  const first = await decodeOnThread(items, cfg, { background: 3, concurrency: 3 }).results;
  const want = first.images.map((im) => Buffer.from((im as { data: Uint8Array }).data));
  // (an earlier test's images may have been given back: only these are counted below)
  const before = await decodeOnThread(items, cfg, { background: 3, concurrency: 3 }).results;
  const other = { data: new Uint8Array(24 * 24 * 3), width: 24, height: 24 };
  givePixelsBack([...(first.images as { data: Uint8Array; width: number; height: number }[]), other]);
  givePixelsBack(before.images as { data: Uint8Array; width: number; height: number }[]);
  givePixelsBack(before.images as { data: Uint8Array; width: number; height: number }[]); // twice: sent once
  const ticket = decodeOnThread(items, cfg, { background: 3, concurrency: 3 });
  // sent (transferred) with that request: detached here; one from elsewhere (a cache's) is untouched
  for (const im of [...first.images, ...before.images]) assert.equal((im as { data: Uint8Array }).data.byteLength, 0);
  assert.equal(other.data.byteLength, 24 * 24 * 3);
  const again = await ticket.results;
  assert.equal(again.reused, 3, 'each image decoded into a buffer given back');
  again.images.forEach((im, k) => assert.ok(Buffer.from((im as { data: Uint8Array }).data).equals(want[k]!), `image ${k}: the same pixels`));
  // a request of another size leaves them: its images need other lengths
  const bigger = await decodeOnThread(items, imageConfig({ size: 48, resize: 'exact' }), { background: 3, concurrency: 3 }).results;
  assert.equal(bigger.reused, 0);
});

test('a DataLoader gives its batches\' pixel buffers back: after the first batches, images are decoded into them (files and in-memory images)', async () => {
  const { dir } = dataDir(12);
  const m = readManifest(join(dir, 'train.jsonl'));
  const tk = TextTokenizer.fromFile(TOKENIZER);
  const cfg = imageConfig({ size: 16 });
  const inMemory: Sample[] = m.samples.map((s) => ({ ...s, bytes: Uint8Array.from(readFileSync(s.image)) }));
  for (const samples of [m.samples, inMemory]) {
    const dl = new DataLoader(samples, tk, cfg, { batchSize: 4, shuffle: true, seed: 3 });
    const before = decodeStats();
    const want: number[][] = [];
    for await (const b of dl.epoch(0)) {
      want.push(b.pixelValues.toNumbers());
      disposeBatch(b);
    }
    const got: number[][] = [];
    for await (const b of dl.epoch(0)) {
      got.push(b.pixelValues.toNumbers());
      disposeBatch(b);
    }
    const after = decodeStats();
    assert.equal(after.images - before.images, 24);
    // the prefetched batches of the first epoch (up to 3 of 4 images) start in fresh buffers; by then every batch
    // taken gives its 4 back
    assert.ok(after.reused - before.reused >= 12, `reused ${after.reused - before.reused} of 24`);
    assert.deepEqual(got, want, 'the same pixels from reused buffers');
  }
});

test('a process that exits while the batch thread is still decoding exits cleanly (no "terminate called ... Napi::Error" abort)', async () => {
  // the batches decoded ahead are in flight in libuv's pool when process.exit stops the batch thread: their promises
  // cannot be resolved there, which aborted the process in 4 runs of 5 before (node-addon-api's
  // NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS, binding.gyp)
  const dir = mkdtempSync(join(tmpdir(), 'mmtrain-exit-'));
  await generateSynthetic({ out: dir, n: 120, seed: 4, imageSize: 320 });
  const index = join(ROOT, 'dist', 'src', 'index.js');
  const child = `
    const { DataLoader, TextTokenizer, readManifest, imageConfig, bundledTokenizer } = await import(${JSON.stringify(index)});
    const m = readManifest(${JSON.stringify(join(dir, 'train.jsonl'))});
    const dl = new DataLoader(m.samples, TextTokenizer.fromFile(bundledTokenizer()), imageConfig({ size: 224, resize: 'exact' }), { batchSize: 16, prefetch: 3 });
    for await (const b of dl.epoch(0)) break;
    process.exit(0);`;
  const script = join(dir, 'exit.mjs'); // (a file: workers would inherit --input-type, which they refuse)
  writeFileSync(script, child);
  for (let run = 0; run < 6; run++) {
    const r = spawnSync(process.execPath, [script], { encoding: 'utf8' });
    assert.equal(r.status, 0, `run ${run}: exit ${r.status} (${r.signal ?? ''}) ${r.stderr}`);
    assert.doesNotMatch(r.stderr, /terminate called/);
  }
});

test('the batch thread prepares the same batches as the main thread: plain, augmented, skipping, from the cache', async () => {
  const { dir } = dataDir(8);
  writeFileSync(join(dir, 'img', '5.jpg'), Buffer.from([0xff, 0xd8, 0xff, 0xe0, 1, 2, 3])); // a truncated JPEG
  const augment = { randomResizedCrop: { scale: [0.3, 1] as [number, number], ratio: [0.75, 1.33] as [number, number] }, horizontalFlip: 0.5, colorJitter: { brightness: 0.4, contrast: 0.4, saturation: 0.4 } };
  const batches = async (opts: Partial<ConstructorParameters<typeof DataLoader>[3]>, epoch = 0) => {
    const m = readManifest(join(dir, 'train.jsonl'));
    const img = imageConfig({ size: 16, augment: opts.augment ? augment : undefined });
    const l = new DataLoader(m.samples, TextTokenizer.fromFile(TOKENIZER), img, { batchSize: 3, seed: 7, onBadSample: 'skip', ...opts });
    const out: { indices: number[]; pixels: number[]; ids: number[] }[] = [];
    for await (const b of l.epoch(epoch)) {
      out.push({ indices: b.indices, pixels: b.pixelValues.toNumbers(), ids: b.inputIds.toNumbers() });
      disposeBatch(b);
    }
    return { out, skipped: l.skipped.length };
  };
  const same = (a: Awaited<ReturnType<typeof batches>>, b: Awaited<ReturnType<typeof batches>>, what: string) => {
    assert.equal(a.skipped, b.skipped, `${what}: skipped`);
    assert.deepEqual(a.out.map((x) => x.indices), b.out.map((x) => x.indices), `${what}: indices`);
    assert.deepEqual(a.out.map((x) => x.ids), b.out.map((x) => x.ids), `${what}: token ids`);
    assert.equal(a.out.flatMap((x) => x.indices).length, 7, `${what}: 8 samples less the broken one`);
    assert.deepEqual(a.out.map((x) => x.pixels.length), b.out.map((x) => x.pixels.length), `${what}: pixel counts`);
    let worst = 0;
    a.out.forEach((x, i) => x.pixels.forEach((v, k) => { worst = Math.max(worst, Math.abs(v - b.out[i]!.pixels[k]!)); }));
    assert.ok(worst < 1e-5, `${what}: pixels differ by ${worst}`);
  };
  for (const augmented of [false, true]) {
    const t = await batches({ decodeThread: true, augment: augmented }, 1);
    const m = await batches({ decodeThread: false, augment: augmented }, 1);
    assert.equal(t.skipped, 1);
    assert.equal(t.out.flat().length, 3);
    same(t, m, augmented ? 'augmented' : 'plain');
  }
  // a cache filled by the thread, read by both; then a batch mixing hits and misses
  const cfg = imageConfig({ size: 16 });
  const filling = new ImageCache(join(dir, 'cache'), cfg);
  const first = await batches({ decodeThread: true, cache: filling });
  assert.equal(filling.misses, 8);
  const viaThread = await batches({ decodeThread: true, cache: filling });
  const viaMain = await batches({ decodeThread: false, cache: filling });
  assert.equal(filling.hits, 14);
  same(viaThread, viaMain, 'cached');
  same(viaThread, first, 'cached vs decoded');
  filling.flush();
  utimesSync(join(dir, 'img', '0.png'), new Date(), new Date(Date.now() + 5000));
  const mixedCache = new ImageCache(join(dir, 'cache'), cfg);
  same(await batches({ decodeThread: true, cache: mixedCache }), first, 'mixed hits and misses');
  assert.equal(mixedCache.misses, 2); // the touched file and the broken one
  rmSync(dir, { recursive: true });
});

export type { Sample };
