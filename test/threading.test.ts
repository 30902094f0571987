// OpenMP thread waiting chosen from the run's precision before LibTorch loads; a user's setting always wins.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { trainPrecision, tuneThreadWaiting } from '../src/cli/threading.js';

test('the precision of a train command line: --set wins over the config, a resumed run reads its config.json', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mmtrain-threads-'));
  writeFileSync(join(dir, 'bf16.yaml'), 'data: { train: x.jsonl }\ntrain: { precision: bf16 }\n');
  writeFileSync(join(dir, 'plain.yaml'), 'data: { train: x.jsonl }\n');
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ train: { precision: 'bf16' } }));
  assert.equal(trainPrecision(['train', '--config', join(dir, 'bf16.yaml')]), 'bf16');
  assert.equal(trainPrecision(['train', '--config', join(dir, 'plain.yaml')]), 'fp32');
  assert.equal(trainPrecision(['--threads', '2', 'train', '--config', join(dir, 'plain.yaml'), '--set', 'train.precision=bf16']), 'bf16');
  assert.equal(trainPrecision(['train', '--config', join(dir, 'missing.yaml'), '--resume', dir]), 'bf16');
  assert.equal(trainPrecision(['demo']), null);
  assert.equal(trainPrecision(['train', '--config', join(dir, 'nope.yaml')]), null);
});

test('bf16 runs get a bounded OpenMP spin; fp32 runs and user settings are left alone', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mmtrain-threads-'));
  writeFileSync(join(dir, 'bf16.yaml'), 'data: { train: x.jsonl }\ntrain: { precision: bf16 }\n');
  const bf = ['train', '--config', join(dir, 'bf16.yaml')];
  const env1: NodeJS.ProcessEnv = {};
  tuneThreadWaiting(bf, env1);
  assert.equal(env1.GOMP_SPINCOUNT, '10000');
  const env2: NodeJS.ProcessEnv = {};
  tuneThreadWaiting(['train', '--config', join(dir, 'bf16.yaml'), '--set', 'train.precision=fp32'], env2);
  assert.equal(env2.GOMP_SPINCOUNT, undefined);
  const env4: NodeJS.ProcessEnv = {};
  tuneThreadWaiting(['demo', '--precision', 'bf16'], env4);
  assert.equal(env4.GOMP_SPINCOUNT, '10000');
  const env5: NodeJS.ProcessEnv = {};
  tuneThreadWaiting(['demo', '--precision', 'fp32'], env5);
  assert.equal(env5.GOMP_SPINCOUNT, undefined);
  const env3: NodeJS.ProcessEnv = { OMP_WAIT_POLICY: 'PASSIVE' };
  tuneThreadWaiting(bf, env3);
  assert.equal(env3.GOMP_SPINCOUNT, undefined);
});
