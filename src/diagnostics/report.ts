// report.html for a run or a study: one self-contained file (no network; styles, script and charts inlined). Charts
// are Vega-Lite specifications rendered to SVG in Node by the `vega` runtime; each can be downloaded as SVG or PNG
// from the page, and `--export` writes them as files too (PNG through sharp).
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, join, relative } from 'node:path';
import { MmtrainError } from '../errors.js';
import { readRecords } from '../train/records.js';
import { type StudySummary, readStudySummary, runPath, studyTableCells } from '../train/study.js';
import { resolveConfig } from '../train/config.js';
import { type Warning, analyzeRun } from './warnings.js';
import { makeFolder, writeFileAtomic } from '../files.js';
import { mean } from '../stats.js';

type Rec = Record<string, any>;
interface Point { step: number; value: number; series: string; seed?: number }
interface Chart { id: string; title: string; spec: Record<string, unknown> }

const WIDTH = 420;
const HEIGHT = 220;

function lineChart(id: string, title: string, points: Point[], o: { log?: boolean; yTitle?: string; dots?: boolean; marks?: Point[] } = {}): Chart | null {
  const pts = points.filter((p) => Number.isFinite(p.value) && (!o.log || p.value > 0));
  if (!pts.length) return null;
  const y = { field: 'value', type: 'quantitative', title: o.yTitle ?? title, scale: o.log ? { type: 'log' } : { zero: false } };
  const layers: Record<string, unknown>[] = [{
    data: { values: pts },
    mark: { type: 'line', point: o.dots ?? pts.length < 40, strokeWidth: 1.5 },
    encoding: { x: { field: 'step', type: 'quantitative', title: 'step' }, y, color: { field: 'series', type: 'nominal', title: null } },
  }];
  const marks = (o.marks ?? []).filter((p) => Number.isFinite(p.value));
  if (marks.length) {
    layers.push({
      data: { values: marks },
      mark: { type: 'point', shape: 'triangle-up', size: 90, filled: true, color: '#d62728' },
      encoding: { x: { field: 'step', type: 'quantitative' }, y: { field: 'value', type: 'quantitative' }, tooltip: [{ field: 'series' }, { field: 'step' }, { field: 'value' }] },
    });
  }
  return { id, title, spec: { width: WIDTH, height: HEIGHT, layer: layers } };
}

/**
 * value-vs-step per variant: the mean over seeds as a line and the seeds' range (min to max) as a band. Computed
 * here rather than by Vega-Lite's errorband, whose ± std band can cross zero and break a log scale.
 */
function bandChart(id: string, title: string, points: Point[], yTitle: string, log = false): Chart | null {
  const pts = points.filter((p) => Number.isFinite(p.value) && (!log || p.value > 0));
  if (!pts.length) return null;
  const groups = new Map<string, number[]>();
  for (const p of pts) {
    const k = `${p.series}\u0000${p.step}`;
    let g = groups.get(k);
    if (!g) groups.set(k, (g = []));
    g.push(p.value);
  }
  const values = [...groups.entries()].map(([k, xs]) => {
    const [series, step] = k.split('\u0000') as [string, string];
    return { series, step: Number(step), mean: mean(xs), lo: Math.min(...xs), hi: Math.max(...xs), seeds: xs.length };
  });
  const x = { field: 'step', type: 'quantitative', title: 'step' };
  const color = { field: 'series', type: 'nominal', title: 'variant' };
  const scale = log ? { type: 'log' } : { zero: false };
  return {
    id, title: `${title} (mean over seeds; band: min to max)`, spec: {
      width: WIDTH, height: HEIGHT + 60, data: { values },
      layer: [
        { mark: { type: 'area', opacity: 0.15 }, encoding: { x, y: { field: 'lo', type: 'quantitative', title: yTitle, scale }, y2: { field: 'hi' }, color } },
        { mark: { type: 'line', strokeWidth: 1.5, point: values.length < 200 }, encoding: { x, y: { field: 'mean', type: 'quantitative', title: yTitle, scale }, color } },
      ],
    },
  };
}

function nested(records: Rec[], key: string, prefix = ''): Point[] {
  const out: Point[] = [];
  for (const r of records) {
    const v = r[key];
    if (v && typeof v === 'object') for (const [k, x] of Object.entries(v)) if (typeof x === 'number') out.push({ step: r.step, value: x, series: `${prefix}${k}` });
  }
  return out;
}

