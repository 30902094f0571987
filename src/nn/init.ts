// Parameter initialisers with PyTorch's formulas (torch.nn.init), applied in place under no-grad.
import { noGrad } from '../tensor/modes.js';
import type { Tensor } from '../tensor/tensor.js';

function fans(t: Tensor): [number, number] {
  const s = t.shape;
  if (s.length < 2) return [s[0] ?? 1, s[0] ?? 1];
  const receptive = s.slice(2).reduce((a, b) => a * b, 1);
  return [s[1]! * receptive, s[0]! * receptive];
}

export function uniform_(t: Tensor, a: number, b: number): Tensor {
  return noGrad(() => t.uniform_(a, b));
}
export function normal_(t: Tensor, mean = 0, std = 1): Tensor {
  return noGrad(() => t.normal_(mean, std));
}
export function zeros_(t: Tensor): Tensor {
  return noGrad(() => t.zero_());
}
export function ones_(t: Tensor): Tensor {
  return noGrad(() => t.fill_(1));
}
/** Glorot uniform: U(-a, a) with a = gain * sqrt(6 / (fan_in + fan_out)). */
export function xavierUniform_(t: Tensor, gain = 1): Tensor {
  const [fanIn, fanOut] = fans(t);
  const a = gain * Math.sqrt(6 / (fanIn + fanOut));
  return uniform_(t, -a, a);
}
/** He uniform with leaky-ReLU slope a: bound = sqrt(6 / ((1 + a^2) fan_in)); a = sqrt(5) gives 1/sqrt(fan_in). */
export function kaimingUniform_(t: Tensor, a = Math.sqrt(5)): Tensor {
  const [fanIn] = fans(t);
  const bound = Math.sqrt(6 / ((1 + a * a) * fanIn));
  return uniform_(t, -bound, bound);
}
/** torch.nn.Linear / Conv2d default: kaiming_uniform(a=sqrt(5)) weight, U(±1/sqrt(fan_in)) bias. */
export function defaultLinearInit_(weight: Tensor, bias: Tensor | null): void {
  kaimingUniform_(weight);
  if (bias) {
    const [fanIn] = fans(weight);
    const bound = fanIn > 0 ? 1 / Math.sqrt(fanIn) : 0;
    uniform_(bias, -bound, bound);
  }
}
