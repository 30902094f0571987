// Studies: a grid of configuration overrides x seeds, each run a `mmtrain train` child process (one after another,
// or several at once), resumable (runs with result.json are skipped, interrupted runs resume from their
// checkpoint), aggregated per variant: best and final validation metric (mean ± std over seeds), steps to reach a
// target, loss spikes, diverged runs and wall time.
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import YAML from 'yaml';
import { z } from 'zod';
import { MmtrainError } from '../errors.js';
import { generateSynthetic } from '../data/synth.js';
import { applyOverrides, resolveConfig } from './config.js';
import { parseConfig } from '../validation.js';
import { listCheckpoints } from './checkpoint.js';
import { readRecords } from './records.js';
import { makeFolder, writeFileAtomic, writeJsonAtomic } from '../files.js';
import { mean, meanCi95, median, sampleStd, welchDiff95 } from '../stats.js';
import { generatePretrainCorpus, writeProbeSets } from '../data/synth-pretrain.js';

const METRICS = ['accuracy', 'macro_f1', 'auroc', 'loss'] as const;

export const StudySchema = z.strictObject({
  name: z.string().regex(/^[\w.-]+$/, 'letters, digits, _ . - only'),
  /** folder of study directories */
  out: z.string().default('studies'),
  /** the configuration every run starts from: a config file (relative to the study file) or the config itself */
  base: z.union([z.string(), z.record(z.string(), z.unknown())]),
  seeds: z.array(z.number().int().min(0)).min(1).default([1, 2, 3]),
  /** named variants, each a set of overrides ("train.lr": 1e-4) */
  variants: z.array(z.strictObject({ name: z.string().regex(/^[\w.=,+-]+$/, 'letters, digits and _ . = , + - only'), set: z.record(z.string(), z.unknown()).default({}) })).min(1).optional(),
  /** a cartesian grid of overrides: key path -> values; combined with every variant */
  grid: z.record(z.string(), z.array(z.unknown()).min(1)).optional(),
  /** the validation metric to compare and an optional level for "steps to target" */
  metric: z.enum(METRICS).default('accuracy'),
  target: z.number().optional(),
  /** runs at a time (each gets cores / parallel threads) */
  parallel: z.number().int().positive().default(1),
  /** synthesize a data set into <study>/data and train on it (data.* of the base config may then be omitted) */
  synth: z.strictObject({
    task: z.enum(['match', 'imbalanced']).default('match'),
    difficulty: z.enum(['easy', 'medium', 'hard']).default('easy'),
    n: z.number().int().positive().default(4000),
    imageSize: z.number().int().positive().default(64),
    seed: z.number().int().min(0).default(1),
  }).optional(),
  /**
   * with synth: a pretraining corpus of the same synthetic world, disjoint from the task's samples (captions.txt,
   * images.jsonl), into <study>/corpus, and probe sets of the task's attributes (probe-color.jsonl, probe-shape.jsonl)
   * beside its data
   */
  corpus: z.strictObject({
    captions: z.number().int().positive().default(20000),
    images: z.number().int().positive().default(4000),
    seed: z.number().int().min(0).default(5),
  }).optional(),
  /**
   * encoders pretrained once before the runs (mmtrain pretrain) into <study>/pretrained/<name>: the base config with
   * these overrides (its model.text / model.image say which encoder), trained on `data`. In every path and override
   * value, ${study} is the study directory, ${data} the synthesized task's folder and ${corpus} the corpus folder.
   */
  pretrain: z.array(z.strictObject({
    name: z.string().regex(/^[\w.-]+$/, 'letters, digits, _ . - only'),
    modality: z.enum(['text', 'image']),
    data: z.string(),
    val: z.string().optional(),
    set: z.record(z.string(), z.unknown()).default({}),
  })).optional(),
  /** the variant every other is compared with (difference of final metrics, 95% interval); default: the first */
  reference: z.string().optional(),
});

export type StudySpec = z.infer<typeof StudySchema>;
export type StudyInput = z.input<typeof StudySchema>;