/** The charts of one run, from its metrics records; charts without data are left out. */
export function runCharts(records: Rec[]): Chart[] {
  const train = records.filter((r) => r.event === 'train');
  const val = records.filter((r) => r.event === 'eval' && r.split === 'val');
  const diag = records.filter((r) => r.event === 'diagnostics');
  const balance = records.filter((r) => r.event === 'balance');
  const spikes = records.filter((r) => r.event === 'spike');
  const charts: (Chart | null)[] = [
    lineChart('loss', 'Loss', [
      ...train.map((r) => ({ step: r.step, value: r.loss, series: 'train' })),
      ...val.map((r) => ({ step: r.step, value: r.loss, series: 'validation' })),
    ], { yTitle: 'cross-entropy', dots: false, marks: spikes.map((s) => ({ step: s.step, value: s.loss, series: `spike ${Number(s.ratio).toFixed(1)}x` })) }),
    lineChart('metrics', 'Validation metrics', val.flatMap((r) => [
      ...['accuracy', 'macro_f1', 'auroc', 'probe_text_accuracy', 'probe_image_accuracy'].filter((k) => typeof r[k] === 'number').map((k) => ({ step: r.step, value: r[k], series: k })),
    ]), { yTitle: 'value', dots: true }),
    lineChart('lr', 'Learning rate per group', nested(train, 'lr'), { yTitle: 'lr', dots: false }),
    lineChart('grad-norm', 'Gradient norm per module (before clipping)', nested(diag, 'grad_norm'), { log: true, yTitle: 'L2 norm' }),
    lineChart('grad-norm-layer', 'Gradient norm per layer', nested(diag, 'grad_norm_layer'), { log: true, yTitle: 'L2 norm' }),
    lineChart('update-ratio', 'Update / weight ratio per module', nested(diag, 'update_ratio'), { log: true, yTitle: '||Δw|| / ||w||' }),
    lineChart('weight-norm', 'Weight norm per module', nested(diag, 'weight_norm'), { yTitle: 'L2 norm' }),
    lineChart('modality', 'Modality contribution scores (OGM-GE)', [
      ...diag.filter((r) => r.modality_score).flatMap((r) => [
        { step: r.step, value: r.modality_score.text, series: 'text (train)' }, { step: r.step, value: r.modality_score.image, series: 'image (train)' },
      ]),
      ...val.filter((r) => typeof r.score_text === 'number').flatMap((r) => [
        { step: r.step, value: r.score_text, series: 'text (validation)' }, { step: r.step, value: r.score_image, series: 'image (validation)' },
      ]),
      ...balance.flatMap((r) => [{ step: r.step, value: r.coeff_text, series: 'OGM coeff text' }, { step: r.step, value: r.coeff_image, series: 'OGM coeff image' }]),
    ], { yTitle: 'mean p(true class) / coefficient' }),
    lineChart('probes', 'Linear probes of the encoders (diagnostics.probeSets)', records.filter((r) => r.event === 'probe' && typeof r.accuracy === 'number')
      .map((r) => ({ step: r.step, value: r.accuracy, series: `${r.modality}:${r.name}` })), { yTitle: 'probe accuracy', dots: true }),
    lineChart('attention-entropy', 'Cross-attention entropy per direction', nested(diag, 'attention_entropy'), { yTitle: 'nats' }),
    lineChart('loss-ema', 'Training loss EMA and spikes', diag.filter((r) => typeof r.loss_ema === 'number').map((r) => ({ step: r.step, value: r.loss_ema, series: 'loss EMA' })),
      { yTitle: 'cross-entropy', marks: spikes.map((s) => ({ step: s.step, value: s.loss, series: `spike ${Number(s.ratio).toFixed(1)}x` })) }),
  ];
  return charts.filter((c): c is Chart => c !== null);
}

/** Renders Vega-Lite specifications to SVG strings (vega and vega-lite load on first use). */
export async function renderSvg(charts: Chart[]): Promise<string[]> {
  const vega = await import('vega');
  const vl = await import('vega-lite');
  const out: string[] = [];
  for (const c of charts) {
    const spec = { $schema: 'https://vega.github.io/schema/vega-lite/v6.json', config: { font: 'Helvetica, Arial, sans-serif', axis: { labelFontSize: 11 } }, ...c.spec };
    const view = new vega.View(vega.parse(vl.compile(spec as never).spec), { renderer: 'none' });
    out.push(await view.toSVG());
    view.finalize();
  }
  return out;
}

