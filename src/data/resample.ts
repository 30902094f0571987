// Antialiased bilinear resampling of 8-bit RGB, computed as Pillow's `Image.resize(size, BILINEAR)` computes it,
// so an mmtrain model sees the pixels torchvision's Resize and Hugging Face's image processors give the same file.
// The arithmetic is in the small `mmtrain_image` addon (native/image/resample.cc), which runs in libuv's thread
// pool beside sharp's decoding and needs no LibTorch, so the batch thread can load it. Inputs are checked here.
import { createRequire } from 'node:module';
import { builtAddon } from '../addon-path.js';

interface ImageAddon {
  resizeBilinear(src: Uint8Array, srcWidth: number, left: number, top: number, width: number, height: number, outWidth: number, outHeight: number): Promise<Uint8Array>;
}

let addon: ImageAddon | undefined;
function image(): ImageAddon {
  if (!addon) {
    const file = builtAddon('mmtrain_image');
    if (!file) throw new Error('mmtrain: the image addon build/Release/mmtrain_image.node was not found. Run `npm run build`.');
    addon = createRequire(import.meta.url)(file) as ImageAddon;
  }
  return addon;
}

export interface Box {
  left: number;
  top: number;
  width: number;
  height: number;
}

function check(src: Uint8Array, srcWidth: number, box: Box, outWidth: number, outHeight: number): void {
  const ints = [srcWidth, box.left, box.top, box.width, box.height, outWidth, outHeight];
  if (!ints.every((v) => Number.isInteger(v) && v >= 0 && v < 2 ** 31)) throw new RangeError(`resizeBilinear: expected non-negative integer sizes, received ${ints.join(', ')}`);
  if (!(box.width > 0 && box.height > 0 && outWidth > 0 && outHeight > 0)) throw new RangeError('resizeBilinear: sizes must be positive');
  const rows = srcWidth > 0 ? src.length / (srcWidth * 3) : 0;
  if (!Number.isInteger(rows) || box.left + box.width > srcWidth || box.top + box.height > rows) {
    throw new RangeError(`resizeBilinear: box ${box.left},${box.top} ${box.width}x${box.height} is outside the ${srcWidth}x${rows} RGB image`);
  }
}

/**
 * Resizes the box of an RGB uint8 image (row-major HWC, `srcWidth` pixels a row) to outWidth x outHeight, as
 * Pillow's `img.crop(box).resize((outWidth, outHeight), Image.BILINEAR)`; computed in libuv's thread pool.
 */
export function resizeBilinear(src: Uint8Array, srcWidth: number, box: Box, outWidth: number, outHeight: number): Promise<Uint8Array> {
  check(src, srcWidth, box, outWidth, outHeight);
  return image().resizeBilinear(src, srcWidth, box.left, box.top, box.width, box.height, outWidth, outHeight);
}
