// SIGKILL-and-resume trials, shared by test/faults.test.ts (a few trials in CI) and scripts/soak-kill.ts (the soak,
// 20 trials or more): a training process is killed at a random moment, possibly again while resuming, then resumed
// until it finishes; every checkpoint on disk must load at every kill, and the final weights must equal those of an
// uninterrupted run bit for bit.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FusionClassifier, convertDataset, generateSynthetic, listCheckpoints, loadSafetensors, readManifest, readTrainerState } from '../src/index.js';
import { ROOT, tinyModel } from './helpers.js';

const CLI = join(ROOT, 'dist', 'src', 'cli', 'main.js');

export interface FaultSetup {
  dir: string;
  cfg: string;
  /** final model.safetensors bytes of the uninterrupted run */
  reference: Buffer;
  /** its wall time, ms */
  referenceMs: number;
}

/** `format`: the training data as a manifest, or converted to WebDataset shards (streamed, replayed on resume). */
export async function faultSetup(steps = 30, format: 'manifest' | 'webdataset' = 'manifest'): Promise<FaultSetup> {
  const dir = mkdtempSync(join(tmpdir(), 'mmtrain-fault-'));
  await generateSynthetic({ out: join(dir, 'data'), n: 120, seed: 5, imageSize: 16 });
  let train = 'data/train.jsonl';
  if (format === 'webdataset') {
    const r = await convertDataset(readManifest(join(dir, 'data', 'train.jsonl')), { to: 'webdataset', out: join(dir, 'wds'), prefix: 'train', shardSize: 25, rowGroupSize: 100, compression: 'snappy', onBadSample: 'error' });
    train = r.pattern;
  }
  const cfg = join(dir, 'cfg.yaml');
  writeFileSync(cfg, [
    'seed: 9',
    `model: ${JSON.stringify(tinyModel())}`,
    `data: { train: "${train}", val: data/val.jsonl, cache: true, stream: { shuffleBuffer: 20 } }`,
    `train: { epochs: 100, maxSteps: ${steps}, batchSize: 8, lr: 1.0e-3 }`,
    'eval: { every: 10 }',
    'checkpoint: { every: 5, keepLast: 2 }',
    'diagnostics: { every: 5 }',
    'log: { every: 1, progress: none, report: false }',
  ].join('\n'));
  const t0 = performance.now();
  const ref = join(dir, 'reference');
  execFileSync(process.execPath, [CLI, '--threads', '1', 'train', '--config', cfg, '--run-dir', ref], { stdio: 'pipe' });
  return { dir, cfg, reference: readFileSync(join(listCheckpoints(ref).pop()!, 'model.safetensors')), referenceMs: performance.now() - t0 };
}

/** Every checkpoint listed must load completely: weights (strictly), optimizer tensors and trainer state. */
export function checkCheckpoints(runDir: string): number {
  const list = listCheckpoints(runDir);
  for (const c of list) {
    const m = FusionClassifier.fromPretrained(c);
    m.dispose();
    for (const t of loadSafetensors(join(c, 'optimizer.safetensors')).tensors.values()) t.dispose();
    readTrainerState(c);
  }
  return list.length;
}

function run(args: string[], killAfterMs: number | null): Promise<{ killed: boolean; code: number | null; stderr: string }> {
  return new Promise((res) => {
    const p: ChildProcess = spawn(process.execPath, [CLI, '--threads', '1', ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    let killed = false;
    p.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = killAfterMs === null ? null : setTimeout(() => {
      killed = p.exitCode === null;
      p.kill('SIGKILL');
    }, killAfterMs);
    p.on('close', (code) => {
      if (timer) clearTimeout(timer);
      res({ killed, code, stderr });
    });
  });
}

export interface TrialResult { kills: number; resumes: number; checkpointsChecked: number; identical: boolean }

/** One trial: kill at random moments (up to `maxKills`), resume until done, compare with the reference. */
export async function killResumeTrial(s: FaultSetup, rnd: () => number, maxKills = 2): Promise<TrialResult> {
  const runDir = join(s.dir, `trial-${Math.floor(rnd() * 1e9)}`);
  let kills = 0;
  let resumes = 0;
  let checked = 0;
  for (let attempt = 0; attempt < 20 && !existsSync(join(runDir, 'result.json')); attempt++) {
    const resume = listCheckpoints(runDir).length > 0;
    if (!resume) rmSync(runDir, { recursive: true, force: true });
    else resumes++;
    // start-up (node, LibTorch, data) takes about a third of the reference: kill anywhere in the rest, mostly mid-training
    const killAt = kills < maxKills ? s.referenceMs * (0.3 + 0.75 * rnd()) : null;
    const r = await run(['train', '--config', s.cfg, ...(resume ? ['--resume', runDir] : ['--run-dir', runDir])], killAt);
    if (r.killed) kills++;
    else if (r.code !== 0) throw new Error(`training failed (exit ${r.code}): ${r.stderr.trim().split('\n').pop()}`);
    checked += checkCheckpoints(runDir);
  }
  if (!existsSync(join(runDir, 'result.json'))) throw new Error(`${runDir}: did not finish after 20 attempts`);
  const final = readFileSync(join(listCheckpoints(runDir).pop()!, 'model.safetensors'));
  return { kills, resumes, checkpointsChecked: checked, identical: final.equals(s.reference) };
}

/** The project's seeded generator (the data loader's), for kill moments that repeat with a seed. */
export { mulberry32 as prng } from '../src/data/image.js';
