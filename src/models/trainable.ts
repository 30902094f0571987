// What the trainer needs of a model, whatever it is (the fusion classifier, a pretraining objective): its parameters
// with their roles (learning-rate groups, depth for layer-wise decay, weight decay), and a way to save itself as a
// model directory. The trainer imports this, never a model's own class.
import { LayerNorm } from '../nn/index.js';
import type { Module } from '../nn/module.js';
import type { Tensor } from '../tensor/tensor.js';
import type { Tower } from './towers.js';

export interface ParameterRole {
  name: string;
  param: Tensor;
  /** learning-rate group: each encoder, the fusion block (with the image projection), the head (a classifier, an MLM or pixel decoder) */
  role: 'text_encoder' | 'image_encoder' | 'fusion' | 'classifier';
  /** position in its encoder, from the embeddings (0) to the output (count - 1); null outside the encoders */
  depth: { index: number; count: number } | null;
  weightDecay: boolean;
}

export interface TrainableModel extends Module {
  /** every trainable parameter with its role */
  parameterRoles(): ParameterRole[];
  /** writes config.json and model.safetensors (each atomically) into dir */
  save(dir: string): void;
}

/**
 * Whether weight decay applies to a parameter: not to biases, norms, nor ViT's class token, mask token and position
 * embeddings (timm's no_weight_decay).
 */
export function decayPredicate(model: Module): (name: string, p: Tensor) => boolean {
  const noDecay = new Set<Tensor>();
  for (const [, m] of model.namedModules()) if (m instanceof LayerNorm) for (const [, p] of m.namedParameters()) noDecay.add(p);
  return (name, p) => !(noDecay.has(p) || p.ndim < 2 || /(^|\.)(cls_token|distillation_token|mask_token|position_embeddings)$/.test(name));
}

/**
 * The roles of an encoder's trainable parameters, named `<prefix>.<key>`: BEiT/ELECTRA depths (embeddings 0, layer i
 * at i + 1, pooler and final norm at L + 1, of L + 2 depths).
 */
export function encoderRoles(prefix: string, enc: Tower, role: 'text_encoder' | 'image_encoder', decays: (name: string, p: Tensor) => boolean): ParameterRole[] {
  const { embeddings, layers } = enc.stages();
  const depth = new Map<Tensor, number>();
  for (const p of embeddings.parameters()) depth.set(p, 0);
  layers.forEach((l, i) => { for (const p of l.parameters()) depth.set(p, i + 1); });
  const L = layers.length;
  const out: ParameterRole[] = [];
  for (const [n, p] of enc.namedParameters()) {
    if (!p.requiresGrad) continue;
    out.push({ name: `${prefix}.${n}`, param: p, role, depth: { index: depth.get(p) ?? L + 1, count: L + 2 }, weightDecay: decays(n, p) });
  }
  return out;
}
