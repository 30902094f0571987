// Fault tests: training killed with SIGKILL at random moments resumes to the same weights as an uninterrupted run,
// with every checkpoint on disk loadable at every kill (3 trials here; scripts/soak-kill.ts runs 20 or more); and a
// disk that fills up mid-run stops training with a clear error, leaving the last good checkpoint intact.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { listCheckpoints } from '../src/index.js';
import { checkCheckpoints, faultSetup, killResumeTrial, prng } from './fault-harness.js';
import { ROOT } from './helpers.js';

test('SIGKILL at random moments: every trial resumes to bit-identical weights; no checkpoint is ever unloadable', async () => {
  const s = await faultSetup();
  const rnd = prng(Number(process.env.MMTRAIN_FAULT_SEED ?? 7));
  let killed = 0;
  for (let i = 0; killed < 3 && i < 10; i++) {
    const r = await killResumeTrial(s, rnd);
    assert.ok(r.identical, `trial ${i}: final weights differ from the uninterrupted run`);
    assert.ok(r.checkpointsChecked > 0, `trial ${i}: no checkpoint was checked`);
    if (r.kills > 0) killed++;
  }
  assert.equal(killed, 3, 'three trials with at least one kill');
});

test('SIGKILL while training from WebDataset shards: the resumed run replays the stream to bit-identical weights', async () => {
  const s = await faultSetup(30, 'webdataset');
  const rnd = prng(Number(process.env.MMTRAIN_FAULT_SEED ?? 11));
  let killed = 0;
  for (let i = 0; killed < 1 && i < 6; i++) {
    const r = await killResumeTrial(s, rnd, 1);
    assert.ok(r.identical, `trial ${i}: final weights differ from the uninterrupted run`);
    if (r.kills > 0) killed++;
  }
  assert.equal(killed, 1, 'a trial with a kill');
});

test('a full disk mid-run: a clear error naming the checkpoint, the last good checkpoint intact, nothing half-written', async () => {
  const s = await faultSetup(10);
  const cli = join(ROOT, 'dist', 'src', 'cli', 'main.js');
  const runDir = join(s.dir, 'full');
  execFileSync(process.execPath, [cli, '--threads', '1', 'train', '--config', s.cfg, '--run-dir', runDir], { stdio: 'pipe' });
  const before = listCheckpoints(runDir);
  assert.equal(before.length, 2, 'checkpoints at steps 5 and 10 (keepLast 2)');
  // a file-size limit of 1 MiB makes the next model.safetensors (about 2 MiB) fail with EFBIG, as a full disk would
  const resume = `ulimit -f 1024; exec "${process.execPath}" "${cli}" --threads 1 train --config "${s.cfg}" --resume "${runDir}" --set train.maxSteps=20`;
  assert.throws(() => execFileSync('bash', ['-c', resume], { stdio: 'pipe', encoding: 'utf8' }), (e: { status: number; stderr: string }) => {
    assert.equal(e.status, 1);
    assert.match(e.stderr, /checkpoints\/step-00000015: cannot write the checkpoint \(.*(EFBIG|file too large).*\); the previous checkpoint is intact/);
    assert.doesNotMatch(e.stderr, /\n\s+at /);
    return true;
  });
  assert.deepEqual(listCheckpoints(runDir), before);
  assert.equal(checkCheckpoints(runDir), before.length);
  assert.deepEqual(readdirSync(join(runDir, 'checkpoints')).filter((d) => d.startsWith('.')), [], 'no temporary folder left');
});
