// The study runner: grid expansion, validation, aggregation by hand, and a real study interrupted after its first
// run and resumed (finished runs skipped), with its table, summary and report.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateSynthetic } from '../src/index.js';
import { BUILTIN_STUDIES } from '../src/train/studies.js';
import { tinyModel } from './helpers.js';
import { type RunSummary, aggregate, expandStudy, parseStudy, runStudy, studyTable, summarizeRun } from '../src/train/study.js';

test('grid expansion: variants x grid x seeds, named by their overrides', () => {
  const runs = expandStudy({ variants: [{ name: 'a', set: { 'train.lr': 1 } }, { name: 'b', set: {} }], grid: { 'model.fusion_type': ['concat', 'cross-attention'] }, seeds: [1, 2] });
  assert.equal(runs.length, 8);
  assert.deepEqual(runs.slice(0, 3).map((r) => r.id), ['a,model.fusion_type=concat/seed-1', 'a,model.fusion_type=concat/seed-2', 'a,model.fusion_type=cross-attention/seed-1']);
  assert.deepEqual(runs[0]!.overrides, { 'train.lr': 1, 'model.fusion_type': 'concat' });
  const grid = expandStudy({ grid: { 'train.lr': [1e-4, 1e-3], 'train.clipGradNorm': [1, null] }, seeds: [7] });
  assert.deepEqual(grid.map((r) => r.variant), ['train.lr=0.0001,train.clipGradNorm=1', 'train.lr=0.0001,train.clipGradNorm=null', 'train.lr=0.001,train.clipGradNorm=1', 'train.lr=0.001,train.clipGradNorm=null']);
  assert.throws(() => expandStudy({ variants: [{ name: 'x', set: {} }, { name: 'x', set: {} }], seeds: [1] }), /two variants are both named "x"/);
});

test('study files are checked in full, with the key path', () => {
  assert.throws(() => parseStudy({ name: 's', base: {} }), /give variants, grid, or both/);
  assert.throws(() => parseStudy({ name: 'bad name', base: {}, grid: { a: [1] } }), /name: letters, digits/);
  assert.throws(() => parseStudy({ name: 's', grid: { a: [1] } }), /base: /);
  assert.throws(() => parseStudy({ name: 's', base: {}, grid: { a: [] } }), /grid\.a: /);
  assert.throws(() => parseStudy({ name: 's', base: {}, grid: { a: [1] }, seed: [1] }), /invalid study:\n {2}unknown key "seed" — remove it or check the spelling \(did you mean "seeds"\?\)/);
  assert.deepEqual(Object.keys(BUILTIN_STUDIES).sort(), ['finetune-regime', 'modality-balance', 'original-design-ablation']);
  for (const [name, make] of Object.entries(BUILTIN_STUDIES)) {
    const s = parseStudy(make(), name);
    assert.ok(s.seeds.length >= 3, `${name}: at least 3 seeds`);
  }
  const ablation = expandStudy(parseStudy(BUILTIN_STUDIES['original-design-ablation']!()));
  const variants = new Set(ablation.map((r) => r.variant));
  for (const v of ['baseline', 'schedule=original', 'warmup=none', 'clip=none', 'fusion=cls-cross-attention', 'fusion=shared-cls-cross-attention', 'fusion=concat', 'lr=1e-5', 'lr=5e-5', 'lr=1e-4']) assert.ok(variants.has(v), v);
});

