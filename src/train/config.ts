// The training configuration: one schema (zod) checked in full before the first step, and before LibTorch loads
// (this module imports no module that loads it: the CLI reads the run's precision here first). Unknown keys, wrong
// types and impossible combinations are errors that name the key path, what was expected and received, and the fix;
// encoder overrides (model.text.config, model.image.config) are checked against their architecture's config. Files are
// JSON or YAML; `--set a.b=v` overrides any key.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import YAML from 'yaml';
import { z } from 'zod';
import { ImageConfigFields } from '../data/image-config.js';
import { MmtrainError } from '../errors.js';
import { DEVICE_SETTING } from '../tensor/dtype.js';
import { type Side, encoderConfigKind, presetConfig, presetNames } from '../models/encoder-configs.js';
import { FUSION_PRESETS, FUSION_TYPES, FusionConfigSchema } from '../models/fusion-config.js';
import { checkConfig, formatIssues, issueLines } from '../validation.js';

const positiveInt = z.number().int().positive();
const prob = z.number().min(0).max(1);
const names = (presets: Record<string, unknown>) => Object.keys(presets) as [string, ...string[]];
/**
 * an encoder: a preset (of any architecture of its side) with overrides of its Hugging Face config fields (checked
 * against that architecture's config by checkModel), or a local pretrained directory
 */
const encoder = (side: Side) => z.strictObject({
  preset: z.enum(presetNames(side)).optional(),
  config: z.record(z.string(), z.unknown()).optional(),
  pretrained: z.string().optional(),
});

