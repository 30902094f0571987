// Warnings: signs of trouble read from a run's metrics records, each with its evidence and a suggested fix. The
// same analysis runs at the end of training (console, warnings.json) and when a report is regenerated, so both
// always agree. Thresholds are deliberately conservative: a warning should be worth reading.
import type { TrainConfig } from '../train/config.js';
import { warmupSteps } from '../train/schedule.js';
import { median } from '../stats.js';

export interface Warning {
  kind: string;
  message: string;
  step?: number;
  evidence: Record<string, unknown>;
}

type Rec = Record<string, any>;

const fmt = (x: number, d = 3) => (Math.abs(x) >= 1e-2 && Math.abs(x) < 1e4 ? Number(x.toPrecision(d)).toString() : Number(x.toPrecision(2)).toExponential());
const pct = (x: number) => `${(x * 100).toFixed(1)}%`;

function hasWarmup(c: TrainConfig): boolean {
  const s = c.train.schedule;
  return s.type !== 'original' && (s.warmupSteps !== undefined ? s.warmupSteps > 0 : s.warmupRatio > 0);
}

/** The console line for one loss spike: what happened, where, at what lr, and what to try. */
export function spikeMessage(r: { step: number; ratio: number; z: number; lr: number }, c: TrainConfig): string {
  const head = `loss spiked ${fmt(r.ratio, 2)}x the recent median (robust z ${fmt(r.z, 2)}) at step ${r.step} while lr reached ${fmt(r.lr)}`;
  if (!hasWarmup(c)) return `${head} with no warmup; try warmup (train.schedule.warmupRatio: 0.06)`;
  if (c.train.clipGradNorm === null) return `${head} with clipping off; try train.clipGradNorm: 1.0 or a lower train.lr`;
  return `${head}; try a lower train.lr or a longer warmup`;
}

