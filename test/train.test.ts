// The trainer: AdamW + clipping + every schedule against PyTorch over 50 steps, exact resume (mid-epoch, with
// dropout), a failed checkpoint write, the non-finite guard, configuration errors, metrics by hand, and a short
// end-to-end run whose loss drops and accuracy rises.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  AdamW, clipGradNorm, computeMetrics, generateSynthetic, listCheckpoints, loadSafetensors, lrFactor, memory,
  noGrad, resolveConfig, saveCheckpoint, tensor, tidy, train, type ScheduleConfig, type TrainConfigInput, FusionClassifier,
  evaluate, loadPredictor, predict, type BertModel, type ViTModel,
} from '../src/index.js';
import { predictManifest } from '../src/train/inference.js';
import { FIXTURES, settleGarbage, tinyModel } from './helpers.js';

const ref = loadSafetensors(join(FIXTURES, 'train_ref.safetensors')).tensors;

for (const type of ['cosine', 'linear', 'constant', 'original'] as const) {
  test(`AdamW + clip_grad_norm_ + ${type} schedule follow PyTorch over 50 steps`, () => {
    const W = ref.get('W0')!.clone().requiresGrad_(true);
    const b = ref.get('b0')!.clone().requiresGrad_(true);
    const opt = new AdamW([{ params: [W], weightDecay: 0.01 }, { params: [b], weightDecay: 0 }], { lr: 1e-2, betas: [0.9, 0.98], eps: 1e-8 });
    const cfg: ScheduleConfig = type === 'original' ? { type } : { type, warmupSteps: 5, minLrRatio: 0.1 };
    const lrs = ref.get(`${type}.lr`)!.toNumbers();
    const norms = ref.get(`${type}.norm`)!.toNumbers();
    for (let s = 0; s < 50; s++) {
      W.grad = ref.get(`gW${s}`)!.clone();
      b.grad = ref.get(`gb${s}`)!.clone();
      const n = clipGradNorm([W, b], 1.0);
      assert.ok(Math.abs(n - norms[s]!) < 1e-5 * Math.max(1, norms[s]!), `step ${s} norm ${n} vs ${norms[s]}`);
      const lr = 1e-2 * lrFactor(cfg, s, 50);
      assert.ok(Math.abs(lr - lrs[s]!) <= 1e-12 + 1e-9 * lrs[s]!, `step ${s}: lr ${lr} vs ${lrs[s]}`);
      opt.setLr(0, lr);
      opt.setLr(1, lr);
      opt.step();
    }
    tidy(() => {
      assert.ok(W.sub(ref.get(`${type}.W`)!).abs().max().item() < 1e-5);
      assert.ok(b.sub(ref.get(`${type}.b`)!).abs().max().item() < 1e-5);
    });
    opt.dispose();
  });
}

test('clipping off (clipGradNorm: null) measures the norm and leaves gradients alone, in the trainer too', async () => {
  tidy(() => {
    const p = tensor([0, 0]).requiresGrad_(true);
    p.grad = tensor([3000, 4000]);
    assert.equal(clipGradNorm([p], Infinity), 5000);
    assert.deepEqual(p.grad!.toNumbers(), [3000, 4000]);
    p.grad = tensor([3, 4]);
    assert.equal(clipGradNorm([p], Number.MAX_VALUE), 5);
  });
  const dir = await dataDir();
  const r = await train(resolveConfig(tinyConfig(dir, { train: { maxSteps: 3, clipGradNorm: null } })), { print: () => {} });
  assert.equal(r.steps, 3);
});

test('metrics by hand: accuracy, macro-F1, AUROC, confusion', () => {
  // labels 1,1,0,0,1 ; p(class1) .9 .4 .35 .1 .8 -> preds 1,0,0,0,1
  const probs = [0.9, 0.4, 0.35, 0.1, 0.8].map((p) => [1 - p, p]);
  const m = computeMetrics([1, 1, 0, 0, 1], probs, 1.5);
  assert.equal(m.accuracy, 0.8);
  assert.deepEqual(m.confusion, [[2, 0], [1, 2]]);
  // F1 class0 = 2*2/(2*2+1+0) = 0.8, class1 = 2*2/(2*2+0+1) = 0.8
  assert.ok(Math.abs(m.macro_f1 - 0.8) < 1e-12);
  // positives .9 .4 .8 vs negatives .35 .1: pairs won 6 of 6
  assert.equal(m.auroc, 1);
  assert.equal(computeMetrics([1, 0], [[0.5, 0.5], [0.5, 0.5]], 0).auroc, 0.5);
  assert.equal(m.loss, 0.3);
});

function tinyConfig(dir: string, extra: Record<string, any> = {}): TrainConfigInput {
  return {
    name: 'run', out: join(dir, 'runs'), seed: 3,
    model: {
      text: { preset: 'bert-tiny', config: { hidden_size: 16, num_attention_heads: 2, intermediate_size: 32, vocab_size: 30522 } },
      image: { preset: 'vit-tiny', config: { hidden_size: 16, num_attention_heads: 2, intermediate_size: 32, image_size: 16, patch_size: 8, hidden_dropout_prob: 0.1 } },
      fusion_num_heads: 2, head_hidden_size: 16, ...extra.model,
    },
    data: { train: join(dir, 'data', 'train.jsonl'), val: join(dir, 'data', 'val.jsonl'), ...extra.data },
    train: { epochs: 4, batchSize: 6, lr: 1e-3, ...extra.train },
    eval: { ...extra.eval },
    checkpoint: { keepLast: 3, ...extra.checkpoint },
    log: { every: 1, progress: 'none', ...extra.log },
  };
}

