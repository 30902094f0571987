// ONNX export, run by ONNX Runtime Web (WebAssembly, in Node): the graph's logits against mmtrain's for every
// fusion type and pooling, both activations' forms, an image projection and token type ids; float16 weights and
// int8 Linear layers within their precision and agreeing on labels; external data; the command and its errors.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateSynthetic, listCheckpoints, loadPredictor, resolveConfig, train } from '../src/index.js';
import { exportOnnx } from '../src/export/onnx.js';
import { compareOnnx, openOnnx } from '../src/export/onnx-check.js';
import { ROOT, tinyModel } from './helpers.js';

const CLI = join(ROOT, 'dist', 'src', 'cli', 'main.js');

let data: Promise<string> | null = null;
function dataDir(): Promise<string> {
  data ??= (async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mmtrain-onnx-'));
    await generateSynthetic({ out: join(dir, 'data'), n: 60, seed: 4, imageSize: 16 });
    return dir;
  })();
  return data;
}

/** A checkpoint of a tiny model after `steps` steps (near its random initialisation). */
async function checkpoint(name: string, model: Record<string, unknown>, steps = 2): Promise<string> {
  const dir = await dataDir();
  const r = await train(resolveConfig({
    name, out: join(dir, 'runs'), seed: 1, model, data: { train: join(dir, 'data', 'train.jsonl') },
    train: { maxSteps: steps, batchSize: 4 }, log: { progress: 'none' },
  }), { print: () => {} });
  return listCheckpoints(r.runDir).pop()!;
}

test('ONNX: every fusion type and pooling gives mmtrain\'s logits within 1e-4 in ONNX Runtime Web (fp32)', async () => {
  const dir = await dataDir();
  const base = tinyModel();
  const variants: [string, Record<string, unknown>][] = [
    ['cross-attention, mean', { ...base, fusion_type: 'cross-attention', pooling: 'mean' }],
    ['cross-attention, cls', { ...base, fusion_type: 'cross-attention', pooling: 'cls' }],
    ['cls-cross-attention', { ...base, fusion_type: 'cls-cross-attention' }],
    ['shared-cls-cross-attention', { ...base, fusion_type: 'shared-cls-cross-attention' }],
    ['concat, mean', { ...base, fusion_type: 'concat', pooling: 'mean' }],
    ['concat, cls', { ...base, fusion_type: 'concat', pooling: 'cls' }],
    // an image encoder wider than the text one (the image projection), GELU's tanh form and ReLU
    ['cross-attention, image projection, gelu_new / relu', {
      ...base, image: { preset: 'vit-tiny', config: { hidden_size: 24, num_attention_heads: 2, intermediate_size: 32, image_size: 16, patch_size: 8, hidden_act: 'relu' } },
      text: { preset: 'bert-tiny', config: { hidden_size: 16, num_attention_heads: 2, intermediate_size: 32, hidden_act: 'gelu_new' } },
    }],
    ['cls-cross-attention, image projection', { ...base, fusion_type: 'cls-cross-attention', image: { preset: 'vit-tiny', config: { hidden_size: 24, num_attention_heads: 2, intermediate_size: 32, image_size: 16, patch_size: 8 } } }],
  ];
  for (const [name, model] of variants) {
    const ckpt = await checkpoint(name.replace(/\W+/g, '-'), model);
    const out = join(dir, 'onnx', name.replace(/\W+/g, '-'));
    const e = exportOnnx(ckpt, out);
    assert.deepEqual(readdirSync(out).sort(), ['config.json', 'mmtrain.json', 'model.onnx', 'tokenizer.json'], name);
    const p = loadPredictor(ckpt, { device: 'cpu' });
    try {
      const c = await compareOnnx(p, out, join(dir, 'data', 'train.jsonl'), { batchSize: 7 });
      assert.ok(c.maxAbsDiff < 1e-4, `${name}: logits differ by ${c.maxAbsDiff}`);
      assert.equal(c.agreement, 1, name);
      assert.ok(e.bytes > 0);
    } finally {
      p.dispose();
    }
  }
});

test('ONNX: the graph\'s inputs, outputs and dynamic axes; token_type_ids when asked; external data', async () => {
  const dir = await dataDir();
  const ckpt = await checkpoint('io', tinyModel());
  const plain = await openOnnx(exportOnnx(ckpt, join(dir, 'io-plain')).dir);
  assert.deepEqual(plain.session.inputNames, ['input_ids', 'attention_mask', 'pixel_values']);
  assert.deepEqual(plain.session.outputNames, ['logits']);
  await plain.release();
  const withTypes = exportOnnx(ckpt, join(dir, 'io-types'), { tokenTypeIds: true });
  const t = await openOnnx(withTypes.dir);
  assert.deepEqual(t.session.inputNames, ['input_ids', 'attention_mask', 'token_type_ids', 'pixel_values']);
  await t.release();
  const ext = exportOnnx(ckpt, join(dir, 'io-ext'), { externalData: true });
  assert.ok(ext.externalData && existsSync(ext.externalData));
  assert.ok(statSync(ext.model).size < 100_000 && statSync(ext.externalData).size > 1_000_000, 'the weights are in model.onnx.data');
  const p = loadPredictor(ckpt, { device: 'cpu' });
  try {
    // batch sizes 1, 5 and 8 with texts of different lengths: dynamic batch and sequence axes
    for (const [out, b] of [[withTypes.dir, 1], [ext.dir, 5], [join(dir, 'io-plain'), 8]] as const) {
      const c = await compareOnnx(p, out, join(dir, 'data', 'val.jsonl'), { batchSize: b });
      assert.ok(c.maxAbsDiff < 1e-4, `${out}, batch ${b}: ${c.maxAbsDiff}`);
    }
  } finally {
    p.dispose();
  }
});

