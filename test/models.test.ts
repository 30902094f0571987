// BERT, ViT and the fusion classifier against a plain-PyTorch reference of Hugging Face's math
// (test/fixtures/gen_models.py): same random weights, max abs error <= 1e-4 in float32.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, readFileSync, writeFileSync, mkdirSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  BertModel, FUSION_TYPES, FusionClassifier, Tensor, ViTModel, bertConfig, createFusionModel, fusionConfig, fusionPresetConfig, loadSafetensors,
  manualSeed, memory, noGrad, randn, saveSafetensors, tensor, tidy, vitConfig, type FusionType,
} from '../src/index.js';
import { FIXTURES } from './helpers.js';

const DIR = join(FIXTURES, 'models');
const io = loadSafetensors(join(DIR, 'io.safetensors')).tensors;
const get = (k: string) => {
  const t = io.get(k);
  assert.ok(t, `fixture ${k} missing`);
  return t;
};

function maxAbsDiff(a: Tensor, b: Tensor): number {
  assert.deepEqual(a.shape, b.shape);
  return tidy(() => a.sub(b).abs().max().item());
}

const TOL = 1e-4;

test('BERT loads a BertForPreTraining-style checkpoint and matches the reference', () => {
  const { model, report } = BertModel.fromPretrained(join(DIR, 'bert'));
  assert.deepEqual(report.missing, []);
  assert.deepEqual(report.unexpected, ['cls.predictions.bias']);
  model.eval();
  tidy(() => {
    const out = model.forward(get('bert.input_ids'), get('bert.attention_mask'), get('bert.token_type_ids'));
    const d1 = maxAbsDiff(out.lastHiddenState, get('bert.last_hidden_state'));
    const d2 = maxAbsDiff(out.poolerOutput!, get('bert.pooler_output'));
    assert.ok(d1 <= TOL && d2 <= TOL, `last hidden ${d1}, pooler ${d2}`);
    const noTT = model.forward(get('bert.input_ids'), get('bert.attention_mask'));
    assert.ok(maxAbsDiff(noTT.lastHiddenState, get('bert.last_hidden_state_no_tt')) <= TOL);
  });
  model.dispose();
});

test('ViT matches the reference, including interpolated position embeddings at another image size', () => {
  const { model, report } = ViTModel.fromPretrained(join(DIR, 'vit'));
  assert.deepEqual(report, { missing: [], unexpected: [], mismatched: [] });
  model.eval();
  tidy(() => {
    const out = model.forward(get('vit.pixel_values'));
    const d1 = maxAbsDiff(out.lastHiddenState, get('vit.last_hidden_state'));
    const d2 = maxAbsDiff(out.poolerOutput!, get('vit.pooler_output'));
    assert.ok(d1 <= TOL && d2 <= TOL, `last hidden ${d1}, pooler ${d2}`);
    const d3 = maxAbsDiff(model.forward(get('vit.pixel_values_48x40')).lastHiddenState, get('vit.last_hidden_state_48x40'));
    assert.ok(d3 <= TOL, `interpolated: ${d3}`);
    assert.throws(() => model.forward(randn([1, 3, 30, 32])), /ViT: image size 30x32 is not a multiple of patch_size 8/);
    assert.throws(() => model.forward(randn([1, 1, 32, 32])), /Expected a \(batch, 3, height, width\) tensor for pixelValues but received "shape \[1, 1, 32, 32\]"/);
  });
  model.dispose();
});

const CONFIG = (fusion_type: FusionType, pooling: 'mean' | 'cls') => fusionConfig({
  text_config: JSON.parse(readFileSync(join(DIR, 'bert', 'config.json'), 'utf8')),
  image_config: JSON.parse(readFileSync(join(DIR, 'vit', 'config.json'), 'utf8')),
  fusion_type, pooling, fusion_num_heads: 4, head_hidden_size: 16, num_labels: 3,
});