async function dataDir(): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'mmtrain-train-'));
  await generateSynthetic({ out: join(dir, 'data'), n: 100, seed: 2, imageSize: 16 });
  return dir;
}

/** The newest checkpoints of two runs hold the same tensors, byte for byte. */
function assertSameFinalWeights(runA: string, runB: string): void {
  const a = loadSafetensors(join(listCheckpoints(runA).pop()!, 'model.safetensors')).tensors;
  const b = loadSafetensors(join(listCheckpoints(runB).pop()!, 'model.safetensors')).tensors;
  assert.ok(a.size > 0, 'no weights to compare');
  assert.deepEqual([...b.keys()].sort(), [...a.keys()].sort());
  for (const [k, t] of a) assert.deepEqual(b.get(k)!.toBuffer(), t.toBuffer(), k);
}

const trainLosses = (runDir: string) => readFileSync(join(runDir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l)).filter((r) => r.event === 'train').map((r) => [r.step, r.loss]);

test('resume: 40 steps straight equal 20 steps, an interrupt mid-epoch, and 20 resumed steps', async () => {
  const dir = await dataDir();
  const quiet = { print: () => {} };
  const straight = await train(resolveConfig(tinyConfig(dir, { train: { maxSteps: 40 } })), quiet);
  assert.equal(straight.steps, 40);
  const ac = new AbortController();
  const first = await train(resolveConfig({ ...tinyConfig(dir, { train: { maxSteps: 40 } }), name: 'split' }), {
    ...quiet, signal: ac.signal, callbacks: [{ onStepEnd: (_c, s) => { if (s.step === 20) ac.abort(); } }],
  });
  assert.equal(first.interrupted, true);
  assert.equal(first.steps, 20);
  const state = JSON.parse(readFileSync(join(listCheckpoints(first.runDir).pop()!, 'trainer_state.json'), 'utf8'));
  assert.ok(state.position > 0, 'the interrupt should fall mid-epoch');
  const second = await train(resolveConfig({ ...tinyConfig(dir, { train: { maxSteps: 40 } }), name: 'split' }), { ...quiet, resume: first.runDir });
  assert.equal(second.steps, 40);
  assert.ok(trainLosses(straight.runDir).length >= 12, 'the straight run logged its losses');
  assert.deepEqual(trainLosses(first.runDir), trainLosses(straight.runDir));
  // the resumed run carries on its evaluation record and best model as if it had never stopped
  const evals = (d: string) => evalRecords(d).map((e) => [e.step, e.loss, e.accuracy]);
  assert.ok(evals(straight.runDir).length >= 3);
  assert.deepEqual(evals(first.runDir), evals(straight.runDir));
  assert.deepEqual(second.best, straight.best);
  assert.equal(second.nonFiniteSkipped, 0);
  const a = FusionClassifier.fromPretrained(listCheckpoints(straight.runDir).pop()!);
  const b = FusionClassifier.fromPretrained(listCheckpoints(first.runDir).pop()!);
  assert.ok(a.stateDict().size > 0, 'state dict is empty');
  assert.deepEqual([...b.stateDict().keys()], [...a.stateDict().keys()]);
  for (const [k, t] of a.stateDict()) assert.deepEqual(b.stateDict().get(k)!.toBuffer(), t.toBuffer(), k);
  a.dispose();
  b.dispose();
  rmSync(dir, { recursive: true });
});

test('a failed checkpoint write leaves the previous checkpoint intact and loadable', async () => {
  const dir = await dataDir();
  const r = await train(resolveConfig(tinyConfig(dir, { train: { maxSteps: 5 } })), { print: () => {} });
  const last = listCheckpoints(r.runDir).pop()!;
  const before = readdirSync(last).sort();
  const model = FusionClassifier.fromPretrained(last);
  const opt = new AdamW(model.parameters(), { lr: 1e-3 });
  const state = JSON.parse(readFileSync(join(last, 'trainer_state.json'), 'utf8'));
  const info = JSON.parse(readFileSync(join(last, 'mmtrain.json'), 'utf8'));
  // the tokenizer copy fails after the model and optimizer files were written into the temporary directory
  assert.throws(() => saveCheckpoint({ dir: last, model, optimizer: opt, state, trainConfig: {}, info, tokenizerFile: join(dir, 'no-such-tokenizer.json') }),
    /cannot write the checkpoint .*the previous checkpoint is intact/);
  assert.deepEqual(readdirSync(last).sort(), before);
  assert.deepEqual(readdirSync(join(r.runDir, 'checkpoints')).filter((d) => d.startsWith('.tmp')), []);
  FusionClassifier.fromPretrained(last).dispose();
  // a model holding NaN is never saved
  noGrad(() => model.classifier.parameters()[0]!.fill_(NaN));
  assert.throws(() => saveCheckpoint({ dir: join(r.runDir, 'checkpoints', 'step-99999999'), model, optimizer: opt, state, trainConfig: {}, info, tokenizerFile: join(last, 'tokenizer.json') }),
    /refusing to save a checkpoint: parameter classifier\.0\.weight holds NaN or Inf/);
  assert.equal(existsSync(join(r.runDir, 'checkpoints', 'step-99999999')), false);
  model.dispose();
  opt.dispose();
  rmSync(dir, { recursive: true });
});

