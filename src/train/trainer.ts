// The trainer: AdamW with parameter groups, a per-step schedule, gradient accumulation and clipping, bf16 autocast,
// evaluation with best-checkpoint selection and early stopping, atomic checkpoints with exact resume, a non-finite
// guard with rollback, and a run directory with metrics.jsonl. It knows nothing of BERT or ViT beyond the fusion
// model's parameter roles; diagnostics hang off callbacks.
import { appendFileSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { MmtrainError } from '../errors.js';
import { DataLoader, disposeBatch } from '../data/loader.js';
import { ImageCache } from '../data/cache.js';
import { imageConfig } from '../data/image.js';
import { readManifest, type Manifest } from '../data/manifest.js';
import { TextTokenizer } from '../data/tokenizer.js';
import { FUSION_PRESETS, FusionClassifier, createFusionModel } from '../models/fusion.js';
import { VIT_PRESETS, type ViTConfig, vitConfig } from '../models/vit.js';
import { LayerNorm } from '../nn/layers.js';
import * as F from '../tensor/functional.js';
import { autocast, getRngState, manualSeed, noGrad, setNumThreads, setRngState } from '../tensor/modes.js';
import { releaseFreeMemory, tidy } from '../tensor/scope.js';
import { Tensor, tensor } from '../tensor/tensor.js';
import {
  type InferenceInfo, type TrainerState, listCheckpoints, loadOptimizerState, pruneCheckpoints, readTrainerState, recoverCheckpoints, saveCheckpoint,
} from './checkpoint.js';
import type { TrainConfig } from './config.js';
import { type EvalMetrics, computeMetrics } from './metrics.js';
import { AdamW, clipGradNorm, type ParamGroup } from './optim.js';
import { FeatureStore, disposeFeatureBatch } from './features.js';
import { lrFactor } from './schedule.js';
import { createProgress } from './progress.js';
import { checkpointStateDict, readConfigJson } from '../models/loading.js';
import { TensorBoardWriter } from '../diagnostics/tensorboard.js';
import { Diagnostics } from '../diagnostics/diagnostics.js';
import { GradientModulation, modalityScores } from '../diagnostics/modality.js';
import { linearProbeAccuracy } from '../diagnostics/probe.js';
import { type Warning, analyzeRun } from '../diagnostics/warnings.js';
import { readRecords, truncateRecordsAfter } from './records.js';
import { ProcessGroup, distEnvFromProcess } from './distributed.js';
import type { ForwardOptions, FusionOutputs } from '../models/fusion.js';

export interface StepInfo {
  step: number;
  epoch: number;
  loss: number;
  /** global gradient norm before clipping */
  gradNorm: number;
  lr: Record<string, number>;
  samplesPerS: number;
  dataWaitS: number;
  skipped: boolean;
}

export interface TrainContext {
  config: TrainConfig;
  model: FusionClassifier;
  optimizer: AdamW;
  runDir: string;
  labels: string[];
  state: TrainerState;
  /** append a record to metrics.jsonl (and TensorBoard when on) */
  log(record: Record<string, unknown>): void;
  /** report trouble: printed at once, logged as a "warning" event */
  warn(w: Warning): void;
  /** this process's rank and the number of data-parallel processes (0 and 1 when training alone) */
  rank: number;
  worldSize: number;
  /** sums numbers over every rank (the numbers themselves when training alone) */
  allreduceSum(values: number[]): number[];
}

export interface Callback {
  onTrainStart?(ctx: TrainContext): void;
  /** options for the forward pass of optimizer step `step` (e.g. return attention weights on diagnostics steps) */
  forwardOptions?(ctx: TrainContext, info: { step: number }): ForwardOptions | undefined;
  /** after each training forward pass (every micro-batch), inside its tensor scope */
  onForward?(ctx: TrainContext, info: { step: number; outputs: FusionOutputs; labels: Tensor; attentionMask: Tensor }): void;
  /** after backward, before gradients are synchronized across ranks (data-parallel): this rank's own gradients */
  onBeforeGradSync?(ctx: TrainContext, info: { step: number }): void;
  /** after backward (and the cross-rank gradient sum), before clipping and the optimizer step */
  onAfterBackward?(ctx: TrainContext, info: { step: number }): void;
  onStepEnd?(ctx: TrainContext, info: StepInfo): void;
  onEvaluate?(ctx: TrainContext, split: string, metrics: EvalMetrics): void;
  onEpochEnd?(ctx: TrainContext, epoch: number): void;
  onTrainEnd?(ctx: TrainContext, result: TrainResult): void;
}

export interface TrainOptions {
  callbacks?: Callback[];
  /** continue the run in this directory from its newest checkpoint */
  resume?: string;
  /** write the run here (must not hold a run yet) instead of a fresh out/name directory */
  runDir?: string;
  /** aborting stops after the current step with a checkpoint (Ctrl-C) */
  signal?: AbortSignal;
  /** console output */
  print?: (line: string) => void;
}

export interface TrainResult {
  runDir: string;
  steps: number;
  epochs: number;
  best: TrainerState['best'];
  finalVal: EvalMetrics | null;
  test: EvalMetrics | null;
  nonFiniteSkipped: number;
  stoppedEarly: boolean;
  interrupted: boolean;
  wallS: number;
  warnings: Warning[];
}


const NO_DECAY = /(^|\.)(bias|LayerNorm\.weight|layernorm_before\.weight|layernorm_after\.weight|layernorm\.weight|norm\.weight|text_norm\.weight|image_norm\.weight|cls_token|position_embeddings)$/;

/** Parameter groups: encoders vs fusion + head learning rates, optional layer-wise decay, no decay on biases and norms. */
export function parameterGroups(model: FusionClassifier, c: TrainConfig): ParamGroup[] {
  const groups = new Map<string, ParamGroup>();
  const noDecay = new Set<Tensor>();
  for (const [, m] of model.namedModules()) if (m instanceof LayerNorm) for (const [, p] of m.namedParameters()) noDecay.add(p);
  const add = (name: string, p: Tensor, role: string, lr: number) => {
    if (!p.requiresGrad) return;
    const decay = !(noDecay.has(p) || NO_DECAY.test(name) || p.ndim < 2);
    const key = `${role}/${lr}/${decay ? 'decay' : 'no_decay'}`;
    let g = groups.get(key);
    if (!g) {
      // with layer-wise decay an encoder has one group per depth: the lr tells them apart in logs
      const depthTag = c.train.layerDecay !== undefined && role.endsWith('_encoder') ? `@${lr.toExponential(3)}` : '';
      g = { name: `${role}${decay ? '' : ':no_decay'}${depthTag}`, params: [], lr, weightDecay: decay ? c.train.weightDecay : 0 };
      groups.set(key, g);
    }
    g.params.push(p);
  };
  for (const [prefix, enc] of [['text_encoder', model.text_encoder], ['image_encoder', model.image_encoder]] as const) {
    const encLr = (prefix === 'text_encoder' ? c.train.textEncoderLr : c.train.imageEncoderLr) ?? c.train.encoderLr ?? c.train.lr;
    const L = enc.encoder.layer.length;
    for (const [n, p] of enc.namedParameters()) {
      let lr = encLr;
      if (c.train.layerDecay !== undefined) {
        const m = /^encoder\.layer\.(\d+)\./.exec(n);
        // BEiT/ELECTRA convention: embeddings depth 0, layer i depth i + 1, pooler and final norm L + 1;
        // scale = decay^(L + 1 - depth), so the top layer trains at decay x the encoder lr
        const depth = m ? Number(m[1]) + 1 : n.startsWith('embeddings.') ? 0 : L + 1;
        lr = encLr * Math.pow(c.train.layerDecay, L + 1 - depth);
      }
      add(`${prefix}.${n}`, p, prefix, lr);
    }
  }
  for (const [n, p] of model.namedParameters()) {
    if (n.startsWith('text_encoder.') || n.startsWith('image_encoder.')) continue;
    add(n, p, n.startsWith('classifier.') ? 'classifier' : 'fusion', c.train.lr);
  }
  const out = [...groups.values()];
  if (!out.length) throw new MmtrainError('nothing to train: every parameter is frozen (model.freeze)');
  return out;
}

/** The numeric fields of a metrics record as TensorBoard tags: train/loss, lr/<group>, val/accuracy, ... */
function tensorboardScalars(r: Record<string, unknown>): Record<string, number> {
  const out: Record<string, number> = {};
  const prefix = r.event === 'eval' ? String(r.split) : String(r.event);
  for (const [k, v] of Object.entries(r)) {
    if (k === 'step' || k === 'epoch' || k === 'n') continue;
    if (typeof v === 'number') out[`${prefix}/${k}`] = v;
    else if (v && typeof v === 'object' && !Array.isArray(v)) {
      // nested records (lr per group, grad_norm per module): lr/<group> from train records, <event>/<key>/<sub> otherwise
      const base = k === 'lr' ? (r.event === 'train' ? 'lr' : null) : `${prefix}/${k}`;
      if (base) for (const [g, x] of Object.entries(v)) if (typeof x === 'number') out[`${base}/${g}`] = x;
    }
  }
  return out;
}

function uniqueRunDir(out: string, name: string): string {
  let dir = join(out, name);
  for (let i = 2; existsSync(dir); i++) dir = join(out, `${name}-${i}`);
  return dir;
}

function rngToString(): string {
  const t = getRngState();
  try {
    return Buffer.from(t.toBuffer()).toString('base64');
  } finally {
    t.dispose();
  }
}

function rngFromString(s: string): void {
  const bytes = Buffer.from(s, 'base64');
  const t = tensor(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.length), { dtype: 'uint8' });
  try {
    setRngState(t);
  } finally {
    t.dispose();
  }
}

