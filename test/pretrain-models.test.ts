// The pretraining objectives: BERT's MLM masking and SimMIM's patch mask (src/data/masking.ts), BertForMaskedLM with
// its tied decoder and ViTForMaskedImageModeling against a plain-PyTorch reference of Hugging Face's math
// (test/fixtures/gen_pretrain.py), Hugging Face's key names, and the saved folders loading as plain encoders.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  type Tensor, bertConfig, loadSafetensors, loadTower, manualSeed, noGrad, readSafetensorsHeader, saveSafetensors, tensor, tidy, vitConfig,
} from '../src/index.js';
import { type MlmMasking, maskPatches, maskRow } from '../src/data/masking.js';
import { mulberry32 } from '../src/data/random.js';
import { BertForMaskedLM } from '../src/models/bert-mlm.js';
import { ViTForMaskedImageModeling } from '../src/models/vit-mim.js';
import * as F from '../src/tensor/functional.js';
import { FIXTURES, assertClose } from './helpers.js';

const DIR = join(FIXTURES, 'pretrain');
const io = loadSafetensors(join(DIR, 'io.safetensors')).tensors;
const get = (k: string) => {
  const t = io.get(k);
  assert.ok(t, `fixture ${k} missing`);
  return t;
};
/** float32 against the float32 reference: both run the same float16-exact weights */
const TOL = { atol: 1e-5, rtol: 1e-5 };

function tmp(): string {
  return mkdtempSync(join(tmpdir(), 'mmtrain-pretrain-'));
}

// ---- masking ----

const SPECIAL = new Set([0, 1, 2, 3, 4]); // [PAD], [UNK], [CLS], [SEP], [MASK]
const VOCAB = 1000;
/** ids >= 500 are "##" continuations in this made-up vocabulary */
const masking = (over: Partial<MlmMasking> = {}): MlmMasking => ({
  probability: 0.15, maskId: 4, vocabSize: VOCAB, specialIds: SPECIAL, wholeWord: false, isContinuation: (id) => id >= 500, ...over,
});

/** A row: [CLS], words of one to three pieces, [SEP], padding. */
function row(rnd: () => number, T = 64): number[] {
  const ids = [2];
  while (ids.length < T - 8) {
    ids.push(5 + Math.floor(rnd() * 495));
    const pieces = Math.floor(rnd() * 3);
    for (let i = 0; i < pieces; i++) ids.push(500 + Math.floor(rnd() * 500));
  }
  ids.push(3);
  while (ids.length < T) ids.push(0);
  return ids;
}

test('maskRow: 15% chosen, 80/10/10 of them, specials never touched, labels -100 elsewhere', () => {
  const rnd = mulberry32(7);
  const m = masking();
  let eligible = 0;
  let chosen = 0;
  let masked = 0;
  let random = 0;
  let kept = 0;
  for (let r = 0; r < 2000; r++) {
    const ids = row(rnd);
    const { input, labels } = maskRow(ids, m, rnd);
    assert.equal(input.length, ids.length);
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i]!;
      if (SPECIAL.has(id)) {
        assert.equal(labels[i], -100, 'a special id is never chosen');
        assert.equal(input[i], id, 'a special id is never changed');
        continue;
      }
      eligible++;
      if (labels[i] === -100) {
        assert.equal(input[i], id, 'an unchosen token is unchanged');
        continue;
      }
      assert.equal(labels[i], id, 'the label holds the original id');
      chosen++;
      if (input[i] === 4) masked++;
      else if (input[i] === id) kept++;
      else {
        random++;
        assert.ok(!SPECIAL.has(input[i]!) && input[i]! >= 0 && input[i]! < VOCAB, `random replacement ${input[i]} is a non-special id in the vocabulary`);
      }
    }
  }
  // a random replacement may draw the original id (1 in 995): counted as kept, well inside the tolerance
  const pct = (x: number, of: number) => (100 * x) / of;
  assert.ok(Math.abs(pct(chosen, eligible) - 15) <= 1.5, `chosen ${pct(chosen, eligible)}%`);
  assert.ok(Math.abs(pct(masked, chosen) - 80) <= 3, `[MASK] ${pct(masked, chosen)}%`);
  assert.ok(Math.abs(pct(random, chosen) - 10) <= 3, `random ${pct(random, chosen)}%`);
  assert.ok(Math.abs(pct(kept, chosen) - 10) <= 3, `kept ${pct(kept, chosen)}%`);
});