test('aggregation by hand: mean ± sample std over seeds, steps to target, diverged and failed runs', () => {
  const run = (variant: string, seed: number, best: number, extra: Partial<RunSummary> = {}): RunSummary => ({
    id: `${variant}/seed-${seed}`, variant, seed, status: 'finished', best, final: best - 0.1, bestStep: 10, stepsToTarget: null, spikes: 0,
    diverged: false, steps: 100, wallS: 10, test: null, ...extra,
  });
  const runs = [
    run('a', 1, 0.8, { stepsToTarget: 40, spikes: 2 }), run('a', 2, 0.6, { stepsToTarget: 60 }), run('a', 3, 0.7, { wallS: 40 }),
    run('b', 1, 0.5, { diverged: true }), run('b', 2, 0, { status: 'failed', best: null, final: null, diverged: true, wallS: null }),
  ];
  const plan = runs.map((r) => ({ id: r.id, variant: r.variant, seed: r.seed, overrides: {} }));
  const [a, b] = aggregate(runs, plan);
  assert.ok(Math.abs(a!.best!.mean - 0.7) < 1e-12);
  assert.ok(Math.abs(a!.best!.std - 0.1) < 1e-12); // sqrt(((.1)^2 + (.1)^2 + 0) / 2)
  assert.deepEqual(a!.stepsToTarget, { mean: 50, reached: 2 });
  assert.ok(Math.abs(a!.spikes - 2 / 3) < 1e-12);
  assert.equal(a!.wallS, 20);
  assert.equal(b!.finished, 1);
  assert.equal(b!.diverged, 2);
  assert.deepEqual(b!.best, { mean: 0.5, std: 0 });
  assert.equal(b!.stepsToTarget, null);
});

test('aggregation against a reference: 95% intervals over seeds, Welch differences starred when they exceed the spread, probes and gradient ratios', () => {
  const run = (variant: string, seed: number, final: number, probe: number, ratio: number): RunSummary => ({
    id: `${variant}/seed-${seed}`, variant, seed, status: 'finished', best: final, final, bestStep: 10, stepsToTarget: null, spikes: 0,
    diverged: false, steps: 100, wallS: 10, test: null, probes: { 'text:color': { start: 0.5, end: probe } }, gradRatio: { text: ratio, image: null },
  });
  const runs = [
    ...[0.5, 0.52, 0.48, 0.51, 0.49].map((f, i) => run('ref', i + 1, f, 0.9, 1)),
    ...[0.7, 0.72, 0.69, 0.71, 0.68].map((f, i) => run('far', i + 1, f, 0.6, 3)),
    ...[0.45, 0.6, 0.5, 0.55, 0.4].map((f, i) => run('near', i + 1, f, 0.8, 2)),
  ];
  const plan = runs.map((r) => ({ id: r.id, variant: r.variant, seed: r.seed, overrides: {} }));
  const [ref, far, near] = aggregate(runs, plan, 'ref');
  assert.equal(ref!.vsReference, null);
  assert.ok(Math.abs(ref!.finalCi!.mean - 0.5) < 1e-12);
  assert.ok(Math.abs(ref!.finalCi!.half - 2.776 * Math.sqrt(0.00025) / Math.sqrt(5)) < 1e-9); // t(4) s / sqrt(n)
  assert.ok(Math.abs(far!.vsReference!.diff - 0.2) < 1e-12);
  assert.equal(far!.vsReference!.exceeds, true);
  assert.equal(near!.vsReference!.exceeds, false, 'no difference beside a spread of 8 points');
  assert.deepEqual(far!.probes['text:color'], { start: 0.5, end: 0.6 });
  assert.deepEqual(far!.gradRatio, { text: 3, image: null });
  const table = studyTable({ name: 's', dir: '/x', metric: 'accuracy', target: null, variants: [ref!, far!, near!], runs });
  assert.match(table, /\| far \| 5\/5 \| .* \| 70\.0 ± 2\.0 \| \+20\.0 ± [0-9.]+ \* \|/);
  assert.match(table, /\| near \| .* \| \+0\.0 ± [0-9.]+ \|/);
  assert.match(table, /probe text:color start → end/);
  assert.throws(() => aggregate(runs, plan, 'nope'), /reference variant "nope" is not one of ref, far, near/);
  // a reference that names no variant is refused when the study is read, before any run
  assert.throws(() => parseStudy({ name: 's', base: {}, reference: 'c', variants: [{ name: 'a' }, { name: 'b' }] }), /invalid study: reference "c" is not a variant; expected one of a, b/);
  // one seed: a difference without an interval
  const one = aggregate([runs[0]!, runs[5]!], [plan[0]!, plan[5]!], 'ref');
  assert.match(studyTable({ name: 's', dir: '/x', metric: 'accuracy', target: null, variants: one, runs: [] }), /\+20\.0 \(no interval: one seed\)/);
});

