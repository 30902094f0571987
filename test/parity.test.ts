// Parity of every bound op and its gradient against PyTorch. Fixtures come from test/fixtures/gen_parity.py
// (Debian's torch 1.13): for each case, inputs, out = op(inputs) and d sum(out * gw) / d input.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { F, Tensor, autocast, cat, loadSafetensors, nn, noGrad, stack, tidy, where } from '../src/index.js';
import { FIXTURES, type Tol, assertClose } from './helpers.js';

type Args = Record<string, any>;
type OpFn = (x: Tensor[], a: Args) => Tensor;

const OPS: Record<string, OpFn> = {
  neg: ([a]) => a!.neg(), abs: ([a]) => a!.abs(), exp: ([a]) => a!.exp(), log: ([a]) => a!.log(),
  sqrt: ([a]) => a!.sqrt(), rsqrt: ([a]) => a!.rsqrt(), sin: ([a]) => a!.sin(), cos: ([a]) => a!.cos(),
  tanh: ([a]) => a!.tanh(), sigmoid: ([a]) => a!.sigmoid(), relu: ([a]) => a!.relu(), gelu: ([a]) => a!.gelu(),
  gelu_tanh: ([a]) => a!.gelu('tanh'), silu: ([a]) => a!.silu(), square: ([a]) => a!.square(),
  reciprocal: ([a]) => a!.reciprocal(), erf: ([a]) => a!.erf(), log1p: ([a]) => a!.log1p(), expm1: ([a]) => a!.expm1(),
  add: ([a, b]) => a!.add(b!), sub: ([a, b]) => a!.sub(b!), mul: ([a, b]) => a!.mul(b!), div: ([a, b]) => a!.div(b!),
  pow: ([a, b]) => a!.pow(b!), maximum: ([a, b]) => a!.maximum(b!), minimum: ([a, b]) => a!.minimum(b!),
  add_alpha: ([a, b], o) => a!.add(b!, o.alpha), add_scalar: ([a], o) => a!.add(o.s), mul_scalar: ([a], o) => a!.mul(o.s),
  div_scalar: ([a], o) => a!.div(o.s), pow_scalar: ([a], o) => a!.pow(o.s), rsub_scalar: ([a], o) => a!.rsub(o.s),
  rdiv_scalar: ([a], o) => a!.rdiv(o.s),
  eq: ([a, b]) => a!.eq(b!), ne: ([a, b]) => a!.ne(b!), lt: ([a, b]) => a!.lt(b!), le: ([a, b]) => a!.le(b!),
  gt: ([a, b]) => a!.gt(b!), ge: ([a, b]) => a!.ge(b!),
  clamp: ([a], o) => a!.clamp(o.min, o.max),
  sum: ([a], o) => a!.sum(o.dim, o.keepdim), mean: ([a], o) => a!.mean(o.dim, o.keepdim),
  amax: ([a], o) => a!.amax(o.dim, o.keepdim), amin: ([a], o) => a!.amin(o.dim, o.keepdim),
  max_values: ([a], o) => a!.max(o.dim).values, argmax: ([a], o) => a!.argmax(o.dim),
  var: ([a], o) => a!.var(o.dim, { correction: o.correction }), std: ([a], o) => a!.std(o.dim, { correction: o.correction }),
  norm: ([a], o) => a!.norm(o.p, o.dim), logsumexp: ([a], o) => a!.logsumexp(o.dim), cumsum: ([a], o) => a!.cumsum(o.dim),
  reshape: ([a], o) => a!.reshape(o.shape), permute: ([a], o) => a!.permute(o.dims),
  transpose: ([a], o) => a!.transpose(o.d0, o.d1), slice: ([a], o) => a!.slice(o.dim, o.start, o.end, o.step),
  select: ([a], o) => a!.select(o.dim, o.index), index_select: ([a, i], o) => a!.indexSelect(o.dim, i!),
  gather: ([a, i], o) => a!.gather(o.dim, i!), cat: (xs, o) => cat(xs, o.dim), stack: (xs, o) => stack(xs, o.dim),
  split_cat: ([a], o) => cat(a!.split(o.sizes, o.dim).map((p, i) => p.mul(i + 1)), 0),
  unsqueeze_expand: ([a], o) => a!.unsqueeze(o.dim).expand(o.shape), flatten: ([a], o) => a!.flatten(o.start, o.end),
  repeat: ([a], o) => a!.repeat(o.repeats), flip: ([a], o) => a!.flip(o.dims), tril: ([a], o) => a!.tril(o.k),
  index: ([a, m]) => a!.index(m!),
  floor: ([a]) => a!.floor(), ceil: ([a]) => a!.ceil(), round: ([a]) => a!.round(), sign: ([a]) => a!.sign(),
  remainder: ([a, b]) => a!.remainder(b!), floor_divide: ([a, b]) => a!.floorDivide(b!),
  argmin: ([a], o) => a!.argmin(o.dim), prod: ([a], o) => a!.prod(o.dim), mm: ([a, b]) => a!.mm(b!),
  one_hot: ([i], o) => i!.oneHot(o.n), isnan: ([a]) => a!.isnan(), isinf: ([a]) => a!.isinf(), isfinite: ([a]) => a!.isfinite(),
  any: ([a], o) => a!.any(o.dim), logical_or: ([a, b]) => a!.logicalOr(b!),
  matmul: ([a, b]) => a!.matmul(b!), bmm: ([a, b]) => a!.bmm(b!), linear: ([x, w, b]) => F.linear(x!, w!, b),
  softmax: ([a], o) => F.softmax(a!, o.dim), log_softmax: ([a], o) => F.logSoftmax(a!, o.dim),
  layer_norm: ([x, w, b], o) => F.layerNorm(x!, [x!.size(-1)], w, b, o.eps),
  embedding: ([w, i], o) => F.embedding(i!, w!, o.padding_idx),
  conv2d: ([x, w, b], o) => F.conv2d(x!, w!, b, { stride: o.stride, padding: o.padding, dilation: o.dilation ?? 1, groups: o.groups ?? 1 }),
  masked_fill: ([a, m], o) => a!.maskedFill(m!, o.value), where: ([c, a, b]) => where(c!, a!, b!),
  sdpa: ([q, k, v, m], o) => F.scaledDotProductAttention(q!, k!, v!, { attnMask: m ?? null, isCausal: o.causal ?? false }),
  cross_entropy: ([x, t, w], o) => F.crossEntropy(x!, t!, { weight: w ?? null, reduction: o.reduction ?? 'mean', labelSmoothing: o.label_smoothing ?? 0 }),
  mse: ([a, b]) => F.mseLoss(a!, b!), bce_logits: ([a, b]) => F.binaryCrossEntropyWithLogits(a!, b!),
  interpolate: ([x], o) => F.interpolate(x!, o.size, o.mode),
  mha: ([q, k, v, w, b, ow, ob, kpm], o) => {
    const E = q!.size(2);
    const m = new nn.MultiheadAttention(E, o.heads, { batchFirst: true });
    m.eval();
    // Tie the module's parameters to the inputs so gradients w.r.t. them flow to the test's leaves.
    const sd = new Map(m.namedParameters());
    noGrad(() => {
      sd.get('in_proj_weight')!.copy_(w!);
      sd.get('in_proj_bias')!.copy_(b!);
      sd.get('out_proj.weight')!.copy_(ow!);
      sd.get('out_proj.bias')!.copy_(ob!);
    });
    if (o.self) {
      mhaParams = m;
      return m.forward(q!, q!, q!, { needWeights: false }).output;
    }
    const r = m.forward(q!, k!, v!, { keyPaddingMask: kpm ?? null, needWeights: true });
    const out = cat([r.output.reshape(-1), r.weights!.reshape(-1)]);
    // Gradients for the parameter inputs are checked through the module's own parameters.
    mhaParams = m;
    return out;
  },
  mha_self: ([x, w, b, ow, ob], o) => OPS.mha!([x!, x!, x!, w!, b!, ow!, ob!], { ...o, self: true }),
};
let mhaParams: nn.MultiheadAttention | null = null;

