// The small `mmtrain_image` addon (native/image/): Pillow's resize (resample.cc) and, when it was built with them,
// JPEG decoding with libjpeg (jpeg.cc) and snappy decompression (snappy.cc). It needs no LibTorch, so the batch thread can load it. Loaded on first use; its inputs are
// checked by the TypeScript wrappers (resample.ts, jpeg.ts), not here.
import { createRequire } from 'node:module';
import { addonMissing, builtAddon } from '../addon-path.js';

export type ResizePathName = 'scalar' | 'sse2' | 'avx2';

export interface ImageAddon {
  resize(src: Uint8Array, srcWidth: number, left: number, top: number, width: number, height: number, outWidth: number, outHeight: number, filter: number, out?: Uint8Array): Promise<Uint8Array>;
  /**
   * the same resize with the loops named, synchronously: "scalar" (Pillow's own), what the SIMD passes ("sse2", "avx2")
   * must equal byte for byte (tests); throws for a path this build or CPU does not have
   */
  resizeWith(path: ResizePathName, src: Uint8Array, srcWidth: number, left: number, top: number, width: number, height: number, outWidth: number, outHeight: number, filter: number): Uint8Array;
  /** the paths this build and CPU run, resize's first (x86-64: "sse2", and "avx2" where the CPU has it) */
  resizePaths: ResizePathName[];
  /** present when the addon was built with libjpeg's headers */
  jpegHeader?(src: Uint8Array): { width: number; height: number } | null;
  decodeJpegResize?(src: Uint8Array, left: number, top: number, width: number, height: number, outWidth: number, outHeight: number, filter: number, out?: Uint8Array): Promise<Uint8Array | null>;
  /**
   * present when the addon was built with the snappy library's headers; throws on invalid data. Into `out`
   * (outputLength bytes) when given, else into a new Buffer.
   */
  snappyUncompress?(src: Uint8Array, outputLength: number, out?: Uint8Array): Uint8Array;
}

let addon: ImageAddon | undefined;

export function imageAddon(): ImageAddon {
  if (!addon) {
    const file = builtAddon('mmtrain_image');
    if (!file) throw new Error(addonMissing('mmtrain_image', 'It is built with the native addon.'));
    addon = createRequire(import.meta.url)(file) as ImageAddon;
  }
  return addon;
}
