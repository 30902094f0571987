// Gradient checks by central finite differences in float64 for the composite pieces (attention, a transformer
// sub-block, loss with label smoothing): LibTorch's analytic gradients must match numeric ones.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { F, Tensor, manualSeed, nn, noGrad, randn, tensor, tidy } from '../src/index.js';

/** Checks d f / d x for every element of each input against (f(x+h) - f(x-h)) / 2h. */
function gradcheck(f: (xs: Tensor[]) => Tensor, inputs: Tensor[], eps = 1e-6, tol = 1e-6): void {
  tidy(() => {
    const xs = inputs.map((t) => t.detach().clone().requiresGrad_(true));
    f(xs).backward();
    xs.forEach((x, k) => {
      const analytic = x.grad!.toNumbers();
      const base = x.detach().clone();
      const flat = base.reshape(-1);
      const n = flat.numel;
      for (let i = 0; i < n; i++) {
        const at = (d: number) => noGrad(() => {
          const probe = flat.clone();
          const old = probe.select(0, i).item();
          probe.select(0, i).fill_(old + d);
          const args = xs.map((y, j) => (j === k ? probe.reshape(x.shape) : y.detach()));
          return f(args).item();
        });
        const numeric = (at(eps) - at(-eps)) / (2 * eps);
        const err = Math.abs(numeric - analytic[i]!);
        assert.ok(err <= tol + tol * Math.abs(numeric), `input ${k} element ${i}: analytic ${analytic[i]} vs numeric ${numeric}`);
      }
    });
  });
}

test('gradcheck: multi-head attention with key padding (float64)', () => {
  manualSeed(7);
  const m = new nn.MultiheadAttention(4, 2, { batchFirst: true });
  m.eval();
  const params = m.namedParameters().map(([, p]) => p);
  // The same composite in float64, through the functional form with float64 copies of the module's weights.
  const w = params[0]!.double();
  const b = params[1]!.double();
  const ow = params[2]!.double();
  const ob = params[3]!.double();
  const kpm = tensor([[0, 0, 1], [0, 0, 0]], { dtype: 'bool' });
  const mha64 = (q: Tensor, k: Tensor, v: Tensor, w: Tensor, b: Tensor): Tensor => {
    const [wq, wk, wv] = w.chunk(3, 0);
    const [bq, bk, bv] = b.chunk(3, 0);
    const split = (t: Tensor) => t.view(2, -1, 2, 2).transpose(1, 2); // (B, T, C) -> (B, nh, T, hs)
    const mask = tensor([[0, 0, 1], [0, 0, 0]], { dtype: 'bool' }).logicalNot().view(2, 1, 1, 3);
    const y = F.scaledDotProductAttention(split(F.linear(q, wq!, bq)), split(F.linear(k, wk!, bk)), split(F.linear(v, wv!, bv)), { attnMask: mask });
    return F.linear(y.transpose(1, 2).reshape(2, -1, 4), ow, ob); // (B, nh, T, hs) -> (B, T, C)
  };
  const gw = randn([2, 2, 4], { dtype: 'float64' });
  gradcheck(([q, k, v, w2, b2]) => mha64(q!, k!, v!, w2!, b2!).mul(gw).sum(),
    [randn([2, 2, 4], { dtype: 'float64' }), randn([2, 3, 4], { dtype: 'float64' }), randn([2, 3, 4], { dtype: 'float64' }), w, b]);
  // and the float32 module agrees with this float64 composite
  tidy(() => {
    const q = randn([2, 2, 4]);
    const kv = randn([2, 3, 4]);
    const mod = m.forward(q, kv, kv, { keyPaddingMask: kpm, needWeights: false }).output;
    const ref = mha64(q.double(), kv.double(), kv.double(), w, b);
    assert.ok(mod.double().sub(ref).abs().max().item() < 1e-5);
  });
  m.dispose();
});

test('gradcheck: post-norm transformer sub-block (linear, gelu, residual, layer norm)', () => {
  manualSeed(8);
  const gw = randn([2, 3, 4], { dtype: 'float64' });
  gradcheck(([x, w1, b1, w2, g, beta]) => {
    const h = F.linear(F.linear(x!, w1!, b1!).gelu(), w2!);
    return F.layerNorm(x!.add(h), [4], g!, beta!, 1e-12).mul(gw).sum();
  }, [randn([2, 3, 4], { dtype: 'float64' }), randn([6, 4], { dtype: 'float64' }), randn([6], { dtype: 'float64' }),
    randn([4, 6], { dtype: 'float64' }), randn([4], { dtype: 'float64' }), randn([4], { dtype: 'float64' })]);
});

test('gradcheck: cross-entropy with label smoothing and a classifier head', () => {
  manualSeed(9);
  const target = tensor([0, 2, 1], { dtype: 'int64' });
  gradcheck(([x, w]) => F.crossEntropy(F.linear(x!, w!).relu(), target, { labelSmoothing: 0.1 }),
    [randn([3, 5], { dtype: 'float64' }), randn([3, 5], { dtype: 'float64' })]);
});

test('gradcheck: patch embedding convolution and masked mean pooling', () => {
  manualSeed(10);
  const mask = tensor([[1, 1, 0], [1, 1, 1]], { dtype: 'float64' }).unsqueeze(-1);
  gradcheck(([img, w, tok]) => {
    const patches = F.conv2d(img!, w!, null, { stride: 2 }).flatten(2).transpose(1, 2); // (B, C, h, w) -> (B, h*w, C)
    const pooled = tok!.mul(mask).sum(1).div(mask.sum(1)); // masked mean over T
    return patches.mean(1).mul(pooled).sum();
  }, [randn([2, 1, 4, 4], { dtype: 'float64' }), randn([3, 1, 2, 2], { dtype: 'float64' }), randn([2, 3, 3], { dtype: 'float64' })]);
});
