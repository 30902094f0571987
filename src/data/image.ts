// Image decoding and preprocessing through sharp (libvips): any format sharp reads (the content is sniffed, not the
// extension), EXIF orientation applied, grayscale / CMYK / alpha / 16-bit converted to 8-bit sRGB RGB, resized,
// and handed over as uint8 HWC; normalisation to NCHW float32 happens per batch in LibTorch (collate.ts).
// Decoding runs in libuv's thread pool, so it overlaps with model compute on the JS thread.
import { readFile } from 'node:fs/promises';
import sharp, { type Metadata, type Sharp } from 'sharp';
import { MmtrainError } from '../errors.js';
import type { ImageConfig } from './image-config.js';

export { IMAGENET_MEAN, IMAGENET_STD, imageConfig, type AugmentConfig, type ImageConfig } from './image-config.js';

// Every image is decoded once per epoch: libvips' operation cache would only hold memory.
sharp.cache(false);

/** A small seeded generator for augmentation decisions (mulberry32). */
export function mulberry32(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) | 0;
    let t = Math.imul(s ^ (s >>> 15), 1 | s);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** uint8 RGB pixels, row-major HWC. */
export interface DecodedImage {
  data: Uint8Array;
  width: number;
  height: number;
}

/** torchvision's Resize(int) output size: the shorter side becomes `size`, the longer side int(size * long / short). */
export function shorterSideSize(w: number, h: number, size: number): [number, number] {
  if (w <= h) return [size, Math.floor((size * h) / w)];
  return [Math.floor((size * w) / h), size];
}

/**
 * Decodes and resizes one image file to size x size RGB uint8. Errors name the file. `rnd` drives the
 * augmentations (training only); without it the result is deterministic.
 */
export async function loadImage(file: string, cfg: ImageConfig, rnd?: () => number): Promise<DecodedImage> {
  let buf: Buffer;
  try {
    buf = await readFile(file);
  } catch (e) {
    throw imageReadError(file, e);
  }
  return decodeImage(buf, file, cfg, rnd);
}

/** The error for an image file that cannot be read: names the file, and says "file not found" for ENOENT. */
export function imageReadError(file: string, e: unknown): MmtrainError {
  const code = (e as NodeJS.ErrnoException).code;
  return new MmtrainError(`${file}: cannot read image (${code === 'ENOENT' ? 'file not found' : (e as Error).message})`);
}

export async function decodeImage(buf: Buffer, file: string, cfg: ImageConfig, rnd?: () => number): Promise<DecodedImage> {
  if (buf.length === 0) throw new MmtrainError(`${file}: image file is empty (0 bytes)`);
  const S = cfg.size;
  const opts = { limitInputPixels: cfg.maxPixels, failOn: 'error' as const, autoOrient: true };
  const isJpeg = buf.length > 3 && buf[0] === 0xff && buf[1] === 0xd8 && buf[2] === 0xff;
  if (isJpeg && cfg.resize === 'exact' && !(rnd && cfg.augment.randomResizedCrop)) {
    // JPEG has no alpha and an exact resize needs no dimensions: one libvips pipeline, no metadata round trip.
    try {
      return await finish(sharp(buf, opts).toColourspace('srgb').resize(S, S, { fit: 'fill', kernel: 'linear' }), file, cfg, rnd);
    } catch (e) {
      if (e instanceof MmtrainError) throw e;
      throw describeSharpError(e, file, cfg);
    }
  }
  try {
    let meta: Metadata;
    try {
      meta = await sharp(buf, opts).metadata();
    } catch (e) {
      throw describeSharpError(e, file, cfg);
    }
    if (!meta.width || !meta.height) throw new MmtrainError(`${file}: not an image sharp can decode (no dimensions)`);
    if (meta.width * meta.height > cfg.maxPixels) {
      throw new MmtrainError(`${file}: ${meta.width}x${meta.height} = ${meta.width * meta.height} pixels is over the limit of ${cfg.maxPixels} (data.image.maxPixels); raise it only for trusted files`);
    }
    // Oriented dimensions (EXIF orientations 5-8 swap width and height).
    const swap = (meta.orientation ?? 1) >= 5;
    const W0 = swap ? meta.height : meta.width;
    const H0 = swap ? meta.width : meta.height;
    // Only the first frame of animated images; sRGB, 8 bits, alpha dropped (as PIL's convert('RGB')).
    let img = sharp(buf, { ...opts, pages: 1 }).toColourspace('srgb').removeAlpha();
    if (meta.hasAlpha) {
      // Drop alpha before resampling, as PIL's convert('RGB') does; libvips would resample premultiplied colours.
      const flat = await img.raw({ depth: 'uchar' }).toBuffer({ resolveWithObject: true });
      img = sharp(flat.data, { raw: { width: flat.info.width, height: flat.info.height, channels: 3 } });
    }
    const aug = cfg.augment;
    if (rnd && aug.randomResizedCrop) {
      const [x, y, w, h] = randomResizedCropBox(W0, H0, aug.randomResizedCrop, rnd);
      img = img.extract({ left: x, top: y, width: w, height: h }).resize(S, S, { fit: 'fill', kernel: 'linear' });
    } else if (cfg.resize === 'exact') {
      img = img.resize(S, S, { fit: 'fill', kernel: 'linear' });
    } else {
      const [w, h] = shorterSideSize(W0, H0, S);
      // torchvision CenterCrop offsets: int(round((size_in - size_out) / 2))
      const left = Math.round((w - S) / 2);
      const top = Math.round((h - S) / 2);
      img = img.resize(w, h, { fit: 'fill', kernel: 'linear' }).extract({ left, top, width: S, height: S }); // extract after resize
    }
    return await finish(img, file, cfg, rnd);
  } catch (e) {
    if (e instanceof MmtrainError) throw e;
    throw describeSharpError(e, file, cfg);
  }
}

