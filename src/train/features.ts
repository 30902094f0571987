// Frozen-encoder feature cache: when both encoders are frozen and augmentation is off, their outputs do not change
// between epochs, so they are computed once (eval mode, no dropout) and later epochs train only fusion + head.
import { MmtrainError } from '../errors.js';
import type { DataLoader } from '../data/loader.js';
import { disposeBatch } from '../data/collate.js';
import type { FusionClassifier, FusionFeatures } from '../models/fusion.js';
import { noGrad } from '../tensor/modes.js';
import { tidy } from '../tensor/scope.js';
import { hostToDevice } from '../tensor/device.js';
import type { Device } from '../tensor/dtype.js';
import { Tensor, tensor } from '../tensor/tensor.js';

export interface FeatureBatch extends FusionFeatures {
  labels: Tensor;
  indices: number[];
}

export class FeatureStore {
  readonly text: Float32Array[] = [];
  readonly textLen: number[] = [];
  readonly image: Float32Array[] = [];
  readonly pooled: (Float32Array | null)[] = [];
  C = 0;
  Ci = 0;
  N = 0;
  bytes = 0;

  private constructor(readonly labels: number[]) {}

  /** Runs the encoders once over every sample of `loader` (its order does not matter). */
  static async build(model: FusionClassifier, loader: DataLoader, maxBytes = 8 * 2 ** 30): Promise<FeatureStore> {
    const store = new FeatureStore(loader.samples.map((s) => s.label));
    const wasTraining = model.training;
    model.text_encoder.eval();
    model.image_encoder.eval();
    for await (const b of loader.epoch(0)) {
      noGrad(() => tidy(() => {
        const t = model.text_encoder.forward(b.inputIds, b.attentionMask, b.tokenTypeIds).lastHiddenState.contiguous(); // (B, T, C)
        const img = model.image_encoder.forward(b.pixelValues);
        const ih = img.lastHiddenState.contiguous(); // (B, N, Ci)
        const [, T, C] = t.shape as [number, number, number];
        const [, N, Ci] = ih.shape as [number, number, number];
        Object.assign(store, { C, Ci, N });
        const tf = t.toFloat32Array();
        const imf = ih.toFloat32Array();
        const pf = img.poolerOutput ? img.poolerOutput.toFloat32Array() : null;
        const lens = b.attentionMask.sum(1).toNumbers();
        b.indices.forEach((ix, k) => {
          const len = lens[k]!;
          store.text[ix] = tf.slice(k * T * C, k * T * C + len * C);
          store.textLen[ix] = len;
          store.image[ix] = imf.slice(k * N * Ci, (k + 1) * N * Ci);
          store.pooled[ix] = pf ? pf.slice(k * Ci, (k + 1) * Ci) : null;
          store.bytes += 4 * (len * C + N * Ci + (pf ? Ci : 0));
        });
        disposeBatch(b);
      }));
      if (store.bytes > maxBytes) {
        throw new MmtrainError(`the frozen-encoder feature cache would exceed ${(maxBytes / 2 ** 30).toFixed(0)} GiB; set train.featureCache: false`);
      }
    }
    if (wasTraining) model.train();
    model.text_encoder.eval();
    model.image_encoder.eval();
    return store;
  }

  /** Tensors for a batch of dataset indices (texts padded to the longest), on `device`. */
  batch(indices: number[], device: Device = 'cpu'): FeatureBatch {
    const on = (t: Tensor): Tensor => hostToDevice(t, device);
    const B = indices.length;
    const T = Math.max(...indices.map((i) => this.textLen[i]!));
    const { C, Ci, N } = this;
    const text = new Float32Array(B * T * C);
    const mask = new Int32Array(B * T);
    const image = new Float32Array(B * N * Ci);
    const pooled = this.pooled[indices[0]!] ? new Float32Array(B * Ci) : null;
    indices.forEach((ix, k) => {
      text.set(this.text[ix]!, k * T * C);
      mask.fill(1, k * T, k * T + this.textLen[ix]!);
      image.set(this.image[ix]!, k * N * Ci);
      if (pooled) pooled.set(this.pooled[ix]!, k * Ci);
    });
    return {
      textHidden: on(tensor(text, { shape: [B, T, C] })),
      attentionMask: on(tensor(mask, { shape: [B, T], dtype: 'int64' })),
      imageHidden: on(tensor(image, { shape: [B, N, Ci] })),
      imagePooled: pooled ? on(tensor(pooled, { shape: [B, Ci] })) : null,
      labels: on(tensor(new Int32Array(indices.map((i) => this.labels[i]!)), { dtype: 'int64' })),
      indices,
    };
  }
}

export function disposeFeatureBatch(b: FeatureBatch): void {
  for (const t of [b.textHidden, b.attentionMask, b.imageHidden, b.imagePooled, b.labels]) t?.dispose();
}
