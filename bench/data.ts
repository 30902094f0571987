// Data-pipeline benchmarks: image decode + resize + normalise throughput against the original design's PIL +
// torchvision pipeline, and the time a training step waits for data with prefetch.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import sharp from 'sharp';
import { join } from 'node:path';
import {
  AdamW, DataLoader, F, ImageCache, TextTokenizer, createFusionModel, decodeImage, disposeBatch, generateSynthetic, imageConfig, isStreamSet, manualSeed,
  openDataset, readManifest, tidy,
} from '../src/index.js';
import { mapLimit } from '../src/data/loader.js';

export async function ensureImages(dir: string, n: number, size: number): Promise<void> {
  if (!existsSync(join(dir, 'train.jsonl'))) await generateSynthetic({ out: dir, n, seed: 1, imageSize: size, split: [1, 0] });
}

/** Photo-like 640x480 JPEGs (smooth noise, quality 90): sizes a real data set has, where shrink-on-load matters. */
export async function ensurePhotos(dir: string, n: number): Promise<void> {
  if (existsSync(join(dir, 'train.jsonl'))) return;
  mkdirSync(dir, { recursive: true });
  const lines: string[] = [];
  for (let i = 0; i < n; i++) {
    const noise = Buffer.alloc(160 * 120 * 3);
    let s = i * 2654435761 + 1;
    for (let k = 0; k < noise.length; k++) {
      s = (s * 1103515245 + 12345) >>> 0;
      noise[k] = s >>> 24;
    }
    const name = `${String(i).padStart(4, '0')}.jpg`;
    await sharp(noise, { raw: { width: 160, height: 120, channels: 3 } }).resize(640, 480, { kernel: 'cubic' }).blur(1).jpeg({ quality: 90 }).toFile(join(dir, name));
    lines.push(JSON.stringify({ image: name, text: 'a photo', label: 0 }));
  }
  writeFileSync(join(dir, 'train.jsonl'), `${lines.join('\n')}\n`);
}

/**
 * Images/s of decode + resize to 224 + normalise to a float tensor, in batches of 32: what a DataLoader without the
 * image cache delivers (the batch thread, 2 batches prefetched), its texts tokenized before the clock starts.
 */
export async function decodeThroughput(dir: string, tokenizerPath: string, rounds = 2): Promise<{ images_per_s: number; n: number }> {
  const samples = readManifest(join(dir, 'train.jsonl'), { checkFiles: false }).samples;
  const loader = new DataLoader(samples, TextTokenizer.fromFile(tokenizerPath), imageConfig({ size: 224, resize: 'exact' }), { batchSize: 32, shuffle: false });
  let best = 0;
  for (let r = 0; r < rounds; r++) {
    const t0 = performance.now();
    for await (const b of loader.epoch(r)) disposeBatch(b);
    best = Math.max(best, samples.length / ((performance.now() - t0) / 1000));
  }
  return { images_per_s: best, n: samples.length };
}

/**
 * Decoding alone, every file already in memory, 4 images in flight (measured best here), no normalisation and no
 * batching: the ceiling of the loader on these files. `resize` true: the loader's own decodeImage (plain JPEGs: libjpeg
 * in the image addon, then Pillow's bilinear resize to 224x224, raw 8-bit RGB); false: sharp's JPEG decode alone, what
 * every image cost before the addon decoded JPEGs (docs/performance.md).
 */
export async function sharpCeiling(dir: string, resize: boolean, rounds = 2): Promise<{ images_per_s: number; n: number }> {
  const samples = readManifest(join(dir, 'train.jsonl'), { checkFiles: false }).samples;
  const bufs = samples.map((s) => readFileSync(s.image));
  const cfg = imageConfig({ size: 224, resize: 'exact' });
  const one = async (k: number): Promise<void> => {
    if (resize) await decodeImage(bufs[k]!, samples[k]!.image, cfg);
    else await sharp(bufs[k]!, { limitInputPixels: cfg.maxPixels, failOn: 'error', autoOrient: true }).toColourspace('srgb').raw().toBuffer();
  };
  let best = 0;
  for (let r = 0; r < rounds; r++) {
    const t0 = performance.now();
    await mapLimit(bufs.map((_, k) => k), 4, one);
    best = Math.max(best, bufs.length / ((performance.now() - t0) / 1000));
  }
  return { images_per_s: best, n: bufs.length };
}

/**
 * Share of a tiny-preset training step spent waiting for the next batch, with prefetch 2 (224px JPEGs, batch 8):
 * decoding every image (a first epoch), or reading them from the image cache (later epochs).
 */
export async function dataWait(dir: string, tokenizerPath: string, steps = 30, cached = false, data?: string): Promise<{ wait_fraction: number; step_s: number; wait_s: number }> {
  const tok = TextTokenizer.fromFile(tokenizerPath);
  const cfg = imageConfig({ size: 224, resize: 'exact' });
  let cache: ImageCache | null = null;
  if (cached) {
    cache = new ImageCache(join(dir, '.cache'), cfg);
    const fill = new DataLoader(readManifest(join(dir, 'train.jsonl')).samples, tok, cfg, { batchSize: 32, shuffle: false, cache });
    for await (const b of fill.epoch(0)) disposeBatch(b);
    cache.flush();
  }
  // `data`: the same images as Parquet files or WebDataset shards (streamed)
  const d = data ? await openDataset('data', data) : null;
  const source = d && isStreamSet(d) ? d : readManifest(join(dir, 'train.jsonl')).samples;
  const loader = new DataLoader(source, tok, cfg, { batchSize: 8, seed: 1, prefetch: 2, cache });
  manualSeed(0);
  const { model } = createFusionModel({ preset: 'tiny' });
  const opt = new AdamW(model.parameters(), { lr: 1e-4 });
  let wait = 0;
  let total = 0;
  let n = 0;
  const it = loader.epoch(0);
  let t = performance.now();
  for (;;) {
    const w0 = performance.now();
    const next = await it.next();
    const w1 = performance.now();
    if (next.done || n >= steps + 3) break;
    tidy(() => {
      F.crossEntropy(model.forward(next.value).logits, next.value.labels).backward();
      opt.step();
      opt.zeroGrad();
      disposeBatch(next.value);
    });
    const t1 = performance.now();
    if (n >= 3) {
      wait += w1 - w0;
      total += t1 - t;
    }
    t = t1;
    n++;
  }
  await it.return(undefined);
  model.dispose();
  opt.dispose();
  return { wait_fraction: wait / total, step_s: total / 1000 / (n - 3), wait_s: wait / 1000 / (n - 3) };
}
