// Export as Hugging Face folders: layout and config fields as transformers reads them, each encoder loading back
// through BertModel / ViTModel.fromPretrained with no missing or unexpected key and the same outputs, and the
// whole model and its predictions from the export equal to the checkpoint's. (scripts/hf-check.py checks the
// folders against a Python implementation of Hugging Face's math, and against transformers where installed.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BertModel, FusionClassifier, ViTModel, generateSynthetic, listCheckpoints, loadPredictor, loadSafetensors, noGrad, resolveConfig, tensor, tidy, train } from '../src/index.js';
import { exportHuggingFace } from '../src/export/hf.js';
import { predictManifest } from '../src/train/inference.js';
import { ROOT, tinyModel } from './helpers.js';

const CLI = join(ROOT, 'dist', 'src', 'cli', 'main.js');
const json = (f: string) => JSON.parse(readFileSync(f, 'utf8'));

test('export --format hf: BertModel and ViTModel folders that load back with the same outputs, and the whole model from the export equal to the checkpoint', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'mmtrain-export-'));
  await generateSynthetic({ out: join(dir, 'data'), n: 30, seed: 3, imageSize: 16 });
  const r = await train(resolveConfig({
    name: 'x', out: join(dir, 'runs'), seed: 1, model: tinyModel(), data: { train: join(dir, 'data', 'train.jsonl') },
    train: { maxSteps: 3, batchSize: 4 }, log: { progress: 'none' },
  }), { print: () => {} });
  const ckpt = listCheckpoints(r.runDir).pop()!;
  const out = join(dir, 'hf');
  const e = exportHuggingFace(ckpt, out);
  assert.deepEqual(readdirSync(out).sort(), ['fusion', 'image_encoder', 'text_encoder']);
  assert.deepEqual(readdirSync(e.textEncoder).sort(), ['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json']);
  assert.deepEqual(readdirSync(e.imageEncoder).sort(), ['config.json', 'model.safetensors', 'preprocessor_config.json']);
  const tc = json(join(e.textEncoder, 'config.json'));
  assert.equal(tc.model_type, 'bert');
  assert.deepEqual(tc.architectures, ['BertModel']);
  assert.equal(tc.hidden_size, 16);
  const ic = json(join(e.imageEncoder, 'config.json'));
  assert.equal(ic.model_type, 'vit');
  assert.deepEqual(ic.architectures, ['ViTModel']);
  assert.equal(ic.image_size, 16);
  const pc = json(join(e.imageEncoder, 'preprocessor_config.json'));
  // mmtrain's default preprocessing: the shorter side to 16, then the centre crop; PIL bilinear, ImageNet mean/std
  assert.deepEqual([pc.size, pc.crop_size, pc.resample, pc.rescale_factor, pc.image_mean], [{ shortest_edge: 16 }, { height: 16, width: 16 }, 2, 1 / 255, [0.485, 0.456, 0.406]]);
  // BertModel's own key names: no prefix, the pooler included; the fusion file holds the rest
  const tk = [...loadSafetensors(join(e.textEncoder, 'model.safetensors')).tensors.keys()];
  assert.ok(tk.includes('embeddings.word_embeddings.weight') && tk.includes('encoder.layer.0.attention.self.query.weight') && tk.includes('pooler.dense.weight'), tk.slice(0, 5).join(', '));
  const fk = [...loadSafetensors(join(e.fusion, 'model.safetensors')).tensors.keys()];
  assert.ok(fk.length > 0 && fk.every((k) => !k.startsWith('text_encoder.') && !k.startsWith('image_encoder.')), fk.join(', '));

  const original = FusionClassifier.fromPretrained(ckpt).eval();
  const bert = BertModel.fromPretrained(e.textEncoder, { strict: true });
  const vit = ViTModel.fromPretrained(e.imageEncoder, { strict: true });
  const again = FusionClassifier.fromPretrained(out).eval();
  bert.model.eval();
  vit.model.eval();
  assert.deepEqual([bert.report.missing, bert.report.unexpected, vit.report.missing, vit.report.unexpected], [[], [], [], []]);
  noGrad(() => tidy(() => {
    const ids = tensor([[2, 7, 9, 3, 0], [2, 11, 3, 0, 0]], { dtype: 'int64' });
    const mask = tensor([[1, 1, 1, 1, 0], [1, 1, 1, 0, 0]], { dtype: 'int64' });
    const types = tensor([[0, 0, 0, 0, 0], [0, 0, 0, 0, 0]], { dtype: 'int64' });
    const px = tensor(Array.from({ length: 2 * 3 * 16 * 16 }, (_, i) => Math.sin(i)), { shape: [2, 3, 16, 16] });
    const same = (a: { toBuffer(): Buffer }, b: { toBuffer(): Buffer }, what: string) => assert.deepEqual(a.toBuffer(), b.toBuffer(), what);
    same(bert.model.forward(ids, mask, types).lastHiddenState, original.text_encoder.forward(ids, mask, types).lastHiddenState, 'BertModel from the export');
    same(vit.model.forward(px).lastHiddenState, original.image_encoder.forward(px).lastHiddenState, 'ViTModel from the export');
    const x = { inputIds: ids, attentionMask: mask, tokenTypeIds: types, pixelValues: px };
    same(again.forward(x).logits, original.forward(x).logits, 'the fusion model from the export');
  }));
  for (const m of [original, bert.model, vit.model, again]) m.dispose();

  // predict and eval read the export as they read the checkpoint
  const manifest = join(dir, 'data', 'test.jsonl');
  const p1 = loadPredictor(ckpt);
  const p2 = loadPredictor(out);
  const a = await predictManifest(p1, manifest);
  const b = await predictManifest(p2, manifest);
  assert.ok(a.length > 0);
  assert.deepEqual(b, a);
  p1.dispose();
  p2.dispose();

  // an export never writes into a folder that holds something; the command line says so in one line
  mkdirSync(join(dir, 'taken'));
  writeFileSync(join(dir, 'taken', 'keep.txt'), 'mine');
  assert.throws(() => exportHuggingFace(ckpt, join(dir, 'taken')), /taken: the export folder exists and is not empty; choose a new folder or empty it/);
  assert.deepEqual(readdirSync(join(dir, 'taken')), ['keep.txt']);
  const check = join(dir, 'check.safetensors');
  const stdout = execFileSync(process.execPath, [CLI, 'export', ckpt, '--out', join(dir, 'cli'), '--check-file', check], { encoding: 'utf8' });
  assert.match(stdout, /wrote .*text_encoder \(BertModel\)/);
  assert.deepEqual([...loadSafetensors(check).tensors.keys()].sort(), ['attention_mask', 'image.last_hidden_state', 'image.pooler_output', 'input_ids', 'pixel_values', 'text.last_hidden_state', 'text.pooler_output', 'token_type_ids']);
  // Hugging Face's math in plain PyTorch (and transformers where installed) on the exported folders, where a
  // Python with torch is at hand (not in CI: Debian's python3-torch is a fixture generator's dependency)
  const hf = spawnSync('/usr/bin/python3', [join(ROOT, 'scripts', 'hf-check.py'), join(dir, 'cli'), check], { encoding: 'utf8' });
  if (!/No module named 'torch'|ENOENT/.test(`${hf.stderr}${hf.error?.message ?? ''}`)) {
    assert.equal(hf.status, 0, `${hf.stdout}${hf.stderr}`);
    assert.match(hf.stdout, /all within 1e-5/);
  }
  assert.ok(existsSync(join(dir, 'cli', 'fusion', 'mmtrain.json')));
  assert.equal(readdirSync(dir).filter((d) => d.startsWith('.tmp')).length, 0);
  rmSync(dir, { recursive: true });
});