export const ConfigSchema = z.strictObject({
  /** a name for the run (the run directory is out/name) */
  name: z.string().default('run'),
  seed: z.number().int().min(0).default(1),
  /** folder of run directories */
  out: z.string().default('runs'),
  model: z.strictObject({
    preset: z.enum(names(FUSION_PRESETS)).default('tiny'),
    /** a text encoder preset (bert-*, distilbert-*, roberta-*) and overrides of its config.json fields, or a pretrained directory */
    text: encoder('text').optional(),
    /** an image encoder preset (vit-*, deit-*) and overrides of its config.json fields, or a pretrained directory */
    image: encoder('image').optional(),
    fusion_type: z.enum(FUSION_TYPES).default('cross-attention'),
    pooling: z.enum(['mean', 'cls']).default('mean'),
    fusion_num_heads: positiveInt.default(8),
    fusion_attention_dropout: prob.default(0),
    head_hidden_size: positiveInt.default(512),
    head_dropout: prob.default(0.1),
    /** freeze an encoder: true for all of it, a number for its embeddings and lower N layers */
    freeze: z.strictObject({
      text: z.union([z.boolean(), z.number().int().min(0)]).default(false),
      image: z.union([z.boolean(), z.number().int().min(0)]).default(false),
      /** the freezing above holds for epochs before this one (0-based), then the encoders train too; null: the whole run */
      untilEpoch: positiveInt.nullable().default(null),
    }).default({ text: false, image: false, untilEpoch: null }),
  }).prefault({}),
  /**
   * Pretraining one encoder instead of training the fusion classifier (`mmtrain pretrain`): BERT masked language
   * modelling on texts, or ViT masked image modelling (SimMIM) on images; null: the fusion classifier.
   */
  pretrain: z.strictObject({
    modality: z.enum(['text', 'image']),
    /** text: share of tokens predicted (80% become [MASK], 10% a random token, 10% stay) */
    mlmProbability: z.number().gt(0).lt(1).default(0.15),
    /** text: mask whole words (all WordPiece pieces of a chosen word) */
    wholeWordMask: z.boolean().default(false),
    /** image: share of patches masked and reconstructed */
    maskRatio: z.number().gt(0).lt(1).default(0.6),
    /** image: reconstruction error over the masked pixels: l1 (SimMIM, Hugging Face) or mse (MAE's squared error) */
    imageLoss: z.enum(['l1', 'mse']).default('l1'),
  }).nullable().default(null),
  data: z.strictObject({
    train: z.string(),
    val: z.string().optional(),
    test: z.string().optional(),
    /** Parquet columns / WebDataset fields holding the image, the text and the label (docs/data.md) */
    columns: z.strictObject({ image: z.string().min(1).optional(), text: z.string().min(1).optional(), label: z.string().min(1).optional() }).optional(),
    /** streamed data (Parquet, WebDataset): units read at once per rank, and the shuffle buffer in samples */
    stream: z.strictObject({ readers: z.number().int().min(1).max(64).default(2), shuffleBuffer: z.number().int().min(0).max(10_000_000).default(1000), keepMB: z.number().min(0).max(1_000_000).default(64) }).prefault({}),
    /** class names in index order; discovered from the training data when absent */
    labels: z.array(z.string()).min(2).optional(),
    /** tokenizer.json or vocab.txt; the bundled bert-base-uncased tokenizer by default */
    tokenizer: z.string().optional(),
    doLowerCase: z.boolean().default(true),
    maxLength: z.number().int().min(2).max(4096).default(128),
    padding: z.enum(['longest', 'max_length']).default('longest'),
    bucketByLength: z.boolean().default(false),
    onBadSample: z.enum(['error', 'skip']).default('error'),
    prefetch: z.number().int().min(0).max(64).default(2),
    /** decode images on a worker thread, off the training thread (normalisation stays there); false: all on it */
    decodeThread: z.boolean().default(true),
    /** on-disk cache of preprocessed images (used when augmentation is off): a folder, or true for <run>/cache */
    cache: z.union([z.boolean(), z.string()]).default(false),
    /** preprocessing (src/data/image-config.ts); size defaults to the image encoder's image_size */
    image: ImageConfigFields.extend({ size: ImageConfigFields.shape.size.unwrap().optional() }).prefault({}),
  }),
  train: z.strictObject({
    epochs: positiveInt.default(10),
    /** stop after this many optimizer steps (overrides epochs when smaller) */
    maxSteps: positiveInt.optional(),
    batchSize: positiveInt.default(32),
    gradAccumulation: positiveInt.default(1),
    lr: z.number().positive().default(1e-4),
    /** lr of the two encoders when different from lr (fusion + head use lr) */
    encoderLr: z.number().positive().optional(),
    /** the text encoder's lr (over encoderLr): a modality-balancing knob */
    textEncoderLr: z.number().positive().optional(),
    /** the image encoder's lr (over encoderLr) */
    imageEncoderLr: z.number().positive().optional(),
    /** layer-wise lr decay for encoder layers: layer i (1-based) of L gets encoderLr * decay^(L + 1 - i), embeddings decay^(L + 1) */
    layerDecay: z.number().positive().max(1).optional(),
    weightDecay: z.number().min(0).default(0.01),
    betas: z.tuple([prob, prob]).default([0.9, 0.999]),
    eps: z.number().positive().default(1e-8),
    schedule: z.strictObject({
      type: z.enum(['cosine', 'linear', 'constant', 'original']).default('cosine'),
      warmupSteps: z.number().int().min(0).optional(),
      warmupRatio: prob.default(0.06),
      minLrRatio: prob.default(0),
    }).default({ type: 'cosine', warmupRatio: 0.06, minLrRatio: 0 }),
    /** clip the global gradient norm to this; null = no clipping */
    clipGradNorm: z.number().positive().nullable().default(1.0),
    /** auto (the first GPU LibTorch sees, else the CPU), cpu, cuda or cuda:N */
    device: z.string().regex(DEVICE_SETTING, 'expected auto, cpu, cuda or cuda:N').default('auto'),
    precision: z.enum(['fp32', 'bf16', 'fp16']).default('fp32'),
    /** fp16's dynamic loss scaling (PyTorch's GradScaler): start, factors, and good steps before growing */
    lossScale: z.strictObject({
      init: z.number().positive().default(65536),
      growthFactor: z.number().gt(1).default(2),
      backoffFactor: z.number().gt(0).lt(1).default(0.5),
      growthInterval: positiveInt.default(2000),
    }).prefault({}),
    /** TF32 tensor cores for fp32 matmuls and convolutions on Ampere and later GPUs */
    tf32: z.boolean().default(false),
    labelSmoothing: prob.default(0),
    /** consecutive non-finite steps before rolling back to the last good checkpoint with half the lr */
    maxNonFinite: positiveInt.default(3),
    threads: positiveInt.optional(),
    /** with both encoders frozen and augmentation off, compute their outputs once and train fusion + head on them */
    featureCache: z.boolean().default(true),
  }).prefault({}),
  eval: z.strictObject({
    /** "epoch", or a number of optimizer steps */
    every: z.union([z.literal('epoch'), positiveInt]).default('epoch'),
    metric: z.enum(['accuracy', 'macro_f1', 'auroc', 'loss']).default('accuracy'),
    batchSize: positiveInt.default(64),
    earlyStopping: z.strictObject({ patience: positiveInt, minDelta: z.number().min(0).default(0) }).nullable().default(null),
  }).prefault({}),
  checkpoint: z.strictObject({
    keepLast: positiveInt.default(2),
    /** "epoch", or a number of optimizer steps */
    every: z.union([z.literal('epoch'), positiveInt]).default('epoch'),
    saveBest: z.boolean().default(true),
  }).prefault({}),
  diagnostics: z.strictObject({
    enabled: z.boolean().default(true),
    /** optimizer steps between diagnostics records (gradient and weight norms, update ratios, attention entropy) */
    every: positiveInt.default(50),
    /** gradient norms per layer as well as per module */
    perLayer: z.boolean().default(true),
    /** cross-attention entropy per direction (needs the attention weights on diagnostics steps) */
    attentionEntropy: z.boolean().default(true),
    /** unimodal linear-probe accuracy at each validation */
    probe: z.boolean().default(true),
    /**
     * labelled manifests on which a linear probe of one encoder's pooled vector is scored at the start of the run
     * (the initial or pretrained encoder) and after each validation: do the encoders carry (or keep) these labels?
     */
    probeSets: z.array(z.strictObject({ data: z.string(), modality: z.enum(['text', 'image']), name: z.string().regex(/^[\w.-]+$/, 'letters, digits, _ . - only').optional() })).default([]),
    /**
     * loss spikes: a step loss more than z robust standard deviations, minRatio times and minDelta (nats) above the
     * median of the last window steps
     */
    spike: z.strictObject({ window: z.number().int().min(5).default(50), z: z.number().positive().default(6), minRatio: z.number().min(1).default(1.5), minDelta: z.number().min(0).default(0.3) })
      .prefault({}),
  }).prefault({}),
  balance: z.strictObject({
    /** gradient modulation of the dominant modality's encoder: OGM, or OGM-GE (with Gaussian enhancement) */
    method: z.enum(['none', 'ogm', 'ogm-ge']).default('none'),
    alpha: z.number().positive().default(0.5),
    /** modulate from this epoch (0-based) ... */
    startEpoch: z.number().int().min(0).default(0),
    /** ... up to, not including, this one (null: to the end) */
    endEpoch: z.number().int().min(1).nullable().default(null),
    /** probability that a training sample loses one modality (chosen evenly) before the head */
    modalityDropout: z.number().min(0).lt(1).default(0),
  }).prefault({}),
  distributed: z.strictObject({
    /** a rank that gets no answer from the others for this long stops with an error (rendezvous and collectives) */
    timeoutS: z.number().positive().default(300),
    /** gradients travel in flat buckets of this size */
    bucketMB: z.number().positive().default(25),
    /** average each bucket of gradients while backward still runs (c10d's Reducer, as DDP); false: after backward */
    overlap: z.boolean().default(true),
  }).prefault({}),
  log: z.strictObject({
    every: positiveInt.default(10),
    tensorboard: z.boolean().default(true),
    progress: z.enum(['auto', 'bar', 'lines', 'none']).default('auto'),
    /** write report.html into the run directory at the end: `mmtrain train`, the demo and every run of a study do;
     * a program calling train() itself calls reportTrainedRun(result, config) after it */
    report: z.boolean().default(true),
  }).prefault({}),
});

