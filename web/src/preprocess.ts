// The browser's half of mmtrain's preprocessing, so that the page feeds the model what `mmtrain predict` does:
// the image decoded to 8-bit RGB (EXIF orientation applied, alpha dropped), resized as Pillow's BILINEAR or BICUBIC
// resize (the algorithm of native/image/resample.cc, which the Node pipeline runs), the shorter side to `size` then the
// centre crop with Python's rounding (or an exact resize), then (x / 255 - mean) / std as float32 (1, 3, S, S);
// the text truncated to maxLength tokens with [SEP] kept last, as TextTokenizer.encode does.

export interface ImagePreprocessing {
  size: number;
  resize: 'shorter-side' | 'exact';
  /** absent in exports from before bicubic existed: bilinear */
  resample?: 'bilinear' | 'bicubic';
  /** the resize's target before the centre crop (absent: size) */
  resizeSize?: number;
  mean: [number, number, number];
  std: [number, number, number];
}

/** Decodes image bytes to row-major 8-bit RGB. */
export async function decodeRgb(bytes: Blob): Promise<{ data: Uint8Array; width: number; height: number }> {
  const bmp = await createImageBitmap(bytes, { imageOrientation: 'from-image', premultiplyAlpha: 'none', colorSpaceConversion: 'none' });
  const canvas = new OffscreenCanvas(bmp.width, bmp.height);
  const ctx = canvas.getContext('2d', { willReadFrequently: true })!;
  ctx.drawImage(bmp, 0, 0);
  const rgba = ctx.getImageData(0, 0, bmp.width, bmp.height).data;
  const rgb = new Uint8Array(bmp.width * bmp.height * 3);
  for (let i = 0, j = 0; i < rgba.length; i += 4, j += 3) {
    rgb[j] = rgba[i]!;
    rgb[j + 1] = rgba[i + 1]!;
    rgb[j + 2] = rgba[i + 2]!;
  }
  bmp.close();
  return { data: rgb, width: canvas.width, height: canvas.height };
}

const PRECISION_BITS = 32 - 8 - 2;

