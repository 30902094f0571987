// Trainer overhead: steps/s of train() against a bare loop doing the same model step on batches already in memory.
import { join } from 'node:path';
import {
  AdamW, DataLoader, F, ImageCache, TextTokenizer, bundledTokenizer, clipGradNorm, createFusionModel, disposeBatch, generateSynthetic,
  featureCacheFlopBound, imageConfig, keep, manualSeed, readManifest, resolveConfig, tidy, train, type Batch, type FusionConfig, type FusionClassifier,
} from '../src/index.js';
import { DEMO_IMAGE_SIZE, demoConfig } from '../src/cli/demo.js';
import { median } from './stats.js';

export async function trainerOverhead(workDir: string, steps = 50, rounds = 6): Promise<{ trainer_step_s: number; bare_step_s: number; overhead: number; rounds: { trainer: number[]; bare: number[] } }> {
  const data = join(workDir, 'data');
  await generateSynthetic({ out: data, n: 1000, seed: 1, imageSize: DEMO_IMAGE_SIZE });
  const cfgIn = demoConfig(data, { out: join(workDir, 'runs') });
  const cfg = resolveConfig({ ...cfgIn, data: { ...cfgIn.data, cache: join(workDir, 'cache') }, train: { ...cfgIn.train, maxSteps: steps + 5 }, log: { every: 1000, progress: 'none', tensorboard: true } });
  // warm the image cache so that neither side decodes
  const img = imageConfig({ size: DEMO_IMAGE_SIZE, resize: 'exact' });
  const tok = TextTokenizer.fromFile(bundledTokenizer());
  const cache = new ImageCache(join(workDir, 'cache'), img);
  const samples = readManifest(join(data, 'train.jsonl')).samples;
  for await (const b of new DataLoader(samples, tok, img, { batchSize: 64, shuffle: false, cache }).epoch(0)) disposeBatch(b);
  cache.flush();

  // the bare loop: same model shape, optimizer and clipping, batches collated beforehand
  manualSeed(1);
  const { model } = createFusionModel({ preset: 'tiny', text: cfg.model.text, image: cfg.model.image, fusion_num_heads: 4, head_hidden_size: 128, head_dropout: 0 });
  model.train();
  const opt = new AdamW(model.parameters(), { lr: 5e-4, weightDecay: 0.01 });
  const loader = new DataLoader(samples, tok, img, { batchSize: 32, seed: 1, cache, maxLength: 32 });
  const batches: Batch[] = [];
  for await (const b of loader.epoch(0)) batches.push(keep(b));
  const bare = () => {
    const times: number[] = [];
    for (let i = 0; i < steps + 5; i++) {
      const b = batches[i % batches.length]!;
      const t0 = performance.now();
      tidy(() => {
        F.crossEntropy(model.forward(b).logits, b.labels).backward();
        clipGradNorm(model.parameters(), 1);
        opt.step();
        opt.zeroGrad();
      });
      times.push(performance.now() - t0);
    }
    return median(times.slice(5)) / 1000;
  };
  const trainer = async (round: number) => {
    const stamps: number[] = [];
    await train({ ...cfg, name: `overhead-${round}` }, { print: () => {}, callbacks: [{ onStepEnd: () => { stamps.push(performance.now()); } }] });
    return median(stamps.slice(5).map((t, i) => t - stamps[i + 4]!)) / 1000;
  };
  // Rounds alternate between the two sides, and which goes first, so that both see the same machine noise; the
  // overhead is the median over rounds of each round's ratio (paired), which cancels the drift between rounds that
  // made a min-of-rounds comparison swing by +-5% on this machine.
  const trainerSteps: number[] = [];
  const bareSteps: number[] = [];
  for (let r = 0; r < rounds; r++) {
    if (r % 2 === 0) {
      trainerSteps.push(await trainer(r));
      bareSteps.push(bare());
    } else {
      bareSteps.push(bare());
      trainerSteps.push(await trainer(r));
    }
  }
  batches.forEach(disposeBatch);
  model.dispose();
  opt.dispose();
  const ratios = trainerSteps.map((t, i) => t / bareSteps[i]!);
  return { trainer_step_s: median(trainerSteps), bare_step_s: median(bareSteps), overhead: median(ratios) - 1, rounds: { trainer: trainerSteps, bare: bareSteps } };
}

/**
 * Median time of epochs 2 and 3 of a run (the first also fills the caches; evaluation and saving are off), with
 * the model's config and the mean padded text length, which the FLOP bound needs.
 */
async function epochSeconds(cfg: ReturnType<typeof resolveConfig>): Promise<{ epoch_s: number; config: FusionConfig; meanTokens: number }> {
  const marks: number[] = [];
  let config: FusionConfig | null = null;
  let tokens = 0;
  let batches = 0;
  await train(cfg, {
    print: () => {},
    callbacks: [{
      onTrainStart: (ctx) => { config = (ctx.model as FusionClassifier).config; marks.push(performance.now()); },
      onForward: (_ctx, o) => { tokens += o.attentionMask.shape[1]!; batches++; },
      onEpochEnd: () => { marks.push(performance.now()); },
    }],
  });
  return { epoch_s: median([marks[2]! - marks[1]!, marks[3]! - marks[2]!]) / 1000, config: config!, meanTokens: tokens / batches };
}