export type TrainConfig = z.infer<typeof ConfigSchema>;
export type TrainConfigInput = z.input<typeof ConfigSchema>;

/** The bundled bert-base-uncased tokenizer (MIT, see assets/bert-base-uncased/SOURCE.md). */
export function bundledTokenizer(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    const p = join(dir, 'assets', 'bert-base-uncased', 'tokenizer.json');
    try {
      readFileSync(p, { flag: 'r' });
      return p;
    } catch {
      dir = dirname(dir);
    }
  }
  throw new MmtrainError('the bundled tokenizer (assets/bert-base-uncased/tokenizer.json) is missing; set data.tokenizer');
}

/** Parses `a.b.c=value` overrides (values as YAML scalars: numbers, booleans, null, strings, [lists]). */
export function applyOverrides(raw: Record<string, unknown>, sets: string[]): Record<string, unknown> {
  const out = structuredClone(raw);
  for (const s of sets) {
    const eq = s.indexOf('=');
    if (eq <= 0) throw new MmtrainError(`--set ${s}: expected key.path=value`);
    const path = s.slice(0, eq).split('.');
    let value: unknown;
    try {
      value = YAML.parse(s.slice(eq + 1));
    } catch {
      value = s.slice(eq + 1);
    }
    let node = out as Record<string, unknown>;
    for (const k of path.slice(0, -1)) {
      if (node[k] === undefined || node[k] === null) node[k] = {};
      if (typeof node[k] !== 'object' || Array.isArray(node[k])) throw new MmtrainError(`--set ${s}: ${k} is not a section`);
      node = node[k] as Record<string, unknown>;
    }
    node[path[path.length - 1]!] = value;
  }
  return out;
}

