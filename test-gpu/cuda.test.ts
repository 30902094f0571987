// The GPU checks (scripts/gpu-check.sh runs them on a machine with an NVIDIA GPU; `npm test` does not, having
// none): the tiny fusion model's forward and gradients on cuda against cpu, in-place device moves, batches through
// pinned memory, fp32 / bf16 / fp16 training on the GPU with the loss scaler, and a GPU checkpoint resumed on the CPU
// with bit-identical weights.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  FusionClassifier, F, cudaDevices, cudaMemory, createFusionModel, generateSynthetic, listCheckpoints, loadSafetensors, manualSeed,
  resolveConfig, tensor, tidy, train, type Tensor,
} from '../src/index.js';
import { tinyModel } from '../test/helpers.js';

const gpus = cudaDevices();

test('a GPU is visible (this file runs only where one is)', () => {
  assert.ok(gpus.length > 0, 'no CUDA device: run scripts/gpu-check.sh on a machine with an NVIDIA GPU and a CUDA LibTorch');
  for (const g of gpus) console.log(`cuda:${g.index}: ${g.name}, ${(g.totalMemory / 2 ** 30).toFixed(1)} GiB, sm_${g.major}${g.minor}`);
});

function batch(device: 'cpu' | 'cuda:0') {
  const on = (t: Tensor) => (device === 'cpu' ? t : t.to(device));
  return {
    inputIds: on(tensor([[2, 7, 9, 3, 0], [2, 11, 3, 0, 0], [2, 5, 6, 8, 3]], { dtype: 'int64' })),
    attentionMask: on(tensor([[1, 1, 1, 1, 0], [1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], { dtype: 'int64' })),
    tokenTypeIds: on(tensor([[0, 0, 0, 0, 0], [0, 0, 0, 0, 0], [0, 0, 0, 0, 0]], { dtype: 'int64' })),
    pixelValues: on(tensor(Array.from({ length: 3 * 3 * 16 * 16 }, (_, i) => Math.sin(i * 0.1)), { shape: [3, 3, 16, 16] })),
    labels: on(tensor([0, 1, 1], { dtype: 'int64' })),
  };
}

for (const fusion_type of ['cross-attention', 'cls-cross-attention', 'shared-cls-cross-attention', 'concat'] as const) {
  test(`${fusion_type}: forward and every gradient on cuda equal cpu's within 1e-4; the move there and back is bit-identical`, () => {
    manualSeed(3);
    const cpu = createFusionModel({ ...(tinyModel({ dropout: false }) as object), fusion_type, num_labels: 2 }).model.eval();
    const gpu = createFusionModel({ ...(tinyModel({ dropout: false }) as object), fusion_type, num_labels: 2 }).model.eval();
    gpu.loadStateDict(cpu.stateDict());
    gpu.to('cuda:0');
    for (const [, t] of gpu.namedParameters()) assert.equal(t.device, 'cuda:0');
    const run = (m: FusionClassifier, device: 'cpu' | 'cuda:0') => tidy(() => {
      const b = batch(device);
      const out = m.forward(b);
      F.crossEntropy(out.logits, b.labels).backward();
      return { logits: out.logits.cpu().toNumbers(), grads: m.namedParameters().map(([n, p]) => { const g = p.grad!; const v = [n, g.cpu().toNumbers()] as const; g.dispose(); return v; }) };
    });
    const a = run(cpu, 'cpu');
    const b = run(gpu, 'cuda:0');
    a.logits.forEach((v, i) => assert.ok(Math.abs(v - b.logits[i]!) <= 1e-4, `logit ${i}: ${v} vs ${b.logits[i]}`));
    assert.ok(a.grads.length > 10);
    a.grads.forEach(([n, g], k) => g.forEach((v, i) => assert.ok(Math.abs(v - b.grads[k]![1][i]!) <= 1e-4 + 1e-3 * Math.abs(v), `${n}[${i}]: ${v} vs ${b.grads[k]![1][i]}`)));
    // back on the CPU, the weights are the bytes they were
    gpu.to('cpu');
    for (const [k, t] of cpu.stateDict()) assert.deepEqual(gpu.stateDict().get(k)!.toBuffer(), t.toBuffer(), k);
    cpu.dispose();
    gpu.dispose();
  });
}

for (const precision of ['fp32', 'bf16', 'fp16'] as const) {
  test(`${precision} training on the GPU gives finite losses (fp16: a saved loss scale); its float32 checkpoint resumes on the CPU`, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mmtrain-gpu-'));
    await generateSynthetic({ out: join(dir, 'data'), n: 200, seed: 2, imageSize: 16 });
    const r = await train(resolveConfig({
      name: precision, out: join(dir, 'runs'), seed: 1, model: tinyModel(),
      data: { train: join(dir, 'data', 'train.jsonl'), val: join(dir, 'data', 'val.jsonl') },
      train: { device: 'cuda', precision, epochs: 3, batchSize: 16, lr: 3e-3 }, log: { every: 1, progress: 'none' },
    }), { print: () => {} });
    const recs = readFileSync(join(r.runDir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    const losses = recs.filter((x) => x.event === 'train').map((x) => x.loss as number);
    assert.ok(losses.length > 10 && losses.every(Number.isFinite), `${losses.length} finite losses`);
    if (precision === 'fp16') {
      const state = JSON.parse(readFileSync(join(listCheckpoints(r.runDir).pop()!, 'trainer_state.json'), 'utf8'));
      assert.ok(state.lossScale && state.lossScale.scale > 0, 'the loss scale is saved');
    }
    // the checkpoint: float32 weights, loadable on the CPU, resumable there
    const ckpt = listCheckpoints(r.runDir).pop()!;
    for (const [k, t] of loadSafetensors(join(ckpt, 'model.safetensors')).tensors) assert.equal(t.dtype, 'float32', k);
    const resumed = await train(resolveConfig({
      name: precision, out: join(dir, 'runs'), seed: 1, model: tinyModel(),
      data: { train: join(dir, 'data', 'train.jsonl'), val: join(dir, 'data', 'val.jsonl') },
      train: { device: 'cpu', precision: precision === 'fp16' ? 'fp32' : precision, epochs: 4, batchSize: 16, lr: 3e-3 }, log: { every: 1, progress: 'none' },
    }), { print: () => {}, resume: r.runDir });
    assert.ok(resumed.steps > r.steps);
    const mem = cudaMemory(0);
    if (mem) console.log(`${precision}: GPU memory after the run ${(mem.allocated / 2 ** 20).toFixed(0)} MiB allocated, ${(mem.reserved / 2 ** 20).toFixed(0)} MiB reserved`);
    rmSync(dir, { recursive: true });
  });
}