test('non-finite guard: a NaN step is skipped and counted; K in a row roll back with half the lr', async () => {
  const dir = await dataDir();
  // poison the 4th backward pass, then the 13th to 15th (three in a row)
  const nanAt = new Set([3, 12, 13, 14]);
  let calls = 0;
  const poison = {
    onAfterBackward: (ctx: any) => {
      if (nanAt.has(calls++)) noGrad(() => { const g = ctx.model.classifier.parameters()[0].grad; g.fill_(NaN); g.dispose(); });
    },
  };
  const lines: string[] = [];
  const r = await train(resolveConfig(tinyConfig(dir, { train: { maxSteps: 20, maxNonFinite: 3 }, checkpoint: { every: 10 } })), { print: (s) => lines.push(s), callbacks: [poison] });
  const events = readFileSync(join(r.runDir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  assert.equal(events.filter((e) => e.event === 'nonfinite').length, 4);
  const rollback = events.find((e) => e.event === 'rollback');
  assert.ok(rollback, 'expected a rollback');
  assert.equal(rollback.lr_scale, 0.5);
  assert.match(rollback.to, /step-00000010$/);
  assert.ok(lines.some((l) => /rolled back to .*step-00000010 \(step 10\) with the learning rate halved/.test(l)));
  assert.equal(r.steps, 20);
  assert.equal(r.nonFiniteSkipped, 4);
  rmSync(dir, { recursive: true });
});

test('configuration errors name the key path and the fix', () => {
  const base = { data: { train: 'x.jsonl' } };
  assert.throws(() => resolveConfig({ ...base, trian: {} }), /unknown key "trian" — remove it or check the spelling \(did you mean "train"\?\)\n {2}\(mmtrain init writes an example that names every key\)/);
  assert.throws(() => resolveConfig({ ...base, train: { lr: 'fast' } }), /train\.lr: expected a number, received "fast"/);
  assert.throws(() => resolveConfig({ model: {} }), /data: required, but missing/);
  assert.throws(() => resolveConfig({ ...base, train: { schedule: { type: 'step' } } }), /train\.schedule\.type: expected one of "cosine", "linear", "constant", "original", received "step"/);
  assert.throws(() => resolveConfig({ ...base, eval: { earlyStopping: { patience: 2 } } }), /eval\.earlyStopping: needs data\.val/);
  assert.throws(() => resolveConfig({ ...base, train: { precision: 'fp16', device: 'cpu' } }), /train\.precision: fp16 needs a GPU .* with train\.device cpu use bf16/);
  assert.throws(() => resolveConfig({ ...base, train: { device: 'gpu' } }), /train\.device.*expected auto, cpu, cuda or cuda:N/);
  assert.throws(() => resolveConfig({ data: { train: 'x.jsonl', cache: true, image: { augment: { horizontalFlip: 0.5 } } } }), /data\.cache: the image cache holds un-augmented pixels/);
  assert.throws(() => resolveConfig({ ...base, model: { fusion_type: 'early' } }), /model\.fusion_type: expected one of "cross-attention", .*, received "early"/);
});

test('encoder overrides are checked against the BERT and ViT configs: an unknown key names itself and the nearest known one', () => {
  const base = { data: { train: 'x.jsonl' } };
  assert.throws(() => resolveConfig({ ...base, model: { text: { preset: 'bert-tiny', config: { hiden_size: 64 } } } }),
    /model\.text\.config: unknown key "hiden_size" — remove it or check the spelling \(did you mean "hidden_size"\?\)/);
  assert.throws(() => resolveConfig({ ...base, model: { image: { config: { patchSize: 8, zzz: 1 } } } }),
    /model\.image\.config: unknown key "patchSize" .*\(did you mean "patch_size"\?\)\n {2}model\.image\.config: unknown key "zzz" .*\(known keys: model_type, hidden_size, /);
  assert.throws(() => resolveConfig({ ...base, model: { text: { config: { hidden_dropout_prob: 1 } } } }), /model\.text\.config\.hidden_dropout_prob: expected a number < 1, received number 1/);
  assert.throws(() => resolveConfig({ ...base, model: { text: { preset: 'bert-huge' } } }), /model\.text\.preset: expected one of "bert-tiny", .*, received "bert-huge"/);
  // the merged preset + overrides, and the fusion over them, are checked before anything is built
  assert.throws(() => resolveConfig({ ...base, model: { image: { config: { image_size: 30 } } } }),
    /model\.image\.config\.image_size: expected a multiple of patch_size \(16\), received number 30: change image_size or patch_size/);
  assert.throws(() => resolveConfig({ ...base, model: { fusion_num_heads: 3 } }), /model\.fusion_num_heads: expected a divisor of the text hidden_size \(128\), received number 3/);
  assert.throws(() => resolveConfig({ ...base, model: { text: { pretrained: 'bert', config: { hidden_size: 64 } } } }),
    /model\.text\.config: overrides apply to a preset; a pretrained encoder keeps its own config\.json/);
  const c = resolveConfig({ ...base, model: { text: { config: { hidden_size: 64, num_attention_heads: 2 } } } });
  assert.deepEqual(c.model.text?.config, { hidden_size: 64, num_attention_heads: 2 });
});

test('end to end: on a text-decidable task the loss drops and accuracy rises; nothing leaks', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'mmtrain-e2e-'));
  const src = await generateSynthetic({ out: join(dir, 'src'), n: 60, seed: 1, imageSize: 16 });
  // label = whether the caption names a warm colour: learnable from the text alone, fast
  const warm = new Set(['red', 'orange', 'yellow']);
  const rows = [...src.train, ...src.val, ...src.test].map((r) => ({ image: `src/${r.image}`, text: r.text, label: warm.has(r.text.split(' ')[1]!) ? 1 : 0 }));
  // val is held out: no image of it is in train
  const val = rows.slice(-15);
  const trainRows = rows.slice(0, -15);
  assert.equal(trainRows.filter((r) => val.some((v) => v.image === r.image)).length, 0);
  assert.ok(new Set(val.map((r) => r.label)).size === 2, 'val should hold both classes');
  writeFileSync(join(dir, 'train.jsonl'), trainRows.map((r) => JSON.stringify(r)).join('\n'));
  writeFileSync(join(dir, 'val.jsonl'), val.map((r) => JSON.stringify(r)).join('\n'));
  await settleGarbage();
  const before = memory().liveTensors;
  const r = await train(resolveConfig({ ...tinyConfig(dir, { train: { epochs: 12, lr: 3e-3, batchSize: 8 }, model: { head_dropout: 0 } }), data: { train: join(dir, 'train.jsonl'), val: join(dir, 'val.jsonl') } }), { print: () => {} });
  const losses = trainLosses(r.runDir).map(([, l]) => l as number);
  const head = losses.slice(0, 5).reduce((a, b) => a + b, 0) / 5;
  const tail = losses.slice(-5).reduce((a, b) => a + b, 0) / 5;
  assert.ok(tail < head * 0.5, `loss ${head} -> ${tail}`);
  assert.ok(r.finalVal!.accuracy >= 0.9, `val accuracy ${r.finalVal!.accuracy}`);
  await settleGarbage();
  assert.equal(memory().liveTensors, before);
  rmSync(dir, { recursive: true });
});

