#!/usr/bin/env node
// The mmtrain command line.
import { Command, InvalidArgumentError } from 'commander';
import { buildInfo, getNumThreads, setNumThreads } from '../index.js';
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
