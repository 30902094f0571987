// The demo: trains a small image-text matching classifier end to end on the tensor core, with no download.
// Images are 16x16 RGB with a coloured square on the left or right; captions say a colour and a side; the label
// says whether the caption matches the image. The model reads both: patch embedding (Conv2d) for the image,
// token embedding for the text, cross-attention from text tokens to image patches, pooled, MLP head.
import { AdamW, F, Tensor, cat, clipGradNorm, manualSeed, nn, noGrad, tensor, tidy, zeros } from '../index.js';

const VOCAB = ['[PAD]', 'a', 'red', 'green', 'blue', 'square', 'on', 'the', 'left', 'right'];
const COLORS = [[1, 0, 0], [0, 1, 0], [0, 0, 1]] as const;
const T = 7; // longest caption: "a red square on the left" plus one optional "the"/"a" drop

export interface Batch {
  images: Tensor; // (B, 3, 16, 16)
  ids: Tensor; // (B, T) int64
  padding: Tensor; // (B, T) bool, true at padding
  labels: Tensor; // (B,) int64
}

/** A seeded batch of synthetic image-caption pairs; half the captions match. */
export function syntheticBatch(B: number, rnd: () => number): Batch {
  const img = new Float32Array(B * 3 * 16 * 16);
  const ids = new Int32Array(B * T);
  const pad = new Uint8Array(B * T);
  const labels = new Int32Array(B);
  for (let b = 0; b < B; b++) {
    const color = Math.floor(rnd() * 3);
    const side = rnd() < 0.5 ? 0 : 1;
    const x0 = side * 8 + Math.floor(rnd() * 3);
    const y0 = Math.floor(rnd() * 10);
    for (let c = 0; c < 3; c++) {
      for (let y = 0; y < 16; y++) {
        for (let x = 0; x < 16; x++) {
          const inside = x >= x0 && x < x0 + 5 && y >= y0 && y < y0 + 5;
          img[((b * 3 + c) * 16 + y) * 16 + x] = (inside ? COLORS[color]![c]! : 0.2) + (rnd() - 0.5) * 0.2;
        }
      }
    }
    const match = rnd() < 0.5;
    let capColor = color;
    let capSide = side;
    if (!match) {
      if (rnd() < 0.5) capColor = (color + 1 + Math.floor(rnd() * 2)) % 3;
      else capSide = 1 - side;
    }
    const words = ['a', ['red', 'green', 'blue'][capColor]!, 'square', 'on', 'the', capSide ? 'right' : 'left'];
    if (rnd() < 0.3) words.splice(4, 1); // "on left": shorter captions exercise padding
    words.forEach((w, i) => (ids[b * T + i] = VOCAB.indexOf(w)));
    for (let i = words.length; i < T; i++) pad[b * T + i] = 1;
    labels[b] = match ? 1 : 0;
  }
  return {
    images: tensor(img, { shape: [B, 3, 16, 16] }),
    ids: tensor(ids, { shape: [B, T], dtype: 'int64' }),
    padding: tensor(pad, { shape: [B, T], dtype: 'bool' }),
    labels: tensor(labels, { dtype: 'int64' }),
  };
}

export class DemoMatcher extends nn.Module {
  readonly patch: nn.Conv2d;
  readonly imagePos: Tensor;
  readonly embed: nn.Embedding;
  readonly textPos: Tensor;
  readonly crossAttention: nn.MultiheadAttention;
  readonly norm: nn.LayerNorm;
  readonly head: nn.Sequential;
  constructor(readonly C = 32) {
    super();
    this.patch = this.registerModule('patch', new nn.Conv2d(3, C, 4, { stride: 4 }));
    this.imagePos = this.registerParameter('image_pos', zeros([1, 16, C]).normal_(0, 0.02));
    this.embed = this.registerModule('embed', new nn.Embedding(VOCAB.length, C, 0));
    this.textPos = this.registerParameter('text_pos', zeros([1, T, C]).normal_(0, 0.02));
    this.crossAttention = this.registerModule('cross_attention', new nn.MultiheadAttention(C, 2, { batchFirst: true }));
    this.norm = this.registerModule('norm', new nn.LayerNorm(C));
    this.head = this.registerModule('head', new nn.Sequential(new nn.Linear(2 * C, 32), new nn.ReLU(), new nn.Linear(32, 2)));
  }
  forward(b: Batch): Tensor {
    const B = b.images.size(0);
    const img = this.patch.forward(b.images).flatten(2).transpose(1, 2).add(this.imagePos); // (B, C, 4, 4) -> (B, 16, C)
    const txt = this.embed.forward(b.ids).add(this.textPos); // (B, T, C)
    const att = this.crossAttention.forward(txt, img, img, { needWeights: false }).output;
    const fused = this.norm.forward(txt.add(att)); // (B, T, C)
    const keepMask = b.padding.logicalNot().float().unsqueeze(-1); // (B, T) -> (B, T, 1)
    const textVec = fused.mul(keepMask).sum(1).div(keepMask.sum(1)); // masked mean over real tokens
    const imageVec = img.mean(1);
    return this.head.forward(cat([textVec, imageVec], 1).view(B, 2 * this.C));
  }
}

function mulberry32(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface DemoResult {
  losses: number[];
  accuracy: number;
  stepsPerSecond: number;
}

/** Trains with AdamW and gradient clipping (LibTorch's) and evaluates on held-out pairs. */
export function runDemo(opts: { steps?: number; batch?: number; lr?: number; seed?: number; log?: (s: string) => void } = {}): DemoResult {
  const steps = opts.steps ?? 400;
  const B = opts.batch ?? 32;
  const lr = opts.lr ?? 3e-3;
  const log = opts.log ?? (() => {});
  manualSeed(opts.seed ?? 1);
  const rnd = mulberry32(opts.seed ?? 1);
  const model = new DemoMatcher();
  const params = model.parameters();
  const optimizer = new AdamW(params, { lr, weightDecay: 0.01 });
  const losses: number[] = [];
  const t0 = performance.now();
  for (let step = 1; step <= steps; step++) {
    const loss = tidy(() => {
      const batch = syntheticBatch(B, rnd);
      const l = F.crossEntropy(model.forward(batch), batch.labels);
      l.backward();
      clipGradNorm(params, 1.0);
      optimizer.step();
      optimizer.zeroGrad();
      return l.item();
    });
    losses.push(loss);
    if (step % 50 === 0 || step === 1) {
      const recent = losses.slice(-50);
      log(`step ${String(step).padStart(4)}  loss ${(recent.reduce((a, b) => a + b, 0) / recent.length).toFixed(4)}`);
    }
  }
  const stepsPerSecond = steps / ((performance.now() - t0) / 1000);
  model.eval();
  const evalRnd = mulberry32(999);
  let correct = 0;
  const N = 1024;
  noGrad(() => tidy(() => {
    for (let i = 0; i < N / 128; i++) {
      const batch = syntheticBatch(128, evalRnd);
      correct += model.forward(batch).argmax(1).eq(batch.labels).sum().item();
    }
  }));
  model.dispose();
  optimizer.dispose();
  return { losses, accuracy: correct / N, stepsPerSecond };
}
