// Diagnostics against hand-computed values: gradient norms per module and layer, update ratios, attention entropy,
// spike detection, OGM-GE scores, coefficients and modulation, modality dropout, linear probes, warnings; and a
// short run whose diagnostics agree with the trainer's own gradient norm.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  Diagnostics, GradientModulation, SpikeDetector, analyzeRun, attentionEntropy, cat, createFusionModel, generateSynthetic,
  gradientNorms, layerOf, memory, linearProbeAccuracy, manualSeed, modalityScores, moduleOf, modulateGradient, noGrad, ogmCoefficients,
  parameterGroups, randn, resolveConfig, spikeMessage, tensor, tidy, train, updateRatios, zeros, type Tensor, type TrainConfigInput,
} from '../src/index.js';
import * as F from '../src/tensor/functional.js';
import { settleGarbage, tinyModel as tinyTrainModel } from './helpers.js';

const close = (a: number, b: number, tol = 1e-6, what = 'value') => assert.ok(Math.abs(a - b) <= tol * Math.max(1, Math.abs(b)), `${what}: ${a} vs ${b}`);

test('modules and layers by parameter name', () => {
  assert.equal(moduleOf('text_encoder.encoder.layer.1.attention.self.query.weight'), 'text_encoder');
  assert.equal(moduleOf('image_projection.weight'), 'fusion');
  assert.equal(moduleOf('fusion.text_to_image.in_proj_weight'), 'fusion');
  assert.equal(layerOf('text_encoder.encoder.layer.1.attention.self.query.weight'), 'text_encoder.layer.1');
  assert.equal(layerOf('text_encoder.transformer.layer.1.ffn.lin1.weight'), 'text_encoder.layer.1'); // DistilBERT
  assert.equal(layerOf('image_encoder.embeddings.cls_token'), 'image_encoder.embeddings');
  assert.equal(layerOf('classifier.3.bias'), 'classifier.3');
});

test('gradient norms per module, per layer and in total, by hand', () => {
  tidy(() => {
    const mk = (g: number[]) => {
      const p = zeros([g.length]).requiresGrad_(true);
      p.grad = tensor(g);
      return p;
    };
    const params = [
      { name: 'text_encoder.encoder.layer.0.output.dense.weight', param: mk([3, 4]) }, // 25
      { name: 'text_encoder.embeddings.word_embeddings.weight', param: mk([12]) }, // 144
      { name: 'fusion.text_norm.weight', param: mk([1]) }, // 1
      { name: 'image_projection.weight', param: mk([2]) }, // 4
      { name: 'classifier.0.weight', param: mk([0, 0]) },
      { name: 'image_encoder.encoder.layer.0.x', param: zeros([2]).requiresGrad_(true) }, // no gradient: left out
    ];
    const g = gradientNorms(params);
    close(g.module.text_encoder!, 13);
    close(g.module.fusion!, Math.sqrt(5));
    assert.equal(g.module.classifier, 0);
    assert.equal(g.module.image_encoder, undefined);
    close(g.layer['text_encoder.layer.0']!, 5);
    close(g.layer['text_encoder.embeddings']!, 12);
    close(g.total, Math.sqrt(25 + 144 + 1 + 4));
  });
});

test('update-to-weight ratio per module, by hand', () => {
  tidy(() => {
    const before = [tensor([3, 4]), tensor([1, 0])];
    const params = [{ name: 'text_encoder.a', param: tensor([3, 5]) }, { name: 'classifier.0.weight', param: tensor([0, 0]) }];
    const r = updateRatios(params, before);
    close(r.text_encoder!, 1 / 5); // ||(0, 1)|| / ||(3, 4)||
    close(r.classifier!, 1); // ||(-1, 0)|| / ||(1, 0)||
  });
});

test('attention entropy per query, masked queries left out', () => {
  tidy(() => {
    const w = tensor([[[0.5, 0.5], [1, 0]]]); // (B=1, Q=2, K=2): entropies ln 2 and 0
    close(attentionEntropy(w, null), Math.LN2 / 2);
    close(attentionEntropy(w, tensor([[1, 0]], { dtype: 'int64' })), Math.LN2);
    const uniform = tensor([[[0.25, 0.25, 0.25, 0.25]]]);
    close(attentionEntropy(uniform, null), Math.log(4));
  });
});

