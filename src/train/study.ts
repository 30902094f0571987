// Studies: a grid of configuration overrides x seeds, each run a `mmtrain train` child process (one after another,
// or several at once), resumable (runs with result.json are skipped, interrupted runs resume from their
// checkpoint), aggregated per variant: best and final validation metric (mean ± std over seeds), steps to reach a
// target, loss spikes, diverged runs and wall time.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
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
import { writeFileAtomic, writeJsonAtomic } from '../files.js';
import { mean, sampleStd } from '../stats.js';

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
}

export interface StudySummary {
  name: string;
  dir: string;
  metric: string;
  target: number | null;
  variants: VariantSummary[];
  runs: RunSummary[];
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
  };
}

/** Per-variant means and spreads over seeds. */
export function aggregate(runs: RunSummary[], plan: StudyRun[]): VariantSummary[] {
  const order = [...new Set(plan.map((r) => r.variant))];
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
  return {
    head: ['variant', 'runs', `best val ${s.metric}${u}`, `final val ${s.metric}${u}`, `steps to ${s.target ?? 'target'}`, 'loss spikes / run', 'diverged', 'wall s / run'],
    rows: s.variants.map((v) => [v.variant, `${v.finished}/${v.runs}`, pm(v.best), pm(v.final), steps(v), v.spikes.toFixed(1), String(v.diverged), v.wallS === null ? 'n/a' : v.wallS.toFixed(0)]),
  };
}

/** The summary table in Markdown. */
export function studyTable(s: StudySummary): string {
  const { head, rows } = studyTableCells(s);
  const line = (cells: string[]) => `| ${cells.join(' | ')} |`;
  const unit = s.metric === 'loss' ? '' : ' (%, mean ± std over seeds)';
  return `# Study ${s.name}\n\nValidation ${s.metric}${unit}.\n\n${line(head)}\n|${'---|'.repeat(head.length)}\n${rows.map(line).join('\n')}\n`;
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
  mkdirSync(join(dir, 'configs'), { recursive: true });
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

  // every run's configuration is checked before the first one starts
  const plan = expandStudy(spec);
  const configs = plan.map((r) => {
    const raw = applyOverrides(base, Object.entries({ ...r.overrides, seed: r.seed, name: r.variant }).map(([k, v]) => `${k}=${JSON.stringify(v)}`));
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
    mkdirSync(dirname(runDir), { recursive: true });
    const args = [opts.cli ?? CLI, '--threads', String(threads), 'train', '--config', configs[i]!, ...(resume ? ['--resume', runDir] : ['--run-dir', runDir])];
    const t0 = performance.now();
    const { code, stderr } = await runChild(args, opts.signal);
    if (opts.signal?.aborted) return;
    if (code !== 0) {
      mkdirSync(runDir, { recursive: true });
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
  const summary: StudySummary = { name: spec.name, dir, metric: spec.metric, target: spec.target ?? null, variants: aggregate(runs, plan), runs };
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
