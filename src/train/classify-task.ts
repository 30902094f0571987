// The fusion classifier as a training task: cross-entropy against the batch's labels, evaluation with the
// classification metrics (and the modality diagnostics), encoders frozen as configured (for the whole run, or
// until model.freeze.untilEpoch).
import type { FusionClassifier } from '../models/fusion.js';
import * as F from '../tensor/functional.js';
import type { Tensor } from '../tensor/tensor.js';
import type { TrainConfig } from './config.js';
import { evaluateLoader } from './evaluate.js';
import type { TaskLoss, TrainTask } from './task.js';

export function classificationTask(c: TrainConfig, model: FusionClassifier): TrainTask {
  const ce = (logits: Tensor, labels: Tensor, reduction: 'mean' | 'sum') =>
    F.crossEntropy(logits.float(), labels, { labelSmoothing: c.train.labelSmoothing, reduction });
  const frozen = c.model.freeze;
  /** whether an encoder's freezing holds in this epoch (a run-long freeze, or one until untilEpoch) */
  const holds = (epoch: number) => frozen.untilEpoch === null || epoch < frozen.untilEpoch;
  let applied: boolean | null = null;
  return {
    kind: 'classify',
    model,
    loss(b, o, at): TaskLoss {
      const out = model.forward(b, o);
      return { loss: ce(out.logits, b.labels, at.reduction), outputs: out };
    },
    featureLoss(b, o, reduction): TaskLoss {
      const out = model.forwardFeatures(b, o);
      return { loss: ce(out.logits, b.labels, reduction), outputs: out };
    },
    trainMode(epoch) {
      // freezing until an epoch: the parameters stay in the optimizer's groups, without gradients (AdamW skips them)
      const on = holds(epoch);
      if (frozen.untilEpoch !== null && on !== applied) {
        for (const side of ['text', 'image'] as const) {
          const f = frozen[side];
          if (f === false) continue;
          if (on) model.freeze(side, f === true ? {} : { layers: f });
          else model.unfreeze(side);
        }
        applied = on;
      }
      model.train();
      // fully frozen encoders run in eval mode (no dropout)
      if (on && frozen.text === true) model.text_encoder.eval();
      if (on && frozen.image === true) model.image_encoder.eval();
    },
    evaluate: (loader, opts) => evaluateLoader(model, loader, opts),
    describe: (m) => `loss ${m.loss.toFixed(4)} accuracy ${(m.accuracy * 100).toFixed(2)}% macro-F1 ${m.macro_f1.toFixed(4)}${m.auroc === null ? '' : ` AUROC ${m.auroc.toFixed(4)}`}`,
  };
}