/** Validates a raw configuration (already parsed) and checks combinations the schema cannot express. */
export function resolveConfig(raw: unknown, source = 'config', baseDir = process.cwd()): TrainConfig {
  const r = checkConfig(ConfigSchema, raw);
  if (!r.success) {
    // the example names every key of the run config; an encoder's keys are its Hugging Face config's
    const inRunConfig = r.error.issues.some((i) => i.code === 'unrecognized_keys' && i.path[i.path.length - 1] !== 'config');
    throw new MmtrainError(formatIssues(r.error.issues, source, { unknownKeyHint: inRunConfig ? 'mmtrain init writes an example that names every key' : undefined }));
  }
  const c = r.data;
  const problems = issueLines(checkModel(c));
  for (const side of ['text', 'image'] as const) {
    const e = c.model[side];
    if (e?.preset && e.pretrained) problems.push(`model.${side}: give either preset or pretrained, not both`);
    if (e?.config && e.pretrained) problems.push(`model.${side}.config: overrides apply to a preset; a pretrained encoder keeps its own config.json (remove config, or pretrained)`);
  }
  if (c.train.precision === 'fp16' && c.train.device === 'cpu') problems.push('train.precision: fp16 needs a GPU (fp16 autocast with loss scaling); with train.device cpu use bf16');
  if (c.eval.earlyStopping && !c.data.val) problems.push('eval.earlyStopping: needs data.val (early stopping watches the validation metric)');
  if (c.eval.metric !== 'accuracy' && c.eval.metric !== 'loss' && !c.data.val) problems.push(`eval.metric: "${c.eval.metric}" is computed on data.val, which is not set`);
  if (c.train.schedule.warmupSteps !== undefined && c.train.schedule.type === 'original') problems.push('train.schedule: the "original" schedule has no warmup; remove warmupSteps');
  if (c.balance.method !== 'none' && (c.model.freeze.text === true || c.model.freeze.image === true)) {
    problems.push(`balance.method: ${c.balance.method} modulates encoder gradients, but an encoder is frozen (model.freeze); unfreeze it or set balance.method: none`);
  }
  const fr = c.model.freeze;
  if (fr.untilEpoch !== null && fr.text === false && fr.image === false) problems.push('model.freeze.untilEpoch: nothing is frozen (model.freeze.text and .image are false); freeze an encoder or remove untilEpoch');
  if (fr.untilEpoch !== null && fr.untilEpoch >= c.train.epochs) problems.push(`model.freeze.untilEpoch: expected an epoch before train.epochs (${c.train.epochs}), received ${fr.untilEpoch}; for a run-long freeze use null`);
  if (c.pretrain) {
    const p = c.pretrain;
    if (fr.text !== false || fr.image !== false) problems.push('model.freeze: pretraining trains its one encoder; remove model.freeze');
    if (c.balance.method !== 'none' || c.balance.modalityDropout > 0) problems.push('balance: modality balancing is for the fusion classifier; pretraining has one modality (set balance.method: none, modalityDropout: 0)');
    if (c.eval.metric !== 'loss' && c.eval.metric !== 'accuracy') problems.push(`eval.metric: pretraining reports loss and (text) masked-token accuracy; expected loss or accuracy, received ${c.eval.metric}`);
    if (p.modality === 'image' && c.eval.metric === 'accuracy') problems.push('eval.metric: image pretraining has no accuracy (it reconstructs pixels); use loss');
    c.diagnostics.probeSets.forEach((s, i) => {
      if (s.modality !== p.modality) problems.push(`diagnostics.probeSets[${i}].modality: pretraining trains the ${p.modality} encoder; expected ${p.modality}, received ${s.modality}`);
    });
  }
  if (c.balance.endEpoch !== null && c.balance.endEpoch <= c.balance.startEpoch) problems.push('balance.endEpoch: must be greater than balance.startEpoch (or null)');
  const im = c.data.image;
  if (im.resizeSize !== undefined && im.size !== undefined && im.resizeSize < im.size) problems.push(`data.image.resizeSize: expected at least data.image.size (${im.size}), received ${im.resizeSize}: the centre crop takes size x size out of the resized image`);
  const aug = c.data.image.augment;
  if (c.data.cache !== false && (aug.randomResizedCrop || aug.horizontalFlip > 0 || aug.colorJitter)) {
    problems.push('data.cache: the image cache holds un-augmented pixels; turn augmentation off or set data.cache: false');
  }
  if (problems.length) throw new MmtrainError(`${source}: invalid configuration:\n${problems.map((p) => `  ${p}`).join('\n')}`);
  // Paths are relative to the config file.
  const abs = (p: string | undefined) => (p === undefined ? undefined : isAbsolute(p) ? p : resolve(baseDir, p));
  c.data.train = abs(c.data.train)!;
  c.data.val = abs(c.data.val);
  c.data.test = abs(c.data.test);
  c.out = abs(c.out)!;
  if (typeof c.data.cache === 'string') c.data.cache = abs(c.data.cache)!;
  for (const e of [c.model.text, c.model.image]) if (e?.pretrained) e.pretrained = abs(e.pretrained);
  for (const p of c.diagnostics.probeSets) p.data = abs(p.data)!;
  // the tokenizer: data.tokenizer, else the pretrained text encoder's own (a RoBERTa's BPE), else the bundled one
  const own = c.model.text?.pretrained ? ['tokenizer.json', 'vocab.txt'].map((f) => join(c.model.text!.pretrained!, f)).find((f) => existsSync(f)) : undefined;
  c.data.tokenizer = abs(c.data.tokenizer) ?? own ?? bundledTokenizer();
  // a pretrained image encoder's normalisation and size from its preprocessor_config.json, where data.image is silent
  if (c.model.image?.pretrained) fromPreprocessor(c, join(c.model.image.pretrained, 'preprocessor_config.json'), (raw as { data?: { image?: Record<string, unknown> } })?.data?.image ?? {});
  return c;
}