/** The reference's fusion model: encoders from the fixture directories, fusion and head from io.safetensors. */
function referenceFusion(kind: FusionType, pooling: 'mean' | 'cls'): FusionClassifier {
  const text = BertModel.fromPretrained(join(DIR, 'bert')).model;
  const image = ViTModel.fromPretrained(join(DIR, 'vit')).model;
  const model = new FusionClassifier(CONFIG(kind, pooling), { text, image });
  const prefix = `fusion.${kind}.${pooling}.weight.`;
  const sd = new Map([...io].filter(([k]) => k.startsWith(prefix)).map(([k, t]) => [k.slice(prefix.length), t]));
  const own = model.stateDict();
  for (const [k, t] of own) if (k.startsWith('text_encoder.') || k.startsWith('image_encoder.')) sd.set(k, t);
  model.loadStateDict(sd);
  return model.eval();
}

const inputs = () => ({
  inputIds: get('bert.input_ids'), attentionMask: get('bert.attention_mask'), tokenTypeIds: get('bert.token_type_ids'),
  pixelValues: get('vit.pixel_values'),
});

for (const kind of FUSION_TYPES) {
  for (const pooling of (kind === 'cross-attention' || kind === 'concat' ? ['mean', 'cls'] : ['cls']) as ('mean' | 'cls')[]) {
    test(`fusion ${kind} (${pooling} pooling): logits match the reference`, () => {
      const model = referenceFusion(kind, pooling);
      tidy(() => {
        const d = maxAbsDiff(model.forward(inputs()).logits, get(`fusion.${kind}.${pooling}.logits`));
        assert.ok(d <= TOL, `logits differ by ${d}`);
      });
      model.dispose();
    });
  }
}

for (const kind of FUSION_TYPES) {
  for (const pooling of (kind === 'cross-attention' || kind === 'concat' ? ['mean', 'cls'] : ['cls']) as ('mean' | 'cls')[]) {
    test(`fusion ${kind} (${pooling} pooling): gradients of every parameter match the reference`, () => {
      const name = `${kind}.${pooling}`;
      const model = referenceFusion(kind, pooling);
      tidy(() => {
        model.forward(inputs()).logits.mul(get(`fusion.${name}.gw`)).sum().backward();
        let checked = 0;
        for (const [k, p] of model.namedParameters()) {
          const ref = io.get(`fusion.${name}.grad.${k}`);
          if (!ref) {
            // unused by this variant (the encoders' poolers, the text [CLS] path's unused positions): none on either side
            assert.ok(p.grad === null || p.grad.abs().max().item() === 0, `${k}: gradient without a reference`);
            continue;
          }
          const d = maxAbsDiff(p.grad!, ref);
          assert.ok(d <= TOL, `gradient of ${k} differs by ${d}`);
          checked++;
        }
        assert.ok(checked > 50, `only ${checked} parameters checked`);
      });
      model.dispose();
    });
  }
}

test('text pooling ignores padded positions; attention weights on request', () => {
  const model = referenceFusion('cross-attention', 'mean');
  tidy(() => {
    const x = inputs();
    const a = model.forward(x, { returnAttention: true });
    // change the ids under padding: nothing downstream may move
    const ids = x.inputIds.clone();
    noGrad(() => ids.select(0, 0).slice(0, 5).fill_(42));
    const b = model.forward({ ...x, inputIds: ids });
    assert.ok(maxAbsDiff(a.logits, b.logits) < 1e-6);
    assert.deepEqual(a.attention!.textToImage.shape, [2, 7, 17]);
    assert.deepEqual(a.attention!.imageToText.shape, [2, 17, 7]);
    // image tokens give zero weight to padded text tokens
    assert.equal(a.attention!.imageToText.select(0, 0).slice(1, 5).abs().max().item(), 0);
  });
  model.dispose();
});

test('a forward pass frees each layer\'s intermediates as the layer returns; gradients are unchanged', () => {
  const model = referenceFusion('cross-attention', 'mean');
  const x = inputs();
  const before = memory().liveTensors;
  let grown = 0;
  let grad = 0;
  tidy(() => {
    const out = model.forward(x);
    // Per layer only its output survives (2 + 2 layers, embeddings, fusion, head). Without the scopes each layer
    // leaves its ~30 intermediates behind until the step ends.
    grown = memory().liveTensors - before;
    out.logits.sum().backward();
    grad = (model.text_encoder as BertModel).embeddings.word_embeddings.weight.grad!.abs().sum().item();
  });
  assert.ok(grown < 40, `${grown} tensors alive after the forward pass`);
  assert.ok(grad > 0, 'gradients reach the first layer through the scopes');
  for (const p of model.parameters()) p.grad = null;
  for (const t of Object.values(x)) t.dispose();
  model.dispose();
});

