// Memory: a training loop of 10,000 steps on a small model keeps native tensors and RSS flat; the GC finalizer
// frees tensors that were dropped without dispose (a safety net, not the main mechanism).
import { test } from 'node:test';
import { readFileSync } from 'node:fs';
import assert from 'node:assert/strict';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { F, Tensor, manualSeed, memory, nn, noGrad, randn, randint, releaseFreeMemory, tidy, zerosLike, keep, zeros } from '../src/index.js';

// JS garbage (Tensor wrappers awaiting a major GC) is not a leak: collect it before each RSS reading so that
// the reading shows what is really retained.
setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

test('10,000 training steps keep native tensors and RSS flat', () => {
  manualSeed(1);
  const model = new nn.Sequential(new nn.Linear(32, 64), new nn.GELU(), new nn.LayerNorm(64), new nn.Linear(64, 4));
  const params = model.parameters();
  const momentum = params.map((p) => keep(zerosLike(p)));
  const x = randn([16, 32]);
  const y = randint(0, 4, [16]);
  const step = () => tidy(() => {
    const loss = F.crossEntropy(model.forward(x), y);
    loss.backward();
    noGrad(() => {
      params.forEach((p, i) => {
        const g = p.grad!;
        momentum[i]!.mul_(0.9).add_(g);
        p.add_(momentum[i]!, -0.01);
      });
    });
    model.zeroGrad();
    return loss.item();
  });
  for (let i = 0; i < 1000; i++) step();
  gc();
  const live0 = memory();
  const { rss: rss0, heapUsed: heap0 } = process.memoryUsage();
  let last = 0;
  for (let i = 0; i < 10000; i++) last = step();
  gc();
  const live1 = memory();
  const { rss: rss1, heapUsed: heap1 } = process.memoryUsage();
  assert.equal(live1.liveTensors, live0.liveTensors, 'native tensor count grew');
  assert.equal(live1.liveBytes, live0.liveBytes, 'native bytes grew');
  // Exact counts above catch leaked tensors; the JS heap after a full GC catches retained wrappers; RSS is a
  // loose bound (allocator and V8 page reservations move by a few MB) that catches native leaks outside tensors.
  const heapMB = (heap1 - heap0) / 2 ** 20;
  assert.ok(heapMB < 2, `JS heap grew by ${heapMB.toFixed(2)} MB over 10,000 steps`);
  const growthMB = (rss1 - rss0) / 2 ** 20;
  assert.ok(growthMB < 32, `RSS grew by ${growthMB.toFixed(1)} MB over 10,000 steps`);
  assert.ok(last < 0.5, `the loop should also fit the batch (loss ${last})`);
  model.dispose();
  for (const m of momentum) m.dispose();
  x.dispose();
  y.dispose();
});

test('the finalizer frees tensors dropped without dispose', async () => {
  const before = memory().liveTensors;
  (() => {
    const dropped: Tensor[] = [];
    for (let i = 0; i < 2000; i++) dropped.push(randn([8]));
  })();
  assert.ok(memory().liveTensors >= before + 2000);
  for (let i = 0; i < 20 && memory().liveTensors > before + 100; i++) {
    gc();
    await new Promise((r) => setImmediate(r));
  }
  assert.ok(memory().liveTensors <= before + 100, `still ${memory().liveTensors - before} live after GC`);
});

test('releaseFreeMemory hands freed heap back to the kernel', () => {
  const rss = () => Number(/VmRSS:\s+(\d+)/.exec(readFileSync('/proc/self/status', 'utf8'))![1]) / 1024;
  releaseFreeMemory();
  const rss0 = rss();
  // 96 MiB in 1 MiB tensors: heap allocations that the tuned allocator keeps after they are freed
  tidy(() => {
    for (let i = 0; i < 96; i++) zeros([256, 1024]);
  });
  releaseFreeMemory();
  const grown = rss() - rss0;
  assert.ok(grown < 24, `RSS is still ${grown.toFixed(1)} MiB above where it started`);
});
