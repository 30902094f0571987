// Tensor creation, reading back, dtypes, scopes, modes and error paths.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  F, Tensor, arange, autocast, cat, fromBuffer, full, keep, manualSeed, memory, noGrad, ones, rand,
  randint, randn, scopeDepth, stack, tensor, tidy, zeros, isGradEnabled, getNumThreads, setNumThreads, buildInfo,
  getRngState, setRngState,
} from '../src/index.js';

test('creation from nested arrays, typed arrays and numbers', () => {
  tidy(() => {
    const a = tensor([[1, 2, 3], [4, 5, 6]]);
    assert.deepEqual(a.shape, [2, 3]);
    assert.equal(a.dtype, 'float32');
    assert.deepEqual(a.toNested(), [[1, 2, 3], [4, 5, 6]]);
    const b = tensor(new Int32Array([1, 2, 3, 4]), { shape: [2, 2] });
    assert.equal(b.dtype, 'int32');
    assert.deepEqual(b.toNested(), [[1, 2], [3, 4]]);
    const c = tensor([1, 2, 3], { dtype: 'int64' });
    assert.equal(c.dtype, 'int64');
    assert.ok(c.toArray() instanceof BigInt64Array);
    assert.deepEqual(c.toNumbers(), [1, 2, 3]);
    assert.equal(tensor(7).item(), 7);
    assert.deepEqual(tensor([true, false]).toNumbers(), [1, 0]);
    assert.deepEqual(tensor([true, false], { dtype: 'bool' }).toNested(), [true, false]);
    assert.deepEqual(zeros([2]).toNumbers(), [0, 0]);
    assert.deepEqual(ones([2], { dtype: 'int32' }).toNumbers(), [1, 1]);
    assert.deepEqual(full([2], 3.5).toNumbers(), [3.5, 3.5]);
    assert.deepEqual(arange(4).toNumbers(), [0, 1, 2, 3]);
    assert.equal(arange(4).dtype, 'int64');
    assert.deepEqual(arange(0, 1, 0.25).toNumbers(), [0, 0.25, 0.5, 0.75]);
  });
});

test('every dtype round-trips, half types through float32', () => {
  tidy(() => {
    const vals = [0, 1, -2, 3];
    for (const dtype of ['float32', 'float64', 'float16', 'bfloat16', 'int64', 'int32', 'int16', 'int8'] as const) {
      const t = tensor(vals, { dtype });
      assert.equal(t.dtype, dtype);
      assert.deepEqual(t.toNumbers(), vals, dtype);
    }
    assert.deepEqual(tensor([0, 1, 2, 255], { dtype: 'uint8' }).toNumbers(), [0, 1, 2, 255]);
    // bf16 keeps 8 bits of mantissa: 1.00390625 rounds to 1
    assert.equal(tensor([1.00390625], { dtype: 'bfloat16' }).toNumbers()[0], 1);
    const h = tensor([1.5, -2.25]).to('float16');
    assert.equal(h.dtype, 'float16');
    assert.deepEqual([...h.toFloat32Array()], [1.5, -2.25]);
    assert.equal(h.toBuffer().length, 4);
  });
});

test('fromBuffer shares memory with the typed array', () => {
  const data = new Float32Array([1, 2, 3, 4]);
  const t = fromBuffer(data, [2, 2]);
  data[0] = 10;
  assert.equal(t.toNumbers()[0], 10);
  noGrad(() => t.mul_(2));
  assert.equal(data[1], 4);
  t.dispose();
  assert.throws(() => fromBuffer(new Float32Array(3), [2, 2]), /Expected a shape with 3 elements for shape/);
});

test('seeded random numbers repeat; randint stays in range', () => {
  tidy(() => {
    manualSeed(42);
    const a = randn([5]).toNumbers();
    manualSeed(42);
    const b = randn([5]).toNumbers();
    assert.deepEqual(a, b);
    const state = getRngState();
    const c = rand([4]).toNumbers();
    setRngState(state);
    assert.deepEqual(rand([4]).toNumbers(), c);
    const r = randint(3, 7, [1000]).toNumbers();
    assert.ok(r.every((v) => v >= 3 && v < 7));
    assert.equal(new Set(r).size, 4);
  });
});