/** Loads data, tokenizer and image settings for a configuration. */
export function prepareData(c: TrainConfig, imageSize: number) {
  const train = readManifest(c.data.train, { labels: c.data.labels, onBadSample: c.data.onBadSample });
  const labels = train.labels;
  const read = (p?: string): Manifest | null => (p ? readManifest(p, { labels, onBadSample: c.data.onBadSample }) : null);
  const val = read(c.data.val);
  const test = read(c.data.test);
  const tokenizer = /\.txt$/i.test(c.data.tokenizer!) ? TextTokenizer.fromVocab(c.data.tokenizer!, { doLowerCase: c.data.doLowerCase }) : TextTokenizer.fromFile(c.data.tokenizer!);
  const img = imageConfig({ ...c.data.image, size: c.data.image.size ?? imageSize, augment: c.data.image.augment });
  return { train, val, test, labels, tokenizer, image: img };
}

export interface EvalOptions {
  precision?: TrainConfig['train']['precision'];
  /** also measure modality contribution scores and unimodal linear-probe accuracy */
  modality?: boolean;
  /** data-parallel evaluation: each rank evaluated its shard; this joins rows of every rank (rank order) */
  gather?: (rows: Float64Array, width: number) => Float64Array;
}

/** Evaluates a model on a loader: loss and metrics over every sample (and modality diagnostics when asked). */
export async function evaluateLoader(model: FusionClassifier, loader: DataLoader | null, opts: EvalOptions = {}): Promise<EvalMetrics> {
  model.eval();
  const labels: number[] = [];
  const probs: number[][] = [];
  let lossSum = 0;
  const modality = opts.modality ?? false;
  const scores = { text: 0, image: 0 };
  const vecs: { text: Float32Array[]; image: Float32Array[]; Ct: number; Ci: number } = { text: [], image: [], Ct: 0, Ci: 0 };
  for await (const b of loader?.epoch(0) ?? []) {
    noGrad(() => tidy(() => {
      const out = autocast({ enabled: opts.precision === 'bf16' }, () => model.forward(b, { returnEncoderVectors: modality }));
      const logits = out.logits.float();
      lossSum += F.crossEntropy(logits, b.labels, { reduction: 'sum' }).item();
      const p = F.softmax(logits, -1).toNumbers();
      const k = logits.size(1);
      for (let i = 0; i < b.indices.length; i++) probs.push(p.slice(i * k, (i + 1) * k));
      labels.push(...b.labels.toNumbers());
      if (modality) {
        const s = modalityScores(model, out.textVector.float(), out.imageVector.float(), b.labels);
        scores.text += s.text;
        scores.image += s.image;
        const ev = out.encoderVectors!;
        vecs.Ct = ev.text.size(1);
        vecs.Ci = ev.image.size(1);
        vecs.text.push(ev.text.float().contiguous().toFloat32Array());
        vecs.image.push(ev.image.float().contiguous().toFloat32Array());
      }
      disposeBatch(b);
    }));
  }
  const join = (parts: Float32Array[]) => {
    const outArr = new Float32Array(parts.reduce((a, x) => a + x.length, 0));
    let o = 0;
    for (const x of parts) { outArr.set(x, o); o += x.length; }
    return outArr;
  };
  let text = join(vecs.text);
  let image = join(vecs.image);
  const g = opts.gather;
  if (g) {
    // every rank's predictions, losses, scores and probe features, in rank order
    const k = g(new Float64Array([probs[0]?.length ?? 0]), 1).reduce((a, b) => Math.max(a, b), 0);
    const rows = g(Float64Array.from(labels.flatMap((y, i) => [y, ...probs[i]!])), k + 1);
    labels.length = 0;
    probs.length = 0;
    for (let r = 0; r < rows.length; r += k + 1) {
      labels.push(rows[r]!);
      probs.push(Array.from(rows.subarray(r + 1, r + 1 + k)));
    }
    const sums = g(new Float64Array([lossSum, scores.text, scores.image]), 3);
    lossSum = 0;
    scores.text = 0;
    scores.image = 0;
    for (let r = 0; r < sums.length; r += 3) { lossSum += sums[r]!; scores.text += sums[r + 1]!; scores.image += sums[r + 2]!; }
    if (modality) {
      const widths = g(new Float64Array([vecs.Ct, vecs.Ci]), 2);
      vecs.Ct = Math.max(...widths.filter((_, i) => i % 2 === 0));
      vecs.Ci = Math.max(...widths.filter((_, i) => i % 2 === 1));
      text = Float32Array.from(g(Float64Array.from(text), vecs.Ct));
      image = Float32Array.from(g(Float64Array.from(image), vecs.Ci));
    }
  }
  const m = computeMetrics(labels, probs, lossSum);
  if (!modality || !labels.length) return m;
  const k = probs[0]!.length;
  return {
    ...m,
    score_text: scores.text / labels.length,
    score_image: scores.image / labels.length,
    probe_text_accuracy: linearProbeAccuracy(text, vecs.Ct, labels, k),
    probe_image_accuracy: linearProbeAccuracy(image, vecs.Ci, labels, k),
  };
}