test('maskRow: random replacements skip special ids even when they are most of a small vocabulary', () => {
  const m = masking({ vocabSize: 8, specialIds: new Set([0, 1, 2, 3, 4, 5]), maskId: 4, probability: 0.9, isContinuation: () => false });
  const rnd = mulberry32(3);
  const seen = new Set<number>();
  for (let r = 0; r < 300; r++) {
    const { input, labels } = maskRow([2, 6, 7, 6, 7, 6, 7, 3], m, rnd);
    input.forEach((id, i) => { if (labels[i] !== -100 && id !== 4) seen.add(id); });
  }
  assert.deepEqual([...seen].sort(), [6, 7]);
});

test('maskRow: wholeWord chooses every piece of a word or none', () => {
  const rnd = mulberry32(11);
  const m = masking({ wholeWord: true });
  let words = 0;
  let chosenWords = 0;
  for (let r = 0; r < 1000; r++) {
    const ids = row(rnd);
    const { labels } = maskRow(ids, m, rnd);
    let i = 0;
    while (i < ids.length) {
      if (SPECIAL.has(ids[i]!)) {
        i++;
        continue;
      }
      let end = i + 1;
      while (end < ids.length && ids[end]! >= 500) end++;
      const picked = Array.from({ length: end - i }, (_, k) => labels[i + k] !== -100);
      assert.ok(picked.every((p) => p === picked[0]), `word at ${i}..${end} partly chosen: ${picked.join(',')}`);
      words++;
      if (picked[0]) chosenWords++;
      i = end;
    }
  }
  assert.ok(Math.abs((100 * chosenWords) / words - 15) <= 1.5, `words chosen ${(100 * chosenWords) / words}%`);
  // without wholeWord, words come out partly chosen
  const part = maskRow([2, 10, 600, 601, 602, 603, 604, 605, 606, 3], masking({ probability: 0.5 }), mulberry32(1)).labels;
  const inWord = [...part.slice(1, 9)].map((l) => l !== -100);
  assert.ok(inWord.some((x) => x) && inWord.some((x) => !x), 'per-token choice splits a long word');
});

test('maskRow and maskPatches are deterministic for a seeded generator', () => {
  const ids = row(mulberry32(5));
  const a = maskRow(ids, masking({ wholeWord: true }), mulberry32(42));
  const b = maskRow(ids, masking({ wholeWord: true }), mulberry32(42));
  assert.deepEqual(a, b);
  const c = maskRow(ids, masking({ wholeWord: true }), mulberry32(43));
  assert.notDeepEqual(a.labels, c.labels);
  assert.deepEqual(maskPatches(196, 0.6, mulberry32(9)), maskPatches(196, 0.6, mulberry32(9)));
  assert.notDeepEqual(maskPatches(196, 0.6, mulberry32(9)), maskPatches(196, 0.6, mulberry32(10)));
});

test('maskPatches sets exactly round(ratio * N) patches', () => {
  const rnd = mulberry32(2);
  const hits = new Uint32Array(49);
  for (const [N, ratio] of [[196, 0.6], [49, 0.75], [16, 0.5], [10, 0.15], [3, 0.4], [1, 0.6]] as const) {
    for (let r = 0; r < 20; r++) {
      const m = maskPatches(N, ratio, rnd);
      assert.equal(m.length, N);
      assert.equal(m.reduce((a, b) => a + b, 0), Math.round(ratio * N), `N ${N} ratio ${ratio}`);
      assert.ok(m.every((x) => x === 0 || x === 1));
    }
  }
  // every patch gets masked sometimes (uniform over positions)
  for (let r = 0; r < 400; r++) maskPatches(49, 0.75, rnd).forEach((x, i) => { hits[i]! += x; });
  assert.ok(hits.every((h) => h > 200 && h < 400), `per-patch counts ${[...hits].join(',')}`);
});