/** Every warning a run's records support. `records` are metrics.jsonl lines in order. */
export function analyzeRun(records: Rec[], c: TrainConfig): Warning[] {
  const out: Warning[] = [];
  const train = records.filter((r) => r.event === 'train' && Number.isFinite(r.loss));
  const diag = records.filter((r) => r.event === 'diagnostics');
  const evals = records.filter((r) => r.event === 'eval' && r.split === 'val');
  const K = c.data.labels?.length ?? (records.find((r) => r.event === 'eval')?.confusion?.length as number | undefined) ?? 2;

  // loss spikes, first five in full
  const spikes = records.filter((r) => r.event === 'spike');
  for (const s of spikes.slice(0, 5)) out.push({ kind: 'loss-spike', step: s.step, message: spikeMessage(s as never, c), evidence: s });
  if (spikes.length > 5) out.push({ kind: 'loss-spike', message: `${spikes.length - 5} more loss spikes after step ${spikes[4].step}`, evidence: { steps: spikes.slice(5).map((s) => s.step) } });

  // non-finite steps and rollbacks
  const nonfinite = records.filter((r) => r.event === 'nonfinite');
  const rollbacks = records.filter((r) => r.event === 'rollback');
  if (nonfinite.length) {
    out.push({
      kind: 'non-finite', step: nonfinite[0].step,
      message: `${nonfinite.length} step(s) had a non-finite loss or gradient (first at step ${nonfinite[0].step})${rollbacks.length ? `, ${rollbacks.length} rollback(s) halved the lr` : ''}; ` +
        `${hasWarmup(c) ? 'lower train.lr' : 'add warmup (train.schedule.warmupRatio) or lower train.lr'}${c.train.clipGradNorm === null ? ', and clip gradients (train.clipGradNorm: 1.0)' : ''}`,
      evidence: { steps: nonfinite.map((r) => r.step), rollbacks: rollbacks.length },
    });
  }

  // the original design's schedule: the lr decays geometrically per batch
  if (c.train.schedule.type === 'original' && train.length) {
    const last = train[train.length - 1]!;
    const factor = Math.pow((1 + Math.cos(Math.PI / 10)) / 2, last.step);
    out.push({
      kind: 'schedule', step: last.step,
      message: `the "original" schedule multiplies the lr by 0.9755 every step: it fell below 1% of its start after 187 steps and ended at ${fmt(factor, 2)}x at step ${last.step}; ` +
        'use type: cosine with warmup (the schedule stepped per step, as intended)',
      evidence: { final_factor: factor, steps: last.step },
    });
  }

  // a flat training loss
  if (train.length >= 6) {
    const n = Math.max(1, Math.floor(train.length / 10));
    const first = train.slice(0, n).reduce((a, r) => a + r.loss, 0) / n;
    const last = train.slice(-n).reduce((a, r) => a + r.loss, 0) / n;
    if (last > 0.97 * first) {
      const lr = c.train.lr;
      out.push({
        kind: 'flat-loss', step: train[train.length - 1].step,
        message: `the training loss barely moved (${fmt(first)} -> ${fmt(last)} over ${train[train.length - 1].step} steps); ` +
          `${lr <= 5e-5 ? `train.lr ${fmt(lr)} is probably too low for this model; try 1e-4 to 1e-3` : 'check the data and labels, then try a higher train.lr or more epochs'}`,
        evidence: { first, last, lr },
      });
    }
  }

  // validation accuracy at chance
  const lastEval = evals[evals.length - 1];
  if (lastEval && typeof lastEval.accuracy === 'number' && lastEval.n >= 50 && lastEval.accuracy <= 1 / K + 0.02) {
    out.push({
      kind: 'chance', step: lastEval.step,
      message: `validation accuracy ${pct(lastEval.accuracy)} at step ${lastEval.step} is at chance for ${K} labels (${pct(1 / K)}): the model has not learned the task`,
      evidence: { accuracy: lastEval.accuracy, labels: K },
    });
  }

  // one modality dominating the head (OGM-GE contribution scores), over the last third of the run
  const scored = diag.filter((r) => r.modality_score && Number.isFinite(r.modality_score.ratio));
  if (scored.length >= 3) {
    const tail = scored.slice(-Math.max(1, Math.ceil(scored.length / 3)));
    const ratio = median(tail.map((r) => r.modality_score.ratio));
    if (ratio > 3 || ratio < 1 / 3) {
      const [dom, weak] = ratio > 3 ? ['text', 'image'] : ['image', 'text'];
      const probe = lastEval && typeof lastEval.probe_text_accuracy === 'number'
        ? `; unimodal probes at step ${lastEval.step}: text ${pct(lastEval.probe_text_accuracy)}, image ${pct(lastEval.probe_image_accuracy)}` : '';
      out.push({
        kind: 'modality-imbalance', step: tail[tail.length - 1].step,
        message: `the ${dom} modality dominates: contribution score ratio text/image ${fmt(ratio, 2)} over the last ${tail.length} diagnostics records${probe}; ` +
          `${c.balance.method === 'none' ? `try balance.method: ogm-ge, balance.modalityDropout: 0.3, or a higher ${weak === 'text' ? 'train.textEncoderLr' : 'train.imageEncoderLr'}` : `balance.method ${c.balance.method} is on; raise balance.alpha`}`,
        evidence: { ratio, records: tail.length },
      });
    }
  }

  // clipping on almost every step: the effective lr is set by the clip, not by train.lr
  const after = diag.filter((r) => r.step > warmupSteps(c.train.schedule, train[train.length - 1]?.step ?? 0));
  if (c.train.clipGradNorm !== null && after.length >= 3) {
    const f = after.reduce((a, r) => a + (r.clip_fraction ?? 0), 0) / after.length;
    if (f > 0.9) {
      out.push({
        kind: 'clipping', step: after[after.length - 1].step,
        message: `the gradient norm exceeded the clip threshold ${c.train.clipGradNorm} on ${pct(f)} of steps after warmup: clipping, not train.lr, sets the step size; lower train.lr or raise train.clipGradNorm`,
        evidence: { clip_fraction: f },
      });
    }
  }

  // update-to-weight ratios far from the usual ~1e-3
  if (diag.length >= 3) {
    const tail = diag.slice(-Math.max(1, Math.ceil(diag.length / 2)));
    for (const m of Object.keys(tail[0].update_ratio ?? {})) {
      const u = median(tail.map((r) => r.update_ratio?.[m]).filter((x) => Number.isFinite(x)));
      if (u > 0.05) out.push({ kind: 'update-ratio', message: `${m}: updates change its weights by ${pct(u)} per step (median over the last ${tail.length} records; ~0.1% is typical): the lr is high for this module`, evidence: { module: m, update_ratio: u } });
      else if (u > 0 && u < 1e-6) out.push({ kind: 'update-ratio', message: `${m}: updates change its weights by ${fmt(u, 2)} of their norm per step: it is barely training; raise its lr or unfreeze it`, evidence: { module: m, update_ratio: u } });
    }
  }

  // overfitting: validation loss climbing well above its minimum while training continues
  if (evals.length >= 4) {
    let best = 0;
    evals.forEach((r, i) => { if (r.loss < evals[best].loss) best = i; });
    const last = evals[evals.length - 1];
    if (best <= evals.length - 3 && last.loss > 1.2 * evals[best].loss) {
      out.push({
        kind: 'overfitting', step: last.step,
        message: `validation loss rose from ${fmt(evals[best].loss)} at step ${evals[best].step} to ${fmt(last.loss)} at step ${last.step}: the model overfits; use the best checkpoint (best/), early stopping (eval.earlyStopping), more weight decay or fewer epochs`,
        evidence: { best_step: evals[best].step, best_loss: evals[best].loss, last_loss: last.loss },
      });
    }
  }
  return out;
}
