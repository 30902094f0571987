// nn modules: names that match checkpoint keys, state dicts with missing/unexpected/mismatched reports,
// train/eval, freezing and PyTorch default initialisation.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { F, manualSeed, nn, noGrad, ones, randn, tensor, tidy, zeros, memory } from '../src/index.js';

class Block extends nn.Module {
  readonly attention: nn.MultiheadAttention;
  readonly norm: nn.LayerNorm;
  readonly mlp: nn.Sequential;
  constructor(C: number) {
    super();
    this.attention = this.registerModule('attention', new nn.MultiheadAttention(C, 2, { batchFirst: true }));
    this.norm = this.registerModule('norm', new nn.LayerNorm(C, 1e-12));
    this.mlp = this.registerModule('mlp', new nn.Sequential(new nn.Linear(C, 2 * C), new nn.GELU(), new nn.Dropout(0.1), new nn.Linear(2 * C, C)));
  }
  forward(x: import('../src/index.js').Tensor) {
    const a = this.attention.forward(x, x, x, { needWeights: false }).output;
    return this.mlp.forward(this.norm.forward(x.add(a)));
  }
}

test('parameter names follow the module tree with dotted paths', () => {
  const b = new Block(8);
  assert.deepEqual([...b.stateDict().keys()], [
    'attention.in_proj_weight', 'attention.in_proj_bias', 'attention.out_proj.weight', 'attention.out_proj.bias',
    'norm.weight', 'norm.bias', 'mlp.0.weight', 'mlp.0.bias', 'mlp.3.weight', 'mlp.3.bias',
  ]);
  assert.equal(b.numParameters(), 3 * 64 + 24 + 64 + 8 + 16 + 128 + 16 + 128 + 8);
  b.dispose();
});

test('loadStateDict copies values and reports missing, unexpected and mismatched keys', () => {
  const a = new Block(8);
  const b = new Block(8);
  const report = b.loadStateDict(a.stateDict());
  assert.deepEqual(report, { missing: [], unexpected: [], mismatched: [] });
  tidy(() => {
    const x = randn([2, 3, 8]);
    a.eval();
    b.eval();
    assert.deepEqual(a.forward(x).toNumbers(), b.forward(x).toNumbers());
  });
  const partial = new Map(a.stateDict());
  partial.delete('norm.bias');
  const extra = zeros([3]);
  partial.set('head.weight', extra);
  assert.throws(() => b.loadStateDict(partial), /Block\.loadStateDict: missing keys \(1\): norm\.bias; unexpected keys \(1\): head\.weight/);
  const loose = b.loadStateDict(partial, { strict: false });
  assert.deepEqual(loose.missing, ['norm.bias']);
  assert.deepEqual(loose.unexpected, ['head.weight']);
  const wrong = new Map(a.stateDict());
  const bad = zeros([9]);
  wrong.set('norm.weight', bad);
  assert.throws(() => b.loadStateDict(wrong, { strict: false }), /shape mismatches \(1\): norm\.weight expected \[8\] but received \[9\]/);
  extra.dispose();
  bad.dispose();
  a.dispose();
  b.dispose();
});

test('train/eval switch dropout; freezing turns off gradients', () => {
  manualSeed(3);
  const b = new Block(8);
  tidy(() => {
    const x = randn([2, 3, 8]);
    b.train();
    const t1 = b.forward(x).toNumbers();
    const t2 = b.forward(x).toNumbers();
    assert.notDeepEqual(t1, t2);
    b.eval();
    assert.deepEqual(b.forward(x).toNumbers(), b.forward(x).toNumbers());
    b.attention.requiresGrad_(false);
    b.forward(x).sum().backward();
    assert.equal(b.attention.inProjWeight.grad, null);
    assert.ok(b.norm.weight!.grad);
    assert.equal(b.numParameters(true), b.numParameters() - b.attention.numParameters());
    b.zeroGrad();
    assert.equal(b.norm.weight!.grad, null);
  });
  b.dispose();
});

