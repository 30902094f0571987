// The training loop: micro-batches accumulate gradients, ranks sum them, then one optimizer step with clipping and
// the scheduled learning rate; non-finite steps are skipped, and too many in a row roll back to the last checkpoint
// with the learning rate halved. Evaluation (best model, early stopping), checkpoints and interruption happen at
// step and epoch boundaries. Everything the loop reports goes through the callbacks and the run's log.
import { join } from 'node:path';
import { MmtrainError } from '../errors.js';
import type { DataLoader } from '../data/loader.js';
import { disposeBatch } from '../data/collate.js';
import type { ForwardOptions } from '../models/fusion.js';
import { autocast } from '../tensor/modes.js';
import type { Device } from '../tensor/dtype.js';
import { LossScaler } from './loss-scaler.js';
import { autocastFor } from './precision.js';
import { gpuMemoryText } from './progress.js';
import { cudaMemory } from '../tensor/device.js';
import { tidy } from '../tensor/scope.js';
import type { Tensor } from '../tensor/tensor.js';
import type { Callback, StepInfo, TrainContext } from './callbacks.js';
import { type InferenceInfo, type TrainerState, loadOptimizerState, pruneCheckpoints, readTrainerState, saveCheckpoint } from './checkpoint.js';
import type { TrainConfig } from './config.js';
import type { GradientReducer, ProcessGroup } from './distributed.js';
import { better, metricValue } from './evaluate.js';
import { type FeatureStore, disposeFeatureBatch } from './features.js';
import type { EvalMetrics } from './metrics.js';
import { type AdamW, type ParamGroup, clipGradNorm, scaleGradients } from './optim.js';
import type { ProgressReporter } from './progress.js';
import { rngFromString, rngToString } from './rng.js';
import { lrFactor } from './schedule.js';
import type { RunLoaders } from './setup.js';
import type { TaskLoss, TrainTask } from './task.js';
import { checkpointStateDict } from '../models/loading.js';

/** What the loop runs on, made by train(). */
export interface LoopParts {
  c: TrainConfig;
  /** what is trained: its model (ctx.model), loss and evaluation */
  task: TrainTask;
  ctx: TrainContext;
  callbacks: Callback[];
  groups: ParamGroup[];
  optimizer: AdamW;
  loaders: RunLoaders;
  info: InferenceInfo;
  pg: ProcessGroup | null;
  print: (line: string) => void;
  signal?: AbortSignal;
  /** the checkpoint the run resumed from */
  resumedFrom: string | null;
  /** where the model, its optimizer state and the batches are */
  device: Device;
}

export interface LoopEnd {
  lastVal: EvalMetrics | null;
  stoppedEarly: boolean;
  interrupted: boolean;
}

/** One step's batch, from the loader or from the frozen encoders' feature cache. */
interface StepBatch { loss(o: ForwardOptions, reduction: 'mean' | 'sum'): TaskLoss; labels: Tensor; attentionMask: Tensor; size: number; dispose(): void }

export class TrainingLoop {
  readonly #p: LoopParts;
  readonly #rank0: boolean;
  readonly #totalSteps: number;
  readonly #baseLrs: number[];
  readonly #names: Map<Tensor, string>;
  #cursor = 0;
  #lastGood: string | null;
  #consecutiveBad = 0;
  #lastVal: EvalMetrics | null = null;
  #lastValStep = 0;
  #stoppedEarly = false;
  #window = { loss: 0, n: 0, samples: 0, wait: 0, allreduce: 0, t: performance.now() };
  #features: FeatureStore | null = null;
  /** data-parallel with overlap: the c10d Reducer that averages gradients during the step's last backward */
  #reducer: GradientReducer | null = null;
  /** fp16: dynamic loss scaling (null otherwise) */
  #scaler: LossScaler | null = null;
  #progress: ProgressReporter | null = null;

  constructor(p: LoopParts) {
    this.#p = p;
    this.#rank0 = !p.pg || p.pg.rank === 0;
    const perEpoch = Math.ceil(p.loaders.train.length / p.c.train.gradAccumulation);
    this.#totalSteps = Math.min(p.c.train.maxSteps ?? Infinity, perEpoch * p.c.train.epochs);
    this.#baseLrs = p.groups.map((g) => g.lr!);
    this.#names = new Map(p.ctx.model.namedParameters().map(([n, t]) => [t, n] as [Tensor, string]));
    this.#lastGood = p.resumedFrom;
    if (p.c.train.precision === 'fp16') this.#scaler = new LossScaler(p.c.train.lossScale, p.ctx.state.lossScale);
  }