function metricValue(m: EvalMetrics, metric: TrainConfig['eval']['metric']): number {
  const v = metric === 'loss' ? m.loss : metric === 'auroc' ? m.auroc ?? NaN : m[metric];
  return v;
}

function better(metric: string, a: number, b: number, minDelta: number): boolean {
  return metric === 'loss' ? a < b - minDelta : a > b + minDelta;
}

/** Trains a fusion classifier as configured; returns the run directory and results. */
export async function train(config: TrainConfig, opts: TrainOptions = {}): Promise<TrainResult> {
  const c = config;
  const t0 = performance.now();
  if (c.train.threads) setNumThreads(c.train.threads);
  manualSeed(c.seed);

  // ---- data-parallel: started by mmtrain launch, torchrun or Slurm (RANK / WORLD_SIZE ...) ----
  const denv = distEnvFromProcess();
  const pg = denv ? ProcessGroup.current ?? ProcessGroup.init(denv, c.distributed.timeoutS) : null;
  const rank0 = !pg || pg.rank === 0;
  const print = rank0 ? opts.print ?? console.log : () => {};

  // ---- run directory (chosen by rank 0) ----
  if (opts.resume && rank0) for (const line of recoverCheckpoints(opts.resume)) print(`resume: ${line} (left by an interrupted save)`);
  pg?.barrier();
  const resumeFrom = opts.resume ? listCheckpoints(opts.resume).pop() : undefined;
  if (opts.resume && !resumeFrom) throw new MmtrainError(`${opts.resume}: no checkpoint to resume from (checkpoints/step-* with trainer_state.json)`);
  if (rank0 && opts.runDir && !opts.resume && existsSync(join(opts.runDir, 'config.json'))) {
    throw new MmtrainError(`${opts.runDir} already holds a run; continue it with resume, or choose another directory`);
  }
  const choose = () => {
    const dir = opts.resume ?? opts.runDir ?? uniqueRunDir(c.out, c.name);
    mkdirSync(join(dir, 'checkpoints'), { recursive: true });
    return dir;
  };
  const runDir = pg ? pg.share(`run_dir/${++trainCalls}`, choose) : choose();

  // ---- data, then the model (its head needs the label count the manifest gives) ----
  const data = prepareData(c, imageSizeOf(c));
  const { model } = createFusionModel({
    preset: c.model.preset, text: c.model.text, image: c.model.image, fusion_type: c.model.fusion_type, pooling: c.model.pooling,
    fusion_num_heads: c.model.fusion_num_heads, fusion_attention_dropout: c.model.fusion_attention_dropout,
    head_hidden_size: c.model.head_hidden_size, head_dropout: c.model.head_dropout, num_labels: data.labels.length,
  });
  try {
    return await runTraining(c, model, data, runDir, resumeFrom, opts, print, t0, pg);
  } finally {
    model.dispose();
  }
}

