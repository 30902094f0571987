// Linear probes of one encoder on a labelled data set: does its own pooled vector (the mean of its states over real
// tokens, as the fusion model's probes and `mean` pooling read it) carry the labels? Used while pretraining (at the
// start, for the initialisation's baseline, and at each validation), by `mmtrain probe`, and by the finetune-regime
// study before and after fine-tuning (does fine-tuning keep what pretraining learned?).
import type { Batch } from '../data/collate.js';
import { disposeBatch } from '../data/collate.js';
import type { DataLoader } from '../data/loader.js';
import { maskedMean } from '../models/fusion.js';
import type { ImageTower, TextTower } from '../models/towers.js';
import { noGrad } from '../tensor/modes.js';
import { tidy } from '../tensor/scope.js';
import type { Tensor } from '../tensor/tensor.js';
import type { Callback, TrainContext } from '../train/callbacks.js';
import { linearProbeAccuracy } from './probe.js';

/** One batch to its (B, C) pooled vectors. */
export type EncodeFn = (b: Batch) => Tensor;

export function textVectors(tower: TextTower): EncodeFn {
  return (b) => maskedMean(tower.forward(b.inputIds, b.attentionMask, b.tokenTypeIds).lastHiddenState, b.attentionMask); // (B, T, C) -> (B, C)
}

export function imageVectors(tower: ImageTower): EncodeFn {
  return (b) => tower.forward(b.pixelValues).lastHiddenState.mean(1); // (B, N, C) -> (B, C)
}

/** A probe set held in memory: its batches (collated once) and its label count. */
export interface ProbeSet {
  name: string;
  /** which encoder it probes */
  modality: 'text' | 'image';
  batches: Batch[];
  numLabels: number;
}

/** Reads a loader's batches once into memory (probe sets are small). */
export async function collectBatches(loader: DataLoader): Promise<Batch[]> {
  const out: Batch[] = [];
  for await (const b of loader.epoch(0)) out.push(b);
  return out;
}

/** Two-fold linear-probe accuracy of the encoder's pooled vectors on a probe set (eval mode, no gradients). */
export function probeAccuracy(encode: EncodeFn, set: ProbeSet, module: { training: boolean; train(on?: boolean): unknown }): number | null {
  const was = module.training;
  module.train(false);
  try {
    const rows: Float32Array[] = [];
    const labels: number[] = [];
    let C = 0;
    for (const b of set.batches) {
      noGrad(() => tidy(() => {
        const v = encode(b).float().contiguous();
        C = v.size(1);
        rows.push(v.toFloat32Array());
        labels.push(...b.labels.toNumbers());
      }));
    }
    const x = new Float32Array(rows.reduce((a, r) => a + r.length, 0));
    let o = 0;
    for (const r of rows) { x.set(r, o); o += r.length; }
    return linearProbeAccuracy(x, C, labels, set.numLabels);
  } finally {
    module.train(was);
  }
}

export function disposeProbeSets(sets: ProbeSet[]): void {
  for (const s of sets) for (const b of s.batches) disposeBatch(b);
}

/**
 * Probes of the run's encoders (diagnostics.probeSets), as a callback: at the start (the initial or pretrained
 * encoder, or the resumed weights) and after each validation, one `event: "probe"` record per set:
 * {step, name, modality, accuracy, when}.
 */
export class EncoderProbes implements Callback {
  constructor(readonly sets: ProbeSet[], readonly encoders: Partial<Record<'text' | 'image', EncodeFn>>, readonly module: { training: boolean; train(on?: boolean): unknown }, readonly print: (line: string) => void) {}

  #run(ctx: TrainContext, when: string): void {
    for (const s of this.sets) {
      const encode = this.encoders[s.modality];
      if (!encode) continue;
      const accuracy = probeAccuracy(encode, s, this.module);
      ctx.log({ event: 'probe', step: ctx.state.step, name: s.name, modality: s.modality, accuracy, when });
      this.print(`probe ${s.modality} ${s.name} (${when}, step ${ctx.state.step}): linear-probe accuracy ${accuracy === null ? 'n/a' : `${(accuracy * 100).toFixed(1)}%`}`);
    }
  }

  onTrainStart(ctx: TrainContext): void {
    this.#run(ctx, ctx.state.step === 0 ? 'start' : 'resumed');
  }

  onEvaluate(ctx: TrainContext, split: string): void {
    if (split === 'val') this.#run(ctx, 'val');
  }
}
