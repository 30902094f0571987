// Antialiased bilinear resampling of 8-bit RGB, computed as Pillow's `Image.resize(size, BILINEAR)` computes it
// (Pillow's libImaging/Resample.c: a triangle filter widened by the scale factor, coefficients normalised and
// rounded to 22-bit fixed point, a horizontal pass then a vertical pass, each rounded to 8 bits). torchvision's
// Resize on PIL images and Hugging Face's image processors resize this way, so an mmtrain model sees the pixels a
// PyTorch pipeline gives the same file. Written here because no maintained JS image library reproduces it: libvips
// (sharp) pre-shrinks with a box filter and differs by up to 17 grey levels on striped or text images.

/** The filter's fixed-point precision for 8-bit images (Pillow: 32 bits - 8 bits of data - 2 bits of headroom). */
const PRECISION_BITS = 32 - 8 - 2;
const ROUND = 1 << (PRECISION_BITS - 1);

/** Pillow's bilinear (triangle) filter, support 1. */
function triangle(x: number): number {
  const a = x < 0 ? -x : x;
  return a < 1 ? 1 - a : 0;
}

interface Coefficients {
  /** first input index of each output pixel */
  start: Int32Array;
  /** number of taps of each output pixel */
  count: Int32Array;
  /** taps, `ksize` per output pixel, 22-bit fixed point */
  weights: Int32Array;
  ksize: number;
}

/** The taps mapping input [in0, in1) (fractional bounds allowed) onto `outSize` pixels, as Pillow's precompute_coeffs. */
function coefficients(inSize: number, in0: number, in1: number, outSize: number): Coefficients {
  const scale = (in1 - in0) / outSize;
  const filterScale = Math.max(scale, 1);
  const support = 1 * filterScale;
  const ksize = Math.ceil(support) * 2 + 1;
  const start = new Int32Array(outSize);
  const count = new Int32Array(outSize);
  const weights = new Int32Array(outSize * ksize);
  const k = new Float64Array(ksize);
  for (let xx = 0; xx < outSize; xx++) {
    const center = in0 + (xx + 0.5) * scale;
    // C's (int) truncates toward zero
    const xmin = Math.max(Math.trunc(center - support + 0.5), 0);
    const xmax = Math.min(Math.trunc(center + support + 0.5), inSize) - xmin;
    let ww = 0;
    for (let x = 0; x < xmax; x++) {
      const w = triangle((x + xmin - center + 0.5) / filterScale);
      k[x] = w;
      ww += w;
    }
    for (let x = 0; x < ksize; x++) {
      const w = x < xmax && ww !== 0 ? k[x]! / ww : 0;
      // Pillow's normalize_coeffs_8bpc: round half away from zero into fixed point
      weights[xx * ksize + x] = w < 0 ? Math.trunc(-0.5 + w * (1 << PRECISION_BITS)) : Math.trunc(0.5 + w * (1 << PRECISION_BITS));
    }
    start[xx] = xmin;
    count[xx] = xmax;
  }
  return { start, count, weights, ksize };
}

function clip8(v: number): number {
  const s = v >> PRECISION_BITS;
  return s < 0 ? 0 : s > 255 ? 255 : s;
}

/**
 * Resizes the box (left, top, width, height) of an RGB uint8 image (row-major HWC, `srcWidth` pixels a row) to
 * outWidth x outHeight, as Pillow's `img.crop(box).resize((outWidth, outHeight), Image.BILINEAR)`.
 */
export function resizeBilinear(
  src: Uint8Array, srcWidth: number, box: { left: number; top: number; width: number; height: number }, outWidth: number, outHeight: number,
): Uint8Array {
  const { left, top, width, height } = box;
  // horizontal pass over the box's rows, into width outWidth (skipped when the width is unchanged, as in Pillow)
  let mid: Uint8Array;
  if (outWidth === width) {
    mid = new Uint8Array(width * height * 3);
    for (let y = 0; y < height; y++) mid.set(src.subarray(((top + y) * srcWidth + left) * 3, ((top + y) * srcWidth + left + width) * 3), y * width * 3);
  } else {
    const h = coefficients(width, 0, width, outWidth);
    mid = new Uint8Array(outWidth * height * 3);
    for (let y = 0; y < height; y++) {
      const row = ((top + y) * srcWidth + left) * 3;
      for (let xx = 0; xx < outWidth; xx++) {
        const k0 = xx * h.ksize;
        const n = h.count[xx]!;
        let p = row + h.start[xx]! * 3;
        let r = ROUND;
        let g = ROUND;
        let b = ROUND;
        for (let x = 0; x < n; x++, p += 3) {
          const w = h.weights[k0 + x]!;
          r += src[p]! * w;
          g += src[p + 1]! * w;
          b += src[p + 2]! * w;
        }
        const o = (y * outWidth + xx) * 3;
        mid[o] = clip8(r);
        mid[o + 1] = clip8(g);
        mid[o + 2] = clip8(b);
      }
    }
  }
  if (outHeight === height) return mid;
  // vertical pass
  const v = coefficients(height, 0, height, outHeight);
  const out = new Uint8Array(outWidth * outHeight * 3);
  const stride = outWidth * 3;
  for (let yy = 0; yy < outHeight; yy++) {
    const k0 = yy * v.ksize;
    const n = v.count[yy]!;
    const y0 = v.start[yy]!;
    for (let c = 0; c < stride; c++) {
      let s = ROUND;
      for (let y = 0, p = y0 * stride + c; y < n; y++, p += stride) s += mid[p]! * v.weights[k0 + y]!;
      out[yy * stride + c] = clip8(s);
    }
  }
  return out;
}