test('errors name the op and the input shapes, and never abort the process', () => {
  tidy(() => {
    const a = randn([2, 3]);
    assert.throws(() => a.matmul(randn([2, 3])), (e: Error) => /^matmul failed for inputs \[2, 3\] Float, \[2, 3\] Float: mat1 and mat2 shapes cannot be multiplied \(2x3 and 2x3\)/.test(e.message));
    assert.throws(() => a.add(randn([4])), /add failed for inputs \[2, 3\] Float, \[4\] Float: The size of tensor a \(3\) must match/);
    assert.throws(() => a.indexSelect(0, tensor([5], { dtype: 'int64' })), /indexSelect failed for inputs \[2, 3\] Float, \[1\] Long: .*out of range|index out of range/i);
    assert.throws(() => a.indexSelect(0, tensor([0.5])), /indexSelect failed .*Float.*Float/);
    assert.throws(() => a.view(4, 2), /view failed for inputs \[2, 3\] Float: shape '\[4, 2\]' is invalid for input of size 6/);
    assert.throws(() => F.crossEntropy(randn([2, 3]), tensor([0, 5], { dtype: 'int64' })), /crossEntropy failed for inputs \[2, 3\] Float, \[2\] Long/);
    assert.throws(() => F.embedding(tensor([9], { dtype: 'int64' }), randn([4, 2])), /embedding failed.*index out of range/i);
    assert.throws(() => cat([randn([2, 3]), randn([2, 4])], 0), /cat failed for inputs \[2, 3\] Float, \[2, 4\] Float: Sizes of tensors must match/);
    assert.throws(() => stack([]), /Expected a non-empty array of Tensors for tensors but received array of length 0/);
  });
});

test('arguments are validated in TypeScript with parameter, expected and received', () => {
  assert.throws(() => zeros([2, -1]), /Expected an array of non-negative integers for shape but received array of length 2/);
  assert.throws(() => zeros([2], { dtype: 'float8' as never }), /Expected one of float32, .* for dtype but received "float8"/);
  assert.throws(() => tensor([[1, 2], [3]]), /Expected an array of length 2 \(ragged nested arrays are not tensors\) for data\[1\]/);
  assert.throws(() => tensor([1, 2, 3], { shape: [2, 2] }), /Expected a shape with 3 elements for shape/);
  assert.throws(() => randn([2]).to('tpu' as never), /Expected "cpu", "cuda" or "cuda:N" for device but received "tpu"/);
  assert.throws(() => randn([2]).sum(1.5), /Expected an integer for dim but received number 1.5/);
  assert.throws(() => randn([2]).mul('x' as never), /Expected a Tensor or a number for mul\(other\) but received "x"/);
  assert.throws(() => F.dropout(randn([2]), 1.5), /Expected a number between 0 and 1 for p but received number 1.5/);
  assert.throws(() => setNumThreads(0), /Expected an integer between 1 and 1024 for threads/);
});

test('disposed tensors give a clear error; dispose is idempotent', () => {
  const t = randn([3]);
  t.dispose();
  t.dispose();
  assert.equal(t.isDisposed, true);
  assert.throws(() => t.add(1), /Tensor was disposed/);
  assert.throws(() => t.shape, /Tensor was disposed/);
});

test('tidy frees what it created, returns results, honours keep, and frees on exceptions', () => {
  const before = memory().liveTensors;
  let kept!: Tensor;
  const out = tidy(() => {
    const a = ones([4]);
    const b = a.mul(2);
    kept = keep(b.add(1));
    const inner = tidy(() => b.add(a)); // moves into this scope
    return { sum: inner.sum(), list: [a] };
  });
  assert.equal(out.sum.item(), 12);
  assert.equal(out.list[0]!.isDisposed, false);
  assert.equal(memory().liveTensors, before + 3);
  out.sum.dispose();
  out.list[0]!.dispose();
  kept.dispose();
  assert.equal(memory().liveTensors, before);
  assert.throws(() => tidy(() => {
    ones([100]);
    throw new Error('boom');
  }), /boom/);
  assert.equal(memory().liveTensors, before);
  assert.equal(scopeDepth(), 0);
  assert.throws(() => tidy((async () => ones([1])) as never), /tidy\(\) takes a synchronous function/);
  assert.equal(memory().liveTensors, before);
});

test('views count their storage once', () => {
  const before = memory();
  const a = zeros([1024]);
  const v = a.view(32, 32);
  const s = a.slice(0, 0, 10);
  assert.equal(memory().liveBytes - before.liveBytes, 4096);
  a.dispose();
  v.dispose();
  s.dispose();
  assert.equal(memory().liveBytes, before.liveBytes);
});

test('autograd: requiresGrad, backward, grad, detach, noGrad, retainGraph', () => {
  tidy(() => {
    const x = tensor([1, 2, 3], { requiresGrad: true });
    assert.equal(x.requiresGrad, true);
    assert.equal(x.isLeaf, true);
    const y = x.mul(x).sum();
    y.backward(undefined, { retainGraph: true });
    assert.deepEqual(x.grad!.toNumbers(), [2, 4, 6]);
    y.backward(); // accumulates
    assert.deepEqual(x.grad!.toNumbers(), [4, 8, 12]);
    x.grad = null;
    assert.equal(x.grad, null);
    const z = noGrad(() => x.mul(2));
    assert.equal(z.requiresGrad, false);
    assert.equal(isGradEnabled(), true);
    assert.equal(x.detach().requiresGrad, false);
    const v = x.mul(2);
    assert.throws(() => v.backward(), /backward failed .*grad can be implicitly created only for scalar outputs/);
    v.backward(ones([3]));
    assert.deepEqual(x.grad!.toNumbers(), [2, 2, 2]);
    assert.throws(() => noGrad((async () => 1) as never), /noGrad\(\) takes a synchronous function/);
    assert.equal(isGradEnabled(), true);
  });
});