let trainCalls = 0;

/** The image side the model expects: data.image.size, else the image encoder's image_size (preset, overrides or config.json). */
function imageSizeOf(c: TrainConfig): number {
  if (c.data.image.size) return c.data.image.size;
  const img = c.model.image;
  if (img?.pretrained) return vitConfig(readConfigJson(img.pretrained) as Partial<ViTConfig>, `${img.pretrained}/config.json`).image_size;
  const preset = img?.preset ?? FUSION_PRESETS[c.model.preset]!.image;
  return vitConfig({ ...VIT_PRESETS[preset], ...(img?.config as Partial<ViTConfig>) }, 'model.image').image_size;
}

async function runTraining(
  c: TrainConfig, model: FusionClassifier, data: ReturnType<typeof prepareData>, runDir: string, resumeFrom: string | undefined,
  opts: TrainOptions, print: (s: string) => void, t0: number, pg: ProcessGroup | null,
): Promise<TrainResult> {
  const rank0 = !pg || pg.rank === 0;
  // (print is rebound to the progress reporter once the loop starts)
  if (c.model.freeze.text !== false) model.freeze('text', c.model.freeze.text === true ? {} : { layers: c.model.freeze.text });
  if (c.model.freeze.image !== false) model.freeze('image', c.model.freeze.image === true ? {} : { layers: c.model.freeze.image });
  // every rank starts from rank 0's weights
  if (pg) pg.broadcast(model.parameters(), 0, c.distributed.bucketMB);
  const groups = parameterGroups(model, c);
  const optimizer = new AdamW(groups, { betas: c.train.betas, eps: c.train.eps });
  const baseLrs = groups.map((g) => g.lr!);
  const names = new Map(model.namedParameters().map(([n, p]) => [p, n] as [Tensor, string]));

  const augment = Boolean(c.data.image.augment.randomResizedCrop || c.data.image.augment.horizontalFlip > 0 || c.data.image.augment.colorJitter);
  // each rank keeps its own image cache folder: no two processes write the same file
  const cacheDir = c.data.cache === false ? null : c.data.cache === true ? join(runDir, 'cache') : c.data.cache;
  const cache = cacheDir === null ? null : new ImageCache(pg ? join(cacheDir, `rank-${pg.rank}`) : cacheDir, data.image);
  const loaderOpts = { maxLength: c.data.maxLength, padding: c.data.padding, prefetch: c.data.prefetch, decodeThread: c.data.decodeThread, onBadSample: c.data.onBadSample, cache } as const;
  const trainLoader = new DataLoader(data.train.samples, data.tokenizer, data.image, {
    ...loaderOpts, batchSize: c.train.batchSize, seed: c.seed, shuffle: true, bucketByLength: c.data.bucketByLength, augment, cache: augment ? null : cache,
    shard: pg ? { rank: pg.rank, worldSize: pg.worldSize } : null,
  });
  // evaluation: rank r takes samples r, r + world, ...; results are gathered on every rank
  const evalLoader = (m: Manifest | null) => {
    if (!m) return null;
    const samples = pg ? m.samples.filter((_, i) => i % pg.worldSize === pg.rank) : m.samples;
    return { loader: samples.length ? new DataLoader(samples, data.tokenizer, data.image, { ...loaderOpts, batchSize: c.eval.batchSize, shuffle: false }) : null };
  };
  const valLoader = evalLoader(data.val);
  const testLoader = evalLoader(data.test);

  const perEpoch = Math.ceil(trainLoader.length / c.train.gradAccumulation);
  const totalSteps = Math.min(c.train.maxSteps ?? Infinity, perEpoch * c.train.epochs);
  const info: InferenceInfo = {
    labels: data.labels, maxLength: c.data.maxLength, doLowerCase: c.data.doLowerCase, tokenizer: /\.txt$/i.test(c.data.tokenizer!) ? 'vocab.txt' : 'tokenizer.json',
    image: { size: data.image.size, resize: data.image.resize, mean: data.image.mean, std: data.image.std, maxPixels: data.image.maxPixels },
  };

  let state: TrainerState = {
    step: 0, epoch: 0, position: 0, lrScale: 1, best: null, nonFiniteSkipped: 0, staleEvals: 0, rngState: '', finished: false,
  };
  const restore = (ckpt: string) => {
    checkpointStateDict(model, ckpt, { strict: true });
    loadOptimizerState(ckpt, optimizer, names);
    state = readTrainerState(ckpt);
    rngFromString(state.rngState);
  };
  if (resumeFrom) {
    restore(resumeFrom);
    print(`resuming ${runDir} from ${resumeFrom} (step ${state.step}, epoch ${state.epoch}, batch ${state.position})`);
  } else if (rank0) {
    writeFileSync(join(runDir, 'config.json'), `${JSON.stringify(c, null, 2)}\n`);
    writeFileSync(join(runDir, 'labels.json'), `${JSON.stringify(data.labels)}\n`);
  }

  const metricsFile = join(runDir, 'metrics.jsonl');
  // steps after the checkpoint are redone: their old records go, so the log has each step once
  if (resumeFrom && rank0) truncateRecordsAfter(metricsFile, state.step);
  const tb = c.log.tensorboard && rank0 ? new TensorBoardWriter(join(runDir, 'tensorboard')) : null;
  const warned: Warning[] = [];
  const ctx: TrainContext = {
    config: c, model, optimizer, runDir, labels: data.labels, state,
    rank: pg?.rank ?? 0,
    worldSize: pg?.worldSize ?? 1,
    allreduceSum: (values) => (pg ? pg.allreduceSum(values) : values),
    log: (r) => {
      if (!rank0) return; // logs, metrics and events are rank 0's
      appendFileSync(metricsFile, `${JSON.stringify({ time: new Date().toISOString(), ...r })}\n`);
      if (tb && typeof r.step === 'number') tb.scalars(r.step, tensorboardScalars(r));
    },
    warn: (w) => {
      warned.push(w);
      print(`warning: ${w.message}`);
    },
  };
  // diagnostics and balancing hang off the same callback interface as the user's callbacks, and run first
  // (modulation first: diagnostics then see the gradients the optimizer gets, as clipping does)
  const callbacks: Callback[] = [
    ...(c.balance.method !== 'none' ? [new GradientModulation(c.balance)] : []),
    ...(c.diagnostics.enabled ? [new Diagnostics(c.diagnostics)] : []),
    ...(opts.callbacks ?? []),
  ];
  const wantsOutputs = callbacks.some((cb) => cb.onForward);
  const emit = <K extends keyof Callback>(k: K, ...args: Parameters<NonNullable<Callback[K]>>) => {
    for (const cb of callbacks) (cb[k] as ((...a: unknown[]) => void) | undefined)?.call(cb, ...args);
  };
  emit('onTrainStart', ctx);

  // rank 0 writes checkpoints; the others wait for it, so a rollback never reads a checkpoint being written
  const snapshot = (dir: string) => {
    state.rngState = rngToString();
    ctx.state = state;
    if (rank0) saveCheckpoint({ dir, model, optimizer, state, trainConfig: c, info, tokenizerFile: c.data.tokenizer! });
  };
  const save = (reason: string) => {
    const dir = join(runDir, 'checkpoints', `step-${String(state.step).padStart(8, '0')}`);
    snapshot(dir);
    if (rank0) pruneCheckpoints(runDir, c.checkpoint.keepLast);
    ctx.log({ event: 'checkpoint', step: state.step, reason, dir });
    pg?.barrier();
    return dir;
  };

  const evaluate = async (split: 'val' | 'test', shard: { loader: DataLoader | null }): Promise<EvalMetrics> => {
    const m = await evaluateLoader(model, shard.loader, {
      precision: c.train.precision, modality: c.diagnostics.enabled && c.diagnostics.probe, gather: pg ? (rows, w) => pg.gatherRows(rows, w) : undefined,
    });
    ctx.log({ event: 'eval', split, step: state.step, epoch: state.epoch, ...m });
    emit('onEvaluate', ctx, split, m);
    print(`${split} step ${state.step}: loss ${m.loss.toFixed(4)} accuracy ${(m.accuracy * 100).toFixed(2)}% macro-F1 ${m.macro_f1.toFixed(4)}${m.auroc === null ? '' : ` AUROC ${m.auroc.toFixed(4)}`}`);
    return m;
  };

  let lastVal: EvalMetrics | null = null;
  let stoppedEarly = false;
  let interrupted = false;
  let lastValStep = 0;
  const onVal = async () => {
    if (!valLoader) return;
    lastVal = await evaluate('val', valLoader);
    lastValStep = state.step;
    const v = metricValue(lastVal, c.eval.metric);
    const es = c.eval.earlyStopping;
    if (!state.best || better(c.eval.metric, v, state.best.value, es?.minDelta ?? 0)) {
      state.best = { metric: c.eval.metric, value: v, step: state.step };
      state.staleEvals = 0;
      if (c.checkpoint.saveBest) {
        snapshot(join(runDir, 'best'));
        pg?.barrier();
      }
    } else {
      state.staleEvals++;
      if (es && state.staleEvals >= es.patience) stoppedEarly = true;
    }
  };

  // Fully frozen encoders run in eval mode (no dropout); with augmentation off their outputs are computed once.
  const frozenText = c.model.freeze.text === true;
  const frozenImage = c.model.freeze.image === true;
  const trainMode = () => {
    model.train();
    if (frozenText) model.text_encoder.eval();
    if (frozenImage) model.image_encoder.eval();
  };
  let features: FeatureStore | null = null;
  if (c.train.featureCache && frozenText && frozenImage && !augment) {
    const ft0 = performance.now();
    const all = new DataLoader(data.train.samples, data.tokenizer, data.image, { ...loaderOpts, batchSize: c.eval.batchSize, shuffle: false });
    features = await FeatureStore.build(model, all);
    print(`frozen encoders: cached their outputs for ${data.train.samples.length} samples (${(features.bytes / 2 ** 20).toFixed(0)} MiB) in ${((performance.now() - ft0) / 1000).toFixed(1)} s; epochs train fusion + head only`);
  }
  let cursorPos = state.position;
  interface StepBatch { forward(o: ForwardOptions): FusionOutputs; labels: Tensor; attentionMask: Tensor; size: number; dispose(): void }
  async function* stepBatches(epoch: number, start: number): AsyncGenerator<StepBatch> {
    if (features) {
      const plan = trainLoader.plan(epoch);
      for (let p = start; p < plan.length; p++) {
        const local = trainLoader.localSlice(plan[p]!);
        cursorPos = p + 1;
        if (!local.length) { // data-parallel: this rank has no sample in this batch but still takes part in the step
          yield { forward: () => { throw new Error('empty batch'); }, labels: null as never, attentionMask: null as never, size: 0, dispose: () => {} };
          continue;
        }
        const fb = features.batch(local);
        yield { forward: (o) => model.forwardFeatures(fb, o), labels: fb.labels, attentionMask: fb.attentionMask, size: fb.indices.length, dispose: () => disposeFeatureBatch(fb) };
      }
      return;
    }
    for await (const b of trainLoader.epoch(epoch, start)) {
      cursorPos = trainLoader.cursor.position;
      yield { forward: (o) => model.forward(b, o), labels: b.labels, attentionMask: b.attentionMask, size: b.indices.length, dispose: () => disposeBatch(b) };
    }
  }

  const progress = createProgress(rank0 ? c.log.progress : 'none', totalSteps, state.step, print, c.log.every);
  print = progress.line;

  // ---- the loop ----
  let consecutiveBad = 0;
  let lastGood: string | null = resumeFrom ?? null;
  let window = { loss: 0, n: 0, samples: 0, wait: 0, allreduce: 0, t: performance.now() };
  const accum = c.train.gradAccumulation;
  training: while (state.step < totalSteps && state.epoch < c.train.epochs && !stoppedEarly) {
    trainMode();
    const it = stepBatches(state.epoch, state.position);
    let micro = 0;
    let stepLoss = 0;
    let stepSamples = 0;
    let stepLossSum = 0; // data-parallel: this rank's summed sample losses of the step
    for (;;) {
      const w0 = performance.now();
      const next = await it.next();
      window.wait += performance.now() - w0;
      if (next.done) break;
      const b = next.value;
      const loss = b.size === 0 ? 0 : tidy(() => {
        const fo: ForwardOptions = { modalityDropout: c.balance.modalityDropout };
        for (const cb of callbacks) {
          const o = cb.forwardOptions?.(ctx, { step: state.step });
          if (o?.returnAttention) fo.returnAttention = true;
          if (o?.returnEncoderVectors) fo.returnEncoderVectors = true;
        }
        const l = autocast({ enabled: c.train.precision === 'bf16' }, () => {
          const out = b.forward(fo);
          if (wantsOutputs) emit('onForward', ctx, { step: state.step, outputs: out, labels: b.labels, attentionMask: b.attentionMask });
          // data-parallel: summed here, divided by the step's global sample count when gradients are synchronized
          return F.crossEntropy(out.logits.float(), b.labels, { labelSmoothing: c.train.labelSmoothing, reduction: pg ? 'sum' : 'mean' });
        });
        (pg ? l : l.div(accum)).backward();
        const v = l.item();
        b.dispose();
        return v;
      });
      micro++;
      if (pg) stepLossSum += loss;
      else stepLoss += loss / accum;
      stepSamples += b.size;
      const lastOfEpoch = cursorPos >= trainLoader.length;
      if (micro < accum && !lastOfEpoch) continue;
      // one optimizer step
      const params = groups.flatMap((g) => g.params);
      emit('onBeforeGradSync', ctx, { step: state.step });
      let abortAll = false;
      if (pg) {
        // one small allreduce agrees on the step's loss, sample count and whether any rank was interrupted
        const [lossSum, n, aborts] = pg.allreduceSum([stepLossSum, stepSamples, opts.signal?.aborted ? 1 : 0]);
        const ar0 = performance.now();
        pg.allreduceGrads(params, n! > 0 ? 1 / n! : 0, c.distributed.bucketMB);
        window.allreduce += performance.now() - ar0;
        stepLoss = n! > 0 ? lossSum! / n! : 0;
        stepSamples = n!;
        abortAll = aborts! > 0;
      }
      emit('onAfterBackward', ctx, { step: state.step });
      const gradNorm = clipGradNorm(params, c.train.clipGradNorm ?? Infinity); // null: measure the norm, never clip
      const finite = Number.isFinite(stepLoss) && Number.isFinite(gradNorm);
      const lrs: Record<string, number> = {};
      if (finite) {
        const f = lrFactor(c.train.schedule, state.step, totalSteps) * state.lrScale;
        groups.forEach((g, i) => {
          const lr = baseLrs[i]! * f;
          optimizer.setLr(i, lr);
          lrs[g.name!] = lr;
        });
        optimizer.step();
        consecutiveBad = 0;
      } else {
        state.nonFiniteSkipped++;
        consecutiveBad++;
        ctx.log({ event: 'nonfinite', step: state.step, loss: stepLoss, grad_norm: gradNorm });
        print(`step ${state.step}: non-finite ${Number.isFinite(stepLoss) ? 'gradient norm' : 'loss'}, step skipped (${consecutiveBad} in a row)`);
      }
      optimizer.zeroGrad();
      state.position = cursorPos;
      if (finite) state.step++;
      window.loss += finite ? stepLoss : 0;
      window.n += finite ? 1 : 0;
      window.samples += stepSamples;
      const info: StepInfo = {
        step: state.step, epoch: state.epoch, loss: stepLoss, gradNorm, lr: lrs,
        samplesPerS: stepSamples / ((performance.now() - window.t) / 1000 / Math.max(1, window.n || 1)), dataWaitS: window.wait / 1000, skipped: !finite,
      };
      emit('onStepEnd', ctx, info);
      micro = 0;
      stepLoss = 0;
      stepSamples = 0;
      stepLossSum = 0;

      if (consecutiveBad >= c.train.maxNonFinite) {
        if (!lastGood) throw new MmtrainError(`${c.train.maxNonFinite} non-finite steps in a row before any checkpoint: lower train.lr or enable warmup (train.schedule.warmupSteps)`);
        state.lrScale /= 2;
        const scale = state.lrScale;
        const skipped = state.nonFiniteSkipped;
        restore(lastGood);
        state.lrScale = scale;
        state.nonFiniteSkipped = skipped;
        consecutiveBad = 0;
        ctx.log({ event: 'rollback', to: lastGood, step: state.step, lr_scale: scale });
        print(`rolled back to ${lastGood} (step ${state.step}) with the learning rate halved (scale ${scale})`);
        await it.return(undefined);
        continue training;
      }
      if (finite && state.step % c.log.every === 0) {
        const dt = (performance.now() - window.t) / 1000;
        const rec = { event: 'train', step: state.step, epoch: state.epoch, loss: window.loss / Math.max(1, window.n), lr: lrs, grad_norm: gradNorm, samples_per_s: window.samples / dt, data_wait_s: window.wait / 1000 / Math.max(1, window.n),
          ...(pg ? { allreduce_s: window.allreduce / 1000 / Math.max(1, window.n) } : {}) };
        ctx.log(rec);
        progress.update(state.step, { epoch: state.epoch, loss: rec.loss, lr: Object.values(lrs)[0] ?? 0, samplesPerS: rec.samples_per_s });
        window = { loss: 0, n: 0, samples: 0, wait: 0, allreduce: 0, t: performance.now() };
      }
      if (typeof c.eval.every === 'number' && finite && state.step % c.eval.every === 0) {
        await onVal();
        trainMode();
      }
      if (typeof c.checkpoint.every === 'number' && finite && state.step % c.checkpoint.every === 0) lastGood = save('every');
      if (pg ? abortAll : opts.signal?.aborted) {
        interrupted = true;
        lastGood = save('interrupt');
        print(`interrupted: saved ${lastGood}; continue with --resume ${runDir}`);
        await it.return(undefined);
        break training;
      }
      if (state.step >= totalSteps || stoppedEarly) {
        await it.return(undefined);
        break;
      }
    }
    if (state.position >= trainLoader.length) {
      state.epoch++;
      state.position = 0;
      cache?.flush();
      emit('onEpochEnd', ctx, state.epoch - 1);
      if (c.eval.every === 'epoch') await onVal();
      if (c.checkpoint.every === 'epoch') lastGood = save('epoch');
    }
  }
  if (!interrupted) {
    // a run that stopped mid-epoch (maxSteps) still ends with an evaluation
    if (valLoader && (!lastValStep || lastValStep !== state.step) && !stoppedEarly) await onVal();
    state.finished = true;
    save('end');
  }
  cache?.flush();
  // The heap kept for the training steps' activations is of no use to the test pass and the report: hand it back.
  releaseFreeMemory();
  let test: EvalMetrics | null = null;
  if (testLoader && !interrupted) {
    test = await evaluate('test', testLoader);
    if (rank0) writeFileSync(join(runDir, 'test_metrics.json'), `${JSON.stringify(test, null, 2)}\n`);
  }
  // warnings from the whole record (spikes were printed as they happened)
  const warnings = rank0 ? analyzeRun(readRecords(metricsFile), c) : [];
  for (const w of warnings) if (w.kind !== 'loss-spike') print(`warning: ${w.message}`);
  if (rank0) writeFileSync(join(runDir, 'warnings.json'), `${JSON.stringify(warnings, null, 2)}\n`);
  for (const w of warnings) if (w.kind !== 'loss-spike') ctx.log({ event: 'warning', step: w.step ?? state.step, kind: w.kind, message: w.message });
  const result: TrainResult = {
    runDir, steps: state.step, epochs: state.epoch, best: state.best, finalVal: lastVal, test, nonFiniteSkipped: state.nonFiniteSkipped,
    stoppedEarly, interrupted, wallS: (performance.now() - t0) / 1000, warnings,
  };
  progress.stop();
  // result.json marks a run that ran to its end (a study skips such runs when resumed)
  if (!interrupted && rank0) writeFileSync(join(runDir, 'result.json'), `${JSON.stringify({ ...result, warnings: warnings.length }, null, 2)}\n`);
  if (c.log.report && rank0) {
    // a report is a convenience: failing to write one never fails the training
    try {
      const { writeRunReport } = await import('../diagnostics/report.js');
      await writeRunReport(runDir);
    } catch (e) {
      print(`warning: report.html was not written: ${(e as Error).message}`);
    }
  }
  emit('onTrainEnd', ctx, result);
  optimizer.dispose();
  return result;
}