test('masking options are checked, naming the option', () => {
  const rnd = mulberry32(1);
  assert.throws(() => maskRow([2, 5, 3], masking({ probability: 1 }), rnd), /Expected a number in \(0, 1\) for probability but received number 1/);
  assert.throws(() => maskRow([2, 5, 3], masking({ probability: 0 }), rnd), /for probability but received number 0/);
  assert.throws(() => maskRow([2, 5, 3], masking({ maskId: 1000 }), rnd), /for maskId but received number 1000/);
  assert.throws(() => maskRow([2, 5, 3], masking({ vocabSize: 0 }), rnd), /for vocabSize but received number 0/);
  assert.throws(() => maskRow([2, 5, 3], masking({ specialIds: [0, 1] as unknown as Set<number> }), rnd), /a Set of token ids for specialIds/);
  assert.throws(() => maskRow([2, 5, 3], masking({ vocabSize: 5 }), rnd), /specialIds.*5 special ids in \[0, 5\)/);
  assert.throws(() => maskPatches(16, 1.5, rnd), /Expected a number in \(0, 1\) for ratio but received number 1.5/);
  assert.throws(() => maskPatches(16, 0, rnd), /for ratio but received number 0/);
  assert.throws(() => maskPatches(0, 0.5, rnd), /for N but received number 0/);
});

// ---- BERT masked language modelling ----

const BERT_SMALL = () => bertConfig({ vocab_size: 60, hidden_size: 16, num_hidden_layers: 2, num_attention_heads: 2, intermediate_size: 32, max_position_embeddings: 16, hidden_dropout_prob: 0, attention_probs_dropout_prob: 0 });

const MLM_KEYS_HEAD = ['cls.predictions.bias', 'cls.predictions.transform.LayerNorm.bias', 'cls.predictions.transform.LayerNorm.weight', 'cls.predictions.transform.dense.bias', 'cls.predictions.transform.dense.weight'];
/** Hugging Face's BertForMaskedLM state dict saved with safetensors (tied decoder weight and bias not saved). */
function hfMlmKeys(layers: number): string[] {
  const keys = ['bert.embeddings.LayerNorm.bias', 'bert.embeddings.LayerNorm.weight', 'bert.embeddings.position_embeddings.weight', 'bert.embeddings.token_type_embeddings.weight', 'bert.embeddings.word_embeddings.weight'];
  for (let l = 0; l < layers; l++) {
    const p = `bert.encoder.layer.${l}.`;
    for (const m of ['attention.self.query', 'attention.self.key', 'attention.self.value', 'attention.output.dense', 'attention.output.LayerNorm', 'intermediate.dense', 'output.dense', 'output.LayerNorm']) {
      keys.push(`${p}${m}.weight`, `${p}${m}.bias`);
    }
  }
  return [...keys, ...MLM_KEYS_HEAD].sort();
}