/** Pillow's filters: the triangle (BILINEAR, support 1) and Keys' cubic with a = -0.5 (BICUBIC, support 2). */
const FILTERS = {
  bilinear: { support: 1, fn: (x: number) => (Math.abs(x) < 1 ? 1 - Math.abs(x) : 0) },
  bicubic: {
    support: 2,
    fn: (x0: number) => {
      const a = -0.5;
      const x = Math.abs(x0);
      if (x < 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
      if (x < 2) return (((x - 5) * x + 8) * x - 4) * a;
      return 0;
    },
  },
};

/** Pillow's precompute_coeffs + normalize_coeffs_8bpc: the filter widened by the scale, 22-bit fixed point. */
function coefficients(inSize: number, outSize: number, filter: (typeof FILTERS)['bilinear']) {
  const scale = inSize / outSize;
  const filterScale = Math.max(scale, 1);
  const support = filter.support * filterScale;
  const ksize = Math.ceil(support) * 2 + 1;
  const start = new Int32Array(outSize);
  const count = new Int32Array(outSize);
  const weights = new Int32Array(outSize * ksize);
  const k = new Float64Array(ksize);
  for (let xx = 0; xx < outSize; xx++) {
    const center = (xx + 0.5) * scale;
    const xmin = Math.max(Math.trunc(center - support + 0.5), 0);
    const xmax = Math.min(Math.trunc(center + support + 0.5), inSize) - xmin;
    let ww = 0;
    for (let x = 0; x < xmax; x++) {
      k[x] = filter.fn((x + xmin - center + 0.5) / filterScale);
      ww += k[x]!;
    }
    for (let x = 0; x < ksize; x++) {
      const w = x < xmax && ww !== 0 ? k[x]! / ww : 0;
      weights[xx * ksize + x] = w < 0 ? Math.trunc(-0.5 + w * (1 << PRECISION_BITS)) : Math.trunc(0.5 + w * (1 << PRECISION_BITS));
    }
    start[xx] = xmin;
    count[xx] = xmax;
  }
  return { start, count, weights, ksize };
}

/** (v >> 22) clipped to 0..255; v stays within 32-bit range, as in Pillow. */
function clip8(v: number): number {
  const s = v >> PRECISION_BITS;
  return s < 0 ? 0 : s > 255 ? 255 : s;
}

/** Pillow's img.crop((left, top, left + width, top + height)).resize((outW, outH), BILINEAR or BICUBIC) of RGB pixels. */
export function resize(src: Uint8Array, srcWidth: number, left: number, top: number, width: number, height: number, outW: number, outH: number, resample: 'bilinear' | 'bicubic' = 'bilinear'): Uint8Array {
  const filter = FILTERS[resample];
  const round = 1 << (PRECISION_BITS - 1);
  let mid: Uint8Array;
  if (outW === width) {
    mid = new Uint8Array(width * height * 3);
    for (let y = 0; y < height; y++) mid.set(src.subarray(((top + y) * srcWidth + left) * 3, ((top + y) * srcWidth + left + width) * 3), y * width * 3);
  } else {
    const h = coefficients(width, outW, filter);
    mid = new Uint8Array(outW * height * 3);
    for (let y = 0; y < height; y++) {
      const row = ((top + y) * srcWidth + left) * 3;
      for (let xx = 0; xx < outW; xx++) {
        let r = round, g = round, b = round;
        let p = row + h.start[xx]! * 3;
        for (let x = 0; x < h.count[xx]!; x++, p += 3) {
          const w = h.weights[xx * h.ksize + x]!;
          r += src[p]! * w;
          g += src[p + 1]! * w;
          b += src[p + 2]! * w;
        }
        const o = (y * outW + xx) * 3;
        mid[o] = clip8(r);
        mid[o + 1] = clip8(g);
        mid[o + 2] = clip8(b);
      }
    }
  }
  if (outH === height) return mid;
  const v = coefficients(height, outH, filter);
  const stride = outW * 3;
  const out = new Uint8Array(outH * stride);
  for (let yy = 0; yy < outH; yy++) {
    for (let c = 0; c < stride; c++) {
      let acc = round;
      for (let y = 0; y < v.count[yy]!; y++) acc += mid[(v.start[yy]! + y) * stride + c]! * v.weights[yy * v.ksize + y]!;
      out[yy * stride + c] = clip8(acc);
    }
  }
  return out;
}

/** Python's round(): halves to the even neighbour. */
function roundHalfEven(x: number): number {
  const f = Math.floor(x);
  const d = x - f;
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

/** size x size RGB pixels, as the Node pipeline's decodeImage (without augmentation). */
export function resizeForModel(img: { data: Uint8Array; width: number; height: number }, p: ImagePreprocessing): Uint8Array {
  const S = p.size;
  const { data, width: W, height: H } = img;
  const filter = p.resample ?? 'bilinear';
  // "exact": R x R; "shorter-side": torchvision's Resize(R); then CenterCrop(S) (R: resizeSize, else S)
  const R = p.resizeSize ?? S;
  const [w, h] = p.resize === 'exact' ? [R, R] : W <= H ? [R, Math.floor((R * H) / W)] : [Math.floor((R * W) / H), R];
  const resized = resize(data, W, 0, 0, W, H, w, h, filter);
  if (w === S && h === S) return resized;
  const left = roundHalfEven((w - S) / 2);
  const top = roundHalfEven((h - S) / 2);
  const out = new Uint8Array(S * S * 3);
  for (let y = 0; y < S; y++) out.set(resized.subarray(((top + y) * w + left) * 3, ((top + y) * w + left + S) * 3), y * S * 3);
  return out;
}

/**
 * (1, 3, S, S) float32 (x / 255 - mean) / std, computed as the Node pipeline's LibTorch kernel does (ops_nn.cc
 * normalizeImages): x * float32(1 / (255 std)) + float32(-mean / std), each step rounded to float32.
 */
export function normalize(rgb: Uint8Array, p: ImagePreprocessing): Float32Array {
  const S = p.size;
  const out = new Float32Array(3 * S * S);
  const f = Math.fround;
  for (let c = 0; c < 3; c++) {
    const scale = f(1 / (255 * p.std[c]!));
    const bias = f(-p.mean[c]! / p.std[c]!);
    for (let i = 0; i < S * S; i++) out[c * S * S + i] = f(f(rgb[i * 3 + c]! * scale) + bias);
  }
  return out;
}

// Copied from TextTokenizer.encode (src/data/tokenizer.ts), single text: [CLS] + the first maxLength - 2 tokens + [SEP]
/** Token ids cut to maxLength, the last kept one being the final [SEP]. */
export function truncate(ids: number[], maxLength: number): number[] {
  return ids.length > maxLength ? [...ids.slice(0, maxLength - 1), ids[ids.length - 1]!] : ids;
}
