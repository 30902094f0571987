// OpenMP thread waiting chosen from the run's precision before LibTorch loads; a user's setting always wins.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { tuneThreadWaiting } from '../src/cli/threading.js';
import { ROOT } from './helpers.js';

test('bf16 runs get a bounded OpenMP spin; fp32 runs and user settings are left alone', () => {
  const env1: NodeJS.ProcessEnv = {};
  tuneThreadWaiting('bf16', env1);
  assert.equal(env1.GOMP_SPINCOUNT, '10000');
  const env2: NodeJS.ProcessEnv = {};
  tuneThreadWaiting('fp32', env2);
  assert.equal(env2.GOMP_SPINCOUNT, undefined);
  const env3: NodeJS.ProcessEnv = { OMP_WAIT_POLICY: 'PASSIVE' };
  tuneThreadWaiting('bf16', env3);
  assert.equal(env3.GOMP_SPINCOUNT, undefined);
});

test('the CLI sets the waiting of the run it starts before LibTorch loads: train from its config (--set, --resume), demo from --precision', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mmtrain-threads-'));
  // stands in for the addon: reports the environment at the moment LibTorch would load, and ends the process there
  const probe = join(dir, 'probe.mjs');
  writeFileSync(probe, `import { writeSync } from 'node:fs';
const dlopen = process.dlopen;
process.dlopen = (m, f, ...rest) => {
  if (String(f).includes('mmtrain_native')) {
    writeSync(1, JSON.stringify({ GOMP_SPINCOUNT: process.env.GOMP_SPINCOUNT ?? null }) + '\\n');
    process.exit(0);
  }
  return dlopen.call(process, m, f, ...rest);
};
`);
  writeFileSync(join(dir, 'bf16.yaml'), 'data: { train: x.jsonl }\ntrain: { precision: bf16 }\n');
  writeFileSync(join(dir, 'plain.yaml'), 'data: { train: x.jsonl }\n');
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ data: { train: 'x.jsonl' }, train: { precision: 'bf16' } })); // a run directory's
  const spin = (args: string[], env: NodeJS.ProcessEnv = {}) => {
    const clean = { ...process.env, ...env };
    if (!('GOMP_SPINCOUNT' in env)) delete clean.GOMP_SPINCOUNT;
    if (!('OMP_WAIT_POLICY' in env)) delete clean.OMP_WAIT_POLICY;
    const out = execFileSync(process.execPath, ['--import', probe, join(ROOT, 'dist', 'src', 'cli', 'main.js'), ...args], { encoding: 'utf8', env: clean });
    return (JSON.parse(out.trim().split('\n').pop()!) as { GOMP_SPINCOUNT: string | null }).GOMP_SPINCOUNT;
  };
  assert.equal(spin(['train', '--config', join(dir, 'bf16.yaml')]), '10000');
  assert.equal(spin(['train', '--config', join(dir, 'plain.yaml')]), null);
  assert.equal(spin(['--threads', '2', 'train', '--config', join(dir, 'plain.yaml'), '--set', 'train.precision=bf16']), '10000');
  assert.equal(spin(['train', '--config', join(dir, 'bf16.yaml'), '--set', 'train.precision=fp32']), null);
  assert.equal(spin(['train', '--config', join(dir, 'missing.yaml'), '--resume', dir]), '10000');
  assert.equal(spin(['train', '--config', join(dir, 'bf16.yaml')], { OMP_WAIT_POLICY: 'ACTIVE' }), null);
  assert.equal(spin(['demo', '--precision', 'bf16', '--out', dir]), '10000');
  assert.equal(spin(['demo', '--precision', 'fp32', '--out', dir]), null);
  rmSync(dir, { recursive: true });
});
