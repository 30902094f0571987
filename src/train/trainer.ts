// train(config): one training run, composed from its parts. The process group (data-parallel), the run directory,
// data and model (src/train/setup.ts), parameter groups and AdamW, the callbacks (modality balance and diagnostics
// first, then the caller's), the loop (src/train/loop.ts), then the test pass, the run's warnings and result.json.
// The loop knows no model but through FusionClassifier's interface and no diagnostics but through callbacks; the
// report (report.html) is written by whoever runs the training (the CLI, a study).
import { basename } from 'node:path';
import { datasetSize, isStreamSet } from '../data/dataset.js';
import { MmtrainError } from '../errors.js';
import { Diagnostics } from '../diagnostics/diagnostics.js';
import { type Warning, analyzeRun } from '../diagnostics/warnings.js';
import { manualSeed, setNumThreads } from '../tensor/modes.js';
import { releaseFreeMemory } from '../tensor/scope.js';
import { resolveDevice, setAllowTF32 } from '../tensor/device.js';
import { GradientModulation } from './balance.js';
import type { Callback, TrainContext, TrainOptions, TrainResult } from './callbacks.js';
import { type TrainerState, listCheckpoints, recoverCheckpoints } from './checkpoint.js';
import type { TrainConfig } from './config.js';
import { ProcessGroup, distEnvFromProcess } from './distributed.js';
import { FeatureStore } from './features.js';
import { TrainingLoop } from './loop.js';
import type { EvalMetrics } from './metrics.js';
import { AdamW } from './optim.js';
import { parameterGroups } from './param-groups.js';
import { createProgress } from './progress.js';
import { readRecords } from './records.js';
import { RunLog, chooseRunDir, writeRunFile, writeRunStart } from './run-files.js';
import { augments, buildTask, checkTokenizerFits, imageFor, inferenceInfo, makeLoaders, readData, readProbeSets } from './setup.js';
import { FusionClassifier } from '../models/fusion.js';
import { EncoderProbes, type ProbeSet, disposeProbeSets, imageVectors, textVectors } from '../diagnostics/encoder-probe.js';
import { pretrainedVectors } from './pretrain-task.js';

let trainCalls = 0;

