// Image decoding and preprocessing. Plain JPEGs (the common case) are decoded by the image addon with libjpeg and
// resized in the same trip to libuv's pool (jpeg.ts); every other file by sharp (libvips), which decodes any format
// it reads (the content is sniffed, not the extension), applies EXIF orientation and converts grayscale / CMYK /
// alpha / 16-bit / ICC-tagged images to 8-bit sRGB RGB. Both give the same pixels for a plain JPEG (the same library
// and settings). The resize is Pillow's antialiased bilinear or bicubic (resample.ts), so the pixels equal
// torchvision's and Hugging Face's preprocessing of the same file. Handed over as uint8 HWC; normalisation to NCHW
// float32 happens per batch in LibTorch (collate.ts). Decoding runs on the batch thread, so it overlaps with model
// compute on the JS thread.
import { readFile } from 'node:fs/promises';
import sharp from 'sharp';
import { MmtrainError } from '../errors.js';
import type { ImageConfig } from './image-config.js';
import { decodeJpegResize, jpegHeader } from './jpeg.js';
import { type Box, checkInto, resize } from './resample.js';

export { IMAGENET_MEAN, IMAGENET_STD, imageConfig, type AugmentConfig, type ImageConfig } from './image-config.js';

// Every image is decoded once per epoch: libvips' operation cache would only hold memory.
sharp.cache(false);

export { mulberry32 } from './random.js';

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

/**
 * Decodes an image held in memory (`file` names it in errors) as loadImage does. Its pixels are written into `into`
 * when given (size x size x 3 bytes, a buffer used before: the batch thread's are sent back to it once a batch is
 * made, so that no image needs fresh memory), else into a new buffer.
 */
export async function decodeImage(buf: Buffer, file: string, cfg: ImageConfig, rnd?: () => number, into?: Uint8Array): Promise<DecodedImage> {
  if (buf.length === 0) throw new MmtrainError(`${file}: image file is empty (0 bytes)`);
  checkInto('decodeImage', into, cfg.size, cfg.size);
  // the resize writes into `into` when it makes the final size x size image; else the crop does (finish)
  const target = (p: ResizePlan) => (p.width === cfg.size && p.height === cfg.size ? into : undefined);
  // a plain JPEG: decoded and resized by the image addon in one go (jpeg.ts), the same pixels as sharp's
  const head = jpegHeader(buf);
  if (head && head.width * head.height <= cfg.maxPixels) {
    const plan = planResize(head.width, head.height, cfg, rnd);
    const resized = await decodeJpegResize(buf, head, plan.box, plan.width, plan.height, cfg.resample, target(plan));
    // null: libjpeg saw an error or a warning; sharp decodes the file and names the problem, with the same plan
    // (its augmentation already drawn) when the size agrees
    if (resized) return finish(resized, plan, cfg, rnd, into);
    const full = await decodeWhole(buf, file, cfg);
    const again = full.width === head.width && full.height === head.height ? plan : planResize(full.width, full.height, cfg, rnd);
    return finish(await resize(full.data, full.width, again.box, again.width, again.height, cfg.resample, target(again)), again, cfg, rnd, into);
  }
  const full = await decodeWhole(buf, file, cfg);
  const plan = planResize(full.width, full.height, cfg, rnd);
  return finish(await resize(full.data, full.width, plan.box, plan.width, plan.height, cfg.resample, target(plan)), plan, cfg, rnd, into);
}

/** The whole image at its own size, decoded by sharp (any format it reads) to 8-bit RGB. */
async function decodeWhole(buf: Buffer, file: string, cfg: ImageConfig): Promise<DecodedImage> {
  let full: { data: Buffer; info: { width: number; height: number; channels: number } };
  try {
    // The whole image at its own size (no JPEG shrink-on-load, which PIL does not do either), EXIF orientation
    // applied, the first frame of animations, sRGB at 8 bits, alpha dropped without premultiplying (as PIL's
    // convert('RGB')).
    full = await sharp(buf, { limitInputPixels: cfg.maxPixels, failOn: 'error', autoOrient: true, pages: 1 })
      .toColourspace('srgb').removeAlpha().raw({ depth: 'uchar' }).toBuffer({ resolveWithObject: true });
  } catch (e) {
    throw describeSharpError(e, file, cfg);
  }
  const { width, height, channels } = full.info;
  if (!width || !height || channels !== 3) throw new MmtrainError(`${file}: decoded to ${width}x${height}x${channels}, expected an RGB image`);
  return { data: new Uint8Array(full.data.buffer, full.data.byteOffset, full.data.length), width, height };
}

