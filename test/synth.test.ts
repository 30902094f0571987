// The synthetic data set: deterministic for a seed, captions and images alone at chance on the match task (the
// best per-caption / per-image-content predictor is ~50%), text alone at ~80% on the imbalanced task, and a small
// fused model learns the easy level well above chance.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  AdamW, DataLoader, F, ImageCache, TextTokenizer, Tensor, cat, clipGradNorm, disposeBatch, generateSynthetic, imageConfig,
  manualSeed, nn, noGrad, readManifest, synthesizeRecords, tidy, zeros, type Batch, type SynthRecord,
} from '../src/index.js';
import { ROOT } from './helpers.js';

const TOKENIZER = join(ROOT, 'assets', 'bert-base-uncased', 'tokenizer.json');

/** Accuracy on `test` of predicting the majority training label of each key (the Bayes rule for that key). */
function majorityAccuracy(train: SynthRecord[], evalSet: SynthRecord[], key: (r: SynthRecord) => string): number {
  const counts = new Map<string, [number, number]>();
  for (const r of train) {
    const c = counts.get(key(r)) ?? [0, 0];
    c[r.label]!++;
    counts.set(key(r), c);
  }
  const overall = train.filter((r) => r.label === 1).length >= train.length / 2 ? 1 : 0;
  let right = 0;
  for (const r of evalSet) {
    const c = counts.get(key(r));
    const guess = c ? (c[1] > c[0] ? 1 : c[1] < c[0] ? 0 : overall) : overall;
    if (guess === r.label) right++;
  }
  return right / evalSet.length;
}

const imageKey = (r: SynthRecord) => r.objects.map((o) => `${o.color} ${o.shape}`).join('|');

test('synthetic data is deterministic for a seed and writes train/val/test manifests', async () => {
  const a = mkdtempSync(join(tmpdir(), 'mmtrain-syn-'));
  const b = mkdtempSync(join(tmpdir(), 'mmtrain-syn-'));
  await generateSynthetic({ out: a, n: 60, seed: 9, difficulty: 'hard', imageSize: 32 });
  await generateSynthetic({ out: b, n: 60, seed: 9, difficulty: 'hard', imageSize: 32 });
  for (const f of ['train.jsonl', 'val.jsonl', 'test.jsonl', 'images/00.jpg', 'images/59.jpg']) {
    const h = (d: string) => createHash('sha256').update(readFileSync(join(d, f))).digest('hex');
    assert.equal(h(a), h(b), f);
  }
  const m = readManifest(join(a, 'train.jsonl'));
  assert.equal(m.samples.length, 48);
  assert.match(m.samples[0]!.text, /^an? (red|green|blue|yellow|purple|orange) (circle|square|triangle|diamond) (to the left of|to the right of|above|below) an? /);
  assert.equal(readManifest(join(a, 'val.jsonl')).samples.length + readManifest(join(a, 'test.jsonl')).samples.length, 12);
  rmSync(a, { recursive: true });
  rmSync(b, { recursive: true });
});

for (const difficulty of ['easy', 'medium', 'hard'] as const) {
  test(`match task (${difficulty}): text alone and image alone stay at chance`, () => {
    // the records alone: rendering 3,000 images would test nothing more here
    const { train, val, test: held } = synthesizeRecords({ n: 3000, seed: 4, difficulty, imageSize: 16, split: [0.7, 0.1] });
    const evalSet = [...val, ...held];
    const text = majorityAccuracy(train, evalSet, (r) => r.text);
    const image = majorityAccuracy(train, evalSet, imageKey);
    assert.ok(Math.abs(text - 0.5) < 0.06, `text-only accuracy ${text}`);
    assert.ok(Math.abs(image - 0.5) < 0.06, `image-only accuracy ${image}`);
    const positives = train.filter((r) => r.label === 1).length / train.length;
    assert.ok(Math.abs(positives - 0.5) < 0.05, `label balance ${positives}`);
  });
}

