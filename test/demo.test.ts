// The demo command runs end to end on a small synthetic set and leaves a complete run directory; the CLI's
// train / eval / predict / init commands work on it; bad flags are clear errors.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
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
  const dataDir = JSON.parse(readFileSync(join(runDir, 'config.json'), 'utf8')).data.test.replace(/\/test\.jsonl$/, '');
  const m = JSON.parse(run(['eval', '--checkpoint', join(runDir, 'best'), '--data', join(dataDir, 'test.jsonl')]));
  assert.equal(m.n, 12);
  assert.ok(m.accuracy >= 0 && m.accuracy <= 1);
  const p = JSON.parse(run(['predict', '--checkpoint', join(runDir, 'best'), '--image', join(dataDir, 'images', '000.jpg'), '--text', 'a red circle']));
  assert.ok(p.label === 'match' || p.label === 'mismatch');
  assert.ok(Math.abs(p.probabilities.match + p.probabilities.mismatch - 1) < 1e-5);
  run(['predict', '--checkpoint', join(runDir, 'best'), '--data', join(dataDir, 'val.jsonl'), '--out', join(dir, 'preds.jsonl')]);
  assert.equal(readFileSync(join(dir, 'preds.jsonl'), 'utf8').trim().split('\n').length, 12);
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
  fail(['study', '--builtin', 'nope'], /option '--builtin <name>' argument 'nope' is invalid\. Allowed choices are original-design-ablation, modality-balance\./);
  fail(['study'], /give --config FILE or --builtin NAME/);
  writeFileSync(join(dir, 'study.yaml'), 'name: s\nbase: {}\n');
  fail(['study', '--config', join(dir, 'study.yaml')], /study\.yaml: invalid study: give variants, grid, or both/);
  fail(['report', dir], /: no metrics\.jsonl \(not a run directory\)/);
  writeFileSync(join(dir, 'broken.yaml'), 'data:\n  train: [x\n');
  fail(['train', '--config', join(dir, 'broken.yaml')], /broken\.yaml:\d+: cannot parse the config/);
  rmSync(dir, { recursive: true });
});
