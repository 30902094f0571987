// Data-parallel training on c10d Gloo over loopback: the environment contract, batch sharding, two processes
// against one with the same global batch (losses and weights within 1e-5 after 20 steps), resume of a
// distributed run, a killed rank stopping the other with a clear error within the timeout, and the launcher.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DataLoader, buildInfo, buildReport, cat, generateSynthetic, loadSafetensors, readManifest, TextTokenizer, bundledTokenizer, imageConfig, tidy } from '../src/index.js';
import { distEnvFromProcess, distributedAvailable, firstSlurmHost } from '../src/train/distributed.js';
import { freePort } from '../src/cli/launch.js';
import { ROOT, tinyModel } from './helpers.js';

const CLI = join(ROOT, 'dist', 'src', 'cli', 'main.js');
// CI installs libgloo-dev and sets CI=1: there a build without Gloo fails these tests instead of skipping them
const skip = distributedAvailable() || process.env.CI ? false : 'this build has no c10d Gloo (apt-get install libgloo-dev, then npm run build:native)';

test('the environment: torchrun variables, Slurm variables, single process, errors', () => {
  assert.equal(distEnvFromProcess({}), null);
  assert.equal(distEnvFromProcess({ WORLD_SIZE: '1', RANK: '0' }), null);
  assert.deepEqual(distEnvFromProcess({ RANK: '3', WORLD_SIZE: '4', LOCAL_RANK: '1', LOCAL_WORLD_SIZE: '2', MASTER_ADDR: 'n0', MASTER_PORT: '1234' }),
    { rank: 3, worldSize: 4, localRank: 1, localWorldSize: 2, masterAddr: 'n0', masterPort: 1234 });
  assert.deepEqual(distEnvFromProcess({ SLURM_PROCID: '5', SLURM_NTASKS: '8', SLURM_LOCALID: '1', SLURM_NTASKS_PER_NODE: '4(x2)', SLURM_JOB_NODELIST: 'gpu[07-08]' }),
    { rank: 5, worldSize: 8, localRank: 1, localWorldSize: 4, masterAddr: 'gpu07', masterPort: 29500 });
  assert.equal(firstSlurmHost('a,b'), 'a');
  assert.equal(firstSlurmHost('node[3,5-6]'), 'node3');
  assert.throws(() => distEnvFromProcess({ WORLD_SIZE: '2' }), /WORLD_SIZE is set but RANK is not/);
  assert.throws(() => distEnvFromProcess({ WORLD_SIZE: '2', RANK: '2' }), /RANK 2 is not below WORLD_SIZE 2/);
  assert.throws(() => distEnvFromProcess({ WORLD_SIZE: 'two', RANK: '0' }), /WORLD_SIZE: expected a non-negative integer, received "two"/);
});

test('sharding: each global batch is split into contiguous slices that cover it exactly once', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'mmtrain-shard-'));
  await generateSynthetic({ out: dir, n: 30, seed: 1, imageSize: 16 });
  const samples = readManifest(join(dir, 'train.jsonl')).samples;
  const tok = TextTokenizer.fromFile(bundledTokenizer());
  const img = imageConfig({ size: 16, resize: 'exact' });
  const single = new DataLoader(samples, tok, img, { batchSize: 7, seed: 3 });
  const shards = [0, 1, 2].map((rank) => new DataLoader(samples, tok, img, { batchSize: 7, seed: 3, shard: { rank, worldSize: 3 } }));
  const plan = single.plan(1);
  assert.deepEqual(plan.map((b) => b.length), [7, 7, 7, 3], '24 training samples in batches of 7');
  for (const batch of plan) {
    const parts = shards.map((s) => s.localSlice(batch));
    assert.deepEqual(parts.flat(), batch);
    const sizes = parts.map((p) => p.length);
    assert.ok(Math.max(...sizes) - Math.min(...sizes) <= 1);
  }
  // a rank with nothing in a small batch still yields it (empty), so every rank takes part in every step
  const tiny = new DataLoader(samples.slice(0, 2), tok, img, { batchSize: 2, shuffle: false, shard: { rank: 0, worldSize: 3 } });
  const got: number[] = [];
  for await (const b of tiny.epoch(0)) tidy(() => got.push(b.indices.length));
  assert.deepEqual(got, [0]);
});

