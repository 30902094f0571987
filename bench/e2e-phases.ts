// Where a training step of the end-to-end case's model goes, phase by phase, in a fresh process (the OpenMP waiting
// of a run of this precision): forward with the loss, backward, gradient clipping, AdamW. The batches are the first
// ones of the run's plan (their real token ids, dynamically padded; random pixels), as bench/e2e_pytorch.py
// --mode phases times them on PyTorch's side. node dist/bench/e2e-phases.js SPEC.json THREADS
import { readFileSync } from 'node:fs';
import {
  AdamW, F, autocast, clipGradNorm, createFusionModel, loadSafetensors, manualSeed, parameterGroups, randn, resolveConfig, setNumThreads, tensor, tidy,
} from '../src/index.js';
import { demoConfig } from '../src/cli/demo.js';
import { median } from './stats.js';

const PHASE_WARMUP = 10; // the same counts as bench/e2e_pytorch.py
const PHASE_STEPS = 60;

const [specPath, threads] = process.argv.slice(2);
setNumThreads(Number(threads));
const spec = JSON.parse(readFileSync(specPath!, 'utf8')) as { dataDir: string; workDir: string; init: string; tokens: string; precision: 'fp32' | 'bf16'; train_args: { epochs: number } };
const config = resolveConfig(demoConfig(spec.dataDir, { out: spec.workDir, precision: spec.precision, epochs: spec.train_args.epochs }), 'e2e config');
const { train: ids, plans } = JSON.parse(readFileSync(spec.tokens, 'utf8')) as { train: number[][]; plans: number[][][] };
const labels = readFileSync(config.data.train!, 'utf8').split('\n').filter((l) => l.trim()).map((l) => Number((JSON.parse(l) as { label: number }).label));

manualSeed(0);
const { model } = createFusionModel(config.model);
model.loadStateDict(loadSafetensors(spec.init).tensors); // the run's initial weights, every key
model.train();
const groups = parameterGroups(model, config);
const params = groups.flatMap((g) => g.params);
const opt = new AdamW(groups, { lr: config.train.lr, betas: config.train.betas, eps: config.train.eps });
const S = config.model.image!.config!.image_size as number;

const phases: Record<'forward' | 'backward' | 'clip' | 'optimizer', number[]> = { forward: [], backward: [], clip: [], optimizer: [] };
for (let i = 0; i < PHASE_WARMUP + PHASE_STEPS; i++) {
  const rows = plans[0]![i % plans[0]!.length]!;
  const T = Math.max(...rows.map((r) => ids[r]!.length));
  const pad = (r: number, f: (k: number) => number) => Array.from({ length: T }, (_, k) => (k < ids[r]!.length ? f(k) : 0));
  tidy(() => {
    const inputs = {
      inputIds: tensor(rows.map((r) => pad(r, (k) => ids[r]![k]!)), { dtype: 'int64' }),
      attentionMask: tensor(rows.map((r) => pad(r, () => 1)), { dtype: 'int64' }),
      pixelValues: randn([rows.length, 3, S, S]),
    };
    const y = tensor(rows.map((r) => labels[r]!), { dtype: 'int64' });
    let t = performance.now();
    const lap = (k: keyof typeof phases) => {
      const now = performance.now();
      if (i >= PHASE_WARMUP) phases[k].push(now - t);
      t = now;
    };
    const loss = autocast({ enabled: spec.precision === 'bf16' }, () => F.crossEntropy(model.forward(inputs).logits.float(), y));
    loss.item();
    lap('forward');
    loss.backward();
    lap('backward');
    clipGradNorm(params, config.train.clipGradNorm ?? Infinity);
    lap('clip');
    opt.step();
    opt.zeroGrad();
    lap('optimizer');
  });
}
const ms = Object.fromEntries(Object.entries(phases).map(([k, v]) => [k, median(v)])) as Record<keyof typeof phases, number>;
console.log(JSON.stringify({ precision: spec.precision, steps: PHASE_STEPS, batch: config.train.batchSize, median_ms: ms, step_ms: ms.forward + ms.backward + ms.clip + ms.optimizer }));