const esc = (s: unknown) => String(s).replace(/[&<>"']/g, (ch) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[ch]!);

const STYLE = `
body { font: 14px/1.45 Helvetica, Arial, sans-serif; margin: 24px auto; max-width: 1200px; color: #222; padding: 0 16px; }
h1 { font-size: 22px; margin-bottom: 4px; } h2 { font-size: 17px; margin-top: 28px; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
.sub { color: #666; margin-top: 0; } table { border-collapse: collapse; margin: 8px 0; } td, th { border: 1px solid #ddd; padding: 4px 8px; text-align: left; }
th { background: #f4f4f4; } .warn { background: #fff6e0; border-left: 4px solid #f0a000; padding: 6px 10px; margin: 6px 0; }
.ok { background: #eef8ee; border-left: 4px solid #3a3; padding: 6px 10px; }
.charts { display: flex; flex-wrap: wrap; gap: 16px; } figure { margin: 0; border: 1px solid #e4e4e4; border-radius: 6px; padding: 8px; }
figcaption { font-weight: bold; margin-bottom: 4px; display: flex; justify-content: space-between; gap: 12px; }
figcaption button { font-size: 11px; margin-left: 4px; cursor: pointer; } a { color: #1f5fa8; }`;

// Download a chart as SVG, or as PNG through a canvas at 2x. Everything stays in the page (no network).
const SCRIPT = `
function download(name, blob) { const a = document.createElement('a'); a.href = URL.createObjectURL(blob); a.download = name; document.body.appendChild(a); a.click(); a.remove(); setTimeout(() => URL.revokeObjectURL(a.href), 1000); }
document.addEventListener('click', (ev) => {
  const b = ev.target.closest('button[data-export]'); if (!b) return;
  const fig = b.closest('figure'); const svg = fig.querySelector('svg'); const text = new XMLSerializer().serializeToString(svg);
  const blob = new Blob([text], { type: 'image/svg+xml' });
  if (b.dataset.export === 'svg') return download(fig.id + '.svg', blob);
  const img = new Image(); const url = URL.createObjectURL(blob);
  img.onload = () => { const c = document.createElement('canvas'); c.width = img.width * 2; c.height = img.height * 2; const g = c.getContext('2d'); g.scale(2, 2); g.drawImage(img, 0, 0); URL.revokeObjectURL(url); c.toBlob((png) => download(fig.id + '.png', png), 'image/png'); };
  img.src = url;
});`;

function page(title: string, sub: string, body: string): string {
  return `<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">` +
    `<meta name="generator" content="mmtrain"><title>${esc(title)}</title><style>${STYLE}</style></head>\n<body>\n<h1>${esc(title)}</h1><p class="sub">${sub}</p>\n${body}\n<script>${SCRIPT}</script>\n</body></html>\n`;
}

function chartsHtml(charts: Chart[], svgs: string[]): string {
  return `<div class="charts">${charts.map((c, i) => `<figure class="chart" id="${esc(c.id)}"><figcaption><span>${esc(c.title)}</span><span>` +
    `<button data-export="svg" title="download as SVG">SVG</button><button data-export="png" title="download as PNG">PNG</button></span></figcaption>${svgs[i]}</figure>`).join('\n')}</div>`;
}

function warningsHtml(ws: Warning[]): string {
  if (!ws.length) return '<div class="ok">No warnings: no loss spikes, non-finite steps, stalls, modality imbalance or overfitting detected.</div>';
  return ws.map((w) => `<div class="warn"><b>${esc(w.kind)}</b>${w.step !== undefined ? ` (step ${esc(w.step)})` : ''}: ${esc(w.message)}</div>`).join('\n');
}

async function exportPlots(dir: string, charts: Chart[], svgs: string[]): Promise<void> {
  const sharp = (await import('sharp')).default;
  const plots = join(dir, 'plots');
  makeFolder(plots);
  for (let i = 0; i < charts.length; i++) {
    writeFileSync(join(plots, `${charts[i]!.id}.svg`), svgs[i]!);
    await sharp(Buffer.from(svgs[i]!), { density: 144 }).png().toFile(join(plots, `${charts[i]!.id}.png`));
  }
}

export interface ReportOptions {
  /** also write plots/<chart>.svg and .png */
  exportPlots?: boolean;
}

/**
 * The report of a run that has just trained, written by whoever ran it (the CLI, a study's runs) when its config asks
 * for one (log.report) and on rank 0 only. A report is a convenience: failing to write one never fails the training.
 */
export async function reportTrainedRun(r: { runDir: string; rank: number }, c: { log: { report: boolean } }, print: (s: string) => void = console.log): Promise<void> {
  if (!c.log.report || r.rank !== 0) return;
  try {
    await writeRunReport(r.runDir);
  } catch (e) {
    print(`warning: report.html was not written: ${(e as Error).message}`);
  }
}

/** Writes <runDir>/report.html from metrics.jsonl, config.json and the test metrics; returns its path. */
export async function writeRunReport(runDir: string, opts: ReportOptions = {}): Promise<string> {
  const metrics = join(runDir, 'metrics.jsonl');
  if (!existsSync(metrics)) throw new MmtrainError(`${runDir}: no metrics.jsonl (not a run directory)`);
  const records = readRecords(metrics);
  const rawConfig = existsSync(join(runDir, 'config.json')) ? JSON.parse(readFileSync(join(runDir, 'config.json'), 'utf8')) : null;
  const config = rawConfig ? resolveConfig(rawConfig, `${runDir}/config.json`, runDir) : null;
  const warnings = config ? analyzeRun(records, config) : [];
  const charts = runCharts(records);
  const svgs = await renderSvg(charts);
  const result = existsSync(join(runDir, 'result.json')) ? JSON.parse(readFileSync(join(runDir, 'result.json'), 'utf8')) : null;
  const test = existsSync(join(runDir, 'test_metrics.json')) ? JSON.parse(readFileSync(join(runDir, 'test_metrics.json'), 'utf8')) : null;
  const lastVal = records.filter((r) => r.event === 'eval' && r.split === 'val').pop();
  const pct = (x: unknown) => (typeof x === 'number' ? `${(x * 100).toFixed(2)}%` : 'n/a');
  const facts: [string, string][] = [
    ['status', result ? 'finished' : 'unfinished (no result.json)'],
    ['steps', String(result?.steps ?? records.filter((r) => r.event === 'train').pop()?.step ?? 0)],
    ['model', !config ? 'n/a' : config.pretrain
      ? `pretraining the ${config.pretrain.modality} encoder: ${config.pretrain.modality === 'text' ? `masked language modelling (${config.pretrain.mlmProbability * 100}% of tokens${config.pretrain.wholeWordMask ? ', whole words' : ''})` : `masked image modelling (${config.pretrain.maskRatio * 100}% of patches, ${config.pretrain.imageLoss})`}`
      : `${config.model.preset}, ${config.model.fusion_type}, pooling ${config.model.pooling}`],
    ['optimizer', config ? `AdamW lr ${config.train.lr}, ${config.train.schedule.type} schedule, clip ${config.train.clipGradNorm ?? 'off'}, batch ${config.train.batchSize}` : 'n/a'],
    ['balance', config ? `${config.balance.method}${config.balance.modalityDropout ? `, modality dropout ${config.balance.modalityDropout}` : ''}` : 'n/a'],
    ['best validation', result?.best ? `${result.best.metric} ${result.best.metric === 'loss' ? Number(result.best.value).toFixed(4) : pct(result.best.value)} at step ${result.best.step}` : 'n/a'],
    ['last validation', lastVal ? `accuracy ${pct(lastVal.accuracy)}, loss ${Number(lastVal.loss).toFixed(4)}${typeof lastVal.probe_text_accuracy === 'number' ? `, probes text ${pct(lastVal.probe_text_accuracy)} / image ${pct(lastVal.probe_image_accuracy)}` : ''}` : 'n/a'],
    ['test', test && config?.pretrain ? `loss ${Number(test.loss).toFixed(4)}${typeof test.accuracy === 'number' ? `, masked-token accuracy ${pct(test.accuracy)}` : ''} (n ${test.n})` : test ? `accuracy ${pct(test.accuracy)}, macro-F1 ${Number(test.macro_f1).toFixed(4)}${test.auroc === null ? '' : `, AUROC ${Number(test.auroc).toFixed(4)}`} (n ${test.n})` : 'n/a'],
    ['wall time', result ? `${Number(result.wallS).toFixed(1)} s` : 'n/a'],
  ];
  // the probe sets: first and last accuracy of each
  const probes = new Map<string, number[]>();
  for (const r of records) if (r.event === 'probe' && typeof r.accuracy === 'number') probes.set(`${r.modality}:${r.name}`, [...(probes.get(`${r.modality}:${r.name}`) ?? []), r.accuracy]);
  if (probes.size) facts.splice(facts.length - 1, 0, ['probes (first → last)', [...probes].map(([k, v]) => `${k} ${pct(v[0])} → ${pct(v[v.length - 1])}`).join('; ')]);
  const body = `<h2>Summary</h2><table>${facts.map(([k, v]) => `<tr><th>${esc(k)}</th><td>${esc(v)}</td></tr>`).join('')}</table>\n` +
    `<h2>Warnings</h2>${warningsHtml(warnings)}\n<h2>Charts</h2>${chartsHtml(charts, svgs)}`;
  const file = join(runDir, 'report.html');
  writeFileAtomic(file, page(`mmtrain run ${basename(runDir)}`, `${esc(runDir)} · generated ${esc(new Date().toISOString())}`, body));
  if (opts.exportPlots) await exportPlots(runDir, charts, svgs);
  return file;
}

/** The charts of a study: per-variant curves with seed bands, and the best metric per variant. */
export function studyCharts(s: StudySummary, recordsOf: (run: StudySummary['runs'][number]) => Rec[]): Chart[] {
  const val: Point[] = [];
  const loss: Point[] = [];
  const grad: Point[] = [];
  for (const r of s.runs) {
    const recs = recordsOf(r);
    for (const e of recs) {
      if (e.event === 'eval' && e.split === 'val' && typeof e[s.metric] === 'number') val.push({ step: e.step, value: e[s.metric], series: r.variant, seed: r.seed });
      else if (e.event === 'train' && Number.isFinite(e.loss)) loss.push({ step: e.step, value: e.loss, series: r.variant, seed: r.seed });
      else if (e.event === 'diagnostics' && e.grad_norm && Number.isFinite(e.grad_norm.total)) grad.push({ step: e.step, value: e.grad_norm.total, series: r.variant, seed: r.seed });
    }
  }
  const best = s.variants.filter((v) => v.best).map((v) => ({ variant: v.variant, mean: v.best!.mean, lo: v.best!.mean - v.best!.std, hi: v.best!.mean + v.best!.std }));
  const charts: (Chart | null)[] = [
    best.length ? {
      id: 'best', title: `Best validation ${s.metric} per variant (mean ± std over seeds)`,
      spec: {
        width: WIDTH, height: Math.max(120, 22 * best.length), data: { values: best },
        layer: [
          { mark: { type: 'bar', opacity: 0.75 }, encoding: { y: { field: 'variant', type: 'nominal', sort: null, title: null }, x: { field: 'mean', type: 'quantitative', title: s.metric } } },
          { mark: { type: 'rule' }, encoding: { y: { field: 'variant', type: 'nominal', sort: null }, x: { field: 'lo', type: 'quantitative' }, x2: { field: 'hi' } } },
        ],
      },
    } : null,
    bandChart('val-metric', `Validation ${s.metric} per variant`, val, s.metric),
    bandChart('train-loss', 'Training loss per variant', loss, 'cross-entropy'),
    bandChart('grad-norm', 'Total gradient norm per variant', grad, 'L2 norm', true),
  ];
  return charts.filter((c): c is Chart => c !== null);
}

/** Writes <studyDir>/report.html (and a report for each finished run); returns its path. */
export async function writeStudyReport(studyDir: string, opts: ReportOptions = {}): Promise<string> {
  const s = readStudySummary(studyDir);
  const charts = studyCharts(s, (r) => readRecords(join(runPath(studyDir, r), 'metrics.jsonl')));
  const svgs = await renderSvg(charts);
  const links: string[] = [];
  for (const r of s.runs) {
    const d = runPath(studyDir, r);
    if (r.status === 'pending' || !existsSync(join(d, 'metrics.jsonl'))) continue;
    await writeRunReport(d);
    links.push(`<a href="${esc(relative(studyDir, join(d, 'report.html')))}">${esc(r.id)}</a>`);
  }
  const { head, rows } = studyTableCells(s, true);
  const table = `<table><tr>${head.map((h) => `<th>${esc(h)}</th>`).join('')}</tr>\n` +
    `${rows.map((cells) => `<tr>${cells.map((c) => `<td>${esc(c)}</td>`).join('')}</tr>`).join('\n')}</table>`;
  const failed = s.runs.filter((r) => r.status === 'failed');
  const body = `<h2>Results</h2><p>Mean ± standard deviation over seeds ${esc([...new Set(s.runs.map((r) => r.seed))].join(', '))}.</p>${table}\n` +
    (failed.length ? `<h2>Failed runs</h2>${failed.map((r) => `<div class="warn"><b>${esc(r.id)}</b>: ${esc(r.error ?? '')}</div>`).join('')}` : '') +
    `<h2>Charts</h2>${chartsHtml(charts, svgs)}\n<h2>Runs</h2><p>${links.join(' · ') || 'none finished yet'}</p>`;
  const file = join(studyDir, 'report.html');
  writeFileAtomic(file, page(`mmtrain study ${s.name}`, `${esc(studyDir)} · ${s.runs.length} runs · generated ${esc(new Date().toISOString())}`, body));
  if (opts.exportPlots) await exportPlots(studyDir, charts, svgs);
  return file;
}