/** What to resize to what: the box of the source, the size it becomes, and the S x S square then cut from it. */
interface ResizePlan {
  box: Box;
  width: number;
  height: number;
  /** the centre crop's offsets into the resized image (0, 0 when it is already S x S) */
  cropLeft: number;
  cropTop: number;
}

/** The resize of a W0 x H0 image for `cfg`; draws the random crop's box from `rnd` when augmenting. */
function planResize(W0: number, H0: number, cfg: ImageConfig, rnd?: () => number): ResizePlan {
  const S = cfg.size;
  if (rnd && cfg.augment.randomResizedCrop) {
    // torchvision RandomResizedCrop: crop the box, then resize it to S x S
    const [left, top, width, height] = randomResizedCropBox(W0, H0, cfg.augment.randomResizedCrop, rnd);
    return { box: { left, top, width, height }, width: S, height: S, cropLeft: 0, cropTop: 0 };
  }
  // "exact": R x R; "shorter-side": torchvision Resize(R), the shorter side to R; then CenterCrop(S), whose
  // offsets are int(round((size_in - size_out) / 2)); R is resizeSize, the crop size S when unset
  const R = cfg.resizeSize ?? S;
  const [w, h] = cfg.resize === 'exact' ? [R, R] : shorterSideSize(W0, H0, R);
  return { box: { left: 0, top: 0, width: W0, height: H0 }, width: w, height: h, cropLeft: roundHalfEven((w - S) / 2), cropTop: roundHalfEven((h - S) / 2) };
}

/** The resized image cut to S x S (into `into` when given), then flipped and colour-jittered when augmenting. */
function finish(resized: Uint8Array, plan: ResizePlan, cfg: ImageConfig, rnd?: () => number, into?: Uint8Array): DecodedImage {
  const S = cfg.size;
  const out = plan.width === S && plan.height === S ? resized : crop(resized, plan.width, plan.cropLeft, plan.cropTop, S, into);
  const aug = cfg.augment;
  if (rnd && aug.horizontalFlip > 0 && rnd() < aug.horizontalFlip) flipHorizontal(out, S);
  if (rnd && aug.colorJitter) colorJitter(out, aug.colorJitter, rnd);
  return { data: out, width: S, height: S };
}

/** Python's round(): halves go to the even neighbour (round(0.5) = 0, round(1.5) = 2). */
export function roundHalfEven(x: number): number {
  const f = Math.floor(x);
  const d = x - f;
  if (d !== 0.5) return Math.round(x);
  return f % 2 === 0 ? f : f + 1;
}

/** The S x S square at (left, top) of a row-major RGB image `width` pixels wide (into `out` when given). */
function crop(px: Uint8Array, width: number, left: number, top: number, S: number, out: Uint8Array = new Uint8Array(S * S * 3)): Uint8Array {
  for (let y = 0; y < S; y++) out.set(px.subarray(((top + y) * width + left) * 3, ((top + y) * width + left + S) * 3), y * S * 3);
  return out;
}

/** Mirrors an S x S RGB image left to right, in place. */
function flipHorizontal(px: Uint8Array, S: number): void {
  for (let y = 0; y < S; y++) {
    for (let x = 0; x < S >> 1; x++) {
      const a = (y * S + x) * 3;
      const b = (y * S + S - 1 - x) * 3;
      for (let c = 0; c < 3; c++) {
        const t = px[a + c]!;
        px[a + c] = px[b + c]!;
        px[b + c] = t;
      }
    }
  }
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