test('BertForMaskedLM saves exactly Hugging Face\'s keys and config, and initialises as it does', () => {
  manualSeed(1);
  const model = new BertForMaskedLM(BERT_SMALL());
  const dir = tmp();
  try {
    model.save(dir);
    const header = readSafetensorsHeader(join(dir, 'model.safetensors'));
    assert.deepEqual([...header.tensors.keys()].sort(), hfMlmKeys(2));
    assert.equal(header.metadata?.format, 'pt');
    const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
    assert.deepEqual(config.architectures, ['BertForMaskedLM']);
    assert.equal(config.model_type, 'bert');
    assert.equal(config.vocab_size, 60);
    // the decoder has no parameter: its bias starts at zero, the transform as BERT's Linear/LayerNorm init
    assert.ok(!model.stateDict().has('cls.predictions.decoder.weight'));
    assert.deepEqual([...new Set(model.cls.predictions.bias.toNumbers())], [0]);
    const std = tidy(() => model.cls.predictions.transform.dense.weight.std().item());
    assert.ok(Math.abs(std - 0.02) < 0.005, `dense init std ${std}`);
    assert.deepEqual([...new Set(model.cls.predictions.transform.LayerNorm.weight!.toNumbers())], [1]);
    // roles: encoder by depth, the head as the classifier group
    const roles = model.parameterRoles();
    assert.equal(roles.length, model.parameters().length);
    for (const r of roles) {
      if (r.name.startsWith('bert.')) assert.equal(r.role, 'text_encoder', r.name);
      else assert.ok(r.role === 'classifier' && r.depth === null && r.name.startsWith('cls.'), r.name);
    }
    assert.deepEqual(roles.filter((r) => r.role === 'classifier').map((r) => [r.name, r.weightDecay]).sort(), [
      ['cls.predictions.bias', false], ['cls.predictions.transform.LayerNorm.bias', false], ['cls.predictions.transform.LayerNorm.weight', false],
      ['cls.predictions.transform.dense.bias', false], ['cls.predictions.transform.dense.weight', true],
    ]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
    model.dispose();
  }
});

test('BertForMaskedLM matches the reference: hub checkpoint with tied decoder copies, loss and logits', () => {
  const { model, report } = BertForMaskedLM.fromPretrained(join(DIR, 'bert_mlm'), { strict: true });
  assert.deepEqual(report, { missing: [], unexpected: [], mismatched: [] });
  model.eval();
  tidy(() => {
    const ids = get('bert.input_ids');
    const labels = get('bert.labels');
    const out = model.forward(ids, get('bert.attention_mask'), get('bert.token_type_ids'), labels);
    assertClose(out.hidden, get('bert.last_hidden_state'), TOL, 'last hidden state');
    assertClose(out.loss!, get('bert.loss'), TOL, 'loss');
    assert.deepEqual(out.loss!.shape, []);
    // the head ran on the 5 labelled positions only, in row-major order
    const sel = labels.reshape(-1).ne(-100);
    assertClose(out.logits, get('bert.logits').reshape(-1, 100).index(sel), TOL, 'logits at the predicted positions');
    assert.deepEqual(out.labels!.toNumbers(), [31, 55, 8, 97, 64]);
    assert.equal(out.labels!.dtype, 'int64');
    const all = model.forward(ids, get('bert.attention_mask'), get('bert.token_type_ids'), null);
    assert.equal(all.loss, null);
    assert.equal(all.labels, null);
    assertClose(all.logits, get('bert.logits'), TOL, 'logits (B, T, V)');
    // int32 labels work the same
    assertClose(model.forward(ids, get('bert.attention_mask'), get('bert.token_type_ids'), labels.int()).loss!, get('bert.loss'), TOL, 'loss, int32 labels');
    assert.throws(() => model.forward(ids, null, null, labels.slice(1, 0, 4)), /Expected shape \[2, 8\] like inputIds for labels but received "shape \[2, 4\]"/);
    assert.throws(() => model.forward(ids, null, null, labels.float()), /for labels but received "dtype float32"/);
  });
  model.dispose();
});

test('BertForMaskedLM ties the decoder to the word embeddings: same logits, shared gradient', () => {
  manualSeed(3);
  const model = new BertForMaskedLM(BERT_SMALL()).eval();
  const E = model.bert.embeddings.word_embeddings.weight;
  const ids = tensor([[2, 7, 9, 11, 4, 3], [2, 4, 13, 17, 19, 3]], { dtype: 'int64' });
  const labels = tensor([[-100, -100, -100, -100, 21, -100], [-100, 40, -100, 17, -100, -100]], { dtype: 'int64' });
  tidy(() => {
    // logits = LayerNorm(gelu(dense(h))) E^T + bias
    const out = model.forward(ids, null, null, null);
    const t = model.cls.predictions.transform;
    const manual = t.LayerNorm.forward(t.dense.forward(out.hidden).gelu()).matmul(E.transpose(0, 1)).add(model.cls.predictions.bias);
    assertClose(out.logits, manual, { atol: 1e-6, rtol: 1e-5 }, 'tied logits');
    // changing the embedding table changes the decoder (a row not in the input moves only its logit column)
    const before = out.logits.select(2, 50).clone();
    const other = out.logits.select(2, 51).clone();
    noGrad(() => E.select(0, 50).mul_(3)); // (adding a constant would vanish: the LayerNorm output sums to ~0)
    const after = model.forward(ids, null, null, null).logits;
    assert.ok(tidy(() => after.select(2, 50).sub(before).abs().max().item()) > 1e-3, 'logit of the changed row moved');
    assertClose(after.select(2, 51), other, { atol: 1e-6, rtol: 0 }, 'other rows unchanged');
  });
  // one gradient on E, the sum of both uses: embedding lookup + decoder
  model.zeroGrad();
  tidy(() => model.forward(ids, null, null, labels).loss!.backward());
  const tied = E.grad!.clone();
  model.zeroGrad();
  tidy(() => {
    const E2 = E.detach().clone().requiresGrad_(); // a separate decoder table: the two uses' gradients apart
    const out = model.forward(ids, null, null, labels);
    const h = out.hidden.reshape(-1, 16).index(labels.reshape(-1).ne(-100));
    const t = model.cls.predictions.transform;
    const logits = F.linear(t.LayerNorm.forward(t.dense.forward(h).gelu()), E2, model.cls.predictions.bias);
    F.crossEntropy(logits, out.labels!).backward();
    const lookup = E.grad!;
    const decoder = E2.grad!;
    assert.ok(tidy(() => lookup.abs().sum().item()) > 0 && tidy(() => decoder.abs().sum().item()) > 0, 'both uses have a gradient');
    assertClose(tied, lookup.add(decoder), { atol: 1e-7, rtol: 1e-5 }, 'tied gradient = lookup + decoder');
    // rows never in the input still learn, through the decoder alone
    assert.ok(tidy(() => tied.select(0, 50).abs().sum().item()) > 0);
  });
  tied.dispose();
  model.dispose();
});

test('BertForMaskedLM saved -> loadTower(\'text\') gives the same encoder; a plain BertModel folder loads into it', () => {
  manualSeed(4);
  const dir = tmp();
  const model = new BertForMaskedLM(BERT_SMALL()).eval();
  const ids = tensor([[2, 7, 9, 11, 3, 0], [2, 4, 13, 17, 19, 3]], { dtype: 'int64' });
  const mask = tensor([[1, 1, 1, 1, 1, 0], [1, 1, 1, 1, 1, 1]], { dtype: 'int64' });
  try {
    model.save(dir);
    const { model: tower, report } = loadTower('text', dir);
    tower.eval();
    assert.equal(tower.constructor.name, 'BertModel');
    assert.deepEqual(report.unexpected.sort(), MLM_KEYS_HEAD);
    assert.deepEqual(report.missing.sort(), ['pooler.dense.bias', 'pooler.dense.weight']);
    tidy(() => assertClose(tower.forward(ids, mask, null).lastHiddenState, model.forward(ids, mask, null, null).hidden, { atol: 0, rtol: 0 }, 'tower hidden'));

    // the encoder alone, as BertModel saves it (no prefix, a pooler): the head is missing and keeps its init
    const plain = join(dir, 'plain');
    mkdirSync(plain);
    copyFileSync(join(dir, 'config.json'), join(plain, 'config.json'));
    saveSafetensors(join(plain, 'model.safetensors'), tower.stateDict(), { format: 'pt' });
    tower.dispose();
    const loaded = BertForMaskedLM.fromPretrained(plain);
    assert.deepEqual(loaded.report.missing.sort(), MLM_KEYS_HEAD);
    assert.deepEqual(loaded.report.unexpected.sort(), ['bert.pooler.dense.bias', 'bert.pooler.dense.weight']);
    loaded.model.eval();
    tidy(() => assertClose(loaded.model.forward(ids, mask, null, null).hidden, model.forward(ids, mask, null, null).hidden, { atol: 0, rtol: 0 }, 'reloaded hidden'));
    assert.deepEqual([...new Set(loaded.model.cls.predictions.bias.toNumbers())], [0]);
    loaded.model.dispose();
    assert.throws(() => BertForMaskedLM.fromPretrained(plain, { strict: true }), /plain\/model\.safetensors: missing keys \(5\): cls\.predictions\.bias.*unexpected keys \(2\): bert\.pooler/);
    // and its own folder round trip is exact and strict-clean
    const again = BertForMaskedLM.fromPretrained(dir, { strict: true }).model.eval();
    tidy(() => assertClose(again.forward(ids, mask, null, null).logits, model.forward(ids, mask, null, null).logits, { atol: 0, rtol: 0 }, 'round trip logits'));
    again.dispose();
  } finally {
    rmSync(dir, { recursive: true, force: true });
    model.dispose();
  }
});

// ---- ViT masked image modelling ----

test('ViTForMaskedImageModeling matches the reference: embeddings with the mask token, decoder and L1 loss', () => {
  const { model, report } = ViTForMaskedImageModeling.fromPretrained(join(DIR, 'vit_mim'), { strict: true });
  assert.deepEqual(report, { missing: [], unexpected: [], mismatched: [] });
  model.eval();
  tidy(() => {
    const px = get('vit.pixel_values');
    const out = model.forward(px, get('vit.bool_masked_pos'));
    assertClose(out.hidden, get('vit.last_hidden_state'), TOL, 'last hidden state');
    assertClose(out.reconstruction, get('vit.reconstruction'), TOL, 'reconstruction');
    assertClose(out.loss!, get('vit.loss'), TOL, 'loss');
    // bool and int32 masks give the same
    assertClose(model.forward(px, get('vit.bool_masked_pos').bool()).loss!, get('vit.loss'), TOL, 'loss, bool mask');
    assertClose(model.forward(px, get('vit.bool_masked_pos').int()).loss!, get('vit.loss'), TOL, 'loss, int32 mask');
    const none = model.forward(px, null);
    assert.equal(none.loss, null);
    assert.deepEqual(none.reconstruction.shape, [2, 3, 32, 32]);
    assert.throws(() => model.forward(px, get('vit.bool_masked_pos').slice(1, 0, 8)), /Expected shape \[2, 16\] \(batch, patches\) for boolMaskedPos but received "shape \[2, 8\]"/);
    assert.throws(() => model.forward(px.slice(1, 0, 1), null), /for pixelValues but received "shape \[2, 1, 32, 32\]"/);
  });
  model.dispose();
});

const VIT_SMALL = () => vitConfig({ hidden_size: 16, num_hidden_layers: 2, num_attention_heads: 2, intermediate_size: 32, image_size: 16, patch_size: 4 });

test('ViTForMaskedImageModeling: shapes, keys, and a loss from the masked patches only', () => {
  manualSeed(5);
  const model = new ViTForMaskedImageModeling(VIT_SMALL()).eval();
  const dir = tmp();
  try {
    const sd = [...model.stateDict().keys()];
    assert.ok(sd.includes('vit.embeddings.mask_token') && sd.includes('decoder.0.weight') && sd.includes('decoder.0.bias'));
    assert.ok(!sd.some((k) => k.includes('pooler')));
    assert.deepEqual(model.vit.embeddings.stateDict().get('mask_token')!.shape, [1, 1, 16]);
    assert.deepEqual([...new Set(model.stateDict().get('vit.embeddings.mask_token')!.toNumbers())], [0]);
    assert.deepEqual(model.stateDict().get('decoder.0.weight')!.shape, [48, 16, 1, 1]);
    const roles = model.parameterRoles();
    assert.equal(roles.length, model.parameters().length);
    assert.deepEqual(roles.filter((r) => r.role === 'classifier').map((r) => r.name).sort(), ['decoder.0.bias', 'decoder.0.weight']);
    assert.ok(roles.filter((r) => r.role !== 'classifier').every((r) => r.role === 'image_encoder' && r.name.startsWith('vit.') && r.depth));
    assert.equal(roles.find((r) => r.name === 'vit.embeddings.mask_token')!.weightDecay, false);
    model.save(dir);
    const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
    assert.deepEqual([config.architectures, config.model_type, config.encoder_stride], [['ViTForMaskedImageModeling'], 'vit', 4]);
    assert.deepEqual([...readSafetensorsHeader(join(dir, 'model.safetensors')).tensors.keys()].sort(), sd.sort());

    tidy(() => {
      const px = tensor(Array.from({ length: 2 * 3 * 16 * 16 }, (_, i) => Math.sin(i * 0.37)), { shape: [2, 3, 16, 16] });
      // patches (row-major over the 4x4 grid) 0, 5, 10, 15 masked in image 0; 1, 2 in image 1
      const maskRows = [[0, 5, 10, 15], [1, 2]].map((ps) => Array.from({ length: 16 }, (_, i) => (ps.includes(i) ? 1 : 0)));
      const mask = tensor(maskRows, { dtype: 'int64' });
      const out = model.forward(px, mask);
      assert.deepEqual(out.reconstruction.shape, [2, 3, 16, 16]);
      assert.deepEqual(out.hidden.shape, [2, 17, 16]);
      assert.deepEqual(out.loss!.shape, []);
      // the loss by hand: mean |x - x^| over the masked patches' pixels
      const rec = out.reconstruction.toFloat32Array();
      const x = px.toFloat32Array();
      let sum = 0;
      let n = 0;
      for (let b = 0; b < 2; b++) for (let c = 0; c < 3; c++) for (let y = 0; y < 16; y++) for (let xx = 0; xx < 16; xx++) {
        if (!maskRows[b]![Math.floor(y / 4) * 4 + Math.floor(xx / 4)]) continue;
        const i = ((b * 3 + c) * 16 + y) * 16 + xx;
        sum += Math.abs(x[i]! - rec[i]!);
        n++;
      }
      assert.ok(Math.abs(out.loss!.item() - (sum / n) * (n / (n + 3e-5))) < 1e-5, `loss ${out.loss!.item()} vs ${sum / n}`);
      // the squared-error option (MAE's): the same masked pixels, squared
      let sq = 0;
      for (let b = 0; b < 2; b++) for (let c = 0; c < 3; c++) for (let y = 0; y < 16; y++) for (let xx = 0; xx < 16; xx++) {
        if (!maskRows[b]![Math.floor(y / 4) * 4 + Math.floor(xx / 4)]) continue;
        const i = ((b * 3 + c) * 16 + y) * 16 + xx;
        sq += (x[i]! - rec[i]!) ** 2;
      }
      const mse = noGrad(() => model.forward(px, mask, { loss: 'mse' }).loss!.item());
      assert.ok(Math.abs(mse - sq / (n + 3e-5)) < 1e-5, `mse loss ${mse} vs ${sq / n}`);
      // the loss reads the masked patches' pixels only: its gradient on the reconstruction is zero elsewhere, and
      // +-1 / (masked pixels + 1e-5 * channels) on them
      out.reconstruction.retainGrad();
      out.loss!.backward();
      const g = out.reconstruction.grad!.toFloat32Array();
      for (let i = 0; i < g.length; i++) {
        const [b, y, xx] = [Math.floor(i / 768), Math.floor(i / 16) % 16, i % 16];
        const masked = maskRows[b]![Math.floor(y / 4) * 4 + Math.floor(xx / 4)];
        if (!masked) assert.ok(g[i] === 0, `gradient at unmasked pixel ${i}: ${g[i]}`);
        else assert.ok(Math.abs(Math.abs(g[i]!) - 1 / (n + 3e-5)) < 1e-9, `gradient at masked pixel ${i}: ${g[i]}`);
      }
      model.zeroGrad();
      // changing an unmasked patch's pixels changes the loss only through the encoder (the reconstruction): with the
      // reconstruction given, the L1 terms are the same
      const changed = px.clone();
      noGrad(() => changed.select(0, 0).slice(1, 0, 4).slice(2, 4, 8).add_(5)); // image 0, patch 1 (rows 0-3, columns 4-7): unmasked
      const moved = model.forward(changed, mask);
      const l1 = (target: Tensor, recon: Tensor) => {
        let s = 0;
        const [t, r] = [target.toFloat32Array(), recon.toFloat32Array()];
        for (let i = 0; i < t.length; i++) {
          const [b, y, xx] = [Math.floor(i / 768), Math.floor(i / 16) % 16, i % 16];
          if (maskRows[b]![Math.floor(y / 4) * 4 + Math.floor(xx / 4)]) s += Math.abs(t[i]! - r[i]!);
        }
        return s / (n + 3e-5);
      };
      assert.ok(Math.abs(moved.loss!.item() - l1(px, moved.reconstruction)) < 1e-5, 'the changed pixels are no target');
      // with every patch masked the encoder sees no pixel: the reconstruction does not depend on them
      const full = tensor([Array.from({ length: 16 }, () => 1), Array.from({ length: 16 }, () => 1)], { dtype: 'int64' });
      assertClose(model.forward(changed, full).reconstruction, model.forward(px, full).reconstruction, { atol: 0, rtol: 0 }, 'fully masked: reconstruction independent of the pixels');
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
    model.dispose();
  }
});

test('ViTForMaskedImageModeling saved -> loadTower(\'image\') gives the same encoder; plain ViT folders load; encoder_stride checked', () => {
  manualSeed(6);
  const dir = tmp();
  const model = new ViTForMaskedImageModeling(VIT_SMALL()).eval();
  try {
    noGrad(() => model.vit.embeddings.stateDict().get('mask_token')!.normal_(0, 1)); // a trained mask token
    model.save(dir);
    const { model: tower, report } = loadTower('image', dir);
    tower.eval();
    assert.equal(tower.constructor.name, 'ViTModel');
    assert.deepEqual(report.unexpected.sort(), ['decoder.0.bias', 'decoder.0.weight', 'embeddings.mask_token']);
    assert.deepEqual(report.missing.sort(), ['pooler.dense.bias', 'pooler.dense.weight']);
    const px = tidy(() => tensor(Array.from({ length: 2 * 3 * 16 * 16 }, (_, i) => Math.cos(i * 0.11)), { shape: [2, 3, 16, 16] }));
    tidy(() => assertClose(tower.forward(px).lastHiddenState, model.forward(px, null).hidden, { atol: 0, rtol: 0 }, 'tower hidden'));
    // an all-zero mask is the unmasked forward
    tidy(() => assertClose(model.forward(px, tensor([Array(16).fill(0), Array(16).fill(0)], { dtype: 'int64' })).hidden, tower.forward(px).lastHiddenState, { atol: 0, rtol: 0 }, 'zero mask'));

    // a plain ViTModel folder (no prefix, a pooler): mask token and decoder missing, kept at their init
    const plain = join(dir, 'plain');
    mkdirSync(plain);
    copyFileSync(join(dir, 'config.json'), join(plain, 'config.json'));
    saveSafetensors(join(plain, 'model.safetensors'), tower.stateDict(), { format: 'pt' });
    tower.dispose();
    const loaded = ViTForMaskedImageModeling.fromPretrained(plain);
    assert.deepEqual(loaded.report.missing.sort(), ['decoder.0.bias', 'decoder.0.weight', 'vit.embeddings.mask_token']);
    assert.deepEqual(loaded.report.unexpected.sort(), ['vit.pooler.dense.bias', 'vit.pooler.dense.weight']);
    loaded.model.eval();
    tidy(() => assertClose(loaded.model.forward(px, null).hidden, model.forward(px, null).hidden, { atol: 0, rtol: 0 }, 'reloaded hidden'));
    loaded.model.dispose();
    // its own folder round trip is exact and strict-clean
    const again = ViTForMaskedImageModeling.fromPretrained(dir, { strict: true }).model.eval();
    const m = tensor([Array.from({ length: 16 }, (_, i) => i % 3 === 0 ? 1 : 0), Array.from({ length: 16 }, (_, i) => i % 2)], { dtype: 'int64' });
    tidy(() => assertClose(again.forward(px, m).reconstruction, model.forward(px, m).reconstruction, { atol: 0, rtol: 0 }, 'round trip reconstruction'));
    again.dispose();
    // a checkpoint whose decoder upsamples by another stride is refused, naming both fields
    const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
    writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...config, encoder_stride: 16 }));
    assert.throws(() => ViTForMaskedImageModeling.fromPretrained(dir), /config\.json: encoder_stride is 16 but patch_size is 4/);
    px.dispose();
  } finally {
    rmSync(dir, { recursive: true, force: true });
    model.dispose();
  }
});
