// Modality contribution scores in the manner of OGM-GE (Peng et al., "Balanced Multimodal Learning via On-the-fly
// Gradient Modulation", CVPR 2022): s_u = sum_i softmax(logits_u)_i[y_i], with logits_u the head's share for modality
// u (FusionClassifier.unimodalLogits). A measurement: the modulation that acts on them lives in src/train/balance.ts.
import type { FusionClassifier } from '../models/fusion.js';
import * as F from '../tensor/functional.js';
import { noGrad } from '../tensor/modes.js';
import { tidy } from '../tensor/scope.js';
import type { Tensor } from '../tensor/tensor.js';

/** Summed probabilities of the true class under each modality's logits: s_text, s_image over n samples. */
export function modalityScores(model: FusionClassifier, textVector: Tensor, imageVector: Tensor, labels: Tensor): { text: number; image: number; n: number } {
  return noGrad(() => tidy(() => {
    const u = model.unimodalLogits(textVector.detach(), imageVector.detach());
    const y = labels.unsqueeze(1); // (B) -> (B, 1)
    const score = (logits: Tensor) => F.softmax(logits.float(), -1).gather(1, y).sum().item();
    return { text: score(u.text), image: score(u.image), n: labels.size(0) };
  }));
}