test('default initialisation follows PyTorch bounds', () => {
  manualSeed(0);
  const lin = new nn.Linear(64, 32);
  const bound = 1 / Math.sqrt(64);
  assert.ok(lin.weight.abs().max().item() <= bound + 1e-7);
  assert.ok(lin.weight.abs().max().item() > bound * 0.9);
  const ln = new nn.LayerNorm(16);
  assert.deepEqual(ln.weight!.toNumbers(), new Array(16).fill(1));
  const mha = new nn.MultiheadAttention(16, 4);
  assert.ok(mha.inProjWeight.abs().max().item() <= Math.sqrt(6 / (16 + 48)) + 1e-7);
  assert.deepEqual(mha.outProj.bias!.toNumbers(), new Array(16).fill(0));
  const emb = new nn.Embedding(100, 8, 0);
  assert.ok(Math.abs(emb.weight.std().item() - 1) < 0.15);
  for (const m of [lin, ln, mha, emb]) m.dispose();
});

test('Embedding padding row gets no gradient; Conv2d patch embedding shapes', () => {
  const emb = new nn.Embedding(5, 3, 0);
  const conv = new nn.Conv2d(3, 8, 4, { stride: 4 });
  tidy(() => {
    emb.forward(tensor([[0, 1, 0, 2]], { dtype: 'int64' })).sum().backward();
    assert.deepEqual(emb.weight.grad!.select(0, 0).toNumbers(), [0, 0, 0]);
    assert.deepEqual(emb.weight.grad!.select(0, 1).toNumbers(), [1, 1, 1]);
    const y = conv.forward(randn([2, 3, 16, 16]));
    assert.deepEqual(y.shape, [2, 8, 4, 4]);
    assert.deepEqual([...conv.stateDict().keys()], ['weight', 'bias']);
  });
  emb.dispose();
  conv.dispose();
});

test('MultiheadAttention: batch_first false layout, masks, weights averaged over heads', () => {
  const m = new nn.MultiheadAttention(8, 2);
  tidy(() => {
    const x = randn([5, 2, 8]); // (T, B, C)
    const r = m.forward(x, x, x, { keyPaddingMask: tensor([[0, 0, 0, 1, 1], [0, 0, 0, 0, 0]], { dtype: 'bool' }) });
    assert.deepEqual(r.output.shape, [5, 2, 8]);
    assert.deepEqual(r.weights!.shape, [2, 5, 5]);
    // padded keys get zero weight; rows sum to 1
    const w = r.weights!;
    assert.ok(w.select(0, 0).slice(1, 3).abs().max().item() === 0);
    assert.ok(w.sum(-1).sub(1).abs().max().item() < 1e-6);
    // the fused path agrees with the weights path
    const fused = m.forward(x, x, x, { keyPaddingMask: tensor([[0, 0, 0, 1, 1], [0, 0, 0, 0, 0]], { dtype: 'bool' }), needWeights: false });
    assert.ok(fused.output.sub(r.output).abs().max().item() < 1e-5);
    const causal = ones([5, 5], { dtype: 'bool' }).triu(1); // true = not allowed
    const c = m.forward(x, x, x, { attnMask: causal, averageAttnWeights: false });
    assert.deepEqual(c.weights!.shape, [2, 2, 5, 5]);
    assert.equal(c.weights!.select(2, 0).select(2, 1).abs().max().item(), 0);
    assert.throws(() => m.forward(randn([5, 2, 6]), x, x), /MultiheadAttention: expected query, key and value of shape \(T, B, C\) with C = 8 but received \[5, 2, 6\]/);
    assert.throws(() => m.forward(x, x, x, { keyPaddingMask: zeros([2, 4], { dtype: 'bool' }) }), /expected keyPaddingMask of shape \[2, 5\] \(batch, keys\) but received \[2, 4\]/);
  });
  assert.throws(() => new nn.MultiheadAttention(10, 3), /Expected embedDim \(10\) to be divisible by numHeads \(3\)/);
  m.dispose();
});

test('modules created in a scope keep their parameters', () => {
  const before = memory().liveTensors;
  const lin = tidy(() => new nn.Linear(4, 4));
  assert.equal(lin.weight.isDisposed, false);
  assert.equal(tidy(() => noGrad(() => F.linear(ones([1, 4]), lin.weight, lin.bias)).shape[1]), 4);
  assert.equal(memory().liveTensors, before + 2);
  lin.dispose();
  assert.equal(memory().liveTensors, before);
});
