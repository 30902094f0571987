// What the training loop trains, as one interface: the model, the loss of a batch, the evaluation and how an
// evaluation reads. The fusion classifier (classify-task.ts) is one task; pretraining an encoder (masked language
// or image modelling, pretrain-task.ts) is another. The loop knows tasks only through this.
import type { Batch } from '../data/collate.js';
import type { DataLoader } from '../data/loader.js';
import type { ForwardOptions, FusionOutputs } from '../models/fusion.js';
import type { TrainableModel } from '../models/trainable.js';
import type { Tensor } from '../tensor/tensor.js';
import type { EvalOptions } from './evaluate.js';
import type { FeatureBatch } from './features.js';
import type { EvalMetrics } from './metrics.js';

export interface TaskLoss {
  /** the batch's loss: its mean over samples, or its sum ("sum": data-parallel, divided by the step's global count) */
  loss: Tensor;
  /** what the callbacks' onForward sees (a fusion model's outputs); null for a task without them */
  outputs: FusionOutputs | null;
}

export interface TrainTask {
  /** "classify", "mlm" or "mim": names the run's kind in logs */
  readonly kind: string;
  readonly model: TrainableModel;
  /** the loss of one training micro-batch of `epoch` */
  loss(b: Batch, o: ForwardOptions, at: { epoch: number; reduction: 'mean' | 'sum' }): TaskLoss;
  /** the loss of a batch of cached encoder outputs (frozen encoders); only a task that caches features has it */
  featureLoss?(b: FeatureBatch, o: ForwardOptions, reduction: 'mean' | 'sum'): TaskLoss;
  /** the model's mode (and, for a classifier, which encoders train) at the start of an epoch's steps */
  trainMode(epoch: number): void;
  evaluate(loader: DataLoader | null, opts: EvalOptions): Promise<EvalMetrics>;
  /** one line of an evaluation's numbers, as printed */
  describe(m: EvalMetrics): string;
}