const NO_EVAL = { eval: { every: 100000 }, checkpoint: { every: 100000, keepLast: 1, saveBest: false }, log: { every: 1000, progress: 'none' as const } };

interface FeatureCacheResult { epoch_s_cached: number; epoch_s_plain: number; speedup: number; flop_bound: number }

/**
 * Plain against cached epochs, and the speedup that FLOPs allow: the cached epoch still trains fusion and head,
 * so when they are a large share of the model (the demo's one fusion layer against two-layer encoders) no cache
 * can reach 10x.
 */
async function compareEpochs(cfg: (featureCache: boolean) => ReturnType<typeof resolveConfig>): Promise<FeatureCacheResult> {
  const plain = await epochSeconds(cfg(false));
  const cached = await epochSeconds(cfg(true));
  return {
    epoch_s_cached: cached.epoch_s, epoch_s_plain: plain.epoch_s, speedup: plain.epoch_s / cached.epoch_s,
    flop_bound: featureCacheFlopBound(plain.config, plain.meanTokens),
  };
}

/** Epoch time with both encoders frozen: training on cached encoder outputs vs running the encoders every step. */
export async function featureCacheSpeedup(workDir: string): Promise<FeatureCacheResult> {
  const data = join(workDir, 'data');
  await generateSynthetic({ out: data, n: 1000, seed: 1, imageSize: DEMO_IMAGE_SIZE });
  return compareEpochs((featureCache) => {
    const base = demoConfig(data, { out: join(workDir, 'runs') });
    return resolveConfig({ ...base, ...NO_EVAL, name: featureCache ? 'cached' : 'plain', data: { ...base.data, cache: join(workDir, 'cache') },
      model: { ...base.model, freeze: { text: true, image: true } }, train: { ...base.train, epochs: 3, featureCache } });
  });
}

/**
 * The same at a larger preset on 224px images, where the frozen encoders are most of a step: the saving grows with
 * the encoders' depth against the one fusion layer that still runs (small: 4 layers, base: 12).
 */
export async function featureCacheSpeedupPreset(workDir: string, preset: 'small' | 'base', n: number): Promise<FeatureCacheResult & { preset: string; train_samples: number }> {
  const data = join(workDir, 'data');
  await generateSynthetic({ out: data, n, seed: 1, imageSize: 224 });
  const r = await compareEpochs((featureCache) => resolveConfig({
    ...NO_EVAL, name: featureCache ? 'cached' : 'plain', out: join(workDir, 'runs'), seed: 1,
    model: { preset, freeze: { text: true, image: true } },
    data: { train: join(data, 'train.jsonl'), val: join(data, 'val.jsonl'), labels: ['mismatch', 'match'], cache: join(workDir, 'cache'), image: { resize: 'exact' } },
    train: { epochs: 3, batchSize: 16, lr: 1e-4, featureCache },
  }));
  return { ...r, preset, train_samples: readManifest(join(data, 'train.jsonl'), { checkFiles: false }).samples.length };
}

/**
 * Diagnostics overhead: mean step time (every step counted, diagnostics steps included) with diagnostics at their
 * default interval against diagnostics off, runs alternated to spread machine noise; evaluation off.
 */
export async function diagnosticsOverhead(workDir: string, steps = 200): Promise<{ step_s_on: number; step_s_off: number; overhead: number; every: number }> {
  const data = join(workDir, 'data');
  await generateSynthetic({ out: data, n: 1000, seed: 1, imageSize: DEMO_IMAGE_SIZE });
  const cfg = (enabled: boolean, i: number) => {
    const base = demoConfig(data, { out: join(workDir, 'runs') });
    return resolveConfig({ ...base, ...NO_EVAL, name: `diag-${enabled}-${i}`, data: { ...base.data, cache: join(workDir, 'cache') },
      train: { ...base.train, maxSteps: steps + 10 }, diagnostics: { enabled }, log: { ...NO_EVAL.log, report: false } });
  };
  const meanStep = async (enabled: boolean, i: number) => {
    const stamps: number[] = [];
    await train(cfg(enabled, i), { print: () => {}, callbacks: [{ onStepEnd: () => { stamps.push(performance.now()); } }] });
    return (stamps[stamps.length - 1]! - stamps[9]!) / (stamps.length - 10) / 1000;
  };
  await meanStep(false, 0); // fills the image cache
  const on: number[] = [];
  const off: number[] = [];
  for (let i = 1; i <= 2; i++) {
    off.push(await meanStep(false, i));
    on.push(await meanStep(true, i));
  }
  const a = Math.min(...on);
  const b = Math.min(...off);
  return { step_s_on: a, step_s_off: b, overhead: a / b - 1, every: resolveConfig({ data: { train: 'x' } }).diagnostics.every };
}
