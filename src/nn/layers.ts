// Building-block layers with PyTorch semantics and parameter names (weight, bias), so checkpoints map directly.
import { checkInt, checkNumber, invalid } from '../errors.js';
import * as F from '../tensor/functional.js';
import { Tensor, empty, ones, zeros } from '../tensor/tensor.js';
import { defaultLinearInit_, normal_ } from './init.js';
import { Module } from './module.js';

/** A module with a single-tensor forward (what Sequential chains). */
export interface UnaryModule extends Module {
  forward(x: Tensor): Tensor;
}

/** y = x W^T + b with weight (outFeatures, inFeatures). */
export class Linear extends Module implements UnaryModule {
  readonly weight: Tensor;
  readonly bias: Tensor | null;
  constructor(readonly inFeatures: number, readonly outFeatures: number, opts: { bias?: boolean } = {}) {
    super();
    checkInt('inFeatures', inFeatures, 1);
    checkInt('outFeatures', outFeatures, 1);
    this.weight = this.registerParameter('weight', empty([outFeatures, inFeatures]));
    this.bias = opts.bias === false ? null : this.registerParameter('bias', empty([outFeatures]));
    defaultLinearInit_(this.weight, this.bias);
  }
  forward(x: Tensor): Tensor {
    return F.linear(x, this.weight, this.bias);
  }
}

export class LayerNorm extends Module implements UnaryModule {
  readonly weight: Tensor | null;
  readonly bias: Tensor | null;
  readonly normalizedShape: number[];
  constructor(normalizedShape: number | number[], readonly eps = 1e-5, opts: { elementwiseAffine?: boolean } = {}) {
    super();
    this.normalizedShape = typeof normalizedShape === 'number' ? [normalizedShape] : normalizedShape;
    checkNumber('eps', eps, 0);
    const affine = opts.elementwiseAffine ?? true;
    this.weight = affine ? this.registerParameter('weight', ones(this.normalizedShape)) : null;
    this.bias = affine ? this.registerParameter('bias', zeros(this.normalizedShape)) : null;
  }
  forward(x: Tensor): Tensor {
    return F.layerNorm(x, this.normalizedShape, this.weight, this.bias, this.eps);
  }
}

export class Embedding extends Module {
  readonly weight: Tensor;
  constructor(readonly numEmbeddings: number, readonly embeddingDim: number, readonly paddingIdx: number | null = null) {
    super();
    checkInt('numEmbeddings', numEmbeddings, 1);
    checkInt('embeddingDim', embeddingDim, 1);
    if (paddingIdx !== null) checkInt('paddingIdx', paddingIdx, 0, numEmbeddings - 1);
    this.weight = this.registerParameter('weight', empty([numEmbeddings, embeddingDim]));
    normal_(this.weight, 0, 1);
  }
  forward(indices: Tensor): Tensor {
    return F.embedding(indices, this.weight, this.paddingIdx ?? -1);
  }
}

export class Dropout extends Module implements UnaryModule {
  constructor(readonly p = 0.5) {
    super();
    checkNumber('p', p, 0, 1);
  }
  forward(x: Tensor): Tensor {
    return this.training && this.p > 0 ? F.dropout(x, this.p, true) : x;
  }
}

export class ReLU extends Module implements UnaryModule {
  forward(x: Tensor): Tensor {
    return x.relu();
  }
}

export class GELU extends Module implements UnaryModule {
  constructor(readonly approximate: 'none' | 'tanh' = 'none') {
    super();
    if (approximate !== 'none' && approximate !== 'tanh') invalid('approximate', '"none" or "tanh"', approximate);
  }
  forward(x: Tensor): Tensor {
    return x.gelu(this.approximate);
  }
}

export class Conv2d extends Module implements UnaryModule {
  readonly weight: Tensor;
  readonly bias: Tensor | null;
  readonly opts: F.Conv2dOptions;
  constructor(
    readonly inChannels: number, readonly outChannels: number, kernelSize: number | [number, number],
    opts: F.Conv2dOptions & { bias?: boolean } = {},
  ) {
    super();
    const [kh, kw] = typeof kernelSize === 'number' ? [kernelSize, kernelSize] : kernelSize;
    const groups = opts.groups ?? 1;
    checkInt('inChannels', inChannels, 1);
    checkInt('outChannels', outChannels, 1);
    checkInt('kernelSize', kh, 1);
    checkInt('kernelSize', kw, 1);
    if (inChannels % groups || outChannels % groups) invalid('groups', `a divisor of inChannels (${inChannels}) and outChannels (${outChannels})`, groups);
    this.opts = { stride: opts.stride, padding: opts.padding, dilation: opts.dilation, groups };
    this.weight = this.registerParameter('weight', empty([outChannels, inChannels / groups, kh, kw]));
    this.bias = opts.bias === false ? null : this.registerParameter('bias', empty([outChannels]));
    defaultLinearInit_(this.weight, this.bias);
  }
  forward(x: Tensor): Tensor {
    return F.conv2d(x, this.weight, this.bias, this.opts);
  }
}

/** Children named "0", "1", ... as in torch.nn.Sequential, so keys read `classifier.0.weight`. */
export class Sequential extends Module implements UnaryModule {
  readonly layers: UnaryModule[];
  constructor(...layers: UnaryModule[]) {
    super();
    this.layers = layers.map((m, i) => this.registerModule(String(i), m));
  }
  forward(x: Tensor): Tensor {
    let h = x;
    for (const m of this.layers) h = m.forward(h);
    return h;
  }
}

/** A list of modules named "0", "1", ... (encoder layers: `encoder.layer.3.output.dense.weight`). */
export class ModuleList<M extends Module = Module> extends Module {
  readonly items: M[];
  constructor(items: M[]) {
    super();
    this.items = items.map((m, i) => this.registerModule(String(i), m));
  }
  get length(): number {
    return this.items.length;
  }
  at(i: number): M {
    const m = this.items[i];
    if (!m) invalid('index', `an integer in [0, ${this.items.length - 1}]`, i);
    return m;
  }
  [Symbol.iterator](): Iterator<M> {
    return this.items[Symbol.iterator]();
  }
}