export interface StudyRun {
  /** <variant>/seed-<seed> */
  id: string;
  variant: string;
  seed: number;
  overrides: Record<string, unknown>;
}

/** variants x grid x seeds, in a stable order (variant-major, seeds innermost). */
export function expandStudy(spec: Pick<StudySpec, 'variants' | 'grid' | 'seeds'>): StudyRun[] {
  const variants = spec.variants ?? [{ name: 'base', set: {} }];
  let cells: { name: string; set: Record<string, unknown> }[] = variants.map((v) => ({ name: v.name, set: { ...v.set } }));
  for (const [key, values] of Object.entries(spec.grid ?? {})) {
    cells = cells.flatMap((c) => values.map((v) => ({
      name: `${c.name === 'base' && !spec.variants ? '' : `${c.name},`}${key}=${formatValue(v)}`,
      set: { ...c.set, [key]: v },
    })));
  }
  const names = new Set<string>();
  for (const c of cells) {
    if (names.has(c.name)) throw new MmtrainError(`study: two variants are both named "${c.name}"; give variants distinct names`);
    names.add(c.name);
  }
  return cells.flatMap((c) => spec.seeds.map((seed) => ({ id: `${c.name}/seed-${seed}`, variant: c.name, seed, overrides: c.set })));
}

function formatValue(v: unknown): string {
  return typeof v === 'string' ? v : typeof v === 'number' ? String(v) : JSON.stringify(v);
}

/** A run's directory: runs/<the variant name made safe for file systems>/seed-<seed>. */
export function runPath(studyDir: string, r: { variant: string; seed: number }): string {
  return join(studyDir, 'runs', r.variant.replace(/[^\w.=,+-]/g, '_'), `seed-${r.seed}`);
}

/** Reads a study file (YAML or JSON) and checks it in full. */
export function loadStudy(file: string): { spec: StudySpec; baseDir: string } {
  if (!existsSync(file)) throw new MmtrainError(`${file}: no such study file`);
  let raw: unknown;
  try {
    raw = YAML.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new MmtrainError(`${file}: not valid YAML/JSON: ${(e as Error).message}`);
  }
  return { spec: parseStudy(raw, file), baseDir: dirname(resolve(file)) };
}

export function parseStudy(raw: unknown, source = 'study'): StudySpec {
  const spec = parseConfig(StudySchema, raw, source, { what: 'study' });
  if (!spec.variants && !spec.grid) throw new MmtrainError(`${source}: invalid study: give variants, grid, or both`);
  if (spec.reference !== undefined) {
    const names = [...new Set(expandStudy(spec).map((r) => r.variant))];
    if (!names.includes(spec.reference)) throw new MmtrainError(`${source}: invalid study: reference "${spec.reference}" is not a variant; expected one of ${names.join(', ')}`);
  }
  return spec;
}

export interface RunSummary {
  id: string;
  variant: string;
  seed: number;
  status: 'finished' | 'failed' | 'pending';
  best: number | null;
  final: number | null;
  bestStep: number | null;
  stepsToTarget: number | null;
  spikes: number;
  diverged: boolean;
  steps: number;
  wallS: number | null;
  test: number | null;
  error?: string;
  /** linear-probe accuracy per probe set ("text:color"): at the start of the run and at its last validation */
  probes?: Record<string, { start: number | null; end: number | null }>;
  /** median over the diagnostics records of each encoder's gradient norm over the head's */
  gradRatio?: { text: number | null; image: number | null };
}

export interface VariantSummary {
  variant: string;
  overrides: Record<string, unknown>;
  runs: number;
  finished: number;
  best: { mean: number; std: number } | null;
  final: { mean: number; std: number } | null;
  /** mean over the runs that reached the target; reached counts them */
  stepsToTarget: { mean: number; reached: number } | null;
  spikes: number;
  diverged: number;
  wallS: number | null;
  /** the final metric's mean and the half-width of its 95% interval over seeds (Student's t) */
  finalCi: { mean: number; half: number } | null;
  /** final metric minus the reference variant's, with its 95% interval (Welch); exceeds: the interval excludes 0 */
  vsReference: { reference: string; diff: number; half: number; exceeds: boolean } | null;
  /** mean over the finished runs of their probes at the start and the end */
  probes: Record<string, { start: number | null; end: number | null }>;
  gradRatio: { text: number | null; image: number | null };
}