test('spike detector: robust z over the window, ratio and absolute floors, non-finite ignored', () => {
  const d = new SpikeDetector(20, 6, 1.5);
  const base = [1.0, 1.02, 0.98, 1.01, 0.99, 1.0, 1.03, 0.97, 1.0, 1.01, 0.99, 1.02];
  for (const x of base) assert.equal(d.push(x), null);
  assert.equal(d.push(1.1), null, 'a small rise is no spike');
  assert.equal(d.push(NaN), null);
  const s = d.push(5);
  assert.ok(s, 'a 5x jump is a spike');
  close(s.median, 1.0, 1e-9);
  close(s.ratio, 5, 1e-9);
  // median 1.0, MAD 0.01 -> scale 0.014826: z = 4 / 0.014826
  close(s.z, 4 / (1.4826 * 0.01), 1e-6);
  // a high z but under minRatio: no spike
  const flat = new SpikeDetector(20, 6, 1.5);
  for (let i = 0; i < 12; i++) flat.push(1 + (i % 2) * 1e-4);
  assert.equal(flat.push(1.3), null);
  // late in a run: 8x a near-zero median, but only 0.14 nats above it: no spike
  const late = new SpikeDetector(20, 6, 1.5, 0.3);
  for (let i = 0; i < 12; i++) late.push(0.02 + (i % 3) * 0.001);
  assert.equal(late.push(0.16), null);
  assert.ok(late.push(0.9), 'a real jump still counts');
});

test('OGM-GE coefficients: the dominant modality is slowed by 1 - tanh(alpha (ratio - 1))', () => {
  const a = ogmCoefficients(30, 10, 0.5);
  close(a.ratio, 3);
  close(a.text, 1 - Math.tanh(1));
  assert.equal(a.image, 1);
  const b = ogmCoefficients(10, 40, 0.2);
  assert.equal(b.text, 1);
  close(b.image, 1 - Math.tanh(0.2 * 3));
  const c = ogmCoefficients(10, 10, 1);
  assert.equal(c.text, 1);
  assert.equal(c.image, 1);
});

test('gradient modulation: scaled exactly, and with GE plus N(0, std(grad)) noise from the seeded generator', () => {
  tidy(() => {
    const g = tensor([1, 2, 3, 4]);
    modulateGradient(g, 0.5, false);
    assert.deepEqual(g.toNumbers(), [0.5, 1, 1.5, 2]);
    const h = tensor([1, 2, 3, 4]);
    const std = tensor([1, 2, 3, 4]).std().item();
    manualSeed(7);
    modulateGradient(h, 0.25, true);
    manualSeed(7);
    const expected = tensor([1, 2, 3, 4]).mul(0.25).add(randn([4]).mul(std + 1e-8)).toNumbers();
    assert.deepEqual(h.shape, [4]);
    h.toNumbers().forEach((x, i) => close(x, expected[i]!, 1e-6, `element ${i}`));
  });
});

function tinyModel(fusion_type: 'cross-attention' | 'concat' = 'cross-attention') {
  manualSeed(1);
  return createFusionModel({
    text: { preset: 'bert-tiny', config: { hidden_size: 16, num_attention_heads: 2, intermediate_size: 32, vocab_size: 100 } },
    image: { preset: 'vit-tiny', config: { hidden_size: 16, num_attention_heads: 2, intermediate_size: 32, image_size: 16, patch_size: 8 } },
    fusion_type, fusion_num_heads: 2, head_hidden_size: 8, num_labels: 3,
  }).model;
}

test('modality scores: the head with the other half zeroed, softmax of the true class summed', () => {
  const model = tinyModel();
  try {
    model.eval();
    tidy(() => {
      manualSeed(2);
      const t = randn([5, 16]);
      const i = randn([5, 16]);
      const y = tensor([0, 1, 2, 1, 0], { dtype: 'int64' });
      const s = modalityScores(model, t, i, y);
      const byHand = (x: Tensor) => {
        const p = F.softmax(model.classifier.forward(x), -1).toNumbers();
        return [0, 1, 2, 1, 0].reduce((a, c, r) => a + p[r * 3 + c]!, 0);
      };
      close(s.text, byHand(cat([t, zeros([5, 16])], 1)), 1e-5, 'text score');
      close(s.image, byHand(cat([zeros([5, 16]), i], 1)), 1e-5, 'image score');
      assert.equal(s.n, 5);
    });
  } finally {
    model.dispose();
  }
});

