// DistilBERT, RoBERTa and DeiT against a plain-PyTorch reference of Hugging Face's math
// (test/fixtures/gen_towers.py): each loaded from a hub-layout checkpoint (model prefix, heads to skip), outputs and
// every weight's gradient within 1e-4 in float32; and what a wrong checkpoint or input gets.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadSafetensors, randn, saveSafetensors, tensor, tidy, type Tensor } from '../src/index.js';
import { DeiTModel } from '../src/models/deit.js';
import { DistilBertModel } from '../src/models/distilbert.js';
import { RobertaModel } from '../src/models/roberta.js';
import type { EncoderOutputs } from '../src/models/towers.js';
import type { Module } from '../src/nn/module.js';
import { FIXTURES, ROOT } from './helpers.js';
import { spawnSync } from 'node:child_process';

const DIR = join(FIXTURES, 'models');
const io = loadSafetensors(join(DIR, 'towers_io.safetensors')).tensors;
const get = (k: string) => {
  const t = io.get(k);
  assert.ok(t, `fixture ${k} missing`);
  return t;
};
const maxAbsDiff = (a: Tensor, b: Tensor) => {
  assert.deepEqual(a.shape, b.shape);
  return tidy(() => a.sub(b).abs().max().item());
};
const TOL = 1e-4;

/** Forward, the reference's loss, backward; outputs and every parameter's gradient against the reference. */
function checkParity(name: string, model: Module, forward: () => EncoderOutputs) {
  model.eval();
  tidy(() => {
    const out = forward();
    const dh = maxAbsDiff(out.lastHiddenState, get(`${name}.last_hidden_state`));
    assert.ok(dh <= TOL, `${name} last hidden state: ${dh}`);
    let loss = out.lastHiddenState.mul(get(`${name}.gh`)).sum();
    if (io.has(`${name}.pooler_output`)) {
      const dp = maxAbsDiff(out.poolerOutput!, get(`${name}.pooler_output`));
      assert.ok(dp <= TOL, `${name} pooler: ${dp}`);
      loss = loss.add(out.poolerOutput!.mul(get(`${name}.gp`)).sum());
    } else {
      assert.equal(out.poolerOutput, null);
    }
    loss.backward();
  });
  let worst = 0;
  let n = 0;
  for (const [k, p] of model.namedParameters()) {
    const ref = get(`${name}.grad.${k}`);
    assert.ok(p.grad, `${name} ${k}: no gradient`);
    const d = maxAbsDiff(p.grad, ref);
    const scale = tidy(() => ref.abs().max().item());
    assert.ok(d <= TOL * Math.max(1, scale), `${name} gradient of ${k}: ${d} (largest ${scale})`);
    worst = Math.max(worst, d);
    n++;
  }
  assert.equal(n, [...io.keys()].filter((k) => k.startsWith(`${name}.grad.`)).length, 'every reference gradient compared');
  return worst;
}

test('DistilBERT loads a DistilBertForMaskedLM checkpoint and matches the reference, gradients included', () => {
  const { model, report } = DistilBertModel.fromPretrained(join(DIR, 'distilbert'));
  assert.deepEqual(report.missing, []);
  assert.deepEqual(report.unexpected.sort(), ['vocab_layer_norm.bias', 'vocab_layer_norm.weight', 'vocab_projector.bias', 'vocab_projector.weight', 'vocab_transform.bias', 'vocab_transform.weight']);
  checkParity('distilbert', model, () => model.forward(get('distilbert.input_ids'), get('distilbert.attention_mask')));
  assert.equal(model.hiddenSize, 32);
  assert.equal(model.stages().layers.length, 2);
  assert.throws(() => model.forward(tensor([Array(25).fill(2)], { dtype: 'int64' })), /DistilBERT input has 25 tokens but max_position_embeddings is 24/);
  model.dispose();
});