/** An encoder pretrained for a study: where it is and what its own run measured. */
export interface PretrainSummary {
  name: string;
  modality: 'text' | 'image';
  dir: string;
  steps: number;
  /** validation loss at the first and the last validation (MLM cross-entropy, or MIM L1) */
  valLoss: { first: number | null; last: number | null };
  /** masked-token accuracy at the last validation (text) */
  valAccuracy: number | null;
  /** linear-probe accuracy per probe set, at the start (random initialisation) and at the end */
  probes: Record<string, { start: number | null; end: number | null }>;
  wallS: number | null;
}

export interface StudySummary {
  name: string;
  dir: string;
  metric: string;
  target: number | null;
  variants: VariantSummary[];
  runs: RunSummary[];
  pretrained?: PretrainSummary[];
}

/** Mean and spread over seeds; one seed has no spread to show, so its std is 0. */
function meanStd(xs: number[]): { mean: number; std: number } | null {
  if (!xs.length) return null;
  return { mean: mean(xs), std: xs.length > 1 ? sampleStd(xs) : 0 };
}

/** One run's numbers, from its metrics.jsonl and result.json. */
export function summarizeRun(dir: string, r: StudyRun, metric: StudySpec['metric'], target: number | null): RunSummary {
  const failedFile = join(dir, 'failed.json');
  const finished = existsSync(join(dir, 'result.json'));
  const records = readRecords(join(dir, 'metrics.jsonl'));
  const evals = records.filter((x) => x.event === 'eval' && x.split === 'val' && typeof x[metric] === 'number');
  const better = (a: number, b: number) => (metric === 'loss' ? a < b : a > b);
  let best: (typeof evals)[number] | null = null;
  for (const e of evals) if (!best || better(e[metric], best[metric])) best = e;
  const reach = target === null ? undefined : evals.find((e) => (metric === 'loss' ? e[metric] <= target : e[metric] >= target));
  const trainLoss = records.filter((x) => x.event === 'train').map((x) => x.loss as number);
  const result = finished ? JSON.parse(readFileSync(join(dir, 'result.json'), 'utf8')) : null;
  const failed = !finished && existsSync(failedFile) ? JSON.parse(readFileSync(failedFile, 'utf8')) : null;
  const lastLoss = trainLoss[trainLoss.length - 1];
  const diverged = Boolean(failed) || records.some((x) => x.event === 'nonfinite' || x.event === 'rollback') ||
    (lastLoss !== undefined && (!Number.isFinite(lastLoss) || lastLoss > 1.5 * trainLoss[0]!));
  const test = result?.test && typeof result.test[metric] === 'number' ? result.test[metric] as number : null;
  return {
    id: r.id, variant: r.variant, seed: r.seed, status: finished ? 'finished' : failed ? 'failed' : 'pending',
    best: best ? best[metric] : null, final: evals.length ? evals[evals.length - 1]![metric] : null, bestStep: best ? best.step : null,
    stepsToTarget: reach ? reach.step : null, spikes: records.filter((x) => x.event === 'spike').length, diverged,
    steps: result?.steps ?? records.filter((x) => x.event === 'train').pop()?.step ?? 0, wallS: result?.wallS ?? null, test,
    ...(failed ? { error: String(failed.error) } : {}),
    probes: probesOf(records), gradRatio: gradRatios(records),
  };
}

/** The first ("start") and the last probe record per probe set, keyed "modality:name". */
function probesOf(records: Record<string, any>[]): Record<string, { start: number | null; end: number | null }> {
  const out: Record<string, { start: number | null; end: number | null }> = {};
  for (const r of records) {
    if (r.event !== 'probe') continue;
    const k = `${r.modality}:${r.name}`;
    const acc = typeof r.accuracy === 'number' ? r.accuracy : null;
    out[k] ??= { start: null, end: null };
    if (r.when === 'start') out[k].start = acc;
    else out[k].end = acc;
  }
  return out;
}

