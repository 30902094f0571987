// report.html: charts from records, a self-contained page, SVG/PNG export from Node, and the page in a real
// browser (Debian's Chromium through playwright-core): no console errors, every chart has data points, the export
// buttons download SVG and PNG; screenshots are kept in artifacts/.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { generateSynthetic, resolveConfig, train } from '../src/index.js';
import { reportTrainedRun, runCharts, writeRunReport, writeStudyReport } from '../src/diagnostics/report.js';
import { ROOT, tinyModel } from './helpers.js';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
// CI installs Chromium and sets CI=1: there a missing browser fails the test instead of skipping it
const browserSkip = !existsSync(CHROMIUM) && !process.env.CI ? `no browser at ${CHROMIUM} (apt-get install chromium, or set CHROMIUM_PATH)` : false;

test('charts come from the records that exist; a chart without data is left out', () => {
  const ids = (recs: Record<string, unknown>[]) => runCharts(recs).map((c) => c.id);
  assert.deepEqual(ids([{ event: 'train', step: 1, loss: 0.7, lr: { fusion: 1e-3 } }]), ['loss', 'lr']);
  const full = ids([
    { event: 'train', step: 2, loss: 0.7, lr: { fusion: 1e-3 } },
    { event: 'eval', split: 'val', step: 2, loss: 0.6, accuracy: 0.5, probe_text_accuracy: 0.5, score_text: 0.5, score_image: 0.5 },
    { event: 'diagnostics', step: 2, loss_ema: 0.7, grad_norm: { fusion: 1 }, grad_norm_layer: { 'fusion.x': 1 }, update_ratio: { fusion: 1e-3 }, weight_norm: { fusion: 3 }, attention_entropy: { text_to_image: 1 }, modality_score: { text: 0.5, image: 0.5, ratio: 1 } },
    { event: 'spike', step: 2, loss: 3, ratio: 4 },
  ]);
  assert.deepEqual(full, ['loss', 'metrics', 'lr', 'grad-norm', 'grad-norm-layer', 'update-ratio', 'weight-norm', 'modality', 'attention-entropy', 'loss-ema']);
});

let runDir = '';
async function tinyRun(): Promise<string> {
  if (runDir) return runDir;
  const dir = mkdtempSync(join(tmpdir(), 'mmtrain-report-'));
  await generateSynthetic({ out: join(dir, 'data'), n: 120, seed: 6, imageSize: 16 });
  const config = resolveConfig({
    name: 'report', out: join(dir, 'runs'), seed: 2,
    model: tinyModel(),
    data: { train: join(dir, 'data', 'train.jsonl'), val: join(dir, 'data', 'val.jsonl'), test: join(dir, 'data', 'test.jsonl') },
    train: { epochs: 3, batchSize: 8, lr: 1e-3 }, diagnostics: { every: 3 }, balance: { method: 'ogm-ge' }, log: { every: 3, progress: 'none' },
  });
  const r = await train(config, { print: () => {} });
  // the trainer writes no report: whoever runs the training does (the CLI's train and demo, a study's runs)
  assert.ok(!existsSync(join(r.runDir, 'report.html')));
  await reportTrainedRun(r, config, () => {});
  runDir = r.runDir;
  return runDir;
}