/** Trains a fusion classifier as configured; returns the run directory and results. */
export async function train(c: TrainConfig, opts: TrainOptions = {}): Promise<TrainResult> {
  const t0 = performance.now();
  if (c.train.threads) setNumThreads(c.train.threads);
  manualSeed(c.seed);

  // data-parallel: started by mmtrain launch, torchrun or Slurm (RANK / WORLD_SIZE ...)
  const denv = distEnvFromProcess();
  const pg = denv ? ProcessGroup.current ?? ProcessGroup.init(denv, c.distributed.timeoutS) : null;
  const rank0 = !pg || pg.rank === 0;
  let print: (line: string) => void = rank0 ? opts.print ?? console.log : () => {};

  // the run directory, chosen by rank 0
  if (opts.resume && rank0) for (const line of recoverCheckpoints(opts.resume)) print(`resume: ${line} (left by an interrupted save)`);
  pg?.barrier();
  const resumeFrom = opts.resume ? listCheckpoints(opts.resume).pop() ?? null : null;
  if (opts.resume && !resumeFrom) throw new MmtrainError(`${opts.resume}: no checkpoint to resume from (checkpoints/step-* with trainer_state.json)`);
  const choose = () => chooseRunDir(c, opts);
  const runDir = pg ? pg.share(`run_dir/${++trainCalls}`, choose) : choose();

  // data, then the model (its head needs the label count), then the image preprocessing (the model's image size)
  const data = await readData(c, print);
  for (const d of [data.train, data.val, data.test]) {
    if (d?.skipped.length) print(`${d.file}: left out ${d.skipped.length} bad record${d.skipped.length === 1 ? '' : 's'} (data.onBadSample: "skip"); first: ${d.skipped[0]!.where}: ${d.skipped[0]!.message}`);
  }
  const device = resolveDevice(c.train.device, 'train.device');
  if (c.train.precision === 'fp16' && device === 'cpu') {
    throw new MmtrainError(`train.precision: fp16 needs a GPU (fp16 autocast with loss scaling), but train.device ${c.train.device} is the CPU here; use bf16 on the CPU`);
  }
  if (device !== 'cpu') setAllowTF32(c.train.tf32);
  const { task, imageSize } = buildTask(c, data);
  const model = task.model.to(device); // before the optimizer: its state lives beside the weights
  const classifier = model instanceof FusionClassifier ? model : null;
  let optimizer: AdamW | null = null;
  let probeSets: ProbeSet[] = [];
  try {
    if (classifier) checkTokenizerFits(classifier, data.tokenizer);
    // frozen for the whole run: out of the optimizer; frozen until an epoch: in it, and the task freezes per epoch
    if (classifier && c.model.freeze.untilEpoch === null) {
      if (c.model.freeze.text !== false) classifier.freeze('text', c.model.freeze.text === true ? {} : { layers: c.model.freeze.text });
      if (c.model.freeze.image !== false) classifier.freeze('image', c.model.freeze.image === true ? {} : { layers: c.model.freeze.image });
    }
    if (pg) pg.broadcast(model.parameters(), 0, c.distributed.bucketMB); // every rank starts from rank 0's weights
    const image = imageFor(c, { imageSize });
    const loaders = makeLoaders(c, data, image, runDir, pg, device);
    const groups = parameterGroups(model, c);
    optimizer = new AdamW(groups, { betas: c.train.betas, eps: c.train.eps });
    probeSets = c.diagnostics.enabled && rank0 ? await readProbeSets(c, data, image, device) : [];

    const log = rank0 ? new RunLog(runDir, c.log.tensorboard) : null;
    const warned: Warning[] = [];
    const state: TrainerState = { step: 0, epoch: 0, position: 0, lrScale: 1, best: null, nonFiniteSkipped: 0, staleEvals: 0, rngState: '', finished: false };
    const ctx: TrainContext = {
      config: c, model, optimizer, runDir, labels: data.labels, state,
      rank: pg?.rank ?? 0,
      worldSize: pg?.worldSize ?? 1,
      allreduceSum: (values) => (pg ? pg.allreduceSum(values) : values),
      log: (r) => log?.append(r), // logs, metrics and events are rank 0's
      warn: (w) => {
        warned.push(w);
        print(`warning: ${w.message}`);
      },
    };
    // balancing and diagnostics hang off the callback interface like the caller's callbacks, and run first
    // (modulation first: diagnostics then see the gradients the optimizer gets, as clipping does)
    const callbacks: Callback[] = [
      ...(c.balance.method !== 'none' ? [new GradientModulation(c.balance)] : []),
      ...(c.diagnostics.enabled ? [new Diagnostics(c.diagnostics)] : []),
      ...(probeSets.length ? [new EncoderProbes(probeSets, classifier ? { text: textVectors(classifier.text_encoder), image: imageVectors(classifier.image_encoder) } : { [c.pretrain!.modality]: pretrainedVectors(model) }, model, (l) => print(l))] : []),
      ...(opts.callbacks ?? []),
    ];
    const loop = new TrainingLoop({
      c, task, ctx, callbacks, groups, optimizer, loaders, info: inferenceInfo(c, data.labels, image), pg,
      print: (s) => print(s), signal: opts.signal, resumedFrom: resumeFrom, device,
    });
    if (resumeFrom) {
      loop.restore(resumeFrom);
      print(`resuming ${runDir} from ${resumeFrom} (step ${ctx.state.step}, epoch ${ctx.state.epoch}, batch ${ctx.state.position})`);
      if (rank0) log!.truncateAfter(ctx.state.step);
      const was = ctx.state.dataOrder;
      if (was !== undefined && was !== loaders.train.orderDigest && ctx.state.position > 0) {
        const w: Warning = {
          kind: 'data-changed', step: ctx.state.step, evidence: { checkpoint: resumeFrom, was, now: loaders.train.orderDigest, epoch: ctx.state.epoch, position: ctx.state.position },
          message: `the training data or its order settings changed since ${basename(resumeFrom)} (its samples or files, their counts, data.seed, batch size, shuffling, ranks or data.stream settings): the rest of epoch ${ctx.state.epoch} (from batch ${ctx.state.position}) follows the new order, not the batches the interrupted run would have had, so this epoch may see some samples twice and others not at all; later epochs are whole`,
        };
        ctx.warn(w);
        ctx.log({ event: 'warning', step: w.step, kind: w.kind, message: w.message });
      }
    } else if (rank0) {
      writeRunStart(runDir, c, data.labels);
    }
    // later checkpoints record this run's data order (a rollback restores one of them)
    ctx.state.dataOrder = loaders.train.orderDigest;
    for (const cb of callbacks) cb.onTrainStart?.(ctx);

    // fully frozen encoders without augmentation: their outputs are computed once, epochs train fusion + head only
    let features: FeatureStore | null = null;
    const frozen = classifier !== null && c.model.freeze.untilEpoch === null && c.model.freeze.text === true && c.model.freeze.image === true && !augments(c);
    if (c.train.featureCache && frozen && isStreamSet(data.train)) print('frozen encoders: their outputs are not cached for streamed data (Parquet, WebDataset); every epoch runs them');
    if (c.train.featureCache && frozen && !isStreamSet(data.train)) {
      const ft0 = performance.now();
      features = await FeatureStore.build(classifier!, loaders.trainInOrder());
      print(`frozen encoders: cached their outputs for ${datasetSize(data.train)} samples (${(features.bytes / 2 ** 20).toFixed(0)} MiB) in ${((performance.now() - ft0) / 1000).toFixed(1)} s; epochs train fusion + head only`);
    }
    const progress = createProgress(rank0 ? c.log.progress : 'none', loop.totalSteps, ctx.state.step, print, c.log.every);
    print = progress.line; // from here the loop's lines go through the progress reporter
    const end = await loop.run({ features, progress });

    loaders.cache?.flush();
    // The heap kept for the training steps' activations is of no use to the test pass: hand it back.
    releaseFreeMemory();
    let test: EvalMetrics | null = null;
    if (loaders.test && !end.interrupted) {
      test = await loop.evaluate('test', loaders.test);
      if (rank0) writeRunFile(runDir, 'test_metrics.json', test);
    }
    // warnings from the whole record (spikes were printed as they happened)
    const warnings = rank0 ? analyzeRun(readRecords(log!.file), c) : [];
    for (const w of warnings) if (w.kind !== 'loss-spike') print(`warning: ${w.message}`);
    if (rank0) writeRunFile(runDir, 'warnings.json', warnings);
    for (const w of warnings) if (w.kind !== 'loss-spike') ctx.log({ event: 'warning', step: w.step ?? ctx.state.step, kind: w.kind, message: w.message });
    const result: TrainResult = {
      runDir, rank: pg?.rank ?? 0, steps: ctx.state.step, epochs: ctx.state.epoch, best: ctx.state.best, finalVal: end.lastVal, test,
      nonFiniteSkipped: ctx.state.nonFiniteSkipped, stoppedEarly: end.stoppedEarly, interrupted: end.interrupted, wallS: (performance.now() - t0) / 1000, warnings,
    };
    progress.stop();
    // result.json marks a run that ran to its end (a study skips such runs when resumed)
    if (!end.interrupted && rank0) writeRunFile(runDir, 'result.json', { ...result, warnings: warnings.length });
    for (const cb of callbacks) cb.onTrainEnd?.(ctx, result);
    return result;
  } finally {
    disposeProbeSets(probeSets);
    optimizer?.dispose();
    model.dispose();
  }
}
