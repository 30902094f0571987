// `mmtrain pretrain`: one encoder pretrained by the same trainer as `mmtrain train` (schedules, checkpoints, resume,
// diagnostics, report), then written out as a Hugging Face folder: BertForMaskedLM (text) or
// ViTForMaskedImageModeling (image) layout, which loads as BertModel / ViTModel in mmtrain (model.text.pretrained,
// model.image.pretrained) and in Hugging Face (from_pretrained), with the tokenizer or the image processor's
// config beside it. The run itself (metrics.jsonl, checkpoints, report.html) lives in <out>/run.
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { MmtrainError } from '../errors.js';
import { readJsonFile, writeFileAtomic, writeJsonAtomic } from '../files.js';
import type { TrainOptions, TrainResult } from './callbacks.js';
import { listCheckpoints } from './checkpoint.js';
import { type TrainConfig, applyOverrides, resolveConfig } from './config.js';

export interface PretrainArgs {
  modality: 'text' | 'image';
  data: string;
  val?: string;
  out: string;
  /** a config file's contents (raw) that the flags below override */
  base?: Record<string, unknown>;
  baseDir?: string;
  preset?: string;
  /** continue pretraining a local folder (domain-adaptive pretraining) */
  from?: string;
  epochs?: number;
  lr?: number;
  batchSize?: number;
  wholeWordMask?: boolean;
  probe?: string[];
  seed?: number;
  set?: string[];
}

/** The run configuration of a pretraining: defaults suited to it, the base config, then the flags and --set. */
export function pretrainConfig(a: PretrainArgs): TrainConfig {
  const raw = structuredClone(a.base ?? {}) as Record<string, any>;
  // paths given as options are the working directory's; the config file's own paths stay relative to it
  const here = (p: string | undefined) => (p === undefined ? undefined : resolve(p));
  const section = (k: string) => (raw[k] = (raw[k] ?? {}) as Record<string, any>);
  raw.name ??= `pretrain-${a.modality}`;
  const p = section('pretrain');
  p.modality = a.modality;
  if (a.wholeWordMask !== undefined) p.wholeWordMask = a.wholeWordMask;
  if (a.probe?.length) section('diagnostics').probeSets = a.probe.map((data) => ({ data: here(data), modality: a.modality }));
  const d = section('data');
  d.train = here(a.data);
  if (a.val) d.val = here(a.val);
  const t = section('train');
  if (a.epochs !== undefined) t.epochs = a.epochs;
  if (a.lr !== undefined) t.lr = a.lr;
  if (a.batchSize !== undefined) t.batchSize = a.batchSize;
  t.schedule ??= { type: 'cosine', warmupRatio: 0.06 };
  const e = section('eval');
  e.metric ??= 'loss';
  const ck = section('checkpoint');
  ck.saveBest ??= false;
  const m = section('model');
  if (a.preset || a.from) m[a.modality] = a.from ? { pretrained: here(a.from) } : { ...(m[a.modality] ?? {}), preset: a.preset };
  if (a.seed !== undefined) raw.seed = a.seed;
  const c = resolveConfig(applyOverrides(raw, a.set ?? []), 'mmtrain pretrain', a.baseDir ?? process.cwd());
  if (!c.data.val) c.eval.metric = 'loss';
  return c;
}

/** Runs (or resumes) a pretraining and writes the model folder into `out`. */
export async function pretrain(c: TrainConfig, out: string, opts: Omit<TrainOptions, 'runDir' | 'resume'> & { resume?: boolean } = {}): Promise<TrainResult & { modelDir: string | null }> {
  const dir = resolve(out);
  const runDir = join(dir, 'run');
  if (existsSync(join(dir, 'model.safetensors'))) throw new MmtrainError(`--out ${dir}: holds a pretrained model already (model.safetensors); choose another folder`);
  const resumable = existsSync(runDir) && listCheckpoints(runDir).length > 0;
  if (opts.resume && !resumable) throw new MmtrainError(`--resume: ${runDir} has no checkpoint to resume from`);
  if (!opts.resume && existsSync(runDir)) throw new MmtrainError(`--out ${dir}: holds a pretraining run already (${runDir})${resumable ? '; add --resume to continue it' : '; remove it or choose another folder'}`);
  const { train } = await import('./trainer.js');
  const r = await train(c, { ...opts, resume: opts.resume ? runDir : undefined, runDir: opts.resume ? undefined : runDir });
  if (r.interrupted || r.rank !== 0) return { ...r, modelDir: null };
  exportPretrained(r.runDir, dir, c);
  return { ...r, modelDir: dir };
}

/** Copies the final checkpoint's model (config.json, model.safetensors) and its preprocessing into `dir`. */
export function exportPretrained(runDir: string, dir: string, c: TrainConfig): void {
  const last = listCheckpoints(runDir).pop();
  if (!last) throw new MmtrainError(`${runDir}: no checkpoint to export`);
  for (const f of ['config.json', 'model.safetensors']) writeFileAtomic(join(dir, f), readFileSync(join(last, f)));
  if (c.pretrain!.modality === 'text') {
    const tok = c.data.tokenizer!;
    writeFileAtomic(join(dir, /\.txt$/i.test(tok) ? 'vocab.txt' : 'tokenizer.json'), readFileSync(tok));
  } else {
    // Hugging Face's ViTImageProcessor settings of the run's preprocessing
    const info = readJsonFile<{ image: { size: number; mean: number[]; std: number[]; resample?: string } }>(join(last, 'mmtrain.json'));
    writeJsonAtomic(join(dir, 'preprocessor_config.json'), {
      image_processor_type: 'ViTImageProcessor', do_resize: true, size: { height: info.image.size, width: info.image.size },
      resample: info.image.resample === 'bicubic' ? 3 : 2, do_rescale: true, rescale_factor: 1 / 255, do_normalize: true,
      image_mean: info.image.mean, image_std: info.image.std,
    });
  }
}