/**
 * Takes image_mean, image_std, the input size (crop_size, else size), the resampling filter (PIL's 2 bilinear, 3
 * bicubic) and the resize (a centre crop: the shorter side first; none: exact) of a Hugging Face image processor
 * config, for the fields the run's data.image does not set (docs/models.md).
 */
function fromPreprocessor(c: TrainConfig, file: string, given: Record<string, unknown>): void {
  if (!existsSync(file)) return;
  let p: Record<string, any>;
  try {
    p = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new MmtrainError(`${file}: invalid JSON (${(e as Error).message})`);
  }
  const triple = (v: unknown) => Array.isArray(v) && v.length === 3 && v.every((x) => typeof x === 'number' && Number.isFinite(x));
  const int = (v: unknown) => (Number.isInteger(v) && (v as number) > 0 ? (v as number) : undefined);
  // the resize: {shortest_edge} keeps the aspect (shorter-side), {height, width} does not (exact); its size, then
  // the centre crop (crop_size) when do_center_crop
  const shortest = int(p.size?.shortest_edge);
  const resizeTo = shortest ?? int(p.size?.height) ?? int(p.size);
  const cropTo = p.do_center_crop ? int(p.crop_size?.height) ?? int(p.crop_size) : undefined;
  if (given.mean === undefined && triple(p.image_mean)) c.data.image.mean = p.image_mean;
  if (given.std === undefined && triple(p.image_std) && p.image_std.every((x: number) => x > 0)) c.data.image.std = p.image_std;
  if (given.size === undefined && given.resizeSize === undefined && given.resize === undefined && resizeTo) {
    c.data.image.resize = shortest ? 'shorter-side' : 'exact';
    c.data.image.size = cropTo ?? resizeTo;
    if (cropTo && resizeTo > cropTo) c.data.image.resizeSize = resizeTo;
  }
  const filter = ({ 2: 'bilinear', 3: 'bicubic' } as const)[p.resample as 2 | 3];
  if (given.resample === undefined && filter) c.data.image.resample = filter;
}

