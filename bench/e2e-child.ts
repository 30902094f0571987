// mmtrain's side of the end-to-end case, in a fresh process so that OpenMP's waiting is the one `mmtrain train`
// gives a run of this precision (src/cli/threading.ts). Trains with the demo's defaults on the e2e data set, saves
// the initial weights for the PyTorch sides, and stops at the first evaluation that reaches the target accuracy.
// node dist/bench/e2e-child.js SPEC.json THREADS
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { resolveConfig, saveSafetensors, setNumThreads, train } from '../src/index.js';
import { demoConfig } from '../src/cli/demo.js';
import { peakRssMiB } from './blocks.js';

const [specPath, threads] = process.argv.slice(2);
setNumThreads(Number(threads));
const spec = JSON.parse(readFileSync(specPath!, 'utf8')) as { dataDir: string; workDir: string; init: string; target: number; precision: 'fp32' | 'bf16'; train_args: { epochs: number } };
const runs = join(spec.workDir, 'runs');
rmSync(runs, { recursive: true, force: true }); // a fresh image cache: the first epoch decodes, as on the other sides
const config = resolveConfig(demoConfig(spec.dataDir, { out: runs, precision: spec.precision, epochs: spec.train_args.epochs }), 'e2e config');

const abort = new AbortController();
const epochs: { epoch: number; val_accuracy: number; elapsed_s: number }[] = [];
let t0 = 0;
let reached: number | null = null;
await train(config, {
  print: () => {},
  signal: abort.signal,
  callbacks: [{
    onTrainStart: (ctx) => {
      saveSafetensors(spec.init, ctx.model.stateDict(), { format: 'pt' });
      t0 = performance.now();
    },
    onEvaluate: (ctx, split, m) => {
      if (split !== 'val') return;
      const elapsed = (performance.now() - t0) / 1000;
      epochs.push({ epoch: ctx.state.epoch, val_accuracy: m.accuracy, elapsed_s: elapsed });
      process.stderr.write(`${JSON.stringify({ progress: 'mmtrain', ...epochs[epochs.length - 1] })}\n`);
      if (reached === null && m.accuracy >= spec.target) {
        reached = elapsed;
        abort.abort();
      }
    },
  }],
});
console.log(JSON.stringify({ time_to_target_s: reached, target: spec.target, precision: spec.precision, epochs, peak_rss_mib: peakRssMiB() }));