test('RoBERTa loads a RobertaForMaskedLM checkpoint and matches the reference: positions counted after the padding id', () => {
  const { model, report } = RobertaModel.fromPretrained(join(DIR, 'roberta'));
  assert.deepEqual(report.missing, []);
  assert.deepEqual(report.unexpected.sort(), ['lm_head.bias', 'lm_head.dense.bias', 'lm_head.dense.weight', 'lm_head.layer_norm.bias', 'lm_head.layer_norm.weight']);
  checkParity('roberta', model, () => model.forward(get('roberta.input_ids'), get('roberta.attention_mask')));
  // a text padded further gives its real tokens the same states (positions do not count padding)
  tidy(() => {
    const ids = get('roberta.input_ids');
    const padded = tensor([[...ids.toNumbers().slice(0, 7), 1, 1]], { dtype: 'int64' });
    const a = model.forward(ids.slice(0, 0, 1), get('roberta.attention_mask').slice(0, 0, 1)).lastHiddenState.slice(1, 0, 5);
    const b = model.forward(padded, padded.ne(1).to('int64')).lastHiddenState.slice(1, 0, 5);
    assert.ok(maxAbsDiff(a, b) <= 1e-5);
  });
  assert.throws(() => model.forward(tensor([Array(19).fill(5)], { dtype: 'int64' })), /RoBERTa input has 19 tokens but max_position_embeddings is 20 \(positions start after the padding id 1\): truncate the text to 18 tokens/);
  model.dispose();
});

test('DeiT loads a DeiTForImageClassificationWithTeacher checkpoint and matches the reference: [CLS], [DIST], patches', () => {
  const { model, report } = DeiTModel.fromPretrained(join(DIR, 'deit'));
  assert.deepEqual(report.missing, []);
  assert.deepEqual(report.unexpected.sort(), ['cls_classifier.bias', 'cls_classifier.weight', 'distillation_classifier.bias', 'distillation_classifier.weight']);
  checkParity('deit', model, () => model.forward(get('deit.pixel_values')));
  tidy(() => {
    // another image size: the patch positions are interpolated, both special tokens kept
    const out = model.forward(randn([1, 3, 48, 40]));
    assert.deepEqual(out.lastHiddenState.shape, [1, 2 + 6 * 5, 32]);
  });
  assert.throws(() => model.forward(randn([1, 3, 30, 32])), /DeiT: image size 30x32 is not a multiple of patch_size 8/);
  model.dispose();
});

