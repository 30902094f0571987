// Pretraining end to end through the trainer: masked language modelling on a .txt corpus and masked image
// modelling on a manifest (loss falls, probes logged, Hugging Face folders that load as BertModel / ViTModel and as a
// fusion model's encoders), exact resume, encoders frozen until an epoch, `mmtrain probe`, the configuration's
// checks, and the statistics the finetune-regime study reports.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateSynthetic } from '../src/data/synth.js';
import { readTextCorpus } from '../src/data/text-corpus.js';
import { loadTower } from '../src/models/encoders.js';
import { readSafetensorsHeader } from '../src/tensor/safetensors.js';
import { resolveConfig } from '../src/train/config.js';
import { pretrain, pretrainConfig } from '../src/train/pretrain.js';
import { probeModel } from '../src/train/probe-run.js';
import { readRecords } from '../src/train/records.js';
import { train } from '../src/train/trainer.js';
import { meanCi95, t975, welchDiff95 } from '../src/stats.js';
import { FIXTURES, tinyModel } from './helpers.js';
import { spawnSync } from 'node:child_process';
import { BertForMaskedLM } from '../src/models/bert-mlm.js';
import { ViTForMaskedImageModeling } from '../src/models/vit-mim.js';
import { saveSafetensors } from '../src/tensor/safetensors.js';
import { manualSeed, noGrad } from '../src/tensor/modes.js';
import { tidy } from '../src/tensor/scope.js';
import { rand, randint, tensor } from '../src/tensor/tensor.js';

const dir = mkdtempSync(join(tmpdir(), 'mmtrain-pretrain-'));
let data = '';
const quiet = { print: () => {} };
const small = (modality: 'text' | 'image', extra: Record<string, unknown> = {}) => ({
  model: tinyModel({ dropout: false }),
  data: { maxLength: 16 },
  train: { batchSize: 16, threads: 2 },
  log: { tensorboard: false, progress: 'none', every: 2 },
  diagnostics: { every: 4 },
  checkpoint: { keepLast: 1 },
  ...extra,
  ...(modality === 'image' ? {} : {}),
});

