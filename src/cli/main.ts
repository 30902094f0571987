#!/usr/bin/env node
// The mmtrain command line.
import { Command, InvalidArgumentError } from 'commander';
import { buildInfo, getNumThreads, setNumThreads } from '../index.js';
import { generateSynthetic } from '../data/synth.js';
import { runDemo } from './demo.js';

function positiveInt(name: string) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError(`${name} must be a positive integer (received "${v}")`);
    return n;
  };
}

const program = new Command();
program.name('mmtrain').description('Image-text joint training on LibTorch, with convergence diagnostics').version('0.1.0');
program.option('--threads <n>', 'intra-op threads (default: all cores)', positiveInt('--threads'));
program.hook('preAction', (cmd) => {
  const t = cmd.opts().threads as number | undefined;
  if (t) setNumThreads(t);
});

program
  .command('demo')
  .description('train a small image-text matching model on built-in synthetic data (no download) and evaluate it')
  .option('--steps <n>', 'training steps', positiveInt('--steps'), 400)
  .option('--batch <n>', 'batch size', positiveInt('--batch'), 32)
  .option('--seed <n>', 'random seed', positiveInt('--seed'), 1)
  .action((o: { steps: number; batch: number; seed: number }) => {
    const info = buildInfo();
    console.log(`mmtrain demo: LibTorch ${info.libtorch}, ${getNumThreads()} threads, CUDA ${info.cudaAvailable ? 'available' : 'not available'}`);
    console.log(`task: does the caption ("a red square on the left") match the image? ${o.steps} steps of batch ${o.batch}`);
    const r = runDemo({ ...o, log: (s) => console.log(s) });
    console.log(`held-out accuracy: ${(r.accuracy * 100).toFixed(1)}% on 1024 pairs (chance 50%), ${r.stepsPerSecond.toFixed(1)} steps/s`);
  });

function oneOf<T extends string>(name: string, values: readonly T[]) {
  return (v: string): T => {
    if (!values.includes(v as T)) throw new InvalidArgumentError(`${name} must be one of ${values.join(', ')} (received "${v}")`);
    return v as T;
  };
}

program
  .command('synth')
  .description('write the built-in synthetic image-text data set (JPEG images, train/val/test JSONL manifests)')
  .requiredOption('--out <dir>', 'output folder')
  .option('--n <count>', 'samples in all', positiveInt('--n'), 4000)
  .option('--seed <n>', 'random seed', positiveInt('--seed'), 1)
  .option('--task <task>', 'match | imbalanced', oneOf('--task', ['match', 'imbalanced'] as const), 'match')
  .option('--difficulty <level>', 'easy | medium | hard', oneOf('--difficulty', ['easy', 'medium', 'hard'] as const), 'easy')
  .option('--image-size <px>', 'rendered image side', positiveInt('--image-size'), 64)
  .action(async (o: { out: string; n: number; seed: number; task: 'match' | 'imbalanced'; difficulty: 'easy' | 'medium' | 'hard'; imageSize: number }) => {
    const t0 = performance.now();
    const r = await generateSynthetic(o);
    console.log(`wrote ${o.n} samples (${o.task}, ${o.difficulty}, ${o.imageSize}px) to ${o.out}: train ${r.train.length}, val ${r.val.length}, test ${r.test.length} in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  });

program
  .command('info')
  .description('print the LibTorch build, threads and devices')
  .action(() => {
    const info = buildInfo();
    console.log(JSON.stringify({ ...info, threads: getNumThreads(), node: process.version }, null, 2));
  });

program.parseAsync(process.argv).catch((e: unknown) => {
  console.error(`mmtrain: ${(e as Error).message}`);
  process.exit(1);
});
