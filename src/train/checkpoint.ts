// Checkpoints: model, optimizer moments, schedule step, RNG state, loader cursor and config, written into a
// temporary directory, fsynced, then renamed into place, so a crash or a failing disk never leaves a half-written
// checkpoint where a loader would look. A checkpoint is also a model directory (`mmtrain eval/predict --checkpoint`).
import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { collectGarbage } from '../heap.js';
import type { LossScalerState } from './loss-scaler.js';
import { MmtrainError } from '../errors.js';
import { fsyncDirectory, makeFolder, writeFileAtomic, writeJsonAtomic } from '../files.js';
import type { TrainableModel } from '../models/trainable.js';
import { loadSafetensors, saveSafetensors } from '../tensor/safetensors.js';
import { tidy } from '../tensor/scope.js';
import { type Tensor, tensor } from '../tensor/tensor.js';
import type { AdamW } from './optim.js';

export interface TrainerState {
  /** optimizer steps done */
  step: number;
  epoch: number;
  /** batches of `epoch` already consumed */
  position: number;
  /** multiplier on every group's lr after non-finite rollbacks */
  lrScale: number;
  best: { metric: string; value: number; step: number } | null;
  nonFiniteSkipped: number;
  /** evaluations without improvement (early stopping) */
  staleEvals: number;
  /** base64 of LibTorch's CPU generator state */
  rngState: string;
  finished: boolean;
  /** fp16 runs: the loss scaler's scale and good-step count */
  lossScale?: LossScalerState;
  /** the training loader's order digest (DataLoader.orderDigest; absent in checkpoints written before it) */
  dataOrder?: string;
}

/** What eval/predict need besides the weights: labels and preprocessing. */
export interface InferenceInfo {
  labels: string[];
  maxLength: number;
  doLowerCase: boolean;
  /** resample: absent in checkpoints written before bicubic existed (bilinear) */
  image: { size: number; resize: 'shorter-side' | 'exact'; resizeSize?: number; resample?: 'bilinear' | 'bicubic'; mean: [number, number, number]; std: [number, number, number]; maxPixels: number };
  /** file name of the tokenizer inside the checkpoint */
  tokenizer: string;
  /** how the run batched texts and the precision it evaluated in, so that eval and predict reproduce its test pass
   * (absent in checkpoints written before: longest, fp32) */
  padding?: 'longest' | 'max_length';
  precision?: 'fp32' | 'bf16' | 'fp16';
}

/** Optimizer moments by parameter name: `<name>.exp_avg`, `<name>.exp_avg_sq`, `<name>.step`. */
function optimizerTensors(opt: AdamW, names: Map<Tensor, string>): Map<string, Tensor> {
  const out = new Map<string, Tensor>();
  opt.groups.forEach((g, gi) => g.params.forEach((p, pi) => {
    const st = opt.getState(gi, pi);
    if (!st) return;
    const n = names.get(p)!;
    out.set(`${n}.exp_avg`, st.expAvg);
    out.set(`${n}.exp_avg_sq`, st.expAvgSq);
    out.set(`${n}.step`, tensorOfStep(st.step));
    st.maxExpAvgSq?.dispose();
  }));
  return out;
}

function tensorOfStep(step: number): Tensor {
  return tensor([step], { dtype: 'int64' });
}

export interface SaveCheckpointArgs {
  dir: string;
  model: TrainableModel;
  optimizer: AdamW;
  state: TrainerState;
  trainConfig: unknown;
  info: InferenceInfo;
  tokenizerFile: string;
}

/** Writes a checkpoint directory atomically (temporary directory, fsync, rename). */
export function saveCheckpoint(a: SaveCheckpointArgs): void {
  const parent = dirname(a.dir);
  makeFolder(parent);
  const tmp = join(parent, `.tmp-${basename(a.dir)}-${process.pid}`);
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp);
  try {
    // A non-finite model is never saved.
    const bad = tidy(() => a.model.namedParameters().find(([, p]) => !p.isfinite().all().item()));
    if (bad) throw new MmtrainError(`refusing to save a checkpoint: parameter ${bad[0]} holds NaN or Inf`);
    a.model.save(tmp);
    const names = new Map(a.model.namedParameters().map(([n, p]) => [p, n] as [Tensor, string]));
    tidy(() => saveSafetensors(join(tmp, 'optimizer.safetensors'), optimizerTensors(a.optimizer, names)));
    writeJsonAtomic(join(tmp, 'trainer_state.json'), a.state);
    writeJsonAtomic(join(tmp, 'train_config.json'), a.trainConfig);
    writeJsonAtomic(join(tmp, 'mmtrain.json'), a.info);
    // a copy, fsynced like the rest: copyFileSync alone leaves the data in the page cache
    writeFileAtomic(join(tmp, a.info.tokenizer), readFileSync(a.tokenizerFile));
    fsyncDirectory(tmp);
    const old = existsSync(a.dir) ? `${a.dir}.old-${process.pid}` : null;
    if (old) renameSync(a.dir, old);
    renameSync(tmp, a.dir);
    fsyncDirectory(parent);
    if (old) rmSync(old, { recursive: true, force: true });
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    if (e instanceof MmtrainError && /^refusing to save/.test(e.message)) throw e;
    throw new MmtrainError(`${a.dir}: cannot write the checkpoint (${(e as Error).message}); the previous checkpoint is intact`, { cause: e });
  } finally {
    collectGarbage(); // the checkpoint's byte buffers, now garbage, would fragment the heap until collected (heap.ts)
  }
}

