// AdamW (LibTorch's torch::optim::AdamW) and clip_grad_norm_ against torch.optim.AdamW on a fixed trajectory with
// two parameter groups, a learning-rate change and clipping; state export/import for checkpoints.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { AdamW, F, clipGradNorm, loadSafetensors, tensor, tidy, randn } from '../src/index.js';
import { FIXTURES, assertClose } from './helpers.js';

const fx = loadSafetensors(join(FIXTURES, 'parity.safetensors')).tensors;
const TOL = { atol: 1e-6, rtol: 1e-5 };

function run(steps: number, opt: AdamW, W: import('../src/index.js').Tensor, b: import('../src/index.js').Tensor, from = 0): number[] {
  const norms: number[] = [];
  for (let s = from; s < steps; s++) {
    tidy(() => {
      opt.zeroGrad();
      F.mseLoss(F.linear(fx.get('optim.x')!, W, b), fx.get('optim.y')!).backward();
      norms.push(clipGradNorm([W, b], 0.5));
      opt.step();
      if (s === 2) opt.setLr(0, 5e-3);
    });
  }
  return norms;
}

test('AdamW + clipGradNorm follow torch.optim.AdamW step by step', () => {
  const W = fx.get('optim.W0')!.clone().requiresGrad_(true);
  const b = fx.get('optim.b0')!.clone().requiresGrad_(true);
  const opt = new AdamW([{ params: [W], weightDecay: 0.01, lr: 1e-2 }, { params: [b], weightDecay: 0, lr: 5e-2 }], { betas: [0.9, 0.98], eps: 1e-6 });
  const norms: number[] = [];
  for (let s = 0; s < 6; s++) {
    norms.push(...run(s + 1, opt, W, b, s));
    assertClose(W, fx.get(`optim.W${s + 1}`)!, TOL, `W after step ${s + 1}`);
    assertClose(b, fx.get(`optim.b${s + 1}`)!, TOL, `b after step ${s + 1}`);
  }
  const ref = fx.get('optim.norms')!.toNumbers();
  assert.equal(norms.length, 6, 'one norm per step');
  norms.forEach((n, i) => assert.ok(Math.abs(n - ref[i]!) < 1e-5, `norm ${i}: ${n} vs ${ref[i]}`));
  const st = opt.getState(0, 0)!;
  assert.equal(st.step, 6);
  assertClose(st.expAvg, fx.get('optim.exp_avg_W')!, TOL, 'exp_avg');
  assertClose(st.expAvgSq, fx.get('optim.exp_avg_sq_W')!, { atol: 1e-8, rtol: 1e-5 }, 'exp_avg_sq');
  opt.dispose();
  assert.throws(() => opt.step(), /AdamW was disposed/);
});

test('AdamW state round-trips: resuming from saved state continues the same trajectory', () => {
  const mk = () => [fx.get('optim.W0')!.clone().requiresGrad_(true), fx.get('optim.b0')!.clone().requiresGrad_(true)] as const;
  const groups = (W: any, b: any) => [{ params: [W], weightDecay: 0.01, lr: 1e-2 }, { params: [b], weightDecay: 0, lr: 5e-2 }];
  const [W1, b1] = mk();
  const a = new AdamW(groups(W1, b1), { betas: [0.9, 0.98], eps: 1e-6 });
  run(3, a, W1, b1);
  // save after 3 steps, restore into a fresh optimizer over copies of the parameters
  const [W2, b2] = [W1.detach().clone().requiresGrad_(true), b1.detach().clone().requiresGrad_(true)];
  const c = new AdamW(groups(W2, b2), { betas: [0.9, 0.98], eps: 1e-6 });
  c.setLr(0, 5e-3);
  for (const [g, i] of [[0, 0], [1, 0]] as const) c.setState(g, i, a.getState(g, i)!);
  run(6, a, W1, b1, 3);
  run(6, c, W2, b2, 3);
  assert.deepEqual(W2.toNumbers(), W1.toNumbers());
  assert.deepEqual(b2.toNumbers(), b1.toNumbers());
  assertClose(W2, fx.get('optim.W6')!, TOL, 'resumed W');
});

test('validation: groups, betas, shared parameters; clipping reports non-finite norms', () => {
  const p = randn([2]).requiresGrad_(true);
  assert.throws(() => new AdamW([]), /Expected a non-empty array of Tensors or parameter groups for params/);
  assert.throws(() => new AdamW([p], { betas: [0.9, 1.5] }), /Expected a number between 0 and 0.999999999 for groups\[0\]\.betas\[1\] but received number 1.5/);
  assert.throws(() => new AdamW([{ params: [p] }, { params: [p] }]), /a parameter appears in more than one group \(group "group1"\)/);
  tidy(() => {
    p.mul(tensor([Infinity, 1])).sum().backward();
    assert.equal(clipGradNorm([p], 1), Infinity);
  });
});