test('a run summary from its records: best, final, target, spikes, divergence', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mmtrain-runsum-'));
  const lines = [
    { event: 'train', step: 10, loss: 0.7 }, { event: 'eval', split: 'val', step: 10, accuracy: 0.6, loss: 0.6 },
    { event: 'spike', step: 15, loss: 3 }, { event: 'eval', split: 'val', step: 20, accuracy: 0.9, loss: 0.3 },
    { event: 'train', step: 30, loss: 0.2 }, { event: 'eval', split: 'val', step: 30, accuracy: 0.85, loss: 0.35 },
  ];
  writeFileSync(join(dir, 'metrics.jsonl'), `${lines.map((l) => JSON.stringify(l)).join('\n')}\n{"torn":`);
  writeFileSync(join(dir, 'result.json'), JSON.stringify({ steps: 30, wallS: 5, test: { accuracy: 0.8 } }));
  const s = summarizeRun(dir, { id: 'v/seed-1', variant: 'v', seed: 1, overrides: {} }, 'accuracy', 0.85);
  assert.deepEqual([s.status, s.best, s.bestStep, s.final, s.stepsToTarget, s.spikes, s.diverged, s.steps, s.test], ['finished', 0.9, 20, 0.85, 20, 1, false, 30, 0.8]);
  const byLoss = summarizeRun(dir, { id: 'v/seed-1', variant: 'v', seed: 1, overrides: {} }, 'loss', 0.5);
  assert.deepEqual([byLoss.best, byLoss.stepsToTarget], [0.3, 20]);
});

test('a study runs, stops when interrupted, resumes skipping finished runs (two processes at a time), and aggregates', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'mmtrain-study-'));
  await generateSynthetic({ out: join(dir, 'data'), n: 80, seed: 3, imageSize: 16 });
  mkdirSync(join(dir, 'cfg'));
  writeFileSync(join(dir, 'cfg', 'base.yaml'), [
    `model: ${JSON.stringify(tinyModel())}`,
    'data: { train: ../data/train.jsonl, val: ../data/val.jsonl }',
    'train: { epochs: 2, batchSize: 16, lr: 1.0e-3 }',
    'diagnostics: { every: 2 }',
    'log: { every: 2, report: false }',
  ].join('\n'));
  const spec = parseStudy({ name: 'tiny', base: 'cfg/base.yaml', seeds: [1, 2], grid: { 'model.fusion_type': ['concat', 'cross-attention'] }, target: 0.0 });
  const lines: string[] = [];
  const ac = new AbortController();
  const first = await runStudy(spec, dir, { print: (l) => { lines.push(l); if (/^\[1\/4\]/.test(l)) ac.abort(); }, signal: ac.signal });
  assert.equal(first.runs.filter((r) => r.status === 'finished').length, 1, 'stopped after the first run');
  const doneFile = join(dir, 'studies', 'tiny', 'runs', 'model.fusion_type=concat', 'seed-1', 'result.json');
  const mtime = statSync(doneFile).mtimeMs;
  const lines2: string[] = [];
  const s = await runStudy(spec, dir, { print: (l) => lines2.push(l), parallel: 2 });
  assert.match(lines2[0]!, /4 runs \(1 already finished\), 2 at a time with \d+ thread\(s\) each/);
  assert.equal(lines2.filter((l) => /^\[\d\/4\]/.test(l)).length, 3, 'three runs left to do');
  assert.equal(statSync(doneFile).mtimeMs, mtime, 'the finished run was not touched');
  assert.equal(s.runs.filter((r) => r.status === 'finished').length, 4);
  assert.deepEqual(s.variants.map((v) => [v.variant, v.finished]), [['model.fusion_type=concat', 2], ['model.fusion_type=cross-attention', 2]]);
  for (const v of s.variants) {
    assert.ok(v.best && v.best.mean >= 0 && v.best.mean <= 1);
    assert.deepEqual(v.stepsToTarget?.reached, 2, 'target 0 is reached at the first evaluation');
  }
  const table = readFileSync(join(s.dir, 'table.md'), 'utf8');
  assert.match(table, /\| model\.fusion_type=concat \| 2\/2 \| \d+\.\d ± \d+\.\d \|/);
  const summary = JSON.parse(readFileSync(join(s.dir, 'summary.json'), 'utf8'));
  assert.equal(summary.runs.length, 4);
  // a run whose configuration breaks fails alone, with its error recorded; the study goes on
  const bad = parseStudy({ name: 'bad', base: 'cfg/base.yaml', seeds: [1], variants: [{ name: 'ok', set: {} }, { name: 'missing-data', set: { 'data.train': 'nowhere.jsonl' } }] });
  const sb = await runStudy(bad, dir, { print: () => {} });
  assert.deepEqual(sb.runs.map((r) => r.status), ['finished', 'failed']);
  assert.match(sb.runs[1]!.error!, /nowhere\.jsonl/);
  assert.ok(existsSync(join(sb.dir, 'summary.json')));
});

