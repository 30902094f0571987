// Benchmark workloads on the mmtrain side, mirroring bench/pytorch_ref.py case by case.
import { readFileSync } from 'node:fs';
import { AdamW, F, Tensor, arange, autocast, clipGradNorm, createFusionModel, manualSeed, nn, ones, randn, tensor, tidy } from '../src/index.js';
import { median } from './stats.js';

/** µs per call of a tiny op (1-element add) including its release: with dispose(), and inside one tidy per 100. */
export function opOverhead(n: number): { us_per_op: number; us_per_op_tidy: number; runs: number[] } {
  const a = ones([1]);
  const b = ones([1]);
  for (let i = 0; i < 1000; i++) a.add(b).dispose();
  const runs: number[] = [];
  for (let r = 0; r < 5; r++) {
    const t0 = performance.now();
    for (let i = 0; i < n; i++) a.add(b).dispose();
    runs.push(((performance.now() - t0) / n) * 1000);
  }
  const tidyRuns: number[] = [];
  for (let r = 0; r < 5; r++) {
    const t0 = performance.now();
    for (let i = 0; i < n / 100; i++) tidy(() => { for (let j = 0; j < 100; j++) a.add(b); });
    tidyRuns.push(((performance.now() - t0) / n) * 1000);
  }
  a.dispose();
  b.dispose();
  return { us_per_op: median(runs), us_per_op_tidy: median(tidyRuns), runs };
}

/** Post-norm encoder layer (BERT form), identical to the reference's Layer. */
class Layer extends nn.Module {
  readonly attention: nn.MultiheadAttention;
  readonly norm1: nn.LayerNorm;
  readonly fc1: nn.Linear;
  readonly fc2: nn.Linear;
  readonly norm2: nn.LayerNorm;
  constructor(C: number, nh: number) {
    super();
    this.attention = this.registerModule('attention', new nn.MultiheadAttention(C, nh, { batchFirst: true }));
    this.norm1 = this.registerModule('norm1', new nn.LayerNorm(C, 1e-12));
    this.fc1 = this.registerModule('fc1', new nn.Linear(C, 4 * C));
    this.fc2 = this.registerModule('fc2', new nn.Linear(4 * C, C));
    this.norm2 = this.registerModule('norm2', new nn.LayerNorm(C, 1e-12));
  }
  forward(x: Tensor): Tensor {
    const a = this.attention.forward(x, x, x, { needWeights: false }).output;
    const h = this.norm1.forward(x.add(a));
    return this.norm2.forward(h.add(this.fc2.forward(F.gelu(this.fc1.forward(h)))));
  }
}

export function transformerBlock(B: number, T: number, C: number, layers: number, nh: number, warmup: number, steps: number) {
  manualSeed(0);
  const model = new nn.ModuleList(Array.from({ length: layers }, () => new Layer(C, nh)));
  const x = randn([B, T, C]);
  const times: number[] = [];
  for (let i = 0; i < warmup + steps; i++) {
    const t0 = performance.now();
    tidy(() => {
      let y = x;
      for (const l of model) y = l.forward(y);
      y.mean().backward();
      model.zeroGrad();
    });
    if (i >= warmup) times.push((performance.now() - t0) / 1000);
  }
  model.dispose();
  x.dispose();
  const med = median(times);
  return { B, T, C, layers, median_s: med, steps_per_s: 1 / med, times };
}

/** The same inputs as bench/pytorch_ref.py's fusion_inputs. */
function fusionInputs(B: number, T: number) {
  const ids = new Int32Array(B * T);
  const mask = new Int32Array(B * T);
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < T; t++) {
      const on = b % 2 === 1 && t >= Math.floor((T * 5) / 8) ? 0 : 1;
      mask[b * T + t] = on;
      ids[b * T + t] = on ? (((b * T + t) * 7919) % 29000) + 1000 : 0;
    }
  }
  return {
    inputIds: tensor(ids, { shape: [B, T], dtype: 'int64' }),
    attentionMask: tensor(mask, { shape: [B, T], dtype: 'int64' }),
    pixelValues: randn([B, 3, 224, 224]),
    labels: arange(B).remainder(2),
  };
}

/**
 * Fusion classifier (cross-attention) training step: forward, cross-entropy, backward, clipping at global norm 1,
 * AdamW step (one native call for all parameters), gradients released.
 */
export function fusionStep(preset: string, B: number, T: number, warmup: number, steps: number, bf16 = false) {
  manualSeed(0);
  const { model } = createFusionModel({ preset });
  model.train();
  const opt = new AdamW(model.parameters(), { lr: 1e-4, weightDecay: 0.01 });
  const x = fusionInputs(B, T);
  const times: number[] = [];
  for (let i = 0; i < warmup + steps; i++) {
    const t0 = performance.now();
    tidy(() => {
      // bf16: CPU autocast over fp32 master weights, the loss in fp32 (as the trainer does)
      const logits = autocast({ enabled: bf16, dtype: 'bfloat16' }, () => model.forward(x).logits);
      F.crossEntropy(logits.float(), x.labels).backward();
      clipGradNorm(model.parameters(), 1);
      opt.step();
      opt.zeroGrad();
    });
    if (i >= warmup) times.push((performance.now() - t0) / 1000);
  }
  model.dispose();
  opt.dispose();
  for (const t of Object.values(x)) t.dispose();
  const med = median(times);
  return { preset, B, T, bf16, median_s: med, samples_per_s: B / med, times };
}

/**
 * Matrix-multiply rate in GFLOP/s: an (n x n) @ (n x n) product in fp32 or bf16, median over repetitions; the
 * denominator of MFU. The same case in bench/pytorch_ref.py measures PyTorch's.
 */
export function matmulRate(dtype: 'float32' | 'bfloat16', n = 1024, reps = 20): { dtype: string; n: number; gflops: number } {
  manualSeed(0);
  const a = randn([n, n]).to(dtype);
  const b = randn([n, n]).to(dtype);
  for (let i = 0; i < 3; i++) tidy(() => { a.matmul(b); });
  const times: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    tidy(() => { a.matmul(b); });
    times.push((performance.now() - t0) / 1000);
  }
  a.dispose();
  b.dispose();
  return { dtype, n, gflops: (2 * n ** 3) / median(times) / 1e9 };
}

/**
 * Peak resident memory of this process in MiB: VmHWM from /proc/self/status, which starts afresh at exec.
 * (getrusage's maxrss does not: a child forked from a large parent reports the parent's peak.)
 */
export function peakRssMiB(): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'));
  return m ? Number(m[1]) / 1024 : process.resourceUsage().maxRSS / 1024;
}
