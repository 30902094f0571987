// A run directory's files: its choice, config.json and labels.json at the start, metrics.jsonl (and TensorBoard
// events) as training goes, test_metrics.json, warnings.json and result.json at the end. Whole files are written
// atomically (a crash leaves the previous file or none); result.json marks a run that ran to its end.
import { appendFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { MmtrainError } from '../errors.js';
import { makeFolder, writeJsonAtomic } from '../files.js';
import { TensorBoardWriter } from '../diagnostics/tensorboard.js';
import type { TrainConfig } from './config.js';
import { truncateRecordsAfter } from './records.js';

/** The run directory: the one resumed, the one asked for (which must hold no run yet), or a fresh out/name[-k]. */
export function chooseRunDir(c: TrainConfig, opts: { resume?: string; runDir?: string }): string {
  if (opts.runDir && !opts.resume && existsSync(join(opts.runDir, 'config.json'))) {
    throw new MmtrainError(`${opts.runDir} already holds a run; continue it with resume, or choose another directory`);
  }
  let dir = opts.resume ?? opts.runDir;
  if (!dir) {
    dir = join(c.out, c.name);
    for (let i = 2; existsSync(dir); i++) dir = join(c.out, `${c.name}-${i}`);
  }
  makeFolder(join(dir, 'checkpoints'));
  return dir;
}

export function writeRunStart(runDir: string, c: TrainConfig, labels: string[]): void {
  writeJsonAtomic(join(runDir, 'config.json'), c);
  writeJsonAtomic(join(runDir, 'labels.json'), labels, null);
}

export function writeRunFile(runDir: string, name: 'test_metrics.json' | 'warnings.json' | 'result.json', value: unknown): void {
  writeJsonAtomic(join(runDir, name), value);
}

/** metrics.jsonl, one record a line with its time, mirrored to TensorBoard when asked. */
export class RunLog {
  readonly file: string;
  #tb: TensorBoardWriter | null;
  constructor(runDir: string, tensorboard: boolean) {
    this.file = join(runDir, 'metrics.jsonl');
    this.#tb = tensorboard ? new TensorBoardWriter(join(runDir, 'tensorboard')) : null;
  }

  /** On resume, steps after the checkpoint are redone: their old records go, so the log has each step once. */
  truncateAfter(step: number): void {
    truncateRecordsAfter(this.file, step);
  }

  append(r: Record<string, unknown>): void {
    appendFileSync(this.file, `${JSON.stringify({ time: new Date().toISOString(), ...r })}\n`);
    if (this.#tb && typeof r.step === 'number') this.#tb.scalars(r.step, tensorboardScalars(r));
  }
}

/** The numeric fields of a metrics record as TensorBoard tags: train/loss, lr/<group>, val/accuracy, ... */
function tensorboardScalars(r: Record<string, unknown>): Record<string, number> {
  const out: Record<string, number> = {};
  const prefix = r.event === 'eval' ? String(r.split) : String(r.event);
  for (const [k, v] of Object.entries(r)) {
    if (k === 'step' || k === 'epoch' || k === 'n') continue;
    if (typeof v === 'number') out[`${prefix}/${k}`] = v;
    else if (v && typeof v === 'object' && !Array.isArray(v)) {
      // nested records (lr per group, grad_norm per module): lr/<group> from train records, <event>/<key>/<sub> otherwise
      const base = k === 'lr' ? (r.event === 'train' ? 'lr' : null) : `${prefix}/${k}`;
      if (base) for (const [g, x] of Object.entries(v)) if (typeof x === 'number') out[`${base}/${g}`] = x;
    }
  }
  return out;
}