async function setup(): Promise<{ dir: string; cfg: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'mmtrain-ddp-'));
  await generateSynthetic({ out: join(dir, 'data'), n: 120, seed: 8, imageSize: 16 });
  const cfg = join(dir, 'cfg.yaml');
  writeFileSync(cfg, [
    'seed: 4',
    `model: ${JSON.stringify(tinyModel({ dropout: false }))}`,
    'data: { train: data/train.jsonl, val: data/val.jsonl }',
    'train: { epochs: 100, maxSteps: 20, batchSize: 9, lr: 1.0e-3, schedule: { type: constant, warmupSteps: 0 } }',
    'eval: { every: 10 }',
    'checkpoint: { every: 10, keepLast: 3 }',
    'diagnostics: { every: 5 }',
    'log: { every: 1, progress: none, report: false, tensorboard: false }',
  ].join('\n'));
  return { dir, cfg };
}

const records = (runDir: string) => readFileSync(join(runDir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
const losses = (runDir: string) => new Map(records(runDir).filter((r) => r.event === 'train').map((r) => [r.step as number, r.loss as number]));

function compareWeights(a: string, b: string, tol: number): number {
  const wa = loadSafetensors(join(a, 'model.safetensors')).tensors;
  const wb = loadSafetensors(join(b, 'model.safetensors')).tensors;
  assert.deepEqual([...wa.keys()].sort(), [...wb.keys()].sort());
  assert.ok(wa.size > 0, `${a}: no weights to compare`);
  let worst = 0;
  tidy(() => {
    for (const [k, t0] of wa) {
      let t = t0;
      let u = wb.get(k)!;
      if (k.endsWith('in_proj_bias')) {
        // The key third of an attention's input bias gets a gradient that is zero in exact arithmetic (softmax is
        // invariant to adding q.b_k to every score of a query), so its gradient is pure round-off, which Adam
        // normalises into lr-sized steps: it follows summation order, in PyTorch's DDP as here. Compared: q and v.
        const C = t.size(0) / 3;
        t = cat([t.narrow(0, 0, C), t.narrow(0, 2 * C, C)]);
        u = cat([u.narrow(0, 0, C), u.narrow(0, 2 * C, C)]);
      }
      const d = t.sub(u).abs().max().item();
      assert.ok(d <= tol, `${k}: differs by ${d}`);
      worst = Math.max(worst, d);
    }
  });
  return worst;
}

const lastCheckpoint = (runDir: string) => join(runDir, 'checkpoints', 'step-00000020');

test('two processes with the same global batch as one: losses and weights within 1e-5 after 20 steps; resume of a distributed run', { skip }, async () => {
  const { dir, cfg } = await setup();
  const one = join(dir, 'one');
  const two = join(dir, 'two');
  const resumed = join(dir, 'resumed');
  execFileSync(process.execPath, [CLI, '--threads', '1', 'train', '--config', cfg, '--run-dir', one], { stdio: 'pipe' });
  execFileSync(process.execPath, [CLI, 'launch', '--nproc', '2', '--', 'train', '--config', cfg, '--run-dir', two], { stdio: 'pipe' });
  const l1 = losses(one);
  const l2 = losses(two);
  assert.equal(l1.size, 20);
  for (const [step, loss] of l1) assert.ok(Math.abs(loss - l2.get(step)!) <= 1e-5, `step ${step}: ${loss} vs ${l2.get(step)}`);
  compareWeights(lastCheckpoint(one), lastCheckpoint(two), 1e-5);
  // evaluation gathers every rank's shard: the same validation numbers
  const v1 = records(one).filter((r) => r.event === 'eval');
  const v2 = records(two).filter((r) => r.event === 'eval');
  assert.equal(v1.length, v2.length);
  assert.equal(v1.length, 2, 'eval every 10 of 20 steps');
  v1.forEach((r, i) => {
    assert.equal(r.n, v2[i].n);
    assert.equal(r.accuracy, v2[i].accuracy);
    assert.ok(Math.abs(r.loss - v2[i].loss) <= 1e-5);
  });
  // only rank 0 writes: one metrics file, checkpoints once
  assert.ok(existsSync(join(two, 'result.json')));
  // resume: 10 steps, then 10 more from the step-10 checkpoint, as two processes each time
  execFileSync(process.execPath, [CLI, 'launch', '--nproc', '2', '--', 'train', '--config', cfg, '--run-dir', resumed, '--set', 'train.maxSteps=10'], { stdio: 'pipe' });
  execFileSync(process.execPath, [CLI, 'launch', '--nproc', '2', '--', 'train', '--config', cfg, '--resume', resumed], { stdio: 'pipe' });
  const l3 = losses(resumed);
  for (let s = 11; s <= 20; s++) assert.ok(Math.abs(l3.get(s)! - l2.get(s)!) <= 1e-5, `resumed step ${s}: ${l3.get(s)} vs ${l2.get(s)}`);
  compareWeights(lastCheckpoint(two), lastCheckpoint(resumed), 1e-5);
});

test('gradients averaged while backward runs (c10d\'s Reducer) equal those averaged after it: gradient accumulation, and a rank with an empty micro-batch', { skip }, async () => {
  // the Reducer is in every build whose LibTorch headers carry what it includes (2.x; Debian 12's 1.13 does not,
  // and there both runs average after backward)
  if (Number(buildInfo().libtorch.split('.')[0]) >= 2) assert.equal(buildReport().distributed.overlap, true);
  const { dir } = await setup();
  // 37 samples in batches of 9: the epoch's last batch has 1 sample, so rank 1 has none and its step is a
  // backward that adds nothing; 2 micro-batches a step, so the epoch's third step is that batch alone
  const lines = readFileSync(join(dir, 'data', 'train.jsonl'), 'utf8').trim().split('\n');
  assert.ok(lines.length >= 37);
  writeFileSync(join(dir, 'data', 'small.jsonl'), `${lines.slice(0, 37).join('\n')}\n`);
  const cfg = join(dir, 'accum.yaml');
  writeFileSync(cfg, [
    'seed: 4',
    `model: ${JSON.stringify(tinyModel({ dropout: false }))}`,
    'data: { train: data/small.jsonl }',
    'train: { epochs: 100, maxSteps: 7, batchSize: 9, gradAccumulation: 2, lr: 1.0e-3, schedule: { type: constant, warmupSteps: 0 } }',
    'checkpoint: { every: 7, keepLast: 1 }',
    'log: { every: 1, progress: none, report: false, tensorboard: false }',
  ].join('\n'));
  const run = (name: string, args: string[], extra: string[] = []) => {
    const runDir = join(dir, name);
    execFileSync(process.execPath, [CLI, ...args, 'train', '--config', cfg, '--run-dir', runDir, ...extra], { stdio: 'pipe' });
    return join(runDir, 'checkpoints', 'step-00000007');
  };
  // (two processes against one with the same global batch: the test above)
  const during = run('during', ['launch', '--nproc', '2', '--']);
  const after = run('after', ['launch', '--nproc', '2', '--'], ['--set', 'distributed.overlap=false']);
  compareWeights(during, after, 1e-5);
});

function waitFor(cond: () => boolean, timeoutMs: number): Promise<void> {
  const t0 = Date.now();
  return new Promise((res, rej) => {
    const tick = () => (cond() ? res() : Date.now() - t0 > timeoutMs ? rej(new Error('timed out waiting')) : setTimeout(tick, 100));
    tick();
  });
}

/**
 * Two ranks started directly with the torchrun variables (TCP store), a long run; once rank 0 has logged a few
 * steps, `fault` is sent to rank 1. Resolves with rank 0's exit code, stderr and the seconds it took to stop.
 */
async function faultRank1(fault: NodeJS.Signals, timeoutS: number): Promise<{ code: number; stderr: string; elapsed: number }> {
  const { dir, cfg } = await setup();
  const port = await freePort();
  const runDir = join(dir, `fault-${fault}`);
  const procs: ChildProcess[] = [];
  let stderr = '';
  for (const rank of [0, 1]) {
    const env = { ...process.env, RANK: String(rank), WORLD_SIZE: '2', MASTER_ADDR: '127.0.0.1', MASTER_PORT: String(port) };
    const p = spawn(process.execPath, [CLI, '--threads', '1', 'train', '--config', cfg, '--run-dir', runDir, '--set', 'train.maxSteps=100000', '--set', `distributed.timeoutS=${timeoutS}`], { env, stdio: ['ignore', 'ignore', 'pipe'] });
    if (rank === 0) p.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    procs.push(p);
  }
  const exit0 = new Promise<number>((res) => procs[0]!.on('close', (code) => res(code ?? -1)));
  try {
    await waitFor(() => existsSync(join(runDir, 'metrics.jsonl')) && readFileSync(join(runDir, 'metrics.jsonl'), 'utf8').split('\n').length > 5, 60000);
    const t0 = Date.now();
    procs[1]!.kill(fault);
    const code = await exit0;
    return { code, stderr, elapsed: (Date.now() - t0) / 1000 };
  } finally {
    procs[1]!.kill('SIGKILL');
  }
}

test('a killed rank makes the other exit non-zero with a clear message within the timeout', { skip }, async () => {
  const r = await faultRank1('SIGKILL', 20);
  assert.notEqual(r.code, 0);
  assert.ok(r.elapsed < 25, `rank 0 stopped after ${r.elapsed} s`);
  assert.match(r.stderr, /distributed: rank 0 lost the other ranks during/);
  assert.doesNotMatch(r.stderr, /\n\s+at /, 'one clear line, no stack trace');
});

test('a hung rank (stopped) makes the other exit non-zero after distributed.timeoutS', { skip }, async () => {
  const r = await faultRank1('SIGSTOP', 4);
  assert.notEqual(r.code, 0);
  assert.ok(r.elapsed >= 3 && r.elapsed < 18, `rank 0 gave up after ${r.elapsed} s (timeout 4 s)`);
  assert.match(r.stderr, /distributed: rank 0 lost the other ranks during .*hung for over 4 s/);
});

test('the launcher reports a failing rank and exits non-zero', { skip }, () => {
  assert.throws(
    () => execFileSync(process.execPath, [CLI, 'launch', '--nproc', '2', '--grace', '5', '--', 'train', '--config', '/nonexistent.yaml'], { stdio: 'pipe', encoding: 'utf8' }),
    (e: { status: number; stderr: string }) => e.status !== 0 && /\[rank [01]\] mmtrain: \/nonexistent\.yaml: cannot read the config/.test(e.stderr) && /rank \d exited with code 1/.test(e.stderr),
  );
});

/** TCP sockets listening on every interface (0.0.0.0 or ::), from /proc/net/tcp{,6}: "addr:port" strings. */
function wildcardListeners(): Set<string> {
  const out = new Set<string>();
  for (const f of ['/proc/net/tcp', '/proc/net/tcp6']) {
    if (!existsSync(f)) continue;
    for (const line of readFileSync(f, 'utf8').split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/);
      if (cols.length < 4 || cols[3] !== '0A') continue; // 0A = LISTEN
      const [addr, port] = cols[1]!.split(':');
      if (/^0+$/.test(addr!)) out.add(`${addr}:${parseInt(port!, 16)}`);
    }
  }
  return out;
}

test('Ctrl-C to the launcher: every rank stops after its step, rank 0 checkpoints, and the run resumes; nothing listens beyond loopback', { skip }, async () => {
  const { dir, cfg } = await setup();
  const before = wildcardListeners();
  const runDir = join(dir, 'interrupted');
  const p = spawn(process.execPath, [CLI, 'launch', '--nproc', '2', '--', 'train', '--config', cfg, '--run-dir', runDir, '--set', 'train.maxSteps=100000'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  p.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const exit = new Promise<number>((res) => p.on('close', (code) => res(code ?? -1)));
  await waitFor(() => existsSync(join(runDir, 'metrics.jsonl')) && records(runDir).filter((r) => r.event === 'train').length >= 3, 60000);
  // one machine: the ranks meet in a file store and Gloo binds to 127.0.0.1, so no new wildcard listener exists
  const during = [...wildcardListeners()].filter((l) => !before.has(l));
  assert.deepEqual(during, [], 'no socket listening on all interfaces');
  p.kill('SIGINT');
  assert.equal(await exit, 0, stderr);
  const ckpt = records(runDir).find((r) => r.event === 'checkpoint' && r.reason === 'interrupt');
  assert.ok(ckpt, 'an interrupt checkpoint');
  const target = ckpt.step + 3;
  execFileSync(process.execPath, [CLI, 'launch', '--nproc', '2', '--', 'train', '--config', cfg, '--resume', runDir, '--set', `train.maxSteps=${target}`], { stdio: 'pipe' });
  assert.equal(JSON.parse(readFileSync(join(runDir, 'result.json'), 'utf8')).steps, target);
});