  get totalSteps(): number { return this.#totalSteps; }
  get #state(): TrainerState { return this.#p.ctx.state; }

  /** Restores weights, optimizer state, trainer state and the random stream from a checkpoint. */
  restore(ckpt: string): void {
    const { ctx } = this.#p;
    checkpointStateDict(ctx.model, ckpt, { strict: true });
    loadOptimizerState(ckpt, this.#p.optimizer, this.#names);
    ctx.state = readTrainerState(ckpt);
    rngFromString(ctx.state.rngState);
    if (this.#scaler) this.#scaler = new LossScaler(this.#p.c.train.lossScale, ctx.state.lossScale);
  }

  /** Trains to the end (or an interruption); `features` replaces the loader when the encoders are frozen. */
  async run(opts: { features: FeatureStore | null; progress: ProgressReporter }): Promise<LoopEnd> {
    const { c, pg } = this.#p;
    // Gradient modulation scales (and, for OGM-GE, perturbs) each rank's own gradients before they are summed, so
    // with it the gradients are synchronised after backward; otherwise while backward runs.
    // Encoders frozen until an epoch have no gradients before it, which the Reducer cannot wait for.
    if (pg && c.distributed.overlap && pg.canOverlap && c.balance.method === 'none' && c.model.freeze.untilEpoch === null) this.#reducer = pg.reducer(this.#p.groups.flatMap((g) => g.params), c.distributed.bucketMB);
    try {
      return await this.#run(opts);
    } finally {
      this.#reducer?.dispose();
      this.#reducer = null;
    }
  }

  async #run(opts: { features: FeatureStore | null; progress: ProgressReporter }): Promise<LoopEnd> {
    this.#features = opts.features;
    this.#progress = opts.progress;
    this.#window.t = performance.now();
    const { c, loaders } = this.#p;
    let interrupted = false;
    training: while (this.#state.step < this.#totalSteps && this.#state.epoch < c.train.epochs && !this.#stoppedEarly) {
      this.#p.task.trainMode(this.#state.epoch);
      const it = this.#stepBatches(this.#state.epoch, this.#state.position);
      let micro = { n: 0, loss: 0, lossSum: 0, samples: 0 };
      for (;;) {
        const w0 = performance.now();
        const next = await it.next();
        this.#window.wait += performance.now() - w0;
        if (next.done) break;
        // the step's last micro-batch: its backward synchronises the gradients (data-parallel with overlap)
        const last = micro.n + 1 >= c.train.gradAccumulation || this.#cursor >= loaders.train.length;
        const loss = this.#forwardBackward(next.value, last);
        micro = { n: micro.n + 1, loss: micro.loss + loss / c.train.gradAccumulation, lossSum: micro.lossSum + loss, samples: micro.samples + next.value.size };
        if (micro.n < c.train.gradAccumulation && this.#cursor < loaders.train.length) continue;
        const step = this.#optimizerStep(micro);
        micro = { n: 0, loss: 0, lossSum: 0, samples: 0 };
        if (this.#consecutiveBad >= c.train.maxNonFinite) {
          this.#rollBack();
          await it.return(undefined);
          continue training;
        }
        if (step.finite) await this.#afterStep(step.lrs, step.gradNorm);
        // data-parallel: the ranks agreed on it in the step's allreduce; alone: a Ctrl-C during the step, its
        // evaluation or its checkpoint
        if (this.#p.pg ? step.abortAll : this.#p.signal?.aborted) {
          interrupted = true;
          this.#lastGood = this.#save('interrupt');
          this.#p.print(`interrupted: saved ${this.#lastGood}; continue with --resume ${this.#p.ctx.runDir}`);
          await it.return(undefined);
          break training;
        }
        if (this.#state.step >= this.#totalSteps || this.#stoppedEarly) {
          await it.return(undefined);
          break;
        }
      }
      if (this.#state.position >= loaders.train.length) await this.#endEpoch();
    }
    if (!interrupted) {
      // a run that stopped mid-epoch (maxSteps) still ends with an evaluation
      if (loaders.val && (!this.#lastValStep || this.#lastValStep !== this.#state.step) && !this.#stoppedEarly) await this.#validate();
      this.#state.finished = true;
      this.#lastGood = this.#save('end');
    }
    return { lastVal: this.#lastVal, stoppedEarly: this.#stoppedEarly, interrupted };
  }

  /** Forward and backward of one micro-batch; returns its loss (summed over samples when data-parallel). */
  #forwardBackward(b: StepBatch, last: boolean): number {
    const { c, ctx, callbacks, pg } = this.#p;
    const sync = last ? this.#reducer : null;
    if (b.size === 0) {
      // data-parallel: this rank has no sample in the batch, but takes part in the step; with the reducer, through
      // a backward that adds nothing to any gradient
      if (sync) {
        tidy(() => {
          const nothing = this.#p.groups.flatMap((g) => g.params).map((p) => p.sum().mul(0)).reduce((a, t) => a.add(t));
          sync.backward([nothing], () => nothing.backward());
        });
      }
      return 0;
    }
    return tidy(() => {
      const fo: ForwardOptions = { modalityDropout: c.balance.modalityDropout };
      for (const cb of callbacks) {
        const o = cb.forwardOptions?.(ctx, { step: this.#state.step });
        if (o?.returnAttention) fo.returnAttention = true;
        if (o?.returnEncoderVectors) fo.returnEncoderVectors = true;
      }
      const l = autocast(autocastFor(c.train.precision, this.#p.device), () => {
        // data-parallel: summed here, divided by the step's global sample count when gradients are synchronized
        const r = b.loss(fo, pg ? 'sum' : 'mean');
        if (r.outputs) this.#emit('onForward', ctx, { step: this.#state.step, outputs: r.outputs, labels: b.labels, attentionMask: b.attentionMask });
        return r.loss;
      });
      const unscaled = pg ? l : l.div(c.train.gradAccumulation);
      const scaled = this.#scaler ? this.#scaler.scaleLoss(unscaled) : unscaled;
      if (sync) sync.backward([scaled], () => scaled.backward());
      else scaled.backward();
      const v = l.item();
      b.dispose();
      return v;
    });
  }

  /** Gradient sync, clipping, learning rates and the optimizer step (skipped when the loss or norm is not finite). */
  #optimizerStep(micro: { loss: number; lossSum: number; samples: number }): { finite: boolean; lrs: Record<string, number>; gradNorm: number; abortAll: boolean } {
    const { c, ctx, groups, optimizer, pg, signal } = this.#p;
    const state = this.#state;
    const params = groups.flatMap((g) => g.params);
    this.#emit('onBeforeGradSync', ctx, { step: state.step });
    let loss = micro.loss;
    let samples = micro.samples;
    let abortAll = false;
    if (pg) {
      // one small allreduce agrees on the step's loss, sample count and whether any rank was interrupted
      const [lossSum, n, aborts] = pg.allreduceSum([micro.lossSum, micro.samples, signal?.aborted ? 1 : 0]);
      const ar0 = performance.now();
      if (this.#reducer) {
        // the reducer left the mean over ranks of each rank's summed-loss gradients: x world / samples gives the
        // mean over the step's samples
        scaleGradients(params, n! > 0 ? pg.worldSize / n! : 0);
      } else {
        pg.allreduceGrads(params, n! > 0 ? 1 / n! : 0, c.distributed.bucketMB);
      }
      this.#window.allreduce += performance.now() - ar0;
      loss = n! > 0 ? lossSum! / n! : 0;
      samples = n!;
      abortAll = aborts! > 0;
    }
    // fp16: gradients back to their true size before anything reads them (clipping, diagnostics, the guard)
    this.#scaler?.unscale(params);
    this.#emit('onAfterBackward', ctx, { step: state.step });
    const gradNorm = clipGradNorm(params, c.train.clipGradNorm ?? Infinity); // null: measure the norm, never clip
    const finite = Number.isFinite(loss) && Number.isFinite(gradNorm);
    // an fp16 overflow (finite loss, inf/NaN gradients) is the loss scaler's business: the step is skipped and the
    // scale lowered, without counting toward the non-finite guard, which watches the loss itself
    const overflow = this.#scaler !== null && Number.isFinite(loss) && !Number.isFinite(gradNorm);
    if (this.#scaler) {
      const before = this.#scaler.scale;
      const scale = this.#scaler.update(overflow);
      state.lossScale = this.#scaler.state;
      if (scale !== before) ctx.log({ event: 'loss_scale', step: state.step, scale, overflow });
    }
    const lrs: Record<string, number> = {};
    if (finite) {
      const f = lrFactor(c.train.schedule, state.step, this.#totalSteps) * state.lrScale;
      groups.forEach((g, i) => {
        optimizer.setLr(i, this.#baseLrs[i]! * f);
        lrs[g.name!] = this.#baseLrs[i]! * f;
      });
      optimizer.step();
      this.#consecutiveBad = 0;
    } else if (!overflow) {
      state.nonFiniteSkipped++;
      this.#consecutiveBad++;
      ctx.log({ event: 'nonfinite', step: state.step, loss, grad_norm: gradNorm });
      this.#p.print(`step ${state.step}: non-finite ${Number.isFinite(loss) ? 'gradient norm' : 'loss'}, step skipped (${this.#consecutiveBad} in a row)`);
    }
    optimizer.zeroGrad();
    state.position = this.#cursor;
    if (finite) state.step++;
    this.#window.loss += finite ? loss : 0;
    this.#window.n += finite ? 1 : 0;
    this.#window.samples += samples;
    const info: StepInfo = {
      step: state.step, epoch: state.epoch, loss, gradNorm, lr: lrs,
      samplesPerS: samples / ((performance.now() - this.#window.t) / 1000 / Math.max(1, this.#window.n || 1)), dataWaitS: this.#window.wait / 1000, skipped: !finite,
    };
    this.#emit('onStepEnd', ctx, info);
    return { finite, lrs, gradNorm, abortAll };
  }

  /** K non-finite steps in a row: back to the last checkpoint with half the learning rate. */
  #rollBack(): void {
    const { c, ctx } = this.#p;
    if (!this.#lastGood) throw new MmtrainError(`${c.train.maxNonFinite} non-finite steps in a row before any checkpoint: lower train.lr or enable warmup (train.schedule.warmupSteps)`);
    const scale = this.#state.lrScale / 2;
    const skipped = this.#state.nonFiniteSkipped;
    this.restore(this.#lastGood);
    this.#state.lrScale = scale;
    this.#state.nonFiniteSkipped = skipped;
    this.#consecutiveBad = 0;
    ctx.log({ event: 'rollback', to: this.#lastGood, step: this.#state.step, lr_scale: scale });
    this.#p.print(`rolled back to ${this.#lastGood} (step ${this.#state.step}) with the learning rate halved (scale ${scale})`);
  }

  /** After a finite step: the log window, evaluation and checkpoints that fall on this step. */
  async #afterStep(lrs: Record<string, number>, gradNorm: number): Promise<void> {
    const { c, ctx, pg } = this.#p;
    const state = this.#state;
    const w = this.#window;
    if (state.step % c.log.every === 0) {
      const dt = (performance.now() - w.t) / 1000;
      const rec = {
        event: 'train', step: state.step, epoch: state.epoch, loss: w.loss / Math.max(1, w.n), lr: lrs, grad_norm: gradNorm, samples_per_s: w.samples / dt,
        data_wait_s: w.wait / 1000 / Math.max(1, w.n), ...(pg ? { allreduce_s: w.allreduce / 1000 / Math.max(1, w.n) } : {}),
      };
      ctx.log(rec);
      const dev = this.#p.device;
      const mem = dev.startsWith('cuda') ? cudaMemory(Number(dev.slice(5))) : null;
      const gpu = mem ? gpuMemoryText(mem) : undefined;
      this.#progress?.update(state.step, { epoch: state.epoch, loss: rec.loss, lr: Object.values(lrs)[0] ?? 0, samplesPerS: rec.samples_per_s, gpu });
      this.#window = { loss: 0, n: 0, samples: 0, wait: 0, allreduce: 0, t: performance.now() };
    }
    if (typeof c.eval.every === 'number' && state.step % c.eval.every === 0) {
      await this.#validate();
      this.#p.task.trainMode(state.epoch);
    }
    if (typeof c.checkpoint.every === 'number' && state.step % c.checkpoint.every === 0) this.#lastGood = this.#save('every');
  }

  async #endEpoch(): Promise<void> {
    const { c, ctx, loaders } = this.#p;
    this.#state.epoch++;
    this.#state.position = 0;
    loaders.cache?.flush();
    // bad samples left out while loading this epoch (data.onBadSample: "skip"): counted, the first one named
    const bad = loaders.train.skipped.splice(0);
    if (bad.length) {
      this.#p.print(`epoch ${this.#state.epoch}: left out ${bad.length} bad sample${bad.length === 1 ? '' : 's'} (data.onBadSample: "skip"); first: ${bad[0]!.where}: ${bad[0]!.message}`);
      ctx.log({ event: 'skipped_samples', step: this.#state.step, epoch: this.#state.epoch - 1, count: bad.length, first: `${bad[0]!.where}: ${bad[0]!.message}` });
    }
    this.#emit('onEpochEnd', ctx, this.#state.epoch - 1);
    if (c.eval.every === 'epoch') await this.#validate();
    if (c.checkpoint.every === 'epoch') this.#lastGood = this.#save('epoch');
  }

  /** Validation: the best model so far (saved to best/ when asked) and early stopping. */
  async #validate(): Promise<void> {
    const { c, ctx, loaders } = this.#p;
    if (!loaders.val) return;
    const state = this.#state;
    this.#lastVal = await this.evaluate('val', loaders.val);
    this.#lastValStep = state.step;
    const v = metricValue(this.#lastVal, c.eval.metric);
    const es = c.eval.earlyStopping;
    if (!state.best || better(c.eval.metric, v, state.best.value, es?.minDelta ?? 0)) {
      state.best = { metric: c.eval.metric, value: v, step: state.step };
      state.staleEvals = 0;
      if (c.checkpoint.saveBest) {
        this.#snapshot(join(ctx.runDir, 'best'));
        this.#p.pg?.barrier();
      }
    } else {
      state.staleEvals++;
      if (es && state.staleEvals >= es.patience) this.#stoppedEarly = true;
    }
  }

  async evaluate(split: 'val' | 'test', shard: { loader: DataLoader | null }): Promise<EvalMetrics> {
    const { c, ctx, pg, task } = this.#p;
    const m = await task.evaluate(shard.loader, {
      precision: c.train.precision, modality: c.diagnostics.enabled && c.diagnostics.probe, gather: pg ? (rows, w) => pg.gatherRows(rows, w) : undefined,
    });
    ctx.log({ event: 'eval', split, step: this.#state.step, epoch: this.#state.epoch, ...m });
    this.#emit('onEvaluate', ctx, split, m);
    this.#p.print(`${split} step ${this.#state.step}: ${task.describe(m)}`);
    return m;
  }

  /** A checkpoint of the current step in checkpoints/step-N, pruned to checkpoint.keepLast; every rank waits for it. */
  #save(reason: string): string {
    const { c, ctx, pg } = this.#p;
    const dir = join(ctx.runDir, 'checkpoints', `step-${String(this.#state.step).padStart(8, '0')}`);
    this.#snapshot(dir);
    if (this.#rank0) pruneCheckpoints(ctx.runDir, c.checkpoint.keepLast);
    ctx.log({ event: 'checkpoint', step: this.#state.step, reason, dir });
    pg?.barrier();
    return dir;
  }

  // rank 0 writes checkpoints; the others wait for it, so a rollback never reads a checkpoint being written
  #snapshot(dir: string): void {
    const { c, ctx, optimizer, info } = this.#p;
    this.#state.rngState = rngToString();
    if (this.#rank0) saveCheckpoint({ dir, model: ctx.model, optimizer, state: this.#state, trainConfig: c, info, tokenizerFile: c.data.tokenizer! });
  }

  async *#stepBatches(epoch: number, start: number): AsyncGenerator<StepBatch> {
    const { loaders, task } = this.#p;
    const features = this.#features;
    const train = loaders.train;
    if (features) {
      const plan = train.plan(epoch);
      for (let p = start; p < plan.length; p++) {
        const local = train.localSlice(plan[p]!);
        this.#cursor = p + 1;
        if (!local.length) { // data-parallel: this rank has no sample in this batch but still takes part in the step
          yield { loss: () => { throw new Error('empty batch'); }, labels: null as never, attentionMask: null as never, size: 0, dispose: () => {} };
          continue;
        }
        const fb = features.batch(local, this.#p.device);
        yield { loss: (o, r) => task.featureLoss!(fb, o, r), labels: fb.labels, attentionMask: fb.attentionMask, size: fb.indices.length, dispose: () => disposeFeatureBatch(fb) };
      }
      return;
    }
    for await (const b of train.epoch(epoch, start)) {
      this.#cursor = train.cursor.position;
      yield { loss: (o, r) => task.loss(b, o, { epoch, reduction: r }), labels: b.labels, attentionMask: b.attentionMask, size: b.indices.length, dispose: () => disposeBatch(b) };
    }
  }

  #emit<K extends keyof Callback>(k: K, ...args: Parameters<NonNullable<Callback[K]>>): void {
    for (const cb of this.#p.callbacks) (cb[k] as ((...a: unknown[]) => void) | undefined)?.call(cb, ...args);
  }
}
