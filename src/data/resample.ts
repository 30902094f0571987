// Antialiased bilinear and bicubic resampling of 8-bit RGB, computed as Pillow's `Image.resize(size, BILINEAR)`
// and `BICUBIC` compute them, so an mmtrain model sees the pixels torchvision's Resize and Hugging Face's image
// processors give the same file.
// The arithmetic is in the small `mmtrain_image` addon (native/image/resample.cc), which runs in libuv's thread
// pool beside sharp's decoding and needs no LibTorch, so the batch thread can load it. Inputs are checked here.
import { imageAddon } from './image-addon.js';

/** The resampling filters, by the addon's codes (PIL's: BILINEAR 2, BICUBIC 3). */
export const RESAMPLE_FILTERS = ['bilinear', 'bicubic'] as const;
export type ResampleFilter = (typeof RESAMPLE_FILTERS)[number];

export interface Box {
  left: number;
  top: number;
  width: number;
  height: number;
}

function checkBox(src: Uint8Array, srcWidth: number, box: Box, outWidth: number, outHeight: number): void {
  const ints = [srcWidth, box.left, box.top, box.width, box.height, outWidth, outHeight];
  if (!ints.every((v) => Number.isInteger(v) && v >= 0 && v < 2 ** 31)) throw new RangeError(`resize: expected non-negative integer sizes, received ${ints.join(', ')}`);
  if (!(box.width > 0 && box.height > 0 && outWidth > 0 && outHeight > 0)) throw new RangeError('resize: sizes must be positive');
  const rows = srcWidth > 0 ? src.length / (srcWidth * 3) : 0;
  if (!Number.isInteger(rows) || box.left + box.width > srcWidth || box.top + box.height > rows) {
    throw new RangeError(`resize: box ${box.left},${box.top} ${box.width}x${box.height} is outside the ${srcWidth}x${rows} RGB image`);
  }
}

/**
 * Resizes the box of an RGB uint8 image (row-major HWC, `srcWidth` pixels a row) to outWidth x outHeight, as
 * Pillow's `img.crop(box).resize((outWidth, outHeight), Image.BILINEAR or BICUBIC)`; computed in libuv's thread pool. Written
 * into `into` when given (outWidth x outHeight x 3 bytes: a buffer used before), else into a new one.
 */
export function resize(src: Uint8Array, srcWidth: number, box: Box, outWidth: number, outHeight: number, filter: ResampleFilter = 'bilinear', into?: Uint8Array): Promise<Uint8Array> {
  checkBox(src, srcWidth, box, outWidth, outHeight);
  checkInto('resize', into, outWidth, outHeight);
  return imageAddon().resize(src, srcWidth, box.left, box.top, box.width, box.height, outWidth, outHeight, filterCode(filter), into);
}

/**
 * An output array given to resize or decodeJpegResize (written there, and answered): outWidth x outHeight x 3 bytes,
 * which no one else reads or writes until the promise settles.
 */
export function checkInto(fn: string, into: Uint8Array | undefined, outWidth: number, outHeight: number): void {
  if (into !== undefined && (!(into instanceof Uint8Array) || into.length !== outWidth * outHeight * 3)) {
    throw new RangeError(`${fn}: into must be a Uint8Array of ${outWidth} x ${outHeight} x 3 = ${outWidth * outHeight * 3} bytes, received ${into instanceof Uint8Array ? `${into.length} bytes` : typeof into}`);
  }
}

/** The addon's code of a filter; a RangeError names the ones there are. */
export function filterCode(filter: ResampleFilter): number {
  const code = RESAMPLE_FILTERS.indexOf(filter);
  if (code < 0) throw new RangeError(`resize: filter ${JSON.stringify(filter)}, expected one of ${RESAMPLE_FILTERS.join(', ')}`);
  return code;
}