/** Median over the diagnostics records of each encoder's gradient norm over the head's (null when never measured). */
function gradRatios(records: Record<string, any>[]): { text: number | null; image: number | null } {
  const ratio = (enc: string) => {
    const xs = records.filter((r) => r.event === 'diagnostics' && typeof r.grad_norm?.[enc] === 'number' && r.grad_norm.classifier > 0).map((r) => r.grad_norm[enc] / r.grad_norm.classifier);
    return xs.length ? median(xs) : null;
  };
  return { text: ratio('text_encoder'), image: ratio('image_encoder') };
}

/** Replaces ${study}, ${data} and ${corpus} in every string of a value. */
export function fillPlaces<T>(v: T, places: Record<string, string>): T {
  if (typeof v === 'string') return v.replace(/\$\{(\w+)\}/g, (m, k: string) => places[k] ?? m) as T;
  if (Array.isArray(v)) return v.map((x) => fillPlaces(x, places)) as T;
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, fillPlaces(x, places)])) as T;
  return v;
}

/** Per-variant means, spreads and 95% intervals over seeds, each compared with the reference variant (default: the first). */
export function aggregate(runs: RunSummary[], plan: StudyRun[], reference?: string): VariantSummary[] {
  const order = [...new Set(plan.map((r) => r.variant))];
  const ref = reference ?? order[0]!;
  if (!order.includes(ref)) throw new MmtrainError(`study: reference variant "${ref}" is not one of ${order.join(', ')}`);
  const finals = (v: string) => runs.filter((r) => r.variant === v && r.status === 'finished' && r.final !== null).map((r) => r.final!);
  const meanOf = (xs: (number | null)[]) => {
    const ys = xs.filter((x): x is number => x !== null && Number.isFinite(x));
    return ys.length ? mean(ys) : null;
  };
  return order.map((variant) => {
    const rs = runs.filter((r) => r.variant === variant);
    const done = rs.filter((r) => r.status === 'finished');
    const reached = done.filter((r) => r.stepsToTarget !== null).map((r) => r.stepsToTarget!);
    const walls = done.map((r) => r.wallS).filter((x): x is number => x !== null);
    return {
      variant, overrides: plan.find((p) => p.variant === variant)!.overrides, runs: rs.length, finished: done.length,
      best: meanStd(done.map((r) => r.best).filter((x): x is number => x !== null)),
      final: meanStd(done.map((r) => r.final).filter((x): x is number => x !== null)),
      stepsToTarget: reached.length ? { mean: mean(reached), reached: reached.length } : null,
      spikes: rs.reduce((a, r) => a + r.spikes, 0) / Math.max(1, rs.length),
      diverged: rs.filter((r) => r.diverged).length,
      wallS: walls.length ? mean(walls) : null,
      finalCi: finals(variant).length ? meanCi95(finals(variant)) : null,
      vsReference: variant === ref || !finals(variant).length || !finals(ref).length ? null : (() => {
        const d = welchDiff95(finals(variant), finals(ref));
        return { reference: ref, ...d, exceeds: Number.isFinite(d.half) && Math.abs(d.diff) > d.half };
      })(),
      probes: Object.fromEntries([...new Set(done.flatMap((r) => Object.keys(r.probes ?? {})))].map((k) => [k, {
        start: meanOf(done.map((r) => r.probes?.[k]?.start ?? null)), end: meanOf(done.map((r) => r.probes?.[k]?.end ?? null)),
      }])),
      gradRatio: { text: meanOf(done.map((r) => r.gradRatio?.text ?? null)), image: meanOf(done.map((r) => r.gradRatio?.image ?? null)) },
    };
  });
}

/**
 * The summary table's cells, shared by table.md and report.html: headers (with the metric's unit when `unit`) and a
 * row per variant.
 */