test('setup: a small synthetic set and a caption corpus', async () => {
  data = join(dir, 'data');
  await generateSynthetic({ out: data, n: 120, imageSize: 16, seed: 3 });
  const lines = readFileSync(join(data, 'train.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l).text as string);
  writeFileSync(join(dir, 'captions.txt'), `${lines.map((t) => `${t} . the shape is ${t.split(' ').pop()} .`).join('\n')}\n\n`);
  // probe set: the colour named in each caption
  const probe = readFileSync(join(data, 'val.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { image: string; text: string })
    .map((r) => JSON.stringify({ image: r.image, text: r.text, label: r.text.split(' ')[1] })).join('\n');
  writeFileSync(join(data, 'probe-color.jsonl'), `${probe}\n`);
});

test('a .txt corpus: one sample per non-blank line, named by file:line; an empty one is refused', () => {
  const m = readTextCorpus('data.train', [join(dir, 'captions.txt')]);
  assert.equal(m.samples.length, 96);
  assert.match(m.samples[1]!.where, /captions\.txt:2$/);
  assert.equal(m.samples[0]!.label, -1);
  writeFileSync(join(dir, 'empty.txt'), '\n \n');
  assert.throws(() => readTextCorpus('data.train', [join(dir, 'empty.txt')]), /data\.train: .*empty\.txt holds no text \(expected one text per line\)/);
});

test('mmtrain pretrain --modality text: MLM loss falls, probes at start and each validation, a BertForMaskedLM folder that loads as BertModel and as a fusion encoder', async () => {
  const c = pretrainConfig({ modality: 'text', data: join(dir, 'captions.txt'), val: join(data, 'val.jsonl'), out: join(dir, 'text'), base: small('text'), epochs: 6, lr: 3e-3, probe: [join(data, 'probe-color.jsonl')] });
  const r = await pretrain(c, join(dir, 'text'), quiet);
  assert.equal(r.modelDir, join(dir, 'text'));
  const recs = readRecords(join(dir, 'text', 'run', 'metrics.jsonl'));
  const evals = recs.filter((x) => x.event === 'eval');
  assert.equal(evals.length, 6);
  assert.ok(evals[5]!.loss < evals[0]!.loss - 0.5, `MLM validation loss falls: ${evals.map((e) => e.loss.toFixed(2)).join(' ')}`);
  assert.ok(evals[5]!.accuracy > 0 && evals[5]!.accuracy <= 1);
  const probes = recs.filter((x) => x.event === 'probe');
  assert.deepEqual(probes.map((p) => p.when), ['start', 'val', 'val', 'val', 'val', 'val', 'val']);
  // diagnostics by role: BERT is the text encoder, the MLM head the classifier
  assert.ok(recs.some((x) => x.event === 'diagnostics' && x.grad_norm.text_encoder > 0 && x.grad_norm.classifier > 0 && x.grad_norm_layer['text_encoder.layer.1'] > 0));
  // the folder: Hugging Face's BertForMaskedLM layout with the tokenizer beside it
  const cfg = JSON.parse(readFileSync(join(dir, 'text', 'config.json'), 'utf8'));
  assert.deepEqual(cfg.architectures, ['BertForMaskedLM']);
  assert.ok(existsSync(join(dir, 'text', 'tokenizer.json')));
  const keys = [...readSafetensorsHeader(join(dir, 'text', 'model.safetensors')).tensors.keys()];
  assert.ok(keys.includes('cls.predictions.bias') && keys.includes('bert.embeddings.word_embeddings.weight') && !keys.some((k) => k.includes('decoder')));
  const t = loadTower('text', join(dir, 'text'));
  assert.equal(t.model.config.model_type, 'bert');
  assert.deepEqual(t.report.unexpected.filter((k) => !k.startsWith('cls.')), []);
  t.model.dispose();
  // as the text encoder of a fusion model, trained
  const ft = resolveConfig({ ...small('text'), model: { ...tinyModel({ dropout: false }), text: { pretrained: join(dir, 'text') } }, data: { train: join(data, 'train.jsonl'), val: join(data, 'val.jsonl'), maxLength: 16 }, train: { epochs: 1, batchSize: 16, threads: 2 } }, 'test');
  assert.equal(ft.data.tokenizer, join(dir, 'text', 'tokenizer.json'));
  const fr = await train(ft, { ...quiet, runDir: join(dir, 'ft-text') });
  assert.ok(fr.finalVal!.accuracy >= 0);
});

test('mmtrain pretrain --modality image: MIM loss falls; a ViT folder with its preprocessor config that loads as ViTModel; probeModel reads it', async () => {
  const c = pretrainConfig({ modality: 'image', data: join(data, 'train.jsonl'), val: join(data, 'val.jsonl'), out: join(dir, 'image'), base: small('image'), epochs: 6, lr: 3e-3 });
  const r = await pretrain(c, join(dir, 'image'), quiet);
  const evals = readRecords(join(dir, 'image', 'run', 'metrics.jsonl')).filter((x) => x.event === 'eval');
  assert.ok(evals[5]!.loss < evals[0]!.loss, `MIM validation loss falls: ${evals.map((e) => e.loss.toFixed(3)).join(' ')}`);
  assert.equal(evals[0]!.accuracy, null, 'no accuracy for pixel reconstruction (NaN is written as null)');
  assert.equal(r.finalVal!.macro_f1, r.finalVal!.macro_f1 === null ? null : NaN);
  const cfg = JSON.parse(readFileSync(join(dir, 'image', 'config.json'), 'utf8'));
  assert.deepEqual(cfg.architectures, ['ViTForMaskedImageModeling']);
  const pre = JSON.parse(readFileSync(join(dir, 'image', 'preprocessor_config.json'), 'utf8'));
  assert.deepEqual(pre.size, { height: 16, width: 16 });
  const v = loadTower('image', join(dir, 'image'));
  assert.equal(v.model.config.image_size, 16);
  v.model.dispose();
  const p = await probeModel(join(dir, 'image'), 'image', join(data, 'probe-color.jsonl'), { batchSize: 32, device: 'cpu' });
  assert.ok(p.accuracy !== null && p.accuracy >= 0 && p.accuracy <= 1);
  assert.equal(p.n, 12);
  await assert.rejects(pretrain(c, join(dir, 'image'), quiet), /holds a pretrained model already/);
});

test('the pretrained folders load in the Python reference (Hugging Face\'s BertForMaskedLM / ViTForMaskedImageModeling math) and give mmtrain\'s outputs', (t) => {
  if (spawnSync('/usr/bin/python3', ['-c', 'import torch'], { stdio: 'ignore' }).status !== 0) {
    t.skip('/usr/bin/python3 with PyTorch (python3-torch) is not installed here');
    return;
  }
  manualSeed(9);
  const io = join(dir, 'io.safetensors');
  const check = (modality: string) => spawnSync('/usr/bin/python3', [join(FIXTURES, 'check_pretrained.py'), join(dir, modality), modality, io], { cwd: FIXTURES, encoding: 'utf8' });
  const mlm = BertForMaskedLM.fromPretrained(join(dir, 'text')).model.eval();
  try {
    noGrad(() => tidy(() => {
      const ids = randint(1000, 2000, [3, 7]);
      const mask = tensor([[1, 1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 1, 1, 0]], { dtype: 'int64' });
      const labels = tensor([[-100, 1500, -100, -100, 1600, -100, -100], [-100, -100, 1700, -100, -100, -100, -100], [-100, -100, -100, 1800, -100, 1900, -100]], { dtype: 'int64' });
      const out = mlm.forward(ids, mask, null, labels);
      saveSafetensors(io, new Map([['input_ids', ids], ['attention_mask', mask], ['labels', labels], ['hidden', out.hidden], ['logits', out.logits], ['loss', out.loss!.reshape(1)]]));
    }));
  } finally {
    mlm.dispose();
  }
  const r = check('text');
  assert.equal(r.status, 0, `${r.stdout}${r.stderr}`);
  const mim = ViTForMaskedImageModeling.fromPretrained(join(dir, 'image')).model.eval();
  try {
    noGrad(() => tidy(() => {
      const px = rand([2, 3, 16, 16]).sub(0.5).mul(4);
      const masked = tensor([[1, 0, 0, 1], [0, 1, 1, 1]], { dtype: 'int64' });
      const out = mim.forward(px, masked);
      saveSafetensors(io, new Map([['pixel_values', px], ['bool_masked_pos', masked], ['hidden', out.hidden], ['reconstruction', out.reconstruction], ['loss', out.loss!.reshape(1)]]));
    }));
  } finally {
    mim.dispose();
  }
  const ri = check('image');
  assert.equal(ri.status, 0, `${ri.stdout}${ri.stderr}`);
});

test('an interrupted pretraining resumes to the same weights as an uninterrupted one (masks drawn from seed, epoch and sample)', async () => {
  const c = () => pretrainConfig({ modality: 'text', data: join(dir, 'captions.txt'), out: '', base: { ...small('text'), checkpoint: { keepLast: 1, every: 3 } }, epochs: 2, lr: 1e-3 });
  await pretrain(c(), join(dir, 'whole'), quiet);
  const ac = new AbortController();
  const cut = await pretrain(c(), join(dir, 'cut'), { ...quiet, signal: ac.signal, callbacks: [{ onStepEnd: (_ctx, s) => { if (s.step === 5) ac.abort(); } }] });
  assert.equal(cut.interrupted, true);
  assert.equal(cut.modelDir, null);
  await assert.rejects(pretrain(c(), join(dir, 'cut'), quiet), /holds a pretraining run already .*add --resume/);
  const resumed = await pretrain(c(), join(dir, 'cut'), { ...quiet, resume: true });
  assert.equal(resumed.steps, 12);
  assert.deepEqual(readFileSync(join(dir, 'cut', 'model.safetensors')), readFileSync(join(dir, 'whole', 'model.safetensors')));
});

test('model.freeze.untilEpoch: encoders get no gradient before that epoch, then train', async () => {
  const c = resolveConfig({
    ...small('text'), model: { ...tinyModel({ dropout: false }), freeze: { text: true, image: true, untilEpoch: 1 } },
    data: { train: join(data, 'train.jsonl'), val: join(data, 'val.jsonl'), maxLength: 16 }, train: { epochs: 2, batchSize: 16, threads: 2 }, diagnostics: { every: 1 },
  }, 'test');
  await train(c, { ...quiet, runDir: join(dir, 'until') });
  const d = readRecords(join(dir, 'until', 'metrics.jsonl')).filter((x) => x.event === 'diagnostics');
  assert.ok(d.filter((x) => x.epoch === 0).every((x) => x.grad_norm.text_encoder === undefined && x.grad_norm.image_encoder === undefined && x.grad_norm.classifier > 0));
  assert.ok(d.filter((x) => x.epoch === 1).every((x) => x.grad_norm.text_encoder > 0 && x.grad_norm.image_encoder > 0));
});

test('pretraining and freezing settings are checked with the key and the fix', () => {
  const base = { data: { train: 'x.jsonl' } };
  assert.throws(() => resolveConfig({ ...base, pretrain: { modality: 'text' }, model: { freeze: { text: true } } }, 'c'), /model\.freeze: pretraining trains its one encoder; remove model\.freeze/);
  assert.throws(() => resolveConfig({ ...base, pretrain: { modality: 'image' } }, 'c'), /eval\.metric: image pretraining has no accuracy .* use loss/);
  assert.throws(() => resolveConfig({ ...base, pretrain: { modality: 'text' }, diagnostics: { probeSets: [{ data: 'p.jsonl', modality: 'image' }] } }, 'c'), /diagnostics\.probeSets\[0\]\.modality: pretraining trains the text encoder; expected text, received image/);
  assert.throws(() => resolveConfig({ ...base, pretrain: { modality: 'text', mlmProbability: 1.5 } }, 'c'), /pretrain\.mlmProbability/);
  assert.throws(() => resolveConfig({ ...base, model: { freeze: { untilEpoch: 1 } } }, 'c'), /model\.freeze\.untilEpoch: nothing is frozen/);
  assert.throws(() => resolveConfig({ ...base, model: { freeze: { text: true, untilEpoch: 3 } }, train: { epochs: 3 } }, 'c'), /model\.freeze\.untilEpoch: expected an epoch before train\.epochs \(3\), received 3/);
});

test('pretrain options are paths of the working directory, whatever folder the config file is in', () => {
  const c = pretrainConfig({ modality: 'text', data: 'captions.txt', val: 'data/val.jsonl', probe: ['data/probe-color.jsonl'], out: '', base: small('text'), baseDir: data, from: 'text' });
  assert.equal(c.data.train, join(process.cwd(), 'captions.txt'));
  assert.equal(c.data.val, join(process.cwd(), 'data', 'val.jsonl'));
  assert.equal(c.diagnostics.probeSets[0]!.data, join(process.cwd(), 'data', 'probe-color.jsonl'));
  assert.equal(c.model.text!.pretrained, join(process.cwd(), 'text'));
});

test('pretraining a text encoder other than BERT is refused by name', async () => {
  const c = pretrainConfig({ modality: 'text', data: join(dir, 'captions.txt'), out: '', base: { ...small('text'), model: { text: { preset: 'distilbert-tiny' } } }, epochs: 1 });
  await assert.rejects(pretrain(c, join(dir, 'distil'), quiet), /model\.text: pretraining with masked language modelling supports BERT encoders \(model_type bert\); preset distilbert-tiny is model_type distilbert/);
});

test('statistics: Student t critical values, 95% intervals and Welch differences against reference values', () => {
  assert.equal(t975(4), 2.776);
  assert.ok(Math.abs(t975(60) - 2.0003) < 1e-3 && Math.abs(t975(1000) - 1.9623) < 1e-3);
  const ci = meanCi95([1, 2, 3, 4, 5]);
  assert.equal(ci.mean, 3);
  assert.ok(Math.abs(ci.half - 2.776 * Math.sqrt(2.5) / Math.sqrt(5)) < 1e-12);
  // scipy.stats.ttest_ind(a, b, equal_var=False): df 7.03, t 0.975 quantile 2.3646 (here the table's df 7: 2.365)
  const w = welchDiff95([0.8, 0.82, 0.79, 0.85, 0.81], [0.7, 0.75, 0.68, 0.72, 0.74]);
  assert.ok(Math.abs(w.diff - 0.096) < 1e-12);
  assert.ok(Math.abs(w.half - 2.365 * Math.sqrt(0.00053 / 5 + 0.00082 / 5)) < 1e-4, String(w.half));
  assert.ok(Number.isNaN(meanCi95([1]).half));
});