test('TensorBoard event files carry the logged scalars with valid CRCs', async () => {
  const { readScalars } = await import('../src/diagnostics/tensorboard.js');
  const dir = await dataDir();
  const r = await train(resolveConfig(tinyConfig(dir, { train: { maxSteps: 6 } })), { print: () => {} });
  const tbDir = join(r.runDir, 'tensorboard');
  const file = readdirSync(tbDir).find((f) => f.startsWith('events.out.tfevents.'))!;
  const scalars = readScalars(readFileSync(join(tbDir, file)));
  const losses = scalars.filter((s) => s.tag === 'train/loss');
  assert.equal(losses.length, 6);
  assert.deepEqual(losses.map((s) => s.step), [1, 2, 3, 4, 5, 6]);
  const jsonl = trainLosses(r.runDir);
  losses.forEach((s, i) => assert.ok(Math.abs(s.value - (jsonl[i]![1] as number)) < 1e-6, `step ${s.step}: ${s.value} vs ${jsonl[i]![1]}`));
  assert.ok(scalars.some((s) => s.tag.startsWith('lr/')));
  assert.ok(scalars.some((s) => s.tag === 'val/accuracy'));
  rmSync(dir, { recursive: true });
});

test('frozen encoders: the feature cache trains fusion + head on cached outputs with the same losses', async () => {
  const dir = await dataDir();
  const lines: string[] = [];
  const base = tinyConfig(dir, { model: { freeze: { text: true, image: true } }, train: { epochs: 2 } });
  const cached = await train(resolveConfig({ ...base, name: 'cached' }), { print: (s) => lines.push(s) });
  assert.ok(lines.some((l) => /frozen encoders: cached their outputs for 80 samples/.test(l)));
  const plain = await train(resolveConfig({ ...base, name: 'plain', train: { ...base.train, featureCache: false } }), { print: () => {} });
  const a = trainLosses(cached.runDir);
  const b = trainLosses(plain.runDir);
  assert.equal(a.length, b.length);
  assert.equal(a.length, 28, '80 training pairs in batches of 6 for 2 epochs');
  a.forEach(([s, l], i) => assert.ok(Math.abs((l as number) - (b[i]![1] as number)) < 1e-4, `step ${s}: ${l} vs ${b[i]![1]}`));
  // the encoders did not move
  assert.ok(listCheckpoints(cached.runDir).length >= 2, 'a first and a last checkpoint to compare');
  const before = FusionClassifier.fromPretrained(join(listCheckpoints(cached.runDir)[0]!));
  const after = FusionClassifier.fromPretrained(listCheckpoints(cached.runDir).pop()!);
  assert.ok([...before.stateDict().keys()].some((k) => k.startsWith('text_encoder.')) && [...before.stateDict().keys()].some((k) => k.startsWith('image_encoder.')), 'encoder weights to compare');
  for (const [k, t] of before.stateDict()) if (k.startsWith('text_encoder.') || k.startsWith('image_encoder.')) assert.deepEqual(after.stateDict().get(k)!.toBuffer(), t.toBuffer(), k);
  before.dispose();
  after.dispose();
  rmSync(dir, { recursive: true });
});

test('parameter groups: encoder lr, layer-wise decay, no weight decay on biases and norms, frozen parameters left out', async () => {
  const { parameterGroups, createFusionModel } = await import('../src/index.js');
  const { model } = createFusionModel({ preset: 'tiny', image: { config: { image_size: 32 } } });
  const cfg = resolveConfig({ data: { train: 'x.jsonl' }, train: { lr: 1e-3, encoderLr: 1e-4, layerDecay: 0.5, weightDecay: 0.05 } });
  const groups = parameterGroups(model, cfg);
  const lrOf = (p: unknown) => groups.find((g) => g.params.includes(p as never))!;
  const layer0 = (model.text_encoder as BertModel).encoder.layer.at(0).attention.self.query;
  const layer1 = (model.text_encoder as BertModel).encoder.layer.at(1).attention.self.query;
  assert.equal(lrOf(layer1.weight).lr, 1e-4 * 0.5); // top layer of 2: decay^(L + 1 - 2) = 0.5
  assert.equal(lrOf(layer0.weight).lr, 1e-4 * 0.25);
  assert.equal(lrOf((model.text_encoder as BertModel).embeddings.word_embeddings.weight).lr, 1e-4 * 0.125);
  assert.equal(lrOf(model.classifier.parameters()[0]).lr, 1e-3);
  assert.equal(lrOf(layer0.weight).weightDecay, 0.05);
  assert.equal(lrOf(layer0.bias).weightDecay, 0);
  assert.equal(lrOf((model.text_encoder as BertModel).embeddings.LayerNorm.weight).weightDecay, 0);
  assert.equal(lrOf((model.image_encoder as ViTModel).embeddings.cls_token).weightDecay, 0);
  assert.equal(new Set(groups.map((g) => g.name)).size, groups.length, 'group names are unique');
  model.freeze('image');
  assert.ok(model.image_encoder.parameters().length > 0 && parameterGroups(model, cfg).length > 0, 'frozen image parameters and groups to look through');
  assert.ok(!parameterGroups(model, cfg).some((g) => g.params.some((p) => model.image_encoder.parameters().includes(p))));
  model.dispose();
});