/**
 * Tidies what a process killed while saving or pruning can leave behind: a half-written `.tmp-*` folder or a
 * half-deleted `.trash-*` one is removed; a
 * checkpoint moved aside to be replaced (`X.old-PID`) is put back when its replacement never arrived, else removed.
 */
export function recoverCheckpoints(runDir: string): string[] {
  const done: string[] = [];
  for (const parent of [join(runDir, 'checkpoints'), runDir]) {
    if (!existsSync(parent)) continue;
    for (const d of readdirSync(parent)) {
      const full = join(parent, d);
      if (/^\.(tmp|trash)-.+-\d+$/.test(d)) {
        rmSync(full, { recursive: true, force: true });
        done.push(`removed ${d.startsWith('.tmp') ? 'the unfinished' : 'the pruned'} ${full}`);
        continue;
      }
      const m = /^(.+)\.old-\d+$/.exec(d);
      if (!m) continue;
      const target = join(parent, m[1]!);
      if (existsSync(join(target, 'trainer_state.json'))) {
        rmSync(full, { recursive: true, force: true });
      } else {
        rmSync(target, { recursive: true, force: true });
        renameSync(full, target);
        done.push(`restored ${target}`);
      }
    }
  }
  return done;
}

/** Checkpoint directories of a run, oldest first (step-NNNNNNNN). */
export function listCheckpoints(runDir: string): string[] {
  const dir = join(runDir, 'checkpoints');
  if (!existsSync(dir)) return [];
  return readdirSync(dir).filter((d) => /^step-\d+$/.test(d) && existsSync(join(dir, d, 'trainer_state.json'))).sort().map((d) => join(dir, d));
}

export function readTrainerState(ckpt: string): TrainerState {
  try {
    return JSON.parse(readFileSync(join(ckpt, 'trainer_state.json'), 'utf8')) as TrainerState;
  } catch (e) {
    throw new MmtrainError(`${ckpt}: cannot read trainer_state.json (${(e as Error).message})`);
  }
}

export function readInferenceInfo(ckpt: string): InferenceInfo {
  try {
    return JSON.parse(readFileSync(join(ckpt, 'mmtrain.json'), 'utf8')) as InferenceInfo;
  } catch (e) {
    throw new MmtrainError(`${ckpt}: not an mmtrain checkpoint (mmtrain.json: ${(e as Error).message})`);
  }
}

/** Restores optimizer moments saved by saveCheckpoint into an optimizer over the same named parameters. */
export function loadOptimizerState(ckpt: string, opt: AdamW, names: Map<Tensor, string>): void {
  const { tensors } = loadSafetensors(join(ckpt, 'optimizer.safetensors'));
  try {
    opt.groups.forEach((g, gi) => g.params.forEach((p, pi) => {
      const n = names.get(p)!;
      const m = tensors.get(`${n}.exp_avg`);
      const v = tensors.get(`${n}.exp_avg_sq`);
      const s = tensors.get(`${n}.step`);
      if (!m || !v || !s) return;
      // the moments live beside their parameter: a checkpoint saved on one device resumes on another
      const dm = m.to(p.device);
      const dv = v.to(p.device);
      opt.setState(gi, pi, { step: s.item(), expAvg: dm, expAvgSq: dv, maxExpAvgSq: null });
      dm.dispose(); // handles only: the optimizer holds its own reference to the data
      dv.dispose();
    }));
  } finally {
    for (const t of tensors.values()) t.dispose();
  }
}

/** Deletes all but the newest `keep` step checkpoints. */
export function pruneCheckpoints(runDir: string, keep: number): void {
  const all = listCheckpoints(runDir);
  for (const d of all.slice(0, Math.max(0, all.length - keep))) {
    // renamed out of the list first (atomic), then deleted: a process killed mid-delete never leaves a listed,
    // half-deleted checkpoint behind
    const trash = join(dirname(d), `.trash-${basename(d)}-${process.pid}`);
    renameSync(d, trash);
    rmSync(trash, { recursive: true, force: true });
  }
}
