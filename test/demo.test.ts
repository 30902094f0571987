// The demo trains end to end: loss falls and held-out accuracy is far above chance; the CLI runs it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { runDemo } from '../src/cli/demo.js';
import { memory } from '../src/index.js';
import { ROOT } from './helpers.js';

test('demo training converges on the synthetic matching task', () => {
  const before = memory().liveTensors;
  const r = runDemo({ steps: 400, seed: 1 });
  const first = r.losses.slice(0, 20).reduce((a, b) => a + b, 0) / 20;
  const last = r.losses.slice(-20).reduce((a, b) => a + b, 0) / 20;
  assert.ok(first > 0.65 && last < 0.1, `loss ${first} -> ${last}`);
  assert.ok(r.accuracy > 0.95, `held-out accuracy ${r.accuracy}`);
  assert.equal(memory().liveTensors, before);
});

test('mmtrain demo and info run from the command line; bad flags are clear errors', () => {
  const cli = join(ROOT, 'dist', 'src', 'cli', 'main.js');
  const out = execFileSync(process.execPath, [cli, 'demo', '--steps', '60'], { encoding: 'utf8' });
  assert.match(out, /held-out accuracy: \d+\.\d% on 1024 pairs/);
  assert.match(execFileSync(process.execPath, [cli, 'info'], { encoding: 'utf8' }), /"libtorch": "\d+\.\d+/);
  assert.throws(() => execFileSync(process.execPath, [cli, 'demo', '--steps', 'ten'], { encoding: 'utf8', stdio: 'pipe' }),
    (e: { stderr: string; status: number }) => e.status !== 0 && /--steps must be a positive integer \(received "ten"\)/.test(e.stderr));
});