test('one route from file to batch: predict reads JSONL and CSV manifests without labels through the loader, and matches single predictions and eval', async () => {
  const dir = await dataDir();
  const r = await train(resolveConfig(tinyConfig(dir, { train: { maxSteps: 4 } })), { print: () => {} });
  const p = loadPredictor(join(r.runDir, 'best'));
  try {
    const rows = readFileSync(join(dir, 'data', 'val.jsonl'), 'utf8').trim().split('\n').slice(0, 5).map((l) => JSON.parse(l) as { image: string; text: string });
    // labels optional: JSONL without a label, CSV without a label column
    writeFileSync(join(dir, 'data', 'unlabelled.jsonl'), rows.map((x) => JSON.stringify({ image: x.image, text: x.text })).join('\n'));
    writeFileSync(join(dir, 'data', 'unlabelled.csv'), `image,text\n${rows.map((x) => `${x.image},"${x.text}"`).join('\n')}\n`);
    const fromJsonl = await predictManifest(p, join(dir, 'data', 'unlabelled.jsonl'));
    const fromCsv = await predictManifest(p, join(dir, 'data', 'unlabelled.csv'));
    const single = await predict(p, rows.map((x) => ({ image: join(dir, 'data', x.image), text: x.text })));
    assert.equal(fromJsonl.length, 5);
    for (let i = 0; i < 5; i++) {
      assert.equal(fromJsonl[i]!.image, rows[i]!.image);
      assert.deepEqual(fromCsv[i], fromJsonl[i]);
      assert.deepEqual(Object.keys(single[i]!.probabilities).sort(), ['0', '1'], `row ${i}: one probability per label`);
      for (const [k, v] of Object.entries(single[i]!.probabilities)) assert.ok(Math.abs(v - fromJsonl[i]!.probabilities[k]!) < 1e-6, `row ${i} ${k}`);
    }
    // a label that is given is still checked, and image paths may not leave the manifest's folder
    writeFileSync(join(dir, 'data', 'bad.jsonl'), `${JSON.stringify({ image: rows[0]!.image, text: 'x', label: 'nope' })}\n${JSON.stringify({ image: '../../etc/passwd', text: 'x' })}\n`);
    await assert.rejects(predictManifest(p, join(dir, 'data', 'bad.jsonl')), /bad\.jsonl:1: unknown label "nope"[\s\S]*bad\.jsonl:2: image path "\.\.\/\.\.\/etc\/passwd" escapes the data root/);
    // the labelled val manifest through eval: the same probabilities give the same accuracy
    const labelled = await predictManifest(p, join(dir, 'data', 'val.jsonl'));
    const m = await evaluate(join(r.runDir, 'best'), join(dir, 'data', 'val.jsonl'));
    const truth = readFileSync(join(dir, 'data', 'val.jsonl'), 'utf8').trim().split('\n').map((l) => String((JSON.parse(l) as { label: unknown }).label));
    const acc = labelled.filter((x, i) => x.label === truth[i]).length / labelled.length;
    assert.ok(Math.abs(acc - m.accuracy) < 1e-12, `predict accuracy ${acc} vs eval ${m.accuracy}`);
  } finally {
    p.dispose();
  }
});

/** The eval records of a run's metrics.jsonl for a split. */
const evalRecords = (runDir: string, split = 'val') => readFileSync(join(runDir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l))
  .filter((r) => r.event === 'eval' && r.split === split) as { step: number; loss: number; accuracy: number }[];

test('best model and early stopping follow eval.metric\'s direction: the best step is that of the lowest val loss (highest accuracy), and patience stops at the first stale evaluation', async () => {
  const dir = await dataDir();
  for (const [metric, patience] of [['loss', 1], ['accuracy', 2]] as const) {
    const r = await train(resolveConfig({
      ...tinyConfig(dir, { train: { epochs: 12, lr: 3e-3 }, eval: { every: 4, metric, earlyStopping: { patience } } }), name: `es-${metric}`,
    }), { print: () => {} });
    const evals = evalRecords(r.runDir);
    // what a correct implementation does with these records: lower loss / higher accuracy is better, ties are not
    let best: { step: number; value: number } | null = null;
    let stale = 0;
    let stopAt = -1;
    evals.forEach((e, i) => {
      const v = metric === 'loss' ? e.loss : e.accuracy;
      if (stopAt >= 0) return;
      if (!best || (metric === 'loss' ? v < best.value : v > best.value)) { best = { step: e.step, value: v }; stale = 0; } else if (++stale >= patience) stopAt = i;
    });
    assert.ok(evals.length >= 2, `${metric}: ${evals.length} evaluations`);
    assert.deepEqual({ step: r.best!.step, value: r.best!.value }, best, `${metric}: best`);
    assert.equal(r.best!.metric, metric);
    assert.equal(r.stoppedEarly, stopAt >= 0, `${metric}: stopped early`);
    if (stopAt >= 0) assert.equal(evals.length, stopAt + 1, `${metric}: no evaluation after the stop`);
    // best/ holds the weights of the best step
    assert.equal(JSON.parse(readFileSync(join(r.runDir, 'best', 'trainer_state.json'), 'utf8')).step, r.best!.step);
  }
});