test('save and load a fusion model directory bit-exactly', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mmtrain-fusion-'));
  manualSeed(5);
  const { model } = createFusionModel({ preset: 'tiny', text: { config: { vocab_size: 100, max_position_embeddings: 16 } }, image: { config: { image_size: 32, patch_size: 8 } }, fusion_type: 'cross-attention', num_labels: 4 });
  model.save(dir);
  const back = FusionClassifier.fromPretrained(dir);
  assert.deepEqual(back.config, model.config);
  const a = model.stateDict();
  const b = back.stateDict();
  assert.deepEqual([...b.keys()], [...a.keys()]);
  assert.ok(a.size > 0, 'state dict is empty');
  for (const [k, t] of a) assert.deepEqual(b.get(k)!.toBuffer(), t.toBuffer(), k);
  assert.ok([...a.keys()].every((k) => /^(text_encoder|image_encoder|fusion|classifier)\./.test(k)));
  model.eval();
  back.eval();
  tidy(() => {
    const x = { inputIds: tensor([[1, 5, 9, 0]], { dtype: 'int64' }), attentionMask: tensor([[1, 1, 1, 0]], { dtype: 'int64' }), pixelValues: randn([1, 3, 32, 32]) };
    assert.deepEqual(back.forward(x).logits.toNumbers(), model.forward(x).logits.toNumbers());
  });
  model.dispose();
  back.dispose();
  rmSync(dir, { recursive: true });
});

test('loading refuses other architectures and wrong shapes, naming the key and both shapes', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mmtrain-bad-'));
  // a ViT directory is not a BERT
  assert.throws(() => BertModel.fromPretrained(join(DIR, 'vit')), /vit\/config\.json: invalid configuration:\n {2}model_type: expected "bert", received "vit": not a BERT checkpoint/);
  assert.throws(() => FusionClassifier.fromPretrained(join(DIR, 'bert')), /model_type is "bert", not an mmtrain fusion model/);
  // a BERT checkpoint whose config says a wider model
  mkdirSync(join(dir, 'wide'));
  copyFileSync(join(DIR, 'bert', 'model.safetensors'), join(dir, 'wide', 'model.safetensors'));
  const cfg = JSON.parse(readFileSync(join(DIR, 'bert', 'config.json'), 'utf8'));
  writeFileSync(join(dir, 'wide', 'config.json'), JSON.stringify({ ...cfg, intermediate_size: 128 }));
  const before = memory().liveTensors;
  assert.throws(() => BertModel.fromPretrained(join(dir, 'wide')),
    /wide\/model\.safetensors: does not fit BertModel: unexpected keys \(1\): cls\.predictions\.bias; shape mismatches \(6\): encoder\.layer\.0\.intermediate\.dense\.weight expected \[128, 32\] but received \[64, 32\]/);
  assert.equal(memory().liveTensors, before, 'a refused checkpoint leaves no tensors behind');
  // missing keys are reported (HF semantics) and refused when strict
  mkdirSync(join(dir, 'nopool'));
  const { tensors } = loadSafetensors(join(DIR, 'vit', 'model.safetensors'));
  tensors.delete('pooler.dense.weight');
  tensors.delete('pooler.dense.bias');
  saveSafetensors(join(dir, 'nopool', 'model.safetensors'), tensors);
  copyFileSync(join(DIR, 'vit', 'config.json'), join(dir, 'nopool', 'config.json'));
  const r = ViTModel.fromPretrained(join(dir, 'nopool'));
  assert.deepEqual(r.report.missing, ['pooler.dense.weight', 'pooler.dense.bias']);
  assert.throws(() => ViTModel.fromPretrained(join(dir, 'nopool'), { strict: true }), /missing keys \(2\): pooler\.dense\.weight, pooler\.dense\.bias/);
  r.model.dispose();
  for (const t of tensors.values()) t.dispose();
  // broken config.json names the line; a pickle-only directory names the fix
  mkdirSync(join(dir, 'broken'));
  writeFileSync(join(dir, 'broken', 'config.json'), '{\n  "hidden_size": 32,\n  oops\n}');
  assert.throws(() => BertModel.fromPretrained(join(dir, 'broken')), /broken\/config\.json:3: invalid JSON/);
  mkdirSync(join(dir, 'pickle'));
  copyFileSync(join(DIR, 'bert', 'config.json'), join(dir, 'pickle', 'config.json'));
  writeFileSync(join(dir, 'pickle', 'pytorch_model.bin'), 'x');
  assert.throws(() => BertModel.fromPretrained(join(dir, 'pickle')), /only pytorch_model\.bin \(a pickle\) is there; mmtrain loads safetensors only/);
  assert.throws(() => BertModel.fromPretrained(join(dir, 'nothing')), /nothing\/config\.json: cannot read the model config/);
  rmSync(dir, { recursive: true });
});

