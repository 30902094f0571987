// Collation: tokenized texts and decoded 8-bit images to the tensors of one batch, with dynamic padding. The one
// route from samples to a model's input, shared by the DataLoader (training, evaluation, prediction) and the
// HTTP server.
import { normalizeImages } from '../tensor/functional.js';
import { tidy } from '../tensor/scope.js';
import { hostToDevice } from '../tensor/device.js';
import type { Device } from '../tensor/dtype.js';
import { type Tensor, fromBuffer, tensor, zeros } from '../tensor/tensor.js';
import type { DecodedImage, ImageConfig } from './image.js';
import type { EncodedText } from './tokenizer.js';
import type { Sample } from './manifest.js';

/** Tensors of one batch. Made when the batch is taken, so a tidy() around the step frees them. */
export interface Batch {
  /** (B, T) int64 */
  inputIds: Tensor;
  /** (B, T) int64, 1 for real tokens */
  attentionMask: Tensor;
  /** (B, T) int64 */
  tokenTypeIds: Tensor;
  /** (B, 3, S, S) float32, normalised */
  pixelValues: Tensor;
  /** (B,) int64 */
  labels: Tensor;
  /** dataset indices of the samples */
  indices: number[];
  /** the samples themselves, in order (only with the loader's keepSamples) */
  samples?: Sample[];
}

export interface CollateOptions {
  /** the tokenizer's padding id */
  padId: number;
  /** "longest": pad to the batch's longest text; "max_length": always to maxLength */
  padding: 'longest' | 'max_length';
  maxLength: number;
  image: ImageConfig;
  device: Device;
}

/** One sample ready to batch: its tokens, its size x size RGB pixels, its label (-1 when unlabelled). */
export interface CollateItem {
  encoding: EncodedText;
  /** null in a text-only batch (every item's; pixelValues is then an empty tensor) */
  image: DecodedImage | null;
  label: number;
  /** the sample's index in its data set (Batch.indices) */
  index: number;
}

/** Items to a Batch: texts padded with padId (attention mask 0 there), uint8 pixels normalised in LibTorch. */
export function collate(items: CollateItem[], o: CollateOptions): Batch {
  const B = items.length;
  const T = o.padding === 'max_length' ? o.maxLength : Math.max(1, ...items.map((it) => it.encoding.ids.length));
  const ids = new Int32Array(B * T).fill(o.padId);
  const mask = new Int32Array(B * T);
  const types = new Int32Array(B * T);
  items.forEach(({ encoding: e }, b) => {
    for (let t = 0; t < e.ids.length; t++) {
      ids[b * T + t] = e.ids[t]!;
      mask[b * T + t] = 1;
      types[b * T + t] = e.tokenTypeIds[t]!;
    }
  });
  return {
    inputIds: hostToDevice(tensor(ids, { shape: [B, T], dtype: 'int64' }), o.device),
    attentionMask: hostToDevice(tensor(mask, { shape: [B, T], dtype: 'int64' }), o.device),
    tokenTypeIds: hostToDevice(tensor(types, { shape: [B, T], dtype: 'int64' }), o.device),
    pixelValues: textOnly(items) ? zeros([0], { device: o.device }) : imagesToTensor(items.map((it) => it.image!), o.image, o.device),
    labels: hostToDevice(tensor(new Int32Array(items.map((it) => it.label)), { dtype: 'int64' }), o.device),
    indices: items.map((it) => it.index),
  };
}

/** Whether a batch is text-only (every image null); a batch with some images missing is a bug, refused. */
function textOnly(items: CollateItem[]): boolean {
  const none = items.filter((it) => it.image === null).length;
  if (none > 0 && none < items.length) throw new Error(`collate: ${none} of ${items.length} items have no image; a batch is text-only (all null) or has every image`);
  return none > 0;
}

// The uint8 buffer of the largest batch so far, filled again by every batch (a smaller one uses its start). It is free
// once imagesToTensor returns: its tensor (a view, no copy) is freed inside, the normalised one is new memory (and to
// a GPU the pixels go through a pinned copy). A fresh 4.8 MB buffer per batch (32 at 224 px) was external memory to
// the main thread's collector, which with the images' own buffers ran a mark-compact every few batches (see
// givePixelsBack); one kept for the last batch's size only was made again after each epoch's short last batch, and
// the next epoch's first batch then faulted in fresh pages (7 ms against 2.3 ms for 32 at 224 px).
let spareBatch: Buffer | null = null;
function batchBuffer(n: number): Buffer {
  if (!spareBatch || spareBatch.length < n) spareBatch = Buffer.allocUnsafeSlow(n);
  return spareBatch.subarray(0, n);
}

/** uint8 HWC images -> (B, 3, S, S) float32, (x / 255 - mean) / std, computed in LibTorch on `device`. */
export function imagesToTensor(images: DecodedImage[], cfg: ImageConfig, device: Device = 'cpu'): Tensor {
  const S = cfg.size;
  const B = images.length;
  const n = S * S * 3;
  // not zeroed first (every byte is an image's): a zeroed 4.8 MB batch (32 at 224 px) was a memset per batch whenever
  // the allocator reused memory instead of mapping fresh pages
  const buf = batchBuffer(B * n);
  images.forEach((im, b) => {
    if (im.data.length !== n) throw new Error(`imagesToTensor: image ${b} has ${im.data.length} bytes, expected ${S} x ${S} x 3 = ${n}`);
    buf.set(im.data, b * n);
  });
  // no copy on the CPU: the batch buffer is ours; to a GPU the uint8 pixels travel (4x fewer bytes than float32)
  return tidy(() => normalizeImages(hostToDevice(fromBuffer(buf, [B, S, S, 3]), device), cfg.mean, cfg.std));
}

/** Frees the tensors of a batch (when it was not taken inside a tidy() scope). */
export function disposeBatch(b: Batch): void {
  for (const t of [b.inputIds, b.attentionMask, b.tokenTypeIds, b.pixelValues, b.labels]) t.dispose();
}