// Tolerances per op (float32). Default covers elementwise ops; products and attention accumulate more rounding.
const DEFAULT_TOL: Tol = { atol: 1e-5, rtol: 1e-4 };
const TOL: Record<string, Tol> = {
  matmul: { atol: 1e-4, rtol: 1e-4 }, bmm: { atol: 1e-4, rtol: 1e-4 }, linear: { atol: 1e-4, rtol: 1e-4 },
  conv2d: { atol: 1e-4, rtol: 1e-4 }, sdpa: { atol: 1e-4, rtol: 1e-4 }, mha: { atol: 1e-4, rtol: 1e-4 },
  mha_self: { atol: 1e-4, rtol: 1e-4 },
  layer_norm: { atol: 1e-4, rtol: 1e-4 }, interpolate: { atol: 1e-4, rtol: 1e-4 }, var: { atol: 1e-5, rtol: 1e-4 },
  pow: { atol: 1e-5, rtol: 2e-4 }, pow_scalar: { atol: 1e-5, rtol: 2e-4 }, logsumexp: { atol: 1e-5, rtol: 1e-4 },
};
const GRAD_TOL_FACTOR = 10;

interface Case { name: string; op: string; args: Args; n_inputs: number; grads: number[] }
const meta = JSON.parse(readFileSync(join(FIXTURES, 'parity.json'), 'utf8')) as { torch: string; cases: Case[] };
const fx = loadSafetensors(join(FIXTURES, 'parity.safetensors')).tensors;