test('config validation names the field, what it expected and received, and the fix', () => {
  assert.throws(() => fusionConfig({ fusion_type: 'late' as never }),
    /fusion config: invalid configuration:\n {2}fusion_type: expected one of "cross-attention", "cls-cross-attention", "shared-cls-cross-attention", "concat", received "late"/);
  assert.throws(() => fusionConfig({ text_config: { hidden_size: 100, num_attention_heads: 3 } }),
    /text_config\.hidden_size: expected a multiple of num_attention_heads \(3\), received number 100: change hidden_size or num_attention_heads/);
  assert.throws(() => fusionConfig({ fusion_num_heads: 3 }),
    /fusion_num_heads: expected a divisor of the text hidden_size \(128\), received number 3: set fusion_num_heads to a divisor such as 8/);
  assert.throws(() => fusionConfig({ head_dropout: 1, num_labels: 1 }),
    /head_dropout: expected a number < 1, received number 1\n {2}num_labels: expected a number >= 2, received number 1/);
  assert.throws(() => bertConfig({ hidden_act: 'swish' as never }, 'x/config.json'),
    /x\/config\.json: invalid configuration:\n {2}hidden_act: expected one of "gelu", "gelu_new", "gelu_pytorch_tanh", "relu", received "swish"/);
  assert.throws(() => bertConfig({ pad_token_id: 30522 }), /bert config: invalid configuration:\n {2}pad_token_id: expected an integer below vocab_size \(30522\), received number 30522/);
  assert.throws(() => vitConfig({ image_size: 30 }), /vit config: invalid configuration:\n {2}image_size: expected a multiple of patch_size \(16\), received number 30/);
  assert.throws(() => createFusionModel({ preset: 'huge' }), /Expected one of tiny, mini, small, medium, base, large for preset but received "huge"/);
  assert.throws(() => fusionPresetConfig('huge'), /Expected one of tiny, mini, small, medium, base, large for preset but received "huge"/);
  const { model } = createFusionModel({ preset: 'tiny' });
  assert.deepEqual(fusionPresetConfig('tiny'), model.config); // the config without building the model
  model.dispose();
});

test("a checkpoint's config.json may carry fields mmtrain does not use (as Hugging Face accepts them); an override may not", () => {
  const hf = { architectures: ['BertForMaskedLM'], transformers_version: '4.40.0', use_cache: true, classifier_dropout: null, hidden_size: 128, num_attention_heads: 2 };
  const c = bertConfig(hf, 'bert/config.json');
  assert.equal(c.hidden_size, 128);
  assert.equal('architectures' in c, false); // accepted and dropped
  assert.equal(vitConfig({ encoder_stride: 16 } as never).image_size, 224);
  assert.throws(() => createFusionModel({ text: { preset: 'bert-tiny', config: { hiden_size: 64 } } }),
    /text\.config: invalid configuration:\n {2}unknown key "hiden_size" — remove it or check the spelling \(did you mean "hidden_size"\?\)/);
  assert.throws(() => createFusionModel({ image: { config: { patchSize: 8 } } }), /image\.config: invalid configuration:\n {2}unknown key "patchSize" .*did you mean "patch_size"/);
});