test('OGM callback: each encoder gradient is scaled by its coefficient from the scores of the forward pass', () => {
  const model = tinyModel();
  try {
    tidy(() => {
      manualSeed(3);
      const t = randn([4, 16]);
      const i = randn([4, 16]).mul(3);
      const y = tensor([0, 1, 2, 0], { dtype: 'int64' });
      const tp = model.text_encoder.parameters()[0]!;
      const ip = model.image_encoder.parameters()[0]!;
      tp.grad = randn(tp.shape);
      ip.grad = randn(ip.shape);
      const [gt, gi] = [tp.grad!.clone(), ip.grad!.clone()];
      const cfg = resolveConfig({ data: { train: 'x.jsonl' }, balance: { method: 'ogm', alpha: 0.7 } }).balance;
      const cb = new GradientModulation(cfg);
      const ctx = { model, state: { epoch: 0 }, config: { log: { every: 1 } }, allreduceSum: (v: number[]) => v } as never;
      cb.onTrainStart(ctx);
      const outputs = model.forwardFeatures({ textHidden: t.unsqueeze(1), attentionMask: tensor([[1], [1], [1], [1]], { dtype: 'int64' }), imageHidden: i.unsqueeze(1), imagePooled: null });
      cb.onForward(ctx, { outputs, labels: y });
      const s = modalityScores(model, outputs.textVector, outputs.imageVector, y);
      const k = ogmCoefficients(s.text, s.image, 0.7);
      assert.ok(k.text < 1 || k.image < 1, 'one side is modulated');
      cb.onBeforeGradSync(ctx);
      close(tp.grad!.sub(gt.mul(k.text)).abs().max().item(), 0, 1e-6, 'text gradient');
      close(ip.grad!.sub(gi.mul(k.image)).abs().max().item(), 0, 1e-6, 'image gradient');
      tp.grad = null;
      ip.grad = null;
    });
  } finally {
    model.dispose();
  }
});

test('modality dropout zeroes exactly one side of a dropped sample in training, nothing in eval', () => {
  const model = tinyModel('concat');
  try {
    noGrad(() => tidy(() => {
      manualSeed(4);
      const x = { textHidden: randn([64, 3, 16]), attentionMask: tensor(new Array(64 * 3).fill(1), { dtype: 'int64' }).reshape([64, 3]), imageHidden: randn([64, 4, 16]), imagePooled: null };
      model.train();
      const o = model.forwardFeatures(x, { modalityDropout: 0.999 });
      const tz = o.textVector.abs().sum(1).eq(0).toNumbers();
      const iz = o.imageVector.abs().sum(1).eq(0).toNumbers();
      assert.deepEqual([tz.length, iz.length], [64, 64], 'one flag per sample');
      tz.forEach((z, r) => assert.equal(z + iz[r]!, 1, `sample ${r}: exactly one side dropped`));
      assert.ok(tz.filter(Boolean).length > 16 && iz.filter(Boolean).length > 16, 'both sides get dropped');
      model.eval();
      const e = model.forwardFeatures(x, { modalityDropout: 0.999 });
      assert.equal(e.textVector.abs().sum(1).eq(0).sum().item() + e.imageVector.abs().sum(1).eq(0).sum().item(), 0);
    }));
  } finally {
    model.dispose();
  }
});

test('linear probe: separable features near 100%, label-free noise near chance', () => {
  const N = 200;
  const C = 4;
  const labels = Array.from({ length: N }, (_, i) => i % 2);
  const sep = new Float32Array(N * C);
  let seed = 1;
  const rnd = () => ((seed = (seed * 16807) % 2147483647) / 2147483647) - 0.5;
  for (let i = 0; i < N; i++) for (let c = 0; c < C; c++) sep[i * C + c] = rnd() + (c === 0 ? (labels[i]! ? 2 : -2) : 0);
  assert.ok(linearProbeAccuracy(sep, C, labels, 2)! > 0.97);
  const noise = Float32Array.from({ length: N * C }, rnd);
  const acc = linearProbeAccuracy(noise, C, labels, 2)!;
  assert.ok(acc > 0.3 && acc < 0.7, `noise probe ${acc}`);
  assert.equal(linearProbeAccuracy(new Float32Array(3 * C), C, [0, 1, 0], 2), null);
});