export function studyTableCells(s: StudySummary, unit = false): { head: string[]; rows: string[][] } {
  const u = unit && s.metric !== 'loss' ? ' (%)' : '';
  const pm = (v: { mean: number; std: number } | null) => (v ? (s.metric === 'loss' ? `${v.mean.toFixed(4)} ± ${v.std.toFixed(4)}` : `${(v.mean * 100).toFixed(1)} ± ${(v.std * 100).toFixed(1)}`) : 'n/a');
  const steps = (v: VariantSummary) => (s.target === null ? 'n/a' : v.stepsToTarget ? `${Math.round(v.stepsToTarget.mean)} (${v.stepsToTarget.reached}/${v.finished})` : `never (0/${v.finished})`);
  const head = ['variant', 'runs', `best val ${s.metric}${u}`, `final val ${s.metric}${u}`, `steps to ${s.target ?? 'target'}`, 'loss spikes / run', 'diverged', 'wall s / run'];
  const rows = s.variants.map((v) => [v.variant, `${v.finished}/${v.runs}`, pm(v.best), pm(v.final), steps(v), v.spikes.toFixed(1), String(v.diverged), v.wallS === null ? 'n/a' : v.wallS.toFixed(0)]);
  // the final metric's 95% interval and its difference from the reference variant (a single seed has no interval)
  if (s.variants.some((v) => v.vsReference)) {
    const num = (x: number) => (s.metric === 'loss' ? x.toFixed(4) : (x * 100).toFixed(1));
    const ref = s.variants.find((v) => v.vsReference)!.vsReference!.reference;
    head.splice(4, 0, `final 95% CI${u}`, `vs ${ref} (95% CI)`);
    s.variants.forEach((v, i) => rows[i]!.splice(4, 0,
      v.finalCi && Number.isFinite(v.finalCi.half) ? `${num(v.finalCi.mean)} ± ${num(v.finalCi.half)}` : 'n/a',
      v.vsReference ? `${v.vsReference.diff >= 0 ? '+' : ''}${num(v.vsReference.diff)}${Number.isFinite(v.vsReference.half) ? ` ± ${num(v.vsReference.half)}` : ' (no interval: one seed)'}${v.vsReference.exceeds ? ' *' : ''}` : v.variant === ref ? 'reference' : 'n/a'));
  }
  // probes of the encoders (start -> end of the run) and the encoders' gradient norms over the head's
  const probeKeys = [...new Set(s.variants.flatMap((v) => Object.keys(v.probes ?? {})))].sort();
  const pct = (x: number | null | undefined) => (x === null || x === undefined ? 'n/a' : (x * 100).toFixed(1));
  for (const k of probeKeys) {
    head.push(`probe ${k}${u} start → end`);
    s.variants.forEach((v, i) => rows[i]!.push(`${pct(v.probes?.[k]?.start)} → ${pct(v.probes?.[k]?.end)}`));
  }
  if (s.variants.some((v) => v.gradRatio && (v.gradRatio.text !== null || v.gradRatio.image !== null))) {
    head.push('grad norm text / head', 'grad norm image / head');
    const r = (x: number | null | undefined) => (x === null || x === undefined ? 'n/a' : x.toFixed(2));
    s.variants.forEach((v, i) => rows[i]!.push(r(v.gradRatio?.text), r(v.gradRatio?.image)));
  }
  return { head, rows };
}