/**
 * The model the config describes, checked as the fusion config it becomes (presets with their overrides, fusion and
 * head), with the issues' paths in the run config's terms. A pretrained encoder's config.json is read when the model
 * is built; until then the other encoder's config is checked alone.
 */
function checkModel(c: TrainConfig): z.core.$ZodIssue[] {
  const m = c.model;
  const pair = FUSION_PRESETS[m.preset]!;
  const under = (key: PropertyKey[], found: z.core.$ZodIssue[] = []) => found.map((i) => ({ ...i, path: [...key, ...i.path] }));
  // each side's overrides against its architecture's fields (strict: an unknown key is named)
  const overrideIssues: z.core.$ZodIssue[] = [];
  const side = (s: Side, e: TrainConfig['model']['text']) => {
    if (e?.pretrained) return undefined;
    const base = presetConfig(s, e?.preset ?? (s === 'text' ? pair.text : pair.image))!;
    const found = checkConfig(encoderConfigKind(s, base).overrides, e?.config ?? {}).error?.issues;
    overrideIssues.push(...under(['model', s, 'config'], found));
    return found?.length ? undefined : { ...base, ...e?.config };
  };
  const text = side('text', m.text);
  const image = side('image', m.image);
  if (overrideIssues.length) return overrideIssues;
  let issues: z.core.$ZodIssue[];
  if (text && image) {
    issues = checkConfig(FusionConfigSchema, {
      text_config: text, image_config: image, fusion_type: m.fusion_type, fusion_num_heads: m.fusion_num_heads,
      fusion_attention_dropout: m.fusion_attention_dropout, pooling: m.pooling, head_hidden_size: m.head_hidden_size, head_dropout: m.head_dropout,
    }).error?.issues ?? [];
  } else {
    issues = [
      ...(text ? under(['text_config'], checkConfig(encoderConfigKind('text', text).schema, text).error?.issues) : []),
      ...(image ? under(['image_config'], checkConfig(encoderConfigKind('image', image).schema, image).error?.issues) : []),
    ];
  }
  const where: Record<string, PropertyKey[]> = { text_config: ['model', 'text', 'config'], image_config: ['model', 'image', 'config'] };
  return issues.map((i) => ({ ...i, path: [...(where[String(i.path[0])] ?? ['model', i.path[0]!]), ...i.path.slice(1)] }));
}