test('gradient accumulation: batch 4 x 2 micro-batches equals batch 8 (dropout off), weights within 1e-5 after 6 steps', async () => {
  const dir = await dataDir();
  const run = async (name: string, batchSize: number, gradAccumulation: number) => {
    const r = await train(resolveConfig({
      // eps 1e-4: Adam's step is sign-like for gradients near 0, where the two summation orders may disagree in the last bit
      ...tinyConfig(dir, { train: { maxSteps: 6, batchSize, gradAccumulation, lr: 3e-3, eps: 1e-4 }, checkpoint: { every: 6 } }), name,
      model: { ...tinyModel({ dropout: false }), fusion_attention_dropout: 0 },
    }), { print: () => {} });
    return loadSafetensors(join(r.runDir, 'checkpoints', 'step-00000006', 'model.safetensors')).tensors;
  };
  const whole = await run('whole', 8, 1);
  const accumulated = await run('accumulated', 4, 2);
  const other = await run('other', 4, 1);
  let maxDiff = 0;
  let maxOther = 0;
  assert.deepEqual([...accumulated.keys()].sort(), [...whole.keys()].sort(), 'the same weights in both runs');
  for (const [k, w] of whole) {
    tidy(() => {
      maxDiff = Math.max(maxDiff, w.sub(accumulated.get(k)!).abs().max().item());
      maxOther = Math.max(maxOther, w.sub(other.get(k)!).abs().max().item());
    });
  }
  assert.ok(maxDiff < 1e-5, `batch 8 vs 4 x 2: max weight difference ${maxDiff} (batch 4 alone: ${maxOther})`);
  assert.ok(maxOther > 1e-3, `batch 4 without accumulation should differ (${maxOther}): the comparison has power`);
});

test('the trainer logs the learning rates of PyTorch\'s schedulers (LinearLR warmup, then CosineAnnealingLR / LinearLR / ConstantLR through SequentialLR) at every step', async () => {
  const dir = await dataDir();
  // warmupRatio 0.1 of 50 steps is the same 5 steps of warmup
  for (const [type, warmup] of [['cosine', { warmupSteps: 5 }], ['linear', { warmupSteps: 5 }], ['constant', { warmupSteps: 5 }], ['cosine', { warmupRatio: 0.1 }]] as const) {
    // 80 training pairs in batches of 8 for 5 epochs: the fixture's 50 steps, 5 of warmup, decay to 0.1 x lr
    const r = await train(resolveConfig({
      ...tinyConfig(dir, { train: { epochs: 5, batchSize: 8, lr: 1e-2, schedule: { type, ...warmup, minLrRatio: 0.1 } }, checkpoint: { every: 1000, keepLast: 1 } }), name: `lr-${type}`,
      data: { train: join(dir, 'data', 'train.jsonl') }, // no val: only the learning rates matter here
    }), { print: () => {} });
    const logged = readFileSync(join(r.runDir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l))
      .filter((x) => x.event === 'train').map((x) => x.lr.classifier as number);
    const expected = ref.get(`${type}.lr`)!.toNumbers();
    assert.equal(logged.length, 50, `${type}: steps logged`);
    logged.forEach((lr, s) => assert.ok(Math.abs(lr - expected[s]!) <= 1e-12 + 1e-9 * expected[s]!, `${type} step ${s}: trainer lr ${lr}, PyTorch ${expected[s]}`));
  }
});

test('checkpoints: keepLast keeps the newest N, saveBest false writes no best/, and every kept one loads', async () => {
  const dir = await dataDir();
  const r = await train(resolveConfig({
    ...tinyConfig(dir, { train: { maxSteps: 9 }, checkpoint: { every: 2, keepLast: 2, saveBest: false } }), name: 'keep',
  }), { print: () => {} });
  assert.deepEqual(readdirSync(join(r.runDir, 'checkpoints')).sort(), ['step-00000008', 'step-00000009']);
  assert.ok(!existsSync(join(r.runDir, 'best')));
  const saves = readFileSync(join(r.runDir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l)).filter((x) => x.event === 'checkpoint').map((x) => x.step);
  assert.deepEqual(saves, [2, 4, 6, 8, 9]);
  assert.equal(listCheckpoints(r.runDir).length, 2, 'the two kept checkpoints are listed');
  for (const c of listCheckpoints(r.runDir)) FusionClassifier.fromPretrained(c).dispose();
});

test('TensorBoard framing: CRC-32C against the published vectors (RFC 3720 B.4, "123456789"), masked as TFRecord specifies', async () => {
  const { crc32c, maskedCrc, tfRecord } = await import('../src/diagnostics/tensorboard.js');
  const bytes = (f: (i: number) => number) => Uint8Array.from({ length: 32 }, (_, i) => f(i));
  assert.equal(crc32c(bytes(() => 0)), 0x8a9136aa);
  assert.equal(crc32c(bytes(() => 0xff)), 0x62a8ab43);
  assert.equal(crc32c(bytes((i) => i)), 0x46dd794e);
  assert.equal(crc32c(bytes((i) => 31 - i)), 0x113fdb5c);
  assert.equal(crc32c(Buffer.from('123456789')), 0xe3069283);
  // mask(c) = ((c >>> 15) | (c << 17)) + 0xa282ead8, worked out by hand for c = 0xe3069283
  assert.equal(maskedCrc(Buffer.from('123456789')), 0xc78ab0e5);
  // a record: length (u64 LE), masked CRC of those 8 bytes, the data, masked CRC of the data
  const rec = tfRecord(Buffer.from('123456789'));
  assert.equal(rec.readBigUInt64LE(0), 9n);
  assert.equal(rec.readUInt32LE(8), maskedCrc(rec.subarray(0, 8)));
  assert.equal(rec.subarray(12, 21).toString(), '123456789');
  assert.equal(rec.readUInt32LE(21), 0xc78ab0e5);
});