/** The summary table in Markdown. */
export function studyTable(s: StudySummary): string {
  const { head, rows } = studyTableCells(s);
  const line = (cells: string[]) => `| ${cells.join(' | ')} |`;
  const unit = s.metric === 'loss' ? '' : ' (%, mean ± std over seeds)';
  const notes: string[] = [];
  if (s.variants.some((v) => v.vsReference)) notes.push('95% CI: Student\'s t over seeds; the difference from the reference by Welch\'s t; * marks a difference whose interval excludes 0 (larger than the seed-to-seed spread).');
  if (s.variants.some((v) => Object.keys(v.probes ?? {}).length)) notes.push('Probes: linear-probe accuracy of one encoder\'s pooled vector on a labelled set (modality:set), at the start of the run and at its last validation, mean over seeds.');
  if (s.variants.some((v) => v.gradRatio && v.gradRatio.text !== null)) notes.push('Gradient norms: each encoder\'s over the head\'s, median over a run\'s diagnostics records, mean over seeds.');
  const pre = s.pretrained?.length ? `\n## Pretrained encoders\n\n| encoder | steps | val loss first → last | masked-token accuracy | probes (random init → pretrained) | wall s |\n|---|---|---|---|---|---|\n${s.pretrained.map((p) => `| ${p.name} (${p.modality}) | ${p.steps} | ${p.valLoss.first?.toFixed(3) ?? 'n/a'} → ${p.valLoss.last?.toFixed(3) ?? 'n/a'} | ${p.valAccuracy === null ? 'n/a' : `${(p.valAccuracy * 100).toFixed(1)}%`} | ${Object.entries(p.probes).map(([k, v]) => `${k} ${v.start === null ? 'n/a' : (v.start * 100).toFixed(1)} → ${v.end === null ? 'n/a' : (v.end * 100).toFixed(1)}`).join('; ') || 'n/a'} | ${p.wallS?.toFixed(0) ?? 'n/a'} |`).join('\n')}\n` : '';
  return `# Study ${s.name}\n\nValidation ${s.metric}${unit}.\n\n${line(head)}\n|${'---|'.repeat(head.length)}\n${rows.map(line).join('\n')}\n${notes.length ? `\n${notes.join('\n')}\n` : ''}${pre}`;
}

export interface StudyOptions {
  /** overrides the spec's parallel */
  parallel?: number;
  /** folder for the study directory (overrides spec.out) */
  out?: string;
  print?: (line: string) => void;
  signal?: AbortSignal;
  /** the CLI entry run for each training (tests point it elsewhere) */
  cli?: string;
}

const CLI = fileURLToPath(new URL('../cli/main.js', import.meta.url));