test('fixture covers every op in the table', () => {
  const used = new Set(meta.cases.map((c) => c.op));
  for (const op of Object.keys(OPS)) assert.ok(used.has(op), `no fixture case for ${op}`);
});

for (const c of meta.cases) {
  test(`parity ${c.name} (${c.op}) vs torch ${meta.torch}`, () => {
    const fn = OPS[c.op];
    assert.ok(fn, `no mmtrain implementation for op ${c.op}`);
    const tol = TOL[c.op] ?? DEFAULT_TOL;
    tidy(() => {
      const inputs: Tensor[] = [];
      for (let i = 0; i < c.n_inputs; i++) {
        const t = fx.get(`${c.name}.in${i}`)!.clone();
        if (c.grads.includes(i)) t.requiresGrad = true;
        inputs.push(t);
      }
      mhaParams = null;
      const out = fn(inputs, c.args);
      const expected = fx.get(`${c.name}.out`)!;
      assert.equal(out.dtype, expected.dtype, `${c.name}: output dtype`);
      if (expected.dtype === 'bool' || expected.dtype === 'int64') {
        assert.deepEqual(out.toNumbers(), expected.toNumbers(), `${c.name}: output`);
        return;
      }
      assertClose(out, expected, tol, `${c.name}: output`);
      if (!c.grads.length) return;
      out.mul(fx.get(`${c.name}.gw`)!).sum().backward();
      const gtol = { atol: tol.atol * GRAD_TOL_FACTOR, rtol: tol.rtol * GRAD_TOL_FACTOR };
      const paramNames = ['in_proj_weight', 'in_proj_bias', 'out_proj.weight', 'out_proj.bias'];
      for (const i of c.grads) {
        let g: Tensor | null;
        if (c.op === 'mha' && i >= 3 && i <= 6) g = new Map(mhaParams!.namedParameters()).get(paramNames[i - 3]!)!.grad;
        else if (c.op === 'mha_self' && i >= 1) g = new Map(mhaParams!.namedParameters()).get(paramNames[i - 1]!)!.grad;
        else g = inputs[i]!.grad;
        assert.ok(g, `${c.name}: no gradient for input ${i}`);
        assertClose(g, fx.get(`${c.name}.grad${i}`)!, gtol, `${c.name}: grad of input ${i}`);
      }
      (mhaParams as nn.MultiheadAttention | null)?.dispose();
    });
  });
}

// conv2d on the CPU runs LibTorch's own kernels instead of oneDNN's (see native/src/ops_nn.cc), so the addon applies
// autocast's cast itself: under bf16 autocast the output is bf16, as PyTorch's autocast conv2d gives, and equals the
// fp32 convolution of the bf16-rounded inputs within bf16 rounding, on the patch path and the general one.
test('conv2d under bf16 autocast computes in bf16 like autocast conv2d, with gradients in the inputs\' dtype', () => {
  for (const [name, opts] of [['conv2d_patch', { stride: 4 }], ['conv2d_same', { stride: 1, padding: 1 }]] as const) {
    tidy(() => {
      const x = fx.get(`${name}.in0`)!.clone();
      const w = fx.get(`${name}.in1`)!.clone();
      const b = fx.get(`${name}.in2`)!.clone();
      x.requiresGrad = true;
      w.requiresGrad = true;
      const y = autocast({ dtype: 'bfloat16' }, () => F.conv2d(x, w, b, opts));
      assert.equal(y.dtype, 'bfloat16', `${name}: autocast output dtype`);
      const round = (t: Tensor) => t.to('bfloat16').to('float32');
      const ref = F.conv2d(round(x), round(w), round(b), opts);
      assertClose(y.to('float32'), ref, { atol: 0.08, rtol: 0.02 }, `${name}: bf16 output`);
      y.to('float32').sum().backward();
      assert.equal(x.grad!.dtype, 'float32', `${name}: input grad dtype`);
      assert.equal(w.grad!.dtype, 'float32', `${name}: weight grad dtype`);
    });
  }
});