test('TensorBoard: an event file written by PyTorch\'s own SummaryWriter reads back to its scalars, and mmtrain encodes the same events to the same bytes', async () => {
  const { readScalars, eventRecord } = await import('../src/diagnostics/tensorboard.js');
  const dir = join(FIXTURES, 'tensorboard');
  const file = readFileSync(join(dir, 'events.out.tfevents.pytorch'));
  const expected = JSON.parse(readFileSync(join(dir, 'expected.json'), 'utf8')) as { records: { step: number; tag: string; value: number | 'NaN'; wall_time: number }[] };
  const got = readScalars(file);
  assert.equal(got.length, expected.records.length);
  assert.equal(got.length, 22, 'the fixture\'s 22 scalars');
  got.forEach((g, i) => {
    const e = expected.records[i]!;
    assert.equal(g.tag, e.tag);
    assert.equal(g.step, e.step);
    if (e.value === 'NaN') assert.ok(Number.isNaN(g.value));
    else assert.equal(g.value, Math.fround(e.value), `${e.tag}@${e.step}`); // simple_value is a float32
  });
  // PyTorch's file: a file_version record, then one record per scalar; ours must encode each byte for byte
  let off = 0;
  const records: Buffer[] = [];
  while (off < file.length) {
    const len = Number(file.readBigUInt64LE(off));
    records.push(file.subarray(off, off + 12 + len + 4));
    off += 12 + len + 4;
  }
  assert.equal(records.length, expected.records.length + 1);
  expected.records.forEach((e, i) => {
    const ours = eventRecord({ wall_time: e.wall_time, step: e.step, summary: { value: [{ tag: e.tag, simple_value: e.value === 'NaN' ? NaN : e.value }] } });
    assert.deepEqual(ours, records[i + 1], `record ${i + 1} (${e.tag}@${e.step})`);
  });
  // a corrupted byte is found by the CRC
  const bad = Buffer.from(file);
  bad[records[0]!.length + 20]! ^= 1;
  assert.throws(() => readScalars(bad), /bad data CRC at byte \d+/);
});

test('resume after non-finite rollbacks keeps the lr scale and skip counters: the run continues as if never stopped', async () => {
  const dir = await dataDir();
  // poison the gradients of the step that starts at `step`, `times` attempts in a row (each run has its own budget)
  const poisoner = () => {
    const left = new Map([[3, 1], [12, 2], [17, 2]]);
    return {
      onAfterBackward: (ctx: any, info: { step: number }) => {
        const n = left.get(info.step) ?? 0;
        if (n === 0) return;
        left.set(info.step, n - 1);
        noGrad(() => { const g = ctx.model.classifier.parameters()[0].grad; g.fill_(NaN); g.dispose(); });
      },
    };
  };
  const cfg = (name: string) => resolveConfig({ ...tinyConfig(dir, { train: { maxSteps: 22, maxNonFinite: 2 }, checkpoint: { every: 5, keepLast: 10 } }), name });
  const quiet = { print: () => {} };
  const straight = await train(cfg('straight'), { ...quiet, callbacks: [poisoner()] });
  const ac = new AbortController();
  // interrupted at step 14, after the first rollback (to step 10, lr halved) and before the second
  const first = await train(cfg('split'), { ...quiet, signal: ac.signal, callbacks: [poisoner(), { onStepEnd: (_c: any, s: any) => { if (s.step === 14) ac.abort(); } }] });
  assert.equal(first.interrupted, true);
  const mid = JSON.parse(readFileSync(join(listCheckpoints(first.runDir).pop()!, 'trainer_state.json'), 'utf8'));
  assert.equal(mid.lrScale, 0.5);
  assert.equal(mid.nonFiniteSkipped, 3);
  const second = await train(cfg('split'), { ...quiet, resume: first.runDir, callbacks: [poisoner()] });
  for (const r of [straight, second]) {
    assert.equal(r.steps, 22);
    assert.equal(r.nonFiniteSkipped, 5);
    const end = JSON.parse(readFileSync(join(listCheckpoints(r.runDir).pop()!, 'trainer_state.json'), 'utf8'));
    assert.equal(end.lrScale, 0.25);
  }
  const events = (d: string, kind: string) => readFileSync(join(d, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l)).filter((e) => e.event === kind);
  assert.equal(events(straight.runDir, 'rollback').length, 2);
  assert.deepEqual(events(first.runDir, 'rollback').map((e) => [e.step, e.lr_scale]), events(straight.runDir, 'rollback').map((e) => [e.step, e.lr_scale]));
  assert.deepEqual(events(first.runDir, 'train').map((e) => [e.step, e.loss, e.lr]), events(straight.runDir, 'train').map((e) => [e.step, e.loss, e.lr]));
  assertSameFinalWeights(straight.runDir, second.runDir);
  rmSync(dir, { recursive: true });
});

