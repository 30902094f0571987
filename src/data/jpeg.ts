// JPEGs decoded by the image addon with libjpeg (native/image/jpeg.cc) and resized in the same trip to libuv's
// thread pool: the same pixels as sharp's decoding (the same library and settings) at a fraction of its overhead on
// small images. Only plain JPEGs take this path (grey or YCbCr, no ICC profile, EXIF orientation 1); for any other
// file, and for any libjpeg error or warning, these answer null and image.ts decodes with sharp.
// MMTRAIN_JPEG_DECODER=sharp turns the path off (every image through sharp), for comparison.
import { imageAddon } from './image-addon.js';
import { type Box, type ResampleFilter, checkInto, filterCode } from './resample.js';

const enabled = process.env.MMTRAIN_JPEG_DECODER !== 'sharp';

/** Whether this build decodes JPEGs itself (it was compiled with libjpeg's headers, and the path is not turned off). */
export function libjpegAvailable(): boolean {
  return enabled && typeof imageAddon().jpegHeader === 'function';
}

/** The size of a plain JPEG this path decodes, from its markers alone; null for anything it leaves to sharp. */
export function jpegHeader(buf: Uint8Array): { width: number; height: number } | null {
  if (!enabled || buf.length < 4 || buf[0] !== 0xff || buf[1] !== 0xd8 || buf[2] !== 0xff) return null;
  const a = imageAddon();
  return a.jpegHeader ? a.jpegHeader(buf) : null;
}

/**
 * Decodes a JPEG that jpegHeader accepted (`width` x `height`) and resizes the box to outWidth x outHeight as
 * resize() does (into `into` when given, as resize()); null when libjpeg reports an error or a warning (sharp then
 * decodes it, and names the problem).
 */
export function decodeJpegResize(buf: Uint8Array, size: { width: number; height: number }, box: Box, outWidth: number, outHeight: number, filter: ResampleFilter, into?: Uint8Array): Promise<Uint8Array | null> {
  const ints = [box.left, box.top, box.width, box.height, outWidth, outHeight];
  if (!ints.every((v) => Number.isInteger(v) && v >= 0 && v < 2 ** 31) || box.width < 1 || box.height < 1 || outWidth < 1 || outHeight < 1) {
    throw new RangeError(`decodeJpegResize: expected positive integer sizes, received ${ints.join(', ')}`);
  }
  if (box.left + box.width > size.width || box.top + box.height > size.height) {
    throw new RangeError(`decodeJpegResize: box ${box.left},${box.top} ${box.width}x${box.height} is outside the ${size.width}x${size.height} image`);
  }
  checkInto('decodeJpegResize', into, outWidth, outHeight);
  return imageAddon().decodeJpegResize!(buf, box.left, box.top, box.width, box.height, outWidth, outHeight, filterCode(filter), into);
}