test('presets use Hugging Face initialisation; freezing whole encoders or lower layers', () => {
  manualSeed(11);
  const { model } = createFusionModel({ preset: 'tiny', image: { config: { image_size: 32 } } });
  const q = (model.text_encoder as BertModel).encoder.layer.at(0).attention.self.query;
  assert.ok(Math.abs(q.weight.std().item() - 0.02) < 0.002);
  assert.equal(q.bias!.abs().max().item(), 0);
  assert.equal((model.text_encoder as BertModel).embeddings.word_embeddings.weight.select(0, 0).abs().max().item(), 0);
  assert.equal((model.text_encoder as BertModel).config.hidden_size, 128);
  assert.equal((model.text_encoder as BertModel).encoder.layer.length, 2);
  const head = model.classifier.layers[0] as unknown as { weight: Tensor };
  assert.deepEqual(head.weight.shape, [512, 256]);
  model.freeze('text', { layers: 1 });
  assert.equal((model.text_encoder as BertModel).embeddings.word_embeddings.weight.requiresGrad, false);
  assert.equal(q.weight.requiresGrad, false);
  assert.equal((model.text_encoder as BertModel).encoder.layer.at(1).attention.self.query.weight.requiresGrad, true);
  model.freeze('image');
  assert.equal(model.image_encoder.numParameters(true), 0);
  assert.throws(() => model.freeze('text', { layers: 5 }), /Expected an integer in \[0, 2\] for layers but received number 5/);
  model.unfreeze('text');
  model.unfreeze('image');
  assert.equal(model.numParameters(true), model.numParameters());
  const groups = model.parameterGroups();
  assert.equal(groups.text_encoder.length + groups.image_encoder.length + groups.fusion.length + groups.classifier.length, model.parameters().length);
  model.dispose();
});

test('encoders of different widths: the image projection runs forward and backward, and the image reaches the logits only through it', () => {
  assert.deepEqual([...FUSION_TYPES], ['cross-attention', 'cls-cross-attention', 'shared-cls-cross-attention', 'concat']);
  for (const fusion_type of FUSION_TYPES) {
    const { model } = createFusionModel({
      fusion_type, fusion_num_heads: 2, head_hidden_size: 8, num_labels: 2,
      text: { preset: 'bert-tiny', config: { hidden_size: 16, num_attention_heads: 2, intermediate_size: 32, num_hidden_layers: 1 } },
      image: { preset: 'vit-tiny', config: { hidden_size: 24, num_attention_heads: 2, intermediate_size: 32, num_hidden_layers: 1, image_size: 16, patch_size: 8 } },
    });
    model.eval();
    assert.ok(model.image_projection, `${fusion_type}: a projection from 24 to 16`);
    tidy(() => {
      const batch = { inputIds: tensor([[101, 2000, 102]], { dtype: 'int64' }), attentionMask: tensor([[1, 1, 1]], { dtype: 'int64' }) };
      const a = model.forward({ ...batch, pixelValues: randn([1, 3, 16, 16]) }).logits;
      assert.deepEqual(a.shape, [1, 2]);
      a.sum().backward();
      const g = model.image_projection!.weight.grad;
      assert.ok(g && g.abs().max().item() > 0 && g.isfinite().all().item(), `${fusion_type}: the projection gets a gradient`);
      // with the projection zeroed the image no longer changes the logits: every image path goes through it
      noGrad(() => { for (const p of model.image_projection!.parameters()) p.zero_(); });
      const b1 = model.forward({ ...batch, pixelValues: randn([1, 3, 16, 16]) }).logits.toNumbers();
      const b2 = model.forward({ ...batch, pixelValues: randn([1, 3, 16, 16]) }).logits.toNumbers();
      assert.equal(b1.length, 2, `${fusion_type}: one logit per label`);
      b1.forEach((v, i) => assert.ok(Math.abs(v - b2[i]!) < 1e-6, `${fusion_type}: logits moved with the image after the projection was zeroed`));
    });
    model.dispose();
  }
});