test('CLIP\'s towers load from CLIPTextModel / CLIPVisionModel folders and out of a full CLIPModel folder, and match the reference', async () => {
  const { CLIPTextModel, CLIPVisionModel } = await import('../src/models/clip.js');
  const { loadTower } = await import('../src/models/encoders.js');
  const text = CLIPTextModel.fromPretrained(join(DIR, 'clip_text'));
  assert.deepEqual([text.report.missing, text.report.unexpected], [[], []]);
  checkParity('clip_text', text.model, () => text.model.forward(get('clip_text.input_ids'), get('clip_text.attention_mask')));
  text.model.dispose();
  const vision = CLIPVisionModel.fromPretrained(join(DIR, 'clip_vision'));
  assert.deepEqual([vision.report.missing, vision.report.unexpected], [[], []]);
  checkParity('clip_vision', vision.model, () => vision.model.forward(get('clip_vision.pixel_values')));
  assert.throws(() => vision.model.forward(randn([1, 3, 48, 48])), /CLIP vision: image size 48x48, expected 32x32 \(the checkpoint's image_size\): set data\.image\.size to 32/);
  vision.model.dispose();
  // each tower out of the CLIPModel folder: the other tower and logit_scale skipped, its own projection reported
  const t = loadTower('text', join(DIR, 'clip'));
  assert.ok(t.model instanceof CLIPTextModel);
  assert.deepEqual([t.report.missing, t.report.unexpected], [[], ['text_projection.weight']]);
  checkParity('clip_text', t.model, () => t.model.forward(get('clip_text.input_ids'), get('clip_text.attention_mask'), null));
  t.model.dispose();
  const v = loadTower('image', join(DIR, 'clip'));
  assert.deepEqual([v.report.missing, v.report.unexpected], [[], ['visual_projection.weight']]);
  checkParity('clip_vision', v.model, () => v.model.forward(get('clip_vision.pixel_values')));
  v.model.dispose();
});

test('SigLIP\'s towers load from their own folders and out of a full SiglipModel folder, and match the reference (attention-pooling head included)', async () => {
  const { SiglipTextModel, SiglipVisionModel } = await import('../src/models/siglip.js');
  const { loadTower } = await import('../src/models/encoders.js');
  const text = SiglipTextModel.fromPretrained(join(DIR, 'siglip_text'));
  assert.deepEqual([text.report.missing, text.report.unexpected], [[], []]);
  checkParity('siglip_text', text.model, () => text.model.forward(get('siglip_text.input_ids'), get('siglip_text.attention_mask')));
  text.model.dispose();
  const vision = SiglipVisionModel.fromPretrained(join(DIR, 'siglip_vision'));
  assert.deepEqual([vision.report.missing, vision.report.unexpected], [[], []]);
  checkParity('siglip_vision', vision.model, () => vision.model.forward(get('siglip_vision.pixel_values')));
  vision.model.dispose();
  const t = loadTower('text', join(DIR, 'siglip'));
  assert.ok(t.model instanceof SiglipTextModel);
  assert.deepEqual([t.report.missing, t.report.unexpected], [[], []]);
  checkParity('siglip_text', t.model, () => t.model.forward(get('siglip_text.input_ids'), get('siglip_text.attention_mask'), null));
  t.model.dispose();
  const v = loadTower('image', join(DIR, 'siglip'));
  assert.deepEqual([v.report.missing, v.report.unexpected], [[], []]);
  checkParity('siglip_vision', v.model, () => v.model.forward(get('siglip_vision.pixel_values')));
  v.model.dispose();
});

test('a checkpoint of another architecture, or with a wrong shape, is refused naming the key and both shapes', () => {
  assert.throws(() => RobertaModel.fromPretrained(join(DIR, 'distilbert')), /distilbert\/config\.json: invalid configuration:\s+model_type: expected "roberta", received "distilbert": not a RoBERTa checkpoint/);
  assert.throws(() => DistilBertModel.fromPretrained(join(DIR, 'bert')), /bert\/config\.json: invalid configuration:\s+model_type: expected "distilbert", received "bert"/);
  assert.throws(() => DeiTModel.fromPretrained(join(DIR, 'vit')), /vit\/config\.json: invalid configuration:\s+model_type: expected "deit", received "vit"/);
  // a DeiT folder whose position table has one row too few (a ViT's)
  const dir = mkdtempSync(join(tmpdir(), 'mmtrain-towers-'));
  cpSync(join(DIR, 'deit'), dir, { recursive: true });
  const { tensors } = loadSafetensors(join(dir, 'model.safetensors'));
  const pos = tensors.get('deit.embeddings.position_embeddings')!;
  tensors.set('deit.embeddings.position_embeddings', pos.slice(1, 1));
  saveSafetensors(join(dir, 'model.safetensors'), tensors);
  assert.throws(() => DeiTModel.fromPretrained(dir), /embeddings\.position_embeddings.*\[1, 18, 32\].*\[1, 17, 32\]|embeddings\.position_embeddings.*\[1, 17, 32\].*\[1, 18, 32\]/);
  writeFileSync(join(dir, 'config.json'), readFileSync(join(DIR, 'deit', 'config.json'), 'utf8').replace('"hidden_size": 32', '"hidden_size": 30'));
  assert.throws(() => DeiTModel.fromPretrained(dir), /hidden_size.*expected a multiple of num_attention_heads \(4\), received number 30/);
});

// ---- the towers inside the fusion model ----

const SMALL = {
  'distilbert-tiny': { dim: 16, n_heads: 2, hidden_dim: 32, n_layers: 2 },
  'roberta-tiny': { hidden_size: 16, num_attention_heads: 2, intermediate_size: 32, pad_token_id: 0 }, // the bundled BERT tokenizer pads with 0
  'bert-tiny': { hidden_size: 16, num_attention_heads: 2, intermediate_size: 32 },
  'deit-tiny': { hidden_size: 16, num_hidden_layers: 2, num_attention_heads: 2, intermediate_size: 32, image_size: 16, patch_size: 8 },
  'vit-tiny': { hidden_size: 24, num_attention_heads: 2, intermediate_size: 32, image_size: 16, patch_size: 8 },
  'clip-text-tiny': { hidden_size: 16, num_attention_heads: 2, intermediate_size: 32, vocab_size: 30522, max_position_embeddings: 64, eos_token_id: 102 }, // [SEP] ends the bundled tokenizer's texts
  'clip-vision-tiny': { hidden_size: 16, num_attention_heads: 2, intermediate_size: 32, image_size: 16, patch_size: 8 },
  'siglip-text-tiny': { hidden_size: 16, num_attention_heads: 2, intermediate_size: 32, vocab_size: 30522, max_position_embeddings: 64 },
  'siglip-vision-tiny': { hidden_size: 16, num_attention_heads: 2, intermediate_size: 32, image_size: 16, patch_size: 8 },
} as const;

test('every tower pair trains in the fusion model (loss falls), freezes by layers, decays lr by depth, and exports to HF and ONNX with the same outputs', async () => {
  const { generateSynthetic, resolveConfig, train, listCheckpoints, FusionClassifier, loadPredictor, noGrad } = await import('../src/index.js');
  const { exportHuggingFace, writeHfCheckFile } = await import('../src/export/hf.js');
  const { exportOnnx } = await import('../src/export/onnx.js');
  const { compareOnnx } = await import('../src/export/onnx-check.js');
  const { parameterGroups } = await import('../src/train/param-groups.js');
  const dir = mkdtempSync(join(tmpdir(), 'mmtrain-tower-pairs-'));
  await generateSynthetic({ out: join(dir, 'data'), n: 120, seed: 2, imageSize: 16 });
  for (const [text, image, fusion_type, pooling] of [
    ['distilbert-tiny', 'deit-tiny', 'cross-attention', 'mean'], ['roberta-tiny', 'vit-tiny', 'cross-attention', 'mean'], ['bert-tiny', 'deit-tiny', 'cross-attention', 'mean'],
    ['clip-text-tiny', 'clip-vision-tiny', 'cls-cross-attention', 'mean'], ['clip-text-tiny', 'vit-tiny', 'concat', 'cls'],
    ['siglip-text-tiny', 'siglip-vision-tiny', 'cross-attention', 'cls'], ['bert-tiny', 'siglip-vision-tiny', 'shared-cls-cross-attention', 'mean'],
  ] as const) {
    const name = `${text}+${image} (${fusion_type}, ${pooling})`;
    const cfg = resolveConfig({
      name, out: join(dir, 'runs'), seed: 3, data: { train: join(dir, 'data', 'train.jsonl') },
      model: { text: { preset: text, config: SMALL[text] }, image: { preset: image, config: SMALL[image] }, fusion_num_heads: 2, head_hidden_size: 16, fusion_type, pooling },
      train: { maxSteps: 40, batchSize: 8, lr: 3e-3, layerDecay: 0.5, encoderLr: 1e-3 }, log: { progress: 'none', every: 5 },
    });
    const r = await train(cfg, { print: () => {} });
    const losses: number[] = readFileSync(join(r.runDir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l)).filter((m) => m.event === 'train').map((m) => m.loss as number);
    const head = losses.slice(0, 2).reduce((a, b) => a + b) / 2;
    const tail = losses.slice(-2).reduce((a, b) => a + b) / 2;
    assert.ok(tail < head, `${name}: loss ${head.toFixed(3)} -> ${tail.toFixed(3)}`);
    const ckpt = listCheckpoints(r.runDir).pop()!;
    const model = FusionClassifier.fromPretrained(ckpt);
    const typeOf = (preset: string) => ({ 'clip-text-tiny': 'clip_text_model', 'clip-vision-tiny': 'clip_vision_model', 'siglip-text-tiny': 'siglip_text_model', 'siglip-vision-tiny': 'siglip_vision_model' } as Record<string, string>)[preset] ?? preset.split('-')[0];
    assert.equal(model.config.text_config.model_type, typeOf(text));
    assert.equal(model.config.image_config.model_type, typeOf(image));
    // layer-wise decay follows each tower's own layers: its top layer at encoderLr * decay, embeddings lowest
    const groups = parameterGroups(model, cfg);
    const lrOf = (p: Tensor) => groups.find((g) => g.params.includes(p))!.lr;
    const { embeddings, layers } = model.text_encoder.stages();
    assert.equal(lrOf(layers[layers.length - 1]!.parameters()[0]!), 1e-3 * 0.5);
    assert.equal(lrOf(embeddings.parameters()[0]!), 1e-3 * 0.5 ** (layers.length + 1));
    model.freeze('image', { layers: 1 });
    const img = model.image_encoder.stages();
    assert.ok(img.embeddings.parameters().every((p) => !p.requiresGrad) && img.layers[0]!.parameters().every((p) => !p.requiresGrad) && img.layers[1]!.parameters().every((p) => p.requiresGrad), `${name}: freeze`);
    model.dispose();
    // Hugging Face folders with each tower's own class, loading back to the same logits
    const hf = exportHuggingFace(ckpt, join(dir, `hf-${name}`));
    const tcfg = JSON.parse(readFileSync(join(hf.textEncoder, 'config.json'), 'utf8'));
    const icfg = JSON.parse(readFileSync(join(hf.imageEncoder, 'config.json'), 'utf8'));
    const classOf: Record<string, string> = {
      distilbert: 'DistilBertModel', roberta: 'RobertaModel', bert: 'BertModel', clip_text_model: 'CLIPTextModel', siglip_text_model: 'SiglipTextModel',
      deit: 'DeiTModel', vit: 'ViTModel', clip_vision_model: 'CLIPVisionModel', siglip_vision_model: 'SiglipVisionModel',
    };
    assert.deepEqual([tcfg.model_type, tcfg.architectures, icfg.model_type, icfg.architectures], [typeOf(text), [classOf[typeOf(text)!]], typeOf(image), [classOf[typeOf(image)!]]]);
    const a = FusionClassifier.fromPretrained(ckpt).eval();
    const b = FusionClassifier.fromPretrained(hf.dir).eval();
    noGrad(() => tidy(() => {
      const batch = { inputIds: tensor([[2, 7, 9, 3, 0], [2, 11, 3, 0, 0]], { dtype: 'int64' }), attentionMask: tensor([[1, 1, 1, 1, 0], [1, 1, 1, 0, 0]], { dtype: 'int64' }), pixelValues: randn([2, 3, 16, 16]) };
      assert.equal(maxAbsDiff(a.forward(batch).logits, b.forward(batch).logits), 0, `${name}: HF export`);
    }));
    a.dispose();
    b.dispose();
    // the exported towers against the plain-PyTorch references (scripts/hf-check.py), where Debian's torch is here
    const check = join(dir, `check-${name}.safetensors`);
    writeHfCheckFile(hf.dir, check);
    const py = spawnSync('/usr/bin/python3', [join(ROOT, 'scripts', 'hf-check.py'), hf.dir, check], { encoding: 'utf8' });
    if (!/No module named 'torch'|ENOENT/.test(`${py.stderr}${py.error?.message ?? ''}`)) {
      assert.equal(py.status, 0, `${name}: ${py.stdout}${py.stderr}`);
      assert.match(py.stdout, /all within 1e-5/);
    }
    // ONNX: the whole model in ONNX Runtime Web
    const onnx = exportOnnx(ckpt, join(dir, `onnx-${name}`));
    const p = loadPredictor(ckpt, { device: 'cpu' });
    try {
      const c = await compareOnnx(p, onnx.dir, join(dir, 'data', 'val.jsonl'), { batchSize: 5 });
      assert.ok(c.maxAbsDiff < 1e-4 && c.agreement === 1, `${name}: ONNX logits differ by ${c.maxAbsDiff}`);
    } finally {
      p.dispose();
    }
  }
});

test('a RoBERTa with a tokenizer that pads with another id is refused before training, naming both ids', async () => {
  const { generateSynthetic, resolveConfig, train } = await import('../src/index.js');
  const dir = mkdtempSync(join(tmpdir(), 'mmtrain-roberta-tok-'));
  await generateSynthetic({ out: join(dir, 'data'), n: 20, seed: 2, imageSize: 16 });
  const cfg = resolveConfig({
    out: join(dir, 'runs'), data: { train: join(dir, 'data', 'train.jsonl') },
    model: { text: { preset: 'roberta-tiny', config: { hidden_size: 16, num_attention_heads: 2, intermediate_size: 32 } }, image: { config: { image_size: 16, patch_size: 8, hidden_size: 16, num_attention_heads: 2, intermediate_size: 32 } }, fusion_num_heads: 2 },
    train: { maxSteps: 1, batchSize: 4 }, log: { progress: 'none' },
  });
  await assert.rejects(train(cfg, { print: () => {} }), /data\.tokenizer: .*tokenizer\.json pads with id 0 but the RoBERTa encoder's pad_token_id is 1 \(its positions count from it\)/);
  assert.throws(() => resolveConfig({ data: { train: 'x.jsonl' }, model: { text: { preset: 'distilbert-tiny', config: { hidden_size: 16 } } } }), /model\.text\.config: .*hidden_size/);
  assert.throws(() => resolveConfig({ data: { train: 'x.jsonl' }, model: { image: { preset: 'swin-tiny' } } }), /model\.image\.preset.*deit-tiny/);
});

test('a pretrained encoder folder brings its tokenizer and its image normalisation, unless the run config sets them', async () => {
  const { resolveConfig } = await import('../src/index.js');
  const dir = mkdtempSync(join(tmpdir(), 'mmtrain-folders-'));
  cpSync(join(DIR, 'distilbert'), join(dir, 'text'), { recursive: true });
  cpSync(join(DIR, 'deit'), join(dir, 'image'), { recursive: true });
  writeFileSync(join(dir, 'text', 'tokenizer.json'), readFileSync(join(FIXTURES, '..', '..', 'assets', 'bert-base-uncased', 'tokenizer.json')));
  writeFileSync(join(dir, 'image', 'preprocessor_config.json'), JSON.stringify({ image_mean: [0.5, 0.5, 0.5], image_std: [0.25, 0.5, 0.5], crop_size: { height: 32, width: 32 }, size: { height: 36, width: 36 }, do_center_crop: true, resample: 3 }));
  const model = { text: { pretrained: join(dir, 'text') }, image: { pretrained: join(dir, 'image') } };
  const c = resolveConfig({ data: { train: 'x.jsonl' }, model });
  assert.equal(c.data.tokenizer, join(dir, 'text', 'tokenizer.json'));
  // DeiT's kind: {height, width} 36 (exact), then the centre 32 crop, bicubic
  assert.deepEqual([c.data.image.mean, c.data.image.std, c.data.image.size, c.data.image.resizeSize, c.data.image.resample, c.data.image.resize], [[0.5, 0.5, 0.5], [0.25, 0.5, 0.5], 32, 36, 'bicubic', 'exact']);
  // CLIP's kind: the shorter side to 224, the centre 224 crop
  writeFileSync(join(dir, 'image', 'preprocessor_config.json'), JSON.stringify({ size: { shortest_edge: 224 }, crop_size: { height: 224, width: 224 }, do_center_crop: true, resample: 3 }));
  const clip = resolveConfig({ data: { train: 'x.jsonl' }, model });
  assert.deepEqual([clip.data.image.size, clip.data.image.resizeSize, clip.data.image.resize, clip.data.image.resample], [224, undefined, 'shorter-side', 'bicubic']);
  const own = resolveConfig({ data: { train: 'x.jsonl', tokenizer: '/elsewhere/tokenizer.json', image: { mean: [0.1, 0.2, 0.3], size: 16, resample: 'bilinear' } }, model });
  assert.deepEqual([own.data.tokenizer, own.data.image.mean, own.data.image.size, own.data.image.resizeSize, own.data.image.resample], ['/elsewhere/tokenizer.json', [0.1, 0.2, 0.3], 16, undefined, 'bilinear']);
  assert.throws(() => resolveConfig({ data: { train: 'x.jsonl', image: { size: 32, resizeSize: 30 } } }), /data\.image\.resizeSize: expected at least data\.image\.size \(32\), received 30/);
  writeFileSync(join(dir, 'image', 'preprocessor_config.json'), '{ "image_mean": [0.5, ');
  assert.throws(() => resolveConfig({ data: { train: 'x.jsonl' }, model }), /image\/preprocessor_config\.json: invalid JSON/);
});

test('frozen CLIP text and SigLIP vision towers: the feature cache (hidden states, pooled vector, the text summary) trains as running them does', async () => {
  const { generateSynthetic, resolveConfig, train } = await import('../src/index.js');
  const dir = mkdtempSync(join(tmpdir(), 'mmtrain-tower-cache-'));
  await generateSynthetic({ out: join(dir, 'data'), n: 60, seed: 4, imageSize: 16 });
  const base = {
    out: join(dir, 'runs'), seed: 2, data: { train: join(dir, 'data', 'train.jsonl') },
    model: {
      text: { preset: 'clip-text-tiny', config: SMALL['clip-text-tiny'] }, image: { preset: 'siglip-vision-tiny', config: SMALL['siglip-vision-tiny'] },
      fusion_type: 'cls-cross-attention', fusion_num_heads: 2, head_hidden_size: 16, freeze: { text: true, image: true },
    },
    train: { epochs: 2, batchSize: 8 }, log: { progress: 'none', every: 1 },
  };
  const lines: string[] = [];
  const cached = await train(resolveConfig({ ...base, name: 'cached' }), { print: (s) => lines.push(s) });
  assert.ok(lines.some((l) => /frozen encoders: cached their outputs/.test(l)), lines.join('\n'));
  const plain = await train(resolveConfig({ ...base, name: 'plain', train: { ...base.train, featureCache: false } }), { print: () => {} });
  const losses = (d: string) => readFileSync(join(d, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l)).filter((m) => m.event === 'train').map((m) => m.loss as number);
  const [a, b] = [losses(cached.runDir), losses(plain.runDir)];
  assert.equal(a.length, b.length);
  a.forEach((l, i) => assert.ok(Math.abs(l - b[i]!) < 1e-4, `step ${i + 1}: ${l} vs ${b[i]}`));
});