/** The end of both decoding paths: the optional flip, raw 8-bit output checked to be S x S x 3, colour jitter. */
async function finish(img: Sharp, file: string, cfg: ImageConfig, rnd?: () => number): Promise<DecodedImage> {
  const S = cfg.size;
  const aug = cfg.augment;
  if (rnd && aug.horizontalFlip > 0 && rnd() < aug.horizontalFlip) img = img.flop();
  const { data, info } = await img.raw({ depth: 'uchar' }).toBuffer({ resolveWithObject: true });
  if (info.channels !== 3 || info.width !== S || info.height !== S) {
    throw new MmtrainError(`${file}: decoded to ${info.width}x${info.height}x${info.channels}, expected ${S}x${S}x3`);
  }
  const out = new Uint8Array(data.buffer, data.byteOffset, data.length);
  if (rnd && aug.colorJitter) colorJitter(out, aug.colorJitter, rnd);
  return { data: out, width: S, height: S };
}

function describeSharpError(e: unknown, file: string, cfg: ImageConfig): MmtrainError {
  const msg = (e as Error).message ?? String(e);
  if (/pixel limit/i.test(msg)) {
    return new MmtrainError(`${file}: image is over the pixel limit of ${cfg.maxPixels} (data.image.maxPixels); raise it only for trusted files`);
  }
  if (/unsupported image format/i.test(msg)) return new MmtrainError(`${file}: not an image (unsupported or unrecognised format)`);
  if (/premature end|truncated|unexpected end|Corrupt|Invalid|bad|crc|read error/i.test(msg)) {
    return new MmtrainError(`${file}: image data is truncated or corrupt (${msg.split('\n')[0]})`);
  }
  return new MmtrainError(`${file}: cannot decode image (${msg.split('\n')[0]})`);
}

/** torchvision RandomResizedCrop.get_params: 10 tries for an area/ratio box inside the image, else a center crop. */
export function randomResizedCropBox(W: number, H: number, p: { scale: [number, number]; ratio: [number, number] }, rnd: () => number): [number, number, number, number] {
  const area = W * H;
  const [lr0, lr1] = [Math.log(p.ratio[0]), Math.log(p.ratio[1])];
  for (let i = 0; i < 10; i++) {
    const target = area * (p.scale[0] + rnd() * (p.scale[1] - p.scale[0]));
    const ratio = Math.exp(lr0 + rnd() * (lr1 - lr0));
    const w = Math.round(Math.sqrt(target * ratio));
    const h = Math.round(Math.sqrt(target / ratio));
    if (w > 0 && h > 0 && w <= W && h <= H) {
      return [Math.floor(rnd() * (W - w + 1)), Math.floor(rnd() * (H - h + 1)), w, h];
    }
  }
  const inRatio = W / H;
  let w = W;
  let h = H;
  if (inRatio < p.ratio[0]) h = Math.round(w / p.ratio[0]);
  else if (inRatio > p.ratio[1]) w = Math.round(h * p.ratio[1]);
  return [Math.floor((W - w) / 2), Math.floor((H - h) / 2), w, h];
}

/** ColorJitter on uint8 RGB in place: brightness, contrast, saturation factors drawn in [1 - s, 1 + s]. */
function colorJitter(px: Uint8Array, j: { brightness: number; contrast: number; saturation: number }, rnd: () => number): void {
  const f = (s: number) => (s > 0 ? 1 - s + rnd() * 2 * s : 1);
  const b = f(j.brightness);
  const c = f(j.contrast);
  const s = f(j.saturation);
  const n = px.length / 3;
  let meanGray = 0;
  for (let i = 0; i < n; i++) meanGray += 0.299 * px[3 * i]! + 0.587 * px[3 * i + 1]! + 0.114 * px[3 * i + 2]!;
  meanGray = (meanGray / n) * b;
  for (let i = 0; i < n; i++) {
    let r = px[3 * i]! * b;
    let g = px[3 * i + 1]! * b;
    let bl = px[3 * i + 2]! * b;
    r = (r - meanGray) * c + meanGray;
    g = (g - meanGray) * c + meanGray;
    bl = (bl - meanGray) * c + meanGray;
    const gray = 0.299 * r + 0.587 * g + 0.114 * bl;
    px[3 * i] = clamp255((r - gray) * s + gray);
    px[3 * i + 1] = clamp255((g - gray) * s + gray);
    px[3 * i + 2] = clamp255((bl - gray) * s + gray);
  }
}

function clamp255(v: number): number {
  return v < 0 ? 0 : v > 255 ? 255 : Math.round(v);
}
