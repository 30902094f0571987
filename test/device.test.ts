// Devices without a GPU: resolving a device setting (and the errors when a GPU is asked for and none is there),
// in-place moves of module parameters, and the fp16 loss scaler's algorithm (PyTorch's GradScaler) on CPU tensors.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildInfo, cudaDevices, generateSynthetic, resolveConfig, resolveDevice, tensor, tidy, train } from '../src/index.js';
import { LossScaler } from '../src/train/loss-scaler.js';
import { Linear } from '../src/nn/layers.js';
import { tinyModel } from './helpers.js';

const gpus = buildInfo().cudaAvailable ? buildInfo().cudaDeviceCount : 0;

test('device settings: auto is the first GPU or the CPU; cpu is the CPU; a GPU asked for where none is names mmtrain info', () => {
  assert.equal(resolveDevice('cpu'), 'cpu');
  assert.equal(resolveDevice('auto'), gpus > 0 ? 'cuda:0' : 'cpu');
  assert.equal(cudaDevices().length, gpus);
  if (gpus === 0) {
    assert.throws(() => resolveDevice('cuda', 'train.device'), /^MmtrainError: train\.device is cuda but .*; run `mmtrain info` to see what this build sees, or use train\.device cpu$/);
    assert.throws(() => resolveDevice('cuda:1', '--device'), /--device is cuda:1 but .*mmtrain info/);
  } else {
    assert.equal(resolveDevice('cuda'), 'cuda:0');
    assert.throws(() => resolveDevice(`cuda:${gpus}`), new RegExp(`LibTorch sees ${gpus} GPU\\(s\\)`));
  }
  assert.throws(() => resolveDevice('gpu', '--device'), /^MmtrainError: Expected auto, cpu, cuda or cuda:N for --device but received "gpu"$/);
});

test('Module.to moves parameters in place: the same tensor objects, new data (here a dtype move shows it on the CPU)', () => {
  const lin = new Linear(3, 2);
  const w = lin.weight;
  const before = w.toNumbers();
  lin.to('cpu');
  assert.equal(lin.weight, w);
  assert.deepEqual(w.toNumbers(), before);
  // setData_ is what the move uses: the tensor stays the object the module (and an optimizer) hold
  tidy(() => w.setData_(w.to('float64')));
  assert.equal(lin.weight, w);
  assert.equal(w.dtype, 'float64');
  w.toNumbers().forEach((v, i) => assert.equal(v, before[i]));
  lin.dispose();
});

test('the loss scaler follows GradScaler: x0.5 and a skipped step on inf/NaN, x2 after growthInterval good steps, unscaling by the float32 reciprocal', () => {
  const s = new LossScaler({ init: 1024, growthFactor: 2, backoffFactor: 0.5, growthInterval: 3 });
  // the scale after each step, worked out from GradScaler's rules (torch/amp/grad_scaler.py, _amp_update_scale_)
  const overflow = [false, false, false, true, false, true, true, false, false, false, false];
  const expected = [1024, 1024, 2048, 1024, 1024, 512, 256, 256, 256, 512, 512];
  overflow.forEach((inf, i) => assert.equal(s.update(inf), expected[i], `step ${i + 1}`));
  assert.deepEqual(s.state, { scale: 512, growthTracker: 1 });
  // resumed from its state, it continues exactly: two more good steps grow it
  const r = new LossScaler(s.config, s.state);
  assert.equal(r.update(false), 512);
  assert.equal(r.update(false), 1024);
  // a scale that would overflow float32 stays where it is
  const top = new LossScaler({ init: 2 ** 127, growthFactor: 2, backoffFactor: 0.5, growthInterval: 1 });
  assert.equal(top.update(false), 2 ** 127);
  // scaled backward, then unscaled: the gradients of the unscaled loss (power-of-two scale: exactly)
  const x = tensor([[0.5, -1.25, 3]]);
  const lin = new Linear(3, 2);
  const loss = () => lin.forward(x).square().sum();
  tidy(() => loss().backward());
  const plain = lin.parameters().map((p) => { const g = p.grad!; const v = g.toNumbers(); g.dispose(); return v; });
  lin.zeroGrad();
  const scaler = new LossScaler({ init: 65536, growthFactor: 2, backoffFactor: 0.5, growthInterval: 2000 });
  tidy(() => scaler.scaleLoss(loss()).backward());
  const scaled = lin.parameters().map((p) => { const g = p.grad!; const v = g.toNumbers(); g.dispose(); return v; });
  assert.ok(scaled[0]!.some((v, i) => v !== plain[0]![i]), 'the scaled gradients differ before unscaling');
  scaler.unscale(lin.parameters());
  lin.parameters().forEach((p, k) => { const g = p.grad!; assert.deepEqual(g.toNumbers(), plain[k]); g.dispose(); });
  assert.ok(plain.flat().length === 8);
  lin.dispose();
});

test('fp16 asks for a GPU: on the CPU the config (device cpu) or the trainer (device auto without a GPU) says so', { skip: gpus > 0 ? 'a GPU is present' : false }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'mmtrain-dev-'));
  await generateSynthetic({ out: join(dir, 'data'), n: 20, seed: 2, imageSize: 16 });
  const cfg = resolveConfig({ name: 'fp16', out: join(dir, 'runs'), model: tinyModel(), data: { train: join(dir, 'data', 'train.jsonl') }, train: { precision: 'fp16', maxSteps: 1 }, log: { progress: 'none' } });
  await assert.rejects(train(cfg, { print: () => {} }), /train\.precision: fp16 needs a GPU .*train\.device auto is the CPU here; use bf16 on the CPU/);
  const onCuda = resolveConfig({ ...cfg, train: { ...cfg.train, precision: 'fp32', device: 'cuda' } } as never);
  await assert.rejects(train(onCuda, { print: () => {} }), /train\.device is cuda but .*mmtrain info/);
  rmSync(dir, { recursive: true });
});