test('separate encoder learning rates', () => {
  const model = tinyModel();
  try {
    const c = resolveConfig({ data: { train: 'x.jsonl' }, train: { lr: 1e-3, textEncoderLr: 1e-4, imageEncoderLr: 3e-4 } });
    const lrs = Object.fromEntries(parameterGroups(model, c).map((g) => [g.name, g.lr]));
    assert.equal(lrs.text_encoder, 1e-4);
    assert.equal(lrs.image_encoder, 3e-4);
    assert.equal(lrs.fusion, 1e-3);
    assert.equal(lrs.classifier, 1e-3);
  } finally {
    model.dispose();
  }
});

test('balance configuration is checked: frozen encoders, epoch window', () => {
  assert.throws(() => resolveConfig({ data: { train: 'x' }, balance: { method: 'ogm-ge' }, model: { freeze: { text: true } } }), /balance\.method: ogm-ge modulates encoder gradients, but an encoder is frozen/);
  assert.throws(() => resolveConfig({ data: { train: 'x' }, balance: { startEpoch: 3, endEpoch: 2 } }), /balance\.endEpoch: must be greater than balance\.startEpoch/);
  assert.throws(() => resolveConfig({ data: { train: 'x' }, balance: { method: 'ogm-gd' } }), /balance\.method: expected one of "none", "ogm", "ogm-ge", received "ogm-gd" \(did you mean "ogm-ge"\?\)/);
});

test('warnings: each kind from the records that show it, with evidence and a suggestion', () => {
  const c = resolveConfig({ data: { train: 'x', labels: ['a', 'b'] }, train: { schedule: { type: 'constant', warmupRatio: 0 }, clipGradNorm: 1 } });
  assert.match(spikeMessage({ step: 340, ratio: 6, z: 14, lr: 3e-4 }, c), /^loss spiked 6x the recent median \(robust z 14\) at step 340 while lr reached 3e-4 with no warmup; try warmup/);
  const records: Record<string, unknown>[] = [];
  for (let s = 10; s <= 200; s += 10) records.push({ event: 'train', step: s, loss: 0.693 });
  records.push({ event: 'spike', step: 120, loss: 4, median: 0.69, z: 20, ratio: 5.8, lr: 1e-3 });
  for (let s = 50; s <= 200; s += 50) records.push({ event: 'diagnostics', step: s, clip_fraction: 1, modality_score: { text: 0.8, image: 0.1, ratio: 8 }, update_ratio: { text_encoder: 0.2, image_encoder: 1e-3 } });
  [0.6, 0.5, 0.65, 0.7, 0.8].forEach((loss, i) => records.push({ event: 'eval', split: 'val', step: 40 * (i + 1), loss, accuracy: 0.505, n: 400, probe_text_accuracy: 0.9, probe_image_accuracy: 0.5 }));
  records.push({ event: 'nonfinite', step: 77 });
  const w = analyzeRun(records, c);
  const kinds = w.map((x) => x.kind);
  for (const k of ['loss-spike', 'non-finite', 'flat-loss', 'chance', 'modality-imbalance', 'clipping', 'update-ratio', 'overfitting']) assert.ok(kinds.includes(k), `${k} in ${kinds.join(', ')}`);
  assert.match(w.find((x) => x.kind === 'modality-imbalance')!.message, /the text modality dominates: contribution score ratio text\/image 8 .*probes .* text 90\.0%, image 50\.0%.*try balance\.method: ogm-ge/);
  assert.match(w.find((x) => x.kind === 'update-ratio')!.message, /^text_encoder: updates change its weights by 20\.0% per step/);
  assert.ok(!w.some((x) => x.kind === 'update-ratio' && /image_encoder/.test(x.message)), 'a typical ratio is no warning');
  assert.match(w.find((x) => x.kind === 'overfitting')!.message, /validation loss rose from 0\.5 at step 80 to 0\.8 at step 200/);
  // a healthy run: none of these
  const healthy: Record<string, unknown>[] = [];
  for (let s = 10; s <= 200; s += 10) healthy.push({ event: 'train', step: s, loss: 0.7 * Math.exp(-s / 100) });
  [0.5, 0.3, 0.2, 0.15].forEach((loss, i) => healthy.push({ event: 'eval', split: 'val', step: 50 * (i + 1), loss, accuracy: 0.9, n: 400 }));
  assert.deepEqual(analyzeRun(healthy, c), []);
  // the original schedule is always named
  const orig = resolveConfig({ data: { train: 'x' }, train: { schedule: { type: 'original' } } });
  assert.match(analyzeRun(healthy, orig).map((x) => x.message).join('\n'), /"original" schedule multiplies the lr by 0\.9755 every step/);
});

