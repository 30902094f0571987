// Loading Hugging Face-style checkpoint directories (config.json + model.safetensors) into mmtrain modules: a
// straight key mapping, with the few renames Hugging Face itself applies, and a report of what did not match.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { MmtrainError } from '../errors.js';
import { type LoadReport, type Module, formatReport } from '../nn/module.js';
import { loadSafetensors } from '../tensor/safetensors.js';
import type { Tensor } from '../tensor/tensor.js';

export interface PretrainedLoad<M> {
  model: M;
  /** keys the checkpoint lacked (left at their initialisation) and keys it had that the model does not use */
  report: LoadReport;
}

/** Parses `dir/config.json`, with errors naming the file and the line. */
export function readConfigJson(dir: string): Record<string, unknown> {
  const file = join(dir, 'config.json');
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new MmtrainError(`${file}: cannot read the model config (${(e as Error).message}); a model directory needs config.json and model.safetensors`);
  }
  try {
    const v = JSON.parse(text) as unknown;
    if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new SyntaxError('expected a JSON object');
    return v as Record<string, unknown>;
  } catch (e) {
    const m = /position (\d+)/.exec((e as Error).message);
    const line = m ? text.slice(0, Number(m[1])).split('\n').length : undefined;
    throw new MmtrainError(`${file}${line ? `:${line}` : ''}: invalid JSON (${(e as Error).message})`);
  }
}

/** The model.safetensors of a directory, refusing pickle checkpoints with the fix. */
export function checkpointFile(dir: string): string {
  const st = join(dir, 'model.safetensors');
  if (existsSync(st)) return st;
  if (existsSync(join(dir, 'pytorch_model.bin'))) {
    throw new MmtrainError(`${dir}: only pytorch_model.bin (a pickle) is there; mmtrain loads safetensors only. Convert it once with Python: ` +
      "`from safetensors.torch import save_file; import torch; save_file(torch.load('pytorch_model.bin'), 'model.safetensors')`");
  }
  if (existsSync(join(dir, 'model.safetensors.index.json'))) {
    throw new MmtrainError(`${dir}: sharded checkpoints (model.safetensors.index.json) are not supported yet; merge the shards into one model.safetensors`);
  }
  throw new MmtrainError(`${dir}: model.safetensors not found`);
}

/** Maps checkpoint keys onto module keys: strips a model prefix (`bert.`, `vit.`), renames legacy LayerNorm names. */
export function mapCheckpointKeys(keys: string[], own: Set<string>, prefixes: string[]): Map<string, string> {
  const out = new Map<string, string>();
  for (const k of keys) {
    let m = k;
    for (const p of prefixes) if (m.startsWith(p) && !own.has(m)) m = m.slice(p.length);
    if (!own.has(m)) m = m.replace(/\.gamma$/, '.weight').replace(/\.beta$/, '.bias');
    out.set(k, m);
  }
  return out;
}

/**
 * Copies a directory's model.safetensors into `model` by name. Unused checkpoint keys (heads such as `cls.*`,
 * `classifier.*`) and keys the checkpoint lacks are reported, as Hugging Face warns about them; missing keys keep
 * their initialisation unless strict. A shape mismatch refuses the checkpoint, naming the key and both shapes.
 */
export function checkpointStateDict(model: Module, dir: string, opts: { prefixes?: string[]; strict?: boolean; ignore?: RegExp } = {}): LoadReport {
  const file = checkpointFile(dir);
  const { tensors } = loadSafetensors(file);
  try {
    return loadMapped(model, tensors, file, opts);
  } finally {
    for (const t of tensors.values()) t.dispose();
  }
}

export function loadMapped(model: Module, tensors: Map<string, Tensor>, file: string, opts: { prefixes?: string[]; strict?: boolean; ignore?: RegExp } = {}): LoadReport {
  const own = new Set(model.stateDict().keys());
  const mapping = mapCheckpointKeys([...tensors.keys()], own, opts.prefixes ?? []);
  const ignore = opts.ignore ?? /(^|\.)position_ids$/;
  const mapped = new Map<string, Tensor>();
  for (const [k, t] of tensors) if (!ignore.test(k)) mapped.set(mapping.get(k)!, t);
  let report: LoadReport;
  try {
    report = model.loadStateDict(mapped, { strict: false });
  } catch (e) {
    throw new MmtrainError(`${file}: does not fit ${model.constructor.name}: ${(e as Error).message.replace(/^[^:]*loadStateDict: /, '')}`);
  }
  if (opts.strict && (report.missing.length || report.unexpected.length)) {
    throw new MmtrainError(`${file}: ${formatReport(report)}`);
  }
  return report;
}

/**
 * A model class's fromPretrained: `dir/config.json` parsed by its config function (errors name the file), the model
 * built from it, and `dir/model.safetensors` loaded with the hub prefix stripped; the model is freed if loading fails.
 */
export function loadPretrained<C, M extends Module>(dir: string, parse: (raw: never, source: string) => C, make: (config: C) => M, opts: { prefixes: string[]; strict?: boolean }): PretrainedLoad<M> {
  const model = make(parse(readConfigJson(dir) as never, `${dir}/config.json`));
  try {
    return { model, report: checkpointStateDict(model, dir, opts) };
  } catch (e) {
    model.dispose();
    throw e;
  }
}
