// An ONNX export run by ONNX Runtime Web (its WebAssembly build, in Node, as a browser runs it) against the
// checkpoint it came from: the same batches from mmtrain's own pipeline through both, the logits compared, and on
// a labelled manifest each side's accuracy and their agreement.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as ort from 'onnxruntime-web';
import { DataLoader } from '../data/loader.js';
import { type Batch, disposeBatch } from '../data/collate.js';
import { readManifest } from '../data/manifest.js';
import { noGrad } from '../tensor/modes.js';
import { tidy } from '../tensor/scope.js';
import type { Tensor } from '../tensor/tensor.js';
import type { Predictor } from '../train/inference.js';

/** What exportOnnx wrote into mmtrain.json about the graph. */
interface OnnxInfo {
  model: string;
  externalData: string | null;
  inputs: string[];
  precision: string;
}

export interface OnnxModel {
  session: ort.InferenceSession;
  inputs: string[];
  precision: string;
  run(b: Batch): Promise<Float32Array>;
  release(): Promise<void>;
}

/** Opens `dir/model.onnx` (and its external data) with ONNX Runtime Web's WebAssembly backend. */
export async function openOnnx(dir: string): Promise<OnnxModel> {
  const info = (JSON.parse(readFileSync(join(dir, 'mmtrain.json'), 'utf8')) as { onnx: OnnxInfo }).onnx;
  ort.env.logLevel = 'error';
  const session = await ort.InferenceSession.create(readFileSync(join(dir, info.model)), {
    executionProviders: ['wasm'],
    ...(info.externalData ? { externalData: [{ path: info.externalData, data: readFileSync(join(dir, info.externalData)) }] } : {}),
  });
  const int64 = (t: Tensor) => new ort.Tensor('int64', t.toArray() as BigInt64Array, t.shape);
  return {
    session, inputs: info.inputs, precision: info.precision,
    async run(b: Batch): Promise<Float32Array> {
      const feeds: Record<string, ort.Tensor> = {
        input_ids: int64(b.inputIds), attention_mask: int64(b.attentionMask),
        pixel_values: new ort.Tensor('float32', b.pixelValues.toFloat32Array(), b.pixelValues.shape),
      };
      if (info.inputs.includes('token_type_ids')) feeds.token_type_ids = int64(b.tokenTypeIds);
      const out = await session.run(feeds);
      return out.logits!.data as Float32Array;
    },
    release: () => session.release(),
  };
}

export interface OnnxComparison {
  samples: number;
  /** the largest |logit difference| between mmtrain (fp32) and the ONNX model */
  maxAbsDiff: number;
  /** the largest |probability difference| */
  maxProbDiff: number;
  /** share of samples whose predicted label is the same */
  agreement: number;
  /** accuracies on the manifest's labels (null without labels) */
  accuracy: { mmtrain: number; onnx: number } | null;
}

/**
 * The ONNX model in `dir` against the checkpoint's predictor on the samples of `manifest` (labels optional),
 * through the same loader (decoding, tokenization, collation) in fp32.
 */
export async function compareOnnx(p: Predictor, dir: string, manifest: string, opts: { batchSize?: number; limit?: number } = {}): Promise<OnnxComparison> {
  const m = readManifest(manifest, { labels: p.info.labels, label: 'optional' });
  const samples = opts.limit ? m.samples.slice(0, opts.limit) : m.samples;
  const onnx = await openOnnx(dir);
  const loader = new DataLoader(samples, p.tokenizer, p.image, { batchSize: opts.batchSize ?? 16, shuffle: false, maxLength: p.info.maxLength, padding: p.info.padding ?? 'longest' });
  const k = p.info.labels.length;
  let maxAbsDiff = 0;
  let maxProbDiff = 0;
  let same = 0;
  const right = { mmtrain: 0, onnx: 0 };
  let labelled = 0;
  p.model.eval();
  try {
    for await (const b of loader.epoch(0)) {
      const ours = noGrad(() => tidy(() => p.model.forward(b).logits.float().toFloat32Array()));
      const theirs = await onnx.run(b);
      const labels = b.labels.toNumbers();
      disposeBatch(b);
      for (let i = 0; i < labels.length; i++) {
        const a = ours.subarray(i * k, (i + 1) * k);
        const o = theirs.subarray(i * k, (i + 1) * k);
        const [pa, po] = [softmax(a), softmax(o)];
        for (let j = 0; j < k; j++) {
          maxAbsDiff = Math.max(maxAbsDiff, Math.abs(a[j]! - o[j]!));
          maxProbDiff = Math.max(maxProbDiff, Math.abs(pa[j]! - po[j]!));
        }
        const [ia, io] = [argmax(a), argmax(o)];
        if (ia === io) same++;
        if (labels[i]! >= 0) {
          labelled++;
          if (ia === labels[i]) right.mmtrain++;
          if (io === labels[i]) right.onnx++;
        }
      }
    }
  } finally {
    await onnx.release();
  }
  const n = samples.length;
  return {
    samples: n, maxAbsDiff, maxProbDiff, agreement: same / n,
    accuracy: labelled ? { mmtrain: right.mmtrain / labelled, onnx: right.onnx / labelled } : null,
  };
}

function softmax(x: Float32Array): number[] {
  const m = Math.max(...x);
  const e = Array.from(x, (v) => Math.exp(v - m));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / s);
}

function argmax(x: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < x.length; i++) if (x[i]! > x[best]!) best = i;
  return best;
}