/** Reads a JSON or YAML config file as it is (a mapping of sections), with errors naming the file and line. */
export function readConfigFile(file: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new MmtrainError(`${file}: cannot read the config (${(e as Error).message})`);
  }
  let raw: unknown;
  try {
    raw = /\.json$/i.test(file) ? JSON.parse(text) : YAML.parse(text, { prettyErrors: true });
  } catch (e) {
    const m = e as Error & { linePos?: { line: number }[] };
    const line = m.linePos?.[0]?.line;
    throw new MmtrainError(`${file}${line ? `:${line}` : ''}: cannot parse the config (${m.message.split('\n')[0]})`);
  }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw new MmtrainError(`${file}: the config must be a mapping of sections (model, data, train, eval, ...)`);
  return raw as Record<string, unknown>;
}

/** Reads a JSON or YAML config file, applies overrides, validates. */
export function loadConfig(file: string, sets: string[] = []): TrainConfig {
  return resolveConfig(applyOverrides(readConfigFile(file), sets), file, dirname(resolve(file)));
}

/**
 * A commented example written by `mmtrain init`: every key of the schema, set to its default or commented out
 * (test/config.test.ts fails when a key is missing, so a new key needs its line here).
 */
export const EXAMPLE_CONFIG = `# mmtrain training configuration (YAML). Paths are relative to this file.
name: my-run
seed: 1
out: runs                      # run directories go to out/name

model:
  preset: tiny                 # tiny | mini | small | medium | base | large (random init, no download)
  # text: { preset: bert-tiny, config: { hidden_dropout_prob: 0.1 } }   # a BERT preset and overrides of its config.json fields
  # text: { pretrained: ./bert-base-uncased }     # or a local HF directory: config.json + model.safetensors
  # image: { preset: vit-tiny, config: { image_size: 224, patch_size: 16 } }   # a ViT preset and overrides
  # image: { pretrained: ./vit-base-patch16-224 }
  fusion_type: cross-attention # cross-attention | cls-cross-attention | shared-cls-cross-attention | concat
  pooling: mean                # mean (over real tokens) | cls
  fusion_num_heads: 8
  fusion_attention_dropout: 0
  head_hidden_size: 512
  head_dropout: 0.1
  freeze: { text: false, image: false, untilEpoch: null }   # true, or a number of lower layers; untilEpoch: unfreeze then

# pretrain:                    # mmtrain pretrain: one encoder, no fusion (docs/convergence.md)
  # modality: text             # text: BERT masked language modelling | image: ViT masked image modelling (SimMIM)
  # mlmProbability: 0.15       # text: tokens predicted (80% [MASK], 10% random, 10% kept)
  # wholeWordMask: false       # text: mask all pieces of a word together
  # maskRatio: 0.6             # image: patches masked and reconstructed
  # imageLoss: l1              # image: l1 (SimMIM) | mse (MAE's squared error)

data:
  train: data/train.jsonl      # JSONL {"image","text","label"} or CSV with header image,text,label; or Parquet
                               # files / WebDataset shards: "data/train-*.parquet", "shards/train-{000000..000127}.tar"
  val: data/val.jsonl
  # test: data/test.jsonl
  # columns:                   # Parquet columns / WebDataset fields (docs/data.md)
    # image: image             # Parquet: bytes, a {bytes, path} struct or a path; WebDataset: extensions, "jpg;png"
    # text: text               # WebDataset: a member extension (txt) or a key of the sample's .json
    # label: label             # WebDataset: a member extension (cls) or a key of the sample's .json
  stream:                      # Parquet / WebDataset only
    readers: 2                 # row groups / shards read at once per process
    shuffleBuffer: 1000        # samples mixed across row groups / shards (0: off)
    keepMB: 64                 # samples (not images) kept in memory after the first epoch, up to this (0: off)
  # labels: [mismatch, match]  # class names in index order (discovered when absent)
  # tokenizer: ./tokenizer.json   # or a vocab.txt; default: bundled bert-base-uncased
  doLowerCase: true            # for a vocab.txt tokenizer (tokenizer.json carries its own normalizer)
  maxLength: 128
  padding: longest             # longest (dynamic) | max_length
  bucketByLength: false
  onBadSample: error           # error | skip
  prefetch: 2                  # batches prepared ahead
  decodeThread: true           # decode images on a worker thread
  cache: false                 # true: cache preprocessed images under the run directory (or a folder)
  image:
    size: 224                  # default: the image encoder's image_size
    resize: shorter-side       # shorter-side (+ center crop) | exact
    # resizeSize: 256           # resize to this, then the centre size x size crop (default: size)
    resample: bilinear         # bilinear | bicubic (Pillow's; a pretrained image encoder's processor may set it)
    mean: [0.485, 0.456, 0.406]
    std: [0.229, 0.224, 0.225]
    maxPixels: 100000000       # larger images are refused (decompression bombs)
    augment:                   # flips change the meaning of "left"/"right" captions
      horizontalFlip: 0
      randomResizedCrop: null
      # randomResizedCrop: { scale: [0.08, 1], ratio: [0.75, 1.3333] }
      colorJitter: null
      # colorJitter: { brightness: 0.4, contrast: 0.4, saturation: 0.4 }

train:
  epochs: 10
  # maxSteps: 1000             # stop after this many optimizer steps
  batchSize: 32
  gradAccumulation: 1
  lr: 1.0e-4
  # encoderLr: 2.0e-5          # separate lr for the two encoders
  # textEncoderLr: 2.0e-5      # or one per encoder (a modality-balancing knob)
  # imageEncoderLr: 2.0e-5
  # layerDecay: 0.8            # layer-wise lr decay for encoder layers
  weightDecay: 0.01            # not applied to biases and LayerNorm weights
  betas: [0.9, 0.999]
  eps: 1.0e-8
  schedule: { type: cosine, warmupRatio: 0.06, minLrRatio: 0 }   # cosine | linear | constant | original
  # schedule: { type: cosine, warmupSteps: 100 }   # warmup by steps instead of a ratio
  clipGradNorm: 1.0            # null: no clipping
  device: auto                 # auto (the first GPU if LibTorch sees one, else cpu) | cpu | cuda | cuda:N
  precision: fp32              # fp32 | bf16 (autocast) | fp16 (GPU: autocast with dynamic loss scaling)
  # lossScale: { init: 65536, growthFactor: 2, backoffFactor: 0.5, growthInterval: 2000 }   # fp16 only
  # tf32: false                # TF32 matmuls for fp32 on Ampere+ GPUs
  labelSmoothing: 0
  maxNonFinite: 3              # non-finite steps in a row before rolling back with half the lr
  # threads: 4                 # intra-op threads (default: all cores)
  featureCache: true           # frozen encoders, no augmentation: compute their outputs once

eval:
  every: epoch                 # epoch, or a number of steps
  metric: accuracy             # accuracy | macro_f1 | auroc | loss
  batchSize: 64
  # earlyStopping: { patience: 3, minDelta: 0.001 }

checkpoint: { keepLast: 2, every: epoch, saveBest: true }

diagnostics:                   # grad norms per module/layer, update ratios, attention entropy, modality scores
  enabled: true
  every: 50                    # steps between records; loss spikes are checked every step
  perLayer: true               # gradient norms per layer as well as per module
  attentionEntropy: true       # cross-attention entropy per direction
  probe: true                  # unimodal linear-probe accuracy at each validation
  probeSets: []                # labelled manifests probed on one encoder at the start and each validation:
                               # [{ data: probe-color.jsonl, modality: text, name: color }]
  spike: { window: 50, z: 6, minRatio: 1.5, minDelta: 0.3 }

balance:                       # modality balancing
  method: none                 # none | ogm | ogm-ge (Peng et al., CVPR 2022)
  alpha: 0.5
  startEpoch: 0                # modulate from this epoch (0-based) ...
  endEpoch: null               # ... up to, not including, this one (null: to the end)
  modalityDropout: 0           # probability of dropping one modality per training sample

distributed: { timeoutS: 300, bucketMB: 25, overlap: true }   # used under mmtrain launch, torchrun or Slurm (docs/distributed.md)

log: { every: 10, tensorboard: true, progress: auto, report: true }   # progress: auto | bar | lines | none; report: report.html at the end of mmtrain train
`;