test('imbalanced task: text alone reaches about 80%, the image alone stays at chance', () => {
  const { train, val, test: held } = synthesizeRecords({ n: 3000, seed: 5, task: 'imbalanced', imageSize: 16, split: [0.7, 0.1] });
  const cue = (r: SynthRecord) => r.text.split(' ')[0]!;
  const text = majorityAccuracy(train, [...val, ...held], cue);
  assert.ok(Math.abs(text - 0.8) < 0.05, `text-only accuracy ${text}`);
  assert.ok(Math.abs(majorityAccuracy(train, [...val, ...held], imageKey) - 0.5) < 0.06);
});

/** A small fused probe: patch embedding, token embedding, text-to-image cross-attention, pooled, MLP head. */
class Probe extends nn.Module {
  readonly patch = this.registerModule('patch', new nn.Conv2d(3, 32, 4, { stride: 4 }));
  readonly pos = this.registerParameter('pos', zeros([1, 64, 32]).normal_(0, 0.02));
  readonly embed = this.registerModule('embed', new nn.Embedding(30522, 32, 0));
  readonly att = this.registerModule('att', new nn.MultiheadAttention(32, 2, { batchFirst: true }));
  readonly norm = this.registerModule('norm', new nn.LayerNorm(32));
  readonly head = this.registerModule('head', new nn.Sequential(new nn.Linear(64, 32), new nn.ReLU(), new nn.Linear(32, 2)));
  forward(b: Batch): Tensor {
    const im = this.patch.forward(b.pixelValues).flatten(2).transpose(1, 2).add(this.pos); // (B, C, 8, 8) -> (B, 64, C)
    const tx = this.embed.forward(b.inputIds);
    const f = this.norm.forward(tx.add(this.att.forward(tx, im, im, { needWeights: false }).output));
    const m = b.attentionMask.float().unsqueeze(-1); // (B, T) -> (B, T, 1)
    return this.head.forward(cat([f.mul(m).sum(1).div(m.sum(1)), im.mean(1)], 1));
  }
}

test('a fused model learns the easy match task well above chance', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'mmtrain-syn-'));
  await generateSynthetic({ out: dir, n: 2500, seed: 3, difficulty: 'easy', imageSize: 32 });
  const tok = TextTokenizer.fromFile(TOKENIZER);
  const img = imageConfig({ size: 32, resize: 'exact' });
  const cache = new ImageCache(join(dir, 'cache'), img);
  const train = new DataLoader(readManifest(join(dir, 'train.jsonl')).samples, tok, img, { batchSize: 32, seed: 1, cache });
  const val = new DataLoader(readManifest(join(dir, 'val.jsonl')).samples, tok, img, { batchSize: 125, shuffle: false, cache });
  manualSeed(1);
  const model = new Probe();
  const opt = new AdamW(model.parameters(), { lr: 2e-3, weightDecay: 0.01 });
  let best = 0;
  for (let epoch = 0; epoch < 16 && best < 0.72; epoch++) {
    model.train();
    for await (const b of train.epoch(epoch)) {
      tidy(() => {
        F.crossEntropy(model.forward(b), b.labels).backward();
        clipGradNorm(model.parameters(), 1);
        opt.step();
        opt.zeroGrad();
        disposeBatch(b);
      });
    }
    model.eval();
    let right = 0;
    let n = 0;
    for await (const b of val.epoch(0)) {
      noGrad(() => tidy(() => {
        right += model.forward(b).argmax(1).eq(b.labels).sum().item();
        n += b.indices.length;
        disposeBatch(b);
      }));
    }
    best = Math.max(best, right / n);
  }
  assert.ok(best >= 0.68, `best validation accuracy ${best}`);
  model.dispose();
  opt.dispose();
  rmSync(dir, { recursive: true });
});

test('synthesizeRecords gives exactly the records generateSynthetic writes', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'mmtrain-syn-'));
  const opts = { n: 40, seed: 11, difficulty: 'medium', task: 'imbalanced', imageSize: 16 } as const;
  assert.deepEqual(await generateSynthetic({ ...opts, out: dir }), synthesizeRecords(opts));
  rmSync(dir, { recursive: true });
});