function runConfig(dir: string, extra: Partial<TrainConfigInput> = {}): TrainConfigInput {
  return {
    name: 'diag', out: join(dir, 'runs'), seed: 5,
    model: tinyTrainModel(),
    data: { train: join(dir, 'data', 'train.jsonl'), val: join(dir, 'data', 'val.jsonl') },
    train: { epochs: 2, batchSize: 8, lr: 1e-3, clipGradNorm: 1 },
    diagnostics: { every: 2 },
    log: { every: 2, progress: 'none' },
    ...extra,
  };
}

test('a run logs diagnostics whose total gradient norm is the trainer\'s pre-clipping norm; probes at validation', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'mmtrain-diag-'));
  await generateSynthetic({ out: join(dir, 'data'), n: 120, seed: 4, imageSize: 16 });
  await settleGarbage();
  const before = memory().liveTensors;
  const r = await train(resolveConfig(runConfig(dir, { balance: { method: 'ogm-ge', modalityDropout: 0.2 } })), { print: () => {} });
  await settleGarbage();
  assert.equal(memory().liveTensors, before, 'diagnostics, OGM-GE and probes leave no tensor behind');
  const recs = readFileSync(join(r.runDir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  const diag = recs.filter((x) => x.event === 'diagnostics');
  assert.equal(diag.length, Math.floor(r.steps / 2));
  assert.equal(diag.length, 12, '96 training pairs, batches of 8, 2 epochs: 24 steps, diagnostics every 2');
  const trainBy = new Map(recs.filter((x) => x.event === 'train').map((x) => [x.step, x]));
  for (const d of diag) {
    for (const m of ['text_encoder', 'image_encoder', 'fusion', 'classifier']) {
      assert.ok(d.grad_norm[m] > 0 && d.update_ratio[m] > 0 && d.weight_norm[m] > 0, `step ${d.step} ${m}`);
    }
    close(d.grad_norm.total, trainBy.get(d.step).grad_norm, 1e-4, `total grad norm at step ${d.step}`);
    const layerSq = Object.values(d.grad_norm_layer as Record<string, number>).reduce((a, x) => a + x * x, 0);
    close(Math.sqrt(layerSq), d.grad_norm.total, 1e-4, 'layers add up to the total');
    assert.ok(d.attention_entropy.text_to_image > 0 && d.attention_entropy.text_to_image <= Math.log(5) + 1e-5, 'entropy over 5 image tokens (4 patches and [CLS])');
    assert.ok(d.modality_score.text > 0 && d.modality_score.text < 1);
  }
  const ev = recs.filter((x) => x.event === 'eval');
  assert.ok(ev.length >= 1);
  for (const e of ev) assert.ok(e.probe_text_accuracy >= 0 && e.probe_text_accuracy <= 1 && e.score_image > 0);
  assert.ok(Array.isArray(JSON.parse(readFileSync(join(r.runDir, 'warnings.json'), 'utf8'))));
});

test('diagnostics steps: every N optimizer steps', () => {
  const d = new Diagnostics(resolveConfig({ data: { train: 'x' }, diagnostics: { every: 1 } }).diagnostics);
  assert.equal(d.due(0), true);
  const d5 = new Diagnostics(resolveConfig({ data: { train: 'x' }, diagnostics: { every: 5 } }).diagnostics);
  assert.deepEqual([0, 1, 2, 3, 4, 9].map((s) => d5.due(s)), [false, false, false, false, true, true]);
});
