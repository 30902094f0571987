// AdamW parameter groups from the model's own description of its parameters (TrainableModel.parameterRoles): a
// learning rate per role (encoders, fusion, head), optional layer-wise decay inside the encoders, and no weight decay
// where the model says so. Key names stay the model's business.
import { MmtrainError } from '../errors.js';
import type { TrainableModel } from '../models/trainable.js';
import type { TrainConfig } from './config.js';
import type { ParamGroup } from './optim.js';

/** Parameter groups: encoders vs fusion + head learning rates, optional layer-wise decay, no decay on biases and norms. */
export function parameterGroups(model: TrainableModel, c: TrainConfig): ParamGroup[] {
  const groups = new Map<string, ParamGroup>();
  for (const { param, role, depth, weightDecay } of model.parameterRoles()) {
    let lr = c.train.lr;
    if (role === 'text_encoder' || role === 'image_encoder') {
      lr = (role === 'text_encoder' ? c.train.textEncoderLr : c.train.imageEncoderLr) ?? c.train.encoderLr ?? c.train.lr;
      // layer-wise decay: the top of the encoder trains at decay x the encoder lr, each depth below one factor less
      if (c.train.layerDecay !== undefined && depth) lr *= Math.pow(c.train.layerDecay, depth.count - 1 - depth.index);
    }
    const key = `${role}/${lr}/${weightDecay ? 'decay' : 'no_decay'}`;
    let g = groups.get(key);
    if (!g) {
      // with layer-wise decay an encoder has one group per depth: the lr tells them apart in logs
      const depthTag = c.train.layerDecay !== undefined && depth ? `@${lr.toExponential(3)}` : '';
      g = { name: `${role}${weightDecay ? '' : ':no_decay'}${depthTag}`, params: [], lr, weightDecay: weightDecay ? c.train.weightDecay : 0 };
      groups.set(key, g);
    }
    g.params.push(param);
  }
  const out = [...groups.values()];
  if (!out.length) throw new MmtrainError('nothing to train: every parameter is frozen (model.freeze)');
  return out;
}