test('ONNX: float16 weights halve the file and int8 Linear layers stay within their precision, agreeing on labels', async () => {
  const dir = await dataDir();
  const ckpt = await checkpoint('quant', {
    text: { preset: 'bert-tiny', config: { hidden_size: 64, num_attention_heads: 2, intermediate_size: 256 } },
    image: { preset: 'vit-tiny', config: { hidden_size: 64, num_attention_heads: 2, intermediate_size: 256, image_size: 16, patch_size: 8 } },
    fusion_num_heads: 2, head_hidden_size: 64,
  }, 20);
  const fp32 = exportOnnx(ckpt, join(dir, 'q-fp32'));
  const fp16 = exportOnnx(ckpt, join(dir, 'q-fp16'), { fp16: true });
  const int8 = exportOnnx(ckpt, join(dir, 'q-int8'), { int8: true });
  assert.ok(fp16.bytes < 0.52 * fp32.bytes, `fp16 ${fp16.bytes} vs fp32 ${fp32.bytes}`);
  assert.ok(int8.bytes < fp32.bytes, `int8 ${int8.bytes} vs fp32 ${fp32.bytes}`);
  const p = loadPredictor(ckpt, { device: 'cpu' });
  try {
    const manifest = join(dir, 'data', 'train.jsonl');
    const h = await compareOnnx(p, fp16.dir, manifest);
    const q = await compareOnnx(p, int8.dir, manifest);
    assert.ok(h.maxAbsDiff > 0 && h.maxAbsDiff < 0.01, `fp16: ${h.maxAbsDiff}`);
    assert.ok(q.maxAbsDiff > 0 && q.maxAbsDiff < 0.05, `int8: ${q.maxAbsDiff}`);
    assert.ok(h.agreement >= 0.95 && q.agreement >= 0.9, `agreement fp16 ${h.agreement}, int8 ${q.agreement}`);
    assert.ok(h.accuracy && q.accuracy && Math.abs(h.accuracy.onnx - h.accuracy.mmtrain) <= 0.05 && Math.abs(q.accuracy.onnx - q.accuracy.mmtrain) <= 0.1);
  } finally {
    p.dispose();
  }
});

test('mmtrain export --format onnx: writes the folder and checks it against the checkpoint; refuses what it cannot do', async () => {
  const dir = await dataDir();
  const ckpt = await checkpoint('cli', tinyModel());
  const out = join(dir, 'cli-onnx');
  const stdout = execFileSync(process.execPath, [CLI, '--threads', '1', 'export', ckpt, '--format', 'onnx', '--out', out, '--check-data', join(dir, 'data', 'val.jsonl')], { encoding: 'utf8' });
  assert.match(stdout, /wrote .*model\.onnx \(\d+\.\d MiB\)/);
  assert.match(stdout, /ONNX Runtime Web on \d+ samples of .*val\.jsonl: logits within \d\.\d+e-\d+ of mmtrain's, probabilities within .*; same label for 100\.00%; accuracy/);
  const info = JSON.parse(readFileSync(join(out, 'mmtrain.json'), 'utf8'));
  assert.deepEqual(info.onnx.inputs, ['input_ids', 'attention_mask', 'pixel_values']);
  assert.equal(info.onnx.opset, 17);
  const fail = (args: string[], pattern: RegExp) => assert.throws(
    () => execFileSync(process.execPath, [CLI, 'export', ...args], { stdio: 'pipe', encoding: 'utf8' }),
    (e: { status: number; stderr: string }) => e.status !== 0 && pattern.test(e.stderr) && !/\n\s+at /.test(e.stderr),
  );
  fail([ckpt, '--format', 'onnx', '--out', out], /cli-onnx: the export folder exists and is not empty/);
  fail([ckpt, '--format', 'onnx', '--fp16', '--int8', '--out', join(dir, 'both')], /choose --fp16 or --int8, not both/);
  fail([ckpt, '--format', 'hf', '--int8', '--out', join(dir, 'hf-int8')], /--int8 applies to --format onnx only/);
  fail([ckpt, '--format', 'tflite', '--out', join(dir, 'x')], /argument 'tflite' is invalid.*hf, onnx/);
  mkdirSync(join(dir, 'notckpt'), { recursive: true });
  writeFileSync(join(dir, 'notckpt', 'readme.txt'), 'x');
  fail([join(dir, 'notckpt'), '--format', 'onnx', '--out', join(dir, 'y')], /notckpt: not an mmtrain checkpoint/);
  assert.ok(!existsSync(join(dir, 'both')) && !existsSync(join(dir, 'y')), 'nothing written for a refused export');
});
