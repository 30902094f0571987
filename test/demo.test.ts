// The demo command runs end to end on a small synthetic set and leaves a complete run directory; the CLI's
// train / eval / predict / init commands work on it; bad flags are clear errors.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT } from './helpers.js';

const CLI = join(ROOT, 'dist', 'src', 'cli', 'main.js');
const run = (args: string[]) => execFileSync(process.execPath, [CLI, ...args], { encoding: 'utf8', stdio: 'pipe' });

test('mmtrain demo, eval, predict, init, train and report from the command line', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mmtrain-cli-'));
  const out = run(['demo', '--out', dir, '--n', '120', '--epochs', '1']);
  assert.match(out, /test accuracy: \d+\.\d% on 12 pairs/);
  const runDir = /run directory: (\S+)/.exec(out)![1]!;
  for (const f of ['config.json', 'labels.json', 'metrics.jsonl', 'test_metrics.json', 'best/model.safetensors', 'best/tokenizer.json']) {
    assert.ok(existsSync(join(runDir, f)), f);
  }
  const config = JSON.parse(readFileSync(join(runDir, 'config.json'), 'utf8'));
  const dataDir = config.data.test.replace(/\/test\.jsonl$/, '');
  // the test pass ran on the final weights: eval of the final checkpoint reproduces test_metrics.json (same batches,
  // padding and precision, which the checkpoint records), and predict's labels give the same accuracy and loss
  const final = JSON.parse(readFileSync(join(runDir, 'result.json'), 'utf8')).steps as number;
  const ckpt = join(runDir, 'checkpoints', `step-${String(final).padStart(8, '0')}`);
  const testMetrics = JSON.parse(readFileSync(join(runDir, 'test_metrics.json'), 'utf8'));
  const batch = String(config.eval.batchSize);
  const m = JSON.parse(run(['eval', '--checkpoint', ckpt, '--data', join(dataDir, 'test.jsonl'), '--batch', batch]));
  assert.equal(m.n, 12);
  assert.deepEqual(m.confusion, testMetrics.confusion);
  assert.equal(m.accuracy, testMetrics.accuracy);
  assert.ok(Math.abs(m.loss - testMetrics.loss) <= 1e-6 * Math.max(1, Math.abs(testMetrics.loss)), `eval loss ${m.loss} vs the test pass's ${testMetrics.loss}`);
  run(['predict', '--checkpoint', ckpt, '--data', join(dataDir, 'test.jsonl'), '--batch', batch, '--out', join(dir, 'preds.jsonl')]);
  const preds = readFileSync(join(dir, 'preds.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { label: string; probabilities: Record<string, number> });
  const labels: string[] = JSON.parse(readFileSync(join(runDir, 'labels.json'), 'utf8'));
  const truth = readFileSync(join(dataDir, 'test.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l).label as number | string);
  const truthName = truth.map((t) => (typeof t === 'number' ? labels[t]! : t));
  assert.equal(preds.length, 12);
  assert.equal(preds.filter((p, i) => p.label === truthName[i]).length / 12, testMetrics.accuracy);
  const nll = -preds.reduce((a, p, i) => a + Math.log(p.probabilities[truthName[i]!]!), 0) / 12;
  assert.ok(Math.abs(nll - testMetrics.loss) < 1e-4, `predict's mean NLL ${nll} vs the test pass's loss ${testMetrics.loss}`);
  // one pair from the command line: the same probabilities as its line of the manifest (in fp32: under bf16 a batch
  // of one and a batch of twelve may round their logits differently)
  const first = JSON.parse(readFileSync(join(dataDir, 'test.jsonl'), 'utf8').split('\n')[0]!) as { image: string; text: string };
  const p = JSON.parse(run(['predict', '--checkpoint', ckpt, '--precision', 'fp32', '--image', join(dataDir, first.image), '--text', first.text]));
  const p0 = JSON.parse(run(['predict', '--checkpoint', ckpt, '--precision', 'fp32', '--data', join(dataDir, 'test.jsonl')]).split('\n')[0]!);
  assert.equal(p0.image, first.image);
  assert.ok(labels.length >= 2, `labels.json lists ${labels.length} labels`);
  assert.deepEqual(Object.keys(p.probabilities).sort(), [...labels].sort(), 'one probability per label');
  for (const l of labels) assert.ok(Math.abs(p.probabilities[l] - p0.probabilities[l]) < 1e-5, `single predict ${l}: ${p.probabilities[l]} vs ${p0.probabilities[l]}`);
  // init writes a config that train accepts (after pointing it at data)
  const cfg = join(dir, 'my.yaml');
  run(['init', cfg]);
  const text = readFileSync(cfg, 'utf8').replace('train: data/train.jsonl', `train: ${join(dataDir, 'train.jsonl')}`).replace('val: data/val.jsonl', `val: ${join(dataDir, 'val.jsonl')}`);
  writeFileSync(cfg, text);
  const t = JSON.parse(run(['train', '--config', cfg, '--set', 'train.maxSteps=2', '--set', `out=${dir}`, '--set', 'model.text.preset=bert-tiny', '--set', 'log.progress=none',
    '--set', 'data.image.size=32', '--set', 'model.image.config.image_size=32']).trim().split('\n').pop()!);
  assert.equal(t.steps, 2);
  // every run leaves report.html; `mmtrain report` regenerates it and exports the charts
  assert.ok(existsSync(join(runDir, 'report.html')) && existsSync(join(runDir, 'warnings.json')) && existsSync(join(runDir, 'result.json')));
  rmSync(join(runDir, 'report.html'));
  assert.match(run(['report', runDir, '--export']), /wrote .*report\.html/);
  assert.ok(existsSync(join(runDir, 'report.html')) && existsSync(join(runDir, 'plots', 'loss.svg')) && existsSync(join(runDir, 'plots', 'loss.png')));
  rmSync(dir, { recursive: true });
});

test('CLI errors are one clear line and a non-zero exit', () => {
  const fail = (args: string[], re: RegExp) => assert.throws(() => run(args), (e: { stderr: string; status: number }) => e.status !== 0 && re.test(e.stderr) && !/\n\s+at /.test(e.stderr));
  fail(['demo', '--n', 'ten'], /option '--n <count>' argument 'ten' is invalid\. Expected a positive integer\./);
  fail(['demo', '--precision', 'fp16'], /option '--precision <p>' argument 'fp16' is invalid\. Allowed choices are fp32, bf16\./);
  fail(['train', '--config', '/nonexistent.yaml'], /\/nonexistent\.yaml: cannot read the config/);
  fail(['eval', '--checkpoint', '/nonexistent', '--data', 'x.jsonl'], /\/nonexistent: not an mmtrain checkpoint/);
  const dir = mkdtempSync(join(tmpdir(), 'mmtrain-cli-'));
  writeFileSync(join(dir, 'bad.yaml'), 'data:\n  train: x.jsonl\ntrain:\n  lr: fast\n');
  fail(['train', '--config', join(dir, 'bad.yaml')], /bad\.yaml: invalid configuration:\n\s+train\.lr: expected a number, received "fast"/);
  fail(['study', '--builtin', 'nope'], /option '--builtin <name>' argument 'nope' is invalid\. Allowed choices are original-design-ablation, modality-balance, finetune-regime\./);
  fail(['study'], /give --config FILE or --builtin NAME/);
  writeFileSync(join(dir, 'study.yaml'), 'name: s\nbase: {}\n');
  fail(['study', '--config', join(dir, 'study.yaml')], /study\.yaml: invalid study: give variants, grid, or both/);
  fail(['report', dir], /: no metrics\.jsonl \(not a run directory\)/);
  writeFileSync(join(dir, 'broken.yaml'), 'data:\n  train: [x\n');
  fail(['train', '--config', join(dir, 'broken.yaml')], /broken\.yaml:\d+: cannot parse the config/);
  // init never overwrites; --resume needs a checkpoint
  fail(['init', join(dir, 'bad.yaml')], /bad\.yaml exists; choose another name/);
  assert.equal(readFileSync(join(dir, 'bad.yaml'), 'utf8'), 'data:\n  train: x.jsonl\ntrain:\n  lr: fast\n');
  run(['synth', '--out', join(dir, 'data'), '--n', '40', '--image-size', '16']);
  writeFileSync(join(dir, 'ok.yaml'), `data:\n  train: ${join(dir, 'data', 'train.jsonl')}\n`);
  mkdirSync(join(dir, 'empty-run'));
  fail(['train', '--config', join(dir, 'ok.yaml'), '--resume', join(dir, 'empty-run')], /empty-run: no checkpoint to resume from/);
  rmSync(dir, { recursive: true });
});

test('mmtrain synth writes the split it reports, every image it names', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mmtrain-cli-'));
  const out = run(['synth', '--out', join(dir, 'data'), '--n', '50', '--seed', '4', '--image-size', '16']);
  const m = /train (\d+), val (\d+), test (\d+)/.exec(out)!;
  const lines = (f: string) => readFileSync(join(dir, 'data', f), 'utf8').trim().split('\n');
  assert.deepEqual(['train.jsonl', 'val.jsonl', 'test.jsonl'].map((f) => lines(f).length), [Number(m[1]), Number(m[2]), Number(m[3])]);
  assert.equal(Number(m[1]) + Number(m[2]) + Number(m[3]), 50);
  for (const l of lines('train.jsonl')) {
    const r = JSON.parse(l) as { image: string; text: string; label: unknown };
    assert.ok(existsSync(join(dir, 'data', r.image)) && r.text.length > 0 && r.label !== undefined, l);
  }
  rmSync(dir, { recursive: true });
});
