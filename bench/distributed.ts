// Data-parallel throughput on this machine: one process with one thread against two processes with one thread each
// (mmtrain launch --nproc 2), the demo model on cached images, with the gradients averaged during backward (the
// default) and after it, whose allreduce time per step is measured.
import { execFileSync } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { generateSynthetic } from '../src/index.js';
import { DEMO_IMAGE_SIZE, demoConfig } from '../src/cli/demo.js';
import { distributedAvailable } from '../src/train/distributed.js';

export async function dataParallel(workDir: string, root: string, steps = 120): Promise<{ samples_per_s_1: number; samples_per_s_2: number; speedup: number; samples_per_s_2_after: number; speedup_after: number; allreduce_ms_after: number } | null> {
  if (!distributedAvailable()) return null;
  const data = join(workDir, 'data');
  await generateSynthetic({ out: data, n: 3000, seed: 1, imageSize: DEMO_IMAGE_SIZE });
  const base = demoConfig(data, { out: join(workDir, 'runs') });
  const cfg = join(workDir, 'cfg.json');
  writeFileSync(cfg, JSON.stringify({
    ...base, data: { ...base.data, val: undefined, test: undefined, cache: join(workDir, 'cache') },
    train: { ...base.train, maxSteps: steps, epochs: 100 }, eval: { every: 100000 }, checkpoint: { every: 100000, keepLast: 1, saveBest: false },
    log: { every: 10, progress: 'none', report: false, tensorboard: false },
  }));
  const cli = join(root, 'dist', 'src', 'cli', 'main.js');
  const run = (dir: string, args: string[], extra: string[] = []) => {
    rmSync(dir, { recursive: true, force: true });
    execFileSync(process.execPath, [cli, ...args, 'train', '--config', cfg, '--run-dir', dir, ...extra], { stdio: 'ignore' });
    const recs = readFileSync(join(dir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l)).filter((r) => r.event === 'train');
    const tail = recs.slice(Math.floor(recs.length / 3)); // past the first epoch's image decoding
    return { sps: tail.reduce((a, r) => a + r.samples_per_s, 0) / tail.length, ar: tail.reduce((a, r) => a + (r.allreduce_s ?? 0), 0) / tail.length };
  };
  run(join(workDir, 'warm'), ['--threads', '1']); // fills the image cache of rank 0 / the single run
  const one = run(join(workDir, 'one'), ['--threads', '1']);
  // gradients averaged while backward runs (c10d's Reducer, the default), and after it (distributed.overlap false)
  const two = run(join(workDir, 'two'), ['launch', '--nproc', '2', '--']);
  const after = run(join(workDir, 'two-after'), ['launch', '--nproc', '2', '--'], ['--set', 'distributed.overlap=false']);
  return {
    samples_per_s_1: one.sps, samples_per_s_2: two.sps, speedup: two.sps / one.sps,
    samples_per_s_2_after: after.sps, speedup_after: after.sps / one.sps, allreduce_ms_after: after.ar * 1000,
  };
}