test('gradient accumulation resumed: a Ctrl-C during the micro-batches of a step finishes that step, and the resumed run equals the straight one bit for bit', async () => {
  const dir = await dataDir();
  const cfg = (name: string) => resolveConfig({ ...tinyConfig(dir, { train: { maxSteps: 12, batchSize: 4, gradAccumulation: 3 }, checkpoint: { every: 4 } }), name });
  const quiet = { print: () => {} };
  const straight = await train(cfg('straight'), quiet);
  const ac = new AbortController();
  let forwards = 0;
  // the 2nd micro-batch of step 5 (0-based: forward 4 * 3 + 1)
  const first = await train(cfg('split'), { ...quiet, signal: ac.signal, callbacks: [{ onForward: () => { if (forwards++ === 4 * 3 + 1) ac.abort(); } }] });
  assert.equal(first.interrupted, true);
  assert.equal(first.steps, 5);
  const state = JSON.parse(readFileSync(join(listCheckpoints(first.runDir).pop()!, 'trainer_state.json'), 'utf8'));
  assert.equal(state.step, 5);
  assert.ok(state.position > 0 && state.position % 3 === 0, `the cursor stops at a step's end, mid-epoch (${state.position} micro-batches)`);
  const second = await train(cfg('split'), { ...quiet, resume: first.runDir });
  assert.equal(second.steps, 12);
  assert.ok(trainLosses(straight.runDir).length >= 12, 'the straight run logged its losses');
  assert.deepEqual(trainLosses(first.runDir), trainLosses(straight.runDir));
  assertSameFinalWeights(straight.runDir, second.runDir);
  rmSync(dir, { recursive: true });
});

test('label smoothing reaches the trainer\'s loss: each logged loss equals (1 - e) * CE + e * mean(-log p) of that step\'s logits, computed here by hand', async () => {
  const dir = await dataDir();
  const seen: { logits: number[][]; labels: number[] }[] = [];
  const record = { onForward: (_c: any, o: any) => { seen.push({ logits: o.outputs.logits.float().toNested() as number[][], labels: o.labels.toNumbers() }); } };
  const run = async (name: string, labelSmoothing: number) => {
    seen.length = 0;
    const r = await train(resolveConfig({ ...tinyConfig(dir, { train: { maxSteps: 5, labelSmoothing } }), name }), { print: () => {}, callbacks: [record] });
    return { losses: trainLosses(r.runDir).map(([, l]) => l as number), steps: seen.slice() };
  };
  const byHand = (logits: number[][], labels: number[], e: number) => {
    let total = 0;
    logits.forEach((row, i) => {
      const m = Math.max(...row);
      const lse = m + Math.log(row.reduce((s, x) => s + Math.exp(x - m), 0));
      const logp = row.map((x) => x - lse);
      total += -(1 - e) * logp[labels[i]!]! - e * logp.reduce((s, x) => s + x, 0) / row.length;
    });
    return total / logits.length;
  };
  for (const e of [0, 0.2]) {
    const { losses, steps } = await run(`ls${e}`, e);
    assert.equal(losses.length, 5);
    assert.equal(steps.length, 5);
    let power = 0;
    steps.forEach((s, i) => {
      const want = byHand(s.logits, s.labels, e);
      assert.ok(Math.abs(losses[i]! - want) < 1e-5, `label smoothing ${e}, step ${i + 1}: logged ${losses[i]} vs ${want} by hand`);
      power = Math.max(power, Math.abs(byHand(s.logits, s.labels, 0.2 - e) - want));
    });
    // the other smoothing gives numbers the tolerance tells apart: the check has power
    assert.ok(power > 1e-4, `smoothing 0 and 0.2 differ by at most ${power} here`);
  }
  rmSync(dir, { recursive: true });
});

test('bf16 training (autocast) tracks fp32: the same run\'s losses agree within bf16\'s precision, yet differ (autocast is on), and the weights stay float32', async () => {
  const dir = await dataDir();
  const run = async (precision: 'fp32' | 'bf16') => {
    const r = await train(resolveConfig({ ...tinyConfig(dir, { train: { maxSteps: 24, precision, lr: 3e-3 }, model: { head_dropout: 0 } }), name: precision }), { print: () => {} });
    return { r, losses: trainLosses(r.runDir).map(([, l]) => l as number) };
  };
  const fp32 = await run('fp32');
  const bf16 = await run('bf16');
  assert.equal(bf16.losses.length, 24);
  assert.equal(fp32.losses.length, 24);
  const diffs = fp32.losses.map((l, i) => Math.abs(l - bf16.losses[i]!));
  // bf16 keeps 8 bits of mantissa (2^-9 relative per rounding); measured here: 1e-4 at step 1, at most 0.004 over
  // the run (loss about 0.68). Tolerances: 0.001 at step 1, 0.01 at every step
  assert.ok(diffs[0]! < 0.001, `step 1: fp32 ${fp32.losses[0]} vs bf16 ${bf16.losses[0]}`);
  diffs.forEach((d, i) => assert.ok(d < 0.01, `step ${i + 1}: fp32 ${fp32.losses[i]} vs bf16 ${bf16.losses[i]}`));
  assert.ok(Math.max(...diffs) > 1e-6, 'bf16 gave fp32\'s losses exactly: autocast did not run');
  const mean = (a: number[]) => a.reduce((s, x) => s + x, 0) / a.length;
  assert.ok(Math.abs(mean(fp32.losses.slice(-8)) - mean(bf16.losses.slice(-8))) < 0.005, 'the last 8 steps\' mean losses within 0.005');
  const weights = loadSafetensors(join(listCheckpoints(bf16.r.runDir).pop()!, 'model.safetensors')).tensors;
  assert.ok(weights.size > 0, 'no weights in the bf16 run\'s checkpoint');
  for (const [k, t] of weights) assert.equal(t.dtype, 'float32', k);
  rmSync(dir, { recursive: true });
});