test('a study that pretrains its encoders first: corpus and probe sets synthesized, encoders pretrained once (skipped when resumed), runs fine-tune from them with probes and intervals', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'mmtrain-study-pre-'));
  const enc = { hidden_size: 16, num_attention_heads: 2, intermediate_size: 32 };
  const spec = parseStudy({
    name: 'pre', out: dir, seeds: [1, 2], reference: 'a',
    base: {
      model: { text: { pretrained: '${study}/pretrained/text' }, image: { pretrained: '${study}/pretrained/image' }, fusion_num_heads: 2, head_hidden_size: 16 },
      data: { maxLength: 24, image: { size: 16, resize: 'exact' } },
      train: { epochs: 1, batchSize: 32, lr: 1e-3, threads: 1 },
      log: { tensorboard: false, every: 2, report: false },
      diagnostics: { every: 2, probeSets: [{ data: '${data}/probe-binding.jsonl', modality: 'text', name: 'binding' }, { data: '${data}/probe-shape.jsonl', modality: 'image', name: 'shape' }] },
    },
    synth: { n: 160, imageSize: 16, seed: 4 },
    corpus: { captions: 120, images: 60, seed: 2 },
    pretrain: [
      { name: 'text', modality: 'text', data: '${corpus}/captions.txt', val: '${data}/val.jsonl', set: { 'model.text': { preset: 'bert-tiny', config: enc }, 'eval.metric': 'loss' } },
      { name: 'image', modality: 'image', data: '${corpus}/images.jsonl', set: { 'model.image': { preset: 'vit-tiny', config: { ...enc, image_size: 16, patch_size: 8 } }, 'pretrain.imageLoss': 'mse', 'eval.metric': 'loss' } },
    ],
    variants: [{ name: 'a', set: {} }, { name: 'b', set: { 'model.freeze': { text: true, image: true, untilEpoch: null } } }],
  });
  const lines: string[] = [];
  const s = await runStudy(spec, dir, { print: (l) => lines.push(l) });
  assert.ok(existsSync(join(s.dir, 'corpus', 'corpus.json')) && existsSync(join(s.dir, 'data', 'probe-binding.jsonl')));
  for (const name of ['text', 'image']) assert.ok(existsSync(join(s.dir, 'pretrained', name, 'model.safetensors')), name);
  assert.deepEqual(s.pretrained!.map((p) => [p.name, p.modality]), [['text', 'text'], ['image', 'image']]);
  assert.ok(s.pretrained![0]!.valLoss.first !== null && s.pretrained![0]!.probes['text:binding']);
  assert.equal(s.runs.filter((r) => r.status === 'finished').length, 4, s.runs.map((r) => r.error).join('\n'));
  const [a, b] = s.variants;
  assert.ok(a!.probes['text:binding']!.start !== null && a!.probes['image:shape']!.end !== null);
  // a run with frozen encoders ends with the probes it started with
  assert.equal(b!.probes['image:shape']!.start, b!.probes['image:shape']!.end);
  assert.ok(b!.vsReference && Number.isFinite(b!.vsReference.half));
  const table = readFileSync(join(s.dir, 'table.md'), 'utf8');
  assert.match(table, /## Pretrained encoders/);
  assert.match(table, /vs a \(95% CI\)/);
  // run again: the corpus and the encoders are there, the runs finished
  const again: string[] = [];
  await runStudy(spec, dir, { print: (l) => again.push(l) });
  assert.ok(!again.some((l) => /pretraining the|synthesizing/.test(l)), again.join('\n'));
  assert.match(again.join('\n'), /4 runs \(4 already finished\)/);
});