/** Runs (or resumes) a study and writes summary.json and table.md into its directory. */
export async function runStudy(spec: StudySpec, baseDir: string, opts: StudyOptions = {}): Promise<StudySummary> {
  const print = opts.print ?? console.log;
  const out = resolve(baseDir, opts.out ?? spec.out);
  const dir = join(out, spec.name);
  makeFolder(join(dir, 'configs'));
  writeJsonAtomic(join(dir, 'study.json'), spec);

  // the base configuration, with synthesized data when asked
  let base: Record<string, unknown>;
  let configDir = baseDir;
  if (typeof spec.base === 'string') {
    const f = isAbsolute(spec.base) ? spec.base : resolve(baseDir, spec.base);
    if (!existsSync(f)) throw new MmtrainError(`study ${spec.name}: base config ${f} does not exist`);
    base = YAML.parse(readFileSync(f, 'utf8')) as Record<string, unknown>;
    configDir = dirname(f);
  } else {
    base = structuredClone(spec.base);
  }
  if (spec.synth) {
    const dataDir = join(dir, 'data');
    if (!existsSync(join(dataDir, 'test.jsonl'))) {
      print(`study ${spec.name}: synthesizing ${spec.synth.n} ${spec.synth.task} samples (${spec.synth.difficulty}) into ${dataDir}`);
      await generateSynthetic({ out: dataDir, ...spec.synth });
    }
    const data = (base.data ?? {}) as Record<string, unknown>;
    base.data = { train: join(dataDir, 'train.jsonl'), val: join(dataDir, 'val.jsonl'), test: join(dataDir, 'test.jsonl'), ...data };
  }
  const places: Record<string, string> = { study: dir, data: join(dir, 'data'), corpus: join(dir, 'corpus') };
  const fill = <T>(v: T): T => fillPlaces(v, places);
  base = fill(base);
  if (spec.corpus) {
    if (!spec.synth) throw new MmtrainError(`study ${spec.name}: corpus is drawn from the synthetic world of synth, which is not set`);
    if (!existsSync(join(places.corpus!, 'corpus.json'))) {
      print(`study ${spec.name}: synthesizing a pretraining corpus (${spec.corpus.captions} captions, ${spec.corpus.images} images, disjoint from the task) into ${places.corpus}`);
      await generatePretrainCorpus({ out: places.corpus!, ...spec.corpus, imageSize: spec.synth.imageSize, exclude: spec.synth });
    }
    if (!existsSync(join(places.data!, 'probe-binding.jsonl'))) writeProbeSets(places.data!, spec.synth);
  }
  const pretrained = await pretrainEncoders(spec, dir, base, fill, print, opts);

  // every run's configuration is checked before the first one starts
  const plan = expandStudy(spec);
  const configs = plan.map((r) => {
    const raw = applyOverrides(base, Object.entries({ ...fill(r.overrides), seed: r.seed, name: r.variant }).map(([k, v]) => `${k}=${JSON.stringify(v)}`));
    const c = resolveConfig(raw, `study ${spec.name}, variant ${r.variant} seed ${r.seed}`, configDir);
    c.log.progress = 'none';
    const file = join(dir, 'configs', `${r.id.replace(/[^\w.=,+-]/g, '_')}.json`);
    writeJsonAtomic(file, c);
    return file;
  });

  const parallel = Math.max(1, Math.min(opts.parallel ?? spec.parallel, plan.length));
  const threads = Math.max(1, Math.floor(availableParallelism() / parallel));
  const todo = plan.map((r, i) => ({ r, i })).filter(({ r }) => !existsSync(join(runPath(dir, r), 'result.json')));
  print(`study ${spec.name}: ${plan.length} runs (${plan.length - todo.length} already finished), ${parallel} at a time with ${threads} thread(s) each; ${dir}`);

  let done = plan.length - todo.length;
  const runOne = async ({ r, i }: { r: StudyRun; i: number }) => {
    const runDir = runPath(dir, r);
    const resume = existsSync(join(runDir, 'config.json')) && listCheckpoints(runDir).length > 0;
    if (!resume) rmSync(runDir, { recursive: true, force: true });
    rmSync(join(runDir, 'failed.json'), { force: true });
    makeFolder(dirname(runDir));
    const args = [opts.cli ?? CLI, '--threads', String(threads), 'train', '--config', configs[i]!, ...(resume ? ['--resume', runDir] : ['--run-dir', runDir])];
    const t0 = performance.now();
    const { code, stderr } = await runChild(args, opts.signal);
    if (opts.signal?.aborted) return;
    if (code !== 0) {
      makeFolder(runDir);
      writeJsonAtomic(join(runDir, 'failed.json'), { code, error: stderr.trim().split('\n').slice(-5).join('\n') });
    }
    done++;
    const s = summarizeRun(runDir, r, spec.metric, spec.target ?? null);
    const v = (x: number | null) => (x === null ? 'n/a' : spec.metric === 'loss' ? x.toFixed(4) : `${(x * 100).toFixed(1)}%`);
    print(`[${done}/${plan.length}] ${r.variant} seed ${r.seed}: ${code === 0 ? `best val ${spec.metric} ${v(s.best)} (step ${s.bestStep}), final ${v(s.final)}${s.diverged ? ', diverged' : ''} in ${((performance.now() - t0) / 1000).toFixed(0)} s${resume ? ' (resumed)' : ''}` : `failed: ${s.error}`}`);
  };
  const queue = [...todo];
  await Promise.all(Array.from({ length: parallel }, async () => {
    while (queue.length && !opts.signal?.aborted) await runOne(queue.shift()!);
  }));

  const runs = plan.map((r) => summarizeRun(runPath(dir, r), r, spec.metric, spec.target ?? null));
  const summary: StudySummary = {
    name: spec.name, dir, metric: spec.metric, target: spec.target ?? null, variants: aggregate(runs, plan, spec.reference), runs,
    ...(pretrained.length ? { pretrained } : {}),
  };
  writeJsonAtomic(join(dir, 'summary.json'), summary);
  writeFileAtomic(join(dir, 'table.md'), studyTable(summary));
  return summary;
}

/** Runs `node args...`; an abort forwards SIGINT so the child checkpoints and stops. */
function runChild(args: string[], signal?: AbortSignal): Promise<{ code: number; stderr: string }> {
  return new Promise((res, rej) => {
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => {
      stderr = (stderr + d.toString()).slice(-20000);
    });
    const onAbort = () => child.kill('SIGINT');
    signal?.addEventListener('abort', onAbort, { once: true });
    child.on('error', rej);
    child.on('close', (code, sig) => {
      signal?.removeEventListener('abort', onAbort);
      res({ code: code ?? (sig ? 128 : 1), stderr });
    });
  });
}