test('a run writes a self-contained report.html; --export writes every chart as SVG and PNG', async () => {
  const dir = await tinyRun();
  const html = readFileSync(join(dir, 'report.html'), 'utf8');
  assert.match(html, /^<!doctype html>/);
  assert.doesNotMatch(html, /<script[^>]+src=|<link[^>]+href=|url\(\s*['"]?https?:|<img[^>]+src=["']https?:/i, 'nothing is fetched from the network');
  assert.match(html, /<h2>Warnings<\/h2>/);
  assert.equal((html.match(/<figure class="chart"/g) ?? []).length, 10);
  const file = await writeRunReport(dir, { exportPlots: true });
  assert.equal(file, join(dir, 'report.html'));
  for (const id of ['loss', 'metrics', 'grad-norm', 'modality']) {
    assert.match(readFileSync(join(dir, 'plots', `${id}.svg`), 'utf8'), /^<svg /);
    const meta = await sharp(join(dir, 'plots', `${id}.png`)).metadata();
    assert.equal(meta.format, 'png');
    assert.ok(meta.width! > 300 && meta.height! > 150);
  }
});

test('report errors name the directory', async () => {
  await assert.rejects(writeRunReport(tmpdir() + '/no-such-run'), /no-such-run: no metrics\.jsonl \(not a run directory\)/);
  await assert.rejects(writeStudyReport(tmpdir()), /no summary\.json \(not a study directory/);
});

/** A study directory from records alone (two variants x two seeds), for the study report. */
function fakeStudy(): string {
  const dir = mkdtempSync(join(tmpdir(), 'mmtrain-studyrep-'));
  const runs: Record<string, unknown>[] = [];
  for (const variant of ['lr=1e-3', 'lr=1e-4']) {
    for (const seed of [1, 2]) {
      const d = join(dir, 'runs', variant, `seed-${seed}`);
      mkdirSync(d, { recursive: true });
      const recs: Record<string, unknown>[] = [];
      const rate = variant === 'lr=1e-3' ? 0.02 : 0.005;
      for (let s = 10; s <= 100; s += 10) {
        recs.push({ event: 'train', step: s, loss: 0.7 * Math.exp(-rate * s) + 0.01 * seed, lr: { fusion: 1e-3 } });
        recs.push({ event: 'diagnostics', step: s, grad_norm: { total: 1 / s + 0.01 * seed } });
        if (s % 20 === 0) recs.push({ event: 'eval', split: 'val', step: s, loss: 0.6, accuracy: 0.5 + rate * s * 0.4 + 0.01 * seed });
      }
      writeFileSync(join(d, 'metrics.jsonl'), recs.map((r) => JSON.stringify(r)).join('\n') + '\n');
      runs.push({ id: `${variant}/seed-${seed}`, variant, seed, status: 'finished', best: 0.8, final: 0.8, bestStep: 100, stepsToTarget: 40, spikes: 0, diverged: false, steps: 100, wallS: 3, test: null });
    }
  }
  const v = (variant: string, mean: number) => ({ variant, overrides: {}, runs: 2, finished: 2, best: { mean, std: 0.01 }, final: { mean, std: 0.02 }, stepsToTarget: { mean: 40, reached: 2 }, spikes: 0, diverged: 0, wallS: 3 });
  writeFileSync(join(dir, 'summary.json'), JSON.stringify({ name: 'fake', dir, metric: 'accuracy', target: 0.6, variants: [v('lr=1e-3', 0.9), v('lr=1e-4', 0.7)], runs }));
  return dir;
}

async function openInBrowser(file: string, screenshot: string) {
  const { chromium } = await import('playwright-core');
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 }, acceptDownloads: true });
  const errors: string[] = [];
  const requests: string[] = [];
  page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
  page.on('pageerror', (e) => errors.push(String(e)));
  page.on('request', (r) => { if (!r.url().startsWith('file:') && !r.url().startsWith('blob:') && !r.url().startsWith('data:')) requests.push(r.url()); });
  await page.goto(`file://${file}`);
  const charts = await page.$$eval('figure.chart', (figs) => figs.map((f) => ({
    id: f.id,
    // data marks drawn by vega: line paths with a non-trivial d, symbols, bars, areas
    marks: [...f.querySelectorAll('g.mark-line path, g.mark-symbol path, g.mark-rect path, g.mark-area path, g.mark-rule line')]
      .filter((p) => (p.getAttribute('d') ?? 'M0').length > 1 || p.tagName === 'line').length,
  })));
  mkdirSync(join(ROOT, 'artifacts'), { recursive: true });
  await page.screenshot({ path: join(ROOT, 'artifacts', screenshot), fullPage: true });
  return { browser, page, errors, requests, charts };
}

test('the run report in headless Chromium: no console errors, every chart has data points, SVG and PNG export', { skip: browserSkip }, async () => {
  const dir = await tinyRun();
  const { browser, page, errors, requests, charts } = await openInBrowser(join(dir, 'report.html'), 'report-run.png');
  try {
    assert.deepEqual(errors, []);
    assert.deepEqual(requests, [], 'no network requests');
    assert.equal(charts.length, 10);
    for (const c of charts) assert.ok(c.marks > 0, `chart ${c.id} has data points`);
    for (const [kind, name] of [['svg', 'loss.svg'], ['png', 'loss.png']] as const) {
      const [download] = await Promise.all([page.waitForEvent('download'), page.click(`figure#loss button[data-export="${kind}"]`)]);
      assert.equal(download.suggestedFilename(), name);
      const path = await download.path();
      const bytes = readFileSync(path!);
      if (kind === 'svg') assert.match(bytes.toString('utf8', 0, 200), /<svg /);
      else assert.equal((await sharp(bytes).metadata()).format, 'png');
    }
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
  }
});

test('the study report in headless Chromium: table, seed bands, every chart has data points', { skip: browserSkip }, async () => {
  const dir = fakeStudy();
  const file = await writeStudyReport(dir);
  const html = readFileSync(file, 'utf8');
  assert.match(html, /<td>lr=1e-3<\/td><td>2\/2<\/td><td>90\.0 ± 1\.0<\/td>/);
  assert.ok(existsSync(join(dir, 'runs', 'lr=1e-3', 'seed-1', 'report.html')), 'each run gets its report');
  const { browser, errors, charts } = await openInBrowser(file, 'report-study.png');
  try {
    assert.deepEqual(errors, []);
    assert.deepEqual(charts.map((c) => c.id), ['best', 'val-metric', 'train-loss', 'grad-norm']);
    for (const c of charts) assert.ok(c.marks > 0, `chart ${c.id} has data points`);
  } finally {
    await browser.close();
  }
});
