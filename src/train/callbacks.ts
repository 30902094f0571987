// The trainer's contract with what plugs into it: callbacks (diagnostics, balancing, a user's own) see a TrainContext
// and StepInfo at fixed points of the loop; train() takes TrainOptions and returns a TrainResult.
import type { Tensor } from '../tensor/tensor.js';
import type { ForwardOptions, FusionOutputs } from '../models/fusion.js';
import type { TrainableModel } from '../models/trainable.js';
import type { Warning } from '../diagnostics/warnings.js';
import type { TrainerState } from './checkpoint.js';
import type { TrainConfig } from './config.js';
import type { EvalMetrics } from './metrics.js';
import type { AdamW } from './optim.js';

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
  /** the model trained: a FusionClassifier, or a pretraining model (`config.pretrain`) */
  model: TrainableModel;
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
  /** this process's data-parallel rank (0 when training alone): rank 0 writes the run's files */
  rank: number;
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