test('autocast runs matmul in bfloat16 and keeps fp32 parameters and gradients', () => {
  tidy(() => {
    const w = randn([8, 4], { requiresGrad: true });
    const x = randn([3, 4]);
    const y = autocast({ device: 'cpu', dtype: 'bfloat16' }, () => F.linear(x, w));
    assert.equal(y.dtype, 'bfloat16');
    const ref = F.linear(x, w);
    assert.equal(ref.dtype, 'float32');
    const diff = y.float().sub(ref).abs().max().item();
    assert.ok(diff < 0.1, `bf16 linear differs from fp32 by ${diff}`);
    y.float().sum().backward();
    assert.equal(w.grad!.dtype, 'float32');
    // losses are fp32 ops under CPU autocast (as in torch.autocast('cpu')); softmax keeps bf16 there in 1.13
    const loss = autocast({}, () => F.crossEntropy(y, tensor([0, 1, 2], { dtype: 'int64' })));
    assert.equal(loss.dtype, 'float32');
    assert.throws(() => autocast({ dtype: 'float32' as never }, () => 1), /Expected "bfloat16" or "float16" for autocast dtype/);
  });
});

test('dropout drops with probability p and rescales; identity in eval', () => {
  tidy(() => {
    manualSeed(0);
    const x = ones([10000]);
    const y = F.dropout(x, 0.25, true).toNumbers();
    const zerosFrac = y.filter((v) => v === 0).length / y.length;
    assert.ok(Math.abs(zerosFrac - 0.25) < 0.02, `dropped ${zerosFrac}`);
    assert.ok(y.filter((v) => v !== 0).every((v) => Math.abs(v - 1 / 0.75) < 1e-6));
    assert.deepEqual(F.dropout(x, 0.25, false).toNumbers().slice(0, 3), [1, 1, 1]);
  });
});

test('in-place updates used by optimizers', () => {
  tidy(() => {
    const p = tensor([1, 2, 3]);
    const g = tensor([0.5, 0.5, 0.5]);
    p.add_(g, -2).mul_(2).addcmul_(g, g, 4).addcdiv_(g, tensor([1, 2, 4]), 2).lerp_(zeros([3]), 0.5);
    // ((p - 1) * 2 + 1 + [1, .5, .25]) * .5
    assert.deepEqual(p.toNumbers(), [1, 1.75, 2.625]);
    p.zero_().fill_(3).clamp_(0, 2).sqrt_();
    assert.ok(Math.abs(p.toNumbers()[0]! - Math.SQRT2) < 1e-6);
    const leaf = tensor([1], { requiresGrad: true });
    assert.throws(() => leaf.add_(1), /add_|inplace failed.*a leaf Variable that requires grad/);
  });
});

test('shape ops: split, chunk, squeeze, max with indices, sort, topk', () => {
  tidy(() => {
    const a = arange(12).reshape(3, 4);
    assert.deepEqual(a.split(2, 1).map((t) => t.shape), [[3, 2], [3, 2]]);
    assert.deepEqual(a.chunk(3, 0).map((t) => t.toNumbers()), [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]]);
    assert.deepEqual(a.unsqueeze(0).squeeze(0).shape, [3, 4]);
    const m = tensor([[1, 5, 2], [7, 0, 3]]).max(1);
    assert.deepEqual(m.values.toNumbers(), [5, 7]);
    assert.deepEqual(m.indices.toNumbers(), [1, 0]);
    const s = tensor([3, 1, 2]).sort(0, true);
    assert.deepEqual(s.values.toNumbers(), [3, 2, 1]);
    assert.deepEqual(tensor([3, 1, 2]).topk(2).indices.toNumbers(), [0, 2]);
    assert.deepEqual(a.transpose(0, 1).contiguous().strides, [3, 1]);
    assert.equal(a.transpose(0, 1).isContiguous(), false);
  });
});

test('process controls: threads and build info', () => {
  const n = getNumThreads();
  setNumThreads(1);
  assert.equal(getNumThreads(), 1);
  setNumThreads(n);
  const info = buildInfo();
  assert.match(info.libtorch, /^\d+\.\d+/);
  assert.equal(typeof info.cudaAvailable, 'boolean');
});