/** Where a study's directory is, and its summary when it has one. */
export function readStudySummary(dir: string): StudySummary {
  const f = join(dir, 'summary.json');
  if (!existsSync(f)) throw new MmtrainError(`${dir}: no summary.json (not a study directory, or the study has not run yet)`);
  return JSON.parse(readFileSync(f, 'utf8')) as StudySummary;
}

/**
 * The study's pretraining steps (spec.pretrain), each an `mmtrain pretrain` child process into
 * <study>/pretrained/<name>, skipped when its model is there, resumed when its run was interrupted.
 */
async function pretrainEncoders(spec: StudySpec, dir: string, base: Record<string, unknown>, fill: <T>(v: T) => T, print: (line: string) => void, opts: StudyOptions): Promise<PretrainSummary[]> {
  const out: PretrainSummary[] = [];
  for (const p of spec.pretrain ?? []) {
    const modelDir = join(dir, 'pretrained', p.name);
    const runDir = join(modelDir, 'run');
    if (!existsSync(join(modelDir, 'model.safetensors'))) {
      // the base config for everything but the data, with the step's overrides (which name its encoder preset)
      const raw = applyOverrides(base, Object.entries(fill(p.set)).map(([k, v]) => `${k}=${JSON.stringify(v)}`)) as Record<string, any>;
      raw.data = { ...raw.data, train: fill(p.data), ...(p.val ? { val: fill(p.val) } : {}) };
      if (!p.val) delete raw.data.val;
      delete raw.data.test;
      raw.diagnostics = { ...raw.diagnostics, probeSets: (raw.diagnostics?.probeSets ?? []).filter((s: { modality: string }) => s.modality === p.modality) };
      raw.name = `pretrain-${p.name}`;
      raw.log = { ...raw.log, progress: 'none' };
      const file = join(dir, 'configs', `pretrain-${p.name}.json`);
      writeJsonAtomic(file, raw);
      const resume = existsSync(runDir) && listCheckpoints(runDir).length > 0;
      if (!resume) rmSync(modelDir, { recursive: true, force: true });
      print(`study ${spec.name}: pretraining the ${p.modality} encoder "${p.name}" on ${fill(p.data)}${resume ? ' (resumed)' : ''}`);
      const t0 = performance.now();
      const { code, stderr } = await runChild([opts.cli ?? CLI, 'pretrain', '--modality', p.modality, '--data', fill(p.data), '--out', modelDir, '--config', file, ...(resume ? ['--resume'] : [])], opts.signal);
      if (opts.signal?.aborted) throw new MmtrainError(`study ${spec.name}: interrupted while pretraining "${p.name}"; run the same command again to resume`);
      if (code !== 0) throw new MmtrainError(`study ${spec.name}: pretraining "${p.name}" failed:\n${stderr.trim().split('\n').slice(-5).join('\n')}`);
      print(`study ${spec.name}: pretrained "${p.name}" in ${((performance.now() - t0) / 1000).toFixed(0)} s: ${modelDir}`);
    }
    const records = readRecords(join(runDir, 'metrics.jsonl'));
    const evals = records.filter((r) => r.event === 'eval' && r.split === 'val');
    const result = existsSync(join(runDir, 'result.json')) ? JSON.parse(readFileSync(join(runDir, 'result.json'), 'utf8')) : null;
    const num = (x: unknown) => (typeof x === 'number' && Number.isFinite(x) ? x : null);
    out.push({
      name: p.name, modality: p.modality, dir: modelDir, steps: result?.steps ?? 0,
      valLoss: { first: num(evals[0]?.loss), last: num(evals[evals.length - 1]?.loss) }, valAccuracy: num(evals[evals.length - 1]?.accuracy),
      probes: probesOf(records), wallS: result?.wallS ?? null,
    });
  }
  return out;
}
